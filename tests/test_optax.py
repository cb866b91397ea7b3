"""lrkit.optax: exact schedules under jit/vmap, the plateau transformation, find_lr."""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np
import pytest

pytest.importorskip("optax")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import lrkit.optax as lo  # noqa: E402
from lrkit import schedules as S  # noqa: E402
from lrkit.feedback import ReduceOnPlateau  # noqa: E402
from lrkit.finder import FinderResult, LRFinderWarning  # noqa: E402

N = 100_001  # steps 0..100000

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
    "cyclic2": S.cyclic(
        1e-4, max_lr=1e-2, step_size_up=1500, step_size_down=500, mode="triangular2"
    ),
    "onecycle": S.onecycle(0.1, total_steps=100000, three_phase=True),
    "onecycle_momentum": S.onecycle_momentum(100000),
    "inverse_sqrt": S.inverse_sqrt(0.1, warmup_steps=4000),
    "piecewise": S.piecewise_constant([1000, 20000], values=[0.1, 0.01, 0.001]),
    "warmup": S.warmup_exponential(1e-4, end_lr=0.1, warmup_steps=50000),
    "wsd": S.wsd(0.1, total_steps=100000, warmup_steps=2000, decay="cosine"),
    "composite": (
        S.with_warmup(S.cosine(0.1, total_steps=90000), warmup_steps=10000)
        * S.exponential(1.0, gamma=0.99999)
    ).clamp(min_lr=1e-6, max_lr=0.05),
}

STEPS = np.arange(N)


@pytest.fixture(scope="module")
def jitted():
    """One jitted evaluator per schedule (int32 counts, as optax passes them)."""
    return {k: jax.jit(lo.schedule(s)) for k, s in FAMILIES.items()}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_schedule_equals_numpy_float32_under_jit(jitted, name):
    s = FAMILIES[name]
    ref = s.values(STEPS).astype(np.float32)
    got = np.asarray(jitted[name](jnp.arange(N, dtype=jnp.int32)))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, ref)
    # scalar counts, as optax passes them inside an optimizer update
    for t in (0, 1, 999, 1000, 54321, 100000):
        assert float(jitted[name](jnp.int32(t))) == float(np.float32(s.values([t])[0]))


def test_schedule_vmap_and_eager():
    s = FAMILIES["composite"]
    f = lo.schedule(s)
    t = (jnp.arange(2200, dtype=jnp.int32) * 45).reshape(200, 11)
    ref = s.values(np.asarray(t)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(jax.vmap(f)(t)), ref)
    np.testing.assert_array_equal(np.asarray(jax.jit(jax.vmap(jax.vmap(f)))(t)), ref)
    np.testing.assert_array_equal(np.asarray(jax.vmap(jax.jit(f))(t[:, 0])), ref[:, 0])
    # eager (concrete) calls take the same host path
    assert float(f(12345)) == float(np.float32(s(12345)))
    np.testing.assert_array_equal(
        np.asarray(f(np.arange(50))), s.values(np.arange(50)).astype(np.float32)
    )


@pytest.mark.parametrize("T", [7, 1000])
def test_formula_polynomial_cycle_stays_in_its_cycle_at_every_boundary(T):
    # float32 rounds t / T at multiples of T (3T / T -> 3.0000002): the cycle index is put
    # back, so the compiled formula gives end_lr there, not the next cycle's value
    s = S.polynomial(0.1, total_steps=T, cycle=True)
    f = jax.jit(jax.vmap(lo.schedule(s, evaluation="formula")))
    k = np.arange(1, 2001)
    steps = np.concatenate([k * T - 1, k * T, k * T + 1])
    got = np.asarray(f(jnp.asarray(steps, dtype=jnp.int32)))
    np.testing.assert_allclose(got, s.values(steps), rtol=1e-5, atol=1e-7)


def test_schedule_from_spec_and_traced_mode():
    s = S.cosine(0.1, total_steps=1000)
    f = lo.schedule(str(s))
    assert float(f(500)) == float(np.float32(s(500)))
    g = jax.jit(lo.schedule(s, evaluation="formula"))
    got = np.asarray(g(jnp.arange(1001)))
    np.testing.assert_allclose(got, s.values(np.arange(1001)), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="dtype"):
        lo.schedule(s, dtype=jnp.int32)
    with pytest.raises(ValueError, match="^schedule must"):
        lo.schedule(3.0)
    # the argument is named schedule, as in every adapter
    h = lo.schedule(schedule=s, evaluation="host")
    assert float(h(500)) == float(np.float32(s(500)))
    with pytest.raises(TypeError):
        lo.schedule(s=s)  # type: ignore[call-arg]


def test_schedule_drives_an_optax_optimizer():
    s = S.with_warmup(S.cosine(0.5, total_steps=20), warmup_steps=5)
    opt = optax.sgd(lo.schedule(s))
    params = jnp.zeros(3)
    state = opt.init(params)

    @jax.jit
    def upd(state):
        return opt.update(jnp.ones(3), state, params)

    for t in range(30):
        updates, state = upd(state)
        assert float(updates[0]) == -float(np.float32(s(t)))


# ============================================================================ plateau


def _reference_scales(values, **kw):
    ctl = ReduceOnPlateau(**kw)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for v in values:
            out.append(ctl.update(float(v)))
    return np.asarray(out), ctl


def _run_tx(tx, values):
    params = {"w": jnp.ones(2)}
    state = tx.init(params)

    @jax.jit
    def body(state, v):
        u, state = tx.update({"w": jnp.ones(2)}, state, params, value=v)
        return state, (u["w"][0], state.scale, state.num_reductions)

    state, (u0, scales, ks) = jax.lax.scan(body, state, jnp.asarray(values, jnp.float32))
    return np.asarray(scales), np.asarray(u0), (state, np.asarray(ks))


PLATEAU_CONFIGS = [
    dict(factor=0.5, patience=2),
    dict(factor=0.1, patience=0, cooldown=2),
    dict(factor=0.5, patience=3, threshold=0.05, threshold_mode="abs", min_scale=0.01),
    dict(factor=0.7, patience=1, mode="max", threshold=0.1),
    dict(factor=0.3, patience=4, cooldown=1, mode="max", threshold_mode="abs", threshold=0.01),
]


