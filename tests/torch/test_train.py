"""``lrkit.torch.fit``: the one training loop, driven by ``lrkit.torch.scheduler``."""

from __future__ import annotations

import copy
import math
import random
import time
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lrkit import schedules as S  # noqa: E402
from lrkit.torch import (  # noqa: E402
    BatchLayoutError,
    DataRanOutWarning,
    History,
    evaluate,
    fit,
    scheduler,
    seed_all,
)


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


def _numbered_stream(pulled: list[int]):
    """Batch i is x = i everywhere; every batch drawn is logged in ``pulled``."""

    def gen():
        i = 0
        while True:
            pulled.append(i)
            yield torch.full((2, 3), float(i)), torch.zeros(2, dtype=torch.long)
            i += 1

    return gen()


def _recording_model(trained: list[int]):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    inner = model.forward
    model.forward = lambda x: (trained.append(int(x[0, 0])), inner(x))[1]  # type: ignore[method-assign]
    return model


def test_no_batch_is_drawn_and_dropped() -> None:
    loss_fn = torch.nn.functional.cross_entropy
    pulled, trained = [], []
    stream = _numbered_stream(pulled)
    model = _recording_model(trained)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    fit(model, optimizer=opt, loss_fn=loss_fn, data=stream, steps=3)
    fit(model, optimizer=opt, loss_fn=loss_fn, data=stream, steps=3)
    assert trained == pulled == [0, 1, 2, 3, 4, 5]
    pulled.clear(), trained.clear()
    stream = _numbered_stream(pulled)
    hist = fit(model, optimizer=opt, loss_fn=loss_fn, data=lambda: stream, epochs=3,
               steps_per_epoch=2)  # fmt: skip
    assert trained == pulled == [0, 1, 2, 3, 4, 5] and hist.epochs == 3
    pulled.clear(), trained.clear()
    fit(model, optimizer=opt, loss_fn=loss_fn, data=stream, epochs=2, steps_per_epoch=2)
    assert trained == pulled == [6, 7, 8, 9]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"data": None}, ValueError, r"^data must be an iterable of \(input, target\) batches"),
        ({"data": 5}, ValueError, r"^data must be an iterable"),
        ({"on_step": 5}, TypeError, r"^on_step must be a callable"),
        ({"on_epoch": "x"}, TypeError, r"^on_epoch must be a callable"),
        ({"on_step": lambda loss: None}, TypeError,
         r"^on_step must be a callable on_step\(step, loss\), taking 2 positional arguments; "
         r"got <lambda>\(loss\)$"),
        ({"on_epoch": lambda: None}, TypeError,
         r"^on_epoch must be a callable on_epoch\(epoch\), taking 1 positional argument; "),
        ({"loss_fn": lambda out: out}, TypeError, r"^loss_fn must be a callable loss_fn\(output, "),
        ({"optimizer": None}, ValueError, r"^optimizer must be a torch optimizer"),
        ({"loss_fn": 3}, TypeError, r"^loss_fn must be a callable"),
        ({"loss_fn": torch.nn.MSELoss}, TypeError,
         r"^loss_fn is the class torch\.nn\.modules\.loss\.MSELoss: give an instance, MSELoss"),
        ({"stop_on_nonfinite": "no"}, ValueError, r"^stop_on_nonfinite must be True or False"),
        ({"plateau": True}, ValueError,
         r"^schedule must not be a ReduceLROnPlateau: .*lrkit.feedback.ReduceOnPlateau"),
        ({"data": lambda a: []}, TypeError,
         r"^data must be a callable data\(\) -> batches \(a zero-argument callable\), taking 0 "),
        ({"data": lambda: 5}, ValueError,
         r"^data must be an iterable .*; the callable returned int$"),
        ({"schedule": ["constant(0.1)"] * 2}, ValueError,
         r"^schedule: a list needs one schedule per param group \(1\), got 2$"),
        ({"copy": True}, ValueError, r"^optimizer holds none of the parameters of model "),
    ],
)  # fmt: skip
def test_arguments_are_checked_before_the_model_changes(kwargs, error, message) -> None:
    model, opt, loss_fn, data = _task()
    before = [p.detach().clone() for p in model.parameters()]
    args = {"optimizer": opt, "loss_fn": loss_fn, "data": data, "steps": 2}
    if kwargs.pop("plateau", False):
        kwargs["schedule"] = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    if kwargs.pop("copy", False):  # an optimizer built for a copy of the model
        kwargs["optimizer"] = torch.optim.SGD(copy.deepcopy(model).parameters(), lr=0.1)
    with pytest.raises(error, match=message) as info:
        fit(model, **(args | kwargs))
    assert "\n" not in str(info.value)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_evaluate_refuses_data_without_a_batch() -> None:
    model, _, loss_fn, _ = _task()
    for empty in ([], iter([])):
        with pytest.raises(ValueError, match=r"^data must yield at least one batch, got none$"):
            evaluate(model, loss_fn=loss_fn, data=empty)
    with pytest.raises(ValueError, match=r"^data must be an iterable"):
        evaluate(model, loss_fn=loss_fn, data=None)


