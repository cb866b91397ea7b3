"""LR-free optimizers (schedulefree, prodigyopt): construction, eval switching, BN stats."""

from __future__ import annotations

import copy
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
schedulefree = pytest.importorskip("schedulefree")
prodigyopt = pytest.importorskip("prodigyopt")

import lrkit.torch as lt  # noqa: E402
from lrkit.finder import LRFinderWarning  # noqa: E402
from lrkit.torch._lrfree import (  # noqa: E402
    evaluating,
    finalize,
    is_schedule_free,
    lrfree_lr,
    prodigy,
    reestimate_batchnorm,
    schedule_free,
)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 6), torch.nn.BatchNorm1d(6), torch.nn.ReLU(), torch.nn.Linear(6, 1)
    )


def _data(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 3, generator=g), torch.randn(16, 1, generator=g)) for _ in range(n)]


def _train(model, opt, data, epochs=3):
    for _ in range(epochs):
        for x, y in data:
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()


def test_constructors():
    m = _model()
    a = schedule_free(m.parameters(), lr=0.01, warmup_steps=5)
    assert isinstance(a, schedulefree.AdamWScheduleFree) and a.param_groups[0]["train_mode"]
    assert a.param_groups[0]["lr"] == 0.01 and a.param_groups[0]["warmup_steps"] == 5
    assert isinstance(
        schedule_free(m.parameters(), kind="sgd", lr=0.5), schedulefree.SGDScheduleFree
    )
    assert isinstance(schedule_free(m.parameters(), kind="radam"), schedulefree.RAdamScheduleFree)
    p = prodigy(m.parameters(), weight_decay=0.01)
    assert isinstance(p, prodigyopt.Prodigy) and p.param_groups[0]["lr"] == 1.0
    assert is_schedule_free(a) and not is_schedule_free(p)
    assert not is_schedule_free(torch.optim.SGD(m.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="kind"):
        schedule_free(m.parameters(), kind="adam")
    with pytest.raises(ValueError, match="lr"):
        schedule_free(m.parameters(), lr=0)
    with pytest.raises(ValueError, match="lr"):
        prodigy(m.parameters(), lr=-1.0)
    assert lt.schedule_free is schedule_free and lt.prodigy is prodigy
    assert lt.evaluating is evaluating


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (schedule_free, {"betas": (0.9,)}, r"^betas must be a pair \(beta1, beta2\) in \[0, 1\)"),
        (schedule_free, {"betas": 0.9}, r"^betas must be a pair"),
        (schedule_free, {"betas": (0.9, 1.5)}, r"^betas\[1\] must be in \[0.0, 1.0\), got 1.5"),
        (schedule_free, {"eps": -1.0}, r"^eps must be >= 0"),
        (schedule_free, {"weight_decay": -0.1}, r"^weight_decay must be >= 0"),
        (schedule_free, {"warmup_steps": -5}, r"^warmup_steps must be an integer >= 0"),
        (schedule_free, {"warmup_steps": 2.5}, r"^warmup_steps must be an integer >= 0"),
        (prodigy, {"betas": (0.9,)}, r"^betas must be a pair"),
    ],
)
def test_the_values_torch_checks_are_checked_in_one_line(make, kwargs, message):
    """The packages check none of them: a bad one failed inside them later (an unpacking
    error at train()), or trained silently (a beta2 of 1.5, a negative eps)."""
    with pytest.raises(ValueError, match=message) as info:
        make(_model().parameters(), **kwargs)
    assert "\n" not in str(info.value)
    tensors = (torch.tensor(0.9), torch.tensor(0.999))  # taken, as torch's optimizers take them
    assert schedule_free(_model().parameters(), betas=tensors).param_groups[0]["betas"] == tensors
    prodigy(_model().parameters(), betas=tensors, weight_decay=torch.tensor(0.01))
    for pair in (np.array([0.9, 0.999]), torch.tensor([0.9, 0.999]), [0.9, 0.999]):  # as torch
        torch.optim.Adam(_model().parameters(), betas=pair)
        assert schedule_free(_model().parameters(), betas=pair).param_groups[0]["betas"] is pair
        prodigy(_model().parameters(), betas=pair)
    for bad in ("ab", np.array(0.9), torch.tensor(0.9)):
        with pytest.raises(ValueError, match=r"^betas must be a pair"):
            schedule_free(_model().parameters(), betas=bad)
    sgd = schedule_free(_model().parameters(), kind="sgd", momentum=0.9)
    assert sgd.param_groups[0]["momentum"] == 0.9
    with pytest.raises(ValueError, match=r"^momentum must be in \[0.0, 1.0\)"):
        schedule_free(_model().parameters(), kind="sgd", momentum=1.0)


def test_evaluating_finalize_and_reestimate_check_the_model_and_the_optimizer():
    m = _model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    message = r"^model must be a torch.nn.Module, got str$"
    with pytest.raises(ValueError, match=message):
        with evaluating("model", opt):
            pass
    with pytest.raises(ValueError, match=message):
        lt.finalize("model", opt)
    with pytest.raises(ValueError, match=message):
        lt.reestimate_batchnorm("model", [torch.zeros(2, 4)])
    with pytest.raises(ValueError, match=r"^optimizer must be a torch optimizer .* got str$"):
        with evaluating(m, "opt"):
            pass
    with pytest.raises(ValueError, match=r"^optimizer must be a torch optimizer .* got int$"):
        lt.finalize(m, 3)