@pytest.mark.parametrize("cfg", PLATEAU_CONFIGS)
@pytest.mark.parametrize("offset", [0.0, -5.0, 3.0])
def test_reduce_on_plateau_matches_feedback_controller(cfg, offset):
    rng = np.random.default_rng(len(str(cfg)) + int(offset))
    # noisy decreasing stream that flattens, partly negative for offset < 0; a few NaNs
    n = 300
    vals = offset + np.exp(-np.arange(n) / 60.0) + 0.05 * rng.standard_normal(n)
    vals[[40, 41, 200]] = [np.nan, np.inf, -np.inf]
    vals = vals.astype(np.float32)  # both see the same float32 numbers
    ref, ctl = _reference_scales(vals, **cfg)
    got, u0, (state, ks) = _run_tx(lo.reduce_on_plateau(**cfg), vals)
    np.testing.assert_array_equal(got, ref.astype(np.float32))  # bit-exact scale sequence
    np.testing.assert_array_equal(u0, ref.astype(np.float32))  # updates are scaled
    assert int(state.num_reductions) == len(ctl.reductions) > 0
    # the updates (1-based) at which a reduction happened
    assert [i + 1 for i in range(n) if ks[i] > (ks[i - 1] if i else 0)] == ctl.reductions


def test_reduce_on_plateau_constant_negative_metric_reduces():
    vals = np.full(12, -3.0, np.float32)
    got, _, _ = _run_tx(lo.reduce_on_plateau(factor=0.5, patience=2), vals)
    # first value sets best; the 3rd non-improvement (patience + 1) reduces, then every 3
    np.testing.assert_allclose(got, [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125])
    ref, _ = _reference_scales(vals, factor=0.5, patience=2)
    np.testing.assert_allclose(got, ref)


def test_reduce_on_plateau_is_exact_through_4096_reductions_then_within_its_bound():
    """The scale is the float64 controller's, rounded once, bit for bit through reduction 4096
    (a table); after that, scale_4096 * exp(n * log(factor)) in float32, within a relative
    2**-23 * ln(scale_4096 / scale) + 2**-22 of the controller's (float32(factor) ** n, which
    compounds float32's rounding of the factor, drifted 3e-5 by 6000 reductions)."""
    if jax.config.jax_enable_x64:
        pytest.skip("the float32 state")
    vals = np.ones(7000, np.float32)  # patience=0: every update after the first reduces
    ref, _ = _reference_scales(vals, factor=0.999, patience=0)
    got, _, (_, ks) = _run_tx(lo.reduce_on_plateau(factor=0.999, patience=0), vals)
    assert ks.tolist() == list(range(7000))
    exact = ks <= 4096
    np.testing.assert_array_equal(got[exact], ref[exact].astype(np.float32))
    past = ~exact
    rel = np.abs(got[past].astype(np.float64) / ref[past] - 1)
    bound = 2.0**-23 * np.log(ref[4096] / ref[past]) + 2.0**-22
    assert (rel <= bound).all(), float((rel / bound).max())
    assert (got[past] != ref[past].astype(np.float32)).any()  # no longer bit for bit


def test_reduce_on_plateau_runs_under_debug_nans_without_jit():
    """jax_debug_nans with jax.disable_jit() runs every operation eagerly: no NaN is built
    (mode="max" compared its first value with -inf * (1 - threshold), NaN for threshold=1)."""
    vals = [-1.0, -1.0, 2.0, 0.5, 0.5, 0.5, -3.0, 4.0]
    for cfg in (
        dict(mode="max", threshold=1.0),
        dict(),
        dict(mode="max", threshold_mode="abs", accumulation_size=2),
    ):
        tx = lo.reduce_on_plateau(factor=0.5, patience=0, **cfg)
        state = tx.init(None)
        scales = []
        with jax.debug_nans(True), jax.disable_jit():
            for v in vals:
                _, state = tx.update(jnp.ones(2), state, None, value=v)
                scales.append(float(state.scale))
        acc = int(cfg.pop("accumulation_size", 1))
        ref, _ = _reference_scales(
            np.reshape(vals, (-1, acc)).mean(axis=1), factor=0.5, patience=0, **cfg
        )
        assert scales[acc - 1 :: acc] == ref.tolist(), cfg


def test_reduce_on_plateau_accumulation():
    rng = np.random.default_rng(0)
    vals = (-1.0 + 0.1 * rng.standard_normal(200)).astype(np.float32)
    got, _, _ = _run_tx(lo.reduce_on_plateau(factor=0.5, patience=1, accumulation_size=10), vals)
    means = vals.reshape(20, 10).astype(np.float64).mean(axis=1).astype(np.float32)
    ref, _ = _reference_scales(means, factor=0.5, patience=1)
    np.testing.assert_allclose(got[9::10], ref, rtol=1e-6)
    # the scale changes only at the observations (every 10th value)
    changes = [i for i in range(1, 200) if got[i] != got[i - 1]]
    assert changes and all(i % 10 == 9 for i in changes)


def test_reduce_on_plateau_state_can_be_donated():
    """Each counter of a fresh state is an array of its own: a jitted step that donates the
    optimizer state runs (the same buffer donated twice failed), as with optax.contrib's."""
    opt = optax.chain(optax.adam(1e-2), lo.reduce_on_plateau(patience=2, accumulation_size=2))
    params = {"w": jnp.zeros(4)}
    st = opt.init(params)
    leaves = jax.tree_util.tree_leaves(st)
    assert len({id(x) for x in leaves}) == len(leaves)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(p: Any, st: Any) -> Any:
        loss, g = jax.value_and_grad(lambda p: jnp.sum((p["w"] - 1.0) ** 2))(p)
        u, st = opt.update(g, st, p, value=loss)
        return optax.apply_updates(p, u), st

    for _ in range(4):
        params, st = step(params, st)
    assert int(st[1].num_updates) == 2


