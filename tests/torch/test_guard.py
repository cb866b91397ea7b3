"""DivergenceGuard (torch) and feedback controllers driven by lrkit.torch.scheduler."""

from __future__ import annotations

import copy
import gc
import json
import math
import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import lrkit.torch as lt  # noqa: E402
from lrkit import schedules as S  # noqa: E402
from lrkit.feedback import (  # noqa: E402
    Chain,
    Multiplier,
    ReduceOnPlateau,
    RestartOnPlateau,
)
from lrkit.torch._guard import DivergenceError, DivergenceGuard  # noqa: E402


def _problem(seed=0, bn=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=g) * 3
    w = torch.randn(4, 1, generator=g)
    y = x @ w + 0.1 * torch.randn(64, 1, generator=g)
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(4, 8)]
    if bn:
        layers.append(torch.nn.BatchNorm1d(8))
    layers += [torch.nn.ReLU(), torch.nn.Linear(8, 1)]
    return torch.nn.Sequential(*layers), x, y


def _state(model, opt):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        json.loads(json.dumps(_plain(opt.state_dict()))),
        {id(p): {k: v.clone() for k, v in opt.state[p].items()} for p in model.parameters()},
    )


def _plain(x):
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _equal_state(a, b):
    assert a[0].keys() == b[0].keys()
    assert all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    assert a[2].keys() == b[2].keys()
    for pid in a[2]:
        assert a[2][pid].keys() == b[2][pid].keys()
        assert all(torch.equal(a[2][pid][k], b[2][pid][k]) for k in a[2][pid])


@pytest.mark.parametrize("snapshot_every", [1, 3, None])
def test_forced_nan_restores_the_promised_snapshot_bit_for_bit(snapshot_every):
    """The snapshot is taken at every ``snapshot_every``-th good check (default 50), before
    that step's update; a NaN restores exactly that state (model, buffers, optimizer)."""
    model, x, y = _problem(bn=True)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    kw = {} if snapshot_every is None else {"snapshot_every": snapshot_every}
    guard = DivergenceGuard(model, optimizer=opt, factor=0.5, **kw)
    every = guard.snapshot_every
    assert every == (50 if snapshot_every is None else snapshot_every)
    nan_at = 2 * every + every // 2 + 1  # check number of the NaN (1-based)
    promised = None
    for i in range(1, nan_at + 1):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        if i % every == 0 and i != nan_at:
            promised = (i, _state(model, opt))  # the state the guard snapshots at check i
        if i == nan_at:
            loss = loss * math.nan
        ok = guard.check(loss)
        assert ok == (i != nan_at)
        if i == nan_at:
            break
        opt.step()
    at, good = promised
    assert guard.snapshot_check == at and nan_at - at <= every
    now = _state(model, opt)
    _equal_state(now, good)
    assert now[1]["param_groups"][0]["lr"] == 0.005  # halved
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert guard.restores == 1 and guard.scale == 0.5
    assert guard.events[0]["action"] == "restore" and guard.events[0]["step"] == nan_at


class _RunningCentre(torch.nn.Module):
    """A layer with a running mean kept in a buffer registered with ``persistent=False``."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)
        self.register_buffer("centre", torch.zeros(4), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.centre.mul_(0.9).add_(0.1 * x.mean(0))
        return self.lin(x - self.centre)


def test_a_restore_puts_back_non_persistent_buffers_in_place():
    torch.manual_seed(0)
    model = torch.nn.Sequential(_RunningCentre())
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    guard = DivergenceGuard(model, optimizer=opt, snapshot_every=1)
    centre = model[0].centre  # a reference the user holds
    for i in range(4):
        bad = x.clone()
        if i == 3:
            bad[0, 0] = math.nan  # a bad batch poisons the running mean
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(bad), y)
        if i == 3:
            assert not torch.isfinite(centre).all()
        loss.backward()
        if guard.check(loss):
            opt.step()
            # this check's snapshot holds the buffer as the forward pass left it
            kept = centre.clone()
    assert guard.restores == 1
    assert model[0].centre is centre and torch.equal(centre, kept)
    assert "centre" not in model.state_dict()


def test_a_restore_keeps_the_optimizers_state_objects_and_a_compiled_step_compiled():
    """The optimizer state comes back into the mapping, dicts and tensors it held (a compiled
    optimizer step guards on them: new tensors compiled it again at every restore)."""
    import torch._dynamo

    model, x, y = _problem()
    opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.01))
    graphs = [0]

    def backend(gm: Any, example: Any) -> Any:
        graphs[0] += 1
        return gm.forward

    torch._dynamo.reset()
    step = torch.compile(opt.step, backend=backend)
    guard = DivergenceGuard(model, optimizer=opt, snapshot_every=1)
    held: dict[int, Any] = {}
    for i in range(8):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        if guard.check(loss * math.inf if i in (4, 6) else loss):
            kept = _state(model, opt)  # what this check's snapshot holds
            step()
        if i == 2:
            held = {id(p): dict(opt.state[p]) for p in model.parameters()}
            mapping, dicts = opt.state, [opt.state[p] for p in model.parameters()]
        if i in (4, 6):  # restored: the last good step's values, in the same objects
            _equal_state(_state(model, opt), kept)
    assert guard.restores == 2 and opt.state is mapping
    assert all(opt.state[p] is d for p, d in zip(model.parameters(), dicts, strict=True))
    for p in model.parameters():
        assert all(opt.state[p][k] is t for k, t in held[id(p)].items())
    once = graphs[0]
    torch._dynamo.reset()
    assert once == 1  # (a restore that replaced the state tensors: one graph more each)


def _restored_after_state_edit(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The first parameter's optimizer state after a restore, ``edit`` having changed it in
    place between the good check (its snapshot) and the diverged one."""
    model, x, y = _problem()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    guard = DivergenceGuard(model, optimizer=opt, snapshot_every=1)
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    assert guard.check(loss)
    p = next(model.parameters())
    kept = {k: v.clone() for k, v in opt.state[p].items()}
    edit(opt.state[p])
    assert not guard.check(math.nan) and guard.restores == 1
    assert opt.state[p].keys() == kept.keys()
    for k, v in kept.items():
        assert opt.state[p][k].dtype == v.dtype and torch.equal(opt.state[p][k], v)
    return opt.state[p]


def test_a_restore_drops_a_state_entry_added_after_the_snapshot():
    """The optimizer state after a restore is the snapshot's: an entry added since is gone."""
    _restored_after_state_edit(lambda state: state.update(note=torch.ones(1)))


def test_a_restore_brings_back_a_state_tensor_of_another_dtype_as_it_was():
    """A state tensor replaced by one of the same shape in another dtype comes back in the
    snapshot's dtype (its values are not cast into the replacing tensor)."""

    def to_double(state: dict[str, Any]) -> None:
        state["exp_avg"] = state["exp_avg"].double() * 3

    _restored_after_state_edit(to_double)


def test_a_restore_brings_back_a_state_tensor_of_another_shape_as_it_was():
    """A state tensor replaced by one of another shape between the snapshot and the restore:
    the snapshot's comes back, not broadcast into the replacing one."""
    _restored_after_state_edit(
        lambda state: state.update(exp_avg=torch.stack([state["exp_avg"]] * 2))
    )


def test_the_guard_refuses_what_is_not_a_module_in_one_line():
    model, _, _ = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for bad, kind in (("model", "str"), (None, "NoneType"), (model.state_dict(), "OrderedDict")):
        with pytest.raises(ValueError) as info:
            DivergenceGuard(bad, optimizer=opt)
        assert str(info.value) == f"model must be a torch.nn.Module, got {kind}"


