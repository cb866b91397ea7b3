"""lrkit.keras.find_lr on a model compiled without a loss: a one-line error, nothing changed."""

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
