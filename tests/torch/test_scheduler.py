"""The PyTorch adapter: equal to PyTorch's own schedulers step for step, multi-group,
resume, momentum, and a real training loop."""

from __future__ import annotations

import contextlib
import copy
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch.optim import lr_scheduler as TL  # noqa: E402

import lrkit.torch as lt  # noqa: E402
from lrkit import schedules as S  # noqa: E402

REL = 1e-9


def _opt(lr: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    p = torch.nn.Parameter(torch.zeros(2))
    return torch.optim.SGD([p], lr=lr, momentum=momentum)


def _torch_lrs(make: Callable[[torch.optim.Optimizer], Any], lr: float, n: int) -> list[float]:
    opt = _opt(lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sch = make(opt)
        out = []
        for _ in range(n):
            out.append(float(opt.param_groups[0]["lr"]))
            opt.step()
            sch.step()
    return out


def _ours(schedule: S.Schedule, lr: float, n: int) -> list[float]:
    opt = _opt(lr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no call-order (or any) warnings
        sch = lt.scheduler(opt, schedule)
        out = []
        for _ in range(n):
            out.append(float(opt.param_groups[0]["lr"]))
            opt.step()
            sch.step()
    return out


def _assert_same(ours: list[float], ref: list[float], scale: float) -> None:
    assert len(ours) == len(ref)
    for k, (a, b) in enumerate(zip(ours, ref)):
        assert abs(a - b) <= REL * abs(b) + 1e-15 * scale, (k, a, b)


lrs = st.floats(1e-5, 5.0)


def test_constantlr_sequentiallr_and_chainedscheduler_are_join_and_mul() -> None:
    # docs/parity.md: ConstantLR is a join of two constants, SequentialLR a join, and a
    # ChainedScheduler the product of the first scheduler's factor with the second
    lr, n = 0.1, 60
    ref = _torch_lrs(lambda o: TL.ConstantLR(o, factor=0.5, total_iters=5), lr, n)
    ours = S.join([S.constant(lr * 0.5), S.constant(lr)], boundaries=[5])
    _assert_same(_ours(ours, lr, n), ref, lr)
    ref = _torch_lrs(
        lambda o: TL.SequentialLR(
            o, [TL.LinearLR(o, 0.1, 1.0, 10), TL.CosineAnnealingLR(o, 30)], milestones=[10]
        ),
        lr,
        40,
    )
    ours = S.join(
        [S.linear(lr * 0.1, end_lr=lr, total_steps=10), S.cosine(lr, total_steps=30)],
        boundaries=[10],
    )
    _assert_same(_ours(ours, lr, 40), ref, lr)
    ref = _torch_lrs(
        lambda o: TL.ChainedScheduler([TL.ConstantLR(o, 0.5, 5), TL.ExponentialLR(o, 0.9)]), lr, n
    )
    factor = S.join([S.constant(0.5), S.constant(1.0)], boundaries=[5])
    _assert_same(_ours(S.mul(factor, S.exponential(lr, gamma=0.9)), lr, n), ref, lr)


def test_absolute_lr_arguments_of_pytorch_give_one_schedule_per_group() -> None:
    # OneCycleLR's max_lr, CyclicLR's base_lr/max_lr and eta_min are the same for every group in
    # PyTorch: one schedule per group gives its values (group ratios would scale them)
    def two_groups() -> torch.optim.Optimizer:
        a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
        return torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.01}], lr=0.1)

    cases = [
        (
            lambda o: TL.OneCycleLR(o, max_lr=0.1, total_steps=50, cycle_momentum=False),
            [S.onecycle(0.1, total_steps=50)] * 2,
        ),
        (
            lambda o: TL.CosineAnnealingLR(o, T_max=50, eta_min=1e-3),
            [
                S.cosine(0.1, total_steps=50, eta_min=1e-3),
                S.cosine(0.01, total_steps=50, eta_min=1e-3),
            ],
        ),
    ]
    for make, ours in cases:
        o1, o2 = two_groups(), two_groups()
        ref_sched, sched = make(o1), lt.scheduler(o2, ours)
        for k in range(50):
            for g1, g2 in zip(o1.param_groups, o2.param_groups):
                assert g2["lr"] == pytest.approx(g1["lr"], rel=1e-12, abs=1e-15), k
            o1.step(), o2.step()
            ref_sched.step(), sched.step()


@settings(max_examples=25, deadline=None)
@given(lr=lrs, step_size=st.integers(1, 40), gamma=st.floats(0.05, 1.0))
def test_step_equals_steplr(lr: float, step_size: int, gamma: float) -> None:
    ref = _torch_lrs(lambda o: TL.StepLR(o, step_size, gamma), lr, 300)
    _assert_same(_ours(S.step(lr, step_size=step_size, gamma=gamma), lr, 300), ref, lr)


@settings(max_examples=25, deadline=None)
@given(
    lr=lrs,
    milestones=st.lists(st.integers(0, 250), min_size=1, max_size=6).map(sorted),
    gamma=st.floats(0.05, 1.0),
)
@example(lr=0.1, milestones=[0, 0, 7], gamma=0.5)  # a milestone 0 applies from step 0
def test_multistep_equals_multisteplr(lr: float, milestones: list[int], gamma: float) -> None:
    ref = _torch_lrs(lambda o: TL.MultiStepLR(o, milestones, gamma), lr, 300)
    _assert_same(_ours(S.multistep(lr, milestones=milestones, gamma=gamma), lr, 300), ref, lr)


@settings(max_examples=25, deadline=None)
@given(lr=lrs, gamma=st.floats(0.9, 1.0))
def test_exponential_equals_exponentiallr(lr: float, gamma: float) -> None:
    ref = _torch_lrs(lambda o: TL.ExponentialLR(o, gamma), lr, 400)
    _assert_same(_ours(S.exponential(lr, gamma=gamma), lr, 400), ref, lr)


@settings(max_examples=25, deadline=None)
@given(lr=lrs, total=st.integers(1, 200), power=st.floats(0.25, 4.0))
def test_polynomial_equals_polynomiallr(lr: float, total: int, power: float) -> None:
    n = total + 30
    ref = _torch_lrs(lambda o: TL.PolynomialLR(o, total_iters=total, power=power), lr, n)
    _assert_same(_ours(S.polynomial(lr, total_steps=total, power=power), lr, n), ref, lr)


@settings(max_examples=25, deadline=None)
@given(lr=lrs, sf=st.floats(0.01, 1.0), ef=st.floats(0.0, 1.0), total=st.integers(1, 200))
def test_linear_equals_linearlr(lr: float, sf: float, ef: float, total: int) -> None:
    n = total + 30
    ref = _torch_lrs(
        lambda o: TL.LinearLR(o, start_factor=sf, end_factor=ef, total_iters=total), lr, n
    )
    _assert_same(_ours(S.linear(lr * sf, end_lr=lr * ef, total_steps=total), lr, n), ref, lr)


@settings(max_examples=25, deadline=None)
@given(lr=lrs, total=st.integers(1, 300), frac=st.floats(0.0, 0.9))
def test_cosine_equals_cosineannealinglr(lr: float, total: int, frac: float) -> None:
    eta = lr * frac
    n = total + 1  # PyTorch's curve rises again after T_max; ours holds eta_min
    ref = _torch_lrs(lambda o: TL.CosineAnnealingLR(o, T_max=total, eta_min=eta), lr, n)
    _assert_same(_ours(S.cosine(lr, total_steps=total, eta_min=eta), lr, n), ref, lr)


@settings(max_examples=25, deadline=None)
@given(lr=lrs, T0=st.integers(1, 40), mult=st.integers(1, 3), frac=st.floats(0.0, 0.9))
def test_restarts_equals_warmrestarts(lr: float, T0: int, mult: int, frac: float) -> None:
    eta = lr * frac
    ref = _torch_lrs(
        lambda o: TL.CosineAnnealingWarmRestarts(o, T_0=T0, T_mult=mult, eta_min=eta), lr, 500
    )
    _assert_same(_ours(S.cosine_restarts(lr, T_0=T0, T_mult=mult, eta_min=eta), lr, 500), ref, lr)


@settings(max_examples=30, deadline=None)
@given(
    base=st.floats(1e-5, 0.5),
    ratio=st.floats(1.0, 50.0),
    up=st.integers(1, 60),
    down=st.one_of(st.none(), st.integers(0, 60)),  # 0: PyTorch's sawtooth
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
    gamma=st.floats(0.98, 1.0),
)
@example(base=0.01, ratio=10.0, up=4, down=0, mode="exp_range", gamma=0.99)
def test_cyclic_equals_cycliclr(
    base: float, ratio: float, up: int, down: int | None, mode: str, gamma: float
) -> None:
    mx = base * ratio
    ref = _torch_lrs(
        lambda o: TL.CyclicLR(o, base, mx, up, down, mode=mode, gamma=gamma, cycle_momentum=False),
        base,
        400,
    )
    _assert_same(
        _ours(
            S.cyclic(base, max_lr=mx, step_size_up=up, step_size_down=down, mode=mode, gamma=gamma),
            base,
            400,
        ),
        ref,
        mx,
    )


@settings(max_examples=30, deadline=None)
@given(
    max_lr=lrs,
    total=st.integers(20, 400),
    pct=st.floats(0.1, 0.45),
    strategy=st.sampled_from(["cos", "linear"]),
    div=st.floats(2.0, 100.0),
    fdiv=st.floats(10.0, 1e5),
    three=st.booleans(),
)
def test_onecycle_equals_onecyclelr(
    max_lr: float, total: int, pct: float, strategy: str, div: float, fdiv: float, three: bool
) -> None:
    kw = dict(
        pct_start=pct,
        anneal_strategy=strategy,
        div_factor=div,
        final_div_factor=fdiv,
        three_phase=three,
    )
    ref_opt = _opt(max_lr)
    ref = TL.OneCycleLR(ref_opt, max_lr, total_steps=total, **kw)  # type: ignore[arg-type]
    opt = _opt(max_lr)
    sch = lt.scheduler(
        opt,
        S.onecycle(max_lr, total_steps=total, **kw),  # type: ignore[arg-type]
        momentum=S.onecycle_momentum(
            total, pct_start=pct, anneal_strategy=strategy, three_phase=three
        ),
    )
    for k in range(total):
        a, b = opt.param_groups[0], ref_opt.param_groups[0]
        assert abs(a["lr"] - b["lr"]) <= REL * b["lr"], (k, a["lr"], b["lr"])
        assert abs(a["momentum"] - b["momentum"]) <= 1e-12, k
        opt.step()
        ref_opt.step()
        sch.step()
        ref.step()


def test_constructor_sets_step_zero_and_k_steps_give_step_k() -> None:
    s = S.exponential(0.5, gamma=0.9)
    opt = _opt(123.0)  # the optimizer's own value is overwritten by the schedule's
    sch = lt.scheduler(opt, s)
    assert opt.param_groups[0]["lr"] == s(0) and sch.current_step == 0
    for k in range(1, 6):
        sch.step()
        assert opt.param_groups[0]["lr"] == s(k) == sch.get_last_lr()[0]
    sch.step(20)
    assert opt.param_groups[0]["lr"] == s(20)


def test_is_a_torch_lrscheduler() -> None:
    sch = lt.scheduler(_opt(0.1), "cosine(0.1, 100)")
    assert isinstance(sch, TL.LRScheduler)
    assert sch.schedules[0] == S.cosine(0.1, total_steps=100)


def test_groups_follow_their_ratio_and_lists() -> None:
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.25}], lr=0.1)
    s = S.cosine(1.0, total_steps=50)
    sch = lt.scheduler(opt, s)
    for k in range(50):
        assert opt.param_groups[0]["lr"] == s(k)
        assert opt.param_groups[1]["lr"] == pytest.approx(2.5 * s(k), rel=1e-15)
        sch.step()
    opt2 = torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1)
    s2 = [S.constant(0.3), S.linear(0.0, end_lr=1.0, total_steps=10)]
    sch2 = lt.scheduler(opt2, s2)
    sch2.step(5)
    assert [g["lr"] for g in opt2.param_groups] == [0.3, 0.5]
    with pytest.raises(ValueError, match="one schedule per param group"):
        lt.scheduler(opt2, [S.constant(0.1)])


def test_resume_is_exact_and_ignores_the_optimizers_lr() -> None:
    torch.manual_seed(0)
    s = S.with_warmup(S.cosine_restarts(0.1, T_0=15, T_mult=2), warmup_steps=10)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(
        [{"params": [model.weight]}, {"params": [model.bias], "lr": 0.02}], lr=0.01, momentum=0.9
    )
    sch = lt.scheduler(opt, s)
    full = []
    ckpt: dict[str, Any] = {}
    for k in range(120):
        if k == 37:
            ckpt = copy.deepcopy(sch.state_dict())
        full.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sch.step()
    # a fresh optimizer whose lrs are garbage: the checkpoint alone restores everything
    model2 = torch.nn.Linear(4, 1)
    opt2 = torch.optim.SGD(
        [{"params": [model2.weight]}, {"params": [model2.bias], "lr": 0.02}], lr=0.01
    )
    sch2 = lt.scheduler(opt2, s)
    for g in opt2.param_groups:
        g["lr"] = 999.0
    sch2.load_state_dict(ckpt)
    resumed = []
    for _ in range(37, 120):
        resumed.append([g["lr"] for g in opt2.param_groups])
        opt2.step()
        sch2.step()
    assert resumed == full[37:]


def test_torch_save_round_trip(tmp_path: Any) -> None:
    opt = _opt(0.1)
    sch = lt.scheduler(opt, S.onecycle(0.1, total_steps=100))
    for _ in range(13):
        sch.step()
    torch.save(sch.state_dict(), tmp_path / "s.pt")
    opt2 = _opt(0.1)
    sch2 = lt.scheduler(opt2, S.onecycle(0.1, total_steps=100))
    sch2.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert sch2.current_step == 13 and opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_momentum_drives_adam_beta1_and_other_hyperparams() -> None:
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([p], lr=1e-3, betas=(0.9, 0.999), weight_decay=0.1)
    m = S.onecycle_momentum(100)
    wd = S.linear(0.1, end_lr=0.0, total_steps=100)
    sch = lt.scheduler(
        opt, S.onecycle(1e-3, total_steps=100), momentum=m, hyperparams={"weight_decay": wd}
    )
    sch.step(30)
    g = opt.param_groups[0]
    assert g["betas"] == (m(30), 0.999) and g["weight_decay"] == wd(30)
    with pytest.raises(ValueError, match="hyperparams"):
        lt.scheduler(opt, S.constant(0.1), hyperparams={"nesterov_x": wd})
    with pytest.raises(ValueError, match="momentum"):
        lt.scheduler(torch.optim.Adagrad([p], lr=0.1), S.constant(0.1), momentum=m)