def test_history_lrs_are_the_lrs_radam_schedule_free_and_prodigy_step_with() -> None:
    pytest.importorskip("schedulefree")
    pytest.importorskip("prodigyopt")
    from lrkit.torch import prodigy, schedule_free

    _, _, loss_fn, data = _task()
    model = torch.nn.Linear(3, 2)
    opt = schedule_free(model.parameters(), kind="radam", lr=0.01)
    used = []
    hist = fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=8,
               on_step=lambda k, v: used.append(opt.param_groups[0]["scheduled_lr"]))  # fmt: skip
    assert hist.lrs == used and hist.lrs[0] == 0.0 and hist.lrs[-1] > 0
    opt = prodigy(model.parameters(), use_bias_correction=True)
    hist = fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=1)
    g = opt.param_groups[0]
    assert hist.lrs == [pytest.approx(g["d0"] * (1 - 0.999) ** 0.5 / (1 - 0.9), rel=1e-12)]


def test_fit_puts_a_schedule_free_optimizer_in_eval_mode_back_in_train_mode() -> None:
    """Training again after optimizer.eval() (or finalize) trains as if optimizer.train()
    had been called first (schedulefree itself raises a bare Exception)."""
    pytest.importorskip("schedulefree")
    from lrkit.torch import schedule_free

    _, _, loss_fn, data = _task()
    runs = []
    for switch in ("fit", "user"):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        opt = schedule_free(model.parameters(), lr=0.01)
        fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=3)
        opt.eval()
        if switch == "user":
            opt.train()
        hist = fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=3)
        assert all(g["train_mode"] for g in opt.param_groups)
        runs.append((hist.losses, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_fit_refuses_a_closure_optimizer_in_one_line():
    model = torch.nn.Linear(3, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = [(torch.randn(4, 3), torch.randn(4, 1))]
    opt = torch.optim.LBFGS(model.parameters())
    with pytest.raises(ValueError, match=r"^optimizer LBFGS needs a closure in step\(closure\)"):
        fit(model, optimizer=opt, loss_fn=torch.nn.functional.mse_loss, data=data, steps=1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_scheduler_of_another_optimizer_is_refused_before_the_model_changes() -> None:
    model, opt, loss_fn, data = _task()
    other = torch.optim.SGD(torch.nn.Linear(3, 2).parameters(), lr=0.1)
    sched = scheduler(other, S.cosine(0.1, total_steps=4))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError) as info:
        fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=2, schedule=sched)
    assert str(info.value) == (
        "schedule: the LRScheduler drives another optimizer (a SGD that is not the optimizer "
        "given to fit); build it on this optimizer, or pass an lrkit schedule or spec string"
    )
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert sched.current_step == 0 and opt.param_groups[0]["lr"] == 0.1


def test_a_schedule_of_no_form_fit_takes_is_refused_naming_every_form() -> None:
    model, opt, loss_fn, data = _task()
    for bad in (42, torch.optim.lr_scheduler.StepLR):  # a number, a scheduler class
        with pytest.raises(ValueError) as info:
            fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=2, schedule=bad)
        assert str(info.value) == (
            "schedule must be a lrkit schedule, a spec string, a to_dict() dict, a list of "
            f"them (one per param group) or an LRScheduler built on optimizer, got {bad!r}"
        )
    assert opt.param_groups[0]["lr"] == 0.1 and "initial_lr" not in opt.param_groups[0]


def test_a_loss_that_is_not_one_number_is_a_one_line_error() -> None:
    model, opt, _, data = _task()
    before = [p.detach().clone() for p in model.parameters()]

    def per_example(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(out, y, reduction="none")

    with pytest.raises(ValueError) as info:  # before: RuntimeError from float(loss)
        fit(model, optimizer=opt, loss_fn=per_example, data=data, steps=2)
    assert str(info.value) == (
        "loss_fn must return a scalar loss (one element, e.g. reduction='mean'), got a tensor "
        "of shape (16,)"
    )
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    with pytest.raises(ValueError) as info:
        fit(model, optimizer=opt, loss_fn=lambda o, y: per_example(o, y).mean().detach(),
            data=data, steps=2)  # fmt: skip
    assert str(info.value) == (  # what fit does, not the range test's words
        "loss_fn returned a loss that does not require grad (computed under torch.no_grad() or "
        "detached?): training needs a loss it can backpropagate"
    )
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))


