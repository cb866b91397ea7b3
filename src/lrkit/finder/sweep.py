"""The range-test engine: :class:`SweepOptions` (shared by every finder), :class:`Sweep`
(incremental) and :func:`range_test` (driven by a ``step(lr) -> loss`` callable)."""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import sys
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from .. import _renamed
from .. import _validate as V
from .._format import failure
from .._runtime import caller_level
from .probes import Probes, _loss_of, run_probes
from .result import _REPLAY, FinderResult, LRFinderWarning
from .rules import (
    DEFAULT_RULE,
    MOVED_FRACTION,
    OPTIMIZERS,
    RISE_FRACTION,
    RULES,
    STOP_REASONS,
    CurveShape,
    Rule,
    budget_message,
    resolve,
    saturated,
    shape_curve,
    smooth_curve,
    suggestions,
    turned_up,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "MODES",
    "STOP_REASONS",
    "Sweep",
    "SweepKwargs",
    "SweepOptions",
    "cycle_batches",
    "held_batches",
    "range_test",
]

MODES: tuple[str, ...] = ("exp", "linear")
#: other libraries' names of the sweep's modes (Lightning's LRFinder says "exponential")
_MODE_HINTS = {"exponential": "Lightning's 'exponential' is 'exp' here"}
MIN_ITER = 10
MAX_ITER = 100_000  # the most num_iter, max_extra_iter and eval_batches: far beyond any need
FLAT_TOL = MOVED_FRACTION  # the held loss "has not moved": within this fraction of its first
# value ...
FLAT_CADENCE = 2  # ... while it has not, it is measured this many times less often
RISEN_DECADES = 0.7  # "turned_up" stop: the curve has risen for this many decades past its minimum


#: the names users of torch-lr-finder, fastai and Lightning reach for, and the option meant
_SWEEP_HINTS = {
    "num_iters": "use num_iter",
    "num_it": "use num_iter",
    "num_training": "use num_iter",
    "min_lr": "use start_lr",
    "max_lr": "use end_lr",
    "step_mode": 'use mode ("exp" or "linear")',
    "smooth_f": "use beta, the EMA factor of the training loss: beta = 1 - smooth_f",
    "early_stop_threshold": "use diverge_th",
    "suggest_funcs": "use rule",
    "stop_div": "the sweep always stops on divergence; diverge_th sets where",
    "show_plot": "use result.plot()",
    "val_loader": "use val_data, an argument of every find_lr",
    "update_attr": "set the learning rate from result.suggestion",
    # Hugging Face's name for the run's length (get_scheduler), not the sweep's
    "num_training_steps": "use total_steps, the optimizer steps of the run the suggestions are "
    "for; num_iter is the sweep's own length",
}


def check_finder_kwargs(
    where: str, given: Mapping[str, Any], *, finder: Any, hints: Mapping[str, str] | None = None
) -> None:
    """A ``TypeError`` for a keyword a finder function or class (``finder``, named ``where``)
    does not take: it names the keyword, the option meant (``hints`` of this finder, then the
    peers' names every finder shares, then a close spelling) and every keyword it takes, its
    own (``val_data``, ``probe_data``, ...) and the sweep options."""
    import inspect

    own, _ = V.keywords(finder.__init__ if inspect.isclass(finder) else finder)
    allowed = sorted({*own, *(f.name for f in fields(SweepOptions))})
    rest = {k: v for k, v in given.items() if k != "method"}  # rule's alias
    V.options(where, rest, allowed, {**_SWEEP_HINTS, **(hints or {})})


DEFAULT_EXTRA_ITER = 50  # the extension's step cap, at least (see SweepOptions)


