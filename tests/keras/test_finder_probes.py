"""lrkit.keras.find_lr(probe_data=...): the probes after the sweep, each from the restored
initial state, and the exact restore afterwards."""

import math
import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import lrkit.keras as lk  # noqa: E402
from lrkit.finder import PROBE_OFFSETS, PROBE_STEPS, LRFinderWarning, Probes  # noqa: E402

SWEEP = {"start_lr": 1e-4, "end_lr": 10.0, "num_iter": 30, "total_steps": 300}


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dropout(0.2),  # a seed generator the probes must put back
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return model


def _fitted(x, y):
    """``_model()`` after one epoch on ``(x, y)``: a non-trivial optimizer state."""
    model = _model()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    return model


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype("float32")
    y = (x @ np.linspace(-1, 1, 8, dtype="float32")[:, None]).astype("float32")
    return x, y


def _state(model):
    return [np.array(v.numpy()) for v in (*model.variables, *model.optimizer.variables)]


def _same(a, b):
    return len(a) == len(b) and all(
        x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b)
    )


def _find(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LRFinderWarning)
        return lk.find_lr(*args, **kw)


def _recording(model):
    """Wrap ``model.train_on_batch`` to record, for each call, the model and optimizer state
    before it, the batch it trained on and the loss it returned."""
    calls = []
    train_on_batch = model.train_on_batch

    def record(x, y=None, sample_weight=None, **kw):
        before = _state(model)
        logs = train_on_batch(x, y, sample_weight=sample_weight, **kw)
        calls.append((before, np.array(x), float(np.asarray(logs["loss"]))))
        return logs

    model.train_on_batch = record
    return calls


def _probe_runs(calls, initial):
    """The calls of each probe: the runs that start from the initial state, after the
    sweep's (the sweep's first step starts from it too)."""
    starts = [i for i, (before, _, _) in enumerate(calls) if _same(before, initial)]
    assert len(starts) == 1 + len(PROBE_OFFSETS)  # the sweep's first step, then each probe
    bounds = [*starts[1:], len(calls)]
    return [calls[a:b] for a, b in zip(bounds, bounds[1:])]


def test_probes_result_and_exact_restore():
    x, y = _data(256, 0)
    xv, yv = _data(64, 1)
    model = _fitted(x, y)
    before = _state(model)
    lr_obj, train_fn = model.optimizer._learning_rate, model.train_function
    rng_np = np.random.get_state()[1].copy()
    initial_val = model.evaluate(xv, yv, batch_size=32, verbose=0)
    res = _find(model, x, y, batch_size=32, probe_data=(xv, yv), **SWEEP)
    probes = res.probes
    assert isinstance(probes, Probes)
    assert len(probes.lrs) == len(probes.losses) == 8 and probes.steps == PROBE_STEPS
    assert res.lr_min is not None and probes.lr_min == res.lr_min
    assert probes.lrs == pytest.approx([res.lr_min * math.exp(o) for o in PROBE_OFFSETS])
    # scored on probe_data: the best probe (60 Adam steps near the edge) beats the start
    finite = [v for v in probes.losses if math.isfinite(v)]
    assert finite and min(finite) < initial_val
    assert res.to_dict()["probes"]["lrs"] == list(probes.lrs)
    # everything back, bit for bit
    assert _same(before, _state(model))
    assert model.optimizer._learning_rate is lr_obj and model.train_function is train_fn
    assert np.array_equal(np.random.get_state()[1], rng_np)
    # the restored model scores as before
    assert model.evaluate(xv, yv, batch_size=32, verbose=0) == initial_val


def test_without_probe_data_there_are_no_probes():
    x, y = _data(128, 0)
    model = _model()
    calls = _recording(model)
    res = _find(model, x, y, batch_size=32, **SWEEP)
    assert res.probes is None and res.to_dict()["probes"] is None
    assert len(calls) == res.steps  # the sweep's steps only


def _built(model):
    model.build((None, 8))
    model.optimizer.build(model.trainable_variables)
    return _state(model)