@pytest.mark.parametrize(
    ("batch", "kind"),
    [
        ({"x": torch.zeros(4, 3), "y": torch.zeros(4, 1)}, "a dict"),
        ((torch.zeros(4, 3),), "a tuple of 1 item"),
        ((torch.zeros(4, 3), torch.zeros(4, 1), torch.zeros(4)), "a tuple of 3 items"),
        (torch.zeros(4, 2, 3), "a Tensor"),  # was read as sample 0 -> sample 1
    ],
)
def test_a_batch_that_is_not_x_y_is_refused_before_the_model_changes(batch, kind) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1).eval()
    w = model.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError) as e:
        fit(model, optimizer=opt, loss_fn=torch.nn.functional.mse_loss, data=[batch], steps=1)
    msg = str(e.value)
    assert msg.startswith(f"data must yield (x, y) batches for loss_fn(model(x), y), got {kind}; ")
    assert "map the batches to (x, y)" in msg and "step=" not in msg and "\n" not in msg
    assert model.training is False and torch.equal(model.weight, w) and opt.state == {}
    assert isinstance(e.value, BatchLayoutError)
    assert e.value.problem == f"data must yield (x, y) batches for loss_fn(model(x), y), got {kind}"
    assert e.value.advice == (
        "for another layout, map the batches to (x, y): "
        "data=lambda: ((b['x'], b['y']) for b in loader)"
    )


@pytest.mark.parametrize("model", [None, lambda x: x])
def test_a_model_that_is_not_a_module_is_refused_before_any_batch_is_drawn(model) -> None:
    _, opt, loss_fn, data = _task()
    stream = iter(data)
    with pytest.raises(ValueError) as info:  # an AttributeError after the first batch was drawn
        fit(model, optimizer=opt, loss_fn=loss_fn, data=stream, steps=2)
    kind = type(model).__name__
    assert str(info.value) == f"model must be a torch.nn.Module, got {kind}"
    assert next(stream) is data[0]  # nothing drawn


def test_a_one_shot_iterator_that_runs_out_ends_training_with_a_warning() -> None:
    model, opt, loss_fn, data = _task()
    with pytest.warns(RuntimeWarning) as caught:
        hist = fit(model, optimizer=opt, loss_fn=loss_fn, data=iter(data), steps=10)
    assert caught[0].category is DataRanOutWarning
    assert issubclass(DataRanOutWarning, RuntimeWarning)  # as before it had its own class
    assert str(caught[0].message) == (
        "fit: data ran out after 4 steps (1 pass; steps=10 asked for more): a one-shot "
        "iterator (a generator) yields its batches once; pass a list, a DataLoader or a "
        "function returning a new iterator"
    )
    assert len(hist.losses) == 4 and hist.epochs == 1  # what was trained is kept
    with pytest.raises(ValueError, match=r"^data must yield at least one \(input, target\)"):
        fit(model, optimizer=opt, loss_fn=loss_fn, data=iter([]), steps=10)


