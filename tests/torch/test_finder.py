"""Tests of lrkit.torch.find_lr: bit-for-bit restore, AMP, accumulation, validation mode."""

from __future__ import annotations

import copy
import os
import random
import tempfile
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from lrkit.finder import LRFinderWarning  # noqa: E402
from lrkit.torch import find_lr  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::lrkit.finder.LRFinderWarning")


def make_data(n=256, d=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, :3].sum(1) > 0).long()
    return x, y


def loader(x, y, bs=32, seed=0):
    ds = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(
        ds, batch_size=bs, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )


def bn_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 2)
    )


def pretrain(model, opt, x, y, steps=3):
    for i in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(
            model(x[i * 32 : (i + 1) * 32]), y[i * 32 : (i + 1) * 32]
        ).backward()
        opt.step()


def capture(model, opt, data=None):
    return {
        "sd": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "opt": copy.deepcopy(opt.state_dict()),
        "groups": [dict(g) for g in opt.param_groups],
        "group_ids": [id(g) for g in opt.param_groups],
        "modes": [m.training for m in model.modules()],
        "torch_rng": torch.get_rng_state().clone(),
        "np_rng": np.random.get_state(),
        "py_rng": random.getstate(),
        "gen": data.generator.get_state().clone() if data is not None else None,
    }


def assert_same(before, model, opt, data=None):
    sd = model.state_dict()
    assert set(sd) == set(before["sd"])
    for k, v in before["sd"].items():
        assert torch.equal(sd[k], v), k
        assert sd[k].dtype == v.dtype
    for g0, p in zip(before["grads"], model.parameters()):
        assert (g0 is None and p.grad is None) or torch.equal(g0, p.grad)
    o = opt.state_dict()
    assert o["param_groups"] == before["opt"]["param_groups"]
    assert set(o["state"]) == set(before["opt"]["state"])
    for k, st in before["opt"]["state"].items():
        assert set(o["state"][k]) == set(st)
        for name, v in st.items():
            if torch.is_tensor(v):
                assert torch.equal(o["state"][k][name], v), (k, name)
            else:
                assert o["state"][k][name] == v
    assert [id(g) for g in opt.param_groups] == before["group_ids"]
    assert [dict(g) for g in opt.param_groups] == before["groups"]
    assert [m.training for m in model.modules()] == before["modes"]
    assert torch.equal(torch.get_rng_state(), before["torch_rng"])
    a, b = np.random.get_state(), before["np_rng"]
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]
    assert random.getstate() == before["py_rng"]
    if data is not None:
        assert torch.equal(data.generator.get_state(), before["gen"])


@pytest.mark.parametrize("snapshot", ["memory", "disk"])
def test_restore_bit_for_bit_bn_sgd_momentum(snapshot, monkeypatch):
    x, y = make_data()
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.StepLR(opt, 10)  # adds initial_lr to the groups
    pretrain(model, opt, x, y)
    sched.step()
    model[3].eval()  # a user choice that must survive
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    np.random.seed(3)
    random.seed(4)
    data = loader(x, y)
    made = []
    real = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda **kw: made.append(real(**kw)) or made[-1])
    before = capture(model, opt, data)
    r = find_lr(model, opt, nn.functional.cross_entropy, data, num_iter=30, snapshot=snapshot)
    assert r.steps >= 10 and r.suggestion is not None
    assert_same(before, model, opt, data)
    assert model[1].num_batches_tracked.item() == 3
    if snapshot == "disk":
        assert len(made) == 1 and not os.path.exists(made[0])
    else:
        assert made == []


def test_restore_bit_for_bit_adam_fresh_and_trained():
    x, y = make_data()
    for pre in (0, 3):
        model = bn_model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.99), weight_decay=1e-4)
        pretrain(model, opt, x, y, pre)
        data = loader(x, y)
        before = capture(model, opt, data)
        find_lr(model, opt, nn.functional.cross_entropy, data, num_iter=20)
        assert_same(before, model, opt, data)
        assert (len(opt.state) == 0) == (pre == 0)


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_restore_after_exception_in_user_step(exc):
    x, y = make_data()
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    pretrain(model, opt, x, y)
    calls = []

    def step(m, batch):
        calls.append(1)
        if len(calls) == 7:
            raise exc("boom")
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    before = capture(model, opt)
    with pytest.raises(exc, match="boom") as info:
        find_lr(model, opt, None, loader(x, y), num_iter=20, step=step)
    assert_same(before, model, opt)
    # Ctrl-C keeps the steps measured (the sweep's own result: 4 steps, the held batches'
    # evaluations made the other calls), another error is the user's
    kept = getattr(info.value, "result", None)
    if exc is KeyboardInterrupt:
        assert kept.steps == 4 and kept.stop_reason == "interrupted" and not kept.reliable
        calls.clear()
        full = find_lr(model, opt, None, loader(x, y), num_iter=20, step=lambda m, b: (
            nn.functional.cross_entropy(m(b[0]), b[1])), max_extra_iter=0)  # fmt: skip
        assert np.array_equal(kept.lrs, full.lrs[:4])
        assert np.array_equal(kept.losses, full.losses[:4])
    else:
        assert kept is None


def test_data_cycled_and_custom_step_with_dict_batches():
    x, y = make_data(n=64)
    batches = [{"x": x[:32], "y": y[:32]}, {"x": x[32:], "y": y[32:]}]
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []

    def step(m, b):
        seen.append(b["x"].data_ptr())
        return nn.functional.cross_entropy(m(b["x"]), b["y"])

    r = find_lr(
        model, opt, None, batches, num_iter=15, step=step, end_lr=1e-2, eval_batches=0,
        max_extra_iter=0,
    )  # fmt: skip
    assert len(r.losses) == 15 and len(seen) == 15  # 2 batches cycled
    assert seen[0] == seen[2] == seen[4] and seen[1] == seen[3]


