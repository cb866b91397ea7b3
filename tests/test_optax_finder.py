"""lrkit.optax.find_lr: what it accepts and the one-line errors for what it cannot use."""

import functools
import itertools
import warnings
from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import jax.numpy as jnp  # noqa: E402

from lrkit.optax import find_lr  # noqa: E402


def _data(n=128, d=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x @ rng.standard_normal((d, 1))).astype(np.float32)
    return [(x[i : i + 32], y[i : i + 32]) for i in range(0, n, 32)]


def _params():
    return {"w": np.zeros((4, 1), np.float32), "b": np.zeros((1,), np.float32)}


def _loss(p, batch):
    x, y = batch
    return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)


def _curve(res):
    return res.stop_reason, res.lrs.tolist(), res.losses.tolist(), res.held_losses.tolist()


def test_an_integer_leaf_in_params_is_a_value_error_naming_it():
    params = dict(_params(), count=np.int32(3))
    with pytest.raises(ValueError) as e:
        find_lr(_loss, params, optax.adam, _data())
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("params must hold floating-point (or complex) arrays only")
    assert "got int32 at params['count']" in msg


@pytest.mark.parametrize(
    "params, message",
    [
        (optax.adam,  # torch's order: find_lr(model, optimizer, ...)
         r"^params must be a tree of floating-point arrays \(the first argument of loss_fn\), "
         r"got <function adam at 0x\w+> \(the arguments are find_lr\(loss_fn, params, "
         r"optimizer, data\), in the order of a JAX training step\)$"),
        ("w", r"^params must be a tree of floating-point arrays \(the first argument of "
              r"loss_fn\), got 'w'$"),
        ({"w": np.zeros(2), "f": print},
         r"^params must be a tree of floating-point arrays \(the first argument of loss_fn\), "
         r"got <built-in function print> at params\['f'\]$"),
        (None, r"^params must be the parameters loss_fn\(params, batch\) differentiates, a tree "
               r"of floating-point arrays, got None, which holds none$"),
        ({}, r", got \{\}, which holds none$"),
    ],
)  # fmt: skip
def test_params_that_hold_no_arrays_are_a_value_error_naming_params(params, message):
    called = []
    with pytest.raises(ValueError, match=message):
        find_lr(lambda p, b: called.append(1) or 0.0, params, optax.adam, _data())
    assert called == []  # before anything ran (JAX's own error came from deep inside)


@pytest.mark.parametrize(
    "fn,has_aux,expected",
    [
        (
            lambda p, b: (b[0] @ p["w"] - b[1])[:, 0] ** 2,
            False,
            "loss_fn must return a scalar loss (shape (), e.g. jnp.mean(...)), "
            "got an array of shape (32,)",
        ),
        (
            lambda p, b: (_loss(p, b), {"n": 1.0}),
            False,
            "loss_fn must return the loss alone, got a tuple of 2 items; for "
            "loss_fn(params, batch) -> (loss, aux) pass has_aux=True",
        ),
        (
            _loss,
            True,
            "loss_fn must return a (loss, aux) pair with has_aux=True, got an array of shape ()",
        ),
        (
            lambda p, b: jnp.sum(p["w"]).astype(jnp.int32),
            False,
            "loss_fn must return a floating-point loss, got dtype int32",
        ),
    ],
)
def test_a_loss_jax_cannot_differentiate_is_a_one_line_value_error(fn, has_aux, expected):
    for eval_batches in (1, 0):
        with pytest.raises(ValueError) as e:
            find_lr(fn, _params(), optax.adam, _data(), has_aux=has_aux, eval_batches=eval_batches)
        assert str(e.value) == expected


def test_the_batch_checked_without_held_batches_is_still_trained_on_first():
    data = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = find_lr(_loss, _params(), optax.sgd, data, eval_batches=0, num_iter=10)
    # at params = 0 the first step's loss is the first batch's mean of y**2
    assert res.losses[0] == pytest.approx(float(np.mean(data[0][1] ** 2)), rel=1e-6)
    assert res.losses[1] != pytest.approx(float(np.mean(data[0][1] ** 2)), rel=1e-3)


def test_the_plain_optimizers_state_is_accepted_with_a_factory():
    data = _data()
    params = _params()
    # a mid-training state of optax.adam(1e-3), as a training loop holds it
    plain = optax.adam(1e-3)
    st = plain.init(params)
    p = jax.tree_util.tree_map(jnp.asarray, params)
    for b in data[:3]:
        g = jax.grad(_loss)(p, b)
        u, st = plain.update(g, st, p)
        p = optax.apply_updates(p, u)
    before = jax.tree_util.tree_map(np.array, st)
    injected = optax.inject_hyperparams(optax.adam)(learning_rate=1e-7)
    wrapped = injected.init(params)._replace(inner_state=st)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = find_lr(_loss, params, optax.adam, data, opt_state=st, num_iter=20)
        b = find_lr(_loss, params, injected, data, opt_state=wrapped, num_iter=20)
        fresh = find_lr(_loss, params, optax.adam, data, num_iter=20)
    assert _curve(a) == _curve(b)
    assert _curve(a) != _curve(fresh)
    # the caller's state is left as it was
    for x, y in zip(jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(st)):
        np.testing.assert_array_equal(x, np.asarray(y))