def test_a_restore_puts_back_what_the_optimizer_steps_outside_the_model():
    """A learnable loss temperature, stepped by the optimizer but owned by no module: its
    value and its momentum come back with the model's (it stayed at the blown-up value, and
    every later check diverged again until the guard gave up)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    temp = torch.nn.Parameter(torch.tensor(1.0))
    opt = torch.optim.SGD([{"params": model.parameters()}, {"params": [temp]}], lr=0.1,
                          momentum=0.9)  # fmt: skip
    guard = DivergenceGuard(model, optimizer=opt, snapshot_every=1)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    for i in range(6):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y) * temp
        if i == 3:
            loss = loss * math.inf
        loss.backward()
        if i == 2:  # a huge, finite gradient: temp jumps to about -1e37 at this step
            temp.grad.fill_(1e38)
        if guard.check(loss):
            opt.step()
            if i == 1:
                kept = (temp.detach().clone(), opt.state[temp]["momentum_buffer"].clone())
        elif i == 3:  # restored to the snapshot of check 3, before step 2's update
            assert torch.equal(temp.detach(), kept[0])
            assert torch.equal(opt.state[temp]["momentum_buffer"], kept[1])
            assert temp.grad is None
    assert guard.restores == 1 and math.isfinite(float(temp.detach()))


@pytest.mark.parametrize("diverge_at", [0, 5])  # at the first check after it, or later
def test_a_divergence_after_add_param_group_restores_every_group(diverge_at):
    """Layers unfrozen (add_param_group) between two snapshots: the groups the snapshot holds
    get their state back, the new one is kept as it is (a restore raised PyTorch's "different
    number of parameter groups" after restoring the model only); from the next good check on,
    snapshots hold the new group too."""
    torch.manual_seed(0)
    body, head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
    model = torch.nn.Sequential(body, torch.nn.Tanh(), head)
    opt = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.9)
    sched = lt.scheduler(opt, S.constant(0.01))
    guard = DivergenceGuard(model, optimizer=opt, scheduler=sched, snapshot_every=50)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    snap = None
    for i in range(10):
        if i == 4:
            snap = {k: v.clone() for k, v in model.state_dict().items()}
            opt.add_param_group({"params": body.parameters(), "lr": 0.001})
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        if i == 4 + diverge_at:
            loss = loss * math.nan
        loss.backward()
        if guard.check(loss):
            opt.step()
        else:
            break
        sched.step()
    assert guard.restores == 1 and len(opt.param_groups) == 2
    assert torch.equal(body.weight, snap["0.weight"])  # not trained before, or since check 5
    if diverge_at == 0:  # the snapshot taken when the guard was made: head at its first values
        assert guard.snapshot_check == 0 and not torch.equal(head.weight, snap["2.weight"])
    else:  # the snapshot taken at the first good check after add_param_group (check 5)
        assert guard.snapshot_check == 5 and torch.equal(head.weight, snap["2.weight"])
    # the scheduler's LRs, cut in half: the new group keeps its ratio to the schedule
    assert [g["lr"] for g in opt.param_groups] == [0.005, pytest.approx(0.0005)]
    assert all(p.grad is None for p in model.parameters())


def test_nonfinite_gradient_caught_by_the_fused_check():
    """One inf or NaN anywhere among the gradients (any dtype, some grads None) counts."""
    model, x, y = _problem(seed=7)
    model.double()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    guard = DivergenceGuard(model, optimizer=opt, snapshot_every=1)
    for bad in (math.inf, -math.inf, math.nan):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x.double()), y.double()).backward()
        assert guard.check(1.0) and guard._grads_finite()
        model[2].bias.grad = None
        model[0].weight.grad[1, 2] = bad
        assert not guard._grads_finite()
        assert not guard.check(1.0)
    huge = DivergenceGuard(model, optimizer=opt)
    model[0].weight.grad = torch.full_like(model[0].weight, 1e300)  # finite: no overflow
    assert huge._grads_finite()


def test_recovers_a_run_that_diverges():
    model, x, y = _problem(seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)  # diverges to inf/NaN within a few steps
    first = torch.nn.functional.mse_loss(model(x), y).item()
    guard = DivergenceGuard(model, optimizer=opt, factor=0.1, max_restores=5, min_history=3)
    losses = []
    for _ in range(200):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        if guard.check(loss):
            opt.step()
            losses.append(loss.item())
    assert 1 <= guard.restores <= 5
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * 0.1**guard.restores)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    final = torch.nn.functional.mse_loss(model(x), y).item()
    assert math.isfinite(final) and final < 0.1 * first


def test_unrecoverable_raises_after_restoring():
    model, x, y = _problem(seed=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    guard = DivergenceGuard(model, optimizer=opt, max_restores=2, factor=0.5)
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    assert guard.check(loss)
    good = _state(model, opt)
    opt.step()
    assert guard.check(float("nan")) is False
    assert guard.check(float("inf")) is False
    with pytest.raises(DivergenceError, match="restored to their last good state") as err:
        guard.check(torch.tensor(float("nan")))
    assert isinstance(err.value, RuntimeError)
    _equal_state(_state(model, opt), good)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0025)


def test_spike_and_nonfinite_grad_count_as_divergence():
    model, x, y = _problem(seed=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    guard = DivergenceGuard(model, optimizer=opt, spike_factor=5.0, min_history=3, window=3)
    for v in [1.0, 1.1, 0.9]:
        assert guard.check(v)
    assert guard.check(4.9)  # 5 x median(1.0, 1.1, 0.9) = 5.0
    assert not guard.check(100.0)
    assert guard.restores == 1
    model[0].weight.grad = torch.full_like(model[0].weight, math.nan)
    assert not guard.check(1.0)
    assert guard.restores == 2
    assert model[0].weight.grad is None
    # the event holds the loss as it was, and says the gradients were not finite
    assert guard.events[-1] == {
        "step": 6,
        "loss": 1.0,
        "action": "restore",
        "reference": guard.events[-1]["reference"],
        "scale": 0.25,
        "gradients": "not finite",
    }
    again = DivergenceGuard(model, optimizer=opt, spike_factor=5.0, min_history=3, window=3)
    again.load_state_dict(json.loads(json.dumps(guard.state_dict())))
    assert again.events == guard.events
    # giving up on them: the error names the loss and the gradients, and check_grads
    last = DivergenceGuard(model, optimizer=opt, max_restores=0)
    model[0].weight.grad = torch.full_like(model[0].weight, math.inf)
    with pytest.raises(DivergenceError) as info:
        last.check(0.5)
    assert str(info.value).startswith(
        "training diverged (loss 0.5 with non-finite gradients at check 1) after 0 restore(s)"
    )
    assert str(info.value).endswith(
        "or raise max_restores (with a GradScaler, whose skipped steps have non-finite "
        "gradients: check_grads=False)."
    )
    assert last.events == [{"step": 1, "loss": 0.5, "action": "give_up", "gradients": "not finite"}]
    off = DivergenceGuard(model, optimizer=opt, check_grads=False)
    model[0].weight.grad = torch.full_like(model[0].weight, math.nan)
    assert off.check(1.0)
    with pytest.raises(ValueError, match=r"^check_grads must be True or False, got 'no'$"):
        DivergenceGuard(model, optimizer=opt, check_grads="no")


def test_snapshot_every():
    model, x, y = _problem(seed=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    guard = DivergenceGuard(model, optimizer=opt, snapshot_every=3)
    w0 = model[0].weight.detach().clone()
    for i in range(5):
        assert guard.check(1.0)
        if i == 2:
            w3 = model[0].weight.detach().clone()
        with torch.no_grad():
            model[0].weight.add_(1.0)
    assert guard.snapshot_check == 3
    assert not guard.check(float("nan"))
    assert torch.equal(model[0].weight, w3)  # state at check 3, before its update
    assert not torch.equal(model[0].weight, w0)
    with pytest.raises(ValueError, match="snapshot_every"):
        DivergenceGuard(model, optimizer=opt, snapshot_every=0)


def test_with_lrkit_scheduler_cut_composes_with_schedule_and_plateau():
    model, x, y = _problem(seed=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    plateau = ReduceOnPlateau(patience=0, factor=0.5)
    sched = lt.scheduler(opt, S.exponential(0.1, gamma=0.9), feedback=plateau)
    guard = DivergenceGuard(model, optimizer=opt, scheduler=sched, factor=0.1)
    assert isinstance(sched.feedback, Chain) and sched.feedback[1] is guard.feedback
    DivergenceGuard.attach(guard, sched)  # idempotent
    assert len(sched.feedback) == 2
    for _ in range(3):
        assert guard.check(1.0)
        opt.step()
        sched.step()
    sched.report(1.0)
    sched.report(1.0)  # plateau: x0.5
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.9**3 * 0.5)
    assert not guard.check(float("nan"))  # restores optimizer state, then cuts by 0.1
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.9**3 * 0.5 * 0.1)
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.9**4 * 0.5 * 0.1)
    sd = sched.state_dict()
    assert sd["feedback"]["controllers"][1] == {"type": "Multiplier", "scale": 0.1}
    # no feedback yet: the guard's multiplier becomes the feedback
    opt2 = torch.optim.SGD(model.parameters(), lr=0.1)
    s2 = lt.scheduler(opt2, S.constant(0.1))
    g2 = DivergenceGuard(model, optimizer=opt2, scheduler=s2)
    assert s2.feedback is g2.feedback
    with pytest.raises(ValueError, match="scheduler"):
        DivergenceGuard(model, optimizer=opt2, scheduler=torch.optim.lr_scheduler.StepLR(opt2, 1))


def test_guard_state_dict_round_trip():
    model, _, _ = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = DivergenceGuard(model, optimizer=opt)
    g.check(1.0)
    g.check(float("nan"))
    sd = json.loads(json.dumps(g.state_dict()))
    h = DivergenceGuard(model, optimizer=opt)
    h.load_state_dict(sd)
    assert h.state_dict() == g.state_dict() and h.scale == 0.5
    old = {"core": {**sd["controller"], "type": "DivergenceGuard"}, "feedback": sd["feedback"]}
    k = DivergenceGuard(model, optimizer=opt)
    k.load_state_dict(old)  # saved before the rename (and before "good" and "groups")
    assert k.state_dict() == {**g.state_dict(), "good": 0}  # counted from the resume


def test_load_state_dict_takes_state_dict_as_torch_does_and_state_as_a_deprecated_alias():
    """The argument is named ``state_dict``, as in torch's optimizers, schedulers, modules and
    ``LRKitScheduler``; ``state=`` (its name in lrkit 0.1.0) still loads, with a warning."""
    import inspect

    names = [
        list(inspect.signature(f).parameters)[1]
        for f in (
            DivergenceGuard.load_state_dict,
            lt.LRKitScheduler.load_state_dict,
            torch.optim.Optimizer.load_state_dict,
            torch.optim.lr_scheduler.LRScheduler.load_state_dict,
            torch.nn.Module.load_state_dict,
        )
    ]
    assert names == ["state_dict"] * 5
    model, _, _ = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = DivergenceGuard(model, optimizer=opt)
    g.check(1.0)
    g.check(float("nan"))
    sd = g.state_dict()
    loaded = []
    for how in ("positional", "state_dict", "state"):
        h = DivergenceGuard(model, optimizer=opt)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if how == "positional":
                h.load_state_dict(sd)
            elif how == "state_dict":
                h.load_state_dict(state_dict=sd)
            else:
                h.load_state_dict(state=sd)
        deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
        if how == "state":
            assert len(deprecations) == 1
            message = str(deprecations[0].message)
            assert "state_dict" in message and "renamed" in message
            assert deprecations[0].filename == __file__  # points at the caller
        else:
            assert deprecations == []
        loaded.append(h.state_dict())
    assert loaded == [sd] * 3
    h = DivergenceGuard(model, optimizer=opt)
    before = h.state_dict()
    with pytest.raises(
        TypeError,
        match=r"got both state_dict= and state= \(state is the former name of state_dict\)",
    ):
        h.load_state_dict(sd, state=sd)
    with pytest.raises(TypeError, match="'state_dict'"):
        h.load_state_dict()
    assert h.state_dict() == before


def test_without_lrkit_scheduler_a_cut_scales_the_lr_set_since_the_snapshot():
    # a stock torch scheduler lowered the LR after the snapshot: the cut applies to that LR,
    # it does not bring back the snapshot's
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    step_lr = torch.optim.lr_scheduler.StepLR(opt, 5, 0.1)
    guard = DivergenceGuard(model, optimizer=opt, spike_factor=None)
    for _ in range(12):
        opt.zero_grad()
        loss = model(torch.ones(1, 2)).sum()
        loss.backward()
        assert guard.check(loss)
        opt.step()
        step_lr.step()
    lr = opt.param_groups[0]["lr"]
    assert lr == pytest.approx(0.01) and guard.snapshot_check < 12
    assert not guard.check(float("nan"))
    assert opt.param_groups[0]["lr"] == lr * 0.5
    assert not guard.check(float("nan"))
    assert opt.param_groups[0]["lr"] == lr * 0.25


def test_a_tensor_lr_is_cut_in_place():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.01))
    lr = opt.param_groups[0]["lr"]
    guard = DivergenceGuard(model, optimizer=opt, spike_factor=None)
    guard.check(1.0)
    assert not guard.check(float("nan"))
    assert opt.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(0.005)


def test_resumed_guard_counts_checks_on_and_cuts_the_loaded_lr():
    model, _, _ = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = DivergenceGuard(model, optimizer=opt, spike_factor=None)
    for _ in range(5):
        g.check(1.0)
    g.check(float("nan"))  # lr 0.05
    state = json.loads(json.dumps(g.state_dict()))
    opt2 = torch.optim.SGD(model.parameters(), lr=0.1)
    opt2.load_state_dict(opt.state_dict())  # the optimizer's own checkpoint: lr 0.05
    h = DivergenceGuard(model, optimizer=opt2, spike_factor=None)
    h.load_state_dict(state)
    assert h.num_checks == g.num_checks == 6
    g.check(float("nan"))
    h.check(float("nan"))
    assert h.events == g.events and h.events[-1]["step"] == 7
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == pytest.approx(0.025)


def test_guard_load_state_dict_refuses_a_bad_state_and_changes_nothing():
    model, _, _ = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = DivergenceGuard(model, optimizer=opt)
    g.check(1.0)
    before = g.state_dict()
    with pytest.raises(ValueError, match="DivergenceGuard.state_dict"):
        g.load_state_dict({"controller": before["controller"]})
    bad = {"controller": {**before["controller"], "restores": 3}, "feedback": {"scale": "x"}}
    with pytest.raises(ValueError):
        g.load_state_dict(bad)
    assert g.state_dict() == before


def test_guard_refuses_a_scheduler_with_per_group_feedback():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias]}], lr=0.1)
    sched = lt.scheduler(opt, "constant(0.1)", feedback=[ReduceOnPlateau(), ReduceOnPlateau()])
    with pytest.raises(ValueError, match="per-group feedback"):
        DivergenceGuard(model, optimizer=opt, scheduler=sched)


def test_feedback_assigned_after_the_guard_joined_keeps_the_guard_s_cut():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = lt.scheduler(opt, S.constant(0.1))
    guard = DivergenceGuard(model, optimizer=opt, scheduler=sched)
    plateau = ReduceOnPlateau(patience=0)
    sched.feedback = plateau
    assert sched.feedback.controllers == (plateau, guard.feedback)
    assert guard.check(torch.tensor(float("nan"))) is False
    assert opt.param_groups[0]["lr"] == 0.05
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.05
    sched.feedback = None
    assert sched.feedback is guard.feedback
    sched.feedback = plateau & guard.feedback  # given with it: not added twice
    assert sched.feedback.controllers == (plateau, guard.feedback)
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.05
    assert repr(guard.feedback) == "Multiplier(scale=0.5)"
    with pytest.raises(ValueError, match=r"^feedback: a DivergenceGuard joined this scheduler"):
        sched.feedback = [ReduceOnPlateau()]
    assert sched.feedback.controllers == (plateau, guard.feedback)


class _Wrapped(torch.optim.Optimizer):
    """An optimizer wrapper holding the one it wraps as ``attr``: ``.optimizer`` as
    accelerate's AcceleratedOptimizer and Lightning's, ``.optim`` as PostLocalSGDOptimizer."""

    def __init__(self, inner: Any, attr: str = "optimizer") -> None:
        setattr(self, attr, inner)
        self.inner = inner
        self.param_groups = inner.param_groups
        self.defaults = inner.defaults
        self.state = inner.state

    def state_dict(self) -> Any:
        return self.inner.state_dict()

    def load_state_dict(self, state: Any) -> None:
        self.inner.load_state_dict(state)


def test_guard_refuses_a_scheduler_of_another_optimizer_and_takes_one_through_a_wrapper():
    """Two optimizers (a GAN, an encoder/decoder): the cut must reach the guarded one."""
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    other = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    sched = lt.scheduler(other, "constant(0.1)")
    with pytest.raises(ValueError) as info:
        DivergenceGuard(model, optimizer=opt, scheduler=sched)
    assert str(info.value) == (
        "scheduler drives another optimizer (a SGD that is not the guard's optimizer): the "
        "guard's cuts would set that one's LRs; pass the scheduler built on the guarded "
        "optimizer"
    )
    assert sched.feedback is None  # left as it was
    own = lt.scheduler(opt, "constant(0.1)")
    guard = DivergenceGuard(model, optimizer=_Wrapped(opt), scheduler=own)
    assert guard.scheduler is own and own.feedback is guard.feedback


def test_guard_takes_a_scheduler_through_a_wrapper_of_a_wrapper():
    """A wrapper holding ``.optimizer`` (Lightning's, accelerate's) around one holding
    ``.optim`` (PostLocalSGDOptimizer) is unwrapped to the optimizer the scheduler was built
    on; another optimizer, wrapped so, is still refused."""
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    both = _Wrapped(_Wrapped(opt, "optim"))
    own = lt.scheduler(opt, "constant(0.1)")
    guard = DivergenceGuard(model, optimizer=both, scheduler=own)
    assert guard.scheduler is own and own.feedback is guard.feedback
    other = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    sched = lt.scheduler(other, "constant(0.1)")
    with pytest.raises(ValueError, match=r"^scheduler drives another optimizer \(a SGD that"):
        DivergenceGuard(model, optimizer=both, scheduler=sched)
    local = _Wrapped(opt, "optim")  # PostLocalSGDOptimizer's form: its state is not sharded
    assert DivergenceGuard(model, optimizer=local).optimizer is local


def test_exported():
    from lrkit.feedback import DivergenceDetector

    assert DivergenceGuard.__call__ is DivergenceGuard.check is DivergenceGuard.update
    model, _, _ = _problem()
    guard = DivergenceGuard(model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert isinstance(guard.controller, DivergenceDetector)
    assert guard.snapshot_every == 50 and guard.controller.quantile == 0.9
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    c = DivergenceGuard(model, optimizer=opt, factor=0.25, window=7, min_history=3).controller
    assert (c.factor, c.window, c.min_history, c.max_restores) == (0.25, 7, 3, 3)
    with pytest.raises(TypeError, match="windows"):
        DivergenceGuard(model, optimizer=opt, windows=7)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=0.1))  # keyword-only
    assert lt.DivergenceGuard is DivergenceGuard
    assert lt.DivergenceError is DivergenceError


def test_the_guards_record_is_documented():
    import inspect

    for member in (DivergenceGuard.events, DivergenceGuard.restores, DivergenceGuard.scale):
        assert inspect.getdoc(member)


# ------------------------------------------------------------- scheduler(..., feedback=...)
def _opt(lr=1.0, groups=1):
    ps = [torch.nn.Parameter(torch.zeros(2)) for _ in range(groups)]
    return torch.optim.SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(ps)], lr=lr)


def test_scheduler_plateau_matches_pytorch_on_positive_stream():
    import numpy as np

    rng = np.random.default_rng(0)
    vals = np.exp(np.cumsum(rng.normal(0.0, 0.05, 200))).tolist()
    ref_opt = _opt(0.3)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, patience=3, cooldown=2, eps=0)
    opt = _opt(0.3)
    sched = lt.scheduler(opt, S.constant(0.3), feedback=ReduceOnPlateau(patience=3, cooldown=2))
    for v in vals:
        sched.step()
        ref.step(v)
        sched.report(v)
        assert opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-12)
    assert sched.feedback.reductions


def test_scheduler_feedback_scale_groups_and_resume():
    opt = _opt(0.1, groups=2)
    fb = ReduceOnPlateau(patience=1, factor=0.5)
    sched = lt.scheduler(opt, S.cosine(0.1, total_steps=100), feedback=fb)
    lrs = []
    for i in range(40):
        sched.step()
        if i % 5 == 4:
            sched.report(1.0 if i < 30 else 0.5)
        lrs.append([g["lr"] for g in opt.param_groups])
        if i == 19:
            ckpt = json.loads(json.dumps(sched.state_dict()))
    t = sched.last_epoch
    assert lrs[-1][0] == pytest.approx(S.cosine(0.1, total_steps=100)(t) * fb.scale)
    assert lrs[-1][1] == pytest.approx(2 * lrs[-1][0])
    assert fb.scale < 1.0
    opt2 = _opt(0.1, groups=2)
    fb2 = ReduceOnPlateau(patience=1, factor=0.5)
    s2 = lt.scheduler(opt2, S.cosine(0.1, total_steps=100), feedback=fb2)
    s2.load_state_dict(ckpt)
    got = []
    for i in range(20, 40):
        s2.step()
        if i % 5 == 4:
            s2.report(1.0 if i < 30 else 0.5)
        got.append([g["lr"] for g in opt2.param_groups])
    assert got == lrs[20:]
    assert fb2.state_dict() == fb.state_dict()


def test_scheduler_report_applies_at_once_and_restart():
    opt = _opt(1.0)
    fb = RestartOnPlateau(patience=0) & ReduceOnPlateau(patience=0, factor=0.5)
    sched = lt.scheduler(opt, S.exponential(1.0, gamma=0.5), feedback=fb)
    for _ in range(4):
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.5**4
    sched.report(2.0)
    sched.report(2.0)  # plateau at step 4: restart (schedule from 0) and halve, at once
    assert opt.param_groups[0]["lr"] == 1.0 * 0.5
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.5 * 0.5
    m = Multiplier(0.3)
    s3 = lt.scheduler(_opt(1.0), S.constant(1.0), feedback=m)
    assert s3.optimizer.param_groups[0]["lr"] == pytest.approx(0.3)


def test_falls_back_to_older_snapshot_when_restored_state_diverges_again():
    model, _, _ = _problem(seed=6)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = DivergenceGuard(model, optimizer=opt, keep=2, max_restores=5, snapshot_every=1)
    states = []
    for _ in range(3):
        assert guard.check(1.0)
        states.append(model[0].weight.detach().clone())
        with torch.no_grad():
            model[0].weight.mul_(2.0)
    assert not guard.check(float("nan"))
    assert torch.equal(model[0].weight, states[2])  # newest snapshot
    assert not guard.check(float("nan"))  # it diverged again at once: drop it, go one back
    assert torch.equal(model[0].weight, states[1])
    assert not guard.check(float("nan"))  # only one snapshot left: keep restoring it
    assert torch.equal(model[0].weight, states[1])
    assert guard.scale == 0.125
    with pytest.raises(ValueError, match="keep"):
        DivergenceGuard(model, optimizer=opt, keep=0)


@pytest.mark.parametrize("with_scheduler", [False, True])
def test_restore_keeps_the_users_param_group_objects(with_scheduler):
    """optimizer.load_state_dict() makes new group dicts; after a restore the optimizer holds
    the user's own list and dicts again, so references to them (a group's lr set by hand, a
    torch LR scheduler) keep working."""
    model, x, y = _problem()
    opt = torch.optim.Adam(
        [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.01}],
        lr=0.02,
    )
    sched = lt.scheduler(opt, S.constant(0.02)) if with_scheduler else None
    groups, dicts = opt.param_groups, list(opt.param_groups)
    guard = DivergenceGuard(model, optimizer=opt, scheduler=sched)
    for k in range(3):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        assert guard.check(loss * (math.nan if k == 2 else 1.0)) is (k != 2)
        if k != 2:
            opt.step()
    assert opt.param_groups is groups and all(a is b for a, b in zip(opt.param_groups, dicts))
    assert [g["lr"] for g in dicts] == [0.01, 0.005]  # cut by factor 0.5 in the user's dicts
    assert dicts[1]["params"] == list(model[2].parameters())
    dicts[0]["lr"] = 0.123  # a change made through the user's reference reaches the optimizer
    assert opt.param_groups[0]["lr"] == 0.123


def test_check_rejects_a_non_scalar_loss():
    model, x, y = _problem()
    guard = DivergenceGuard(model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="loss"):
        guard.check(torch.ones(3))
    for bad in ("nan?", None, [1.0]):  # the parameter's name, not the helper's
        with pytest.raises(
            ValueError, match="^" + re.escape(f"loss must be a real number, got {bad!r}") + "$"
        ):
            guard.check(bad)


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_scheduler_short_step_path_equals_the_general_one(opt_name):
    """One group at ratio 1 with one momentum schedule takes step()'s short path; a feedback
    controller of scale 1 takes the general one: the same LRs and momenta, bit for bit."""
    total = 50
    lr_s, mom_s = S.onecycle(0.1, total_steps=total), S.onecycle_momentum(total)

    def make(feedback):
        p = torch.nn.Parameter(torch.zeros(2))
        if opt_name == "SGD":
            opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
        else:
            opt = torch.optim.Adam([p], lr=0.1, betas=(0.9, 0.99))
        return opt, lt.scheduler(opt, lr_s, momentum=mom_s, feedback=feedback)

    (o1, s1), (o2, s2) = make(None), make(Multiplier(1.0))
    assert s1._hot is not None and s2._hot is None
    for t in range(total + 3):
        g1, g2 = o1.param_groups[0], o2.param_groups[0]
        assert g1["lr"] == g2["lr"] == lr_s(t) and s1.get_last_lr() == s2.get_last_lr()
        if opt_name == "SGD":
            assert g1["momentum"] == g2["momentum"] == mom_s(t)
        else:
            assert g1["betas"] == g2["betas"] == (mom_s(t), 0.99)
        s1.step()
        s2.step()
    s1.step(7)
    assert o1.param_groups[0]["lr"] == lr_s(7) and s1.last_epoch == 7


def test_scheduler_step_count_counts_every_step_call():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = lt.scheduler(opt, S.constant(0.1))
    assert sched._step_count == 1 and sched.last_epoch == 0
    for _ in range(3):
        sched.step()
    sched.step(10)  # a jump is one call
    sched.step()
    assert sched.last_epoch == 11 and sched._step_count == 6
    assert sched.state_dict()["_step_count"] == 6
    other = lt.scheduler(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), "constant(lr=0.1)"
    )
    other.load_state_dict(sched.state_dict())
    assert (other.last_epoch, other._step_count) == (11, 6)
    other.step()
    assert (other.last_epoch, other._step_count) == (12, 7)


@pytest.mark.parametrize("guard_loaded_first", [True, False])
def test_a_resumed_guard_restores_the_loaded_state_not_the_fresh_one(guard_loaded_first):
    model, x, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = DivergenceGuard(model, optimizer=opt, spike_factor=None)
    for _ in range(3):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        assert g.check(loss)
        opt.step()
    ckpt = {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "opt": json.loads(json.dumps(_plain(opt.state_dict()))),
        "guard": json.loads(json.dumps(g.state_dict())),
    }

    def state(m, o):
        weights = {k: v.clone() for k, v in m.state_dict().items()}
        buffers = [o.state[q]["momentum_buffer"].clone() for q in m.parameters()]
        return weights, buffers

    saved = state(model, opt)
    # a fresh process: everything built from scratch (a freshly initialised model), then loaded
    model2, _, _ = _problem(seed=1)
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.05, momentum=0.9)
    h = DivergenceGuard(model2, optimizer=opt2, spike_factor=None)
    if guard_loaded_first:
        h.load_state_dict(ckpt["guard"])
    model2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(opt.state_dict())
    if not guard_loaded_first:
        h.load_state_dict(ckpt["guard"])
    opt2.zero_grad()
    torch.nn.functional.mse_loss(model2(x), y).backward()
    assert not h.check(float("nan"))  # before the fix: back to model2's fresh weights
    weights, buffers = state(model2, opt2)
    assert all(torch.equal(weights[k], saved[0][k]) for k in saved[0])
    assert all(torch.equal(a, b) for a, b in zip(buffers, saved[1], strict=True))
    assert h.snapshot_check == 3 and h.num_checks == 4


def test_an_unknown_keyword_names_the_guard_and_what_it_takes():
    model, _, _ = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError) as info:  # before: DivergenceDetector.__init__() got ...
        DivergenceGuard(model, optimizer=opt, spike=5.0)
    assert str(info.value) == (
        "spike is not an option of lrkit.torch.DivergenceGuard; options: check_grads, "
        "controller, factor, keep, max_restores, min_history, min_scale, model, optimizer, "
        "quantile, scheduler, snapshot_every, spike_factor, spike_floor, window"
    )
    with pytest.raises(TypeError) as info:  # as the Keras guard and the detector say it
        DivergenceGuard(model, optimizer=opt, max_restore=1)
    assert str(info.value).startswith(
        "max_restore is not an option of lrkit.torch.DivergenceGuard (did you mean max_restores?)"
    )
    # the plateau options users reach for: the detector's hints, as it gives them
    with pytest.raises(TypeError) as info:
        DivergenceGuard(model, optimizer=opt, min_lr=1e-5)
    assert str(info.value).startswith(
        "min_lr is not an option of lrkit.torch.DivergenceGuard (use min_scale, a fraction of "
        "the learning rate: min_scale=min_lr / lr); options: "
    )
    with pytest.raises(TypeError, match=r" \(a non-finite loss or a spike is acted on at "):
        DivergenceGuard(model, optimizer=opt, patience=3)


def test_a_ready_controller_as_the_keras_guard_takes_it_and_its_record():
    from lrkit.feedback import DivergenceDetector

    model, x, y = _problem(seed=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    ready = DivergenceDetector(0.25, max_restores=1)
    for kwargs, named in (({"factor": 0.5}, "factor"), ({"window": 5}, "window")):
        with pytest.raises(ValueError) as info:  # settings it would ignore: refused
            DivergenceGuard(model, optimizer=opt, controller=ready, **kwargs)
        assert str(info.value) == (
            f"controller= holds its own settings; pass {named} to the controller you build, "
            "or leave controller out"
        )
    with pytest.raises(ValueError, match=r"^controller must be a lrkit.feedback.Divergence"):
        DivergenceGuard(model, optimizer=opt, controller="nan")
    guard = DivergenceGuard(model, optimizer=opt, controller=ready, keep=3)
    assert guard.controller is ready and guard._book.keep == 3
    assert (guard.gave_up, guard.restored_at) == (False, [])
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    assert guard.check(loss) and guard.check(loss.item())
    assert guard.check(float("nan")) is False
    assert (guard.gave_up, guard.restored_at, guard.scale) == (False, [3], 0.25)
    assert opt.param_groups[0]["lr"] == 0.01 * 0.25
    with pytest.raises(DivergenceError):
        guard.check(float("inf"))
    assert (guard.gave_up, guard.restored_at) == (True, [3, 4])
    # both survive a resume: the record is the controller's
    fresh = DivergenceGuard(model, optimizer=opt)
    fresh.load_state_dict(guard.state_dict())
    assert (fresh.gave_up, fresh.restored_at) == (True, [3, 4])


def test_a_detector_acts_for_one_guard_and_not_through_the_scheduler_too():
    from lrkit.feedback import DivergenceDetector

    model, _, _ = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    det = DivergenceDetector()
    sched = lt.scheduler(opt, S.constant(0.1), feedback=det)
    for joined in (sched, None):  # whether the guard joins that scheduler or not
        fed = r"^controller is in the feedback of a live LRKitScheduler, which would count "
        with pytest.raises(ValueError, match=fed + "its reports as the guard's checks"):
            DivergenceGuard(model, optimizer=opt, scheduler=joined, controller=det)
    assert sched.feedback is det  # left as it was
    twin = copy.deepcopy(sched)  # a copy holds its own copy of the detector, recorded too
    with pytest.raises(ValueError, match=fed):
        DivergenceGuard(model, optimizer=opt, controller=twin.feedback)
    sched.feedback = ReduceOnPlateau()  # let go of: a guard may take it
    DivergenceGuard(model, optimizer=opt, controller=det)
    del sched, twin
    gc.collect()
    # the failed guards hold no claim on it, nor the scheduler once gone: a guard takes it
    first = DivergenceGuard(model, optimizer=opt, controller=det)
    with pytest.raises(ValueError) as info:  # a second live guard would take its cuts
        DivergenceGuard(model, optimizer=opt, controller=det)
    assert str(info.value) == (
        "controller is the controller of another DivergenceGuard (a detector counts the "
        "restores and cuts of one guard): build one for each guard, or give this one a copy "
        "(copy.deepcopy(controller)) or a detector loaded from its state_dict()"
    )
    assert first.controller is det
    # nor through a scheduler built after the guard: its reports would count as checks
    with pytest.raises(ValueError, match=r"^feedback holds the controller of a live "
                       r"DivergenceGuard \(its DivergenceDetector\)"):  # fmt: skip
        lt.scheduler(opt, S.constant(0.1), feedback=ReduceOnPlateau() & det)
    # a copy of the guard acts through its own copy of the detector, claimed as well
    twin = copy.deepcopy(first)
    assert twin.controller is not det
    with pytest.raises(ValueError, match=r"^controller is the controller of another"):
        DivergenceGuard(model, optimizer=opt, controller=twin.controller)
    shallow = copy.copy(first)  # shares the detector: the claim stays with the original
    del shallow
    gc.collect()
    with pytest.raises(ValueError, match=r"^controller is the controller of another"):
        DivergenceGuard(model, optimizer=opt, controller=det)
    del first, twin
    gc.collect()
    assert DivergenceGuard(model, optimizer=opt, controller=det).controller is det  # now free


@pytest.mark.parametrize("with_scheduler", [False, True])
def test_a_used_controller_goes_on_with_its_cuts_and_checks(with_scheduler):
    """A detector restored from a checkpoint and given as controller= (the Keras guard's
    resume): the guard's multiplier starts at its scale and its checks count on, so the next
    cut is one factor, not the saved cuts again."""
    from lrkit.feedback import DivergenceDetector

    def step(guard, model, opt, bad=False):
        opt.zero_grad()
        loss = model(torch.ones(1, 2)).sum()
        loss.backward()
        if guard.check(float("nan") if bad else loss):
            opt.step()

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = DivergenceGuard(model, optimizer=opt)
    for bad in (False, True, False, True):
        step(guard, model, opt, bad)
    assert (opt.param_groups[0]["lr"], guard.scale, guard.restored_at) == (0.025, 0.25, [2, 4])
    saved = (model.state_dict(), opt.state_dict(), guard.controller.state_dict())

    model2 = torch.nn.Linear(2, 1)
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.1)
    model2.load_state_dict(saved[0])
    sched = None
    if with_scheduler:  # a fresh lrkit scheduler: the guard's multiplier sets the cut LR
        sched = lt.scheduler(opt2, S.constant(0.1))
    else:
        opt2.load_state_dict(saved[1])  # the optimizer's LR holds the cuts
    ready = DivergenceDetector()
    ready.load_state_dict(saved[2])
    resumed = DivergenceGuard(model2, optimizer=opt2, scheduler=sched, controller=ready)
    assert (resumed.scale, resumed.num_checks) == (0.25, 4)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.025)
    step(resumed, model2, opt2)
    step(resumed, model2, opt2, bad=True)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.0125)  # one more cut of 0.5
    assert (resumed.scale, resumed.restored_at) == (0.125, [2, 4, 6])


def test_load_state_dict_of_none_or_of_another_object_says_what_it_got() -> None:
    model, _, _ = _problem()
    guard = DivergenceGuard(model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match=r"DivergenceGuard.state_dict\(\) .*, got NoneType$"):
        guard.load_state_dict(None)
    with pytest.raises(ValueError, match=r", got a dict with keys \['scale'\]$"):
        guard.load_state_dict({"scale": 0.5})
    with pytest.raises(TypeError, match=r"missing 1 required argument: 'state_dict'$"):
        guard.load_state_dict()


def test_guard_refuses_a_factor_of_zero_or_less() -> None:
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = lt.scheduler(opt, "constant(0.1)")
    for bad in (0.0, 0, -0.5):
        with pytest.raises(ValueError, match=r"^factor must be in \(0\.0, 1\.0\), got "):
            DivergenceGuard(model, optimizer=opt, scheduler=sched, factor=bad)
    assert sched.feedback is None  # nothing appended by a refused guard


def test_a_guardless_checkpoint_into_a_guarded_scheduler_says_to_load_it_first() -> None:
    def build() -> tuple[Any, Any, Any]:
        model = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = lt.scheduler(opt, "cosine(0.1, 100)", feedback=ReduceOnPlateau(patience=0))
        return model, opt, sched

    _, _, saved = build()
    saved.step()
    saved.report(1.0)
    saved.report(2.0)  # a cut: scale 0.1
    state = saved.state_dict()
    model, opt, sched = build()
    DivergenceGuard(model, optimizer=opt, scheduler=sched)
    before = sched.state_dict()
    with pytest.raises(ValueError) as info:
        sched.load_state_dict(state)
    assert str(info.value) == (
        "state['type'] must be 'Chain' (a state_dict() of the same controller type), got "
        "'ReduceOnPlateau': it holds this chain's first controller alone; if the Multiplier "
        "that ends the chain is a divergence guard's, the checkpoint was saved without the "
        "guard: load it before adding the guard (build the DivergenceGuard after "
        "load_state_dict)"
    )
    assert sched.state_dict() == before
    # what the hint says works: load first, then build the guard
    model, opt, sched = build()
    sched.load_state_dict(state)
    guard = DivergenceGuard(model, optimizer=opt, scheduler=sched)
    assert sched.feedback[0].scale == 0.1 and guard.scale == 1.0
    assert opt.param_groups[0]["lr"] == saved.get_last_lr()[0]
    sched.step()
    saved.step()
    assert opt.param_groups[0]["lr"] == saved.get_last_lr()[0]


def _batch(k: int) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(k)
    return torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)


def _resumable_run() -> tuple[Any, Any, Any, DivergenceGuard]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(
        [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.02}],
        lr=0.01,
    )
    sched = lt.scheduler(opt, S.cosine(0.01, total_steps=40), feedback=ReduceOnPlateau(patience=1))
    guard = DivergenceGuard(model, optimizer=opt, scheduler=sched, snapshot_every=10)
    return model, opt, sched, guard


def _train(run: Any, start: int, stop: int, nan_at: set[int], lrs: list[Any]) -> None:
    model, opt, sched, guard = run
    for k in range(start, stop):
        x, y = _batch(k)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        lrs.append([g["lr"] for g in opt.param_groups])
        if guard.check(loss * math.nan if k in nan_at else loss):
            opt.step()
        sched.step()
        if k % 5 == 4:
            sched.report(loss.item())


def _checkpoint(run: Any) -> dict[str, Any]:
    model, opt, sched, guard = run
    return {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "opt": _clone_state(opt.state_dict()),
        "sched": json.loads(json.dumps(sched.state_dict())),
        "guard": json.loads(json.dumps(guard.state_dict())),
    }


def _clone_state(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, dict):
        return {k: _clone_state(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clone_state(v) for v in x]
    return x


def _resume(ckpt: dict[str, Any], drop: tuple[str, ...] = ()) -> Any:
    run = _resumable_run()  # fresh objects, as in a new process
    model, opt, sched, guard = run
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["opt"])
    sched.load_state_dict(ckpt["sched"])
    guard.load_state_dict({k: v for k, v in ckpt["guard"].items() if k not in drop})
    return run


def _same_weights_and_moments(a: Any, b: Any) -> bool:
    wa, wb = a[0].state_dict(), b[0].state_dict()
    if wa.keys() != wb.keys() or not all(torch.equal(wa[k], wb[k]) for k in wa):
        return False
    sa, sb = a[1].state_dict()["state"], b[1].state_dict()["state"]
    return sa.keys() == sb.keys() and all(
        torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i]
    )


def test_a_resumed_run_that_diverges_after_its_first_snapshot_matches_the_uninterrupted_one():
    """Snapshots every 10 good checks (at checks 0 and 11: the NaN at check 8 is not a good
    one), saved after check 15 (4 good checks since the snapshot), resumed into fresh objects:
    the next snapshot falls on check 21 in both runs, so the NaN at check 29 restores the same
    state (it restored the one snapshotted at the resume, check 16, and snapshotted at check
    25 instead)."""
    nan_at = {7, 28}  # checks 8 and 29
    whole, lrs_whole = _resumable_run(), []
    _train(whole, 0, 40, nan_at, lrs_whole)
    first, lrs = _resumable_run(), []
    _train(first, 0, 15, nan_at, lrs)
    ckpt = _checkpoint(first)
    resumed = _resume(ckpt)
    state = resumed[3].state_dict()
    _train(resumed, 15, 40, nan_at, lrs)
    assert lrs == lrs_whole
    assert resumed[3].events == whole[3].events and whole[3].restores == 2
    assert _same_weights_and_moments(resumed, whole)
    assert resumed[3].snapshot_check == whole[3].snapshot_check == 32
    assert resumed[3].state_dict() == whole[3].state_dict()
    assert state == ckpt["guard"]  # as loaded, before any check
    assert (state["good"], state["groups"]) == (4, 2)


def test_a_resumed_run_that_diverges_before_its_first_snapshot_restores_the_checkpoint():
    """Before the first snapshot after a resume there is none from before the checkpoint to
    go back to: the NaN at check 19 restores the state loaded (snapshotted at the first check
    after the resume, before its update: the state after check 15), where the uninterrupted
    run restores the one of check 11."""
    nan_at = {7, 18}
    whole = _resumable_run()
    _train(whole, 0, 19, nan_at, [])
    first = _resumable_run()
    _train(first, 0, 15, nan_at, [])
    ckpt = _checkpoint(first)
    resumed = _resume(ckpt)
    _train(resumed, 15, 19, nan_at, [])
    assert (whole[3].snapshot_check, resumed[3].snapshot_check) == (11, 15)
    model = resumed[0].state_dict()
    assert all(torch.equal(model[k], ckpt["model"][k]) for k in model)
    # the snapshots still fall on the same checks: the next at check 22 in both
    _train(whole, 19, 25, nan_at, [])
    _train(resumed, 19, 25, nan_at, [])
    assert whole[3].snapshot_check == resumed[3].snapshot_check == 22


def test_a_guard_state_saved_without_the_snapshot_count_counts_from_the_resume():
    """A state saved by an older lrkit (no ``good``, no ``groups``): as before, the snapshots
    after the resume fall every ``snapshot_every`` good checks from the first check."""
    first = _resumable_run()
    _train(first, 0, 15, set(), [])
    assert first[3].state_dict()["good"] == 5
    resumed = _resume(_checkpoint(first), drop=("good", "groups"))
    assert resumed[3].state_dict()["good"] == 0
    _train(resumed, 15, 26, set(), [])
    assert resumed[3].snapshot_check == 25  # 10 good checks after the resume (16 to 25)


def test_a_checkpoint_taken_right_after_add_param_group_resumes_exactly():
    """The uninterrupted run snapshots at the first good check after add_param_group (and
    counts the next snapshot from there); the resumed one does the same, although its
    optimizer was built with the new group already."""

    def build(groups: int) -> tuple[Any, Any, DivergenceGuard]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        opt = torch.optim.SGD(model[2].parameters(), lr=0.01, momentum=0.9)
        if groups == 2:
            opt.add_param_group({"params": model[0].parameters(), "lr": 0.001})
        return model, opt, DivergenceGuard(model, optimizer=opt, snapshot_every=10)

    def train(model: Any, opt: Any, guard: Any, start: int, stop: int) -> None:
        for k in range(start, stop):
            x, y = _batch(k)
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            if guard.check(loss * math.nan if k == 27 else loss):
                opt.step()

    model, opt, guard = build(1)
    train(model, opt, guard, 0, 15)
    opt.add_param_group({"params": model[0].parameters(), "lr": 0.001})
    state = json.loads(json.dumps(guard.state_dict()))
    ckpt = ({k: v.clone() for k, v in model.state_dict().items()}, _clone_state(opt.state_dict()))
    train(model, opt, guard, 15, 30)
    model2, opt2, guard2 = build(2)
    model2.load_state_dict(ckpt[0])
    opt2.load_state_dict(ckpt[1])
    guard2.load_state_dict(state)
    train(model2, opt2, guard2, 15, 30)
    assert guard.events == guard2.events and guard.restores == 1
    assert _same_weights_and_moments((model, opt), (model2, opt2))
    assert guard.snapshot_check == guard2.snapshot_check == 26  # 16, then 10 good checks
    assert (state["good"], state["groups"]) == (5, 1)


def test_guard_load_state_dict_refuses_a_bad_snapshot_count() -> None:
    model, _, _ = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = DivergenceGuard(model, optimizer=opt)
    g.check(1.0)
    before = g.state_dict()
    for key, bad, message in [
        (
            "good",
            -1,
            "state_dict['good'] must be an integer >= 0 (allowed range: [0, inf)), got -1",
        ),
        (
            "groups",
            1.5,
            "state_dict['groups'] must be an integer >= 0 (allowed range: [0, inf)), got 1.5",
        ),
    ]:
        with pytest.raises(ValueError) as info:
            g.load_state_dict({**before, key: bad})
        assert str(info.value) == message
    assert g.state_dict() == before


@pytest.mark.parametrize("bad", [complex(0, math.nan), complex(0, math.inf), complex(math.nan, 0)])
def test_a_nonfinite_part_of_a_complex_gradient_is_a_divergence(bad: complex) -> None:
    """The screen reads both parts of a complex gradient (it summed the real part only, with a
    ``Casting complex values to real`` warning at every check)."""
    p = torch.nn.Parameter(torch.tensor([1 + 2j, 3 - 1j, 0.5j, 2.0], dtype=torch.complex64))
    model = torch.nn.Module()
    model.p = p
    opt = torch.optim.Adam([p], lr=0.01)
    guard = DivergenceGuard(model, optimizer=opt)
    before = p.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = (p.abs() ** 2).sum()
        loss.backward()
        assert guard.check(loss)  # finite: no warning either
        opt.step()
        p.grad = torch.tensor([1 + 0j, bad, 0j, 0j], dtype=torch.complex64)
        assert not guard.check(1.0)
    assert guard.restores == 1 and torch.equal(p.detach(), before) and p.grad is None


def test_a_tensor_loss_that_is_not_a_real_number_is_refused_in_one_line() -> None:
    model, _, _ = _problem()
    guard = DivergenceGuard(model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    for bad, dtype in [(torch.tensor(1 + 1j), "complex64"), (torch.tensor([True]), "bool")]:
        with pytest.raises(ValueError) as info:  # a TypeError; True read as a loss of 1.0
            guard.check(bad)
        assert str(info.value) == f"loss must be a real number, got {bad!r} (dtype torch.{dtype})"
    assert guard.num_checks == 0  # nothing judged
    # an integer tensor is a number; a one-element float tensor of any dtype and shape is read
    assert guard.check(torch.tensor([[2]])) and guard.check(torch.tensor(0.5, dtype=torch.half))
    assert not guard.check(torch.tensor([math.inf], dtype=torch.float64))
    assert [(e["step"], e["loss"], e["action"]) for e in guard.events] == [(3, "inf", "restore")]


def test_a_restore_keeps_group_entries_added_after_the_snapshot() -> None:
    """A torch scheduler built after the guard adds ``initial_lr`` to the groups: a restore
    keeps it (it cleared the groups and refilled them from the snapshot, and resuming the
    scheduler from the optimizer's checkpoint then raised a KeyError); the entries the
    snapshot holds come back, the LR excepted (kept and cut)."""
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    group = opt.param_groups[0]
    guard = DivergenceGuard(model, optimizer=opt)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    group["weight_decay"] = 1e-4  # changed after the snapshot: the snapshot's value comes back
    group["mine"] = "kept"
    model(torch.ones(1, 2)).sum().backward()
    assert not guard.check(float("nan"))
    assert opt.param_groups[0] is group
    assert {k: v for k, v in group.items() if k != "params"} == {
        **opt.defaults,  # momentum, weight_decay (0 again), ...
        "lr": 0.05,
        "initial_lr": 0.1,
        "mine": "kept",
    }
    opt2 = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(opt.state_dict())
    resumed = torch.optim.lr_scheduler.StepLR(opt2, step_size=10, gamma=0.5, last_epoch=3)
    assert resumed.base_lrs == sched.base_lrs == [0.1]


@pytest.mark.parametrize("feedback", [None, "plateau"])
def test_a_guarded_checkpoint_into_an_unguarded_scheduler_says_to_add_the_guard_first(
    feedback: Any,
) -> None:
    def build() -> tuple[Any, Any, Any]:
        model = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        fb = None if feedback is None else ReduceOnPlateau(patience=0)
        return model, opt, lt.scheduler(opt, "cosine(0.1, 100)", feedback=fb)

    model, opt, saved = build()
    DivergenceGuard(model, optimizer=opt, scheduler=saved)
    saved.step()
    state = saved.state_dict()
    model, opt, sched = build()
    before = sched.state_dict()
    with pytest.raises(ValueError) as info:
        sched.load_state_dict(state)
    assert str(info.value).endswith(
        ": it ends with a Multiplier; if that is a divergence guard's, the checkpoint was saved "
        "with the guard: add the guard before loading it (build the DivergenceGuard before "
        "load_state_dict)"
    )
    assert "\n" not in str(info.value) and sched.state_dict() == before
    # what the hint says works
    DivergenceGuard(model, optimizer=opt, scheduler=sched)
    sched.load_state_dict(state)
    assert sched.state_dict() == state


@pytest.mark.parametrize("saved_plateau", [True, False])
def test_a_guarded_checkpoint_with_other_controllers_names_both_not_the_guard(
    saved_plateau: bool,
) -> None:
    """The guard is built before loading, as said, but feedback= differs from the
    checkpoint's: the message names both sets of controllers (not "add the guard")."""

    def build(plateau: bool) -> Any:
        model = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        fb = ReduceOnPlateau() if plateau else None
        sched = lt.scheduler(opt, S.cosine(0.1, total_steps=100), feedback=fb)
        DivergenceGuard(model, optimizer=opt, scheduler=sched)
        return sched

    state = build(saved_plateau).state_dict()
    sched = build(not saved_plateau)
    before = sched.state_dict()
    with pytest.raises(ValueError) as info:
        sched.load_state_dict(state)
    one, two = "Chain(ReduceOnPlateau, Multiplier)", "Multiplier"
    saved, here = (one, two) if saved_plateau else (two, one)
    assert str(info.value).endswith(
        f": the checkpoint's controllers are {saved}, this scheduler's {here}: build it with "
        "the feedback= the checkpoint was saved with"
    )
    assert "\n" not in str(info.value) and sched.state_dict() == before


def test_a_stock_scheduler_is_refused_naming_what_the_guard_takes() -> None:
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    stock = torch.optim.lr_scheduler.StepLR(opt, 10)
    with pytest.raises(ValueError, match=r"^scheduler must be an lrkit.torch.scheduler\(...\) "
                       r"\(with or without feedback=: the guard adds its own controller\), "
                       r"got StepLR$"):  # fmt: skip
        DivergenceGuard(model, optimizer=opt, scheduler=stock)


def test_a_restore_keeps_the_optimizer_state_of_a_group_added_since_the_snapshot() -> None:
    """A group added (and stepped) after the newest snapshot keeps its momentum buffers as
    they are when a restore follows before the next good check."""
    torch.manual_seed(0)
    body, head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
    model = torch.nn.Sequential(body, torch.nn.Tanh(), head)
    opt = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.9)
    guard = DivergenceGuard(model, optimizer=opt, snapshot_every=50)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    assert guard.check(1.0)
    opt.add_param_group({"params": body.parameters(), "lr": 0.001})
    opt.step()
    kept = [opt.state[p]["momentum_buffer"].clone() for p in body.parameters()]
    assert guard.check(math.nan) is False
    for p, k in zip(body.parameters(), kept):
        assert torch.equal(opt.state[p]["momentum_buffer"], k)
    assert all(p not in opt.state or not opt.state[p] for p in head.parameters())


