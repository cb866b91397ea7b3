"""Annealing by feedback: controllers that turn a measured metric into an LR multiplier.

Framework-free (numpy + stdlib only). A controller composes with any schedule: the learning
rate at step ``t`` is ``controller.apply(schedule, t)``, which is ``schedule(t) * controller.scale``
unless the controller restarts the schedule (:class:`RestartOnPlateau`). Framework adapters
(``lrkit.torch.scheduler(optimizer, schedule, feedback=...)``) call :meth:`Feedback.apply` at every
step and :meth:`Feedback.update` whenever a metric is reported.

Controllers:

* :class:`ReduceOnPlateau` -- multiply the LR by ``factor`` when the metric stops improving
  (PyTorch's ``ReduceLROnPlateau`` semantics, sign-correct on negative metrics).
* :class:`RestartOnPlateau` -- warm restart: start the schedule again from step 0 on a plateau.
* :class:`DivergenceDetector` -- the decision half of a divergence guard: given the loss stream
  it says "ok", "restore" (and cuts the LR scale) or "give_up". The framework guards
  (``lrkit.torch.DivergenceGuard``, ``lrkit.keras.DivergenceGuard``) wrap one as their
  ``controller`` and keep the snapshots of weights and optimizer state.
* :class:`GuardBook` -- the other framework-free half of a divergence guard: which snapshot
  to restore (the last ``keep``, one taken every ``snapshot_every`` good checks, dropping one
  that diverged again at once after it was restored). Both framework guards use it.
* :class:`Multiplier` -- a scale set by code (``set_scale``), e.g. by a guard.
* :class:`Chain` (also ``a & b``) -- several controllers at once: the scales multiply, ``apply``
  nests, ``update`` feeds the metric to every member.

Every controller has ``state_dict()`` (plain JSON-able Python types) and ``load_state_dict()``;
a controller restored from a state dict continues exactly as the original would.
"""

from __future__ import annotations

import bisect
import copy
import functools
import inspect
import math
import sys
import warnings
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Literal, SupportsFloat, TypeAlias, TypedDict, TypeVar

from . import _renamed
from . import _validate as v
from ._runtime import caller_level

__all__ = [
    "DEFAULT_GUARD_FACTOR",
    "DETECTOR_HINTS",
    "PLATEAU_HINTS",
    "REPORT_HINTS",
    "Chain",
    "DetectorKwargs",
    "DivergenceDetector",
    "Feedback",
    "GuardBook",
    "Metric",
    "Multiplier",
    "PlateauKwargs",
    "ReduceOnPlateau",
    "RestartOnPlateau",
    "as_metric",
    "check_controllers",
    "claim_detector",
    "from_state_dict",
    "guard_detector",
    "guard_hint",
    "load_states",
    "members_of",
    "metric_mode",
    "refuse_beside_controller",
    "settings_differ",
    "warn_against_metric",
]

Mode = Literal["min", "max"]
ThresholdMode = Literal["rel", "abs"]


#: the names users of Keras' ``ReduceLROnPlateau`` and optax's ``reduce_on_plateau`` reach for,
#: and the plateau option meant (the hints of the adapters' unknown-option errors)
PLATEAU_HINTS = {
    "min_lr": "use min_scale, a fraction of the learning rate: min_scale=min_lr / lr",
    "min_delta": 'use threshold with threshold_mode="abs"',
    "epsilon": 'use threshold with threshold_mode="abs"',
    "rtol": 'use threshold, with threshold_mode="rel" (the default)',
    "atol": 'use threshold with threshold_mode="abs"',
    "eps": "every cut is applied, however small, as with PyTorch's eps=0",
}


#: the names users reach for to tell a metric reporter (the glues' ``ReportMetric``) which
#: metric to report, and the option meant
REPORT_HINTS = {
    "metric": "use monitor=, the name of the metric",
    "mode": "a controller's mode is its own: lrkit.feedback.ReduceOnPlateau(mode)",
}


#: the plateau options users reach for with a divergence detector (or a guard), and what it has
#: instead (the hints of the detector's and the guards' unknown-option errors)
DETECTOR_HINTS = {
    "patience": "a non-finite loss or a spike is acted on at once; max_restores caps the restores",
    "threshold": "a spike is a loss above spike_factor times the reference",
    "min_lr": "use min_scale, a fraction of the learning rate: min_scale=min_lr / lr",
}


class PlateauKwargs(TypedDict, total=False):
    """The plateau arguments after ``mode``, by keyword, as every plateau controller takes
    them (:class:`ReduceOnPlateau`, :class:`RestartOnPlateau`, ``lrkit.keras.ReduceOnPlateau``,
    ``lrkit.optax.reduce_on_plateau``); the adapters pass them on to :class:`ReduceOnPlateau`,
    whose signature holds the defaults and whose constructor validates them."""

    factor: float
    patience: int
    threshold: float
    threshold_mode: ThresholdMode
    cooldown: int
    min_scale: float


class DetectorKwargs(TypedDict, total=False):
    """The :class:`DivergenceDetector` arguments after ``factor``, by keyword, as both
    divergence guards take them (``lrkit.torch.DivergenceGuard``,
    ``lrkit.keras.DivergenceGuard``); the guards pass them on to :class:`DivergenceDetector`,
    whose signature holds the defaults and whose constructor validates them."""

    max_restores: int
    spike_factor: float | None
    window: int
    min_history: int
    min_scale: float
    quantile: float
    spike_floor: float


Action = Literal["ok", "restore", "give_up"]


#: torch's dtypes that hold no real number (``float()`` reads True as 1.0 and drops an
#: imaginary part)
_NOT_REAL = frozenset({"torch.bool", "torch.complex32", "torch.complex64", "torch.complex128"})


def load_states(
    controllers: Sequence[Feedback], states: Sequence[Any], *, name: str | None = None
) -> None:
    """``controllers[i].load_state_dict(states[i])`` for each ``i``, all or nothing: when one
    refuses its state, those loaded before it get their own states back, so a bad checkpoint
    leaves every controller as it was. A controller at several places (one shared by param
    groups) loads at its first only. With ``name``, a ``ValueError``/``TypeError`` names the
    entry refused (``"name[i]: ..."``)."""
    loaded: list[tuple[Feedback, Any]] = []
    for i, (c, st) in enumerate(zip(controllers, states)):
        if any(c is o for o, _ in loaded):
            continue
        before = c.state_dict()
        try:
            c.load_state_dict(st)
        except Exception as exc:
            for o, saved in reversed(loaded):
                o.load_state_dict(saved)
            if name is not None and isinstance(exc, (TypeError, ValueError)):
                raise v.prefixed(f"{name}[{i}]: ", exc) from None
            raise
        loaded.append((c, before))


def members_of(feedback: Any) -> list[Any]:
    """The controllers ``feedback`` holds, as the adapters take it: none for ``None``, a
    :class:`Chain`'s members, each of a per-param-group list (and their chains' members)."""
    items = feedback if isinstance(feedback, (list, tuple)) else [feedback]
    return [
        m for c in items if c is not None for m in (c.controllers if isinstance(c, Chain) else (c,))
    ]


