"""Composition: joining schedules in time (with optax's step shifting), products, sums and
differences, constant scaling and clamping. Composites serialize and parse like any schedule."""

from __future__ import annotations

import bisect
import operator
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .. import _validate as v
from ._base import SPEC_READER, Schedule, builds, check_depth, register


def _schedules(name: str, items: Any, minimum: int) -> tuple[Schedule, ...]:
    if isinstance(items, Schedule):
        # one schedule where the list belongs: in a config, one dict instead of a list of
        # them (a YAML indentation slip), which from_dict has made a schedule by now; named
        # as written (a dict, a spec), never as the object it became
        from .._format import shorten

        raise ValueError(
            f"{name} must be a list of schedules, got one schedule (in a config, a dict where "
            f"a list of them belongs): write it as a list: [{shorten(str(items), 100)}]"
        )
    v.listed(name, items, "schedules")  # a string or a mapping
    try:
        out = tuple(items)
    except TypeError:
        raise ValueError(f"{name} must be a list of schedules, got {v.fmt(items)}") from None
    out = tuple(_as_part(f"{name}[{i}]", s) for i, s in enumerate(out))
    for i, s in enumerate(out):
        check_depth(f"{name}[{i}]", s, 2)  # the composite's call and its list
    if len(out) < minimum:
        raise ValueError(f"{name} must hold at least {minimum} schedule(s), got {len(out)}")
    return out


def _as_part(name: str, value: Any) -> Schedule:
    """A part of a composite: a schedule, or a spec string or ``to_dict()`` dict read as one
    (as the adapters take schedules); anything else a one-line ``ValueError`` naming it."""
    if isinstance(value, (str, Mapping)):
        return SPEC_READER[0](value, name=name)
    if not isinstance(value, Schedule):
        raise ValueError(f"{name} must be a schedule, got {v.fmt(value)}")
    return value


def _one(name: str, value: Any) -> Schedule:
    part = _as_part(name, value)
    check_depth(name, part, 1)
    return part


@register
class Join(Schedule):
    """``schedules[i](step - boundaries[i-1])`` for ``boundaries[i-1] <= step < boundaries[i]``:
    each segment sees its own step counted from 0 (optax's ``join_schedules``)."""

    name = "join"
    params = ("schedules", "boundaries")
    peer_names = {"milestones": ("boundaries", "")}  # PyTorch's SequentialLR

    def __init__(self, schedules: Any, *, boundaries: Any) -> None:
        self.schedules = _schedules("schedules", schedules, 1)
        self.boundaries = v.sorted_ints(
            "boundaries", boundaries, 0, strict=True, maximum=v.MAX_STEPS
        )
        if len(self.boundaries) != len(self.schedules) - 1:
            raise ValueError(
                f"boundaries must have len(schedules) - 1 = {len(self.schedules) - 1} entries, "
                f"got {len(self.boundaries)}"
            )

    @property
    def length(self) -> int | None:
        last = self.schedules[-1].length
        offset = self.boundaries[-1] if self.boundaries else 0
        if last is None:
            return None if not self.boundaries else int(offset * 1.25) + 1
        return offset + last

    def _at(self, t: float) -> float:
        i = bisect.bisect_right(self.boundaries, t)
        if i == 0:
            return self.schedules[0]._at(t)
        return self.schedules[i]._at(t - self.boundaries[i - 1])

    def _values(self, t: Any, xp: Any) -> Any:
        if xp is np:
            return self._values_np(t)
        # a traced namespace (jax, keras) takes no data-dependent shapes: every segment at
        # every step, each step then taking its own segment's value
        out = self.schedules[-1]._values(
            xp.maximum(t - (self.boundaries[-1] if self.boundaries else 0), 0.0), xp
        )
        offsets = (0, *self.boundaries)
        for i in range(len(self.schedules) - 2, -1, -1):
            # read within the segment's own steps: one that grows without bound is not
            # taken past its end, where it could overflow (an inf - inf would build a NaN)
            span = float(self.boundaries[i] - offsets[i])
            seg = self.schedules[i]._values(xp.clip(t - offsets[i], 0.0, span), xp)
            out = xp.where(t < self.boundaries[i], seg, out)
        return out

    def _values_np(self, t: Any) -> Any:
        # each segment evaluated only at the steps it serves, as the scalar path does: a
        # segment that grows without bound (``exponential(gamma > 1)``) would overflow at
        # the later steps it never serves
        if not self.boundaries:
            return self.schedules[0]._values(t, np)
        given = np.asarray(t)
        steps = np.asarray(t, dtype=np.float64)
        flat = np.ascontiguousarray(steps.reshape(-1))
        # each segment reads the steps in the type they were given (float32 steps give
        # float32 values, as every other schedule's formula does)
        each = given.reshape(-1)
        out = np.empty(flat.shape, dtype=np.float64)
        kinds = []
        parts: list[Any]
        if flat.size < 2 or bool(np.all(flat[1:] >= flat[:-1])):
            # sorted (e.g. np.arange): each segment serves one contiguous slice
            cuts = [0, *np.searchsorted(flat, self.boundaries, side="left").tolist(), flat.size]
            parts = [slice(cuts[i], cuts[i + 1]) for i in range(len(self.schedules))]
        else:
            # segment i serves boundaries[i-1] <= t < boundaries[i] (bisect_right, as _at)
            index = np.searchsorted(np.asarray(self.boundaries, dtype=np.float64), flat, "right")
            parts = [index == i for i in range(len(self.schedules))]
        offsets = (0, *self.boundaries)
        for i, part in enumerate(parts):
            local = each[part]
            if local.size == 0:
                continue
            if i:
                local = local - offsets[i]
            value = np.asarray(self.schedules[i]._values(local, np))
            kinds.append(value.dtype)
            out[part] = value
        if not kinds:  # no steps: the type the first segment gives
            kinds.append(np.asarray(self.schedules[0]._values(each, np)).dtype)
        return out.reshape(steps.shape).astype(np.result_type(*kinds), copy=False)