@pytest.mark.parametrize("data", [[{"x": 1}], []])
def test_a_failed_fit_leaves_the_optimizer_as_it_was(data) -> None:  # type: ignore[no-untyped-def]
    model, opt, loss_fn, _ = _task()
    before = [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups]
    with pytest.raises(ValueError):
        fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=3, schedule="constant(0.5)")
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == before
    with pytest.raises(ValueError, match="schedule"):  # a bad schedule: before any batch
        fit(model, optimizer=opt, loss_fn=loss_fn, data=iter([]), steps=3, schedule="nope(1)")


def test_a_loss_fn_that_fails_on_the_first_batch_leaves_the_optimizer_and_modes() -> None:
    model, opt, _, data = _task()
    model.eval()
    before = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]

    def per_example(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(out, y, reduction="none")

    with pytest.raises(ValueError):
        fit(model, optimizer=opt, loss_fn=per_example, data=data, steps=3,
            schedule="constant(0.5)")  # fmt: skip
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == before
    assert not model.training


@pytest.mark.parametrize("where", ["backward", "optimizer step"])
def test_a_first_step_that_fails_after_its_loss_leaves_the_optimizer_and_modes(where: str) -> None:
    """An error in the first backward (an in-place op autograd needs) or optimizer step puts
    back what a failing loss does: the LRs (no initial_lr left) and the modules' modes."""
    model, opt, loss_fn, data = _task()
    model.eval()
    before = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]

    def broken_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.sigmoid(out)
        h += 1  # in place on a value sigmoid's backward needs: fails in backward()
        return loss_fn(h, y)

    def failing_step(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("optimizer step failed")

    if where == "optimizer step":
        opt.step = failing_step  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="modified by an inplace|optimizer step failed"):
        fit(model, optimizer=opt, loss_fn=broken_loss if where == "backward" else loss_fn,
            data=data, steps=3, schedule="cosine(0.1, 3)")  # fmt: skip
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == before
    assert not model.training


def test_the_first_step_reads_the_schedules_lr_and_a_sequence_factory_is_data() -> None:
    """The scheduler sets the LR of step 0 before the first forward (a loss that reads it
    sees the schedule's); a factory may return a sequence read by __getitem__."""
    model, opt, loss_fn, data = _task()
    seen: list[float] = []

    def reading(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.append(opt.param_groups[0]["lr"])
        return loss_fn(out, y)

    class Batches:  # the old sequence protocol: __getitem__ until IndexError
        def __getitem__(self, i: int) -> Any:
            return data[i]

    hist = fit(model, optimizer=opt, loss_fn=reading, data=lambda: Batches(), steps=3,
               schedule="cosine(0.5, 3)")  # fmt: skip
    assert seen == hist.lrs == [S.cosine(0.5, total_steps=3)(t) for t in range(3)]

    class Broken:  # a loader whose own iteration fails: its error, not fit's
        def __iter__(self) -> Any:
            return iter(sorted(None))  # type: ignore[call-overload]

    for given in (Broken(), lambda: Broken()):
        with pytest.raises(TypeError, match=r"^'NoneType' object is not iterable$"):
            fit(model, optimizer=opt, loss_fn=loss_fn, data=given, steps=1)


def test_a_map_style_dataset_is_refused_given_or_returned() -> None:
    """A map-style Dataset's items are samples: refused as data and as what a data callable
    returns, alike (read as batches, it trained one sample per step); a sequence read by
    __getitem__ that is not a Dataset is batches either way."""
    model, opt, loss_fn, data = _task()
    ds = torch.utils.data.TensorDataset(*(torch.cat(t) for t in zip(*data, strict=True)))
    before = [p.detach().clone() for p in model.parameters()]
    for given, said in ((ds, "got TensorDataset"), (lambda: ds, "returned TensorDataset")):
        with pytest.raises(ValueError, match=rf"^data must be .*{said} \(a map-style Dataset "
                           r"holds samples: wrap it in a DataLoader\)$"):  # fmt: skip
            fit(model, optimizer=opt, loss_fn=loss_fn, data=given, steps=2)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))

    class Batches:  # the old sequence protocol: __getitem__ until IndexError
        def __getitem__(self, i: int) -> Any:
            return data[i]

    for given in (Batches(), lambda: Batches()):
        assert fit(model, optimizer=opt, loss_fn=loss_fn, data=given, steps=2).steps == 2