def test_an_opt_state_of_another_optimizer_is_a_value_error_naming_opt_state():
    params = _params()
    with pytest.raises(ValueError) as e:
        find_lr(_loss, params, optax.adam, _data(), opt_state=optax.sgd(0.1).init(params))
    assert str(e.value) == (
        "opt_state must be a state of optimizer (the structure optimizer.init(params) "
        "returns, or that of the optimizer built with a learning-rate schedule), got one of "
        "another structure"
    )


def test_the_state_of_the_optimizer_built_with_a_schedule_is_accepted_with_a_factory():
    # a training loop that drives optax.adam with a schedule holds a step count for it where
    # optax.adam(1e-3) holds nothing; its moments are the same, and the sweep sets the LR
    from lrkit import schedules as S
    from lrkit.optax import schedule

    data, params = _data(), _params()
    scheduled = optax.adam(schedule(S.cosine(1e-3, total_steps=1000)))
    plain = optax.adam(1e-3)
    st, st_plain = scheduled.init(params), plain.init(params)
    p = jax.tree_util.tree_map(jnp.asarray, params)
    for b in data[:3]:  # the same moments: the LR differs, the gradients at p do not
        g = jax.grad(_loss)(p, b)
        _, st = scheduled.update(g, st, p)
        u, st_plain = plain.update(g, st_plain, p)
        p = optax.apply_updates(p, u)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = find_lr(_loss, params, optax.adam, data, opt_state=st, num_iter=20)
        b = find_lr(_loss, params, optax.adam, data, opt_state=st_plain, num_iter=20)
    assert _curve(a) == _curve(b)


def test_the_state_of_an_injected_schedule_is_accepted():
    # optax.inject_hyperparams(optax.adam)(learning_rate=schedule), the usual way to log the
    # LR, keeps the schedule's count in hyperparams_states where a number keeps nothing
    from lrkit import schedules as S
    from lrkit.optax import schedule

    data, params = _data(), _params()
    by_number = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    p = jax.tree_util.tree_map(jnp.asarray, params)
    for lr in (schedule(S.cosine(1e-3, total_steps=1000)), optax.cosine_decay_schedule(1e-3, 99)):
        injected = optax.inject_hyperparams(optax.adam)(learning_rate=lr)
        st, st_number, q = injected.init(params), by_number.init(params), p
        for b in data[:3]:  # the same moments: the LR differs, the gradients at q do not
            g = jax.grad(_loss)(q, b)
            _, st = injected.update(g, st, q)
            u, st_number = by_number.update(g, st_number, q)
            q = optax.apply_updates(q, u)
        before = jax.tree_util.tree_map(np.array, st)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = _curve(find_lr(_loss, params, by_number, data, opt_state=st_number, num_iter=20))
            for optimizer in (optax.adam, by_number):
                got = find_lr(_loss, params, optimizer, data, opt_state=st, num_iter=20)
                assert _curve(got) == want
        for x, y in zip(jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(st)):
            np.testing.assert_array_equal(x, np.asarray(y))  # the caller's state as it was


def test_a_factory_sweeps_bfloat16_params_with_float32_hyperparameters():
    # in bfloat16, Adam's b2 = 0.999 is 1.0 and its bias correction divides by zero
    data = _data()
    params16 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.bfloat16), _params())

    def loss16(p, batch):
        x, y = batch
        return jnp.mean((x.astype(jnp.bfloat16) @ p["w"] + p["b"] - y) ** 2)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = find_lr(loss16, params16, optax.adam, data, num_iter=30, total_steps=1000)
    assert np.isfinite(res.losses).all() and len(res.losses) >= 20
    assert res.suggestion is not None