def test_a_nan_loss_with_nan_gradients_is_recorded_as_a_nan_loss() -> None:
    """A loss that is itself not finite is the reason given, whatever the gradients: its
    event holds the loss as "nan", without a gradients entry, and so does the error."""
    model, x, y = _problem(seed=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    guard = DivergenceGuard(model, optimizer=opt, max_restores=1)
    for i in range(2):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y) * math.nan
        loss.backward()
        assert not guard._grads_finite()
        if i == 0:
            assert guard.check(loss) is False
        else:
            with pytest.raises(DivergenceError) as err:
                guard.check(loss)
    assert guard.events == [
        {"step": 1, "loss": "nan", "reference": None, "action": "restore", "scale": 0.5},
        {"step": 2, "loss": "nan", "action": "give_up"},
    ]
    assert str(err.value).startswith("training diverged (loss nan at check 2) after 1 restore(s)")
    assert "gradients" not in str(err.value)


def test_an_empty_loss_tensor_is_refused_in_one_line() -> None:
    model, _, _ = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    guard = DivergenceGuard(model, optimizer=opt)
    with pytest.raises(
        ValueError, match=r"^loss must be a number or a one-element tensor, got shape \(0,\)$"
    ):
        guard.check(torch.zeros(0))
    assert guard.num_checks == 0 and guard.restores == 0