def test_first_batches_of_data_are_the_held_set_evaluated_every_eval_every_steps():
    x, y = make_data(n=96)
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 96, 32)]
    model = Probe()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []

    def step(m, b):
        seen.append((b[0].data_ptr(), m.training, torch.is_grad_enabled()))
        return nn.functional.cross_entropy(m(b[0]), b[1])

    r = find_lr(model, opt, None, batches, num_iter=12, step=step, end_lr=1e-3, eval_every=3,
                max_extra_iter=0)  # fmt: skip
    held = [s for s in seen if not s[1]]
    train = [s for s in seen if s[1]]
    # every 3 steps, then every 6 once two held losses show it has not moved (tiny LRs)
    at = [list(r.lrs).index(v) for v in r.held_lrs]
    assert len(train) == 12 and len(held) == len(r.held_losses) == 3 and at == [0, 3, 6]
    assert {s[0] for s in held} == {batches[0][0].data_ptr()} and not any(s[2] for s in held)
    # the sweep trains on the batches after the held one, cycling through all of them
    assert [s[0] for s in train[:3]] == [b[0].data_ptr() for b in (batches[1], batches[2],
                                                                    batches[0])]  # fmt: skip
    np.testing.assert_array_equal(r.held_lrs, r.lrs[[0, 3, 6]])
    assert r.optimizer_family == "sgd"


def test_gradient_accumulation_consumes_k_batches_and_averages():
    x, y = make_data()
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    values = iter(float(v) for v in range(1000))

    def step(m, b):
        return m(b[0]).sum() * 0.0 + next(values)

    r = find_lr(
        model, opt, None, loader(x, y), num_iter=10, step=step, accumulation_steps=3,
        eval_batches=0,
    )  # fmt: skip
    # step i averages the losses 3i, 3i+1, 3i+2 -> 3i+1
    np.testing.assert_allclose(r.losses, [3 * i + 1 for i in range(len(r.losses))])


def test_window_step_weighs_each_batch_by_its_share_of_the_whole_window():
    """Masked items counted over the accumulation window: the step's gradient is that of the
    window's items taken together (not a mean of the batches' means) and the loss recorded is
    the window's, as a training loop that counts the window's items (tokens) weighs them."""
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(96, 10, generator=g), torch.randn(96, generator=g)
    mask = torch.zeros(96, dtype=torch.bool)
    for i, keep in enumerate([16, 3, 9, 1, 12, 5]):  # a different count of items per batch
        mask[i * 16 : i * 16 + keep] = True
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y, mask), batch_size=16)
    torch.manual_seed(0)
    model = nn.Linear(10, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    twin = copy.deepcopy(model)
    seen: list[list[torch.Tensor]] = []
    windows: list[int] = []
    opt.register_step_pre_hook(lambda *_: seen.append([p.grad.clone() for p in model.parameters()]))

    def window_step(batches):
        windows.append(len(batches))
        items = sum(int(b[2].sum()) for b in batches)

        def step(m, b):
            return ((m(b[0]).squeeze(1) - b[1]) ** 2 * b[2]).sum() / items

        return batches, step

    def held(m, b):  # a held batch's loss (the sweep's own steps use window_step's)
        return ((m(b[0]).squeeze(1) - b[1]) ** 2)[b[2]].mean()

    r = find_lr(model, opt, None, data, num_iter=10, accumulation_steps=3, eval_batches=0,
                step=held, window_step=window_step, max_extra_iter=0)  # fmt: skip
    assert windows == [3] * len(seen) and len(seen) == len(r.losses) >= 2
    for k in range(2):  # windows 0-2 and 3-5, from the same initial weights each time
        twin.zero_grad()
        sel = slice(48 * k, 48 * (k + 1))
        pred = twin(x[sel]).squeeze(1)
        whole = ((pred - y[sel]) ** 2)[mask[sel]].mean()
        whole.backward()
        for got, want in zip(seen[k], [p.grad for p in twin.parameters()]):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        with torch.no_grad():  # the twin follows the sweep's update to the next window
            for p, lr in zip(twin.parameters(), [r.lrs[k]] * 2):
                p -= lr * p.grad
        if k == 0:
            np.testing.assert_allclose(r.losses[0], float(whole.detach()), rtol=1e-5)
    with pytest.raises(TypeError, match=r"^window_step must be a callable window_step\(batches\)"):
        find_lr(model, opt, None, data, step=held, window_step=1)
    with pytest.raises(TypeError, match=r"^window_step must return \(batches, step\)"):
        find_lr(model, opt, None, data, step=held, window_step=lambda b: b)
    # each mistake named as what it is, never as loss_fn's or step's
    mse = nn.functional.mse_loss
    for hook, error, message in [
        (lambda b: (tuple(b), held), TypeError, r"must return its batches as a list, got a tuple"),
        (lambda b: ([], held), ValueError, r"^window_step returned no batches"),
        (lambda b: (b, 3), TypeError, r"must return a callable step\(model, batch\) -> loss "),
        (lambda b: (b, lambda m, x: None), ValueError, r"^window_step's step must return the lo"),
        (lambda b: (b, lambda m, x: 1.0), ValueError, r"^window_step's step .* got float$"),
    ]:
        for kw in ({"step": held}, {}):
            with pytest.raises(error, match=message):
                find_lr(model, opt, mse, data, num_iter=10, window_step=hook, **kw)


def test_a_step_returning_none_skips_its_batch():
    """None from the step (Lightning's "skip this batch"): no backward for it; the losses of
    the others are averaged; a sweep step whose batches were all skipped is retried."""
    x, y = make_data()
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    values = iter(range(1000))

    def step(m, b):
        v = next(values)
        return None if v % 3 == 1 else m(b[0]).sum() * 0.0 + float(v)

    r = find_lr(
        model, opt, None, loader(x, y), num_iter=10, step=step, accumulation_steps=2,
        eval_batches=0, max_extra_iter=0,
    )  # fmt: skip
    # batches 0 1 | 2 3 | 4 5 | ...: 1, 4, 7, ... skipped; (0), (2+3)/2, (5)...
    kept = [v for v in range(20) if v % 3 != 1]
    expected = []
    for pair in range(10):
        got = [v for v in (2 * pair, 2 * pair + 1) if v in kept]
        expected.append(sum(got) / len(got))
    np.testing.assert_array_equal(r.losses, expected)
    with pytest.raises(ValueError, match=r"^step returned None \(skip the batch\) for 4 "):
        find_lr(model, opt, None, loader(x, y), num_iter=10, step=lambda m, b: None,
                eval_batches=0, max_skipped=3)  # fmt: skip


def test_before_step_sees_the_gradients_before_each_update():
    x, y = make_data()
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    twin = copy.deepcopy(model)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    norms = []

    def clip(o):
        assert o is opt
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)))

    loss = nn.functional.cross_entropy
    r = find_lr(model, opt, loss, loader(x, y), num_iter=20, before_step=clip,
                eval_batches=0, max_extra_iter=0)  # fmt: skip
    plain = find_lr(twin, twin_opt, loss, loader(x, y), num_iter=20, eval_batches=0,
                    max_extra_iter=0)  # fmt: skip
    assert len(norms) == len(r.losses) == 20 and all(n > 0 for n in norms)
    assert r.losses[0] == plain.losses[0] and r.losses.tolist() != plain.losses.tolist()
    with pytest.raises(
        TypeError, match=r"^before_step must be a callable before_step\(optimizer\)"
    ):
        find_lr(model, opt, loss, loader(x, y), before_step=1)