def _assert_float64_lrs_applied_as_recorded(make_opt: Any) -> None:
    """A float64 sweep of SGD on a loss of gradient 1 (each step subtracts its lr) with the
    optimizer ``make_opt()`` builds: each recorded loss is minus the sum of the LRs before it,
    exactly (no float32 rounding on the way)."""
    if not hasattr(jax, "enable_x64"):
        pytest.skip("jax.enable_x64 is not available")
    with jax.enable_x64(True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = find_lr(
            lambda p, b: jnp.sum(p["w"] * b),
            {"w": np.zeros((), np.float64)},
            make_opt(),
            [np.ones((), np.float64)],
            eval_batches=0,
            num_iter=10,
            stop_early=False,
            max_extra_iter=0,
        )
    assert res.losses[1] == -res.lrs[0]
    assert res.losses[2] == -(res.lrs[0] + res.lrs[1])


def test_a_float64_learning_rate_is_applied_exactly_as_recorded():
    _assert_float64_lrs_applied_as_recorded(
        lambda: optax.inject_hyperparams(optax.sgd)(learning_rate=jnp.asarray(1.0, jnp.float64))
    )


def test_progress_and_callback_follow_every_step(capsys):
    seen = []
    res = find_lr(
        _loss,
        _params(),
        optax.sgd,
        _data(),
        num_iter=15,
        max_extra_iter=0,
        progress=True,
        callback=lambda i, lr, loss: seen.append((i, lr, loss)),
        warn=False,
    )
    assert seen == list(zip(range(len(res.lrs)), res.lrs.tolist(), res.losses.tolist()))
    assert "lrkit find" in capsys.readouterr().err


def test_val_data_is_a_held_set_never_trained_on():
    """val_data=V on data D runs the sweep that the first len(V) batches of V + D as the held
    set runs (the sweep trains on D from its start in both), bit for bit."""
    val, train = _data(64, seed=1), _data(512, seed=2)
    opts = dict(num_iter=12, max_extra_iter=0, warn=False)
    a = find_lr(_loss, _params(), optax.adam, val + train, eval_batches=len(val), **opts)
    b = find_lr(_loss, _params(), optax.adam, train, val_data=val, **opts)
    assert _curve(a) == _curve(b) and len(b.held_losses) > 0
    b0 = find_lr(_loss, _params(), optax.adam, train, val_data=iter(val), **opts)
    assert _curve(b0) == _curve(b)  # a generator is read once and kept
    with pytest.raises(ValueError, match=r"^val_data must yield at least one batch"):
        find_lr(_loss, _params(), optax.adam, train, val_data=[], **opts)
    with pytest.raises(ValueError, match=r"^val_data must be an iterable of batches"):
        find_lr(_loss, _params(), optax.adam, train, val_data=3, **opts)


def test_one_batch_given_as_val_data_is_refused_with_the_list_it_belongs_in():
    """val_data=(x, y) would be read as two batches, x then y: refused in one line before the
    sweep, also for a loss that indexes batch[0] and batch[1] (which computes a loss on rows
    of x without an error) and for dicts of arrays; a list of (x, y) batches sweeps."""
    x, y = _data(64, seed=1)[0]
    train = _data(256, seed=2)
    params = _params()

    def indexing(p, batch):
        return jnp.mean((batch[0] @ p["w"] + p["b"] - batch[1]) ** 2)

    for name in ("val_data", "probe_data"):
        for loss in (_loss, indexing):
            with pytest.raises(ValueError) as info:
                find_lr(loss, params, optax.adam, train, num_iter=12, **{name: (x, y)})
            assert str(info.value) == (
                f"{name} is one batch's arrays, a tuple of 2 with 32 samples each, where "
                "data's batches are tuples of 2: as a held set it would be read as 2 batches, "
                f"one per array; give one batch as a list of it, {name}=[(x, y)], or several "
                "batches"
            )
    with pytest.raises(ValueError, match=r"^val_data is one batch's arrays, a list of 2 with"):
        find_lr(_loss, params, optax.adam, train, num_iter=12, val_data=[{"a": x}, y])
    # a list of batches is no one batch, whatever its loss says
    with pytest.raises(ValueError) as info:
        find_lr(_loss, params, optax.adam, train, num_iter=12, val_data=[(x[:, :3], y)] * 2)
    assert str(info.value).endswith("laid out as data's are")
    res = find_lr(
        _loss, params, optax.adam, train, num_iter=12, max_extra_iter=0, val_data=[(x, y)]
    )
    assert len(res.held_losses) > 0


def test_a_chain_whose_update_needs_a_value_is_a_value_error_naming_the_optimizer():
    import lrkit.optax as lo

    opt = optax.chain(
        optax.inject_hyperparams(optax.adam)(learning_rate=1e-3), lo.reduce_on_plateau()
    )
    params = _params()
    before = jax.tree_util.tree_map(np.array, params)
    with pytest.raises(
        ValueError, match=r"^optimizer: a transformation in it needs update\(\.\.\., value=\.\.\.\)"
    ):
        find_lr(_loss, params, opt, _data())
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, before)
    # the same chain without the plateau transformation sweeps
    res = find_lr(
        _loss,
        params,
        optax.chain(optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)),
        _data(),
    )
    assert res.steps > 0


def test_an_optimizer_needing_several_update_arguments_names_each_of_them():
    with pytest.raises(ValueError) as e:
        find_lr(_loss, _params(), optax.lbfgs, _data(), num_iter=10)
    assert str(e.value) == (
        "optimizer: a transformation in it needs update(..., value=..., grad=..., "
        "value_fn=...), which the range test does not pass (it sets the LR alone): sweep the "
        "optimizer without a transformation that reads the loss "
        "(lrkit.optax.reduce_on_plateau, whose cuts would move the LR the sweep records); an "
        "optimizer that needs it for its own step (optax.contrib.momo, optax.lbfgs) cannot be "
        "swept"
    )


def test_the_family_is_read_off_the_factory_unless_the_options_name_one():
    import functools

    data = _data()
    sgdm = functools.partial(optax.sgd, momentum=0.9)
    res = find_lr(_loss, _params(), sgdm, data, num_iter=10, warn=False)
    assert res.optimizer_family == "momentum" and res.options.optimizer_family is None
    assert find_lr(
        _loss, _params(), optax.adam, data, num_iter=10, warn=False
    ).optimizer_family == ("adaptive")
    named = find_lr(_loss, _params(), sgdm, data, num_iter=10, warn=False, optimizer_family="sgd")
    assert named.optimizer_family == "sgd"


def _sgd_chain(**kw):
    return optax.chain(optax.clip(1.0), optax.inject_hyperparams(optax.sgd)(**kw))


def _sgd_steps(**kw):
    return optax.MultiSteps(optax.inject_hyperparams(optax.sgd)(**kw), 1).gradient_transformation()


