"""Exact values from the formulas, vectorized == scalar, round trips, invariants, errors."""

from __future__ import annotations

import copy
import json
import math
import pickle
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit import schedules as S

STEPS = np.arange(0, 400)

EXAMPLES = [
    S.constant(0.3),
    S.step(0.1, step_size=7, gamma=0.5),
    S.multistep(0.1, milestones=[5, 5, 40, 90], gamma=0.3),
    S.exponential(0.2, gamma=0.99),
    S.inverse_time(0.1, decay_steps=10, decay_rate=0.5),
    S.inverse_time(0.1, decay_steps=10, decay_rate=0.5, staircase=True),
    S.polynomial(0.1, total_steps=100, power=2.0),
    S.polynomial(0.1, total_steps=100, power=0.5, end_lr=0.01),
    S.linear(0.01, end_lr=0.1, total_steps=50),
    S.cosine(0.1, total_steps=100, eta_min=0.001),
    S.cosine_restarts(0.1, T_0=10),
    S.cosine_restarts(0.1, T_0=7, T_mult=3, eta_min=1e-3),
    S.cosine_restarts(0.1, T_0=100 / 3),
    S.cosine_restarts(0.1, T_0=7.5, T_mult=1.5, eta_min=1e-3, m_mul=0.8),
    S.cyclic(0.01, max_lr=0.1, step_size_up=10),
    S.cyclic(0.01, max_lr=0.1, step_size_up=10, step_size_down=30, mode="triangular2"),
    S.cyclic(0.01, max_lr=0.1, step_size_up=12.5, mode="exp_range", gamma=0.99),
    S.onecycle(0.1, total_steps=300),
    S.onecycle(0.1, total_steps=300, anneal_strategy="linear", three_phase=True),
    S.onecycle_momentum(300),
    S.inverse_sqrt(0.1, warmup_steps=20),
    S.inverse_sqrt(0.1),
    S.piecewise_constant([10, 50.5], values=[0.1, 0.05, 0.01]),
    S.wsd(0.1, total_steps=300, warmup_steps=30),
    S.wsd(0.1, total_steps=300, warmup_steps=30, decay_steps=100, decay="cosine", min_lr=1e-3),
    S.wsd(0.1, total_steps=300, decay="linear", init_lr=0.01),
    S.warmup(0.0, end_lr=0.1, warmup_steps=25),
    S.warmup_exponential(1e-4, end_lr=0.1, warmup_steps=25),
    S.warmup_cosine(0.0, end_lr=0.1, warmup_steps=25),
    S.with_warmup(S.cosine(0.1, total_steps=200), warmup_steps=20),
    S.join(
        [
            S.constant(0.1),
            S.exponential(0.1, gamma=0.9),
            S.linear(0.05, end_lr=0.0, total_steps=10),
        ],
        boundaries=[10, 40],
    ),
    S.cosine(0.1, total_steps=100) * S.constant(0.5),
    3.0 * S.step(0.1, step_size=10),
    S.clamp(S.exponential(0.1, gamma=0.9), min_lr=1e-3),
    S.exponential(1.0, gamma=1.05).clamp(max_lr=2.0),
]


@pytest.mark.parametrize("s", EXAMPLES, ids=lambda s: s.name)
def test_vectorized_equals_scalar(s: S.Schedule) -> None:
    vec = s.values(STEPS)
    assert vec.dtype == np.float64 and vec.shape == STEPS.shape
    scalar = np.array([s(int(t)) for t in STEPS])
    np.testing.assert_allclose(vec, scalar, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("s", EXAMPLES, ids=lambda s: s.name)
def test_round_trips(s: S.Schedule) -> None:
    d = s.to_dict()
    assert json.loads(json.dumps(d)) == d
    back = S.from_dict(json.loads(json.dumps(d)))
    assert back == s and back.to_dict() == d
    parsed = S.parse(str(s))
    assert parsed == s and str(parsed) == str(s)
    np.testing.assert_array_equal(parsed.values(STEPS), s.values(STEPS))
    for clone in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s)):
        assert clone == s
        np.testing.assert_array_equal(clone.values(STEPS), s.values(STEPS))