def test_tensor_lr_is_updated_in_place() -> None:
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([p], lr=torch.tensor(0.01))
    lr_tensor = opt.param_groups[0]["lr"]
    sch = lt.scheduler(opt, S.exponential(0.01, gamma=0.5))
    sch.step()
    assert opt.param_groups[0]["lr"] is lr_tensor
    assert torch.equal(lr_tensor, torch.tensor(0.005))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="optimizer"):
        lt.scheduler("sgd", S.constant(0.1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="schedule"):
        lt.scheduler(_opt(0.1), 0.1)
    with pytest.raises(ValueError, match="epoch"):
        lt.scheduler(_opt(0.1), S.constant(0.1)).step(-1)
    with pytest.raises(ValueError, match="feedback"):
        lt.scheduler(_opt(0.1), S.constant(0.1)).report(1.0)
    with pytest.raises(ValueError, match="feedback"):
        lt.scheduler(_opt(0.1), S.constant(0.1), feedback=object())
    # PyTorch's step(epoch + i / iters) for CosineAnnealingWarmRestarts: steps are batches here
    sched = lt.scheduler(_opt(0.1), S.cosine_restarts(0.1, T_0=10))
    with pytest.raises(
        ValueError, match=r"^step\(\) takes no metric or fractional epoch, got 2\.5"
    ) as e:
        sched.step(2.5)
    assert "count the schedule in batches (T_0 * iters)" in str(e.value)
    assert "\n" not in str(e.value) and sched.last_epoch == 0


def test_real_training_loop_learns() -> None:
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    w_true = torch.randn(8, 1)
    y = x @ w_true + 0.01 * torch.randn(256, 1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    total = 200
    s = S.onecycle(0.05, total_steps=total)
    sch = lt.scheduler(opt, s, momentum=S.onecycle_momentum(total))
    seen = []
    first = last = 0.0
    for k in range(total):
        idx = torch.randint(0, 256, (32,))
        loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen.append(opt.param_groups[0]["lr"])
        sch.step()
        if k == 0:
            first = loss.item()
        last = loss.item()
    assert seen == [s(k) for k in range(total)]
    assert last < 0.1 * first


def test_feedback_assigned_later_takes_effect() -> None:
    from lrkit.feedback import Multiplier

    opt = _opt(0.1)
    s = S.cosine(0.1, total_steps=100)
    sch = lt.scheduler(opt, s)
    m = Multiplier(0.5)
    sch.feedback = m
    sch.step()
    assert opt.param_groups[0]["lr"] == s(1) * 0.5
    sch.feedback = None
    sch.refresh()
    assert opt.param_groups[0]["lr"] == s(1)
    with pytest.raises(ValueError, match="feedback"):
        sch.feedback = 3.0


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.*")  # torch's compiler's own
@pytest.mark.parametrize("tensor", [True, False])
def test_step_inside_a_compiled_function_runs_outside_the_graph(tensor) -> None:
    """A train step compiled with the scheduler's step() inside: as many graphs as with
    PyTorch's own scheduler there (traced, each step's LR was a constant of the graph and the
    step was compiled again at every step), at the schedule's LRs."""
    import torch._dynamo

    def graphs(make_scheduler: Callable[[Any], Any]) -> tuple[int, list[float]]:
        torch._dynamo.reset()
        torch.manual_seed(0)
        compiled = [0]

        def backend(gm: Any, example: Any) -> Any:
            compiled[0] += 1
            return gm.forward

        model = torch.nn.Linear(4, 2)
        lr = torch.tensor(0.01) if tensor else 0.01
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        sched = make_scheduler(opt)

        @torch.compile(backend=backend)
        def train_step(x: Any) -> Any:
            loss = model(x).pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            sched.step()
            return loss

        lrs = []
        for _ in range(12):
            train_step(torch.randn(8, 4))
            lrs.append(float(opt.param_groups[0]["lr"]))
        return compiled[0], lrs

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        theirs, _ = graphs(lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, 30))
        n = len(caught)
        ours, lrs = graphs(lambda opt: lt.scheduler(opt, S.cosine(0.01, total_steps=30)))
    assert ours == theirs <= 3
    # no warning PyTorch's own scheduler does not draw (a functools cache drew one)
    said = [{str(w.message) for w in part} for part in (caught[:n], caught[n:])]
    assert said[1] <= said[0], said[1] - said[0]
    expected = [S.cosine(0.01, total_steps=30)(t) for t in range(1, 13)]
    if tensor:  # a float32 tensor holds each value rounded once
        expected = [float(np.float32(v)) for v in expected]
    assert lrs == expected
    torch._dynamo.reset()


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.*")  # torch's compiler's own
def test_a_warning_of_a_step_inside_a_compiled_function_points_at_the_users_line() -> None:
    import torch._dynamo

    torch._dynamo.reset()
    opt = _opt(0.1)
    sched = lt.scheduler(opt, S.cosine(0.1, total_steps=100))

    @torch.compile(backend="eager")
    def step() -> None:
        sched.step()

    step()
    opt.param_groups[0]["lr"] = 0.5  # a hand edit between two steps
    with pytest.warns(UserWarning, match="LR changed between two steps") as rec:
        step()
    assert rec[0].filename == __file__  # the compiled function's line, not torch's wrapper
    torch._dynamo.reset()


def test_an_integer_tensor_lr_is_refused_before_anything_changes() -> None:
    """An integer tensor holds every LR set in it cut to an integer (0.1 as 0): the weights
    would never move while get_last_lr() reported the schedule's values."""
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=torch.tensor(1))
    message = (
        "optimizer: param group 0's lr is a tensor of torch.int64, which holds every LR set in "
        "it cut to an integer; give a floating-point tensor (torch.tensor(1.0))"
    )
    for make in (
        lambda: lt.scheduler(opt, S.cosine(0.1, total_steps=10)),
        lambda: lt.find_lr(model, opt, torch.nn.functional.mse_loss, [(torch.ones(1, 2),) * 2]),
        lambda: lt.DivergenceGuard(model, optimizer=opt),
    ):
        with pytest.raises(ValueError) as info:
            make()
        assert str(info.value) == message
        assert opt.param_groups[0]["lr"].item() == 1 and "initial_lr" not in opt.param_groups[0]
    # a tensor that requires grad (an LR learned by gradients, differentiable=True): the steps
    # would set it in place
    learned = torch.tensor(0.01, requires_grad=True)
    opt = torch.optim.SGD(model.parameters(), lr=learned, differentiable=True)
    for make in (
        lambda: lt.scheduler(opt, S.cosine(0.1, total_steps=10)),
        lambda: lt.find_lr(model, opt, torch.nn.functional.mse_loss, [(torch.ones(1, 2),) * 2]),
        lambda: lt.DivergenceGuard(model, optimizer=opt),
    ):
        with pytest.raises(ValueError) as info:
            make()
        assert str(info.value) == (
            "optimizer: param group 0's lr is a tensor that requires grad (an LR learned by "
            "gradients); a schedule, a range test or a guard sets the lr in place: give one "
            "without requires_grad (torch.tensor(0.01))"
        )
        assert opt.param_groups[0]["lr"] is learned and "initial_lr" not in opt.param_groups[0]
    # a group added later: the guard refuses it at its next check, before anything changes
    opt = torch.optim.SGD(model.parameters(), lr=torch.tensor(0.01))
    guard = lt.DivergenceGuard(model, optimizer=opt)
    assert guard.check(1.0)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": learned})
    with pytest.raises(ValueError, match=r"^optimizer: param group 1's lr is a tensor that"):
        guard.check(float("nan"))  # (a restore would set the learned lr in place)
    assert guard.num_checks == 1 and guard.restores == 0
    with pytest.raises(ValueError, match=r"^optimizer: param group 1's lr is a tensor that"):
        guard.snapshot()  # what the guard asks for after the groups change: refused too
    # the lr as typed, in its own float type
    half = torch.tensor(1e-3, dtype=torch.float16, requires_grad=True)
    with pytest.raises(
        ValueError, match=r"give one without requires_grad \(torch\.tensor\(0\.001\)\)$"
    ):
        lt.scheduler(torch.optim.SGD(model.parameters(), lr=half), S.constant(0.1))
    # a bfloat16 lr is shown as typed too (0.3, not the 0.301 it holds)
    coarse = torch.tensor(0.3, dtype=torch.bfloat16, requires_grad=True)
    with pytest.raises(
        ValueError, match=r"give one without requires_grad \(torch\.tensor\(0\.3\)\)$"
    ):
        lt.scheduler(torch.optim.SGD(model.parameters(), lr=coarse), S.constant(0.1))
    # a later group of an optimizer given with an integer tensor is the one named
    mixed = torch.optim.SGD(
        [{"params": [torch.nn.Parameter(torch.zeros(1))]}, {"params": model.parameters()}],
        lr=0.1,
    )
    mixed.param_groups[1]["lr"] = torch.tensor(1)
    with pytest.raises(ValueError) as info:
        lt.scheduler(mixed, S.cosine(0.1, total_steps=10))
    assert str(info.value) == message.replace("group 0", "group 1")
    # a group added later with an integer tensor: refused at the step that adopts it
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = lt.scheduler(opt, S.cosine(0.1, total_steps=10))
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": torch.tensor(1)})
    with pytest.raises(ValueError) as info:
        sched.step()
    assert str(info.value) == message.replace("group 0", "group 1")
    assert sched.last_epoch == 0 and len(sched.base_lrs) == 1
    # no lr at all (Adafactor with relative_step=True sets its own step size)
    opt.param_groups[0]["lr"] = None
    with pytest.raises(ValueError) as info:
        lt.scheduler(opt, S.cosine(0.1, total_steps=10))
    assert str(info.value).startswith(
        "optimizer: param group 0 has no lr (None: an optimizer that sets its own step size, "
        "such as Adafactor with relative_step=True); "
    )


def test_report_takes_scalars_and_tensors_and_rejects_the_rest() -> None:
    import numpy as np

    from lrkit.feedback import ReduceOnPlateau

    opt = _opt(0.1)
    sch = lt.scheduler(opt, S.constant(0.1), feedback=ReduceOnPlateau(patience=0, factor=0.5))
    sch.report(torch.tensor(1.0))
    sch.report(np.float32(1.0))
    assert opt.param_groups[0]["lr"] == 0.05
    state = sch.state_dict()
    with pytest.raises(ValueError) as info:
        sch.report(torch.ones(3))
    assert str(info.value) == (
        "value must be one value (a number or a one-element array), got an array of shape (3,)"
    )
    with pytest.raises(ValueError, match=r"got an array of shape \(2, 1\)$"):
        sch.report(np.ones((2, 1)))
    assert sch.state_dict() == state
    for bad in ("low", "0.5", True, np.bool_(True), torch.tensor(True), np.complex128(1)):
        with pytest.raises(ValueError, match="^value must be a real number, got"):
            sch.report(bad)  # type: ignore[arg-type]
    assert sch.state_dict() == state  # nothing was counted (True read as 1.0 could cut)


def test_report_takes_a_one_element_array_of_numpy_jax_or_torch() -> None:
    from lrkit.feedback import ReduceOnPlateau

    jnp = pytest.importorskip("jax.numpy")
    for one in (np.array([1.0]), np.array([[1.0]]), jnp.array([1.0]), torch.tensor([[1.0]])):
        opt = _opt(0.1)
        plateau = ReduceOnPlateau(patience=0, factor=0.5)
        sch = lt.scheduler(opt, S.constant(0.1), feedback=plateau)
        assert sch.report(one) == 1.0
        assert sch.report(one) == 0.5  # no improvement at patience 0: a cut
        assert opt.param_groups[0]["lr"] == 0.05 and plateau.num_updates == 2


def test_report_reads_a_loss_still_in_its_graph_without_a_warning() -> None:
    from lrkit.feedback import ReduceOnPlateau

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sch = lt.scheduler(opt, S.constant(0.1), feedback=ReduceOnPlateau(patience=0, factor=0.5))
    loss = model(torch.ones(3, 2)).pow(2).mean()
    loss.backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sch.report(loss)
        assert sch.report(loss) == 0.5
    assert loss.requires_grad and loss.grad_fn is not None  # the caller's tensor as it was


# ---------------------------------------------------------------- peers' cases, expressible
def _two_group_sgd(lrs: tuple[float, float], momentum: float = 0.9) -> torch.optim.Optimizer:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    return torch.optim.SGD(
        [{"params": [a], "lr": lrs[0]}, {"params": [b], "lr": lrs[1]}],
        lr=lrs[0],
        momentum=momentum,
    )


def _cyclic_momentum_spec(base_m: float, max_m: float, up: int, down: int, mode: str, g: float):
    # PyTorch: momentum = max_momentum - (max_momentum - base_momentum) * wave * scale
    return S.parse(
        f"sub(constant({max_m!r}), cyclic(0, {max_m - base_m!r}, {up}, {down}, mode={mode}, "
        f"gamma={g!r}))"
    )


@pytest.mark.parametrize("mode,gamma", [("triangular2", 1.0), ("exp_range", 0.995)])
def test_cycliclr_momentum_per_group_is_one_expression_each(mode: str, gamma: float) -> None:
    base_m, max_m = [0.8, 0.85], [0.9, 0.97]
    up, down = 7, 11
    ref_opt = _two_group_sgd((0.01, 0.02))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = TL.CyclicLR(
            ref_opt,
            [0.01, 0.02],
            [0.1, 0.2],
            up,
            down,
            mode=mode,
            gamma=gamma,
            cycle_momentum=True,
            base_momentum=base_m,
            max_momentum=max_m,
        )
    opt = _two_group_sgd((0.01, 0.02))
    lr_s = [
        S.cyclic(b, max_lr=m, step_size_up=up, step_size_down=down, mode=mode, gamma=gamma)
        for b, m in [(0.01, 0.1), (0.02, 0.2)]
    ]
    mom = [_cyclic_momentum_spec(b, m, up, down, mode, gamma) for b, m in zip(base_m, max_m)]
    assert all(S.parse(str(x)) == x and S.from_dict(x.to_dict()) == x for x in mom)
    sch = lt.scheduler(opt, lr_s, momentum=mom)
    for k in range(120):
        for g, rg in zip(opt.param_groups, ref_opt.param_groups):
            assert g["momentum"] == pytest.approx(rg["momentum"], rel=1e-12, abs=1e-15), k
            assert g["lr"] == pytest.approx(rg["lr"], rel=1e-12), k
        opt.step()
        ref_opt.step()
        sch.step()
        ref.step()


def test_per_group_momentum_round_trips_through_state_dict() -> None:
    opt = _two_group_sgd((0.1, 0.1))
    mom = [S.onecycle_momentum(100), S.constant(0.5)]
    sch = lt.scheduler(
        opt,
        S.onecycle(0.1, total_steps=100),
        momentum=mom,
        hyperparams={"dampening": [S.constant(0.0), S.linear(0.0, end_lr=0.1, total_steps=100)]},
    )
    sch.step(30)
    assert [g["momentum"] for g in opt.param_groups] == [mom[0](30), 0.5]
    assert [g["dampening"] for g in opt.param_groups] == [
        0.0,
        S.linear(0.0, end_lr=0.1, total_steps=100)(30),
    ]
    st_ = sch.state_dict()
    assert st_["hyperparams"]["momentum"] == [m.to_dict() for m in mom]
    with pytest.raises(ValueError, match=r"momentum: a list needs one schedule per param group"):
        lt.scheduler(opt, S.constant(0.1), momentum=[S.constant(0.9)])


