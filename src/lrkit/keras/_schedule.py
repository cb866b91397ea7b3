"""lrkit schedules as Keras ``LearningRateSchedule`` objects, exact in float32 on every backend.

The value at a step is computed by the schedule's float64 numpy closed form on the host and
rounded once to float32, so it equals ``s.values(steps).astype(np.float32)`` bit for bit. Inside
a compiled train step the host call goes through ``jax.pure_callback`` (JAX backend) or
``tf.numpy_function`` (TensorFlow); the torch backend runs eagerly and calls numpy directly.

Both classes hold a *multiplier* (``scale``), read on the host at every evaluation, which the
lrkit plateau/guard callbacks set. It is a Python float rather than a ``keras.Variable`` on
purpose: with the JAX backend a variable that is not part of the optimizer's state is frozen
into the compiled train step as a constant, so changing it mid-training would have no effect.
The scale is saved in ``get_config()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from .. import _validate as V
from ..schedules import as_schedule

__all__ = ["LRKitSchedule", "ScaledSchedule", "schedule", "host_eval"]

_HostFn = Callable[[np.ndarray], np.ndarray]


def host_eval(fn: _HostFn, step: Any) -> Any:
    """Evaluate ``fn(np.float64 steps) -> np.float32 array`` on ``step`` (a Keras variable,
    tensor, tracer or number) and return a float32 backend tensor of the same shape."""
    if isinstance(step, keras.Variable):
        step = step.value
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        x = jnp.asarray(step)
        if isinstance(x, jax.core.Tracer):
            shape = jax.ShapeDtypeStruct(x.shape, jnp.float32)
            return jax.pure_callback(
                lambda t: fn(np.asarray(t, dtype=np.float64)), shape, x, vmap_method="expand_dims"
            )
        return jnp.asarray(fn(np.asarray(x, dtype=np.float64)))
    if backend == "tensorflow":  # pragma: no cover - tensorflow is not installed in CI
        import tensorflow as tf

        x = tf.convert_to_tensor(step)
        if tf.executing_eagerly():
            return tf.constant(fn(np.asarray(x.numpy(), dtype=np.float64)))
        out = tf.numpy_function(lambda t: fn(np.asarray(t, dtype=np.float64)), [x], tf.float32)
        out.set_shape(x.shape)
        return out
    # torch, numpy (and anything eager): plain host computation
    t = np.asarray(keras.ops.convert_to_numpy(step), dtype=np.float64)
    return keras.ops.convert_to_tensor(fn(t), dtype="float32")


class _Scaled:
    """The host-side multiplier shared by both schedule classes."""

    _scale: float

    @property
    def scale(self) -> float:
        """The multiplier applied to the schedule (1.0 unless a callback changed it)."""
        return self._scale

    def set_scale(self, scale: float) -> None:
        self._scale = V.non_negative("scale", scale)

    def multiply(self, factor: float) -> float:
        """Multiply the scale by ``factor`` (>= 0); returns the new scale."""
        self._scale = self._scale * V.non_negative("factor", factor)
        return self._scale


@keras.saving.register_keras_serializable(package="lrkit")
class LRKitSchedule(_Scaled, keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
    """A lrkit schedule as a Keras ``LearningRateSchedule``: ``scale * schedule(step)`` in
    float32, computed in float64 on the host and rounded once (exactly the numpy path).

    ``get_config()`` holds ``schedule.to_dict()`` (any family or composite) and the scale; the
    class is registered with ``keras.saving`` so models saved to ``.keras`` files keep it.
    """

    def __init__(self, schedule: Any, scale: float = 1.0, name: str | None = None) -> None:
        super().__init__()
        self.schedule = as_schedule(schedule)
        self._scale = V.non_negative("scale", scale)
        self.name = name

    def _host(self, t: np.ndarray) -> np.ndarray:
        values = self.schedule.values(t)
        if self._scale != 1.0:
            values = values * self._scale
        return np.asarray(values, dtype=np.float32)

    def __call__(self, step: Any) -> Any:
        return host_eval(self._host, step)

    def values(self, steps: Any) -> np.ndarray:
        """The float32 values at many steps (numpy; what ``__call__`` returns, step by step)."""
        return self._host(np.asarray(steps, dtype=np.float64))

    def get_config(self) -> dict[str, Any]:
        return {"schedule": self.schedule.to_dict(), "scale": self._scale, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LRKitSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        extra = "" if self._scale == 1.0 else f", scale={self._scale!r}"
        return f"<lrkit.keras.schedule {self.schedule}{extra}>"


@keras.saving.register_keras_serializable(package="lrkit")
class ScaledSchedule(_Scaled, keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
    """``scale * inner(step)`` for any Keras schedule (or callable) ``inner``; the lrkit
    callbacks wrap an optimizer's foreign schedule in it to scale its learning rate. The scale
    is read on the host at every call, so changes take effect inside compiled train steps."""

    def __init__(self, schedule: Any, scale: float = 1.0, name: str | None = None) -> None:
        super().__init__()
        if isinstance(schedule, dict):
            schedule = keras.saving.deserialize_keras_object(schedule)
        if not callable(schedule):
            raise ValueError(f"schedule must be a Keras LearningRateSchedule, got {schedule!r}")
        self.inner = schedule
        self._scale = V.non_negative("scale", scale)
        self.name = name

    def _factor(self, t: np.ndarray) -> np.ndarray:
        return np.full(np.shape(t), self._scale, dtype=np.float32)

    def __call__(self, step: Any) -> Any:
        inner = keras.ops.cast(self.inner(step), "float32")
        return inner * host_eval(self._factor, step)

    def get_config(self) -> dict[str, Any]:
        return {
            "schedule": keras.saving.serialize_keras_object(self.inner),
            "scale": self._scale,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ScaledSchedule:
        return cls(**config)


def schedule(s: Any, *, name: str | None = None) -> LRKitSchedule:
    """A Keras ``LearningRateSchedule`` whose value at every step is ``s``'s, in float32.

    ``s`` is a lrkit schedule, a spec string (``"cosine(lr=0.1, total_steps=1000)"``) or a
    ``to_dict()`` dict. Pass the result as an optimizer's ``learning_rate``::

        opt = keras.optimizers.SGD(learning_rate=lrkit.keras.schedule(s), momentum=0.9)

    The step is the optimizer's ``iterations`` (the number of updates applied so far).
    """
    return LRKitSchedule(s, name=name)