def test_exact_formulas() -> None:
    assert S.step(0.1, step_size=7, gamma=0.5)(13) == 0.1 * 0.5**1
    assert S.step(0.1, step_size=7, gamma=0.5)(14) == 0.1 * 0.5**2
    assert S.multistep(0.1, milestones=[5, 5, 40], gamma=0.3)(5) == 0.1 * 0.3**2
    assert S.multistep(0.1, milestones=[5, 5, 40], gamma=0.3)(4) == 0.1
    # the power is numpy's array power, as values() computes it: within an ulp of Python's
    # (equal on numpy 2; numpy 1.26's SIMD power can differ in the last bit)
    e = S.exponential(0.2, gamma=0.99)
    assert e(17) == e.values([17])[0]
    assert abs(e(17) - 0.2 * 0.99**17) <= math.ulp(0.2 * 0.99**17)
    assert S.inverse_time(0.1, decay_steps=10, decay_rate=0.5)(15) == 0.1 / (1 + 0.5 * 1.5)
    assert S.inverse_time(0.1, decay_steps=10, decay_rate=0.5, staircase=True)(15) == 0.1 / (
        1 + 0.5 * 1
    )
    for staircase in (False, True):  # no decay, also where step / decay_steps overflows
        flat = S.inverse_time(0.1, decay_steps=1e-300, decay_rate=0.0, staircase=staircase)
        assert flat(10**9) == 0.1 and flat.values([0, 10**9]).tolist() == [0.1, 0.1]
    assert S.polynomial(0.1, total_steps=100, power=2.0)(30) == 0.1 * (1 - 30 / 100) ** 2
    assert S.polynomial(0.1, total_steps=100, power=2.0)(300) == 0.0
    assert S.linear(0.01, end_lr=0.1, total_steps=50)(20) == 0.01 + (0.1 - 0.01) * 20 / 50
    assert S.linear(0.01, end_lr=0.1, total_steps=50)(80) == 0.1
    c = S.cosine(0.1, total_steps=100, eta_min=0.001)
    assert c(25) == 0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * 25 / 100)) / 2
    assert c(100) == c(1000) == 0.001
    r = S.cosine_restarts(1.0, T_0=10, T_mult=2)
    # cycles: [0,10) len 10, [10,30) len 20, [30,70) len 40
    assert r(10) == 1.0 and r(30) == 1.0 and r(70) == 1.0
    assert r(20) == (1 + math.cos(math.pi * 10 / 20)) / 2
    assert r(69) == (1 + math.cos(math.pi * 39 / 40)) / 2
    assert S.inverse_sqrt(0.1, warmup_steps=20)(10) == 0.1 * 10 / 20
    assert S.inverse_sqrt(0.1, warmup_steps=20)(45) == 0.1 * math.sqrt(20 / (45 - 20 + 20))
    p = S.piecewise_constant([10, 20], values=[1.0, 0.5, 0.1])
    assert [p(t) for t in (0, 10, 11, 20, 21)] == [1.0, 1.0, 0.5, 0.5, 0.1]
    w = S.wsd(1.0, total_steps=100, warmup_steps=10, decay_steps=20, decay="1-sqrt", min_lr=0.1)
    assert w(5) == 0.5 and w(10) == 1.0 and w(80) == 1.0
    assert w(85) == 0.1 + 0.9 * (1 - math.sqrt(5 / 20))
    assert w(100) == w(500) == 0.1
    assert (
        S.warmup_exponential(1e-4, end_lr=1e-2, warmup_steps=10)(5) == 1e-4 * (1e-2 / 1e-4) ** 0.5
    )
    assert S.warmup_cosine(0.0, end_lr=1.0, warmup_steps=10)(5) == pytest.approx(0.5, abs=1e-15)


def test_wsd_default_decay_fits_after_the_warmup_and_a_full_warmup_names_itself() -> None:
    assert S.wsd(0.1, total_steps=100, warmup_steps=10).decay_steps == 20  # 20% of the run
    short = S.wsd(0.1, total_steps=10, warmup_steps=9)  # 20% is 2 steps; 1 is left
    assert short.decay_steps == 1 and short(8) == 0.1 * 8 / 9 and short(9) == 0.1
    assert short(10) == 0.0
    with pytest.raises(ValueError) as info:
        S.wsd(0.1, total_steps=10, warmup_steps=10)
    assert str(info.value) == (
        "warmup_steps must be < total_steps (allowed range: [0, 9]; the decay needs at least 1 "
        "step), got warmup_steps=10, total_steps=10"
    )


def test_onecycle_formula() -> None:
    o = S.onecycle(1.0, total_steps=101, pct_start=0.3)
    initial = 1.0 / 25.0
    # PyTorch's arithmetic, exactly: end + (start - end) / 2 * (cos(pi * pct) + 1)
    assert o(0) == 1.0 + (initial - 1.0) / 2.0 * (math.cos(0.0) + 1)
    assert o(0) == pytest.approx(initial, rel=1e-14)
    end_up = float(0.3 * 101) - 1
    assert o(29) == 1.0 + (initial - 1.0) / 2.0 * (math.cos(math.pi * 29 / end_up) + 1)
    assert o(100) == pytest.approx(initial / 1e4, rel=1e-12)
    assert o(10_000) == o(100)  # the last value is held after the cycle


def test_join_shifts_steps() -> None:
    a, b = S.exponential(1.0, gamma=0.5), S.linear(4.0, end_lr=0.0, total_steps=8)
    j = S.join([a, b], boundaries=[3])
    assert [j(t) for t in range(3)] == [a(0), a(1), a(2)]
    assert j(3) == b(0) and j(7) == b(4)


def test_composition_operators() -> None:
    c = S.cosine(0.1, total_steps=100)
    assert (c * S.constant(0.5))(30) == c(30) * 0.5
    assert (2 * c)(30) == 2 * c(30) == (c * 2)(30) == c.scale(2)(30)
    assert S.clamp(S.exponential(1.0, gamma=0.5), min_lr=0.2)(10) == 0.2
    assert S.mul(c, c)(10) == c(10) ** 2


def test_fractional_steps_and_vectors() -> None:
    s = S.linear(0.0, end_lr=1.0, total_steps=10)
    assert s(2.5) == 0.25
    np.testing.assert_array_equal(s.values([[0, 5], [10, 20]]), [[0.0, 0.5], [1.0, 1.0]])


def test_spec_positional_and_bare_words() -> None:
    assert S.parse("cosine(0.1, 1000)") == S.cosine(0.1, total_steps=1000)
    assert S.parse("cyclic(0.01, 0.1, mode=triangular2)") == S.cyclic(
        0.01, max_lr=0.1, mode="triangular2"
    )
    assert S.parse(" wsd( 0.1 , 100, decay='cosine', ) ") == S.wsd(
        0.1, total_steps=100, decay="cosine"
    )
    assert S.parse("clamp(exponential(1, 0.9), min_lr=1e-3, max_lr=none)") == S.clamp(
        S.exponential(1.0, gamma=0.9), min_lr=1e-3
    )


