"""optax's polynomial schedule and contrib.reduce_on_plateau, reproduced by lrkit expressions."""

import numpy as np
import pytest

optax = pytest.importorskip("optax")
jnp = pytest.importorskip("jax.numpy")

from lrkit import schedules as S  # noqa: E402
from lrkit.feedback import ReduceOnPlateau  # noqa: E402

STEPS = np.arange(0, 60)


@pytest.mark.parametrize(
    "init,end,power,steps,begin",
    [
        (25.0, 10.0, 2, 10, 0),
        (10.0, 20.0, 0.5, 13, 0),
        (30.0, 10.0, 2, 10, 4),
        (1.0, 0.01, 3, 40, 7),
    ],
)
def test_polynomial_schedule_nonzero_end_and_power(init, end, power, steps, begin):
    ref = np.asarray(
        optax.polynomial_schedule(init, end, power, steps, transition_begin=begin)(STEPS),
        dtype=np.float64,
    )
    poly = S.polynomial(init, total_steps=steps, power=power, end_lr=end)
    ours = S.join([S.constant(init), poly], boundaries=[begin]) if begin else poly
    assert S.parse(str(ours)) == ours
    np.testing.assert_allclose(ours.values(STEPS), ref, rtol=2e-6)


def _optax_scales(values, patience, cooldown, atol):
    import jax

    tx = optax.contrib.reduce_on_plateau(
        factor=0.5, patience=patience, cooldown=cooldown, rtol=0.0, atol=atol
    )
    params = {"w": jnp.zeros(())}

    def body(state, v):
        _, state = tx.update(params, state, params, value=v)
        return state, state.scale

    _, scales = jax.lax.scan(body, tx.init(params), jnp.asarray(values, jnp.float32))
    return [float(x) for x in np.asarray(scales)]


@pytest.mark.parametrize("seed,patience,cooldown", [(0, 1, 0), (1, 2, 1), (2, 3, 2), (3, 1, 3)])
def test_optax_reduce_on_plateau_timing(seed, patience, cooldown):
    # optax cuts on the patience-th bad value, one update earlier than PyTorch's timing
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.choice([-0.5, -0.25, 0.0, 0.0, 0.25, 0.5], size=50)) + 40.0
    ref = _optax_scales(values, patience, cooldown, 0.25)
    ours = ReduceOnPlateau(
        factor=0.5, patience=patience - 1, cooldown=cooldown, threshold=0.25, threshold_mode="abs"
    )
    assert [ours.update(v) for v in values] == ref
    assert min(ref) < 1.0


def test_join_schedules_counts_each_segment_from_zero():
    ref = optax.join_schedules(
        [optax.linear_schedule(0.0, 0.1, 10), optax.cosine_decay_schedule(0.1, 40, alpha=0.1)],
        [10],
    )
    ours = S.join(
        [S.linear(0.0, end_lr=0.1, total_steps=10), S.cosine(0.1, total_steps=40, eta_min=0.01)],
        boundaries=[10],
    )
    np.testing.assert_allclose(ours.values(STEPS), np.asarray(ref(STEPS)), rtol=2e-6, atol=1e-9)
