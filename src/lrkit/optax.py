"""JAX/optax adapter: lrkit schedules as optax schedules, a sign-correct plateau transformation
and the LR range test for a functional training step (``pip install 'lrkit[jax]'``).

* :func:`schedule` -- an optax ``Schedule`` (``count -> lr``) that works under ``jax.jit`` and
  ``jax.vmap``, reads an exact value table inside the compiled step (no host round trip) and
  is *bit-for-bit* the numpy (float64) path rounded to float32.
* :func:`reduce_on_plateau` -- :class:`lrkit.feedback.ReduceOnPlateau` as an optax gradient
  transformation (state in the optax state, jit-able, correct on negative metrics).
* :func:`find_lr` -- the range test of :mod:`lrkit.finder` for ``loss_fn(params, batch)`` and an
  optax optimizer; it never mutates the caller's params or optimizer state.
"""

from __future__ import annotations

import inspect
import itertools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ._format import counted
from ._imports import require

require("jax", "jax")  # without JAX or optax: the one-line install hint
require("optax", "jax")

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import _validate as V
from ._jaxtable import (
    EVALUATIONS,
    INT32_MAX,  # the plateau state's counters are int32, as JAX holds integer steps
    check_count,
    formula_fn,
    given_count,
    lookup_fn,
    out_dtype,
    x64_enabled,
)
from ._renamed import UNSET
from ._runtime import GlobalRNGState, from_torch
from .feedback import PLATEAU_HINTS, PlateauKwargs, ReduceOnPlateau, as_metric
from .finder import (
    FinderResult,
    Probes,
    Sweep,
    SweepOptions,
    check_scored,
    cycle_batches,
    held_batches,
    optimizer_family,
)
from .finder.sweep import check_finder_kwargs, check_not_one_batch
from .schedules import Schedule, as_schedule
from .schedules.tables import TABLE_LIMIT, host_values

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .finder import SweepKwargs

__all__ = [
    "ReduceOnPlateauState",
    "find_lr",
    "reduce_on_plateau",
    "schedule",
]


# ============================================================================ schedules


def _host_values(s: Schedule, dtype: Any) -> Callable[[Any], np.ndarray]:
    np_dtype = np.dtype(dtype)

    def fn(t: Any) -> np.ndarray:
        # float64 numpy path, then one rounding to the output dtype (a negative step reads
        # step 0: host_values)
        return np.asarray(host_values(s, t, dtype=np_dtype))

    return fn


@V.checked_keywords("lrkit.optax.schedule()")
def schedule(
    schedule: Schedule | str | Mapping[str, Any],
    *,
    evaluation: str = "table",
    dtype: Any = jnp.float32,
    table_limit: int = TABLE_LIMIT,
) -> Callable[[Any], jax.Array]:
    """Turn ``schedule``, a lrkit schedule (or a spec string, or a ``to_dict()`` dict), into an
    optax ``Schedule``: ``count -> lr``.

    ``evaluation="table"`` (default): the value is read, inside the compiled step, from a table
    of ``dtype(schedule.values(t))`` built once on the host (:mod:`lrkit.schedules.tables`; a
    constant of the compiled program, at most ``table_limit`` entries): no host round trip, the
    cost of optax's own schedules, and ``schedule.values(steps).astype(float32)`` bit for bit at
    every step the table covers -- every step for schedules that end (``cosine``, ``onecycle``,
    ``wsd``, joins of them, ...) or decay to 0 within the table; the first ``table_limit`` steps
    (2**20 by default) otherwise, then the wrapped table for periodic ones (``cyclic`` triangular,
    ``cosine_restarts`` with ``T_mult=1``) and the traced formula for the rest (float64 with
    ``jax_enable_x64``, else float32). Works under ``jax.jit`` and ``jax.vmap``; eager calls
    run the same lookup. Fractional steps use the formula unless whole; a negative step reads
    step 0's value with every ``evaluation``, as optax's own schedules clip their count at 0
    (``optax.join_schedules`` evaluates a later schedule at negative steps and discards the
    result; no NaN is built at any step, so ``jax_debug_nans`` finds none, with or without
    ``jax.disable_jit()``); a host integer count beyond int32 without ``jax_enable_x64`` (which
    JAX would wrap) is a ``ValueError``; a device ``uint32`` count is read at its own step past
    2**31 - 1. A schedule with an integer parameter beyond int32 is a ``ValueError`` too
    without ``jax_enable_x64`` (``"table"`` and ``"formula"``), at the first call, which builds
    its table or traces its formula under the setting of that time.
    Costs and accuracy: ``docs/compiled.md``.

    ``evaluation="host"`` evaluates the float64 numpy formula on the host through
    ``jax.pure_callback`` at every call (exact at every step, one host round trip per call).
    ``evaluation="formula"`` traces ``schedule.values(t, xp=jnp)`` (no table; float32 arithmetic
    unless ``jax_enable_x64``, whose relative error grows with the step count and near a value
    of 0; measured in ``docs/compiled.md``).

    A schedule holding a Python callable (:func:`lrkit.schedules.function`) has no formula to
    trace: ``"table"`` computes the steps its table does not give (past its end, fractional
    ones) on the host, exactly, with a host call only when a call has one; ``"host"`` works as
    for any schedule; ``"formula"`` is a one-line ``ValueError``.
    """
    sched = as_schedule(schedule, name="schedule", nonnegative=True)
    evaluation = V.choice("evaluation", evaluation, EVALUATIONS)
    limit = V.integer("table_limit", table_limit, 2)
    odt = out_dtype(dtype)

    if evaluation == "formula":
        traced = formula_fn(sched, odt)

        def formula_count(count: Any = UNSET) -> jax.Array:
            check_count(count)
            return traced(count)

        formula_count.lrkit_schedule = sched  # type: ignore[attr-defined]
        return formula_count

    if evaluation == "table":
        built: list[Callable[[Any], jax.Array]] = []  # the table, built on the first call

        def table_fn(count: Any = UNSET) -> jax.Array:
            check_count(count)
            if not built:
                built.append(lookup_fn(sched, odt, limit=limit))
            return built[0](count)

        table_fn.lrkit_schedule = sched  # type: ignore[attr-defined]
        return table_fn

    host = _host_values(sched, odt)

    def exact_fn(count: Any = UNSET) -> jax.Array:
        given_count(count)
        if not isinstance(count, jax.core.Tracer):
            # concrete input (eager call): same host computation, no callback machinery
            return jnp.asarray(host(np.asarray(count)))
        t = jnp.asarray(count)
        shape = jax.ShapeDtypeStruct(t.shape, odt)  # type: ignore[no-untyped-call]
        out: jax.Array = jax.pure_callback(host, shape, t, vmap_method="expand_dims")
        return out

    exact_fn.lrkit_schedule = sched  # type: ignore[attr-defined]
    return exact_fn