def _assert_same_runs(runs, steps=PROBE_STEPS):
    """Every probe trained on the same batches in the same order (as far as each ran) and
    made the same first step (same weights, dropout mask, batch: the same loss); a probe
    that did not diverge ran all its steps; probes at different LRs end apart."""
    for run in runs[1:]:
        for (_, bx, _), (_, bx0, _) in zip(run, runs[0]):
            assert np.array_equal(bx, bx0)
    assert len({run[0][2] for run in runs}) == 1
    assert max(len(run) for run in runs) == steps
    assert len({run[-1][2] for run in runs}) > 1


def test_each_probe_starts_from_the_same_state_and_batches():
    x, y = _data(256, 0)
    xv, yv = _data(64, 1)
    model = _model()
    initial = _built(model)
    calls = _recording(model)
    # seed=None: a fresh shuffling order, the same for every probe
    res = _find(
        model,
        x,
        y,
        batch_size=32,
        seed=None,
        probe_data=[(xv[:32], yv[:32]), (xv[32:], yv[32:])],  # batches, read once
        **SWEEP,
    )
    assert isinstance(res.probes, Probes)
    runs = _probe_runs(calls, initial)
    _assert_same_runs(runs)
    for run, loss in zip(runs, res.probes.losses):
        if math.isfinite(loss):  # not diverged: all 60 steps
            assert len(run) == PROBE_STEPS
    assert _same(initial, _state(model))


