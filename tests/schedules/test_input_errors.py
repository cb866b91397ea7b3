"""One-line errors naming the parameter for bad steps and bad list parameters; the scalar and
vectorized paths of polynomial(cycle=True) agree above 2**53."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit import schedules as S

C = S.cosine(0.1, total_steps=100)


@pytest.mark.parametrize("steps", [[None], [1, None], [[1, None]], [1.0, "x", 2]])
def test_values_with_a_none_step_is_a_type_error(steps: list) -> None:
    with pytest.raises(TypeError, match=r"^steps must be an array-like of numbers") as e:
        C.values(steps)
    assert "nan" not in str(e.value)


def test_values_with_none_matches_the_scalar_message() -> None:
    with pytest.raises(TypeError, match="step must be a number"):
        C(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="step must be a number .*got None"):
        C.values([1, None])


@pytest.mark.parametrize("steps", [[[1, 2], [3]], [1, [2, 3]]])
def test_values_of_ragged_steps(steps: list) -> None:
    with pytest.raises(ValueError, match=r"^steps must be an array-like of numbers with rows") as e:
        C.values(steps)
    assert "inhomogeneous" not in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: C * 10**400, "the number a schedule is multiplied by"),
        (lambda: 10**400 * C, "the number a schedule is multiplied by"),
        (lambda: C.scale(10**400), "factor"),
    ],
)
def test_a_huge_factor_is_named(make, name) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value) == f"{name} must be a finite real number, got an integer with 401 digits"
    assert (C * 2) == S.scale(C, factor=2.0) and (3 * C)(0) == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: S.multistep(0.1, milestones="10"), "milestones"),
        (lambda: S.multistep(0.1, milestones=b"10"), "milestones"),
        (lambda: S.multistep(0.1, milestones={30: "x"}), "milestones"),
        (lambda: S.piecewise_constant({10: 1}, values=[1, 2]), "boundaries"),
        (lambda: S.piecewise_constant("10", values=[1, 2]), "boundaries"),
        (lambda: S.piecewise_constant([10], values={1: 0, 2: 0}), "values"),
        (lambda: S.join([C, C], boundaries="15"), "boundaries"),
        (lambda: S.join([C, C], boundaries={15: 0}), "boundaries"),
        (lambda: S.join({C: 0, S.constant(0.1): 1}, boundaries=[5]), "schedules"),
        (
            lambda: S.from_dict(
                {
                    "name": "join",
                    "schedules": [{"name": "constant", "lr": 0.1}] * 2,
                    "boundaries": "15",
                }
            ),
            "boundaries",
        ),
        (lambda: S.parse('multistep(0.1, milestones="10")'), "milestones"),
    ],
)
def test_a_string_or_mapping_for_a_list(make, name: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=f"{name} must be a list of .*, got a (string|mapping)"):
        make()


def test_lists_tuples_and_ranges_still_work() -> None:
    assert S.multistep(0.1, milestones=(10, 20)) == S.multistep(0.1, milestones=range(10, 30, 10))
    assert S.join([C, C], boundaries=(5,)) == S.join((C, C), boundaries=[5])


def test_polynomial_cycle_scalar_equals_values_above_2_53() -> None:
    s = S.polynomial(0.1, total_steps=49143, power=1.0, end_lr=0.01, cycle=True)
    t = 3.0979002858960978e19
    assert s(t) == s.values([t])[0] == 0.01000000000000013


@settings(max_examples=300, deadline=None)
@given(
    T=st.integers(1, 10**6),
    t=st.floats(2.0**53, 1e22),
    p=st.sampled_from([0.5, 1.0, 2.0]),
)
def test_polynomial_cycle_paths_agree_bit_for_bit(T: int, t: float, p: float) -> None:
    s = S.polynomial(0.1, total_steps=T, power=p, end_lr=0.01, cycle=True)
    assert s(t) == s.values([t])[0]