@dataclass(frozen=True, kw_only=True)
class SweepOptions:
    """Every option of a range test, the same for every finder (``lrkit.finder.range_test``,
    ``lrkit.torch.find_lr``, ``lrkit.keras.find_lr``, ``lrkit.optax.find_lr``), which take
    them as keyword arguments or as ``options=SweepOptions(...)``.

    * ``start_lr``, ``end_lr``, ``num_iter``, ``mode``: the sweep, ``num_iter`` steps from
      ``start_lr`` to ``end_lr``, log-spaced (``"exp"``) or evenly (``"linear"``).
    * ``stop_early``: stop (``stop_reason="turned_up"``) once the held-batch curve (when
      measured) and the training curve have both clearly turned up, each ``RISEN_DECADES``
      decades of LR past its minimum (:func:`risen`): later steps would barely change the
      suggestions. ``False`` runs on to ``end_lr`` or divergence.
    * ``beta``: EMA factor of the smoothed training loss (divergence test, plots; the
      rules of torch-lr-finder and fastai smooth as those tools do); ``diverge_th``: the
      sweep stops when that EMA exceeds this multiple of its best value (or when the
      held-batch loss does; a best value of 0 or below, such as a negative
      log-likelihood's: when it has risen above it by ``diverge_th - 1`` times the larger of
      its size and the first value's).
    * ``eval_every``, ``eval_batches``: every ``eval_every`` steps the loss on
      ``eval_batches`` fixed held batches is measured (eval mode, no gradient; every
      ``2 * eval_every`` steps while that loss is still within ``FLAT_TOL`` of its first
      value, where it carries no information yet) and the
      default rule reads that curve, which shows training progress rather than which batch
      was drawn; ``eval_batches=0`` reads the training loss instead.
    * ``max_extra_iter``, ``max_end_lr``: when the curve has not turned up by ``end_lr``,
      the sweep goes on at the same spacing until it does, for at most ``max_extra_iter``
      more steps (default ``max(50, num_iter // 2)``: 50 up to 100 sweep steps, and a denser
      sweep extends over as many decades) and never past ``max_end_lr`` (default
      ``1000 * end_lr``); if it
      still has not, the result is marked unreliable (the suggestions are lower bounds).
      ``max_extra_iter=0`` turns the extension off.
    * ``rule``: the rule behind ``result.suggestion`` (a name in ``lrkit.finder.RULES`` or a
      callable ``rule(lrs, losses) -> lr``); ``total_steps``: the optimizer steps the run
      will train for (the default rule's LRs depend on it; default 1000);
      ``optimizer_family``: ``"sgd"``, ``"momentum"`` or ``"adaptive"`` (the framework
      finders read it off the optimizer when ``None``).
    """

    start_lr: float = 1e-7
    end_lr: float = 10.0
    num_iter: int = 100
    mode: str = "exp"
    beta: float = 0.9
    diverge_th: float = 5.0
    eval_every: int = 4
    eval_batches: int = 1
    max_extra_iter: int | None = None
    max_end_lr: float | None = None
    stop_early: bool = True
    rule: str | Rule = DEFAULT_RULE
    total_steps: int | None = None
    optimizer_family: str | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> SweepOptions:
        # a keyword it does not take: the one-line error every finder gives, with the option
        # meant (dataclass' own __init__ would name the keyword only)
        own, any_keyword = V.keywords(cls.__init__)  # a subclass's own __init__ included
        if args and cls is SweepOptions:
            raise TypeError(
                f"SweepOptions takes keyword arguments only, got {len(args)} positional"
            )
        if not any_keyword:
            hints = {**_SWEEP_HINTS, "method": "use rule (method is its alias in the finders)"}
            V.options(f"{cls.__name__}()", kwargs, own, hints)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("start_lr", V.positive("start_lr", self.start_lr))
        put("end_lr", V.positive("end_lr", self.end_lr))
        if self.end_lr <= self.start_lr:
            raise ValueError(
                f"end_lr must be > start_lr (allowed range: ({self.start_lr}, inf)), "
                f"got end_lr={self.end_lr!r}"
            )
        put("num_iter", V.integer("num_iter", self.num_iter, MIN_ITER, MAX_ITER))
        put("mode", V.choice("mode", self.mode, MODES, _MODE_HINTS))
        if self.mode == "exp" and not math.isfinite(self.end_lr / self.start_lr):
            raise ValueError(
                f"end_lr / start_lr must be a ratio float64 holds (the sweep's LRs grow by "
                f"it): raise start_lr or lower end_lr, got {V.fmt(self.end_lr)} / "
                f"{self.start_lr!r} (inf)"
            )
        put("beta", V.in_range("beta", self.beta, 0.0, 1.0, high_open=True))
        put("diverge_th", V.in_range("diverge_th", self.diverge_th, 1.0, math.inf, low_open=True))
        put("eval_every", V.integer("eval_every", self.eval_every, 1))
        put("eval_batches", V.integer("eval_batches", self.eval_batches, 0, MAX_ITER))
        if self.max_extra_iter is not None:
            put("max_extra_iter", V.integer("max_extra_iter", self.max_extra_iter, 0, MAX_ITER))
        if self.max_end_lr is not None:
            put("max_end_lr", V.positive("max_end_lr", self.max_end_lr))
            if self.max_end_lr < self.end_lr:
                raise ValueError(
                    f"max_end_lr must be >= end_lr (allowed range: [{self.end_lr}, inf)), "
                    f"got {V.fmt(self.max_end_lr)}"
                )
        put("stop_early", V.flag("stop_early", self.stop_early))
        resolve(self.rule)
        if self.total_steps is not None:
            put("total_steps", V.integer("total_steps", self.total_steps, 1))
        if self.optimizer_family is not None:
            put(
                "optimizer_family",
                V.choice("optimizer_family", self.optimizer_family, OPTIMIZERS),
            )

    @property
    def ceiling(self) -> float:
        """The highest LR an extended sweep may reach (never beyond float64)."""
        top = self.max_end_lr if self.max_end_lr is not None else 1000.0 * self.end_lr
        return min(top, sys.float_info.max)

    @property
    def extra_iter(self) -> int:
        """The extension's step cap: ``max_extra_iter``, or ``max(50, num_iter // 2)`` when
        ``None``."""
        if self.max_extra_iter is None:
            return max(DEFAULT_EXTRA_ITER, self.num_iter // 2)
        return self.max_extra_iter

    def to_dict(self) -> dict[str, Any]:
        """Every option by name, JSON-serialisable: ``rule`` by its name (a callable rule by
        its ``__name__``); ``SweepOptions(**to_dict())`` rebuilds the options of a named rule."""
        d = asdict(self)
        d["rule"] = resolve(self.rule)[0]
        return d

    @classmethod
    def build(cls, options: SweepOptions | None = None, **kwargs: Any) -> SweepOptions:
        """``options`` (or the defaults) with ``kwargs`` replacing fields; ``method`` is
        accepted for ``rule``. An unknown name raises ``TypeError`` naming it."""
        if "method" in kwargs:
            if "rule" in kwargs:
                raise TypeError(
                    "rule and method name the same option (method is its alias): pass one, "
                    f"got rule={kwargs['rule']!r} and method={kwargs['method']!r}"
                )
            kwargs["rule"] = kwargs.pop("method")
        V.options("the range test", kwargs, [f.name for f in fields(cls)], _SWEEP_HINTS)
        if options is None:
            return cls(**kwargs)
        if not isinstance(options, SweepOptions):
            raise ValueError(f"options must be a SweepOptions, got {type(options).__name__}")
        return cls(**{**asdict(options), "rule": options.rule, **kwargs})


class SweepKwargs(TypedDict, total=False):
    """The keyword form of :class:`SweepOptions` (for ``**kwargs`` annotations)."""

    start_lr: float
    end_lr: float
    num_iter: int
    mode: str
    beta: float
    diverge_th: float
    eval_every: int
    eval_batches: int
    max_extra_iter: int | None
    max_end_lr: float | None
    stop_early: bool
    rule: str | Rule
    method: str | Rule
    total_steps: int | None
    optimizer_family: str | None


class Sweep:
    """An incremental range test, for drivers that own the loop::

        sweep = Sweep(start_lr=1e-7, end_lr=10.0, num_iter=100)   # or Sweep(options)
        for lr in sweep:
            loss = train_step(lr)
            held = held_loss() if sweep.eval_due else None
            sweep.record(loss, held=held)     # False when the sweep stops
        result = sweep.result()

    ``eval_due`` is ``True`` at the steps where the options ask for the held-batch loss
    (never when ``eval_batches=0``); the loss passed as ``held`` is then what the default
    rule reads. The option ``optimizer_family`` (``"sgd"``, ``"momentum"``, ``"adaptive"``)
    tells the default rule the optimizer family; :attr:`optimizer_family` is the one it reads.
    ``optimizer``, the deprecated former name of that argument, gives the family only when the
    options name none.
    """

    def __init__(
        self,
        options: SweepOptions | None = None,
        /,
        *,
        optimizer: str | None = _renamed.UNSET,
        **kwargs: Unpack[SweepKwargs],
    ) -> None:
        family = _renamed.keyword(
            "lrkit.finder.Sweep()",
            "optimizer",
            "optimizer_family",
            optimizer,
            kwargs.get("optimizer_family"),
        )
        self.options = SweepOptions.build(options, **kwargs)
        o = self.options
        #: the optimizer family the default rule reads (``None``: ``"adaptive"``)
        self.optimizer_family: str | None = o.optimizer_family
        if optimizer is not _renamed.UNSET and family is not None:  # named as the caller did
            self.use_family(V.choice("optimizer", family, OPTIMIZERS))
        self.start_lr, self.end_lr, self.num_iter = o.start_lr, o.end_lr, o.num_iter
        self.mode, self.beta, self.diverge_th = o.mode, o.beta, o.diverge_th
        self._lrs: list[float] = []
        self._losses: list[float] = []
        self._smoothed: list[float] = []
        self._held_lrs: list[float] = []
        self._held: list[float] = []
        self._avg = 0.0
        self._best = math.inf
        self._best_held = math.inf
        self._stop: str | None = None
        self._stop_lr: float | None = None
        self._limit = o.num_iter  # grows while the sweep is extended

    def lr_at(self, i: int) -> float:
        """Learning rate of step ``i`` (0-based); step ``num_iter - 1`` is exactly ``end_lr``;
        an extended sweep continues at the same spacing."""
        t = i / (self.num_iter - 1)
        if self.mode == "exp":
            try:
                return float(self.start_lr * (self.end_lr / self.start_lr) ** t)
            except OverflowError:  # an extension beyond float64: no such LR
                return math.inf
        return float(self.start_lr + (self.end_lr - self.start_lr) * t)

    def use_family(self, family: str | None) -> None:
        """Tell the default rule the optimizer family ``family`` (``"sgd"``, ``"momentum"``,
        ``"adaptive"``; what a framework finder reads off the optimizer, e.g. with
        :func:`optimizer_family`) unless the options name one; ``None``: no change."""
        if self.optimizer_family is None and family is not None:
            self.optimizer_family = V.choice("family", family, OPTIMIZERS)

    @property
    def optimizer(self) -> str | None:
        """Deprecated alias of :attr:`optimizer_family`."""
        _renamed.attribute("Sweep", "optimizer", "optimizer_family")
        return self.optimizer_family

    @property
    def done(self) -> bool:
        """Whether the sweep has stopped (``stop_reason`` says why); ``record`` then refuses
        another step."""
        return self._stop is not None

    @property
    def stop_reason(self) -> str | None:
        """Why the sweep stopped, one of ``STOP_REASONS``; ``None`` while it runs."""
        return self._stop

    def check_val_data(self, val_data: Any, name: str = "val_data") -> None:
        """A one-line error when ``val_data`` (the held batches, or what measures them:
        ``name``) is given but ``eval_batches=0`` turns the held measurement off (it would be
        read and never evaluated)."""
        if val_data is not None and self.options.eval_batches == 0:
            raise ValueError(
                f"{name} is given but eval_batches=0 turns the held measurement off: give "
                f"eval_batches >= 1 (the default) to measure with {name}, or drop {name}"
            )

    @property
    def eval_due(self) -> bool:
        """Whether the current step (the next one to be recorded) measures the held loss."""
        o = self.options
        every = o.eval_every
        if len(self._held) >= 2 and _flat(self._held):
            every *= FLAT_CADENCE
        return o.eval_batches > 0 and len(self._losses) % every == 0

    def __iter__(self) -> Iterator[float]:
        while not self.done:
            yield self.lr_at(len(self._losses))

    def _may_have_risen(self, held: float | None, sm: float, i: int) -> bool:
        """A cheap gate before :func:`risen`: the latest point of the curve the rule reads
        is ``RISE_FRACTION`` above the best so far (the held loss when measured, else the
        EMA of the training loss, checked every ``eval_every`` steps)."""
        if held is not None:
            v, best = float(held), self._best_held
        elif not self._held and i % self.options.eval_every == 0:
            v, best = sm, self._best
        else:
            return False
        return math.isfinite(best) and v > best + RISE_FRACTION * abs(best)

    def _curve(self) -> tuple[np.ndarray, np.ndarray]:
        if self._held:
            return np.asarray(self._held_lrs), np.asarray(self._held)
        return np.asarray(self._lrs), np.asarray(self._losses)

    def _book(self, i: int, lr: float, loss: float, held: float | None) -> float:
        """Write step ``i``'s losses into the curves; returns the smoothed training loss."""
        self._avg = self.beta * self._avg + (1.0 - self.beta) * loss
        sm = self._avg / (1.0 - self.beta ** (i + 1))
        self._lrs.append(lr)
        self._losses.append(loss)
        self._smoothed.append(sm)
        if held is not None:
            self._held_lrs.append(lr)
            self._held.append(held)
        return sm

    def replay(
        self,
        losses: Sequence[float],
        *,
        held: Mapping[float, float] | None = None,
        stop_reason: str,
        stop_lr: float | None = None,
    ) -> None:
        """Record a saved curve (``FinderResult.to_dict()``: a checkpoint's) as the sweep that
        made it recorded it, without judging the stops again (that sweep judged them, maybe
        by other rules): ``losses`` in order, ``held`` the held losses by the LR they were
        measured at; the sweep then stops for ``stop_reason`` (``stop_lr``: where), and
        :meth:`result` reads the curve as this version's rules read it."""
        if self._lrs or self.done:
            raise RuntimeError("replay() takes a fresh sweep (this one has recorded steps)")
        V.choice("stop_reason", stop_reason, STOP_REASONS)
        held = {} if held is None else held
        losses = [float(x) for x in losses]
        limit = self.num_iter + self.options.extra_iter
        if len(losses) > limit:
            raise ValueError(
                f"losses: {len(losses)} steps, more than these options sweep ({limit}: num_iter "
                f"{self.num_iter} and at most {self.options.extra_iter} more); replay a curve "
                "with the options it was recorded with"
            )
        given: list[tuple[str, Any, float]] = [
            *(("losses", i, x) for i, x in enumerate(losses)),
            *(("held", lr, float(x)) for lr, x in held.items()),
        ]
        for name, key, x in given:
            if not math.isfinite(x):  # a sweep stops at a non-finite loss, without recording it
                raise ValueError(
                    f"{name}[{key!r}] must be finite (a sweep that met a NaN or inf stopped "
                    f"before it: stop_reason='nan'), got {x!r}"
                )
        for loss in losses:
            i = len(self._losses)
            lr = self.lr_at(i)
            self._book(i, lr, float(loss), held.get(lr) if self.eval_due else None)
        self._stop, self._stop_lr = stop_reason, stop_lr

    def _diverged(self, value: float, best: float, first: float) -> bool:
        """Whether ``value`` is above ``diverge_th`` times ``best``. A loss without a natural
        zero (a negative log-likelihood, whose constant terms place it) has a best below 0:
        then whether it has risen above it by ``diverge_th - 1`` times the loss's size, the
        larger of the best's and the ``first`` value's (a loss that crosses 0 on its way down
        is not judged by a best that is close to 0); a best of exactly 0 likewise, by the
        first value's size (never when that is 0 too)."""
        if best > 0:
            return value > self.diverge_th * best
        size = max(-best, abs(first))  # (a best of exactly 0: the first value's size)
        return 0 < size < math.inf and value > best + (self.diverge_th - 1) * size

    def record(self, loss: float, *, held: float | None = None) -> bool:
        """Record the loss of the current step (and the held-batch loss when ``eval_due``);
        return ``True`` while the sweep continues."""
        if self.done:
            raise RuntimeError("the sweep has stopped; call result()")
        i = len(self._losses)
        lr = self.lr_at(i)
        loss = _loss_of(loss, "loss", "the loss of the current step", returned=False)
        if held is not None:
            held = _loss_of(held, "held", "the held-batch loss", returned=False)
        if not math.isfinite(loss) or (held is not None and not math.isfinite(held)):
            self._stop, self._stop_lr = "nan", lr
            return False
        sm = self._book(i, lr, loss, held)
        if held is not None:
            h = held
            if len(self._held) > 1 and self._diverged(h, self._best_held, self._held[0]):
                self._stop, self._stop_lr = "diverged", lr
                return False
            self._best_held = min(self._best_held, h)
        if i > 0 and self._diverged(sm, self._best, self._smoothed[0]):
            self._stop, self._stop_lr = "diverged", lr
            return False
        self._best = min(self._best, sm)
        n = len(self._losses)
        if self.options.stop_early and self._may_have_risen(held, sm, i):
            if risen(*self._curve()) and (
                not self._held or risen(np.asarray(self._lrs), np.asarray(self._losses))
            ):
                self._stop, self._stop_lr = "turned_up", lr
                return False
        if n >= self._limit:
            o = self.options
            extra = n - self.num_iter
            can_extend = (
                extra < o.extra_iter
                and self.lr_at(n) <= o.ceiling * (1 + 1e-12)
                and math.isfinite(self.lr_at(n))  # an LR float64 holds, always
                and not turned_up(*self._curve())
                and not saturated(*self._curve())
            )
            if can_extend:
                self._limit = n + 1
                return True
            self._stop, self._stop_lr = "completed", lr
            return False
        return True

    def run(
        self,
        step: Callable[[float], float],
        *,
        evaluate: Callable[[], float | None] | None = None,
        callback: Callable[[int, float, float], None] | None = None,
        progress: bool = False,
    ) -> None:
        """Drive the sweep: ``step(lr) -> loss`` for each LR until it stops (and ``evaluate() ->
        held loss`` when ``eval_due``; ``None``: none this time), then ``callback(i, lr, loss)``
        after each step. ``progress=True`` shows a tqdm bar ("lrkit find", the step's LR and loss),
        closed when the sweep ends. If ``step`` raises (``KeyboardInterrupt`` included) the sweep is
        marked interrupted and the exception propagates, so the caller's ``finally`` can restore its
        state; a ``KeyboardInterrupt`` after at least one step carries the result of the steps
        run (``stop_reason="interrupted"``) as its ``result`` attribute."""
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.num_iter, desc="lrkit find", unit="step", leave=False)
        try:
            for i, lr in enumerate(self):
                loss = _loss_of(step(lr))
                held = evaluate() if evaluate is not None and self.eval_due else None
                # None: no held loss this time
                held = None if held is None else _loss_of(held, "evaluate", "the held loss")
                self.record(loss, held=held)
                if callback is not None:
                    callback(i, lr, loss)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(lr=f"{lr:.1e}", loss=f"{loss:.4g}", refresh=False)
        except KeyboardInterrupt as exc:
            self.interrupt()
            if self._lrs:  # the curve measured so far, not lost with the exception
                # (a Ctrl-C between two appends of a step's record leaves no result: the
                # KeyboardInterrupt goes on as it came)
                with contextlib.suppress(Exception):
                    exc.result = self.result(warn=False)  # type: ignore[attr-defined]
            raise
        except BaseException:
            self.interrupt()
            raise
        finally:
            if bar is not None:
                bar.close()

    def interrupt(self) -> None:
        """Stop the sweep early (e.g. on KeyboardInterrupt); the result keeps what was run."""
        if not self.done:
            self._stop = "interrupted"
            self._stop_lr = self._lrs[-1] if self._lrs else None

    def probe(
        self,
        *,
        reset: Callable[[], None],
        step: Callable[[float], float],
        score: Callable[[], float],
        progress: bool = False,
    ) -> Probes | None:
        """Run the probes (:func:`run_probes`) around this sweep's edge, once it has stopped;
        ``None`` (nothing run) when no step completed. Pass what it returns to
        :meth:`result`. Interrupted (``KeyboardInterrupt``), the exception carries the
        sweep's own result (without probes) as its ``result`` attribute, so that the curve
        measured is not lost with it."""
        sweep = self.result(warn=False)
        if sweep.lr_min is None:
            return None
        try:
            return run_probes(sweep.lr_min, reset=reset, step=step, score=score, progress=progress)
        except KeyboardInterrupt as exc:
            exc.result = sweep  # type: ignore[attr-defined]
            raise

    def result(self, *, warn: bool = True, probes: Probes | None = None) -> FinderResult:
        """Build the :class:`FinderResult`; emits :class:`LRFinderWarning` when unreliable.
        ``probes``: the probe runs made around this sweep's edge (:func:`run_probes`), which
        the default rule's suggestions then scale from."""
        reason = self._stop or "interrupted"
        lrs = np.asarray(self._lrs, dtype=np.float64)
        losses = np.asarray(self._losses, dtype=np.float64)
        cx, cy = shape_curve(lrs, losses, self._held_lrs, self._held)
        sugg = None
        msgs: list[str] = []
        if len(losses) == 0:
            msgs.append(
                "no step completed (the first loss was NaN/inf or the sweep was interrupted): "
                "lower start_lr and check the training step"
            )
        else:
            sugg = suggestions(
                lrs,
                losses,
                held_lrs=np.asarray(self._held_lrs, dtype=np.float64) if self._held else None,
                held_losses=np.asarray(self._held, dtype=np.float64) if self._held else None,
                total_steps=self.options.total_steps,
                optimizer_family=self.optimizer_family,
                stop_reason=reason,
                probes=probes,
            )
            msgs.extend(_messages(self, sugg, cx, cy, reason))
            if probes is not None and probes.diverged:
                msgs.append(
                    "every probe diverged, down to "
                    f"{min(probes.lrs):.3g}: the suggestions sit below them; check the "
                    "training step or lower start_lr"
                )
            sugg = replace(sugg, warnings=tuple(msgs))
        res = FinderResult(
            lrs=lrs,
            losses=losses,
            smoothed=np.asarray(self._smoothed, dtype=np.float64),
            stop_reason=reason,
            stop_lr=self._stop_lr,
            options=self.options,
            held_lrs=np.asarray(self._held_lrs, dtype=np.float64),
            held_losses=np.asarray(self._held, dtype=np.float64),
            extended=max(0, len(losses) - self.num_iter),
            optimizer_family=self.optimizer_family,
            warnings=tuple(msgs),
            _sugg=sugg,
            probes=probes,
        )
        failed = _rule_failure(res)
        if failed is not None:  # the curve is kept: to_dict(), plot() and the rest still work
            msgs.append(failed)
            sugg = None if sugg is None else replace(sugg, warnings=tuple(msgs))
            res = replace(res, warnings=tuple(msgs), _sugg=sugg, _rule_failed=failed)
        if warn:
            for msg in msgs:
                warnings.warn(f"LR range test: {msg}", LRFinderWarning, stacklevel=caller_level())
        return res