# ============================================================================ plateau


_MAX_TABLE = 4096


class ReduceOnPlateauState(NamedTuple):
    """State of :func:`reduce_on_plateau` (all scalars)."""

    scale: jax.Array  # current multiplier of the updates
    best: jax.Array  # best metric so far (meaningful when has_best)
    has_best: jax.Array  # bool: a finite metric has been seen
    num_bad: jax.Array  # int32: consecutive non-improving observations
    cooldown_counter: jax.Array  # int32
    acc_count: jax.Array  # int32: values accumulated towards the next observation
    acc_total: jax.Array  # sum of the accumulated values
    num_updates: jax.Array  # int32: observations made
    num_reductions: jax.Array  # int32: reductions applied


def _reductions_past(scale: float, factor: float, min_scale: float) -> int:
    """How many more reductions ``ReduceOnPlateau`` makes from ``scale`` (``max(scale * factor,
    min_scale)`` while that falls): by the closed form down to float64's normal range, then
    step by step, as the controller's float64 arithmetic goes (subnormal scales do not fall
    geometrically), for at most 100 000 steps; beyond, a closed form down to where a subnormal
    scale times ``factor`` rounds back to itself (an estimate, near only: millions of cuts in
    float64's subnormal range, with ``min_scale`` 0 or subnormal)."""
    target = max(min_scale, 2.2250738585072014e-308)
    n = 0
    if scale * factor > target:  # geometric while normal: jump to just above the target
        n = max(0, math.floor(math.log(target / scale) / math.log(factor)) - 1)
        scale *= factor**n
    for _ in range(100_000):
        new = max(scale * factor, min_scale)
        if not new < scale:
            return n
        scale, n = new, n + 1
    # a subnormal scale of m units (5e-324) falls while m * (1 - factor) rounds to a unit
    stop = max(min_scale, 5e-324 * (0.5 / (1.0 - factor)))
    return n + max(0, math.ceil(math.log(stop / scale) / math.log(factor)))


def _concrete(value: Any) -> Any:
    """A 0-d JAX array given for a plateau argument (``optax.contrib`` types them as arrays)
    as the Python number it holds (a traced one is refused before, :func:`_traced`);
    anything else as is (the controller checks it)."""
    if not isinstance(value, jax.Array) or value.ndim != 0:
        return value
    return value.item()


def _traced(value: Any) -> bool:
    """Whether ``value`` is a JAX value traced under ``jit`` (no concrete number to read)."""
    if not isinstance(value, jax.Array):
        return False
    try:
        value.item() if value.ndim == 0 else None
    except jax.errors.ConcretizationTypeError:
        return True
    return False


