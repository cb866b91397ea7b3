"""lrkit.keras.schedule: exact float32 values, config round trips, .keras save/load."""

import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import lrkit.keras as lk  # noqa: E402
from lrkit import schedules as S  # noqa: E402

FAMILIES = {
    "constant": S.constant(0.1),
    "step": S.step(0.1, step_size=1000, gamma=0.5),
    "multistep": S.multistep(0.1, milestones=[1000, 5000, 30000], gamma=0.3),
    "exponential": S.exponential(0.1, gamma=0.9999),
    "inverse_time": S.inverse_time(0.1, decay_steps=100, decay_rate=0.5, staircase=True),
    "polynomial": S.polynomial(0.1, total_steps=80000, power=2.0, end_lr=1e-4),
    "linear": S.linear(0.0, end_lr=0.1, total_steps=70000),
    "cosine": S.cosine(0.1, total_steps=100000, eta_min=1e-5),
    "cosine_restarts": S.cosine_restarts(0.1, T_0=1000, T_mult=2, eta_min=1e-5),
    "cyclic": S.cyclic(1e-4, max_lr=1e-2, step_size_up=2000, mode="exp_range", gamma=0.99999),
    "onecycle": S.onecycle(0.1, total_steps=100000),
    "inverse_sqrt": S.inverse_sqrt(0.1, warmup_steps=4000),
    "piecewise": S.piecewise_constant([1000, 20000], values=[0.1, 0.01, 0.001]),
    "warmup": S.warmup_cosine(1e-4, end_lr=0.1, warmup_steps=50000),
    "wsd": S.wsd(0.1, total_steps=100000, warmup_steps=2000),
    "composite": (
        S.with_warmup(S.cosine(0.1, total_steps=90000), warmup_steps=10000)
        * S.exponential(1.0, gamma=0.99999)
    ).clamp(max_lr=0.05),
}
N = 100_001


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_values_equal_numpy_float32_over_long_range(name):
    s = FAMILIES[name]
    ks = lk.schedule(s)
    ref = s.values(np.arange(N)).astype(np.float32)
    # compiled (as inside a jax train step: the value table) and the numpy view
    if keras.backend.backend() == "jax":
        got = np.asarray(jax.jit(ks)(jnp.arange(N, dtype=jnp.int32)))
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(ks.values(np.arange(N)), ref)
    # eager calls on a Keras int variable (what optimizer.learning_rate does)
    step = keras.Variable(0, dtype="int32", trainable=False)
    for t in (0, 1, 999, 12345, 100000):
        step.assign(t)
        assert float(keras.ops.convert_to_numpy(ks(step))) == float(ref[t])


def test_config_round_trip_and_serialization():
    s = FAMILIES["composite"]
    ks = lk.schedule(s)
    ks.set_scale(0.25)
    cfg = ks.get_config()
    assert cfg["schedule"] == s.to_dict() and cfg["scale"] == 0.25
    back = lk.LRKitSchedule.from_config(cfg)
    assert back.schedule == s and back.scale == 0.25
    ser = keras.optimizers.schedules.serialize(ks)
    again = keras.optimizers.schedules.deserialize(ser)
    assert isinstance(again, lk.LRKitSchedule) and again.schedule == s and again.scale == 0.25
    assert float(again(5000)) == float(np.float32(s(5000) * 0.25))
    # spec strings and dicts are accepted too
    assert lk.schedule(str(s)).schedule == s
    assert lk.schedule(s.to_dict()).schedule == s
    with pytest.raises(ValueError, match="schedule"):
        lk.schedule(0.1)
    with pytest.raises(ValueError, match="scale"):
        ks.set_scale(-1.0)


@pytest.mark.parametrize("cls", [lk.LRKitSchedule, lk.ScaledSchedule])
def test_a_config_without_a_schedule_and_a_name_that_is_no_text_are_refused_in_one_line(cls):
    for config, got in [({"scale": 1.0}, "a dict with keys ['scale']"), (5, "int")]:
        with pytest.raises(ValueError) as info:
            cls.from_config(config)
        assert str(info.value) == (
            f"config must be a get_config() dict with a 'schedule' key, got {got}"
        )
    inner = "cosine(0.1, 100)" if cls is lk.LRKitSchedule else lk.schedule("cosine(0.1, 100)")
    with pytest.raises(TypeError) as info:
        cls(inner, name=3)
    assert str(info.value) == "name must be a string or None, got 3"
    named = cls(inner, name="lr")
    assert cls.from_config(named.get_config()).name == "lr"