def test_by_default_a_restored_state_that_diverges_at_once_falls_back_to_the_older_one() -> None:
    """The default keeps two snapshots: when the state just restored diverges again at once,
    the one before it comes back."""
    model, x, y = _problem(seed=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    guard = DivergenceGuard(model, optimizer=opt, snapshot_every=1)
    weights = []
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        assert guard.check(1.0)
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
        opt.step()
    assert guard.check(math.nan) is False
    assert guard.snapshot_check == 2
    assert all(torch.equal(v, weights[1][k]) for k, v in model.state_dict().items())
    assert guard.check(math.nan) is False
    assert guard.snapshot_check == 1
    assert all(torch.equal(v, weights[0][k]) for k, v in model.state_dict().items())


def test_the_give_up_error_names_the_check_of_the_snapshot_restored() -> None:
    model, _, _ = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    guard = DivergenceGuard(model, optimizer=opt, max_restores=0)
    assert guard.check(1.0) and guard.check(1.0)
    with pytest.raises(DivergenceError) as err:
        guard.check(math.inf)
    assert str(err.value) == (
        "training diverged (loss inf at check 3) after 0 restore(s) with the LR cut to 1x; "
        "the model and optimizer were restored to their last good state (from check 0). "
        "Lower the learning rate, or raise max_restores."
    )


def test_a_nan_in_a_sparse_gradient_is_a_divergence() -> None:
    """An embedding's sparse gradient (uncoalesced, one index twice) is screened as well."""
    torch.manual_seed(0)
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = torch.optim.SGD(emb.parameters(), lr=0.1)
    guard = DivergenceGuard(emb, optimizer=opt)
    loss = emb(torch.tensor([1, 2, 2])).sum()
    loss.backward()
    assert emb.weight.grad.layout == torch.sparse_coo and guard.check(loss)
    emb.weight.grad = torch.sparse_coo_tensor(
        torch.tensor([[1, 1]]),
        torch.tensor([[1.0, math.nan, 1.0], [1.0, 1.0, 1.0]]),
        (10, 3),
        check_invariants=True,
    )
    assert guard.check(loss) is False
    assert guard.events[-1]["gradients"] == "not finite" and emb.weight.grad is None


def test_a_restore_puts_back_a_non_persistent_buffer_whose_dtype_changed_since() -> None:
    """A non-persistent buffer replaced by one of another dtype after the snapshot comes back
    as the snapshot held it: its dtype and its values."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(_RunningCentre())
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    guard = DivergenceGuard(model, optimizer=opt, snapshot_every=1)
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    assert guard.check(loss)
    kept = model[0].centre.clone()  # this check's snapshot holds the buffer as it is now
    opt.step()
    model[0].centre = torch.full((4,), 7.0, dtype=torch.float64)
    assert guard.check(math.nan) is False
    assert model[0].centre.dtype == torch.float32
    assert torch.equal(model[0].centre, kept)


@pytest.mark.parametrize("loss", [1.0, math.nan])
def test_a_group_added_with_a_learned_lr_is_refused_before_the_check_counts(loss: float) -> None:
    """A param group added with an LR tensor that requires grad is refused in one line at the
    next check, before that check is judged: nothing counted, nothing restored."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model[2].parameters(), lr=0.01)
    guard = DivergenceGuard(model, optimizer=opt, snapshot_every=1)
    assert guard.check(1.0)
    opt.add_param_group({"params": model[0].parameters(), "lr": torch.tensor(0.1).requires_grad_()})
    message = "optimizer: param group 1's lr is a tensor that requires grad"
    with pytest.raises(ValueError, match=re.escape(message)):
        guard.check(loss)
    assert guard.num_checks == 1 and guard.controller.num_checks == 1
    assert guard.restores == 0 and guard.events == []


def test_a_loaded_state_is_saved_again_as_loaded_until_the_next_check() -> None:
    """Saved again before any check, a loaded guard state is the one loaded (its snapshot
    count and its param groups), whatever groups the optimizer has at the resume."""
    model, _, _ = _problem()
    opt = torch.optim.SGD(model[2].parameters(), lr=0.1)
    g = DivergenceGuard(model, optimizer=opt, snapshot_every=10)
    for _ in range(3):
        g.check(1.0)
    sd = json.loads(json.dumps(g.state_dict()))
    assert (sd["good"], sd["groups"]) == (3, 1)
    model2, _, _ = _problem()
    opt2 = torch.optim.SGD(model2[2].parameters(), lr=0.1)
    opt2.add_param_group({"params": model2[0].parameters(), "lr": 0.01})
    h = DivergenceGuard(model2, optimizer=opt2, snapshot_every=10)
    h.load_state_dict(sd)
    assert h.state_dict() == sd


def _unattached_messages(rec: Any) -> list[str]:
    return [str(w.message) for w in rec if str(w.message).startswith("DivergenceGuard: an lrkit")]


def test_a_guard_without_the_lrkit_scheduler_of_its_optimizer_says_its_cuts_are_lost() -> None:
    # built after the scheduler: said at once, at the user's line
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = lt.scheduler(opt, "constant(0.1)")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        guard = DivergenceGuard(model, optimizer=opt)
        assert not _unattached_messages(rec)  # guard.attach(sched) may follow
        assert not guard.check(float("nan"))  # the first check, a restore: said once only
    (msg,) = _unattached_messages(rec)
    assert "build the guard with scheduler=<that scheduler>" in msg
    assert rec[0].filename == __file__
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.1  # what the warning says: the cut is gone
    # a first check that is good says it too
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = lt.scheduler(opt, "constant(0.1)")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        guard = DivergenceGuard(model, optimizer=opt)
        assert guard.check(1.0)
    assert len(_unattached_messages(rec)) == 1
    assert sched.feedback is None  # the guard did not join it
    # built before the scheduler: said at the first restore
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        guard = DivergenceGuard(model, optimizer=opt)
        sched = lt.scheduler(opt, "constant(0.1)")
        assert not _unattached_messages(rec)
        assert not guard.check(float("nan"))
        assert not guard.check(float("nan"))
    assert len(_unattached_messages(rec)) == 1

    # attached (when built, or by attach() after it), no lrkit scheduler at all, or one whose
    # phase of a SequentialLR has ended: nothing said
    def attached_later(o: Any) -> DivergenceGuard:
        s = lt.scheduler(o, "constant(0.1)")
        g = DivergenceGuard(model, optimizer=o)
        g.attach(s)
        return g

    def phase_ended(o: Any) -> DivergenceGuard:
        first = lt.scheduler(o, "constant(0.1)")
        seq = torch.optim.lr_scheduler.SequentialLR(
            o, [first, torch.optim.lr_scheduler.ConstantLR(o, factor=0.5, total_iters=100)], [1]
        )
        o.step()
        seq.step()
        return DivergenceGuard(model, optimizer=o)

    for make in (
        lambda o: DivergenceGuard(model, optimizer=o, scheduler=lt.scheduler(o, "constant(0.1)")),
        attached_later,
        lambda o: DivergenceGuard(model, optimizer=o),
        phase_ended,
    ):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            guard = make(opt)
            assert not guard.check(float("nan"))
        assert not _unattached_messages(rec)


def test_pytorch_style_positional_calls_say_what_to_give_by_keyword() -> None:
    from lrkit.feedback import ReduceOnPlateau

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"^lrkit.torch.DivergenceGuard: takes 1 positional "
                       r"argument \(model\) but 2 were given; give the others by keyword "
                       r"\(parameters: model, optimizer, "):  # fmt: skip
        DivergenceGuard(model, opt)
    sched = lt.scheduler(opt, "constant(0.1)", feedback=ReduceOnPlateau())
    with pytest.raises(TypeError, match=r"^lrkit.torch.report: takes 1 positional argument "
                       r"\(sched\) but 2 were given; give the others by keyword"):  # fmt: skip
        lt.report(sched, 0.5)
    with pytest.raises(ValueError, match=r"^mode must be one of 'min', 'max', got a SGD "
                       r"optimizer \(a controller takes no optimizer"):  # fmt: skip
        ReduceOnPlateau(opt)
    with pytest.raises(ValueError, match=r"^mode must be one of 'min', 'max', got a SGD "):
        ReduceOnPlateau(opt, mode="min")  # not Python's "multiple values for 'mode'"
    assert lt.report(sched, value=0.5) == [sched]