def _rule_failure(res: FinderResult) -> str | None:
    """Why the sweep's own rule, a callable of the user's, gives no learning rate on this
    curve (it raised, or returned no finite number > 0); ``None`` when it gives one (or no
    step ran, or the rule is a built-in one)."""
    name, fn = resolve(res.options.rule)
    if fn in RULES.values() or len(res.losses) == 0:
        return None
    try:
        res.suggest()
    except Exception as exc:  # noqa: BLE001 - the user's rule: reported, the curve kept
        what = (
            str(exc)
            if isinstance(exc, ValueError) and str(exc).startswith("rule ")
            else (f"rule {name!r} raised {failure(exc)}")
        )
        return (
            f"{what}: suggestion is None (result.suggest(name) applies a built-in rule to "
            "the same curve)"
        )
    return None


def _flat(held: list[float]) -> bool:
    """Whether the held loss has not moved yet (within ``FLAT_TOL`` of its first value)."""
    first = held[0]
    return all(abs(h - first) <= FLAT_TOL * abs(first) for h in held[-2:])


def risen(lrs: np.ndarray, losses: np.ndarray) -> bool:
    """Whether a sweep may stop: the smoothed curve descended clearly to its minimum (as in
    :func:`lrkit.finder.rules.edge`), its last point is clearly above that minimum (see
    :func:`turned_up`), and it is ``RISEN_DECADES`` decades of LR past it."""
    if len(losses) < MIN_ITER:
        return False
    s = CurveShape.of(losses, smooth_curve(lrs, losses))
    past = math.log10(float(lrs[-1]) / float(lrs[s.m])) >= RISEN_DECADES
    # without a clear descent to a minimum, a rise of the noise is no reason to stop
    return past and s.descended and s.above_minimum(float(s.r[-1]))


