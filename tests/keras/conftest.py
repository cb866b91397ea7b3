import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before keras is imported anywhere

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")


def _const_grad_model(n_in: int = 1) -> "keras.Model":
    """Dense(1, no bias, kernel 0) trained on the loss mean(y_pred) with x = 1: every SGD step
    moves the kernel by exactly -lr, so the kernel after training is -sum(learning rates)."""
    model = keras.Sequential(
        [keras.Input((n_in,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    return model


def _mean_pred_loss(y_true, y_pred):
    return keras.ops.mean(y_pred)


@pytest.fixture
def const_grad_model():
    return _const_grad_model


@pytest.fixture
def mean_pred_loss():
    return _mean_pred_loss


@pytest.fixture
def regression():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8)).astype("float32")
    y = (x @ rng.standard_normal((8, 1)) + 0.1 * rng.standard_normal((256, 1))).astype("float32")
    return x, y