@pytest.mark.parametrize(
    "package, make", [("schedulefree", schedule_free), ("prodigyopt", prodigy)]
)
def test_missing_package_error(monkeypatch, package, make):
    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(ImportError, match=rf"needs {package}: pip install .lrkit\[lrfree\].$"):
        make(_model().parameters())


def test_evaluating_uses_x_and_restores_everything_bit_for_bit():
    model = _model()
    data = _data()
    opt = schedule_free(model.parameters(), lr=0.05)
    _train(model, opt, data)
    y = [p.detach().clone() for p in model.parameters()]
    beta1 = opt.param_groups[0]["betas"][0]
    x_expected = [torch.lerp(p, opt.state[p]["z"], 1 - 1 / beta1) for p in model.parameters()]
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num" in k}
    opt_state = {k: v.clone() for k, v in opt.state[next(model.parameters())].items()}
    model[1].eval()  # a module flag that must come back as it was
    with evaluating(model, opt, bn_data=data, num_batches=3) as m:
        assert m is model and not model.training
        assert not opt.param_groups[0]["train_mode"]
        for p, xe in zip(model.parameters(), x_expected):
            assert torch.allclose(p, xe, rtol=0, atol=1e-7)
        # BN statistics re-estimated at x: the exact average over the 3 batches
        with torch.no_grad():
            h = [model[0](x) for x, _ in data[:3]]
        mean = torch.stack([t.mean(0) for t in h]).mean(0)
        assert torch.allclose(model[1].running_mean, mean, atol=1e-6)
        assert int(model[1].num_batches_tracked) == 3
    for p, old in zip(model.parameters(), y):
        assert torch.equal(p, old)
    for k, v in buffers.items():
        assert torch.equal(model.state_dict()[k], v)
    for k, v in opt_state.items():
        assert torch.equal(opt.state[next(model.parameters())][k], v)
    assert opt.param_groups[0]["train_mode"] and model.training and not model[1].training
    _train(model, opt, data, epochs=1)  # still trainable (train mode)


def test_evaluating_plain_optimizer_and_no_bn_data():
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    _train(model, opt, _data(), epochs=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with evaluating(model, opt):
        assert not model.training
    assert model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    with pytest.raises(RuntimeError, match="boom"), evaluating(model, opt):
        raise RuntimeError("boom")
    assert model.training


def test_evaluating_improves_schedule_free_eval_loss_over_y():
    # the point of switching: on a noisy problem, x (the average) is better than y
    torch.manual_seed(1)
    model = torch.nn.Linear(3, 1)
    g = torch.Generator().manual_seed(2)
    w = torch.randn(3, 1, generator=g)
    batches = []
    for _ in range(40):
        x = torch.randn(8, 3, generator=g)
        batches.append((x, x @ w + 0.5 * torch.randn(8, 1, generator=g)))
    opt = schedule_free(model.parameters(), kind="sgd", lr=0.2)
    _train(model, opt, batches, epochs=3)
    xt = torch.randn(500, 3, generator=g)
    yt = xt @ w
    with torch.no_grad():
        loss_y = torch.nn.functional.mse_loss(model(xt), yt).item()
        with evaluating(model, opt):
            loss_x = torch.nn.functional.mse_loss(model(xt), yt).item()
    assert loss_x < loss_y


def test_reestimate_and_finalize():
    model = _model()
    data = _data()
    assert reestimate_batchnorm(torch.nn.Linear(2, 2), data) == 0
    model.eval()
    mom = model[1].momentum
    assert reestimate_batchnorm(model, iter(data), num_batches=10) == 4
    assert not model.training and model[1].momentum == mom
    with pytest.raises(ValueError, match="num_batches"):
        reestimate_batchnorm(model, data, num_batches=0)
    with pytest.raises(ValueError, match="data"):
        reestimate_batchnorm(model, [], num_batches=2)
    opt = schedule_free(model.parameters(), lr=0.05)
    model.train()
    _train(model, opt, data, epochs=1)
    finalize(model, opt, bn_data=data)
    assert not opt.param_groups[0]["train_mode"] and not model.training
    seen = []
    reestimate_batchnorm(model, [{"z": 1}], forward=lambda m, b: seen.append(b))
    assert seen == [{"z": 1}]


def test_lrfree_lr():
    model = _model()
    data = _data()
    p = prodigy(model.parameters(), lr=0.5)
    _train(model, p, data, epochs=1)
    g = p.param_groups[0]
    assert lrfree_lr(p) == [g["d"] * 0.5]
    s = schedule_free(model.parameters(), lr=0.1, warmup_steps=10)
    assert lrfree_lr(s) == [pytest.approx(0.01)]
    _train(model, s, data, epochs=1)  # k = 4
    assert lrfree_lr(s) == [pytest.approx(0.05)]
    assert lrfree_lr(torch.optim.SGD(model.parameters(), lr=0.3)) == [0.3]


def test_evaluating_with_bn_data_leaves_the_rngs_and_the_loader_as_they_were():
    import random

    import numpy as np

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8),
                                torch.nn.Dropout(0.5), torch.nn.Linear(8, 2))  # fmt: skip
    ds = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    gen = torch.Generator().manual_seed(3)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True, generator=gen)
    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    g_state = gen.get_state()
    with evaluating(model, bn_data=loader, num_batches=4):
        pass
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1]) and random.getstate() == states[2]
    assert torch.equal(gen.get_state(), g_state)


