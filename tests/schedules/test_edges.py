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
        (S.exponential(0.1, gamma=2), 2000),
        (S.exponential(0.1, gamma=2), 1e300),
        (S.step(0.1, step_size=1, gamma=10.0), 400),
        (S.multistep(0.1, milestones=[1, 2, 3], gamma=1e200), 5),
        (S.cyclic(0.1, max_lr=0.2, step_size_up=3, mode="exp_range", gamma=2.0), 2001),
        (2.0 * S.exponential(0.1, gamma=2), 2000),
    ],
)
def test_overflow_is_inf_on_both_paths(s, t):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        vec = s.values([t])[0]
    assert s(t) == math.inf == vec


@pytest.mark.parametrize(
    "s,t",
    [
        (S.exponential(0.1, gamma=2), 2000),
        (S.step(0.1, step_size=1, gamma=10.0), 400),
        (S.cyclic(0.1, max_lr=0.2, step_size_up=3, mode="exp_range", gamma=2.0), 2001),
    ],
)
def test_the_scalar_path_overflows_to_inf_without_a_warning(s, t):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert s(t) == math.inf


@pytest.mark.parametrize(
    "lr_zero", [S.exponential(0.0, gamma=2), S.step(0.0, step_size=1, gamma=10.0)]
)
def test_zero_lr_stays_zero_where_gamma_overflows(lr_zero):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        assert lr_zero(5000) == 0.0
        assert lr_zero.values([5000])[0] == 0.0


def test_a_schedule_given_to_optax_as_is_says_what_to_give_it():
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    import jax.numpy as jnp

    s = S.cosine(0.1, total_steps=100)
    opt = optax.sgd(learning_rate=s)
    p = jnp.zeros(3)
    with pytest.raises(TypeError) as info:
        jax.jit(opt.update)(jnp.ones(3), opt.init(p), p)
    assert str(info.value).startswith("step must be a number (an int, or a float")
    assert str(info.value).endswith(
        "give optax lrkit.optax.schedule(schedule), which evaluates it on a traced step"
    )
    assert s(jnp.asarray(3)) == s(3)  # a concrete jax scalar is a step
    # what the message says works
    import lrkit.optax as lo

    opt = optax.sgd(learning_rate=lo.schedule(s))
    jax.jit(opt.update)(jnp.ones(3), opt.init(p), p)


@pytest.mark.parametrize(
    "bad",
    [math.inf, math.nan, -1, -0.5, 10**400, -(10**400)],
    ids=["inf", "nan", "-1", "-.5", "big", "-big"],
)
@pytest.mark.parametrize(
    "s", [S.cosine(0.1, total_steps=100), S.exponential(0.1, gamma=0.9), S.constant(0.1)]
)
def test_bad_steps_rejected_the_same_way(s, bad):
    with pytest.raises(
        ValueError, match=r"^step must be finite and >= 0 \(allowed range: \[0, inf"
    ):
        s(bad)
    with pytest.raises(ValueError, match=r"^steps must be finite and >= 0 \(allowed range"):
        s.values([1, bad])


def test_values_names_the_first_bad_step():
    with pytest.raises(ValueError, match=r"^steps must be finite and >= 0 .*got -2\.0$"):
        S.cosine(0.1, total_steps=100).values([[1, -2], [math.nan, -3]])


def test_a_formula_that_gives_one_number_fills_the_shape_of_the_steps():
    from lrkit.schedules import Schedule

    class Level(Schedule):
        name = "lrkit_test_level"
        params = ("lr",)

        def __init__(self, lr: float) -> None:
            self.lr = float(lr)

        def _values(self, t, xp):  # noqa: ANN001, ANN202
            return self.lr

    got = Level(0.25).values([[0, 1, 2], [3, 4, 5]])
    assert got.dtype == np.float64 and got.tolist() == [[0.25] * 3] * 2
    got[0, 0] = 1.0  # an array of its own
    assert got.tolist()[1] == [0.25] * 3 and Level(0.25)(7) == 0.25


def test_huge_integer_named_by_its_digits_not_printed():
    with pytest.raises(ValueError) as err:
        S.cosine(0.1, total_steps=10)(10**400)
    assert "an integer with 401 digits" in str(err.value) and len(str(err.value)) < 120


