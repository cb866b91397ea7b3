"""lrkit.hf on a real transformers Trainer with a tiny BERT built from a config (CPU, no
downloads)."""

from __future__ import annotations

import copy
import importlib.util
import warnings
from pathlib import Path
from typing import Any

import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")

import lrkit.torch as lt  # noqa: E402
from lrkit import schedules as S  # noqa: E402
from lrkit.feedback import Feedback, ReduceOnPlateau, RestartOnPlateau  # noqa: E402
from lrkit.hf import ReportMetric, Trainer, find_lr  # noqa: E402

#: transformers resumes a checkpoint (optimizer, scheduler) through torch.load, which it allows
#: only with torch >= 2.6 (CVE-2025-32434)
resumes = pytest.mark.skipif(
    tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) < (2, 6),
    reason="transformers resumes a checkpoint only with torch >= 2.6",
)

STEPS_PER_EPOCH = 8  # 64 examples, batch 8


def _example(name: str) -> Any:
    """The module of ``examples/<name>.py`` (its code runs under ``__main__`` only)."""
    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"lrkit_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: the tiny BERT of the Hugging Face example (a 1-layer classifier from a config, seeded)
tiny_bert = _example("hf_trainer").tiny_bert


class Pairs(torch.utils.data.Dataset):  # type: ignore[misc]
    """Token sequences labelled by the parity of their sum."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 32, (n, 8), generator=g)
        self.labels = (self.ids.sum(dim=1) % 2).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def _args(tmp_path: Any, **kwargs: Any) -> Any:
    opts: dict[str, Any] = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        num_train_epochs=2,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        learning_rate=0.01,
        weight_decay=0.01,
    )
    opts.update(kwargs)
    return transformers.TrainingArguments(**opts)


def _logged_lrs(trainer: Any) -> dict[int, float]:
    return {
        h["step"]: h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h
    }


def test_logged_lrs_equal_the_schedule_and_hf_groups_are_kept(tmp_path: Any) -> None:
    spec = "join([warmup(0, 0.01, 4), cosine(0.01, 12)], boundaries=[4])"
    trainer = Trainer(
        model=tiny_bert(), args=_args(tmp_path), train_dataset=Pairs(64, 1), schedule=spec
    )
    trainer.train()
    s = S.parse(spec)
    steps = 2 * STEPS_PER_EPOCH
    # HF logs the LR each optimizer step ran at: step k (1-based) ran at schedule(k - 1)
    assert _logged_lrs(trainer) == {k: s(k - 1) for k in range(1, steps + 1)}
    groups = trainer.optimizer.param_groups
    assert sorted(g["weight_decay"] for g in groups) == [0.0, 0.01]  # decay / no-decay kept
    assert [g["lr"] for g in groups] == [s(steps)] * 2


def test_schedule_from_the_step_count_and_bad_arguments(tmp_path: Any) -> None:
    seen: list[int] = []

    def make(n: int) -> Any:
        seen.append(n)
        return S.cosine(0.01, total_steps=n)

    trainer = Trainer(
        model=tiny_bert(), args=_args(tmp_path), train_dataset=Pairs(64, 1), schedule=make
    )
    trainer.train()
    assert seen == [2 * STEPS_PER_EPOCH]
    assert _logged_lrs(trainer)[5] == S.cosine(0.01, total_steps=16)(4)
    with pytest.raises(ValueError, match="feedback needs a schedule"):
        Trainer(model=tiny_bert(), args=_args(tmp_path), feedback=ReduceOnPlateau())
    with pytest.raises(ValueError, match="schedule must be"):
        Trainer(model=tiny_bert(), args=_args(tmp_path), schedule=3)
    # a bad spec is refused when the Trainer is made, not when train() starts
    with pytest.raises(ValueError) as info:
        Trainer(model=tiny_bert(), args=_args(tmp_path), schedule={"type": "cosine"})
    assert str(info.value) == (
        "schedule: d must be a dict with a 'name' key, got a dict with keys 'type'"
    )
    with pytest.raises(S.SpecError, match="invalid schedule spec at position"):
        Trainer(model=tiny_bert(), args=_args(tmp_path), schedule="cosine(")
    spec = Trainer(model=tiny_bert(), args=_args(tmp_path), schedule="cosine(0.01, 16)")
    assert spec.lrkit_schedule == S.cosine(0.01, total_steps=16)
    # a schedule class un-called is callable, but schedule(n) would be cosine(lr=n)
    for cls in (S.cosine, S.constant):
        with pytest.raises(ValueError, match=f"got the class {cls.__name__} itself"):
            Trainer(model=tiny_bert(), args=_args(tmp_path), schedule=cls)
    # the Lightning finder's form schedule(result, n) is refused now, not when train() starts
    with pytest.raises(TypeError) as err:
        Trainer(model=tiny_bert(), args=_args(tmp_path), schedule=lambda r, n: S.cosine(r, n))
    assert str(err.value) == (
        "schedule must be a callable schedule(num_training_steps), taking 1 positional "
        "argument; got <lambda>(r, n)"
    )


@pytest.mark.parametrize(
    "kwargs, says",
    [
        ({"metric_for_best_model": "score"},
         "(use monitor=; without it, args.metric_for_best_model is read)"),
        ({"metric": "eval_score"}, "(use monitor=, the name of the metric)"),
        ({"monitr": "eval_score"}, "(did you mean monitor?)"),
    ],
)  # fmt: skip
def test_report_metric_names_the_option_meant_for_an_unknown_keyword(kwargs, says) -> None:
    with pytest.raises(TypeError) as info:
        ReportMetric(**kwargs)
    assert str(info.value) == (
        f"{next(iter(kwargs))} is not an option of lrkit.hf.ReportMetric {says}; options: monitor"
    )
    assert ReportMetric(monitor="eval_score").monitor == "eval_score"


def test_a_bad_feedback_is_refused_when_the_trainer_is_made(tmp_path: Any) -> None:
    """The one-line error lrkit.torch.scheduler gives, when the Trainer is made (as for a bad
    schedule), not when train() starts."""
    two_groups = torch.optim.SGD(
        [{"params": [torch.zeros(1, requires_grad=True)]} for _ in range(2)], lr=0.01
    )
    cases = [
        ("plateau", "feedback must be an lrkit.feedback controller (with .apply()), got str"),
        (
            ReduceOnPlateau,
            "feedback must be a controller instance, e.g. ReduceOnPlateau(...), got the class "
            "ReduceOnPlateau",
        ),
        (
            [ReduceOnPlateau(), 3],
            "feedback[1] must be an lrkit.feedback controller (with .apply()), got int",
        ),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError) as info:
            Trainer(
                model=tiny_bert(), args=_args(tmp_path), schedule="constant(0.01)", feedback=bad
            )
        assert str(info.value) == message
        with pytest.raises(ValueError) as ref:  # the same words as lrkit.torch.scheduler's
            lt.scheduler(two_groups, "constant(0.01)", feedback=bad)
        assert str(ref.value) == message


VALS = [1.0, 0.9, 0.95, 0.97, 0.99, 0.8, 0.85, 0.9]


def _plateau_trainer(tmp_path: Any, *, callbacks: Any = (), **kwargs: Any) -> Any:
    opts: dict[str, Any] = dict(
        num_train_epochs=8, eval_strategy="epoch", save_strategy="epoch", learning_rate=0.004
    )
    args = _args(tmp_path, **{**opts, **kwargs})
    trainer = Trainer(
        model=tiny_bert(),
        args=args,
        train_dataset=Pairs(32, 1),  # 4 steps per epoch
        eval_dataset=Pairs(16, 2),
        schedule="constant(0.004)",
        feedback=ReduceOnPlateau(factor=0.5, patience=1),
        callbacks=[ReportMetric("eval_score"), *callbacks],
    )
    # a scripted metric: the plateau is known in advance
    trainer.compute_metrics = lambda p: {"score": VALS[round(trainer.state.epoch) - 1]}
    return trainer


@resumes
def test_plateau_cuts_after_patience_plus_one_bad_evaluations_and_resumes(tmp_path: Any) -> None:
    trainer = _plateau_trainer(tmp_path)
    trainer.train()
    lrs = _logged_lrs(trainer)
    # 1.0 best, 0.9 best, 0.95 bad, 0.97 bad -> cut after the 4th evaluation (patience=1)
    assert lrs == {k: 0.004 if k <= 4 * 4 else 0.002 for k in range(1, 33)}
    resumed = _plateau_trainer(tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-12"))
    assert len(resumed.state.log_history) > 12  # steps 1-12 restored, 13-32 run again
    assert _logged_lrs(resumed) == lrs
    assert resumed.lr_scheduler.state_dict() == trainer.lr_scheduler.state_dict()


@resumes
def test_a_resume_with_another_step_count_warns_as_the_scheduler_does(tmp_path: Any) -> None:
    """transformers loads the scheduler's state inside catch_warnings and drops a
    UserWarning: the lrkit scheduler's warning for another schedule is issued again."""

    def trainer(epochs: int, out: Any) -> Any:
        args = _args(out, num_train_epochs=epochs, save_strategy="epoch")
        return Trainer(
            model=tiny_bert(), args=args, train_dataset=Pairs(32, 1),  # 4 steps an epoch
            schedule=lambda n: S.cosine(0.004, total_steps=n),
        )  # fmt: skip

    trainer(2, tmp_path).train()
    longer = trainer(4, tmp_path / "longer")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        longer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-4"))
    said = [str(w.message) for w in caught if "different schedule" in str(w.message)]
    assert said == [
        "the checkpoint was made with a different schedule (cosine(lr=0.004, total_steps=8, "
        "eta_min=0.0)); keeping the schedule given to this scheduler (cosine(lr=0.004, "
        "total_steps=16, eta_min=0.0))"
    ]
    assert _logged_lrs(longer)[5] == pytest.approx(S.cosine(0.004, total_steps=16)(4))
    same = trainer(2, tmp_path / "same")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        same.train(resume_from_checkpoint=str(tmp_path / "checkpoint-4"))
    assert not [w for w in caught if "different schedule" in str(w.message)]


