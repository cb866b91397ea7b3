"""lrkit.keras.find_lr: result object and exact restore of the model and optimizer."""

import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import lrkit.keras as lk  # noqa: E402
from lrkit import schedules as S  # noqa: E402
from lrkit.finder import PROBE_STEPS, FinderResult, LRFinderWarning  # noqa: E402


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dropout(0.1),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1),
        ]
    )


def _state(model):
    return (
        [np.array(v.numpy()) for v in model.variables],
        [np.array(v.numpy()) for v in model.optimizer.variables],
        [np.array(v.numpy()) for v in model.metrics_variables],
    )


def _assert_same(a, b):
    for ga, gb in zip(a, b):
        assert len(ga) == len(gb)
        for x, y in zip(ga, gb):
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True)


def _find(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LRFinderWarning)
        return lk.find_lr(*args, **kw)


@pytest.mark.parametrize("lr", ["float", "schedule"])
def test_find_lr_arrays_restores_everything(regression, lr):
    x, y = regression
    model = _model()
    opt_lr = 1e-3 if lr == "float" else lk.schedule(S.cosine(1e-2, total_steps=500))
    model.compile(optimizer=keras.optimizers.Adam(opt_lr), loss="mse", metrics=["mae"])
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # non-trivial optimizer state
    before = _state(model)
    lr_obj, train_fn = model.optimizer._learning_rate, model.train_function
    rng_np = np.random.get_state()[1].copy()
    res = _find(model, x, y, batch_size=32, start_lr=1e-5, end_lr=10.0, num_iter=40)
    assert isinstance(res, FinderResult)
    assert res.steps >= 10 and res.lrs[0] == pytest.approx(1e-5)
    assert res.suggestion is not None and res.max_lr is not None and res.base_lr < res.max_lr
    assert set(res.to_dict()["suggestions"]) == {
        "budget_edge",
        "steepest",
        "valley",
        "minimum",
        "slide",
        "steep",
    }
    _assert_same(before, _state(model))
    assert model.optimizer._learning_rate is lr_obj and model.train_function is train_fn
    assert np.array_equal(np.random.get_state()[1], rng_np)
    # the model trains on as if no sweep happened: same result as an untouched twin (on the
    # JAX backend: on the torch backend two identically initialised models do not train to
    # identical weights here, with or without a sweep)
    if keras.backend.backend() != "jax":
        return
    twin = _model()
    twin.compile(optimizer=keras.optimizers.Adam(opt_lr), loss="mse", metrics=["mae"])
    twin.build((None, 8))
    twin.optimizer.build(twin.trainable_variables)
    for v, val in zip(twin.variables, before[0]):
        v.assign(val)
    for v, val in zip(twin.optimizer.variables, before[1]):
        v.assign(val)
    model.fit(x[:64], y[:64], epochs=1, batch_size=32, shuffle=False, verbose=0)
    twin.fit(x[:64], y[:64], epochs=1, batch_size=32, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_find_lr_iterable_of_batches_and_unbuilt_model(regression):
    x, y = regression
    model = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="mse")

    def gen():  # one-shot generator of 4 batches, replayed for 30 steps
        for i in range(0, 256, 64):
            yield x[i : i + 64], y[i : i + 64]

    seen = []
    res = _find(
        model,
        gen(),
        num_iter=30,
        start_lr=1e-4,
        end_lr=1.0,
        callback=lambda i, lr, loss: seen.append(i),
    )
    assert model.built and model.optimizer.built
    assert seen == list(range(res.steps))
    assert int(model.optimizer.iterations) == 0
    built = _state(model)
    # a list of batches, on the now-built model: restored exactly
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    res2 = _find(model, batches, num_iter=20, start_lr=1e-4, end_lr=1.0)
    assert res2.steps >= 10
    _assert_same(built, _state(model))


def test_find_lr_restores_on_error(regression):
    x, y = regression
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0)
    before = _state(model)

    def bad():
        yield x[:32], y[:32]
        yield x[:32], y[:32]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _find(model, bad(), num_iter=20)
    _assert_same(before, _state(model))
    assert isinstance(model.optimizer._learning_rate, keras.Variable)


def test_find_lr_suggestion_trains_the_model(regression):
    x, y = regression
    model = _model(1)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    res = _find(model, x, y, batch_size=32, start_lr=1e-4, end_lr=10.0, num_iter=60)
    assert res.stop_reason in ("diverged", "nan", "completed")
    assert 1e-4 < res.suggestion < 10.0
    first = model.evaluate(x, y, verbose=0)
    model.optimizer.learning_rate = res.suggestion
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.5 * first


