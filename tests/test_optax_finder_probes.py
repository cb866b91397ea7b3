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


# ------------------------------------------------------- a held set loss_fn cannot score
def _bad_layouts():
    (x, y), _ = _batches(2, 1)
    return {
        "dicts": [{"x": x, "y": y}],
        "x_only": [x],  # batches without the target
        "x_tuples": [(x,)],
        "features": [(x[:, :3], y)],  # another width
        "triples": [(x, y, y)],
    }


def _counting_adam(calls):
    """optax.adam whose update counts its calls (a traced step calls it once: none means no
    training step was even traced)."""

    def adam(learning_rate):
        inner = optax.adam(learning_rate)

        def update(grads, state, params=None):
            calls.append(1)
            return inner.update(grads, state, params)

        return optax.GradientTransformation(inner.init, update)

    return adam


@pytest.mark.parametrize("name", ["probe_data", "val_data"])
@pytest.mark.parametrize("layout", ["dicts", "x_only", "x_tuples", "features", "triples"])
@pytest.mark.parametrize("jit", [True, False])
def test_a_held_set_loss_fn_cannot_score_is_named_before_any_step(name, layout, jit):
    params = _params()
    before = jax.tree_util.tree_map(np.copy, params)
    updates, steps = [], []
    rng_np, rng_py = np.random.get_state()[1].copy(), __import__("random").getstate()
    with pytest.raises(ValueError) as e:
        find_lr(
            _loss,
            params,
            _counting_adam(updates),
            _batches(4, 0),
            jit=jit,
            callback=lambda i, lr, loss: steps.append(i),
            **{name: _bad_layouts()[layout]},
            **SWEEP,
        )
    msg = str(e.value)
    assert msg.startswith(f"{name}: the loss could not be computed on its first batch (")
    assert msg.endswith(
        f"); {name} must be batches loss_fn(params, batch) accepts, laid out as data's are"
    )
    assert "\n" not in msg
    assert isinstance(e.value.__cause__, (TypeError, ValueError))  # its type in the message
    assert f"({type(e.value.__cause__).__name__}: " in msg
    assert updates == [] and steps == []  # no training step was even traced
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, before)
    assert np.array_equal(np.random.get_state()[1], rng_np)
    assert __import__("random").getstate() == rng_py


def test_a_loss_fn_that_fails_on_data_too_is_left_to_the_sweep_to_report():
    def broken(p, batch):
        x, y = batch
        return jnp.mean((x @ p["W"] - y) ** 2)  # no "W" in params

    with pytest.raises(KeyError):  # the first step's own error: probe_data is not blamed
        find_lr(broken, _params(), optax.adam, _batches(4, 0), probe_data=_batches(1, 1))


def _noisy_loss(p, batch):
    """_loss plus noise drawn from numpy's global RNG (run eagerly, jit=False): the same
    curve again only when that RNG is where it was."""
    return _loss(p, batch) + 1e-3 * np.random.standard_normal()


@pytest.mark.parametrize(
    ("held", "jit"),
    [
        ("probe_data", True),
        ("val_data", True),
        ("both", True),
        ("probe_data", False),
        ("val_data", False),
    ],
)
def test_the_check_changes_neither_the_sweep_nor_the_probes(held, jit, monkeypatch):
    import json

    import lrkit.optax as lo

    kw = {"probe_data": _batches(2, 1), "val_data": _batches(2, 2)}
    kw = kw if held == "both" else {held: kw[held]}
    runs = []
    for check in (True, False):
        if not check:
            monkeypatch.setattr(lo, "_check_scored", lambda *a: None)
        np.random.seed(3)
        # a new function each run: jax caches the trace _check_loss_output makes of it
        loss = _loss if jit else (lambda p, b: _noisy_loss(p, b))
        res = find_lr(
            loss, _params(), optax.adam, _batches(8, 0), jit=jit, warn=False, **kw, **SWEEP
        )
        runs.append((json.dumps(res.to_dict(), sort_keys=True), np.random.get_state()[1].copy()))
    (a, rng_a), (b, rng_b) = runs
    assert a == b and np.array_equal(rng_a, rng_b)


def test_the_sweep_is_the_same_with_and_without_probe_data():
    data = _batches(8, 0)
    plain = find_lr(_loss, _params(), optax.adam, data, warn=False, **SWEEP)
    probed = find_lr(
        _loss, _params(), optax.adam, data, probe_data=_batches(2, 1), warn=False, **SWEEP
    )
    assert isinstance(probed.probes, Probes)
    for key in ("lrs", "losses", "held_lrs", "held_losses"):
        assert np.array_equal(getattr(plain, key), getattr(probed, key), equal_nan=True)
