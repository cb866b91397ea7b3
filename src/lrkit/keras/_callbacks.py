"""Keras callbacks on lrkit's framework-free controllers and schedules."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from .. import _validate as V
from .._runtime import caller_level
from ..feedback import (
    DEFAULT_GUARD_FACTOR,
    DETECTOR_HINTS,
    PLATEAU_HINTS,
    DetectorKwargs,
    DivergenceDetector,
    Feedback,
    GuardBook,
    PlateauKwargs,
    as_metric,
    check_controllers,
    claim_detector,
    guard_detector,
    members_of,
    refuse_beside_controller,
    settings_differ,
    warn_against_metric,
)
from ..feedback import ReduceOnPlateau as _PlateauCore
from ..schedules import Schedule, as_schedule
from ._schedule import LRKitSchedule, ScaledSchedule, forget_traces, to_host

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["DivergenceGuard", "LRLogger", "LRScheduler", "ReduceLROnPlateau", "ReduceOnPlateau"]


# ----------------------------------------------------------------------------- LR access


def _compiled_optimizer(model: Any) -> Any:
    opt = getattr(model, "optimizer", None)
    if opt is None:
        raise ValueError("model must be compiled with an optimizer before training")
    return opt


def _optimizers(model: Any) -> list[Any]:
    """The optimizers holding the model's learning rates: the compiled one (inside a
    ``LossScaleOptimizer``), or each optimizer of a ``keras.optimizers.MultiOptimizer``."""
    opt = _compiled_optimizer(model)
    opt = getattr(opt, "inner_optimizer", opt)  # LossScaleOptimizer
    if isinstance(getattr(opt, "optimizers", None), (list, tuple)):  # MultiOptimizer
        return [getattr(o, "inner_optimizer", o) for o in opt.optimizers]
    return [opt]


def _verbose(value: Any) -> int:
    """``verbose`` as Keras' callbacks take it: 0 (quiet) or 1 (a line per change), or a bool;
    anything else (a string from a config, ``"0"``, which is truthy) a one-line ValueError."""
    if isinstance(value, bool):
        return int(value)
    return V.integer("verbose", value, 0, 1)


def _inner_optimizer(
    model: Any, user: str, *, hint: str = "ReduceOnPlateau and DivergenceGuard scale them all"
) -> Any:
    """The one optimizer holding the model's learning rate (``user``: the callback or function
    that needs it, named in the error for a ``MultiOptimizer``, with ``hint``)."""
    opts = _optimizers(model)
    if len(opts) != 1:
        raise ValueError(
            f"{user} follows the learning rate of one optimizer; this model's optimizer is a "
            f"keras.optimizers.MultiOptimizer of {len(opts)} optimizers ({hint})"
        )
    return opts[0]


#: the optimizer attribute holding its :class:`_LRScale` (saved as ``optimizer/_lrkit_lr_scale``)
_SCALE_ATTR = "_lrkit_lr_scale"


def _unpickled_scale(value: float, loaded: bool) -> _LRScale:
    scale = _LRScale(None)
    scale.value, scale.loaded = value, loaded
    return scale


class _LRScale(keras.metrics.Metric):  # type: ignore[misc]
    """The learning-rate multiplier of the lrkit cuts on one optimizer, kept on the optimizer
    and saved with its state: Keras' saving walks the optimizer's attributes, so
    ``model.save``, ``save_weights`` and ``keras.callbacks.BackupAndRestore`` write it (as
    ``optimizer/_lrkit_lr_scale``) and ``load_weights`` (BackupAndRestore's resume) reads it
    back into the optimizer it is attached to. Every lrkit callback that changes the learning
    rate attaches it in ``set_model``, before any callback's ``on_train_begin`` (where
    BackupAndRestore loads).

    What it saves is the optimizer's multiplier: the ``scale`` of a :func:`schedule` or
    :class:`ScaledSchedule` it holds, else :attr:`value`, the product of the cuts made on a
    float learning rate (which :class:`LRScheduler` applies to the value it sets). Loading
    sets that scale again (wrapping a foreign schedule in a ``ScaledSchedule`` when it is not
    1). ``load_model`` builds a new optimizer without it: there the schedule's scale comes
    back from its config, a float learning rate's cuts only with restored controllers."""

    def __init__(self, opt: Any) -> None:
        # a Metric: one of the kinds of object Keras' saving walks into, with no variable of
        # its own (none is added to the optimizer's, whose saved ones are matched by position)
        super().__init__(name="lrkit_lr_scale")
        self._opt = None if opt is None else weakref.ref(opt)  # not walked by Keras' saving
        #: the product of the cuts on a float learning rate
        self.value = 1.0
        #: whether the value came from saved weights (BackupAndRestore's resume)
        self.loaded = False
        #: the fit() run that first used it: that run's callbacks apply their controllers'
        #: scales (restored controllers); later runs carry the value on
        self.seed_run: Any = None
        #: the LRScheduler whose ``feedback=`` controller is saved with the multiplier while
        #: its fit() runs (a weak reference), and the controller state loaded with it
        self.feedback_owner: Any = None
        self.saved_feedback: dict[str, Any] | None = None
        #: the model (a weak reference, set by an LRScheduler) and the fit() that was running
        #: when a controller state was loaded (a BackupAndRestore's resume): only that fit's
        #: LRScheduler takes it, not a later one (``load_weights`` before a new stage)
        self.model_ref: Any = None
        self.saved_run: Any = None
        #: the scale of the lrkit schedule the optimizer held when the fit() that claimed the
        #: multiplier began (1.0: never cut, so restored controllers' scales apply)
        self.schedule_start: float | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # KerasSaveable pickles (and deep-copies) by saving a whole model: a plain copy here
        return (_unpickled_scale, (self.value, self.loaded))

    def bind(self, opt: Any) -> _LRScale:
        if self._opt is None or self._opt() is not opt:
            self._opt = weakref.ref(opt)
        return self

    def claim(self, run: Any) -> bool:
        """Whether ``run`` (a ``fit()``) is the first to use this optimizer's multiplier since
        it was created (its controllers' restored scales are then applied)."""
        if self.seed_run is None and not self.loaded:
            self.seed_run = run
        return self.seed_run is run and not self.loaded

    def current(self) -> float:
        """The multiplier to save: the schedule's scale, or the float learning rate's cuts."""
        opt = None if self._opt is None else self._opt()
        lr = getattr(opt, "_learning_rate", None)
        if isinstance(lr, (LRKitSchedule, ScaledSchedule)):
            return float(lr.scale)
        return self.value

    def save_own_variables(self, store: Any) -> None:
        store["scale"] = np.asarray(self.current(), dtype=np.float64)
        owner = None if self.feedback_owner is None else self.feedback_owner()
        feedback = getattr(owner, "feedback", None)
        if feedback is not None:  # an LRScheduler's feedback= controller: its whole state
            text = json.dumps(
                {
                    "type": type(feedback).__name__,
                    "monitor": getattr(owner, "monitor", None),
                    "state": feedback.state_dict(),
                }
            )
            store["feedback"] = np.frombuffer(text.encode(), dtype=np.uint8).copy()

    def load_own_variables(self, store: Any) -> None:
        keys = list(store.keys())
        if "scale" not in keys:  # saved without it: nothing to restore
            return
        value = float(np.asarray(store["scale"]))
        self.value, self.loaded = value, True
        self.saved_feedback = None
        if "feedback" in keys:
            raw = np.asarray(store["feedback"], dtype=np.uint8).tobytes()
            self.saved_feedback = json.loads(raw.decode())
            model = None if self.model_ref is None else self.model_ref()
            self.saved_run = None if model is None else _fit_run(model)
        opt: Any = None if self._opt is None else self._opt()
        lr = getattr(opt, "_learning_rate", None)
        if isinstance(lr, (LRKitSchedule, ScaledSchedule)):
            lr._rescale(value)  # drops the compiled traces if a step had read the old scale
        elif lr is not None and not isinstance(lr, keras.Variable) and callable(lr):
            if value != 1.0:
                opt._learning_rate = ScaledSchedule(lr, scale=value)
                forget_traces()  # a compiled step would keep the unwrapped schedule


def _lr_scale(opt: Any) -> _LRScale:
    """The optimizer's :class:`_LRScale`, attached on first use."""
    held = opt.__dict__.get(_SCALE_ATTR)
    if not isinstance(held, _LRScale):
        held = opt.__dict__[_SCALE_ATTR] = _LRScale(opt)  # not setattr: Keras would track it
    return held.bind(opt)


def _attach_lr_scales(model: Any) -> None:
    """Attach the multiplier to each of the model's optimizers (a callback's ``set_model``:
    before BackupAndRestore loads the saved state in its ``on_train_begin``)."""
    if getattr(model, "optimizer", None) is None:
        return
    for opt in _optimizers(model):
        _lr_scale(opt)