def test_amp_bfloat16_on_cpu_and_restore():
    x, y = make_data()
    model = bn_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    dtypes = []

    def step(m, b):
        out = m(b[0])
        dtypes.append(out.dtype)
        return nn.functional.cross_entropy(out, b[1])

    before = capture(model, opt)
    r = find_lr(model, opt, None, loader(x, y), num_iter=20, amp=True, step=step)
    assert set(dtypes) == {torch.bfloat16}
    assert np.all(np.isfinite(r.losses))
    assert_same(before, model, opt)


class FakeScaler:
    """A GradScaler stand-in that reports inf gradients (a skipped step) on given calls."""

    def __init__(self, skip_at):
        self.scale_value = 1024.0
        self.skip_at = set(skip_at)
        self.calls = 0
        self.stepped = 0

    def is_enabled(self):
        return True

    def scale(self, loss):
        return loss * self.scale_value

    def get_scale(self):
        return self.scale_value

    def step(self, opt):
        self.calls += 1
        if self.calls not in self.skip_at:
            for g in opt.param_groups:
                for p in g["params"]:
                    if p.grad is not None:
                        p.grad.div_(self.scale_value)
            opt.step()
            self.stepped += 1

    def update(self):
        if self.calls in self.skip_at:
            self.scale_value /= 2


def test_grad_scaler_skipped_steps_are_retried_and_scaler_restored():
    x, y = make_data()
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = FakeScaler(skip_at={1, 2, 5})
    before = capture(model, opt)
    r = find_lr(
        model,
        opt,
        nn.functional.cross_entropy,
        loader(x, y),
        num_iter=12,
        scaler=scaler,
        end_lr=1e-2,
        max_extra_iter=0,
        eval_batches=0,
    )
    assert len(r.losses) == 12
    assert_same(before, model, opt)
    assert scaler.calls == 0 and scaler.scale_value == 1024.0  # scaler state restored


def test_a_scaler_that_is_not_enabled_is_left_out_of_the_sweep():
    class Disabled(FakeScaler):
        def is_enabled(self):
            return False

    x, y = make_data()
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    kw = {"num_iter": 12, "end_lr": 1e-2, "max_extra_iter": 0, "eval_batches": 0}
    plain = find_lr(model, opt, nn.functional.cross_entropy, loader(x, y), **kw)
    scaler = Disabled(skip_at={1, 2, 5})
    r = find_lr(model, opt, nn.functional.cross_entropy, loader(x, y), scaler=scaler, **kw)
    assert np.array_equal(r.lrs, plain.lrs) and np.array_equal(r.losses, plain.losses)


def test_real_grad_scaler_on_cpu_runs():
    x, y = make_data()
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    before = capture(model, opt)
    r = find_lr(
        model, opt, nn.functional.cross_entropy, loader(x, y), num_iter=12, scaler=scaler, amp=True
    )
    assert len(r.losses) >= 2
    assert_same(before, model, opt)


def test_a_grad_scaler_that_has_scaled_comes_back_with_its_scale_and_growth_count():
    x, y = make_data()
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0, growth_interval=3)
    for i in range(2):  # the scale and the count of good steps toward growing it are tensors now
        opt.zero_grad()
        loss = nn.functional.cross_entropy(
            model(x[i * 32 : (i + 1) * 32]), y[i * 32 : (i + 1) * 32]
        )
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    state = scaler.state_dict()
    assert state["scale"] == 256.0 and state["_growth_tracker"] == 2
    before = capture(model, opt)
    find_lr(
        model, opt, nn.functional.cross_entropy, loader(x, y), num_iter=12, scaler=scaler, amp=True
    )
    assert scaler.state_dict() == state
    assert_same(before, model, opt)