@V.keyword_only(
    "lrkit.optax.reduce_on_plateau",
    peer_order=("factor", "patience", "rtol", "atol", "cooldown", "accumulation_size"),
    accepted=tuple(PlateauKwargs.__annotations__),
)
def reduce_on_plateau(
    mode: str = "min",
    *,
    accumulation_size: int = 1,
    **plateau: Unpack[PlateauKwargs],
) -> optax.GradientTransformationExtraArgs:
    """Scale updates by a factor that drops by ``factor`` when ``value`` plateaus.

    The semantics are exactly those of :class:`lrkit.feedback.ReduceOnPlateau` (PyTorch's
    bookkeeping; an improvement for ``mode="min"`` is ``value < best * (1 - threshold)`` on
    ``best >= 0`` and ``value < best - threshold * |best|`` on ``best < 0``, ``value < best -
    threshold`` with ``threshold_mode="abs"``; the reduction comes on the ``patience + 1``-th
    non-improving observation; ``cooldown``; floor ``min_scale``; NaN/inf count as no
    improvement), computed with ``jax.numpy`` so it runs under ``jax.jit``.

    Use it after the optimizer and pass the metric to every update::

        opt = optax.chain(optax.adam(1e-3), lrkit.optax.reduce_on_plateau(patience=5))
        updates, state = opt.update(grads, state, params, value=loss)

    The plateau arguments (``factor=0.1``, ``patience=10``, ``threshold=1e-4``,
    ``threshold_mode="rel"``, ``cooldown=0``, ``min_scale=0.0``, by keyword:
    ``lrkit.feedback.PlateauKwargs``) are those of :class:`lrkit.feedback.ReduceOnPlateau`.

    With ``accumulation_size=n`` the metric observed is the mean of ``n`` consecutive values
    (e.g. ``n`` = steps per epoch); the scale changes only at those observations, and applies
    to the update the observation's last value arrives with (one step before the adapters
    whose metric is reported after a step, e.g. ``lrkit.torch``'s ``sched.report(value)``).
    Unlike ``optax.contrib.reduce_on_plateau`` (``value < (1 - rtol) * best - atol``), a constant
    negative metric is not an improvement. The float32 state means comparisons are done in
    float32 (float64 with ``jax_enable_x64``). The scale is the controller's float64 scale
    rounded once, bit for bit, through the first 4096 reductions (a table); after ``n`` more it
    is ``scale_4096 * exp(n * log(factor))`` in float32, within a relative ``2**-23 *
    ln(scale_4096 / scale) + 2**-22`` of the controller's (under 1.1e-5 while the scale is a
    normal float32), floored at ``min_scale``.
    """
    if isinstance(mode, (int, float)) and not isinstance(mode, bool):
        raise ValueError(
            f"mode must be one of 'min', 'max', got {V.fmt(mode)} "
            "(optax.contrib.reduce_on_plateau's "
            f"first argument is factor; here pass factor={mode!r})"
        )
    allowed = ("mode", "accumulation_size", *PlateauKwargs.__annotations__)
    # optax.contrib.reduce_on_plateau's names point to lrkit's
    V.options("lrkit.optax.reduce_on_plateau", plateau, allowed, PLATEAU_HINTS)
    # optax.contrib's arguments may be 0-d JAX arrays: read as the numbers they hold
    given = {"accumulation_size": accumulation_size, **plateau}
    traced = [k for k, v in given.items() if _traced(v)]
    if traced:
        what = (
            "must be a concrete number, got a traced JAX value"
            if len(traced) == 1
            else "must be concrete numbers, got traced JAX values"
        )
        raise ValueError(
            f"{', '.join(traced)} {what}: build the transformation outside jit (with "
            "optax.inject_hyperparams, which traces numeric arguments in update: "
            f"static_args={tuple(traced)!r})"
        )
    plateau = {k: _concrete(v) for k, v in plateau.items()}  # type: ignore[assignment]
    accumulation_size = _concrete(accumulation_size)
    # the arguments, their defaults and their validation are the framework-free controller's
    ref = ReduceOnPlateau(mode, **plateau)  # type: ignore[arg-type]
    # the counters are int32 in the state: a count beyond it is refused now, not by JAX's
    # overflow at the first update (2**31 - 1 steps of patience is a plateau never cut)
    for name in ("patience", "cooldown"):
        V.integer(name, getattr(ref, name), 0, INT32_MAX)
    acc_n = V.integer("accumulation_size", accumulation_size, 1, INT32_MAX)
    f, th, pat, cd, ms = ref.factor, ref.threshold, ref.patience, ref.cooldown, ref.min_scale
    is_min, is_rel = ref.mode == "min", ref.threshold_mode == "rel"
    fdtype = jnp.float64 if x64_enabled() else jnp.float32

    def init_fn(params: Any) -> ReduceOnPlateauState:
        del params

        def zero() -> jax.Array:  # an array of its own per field: a state can be donated
            return jnp.zeros((), jnp.int32)

        return ReduceOnPlateauState(
            scale=jnp.asarray(1.0, fdtype),
            best=jnp.asarray(jnp.inf if is_min else -jnp.inf, fdtype),
            has_best=jnp.asarray(False),
            num_bad=zero(),
            cooldown_counter=zero(),
            acc_count=zero(),
            acc_total=jnp.asarray(0.0, fdtype),
            num_updates=zero(),
            num_reductions=zero(),
        )

    def is_better(a: jax.Array, best: jax.Array) -> jax.Array:
        if is_min:
            if is_rel:
                bound = jnp.where(best >= 0, best * (1.0 - th), best * (1.0 + th))
            else:
                bound = best - th
            cmp = a < bound
        else:
            if is_rel:
                bound = jnp.where(best >= 0, best * (1.0 + th), best * (1.0 - th))
            else:
                bound = best + th
            cmp = a > bound
        return cmp

    # The k-th scale of the float64 controller (repeated ``max(scale * factor, min_scale)``),
    # rounded once, from a table of the first _MAX_TABLE reductions: bit for bit through them.
    # Past the table, ``max(table[-1] * exp(n * log(factor)), min_scale)`` after n more, in
    # float32 (log(factor) rounded once from float64; ``float32(factor) ** n`` would compound
    # float32's rounding of factor n times): relative error within about
    # 2**-23 * ln(table[-1] / scale) + 2**-22, under 1.1e-5 while the scale is a normal float32.
    table_list = [1.0]
    while len(table_list) <= _MAX_TABLE:
        new = max(table_list[-1] * f, ms)
        if not new < table_list[-1]:
            break
        table_list.append(new)
    saturated = len(table_list) <= _MAX_TABLE
    table = np.asarray(table_list, dtype=np.dtype(fdtype))
    last = len(table) - 1
    log_f = 0.0 if saturated else math.log(f)  # 0 < factor < 1 when the table does not end

    # the reductions the controller makes in all: the table's, or, past it, until its float64
    # scale stops falling (at min_scale, or where a subnormal one rounds back to itself), from
    # the table's last (:func:`_reductions_past`; beyond int32: capped), whatever float32 holds
    k_floor = last if saturated else min(last + _reductions_past(table_list[-1], f, ms), INT32_MAX)

    def scale_of(k: jax.Array) -> jax.Array:
        base = jnp.asarray(table)[jnp.minimum(k, last)]
        if saturated:
            return base
        extra = jnp.maximum(k - last, 0).astype(fdtype)
        decay = jnp.exp(extra * jnp.asarray(log_f, fdtype))
        return jnp.maximum(base * decay, ms).astype(fdtype)

    def observe(st: ReduceOnPlateauState, x: jax.Array) -> ReduceOnPlateauState:
        # before the first finite metric ``best`` is +-inf and unused: compared as 0 instead, so
        # no NaN is built (-inf * (1 - threshold) with threshold=1), for jax_debug_nans
        known = jnp.where(st.has_best, st.best, jnp.zeros_like(st.best))
        better = jnp.isfinite(x) & (~st.has_best | is_better(x, known))
        best = jnp.where(better, x, st.best)
        num_bad = jnp.where(better, 0, st.num_bad + 1)
        in_cd = st.cooldown_counter > 0
        cdc = jnp.where(in_cd, st.cooldown_counter - 1, st.cooldown_counter)
        num_bad = jnp.where(in_cd, 0, num_bad)
        plateau = num_bad > pat
        cdc = jnp.where(plateau, cd, cdc)
        num_bad = jnp.where(plateau, 0, num_bad)
        k = st.num_reductions
        # a reduction that changes nothing (the scale at its floor) is not counted, as the
        # controller's
        can = k < k_floor
        reduce = plateau & can
        k = k + reduce.astype(jnp.int32)
        return st._replace(
            scale=scale_of(k),
            best=best,
            has_best=st.has_best | better,
            num_bad=num_bad.astype(jnp.int32),
            cooldown_counter=cdc.astype(jnp.int32),
            num_updates=st.num_updates + 1,
            num_reductions=k,
        )

    def update_fn(
        updates: Any,
        state: ReduceOnPlateauState,
        params: Any = None,
        *,
        value: Any,
        **extra_args: Any,
    ) -> tuple[Any, ReduceOnPlateauState]:
        del params, extra_args
        if not isinstance(value, jax.Array):  # a tracer is one: checked below, when traced
            # a value from the host (a number, a numpy array, a torch tensor): read as
            # lrkit.feedback reads it, or refused in its words, not in jnp.asarray's
            value = as_metric(value, name="value")
        x = jnp.asarray(value)  # its shape and dtype are static under jit: checked when traced
        if x.size != 1:
            raise ValueError(
                "value must be one value (a number or a one-element array), got an array of "
                f"shape {tuple(x.shape)}"
            )
        if x.dtype.kind in ("b", "c"):
            raise ValueError(f"value must be a real number, got an array of dtype {x.dtype}")
        x = x.astype(fdtype).reshape(())
        if acc_n == 1:
            state = observe(state, x)
        else:
            total = state.acc_total + x
            count = state.acc_count + 1
            full = count >= acc_n
            # the controller's step only when the window is full (one branch runs; under
            # vmap both do, selected per element)
            state = jax.lax.cond(
                full, lambda st: observe(st, total / acc_n), lambda st: st, state
            )._replace(
                acc_total=jnp.where(full, 0.0, total).astype(fdtype),
                acc_count=jnp.where(full, 0, count).astype(jnp.int32),
            )
        scale = state.scale
        updates = jax.tree_util.tree_map(lambda u: (u * scale).astype(u.dtype), updates)
        return updates, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _named_plateau_arguments(fn: Any) -> None:
    """Show ``fn``'s plateau arguments by name in its signature (their defaults are the
    controller's), as ``optax.contrib.reduce_on_plateau`` shows its own: wrappers that read a
    factory's signature, such as ``optax.inject_hyperparams``, then pass them by name."""
    own = inspect.signature(fn)
    controller = inspect.signature(ReduceOnPlateau).parameters
    named = [
        controller[name].replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for name in PlateauKwargs.__annotations__
    ]
    kept = [p for p in own.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    fn.__signature__ = own.replace(parameters=[*kept, *named])


_named_plateau_arguments(reduce_on_plateau)


# ============================================================================ find_lr


def _is_leaf_array(x: Any) -> bool:
    return isinstance(x, (np.ndarray, jax.Array, np.generic))


def _lr_found(state: Any) -> list[tuple[Any, Any]]:
    """The injected ``learning_rate`` hyperparameters of ``state``: ``(path, value)`` pairs."""
    return optax.tree_utils.tree_get_all_with_path(state, "learning_rate")  # type: ignore[no-any-return]


def _other_args(factory: Any) -> tuple[str, ...]:
    """The parameters of the optimizer factory ``factory`` that ``optax.inject_hyperparams``
    is to keep static: all but ``learning_rate`` and those whose value (a default, or a
    ``functools.partial``'s) is a float, which it injects as the training loop's
    ``factory(...)`` would compute with them. A flag or a size (``optax.adafactor``'s) traced
    under ``jit`` would break the factory's Python code."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read: optax injects what it finds
        return ()
    return tuple(
        p.name
        for p in params
        if p.name != "learning_rate"
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and not (isinstance(p.default, float) or _is_float_array(p.default))
    )


def _is_float_array(x: Any) -> bool:
    return _is_leaf_array(x) and np.issubdtype(np.asarray(x).dtype, np.floating)


def _lr_ratios(found: list[tuple[Any, Any]]) -> list[tuple[Any, float]] | None:
    """Each injected ``learning_rate`` of ``found`` (``(path, value)`` pairs of a state) and
    its ratio to the largest of them, when they differ (``optax.multi_transform`` of parts at
    other LRs: each is swept at its ratio, a part at 0 stays at 0); ``None`` when there is one
    LR, or all are equal or 0 (each is set to the swept LR)."""
    values = [float(np.asarray(v)) for _, v in found]
    top = max(values, default=0.0)
    if len(set(values)) <= 1 or not top > 0:
        return None
    return [(path, v / top) for (path, _), v in zip(found, values)]


def _is_number(path: Any, value: Any) -> bool:
    return _is_leaf_array(value) or isinstance(value, (int, float))


def _check_params(params: Any) -> None:
    """Every leaf of ``params`` is differentiated: a one-line ``ValueError`` naming the first
    leaf that is not a floating-point array (an integer counter, a boolean flag, something that
    is no array at all), or saying that there is none."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    if not leaves:
        raise ValueError(
            "params must be the parameters loss_fn(params, batch) differentiates, a tree of "
            f"floating-point arrays, got {V.fmt(params)}, which holds none"
        )
    for path, leaf in leaves:
        where = jax.tree_util.keystr(path)  # "" at the root
        try:
            dtype = jnp.asarray(leaf).dtype
        except (TypeError, ValueError):  # a function, a string, an object
            order = (
                " (the arguments are find_lr(loss_fn, params, optimizer, data), in the order "
                "of a JAX training step)"
                if callable(leaf) and not where
                else ""
            )
            raise ValueError(
                "params must be a tree of floating-point arrays (the first argument of "
                f"loss_fn), got {V.fmt(leaf)}{f' at params{where}' if where else ''}{order}"
            ) from None
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise ValueError(
                "params must hold floating-point (or complex) arrays only (the range test "
                f"differentiates every leaf), got {dtype} at params{where or '(the root)'}; "
                "keep integer or boolean state out of params (in loss_fn's closure or the batch)"
            )


def _check_loss_output(loss_fn: Callable[..., Any], params: Any, batch: Any, has_aux: bool) -> None:
    """A one-line ``ValueError`` when ``loss_fn(params, batch)`` (traced, not run) does not
    return what ``jax.value_and_grad`` needs: a scalar float loss, or ``(loss, aux)`` with
    ``has_aux=True``. Any other failure is left to the sweep's own call to report."""
    try:
        out = jax.eval_shape(loss_fn, params, batch)
    except Exception:  # noqa: BLE001 - the sweep's first step raises it with its own message
        return
    if has_aux:
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise ValueError(
                "loss_fn must return a (loss, aux) pair with has_aux=True, got "
                + _describe_output(out)
            )
        out = out[0]
    elif isinstance(out, (tuple, list)):
        raise ValueError(
            f"loss_fn must return the loss alone, got {_describe_output(out)}; for "
            "loss_fn(params, batch) -> (loss, aux) pass has_aux=True"
        )
    shape = getattr(out, "shape", None)
    if shape != ():
        raise ValueError(
            "loss_fn must return a scalar loss (shape (), e.g. jnp.mean(...)), got "
            + _describe_output(out)
        )
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"loss_fn must return a floating-point loss, got dtype {out.dtype}")


