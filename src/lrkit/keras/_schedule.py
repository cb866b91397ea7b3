"""lrkit schedules as Keras ``LearningRateSchedule`` objects, exact in float32 on every backend.

The value at a step equals the schedule's float64 numpy closed form rounded once to float32,
``schedule.values(steps).astype(np.float32)`` bit for bit. On the JAX backend a compiled train
step reads it from a value table built once on the host (:mod:`lrkit.schedules.tables`), a
constant of the compiled program: no host round trip per step. ``evaluation="host"`` keeps
the float64 host call inside the step instead (``jax.pure_callback``); TensorFlow uses
``tf.numpy_function`` and the torch backend, which runs eagerly, calls numpy directly.

Both classes hold a *multiplier* (``scale``) which the lrkit plateau/guard callbacks set. It is
a Python float rather than a ``keras.Variable`` on purpose: with the JAX backend a variable
that is not part of the optimizer's state is frozen into the compiled train step as a constant.
On the JAX backend the scale is a constant of the compiled step as well (``compiled_scale``):
the lrkit callbacks rebuild the train function when they change it (a retrace, once per
change); :meth:`set_scale` / :meth:`multiply` called elsewhere (between two ``fit`` calls, or
in a callback of your own) drop the compiled traces (``jax.clear_caches()``) once the
schedule has been traced, so the next step traces again with the new scale. The scale is
saved in ``get_config()`` (``model.save``), and with the optimizer's variables once a lrkit
callback has attached its multiplier to the optimizer (``save_weights``,
``keras.callbacks.BackupAndRestore``).
"""

from __future__ import annotations

import functools
import types
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np

from .. import _validate as V
from .._format import shorten
from .._runtime import caller_level
from ..schedules import as_schedule, from_dict_with, holds_callable, to_dict_with
from ..schedules.tables import EVALUATIONS, TABLE_LIMIT, formula_error, host_values

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

        if isinstance(step, (int, float, np.number, np.ndarray)):
            # a host number: read on the host at its own value (never through int32)
            return jnp.asarray(fn(np.asarray(step, dtype=np.float64)))
        x = jnp.asarray(step)
        if isinstance(x, jax.core.Tracer):
            shape = jax.ShapeDtypeStruct(x.shape, jnp.float32)  # type: ignore[no-untyped-call]
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
    t = np.asarray(to_host(step), dtype=np.float64)
    return keras.ops.convert_to_tensor(fn(t), dtype="float32")


def to_host(x: Any) -> np.ndarray:
    """``x`` (a Keras variable, a backend tensor or array, a number) as a numpy array on the
    host. A torch tensor is read with ``.numpy()`` (bfloat16 through float32, exactly) rather
    than Keras' ``convert_to_numpy``, whose ``np.array(tensor)`` numpy 2 answers with a
    ``DeprecationWarning`` at every call; a variable is read through its ``value``."""
    x = getattr(x, "value", x)
    if type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach"):
        t = x.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            import ml_dtypes

            return np.asarray(t.float().numpy()).astype(ml_dtypes.bfloat16)
        return np.asarray(t.numpy())
    return np.asarray(keras.ops.convert_to_numpy(x))


def forget_traces() -> None:
    """On JAX, drop the traces of compiled functions (``jax.clear_caches()``): the next call of
    a compiled train step traces again, reading the learning-rate object and scale it holds
    then. ``jax.jit(model.train_step)`` would otherwise reuse a trace made with another
    learning-rate object or scale."""
    if keras.backend.backend() == "jax":
        import jax

        jax.clear_caches()  # type: ignore[no-untyped-call]


def _is_tracer(x: Any) -> bool:
    import jax

    return isinstance(x, jax.core.Tracer)