class _Noisy(keras.utils.PyDataset):
    """Batches with noise from numpy's global RNG (augmentation): the same batches again only
    when that RNG is put back."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x) // 32

    def __getitem__(self, i):
        bx = self.x[32 * i : 32 * (i + 1)]
        return bx + np.random.normal(0, 0.1, bx.shape).astype("float32"), self.y[
            32 * i : 32 * (i + 1)
        ]


def test_probes_put_the_global_rng_back_for_each_probe():
    x, y = _data(256, 0)
    xv, yv = _data(64, 1)
    model = _model()
    initial = _built(model)
    calls = _recording(model)
    rng_np = np.random.get_state()[1].copy()
    res = _find(model, _Noisy(x, y), probe_data=_Noisy(xv, yv), **SWEEP)
    assert isinstance(res.probes, Probes)
    _assert_same_runs(_probe_runs(calls, initial))
    assert _same(initial, _state(model))
    assert np.array_equal(np.random.get_state()[1], rng_np)


def test_probes_replay_a_one_shot_generator_with_accumulation():
    x, y = _data(256, 0)
    xv, yv = _data(64, 1)
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3, gradient_accumulation_steps=2), loss="mse")
    initial = _built(model)
    calls = _recording(model)
    gen = ((x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32))
    res = _find(model, gen, probe_data=(xv, yv), **SWEEP)
    assert isinstance(res.probes, Probes)
    # each probe step: one update of 2 micro-batches, from the batches kept after the sweep
    _assert_same_runs(_probe_runs(calls, initial), steps=2 * PROBE_STEPS)
    assert _same(initial, _state(model))


@pytest.mark.parametrize(
    ("probe_data", "match"),
    [
        (3, "probe_data must be an iterable of batches"),
        ([], "probe_data must yield at least one batch"),
        ((np.zeros((4, 8), "float32"), np.zeros((3, 1), "float32")), "probe_data's y"),
    ],
)
def test_bad_probe_data_is_a_one_line_error(probe_data, match):
    x, y = _data(64, 0)
    model = _model()
    before = _built(model)
    rng_np = np.random.get_state()[1].copy()
    with pytest.raises(ValueError, match=match) as err:
        lk.find_lr(model, x, y, batch_size=32, probe_data=probe_data, **SWEEP)
    assert "\n" not in str(err.value)
    assert _same(before, _state(model))
    assert np.array_equal(np.random.get_state()[1], rng_np)


# ------------------------------------------------------- a held set the model cannot score
_NOT_SCORABLE = r"the loss could not be computed on its first batch \(ValueError: "


def _global_seed():
    from keras.src.backend.common import global_state

    gen = global_state.get_global_attribute("global_seed_generator")
    return gen, None if gen is None else np.array(gen.state.numpy())


def _bad_layouts(xv, yv):
    return {
        "x_only": iter([xv[:32], xv[32:]]),  # batches without targets (a list: arrays x, y)
        "x_tuples": [(xv[:32],), (xv[32:],)],
        "dicts": [{"x": xv[:32], "y": yv[:32]}],  # a dict the Sequential model cannot take
        "features": (xv[:, :3], yv),  # arrays of another width
    }


@pytest.mark.parametrize("name", ["probe_data", "val_data"])
@pytest.mark.parametrize("layout", ["x_only", "x_tuples", "dicts", "features"])
def test_a_held_set_the_model_cannot_score_is_named_before_any_step(name, layout):
    x, y = _data(128, 0)
    xv, yv = _data(64, 1)
    model = _model()
    before = _built(model)
    calls = _recording(model)
    lr_obj, train_fn = model.optimizer._learning_rate, model.train_function
    rng_np, rng_py = np.random.get_state()[1].copy(), __import__("random").getstate()
    seed = _global_seed()
    with pytest.raises(ValueError, match=f"^{name}: {_NOT_SCORABLE}") as err:
        lk.find_lr(model, x, y, batch_size=32, **{name: _bad_layouts(xv, yv)[layout]}, **SWEEP)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"{name} must be (x, y) or (x, y, sample_weight) arrays" in msg
    assert ("as val_data takes them" in msg) == (name == "probe_data")
    assert calls == []  # no training step: not after the sweep
    assert _same(before, _state(model))
    assert model.optimizer._learning_rate is lr_obj and model.train_function is train_fn
    assert np.array_equal(np.random.get_state()[1], rng_np)
    assert __import__("random").getstate() == rng_py
    gen, state = _global_seed()
    assert gen is seed[0] and (state is None) == (seed[1] is None)
    assert state is None or np.array_equal(state, seed[1])


def test_a_layout_x_itself_has_is_left_to_the_sweep_to_report():
    # x's batches lack targets too: the first training step fails, probe_data is not blamed
    x, _ = _data(128, 0)
    model = _model()
    with pytest.raises(ValueError) as err:
        lk.find_lr(model, [(x[:64],), (x[64:],)], probe_data=[(x[:32],)], **SWEEP)
    assert "probe_data" not in str(err.value)


def _curves(res):
    import json

    return json.dumps(res.to_dict(), sort_keys=True)


@pytest.mark.parametrize("held", ["probe_data", "val_data", "both"])
def test_the_check_changes_neither_the_sweep_nor_the_probes(held, monkeypatch):
    from lrkit.keras import _finder

    x, y = _data(256, 0)
    xv, yv = _data(64, 1)
    kw = {"probe_data": (xv, yv), "val_data": [(xv[:32], yv[:32])]}
    kw = kw if held == "both" else {held: kw[held]}
    runs = []
    for check in (True, False):
        model = _fitted(x, y)
        np.random.seed(3)
        if not check:
            monkeypatch.setattr(_finder, "_check_scored", lambda *a: None)
        res = _find(model, _Noisy(x, y), **kw, **SWEEP)  # batches drawing from np.random
        runs.append((_curves(res), _state(model), np.random.get_state()[1].copy()))
    (a, state_a, rng_a), (b, state_b, rng_b) = runs
    assert a == b and _same(state_a, state_b) and np.array_equal(rng_a, rng_b)


class _Counting(keras.layers.Layer):
    """Counts its calls (inference included) in a non-trainable variable and adds the count to
    its inputs: every call changes what the next one computes."""

    def build(self, shape):
        self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False)

    def call(self, inputs):
        self.calls.assign_add(1.0)
        return inputs + 0.01 * self.calls


def _with_and_without_the_check(layer, held, monkeypatch):
    """The curves and the final state of two sweeps of ``Input, layer(), Dense`` with
    ``held`` given, the first scoring the held set's first batch before the sweep, the second
    not."""
    from lrkit.keras import _finder

    x, y = _data(256, 0)
    xv, yv = _data(64, 1)
    runs = []
    for check in (True, False):
        if not check:
            monkeypatch.setattr(_finder, "_check_scored", lambda *a: None)
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), layer(), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
        model.build((None, 8))
        res = _find(model, x, y, batch_size=32, **{held: (xv, yv)}, **SWEEP)
        runs.append((_curves(res), _state(model)))
    return runs


@pytest.mark.parametrize("held", ["probe_data", "val_data"])
def test_the_state_the_check_changes_is_put_back_before_the_sweep(held, monkeypatch):
    """Scoring the held set's first batch before the sweep changes the model's state (a layer
    that counts its calls): it goes back before the first step, so the sweep (and the probes)
    are those of a run without the check."""
    (a, state_a), (b, state_b) = _with_and_without_the_check(_Counting, held, monkeypatch)
    assert a == b and _same(state_a, state_b)


class _Drawing(keras.layers.Layer):
    """Adds noise drawn from Keras' global seed generator at every call, inference too."""

    def call(self, inputs):
        return inputs + 1e-3 * keras.random.normal(keras.ops.shape(inputs))