def test_optimizer_applies_exact_values_and_save_load(tmp_path, const_grad_model, mean_pred_loss):
    s = S.with_warmup(S.cosine(0.05, total_steps=20), warmup_steps=5)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lk.schedule(s)), loss=mean_pred_loss)
    x = np.ones((12, 1), "float32")
    model.fit(x, x, epochs=1, batch_size=1, shuffle=False, verbose=0)
    expected = -np.sum([np.float32(s(t)) for t in range(12)], dtype=np.float32)
    np.testing.assert_allclose(model.get_weights()[0], [[expected]], rtol=1e-6)
    assert float(model.optimizer.learning_rate) == float(np.float32(s(12)))
    model.optimizer.learning_rate  # noqa: B018
    model.optimizer._learning_rate.set_scale(0.5)  # e.g. set by a plateau callback
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, custom_objects={"_mean_pred_loss": mean_pred_loss})
    lr = loaded.optimizer._learning_rate
    assert isinstance(lr, lk.LRKitSchedule) and lr.schedule == s and lr.scale == 0.5
    assert int(loaded.optimizer.iterations) == 12
    assert float(loaded.optimizer.learning_rate) == float(np.float32(s(12) * 0.5))
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])
    # training resumes on the schedule
    loaded.fit(x[:3], x[:3], epochs=1, batch_size=1, shuffle=False, verbose=0)
    assert int(loaded.optimizer.iterations) == 15


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="jax.vmap: the JAX backend only")
def test_vmap_of_keras_schedule():
    ks = lk.schedule(FAMILIES["onecycle"])
    t = (jnp.arange(600, dtype=jnp.int32) * 150).reshape(60, 10)
    np.testing.assert_array_equal(
        np.asarray(jax.vmap(ks)(t)), FAMILIES["onecycle"].values(np.asarray(t)).astype(np.float32)
    )


_TORCH_CHECK = """
import numpy as np, keras
import lrkit.keras as lk
from lrkit import schedules as S
assert keras.backend.backend() == "torch"
s = S.with_warmup(S.cosine(0.1, total_steps=9000), warmup_steps=1000)
s = s * S.exponential(1.0, gamma=0.9999)
ks = lk.schedule(s)
import torch
t = torch.arange(10001)
got = keras.ops.convert_to_numpy(ks(t))
assert got.dtype == np.float32
assert np.array_equal(got, s.values(np.arange(10001)).astype(np.float32))
dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")
m = keras.Sequential([keras.Input((1,)), dense])
m.compile(optimizer=keras.optimizers.SGD(learning_rate=ks), loss=lambda a, b: keras.ops.mean(b))
x = np.ones((5, 1), "float32")
m.fit(x, x, batch_size=1, shuffle=False, verbose=0)
exp = -np.sum([np.float32(s(t)) for t in range(5)], dtype=np.float32)
assert np.allclose(m.get_weights()[0], exp, rtol=1e-6), (m.get_weights()[0], exp)
# the range test on the torch backend restores the model and optimizer variables
before = [np.array(keras.ops.convert_to_numpy(v)) for v in m.variables + m.optimizer.variables]
res = lk.find_lr(m, x, x, batch_size=1, num_iter=10, start_lr=1e-4, end_lr=1e-2,
                 max_extra_iter=0, warn=False)
assert res.steps == 10
after = [np.array(keras.ops.convert_to_numpy(v)) for v in m.variables + m.optimizer.variables]
assert all(np.array_equal(a, b) for a, b in zip(before, after))
print("ok")
"""


