"""``lrkit.torch.fit``: the one training loop, driven by ``lrkit.torch.scheduler``."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from lrkit import schedules as S  # noqa: E402
from lrkit.torch import History, evaluate, fit, scheduler, seed_all  # noqa: E402


def _task(n_batches: int = 4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16 * n_batches, 3, generator=g)
    y = (x[:, 0] > 0).long()
    data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, len(x), 16)]
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt, torch.nn.functional.cross_entropy, data


def test_fit_equals_the_hand_written_loop_bit_for_bit() -> None:
    schedule = S.onecycle(0.5, total_steps=10)
    model, opt, loss_fn, data = _task()
    hist = fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=10, schedule=schedule)
    ref_model, ref_opt, _, _ = _task()
    sched = scheduler(ref_opt, schedule)
    lrs = []
    for k in range(10):
        x, y = data[k % len(data)]
        ref_opt.zero_grad(set_to_none=True)
        loss = loss_fn(ref_model(x), y)
        lrs.append(ref_opt.param_groups[0]["lr"])
        loss.backward()
        ref_opt.step()
        sched.step()
    for a, b in zip(model.parameters(), ref_model.parameters()):
        assert torch.equal(a, b)
    assert hist.lrs == lrs == [float(schedule(k)) for k in range(10)]
    assert hist.steps == 10 and hist.epochs == 3 and not hist.diverged
    assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]


def test_fit_stops_before_the_update_of_a_nonfinite_loss() -> None:
    model, opt, _, data = _task()
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        value = torch.nn.functional.cross_entropy(out, y)
        return value * (math.nan if len(calls) == 3 else 1.0)

    hist = fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=10)
    before = [p.detach().clone() for p in model.parameters()]
    assert hist.diverged and len(hist.losses) == 3 and math.isnan(hist.losses[-1])
    assert hist.steps == 2 and hist.final_loss() == math.inf
    assert all(torch.isfinite(p).all() for p in before)


def test_epochs_steps_per_epoch_callbacks_and_data_factory() -> None:
    model, opt, loss_fn, data = _task()
    passes, epochs, steps = [], [], []

    def factory():
        passes.append(1)
        return data

    hist = fit(
        model,
        optimizer=opt,
        loss_fn=loss_fn,
        data=factory,
        epochs=3,
        steps_per_epoch=2,
        on_epoch=epochs.append,
        on_step=lambda k, v: steps.append(k),
    )
    assert len(passes) == 3 and epochs == [0, 1, 2] and steps == [1, 2, 3, 4, 5, 6]
    assert hist.steps == 6 and hist.epochs == 3 and isinstance(hist, History)


def test_bad_arguments_are_one_line_errors() -> None:
    model, opt, loss_fn, data = _task()
    with pytest.raises(ValueError, match="steps or epochs"):
        fit(model, optimizer=opt, loss_fn=loss_fn, data=data)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=0)
    with pytest.raises(ValueError, match="at least one"):
        fit(model, optimizer=opt, loss_fn=loss_fn, data=[], steps=3)
    with pytest.raises(ValueError, match="seed"):
        seed_all(-1)


def test_evaluate_restores_modes_and_weights_examples() -> None:
    model, _, loss_fn, data = _task()
    model.train()
    loss, acc = evaluate(model, loss_fn=loss_fn, data=data[:2])
    x = torch.cat([d[0] for d in data[:2]])
    y = torch.cat([d[1] for d in data[:2]])
    with torch.no_grad():
        assert loss == pytest.approx(float(loss_fn(model(x), y)), rel=1e-6)
        assert acc == float((model(x).argmax(1) == y).float().mean())
    assert model.training