def test_find_lr_errors(regression):
    x, y = regression
    model = _model()
    with pytest.raises(ValueError, match="compiled"):
        lk.find_lr(model, x, y)
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="batch_size"):
        lk.find_lr(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match="num_iter"):
        lk.find_lr(model, x, y, num_iter=2)
    with pytest.raises(ValueError, match="y must"):
        lk.find_lr(model, x, y[:10])
    with pytest.raises(ValueError, match="x must"):
        lk.find_lr(model, [])
    with pytest.raises(ValueError, match="model"):
        lk.find_lr("model", x, y)
    for seed in ("0", -1, 1.5, True, [0]):
        message = r"^seed must be an integer in \[0, 4294967295\] or None, got "
        with pytest.raises(ValueError, match=message):
            lk.find_lr(model, x, y, seed=seed, num_iter=10)
    # the model's compiled optimizer is swept: optimizer= is not the family's former name here
    before = _state(model)
    with pytest.raises(
        TypeError,
        match=r"^optimizer is not an option of lrkit.keras.find_lr \(the model's compiled "
        r"optimizer is swept; optimizer_family names its family\); ",
    ):
        lk.find_lr(model, x, y, optimizer="sgd", num_iter=10)
    _assert_same(before, _state(model))


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        (
            {"callback": 3},
            TypeError,
            r"^callback must be a callable callback\(i, lr, loss\) or None",
        ),
        (
            {"callback": lambda i, lr: None},
            TypeError,
            r"^callback must be a callable callback\(i, lr, loss\), taking 3 positional",
        ),
        ({"max_skipped": -1}, ValueError, r"^max_skipped must be an integer >= 0 "),
        ({"shuffle": "no"}, ValueError, r"^shuffle must be True or False, got 'no'"),
        ({"progress": 1}, ValueError, r"^progress must be True or False, got 1"),
        ({"warn": "false"}, ValueError, r"^warn must be True or False, got 'false'"),
        (
            {"val_data": "held", "eval_batches": 0},
            ValueError,
            r"^val_data is given but eval_batches=0 turns the held measurement off",
        ),
        (
            {"x": "batches", "sample_weight": "ones"},
            ValueError,
            r"^sample_weight must be None when x is an iterable of batches$",
        ),
    ],
)
def test_bad_arguments_are_named_before_any_step(regression, kw, error, message):
    x, y = regression
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    model.fit(x[:32], y[:32], batch_size=32, verbose=0)
    before = _state(model)
    kw = dict(kw)
    if kw.pop("x", None) == "batches":
        args = ([(x[:32], y[:32]), (x[32:64], y[32:64])],)
    else:
        args = (x, y)
    if kw.get("val_data") == "held":
        kw["val_data"] = (x[:32], y[:32])
    if kw.get("sample_weight") == "ones":
        kw["sample_weight"] = np.ones(32, "float32")
    calls = []
    model.train_on_batch = lambda *a, **k: calls.append(a)
    with pytest.raises(error, match=message) as err:
        lk.find_lr(model, *args, num_iter=10, **kw)
    assert "\n" not in str(err.value)
    assert calls == []
    _assert_same(before, _state(model))


def test_a_model_that_is_not_a_keras_model_is_named(regression):
    x, y = regression
    with pytest.raises(ValueError, match=r"^model must be a keras.Model, got str$"):
        lk.find_lr("model", x, y)


def test_find_lr_torch_dataloader_on_jax_and_torch_rng_restored(regression):
    torch = pytest.importorskip("torch")
    x, y = regression
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    model.fit(x[:32], y[:32], batch_size=32, verbose=0)
    before = _state(model)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        batch_size=32,
        shuffle=True,  # draws its seed from torch's global generator
    )
    rng = torch.get_rng_state()
    res = _find(model, loader, num_iter=20, start_lr=1e-4, end_lr=1.0)
    assert res.steps >= 10
    assert torch.equal(torch.get_rng_state(), rng)
    _assert_same(before, _state(model))


def test_find_lr_non_array_targets_name_the_parameter(regression):
    x, y = regression
    model = _model()
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="^y must be an array"):
        lk.find_lr(model, x, y.ravel().tolist())


def test_find_lr_held_batches_and_test_function_restored(regression):
    x, y = regression
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9), loss="mse")
    model.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0)
    model.evaluate(x[:32], y[:32], verbose=0)  # a test function exists
    before = _state(model)
    test_fn = model.test_function
    res = _find(model, x, y, batch_size=32, num_iter=20, eval_every=5, total_steps=400)
    assert len(res.held_losses) == 4 and np.all(np.isfinite(res.held_losses))
    np.testing.assert_array_equal(res.held_lrs, res.lrs[::5][: len(res.held_losses)])
    assert res.optimizer_family == "momentum" and res.total_steps == 400
    assert model.test_function is test_fn
    _assert_same(before, _state(model))


