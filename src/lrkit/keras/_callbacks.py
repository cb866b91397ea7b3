"""Keras callbacks on lrkit's framework-free controllers and schedules."""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras
import numpy as np

from .. import _validate as V
from ..feedback import DivergenceGuard as _GuardCore
from ..feedback import Feedback
from ..feedback import ReduceOnPlateau as _PlateauCore
from ..schedules import Schedule, as_schedule
from ._schedule import LRKitSchedule, ScaledSchedule

__all__ = ["DivergenceGuard", "LRLogger", "LRScheduler", "ReduceLROnPlateau", "ReduceOnPlateau"]


# ----------------------------------------------------------------------------- LR access


def _inner_optimizer(model: Any) -> Any:
    opt = getattr(model, "optimizer", None)
    if opt is None:
        raise ValueError("model must be compiled with an optimizer before training")
    return getattr(opt, "inner_optimizer", opt)  # LossScaleOptimizer


def _current_lr(model: Any) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(_inner_optimizer(model).learning_rate)))


# Multipliers the lrkit callbacks applied to an optimizer's float learning rate; LRScheduler
# keeps applying them when it sets the LR (otherwise its next update would undo a plateau cut).
_SCALE_ATTR = "_lrkit_lr_scale"


def _float_lr_scale(opt: Any) -> float:
    return float(getattr(opt, _SCALE_ATTR, 1.0))


class _LRHandle:
    """Multiply an optimizer's learning rate by a factor, whatever it holds: a lrkit schedule
    (its host-side scale), a foreign schedule or callable (wrapped once in
    :class:`ScaledSchedule`, and the train function rebuilt so it sees the wrapper), or a
    float learning-rate variable (assigned ``lr * factor``, as Keras' callbacks do)."""

    def __init__(self, model: Any) -> None:
        opt = _inner_optimizer(model)
        lr = opt._learning_rate
        self.opt = opt
        self.model = model
        if isinstance(lr, (LRKitSchedule, ScaledSchedule)):
            self.target: Any = lr
        elif isinstance(lr, keras.Variable):
            self.target = None
        elif callable(lr):
            wrapped = ScaledSchedule(lr)
            opt._learning_rate = wrapped
            self.target = wrapped
            if getattr(model, "train_function", None) is not None:
                model.make_train_function(force=True)  # retrace with the wrapper
        else:  # pragma: no cover - keras always holds one of the above
            raise ValueError(f"unsupported learning rate {lr!r} in the optimizer")

    def multiply(self, factor: float) -> None:
        if factor == 1.0:
            return
        if self.target is not None:
            self.target.multiply(factor)
            if self.target.compiled_scale and getattr(self.model, "train_function", None):
                self.model.make_train_function(force=True)  # the scale is a compiled constant
        else:
            setattr(self.opt, _SCALE_ATTR, _float_lr_scale(self.opt) * factor)
            self.opt.learning_rate = float(np.asarray(self.opt._learning_rate.numpy())) * factor


def _resolve_mode(mode: str, monitor: str) -> str:
    mode = V.choice("mode", mode, ("auto", "min", "max"))
    if mode == "auto":
        return "max" if ("acc" in monitor or monitor.startswith("fmeasure")) else "min"
    return mode


# ----------------------------------------------------------------------------- plateau


class ReduceOnPlateau(keras.callbacks.Callback):  # type: ignore[misc]
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    Built on :class:`lrkit.feedback.ReduceOnPlateau` (PyTorch's bookkeeping, sign-correct
    relative threshold: see there). The metric is read from the epoch logs at every epoch end.
    Unlike ``keras.callbacks.ReduceLROnPlateau`` it also works when the optimizer holds a
    schedule: an lrkit schedule (``lrkit.keras.schedule``) is scaled in place, any other
    Keras schedule is wrapped once in :class:`lrkit.keras.ScaledSchedule`; a float learning
    rate is multiplied like Keras does. Multipliers of several callbacks compose.

    Note the timing differs from Keras' callback: the reduction comes on the ``patience + 1``-th
    non-improving epoch (PyTorch's convention); use ``patience=keras_patience - 1`` and
    ``threshold_mode="abs"`` to reproduce Keras.

    ``controller`` (optional) is a ready :class:`lrkit.feedback.ReduceOnPlateau` (e.g. restored
    with ``load_state_dict``); the other arguments are then ignored.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_scale: float = 0.0,
        mode: str = "auto",
        controller: _PlateauCore | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be the name of a logged metric, got {monitor!r}")
        self.monitor = monitor
        if controller is None:
            controller = _PlateauCore(
                mode=_resolve_mode(mode, monitor),  # type: ignore[arg-type]
                factor=factor,
                patience=patience,
                threshold=threshold,
                threshold_mode=threshold_mode,  # type: ignore[arg-type]
                cooldown=cooldown,
                min_scale=min_scale,
            )
        elif not isinstance(controller, _PlateauCore):
            raise ValueError(
                f"controller must be a lrkit.feedback.ReduceOnPlateau, got {controller!r}"
            )
        self.controller = controller
        self.verbose = verbose
        self._handle: _LRHandle | None = None

    @property
    def scale(self) -> float:
        return self.controller.scale

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._handle = _LRHandle(self.model)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"ReduceOnPlateau: metric {self.monitor!r} is not in the logs (available: "
                f"{', '.join(sorted(logs))}); skipping",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        old = self.controller.scale
        new = self.controller.update(float(value), step=epoch)
        if new != old:
            if self._handle is None:
                self._handle = _LRHandle(self.model)
            self._handle.multiply(new / old if old > 0 else 0.0)
            if self.verbose:
                print(
                    f"\nEpoch {epoch + 1}: ReduceOnPlateau scaled the learning rate by "
                    f"{new / old if old else 0.0:.3g} (scale {new:.3g})"
                )


ReduceLROnPlateau = ReduceOnPlateau


# ----------------------------------------------------------------------------- guard


def _values(variables: list[Any]) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(v.value), copy=True) for v in variables]