class _LRCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """A callback that changes the model's learning rate: it attaches the optimizer's
    multiplier (:class:`_LRScale`) when Keras sets the model, before any callback's
    ``on_train_begin`` (where a BackupAndRestore loads the saved state into it)."""

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        _attach_lr_scales(model)

    def _begin_fit(self) -> bool:
        """At each ``fit()``'s beginning: when it trains another model than this callback's
        last ``fit()`` did (one callback list kept for the folds of a cross-validation),
        the callback's state starts again as it was given (as Keras' callbacks start afresh
        at every ``fit()``): a new model does not take the cuts and the bookkeeping of the
        last one. As given: as at its first ``fit()``, or at the first ``fit()`` after a
        controller was assigned to it (or, for the guard, after its ``load_state_dict``).
        Returns whether the model is another one."""
        last = self.__dict__.get("_fitted")
        another = last is not None and last() is not self.model
        if last is None or self.__dict__.get("_given_for") is not self._controller():
            # the first fit(), or a controller assigned since: its state is the one given
            # (a copy of the callback copies this reference with its controller)
            self._given = copy.deepcopy(self._own_state())
            self._given_for = self._controller()
        elif another:
            self._load_own_state(copy.deepcopy(self._given))
        self._fitted = weakref.ref(self.model)
        return another

    def _controller(self) -> Any:
        """The controller whose state :meth:`_begin_fit` keeps (overridden)."""
        return None

    def _own_state(self) -> Any:
        """What :meth:`_begin_fit` keeps of this callback's state as given (overridden)."""
        return None

    def _load_own_state(self, state: Any) -> None:
        """Put back :meth:`_own_state`'s (overridden)."""

    def __copy__(self) -> Any:
        """``copy.copy``: a callback of its own, whose controllers and counters are not
        shared with the original's (as ``copy.copy`` of a controller); the model it was set
        on is shared (Keras sets each callback's model again when ``fit()`` starts)."""
        model = self.__dict__.get("_model")
        keep: dict[int, Any] = {} if model is None else {id(model): model}
        handle = self.__dict__.get("_handle")
        if handle is not None:  # it holds the model's optimizer: built again at fit()
            keep[id(handle)] = None
        return copy.deepcopy(self, keep)


# The per-batch LRSchedulers following each optimizer's step count, told by a DivergenceGuard
# how many steps a restore took back (the optimizer's ``iterations`` rewinds with the state,
# so the schedule's step must too, as a schedule inside the optimizer does), and the
# LRLoggers, which then know the counter went back.
_REWIND_LISTENERS: weakref.WeakKeyDictionary[Any, weakref.WeakSet[Any]] = (
    weakref.WeakKeyDictionary()
)


def _counter(opt: Any) -> Any:
    """The optimizer's step counter as Keras evaluates a schedule at it, a variable: batches
    trained (with ``gradient_accumulation_steps``, ``opt.iterations`` counts updates, a tensor
    computed from this variable)."""
    var = getattr(opt, "_iterations", None)
    return opt.iterations if var is None else var


def _iterations(opt: Any) -> int:
    var = _counter(opt)
    return int(to_host(var))


#: each plateau controller a Keras callback fed: the fit run, the epoch and the callback
_FED: weakref.WeakKeyDictionary[Any, tuple[Any, int, Any]] = weakref.WeakKeyDictionary()


def _feed_once(controllers: list[Any], callback: Any, epoch: int) -> None:
    """A one-line ``ValueError`` when another callback fed one of ``controllers`` in this
    epoch of the same ``fit()``: a controller held by two callbacks (``LRScheduler(feedback=
    c)`` and ``ReduceOnPlateau(controller=c)``) would count every metric twice and cut twice."""
    run = _fit_run(callback.model)
    if run is None:
        return
    for c in controllers:
        with contextlib.suppress(TypeError):  # a controller that takes no weak reference
            seen = _FED.get(c)
            if (
                seen is not None
                and seen[0]() is run
                and seen[1] == epoch
                and seen[2]() is not callback
            ):
                raise ValueError(
                    f"controller: one {type(c).__name__} is fed by two callbacks of this fit "
                    f"({type(seen[2]()).__name__} and {type(callback).__name__}): it would "
                    "count every metric twice and cut twice; give it to one of them"
                )
            _FED[c] = (weakref.ref(run), epoch, weakref.ref(callback))


def _fit_run(model: Any) -> Any:
    """What identifies one ``fit()`` call: the ``History`` that Keras builds for it and sets
    on the model before any callback starts."""
    return getattr(model, "history", None)


def _write_lr(opt: Any, lr: float) -> None:
    """Set a float learning rate held in a variable. On the JAX backend (without a
    ``keras.distribution``) the value is stored as a host scalar of the variable's dtype: the
    compiled step takes it as an input like any other, and no eager device operation runs per
    write (``Variable.assign`` would run one, the larger part of a per-batch write's cost)."""
    var = opt._learning_rate
    direct = getattr(var, "_direct_assign", None)
    if (
        direct is not None
        and keras.backend.backend() == "jax"
        and getattr(var, "_layout", None) is None
        and keras.distribution.distribution() is None
    ):
        direct(np.asarray(lr, dtype=var.dtype))
    else:
        opt.learning_rate = lr


def _settle_lr(model: Any) -> None:
    """At the end of training, a float LR that :func:`_write_lr` stored as a host value is
    stored as a backend value again: Keras before 3.15 reads the sharding of every optimizer
    variable when the next ``fit()`` starts, which a numpy value does not have."""
    for opt in _optimizers(model):
        var = getattr(opt, "_learning_rate", None)
        value = getattr(var, "_value", None)
        if isinstance(var, keras.Variable) and isinstance(value, np.ndarray):
            var.assign(value)


def _takes_restored_cut(opt: Any, scale_now: float, run: Any, controller: Feedback) -> bool:
    """Whether the schedule ``opt`` holds (its scale ``scale_now``; 1 for a foreign one) takes
    ``controller``'s cuts as this ``fit()`` begins: in the first ``fit()`` of the optimizer
    (its multiplier claimed by ``run``), when the schedule was never cut as that ``fit()``
    began (a new model whose weights ``load_weights`` loaded, which brings back no scale
    without an lrkit callback attached) and the controller (a restored one, passed as
    ``controller=``) holds cuts, as a float LR's multiplier takes them. One that held a scale
    then (``load_model``'s, from its config) holds their cuts already."""
    scale = _lr_scale(opt)
    if not scale.claim(run):
        return False
    if scale.schedule_start is None:  # as the first controller of this fit() found it
        scale.schedule_start = scale_now
    return scale.schedule_start == 1.0 and controller.scale != 1.0


class _LRHandle:
    """Multiply a model's learning rates by a factor (each optimizer's, for a
    ``MultiOptimizer``), whatever an optimizer holds: a lrkit schedule (its host-side scale),
    a foreign schedule or callable (wrapped in :class:`ScaledSchedule` at its first factor
    other than 1, and the train function rebuilt so it sees the wrapper: until a cut, the
    optimizer holds its own schedule, and a model saved then loads without lrkit), or a float
    learning-rate variable (assigned ``lr * factor``, as Keras' callbacks do, and the
    optimizer's multiplier with it, which :class:`LRScheduler` applies)."""

    def __init__(self, model: Any, controller: Feedback) -> None:
        self.model = model
        run = _fit_run(model)
        #: (optimizer, its scaled schedule or None for a float learning rate)
        self.parts: list[tuple[Any, Any]] = []
        #: the optimizers holding a foreign schedule or callable, not wrapped yet
        self.foreign: list[Any] = []
        rescaled = False
        for opt in _optimizers(model):
            lr = opt._learning_rate
            if isinstance(lr, (LRKitSchedule, ScaledSchedule)):
                if not any(target is lr for _, target in self.parts):  # one schedule shared by
                    self.parts.append((opt, lr))  # two optimizers is scaled once, not twice
                    if _takes_restored_cut(opt, float(lr.scale), run, controller):
                        lr._rescale(lr.scale * controller.scale)
                        rescaled = rescaled or lr.compiled_scale
            elif isinstance(lr, keras.Variable):
                # the float LR (saved with the model) already holds the cuts; LRScheduler
                # applies their product, the optimizer's multiplier. The first fit() of an
                # optimizer that carries none (new, or from load_model) starts it at the
                # scales of its controllers (restored ones, passed as controller=)
                scale = _lr_scale(opt)
                if scale.claim(run):
                    scale.value *= controller.scale
                self.parts.append((opt, None))
            elif callable(lr):
                # a foreign schedule is never cut (the first cut wraps it): wrapped at once
                # when restored controllers hold cuts
                if _takes_restored_cut(opt, 1.0, run, controller):
                    opt._learning_rate = lr = ScaledSchedule(lr, scale=controller.scale)
                    self.parts.append((opt, lr))
                    rescaled = True  # the train function holds the foreign schedule
                    continue
                self.foreign.append(opt)
            else:  # pragma: no cover - keras always holds one of the above
                raise ValueError(f"unsupported learning rate {lr!r} in the optimizer")
        if rescaled and getattr(model, "train_function", None):
            forget_traces()  # a compiled step holds the scale (or the unwrapped schedule)
            model.make_train_function(force=True)

    def multiply(self, factor: float, *, floor: float = 0.0) -> None:
        """Multiply every learning rate by ``factor``; a float learning rate above ``floor``
        (``ReduceLROnPlateau``'s ``min_lr``) goes no lower than it, one at or below it is
        left as it is: as Keras' callback floors each optimizer of a ``MultiOptimizer``."""
        if factor == 1.0:
            return
        retrace = False
        for opt in self.foreign:
            lr = opt._learning_rate
            if not isinstance(lr, (LRKitSchedule, ScaledSchedule)):  # (another callback's)
                opt._learning_rate = lr = ScaledSchedule(lr)
                retrace = True  # the train function holds the foreign schedule
            if not any(target is lr for _, target in self.parts):
                self.parts.append((opt, lr))
        self.foreign = []
        for opt, target in self.parts:
            if target is not None:
                # no global retrace: this model's train function is rebuilt below
                target._rescale(target.scale * factor, retrace=False)
                retrace = retrace or target.compiled_scale
            else:
                lr = float(to_host(opt._learning_rate))
                new = lr * factor
                if new < floor and lr > 0:
                    new = min(lr, floor)
                    _lr_scale(opt).value *= new / lr
                else:
                    _lr_scale(opt).value *= factor
                _write_lr(opt, new)
        if retrace and getattr(self.model, "train_function", None):
            self.model.make_train_function(force=True)  # the scale is a compiled constant