def test_feedback_without_a_report_metric_callback_warns_when_training_starts(
    tmp_path: Any,
) -> None:
    """The Trainer's own reduce_lr_on_plateau steps itself; an lrkit controller is fed by
    ReportMetric: without it, it would never cut, silently."""
    args = _args(tmp_path, max_steps=2, eval_strategy="no")
    bare = Trainer(model=tiny_bert(), args=args, train_dataset=Pairs(16, 1),
                   schedule="constant(0.01)", feedback=ReduceOnPlateau())  # fmt: skip
    said = r"^feedback= is set but the Trainer has no lrkit.hf.ReportMetric callback: the "
    with pytest.warns(UserWarning, match=said + "controller receives no metric"):
        bare.train()
    fed = Trainer(model=tiny_bert(), args=args, train_dataset=Pairs(16, 1),
                  schedule="constant(0.01)", feedback=ReduceOnPlateau(),
                  callbacks=[ReportMetric("eval_score")])  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fed.train()
    assert not [w for w in caught if "ReportMetric callback" in str(w.message)]


def test_a_second_train_starts_the_feedback_afresh(tmp_path: Any) -> None:
    trainer = _plateau_trainer(tmp_path)
    fb = trainer.lrkit_feedback
    trainer.train()
    first = _logged_lrs(trainer)
    assert fb.scale == 0.25 and trainer.lrkit_feedback is fb  # 2nd cut after the last step
    trainer.lr_scheduler = None  # as hyperparameter_search does between trials
    trainer.train()
    assert _logged_lrs(trainer) == first


@pytest.mark.parametrize("kind", ["sequential", "chained", "shared"])
def test_report_metric_reaches_lrkit_schedulers_inside_a_torch_composite(
    tmp_path: Any, kind: str
) -> None:
    L = torch.optim.lr_scheduler
    model = tiny_bert()
    opt = torch.optim.SGD(model.parameters(), lr=0.004)
    plateau = ReduceOnPlateau(factor=0.5, patience=0)
    main = lt.scheduler(opt, "constant(0.004)", feedback=plateau)
    if kind == "sequential":
        first = L.LinearLR(opt, start_factor=0.5, total_iters=2)
        sched: Any = L.SequentialLR(opt, [first, main], milestones=[2])
    elif kind == "chained":
        sched = L.ChainedScheduler([main, L.ExponentialLR(opt, gamma=1.0)])
    else:  # two lrkit schedulers sharing one controller: one observation per evaluation
        other = lt.scheduler(opt, "constant(0.004)", feedback=plateau)
        sched = L.ChainedScheduler([main, other])
    trainer = transformers.Trainer(
        model=model,
        args=_args(tmp_path, num_train_epochs=3, eval_strategy="epoch", weight_decay=0.0),
        train_dataset=Pairs(32, 1),  # 4 steps per epoch
        eval_dataset=Pairs(16, 2),
        optimizers=(opt, sched),
        callbacks=[ReportMetric("eval_score")],
    )
    trainer.compute_metrics = lambda p: {"score": 1.0}  # flat: a cut after each evaluation
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "not an lrkit scheduler" warning
        trainer.train()
    # 1.0 best, then two bad evaluations at patience=0: two cuts
    assert plateau.num_updates == 3
    assert plateau.scale == 0.25
    assert opt.param_groups[0]["lr"] == 0.004 * 0.25  # shared: one cut per report, not two


def test_report_metric_warns_when_it_cannot_report(tmp_path: Any) -> None:
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, num_train_epochs=1, eval_strategy="epoch"),
        train_dataset=Pairs(64, 1),
        eval_dataset=Pairs(16, 2),
        schedule="constant(0.01)",
        feedback=ReduceOnPlateau(),
        callbacks=[ReportMetric("eval_nope")],
    )
    with pytest.warns(RuntimeWarning, match="'eval_nope' is not in the evaluation metrics"):
        trainer.train()
    plain = transformers.Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, num_train_epochs=1, eval_strategy="epoch"),
        train_dataset=Pairs(64, 1),
        eval_dataset=Pairs(16, 2),
        callbacks=[ReportMetric()],
    )
    with pytest.warns(RuntimeWarning, match="not an lrkit scheduler"):
        plain.train()