def test_reduce_on_plateau_in_chain_and_validation():
    tx = optax.chain(optax.sgd(0.1), lo.reduce_on_plateau(factor=0.5, patience=0))
    params = jnp.ones(2)
    st = tx.init(params)
    u, st = tx.update(jnp.ones(2), st, params, value=1.0)
    u, st = tx.update(jnp.ones(2), st, params, value=2.0)  # worse: patience 0 -> halve
    assert float(u[0]) == pytest.approx(-0.05)
    for kw, name in [
        (dict(factor=1.5), "factor"),
        (dict(patience=-1), "patience"),
        (dict(mode="up"), "mode"),
        (dict(threshold_mode="x"), "threshold_mode"),
        (dict(accumulation_size=0), "accumulation_size"),
    ]:
        with pytest.raises(ValueError, match=name):
            lo.reduce_on_plateau(**kw)


def test_reduce_on_plateau_value_must_be_one_real_number():
    """A per-example loss by mistake (an array) is refused, eagerly and under jit: it was
    broadcast into the scale, which then changed the shape of scalar params and scaled
    each element of the others by its own factor. A one-element array is its number."""
    tx = optax.chain(optax.sgd(0.1), lo.reduce_on_plateau(factor=0.5, patience=0))
    params = {"b": jnp.asarray(1.0), "w": jnp.ones(3)}
    grads = {"b": jnp.asarray(1.0), "w": jnp.ones(3)}
    st = tx.init(params)
    step = jax.jit(lambda g, s, p, v: tx.update(g, s, p, value=v))
    for update in (
        lambda v: tx.update(grads, st, params, value=v),
        lambda v: step(grads, st, params, v),
    ):
        with pytest.raises(ValueError, match=r"^value must be one value .*shape \(3,\)"):
            update(jnp.array([1.0, 2.0, 3.0]))
        with pytest.raises(
            ValueError, match=r"^value must be a real number, got an array of dtype bool"
        ):
            update(jnp.asarray(True))
        u, new = update(jnp.array([1.0]))
        assert u["b"].shape == () and new[1].scale.shape == ()
    # what no array holds (None from metrics.get, a string from a config): as
    # lrkit.feedback's controllers say it, not as jnp.asarray does
    for bad, shown in ((None, "None"), ("0.5", "'0.5'"), (True, "True")):
        with pytest.raises(ValueError) as info:
            tx.update(grads, st, params, value=bad)
        assert str(info.value) == f"value must be a real number, got {shown}"
    with pytest.raises(ValueError, match=r"^value must be a real number, got array\('0.5'"):
        tx.update(grads, st, params, value=np.array("0.5"))
    # what lrkit.feedback reads, read alike: an object array's number, a tensor with a graph
    torch = pytest.importorskip("torch")
    for host in (np.array(1.0, dtype=object), torch.tensor(1.0, requires_grad=True)):
        _, new = tx.update(grads, st, params, value=host)
        assert float(new[1].best) == 1.0


@pytest.mark.parametrize(
    "name,meant", [("rtol", "use threshold, "), ("atol", 'threshold_mode="abs"'), ("x", None)]
)
def test_reduce_on_plateau_unknown_option_names_it_and_the_options(name, meant):
    """optax.contrib's rtol/atol point to threshold; the message lists the accepted names."""
    with pytest.raises(TypeError) as info:
        lo.reduce_on_plateau(**{name: 1e-4})
    msg = str(info.value)
    assert msg.startswith(f"{name} is not an option of lrkit.optax.reduce_on_plateau")
    assert "\n" not in msg and (meant is None or meant in msg)
    assert msg.endswith(
        "; options: accumulation_size, cooldown, factor, min_scale, mode, patience, threshold, "
        "threshold_mode"
    )


def test_reduce_on_plateau_given_optax_contribs_first_argument_says_so():
    with pytest.raises(ValueError) as info:
        lo.reduce_on_plateau(0.5)  # type: ignore[arg-type]
    assert str(info.value) == (
        "mode must be one of 'min', 'max', got 0.5 (optax.contrib.reduce_on_plateau's first "
        "argument is factor; here pass factor=0.5)"
    )


def test_reduce_on_plateau_inside_inject_hyperparams_as_optax_contribs():
    """optax.inject_hyperparams reads the factory's signature: the plateau arguments are
    there by name, with the controller's defaults."""
    import inspect

    sig = inspect.signature(lo.reduce_on_plateau).parameters
    assert [(n, p.default) for n, p in sig.items()] == [
        ("mode", "min"),
        ("accumulation_size", 1),
        ("factor", 0.1),
        ("patience", 10),
        ("threshold", 1e-4),
        ("threshold_mode", "rel"),
        ("cooldown", 0),
        ("min_scale", 0.0),
    ]
    p = jnp.ones(())
    metrics = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    # eager: the hyperparameters in the state, the scales those of the plain transform
    injected = optax.inject_hyperparams(lo.reduce_on_plateau)(factor=0.5, patience=1)
    state = injected.init(p)
    assert float(state.hyperparams["factor"]) == 0.5 and int(state.hyperparams["patience"]) == 1
    plain = lo.reduce_on_plateau(factor=0.5, patience=1)
    plain_state = plain.init(p)
    for v in metrics:
        u, state = injected.update(jnp.ones(()), state, p, value=v)
        w, plain_state = plain.update(jnp.ones(()), plain_state, p, value=v)
        assert float(u) == float(w)
    assert float(plain_state.scale) == 0.25
    # under jit the numeric arguments are traced: named in one line, static_args works
    with pytest.raises(ValueError) as info:
        jax.jit(lambda s: injected.update(jnp.ones(()), s, p, value=1.0))(state)
    names = ("accumulation_size", "cooldown", "factor", "min_scale", "patience", "threshold")
    assert str(info.value) == (
        f"{', '.join(names)} must be concrete numbers, got traced JAX values: build the "
        "transformation outside jit (with optax.inject_hyperparams, which traces numeric "
        f"arguments in update: static_args={names!r})"
    )
    static = optax.inject_hyperparams(lo.reduce_on_plateau, static_args=names)
    tx = static(factor=0.5, patience=1)
    state = tx.init(p)
    step = jax.jit(lambda s, v: tx.update(jnp.ones(()), s, p, value=v))
    for v in metrics:
        u, state = step(state, v)
    assert float(u) == 0.25