def test_plateau_floor_per_group_equals_reducelronplateau_min_lr_list() -> None:
    from lrkit.feedback import ReduceOnPlateau

    floors = [0.02, 0.001]
    lrs = (0.1, 0.05)
    ref_opt = _two_group_sgd(lrs)
    ref = TL.ReduceLROnPlateau(ref_opt, factor=0.5, patience=1, min_lr=floors, eps=0.0)
    opt = _two_group_sgd(lrs)
    controllers = [
        ReduceOnPlateau(factor=0.5, patience=1, min_scale=f / lr) for f, lr in zip(floors, lrs)
    ]
    sch = lt.scheduler(opt, S.constant(lrs[0]), feedback=controllers)
    metric = [1.0, 0.9] + [0.9] * 30
    for k, m in enumerate(metric):
        ref.step(m)
        scales = sch.report(m)
        assert isinstance(scales, list) and len(scales) == 2
        for g, rg in zip(opt.param_groups, ref_opt.param_groups):
            assert g["lr"] == pytest.approx(rg["lr"], rel=1e-12), k
    assert [g["lr"] for g in ref_opt.param_groups] == floors  # both floors reached
    # resume: one state per group
    state = copy.deepcopy(sch.state_dict())
    assert isinstance(state["feedback"], list) and len(state["feedback"]) == 2
    opt2 = _two_group_sgd(lrs)
    sch2 = lt.scheduler(
        opt2,
        S.constant(lrs[0]),
        feedback=[ReduceOnPlateau(factor=0.5, patience=1) for _ in range(2)],
    )
    sch2.load_state_dict(state)
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    with pytest.raises(ValueError, match=r"feedback: a list needs one controller per param group"):
        lt.scheduler(opt2, S.constant(0.1), feedback=[ReduceOnPlateau()])


# ---------------------------------------------------------------- state and param-group checks
@pytest.mark.parametrize(
    "state,match",
    [
        (None, r"^state_dict must be a dict from LRKitScheduler.state_dict\(\), got NoneType"),
        ({}, r"^state_dict must hold 'last_epoch'"),
        ({"last_epoch": -5}, r"^state_dict\['last_epoch'\] must be an integer >= -1"),
        ({"last_epoch": 3.7}, r"^state_dict\['last_epoch'\] must be an integer >= -1"),
        ({"last_epoch": "3"}, r"^state_dict\['last_epoch'\] must be an integer >= -1"),
        ({"last_epoch": 3, "_step_count": -1}, r"^state_dict\['_step_count'\] must be"),
        ({"last_epoch": 3, "ratios": [1.0, 2.0]}, r"^state_dict\['ratios'\] must have one entry"),
        ({"last_epoch": 3, "ratios": [float("nan")]}, r"^state_dict\['ratios'\]\[0\] must be"),
        ({"last_epoch": 3, "base_lrs": "0.1"}, r"^state_dict\['base_lrs'\] must be a list"),
    ],
)
def test_load_state_dict_rejects_bad_state_and_changes_nothing(state: Any, match: str) -> None:
    opt = _opt(0.1)
    sch = lt.scheduler(opt, S.cosine(0.1, total_steps=100))
    sch.step(10)
    before = (sch.last_epoch, sch._step_count, list(sch.ratios), opt.param_groups[0]["lr"])
    with pytest.raises(ValueError, match=match):
        sch.load_state_dict(state)
    assert (sch.last_epoch, sch._step_count, list(sch.ratios), opt.param_groups[0]["lr"]) == before


def test_a_failed_per_group_feedback_load_changes_no_controller() -> None:
    from lrkit.feedback import ReduceOnPlateau

    def make() -> tuple[Any, list[Any]]:
        ps = [torch.nn.Parameter(torch.zeros(2)) for _ in range(2)]
        opt = torch.optim.SGD([{"params": [p]} for p in ps], lr=0.1)
        fbs = [ReduceOnPlateau(factor=0.5, patience=0) for _ in range(2)]
        return lt.scheduler(opt, S.constant(0.1), feedback=fbs), fbs

    sch, _ = make()
    for v in (1.0, 2.0, 3.0):
        sch.report(v)
        sch.step()
    bad = copy.deepcopy(sch.state_dict())
    bad["feedback"][1] = {"type": "ReduceOnPlateau"}
    fresh, fbs = make()
    before = [fb.state_dict() for fb in fbs]
    lrs = [g["lr"] for g in fresh.optimizer.param_groups]
    with pytest.raises(ValueError, match="factor"):
        fresh.load_state_dict(bad)
    assert [fb.state_dict() for fb in fbs] == before
    fresh.step()
    assert [g["lr"] for g in fresh.optimizer.param_groups] == lrs


def test_feedback_class_hyperparams_list_and_numpy_epoch() -> None:
    from lrkit.feedback import ReduceOnPlateau

    opt = _opt(0.1)
    with pytest.raises(ValueError, match=r"^feedback must be a controller instance, e\.g\. Red"):
        lt.scheduler(opt, S.constant(0.1), feedback=ReduceOnPlateau)
    with pytest.raises(ValueError, match=r"^hyperparams must be a dict"):
        lt.scheduler(opt, S.constant(0.1), hyperparams=["weight_decay"])
    sch = lt.scheduler(opt, S.cosine(0.1, total_steps=100))
    sch.step(np.int64(7))
    assert sch.last_epoch == 7 and type(sch.last_epoch) is int
    assert opt.param_groups[0]["lr"] == S.cosine(0.1, total_steps=100)(7)
    with pytest.raises(ValueError, match="step\\(\\) takes no metric"):
        sch.step(np.float64(0.5))
    # a 0-d integer tensor, as torch's own schedulers take it; float, bool and 1-d are not
    for k, epoch in ((9, torch.tensor(9)), (11, torch.tensor(11, dtype=torch.uint8))):
        sch.step(epoch)
        assert sch.last_epoch == k and type(sch.last_epoch) is int
        assert opt.param_groups[0]["lr"] == S.cosine(0.1, total_steps=100)(sch.last_epoch)
    for bad in (torch.tensor(5.0), torch.tensor(True), torch.tensor([5])):
        with pytest.raises(ValueError, match="step\\(\\) takes no metric"):
            sch.step(bad)
    ml_dtypes = pytest.importorskip("ml_dtypes")  # JAX's small integer types: integers too
    sch.step(np.asarray(6, dtype=ml_dtypes.int4))
    assert sch.last_epoch == 6 and type(sch.last_epoch) is int
    with pytest.raises(ValueError, match="step\\(\\) takes no metric"):
        sch.step(np.asarray(6, dtype=ml_dtypes.bfloat16))


def test_load_state_dict_accepts_an_integral_float_step() -> None:
    opt = _opt(0.1)
    sch = lt.scheduler(opt, S.cosine(0.1, total_steps=100))
    sch.load_state_dict({"last_epoch": 7.0})
    assert sch.last_epoch == 7 and opt.param_groups[0]["lr"] == S.cosine(0.1, total_steps=100)(7)


@pytest.mark.parametrize(
    "peer",
    [
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=10),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=100),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=100),
    ],
)
def test_load_state_dict_refuses_another_schedulers_state(peer: Any) -> None:
    other = _opt(0.1)
    old = peer(other)
    for _ in range(30):
        other.step()
        old.step()
    opt = _opt(0.1)
    sch = lt.scheduler(opt, S.cosine(0.1, total_steps=1000))
    sch.step()
    before = (sch.state_dict(), [g["lr"] for g in opt.param_groups])
    with pytest.raises(ValueError, match=r"^state_dict must be a dict from LRKitScheduler") as e:
        sch.load_state_dict(old.state_dict())
    assert "_last_lr" in str(e.value) and "\n" not in str(e.value)
    assert (sch.state_dict(), [g["lr"] for g in opt.param_groups]) == before  # unchanged


def test_an_optimizer_from_a_one_cycle_run_follows_one_schedule_per_group() -> None:
    # OneCycleLR writes its starting LR as initial_lr, which a scheduler reads as the base LR
    # (as PyTorch's do): groups that all start at it follow the schedule itself; one
    # schedule per group is followed as it is (docs/pytorch.md)
    opt = _opt(0.1)
    torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=100)
    assert opt.param_groups[0]["initial_lr"] != 0.1
    assert lt.scheduler(opt, S.constant(0.05)).ratios == [1.0] * len(opt.param_groups)
    assert [g["lr"] for g in opt.param_groups] == [0.05] * len(opt.param_groups)
    opt = _opt(0.1)
    torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=100)
    s = S.cosine(0.05, total_steps=10)
    sch = lt.scheduler(opt, [s] * len(opt.param_groups))
    for t in range(5):
        assert [g["lr"] for g in opt.param_groups] == [s(t)] * len(opt.param_groups)
        opt.step()
        sch.step()


def test_group_lrs_without_a_top_level_lr_are_detected() -> None:
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    trap = torch.optim.SGD([{"params": [a], "lr": 0.01}, {"params": [b], "lr": 0.1}])
    with pytest.raises(ValueError, match=r"^optimizer: every param group sets its own lr") as e:
        lt.scheduler(trap, S.cosine(0.1, total_steps=100))
    assert "10x, 100x" in str(e.value) and "one schedule per group" in str(e.value)
    # what the message says to do works: one schedule per group, or a top-level lr
    sch = lt.scheduler(trap, [S.cosine(0.01, total_steps=100), S.cosine(0.1, total_steps=100)])
    assert [g["lr"] for g in trap.param_groups] == [0.01, 0.1]
    ok = torch.optim.SGD([{"params": [a], "lr": 0.01}, {"params": [b], "lr": 0.1}], lr=0.01)
    sch = lt.scheduler(ok, S.cosine(0.01, total_steps=100))
    assert sch.ratios == [1.0, pytest.approx(10.0)]
    # a single group at its own lr, or groups at one, is no trap: the schedule is their LR
    one = torch.optim.Adam([{"params": [a], "lr": 0.1}])
    lt.scheduler(one, S.constant(0.2))
    assert one.param_groups[0]["lr"] == 0.2
    same = torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.1}])
    assert lt.group_ratios(same) == [1.0, 1.0]


def test_groups_at_one_lr_follow_the_schedule_itself_and_a_group_added_later_keeps_its_ratio():
    """One group, or groups that start at one LR other than the optimizer's lr (set by hand,
    or left by another scheduler), follow the schedule's values; a group added later is read
    against that LR, so a head added at 10x it follows 10x the schedule."""
    a, b, c = (torch.nn.Parameter(torch.zeros(1)) for _ in range(3))
    opt = torch.optim.SGD([a, b], lr=0.1)
    for g in opt.param_groups:
        g["lr"] = 0.01  # changed by hand after construction
    assert lt.group_ratios(opt) == [1.0]
    s = S.cosine(0.05, total_steps=10)
    sch = lt.scheduler(opt, s)
    assert opt.param_groups[0]["lr"] == s(0)
    opt.add_param_group({"params": [c], "lr": 0.1})  # 10x the groups' LR
    opt.step()
    sch.step()
    assert [g["lr"] for g in opt.param_groups] == [s(1), pytest.approx(10 * s(1), rel=1e-12)]
    # groups at different LRs keep their ratios against the optimizer's lr, as before
    two = torch.optim.SGD([{"params": [a], "lr": 0.01}, {"params": [b], "lr": 0.1}], lr=0.05)
    assert lt.group_ratios(two) == [pytest.approx(0.2), pytest.approx(2.0)]


def test_a_wrapper_without_defaults_of_its_own_reads_the_lr_of_the_optimizer_it_wraps():
    """A wrapper holding its optimizer as ``.optim`` and sharing its groups, without
    ``defaults`` of its own (as PostLocalSGDOptimizer): the groups' ratios are read against
    the wrapped optimizer's lr."""

    class Wrapper(torch.optim.Optimizer):
        def __init__(self, optim: torch.optim.Optimizer) -> None:  # no super().__init__
            self.optim = optim
            self.param_groups = optim.param_groups
            self.state = optim.state

    a, b = (torch.nn.Parameter(torch.zeros(1)) for _ in range(2))
    inner = torch.optim.SGD([{"params": [a], "lr": 0.01}, {"params": [b], "lr": 0.1}], lr=0.05)
    wrapper = Wrapper(inner)
    assert not hasattr(wrapper, "defaults")
    assert lt.group_ratios(wrapper) == [pytest.approx(0.2), pytest.approx(2.0)]


def test_a_group_frozen_at_lr_0_beside_others_stays_at_0_and_groups_all_at_0_follow():
    """Its ratio to the optimizer's lr is 0, as PyTorch's schedulers keep it at 0; groups that
    all start at 0 (an optimizer built with lr=0, or left at 0 by CyclicLR(base_lr=0)) are
    groups at one LR: the schedule drives them."""
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a], "lr": 0.0}, {"params": [b]}], lr=0.1)
    s = S.cosine(0.1, total_steps=20)
    sch = lt.scheduler(opt, s)
    assert lt.group_ratios(opt) == [0.0, 1.0]
    for t in range(3):
        assert [g["lr"] for g in opt.param_groups] == [0.0, s(t)]
        opt.step()
        sch.step()
    cyc_opt = torch.optim.SGD([a, b], lr=0.1)
    cyc = torch.optim.lr_scheduler.CyclicLR(cyc_opt, base_lr=0.0, max_lr=0.1, step_size_up=10)
    for _ in range(3):
        cyc_opt.step()
        cyc.step()
    assert lt.group_ratios(cyc_opt) == [1.0]
    lt.scheduler(cyc_opt, s)
    assert cyc_opt.param_groups[0]["lr"] == s(0)


def test_group_ratios_is_what_the_scheduler_applies_and_refuses_what_it_refuses() -> None:
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    ok = torch.optim.SGD([{"params": [a], "lr": 0.01}, {"params": [b], "lr": 0.1}], lr=0.02)
    assert lt.group_ratios(ok) == [0.5, 5.0] == lt.scheduler(ok, S.constant(0.02)).ratios
    trap = torch.optim.SGD([{"params": [a], "lr": 0.01}, {"params": [b], "lr": 0.1}])
    with pytest.raises(ValueError) as e:
        lt.group_ratios(trap)
    assert str(e.value) == (
        "optimizer: every param group sets its own lr (0.01, 0.1) and the optimizer's lr is "
        "SGD's default 0.001, so the groups would follow 10x, 100x a schedule; pass lr= to the "
        "optimizer (the LR a schedule's values stand for, the groups then follow lr_group / lr "
        "times the schedule; a schedule peaking at that lr is taken as given in its units)"
    )
    # a schedule peaking at the default reads the same with or without it given
    assert lt.group_ratios(trap, schedule=S.constant(0.001)) == [10.0, 100.0]
    none = torch.optim.SGD([{"params": [a], "lr": 0.01}, {"params": [b], "lr": 0.1}], lr=0.0)
    with pytest.raises(ValueError, match=r"^optimizer: the param groups set different lrs "):
        lt.group_ratios(none)
    with pytest.raises(ValueError, match=r"or pass one schedule per group: scheduler\("):
        lt.scheduler(none, S.constant(0.1))
    assert lt.group_ratios(torch.optim.SGD([a, b], lr=0.0)) == [1.0]


def test_group_ratios_takes_the_schedules_scheduler_takes_and_refuses_others_in_one_line():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([{"params": [a], "lr": 0.01}, {"params": [b], "lr": 0.1}])
    spec = "cosine(lr=0.001, total_steps=100)"  # peaks at Adam's default lr: taken as given
    assert lt.group_ratios(opt, schedule=spec) == [pytest.approx(10.0), pytest.approx(100.0)]
    assert lt.group_ratios(opt, schedule=S.parse(spec).to_dict()) == lt.scheduler(opt, spec).ratios
    with pytest.raises(ValueError, match=r"^schedule must be a lrkit schedule, a spec string"):
        lt.group_ratios(opt, schedule=0.1)
    with pytest.raises(ValueError, match=r"^optimizer must be a torch.optim.Optimizer, got str$"):
        lt.group_ratios("adam")