@pytest.mark.parametrize("before", ["fit", "train_on_batch", "nothing"])
def test_compiled_steps_before_and_after_the_sweep_use_their_own_learning_rate(before):
    """The sweep's train step and the user's are different traces: a step compiled before the
    sweep does not hide the sweep's LR, and the user's next step runs at its own LR."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 8)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")

    def run():
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1)])  # fmt: skip
        m.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
        if before == "fit":
            m.fit(x, y, epochs=1, batch_size=64, verbose=0, shuffle=False)
        elif before == "train_on_batch":
            m.train_on_batch(x[:64], y[:64])
        return m

    m = run()
    r1 = _find(m, x, y, batch_size=64, num_iter=30)
    r2 = _find(m, x, y, batch_size=64, num_iter=30)
    np.testing.assert_array_equal(r1.losses, r2.losses)
    assert r1.stop_reason in ("diverged", "turned_up")  # the sweep's LR reached the model
    w = [np.array(v.numpy()) for v in m.trainable_variables]
    m.train_on_batch(x[64:128], y[64:128])
    ref = run()  # the same model without the sweeps: the same step at lr 1e-3
    w_ref = [np.array(v.numpy()) for v in ref.trainable_variables]
    ref.train_on_batch(x[64:128], y[64:128])
    for a, b, c, d in zip(w, m.trainable_variables, w_ref, ref.trainable_variables):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_allclose(np.array(b.numpy()) - a, np.array(d.numpy()) - c, atol=1e-7)


@pytest.mark.parametrize("fitted", [0, 2])
def test_find_lr_one_sweep_step_per_accumulated_update(const_grad_model, mean_pred_loss, fitted):
    """With ``gradient_accumulation_steps=4`` a sweep step is one optimizer update: four
    micro-batches at one LR, the loss recorded their mean; the optimizer's counter and
    accumulators (also mid-accumulation) are restored bit for bit."""
    x = np.array([[1.0], [2.0], [3.0], [4.0]], dtype="float32")  # loss kernel * x, grad x
    y = np.zeros_like(x)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01, gradient_accumulation_steps=4),
                  loss=mean_pred_loss)  # fmt: skip
    model.build((None, 1))
    model.optimizer.build(model.trainable_variables)
    for i in range(fitted):  # stop mid-accumulation: the sweep starts on a boundary anyway
        model.train_on_batch(x[i : i + 1], y[i : i + 1])
    before = _state(model)
    seen = []

    def cb(i, lr, loss):
        kernel = float(np.asarray(model.layers[0].kernel.numpy()).ravel()[0])
        seen.append((i, int(np.asarray(model.optimizer.iterations)), kernel))

    res = _find(model, x, y, batch_size=1, shuffle=False, eval_batches=0, num_iter=20,
                start_lr=1e-3, end_lr=1e-1, max_extra_iter=0, callback=cb)  # fmt: skip
    assert res.steps == 20 and res.stop_reason == "completed"
    kernel = 0.0
    for (i, iters, k), lr, loss in zip(seen, res.lrs, res.losses):
        assert iters == fitted // 4 + i + 1  # one update per sweep step
        assert loss == pytest.approx(2.5 * kernel, rel=1e-5, abs=1e-9)  # mean of 4 losses
        kernel -= 2.5 * lr  # the update: lr times the mean gradient of the 4 micro-batches
        assert k == pytest.approx(kernel, rel=1e-5)
    _assert_same(before, _state(model))


def test_progress_and_callback_follow_every_step(regression, capsys):
    x, y = regression
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    seen = []
    res = _find(
        model,
        x,
        y,
        num_iter=15,
        max_extra_iter=0,
        progress=True,
        callback=lambda i, lr, loss: seen.append((i, lr, loss)),
    )
    assert seen == list(zip(range(len(res.lrs)), res.lrs.tolist(), res.losses.tolist()))
    assert "lrkit find" in capsys.readouterr().err


def test_val_data_is_a_held_set_never_trained_on(regression):
    """val_data as arrays (model.fit's validation_data) or as batches runs the sweep that the
    same batches placed first in the data as the held set run (bit for bit)."""
    x, y = regression
    xv, yv, xt, yt = x[:64], y[:64], x[64:], y[64:]
    val = [(xv[i : i + 32], yv[i : i + 32]) for i in (0, 32)]
    train = [(xt[i : i + 8], yt[i : i + 8]) for i in range(0, len(xt), 8)]  # 24 > num_iter
    opts = dict(num_iter=12, max_extra_iter=0)

    def run(data, **kw):
        model = _model()
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
        r = _find(model, data, **opts, **kw)
        return r.lrs.tolist(), r.losses.tolist(), r.held_losses.tolist()

    ref = run(val + train, eval_batches=2)
    assert run(train, val_data=val) == ref
    assert run(train, val_data=(xv, yv), batch_size=32) == ref
    assert run(train, val_data=[xv, yv], batch_size=32) == ref  # a list, as Keras takes it
    assert run(train, val_data=val[:2]) == ref  # two batches: a list of batches still
    assert len(ref[2]) > 0
    with pytest.raises(ValueError, match=r"^val_data must yield at least one batch"):
        run(train, val_data=[])
    with pytest.raises(ValueError, match=r"^val_data's y must have as many samples"):
        run(train, val_data=(xv, yv[:10]))
    with pytest.raises(ValueError, match=r"^val_data's x must hold at least one sample"):
        run(train, val_data=(xv[:0], yv[:0]))
    with pytest.warns(UserWarning, match=r"^val_data holds 17 batches"):  # as every finder
        run(train, val_data=(x[:68], y[:68]), batch_size=4)


def test_the_rngs_val_data_and_loaders_draw_from_are_put_back(regression):
    """val_data is read after the RNG snapshot (a shuffled DataLoader or a numpy pipeline as
    val_data draws from the global RNGs), and a DataLoader's own generator= goes back too."""
    torch = pytest.importorskip("torch")
    x, y = regression
    data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    gen = torch.Generator().manual_seed(5)
    loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True, generator=gen)
    val = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True)  # global generator

    def numpy_val():
        order = np.random.permutation(len(x))[:64]
        yield x[order[:32]], y[order[:32]]
        yield x[order[32:]], y[order[32:]]

    for val_data in (val, numpy_val()):
        model = _model()
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        before = _state(model)
        np.random.seed(1)
        torch_rng, np_rng, gen_state = torch.get_rng_state(), np.random.get_state(), gen.get_state()
        res = _find(model, loader, val_data=val_data, num_iter=20, total_steps=500)
        assert res.steps >= 10 and len(res.held_losses) > 0
        assert torch.equal(torch.get_rng_state(), torch_rng)
        assert torch.equal(gen.get_state(), gen_state)
        after = np.random.get_state()
        assert after[0] == np_rng[0] and np.array_equal(after[1], np_rng[1])
        assert after[2:] == np_rng[2:]
        _assert_same(before, _state(model))


