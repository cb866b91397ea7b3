"""A lrkit schedule evaluated inside compiled JAX code from its value table (shared by
``lrkit.optax`` and ``lrkit.keras`` on the JAX backend): no host round trip, and the float64
closed form rounded once, bit for bit, at every step the table covers.

See :mod:`lrkit.schedules.tables` for what holds past the table's end (``hold``: exact at every
step; ``periodic``: wrapped index; ``formula``: ``s.values(t, xp=jnp)``, in float64 when
``jax_enable_x64`` is on, else in float32; ``host``, a schedule holding a Python callable: the
float64 value computed on the host, ``jax.pure_callback``, only when a step needs it). A
negative step reads step 0's value on every path, as optax's own schedules clip their count
at 0 (``optax.join_schedules`` evaluates a later schedule at negative steps and discards the
result): no NaN is built at any step, so the schedules run under ``jax_debug_nans``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _validate as V
from ._renamed import UNSET
from .schedules import Schedule
from .schedules.tables import (
    EVALUATIONS,
    TABLE_LIMIT,
    ValueTable,
    formula_error,
    host_values,
    value_table,
)

__all__ = [
    "EVALUATIONS",
    "INT32_MAX",
    "check_count",
    "formula_fn",
    "given_count",
    "lookup_fn",
    "out_dtype",
]


def x64_enabled() -> bool:
    """Whether ``jax_enable_x64`` is on (JAX then computes in float64/int64)."""
    return bool(jax.config.jax_enable_x64)  # type: ignore[attr-defined]


INT32_MAX = 2**31 - 1


def _host_integers(items: Any) -> bool:
    """Whether a (nested) list or tuple holds Python or numpy integers only (bools too: steps 0
    and 1), and at least one (floats, arrays of any kind: no)."""
    leaves: list[Any] = []
    stack = [items]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        else:
            leaves.append(item)
    return bool(leaves) and all(isinstance(x, (int, np.integer, np.bool_)) for x in leaves)


def given_count(count: Any) -> None:
    """A schedule function's ``count`` left out (``UNSET``, its default) is a one-line
    ``TypeError`` saying what to give Keras, whose optimizer calls a plain callable learning
    rate with no argument."""
    if count is UNSET:
        raise V.no_step("lrkit.optax.schedule(...)")


def check_count(count: Any, *, name: str = "count") -> None:
    """A host integer step (a Python or numpy integer, a numpy array) beyond int32 without
    ``jax_enable_x64``: JAX would wrap it (``np.int64(2**32)`` reads as step 0) or raise its
    own multi-line ``OverflowError``; this says so in one line naming ``name``. Nothing is
    read back from a device array (already int32 without x64); a list or tuple is checked
    when it holds host integers only (nested lists too); a ``count`` left out, see
    :func:`given_count`."""
    given_count(count)
    if isinstance(count, (list, tuple)):
        if not _host_integers(count):
            return  # device arrays, tracers: nothing to read back
    elif isinstance(count, bool) or not isinstance(count, (int, np.integer, np.ndarray)):
        return
    if x64_enabled():
        return
    try:
        a = np.asarray(count)
    except OverflowError:  # a Python int beyond int64
        a = np.asarray(count, dtype=object)
    if a.dtype.kind not in "iuO" or a.size == 0:
        return
    if a.dtype.kind == "u" and a.dtype.itemsize <= 4:  # JAX keeps uint32 as it is
        return
    if a.dtype.kind == "O":  # Python ints beyond int64 (numbers of other types pass on)
        ints = [int(x) if isinstance(x, (int, np.integer)) else 0 for x in a.flat]
        a = np.asarray(ints, dtype=object)
        over = np.asarray([not -INT32_MAX - 1 <= x <= INT32_MAX for x in a.flat])
    else:
        over = (a > INT32_MAX) | (a < -INT32_MAX - 1)
    if over.any():
        bad = int(np.asarray(a).reshape(-1)[np.flatnonzero(over)[0]])
        raise ValueError(
            f"{name} must be an integer in [0, 2**31 - 1] without jax_enable_x64 (JAX reads "
            f'steps as int32), got {bad}; use evaluation="host" or enable jax_enable_x64'
        )


def out_dtype(dtype: Any) -> np.dtype[Any]:
    """``dtype`` as JAX will produce it (float64 only with ``jax_enable_x64``)."""
    try:
        d = jnp.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be a floating dtype, got {V.fmt(dtype)}") from None
    if not jnp.issubdtype(d, jnp.floating):
        raise ValueError(f"dtype must be a floating dtype, got {V.fmt(dtype)}")
    return np.dtype(jax.dtypes.canonicalize_dtype(d))


def formula_fn(s: Schedule, dtype: Any, scale: float = 1.0) -> Callable[[Any], jax.Array]:
    """``s.values(t, xp=jnp)`` traced in float64 with ``jax_enable_x64`` (else float32),
    times ``scale``, cast to ``dtype`` (a negative step reads step 0's value); a one-line
    ``ValueError`` for a schedule with no formula to trace (one holding a Python callable)."""
    refused = formula_error(s)
    if refused is not None:
        raise ValueError(refused)
    odt = out_dtype(dtype)

    def fn(t: Any) -> jax.Array:
        fdtype = jnp.float64 if x64_enabled() else jnp.float32
        x = jnp.maximum(jnp.asarray(t).astype(fdtype), 0)  # a negative step reads step 0
        try:
            v = s.values(x, xp=jnp)
        except OverflowError:  # an integer parameter beyond int32, which JAX cannot hold
            raise ValueError(
                f"schedule: {s} has an integer parameter beyond 2**31 - 1, which JAX holds "
                'only with jax_enable_x64: enable it, or use evaluation="host"'
            ) from None
        if scale != 1.0:
            v = v * scale
        return jnp.asarray(v, dtype=fdtype).astype(odt)

    return fn


def host_fn(s: Schedule, dtype: Any, scale: float = 1.0) -> Callable[[Any], jax.Array]:
    """``dtype(scale * s.values(t))`` computed on the host (``jax.pure_callback``): the
    float64 value rounded once, step 0's at a negative step, for a jax array of steps."""
    odt = out_dtype(dtype)

    def host(t: Any) -> np.ndarray:
        return np.asarray(host_values(s, t, dtype=odt, scale=scale))  # step 0's below 0

    def fn(t: Any) -> jax.Array:
        shape = jax.ShapeDtypeStruct(jnp.shape(t), odt)  # type: ignore[no-untyped-call]
        out: jax.Array = jax.pure_callback(host, shape, t, vmap_method="expand_dims")
        return out

    return fn


def lookup_fn(
    s: Schedule, dtype: Any, *, scale: float = 1.0, limit: int = TABLE_LIMIT
) -> Callable[[Any], jax.Array]:
    """The schedule (times ``scale``) as a jax function of the step, read from its value table:
    integer steps index the table (a constant of the compiled program); past its end the table
    holds, wraps or hands over to :func:`formula_fn`; fractional steps use the formula; a negative
    step reads step 0's value, as optax's own schedules clip their count at 0 (no NaN is built
    at any step: the function runs under ``jax_debug_nans``, even with ``jax.disable_jit()``,
    and inside ``optax.join_schedules``, which evaluates a later schedule at negative steps and
    discards the result). A schedule holding a Python callable (``"host"`` past its table) has no
    formula: the steps the table does not give are computed on the host (:func:`host_fn`),
    only when a call has one; an error of that host computation (``fn`` raised) reaches an
    eager call as the schedule's own one-line ``ValueError`` (under ``jit``, inside JAX's
    callback error). Returns a jitted function (also usable inside ``jit``/``vmap``)."""
    odt = out_dtype(dtype)
    vt: ValueTable = value_table(s, dtype=odt, scale=scale, limit=limit)
    table, n, beyond = vt.values, vt.size, vt.beyond
    derivative: Callable[[Any], jax.Array] | None = None
    if formula_error(s) is not None:  # no formula: the host computes what the table lacks
        on_host = host_fn(s, odt, scale)

        def formula(t: Any, known: Any, given: Any) -> jax.Array:
            # ``given`` where every step is ``known``, without a host call (under ``vmap`` the
            # condition is per element, and both branches run)
            out: jax.Array = jax.lax.cond(
                jnp.all(known), lambda: given, lambda: jnp.where(known, given, on_host(t))
            )
            return out
    else:
        traced = derivative = formula_fn(s, odt, scale)

        def formula(t: Any, known: Any, given: Any) -> jax.Array:
            return jnp.where(known, given, traced(t))

    def integer_steps(t: jax.Array) -> jax.Array:
        t = jnp.maximum(t, 0)  # a negative step reads step 0
        const = jnp.asarray(table)
        if beyond == "periodic":
            wrapped = vt.offset + (t - vt.offset) % vt.period
            out = const[jnp.where(t < n, t, wrapped)]
        else:
            out = const[jnp.minimum(t, n - 1)]
            if beyond in ("formula", "host"):
                out = formula(t, t < n, out)
        return out

    def real_values(t: jax.Array) -> jax.Array:
        # fractional steps: the table where the step is a whole number it covers
        t = jnp.maximum(t, 0)  # a negative step reads step 0
        whole = jnp.floor(t)
        covered = (whole == t) & (t < n) if beyond != "hold" else (whole == t) | (t >= n - 1)
        idx = jnp.clip(whole, 0, n - 1).astype(jnp.int32)
        return formula(t, covered, jnp.asarray(table)[idx])

    # the derivative with respect to a real step is the formula's, also where the value is
    # read from the table (whose constants would give 0 there, without a word)
    real_steps = jax.custom_jvp(real_values)

    @real_steps.defjvp  # type: ignore[untyped-decorator,misc]
    def _real_steps_jvp(primals: Any, tangents: Any) -> tuple[jax.Array, jax.Array]:
        (t,), (dt,) = primals, tangents
        if derivative is None:
            raise ValueError(
                f"schedule: {s} holds a Python callable, which has no derivative with "
                "respect to the step: build it from lrkit's families to differentiate it"
            )
        return real_values(t), jax.jvp(derivative, (t,), (dt,))[1]

    def fn(count: Any) -> jax.Array:
        t = jnp.asarray(count)
        if not (jnp.issubdtype(t.dtype, jnp.integer) or t.dtype == jnp.bool_):
            return real_steps(t)
        signed = jnp.int64 if x64_enabled() else jnp.int32
        top = np.iinfo(signed).max
        if jnp.issubdtype(t.dtype, jnp.unsignedinteger) and np.iinfo(t.dtype).max > top:
            # an unsigned count past the signed range (uint32 without x64) would wrap to a
            # negative step: they wrap a periodic table in their own dtype, and are read as
            # real numbers otherwise
            big = t > top
            small = integer_steps(jnp.where(big, 0, t).astype(signed))
            if beyond == "periodic":
                wrapped = vt.offset + (jnp.where(big, t, vt.offset) - vt.offset) % vt.period
                large = jnp.asarray(table)[wrapped.astype(signed)]
            else:
                large = real_steps(t.astype(jnp.float64 if x64_enabled() else jnp.float32))
            return jnp.where(big, large, small)
        return integer_steps(t.astype(signed))

    jitted = jax.jit(fn)
    if derivative is not None:
        return jitted

    def called(count: Any) -> jax.Array:
        try:
            out: jax.Array = jitted(count)
        except Exception:
            steps = None if isinstance(count, jax.core.Tracer) else np.asarray(count)
            if steps is None or steps.dtype.kind not in "biuf":
                raise  # traced, or no steps at all: not the host's error
            # concrete steps: the host's own error (fn raised, or returned no number), in
            # one line, instead of JAX's callback error around it
            try:
                host_values(s, steps, dtype=odt, scale=scale)
            except ValueError as exc:
                raise exc from None
            raise
        return out

    return called