def _state(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _by_hand(model: Any, tmp_path: Any, clip: float | None = 1.0, **kw: Any) -> Any:
    """lrkit.torch.find_lr on a copy of ``model`` with what find_lr(trainer) takes from a
    Trainer: its optimizer, its batches, its loss, its budget (30 sweep steps) and its gradient
    clipping (``args.max_grad_norm``, 1.0 by default; ``clip=None``: none)."""
    ref_trainer = transformers.Trainer(
        model=copy.deepcopy(model), args=_args(tmp_path), train_dataset=Pairs(64, 1)
    )
    if clip is not None:
        params = list(ref_trainer.model.parameters())
        kw["before_step"] = lambda opt: torch.nn.utils.clip_grad_norm_(params, clip)
    opt = ref_trainer.create_optimizer()
    torch.manual_seed(3)  # accelerate's sampler takes its seed from torch.initial_seed()
    loader = ref_trainer.get_train_dataloader().base_dataloader
    torch.manual_seed(3)
    return lt.find_lr(
        ref_trainer.model,
        opt,
        None,
        loader,
        step=lambda m, b: m(**b).loss,
        num_iter=30,
        total_steps=2 * STEPS_PER_EPOCH,  # what find_lr(trainer) reads off the Trainer
        warn=False,
        **kw,
    )


def test_find_lr_restores_the_trainer_and_matches_torch_find_lr(tmp_path: Any) -> None:
    model = tiny_bert()
    trainer = transformers.Trainer(model=model, args=_args(tmp_path), train_dataset=Pairs(64, 1))
    before = _state(model)
    torch.manual_seed(3)
    rng = torch.get_rng_state()
    seen: list[tuple[int, float, float]] = []
    res = find_lr(trainer, num_iter=30, warn=False, callback=lambda *a: seen.append(a))
    assert seen == list(zip(range(len(res.lrs)), res.lrs.tolist(), res.losses.tolist()))
    assert torch.equal(torch.get_rng_state(), rng)
    assert trainer.optimizer is None
    after = _state(model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert len(res.losses) > 10 and res.suggestion is not None

    # the same sweep by hand: a copy of the model, the Trainer's optimizer and batches
    ref = _by_hand(model, tmp_path)
    assert res.losses.tolist() == ref.losses.tolist()
    assert res.suggestion == ref.suggestion


def test_find_lr_clips_gradients_as_train_does(tmp_path: Any) -> None:
    """args.max_grad_norm (1.0 by default) clips in the sweep as in train(); 0 turns it off."""
    model = tiny_bert()
    unclipped = transformers.Trainer(
        model=model, args=_args(tmp_path, max_grad_norm=0.0), train_dataset=Pairs(64, 1)
    )
    torch.manual_seed(3)
    res = find_lr(unclipped, num_iter=30, warn=False)
    ref = _by_hand(model, tmp_path, clip=None)
    assert res.losses.tolist() == ref.losses.tolist()
    clipped = _by_hand(model, tmp_path)
    assert res.losses.tolist() != clipped.losses.tolist()  # the clipping changes the sweep


def test_a_trainer_trains_after_find_lr_as_one_that_never_swept(tmp_path: Any) -> None:
    def run(sweep: bool) -> Any:
        trainer = transformers.Trainer(
            model=tiny_bert(), args=_args(tmp_path, num_train_epochs=1), train_dataset=Pairs(64, 1)
        )
        torch.manual_seed(3)
        if sweep:
            find_lr(trainer, num_iter=20, warn=False)
        trainer.train()
        return trainer

    swept, plain = run(True), run(False)
    assert swept.state.log_history[:-1] == plain.state.log_history[:-1]  # last: run times
    a, b = _state(swept.model), _state(plain.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_find_lr_rejects_what_is_not_a_trainer() -> None:
    with pytest.raises(ValueError, match="trainer must be a transformers.Trainer"):
        find_lr(object())


def test_the_default_budget_is_the_steps_train_runs_with_a_partial_accumulation(
    tmp_path: Any,
) -> None:
    # 88 examples, batch 8: 11 batches per epoch; accumulating 2, the Trainer runs 6 steps
    trainer = transformers.Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, num_train_epochs=3, gradient_accumulation_steps=2),
        train_dataset=Pairs(88, 1),
    )
    res = find_lr(trainer, num_iter=10, warn=False)
    trainer.train()
    assert res.total_steps == trainer.state.global_step == 18


class Streamed(torch.utils.data.IterableDataset):  # type: ignore[misc]
    """:class:`Pairs` as a stream (no length: the Trainer trains it with ``max_steps``)."""

    def __iter__(self) -> Any:
        pairs = Pairs(96, 1)
        return (pairs[i] for i in range(len(pairs)))


def test_a_streamed_dataset_is_swept_for_max_steps_and_trains_at_the_suggestion(
    tmp_path: Any,
) -> None:
    args = _args(tmp_path, max_steps=6, lr_scheduler_type="constant")
    trainer = transformers.Trainer(model=tiny_bert(), args=args, train_dataset=Streamed())
    res = find_lr(trainer, num_iter=10, warn=False)
    assert res.total_steps == 6 and trainer.optimizer is None
    trainer.args.learning_rate = res.suggestion  # as documented
    trainer.train()
    lrs = list(_logged_lrs(trainer).values())
    assert len(lrs) == 6 and lrs == pytest.approx([res.suggestion] * 6)


def test_a_find_lr_that_fails_leaves_no_optimizer_on_the_trainer(tmp_path: Any) -> None:
    trainer = transformers.Trainer(model=tiny_bert(), args=_args(tmp_path))  # no train_dataset
    rng = torch.get_rng_state()
    with pytest.raises(ValueError):
        find_lr(trainer, num_iter=10)
    assert trainer.optimizer is None and torch.equal(torch.get_rng_state(), rng)


def test_the_trainers_own_scheduler_arguments_are_said_to_be_unused(tmp_path: Any) -> None:
    args = _args(tmp_path, max_steps=2, warmup_steps=1, lr_scheduler_type="cosine")
    trainer = Trainer(
        model=tiny_bert(), args=args, train_dataset=Pairs(64, 1), schedule="constant(0.01)"
    )
    with pytest.warns(UserWarning) as record:
        trainer.train()
    messages = [str(w.message) for w in record if "lrkit.hf" in str(w.message)]
    assert messages == [
        "lrkit.hf: the TrainingArguments' warmup_steps (1 step), lr_scheduler_type='cosine' "
        "are not used: the lrkit schedule sets every LR (put a warmup into it, e.g. "
        "S.with_warmup(schedule, warmup_steps=...))"
    ]
    assert _logged_lrs(trainer) == {1: 0.01, 2: 0.01}  # the schedule alone: no warmup
    quiet = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, max_steps=2),
        train_dataset=Pairs(64, 1),
        schedule="constant(0.01)",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        quiet.create_optimizer()
        quiet.create_scheduler(2)
    two = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, max_steps=3, warmup_steps=2),
        train_dataset=Pairs(64, 1),
        schedule="constant(0.01)",
    )
    two.create_optimizer()
    with pytest.warns(UserWarning, match=r"warmup_steps \(2 steps\) are not used"):
        two.create_scheduler(3)


def _made(tmp_path: Any, spec: Any, steps: int) -> Any:
    """A Trainer of ``steps`` steps on ``spec``, its optimizer created."""
    trainer = Trainer(
        model=tiny_bert(), args=_args(tmp_path, max_steps=steps), train_dataset=Pairs(64, 1),
        schedule=spec,
    )  # fmt: skip
    trainer.create_optimizer()
    return trainer


def test_a_schedule_shorter_than_the_run_is_said_to_train_the_rest_at_lr_0(tmp_path: Any) -> None:
    short = _made(tmp_path, "cosine(1e-3, 10)", 30)
    with pytest.warns(UserWarning) as record:
        short.create_scheduler(30)
    assert [str(w.message) for w in record] == [
        "the schedule is 0 from step 10 on: 20 of the 30 steps the Trainer runs train at LR 0 "
        "(a schedule written for fewer steps?); write it for the run's length, or pass a "
        "function of it: schedule=lambda n: S.cosine(1e-3, total_steps=n)"
    ]
    assert record[0].filename == __file__
    # one schedule per group, as a tuple a function of the run's length returns: each read
    groups = _made(
        tmp_path, lambda n: (S.cosine(1e-3, total_steps=n), S.cosine(1e-3, total_steps=10)), 30
    )
    with pytest.warns(UserWarning, match=r"^param group 1's schedule is 0 from step 10 on: 20 "):
        groups.create_scheduler(30)
    # written for the run, a warmup from 0, a schedule holding its last value, restarts or
    # cycles that touch 0 on the way, a function (called only at the steps it trains):
    # nothing said
    calls: list[int] = []

    def fn(t: Any) -> float:
        calls.append(1)
        return 1.0 if t < 10 else 0.0

    for spec in (
        "cosine(1e-3, 30)",
        lambda n: S.cosine(1e-3, total_steps=n),
        "with_warmup(cosine(1e-3, 25), warmup_steps=5)",
        "warmup(0.0, 1e-3, 10)",
        "onecycle(1e-3, 10)",
        "join([with_warmup(cosine(1e-3, 10), warmup_steps=5), "
        "with_warmup(cosine(1e-3, 10), warmup_steps=5)], [15])",
        "cyclic(0.0, max_lr=1e-3, step_size_up=7)",
        S.function(fn, lr=1e-3),
    ):
        trainer = _made(tmp_path, spec, 30)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            trainer.create_scheduler(30)
    assert len(calls) <= 2  # the scheduler's first step, not the run's 30