@pytest.mark.parametrize("held", ["val_data", "probe_data"])
def test_a_held_loaders_own_generator_is_put_back(regression, held):
    """A shuffled DataLoader with a generator= of its own as val_data or probe_data: reading
    its batches draws from that generator, which find_lr puts back."""
    torch = pytest.importorskip("torch")
    x, y = regression
    data = torch.utils.data.TensorDataset(torch.from_numpy(x[:64]), torch.from_numpy(y[:64]))
    gen = torch.Generator().manual_seed(7)
    loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True, generator=gen)
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    gen_state = gen.get_state()
    res = _find(model, x, y, **{held: loader}, num_iter=10, total_steps=100)
    assert (res.probes is not None) == (held == "probe_data") and len(res.held_losses) > 0
    assert torch.equal(gen.get_state(), gen_state)


def test_each_recorded_loss_is_its_own_batchs_on_every_keras_version(regression, monkeypatch):
    """Before Keras 3.15, train_on_batch and test_on_batch keep a running mean across calls:
    the finder resets the metrics before each call there, so every version records each
    batch's own loss (the same values as the version at hand, bit for bit)."""
    from lrkit.keras import _finder

    x, y = regression

    def run():
        model = _model()
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        r = _find(model, x, y, batch_size=32, shuffle=False, num_iter=20, eval_every=2)
        return r.losses.tolist(), r.held_losses.tolist()

    here = run()
    monkeypatch.setattr(keras, "__version__", "3.14.0")
    assert _finder._keeps_running_means()
    assert run() == here
    # each loss is its own batch's (the weights barely move at these LRs): a running mean
    # would put the second step's loss between the first two batches' losses
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    own = [
        float(model.evaluate(x[i : i + 32], y[i : i + 32], batch_size=32, verbose=0))
        for i in (32, 64)
    ]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    r = _find(model, x, y, batch_size=32, shuffle=False, num_iter=20)
    np.testing.assert_allclose(r.losses[:2], own, rtol=1e-5)


def _multi_optimizer_model(opts):
    keras.utils.set_random_seed(0)
    inp = keras.Input((8,))
    out = keras.layers.Add()([keras.layers.Dense(1, name="a")(inp), keras.layers.Dense(1)(inp)])
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.MultiOptimizer(opts), loss="mse")
    return model


@pytest.mark.parametrize("mapping", ["optimizer_map", "function"])
def test_a_multi_optimizer_of_several_is_refused_in_one_line(regression, mapping):
    """A MultiOptimizer's own learning rate is a placeholder Keras never uses: the sweep would
    move nothing. It is refused as LRScheduler refuses it, before any batch is drawn (a map
    given as a function: its optimizers are known once built, and it is refused then)."""
    if not hasattr(keras.optimizers, "MultiOptimizer"):
        pytest.skip("keras.optimizers.MultiOptimizer needs a newer Keras")
    x, y = regression
    sgd, adam = keras.optimizers.SGD(0.01), keras.optimizers.Adam(1e-3)
    if mapping == "optimizer_map":
        opts = keras.optimizers.OptimizerMap(sgd, {"a/.*": adam})
    else:
        opts = lambda v: adam if v.path.startswith("a/") else sgd  # noqa: E731
    model = _multi_optimizer_model(opts)
    drawn = []

    def batches():
        for i in range(0, 256, 32):
            drawn.append(i)
            yield x[i : i + 32], y[i : i + 32]

    message = (
        r"^find_lr follows the learning rate of one optimizer; this model's optimizer is a "
        r"keras\.optimizers\.MultiOptimizer of 2 optimizers \(sweep a copy of the model "
        r"compiled with one of them\)$"
    )
    with pytest.raises(ValueError, match=message):
        lk.find_lr(model, batches(), num_iter=10, total_steps=100, warn=False)
    if mapping == "optimizer_map":
        assert drawn == [] and not model.optimizer.built
    assert [float(keras.ops.convert_to_numpy(o.learning_rate)) for o in (sgd, adam)] == [
        np.float32(0.01),
        np.float32(1e-3),
    ]


def test_a_multi_optimizer_of_one_sweeps_that_optimizers_learning_rate(regression):
    """The one optimizer of a MultiOptimizer is the one swept: the same losses, bit for bit,
    as the sweep of that optimizer alone (the wrapper's placeholder learning rate moved
    nothing), and it is restored exactly."""
    if not hasattr(keras.optimizers, "MultiOptimizer"):
        pytest.skip("keras.optimizers.MultiOptimizer needs a newer Keras")
    x, y = regression

    def sweep(multi):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
        opt = keras.optimizers.SGD(0.01)
        if multi:
            opt = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(opt))
        model.compile(optimizer=opt, loss="mse")
        model.fit(x[:64], y[:64], batch_size=32, verbose=0)
        before = _state(model)
        res = _find(model, x, y, batch_size=32, num_iter=20, eval_batches=0, total_steps=100)
        _assert_same(before, _state(model))
        return res

    alone, multi = sweep(False), sweep(True)
    assert multi.optimizer_family == alone.optimizer_family == "sgd"
    np.testing.assert_array_equal(multi.losses, alone.losses)
    assert multi.losses[-1] > 10 * multi.losses[0]  # the sweep's LR reached the weights


class _Noise(keras.layers.Layer):
    """Noise from an unseeded keras.random call: Keras' global SeedGenerator."""

    def call(self, x, training=False):
        return x + keras.random.normal(keras.ops.shape(x), stddev=0.1) if training else x


def _global_seed_generator():
    from keras.src.backend.common import global_state
    from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR

    return global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)


def _seeded_global_generator():
    """Keras seeded with 0 and its global SeedGenerator created (by an unseeded draw)."""
    keras.utils.set_random_seed(0)
    keras.random.normal((2,))
    return _global_seed_generator()