def test_torch_backend_subprocess():
    pytest.importorskip("torch")
    env = dict(os.environ, KERAS_BACKEND="torch")
    out = subprocess.run(
        [sys.executable, "-c", _TORCH_CHECK], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


_LOAD_CHECK = """
import sys, keras, numpy as np
path, lr12 = sys.argv[1], float(sys.argv[2])
try:  # Keras imports only its own modules: without lrkit.keras the class is unknown
    keras.saving.load_model(path, compile=True)
    raise SystemExit("loaded without lrkit.keras")
except TypeError as e:
    assert "LRKitSchedule" in str(e), e
import lrkit.keras  # registers lrkit>LRKitSchedule
m = keras.saving.load_model(path)
assert isinstance(m.optimizer._learning_rate, lrkit.keras.LRKitSchedule)
assert float(m.optimizer.learning_rate) == lr12, (float(m.optimizer.learning_rate), lr12)
print("ok")
"""


def test_load_model_in_a_fresh_process_needs_only_import_lrkit_keras(tmp_path):
    s = S.onecycle(0.05, total_steps=100)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(lk.schedule(s)), loss="mse")
    x = np.ones((12, 2), "float32")
    model.fit(x, x[:, :1], batch_size=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    env = dict(os.environ, KERAS_BACKEND="jax")
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_CHECK, path, repr(float(np.float32(s(12))))],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


