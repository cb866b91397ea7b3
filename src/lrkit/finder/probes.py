"""Probe runs: an optional second stage after the sweep that measures where, below the edge
the sweep found, a task trains best.

The sweep's edge ``lr_min`` says where a short run stops making progress; how far below it
the best learning rate of a whole run lies varies from task to task by more than any feature
of the curve explains (``docs/finder.md``). A probe measures it: from the initial state
(weights, optimizer state, RNGs, batch order, all restored before each probe), train
``PROBE_STEPS`` steps at the constant learning rate ``lr_min * exp(o)`` for each offset ``o``
of ``PROBE_OFFSETS`` (2x apart, from 2x above the edge to 67x below it), then score the
model by its loss on the user's validation data. ``o*`` is the offset of the best probe,
refined by a parabola through it and its neighbours (:func:`best_offset`). The suggestions are
then scaled from ``lr_min * exp(PROBE_WEIGHT * o*)`` with coefficients fitted for that edge
(``_coefficients.PROBED_INTERCEPT``, ``PROBED_BUDGET_SLOPE``; ``benchmarks/zoo/fit_rule.py``).

A probe whose training loss turns non-finite or exceeds ``BLOWN`` times its first loss has
diverged (``(BLOWN - 1) * max(|first|, 1e-3)`` above a first loss below 1e-3 or below 0): its
score is ``inf``. The probes cost ``len(PROBE_OFFSETS) * PROBE_STEPS`` training
steps (480) and as many validation passes as there are probes: with the sweep, about 6.5 to 9
times a default sweep's wall time on the demo tasks (``benchmarks/finder_speed.py``).

The framework finders run the probes through :func:`run_probes` (``probe_data=`` of
``lrkit.torch.find_lr``, ``lrkit.keras.find_lr``, ``lrkit.optax.find_lr``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _validate as V

__all__ = [
    "BLOWN",
    "PROBE_OFFSETS",
    "PROBE_STEPS",
    "PROBE_WEIGHT",
    "Probes",
    "best_offset",
    "blown_above",
    "probe_lrs",
    "run_probes",
]

#: ln(probe LR / lr_min) of the probes, highest first (2x apart)
PROBE_OFFSETS: tuple[float, ...] = tuple(round(0.7 - 0.7 * k, 1) for k in range(8))
#: training steps of each probe
PROBE_STEPS = 60
#: the suggestions are scaled from lr_min * exp(PROBE_WEIGHT * best offset)
PROBE_WEIGHT = 0.5
#: a probe whose training loss exceeds this many times its first has diverged
BLOWN = 20.0


def probe_lrs(lr_min: float) -> tuple[float, ...]:
    """The probes' learning rates for an edge ``lr_min``, highest first."""
    return tuple(lr_min * math.exp(o) for o in PROBE_OFFSETS)


def best_offset(losses: Sequence[float], offsets: Sequence[float] = PROBE_OFFSETS) -> float:
    """The offset of the lowest finite probe loss, refined by the vertex of the parabola in
    ln(loss) through it and its two neighbours (when both are finite and the parabola opens
    upward; through the losses themselves when one of the three is not positive, e.g. a
    negative log-likelihood); when every probe diverged, the lowest offset."""
    y = np.asarray(losses, dtype=np.float64)
    if y.shape != (len(offsets),):
        raise ValueError(f"losses must hold one loss per offset ({len(offsets)}), got {y.shape}")
    ok = np.isfinite(y)
    if not ok.any():
        return float(min(offsets))
    j = int(np.argmin(np.where(ok, y, np.inf)))
    if 0 < j < len(y) - 1 and ok[j - 1] and ok[j + 1]:
        three = y[j - 1 : j + 2]
        y0, y1, y2 = np.log(three) if (three > 0).all() else three
        d = y0 - 2 * y1 + y2
        if d > 0:
            return float(offsets[j] + (offsets[j] - offsets[j - 1]) * (y0 - y2) / (2 * d))
    return float(offsets[j])


