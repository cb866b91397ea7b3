"""lrkit.optax.find_lr(probe_data=...): the probes after the sweep, each from the initial
params and optimizer state, on the same batches, scored on probe_data."""

import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import jax.numpy as jnp  # noqa: E402

from lrkit.finder import PROBE_STEPS, Probes  # noqa: E402
from lrkit.finder.probes import probe_lrs  # noqa: E402
from lrkit.optax import find_lr  # noqa: E402

D = 4
W_TRUE = np.random.default_rng(7).standard_normal((D, 1)).astype(np.float32)


def _batches(n, seed, size=16):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.standard_normal((size, D)).astype(np.float32)
        y = (x @ W_TRUE + 0.1 * rng.standard_normal((size, 1))).astype(np.float32)
        out.append((x, y))
    return out


def _params():
    return {"w": np.full((D, 1), 0.5, np.float32), "b": np.zeros((1,), np.float32)}


def _loss(p, batch):
    x, y = batch
    return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)


SWEEP = {"num_iter": 40, "end_lr": 10.0, "total_steps": 500}


#: optax.adam with its learning rate in its state (optax's own machinery, not lrkit's)
_ADAM = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)


@jax.jit
def _adam_step(p, st, b):
    loss, g = jax.value_and_grad(_loss)(p, b)
    u, st = _ADAM.update(g, st, p)
    return optax.apply_updates(p, u), st, loss


_held_loss = jax.jit(_loss)


def _adam_state(params, lr, opt_state=None):
    st = _ADAM.init(params)
    st.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
    return st if opt_state is None else st._replace(inner_state=opt_state)


def _by_hand(lr, batches, probe_data, params, opt_state=None):
    """One probe, trained here: PROBE_STEPS Adam steps at lr from params (and opt_state, a
    state of optax.adam) on batches[0], batches[1], ..., then the mean loss over probe_data."""
    st = _adam_state(params, lr, opt_state)
    p = jax.tree_util.tree_map(jnp.asarray, params)
    for i in range(PROBE_STEPS):
        p, st, loss = _adam_step(p, st, batches[i % len(batches)])
        if not math.isfinite(float(loss)):
            return math.inf
    return sum(float(_held_loss(p, b)) for b in probe_data) / len(probe_data)


def test_probes_are_run_around_the_edge_and_scored_on_probe_data():
    data, val = _batches(8, 0), _batches(2, 1)
    res = find_lr(_loss, _params(), optax.adam, data, probe_data=val, warn=False, **SWEEP)
    pr = res.probes
    assert isinstance(pr, Probes)
    assert pr.lr_min == res.lr_min
    assert pr.steps == PROBE_STEPS
    assert len(pr.lrs) == 8 and len(pr.losses) == 8
    assert pr.lrs == pytest.approx(probe_lrs(res.lr_min))
    assert all(math.isfinite(v) and v > 0 for v in pr.losses)
    assert res.to_dict()["probes"]["losses"] == list(pr.losses)


def test_each_probe_is_an_independent_run_from_the_initial_state_on_the_same_batches():
    # mid-training start: non-trivial params and a plain adam state with moments and a count
    data, val = _batches(8, 0), _batches(2, 1)
    params = {"w": np.full((D, 1), -0.3, np.float32), "b": np.ones((1,), np.float32)}
    p, st = jax.tree_util.tree_map(jnp.asarray, params), _adam_state(params, 1e-2)
    for b in data[:5]:  # five steps of optax.adam(1e-2)
        p, st, _ = _adam_step(p, st, b)
    opt_state = st.inner_state  # a state of optax.adam(1e-2), as a training loop holds
    assert jax.tree_util.tree_structure(opt_state) == jax.tree_util.tree_structure(
        optax.adam(1e-2).init(params)
    )
    assert int(opt_state[0].count) == 5
    params = jax.tree_util.tree_map(np.asarray, p)
    params_before = jax.tree_util.tree_map(np.copy, params)
    state_before = jax.tree_util.tree_map(np.asarray, opt_state)

    res = find_lr(
        _loss,
        params,
        optax.adam,
        data,
        opt_state=opt_state,
        probe_data=val,
        warn=False,
        **SWEEP,
    )
    # every probe, redone here from the same start on data's first batches, scores the same
    for lr, got in zip(res.probes.lrs, res.probes.losses, strict=True):
        want = _by_hand(lr, data, val, params, opt_state)
        assert got == pytest.approx(want, rel=1e-6, abs=1e-9)
    # the caller's params and opt_state are untouched
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, params_before)
    jax.tree_util.tree_map(
        np.testing.assert_array_equal,
        jax.tree_util.tree_map(np.asarray, opt_state),
        state_before,
    )


def test_a_one_shot_generator_as_data_gives_every_probe_the_same_batches():
    pool = _batches(400, 3, size=8)
    yielded = []

    def gen():
        for b in pool:
            yielded.append(b)
            yield b

    val = _batches(2, 1)
    res = find_lr(_loss, _params(), optax.adam, gen(), probe_data=val, warn=False, **SWEEP)
    assert len(yielded) < len(pool)  # read once, not replayed from its start
    kept = yielded[-PROBE_STEPS:]  # the batches after the sweep's, shared by the probes
    for lr, got in zip(res.probes.lrs, res.probes.losses, strict=True):
        assert got == pytest.approx(_by_hand(lr, kept, val, _params()), rel=1e-6, abs=1e-9)


def test_probe_data_may_be_a_generator_and_has_aux_is_scored_on_the_loss():
    data = _batches(8, 0)
    plain = find_lr(
        _loss, _params(), optax.adam, data, probe_data=_batches(2, 1), warn=False, **SWEEP
    )
    aux = find_lr(
        lambda p, b: (_loss(p, b), {"n": b[0].shape[0]}),
        _params(),
        optax.adam,
        data,
        has_aux=True,
        probe_data=iter(_batches(2, 1)),
        warn=False,
        **SWEEP,
    )
    assert aux.probes.losses == plain.probes.losses
    assert aux.lrs.tolist() == plain.lrs.tolist()


def test_sgd_runs_the_probes_too():
    data, val = _batches(8, 0), _batches(2, 1)
    res = find_lr(_loss, _params(), optax.sgd, data, probe_data=val, warn=False, **SWEEP)
    assert isinstance(res.probes, Probes) and res.probes.lr_min == res.lr_min
    assert len(res.probes.losses) == 8
    assert any(math.isfinite(v) for v in res.probes.losses)


@pytest.mark.parametrize(
    "bad,expected",
    [
        (3, "probe_data must be an iterable of batches (a list, a generator, a loader), got int"),
        ([], "probe_data must yield at least one batch, got an empty iterable"),
    ],
)
def test_a_bad_probe_data_is_a_one_line_value_error_before_any_step(bad, expected):
    steps = []
    with pytest.raises(ValueError) as e:
        find_lr(
            _loss,
            _params(),
            optax.adam,
            _batches(4, 0),
            probe_data=bad,
            callback=lambda i, lr, loss: steps.append(i),
            **SWEEP,
        )
    assert str(e.value) == expected
    assert steps == []


def test_without_probe_data_there_are_no_probes():
    res = find_lr(_loss, _params(), optax.adam, _batches(8, 0), warn=False, **SWEEP)
    assert res.probes is None
    assert res.to_dict()["probes"] is None
