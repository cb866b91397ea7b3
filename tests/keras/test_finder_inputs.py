"""lrkit.keras.find_lr on a model compiled without a loss: a one-line error, nothing changed."""

import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import lrkit.keras as lk  # noqa: E402


def test_model_compiled_without_a_loss_is_a_value_error(regression):
    x, y = regression
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    model.build((None, 8))
    before = [keras.ops.convert_to_numpy(v) for v in model.variables]
    with pytest.raises(ValueError, match=r"^model must be compiled with a loss"):
        lk.find_lr(model, x, y, num_iter=10)
    for v, b in zip(model.variables, before):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), b)


@pytest.mark.parametrize("built", [False, True])
def test_arrays_without_targets_name_y(regression, built):
    """find_lr(model, x) with the targets forgotten: one line naming y, where Keras' own
    error (model.fit(x)'s too) reads "None is not a valid value for jnp.array"."""
    x, y = regression
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    if built:
        model.fit(x, y, epochs=1, verbose=0)
    before = [keras.ops.convert_to_numpy(v) for v in model.variables]
    iterations = int(model.optimizer.iterations)
    with pytest.raises(ValueError) as info:
        lk.find_lr(model, x, num_iter=10)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("y: the loss could not be computed on the first batch without targets (")
    assert msg.endswith("); pass the targets (find_lr(model, x, y) for arrays, or batches (x, y))")
    for v, b in zip(model.variables, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), b)
    assert int(model.optimizer.iterations) == iterations
    # batches without targets (bare x, or (x,)) are named the same way
    for batches in ([x[i : i + 16] for i in range(0, 64, 16)], [(x[:16],), (x[16:32],)]):
        with pytest.raises(ValueError, match=r"^y: the loss could not be computed on the first"):
            lk.find_lr(model, batches, num_iter=10)
    # inputs the model cannot take: the model's own error, not a word about y
    with pytest.raises(ValueError) as info:
        lk.find_lr(model, x[:, :3], num_iter=10)
    assert not str(info.value).startswith("y:") and ", 3)" in str(info.value)  # x's shape


def test_a_model_whose_loss_needs_no_targets_sweeps_on_x_alone(regression):
    x, _ = regression

    class AutoEncoder(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(8)

        def call(self, inputs):
            return self.d(inputs)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return keras.ops.mean(keras.ops.square(y_pred - keras.ops.convert_to_tensor(x)))

    model = AutoEncoder()
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    res = lk.find_lr(model, x, num_iter=10, end_lr=1.0, max_extra_iter=0, warn=False)
    assert len(res.losses) == 10 and np.all(np.isfinite(res.losses))
    # its held set: the inputs with None for the targets, as the error below advises, or
    # batches of inputs, stacked in one array along its first axis: the same held losses
    opts = dict(num_iter=10, end_lr=1.0, max_extra_iter=0, warn=False, batch_size=32, seed=0)
    res = lk.find_lr(model, x, val_data=(x[:64], None), **opts)
    assert len(res.held_losses) > 0 and np.all(np.isfinite(res.held_losses))
    stacked = lk.find_lr(model, x, val_data=x[:64].reshape(2, 32, 8), **opts)
    np.testing.assert_array_equal(stacked.held_losses, res.held_losses)
    # batches (x,) of one item are the inputs alone, as bare batches of x (an unbuilt model is
    # built on them)
    losses = []
    for batches in (
        [x[i : i + 32] for i in range(0, 128, 32)],
        [(x[i : i + 32],) for i in range(0, 128, 32)],
    ):
        keras.utils.set_random_seed(0)
        fresh = AutoEncoder()
        fresh.compile(optimizer=keras.optimizers.SGD(0.01))
        losses.append(lk.find_lr(fresh, batches, **opts).losses)
    np.testing.assert_array_equal(*losses)


def test_one_array_as_val_data_is_a_one_line_error_before_any_warning(regression):
    """val_data=x_val alone, its samples shaped as x's (its rows would be read as 256
    target-less batches): one line naming val_data and the (x_val, y_val) form, with no
    warning about many batches first."""
    x, y = regression
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    before = [keras.ops.convert_to_numpy(v) for v in model.variables]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("val_data", "probe_data"):
            with pytest.raises(ValueError) as info:
                lk.find_lr(model, x, y, num_iter=10, **{name: x})
            assert str(info.value) == (
                f"{name} must be (x, y) or (x, y, sample_weight) arrays, or an iterable of "
                f"such batches, got one array of shape (256, 8), samples shaped as x's: pass "
                f"{name}=(x_val, y_val) ({name}=(x_val, None) for a model whose loss needs no "
                "targets)"
            )
    for v, b in zip(model.variables, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), b)


def test_add_loss_only_model_still_runs(regression):
    x, y = regression

    class Reg(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(1)

        def call(self, inputs):
            out = self.d(inputs)
            self.add_loss(keras.ops.mean(keras.ops.square(out - 1.0)))
            return out

    model = Reg()
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    res = lk.find_lr(model, x, y, num_iter=10, end_lr=1.0, max_extra_iter=0, warn=False)
    assert len(res.losses) == 10 and np.all(np.asarray(res.losses) > 0)


def _dict_model():
    a = keras.Input((4,), name="a")
    b = keras.Input((4,), name="b")
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([a, b]))
    model = keras.Model({"a": a, "b": b}, out)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return model