def _bn_state(model):
    bn = model[1]
    return (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone(),
            bn.momentum)  # fmt: skip


def test_a_forward_taking_other_arguments_is_refused_before_the_statistics_change():
    model = _model()
    _train(model, torch.optim.SGD(model.parameters(), lr=0.01), _data(), epochs=1)
    before = _bn_state(model)
    message = r"^forward must be a callable forward\(model, batch\), taking 2 positional "
    with pytest.raises(TypeError, match=message + r"arguments; got <lambda>\(batch\)$"):
        reestimate_batchnorm(model, _data(), forward=lambda batch: batch)
    assert _same_bn(_bn_state(model), before)
    opt = schedule_free(model.parameters(), lr=0.05)
    with pytest.raises(TypeError, match=message):
        finalize(model, opt, bn_data=_data(), forward=lambda batch: batch)
    assert _same_bn(_bn_state(model), before)


def _same_bn(a, b):
    return all(torch.equal(x, y) for x, y in zip(a[:3], b[:3])) and a[3] == b[3]


@pytest.mark.parametrize("bad", [[], iter([]), None, 5])
def test_unusable_bn_data_is_refused_before_the_statistics_change(bad):
    model = _model()
    _train(model, torch.optim.SGD(model.parameters(), lr=0.01), _data(), epochs=1)
    model[1].momentum = 0.3
    before = _bn_state(model)
    with pytest.raises(ValueError, match=r"^data must .*at least one batch") as info:
        reestimate_batchnorm(model, bad)
    assert "\n" not in str(info.value) and _same_bn(_bn_state(model), before)
    if bad is None:  # for finalize and evaluating: no re-estimation
        return
    opt = schedule_free(model.parameters(), lr=0.05)
    _train(model, opt, _data(), epochs=1)
    weights = [p.detach().clone() for p in model.parameters()]
    before = _bn_state(model)
    with pytest.raises(ValueError, match=r"^bn_data must"):
        finalize(model, opt, bn_data=bad)
    assert _same_bn(_bn_state(model), before) and opt.param_groups[0]["train_mode"]
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), weights))
    with pytest.raises(ValueError, match=r"^bn_data must"), evaluating(model, opt, bn_data=bad):
        pass
    assert _same_bn(_bn_state(model), before) and opt.param_groups[0]["train_mode"]


def test_a_pass_failing_midway_puts_the_statistics_back():
    model = _model()
    _train(model, torch.optim.SGD(model.parameters(), lr=0.01), _data(), epochs=1)
    before = _bn_state(model)

    def batches():
        yield from _data(2)
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        reestimate_batchnorm(model, batches())
    assert _same_bn(_bn_state(model), before) and model.training


def test_data_given_as_a_callable_is_called_like_fit_does():
    model, data = _model(), _data()
    assert reestimate_batchnorm(model, lambda: iter(data), num_batches=3) == 3
    assert int(model[1].num_batches_tracked) == 3


def _wrapped():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    w = schedulefree.ScheduleFreeWrapper(torch.optim.SGD(m.parameters(), lr=0.1), momentum=0.9)
    w.train()
    _train(m, w, _data(), epochs=2)
    return m, w


def test_schedule_free_wrapper_is_evaluated_at_x_as_its_own_eval_gives():
    m, w = _wrapped()
    assert is_schedule_free(w)
    y = [p.detach().clone() for p in m.parameters()]
    w.eval()  # the package's own switch: the reference x
    x = [p.detach().clone() for p in m.parameters()]
    w.train()
    with torch.no_grad():
        for p, old in zip(m.parameters(), y):
            p.copy_(old)
    assert not all(torch.equal(a, b) for a, b in zip(x, y))
    with evaluating(m, w, bn_data=_data(), num_batches=2):
        assert all(torch.equal(p, e) for p, e in zip(m.parameters(), x)) and not w.train_mode
    assert all(torch.equal(p, e) for p, e in zip(m.parameters(), y)) and w.train_mode
    finalize(m, w)
    assert all(torch.equal(p, e) for p, e in zip(m.parameters(), x)) and not w.train_mode