def test_history_final_loss_checks_its_fraction() -> None:
    hist = History(losses=[4.0, 3.0, 2.0, 1.0])
    assert hist.final_loss(0.5) == 1.5 and hist.final_loss(1) == 2.5
    for bad in (0, -1, 5, math.nan):
        with pytest.raises(ValueError, match=r"^fraction must be "):
            hist.final_loss(bad)


def test_evaluate_names_what_is_wrong_in_one_line() -> None:
    model, _, loss_fn, data = _task()
    x, y = data[0]
    with pytest.raises(BatchLayoutError, match=r"^data must yield \(x, y\) batches"):
        evaluate(model, loss_fn=loss_fn, data=[(x, y, y)])
    with pytest.raises(ValueError) as info:
        evaluate(model, loss_fn=torch.nn.CrossEntropyLoss(reduction="none"), data=data)
    assert str(info.value) == (
        "loss_fn must return a scalar loss (one element, e.g. reduction='mean'), got (16,)"
    )
    with pytest.raises(ValueError, match=r"^model must be a torch.nn.Module, got NoneType$"):
        evaluate(None, loss_fn=loss_fn, data=data)  # type: ignore[arg-type]
    loss, acc = evaluate(model, loss_fn=loss_fn, data=data)
    assert math.isfinite(loss) and 0.0 <= acc <= 1.0


def test_evaluate_takes_the_data_fit_takes_and_the_advice_its_error_gives() -> None:
    """The batch-layout error's advice (data=lambda: ((b['x'], b['y']) for b in loader))
    is fit's form of data: evaluate takes it too."""
    model, _, loss_fn, data = _task()
    loader = [{"x": x, "y": y} for x, y in data]
    with pytest.raises(BatchLayoutError) as info:
        evaluate(model, loss_fn=loss_fn, data=loader)
    assert "data=lambda: ((b['x'], b['y']) for b in loader)" in str(info.value)
    mapped = evaluate(model, loss_fn=loss_fn, data=lambda: ((b["x"], b["y"]) for b in loader))
    assert mapped == evaluate(model, loss_fn=loss_fn, data=data)
    with pytest.raises(ValueError, match=r"^data must be an iterable of \(input, target\) "
                       r"batches or a zero-argument callable returning one; the callable "
                       r"returned int$"):  # fmt: skip
        evaluate(model, loss_fn=loss_fn, data=lambda: 3)


def _second_loss_times(factor: float) -> Any:
    """A cross-entropy loss_fn whose second call's loss is multiplied by ``factor``."""
    calls = []

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        value = torch.nn.functional.cross_entropy(out, y)
        return value * (factor if len(calls) == 2 else 1.0)

    return loss_fn


def test_fit_with_stop_on_nonfinite_false_trains_through_a_nan_loss() -> None:
    model, opt, _, data = _task()
    loss_fn = _second_loss_times(math.nan)
    steps: list[int] = []
    hist = fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=4,
               stop_on_nonfinite=False, on_step=lambda k, v: steps.append(k))  # fmt: skip
    assert not hist.diverged and hist.steps == 4 and len(hist.losses) == 4
    assert math.isnan(hist.losses[1]) and steps == [1, 2, 3, 4]
    assert all(torch.isnan(p).all() for p in model.parameters())