def _batches_done(params: dict[str, Any] | None, ends: list[int], moved: int | None = None) -> int:
    """The number of batches an epoch trained, from the batch indices Keras reported done
    (``ends``): with ``steps_per_execution`` Keras reports a call as ending at its last batch
    also when the data ran out before it, so the epoch's step count (``params["steps"]``, when
    known; else ``moved``, how far the optimizer's counter moved in the epoch) bounds it."""
    done = max(ends, default=-1) + 1
    steps = (params or {}).get("steps")
    if steps:
        return min(done, int(steps))
    return min(done, moved) if moved is not None else done


def _compacted(ends: list[int]) -> list[int]:
    """The batch indices Keras reported done, of which only the largest is ever read
    (:func:`_batches_done`): kept as one once there are many (a long epoch would otherwise
    hold one per batch). An index appended to the old list meanwhile, by a worker thread, is
    one the next batches' outdo."""
    return [max(ends)] if len(ends) > 256 else ends


def _skips_steps(model: Any) -> bool:
    """Whether ``model``'s optimizer is a ``LossScaleOptimizer``, whose counter leaves out the
    steps it drops (overflowing gradients)."""
    return isinstance(getattr(model, "optimizer", None), keras.optimizers.LossScaleOptimizer)


def _counter_moved(model: Any, opt: Any, start: int, params: dict[str, Any] | None) -> int | None:
    """How far ``opt``'s counter moved since ``start`` (read at the epoch's beginning), when
    the epoch's length is unknown (data without a length: Keras' JAX loop then begins one
    batch more than it runs, and reports its last call as full); ``None`` when the length is
    known, or with a ``LossScaleOptimizer`` (:func:`_skips_steps`)."""
    if (params or {}).get("steps") or _skips_steps(model):
        return None
    return _iterations(opt) - start


def _resolve_mode(mode: str, monitor: str) -> str:
    mode = V.choice("mode", mode, ("auto", "min", "max"))
    if mode == "auto":
        name = monitor.removeprefix("val_")  # Keras' name of a validation metric
        return "max" if ("acc" in name or name.startswith("fmeasure")) else "min"
    return mode


def _warn_against_metric(
    who: str, arg: str, model: Any, monitor: str, controller: Any, *, keep: str = ""
) -> None:
    """A ``RuntimeWarning`` when a plateau controller (``controller``, given as ``arg``; each
    member of a chain) minimises a metric Keras maximises, or the other way round: it would
    cut the learning rate while ``monitor`` improves."""
    mode = _metric_mode(model, monitor) or _resolve_mode("auto", monitor)
    warn_against_metric(who, arg, monitor, controller, mode, keep=keep)


def _metric_mode(model: Any, monitor: str) -> str | None:
    """The direction of the compiled metric ``monitor`` names (``"val_"`` prefix or not), as
    Keras' own callbacks read it for ``mode="auto"``: ``"min"`` for the loss, ``"max"`` for a
    metric that goes up (accuracy, AUC, precision, ...); None for a metric it does not know."""
    name = monitor.removeprefix("val_")
    if name == "loss":
        return "min"
    metrics: list[Any] = []
    for m in getattr(model, "metrics", None) or []:
        inner = getattr(m, "metrics", None)  # Keras' compiled metrics: a container of them
        metrics.extend(inner if isinstance(inner, (list, tuple)) else [m])
    for m in metrics:
        direction = getattr(m, "_direction", None)
        if getattr(m, "name", None) == name and direction in ("up", "down"):
            return "max" if direction == "up" else "min"
    return None


# ----------------------------------------------------------------------------- plateau


def _float_lrs(model: Any) -> list[float]:
    """The float learning rates of ``model``'s optimizers (none for one holding a schedule)."""
    return list(_named_float_lrs(model).values())


def _named_float_lrs(model: Any) -> dict[str, float]:
    """The float learning rates of ``model``'s optimizers by the key Keras' own
    ``ReduceLROnPlateau`` logs each under: ``"learning_rate"`` for one optimizer,
    ``"learning_rate_<name>"`` for each of a ``MultiOptimizer``'s (none for one holding a
    schedule)."""
    opts = _optimizers(model)
    return {
        "learning_rate" if len(opts) == 1 else f"learning_rate_{opt.name}": float(
            to_host(opt._learning_rate)
        )
        for opt in opts
        if isinstance(opt._learning_rate, keras.Variable)
    }