def test_lrfree_lr_is_the_lr_the_schedule_free_optimizers_step_with():
    for kind, kw in [("adamw", {"warmup_steps": 3}), ("sgd", {"warmup_steps": 2}),
                     ("radam", {}), ("radam", {"silent_sgd_phase": False})]:  # fmt: skip
        model = _model()
        opt = schedule_free(model.parameters(), kind=kind, lr=0.01, **kw)
        seen = set()
        for x, y in _data(4) * 3:  # 12 steps: radam leaves its SGD phase at step 6
            before = lrfree_lr(opt)[0]
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            assert before == opt.param_groups[0]["scheduled_lr"], (kind, kw)
            seen.add(before)
        assert len(seen) >= 2  # warmup or rectification: the LR did move


@pytest.mark.parametrize(
    "name, kw",
    [("AdamWScheduleFreePaper", {"warmup_steps": 3}),
     ("AdamWScheduleFreeReference", {"warmup_steps": 3}),
     ("SGDScheduleFreeReference", {"warmup_steps": 3}),
     ("AdamWScheduleFreeClosure", {"warmup_steps": 3}),
     ("SGDScheduleFreeClosure", {"warmup_steps": 3}),
     ("RAdamScheduleFreeClosure", {}),
     ("RAdamScheduleFreeClosure", {"silent_sgd_phase": False})],
)  # fmt: skip
def test_lrfree_lr_is_scheduled_lr_for_every_schedulefree_optimizer(name, kw) -> None:
    sf = pytest.importorskip("schedulefree")
    model = _model()
    opt = getattr(sf, name)(model.parameters(), lr=0.01, **kw)
    if hasattr(opt, "train"):
        opt.train()
    seen = set()
    for x, y in _data(4) * 3:
        before = lrfree_lr(opt)[0]

        def closure(x=x, y=y):  # type: ignore[no-untyped-def]
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss

        if "Closure" in name:
            opt.step(closure)
        else:
            closure()
            opt.step()
        assert before == opt.param_groups[0]["scheduled_lr"], name
        seen.add(before)
    assert len(seen) >= 2


def test_lrfree_lr_is_prodigys_step_size_with_and_without_bias_correction():
    for bias in (False, True):
        model = torch.nn.Linear(3, 2).double()
        opt = prodigy(model.parameters(), lr=0.5, use_bias_correction=bias, d0=1e-3)
        for x, y in _data(5):
            x, y = x.double(), torch.cat([y, y], 1).double()
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            predicted = lrfree_lr(opt)[0]
            before = [p.detach().clone() for p in model.parameters()]
            opt.step()
            g = opt.param_groups[0]
            for p, b in zip(model.parameters(), before):  # p -= dlr * exp_avg / denom
                st = opt.state[p]
                direction = st["exp_avg"] / (st["exp_avg_sq"].sqrt() + g["d"] * g["eps"])
                used = (b - p.detach()).flatten() / direction.flatten()
                assert torch.allclose(used, torch.full_like(used, predicted), rtol=1e-6)