def test_a_plateau_cut_applies_to_the_update_its_observation_arrives_with():
    # docs/jax.md: the update that completes an observation is already scaled
    tx = lo.reduce_on_plateau(factor=0.5, patience=0, accumulation_size=2)
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    scales = []
    for value in (1.0, 1.0, 2.0, 2.0):  # observations: mean 1.0 (best), then 2.0 (a cut)
        u, state = tx.update({"w": jnp.ones(())}, state, params, value=value)
        scales.append(float(u["w"]))
    assert scales == [1.0, 1.0, 1.0, 0.5]


# ============================================================================ find_lr


def _regression(n=256, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    w = rng.standard_normal((d, 1)).astype(np.float32)
    y = x @ w + 0.1 * rng.standard_normal((n, 1)).astype(np.float32)
    return x, y


def _mlp_params(d=8, h=16, seed=1):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return {
        "w1": jax.random.normal(k1, (d, h)) / math.sqrt(d),
        "b1": jnp.zeros(h),
        "w2": jax.random.normal(k2, (h, 1)) / math.sqrt(h),
        "b2": jnp.zeros(1),
    }


def _loss(params, batch):
    x, y = batch
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.mean((h @ params["w2"] + params["b2"] - y) ** 2)


def test_find_lr_optax_factory_and_params_untouched():
    x, y = _regression()
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    params = _mlp_params()
    before = jax.tree_util.tree_map(lambda a: np.array(a), params)
    ids = jax.tree_util.tree_map(id, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LRFinderWarning)
        res = lo.find_lr(
            _loss, params, optax.adam, batches, start_lr=1e-5, end_lr=10.0, num_iter=60
        )
    assert isinstance(res, FinderResult)
    assert res.steps >= 10 and res.stop_reason in ("completed", "turned_up", "diverged", "nan")
    assert 1e-5 <= res.suggestion <= 10.0 and res.max_lr is not None and res.base_lr is not None
    assert res.base_lr < res.max_lr
    assert set(res.suggestions()) == {
        "budget_edge",
        "steepest",
        "valley",
        "minimum",
        "slide",
        "steep",
    }
    assert res.to_dict()["steps"] == res.steps
    # the caller's params: same objects, same values, still usable (not donated/deleted)
    assert jax.tree_util.tree_map(id, params) == ids
    for k in params:
        assert np.array_equal(np.asarray(params[k]), before[k])
    # the losses follow the sweep's LRs (first ~ start loss)
    assert res.lrs[0] == pytest.approx(1e-5)
    # (the first batch is set aside as the held batch: the sweep starts on the second)
    assert res.losses[0] == pytest.approx(float(_loss(params, batches[1])), rel=1e-6)


def test_find_lr_inject_hyperparams_chain_opt_state_and_numpy_params():
    x, y = _regression(seed=3)

    def gen():  # one-shot generator shorter than num_iter: replayed
        for i in range(0, 256, 64):
            yield (x[i : i + 64], y[i : i + 64])

    params = jax.tree_util.tree_map(np.array, _mlp_params(seed=2))  # mutable numpy params
    before = {k: v.copy() for k, v in params.items()}
    opt = optax.chain(
        optax.clip_by_global_norm(10.0),
        optax.inject_hyperparams(functools.partial(optax.sgd, momentum=0.9))(learning_rate=0.1),
    )
    st = opt.init(params)
    st_before = jax.tree_util.tree_map(lambda a: np.array(a), st)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LRFinderWarning)
        res = lo.find_lr(
            _loss,
            params,
            opt,
            gen(),
            opt_state=st,
            num_iter=40,
            start_lr=1e-4,
            end_lr=1.0,
            callback=lambda i, lr, loss: seen.append((i, lr)),
        )
    assert seen[0] == (0, pytest.approx(1e-4)) and len(seen) == res.steps
    for k in params:
        assert np.array_equal(params[k], before[k])
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_array_equal(np.asarray(a), b), st, st_before
    )


def test_find_lr_integer_learning_rate_hyperparameter_sweeps_float_lrs():
    """``inject_hyperparams(optax.sgd)(learning_rate=1)`` holds an int32 learning rate: the
    sweep still sets the fractional LRs (the same curve as ``learning_rate=1.0``) and the
    caller's opt_state keeps its int32 hyperparameter."""
    x, y = _regression(seed=5)
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    params = _mlp_params(seed=1)
    runs = []
    for lr0 in (1, 1.0):
        opt = optax.inject_hyperparams(optax.sgd)(learning_rate=lr0)
        st = opt.init(params)
        dtype = st.hyperparams["learning_rate"].dtype
        res = lo.find_lr(_loss, params, opt, batches, opt_state=st, warn=False, num_iter=30,
                         start_lr=1e-4, end_lr=1.0, stop_early=False)  # fmt: skip
        assert st.hyperparams["learning_rate"].dtype == dtype
        assert int(st.hyperparams["learning_rate"]) == 1
        runs.append(res)
    assert runs[0].steps == runs[1].steps >= 20
    np.testing.assert_array_equal(runs[0].losses, runs[1].losses)
    assert runs[0].suggestion == runs[1].suggestion


def test_find_lr_errors():
    params = _mlp_params()
    data = [_regression(n=32)]
    with pytest.raises(ValueError, match="learning_rate"):
        lo.find_lr(_loss, params, optax.adam(1e-3), data)
    with pytest.raises(ValueError, match="learning_rate"):
        lo.find_lr(
            _loss, params, optax.inject_hyperparams(optax.sgd)(lo.schedule(S.constant(0.1))), data
        )
    with pytest.raises(ValueError, match="data"):
        lo.find_lr(_loss, params, optax.sgd, [])
    with pytest.raises(ValueError, match="num_iter"):
        lo.find_lr(_loss, params, optax.sgd, data, num_iter=3)
    with pytest.raises(ValueError, match="loss_fn"):
        lo.find_lr(None, params, optax.sgd, data)