def test_groups_around_an_lr_equal_to_the_default_follow_a_schedule_peaking_there() -> None:
    # lr=1e-3 given on purpose (AdamW's default too) and a schedule in its units: no trap,
    # each group peaks at its own lr
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [a], "lr": 1e-4}, {"params": [b], "lr": 1e-2}], lr=1e-3)
    s = S.join(
        [S.warmup(0.0, end_lr=1e-3, warmup_steps=10), S.cosine(1e-3, total_steps=90)],
        boundaries=[10],
    )
    sch = lt.scheduler(opt, s)
    assert sch.ratios == [1e-4 / 1e-3, 1e-2 / 1e-3]
    sch.step(10)
    assert [g["lr"] for g in opt.param_groups] == [1e-4 / 1e-3 * s(10), 1e-2 / 1e-3 * s(10)]
    # a schedule peaking elsewhere is still refused: its peak is in the message
    with pytest.raises(ValueError, match=r"which peaks at 0\.003; pass lr="):
        lt.scheduler(opt, S.cosine(3e-3, total_steps=100))


def test_a_schedule_that_goes_negative_is_refused_at_construction() -> None:
    opt = _opt(0.1)
    with pytest.raises(ValueError, match=r"^schedule must be >= 0 at every step .* at step 0: sub"):
        lt.scheduler(opt, S.cosine(0.1, total_steps=10) - 1)
    with pytest.raises(ValueError, match=r"^momentum must be >= 0 at every step"):
        lt.scheduler(opt, S.constant(0.1), momentum=S.constant(0.5) - S.constant(0.6))
    assert opt.param_groups[0]["lr"] == 0.1  # nothing changed


def test_a_schedule_that_goes_negative_past_the_checked_steps_stops_the_step() -> None:
    # no natural length: the construction check reads steps 0..999; the LR turns negative later
    s = S.constant(0.1) - S.exponential(0.001, gamma=1.001)
    first = int(np.argmax(s.values(np.arange(5000)) < 0))
    assert first > 1000
    opt = _opt(0.1)
    sch = lt.scheduler(opt, s)
    sch.step(first - 1)
    assert opt.param_groups[0]["lr"] == s(first - 1) > 0
    with pytest.raises(
        ValueError, match=rf"^schedule: the learning rate must be >= 0, got -.* {first} "
    ):
        sch.step()
    assert opt.param_groups[0]["lr"] == s(first - 1)  # the optimizer keeps its last valid LR
    assert sch.last_epoch == first - 1  # and the scheduler its step


@pytest.mark.parametrize("where", ["momentum", "hot momentum", "weight_decay", "per group"])
def test_a_hyperparameter_going_negative_past_the_checked_steps_stops_the_step(where) -> None:
    # the same check as the LR's: the step is refused and nothing is set
    s = S.constant(0.9) - S.exponential(0.001, gamma=1.001)
    first = int(np.argmax(s.values(np.arange(8000)) < 0))
    assert first > 1000
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    if where == "hot momentum":  # one group, one hyperparameter: the scheduler's short path
        opt = torch.optim.SGD([a], lr=0.1, momentum=0.9)
    else:
        opt = torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1, momentum=0.9)
    kw: dict[str, Any] = {
        "momentum": {"momentum": s},
        "hot momentum": {"momentum": s},
        "weight_decay": {"hyperparams": {"weight_decay": s}},
        "per group": {"hyperparams": {"weight_decay": [S.constant(0.1), s]}},
    }[where]
    sch = lt.scheduler(opt, S.constant(0.1), **kw)
    sch.step(first - 1)
    key = "momentum" if "momentum" in where else "weight_decay"
    before = [g[key] for g in opt.param_groups]
    name = "momentum" if key == "momentum" else r"hyperparams\['weight_decay'\]"
    with pytest.raises(ValueError, match=rf"^{name} must be >= 0, got -.* at step {first} "):
        sch.step()
    assert [g[key] for g in opt.param_groups] == before and before[-1] == s(first - 1) > 0
    assert sch.last_epoch == first - 1


def test_param_groups_added_later_follow_the_schedule() -> None:
    a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9)
    s = S.cosine(0.1, total_steps=10)
    sch = lt.scheduler(opt, s, momentum=S.constant(0.8))
    sch.step()
    opt.add_param_group({"params": list(b.parameters()), "lr": 0.01, "momentum": 0.9})
    sch.step()
    ratio = 0.01 / 0.1  # the new group's lr over the optimizer's
    assert [g["lr"] for g in opt.param_groups] == [s(2), ratio * s(2)]
    assert [g["momentum"] for g in opt.param_groups] == [0.8, 0.8]
    assert sch.ratios == [1.0, ratio] and sch.base_lrs == [0.1, 0.01]
    state = sch.state_dict()
    sch.step(7)
    sch.load_state_dict(state)
    assert [g["lr"] for g in opt.param_groups] == [s(2), ratio * s(2)]


def _resumed_after_add_param_group(
    make: Any, head_group: Any, loads: int
) -> tuple[tuple[Any, Any], tuple[Any, Any], list[list[float]], list[list[float]]]:
    """A run: 5 steps, the head's group added (``head_group(head)``), saved, 3 more steps; a
    resumed run built with the head from the start, the checkpoint loaded ``loads`` times,
    3 steps. ``make(body)`` builds the optimizer. Returns both runs' (optimizer, scheduler)
    and the LRs of their 3 last steps."""

    def build(with_head: bool) -> tuple[torch.nn.Module, Any, Any]:
        torch.manual_seed(0)
        body, head = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)
        opt = make(body)
        if with_head:
            opt.add_param_group(head_group(head))
        return head, opt, lt.scheduler(opt, "cosine(1.0, total_steps=20)")

    def steps(opt: Any, sch: Any) -> list[list[float]]:
        lrs = []
        for _ in range(3):
            opt.step()
            sch.step()
            lrs.append([float(g["lr"]) for g in opt.param_groups])
        return lrs

    head, opt, sch = build(False)
    for _ in range(5):
        opt.step()
        sch.step()
    opt.add_param_group(head_group(head))
    saved = copy.deepcopy((opt.state_dict(), sch.state_dict()))
    expected = steps(opt, sch)
    _, opt2, sch2 = build(True)
    for _ in range(loads):  # loading twice is loading once
        opt2.load_state_dict(saved[0])
        sch2.load_state_dict(saved[1])
    return (opt, sch), (opt2, sch2), expected, steps(opt2, sch2)


@pytest.mark.parametrize("loads", [1, 2])
@pytest.mark.parametrize("own_lr", [False, True])
def test_a_tensor_lr_group_added_before_the_save_resumes_into_an_optimizer_built_with_it(
    own_lr: bool, loads: int
) -> None:
    """The optimizer's checkpoint sets the added group's lr to what the saving run held (the
    shared default tensor, moved by the steps): the group is adopted with the base LR the
    resumed scheduler read when it was built, as the saving run adopted it."""

    def group(head: torch.nn.Module) -> dict[str, Any]:
        extra = {"lr": torch.tensor(2e-2)} if own_lr else {}  # else the defaults' tensor
        return {"params": list(head.parameters()), **extra}

    (opt, sch), (opt2, sch2), expected, got = _resumed_after_add_param_group(
        lambda body: torch.optim.AdamW(body.parameters(), lr=torch.tensor(1e-2)), group, loads
    )
    assert got == expected
    assert sch2.state_dict()["base_lrs"] == sch.state_dict()["base_lrs"]
    assert [float(g["initial_lr"]) for g in opt2.param_groups] == [
        float(g["initial_lr"]) for g in opt.param_groups
    ]


@pytest.mark.parametrize("head_lr", [0.02, None])
@pytest.mark.parametrize("loads", [1, 2])
def test_a_group_added_before_the_save_is_read_against_the_groups_lr_as_the_saving_run_did(
    head_lr: float | None, loads: int
) -> None:
    """Fine-tuning: a body group at its own LR (not the optimizer's), a head added later. The
    saving run adopted the head against the body's LR; a resumed scheduler built with the head
    reads it the same way (not against optimizer.defaults), also when loaded twice."""

    def group(head: torch.nn.Module) -> dict[str, Any]:
        return {"params": list(head.parameters()), **({"lr": head_lr} if head_lr else {})}

    (_, sch), (_, sch2), expected, got = _resumed_after_add_param_group(
        lambda body: torch.optim.SGD([{"params": list(body.parameters()), "lr": 0.05}], lr=0.01),
        group,
        loads,
    )
    assert got == expected
    assert sch2.ratios == sch.ratios == [1.0, (head_lr or 0.01) / 0.05]