def test_a_failed_first_step_puts_a_tensor_lr_back_in_the_same_tensor() -> None:
    """A tensor LR the schedule wrote into is the same object afterwards, with its value."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    lr = torch.tensor(0.1)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def failing(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        assert float(opt.param_groups[0]["lr"]) == 0.5  # the schedule's LR of step 0
        raise RuntimeError("loss failed")

    x, y = torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)
    with pytest.raises(RuntimeError, match="^loss failed$"):
        fit(model, optimizer=opt, loss_fn=failing, data=[(x, y)], steps=2,
            schedule="constant(0.5)")  # fmt: skip
    assert opt.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(0.1)
    assert "initial_lr" not in opt.param_groups[0]


def test_history_final_loss_of_a_short_run_is_its_last_loss() -> None:
    """A fraction of fewer steps than one still takes the last loss."""
    hist = History(losses=[4.0, 3.0, 2.0])
    assert hist.final_loss() == 2.0 and hist.final_loss(0.3) == 2.0
    assert hist.final_loss(0.7) == 2.5
    assert math.isnan(History().final_loss())


def test_evaluate_reports_a_nonfinite_loss_as_inf() -> None:
    model, _, _, data = _task()

    def nan_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(out, y) * math.nan

    loss, acc = evaluate(model, loss_fn=nan_loss, data=data)
    assert loss == math.inf and 0.0 <= acc <= 1.0


def test_seed_all_seeds_torch_numpy_and_python_random() -> None:
    def draws() -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), float(torch.rand(()))

    seed_all(123)
    first = draws()
    random.random(), np.random.rand(), torch.rand(())
    seed_all(123)
    assert draws() == first


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_evaluate_gives_no_accuracy_for_two_column_outputs_against_float_targets(dtype) -> None:
    """Two-column outputs scored against float targets (a regression that reads the first
    column) are not classification batches, even with targets that look like class indices:
    the accuracy is NaN, the loss the mean over the examples."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    x = torch.randn(8, 3)
    y = torch.tensor([0.0, 1.0] * 4, dtype=dtype)

    def first_column(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(out[:, 0].to(y.dtype), y)

    loss, acc = evaluate(model, loss_fn=first_column, data=[(x, y)])
    with torch.no_grad():
        expected = float(first_column(model(x), y))
    assert loss == expected and math.isnan(acc)


def test_evaluate_counts_a_batch_with_a_zero_dimensional_target_as_one_example() -> None:
    """A batch whose target is a 0-d tensor is one example: the loss is the mean over such
    batches, whatever the size of its input."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    data = [(torch.randn(i + 1, 3), torch.tensor(float(i))) for i in range(3)]

    def squared(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (out.sum() - y) ** 2

    loss, acc = evaluate(model, loss_fn=squared, data=data)
    with torch.no_grad():
        expected = sum(float(squared(model(x), y)) for x, y in data) / 3
    assert loss == expected and math.isnan(acc)


def test_a_failed_first_step_puts_a_schedule_free_optimizer_back_in_eval_mode() -> None:
    """A schedule-free optimizer in eval mode whose first step fails is put back in eval mode
    with the model's weights exactly as they were (optimizer.train() moved them)."""
    pytest.importorskip("schedulefree")
    from lrkit.torch import schedule_free

    model, _, loss_fn, data = _task()
    # at this LR, optimizer.train() then optimizer.eval() do not give these weights back exactly
    opt = schedule_free(model.parameters(), lr=1.0)
    fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=3)
    opt.eval()
    before = [p.detach().clone() for p in model.parameters()]

    def failing_step(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("optimizer step failed")

    opt.step = failing_step  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="optimizer step failed"):
        fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=3)
    assert not any(g["train_mode"] for g in opt.param_groups)
    assert all(torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before))


def test_fit_refuses_zero_epochs_in_one_line() -> None:
    model, opt, loss_fn, data = _task()
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        fit(model, optimizer=opt, loss_fn=loss_fn, data=data, epochs=0)


def test_history_final_loss_averages_the_last_tenth_by_default() -> None:
    hist = History(losses=[float(i) for i in range(20)])
    assert hist.final_loss() == 18.5 and hist.final_loss(0.1) == 18.5