class _Scaled:
    """The host-side multiplier shared by both schedule classes."""

    _scale: float
    _traced = False  # a compiled step holds the scale as a constant (set when traced)

    @property
    def scale(self) -> float:
        """The multiplier applied to the schedule (1.0 unless a callback changed it)."""
        return self._scale

    def set_scale(self, scale: float) -> None:
        """Set the scale. On JAX, once a compiled train step has read the schedule, a change
        drops the compiled traces (:func:`forget_traces`) so the next ``fit`` (or step) uses
        the new scale."""
        self._rescale(V.non_negative("scale", scale))

    def multiply(self, factor: float) -> float:
        """Multiply the scale by ``factor`` (>= 0); returns the new scale (see
        :meth:`set_scale` for JAX)."""
        self._rescale(self._scale * V.non_negative("factor", factor))
        return self._scale

    def _rescale(self, scale: float, *, retrace: bool = True) -> None:
        """Set the scale; ``retrace=False`` leaves the compiled traces alone (for a caller
        that rebuilds the model's train function itself, as the lrkit callbacks do)."""
        if retrace and scale != self._scale and self._traced and self.compiled_scale:
            forget_traces()
        self._scale = scale

    @property
    def compiled_scale(self) -> bool:
        """Whether a compiled train step holds the scale as a constant (JAX backend): after a
        change the train function must be rebuilt (the lrkit callbacks do it)."""
        return bool(keras.backend.backend() == "jax")


def _jax_step(step: Any) -> Any:
    """The step as a jax value (a tracer inside a compiled step), or ``None`` off JAX."""
    if keras.backend.backend() != "jax":
        return None
    import jax.numpy as jnp

    from .._jaxtable import check_count

    if isinstance(step, keras.Variable):
        step = step.value
    check_count(step, name="step")  # a host integer JAX would wrap to int32
    return jnp.asarray(step)