def test_largest_float_step_is_accepted_on_both_paths():
    s = S.cosine(0.1, total_steps=10, eta_min=0.01)
    big = np.finfo(np.float64).max
    assert s(big) == s.values([big])[0] == 0.01
    assert (
        S.exponential(0.1, gamma=0.5)(10**300)
        == 0.0
        == S.exponential(0.1, gamma=0.5).values([10**300])[0]
    )


def test_bare_word_starting_with_digits_reads_as_a_string():
    a = S.parse("wsd(0.1, 100, decay=1-sqrt)")
    assert (
        a == S.parse("wsd(0.1, 100, decay='1-sqrt')") == S.wsd(0.1, total_steps=100, decay="1-sqrt")
    )
    assert S.parse("exponential(1e-5, 0.9)").lr == 1e-5  # exponents stay numbers
    with pytest.raises(S.SpecError, match="position 13"):
        S.parse("cosine(0.1, 1-2)")


def test_sums_and_differences():
    a, b = S.cosine(0.1, total_steps=100), S.linear(0.0, end_lr=0.05, total_steps=100)
    for s, f in [
        (a + b, lambda t: a(t) + b(t)),
        (a - b, lambda t: a(t) - b(t)),
        (0.95 - a, lambda t: 0.95 - a(t)),
        (a + 0.5, lambda t: a(t) + 0.5),
        (0.5 + a, lambda t: 0.5 + a(t)),
        (a - 0.01, lambda t: a(t) - 0.01),
        (S.add(a, b, a), lambda t: a(t) + b(t) + a(t)),
        (S.sub(a, b=b), lambda t: a(t) - b(t)),
    ]:
        assert S.parse(str(s)) == s == S.from_dict(s.to_dict())
        ts = np.arange(0, 130)
        assert [s(int(t)) for t in ts] == [f(int(t)) for t in ts]
        np.testing.assert_allclose(s.values(ts), [s(int(t)) for t in ts], rtol=1e-13, atol=1e-16)
        assert s.length == 100
    assert str(0.95 - a).startswith("sub(a=constant(lr=0.95), b=cosine(")
    with pytest.raises(ValueError, match=r"schedules must hold at least 2"):
        S.add(a)
    with pytest.raises(ValueError, match=r"^b must be a schedule"):
        S.sub(a, b=0.1)


def test_polynomial_cycle_and_restarts_m_mul_formulas():
    p = S.polynomial(1.0, total_steps=10, power=2.0, end_lr=0.1, cycle=True)
    assert p(0) == 1.0 and p(10) == pytest.approx(0.1)
    assert p(15) == pytest.approx(0.9 * (1 - 15 / 20) ** 2 + 0.1)  # horizon 20 in cycle 2
    assert S.polynomial(1.0, total_steps=10, power=2.0, end_lr=0.1)(15) == 0.1  # no cycle: held
    assert S.polynomial(0.5, total_steps=10, power=0.0)(3) == 0.5  # power 0: optax holds init_value
    r = S.cosine_restarts(1.0, T_0=10, T_mult=2, eta_min=0.1, m_mul=0.5)
    assert r(0) == 1.0 and r(10) == pytest.approx(0.1 + 0.9 * 0.5)
    assert r(30) == pytest.approx(0.1 + 0.9 * 0.25)
    assert S.cosine_restarts(1.0, T_0=10, T_mult=1, m_mul=0.5)(25) == pytest.approx(
        0.25 * (1 + np.cos(np.pi * 0.5)) / 2
    )
    with pytest.raises(ValueError, match="cycle must be true or false"):
        S.polynomial(0.1, total_steps=10, cycle="yes")
    with pytest.raises(ValueError, match="m_mul"):
        S.cosine_restarts(0.1, T_0=10, m_mul=-1)


