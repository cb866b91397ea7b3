"""lrkit.optax.schedule's default path: the value table inside the compiled step (no host call),
exact where the table reaches, and what holds past its end; lrkit.schedules.tables itself."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("optax")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import lrkit.optax as lo  # noqa: E402
from lrkit import schedules as S  # noqa: E402
from lrkit.schedules.tables import TABLE_LIMIT, horizon, period, value_table  # noqa: E402

KINDS = {
    "constant": (S.constant(0.1), "hold", 1),
    "cosine": (S.cosine(0.1, total_steps=5000, eta_min=1e-5), "hold", 5001),
    "polynomial": (S.polynomial(0.1, total_steps=800, power=2.0, end_lr=1e-4), "hold", 801),
    "linear": (S.linear(0.0, end_lr=0.1, total_steps=700), "hold", 701),
    "onecycle": (S.onecycle(0.1, total_steps=1000, three_phase=True), "hold", 1000),
    "onecycle_momentum": (S.onecycle_momentum(1000), "hold", 1000),
    "warmup": (S.warmup_exponential(1e-4, end_lr=0.1, warmup_steps=500), "hold", 501),
    "wsd": (S.wsd(0.1, total_steps=1000, warmup_steps=20, decay="cosine"), "hold", 1001),
    "multistep": (S.multistep(0.1, milestones=[100, 500, 3000], gamma=0.3), "hold", 3001),
    "piecewise": (S.piecewise_constant([100, 2000.5], values=[0.1, 0.01, 0.001]), "hold", 2002),
    "step decays to 0": (S.step(0.1, step_size=100, gamma=0.1), "hold", 4501),
    "exponential decays to 0": (S.exponential(0.1, gamma=0.99), "hold", None),
    "join": (S.with_warmup(S.cosine(0.1, total_steps=900), warmup_steps=100), "hold", 1001),
    "product ending at 0": (
        S.cosine(0.1, total_steps=900) * S.exponential(1.0, gamma=0.9999),
        "hold",
        901,
    ),
    "clamp": (S.linear(0.1, end_lr=0.0, total_steps=90).clamp(min_lr=0.01), "hold", 91),
    "sum": (
        S.cosine(0.1, total_steps=900) + S.warmup(0.0, end_lr=0.01, warmup_steps=50),
        "hold",
        901,
    ),
    "polynomial cycle": (S.polynomial(0.1, total_steps=800, cycle=True), "formula", TABLE_LIMIT),
    "cosine_restarts m_mul": (S.cosine_restarts(0.1, T_0=300, m_mul=0.5), "formula", None),
    "cyclic": (S.cyclic(1e-4, max_lr=1e-2, step_size_up=200, step_size_down=100), "periodic", None),
    "cosine_restarts T_mult=1": (S.cosine_restarts(0.1, T_0=300, T_mult=1), "periodic", None),
    "join into cyclic": (
        S.join([S.constant(0.0), S.cyclic(0.0, max_lr=0.1, step_size_up=50)], boundaries=[77]),
        "periodic",
        None,
    ),
    "cyclic times a constant": (
        S.cyclic(1e-4, max_lr=1e-2, step_size_up=200, step_size_down=100) * S.constant(0.5),
        "periodic",
        None,
    ),
    "clamped cosine_restarts": (
        S.cosine_restarts(0.1, T_0=300).clamp(min_lr=1e-3),
        "periodic",
        None,
    ),
    "a constant minus cyclic": (
        0.95 - S.cyclic(1e-4, max_lr=1e-2, step_size_up=200, step_size_down=100),
        "periodic",
        None,
    ),
    "sum of two periods, after a hold": (
        S.cyclic(1e-4, max_lr=1e-2, step_size_up=200, step_size_down=100)
        + S.cosine_restarts(0.1, T_0=200)
        + S.linear(0.1, end_lr=0.0, total_steps=50),
        "periodic",
        None,
    ),
    "difference of two holds": (
        S.sub(S.constant(0.95), b=S.cosine(0.1, total_steps=900)),
        "hold",
        901,
    ),
    "cyclic times a decay": (
        S.cyclic(1e-4, max_lr=1e-2, step_size_up=200) * S.exponential(1.0, gamma=0.99999),
        "formula",
        TABLE_LIMIT,
    ),
    "exponential": (S.exponential(0.1, gamma=0.99999), "formula", TABLE_LIMIT),
    "inverse_sqrt": (S.inverse_sqrt(0.1, warmup_steps=400), "formula", TABLE_LIMIT),
    "cyclic triangular2": (
        S.cyclic(1e-4, max_lr=1e-2, step_size_up=150, step_size_down=50, mode="triangular2"),
        "formula",
        None,
    ),
    "cosine_restarts T_mult=2": (S.cosine_restarts(0.1, T_0=100, T_mult=2), "formula", None),
}


def _ulps(a: np.ndarray, b: np.ndarray) -> int:
    a32 = np.asarray(a, np.float32).view(np.int32).astype(np.int64)
    b32 = np.asarray(b, np.float32).view(np.int32).astype(np.int64)
    return int(np.max(np.abs(a32 - b32), initial=0))


@pytest.mark.parametrize("name", sorted(KINDS))
def test_value_table_kind_size_and_exact_entries(name):
    s, beyond, size = KINDS[name]
    vt = value_table(s)
    assert vt.beyond == beyond
    if size is not None:
        assert vt.size == size
    assert vt.values.dtype == np.float32
    ref = s.values(np.arange(vt.size)).astype(np.float32)
    np.testing.assert_array_equal(vt.values, ref)
    if beyond == "hold":  # exact at every later step, integer or not
        far = np.array([vt.size - 1, vt.size, vt.size + 0.5, 10**6, 10**9, 1e15])
        np.testing.assert_array_equal(
            s.values(far).astype(np.float32), np.full(far.shape, vt.values[-1])
        )
    if beyond == "periodic":
        assert (vt.size - vt.offset) % vt.period == 0
        t = np.arange(vt.size, vt.size + 3 * vt.period)
        assert _ulps(vt.values[vt.index(t)], s.values(t)) <= 1


@pytest.mark.parametrize("evaluation", ["table", "formula"])
def test_the_derivative_with_respect_to_a_real_step_is_the_formulas(evaluation):
    """jax.grad with respect to the step: the formula's derivative, also at whole steps the
    table holds (its constants gave 0 there without a word), as optax's own schedule; a
    schedule holding a Python callable has none, said in one line."""
    ours = lo.schedule(S.cosine(1e-3, total_steps=100), evaluation=evaluation)
    theirs = optax.cosine_decay_schedule(1e-3, 100)
    for t in (30.0, 30.5, 77.0):
        assert float(jax.grad(ours)(t)) == pytest.approx(float(jax.grad(theirs)(t)), rel=1e-5)
        assert float(jax.grad(ours)(t)) < 0
    # a warmup-stable-decay's 1-sqrt decay: no NaN where the decay has not begun (sqrt at 0)
    wsd = lo.schedule(S.wsd(1e-2, total_steps=300, warmup_steps=20, decay_steps=50),
                      evaluation=evaluation)  # fmt: skip
    assert [float(jax.grad(wsd)(t)) for t in (5.0, 100.0)] == pytest.approx([5e-4, 0.0])
    assert float(jax.grad(wsd)(260.0)) < 0
    if evaluation == "table":  # the value is still the table's, rounded once
        assert float(ours(30.0)) == float(np.float32(S.cosine(1e-3, total_steps=100)(30)))
        fn = lo.schedule(S.function(lambda t: 0.5, lr=1e-3, length=100))
        with pytest.raises(ValueError, match=r"holds a Python callable, which has no derivative"):
            jax.grad(fn)(3.0)


def test_value_table_scale_dtype_limit_and_errors():
    s = S.cosine(0.1, total_steps=100)
    vt = value_table(s, scale=0.25, dtype=np.float64)
    assert vt.values.dtype == np.float64
    np.testing.assert_array_equal(vt.values, s.values(np.arange(101)) * 0.25)
    small = value_table(s, limit=50)
    assert small.beyond == "formula" and small.size == 50
    # exponential's rounded value reaches 0 sooner when scaled down
    e = S.exponential(1.0, gamma=0.9)
    assert value_table(e, scale=1e-30).size < value_table(e).size
    assert value_table(e, scale=0.0).size == 1
    with pytest.raises(ValueError, match="dtype"):
        value_table(s, dtype=np.int32)
    with pytest.raises(ValueError, match="limit"):
        value_table(s, limit=1)
    with pytest.raises(ValueError, match="scale"):
        value_table(s, scale=-1.0)
    with pytest.raises(ValueError, match="s must"):
        value_table("cosine")  # type: ignore[arg-type]


class _RisingCosine(S.Cosine):
    """Not the registered family: it rises again after total_steps (PyTorch's shape)."""

    def _values(self, t, xp):
        return (
            self.eta_min + (self.lr - self.eta_min) * (1 + xp.cos(np.pi * t / self.total_steps)) / 2
        )


def test_unknown_shapes_are_not_assumed():
    # a subclass or an unknown parameter gives no horizon: the table is exact up to its end
    # and the formula takes over after it
    s = _RisingCosine(0.1, total_steps=100)
    assert horizon(s) is None and period(s) is None
    f = jax.jit(lo.schedule(s, table_limit=1000))
    t = jnp.arange(3000, dtype=jnp.int32)
    got = np.asarray(f(t))
    ref = s.values(np.arange(3000))
    np.testing.assert_array_equal(got[:1000], ref[:1000].astype(np.float32))
    np.testing.assert_allclose(got[1000:], ref[1000:], rtol=1e-5, atol=1e-6)
    assert got[1150] > got[1100]  # rising again, as the formula says
    assert horizon(S.join([S.cosine(0.1, total_steps=10), s], boundaries=[5])) is None


# ============================================================================ compiled lookup


def test_default_path_has_no_host_call_and_host_path_has_one():
    s = S.with_warmup(S.cosine(0.1, total_steps=900), warmup_steps=100) * S.exponential(
        1.0, gamma=0.9999
    )
    jaxpr = str(jax.make_jaxpr(lo.schedule(s))(jnp.int32(3)))
    assert "callback" not in jaxpr
    assert "callback" in str(jax.make_jaxpr(lo.schedule(s, evaluation="host"))(jnp.int32(3)))
    assert "callback" not in str(jax.make_jaxpr(lo.schedule(s, evaluation="formula"))(3))


@pytest.mark.parametrize("name", sorted(KINDS))
def test_past_the_table(name):
    s, beyond, _ = KINDS[name]
    limit = 600
    f = jax.jit(lo.schedule(s, table_limit=limit))
    t = np.concatenate([np.arange(5000), [10**5, 123_457, 2**24, 2**31 - 1]])
    got = np.asarray(f(jnp.asarray(t, dtype=jnp.int32)))
    ref = s.values(t)
    vt = value_table(s, limit=limit)
    n = vt.size
    np.testing.assert_array_equal(got[:n], ref[:n].astype(np.float32))  # the table: exact
    if vt.beyond == "hold":
        np.testing.assert_array_equal(got, ref.astype(np.float32))  # exact everywhere
    elif vt.beyond == "periodic":
        assert _ulps(got, ref) <= 1
    else:  # the traced formula (float32) past the table: what evaluation="formula" gives
        formula = np.asarray(jax.jit(lo.schedule(s, evaluation="formula"))(jnp.asarray(t[n:])))
        np.testing.assert_array_equal(got[n:], formula)


@settings(max_examples=12, deadline=None)
@given(
    w=st.integers(1, 300),
    total=st.integers(2, 2000),
    gamma=st.floats(0.9, 0.99999),
    cut=st.integers(1, 3000),
    steps=st.lists(st.integers(0, 10**7), min_size=1, max_size=20),
)
def test_compositions_are_exact_where_the_table_reaches(w, total, gamma, cut, steps):
    s = S.join(
        [
            S.with_warmup(S.cosine(0.1, total_steps=total, eta_min=1e-6), warmup_steps=w)
            * S.exponential(1.0, gamma=gamma),
            S.constant(1e-3),
        ],
        boundaries=[cut],
    ).clamp(max_lr=0.08)
    vt = value_table(s)
    assert vt.beyond == "hold"
    f = lo.schedule(s)
    t = np.asarray(steps + list(range(0, min(vt.size + 50, 5000))))
    np.testing.assert_array_equal(
        np.asarray(jax.jit(f)(jnp.asarray(t, jnp.int32))), s.values(t).astype(np.float32)
    )


def test_fractional_negative_and_batched_steps():
    s = S.onecycle(0.1, total_steps=1000)
    f = lo.schedule(s)
    # whole float steps read the table, fractional ones the formula; hold covers t >= end
    t = jnp.asarray([0.0, 10.0, 10.5, 999.0, 999.25, 5000.75], jnp.float32)
    got = np.asarray(jax.jit(f)(t))
    ref = s.values(np.asarray(t, np.float64))
    np.testing.assert_array_equal(got[[0, 1, 3, 4, 5]], ref[[0, 1, 3, 4, 5]].astype(np.float32))
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-5)
    # a negative step reads step 0's value, as optax's own schedules clip their count
    at0 = np.float32(s.values([0])[0])
    assert np.asarray(jax.jit(f)(jnp.int32(-1))) == at0
    assert np.asarray(jax.jit(f)(jnp.float32(-0.5))) == at0
    # any batch shape, vmap, and eager calls give the jitted values
    tb = (jnp.arange(1200, dtype=jnp.int32) * 7).reshape(40, 30)
    expect = s.values(np.asarray(tb)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(jax.vmap(f)(tb)), expect)
    np.testing.assert_array_equal(np.asarray(f(tb)), expect)
    assert float(f(321)) == float(np.float32(s(321)))