def metric_mode(name: str) -> Mode | None:
    """The direction a metric's name tells: ``"min"`` for a loss (a name ending in ``loss``),
    ``"max"`` for an accuracy (``acc`` in the name, as Keras' ``mode="auto"`` reads it);
    ``None`` for any other name."""
    low = name.lower()
    if low.endswith("loss"):
        return "min"
    return "max" if "acc" in low else None


def warn_against_metric(
    who: str, arg: str, monitor: str, feedback: Any, mode: str, *, why: str = "", keep: str = ""
) -> bool:
    """A ``RuntimeWarning`` when a plateau controller that ``feedback`` holds (given as
    ``arg``: each member of a chain or of a per-group list) minimises ``monitor``, a metric
    to maximise (``mode``, known from ``why``), or the other way round: it would cut the
    learning rate while the metric improves. Returns whether it warned (once for all)."""
    for c in members_of(feedback):
        theirs = getattr(c, "mode", None)
        if theirs in ("min", "max") and theirs != mode:
            warnings.warn(
                f"{who}: {monitor!r} is a metric to {mode}imize{why} but the {arg} has "
                f"mode={theirs!r}: it would cut the learning rate while the metric improves; "
                f"build the controller with mode={mode!r}{keep}",
                RuntimeWarning,
                stacklevel=caller_level(),
            )
            return True
    return False


def check_controllers(feedback: Any, *, groups: int | None = None, owner: Any = None) -> None:
    """``feedback`` as the adapters take it: ``None``, a controller instance, or a list of
    them (``groups`` of them, one per param group, when ``groups`` is given). Anything else
    (a class, an object without the controller methods, a list of another length) is a
    one-line ``ValueError`` naming ``feedback`` or ``feedback[i]``; so is a live divergence
    guard's detector. ``owner``: the scheduler (or callback) taking ``feedback``, recorded
    as the holder of its divergence detectors, which no guard may then take while it lives."""
    if feedback is None:
        return
    if isinstance(feedback, (list, tuple)):
        if groups is not None and len(feedback) != groups:
            raise ValueError(
                f"feedback: a list needs one controller per param group ({groups}), "
                f"got {len(feedback)}"
            )
        items: list[tuple[int | None, Any]] = list(enumerate(feedback))
    else:
        items = [(None, feedback)]
    for i, fb in items:
        name = "feedback" if i is None else f"feedback[{i}]"
        if isinstance(fb, type):
            raise ValueError(
                f"{name} must be a controller instance, e.g. {fb.__name__}(...), got the "
                f"class {fb.__name__}"
            )
        for attr in ("apply", "update", "state_dict", "load_state_dict"):
            if not callable(getattr(fb, attr, None)):
                raise ValueError(
                    f"{name} must be an lrkit.feedback controller (with .{attr}()), "
                    f"got {type(fb).__name__}"
                )
        for member in members_of(fb):
            kind = _holder(_GUARDED, member, unless=None)
            if kind is not None:
                raise ValueError(
                    f"{name} holds the controller of a live {kind} (its "
                    "DivergenceDetector), which would count this scheduler's reports as its "
                    "checks and cut the LR twice: give the scheduler a controller of its own "
                    "(the guard joins an lrkit.torch scheduler through scheduler=)"
                )
            if owner is not None and isinstance(member, DivergenceDetector):
                _FED[member] = weakref.ref(owner)


#: What a controller reads as a metric (:func:`as_metric`): a number, a numpy scalar, or a
#: one-element numpy, JAX or torch array (each has ``__float__``).
Metric: TypeAlias = SupportsFloat


def as_metric(value: Any, *, name: str = "value") -> float:
    """``value`` as a float: a Python number, a numpy scalar or a one-element array of any
    shape (numpy, JAX or torch). A bool, of any type, a complex number, an array of more than
    one element (the error gives its shape) or anything else is a one-line ``ValueError``
    naming ``name``, the caller's parameter. Every controller reads the metrics and losses it
    is given through this function, and so do the framework guards."""
    if isinstance(value, (bool, str, bytes)):  # float() would read a string's digits
        raise ValueError(f"{name} must be a real number, got {v.fmt(value)}")
    dtype = getattr(value, "dtype", None)  # numpy, JAX and torch: a bool or complex dtype
    # numpy's (and JAX's) kinds that hold no real number: bools, complex numbers, strings,
    # bytes, dates and times (JAX's bfloat16 is "V"); an object array's element is judged
    # as itself, below
    kind = getattr(dtype, "kind", "")
    if dtype is not None and (kind in ("b", "c", "U", "S", "M", "m") or str(dtype) in _NOT_REAL):
        raise ValueError(f"{name} must be a real number, got {v.fmt(value)} (dtype {dtype})")
    shape = getattr(value, "shape", None)  # numpy, JAX and torch arrays (and numpy scalars)
    if dtype is not None and isinstance(shape, tuple) and len(shape) > 0:
        size = math.prod(shape)
        if size != 1:
            raise ValueError(
                f"{name} must be one value (a number or a one-element array), got an array of "
                f"shape {tuple(shape)}"
            )
        value = value.reshape(())  # a one-element array of any shape: its single value
    if kind == "O" and hasattr(value, "item"):  # its element: a number, a string...
        return as_metric(value.item(), name=name)
    if getattr(value, "requires_grad", False) and hasattr(value, "detach"):
        value = value.detach()  # a loss still in its graph (torch): its value, without a warning
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {v.fmt(value)}") from None
    except OverflowError:  # an int beyond float64
        raise ValueError(
            f"{name} must be a real number a float holds, got {v.digits(value)}"
        ) from None


def _step_arg(step: Any) -> int | None:
    if step is None:
        return None
    return v.integer("step", step, minimum=0)