@pytest.mark.parametrize(
    ("spec", "pos", "match"),
    [
        ("cosine(lr=0.1, total_steps=)", 27, "expected a value"),
        ("cosine(0.1, 100", 15, "expected ',' or '\\)'"),
        ("cosin(0.1, 100)", 0, "unknown schedule 'cosin'"),
        ("cosine(0.1, 100) extra", 17, "expected end of input"),
        ("cosine(0.1, tmax=100)", 12, "no parameter 'tmax'"),
        ("cosine(0.1; 100)", 10, "unexpected character ';'"),
        ('cosine(0.1, 100, eta_min="x)', 25, 'unterminated string: the " is never closed'),
        # given by position and by keyword: at the keyword's value
        ("cosine(0.1, 10, eta_min=0.05, total_steps=20)", 42, "'total_steps' given twice"),
        ("cosine(lr=0.1, 100)", 15, "positional argument after keyword"),
        ("[1, 2]", 0, "schedule name"),
        # a bad argument: the error points at its value
        ("cosine(-0.1, 100)", 7, "lr must be >= 0"),
        ("step(0.1, step_size=0)", 20, r"step_size must be an integer in \[1, 2\*\*53\]"),
        ("cosine(0.1, total_steps=1.5)", 24, "total_steps must be an integer"),
        ("join([constant(1), constant(2)], [5, 3])", 33, "boundaries must be strictly"),
        ("clamp(cosine(1, 10), min_lr=0.5, max_lr=0.1)", 40, "max_lr must be >= min_lr"),
        ("add([constant(1), constant(-1)])", 27, "lr must be >= 0"),
        # an error that names no argument given points at the call
        ("cyclic(0.1, step_size_up=5)", 0, "missing required parameter 'max_lr'"),
        ("wsd(0.1, 10, decay_steps=20)", 0, r"warmup_steps \+ decay_steps must be <="),
        # an integer literal beyond Python's conversion limit is a spec error at the number
        ("constant(" + "1" * 5000 + ")", 9, "integer with 5000 digits"),
    ],
)
def test_spec_errors_give_position(spec: str, pos: int, match: str) -> None:
    with pytest.raises(S.SpecError, match=match) as info:
        S.parse(spec)
    assert info.value.pos == pos
    assert f"position {pos}" in str(info.value)


@pytest.mark.parametrize(
    ("make", "param"),
    [
        (lambda: S.constant(-1.0), "lr"),
        (lambda: S.constant(float("nan")), "lr"),
        (lambda: S.step(0.1, step_size=0), "step_size"),
        (lambda: S.step(0.1, step_size=10, gamma=0), "gamma"),
        (lambda: S.multistep(0.1, milestones=[30, 10]), "milestones"),
        (lambda: S.multistep(0.1, milestones=[-1, 10]), "milestones"),
        (lambda: S.exponential(0.1, gamma=-0.5), "gamma"),
        (lambda: S.polynomial(0.1, total_steps=0), "total_steps"),
        (lambda: S.linear(0.1, end_lr=0.0, total_steps=0), "total_steps"),
        (lambda: S.cosine(0.1, total_steps=0), "total_steps"),
        (lambda: S.cosine_restarts(0.1, T_0=0), "T_0"),
        (lambda: S.cosine_restarts(0.1, T_0=10, T_mult=0), "T_mult"),
        (lambda: S.cyclic(0.1, max_lr=0.01), "max_lr must be >= base_lr"),
        (lambda: S.cyclic(0.01, max_lr=0.1, step_size_up=0), "step_size_up"),
        (lambda: S.cyclic(0.01, max_lr=0.1, mode="sine"), "mode must be one of"),
        (lambda: S.onecycle(0.0, total_steps=100), "max_lr"),
        (lambda: S.onecycle(0.1, total_steps=100, pct_start=1.5), "pct_start"),
        (lambda: S.onecycle(0.1, total_steps=100, pct_start=0.01), "pct_start"),
        (lambda: S.onecycle(0.1, total_steps=100, anneal_strategy="exp"), "anneal_strategy"),
        (lambda: S.inverse_time(0.1, decay_steps=0, decay_rate=0.5), "decay_steps"),
        (lambda: S.piecewise_constant([10, 5], values=[1, 2, 3]), "boundaries"),
        (lambda: S.piecewise_constant([10], values=[1, 2, 3]), "values"),
        (lambda: S.wsd(0.1, total_steps=100, warmup_steps=90, decay_steps=20), "decay_steps"),
        (lambda: S.wsd(0.1, total_steps=100, decay="exp"), "decay"),
        (lambda: S.warmup(0.0, end_lr=0.1, warmup_steps=10, mode="exponential"), "start_lr"),
        (lambda: S.join([S.constant(1.0), S.constant(2.0)], boundaries=[]), "boundaries"),
        (lambda: S.join([S.constant(1.0), S.constant(2.0)], boundaries=[-1]), "boundaries"),
        (lambda: S.join([S.constant(1.0), 3.0], boundaries=[10]), "schedules"),
        (lambda: S.clamp(S.constant(1.0), min_lr=2.0, max_lr=1.0), "max_lr"),
        (lambda: S.constant(0.1)(-1), "step"),
        (lambda: S.constant(0.1).values([0, -3]), "steps"),
        (lambda: S.from_dict({"name": "cosine", "lr": 0.1, "total_steps": 10, "x": 1}), "x"),
        (lambda: S.from_dict({"name": "nope"}), "nope"),
    ],
)
def test_bad_input_names_parameter(make, param: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=param):
        make()


# ---------------------------------------------------------------- hypothesis invariants
lrs = st.floats(1e-6, 10.0)
steps = st.integers(0, 5000)


class _Traced:
    """numpy under another name: the formula a traced namespace (jax, keras) evaluates."""

    where = staticmethod(np.where)
    maximum = staticmethod(np.maximum)


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 400), min_size=0, max_size=30, unique=True),
    gamma=st.floats(0.05, 2.0),
    ts=st.lists(st.floats(0, 450, allow_subnormal=False) | st.integers(0, 450), max_size=40),
)
def test_step_schedules_read_the_count_of_boundaries_passed(
    cuts: list[int], gamma: float, ts: list[float]
) -> None:
    """piecewise_constant and multistep count the boundaries passed (by a search, not one pass
    per boundary): every path gives the definition's value, bit for bit."""
    bounds = sorted(cuts)
    vals = [0.1 * 0.9**i for i in range(len(bounds) + 1)]
    p = S.piecewise_constant(bounds, values=vals)
    m = S.multistep(0.1, milestones=bounds, gamma=gamma)
    steps = np.asarray(ts, dtype=np.float64)
    want_p = [vals[sum(b < t for b in bounds)] for t in ts]
    want_m = [m(t) for t in ts]
    assert [p(t) for t in ts] == want_p
    assert p.values(steps).tolist() == want_p
    assert p.values(steps, xp=_Traced).tolist() == want_p  # the formula jax and keras trace
    assert [0.1 * gamma ** sum(b <= t for b in bounds) for t in ts] == pytest.approx(want_m)
    assert m.values(steps).tolist() == want_m
    assert m.values(steps, xp=_Traced).tolist() == want_m
    # numpy as the namespace, on steps of another type: the formula's type and values
    for kind in (np.float32, np.int64):
        for s in (p, m):
            got, formula = (
                s.values(steps.astype(kind), xp=np),
                s.values(steps.astype(kind), xp=_Traced),
            )
            assert got.dtype == formula.dtype and got.tolist() == formula.tolist()