def _two_eval_sets(tmp_path: Any, monitor: str, epochs: int = 4) -> Any:
    """A plateau Trainer evaluating two datasets each epoch: ``a`` scores 0.0 every time,
    ``b`` scores ``VALS`` in turn (Trainer.evaluate runs one evaluation per dataset, in order)."""
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, num_train_epochs=epochs, eval_strategy="epoch"),
        train_dataset=Pairs(32, 1),  # 4 steps per epoch
        eval_dataset={"a": Pairs(16, 2), "b": Pairs(16, 3)},
        schedule="constant(0.004)",
        feedback=ReduceOnPlateau(factor=0.5, patience=1),
        callbacks=[ReportMetric(monitor)],
    )
    calls = iter(range(2 * epochs))
    trainer.compute_metrics = lambda p: {"score": VALS[n // 2] if (n := next(calls)) % 2 else 0.0}
    return trainer


@pytest.mark.parametrize("dataset", ["a", "b"])
def test_report_metric_reports_the_metric_of_any_eval_dataset_once_per_round(
    tmp_path: Any, dataset: str
) -> None:
    trainer = _two_eval_sets(tmp_path, f"eval_{dataset}_score")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "metric is not in" warning
        trainer.train()
    fb = trainer.lrkit_feedback
    assert fb.num_updates == 4  # one report per round, from the dataset that has the metric
    if dataset == "b":  # 1.0 best, 0.9 best, 0.95 bad, 0.97 bad: cut after the 4th (patience=1)
        assert fb.best == 0.9 and fb.scale == 0.5
        assert _logged_lrs(trainer) == {k: 0.004 for k in range(1, 17)}
    else:  # 0.0 every time: the 3rd evaluation cuts (the 2nd and 3rd are not better)
        assert fb.best == 0.0 and fb.scale == 0.5
        assert _logged_lrs(trainer) == {k: 0.004 if k <= 12 else 0.002 for k in range(1, 17)}


def test_report_metric_warns_once_per_round_none_of_whose_datasets_has_the_metric(
    tmp_path: Any,
) -> None:
    trainer = _two_eval_sets(tmp_path, "eval_c_score", epochs=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    said = [str(w.message) for w in caught if "ReportMetric" in str(w.message)]
    keys = sorted(
        f"eval_{d}_{k}"
        for d in "ab"
        for k in ("loss", "score", "runtime", "samples_per_second", "steps_per_second")
    )
    message = (
        f"ReportMetric: metric 'eval_c_score' is not in the evaluation metrics (available: "
        f"{sorted([*keys, 'epoch'])}); feedback skipped"
    )
    assert said == [message, message]  # one per round (epoch), naming both datasets' metrics
    assert trainer.lrkit_feedback.num_updates == 0


def test_report_metric_leaves_the_lr_alone_in_a_standalone_evaluate(tmp_path: Any) -> None:
    trainer = _plateau_trainer(tmp_path)
    trainer.args.num_train_epochs = 2
    trainer.train()
    sched = trainer.lr_scheduler
    assert sched.feedback.num_updates == 2  # one report per evaluation of train()
    state = sched.state_dict()
    trainer.compute_metrics = lambda p: {"score": 5.0}
    trainer.evaluate()  # before the fix: a third report to the controller
    assert sched.state_dict() == state
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [0.004, 0.004]


class _EvaluateEvery(transformers.TrainerCallback):  # type: ignore[misc]
    """A user's own evaluation policy: asks the loop to evaluate every ``n`` steps."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.n == 0:
            control.should_evaluate = True


@pytest.mark.parametrize("first", [True, False])
def test_an_evaluation_asked_by_any_callback_is_reported_whatever_the_order(
    tmp_path: Any, first: bool
) -> None:
    report, policy = ReportMetric("eval_score"), _EvaluateEvery(3)
    trainer = _plateau_trainer(tmp_path, num_train_epochs=4, eval_strategy="no", save_strategy="no")
    trainer.callback_handler.remove_callback(ReportMetric)
    for callback in [report, policy] if first else [policy, report]:
        trainer.add_callback(callback)
    vals = iter([1.0, 0.9, 0.95, 0.97, 0.99])
    trainer.compute_metrics = lambda p: {"score": next(vals)}
    trainer.train()
    evaluated = [h["step"] for h in trainer.state.log_history if "eval_score" in h]
    assert evaluated == [3, 6, 9, 12, 15]
    assert trainer.lr_scheduler.feedback.num_updates == 5  # every one reported
    lrs = _logged_lrs(trainer)  # 0.95 and 0.97 bad after 0.9: cut after the 4th, at step 12
    assert lrs == {k: 0.004 if k <= 12 else 0.002 for k in range(1, 17)}


@resumes
def test_the_evaluation_on_start_is_not_reported_and_a_resume_is_exact(tmp_path: Any) -> None:
    """eval_on_start evaluates before any step (and again on a resume, on the checkpoint's
    weights): the Trainer's own ReduceLROnPlateau skips it, and so does ReportMetric."""
    plain = _plateau_trainer(tmp_path / "plain")
    plain.train()
    trainer = _plateau_trainer(tmp_path, eval_on_start=True)
    trainer.train()
    assert _logged_lrs(trainer) == _logged_lrs(plain)
    assert trainer.lr_scheduler.feedback.num_updates == 8  # one report per epoch
    resumed = _plateau_trainer(tmp_path / "resumed", eval_on_start=True)
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-20"))
    assert _logged_lrs(resumed) == _logged_lrs(plain)
    assert resumed.lr_scheduler.state_dict() == trainer.lr_scheduler.state_dict()


class _StopAt(transformers.TrainerCallback):  # type: ignore[misc]
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            raise KeyboardInterrupt


@pytest.mark.parametrize("stop_at", [3, 4])  # 4: the loop had decided to evaluate
def test_an_evaluate_after_an_interrupted_train_reports_nothing(
    tmp_path: Any, stop_at: int
) -> None:
    trainer = _plateau_trainer(
        tmp_path, eval_strategy="steps", eval_steps=4, callbacks=[_StopAt(stop_at)]
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    sched = trainer.lr_scheduler
    state = sched.state_dict()
    trainer.evaluate()
    trainer.evaluate()
    assert sched.state_dict() == state and sched.feedback.num_updates == 0
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [0.004, 0.004]


def _collated() -> list[dict[str, Any]]:
    """Two batches in the collator's format, never trained on."""
    return [
        {"input_ids": b["input_ids"], "labels": b["labels"]}
        for b in torch.utils.data.DataLoader(Pairs(16, 9), batch_size=8)
    ]


def _beside_by_hand(tmp_path: Any, **kw: Any) -> tuple[Any, Any]:
    """``find_lr`` on a Trainer of a tiny BERT with ``kw`` (``val_data``, ``probe_data``), and
    :func:`_by_hand` on the same model with the same ``kw``: ``(result, by hand)``."""
    model = tiny_bert()
    trainer = transformers.Trainer(model=model, args=_args(tmp_path), train_dataset=Pairs(64, 1))
    torch.manual_seed(3)
    res = find_lr(trainer, num_iter=30, warn=False, **kw)
    return res, _by_hand(model, tmp_path, **kw)


def test_find_lr_with_val_data_matches_torch_find_lr(tmp_path: Any) -> None:
    """val_data (batches in the collator's format) is the held set, as in lrkit.torch.find_lr."""
    res, ref = _beside_by_hand(tmp_path, val_data=_collated())
    assert len(res.held_losses) > 0
    assert res.held_losses.tolist() == ref.held_losses.tolist()
    assert res.losses.tolist() == ref.losses.tolist()


def test_find_lr_with_probe_data_matches_torch_find_lr(tmp_path: Any) -> None:
    """probe_data (batches in the collator's format) is scored as lrkit.torch.find_lr scores it."""
    res, ref = _beside_by_hand(tmp_path, probe_data=_collated())
    assert res.probes is not None and res.probes == ref.probes
    assert res.losses.tolist() == ref.losses.tolist() and res.suggestion == ref.suggestion


# ----------------------------------------------------------------------------- accumulation


class Texts(torch.utils.data.Dataset):  # type: ignore[misc]
    """Token sequences of 3 to 11 tokens, for a causal LM."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        lengths = torch.randint(3, 12, (n,), generator=g).tolist()
        self.items = [torch.randint(1, 32, (k,), generator=g).tolist() for k in lengths]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return {"input_ids": self.items[i]}


def _padded(features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    """The collator: right-padded with 0, the padding labelled -100 (not a label token)."""
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.tensor([f["input_ids"] + [0] * (width - len(f["input_ids"])) for f in features])
    mask = torch.tensor(
        [[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in features]
    )
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def _tiny_gpt2() -> Any:
    """A 2-layer GPT-2 from a config (seeded, no dropout): it accepts loss kwargs."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=32, n_embd=16, n_layer=2, n_head=2, n_positions=16,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=1,
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(config)


class _TokenLM(torch.nn.Module):  # type: ignore[misc]
    """A token-wise LM whose ``forward`` takes no loss kwargs (no ``**kwargs``)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(32, 8)
        self.out = torch.nn.Linear(8, 32)

    def forward(self, input_ids: Any, attention_mask: Any = None, labels: Any = None) -> Any:
        logits = self.out(self.embed(input_ids))
        if labels is None:  # a compute_loss_func's: the Trainer took the labels for it
            return {"logits": logits}
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        return {"loss": loss, "logits": logits}


def _first_window(
    model: Any, tmp_path: Any, kind: Any = transformers.Trainer, **kwargs: Any
) -> tuple[Any, list[Any], list[torch.Tensor]]:
    """find_lr on a Trainer (``kind``, made with ``kwargs``) of ``model`` accumulating 2 batches
    of :class:`Texts` (no clipping): the Trainer, the two batches of the sweep's first step and
    the gradients it stepped on."""
    args = _args(tmp_path, gradient_accumulation_steps=2, max_grad_norm=0.0, max_steps=4)
    kwargs.setdefault("data_collator", _padded)
    trainer = kind(model=model, args=args, train_dataset=Texts(64, 1), **kwargs)
    opt = trainer.create_optimizer()
    grads: list[list[torch.Tensor]] = []
    hook = opt.register_step_pre_hook(
        lambda *_: grads.append([p.grad.clone() for p in model.parameters()])
    )
    trained: list[Any] = []  # the batches the sweep trains on (the held ones are under no_grad)
    compute_loss = trainer.compute_loss

    def spy(m: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if torch.is_grad_enabled():
            trained.append({k: v.clone() for k, v in inputs.items()})
        return compute_loss(m, inputs, *args, **kwargs)

    trainer.compute_loss = spy
    find_lr(trainer, num_iter=10, warn=False)
    trainer.compute_loss = compute_loss
    hook.remove()
    return trainer, trained[:2], grads[0]


def _training_step_grads(trainer: Any, window: list[Any], items: Any = "counted") -> Any:
    """The gradients of ``trainer.training_step`` over ``window``, as ``train()`` runs it (the
    window's ``num_items_in_batch`` from ``get_batch_samples``)."""
    model = trainer.model
    if items == "counted":
        _, items = trainer.get_batch_samples(iter(window), len(window), trainer.args.device)
    trainer.current_gradient_accumulation_steps = len(window)  # as the training loop sets it
    model.zero_grad(set_to_none=True)
    for batch in window:
        trainer.training_step(model, batch, items)
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return grads


def test_find_lr_weighs_an_accumulation_window_by_its_label_tokens_as_train_does(
    tmp_path: Any,
) -> None:
    """A model that accepts loss kwargs (GPT-2): train() divides each batch's summed token
    loss by the label tokens of the whole window (num_items_in_batch); so does the sweep."""
    trainer, window, swept = _first_window(_tiny_gpt2(), tmp_path)
    assert trainer.model_accepts_loss_kwargs
    tokens = [int((b["labels"] != -100).sum()) for b in window]
    assert tokens[0] != tokens[1]  # unequal windows: the weighting matters
    trained = _training_step_grads(trainer, window)
    for a, b in zip(swept, trained):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    # not the mean of the two batches' mean losses
    per_batch = _training_step_grads(trainer, window, items=None)
    assert not all(torch.allclose(a, b, rtol=1e-3) for a, b in zip(swept, per_batch))


def test_find_lr_averages_an_accumulation_window_of_a_model_without_loss_kwargs(
    tmp_path: Any,
) -> None:
    """A model without loss kwargs: train() averages the batches' losses; so does the sweep."""
    trainer, window, swept = _first_window(_TokenLM(), tmp_path)
    assert not trainer.model_accepts_loss_kwargs
    trained = _training_step_grads(trainer, window)
    for a, b in zip(swept, trained):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_a_hyperparameter_search_trial_s_lr_reaches_a_schedule_that_reads_it(
    tmp_path: Any,
) -> None:
    """docs/hf.md: the schedule's LRs are absolute; a callable that reads
    ``trainer.args.learning_rate`` gets the LR each ``hyperparameter_search`` trial sets."""
    pytest.importorskip("optuna")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trainer: Any = None
    seen: list[float] = []

    def schedule(n: int) -> Any:
        seen.append(trainer.args.learning_rate)
        return S.cosine(trainer.args.learning_rate, total_steps=n)

    trainer = Trainer(
        model_init=lambda trial=None: tiny_bert(),
        args=_args(tmp_path, num_train_epochs=1),
        train_dataset=Pairs(16, 1),
        eval_dataset=Pairs(16, 2),
        schedule=schedule,
    )

    def space(trial: Any) -> dict[str, float]:
        return {"learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-2, log=True)}

    trainer.hyperparameter_search(
        direction="minimize", backend="optuna", n_trials=2, hp_space=space
    )
    assert len(seen) == 2 and seen[0] != seen[1] and 0.01 not in seen
    # the last trial trained at its own LR: the first optimizer step logged it
    assert _logged_lrs(trainer)[1] == seen[-1]


@pytest.mark.parametrize("decay", ["cosine", "linear", "1-sqrt"])
def test_the_hint_for_get_wsd_schedules_names_followed_gives_its_values(decay: str) -> None:
    """``S.wsd(..., num_warmup_steps=...)`` is refused with lrkit's names; the schedule they
    name (min_lr and init_lr at min_lr_ratio * lr) is Hugging Face's."""
    hf = {"num_warmup_steps": 20, "num_decay_steps": 50, "num_training_steps": 200}
    with pytest.raises(TypeError) as info:
        S.wsd(0.1, **hf, min_lr_ratio=0.1, decay_type=decay)
    assert "for min_lr_ratio use min_lr (= min_lr_ratio * lr, and init_lr = min_lr_ratio" in str(
        info.value
    )
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    theirs = transformers.get_wsd_schedule(opt, **hf, min_lr_ratio=0.1, decay_type=decay)
    ours = S.wsd(0.1, total_steps=200, warmup_steps=20, decay_steps=50, decay=decay,
                 min_lr=0.1 * 0.1, init_lr=0.1 * 0.1)  # fmt: skip
    for t in range(200):
        assert opt.param_groups[0]["lr"] == pytest.approx(ours(t), rel=1e-12, abs=1e-15), t
        opt.step()
        theirs.step()


def test_max_skipped_reaches_the_range_test_and_is_checked(tmp_path: Any, spy: Any) -> None:
    import lrkit.hf as H

    seen = spy(H, "_torch_find_lr")
    trainer = Trainer(model=tiny_bert(), args=_args(tmp_path), train_dataset=Pairs(32, 1))
    find_lr(trainer, num_iter=10, warn=False, max_skipped=3)
    assert seen["max_skipped"] == 3
    with pytest.raises(ValueError, match=r"^max_skipped must be an integer >= 0"):
        find_lr(trainer, max_skipped=-1)


def test_a_keyword_read_off_the_training_arguments_says_so() -> None:
    with pytest.raises(TypeError) as e:
        find_lr(None, amp=True)  # type: ignore[arg-type,call-arg]
    assert str(e.value).startswith(
        "amp is not an option of lrkit.hf.find_lr (read off the TrainingArguments: bf16=, "
        "fp16=); options: "
    )
    # the run's length in Hugging Face's words is total_steps, not the sweep's num_iter
    for name, hint in (
        ("num_training_steps", "use total_steps, the optimizer steps of the run the "
         "suggestions are for; num_iter is the sweep's own length"),
        ("max_steps", "use total_steps; without it, the TrainingArguments' max_steps is read"),
    ):  # fmt: skip
        with pytest.raises(TypeError) as e:
            find_lr(None, **{name: 1000})  # type: ignore[arg-type]
        assert str(e.value).startswith(f"{name} is not an option of lrkit.hf.find_lr ({hint}); ")


def test_a_schedule_beside_a_scheduler_of_ones_own_is_refused(tmp_path: Any) -> None:
    model = tiny_bert()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(ValueError) as info:
        Trainer(
            model=model,
            args=_args(tmp_path),
            schedule="constant(0.01)",
            optimizers=(opt, lt.scheduler(opt, "constant(0.01)")),
        )
    assert str(info.value) == (
        "schedule and optimizers=(..., lr_scheduler) both set the scheduler: pass one"
    )
    own = Trainer(
        model=model, args=_args(tmp_path), schedule="constant(0.01)", optimizers=(opt, None)
    )
    assert own.lrkit_schedule == S.constant(0.01)


def test_create_scheduler_called_again_keeps_the_scheduler_it_made(tmp_path: Any) -> None:
    """As the stock Trainer's: a second create_scheduler returns the scheduler already made,
    its step and its controller's state as they are."""
    fb = ReduceOnPlateau(factor=0.5, patience=0)
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, max_steps=8),
        schedule=lambda n: S.linear(0.01, end_lr=0.0, total_steps=n),
        feedback=fb,
    )
    trainer.create_optimizer()
    sched = trainer.create_scheduler(8)
    for _ in range(3):
        sched.step()
    sched.report(1.0)
    sched.report(1.0)
    state = copy.deepcopy(sched.state_dict())
    assert fb.scale == 0.5
    assert trainer.create_scheduler(8) is sched
    assert sched.state_dict() == state and fb.scale == 0.5


@pytest.mark.parametrize("name", ["score", "eval_score"])
def test_report_metric_reports_metric_for_best_model_with_or_without_its_prefix(
    tmp_path: Any, name: str
) -> None:
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, num_train_epochs=1, eval_strategy="epoch", metric_for_best_model=name),
        train_dataset=Pairs(32, 1),  # 4 steps per epoch
        eval_dataset=Pairs(16, 2),
        schedule="constant(0.004)",
        feedback=ReduceOnPlateau("max", factor=0.5, patience=1),  # greater_is_better
        callbacks=[ReportMetric()],
    )
    trainer.compute_metrics = lambda p: {"score": 0.25}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "metric is not in" warning
        trainer.train()
    assert trainer.lrkit_feedback.num_updates == 1 and trainer.lrkit_feedback.best == 0.25


class _DrawingTrainer(transformers.Trainer):  # type: ignore[misc]
    """A Trainer whose get_train_dataloader draws from torch's global RNG."""

    def get_train_dataloader(self) -> Any:
        torch.randn(())
        return super().get_train_dataloader()


def test_find_lr_sweeps_from_the_callers_rng_when_building_the_loader_draws(
    tmp_path: Any,
) -> None:
    """The sweep (the model's dropout) sees the RNG as the caller left it, whatever building
    the train dataloader drew; the caller's RNG is as before afterwards."""
    results = []
    for kind in (transformers.Trainer, _DrawingTrainer):
        trainer = kind(model=tiny_bert(), args=_args(tmp_path), train_dataset=Pairs(64, 1))
        torch.manual_seed(3)
        rng = torch.get_rng_state()
        results.append(find_lr(trainer, num_iter=10, warn=False))
        assert torch.equal(torch.get_rng_state(), rng)
    plain, drawing = results
    assert drawing.losses.tolist() == plain.losses.tolist()


def test_find_lr_leaves_no_loader_of_its_own_in_the_accelerator(tmp_path: Any) -> None:
    """The train dataloader the sweep prepared is not left registered with the Trainer's
    accelerator (whose save_state and free_memory go over every loader it prepared)."""
    trainer = transformers.Trainer(
        model=tiny_bert(), args=_args(tmp_path), train_dataset=Pairs(64, 1)
    )
    before = list(trainer.accelerator._dataloaders)
    find_lr(trainer, num_iter=10, warn=False)
    assert trainer.accelerator._dataloaders == before


def test_report_metric_reports_nothing_from_train_begin_to_the_first_step_end(
    tmp_path: Any,
) -> None:
    """An evaluation between on_train_begin and the first step's end (eval_on_start's) is not
    reported, even after a round that a train() of a stock Trainer left open when it raised."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.004)
    sched = lt.scheduler(opt, "constant(0.004)", feedback=ReduceOnPlateau(patience=0))
    args, state = _args(tmp_path), transformers.TrainerState()
    control = transformers.TrainerControl()
    report = ReportMetric("eval_score")
    report.on_step_end(args, state, control)  # the round a raising train() left open
    report.on_train_begin(args, state, control)
    report.on_evaluate(args, state, control, metrics={"eval_score": 1.0}, lr_scheduler=sched)
    assert sched.feedback.num_updates == 0
    report.on_step_end(args, state, control)
    report.on_evaluate(args, state, control, metrics={"eval_score": 1.0}, lr_scheduler=sched)
    assert sched.feedback.num_updates == 1


def test_the_trainers_own_lr_scheduler_kwargs_are_said_to_be_unused(tmp_path: Any) -> None:
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, max_steps=3, lr_scheduler_kwargs={"num_cycles": 2}),
        schedule="constant(0.01)",
    )
    trainer.create_optimizer()
    with pytest.warns(UserWarning) as record:
        trainer.create_scheduler(3)
    assert [str(w.message) for w in record if "lrkit.hf" in str(w.message)] == [
        "lrkit.hf: the TrainingArguments' lr_scheduler_kwargs={'num_cycles': 2} are not used: "
        "the lrkit schedule sets every LR (put a warmup into it, e.g. "
        "S.with_warmup(schedule, warmup_steps=...))"
    ]


def test_a_spec_that_goes_below_0_is_refused_when_the_trainer_is_made(tmp_path: Any) -> None:
    """A spec string or dict whose LR goes below 0 at some step is refused when the Trainer
    is made, not when train() starts."""
    below = S.constant(0.1) - S.linear(0.0, end_lr=0.2, total_steps=10)
    for spec in (str(below), below.to_dict()):
        with pytest.raises(ValueError) as info:
            Trainer(model=tiny_bert(), args=_args(tmp_path), schedule=spec)
        assert str(info.value) == (
            "schedule: schedule must be >= 0 at every step (a learning rate or hyperparameter), "
            "got -0.01999999999999999 at step 6: sub(a=constant(lr=0.1), "
            "b=linear(start_lr=0.0, end_lr=0.2, total_steps=10))"
        )


def test_report_metric_refuses_an_empty_or_non_string_monitor() -> None:
    for bad, shown in (("", "''"), (3, "3")):
        with pytest.raises(ValueError) as info:
            ReportMetric(bad)  # type: ignore[arg-type]
        assert str(info.value) == f"monitor must be the name of a logged metric, got {shown}"


def _round_parts(tmp_path: Any) -> tuple[Any, Any, Any]:
    """What the Trainer passes to a callback's hooks: (args, state, control)."""
    return _args(tmp_path), transformers.TrainerState(), transformers.TrainerControl()


def test_report_metric_reports_once_per_round_when_two_evaluations_have_the_metric(
    tmp_path: Any,
) -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.004)
    sched = lt.scheduler(opt, "constant(0.004)", feedback=ReduceOnPlateau(patience=0))
    args, state, control = _round_parts(tmp_path)
    report = ReportMetric("eval_score")
    report.on_step_end(args, state, control)
    for value in (1.0, 2.0):  # the second evaluation of the round is not reported
        report.on_evaluate(args, state, control, metrics={"eval_score": value}, lr_scheduler=sched)
    assert sched.feedback.num_updates == 1 and sched.feedback.best == 1.0
    report.on_step_begin(args, state, control)
    report.on_step_end(args, state, control)
    report.on_evaluate(args, state, control, metrics={"eval_score": 3.0}, lr_scheduler=sched)
    assert sched.feedback.num_updates == 2


def test_report_metric_reports_nothing_after_a_round_ended_without_an_evaluation(
    tmp_path: Any,
) -> None:
    """A round ends at the next step, epoch or the end of train(), evaluated or not: an
    evaluate() after it (e.g. a stock Trainer's, after train()) changes no LR."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.004)
    sched = lt.scheduler(opt, "constant(0.004)", feedback=ReduceOnPlateau(patience=0))
    args, state, control = _round_parts(tmp_path)
    for end in ("on_train_end", "on_step_begin", "on_epoch_begin"):
        report = ReportMetric("eval_score")
        report.on_step_end(args, state, control)
        getattr(report, end)(args, state, control)
        report.on_evaluate(args, state, control, metrics={"eval_score": 1.0}, lr_scheduler=sched)
        assert sched.feedback.num_updates == 0, end


def test_report_metric_warns_once_per_round_of_a_scheduler_without_feedback(
    tmp_path: Any,
) -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.004)
    sched = lt.scheduler(opt, "constant(0.004)")
    args, state, control = _round_parts(tmp_path)
    report = ReportMetric("eval_score")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):  # a round of two eval datasets, twice
            report.on_step_end(args, state, control)
            for name in ("a", "b"):
                report.on_evaluate(
                    args, state, control, metrics={f"eval_{name}_score": 1.0}, lr_scheduler=sched
                )
    assert [str(w.message) for w in caught] == [
        "ReportMetric: the Trainer's scheduler is not an lrkit scheduler with a feedback "
        "controller (lrkit.hf.Trainer(schedule=..., feedback=...))"
    ] * 2


@pytest.mark.parametrize(
    "flags, amp, scaled",
    [
        ({}, False, False),
        ({"bf16": True}, torch.bfloat16, False),
        ({"fp16": True}, torch.float16, True),
    ],
)
def test_find_lr_sweeps_under_the_autocast_dtype_of_the_training_arguments(
    tmp_path: Any, monkeypatch: Any, flags: dict[str, Any], amp: Any, scaled: bool
) -> None:
    import lrkit.hf as H

    seen: dict[str, Any] = {}

    def recorded(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return "result"

    monkeypatch.setattr(H, "_torch_find_lr", recorded)
    trainer = transformers.Trainer(
        model=tiny_bert(), args=_args(tmp_path, **flags), train_dataset=Pairs(32, 1)
    )
    assert find_lr(trainer, num_iter=10) == "result"
    assert seen["amp"] is amp and (seen["scaler"] is not None) is scaled
    assert seen["accumulation_steps"] == 1 and trainer.optimizer is None


class _LiveState(Feedback):
    """A controller of one's own whose state_dict() is its live state (loaded in place)."""

    def __init__(self) -> None:
        self.state = {"type": "_LiveState", "scale": 1.0}

    @property
    def scale(self) -> float:
        return self.state["scale"]

    def update(self, value: Any, *, step: int | None = None) -> float:
        self.state["scale"] *= 0.5
        return self.scale

    def state_dict(self) -> dict[str, Any]:
        return self.state

    def load_state_dict(self, state: Any) -> None:  # type: ignore[override]
        self.state.clear()
        self.state.update(state)


class _KeptState(_LiveState):
    """A controller of one's own that keeps the very dict it is loaded from as its state."""

    def load_state_dict(self, state: Any) -> None:  # type: ignore[override]
        self.state = state


@pytest.mark.parametrize("kind", [_LiveState, _KeptState])
def test_each_scheduler_starts_a_controller_from_its_state_when_the_trainer_was_made(
    tmp_path: Any, kind: Any
) -> None:
    """The state a controller had when the Trainer was made is kept apart from it: a
    controller whose state_dict() is its live state, or one that keeps the dict it loads,
    also starts afresh in the next train()."""
    fb = kind()
    trainer = Trainer(
        model=tiny_bert(), args=_args(tmp_path, max_steps=4), schedule="constant(0.01)", feedback=fb
    )
    trainer.create_optimizer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no ReportMetric callback: said
        sched = trainer.create_scheduler(4)
        sched.report(1.0)
        assert fb.scale == 0.5
        trainer.lr_scheduler = None  # as a second train() or a hyperparameter_search trial
        again = trainer.create_scheduler(4)
    assert again is not sched and fb.scale == 1.0
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [0.01, 0.01]


def test_a_checkpoint_without_scheduler_state_repeats_no_earlier_load_warning(
    tmp_path: Any,
) -> None:
    """Only the warnings of the scheduler's load from this checkpoint are issued: one without a
    scheduler state (optimizer only) leaves the scheduler alone and says nothing of an earlier
    load's other schedule."""
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, max_steps=4),
        schedule=lambda n: S.cosine(0.004, total_steps=n),
    )
    opt = trainer.create_optimizer()
    sched = trainer.create_scheduler(4)
    other = lt.scheduler(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.004), "cosine(0.004, 8)"
    )
    with pytest.warns(UserWarning, match="different schedule"):
        sched.load_state_dict(other.state_dict())
    state = copy.deepcopy(sched.state_dict())
    checkpoint = tmp_path / "optimizer-only"
    checkpoint.mkdir()
    torch.save(opt.state_dict(), checkpoint / "optimizer.pt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer._load_optimizer_and_scheduler(str(checkpoint))
    assert not [w for w in caught if "different schedule" in str(w.message)]
    assert sched.state_dict() == state


def _direction_trainer(tmp_path: Any, monitor: str | None, fb: Any, **kwargs: Any) -> Any:
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, num_train_epochs=2, eval_strategy="epoch", **kwargs),
        train_dataset=Pairs(32, 1),  # 4 steps per epoch
        eval_dataset=Pairs(16, 2),
        schedule="constant(0.004)",
        feedback=fb,
        callbacks=[ReportMetric(monitor)],
    )
    trainer.compute_metrics = lambda p: {"score": 0.25, "accuracy": 0.5}
    return trainer