class Feedback(ABC):
    """Base class of every controller.

    Subclasses implement :attr:`scale`, :meth:`update`, :meth:`state_dict` and
    :meth:`load_state_dict`; :meth:`apply` defaults to ``schedule(step) * scale``.
    """

    @property
    @abstractmethod
    def scale(self) -> float:
        """The current LR multiplier (1.0 at start)."""

    @abstractmethod
    def update(self, value: Metric, *, step: int | None = None) -> float:
        """Feed a measured metric (``step``: the training step it was measured at, if known).

        Returns the new :attr:`scale`.
        """

    def apply(self, schedule: Callable[[int], float], step: int) -> float:
        """The learning rate at ``step``: ``schedule(step) * scale`` by default."""
        return float(schedule(step)) * self.scale

    def schedule_step(self, step: Any) -> Any:
        """The step at which :meth:`apply` reads the schedule at training step ``step``: the
        step itself, unless the controller starts the schedule again
        (:class:`RestartOnPlateau`). The PyTorch scheduler reads its ``momentum=`` and
        ``hyperparams=`` schedules there, so they start again with the LR; a controller
        whose :meth:`apply` reads the schedule at another step overrides this too."""
        return step

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly, as plain JSON-able Python types."""

    def load_state_dict(
        self, state: Any = _renamed.UNSET, *, state_dict: Any = _renamed.UNSET
    ) -> None:
        """Restore a state produced by :meth:`state_dict` of the same controller type. A
        malformed state raises ``ValueError`` (naming a missing key) and leaves this controller
        as it was (its own state is put back). By keyword it is ``state=`` or, as PyTorch's
        ``load_state_dict`` methods (the schedulers' and the guards') name it, ``state_dict=``."""
        if state is _renamed.UNSET and state_dict is _renamed.UNSET:
            raise TypeError(
                f"{type(self).__name__}.load_state_dict() missing 1 required argument: 'state'"
            )
        if state is not _renamed.UNSET and state_dict is not _renamed.UNSET:
            raise TypeError(
                f"{type(self).__name__}.load_state_dict() got both state and state_dict (two "
                "names of one argument): pass one"
            )
        if state is _renamed.UNSET:
            state = state_dict
        saved = self.state_dict()
        try:
            self._load_state(state)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            self._load_state(saved)
            if isinstance(exc, OverflowError):  # an entry beyond what a float or int holds
                raise ValueError(
                    f"state must be a state_dict() of a {type(self).__name__}: {exc}"
                ) from None
            if isinstance(exc, KeyError):
                raise ValueError(
                    f"state is missing {exc.args[0]!r}: it must be a state_dict() of a "
                    f"{type(self).__name__}"
                ) from None
            if isinstance(exc, TypeError):
                raise ValueError(
                    f"state must be a state_dict() of a {type(self).__name__}: {exc}"
                ) from None
            raise

    def _load_state(self, state: Mapping[str, Any]) -> None:
        """Read ``state`` into this controller (:meth:`load_state_dict` puts the previous state
        back when it fails). A controller defined outside lrkit overrides this, or
        ``load_state_dict`` itself."""
        raise NotImplementedError(f"{type(self).__name__} cannot load a state")

    def __and__(self, other: Feedback) -> Chain:
        if not isinstance(other, Feedback):
            return NotImplemented
        return Chain(self, other)

    def _check_type(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping):
            raise ValueError(f"state must be a dict from state_dict(), got {type(state).__name__}")
        kind = state.get("type")
        if kind != type(self).__name__:
            hint = guard_hint(state)
            if hint and _ends_with_multiplier(self):  # the guard is here: the others differ
                hint = (
                    f": the checkpoint's controllers are {_described(state)}, this "
                    f"scheduler's {_described(self.state_dict())}: build it with the "
                    "feedback= the checkpoint was saved with"
                )
            raise ValueError(
                f"state['type'] must be {type(self).__name__!r} (a state_dict() of the same "
                f"controller type), got {v.fmt(kind)}{hint}"
            )


def refuse_beside_controller(given: Sequence[str]) -> None:
    """A ready ``controller`` holds its own settings: settings given beside it (``given``, their
    names) would be ignored, so they are a one-line ``ValueError`` instead."""
    if given:
        raise ValueError(
            f"controller= holds its own settings; pass {', '.join(given)} to the controller "
            "you build, or leave controller out"
        )


class _Default(float):
    """A default value that can be told from the same value passed explicitly (``is``)."""


#: the divergence guards' default ``factor``: an explicit ``factor=0.5`` beside a ready
#: controller is a setting the controller would ignore, the default is not
DEFAULT_GUARD_FACTOR: float = _Default(0.5)


#: each ready detector given to a guard -> that guard (weakly): a detector shared by two live
#: guards would count one's restores against the other's and cut both LRs
_GUARDED: weakref.WeakKeyDictionary[Any, weakref.ref[Any]] = weakref.WeakKeyDictionary()
#: each detector a scheduler's (or a callback's) ``feedback`` holds -> that scheduler (weakly):
#: a guard taking it would count the scheduler's reports as its checks and cut twice
_FED: weakref.WeakKeyDictionary[Any, weakref.ref[Any]] = weakref.WeakKeyDictionary()


def guard_detector(
    factor: float,
    controller: DivergenceDetector | None,
    detector: Mapping[str, Any],
    *,
    guard: Any,
) -> DivergenceDetector:
    """The :class:`DivergenceDetector` that ``guard`` (a divergence guard being built) acts
    through: ``controller``, a ready one (nothing given beside it: ``factor`` left at
    :data:`DEFAULT_GUARD_FACTOR`, no ``detector`` keywords; not the controller of another
    guard still alive), or one built from ``factor`` and ``detector``. The guard, once built,
    records it with :func:`claim_detector`."""
    if controller is None:
        return DivergenceDetector(0.5 if factor is DEFAULT_GUARD_FACTOR else factor, **detector)
    if not isinstance(controller, DivergenceDetector):
        raise ValueError(
            f"controller must be a lrkit.feedback.DivergenceDetector, got {v.fmt(controller)}"
        )
    given = [] if factor is DEFAULT_GUARD_FACTOR else ["factor"]  # factor=0.5 given too
    refuse_beside_controller(sorted([*detector, *given]))
    kind = _holder(_FED, controller, unless=None, holding=True)
    if kind is not None:
        raise ValueError(
            f"controller is in the feedback of a live {kind}, which would count its reports "
            "as the guard's checks and cut the LR twice: give the guard a detector of its "
            "own and leave it out of the scheduler's feedback"
        )
    kind = _holder(_GUARDED, controller, unless=guard)
    if kind is not None:
        raise ValueError(
            f"controller is the controller of another {kind} (a detector "
            "counts the restores and cuts of one guard): build one for each guard, or give "
            "this one a copy (copy.deepcopy(controller)) or a detector loaded from its "
            "state_dict()"
        )
    return controller


def claim_detector(detector: DivergenceDetector, guard: Any, *, if_free: bool = False) -> None:
    """Record that ``guard``, now built, acts through ``detector`` (see
    :func:`guard_detector`, which refuses it to another guard while this one is alive).
    ``if_free``: only when no other live guard holds it (a shallow copy of a guard, which
    shares its detector, leaves the claim with the original)."""
    if if_free and _holder(_GUARDED, detector, unless=None) is not None:
        return
    _GUARDED[detector] = weakref.ref(guard)


def _holder(
    registry: weakref.WeakKeyDictionary[Any, Any], key: Any, *, unless: Any, holding: bool = False
) -> str | None:
    """The type name of the live object ``registry`` records for ``key`` (a guard, a
    scheduler), other than ``unless``; ``None`` when there is none, or, with ``holding``,
    when its ``feedback`` no longer holds ``key`` (a scheduler given another controller
    since). Only the name is kept, so an error raised with it keeps no guard or scheduler
    alive."""
    try:
        ref = registry.get(key)
    except TypeError:  # not weakly referable (not a detector): nothing recorded
        return None
    holder = None if ref is None else ref()
    if holder is None or holder is unless:
        return None
    if holding and not any(m is key for m in members_of(getattr(holder, "feedback", None))):
        return None
    return type(holder).__name__


def guard_hint(state: Any) -> str:
    """``": it ends with a Multiplier; ..."``: the hint for a controller state that a
    divergence guard's ``Multiplier`` ends (alone, or last in a chain), loaded where there is
    none: the guard had joined the scheduler that saved it (``""`` for any other state)."""
    last = state
    if isinstance(state, Mapping) and state.get("type") == "Chain":
        subs = state.get("controllers")
        last = subs[-1] if isinstance(subs, (list, tuple)) and subs else None
    if not (isinstance(last, Mapping) and last.get("type") == "Multiplier"):
        return ""
    return (
        ": it ends with a Multiplier; if that is a divergence guard's, the checkpoint was saved "
        "with the guard: add the guard before loading it (build the DivergenceGuard before "
        "load_state_dict)"
    )


def _ends_with_multiplier(controller: Feedback) -> bool:
    """Whether ``controller`` is a :class:`Multiplier` or a chain that ends with one (where a
    divergence guard puts its own)."""
    last = controller.controllers[-1] if isinstance(controller, Chain) else controller
    return isinstance(last, Multiplier)


def _described(state: Any) -> str:
    """The controller types of a state: ``"Chain(ReduceOnPlateau, Multiplier)"``."""
    if not isinstance(state, Mapping):
        return type(state).__name__
    subs = state.get("controllers")
    if state.get("type") == "Chain" and isinstance(subs, (list, tuple)):
        return f"Chain({', '.join(_described(c) for c in subs)})"
    return str(state.get("type"))


def settings_differ(controller: Feedback, state: Any) -> list[str]:
    """The settings (the arguments it is built with: ``factor``, ``patience``, ``mode``, ...)
    in which a controller state (a ``state_dict()``) differs from ``controller``: ``[]`` when
    it is a state of the same kind of controller built alike (its progress, ``scale``
    included, aside), ``["type"]`` for another kind; a chain's members are compared in order
    (``"1.patience"``)."""
    if not isinstance(state, Mapping) or state.get("type") != type(controller).__name__:
        return ["type"]
    if isinstance(controller, Chain):
        subs = state.get("controllers")
        if not isinstance(subs, (list, tuple)) or len(subs) != len(controller.controllers):
            return ["controllers"]
        return [
            f"{i}.{name}"
            for i, (c, sub) in enumerate(zip(controller.controllers, subs))
            for name in settings_differ(c, sub)
        ]
    mine = controller.state_dict()
    names = (_init_keywords(type(controller)) or frozenset()) - {"scale"}
    return sorted(n for n in names if n in mine and n in state and mine[n] != state[n])


class _Plateau:
    """Plateau detection with exactly the bookkeeping of ``torch.optim.lr_scheduler.
    ReduceLROnPlateau``, but a sign-correct relative threshold and non-finite values ignored."""

    def __init__(
        self,
        mode: str,
        patience: Any,
        threshold: Any,
        threshold_mode: str,
        cooldown: Any,
    ) -> None:
        if isinstance(mode, (int, float)) and not isinstance(mode, bool):  # factor meant?
            raise ValueError(
                f"mode must be one of 'min', 'max', got {v.fmt(mode)} (the first argument is "
                f"mode, as in PyTorch's ReduceLROnPlateau after its optimizer; here pass "
                f"factor={mode!r})"
            )
        self.mode = v.choice("mode", mode, ("min", "max"))
        self.patience = v.integer("patience", patience, minimum=0)
        self.threshold = v.non_negative("threshold", threshold)
        self.threshold_mode = v.choice("threshold_mode", threshold_mode, ("rel", "abs"))
        if self.mode == "min" and self.threshold_mode == "rel" and self.threshold >= 1.0:
            raise ValueError(
                f"threshold must be < 1 with mode='min' and threshold_mode='rel' (a positive "
                f"metric would have to fall below best * (1 - threshold) <= 0 to improve), got "
                f"{threshold!r}; for a margin in the metric's units use threshold_mode='abs'"
            )
        self.cooldown = v.integer("cooldown", cooldown, minimum=0)
        self.best: float | None = None
        self.num_bad = 0
        self.cooldown_counter = 0

    def is_better(self, a: float, best: float | None) -> bool:
        if not math.isfinite(a):
            return False
        if best is None:
            return True
        if self.mode == "max":  # the "min" test on the negated metric (negation is exact)
            a, best = -a, -best
        th = self.threshold
        if self.threshold_mode == "abs":
            return a < best - th
        # best * (1 - th) on best >= 0 (bit-identical to PyTorch), best - th*|best| below 0
        return a < (best * (1.0 - th) if best >= 0 else best * (1.0 + th))

    def observe(self, value: float, owner: str) -> bool:
        """Record ``value``; True when a plateau is detected (patience exhausted)."""
        if not math.isfinite(value):
            warnings.warn(
                f"{owner}: metric is {value!r}; counted as no improvement",
                RuntimeWarning,
                stacklevel=caller_level(),
            )
        if self.is_better(value, self.best):
            self.best = value
            self.num_bad = 0
        else:
            self.num_bad += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad = 0  # bad steps during cooldown are ignored
        if self.num_bad > self.patience:
            self.cooldown_counter = self.cooldown
            self.num_bad = 0
            return True
        return False

    def config(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "patience": self.patience,
            "threshold": self.threshold,
            "threshold_mode": self.threshold_mode,
            "cooldown": self.cooldown,
        }

    def state(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "num_bad": self.num_bad,
            "cooldown_counter": self.cooldown_counter,
        }

    def load(self, state: Mapping[str, Any]) -> None:
        keys = ("mode", "patience", "threshold", "threshold_mode", "cooldown")
        try:
            self.__init__(*(state[k] for k in keys))  # type: ignore[misc]
        except ValueError as exc:  # the error names the key of the state dict
            msg = str(exc)
            for k in sorted(keys, key=len, reverse=True):
                if msg.startswith(k + " "):
                    msg = f"state[{k!r}]{msg[len(k) :]}"
                    break
            raise ValueError(msg) from None
        best = state["best"]
        self.best = None if best is None else v.number("state['best']", best)
        self.num_bad = v.integer("state['num_bad']", state["num_bad"])
        self.cooldown_counter = v.integer("state['cooldown_counter']", state["cooldown_counter"])


@functools.cache
def _init_keywords(cls: type) -> frozenset[str] | None:
    """The keyword names ``cls.__init__`` accepts: its own, and where it takes ``**kwargs``
    (a subclass passing them on), those of the ``__init__`` of the classes it inherits from,
    up to one without ``**kwargs``; ``None`` when every one takes any keyword."""
    # the __init__s' own: the class's signature is __new__'s on Python < 3.11
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        named, more = v.keywords(init)
        names.update(named)
        if not more:
            return frozenset(names)
    return None


def _own_copy(self: Any) -> Any:
    """``copy.copy`` of a controller: a controller of its own, whose counters and loss window
    are not shared with the original's (stepping one leaves the other as it was)."""
    return copy.deepcopy(self)


