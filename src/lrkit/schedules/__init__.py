"""Learning-rate schedules: pure, closed-form ``step -> lr`` objects.

>>> from lrkit import schedules as S
>>> ramp = S.warmup(0.0, end_lr=0.1, warmup_steps=100)
>>> s = S.join([ramp, S.cosine(0.1, total_steps=900)], boundaries=[100])
>>> s(50), s.values([0, 100, 1000])
(0.05, array([0. , 0.1, 0. ]))
>>> S.parse(str(s)) == s
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _validate
from .. import _validate as V
from ._base import REGISTRY as REGISTRY  # the families by name
from ._base import Schedule, builds, register
from ._compose import (
    Clamp,
    Difference,
    Join,
    Product,
    Scale,
    Sum,
    add,
    clamp,
    join,
    mul,
    scale,
    sub,
)
from ._families import (
    WSD,
    Constant,
    Cosine,
    CosineRestarts,
    Cyclic,
    Exponential,
    InverseSqrt,
    InverseTime,
    Linear,
    MultiStep,
    OneCycle,
    OneCycleMomentum,
    PiecewiseConstant,
    Polynomial,
    Step,
    Warmup,
)
from ._function import Function, holds_callable, to_dict_with
from ._spec import (
    FORMS,
    SpecError,
    as_schedule,
    from_dict,
    from_dict_with,
    is_schedule_list,
    parse,
    spec_names,
)

# Lower-case constructors: the names users call (they mirror PyTorch's keyword names).
constant = Constant
step = Step
multistep = MultiStep
exponential = Exponential
inverse_time = InverseTime
polynomial = Polynomial
linear = Linear
cosine = Cosine
cosine_restarts = CosineRestarts
cyclic = Cyclic
onecycle = OneCycle
onecycle_momentum = OneCycleMomentum
inverse_sqrt = InverseSqrt
piecewise_constant = PiecewiseConstant
wsd = WSD
warmup = Warmup
function = Function  # lr * fn(step): PyTorch's LambdaLR (not writable as a spec or config)


@builds(Warmup)
def warmup_linear(start_lr: float, *, end_lr: float, warmup_steps: int) -> Warmup:
    """Linear ramp from ``start_lr`` to ``end_lr`` over ``warmup_steps``, then ``end_lr``."""
    return Warmup(start_lr, end_lr=end_lr, warmup_steps=warmup_steps, mode="linear")


@builds(Warmup)
def warmup_exponential(start_lr: float, *, end_lr: float, warmup_steps: int) -> Warmup:
    """Geometric ramp ``start_lr * (end_lr / start_lr) ** (step / warmup_steps)``."""
    return Warmup(start_lr, end_lr=end_lr, warmup_steps=warmup_steps, mode="exponential")


@builds(Warmup)
def warmup_cosine(start_lr: float, *, end_lr: float, warmup_steps: int) -> Warmup:
    """Half-cosine ramp from ``start_lr`` to ``end_lr`` over ``warmup_steps``."""
    return Warmup(start_lr, end_lr=end_lr, warmup_steps=warmup_steps, mode="cosine")


@builds(Warmup)
def with_warmup(
    schedule: Schedule | str | Mapping[str, Any],
    *,
    warmup_steps: int,
    start_lr: float = 0.0,
    mode: str = "linear",
) -> Join:
    """Prepend a warmup ramp from ``start_lr`` to ``schedule(0)``; the schedule then starts
    at its own step 0 (``join`` step shifting), as Hugging Face's ``*_with_warmup`` do.
    ``schedule``: a schedule, a spec string or a ``to_dict()`` dict.
    ``warmup_steps=0`` (Hugging Face's ``num_warmup_steps=0``) is no ramp: ``schedule``
    alone, as a ``join`` of one segment."""
    schedule = as_schedule(schedule, name="schedule")
    steps = _validate.warmup_steps(warmup_steps)
    end = schedule(0)  # the ramp's end; its own end_lr is not a parameter given here
    if not end >= 0:
        raise ValueError(
            f"schedule must start at a learning rate >= 0 to warm up to, got schedule(0) = {end!r}"
        )
    if isinstance(mode, str) and mode == "exponential":  # said in with_warmup's terms
        if not end > 0:  # the ramp's end is schedule(0)
            raise ValueError(
                "schedule must start above 0 for mode='exponential' (a geometric ramp cannot "
                f"reach 0), got schedule(0) = {end!r}"
            )
        if V.number("start_lr", start_lr) <= 0:  # (the default 0 is for mode='linear')
            raise ValueError(
                "start_lr must be > 0 for mode='exponential' (allowed range: (0, inf)), got "
                + V.fmt(start_lr)
            )
    if steps == 0:
        # the ramp's other arguments are still checked, as they are with a ramp
        Warmup(start_lr, end_lr=end, warmup_steps=1, mode=mode)
        return Join([schedule], boundaries=[])
    ramp = Warmup(start_lr, end_lr=end, warmup_steps=steps, mode=mode)
    return Join([ramp, schedule], boundaries=[ramp.warmup_steps])


class _WithWarmupForm:
    """``with_warmup(schedule, warmup_steps=..., start_lr=..., mode=...)`` in spec strings and
    dicts: the ``join`` :func:`with_warmup` builds."""

    name = "with_warmup"
    params = ("schedule", "warmup_steps", "start_lr", "mode")
    peer_names = Warmup.peer_names

    def __new__(  # type: ignore[misc]
        cls, schedule: Schedule, *, warmup_steps: int, start_lr: float = 0.0, mode: str = "linear"
    ) -> Join:
        return with_warmup(schedule, warmup_steps=warmup_steps, start_lr=start_lr, mode=mode)


FORMS["with_warmup"] = _WithWarmupForm


def names() -> list[str]:
    """The names usable in spec strings and dicts: the schedule families, and
    ``with_warmup`` (which builds a ``join``)."""
    return spec_names()


__all__ = [
    "Schedule",
    "SpecError",
    "parse",
    "from_dict",
    "as_schedule",
    "is_schedule_list",
    "register",
    "names",
    "constant",
    "step",
    "multistep",
    "exponential",
    "inverse_time",
    "polynomial",
    "linear",
    "cosine",
    "cosine_restarts",
    "cyclic",
    "onecycle",
    "onecycle_momentum",
    "inverse_sqrt",
    "piecewise_constant",
    "wsd",
    "warmup",
    "function",
    "holds_callable",
    "to_dict_with",
    "from_dict_with",
    "warmup_linear",
    "warmup_exponential",
    "warmup_cosine",
    "with_warmup",
    "join",
    "mul",
    "add",
    "sub",
    "scale",
    "clamp",
    "Constant",
    "Step",
    "MultiStep",
    "Exponential",
    "InverseTime",
    "Polynomial",
    "Linear",
    "Cosine",
    "CosineRestarts",
    "Cyclic",
    "OneCycle",
    "OneCycleMomentum",
    "InverseSqrt",
    "PiecewiseConstant",
    "WSD",
    "Warmup",
    "Function",
    "Join",
    "Product",
    "Sum",
    "Difference",
    "Scale",
    "Clamp",
]