def test_steps_per_epoch_below_one_is_refused_naming_it() -> None:
    model, opt, loss_fn, data = _task()
    stream = iter(data)
    with pytest.raises(ValueError, match=r"^steps_per_epoch must be an integer >= 1"):
        fit(model, optimizer=opt, loss_fn=loss_fn, data=stream, epochs=1, steps_per_epoch=0)
    assert next(stream) is data[0]  # nothing drawn


class _NoZeroGrad:
    def __init__(self, params: Any) -> None:
        self.param_groups = [{"params": list(params), "lr": 0.1}]

    def step(self) -> None:
        pass


class _NoParamGroups:
    def step(self) -> None:
        pass

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass


@pytest.mark.parametrize("kind", [_NoZeroGrad, _NoParamGroups])
def test_an_optimizer_without_zero_grad_or_param_groups_is_refused_naming_it(kind) -> None:
    model, _, loss_fn, data = _task()
    opt = kind(model.parameters()) if kind is _NoZeroGrad else kind()
    with pytest.raises(ValueError) as info:
        fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=2)
    assert str(info.value) == (
        "optimizer must be a torch optimizer (param_groups, step(), zero_grad()), "
        f"got {kind.__name__}"
    )


def test_fit_takes_a_schedule_as_its_to_dict_dict() -> None:
    schedule = S.cosine(0.5, total_steps=4)
    model, opt, loss_fn, data = _task()
    hist = fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=4,
               schedule=schedule.to_dict())  # fmt: skip
    assert hist.lrs == [float(schedule(k)) for k in range(4)]


def test_fit_stops_before_the_update_of_an_infinite_loss() -> None:
    model, opt, _, data = _task()
    hist = fit(model, optimizer=opt, loss_fn=_second_loss_times(math.inf), data=data, steps=10)
    assert hist.diverged and hist.losses[-1] == math.inf and hist.steps == 1


def test_fit_puts_the_model_in_train_mode() -> None:
    model, opt, loss_fn, data = _task()
    model.eval()
    fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=1)
    assert model.training


def test_on_epoch_is_called_for_a_last_pass_cut_short_by_steps() -> None:
    model, opt, loss_fn, data = _task()
    epochs: list[int] = []
    hist = fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=6, on_epoch=epochs.append)
    assert epochs == [0, 1] and hist.epochs == 2 and hist.steps == 6


def test_a_one_shot_iterator_that_runs_out_of_epochs_names_the_passes_and_epochs() -> None:
    model, opt, loss_fn, data = _task()
    stream = iter(data * 2)
    with pytest.warns(DataRanOutWarning) as caught:
        hist = fit(model, optimizer=opt, loss_fn=loss_fn, data=lambda: stream, epochs=5,
                   steps_per_epoch=4)  # fmt: skip
    assert str(caught[0].message).startswith(
        "fit: data ran out after 8 steps (2 passes; epochs=5 asked for more): "
    )
    assert caught[0].filename == __file__  # the warning points at the call of fit
    assert hist.epochs == 2 and hist.steps == 8
    with pytest.warns(DataRanOutWarning, match=r"\(1 pass; steps=10 asked for more\)"):
        fit(model, optimizer=opt, loss_fn=loss_fn, data=iter(data), steps=10, epochs=5)