@pytest.mark.parametrize("rebuilt_with_both_groups", [False, True])
@pytest.mark.parametrize("optimizer_first", [True, False])
def test_a_checkpoint_saved_between_add_param_group_and_the_next_step_resumes_exactly(
    optimizer_first: bool, rebuilt_with_both_groups: bool
) -> None:
    def build(both: bool = False) -> tuple[torch.nn.Module, torch.nn.Module, Any, Any]:
        torch.manual_seed(0)
        a, b = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
        groups: list[dict[str, Any]] = [{"params": list(a.parameters())}]
        if both:  # the resumed run builds its optimizer with the added group from the start
            groups.append({"params": list(b.parameters()), "lr": 0.01, "momentum": 0.5})
        opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
        return a, b, opt, lt.scheduler(opt, "cosine(0.1, 20)", momentum=S.constant(0.8))

    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))

    def train(a, b, opt, sch, steps: int) -> list[list[float]]:
        lrs = []
        for _ in range(steps):
            opt.zero_grad()
            (a(x) + b(x)).pow(2).mean().backward()
            opt.step()
            sch.step()
            lrs.append([g["lr"] for g in opt.param_groups])
        return lrs

    a, b, opt, sch = build()
    train(a, b, opt, sch, 5)
    opt.add_param_group({"params": list(b.parameters()), "lr": 0.01, "momentum": 0.5})
    saved = copy.deepcopy(
        {"a": a.state_dict(), "b": b.state_dict(), "opt": opt.state_dict(), "sch": sch.state_dict()}
    )
    assert saved["sch"]["ratios"] == [1.0]  # the new group is adopted at the next step
    # the first step after the save trains the new group at its own lr and momentum
    expected = train(a, b, opt, sch, 6)
    a2, b2, opt2, sch2 = build(rebuilt_with_both_groups)
    if not rebuilt_with_both_groups:
        opt2.add_param_group({"params": list(b2.parameters()), "lr": 0.01, "momentum": 0.5})
    a2.load_state_dict(saved["a"])
    b2.load_state_dict(saved["b"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same schedule: no warning of another one
        if optimizer_first:
            opt2.load_state_dict(saved["opt"])
            sch2.load_state_dict(saved["sch"])
        else:
            sch2.load_state_dict(saved["sch"])
            opt2.load_state_dict(saved["opt"])
    assert [(g["lr"], g["momentum"]) for g in opt2.param_groups] == [
        (S.cosine(0.1, total_steps=20)(5), 0.8),
        (0.01, 0.5),
    ]
    assert train(a2, b2, opt2, sch2, 6) == expected
    for p, q in zip([*a.parameters(), *b.parameters()], [*a2.parameters(), *b2.parameters()]):
        assert torch.equal(p, q)
    assert sch2.ratios == sch.ratios == [1.0, 0.01 / 0.1]


def test_param_groups_added_to_a_per_group_scheduler_are_refused() -> None:
    a, b, c = (torch.nn.Linear(2, 1) for _ in range(3))
    opt = torch.optim.SGD([{"params": a.parameters()}, {"params": b.parameters()}], lr=0.1)
    sch = lt.scheduler(opt, [S.constant(0.1), S.constant(0.2)])
    opt.add_param_group({"params": list(c.parameters())})
    with pytest.raises(ValueError, match=r"^optimizer: param groups were added \(2 -> 3\)"):
        sch.step()


@pytest.mark.parametrize("same", [False, True])
def test_a_list_of_one_schedule_or_of_one_schedule_twice_is_per_group(same: bool) -> None:
    """A list is one schedule per group whatever it holds: a later group has none."""
    a, b, c = (torch.nn.Linear(2, 1) for _ in range(3))
    s = S.cosine(0.1, total_steps=10)
    if same:
        opt = torch.optim.SGD([{"params": a.parameters()}, {"params": b.parameters()}], lr=0.1)
        sch, n = lt.scheduler(opt, [s, s]), 2
    else:
        opt = torch.optim.SGD(a.parameters(), lr=0.1)
        sch, n = lt.scheduler(opt, [s]), 1
    opt.add_param_group({"params": list(c.parameters()), "lr": 0.2})
    with pytest.raises(ValueError, match=rf"^optimizer: param groups were added \({n} -> "):
        sch.step()
    assert opt.param_groups[-1]["lr"] == 0.2  # left as the user set it


def test_a_schedule_longer_than_float64_steps_can_still_be_scheduled() -> None:
    opt = _opt(0.1)
    lt.scheduler(opt, S.cosine(0.1, total_steps=2**53))  # length + 1 is past 2**53
    assert opt.param_groups[0]["lr"] == 0.1


def _composite(kind: str) -> tuple[torch.optim.Optimizer, Any, Any]:
    """An optimizer driven by an lrkit scheduler inside one of PyTorch's composites."""
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    if kind == "sequential, lrkit second":
        first = TL.LinearLR(opt, start_factor=0.1, total_iters=3)
        ours = lt.scheduler(
            opt, S.cosine(0.1, total_steps=10), momentum=S.linear(0.8, end_lr=0.9, total_steps=10)
        )
        return opt, TL.SequentialLR(opt, [first, ours], milestones=[3]), ours
    ours = lt.scheduler(opt, S.warmup(0.0, end_lr=0.1, warmup_steps=3))
    other = TL.ExponentialLR(opt, gamma=0.5)
    if kind == "sequential, lrkit first":
        return opt, TL.SequentialLR(opt, [ours, other], milestones=[3]), ours
    return opt, TL.ChainedScheduler([ours, other]), ours


@pytest.mark.parametrize(
    "kind", ["sequential, lrkit second", "sequential, lrkit first", "chained, lrkit first"]
)
@pytest.mark.parametrize("cut", [1, 2, 3, 6])
def test_a_composite_of_pytorch_resumes_exactly(kind: str, cut: int) -> None:
    # a recursive scheduler stepped after lrkit's in a ChainedScheduler changes the LRs between
    # its steps: warned once (its factor is applied once per step, not compounded); a
    # SequentialLR's phases are not warned of
    chained = kind.startswith("chained")

    @contextlib.contextmanager
    def watch() -> Iterator[None]:
        if chained:
            with pytest.warns(UserWarning, match=r"^the optimizer's LR changed between two"):
                yield
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                yield

    opt, comp, _ = _composite(kind)
    full = []
    ckpt: dict[str, Any] = {}
    with watch():
        for k in range(10):
            if k == cut:
                ckpt = copy.deepcopy({"opt": opt.state_dict(), "sched": comp.state_dict()})
            full.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
            opt.step()
            comp.step()
    opt2, comp2, _ = _composite(kind)
    opt2.load_state_dict(ckpt["opt"])
    comp2.load_state_dict(ckpt["sched"])  # before the fix: refused last_epoch -1, or set its LR
    resumed = []
    with watch():
        for _ in range(cut, 10):
            resumed.append((opt2.param_groups[0]["lr"], opt2.param_groups[0]["momentum"]))
            opt2.step()
            comp2.step()
    assert resumed == full[cut:]


def test_a_change_of_the_lr_between_steps_is_warned_once() -> None:
    # a recursive scheduler stepped after it (LinearLR's factor ratio applied to the value it
    # set) or a hand edit: the LR is the schedule's again at its next step, and a warning says
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.1)
    ours = lt.scheduler(opt, S.cosine(0.1, total_steps=40))
    comp = TL.ChainedScheduler([ours, TL.LinearLR(opt, start_factor=0.1, total_iters=5)])
    with pytest.warns(UserWarning) as rec:
        for _ in range(4):
            opt.step()
            comp.step()
    msgs = [str(w.message) for w in rec if "lrkit scheduler" in str(w.message)]
    assert msgs == [
        "the optimizer's LR changed between two steps of the lrkit scheduler (0.1 set, 0.01 "
        "found): it sets the LR of each step from the schedule, so what changed it "
        "(ReduceLROnPlateau on the same optimizer, a recursive scheduler such as LinearLR, "
        "ConstantLR or ExponentialLR in a ChainedScheduler with it, a DivergenceGuard built "
        "without scheduler=, a hand edit) is overwritten "
        "or applied once per step instead of compounding; for cuts on a metric give the "
        "scheduler feedback=lrkit.feedback.ReduceOnPlateau(...) and call "
        "scheduler.report(metric), write products as S.mul(...) and phases as S.join(...)"
    ]
    # two groups, a hand edit of the second, on the general path
    opt = torch.optim.SGD(
        [{"params": [p]}, {"params": [torch.nn.Parameter(torch.zeros(1))]}], lr=0.1
    )
    sched = lt.scheduler(opt, S.cosine(0.1, total_steps=40))
    opt.step()
    sched.step()
    opt.param_groups[1]["lr"] = 0.5
    with pytest.warns(
        UserWarning,
        match=r"^the optimizer's param group 1's LR changed .*\(0\.0998459 set, 0\.5 found\)",
    ) as rec:
        sched.step()
    assert rec[0].filename == __file__  # the line that stepped, not lrkit's
    assert opt.param_groups[1]["lr"] == S.cosine(0.1, total_steps=40)(2)
    opt.param_groups[1]["lr"] = 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()  # once per scheduler
    # a tensor LR is not read back at each step (on an accelerator that would wait for it)
    opt = torch.optim.Adam([p], lr=torch.tensor(0.1))
    sched = lt.scheduler(opt, S.cosine(0.1, total_steps=40))
    opt.param_groups[0]["lr"].fill_(0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(S.cosine(0.1, total_steps=40)(1))


def test_sequential_lr_milestone_sets_the_step_0_hyperparameters() -> None:
    opt, comp, ours = _composite("sequential, lrkit second")
    for _ in range(3):
        opt.param_groups[0]["momentum"] = 0.5  # changed by something during the first phase
        opt.step()
        comp.step()
    s = S.cosine(0.1, total_steps=10)
    assert ours.last_epoch == 0 and ours.get_last_lr() == [s(0)]
    assert opt.param_groups[0]["lr"] == s(0) and opt.param_groups[0]["momentum"] == 0.8
    opt.step()
    comp.step()
    assert opt.param_groups[0]["lr"] == s(1) and opt.param_groups[0]["momentum"] == 0.81


def test_report_inside_a_chained_scheduler_keeps_the_other_schedulers_factor() -> None:
    from lrkit.feedback import ReduceOnPlateau

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    ours = lt.scheduler(opt, S.constant(0.1), feedback=ReduceOnPlateau(factor=0.5, patience=0))
    chain = TL.ChainedScheduler([ours, TL.ExponentialLR(opt, gamma=0.5)])
    with pytest.warns(UserWarning, match="changed between two steps"):  # once
        for _ in range(3):
            opt.step()
            chain.step()
    assert opt.param_groups[0]["lr"] == 0.1 * 0.5  # ours sets 0.1, ExponentialLR halves it
    assert ours.report(1.0) == 1.0 and opt.param_groups[0]["lr"] == 0.05  # no change
    assert ours.report(2.0) == 0.5 and opt.param_groups[0]["lr"] == 0.025  # the cut, at once
    opt.step()
    chain.step()  # ours sets 0.05 (cut), ExponentialLR then halves it: as the cut made it
    assert opt.param_groups[0]["lr"] == 0.025


def test_report_and_a_guard_before_the_sequential_phase_change_nothing_yet() -> None:
    from lrkit.feedback import ReduceOnPlateau

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    warm = TL.LinearLR(opt, start_factor=0.1, total_iters=5)
    ours = lt.scheduler(opt, S.constant(0.1), feedback=ReduceOnPlateau(factor=0.5, patience=0))
    guard = lt.DivergenceGuard(model, optimizer=opt, scheduler=ours)
    seq = TL.SequentialLR(opt, [warm, ours], milestones=[5])
    opt.step()
    seq.step()
    warm_lr = opt.param_groups[0]["lr"]
    assert ours.report(1.0) == 1.0 and ours.report(2.0) == 0.5  # no step -1 error
    assert opt.param_groups[0]["lr"] == warm_lr  # the warmup's LR, left alone
    assert guard.check(float("nan")) is False and guard.restores == 1
    assert opt.param_groups[0]["lr"] == warm_lr
    for _ in range(4):
        opt.step()
        seq.step()
    assert ours.last_epoch == 0 and opt.param_groups[0]["lr"] == 0.1 * 0.5 * 0.5  # both cuts


def test_a_hand_edited_lr_at_the_save_is_kept_by_the_load() -> None:
    opt = _opt(0.1)
    sch = lt.scheduler(opt, S.cosine(0.1, total_steps=10))
    sch.step()
    assert sch.state_dict()["owns_lrs"] is True
    opt.param_groups[0]["lr"] = 0.5
    state = sch.state_dict()
    assert state["owns_lrs"] is False
    opt2 = _opt(0.1)
    sch2 = lt.scheduler(opt2, S.cosine(0.1, total_steps=10))
    opt2.load_state_dict(opt.state_dict())
    sch2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == 0.5 and sch2.current_step == 1
    with pytest.warns(UserWarning, match=r"LR changed between two steps .*\(0\.0975528 set, 0\.5"):
        sch2.step()  # the hand edit is overwritten, and said
    assert opt2.param_groups[0]["lr"] == S.cosine(0.1, total_steps=10)(2)
    with pytest.raises(ValueError, match=r"^state_dict\['owns_lrs'\] must be True or False"):
        sch2.load_state_dict({**state, "owns_lrs": "yes"})


def test_a_tensor_lr_set_by_the_scheduler_counts_as_its_own() -> None:
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([p], lr=torch.tensor(0.01))
    sch = lt.scheduler(opt, S.cosine(0.01, total_steps=10))
    sch.step()
    assert sch.state_dict()["owns_lrs"] is True  # float32 rounding is not another's edit


def test_the_whole_scheduler_pickles_and_steps_on_identically(tmp_path: Any) -> None:
    opt = _opt(0.1)
    sch = lt.scheduler(
        opt,
        S.onecycle(0.1, total_steps=20),
        momentum=S.onecycle_momentum(20),
        hyperparams={"weight_decay": [S.cosine(0.01, total_steps=20)]},
    )
    for _ in range(5):
        sch.step()
    torch.save({"opt": opt, "sched": sch}, tmp_path / "all.pt")
    loaded = torch.load(tmp_path / "all.pt", weights_only=False)
    opt2, sch2 = loaded["opt"], loaded["sched"]
    assert sch2.optimizer is opt2
    for _ in range(10):
        sch.step()
        sch2.step()
        assert opt2.param_groups[0] == {
            **opt.param_groups[0],
            "params": opt2.param_groups[0]["params"],
        }
    assert sch2.get_last_lr() == sch.get_last_lr()


@pytest.mark.parametrize(
    "make, key, message",
    [
        (torch.optim.Adam, "betas", r"holds \(0\.9, 0\.999\), not a number; a schedule drives "
         r"numeric keys only \(Adam's beta1: pass momentum=\.\.\.\)$"),
        (torch.optim.SGD, "nesterov", r"holds False, not a number; a schedule drives numeric "
         r"keys only$"),
        (torch.optim.SGD, "params", r"holds a list, not a number"),
    ],
)  # fmt: skip
def test_hyperparams_refuse_keys_that_hold_no_number(make: Any, key: str, message: str) -> None:
    p = torch.nn.Parameter(torch.zeros(2))
    opt = make([p], lr=0.1)
    before = {k: v for k, v in opt.param_groups[0].items()}
    with pytest.raises(ValueError, match=rf"^hyperparams: param group 0 key '{key}' {message}"):
        lt.scheduler(opt, S.constant(0.1), hyperparams={key: S.constant(0.9)})
    assert opt.param_groups[0][key] is before[key]  # before the fix: replaced by 0.9
    sch = lt.scheduler(
        make([torch.nn.Parameter(torch.zeros(2))], lr=0.1),
        S.constant(0.1),
        hyperparams={"weight_decay": S.constant(0.01)},
    )
    sch.optimizer.add_param_group(
        {"params": [torch.nn.Parameter(torch.zeros(1))], "weight_decay": True}
    )
    with pytest.raises(
        ValueError, match=r"^hyperparams: param group 1 key 'weight_decay' holds True"
    ):
        sch.step()


def test_report_reaches_every_lrkit_scheduler_once_per_controller() -> None:
    """lrkit.torch.report: the lrkit schedulers in a composite or a list get the metric; a
    controller they share is one observation; a stock scheduler holds none."""
    import lrkit.torch as lt
    from lrkit import schedules as S
    from lrkit.feedback import ReduceOnPlateau

    shared = ReduceOnPlateau(factor=0.5, patience=0)
    w = [torch.nn.Parameter(torch.zeros(1))]
    opt_a, opt_b = torch.optim.SGD(w, lr=1.0), torch.optim.SGD(w, lr=1.0)
    a = lt.scheduler(opt_a, S.constant(1.0), feedback=shared)
    warm = TL.LinearLR(opt_b, start_factor=1.0, total_iters=1)
    b = lt.scheduler(opt_b, S.constant(1.0), feedback=shared)
    chained = TL.ChainedScheduler([warm, b])
    assert lt.lrkit_schedulers([a, chained, a]) == [a, b]
    assert lt.lrkit_schedulers(warm) == [] and lt.lrkit_schedulers(None) == []
    assert lt.report([a, chained], value=1.0) == [a, b]
    assert shared.scale == 1.0  # the first value: the best so far, in one observation
    seen: list[object] = []
    lt.report(a, value=np.array([2.0]), seen=seen)
    lt.report(chained, value=2.0, seen=seen)  # the same observation: no second update
    assert shared.scale == 0.5 and seen == [shared]
    assert opt_a.param_groups[0]["lr"] == 0.5
    with pytest.warns(RuntimeWarning) as caught:  # a stock scheduler: the metric is not used
        assert lt.report(warm, value=1.0) == []
    assert len(caught) == 1 and caught[0].filename == __file__
    assert str(caught[0].message) == (
        "report: no lrkit scheduler with a feedback controller in sched (a LinearLR): the "
        "metric is not used; build one with lrkit.torch.scheduler(optimizer, schedule, "
        "feedback=...)"
    )
    with pytest.warns(RuntimeWarning, match=r"in sched \(a LRKitScheduler\)"):
        assert lt.report(lt.scheduler(opt_b, S.constant(1.0)), value=1.0) == []
    with pytest.raises(ValueError, match=r"^sched must be a learning-rate scheduler .*got str$"):
        lt.report("x", value=1.0)
    with pytest.raises(ValueError):  # not a real number, whatever the scheduler
        lt.report(warm, value="1.0")


def test_report_sets_the_lrs_only_through_the_current_sequential_phase() -> None:
    """Two lrkit phases of a SequentialLR on one optimizer: after the phase change a report
    cuts the LR once (the ended phase's controller learns the value, its LRs are not in use),
    and the next step agrees."""
    import lrkit.torch as lt
    from lrkit import schedules as S
    from lrkit.feedback import ReduceOnPlateau

    w = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(w, lr=1.0)
    first, second = (ReduceOnPlateau(factor=0.5, patience=0) for _ in range(2))
    a = lt.scheduler(opt, S.constant(1.0), feedback=first)
    b = lt.scheduler(opt, S.constant(1.0), feedback=second)
    seq = TL.SequentialLR(opt, [a, b], milestones=[2])
    for _ in range(4):
        opt.step()
        seq.step()
    for _ in range(2):
        assert lt.report(seq, value=1.0) == [a, b]
    assert first.scale == second.scale == 0.5
    assert opt.param_groups[0]["lr"] == 0.5
    opt.step()
    seq.step()
    assert opt.param_groups[0]["lr"] == 0.5


def test_a_report_before_a_sequential_phase_begins_gives_its_controller_no_step() -> None:
    """A report reaching a ``SequentialLR`` phase that has not begun gives its controller no
    step (the phase has none yet): a detector records the divergence at its own count of
    checks, not at step 0."""
    from lrkit.feedback import DivergenceDetector

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    detector = DivergenceDetector()
    a = lt.scheduler(opt, S.constant(1.0))
    b = lt.scheduler(opt, S.constant(0.5), feedback=detector)
    seq = TL.SequentialLR(opt, [a, b], milestones=[5])
    for _ in range(2):
        opt.step()
        seq.step()
    assert b.last_epoch == -1
    lt.report(seq, value=1.0)
    lt.report(seq, value=float("nan"))
    assert [(e["step"], e["action"]) for e in detector.events] == [(2, "restore")]


def test_an_ended_phase_loaded_from_a_checkpoint_still_does_not_own_the_lrs() -> None:
    """A checkpoint of a ``SequentialLR`` saved after its lrkit phase has ended and a report
    has gone through the later phase: loaded, the ended phase does not own the LRs, even
    where the later phase's LRs read the same as its own, and writes so again."""
    from lrkit.feedback import ReduceOnPlateau

    def build() -> tuple[Any, Any, Any, Any]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        a, b = (
            lt.scheduler(opt, S.constant(1.0), feedback=ReduceOnPlateau(factor=0.5, patience=0))
            for _ in range(2)
        )
        return opt, a, b, TL.SequentialLR(opt, [a, b], milestones=[2])

    opt, a, b, seq = build()
    for _ in range(4):
        opt.step()
        seq.step()
    for _ in range(2):
        lt.report(seq, value=1.0)
    saved = [copy.deepcopy(x.state_dict()) for x in (opt, a, b, seq)]
    assert saved[1]["owns_lrs"] is False and saved[2]["owns_lrs"] is True
    again = build()
    for x, state in zip(again, saved):
        x.load_state_dict(copy.deepcopy(state))
    opt2, a2, b2, _ = again
    assert opt2.param_groups[0]["lr"] == 0.5
    assert a2.state_dict()["owns_lrs"] is False and b2.state_dict()["owns_lrs"] is True


def test_a_list_from_a_config_is_one_schedule_per_group() -> None:
    """Any sequence that is no string is one schedule per param group, as a list is: an
    OmegaConf ListConfig from a Hydra config (it was read as one schedule and refused), and
    momentum= and fit(schedule=) alike."""
    from collections import UserList

    lists = [UserList(["cosine(0.1, 100)", {"name": "constant", "lr": 0.01}])]
    try:  # the list a Hydra config holds, where OmegaConf is installed
        from omegaconf import OmegaConf
    except ImportError:
        OmegaConf = None  # noqa: N806
    if OmegaConf is not None:
        cfg = OmegaConf.create(
            {"per_group": ["cosine(0.1, 100)", {"name": "constant", "lr": 0.01}]}
        )
        lists.append(cfg.per_group)
    for per_group in lists:
        a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
        opt = torch.optim.SGD([{"params": a.parameters()}, {"params": b.parameters()}], lr=0.1,
                              momentum=0.9)  # fmt: skip
        sch = lt.scheduler(opt, per_group, momentum=UserList(["constant(0.9)", "constant(0.8)"]))
        assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
        assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.8]
        assert sch.state_dict()["schedules"] == [S.parse("cosine(0.1, 100)").to_dict(),
                                                 S.constant(0.01).to_dict()]  # fmt: skip
    assert S.is_schedule_list(UserList([])) and not S.is_schedule_list("cosine(0.1, 10)")
    assert not S.is_schedule_list(S.constant(0.1)) and not S.is_schedule_list({"name": "x"})


def test_a_bad_schedule_among_several_is_named_by_where_it_was_given() -> None:
    """One of several schedules from a config (a group's, momentum's, a hyperparameter's)
    fails with the place it was given in front of the reason."""
    a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    opt = torch.optim.SGD([{"params": a.parameters()}, {"params": b.parameters()}], lr=0.1,
                          momentum=0.9, weight_decay=0.1)  # fmt: skip
    text = {"name": "cosine", "lr": "1e-3", "total_steps": 100}  # YAML's text, not a number
    for kwargs, where in (
        ({"schedule": ["cosine(0.1, 100)", text]}, "schedule[1]"),
        ({"schedule": "cosine(0.1, 100)", "hyperparams": {"weight_decay": text}},
         "hyperparams['weight_decay']"),
        ({"schedule": "cosine(0.1, 100)", "momentum": text}, "momentum"),
    ):  # fmt: skip
        with pytest.raises(ValueError) as info:
            lt.scheduler(opt, **kwargs)
        assert str(info.value).startswith(f"{where}: lr must be a finite real number, got '1e-3'")


def test_a_report_to_an_ended_phase_is_not_applied_by_a_resume() -> None:
    """A warmup phase with a controller hands over to StepLR at the same LR; a report after
    the handover cuts the ended phase's scale, not the LR. A checkpoint taken then says the
    LRs are not the warmup's (though they equal the last it set), so a resume keeps StepLR's
    LR and the run goes on as the uninterrupted one."""
    import io

    from lrkit.feedback import ReduceOnPlateau

    def build():
        opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
        warm = lt.scheduler(opt, S.warmup(0.0, end_lr=0.1, warmup_steps=5),
                            feedback=ReduceOnPlateau(factor=0.5, patience=0))  # fmt: skip
        return opt, warm, TL.SequentialLR(opt, [warm, TL.StepLR(opt, 10, 0.5)], milestones=[8])

    def run(opt, seq, steps):
        out = []
        for i in steps:
            opt.step()
            seq.step()
            if i in (9, 10):
                lt.report(seq, value=1.0)
            out.append(opt.param_groups[0]["lr"])
        return out

    opt, _, seq = build()
    whole = run(opt, seq, range(16))
    opt, warm, seq = build()
    resumed = run(opt, seq, range(12))
    assert warm.feedback.scale == 0.5 and opt.param_groups[0]["lr"] == 0.1
    assert warm.state_dict()["owns_lrs"] is False
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "seq": seq.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=False)
    opt, warm, seq = build()
    opt.load_state_dict(saved["opt"])
    seq.load_state_dict(saved["seq"])
    assert opt.param_groups[0]["lr"] == 0.1
    assert warm.state_dict()["owns_lrs"] is False  # still StepLR's after the load
    resumed += run(opt, seq, range(12, 16))
    assert resumed == whole