def test_find_lr_optax_held_batches_family_and_total_steps():
    import functools

    x, y = _regression()
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    params = _mlp_params()
    sgdm = functools.partial(optax.sgd, momentum=0.9)
    res = lo.find_lr(
        _loss, params, sgdm, batches, num_iter=20, end_lr=1e-2, eval_every=5,
        max_extra_iter=0, total_steps=300, warn=False,
    )  # fmt: skip
    # the held batch is the first one; its loss at the first step is nearly the initial one
    assert len(res.held_losses) == 4 and res.optimizer_family == "momentum"
    assert res.held_losses[0] == pytest.approx(float(_loss(params, batches[0])), rel=1e-3)
    assert res.total_steps == 300
    assert lo.find_lr(
        _loss, params, optax.adam, batches, num_iter=10, warn=False
    ).optimizer_family == ("adaptive")


def test_reduce_on_plateau_arguments_are_the_controllers() -> None:
    with pytest.raises(TypeError):
        lo.reduce_on_plateau("min", 0.5)  # type: ignore[misc]
    with pytest.raises(TypeError, match="rtol"):
        lo.reduce_on_plateau(rtol=0.1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="patience"):
        lo.reduce_on_plateau(patience=-1)
    with pytest.raises(ValueError, match="mode"):
        lo.reduce_on_plateau("up")


def test_find_lr_puts_back_the_rngs_its_data_draws_from():
    """A numpy pipeline that reshuffles with np.random, and Python's random, as data and as
    val_data: their global states are as before the sweep (as the other finders keep them)."""
    import random

    x, y = _regression()

    def batches():
        while True:
            order = np.random.permutation(256)
            random.random()
            for i in range(0, 256, 32):
                yield x[order[i : i + 32]], y[order[i : i + 32]]

    def val():
        order = np.random.permutation(256)[:64]
        yield x[order[:32]], y[order[:32]]

    np.random.seed(1)
    random.seed(2)
    np_state, py_state = np.random.get_state(), random.getstate()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LRFinderWarning)
        res = lo.find_lr(_loss, _mlp_params(), optax.adam, batches(), val_data=val(), num_iter=30)
    assert res.steps >= 10
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1])
    assert after[2:] == np_state[2:] and random.getstate() == py_state


def test_find_lr_multisteps_sweeps_one_lr_per_accumulated_update(monkeypatch):
    """optax.MultiSteps(every_k_schedule=4) on batches of 32: each sweep step is one update of
    4 micro-batches at one LR, bit for bit the sweep of the plain optimizer on their mean
    gradient (batches of 128: the loss is a mean over examples), and the loss recorded is the
    micro-batches' mean. The caller's state, mid-accumulation, is left as it was."""
    x, y = _regression(n=1024)
    small = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 1024, 32)]
    big = [(x[i : i + 128], y[i : i + 128]) for i in range(0, 1024, 128)]
    params = _mlp_params()
    opts = dict(num_iter=20, eval_batches=0, stop_early=False, max_extra_iter=0)
    inner = optax.inject_hyperparams(optax.sgd)(learning_rate=1e-3)
    ms = optax.MultiSteps(inner, every_k_schedule=4).gradient_transformation()
    state = ms.init(params)
    _, state = ms.update(jax.grad(_loss)(params, small[0]), state, params)  # mid-accumulation
    before = jax.tree_util.tree_map(np.array, state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LRFinderWarning)
        acc = lo.find_lr(_loss, params, ms, small, opt_state=state, **opts)
        ref = lo.find_lr(_loss, params, inner, big, **opts)
    assert acc.steps == ref.steps == 20
    np.testing.assert_array_equal(acc.lrs, ref.lrs)
    # the mean of 4 micro-batch losses against one 128-example loss: the same up to rounding
    np.testing.assert_allclose(acc.losses, ref.losses, rtol=1e-5)
    assert int(state.mini_step) == 1  # the caller's state is untouched
    for a, b in zip(jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(state)):
        assert np.array_equal(a, np.asarray(b))
    monkeypatch.setattr(lo, "MAX_MICRO_BATCHES", 50)
    never = optax.MultiSteps(inner, every_k_schedule=100).gradient_transformation()
    with pytest.raises(ValueError, match=r"^optimizer \(optax.MultiSteps\) made no update in"):
        lo.find_lr(_loss, params, never, small, **opts)


@pytest.mark.filterwarnings("ignore::lrkit.finder.LRFinderWarning")
def test_multisteps_that_skip_updates_end_the_sweep_as_the_loss_says() -> None:
    """A MultiSteps whose should_skip_update_fn skips every micro-batch once the loss is NaN
    (skip_not_finite), or once the gradients are large (skip_large_updates), stops the sweep
    as the same optimizer without the skip does: no endless accumulation, no false error."""
    rng = np.random.default_rng(0)
    batches = [rng.uniform(0.5, 1.5, size=(16,)).astype(np.float32) for _ in range(8)]
    params = {"w": jnp.ones(())}
    inner = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    opts = dict(num_iter=60, start_lr=1e-4, end_lr=1e3, max_extra_iter=0, eval_batches=0)

    def nan_loss(p: Any, x: Any) -> Any:  # NaN once w < 0
        return jnp.mean((jnp.sqrt(p["w"]) - 0.5 * x) ** 2)

    def quad(p: Any, x: Any) -> Any:  # the gradient grows with |w|
        return jnp.mean((p["w"] * x - 1.0) ** 2)

    def multisteps(skip: Any) -> Any:
        return optax.MultiSteps(
            inner, every_k_schedule=2, should_skip_update_fn=skip
        ).gradient_transformation()

    plain = lo.find_lr(nan_loss, params, multisteps(None), batches, **opts)
    skipping = lo.find_lr(nan_loss, params, multisteps(optax.skip_not_finite), batches, **opts)
    assert plain.stop_reason == skipping.stop_reason == "nan"
    assert skipping.lrs.tolist() == plain.lrs.tolist()
    large = functools.partial(optax.skip_large_updates, max_squared_norm=4.0)
    bounded = lo.find_lr(quad, params, multisteps(large), batches, **opts)
    assert bounded.stop_reason in ("diverged", "completed", "turned_up")
    assert len(bounded.lrs) > 10