def _messages(sweep: Sweep, s: Any, lrs: np.ndarray, losses: np.ndarray, reason: str) -> list[str]:
    n = len(sweep._losses)
    taken = n + (reason == "nan")  # a NaN step is not recorded, but it was taken
    out: list[str] = []
    if taken <= 5 and reason in ("diverged", "nan"):
        return [
            f"the sweep stopped after {taken} step(s) ({reason}): the loss diverged almost at "
            "once; lower start_lr (e.g. by 100x) and rerun"
        ]
    if not s.turned_up and not s.saturated and reason == "completed":
        top = float(sweep._lrs[-1])
        how = "sweep extended to" if n > sweep.num_iter else "sweep ended at"
        out.append(
            f"the loss never turned up ({how} {top:.2g}): the edge of stability "
            "lies beyond it, so the suggestions are lower bounds; rerun with a larger end_lr "
            "or max_end_lr"
        )
    elif not s.turned_up and not s.saturated and reason == "interrupted":
        top = float(sweep._lrs[-1])
        out.append(
            f"the loss had not turned up when the sweep was interrupted (at {top:.2g}): the "
            "edge of stability lies beyond it, so the suggestions are lower bounds; rerun the "
            "sweep to the end"
        )
    elif not s.turned_up and not s.saturated and reason == "nan":
        at = sweep._stop_lr if sweep._stop_lr is not None else float(sweep._lrs[-1])
        out.append(
            f"the loss became NaN/inf (at {at:.2g}) before the curve turned up: the edge of "
            "stability may lie beyond it, so the suggestions are lower bounds; if a batch or "
            "an operation of the training step gives the NaN/inf (e.g. the log of 0), fix it "
            "and rerun"
        )
    budget = budget_message(s.total_steps) if sweep.options.total_steps is not None else None
    if budget is not None:
        out.append(budget)
    m = int(np.argmin(losses)) if len(losses) else 0
    # the curve itself rose: a flat one that ends in NaN, or in a training loss gone off, did
    # not rise "from its first steps"; one that rose all the way to end_lr did
    rose = reason == "turned_up" or turned_up(lrs, losses)
    if len(losses) >= 5 and m <= max(1, len(losses) // 10) and rose:
        out.append(
            "the loss rose from the first steps: start_lr is already too large; lower start_lr "
            "(e.g. by 100x)"
        )
    elif not s.descended:
        out.append(
            f"the loss did not clearly descend (noise {s.noise:.3g}): the curve is flat or too "
            "noisy; use more iterations (num_iter), a wider range (start_lr/end_lr), more held "
            "batches (eval_batches) or a larger batch"
        )
    return out


#: the framework finders' data arguments, and what the framework-free range test takes instead
_RANGE_TEST_HINTS = {
    name: "use evaluate=, a function returning the loss on your held batches"
    for name in ("val_data", "val_loader")
} | {"probe_data": "use reset= and score=, which run the probes"}


#: what a saved result (``FinderResult.to_dict()``) must hold to be replayed
_SAVED_KEYS = ("lrs", "losses", "held_lrs", "held_losses", "stop_reason", "options")


def replay_result(
    state: Mapping[str, Any],
    *,
    rule: Any = None,
    where: str = "state",
    source: str = "the saved sweep",
    again: str = "FinderResult.from_dict(state, rule={name})",
) -> FinderResult:
    """The :class:`FinderResult` of a saved curve (``FinderResult.to_dict()``), rebuilt exactly
    by feeding its losses (and held-batch losses) to a fresh sweep with the same options
    (:meth:`FinderResult.from_dict`).

    A saved result holds a callable rule by its name only: the callable comes from ``rule``,
    with a warning when its name is not the saved one. ``where`` names the saved result in
    errors, ``source`` the sweep it came from, ``again`` how to give the callable rule
    (``{name}``: its name)."""
    missing = sorted(set(_SAVED_KEYS) - set(state)) if isinstance(state, Mapping) else []
    if not isinstance(state, Mapping) or missing:
        got = f"a dict without {missing}" if missing else type(state).__name__
        raise ValueError(f"{where} must be a dict from FinderResult.to_dict(), got {got}")
    if not isinstance(state["options"], Mapping):
        raise ValueError(
            f"{where}['options'] must be a dict from SweepOptions.to_dict(), got "
            f"{V.dict_given(state['options'])}"
        )
    options = dict(state["options"])
    curves = {}
    for key in ("lrs", "losses", "held_lrs", "held_losses"):
        values = V.listed(f"{where}[{key!r}]", state[key], "numbers")
        try:
            curves[key] = [V.number(f"{where}[{key!r}][{i}]", x) for i, x in enumerate(values)]
        except TypeError:  # not a sequence
            raise ValueError(
                f"{where}[{key!r}] must be a list of numbers, got {V.fmt(values)}"
            ) from None
    for a, b in (("lrs", "losses"), ("held_lrs", "held_losses")):
        if len(curves[a]) != len(curves[b]):
            raise ValueError(
                f"{where}[{b!r}] must have one value per LR of {where}[{a!r}] "
                f"({len(curves[a])}), got {len(curves[b])}"
            )
    saved = options.get("rule")
    if callable(rule):
        name = getattr(rule, "__name__", "custom")
        if saved != name:
            warnings.warn(
                f"{source} used the rule {saved!r}, the rule given is {name!r}: the "
                f"suggestion follows {name!r}",
                RuntimeWarning,
                stacklevel=caller_level(),
            )
        options["rule"] = rule
    elif rule is not None:
        raise TypeError(
            f"rule must be the callable rule the saved result names, or None, got "
            f"{V.fmt(rule)} (another rule's reading of the result: result.suggest(name))"
        )
    elif not isinstance(saved, str) or not saved:
        raise ValueError(f"{where}['options']['rule'] must be a rule's name, got {V.fmt(saved)}")
    elif saved not in RULES:
        raise ValueError(
            f"{source} used the rule {saved!r}, not one of lrkit.finder.RULES "
            f"({', '.join(map(repr, RULES))}): a callable rule, which a saved result holds by "
            f"its name only: {again.format(name=saved)} (the same callable)"
        )
    stop_reason = V.choice(f"{where}['stop_reason']", state["stop_reason"], STOP_REASONS)
    stop_lr = state.get("stop_lr")
    if stop_lr is not None:
        stop_lr = V.positive(f"{where}['stop_lr']", stop_lr)
    # the family the sweep's rule read (saved as "optimizer" by lrkit 0.1.0)
    family = state.get("optimizer_family", state.get("optimizer"))
    if family is not None:
        family = V.choice(f"{where}['optimizer_family']", family, OPTIMIZERS)
    try:
        sweep = Sweep(SweepOptions.build(None, **options))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}['options']: {exc}") from None
    sweep.use_family(family)
    swept = [sweep.lr_at(i) for i in range(len(curves["losses"]))]
    if not all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(swept, curves["lrs"])):
        raise ValueError(
            f"{where}['lrs'] are not the LRs its options sweep (start_lr, end_lr, num_iter, "
            "mode): a saved result is replayed with the options it was recorded with"
        )
    # each held loss by the step's LR as this sweep computes it (a saved LR may differ from
    # it in its last bits: written by another machine's pow, or edited)
    held = {}
    for k, (lr, loss) in enumerate(zip(curves["held_lrs"], curves["held_losses"])):
        at = bisect.bisect_left(swept, lr)  # the sweep's LRs rise: the nearest is beside
        near = [i for i in (at - 1, at) if 0 <= i < len(swept)]
        j = min(near, key=lambda i: abs(swept[i] - lr), default=None)
        if j is None or not math.isclose(swept[j], lr, rel_tol=1e-9):
            raise ValueError(
                f"{where}['held_lrs'][{k}] = {lr!r} is not an LR of the steps in "
                f"{where}['lrs']: a held loss is measured at a step of the sweep"
            )
        held[swept[j]] = loss
    sweep.replay(curves["losses"], held=held, stop_reason=stop_reason, stop_lr=stop_lr)
    probes = state.get("probes")  # (absent before probe_data, None without it)
    try:
        kept = None if probes is None else Probes.from_dict(probes)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}['probes']: {exc}") from None
    return sweep.result(warn=False, probes=kept)