def _optimizer_given(opt: Any) -> ValueError:
    """The error for a PyTorch optimizer given as a controller's first argument (PyTorch's
    ``ReduceLROnPlateau(optimizer, ...)``): it goes to the scheduler."""
    return ValueError(
        f"mode must be one of 'min', 'max', got a {type(opt).__name__} optimizer (a "
        "controller takes no optimizer, as PyTorch's ReduceLROnPlateau does: give it to "
        "the scheduler, lrkit.torch.scheduler(opt, schedule, "
        "feedback=ReduceOnPlateau(...)))"
    )


class _Hinted(Feedback):
    """A controller whose unknown keyword (another library's name for one of its options:
    ``min_lr``, ``min_delta``, a plateau's ``patience`` given to a divergence detector) gets
    its options and a pointer to the one meant (``_HINTS``), where Python's own error only
    calls it unexpected. The check is in ``__new__``: each subclass's ``__init__`` keeps its
    own signature."""

    _HINTS: Mapping[str, str] = {}

    __copy__ = _own_copy

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        names = _init_keywords(cls)
        if names is not None and not kwargs.keys() <= names:
            v.options(cls.__name__, kwargs, sorted(names), cls._HINTS)
        params = [
            p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"
        ]
        P = inspect.Parameter
        if all(p.kind is not P.VAR_POSITIONAL for p in params):
            positional = [
                p.name for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)
            ]
            if len(args) > len(positional):  # PyTorch's ReduceLROnPlateau(opt, "min", 0.5)
                named = [p.name for p in params if p.kind is not P.VAR_KEYWORD]
                message = v.too_many_positional(cls.__name__, positional, named, len(args))
                raise TypeError(message)
        if params and params[0].name == "mode":  # PyTorch's ReduceLROnPlateau(optimizer, ...),
            mode = args[0] if args else kwargs.get("mode")  # also with mode= given
            if hasattr(mode, "param_groups"):
                raise _optimizer_given(mode)
        return super().__new__(cls)