@dataclass(frozen=True)
class Probes:
    """The probes a finder ran: their learning rates (``lr_min * exp(o)``, highest first),
    their validation losses after ``steps`` steps (``inf``: diverged) and the sweep's edge
    ``lr_min`` they were placed around."""

    lr_min: float
    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    steps: int = PROBE_STEPS

    @property
    def offset(self) -> float:
        """``o*``: ln(best probe LR / lr_min), refined between probes (:func:`best_offset`)."""
        return best_offset(self.losses)

    @property
    def best_lr(self) -> float:
        """The learning rate of the best probe, refined: ``lr_min * exp(offset)``."""
        return self.lr_min * math.exp(self.offset)

    @property
    def edge(self) -> float:
        """The edge the suggestions are scaled from: ``lr_min * exp(PROBE_WEIGHT * offset)``."""
        return self.lr_min * math.exp(PROBE_WEIGHT * self.offset)

    @property
    def diverged(self) -> bool:
        """Whether every probe diverged."""
        return not any(math.isfinite(v) for v in self.losses)

    @classmethod
    def from_dict(cls, d: Any) -> Probes:
        """The probes of a :meth:`to_dict` summary (``FinderResult.to_dict()["probes"]``); a
        one-line ``ValueError`` when it is not one."""
        try:
            lrs = tuple(float(v) for v in d["lrs"])
            losses = tuple(math.inf if v is None else float(v) for v in d["losses"])
            probes = cls(lr_min=float(d["lr_min"]), lrs=lrs, losses=losses, steps=int(d["steps"]))
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(
                f"probes must be a dict of Probes.to_dict() (lr_min, lrs, losses, steps), got "
                f"{type(d).__name__}: {type(exc).__name__}: {exc}"
            ) from None
        if len(lrs) != len(PROBE_OFFSETS) or len(losses) != len(lrs):
            raise ValueError(
                f"probes must hold {len(PROBE_OFFSETS)} lrs and losses, got {len(lrs)} lrs and "
                f"{len(losses)} losses"
            )
        want = probe_lrs(probes.lr_min)
        if not all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(lrs, want)):
            raise ValueError(
                f"probes' lrs must be those placed around lr_min={probes.lr_min!r} "
                f"(lr_min * exp(offset) for the offsets {PROBE_OFFSETS}), got {list(lrs)}"
            )
        return probes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (a diverged probe's loss as ``None``); read back by
        :meth:`from_dict`."""
        return {
            "lr_min": self.lr_min,
            "lrs": list(self.lrs),
            "losses": [v if math.isfinite(v) else None for v in self.losses],
            "steps": self.steps,
            "offset": self.offset,
            "best_lr": self.best_lr,
            "edge": self.edge,
        }


def run_probes(
    lr_min: float,
    *,
    reset: Callable[[], None],
    step: Callable[[float], float],
    score: Callable[[], float],
    progress: bool = False,
) -> Probes:
    """Run the probes around the edge ``lr_min``: for each LR of :func:`probe_lrs`,
    ``reset()`` (back to the initial state), ``step(lr)`` ``PROBE_STEPS`` times (each returns
    the training loss of one optimizer step, as a sweep's ``step``) and ``score()`` (the
    validation loss). A probe that diverges stops early and scores ``inf``.
    ``progress=True`` shows a tqdm bar ("lrkit probes"). The caller restores the initial
    state afterwards."""
    if not (isinstance(lr_min, (int, float)) and math.isfinite(lr_min) and lr_min > 0):
        raise ValueError(f"lr_min must be a finite number > 0, got {V.fmt(lr_min)}")
    for name, fn in (("reset", reset), ("step", step), ("score", score)):
        if not callable(fn):
            raise TypeError(f"{name} must be a callable, got {type(fn).__name__}")
    progress = V.flag("progress", progress)
    lrs = probe_lrs(lr_min)
    losses: list[float] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(lrs) * PROBE_STEPS, desc="lrkit probes", unit="step", leave=False)
    try:
        for lr in lrs:
            reset()
            first: float | None = None
            blown = False
            for _ in range(PROBE_STEPS):
                v = _loss_of(step(lr))
                if not math.isfinite(v) or (first is not None and v > blown_above(first)):
                    blown = True
                    break
                first = v if first is None else first
            loss = math.inf if blown else _loss_of(score(), "score", "the validation loss")
            losses.append(loss if math.isfinite(loss) else math.inf)
            if bar is not None:
                bar.update(PROBE_STEPS)
                bar.set_postfix(lr=f"{lr:.1e}", val_loss=f"{losses[-1]:.4g}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    return Probes(lr_min=float(lr_min), lrs=lrs, losses=tuple(losses))


def blown_above(first: float) -> float:
    """The training loss above which a probe that started at ``first`` has diverged:
    ``BLOWN`` times a first loss of at least 1e-3; ``(BLOWN - 1) * max(|first|, 1e-3)`` above
    a smaller one or one below 0 (a negative log-likelihood): the bound moves with ``first``
    without a jump at 0 or at 1e-3."""
    return first + (BLOWN - 1) * max(abs(first), 1e-3)


def _loss_of(
    value: Any, name: str = "step", what: str = "the loss at lr", *, returned: bool = True
) -> float:
    """What a ``step(lr)`` (or ``score()``) returned, as a float, else a one-line ValueError
    naming it (``None``, a string, an array of several values); ``returned=False``: a value
    given to ``name`` (``Sweep.record``'s loss), not returned by it."""
    text_or_flag = isinstance(value, (str, bytes, bool, np.bool_))
    try:
        if text_or_flag:  # float("1.0") and float(True) would pass
            raise TypeError
        if getattr(value, "ndim", 0) and getattr(value, "size", None) == 1:
            value = value.reshape(())  # a one-element array (numpy, JAX), as a tensor reads
        return float(value)
    except (TypeError, ValueError):
        got = type(value).__name__ if value is None or isinstance(value, str) else V.fmt(value)
        verb = "return" if returned else "be"
        raise ValueError(f"{name} must {verb} {what} (a number), got {got}") from None