def test_a_sharded_optimizer_is_refused_in_one_line() -> None:
    """An optimizer that keeps each rank's shard of the state in the optimizer it wraps (a
    ZeroRedundancyOptimizer: ``consolidate_state_dict`` and ``optim``) is refused."""

    class Sharded(torch.optim.Optimizer):
        def __init__(self, params: Any) -> None:
            self.optim = torch.optim.SGD(params, lr=0.1)
            self.defaults = dict(self.optim.defaults)
            self.param_groups = self.optim.param_groups
            self.state = {}

        def consolidate_state_dict(self, to: int = 0) -> None:
            pass

    model = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError) as info:
        DivergenceGuard(model, optimizer=Sharded(model.parameters()))
    assert str(info.value) == (
        "optimizer: a Sharded keeps each rank's shard of the state in the optimizer it wraps, "
        "and its state_dict() only after consolidate_state_dict() on every rank; "
        "DivergenceGuard snapshots and restores whole optimizer states: guard a plain "
        "optimizer (under DDP, each rank holds the whole state)"
    )


def test_a_restore_brings_back_tensor_betas_changed_in_place_since_the_snapshot() -> None:
    """Adam's ``betas`` given as tensors (a tuple in the param group): a change made to them
    in place after the snapshot is undone by a restore."""
    model = torch.nn.Linear(2, 1)
    betas = (torch.tensor(0.9), torch.tensor(0.99))
    opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=betas)
    guard = DivergenceGuard(model, optimizer=opt, snapshot_every=1)
    assert guard.check(1.0)
    betas[0].fill_(0.5)
    betas[1].fill_(0.75)
    assert guard.check(math.nan) is False
    restored = opt.param_groups[0]["betas"]
    assert isinstance(restored, tuple)
    assert [float(b) for b in restored] == [pytest.approx(0.9), pytest.approx(0.99)]