@pytest.mark.parametrize(
    "step", [np.float32(5.5), np.float16(5.5), np.int64(5), np.uint8(5), np.array(5.5)]
)
def test_numpy_scalar_steps_give_the_float64_value_without_warnings(step):
    s = S.cosine(0.1, total_steps=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert s(step) == s(float(step)) == s.values([float(step)])[0]


@pytest.mark.parametrize(
    "bad",
    ["3", None, [1], 1 + 2j, True, b"3", np.array(True), np.bool_(1), np.complex128(1 + 5j),
     np.array(1 + 0j)],
)  # fmt: skip
def test_a_step_that_is_not_a_number_is_a_type_error_naming_step(bad):
    with pytest.raises(TypeError, match=r"^step must be a number \(an int, or a float"):
        S.cosine(0.1, total_steps=100)(bad)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "abc",
        ["3"],
        [True, False],
        [1j],
        [True],
        [True, 2],
        (2.5, False),
        [[1, True]],
        np.array([True, 2], dtype=object),
        [np.bool_(True), 3],
    ],
)
def test_steps_that_are_not_numbers_are_a_type_error_naming_steps(bad):
    with pytest.raises(TypeError, match=r"^steps must be an array-like of numbers, got "):
        S.cosine(0.1, total_steps=100).values(bad)


def test_a_string_among_numbers_in_an_object_array_is_not_a_step():
    steps = np.array([1, "3"], dtype=object)  # numpy would read "3" as 3.0
    with pytest.raises(TypeError, match=r"^steps must be an array-like of numbers: .*got '3'$"):
        S.cosine(0.1, total_steps=100).values(steps)


@pytest.mark.parametrize("one", [np.array([3.0]), np.array([3]), np.array([[3.0]])])
def test_a_one_element_array_is_not_one_step(one):
    with pytest.raises(TypeError, match=r"^step must be a number"):
        S.cosine(0.1, total_steps=100)(one)


def test_values_reads_tensors_as_the_scalar_path_reads_them():
    """values() of a torch tensor (bfloat16, one that requires grad) or a JAX bfloat16 array:
    the values of its steps, as the scalar path reads each; bool and complex ones refused."""
    torch = pytest.importorskip("torch")
    s = S.exponential(0.1, gamma=0.97)
    want = s.values([2.0, 3.0])
    for steps in (
        torch.tensor([2.0, 3.0], dtype=torch.bfloat16),
        torch.tensor([2.0, 3.0], requires_grad=True),
        torch.tensor([2, 3]),
    ):
        got = s.values(steps)
        assert got.dtype == np.float64 and np.array_equal(got, want)
        assert [s(t) for t in steps] == want.tolist()
    jnp = pytest.importorskip("jax.numpy")
    assert np.array_equal(s.values(jnp.asarray([2, 3], jnp.bfloat16)), want)
    for bad in (torch.tensor([True]), torch.tensor([1 + 1j])):
        with pytest.raises(TypeError, match=r"^steps must be an array-like of numbers, got tensor"):
            s.values(bad)


