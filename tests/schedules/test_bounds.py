"""Every step count a schedule takes is bounded by 2**53 (float64 holds each integer up to it
exactly): a larger one is a one-line ValueError naming the parameter, and S.parse a SpecError."""

from __future__ import annotations

import pytest

from lrkit import schedules as S

B = 10**400
C = S.constant(0.1)

CASES = [
    (lambda n: S.step(0.1, step_size=n), "step_size", 1),
    (lambda n: S.multistep(0.1, milestones=[n]), r"milestones\[0\]", 0),
    (lambda n: S.polynomial(0.1, total_steps=n), "total_steps", 1),
    (lambda n: S.linear(0.1, end_lr=0.0, total_steps=n), "total_steps", 1),
    (lambda n: S.cosine(0.1, total_steps=n), "total_steps", 1),
    (lambda n: S.onecycle(0.1, total_steps=n), "total_steps", 1),
    (lambda n: S.onecycle_momentum(n), "total_steps", 1),
    (lambda n: S.inverse_sqrt(0.1, warmup_steps=n), "warmup_steps", 0),
    (lambda n: S.warmup(0.0, end_lr=0.1, warmup_steps=n), "warmup_steps", 0),
    (lambda n: S.wsd(0.1, total_steps=n), "total_steps", 1),
    (lambda n: S.wsd(0.1, total_steps=10, warmup_steps=n), "warmup_steps", 0),
    (lambda n: S.wsd(0.1, total_steps=10, decay_steps=n), "decay_steps", 0),
    (lambda n: S.join([C, C], boundaries=[n]), r"boundaries\[0\]", 0),
    (lambda n: S.with_warmup(C, warmup_steps=n), "warmup_steps", 0),
]


@pytest.mark.parametrize("make,name,low", CASES)
@pytest.mark.parametrize("n", [2**53 + 1, 10**20, B])
def test_an_integer_parameter_beyond_2_53_is_a_value_error_naming_it(make, name, low, n):
    with pytest.raises(ValueError, match=rf"^{name} must be an integer in \[{low}, 2\*\*53\], got"):
        make(n)


@pytest.mark.parametrize(
    "make,prefix",
    [
        (lambda n: S.cosine_restarts(0.1, T_0=n), "T_0 must be a number of steps"),
        (lambda n: S.cosine_restarts(0.1, T_0=3, T_mult=n), "T_mult must be a number"),
    ],
)
@pytest.mark.parametrize(
    "n,shown",
    [
        (2**53 + 1, "9007199254740993"),  # compared exactly, not read as the float 2**53
        (10**20, "100000000000000000000"),
        (B, "an integer with 401 digits"),
        (2.0**53 + 2, "9007199254740994.0"),
        (1e308, "1e+308"),
    ],
)
def test_a_cosine_restarts_count_beyond_2_53_is_a_value_error_naming_it(make, prefix, n, shown):
    # T_0 and T_mult are numbers (fractional allowed), bounded as the step counts are
    with pytest.raises(ValueError) as e:
        make(n)
    assert str(e.value) == f"{prefix} in [1, 2**53], got {shown}"


def test_a_huge_integer_is_named_by_its_digits():
    with pytest.raises(ValueError) as e:
        S.cosine(0.1, total_steps=B)
    assert str(e.value).endswith("got an integer with 401 digits")
    assert "\n" not in str(e.value)


def test_2_53_itself_is_accepted():
    assert S.cosine(0.1, total_steps=2**53).length == 2**53
    assert S.join([C, C], boundaries=[2**53]).boundaries == (2**53,)


@pytest.mark.parametrize(
    "spec",
    [
        f"cosine(0.1, total_steps={B})",
        f"piecewise_constant([{B}], values=[0.1, 0.2])",
        "cyclic(0.01, max_lr=0.1, step_size_up=1e308)",
        f"join([constant(0.1), constant(0.2)], boundaries=[{B}])",
    ],
)
def test_parse_gives_a_spec_error(spec):
    with pytest.raises(S.SpecError):
        S.parse(spec)


@pytest.mark.parametrize(
    "make,message",
    [
        (
            lambda: S.cyclic(0.01, max_lr=0.1, step_size_up=1e308),
            r"^step_size_up must be a number of steps in \[1, 2\*\*53\], got 1e\+308$",
        ),
        (
            lambda: S.cyclic(0.01, max_lr=0.1, step_size_up=1e-320),
            r"^step_size_up must be a number of steps in \[1, 2\*\*53\]",
        ),
        (
            lambda: S.cyclic(0.01, max_lr=0.1, step_size_up=3, step_size_down=0.5),
            r"^step_size_down must be 0 \(a sawtooth, as PyTorch's\) or a number of steps in "
            r"\[1, 2\*\*53\], got 0\.5$",
        ),
        (
            lambda: S.piecewise_constant([1e308, 1.7e308], values=[0.1, 0.2, 0.3]),
            r"^boundaries\[0\] must be a number of steps in \[0, 2\*\*53\], got 1e\+308$",
        ),
        (
            lambda: S.piecewise_constant([B], values=[0.1, 0.2]),
            r"^boundaries\[0\] must be a finite real number, got an integer with 401 digits$",
        ),
    ],
)
def test_nonsensical_cyclic_and_piecewise_parameters_are_value_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_the_largest_cyclic_and_piecewise_parameters_stay_finite():
    s = S.cyclic(0.01, max_lr=0.1, step_size_up=2**53, step_size_down=2**53)
    assert s(0) == 0.01 and s(2**53) == pytest.approx(0.1) and s(1e308) == s.values([1e308])[0]
    p = S.piecewise_constant([2**52, 2**53], values=[0.1, 0.2, 0.3])
    assert p.length == int(2**53 * 1.25) + 1
    assert p(2**53) == 0.2 and p(2**53 + 2) == 0.3