def _check_scored(
    eval_fn: Callable[[Any, Any], Any], params: Any, batch: Any, reference: Any, name: str
) -> None:
    """:func:`lrkit.finder.check_scored` with ``eval_fn`` (the held loss the held evaluation
    and the probes' scoring run) on ``params``: ``batch`` is ``name``'s first batch,
    ``reference`` the first batch of ``data``. The global RNGs (a ``loss_fn`` that draws from
    them) are put back afterwards."""
    rngs = GlobalRNGState()
    try:
        check_scored(
            lambda b: float(eval_fn(params, b)),
            batch,
            reference,
            name=name,
            expected="batches loss_fn(params, batch) accepts, laid out as data's are",
        )
    finally:
        rngs.restore()


def _describe_output(out: Any) -> str:
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {counted(len(out), 'item')}"
    shape = getattr(out, "shape", None)
    if shape is not None:
        return f"an array of shape {tuple(shape)}"
    return f"a {type(out).__name__}"


#: the most micro-batches one sweep step may take with ``optax.MultiSteps`` (its
#: ``every_k_schedule``): more, and the accumulation is taken to make no update at all
MAX_MICRO_BATCHES = 10_000


def _is_multisteps(x: Any) -> bool:
    return isinstance(x, optax.MultiStepsState)