_REPLAY.append(replay_result)  # FinderResult.from_dict (result.py cannot import this module)


def range_test(
    step: Callable[[float], float],
    *,
    options: SweepOptions | None = None,
    evaluate: Callable[[], float] | None = None,
    optimizer: str | None = _renamed.UNSET,
    progress: bool = False,
    callback: Callable[[int, float, float], None] | None = None,
    warn: bool = True,
    reset: Callable[[], None] | None = None,
    score: Callable[[], float] | None = None,
    **kwargs: Unpack[SweepKwargs],
) -> FinderResult:
    """Run a range test driven by ``step(lr) -> loss``.

    Sweep options come as keyword arguments or ``options`` (:class:`SweepOptions`).
    ``evaluate() -> loss`` (optional) measures the loss on fixed held batches; it is called
    every ``eval_every`` steps and the default rule reads that curve (without it, the
    training losses). ``callback(i, lr, loss)`` is called after each step; ``progress=True``
    shows a progress bar; ``warn=False`` leaves the :class:`LRFinderWarning` of an unreliable
    result unsaid (``result.warnings`` still holds it). A
    ``KeyboardInterrupt`` inside ``step`` stops the sweep and propagates after the caller's
    cleanup, carrying the result of the steps run as its ``result`` attribute (once a step
    completed). ``optimizer_family`` (a sweep option) tells the
    default rule the optimizer family; ``optimizer`` is its deprecated former name (read only
    when the options name no family).

    ``reset()`` and ``score()`` (both or neither) run the probes after the sweep
    (:func:`lrkit.finder.probes.run_probes`): ``reset()`` puts the model, optimizer and data
    order back to their state before the sweep, ``score()`` returns the loss on validation
    data; the caller restores its state afterwards, as after the sweep."""
    check_finder_kwargs("the range test", kwargs, finder=range_test, hints=_RANGE_TEST_HINTS)
    if not callable(step):
        raise ValueError(f"step must be a callable step(lr) -> loss, got {V.fmt(step)}")
    V.takes("step", step, "step(lr) -> loss", 1)
    V.optional_callable("evaluate", evaluate, "evaluate() -> held loss", 0)
    V.optional_callable("callback", callback, "callback(i, lr, loss)", 3)
    V.optional_callable("reset", reset, "reset() (the state before the sweep)", 0)
    V.optional_callable("score", score, "score() -> validation loss", 0)
    if (reset is None) != (score is None):
        given, missing = ("reset", "score") if score is None else ("score", "reset")
        raise ValueError(f"{given} needs {missing} (the probes use both), got {missing}=None")
    progress = V.flag("progress", progress)
    warn = V.flag("warn", warn)
    family = _renamed.keyword(
        "lrkit.finder.range_test()",
        "optimizer",
        "optimizer_family",
        optimizer,
        kwargs.get("optimizer_family"),
    )
    sweep = Sweep(options, **kwargs)
    sweep.check_val_data(evaluate, "evaluate")
    if optimizer is not _renamed.UNSET and family is not None:  # named as the caller did
        sweep.use_family(V.choice("optimizer", family, OPTIMIZERS))
    sweep.run(step, evaluate=evaluate, callback=callback, progress=progress)
    probes = None
    if reset is not None and score is not None:  # (checked above: both or neither)
        probes = sweep.probe(reset=reset, step=step, score=score, progress=progress)
    return sweep.result(warn=warn, probes=probes)