@settings(max_examples=60, deadline=None)
@given(lr=lrs, total=st.integers(1, 2000), frac=st.floats(0, 1), t=steps)
def test_cosine_bounded_and_monotone(lr: float, total: int, frac: float, t: int) -> None:
    eta = lr * frac
    s = S.cosine(lr, total_steps=total, eta_min=eta)
    assert eta - 1e-12 <= s(t) <= lr + 1e-12
    assert s(t + 1) <= s(t) + 1e-15


@settings(max_examples=60, deadline=None)
@given(
    base=lrs,
    ratio=st.floats(1.0, 100.0),
    up=st.integers(1, 200),
    down=st.integers(1, 200),
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
    t=steps,
)
def test_cyclic_within_range(
    base: float, ratio: float, up: int, down: int, mode: str, t: int
) -> None:
    s = S.cyclic(
        base, max_lr=base * ratio, step_size_up=up, step_size_down=down, mode=mode, gamma=0.999
    )
    assert base * (1 - 1e-12) <= s(t) <= base * ratio * (1 + 1e-12)
    # the start of each cycle sits at base_lr
    assert s((up + down) * (t % 5)) == pytest.approx(base, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(max_lr=lrs, total=st.integers(20, 3000), pct=st.floats(0.1, 0.45), t=steps)
def test_onecycle_peak_and_floor(max_lr: float, total: int, pct: float, t: int) -> None:
    s = S.onecycle(max_lr, total_steps=total, pct_start=pct)
    v = s(t)
    assert s.min_lr * (1 - 1e-12) <= v <= max_lr * (1 + 1e-12)


@settings(max_examples=40, deadline=None)
@given(
    lr=lrs,
    n_seg=st.integers(1, 4),
    data=st.data(),
)
def test_join_round_trip_and_segments(lr: float, n_seg: int, data: st.DataObject) -> None:
    makers = [
        lambda: S.cosine(lr, total_steps=data.draw(st.integers(1, 100))),
        lambda: S.exponential(lr, gamma=data.draw(st.floats(0.5, 1.0))),
        lambda: S.linear(0.0, end_lr=lr, total_steps=data.draw(st.integers(1, 100))),
        lambda: S.constant(lr),
    ]
    segs = [makers[data.draw(st.integers(0, 3))]() for _ in range(n_seg)]
    gaps = data.draw(st.lists(st.integers(1, 50), min_size=n_seg - 1, max_size=n_seg - 1))
    bounds = list(np.cumsum(gaps).astype(int)) if gaps else []
    j = S.join(segs, boundaries=[int(b) for b in bounds])
    assert S.parse(str(j)) == j
    offs = [0, *bounds]
    for i, seg in enumerate(segs):
        assert j(offs[i]) == seg(0)
    t = np.arange(0, (bounds[-1] if bounds else 0) + 60)
    # an ulp of the peak where a segment ends at 0 (numpy's SIMD cos of pi can miss -1 by an
    # ulp on numpy 1.x, math.cos does not)
    atol = 4 * np.finfo(np.float64).eps * lr
    np.testing.assert_allclose(j.values(t), [j(int(x)) for x in t], rtol=1e-12, atol=atol)


@settings(max_examples=60, deadline=None)
@given(lr=lrs, T0=st.integers(1, 50), mult=st.integers(1, 4), t=st.integers(0, 20000))
def test_restarts_cycle_start_is_peak(lr: float, T0: int, mult: int, t: int) -> None:
    s = S.cosine_restarts(lr, T_0=T0, T_mult=mult)
    start, length = 0, T0  # the cycle that holds step t, in exact integers
    while start + length <= t:
        start, length = start + length, length * mult
    assert s(start) == pytest.approx(lr, rel=1e-12)
    if t > start:
        assert s(t) < s(start)
    np.testing.assert_allclose(s.values([t]), [s(t)], rtol=1e-9)


@pytest.mark.parametrize("s", EXAMPLES, ids=lambda s: s.name)
def test_values_do_not_depend_on_order_or_shape(s: S.Schedule) -> None:
    perm = np.random.default_rng(0).permutation(STEPS)
    np.testing.assert_array_equal(s.values(perm), s.values(STEPS)[perm])
    np.testing.assert_array_equal(s.values(STEPS.reshape(20, 20)), s.values(STEPS).reshape(20, 20))


@pytest.mark.parametrize("spec", ["cosine(", "cosine(0.1,", "cosine(lr=", "join([cosine(0.1, 10)"])
def test_unfinished_spec_is_a_spec_error(spec: str) -> None:
    with pytest.raises(S.SpecError, match="found end of input"):
        S.parse(spec)


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_onecycle_unrolled_scalar_path_equals_the_phase_loop(
    three_phase: bool, anneal: str
) -> None:
    from lrkit.schedules._families import _Phased

    steps = [*range(0, 1100), *np.linspace(0.0, 1100.0, 777).tolist()]
    for s in (
        S.onecycle(0.1, total_steps=1000, anneal_strategy=anneal, three_phase=three_phase),
        S.onecycle_momentum(997, pct_start=0.37, anneal_strategy=anneal, three_phase=three_phase),
    ):
        loop = [_Phased._at(s, t) for t in steps]
        assert [s(t) for t in steps] == loop  # bit for bit
        for clone in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s)):
            assert [clone(t) for t in steps] == loop