def _sum_data():
    """64 samples of 8 features; the target is their sum."""
    x = np.random.default_rng(0).standard_normal((64, 8)).astype("float32")
    return x, x.sum(1, keepdims=True).astype("float32")


@pytest.mark.parametrize("existing", [True, False])
def test_keras_global_seed_generator_is_put_back(regression, existing):
    """An unseeded keras.random call in a layer draws from Keras' global SeedGenerator: after
    the sweep it is the same object in the same state, or still absent when there was none
    (the sweep creates it), so training after find_lr is the training without it, bit for
    bit. (On JAX the train step runs in a stateless scope, where the generator never moves;
    an unseeded random op there needs run_eagerly.)"""
    x, y = regression
    x, y = x[:64], y[:64]
    eager = keras.backend.backend() == "jax"  # JAX refuses unseeded random ops when tracing

    def train(find):
        keras.utils.set_random_seed(0)  # drops the global generator
        model = keras.Sequential([keras.Input((8,)), _Noise(), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse", run_eagerly=eager)
        if existing:
            model.fit(x, y, batch_size=32, shuffle=False, verbose=0)
        gen = _global_seed_generator()
        assert (gen is not None) == existing
        state = None if gen is None else np.array(keras.ops.convert_to_numpy(gen.state.value))
        if find:
            _find(model, x, y, batch_size=32, num_iter=10, eval_batches=0, total_steps=100)
            assert _global_seed_generator() is gen
            if gen is not None:
                after = np.array(keras.ops.convert_to_numpy(gen.state.value))
                assert after.dtype == state.dtype and np.array_equal(after, state)
        model.fit(x, y, batch_size=32, shuffle=False, verbose=0)
        return model.get_weights()

    for a, b in zip(train(False), train(True)):
        np.testing.assert_array_equal(a, b)


def test_val_data_as_a_list_of_a_dict_of_arrays_and_the_targets(regression):
    """[x_dict, y] is arrays, as Keras' validation_data reads it: the same sweep as the tuple."""
    x, y = regression
    inp = keras.Input((8,), name="a")
    opts = dict(num_iter=12, max_extra_iter=0, batch_size=32)

    def run(val):
        keras.utils.set_random_seed(0)
        model = keras.Model({"a": inp}, keras.layers.Dense(1)(inp))
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
        r = _find(model, {"a": x[64:]}, y[64:], val_data=val, **opts)
        return r.lrs.tolist(), r.losses.tolist(), r.held_losses.tolist()

    ref = run(({"a": x[:64]}, y[:64]))
    assert len(ref[2]) > 0
    assert run([{"a": x[:64]}, y[:64]]) == ref


def test_a_torch_finder_keyword_says_what_the_keras_finder_has_instead():
    with pytest.raises(TypeError) as e:
        lk.find_lr(None, None, snapshot="disk")
    assert str(e.value).startswith(
        "snapshot is not an option of lrkit.keras.find_lr (lrkit.torch.find_lr's; this finder "
        "keeps the model's and optimizer's variables in memory); options: batch_size, beta, "
    )
    with pytest.raises(TypeError, match=r"\(build the optimizer with gradient_accumulation_"):
        lk.find_lr(None, None, accumulation_steps=4)
    with pytest.raises(TypeError, match=r"^vall_data is not an option .*\(did you mean val_data"):
        lk.find_lr(None, None, vall_data=None)
    with pytest.raises(TypeError, match=r"^validation_data is not an option .*\(use val_data "):
        lk.find_lr(None, None, validation_data=None)


def test_a_subclass_of_sgd_is_read_as_sgd(regression):
    """The family is read as the PyTorch finder reads it: a subclass of SGD is SGD."""
    x, y = regression

    class MySGD(keras.optimizers.SGD):
        pass

    for opt, family in [(MySGD(1e-3, momentum=0.9), "momentum"), (MySGD(1e-3), "sgd")]:
        model = _model()
        model.compile(optimizer=opt, loss="mse")
        res = _find(model, x, y, batch_size=32, num_iter=10)
        assert res.optimizer_family == family


@pytest.mark.parametrize(("max_skipped", "accum"), [(10, 1), (0, 1), (10, 2)])
def test_a_step_the_loss_scale_optimizer_skips_is_retried_at_the_same_lr(
    max_skipped, accum
) -> None:
    """mixed_float16: a batch whose scaled gradients overflow cuts the loss scale and is
    dropped; the next batch replaces it at the same LR (as a GradScaler's skipped step in the
    PyTorch finder), so every point of the curve is one update of the model (with
    gradient_accumulation_steps: one, not two)."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(512, 8)).astype("float32")
        y = (100 * x @ rng.normal(size=(8, 1))).astype("float32")  # large: overflows at first
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1, dtype="float32")]
        )
        adam = keras.optimizers.Adam(1e-3, gradient_accumulation_steps=accum if accum > 1 else None)
        model.compile(optimizer=adam, loss="mse")
        seen: list[int] = []

        def updates(i: int, lr: float, loss: float) -> None:
            seen.append(int(np.asarray(model.optimizer.iterations)))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LRFinderWarning)
            lk.find_lr(model, x, y, num_iter=40, total_steps=1000, callback=updates,
                       max_skipped=max_skipped)  # fmt: skip
        assert float(np.asarray(model.optimizer.dynamic_scale)) == 32768.0  # restored
    finally:
        keras.mixed_precision.set_global_policy("float32")
    moved = [b - a for a, b in zip([0, *seen], seen)]
    if max_skipped:
        assert moved == [1] * len(seen)
    else:  # no retry: the skipped steps are points of the curve, as before
        assert 0 in moved
    with pytest.raises(ValueError, match=r"^max_skipped must be an integer >= 0 \(allowed"):
        lk.find_lr(model, x, y, max_skipped=-1)


def test_max_skipped_counts_dropped_batches_in_a_row_and_keeps_updates_whole() -> None:
    """Two batches dropped in one accumulated update, not in a row: with max_skipped=1 both
    are replaced, and every point of the curve is one whole update of 3 micro-batches."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        rng = np.random.default_rng(0)
        n = 16
        x = rng.normal(size=(64 * n, 8)).astype("float32")
        y = x.sum(1, keepdims=True).astype("float32")
        for b in (1, 3):  # two overflowing micro-batches of the first update
            y[b * n : (b + 1) * n] = 1e6
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1, dtype="float32")]
        )
        inner = keras.optimizers.SGD(0.01, gradient_accumulation_steps=3)
        model.compile(keras.optimizers.LossScaleOptimizer(inner, initial_scale=1024.0), "mse")
        counts: list[int] = []

        def count(i: int, lr: float, loss: float) -> None:
            counts.append(int(model.optimizer.iterations))

        lk.find_lr(model, x, y, batch_size=n, shuffle=False, num_iter=10, eval_batches=0,
                   max_skipped=1, warn=False, stop_early=False, callback=count)  # fmt: skip
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert counts == list(range(1, 11))  # one update per point, from the first