@keras.saving.register_keras_serializable(package="lrkit")
class LRKitSchedule(_Scaled, keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
    """A lrkit schedule as a Keras ``LearningRateSchedule``: ``scale * schedule(step)`` in
    float32, the float64 closed form rounded once (exactly the numpy path).

    ``evaluation`` (JAX backend): ``"table"`` (default) reads the value from a value table of
    at most ``table_limit`` entries inside the compiled step (no host round trip; exact at
    every step the table covers, see :func:`lrkit.optax.schedule` for past its end);
    ``"host"`` calls the float64 formula on the host at every step (``jax.pure_callback``);
    ``"formula"`` traces ``schedule.values(t, xp=jnp)`` (float32 arithmetic). Other backends compute
    on the host (torch: eagerly; TensorFlow: ``tf.numpy_function``). A negative step reads step
    0's value on every path; no NaN is built at any step (``jax_debug_nans`` finds none).

    ``get_config()`` holds ``schedule.to_dict()`` (any family or composite) and the scale; the
    class is registered with ``keras.saving`` so models saved to ``.keras`` files keep it. A
    schedule holding a Python callable (:func:`lrkit.schedules.function`) trains with
    ``"table"`` (steps past the table, and fractional ones, are computed on the host) and
    ``"host"``; ``"formula"`` refuses it in one line. ``get_config()`` (saving the model)
    writes its ``fn`` as Keras writes a function (``keras.saving.serialize_keras_object``: a
    registered function by name, a lambda by its code, which loads only with
    ``safe_mode=False``); a callable Keras cannot write is left out with a ``UserWarning``
    (the model, its weights and its optimizer state are saved), and loading the optimizer
    then raises a one-line ``ValueError`` (``load_model(path, compile=False)`` loads the
    rest).
    """

    @V.checked_keywords("lrkit.keras.LRKitSchedule")
    def __init__(
        self,
        schedule: Any,
        *,
        scale: float = 1.0,
        name: str | None = None,
        evaluation: str = "table",
        table_limit: int = TABLE_LIMIT,
    ) -> None:
        super().__init__()
        self.schedule = as_schedule(schedule, nonnegative=True)
        self._scale = V.non_negative("scale", scale)
        self.name = V.optional_text("name", name)
        self.evaluation = V.choice("evaluation", evaluation, EVALUATIONS)
        refused = formula_error(self.schedule) if self.evaluation == "formula" else None
        if refused is not None:  # a function schedule: no formula to trace
            raise ValueError(refused)
        self.table_limit = V.integer("table_limit", table_limit, 2)
        self._lookups: dict[tuple[float, bool], Callable[[Any], Any]] = {}

    def _host(self, t: np.ndarray) -> np.ndarray:
        # a negative step reads step 0, as the jax table does (host_values)
        out: np.ndarray = host_values(self.schedule, t, dtype=np.float32, scale=self._scale)
        return out

    def _lookup(self) -> Callable[[Any], Any]:
        """The jax evaluation at the current scale (built once per scale)."""
        import jax

        from .._jaxtable import formula_fn, lookup_fn, x64_enabled

        key = (self._scale, x64_enabled())
        fn = self._lookups.get(key)
        if fn is None:
            if self.evaluation == "formula":
                fn = jax.jit(formula_fn(self.schedule, np.float32, self._scale))
            else:
                fn = lookup_fn(self.schedule, np.float32, scale=self._scale, limit=self.table_limit)
            self._lookups = {key: fn}  # only the current scale is kept
        return fn

    def __getstate__(self) -> dict[str, Any]:
        # the compiled lookups are rebuilt on demand (and are not picklable)
        return {**self.__dict__, "_lookups": {}}

    def __call__(self, step: Any) -> Any:
        if self.evaluation != "host":
            x = _jax_step(step)
            if x is not None:
                self._traced = self._traced or _is_tracer(x)
                return self._lookup()(x)
        return host_eval(self._host, step)

    @property
    def compiled_scale(self) -> bool:
        """Whether a compiled train step holds the scale as a constant: on the JAX backend,
        except with ``evaluation="host"``, whose host call reads the scale at every step."""
        return self.evaluation != "host" and keras.backend.backend() == "jax"

    def values(self, steps: Any) -> np.ndarray:
        """The float32 values at many steps (numpy; what ``__call__`` returns, step by step)."""
        return self._host(np.asarray(steps, dtype=np.float64))

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, for Keras serialization: ``schedule`` (its
        ``to_dict()``), ``scale`` and ``name``, and ``evaluation`` and ``table_limit`` when not
        the defaults; :meth:`from_config` rebuilds the schedule from it."""
        config: dict[str, Any] = {
            "schedule": _schedule_config(self.schedule),
            "scale": self._scale,
            "name": self.name,
        }
        # only when not the default, so files stay readable by versions without these keys
        if self.evaluation != "table":
            config["evaluation"] = self.evaluation
        if self.table_limit != TABLE_LIMIT:
            config["table_limit"] = self.table_limit
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LRKitSchedule:
        """Rebuild a schedule from the dict :meth:`get_config` returns."""
        config = _config_with_schedule(config)
        schedule = config.pop("schedule")
        if isinstance(schedule, Mapping):  # a function schedule's fn as Keras wrote it
            schedule = from_dict_with(schedule, read=_read_fn)
        return cls(schedule, **config)

    def __repr__(self) -> str:
        extra = "" if self._scale == 1.0 else f", scale={self._scale!r}"
        if self.evaluation != "table":
            extra += f", evaluation={self.evaluation!r}"
        return f"<lrkit.keras.schedule {self.schedule}{extra}>"


#: the mark written for a function schedule's fn that Keras cannot serialize
_UNWRITTEN = "lrkit>UnwrittenFunction"
#: a ``functools.partial`` written as its function (as Keras writes one) and its arguments
_PARTIAL = "lrkit>Partial"


#: the marks of a partial's arguments JSON has no form for: a tuple, a numpy array
_TUPLE, _ARRAY = "lrkit>tuple", "lrkit>ndarray"


def _read_fn(obj: Any) -> Any:
    """A function schedule's ``fn`` as Keras wrote it, read back by Keras (a
    ``functools.partial`` rebuilt around its function); the mark of one it could not write
    is a one-line ``ValueError`` saying how to load the rest."""
    if isinstance(obj, Mapping) and obj.get("class_name") == _UNWRITTEN:
        fn = (obj.get("config") or {}).get("fn", "?")
        raise ValueError(
            f"the function schedule's fn ({fn}) was not saved (Keras cannot serialize it): "
            "load a saved model with keras.saving.load_model(path, compile=False) and "
            "compile it with a schedule again; a model to pickle or clone needs a fn Keras "
            "can write and find by name (a function registered with "
            "keras.saving.register_keras_serializable, or a functools.partial of one)"
        )
    if isinstance(obj, Mapping) and obj.get("class_name") == _PARTIAL:
        config = obj.get("config") or {}
        func = _read_fn(config.get("func"))
        args = [_decode(a) for a in config.get("args", ())]
        keywords = {k: _decode(v) for k, v in config.get("keywords", {}).items()}
        return functools.partial(func, *args, **keywords)
    return keras.saving.deserialize_keras_object(obj)


class _NotPlain(Exception):
    """A partial's argument with no JSON form here."""