def test_evaluation_and_table_limit_are_checked():
    s = S.cosine(0.1, total_steps=100)
    with pytest.raises(ValueError, match="evaluation"):
        lo.schedule(s, evaluation="fast")
    with pytest.raises(ValueError, match="table_limit"):
        lo.schedule(s, table_limit=0)
    with pytest.raises(TypeError):
        lo.schedule(s, "host")  # keyword-only


_X64_CHECK = """
import numpy as np, jax, jax.numpy as jnp
import lrkit.optax as lo
from lrkit import schedules as S
assert jax.config.jax_enable_x64
s = S.exponential(0.1, gamma=0.99999)
t = np.array([0, 5, 999, 1000, 4000, 123456, 3_000_000])
f32 = jax.jit(lo.schedule(s, table_limit=1000))(jnp.asarray(t))
assert f32.dtype == jnp.float32
ref = s.values(t)
# the table, then the formula traced in float64 and rounded once
assert np.array_equal(np.asarray(f32), ref.astype(np.float32)), (np.asarray(f32), ref)
f64 = jax.jit(lo.schedule(s, dtype=jnp.float64, table_limit=1000))(jnp.asarray(t))
assert f64.dtype == jnp.float64
assert np.allclose(np.asarray(f64), ref, rtol=1e-12, atol=0)
assert np.array_equal(np.asarray(f64)[:4], ref[:4])
print("ok")
"""


