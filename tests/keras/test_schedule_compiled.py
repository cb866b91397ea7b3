"""lrkit.keras.schedule on the JAX backend: the value table inside the compiled train step (no
host call), the scale as a compiled constant, evaluation options and their config round trip."""

import os
import pickle

import numpy as np
import pytest

keras = pytest.importorskip("keras")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import lrkit.keras as lk  # noqa: E402
from lrkit import schedules as S  # noqa: E402

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX backend only")


def test_compiled_call_has_no_host_call_unless_asked():
    s = S.with_warmup(S.cosine(0.1, total_steps=900), warmup_steps=100)
    assert "callback" not in str(jax.make_jaxpr(lk.schedule(s))(jnp.int32(3)))
    host = lk.schedule(s, evaluation="host")
    assert "callback" in str(jax.make_jaxpr(host)(jnp.int32(3)))
    formula = lk.schedule(s, evaluation="formula")
    assert "callback" not in str(jax.make_jaxpr(formula)(jnp.int32(3)))
    t = jnp.arange(1200, dtype=jnp.int32)
    ref = s.values(np.arange(1200)).astype(np.float32)
    for ks in (lk.schedule(s), host):
        np.testing.assert_array_equal(np.asarray(jax.jit(ks)(t)), ref)
    np.testing.assert_allclose(np.asarray(jax.jit(formula)(t)), ref, rtol=1e-5, atol=1e-8)


def test_scale_is_in_the_table_and_rebuilt_when_it_changes():
    s = S.onecycle(0.1, total_steps=500)
    ks = lk.schedule(s)
    assert ks.compiled_scale
    t = jnp.arange(600, dtype=jnp.int32)
    np.testing.assert_array_equal(np.asarray(jax.jit(ks)(t)), s.values(np.arange(600)).astype("f4"))
    ks.multiply(0.5)
    # a new trace sees the new scale: exactly float32(scale * float64 value)
    expect = (s.values(np.arange(600)) * 0.5).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda t: ks(t))(t)), expect)
    np.testing.assert_array_equal(ks.values(np.arange(600)), expect)
    # eager calls on the optimizer's step variable read the same table
    step = keras.Variable(250, dtype="int32", trainable=False)
    assert float(keras.ops.convert_to_numpy(ks(step))) == float(expect[250])
    assert not lk.schedule(s, evaluation="host").compiled_scale


def test_fit_uses_the_new_scale_after_the_train_function_is_rebuilt(
    const_grad_model, mean_pred_loss
):
    s = S.linear(0.04, end_lr=0.01, total_steps=10)
    ks = lk.schedule(s)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=ks), loss=mean_pred_loss)
    x = np.ones((4, 1), "float32")
    model.fit(x, x, batch_size=1, shuffle=False, verbose=0)
    ks.set_scale(0.25)
    model.make_train_function(force=True)  # what lrkit's callbacks do after a change
    model.fit(x, x, batch_size=1, shuffle=False, verbose=0)
    used = [np.float32(s(t)) for t in range(4)] + [np.float32(s(t) * 0.25) for t in range(4, 8)]
    np.testing.assert_allclose(model.get_weights()[0], [[-np.sum(used)]], rtol=1e-6)


def test_scaled_schedule_on_jax_multiplies_in_the_compiled_step():
    inner = keras.optimizers.schedules.CosineDecay(0.1, 100)
    sc = lk.ScaledSchedule(inner, scale=0.5)
    assert sc.compiled_scale
    assert "callback" not in str(jax.make_jaxpr(sc)(jnp.int32(3)))
    got = float(jax.jit(sc)(jnp.int32(30)))
    assert got == float(np.float32(inner(30)) * np.float32(0.5))


def test_config_round_trip_of_evaluation_and_table_limit(tmp_path):
    s = S.exponential(0.1, gamma=0.9999)
    default = lk.schedule(s)
    assert "evaluation" not in default.get_config()  # files stay readable by older versions
    assert "table_limit" not in default.get_config()
    ks = lk.schedule(s, evaluation="host", table_limit=5000)
    cfg = ks.get_config()
    assert cfg["evaluation"] == "host" and cfg["table_limit"] == 5000
    back = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(ks))
    assert back.evaluation == "host" and back.table_limit == 5000 and back.schedule == s
    old_style = {"schedule": s.to_dict(), "scale": 0.5, "name": None}
    restored = lk.LRKitSchedule.from_config(old_style)
    assert restored.evaluation == "table" and restored.scale == 0.5
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(ks), loss="mse")
    model.fit(np.ones((3, 2), "f4"), np.ones((3, 1), "f4"), batch_size=1, verbose=0)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    lr = keras.saving.load_model(path).optimizer._learning_rate
    assert lr.evaluation == "host" and lr.table_limit == 5000
    # a schedule that has been traced still pickles (the compiled lookup is rebuilt)
    traced = lk.schedule(s)
    jax.jit(lambda t: traced(t))(jnp.int32(1))
    again = pickle.loads(pickle.dumps(traced))
    assert again.schedule == s and float(again(77)) == float(np.float32(s(77)))
    with pytest.raises(ValueError, match="evaluation"):
        lk.schedule(s, evaluation="exact")
    with pytest.raises(ValueError, match="table_limit"):
        lk.schedule(s, table_limit=1)
    with pytest.raises(TypeError):
        lk.LRKitSchedule(s, 0.5)  # keyword-only after the schedule