def test_a_restore_brings_back_lbfgs_history_lists_as_snapshotted() -> None:
    """L-BFGS keeps its curvature history in lists it appends to at each step: a restore
    gives back the lists (and their tensors) the snapshot held, not the ones grown since."""
    model, x, y = _problem()
    opt = torch.optim.LBFGS(model.parameters(), lr=0.1, max_iter=2, history_size=10)
    guard = DivergenceGuard(model, optimizer=opt, snapshot_every=1)

    def closure() -> Any:
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    p = next(model.parameters())
    for _ in range(3):
        assert guard.check(closure())
        kept = _clone_state(dict(opt.state[p]))  # what this check's snapshot holds
        opt.step(closure)
    assert len(opt.state[p]["old_dirs"]) > len(kept["old_dirs"]) > 0
    assert guard.check(math.nan) is False
    restored = opt.state[p]
    for key in ("old_dirs", "old_stps", "ro"):
        assert len(restored[key]) == len(kept[key])
        assert all(torch.equal(a, b) for a, b in zip(restored[key], kept[key], strict=True))


def test_a_scheduler_without_report_is_refused_naming_what_the_guard_takes() -> None:
    """An object with a ``feedback`` but no ``report`` (as lrkit.keras.LRScheduler, a Keras
    callback) is not a scheduler the guard can join."""

    class LRScheduler:
        feedback = None

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    keras_style = LRScheduler()
    with pytest.raises(ValueError) as info:
        DivergenceGuard(model, optimizer=opt, scheduler=keras_style)
    assert str(info.value) == (
        "scheduler must be an lrkit.torch.scheduler(...) (with or without feedback=: the guard "
        "adds its own controller), got LRScheduler"
    )
    assert keras_style.feedback is None


