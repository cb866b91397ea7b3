"""Composites and phases: a join evaluates each segment (a warmup ramp each step) only where it
serves; add and mul take their schedules one by one, as a list or by keyword; arithmetic with a
number names the number; a spec's error about one of add's schedules points at it."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

from lrkit import schedules as S
from lrkit.schedules._base import MAX_DEPTH, spec_depth

# ------------------------------------------------------------ join: one segment per step

GROWING = S.join(
    [S.exponential(1e-6, gamma=1.05), S.cosine(0.1, total_steps=20000)], boundaries=[300]
)


def _silent_values(s: S.Schedule, steps: Any) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return s.values(steps)


def test_join_values_are_silent_where_a_replaced_segment_would_overflow() -> None:
    got = _silent_values(GROWING, [15000])
    assert got.tolist() == [S.cosine(0.1, total_steps=20000)(14700)] == [GROWING(15000)]


@pytest.mark.parametrize(
    "s",
    [
        GROWING,
        # the growing segment in the middle, a segment of no steps (boundary 0) first
        S.join(
            [
                S.constant(0.5),
                S.constant(0.2),
                S.exponential(1e-3, gamma=1.5),
                S.linear(0.1, end_lr=0.0, total_steps=50),
            ],
            boundaries=[0, 10, 40],
        ),
        # inside other composites, and a join inside a join
        S.add(GROWING, S.constant(0.01)),
        S.join([GROWING, S.constant(0.3)], boundaries=[20000]).clamp(max_lr=0.09),
    ],
    ids=["two", "middle", "in-add", "nested"],
)
def test_join_values_equal_the_scalar_path_bit_for_bit(s: S.Schedule) -> None:
    steps = np.concatenate([np.arange(0, 25000, 3.5), [299, 299.5, 300, 300.5, 2.0**53]])
    want = [s(float(t)) for t in steps]
    assert _silent_values(s, steps).tolist() == want  # sorted: each segment one slice
    order = np.random.default_rng(0).permutation(steps.size)
    shuffled = _silent_values(s, steps[order].reshape(2, -1))
    assert shuffled.shape == (2, steps.size // 2)
    assert shuffled.reshape(-1).tolist() == [want[i] for i in order]
    assert all(math.isfinite(x) for x in want)


def test_join_values_with_numpy_given_take_any_shape() -> None:
    assert GROWING.values(np.float64(15000), xp=np).tolist() == GROWING(15000)
    assert GROWING.values(np.array([[5.0], [15000.0]]), xp=np).tolist() == [
        [GROWING(5)],
        [GROWING(15000)],
    ]
    assert _silent_values(GROWING, []).tolist() == []


@pytest.mark.parametrize(
    "s",
    [
        S.wsd(1e308, total_steps=100, warmup_steps=10),
        S.wsd(0.1, total_steps=100, warmup_steps=10, init_lr=0.01),
        S.inverse_sqrt(1e307, warmup_steps=10),
        S.inverse_sqrt(0.3, warmup_steps=7),
    ],
)
def test_a_warmup_ramp_is_evaluated_only_at_the_steps_it_serves(s: S.Schedule) -> None:
    steps = np.arange(0, 200, 0.25)
    assert _silent_values(s, steps).tolist() == [s(float(t)) for t in steps]


def test_a_join_value_beyond_float64_is_still_inf() -> None:
    s = S.join([S.cosine(0.1, total_steps=10), S.exponential(0.1, gamma=2.0)], boundaries=[10])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert s.values([0, 5000]).tolist() == [0.1, math.inf]
    assert s(5000) == math.inf


def test_join_given_one_schedule_dict_instead_of_a_list_names_what_was_written() -> None:
    """A config's ``schedules:`` holding one dict, not a list of dicts (a YAML indentation
    slip): one line naming it as written, not the schedule object it was turned into."""
    cos = {"name": "cosine", "lr": 0.1, "total_steps": 900}
    with pytest.raises(ValueError) as info:
        S.from_dict({"name": "join", "schedules": cos, "boundaries": []})
    msg = str(info.value)
    assert msg == (
        "schedules must be a list of schedules, got one schedule (in a config, a dict where a "
        "list of them belongs): write it as a list: [cosine(lr=0.1, total_steps=900, eta_min=0.0)]"
    )
    assert "<lrkit schedule" not in msg and "\n" not in msg
    # as a list it is what the error asks for
    assert S.from_dict({"name": "join", "schedules": [cos], "boundaries": []})(0) == 0.1


# ------------------------------------------------------------ add and mul: their arguments

A, B = S.constant(0.85), S.cosine(0.1, total_steps=10)


@pytest.mark.parametrize("fn, op", [(S.add, "add"), (S.mul, "mul")])
def test_add_and_mul_take_a_list_as_well_as_the_schedules_one_by_one(fn: Any, op: str) -> None:
    one_by_one = fn(A, B)
    assert fn([A, B]) == fn((A, B)) == fn(schedules=[A, B]) == fn(iter([A, B])) == one_by_one
    assert fn([A, B, A]) == fn(A, B, A) == S.parse(f"{op}({A}, {B}, {A})")
    assert one_by_one == (A + B if op == "add" else A * B)
    # str writes add(schedules=[...]): valid Python with the constructors in scope
    assert str(one_by_one).startswith(f"{op}(schedules=[")
    assert eval(str(one_by_one), dict(vars(S))) == one_by_one


def test_add_and_sub_specs_parse_by_position_list_and_keyword_and_round_trip() -> None:
    c, k = "constant(0.95)", "cyclic(0, 0.1, 2000, mode=triangular2)"
    total = S.add(S.constant(0.95), S.parse(k))
    forms = [f"add({c}, {k})", f"add([{c}, {k}])", f"add(schedules=[{c}, {k}])"]
    assert [S.parse(f) for f in forms] == [total] * 3
    assert str(total) == (
        "add(schedules=[constant(lr=0.95), cyclic(base_lr=0.0, max_lr=0.1, step_size_up=2000, "
        'step_size_down=none, mode="triangular2", gamma=1.0)])'
    )
    difference = S.sub(S.constant(0.95), b=S.parse(k))
    forms = [f"sub({c}, {k})", f"sub(a={c}, b={k})", f"sub({c}, b={k})"]
    assert [S.parse(f) for f in forms] == [difference] * 3
    assert str(difference).startswith("sub(a=constant(lr=0.95), b=cyclic(base_lr=0.0, ")
    for s in (total, difference):
        assert S.parse(str(s)) == s and str(S.parse(str(s))) == str(s)
        assert (
            S.parse(str(s)).values([0, 1000, 2000, 4000]).tolist()
            == s.values([0, 1000, 2000, 4000]).tolist()
        )
    assert difference.values([0, 2000]).tolist() == [0.95, 0.95 - 0.1]


@pytest.mark.parametrize("fn, op", [(S.add, "add"), (S.mul, "mul")])
@pytest.mark.parametrize(
    "call, kind, message",
    [
        (lambda f: f([A, 0.1]), ValueError, "schedules[1] must be a schedule, got 0.1"),
        (lambda f: f(A, 0.1), ValueError, "schedules[1] must be a schedule, got 0.1"),
        (lambda f: f(0.1), ValueError, "schedules[0] must be a schedule, got 0.1"),
        (lambda f: f(b"ab"), ValueError, "schedules[0] must be a schedule, got b'ab'"),
        (lambda f: f([A]), ValueError, "schedules must hold at least 2 schedule(s), got 1"),
        (lambda f: f(A), ValueError, "schedules must hold at least 2 schedule(s), got 1"),
        (
            lambda f: f(A.to_dict()),
            ValueError,
            "schedules must hold at least 2 schedule(s), got 1",
        ),
        (lambda f: f(), ValueError, "schedules must hold at least 2 schedule(s), got 0"),
        (
            lambda f: f(schedules=None),
            ValueError,
            "schedules must be a list of schedules, got None",
        ),
        (
            lambda f: f([A, B], A),
            ValueError,
            "schedules[0] must be a schedule, got a list: {op}() takes its schedules as one "
            "list or one by one, not a list and more",
        ),
        (
            lambda f: f(A, (B,)),
            ValueError,
            "schedules[1] must be a schedule, got a tuple: {op}() takes its schedules as one "
            "list or one by one, not a list and more",
        ),
        (
            lambda f: f(A, schedules=[B]),
            TypeError,
            "{op}() takes its schedules by position or as schedules=[...], not both",
        ),
    ],
)
def test_add_and_mul_refuse_a_wrong_argument_in_one_line(
    fn: Any, op: str, call: Any, kind: type[Exception], message: str
) -> None:
    with pytest.raises(kind) as info:
        call(fn)
    assert type(info.value) is kind
    assert str(info.value) == message.format(op=op)


def test_the_composites_and_with_warmup_take_spec_strings_and_dicts_as_the_adapters_do() -> None:
    cos, flat = S.cosine(0.1, total_steps=10), S.constant(0.05)
    spec, config = str(cos), flat.to_dict()
    assert S.join([spec, config], boundaries=[10]) == S.join([cos, flat], boundaries=[10])
    assert S.add(spec, config) == S.add(cos, flat) and S.mul([spec, flat]) == S.mul(cos, flat)
    assert S.sub(spec, b=config) == S.sub(cos, b=flat)
    assert S.scale(spec, factor=2) == S.scale(cos, factor=2)
    assert S.clamp(config, max_lr=0.01) == S.clamp(flat, max_lr=0.01)
    assert S.with_warmup(spec, warmup_steps=3) == S.with_warmup(cos, warmup_steps=3)
    assert S.with_warmup(config, warmup_steps=3)(1) == S.with_warmup(flat, warmup_steps=3)(1)
    with pytest.raises(S.SpecError, match="unknown schedule 'cos'"):
        S.join(["cos(0.1, 10)"], boundaries=[])
    with pytest.raises(ValueError, match=r"^schedule must be a lrkit schedule, a spec string or"):
        S.with_warmup(0.1, warmup_steps=3)


# ------------------------------------------------------------ arithmetic with a number

C = S.cosine(0.1, total_steps=10)
_ADDED = "the number added to a schedule"
_SUBTRACTED = "the number subtracted from a schedule"
_SUBTRACTED_FROM = "the number a schedule is subtracted from"
_MULTIPLIED = "the number a schedule is multiplied by"
_FINITE = "must be a finite real number, got"
_NON_NEGATIVE = "must be >= 0 (allowed range: [0, inf)), got"


@pytest.mark.parametrize(
    "expr, message",
    [
        (lambda: -0.1 - C, f"{_SUBTRACTED_FROM} {_NON_NEGATIVE} -0.1"),
        (lambda: -1 - C, f"{_SUBTRACTED_FROM} {_NON_NEGATIVE} -1"),
        (lambda: math.inf - C, f"{_SUBTRACTED_FROM} {_FINITE} inf"),
        (lambda: C + math.inf, f"{_ADDED} {_FINITE} inf"),
        (lambda: C + -math.inf, f"{_ADDED} {_FINITE} -inf"),
        (lambda: math.inf + C, f"{_ADDED} {_FINITE} inf"),
        (lambda: math.nan + C, f"{_ADDED} {_FINITE} nan"),
        (lambda: C + 10**400, f"{_ADDED} {_FINITE} an integer with 401 digits"),
        (lambda: C - math.inf, f"{_SUBTRACTED} {_FINITE} inf"),
        (lambda: C - -math.inf, f"{_SUBTRACTED} {_FINITE} -inf"),
        (lambda: C - math.nan, f"{_SUBTRACTED} {_FINITE} nan"),
        (lambda: C * -0.5, f"{_MULTIPLIED} {_NON_NEGATIVE} -0.5"),
        (lambda: -2 * C, f"{_MULTIPLIED} {_NON_NEGATIVE} -2"),
        (lambda: C * math.inf, f"{_MULTIPLIED} {_FINITE} inf"),
        (lambda: math.nan * C, f"{_MULTIPLIED} {_FINITE} nan"),
    ],
)
def test_arithmetic_with_a_number_names_the_number(expr: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        expr()
    assert str(info.value) == message


def test_arithmetic_with_a_number_builds_the_same_schedules_as_before() -> None:
    k = S.constant(0.1)
    assert C + 0.1 == S.add(C, k) and 0.1 + C == S.add(k, C)
    assert C + (-0.1) == -0.1 + C == C - 0.1 == S.sub(C, b=k)
    assert C - (-0.1) == S.add(C, k) and (C + C) - (-0.1) == S.add(C, C, k)
    assert 0.1 - C == S.sub(k, b=C) and 0 - C == S.sub(S.constant(0.0), b=C)
    assert C * 2 == 2 * C == S.scale(C, factor=2.0) and C * 0 == S.scale(C, factor=0.0)
    assert C + np.float64(0.25) == S.add(C, S.constant(0.25))
    with pytest.raises(TypeError):
        C + True  # noqa: B018


# ------------------------------------------------------------ join: its schedules and boundaries


@pytest.mark.parametrize(
    "schedules, boundaries, message",
    [
        ([], [], "schedules must hold at least 1 schedule(s), got 0"),
        ([A, B], [], "boundaries must have len(schedules) - 1 = 1 entries, got 0"),
        ([A, B, A], [4], "boundaries must have len(schedules) - 1 = 2 entries, got 1"),
        ([A], [5], "boundaries must have len(schedules) - 1 = 0 entries, got 1"),
    ],
)
def test_join_refuses_a_boundary_count_that_does_not_fit_its_schedules(
    schedules: list[S.Schedule], boundaries: list[int], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        S.join(schedules, boundaries=boundaries)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "spec, hint",
    [
        ("join([constant(0.1), constant(0.2)], milestones=[5])", "for milestones use boundaries"),
        ("clamp(constant(0.1), max=0.05)", "for max use max_lr"),
        ("clamp(constant(0.1), min=0.05)", "for min use min_lr"),
    ],
)
def test_a_peers_parameter_name_in_a_spec_is_pointed_to_lrkits(spec: str, hint: str) -> None:
    with pytest.raises(S.SpecError) as info:
        S.parse(spec)
    assert str(info.value).split("\n")[0].endswith(f"; {hint}")


# ------------------------------------------------------------ nesting: what parse reads back


def _nested_to(depth: int) -> S.Schedule:
    s: S.Schedule = S.constant(0.1)  # one level; each scale adds one
    while spec_depth(s) < depth:
        s = S.scale(s, factor=2.0)
    return s


@pytest.mark.parametrize(
    "wrap, levels, name",
    [
        (lambda s: S.join([s], boundaries=[]), 2, "schedules[0]"),
        (lambda s: S.add(S.constant(0.0), s), 2, "schedules[1]"),
        (lambda s: S.scale(s, factor=2.0), 1, "schedule"),
        (lambda s: S.clamp(s, max_lr=1.0), 1, "schedule"),
        (lambda s: S.sub(s, b=S.constant(0.0)), 1, "a"),
        (lambda s: S.sub(S.constant(0.5), b=s), 1, "b"),
    ],
    ids=["join", "add", "scale", "clamp", "sub-a", "sub-b"],
)
def test_a_composite_nests_only_as_deep_as_parse_reads(wrap: Any, levels: int, name: str) -> None:
    deepest = wrap(_nested_to(MAX_DEPTH - levels))
    assert spec_depth(deepest) == MAX_DEPTH and S.parse(str(deepest)) == deepest
    with pytest.raises(ValueError) as info:
        wrap(_nested_to(MAX_DEPTH - levels + 1))
    assert str(info.value) == (
        f"{name}: schedules and lists nested more than {MAX_DEPTH} deep (this one would nest "
        f"{MAX_DEPTH + 1} deep; parse and from_dict read at most {MAX_DEPTH})"
    )


# ------------------------------------------------------------ scale and clamp: arguments


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: S.scale(C, factor=-1), "factor must be >= 0 (allowed range: [0, inf)), got -1"),
        (lambda: S.clamp(C, min_lr=-1), "min_lr must be >= 0 (allowed range: [0, inf)), got -1"),
        (
            lambda: S.clamp(C, max_lr=-0.5),
            "max_lr must be >= 0 (allowed range: [0, inf)), got -0.5",
        ),
        (
            lambda: S.clamp(C, min_lr=0.5, max_lr=0),
            "max_lr must be >= min_lr (allowed range: [0.5, inf)), got max_lr=0",
        ),
    ],
)
def test_scale_and_clamp_refuse_a_bad_bound_naming_it(call: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


def test_scale_and_clamp_last_as_long_as_the_schedule_they_wrap() -> None:
    s = S.cosine(0.1, total_steps=100)
    assert S.scale(s, factor=2.0).length == s.clamp(max_lr=0.05).length == 100
    assert S.scale(S.exponential(0.1, gamma=0.9), factor=2.0).length is None


def test_a_clamp_at_its_bound_gives_the_bound_on_both_paths() -> None:
    """A value equal to the bound is the bound itself, its zero's sign included."""
    negative_zero = S.constant(0.0) * (S.constant(0.0) - S.constant(0.5))
    assert math.copysign(1.0, negative_zero(0)) == -1.0
    for s in (negative_zero.clamp(max_lr=0.0), negative_zero.clamp(min_lr=0.0)):
        assert math.copysign(1.0, s(0)) == 1.0, s
        assert s.values([0, 3]).tolist() == [0.0, 0.0] and not np.signbit(s.values([0, 3])).any()