def test_float64_with_x64_enabled():
    env = dict(os.environ, JAX_ENABLE_X64="1")
    out = subprocess.run(
        [sys.executable, "-c", _X64_CHECK], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


_FLOOR_CHECK = """
import numpy as np, jax, jax.numpy as jnp
from lrkit import schedules as S
x64 = jax.config.jax_enable_x64
dtype = jnp.float64 if x64 else jnp.float32
for s, c in [(S.step(0.1, step_size=837, gamma=0.9), 837),
             (S.cosine_restarts(0.1, T_0=49), 49),
             (S.inverse_time(0.1, decay_steps=49, decay_rate=1.0, staircase=True), 49)]:
    # a compiled division (t * (1 / c)) lands below whole quotients at multiples of c
    # (500 periods: values stay normal floats, which XLA does not flush to 0)
    t = np.unique(np.concatenate([np.arange(0, 500 * c, c), np.arange(0, 500 * c, c) - 1]))
    t = t[t >= 0]
    ref = s.values(t)
    got = np.asarray(jax.jit(lambda x: s.values(x, xp=jnp))(jnp.asarray(t, dtype=dtype)))
    if x64:
        assert np.allclose(got, ref, rtol=1e-12, atol=0), (s, t[~np.isclose(got, ref)][:3])
    else:
        # float32 powers and cosines near 0 differ in their last digits; a period missed
        # is a factor gamma (10%) or the cycle's end for its start
        assert np.allclose(got, ref, rtol=1e-3, atol=0), s
print("ok")
"""


@pytest.mark.parametrize("x64", ["0", "1"])
def test_a_compiled_floor_is_exact_at_multiples_of_the_period(x64):
    env = dict(os.environ, JAX_ENABLE_X64=x64)
    out = subprocess.run(
        [sys.executable, "-c", _FLOOR_CHECK], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


def test_tables_module_is_numpy_only():
    code = (
        "import sys, lrkit.schedules.tables\n"
        "print(sorted({'jax', 'optax', 'keras', 'torch'} & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_a_schedule_that_goes_negative_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^schedule must be >= 0 at every step .* at step 0: sub"):
        lo.schedule(S.cosine(0.1, total_steps=10) - 1)


def test_bfloat16_tables_and_a_bad_dtype_name() -> None:
    import ml_dtypes

    s = S.cosine(1e-3, total_steps=50)
    f = lo.schedule(s, dtype=jnp.bfloat16)
    t = np.arange(60)
    want = s.values(t).astype(ml_dtypes.bfloat16)
    assert np.array_equal(np.asarray(jax.jit(jax.vmap(f))(jnp.asarray(t, jnp.int32))), want)
    with pytest.raises(ValueError, match=r"^dtype must be a floating dtype, got 'foo'$"):
        lo.schedule(s, dtype="foo")


@pytest.mark.parametrize("total", [3, 7, 10, 999, 1000, 4097])
@pytest.mark.parametrize("power", [0.5, 1.0, 2.0])
def test_jitted_formula_never_goes_below_the_end_of_a_polynomial_decay(total, power) -> None:
    """XLA turns ``t / T`` into ``t * (1 / T)``: ``1 - t / T`` was a hair below 0 at the end of
    the decay (a negative LR, NaN for a fractional power). The jitted formula now equals the
    numpy values there: exactly ``end_lr`` from ``total_steps`` on."""
    s = S.polynomial(0.1, total_steps=total, power=power)
    f = jax.jit(lo.schedule(s, evaluation="formula"))
    t = np.arange(0, 3 * total + 2)
    got = np.asarray(f(jnp.asarray(t, jnp.int32)))
    assert np.all(got[total:] == 0.0)
    np.testing.assert_allclose(got, s.values(t), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("s", "rtol"),
    [
        (S.exponential(0.1, gamma=0.99999), 3e-6),
        (S.exponential(0.1, gamma=0.999999), 3e-6),
        (S.exponential(1e-3, gamma=1.000001), 3e-6),
        (S.cyclic(1e-4, max_lr=1e-2, step_size_up=2000, mode="exp_range", gamma=0.99999), 2e-4),
    ],
)
def test_float32_formula_of_a_slow_decay_stays_accurate_over_millions_of_steps(s, rtol) -> None:
    """``gamma ** t`` traced in float32 rounds ``gamma`` first, an error ``t`` multiplies:
    ``exponential(0.1, gamma=0.99999)`` was 2.8% high at step 2**21 and 5.5% at 2**22 (optax's
    own ``exponential_decay`` still is). The traced formula computes ``exp(t * log(gamma))``
    with ``log(gamma)`` from the host: within a few float32 roundings at any step."""
    t = np.concatenate([np.arange(0, 4_200_000, 4099), [2**21, 2**22]])
    ref = s.values(t)
    for f in (
        lo.schedule(s, evaluation="formula"),
        lo.schedule(s, table_limit=1000),  # past the table: the same formula
    ):
        got = np.asarray(jax.jit(f)(jnp.asarray(t, jnp.int32)), dtype=np.float64)
        assert got.dtype == np.float64 and np.all(np.isfinite(got))
        np.testing.assert_allclose(got, ref, rtol=rtol, atol=0)


_LEAVES = st.one_of(
    st.builds(lambda n: S.cosine(0.1, total_steps=n, eta_min=1e-4), st.integers(1, 300)),
    st.builds(lambda n: S.onecycle(0.1, total_steps=n), st.integers(10, 300)),
    st.builds(lambda n: S.warmup(0.0, end_lr=0.1, warmup_steps=n), st.integers(1, 100)),
    st.builds(lambda g: S.exponential(0.1, gamma=g), st.floats(0.5, 1.0)),
    st.builds(
        lambda k, g: S.step(0.1, step_size=k, gamma=g), st.integers(1, 50), st.floats(0.1, 1)
    ),
    st.builds(lambda u: S.cyclic(0.01, max_lr=0.1, step_size_up=u), st.integers(1, 40)),
    st.builds(lambda t: S.cosine_restarts(0.1, T_0=t), st.integers(1, 40)),
    st.builds(lambda n: S.inverse_sqrt(0.1, warmup_steps=n), st.integers(0, 50)),
    st.builds(lambda n: S.wsd(0.1, total_steps=n, warmup_steps=n // 4), st.integers(4, 300)),
)
_SCHEDULES = st.recursive(
    _LEAVES,
    lambda kids: st.one_of(
        st.builds(lambda ab: S.mul(*ab), st.tuples(kids, kids)),
        st.builds(lambda ab: S.add(*ab), st.tuples(kids, kids)),
        st.builds(lambda s, f: S.scale(s, factor=f), kids, st.floats(0, 10)),
        st.builds(lambda s, lo_: S.clamp(s, min_lr=lo_), kids, st.floats(0, 0.05)),
        st.builds(
            lambda ab, b: S.join(list(ab), boundaries=[b]),
            st.tuples(kids, kids),
            st.integers(0, 300),
        ),
    ),
    max_leaves=3,
)


@settings(max_examples=25, deadline=None)
@given(s=_SCHEDULES, limit=st.sampled_from([2, 50, 400, 5000]))
def test_table_path_equals_the_rounded_closed_form_on_random_composites(s, limit) -> None:
    """Within the table every step is float32(s.values(t)); past it, a "hold" table still is,
    and a periodic one wraps to within a float32 ulp. (XLA on CPU flushes float32 subnormals
    computed past the table to 0: subnormals are compared as 0.)"""
    f = jax.jit(jax.vmap(lo.schedule(s, table_limit=limit)))
    t = np.concatenate([np.arange(0, 1200), [5000, 10**5, 2**24 + 3, 2**31 - 1]])
    got = np.asarray(f(jnp.asarray(t, jnp.int32)))
    with np.errstate(over="ignore"):
        ref = s.values(t).astype(np.float32)
    tiny = np.finfo(np.float32).tiny
    ref = np.where(np.abs(ref) < tiny, np.float32(0.0), ref)
    got = np.where(np.abs(got) < tiny, np.float32(0.0), got)
    vt = value_table(s, limit=limit)
    inside = t < vt.size
    np.testing.assert_array_equal(got[inside], ref[inside])
    if vt.beyond == "hold":
        np.testing.assert_array_equal(got, ref)
    elif vt.beyond == "periodic":
        assert _ulps(got, ref) <= 1


@pytest.mark.parametrize("evaluation", ["table", "formula"])
@pytest.mark.parametrize(
    "count",
    [2**31, 2**31 + 5, np.int64(2**32), np.int64(2**40), np.array([3, 2**33]), 2**70,
     [np.int64(2**32 + 3)], (np.int64(2**32 + 3),), [[1, 2], [3, 2**40]],
     np.uint64(2**40)],
)  # fmt: skip
def test_a_host_count_beyond_int32_is_a_one_line_error(evaluation, count) -> None:
    # JAX reads np.int64(2**32) as step 0 and raises a multi-line OverflowError for 2**31
    f = lo.schedule(S.cosine(0.1, total_steps=100), evaluation=evaluation)
    big = int(np.max(np.asarray(count)))
    with pytest.raises(
        ValueError,
        match=rf"^count must be an integer in \[0, 2\*\*31 - 1\] without jax_enable_x64 "
        rf"\(JAX reads steps as int32\), got {big}; use evaluation=\"host\" or enable "
        r"jax_enable_x64$",
    ):
        f(count)
    # the largest int32 count, host integers, device arrays and traced counts are read as before
    assert float(f(2**31 - 1)) == 0.0 and float(f(np.int64(5))) == np.float32(
        S.cosine(0.1, total_steps=100)(5)
    )
    assert float(jax.jit(f)(jnp.int32(5))) == float(f(5))
    assert f([1, 2]).tolist() == f(np.array([1, 2])).tolist()  # a list of host integers
    assert f([jnp.int32(5)]).tolist() == [float(f(5))]  # of device arrays: passed on
    host = lo.schedule(S.cosine(0.1, total_steps=100), evaluation="host")
    assert float(host(big)) == 0.0


def test_the_traced_formula_is_scaled() -> None:
    from lrkit._jaxtable import formula_fn

    s = S.cosine(0.1, total_steps=100)
    f = formula_fn(s, np.float32, scale=0.5)
    np.testing.assert_allclose(
        np.asarray(f(jnp.arange(5, 8))), 0.5 * s.values(np.arange(5, 8)), rtol=1e-6
    )


def test_a_host_count_beyond_int32_names_its_first_step_and_the_argument() -> None:
    from lrkit._jaxtable import check_count

    f = lo.schedule(S.cosine(0.1, total_steps=100))
    with pytest.raises(ValueError, match=r"^count must be .*, got 8589934592; use "):
        f(np.array([3, 2**33, 2**40]))
    with pytest.raises(ValueError, match=r"^count must be .*, got -1099511627776; use "):
        f(np.int64(-(2**40)))  # below int32 too
    with pytest.raises(ValueError, match=r"^count must be .*, got -1180591620717411303424; use "):
        f(-(2**70))  # a Python int below int64 too
    with pytest.raises(ValueError, match=r"^step must be an integer in \[0, 2\*\*31 - 1\] "):
        check_count(2**40, name="step")


@pytest.mark.parametrize(
    "s",
    [
        S.cosine(0.1, total_steps=1000),
        S.cyclic(0.01, max_lr=0.1, step_size_up=7),
        S.join([S.constant(0.1), S.cyclic(0.01, max_lr=0.1, step_size_up=7)], boundaries=[5]),
        S.cosine_restarts(0.1, T_0=100),
    ],
    ids=lambda s: s.name,
)
def test_an_unsigned_device_count_past_int32_is_its_own_step(s) -> None:
    # a uint32 step counter past 2**31 - 1 read as int32 would wrap to a negative step
    f = lo.schedule(s)
    t = np.array([3, 10, 2**31 - 1, 2**31, 2**31 + 7, 2**32 - 1], dtype=np.uint32)
    ref = s.values(t.astype(np.float64)).astype(np.float32)
    for got in (f(jnp.asarray(t)), jax.jit(f)(jnp.asarray(t)), jax.vmap(f)(jnp.asarray(t))):
        got = np.asarray(got)
        assert np.isfinite(got).all()
        assert _ulps(got, ref) <= 1
    # and the steps a uint32 counter shares with int32 read the same table entries
    small = jnp.asarray([0, 3, 999, 2**31 - 1], dtype=jnp.uint32)
    np.testing.assert_array_equal(f(small), f(small.astype(jnp.int32)))


@pytest.mark.parametrize(
    "s",
    [
        S.exponential(1e-8, gamma=1.05),
        S.step(1e-8, step_size=10, gamma=2.0),
        S.scale(S.exponential(3.0, gamma=6.9), factor=1e-300),
        S.join([S.constant(0.1), S.exponential(1e-9, gamma=1.1)], boundaries=[5]),
    ],
    ids=lambda s: s.name,
)
def test_a_growing_schedule_that_starts_below_the_smallest_value_is_not_held_at_zero(s) -> None:
    # below the dtype's smallest subnormal at the start is not below it for good when it grows
    f = lo.schedule(s, dtype=jnp.float16)
    t = np.array([0, 10, 100, 300, 500])
    with np.errstate(over="ignore"):
        ref = s.values(t).astype(np.float16)
    got = np.asarray(f(jnp.asarray(t)))
    assert got[-1] > 0 and np.isfinite(ref[-1]) == np.isfinite(got[-1])
    host = np.asarray(lo.schedule(s, dtype=jnp.float16, evaluation="host")(t))
    np.testing.assert_array_equal(got[ref != 0], host[ref != 0])
    assert value_table(s, dtype=np.float16).beyond != "hold"


def test_an_integer_parameter_beyond_int32_is_one_error_without_x64() -> None:
    from lrkit._jaxtable import x64_enabled

    if x64_enabled():
        pytest.skip("with jax_enable_x64 JAX holds the parameter")
    spec = "cosine(0.1, 4000000000)"
    with pytest.raises(ValueError) as info:
        lo.schedule(spec)(jnp.int32(5))
    assert str(info.value) == (
        "schedule: cosine(lr=0.1, total_steps=4000000000, eta_min=0.0) has an integer "
        "parameter beyond 2**31 - 1, which JAX holds only with jax_enable_x64: enable it, or "
        'use evaluation="host"'
    )
    host = lo.schedule(spec, evaluation="host")
    assert float(host(jnp.int32(5))) == np.float32(S.parse(spec)(5))
    # a host uint32 count past int32 is JAX's own uint32: read at its own step, as on device
    f = lo.schedule(S.cyclic(0.01, max_lr=0.1, step_size_up=3))
    c = 3_000_000_001
    assert float(f(np.uint32(c))) == float(f(jnp.asarray(c, jnp.uint32)))


@pytest.mark.parametrize("evaluation", ["table", "host", "formula"])
def test_every_evaluation_composes_in_optax_join_schedules(evaluation) -> None:
    """optax's join_schedules evaluates a later schedule at negative steps and masks the
    result: every evaluation reads step 0's value there, as optax's own schedules do, and
    gives the joined values."""
    import optax

    warm = optax.linear_schedule(0.0, 0.1, 10)
    f = lo.schedule("cosine(lr=0.1, total_steps=100)", evaluation=evaluation)
    joined = optax.join_schedules([warm, f], [10])
    steps = np.arange(0, 120)
    tail = S.cosine(0.1, total_steps=100).values(np.arange(110)).astype(np.float32)
    want = np.concatenate([np.asarray(jax.vmap(warm)(jnp.arange(10))), tail])
    for call in (joined, jax.jit(joined)):
        got = np.asarray([float(call(jnp.int32(t))) for t in steps[:3]] + [float(call(15))])
        np.testing.assert_allclose(got, want[[0, 1, 2, 15]], rtol=2e-6)
    batched = np.asarray(jax.vmap(joined)(jnp.asarray(steps)))
    np.testing.assert_allclose(batched, want, rtol=2e-6, atol=1e-8)
    at0 = np.float32(0.1)
    assert np.asarray(f(-1)) == at0 and np.asarray(jax.jit(f)(jnp.int32(-3))) == at0


def test_values_of_a_traced_array_without_xp_says_what_to_pass() -> None:
    s = S.cosine(0.1, total_steps=100)
    with pytest.raises(TypeError) as info:
        jax.jit(lambda t: s.values(t))(jnp.arange(3.0))
    assert str(info.value) == (
        "steps is a traced array (inside jax.jit), got DynamicJaxprTracer: pass xp=jax.numpy to "
        "evaluate the formula on it, or give optax lrkit.optax.schedule(schedule)"
    )
    got = jax.jit(lambda t: s.values(t, xp=jnp))(jnp.arange(3.0))
    np.testing.assert_allclose(np.asarray(got), s.values([0, 1, 2]), rtol=1e-6)
    assert s.values(jnp.arange(3.0)).dtype == np.float64  # a concrete array: read as any other


def _warm(step: int) -> float:
    return min(1.0, (step + 1) / 10)


@pytest.mark.parametrize(
    ("s", "table_limit"),
    [
        (S.cosine(0.1, total_steps=100), TABLE_LIMIT),
        (S.exponential(0.1, gamma=0.9999999), TABLE_LIMIT),
        (S.exponential(0.1, gamma=0.9999999), 4),  # the traced formula past the table
        (S.cyclic(0.01, max_lr=0.1, step_size_up=3), 4),  # the wrapped table
        (S.function(_warm, lr=0.1), 4),  # the host past the table
    ],
    ids=["cosine", "exponential", "exponential-formula", "cyclic", "function-host"],
)
def test_an_adam_step_runs_under_debug_nans_without_jit(s, table_limit) -> None:
    """jax_debug_nans (JAX's tool to find where a NaN comes from) with jax.disable_jit() runs
    every operation eagerly: no NaN constant is built at a valid step."""
    import optax

    opt = optax.adam(lo.schedule(s, table_limit=table_limit))
    params = jnp.ones(3)
    state = opt.init(params)
    lrs = s.values(np.arange(6)).astype(np.float32)
    with jax.debug_nans(True), jax.disable_jit():
        for t in range(6):
            updates, state = opt.update(jnp.ones(3), state, params)
            # constant gradients: adam's bias-corrected step is the learning rate (up to
            # float32's rounding of 1 - b2**t)
            np.testing.assert_allclose(np.asarray(updates), -lrs[t], rtol=1e-4)
        assert float(lo.schedule(s, table_limit=table_limit)(jnp.float32(2.5))) > 0


def test_optax_join_schedules_of_lrkit_schedules_runs_under_debug_nans() -> None:
    """optax.join_schedules evaluates the later schedule at negative steps (count - boundary)
    and discards what it gets: it reads step 0's value there, never a NaN."""
    import optax

    warm = S.warmup(0.0, end_lr=0.1, warmup_steps=10)
    cos = S.cosine(0.1, total_steps=100)
    joined = optax.join_schedules([lo.schedule(warm), lo.schedule(cos)], [10])
    want = np.concatenate([warm.values(np.arange(10)), cos.values(np.arange(5))])
    want = want.astype(np.float32)
    with jax.debug_nans(True):
        got = [float(joined(jnp.int32(t))) for t in range(15)]
        np.testing.assert_array_equal(got, want)
        with jax.disable_jit():
            np.testing.assert_array_equal([float(joined(t)) for t in range(15)], want)
        opt = optax.adam(joined)
        state = opt.init(jnp.ones(2))
        updates, state = opt.update(jnp.ones(2), state, jnp.ones(2))  # eager, at step 0
        assert np.asarray(updates).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("evaluation", ["table", "formula"])
@pytest.mark.parametrize(
    "s",
    [
        # 0 where gamma ** t overflows: the amplitude is 0 (max_lr == base_lr)
        S.cyclic(0.1, max_lr=0.1, step_size_up=10, mode="exp_range", gamma=1.01),
        S.mul(S.constant(0.0), S.exponential(1.0, gamma=1.01)),  # 0 times inf
        S.mul(S.exponential(1e-3, gamma=2.0), S.exponential(1e-3, gamma=0.5)),  # inf times 0
        # a segment that overflows (inf - inf) only past the steps it serves
        S.join(
            [S.exponential(1.0, gamma=2.0) - S.exponential(0.5, gamma=2.0), S.constant(0.1)],
            boundaries=[5],
        ),
    ],
    ids=["cyclic-exp_range-flat", "zero-times-overflow", "overflow-times-zero", "join-overflow"],
)
def test_a_zero_times_an_overflow_builds_no_nan_without_jit(s, evaluation: str) -> None:
    """The formula (in a table's place, or past a short table) computes no 0 * inf and reads
    no segment past its own steps: jax_debug_nans finds nothing, with or without jit."""
    steps = np.array([0, 3, 5, 2000, 9000, 20000])
    want = s.values(steps).astype(np.float32)
    assert not np.isnan(want).any()
    f = lo.schedule(s, evaluation=evaluation, table_limit=16)
    with jax.debug_nans(True):
        np.testing.assert_allclose(np.asarray(jax.jit(f)(jnp.asarray(steps))), want, rtol=1e-6)
        with jax.disable_jit():
            got = np.asarray(f(jnp.asarray(steps, dtype=jnp.int32)))
            np.testing.assert_allclose(got, want, rtol=1e-6)
            frac = np.asarray(f(jnp.asarray(steps, dtype=jnp.float32)))
            np.testing.assert_allclose(frac, want, rtol=1e-6)


@pytest.mark.parametrize("evaluation", ["table", "host", "formula"])
@pytest.mark.parametrize(
    "s",
    [
        S.cosine(0.1, total_steps=100),
        S.cyclic(0.01, max_lr=0.1, step_size_up=3),
        S.exponential(0.1, gamma=0.9),
        S.function(_warm, lr=0.1),
    ],
    ids=lambda s: s.name,
)
def test_a_negative_step_reads_step_0s_value(s, evaluation) -> None:
    """As optax's own schedules clip their count at 0: integer and fractional steps, host
    and device counts, batched, under jit, vmap and eagerly, with every evaluation."""
    if evaluation == "formula" and s.name == "function":
        pytest.skip("a function schedule has no formula to trace")
    f = lo.schedule(s, evaluation=evaluation, table_limit=4)
    at0 = np.asarray(f(jnp.int32(0)))
    np.testing.assert_allclose(at0, s.values([0])[0], rtol=1e-6)
    if evaluation != "formula":
        assert at0 == np.float32(s.values([0])[0])
    for t in (jnp.int32(-1), jnp.int32(-7), jnp.float32(-0.5), jnp.float32(-3.0)):
        assert np.asarray(f(t)) == at0
        assert np.asarray(jax.jit(f)(t)) == at0
    assert np.asarray(f(-2)) == at0  # a host count
    t = jnp.asarray([-5, -1, 0, 1, 6], jnp.int32)
    for got in (jax.jit(f)(t), jax.vmap(f)(t)):
        got = np.asarray(got)
        assert got[0] == got[1] == got[2] == at0
        np.testing.assert_allclose(got[3:], s.values([1, 6]), rtol=1e-6)


def test_a_schedule_ending_past_the_table_is_optaxs_float32_there_and_exact_to_its_end():
    """A cosine over 2**21 steps ends past the default table: from the table's end on it is the
    traced float32 formula, optax's own values; a table of ``length + 1`` entries is exact."""
    total = 2**21
    s = S.cosine(3e-4, total_steps=total)
    assert value_table(s).beyond == "formula" and value_table(s).size == TABLE_LIMIT
    steps = jnp.asarray([0, TABLE_LIMIT - 1, TABLE_LIMIT + 5, total - 1000, total - 1, total + 7])
    ours = jax.jit(lo.schedule(s))(steps)
    theirs = jax.jit(optax.cosine_decay_schedule(3e-4, total))(steps)
    np.testing.assert_allclose(np.asarray(ours)[2:], np.asarray(theirs)[2:], rtol=2e-7, atol=0)
    exact = s.values(np.asarray(steps)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(ours)[:2], exact[:2])
    full = jax.jit(lo.schedule(s, table_limit=total + 1))(steps)
    np.testing.assert_array_equal(np.asarray(full), exact)


def test_an_unknown_keyword_names_the_option_meant() -> None:
    with pytest.raises(TypeError) as info:
        lo.schedule("constant(0.1)", evalution="host")  # type: ignore[call-arg]
    assert str(info.value) == (
        "evalution is not an option of lrkit.optax.schedule() (did you mean evaluation?); "
        "options: dtype, evaluation, schedule, table_limit"
    )


def test_a_whole_float_step_at_the_tables_end_reads_the_formula_as_the_integer_step():
    s = S.exponential(0.1, gamma=0.999)
    vt = value_table(s, limit=600)
    assert vt.beyond == "formula"
    f = jax.jit(lo.schedule(s, table_limit=600))
    n = vt.size
    at_end = float(f(jnp.int32(n)))
    assert float(f(jnp.float32(n))) == at_end != float(f(jnp.int32(n - 1)))


def test_a_growing_schedule_builds_its_table_without_a_warning_and_reads_inf_where_it_overflows():
    """``exponential(gamma > 1)`` overflows far out in its value table: no numpy warning for
    steps nobody asked for; the steps asked for read their float32 values, inf past float32."""
    import warnings

    growing = S.exponential(0.01, gamma=1.6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn = lo.schedule(growing)
        assert float(fn(3)) == np.float32(0.01 * 1.6**3)
        assert float(fn(2000)) == np.inf


@pytest.mark.parametrize("evaluation", ["table", "formula", "host"])
def test_a_schedule_function_called_with_no_count_says_what_to_give_keras(evaluation) -> None:
    fn = lo.schedule(S.cosine(0.1, total_steps=100), evaluation=evaluation)
    with pytest.raises(TypeError, match=r"^lrkit\.optax\.schedule\(\.\.\.\) takes the step and "):
        fn()
    assert float(fn(5)) == np.float32(S.cosine(0.1, total_steps=100)(5))


def test_a_combination_of_periodic_and_holding_parts_repeats_with_the_lcm_of_their_periods():
    cy = S.cyclic(1e-4, max_lr=1e-2, step_size_up=200, step_size_down=100)  # period 300
    restarts = S.cosine_restarts(0.1, T_0=200)
    assert period(cy * S.constant(0.5)) == period(cy.clamp(max_lr=5e-3)) == (0, 300)
    assert period(cy + restarts) == (0, 600)
    assert period(S.sub(restarts, b=cy)) == (0, 600)
    assert period(cy + S.linear(0.1, end_lr=0.0, total_steps=50)) == (50, 300)  # once it holds
    assert period(cy * S.exponential(1.0, gamma=0.9)) is None  # a part that keeps changing
    assert period(S.constant(0.1) + S.cosine(0.1, total_steps=9)) is None  # holds: horizon's
    assert horizon(S.sub(S.constant(0.95), b=S.cosine(0.1, total_steps=900))) == 900
    t = np.arange(10**7, 10**7 + 1200)
    s = S.sub(S.constant(0.95), b=cy) * S.constant(0.5)
    got = np.asarray(jax.jit(lo.schedule(s))(jnp.asarray(t, jnp.int32)))
    assert _ulps(got, s.values(t)) <= 1


@pytest.mark.parametrize("evaluation", ["table", "formula"])
def test_a_list_of_traced_counts_is_read_under_jit(evaluation) -> None:
    s = S.cosine(0.1, total_steps=100)
    f = lo.schedule(s, evaluation=evaluation)
    got = jax.jit(lambda t: f([t, t + 1]))(jnp.int32(5))
    np.testing.assert_allclose(np.asarray(got), s.values([5, 6]), rtol=1e-6)


@pytest.mark.parametrize("evaluation", ["table", "host", "formula"])
@pytest.mark.parametrize("dtype", [np.int32, "int8", np.bool_])
def test_a_dtype_that_is_not_floating_is_refused(evaluation, dtype) -> None:
    with pytest.raises(ValueError, match=r"^dtype must be a floating dtype, got "):
        lo.schedule(S.cosine(0.1, total_steps=100), evaluation=evaluation, dtype=dtype)


def test_a_host_count_beyond_int32_is_read_as_it_is_with_x64_enabled() -> None:
    s = S.cosine(0.1, total_steps=100)
    with jax.enable_x64(True):
        f = lo.schedule(s)
        assert float(f(2**40)) == 0.0 and float(f(np.int64(2**33))) == 0.0
        assert f(np.array([5, 2**33])).tolist() == [float(np.float32(s(5))), 0.0]


def test_the_host_is_not_called_for_steps_the_table_gives() -> None:
    """A schedule holding a Python callable calls it on the host for a step past its table
    only: steps the table gives read it, eagerly and under jit (under vmap both branches
    run)."""
    calls: list[int] = []

    def fn(step: int) -> float:
        calls.append(step)
        return 1.0 / (1.0 + step)

    f = lo.schedule(S.function(fn, lr=0.1), table_limit=8)
    inside = jnp.asarray([0, 3, 7], jnp.int32)
    want = [float(np.float32(0.1 / (1.0 + t))) for t in (0, 3, 7)]
    assert np.asarray(f(inside)).tolist() == want  # builds the table: fn at steps 0..7
    calls.clear()
    for call in (f, jax.jit(f)):
        assert np.asarray(call(inside)).tolist() == want
        assert float(call(jnp.int32(3))) == want[1]
    assert calls == []
    assert float(f(jnp.int32(20))) == np.float32(0.1 / 21.0)
    assert calls == [20]


def test_a_fractional_step_past_a_holding_table_reads_the_held_value_exactly():
    """Past its end a holding table's last entry (the float64 value rounded once) is the
    value at every real step too, where the float32 formula would be an ulp off."""
    s = S.multistep(0.1, milestones=[100, 500, 3000], gamma=0.3)
    assert value_table(s).beyond == "hold" and value_table(s).size == 3001
    f = lo.schedule(s)
    t = jnp.asarray([3000.5, 3100.25, 10**6 + 0.5], jnp.float32)
    held = float(np.float32(s(3000)))
    for call in (f, jax.jit(f)):
        assert np.asarray(call(t)).tolist() == [held] * 3


def test_a_list_past_int64_names_its_first_step_beyond_int32_also_a_numpy_one() -> None:
    f = lo.schedule(S.cosine(0.1, total_steps=100))
    with pytest.raises(ValueError, match=r"^count must be .*, got 1099511627776; use "):
        f([np.int64(2**40), 2**70])  # the numpy integer comes first
    with pytest.raises(ValueError, match=r"^count must be .*, got 1099511627776; use "):
        f([2**40, 2**70])  # as it does when both are Python ints


def test_a_list_mixing_bools_and_numpy_counts_beyond_int32_is_a_one_line_error() -> None:
    f = lo.schedule(S.cosine(0.1, total_steps=100))
    with pytest.raises(ValueError, match=r"^count must be .*, got 4294967301; use "):
        f([False, np.int64(2**32 + 5)])  # JAX would read step 5
    assert f([True, False]).tolist() == f([1, 0]).tolist()
