"""lrkit.keras.schedule of ``S.function(fn, lr=...)`` on the JAX backend: the value table inside
the compiled step, the host past its end (exact, and only when a step needs it), and one-line
refusal of the traced formula (saving it: test_function_schedule_saving.py)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import lrkit.keras as lk  # noqa: E402
from lrkit import schedules as S  # noqa: E402

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX backend only")


def hf_linear(step: float) -> float:
    if step < 10:
        return float(step) / 10.0
    return max(0.0, float(50 - step) / 40.0)


F = S.function(hf_linear, lr=0.1)


def test_table_evaluation_equals_the_host_values_inside_and_past_the_table() -> None:
    ks = lk.schedule(F, table_limit=16)
    t = jnp.arange(60, dtype=jnp.int32)
    ref = F.values(np.arange(60)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(jax.jit(ks)(t)), ref)
    np.testing.assert_array_equal(np.asarray(jax.vmap(ks)(t)), ref)
    for k in (3, 15, 16, 40):  # one step at a time: in the table, at its end, past it
        assert float(jax.jit(ks)(jnp.int32(k))) == ref[k], k
    # fractional steps: the host's value
    frac = jnp.asarray([2.5, 20.25], dtype=jnp.float32)
    np.testing.assert_array_equal(
        np.asarray(jax.jit(ks)(frac)), F.values([2.5, 20.25]).astype(np.float32)
    )
    assert ks.values(np.arange(60)).tolist() == ref.tolist()


def test_the_default_table_needs_no_host_call_for_the_steps_it_holds() -> None:
    ks = lk.schedule(F)
    jaxpr = str(jax.make_jaxpr(ks)(jnp.int32(3)))
    assert "cond" in jaxpr  # the host call sits in the branch past the table only
    calls = []

    def counted(step: float) -> float:
        calls.append(step)
        return hf_linear(step)

    small = lk.schedule(S.function(counted, lr=0.1), table_limit=8)
    fn = jax.jit(small)
    fn(jnp.int32(0))
    built = len(calls)
    assert built == 8  # no sign check without a length: the table's 8 entries only
    for k in range(8):
        fn(jnp.int32(k))
    assert len(calls) == built  # read from the table
    assert float(fn(jnp.int32(30))) == np.float32(0.1 * hf_linear(30))
    assert calls[built:] == [30]


def test_a_fit_applies_the_functions_values(const_grad_model, mean_pred_loss) -> None:
    model = const_grad_model()
    ks = lk.schedule(F, table_limit=4)  # steps 4..11 from the host
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=ks), loss=mean_pred_loss)
    x = np.ones((12, 1), "float32")
    model.fit(x, x, batch_size=1, shuffle=False, verbose=0)
    used = F.values(np.arange(12)).astype(np.float32)
    np.testing.assert_allclose(model.get_weights()[0], [[-np.sum(used)]], rtol=1e-6)


def test_formula_evaluation_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r'^evaluation="formula" traces the schedule\'s formula'):
        lk.schedule(S.with_warmup(F, warmup_steps=5), evaluation="formula")
    host = lk.schedule(F, evaluation="host")
    assert float(jax.jit(host)(jnp.int32(30))) == np.float32(F(30))


def test_the_lr_scheduler_refuses_a_negative_lr_at_the_step_it_would_set(
    const_grad_model, mean_pred_loss
) -> None:
    """A function schedule without ``length`` is not checked up front: the callback checks
    each LR it sets, as lrkit's PyTorch scheduler does, and trains none of it."""
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss=mean_pred_loss)
    falling = S.function(lambda k: 0.1 - 0.05 * k, lr=1.0)
    x = np.ones((8, 1), "float32")
    with pytest.raises(ValueError) as info:
        model.fit(x, x, batch_size=1, shuffle=False, verbose=0, callbacks=[lk.LRScheduler(falling)])
    assert str(info.value) == (
        f"schedule: the learning rate must be >= 0, got {0.1 - 0.05 * 3!r} at step 3 (the "
        "schedule is negative at a step not checked when the LRScheduler was built)"
    )
    used = [0.1 - 0.05 * k for k in range(3)]  # steps 0-2 trained; step 3 never ran
    np.testing.assert_allclose(model.get_weights()[0], [[-np.sum(used)]], rtol=1e-6)


def test_the_lr_scheduler_refuses_an_lr_overflowed_to_infinity(const_grad_model, mean_pred_loss):
    """A growing schedule that overflows the optimizer's float32 LR (or float64) past the steps
    checked up front is refused at the step it would set, as a negative one is."""
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss=mean_pred_loss)
    growing = S.exponential(1e-3, gamma=1e20)  # 1e37 at step 2, beyond float32 at step 3
    x = np.ones((6, 1), "float32")
    with pytest.raises(ValueError) as info:
        model.fit(x, x, batch_size=1, shuffle=False, verbose=0, callbacks=[lk.LRScheduler(growing)])
    assert str(info.value) == (
        "schedule: the learning rate must be finite and >= 0, got inf at step 3 (the "
        "schedule is infinite at a step not checked when the LRScheduler was built)"
    )
    used = [1e-3 * 1e20**k for k in range(3)]  # steps 0-2 trained; step 3 never ran
    np.testing.assert_allclose(model.get_weights()[0], [[-np.sum(used)]], rtol=1e-6)
