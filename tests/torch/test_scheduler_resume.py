"""lrkit.torch.scheduler: resuming exactly with param groups added between the save and the
step that adopts them, inside PyTorch's composites."""

from __future__ import annotations

import io
import itertools
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import lrkit.torch as lt  # noqa: E402
from lrkit import schedules as S  # noqa: E402

TL = torch.optim.lr_scheduler


def _build(first: str, *, tensor: bool, added: bool) -> tuple[Any, Any, Any]:
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.SGD([a], lr=torch.tensor(0.01) if tensor else 0.01, momentum=0.9)
    if added:
        opt.add_param_group({"params": [b]})
    if first == "warmup":
        p1 = lt.scheduler(opt, S.linear(0.001, end_lr=0.01, total_steps=4))
    else:
        p1 = lt.scheduler(opt, S.constant(0.005))
    seq = TL.SequentialLR(opt, [p1, lt.scheduler(opt, S.cosine(0.01, total_steps=12))], [4])
    return b, opt, seq


def _run(opt: Any, seq: Any, steps: int) -> list[list[float]]:
    out = []
    for _ in range(steps):
        opt.step()
        seq.step()
        out.append([float(g["lr"]) for g in opt.param_groups])
    return out


@pytest.mark.parametrize(
    ("first", "tensor", "order"),
    list(itertools.product(["warmup", "constant"], [True, False], ["optimizer", "scheduler"])),
)
def test_a_group_added_in_the_first_phase_of_a_sequential_lr_resumes_exactly(
    first: str, tensor: bool, order: str
) -> None:
    """The first phase adopts a group added without its own lr (its initial_lr, the default);
    the later phase, built when the shared tensor held the warmup's LR, takes that initial_lr
    at the milestone, in the run that saved and in the resumed one alike."""
    b, opt, seq = _build(first, tensor=tensor, added=False)
    _run(opt, seq, 1)
    opt.add_param_group({"params": [b]})
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "seq": seq.state_dict()}, buf)
    expected = _run(opt, seq, 6)
    assert all(row[0] == row[1] for row in expected)  # ratio 1: the default, 0.01
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    _, opt2, seq2 = _build(first, tensor=tensor, added=True)
    if order == "optimizer":
        opt2.load_state_dict(saved["opt"])
        seq2.load_state_dict(saved["seq"])
    else:
        seq2.load_state_dict(saved["seq"])
        opt2.load_state_dict(saved["opt"])
    assert _run(opt2, seq2, 6) == expected


@pytest.mark.parametrize("order", ["optimizer", "scheduler"])
def test_a_second_added_group_saved_before_its_adopting_step_resumes_exactly(order: str) -> None:
    """One group added and adopted, a second added without its own lr and saved before the
    step that adopts it: resumed into a scheduler built before both were added, the second
    starts from the default as in the run that saved (0.945x before), in either load order."""

    def fresh() -> tuple[Any, Any, Any, Any]:
        torch.manual_seed(0)
        a, b, c = (torch.nn.Parameter(torch.randn(3)) for _ in range(3))
        opt = torch.optim.Adam([a], lr=torch.tensor(0.01))
        return b, c, opt, lt.scheduler(opt, S.cosine(0.01, total_steps=20))

    b, c, opt, sch = fresh()
    _run(opt, sch, 2)
    opt.add_param_group({"params": [b]})
    _run(opt, sch, 1)
    opt.add_param_group({"params": [c]})
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sch": sch.state_dict()}, buf)
    expected = _run(opt, sch, 3)
    assert all(row[0] == row[1] == row[2] for row in expected)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    b2, c2, opt2, sch2 = fresh()
    opt2.add_param_group({"params": [b2]})
    opt2.add_param_group({"params": [c2]})
    if order == "optimizer":
        opt2.load_state_dict(saved["opt"])
        sch2.load_state_dict(saved["sch"])
    else:
        sch2.load_state_dict(saved["sch"])
        opt2.load_state_dict(saved["opt"])
    assert _run(opt2, sch2, 3) == expected


@pytest.mark.parametrize("tensor", [True, False])
def test_a_refused_checkpoint_leaves_groups_added_since_the_last_step_as_they_were(
    tensor: bool,
) -> None:
    """Refused after the groups added since the last step were read (a checkpoint with a
    controller's state, resumed without feedback=): the optimizer's groups (their lr and no
    initial_lr) and the scheduler's state are as before the load."""
    from lrkit.feedback import ReduceOnPlateau

    def build(feedback: bool) -> tuple[Any, Any]:
        torch.manual_seed(0)
        a, b = torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(3))
        opt = torch.optim.SGD([a], lr=torch.tensor(0.01) if tensor else 0.01)
        sch = lt.scheduler(opt, S.cosine(0.01, total_steps=30),
                           feedback=ReduceOnPlateau() if feedback else None)  # fmt: skip
        _run(opt, sch, 2)
        opt.add_param_group({"params": [b]})
        return opt, sch

    opt, sch = build(True)
    _run(opt, sch, 1)
    saved = sch.state_dict()
    opt2, sch2 = build(False)
    before = [{k: v for k, v in g.items() if k != "params"} for g in opt2.param_groups]
    lr_objects = [g["lr"] for g in opt2.param_groups]
    state = sch2.state_dict()
    with pytest.raises(ValueError, match=r"^state_dict holds a feedback controller's state"):
        sch2.load_state_dict(saved)
    after = [{k: v for k, v in g.items() if k != "params"} for g in opt2.param_groups]
    assert after == before and "initial_lr" not in opt2.param_groups[1]
    assert all(g["lr"] is lr for g, lr in zip(opt2.param_groups, lr_objects))
    assert sch2.state_dict() == state
    assert _run(opt2, sch2, 2) == _run(*build(False), 2)  # steps on as it would have