def test_import_without_a_working_backend_says_what_to_set():
    env = dict(os.environ, KERAS_BACKEND="no_such_backend")
    out = subprocess.run(
        [sys.executable, "-c", "import lrkit.keras"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: lrkit.keras needs Keras 3"), last
    assert "'no_such_backend'" in last and "KERAS_BACKEND=jax" in last


def test_a_missing_backend_package_is_named_not_keras() -> None:
    import importlib.util

    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("tensorflow is installed")
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    out = subprocess.run([sys.executable, "-c", "import lrkit.keras"], env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    last = out.stderr.strip().splitlines()[-1]
    assert "importing keras failed (No module named 'tensorflow')" in last, last
    assert "needs keras: pip install" not in last  # keras is installed: its backend is not


def test_a_schedule_that_goes_negative_is_refused() -> None:
    bad = S.cosine(0.1, total_steps=10) - 1
    with pytest.raises(ValueError, match=r"^schedule must be >= 0 at every step .* at step 0"):
        lk.LRKitSchedule(bad)
    with pytest.raises(ValueError, match=r"^schedule must be >= 0 at every step .* at step 0"):
        lk.LRScheduler(bad)


def test_the_schedule_argument_is_named_schedule_in_every_adapter() -> None:
    s = S.cosine(0.1, total_steps=10)
    for make in (lk.schedule, lk.LRKitSchedule, lk.LRScheduler):
        assert make(schedule=s).schedule == s
    with pytest.raises(TypeError):
        lk.schedule(s=s)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="^schedule must"):
        lk.schedule(3.0)


def test_scaled_schedule_calls_a_learning_rate_callable_as_keras_does() -> None:
    sc = lk.ScaledSchedule(lambda: 0.5, scale=0.25)  # Keras calls such a callable with no step
    step = keras.Variable(3, dtype="int32", trainable=False)  # as an optimizer's iterations
    assert float(keras.ops.convert_to_numpy(sc(step))) == 0.125
    with pytest.raises(
        ValueError,
        match=r"^schedule must be a Keras LearningRateSchedule or a learning-rate callable, got 3$",
    ):
        lk.ScaledSchedule(3)


def test_a_host_step_beyond_int32_is_never_read_as_another_step() -> None:
    """On JAX without x64, a host integer step past 2**31 - 1 is a one-line ValueError naming
    ``step`` for the table and formula paths (JAX would wrap np.int64(2**32 + 5) to step 5),
    and is read at its own value by the host path, as in the optax adapter."""
    import keras

    if keras.backend.backend() != "jax" or jax.config.jax_enable_x64:
        pytest.skip("JAX reads steps as int32 only on the JAX backend without x64")
    big = np.int64(2**32 + 5)
    want = np.float32(S.cosine(0.1, total_steps=10)(int(big)))
    for evaluation in ("table", "formula"):
        ks = lk.schedule("cosine(lr=0.1, total_steps=10)", evaluation=evaluation)
        for step in (big, 2**31):
            with pytest.raises(ValueError, match=r"^step must be an integer in \[0, 2\*\*31 - 1\]"):
                ks(step)
    host = lk.schedule("cosine(lr=0.1, total_steps=10)", evaluation="host")
    assert float(host(big)) == want == float(host(2**40)) == 0.0
    assert float(host(7)) == np.float32(S.cosine(0.1, total_steps=10)(7))
    assert float(host(-1)) == np.float32(0.1)  # a negative step reads step 0, as the table


@pytest.mark.parametrize("cls", [lk.LRKitSchedule, lk.ScaledSchedule])
def test_multiply_returns_the_new_scale_and_compounds(cls) -> None:
    inner = "constant(0.1)" if cls is lk.LRKitSchedule else lk.schedule("constant(0.1)")
    sched = cls(inner, scale=0.5)
    assert sched.multiply(0.5) == 0.25
    assert sched.scale == 0.25
    assert sched.multiply(0.2) == 0.05
    assert sched.scale == 0.05
    with pytest.raises(ValueError, match="factor"):
        sched.multiply(-1.0)
    assert sched.scale == 0.05


@pytest.mark.parametrize("cls", [lk.LRKitSchedule, lk.ScaledSchedule])
def test_from_config_leaves_the_config_dict_unchanged(cls) -> None:
    """A get_config() dict can be read twice: from_config does not take keys out of it."""
    inner = "cosine(0.1, 100)" if cls is lk.LRKitSchedule else lk.schedule("cosine(0.1, 100)")
    config = cls(inner, scale=0.25, name="lr").get_config()
    keys = sorted(config)
    first = cls.from_config(config)
    assert sorted(config) == keys
    second = cls.from_config(config)
    for back in (first, second):
        assert isinstance(back, cls)
        assert (back.scale, back.name) == (0.25, "lr")
        assert float(keras.ops.convert_to_numpy(back(10))) == float(
            np.float32(S.cosine(0.1, total_steps=100)(10) * 0.25)
        )


def test_repr_names_the_scale_and_evaluation_only_when_not_the_defaults() -> None:
    s = S.cosine(0.1, total_steps=100)
    ks = lk.schedule(s)
    assert repr(ks) == f"<lrkit.keras.schedule {s}>"
    ks.set_scale(0.5)
    assert repr(ks) == f"<lrkit.keras.schedule {s}, scale=0.5>"
    ks.set_scale(1.0)
    assert repr(ks) == f"<lrkit.keras.schedule {s}>"
    host = lk.schedule(s, evaluation="host")
    assert repr(host) == f"<lrkit.keras.schedule {s}, evaluation='host'>"


@pytest.mark.parametrize("cls", [lk.LRKitSchedule, lk.ScaledSchedule])
def test_a_negative_or_non_numeric_scale_is_refused_at_construction(cls) -> None:
    inner = "constant(0.1)" if cls is lk.LRKitSchedule else lk.schedule("constant(0.1)")
    with pytest.raises(ValueError) as info:
        cls(inner, scale=-0.5)
    assert str(info.value) == "scale must be >= 0 (allowed range: [0, inf)), got -0.5"
    with pytest.raises(ValueError) as info:
        cls(inner, scale="a")
    assert str(info.value) == "scale must be a finite real number, got 'a'"
    assert cls(inner, scale=0).scale == 0.0


def test_an_unknown_keyword_names_the_option_meant() -> None:
    for call, said in [
        (lambda: lk.schedule("constant(0.1)", evalution="host"),
         "evalution is not an option of lrkit.keras.schedule() (did you mean evaluation?)"),
        (lambda: lk.LRKitSchedule("constant(0.1)", scael=2.0),
         "scael is not an option of lrkit.keras.LRKitSchedule (did you mean scale?)"),
        (lambda: lk.LRScheduler("constant(0.1)", pr="epoch"),
         "pr is not an option of lrkit.keras.LRScheduler (did you mean per?)"),
        (lambda: lk.LRLogger(kye="lr"), "kye is not an option of lrkit.keras.LRLogger; "),
    ]:  # fmt: skip
        with pytest.raises(TypeError) as info:
            call()
        assert str(info.value).startswith(said) and "options: " in str(info.value)
    s = lk.LRKitSchedule("constant(0.1)", scale=0.5)  # the config round trip is unchanged
    assert lk.LRKitSchedule.from_config(s.get_config()).get_config() == s.get_config()


def test_an_eager_read_between_two_fits_does_not_keep_the_old_scale(
    const_grad_model, mean_pred_loss
) -> None:
    """Reading the learning rate eagerly after a compiled fit (as a logger does) leaves the
    schedule marked as compiled: a later set_scale is still used by the next fit."""
    if keras.backend.backend() != "jax":
        pytest.skip("the scale is a compiled constant on the JAX backend only")
    s = S.linear(0.04, end_lr=0.01, total_steps=10)
    ks = lk.schedule(s)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=ks), loss=mean_pred_loss)
    x = np.ones((4, 1), "float32")
    model.fit(x, x, batch_size=1, shuffle=False, verbose=0)
    assert float(keras.ops.convert_to_numpy(ks(model.optimizer.iterations))) == np.float32(s(4))
    ks.set_scale(0.25)
    model.fit(x, x, batch_size=1, shuffle=False, verbose=0)
    used = [np.float32(s(t)) for t in range(4)] + [np.float32(s(t)) * 0.25 for t in range(4, 8)]
    np.testing.assert_allclose(model.get_weights()[0], [[-np.sum(used)]], rtol=1e-6)