def _longest(schedules: Any) -> int | None:
    """The largest ``length`` among ``schedules`` (``None`` when none has one)."""
    lengths = [s.length for s in schedules if s.length is not None]
    return max(lengths) if lengths else None


class _Pointwise(Schedule):
    """The schedules combined step by step with one operation (``_op``), from left to right
    on both paths, so that the scalar and the vectorized values agree bit for bit."""

    params = ("schedules",)
    _op: staticmethod[[Any, Any], Any]

    def __init__(self, schedules: Any) -> None:
        self.schedules = _schedules("schedules", schedules, 2)

    @property
    def length(self) -> int | None:
        return _longest(self.schedules)

    def _at(self, t: float) -> float:
        # from the first value, as the vectorized path (``0.0 + -0.0`` would lose the sign)
        schedules, op = self.schedules, self._op
        out = schedules[0]._at(t)
        for i in range(1, len(schedules)):
            out = op(out, schedules[i]._at(t))
        return out

    def _values(self, t: Any, xp: Any) -> Any:
        out, op = self.schedules[0]._values(t, xp), self._op
        for s in self.schedules[1:]:
            out = op(out, s._values(t, xp))
        return out


@register
class Product(_Pointwise):
    """The product of several schedules at the same step. A factor that is 0 makes it 0, also
    where another factor is inf or NaN (not ``0 * inf``, NaN), as ``0 * s`` does; any other
    product is the factors multiplied from left to right, on both paths."""

    name = "mul"
    _op = staticmethod(operator.mul)

    def _at(self, t: float) -> float:
        schedules = self.schedules
        out = schedules[0]._at(t)
        zero = out == 0.0
        for i in range(1, len(schedules)):
            x = schedules[i]._at(t)
            zero = zero or x == 0.0
            out = out * x
        if zero and out != out:  # NaN: 0 times inf (or NaN)
            return 0.0
        return out

    def _values(self, t: Any, xp: Any) -> Any:
        out = self.schedules[0]._values(t, xp)
        zero = out == 0.0
        for s in self.schedules[1:]:
            x = s._values(t, xp)
            zero = zero | (x == 0.0)
            if xp is not np:
                # traced (jax): no 0 * inf is computed, so no NaN is built
                # (``jax_debug_nans``); where a factor is 0 both sides are 0
                out = xp.where(zero, 0.0, out) * xp.where(zero, 0.0, x)
            elif np.any(zero):
                with np.errstate(invalid="ignore"):  # 0 * inf, made 0 below
                    out = out * x
            else:
                out = out * x
        if xp is not np or not np.any(zero):
            return out
        return xp.where(zero & (out != out), 0.0, out)  # NaN: 0 times inf (or NaN)


@register
class Sum(_Pointwise):
    """The sum of several schedules at the same step (also ``a + b``)."""

    name = "add"
    _op = staticmethod(operator.add)


@register
class Difference(Schedule):
    """``a(step) - b(step)`` (also ``a - b``; ``0.95 - s`` is ``sub(constant(0.95), b=s)``),
    e.g. a momentum that moves against an LR wave, as PyTorch's ``CyclicLR`` cycles it.
    Nothing clips the result: ``clamp(sub(a, b=b), min_lr=0)`` keeps it ``>= 0`` where ``b``
    can exceed ``a``."""

    name = "sub"
    params = ("a", "b")

    def __init__(self, a: Schedule, *, b: Schedule) -> None:
        self.a = _one("a", a)
        self.b = _one("b", b)

    @property
    def length(self) -> int | None:
        return _longest((self.a, self.b))

    def _at(self, t: float) -> float:
        return self.a._at(t) - self.b._at(t)

    def _values(self, t: Any, xp: Any) -> Any:
        return self.a._values(t, xp) - self.b._values(t, xp)