def test_a_custom_scalar_formula_that_math_refuses_gives_what_values_gives() -> None:
    """A family's own ``_at`` in plain ``math`` may raise where the float64 array formula
    gives NaN (``math.cos(inf)``): the step's value is then the array formula's."""
    from lrkit.schedules import Schedule

    class Swing(Schedule):
        name = "lrkit_test_swing"
        params = ("lr",)

        def __init__(self, lr: float) -> None:
            self.lr = float(lr)

        def _at(self, t: float) -> float:
            return self.lr * math.cos(t * 1e300 * 1e300)

        def _values(self, t, xp):  # noqa: ANN001, ANN202
            return self.lr * xp.cos(t * 1e300 * 1e300)

    s = Swing(0.5)
    assert s(0) == 0.5
    assert math.isnan(s(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert math.isnan(s.values([1])[0])


def test_a_step_of_negative_zero_is_step_0() -> None:
    s = S.inverse_sqrt(0.1, warmup_steps=10)
    assert math.copysign(1.0, s(-0.0)) == math.copysign(1.0, s.values([-0.0])[0]) == 1.0


def test_a_one_element_tensor_is_not_one_step_either():
    torch = pytest.importorskip("torch")
    s = S.cosine(0.1, total_steps=100)
    for one in (torch.tensor([3.0]), torch.tensor([3])):
        with pytest.raises(TypeError, match=r"^step must be a number"):
            s(one)
    assert s(torch.tensor(3.0)) == s(3) == s(torch.tensor(3))  # 0-d: one step


def test_a_zero_d_bool_or_complex_tensor_is_not_a_step():
    torch = pytest.importorskip("torch")
    s = S.cosine(0.1, total_steps=100)
    for bad in (torch.tensor(True), torch.tensor(1 + 1j)):
        with pytest.raises(TypeError, match=r"^step must be a number \(an int, or a float"):
            s(bad)


def test_join_reads_a_huge_integer_step_as_values_does():
    # an int beyond 2**53 is the nearest float64 on both paths (values() converts so)
    tail = S.piecewise_constant([2**53 - 5], values=[0.1, 0.2])
    s = S.join([S.constant(0.3), tail], boundaries=[5])
    for t in (2**53 + 1, 2**53 + 3, 2**60 + 1, 2**80 + 12345):
        assert s(t) == s.values([t])[0] == s(float(t))
    assert s(2**53 + 1) == 0.1  # 2**53 + 1 reads as 2**53: segment step 2**53 - 5
    assert S.cosine(0.1, total_steps=10)(2**60 + 1) == 0.0


def test_zero_d_and_one_d_steps_agree_bit_for_bit():
    s = S.exponential(0.1, gamma=0.9)
    ts = np.arange(0.0, 400.0)
    vec = s.values(ts)
    assert [float(s.values(t)) for t in ts] == vec.tolist() == [s(float(t)) for t in ts]
    assert s.values(np.array(2.0)).shape == ()


@pytest.mark.parametrize(
    "other",
    [
        S.exponential(0.1, gamma=2.0),
        S.step(0.1, step_size=3, gamma=10.0),
        S.cyclic(0.1, max_lr=0.2, step_size_up=3, mode="exp_range", gamma=2.0),
        S.cosine_restarts(0.1, T_0=3, m_mul=3.0),
        S.join([S.constant(0.1), S.exponential(0.1, gamma=1.5)], boundaries=[2]),
        S.exponential(0.1, gamma=2.0).clamp(min_lr=0.01),
    ],
)
def test_a_product_held_at_zero_is_not_held_where_another_factor_reaches_inf(other):
    from lrkit.schedules.tables import horizon, value_table

    s = S.mul(S.linear(0.1, end_lr=0.0, total_steps=5), other)
    table = value_table(s, limit=64, dtype=np.float32)
    assert horizon(s) is None and table.beyond != "hold"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        far = s.values([10**6])[0]
    assert far == 0.0 and not math.copysign(1.0, far) < 0  # 0 times inf: 0, not NaN
    assert s(10**6) == 0.0


def test_a_product_held_at_zero_with_bounded_factors_still_holds():
    from lrkit.schedules.tables import horizon, value_table

    ramp = S.linear(0.1, end_lr=0.0, total_steps=5)
    for other in (
        S.exponential(0.1, gamma=0.9),
        S.cyclic(0.01, max_lr=0.1, step_size_up=7),
        # a cyclic gamma of 1, or one its mode does not read, grows nothing
        S.cyclic(0.01, max_lr=0.1, step_size_up=7, mode="exp_range", gamma=1.0),
        S.cyclic(0.01, max_lr=0.1, step_size_up=7, mode="triangular2", gamma=2.0),
    ):
        s = S.mul(ramp, other)
        assert horizon(s) == 5
        table = value_table(s, limit=64, dtype=np.float32)
        assert table.beyond == "hold"
        t = np.arange(0, 5000)
        np.testing.assert_array_equal(table.values[table.index(t)], s.values(t).astype(np.float32))


@pytest.mark.parametrize(
    "s",
    [
        S.cosine(1e308, total_steps=100),
        S.cosine_restarts(1e308, T_0=10, T_mult=2),
        S.cosine_restarts(1e308, T_0=10, m_mul=0.5),
        S.warmup_cosine(1e307, end_lr=1e308, warmup_steps=50),
        S.wsd(1e308, total_steps=100, warmup_steps=10, decay="cosine"),
        S.onecycle(1e308, total_steps=100),
    ],
    ids=lambda s: s.name,
)
def test_a_cosine_of_the_largest_rates_stays_finite_and_within_its_range(s):
    t = np.arange(0, 120)
    vec = s.values(t)
    scalar = np.array([s(int(x)) for x in t])
    assert np.isfinite(vec).all() and np.isfinite(scalar).all()
    assert vec.max() <= 1e308 and vec.min() >= 0.0
    np.testing.assert_allclose(vec, scalar, rtol=1e-12)


def test_a_warmup_of_0_steps_is_end_lr_from_step_0() -> None:
    import warnings

    from lrkit import schedules as S

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0 / 0 on the vectorized path
        for mode in ("linear", "cosine", "exponential"):
            w = S.warmup(0.5, end_lr=2.0, warmup_steps=0, mode=mode)
            assert w.values([0, 1, 10**9]).tolist() == [2.0, 2.0, 2.0]
            assert [w(0), w(3.5)] == [2.0, 2.0] and w.length == 0
            assert S.parse(str(w)) == w
    with pytest.raises(ValueError, match=r"^warmup_steps must be an integer in \[0, 2\*\*53\]"):
        S.warmup(0.5, end_lr=2.0, warmup_steps=-1)


def test_a_compiled_step_schedule_drops_at_every_multiple_of_its_step_size() -> None:
    """Under ``jax.jit`` in float32, ``t / 41`` is computed as ``t * (1 / 41)`` and lands just
    below the whole quotient at 41, 82, 164, ...: the decay still comes at those steps."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    s = S.step(1.0, step_size=41, gamma=0.5)
    steps = [0.0, 40.0, 41.0, 82.0, 164.0, 287.0]
    got = jax.jit(lambda t: s.values(t, xp=jnp))(jnp.asarray(steps, dtype=jnp.float32))
    assert np.asarray(got).tolist() == s.values(steps).tolist()
    assert s.values(steps).tolist() == [1.0, 1.0, 0.5, 0.25, 0.0625, 0.0078125]


def test_a_float32_trace_of_a_slow_exponential_decay_keeps_its_value_far_out() -> None:
    """``0.99999 ** 2**21`` in float32 (the factor rounded first) is 3% high; the traced
    formula stays within float32's rounding of the float64 value."""
    jnp = pytest.importorskip("jax.numpy")

    s = S.exponential(0.1, gamma=0.99999)
    t = jnp.asarray([0.0, 2.0**21], dtype=jnp.float32)
    got = np.asarray(s.values(t, xp=jnp), dtype=np.float64)
    np.testing.assert_allclose(got, s.values([0, 2**21]), rtol=1e-5)


def test_values_with_a_namespace_evaluates_the_formula_in_the_steps_own_dtype() -> None:
    s = S.cosine(0.1, total_steps=100)
    steps = np.asarray([0, 10, 100], dtype=np.float32)
    got = s.values(steps, xp=np)
    assert got.dtype == np.float32 and got.shape == (3,)
    np.testing.assert_allclose(got, s.values([0, 10, 100]), rtol=1e-6)


def test_a_compiled_polynomial_is_exactly_end_lr_from_total_steps_on() -> None:
    """Under ``jax.jit`` in float32, ``1 - 25 / 25`` computes as ``1 - 25 * (1 / 25)``, a
    hair above 0; a square-root decay still reaches exactly ``end_lr`` at and after the end."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    s = S.polynomial(0.1, total_steps=25, power=0.5)
    got = jax.jit(lambda t: s.values(t, xp=jnp))(jnp.asarray([25.0, 30.0], dtype=jnp.float32))
    assert np.asarray(got).tolist() == [0.0, 0.0]
    s = S.polynomial(0.1, total_steps=25, power=0.5, end_lr=0.25)
    got = jax.jit(lambda t: s.values(t, xp=jnp))(jnp.asarray([25.0, 1e6], dtype=jnp.float32))
    assert np.asarray(got).tolist() == [np.float32(0.25)] * 2


def _table_matches_the_values(s, table, stop=3000):
    t = np.arange(0, stop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = s.values(t).astype(np.float32)
    np.testing.assert_array_equal(table.values[table.index(t)], want)


_RAMP = S.linear(0.1, end_lr=0.0, total_steps=5)


@pytest.mark.parametrize(
    "s,h",
    [
        (S.constant(0.1), 0),
        (S.onecycle(0.1, total_steps=50), 49),
        (S.warmup(0.0, end_lr=0.1, warmup_steps=8), 8),
        (S.multistep(0.1, milestones=[3, 9], gamma=0.5), 9),
        (S.step(0.1, step_size=3, gamma=1.0), 0),
        (S.step(0.1, step_size=3, gamma=0.5), None),
        (S.step(0.0, step_size=3, gamma=2.0), 0),
        (S.wsd(0.1, total_steps=50, warmup_steps=5), 50),
        (S.exponential(0.0, gamma=2.0), 0),
        (S.inverse_time(0.1, decay_steps=10, decay_rate=0.0), 0),
        (S.inverse_time(0.1, decay_steps=10, decay_rate=0.5), None),
        (S.piecewise_constant([5.5], values=[0.1, 0.2]), 6),
        (S.join([S.constant(0.1), S.cosine(0.1, total_steps=20)], boundaries=[7]), 27),
        (S.cosine(0.1, total_steps=20) + S.linear(0.0, end_lr=0.1, total_steps=30), 30),
        # a factor held at 0 from step 5 on; the others finite there or everywhere
        (
            S.mul(
                _RAMP,
                S.exponential(0.1, gamma=0.9),
                S.cosine(0.1, total_steps=5) + S.constant(0.1),
            ),
            5,
        ),
        (S.mul(_RAMP, S.exponential(0.1, gamma=0.9).clamp(max_lr=0.05)), 5),
    ],
    ids=str,
)
def test_a_value_table_holds_from_the_horizon_and_is_exact_at_every_step(s, h):
    from lrkit.schedules.tables import horizon, value_table

    assert horizon(s) == h
    table = value_table(s, limit=4096, dtype=np.float32)
    if h is not None:
        assert table.beyond == "hold" and table.size == h + 1
    _table_matches_the_values(s, table)


_CYCLE = S.cyclic(0.0, max_lr=0.1, step_size_up=4)  # 8 steps a cycle
_RESTARTS = S.cosine_restarts(0.2, T_0=6)


@pytest.mark.parametrize(
    "s,p",
    [
        (_CYCLE, (0, 8)),
        (_RESTARTS, (0, 6)),
        (S.cyclic(0.0, max_lr=0.1, step_size_up=4, mode="triangular2"), None),
        (S.cosine_restarts(0.2, T_0=6, T_mult=2), None),
        # a cycle of a fractional number of steps: no whole period
        (S.cyclic(0.0, max_lr=0.1, step_size_up=2.5, step_size_down=3), None),
        (S.cosine_restarts(0.2, T_0=6.5), None),
        (S.join([S.constant(0.1), _CYCLE], boundaries=[5]), (5, 8)),
        (2.0 * _CYCLE, (0, 8)),
        (_CYCLE.clamp(max_lr=0.05), (0, 8)),
        (_CYCLE + _RESTARTS, (0, 24)),
        (S.sub(_RESTARTS, b=_CYCLE), (0, 24)),
        (_CYCLE + S.cosine(0.1, total_steps=30), (30, 8)),
        (S.cosine(0.1, total_steps=30) + S.constant(0.1), None),
    ],
    ids=str,
)
def test_a_periodic_value_table_wraps_after_its_offset(s, p):
    from lrkit.schedules.tables import period, value_table

    assert period(s) == p
    if p is None:
        return
    table = value_table(s, limit=200, dtype=np.float32)
    offset, per = p
    assert (table.beyond, table.offset, table.period) == ("periodic", offset, per)
    assert table.size == offset + per * ((200 - offset) // per)
    _table_matches_the_values(s, table)


@pytest.mark.parametrize(
    "s",
    [
        S.step(0.1, step_size=10, gamma=0.5),
        S.exponential(0.1, gamma=0.99),  # ~10000 steps to reach float32's 0
        S.scale(S.exponential(0.1, gamma=0.5), factor=1e30),
        S.join([S.constant(0.1), S.exponential(0.1, gamma=0.5)], boundaries=[1000]),
    ],
    ids=str,
)
def test_a_value_table_holds_at_0_once_the_rounded_value_has_decayed_to_it(s):
    from lrkit.schedules.tables import horizon, value_table

    assert horizon(s) is None
    table = value_table(s, limit=1 << 14, dtype=np.float32)
    assert table.beyond == "hold" and table.values[-1] == 0.0 and table.values[-2] > 0.0
    _table_matches_the_values(s, table, stop=1 << 15)


def test_a_value_table_that_just_fits_its_limit_holds_or_wraps():
    from lrkit.schedules.tables import value_table

    held = value_table(S.cosine(0.1, total_steps=63), limit=64)
    assert (held.beyond, held.size) == ("hold", 64)
    wrapped = value_table(S.join([S.constant(0.1), _CYCLE], boundaries=[5]), limit=13)
    assert (wrapped.beyond, wrapped.size, wrapped.offset, wrapped.period) == ("periodic", 13, 5, 8)


def test_a_value_table_by_default_holds_up_to_2_to_the_20_entries():
    from lrkit.schedules.tables import TABLE_LIMIT, value_table

    table = value_table(S.inverse_sqrt(0.1, warmup_steps=10))
    assert TABLE_LIMIT == 1 << 20 and (table.beyond, table.size) == ("formula", 1 << 20)


def test_a_value_table_indexes_each_step_it_holds_to_itself():
    """``values[i]`` is step ``i``'s value for every ``i`` below the size: a step inside the
    table is never wrapped, also the last one of a periodic table."""
    from lrkit.schedules.tables import value_table

    for s in (
        S.join([S.constant(0.1), _CYCLE], boundaries=[5]),
        _RESTARTS,
        S.cosine(0.1, total_steps=20),
        S.inverse_sqrt(0.1, warmup_steps=10),
    ):
        table = value_table(s, limit=64)
        inside = np.arange(table.size)
        assert table.index(inside).tolist() == inside.tolist(), s


def test_a_value_table_of_a_subclass_of_a_family_is_not_read_as_the_family():
    """A subclass that changes the formula is not given its parent's horizon."""
    from lrkit.schedules.tables import horizon, period, value_table

    class Repeating(S.Cosine):  # a cosine that starts over every total_steps
        def _at(self, t):  # noqa: ANN001, ANN202
            return super()._at(t % self.total_steps)

        def _values(self, t, xp):  # noqa: ANN001, ANN202
            return super()._values(t % self.total_steps, xp)

    s = Repeating(0.1, total_steps=10)
    assert s(12) == S.cosine(0.1, total_steps=10)(2) != s(10)
    assert horizon(s) is None and period(s) is None
    table = value_table(s, limit=64)
    assert (table.beyond, table.size) == ("formula", 64)
    assert table.values.tolist() == s.values(np.arange(64)).astype(np.float32).tolist()


def test_a_value_table_of_a_schedule_already_below_the_smallest_float_is_0():
    """A decay that starts where ``dtype`` rounds it to 0 holds 0 from step 0; a scale by 0
    of one holds 0 too."""
    from lrkit.schedules.tables import value_table

    for s in (
        S.exponential(1e-50, gamma=0.9),
        S.step(1e-60, step_size=4, gamma=0.5),
        0 * S.exponential(0.1, gamma=0.5),
        S.scale(S.step(0.1, step_size=4, gamma=0.5), factor=0.0),
    ):
        table = value_table(s, limit=64, dtype=np.float32)
        assert (table.beyond, table.values.tolist()) == ("hold", [0.0]), s
        _table_matches_the_values(s, table)


def test_a_value_table_refuses_what_is_not_a_schedule_naming_it():
    from lrkit.schedules.tables import value_table

    with pytest.raises(ValueError) as info:
        value_table("cosine(0.1, 10)")  # type: ignore[arg-type]
    assert str(info.value) == "s must be a lrkit schedule, got 'cosine(0.1, 10)'"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"limit": 1}, "limit must be an integer >= 2 (allowed range: [2, inf)), got 1"),
        ({"scale": -1}, "scale must be >= 0 (allowed range: [0, inf)), got -1"),
        ({"dtype": np.int32}, "dtype must be a floating dtype, got <class 'numpy.int32'>"),
        ({"dtype": "nope"}, "dtype must be a floating dtype, got 'nope'"),
    ],
)
def test_a_value_table_refuses_a_bad_argument_naming_it(kwargs, message):
    from lrkit.schedules.tables import value_table

    with pytest.raises(ValueError) as info:
        value_table(S.constant(0.1), **kwargs)
    assert str(info.value) == message


