"""Value tables: a schedule's exact rounded values, built once on the host, for compiled steps.

A compiled training step (``jax.jit``, Keras on JAX) that looks the learning rate up in a
table of ``dtype(s.values(t))`` gets the float64 closed form rounded once, bit for bit, with no
host round trip and no float32 arithmetic on the schedule. :func:`value_table` builds that
table for *any* schedule (it only calls ``s.values``) and says what holds past its end:

* ``"hold"``: the schedule's value is exactly ``values[-1]`` at every later step (a known
  horizon: ``cosine``, ``onecycle``, ``wsd``, ``warmup``, ``polynomial``, ``linear``,
  ``multistep``, ``piecewise_constant``, ``constant`` and their joins, sums, products,
  differences, scales and clamps; ``exponential``/``step`` once their rounded value has
  decayed to 0). The table is exact at *every* step.
* ``"periodic"``: the schedule repeats with ``period`` after ``offset`` (``cyclic`` triangular
  with a whole number of steps per cycle, ``cosine_restarts`` with ``T_mult=1`` and a whole
  ``T_0``, joins ending in one, their scales and clamps, and sums, products and differences of
  them with one another or with parts that hold: the least common multiple of the periods):
  past the table the index wraps. The table then holds the exact periodic value, while the
  float64 formula rounds ``t / period`` and so drifts slightly at large steps: the two can
  differ by a few units in the last place of float32 (at most 3 measured at steps up to 2**31,
  for a cycle that starts at 0; none for ``cosine_restarts``).
* ``"formula"``: nothing is known past the table (schedules that keep changing, such as
  ``exponential`` with a slow decay, ``inverse_sqrt``, ``inverse_time``, and any family lrkit
  does not know the shape of): steps beyond it must be computed by the formula.
* ``"host"``: as ``"formula"``, for a schedule that holds a Python callable
  (:func:`lrkit.schedules.function`, and composites of one), which has no formula to trace:
  steps beyond the table (and fractional steps) must be computed on the host, where
  ``s.values`` calls the function (:func:`formula_error` says why it cannot be traced). The
  table of a function schedule with a ``length`` ends there: ``fn`` is called at no step past
  it up front.

Numpy only: the adapters turn the table into a constant of the compiled program.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .. import _validate as V
from ._base import REGISTRY, Schedule, _short_label, structure
from ._function import checked_steps, holds_callable, reach

__all__ = [
    "EVALUATIONS",
    "TABLE_LIMIT",
    "ValueTable",
    "checked_steps",
    "formula_error",
    "horizon",
    "host_values",
    "period",
    "reach",
    "value_table",
]

#: default largest number of table entries (4 MiB in float32; a compiled program holds the
#: table as a constant: ~0.05 s of compile time and ~40 MB of transient host memory per 2**20)
TABLE_LIMIT = 1 << 20

#: how the framework adapters evaluate a schedule in a compiled step: from the value table
#: (default), by a float64 call to the host at every step, or by the formula traced in the
#: framework's float dtype
EVALUATIONS = ("table", "host", "formula")

Beyond = Literal["hold", "periodic", "formula", "host"]

# Parameters a family may gain later with a default that keeps today's shape; any other
# unknown parameter makes the analysis give up (the table is then still exact, up to its end).
_NEUTRAL_DEFAULTS: dict[str, Any] = {"cycle": False, "m_mul": 1.0, "warmup": "linear"}
_ONECYCLE = (
    "max_lr",
    "total_steps",
    "pct_start",
    "anneal_strategy",
    "div_factor",
    "final_div_factor",
    "three_phase",
    "base_momentum",
    "max_momentum",
)
_WSD = ("lr", "total_steps", "warmup_steps", "decay_steps", "decay", "min_lr", "init_lr", "warmup")
_WRAPPERS = ("schedules", "schedule", "factor", "min_lr", "max_lr", "a", "b")
_CYCLIC = ("base_lr", "max_lr", "step_size_up", "step_size_down", "mode", "gamma")


@dataclass(frozen=True)
class ValueTable:
    """``values[i] == dtype(scale * s.values(i))`` for ``0 <= i < len(values)``; past the end,
    ``beyond`` says what holds (see the module documentation)."""

    values: npt.NDArray[Any]
    beyond: Beyond
    offset: int = 0
    period: int = 0

    @property
    def size(self) -> int:
        return int(self.values.shape[0])

    def index(self, steps: Any) -> npt.NDArray[np.int64]:
        """The table index of integer ``steps >= 0`` (numpy; for ``"formula"`` and ``"host"``
        tables the steps past the end map to the last entry, which is not their value)."""
        t = np.asarray(steps, dtype=np.int64)
        n = self.size
        if self.beyond == "periodic":
            wrapped = self.offset + (t - self.offset) % self.period
            return np.where(t < n, t, wrapped)
        return np.minimum(t, n - 1)


def _known(s: Schedule, *keys: str) -> bool:
    """``s`` is exactly the registered family ``s.name`` with no parameter beyond ``keys``
    (other than ones at a default that keeps the family's shape)."""
    if type(s) is not REGISTRY.get(s.name):
        return False
    d = structure(s)  # a composite may hold a function schedule, which to_dict() refuses
    for k, val in d.items():
        if k == "name" or k in keys:
            continue
        if k in _NEUTRAL_DEFAULTS and val == _NEUTRAL_DEFAULTS[k]:
            continue
        return False
    return True


def horizon(s: Schedule) -> int | None:
    """A step ``h`` from which the float64 value of ``s`` is identical at every step
    (``s.values(t) == s.values(h)`` for all ``t >= h``), or ``None`` when none is known."""
    a: Any = s
    name = s.name
    if name == "constant" and _known(s, "lr"):
        return 0
    if name in ("cosine", "polynomial", "linear") and _known(
        s, "lr", "start_lr", "end_lr", "total_steps", "eta_min", "power"
    ):
        return int(a.total_steps)
    if name in ("onecycle", "onecycle_momentum") and _known(s, *_ONECYCLE):
        return int(a.total_steps) - 1
    if name == "warmup" and _known(s, "start_lr", "end_lr", "warmup_steps", "mode"):
        return int(a.warmup_steps)
    if name == "wsd" and _known(s, *_WSD):
        return int(a.total_steps)
    if name == "multistep" and _known(s, "lr", "milestones", "gamma"):
        return int(max(a.milestones, default=0))
    if name == "step" and _known(s, "lr", "step_size", "gamma"):
        return 0 if a.gamma == 1.0 or a.lr == 0.0 else None
    if name == "exponential" and _known(s, "lr", "gamma"):
        return 0 if a.gamma == 1.0 or a.lr == 0.0 else None
    if name == "inverse_time" and _known(s, "lr", "decay_steps", "decay_rate", "staircase"):
        return 0 if a.decay_rate == 0.0 else None
    if name == "piecewise_constant" and _known(s, "boundaries", "values"):
        return int(math.floor(a.boundaries[-1])) + 1 if a.boundaries else 0
    if name == "join" and _known(s, "schedules", "boundaries"):
        last = horizon(a.schedules[-1])
        if last is None:
            return None
        return (a.boundaries[-1] if a.boundaries else 0) + last
    if name in ("mul", "add", "sub", "scale", "clamp") and _known(s, *_WRAPPERS):
        parts = _parts(s)
        hs = [horizon(p) for p in parts]
        if all(h is not None for h in hs):
            return max(h for h in hs if h is not None)
        if name == "mul":  # a factor that holds at exactly 0 from h on: the product does
            # too when every other factor is known finite (one that may not be is left to the
            # formula, which gives 0 there as well, its zero's sign not analysed here)
            zeros = [h for p, h in zip(parts, hs) if h is not None and p.values([h])[0] == 0.0]
            if not zeros:
                return None
            h0 = min(zeros)
            i0 = next(i for i, h in enumerate(hs) if h == h0 and parts[i].values([h])[0] == 0.0)
            for i, (p, h) in enumerate(zip(parts, hs)):
                held = h is not None and h <= h0 and math.isfinite(p.values([h])[0])
                if i != i0 and not held and not _finite_everywhere(p):
                    return None
            return h0
        return None
    return None


#: parameters within [1 / _SAFE, _SAFE] (or 0) keep every family's arithmetic finite: a
#: difference, a doubling, a quotient of two parameters (``max_lr / div_factor``), a parameter
#: times a step below 2**53 (``lr * t / warmup_steps``)
_SAFE = 1e150
#: families whose value is finite at every step when their parameters are within that range
#: and their growth factor (``gamma``, ``m_mul``) is at most 1
_BOUNDED = (
    "constant",
    "cosine",
    "polynomial",
    "linear",
    "onecycle",
    "onecycle_momentum",
    "wsd",
    "inverse_time",
    "inverse_sqrt",
    "piecewise_constant",
    "step",
    "exponential",
    "multistep",
    "cosine_restarts",
    "cyclic",
    "warmup",
)


def _numbers(d: Any) -> list[float]:
    if isinstance(d, dict):
        return [x for v in d.values() for x in _numbers(v)]
    if isinstance(d, list):
        return [x for v in d for x in _numbers(v)]
    if isinstance(d, (int, float)) and not isinstance(d, bool):
        return [float(d)]
    return []


def _finite_everywhere(s: Schedule) -> bool:
    """Whether ``s.values`` is finite at every step (``False`` when not known)."""
    a: Any = s
    name = s.name
    if name in _BOUNDED and type(s) is REGISTRY.get(name):
        d = s.to_dict()
        if any(not (x == 0.0 or 1 / _SAFE <= abs(x) <= _SAFE) for x in _numbers(d)):
            return False
        if d.get("gamma", 1.0) > 1.0 and not (name == "cyclic" and d["mode"] != "exp_range"):
            return False
        if d.get("m_mul", 1.0) > 1.0:
            return False
        if name == "warmup" and d["mode"] == "exponential":
            return math.isfinite(a.end_lr / a.start_lr) and a.end_lr / a.start_lr <= _SAFE
        return True
    if name == "join":
        return all(_finite_everywhere(p) for p in a.schedules)
    if name == "clamp":
        return _finite_everywhere(a.schedule)
    return False  # sums, products, scales: may overflow even of finite parts


def period(s: Schedule) -> tuple[int, int] | None:
    """``(offset, period)`` such that the schedule's value at ``t >= offset`` is its value at
    ``offset + (t - offset) % period`` (up to the float64 formula's rounding), or ``None``."""
    a: Any = s
    name = s.name
    if name == "cyclic" and _known(s, *_CYCLIC) and a.mode == "triangular":
        total = float(a._total)
        if total.is_integer():
            return 0, int(total)
        return None
    if name == "cosine_restarts" and _known(s, "lr", "T_0", "T_mult", "eta_min") and a.T_mult == 1:
        if float(a.T_0).is_integer():
            return 0, int(a.T_0)
        return None
    if name == "join" and _known(s, "schedules", "boundaries"):
        inner = period(a.schedules[-1])
        if inner is None:
            return None
        return (a.boundaries[-1] if a.boundaries else 0) + inner[0], inner[1]
    if name in ("scale", "clamp") and _known(s, *_WRAPPERS):
        return period(a.schedule)
    if name in ("add", "mul", "sub") and _known(s, *_WRAPPERS):
        # each part periodic, or holding from a step on (a period of 1): the combination
        # repeats with the least common multiple of the periods, once every part does
        offset, per, periodic = 0, 1, False
        for part in _parts(s):
            p = period(part)
            if p is None:
                h = horizon(part)
                if h is None:
                    return None
                p = (h, 1)
            else:
                periodic = True
            offset, per = max(offset, p[0]), math.lcm(per, p[1])
        return (offset, per) if periodic else None
    return None


def _parts(s: Schedule) -> tuple[Schedule, ...]:
    """The schedules a composite combines step by step (``add``, ``mul``: its ``schedules``;
    ``sub``: ``a`` and ``b``; ``scale``, ``clamp``: the one it wraps)."""
    a: Any = s
    if s.name in ("add", "mul"):
        return tuple(a.schedules)
    if s.name == "sub":
        return (a.a, a.b)
    return (a.schedule,)


def _decays_below(s: Schedule, log_threshold: float) -> float | None:
    """A step estimate after which ``s`` is non-increasing and ``<= exp(log_threshold)``
    (it decays to 0); logs, since the threshold can be below the smallest float64."""
    a: Any = s
    name = s.name
    if name in ("exponential", "step") and _known(s, "lr", "gamma", "step_size"):
        if a.lr == 0.0:
            return 0.0
        if not a.gamma < 1.0:
            return None  # constant or growing: below the threshold now is not for good
        if math.log(a.lr) <= log_threshold:
            return 0.0
        k = (log_threshold - math.log(a.lr)) / math.log(a.gamma)
        return math.ceil(k) * a.step_size if name == "step" else k
    if name == "scale" and _known(s, "schedule", "factor"):
        if a.factor == 0.0:
            return 0.0
        return _decays_below(a.schedule, log_threshold - math.log(a.factor))
    if name == "join" and _known(s, "schedules", "boundaries"):
        inner = _decays_below(a.schedules[-1], log_threshold)
        if inner is None:
            return None
        return (a.boundaries[-1] if a.boundaries else 0) + inner
    return None


def _rounded(s: Schedule, start: int, stop: int, dtype: np.dtype[Any], scale: float) -> Any:
    # a value that overflows at a step the table holds (exponential(gamma > 1) far out) is
    # inf there, as the formula gives it at that step; no warning for steps never asked for
    with np.errstate(over="ignore"):
        values = s.values(np.arange(start, stop, dtype=np.float64))
        if scale != 1.0:
            values = values * scale
        return values.astype(dtype)


def _zero_from(
    s: Schedule, dtype: np.dtype[Any], scale: float, limit: int
) -> tuple[int, npt.NDArray[Any]] | None:
    """The first step from which the rounded value is 0 for good, when it comes within
    ``limit`` steps (with the table up to it), else ``None``."""
    if scale == 0.0:  # 0 times a finite value (0 * inf is NaN: left to the formula)
        return (0, np.zeros(1, dtype)) if _finite_everywhere(s) else None
    # half the smallest subnormal rounds to 0 (ties to even)
    log_tiny = math.log(float(np.finfo(dtype).smallest_subnormal)) - math.log(2.0)
    est = _decays_below(s, log_tiny - math.log(scale))
    if est is None or not math.isfinite(est) or est + 2 > limit:
        return None
    stop = min(limit, int(math.ceil(est)) + 2)
    values = _rounded(s, 0, stop, dtype, scale)
    nonzero = np.flatnonzero(values != 0)
    first_zero = int(nonzero[-1]) + 1 if nonzero.size else 0
    if first_zero >= stop:
        return None  # the estimate was short (rounding): give up rather than guess
    return first_zero, values[: first_zero + 1]


def value_table(
    s: Schedule,
    *,
    dtype: Any = np.float32,
    scale: float = 1.0,
    limit: int = TABLE_LIMIT,
) -> ValueTable:
    """The table of ``dtype(scale * s.values(t))`` for the integer steps a compiled step needs.

    At most ``limit`` entries: a schedule with a known horizon ``h`` (``h + 1 <= limit``) gets
    ``h + 1`` entries and ``"hold"``; a periodic one ``offset + k * period <= limit`` entries
    and ``"periodic"``; any other ``limit`` entries and ``"formula"`` (past the table, compute
    the value by the formula; ``"host"`` for one holding a Python callable, computed on the
    host). A function schedule (:func:`lrkit.schedules.function`) with a ``length`` is called
    at no step past it: the table covers at most the steps ``[0, length)`` (fewer in a
    composite that reaches that end sooner), ``"host"`` beyond. Every entry equals the
    float64 closed form rounded once.
    """
    if not isinstance(s, Schedule):
        raise ValueError(f"s must be a lrkit schedule, got {V.fmt(s)}")
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be a floating dtype, got {V.fmt(dtype)}") from None
    # numpy's floats, and the extra float types of ml_dtypes (bfloat16, float8_*) that JAX uses
    extra_float = np_dtype.name.startswith(("bfloat16", "float8"))
    if not (np.issubdtype(np_dtype, np.floating) or extra_float):
        raise ValueError(f"dtype must be a floating dtype, got {V.fmt(dtype)}")
    scale = V.non_negative("scale", scale)
    limit = V.integer("limit", limit, 2)
    # a function schedule with a ``length`` is called only at the steps of a run that long:
    # the table stops there and the host computes the steps past it
    limit = int(min(limit, max(1, reach(s, table=True))))
    h = horizon(s)
    if h is not None and h + 1 <= limit:
        return ValueTable(_rounded(s, 0, h + 1, np_dtype, scale), "hold")
    zero = _zero_from(s, np_dtype, scale, limit)
    if zero is not None:
        return ValueTable(zero[1], "hold")
    p = period(s)
    if p is not None and p[0] + p[1] <= limit:
        offset, per = p
        n = offset + per * ((limit - offset) // per)
        return ValueTable(_rounded(s, 0, n, np_dtype, scale), "periodic", offset, per)
    if not holds_callable(s):
        return ValueTable(_rounded(s, 0, limit, np_dtype, scale), "formula")
    # a function schedule's sign is checked nowhere else without a ``length``: here, at the
    # steps the table holds (a learning rate must be >= 0; a NaN the function gave is refused
    # by the function itself)
    values = _rounded(s, 0, limit, np_dtype, scale)
    bad = np.flatnonzero(~(values.astype(np.float64) >= 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{_short_label(s, 100)} must be >= 0 at every step (a learning rate), got "
            f"{float(s(i))!r} at step {i}"
        )
    return ValueTable(values, "host")


def formula_error(s: Schedule) -> str | None:
    """Why ``s`` cannot be evaluated by its formula traced in a compiled step
    (``s.values(t, xp=jax.numpy)``, the adapters' ``evaluation="formula"``), in one line, or
    ``None`` when it can: a schedule holding a Python callable (:func:`lrkit.schedules.function`)
    has no formula to trace."""
    if not holds_callable(s):
        return None
    return (
        f'evaluation="formula" traces the schedule\'s formula, but {_short_label(s, 100)} holds '
        "a Python callable (lrkit.schedules.function), which cannot be traced: use "
        'evaluation="table" (the default) or "host"'
    )


def host_values(s: Schedule, steps: Any, *, dtype: Any = np.float32, scale: float = 1.0) -> Any:
    """``dtype(scale * s.values(steps))``: the float64 closed form rounded once, what the
    adapters' ``evaluation="host"`` returns; a negative step reads step 0's value, as the
    compiled table does and optax's own schedules clip their count (a composition such as
    optax's ``join_schedules`` evaluates a later schedule at negative steps)."""
    t = np.maximum(np.asarray(steps, dtype=np.float64), 0.0)
    values = s.values(t)
    if scale != 1.0:
        values = values * scale
    with np.errstate(over="ignore"):
        return np.asarray(values, dtype=dtype)