def test_reduce_on_plateau_counts_only_the_reductions_the_controller_makes() -> None:
    p = {"w": jnp.ones(())}
    for kw in (
        {"factor": 0.999, "patience": 0, "min_scale": 1e-3},  # past the table's 4096 cuts
        {"factor": 0.5, "patience": 0, "min_scale": 0.3},  # within the table
    ):
        tx = lo.reduce_on_plateau(**kw)

        def step(s: Any, v: Any, tx: Any = tx) -> Any:
            return tx.update(p, s, p, value=v)[1], None

        state, _ = jax.lax.scan(step, tx.init(p), jnp.ones(10_000))
        c = ReduceOnPlateau(**kw)
        for _ in range(10_000):
            c.update(1.0)
        assert int(state.num_reductions) == len(c.reductions)
        assert float(state.scale) == np.float32(c.scale)


def test_reduce_on_plateau_refuses_counts_its_int32_state_cannot_hold() -> None:
    for kw, said in (
        ({"patience": 10**12}, r"^patience must be an integer in \[0, 2147483647\], got 10+$"),
        ({"cooldown": 2**31}, r"^cooldown must be an integer in \[0, 2147483647\]"),
        ({"accumulation_size": 2**31}, r"^accumulation_size must be an integer in \[1, 2147483647"),
    ):
        with pytest.raises(ValueError, match=said):
            lo.reduce_on_plateau(**kw)
    p = {"w": jnp.ones(())}
    tx = lo.reduce_on_plateau(patience=2**31 - 1)  # a plateau never cut
    assert float(tx.update(p, tx.init(p), p, value=1.0)[1].scale) == 1.0


def test_reduce_on_plateau_takes_optax_contribs_0d_array_arguments() -> None:
    p = {"w": jnp.ones(())}
    arrays = lo.reduce_on_plateau(
        patience=jnp.asarray(0), factor=jnp.asarray(0.5), accumulation_size=jnp.asarray(2)
    )
    numbers = lo.reduce_on_plateau(patience=0, factor=0.5, accumulation_size=2)
    a, b = arrays.init(p), numbers.init(p)
    for v in (1.0, 1.0, 2.0, 2.0, 3.0, 3.0):
        a = arrays.update(p, a, p, value=v)[1]
        b = numbers.update(p, b, p, value=v)[1]
    assert float(a.scale) == float(b.scale) == 0.25

    @jax.jit
    def traced(patience: Any) -> Any:
        return lo.reduce_on_plateau(patience=patience)

    with pytest.raises(ValueError, match=r"^patience must be a concrete number, got a traced"):
        traced(jnp.asarray(3))


def test_reduce_on_plateau_keeps_cutting_with_a_factor_float32_cannot_tell_from_1() -> None:
    p = {"w": jnp.ones(())}
    for factor in (0.99999999, 0.99999996):
        tx = lo.reduce_on_plateau(factor=factor, patience=0)

        def step(s: Any, v: Any, tx: Any = tx) -> Any:
            return tx.update(p, s, p, value=v)[1], None

        state, _ = jax.lax.scan(step, tx.init(p), jnp.ones(2000))
        c = ReduceOnPlateau(factor=factor, patience=0)
        for _ in range(2000):
            c.update(1.0)
        assert int(state.num_reductions) == len(c.reductions) == 1999
        assert abs(float(state.scale) / c.scale - 1) < 1.1e-5


def test_the_plateau_count_past_the_table_follows_the_controller_s_float64() -> None:
    from lrkit.optax import _reductions_past

    def exact(scale: float, factor: float, floor: float) -> int:
        n = 0
        while True:
            new = max(scale * factor, floor)
            if not new < scale:
                return n
            scale, n = new, n + 1

    for factor, floor in ((0.9, 0.0), (0.999, 0.0), (0.999, 1e-300), (0.97, 1e-320)):
        start = factor**4096
        assert _reductions_past(start, factor, floor) == exact(start, factor, floor)
    start = 0.9999**4096  # a subnormal tail beyond 100 000 steps: an estimate, near
    assert abs(_reductions_past(start, 0.9999, 0.0) / exact(start, 0.9999, 0.0) - 1) < 1e-3


def test_reduce_on_plateau_keeps_the_dtype_of_bfloat16_updates_as_optax_contribs() -> None:
    """The scaled updates keep their dtype: bfloat16 updates cut by 0.5 are optax.contrib's
    bit for bit, in bfloat16."""
    updates = {"w": jnp.array([1.0, 3.0], jnp.bfloat16)}
    ours = lo.reduce_on_plateau(patience=0, factor=0.5)
    theirs = optax.contrib.reduce_on_plateau(patience=0, factor=0.5)
    state, ref_state = ours.init(updates), theirs.init(updates)
    for value in (1.0, 2.0):  # no improvement on the second, patience 0: one cut
        out, state = ours.update(updates, state, value=value)
        ref, ref_state = theirs.update(updates, ref_state, value=value)
    assert float(state.scale) == 0.5
    assert out["w"].dtype == ref["w"].dtype == jnp.bfloat16
    assert out["w"].tolist() == ref["w"].tolist() == [0.5, 1.5]


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("threshold_mode", ["rel", "abs"])
def test_reduce_on_plateau_an_equal_metric_is_no_improvement_with_threshold_0(
    mode: str, threshold_mode: str
) -> None:
    """With threshold=0 a metric equal to the best is not an improvement (strictly below for
    "min", above for "max"), as the controller's: a constant metric is cut every patience + 1
    updates."""
    cfg = dict(factor=0.5, patience=1, threshold=0.0, threshold_mode=threshold_mode, mode=mode)
    vals = np.full(7, 2.0, np.float32)
    got, _, (state, _) = _run_tx(lo.reduce_on_plateau(**cfg), vals)
    ref, ctl = _reference_scales(vals, **cfg)
    assert got.tolist() == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125]
    assert got.tolist() == ref.tolist()
    assert int(state.num_reductions) == len(ctl.reductions) == 3