class DivergenceGuard(keras.callbacks.Callback):  # type: ignore[misc]
    """Restore the last good state and cut the learning rate when training diverges.

    After every batch the batch loss (recovered exactly from Keras' running mean when batch
    sizes are equal) goes to :class:`lrkit.feedback.DivergenceGuard`: a NaN/inf loss or a spike
    above ``spike_factor`` times the median of the last ``window`` good losses restores the
    snapshot of all model variables and optimizer variables (iterations included, so a schedule
    rewinds with them) taken every ``snapshot_every`` good batches, resets the metrics, and
    multiplies the learning rate by ``factor`` (schedules included, as :class:`ReduceOnPlateau`).
    After ``max_restores`` restores the next divergence restores and stops training
    (``model.stop_training = True``; :attr:`gave_up` becomes True).

    ``guard`` (optional) is a ready :class:`lrkit.feedback.DivergenceGuard`; the other
    controller arguments are then ignored. Snapshots are host (numpy) copies.
    """

    def __init__(
        self,
        factor: float = 0.5,
        max_restores: int = 3,
        spike_factor: float | None = 10.0,
        window: int = 50,
        min_history: int = 10,
        min_scale: float = 0.0,
        snapshot_every: int = 50,
        guard: _GuardCore | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__()
        if guard is None:
            guard = _GuardCore(
                factor=factor,
                max_restores=max_restores,
                spike_factor=spike_factor,
                window=window,
                min_history=min_history,
                min_scale=min_scale,
            )
        elif not isinstance(guard, _GuardCore):
            raise ValueError(f"guard must be a lrkit.feedback.DivergenceGuard, got {guard!r}")
        self.guard = guard
        self.snapshot_every = V.integer("snapshot_every", snapshot_every, 1)
        self.verbose = verbose
        self.gave_up = False
        self.restored_at: list[int] = []
        self._handle: _LRHandle | None = None
        self._snapshot: tuple[list[np.ndarray], list[np.ndarray]] | None = None
        self._n = 0  # batches in Keras' running loss mean
        self._prev_mean = 0.0
        self._good = 0
        self._step = 0

    @property
    def scale(self) -> float:
        return self.guard.scale

    def _opt_variables(self) -> list[Any]:
        # every optimizer variable but a float learning rate: the LR in use is kept (with the
        # cuts other callbacks made since the snapshot) and then multiplied by ``factor``
        lr = _inner_optimizer(self.model)._learning_rate
        return [v for v in self.model.optimizer.variables if v is not lr]

    def _take(self) -> None:
        model = self.model
        self._snapshot = (_values(model.variables), _values(self._opt_variables()))

    def _restore(self) -> None:
        model = self.model
        assert self._snapshot is not None
        mvals, ovals = self._snapshot
        for v, x in zip(model.variables, mvals):
            v.assign(x)
        for v, x in zip(self._opt_variables(), ovals):
            v.assign(x)
        model.reset_metrics()
        self._n = 0
        self._prev_mean = 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._handle = _LRHandle(self.model)
        self.gave_up = False
        self._take()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._n = 0
        self._prev_mean = 0.0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        if "loss" not in logs:
            return
        mean = float(np.asarray(logs["loss"]))
        n = self._n + 1
        loss = mean if n == 1 else n * mean - (n - 1) * self._prev_mean
        if not math.isfinite(mean):
            loss = mean
        self._n, self._prev_mean = n, mean
        self._step += 1
        old = self.guard.scale
        action = self.guard.check(loss, step=self._step)
        if action == "ok":
            self._good += 1
            if self._good % self.snapshot_every == 0:
                self._take()
            return
        self._restore()
        self.restored_at.append(self._step)
        if action == "give_up":
            self.gave_up = True
            self.model.stop_training = True
            warnings.warn(
                f"DivergenceGuard: training diverged again after {self.guard.restores} "
                "restore(s); restored the last good state and stopped training",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        assert self._handle is not None
        new = self.guard.scale
        self._handle.multiply(new / old if old > 0 else 0.0)
        if self.verbose:
            print(
                f"\nDivergenceGuard: loss {loss!r} at batch {self._step}: restored the last "
                f"good state, learning-rate scale {new:.3g}"
            )


# ----------------------------------------------------------------------------- scheduler


class LRScheduler(keras.callbacks.Callback):  # type: ignore[misc]
    """Set the optimizer's learning rate from a lrkit schedule, per batch or per epoch
    (the lrkit counterpart of ``keras.callbacks.LearningRateScheduler(fn)``).

    ``per="batch"``: before each batch the LR is ``schedule(step)`` where ``step`` counts the
    batches trained by this callback, starting at ``initial_step`` (default: the optimizer's
    ``iterations`` at the start of training, so a resumed run continues where it stopped).
    ``per="epoch"``: before each epoch the LR is ``schedule(epoch)``. With ``feedback`` (any
    :class:`lrkit.feedback.Feedback`) the LR is ``feedback.apply(schedule, step)`` and the
    metric ``monitor`` is fed to ``feedback.update`` at every epoch end. Cuts made by
    :class:`ReduceOnPlateau` and :class:`DivergenceGuard` on the same optimizer are kept (the
    value set is multiplied by them). The optimizer must hold a float learning rate; for an
    optimizer-side schedule (cheaper per batch, saved with the model) use
    ``lrkit.keras.schedule``. ``logs["learning_rate"]`` holds the last LR set.
    """

    def __init__(
        self,
        schedule: Schedule | str | dict[str, Any],
        per: str = "batch",
        feedback: Feedback | None = None,
        monitor: str = "val_loss",
        initial_step: int | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__()
        self.schedule = as_schedule(schedule)
        self.per = V.choice("per", per, ("batch", "epoch"))
        if feedback is not None and not isinstance(feedback, Feedback):
            raise ValueError(f"feedback must be a lrkit.feedback.Feedback, got {feedback!r}")
        self.feedback = feedback
        self.monitor = monitor
        self.initial_step = (
            None if initial_step is None else V.integer("initial_step", initial_step, 0)
        )
        self.verbose = verbose
        self.step = 0
        self.last_lr: float | None = None

    def _set(self, step: int) -> None:
        opt = _inner_optimizer(self.model)
        if not isinstance(opt._learning_rate, keras.Variable):
            raise ValueError(
                "LRScheduler needs an optimizer created with a float learning_rate; this one "
                "holds a schedule (use lrkit.keras.schedule(...) as its learning_rate instead)"
            )
        lr = (
            self.feedback.apply(self.schedule, step)
            if self.feedback is not None
            else self.schedule(step)
        )
        lr = float(lr) * _float_lr_scale(opt)  # cuts made by ReduceOnPlateau/DivergenceGuard
        opt.learning_rate = lr
        self.last_lr = lr

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.initial_step is not None:
            self.step = self.initial_step
        else:
            self.step = int(keras.ops.convert_to_numpy(_inner_optimizer(self.model).iterations))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.per == "epoch":
            self._set(epoch)
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: LRScheduler set the learning rate to {self.last_lr}")

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.per == "batch":
            self._set(self.step)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.per == "batch":
            self.step += 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        if self.feedback is not None:
            value = logs.get(self.monitor)
            if value is None:
                warnings.warn(
                    f"LRScheduler: metric {self.monitor!r} is not in the logs; feedback skipped",
                    RuntimeWarning,
                    stacklevel=2,
                )
            else:
                self.feedback.update(float(value), step=self.step if self.per == "batch" else epoch)
        if self.last_lr is not None:
            logs["learning_rate"] = self.last_lr


# ----------------------------------------------------------------------------- logger


class LRLogger(keras.callbacks.Callback):  # type: ignore[misc]
    """Record the learning rate the optimizer uses (whatever drives it: a float, a Keras or
    lrkit schedule, the lrkit callbacks).

    ``per="epoch"``: :attr:`history` gets ``(epoch, lr)`` with the LR of the epoch's first step;
    ``per="batch"``: ``(iteration, lr)`` for every step (slower: reads the optimizer each
    batch). At each epoch end ``logs[key]`` is set to the LR of the next step, so Keras'
    ``History`` (and CSV/TensorBoard loggers placed after this callback) record it.
    """

    def __init__(self, per: str = "epoch", key: str = "learning_rate") -> None:
        super().__init__()
        self.per = V.choice("per", per, ("batch", "epoch"))
        self.key = key
        self.history: list[tuple[int, float]] = []

    def _record(self, index: int | None = None) -> None:
        opt = _inner_optimizer(self.model)
        if index is None:
            index = int(keras.ops.convert_to_numpy(opt.iterations))
        self.history.append((index, _current_lr(self.model)))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.per == "epoch":
            self._record(epoch)

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.per == "batch":
            self._record()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs[self.key] = _current_lr(self.model)

    @property
    def lrs(self) -> np.ndarray:
        return np.asarray([lr for _, lr in self.history], dtype=np.float64)