@pytest.mark.parametrize(
    ("monitor", "kwargs", "fb", "says"),
    [
        (None, {"metric_for_best_model": "loss", "greater_is_better": True}, ReduceOnPlateau(),
         "'eval_loss' is a metric to maximize (greater_is_better=True) but the feedback "
         "controller has mode='min'"),
        # greater_is_better as the Trainer fills it in from the name (True but for a loss):
        # no direction of its own (a word error rate, a score)
        (None, {"metric_for_best_model": "score"}, ReduceOnPlateau(), None),
        (None, {"metric_for_best_model": "score", "greater_is_better": False},
         ReduceOnPlateau("max"),
         "'eval_score' is a metric to minimize (greater_is_better=False) but the feedback "
         "controller has mode='max'"),
        ("eval_accuracy", {}, ReduceOnPlateau(patience=3) & ReduceOnPlateau("max"),
         "'eval_accuracy' is a metric to maximize but the feedback controller has mode='min'"),
        ("eval_loss", {}, RestartOnPlateau("max"),
         "'eval_loss' is a metric to minimize but the feedback controller has mode='max'"),
        ("eval_score", {}, ReduceOnPlateau(), None),  # a name that tells no direction
        ("eval_loss", {}, ReduceOnPlateau(), None),
        (None, {"metric_for_best_model": "score"}, ReduceOnPlateau("max"), None),
    ],
)  # fmt: skip
def test_report_metric_warns_once_when_a_controller_goes_against_the_metric(
    tmp_path: Any, monitor: Any, kwargs: Any, fb: Any, says: Any
) -> None:
    trainer = _direction_trainer(tmp_path, monitor, fb, **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    said = [str(w.message) for w in caught if "is a metric to" in str(w.message)]
    if says is None:
        assert said == []
    else:
        assert said == [
            f"ReportMetric: {says}: it would cut the learning rate while the metric improves; "
            f"build the controller with mode={'max' if 'maxi' in says else 'min'!r}"
        ]


def test_find_lr_sweeps_the_model_as_train_trains_it_and_leaves_it_as_it_was(
    tmp_path: Any,
) -> None:
    """Gradient checkpointing and NEFTune's noisy embeddings, which train() turns on, are on
    during the sweep (the memory and the loss train() has) and off again afterwards."""

    def trainer(**kwargs: Any) -> Any:
        torch.manual_seed(0)
        return transformers.Trainer(
            model=tiny_bert(), args=_args(tmp_path, **kwargs), train_dataset=Pairs(64, 1)
        )

    plain = find_lr(trainer(), num_iter=10, warn=False)
    fields = transformers.TrainingArguments.__dataclass_fields__
    name = (
        "activation_checkpointing"
        if "activation_checkpointing" in fields
        else "gradient_checkpointing"
    )
    t = trainer(**{name: True})
    seen: list[bool] = []
    t.model.register_forward_pre_hook(lambda m, a: seen.append(m.is_activation_checkpointing))
    emb = t.model.get_input_embeddings()
    hooks = dict(emb._forward_hooks)
    checkpointed = find_lr(t, num_iter=10, warn=False)
    assert seen and all(seen) and not t.model.is_activation_checkpointing
    assert dict(emb._forward_hooks) == hooks  # no input-grad hook left behind
    assert checkpointed.losses.tolist() == pytest.approx(plain.losses.tolist(), rel=1e-5)
    t = trainer(neftune_noise_alpha=50.0)
    emb = t.model.get_input_embeddings()
    noisy = find_lr(t, num_iter=10, warn=False)
    assert noisy.losses.tolist() != plain.losses.tolist()
    assert not emb._forward_hooks and not hasattr(emb, "neftune_noise_alpha")


def test_a_scheduler_is_made_on_the_optimizer_passed_to_create_scheduler(tmp_path: Any) -> None:
    trainer = Trainer(
        model=tiny_bert(), args=_args(tmp_path, max_steps=4), schedule="constant(0.004)"
    )
    trainer.create_optimizer()
    other = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.004)
    sched = trainer.create_scheduler(4, optimizer=other)
    assert sched.optimizer is other
    assert [g["lr"] for g in other.param_groups] == [0.004]
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [0.01, 0.01]  # left alone