# ------------------------------------------------------------ spec: the caret of add(a, b)


@pytest.mark.parametrize(
    "spec, at, message",
    [
        ("add(constant(0.1), 0.2)", "0.2)", "add(): schedules[1] must be a schedule, got 0.2"),
        (
            "add(constant(0.1), constant(0.2), 0.3)",
            "0.3)",
            "add(): schedules[2] must be a schedule, got 0.3",
        ),
        (
            "mul(constant(0.1), 7, constant(0.2))",
            "7,",
            "mul(): schedules[1] must be a schedule, got 7",
        ),
        (
            "add(constant(0.1), none)",
            "none)",
            "add(): schedules[1] must be a schedule, got None",
        ),
        # the list is the argument's value; one schedule is too few for the call
        (
            "add([constant(0.1), 0.2])",
            "[",
            "add(): schedules[1] must be a schedule, got 0.2",
        ),
        (
            "add(constant(0.1))",
            "constant",
            "add(): schedules must hold at least 2 schedule(s), got 1",
        ),
    ],
)
def test_a_spec_error_about_one_of_adds_schedules_points_at_it(
    spec: str, at: str, message: str
) -> None:
    with pytest.raises(S.SpecError) as info:
        S.parse(spec)
    pos = spec.index(at)
    assert info.value.pos == pos
    first, shown, caret = str(info.value).split("\n")
    assert first == f"invalid schedule spec at position {pos}: {message}"
    assert shown == f"  {spec}" and caret == "  " + " " * pos + "^"