class ReduceOnPlateau(_LRCallback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    Built on :class:`lrkit.feedback.ReduceOnPlateau` (PyTorch's bookkeeping, sign-correct
    relative threshold: see there). The metric is read from the epoch logs at every epoch end.
    Unlike ``keras.callbacks.ReduceLROnPlateau`` it also works when the optimizer holds a
    schedule: an lrkit schedule (``lrkit.keras.schedule``) is scaled in place, any other
    Keras schedule is wrapped in :class:`lrkit.keras.ScaledSchedule` at the first cut (until
    then the optimizer, and a model saved from it, holds its own schedule); a float learning
    rate is multiplied like Keras does, and a learning-rate callable is wrapped like a
    schedule. With a ``keras.optimizers.MultiOptimizer`` every optimizer's learning rate is
    scaled, and each float one logged as ``logs["learning_rate_<optimizer name>"]`` (as Keras'
    callback logs them). Multipliers of several callbacks compose.

    Note the timing differs from Keras' callback: the reduction comes on the ``patience + 1``-th
    non-improving epoch (PyTorch's convention), and Keras' cooldown counts the epoch of the cut.
    Keras' ``ReduceLROnPlateau(patience=P, cooldown=C, min_delta=d)`` is
    ``ReduceOnPlateau(patience=max(P, 1) - 1, cooldown=max(C - 1, 0), threshold=d,
    threshold_mode="abs")``, except at exact ties: Keras tests the improvement in float32,
    lrkit in float64, so a change of exactly ``min_delta`` between values not exact in binary
    (accuracy 0.08 -> 0.10 with ``min_delta=0.02``), or one above ``min_delta`` by less than
    half a float32 spacing at the metric's size (about 6e-5 for a loss near 1000), may be
    decided differently; other changes decide the same.

    The plateau arguments (``factor=0.1``, ``patience=10``, ``threshold=1e-4``,
    ``threshold_mode="rel"``, ``cooldown=0``, ``min_scale=0.0``, by keyword:
    ``lrkit.feedback.PlateauKwargs``) are those of :class:`lrkit.feedback.ReduceOnPlateau`;
    ``mode="auto"`` reads the direction of the monitored metric as Keras does, when training
    begins: ``"min"`` for the loss, ``"max"`` for a compiled metric that goes up (accuracy,
    AUC, precision, recall, ...), ``"min"`` for one that goes down; for a name Keras does not
    know, ``"max"`` when it contains ``"acc"`` or starts with ``"fmeasure"`` (after a
    ``"val_"`` prefix), else ``"min"``. With a float learning rate, each epoch's
    ``logs["learning_rate"]`` is the optimizer's learning rate before the epoch's cut, as
    Keras' own callback writes it (unless another callback, such as :class:`LRScheduler`,
    has written it).

    ``verbose=1`` prints a line when the scale changes (as Keras' callback does).

    ``controller`` (optional) is a ready :class:`lrkit.feedback.ReduceOnPlateau` (e.g. restored
    with ``load_state_dict``), which holds its own settings: giving ``mode`` or a plateau
    argument beside it is a one-line ``ValueError``; without ``mode``, a controller whose mode
    is against the metric's direction is kept, with a ``RuntimeWarning`` at train begin. To
    resume, pass the restored controller to the callback of a run on the model
    ``keras.saving.load_model`` brought back: at train begin its scale is handed to
    :class:`LRScheduler`, so the resumed run's learning rates equal an uninterrupted run's.
    """

    @V.keyword_only(
        "lrkit.keras.ReduceOnPlateau",
        peer_order=("monitor", "factor", "patience", "verbose", "mode"),
        accepted=tuple(PlateauKwargs.__annotations__),
    )
    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        mode: str = "auto",
        controller: _PlateauCore | None = None,
        verbose: int = 0,
        **plateau: Unpack[PlateauKwargs],
    ) -> None:
        V.options(
            "lrkit.keras.ReduceOnPlateau",
            plateau,
            ("monitor", "mode", "controller", "verbose", *PlateauKwargs.__annotations__),
            PLATEAU_HINTS,
        )
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be the name of a logged metric, got {V.fmt(monitor)}")
        if monitor in ("min", "max", "auto"):  # lrkit.feedback's first argument is its mode
            raise ValueError(
                f"monitor must be the name of a logged metric (as Keras', the first argument "
                f"here), got {V.fmt(monitor)}, a mode: pass mode={monitor!r} and the metric as "
                "monitor= (e.g. 'val_loss')"
            )
        self.monitor = monitor
        self._auto = False  # mode="auto": read the metric's direction at train begin
        self._check_mode = False
        if controller is None:
            resolved: Any = _resolve_mode(mode, monitor)
            controller = _PlateauCore(resolved, **plateau)
            self._auto = mode == "auto"
        elif not isinstance(controller, _PlateauCore):
            raise ValueError(
                f"controller must be a lrkit.feedback.ReduceOnPlateau, got {V.fmt(controller)}"
            )
        else:
            given = sorted(plateau) + ([] if mode in ("auto", controller.mode) else ["mode"])
            refuse_beside_controller(given)
            # no mode given: the controller's own is used; checked against the metric's
            # direction when training begins (a controller built with the default "min" on
            # an accuracy would cut the LR while the model improves)
            self._check_mode = mode == "auto"
        self.controller = controller
        self.verbose = _verbose(verbose)
        self._handle: _LRHandle | None = None

    @property
    def scale(self) -> float:
        """The LR multiplier from the controller's cuts so far: ``factor`` at each cut, never
        below ``min_scale`` (1.0 for a fresh controller; a restored one's saved scale)."""
        return self.controller.scale

    def _controller(self) -> Any:
        return self.controller

    def _lr_floor(self) -> float:
        """The float learning rate a cut goes no lower than (:class:`ReduceLROnPlateau`'s
        ``min_lr``; none here: ``min_scale`` bounds the scale)."""
        return 0.0

    def _own_state(self) -> Any:
        # the controller's state and whether the metric's direction is read and checked at
        # the next fit() (mode="auto": off the next model's compiled metrics)
        return (self.controller.state_dict(), self._auto, self._check_mode)

    def _load_own_state(self, state: Any) -> None:
        controller, self._auto, self._check_mode = state
        self.controller.load_state_dict(controller)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._begin_fit()
        self._handle = _LRHandle(self.model, self.controller)
        if self._auto and self.controller.num_updates == 0:
            self._auto = False
            mode = _metric_mode(self.model, self.monitor)
            if mode is not None and mode != self.controller.mode:
                state = self.controller.state_dict()
                self.controller.load_state_dict({**state, "mode": mode})
        if self._check_mode:
            self._check_mode = False
            _warn_against_metric(
                "ReduceOnPlateau",
                "controller=",
                self.model,
                self.monitor,
                self.controller,
                keep=f" (or pass mode={self.controller.mode!r} here to keep it)",
            )

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        _settle_lr(self.model)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:  # as Keras' own: the epoch's LRs, before the cut
            for key, lr in _named_float_lrs(self.model).items():
                logs.setdefault(key, lr)
        logs = logs if logs is not None else {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"{type(self).__name__}: metric {self.monitor!r} is not in the logs (available: "
                f"{', '.join(sorted(logs))}); skipping",
                RuntimeWarning,
                stacklevel=caller_level(),
            )
            return
        if self._handle is None:  # registered before the controller moves
            self._handle = _LRHandle(self.model, self.controller)
        _feed_once([self.controller], self, epoch)
        old = self.controller.scale
        new = self.controller.update(as_metric(value), step=epoch)
        if new != old:
            self._handle.multiply(new / old if old > 0 else 0.0, floor=self._lr_floor())
            if self.verbose:
                print(
                    f"\nEpoch {epoch + 1}: ReduceOnPlateau scaled the learning rate by "
                    f"{new / old if old else 0.0:.3g} (scale {new:.3g})"
                )


#: the positional order of Keras' ReduceLROnPlateau, which the lrkit callbacks take by keyword
_KERAS_PLATEAU_ORDER = (
    "monitor", "factor", "patience", "verbose", "mode", "min_delta", "cooldown", "min_lr"
)  # fmt: skip
_KERAS_PLATEAU_HINTS = {
    "epsilon": "Keras 2's name of min_delta",
    "threshold": "use min_delta",
    "min_scale": "use min_lr, or lrkit.keras.ReduceOnPlateau, which takes min_scale",
    "threshold_mode": "min_delta is absolute, as Keras'; lrkit.keras.ReduceOnPlateau takes "
    "threshold_mode",
}


class ReduceLROnPlateau(ReduceOnPlateau):
    """Keras' ``keras.callbacks.ReduceLROnPlateau``, with its arguments, defaults and timing: a
    cut on the ``patience``-th epoch without an improvement of more than ``min_delta``
    (absolute), then ``cooldown`` epochs counting the epoch of the cut, never below
    ``min_lr``. It is :class:`ReduceOnPlateau` with Keras' settings translated
    (``patience=max(P, 1) - 1, cooldown=max(C - 1, 0), threshold=min_delta,
    threshold_mode="abs"``), so a schedule in the optimizer is scaled too, where Keras' own
    raises. As Keras' own, every ``fit()`` begins a new watch for a plateau (the best value,
    the wait and the cooldown are forgotten; the cuts made stay), and each epoch's
    ``logs["learning_rate"]`` is the optimizer's learning rate before the epoch's cut (unless
    another callback, such as :class:`LRScheduler`, has written it). ``min_lr`` is read
    against the optimizers' float learning rate at the end of the first epoch of each
    ``fit()``, the cuts made before taken out (``min_scale = min_lr * scale / lr``, Keras'
    floor): the learning rate the run trains at, also when an :class:`LRScheduler` writes it
    over the one given to ``compile``, or when you set it between two ``fit()`` calls. With a
    schedule in an optimizer, a ``min_lr`` above 0 is a one-line ``ValueError`` at train
    begin (give :class:`ReduceOnPlateau` a ``min_scale``). With a ``MultiOptimizer``, as Keras'
    own, each optimizer is floored at ``min_lr`` on its own (one at or below it is left).
    Exact ties at ``min_delta`` may be decided differently from Keras (float64 here, float32
    there; see ``docs/parity.md``)."""

    @V.keyword_only("lrkit.keras.ReduceLROnPlateau", peer_order=_KERAS_PLATEAU_ORDER)
    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        **unknown: Any,
    ) -> None:
        # Keras 3's own ignores unknown keywords; a Keras 2 name gets a pointer to its option
        named, _ = V.keywords(ReduceLROnPlateau.__init__)  # its own: Keras' arguments
        V.options("lrkit.keras.ReduceLROnPlateau", unknown, named, _KERAS_PLATEAU_HINTS)
        patience = V.integer("patience", patience, 0)
        cooldown = V.integer("cooldown", cooldown, 0)
        self.min_lr = V.non_negative("min_lr", min_lr)
        super().__init__(
            monitor,
            mode=mode,
            verbose=verbose,
            factor=factor,
            patience=max(patience, 1) - 1,
            cooldown=max(cooldown - 1, 0),
            threshold=V.non_negative("min_delta", min_delta),
            threshold_mode="abs",
        )
        self._floor_set = False

    def _lr_floor(self) -> float:
        return self.min_lr

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self.controller.reset_plateau()  # as Keras' own at every fit()
        # the floor is read again in each fit(): an LR set between two fit() calls is the
        # one min_lr is measured against (Keras compares min_lr with the LR itself)
        self._floor_set = False
        if self.min_lr > 0:
            for opt in _optimizers(self.model):
                lr = opt._learning_rate
                if not isinstance(lr, keras.Variable):
                    raise ValueError(
                        f"min_lr={self.min_lr!r} needs a float learning rate in the optimizer "
                        f"(as Keras' ReduceLROnPlateau), got {type(lr).__name__}: with a "
                        "schedule, pass min_scale= to lrkit.keras.ReduceOnPlateau"
                    )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.min_lr > 0 and not self._floor_set:
            # the LR the run trains at (an LRScheduler has written it by now), before any cut
            scale = self.controller.scale
            base = [lr / scale for lr in _float_lrs(self.model)] if scale > 0 else []
            if base and max(base) > 0:  # the largest LR's floor; the others' in each cut
                self.controller.min_scale = self.min_lr / max(base)
            self._floor_set = True
        super().on_epoch_end(epoch, logs)


# ----------------------------------------------------------------------------- guard


def _values(variables: list[Any]) -> list[np.ndarray]:
    return [np.array(to_host(v), copy=True) for v in variables]


#: a guard's snapshot: the values of the model's and of the optimizer's variables
_Snapshot = tuple[list[np.ndarray], list[np.ndarray]]

_WAIT_S = 600.0  # give up waiting for a batch's loss after this long (a callback failed)
# when validation begins on data of unknown length, how long the last begun batch's loss is
# waited for before it is left to the epoch's end (the batch may never have run)
_GRACE_S = 2.0


class DivergenceGuard(_LRCallback):
    """Restore the last good state and cut the learning rate when training diverges.

    Every batch's loss (recovered exactly from Keras' running mean when batch sizes are equal)
    goes to the guard's :attr:`controller`, a :class:`lrkit.feedback.DivergenceDetector`: a
    NaN/inf loss, or a spike above ``spike_factor`` times the ``quantile`` (default 0.9) of the
    last ``window`` good losses, restores the newest snapshot whose own loss was checked good
    (all model variables and optimizer variables, ``iterations`` included, so a schedule
    rewinds with them), resets the metrics and multiplies the learning rate by ``factor``
    (schedules included, as :class:`ReduceOnPlateau`). After ``max_restores`` restores the next
    divergence restores and stops training (``model.stop_training = True``; :attr:`gave_up`
    becomes True; the model ends in the restored state).

    Cost and timing: the callback never makes Keras wait for a step's result (it is
    ``async_safe``: Keras keeps dispatching the next step while the loss is read). The loss of
    batch ``k`` is judged when batch ``k + 2`` is about to start (or at the end of the epoch,
    before ``fit`` validates the epoch's weights: a diverged state is restored first, and the
    epoch's ``logs["loss"]``, read by Keras before, becomes the mean loss of the epoch's
    batches checked good, or the latest loss checked good when none is, for the callbacks
    after the guard); on a divergence batch ``k + 1``,
    already run, is discarded with the diverged state. A
    snapshot (a host copy of every variable) is taken every ``snapshot_every`` good batches;
    it becomes the one restored once the loss of the batch trained from it is checked good.
    What ``snapshot_every=50`` gives up: a restore goes back up to about ``snapshot_every + 2``
    batches; ``snapshot_every=1`` loses the fewest batches, at one copy of the model and
    optimizer per batch. ``keep`` snapshots are kept: when the state just restored diverges
    again at once it is dropped and the next older one is restored. The first snapshot (the
    state training starts from) is taken when the first epoch begins, so the guard may come
    before or after a ``keras.callbacks.BackupAndRestore``: a resumed run starts from the
    state that callback loaded. With ``steps_per_execution=n`` Keras calls callbacks once per
    ``n`` batches: the guard then judges calls (the mean loss of ``n`` batches), and its
    snapshots, ``restored_at`` and ``events`` count calls.

    The detector arguments after ``factor`` (``max_restores``, ``spike_factor``, ``window``,
    ``min_history``, ``min_scale``, ``quantile``, ``spike_floor``:
    :class:`lrkit.feedback.DetectorKwargs`) go by
    keyword to :class:`lrkit.feedback.DivergenceDetector`, which holds their defaults.
    ``controller`` (optional) is a ready :class:`lrkit.feedback.DivergenceDetector`, which
    holds its own settings: giving ``factor`` or a detector argument beside it is a one-line
    ``ValueError``. The arguments and defaults are those of
    ``lrkit.torch.DivergenceGuard`` except ``check_grads``: Keras does not hand gradients to
    callbacks (a non-finite gradient shows up as a non-finite loss one batch later).
    ``verbose=1`` prints a line at each restore.
    """

    async_safe = True  # on_train_batch_end only records the loss (from Keras' worker thread)

    def __init__(
        self,
        factor: float = DEFAULT_GUARD_FACTOR,
        *,
        snapshot_every: int = 50,
        keep: int = 2,
        controller: DivergenceDetector | None = None,
        verbose: int = 0,
        **detector: Unpack[DetectorKwargs],
    ) -> None:
        V.options(
            "lrkit.keras.DivergenceGuard",
            detector,
            (
                "factor",
                "snapshot_every",
                "keep",
                "controller",
                "verbose",
                *DetectorKwargs.__annotations__,
            ),
            {
                **DETECTOR_HINTS,
                "check_grads": "Keras hands no gradients to callbacks: a non-finite gradient "
                "shows as a non-finite loss one batch later",
            },
        )
        super().__init__()
        controller = guard_detector(factor, controller, detector, guard=self)
        self._book: GuardBook[_Snapshot] = GuardBook(
            controller, snapshot_every=snapshot_every, keep=keep
        )
        self.controller = controller
        self.snapshot_every = self._book.snapshot_every
        self.keep = self._book.keep
        self.verbose = _verbose(verbose)
        self.gave_up = False
        self._handle: _LRHandle | None = None
        # the batch the newest restore was made for as it began, until its loss arrives
        self._restored_begin: int | None = None
        self._cond = threading.Condition()
        self._inbox: dict[int, float | None] = {}  # end step -> Keras' running-mean loss
        self._floor = 0  # losses of batches before this one are stale (before a restore)
        # after load_state_dict: good checks since the newest snapshot, as saved, put back
        # once the next run has snapshotted the state it starts from
        self._resume_good: int | None = None
        self._last_good: float | None = None  # the latest loss checked good, across fit()s
        self._reset_run()
        claim_detector(controller, self)  # built: no other guard may act through it

    def __getstate__(self) -> dict[str, Any]:
        # a lock is not copied (KerasTuner deep-copies the callbacks of every trial): each
        # copy or unpickled guard gets its own
        state = self.__dict__.copy()
        state.pop("_cond", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cond = threading.Condition()
        claim_detector(self.controller, self, if_free=True)  # a copy: its own detector copy

    def _reset_run(self) -> None:
        self._book.clear()
        self._pending: list[tuple[int, _Snapshot]] = []
        self._begins: list[tuple[int, int]] = []  # (batch id, begin step) not judged yet
        self._batch_id = 0
        self._n = 0  # batches in Keras' running loss mean
        self._prev_mean = 0.0
        # Keras' running loss mean over the batches checked good before the last divergence
        # (none since the metrics were last reset: the latest loss checked good, the state
        # training goes on from), and whether that divergence was judged once the epoch's
        # batches had run (its logs then hold the discarded batches)
        self._good_mean: float | None = None
        self._end_restored = False
        # the checks go on from the controller's count (a loaded controller's too), so the
        # steps of restores and events count from the start of training, across fit() calls
        self._step = self.controller.num_checks
        self._final_restore = False
        # the state training starts from is taken when training actually starts (the first
        # epoch or batch begins): a BackupAndRestore placed after this callback loads the state
        # of a resumed run in its own on_train_begin
        self._start_pending = True

    @property
    def scale(self) -> float:
        """The LR multiplier from all cuts so far."""
        return self.controller.scale

    @property
    def num_checks(self) -> int:
        """The batches (calls, with ``steps_per_execution``) judged so far, counted from the
        start of training across ``fit()`` calls (the controller's count, which a loaded
        ``state_dict()`` brings back), as ``lrkit.torch.DivergenceGuard.num_checks``."""
        return self.controller.num_checks

    @property
    def restored_at(self) -> list[int]:
        """The check (counted from the start of training, across ``fit()`` calls) whose loss
        diverged, for each restore (the give-up's last restore too): the steps of the
        controller's events, so a guard loaded from a ``state_dict()`` holds the restores made
        before it was saved."""
        return [int(e["step"]) for e in self.controller.events]

    @property
    def restores(self) -> int:
        """Restores so far (the controller's count, as ``lrkit.torch.DivergenceGuard``)."""
        return self.controller.restores

    @property
    def events(self) -> list[dict[str, Any]]:
        """The controller's record of each restore and give-up (step, loss, action, ...), as
        ``lrkit.torch.DivergenceGuard.events``."""
        return self.controller.events

    # ------------------------------------------------------------------ state
    def _opt_variables(self) -> list[Any]:
        # every optimizer variable but a float learning rate: the LR in use is kept (with the
        # cuts other callbacks made since the snapshot) and then multiplied by ``factor``
        lrs = [opt._learning_rate for opt in _optimizers(self.model)]
        return [v for v in self.model.optimizer.variables if not any(v is lr for lr in lrs)]

    def _take(self) -> _Snapshot:
        model = self.model
        return (_values(model.variables), _values(self._opt_variables()))

    def _restore(self, *, again: bool = False) -> None:
        model = self.model
        # the newest snapshot; one restored last time that diverged at once is dropped first
        mvals, ovals = self._book.to_restore(again=again)
        followed = [
            (opt, listeners, _iterations(opt))
            for opt in _optimizers(model)
            if (listeners := _REWIND_LISTENERS.get(opt))
        ]
        self._assign(mvals, ovals)
        for opt, listeners, before in followed:
            taken_back = before - _iterations(opt)
            for scheduler in list(listeners):
                scheduler._rewound(taken_back)
        model.reset_metrics()
        self._n = 0
        self._prev_mean = 0.0
        self._pending.clear()

    def _assign(self, mvals: Any, ovals: Any) -> None:
        for v, x in zip(self.model.variables, mvals):
            v.assign(x)
        for v, x in zip(self._opt_variables(), ovals):
            v.assign(x)

    def _restore_again_if_not_run(self) -> None:
        """A restore made as a batch began that never ran (the batch Keras begins past the
        end of data of unknown length): Keras then writes the state of its last step back
        over the variables, so the restored state is assigned once more (the counts and the
        schedulers already follow it). It is the newest snapshot still: none is taken before
        a batch after the restore is checked good."""
        if self._restored_begin is not None:
            self._assign(*self._book.snapshots[-1])
            self._end_restored = True  # the epoch's loss: that of the batches checked good
        self._restored_begin = None

    # ------------------------------------------------------------------ hooks
    def _controller(self) -> Any:
        return self.controller

    def _own_state(self) -> Any:
        return self.state_dict()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._begin_fit():
            self._last_good = None  # the last model's latest loss checked good
        self._handle = _LRHandle(self.model, self.controller)
        self.gave_up = False
        if self._resume_good is None:
            # the same guard in the next fit(): its snapshot timing goes on, as from its own
            # state_dict() (a loaded one's is put back instead)
            self._resume_good = self._book.good
        self._reset_run()

    def _start(self) -> None:
        self._start_pending = False
        self._book.add(self._take())  # the state training starts from
        if self._resume_good is not None:  # the next snapshot falls where it would have
            self._book.good, self._resume_good = self._resume_good, None

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """The decision state, as ``lrkit.torch.DivergenceGuard.state_dict()`` (not the
        snapshots, which live in memory only): the detector's (``controller``) and when the
        next snapshot is due (``good``: good checks since the newest snapshot). A plain dict
        (json/pickle it)."""
        good = self._book.good if self._resume_good is None else self._resume_good
        return {"controller": self.controller.state_dict(), "good": good}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` before the next ``fit()``: the detector's state, and
        the snapshot timing, so that after the snapshot of the state the resumed run starts
        from, the snapshots fall on the checks they would have fallen on without the
        interruption (a divergence before the first of them restores that starting state)."""
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"controller", "good"}:
            keys = sorted(state_dict) if isinstance(state_dict, Mapping) else None
            raise ValueError(
                "state_dict must be a DivergenceGuard.state_dict() (keys 'controller', "
                f"'good'), got {type(state_dict).__name__}"
                + ("" if keys is None else f" with keys {keys}")
            )
        good = V.integer("state_dict['good']", state_dict["good"], 0)
        self.controller.load_state_dict(state_dict["controller"])
        self._resume_good = good  # the checks count on from the controller's at the next fit()
        self.__dict__.pop("_given_for", None)  # the state the next fit() starts from: given

    def _load_own_state(self, state: Any) -> None:
        self.controller.load_state_dict(state["controller"])
        self._resume_good = state["good"]

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._start_pending:
            self._start()
        self._n = 0
        self._prev_mean = 0.0
        self._end_restored = False
        self._restored_begin = None
        self._begins.clear()
        with self._cond:
            self._inbox.clear()
            self._floor = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # may run in Keras' worker thread: only record the loss, never touch the model
        loss = logs.get("loss") if logs else None
        if loss is not None and not isinstance(loss, float):
            loss = float(np.asarray(loss))
        with self._cond:
            if batch >= self._floor:
                self._inbox[batch] = loss
                self._cond.notify()

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.gave_up:
            return
        if self._start_pending:  # batches driven without on_epoch_begin
            self._start()
        self._begins.append((self._batch_id, batch))
        self._batch_id += 1
        # judge every batch but the one still running (the previous one)
        if self._judge(upto=len(self._begins) - 2) and not self.gave_up:
            self._begins = [(self._begins[-1][0], batch)]  # the restored state trains from here
            self._restored_begin = batch
            with self._cond:
                self._floor = batch
                self._inbox = {k: v for k, v in self._inbox.items() if k >= batch}
            return
        if self._book.due():
            # the state this batch trains from; restorable once its loss is checked good
            self._pending.append((self._begins[-1][0], self._take()))

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        # fit validates before on_epoch_end: the epoch's last batches are judged first, so
        # that a diverged state is restored before it is validated (its val_loss would reach
        # the logs, and a plateau controller on it would cut on top of the guard's cut)
        if self.gave_up:
            self._undo_after_giving_up()  # the epoch is validated on the restored state
        elif self._begins:
            # not settled: Keras has not handed over every batch's loss yet, so each is waited
            # for; but on data of unknown length the last batch begun may never have run: its
            # loss is given a moment, else it is left to the epoch's end (settled there)
            upto = len(self._begins)
            if not (self.params or {}).get("steps") and not self._arrives(
                self._begins[-1][1], _GRACE_S
            ):
                upto -= 1
            if self._judge(upto=upto):
                self._end_restored = True
            elif upto < len(self._begins) and self._restored_begin == self._begins[-1][1]:
                self._restore_again_if_not_run()  # validated on the restored state

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.gave_up:
            self._undo_after_giving_up()
        elif self._judge(upto=len(self._begins), settled=True):  # Keras has handed over
            self._end_restored = True  # every batch's loss by its epoch's end
        else:
            self._restore_again_if_not_run()
        if self._end_restored:
            # Keras read the epoch's training metrics before the guard judged its last
            # batches: its loss holds the discarded ones. The callbacks after the guard (and
            # History, which Keras adds last) see the loss of the batches checked good
            # instead, as after a restore within the epoch (the metrics are reset there)
            self._end_restored = False
            if logs is not None and "loss" in logs and self._good_mean is not None:
                logs["loss"] = self._good_mean

    def _undo_after_giving_up(self) -> None:
        """Keras runs the batch begun when the guard gave up (it reads ``stop_training``
        after it): back to the good state, once."""
        if self._final_restore:
            self._final_restore = False
            self._restore(again=True)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        _settle_lr(self.model)

    # ------------------------------------------------------------------ judging
    def _loss(self, begin: int, end: int, *, settled: bool = False) -> float | None:
        """The running-mean loss Keras logged for the batch that began at ``begin`` (its
        ``on_train_batch_end`` step lies in ``[begin, end)``), waiting for it if needed.
        ``settled``: Keras has waited for every batch (the epoch ended): a loss not there
        belongs to a batch begun but never run (data of unknown length ends so), ``None``."""
        deadline = time.monotonic() + (0.0 if settled else _WAIT_S)
        with self._cond:
            while True:
                if begin in self._inbox:  # usually there already, under its own step
                    return self._inbox.pop(begin)
                for k in self._inbox:
                    if begin <= k < end:
                        return self._inbox.pop(k)
                left = deadline - time.monotonic()
                if left <= 0:
                    if settled:
                        return None
                    warnings.warn(
                        f"DivergenceGuard: no loss arrived for batch {begin}; not checked",
                        RuntimeWarning,
                        stacklevel=caller_level(),
                    )
                    return None
                self._cond.wait(min(left, 1.0))

    def _arrives(self, begin: int, seconds: float) -> bool:
        """Whether a loss of the batch that began at ``begin`` (or of one after it) is in,
        or comes within ``seconds``; it stays in for :meth:`_loss`."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while not any(k >= begin for k in self._inbox):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def _judge(self, upto: int, *, settled: bool = False) -> bool:
        """Check the losses of the first ``upto`` unjudged batches, in order; True when one
        diverged (the state has then been restored and the LR cut). ``settled``: every batch
        has ended (:meth:`_loss`)."""
        if upto <= 0:
            return False
        todo, self._begins = self._begins[:upto], self._begins[upto:]
        nxt = [b for _, b in todo[1:]] + [self._begins[0][1] if self._begins else 1 << 62]
        for (bid, begin), end in zip(todo, nxt):
            mean = self._loss(begin, end, settled=settled)
            if (
                mean is not None
                and self._restored_begin is not None
                and begin >= self._restored_begin
            ):
                self._restored_begin = None  # it ran, from the restored state
            if mean is None:
                continue
            n = self._n + 1
            loss = (
                mean if n == 1 or not math.isfinite(mean) else n * mean - (n - 1) * self._prev_mean
            )
            # the batches before this one (none: the latest loss checked good)
            good_mean = self._prev_mean if n > 1 else self._last_good
            self._n, self._prev_mean = n, mean
            self._step += 1
            old = self.controller.scale
            action = self._book.check(loss, step=self._step)
            if action == "ok":
                self._last_good = loss
                while self._pending and self._pending[0][0] <= bid:
                    self._book.add(self._pending.pop(0)[1])  # checked good
                continue
            self._good_mean = good_mean
            self._diverged(action, loss, old)
            return True
        return False

    def _diverged(self, action: str, loss: float, old_scale: float) -> None:
        self._restore()
        self._book.good = 0
        if action == "give_up":
            self.gave_up = True
            self._final_restore = True
            self.model.stop_training = True
            warnings.warn(
                f"DivergenceGuard: training diverged again after {self.controller.restores} "
                "restore(s); restored the last good state and stopped training",
                RuntimeWarning,
                stacklevel=caller_level(),
            )
            return
        assert self._handle is not None
        new = self.controller.scale
        self._handle.multiply(new / old_scale if old_scale > 0 else 0.0)
        if self.verbose:
            print(
                f"\nDivergenceGuard: loss {loss!r} at check {self._step} (the losses it judged, "
                f"counted from 1 over all epochs and fit() calls): restored the last good state, "
                f"learning-rate scale {new:.3g}"
            )


# ----------------------------------------------------------------------------- scheduler


class LRScheduler(_LRCallback):
    """Set the optimizer's learning rate from a lrkit schedule, per batch or per epoch
    (the lrkit counterpart of ``keras.callbacks.LearningRateScheduler(fn)``).

    ``per="batch"``: before each batch the LR is ``schedule(step)`` where ``step`` counts the
    batches trained by this callback, starting at ``initial_step`` in its first ``fit()``
    (a later ``fit()`` of the same model counts on; one of another model starts at
    ``initial_step`` again) (default: the optimizer's ``iterations`` at the start of each
    ``fit()``, so a resumed run continues where it stopped).
    When a :class:`DivergenceGuard` restores a state (``iterations`` included), ``step`` goes
    back by the steps it took back and the LR is set again at once, as a schedule inside the
    optimizer rewinds with ``iterations``. With ``steps_per_execution=n`` Keras calls the
    callbacks once per ``n`` batches: the LR set is ``schedule(step)`` at the first of them,
    and ``step`` advances by all ``n``.
    ``per="epoch"``: before each epoch the LR is ``schedule(epoch)``. With ``feedback`` (any
    :class:`lrkit.feedback.Feedback`) the LR is ``feedback.apply(schedule, step)`` and the
    metric ``monitor`` is fed to ``feedback.update`` at every epoch end; the controller's
    state is saved with the optimizer's weights while the fit runs (``BackupAndRestore``,
    ``ModelCheckpoint``), and a fit resumed by ``BackupAndRestore`` goes on from it when its
    controller is built alike (weights loaded outside a fit leave the controller as given).
    Cuts made by
    :class:`ReduceOnPlateau` and :class:`DivergenceGuard` on the same optimizer are kept (the
    value set is multiplied by them). The optimizer must hold a float learning rate; for an
    optimizer-side schedule (free per batch, saved with the model) use
    ``lrkit.keras.schedule``: per batch this callback writes the LR from the host (on the JAX
    backend a host scalar the compiled step takes as an input, after Keras hands the training
    state back to the model variables each batch: less than a Keras callback setting
    ``model.optimizer.learning_rate`` each batch costs, more in CPU time than in wall time;
    docs/overhead.md). At each epoch end ``logs["learning_rate"]`` is
    the LR the epoch's last step used (the last LR set), the meaning :class:`LRLogger`
    documents. ``verbose=1`` prints the LR set at each epoch's start with
    ``per="epoch"`` (as Keras' ``LearningRateScheduler`` does).
    """

    async_safe = True  # on_train_batch_end only records the batch index (Keras' worker thread)

    @V.checked_keywords("lrkit.keras.LRScheduler")
    def __init__(
        self,
        schedule: Schedule | str | Mapping[str, Any],
        *,
        per: str = "batch",
        feedback: Feedback | None = None,
        monitor: str = "val_loss",
        initial_step: int | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__()
        self.schedule = as_schedule(schedule, nonnegative=True)
        self.per = V.choice("per", per, ("batch", "epoch"))
        if isinstance(feedback, (list, tuple)):
            raise ValueError(
                "feedback must be one lrkit.feedback controller (a Keras optimizer has one "
                f"learning rate, no param groups), got a {type(feedback).__name__}"
            )
        check_controllers(feedback, owner=self)  # in lrkit.torch.scheduler's words
        self.feedback = feedback
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be the name of a logged metric, got {V.fmt(monitor)}")
        self.monitor = monitor
        self.initial_step = (
            None if initial_step is None else V.integer("initial_step", initial_step, 0)
        )
        self.verbose = _verbose(verbose)
        self.step = 0
        self._start_pending = False
        self._check_carried = False  # at the first LR set of a run
        self.last_lr: float | None = None
        self._epoch_step = 0  # ``step`` when the epoch began
        self._initial_taken = False  # initial_step read by a fit() (a later one counts on)
        self._mode_checked = False  # the feedback's mode against the metric's, in one fit()
        self._taken_back = 0  # steps a DivergenceGuard's restores took back in this epoch
        # the batches Keras reported done in this epoch (appended from its worker threads,
        # in any order)
        self._ends: list[int] = []

    def _set(self, step: int) -> None:
        opt = _inner_optimizer(self.model, "LRScheduler")
        if not isinstance(opt._learning_rate, keras.Variable):
            raise ValueError(
                "LRScheduler needs an optimizer created with a float learning_rate; this one "
                "holds a schedule (use lrkit.keras.schedule(...) as its learning_rate instead)"
            )
        scale = _lr_scale(opt)
        if self._check_carried:
            self._check_carried = False
            self._warn_uncarried(opt, scale, step)
        # the cuts made by ReduceOnPlateau/DivergenceGuard (the optimizer's multiplier)
        lr = self._value(step) * scale.value
        # the LR as the optimizer holds it (its variable's dtype), as logs and the logger read
        # it: beyond float32's range it is inf, refused as a negative or NaN one is (a function
        # schedule's steps, and those past the ones checked up front, are checked here)
        with np.errstate(over="ignore"):
            held = float(np.asarray(lr, dtype=opt._learning_rate.dtype))
        if not (lr >= 0 and held < math.inf):
            raise V.negative_at_step(
                "schedule: the learning rate",
                lr if not lr >= 0 else held,
                step,
                built_at=None,
                what="LRScheduler",
            )
        _write_lr(opt, lr)
        self.last_lr = held
        self._last_set = step

    def _value(self, step: int) -> float:
        if self.feedback is not None:
            return float(self.feedback.apply(self.schedule, step))
        return float(self.schedule(step))

    def _warn_uncarried(self, opt: Any, scale: _LRScale, step: int) -> None:
        """The first LR set by a run on an optimizer that trained before and carries no lrkit
        multiplier (a model from ``load_model``, whose cuts the float LR holds but nothing
        else): when the LR it holds is below the one this callback would have set at the step
        before (as a cut leaves it), say that the value set now replaces it (the cuts made
        before are dropped)."""
        if step < 1 or scale.loaded or scale.seed_run is not _fit_run(self.model):
            return
        if _iterations(opt) == 0:
            return
        var = opt._learning_rate
        held = to_host(var)
        before = np.asarray(self._value(step - 1) * scale.value, dtype=held.dtype)
        if not held < before:  # a cut lowers the LR; any other value is not one
            return
        at = f"step {step - 1}" if self.per == "batch" else f"epoch {step - 1}"
        warnings.warn(
            f"LRScheduler: the optimizer's learning rate {float(held):.6g} is below the "
            f"schedule's at {at} ({float(before):.6g}), where training stopped; it is replaced "
            "by the schedule's values. If it holds cuts made by ReduceOnPlateau/DivergenceGuard "
            "before the model was saved (keras.saving.load_model, or load_weights before "
            "fit()), pass their restored controllers (controller= after load_state_dict) to "
            "keep them; a schedule in the optimizer (lrkit.keras.schedule) keeps them in a "
            "model file",
            RuntimeWarning,
            stacklevel=caller_level(),
        )

    def _controller(self) -> Any:
        return self.feedback

    def _own_state(self) -> Any:
        feedback = None if self.feedback is None else self.feedback.state_dict()
        return (feedback, self._mode_checked)

    def _load_own_state(self, state: Any) -> None:
        feedback, self._mode_checked = state
        if self.feedback is not None and feedback is not None:
            self.feedback.load_state_dict(feedback)
        self._initial_taken = False  # initial_step (or the new optimizer's count) read again

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        # feedback= as built, or assigned since: checked (a live guard's detector refused)
        # and recorded as this callback's
        check_controllers(self.feedback, owner=self)
        self._begin_fit()
        if self.feedback is not None and not self._mode_checked:  # once, as ReduceOnPlateau
            self._mode_checked = True
            _warn_against_metric("LRScheduler", "feedback=", self.model, self.monitor,
                                 self.feedback)  # fmt: skip
        # the step is read at the first epoch's beginning: a BackupAndRestore placed after
        # this callback restores ``iterations`` in its own on_train_begin
        self._start_pending = True
        self._check_carried = True
        opt = _inner_optimizer(self.model, "LRScheduler")
        scale = _lr_scale(opt)
        scale.claim(_fit_run(self.model))
        if self.feedback is not None:  # saved with the optimizer's multiplier
            scale.feedback_owner = weakref.ref(self)
        if self.per == "batch":
            _REWIND_LISTENERS.setdefault(opt, weakref.WeakSet()).add(self)

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        if self.feedback is not None and getattr(model, "optimizer", None) is not None:
            # the fit() a state is loaded in (a BackupAndRestore's) is read off the model
            _lr_scale(_inner_optimizer(model, "LRScheduler")).model_ref = weakref.ref(model)

    def _take_saved_feedback(self) -> None:
        """The ``feedback=`` controller's state saved with the optimizer's multiplier, when a
        fit's set-up loaded weights (a ``BackupAndRestore`` resume): the controller goes on
        from it, as its cuts and bookkeeping were when they were saved. A state loaded outside
        a fit (``load_weights`` before a new stage) is not taken, nor one of a controller
        built otherwise (said)."""
        scale = _lr_scale(_inner_optimizer(self.model, "LRScheduler"))
        saved = scale.saved_feedback
        if saved is None or self.feedback is None:
            return
        run = _fit_run(self.model)
        if run is None or scale.saved_run is not run:  # loaded outside this fit: not its own
            return
        if saved.get("monitor", self.monitor) != self.monitor:  # another LRScheduler's
            return
        scale.saved_feedback = scale.saved_run = None
        try:
            differ = settings_differ(self.feedback, saved.get("state"))
            if differ == ["type"]:
                kind = type(self.feedback).__name__
                raise ValueError(f"it holds a {saved.get('type')}'s, not a {kind}'s")
            if differ:
                raise ValueError(f"built with other {', '.join(differ)}")
            self.feedback.load_state_dict(saved["state"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            warnings.warn(
                f"LRScheduler: the weights loaded hold a feedback controller's state this "
                f"callback's feedback= cannot take ({exc}); it goes on from its own state",
                RuntimeWarning,
                stacklevel=caller_level(),
            )

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for listeners in _REWIND_LISTENERS.values():
            listeners.discard(self)
        scale = _lr_scale(_inner_optimizer(self.model, "LRScheduler"))
        if scale.feedback_owner is not None and scale.feedback_owner() is self:
            scale.feedback_owner = None  # saved while its fit() runs only
        _settle_lr(self.model)

    def _rewound(self, steps: int) -> None:
        """A DivergenceGuard restored a state ``steps`` optimizer steps back: the schedule's
        step goes back with ``iterations``, and the LR is set again at once."""
        self._taken_back += steps
        self.step -= steps
        self._set(self.step)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._start_pending:
            self._start_pending = False
            self._take_saved_feedback()  # loaded by a BackupAndRestore's on_train_begin
            if self.initial_step is None:
                self.step = _iterations(_inner_optimizer(self.model, "LRScheduler"))
            elif not self._initial_taken:  # the first fit(); a later one counts on
                self._initial_taken = True
                self.step = self.initial_step
        self._epoch_step = self.step
        self._taken_back = 0
        self._ends = []
        if self.per == "batch" and not (self.params or {}).get("steps"):
            self._it_epoch = _iterations(_inner_optimizer(self.model, "LRScheduler"))
        if self.per == "epoch":
            self._set(epoch)
            if self.verbose:
                lr = f"{self.last_lr:.7g}"
                print(f"\nEpoch {epoch + 1}: LRScheduler set the learning rate to {lr}")

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.per == "batch":
            # ``batch``: the epoch's first batch of this call (one call per steps_per_execution)
            self.step = self._epoch_step + batch - self._taken_back
            self._set(self.step)
            self._ends = _compacted(self._ends)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # may run in one of Keras' worker threads, in any order: only record the batch
        if self.per == "batch":
            self._ends.append(batch)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.per == "batch" and self._ends:  # Keras has waited for every batch by now
            opt = _inner_optimizer(self.model, "LRScheduler")
            moved = _counter_moved(self.model, opt, getattr(self, "_it_epoch", 0), self.params)
            done = _batches_done(
                self.params, self._ends, None if moved is None else moved + self._taken_back
            )
            self.step = self._epoch_step + done - self._taken_back
            if getattr(self, "_last_set", None) != self.step - 1:  # a batch begun, never run
                self._set(self.step - 1)  # the LR of the epoch's last step, as logged
        logs = logs if logs is not None else {}
        if self.feedback is not None:
            value = logs.get(self.monitor)
            if value is None:
                warnings.warn(
                    f"LRScheduler: metric {self.monitor!r} is not in the logs; feedback skipped",
                    RuntimeWarning,
                    stacklevel=caller_level(),
                )
            else:
                # the step of the schedule that trains next (a restart begins the schedule
                # again there): the next batch, or the next epoch
                nxt = self.step if self.per == "batch" else epoch + 1
                _feed_once(members_of(self.feedback), self, epoch)
                self.feedback.update(as_metric(value), step=nxt)
        if self.last_lr is not None:
            logs["learning_rate"] = self.last_lr


# ----------------------------------------------------------------------------- logger


class LRLogger(keras.callbacks.Callback):  # type: ignore[misc]
    """Record the learning rate each training step used, whatever drives it: a float, a Keras
    or lrkit schedule, Keras' ``LearningRateScheduler``, :class:`LRScheduler` per batch or per
    epoch, cuts by :class:`ReduceOnPlateau` / :class:`DivergenceGuard`.

    One meaning for every driver: at each epoch end ``logs[key]`` is set to **the learning
    rate the epoch's last training step used** (so Keras' ``History`` and CSV/TensorBoard
    loggers placed after this callback record it). This is what Keras' own
    ``LearningRateScheduler`` writes to ``logs["learning_rate"]`` (the LR it set for the
    epoch); :class:`LRScheduler` writes the same. ``per="epoch"``: :attr:`history` gets
    ``(epoch, lr)`` with that value; ``per="batch"``: ``(iteration, lr)`` for every step, where
    ``iteration`` is the optimizer's ``iterations`` before the step (with
    ``steps_per_execution=n``, every one of the ``n`` steps of a call, at the LR the optimizer
    gives each: a schedule's value at that step, a float LR as read when the call began).

    The LR is read when a batch starts, after the callbacks listed before this one have set it
    (place the logger after ``LearningRateScheduler``/:class:`LRScheduler`); the per-batch cost
    is a few microseconds of host work: a float learning rate is re-read only when Keras has
    synced the model (after a callback changed something), a schedule is evaluated for all the
    epoch's steps at once at the epoch end (lrkit schedules on the host, exactly; other Keras
    schedules called on all the steps at once, which on JAX can differ from the compiled step's
    own evaluation by a float32 rounding step). :attr:`history` is filled at
    each epoch end.
    """

    async_safe = True  # on_train_batch_end only records the batch index (Keras' worker thread)

    @V.checked_keywords("lrkit.keras.LRLogger")
    def __init__(self, per: str = "epoch", *, key: str = "learning_rate") -> None:
        super().__init__()
        self.per = V.choice("per", per, ("batch", "epoch"))
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, got {V.fmt(key)}")
        self.key = key
        self.history: list[tuple[int, float]] = []
        # (batch, iteration, lr or schedule, scale) when a call of the train function began
        self._records: list[tuple[int, int, Any, float]] = []
        # the batches Keras reported done in this epoch (appended from its worker threads,
        # in any order)
        self._ends: list[int] = []
        self._opt: Any = None
        self._it_base = self._it_epoch = 0
        self._unread = self._went_back = False
        self._lr = math.nan

    def _host_value(self, variable: Any) -> Any:
        """``variable``'s value if it can be read without making Keras wait or sync (on JAX
        the variables are detached from the model during an epoch unless a callback synced
        it); None otherwise."""
        value = getattr(variable, "_value", variable)
        if value is None:
            return None
        return to_host(value)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._opt = _inner_optimizer(self.model, "LRLogger")
        _REWIND_LISTENERS.setdefault(self._opt, weakref.WeakSet()).add(self)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for listeners in _REWIND_LISTENERS.values():
            listeners.discard(self)

    def _rewound(self, steps: int) -> None:
        # a DivergenceGuard restored a state: the counter went back
        self._went_back = True

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._opt = _inner_optimizer(self.model, "LRLogger")  # synced at epoch boundaries
        self._records = []
        self._ends = []
        self._it_base = self._it_epoch = _iterations(self._opt)
        self._unread = False  # whether a batch of this epoch could not read the counter
        self._went_back = False  # whether a DivergenceGuard rewound it in this epoch
        if isinstance(self._opt._learning_rate, keras.Variable):
            self._lr = float(np.asarray(self._host_value(self._opt._learning_rate)))

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        opt = self._opt
        it = self._host_value(_counter(opt))
        if it is not None:
            self._it_base = int(it) - batch  # a restore may have rewound it
        else:
            self._unread = True
        lr = opt._learning_rate
        if isinstance(lr, keras.Variable):
            value = self._host_value(lr)
            if value is not None:
                self._lr = float(value)
            self._records.append((batch, self._it_base + batch, None, self._lr))
        else:
            scale = float(getattr(lr, "scale", 1.0))
            self._records.append((batch, self._it_base + batch, lr, scale))
        if self.per == "epoch" and len(self._records) > 2:
            # the epoch's last LR is all it logs: the call that ran last, and one begun after
            # it that may not run (a long epoch would otherwise hold a record per batch)
            del self._records[:-2]
        self._ends = _compacted(self._ends)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # may run in one of Keras' worker threads, in any order: only record the batch
        self._ends.append(batch)

    def _resolve(self) -> list[tuple[int, float]]:
        """``(iteration, lr)`` of the epoch's steps (schedules evaluated at once, per scale)."""
        recs = self._records
        # every step of every call (steps_per_execution: a call runs several)
        it_end = _counter_moved(self.model, self._opt, 0, self.params)
        if it_end is None:
            last = _batches_done(self.params, self._ends)
        else:  # length unknown: the counter says which steps ran (a rewind included)
            recs = [r for r in recs if r[1] < it_end]  # a batch begun, never run
            last = recs[-1][0] + it_end - recs[-1][1] if recs else 0
        ends = [r[0] for r in recs[1:]] + [max(last, recs[-1][0] + 1)] if recs else []
        runs = [
            (it + k, sched, scale)
            for (batch, it, sched, scale), end in zip(recs, ends)
            for k in range(max(end - batch, 1))
        ]
        if _skips_steps(self.model):  # the steps it skipped used no learning rate
            it_end = _iterations(self._opt)
            if not self._unread:  # read at every batch: a skipped step is a batch the next
                # one's counter did not move past (the epoch's last: the counter ended there)
                runs = [
                    r for r, nxt in zip(runs, runs[1:] + [None]) if nxt is None or nxt[0] != r[0]
                ]
                while runs and runs[-1][0] >= it_end:
                    runs.pop()
            elif not self._went_back:  # not read, never rewound: the steps that ran are
                # its last ones counted, up to the counter synced at the epoch's end
                ran = max(it_end - self._it_epoch, 0)
                kept = runs[len(runs) - min(ran, len(runs)) :] if ran else []
                runs = [
                    (it_end - len(kept) + k, sched, scale)
                    for k, (_, sched, scale) in enumerate(kept)
                ]
        out: list[tuple[int, float]] = []
        i = 0
        while i < len(runs):
            it, sched, scale = runs[i]
            if sched is None:
                out.append((it, scale))
                i += 1
                continue
            j = i
            while j < len(runs) and runs[j][1] is sched and runs[j][2] == scale:
                j += 1
            steps = np.asarray([r[0] for r in runs[i:j]], dtype=np.int64)
            out.extend(zip(steps.tolist(), _schedule_values(sched, scale, steps)))
            i = j
        return out

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        steps = self._resolve()
        self._records = []
        if not steps:
            return
        if self.per == "batch":
            self.history.extend(steps)
        else:
            self.history.append((epoch, steps[-1][1]))
        if logs is not None:
            logs[self.key] = steps[-1][1]

    @property
    def lrs(self) -> np.ndarray:
        """The learning rates of :attr:`history` (without the epochs or iterations), as a
        float64 array: one per epoch, or one per step with ``per="batch"``."""
        return np.asarray([lr for _, lr in self.history], dtype=np.float64)


def _schedule_values(sched: Any, scale: float, steps: np.ndarray) -> list[float]:
    """The learning rates ``sched`` (held by an optimizer, with multiplier ``scale``) gives at
    ``steps``, as the optimizer computes them."""
    if isinstance(sched, LRKitSchedule):
        at = sched if scale == sched.scale else LRKitSchedule(sched.schedule, scale=scale)
        return [float(v) for v in at.values(steps)]
    if isinstance(sched, ScaledSchedule) and scale != sched.scale:
        sched = ScaledSchedule(sched.inner, scale=scale)
    if not isinstance(sched, keras.optimizers.schedules.LearningRateSchedule):
        # a learning-rate callable: Keras' optimizers call it with no arguments
        return [float(to_host(sched()))] * len(steps)
    try:  # Keras' schedules are elementwise: all steps in one call
        vals = np.asarray(to_host(sched(steps)), dtype=np.float64)
        if vals.shape == steps.shape:
            return vals.tolist()  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - a schedule written for scalar steps only
        pass
    return [float(to_host(sched(int(t)))) for t in steps]