@resumes
def test_a_second_train_makes_a_new_scheduler_as_the_stock_trainer_does(tmp_path: Any) -> None:
    """train() called again (no resetting by hand) runs the schedule from its start again."""
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, max_steps=4),
        train_dataset=Pairs(32, 1),
        schedule=lambda n: S.linear(0.01, end_lr=0.0, total_steps=n),
    )
    trainer.train()
    first = _logged_lrs(trainer)
    sched = trainer.lr_scheduler
    trainer.train()
    assert trainer.lr_scheduler is not sched
    linear = S.linear(0.01, end_lr=0.0, total_steps=4)
    assert _logged_lrs(trainer) == first == {k: linear(k - 1) for k in range(1, 5)}


def test_the_lr_0_warning_at_the_edges_of_what_it_says(tmp_path: Any) -> None:
    """Two steps or more at LR 0 at the run's end are said (from a schedule above 0 only at
    step 0 too); a single last step at 0, a group frozen at 0 from the start, or a run of
    fewer than three steps are not; with several groups cut short, one warning, the first's."""

    with pytest.warns(UserWarning) as record:
        _made(tmp_path, "cosine(1e-3, 1)", 3).create_scheduler(3)
    assert [str(w.message) for w in record] == [
        "the schedule is 0 from step 1 on: 2 of the 3 steps the Trainer runs train at LR 0 "
        "(a schedule written for fewer steps?); write it for the run's length, or pass a "
        "function of it: schedule=lambda n: S.cosine(1e-3, total_steps=n)"
    ]
    short = lambda n: (S.cosine(1e-3, total_steps=10), S.cosine(1e-3, total_steps=20))  # noqa: E731
    with pytest.warns(UserWarning) as record:
        _made(tmp_path, short, 30).create_scheduler(30)
    assert [str(w.message)[:50] for w in record] == [
        "param group 0's schedule is 0 from step 10 on: 20 "
    ]
    for spec, steps in (
        ("cosine(1e-3, 29)", 30),  # 0 at the last step only
        (lambda n: (S.constant(0.0), S.cosine(1e-3, total_steps=n)), 30),  # a frozen group
        ("cosine(1e-3, 1)", 2),
    ):
        trainer = _made(tmp_path, spec, steps)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            trainer.create_scheduler(steps)


