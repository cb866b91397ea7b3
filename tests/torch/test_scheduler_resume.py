"""lrkit.torch.scheduler: resuming exactly with param groups added between the save and the
step that adopts them, inside PyTorch's composites."""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np
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


def _saved(opt: Any, sched: Any) -> dict[str, Any]:
    """The optimizer's and the scheduler's states through ``torch.save`` and a
    ``weights_only`` load, as a checkpoint file holds them."""
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    buf.seek(0)
    saved: dict[str, Any] = torch.load(buf, weights_only=True)
    return saved


def _load(order: str, opt: Any, sched: Any, saved: dict[str, Any]) -> None:
    """Load ``saved`` into both, the scheduler first when ``order`` says so."""
    if order.startswith("scheduler"):
        sched.load_state_dict(saved["sched"])
        opt.load_state_dict(saved["opt"])
    else:
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])


@pytest.mark.parametrize("order", ["optimizer first", "scheduler first", "built with both"])
@pytest.mark.parametrize("tensor", [True, False])
def test_a_group_added_without_lr_then_saved_before_the_next_step_resumes_exactly(
    order: str, tensor: bool
) -> None:
    """The checkpoint of a tensor-LR optimizer holds the shared tensor's current value for a
    group added without its own lr; the scheduler's keeps the base it will be adopted with
    (the default), so the resumed run trains it as the run that saved did (at 0.79x before)."""

    def build(both: bool = False) -> tuple[Any, Any, Any]:
        torch.manual_seed(0)
        a, b = torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(3))
        opt = torch.optim.Adam([a], lr=torch.tensor(0.01) if tensor else 0.01, foreach=False)
        if both:
            opt.add_param_group({"params": [b]})
        return b, opt, lt.scheduler(opt, S.cosine(0.01, total_steps=10))

    b, opt, sch = build()
    _run(opt, sch, 3)
    opt.add_param_group({"params": [b]})
    saved = _saved(opt, sch)
    expected = _run(opt, sch, 4)
    assert expected[0][0] == expected[0][1]
    assert saved["sched"]["added_base_lrs"] == [float(np.float32(0.01)) if tensor else 0.01]
    b2, opt2, sch2 = build(both=order == "built with both")
    if order != "built with both":
        opt2.add_param_group({"params": [b2]})
    _load(order, opt2, sch2, saved)
    assert _run(opt2, sch2, 4) == expected
    assert sch2.ratios == sch.ratios == [1.0, 1.0]
    assert sch2.state_dict() == sch.state_dict()
    with pytest.raises(ValueError, match=r"^state_dict\['added_base_lrs'\] must be a list"):
        sch2.load_state_dict({**saved["sched"], "added_base_lrs": 0.01})


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
    saved = _saved(opt, seq)
    expected = _run(opt, seq, 6)
    assert all(row[0] == row[1] for row in expected)  # ratio 1: the default, 0.01
    _, opt2, seq2 = _build(first, tensor=tensor, added=True)
    _load(order, opt2, seq2, saved)
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
    saved = _saved(opt, sch)
    expected = _run(opt, sch, 3)
    assert all(row[0] == row[1] == row[2] for row in expected)
    b2, c2, opt2, sch2 = fresh()
    opt2.add_param_group({"params": [b2]})
    opt2.add_param_group({"params": [c2]})
    _load(order, opt2, sch2, saved)
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


@pytest.mark.parametrize("per_group", [False, True])
def test_a_controller_built_with_other_settings_takes_the_checkpoints_and_says_so(
    per_group: bool,
) -> None:
    """As PyTorch's ReduceLROnPlateau.load_state_dict, the settings come with the state; a
    warning names them (Keras' BackupAndRestore keeps its own and warns too)."""
    import warnings

    from lrkit.feedback import ReduceOnPlateau

    def build(**settings: Any) -> Any:
        opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
        fb = [ReduceOnPlateau(**settings)] if per_group else ReduceOnPlateau(**settings)
        return lt.scheduler(opt, "constant(0.1)", feedback=fb)

    saved = build(patience=1, factor=0.1)
    for value in (1.0, 2.0, 2.0):
        saved.report(value)
    state = saved.state_dict()
    other = build(patience=5, factor=0.3)
    with pytest.warns(UserWarning) as caught:
        other.load_state_dict(state)
    group = " (group 0)" if per_group else ""
    assert [str(w.message) for w in caught] == [
        f"the checkpoint's feedback controller was built with other factor{group}, "
        f"patience{group}: its settings are loaded with its state (as PyTorch's "
        "ReduceLROnPlateau loads them), replacing those given to this scheduler's controller"
    ]
    loaded = other.feedback[0] if per_group else other.feedback
    assert (loaded.patience, loaded.factor, loaded.scale) == (1, 0.1, 0.1)
    assert other.load_warnings == tuple(str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # built alike: no warning
        build(patience=1, factor=0.1).load_state_dict(state)


def test_a_checkpoint_from_before_a_family_gained_a_parameter_loads_without_a_warning():
    """A checkpoint holding a schedule written before its family gained a parameter (``wsd``'s
    ``warmup``, at its default; nested in a join, and as a momentum schedule) is the same
    schedule: it loads silently, and the LRs go on as from the uninterrupted scheduler."""
    import copy
    import warnings

    lr = S.join([S.wsd(0.1, total_steps=100, warmup_steps=10), S.constant(0.0)], boundaries=[100])
    mom = S.wsd(0.9, total_steps=100, warmup_steps=10)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0, momentum=0.9)
    sched = lt.scheduler(opt, lr, momentum=mom)
    for _ in range(5):
        opt.step()
        sched.step()
    state = copy.deepcopy(sched.state_dict())
    state["schedules"][0]["schedules"][0].pop("warmup")  # as written before
    state["hyperparams"]["momentum"].pop("warmup")
    p2 = torch.nn.Parameter(torch.zeros(1))
    opt2 = torch.optim.SGD([p2], lr=1.0, momentum=0.9)
    opt2.load_state_dict(opt.state_dict())
    again = lt.scheduler(opt2, lr, momentum=mom)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again.load_state_dict(state)
    assert again.load_warnings == ()
    for _ in range(3):
        opt.step()
        opt2.step()
        sched.step()
        again.step()
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
        assert opt2.param_groups[0]["momentum"] == opt.param_groups[0]["momentum"]