# ------------------------------------------------------------ mul: a zero factor gives 0

HUGE = S.exponential(0.1, gamma=2.0)  # inf past ~1030 steps
NAN = HUGE - HUGE  # inf - inf: NaN there


@pytest.mark.parametrize(
    "s",
    [
        HUGE * S.constant(0.0),
        S.constant(0.0) * HUGE,
        S.mul(S.constant(0.5), HUGE, S.constant(0.0)),
        HUGE * S.join([S.constant(1.0), S.constant(0.0)], boundaries=[100]),
        S.constant(0.0) * NAN,
    ],
    ids=str,
)
def test_a_product_with_a_zero_factor_is_0_where_another_factor_is_inf_or_nan(s: Any) -> None:
    steps = [1500, 2000, 3000]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in multiply"
        warnings.filterwarnings("ignore", "overflow", RuntimeWarning)  # exponential's, known
        warnings.filterwarnings("ignore", "invalid value encountered in subtract")  # NAN's
        got = s.values(steps)
        for i, t in enumerate(steps):
            assert s(t) == 0.0 and not math.copysign(1.0, s(t)) < 0, t
            assert got[i] == 0.0 and not np.signbit(got[i]), t
    assert (0.0 * HUGE)(2000) == 0.0  # as a scale by 0 does