#: the most batches of a one-shot iterator :func:`cycle_batches` keeps to replay
REPLAY_BATCHES = 64


def cycle_batches(data: Iterable[Any], *, name: str = "data") -> Iterator[Any]:
    """Yield batches of ``data`` forever: a re-iterable (list, DataLoader) is iterated again
    when exhausted, nothing kept; a one-shot iterator (a generator) is replayed from the
    batches it yielded, of which the last ``REPLAY_BATCHES`` are kept (an endless generator
    holds no more than those; one that runs out after more is replayed from its last
    ``REPLAY_BATCHES``, with a ``UserWarning``). Raises ``ValueError`` naming ``name`` when
    it yields no batch at all, or none on a later pass of a re-iterable."""
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise ValueError(
            f"{name} must be an iterable of batches (a list, a generator, a loader), "
            f"got {type(data).__name__}{_factory_hint(data)}"
        )
    if isinstance(data, Iterator):  # one-shot (a generator): remember its latest batches
        kept: deque[Any] = deque(maxlen=REPLAY_BATCHES)
        n = 0
        for b in data:
            kept.append(b)
            n += 1
            yield b
        if not n:
            raise ValueError(f"{name} must yield at least one batch, got an empty iterable")
        if n > len(kept):
            warnings.warn(
                f"{name} (a one-shot iterator) ran out after {n} batches: its last "
                f"{len(kept)} are replayed, the most kept; pass a list or a re-iterable "
                f"loader to cycle over all {n}",
                UserWarning,
                stacklevel=caller_level(),
            )
        while True:
            yield from kept
    first = 0  # the batches of the first pass
    while True:
        n = 0
        for b in data:
            n += 1
            yield b
        if n == 0 and first:  # a loader over a one-shot stream: nothing on the next pass
            raise ValueError(
                f"{name} yielded {first} batches on its first pass and none on its second: "
                "a re-iterable (a loader) must yield its batches again on each pass (pass a "
                "generator, which is replayed, or a list)"
            )
        if n == 0:
            raise ValueError(f"{name} must yield at least one batch, got an empty iterable")
        first = first or n