@pytest.mark.parametrize(
    "build,family",
    [
        (lambda **kw: optax.inject_hyperparams(optax.sgd)(**kw), "sgd"),
        (lambda **kw: optax.inject_hyperparams(optax.sgd)(momentum=0.9, **kw), "momentum"),
        (
            lambda **kw: optax.inject_hyperparams(optax.sgd)(momentum=0.9, nesterov=True, **kw),
            "momentum",
        ),
        (lambda **kw: optax.inject_hyperparams(optax.adam)(**kw), "adaptive"),
        (
            lambda **kw: optax.inject_hyperparams(optax.sgd, static_args=("momentum",))(
                momentum=0.9, **kw
            ),
            "momentum",
        ),
        (lambda **kw: optax.inject_hyperparams(optax.sign_sgd)(**kw), "adaptive"),
        (lambda **kw: optax.inject_hyperparams(optax.lars)(**kw), "adaptive"),
        (lambda **kw: _sgd_chain(momentum=0.9, **kw), "momentum"),
        (lambda **kw: _sgd_chain(**kw), "sgd"),
        (lambda **kw: optax.chain(optax.inject_hyperparams(optax.sign_sgd)(**kw)), "adaptive"),
        (lambda **kw: _sgd_steps(momentum=0.9, **kw), "momentum"),
        (lambda **kw: _sgd_steps(**kw), "sgd"),
        (
            lambda **kw: optax.MultiSteps(
                optax.inject_hyperparams(optax.adam)(**kw), 1
            ).gradient_transformation(),
            "adaptive",
        ),
        (
            lambda **kw: optax.MultiSteps(
                optax.inject_hyperparams(optax.sgd, static_args=("momentum",))(momentum=0.9, **kw),
                2,
            ).gradient_transformation(),
            "momentum",
        ),
        (
            lambda **kw: optax.chain(
                optax.inject_hyperparams(optax.adam, static_args=("learning_rate",))(
                    learning_rate=1e-3
                ),
                optax.inject_hyperparams(optax.sgd)(momentum=0.9, **kw),
            ),
            "momentum",
        ),
    ],
    ids=[
        "sgd",
        "sgd-momentum",
        "sgd-nesterov",
        "adam",
        "sgd-static-momentum",
        "sign_sgd",
        "lars",
        "chain-sgd-momentum",
        "chain-sgd",
        "chain-sign_sgd",
        "multisteps-sgd-momentum",
        "multisteps-sgd",
        "multisteps-adam",
        "multisteps-sgd-static-momentum",
        "chain-static-lr-adam-then-sgd-momentum",
    ],  # fmt: skip
)
def test_the_family_of_an_injected_transformation_is_that_of_its_factory(build, family):
    """``optax.inject_hyperparams(optax.sgd)(...)`` is SGD (with its momentum), as
    ``optax.sgd`` itself is, also inside ``optax.chain`` and ``optax.MultiSteps``."""
    res = find_lr(_loss, _params(), build(learning_rate=0.1), _data(), num_iter=10, warn=False)
    assert res.optimizer_family == family and res.options.optimizer_family is None


def test_an_injected_sgd_gets_the_suggestions_of_the_sgd_factory():
    import functools

    kw = {"num_iter": 30, "total_steps": 500, "warn": False}
    factory = find_lr(_loss, _params(), functools.partial(optax.sgd, momentum=0.9), _data(), **kw)
    injected = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)
    res = find_lr(_loss, _params(), injected, _data(), **kw)
    assert res.optimizer_family == factory.optimizer_family == "momentum"
    assert (res.suggestion, res.max_lr, res.peak_lr) == (
        factory.suggestion,
        factory.max_lr,
        factory.peak_lr,
    )
    # the options' family still wins
    named = find_lr(_loss, _params(), injected, _data(), optimizer_family="adaptive", **kw)
    assert named.optimizer_family == "adaptive"


def test_a_multisteps_object_sweeps_as_its_transformation():
    steps = optax.MultiSteps(optax.inject_hyperparams(optax.sgd)(learning_rate=0.1), 2)
    kw = {"num_iter": 10, "warn": False}
    res = find_lr(_loss, _params(), steps, _data(), **kw)
    same = find_lr(_loss, _params(), steps.gradient_transformation(), _data(), **kw)
    assert np.array_equal(res.lrs, same.lrs) and np.array_equal(res.losses, same.losses)
    assert res.steps == same.steps and res.suggestion == same.suggestion
    assert res.optimizer_family == same.optimizer_family == "sgd"


def _two_part_params():
    return {
        "enc": {"w": np.full((4, 3), 0.2, np.float32)},
        "head": {"w": np.ones((3, 1), np.float32)},
    }


def _two_part_loss(p, batch):
    x, y = batch
    return jnp.mean(
        (jnp.tanh(jnp.asarray(x) @ p["enc"]["w"]) @ p["head"]["w"] - jnp.asarray(y)) ** 2
    )


def _two_parts(enc_lr, head_lr=1e-3):
    inj = optax.inject_hyperparams(optax.sgd)
    return optax.multi_transform(
        {"enc": inj(learning_rate=enc_lr), "head": inj(learning_rate=head_lr)},
        {"enc": "enc", "head": "head"},
    )


