"""Keras' CosineDecay (with and without its warmup), reproduced by lrkit expressions (the Keras
side computes in float32: its rounding, relative, and absolute near a value of 0); the rows
of docs/parity.md's Keras table."""

import os
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")  # before keras is imported anywhere

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

from lrkit import schedules as S  # noqa: E402

STEPS = np.concatenate([np.arange(0, 260), [1000, 10**5, 10**7]])


def _keras_values(sched: Any) -> np.ndarray:
    if keras.backend.backend() == "jax":  # every step at once (the warmup is a scalar cond)
        import jax

        out = jax.vmap(sched)(jax.numpy.asarray(STEPS, dtype="float32"))
        return np.asarray(out, dtype=np.float64)
    one = [keras.ops.convert_to_numpy(sched(keras.ops.convert_to_tensor(float(t)))) for t in STEPS]
    return np.asarray(one, dtype=np.float64)


@pytest.mark.parametrize("alpha", [0.0, 0.05])
def test_cosine_decay(alpha: float) -> None:
    ref = _keras_values(keras.optimizers.schedules.CosineDecay(0.1, 200, alpha=alpha))
    ours = S.cosine(0.1, total_steps=200, eta_min=alpha * 0.1)
    np.testing.assert_allclose(ours.values(STEPS), ref, rtol=2e-6, atol=3e-8)


@pytest.mark.parametrize("alpha", [0.0, 0.05])
def test_cosine_decay_with_warmup(alpha: float) -> None:
    ref = _keras_values(
        keras.optimizers.schedules.CosineDecay(
            0.0, 200, alpha=alpha, warmup_target=0.2, warmup_steps=30
        )
    )
    ours = S.join(
        [
            S.warmup(0.0, end_lr=0.2, warmup_steps=30),
            S.cosine(0.2, total_steps=200, eta_min=alpha * 0.2),
        ],
        boundaries=[30],
    )
    assert S.parse(str(ours)) == ours
    np.testing.assert_allclose(ours.values(STEPS), ref, rtol=2e-6, atol=3e-8)