def test_a_value_table_and_host_values_in_bfloat16_and_scaled():
    jnp = pytest.importorskip("jax.numpy")
    from lrkit.schedules.tables import host_values, value_table

    s = S.cosine(0.1, total_steps=10)
    table = value_table(s, dtype=jnp.bfloat16, scale=2.0)
    assert table.values.dtype == jnp.bfloat16
    assert table.values.tolist() == (2.0 * s.values(np.arange(11))).astype(jnp.bfloat16).tolist()
    got = host_values(s, [-3, 0, 5], scale=2.0)
    assert got.dtype == np.float32
    assert got.tolist() == np.float32([0.2, 0.2, 2.0 * s(5)]).tolist()


def test_a_value_table_of_a_function_composite_refuses_a_nan_step():
    from lrkit.schedules.tables import value_table

    grow = S.exponential(0.1, gamma=2.0)  # inf past ~1030 steps: inf - inf is NaN
    s = (grow - grow) + S.function(lambda t: 1.0, lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(
            ValueError,
            match=r" must be >= 0 at every step \(a learning rate\), got nan at step 10\d\d$",
        ):
            value_table(s, limit=1100)


@pytest.mark.parametrize("three_phase", [False, True])
def test_a_one_cycle_in_another_array_namespace_holds_its_last_value_past_the_end(three_phase):
    jnp = pytest.importorskip("jax.numpy")
    s = S.onecycle(0.1, total_steps=100, three_phase=three_phase)
    steps = [0.0, 50.0, 99.0, 100.0, 150.0, 1e6]
    got = np.asarray(s.values(np.asarray(steps), xp=jnp), dtype=np.float64)
    np.testing.assert_allclose(got, s.values(steps), rtol=1e-6)
    assert s.values(steps)[3:].tolist() == [s(99)] * 3


def test_a_wsd_with_square_root_shapes_has_a_finite_derivative_at_every_step():
    """The 1-sqrt warmup and decay are flat where the ramp is done or the decay not begun:
    their derivative with respect to the step is 0 there, not NaN from sqrt's slope at 0."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    s = S.wsd(1.0, total_steps=10, warmup_steps=2, warmup="1-sqrt")
    slope = jax.grad(lambda t: s.values(t, xp=jnp))
    got = [float(slope(jnp.float32(t))) for t in (0.0, 1.0, 2.0, 5.0, 9.0, 10.0, 12.0)]
    assert got == pytest.approx([0.25, 0.5**1.5, 0.0, 0.0, -(0.5**1.5), 0.0, 0.0], rel=1e-6)


def test_inverse_sqrt_without_warmup_computes_no_ramp_and_warns_of_nothing():
    s = S.inverse_sqrt(0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0 / 0 of a ramp over 0 steps
        got = s.values([0, 5, 100]).tolist()
    want = [0.1, 0.1 * math.sqrt(10_000 / 10_005), 0.1 * math.sqrt(10_000 / 10_100)]
    assert got == [s(0), s(5), s(100)] == want


@pytest.mark.parametrize("T_mult", [2, 1.5, 1.9, 1e10, 2.0**53])
def test_restarts_at_steps_near_the_largest_float_stay_within_their_bounds(T_mult: float) -> None:
    """Growing cycles at steps up to float64's largest: a value in ``[eta_min, lr]`` on both
    paths, the same bits (``pi * t_cur`` and ``t / T_0 * (T_mult - 1)`` once overflowed to
    inf, and the value read NaN)."""
    s = S.cosine_restarts(0.1, T_0=10, T_mult=T_mult, eta_min=0.001)
    steps = np.array([0.0, 5.0, 1e300, 1e307, 1.7e308, np.finfo(np.float64).max])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the later cycles' starts overflow
        values = s.values(steps)
    assert values.tolist() == [s(float(t)) for t in steps]
    assert all(0.001 <= v <= 0.1 for v in values)