#: more held batches than this: a warning (each is evaluated every ``eval_every`` steps)
MANY_HELD_BATCHES = 16
#: the most batches a held set without a ``len()`` may yield: more is read as an endless
#: iterator (refused; a list or a sized loader is read whole, whatever its length)
MAX_HELD_BATCHES = 1000


def _array_leaves(item: Any) -> list[Any] | None:
    """The arrays ``item`` is made of (an array, or a dict of arrays), else ``None``."""
    if isinstance(item, dict):
        leaves = list(item.values())
        return leaves if leaves and all(getattr(a, "shape", None) for a in leaves) else None
    return [item] if getattr(item, "shape", None) else None


def check_not_one_batch(given: Any, reference: Any, *, name: str) -> None:
    """Before a sweep: a one-line ``ValueError`` naming ``name`` when ``given`` (a held set,
    ``val_data``) is one batch's arrays, ``(x, y)`` (arrays, or dicts of them, with one
    leading size), where the training batches are tuples of as many items (``reference``,
    the first): read as a held set it would be the batches ``x``, then ``y``, whose loss a
    ``loss_fn`` indexing ``batch[0]`` and ``batch[1]`` computes on rows without a word."""
    if not (isinstance(given, (tuple, list)) and 2 <= len(given) <= 3):
        return
    if not (isinstance(reference, (tuple, list)) and len(reference) == len(given)):
        return
    leaves = [_array_leaves(item) for item in given]
    if any(part is None for part in leaves):
        return
    sizes = {a.shape[0] for part in leaves for a in part or ()}
    if len(sizes) != 1:
        return
    raise ValueError(
        f"{name} is one batch's arrays, a {type(given).__name__} of {len(given)} with "
        f"{sizes.pop()} samples each, where data's batches are tuples of {len(reference)}: "
        f"as a held set it would be read as {len(given)} batches, one per array; give one "
        f"batch as a list of it, {name}=[(x, y)], or several batches"
    )