def _encode(value: Any) -> Any:
    """A partial's argument as JSON holds it: numbers, strings, bools and None as they are
    (a numpy scalar as the Python number of the same value), lists and string-keyed dicts of
    them, a tuple and a numeric numpy array marked as such; else :class:`_NotPlain`."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"class_name": _ARRAY, "config": {"value": value.tolist(), "dtype": value.dtype.str}}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if type(value) is tuple:
        return {"class_name": _TUPLE, "config": [_encode(v) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        if "class_name" in value:  # it would be read back as a mark
            raise _NotPlain
        return {k: _encode(v) for k, v in value.items()}
    raise _NotPlain


def _decode(value: Any) -> Any:
    """:func:`_encode`'s value read back."""
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, Mapping):
        kind = value.get("class_name")
        if kind == _TUPLE:
            return tuple(_decode(v) for v in value["config"])
        if kind == _ARRAY:
            return np.asarray(value["config"]["value"], dtype=np.dtype(value["config"]["dtype"]))
        return {k: _decode(v) for k, v in value.items()}
    return value


def _config_with_schedule(config: Any) -> dict[str, Any]:
    """A copy of a ``get_config()`` dict, or a one-line ``ValueError`` when it is no dict
    holding ``"schedule"`` (a key Python's ``KeyError`` would name alone)."""
    if not isinstance(config, Mapping) or "schedule" not in config:
        raise ValueError(
            f"config must be a get_config() dict with a 'schedule' key, got {V.dict_given(config)}"
        )
    return dict(config)


def _schedule_config(schedule: Any) -> dict[str, Any]:
    """``schedule.to_dict()``, with the ``fn`` of a function schedule inside it written by
    Keras' own serializer of Python functions (as a ``Lambda`` layer's: a registered or
    named function by name, a lambda by its code, read back only with ``safe_mode=False``)."""
    if not holds_callable(schedule):
        out: dict[str, Any] = schedule.to_dict()
        return out

    def unwritable(fn: Any, why: str) -> dict[str, Any]:
        # the model is saved all the same (its weights, architecture and optimizer state: a
        # raise here would leave the file Keras opened empty, and stop a ModelCheckpoint's
        # training run); the fn is written as a mark that from_config refuses in one line
        warnings.warn(
            f"the function schedule {schedule} is saved without its fn: Keras cannot "
            f"serialize it ({shorten(why, 120)}); the file holds the model, its weights and "
            "its optimizer state, and keras.saving.load_model(path, compile=False) loads "
            "them (compile it with a schedule again; a pickled or cloned model cannot be "
            "read back). To save the schedule too, pass a function defined with def "
            "(registered with keras.saving.register_keras_serializable), a functools.partial "
            "of one with plain arguments (numbers, strings, arrays, lists, tuples, dicts), or a "
            "lambda",
            UserWarning,
            stacklevel=caller_level(),
        )
        return {"class_name": _UNWRITTEN, "config": {"fn": shorten(repr(fn), 120)}}

    def write(fn: Any) -> Any:
        # a Python function, or an object Keras writes through its get_config(); a partial
        # of one, its arguments plain values; anything else (a bound method, a builtin, a
        # numpy ufunc, a jitted function) Keras writes as a name it cannot read back, or
        # fails on
        if type(fn) is functools.partial:
            try:
                args = [_encode(a) for a in fn.args]
                keywords = {k: _encode(v) for k, v in fn.keywords.items()}
            except _NotPlain:
                return unwritable(
                    fn,
                    "a functools.partial's arguments must be numbers, strings, None, numpy "
                    "arrays, or lists, tuples or dicts of them",
                )
            return {
                "class_name": _PARTIAL,
                "config": {"func": write(fn.func), "args": args, "keywords": keywords},
            }
        if not isinstance(fn, types.FunctionType) and not hasattr(fn, "get_config"):
            return unwritable(fn, f"a {type(fn).__name__} is no Python function")
        try:
            return keras.saving.serialize_keras_object(fn)
        except Exception as exc:
            return unwritable(fn, (str(exc).splitlines() or [type(exc).__name__])[0])

    return to_dict_with(schedule, write=write)