# ------------------------------------------- cosine_restarts: fractional T_0, real T_mult >= 1
def test_restarts_take_a_fractional_period_and_a_real_multiplier() -> None:
    # cycles of 2.5, 3.75, 5.625, ... steps (dyadic: every start exact): 0, 2.5, 6.25, 11.875
    r = S.cosine_restarts(1.0, T_0=2.5, T_mult=1.5, m_mul=0.5)
    assert [r(t) for t in (0, 2.5, 6.25, 11.875)] == [1.0, 0.5, 0.25, 0.125]
    assert r(4) == 0.5 * 0.5 * (1 + math.cos(math.pi * 1.5 / 3.75))
    assert r(11) == 0.25 * 0.5 * (1 + math.cos(math.pi * 4.75 / 5.625))
    h = S.cosine_restarts(1.0, T_0=100 / 3)  # Hugging Face's cosine_with_restarts, 3 cycles
    assert h(34) == 0.5 * (1 + math.cos(math.pi * (34 - 100 / 3) / (100 / 3)))
    assert h(70) == 0.5 * (1 + math.cos(math.pi * (70 - 2 * (100 / 3)) / (100 / 3)))
    assert h(34) == h.values([34])[0] and h(70) == h.values([70])[0]


def test_restarts_with_a_decimal_multiplier_restart_on_the_whole_step_their_cycle_starts() -> None:
    """A cycle that starts on a whole step (in exact decimal arithmetic) restarts there on
    both paths, though its float64 start can round just above the step
    (T_0=10, T_mult=1.9: 10.000000000000002); every such start of a grid of periods and
    decimal multipliers is checked."""
    from fractions import Fraction

    checked = 0
    for T_0 in (1, 7, 10, 100, 125, 500, 1000, 1999):
        for hundredths in range(105, 355, 5):
            m = Fraction(hundredths, 100)
            r = S.cosine_restarts(0.1, T_0=T_0, T_mult=hundredths / 100, m_mul=0.5)
            starts = [T_0 * (m**n - 1) / (m - 1) for n in range(1, 30)]
            whole = [(n, int(x)) for n, x in enumerate(starts, 1) if x.denominator == 1]
            for n, t in (w for w in whole if w[1] < 10**7):
                want = 0.1 * 0.5**n  # the restart: the cycle's full height
                assert r(t) == want and r.values([t])[0] == want, (T_0, hundredths, t)
                checked += 1
    assert checked > 100


def test_restarts_keep_a_whole_period_and_multiplier_an_integer() -> None:
    r = S.cosine_restarts(0.1, T_0=10.0, T_mult=np.float64(2.0))
    assert r.T_0 == 10 and type(r.T_0) is int and r.T_mult == 2 and type(r.T_mult) is int
    assert r == S.cosine_restarts(0.1, T_0=10, T_mult=2)
    assert str(r) == "cosine_restarts(lr=0.1, T_0=10, T_mult=2, eta_min=0.0, m_mul=1.0)"


@pytest.mark.parametrize(
    "s",
    [
        S.cosine_restarts(0.1, T_0=100 / 3),
        S.cosine_restarts(0.1, T_0=7.25, T_mult=1.1, eta_min=1e-4, m_mul=0.9),
        S.cosine_restarts(0.1, T_0=1, T_mult=1 + 2**-52),
    ],
    ids=str,
)
def test_restarts_with_a_fractional_period_or_multiplier_round_trip(s: S.Schedule) -> None:
    assert str(s) == (
        f"cosine_restarts(lr=0.1, T_0={s.T_0!r}, T_mult={s.T_mult!r}, "
        f"eta_min={s.eta_min!r}, m_mul={s.m_mul!r})"
    )
    for back in (S.parse(str(s)), S.from_dict(json.loads(json.dumps(s.to_dict())))):
        assert back == s and back.to_dict() == s.to_dict() and hash(back) == hash(s)
        np.testing.assert_array_equal(back.values(STEPS), s.values(STEPS))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"T_0": 0.5}, "T_0 must be a number of steps in [1, 2**53], got 0.5"),
        ({"T_0": 0}, "T_0 must be a number of steps in [1, 2**53], got 0"),
        ({"T_0": -3.0}, "T_0 must be a number of steps in [1, 2**53], got -3.0"),
        ({"T_0": math.inf}, "T_0 must be a number of steps in [1, 2**53], got inf"),
        ({"T_0": math.nan}, "T_0 must be a number of steps in [1, 2**53], got nan"),
        ({"T_0": 10, "T_mult": 0.99}, "T_mult must be a number in [1, 2**53], got 0.99"),
        ({"T_0": 10, "T_mult": 0}, "T_mult must be a number in [1, 2**53], got 0"),
        ({"T_0": 10, "T_mult": math.inf}, "T_mult must be a number in [1, 2**53], got inf"),
        ({"T_0": 10, "T_mult": -math.inf}, "T_mult must be a number in [1, 2**53], got -inf"),
        ({"T_0": 10, "T_mult": math.nan}, "T_mult must be a number in [1, 2**53], got nan"),
        ({"T_0": "3"}, "T_0 must be a finite real number, got '3' (text, not a number)"),
    ],
)
def test_restarts_refuse_a_period_or_multiplier_below_1_or_not_finite(kwargs, message) -> None:
    with pytest.raises(ValueError) as e:
        S.cosine_restarts(0.1, **kwargs)
    assert str(e.value) == message