def test_parts_at_other_lrs_are_swept_at_their_ratios_to_the_largest():
    """As the PyTorch finder sweeps param groups: a part at a tenth of the head's LR is swept
    at a tenth of the swept LR, a part at 0 stays frozen; the suggestions are for the largest."""
    params, data = _two_part_params(), _data()

    def by_hand(lrs, ratio):
        """Plain SGD at the swept LRs, the encoder at ``ratio`` of them."""
        p = jax.tree_util.tree_map(jnp.array, params)
        losses = []
        for lr, batch in zip(lrs, itertools.chain(data[1:], itertools.cycle(data))):
            loss, g = jax.value_and_grad(_two_part_loss)(p, batch)
            losses.append(float(loss))
            p = {
                "enc": {"w": p["enc"]["w"] - np.float32(lr * ratio) * g["enc"]["w"]},
                "head": {"w": p["head"]["w"] - np.float32(lr) * g["head"]["w"]},
            }
        return losses

    for enc_lr, ratio in [(0.0, 0.0), (1e-4, 0.1), (1e-3, 1.0)]:
        res = find_lr(_two_part_loss, params, _two_parts(enc_lr), data, num_iter=20)
        np.testing.assert_allclose(res.losses[:8], by_hand(res.lrs, ratio)[:8], rtol=1e-5)
    same = find_lr(_two_part_loss, params, _two_parts(1e-3), data, num_iter=20)
    plain = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)
    assert (
        same.losses.tolist()
        == find_lr(_two_part_loss, params, plain, data, num_iter=20).losses.tolist()
    )


def test_integer_lrs_of_parts_keep_their_ratios():
    """Integer LRs are swept as floats, their ratios read before."""
    params, data = _two_part_params(), _data()
    ints = find_lr(_two_part_loss, params, _two_parts(1, 10), data, num_iter=20)
    floats = find_lr(_two_part_loss, params, _two_parts(0.1, 1.0), data, num_iter=20)
    assert ints.losses.tolist() == floats.losses.tolist()


def test_a_factory_keeps_its_other_arguments_static_under_jit():
    """A factory's arguments that are no float stay Python values: adafactor's flags and
    sizes, a partial's int."""
    import functools

    res = find_lr(_loss, _params(), optax.adafactor, _data(), num_iter=20)
    assert res.steps > 0 and np.isfinite(res.losses).all()
    warm = functools.partial(optax.contrib.schedule_free_adamw, warmup_steps=10)
    assert find_lr(_loss, _params(), warm, _data(), num_iter=20).steps > 0


def test_torch_tensors_of_a_dataloader_reach_the_compiled_step():
    torch = pytest.importorskip("torch")
    x = np.concatenate([b[0] for b in _data()])
    y = np.concatenate([b[1] for b in _data()])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=32
    )
    compiled = find_lr(_loss, _params(), optax.adam, loader, num_iter=20)
    eager = find_lr(_loss, _params(), optax.adam, _data(), num_iter=20, jit=False)
    np.testing.assert_allclose(compiled.losses, eager.losses, rtol=1e-5)


def test_a_torch_finder_keyword_says_what_the_optax_finder_has_instead():
    with pytest.raises(TypeError) as e:
        find_lr(_loss, _params(), optax.adam, _data(), accumulation_steps=4)
    assert str(e.value).startswith(
        "accumulation_steps is not an option of lrkit.optax.find_lr (use "
        "optax.MultiSteps(...).gradient_transformation() as the optimizer); options: beta, "
    )


def test_a_step_apply_if_finite_skips_is_retried_at_the_same_lr() -> None:
    """A finite loss with non-finite gradients: optax.apply_if_finite makes no update; the
    sweep retries that LR on the next batch (as MultiSteps' should_skip_update_fn's skips,
    a GradScaler's in the PyTorch finder), so both wrappers give the same curve."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = x @ rng.normal(size=(4,)).astype("float32")
    batches = [{"x": x, "y": y, "bad": np.float32(i % 2 == 1)} for i in range(8)]

    def loss_fn(p, b):
        base = jnp.mean((b["x"] @ p["w"] - b["y"]) ** 2)
        u = jnp.sum(p["w"] - p["w"]) * b["bad"] + (1 - b["bad"])
        return base + 0.0 * jnp.sqrt(u)  # its value finite, its gradient NaN on a bad batch

    inner = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    opts = dict(total_steps=1000, num_iter=40, eval_batches=0, warn=False)
    guarded = optax.apply_if_finite(inner, max_consecutive_errors=100)
    multi = optax.MultiSteps(
        inner, every_k_schedule=1, should_skip_update_fn=optax.skip_not_finite
    ).gradient_transformation()
    results = [
        find_lr(loss_fn, {"w": jnp.zeros(4)}, opt, batches, **opts) for opt in (guarded, multi)
    ]
    # (the two wrappers compute the same update by other float paths)
    np.testing.assert_allclose(results[0].losses, results[1].losses, rtol=1e-5)
    assert len(set(results[0].losses.tolist())) == len(results[0].losses)  # each one updated
    # max_skipped=0: the skipped steps are points of the curve (their next loss repeats)
    plain = find_lr(loss_fn, {"w": jnp.zeros(4)}, guarded, batches, max_skipped=0, **opts)
    assert len(set(plain.losses.tolist())) < len(plain.losses)
    with pytest.raises(ValueError, match=r"^max_skipped must be an integer >= 0"):
        find_lr(loss_fn, {"w": jnp.zeros(4)}, guarded, batches, max_skipped=-1, **opts)


def test_jit_false_reads_a_torch_dataloader_as_jit_does() -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    x = np.concatenate([b[0] for b in _data()])
    y = np.concatenate([b[1] for b in _data()])

    def loader() -> object:
        g = torch.Generator().manual_seed(0)
        ds = TensorDataset(torch.tensor(np.asarray(x)), torch.tensor(np.asarray(y)))
        return DataLoader(ds, batch_size=32, shuffle=True, generator=g)

    runs = [
        find_lr(
            _loss,
            _params(),
            optax.adam,
            loader(),
            total_steps=1000,
            num_iter=20,
            warn=False,
            jit=jit,
        )  # fmt: skip
        for jit in (True, False)
    ]
    np.testing.assert_allclose(runs[0].losses, runs[1].losses, rtol=1e-5)


def test_a_nan_loss_stops_the_sweep_under_apply_if_finite_too() -> None:
    """A NaN loss (its gradients NaN too) is no skipped step to retry: the sweep stops on it,
    as without the wrapper and as under MultiSteps' skip_not_finite."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = x @ rng.normal(size=(4,)).astype("float32")
    batches = [{"x": x, "y": y, "bad": np.float32(i == 7)} for i in range(12)]

    def loss_fn(p, b):
        return jnp.mean((b["x"] @ p["w"] - b["y"]) ** 2) + jnp.sqrt(-b["bad"]) * jnp.sum(p["w"])

    inner = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    opts = dict(total_steps=1000, num_iter=30, eval_batches=0, warn=False)
    for opt in (inner, optax.apply_if_finite(inner, max_consecutive_errors=100)):
        res = find_lr(loss_fn, {"w": jnp.zeros(4)}, opt, batches, **opts)
        assert res.stop_reason == "nan" and len(res.losses) == 7