@keras.saving.register_keras_serializable(package="lrkit")
class ScaledSchedule(_Scaled, keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
    """``scale * inner(step)`` for any Keras schedule ``inner``; the lrkit callbacks wrap an
    optimizer's foreign schedule in it to scale its learning rate. A callable that is not a
    ``LearningRateSchedule`` is called with no arguments, as Keras' optimizers call such a
    learning rate (``scale * inner()``). On the JAX backend the scale is a constant of the
    compiled step (``compiled_scale``); elsewhere it is read on the host at every call."""

    def __init__(self, schedule: Any, *, scale: float = 1.0, name: str | None = None) -> None:
        super().__init__()
        if isinstance(schedule, dict):
            schedule = keras.saving.deserialize_keras_object(schedule)
        if not callable(schedule):
            raise ValueError(
                "schedule must be a Keras LearningRateSchedule or a learning-rate callable, "
                f"got {V.fmt(schedule)}"
            )
        self.inner = schedule
        self._scale = V.non_negative("scale", scale)
        self.name = V.optional_text("name", name)

    def _factor(self, t: np.ndarray) -> np.ndarray:
        return np.full(np.shape(t), self._scale, dtype=np.float32)

    def __call__(self, step: Any) -> Any:
        if isinstance(self.inner, keras.optimizers.schedules.LearningRateSchedule):
            inner = keras.ops.cast(self.inner(step), "float32")
        else:  # a learning-rate callable, which Keras' optimizers call with no arguments
            inner = keras.ops.cast(self.inner(), "float32")
        if keras.backend.backend() == "jax":
            self._traced = self._traced or _is_tracer(inner) or _is_tracer(_jax_step(step))
            return inner * np.float32(self._scale)
        return inner * host_eval(self._factor, step)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, for Keras serialization: ``schedule`` (the inner
        schedule as ``keras.saving.serialize_keras_object`` writes it), ``scale`` and
        ``name``; :meth:`from_config` rebuilds the wrapper, deserializing the inner one."""
        return {
            "schedule": keras.saving.serialize_keras_object(self.inner),
            "scale": self._scale,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ScaledSchedule:
        """Rebuild the wrapper from the dict :meth:`get_config` returns, deserializing the
        inner schedule."""
        config = _config_with_schedule(config)
        return cls(config.pop("schedule"), **config)


@V.checked_keywords("lrkit.keras.schedule()")
def schedule(
    schedule: Any,
    *,
    name: str | None = None,
    evaluation: str = "table",
    table_limit: int = TABLE_LIMIT,
) -> LRKitSchedule:
    """A Keras ``LearningRateSchedule`` whose value at every step is ``schedule``'s, in float32.

    ``schedule`` is a lrkit schedule, a spec string (``"cosine(lr=0.1, total_steps=1000)"``) or
    a ``to_dict()`` dict. Pass the result as an optimizer's ``learning_rate``::

        opt = keras.optimizers.SGD(learning_rate=lrkit.keras.schedule(s), momentum=0.9)

    The step is the optimizer's ``iterations`` (the number of updates applied so far).
    ``evaluation`` and ``table_limit``: see :class:`LRKitSchedule` (the defaults read an exact
    value table inside the compiled step, at the cost of Keras' own schedules).
    """
    return LRKitSchedule(schedule, name=name, evaluation=evaluation, table_limit=table_limit)