def test_a_prodigy_group_frozen_at_lr_0_reads_0():
    """lr=0 is Prodigy's way to freeze a group: one frozen from the start, without weight
    decay, never moves, and lrfree_lr says 0 for it (the trained group's step size for the
    other)."""
    torch.manual_seed(0)
    frozen, head = torch.nn.Linear(3, 3).double(), torch.nn.Linear(3, 2).double()
    opt = prodigy([{"params": frozen.parameters(), "lr": 0.0}, {"params": head.parameters()}],
                  d0=1e-2)  # fmt: skip
    before = [p.detach().clone() for p in frozen.parameters()]
    for x, y in _data(5):
        x, y = x.double(), torch.cat([y, y], 1).double()
        predicted = lrfree_lr(opt)
        assert predicted[0] == 0.0 and predicted[1] > 0
        opt.zero_grad()
        torch.nn.functional.mse_loss(head(frozen(x)), y).backward()
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, frozen.parameters()))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda ps: schedule_free(ps, lr="abc"), r"^lr must be a finite real number"),
        (lambda ps: schedule_free(ps, lr=[0.1]), r"^lr must be a finite real number"),
        (lambda ps: prodigy(ps, lr="x"), r"^lr must be a finite real number"),
        (lambda ps: prodigy(ps, lr=[0.1]), r"^lr must be a finite real number"),
        (lambda ps: lrfree_lr(None), r"^optimizer must be a torch optimizer"),
        (lambda ps: schedule_free(ps, kind=["sgd"]),
         r"^kind must be one of 'adamw', 'sgd', 'radam', got \['sgd'\]$"),
        (lambda ps: schedule_free(ps, kind="radam", warmup_steps=10),
         r"^warmup_steps is taken by kind 'adamw' and 'sgd' only, got kind='radam'"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_value_errors_naming_the_parameter(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call(_model().parameters())
    assert "\n" not in str(info.value)
    assert schedule_free(_model().parameters(), lr=torch.tensor(0.5)).param_groups[0]["lr"] == 0.5


@pytest.mark.parametrize(
    "call, message, some",
    [
        (lambda ps: schedule_free(ps, knd="sgd"),
         "knd is not an option of lrkit.torch.schedule_free(kind='adamw') for AdamWScheduleFree "
         "(did you mean kind?)", {"kind", "lr", "betas", "warmup_steps"}),
        (lambda ps: schedule_free(ps, kind="sgd", betas=(0.9, 0.99)),
         "betas is not an option of lrkit.torch.schedule_free(kind='sgd') for SGDScheduleFree",
         {"kind", "lr", "momentum", "warmup_steps"}),
    ],
)  # fmt: skip
def test_an_unknown_keyword_is_a_type_error_naming_the_option_meant(call, message, some):
    with pytest.raises(TypeError) as info:  # as Python's own for a keyword not taken
        call(_model().parameters())
    said, options = str(info.value).split("; options: ")
    assert said == message
    names = options.split(", ")  # the function's and the class's, each once, sorted
    assert some <= set(names) and names == sorted(set(names)) and "params" not in names


def test_prodigy_names_the_option_meant_for_an_unknown_keyword():
    with pytest.raises(TypeError) as info:
        prodigy(_model().parameters(), decoupled=True)
    msg = str(info.value)
    assert msg.startswith(
        "decoupled is not an option of lrkit.torch.prodigy() for Prodigy (did you mean "
        "decouple?); options: "
    )
    assert {"lr", "decouple", "betas", "d0"} <= set(msg.split("options: ")[1].split(", "))


# --------------------------------------------------------------------- find_lr with LR-free


def _groups(opt):
    """Every param group's entries (the params by identity), in their key order."""
    return [
        [(k, [id(p) for p in v] if k == "params" else v) for k, v in g.items()]
        for g in opt.param_groups
    ]


def _find(model, opt, **kw):
    return lt.find_lr(
        model,
        opt,
        torch.nn.functional.mse_loss,
        _data(),
        num_iter=20,
        total_steps=200,
        warn=False,
        **kw,
    )


def test_find_lr_sweeps_schedule_free_at_the_swept_lr_not_its_warmup_fraction():
    results, applied = {}, {}
    for warmup in (0, 1000):
        model = _model()
        opt = schedule_free(model.parameters(), kind="adamw", lr=1e-3, warmup_steps=warmup)
        _train(model, opt, _data(), epochs=1)
        before = copy.deepcopy(_groups(opt))
        seen = []
        hook = opt.register_step_post_hook(
            lambda o, a, k, seen=seen: seen.append(
                (o.param_groups[0]["lr"], o.param_groups[0]["scheduled_lr"])
            )
        )
        results[warmup] = _find(model, opt)
        hook.remove()
        applied[warmup] = seen
        assert _groups(opt) == before  # warmup_steps and every other key, in their order
        assert opt.param_groups[0]["warmup_steps"] == warmup
    assert all(lr == used for lr, used in applied[1000])  # the swept LR is the one applied
    # step for step the LRs of a sweep without warmup (the two start from weights trained
    # apart, so they may stop a few steps apart)
    n = min(len(applied[0]), len(applied[1000]))
    assert n >= 10 and applied[1000][:n] == applied[0][:n]
    assert results[1000].suggestion == results[0].suggestion


def test_find_lr_says_prodigys_suggestion_is_for_its_lr_multiplier():
    model = _model()
    opt = prodigy(model.parameters())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lt.find_lr(model, opt, torch.nn.functional.mse_loss, _data(), num_iter=20, total_steps=200)
    said = [w for w in caught if "Prodigy" in str(w.message)]
    assert len(said) == 1 and said[0].category is LRFinderWarning
    assert str(said[0].message) == (
        "optimizer: Prodigy estimates its own step size (d) and its lr is a multiplier on "
        "it, best left at 1.0; the range test's suggestion is for that multiplier"
    )
    assert said[0].filename == __file__
    assert opt.param_groups[0]["lr"] == 1.0 and opt.param_groups[0]["d"] == 1e-6


def _eval_mode_sf():
    model = _model()
    opt = schedule_free(model.parameters(), kind="adamw", lr=1e-2, warmup_steps=3)
    _train(model, opt, _data(), epochs=2)
    finalize(model, opt)  # optimizer.eval(): its weights are x now
    return model, opt


def test_find_lr_puts_an_eval_mode_schedule_free_optimizer_in_train_mode_for_the_sweep_only():
    model, opt = _eval_mode_sf()
    ref_model, ref_opt = copy.deepcopy((model, opt))
    weights = copy.deepcopy(model.state_dict())
    state = copy.deepcopy(opt.state_dict())
    result = _find(model, opt)
    assert result.lrs.size > 1
    for k, v in weights.items():
        assert torch.equal(model.state_dict()[k], v), k
    after = opt.state_dict()
    assert after["param_groups"] == state["param_groups"]
    assert after["state"].keys() == state["state"].keys()
    for i, st in state["state"].items():
        for k, v in st.items():
            assert torch.equal(after["state"][i][k], v), (i, k)
    assert [g["train_mode"] for g in opt.param_groups] == [False]
    opt.train()
    ref_opt.train()
    for p, q in zip(model.parameters(), ref_model.parameters()):
        assert torch.equal(p, q)


def test_find_lr_refuses_an_eval_mode_schedule_free_optimizer_with_train_mode_false():
    model, opt = _eval_mode_sf()
    weights = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError) as err:
        _find(model, opt, train_mode=False)
    assert str(err.value) == (
        "optimizer: AdamWScheduleFree is in eval mode (optimizer.eval() or "
        "lrkit.torch.finalize) and train_mode=False: call optimizer.train() before the "
        "range test, or pass train_mode=True to switch it for the sweep"
    )
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
    assert opt.param_groups[0]["train_mode"] is False


@pytest.mark.parametrize("make", [schedule_free, prodigy])
def test_betas_of_three_numbers_are_refused_as_not_a_pair(make):
    with pytest.raises(ValueError, match=r"^betas must be a pair \(beta1, beta2\) in \[0, 1\)"):
        make(_model().parameters(), betas=(0.9, 0.99, 0.5))


def test_prodigy_bias_correction_reads_the_first_groups_betas_for_every_group():
    """Prodigy computes its bias correction once, from the first group's betas and step
    count: a second group with betas of its own gets the same correction."""
    torch.manual_seed(0)
    body, head = torch.nn.Linear(3, 3).double(), torch.nn.Linear(3, 2).double()
    opt = prodigy(
        [{"params": body.parameters()}, {"params": head.parameters(), "betas": (0.5, 0.6)}],
        use_bias_correction=True,
        d0=1e-2,
    )
    for x, y in _data(3):
        x, y = x.double(), torch.cat([y, y], 1).double()
        opt.zero_grad()
        torch.nn.functional.mse_loss(head(body(x)), y).backward()
        opt.step()
    first, second = opt.param_groups
    beta1, beta2 = first["betas"]
    k = int(first["k"])
    bc = ((1 - beta2 ** (k + 1)) ** 0.5) / (1 - beta1 ** (k + 1))
    assert lrfree_lr(opt) == [
        float(first["d"]) * float(first["lr"]) * bc,
        float(second["d"]) * float(second["lr"]) * bc,
    ]


def test_first_lr_reader_follows_the_schedule_free_warmup():
    from lrkit.torch._lrfree import first_lr_reader

    model = _model()
    opt = schedule_free(model.parameters(), lr=0.1, warmup_steps=4)
    read = first_lr_reader(opt)
    assert read() == lrfree_lr(opt)[0] == 0.1 * 1 / 4
    _train(model, opt, _data(2), epochs=1)
    assert read() == lrfree_lr(opt)[0] == 0.1 * 3 / 4
    plain = torch.optim.SGD(model.parameters(), lr=0.3)
    assert first_lr_reader(plain)() == 0.3


def test_evaluating_puts_back_the_train_flag_of_each_group():
    torch.manual_seed(0)
    body, head = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)
    model = torch.nn.Sequential(body, head)
    opt = schedule_free([{"params": body.parameters()}, {"params": head.parameters()}], lr=0.05)
    opt.param_groups[1]["train_mode"] = False
    with evaluating(model, opt):
        assert [g["train_mode"] for g in opt.param_groups] == [False, False]
    assert [g["train_mode"] for g in opt.param_groups] == [True, False]