def test_a_scaled_constant_learning_rate_callable_uses_a_new_scale_in_the_next_fit(
    const_grad_model, mean_pred_loss
) -> None:
    """ScaledSchedule around a no-argument callable returning a float32 array (a constant of the
    compiled step, the step its only traced input): a scale change between two fits is still
    used by the next fit."""
    if keras.backend.backend() != "jax":
        pytest.skip("the scale is a compiled constant on the JAX backend only")
    rate = jnp.float32(0.04)
    sc = lk.ScaledSchedule(lambda: rate)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=sc), loss=mean_pred_loss)
    x = np.ones((4, 1), "float32")
    model.fit(x, x, batch_size=1, shuffle=False, verbose=0)
    sc.set_scale(0.5)
    model.fit(x, x, batch_size=1, shuffle=False, verbose=0)
    used = [np.float32(0.04)] * 4 + [np.float32(0.04) * np.float32(0.5)] * 4
    np.testing.assert_allclose(model.get_weights()[0], [[-np.sum(used)]], rtol=1e-6)


@pytest.mark.parametrize("kind", ["schedule", "optax"])
def test_a_schedule_given_to_a_keras_optimizer_as_it_is_says_to_wrap_it(kind: str) -> None:
    """Keras calls a learning rate that is a plain callable with no argument."""
    s = S.cosine(0.1, total_steps=100)
    if kind == "optax":
        lo = pytest.importorskip("lrkit.optax")
        s = lo.schedule(s)
    opt = keras.optimizers.SGD(s)
    with pytest.raises(TypeError, match=r"give Keras lrkit\.keras\.schedule\(schedule\)$"):
        opt.learning_rate  # noqa: B018
    opt = keras.optimizers.SGD(lk.schedule(S.cosine(0.1, total_steps=100)))
    assert np.isclose(float(opt.learning_rate), 0.1)


def test_values_reads_steps_past_float32s_integers_at_their_own_value() -> None:
    """values() reads each step exactly, also where float32 would round it to another step
    (2**24 + 1 is no float32): the value past a boundary there is the next one."""
    s = S.piecewise_constant([2**24], values=[0.1, 0.01])
    steps = np.asarray([2**24, 2**24 + 1], dtype=np.int64)
    np.testing.assert_array_equal(lk.schedule(s).values(steps), np.float32([0.1, 0.01]))


def test_the_host_evaluation_reads_a_host_step_past_float32s_integers_at_its_own_value() -> None:
    """evaluation="host" called with a host integer (a Python int, a numpy integer) reads it
    exactly, also where float32 would round it to another step (2**24 + 1 is no float32)."""
    s = S.piecewise_constant([2**24], values=[0.1, 0.01])
    host = lk.schedule(s, evaluation="host")
    for step in (2**24 + 1, np.int64(2**24 + 1)):
        assert float(keras.ops.convert_to_numpy(host(step))) == float(np.float32(0.01))
    assert float(keras.ops.convert_to_numpy(host(2**24))) == float(np.float32(0.1))


def test_schedule_keeps_the_name_it_is_given() -> None:
    ks = lk.schedule("cosine(0.1, 100)", name="warm_lr")
    assert ks.name == "warm_lr"
    assert lk.LRKitSchedule.from_config(ks.get_config()).name == "warm_lr"
