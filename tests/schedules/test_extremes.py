"""Inputs at the edges of what Python and float64 hold: errors stay one line and name what
is wrong, and the scalar and vectorized paths keep agreeing bit for bit."""

from __future__ import annotations

import copy
import math
import pickle
import re
from fractions import Fraction

import numpy as np
import pytest

from lrkit import schedules as S
from lrkit.schedules import SpecError
from lrkit.schedules.tables import value_table


def test_a_spec_error_survives_pickle_and_copy() -> None:
    with pytest.raises(SpecError) as info:
        S.parse("cosine(0.1, 100")
    err = info.value
    for again in (pickle.loads(pickle.dumps(err)), copy.copy(err), copy.deepcopy(err)):
        assert type(again) is SpecError
        assert str(again) == str(err) and again.pos == err.pos == 15 and again.text == err.text


def test_a_step_beyond_float64_is_a_value_error_on_the_scalar_path() -> None:
    s = S.constant(0.1)
    with pytest.raises(ValueError, match=r"^step must be finite and >= 0 .*got Fraction\(1000"):
        s(Fraction(10**400))
    with pytest.raises(ValueError, match=r"got an integer with 5001 digits \(beyond float64\)$"):
        s(10**5000)
    with pytest.raises(ValueError, match=r"^steps must be finite and >= 0"):
        s.values([Fraction(10**400)])


def test_a_negative_integer_step_within_float64_is_shown_in_full() -> None:
    with pytest.raises(ValueError, match=r"got -1152921504606846976$"):
        S.constant(0.1)(-(2**60))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: S.from_dict(10**5000),
         "d must be a dict with a 'name' key, got an integer with 5001 digits"),
        (lambda: S.from_dict({"name": 10**5000}),
         "unknown schedule name an integer with 5001 digits (known: "),
        (lambda: S.as_schedule(10**5000),
         "schedule must be a lrkit schedule, a spec string or a to_dict() dict, got an integer "
         "with 5001 digits"),
        (lambda: S.from_dict({"name": "cyclic", "base_lr": 0.1, "max_lr": 1, "mode": 10**5000}),
         "mode must be one of 'triangular', 'triangular2', 'exp_range', got an integer with "
         "5001 digits"),
        (lambda: S.cosine(0.1, total_steps=[10**5000]),
         "total_steps must be an integer in [1, 2**53], got a list holding an integer too long "
         "to print"),
    ],
)  # fmt: skip
def test_integers_too_long_to_print_are_described_in_the_error(call, message) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        call()


def test_clamp_and_add_keep_the_sign_of_zero_on_both_paths() -> None:
    neg = (S.constant(0.0) - S.constant(0.1)) * S.linear(1.0, end_lr=0.0, total_steps=10)
    assert math.copysign(1.0, neg(10)) == -1.0  # -0.1 * 0.0
    for s in (neg.clamp(min_lr=0.0), S.add(neg, neg), S.add(neg, S.constant(0.0)),
              S.clamp(S.constant(0.0), max_lr=0.0), S.mul(neg, neg)):  # fmt: skip
        for t in (0, 5, 10, 11):
            one, many = s(t), float(s.values([t])[0])
            assert np.float64(one).tobytes() == np.float64(many).tobytes(), (str(s), t)


def test_a_table_holds_only_values_it_knows_are_finite() -> None:
    big = S.constant(1e300) * S.exponential(1e10, gamma=2.0)  # inf at every step
    t = value_table(big, scale=0.0)  # 0 * inf is NaN, not 0
    assert t.beyond == "formula" and np.isnan(t.values).all()
    q = S.linear(1.0, end_lr=0.0, total_steps=10) * S.inverse_sqrt(1e300, warmup_steps=2**53)
    # 1e300 * t / 2**53 overflows to inf before the product, and the ramp is 0 there: 0
    assert q.values([2**52])[0] == 0.0 == q(2**52)
    assert value_table(q).beyond == "formula"
    ok = value_table(S.cosine(0.1, total_steps=100), scale=0.0)
    assert ok.beyond == "hold" and not ok.values.any()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's overflow in gamma ** t
def test_a_zero_times_a_value_beyond_float64_is_zero_not_nan() -> None:
    cases = [
        (0 * S.exponential(0.1, gamma=2.0), 5000, 0.0),
        # at a cycle's start, and with no amplitude at all, exp_range's gamma ** t may overflow
        (S.cyclic(0.1, max_lr=0.2, mode="exp_range", gamma=1.5), 8000, 0.1),
        (S.cyclic(0.1, max_lr=0.1, mode="exp_range", gamma=1.5), 5000, 0.1),
    ]
    for s, t, want in cases:
        assert s(t) == want and s(float(t)) == want
        assert s.values([t, t])[0] == want
    s = S.cyclic(0.1, max_lr=0.2, mode="exp_range", gamma=1.5)
    assert s(5000) == math.inf == s.values([5000])[0]  # beyond float64 inside a cycle: inf