def check_scored(
    score: Callable[[Any], Any], batch: Any, reference: Any, *, name: str, expected: str
) -> None:
    """Before a sweep: a one-line ``ValueError`` naming ``name`` (``val_data``,
    ``probe_data``) when ``score(batch)``, the loss its first batch gets, raises while
    ``score(reference)``, the first training batch's, does not (``expected``: the layout
    the message asks for). When ``reference`` fails too the fault is not ``name``'s: nothing
    is raised here, and the sweep's own call reports it. The caller puts back what the calls
    change."""
    try:
        score(batch)
    except Exception as exc:  # noqa: BLE001 - reported below, with its type and first line
        try:
            score(reference)
        except Exception:  # noqa: BLE001 - the training batch fails too: the sweep reports it
            return
        raise ValueError(
            f"{name}: the loss could not be computed on its first batch ({failure(exc)}); "
            f"{name} must be {expected}"
        ) from exc


def _factory_hint(data: Any) -> str:
    """For a function given as batches (``lrkit.torch.fit``'s form of ``data``): why the range
    test takes the batches themselves."""
    if not callable(data):
        return ""
    return (
        " (a function returning the batches is lrkit.torch.fit's form: the range test reads "
        "the batches themselves, so that it can put a DataLoader's own generator back "
        "afterwards; pass the loader (with step=lambda model, batch: loss for another batch "
        "layout), a list or a generator of batches)"
    )


def check_batches_type(data: Any, *, name: str, none: bool = False) -> None:
    """A one-line ``ValueError`` naming ``name`` when ``data`` is not an iterable of batches
    (``None`` too, with ``none``), without reading it: what every finder checks of its
    ``val_data`` and ``probe_data`` before anything runs; an empty list or tuple too (what
    :func:`held_batches` would refuse when it reads it)."""
    if none and data is None:
        return
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        kinds = "a list, a generator, a loader" + (", or None" if none else "")
        raise ValueError(
            f"{name} must be an iterable of batches ({kinds}), got {type(data).__name__}"
            + _factory_hint(data)
        )
    if isinstance(data, (list, tuple)) and not data:
        raise ValueError(f"{name} must yield at least one batch, got an empty iterable")


def held_batches(
    data: Iterable[Any], *, name: str = "val_data", warn_many: bool = True
) -> list[Any]:
    """The batches of one pass over ``data``, kept as a list: a fixed held set (every
    finder's ``val_data``, ``probe_data``). Raises ``ValueError`` naming ``name`` when
    ``data`` is not an iterable of batches, yields none, or has no ``len()`` and yields more
    than ``MAX_HELD_BATCHES`` (an endless iterator would never end the list); with
    ``warn_many``, warns
    (``UserWarning``) when it holds more than ``MANY_HELD_BATCHES``, all of which the sweep
    evaluates every ``eval_every`` steps."""
    check_batches_type(data, name=name)
    try:
        len(data)  # type: ignore[arg-type]
    except TypeError:  # no len(): maybe endless, read up to a bound
        out = list(itertools.islice(data, MAX_HELD_BATCHES + 1))
        if len(out) > MAX_HELD_BATCHES:
            raise ValueError(
                f"{name} has no len() and yields more than {MAX_HELD_BATCHES} batches (an "
                "endless iterator, such as itertools.cycle or a streaming loader?): it is read "
                "whole before the sweep; give a finite set, e.g. "
                "list(itertools.islice(loader, 4)) (a list or a sized loader is read whole)"
            ) from None
    else:
        out = list(data)
    if not out:
        raise ValueError(f"{name} must yield at least one batch, got an empty iterable")
    if warn_many and len(out) > MANY_HELD_BATCHES:
        shape = getattr(data, "shape", None)
        rows = (
            f" (one array of shape {tuple(shape)}: its rows are read as batches; for one "
            "batch of inputs and targets give [(x, y)])"
            if shape is not None and not isinstance(data, (list, tuple))
            else ""
        )
        warnings.warn(
            f"{name} holds {len(out)} batches{rows}, all kept and evaluated every eval_every "
            "steps of the sweep; a few are enough (e.g. list(itertools.islice(loader, 4)))",
            UserWarning,
            stacklevel=caller_level(),
        )
    return out
