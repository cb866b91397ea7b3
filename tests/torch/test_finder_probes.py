"""find_lr(probe_data=...): the probe runs start from the initial state each time, train on
the same batches, score on probe_data, and leave everything as it was."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from lrkit.finder import PROBE_STEPS, Probes, cycle_batches  # noqa: E402
from lrkit.torch import find_lr  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::lrkit.finder.LRFinderWarning")
CE = nn.functional.cross_entropy


def task(seed=0, n=256):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 1).long()
    xv = torch.randn(96, 8, generator=g)
    yv = (xv[:, :3].sum(1) > 0).long() + (xv[:, 3] > 1).long()
    ds = torch.utils.data.TensorDataset(x, y)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(7)
    )
    val = [(xv[i : i + 32], yv[i : i + 32]) for i in range(0, 96, 32)]
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3)
    )
    return model, loader, val


def val_loss(model, val):
    model.eval()
    with torch.no_grad():
        loss = torch.stack([CE(model(x), y).double() for x, y in val]).mean()
    model.train()
    return float(loss)


def state(model, opt, loader):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        copy.deepcopy(opt.state_dict()),
        torch.get_rng_state(),
        np.random.get_state()[1].copy(),
        random.getstate(),
        loader.generator.get_state(),
        [m.training for m in model.modules()],
    )


def assert_same(a, b):
    sd_a, g_a, o_a, t_a, n_a, r_a, l_a, m_a = a
    sd_b, g_b, o_b, t_b, n_b, r_b, l_b, m_b = b
    assert sd_a.keys() == sd_b.keys()
    for k in sd_a:
        assert torch.equal(sd_a[k], sd_b[k]), k
    for x, y in zip(g_a, g_b):
        assert (x is None and y is None) or torch.equal(x, y)
    assert o_a["param_groups"] == o_b["param_groups"]
    assert o_a["state"].keys() == o_b["state"].keys()
    for k in o_a["state"]:
        for name, v in o_a["state"][k].items():
            assert torch.equal(v, o_b["state"][k][name]), (k, name)
    assert torch.equal(t_a, t_b) and np.array_equal(n_a, n_b) and r_a == r_b
    assert torch.equal(l_a, l_b) and m_a == m_b


@pytest.mark.parametrize("snapshot", ["memory", "disk"])
def test_probes_leave_everything_as_it_was(snapshot):
    model, loader, val = task()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = next(iter(loader))  # Adam with state and grads of its own before the range test
    CE(model(x), y).backward()
    opt.step()
    before = state(model, opt, loader)
    r = find_lr(model, opt, CE, loader, probe_data=val, snapshot=snapshot, total_steps=500)
    assert_same(before, state(model, opt, loader))
    assert isinstance(r.probes, Probes) and r.probes.lr_min == r.lr_min
    assert len(r.probes.losses) == 8 and r.probes.steps == PROBE_STEPS


def test_each_probe_is_the_hand_run_from_the_initial_state():
    """A probe's score is what 60 steps at its LR from the state before find_lr, on the
    batches the loader gives from there, reach on probe_data: bit for bit."""
    model, loader, val = task()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    init = copy.deepcopy((model.state_dict(), opt.state_dict()))
    rng = (torch.get_rng_state(), loader.generator.get_state())
    r = find_lr(model, opt, CE, loader, probe_data=val, total_steps=500)
    assert r.probes is not None
    finite = [k for k, v in enumerate(r.probes.losses) if np.isfinite(v)]
    assert len(finite) >= 5
    for k in (finite[0], finite[-1]):
        lr = r.probes.lrs[k]
        model.load_state_dict(init[0])
        opt.load_state_dict(init[1])
        torch.set_rng_state(rng[0])
        loader.generator.set_state(rng[1])
        batches = cycle_batches(loader)
        for g in opt.param_groups:
            g["lr"] = lr
        for _ in range(PROBE_STEPS):
            bx, by = next(batches)
            opt.zero_grad(set_to_none=True)
            CE(model(bx), by).backward()
            opt.step()
        assert val_loss(model, val) == r.probes.losses[k]
    # and the suggestions follow the probes: another constant LR than the sweep alone gives
    model.load_state_dict(init[0])
    opt.load_state_dict(init[1])
    torch.set_rng_state(rng[0])
    loader.generator.set_state(rng[1])
    plain = find_lr(model, opt, CE, loader, total_steps=500)
    assert plain.probes is None and plain.lr_min == r.lr_min
    assert plain.suggestion != r.suggestion


def test_probes_from_a_generator_share_the_batches_after_the_sweep():
    model, loader, val = task()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    batches = [(x.clone(), y) for _ in range(40) for x, y in loader]  # distinct objects
    seen: list[tuple[float, int]] = []

    def step(m, batch):
        if m.training:  # a training step (held and probe_data losses are in eval mode)
            seen.append((opt.param_groups[0]["lr"], id(batch[0])))
        return CE(m(batch[0]), batch[1])

    r = find_lr(model, opt, None, (b for b in batches), step=step, probe_data=val)
    assert r.probes is not None
    by_lr: dict[float, list[int]] = {}
    for lr, ident in seen[r.steps :]:
        by_lr.setdefault(lr, []).append(ident)
    assert set(by_lr) == set(r.probes.lrs)
    runs = [by_lr[lr] for lr in r.probes.lrs]
    longest = max(runs, key=len)
    assert len(longest) == PROBE_STEPS
    for run in runs:  # every probe trains on the same batches, in the same order
        assert run == longest[: len(run)]
    # ... the ones after the sweep's, none of which it trained on
    assert not set(longest) & {ident for _, ident in seen[: r.steps]}


@pytest.mark.parametrize(
    "bad,match",
    [
        (3, r"^probe_data must be an iterable of batches .* got int"),
        ([], r"^probe_data must yield at least one batch"),
    ],
)
def test_bad_probe_data_is_one_line_before_any_work(bad, match):
    model, loader, _ = task()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    before = state(model, opt, loader)
    with pytest.raises(ValueError, match=match):
        find_lr(model, opt, CE, loader, probe_data=bad)
    assert_same(before, state(model, opt, loader))


def test_probes_leave_a_grad_scaler_with_its_scale_and_growth_count():
    model, loader, val = task()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0, growth_interval=4)
    x, y = val[0]  # one step of the user's: the scale and its growth count are tensors now
    scaler.scale(CE(model(x), y)).backward()
    scaler.step(opt)
    scaler.update()
    saved = scaler.state_dict()
    assert saved["scale"] == 256.0 and saved["_growth_tracker"] == 1
    before = state(model, opt, loader)
    r = find_lr(model, opt, CE, loader, probe_data=val, scaler=scaler, total_steps=500)
    assert r.probes is not None and len(r.probes.losses) == 8
    assert scaler.state_dict() == saved
    assert_same(before, state(model, opt, loader))


def test_a_probe_data_loader_is_read_inside_the_snapshot():
    """A DataLoader as probe_data draws its order from the global RNG when it is read: that
    draw is undone with the rest, as for val_data."""
    model, loader, val = task()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    xv = torch.cat([x for x, _ in val])
    yv = torch.cat([y for _, y in val])
    probe_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(xv, yv), batch_size=32, shuffle=True
    )
    before = state(model, opt, loader)
    r = find_lr(model, opt, CE, loader, probe_data=probe_loader)
    assert r.probes is not None
    assert_same(before, state(model, opt, loader))


def test_probe_data_layout_is_checked_before_the_sweep_and_named():
    model, loader, _ = task()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    bad = [{"x": torch.randn(4, 8), "y": torch.zeros(4, dtype=torch.long)}]
    before = state(model, opt, loader)
    steps: list[int] = []
    model.register_forward_pre_hook(lambda m, a: steps.append(1))
    with pytest.raises(ValueError, match=r"^probe_data must yield \(x, y\) batches .* a dict"):
        find_lr(model, opt, CE, loader, probe_data=bad)
    assert steps == []  # nothing ran
    assert_same(before, state(model, opt, loader))


def test_a_step_that_skips_every_probe_data_batch_is_named():
    model, loader, val = task()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    before = state(model, opt, loader)

    def step(m, batch):
        if any(batch[0] is x for x, _ in val):
            return None  # the probes' scoring batches: skipped
        return CE(m(batch[0]), batch[1])

    with pytest.raises(ValueError, match="every batch of probe_data: nothing to score"):
        find_lr(model, opt, None, loader, step=step, probe_data=val, eval_batches=0)
    assert_same(before, state(model, opt, loader))


def test_an_interrupt_during_the_probes_restores_everything_and_keeps_the_sweep():
    scored = {"n": 0, "stop": None}

    def loss_fn(out, y):
        if not torch.is_grad_enabled():  # a held batch of the sweep, or a probe's score
            scored["n"] += 1
            if scored["n"] == scored["stop"]:
                raise KeyboardInterrupt  # Ctrl-C while the last probe is scored
        return CE(out, y)

    model, loader, val = task()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    whole = find_lr(model, opt, loss_fn, loader, probe_data=val, total_steps=500)
    scored["stop"], scored["n"] = scored["n"], 0
    plain = find_lr(model, opt, CE, loader, total_steps=500)
    before = state(model, opt, loader)
    with pytest.raises(KeyboardInterrupt) as info:
        find_lr(model, opt, loss_fn, loader, probe_data=val, total_steps=500)
    assert_same(before, state(model, opt, loader))
    kept = info.value.result
    assert whole.probes is not None and kept.probes is None
    assert np.array_equal(kept.losses, plain.losses) and kept.suggestion == plain.suggestion


def test_a_probe_that_blows_up_early_leaves_the_next_probes_the_same_batches():
    """A generator: the first probe diverges on its fourth step; every later probe still
    trains on the 60 batches that follow the sweep's, from the first of them."""
    model, _, val = task()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = val[0]
    seen: list[int] = []

    def step(m, batch):
        i, bx, by = batch
        loss = CE(m(bx), by)
        if torch.is_grad_enabled():  # a training step (probe_data is scored without grad)
            seen.append(int(i))
            if len(seen) == 10 + 4:  # the first probe's fourth step
                return loss * 0 + 1e6
        return loss

    data = ((torch.tensor(i), x, y) for i in range(10_000))
    r = find_lr(model, opt, None, data, step=step, probe_data=[(torch.tensor(-1), x, y)],
                num_iter=10, end_lr=1e-2, eval_batches=0, max_extra_iter=0)  # fmt: skip
    assert r.probes is not None and r.steps == 10
    assert r.probes.losses[0] == np.inf and all(np.isfinite(r.probes.losses[1:]))
    assert seen[:14] == list(range(14))
    rest = seen[14:]
    assert len(rest) == 7 * PROBE_STEPS
    for k in range(7):
        assert rest[k * PROBE_STEPS : (k + 1) * PROBE_STEPS] == list(range(10, 70)), k


def test_a_step_returning_an_unreduced_loss_is_refused_in_one_line():
    from lrkit.finder import run_probes

    per_sample = torch.tensor([1.0, 2.0])  # a loss without its mean
    want = r"^step must return the loss at lr \(a number\), got tensor\(\[1\., 2\.\]\)$"
    with pytest.raises(ValueError, match=want):
        run_probes(0.01, reset=lambda: None, step=lambda lr: per_sample, score=lambda: 1.0)
    with pytest.raises(ValueError, match=r"^score must return the validation loss \(a number\)"):
        run_probes(0.01, reset=lambda: None, step=lambda lr: 1.0, score=lambda: per_sample)
