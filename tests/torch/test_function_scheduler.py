"""``lrkit.torch.scheduler`` with ``S.function(fn, lr=...)``: PyTorch's ``LambdaLR`` (and
``MultiplicativeLR``) step for step, and a checkpoint that resumes it bit for bit although the
callable itself is not saved (as ``LambdaLR`` saves no lambda)."""

from __future__ import annotations

import io
import json
import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch.optim import lr_scheduler as TL  # noqa: E402

import lrkit.torch as lt  # noqa: E402
from lrkit import schedules as S  # noqa: E402


def warm(step: int) -> float:
    return min(1.0, (step + 1) / 10)


def hf_linear(step: int) -> float:
    # transformers' get_linear_schedule_with_warmup: 10 warmup steps, 50 training steps
    if step < 10:
        return float(step) / float(max(1, 10))
    return max(0.0, float(50 - step) / float(max(1, 50 - 10)))


LAMBDAS = {"warmup": warm, "hf_linear": hf_linear}


def _opt() -> torch.optim.Optimizer:
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    return torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.004}], lr=0.1, momentum=0.9)


def _run(make: Callable[[torch.optim.Optimizer], Any], n: int = 50) -> list[list[float]]:
    """The LRs of both groups at each of ``n`` steps of a real optimizer."""
    opt = _opt()
    sched = make(opt)
    out = []
    for _ in range(n):
        out.append([float(g["lr"]) for g in opt.param_groups])
        loss = sum((p**2).sum() for g in opt.param_groups for p in g["params"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("name", LAMBDAS)
def test_equal_to_lambdalr_over_50_steps_with_two_param_groups(name: str) -> None:
    fn = LAMBDAS[name]
    ref = _run(lambda o: TL.LambdaLR(o, fn))
    # one schedule per group, each at its group's lr: LambdaLR's base_lr * fn(step), exactly
    per_group = _run(lambda o: lt.scheduler(o, [S.function(fn, lr=0.1), S.function(fn, lr=0.004)]))
    assert per_group == ref
    # one schedule at the optimizer's lr: the other group follows its ratio (0.04x), to rounding
    ratios = _run(lambda o: lt.scheduler(o, S.function(fn, lr=0.1)))
    for k, (got, want) in enumerate(zip(ratios, ref)):
        assert got[0] == want[0], k
        assert got[1] == pytest.approx(want[1], rel=1e-15, abs=0.0), k
    assert ref[1] != ref[20]  # the lambdas do change the LR


def test_lambdalr_with_a_list_of_lambdas_is_one_function_per_group() -> None:
    ref = _run(lambda o: TL.LambdaLR(o, [warm, hf_linear]))
    got = _run(
        lambda o: lt.scheduler(o, [S.function(warm, lr=0.1), S.function(hf_linear, lr=0.004)])
    )
    assert got == ref


def test_multiplicativelr_is_a_function_of_the_running_product() -> None:
    def factor(step: int) -> float:
        return 0.95 if step % 3 else 0.9

    def running(step: int) -> float:  # 0.1 * factor(1) * ... * factor(step), in torch's order
        lr = 0.1
        for i in range(1, step + 1):
            lr = lr * factor(i)
        return lr

    def one_group() -> torch.optim.Optimizer:
        return torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)

    opt, ref_opt = one_group(), one_group()
    sched = lt.scheduler(opt, S.function(running, lr=1.0))
    ref = TL.MultiplicativeLR(ref_opt, factor)
    for k in range(50):
        assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"], k
        opt.step(), ref_opt.step()
        sched.step(), ref.step()


def test_resume_continues_bit_for_bit_without_saving_the_callable() -> None:
    full = _run(lambda o: lt.scheduler(o, S.function(hf_linear, lr=0.1)))

    opt = _opt()
    sched = lt.scheduler(opt, S.function(hf_linear, lr=0.1))
    for _ in range(20):
        opt.step()
        sched.step()
    state = sched.state_dict()
    assert state["schedules"] == [None, None] and state["last_epoch"] == 20
    json.dumps(state)  # no callable in it
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    opt2 = _opt()
    # the callable comes from code again (here an equal one, not the same object)
    resumed = lt.scheduler(opt2, S.function(lambda s: hf_linear(s), lr=0.1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same kind of schedule: nothing to warn about
        resumed.load_state_dict(saved)
    lrs = []
    for _ in range(30):
        lrs.append([float(g["lr"]) for g in opt2.param_groups])
        opt2.step()
        resumed.step()
    assert lrs == full[20:]


def test_hyperparams_driven_by_a_function_are_saved_as_none() -> None:
    opt = _opt()
    sched = lt.scheduler(
        opt, S.cosine(0.1, total_steps=10), momentum=S.function(lambda t: 0.9, lr=1.0)
    )
    state = sched.state_dict()
    assert state["hyperparams"] == {"momentum": None}
    assert state["schedules"][0] == S.cosine(0.1, total_steps=10).to_dict()


def test_a_checkpoint_of_another_schedule_warns() -> None:
    opt = _opt()
    state = lt.scheduler(opt, S.cosine(0.1, total_steps=10)).state_dict()
    other = lt.scheduler(_opt(), S.function(warm, lr=0.1))
    with pytest.warns(UserWarning, match="different schedule"):
        other.load_state_dict(state)


def test_a_nan_from_fn_stops_the_scheduler_in_one_line() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    sched = lt.scheduler(opt, S.function(lambda t: math.nan if t == 1500 else 1.0, lr=0.1))
    sched.load_state_dict({**sched.state_dict(), "last_epoch": 1498})
    sched.step()
    with pytest.raises(
        ValueError, match=r"^fn must return a finite real number, got nan at step 1500"
    ):
        sched.step()


def _lookup(n: int, seen: list[int]) -> Callable[[int], float]:
    """A ``LambdaLR`` lambda that is a lookup table, good for an ``n``-step run (the steps
    ``0..n``, the last one set by the run's last ``step()``)."""
    factors = [1.0 - i / n for i in range(n + 1)]

    def lr_lambda(step: int) -> float:
        seen.append(step)
        return factors[step]

    return lr_lambda


def test_a_lookup_table_lambda_is_taken_as_lambdalr_takes_it() -> None:
    seen: list[int] = []
    fn = _lookup(300, seen)
    ref = _run(lambda o: TL.LambdaLR(o, fn), n=300)
    seen.clear()
    per_group = [S.function(fn, lr=0.1), S.function(fn, lr=0.004)]
    got = _run(lambda o: lt.scheduler(o, per_group), n=300)
    assert got == ref and max(seen) == 300  # steps 0..300, as LambdaLR calls it
    # at construction: step 0 only, as LambdaLR; with a length, the steps 0..length only
    seen.clear()
    lt.scheduler(_opt(), S.function(fn, lr=0.1))
    assert seen == [0]
    seen.clear()
    lt.scheduler(_opt(), S.function(fn, lr=0.1, length=300))
    assert max(seen) == 300


def test_a_negative_lr_from_a_function_without_length_stops_the_step_that_sets_it() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    sched = lt.scheduler(opt, S.function(lambda t: 1.0 - t / 10, lr=0.1))  # not checked
    for _ in range(10):
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.0
    with pytest.raises(
        ValueError,
        match=r"^schedule: the learning rate must be >= 0, got -0\.01\d* at step 11 \(the "
        r"schedule is negative at a step not checked when the scheduler was built\)$",
    ):
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.0  # the refused step changed nothing


def test_a_scheduler_refused_at_step_0_leaves_the_param_groups_as_they_were() -> None:
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([{"params": [a]}, {"params": [b]}], lr=torch.tensor(0.01))
    shared = opt.param_groups[0]["lr"]
    assert opt.param_groups[1]["lr"] is shared  # torch gives both groups the defaults' tensor
    with pytest.raises(ValueError) as info:
        lt.scheduler(opt, S.function(lambda t: -1.0, lr=0.1))
    # built at step 0: no word of steps left unchecked
    assert str(info.value) == "schedule: the learning rate must be >= 0, got -0.1 at step 0"
    for g in opt.param_groups:
        assert g["lr"] is shared and "initial_lr" not in g
    assert shared.item() == pytest.approx(0.01)


def test_group_lrs_with_the_default_optimizer_lr_look_within_the_functions_length() -> None:
    def opt() -> torch.optim.Optimizer:
        a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
        return torch.optim.Adam([{"params": [a], "lr": 0.01}, {"params": [b], "lr": 0.1}])

    seen: list[int] = []
    fn = _lookup(300, seen)
    with pytest.raises(ValueError, match=r"the schedule, which peaks at 0\.5; pass lr="):
        lt.scheduler(opt(), S.function(fn, lr=0.5, length=300))
    assert max(seen) == 300
    seen.clear()
    # without a length its peak is not looked for: refused all the same, without one
    with pytest.raises(ValueError, match=r"10x, 100x the schedule; pass lr= to the optimizer"):
        lt.scheduler(opt(), S.function(fn, lr=0.5))
    assert seen == []
    lt.scheduler(opt(), S.function(fn, lr=1e-3, length=300))  # peaks at the optimizer's lr
