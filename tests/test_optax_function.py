"""lrkit.optax.schedule of ``S.function(fn, lr=...)``: the host's float64 values rounded once,
from the table inside the compiled step and from the host past it; no traced formula."""

from __future__ import annotations

import numpy as np
import pytest

optax = pytest.importorskip("optax")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import lrkit.optax as lo  # noqa: E402
from lrkit import schedules as S  # noqa: E402


def warm(step: int) -> float:
    return min(1.0, (step + 1) / 10)


F = S.function(warm, lr=3e-4) * S.cosine(1.0, total_steps=80)


@pytest.mark.parametrize("evaluation", ["table", "host"])
def test_values_equal_the_host_values_in_float32(evaluation: str) -> None:
    sched = lo.schedule(F, evaluation=evaluation, table_limit=32)
    t = jnp.arange(100, dtype=jnp.int32)
    ref = F.values(np.arange(100)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(jax.jit(sched)(t)), ref)
    np.testing.assert_array_equal(np.asarray(jax.vmap(sched)(t)), ref)
    assert float(sched(50)) == ref[50]  # eager
    assert float(jax.jit(sched)(jnp.int32(-1))) == ref[0]  # a negative step reads step 0


def test_an_optax_optimizer_steps_with_its_values() -> None:
    opt = optax.sgd(lo.schedule(F, table_limit=4))
    params = jnp.zeros(1)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        updates, state = opt.update(jnp.ones(1), state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(10):
        params, state = step(params, state)
    used = F.values(np.arange(10)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(params), [-np.sum(used)], rtol=1e-6)


def test_formula_evaluation_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r'^evaluation="formula" traces .* use evaluation="table"'):
        lo.schedule(F, evaluation="formula")


def test_fn_raising_past_the_table_is_the_schedules_one_line_error_on_an_eager_call() -> None:
    """Past the table the host calls fn: when it raises, an eager call gets the schedule's
    own ValueError naming the step (JAX's callback error, a traceback in its text, before);
    under jit the error reaches the caller inside JAX's, whose text holds the same line."""
    table = list(np.linspace(1.0, 0.1, 101))

    def lr_lambda(step: int) -> float:
        return float(table[step])

    s = lo.schedule(S.function(lr_lambda, lr=0.1, length=100))
    assert float(s(100)) == np.float32(0.1 * table[100])
    line = (
        "fn raised IndexError at step 101: list index out of range (schedule "
        "function(fn=lr_lambda, lr=0.1, length=100))"
    )
    with pytest.raises(ValueError) as info:
        s(101)
    assert str(info.value).startswith(line)
    assert "\n" not in str(info.value) and info.value.__suppress_context__
    with pytest.raises(Exception, match="fn raised IndexError at step 101"):
        jax.jit(s)(jnp.int32(101)).block_until_ready()


def test_an_error_that_is_not_fn_s_reaches_the_caller_as_jax_raised_it() -> None:
    """Only fn's own error is read back on the host: a count that is no number keeps the
    error the compiled function gave for it."""
    s = lo.schedule(S.function(lambda t: 1.0 / (1.0 + t), lr=0.1, length=100))
    for bad in ("abc", None):
        with pytest.raises(Exception) as info:
            s(bad)
        assert "steps must be finite" not in str(info.value)
        assert "could not convert string" not in str(info.value)


@pytest.mark.parametrize("evaluation", ["table", "host"])
def test_float64_without_x64_is_float32_as_jax_computes_it(evaluation: str) -> None:
    """dtype=float64 without jax_enable_x64 gives JAX's float32, on the table and on the
    host alike (the host's result is declared as JAX holds it)."""
    if jax.config.jax_enable_x64:
        pytest.skip("with jax_enable_x64 float64 is float64")
    sched = lo.schedule(F, dtype=jnp.float64, evaluation=evaluation, table_limit=32)
    t = jnp.arange(100, dtype=jnp.int32)
    ref = F.values(np.arange(100)).astype(np.float32)
    for got in (sched(t), jax.jit(sched)(t)):
        assert got.dtype == jnp.float32
        np.testing.assert_array_equal(np.asarray(got), ref)


def test_an_unsigned_count_reads_fn_at_its_own_step_up_to_and_past_int32() -> None:
    """A uint32 step counter: 2**31 - 1 is that integer step on the host, as the steps past
    int32 are theirs (fn gets each step, not its float32 neighbour)."""
    s = S.function(lambda step: 1.0 / (1 + step % 7), lr=0.1)
    f = lo.schedule(s, table_limit=8)
    steps = (2**31 - 1, 2**31, 3)
    want = [float(np.float32(0.1 / (1 + k % 7))) for k in steps]
    t = jnp.asarray(steps, jnp.uint32)
    for call in (f, jax.jit(f)):
        assert np.asarray(call(t)).tolist() == want