def test_report_metric_checks_the_controllers_mode_again_in_each_train(tmp_path: Any) -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.004)
    sched = lt.scheduler(opt, "constant(0.004)", feedback=ReduceOnPlateau())  # mode="min"
    args, state, control = _round_parts(tmp_path)
    report = ReportMetric("eval_accuracy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):  # two train() calls of two evaluations each
            report.on_train_begin(args, state, control)
            for _ in range(2):
                report.on_step_begin(args, state, control)
                report.on_step_end(args, state, control)
                report.on_evaluate(
                    args, state, control, metrics={"eval_accuracy": 0.5}, lr_scheduler=sched
                )
            report.on_train_end(args, state, control)
    said = [str(w.message) for w in caught if "is a metric to" in str(w.message)]
    message = (
        "ReportMetric: 'eval_accuracy' is a metric to maximize but the feedback controller has "
        "mode='min': it would cut the learning rate while the metric improves; build the "
        "controller with mode='max'"
    )
    assert said == [message, message]  # once in each train()
    assert sched.feedback.num_updates == 4


@pytest.mark.parametrize("name", ["score", "loss_ratio"])
def test_report_metric_takes_no_direction_from_a_greater_is_better_it_was_not_given(
    tmp_path: Any, name: str
) -> None:
    """metric_for_best_model set after the arguments were made (greater_is_better None), or
    a name that only contains "loss" (greater_is_better True as the Trainer fills it in): the
    metric's direction is not known, nothing is said against either controller."""
    if name == "score":
        args = _args(tmp_path)
        args.metric_for_best_model = name
        assert args.greater_is_better is None
    else:
        args = _args(tmp_path, metric_for_best_model=name)
        assert args.greater_is_better is True
    state, control = transformers.TrainerState(), transformers.TrainerControl()
    for mode in ("min", "max"):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.004)
        sched = lt.scheduler(opt, "constant(0.004)", feedback=ReduceOnPlateau(mode))
        report = ReportMetric()
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            report.on_train_begin(args, state, control)
            report.on_step_end(args, state, control)
            metrics = {f"eval_{name}": 0.5}
            report.on_evaluate(args, state, control, metrics=metrics, lr_scheduler=sched)
        assert sched.feedback.num_updates == 1 and sched.feedback.best == 0.5