def test_a_nonfinite_gradient_of_any_parameter_is_a_divergence() -> None:
    """The exact test that follows a non-finite screen reads every gradient, not the first."""
    model, x, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    guard = DivergenceGuard(model, optimizer=opt, max_restores=10)
    params = list(model.parameters())
    for p in params:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        p.grad.view(-1)[-1] = math.nan
        assert guard.check(1.0) is False
    assert guard.restores == len(params)
    assert [e["gradients"] for e in guard.events] == ["not finite"] * len(params)


def test_a_restore_after_add_param_group_gives_the_older_groups_their_snapshot() -> None:
    """Layers unfrozen after the newest snapshot: the groups the snapshot holds get back their
    momentum buffers and their hyperparameters; the group added keeps its own."""
    torch.manual_seed(0)
    body, head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
    model = torch.nn.Sequential(body, torch.nn.Tanh(), head)
    opt = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.9)
    guard = DivergenceGuard(model, optimizer=opt, snapshot_every=1)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        assert guard.check(1.0)
        opt.step()
    kept = [opt.state[p]["momentum_buffer"].clone() for p in head.parameters()]
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    assert guard.check(1.0)  # snapshots the buffers kept
    opt.add_param_group({"params": body.parameters(), "lr": 0.001, "momentum": 0.5})
    opt.param_groups[0]["momentum"] = 0.1
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    added = [opt.state[p]["momentum_buffer"].clone() for p in body.parameters()]
    assert guard.check(math.nan) is False
    for p, k in zip(head.parameters(), kept, strict=True):
        assert torch.equal(opt.state[p]["momentum_buffer"], k)
    for p, k in zip(body.parameters(), added, strict=True):
        assert torch.equal(opt.state[p]["momentum_buffer"], k)
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.5]