def test_a_restarts_spec_with_a_period_below_1_is_a_spec_error() -> None:
    with pytest.raises(S.SpecError, match=r"T_0 must be a number of steps in \[1, 2\*\*53\]"):
        S.parse("cosine_restarts(0.1, 0.5)")
    with pytest.raises(S.SpecError, match=r"T_mult must be a number in \[1, 2\*\*53\], got 0.5"):
        S.parse("cosine_restarts(0.1, 10, 0.5)")


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@settings(max_examples=200, deadline=None)
@given(
    T0=st.one_of(st.integers(1, 60), st.floats(1, 60), st.sampled_from([100 / 3, 18 / 14])),
    mult=st.one_of(
        st.just(1),
        st.floats(1, 4),
        st.sampled_from([1 + 2**-52, 1 + 1e-12, 1 + 2**-20, 1.1, 1.5, 2.5]),
    ),
    m_mul=st.one_of(st.just(1.0), st.floats(0, 2)),
    cycles=st.lists(st.integers(0, 40), max_size=4),
    ts=st.lists(
        st.one_of(st.integers(0, 10**6), st.floats(0, 1e7), st.integers(0, 2**53)), max_size=6
    ),
)
def test_restarts_scalar_and_vector_paths_agree_bit_for_bit_for_any_period_and_multiplier(
    T0: float, mult: float, m_mul: float, cycles: list[int], ts: list[float]
) -> None:
    s = S.cosine_restarts(0.1, T_0=T0, T_mult=mult, eta_min=1e-3, m_mul=m_mul)
    # the steps around cycle starts, where the cycle number is corrected
    m = float(s.T_mult)
    k = np.array(cycles, dtype=np.float64)
    with np.errstate(all="ignore"):
        starts = k * T0 if m == 1 else T0 * (np.power(m, k) - 1) / (m - 1)
    starts = starts[np.isfinite(starts) & (starts <= 2**53)]
    steps = [*ts, *starts, *np.floor(starts), *np.ceil(starts), *np.nextafter(starts, 0)]
    if not steps:
        return
    with np.errstate(all="ignore"):
        vec = s.values(steps)
        for t, v in zip(steps, vec):
            x = s(float(t))
            assert _same(x, float(v)), (str(s), t, x, float(v))
            assert _same(x, float(s.values([t])[0])) and _same(x, float(s.values(np.float64(t))))


@pytest.mark.parametrize(
    "t", [7744206459135383.0, 7745327927827439.0, 7745407632384959.0, 7759284621102551.0]
)
def test_restarts_find_the_cycle_of_a_step_with_a_multiplier_next_to_1(t: float) -> None:
    # T_mult = 1 + 2**-52: log's estimate of the cycle number is two cycles off here; the
    # value is that of the cycle n with start(n) <= t < start(n + 1), start(n) computed as
    # T_0 (T_mult**n - 1) / (T_mult - 1) with numpy's power
    m = 1 + 2**-52
    s = S.cosine_restarts(1.0, T_0=1, T_mult=m)
    est = math.floor(math.log(t * (m - 1) + 1) / math.log(m))
    k = np.arange(est - 8, est + 9, dtype=np.float64)
    starts = (np.power(m, k) - 1) / (m - 1)
    i = int(np.flatnonzero(starts <= t)[-1])
    assert starts[i] <= t < starts[i + 1]
    want = 0.0 + (1.0 - 0.0) * 0.5 * (1 + np.cos(np.pi * (t - starts[i]) / np.power(m, k[i])))
    assert s(t) == s.values([t])[0] == want