def _mixed_modes_model() -> torch.nn.Module:
    """A model in train mode whose first layer is in eval mode."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.5))
    model.train()
    model[0].eval()
    return model


def _modes(model: torch.nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def test_an_interrupted_first_step_puts_back_the_optimizer_and_every_modules_mode() -> None:
    """A KeyboardInterrupt in the first step puts back what an error does, submodules'
    modes included."""
    _, _, _, data = _task()
    model = _mixed_modes_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]

    def interrupted(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(model, optimizer=opt, loss_fn=interrupted, data=data, steps=3,
            schedule="constant(0.5)")  # fmt: skip
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == before
    assert _modes(model) == [True, False, True]


def test_evaluate_runs_in_eval_mode_without_gradients_and_restores_every_modules_mode() -> None:
    _, _, loss_fn, data = _task()
    model = _mixed_modes_model()
    seen: list[tuple[bool, bool]] = []

    def recording(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.append((torch.is_grad_enabled(), any(_modes(model))))
        return loss_fn(out, y)

    loss, _ = evaluate(model, loss_fn=recording, data=data[:1])
    x, y = data[0]
    with torch.no_grad():
        assert loss == float(loss_fn(model[0](x), y))  # dropout off: the plain layer's output
    assert seen == [(False, False)] and _modes(model) == [True, False, True]


def test_evaluate_restores_the_modes_when_the_loss_fails() -> None:
    _, _, _, data = _task()
    model = _mixed_modes_model()

    def failing(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("loss failed")

    with pytest.raises(RuntimeError, match="^loss failed$"):
        evaluate(model, loss_fn=failing, data=data)
    assert _modes(model) == [True, False, True]


def test_evaluate_refuses_a_loss_fn_that_is_not_callable() -> None:
    model, _, _, data = _task()
    with pytest.raises(TypeError, match=r"^loss_fn must be a callable loss_fn\(output, target\)"):
        evaluate(model, loss_fn=3, data=data)  # type: ignore[arg-type]


def test_history_seconds_is_the_time_fit_took() -> None:
    model, opt, loss_fn, data = _task()
    before = time.perf_counter()
    seconds = fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=2).seconds
    assert 0 < seconds <= time.perf_counter() - before  # the clock fit reads


def test_a_schedule_list_of_the_wrong_length_is_refused_before_any_batch_is_drawn() -> None:
    model, opt, loss_fn, data = _task()
    stream = iter(data)
    with pytest.raises(ValueError, match=r"^schedule: a list needs one schedule per param group"):
        fit(model, optimizer=opt, loss_fn=loss_fn, data=stream, steps=2,
            schedule=["constant(0.1)"] * 2)  # fmt: skip
    assert next(stream) is data[0]  # nothing drawn


class _FirstBatchOnly(torch.nn.Module):
    """A linear layer plus a bias that only the first forward uses."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(3, 2)
        self.extra = torch.nn.Parameter(torch.zeros(2))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.linear(x) + self.extra if self.calls == 1 else self.linear(x)


def test_a_parameter_without_a_gradient_at_a_step_is_not_moved_by_momentum() -> None:
    """Gradients are cleared to None: a parameter the loss of a step does not use gets no
    update at that step, as in the loop with zero_grad(set_to_none=True)."""
    _, _, loss_fn, data = _task()
    model = _FirstBatchOnly()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=1)
    after_one = model.extra.detach().clone()
    fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=3)
    assert not torch.equal(after_one, torch.zeros(2)) and torch.equal(model.extra, after_one)
    assert model.extra.grad is None


def test_on_step_runs_after_the_scheduler_stepped() -> None:
    """When on_step(k, loss) runs, the step is complete: the scheduler has counted it and the
    optimizer holds the LR of the next step."""
    schedule = S.cosine(0.5, total_steps=4)
    model, opt, loss_fn, data = _task()
    sched = scheduler(opt, schedule)
    seen: list[tuple[int, int, float]] = []

    def record(k: int, loss: float) -> None:
        seen.append((k, sched.current_step, opt.param_groups[0]["lr"]))

    fit(model, optimizer=opt, loss_fn=loss_fn, data=data, steps=3, schedule=sched, on_step=record)
    assert seen == [(k, k, float(schedule(k))) for k in (1, 2, 3)]


def test_evaluate_gives_no_accuracy_for_outputs_that_are_not_two_dimensional() -> None:
    """Per-position class scores (batch, classes, length) against integer labels are not a
    2-d classification batch: the accuracy is NaN."""
    torch.manual_seed(0)
    model = torch.nn.Conv1d(3, 2, kernel_size=1)
    x = torch.randn(4, 3, 5)
    y = torch.ones(4, 5, dtype=torch.long)
    loss, acc = evaluate(model, loss_fn=torch.nn.functional.cross_entropy, data=[(x, y)])
    with torch.no_grad():
        assert loss == float(torch.nn.functional.cross_entropy(model(x), y))
    assert math.isnan(acc)
