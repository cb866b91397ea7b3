"""The scalar and vectorized paths agree at the edges: overflow, non-finite and huge steps."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from lrkit import schedules as S


@pytest.mark.parametrize(
    "s,t",
    [
        (S.exponential(0.1, 2), 2000),
        (S.exponential(0.1, 2), 1e300),
        (S.step(0.1, 1, gamma=10.0), 400),
        (S.multistep(0.1, [1, 2, 3], gamma=1e200), 5),
        (S.cyclic(0.1, 0.2, step_size_up=3, mode="exp_range", gamma=2.0), 2001),
        (2.0 * S.exponential(0.1, 2), 2000),
    ],
)
def test_overflow_is_inf_on_both_paths(s, t):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        vec = s.values([t])[0]
    assert s(t) == math.inf == vec


@pytest.mark.parametrize("lr_zero", [S.exponential(0.0, 2), S.step(0.0, 1, 10.0)])
def test_zero_lr_stays_zero_where_gamma_overflows(lr_zero):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        assert lr_zero(5000) == 0.0
        assert lr_zero.values([5000])[0] == 0.0


@pytest.mark.parametrize(
    "bad",
    [math.inf, math.nan, -1, -0.5, 10**400, -(10**400)],
    ids=["inf", "nan", "-1", "-.5", "big", "-big"],
)
@pytest.mark.parametrize("s", [S.cosine(0.1, 100), S.exponential(0.1, 0.9), S.constant(0.1)])
def test_bad_steps_rejected_the_same_way(s, bad):
    with pytest.raises(
        ValueError, match=r"^step must be finite and >= 0 \(allowed range: \[0, inf"
    ):
        s(bad)
    with pytest.raises(ValueError, match=r"^steps must be finite and >= 0 \(allowed range"):
        s.values([1, bad])


def test_huge_integer_named_by_its_digits_not_printed():
    with pytest.raises(ValueError) as err:
        S.cosine(0.1, 10)(10**400)
    assert "an integer with 401 digits" in str(err.value) and len(str(err.value)) < 120


def test_largest_float_step_is_accepted_on_both_paths():
    s = S.cosine(0.1, 10, eta_min=0.01)
    big = np.finfo(np.float64).max
    assert s(big) == s.values([big])[0] == 0.01
    assert S.exponential(0.1, 0.5)(10**300) == 0.0 == S.exponential(0.1, 0.5).values([10**300])[0]