@pytest.mark.parametrize(("L", "k"), [(18, 14), (27, 21), (50, 22), (54, 21), (100, 6)])
def test_a_fractional_period_restarts_at_a_whole_step_that_is_a_multiple_of_it(L, k) -> None:
    # T_0 = L / k held rounded: at a whole step that is j L / k the cycle starts (the value is
    # lr), as the exact fraction's does, also where t / T_0 rounds below j
    s = S.cosine_restarts(1.0, T_0=L / k)
    whole = [j * L // k for j in range(1, k) if j * L % k == 0]
    assert whole
    assert [s(t) for t in whole] == s.values(whole).tolist() == [1.0] * len(whole)
    # every step: the cosine of the exact fraction's place in its cycle
    exact = [0.5 * (1 + math.cos(math.pi * float(Fraction(t * k, L) % 1))) for t in range(L)]
    np.testing.assert_allclose(s.values(np.arange(L)), exact, rtol=1e-12, atol=1e-15)


def test_a_fractional_period_is_not_taken_for_a_whole_one_by_the_value_tables() -> None:
    """A value table of ``cosine_restarts`` with a fractional ``T_0`` does not wrap its index
    (its period is not a whole number of steps): past the table, the formula; a whole
    ``T_0`` still wraps exactly."""
    from lrkit.schedules.tables import period, value_table

    frac = S.cosine_restarts(0.1, T_0=100 / 3)
    assert period(frac) is None
    table = value_table(frac, limit=64)
    assert table.beyond == "formula"
    assert period(S.cosine_restarts(0.1, T_0=33)) == (0, 33)
    assert value_table(S.cosine_restarts(0.1, T_0=33), limit=64).beyond == "periodic"


def test_step_and_multistep_default_gamma_is_pytorchs_0_1() -> None:
    steps = range(50)
    step, multi = S.step(0.1, step_size=10), S.multistep(0.1, milestones=[5, 20])
    for t in steps:
        assert step(t) == pytest.approx(0.1 * 0.1 ** (t // 10), rel=1e-12)
        assert multi(t) == pytest.approx(0.1 * 0.1 ** ((t >= 5) + (t >= 20)), rel=1e-12)
    torch = pytest.importorskip("torch")
    for make, ours in (
        (lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=10), step),
        (lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[5, 20]), multi),
    ):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        sched = make(opt)
        for t in steps:
            assert ours(t) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
            opt.step()
            sched.step()


def test_polynomial_default_power_is_1_a_straight_line() -> None:
    s = S.polynomial(1.0, total_steps=10)
    assert s.power == 1.0
    assert [s(t) for t in (0, 5, 8, 10, 12)] == [1.0, 0.5, 0.19999999999999996, 0.0, 0.0]
    assert s.values([5, 10]).tolist() == [0.5, 0.0]
    assert s == S.polynomial(1.0, total_steps=10, power=1)


def test_restarts_with_a_fractional_period_restart_at_exactly_the_rounding_margin() -> None:
    """A step exactly ``2**-51`` of itself below a multiple of ``T_0`` (``2 * 1.5000000000000007``
    is ``3 + 3 * 2**-51``) starts that cycle, on both paths."""
    s = S.cosine_restarts(0.1, T_0=1.5000000000000007)
    assert 2 * s.T_0 - 3 == 3 * 2.0**-51
    assert s(3) == s.values([3])[0] == 0.1
    assert s(3.0) == 0.1


def test_wsd_with_min_lr_above_lr_rises_over_the_decay_phase() -> None:
    """A ``min_lr`` above ``lr`` (Hugging Face's ``min_lr_ratio > 1``): ``lr`` through the
    stable phase, then a rise that reaches ``min_lr`` at ``total_steps`` and holds it."""
    s = S.wsd(0.1, total_steps=10, decay_steps=4, decay="linear", min_lr=0.2)
    want = [0.1] * 7 + [0.125, 0.15000000000000002, 0.17500000000000002, 0.2, 0.2]
    assert [s(t) for t in range(12)] == want
    assert s.values(np.arange(12)).tolist() == want


def test_clamp_with_equal_bounds_is_that_constant() -> None:
    s = S.clamp(S.cosine(1.0, total_steps=10), min_lr=0.3, max_lr=0.3)
    assert [s(t) for t in (0, 5, 10, 12)] == [0.3, 0.3, 0.3, 0.3]
    assert s.values([0, 5, 10, 12]).tolist() == [0.3, 0.3, 0.3, 0.3]
    assert S.parse(str(s)) == s


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: S.multistep(0.1, milestones=[5], gamma=0),
            "gamma must be > 0 (allowed range: (0, inf)), got 0",
        ),
        (
            lambda: S.exponential(0.1, gamma=0),
            "gamma must be > 0 (allowed range: (0, inf)), got 0",
        ),
        (
            lambda: S.cyclic(0.01, max_lr=0.1, gamma=0),
            "gamma must be > 0 (allowed range: (0, inf)), got 0",
        ),
        (
            lambda: S.onecycle(0.1, total_steps=100, div_factor=0),
            "div_factor must be > 0 (allowed range: (0, inf)), got 0",
        ),
        (
            lambda: S.onecycle(0.1, total_steps=100, final_div_factor=0),
            "final_div_factor must be > 0 (allowed range: (0, inf)), got 0",
        ),
        (
            lambda: S.linear(-0.1, end_lr=0.1, total_steps=10),
            "start_lr must be >= 0 (allowed range: [0, inf)), got -0.1",
        ),
        (
            lambda: S.cosine(0.1, total_steps=10, eta_min=-0.01),
            "eta_min must be >= 0 (allowed range: [0, inf)), got -0.01",
        ),
        (
            lambda: S.cosine_restarts(0.1, T_0=10, eta_min=-0.01),
            "eta_min must be >= 0 (allowed range: [0, inf)), got -0.01",
        ),
        (
            lambda: S.inverse_sqrt(0.1, warmup_steps=10, timescale=0),
            "timescale must be > 0 (allowed range: (0, inf)), got 0",
        ),
    ],
)
def test_a_factor_or_floor_out_of_range_is_refused_with_its_range(make, message) -> None:
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value) == message


def test_a_fractional_step_just_below_a_multiple_of_step_size_keeps_the_earlier_value() -> None:
    s = S.step(0.1, step_size=7, gamma=0.5)
    t = 7 - 1e-10
    assert s(t) == s.values([t])[0] == 0.1
    assert s(7) == s.values([7])[0] == 0.05


def test_a_cycling_polynomial_decays_over_its_first_cycle_then_over_a_longer_horizon() -> None:
    s = S.polynomial(1.0, total_steps=10, cycle=True)
    want = [1.0, 0.5, 0.0, 0.25, 0.0, 1 - 25 / 30]
    assert [s(t) for t in (0, 5, 10, 15, 20, 25)] == want
    assert s.values([0, 5, 10, 15, 20, 25]).tolist() == want
    assert s.length == 10


@pytest.mark.parametrize(
    ("s", "length"),
    [
        (S.constant(1.0), None),
        (S.step(1.0, step_size=3), None),
        (S.multistep(1.0, milestones=[3]), None),
        (S.exponential(1.0, gamma=0.9), None),
        (S.inverse_time(1.0, decay_steps=2, decay_rate=1.0), None),
        (S.cosine_restarts(1.0, T_0=10), None),
        (S.cyclic(0.1, max_lr=1.0), None),
        (S.inverse_sqrt(1.0), None),
        (S.piecewise_constant([], values=[1.0]), None),
        (S.piecewise_constant([10, 40], values=[1.0, 2.0, 3.0]), 51),
        (S.warmup(0.0, end_lr=1.0, warmup_steps=7), 7),
        (S.wsd(1.0, total_steps=30), 30),
        (S.onecycle(1.0, total_steps=30), 30),
        (S.onecycle_momentum(30), 30),
        (S.linear(0.0, end_lr=1.0, total_steps=12), 12),
        (S.polynomial(1.0, total_steps=12), 12),
        (S.cosine(1.0, total_steps=13), 13),
    ],
    ids=lambda x: x.name if isinstance(x, S.Schedule) else str(x),
)
def test_a_family_with_a_horizon_has_it_as_length_and_the_others_none(s, length) -> None:
    assert s.length == length


def test_linear_and_warmup_end_exactly_at_end_lr() -> None:
    """``0.03 + (0.3 - 0.03)`` is ``0.30000000000000004``: the last step and every later one
    are ``end_lr`` itself, on both paths."""
    for s in (
        S.linear(0.03, end_lr=0.3, total_steps=10),
        S.warmup(0.03, end_lr=0.3, warmup_steps=10),
        S.warmup(0.3, end_lr=0.7, warmup_steps=10, mode="exponential"),
    ):
        end = s.to_dict()["end_lr"]
        assert [s(10), s(11), s(1000)] == [end] * 3
        assert s.values([10, 11, 1000]).tolist() == [end] * 3