def _updates_made(state: Any) -> int | None:
    """The updates the ``optax.MultiSteps`` accumulations inside ``state`` have made (their
    ``gradient_step``, summed), or ``None`` when there is no accumulation."""
    found = [
        x for x in jax.tree_util.tree_leaves(state, is_leaf=_is_multisteps) if _is_multisteps(x)
    ]
    return sum(int(x.gradient_step) for x in found) if found else None


def _micro_batches_counted(state: Any) -> list[tuple[int, int]]:
    """The counters of the ``optax.MultiSteps`` inside ``state``: ``(gradient_step,
    mini_step)`` of each; a micro-batch its ``should_skip_update_fn`` skipped changes none."""
    found = [
        x for x in jax.tree_util.tree_leaves(state, is_leaf=_is_multisteps) if _is_multisteps(x)
    ]
    return [(int(x.gradient_step), int(x.mini_step)) for x in found]


#: the default ``max_skipped`` of :func:`find_lr`: steps in a row that make no update
#: (``optax.apply_if_finite``, or micro-batches ``optax.MultiSteps``' ``should_skip_update_fn``
#: skips) before a sweep step is recorded all the same (as in :func:`lrkit.torch.find_lr`)
MAX_SKIPPED = 10


def _steps_not_finite(state: Any) -> int | None:
    """The steps the ``optax.apply_if_finite`` inside ``state`` skipped so far (summed), or
    ``None`` when there is none."""
    kind = optax.ApplyIfFiniteState
    found = [
        x
        for x in jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, kind))
        if isinstance(x, kind)
    ]
    return sum(int(x.total_notfinite) for x in found) if found else None


def _accumulation_start(state: Any) -> Any:
    """``state`` with every ``optax.MultiSteps`` accumulation on a boundary: no micro-batch
    counted and no gradient accumulated (the sweep's private state; the caller's is unchanged),
    so that each sweep step is one whole update."""

    def start(x: Any) -> Any:
        if not _is_multisteps(x):
            return x
        return x._replace(
            mini_step=jnp.zeros_like(x.mini_step),
            acc_grads=jax.tree_util.tree_map(jnp.zeros_like, x.acc_grads),
        )

    return jax.tree_util.tree_map(start, state, is_leaf=_is_multisteps)


def _hyper_dtype(params: Any) -> Any:
    """The dtype the sweep keeps its hyperparameters in: float32, or the params' wider float
    dtype (in bfloat16 Adam's ``b2 = 0.999`` rounds to 1 and its bias correction divides by
    0; an integer LR would round every swept LR)."""
    dtypes = [jnp.result_type(x) for x in jax.tree_util.tree_leaves(params)]
    return jnp.result_type(jnp.float32, *(d for d in dtypes if jnp.issubdtype(d, jnp.floating)))


def _without_schedule_counts(state: Any) -> Any:
    """``state`` with each ``ScaleByScheduleState`` (the step count an optimizer built with a
    schedule keeps for its LR) as the ``EmptyState`` the same optimizer built with a number
    keeps, and each ``inject_hyperparams`` state's schedule state for ``learning_rate``
    dropped, as one with a number keeps none: the sweep sets the LR itself, the rest of the
    state (moments, counts) is kept."""

    def scheduled_injection(x: Any) -> bool:
        # optax.inject_hyperparams(...)(learning_rate=schedule) keeps the schedule's count in
        # hyperparams_states, where the same optimizer built with a number keeps nothing
        states = getattr(x, "hyperparams_states", None)
        return _is_injected(x) and isinstance(states, dict) and "learning_rate" in states

    def is_leaf(x: Any) -> bool:
        return isinstance(x, optax.ScaleByScheduleState) or scheduled_injection(x)

    def strip(x: Any) -> Any:
        if isinstance(x, optax.ScaleByScheduleState):
            return optax.EmptyState()
        if scheduled_injection(x):
            kept = {k: v for k, v in x.hyperparams_states.items() if k != "learning_rate"}
            return x._replace(
                hyperparams_states=kept, inner_state=_without_schedule_counts(x.inner_state)
            )
        return x

    return jax.tree_util.tree_map(strip, state, is_leaf=is_leaf)


def _family(factory: Any, momentum: Any = None) -> str:
    """The family (:func:`lrkit.finder.optimizer_family`) of an optax optimizer factory: read
    off its name (a ``functools.partial``'s function; ``optax.inject_hyperparams(optax.sgd)``
    carries ``optax.sgd``'s) and its momentum (``momentum``, else the partial's keyword)."""
    base = getattr(factory, "func", factory)
    if momentum is None:
        momentum = (getattr(factory, "keywords", None) or {}).get("momentum")
    return optimizer_family(
        str(getattr(base, "__name__", "")), momentum=float(np.asarray(momentum or 0.0))
    )


def _is_injected(x: Any) -> bool:
    """An ``optax.inject_hyperparams`` state (its ``hyperparams`` and ``inner_state``)."""
    return isinstance(getattr(x, "hyperparams", None), dict) and hasattr(x, "inner_state")


def _wrapped_factory(transformation: Any) -> Any:
    """The factory an ``optax.inject_hyperparams(factory)(...)`` transformation (also inside
    ``optax.chain``) builds its optimizer with: the one function taking ``learning_rate``
    that its ``init`` holds (or the ``init`` functions a chain's holds); ``None`` when there
    is none or more than one."""

    def takes_lr(fn: Any) -> bool:
        try:
            return callable(fn) and "learning_rate" in inspect.signature(fn).parameters
        except (TypeError, ValueError):
            return False

    def held(fn: Any, depth: int) -> list[Any]:
        try:
            values = inspect.getclosurevars(fn).nonlocals.values()
        except TypeError:  # not a Python function
            return []
        out = [v for v in values if takes_lr(v)]
        if not out and depth:  # a chain's init holds those of its transformations
            for v in values:
                for f in v if isinstance(v, tuple) else ():
                    out += held(f, depth - 1) if inspect.isfunction(f) else []
        return out

    found = held(getattr(transformation, "init", None), 1)
    return found[0] if len(found) == 1 else None


#: the hyperparameters ``optax.inject_hyperparams(optax.sgd)`` injects (``nesterov``, a flag,
#: is not one)
_SGD_HYPERPARAMS = frozenset({"learning_rate", "momentum"})