def test_a_restore_after_a_param_group_was_removed_says_to_snapshot_again() -> None:
    model, _, _ = _problem()
    opt = torch.optim.SGD(
        [{"params": model[0].parameters()}, {"params": model[2].parameters()}], lr=0.1
    )
    guard = DivergenceGuard(model, optimizer=opt)
    opt.param_groups.pop()
    with pytest.raises(RuntimeError) as info:
        guard.check(math.nan)
    assert str(info.value) == (
        "DivergenceGuard: the optimizer's param groups changed since the last snapshot in a "
        "way other than add_param_group; call guard.snapshot() after changing them"
    )


def test_a_snapshot_taken_right_after_a_restore_is_restored_at_the_next_divergence() -> None:
    """``guard.snapshot()`` between a restore and the next divergence (as the error above
    says to call it after changing the param groups) gives the state restored next: the
    weights it was taken with, not the older snapshot's."""
    model, _, _ = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = DivergenceGuard(model, optimizer=opt)
    assert guard.check(1.0) and guard.check(math.nan) is False
    with torch.no_grad():
        model[0].weight.fill_(3.0)
    taken = copy.deepcopy(model.state_dict())
    guard.snapshot()
    with torch.no_grad():
        model[0].weight.fill_(-1.0)
    assert guard.check(math.nan) is False
    assert all(torch.equal(v, taken[k]) for k, v in model.state_dict().items())


def test_a_non_persistent_buffer_put_back_by_replacement_stays_apart_from_the_snapshot():
    """A buffer replaced (another dtype) after the snapshot is put back as a copy: updating it
    in place afterwards leaves the snapshot as it was, so the next restore gives it back again."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(_RunningCentre())
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    guard = DivergenceGuard(model, optimizer=opt, snapshot_every=1, keep=1)
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    assert guard.check(loss)
    kept = model[0].centre.clone()
    opt.step()
    model[0].centre = torch.full((4,), 7.0, dtype=torch.float64)
    assert guard.check(math.nan) is False
    model(x + 1.0)  # updates the running centre in place
    assert not torch.equal(model[0].centre, kept)
    assert guard.check(math.nan) is False
    assert torch.equal(model[0].centre, kept)