def _skipped_every_step_loss(p, b):
    """A finite loss of 1000 minus the batch's index, with NaN gradients: every step skipped."""
    u = jnp.sum(p["w"] - p["w"])
    return 1000.0 - b["i"] + 0.0 * jnp.sqrt(u)


def _sweep_skipped_every_step(opt, max_skipped):
    """A 10-step sweep of :func:`_skipped_every_step_loss` over batches 0, 1, 2, ... (a
    batch's loss is 1000 minus its number) under ``opt``."""
    batches = [{"i": np.float32(i)} for i in range(60)]
    return find_lr(_skipped_every_step_loss, {"w": jnp.zeros(2)}, opt, batches,
                   total_steps=1000, num_iter=10, eval_batches=0, max_skipped=max_skipped,
                   warn=False)  # fmt: skip


@pytest.mark.parametrize("max_skipped", [1, 2])
def test_apply_if_finite_retries_a_skipped_lr_max_skipped_times_then_records_it(max_skipped):
    """Under optax.apply_if_finite each sweep step takes at most max_skipped retries on the
    next batches and records the loss of its last batch: the step k reads batches
    k * (max_skipped + 1) ... (k + 1) * (max_skipped + 1) - 1."""
    inner = optax.inject_hyperparams(optax.sgd)(learning_rate=1e-3)
    guarded = optax.apply_if_finite(inner, max_consecutive_errors=1000)
    res = _sweep_skipped_every_step(guarded, max_skipped)
    per = max_skipped + 1
    assert len(res.losses) >= 10
    assert res.losses.tolist() == [1000.0 - (k + 1) * per + 1 for k in range(len(res.losses))]


@pytest.mark.parametrize("max_skipped", [1, 2])
def test_multisteps_ends_a_step_after_max_skipped_skipped_micro_batches_in_a_row(max_skipped):
    """Under optax.MultiSteps with skip_not_finite, a sweep step whose micro-batches are all
    skipped ends after max_skipped + 1 of them and records their mean loss."""
    inner = optax.inject_hyperparams(optax.sgd)(learning_rate=1e-3)
    multi = optax.MultiSteps(
        inner, every_k_schedule=1, should_skip_update_fn=optax.skip_not_finite
    ).gradient_transformation()
    res = _sweep_skipped_every_step(multi, max_skipped)
    per = max_skipped + 1
    assert len(res.losses) >= 10
    expected = [1000.0 - (k * per + (per - 1) / 2) for k in range(len(res.losses))]
    assert res.losses.tolist() == expected


class _ShuffledEachPass:
    """Batches in a new order on each pass, drawn from numpy's global RNG (a numpy pipeline);
    the orders drawn are kept."""

    def __init__(self, batches):
        self.batches = batches
        self.orders = []

    def __iter__(self):
        order = np.random.permutation(len(self.batches)).tolist()
        self.orders.append(order)
        return iter([self.batches[i] for i in order])


def test_every_probe_draws_the_shuffled_orders_the_sweep_started_with():
    """The global RNGs are put back before each probe: a pipeline shuffling with numpy's
    global RNG gives every probe the orders it gave the sweep from its start, pass by pass,
    and numpy's RNG is as before the run afterwards."""
    data = _ShuffledEachPass(_data(n=128))
    sweep_passes = []
    np.random.seed(3)
    before = np.random.get_state()[1].copy()
    find_lr(
        _loss,
        _params(),
        optax.adam,
        data,
        probe_data=_data(n=64, seed=1),
        num_iter=20,
        total_steps=500,
        warn=False,
        callback=lambda i, lr, loss: sweep_passes.append(len(data.orders)),
    )
    assert np.array_equal(np.random.get_state()[1], before)
    probed = data.orders[sweep_passes[-1] :]
    k = len(probed) // 8
    assert k > 1 and len(probed) == 8 * k
    swept = data.orders[: sweep_passes[-1]]
    assert len({tuple(o) for o in swept}) > 1  # the passes differ from each other
    # each of the 8 probes draws the orders the sweep drew from its start, pass by pass
    chunks = [probed[j * k : (j + 1) * k] for j in range(8)]
    assert chunks == [chunks[0]] * 8
    assert chunks[0][: len(swept)] == swept