def _injected_family(transformation: Any, state: Any) -> str:
    """The family of an optimizer built with ``optax.inject_hyperparams`` (also inside
    ``optax.chain`` or ``optax.MultiSteps``), from ``state``, its state: the factory it
    wraps, read as :func:`_family` reads a factory, and the ``momentum`` it injects; where
    the factory cannot be found (inside ``optax.MultiSteps``), SGD is one that injects
    ``learning_rate`` and ``momentum`` only and whose inner state is that of ``optax.sgd``
    (a momentum trace at most). Any other optimizer counts as adaptive."""
    found = [
        x
        for x in jax.tree_util.tree_leaves(state, is_leaf=_is_injected)
        if _is_injected(x) and "learning_rate" in x.hyperparams
    ]
    if not found:
        return optimizer_family("")
    hyper, inner = found[0].hyperparams, found[0].inner_state
    momentum = hyper.get("momentum")
    if momentum is None and _holds_trace(inner):  # momentum a static argument
        momentum = 1.0  # its value is not in the state; a trace is momentum
    factory = _wrapped_factory(transformation)
    if factory is not None:
        return _family(factory, momentum)
    parts = inner if type(inner) is tuple else (inner,)  # optax.chain's state: a plain tuple
    sgd = set(hyper) <= _SGD_HYPERPARAMS and all(
        isinstance(p, (optax.EmptyState, optax.TraceState)) for p in parts
    )
    return _family(optax.sgd, momentum) if sgd else optimizer_family("")


def _holds_trace(state: Any) -> bool:
    """Whether ``state`` holds an ``optax.TraceState`` (``optax.sgd``'s with momentum)."""
    leaves = jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, optax.TraceState))
    return any(isinstance(x, optax.TraceState) for x in leaves)


def _start_state(opt: Any, inner: Any, params: Any, opt_state: Any) -> Any:
    """The sweep's private optimizer state: ``opt.init(params)``, or a copy of ``opt_state``.
    A state of the plain optimizer the factory ``inner`` builds (``optax.adam(1e-3).init``,
    what a training loop holds) becomes the inner state of ``opt``'s
    ``inject_hyperparams`` state; any other structure is a one-line ``ValueError``."""
    if opt_state is None:
        return opt.init(params)
    state = jax.tree_util.tree_map(lambda x: jnp.array(x) if _is_leaf_array(x) else x, opt_state)
    structure: Any = jax.tree_util.tree_structure(state)

    def structure_of(init: Callable[[Any], Any]) -> Any:  # traced: no state is allocated
        return jax.tree_util.tree_structure(jax.eval_shape(init, params))

    if structure == structure_of(opt.init):
        return state
    plain = _without_schedule_counts(state)  # a state of optimizer(schedule) works too
    if jax.tree_util.tree_structure(plain) == structure_of(opt.init):
        return plain
    if inner is not None:
        if jax.tree_util.tree_structure(plain) == structure_of(inner.init):
            return opt.init(params)._replace(inner_state=plain)
    raise ValueError(
        "opt_state must be a state of optimizer (the structure optimizer.init(params) "
        "returns, or that of the optimizer built with a learning-rate schedule), got one of "
        "another structure"
    )


#: the keywords of the other finders, and what this one has instead
_OPTAX_HINTS = {
    "snapshot": "lrkit.torch.find_lr's; this finder leaves params and opt_state as given "
    "(it trains copies)",
    "accumulation_steps": "use optax.MultiSteps(...).gradient_transformation() as the optimizer",
}