class Probe(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(10, 2)
        self.log = []

    def forward(self, x):
        self.log.append((self.training, torch.is_grad_enabled()))
        return self.lin(x)


def test_validation_mode_records_eval_loss():
    x, y = make_data()
    model = Probe()
    model.eval()  # user left it in eval mode: train_mode=True trains, then restores eval
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    val = [(x[:16], y[:16]), (x[16:32], y[16:32])]
    r = find_lr(
        model, opt, nn.functional.cross_entropy, loader(x, y), num_iter=10, val_data=val,
        end_lr=1.0, eval_every=1,
    )  # fmt: skip
    n = len(r.losses)
    assert model.log[:3] == [(True, True), (False, False), (False, False)]
    h = len(r.held_losses)
    assert model.log.count((True, True)) == n and model.log.count((False, False)) == 2 * h
    assert h == len({float(v) for v in r.held_lrs}) and n // 2 <= h <= n
    assert model.training is False


def test_validation_loss_value_is_the_mean_over_held_batches():
    x, y = make_data()
    torch.manual_seed(0)
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    val = [(x[:16], y[:16]), (x[16:32], y[16:32])]
    # a tiny range: the weights barely move in one step, so the first value is ~ the initial
    with torch.no_grad():
        expected0 = np.mean([nn.functional.cross_entropy(model(a), b).item() for a, b in val])
    r = find_lr(
        model,
        opt,
        nn.functional.cross_entropy,
        loader(x, y),
        num_iter=10,
        val_data=val,
        start_lr=1e-9,
        end_lr=1e-8,
    )
    assert r.held_losses[0] == pytest.approx(expected0, rel=1e-5)


def test_a_one_element_loss_of_shape_1_is_a_loss_like_its_scalar():
    """A loss of shape (1,) is a usable loss (as fit, evaluate and the guard take it): the
    sweep, its held batches and gradient accumulation read it as the scalar it holds."""
    x, y = make_data()
    data = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]

    def run(loss_fn, **kw):
        torch.manual_seed(0)
        model = nn.Linear(10, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return find_lr(model, opt, loss_fn, data, num_iter=30, val_data=data[:2], **kw)

    ce = nn.functional.cross_entropy
    for kw in ({}, {"accumulation_steps": 2}):
        a, b = run(ce, **kw), run(lambda out, t: ce(out, t).reshape(1), **kw)
        assert np.array_equal(a.losses, b.losses) and np.array_equal(a.held_losses, b.held_losses)
        assert a.suggestion == b.suggestion and a.suggestion is not None


def test_warning_is_emitted_for_unusable_curve():
    x, y = make_data()
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(LRFinderWarning):
        with warnings.catch_warnings():
            warnings.simplefilter("always", LRFinderWarning)
            find_lr(
                model,
                opt,
                nn.functional.cross_entropy,
                loader(x, y),
                start_lr=1e-9,
                end_lr=1e-8,
                num_iter=20,
            )


@pytest.mark.parametrize(
    "kw,param",
    [
        ({"accumulation_steps": 0}, "accumulation_steps"),
        ({"snapshot": "cloud"}, "snapshot"),
        ({"start_lr": 1.0, "end_lr": 0.1}, "end_lr"),
        ({"num_iter": 3}, "num_iter"),
        ({"rule": "nope"}, "rule"),
        ({"total_steps": 0}, "total_steps"),
        ({"amp": "yes"}, "amp"),
        ({"amp": torch.int8}, r"^amp must be True, False, torch.float16 or torch.bfloat16 "),
        ({"amp": torch.float32}, r"^amp must be True, False, torch.float16 or torch.bfloat16 "),
    ],
)
def test_bad_arguments(kw, param):
    x, y = make_data()
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = capture(model, opt)
    with pytest.raises(ValueError, match=param):
        find_lr(model, opt, nn.functional.cross_entropy, loader(x, y), **kw)
    assert_same(before, model, opt)


def test_empty_data_raises_and_restores():
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = capture(model, opt)
    with pytest.raises(ValueError, match="data"):
        find_lr(model, opt, nn.functional.cross_entropy, [], num_iter=10)
    assert_same(before, model, opt)


def test_a_generator_shorter_than_the_sweep_is_replayed():
    x, y = make_data()
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 96, 32)]  # 3 batches
    res = find_lr(
        model,
        opt,
        nn.functional.cross_entropy,
        (b for b in batches),
        start_lr=1e-4,
        end_lr=1e-2,
        num_iter=10,
        max_extra_iter=0,
        warn=False,
    )
    assert res.stop_reason == "completed" and len(res.losses) == 10


def test_a_closure_optimizer_is_refused_in_one_line_and_nothing_changes():
    x, y = make_data()
    model = bn_model()
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.LBFGS(model.parameters())
    with pytest.raises(ValueError, match=r"^optimizer LBFGS needs a closure in step\(closure\)"):
        find_lr(model, opt, nn.functional.cross_entropy, loader(x, y))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert opt.state_dict()["state"] == {}


def test_progress_and_callback_follow_every_step(capsys):
    torch.manual_seed(0)
    x, y = make_data()
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    res = find_lr(
        model,
        opt,
        nn.CrossEntropyLoss(),
        loader(x, y),
        num_iter=15,
        max_extra_iter=0,
        progress=True,
        callback=lambda i, lr, loss: seen.append((i, lr, loss)),
    )
    assert seen == list(zip(range(len(res.lrs)), res.lrs.tolist(), res.losses.tolist()))
    assert "lrkit find" in capsys.readouterr().err


# ----------------------------------------------------------------------------- batch layout

LAYOUT = "must yield (x, y) batches for loss_fn(model(x), y), got"
STEP = "for any other batch layout pass step=lambda model, batch: loss"


@pytest.mark.parametrize("batch", [("x", "y"), ["x", "y"]])
def test_check_batch_returns_the_pair(batch):
    from lrkit.torch import check_batch

    assert check_batch(batch) == ("x", "y")
    assert check_batch(batch, name="val_data", advice="") == ("x", "y")


@pytest.mark.parametrize(
    "batch,kw,problem,advice",
    [
        ({"x": 1}, {}, f"data {LAYOUT} a dict", STEP),
        ((1, 2, 3), {"advice": ""}, f"data {LAYOUT} a tuple of 3 items", ""),
        ([1], {"name": "val_data"}, f"val_data {LAYOUT} a list of 1 item", STEP),
        # a tensor of data, with advice: as often inputs alone, which the advice covers
        (torch.zeros(2), {}, f"data {LAYOUT} a Tensor", STEP),
        (
            torch.zeros(2),
            {"advice": ""},
            f"data {LAYOUT} a Tensor (one batch as data: a list of it, [(x, y)])",
            "",
        ),
        (
            torch.zeros(2),
            {"name": "val_data", "advice": "pass it as a list"},
            f"val_data {LAYOUT} a Tensor (one batch as val_data: a list of it, [(x, y)])",
            "pass it as a list",
        ),
    ],
)
def test_check_batch_refuses_another_layout_with_its_problem_and_advice_apart(
    batch, kw, problem, advice
):
    import copy
    import pickle

    from lrkit.torch import BatchLayoutError, check_batch

    with pytest.raises(BatchLayoutError) as info:
        check_batch(batch, **kw)
    e = info.value
    assert isinstance(e, ValueError)
    assert (e.problem, e.advice) == (problem, advice)
    assert str(e) == (f"{problem}; {advice}" if advice else problem)
    for again in (pickle.loads(pickle.dumps(e)), copy.copy(e), copy.deepcopy(e)):
        assert type(again) is BatchLayoutError
        assert (again.problem, again.advice, str(again)) == (e.problem, e.advice, str(e))