class _OnPlateau(_Hinted):
    """What :class:`ReduceOnPlateau` and :class:`RestartOnPlateau` share: the plateau detector,
    ``factor`` (validated on ``[0, 1)``, or ``[0, 1]`` when :attr:`_FACTOR_MAY_BE_ONE`),
    ``min_scale``, the scale, and the common part of their state dicts."""

    _FACTOR_MAY_BE_ONE = False
    _HINTS = PLATEAU_HINTS

    def _setup(
        self,
        mode: str,
        patience: Any,
        threshold: Any,
        threshold_mode: str,
        cooldown: Any,
        factor: Any,
        min_scale: Any,
    ) -> None:
        self.factor = v.in_range("factor", factor, 0.0, 1.0, high_open=not self._FACTOR_MAY_BE_ONE)
        self.min_scale = v.non_negative("min_scale", min_scale)
        self._plateau = _Plateau(mode, patience, threshold, threshold_mode, cooldown)
        self._scale = 1.0

    @property
    def mode(self) -> str:
        return self._plateau.mode

    @property
    def patience(self) -> int:
        return self._plateau.patience

    @property
    def threshold(self) -> float:
        return self._plateau.threshold

    @property
    def threshold_mode(self) -> str:
        return self._plateau.threshold_mode

    @property
    def cooldown(self) -> int:
        return self._plateau.cooldown

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def best(self) -> float | None:
        """The best metric seen so far (None before the first finite one)."""
        return self._plateau.best

    @property
    def num_bad_updates(self) -> int:
        """Consecutive non-improving updates counted towards ``patience``."""
        return self._plateau.num_bad

    @property
    def in_cooldown(self) -> bool:
        return self._plateau.cooldown_counter > 0

    def reset_plateau(self) -> None:
        """Forget the best metric, the count of updates without improvement and the cooldown,
        keeping the scale (the cuts made so far): a new watch for a plateau, as Keras'
        ``ReduceLROnPlateau`` begins every ``fit()``."""
        self._plateau.best = None
        self._plateau.num_bad = 0
        self._plateau.cooldown_counter = 0

    def _observe(self, value: Any, step: Any) -> tuple[bool, int | None]:
        """Validate ``value``/``step`` and feed the detector: (plateau detected, step)."""
        x = as_metric(value)
        at = _step_arg(step)
        return self._plateau.observe(x, type(self).__name__), at

    def _cut(self) -> float:
        """The scale after one more cut: ``scale * factor``, never below ``min_scale``, and
        never above the scale now (a ``min_scale`` above it is no reason to raise the LR)."""
        return min(self._scale, max(self._scale * self.factor, self.min_scale))

    def _common_state(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "factor": self.factor,
            "min_scale": self.min_scale,
            **self._plateau.config(),
            **self._plateau.state(),
            "scale": self._scale,
        }

    def _load_common(self, state: Mapping[str, Any]) -> None:
        self._check_type(state)
        high_open = not self._FACTOR_MAY_BE_ONE
        self.factor = v.in_range("state['factor']", state["factor"], 0.0, 1.0, high_open=high_open)
        self.min_scale = v.non_negative("state['min_scale']", state["min_scale"])
        self._plateau.load(state)
        self._scale = v.non_negative("state['scale']", state["scale"])

    def __repr__(self) -> str:
        cfg = self._plateau.config()
        args = ", ".join(f"{k}={cfg[k]!r}" for k in cfg)
        return (
            f"{type(self).__name__}({args}, factor={self.factor!r}, "
            f"min_scale={self.min_scale!r}; scale={self._scale!r})"
        )