def test_reduce_on_plateau_an_empty_value_is_refused_eagerly_and_under_jit() -> None:
    """An empty array (no metric at all) is refused in one line naming its shape, eagerly and
    when traced, and the state stays unchanged."""
    tx = lo.reduce_on_plateau(factor=0.5, patience=0)
    state = tx.init(None)
    step = jax.jit(lambda s, v: tx.update(jnp.ones(2), s, value=v))
    for update in (lambda v: tx.update(jnp.ones(2), state, value=v), lambda v: step(state, v)):
        with pytest.raises(ValueError, match=r"^value must be one value .*shape \(0,\)"):
            update(jnp.zeros((0,), jnp.float32))
    with pytest.raises(ValueError, match=r"^value must be one value .*shape \(0,\)"):
        tx.update(jnp.ones(2), state, value=np.zeros((0,), np.float32))
    assert int(state.num_updates) == 0


@pytest.mark.parametrize("evaluation", ["table", "formula"])
def test_host_counts_at_the_int32_bounds_are_read_and_one_past_them_refused(evaluation):
    """Without jax_enable_x64 a host count is accepted through int32's whole range (-2**31
    reads step 0's value, 2**31 - 1 the last step); one past either end is a one-line error
    naming the first such count, also among Python integers beyond int64."""
    if jax.config.jax_enable_x64:
        pytest.skip("int32 steps")
    f = lo.schedule(S.cosine(0.1, total_steps=100), evaluation=evaluation)
    assert float(f(np.int64(-(2**31)))) == float(f(0)) == np.float32(0.1)
    assert f(np.asarray([-(2**31), 2**31 - 1], np.int64)).tolist() == [np.float32(0.1), 0.0]
    said = (
        "count must be an integer in [0, 2**31 - 1] without jax_enable_x64 (JAX reads steps "
        'as int32), got {}; use evaluation="host" or enable jax_enable_x64'
    )
    for count, bad in (
        (np.int64(-(2**31) - 1), -(2**31) - 1),
        (np.int64(2**31), 2**31),
        ([2**31 - 1, 2**70], 2**70),
        ([-(2**31), -(2**70)], -(2**70)),
    ):
        with pytest.raises(ValueError) as e:
            f(count)
        assert str(e.value) == said.format(bad)


def _up_after_int32(step: float) -> float:
    return 0.1 if step <= 2**31 - 1 else 0.2


def test_a_uint32_count_at_int32s_largest_step_reads_that_step_not_the_next() -> None:
    """A uint32 count of 2**31 - 1 (the last step int32 holds) is read at that very step, as
    the int32 count is; 2**31 is the next step (float32 rounds 2**31 - 1 to 2**31)."""
    s = S.function(_up_after_int32, lr=1.0)
    f = lo.schedule(s, table_limit=16)
    counts = jnp.asarray([2**31 - 1, 2**31], jnp.uint32)
    assert f(counts).tolist() == [np.float32(0.1), np.float32(0.2)]
    assert jax.jit(f)(counts).tolist() == [np.float32(0.1), np.float32(0.2)]
    assert float(f(jnp.int32(2**31 - 1))) == np.float32(0.1)


def _halving(step: float) -> float:
    return 0.5**step


@pytest.mark.parametrize(
    "s",
    [S.exponential(0.1, gamma=0.5), S.function(_halving, lr=0.1)],
    ids=["formula", "function"],
)
def test_a_whole_real_step_at_the_end_of_the_table_reads_that_step(s) -> None:
    """A real count equal to table_limit, the first step past the table, is that step's value
    (the formula's, or the host's), as the integer count is: not the table's last entry."""
    f = lo.schedule(s, table_limit=16)
    for g in (f, jax.jit(f)):
        assert float(g(jnp.float32(16.0))) == float(g(16))
        assert float(g(jnp.float32(15.0))) == float(g(15))
        assert float(g(jnp.float32(16.0))) != float(g(15))
    assert float(f(16)) == pytest.approx(0.1 * 0.5**16, rel=1e-6)


def test_reduce_on_plateau_0d_array_arguments_out_of_range_are_named_with_their_number() -> None:
    """A 0-d JAX array argument out of range (optax.contrib's types) is refused in the
    controller's words, with the number it holds."""
    for kw, said in (
        ({"factor": jnp.asarray(1.5)}, r"^factor must be in \[0\.0, 1\.0\), got 1\.5$"),
        ({"min_scale": jnp.asarray(-1.0)}, r"^min_scale must be >= 0 .*, got -1\.0$"),
        ({"patience": jnp.asarray(-1)}, r"^patience must be an integer >= 0 .*, got -1$"),
    ):
        with pytest.raises(ValueError, match=said):
            lo.reduce_on_plateau(**kw)


