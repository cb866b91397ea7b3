"""Equal schedules hash equal (``to_dict`` equality: 0.0 == -0.0, 1 == 1.0)."""

from __future__ import annotations

from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from lrkit import schedules as S


def test_signed_zero_and_int_float_are_equal_and_hash_equal() -> None:
    pairs = [
        (S.constant(0.0), S.constant(-0.0)),
        (S.cosine(0.1, total_steps=10, eta_min=0.0), S.cosine(0.1, total_steps=10, eta_min=-0.0)),
        (S.constant(1), S.constant(1.0)),
    ]
    for a, b in pairs:
        assert a == b and hash(a) == hash(b)
        assert len({a, b}) == 1
        assert str(a) == str(b) and "-0.0" not in str(b)


@given(
    lr=st.floats(0, 10, allow_nan=False) | st.integers(0, 10),
    total=st.integers(1, 10**6),
)
def test_parse_round_trip_keeps_the_hash(lr: float, total: int) -> None:
    s = S.join([S.constant(lr), S.cosine(lr, total_steps=total)], boundaries=[total])
    back = S.parse(str(s))
    assert back == s and hash(back) == hash(s)


def test_comparing_with_another_type_leaves_the_answer_to_that_type() -> None:
    s = S.cosine(0.1, total_steps=10)
    assert s == mock.ANY and mock.ANY == s
    assert s != "cosine(lr=0.1, total_steps=10, eta_min=0.0)" and s != 0.1