def _zero_linear(n_in=8, dtype=None):
    """Dense(1) without bias, kernel zeros: every prediction is 0 before training, so a batch's
    mse is the mean of its squared targets."""
    return keras.Sequential(
        [
            keras.Input((n_in,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", dtype=dtype),
        ]
    )


def test_shuffled_batches_follow_the_private_generator_seeded_by_seed():
    """shuffle=True: the first batch is the first ``batch_size`` indices of
    ``default_rng(seed).permutation(n)``; shuffle=False: the first samples in order."""
    x = np.ones((64, 8), dtype="float32")
    y = np.arange(64, dtype="float32").reshape(-1, 1)
    for shuffle, seed in [(True, 3), (True, 11), (False, 3)]:
        model = _zero_linear()
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
        res = _find(model, x, y, batch_size=8, shuffle=shuffle, seed=seed, eval_batches=0,
                    num_iter=10, start_lr=1e-9, end_lr=1e-8, stop_early=False)  # fmt: skip
        idx = np.random.default_rng(seed).permutation(64)[:8] if shuffle else np.arange(8)
        assert res.losses[0] == pytest.approx(float(np.mean(y[idx] ** 2)), rel=1e-6)


def test_val_data_arrays_keep_their_last_partial_batch():
    """val_data arrays of 5 samples in batches of 2 are three batches (2, 2, 1): the held loss
    is the mean of the three batch losses."""
    x = np.ones((32, 8), dtype="float32")
    y = np.zeros((32, 1), dtype="float32")
    xv = np.zeros((5, 8), dtype="float32")  # predictions 0 whatever the weights
    yv = np.arange(1, 6, dtype="float32").reshape(-1, 1)
    model = _zero_linear()
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    res = _find(model, x, y, batch_size=2, val_data=(xv, yv), num_iter=10, eval_every=2,
                stop_early=False)  # fmt: skip
    expected = (2.5 + 12.5 + 25.0) / 3
    assert len(res.held_losses) >= 1
    np.testing.assert_allclose(res.held_losses, expected, rtol=1e-6)


def test_a_never_evaluated_model_has_no_test_function_after_the_sweep(regression):
    """The held evaluation compiles a test step; a model that had none has none afterwards."""
    x, y = regression
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    assert model.test_function is None
    res = _find(model, x, y, batch_size=32, num_iter=10, eval_every=2)
    assert len(res.held_losses) >= 1
    assert model.test_function is None


def test_stop_training_set_during_the_sweep_is_put_back(regression):
    """A callback that sets ``model.stop_training`` (as an EarlyStopping would) does not leave
    it set after the sweep."""
    x, y = regression
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    assert model.stop_training is False

    def stop(i, lr, loss):
        model.stop_training = True

    _find(model, x, y, batch_size=32, num_iter=10, callback=stop)
    assert model.stop_training is False


def test_keras_global_seed_state_drawn_during_the_sweep_is_put_back(regression):
    """Unseeded keras.random draws during the sweep (here in the callback) move Keras' global
    SeedGenerator; afterwards it is the same object with its state as before, bit for bit."""
    x, y = regression
    gen = _seeded_global_generator()
    state = np.array(keras.ops.convert_to_numpy(gen.state.value))
    model = _zero_linear()
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    moved = []

    def draw(i, lr, loss):
        keras.random.normal((2,))
        moved.append(np.array(keras.ops.convert_to_numpy(gen.state.value)))

    _find(model, x, y, batch_size=32, num_iter=10, eval_batches=0, callback=draw)
    assert moved and not np.array_equal(moved[-1], state)
    assert _global_seed_generator() is gen
    after = np.array(keras.ops.convert_to_numpy(gen.state.value))
    assert after.dtype == state.dtype and np.array_equal(after, state)


def test_an_update_still_dropped_after_max_skipped_records_that_batchs_loss():
    """max_skipped=0: a batch whose scaled gradients overflow is not replaced; its point of
    the curve is that batch's loss (predictions 0: the mean of its squared targets)."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        x = np.ones((64, 8), dtype="float32")
        y = np.ones((64, 1), dtype="float32")
        y[:8] = 1e6  # the first batch overflows in float16
        model = _zero_linear()
        inner = keras.optimizers.SGD(1e-6)
        model.compile(keras.optimizers.LossScaleOptimizer(inner, initial_scale=1024.0), "mse")
        res = _find(model, x, y, batch_size=8, shuffle=False, eval_batches=0, num_iter=10,
                    max_skipped=0, start_lr=1e-9, end_lr=1e-8, stop_early=False)  # fmt: skip
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert res.losses[0] == pytest.approx(1e12, rel=1e-6)
    assert res.losses[1] == pytest.approx(1.0, rel=1e-6)


def test_each_probe_starts_on_an_accumulation_boundary():
    """An optimizer stopped mid-accumulation (one micro-batch held in its accumulator): each
    probe, as the sweep, starts on a boundary with empty accumulators, so its updates are the
    stream's micro-batches in pairs from the first."""
    x = np.array([[0.5], [1.0], [0.25], [0.75]], dtype="float32")
    y = np.zeros_like(x)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer=keras.optimizers.SGD(0.01, gradient_accumulation_steps=2),
                  loss="mse")  # fmt: skip
    model.build((None, 1))
    model.optimizer.build(model.trainable_variables)
    model.set_weights([np.ones((1, 1), dtype="float32")])
    model.train_on_batch(np.array([[3.0]], dtype="float32"), np.zeros((1, 1), "float32"))
    assert model.get_weights()[0][0, 0] == 1.0  # held in the accumulator, not applied
    probe = (np.ones((1, 1), dtype="float32"), np.zeros((1, 1), dtype="float32"))
    res = _find(model, x, y, batch_size=1, shuffle=False, probe_data=probe, start_lr=1e-3,
                end_lr=10.0, num_iter=30, total_steps=300)  # fmt: skip
    assert res.probes is not None
    checked = 0
    for lr, loss in zip(res.probes.lrs, res.probes.losses):
        k = 1.0
        for s in range(PROBE_STEPS):  # d/dk (k x)^2 = 2 k x^2, the mean over the pair
            a, b = float(x[(2 * s) % 4, 0]), float(x[(2 * s + 1) % 4, 0])
            k -= lr * (2 * k * a * a + 2 * k * b * b) / 2
        if np.isfinite(loss) and abs(k) < 1e3:
            assert loss == pytest.approx(k * k, rel=1e-4, abs=1e-12)
            checked += 1
    assert checked >= 2


def test_each_probe_starts_from_the_keras_global_seed_state_the_sweep_started_from():
    """A layer drawing unseeded noise moves Keras' global SeedGenerator while it trains (on
    the torch backend; the JAX train step draws in a stateless scope): the generator is put
    back before each probe, so every probe's first step sees the state the sweep's first
    step saw."""
    x, y = _sum_data()
    gen = _seeded_global_generator()
    model = keras.Sequential(
        [keras.Input((8,)), _Noise(), keras.layers.Dense(1, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse",
                  run_eagerly=keras.backend.backend() == "jax")  # fmt: skip
    model.build((None, 8))
    model.optimizer.build(model.trainable_variables)
    initial = [np.array(w) for w in model.get_weights()]
    firsts = []
    train_on_batch = model.train_on_batch

    def record(*args, **kw):
        if all(np.array_equal(a, b) for a, b in zip(model.get_weights(), initial)):
            firsts.append(np.array(keras.ops.convert_to_numpy(gen.state.value)))
        return train_on_batch(*args, **kw)

    model.train_on_batch = record
    res = _find(model, x, y, batch_size=16, eval_batches=0, probe_data=(x[:16], y[:16]),
                start_lr=1e-4, end_lr=10.0, num_iter=10, total_steps=100)  # fmt: skip
    assert res.probes is not None
    assert len(firsts) == 1 + len(res.probes.lrs)  # the sweep's first step, then each probe
    for s in firsts[1:]:
        assert np.array_equal(s, firsts[0])


def test_a_built_model_with_an_unbuilt_optimizer_is_left_with_a_fresh_optimizer(regression):
    """A model built but never trained (its optimizer not built): the optimizer is built before
    the snapshot, so afterwards its counter and slots are those of a freshly built optimizer
    and the weights are untouched."""
    x, y = regression
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.build((None, 8))
    assert model.built and not model.optimizer.built
    weights = [np.array(w) for w in model.get_weights()]
    _find(model, x, y, batch_size=32, num_iter=10)
    assert model.optimizer.built
    assert int(np.asarray(model.optimizer.iterations)) == 0
    slots = [v for v in model.optimizer.variables if "momentum" in v.path or "velocity" in v.path]
    assert slots and not any(np.any(np.array(v.numpy())) for v in slots)
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_each_pass_over_the_arrays_is_shuffled_in_a_new_order():
    """shuffle=True: every pass over the arrays takes the next permutation of the same private
    generator (``default_rng(seed)``), not the first pass's order again."""
    x = np.ones((16, 8), dtype="float32")
    y = np.arange(1, 17, dtype="float32").reshape(-1, 1)
    model = _zero_linear()
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    res = _find(model, x, y, batch_size=8, shuffle=True, seed=7, eval_batches=0, num_iter=10,
                start_lr=1e-12, end_lr=1e-11, stop_early=False, max_extra_iter=0)  # fmt: skip
    assert res.steps == 10
    rng = np.random.default_rng(7)
    expected = []
    for _ in range(5):  # five passes of two batches
        order = rng.permutation(16)
        expected += [float(np.mean(y[order[i : i + 8]] ** 2)) for i in (0, 8)]
    np.testing.assert_allclose(res.losses, expected, rtol=1e-5)


def test_val_data_sample_weight_weighs_the_held_loss():
    """val_data ``(x, y, sample_weight)``: each held batch's loss is its weighted loss (Keras'
    mean over the batch of weight times loss), and the held loss their mean."""
    x = np.ones((32, 8), dtype="float32")
    y = np.zeros((32, 1), dtype="float32")
    xv = np.zeros((4, 8), dtype="float32")  # predictions 0 whatever the weights
    yv = np.array([[1.0], [2.0], [3.0], [4.0]], dtype="float32")
    wv = np.array([0.0, 1.0, 2.0, 1.0], dtype="float32")
    model = _zero_linear()
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    res = _find(model, x, y, batch_size=2, val_data=(xv, yv, wv), num_iter=10, eval_every=2,
                stop_early=False)  # fmt: skip
    expected = ((0.0 * 1 + 1.0 * 4) / 2 + (2.0 * 9 + 1.0 * 16) / 2) / 2
    assert len(res.held_losses) == 5
    np.testing.assert_allclose(res.held_losses, expected, rtol=1e-6)


def test_an_accumulated_update_cut_short_after_max_skipped_records_its_mean_and_starts_fresh():
    """gradient_accumulation_steps=3, max_skipped=0: the update whose second micro-batch
    overflows ends there, its point the mean loss of the two batches it ran; the next update
    starts on a boundary with empty accumulators, so its gradient is the mean of its own three
    micro-batches (the first update's held gradient is dropped)."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        n = 4
        means = [1.0, 1e6, 3.0, 4.0, 5.0] + [1.0] * 15  # one target value per batch
        x = np.ones((n * len(means), 1), dtype="float32")
        y = np.repeat(np.array(means, dtype="float32"), n).reshape(-1, 1)
        model = _zero_linear(1)
        inner = keras.optimizers.SGD(1e-3, gradient_accumulation_steps=3)
        model.compile(keras.optimizers.LossScaleOptimizer(inner, initial_scale=1024.0), "mse")
        kernels: list[float] = []

        def record(i: int, lr: float, loss: float) -> None:
            kernels.append(float(np.asarray(model.layers[0].kernel.numpy()).ravel()[0]))

        res = _find(model, x, y, batch_size=n, shuffle=False, eval_batches=0, num_iter=10,
                    max_skipped=0, start_lr=1e-3, end_lr=2e-3, stop_early=False,
                    max_extra_iter=0, callback=record)  # fmt: skip
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert res.losses[0] == pytest.approx((1.0 + 1e12) / 2, rel=1e-3)
    assert kernels[0] == 0.0  # nothing applied
    # the kernel k = 0 before the second update: d/dk mean((k - t)^2) = -2 t for each batch
    expected = float(res.lrs[1]) * 2 * (3.0 + 4.0 + 5.0) / 3
    assert kernels[1] == pytest.approx(expected, rel=1e-2)


def test_each_probe_starts_from_the_keras_global_seed_state_even_after_sweep_draws():
    """Unseeded keras.random draws during the sweep (here in the callback) move Keras' global
    SeedGenerator; it is put back before each probe, so every probe's first step sees the
    state the sweep's first step saw."""
    x, y = _sum_data()
    gen = _seeded_global_generator()
    model = _zero_linear()
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    model.build((None, 8))
    model.optimizer.build(model.trainable_variables)
    firsts = []
    train_on_batch = model.train_on_batch

    def record(*args, **kw):
        if not np.any(model.get_weights()[0]):  # the first step of the sweep or of a probe
            firsts.append(np.array(keras.ops.convert_to_numpy(gen.state.value)))
        return train_on_batch(*args, **kw)

    def draw(i, lr, loss):
        keras.random.normal((2,))

    model.train_on_batch = record
    res = _find(model, x, y, batch_size=16, eval_batches=0, probe_data=(x[:16], y[:16]),
                start_lr=1e-4, end_lr=10.0, num_iter=10, total_steps=100,
                callback=draw)  # fmt: skip
    assert res.probes is not None
    assert len(firsts) == 1 + len(res.probes.lrs)
    for s in firsts[1:]:
        assert np.array_equal(s, firsts[0])


class _NumpyShift(keras.layers.Layer):
    """Adds a constant drawn from NumPy's global RNG when its call is traced."""

    def call(self, x):
        return x + np.float32(np.random.standard_normal())


def test_scoring_val_data_before_the_sweep_leaves_the_global_rngs_as_the_sweep_found_them():
    """The one-batch check of val_data traces a test step (here a layer draws from NumPy's
    global RNG when traced); the RNGs are put back before the sweep, so the sweep is the one
    run with the same batches placed first in the data as the held set (bit for bit)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 8)).astype("float32")
    y = x.sum(1, keepdims=True).astype("float32")
    xv, yv, xt, yt = x[:32], y[:32], x[32:], y[32:]
    train = [(xt[i : i + 8], yt[i : i + 8]) for i in range(0, len(xt), 8)]

    def run(data, **kw):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), _NumpyShift(), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
        r = _find(model, data, num_iter=10, max_extra_iter=0, eval_every=2, **kw)
        return r.losses.tolist(), r.held_losses.tolist()

    ref = run([(xv, yv), *train], eval_batches=1)
    assert run(train, val_data=(xv, yv), batch_size=32) == ref