class _CountingWarmup:
    """A warmup to 1.0 over 10 steps that counts the steps it is called for."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, step: float) -> float:
        self.calls += 1
        return min(1.0, (step + 1) / 10)


def test_a_callable_schedule_calls_the_host_only_for_steps_past_its_table() -> None:
    """Steps its value table holds are read from the table alone: the Python callable is not
    called again for them, eagerly or under jit; a step past the table calls it."""
    fn = _CountingWarmup()
    f = lo.schedule(S.function(fn, lr=0.1) * S.cosine(1.0, total_steps=1000), table_limit=32)
    first = float(f(3))
    built = fn.calls
    assert built > 0
    within = jnp.arange(32, dtype=jnp.int32)
    assert float(f(3)) == first
    jax.jit(f)(within).block_until_ready()
    f(within).block_until_ready()
    assert fn.calls == built
    f(jnp.asarray([5, 40], jnp.int32)).block_until_ready()
    assert fn.calls > built


def test_a_table_limit_below_2_is_refused_naming_its_range() -> None:
    """table_limit=1 (a table of one step) is a one-line ValueError with the allowed range;
    2 is the smallest table accepted."""
    s = S.cosine(0.1, total_steps=100)
    with pytest.raises(ValueError) as e:
        lo.schedule(s, table_limit=1)
    assert str(e.value) == "table_limit must be an integer >= 2 (allowed range: [2, inf)), got 1"
    f = lo.schedule(s, table_limit=2)
    assert float(f(5)) == float(np.float32(s(5)))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("evaluation", ["formula", "table", "host"])
def test_every_evaluation_returns_the_dtype_asked_for(evaluation: str, dtype: Any) -> None:
    """dtype= is the output dtype of each evaluation, eagerly and under jit: the float32 value
    rounded once to bfloat16 or float16."""
    s = S.cosine(0.1, total_steps=10)
    f = lo.schedule(s, evaluation=evaluation, dtype=dtype)
    for out in (f(3), jax.jit(f)(jnp.asarray(3, jnp.int32))):
        assert out.dtype == dtype
        assert float(out) == float(jnp.asarray(np.float32(s(3))).astype(dtype))


@pytest.mark.parametrize("mode", [True, False])
def test_reduce_on_plateau_a_bool_mode_is_refused_as_a_mode_not_as_a_factor(mode: bool) -> None:
    """A bool is no factor given first by mistake: the one-line error is the controller's,
    naming the modes, with no hint about optax.contrib's factor."""
    with pytest.raises(ValueError) as e:
        lo.reduce_on_plateau(mode)  # type: ignore[arg-type]
    assert str(e.value) == f"mode must be one of 'min', 'max', got {mode}"


def test_reduce_on_plateau_stops_counting_at_a_min_scale_the_cuts_reach_exactly() -> None:
    """A min_scale equal to the float64 scale after 4127 cuts (past the table's 4096): the
    controller makes 4127 reductions and no more, as does the transformation."""
    factor, cuts = 0.999, 4127
    floor = 1.0
    for _ in range(cuts):
        floor *= factor
    kw = {"factor": factor, "patience": 0, "min_scale": floor}
    tx = lo.reduce_on_plateau(**kw)
    p = {"w": jnp.ones(())}

    def step(s: Any, v: Any) -> Any:
        return tx.update(p, s, p, value=v)[1], None

    state, _ = jax.lax.scan(step, tx.init(p), jnp.ones(cuts + 100))
    c = ReduceOnPlateau(**kw)
    for _ in range(cuts + 100):
        c.update(1.0)
    assert len(c.reductions) == cuts
    assert int(state.num_reductions) == cuts
    assert float(state.scale) == np.float32(floor)


def test_plateau_arguments_given_in_optax_contribs_order_get_the_call_with_keywords() -> None:
    from lrkit.optax import reduce_on_plateau

    with pytest.raises(TypeError) as info:
        reduce_on_plateau(0.5, 3)
    assert str(info.value) == (
        "lrkit.optax.reduce_on_plateau: takes 1 positional argument (mode) but 2 were given; "
        "give the others by keyword, as in reduce_on_plateau(factor=0.5, patience=3) "
        "(parameters: mode, accumulation_size, factor, patience, threshold, threshold_mode, "
        "cooldown, min_scale)"
    )
    with pytest.raises(TypeError, match=r"but 3 were given; give the others by keyword \("):
        reduce_on_plateau(0.5, 3, 1e-4)  # rtol has no lrkit name of its own: no call shown
    with pytest.raises(ValueError, match=r"here pass factor=0.5\)$"):
        reduce_on_plateau(0.5)
    with pytest.raises(TypeError, match=r"but 2 were given; give the others by keyword \("):
        reduce_on_plateau("min", 0.5)  # lrkit's own order: not read as optax's factor


@pytest.mark.parametrize("mode, best", [("min", np.inf), ("max", -np.inf)])
def test_reduce_on_plateau_starts_from_a_fresh_state(mode: str, best: float) -> None:
    """A fresh state: scale 1, no best yet (+inf for "min", -inf for "max"), every counter 0."""
    state = lo.reduce_on_plateau(mode, accumulation_size=3).init({"w": jnp.ones(2)})
    assert float(state.scale) == 1.0 and float(state.best) == best
    assert not bool(state.has_best) and float(state.acc_total) == 0.0
    counters = ("num_bad", "cooldown_counter", "acc_count", "num_updates", "num_reductions")
    assert [int(getattr(state, name)) for name in counters] == [0] * 5
    assert [getattr(state, name).dtype for name in counters] == [jnp.int32] * 5


def test_reduce_on_plateau_given_an_integer_first_argument_points_to_factor_too() -> None:
    with pytest.raises(ValueError) as info:
        lo.reduce_on_plateau(1)  # type: ignore[arg-type]
    assert str(info.value) == (
        "mode must be one of 'min', 'max', got 1 (optax.contrib.reduce_on_plateau's first "
        "argument is factor; here pass factor=1)"
    )


def test_reduce_on_plateau_with_factor_0_cuts_the_updates_to_0_once() -> None:
    """factor=0 (the controller accepts it) zeroes the updates at the first plateau; the
    scale then sits at its floor and no further cut is counted."""
    vals = [1.0, 2.0, 3.0, 4.0]
    got, u0, (state, _) = _run_tx(lo.reduce_on_plateau(factor=0.0, patience=0), vals)
    ref, ctl = _reference_scales(vals, factor=0.0, patience=0)
    assert got.tolist() == u0.tolist() == ref.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert int(state.num_reductions) == len(ctl.reductions) == 1


@pytest.mark.parametrize("evaluation", ["table", "host", "formula"])
def test_a_schedule_function_given_where_a_schedule_goes_points_to_the_one_it_wraps(
    evaluation: str,
) -> None:
    s = S.cosine(0.1, total_steps=10)
    fn = lo.schedule(s, evaluation=evaluation)
    assert fn.lrkit_schedule is s
    with pytest.raises(ValueError) as info:
        lo.schedule(fn)
    msg = str(info.value)
    assert msg.startswith("schedule must be a lrkit schedule, a spec string or a to_dict() dict")
    assert msg.endswith(" (it wraps one: give that, its .lrkit_schedule)")