class ReduceOnPlateau(_OnPlateau):
    """Multiply the LR by ``factor`` when a metric has not improved for ``patience`` updates.

    Semantics (identical to PyTorch's ``ReduceLROnPlateau`` on positive metrics):

    * ``update(value)`` is an improvement when, for ``mode="min"``, ``value < best*(1-threshold)``
      (``threshold_mode="rel"``) or ``value < best - threshold`` (``"abs"``); mirrored for
      ``"max"``. For a negative ``best`` the relative test is ``value < best - threshold*|best|``
      (PyTorch and optax use ``best*(1-threshold)``, which on negative metrics accepts slightly
      *worse* values as improvements, so a constant negative metric never triggers a reduction).
      At ``best == 0`` a relative threshold is 0: any strict improvement counts.
    * A non-improving update increments a counter; the reduction happens on the
      ``patience + 1``-th consecutive non-improving update (``num_bad > patience``), after which
      the counter restarts. ``patience=0`` reduces on every non-improving update.
    * After a reduction, the next ``cooldown`` updates do not count as bad.
    * The scale never goes below ``min_scale``.
    * NaN/inf metrics (and ``-inf``) count as no improvement and emit a ``RuntimeWarning``.

    Other libraries' timing, and how to reproduce it here (tested against each):

    * Keras' ``ReduceLROnPlateau(patience=P, cooldown=C, min_delta=d)`` reduces on the
      ``P``-th bad epoch (``P=0`` acts as 1) and skips ``C - 1`` epochs after a cut:
      ``patience=max(P, 1) - 1, cooldown=max(C - 1, 0), threshold=d, threshold_mode="abs"``.
    * optax's ``contrib.reduce_on_plateau(patience=P, cooldown=C, rtol=r, atol=a)`` reduces on
      the ``P``-th bad value (one update earlier than PyTorch) and skips ``C`` values after a
      cut: ``patience=P - 1, cooldown=C`` with ``threshold=r`` (``"rel"``) or ``threshold=a``
      (``"abs"``).
    * fastai's reduces after ``patience`` bad epochs, divides by ``factor`` (default 10), uses an
      absolute ``min_delta`` and has no cooldown.

    A different floor per param group (PyTorch's ``min_lr=[...]``): one controller per group,
    ``lrkit.torch.scheduler(opt, s, feedback=[ReduceOnPlateau(min_scale=min_lr_g / lr_g), ...])``.
    """

    def __init__(
        self,
        mode: Mode = "min",
        *,
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: ThresholdMode = "rel",
        cooldown: int = 0,
        min_scale: float = 0.0,
    ) -> None:
        self._setup(mode, patience, threshold, threshold_mode, cooldown, factor, min_scale)
        self.num_updates = 0
        self.reductions: list[int] = []

    @_renamed.keyword_only(2)
    def update(self, value: Metric, *, step: int | None = None) -> float:
        """Feed a metric; returns the current LR multiplier."""
        plateau, at = self._observe(value, step)
        self.num_updates += 1
        if plateau:
            new = self._cut()
            if new < self._scale:
                self._scale = new
                self.reductions.append(self.num_updates if at is None else at)
        return self._scale

    def state_dict(self) -> dict[str, Any]:
        return {
            **self._common_state(),
            "num_updates": self.num_updates,
            "reductions": list(self.reductions),
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self._load_common(state)
        self.num_updates = v.integer("state['num_updates']", state["num_updates"])
        self.reductions = [
            v.integer(f"state['reductions'][{i}]", r) for i, r in enumerate(state["reductions"])
        ]


class RestartOnPlateau(_OnPlateau):
    """Warm restart on plateau: when the metric stops improving, start the schedule again.

    After a plateau (same detection as :class:`ReduceOnPlateau`) at step ``r``,
    ``apply(schedule, t) = schedule(t - r) * scale``, so a decaying schedule (cosine, exponential)
    jumps back to its peak. Each restart multiplies ``scale`` by ``factor`` (1.0: same peak every
    time; 0.5: half the previous peak), never below ``min_scale``. ``max_restarts`` caps the number
    of restarts (None: unlimited).

    Pass the training step to :meth:`update` (the PyTorch adapter does); without it the restart
    happens at the last step seen by :meth:`apply`.
    """

    _FACTOR_MAY_BE_ONE = True

    def __init__(
        self,
        mode: Mode = "min",
        *,
        factor: float = 1.0,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: ThresholdMode = "rel",
        cooldown: int = 0,
        min_scale: float = 0.0,
        max_restarts: int | None = None,
    ) -> None:
        self._setup(mode, patience, threshold, threshold_mode, cooldown, factor, min_scale)
        self.max_restarts = (
            None if max_restarts is None else v.integer("max_restarts", max_restarts, 0)
        )
        self.restart_step = 0
        self.restarts: list[int] = []
        self._last_step = 0

    def apply(self, schedule: Callable[[int], float], step: int) -> float:
        self._last_step = int(step)  # a restart starts the schedule again at a whole step
        return float(schedule(max(0, step - self.restart_step))) * self._scale

    def schedule_step(self, step: Any) -> Any:
        return max(0, step - self.restart_step)

    @_renamed.keyword_only(2)
    def update(self, value: Metric, *, step: int | None = None) -> float:
        plateau, at = self._observe(value, step)
        capped = self.max_restarts is not None and len(self.restarts) >= self.max_restarts
        if plateau and not capped:
            at = self._last_step if at is None else at
            self.restart_step = at
            self.restarts.append(at)
            self._scale = self._cut()
            self._plateau.best = None  # a restart raises the LR: measure improvement afresh
        return self._scale

    def state_dict(self) -> dict[str, Any]:
        return {
            **self._common_state(),
            "max_restarts": self.max_restarts,
            "restart_step": self.restart_step,
            "restarts": list(self.restarts),
            "last_step": self._last_step,
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self._load_common(state)
        mr = state["max_restarts"]
        self.max_restarts = None if mr is None else v.integer("state['max_restarts']", mr)
        self.restart_step = v.integer("state['restart_step']", state["restart_step"])
        self.restarts = [
            v.integer(f"state['restarts'][{i}]", r) for i, r in enumerate(state["restarts"])
        ]
        self._last_step = v.integer("state['last_step']", state["last_step"])


class Multiplier(Feedback):
    """A scale set by code, not by metrics: ``update`` ignores its value.

    ``set_scale(s)`` / ``scale *= ...`` via :meth:`multiply`. Useful to plug an external
    decision (a divergence guard, a manual override) into a scheduler's feedback chain.
    """

    def __init__(self, scale: float = 1.0) -> None:
        self._scale = v.non_negative("scale", scale)

    @property
    def scale(self) -> float:
        return self._scale

    def set_scale(self, scale: float) -> None:
        """Set :attr:`scale` to ``scale`` (a finite number >= 0, else ``ValueError``)."""
        self._scale = v.non_negative("scale", scale)

    def multiply(self, factor: float) -> float:
        """Multiply :attr:`scale` by ``factor`` (a finite number >= 0, else ``ValueError``);
        returns the new scale, which must stay finite (a state that resumes exactly)."""
        scale = self._scale * v.non_negative("factor", factor)
        if not math.isfinite(scale):
            raise ValueError(
                f"factor {factor!r} would make scale {self._scale!r} x {factor!r} = {scale}: "
                "scale must stay a finite number"
            )
        self._scale = scale
        return self._scale

    @_renamed.keyword_only(2)
    def update(self, value: Metric, *, step: int | None = None) -> float:
        return self._scale

    def state_dict(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "scale": self._scale}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self._scale!r})"

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self._check_type(state)
        self._scale = v.non_negative("state['scale']", state["scale"])