def test_groups_sharing_one_lr_tensor_each_get_their_own_values() -> None:
    """torch hands every group without its own lr the defaults' one lr tensor: each group
    gets its own copy, so per-group schedules hold (the last group's value was everyone's),
    the first group keeps the tensor it had, and a resume reapplies the LRs."""
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    opt = torch.optim.SGD([{"params": a.parameters()}, {"params": b.parameters()}],
                          lr=torch.tensor(0.1))  # fmt: skip
    first = opt.param_groups[0]["lr"]
    assert opt.param_groups[1]["lr"] is first
    sch = lt.scheduler(opt, [S.constant(0.1), S.constant(0.01)])
    assert opt.param_groups[0]["lr"] is first and opt.param_groups[1]["lr"] is not first
    assert [float(g["lr"]) for g in opt.param_groups] == [np.float32(0.1), np.float32(0.01)]
    assert sch.state_dict()["owns_lrs"] is True


def test_a_group_added_without_lr_to_a_tensor_lr_optimizer_starts_from_the_default() -> None:
    """Added without its own lr, a group gets the defaults' tensor, which the steps have set
    to the current LR: it follows the schedule at ratio 1 from the default, with its own
    tensor, as with a float lr."""
    for lr0 in (0.1, torch.tensor(0.1)):
        a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        opt = torch.optim.SGD(a.parameters(), lr=lr0)
        sch = lt.scheduler(opt, S.cosine(0.1, total_steps=10))
        for _ in range(5):
            sch.step()
        opt.add_param_group({"params": b.parameters()})
        sch.step()
        g0, g1 = opt.param_groups
        assert sch.ratios == [1.0, 1.0], type(lr0)
        assert float(g1["initial_lr"]) == float(np.float32(0.1) if torch.is_tensor(lr0) else 0.1)
        assert float(g0["lr"]) == float(g1["lr"])
        if torch.is_tensor(lr0):
            assert g1["lr"] is not g0["lr"]


def test_get_last_lr_has_the_type_of_each_group_s_lr_as_torch_s_schedulers() -> None:
    """A tensor LR's last LR is a new tensor of its dtype holding the value set (a float64
    before, so the type changed at a SequentialLR milestone), a float LR's a float."""
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.02}], lr=torch.tensor(0.01))
    seq = TL.SequentialLR(
        opt, [TL.LinearLR(opt, 0.1, 1.0, 2), lt.scheduler(opt, S.cosine(0.01, total_steps=10))], [2]
    )
    for _ in range(4):
        opt.step()
        seq.step()
        last = seq.get_last_lr()
        assert isinstance(last[0], torch.Tensor) and last[0].dtype == torch.float32
        assert isinstance(last[1], float)
        assert torch.equal(last[0], opt.param_groups[0]["lr"])
        assert last[1] == opt.param_groups[1]["lr"]
        assert last[0] is not opt.param_groups[0]["lr"]  # a copy, as torch's
    ref_opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=torch.tensor(0.01))
    ref = TL.CosineAnnealingLR(ref_opt, 10)
    ours_opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=torch.tensor(0.01))
    ours = lt.scheduler(ours_opt, S.cosine(0.01, total_steps=10))
    for _ in range(3):
        ref_opt.step()
        ours_opt.step()
        ref.step()
        ours.step()
    assert [type(v) for v in ours.get_last_lr()] == [type(v) for v in ref.get_last_lr()]


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cycliclr_momentum_with_base_above_max_is_a_sum(mode: str) -> None:
    """PyTorch takes base_momentum > max_momentum (the momentum then rises with the LR):
    parity.md's mapping is m + cyclic(0, b - m), bit for bit in float64."""
    b, m, up, down = 0.95, 0.85, 3, 2
    p = torch.nn.Parameter(torch.zeros(1))
    ref_opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    ref = TL.CyclicLR(ref_opt, 0.01, 0.1, step_size_up=up, step_size_down=down, mode=mode,
                      gamma=0.9, cycle_momentum=True, base_momentum=b, max_momentum=m)  # fmt: skip
    want = []
    for _ in range(40):
        want.append(ref_opt.param_groups[0]["momentum"])
        ref_opt.step()
        ref.step()
    spec = f"add([constant({m!r}), cyclic(0, {b - m!r}, {up}, {down}, mode={mode}, gamma=0.9)])"
    ours = S.parse(spec)
    assert ours.values(range(40)).tolist() == want


@pytest.mark.parametrize("groups", [1, 2])  # the one-group hot path, and _apply
def test_steps_past_2_53_read_the_schedule_as_its_call_reads_them(groups):
    """Past 2**53 a step is read as the nearest float64, as ``s(step)`` and ``s.values``
    read it (the scheduler passed the int on: another value at 2**53 + 1)."""
    s = S.join([S.constant(0.1), S.cosine_restarts(0.1, T_0=7.5, T_mult=1.3)], boundaries=[10])
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    opt = torch.optim.SGD([{"params": [p]} for p in params], lr=1.0)
    sch = lt.scheduler(opt, s)
    big = 2**53 + 1
    sch.load_state_dict(dict(sch.state_dict(), last_epoch=big, _step_count=big + 1))
    assert s(big) != s._at(big)  # the int and its float64 read other values here
    assert [g["lr"] for g in opt.param_groups] == [s(big)] * groups
    assert sch.get_lr() == [s(big)] * groups  # PyTorch's closed form reads it so too
    opt.step()
    sch.step()
    assert [g["lr"] for g in opt.param_groups] == [s(big + 1)] * groups
    assert s(big + 1) == s.values([big + 1])[0]


def test_refresh_under_a_chained_scheduler_reads_a_step_past_2_53_as_the_call():
    """Scaled by a ``ChainedScheduler`` partner, ``refresh`` multiplies the LR by the change of
    this scheduler's LR, read at the step as ``s(step)`` reads it: no change, no new LR."""
    s = S.join([S.constant(0.1), S.cosine_restarts(0.1, T_0=3)], boundaries=[10])
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    ours = lt.scheduler(opt, s)
    big = 2**53 + 1
    ours.load_state_dict(dict(ours.state_dict(), last_epoch=big, _step_count=big + 1))
    assert s(big) != s._at(big)  # the int reads another value
    opt.param_groups[0]["lr"] *= 3.0  # another scheduler's factor (stepped after this one)
    ours.refresh()
    assert opt.param_groups[0]["lr"] == s(big) * 3.0


@pytest.mark.parametrize(
    "epoch", [10**400, int(sys.float_info.max) + 1], ids=["10**400", "float64 max + 1"]
)
def test_a_step_beyond_float64_is_a_one_line_error(epoch):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sch = lt.scheduler(opt, S.cosine(0.1, total_steps=100))
    with pytest.raises(ValueError, match=r"^epoch must be an integer >= 0 .*beyond float64\)$"):
        sch.step(epoch)
    state = sch.state_dict()
    with pytest.raises(ValueError, match=r"^state_dict\['last_epoch'\] must be an integer >= -1"):
        sch.load_state_dict(dict(state, last_epoch=epoch))
    assert sch.last_epoch == 0 and opt.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("before", ["linear_lr", "lrkit_phase"])
def test_a_tensor_lr_shared_by_groups_keeps_their_ratios_after_schedulers_set_it(before):
    """A tensor ``lr`` given to the constructor is the very object of each group without an
    lr of its own, which schedulers set in place: the ratios are read off that group's
    ``initial_lr``, as with a float ``lr``."""

    def lrs_per_step(lr: Any, head: Any) -> list[list[float]]:
        w, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
        opt = torch.optim.AdamW([{"params": [w]}, {"params": [b], "lr": head}], lr=lr)
        if before == "linear_lr":
            first: Any = TL.LinearLR(opt, start_factor=0.1, total_iters=3)
        else:
            first = lt.scheduler(opt, S.linear(0.01, end_lr=0.1, total_steps=3))
        seq = TL.SequentialLR(opt, [first, lt.scheduler(opt, S.cosine(0.1, total_steps=6))],
                              milestones=[3])  # fmt: skip
        out = []
        for _ in range(6):
            out.append([float(g["lr"]) for g in opt.param_groups])
            opt.step()
            seq.step()
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tensor = lrs_per_step(torch.tensor(0.1), torch.tensor(0.01))
        floats = lrs_per_step(0.1, 0.01)
    np.testing.assert_allclose(tensor, floats, rtol=1e-6)  # float32 tensors


def test_a_checkpoint_of_another_schedule_warns_at_the_callers_line_naming_both():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    saved = lt.scheduler(opt, S.cosine(0.1, total_steps=100))
    saved.step()
    state = saved.state_dict()
    assert saved.load_warnings == ()
    opt2 = torch.optim.SGD(model.parameters(), lr=0.1)
    longer = lt.scheduler(opt2, S.cosine(0.1, total_steps=200))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        longer.load_state_dict(state)  # the line the warning points at
    [w] = caught
    message = (
        "the checkpoint was made with a different schedule (cosine(lr=0.1, total_steps=100, "
        "eta_min=0.0)); keeping the schedule given to this scheduler (cosine(lr=0.1, "
        "total_steps=200, eta_min=0.0))"
    )
    assert (str(w.message), w.category, w.filename) == (message, UserWarning, __file__)
    assert longer.load_warnings == (message,)  # for a trainer that silences warnings
    assert longer.get_last_lr() == [S.cosine(0.1, total_steps=200)(1)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        longer.load_state_dict(longer.state_dict())  # its own: no warning, none kept
    assert longer.load_warnings == ()
    # one schedule per param group: the group that differs is named
    groups = [{"params": [model.weight]}, {"params": [model.bias]}]
    per_group = lt.scheduler(torch.optim.SGD(groups, lr=0.1), [S.constant(0.1), S.constant(0.2)])
    other = lt.scheduler(torch.optim.SGD(groups, lr=0.1), [S.constant(0.1), S.constant(0.3)])
    with pytest.warns(UserWarning, match=r"^the checkpoint was made with a different schedule "
                      r"of param group 1 \(constant\(lr=0.2\)\); keeping the schedule given "
                      r"to this scheduler \(constant\(lr=0.3\)\)$"):  # fmt: skip
        other.load_state_dict(per_group.state_dict())


def test_a_checkpoint_of_other_momentum_schedules_warns_and_keeps_the_given_ones():
    model = torch.nn.Linear(2, 1)

    def build(momentum: Any) -> Any:
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return opt, lt.scheduler(opt, S.onecycle(0.1, total_steps=10), momentum=momentum)

    opt, saved = build(S.onecycle_momentum(10))
    for _ in range(3):
        opt.step()
        saved.step()
    state = saved.state_dict()
    opt2, other = build(None)
    with pytest.warns(UserWarning, match=r"^the checkpoint was made with other momentum or "
                      r"hyperparameter schedules \(momentum\); keeping the ones given to this "
                      r"scheduler \(none\)$"):  # fmt: skip
        other.load_state_dict(state)
    assert opt2.param_groups[0]["momentum"] == 0.9
    with warnings.catch_warnings():  # the same schedules: no warning
        warnings.simplefilter("error")
        build(S.onecycle_momentum(10))[1].load_state_dict(state)


def test_step_count_after_each_step_is_pytorchs():
    """One group at ratio 1, float LRs, no controller: ``_step_count`` (also in the
    checkpoint) counts construction and every step, as PyTorch's schedulers count them."""
    opt, ref_opt = _opt(0.1), _opt(0.1)
    sch = lt.scheduler(opt, S.cosine(0.1, total_steps=10))
    ref = TL.LambdaLR(ref_opt, lambda k: 1.0)
    assert sch._step_count == ref._step_count == 1
    for _ in range(3):
        opt.step()
        sch.step()
        ref_opt.step()
        ref.step()
        assert sch._step_count == ref._step_count
        assert sch.state_dict()["_step_count"] == ref.state_dict()["_step_count"]
    assert sch._step_count == 4


def test_a_checkpoint_without_step_count_resumes_the_count_of_its_step():
    """A checkpoint holding no ``_step_count`` resumes at ``last_epoch + 1``, the count of a
    scheduler stepped to that step."""
    opt = _opt(0.1)
    stepped = lt.scheduler(opt, S.cosine(0.1, total_steps=10))
    for _ in range(4):
        opt.step()
        stepped.step()
    state = stepped.state_dict()
    del state["_step_count"]
    resumed = lt.scheduler(_opt(0.1), S.cosine(0.1, total_steps=10))
    resumed.load_state_dict(state)
    assert resumed.last_epoch == 4
    assert resumed._step_count == stepped._step_count == 5
    assert resumed.state_dict() == stepped.state_dict()


def test_resume_restores_the_base_lrs_a_group_added_later_is_read_against():
    """The base LRs come from the checkpoint, whatever the resuming optimizer was built with:
    a param group added after the resume is adopted at the ratio the saving run gives it."""
    schedule = S.cosine(0.1, total_steps=10)
    opt = _opt(0.1)
    sch = lt.scheduler(opt, schedule)
    for _ in range(2):
        opt.step()
        sch.step()
    state = sch.state_dict()
    opt2 = _opt(0.5)
    sch2 = lt.scheduler(opt2, schedule)
    sch2.load_state_dict(state)
    assert sch2.base_lrs == [0.1]
    assert sch2.state_dict()["base_lrs"] == state["base_lrs"] == [0.1]
    for o, s in ((opt, sch), (opt2, sch2)):
        o.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.01})
        s.step()
    assert sch2.ratios == sch.ratios == [1.0, 0.01 / 0.1]
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    assert opt2.param_groups[1]["lr"] == pytest.approx(0.1 * schedule(3), rel=REL)


