"""lrkit.torch.find_lr on an optimizer with several param groups: each group is swept at its
ratio to the optimizer's lr (the ratio ``lrkit.torch.scheduler`` applies), one group or groups
at one LR exactly as before, and the groups the scheduler cannot read at one LR, with a
warning."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from lrkit.torch import find_lr  # noqa: E402
from lrkit.torch import scheduler as lrkit_scheduler  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::lrkit.finder.LRFinderWarning")

F = nn.functional.cross_entropy


def _data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, :3].sum(1) > 0).long()
    return [(x[i : i + 32], y[i : i + 32]) for i in range(0, n, 32)]


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))


def _sgd(model, lrs, **kw):
    groups = [
        {"params": model[0].parameters(), "lr": lrs[0]},
        {"params": model[2].parameters(), "lr": lrs[1]},
    ]
    return torch.optim.SGD(groups, momentum=0.9, **kw)


def _sweep(model, opt, **kw):
    """The result, the swept LRs (the callback's) and each step's group LRs (read just before
    ``optimizer.step()``)."""
    swept: list[float] = []
    seen: list[list[float]] = []
    r = find_lr(
        model,
        opt,
        F,
        _data(),
        num_iter=20,
        callback=lambda i, lr, loss: swept.append(lr),
        before_step=lambda o: seen.append([float(g["lr"]) for g in o.param_groups]),
        **kw,
    )
    return r, swept, seen


def _arrays(r):
    return [r.lrs, r.losses, r.smoothed, r.held_lrs, r.held_losses]


def test_groups_keep_their_ratio_to_the_optimizers_lr_and_go_back():
    model = _model()
    opt = _sgd(model, (1e-4, 1e-3), lr=1e-4)
    r, swept, seen = _sweep(model, opt)
    assert len(seen) == len(swept) >= r.steps > 10
    # the backbone at the swept LR (the optimizer's lr is its own), the head at 10x it
    assert [s[0] for s in seen] == swept and list(r.lrs) == swept[: r.steps]
    assert all(s[1] == pytest.approx(10 * s[0], rel=1e-12) for s in seen)
    assert [g["lr"] for g in opt.param_groups] == [1e-4, 1e-3]  # restored exactly


def test_the_ratio_is_the_one_the_scheduler_applies():
    """Groups at 2e-4 and 6e-4 of an optimizer at 1e-4: swept at 2x and 6x, as
    ``lrkit.torch.scheduler`` sets them from a schedule in the optimizer's units."""
    model = _model()
    opt = _sgd(model, (2e-4, 6e-4), lr=1e-4)
    _, swept, seen = _sweep(model, opt)
    ratios = [s[1] / s[0] for s in seen]
    assert all(s[0] == pytest.approx(2 * lr, rel=1e-12) for s, lr in zip(seen, swept))
    assert ratios == pytest.approx([3.0] * len(seen), rel=1e-12)
    sched = lrkit_scheduler(opt, "constant(0.5)")
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([2 * 0.5, 6 * 0.5])
    del sched


def test_the_probes_keep_the_ratios_too():
    model = _model()
    opt = _sgd(model, (1e-4, 1e-3), lr=1e-4)
    r, _, seen = _sweep(model, opt, probe_data=_data(64, seed=1))
    assert r.probes is not None and len(seen) > 20  # the sweep's steps, then the probes'
    assert all(s[1] == pytest.approx(10 * s[0], rel=1e-12) for s in seen)
    assert [g["lr"] for g in opt.param_groups] == [1e-4, 1e-3]


def test_one_group_and_groups_at_one_lr_are_swept_as_before_bit_for_bit():
    """Every group at the swept LR itself (ratios of 1: no multiplication), and the same
    sweep, bit for bit, whether the parameters sit in one group or in two at one LR."""
    one = _model()
    r1, swept1, seen1 = _sweep(one, torch.optim.SGD(one.parameters(), lr=0.01, momentum=0.9))
    two = _model()
    r2, swept2, seen2 = _sweep(two, _sgd(two, (0.01, 0.01), lr=0.01))
    three = _model()  # groups at one LR that is not the optimizer's: still at the swept LR
    r3, swept3, seen3 = _sweep(three, _sgd(three, (0.05, 0.05), lr=0.01))
    assert seen1 == [[lr] for lr in swept1]
    assert seen2 == [[lr, lr] for lr in swept2] and seen3 == [[lr, lr] for lr in swept3]
    for a, b, c in zip(_arrays(r1), _arrays(r2), _arrays(r3)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert r1.suggestion == r2.suggestion == r3.suggestion
    assert r1.max_lr == r2.max_lr == r3.max_lr


@pytest.mark.parametrize(
    "build",
    [
        lambda m: _sgd(m, (1e-4, 1e-3), lr=1e-4),  # a head at 10x
        lambda m: _sgd(m, (0.2, 0.2), lr=0.1),  # groups at one LR that is not the optimizer's
        lambda m: _sgd(m, (0.01, 0.03), lr=0.02),
        lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
    ],
)
def test_the_scheduler_trains_each_group_at_the_lr_the_sweep_measured_for_a_suggestion(build):
    """The LR the sweep records as x set each group's lr to what scheduler(opt, constant(x))
    sets it to: a suggestion fed back into the scheduler trains at the LRs it was read at."""
    model = _model()
    opt = build(model)
    if len(opt.param_groups) == 1:
        opt.param_groups[0]["lr"] = 0.01  # changed by hand after construction
    _, swept, seen = _sweep(model, opt)
    for x, group_lrs in list(zip(swept, seen))[::5]:
        fresh = _model()
        other = build(fresh)
        if len(other.param_groups) == 1:
            other.param_groups[0]["lr"] = 0.01
        lrkit_scheduler(other, f"constant({x!r})")
        assert [g["lr"] for g in other.param_groups] == pytest.approx(group_lrs, rel=1e-12)


def _recorded_warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, [w for w in caught if "param group" in str(w.message)]


@pytest.mark.parametrize(
    ("lr", "why"),
    [
        (None, r"and the optimizer's lr is SGD's default 0\.001, "),
        (0.0, r"and the optimizer has no lr \(defaults\['lr'\] is 0\.0\), "),
    ],
)
def test_groups_with_lrs_of_their_own_and_no_optimizer_lr_are_swept_at_one_lr_with_a_warning(
    lr, why
):
    """Every group sets its own lr and the optimizer's is its default (or 0): the ratios
    cannot be read (the scheduler refuses them), so the groups are swept at one LR, as before,
    with one warning that says how to keep them."""
    model = _model()
    opt = _sgd(model, (1e-4, 1e-2), **({} if lr is None else {"lr": lr}))
    (r, swept, seen), caught = _recorded_warnings(lambda: _sweep(model, opt))
    assert len(caught) == 1 and caught[0].category is UserWarning
    msg = str(caught[0].message)
    assert "\n" not in msg and caught[0].filename == __file__
    assert msg.startswith("optimizer: every param group sets its own lr (0.0001, 0.01) ")
    assert re.search(why + r"so the range test sweeps every group at one LR", msg)
    assert "pass lr= to the optimizer" in msg
    assert seen == [[lr, lr] for lr in swept]
    assert [g["lr"] for g in opt.param_groups] == [1e-4, 1e-2]


@pytest.mark.parametrize("lr", [None, 0.0])
def test_a_group_frozen_at_lr_0_stays_frozen_when_the_ratios_cannot_be_read(lr):
    """A frozen backbone (lr=0) beside a head at its own lr, without the optimizer's lr: the
    frozen group's ratio, 0, does not depend on that lr, so it is kept (and, the other group
    being alone at its LR, there is nothing to warn of); beside two groups at different LRs
    the warning stays and the frozen group is still not trained."""
    model = _model()
    opt = _sgd(model, (0.0, 1e-2), **({} if lr is None else {"lr": lr}))
    frozen = [p.detach().clone() for p in model[0].parameters()]
    (_, swept, seen), caught = _recorded_warnings(lambda: _sweep(model, opt))
    assert caught == []
    assert seen == [[0.0, lr] for lr in swept]
    assert [g["lr"] for g in opt.param_groups] == [0.0, 1e-2]

    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    groups = [
        {"params": model[i].parameters(), "lr": v} for i, v in zip((0, 2, 4), (0.0, 1e-4, 1e-2))
    ]
    opt = torch.optim.SGD(groups, **({} if lr is None else {"lr": lr}))
    frozen = [p.detach().clone() for p in model[0].parameters()]
    (_, swept, seen), caught = _recorded_warnings(lambda: _sweep(model, opt))
    assert len(caught) == 1
    assert "sweeps every group not frozen at lr=0 at one LR" in str(caught[0].message)
    assert seen == [[0.0, lr, lr] for lr in swept]
    assert all(torch.equal(p, f) for p, f in zip(model[0].parameters(), frozen))


@pytest.mark.parametrize("lrs", [(1e-4, 1e-3), (0.02, 0.02)])
def test_groups_whose_ratios_are_read_give_no_warning(lrs):
    """Under SGD's default lr (1e-3): a group at it gives the ratios (1e-4 is 0.1x); groups at
    one LR keep their ratio at one LR anyway."""
    model = _model()
    opt = _sgd(model, lrs)
    (_, swept, seen), caught = _recorded_warnings(lambda: _sweep(model, opt))
    assert caught == []
    if lrs[0] != lrs[1]:
        assert all(s[0] == pytest.approx(0.1 * lr, rel=1e-12) for s, lr in zip(seen, swept))
        assert all(s[1] == lr for s, lr in zip(seen, swept))
    else:
        assert seen == [[lr, lr] for lr in swept]


def test_tensor_lrs_are_filled_at_their_ratio_and_restored_in_place():
    model = _model()
    lrs = [torch.tensor(1e-4), torch.tensor(1e-3)]
    groups = [
        {"params": model[0].parameters(), "lr": lrs[0]},
        {"params": model[2].parameters(), "lr": lrs[1]},
    ]
    opt = torch.optim.Adam(groups, lr=1e-4, foreach=False)
    _, _, seen = _sweep(model, opt)
    assert all(s[1] == pytest.approx(10 * s[0], rel=1e-6) for s in seen)
    assert all(g["lr"] is t for g, t in zip(opt.param_groups, lrs))
    assert [float(t) for t in lrs] == [float(torch.tensor(1e-4)), float(torch.tensor(1e-3))]


def test_a_group_added_during_the_sweep_is_swept_at_the_swept_lr_itself():
    """A group the step adds (a head unfrozen on first use) has no ratio of its own: from the
    next step on it is at the swept LR, beside the others at theirs, and it is gone after."""
    model = _model()
    opt = _sgd(model, (1e-4, 1e-3), lr=1e-4)
    extra = nn.Parameter(torch.zeros(3))

    def step(m, b):
        if len(opt.param_groups) == 2:
            opt.add_param_group({"params": [extra], "lr": 0.5})
        return F(m(b[0]), b[1]) + (extra**2).sum()

    _, swept, seen = _sweep(model, opt, step=step)
    assert len(seen) == len(swept) > 10 and seen[0][2] == 0.5  # added after the first LRs
    assert [s[2] for s in seen[1:]] == swept[1:]
    assert all(s[1] == pytest.approx(10 * s[0], rel=1e-12) for s in seen)
    assert len(opt.param_groups) == 2
