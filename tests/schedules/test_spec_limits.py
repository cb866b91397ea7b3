"""Spec strings and dicts: a missing parameter is named, deep nesting is a one-line error."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest

from lrkit import schedules as S
from lrkit.schedules._base import spec_depth
from lrkit.schedules._spec import MAX_DEPTH


@pytest.mark.parametrize(
    "spec,message",
    [
        ("cosine(0.1)", "cosine() missing required parameter 'total_steps' "
                        "(parameters: lr, total_steps, eta_min)"),
        ("add()", "add() missing required parameter 'schedules' (parameters: schedules)"),
        ("join()", "join() missing required parameters 'schedules', 'boundaries' "
                   "(parameters: schedules, boundaries)"),
    ],
)  # fmt: skip
def test_missing_parameters_are_named(spec: str, message: str) -> None:
    with pytest.raises(S.SpecError) as err:
        S.parse(spec)
    assert str(err.value).splitlines()[0].endswith(message)
    assert "__init__" not in str(err.value)
    with pytest.raises(ValueError, match=r"^cosine: cosine\(\) missing required parameter 'lr'"):
        S.from_dict({"name": "cosine", "total_steps": 10})


def _nested(depth: int) -> str:
    spec = "constant(0.1)"
    for _ in range(depth - 1):
        spec = f"add([{spec}, constant(0.0)])"
    return spec


def test_nesting_up_to_the_limit_parses_and_round_trips() -> None:
    s = S.parse(_nested(MAX_DEPTH // 2))  # a call and its list: two levels each
    assert S.parse(str(s)) == s and S.from_dict(s.to_dict()) == s
    assert s(3) == pytest.approx(0.1)


@pytest.mark.parametrize("spec", ["cosine(" * 2000, _nested(MAX_DEPTH)])
def test_deeper_nesting_is_a_spec_error_not_a_recursion_error(spec: str) -> None:
    with pytest.raises(S.SpecError, match=f"nested more than {MAX_DEPTH} deep"):
        S.parse(spec)


def test_deeply_nested_dict_is_a_value_error() -> None:
    d: dict = {"name": "constant", "lr": 0.1}
    for _ in range(2 * MAX_DEPTH):
        d = {"name": "add", "schedules": [d]}
    with pytest.raises(ValueError, match=f"nested more than {MAX_DEPTH} deep"):
        S.from_dict(d)


def _deep(depth: int, wrap: Any) -> S.Schedule:
    s: S.Schedule = S.constant(0.1)  # one level
    while spec_depth(s) < depth:
        s = wrap(s)
    return s


WRAPS = [
    ("scale", lambda s: 2.0 * s, 1),
    ("sum", lambda s: S.add(s, S.constant(0.0)), 2),
    ("join", lambda s: S.join([s, S.constant(0.1)], boundaries=[3]), 2),
    ("clamp", lambda s: s.clamp(max_lr=1.0), 1),
    ("sub", lambda s: S.sub(s, b=S.constant(0.0)), 1),
]


@pytest.mark.parametrize("kind,wrap,levels", WRAPS, ids=[w[0] for w in WRAPS])
def test_composites_stop_at_the_depth_parse_and_from_dict_read(kind, wrap, levels) -> None:
    s = _deep(MAX_DEPTH - levels + 1, wrap)
    while spec_depth(s) + levels <= MAX_DEPTH:
        s = wrap(s)
    assert spec_depth(s) <= MAX_DEPTH
    # the deepest composite that can be built reads back both ways
    assert S.parse(str(s)) == s and S.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match=rf"nested more than {MAX_DEPTH} deep") as err:
        wrap(s)
    assert "\n" not in str(err.value)


def test_a_leaf_with_a_list_counts_its_list() -> None:
    leaf = S.multistep(0.1, milestones=[3])
    assert spec_depth(leaf) == 2 and spec_depth(S.constant(0.1)) == 1
    assert spec_depth(leaf + leaf) == 4


def test_a_chain_of_plus_or_times_is_one_composite_with_the_same_values() -> None:
    # a + b + c is add([a, b, c]) (evaluated left to right, as the nested form): a long
    # chain stays far from the nesting limit
    a, b, c = S.cosine(0.1, total_steps=100), S.exponential(0.3, gamma=0.97), S.constant(0.01)
    t = np.arange(200)
    for op, nested, chained in ((S.add, S.add(S.add(a, b), c), a + b + c),
                                (S.mul, S.mul(S.mul(a, b), c), a * b * c)):  # fmt: skip
        assert chained == op(a, b, c) and spec_depth(chained) == 3
        assert np.array_equal(chained.values(t), nested.values(t))
        assert [chained(int(k)) for k in t] == [nested(int(k)) for k in t]
    s: S.Schedule = S.cosine(0.1, total_steps=100)
    for _ in range(3 * MAX_DEPTH):
        s = s + S.constant(0.001) + 0.0
    assert spec_depth(s) == 3 and S.parse(str(s)) == s


def test_a_spec_number_may_carry_an_explicit_plus_sign() -> None:
    assert S.parse("cosine(+0.1, total_steps=+100, eta_min=+1e-3)") == S.cosine(
        0.1, total_steps=100, eta_min=1e-3
    )
    assert S.parse("step(lr=1e+0, step_size=+7)") == S.step(1.0, step_size=7)


def _scales(depth: int) -> str:
    return "scale(" * (depth - 1) + "constant(0.1)" + ", factor=2)" * (depth - 1)


def test_a_spec_one_level_past_the_limit_is_refused_at_the_call_that_goes_past_it() -> None:
    assert S.parse(_scales(MAX_DEPTH))(0) == pytest.approx(0.1 * 2.0 ** (MAX_DEPTH - 1))
    spec = _scales(MAX_DEPTH + 1)
    with pytest.raises(S.SpecError) as err:
        S.parse(spec)
    assert err.value.pos == spec.index("constant") == 6 * MAX_DEPTH
    assert str(err.value).splitlines()[0] == (
        f"invalid schedule spec at position {6 * MAX_DEPTH}: schedules and lists nested more "
        f"than {MAX_DEPTH} deep, found 'constant'"
    )


def _scale_dicts(depth: int) -> dict:
    d: dict = {"name": "constant", "lr": 0.1}
    for _ in range(depth - 1):
        d = {"name": "scale", "schedule": d, "factor": 2}
    return d


def test_a_dict_one_level_past_the_limit_is_refused_in_one_line() -> None:
    assert S.from_dict(_scale_dicts(MAX_DEPTH))(0) == pytest.approx(0.1 * 2.0 ** (MAX_DEPTH - 1))
    with pytest.raises(ValueError) as err:
        S.from_dict(_scale_dicts(MAX_DEPTH + 1))
    assert str(err.value) == f"d: schedules and lists nested more than {MAX_DEPTH} deep"


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("cosine(.5, 10, eta_min=.05)", S.cosine(0.5, total_steps=10, eta_min=0.05)),
        ("cosine(1., 10, eta_min=-.0)", S.cosine(1.0, total_steps=10, eta_min=0.0)),
        ("exponential(.1, .9)", S.exponential(0.1, gamma=0.9)),
    ],
)  # fmt: skip
def test_a_spec_number_may_leave_out_the_digits_on_one_side_of_the_point(
    spec: str, expected: S.Schedule
) -> None:
    assert S.parse(spec) == expected


@pytest.mark.parametrize(
    "word,value",
    [("true", True), ("True", True), ("false", False), ("False", False)],
)
def test_a_spec_reads_true_and_false_in_either_case(word: str, value: bool) -> None:
    assert S.parse(f"polynomial(0.1, 10, cycle={word})").cycle is value
    assert S.parse(f"onecycle(0.1, 100, three_phase={word})").three_phase is value


@pytest.mark.parametrize("word", ["none", "None", "null"])
def test_a_spec_reads_none_in_every_spelling(word: str) -> None:
    assert S.parse(f"clamp(constant(0.1), min_lr={word}, max_lr=0.05)") == S.clamp(
        S.constant(0.1), max_lr=0.05
    )


@pytest.mark.parametrize("sign", ["", "+", "-"])
def test_a_huge_integer_counts_its_digits_without_the_sign(sign: str) -> None:
    with pytest.raises(S.SpecError) as info:
        S.parse("constant(" + sign + "1" * 5000 + ")")
    assert info.value.pos == 9
    assert str(info.value).splitlines()[0] == (
        "invalid schedule spec at position 9: integer with 5000 digits (at most 4300)"
    )


def test_a_spec_cut_by_a_single_character_is_still_marked_cut() -> None:
    # the position is 10; the part shown ends 60 characters after it, one short of the end
    spec = "multistep(-1, milestones=[3]" + " " * 42 + ")"
    assert len(spec) == 10 + 60 + 1
    with pytest.raises(S.SpecError) as info:
        S.parse(spec)
    assert info.value.pos == 10
    _, shown, caret = str(info.value).split("\n")
    assert shown == "  " + spec[:-1] + "..."
    assert caret == " " * 12 + "^"


def test_an_attribute_set_on_a_spec_error_survives_pickle_and_copy() -> None:
    with pytest.raises(S.SpecError) as info:
        S.parse("cosine(0.1, 100")
    err = info.value
    err.source = "train.yaml: schedule"  # type: ignore[attr-defined]
    for again in (pickle.loads(pickle.dumps(err)), copy.copy(err), copy.deepcopy(err)):
        assert again.source == "train.yaml: schedule"
        assert str(again) == str(err) and again.pos == 15


def test_list_items_without_a_comma_between_them_are_a_spec_error() -> None:
    with pytest.raises(S.SpecError) as info:
        S.parse("multistep(0.1, milestones=[3 5])")
    assert info.value.pos == 29
    assert str(info.value).splitlines()[0] == (
        "invalid schedule spec at position 29: expected ',' or ']', found '5'"
    )


def test_an_error_just_past_the_context_shows_the_spec_from_its_second_character() -> None:
    # the position is 61: the part shown starts 60 characters before it, at the second one
    spec = "add([  " + "constant(0.1), " * 3 + "constant(-1)])"
    with pytest.raises(S.SpecError) as info:
        S.parse(spec)
    assert info.value.pos == 61 == spec.index("-1")
    _, shown, caret = str(info.value).split("\n")
    assert shown == "  ..." + spec[1:]
    assert caret == " " * (2 + 3 + 60) + "^"


@pytest.mark.parametrize(
    "spec,message",
    [
        ("cosine", "expected a schedule call such as cosine(...), found 'cosine'"),
        ("true", "expected a schedule call such as cosine(...), found 'true'"),
        ("0.1", "expected a schedule name such as cosine(...), found '0.1'"),
        ("[cosine(0.1, 10)]", "expected a schedule name such as cosine(...), found '['"),
        ("", "expected a schedule name such as cosine(...), found end of input"),
    ],
)
def test_a_spec_that_is_not_a_schedule_call_is_a_spec_error_at_its_start(
    spec: str, message: str
) -> None:
    with pytest.raises(S.SpecError) as info:
        S.parse(spec)
    assert info.value.pos == 0
    assert str(info.value).splitlines()[0] == f"invalid schedule spec at position 0: {message}"


def test_a_dict_with_lists_nested_past_the_limit_is_refused_in_one_line() -> None:
    milestones: list = [3]
    for _ in range(2 * MAX_DEPTH):
        milestones = [milestones]
    with pytest.raises(ValueError) as err:
        S.from_dict({"name": "multistep", "lr": 0.1, "milestones": milestones})
    assert str(err.value) == f"d: schedules and lists nested more than {MAX_DEPTH} deep"


def test_an_error_in_a_list_within_a_list_of_a_dict_gives_both_indices() -> None:
    d = {"name": "add", "schedules": [[{"name": "constant", "lr": 0.1}, {"x": 1}]]}
    with pytest.raises(ValueError) as err:
        S.from_dict(d)
    assert str(err.value) == (
        "add: schedules[0][1]: d must be a dict with a 'name' key, got a dict with keys 'x'"
    )


@pytest.mark.parametrize("spec", [3, None, b"cosine(0.1, 10)", ["cosine(0.1, 10)"]])
def test_parse_given_something_other_than_a_string_names_its_type(spec: object) -> None:
    with pytest.raises(ValueError) as err:
        S.parse(spec)  # type: ignore[arg-type]
    assert not isinstance(err.value, S.SpecError)
    assert str(err.value) == f"spec must be a string, got {type(spec).__name__}"


def test_a_custom_familys_overflow_is_a_spec_error_or_a_value_error() -> None:
    """A family's constructor that overflows (``float`` of a huge integer) is refused as any
    other bad value: a SpecError at the call in a spec, a ValueError naming it in a dict."""
    from lrkit.schedules import REGISTRY, Schedule, register

    class Floats(Schedule):
        name = "lrkit_test_floats"
        params = ("lr",)

        def __init__(self, lr: float) -> None:
            self.lr = float(lr)

        def _values(self, t, xp):  # noqa: ANN001, ANN202
            return t * 0.0 + self.lr

    huge = "1" + "0" * 400
    try:
        register(Floats)
        spec = f"add(constant(0.1), lrkit_test_floats({huge}))"
        with pytest.raises(S.SpecError) as info:
            S.parse(spec)
        assert info.value.pos == spec.index("lrkit_test_floats")
        assert str(info.value).splitlines()[0] == (
            f"invalid schedule spec at position {info.value.pos}: lrkit_test_floats(): int too "
            "large to convert to float"
        )
        with pytest.raises(ValueError) as err:
            S.from_dict({"name": "lrkit_test_floats", "lr": int(huge)})
        assert str(err.value) == "lrkit_test_floats: int too large to convert to float"
    finally:
        REGISTRY.pop("lrkit_test_floats", None)