class _Batches(keras.utils.PyDataset):
    """Dict inputs with sample weights; records what the finder reads and calls."""

    def __init__(self, x, y, weight):
        super().__init__()
        self.x, self.y, self.weight = x, y, weight
        self.order = list(range(len(x) // 16))
        self.read = []
        self.epochs_ended = 0

    def __len__(self):
        return len(self.order)

    def __getitem__(self, i):
        self.read.append(self.order[i])
        sl = slice(self.order[i] * 16, (self.order[i] + 1) * 16)
        w = np.full(16, self.weight, np.float32)
        return {"a": self.x[sl, :4], "b": self.x[sl, 4:]}, self.y[sl], w

    def on_epoch_end(self):  # a dataset that reshuffles its own index each epoch
        self.epochs_ended += 1
        self.order.reverse()


def test_a_pydataset_is_replayed_in_order_and_its_epoch_state_left_alone(regression):
    x, y = regression
    results = {}
    for weight in (1.0, 2.0):
        data = _Batches(x, y, weight)
        keras.utils.set_random_seed(0)
        model = _dict_model()
        res = lk.find_lr(model, data, num_iter=40, stop_early=False, max_extra_iter=0, warn=False)
        n = len(data)
        assert data.epochs_ended == 0 and data.order == list(range(n))
        assert data.read == [i % n for i in range(len(data.read))]
        results[weight] = res
    # the sample weights reach the loss: twice the weight, twice the first step's loss
    assert results[2.0].losses[0] == pytest.approx(2.0 * results[1.0].losses[0], rel=1e-5)


def _zero_linear():
    """Dense(1) without bias, kernel zeros: every prediction is 0 before training."""
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )


@pytest.mark.parametrize("shuffle", [False, True])
def test_array_sample_weight_follows_its_samples_into_each_batch(shuffle):
    """sample_weight with arrays: each batch carries the weights of its own samples (the same
    indices as x and y, shuffled or not), so the first loss is that batch's weighted mse."""
    x = np.ones((32, 8), dtype="float32")
    y = np.arange(1, 33, dtype="float32").reshape(-1, 1)
    w = np.linspace(0.0, 3.0, 32).astype("float32")
    model = _zero_linear()
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    res = lk.find_lr(model, x, y, sample_weight=w, batch_size=8, shuffle=shuffle, seed=4,
                     eval_batches=0, num_iter=10, start_lr=1e-12, end_lr=1e-11,
                     stop_early=False, warn=False)  # fmt: skip
    idx = np.random.default_rng(4).permutation(32)[:8] if shuffle else np.arange(8)
    expected = float(np.mean(w[idx] * y[idx, 0] ** 2))
    assert res.losses[0] == pytest.approx(expected, rel=1e-6)


def test_y_and_sample_weight_must_have_as_many_samples_as_x(regression):
    """A y or sample_weight with more or fewer samples than x is a one-line ValueError naming
    it and both counts, before any step; the model is left untouched."""
    x, y = regression
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    model.build((None, 8))
    before = [keras.ops.convert_to_numpy(v) for v in model.variables]
    longer = np.concatenate([y, y[:4]])
    with pytest.raises(ValueError, match=r"^y must have as many samples as x \(256\), got 260$"):
        lk.find_lr(model, x, longer, num_iter=10)
    for w, n in ((np.ones(10, "float32"), 10), (np.ones(300, "float32"), 300)):
        message = rf"^sample_weight must have as many samples as x \(256\), got {n}$"
        with pytest.raises(ValueError, match=message):
            lk.find_lr(model, x, y, sample_weight=w, num_iter=10)
    for v, b in zip(model.variables, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), b)


def test_arrays_without_samples_are_named_before_any_step(regression):
    """x (or val_data's x) with no arrays or no samples: a one-line ValueError naming it."""
    x, y = regression
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    model.build((None, 8))
    before = [keras.ops.convert_to_numpy(v) for v in model.variables]
    cases = [
        ({"x": {}, "y": y}, r"^x must hold at least one array$"),
        ({"x": x, "y": {}}, r"^y must hold at least one array$"),
        ({"x": x[:0], "y": y[:0]}, r"^x must hold at least one sample, got 0$"),
        (
            {"x": x, "y": y, "val_data": (x[:0], y[:0])},
            r"^val_data's x must hold at least one sample, got 0$",
        ),
    ]
    for kw, message in cases:
        with pytest.raises(ValueError, match=message):
            lk.find_lr(model, num_iter=10, **kw)
    for v, b in zip(model.variables, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), b)


def test_an_empty_pydataset_is_a_one_line_error(regression):
    x, y = regression
    data = _Batches(x[:0], y[:0], 1.0)
    with pytest.raises(
        ValueError, match=r"^x must yield at least one batch, got an empty PyDataset$"
    ):
        lk.find_lr(_dict_model(), data, num_iter=10)