@pytest.mark.skipif(
    keras.backend.backend() == "jax", reason="a compiled JAX step draws only from seeded ops"
)
@pytest.mark.parametrize("held", ["probe_data", "val_data"])
def test_the_draw_the_check_makes_from_keras_seed_is_put_back_before_the_sweep(held, monkeypatch):
    (a, _), (b, _) = _with_and_without_the_check(_Drawing, held, monkeypatch)
    assert a == b


def test_the_sweep_is_the_same_with_and_without_probe_data():
    x, y = _data(256, 0)
    xv, yv = _data(64, 1)
    plain = _find(_model(), x, y, batch_size=32, **SWEEP)
    probed = _find(_model(), x, y, batch_size=32, probe_data=(xv, yv), **SWEEP)
    assert isinstance(probed.probes, Probes)
    for key in ("lrs", "losses", "held_lrs", "held_losses"):
        assert np.array_equal(getattr(plain, key), getattr(probed, key), equal_nan=True)


def _hand_probe(model, saved, lr, batches, probe_batches):
    """One probe by hand: the saved model and optimizer variables back (the Dropout layer's
    seed generator with them), the optimizer's learning rate set to ``lr``, ``PROBE_STEPS``
    ``train_on_batch`` steps on ``batches`` (the finder's stream from its start) and the mean
    ``test_on_batch`` loss over ``probe_batches``."""
    for v, val in zip((*model.variables, *model.optimizer.variables), saved):
        v.assign(val)
    keras.utils.set_random_seed(123)  # the global RNGs as find_lr was called with them
    model.optimizer.learning_rate = lr
    for i in range(PROBE_STEPS):
        bx, by = batches[i % len(batches)]
        model.train_on_batch(bx, by)
    total = 0.0
    for bx, by in probe_batches:
        model.reset_metrics()  # each batch's own loss (Keras before 3.15 keeps a running mean)
        total += float(np.asarray(model.test_on_batch(bx, by, return_dict=True)["loss"]))
    return total / len(probe_batches)


def test_probe_scores_match_a_hand_run():
    x, y = _data(256, 0)
    xv, yv = _data(64, 1)
    model = _fitted(x, y)
    saved = _state(model)
    # each probe starts from the global RNGs as find_lr found them (an unseeded Dropout draws
    # from the backend's global RNG on torch): the hand runs start from the same seeding
    keras.utils.set_random_seed(123)
    # shuffle=False: the stream is x's batches of 32 in order, cycled (8 per pass)
    res = _find(model, x, y, batch_size=32, shuffle=False, probe_data=(xv, yv), **SWEEP)
    losses = res.probes.losses
    finite = [k for k, v in enumerate(losses) if math.isfinite(v)]
    assert len(finite) >= 2 and len({losses[k] for k in finite}) > 1
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    probe_batches = [(xv[:32], yv[:32]), (xv[32:], yv[32:])]  # probe_data cut into batches
    for k in (finite[0], finite[-1]):
        # bit for bit: the same float32 learning rate, the same steps from the same state
        assert _hand_probe(model, saved, res.probes.lrs[k], batches, probe_batches) == losses[k]