def _skipped_on_even_batches_loss(p, b):
    """A finite loss of 1000 minus the batch's index; NaN gradients on the even batches."""
    bad = b["i"] % 2 == 0
    u = jnp.where(bad, jnp.sum(p["w"] - p["w"]), 1.0)
    return 1000.0 - b["i"] + 0.0 * jnp.sqrt(u)


def test_a_counted_micro_batch_restarts_the_count_of_skipped_ones_in_a_row():
    """max_skipped counts the skipped micro-batches in a row: one MultiSteps counts resets
    it, so a step of every_k_schedule=2 alternating skipped and counted micro-batches
    takes 4 of them (their mean loss recorded) with max_skipped=1."""
    batches = [{"i": np.float32(i)} for i in range(80)]
    inner = optax.inject_hyperparams(optax.sgd)(learning_rate=1e-3)
    multi = optax.MultiSteps(
        inner, every_k_schedule=2, should_skip_update_fn=optax.skip_not_finite
    ).gradient_transformation()
    res = find_lr(
        _skipped_on_even_batches_loss,
        {"w": jnp.zeros(2)},
        multi,
        batches,
        total_steps=1000,
        num_iter=10,
        eval_batches=0,
        max_skipped=1,
        warn=False,
    )
    assert len(res.losses) >= 10
    assert res.losses.tolist() == [1000.0 - (4 * k + 1.5) for k in range(len(res.losses))]


def test_a_multisteps_state_mid_accumulation_starts_the_sweep_on_a_boundary():
    """An opt_state caught mid-accumulation (a micro-batch counted, its gradients summed with
    use_grad_mean=False) gives the sweep of a fresh state: the sweep's private state starts
    on an accumulation boundary, with nothing accumulated."""
    inner = optax.inject_hyperparams(optax.sgd)(learning_rate=1e-3)
    multi = optax.MultiSteps(inner, every_k_schedule=2, use_grad_mean=False)
    opt = multi.gradient_transformation()
    params = _params()
    mid = opt.init(params)._replace(
        mini_step=jnp.asarray(1, jnp.int32),
        acc_grads=jax.tree_util.tree_map(lambda x: jnp.full(x.shape, 50.0, x.dtype), params),
    )
    opts = dict(total_steps=1000, num_iter=20, eval_batches=1, warn=False)
    fresh = find_lr(_loss, _params(), opt, _data(), **opts)
    resumed = find_lr(_loss, _params(), opt, _data(), opt_state=mid, **opts)
    assert _curve(resumed) == _curve(fresh)
    assert int(mid.mini_step) == 1 and float(mid.acc_grads["w"][0, 0]) == 50.0


def test_a_loss_fn_returning_three_items_with_has_aux_is_a_one_line_value_error():
    """has_aux=True needs a (loss, aux) pair: a tuple of 3 items is named before any step."""
    with pytest.raises(ValueError) as e:
        find_lr(lambda p, b: (_loss(p, b), 1.0, 2.0), _params(), optax.adam, _data(), has_aux=True)
    assert str(e.value) == (
        "loss_fn must return a (loss, aux) pair with has_aux=True, got a tuple of 3 items"
    )


def test_a_factory_sweeps_float64_params_with_float64_learning_rates():
    """With float64 params (jax_enable_x64) a factory's injected LR is held in float64: each
    LR is applied exactly as recorded, not rounded to float32."""
    _assert_float64_lrs_applied_as_recorded(lambda: optax.sgd)


def test_complex_params_are_swept_and_left_as_given():
    """Complex leaves are inexact, differentiated as JAX does: the sweep runs on them (the
    first recorded loss is that of the initial params) and the caller's params are unchanged."""
    w = np.asarray([1 + 1j, 2 - 1j], np.complex64)
    params = {"w": w.copy()}
    target = np.asarray([0.5, 0.1j], np.complex64)

    def loss(p, b):
        return jnp.sum(jnp.abs(p["w"] - b) ** 2)

    res = find_lr(loss, params, optax.sgd, [target] * 3, num_iter=10, total_steps=1000, warn=False)
    assert len(res.lrs) > 1 and res.lrs[0] == pytest.approx(res.options.start_lr)
    assert res.losses[0] == pytest.approx(float(np.sum(np.abs(w - target) ** 2)), rel=1e-6)
    assert params["w"].tolist() == w.tolist()