def test_an_unknown_keyword_names_the_option_meant() -> None:
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    options = "feedback, hyperparams, momentum, optimizer, schedule"
    for make, where in ((lt.scheduler, "lrkit.torch.scheduler()"),
                        (lt.LRKitScheduler, "LRKitScheduler")):  # fmt: skip
        with pytest.raises(TypeError) as info:
            make(opt, "constant(0.1)", last_epoch=5)  # type: ignore[call-arg]
        assert str(info.value) == (
            f"last_epoch is not an option of {where} (to resume, build it and "
            f"load_state_dict(state): the saved step's LRs are set); options: {options}"
        )
        with pytest.raises(TypeError, match=r"^feedbak is not an option .*did you mean feedback"):
            make(opt, "constant(0.1)", feedbak=None)  # type: ignore[call-arg]
        for peer in ("cycle_momentum", "base_momentum", "max_momentum"):  # OneCycleLR's
            with pytest.raises(TypeError) as info:
                make(opt, "onecycle(0.1, 10)", **{peer: 0.9})
            assert str(info.value) == (
                f"{peer} is not an option of {where} (to cycle the momentum (beta1 for Adam), "
                "pass momentum=lrkit.schedules.onecycle_momentum(total_steps, base_momentum=..., "
                f"max_momentum=...), or any schedule of it); options: {options}"
            )
    with pytest.raises(TypeError, match=r"^evry is not an option of EffectiveLRLogger \(did you"):
        lt.EffectiveLRLogger(opt, evry=3)  # type: ignore[call-arg]
    assert opt.param_groups[0]["lr"] == 0.1  # nothing built


def test_hyperparams_refuse_the_lr_key_and_leave_the_optimizer_as_it_was() -> None:
    """The LR is the schedule's to drive: ``hyperparams={"lr": ...}`` is a one-line error,
    and the optimizer is left untouched."""
    opt = _opt(0.1)
    with pytest.raises(ValueError) as info:
        lt.scheduler(opt, S.constant(0.1), hyperparams={"lr": S.constant(0.01)})
    assert str(info.value) == "hyperparams must not contain 'lr': pass it as schedule"
    assert opt.param_groups[0]["lr"] == 0.1 and "initial_lr" not in opt.param_groups[0]


def test_a_hyperparameter_holding_an_integer_tensor_is_refused() -> None:
    """A driven key must hold a floating-point number: an integer tensor (which an in-place
    fill would truncate) is refused at construction, naming the group and the key."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, weight_decay=0.01)
    opt.param_groups[0]["weight_decay"] = torch.tensor(0)
    with pytest.raises(ValueError) as info:
        lt.scheduler(opt, S.constant(0.1), hyperparams={"weight_decay": S.constant(0.01)})
    assert str(info.value) == (
        "hyperparams: param group 0 key 'weight_decay' holds tensor(0), not a number; "
        "a schedule drives numeric keys only"
    )
    assert opt.param_groups[0]["weight_decay"].dtype == torch.int64
    opt.param_groups[0]["weight_decay"] = torch.tensor(0.0)  # a float tensor is driven
    lt.scheduler(opt, S.constant(0.1), hyperparams={"weight_decay": S.constant(0.01)})
    assert float(opt.param_groups[0]["weight_decay"]) == pytest.approx(0.01)


@pytest.mark.parametrize("n_groups", [1, 2])
def test_a_momentum_schedule_reaching_nan_past_the_checked_steps_stops_the_step(
    n_groups: int,
) -> None:
    """A momentum schedule whose value becomes NaN at a step not checked when the scheduler
    was built (``inf - inf``) is refused as a negative one is, on the one-group short path
    and on the general path alike: nothing is set and the step is not taken."""
    s = S.constant(0.9) + (S.exponential(1.0, gamma=2.0) - S.exponential(1.0, gamma=2.0))
    with np.errstate(invalid="ignore", over="ignore"):
        first = int(np.argmax(np.isnan(s.values(np.arange(3000)))))
    assert first == 1024
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(n_groups)]
    opt = torch.optim.SGD([{"params": [p]} for p in params], lr=0.1, momentum=0.5)
    sch = lt.scheduler(opt, S.constant(0.1), momentum=s)
    sch.step(first - 1)
    assert [g["momentum"] for g in opt.param_groups] == [0.9] * n_groups
    with np.errstate(invalid="ignore", over="ignore"), pytest.raises(ValueError) as info:
        sch.step()
    assert str(info.value) == (
        f"momentum must be >= 0, got nan at step {first} (the schedule is NaN at a "
        "step not checked when the scheduler was built)"
    )
    assert [g["momentum"] for g in opt.param_groups] == [0.9] * n_groups
    assert sch.last_epoch == first - 1 and sch._step_count == 2


@pytest.mark.parametrize("n_groups", [1, 2])
def test_an_lr_overflowing_to_infinity_stops_the_step(n_groups: int) -> None:
    """A growing schedule that overflows float64 at a step not checked when the scheduler was
    built is refused as a NaN one is (the next optimizer step would make every weight inf or
    NaN), on the one-group short path and on the general path alike: nothing is set and the
    step is not taken."""
    s = S.exponential(0.1, gamma=1e10)
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(n_groups)]
    opt = torch.optim.SGD([{"params": [p]} for p in params], lr=0.1)
    sch = lt.scheduler(opt, s)
    sch.step(30)
    assert [g["lr"] for g in opt.param_groups] == [s(30)] * n_groups
    with np.errstate(over="ignore"), pytest.raises(ValueError) as info:
        sch.step()
    assert str(info.value) == (
        "schedule: the learning rate must be finite and >= 0, got inf at step 31 (the "
        "schedule is infinite at a step not checked when the scheduler was built)"
    )
    assert [g["lr"] for g in opt.param_groups] == [s(30)] * n_groups
    assert sch.last_epoch == 30


def test_a_momentum_schedule_reaching_one_is_refused_for_adams_beta1() -> None:
    """torch's Adam takes beta1 in [0, 1) (at 1 its bias correction divides by 0): a momentum
    schedule that reaches 1 is refused where it would drive betas[0], with the optimizer left
    as it was; SGD's momentum, which torch does not bound, is driven."""
    p, q = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([p], lr=0.1)
    for m, top in ((S.constant(1.5), "1.5"), (S.linear(0.9, end_lr=1.0, total_steps=10), "1.0")):
        with pytest.raises(ValueError) as info:
            lt.scheduler(opt, S.constant(0.1), momentum=m)
        assert str(info.value) == (
            "momentum: it drives param group 0's betas[0] (Adam's beta1), which must be in "
            f"[0, 1), got a schedule reaching {top}: {m}"
        )
    assert opt.param_groups[0]["betas"] == (0.9, 0.999) and opt.param_groups[0]["lr"] == 0.1
    lt.scheduler(opt, S.constant(0.1), momentum=S.onecycle_momentum(100))
    assert opt.param_groups[0]["betas"] == (0.95, 0.999)
    sgd = torch.optim.SGD([q], lr=0.1, momentum=0.5)
    lt.scheduler(sgd, S.constant(0.1), momentum=S.constant(1.5))
    assert sgd.param_groups[0]["momentum"] == 1.5


def test_a_checkpoints_ratio_of_a_single_group_holds_through_the_following_steps() -> None:
    """The group ratio a checkpoint holds is applied at the load and at every later step,
    one group at a float LR included."""
    s = S.cosine(0.1, total_steps=10)
    opt = _opt(0.1)
    sch = lt.scheduler(opt, s)
    state = {**sch.state_dict(), "last_epoch": 3, "_step_count": 4, "ratios": [0.5]}
    sch.load_state_dict(state)
    assert opt.param_groups[0]["lr"] == 0.5 * s(3)
    for k in (4, 5):
        opt.step()
        sch.step()
        assert opt.param_groups[0]["lr"] == 0.5 * s(k)
        assert sch.get_last_lr() == [0.5 * s(k)]
    assert sch.ratios == [0.5] and sch.state_dict()["ratios"] == [0.5]


@pytest.mark.parametrize("added_lr", [None, 0.05])
def test_groups_added_to_an_optimizer_built_at_lr_zero_follow_the_schedule(
    added_lr: float | None,
) -> None:
    """An optimizer built with ``lr=0`` has no LR a new group can be read against: a param
    group added later follows the schedule itself (ratio 1), whatever its own lr."""
    s = S.cosine(0.1, total_steps=10)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    sch = lt.scheduler(opt, s)
    assert opt.param_groups[0]["lr"] == s(0)
    opt.step()
    sch.step()
    group: dict[str, Any] = {"params": [torch.nn.Parameter(torch.zeros(1))]}
    if added_lr is not None:
        group["lr"] = added_lr
    opt.add_param_group(group)
    opt.step()
    sch.step()
    assert sch.ratios == [1.0, 1.0]
    assert [g["lr"] for g in opt.param_groups] == [s(2), s(2)]
    assert sch.base_lrs == [0.0, 0.0 if added_lr is None else added_lr]


def test_refresh_from_a_zero_lr_keeps_the_lr_another_hand_set() -> None:
    """The scheduler set LR 0 (its controller's scale was 0) and a hand then set another LR:
    a refresh after the scale changes has no factor to apply to it and keeps it (no
    division by zero); a later change of scale multiplies it."""
    from lrkit.feedback import Multiplier

    m = Multiplier(0.0)
    opt = _opt(0.1)
    sch = lt.scheduler(opt, S.constant(0.1), feedback=m)
    assert opt.param_groups[0]["lr"] == 0.0 and sch.get_last_lr() == [0.0]
    opt.param_groups[0]["lr"] = 0.05
    m.set_scale(1.0)
    sch.refresh()
    assert opt.param_groups[0]["lr"] == 0.05
    assert sch.get_last_lr() == [0.1] and sch.state_dict()["owns_lrs"] is False
    m.set_scale(0.5)
    sch.refresh()
    assert opt.param_groups[0]["lr"] == 0.025 and sch.get_last_lr() == [0.05]


def test_a_report_at_a_sequential_milestone_sets_the_lrs_through_the_phase_begun() -> None:
    """At the very step of a ``SequentialLR`` milestone the later phase is in charge: a report
    there sets its LRs (not the ended phase's), and the ended phase no longer owns them."""
    from lrkit.feedback import ReduceOnPlateau

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    first, second = (ReduceOnPlateau(factor=0.5, patience=0) for _ in range(2))
    a = lt.scheduler(opt, S.constant(1.0), feedback=first)
    b = lt.scheduler(opt, S.constant(0.25), feedback=second)
    seq = TL.SequentialLR(opt, [a, b], milestones=[2])
    for _ in range(2):
        opt.step()
        seq.step()
    assert seq.last_epoch == 2 and opt.param_groups[0]["lr"] == 0.25
    assert lt.report(seq, value=1.0) == [a, b]
    assert opt.param_groups[0]["lr"] == 0.25
    assert lt.report(seq, value=1.0) == [a, b]
    assert first.scale == second.scale == 0.5
    assert opt.param_groups[0]["lr"] == 0.125
    assert a.state_dict()["owns_lrs"] is False and b.state_dict()["owns_lrs"] is True
    opt.step()
    seq.step()
    assert opt.param_groups[0]["lr"] == 0.125


def _restart_at(sch: Any, at: int) -> None:
    """Step to ``at`` with improving metrics, then report a worse one (patience 0)."""
    while sch.last_epoch < at:
        sch.step()
    sch.report(3.0)


def test_a_restart_starts_the_momentum_and_hyperparameter_schedules_again() -> None:
    from lrkit.feedback import ReduceOnPlateau, RestartOnPlateau

    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1)
    lr, m = S.onecycle(0.1, total_steps=100), S.onecycle_momentum(100)
    wd = S.linear(0.1, end_lr=0.0, total_steps=100)
    fb = RestartOnPlateau(patience=0, factor=0.5) & ReduceOnPlateau(patience=100)
    sch = lt.scheduler(opt, lr, momentum=m, hyperparams={"weight_decay": wd}, feedback=fb)
    sch.report(2.0)
    _restart_at(sch, 40)
    assert fb.controllers[0].restarts == [40]
    g = opt.param_groups[0]
    for t in range(40, 60):  # the LR, the momentum and the weight decay all start again at 40
        assert g["lr"] == lr(t - 40) * 0.5
        assert g["momentum"] == m(t - 40) and g["weight_decay"] == wd(t - 40)
        sch.step()
    state = copy.deepcopy(sch.state_dict())
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9)
    opt2.param_groups[0]["weight_decay"] = 0.1
    fb2 = RestartOnPlateau(patience=0, factor=0.5) & ReduceOnPlateau(patience=100)
    sch2 = lt.scheduler(opt2, lr, momentum=m, hyperparams={"weight_decay": wd}, feedback=fb2)
    sch2.load_state_dict(state)  # resumed: the momentum goes on from the restart, exactly
    for _ in range(5):
        sch.step()
        sch2.step()
        assert opt2.param_groups[0] == {**g, "params": opt2.param_groups[0]["params"]}


def test_per_group_controllers_restart_each_group_s_momentum_alone() -> None:
    from lrkit.feedback import RestartOnPlateau

    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.02}], lr=0.01)
    lr, m = S.cosine(0.01, total_steps=100), S.onecycle_momentum(100)
    fbs = [RestartOnPlateau(patience=0), RestartOnPlateau(patience=1000)]
    sch = lt.scheduler(opt, lr, momentum=[m, S.constant(0.9)], feedback=fbs)
    sch.report(2.0)
    _restart_at(sch, 30)
    sch.step(35)
    g0, g1 = opt.param_groups
    assert g0["betas"] == (m(5), 0.999) and g0["lr"] == lr(5)
    assert g1["betas"] == (0.9, 0.999) and g1["lr"] == 2 * lr(35)
    shared = lt.scheduler(  # one momentum schedule for both groups, read at each group's step
        torch.optim.Adam([{"params": [a]}, {"params": [b]}], lr=0.01),
        lr,
        momentum=m,
        feedback=[RestartOnPlateau(patience=0), RestartOnPlateau(patience=1000)],
    )
    shared.report(2.0)
    _restart_at(shared, 30)
    shared.step(35)
    assert [g["betas"][0] for g in shared.optimizer.param_groups] == [m(5), m(35)]