class DivergenceDetector(_Hinted):
    """Decide, from a stream of training losses, whether training has diverged.

    :meth:`check` returns

    * ``"ok"``: the loss is finite and not a spike; it joins the reference window;
    * ``"restore"``: the loss is NaN/inf, or a spike (``loss > spike_factor * reference`` for a
      positive reference). The reference is the ``quantile`` (default 0.9: robust to a few
      outliers, and not fooled by batch-to-batch noise once the loss is near 0, as a median
      would be) of the last ``window`` ok losses once ``min_history`` of them were seen, and
      before that the largest ok loss so far (usually the initial loss). The caller should
      restore its last good snapshot; :attr:`scale` is multiplied by ``factor`` (never below
      ``min_scale``);
    * ``"give_up"``: a divergence after ``max_restores`` restores already happened. The caller
      should restore its last good snapshot and stop (``lrkit.torch.DivergenceGuard`` raises).

    For a negative reference a spike is ``loss > ref + (spike_factor - 1) * |ref|``; for a zero
    reference only non-finite losses count. A spike must also lie above ``spike_floor`` times
    the largest ok loss seen (the untrained model's, usually): a model that has driven its loss
    to 1e-6, where batch losses differ by factors of 10, does not diverge when a batch reads
    1e-5. ``spike_factor=None`` disables spike detection.
    The quantile is ``numpy.quantile``'s default (linear interpolation), bit for bit, kept
    up to date in a sorted window (a few microseconds per check).

    As a :class:`Feedback`, ``update(loss)`` is ``check(loss)`` and returns :attr:`scale`, so the
    cuts compose with a schedule. The framework guards (``lrkit.torch.DivergenceGuard``,
    ``lrkit.keras.DivergenceGuard``) hold one as their ``controller`` and keep the snapshots of
    weights and optimizer state; this class holds no framework objects.
    """

    _HINTS = DETECTOR_HINTS

    def __init__(
        self,
        factor: float = 0.5,
        *,
        max_restores: int = 3,
        spike_factor: float | None = 10.0,
        window: int = 50,
        min_history: int = 10,
        min_scale: float = 0.0,
        quantile: float = 0.9,
        spike_floor: float = 0.01,
    ) -> None:
        # 0 would stop training for good at the first restore (an LR of 0 ever after)
        self.factor = v.in_range("factor", factor, 0.0, 1.0, low_open=True, high_open=True)
        self.spike_floor = v.in_range("spike_floor", spike_floor, 0.0, 1.0)
        self.quantile = v.in_range("quantile", quantile, 0.0, 1.0)
        self.max_restores = v.integer("max_restores", max_restores, minimum=0)
        self.spike_factor = (
            None
            if spike_factor is None
            else v.in_range("spike_factor", spike_factor, 1.0, math.inf, low_open=True)
        )
        self.window = v.integer("window", window, minimum=1)
        self.min_history = v.integer("min_history", min_history, minimum=1)
        if self.min_history > self.window:
            raise ValueError(
                f"min_history must be <= window ({self.window}), got {self.min_history}"
            )
        self.min_scale = v.non_negative("min_scale", min_scale)
        self._history: deque[float] = deque()
        self._sorted: list[float] = []  # the same losses, sorted (for the quantile)
        self._peak = -math.inf  # the largest ok loss seen
        self._scale = 1.0
        self.restores = 0
        self.num_checks = 0
        self.events: list[dict[str, Any]] = []
        self.last_action: Action = "ok"

    @property
    def scale(self) -> float:
        return self._scale

    def _push(self, x: float) -> None:
        hist, srt = self._history, self._sorted
        if len(hist) == self.window:
            old = hist.popleft()
            del srt[bisect.bisect_left(srt, old)]
        hist.append(x)
        bisect.insort(srt, x)
        if x > self._peak:
            self._peak = x

    @property
    def reference(self) -> float | None:
        """The ``quantile`` of the recent ok losses (the largest one while fewer than
        ``min_history`` were seen; None before the first)."""
        srt = self._sorted
        n = len(srt)
        if n == 0:
            return None
        if n < self.min_history:
            return srt[-1]
        # numpy.quantile(method="linear"), the same float operations in the same order
        vi = (n - 1) * self.quantile
        if vi >= n - 1:
            return srt[-1]
        lo = math.floor(vi)
        t = vi - lo
        a, b = srt[lo], srt[lo + 1]
        d = b - a
        return b - d * (1 - t) if t >= 0.5 else a + d * t

    def is_divergent(self, loss: float) -> bool:
        """True when ``loss`` is non-finite or a spike relative to :attr:`reference`."""
        x = as_metric(loss, name="loss")
        if not math.isfinite(x):
            return True
        if self.spike_factor is None:
            return False
        ref = self.reference
        if ref is None or ref == 0:
            return False
        if self._peak > 0 and x <= self.spike_floor * self._peak:
            return False
        return x > ref + (self.spike_factor - 1.0) * abs(ref)

    @_renamed.keyword_only(2)
    def check(self, loss: Metric, *, step: int | None = None) -> Action:
        """Classify ``loss`` (see the class docstring) and update the state accordingly."""
        x = loss if type(loss) is float else as_metric(loss, name="loss")
        if step is not None:
            step = _step_arg(step)
        self.num_checks += 1
        if not self.is_divergent(x):
            self._push(x)
            self.last_action = "ok"
            return "ok"
        at = self.num_checks if step is None else step
        ref = self.reference
        if self.restores >= self.max_restores:
            self.last_action = "give_up"
            self.events.append({"step": at, "loss": _jsonable(x), "action": "give_up"})
            return "give_up"
        self.restores += 1
        self._scale = min(self._scale, max(self._scale * self.factor, self.min_scale))
        self.events.append(
            {
                "step": at,
                "loss": _jsonable(x),
                "reference": ref,
                "action": "restore",
                "scale": self._scale,
            }
        )
        self.last_action = "restore"
        return "restore"

    @_renamed.keyword_only(2)
    def update(self, value: Metric, *, step: int | None = None) -> float:
        self.check(value, step=step)
        return self._scale

    def state_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "factor": self.factor,
            "max_restores": self.max_restores,
            "spike_factor": self.spike_factor,
            "window": self.window,
            "min_history": self.min_history,
            "min_scale": self.min_scale,
            "quantile": self.quantile,
            "spike_floor": self.spike_floor,
            "peak": None if self._peak == -math.inf else self._peak,  # the largest ok loss
            "history": list(self._history),
            "scale": self._scale,
            "restores": self.restores,
            "num_checks": self.num_checks,
            "events": [dict(e) for e in self.events],
            "last_action": self.last_action,
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        if isinstance(state, Mapping) and state.get("type") == "DivergenceGuard":
            state = {**state, "type": type(self).__name__}  # saved under the former name
        self._check_type(state)
        self.__init__(  # type: ignore[misc]
            factor=state["factor"],
            max_restores=state["max_restores"],
            spike_factor=state["spike_factor"],
            window=state["window"],
            min_history=state["min_history"],
            min_scale=state["min_scale"],
            quantile=state.get("quantile", 0.5),
            spike_floor=state.get("spike_floor", 0.0),  # before the floor: none
        )
        for i, x in enumerate(state["history"]):  # good losses: finite numbers
            self._push(v.number(f"state['history'][{i}]", x))
        if state.get("peak") is not None:
            self._peak = max(self._peak, v.number("state['peak']", state["peak"]))
        self._scale = v.non_negative("state['scale']", state["scale"])
        self.restores = v.integer("state['restores']", state["restores"])
        self.num_checks = v.integer("state['num_checks']", state["num_checks"])
        self.events = [dict(e) for e in state["events"]]
        self.last_action = v.choice(  # type: ignore[assignment]
            "state['last_action']", state["last_action"], ("ok", "restore", "give_up")
        )


Snap = TypeVar("Snap")