def test_cyclic_default_half_cycle_is_2000_steps() -> None:
    s = S.cyclic(0.01, max_lr=0.1)
    assert s.to_dict()["step_size_up"] == 2000
    assert [s(0), s(2000), s(4000)] == [0.01, 0.1, 0.01]
    assert s.values([0, 2000, 4000]).tolist() == [0.01, 0.1, 0.01]


def test_cyclic_whole_step_sizes_are_written_as_integers() -> None:
    s = S.cyclic(0.01, max_lr=0.1, step_size_up=10.0, step_size_down=30.0)
    d = s.to_dict()
    assert (d["step_size_up"], d["step_size_down"]) == (10, 30)
    assert type(d["step_size_up"]) is int and type(d["step_size_down"]) is int
    assert str(s) == (
        'cyclic(base_lr=0.01, max_lr=0.1, step_size_up=10, step_size_down=30, mode="triangular", '
        "gamma=1.0)"
    )


def test_inverse_sqrt_without_a_timescale_keeps_it_unset_and_uses_its_default() -> None:
    s = S.inverse_sqrt(0.1, warmup_steps=20)
    assert s.timescale is None and s.to_dict()["timescale"] is None
    assert str(s) == "inverse_sqrt(lr=0.1, warmup_steps=20, timescale=none)"
    assert s != S.inverse_sqrt(0.1, warmup_steps=20, timescale=20)
    assert s(40) == s.values([40])[0] == 0.1 * math.sqrt(20 / 40)
    no_warmup = S.inverse_sqrt(0.1)
    assert no_warmup(10_000) == no_warmup.values([10_000])[0] == 0.1 * math.sqrt(0.5)


def test_piecewise_constant_writes_whole_boundaries_as_integers_and_wants_a_list() -> None:
    s = S.piecewise_constant([10.0, 50.5], values=[0.1, 0.05, 0.01])
    assert s.to_dict()["boundaries"] == [10, 50.5]
    assert type(s.to_dict()["boundaries"][0]) is int
    assert str(s) == "piecewise_constant(boundaries=[10, 50.5], values=[0.1, 0.05, 0.01])"
    with pytest.raises(ValueError) as info:
        S.piecewise_constant(5, values=[0.1])
    assert str(info.value) == "boundaries must be a list of numbers, got 5"


def test_wsd_decays_by_default_as_1_minus_sqrt_and_ends_exactly_at_min_lr() -> None:
    s = S.wsd(1.0, total_steps=10)
    assert s.decay == "1-sqrt" and s.decay_steps == 2
    assert [s(t) for t in (8, 9, 10)] == [1.0, 1 - math.sqrt(0.5), 0.0]
    # 0.1 - (0.1 - 0.001) is 0.0010000000000000009: the end of the decay is min_lr itself
    for decay in ("linear", "cosine", "1-sqrt"):
        s = S.wsd(0.1, total_steps=10, decay=decay, min_lr=0.001)
        assert [s(10), s(11)] == s.values([10, 11]).tolist() == [0.001, 0.001]


@pytest.mark.parametrize(
    ("make", "hint"),
    [
        (lambda: S.step(0.1, decay_t=10), "for decay_t use step_size"),
        (lambda: S.step(0.1, decay_steps=10), "for decay_steps use step_size"),
        (lambda: S.polynomial(0.1, total_iters=10), "for total_iters use total_steps"),
        (lambda: S.inverse_sqrt(0.1, num_warmup_steps=10), "for num_warmup_steps use warmup_steps"),
        (
            lambda: S.wsd(0.1, total_steps=10, num_decay_steps=2),
            "for num_decay_steps use decay_steps",
        ),
        (
            lambda: S.onecycle(0.1, total_steps=10, steps_per_epoch=5),
            "for steps_per_epoch use total_steps (= epochs * steps_per_epoch)",
        ),
    ],
)
def test_a_peer_library_s_name_for_a_parameter_is_refused_with_lrkit_s(make, hint) -> None:
    with pytest.raises(TypeError) as info:
        make()
    assert str(info.value).endswith(f"; {hint}")


@pytest.mark.parametrize(
    ("d", "shown"),
    [
        (5, "5"),
        ("cosine(0.1, 10)", "'cosine(0.1, 10)'"),
        ([{"name": "constant"}], "[{'name': 'constant'}]"),
    ],
)
def test_from_dict_of_something_not_a_mapping_says_what_it_wants(d, shown) -> None:
    with pytest.raises(ValueError) as info:
        S.from_dict(d)
    assert str(info.value) == f"d must be a dict with a 'name' key, got {shown}"


def test_is_schedule_list_takes_any_sequence_but_a_string_or_bytes() -> None:
    from collections import UserList

    s = S.cosine(0.1, total_steps=10)
    for many in ([s, s], (s,), UserList([s]), []):
        assert S.is_schedule_list(many)
    for one in (s, str(s), str(s).encode(), s.to_dict()):
        assert not S.is_schedule_list(one)


def test_from_dict_of_a_read_only_mapping_without_a_name_lists_its_keys() -> None:
    from types import MappingProxyType

    with pytest.raises(ValueError) as info:
        S.from_dict(MappingProxyType({"lr": 0.1}))
    assert (
        str(info.value) == "d must be a dict with a 'name' key, got a mappingproxy with keys 'lr'"
    )


@pytest.mark.parametrize("missing", ["fn", "lr"])
def test_from_dict_with_names_a_function_entry_s_missing_parameter(missing) -> None:
    d = {"name": "function", "fn": "ref", "lr": 0.1}
    del d[missing]
    with pytest.raises(ValueError) as info:
        S.from_dict_with(d, read=lambda ref: lambda t: 1.0)
    assert str(info.value) == (
        f"function() missing required parameter '{missing}' (parameters: fn, lr, length)"
    )