def test_past_a_small_table_holds_or_uses_the_formula():
    hold = S.cosine(0.1, total_steps=5000)
    ks = lk.schedule(hold, table_limit=10_000)
    t = jnp.asarray([0, 4999, 5000, 9999, 10_000, 2**30], jnp.int32)
    np.testing.assert_array_equal(
        np.asarray(jax.jit(ks)(t)), hold.values(np.asarray(t)).astype(np.float32)
    )
    slow = S.inverse_sqrt(0.1, warmup_steps=100)
    kf = lk.schedule(slow, table_limit=1000)
    t = jnp.arange(3000, dtype=jnp.int32)
    got = np.asarray(jax.jit(kf)(t))
    ref = slow.values(np.arange(3000))
    np.testing.assert_array_equal(got[:1000], ref[:1000].astype(np.float32))
    np.testing.assert_allclose(got[1000:], ref[1000:], rtol=1e-6)


class _HalveAt(keras.callbacks.Callback):
    """Halve a schedule's scale after a given batch and rebuild the train function, as the lrkit
    callbacks do (here in the middle of an epoch)."""

    def __init__(self, sched, batch):
        super().__init__()
        self.sched, self.batch = sched, batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            self.sched.multiply(0.5)
            self.model.make_train_function(force=True)


def test_a_scale_change_mid_epoch_takes_effect_at_the_next_step(const_grad_model, mean_pred_loss):
    s = S.cosine(0.03, total_steps=20)
    ks = lk.schedule(s)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=ks), loss=mean_pred_loss)
    x = np.ones((8, 1), "float32")
    model.fit(x, x, batch_size=1, shuffle=False, verbose=0, callbacks=[_HalveAt(ks, 2)])
    used = [np.float32(s(t)) for t in range(3)] + [np.float32(s(t) * 0.5) for t in range(3, 8)]
    np.testing.assert_allclose(model.get_weights()[0], [[-np.sum(used)]], rtol=1e-6)


@pytest.mark.parametrize("how", ["set_scale", "multiply", "scaled_schedule"])
def test_a_scale_change_between_two_fits_is_used_by_the_next_fit(
    how, const_grad_model, mean_pred_loss
):
    """No train-function rebuild by the caller: the next fit() steps at the new scale."""
    s = S.linear(0.04, end_lr=0.01, total_steps=10)
    ks = lk.schedule(s)
    lr = lk.ScaledSchedule(ks) if how == "scaled_schedule" else ks
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss=mean_pred_loss)
    x = np.ones((4, 1), "float32")
    model.fit(x, x, batch_size=1, shuffle=False, verbose=0)
    if how == "set_scale":
        lr.set_scale(0.25)
    else:
        assert lr.multiply(0.25) == 0.25
    model.fit(x, x, batch_size=1, shuffle=False, verbose=0)
    used = [np.float32(s(t)) for t in range(4)] + [np.float32(s(t)) * 0.25 for t in range(4, 8)]
    np.testing.assert_allclose(model.get_weights()[0], [[-np.sum(used)]], rtol=1e-6)


@pytest.mark.parametrize("evaluation", ["table", "host", "formula"])
def test_runs_under_debug_nans_without_jit_and_a_negative_step_reads_step_0(evaluation):
    """jax_debug_nans with jax.disable_jit() runs every operation eagerly: no NaN is built at
    any step; a negative step reads step 0's value, as optax's own schedules do."""
    s = S.cosine(0.1, total_steps=100)
    ks = lk.schedule(s, evaluation=evaluation)
    want = np.float32(s.values([5])[0])
    with jax.debug_nans(True), jax.disable_jit():
        got = float(ks(jnp.int32(5)))
        at0 = float(ks(jnp.int32(-3)))
    if evaluation == "formula":
        assert got == pytest.approx(want, rel=1e-6)
    else:
        assert got == want
    assert at0 == float(ks(jnp.int32(0))) == np.float32(0.1)
    for step in (jnp.int32(-1), jnp.float32(-0.5), -2):
        assert float(ks(step)) == float(jax.jit(ks)(jnp.asarray(step))) == np.float32(0.1)
    assert ks.values([-4, 0]).tolist() == [np.float32(0.1)] * 2