def test_a_plateau_cut_leaves_the_momentum_schedule_where_it_was() -> None:
    from lrkit.feedback import ReduceOnPlateau

    opt = _opt(0.1)
    m = S.onecycle_momentum(100)
    sch = lt.scheduler(opt, S.constant(0.1), momentum=m, feedback=ReduceOnPlateau(patience=0))
    sch.report(2.0)
    _restart_at(sch, 20)
    sch.step(25)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01) and opt.param_groups[0][
        "momentum"
    ] == m(25)


def test_one_controller_s_schedule_step_is_read_once_a_step_for_every_group() -> None:
    """The momentum schedules of every group are read at one step, asked of the controller
    once (not once per group: a step's cost stays that of the schedules)."""
    from lrkit.feedback import ReduceOnPlateau

    class Counting(ReduceOnPlateau):
        asked = 0

        def schedule_step(self, step: Any) -> Any:
            Counting.asked += 1
            return super().schedule_step(step)

    ps = [torch.nn.Parameter(torch.zeros(1)) for _ in range(5)]
    opt = torch.optim.SGD([{"params": [p]} for p in ps], lr=0.1, momentum=0.9)
    m = S.onecycle_momentum(100)
    sch = lt.scheduler(opt, S.onecycle(0.1, total_steps=100), momentum=m, feedback=Counting())
    Counting.asked = 0
    for _ in range(10):
        sch.step()
    assert Counting.asked == 10
    assert [g["momentum"] for g in opt.param_groups] == [m(10)] * 5


def test_a_tensor_momentum_is_driven_in_place() -> None:
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.1, momentum=torch.tensor(0.9))
    held = opt.param_groups[0]["momentum"]
    m = S.linear(0.9, end_lr=0.5, total_steps=4)
    sch = lt.scheduler(opt, S.constant(0.1), momentum=m)
    for t in range(1, 5):
        sch.step()
        assert opt.param_groups[0]["momentum"] is held
        assert torch.equal(held, torch.tensor(m(t), dtype=held.dtype))


def test_a_hyperparameter_key_holding_a_long_list_is_named_by_its_type() -> None:
    opt = _opt(0.1)
    opt.param_groups[0]["decay_by_layer"] = [0.5] * 30
    with pytest.raises(
        ValueError,
        match=r"^hyperparams: param group 0 key 'decay_by_layer' holds a list, not a number",
    ):
        lt.scheduler(opt, S.constant(0.1), hyperparams={"decay_by_layer": S.constant(0.1)})


def test_a_group_at_the_optimizers_default_lr_beside_one_of_its_own_keeps_their_ratio() -> None:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([{"params": [a]}, {"params": [b], "lr": 1e-2}])
    sch = lt.scheduler(opt, S.constant(0.1))
    assert sch.ratios == [1.0, 10.0]
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]


def test_a_schedule_peaking_near_but_not_at_the_default_lr_is_not_taken_in_its_units() -> None:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([{"params": [a], "lr": 1e-2}, {"params": [b], "lr": 1e-1}])
    with pytest.raises(ValueError, match=r"the schedule, which peaks at 0\.00105; pass lr="):
        lt.scheduler(opt, S.constant(1.05e-3))
    with pytest.raises(ValueError, match=r"the schedule, which peaks at 0\.001001; pass lr="):
        lt.scheduler(opt, S.constant(1.001e-3))  # 0.1% off is not the default either
    assert lt.scheduler(opt, S.constant(1e-3)).ratios == [10.0, 100.0]


class _Combined(torch.optim.Optimizer):
    """The param groups of several optimizers as one optimizer's (at the default lr 0.1)."""

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        self.defaults = {"lr": 0.1}
        self.param_groups = [g for o in optimizers for g in o.param_groups]
        self.state = {}


def test_momentum_drives_each_group_s_own_key_in_an_optimizer_mixing_sgd_and_adam() -> None:
    sgd = _opt(0.1)
    adam = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    m = S.linear(0.9, end_lr=0.5, total_steps=4)
    sch = lt.scheduler(_Combined(sgd, adam), S.constant(0.1), momentum=m)
    sch.step(2)
    assert sgd.param_groups[0]["momentum"] == m(2) and "betas" not in sgd.param_groups[0]
    assert adam.param_groups[0]["betas"] == (m(2), 0.999)
    assert "momentum" not in adam.param_groups[0]


def test_adam_beta2_stays_as_given_while_momentum_drives_beta1() -> None:
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([p], lr=0.01, betas=(0.9, 0.98))
    m = S.onecycle_momentum(10)
    sch = lt.scheduler(opt, S.cosine(0.01, total_steps=10), momentum=m)
    for t in range(1, 6):
        sch.step()
        assert opt.param_groups[0]["betas"] == (m(t), 0.98)


def test_a_checkpoint_after_a_jump_to_a_step_resumes_its_step_count():
    """``step(epoch)`` counts one call, not the steps jumped: the resumed count is the saved one."""
    opt = _opt(0.1)
    jumped = lt.scheduler(opt, S.cosine(0.1, total_steps=100))
    jumped.step(30)
    assert jumped._step_count == 2
    resumed = lt.scheduler(_opt(0.1), S.cosine(0.1, total_steps=100))
    resumed.load_state_dict(jumped.state_dict())
    assert resumed.last_epoch == 30 and resumed._step_count == 2
    assert resumed.state_dict() == jumped.state_dict()


def test_momentum_names_the_param_group_that_has_no_momentum() -> None:
    adagrad = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(
        ValueError, match=r"^momentum: param group 1 has neither 'momentum' nor 'betas'"
    ):
        lt.scheduler(_Combined(_opt(0.1), adagrad), S.constant(0.1), momentum=S.constant(0.9))


def test_a_list_of_the_wrong_length_names_both_counts() -> None:
    opt = _two_group_sgd((0.1, 0.01))
    with pytest.raises(
        ValueError, match=r"^momentum: a list needs one schedule per param group \(2\), got 3$"
    ):
        lt.scheduler(opt, S.constant(0.1), momentum=[S.constant(0.9)] * 3)


def test_per_group_controllers_are_refused_once_a_divergence_guard_joined() -> None:
    from lrkit.feedback import ReduceOnPlateau

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias]}], lr=0.1)
    sch = lt.scheduler(opt, S.constant(0.1))
    lt.DivergenceGuard(model, optimizer=opt, scheduler=sch)
    held = sch.feedback
    with pytest.raises(
        ValueError,
        match=r"^feedback: a DivergenceGuard joined this scheduler, whose cuts need one "
        r"controller for all param groups \(or None\), got a list of per-group controllers$",
    ):
        sch.feedback = [ReduceOnPlateau(), ReduceOnPlateau()]
    assert sch.feedback is held


def test_a_negative_schedule_in_a_per_group_list_is_refused_at_construction() -> None:
    """Each schedule of a per-group list (of the LR or the momentum) is checked over its steps
    when the scheduler is built, named by its place in the list; nothing is changed."""
    opt = _two_group_sgd((0.1, 0.1))
    with pytest.raises(ValueError, match=r"^schedule\[1\] must be >= 0 at every step .* at step 6"):
        lt.scheduler(opt, [S.constant(0.1), S.cosine(0.1, total_steps=10) - 0.05])
    with pytest.raises(ValueError, match=r"^momentum\[1\] must be >= 0 at every step .* at step 5"):
        lt.scheduler(
            opt, S.constant(0.1), momentum=[S.constant(0.9), S.cosine(0.9, total_steps=10) - 0.5]
        )
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1]
    assert all("initial_lr" not in g for g in opt.param_groups)


def test_a_per_group_hyperparameter_list_of_one_group_is_driven_at_every_step() -> None:
    opt = _opt(0.1)
    wd = S.linear(0.1, end_lr=0.0, total_steps=10)
    s = S.cosine(0.1, total_steps=10)
    sch = lt.scheduler(opt, s, hyperparams={"weight_decay": [wd]})
    assert opt.param_groups[0]["weight_decay"] == wd(0)
    for k in range(1, 5):
        sch.step()
        assert (opt.param_groups[0]["lr"], opt.param_groups[0]["weight_decay"]) == (s(k), wd(k))


def test_a_group_added_to_a_scheduler_with_per_group_controllers_is_refused() -> None:
    from lrkit.feedback import ReduceOnPlateau

    opt = _two_group_sgd((0.1, 0.1))
    sch = lt.scheduler(opt, S.constant(0.1), feedback=[ReduceOnPlateau(), ReduceOnPlateau()])
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))]})
    with pytest.raises(
        ValueError,
        match=r"^optimizer: param groups were added \(2 -> 3\) to an optimizer whose scheduler "
        r"has one schedule or controller per group; build the scheduler after add_param_group$",
    ):
        sch.step()
    assert sch.last_epoch == 0


def test_a_param_group_removed_from_the_optimizer_is_refused_at_the_next_step() -> None:
    opt = _two_group_sgd((0.1, 0.01))
    sch = lt.scheduler(opt, S.cosine(0.1, total_steps=10))
    sch.step()
    opt.param_groups.pop()
    with pytest.raises(
        ValueError,
        match=r"^optimizer: it has 1 param groups, the scheduler was built for 2; param groups "
        r"cannot be removed from a scheduled optimizer$",
    ):
        sch.step()
    assert sch.last_epoch == 1


def test_a_group_added_without_a_driven_key_is_refused_naming_it() -> None:
    sgd = _opt(0.1)
    combined = _Combined(sgd)
    d = S.linear(0.0, end_lr=0.1, total_steps=10)
    sch = lt.scheduler(combined, S.constant(0.1), hyperparams={"dampening": d})
    adam = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    combined.param_groups.append(adam.param_groups[0])  # Adam's group holds no dampening
    with pytest.raises(ValueError) as info:
        sch.step()
    keys = sorted(k for k in adam.param_groups[0] if k != "params")
    assert str(info.value) == f"hyperparams: param group 1 has no key 'dampening' (keys: {keys})"
    assert sch.last_epoch == 0 and "dampening" not in adam.param_groups[0]
    assert sgd.param_groups[0]["dampening"] == d(0)


def test_a_group_added_without_momentum_is_refused_as_one_given_at_construction() -> None:
    """The same message whether the group was there when the scheduler was built or added
    after it."""
    adagrad = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    combined = _Combined(_opt(0.1))
    sch = lt.scheduler(combined, S.constant(0.1), momentum=S.constant(0.9))
    combined.param_groups.append(adagrad.param_groups[0])
    with pytest.raises(ValueError) as added:
        sch.step()
    with pytest.raises(ValueError) as built:
        lt.scheduler(_Combined(_opt(0.1), adagrad), S.constant(0.1), momentum=S.constant(0.9))
    assert (
        str(added.value)
        == str(built.value)
        == (
            "momentum: param group 1 has neither 'momentum' nor 'betas' (_Combined cannot cycle "
            "momentum)"
        )
    )
    assert sch.last_epoch == 0 and "momentum" not in adagrad.param_groups[0]


def test_step_refuses_a_bool_epoch_and_keeps_its_step() -> None:
    opt = _opt(0.1)
    sch = lt.scheduler(opt, S.cosine(0.1, total_steps=10))
    sch.step()
    with pytest.raises(
        ValueError, match=r"^step\(\) takes no metric or fractional epoch, got True"
    ):
        sch.step(True)
    assert sch.last_epoch == 1 and opt.param_groups[0]["lr"] == S.cosine(0.1, total_steps=10)(1)


def test_report_returns_one_scale_per_group_when_groups_share_a_controller() -> None:
    from lrkit.feedback import ReduceOnPlateau

    opt = _two_group_sgd((0.1, 0.1))
    shared = ReduceOnPlateau(factor=0.5, patience=0)
    sch = lt.scheduler(opt, S.constant(0.1), feedback=[shared, shared])
    assert sch.report(1.0) == [1.0, 1.0]
    assert sch.report(2.0) == [0.5, 0.5]  # one observation for the controller both groups hold
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.05]


def test_a_list_from_get_last_lr_is_the_callers_to_change() -> None:
    s = S.cosine(0.1, total_steps=10)
    for groups in (1, 2):
        opt = _two_group_sgd((0.1, 0.1)) if groups == 2 else _opt(0.1)
        sch = lt.scheduler(opt, s)
        for k in (0, 1):
            if k:
                sch.step()
            last = sch.get_last_lr()
            last[0] = 5.0
            assert sch.get_last_lr() == [s(k)] * groups
            assert sch.state_dict()["owns_lrs"] is True


def test_a_feedback_state_of_another_layout_is_refused_and_changes_nothing() -> None:
    from lrkit.feedback import ReduceOnPlateau

    def make(feedback: Any) -> Any:
        sch = lt.scheduler(_two_group_sgd((0.1, 0.1)), S.constant(0.1), feedback=feedback)
        for v in (1.0, 2.0):
            sch.report(v)
            sch.step()
        return sch

    per_group = make([ReduceOnPlateau(factor=0.5, patience=0) for _ in range(2)])
    single = make(ReduceOnPlateau(factor=0.5, patience=0))
    fresh_list = make([ReduceOnPlateau(factor=0.5, patience=0) for _ in range(2)])
    fresh_one = make(ReduceOnPlateau(factor=0.5, patience=0))
    bad_list = {**per_group.state_dict(), "feedback": per_group.state_dict()["feedback"][:1]}
    for sch, state, match in (
        (fresh_list, bad_list, r"^state_dict\['feedback'\] must hold one controller state per "
         r"param group \(2\), as this scheduler has a list of controllers$"),
        (fresh_list, single.state_dict(), r"^state_dict\['feedback'\] must hold one controller"),
        (fresh_one, per_group.state_dict(), r"^state_dict\['feedback'\] holds one controller "
         r"per param group, but this scheduler has a single controller: pass feedback=\[\.\.\.\]"),
    ):  # fmt: skip
        before = (copy.deepcopy(sch.state_dict()), [g["lr"] for g in sch.optimizer.param_groups])
        with pytest.raises(ValueError, match=match):
            sch.load_state_dict(state)
        after = (sch.state_dict(), [g["lr"] for g in sch.optimizer.param_groups])
        assert after == before


def test_a_sequential_phase_not_begun_round_trips_its_state_through_a_load() -> None:
    def build() -> tuple[Any, Any, Any]:
        opt = _opt(0.1)
        later = lt.scheduler(opt, S.cosine(0.1, total_steps=10))
        first = lt.scheduler(opt, S.constant(0.01))
        return opt, later, TL.SequentialLR(opt, [first, later], milestones=[3])

    opt, later, seq = build()
    opt.step()
    seq.step()
    saved = copy.deepcopy(seq.state_dict())
    opt2, later2, seq2 = build()
    opt2.load_state_dict(opt.state_dict())
    seq2.load_state_dict(saved)
    assert later2.last_epoch == later.last_epoch == -1
    assert later2.state_dict() == later.state_dict()
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]


def test_a_sequential_of_two_lrkit_phases_runs_through_its_milestone_without_a_warning() -> None:
    """SequentialLR resets the LRs to their initial values and steps its first phase from -1
    as it is built: no LR was changed by another hand, so nothing is said."""
    opt = _opt(0.1)
    first = lt.scheduler(opt, S.constant(0.01))
    warm = S.linear(0.0, end_lr=0.1, total_steps=10)  # sets 0: neither phase's LR is 0.1
    later = lt.scheduler(opt, warm)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seq = TL.SequentialLR(opt, [first, later], milestones=[3])
        lrs = []
        for _ in range(6):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            seq.step()
    assert lrs == [0.01, 0.01, 0.01, *(warm(k) for k in range(3))]