def test_evaluating_leaves_a_schedule_free_wrapper_in_eval_mode_in_eval_mode():
    m, w = _wrapped()
    w.eval()
    x = [p.detach().clone() for p in m.parameters()]
    with evaluating(m, w):
        assert not w.train_mode
    assert w.train_mode is False
    assert all(torch.equal(p, e) for p, e in zip(m.parameters(), x))


def test_bn_data_that_is_not_batches_is_refused_saying_none_is_allowed():
    model = _model()
    opt = schedule_free(model.parameters(), lr=0.05)
    message = (
        "bn_data must be an iterable of batches (or a zero-argument callable returning one) "
        "with at least one batch, or None, got int"
    )
    with pytest.raises(ValueError) as info:
        finalize(model, opt, bn_data=5)
    assert str(info.value) == message
    with pytest.raises(ValueError) as info, evaluating(model, opt, bn_data=5):
        pass
    assert str(info.value) == message


def test_one_element_tensors_are_read_as_the_numbers_they_hold():
    """As torch's optimizers take them: a tensor of shape (1,) too, not only a 0-d one."""
    one = torch.tensor([0.5])
    assert schedule_free(_model().parameters(), lr=one).param_groups[0]["lr"] == 0.5
    assert prodigy(_model().parameters(), lr=one).param_groups[0]["lr"] == 0.5
    betas = (torch.tensor([0.9]), torch.tensor([0.999]))
    schedule_free(_model().parameters(), betas=betas, eps=torch.tensor([1e-8]))
    with pytest.raises(ValueError) as info:
        schedule_free(_model().parameters(), lr=torch.tensor([-1.0]))
    assert str(info.value) == "lr must be > 0 (allowed range: (0, inf)), got -1.0"
    with pytest.raises(ValueError, match=r"^betas\[1\] must be in \[0.0, 1.0\), got 1.5"):
        prodigy(_model().parameters(), betas=(torch.tensor([0.9]), torch.tensor([1.5])))


def test_is_schedule_free_needs_train_and_eval_methods_and_the_flag():
    opt = torch.optim.SGD(_model().parameters(), lr=0.1)
    opt.param_groups[0]["train_mode"] = True
    opt.train = lambda: None  # no eval(): not schedule-free
    assert not is_schedule_free(opt)
    opt.eval = lambda: None
    assert is_schedule_free(opt)