def test_a_float_array_argument_of_a_factory_is_injected_as_a_float_one_is():
    """A factory's float argument given as a 0-d float64 array (functools.partial(optax.sgd,
    momentum=np.asarray(0.9))) is injected in the sweep's hyperparameter dtype, as the Python
    float 0.9 is: under jax_enable_x64 with float32 params both sweeps are the same, bit for
    bit (kept static, the float64 momentum made the trace float64)."""
    if not hasattr(jax, "enable_x64"):
        pytest.skip("jax.enable_x64 is not available")
    opts = dict(num_iter=30, total_steps=1000, warn=False)
    with jax.enable_x64(True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array_sgd = functools.partial(optax.sgd, momentum=np.asarray(0.9))
        array = find_lr(_loss, _params(), array_sgd, _data(), **opts)
        float_sgd = functools.partial(optax.sgd, momentum=0.9)
        number = find_lr(_loss, _params(), float_sgd, _data(), **opts)
    assert _curve(array) == _curve(number)


def test_the_generator_of_a_shuffled_probe_data_loader_is_put_back():
    """probe_data read from a shuffled torch DataLoader draws from its own generator: after the
    run the generator is as before, so the loader's next pass is the one it would have made."""
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    x = np.concatenate([b[0] for b in _data(n=64, seed=1)])
    y = np.concatenate([b[1] for b in _data(n=64, seed=1)])
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.tensor(x), torch.tensor(y))
    probe = DataLoader(ds, batch_size=32, shuffle=True, generator=g)
    before = g.get_state().clone()
    find_lr(_loss, _params(), optax.adam, _data(), probe_data=probe, num_iter=10, warn=False)
    assert torch.equal(g.get_state(), before)


def test_jit_false_runs_loss_fn_on_the_batches_themselves():
    """jit=False runs the step eagerly (to debug loss_fn): loss_fn can read the batch it is
    given as numbers, which a traced batch under jit=True cannot give."""
    data = _data()
    seen = []

    def reading(p, batch):
        seen.append(float(jnp.sum(batch[1])))
        return _loss(p, batch)

    res = find_lr(reading, _params(), optax.adam, data, num_iter=12, eval_batches=0, jit=False)
    sums = [float(jnp.sum(b[1])) for b in data]
    trained = [s for s in seen if s in sums]
    assert len(trained) >= res.steps
    assert trained[: res.steps] == list(itertools.islice(itertools.cycle(sums), res.steps))


@pytest.mark.parametrize("name", ["val_data", "probe_data"])
def test_held_batches_loss_fn_cannot_score_are_a_value_error_naming_them(name):
    """A first val_data or probe_data batch loss_fn cannot score, where it scores data's, is
    refused before any step in one line naming the argument it came from."""
    x, y = _data(64, seed=1)[0]
    with pytest.raises(ValueError) as info:
        find_lr(_loss, _params(), optax.adam, _data(), num_iter=12, **{name: [(x[:, :3], y)]})
    msg = str(info.value)
    assert msg.startswith(f"{name}: the loss could not be computed on its first batch (")
    assert msg.endswith(
        f"{name} must be batches loss_fn(params, batch) accepts, laid out as data's are"
    )
    assert "\n" not in msg


def test_the_step_is_compiled_by_default():
    """By default (jit=True) loss_fn is traced, not called at each step: its Python body runs
    a few times in all, while jit=False runs it at every step."""
    calls = {True: 0, False: 0}

    def counting(p, batch, *, jit):
        calls[jit] += 1
        return _loss(p, batch)

    opts = dict(num_iter=30, eval_batches=0, stop_early=False, max_extra_iter=0, warn=False)
    compiled = find_lr(
        functools.partial(counting, jit=True), _params(), optax.adam, _data(), **opts
    )
    eager = find_lr(
        functools.partial(counting, jit=False), _params(), optax.adam, _data(), jit=False, **opts
    )
    assert compiled.steps == eager.steps == 30
    assert calls[True] < 5 and calls[False] > 30


def test_an_integer_learning_rate_is_swept_in_the_float64_of_float64_params():
    """An injected integer LR (learning_rate=1) is held in the params' float64 under
    jax_enable_x64: each LR is applied exactly as recorded, not rounded to float32."""
    _assert_float64_lrs_applied_as_recorded(
        lambda: optax.inject_hyperparams(optax.sgd)(learning_rate=1)
    )


def test_a_held_loss_is_the_mean_over_the_held_batches():
    """Each held loss is the mean of loss_fn over the eval_batches held batches (a loss that
    does not depend on params scores the same at every evaluation)."""
    data = _data(n=192)

    def fixed(p, batch):
        return jnp.mean(batch[1] ** 2) + 0.0 * jnp.sum(p["w"])

    res = find_lr(
        fixed,
        _params(),
        optax.adam,
        data,
        num_iter=20,
        eval_batches=3,
        stop_early=False,
        max_extra_iter=0,
        warn=False,
    )
    mean = sum(float(fixed(_params(), b)) for b in data[:3]) / 3
    assert len(res.held_losses) > 1
    assert res.held_losses.tolist() == [mean] * len(res.held_losses)


def test_every_probe_trains_from_the_initial_params():
    """Each probe is plain SGD at its constant LR for its steps from the initial params, on
    data's batches from the first, scored by the mean loss over probe_data."""
    data, probe = _data(), _data(n=64, seed=1)
    res = find_lr(_loss, _params(), optax.sgd, data, probe_data=probe, num_iter=20, warn=False)
    grad = jax.jit(jax.grad(_loss))

    def by_hand(lr):
        p = jax.tree_util.tree_map(jnp.asarray, _params())
        for batch in itertools.islice(itertools.cycle(data), res.probes.steps):
            g = grad(p, batch)
            p = jax.tree_util.tree_map(lambda w, d: w - np.float32(lr) * d, p, g)
        return float(np.mean([float(_loss(p, b)) for b in probe]))

    finite = [
        (lr, loss) for lr, loss in zip(res.probes.lrs, res.probes.losses) if np.isfinite(loss)
    ]
    assert len(finite) >= 2
    for lr, loss in finite:
        assert loss == pytest.approx(by_hand(lr), rel=1e-4)