def test_check_batch_takes_only_the_batch_by_position():
    from lrkit.torch import check_batch

    with pytest.raises(TypeError):
        check_batch({"x": 1}, "val_data")


def test_the_batch_layout_names_are_public():
    import lrkit.torch as lt

    assert {"BatchLayoutError", "check_batch"} <= set(lt.__all__)
    assert issubclass(lt.BatchLayoutError, ValueError)


def test_find_lr_raises_a_batch_layout_error_with_the_step_advice():
    from lrkit.torch import BatchLayoutError

    model = nn.Linear(6, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 6), torch.zeros(16, dtype=torch.long)
    with pytest.raises(BatchLayoutError) as info:
        find_lr(model, opt, nn.functional.cross_entropy, [{"x": x, "y": y}] * 4, num_iter=10)
    assert (info.value.problem, info.value.advice) == (f"data {LAYOUT} a dict", STEP)
    with pytest.raises(BatchLayoutError) as info:
        find_lr(model, opt, nn.functional.cross_entropy, [(x, y)] * 4, num_iter=10, val_data=(x, y))
    assert info.value.problem == (
        f"val_data {LAYOUT} a Tensor (one batch as val_data: a list of it, [(x, y)])"
    )
    assert info.value.advice == STEP


# ----------------------------------------------------------------------------- optimizer family