def test_lrfree_lr_refuses_param_groups_that_are_not_dicts():
    class Fake:
        param_groups = [0.1]

    with pytest.raises(ValueError) as info:
        lrfree_lr(Fake())
    assert str(info.value) == "optimizer must be a torch optimizer (with param_groups), got Fake"


def test_first_lr_reader_gives_prodigys_step_size_and_a_changed_lr():
    from lrkit.torch._lrfree import first_lr_reader

    model = _model()
    opt = prodigy(model.parameters(), lr=0.5)
    read = first_lr_reader(opt)
    _train(model, opt, _data(2), epochs=1)
    assert read() == lrfree_lr(opt)[0] == opt.param_groups[0]["d"] * 0.5 != 0.5
    plain = torch.optim.SGD(model.parameters(), lr=0.3)
    read = first_lr_reader(plain)
    plain.param_groups[0]["lr"] = 0.07  # a scheduler's change is read at the next call
    assert read() == 0.07


class _KeywordModel(torch.nn.Module):
    """The BatchNorm model of ``_model()``, called with keywords."""

    def __init__(self):
        super().__init__()
        self.net = _model()

    def forward(self, inputs):
        return self.net(inputs)


def test_dict_batches_are_passed_as_keywords():
    model = _KeywordModel()
    data = _data(3)
    assert reestimate_batchnorm(model, [{"inputs": x} for x, _ in data]) == 3
    with torch.no_grad():
        mean = torch.stack([model.net[0](x).mean(0) for x, _ in data]).mean(0)
    assert torch.allclose(model.net[1].running_mean, mean, atol=1e-6)


def _interrupted(n=2):
    yield from _data(n)
    raise KeyboardInterrupt


def test_an_interrupted_pass_puts_the_statistics_the_weights_and_the_mode_back():
    model = _model()
    _train(model, torch.optim.SGD(model.parameters(), lr=0.01), _data(), epochs=1)
    before = _bn_state(model)
    with pytest.raises(KeyboardInterrupt):
        reestimate_batchnorm(model, _interrupted())
    assert _same_bn(_bn_state(model), before)
    opt = schedule_free(model.parameters(), lr=0.05)
    _train(model, opt, _data(), epochs=1)
    weights = [p.detach().clone() for p in model.parameters()]
    before = _bn_state(model)
    with pytest.raises(KeyboardInterrupt):
        finalize(model, opt, bn_data=_interrupted())
    assert _same_bn(_bn_state(model), before) and opt.param_groups[0]["train_mode"]
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), weights))


@pytest.mark.parametrize("bad", [True, 2.0])
def test_num_batches_must_be_an_integer_not_a_bool(bad):
    model = _model()
    opt = schedule_free(model.parameters(), lr=0.05)
    message = rf"^num_batches must be an integer >= 1, got {bad}$"
    with pytest.raises(ValueError, match=message):
        reestimate_batchnorm(model, _data(), num_batches=bad)
    with pytest.raises(ValueError, match=message):
        finalize(model, opt, bn_data=_data(), num_batches=bad)
    with pytest.raises(ValueError, match=message), evaluating(model, opt, num_batches=bad):
        pass


def test_bn_data_given_as_a_callable_leaves_the_rngs_and_its_loader_as_they_were():
    """The callable draws from the global RNG when called, and its loader from a generator
    of its own: both are as they were after the block."""
    model, gen = _model(), torch.Generator().manual_seed(3)

    def factory():
        ds = torch.utils.data.TensorDataset(torch.randn(32, 3), torch.randn(32, 1))
        return torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True, generator=gen)

    opt = schedule_free(model.parameters(), lr=0.05)
    rng, g_state = torch.get_rng_state(), gen.get_state()
    with evaluating(model, opt, bn_data=factory, num_batches=2):
        assert int(model[1].num_batches_tracked) == 2
    assert torch.equal(torch.get_rng_state(), rng) and torch.equal(gen.get_state(), g_state)
    assert finalize(model, opt, bn_data=factory, num_batches=3) is model
    assert int(model[1].num_batches_tracked) == 3 and not model.training


def test_finalize_without_bn_data_puts_the_model_in_eval_mode_and_returns_it():
    model = _model()
    opt = schedule_free(model.parameters(), lr=0.05)
    _train(model, opt, _data(), epochs=1)
    assert finalize(model, opt) is model
    assert not model.training and not opt.param_groups[0]["train_mode"]


def test_betas_given_as_bytes_or_a_dict_are_refused_as_not_a_pair():
    for bad in (b"ab", {"beta1": 0.9, "beta2": 0.999}):
        with pytest.raises(ValueError, match=r"^betas must be a pair \(beta1, beta2\) in \[0, 1\)"):
            schedule_free(_model().parameters(), betas=bad)