def test_report_metric_reports_eval_loss_by_default(tmp_path: Any) -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.004)
    sched = lt.scheduler(opt, "constant(0.004)", feedback=ReduceOnPlateau())
    args, state, control = _round_parts(tmp_path)
    assert args.metric_for_best_model is None
    report = ReportMetric()
    report.on_step_end(args, state, control)
    metrics = {"eval_loss": 0.5, "eval_score": 2.0}
    report.on_evaluate(args, state, control, metrics=metrics, lr_scheduler=sched)
    assert sched.feedback.num_updates == 1 and sched.feedback.best == 0.5


def test_find_lr_refuses_a_bad_callback_before_it_builds_anything(tmp_path: Any) -> None:
    trainer = transformers.Trainer(model=tiny_bert(), args=_args(tmp_path))  # no train_dataset
    with pytest.raises(TypeError) as info:
        find_lr(trainer, num_iter=10, callback=lambda i: None)
    assert str(info.value) == (
        "callback must be a callable callback(i, lr, loss), taking 3 positional arguments; "
        "got <lambda>(i)"
    )
    assert trainer.optimizer is None


def test_find_lr_keeps_an_optimizer_of_ones_own_on_the_trainer(tmp_path: Any) -> None:
    model = tiny_bert()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = transformers.Trainer(
        model=model, args=_args(tmp_path), train_dataset=Pairs(32, 1), optimizers=(opt, None)
    )
    before = _state(model)
    find_lr(trainer, num_iter=10, warn=False)
    assert trainer.optimizer is opt and [g["lr"] for g in opt.param_groups] == [0.01]
    after = _state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    "kwargs, options, total",
    [
        ({"max_steps": 0}, {}, 2 * STEPS_PER_EPOCH),  # 0: the epochs, as train() counts
        ({"max_steps": 1}, {}, 1),
        ({"num_train_epochs": 1.5}, {}, 12),  # 1.5 x 8 batches
        ({}, {"total_steps": 7}, 7),  # the caller's budget kept
    ],
)
def test_find_lr_budgets_the_steps_train_runs_unless_told(
    tmp_path: Any, monkeypatch: Any, kwargs: dict[str, Any], options: dict[str, Any], total: int
) -> None:
    import lrkit.hf as H

    seen: dict[str, Any] = {}
    monkeypatch.setattr(H, "_torch_find_lr", lambda *a, **kw: seen.update(kw))
    trainer = transformers.Trainer(
        model=tiny_bert(), args=_args(tmp_path, **kwargs), train_dataset=Pairs(64, 1)
    )
    find_lr(trainer, num_iter=10, **options)
    assert seen["options"].total_steps == total


def test_find_lr_hands_snapshot_progress_and_warn_to_the_range_test(
    tmp_path: Any, spy: Any
) -> None:
    import lrkit.hf as H

    seen = spy(H, "_torch_find_lr")
    trainer = transformers.Trainer(
        model=tiny_bert(), args=_args(tmp_path), train_dataset=Pairs(32, 1)
    )
    find_lr(trainer, num_iter=10, snapshot="disk", progress=True, warn=False)
    assert (seen["snapshot"], seen["progress"], seen["warn"]) == ("disk", True, False)


def test_a_find_lr_whose_loader_fails_after_drawing_restores_the_rng(tmp_path: Any) -> None:
    trainer = _DrawingTrainer(model=tiny_bert(), args=_args(tmp_path))  # no train_dataset
    rng = torch.get_rng_state()
    with pytest.raises(ValueError):
        find_lr(trainer, num_iter=10)
    assert torch.equal(torch.get_rng_state(), rng) and trainer.optimizer is None


def test_find_lr_leaves_a_checkpointing_model_checkpointing_with_its_own_settings(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """A model whose activation checkpointing is already on keeps it; one turned on for the
    sweep gets the TrainingArguments' checkpointing kwargs, as train() gives them."""
    fields = transformers.TrainingArguments.__dataclass_fields__
    if "activation_checkpointing" not in fields:
        pytest.skip("transformers 5's activation checkpointing")
    on = tiny_bert()
    on.activation_checkpointing_enable()
    trainer = transformers.Trainer(
        model=on, args=_args(tmp_path, activation_checkpointing=True), train_dataset=Pairs(32, 1)
    )
    find_lr(trainer, num_iter=10, warn=False)
    assert on.is_activation_checkpointing
    model = tiny_bert()
    calls: list[dict[str, Any]] = []
    enable = model.activation_checkpointing_enable
    monkeypatch.setattr(
        model, "activation_checkpointing_enable", lambda **kw: (calls.append(kw), enable(**kw))
    )
    ckpt = {"use_reentrant": False, "every_n_layers": 2, "offload": False}
    args = _args(tmp_path, activation_checkpointing=True, activation_checkpointing_kwargs=ckpt)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Pairs(32, 1))
    find_lr(trainer, num_iter=10, warn=False)
    assert calls == [
        {
            "activation_checkpointing_kwargs": {"use_reentrant": False},
            "every_n_layers": 2,
            "offload": False,
        }
    ]
    assert not model.is_activation_checkpointing


def test_find_lr_puts_back_the_embeddings_own_neftune_alpha(tmp_path: Any) -> None:
    trainer = transformers.Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, neftune_noise_alpha=50.0),
        train_dataset=Pairs(32, 1),
    )
    emb = trainer.model.get_input_embeddings()
    emb.neftune_noise_alpha = 5.0
    find_lr(trainer, num_iter=10, warn=False)
    assert emb.neftune_noise_alpha == 5.0


def _summed_token_loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
    """A ``compute_loss_func``: the batch's summed token loss over the window's label tokens
    (over its own, where none are given: an evaluation)."""
    logits = outputs["logits"]
    loss = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), labels.flatten(), reduction="sum"
    )
    return loss / (
        int((labels != -100).sum()) if num_items_in_batch is None else num_items_in_batch
    )


class _ScaledTrainer(transformers.Trainer):  # type: ignore[misc]
    """A Trainer whose loss is declared scaled for the accumulation already."""

    loss_is_scaled_for_ga = True


class _TargetsTrainer(transformers.Trainer):  # type: ignore[misc]
    """A Trainer whose batches carry their labels as ``targets`` (no ``labels`` to count)."""

    def compute_loss(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        return model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            labels=inputs["targets"],
        ).loss


def _as_targets(features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    batch = _padded(features)
    batch["targets"] = batch.pop("labels")
    return batch


@pytest.mark.parametrize("case", ["compute_loss_func", "loss_is_scaled_for_ga", "no_labels"])
def test_find_lr_scales_an_accumulation_window_as_training_step_does(
    tmp_path: Any, case: str
) -> None:
    """The window's losses are divided by its batches exactly when training_step divides them:
    not with a compute_loss_func or a loss declared scaled, but with a model that accepts loss
    kwargs given no label tokens to count."""
    if case == "compute_loss_func":
        got = _first_window(_TokenLM(), tmp_path, compute_loss_func=_summed_token_loss)
    elif case == "loss_is_scaled_for_ga":
        got = _first_window(_TokenLM(), tmp_path, kind=_ScaledTrainer)
    else:
        got = _first_window(_tiny_gpt2(), tmp_path, kind=_TargetsTrainer, data_collator=_as_targets)
    trainer, window, swept = got
    trained = _training_step_grads(trainer, window)
    for a, b in zip(swept, trained):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