class GuardBook(Generic[Snap]):
    """The framework-free bookkeeping of a divergence guard: its :class:`DivergenceDetector`
    (``controller``) and which of its snapshots to restore.

    The guard makes the snapshots (copies of weights and optimizer state, of any type) and
    hands them to :meth:`add`; the book keeps the last ``keep`` of them, counts the good checks
    since the last one was taken (:meth:`due` says when the next is due: every
    ``snapshot_every`` good checks) and, after a divergence, names the one to restore
    (:meth:`to_restore`): the newest, unless the state restored last time diverged again at
    once -- a bad state that passed for good, e.g. a blow-up before spike detection was armed --
    which is then dropped for the next older one. ``lrkit.torch.DivergenceGuard`` and
    ``lrkit.keras.DivergenceGuard`` each hold one.
    """

    def __init__(
        self, controller: DivergenceDetector, *, snapshot_every: int = 50, keep: int = 2
    ) -> None:
        if not isinstance(controller, DivergenceDetector):
            raise ValueError(
                f"controller must be a lrkit.feedback.DivergenceDetector, got {v.fmt(controller)}"
            )
        self.controller = controller
        self.snapshot_every = v.integer("snapshot_every", snapshot_every, 1)
        self.keep = v.integer("keep", keep, 1, sys.maxsize)  # (a deque's longest)
        self.snapshots: deque[Snap] = deque(maxlen=self.keep)
        #: good checks since the last snapshot was taken
        self.good = 0
        self.last_ok = True

    @_renamed.keyword_only(2)
    def check(self, loss: Any, *, step: int | None = None) -> Action:
        """The controller's :meth:`DivergenceDetector.check`, counting the good checks."""
        action = self.controller.check(loss, step=step)
        if action == "ok":
            self.last_ok = True
            self.good += 1
        return action

    def due(self) -> bool:
        """True when ``snapshot_every`` good checks have passed since the last snapshot was
        taken; the count then starts again (take the snapshot now)."""
        if self.good >= self.snapshot_every:
            self.good = 0
            return True
        return False

    def add(self, snapshot: Snap) -> None:
        """Keep ``snapshot`` as the newest restorable state (the oldest beyond ``keep`` goes).
        It is restored at the next divergence, also one right after a restore: the state
        restored then is no longer the newest, so it is not the one to drop."""
        self.snapshots.append(snapshot)
        self.last_ok = True

    def to_restore(self, *, again: bool = False) -> Snap:
        """The snapshot to restore after a divergence. When the state restored last time
        diverged at once it is dropped first (while an older one is kept); ``again=True``
        restores the same one once more (no check in between)."""
        if not again and not self.last_ok and len(self.snapshots) > 1:
            self.snapshots.pop()
        self.last_ok = False
        return self.snapshots[-1]

    def clear(self) -> None:
        """Forget every snapshot and count (a new training run)."""
        self.snapshots.clear()
        self.good = 0
        self.last_ok = True


def _jsonable(x: float) -> float | str:
    """Non-finite floats as strings ("nan", "inf", "-inf") so state dicts stay strict JSON."""
    return x if math.isfinite(x) else repr(x)


class Chain(Feedback):
    """Several controllers at once (also written ``a & b``).

    ``scale`` is the product of the members' scales; ``apply`` nests (the first member is the
    outermost, so ``Chain(RestartOnPlateau(), ReduceOnPlateau())`` restarts the schedule and
    scales it); ``update`` feeds the same metric to every member and returns the product.
    One controller given twice is a ``ValueError`` (it would take every metric twice).
    """

    __copy__ = _own_copy  # (copies of the members)

    def __init__(self, *controllers: Feedback) -> None:
        items: list[Feedback] = []
        for i, c in enumerate(controllers):
            if not isinstance(c, Feedback):
                raise ValueError(
                    f"controllers[{i}] must be a lrkit.feedback.Feedback, got {type(c).__name__}"
                )
            items.extend(c.controllers if isinstance(c, Chain) else (c,))
        if not items:
            raise ValueError("controllers must contain at least one Feedback, got none")
        twice = next((c for i, c in enumerate(items) if any(c is d for d in items[:i])), None)
        if twice is not None:  # it would take every metric twice and apply its scale twice
            raise ValueError(
                f"controllers: one controller is given twice ({type(twice).__name__}): it would "
                "take every metric twice and scale twice; build one for each place"
            )
        self.controllers: tuple[Feedback, ...] = tuple(items)

    @property
    def scale(self) -> float:
        s = 1.0
        for c in self.controllers:
            s *= c.scale
        return s

    @_renamed.keyword_only(2)
    def update(self, value: Metric, *, step: int | None = None) -> float:
        for c in self.controllers:
            c.update(value, step=step)
        return self.scale

    def apply(self, schedule: Callable[[int], float], step: int) -> float:
        fn: Callable[[int], float] = schedule
        for c in reversed(self.controllers):
            fn = _bind(c, fn)
        return float(fn(step))

    def schedule_step(self, step: Any) -> Any:
        for c in self.controllers:  # the first member is the outermost: its step is read first
            step = c.schedule_step(step)
        return step

    def state_dict(self) -> dict[str, Any]:
        return {"type": "Chain", "controllers": [c.state_dict() for c in self.controllers]}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        try:
            self._check_type(state)
        except ValueError as exc:
            first, last = self.controllers[0], self.controllers[-1]
            if (
                isinstance(state, Mapping)
                and len(self.controllers) == 2
                and isinstance(last, Multiplier)
                and state.get("type") == type(first).__name__ != "Chain"
            ):  # a divergence guard appended its Multiplier to a scheduler saved without one
                raise ValueError(
                    f"{exc}: it holds this chain's first controller alone; if the Multiplier "
                    "that ends the chain is a divergence guard's, the checkpoint was saved "
                    "without the guard: load it before adding the guard (build the "
                    "DivergenceGuard after load_state_dict)"
                ) from None
            raise
        subs = list(state["controllers"])
        if len(subs) != len(self.controllers):
            raise ValueError(
                f"state['controllers'] must have {len(self.controllers)} entries (one per "
                f"member of this Chain), got {len(subs)}"
            )
        load_states(self.controllers, subs, name="state['controllers']")

    def __getitem__(self, i: int) -> Feedback:
        return self.controllers[i]

    def __len__(self) -> int:
        return len(self.controllers)

    def __repr__(self) -> str:
        return " & ".join(repr(c) for c in self.controllers)


def _bind(c: Feedback, inner: Callable[[int], float]) -> Callable[[int], float]:
    return lambda t: c.apply(inner, t)


_TYPES: dict[str, type[Feedback]] = {
    "ReduceOnPlateau": ReduceOnPlateau,
    "RestartOnPlateau": RestartOnPlateau,
    "Multiplier": Multiplier,
    "DivergenceDetector": DivergenceDetector,
    "DivergenceGuard": DivergenceDetector,  # the former name, in saved state dicts
}


def from_state_dict(state: Mapping[str, Any]) -> Feedback:
    """Rebuild a controller (or a Chain of them) from its :meth:`Feedback.state_dict`."""
    if not isinstance(state, Mapping) or "type" not in state:
        raise ValueError("state must be a dict produced by a controller's state_dict()")
    kind = state["type"]
    if kind == "Chain":
        subs = state.get("controllers")
        if not isinstance(subs, (list, tuple)) or not subs:
            raise ValueError(
                "state['controllers'] must be a non-empty list of controller states (a Chain's "
                f"state_dict()), got {v.fmt(subs)}"
            )
        return Chain(*(from_state_dict(s) for s in subs))
    if kind not in _TYPES:
        allowed = ", ".join(repr(k) for k in [*_TYPES, "Chain"])
        raise ValueError(f"state['type'] must be one of {allowed}, got {v.fmt(kind)}")
    obj = _TYPES[kind]()
    obj.load_state_dict(state)
    return obj


def __getattr__(name: str) -> Any:
    if name == "DivergenceGuard":  # the former name of DivergenceDetector
        warnings.warn(
            "lrkit.feedback.DivergenceGuard was renamed DivergenceDetector (the framework "
            "guards lrkit.torch.DivergenceGuard / lrkit.keras.DivergenceGuard wrap one)",
            DeprecationWarning,
            stacklevel=caller_level(),
        )
        return DivergenceDetector
    raise AttributeError(f"module 'lrkit.feedback' has no attribute {name!r}")
