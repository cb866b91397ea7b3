"""Every public schedule constructor and helper takes its first argument by position and the
rest by keyword; spec strings still map positional arguments onto the declared order."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

from lrkit import schedules as S
from lrkit.schedules._base import REGISTRY


def _public_callables() -> list[tuple[str, Any]]:
    out = []
    for name in S.__all__:
        obj = getattr(S, name)
        if obj is S.Schedule or (isinstance(obj, type) and issubclass(obj, Exception)):
            continue
        if not callable(obj):
            continue
        params = inspect.signature(obj).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
            continue  # mul(*schedules), add(*schedules): n-ary by design
        out.append((name, obj))
    return out


PUBLIC = _public_callables()


def test_the_public_names_are_all_checked() -> None:
    names = {n for n, _ in PUBLIC}
    # every registered family and composite has its class and its lower-case name checked
    for cls in REGISTRY.values():
        assert cls.__name__ in names
    assert {"cosine", "warmup_linear", "with_warmup", "join", "scale", "clamp", "sub"} <= names
    assert "mul" not in names and "add" not in names


@pytest.mark.parametrize("name, fn", PUBLIC, ids=[n for n, _ in PUBLIC])
def test_at_most_one_positional_parameter(name: str, fn: Any) -> None:
    positional = [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    assert len(positional) <= 1, f"{name} takes {positional} by position"


@pytest.mark.parametrize("name, fn", PUBLIC, ids=[n for n, _ in PUBLIC])
def test_a_second_positional_argument_is_a_type_error(name: str, fn: Any) -> None:
    with pytest.raises(TypeError, match="positional"):
        fn(S.constant(0.1), S.constant(0.1))


def test_keywords_build_the_same_schedule_as_a_positional_spec() -> None:
    assert S.parse("cosine(0.1, 1000)") == S.cosine(0.1, total_steps=1000)
    assert S.parse("warmup(0.0, 0.1, 100, cosine)") == S.warmup_cosine(
        0.0, end_lr=0.1, warmup_steps=100
    )
    assert S.parse("sub(constant(1), constant(0.5))") == S.sub(S.constant(1), b=S.constant(0.5))
    assert S.parse("join([constant(1), constant(2)], [5])") == S.join(
        [S.constant(1), S.constant(2)], boundaries=[5]
    )


@pytest.mark.parametrize(
    "call, spec",
    [
        (lambda: S.cosine(0.1, 1000), "cosine(0.1, 1000)"),
        (lambda: S.cosine(0.1, 1000, 0.001), "cosine(0.1, 1000, 0.001)"),
        (lambda: S.step(0.1, 10, gamma=0.5), "step(0.1, 10, gamma=0.5)"),
        (
            lambda: S.piecewise_constant([10, 20], [0.1, 0.01, 0.001]),
            "piecewise_constant([10, 20], [0.1, 0.01, 0.001])",
        ),
        (lambda: S.onecycle(0.1, 100, 0.25, "linear"), "onecycle(0.1, 100, 0.25, linear)"),
        (
            lambda: S.join([S.constant(0.1), S.constant(0.2)], [5]),
            "join([constant(0.1), constant(0.2)], [5])",
        ),
    ],
    ids=["cosine", "cosine-3", "step", "piecewise_constant", "onecycle", "join"],
)
def test_a_python_call_with_spec_positions_is_shown_with_keywords(call: Any, spec: str) -> None:
    """A Python call given a spec's positional arguments is refused; the error shows the call
    with keywords, which builds the schedule that spec string builds."""
    with pytest.raises(TypeError) as info:
        call()
    shown = re.search(r"give the others by keyword, as in (.+) \(parameters: ", str(info.value))
    assert shown is not None, str(info.value)
    assert S.parse(shown.group(1)) == S.parse(spec)


def test_positional_spec_arguments_follow_each_constructors_declared_order() -> None:
    for cls in REGISTRY.values():
        declared = [
            p.name
            for p in inspect.signature(cls).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        assert tuple(declared) == cls.params, cls.name


def test_too_many_positional_spec_arguments_is_a_one_line_spec_error() -> None:
    with pytest.raises(S.SpecError) as info:
        S.parse("cosine(0.1, 100, 0.0, 5)")
    first = str(info.value).splitlines()[0]
    assert (
        "too many positional arguments: cosine() takes at most 3 (lr, total_steps, eta_min)"
        in first
    )