def test_evaluating_puts_every_group_back_in_train_mode():
    torch.manual_seed(0)
    body, head = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)
    model = torch.nn.Sequential(body, head)
    opt = schedule_free([{"params": body.parameters()}, {"params": head.parameters()}], lr=0.05)
    with evaluating(model, opt):
        assert [g["train_mode"] for g in opt.param_groups] == [False, False]
    assert [g["train_mode"] for g in opt.param_groups] == [True, True]


def test_a_group_with_a_d_of_its_own_but_no_d0_reads_its_lr():
    """Only Prodigy's groups hold both ``d`` and ``d0``: another optimizer's group with an
    entry named ``d`` is read at its ``lr``."""
    opt = torch.optim.SGD([{"params": _model().parameters(), "d": 3.0}], lr=0.1)
    assert lrfree_lr(opt) == [0.1]


def test_a_prodigy_group_added_later_steps_with_the_first_groups_bias_correction():
    """Prodigy's bias correction comes from the first group's flag and step count: a group
    added after some steps, with a flag and a step count of its own, gets the same one."""
    torch.manual_seed(0)
    body, head = torch.nn.Linear(3, 3).double(), torch.nn.Linear(3, 2).double()
    opt = prodigy(body.parameters(), use_bias_correction=True, d0=1e-6)
    data = [(x.double(), torch.cat([y, y], 1).double()) for x, y in _data(5)]

    def step(x, y):
        opt.zero_grad()
        torch.nn.functional.mse_loss(head(body(x)), y).backward()
        opt.step()

    for x, y in data + data[:1]:
        step(x, y)
    opt.add_param_group({"params": head.parameters(), "use_bias_correction": False})
    step(*data[1])  # every group now holds the first group's d
    assert [g["k"] for g in opt.param_groups] == [7, 1]
    predicted = lrfree_lr(opt)
    _assert_next_head_step_is(opt, body, head, data[2], predicted[1])
    assert predicted[1] == predicted[0]


def test_a_batchnorm_without_running_statistics_is_passed_over():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 6), torch.nn.BatchNorm1d(6, track_running_stats=False)
    )
    x = _data(1)[0][0]
    model.eval()
    with torch.no_grad():
        out = model(x)
    reestimate_batchnorm(model, _data())
    with evaluating(model, bn_data=_data(), num_batches=2), torch.no_grad():
        assert torch.equal(model(x), out)
    assert not model.training and model[1].momentum == 0.1


def test_reestimate_and_evaluating_put_back_every_modules_train_flag():
    model = _model()
    model[1].eval()
    flags = [m.training for m in model.modules()]
    reestimate_batchnorm(model, _data(), num_batches=2)
    assert [m.training for m in model.modules()] == flags
    model.eval()
    model[0].train()
    flags = [m.training for m in model.modules()]
    with evaluating(model, torch.optim.SGD(model.parameters(), lr=0.1)):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == flags


def test_finalize_reestimates_the_statistics_at_the_evaluation_weights():
    model, data = _model(), _data()
    opt = schedule_free(model.parameters(), lr=0.05)
    _train(model, opt, data)
    finalize(model, opt, bn_data=data, num_batches=3)
    with torch.no_grad():  # the weights now are x: the statistics are the average there
        mean = torch.stack([model[0](x).mean(0) for x, _ in data[:3]]).mean(0)
    assert torch.allclose(model[1].running_mean, mean, atol=1e-6)
    assert int(model[1].num_batches_tracked) == 3


def test_a_prodigy_group_added_later_reads_the_step_size_it_steps_with() -> None:
    """Prodigy steps every group with the first group's d: a group added after d has grown
    (gradual unfreezing) still holds d0 until its first step, and lrfree_lr must not read it."""
    torch.manual_seed(0)
    body, head = torch.nn.Linear(3, 3).double(), torch.nn.Linear(3, 2).double()
    opt = prodigy(body.parameters(), d0=1e-6)
    data = [(x.double(), torch.cat([y, y], 1).double()) for x, y in _data(5)]
    for x, y in data + data[:1]:
        opt.zero_grad()
        torch.nn.functional.mse_loss(head(body(x)), y).backward()
        opt.step()
    assert opt.param_groups[0]["d"] > 1e-6  # d has grown
    opt.add_param_group({"params": head.parameters()})
    assert opt.param_groups[1]["d"] == 1e-6  # d0 until the group's first step
    _assert_next_head_step_is(opt, body, head, data[1], lrfree_lr(opt)[1])


def _assert_next_head_step_is(opt, body, head, batch, lr: float) -> None:
    """The step Prodigy applies to ``head`` (its second group) on ``batch`` is ``lr``."""
    x, y = batch
    opt.zero_grad()
    torch.nn.functional.mse_loss(head(body(x)), y).backward()
    before = [p.detach().clone() for p in head.parameters()]
    opt.step()
    g = opt.param_groups[1]
    for p, b in zip(head.parameters(), before):  # p -= dlr * exp_avg / denom
        st = opt.state[p]
        direction = st["exp_avg"] / (st["exp_avg_sq"].sqrt() + g["d"] * g["eps"])
        used = (b - p.detach()).flatten() / direction.flatten()
        assert torch.allclose(used, torch.full_like(used, lr), rtol=1e-6)