@register
class Scale(Schedule):
    """``factor * schedule(step)``."""

    name = "scale"
    params = ("schedule", "factor")

    def __init__(self, schedule: Schedule, *, factor: float) -> None:
        self.schedule = _one("schedule", schedule)
        self.factor = v.non_negative("factor", factor)

    @property
    def length(self) -> int | None:
        return self.schedule.length

    def _at(self, t: float) -> float:
        if not self.factor:  # 0, also where the schedule overflows to inf (not 0 * inf)
            return 0.0
        return self.factor * self.schedule._at(t)

    def _values(self, t: Any, xp: Any) -> Any:
        inner = self.schedule._values(t, xp)
        return xp.zeros_like(inner) if not self.factor else self.factor * inner


@register
class Clamp(Schedule):
    """``schedule(step)`` clipped into ``[min_lr, max_lr]``; ``None`` leaves a side open."""

    name = "clamp"
    params = ("schedule", "min_lr", "max_lr")
    peer_names = {"min": ("min_lr", ""), "max": ("max_lr", "")}  # numpy's and torch's clip

    def __init__(
        self, schedule: Schedule, *, min_lr: float | None = None, max_lr: float | None = None
    ) -> None:
        self.schedule = _one("schedule", schedule)
        self.min_lr = None if min_lr is None else v.non_negative("min_lr", min_lr)
        self.max_lr = None if max_lr is None else v.non_negative("max_lr", max_lr)
        if self.min_lr is not None and self.max_lr is not None and self.max_lr < self.min_lr:
            raise ValueError(
                f"max_lr must be >= min_lr (allowed range: [{self.min_lr!r}, inf)), "
                f"got max_lr={max_lr!r}"
            )

    @property
    def length(self) -> int | None:
        return self.schedule.length

    def _at(self, t: float) -> float:
        x = self.schedule._at(t)
        # ``<=``/``>=``: at a tie numpy's maximum/minimum return the bound (its zero's sign)
        if self.min_lr is not None and x <= self.min_lr:
            x = self.min_lr
        if self.max_lr is not None and x >= self.max_lr:
            x = self.max_lr
        return x

    def _values(self, t: Any, xp: Any) -> Any:
        x = self.schedule._values(t, xp)
        if self.min_lr is not None:
            x = xp.maximum(x, self.min_lr)
        if self.max_lr is not None:
            x = xp.minimum(x, self.max_lr)
        return x


@builds(Join)
def join(schedules: Any, *, boundaries: Any) -> Join:
    """Join schedules in time; segment ``i`` starts at ``boundaries[i-1]`` and sees its own
    step counted from 0 there (optax's step shifting)."""
    return Join(schedules, boundaries=boundaries)


#: iterables that are not a list of schedules (a string iterates as characters)
_NOT_LISTS = (str, bytes, Mapping)


def _terms(name: str, args: tuple[Any, ...], schedules: Any) -> Any:
    """The schedules of ``add``/``mul``: given one by one (``add(a, b)``), as one list
    (``add([a, b])``) or by keyword (``add(schedules=[a, b])``, as ``str`` writes it)."""
    if not (type(schedules) is tuple and not schedules):  # schedules= given
        if args:
            raise TypeError(
                f"{name}() takes its schedules by position or as schedules=[...], not both"
            )
        return schedules
    if len(args) == 1 and isinstance(args[0], Iterable) and not isinstance(args[0], _NOT_LISTS):
        return args[0]  # one list of schedules
    for i, item in enumerate(args):
        if isinstance(item, (list, tuple)):
            raise ValueError(
                f"schedules[{i}] must be a schedule, got a {type(item).__name__}: {name}() "
                "takes its schedules as one list or one by one, not a list and more"
            )
    return args


def mul(*args: Any, schedules: Any = ()) -> Product:
    """The step-wise product of two or more schedules (also ``a * b``): ``mul(a, b, ...)``,
    ``mul([a, b, ...])`` or ``mul(schedules=[a, b, ...])``."""
    return Product(_terms("mul", args, schedules))


def add(*args: Any, schedules: Any = ()) -> Sum:
    """The step-wise sum of two or more schedules (also ``a + b``): ``add(a, b, ...)``,
    ``add([a, b, ...])`` or ``add(schedules=[a, b, ...])``."""
    return Sum(_terms("add", args, schedules))


@builds(Difference)
def sub(a: Schedule, *, b: Schedule) -> Difference:
    """The step-wise difference ``a - b`` (also written ``a - b``)."""
    return Difference(a, b=b)


@builds(Scale)
def scale(schedule: Schedule, *, factor: float) -> Scale:
    """``factor * schedule`` (also ``factor * s``)."""
    return Scale(schedule, factor=factor)


@builds(Clamp)
def clamp(schedule: Schedule, *, min_lr: float | None = None, max_lr: float | None = None) -> Clamp:
    """``schedule`` clipped into ``[min_lr, max_lr]``."""
    return Clamp(schedule, min_lr=min_lr, max_lr=max_lr)