def _product(factors: list[float]) -> float:
    """The factors multiplied from left to right; 0 where that is NaN and a factor is 0."""
    out = factors[0]
    for x in factors[1:]:
        out = out * x
    return 0.0 if math.isnan(out) and 0.0 in factors else out


PRODUCTS = [
    S.mul(
        S.cosine(0.1, total_steps=50), S.constant(0.0), S.warmup(0.0, end_lr=1.0, warmup_steps=9)
    ),
    S.constant(0.0) * (S.constant(0.0) - S.constant(0.5)),  # 0 * -0.5: -0.0 stays -0.0
    S.mul(S.constant(1e-200), S.constant(1e-200), S.exponential(1.0, gamma=1.5)),  # underflow
    # inf * 0 where the cosine ends: 0 there, and its bits elsewhere
    S.mul(S.constant(1e200), S.exponential(1e200, gamma=1.1), S.cosine(0.3, total_steps=70)),
    S.mul(S.linear(0.0, end_lr=3.0, total_steps=30), S.cosine(0.1, total_steps=40)),
    HUGE * S.constant(0.5),  # inf, no zero: inf
]


@pytest.mark.parametrize("s", PRODUCTS, ids=str)
def test_a_product_keeps_its_bits_on_both_paths_but_0_for_0_times_inf(s: Any) -> None:
    steps = np.arange(0, 2100, 7, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = s.values(steps)
        for i, t in enumerate(steps.tolist()):
            want = _product([p(t) for p in s.schedules])
            assert np.float64(s(t)).tobytes() == np.float64(want).tobytes(), t
            assert got[i].tobytes() == np.float64(want).tobytes(), t


def test_a_traced_product_with_a_zero_factor_is_0() -> None:
    jnp = pytest.importorskip("jax.numpy")
    s = HUGE * S.join([S.constant(1.0), S.constant(0.0)], boundaries=[100])
    got = np.asarray(s.values(jnp.asarray([50.0, 2000.0]), xp=jnp))
    assert got[1] == 0.0 and not np.isnan(got).any()


def test_a_product_is_nan_where_no_factor_is_0_beside_a_step_where_one_is() -> None:
    s = NAN * S.join([S.constant(0.0), S.constant(1.0)], boundaries=[10])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = s.values([5, 2000])
        assert s(5) == 0.0 and math.isnan(s(2000))
    assert got[0] == 0.0 and math.isnan(got[1])


def test_a_combination_lasts_as_long_as_its_longest_part() -> None:
    s = S.cosine(0.1, total_steps=1000) - S.linear(0.0, end_lr=0.05, total_steps=100)
    assert s.length == 1000
    # the difference turns negative past step 500, beyond the shorter part's length
    with pytest.raises(ValueError, match=r"^schedule must be >= 0 at every step .* at step 501: "):
        S.as_schedule(s, nonnegative=True)


def test_a_join_ending_in_an_open_ended_schedule_lasts_a_quarter_past_its_last_boundary() -> None:
    open_end = S.join([S.cosine(0.1, total_steps=100), S.constant(0.2)], boundaries=[40])
    assert open_end.length == int(40 * 1.25) + 1 == 51
    assert S.join([S.constant(0.1)], boundaries=[]).length is None
    closed = S.join([S.constant(0.1), S.cosine(0.1, total_steps=100)], boundaries=[40])
    assert closed.length == 140


def test_a_traced_join_switches_segment_at_the_boundary_step_itself() -> None:
    """On a traced namespace, as on numpy and the scalar path, a boundary step belongs to the
    segment that starts there (at its own step 0)."""
    jnp = pytest.importorskip("jax.numpy")
    s = S.join(
        [S.constant(0.1), S.linear(0.2, end_lr=0.4, total_steps=10), S.constant(0.5)],
        boundaries=[3, 8],
    )
    steps = [0.0, 2.0, 3.0, 4.0, 7.0, 8.0, 9.0]
    want = [0.1, 0.1, 0.2, 0.22, 0.28, 0.5, 0.5]
    assert [s(t) for t in steps] == pytest.approx(want, rel=1e-15)
    got = np.asarray(s.values(jnp.asarray(steps), xp=jnp))  # float32 without jax_enable_x64
    assert got.tolist() == pytest.approx(want, rel=1e-6)


def test_a_traced_join_reads_a_segment_only_within_its_own_steps() -> None:
    """A segment that overflows past its end (``inf - inf`` is NaN) is never evaluated
    there on a traced namespace: no NaN is built, even in a branch not taken."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    grow = S.exponential(1.0, gamma=2.0) - S.exponential(1.0, gamma=2.0)
    s = S.join([grow, S.constant(0.5)], boundaries=[50])
    with jax.debug_nans(True):
        got = s.values(jnp.asarray([0.0, 49.0, 50.0, 300.0]), xp=jnp)
        assert np.asarray(got).tolist() == [0.0, 0.0, 0.5, 0.5]


def test_with_warmup_is_a_spec_and_dict_form_that_builds_its_join() -> None:
    made = S.with_warmup(S.cosine(0.1, total_steps=900), warmup_steps=100, start_lr=0.01)
    for spec in (
        "with_warmup(cosine(0.1, 900), warmup_steps=100, start_lr=0.01)",
        "with_warmup(cosine(0.1, 900), 100, 0.01)",  # by position, as every spec takes them
        {"name": "with_warmup", "schedule": "cosine(0.1, 900)", "warmup_steps": 100,
         "start_lr": 0.01},
    ):  # fmt: skip
        built = S.parse(spec) if isinstance(spec, str) else S.from_dict(spec)
        assert built.to_dict() == made.to_dict() and S.parse(str(built)).to_dict() == made.to_dict()
    assert "with_warmup" in S.names()
    with pytest.raises(S.SpecError, match=r"has no parameter 'num_warmup_steps' .*; for "
                       r"num_warmup_steps use warmup_steps") as info:  # fmt: skip
        S.parse("with_warmup(cosine(0.1, 900), num_warmup_steps=5)")
    assert info.value.pos == 30
    with pytest.raises(S.SpecError, match=r"with_warmup\(\): warmup_steps must be an integer"):
        S.parse("with_warmup(cosine(0.1, 900), warmup_steps=-1)")
    with pytest.raises(S.SpecError, match=r"missing required parameter 'warmup_steps'"):
        S.parse("with_warmup(cosine(0.1, 900))")


def test_a_traced_join_reads_its_last_segment_only_from_its_start() -> None:
    """A last segment that overflows at negative steps (``inf - inf`` is NaN) is not evaluated
    before its boundary on a traced namespace."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    shrink = S.exponential(1.0, gamma=0.5)
    s = S.join([S.constant(0.5), shrink - shrink], boundaries=[300])
    with jax.debug_nans(True):
        got = s.values(jnp.asarray([0.0, 299.0, 300.0, 400.0]), xp=jnp)
        assert np.asarray(got).tolist() == [0.5, 0.5, 0.0, 0.0]


def test_a_join_of_one_schedule_gives_its_values_in_the_steps_own_dtype() -> None:
    """With no boundary, a join is its one schedule on every path, numpy's float32 included."""
    c = S.cosine(0.1, total_steps=100)
    s = S.join([c], boundaries=[])
    steps = np.asarray([0, 10, 100], dtype=np.float32)
    got = s.values(steps, xp=np)
    assert got.dtype == np.float32
    assert got.tobytes() == c.values(steps, xp=np).tobytes()
    assert s.values([0, 10, 100]).tolist() == c.values([0, 10, 100]).tolist()


def test_a_join_with_boundaries_gives_its_values_in_the_steps_own_dtype() -> None:
    """Each segment reads its own steps in the type they were given, as one schedule does:
    float32 steps give float32 values, integer steps float64, no steps the first segment's."""
    ramp, c = S.warmup(0.0, end_lr=0.1, warmup_steps=10), S.cosine(0.1, total_steps=100)
    s = S.join([ramp, c], boundaries=[10])
    steps = np.arange(0.0, 40.0, 0.5, dtype=np.float32)
    got = s.values(steps, xp=np)
    assert got.dtype == np.float32
    want = np.concatenate(
        [ramp.values(steps[:20], xp=np), c.values(steps[20:] - np.float32(10), xp=np)]
    )
    assert got.tobytes() == want.tobytes()
    assert s.values(steps[::-1], xp=np).tobytes() == want[::-1].tobytes()  # unsorted steps
    assert s.values(np.arange(40), xp=np).dtype == np.float64
    assert s.values(np.zeros(0, dtype=np.float32), xp=np).dtype == np.float32
    assert S.with_warmup(c, warmup_steps=10).values(steps, xp=np).dtype == np.float32