def test_the_family_is_read_off_the_optimizer_unless_the_options_name_one():
    x, y = make_data()
    model = nn.Sequential(nn.Linear(10, 2))

    def sweep(opt, **kw):
        return find_lr(model, opt, nn.functional.cross_entropy, loader(x, y), num_iter=10,
                       warn=False, **kw)  # fmt: skip

    sgd = sweep(torch.optim.SGD(model.parameters(), lr=0.1))
    momentum = sweep(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    adam = sweep(torch.optim.Adam(model.parameters()))
    assert (sgd.optimizer_family, momentum.optimizer_family, adam.optimizer_family) == (
        "sgd",
        "momentum",
        "adaptive",
    )
    # read off the optimizer, not stored in the options: reused for another optimizer, they
    # do not carry the first one's family
    assert sgd.options.optimizer_family is None
    assert sweep(torch.optim.Adam(model.parameters()), options=sgd.options).optimizer_family == (
        "adaptive"
    )
    named = sweep(torch.optim.SGD(model.parameters(), lr=0.1), optimizer_family="adaptive")
    assert named.optimizer_family == named.options.optimizer_family == "adaptive"
    assert named.to_dict()["optimizer_family"] == "adaptive"


def test_a_wrapped_optimizers_family_is_the_one_it_wraps():
    """A wrapper holding the optimizer as ``.optimizer`` (accelerate's, Lightning's) gets the
    suggestions of the SGD it wraps: the same curve, the same family."""

    class Wrapped(torch.optim.Optimizer):
        def __init__(self, inner: torch.optim.Optimizer) -> None:
            self.optimizer = inner
            self.param_groups = inner.param_groups
            self.defaults = inner.defaults
            self.state = inner.state

        def state_dict(self):  # type: ignore[no-untyped-def]
            return self.optimizer.state_dict()

        def load_state_dict(self, state):  # type: ignore[no-untyped-def]
            self.optimizer.load_state_dict(state)

        def zero_grad(self, set_to_none: bool = True) -> None:
            self.optimizer.zero_grad(set_to_none)

        def step(self, closure=None):  # type: ignore[no-untyped-def]
            return self.optimizer.step(closure)

    x, y = make_data()
    results = []
    for wrap in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(10, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        results.append(find_lr(model, Wrapped(Wrapped(opt)) if wrap else opt,
                               nn.functional.cross_entropy, loader(x, y), num_iter=30,
                               warn=False))  # fmt: skip
    plain, wrapped = results
    assert wrapped.losses.tolist() == plain.losses.tolist()
    assert wrapped.optimizer_family == plain.optimizer_family == "momentum"
    assert (wrapped.suggestion, wrapped.max_lr) == (plain.suggestion, plain.max_lr)

    class SGDW(torch.optim.Optimizer):  # an SGD of its own (not torch's), read by its name
        def __init__(self, params, lr=0.1, momentum=0.9):  # type: ignore[no-untyped-def]
            super().__init__(params, {"lr": lr, "momentum": momentum})

        @torch.no_grad()
        def step(self, closure=None):  # type: ignore[no-untyped-def]
            for g in self.param_groups:
                for p in g["params"]:
                    p.add_(p.grad, alpha=-g["lr"])

    model = nn.Sequential(nn.Linear(10, 2))
    kin = find_lr(model, Wrapped(SGDW(model.parameters())), nn.functional.cross_entropy,
                  loader(x, y), num_iter=10, warn=False)  # fmt: skip
    assert kin.optimizer_family == "momentum"


class _Stop(Exception):
    pass


def test_mapping_batches_of_any_type_are_moved_to_the_device(monkeypatch):
    # a Hugging Face collator returns a BatchEncoding (a UserDict, not a dict): its tensors
    # go to the device as a dict's do, and the batch keeps its type
    from collections import UserDict, defaultdict

    import lrkit.torch._finder as F

    # the meta device stands for another device than the CPU (find_lr refuses it otherwise:
    # a batch there holds no data)
    monkeypatch.setattr(F, "_device", torch.device)

    x, y = make_data(64)
    kinds = [dict, UserDict, lambda d: defaultdict(list, d)]
    try:
        from transformers import BatchEncoding

        kinds.append(BatchEncoding)
    except ImportError:
        pass
    for kind in kinds:
        model = nn.Linear(10, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        batches = [kind({"x": x[i : i + 16], "y": y[i : i + 16]}) for i in range(0, 64, 16)]
        seen = []

        def step(model, batch, seen=seen):
            seen.append((type(batch), batch["x"].device.type, batch["y"].device.type))
            raise _Stop

        with pytest.raises(_Stop):
            find_lr(model, opt, None, batches, step=step, device="meta", eval_batches=0)
        # a defaultdict cannot be built from a dict alone: a plain dict then
        expected = dict if isinstance(batches[0], defaultdict) else type(batches[0])
        assert seen == [(expected, "meta", "meta")], kind
        assert batches[0]["x"].device.type == "cpu"  # the user's batch is left as it was


def test_lrkit_step_hooks_leave_the_sweeps_steps_out():
    from lrkit.torch import EffectiveLRLogger

    x, y = make_data()
    model = nn.Linear(10, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    log = EffectiveLRLogger(opt, every=5, tensorboard=False)
    find_lr(model, opt, nn.functional.cross_entropy, loader(x, y), num_iter=20)
    assert log.steps == []
    pretrain(model, opt, torch.cat([x] * 2), torch.cat([y] * 2), steps=5)
    assert log.steps == [5]  # counted from the first training step
    log.close()


@pytest.mark.parametrize("scaler", [True, "cpu", torch.amp.GradScaler])
def test_a_scaler_that_is_not_a_grad_scaler_instance_is_refused_by_name(scaler):
    x, y = make_data()
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError) as info:
        find_lr(model, opt, nn.functional.cross_entropy, loader(x, y), scaler=scaler)
    assert str(info.value) == (
        f"scaler must be a torch.amp.GradScaler instance or None, got {scaler!r}"
    )


def test_an_unknown_keyword_names_the_finders_own_options_and_the_one_meant() -> None:
    """Checked first (before the model is looked at): a misspelling of an argument of the
    function itself points to it, and every keyword it takes is listed."""
    with pytest.raises(TypeError) as e:
        find_lr(None, None, None, None, probe_date=[])  # type: ignore[arg-type,call-arg]
    msg = str(e.value)
    assert msg.startswith("probe_date is not an option of lrkit.torch.find_lr (did you mean ")
    assert "probe_data?); options: accumulation_steps, amp, " in msg
    assert ", snapshot, start_lr, step, stop_early, total_steps, train_mode, val_data, " in msg
    with pytest.raises(TypeError, match=r"^min_lr is not an option of lrkit.torch.find_lr \(use "
                       r"start_lr\); "):  # fmt: skip
        find_lr(None, None, None, None, min_lr=1e-5)  # type: ignore[arg-type,call-arg]


def test_a_param_group_the_step_adds_during_the_sweep_is_removed_afterwards():
    x, y = make_data()
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    extra = nn.Parameter(torch.zeros(3))
    before = capture(model, opt)

    def step(m, b):
        if len(opt.param_groups) == 1:  # a head unfrozen on first use, as a new group
            opt.add_param_group({"params": [extra], "lr": 0.5})
        return nn.functional.cross_entropy(m(b[0]), b[1]) + (extra**2).sum()

    find_lr(model, opt, None, loader(x, y), num_iter=10, step=step, eval_batches=0)
    assert len(opt.param_groups) == 1
    assert_same(before, model, opt)


def test_a_params_list_the_step_changes_in_place_gets_its_contents_back():
    x, y = make_data()
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    plist = opt.param_groups[0]["params"]
    contents = list(plist)

    def step(m, b):
        if len(plist) == 2:  # the step stops training the bias by dropping it from the list
            plist.pop()
        return nn.functional.cross_entropy(m(b[0]), b[1])

    find_lr(model, opt, None, loader(x, y), num_iter=10, step=step, eval_batches=0)
    assert opt.param_groups[0]["params"] is plist
    assert len(plist) == 2 and all(a is b for a, b in zip(plist, contents))


def test_each_probe_trains_in_train_mode_when_the_model_was_in_eval_mode():
    x, y = make_data()
    model = nn.Sequential(nn.Linear(10, 8), nn.Dropout(0.1), nn.Linear(8, 2))
    model.eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trained: list[bool] = []

    def step(m, b):
        if torch.is_grad_enabled():  # a training step (held and probe batches: no grad)
            trained.append(m.training)
        return nn.functional.cross_entropy(m(b[0]), b[1])

    r = find_lr(model, opt, None, loader(x, y), step=step, probe_data=[(x[:64], y[:64])],
                num_iter=10, end_lr=1e-2, eval_batches=0, max_extra_iter=0)  # fmt: skip
    assert r.probes is not None and len(trained) >= 10 + 60
    assert all(trained) and not model.training


def test_probes_on_one_shot_data_with_accumulation_share_the_batches_of_a_whole_probe():
    """A generator: each probe trains on the same accumulation_steps x 60 batches that follow
    the sweep's, not on fewer ones repeated."""
    x, y = make_data(n=32)
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen: list[int] = []

    def step(m, b):
        i, bx, by = b
        if torch.is_grad_enabled():
            seen.append(int(i))
        return nn.functional.cross_entropy(m(bx), by)

    data = ((torch.tensor(i), x, y) for i in range(10_000))
    r = find_lr(model, opt, None, data, step=step, probe_data=[(0, x, y)], num_iter=10,
                end_lr=1e-2, accumulation_steps=2, eval_batches=0, max_extra_iter=0)  # fmt: skip
    assert r.probes is not None and all(np.isfinite(r.probes.losses))
    sweep, probes = seen[:20], seen[20:]
    assert sweep == list(range(20)) and len(probes) == 8 * 120
    for k in range(8):
        assert probes[k * 120 : (k + 1) * 120] == list(range(20, 140)), k


def _two_batches_and_twin_models():
    """Two batches of 32, a linear model, its exact copy and SGD on the model."""
    x, y = make_data(n=64)
    batches = [(x[:32], y[:32]), (x[32:], y[32:])]
    torch.manual_seed(0)
    model = nn.Linear(10, 2)
    twin = copy.deepcopy(model)
    return x, y, batches, model, twin, torch.optim.SGD(model.parameters(), lr=0.1)


def _assert_grads_equal(grads, model):
    for got, want in zip(grads, [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


def test_accumulated_gradients_are_the_mean_over_the_accumulation_steps():
    x, y, batches, model, twin, opt = _two_batches_and_twin_models()
    seen: list[list[torch.Tensor]] = []
    opt.register_step_pre_hook(lambda *_: seen.append([p.grad.clone() for p in model.parameters()]))
    loss = nn.functional.cross_entropy
    find_lr(model, opt, loss, batches, num_iter=10, accumulation_steps=2, eval_batches=0,
            max_extra_iter=0)  # fmt: skip
    ((loss(twin(x[:32]), y[:32]) + loss(twin(x[32:]), y[32:])) / 2).backward()
    _assert_grads_equal(seen[0], twin)


def test_a_step_the_scaler_keeps_skipping_is_taken_after_max_skipped_retries():
    """Every scaler step skipped (inf gradients) for the first three calls: with
    max_skipped=2 the first sweep step retries twice, then moves on (3 batches), so the
    sweep draws 3 + 11 batches for its 12 steps."""
    x, y = make_data()
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = FakeScaler(skip_at={1, 2, 3})
    drawn = []

    def step(m, b):
        if torch.is_grad_enabled():
            drawn.append(scaler.calls)
        return nn.functional.cross_entropy(m(b[0]), b[1])

    r = find_lr(model, opt, None, loader(x, y), step=step, num_iter=12, scaler=scaler,
                end_lr=1e-2, max_extra_iter=0, eval_batches=0, max_skipped=2)  # fmt: skip
    assert len(r.losses) == 12
    assert drawn == list(range(14))  # one batch per scaler call: 3 for the first step


def test_before_step_sees_unscaled_gradients_with_a_grad_scaler():
    x, y, batches, model, twin, opt = _two_batches_and_twin_models()
    seen: list[list[torch.Tensor]] = []

    def hook(o):
        seen.append([p.grad.clone() for p in model.parameters()])

    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    find_lr(model, opt, nn.functional.cross_entropy, batches, num_iter=10, scaler=scaler,
            before_step=hook, eval_batches=0, max_extra_iter=0)  # fmt: skip
    nn.functional.cross_entropy(twin(x[:32]), y[:32]).backward()
    _assert_grads_equal(seen[0], twin)


def test_a_tensor_lr_is_filled_with_each_swept_lr_during_the_sweep():
    """Code holding the tensor lr (a compiled step) sees the sweep's LR: the group keeps the
    same tensor, filled in place at each step."""
    x, y = make_data()
    model = nn.Linear(10, 2)
    lr = torch.tensor(0.01)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    seen: list[tuple[bool, float]] = []
    opt.register_step_pre_hook(
        lambda o, *_: seen.append((o.param_groups[0]["lr"] is lr, float(lr)))
    )
    r = find_lr(model, opt, nn.functional.cross_entropy, loader(x, y), num_iter=10,
                eval_batches=0, max_extra_iter=0)  # fmt: skip
    assert [s[0] for s in seen] == [True] * len(r.lrs)
    np.testing.assert_allclose([s[1] for s in seen], r.lrs, rtol=1e-6)
    assert opt.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(0.01)


def test_a_held_batch_the_step_skips_is_left_out_of_the_held_mean():
    x, y = make_data()
    torch.manual_seed(0)
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    val = [(x[:16], y[:16]), (x[16:32], y[16:32]), (x[32:48], y[32:48])]
    skip = val[1][0]  # the batches after it are still scored

    def step(m, b):
        return None if b[0] is skip else nn.functional.cross_entropy(m(b[0]), b[1])

    with torch.no_grad():
        kept = (val[0], val[2])
        expected0 = np.mean([nn.functional.cross_entropy(model(a), b).item() for a, b in kept])
    r = find_lr(model, opt, None, loader(x, y), step=step, num_iter=10, val_data=val,
                start_lr=1e-9, end_lr=1e-8)  # fmt: skip
    assert r.held_losses[0] == pytest.approx(expected0, rel=1e-5)


def test_each_probe_runs_a_schedule_free_optimizer_in_train_mode_without_warmup():
    sf = pytest.importorskip("schedulefree")
    x, y = make_data()
    model = nn.Linear(10, 2)
    opt = sf.SGDScheduleFree(model.parameters(), lr=0.01, warmup_steps=100)
    opt.eval()  # as after lrkit.torch.finalize
    seen: list[tuple[bool, int]] = []

    def step(m, b):
        if torch.is_grad_enabled():
            g = opt.param_groups[0]
            seen.append((g["train_mode"], g["warmup_steps"]))
        return nn.functional.cross_entropy(m(b[0]), b[1])

    r = find_lr(model, opt, None, loader(x, y), step=step, probe_data=[(x[:64], y[:64])],
                num_iter=10, end_lr=1e-2, eval_batches=0, max_extra_iter=0)  # fmt: skip
    assert r.probes is not None and len(seen) > 10 + 60
    assert set(seen) == {(True, 0)}
    g = opt.param_groups[0]
    assert g["train_mode"] is False and g["warmup_steps"] == 100


def test_a_schedule_free_group_added_in_eval_mode_is_switched_or_refused():
    sf = pytest.importorskip("schedulefree")
    x, y = make_data()
    model = nn.Linear(10, 2)
    opt = sf.SGDScheduleFree([model.weight], lr=0.01)
    opt.train()
    opt.add_param_group({"params": [model.bias]})  # a group that comes in eval mode
    assert [g["train_mode"] for g in opt.param_groups] == [True, False]
    with pytest.raises(ValueError, match=r"^optimizer: SGDScheduleFree is in eval mode"):
        find_lr(model, opt, nn.functional.cross_entropy, loader(x, y), num_iter=10,
                train_mode=False)  # fmt: skip
    seen: list[list[bool]] = []

    def step(m, b):
        seen.append([g["train_mode"] for g in opt.param_groups])
        return nn.functional.cross_entropy(m(b[0]), b[1])

    find_lr(model, opt, None, loader(x, y), step=step, num_iter=10, eval_batches=0)
    assert seen and all(flags == [True, True] for flags in seen)
    assert [g["train_mode"] for g in opt.param_groups] == [True, False]


def test_a_probe_data_loaders_own_generator_is_left_as_it_was():
    x, y = make_data()
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe_loader = loader(x[:64], y[:64], seed=5)  # shuffled by a generator of its own
    before = probe_loader.generator.get_state().clone()
    r = find_lr(model, opt, nn.functional.cross_entropy, loader(x, y), probe_data=probe_loader,
                num_iter=10, end_lr=1e-2, eval_batches=0, max_extra_iter=0)  # fmt: skip
    assert r.probes is not None
    assert torch.equal(probe_loader.generator.get_state(), before)


def test_a_function_returning_the_batches_is_refused_saying_why():
    """fit's form of data: the range test reads the batches themselves (it puts a
    DataLoader's own generator back, which it cannot see inside a function)."""
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for kwargs, name in (({}, "data"), ({"val_data": lambda: [(x, y)]}, "val_data")):
        data = (lambda: [(x, y)]) if name == "data" else [(x, y)]
        with pytest.raises(ValueError) as info:
            find_lr(model, opt, nn.MSELoss(), data, num_iter=10, **kwargs)
        assert str(info.value).startswith(f"{name} must be an iterable of batches (a list, ")
        assert str(info.value).endswith(
            "got function (a function returning the batches is lrkit.torch.fit's form: the "
            "range test reads the batches themselves, so that it can put a DataLoader's own "
            "generator back afterwards; pass the loader (with step=lambda model, batch: loss "
            "for another batch layout), a list or a generator of batches)"
        )


def test_without_val_data_the_first_eval_batches_of_data_are_the_held_set():
    x, y = make_data(n=160)
    batches = [(x[i : i + 16], y[i : i + 16], i // 16) for i in range(0, 160, 16)]
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    held, trained = [], []

    def step(model, batch):
        xb, yb, k = batch
        (trained if model.training else held).append(k)
        return nn.functional.cross_entropy(model(xb), yb)

    r = find_lr(model, opt, None, batches, step=step, num_iter=10, eval_batches=3,
                max_extra_iter=0, stop_early=False)  # fmt: skip
    assert len(r.held_losses) >= 2
    assert held == [0, 1, 2] * len(r.held_losses)
    assert trained[:7] == [3, 4, 5, 6, 7, 8, 9]


def test_without_step_a_loss_fn_is_required_and_named():
    x, y = make_data()
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError) as info:
        find_lr(model, opt, None, loader(x, y), num_iter=10)
    assert str(info.value) == (
        "loss_fn must be a callable loss_fn(output, target) when step is None"
    )
    assert opt.state_dict()["state"] == {}


def test_a_scaler_without_get_scale_is_refused_by_name():
    class NoGetScale:
        def scale(self, loss):
            return loss

        def step(self, opt):
            opt.step()

        def update(self):
            pass

    x, y = make_data()
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = NoGetScale()
    with pytest.raises(ValueError) as info:
        find_lr(model, opt, nn.functional.cross_entropy, loader(x, y), scaler=scaler)
    assert str(info.value) == (
        f"scaler must be a torch.amp.GradScaler instance or None, got {scaler!r}"
    )


def test_an_attribute_the_scaler_gains_during_the_sweep_is_removed():
    class NotingScaler(FakeScaler):
        def update(self):
            super().update()
            self.last_scale = self.scale_value

    x, y = make_data()
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = NotingScaler(skip_at={2})
    before = dict(vars(scaler))
    find_lr(model, opt, nn.functional.cross_entropy, loader(x, y), num_iter=10, scaler=scaler,
            eval_batches=0)  # fmt: skip
    assert vars(scaler) == before and not hasattr(scaler, "last_scale")


def test_the_skipped_batches_counted_in_the_error_include_every_accumulation_step():
    x, y = make_data()
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError) as info:
        find_lr(model, opt, None, loader(x, y), num_iter=10, step=lambda m, b: None,
                accumulation_steps=3, eval_batches=0, max_skipped=1)  # fmt: skip
    assert str(info.value) == (
        "step returned None (skip the batch) for 6 batches in a row (max_skipped=1): "
        "nothing to train on"
    )


def test_max_skipped_0_retries_no_step():
    x, y = make_data()
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"^step returned None \(skip the batch\) for 1 batches"):
        find_lr(model, opt, None, loader(x, y), num_iter=10, step=lambda m, b: None,
                eval_batches=0, max_skipped=0)  # fmt: skip
    with pytest.raises(ValueError, match=r"^max_skipped must be"):
        find_lr(model, opt, nn.functional.cross_entropy, loader(x, y), max_skipped=-1)


def test_a_window_step_returning_more_than_batches_and_step_is_refused():
    x, y = make_data()
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy

    def step(m, batch):
        return loss(m(batch[0]), batch[1])

    with pytest.raises(TypeError) as info:
        find_lr(model, opt, loss, loader(x, y), num_iter=10, window_step=lambda b: (b, step, 1))
    assert str(info.value) == (
        "window_step must return (batches, step): a list of batches and a callable "
        "step(model, batch) -> loss, got a tuple of 3 items"
    )


def test_warn_false_issues_no_warning_and_a_non_zero_rank_neither_warns_nor_writes(
    monkeypatch, tmp_path
):
    plt = pytest.importorskip("matplotlib.pyplot")
    import lrkit.torch._finder as F

    x, y = make_data()
    model = bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    flat = {"start_lr": 1e-9, "end_lr": 1e-8, "num_iter": 20}  # an unusable curve
    loss = nn.functional.cross_entropy
    for kw, rank0 in (({"warn": False}, True), ({}, False)):
        monkeypatch.setattr(F, "is_rank0", lambda rank0=rank0: rank0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", LRFinderWarning)
            r = find_lr(model, opt, loss, loader(x, y), **flat, **kw)
        assert not r.reliable and r.warnings
        r.plot(path=str(tmp_path / f"{rank0}.png"))
        plt.close("all")
        assert (tmp_path / f"{rank0}.png").exists() == rank0


def test_the_sweeps_pass_over_data_is_ended_when_the_step_raises():
    """The pass the sweep was drawing from is closed before the error reaches the caller
    (a loader's workers, a file a batch source holds), even while the traceback is kept."""

    class Batches:
        def __init__(self, batches):
            self.batches, self.open = batches, 0

        def __iter__(self):
            self.open += 1
            try:
                yield from self.batches
            finally:
                self.open -= 1

    x, y = make_data()
    data = Batches([(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)])
    model = nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def step(m, b):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return nn.functional.cross_entropy(m(b[0]), b[1])

    with pytest.raises(RuntimeError, match="boom") as info:
        find_lr(model, opt, None, data, step=step, num_iter=10, eval_batches=0)
    assert info.value is not None and data.open == 0