def find_lr(
    loss_fn: Callable[..., Any],
    params: Any,
    optimizer: optax.GradientTransformation | Callable[..., optax.GradientTransformation],
    data: Iterable[Any],
    *,
    options: SweepOptions | None = None,
    opt_state: Any = None,
    has_aux: bool = False,
    jit: bool = True,
    val_data: Iterable[Any] | None = None,
    probe_data: Iterable[Any] | None = None,
    max_skipped: int = MAX_SKIPPED,
    progress: bool = False,
    callback: Callable[[int, float, float], None] | None = None,
    warn: bool = True,
    **sweep_options: Unpack[SweepKwargs],
) -> FinderResult:
    """Run the LR range test on a functional JAX training step.

    The sweep's options (``start_lr``, ``end_lr``, ``num_iter``, ``total_steps``, ``rule``,
    ``eval_every``, ``eval_batches``, ``optimizer_family``, ...) are those of
    :class:`lrkit.finder.SweepOptions`, given as keyword arguments or as ``options``. Pass
    ``total_steps``, the number of optimizer steps you plan to train: the suggestions depend
    on it. The first ``eval_batches`` batches of ``data`` are the held set (the sweep trains
    on the batches after them, and on them again only if ``data`` repeats); every
    ``eval_every`` steps their mean loss is measured and the default rule reads that curve.
    ``val_data`` (a few batches, read once and kept) is a held set of batches never trained
    on instead, as in :func:`lrkit.torch.find_lr`. The optimizer family is read off a
    factory's name (``optax.sgd`` and its ``momentum`` keyword in a ``functools.partial``),
    or off the factory and the ``momentum`` an ``optax.inject_hyperparams(optax.sgd)(...)``
    transformation injects; other optimizers count as adaptive unless ``optimizer_family``
    says otherwise.

    ``probe_data`` (your validation set: an iterable of batches, read once and kept) runs the
    probes after the sweep (:mod:`lrkit.finder.probes`): from the initial params and optimizer
    state before each, ``PROBE_STEPS`` (60) training steps at each of 8 constant LRs around
    the sweep's edge (same batches, same RNG), each scored by the mean of
    ``loss_fn(params, batch)`` over ``probe_data``; the suggestions are then scaled from the
    best probe's rate for the budget (``result.probes``). It costs 480 training steps and 8
    passes over ``probe_data`` (with the sweep, about 6.6 times a default sweep's steps) and
    suggests better on the task zoo (``docs/finder.md``).
    The first batch of ``val_data`` and of ``probe_data`` is scored once before the sweep (on
    the initial params; the global RNGs are put back): one ``loss_fn`` cannot score while it
    scores ``data``'s (a dict, a batch without the target) is a one-line ``ValueError`` naming
    it, before any training step.

    ``loss_fn(params, batch) -> loss`` (or ``(loss, aux)`` with ``has_aux=True``) is
    differentiated with ``jax.value_and_grad``; each sweep step sets the learning rate, runs
    ``optimizer.update`` and ``optax.apply_updates`` on the next batch of ``data`` (any iterable
    of batches, cycled; a generator is replayed from the batches it yielded).

    ``optimizer`` is either an optax optimizer *factory* taking ``learning_rate`` (``optax.adam``,
    ``functools.partial(optax.adamw, weight_decay=1e-4)``), which is wrapped with
    ``optax.inject_hyperparams`` (its arguments that are no float, flags and sizes, kept
    static), or a transformation built with
    ``optax.inject_hyperparams(factory)(learning_rate=<a number>)`` (also inside
    ``optax.chain``, ``optax.multi_transform`` or ``optax.MultiSteps``): the sweep writes the
    ``learning_rate`` hyperparameter of its state (an integer one, ``learning_rate=1``, is
    held as a float in the sweep's private state); several at other values are swept at their
    ratios to the largest, the suggestions being for it.
    ``opt_state`` (optional) is the state to start from (e.g. mid-training): a state of
    ``optimizer`` or, when ``optimizer`` is a factory, also the state of the plain optimizer
    it builds (``optax.adam(1e-3).init(params)``, what a training loop holds); either built
    with a learning-rate schedule (``optax.adam(schedule)``, or
    ``optax.inject_hyperparams(optax.adam)(learning_rate=schedule)``, whose schedule's count
    the sweep drops, as it sets the LR itself) works too; by default
    ``optimizer.init(params)``. ``params`` must hold floating-point (or complex) leaves only (each
    is differentiated), and ``loss_fn`` must return a scalar float loss (with ``has_aux=True``,
    a ``(loss, aux)`` pair): both are checked before the first step (``loss_fn`` is traced
    once with ``jax.eval_shape``), with a one-line ``ValueError`` naming what is wrong.

    With gradient accumulation (``optax.MultiSteps(...).gradient_transformation()``), a sweep
    step is one optimizer update: the ``every_k_schedule`` micro-batches it accumulates, at the
    same learning rate, and the loss recorded is their mean (as ``accumulation_steps`` in
    :func:`lrkit.torch.find_lr`); the sweep starts on an accumulation boundary. A step that
    makes no update, a micro-batch its ``should_skip_update_fn`` skipped or a step
    ``optax.apply_if_finite`` skipped (a finite loss, non-finite gradients), is retried at the
    same learning rate on the next batch, at most ``max_skipped`` times in a row, as
    :func:`lrkit.torch.find_lr` retries a ``GradScaler``'s skipped step.

    ``jit=True`` compiles the step and the held loss with ``jax.jit``; ``jit=False`` runs them
    eagerly (to debug ``loss_fn``), on the same batches (torch tensors as numpy arrays).

    The sweep runs on private copies: the caller's ``params`` and ``opt_state`` are never
    modified (no buffer donation; numpy inputs are copied before use). The global RNGs
    (Python's, numpy's, torch's when loaded) and the generators of torch DataLoaders given as
    ``data`` or ``val_data`` are put back afterwards, as the other finders do. Returns the same
    :class:`lrkit.finder.FinderResult` as every lrkit finder (``.suggestion``, ``.max_lr``,
    ``.base_lr``, ``.suggest(rule)``, ``.plot()``, ``.to_dict()``). ``progress=True`` shows a
    progress bar; ``callback(i, lr, loss)`` is called after each sweep step; ``warn=False``
    issues no :class:`~lrkit.finder.LRFinderWarning` for an unreliable result
    (``result.warnings`` and ``result.reliable`` still say why).
    """
    check_finder_kwargs("lrkit.optax.find_lr", sweep_options, finder=find_lr, hints=_OPTAX_HINTS)
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be a callable loss_fn(params, batch), got {V.fmt(loss_fn)}")
    if isinstance(optimizer, optax.MultiSteps):  # its transformation: the same init/update
        optimizer = optimizer.gradient_transformation()
    # a factory's family now; a transformation's once its state is built (it is read there)
    family = None if isinstance(optimizer, optax.GradientTransformation) else _family(optimizer)
    V.optional_callable("callback", callback, "callback(i, lr, loss)", 3)
    max_skipped = V.integer("max_skipped", max_skipped, 0)
    has_aux = V.flag("has_aux", has_aux)
    jit = V.flag("jit", jit)
    progress = V.flag("progress", progress)
    warn = V.flag("warn", warn)
    sweep = Sweep(options, **sweep_options)
    sweep.check_val_data(val_data)
    inner: Any = None  # the plain optimizer a factory builds, for a user's opt_state
    _check_params(params)
    hyper_dtype = _hyper_dtype(params)
    if isinstance(optimizer, optax.GradientTransformation):
        opt = optimizer
    elif callable(optimizer):
        try:  # the hyperparameters in hyper_dtype, not in the params' own (bfloat16)
            # its float arguments are injected, the others kept static (a flag or a size
            # traced under jit, such as adafactor's, would break the factory's code)
            opt = optax.inject_hyperparams(
                optimizer, static_args=_other_args(optimizer), hyperparam_dtype=hyper_dtype
            )(learning_rate=sweep.start_lr)
            inner = optimizer(learning_rate=sweep.start_lr)
        except TypeError as exc:
            raise ValueError(
                "optimizer must be an optax factory accepting learning_rate (e.g. optax.adam) "
                f"or an optax.inject_hyperparams(...) transformation; calling it failed: {exc}"
            ) from None
    else:
        raise ValueError(
            "optimizer must be an optax factory (e.g. optax.adam) or a GradientTransformation "
            f"built with optax.inject_hyperparams, got {V.fmt(optimizer)}"
        )
    # private copies: jnp.array copies numpy and jax inputs alike, so nothing of the caller's
    # is ever aliased by what the sweep produces
    work_params = jax.tree_util.tree_map(jnp.array, params)
    work_state = _start_state(opt, inner, work_params, opt_state)
    if family is None:
        family = _injected_family(opt, work_state)
    sweep.use_family(family)  # read off the optimizer, unless the options name one
    found_at = _lr_found(work_state)
    found = [v for _, v in found_at]
    if not found:
        raise ValueError(
            "optimizer must expose a learning_rate hyperparameter in its state: build it with "
            "optax.inject_hyperparams(optax.<name>)(learning_rate=...) or pass the factory "
            "(e.g. optax.adam) itself"
        )
    if not all(_is_number(None, v) for v in found):
        raise ValueError(
            "optimizer's learning_rate must be a number, not a schedule: the sweep sets it at "
            "every step (build it with optax.inject_hyperparams(...)(learning_rate=1e-3))"
        )
    ratios = _lr_ratios(found_at)  # read before an integer LR is set to a float below
    lr_dtype = jnp.result_type(*[jnp.asarray(v).dtype for v in found])
    if not jnp.issubdtype(lr_dtype, jnp.floating):
        # an integer hyperparameter (learning_rate=1) would round every swept LR to an
        # integer: the sweep's private state holds it as a float (float32, or the params'
        # wider float dtype) instead
        lr_dtype = hyper_dtype
        work_state = optax.tree_utils.tree_set(
            work_state, _is_number, learning_rate=jnp.asarray(sweep.start_lr, lr_dtype)
        )

    def train_step(p: Any, st: Any, batch: Any, lr: Any) -> tuple[Any, Any, Any]:
        if ratios is None:
            st = optax.tree_utils.tree_set(st, _is_number, learning_rate=lr.astype(lr_dtype))
        for path, ratio in ratios or ():  # each part at its ratio to the largest LR
            st = optax.tree_utils.tree_set(
                st,
                lambda at, value, want=path: at == want,
                learning_rate=(lr * ratio).astype(lr_dtype),
            )
        out, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(p, batch)
        loss = out[0] if has_aux else out
        try:
            updates, st = opt.update(grads, st, p)
        except TypeError as exc:  # raised while tracing, before any step runs
            if "required keyword-only argument" not in str(exc):
                raise
            # "... arguments: 'value', 'grad', and 'value_fn'"
            names = re.findall(r"'(\w+)'", str(exc).rsplit(":", 1)[-1]) or ["value"]
            needed = ", ".join(f"{n}=..." for n in names)
            raise ValueError(
                f"optimizer: a transformation in it needs update(..., {needed}), which the "
                "range test does not pass (it sets the LR alone): sweep the optimizer without "
                "a transformation that reads the loss (lrkit.optax.reduce_on_plateau, whose "
                "cuts would move the LR the sweep records); an optimizer that needs it for its "
                "own step (optax.contrib.momo, optax.lbfgs) cannot be swept"
            ) from None
        return optax.apply_updates(p, updates), st, loss

    def held_loss(p: Any, batch: Any) -> Any:
        out = loss_fn(p, batch)
        return out[0] if has_aux else out

    run_step, run_eval = (
        (jax.jit(train_step), jax.jit(held_loss)) if jit else (train_step, held_loss)
    )

    # torch tensors (a DataLoader's batches) reach the step as numpy arrays, compiled or not
    def step_fn(p: Any, st: Any, batch: Any, lr: Any) -> tuple[Any, Any, Any]:
        return run_step(p, st, jax.tree_util.tree_map(from_torch, batch), lr)  # type: ignore[no-any-return]

    def eval_fn(p: Any, batch: Any) -> Any:
        return run_eval(p, jax.tree_util.tree_map(from_torch, batch))

    accumulating = _updates_made(work_state) is not None  # optax.MultiSteps
    if accumulating:
        work_state = _accumulation_start(work_state)
    # the data may draw from the global RNGs (a numpy pipeline, a shuffled DataLoader) or
    # from a DataLoader's own generator: all go back afterwards
    rngs = GlobalRNGState(data=(data, val_data, probe_data))
    probes: Probes | None = None
    try:
        probe_batches = (  # read before any step: the user's validation set, kept
            held_batches(probe_data, name="probe_data", warn_many=False)
            if probe_data is not None
            else None
        )
        batches: Iterator[Any] = cycle_batches(data)
        if val_data is not None:  # batches never trained on
            held = held_batches(val_data)
            first = next(batches)
            batches = itertools.chain([first], batches)
        else:
            held = [next(batches) for _ in range(sweep.options.eval_batches)]
            first = held[0] if held else next(batches)
            if not held:  # the batch looked at is still the first one trained on
                batches = itertools.chain([first], batches)
        _check_loss_output(loss_fn, work_params, first, has_aux)
        # before any step: a val_data or probe_data loss_fn cannot score is named now, not
        # after the sweep (eval_fn is pure: nothing the sweep starts from changes)
        if val_data is not None and held:
            check_not_one_batch(val_data, first, name="val_data")
            _check_scored(eval_fn, work_params, held[0], first, "val_data")
        if probe_batches is not None:
            check_not_one_batch(probe_data, first, name="probe_data")
            _check_scored(eval_fn, work_params, probe_batches[0], first, "probe_data")
        state = [work_params, work_state]

        def evaluate(scored: list[Any] = held) -> float:
            return float(sum(float(eval_fn(state[0], b)) for b in scored) / len(scored))

        def micro_step(lr: float) -> float:
            state[0], state[1], loss = step_fn(
                state[0], state[1], next(batches), jnp.asarray(lr, lr_dtype)
            )
            return float(loss)

        guarded = _steps_not_finite(state[1]) is not None  # optax.apply_if_finite

        def one_step(lr: float) -> float:
            if not accumulating:
                for _ in range(max_skipped if guarded else 0):
                    before = _steps_not_finite(state[1])
                    loss = micro_step(lr)
                    if not math.isfinite(loss) or _steps_not_finite(state[1]) == before:
                        return loss  # (a non-finite loss stops the sweep)
                    # optax.apply_if_finite skipped it: no update, this LR on the next batch
                return micro_step(lr)
            # one optimizer update: the micro-batches optax.MultiSteps accumulates, at one LR
            made, total, n, skipped = _updates_made(state[1]), 0.0, 0, 0
            while _updates_made(state[1]) == made:
                if n == MAX_MICRO_BATCHES:
                    raise ValueError(
                        f"optimizer (optax.MultiSteps) made no update in {MAX_MICRO_BATCHES} "
                        "micro-batches: its every_k_schedule must be at most that"
                    )
                counted = _micro_batches_counted(state[1])
                loss = micro_step(lr)
                total, n = total + loss, n + 1
                if not math.isfinite(loss):  # the sweep stops on it (a skip_not_finite
                    return loss  # MultiSteps would skip every later micro-batch)
                # a micro-batch its should_skip_update_fn skipped counts nothing: after
                # max_skipped in a row the step ends without an update, the sweep goes on
                skipped = skipped + 1 if _micro_batches_counted(state[1]) == counted else 0
                if skipped > max_skipped:
                    break
            return total / n

        sweep.run(
            one_step,
            evaluate=evaluate if held else None,
            callback=callback,
            progress=progress,
        )
        if probe_batches is not None:
            # a one-shot iterator is read once: the batches after the sweep's, kept as the
            # probes first draw them, are what every probe trains on
            sweep_batches = batches
            kept: list[Any] = []

            def replayed() -> Iterator[Any]:
                i = 0
                while True:
                    if i == len(kept):
                        kept.append(next(sweep_batches))
                    yield kept[i]
                    i += 1

            def reset() -> None:
                nonlocal batches
                close = getattr(batches, "close", None)
                if batches is not sweep_batches and callable(close):
                    close()  # ends the last probe's pass over data (a loader's workers)
                rngs.restore()  # a shuffled loader's order, as for the sweep
                state[0], state[1] = work_params, work_state  # immutable: the initial state
                batches = replayed() if isinstance(data, Iterator) else cycle_batches(data)

            scored = probe_batches
            probes = sweep.probe(
                reset=reset, step=one_step, score=lambda: evaluate(scored), progress=progress
            )
    finally:
        rngs.restore()
    return sweep.result(warn=warn, probes=probes)
