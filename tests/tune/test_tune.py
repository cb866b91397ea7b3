"""lrkit.tune: search space -> exact schedules, finder-derived interval, the trial loop (count of
COMPLETE trials, pruning, divergence, surplus), storage and the ``lrkit tune`` command."""

from __future__ import annotations

import math
import sys
import textwrap
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from lrkit import schedules as S
from lrkit._format import round_floats
from lrkit.finder import range_test
from lrkit.schedules import parse
from lrkit.tune import (
    BLIND_LR_RANGE,
    FAMILIES,
    PARAMS,
    SearchSpace,
    Task,
    build_schedule,
    load_target,
    lr_range_from_finder,
    tune,
)

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)
TS = optuna.trial.TrialState


# ----------------------------------------------------------------------------- space


def test_build_schedule_exact_specs() -> None:
    T = 100
    assert build_schedule("constant", lr=0.1, total_steps=T) == S.constant(0.1)
    assert build_schedule("cosine", lr=0.1, total_steps=T, warmup_frac=0.1) == S.with_warmup(
        S.cosine(0.1, total_steps=90), warmup_steps=10
    )
    assert build_schedule("cosine", lr=0.1, total_steps=T, warmup_frac=0.0) == S.cosine(
        0.1, total_steps=100
    )
    assert build_schedule(
        "onecycle", lr=0.2, total_steps=T, pct_start=0.25, div_factor=10.0
    ) == S.onecycle(max_lr=0.2, total_steps=100, pct_start=0.25, div_factor=10.0)
    assert build_schedule("step", lr=0.1, total_steps=T, step_frac=0.3, gamma=0.2) == S.step(
        0.1, step_size=30, gamma=0.2
    )
    assert build_schedule(
        "cyclic", lr=0.1, total_steps=T, cycles=2, ratio=10.0, mode="triangular2"
    ) == (S.cyclic(base_lr=0.01, max_lr=0.1, step_size_up=25, mode="triangular2"))
    assert build_schedule(
        "wsd", lr=0.1, total_steps=T, warmup_frac=0.05, decay_frac=0.2, decay="cosine"
    ) == S.wsd(0.1, total_steps=100, warmup_steps=5, decay_steps=20, decay="cosine")
    # the peak of every family is the searched LR
    for fam in FAMILIES:
        s = build_schedule(fam, lr=0.3, total_steps=T)
        assert max(s.values(np.arange(T))) == pytest.approx(0.3)
        assert parse(str(s)) == s


def test_a_warmup_of_one_step_is_kept() -> None:
    """``w = round(warmup_frac * total_steps)``: plain cosine only when ``w == 0``."""
    assert build_schedule("cosine", lr=0.1, total_steps=20, warmup_frac=0.05) == S.with_warmup(
        S.cosine(0.1, total_steps=19), warmup_steps=1
    )
    assert build_schedule("cosine", lr=0.1, total_steps=20, warmup_frac=0.02) == S.cosine(
        0.1, total_steps=20
    )


def test_wsd_defaults_and_a_decay_cut_to_the_steps_after_warmup() -> None:
    assert build_schedule("wsd", lr=0.1, total_steps=100) == S.wsd(
        0.1, total_steps=100, warmup_steps=5, decay_steps=20, decay="1-sqrt"
    )
    assert build_schedule("wsd", lr=0.1, total_steps=20, warmup_frac=0.5, decay_frac=1.0) == S.wsd(
        0.1, total_steps=20, warmup_steps=10, decay_steps=10, decay="1-sqrt"
    )


def test_build_schedule_errors() -> None:
    with pytest.raises(ValueError, match="family"):
        build_schedule("linear", lr=0.1, total_steps=100)
    with pytest.raises(ValueError, match="lr"):
        build_schedule("constant", lr=-1.0, total_steps=100)
    with pytest.raises(ValueError, match="total_steps"):
        build_schedule("cosine", lr=0.1, total_steps=5)
    with pytest.raises(ValueError, match="params"):
        build_schedule("step", lr=0.1, total_steps=100, pct_start=0.3)


class _FixedTrial:
    """Answers suggest_* from a dict, recording the calls."""

    def __init__(self, values: dict[str, object]) -> None:
        self.values = values
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        self.calls.append((name, (low, high, log)))
        return float(self.values[name])  # type: ignore[arg-type]

    def suggest_int(self, name: str, low: int, high: int) -> int:
        self.calls.append((name, (low, high)))
        return int(self.values[name])  # type: ignore[call-overload]

    def suggest_categorical(self, name: str, choices: list[object]) -> object:
        self.calls.append((name, tuple(choices)))
        assert self.values[name] in choices
        return self.values[name]


def test_space_sample_and_build_agree() -> None:
    space = SearchSpace(200, lr_range=(1e-3, 1.0), families=("cyclic", "wsd"))
    params = {
        "lr": 0.05,
        "family": "cyclic",
        "cyclic.cycles": 4,
        "cyclic.ratio": 5.0,
        "cyclic.mode": "triangular",
    }
    trial = _FixedTrial(params)
    s = space.sample(trial)
    assert s == S.cyclic(base_lr=0.01, max_lr=0.05, step_size_up=25)
    assert space.build(params) == s
    assert trial.calls[0] == ("lr", (1e-3, 1.0, True))
    assert trial.calls[1] == ("family", ("cyclic", "wsd"))
    assert [c[0] for c in trial.calls[2:]] == [f"cyclic.{p.name}" for p in PARAMS["cyclic"]]


def test_fixed_parameters_are_taken_as_given_and_left_out_of_the_search() -> None:
    fixed = {"lr": 0.05, "cyclic.cycles": 4, "cyclic.mode": "triangular"}
    space = SearchSpace(200, lr_range=(1e-3, 1.0), families=("cyclic", "wsd"), fixed=fixed)
    trial = _FixedTrial({"family": "cyclic", "cyclic.ratio": 5.0})
    s = space.sample(trial)
    assert s == S.cyclic(base_lr=0.01, max_lr=0.05, step_size_up=25)
    assert [c[0] for c in trial.calls] == ["family", "cyclic.ratio"]  # the others: not drawn
    assert space.build({"family": "cyclic", "cyclic.ratio": 5.0}) == s
    assert space.build({"lr": 0.2, "family": "cyclic", "cyclic.ratio": 5.0}).max_lr == 0.2
    one = SearchSpace(200, families=("cosine", "wsd"), fixed={"family": "cosine"})
    trial = _FixedTrial({"lr": 0.1, "cosine.warmup_frac": 0.1})
    assert one.sample(trial) == SearchSpace(200, families=("cosine",)).build(
        {"lr": 0.1, "family": "cosine", "cosine.warmup_frac": 0.1}
    )
    assert [c[0] for c in trial.calls] == ["lr", "cosine.warmup_frac"]
    for bad, said in [
        ({"no_such": 1}, "fixed names a parameter this space does not search, 'no_such'; its "
         "parameters: lr, family, cyclic.cycles, cyclic.ratio, cyclic.mode, wsd.warmup_frac, "
         "wsd.decay_frac, wsd.decay$"),
        ({"cyclic.ratio": 50.0}, r"fixed\['cyclic.ratio'\] must be in \[3.0, 30.0\], got 50.0"),
        ({"cyclic.cycles": 5}, r"fixed\['cyclic.cycles'\] must be an integer in \[1, 4\], got 5"),
        ({"family": "cosine"}, r"fixed\['family'\] must be one of 'cyclic', 'wsd', got 'cosine'"),
        ({"lr": 0}, r"fixed\['lr'\] must be in \[1e-06, 10.0\], got 0"),
        ({"lr": 100.0}, r"fixed\['lr'\] must be in \[1e-06, 10.0\], got 100.0"),
        ({"family": "wsd", "cyclic.cycles": 2}, r"fixed\['cyclic.cycles'\] is a parameter of "
         r"another family than fixed\['family'\]='wsd'"),
        ("lr=0.1", "fixed must be a dict of parameter names to values, got 'lr=0.1'"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=f"^{said}"):
            SearchSpace(200, families=("cyclic", "wsd"), fixed=bad)


def test_space_validation() -> None:
    with pytest.raises(ValueError, match="lr_range"):
        SearchSpace(100, lr_range=(1.0, 0.1))
    with pytest.raises(ValueError, match="families"):
        SearchSpace(100, families=("cosine", "bogus"))
    with pytest.raises(ValueError, match="families"):
        SearchSpace(100, families=())
    with pytest.raises(ValueError, match=r"^families must name each family once, got 'cosine'"):
        SearchSpace(100, families=("cosine", "wsd", "cosine"))
    with pytest.raises(ValueError, match="total_steps"):
        SearchSpace(3)
    # kept as the Python int it names, as Task keeps it (in its repr too)
    for given in (np.int64(1000), 1000.0):
        space = SearchSpace(given)
        assert type(space.total_steps) is int and space == SearchSpace(1000)
        assert repr(space).startswith("SearchSpace(total_steps=1000,")


# ----------------------------------------------------------------------------- finder range


def _bowl_loss(lr: float) -> float:
    """Flat below 1e-4, falls until 1e-1, blows up beyond."""
    x = math.log10(lr)
    if x < -4:
        return 2.0
    if x < -1:
        return 2.0 - 0.6 * (x + 4)
    return 0.2 + 3.0 * (x + 1) ** 2 * 10


def test_lr_range_from_finder_bounds_the_fall() -> None:
    res = range_test(_bowl_loss, start_lr=1e-7, end_lr=10.0, num_iter=100, warn=False)
    lo, hi = lr_range_from_finder(res)
    # the loss starts falling at 1e-4 and is back above its start a bit beyond 1e-1
    assert 5e-5 < lo < 1e-3
    assert 1e-1 < hi < 10.0
    assert hi / lo >= 10
    with pytest.raises(ValueError, match="result"):
        lr_range_from_finder(range_test(lambda lr: 1.0, num_iter=10, warn=False))
    with pytest.raises(ValueError, match="min_ratio"):
        lr_range_from_finder(res, min_ratio=0.5)


def test_lr_range_from_finder_widens_to_exactly_min_ratio_when_narrower() -> None:
    res = range_test(_bowl_loss, start_lr=1e-7, end_lr=10.0, num_iter=100, warn=False)
    lo, hi = lr_range_from_finder(res, min_ratio=1.0001)
    ratio = hi / lo
    assert ratio > 10
    assert lr_range_from_finder(res, min_ratio=ratio * 0.999) == (lo, hi)
    lo2, hi2 = lr_range_from_finder(res, min_ratio=ratio * 1.001)
    assert hi2 == hi and hi2 / lo2 == pytest.approx(ratio * 1.001)


def test_lr_range_from_finder_high_is_never_below_the_lr_of_the_minimum() -> None:
    lrs = np.logspace(-5, 0, 50)
    losses = np.concatenate([np.full(20, 2.0), np.linspace(2.0, 1.0, 10), np.full(20, 1.0)])
    res = SimpleNamespace(lrs=lrs, losses=losses, curve=None, stop_reason="diverged", stop_lr=1e-4)
    lo, hi = lr_range_from_finder(res)
    m = int(np.argmin(losses))
    assert hi >= lrs[m] and hi / lo >= 10


def test_lr_range_from_finder_refuses_a_curve_that_only_drifts() -> None:
    """A noiseless held loss that drifts by 0.003% never clearly fell: the finder marks it
    unreliable, and there is no interval to search."""
    rng = np.random.default_rng(0)
    at = {"lr": 0.0}

    def step(lr: float) -> float:
        at["lr"] = lr
        return math.nan if lr > 5e-5 else float(2.35 + 0.05 * rng.normal())

    res = range_test(step, evaluate=lambda: 2.3915 - 1.5 * at["lr"], warn=False)
    assert not res.reliable
    with pytest.raises(ValueError, match=r"^result: the range-test loss never clearly fell"):
        lr_range_from_finder(res)


def test_lr_range_from_finder_reads_the_held_curve_when_measured() -> None:
    rng = np.random.default_rng(0)
    seen: list[float] = []

    def step(lr: float) -> float:  # training losses: the bowl plus batch noise
        seen.append(lr)
        return _bowl_loss(lr) + 0.3 * rng.standard_normal()

    # held losses: the bowl itself, at the LR of the step just taken
    res = range_test(step, evaluate=lambda: _bowl_loss(seen[-1]), start_lr=1e-7, end_lr=10.0,
                     num_iter=100, warn=False)  # fmt: skip
    held = SimpleNamespace(lrs=res.held_lrs, losses=res.held_losses,
                           stop_reason=res.stop_reason, stop_lr=res.stop_lr)  # fmt: skip
    train = SimpleNamespace(lrs=res.lrs, losses=res.losses,
                            stop_reason=res.stop_reason, stop_lr=res.stop_lr)  # fmt: skip
    assert len(res.held_losses) > 5
    assert lr_range_from_finder(res) == lr_range_from_finder(held) != lr_range_from_finder(train)


# ----------------------------------------------------------------------------- study loop


def _quadratic_task(calls: list[str] | None = None, *, rt: object = (1e-3, 1.0)) -> Task:
    """val = (log10 lr + 2)^2 + family offset, 3 'epochs'; no torch."""

    offsets = {
        "constant": 0.5,
        "cosine": 0.0,
        "onecycle": 0.1,
        "step": 0.3,
        "cyclic": 0.4,
        "wsd": 0.05,
    }

    def train(schedule: S.Schedule, report) -> float:  # type: ignore[no-untyped-def]
        spec = str(schedule)
        if calls is not None:
            calls.append(spec)
        peak = float(max(schedule.values(np.arange(100))))
        fam = spec.split("(")[0]
        fam = "cosine" if fam == "join" else fam
        val = (math.log10(peak) + 2.0) ** 2 + offsets[fam]
        for epoch in range(3):
            report(epoch, val + (2 - epoch))
        return val

    return Task(train=train, total_steps=100, range_test=lambda: rt, name="quad")


def test_tune_counts_complete_trials_and_stores_specs(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    result = tune(_quadratic_task(), n_trials=6, storage=url, study_name="q", seed=0, pruner="none")
    study = optuna.load_study(study_name="q", storage=url)
    complete = study.get_trials(states=(TS.COMPLETE,))
    assert len(complete) == 6 and len(study.trials) == 6
    for t in complete:
        s = parse(t.user_attrs["schedule"])
        assert s == result.space.build(t.params)
        assert 1e-3 <= t.params["lr"] <= 1.0
        assert sorted(t.intermediate_values) == [0, 1, 2]
    assert study.user_attrs["lrkit.lr_range"] == [1e-3, 1.0]
    assert result.best_schedule == parse(result.best_spec)
    assert result.best_value == min(t.value for t in complete)
    top = result.top(3)
    assert [t.value for t in top] == sorted(t.value for t in complete)[:3]
    table = result.table(3)
    assert table.count("\n") == 4 and round_floats(result.best_spec) in table
    # a second run on the same study tops it up to 8 COMPLETE trials, same interval
    tune(_quadratic_task(), n_trials=8, storage=url, study_name="q", seed=1, pruner="none")
    assert len(study.get_trials(states=(TS.COMPLETE,))) == 8


def test_tune_finder_seed_enqueues_onecycle_and_cosine() -> None:
    from lrkit.tune._loop import SEED_ATTR

    res = range_test(_bowl_loss, start_lr=1e-7, end_lr=10.0, num_iter=100, warn=False)
    result = tune(_quadratic_task(rt=res), n_trials=3, seed=0)
    lo, hi = lr_range_from_finder(res)
    assert result.lr_range == (lo, hi)
    lr0 = min(max(res.lr_min / 3, lo), hi)
    first, second = result.study.trials[:2]
    assert (first.params["family"], second.params["family"]) == ("onecycle", "cosine")
    assert first.params["lr"] == second.params["lr"] == pytest.approx(lr0)
    assert result.seeding == "finder"
    assert result.finder is not None and result.finder["lr_min"] == res.lr_min
    # families without onecycle/cosine: the first family is seeded
    r2 = tune(_quadratic_task(rt=res), n_trials=2, seed=0, families=("step", "wsd"))
    seeded = r2.study.trials[0]
    assert seeded.params["family"] == "step" and seeded.params["lr"] == pytest.approx(lr0)
    assert [t.user_attrs.get(SEED_ATTR) for t in r2.study.trials] == [True, None]


def test_the_seeds_read_the_edge_under_its_name_and_its_former_one() -> None:
    """A study's stored range test names the edge ``lr_min`` (as ``FinderResult.to_dict()``);
    one lrkit 0.1 stored names it ``min_loss_lr``: both seed at a third of it."""
    from lrkit.tune._loop import _seed_points

    for key in ("lr_min", "min_loss_lr"):
        (family, lr), *_ = _seed_points({key: 0.3}, (1e-6, 10.0), ("onecycle",))
        assert family == "onecycle" and lr == pytest.approx(0.1, rel=1e-12)


def test_tune_blind_and_given_ranges() -> None:
    r = tune(_quadratic_task(), n_trials=3, seeding="blind", seed=0, families=("constant",))
    assert r.lr_range == BLIND_LR_RANGE and r.seeding == "blind"
    assert all(t.params["family"] == "constant" for t in r.study.trials)
    r = tune(_quadratic_task(), n_trials=3, seeding=(0.01, 0.02), seed=0)
    assert r.lr_range == (0.01, 0.02)
    assert all(0.01 <= t.params["lr"] <= 0.02 for t in r.study.trials)


def test_tune_diverged_and_pruned_trials_do_not_count() -> None:
    n = {"i": 0}

    def train(schedule: S.Schedule, report) -> float:  # type: ignore[no-untyped-def]
        n["i"] += 1
        if n["i"] % 2 == 0:
            return math.nan  # every second trial diverges
        if n["i"] == 3:
            report(0, math.inf)  # reports a non-finite epoch metric
        report(0, 1.0)
        return 1.0 / n["i"]

    r = tune(Task(train=train, total_steps=50), n_trials=3, seeding="blind", seed=0)
    counts = r.counts()
    assert counts["COMPLETE"] == 3
    assert counts["PRUNED"] == len(r.study.trials) - 3 >= 2
    pruned = r.study.get_trials(states=(TS.PRUNED,))
    assert all(t.user_attrs.get("diverged") for t in pruned)


def test_tune_median_pruner_prunes() -> None:
    seen = {"i": 0}

    def train(schedule: S.Schedule, report) -> float:  # type: ignore[no-untyped-def]
        seen["i"] += 1
        bad = seen["i"] in (7, 8)  # these two are much worse at every epoch
        for epoch in range(4):
            report(epoch, (10.0 if bad else 1.0) - 0.1 * epoch)
        return 10.0 if bad else 1.0

    r = tune(Task(train=train, total_steps=50), n_trials=8, seeding="blind", seed=0, max_trials=40)
    pruned = r.study.get_trials(states=(TS.PRUNED,))
    assert [t.number for t in pruned] == [6, 7]
    assert all(list(t.intermediate_values.values()) == [10.0, 9.9] for t in pruned)
    assert r.counts() == {"COMPLETE": 8, "PRUNED": 2}


def test_tune_max_trials_stops_runaway() -> None:
    task = Task(train=lambda s, rep: math.nan, total_steps=20)
    with pytest.warns(UserWarning, match="max_trials"):
        r = tune(task, n_trials=2, seeding="blind", max_trials=5)
    assert len(r.study.trials) == 5 and r.counts() == {"PRUNED": 5}


def test_surplus_rule() -> None:
    """A trial started while the COMPLETE trials plus those running ahead of it already make
    n_trials is surplus (what keeps several workers at exactly n_trials)."""
    from lrkit.tune._loop import _surplus

    study = optuna.create_study()
    study.add_trial(optuna.create_trial(value=1.0, params={}, distributions={}))
    a, b = study.ask(), study.ask()  # trials 1 and 2 RUNNING
    trials = study.get_trials(deepcopy=False)
    assert _surplus(trials, b.number, 2)  # 1 complete + trial 1 ahead of it
    assert not _surplus(trials, a.number, 2)
    assert not _surplus(trials, b.number, 3)
    study.tell(a, state=TS.FAIL)
    assert not _surplus(study.get_trials(deepcopy=False), b.number, 2)
    # a copy queued (WAITING) before a new trial was made keeps the last slot: the new one
    # gives way, and the copy is the next trial asked for
    study.tell(b, state=TS.FAIL)
    study.enqueue_trial({"x": 0.5})  # trial 3, as a stopped worker's trial re-queued
    # trial 4, made by a worker that had not seen the copy yet (in the race)
    study.add_trial(optuna.trial.create_trial(state=TS.RUNNING, params={}, distributions={}))
    number = study.get_trials(deepcopy=False)[-1].number
    trials = study.get_trials(deepcopy=False)
    assert number == 4 and _surplus(trials, number, 2)
    assert not _surplus(trials, number, 3)
    assert study.ask().number == 3


def test_tune_waits_for_running_trials_of_other_workers() -> None:
    """With complete + running >= n_trials the worker waits; when the other worker's trial
    fails instead of completing, it runs the missing trial itself."""
    import threading

    study = optuna.create_study(study_name="shared")
    opts: dict[str, Any] = dict(storage=study._storage, study_name="shared", seeding="blind")
    tune(_quadratic_task(), n_trials=1, seed=0, **opts)  # this worker's first trial
    other = study.ask()  # another worker's trial, RUNNING
    timer = threading.Timer(0.3, lambda: study.tell(other, state=TS.FAIL))
    timer.start()
    try:
        r = tune(_quadratic_task(), n_trials=2, seed=0, poll_interval=0.05, **opts)
    finally:
        timer.join()
    assert [t.state for t in r.study.trials] == [TS.COMPLETE, TS.FAIL, TS.COMPLETE]


def test_tune_errors() -> None:
    with pytest.raises(ValueError, match="n_trials"):
        tune(_quadratic_task(), n_trials=0)
    with pytest.raises(ValueError, match="seeding"):
        tune(_quadratic_task(), n_trials=1, seeding="magic")
    with pytest.raises(ValueError, match="pruner"):
        tune(_quadratic_task(), n_trials=1, pruner="hyperband")
    # checked before the storage is touched: no study with a FAIL trial is left behind
    for bad in (5, None):
        with pytest.raises(ValueError) as err:
            tune(_quadratic_task(), n_trials=1, pruner=bad)
        assert str(err.value) == (
            "pruner must be one of 'percentile', 'median', 'sha', 'successive_halving', 'none' "
            f"(no pruning: 'none') or an optuna.pruners.BasePruner, got {bad!r}"
        )
    with pytest.raises(TypeError, match=r"train must be a callable train\(schedule, report\)"):
        Task(train=lambda s: 0.0, total_steps=10)
    with pytest.raises(ValueError, match="storage"):
        tune(_quadratic_task(), n_trials=1, storage="not-a-url")
    with pytest.raises(ValueError, match="direction"):
        Task(train=lambda s, r: 0.0, total_steps=10, direction="up")
    # the name is stored with the study's search space; the metric labels the results
    for field, bad in (("name", ""), ("name", "  "), ("name", 3), ("metric", ""), ("metric", None)):
        with pytest.raises(ValueError) as err:
            Task(train=lambda s, r: 0.0, total_steps=10, **{field: bad})
        assert str(err.value) == f"{field} must be a non-empty string, got {bad!r}"


def test_a_task_is_refused_below_ten_steps_and_with_a_range_test_that_is_no_function() -> None:
    with pytest.raises(ValueError) as err:
        Task(train=lambda s, r: 0.0, total_steps=9)
    assert str(err.value) == "total_steps must be an integer in [10, 2**53], got 9"
    assert Task(train=lambda s, r: 0.0, total_steps=10).total_steps == 10
    with pytest.raises(ValueError) as err:
        Task(train=lambda s, r: 0.0, total_steps=10, range_test=5)
    assert str(err.value) == "range_test must be callable or None, got 5"


def test_a_bytearray_returned_by_train_is_no_metric() -> None:
    from lrkit.tune import check_metric

    with pytest.raises(TypeError) as info:
        check_metric(bytearray(b"1"))
    assert str(info.value).endswith("got bytearray(b'1') (bytearray)")


def test_a_reporter_keeps_every_value_reported_in_order() -> None:
    from lrkit.tune import Reporter

    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    report = Reporter(trial)
    report(0, 2.0)
    report(1, np.float32(0.5))
    with pytest.raises(optuna.TrialPruned, match=r"^metric is inf at epoch 2 \(diverged\)$"):
        report(2, math.inf)
    assert report.history == [(0, 2.0), (1, 0.5), (2, math.inf)]
    assert all(type(v) is float for _, v in report.history)
    assert study.trials[0].intermediate_values == {0: 2.0, 1: 0.5}
    assert study.trials[0].user_attrs == {"diverged": True}


def test_user_objective_exception_propagates_and_marks_fail() -> None:
    def train(schedule: S.Schedule, report) -> float:  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    study = optuna.create_study(study_name="boom")
    with pytest.raises(RuntimeError, match="boom"):
        tune(
            Task(train=train, total_steps=10),
            n_trials=2,
            storage=study._storage,
            study_name="boom",
            seeding="blind",
        )
    assert [t.state for t in study.trials] == [TS.FAIL]


# ----------------------------------------------------------------------------- targets


@pytest.fixture
def user_module(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    pkg = tmp_path / "usertasks"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "objective.py").write_text(
        textwrap.dedent(
            """
            import math
            from lrkit.tune import Task

            def make():
                def train(schedule, report):
                    v = (math.log10(schedule(0) + schedule(50)) + 2.0) ** 2
                    report(0, v + 1.0)
                    return v
                return Task(train=train, total_steps=100, range_test=lambda: (1e-4, 1.0))

            def as_dict():
                return {"train": lambda s, r: 1.0, "total_steps": 20}

            def bad():
                return 42
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "usertasks.objective"
    for name in [m for m in sys.modules if m.startswith("usertasks")]:
        del sys.modules[name]


def test_load_target(user_module: str) -> None:
    t = load_target(f"{user_module}:make")
    assert isinstance(t, Task) and t.total_steps == 100 and t.range_test() == (1e-4, 1.0)
    d = load_target(f"{user_module}:as_dict")
    assert d.total_steps == 20
    with pytest.raises(ValueError, match="target"):
        load_target(f"{user_module}:bad")
    with pytest.raises(ValueError, match="target"):
        load_target(f"{user_module}:missing")
    for bad in ("nocolon", "a:b:c", "os.system('x'):y", "pkg:__import__('os')"):
        with pytest.raises(ValueError, match="target"):
            load_target(bad)


def test_a_loaded_task_without_a_name_of_its_own_is_named_after_its_target(
    user_module: str,
) -> None:
    from lrkit.tune import as_task

    assert load_target(f"{user_module}:make").name == f"{user_module}:make"
    assert load_target(f"{user_module}:as_dict").name == f"{user_module}:as_dict"
    own = Task(train=lambda s, r: 1.0, total_steps=10, name="mine")
    assert as_task(own, name="pkg.mod:make") is own
    fields = {"train": lambda s, r: 1.0, "total_steps": 10}
    assert as_task({**fields, "name": "mine"}, name="pkg.mod:make").name == "mine"
    assert as_task(fields, name="pkg.mod:make").name == "pkg.mod:make"
    assert as_task(fields).name == "task"


def test_cli_tune_target(user_module: str, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    from lrkit.cli import main

    def no_backend_switch(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("matplotlib.use() switches the caller's backend")

    monkeypatch.setattr(matplotlib, "use", no_backend_switch)

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    rc = main(
        [
            "tune",
            f"{user_module}:make",
            "--trials",
            "5",
            "--storage",
            url,
            "--study",
            "cli",
            "--seed",
            "0",
            "--no-progress",
            "--plot",
            str(tmp_path / "search.png"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    study = optuna.load_study(study_name="cli", storage=url)
    assert len(study.get_trials(states=(TS.COMPLETE,))) == 5
    best = study.best_trial.user_attrs["schedule"]
    assert best in out.splitlines()  # printed alone on a line: copy-paste into lrkit plot
    assert parse(best) is not None
    assert (tmp_path / "search.png").stat().st_size > 1000
    assert main(["tune", "--trials", "1", "--no-progress"]) == 2  # neither --demo nor target
    assert "error" in capsys.readouterr().err


def test_cli_tune_demo(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    import random

    import numpy as np
    import torch

    from lrkit.cli import main

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    threads = torch.get_num_threads()
    torch.set_num_threads(2 if threads != 2 else 3)  # the demo trains on 1 thread meanwhile
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    rc = main(
        ["tune", "--demo", "--trials", "4", "--storage", url, "--study", "demo", "--no-progress"]
    )
    after_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    assert rc == 0
    assert after_threads == (2 if threads != 2 else 3)  # the caller's settings are kept
    assert torch.equal(before[0], torch.get_rng_state())
    assert np.array_equal(before[1], np.random.get_state()[1])
    assert before[2] == random.getstate()
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="demo", storage=url)
    complete = study.get_trials(states=(TS.COMPLETE,))
    assert len(complete) == 4
    for t in complete:
        assert parse(t.user_attrs["schedule"]) == S.parse(t.user_attrs["schedule"])
    assert study.best_trial.user_attrs["schedule"] in out
    assert (tmp_path / "lrkit-tune-demo.png").exists()


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["--epochs", "0"], "--epochs"),  # 0 was silently replaced by the default
        (["--top", "0"], "--top"),
        (["--seed", "-1"], "--seed"),
        (["--families", "cosine,sgdr"], "--families"),
    ],
)
def test_cli_tune_bad_options_fail_before_any_work(tmp_path, capsys, argv, msg) -> None:  # type: ignore[no-untyped-def]
    from lrkit.cli import main

    db = tmp_path / "x.db"
    rc = main(["tune", "--demo", "--trials", "1", "--storage", f"sqlite:///{db}", *argv])
    assert rc == 2
    assert msg in capsys.readouterr().err
    assert not db.exists()  # no study was created


def test_tune_rejects_bad_families_before_the_range_test() -> None:
    calls = []

    def range_test():  # type: ignore[no-untyped-def]
        calls.append(1)
        return (1e-3, 1.0)

    task = Task(train=lambda s, r: 1.0, total_steps=20, range_test=range_test)
    with pytest.raises(ValueError, match="families"):
        tune(task, n_trials=1, families=("cosine", "sgdr"))
    assert calls == []


def test_a_worker_waiting_for_other_trials_says_so() -> None:
    """A trial left RUNNING (e.g. by a killed worker) makes the next worker wait: it says what
    it waits for instead of sitting silent."""
    study = optuna.create_study(study_name="wait")
    study.ask()  # RUNNING, never finished
    said: list[str] = []
    calls = [0]

    def stop(_: object) -> bool:
        calls[0] += 1
        return calls[0] > 1

    r = tune(
        _quadratic_task(),
        n_trials=1,
        storage=study._storage,
        study_name="wait",
        seeding="blind",
        poll_interval=0.01,
        log=said.append,
        stop_when=stop,
    )
    assert [m for m in said if m.startswith("waiting for 1 running trial(s)")]
    assert r.stop_reason == "stop_when" and not r.reached


def test_a_trial_left_running_before_its_first_heartbeat_is_failed_and_its_copy_run(
    tmp_path,
) -> None:
    """A worker killed while Optuna samples a trial (after ``ask`` made it RUNNING, before its
    heartbeat began) leaves a trial no heartbeat check fails: after 2 x grace_period it is
    failed, an enqueued one re-queued, and the next worker finishes the study."""
    from lrkit.tune import make_storage

    url = f"sqlite:///{tmp_path / 'stuck.db'}"
    kw = dict(storage=url, study_name="s", seeding="blind", heartbeat_interval=1,
              grace_period=2, poll_interval=0.05)  # fmt: skip
    tune(_quadratic_task(), n_trials=1, **kw)
    study = optuna.load_study(study_name="s", storage=make_storage(url))
    fixed = {"lr": 0.01, "family": "constant"}
    study.enqueue_trial(fixed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Optuna: heartbeats are for optimize()
        stuck = study.ask()  # RUNNING, no heartbeat ever (the worker "died" here)
    assert stuck.params == {} and stuck.number == 1
    r = tune(_quadratic_task(), n_trials=2, **kw)
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert trials[1].state == optuna.trial.TrialState.FAIL
    copy = [t for t in trials[2:] if t.params.get("lr") == 0.01]
    assert len(copy) == 1 and copy[0].params["family"] == "constant"
    assert copy[0].state == optuna.trial.TrialState.COMPLETE
    assert r.reached and len(r.complete_trials) == 2


def test_a_trial_whose_heartbeat_stopped_is_failed_and_its_copy_run_by_the_next_worker(
    tmp_path,
) -> None:
    """A worker killed mid-trial (its objective had begun, its heartbeat stopped): once the
    grace period has passed, the next worker fails that trial and runs its copy."""
    import time

    from lrkit.tune import make_storage
    from lrkit.tune._loop import ATTR_BEGAN

    url = f"sqlite:///{tmp_path / 'stale.db'}"
    kw = dict(storage=url, study_name="s", seeding="blind", heartbeat_interval=1,
              grace_period=2, poll_interval=0.05)  # fmt: skip
    tune(_quadratic_task(), n_trials=1, **kw)
    storage = make_storage(url, heartbeat_interval=1, grace_period=2)
    study = optuna.load_study(study_name="s", storage=storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Optuna: heartbeats are for optimize()
        killed = study.ask()
    killed.set_user_attr(ATTR_BEGAN, killed.number)
    study_id = storage.get_study_id_from_name("s")
    storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(study_id, 1))
    time.sleep(2.5)  # past the grace period: the heartbeat is stale
    r = tune(_quadratic_task(), n_trials=2, timeout=6, **kw)
    assert r.stop_reason == "complete" and r.reached
    states = [t.state for t in optuna.load_study(study_name="s", storage=url).trials]
    assert states == [TS.COMPLETE, TS.FAIL, TS.COMPLETE]


def test_a_seed_trial_stopped_by_ctrl_c_is_queued_again_by_the_next_run(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'int.db'}"
    res = range_test(_bowl_loss, start_lr=1e-7, end_lr=10.0, num_iter=100, warn=False)
    task = _quadratic_task(rt=res)
    first = task.train

    def interrupted(schedule: S.Schedule, report: Any) -> float:
        raise KeyboardInterrupt

    task.train = interrupted  # type: ignore[misc]
    with pytest.raises(KeyboardInterrupt):
        tune(task, n_trials=3, storage=url, study_name="i", pruner="none")
    study = optuna.load_study(study_name="i", storage=url)
    seed = study.trials[0]
    assert seed.state == TS.FAIL and seed.system_attrs["fixed_params"]
    task.train = first  # type: ignore[misc]
    tune(task, n_trials=3, storage=url, study_name="i", pruner="none")
    trials = optuna.load_study(study_name="i", storage=url).trials
    fixed = seed.system_attrs["fixed_params"]
    again = [t for t in trials[1:] if t.system_attrs.get("fixed_params") == fixed]
    assert len(again) == 1 and again[0].state == TS.COMPLETE
    assert {k: again[0].params[k] for k in fixed} == fixed
    # the seeds carry lrkit's mark (a copy of one is dropped), and the copy keeps it
    from lrkit.tune._loop import REQUEUED_ATTR, SEED_ATTR

    assert seed.user_attrs[SEED_ATTR] is True and again[0].user_attrs[SEED_ATTR] is True
    assert again[0].user_attrs[REQUEUED_ATTR] == seed.number
    assert not any(t.user_attrs.get(SEED_ATTR) for t in trials[2:] if t is not again[0])
    # both seeds ran, each once: a second rerun queues nothing new
    n = len(trials)
    tune(task, n_trials=3, storage=url, study_name="i", pruner="none")
    assert len(optuna.load_study(study_name="i", storage=url).trials) == n


def test_the_waiting_note_is_a_line_of_its_own_under_the_progress_bar(capsys) -> None:
    study = optuna.create_study(study_name="wait")
    study.ask()  # RUNNING, never finished
    calls = [0]

    def stop(_: object) -> bool:
        calls[0] += 1
        return calls[0] > 1

    tune(_quadratic_task(), n_trials=1, storage=study._storage, study_name="wait",
         seeding="blind", poll_interval=0.01, progress=True, stop_when=stop,
         log=lambda msg: print(msg, file=sys.stderr))  # fmt: skip
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.replace("\r", "\n").split("\n") if "waiting for" in ln]
    assert line == "waiting for 1 running trial(s) to finish"
    assert "lrkit tune:" in err.split(line)[1]  # the bar is drawn again after it


def test_grace_period_must_outlast_the_heartbeat(tmp_path) -> None:
    from lrkit.tune import make_storage

    url = f"sqlite:///{tmp_path / 'hb.db'}"
    with pytest.raises(ValueError, match=r"^grace_period must be longer than heartbeat_interval"):
        make_storage(url, heartbeat_interval=10, grace_period=10)
    assert not (tmp_path / "hb.db").exists()  # refused before anything was created
    make_storage(url, heartbeat_interval=10, grace_period=11)


def test_the_workers_of_a_study_share_its_heartbeat(tmp_path, monkeypatch, capsys) -> None:
    """A worker with a shorter grace period would fail the others' live trials: the study's
    heartbeat is recorded, used by a worker given none, and another one is refused."""
    from lrkit.cli import main
    from lrkit.tune import StudySpaceError, Task, _loop, tune

    url = f"sqlite:///{tmp_path / 'hb.db'}"
    train = lambda spec, report: 1.0  # noqa: E731
    task = Task(name="hb", train=train, total_steps=20)
    tune(task, n_trials=1, storage=url, study_name="s", seeding="blind",
         heartbeat_interval=5, grace_period=20)  # fmt: skip
    recorded = optuna.load_study(study_name="s", storage=url).user_attrs["lrkit.heartbeat"]
    assert recorded == {"heartbeat_interval": 5, "grace_period": 20}
    opened = []
    real = _loop.make_storage

    def spy(storage: Any, **options: Any) -> Any:
        st = real(storage, **options)
        opened.append((st.heartbeat_interval, st.grace_period))
        return st

    monkeypatch.setattr(_loop, "make_storage", spy)
    tune(task, n_trials=2, storage=url, study_name="s", seeding="blind")
    assert opened[-1] == (5, 20)  # the study's, not the defaults (10, 30)
    tune(task, n_trials=3, storage=url, study_name="s", seeding="blind",
         heartbeat_interval=5, grace_period=20)  # fmt: skip
    with pytest.raises(StudySpaceError) as info:
        tune(task, n_trials=4, storage=url, study_name="s", seeding="blind",
             heartbeat_interval=1, grace_period=2)  # fmt: skip
    assert info.value.conflicts == {"heartbeat_interval": (5, 1), "grace_period": (20, 2)}
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 3
    tune(task, n_trials=1, storage=url, study_name="new", seeding="blind")
    recorded = optuna.load_study(study_name="new", storage=url).user_attrs["lrkit.heartbeat"]
    assert recorded == {"heartbeat_interval": 10, "grace_period": 30}  # a new study: its own
    assert main(["tune", "--demo", "--storage", url, "--study", "s", "--grace", "60"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"lrkit tune: error: study 's' ({url}) was created with --grace 20, not --grace 60: "
        "pass --study NAME for a new study, or the same options to continue it (or leave out "
        "--heartbeat and --grace)"
    )


def test_one_heartbeat_option_takes_the_study_s_value_for_the_other(tmp_path, capsys) -> None:
    """Given alone, --heartbeat or --grace is compared with the study's own (the other from
    the study, not the new-study default): the study's value is accepted, another one is
    named alone; a grace period alone is checked against the study's interval, and against
    the default one (10 s) for a new study, before its range test."""
    from lrkit.cli import main
    from lrkit.tune import StudySpaceError, Task, tune

    url = f"sqlite:///{tmp_path / 'hb.db'}"
    tested = []

    def range_test() -> Any:
        tested.append(1)
        return (1e-3, 1e-1)

    task = Task(name="hb", train=lambda spec, report: 1.0, total_steps=20, range_test=range_test)
    tune(task, n_trials=1, storage=url, study_name="s", heartbeat_interval=1, grace_period=3)
    n = 1
    for given in ({"heartbeat_interval": 1}, {"grace_period": 3}):
        n += 1
        tune(task, n_trials=n, storage=url, study_name="s", **given)
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 3
    with pytest.raises(StudySpaceError) as info:
        tune(task, n_trials=4, storage=url, study_name="s", grace_period=4)
    assert info.value.conflicts == {"grace_period": (3, 4)}
    assert tested == [1]  # the study's range test only
    with pytest.raises(ValueError) as err:
        tune(task, n_trials=1, storage=url, study_name="new", grace_period=3)
    assert str(err.value).endswith(": grace_period 3 <= heartbeat_interval 10 (the default)")
    assert tested == [1]  # refused before the new study's range test
    assert "new" not in optuna.get_all_study_names(url)
    for option in (["--heartbeat", "1"], ["--grace", "3"]):
        assert main(["tune", "--demo", "--storage", url, "--study", "d", "--trials", "1",
                     "--plot", "none", "--heartbeat", "1", "--grace", "3"]) == 0  # fmt: skip
        capsys.readouterr()
        assert main(["tune", "--demo", "--storage", url, "--study", "d", "--trials", "2",
                     "--plot", "none", *option]) == 0  # fmt: skip


def test_a_refused_worker_records_no_heartbeat_and_a_racing_one_is_refused(
    tmp_path, monkeypatch
) -> None:
    """The heartbeat is recorded once the study's checks passed; a worker that finds another
    recorded meanwhile (started together on the new study) is refused; a storage object's
    grace period left to Optuna (None: twice the interval) is recorded as that."""
    from lrkit.tune import StudySpaceError, Task, tune

    url = f"sqlite:///{tmp_path / 'race.db'}"
    task = Task(name="hb", train=lambda spec, report: 1.0, total_steps=20)
    tune(task, n_trials=1, storage=url, study_name="old", seeding="blind", families="cosine")
    study = optuna.load_study(study_name="old", storage=url)
    study.set_user_attr("lrkit.heartbeat", None)  # a study from before the heartbeat was kept
    with pytest.raises(StudySpaceError, match="families"):
        tune(task, n_trials=2, storage=url, study_name="old", seeding="blind",
             families="onecycle", heartbeat_interval=60)  # fmt: skip
    assert optuna.load_study(study_name="old", storage=url).user_attrs["lrkit.heartbeat"] is None
    tune(task, n_trials=2, storage=url, study_name="old", seeding="blind", families="cosine")
    recorded = optuna.load_study(study_name="old", storage=url).user_attrs["lrkit.heartbeat"]
    assert recorded == {"heartbeat_interval": 10, "grace_period": 30}

    real = optuna.create_study

    def racing(*args: Any, **kwargs: Any) -> Any:  # another worker records first
        study = real(*args, **kwargs)
        study.set_user_attr("lrkit.heartbeat", {"heartbeat_interval": 60, "grace_period": 180})
        return study

    monkeypatch.setattr(optuna, "create_study", racing)
    with pytest.raises(StudySpaceError, match=r"recorded its heartbeat first: run again") as info:
        tune(task, n_trials=1, storage=url, study_name="new", seeding="blind")
    assert info.value.conflicts == {"heartbeat_interval": (60, 10), "grace_period": (180, 30)}
    assert len(optuna.load_study(study_name="new", storage=url).trials) == 0
    monkeypatch.setattr(optuna, "create_study", real)
    tune(task, n_trials=1, storage=url, study_name="new", seeding="blind")  # run again: joins

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's heartbeat is experimental
        st = optuna.storages.RDBStorage(url, heartbeat_interval=5)
    tune(task, n_trials=1, storage=st, study_name="obj", seeding="blind")
    recorded = optuna.load_study(study_name="obj", storage=url).user_attrs["lrkit.heartbeat"]
    assert recorded == {"heartbeat_interval": 5, "grace_period": 10}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = optuna.storages.RDBStorage(url, heartbeat_interval=10, grace_period=30)
    with pytest.raises(
        StudySpaceError, match=r"build it with heartbeat_interval=5, grace_period=10$"
    ):
        tune(task, n_trials=2, storage=other, study_name="obj", seeding="blind")


@pytest.mark.parametrize(
    "record, kept",
    [
        ({"heartbeat_interval": 10, "grace_period": 30, "more": 1}, True),  # the pair is read
        ({}, False),  # no pair: this worker's replaces it
        ({"heartbeat_interval": 60, "grace_period": 60}, False),  # a pair no worker can run
        ({"heartbeat_interval": 10, "grace_period": 30 * 86400}, True),
        ({"heartbeat_interval": 10, "grace_period": 10**14}, False),  # Optuna's check overflows
        ({"heartbeat_interval": "x", "grace_period": 30}, False),
        ("10/30", False),
    ],
)
def test_a_heartbeat_record_that_is_no_pair_does_not_lock_the_study(
    tmp_path: Any, record: Any, kept: bool
) -> None:
    from lrkit.tune import Task, tune

    url = f"sqlite:///{tmp_path / 'odd.db'}"
    task = Task(name="hb", train=lambda spec, report: 1.0, total_steps=20)
    tune(task, n_trials=1, storage=url, study_name="s", seeding="blind")
    optuna.load_study(study_name="s", storage=url).set_user_attr("lrkit.heartbeat", record)
    tune(task, n_trials=2, storage=url, study_name="s", seeding="blind")
    attrs = optuna.load_study(study_name="s", storage=url).user_attrs
    assert attrs["lrkit.heartbeat"] == (record if kept else {"heartbeat_interval": 10,
                                                              "grace_period": 30})  # fmt: skip


def test_probe_files_a_killed_run_left_are_removed(tmp_path) -> None:
    """A run killed (SIGKILL) while it probed the folder leaves its probe file: the next run
    removes those of this machine's processes that are gone, older than a probe lives."""
    import os
    import subprocess
    import time

    from lrkit.tune import Task, _loop, tune

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process that ran and is gone: its pid no longer runs
    host = _loop._HOST
    old = time.time() - 2 * _loop.STALE_PROBE_SECONDS
    names = {
        "stale": f".lrkit-probe-{host}-{gone.pid}-123.db",
        "stale_journal": f".lrkit-probe-{host}-{gone.pid}-123.db-journal",
        "alive": f".lrkit-probe-{host}-{os.getpid()}-124.db",
        "recent": f".lrkit-probe-{host}-{gone.pid}-125.db",
        "other_host": f".lrkit-probe-{'0' * 8 if host != '0' * 8 else '1' * 8}-{gone.pid}-1.db",
        "yours": "lrkit-probe.db",
    }
    for key, name in names.items():
        (tmp_path / name).write_bytes(b"x")
        if key != "recent":
            os.utime(tmp_path / name, (old, old))
    task = Task(train=lambda s, r: 1.0, total_steps=20, range_test=lambda: (1e-4, 1.0))
    tune(task, n_trials=1, storage=f"sqlite:///{tmp_path / 'p.db'}", study_name="p")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"p.db"} | {names[k] for k in ("alive", "recent", "other_host", "yours")}


def test_a_study_keeps_its_direction(tmp_path) -> None:
    from lrkit.tune import StudySpaceError, Task, tune

    url = f"sqlite:///{tmp_path / 'dir.db'}"
    train = lambda spec, report: 1.0  # noqa: E731
    tune(Task(train=train, total_steps=20), n_trials=2, storage=url, study_name="a",
         seeding="blind", progress=False)  # fmt: skip
    with pytest.raises(StudySpaceError) as info:
        tune(Task(train=train, total_steps=20, direction="maximize"), n_trials=3, storage=url,
             study_name="a", seeding="blind", progress=False)  # fmt: skip
    assert info.value.conflicts == {"direction": ("minimize", "maximize")}
    assert len(optuna.load_study(study_name="a", storage=url).trials) == 2


def test_a_study_holds_the_trials_of_one_task(tmp_path) -> None:
    """Another task (by name) on a study with trials is refused, before any trial runs; a
    study from before the task was recorded is continued."""
    from lrkit.tune import StudySpaceError, Task, tune

    url = f"sqlite:///{tmp_path / 'task.db'}"
    train = lambda spec, report: 1.0  # noqa: E731
    opts: dict[str, Any] = dict(storage=url, study_name="a", seeding="blind", progress=False)
    tune(Task(train=train, total_steps=20, name="mlp"), n_trials=2, **opts)
    with pytest.raises(StudySpaceError) as info:
        tune(Task(train=train, total_steps=20, name="cnn"), n_trials=3, **opts)
    assert info.value.conflicts == {"task": ("mlp", "cnn")}
    study = optuna.load_study(study_name="a", storage=url)
    assert len(study.trials) == 2
    space = dict(study.user_attrs["lrkit.space"])
    del space["task"]  # as an older lrkit stored it
    study.set_user_attr("lrkit.space", space)
    tune(Task(train=train, total_steps=20, name="cnn"), n_trials=3, **opts)
    assert len(optuna.load_study(study_name="a", storage=url).trials) == 3


def test_a_password_with_an_unencoded_at_is_refused_and_never_printed(capsys) -> None:
    from lrkit._format import mask_secrets
    from lrkit.tune import make_storage

    url = "postgresql://bob:pa@Secret99@127.0.0.1:1/db"
    with pytest.raises(ValueError) as info:
        make_storage(url)
    msg = str(info.value)
    assert "unencoded '@'" in msg and "%40" in msg
    assert "Secret99" not in msg and "pa@" not in msg
    # a driver's message that split the URL at the first "@" is masked too
    driver = 'could not translate host name "Secret99@127.0.0.1" to address'
    assert "Secret99" not in mask_secrets(driver, url)


def test_a_study_continues_with_its_families_in_any_order_and_checks_direction_when_empty(
    tmp_path,
) -> None:
    from lrkit.tune import StudySpaceError, Task, tune

    url = f"sqlite:///{tmp_path / 'fam.db'}"
    train = lambda spec, report: 1.0  # noqa: E731
    task = Task(train=train, total_steps=20)
    tune(task, n_trials=2, storage=url, study_name="a", seeding="blind",
         families=("cosine", "constant"))  # fmt: skip
    tune(task, n_trials=3, storage=url, study_name="a", seeding="blind",
         families=("constant", "cosine"))  # fmt: skip
    study = optuna.load_study(study_name="a", storage=url)
    assert len(study.trials) == 3
    assert study.trials[-1].distributions["family"].choices == ("cosine", "constant")
    optuna.create_study(study_name="empty", storage=url, direction="maximize")
    with pytest.raises(StudySpaceError) as info:
        tune(task, n_trials=1, storage=url, study_name="empty", seeding="blind")
    assert info.value.conflicts == {"direction": ("maximize", "minimize")}


def test_study_space_error_round_trips_through_pickle() -> None:
    import pickle

    from lrkit.tune import StudySpaceError

    e = StudySpaceError("s", conflicts={"direction": ("minimize", "maximize")})
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is StudySpaceError and str(back) == str(e)
    assert back.conflicts == e.conflicts and back.study_name == "s"


@pytest.mark.parametrize(
    "url, message",
    [
        ("postgresql://a:pw@localhost:notaport/db",
         "storage postgresql://a:***@localhost:notaport/db: the port must be an integer "
         "(e.g. postgresql://user@host:5432/db), got 'notaport'"),
        ("postgresql://a:pw@[::1/db",
         "storage postgresql://a:***@[::1/db: an IPv6 host must be written in brackets, "
         "e.g. postgresql://user@[::1]:5432/db"),
        ("postgresql://a:pw@::1/db",
         "storage postgresql://a:***@::1/db: an IPv6 host must be written in brackets, "
         "e.g. postgresql://user@[::1]:5432/db"),
        ("not-a-url", "storage must be a database URL such as sqlite:///lrkit-tune.db or "
         "postgresql://user@host:5432/db, got 'not-a-url'"),
        ("postgresql://a:p/w@x@h/db",
         "storage postgresql://a:***@h/db: the user name or password holds an unencoded '@'; "
         "write it as %40"),
        # a typo for ://: what would be a user name and password is never shown
        ("postgresql:/alice:s3cr3tpw@dbhost/db", "storage must be a database URL such as "
         "sqlite:///lrkit-tune.db or postgresql://user@host:5432/db, got '***@dbhost/db'"),
        ("postgresql//alice:s3cr3tpw@dbhost/db?password=zz", "storage must be a database URL "
         "such as sqlite:///lrkit-tune.db or postgresql://user@host:5432/db, got "
         "'***@dbhost/db?password=***'"),
    ],
)  # fmt: skip
def test_storage_url_mistakes_are_one_line_before_connecting(tmp_path, url, message) -> None:
    from lrkit.tune import check_storage, make_storage

    for check in (check_storage, make_storage):
        with pytest.raises(ValueError) as info:
            check(url)
        assert str(info.value) == message
    with pytest.raises(ValueError, match=r"^--storage postgresql://a:\*\*\*@"):
        check_storage("postgresql://a:pw@localhost:notaport/db", name="--storage")
    ok = f"sqlite:///{tmp_path / 'ok.db'}"
    assert check_storage(ok) == ok and not (tmp_path / "ok.db").exists()


#: libpq connection strings (keyword=value) given for a URL, and how they are shown: the value
#: of each secret keyword masked (any case, quoted or not), as URL query arguments are
KEYWORD_STRINGS = [
    ("host=h user=u password=s3cretpw", "host=h user=u password=***"),
    ("host=h PassWord = 'a b\\' s3cret' dbname=d", "host=h PassWord = *** dbname=d"),
    ('passwd="s3cret pw" host=h port=5432', "passwd=*** host=h port=5432"),
    ("dbname=d sslpassword=s3cret sslmode=verify-full sslkey=/k/s3cret.pem",
     "dbname=d sslpassword=*** sslmode=verify-full sslkey=***"),
    ("Server=h;Pwd={s3cret pw};Database=d", "Server=h;Pwd=***;Database=d"),
    ("host=h password=pa@s3cret user=u", "host=h password=*** user=u"),
    ("host=h password='s3cret never closed", "host=h password=***"),
    ("host=h api_token=s3cret", "host=h api_token=***"),
]  # fmt: skip


@pytest.mark.parametrize("storage, shown", KEYWORD_STRINGS)
def test_a_connection_string_that_is_no_url_is_refused_without_its_password(
    storage: str, shown: str, capsys
) -> None:
    from lrkit.cli import main
    from lrkit.tune import check_storage, make_storage

    refused = (
        "must be a database URL such as sqlite:///lrkit-tune.db or "
        f"postgresql://user@host:5432/db, got {shown!r}"
    )
    for check in (check_storage, make_storage):
        with pytest.raises(ValueError) as info:
            check(storage)
        assert str(info.value) == f"storage {refused}"
    with pytest.raises(ValueError) as info:
        tune(_quadratic_task(), n_trials=1, storage=storage, study_name="s")
    assert str(info.value) == f"storage {refused}"
    rc = main(["tune", "--demo", "--trials", "1", "--storage", storage, "--plot", "none"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and err == f"lrkit tune: error: --storage {refused}\n"
    assert "s3cret" not in str(info.value) + err


def test_a_query_argument_the_driver_cannot_read_is_one_line_naming_the_storage(
    tmp_path,
) -> None:
    from lrkit.tune import make_storage

    url = f"sqlite:///{tmp_path / 'y.db'}?timeout=abc"
    with pytest.raises(ValueError) as info:
        make_storage(url)
    assert str(info.value) == (
        f"storage {url}: cannot use the database: could not convert string to float: 'abc'"
    )
    assert not (tmp_path / "y.db").exists()


def test_sqlite_file_is_the_path_sqlite_opens() -> None:
    from lrkit.tune import sqlite_file

    assert sqlite_file("sqlite:///lrkit-tune.db") == "lrkit-tune.db"
    assert sqlite_file("sqlite:////abs/x.db?timeout=5") == "/abs/x.db"
    assert sqlite_file("sqlite:///my%20study.db") == "my study.db"
    assert sqlite_file("sqlite:///file:x.db?mode=ro&uri=true") == "x.db"
    for other in ("sqlite://", "sqlite:///:memory:", "postgresql://u@h/db", "x.db", None):
        assert sqlite_file(other) is None


def test_train_must_return_a_real_number() -> None:
    from lrkit.tune import check_metric

    torch = pytest.importorskip("torch")
    for value, expected in [(3, 3.0), (0.25, 0.25), (np.float32(0.5), 0.5),
                            (np.array(1.5), 1.5), (torch.tensor(2.0), 2.0)]:  # fmt: skip
        got = check_metric(value)
        assert type(got) is float and got == expected
    assert math.isnan(check_metric(math.nan)) and check_metric(-math.inf) == -math.inf
    for bad, shown in [(None, "None (NoneType)"), ("0.5", "'0.5' (str)"), (True, "True (bool)"),
                       (b"1", "b'1' (bytes)"), ([1.0], "[1.0] (list)"),
                       (np.zeros(2), "array([0., 0.]) (ndarray)")]:  # fmt: skip
        with pytest.raises(TypeError) as info:
            check_metric(bad)
        assert str(info.value) == (
            "train must return the final metric as a real number (int, float or a numpy or "
            f"tensor scalar; NaN or inf marks the trial diverged), got {shown}"
        )
    task = Task(train=lambda s, r: None, total_steps=20)
    with pytest.raises(TypeError, match=r"^train must return .* got None \(NoneType\)$"):
        tune(task, n_trials=1, seeding="blind", progress=False)
    # a numpy scalar and a 0-d tensor are numbers; NaN still marks the trial diverged
    calls = iter([np.float64(0.5), torch.tensor(0.25), math.nan])
    r = tune(Task(train=lambda s, rep: next(calls), total_steps=20), n_trials=2,
             seeding="blind", progress=False, seed=0)  # fmt: skip
    assert sorted(t.value for t in r.complete_trials) == [0.25, 0.5]


def test_a_torch_task_trains_exactly_the_steps_its_schedule_spans() -> None:
    torch = pytest.importorskip("torch")

    from lrkit.tune import torch_task

    torch.manual_seed(0)
    x = torch.randn(48, 4)
    y = (x[:, 0] > 0).long()
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 48, 16)]
    seen: list[float] = []

    def optimizer(params: Any, lr: float) -> Any:
        opt = torch.optim.SGD(params, lr=lr)
        step = opt.step

        def logged(*a: Any, **k: Any) -> Any:
            seen.append(opt.param_groups[0]["lr"])
            return step(*a, **k)

        opt.step = logged  # type: ignore[method-assign]
        return opt

    ce = torch.nn.functional.cross_entropy
    task = torch_task(lambda: torch.nn.Linear(4, 2), loss_fn=ce, data=batches,
                      val_data=batches, epochs=4, optimizer=optimizer)  # fmt: skip
    assert task.total_steps == 12  # 4 epochs x 3 batches, not rounded up
    assert task.name == "torch"  # the default
    named = torch_task(lambda: torch.nn.Linear(4, 2), loss_fn=ce, data=batches,
                       val_data=batches, epochs=4, name="my_experiment")  # fmt: skip
    assert named.name == "my_experiment"
    sched = S.onecycle(0.1, total_steps=task.total_steps)
    task.train(sched, lambda epoch, value: None)
    assert seen == [sched(k) for k in range(12)]
    with pytest.raises(ValueError) as info:
        torch_task(lambda: torch.nn.Linear(4, 2), loss_fn=ce, data=batches[:1],
                   val_data=batches, epochs=4)  # fmt: skip
    assert str(info.value) == (
        "epochs x steps_per_epoch (the steps a trial trains, which its schedule spans) must "
        "be at least 10, got 4 x 1 = 4"
    )


def test_a_torch_task_with_a_seed_repeats_its_range_test_and_trials() -> None:
    """seed (0 by default): the range test and every trial start from the same weights and
    batch order, so two searches with one sampler seed agree trial for trial; the global RNG
    states are as they were. seed=None: each trial draws its own weights."""
    import random

    torch = pytest.importorskip("torch")

    from lrkit.tune import torch_task

    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g)
    y = x @ torch.randn(4, 1, generator=g)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 96, 16)]

    def task(seed: Any = 0) -> Any:
        def model() -> Any:
            return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                                       torch.nn.Linear(8, 1))  # fmt: skip

        return torch_task(model, loss_fn=torch.nn.functional.mse_loss, data=batches,
                          val_data=batches, epochs=2, seed=seed)  # fmt: skip

    def search() -> Any:
        r = tune(task(), n_trials=3, seed=0, progress=False)
        return r.lr_range, [(t.params, t.value) for t in r.study.trials]

    torch.manual_seed(123)
    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    first = search()
    assert torch.equal(torch.get_rng_state(), states[0])
    assert (np.random.get_state()[1] == states[1]).all() and random.getstate() == states[2]
    torch.manual_seed(7)  # another global state: the same search
    assert search() == first
    sched = S.constant(0.05)
    unseeded = task(None)
    values = {unseeded.train(sched, lambda e, v: None) for _ in range(2)}
    assert len(values) == 2
    seeded = task(3)
    assert len({seeded.train(sched, lambda e, v: None) for _ in range(2)}) == 1
    # a shuffling DataLoader with a generator of its own (PyTorch's recipe for a repeatable
    # order): put back after each trial, so every trial draws the same batches
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    own = torch_task(lambda: torch.nn.Linear(4, 1), loss_fn=torch.nn.functional.mse_loss,
                     data=loader, val_data=batches, epochs=2)  # fmt: skip
    assert len({own.train(sched, lambda e, v: None) for _ in range(3)}) == 1
    with pytest.raises(ValueError, match=r"^seed must be an integer"):
        task(-1)


def test_torch_task_takes_data_as_fit_and_find_lr_name_it() -> None:
    """data= (the name of find_lr, fit and compare's Setup); train_data= still works with a
    DeprecationWarning, both at once or neither is a one-line TypeError."""
    torch = pytest.importorskip("torch")

    from lrkit.tune import torch_task

    batches = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(5)]
    loss, model = torch.nn.functional.mse_loss, lambda: torch.nn.Linear(4, 1)
    new = torch_task(model, loss_fn=loss, data=batches, val_data=batches, epochs=2)
    with pytest.warns(DeprecationWarning, match=r"train_data= was renamed data="):
        old = torch_task(model, loss_fn=loss, train_data=batches, val_data=batches, epochs=2)
    sched = S.constant(0.01)
    assert old.train(sched, lambda e, v: None) == new.train(sched, lambda e, v: None)
    with pytest.raises(TypeError, match=r"got both data= and train_data="):
        torch_task(model, loss_fn=loss, data=batches, train_data=batches, val_data=batches)
    with pytest.raises(TypeError, match=r"missing 1 required keyword-only argument: 'data'$"):
        torch_task(model, loss_fn=loss, val_data=batches)


def test_a_target_in_the_form_of_find_and_compare_is_named_as_such() -> None:
    torch = pytest.importorskip("torch")
    from lrkit.tune import as_task, is_torch_tuple

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.zeros(4, 2), torch.zeros(4, 1))]
    loss = torch.nn.functional.mse_loss
    for value in ((model, opt, loss, data, data), (model, opt, loss, data)):
        with pytest.raises(ValueError) as e:
            as_task(value)
        assert str(e.value).startswith("task must be a lrkit.tune.Task")
        assert f"got a tuple of {len(value)} items (the (model, optimizer, loss_fn, data" in str(
            e.value
        )
        assert str(e.value).endswith("it needs a model factory)")
    with pytest.raises(ValueError, match=r"got a list of 2 items$"):
        as_task([1, 2])
    with pytest.raises(ValueError, match=r"got str$"):
        as_task("x")
    # the tuple as_task trains, told from the find form by is_torch_tuple
    assert is_torch_tuple((lambda: model, loss, data, data))
    assert not is_torch_tuple((model, opt, loss, data))
    assert not is_torch_tuple([lambda: model, loss, data, data])  # a list is no such tuple
    assert not is_torch_tuple((lambda: model, loss, data))


def test_a_model_factory_tuple_becomes_a_torch_task_of_the_epochs_asked() -> None:
    torch = pytest.importorskip("torch")
    from lrkit.tune import as_task

    data = [(torch.zeros(4, 2), torch.zeros(4, 1))] * 4
    value = (lambda: torch.nn.Linear(2, 1), torch.nn.functional.mse_loss, data, data)
    task = as_task(value, epochs=3, name="pkg.mod:make")
    assert (task.total_steps, task.name, task.metric) == (12, "pkg.mod:make", "val_loss")
    assert as_task(value).total_steps == 20  # 5 epochs by default


def test_every_argument_is_checked_with_a_study_in_memory_too() -> None:
    """The heartbeat options matter with a database only; a bad value is refused all the
    same, and a lone callback (not in a list) names callbacks."""
    task = _quadratic_task()
    for bad, match in (
        (dict(heartbeat_interval=-5), r"^heartbeat_interval must be an integer in \[1, 86400\]"),
        (dict(grace_period="x"), r"^grace_period must be an integer in \[1, 2592000\], got 'x'"),
        (dict(max_retry=-3), r"^max_retry must be an integer >= 0"),
        (dict(heartbeat_interval=10, grace_period=10), r"^grace_period must be longer"),
    ):
        with pytest.raises(ValueError, match=match):
            tune(task, n_trials=1, storage=None, **bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^callbacks must be a sequence of callables"):
        tune(task, n_trials=1, callbacks=lambda study, trial: None)  # type: ignore[arg-type]


@pytest.mark.parametrize("where", ["heartbeat start", "tell"])
def test_ctrl_c_inside_optunas_bookkeeping_stops_after_it_and_leaves_no_thread(
    where: str, tmp_path: Any, monkeypatch: Any
) -> None:
    """An interrupt that lands in Optuna's own trial bookkeeping (not the task's code) could
    leave its heartbeat thread running, so that the process never exits, or fail inside
    Optuna (UnboundLocalError); it is held until the bookkeeping is done."""
    import signal
    import threading

    from optuna.storages import _heartbeat
    from optuna.study import _optimize

    fired: list[str] = []
    if where == "heartbeat start":
        start = _heartbeat.HeartbeatThread.start

        def interrupted_start(self: Any) -> None:
            start(self)
            if not fired:
                fired.append(where)
                signal.raise_signal(signal.SIGINT)

        monkeypatch.setattr(_heartbeat.HeartbeatThread, "start", interrupted_start)
    else:
        tell = _optimize._tell_with_warning

        def interrupted_tell(*a: Any, **k: Any) -> Any:
            if not fired:
                fired.append(where)
                signal.raise_signal(signal.SIGINT)
            return tell(*a, **k)

        monkeypatch.setattr(_optimize, "_tell_with_warning", interrupted_tell)
    url = f"sqlite:///{tmp_path / 'h.db'}"
    task = Task(train=lambda s, rep: float(s(0)), total_steps=20)
    threads = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        tune(task, n_trials=3, seeding="blind", storage=url, study_name="h", heartbeat_interval=1)
    assert fired == [where]
    left = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
    for t in left:
        t.join(timeout=5)
    assert not [t for t in left if t.is_alive()]  # no heartbeat thread keeps the process alive
    states = [t.state.name for t in optuna.load_study(study_name="h", storage=url).trials]
    # held through the heartbeat's start, the interrupt reaches the trial as its task code
    # starts (the trial FAILs, as for a Ctrl-C during the task); held through the tell, it
    # comes once the trial is told, before another starts
    assert states == (["FAIL"] if where == "heartbeat start" else ["COMPLETE"])


@pytest.mark.parametrize("pair", [[1e-4, 1e-2], np.array([1e-4, 1e-2]), (1e-4, 1e-2)])
def test_a_range_test_pair_in_any_sequence_seeds_the_search(pair: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to the blind interval
        r = tune(Task(lambda s, rep: 1.0, total_steps=20, range_test=lambda: pair), n_trials=1,
                 progress=False)  # fmt: skip
    assert r.lr_range == (1e-4, 1e-2) and r.seeding == "finder"


@pytest.mark.parametrize(
    "bad, message",
    [
        (None, "got None (NoneType)"),
        ("1e-4,1e-2", "got '1e-4,1e-2' (str)"),
        ({"low": 1e-4, "high": 1e-2}, "got {'low': 0.0001, 'high': 0.01} (dict)"),
        (0.01, "got 0.01 (float)"),
    ],
)
def test_a_range_test_of_something_else_is_a_one_line_value_error(bad: Any, message: str) -> None:
    ran: list[int] = []
    task = Task(lambda s, rep: ran.append(1) or 1.0, total_steps=20, range_test=lambda: bad)
    with pytest.raises(ValueError) as info:
        tune(task, n_trials=1, progress=False)
    assert type(info.value) is ValueError and ran == []  # before any trial
    assert str(info.value) == (
        f"range_test() must return a FinderResult or a (low, high) pair, {message}"
    )


def test_a_reversed_range_test_pair_is_a_one_line_value_error() -> None:
    task = Task(lambda s, rep: 1.0, total_steps=20, range_test=lambda: (1.0, 0.1))
    with pytest.raises(
        ValueError, match=r"^range_test\(\)\[1\] must be > range_test\(\)\[0\]=1.0, got 0.1$"
    ):
        tune(task, n_trials=1, progress=False)


def test_cli_a_range_test_of_something_else_is_one_line(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from lrkit.cli import main

    (tmp_path / "badrange.py").write_text(
        "from lrkit.tune import Task\n\n"
        "def make():\n"
        "    return Task(train=lambda s, r: 1.0, total_steps=20, range_test=lambda: None)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        rc = main(["tune", "badrange:make", "--trials", "1", "--storage", "sqlite:///r.db",
                   "--no-progress", "--plot", "none", "--quiet"])  # fmt: skip
    finally:
        sys.modules.pop("badrange", None)
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err == (
        "lrkit tune: error: target 'badrange:make': range_test() must return a FinderResult or "
        "a (low, high) pair, got None (NoneType)\n"
    )
    assert not (tmp_path / "r.db").exists()  # nothing was run, nothing written


def test_report_names_itself_for_a_value_that_is_not_a_number() -> None:
    for bad in (None, "0.5", [0.1, 0.2]):

        def train(schedule: Any, report: Any, bad: Any = bad) -> float:
            report(0, bad)
            return 1.0

        with pytest.raises(ValueError) as info:
            tune(Task(train, total_steps=20), n_trials=1, seeding="blind", progress=False)
        assert str(info.value) == f"report(epoch, value): value must be a real number, got {bad!r}"

    def beyond(schedule: Any, report: Any) -> float:
        report(2**63, 0.5)  # (an SQLite INTEGER holds at most 2**63 - 1)
        return 1.0

    with pytest.raises(ValueError, match=r"^epoch must be an integer in \[0, 2\*\*53\]"):
        tune(Task(beyond, total_steps=20), n_trials=1, seeding="blind", progress=False)


def _linear_torch_task(**kwargs: Any) -> Any:
    """``lrkit.tune.torch_task`` of a linear model on 5 fixed batches for 2 epochs, validated
    on them unless ``kwargs`` say otherwise."""
    torch = pytest.importorskip("torch")
    from lrkit.tune import torch_task

    gen = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 2, generator=gen), torch.randn(8, 1, generator=gen))] * 5
    kwargs.setdefault("val_data", data)
    return torch_task(lambda: torch.nn.Linear(2, 1), loss_fn=torch.nn.functional.mse_loss,
                      data=data, epochs=2, **kwargs)  # fmt: skip


def test_a_torch_trial_runs_on_its_threads_and_puts_the_setting_back() -> None:
    torch = pytest.importorskip("torch")
    seen: list[int] = []

    def evaluate(model: Any) -> float:
        seen.append(torch.get_num_threads())
        return 1.0

    task = _linear_torch_task(val_data=None, evaluate=evaluate, num_threads=1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        reports: list[tuple[int, float]] = []
        assert task.train(S.constant(0.01), lambda e, v: reports.append((e, v))) == 1.0
        assert reports == [(0, 1.0), (1, 1.0)] and seen == [1, 1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_torch_trial_that_diverges_returns_inf_without_reporting_it() -> None:
    reports: list[tuple[int, float]] = []
    # the validation loss not finite: stopped at the first epoch
    nan_val = _linear_torch_task(val_data=None, evaluate=lambda m: math.nan)
    assert nan_val.train(S.constant(0.01), lambda e, v: reports.append((e, v))) == math.inf
    # the training loss blown up, though the validation score stays finite
    blown = _linear_torch_task(val_data=None, evaluate=lambda m: 1.0)
    assert blown.train(S.constant(1e8), lambda e, v: reports.append((e, v))) == math.inf
    assert reports == []


def test_a_torch_tasks_range_test_sweeps_1e_7_to_10_in_100_steps_unless_told() -> None:
    for kwargs, start in ((None, 1e-7), ({"start_lr": 1e-5}, 1e-5)):
        lrs = _linear_torch_task(range_test_kwargs=kwargs).range_test().lrs
        assert lrs[0] == pytest.approx(start, rel=1e-12)
        # 100 points from start to 10: each a constant factor above the one before
        assert lrs[1] / lrs[0] == pytest.approx((10.0 / start) ** (1 / 99), rel=1e-9)


def test_a_torch_task_trains_with_sgd_and_momentum_0_9_by_default() -> None:
    torch = pytest.importorskip("torch")

    def final(optimizer: Any) -> float:
        task = _linear_torch_task(optimizer=optimizer)
        return task.train(S.constant(0.05), lambda e, v: None)

    default = final(None)
    assert default == final(lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9))
    assert default != final(lambda p, lr: torch.optim.SGD(p, lr=lr))


def test_a_torch_task_refuses_a_model_instance_and_data_read_once() -> None:
    torch = pytest.importorskip("torch")
    from lrkit.tune import torch_task

    data = [(torch.randn(4, 2), torch.randn(4, 1))] * 5
    loss = torch.nn.functional.mse_loss
    with pytest.raises(ValueError) as info:
        torch_task(torch.nn.Linear(2, 1), loss_fn=loss, data=data, val_data=data)
    assert str(info.value) == (
        "model_factory must be a zero-argument callable that builds a fresh model (every trial "
        "trains its own), got a Linear instance: pass e.g. lambda: MyModel()"
    )
    with pytest.raises(ValueError, match=r"^data must be re-iterable .* got a list_iterator"):
        torch_task(lambda: torch.nn.Linear(2, 1), loss_fn=loss, data=iter(data),
                   val_data=data, steps_per_epoch=5, epochs=2)  # fmt: skip


def test_a_torch_task_checks_its_loss_and_names_empty_validation_data() -> None:
    torch = pytest.importorskip("torch")
    from lrkit.tune import torch_task

    data = [(torch.randn(4, 2), torch.randn(4, 1))] * 5
    loss = torch.nn.functional.mse_loss

    def model() -> Any:
        return torch.nn.Linear(2, 1)

    with pytest.raises(
        TypeError, match=r"^loss_fn must be a callable loss_fn\(output, target\), got None$"
    ):
        torch_task(model, loss_fn=None, data=data, val_data=data, epochs=2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^loss_fn must be a callable loss_fn\(output, target\)"):
        torch_task(model, loss_fn=lambda out: out, data=data, val_data=data, epochs=2)
    with pytest.raises(TypeError, match=r"^loss_fn is the class .*MSELoss: give an instance"):
        torch_task(model, loss_fn=torch.nn.MSELoss, data=data, val_data=data, epochs=2)
    for empty in ([], ()):
        with pytest.raises(ValueError) as info:
            torch_task(model, loss_fn=loss, data=data, val_data=empty, epochs=2)
        kind = type(empty).__name__
        assert (
            str(info.value) == f"val_data must hold at least one (x, y) batch, got an empty {kind}"
        )
    with pytest.raises(ValueError, match=r"^data must hold at least one \(x, y\) batch"):
        torch_task(model, loss_fn=loss, data=[], val_data=data, steps_per_epoch=5, epochs=2)
    # a factory of validation batches that gives none: said of val_data when a trial meets it
    task = torch_task(model, loss_fn=loss, data=data, val_data=lambda: [], epochs=2)
    with pytest.raises(ValueError, match=r"^val_data must yield at least one"):
        tune(task, n_trials=1, seeding="blind", progress=False)
    with pytest.raises(ValueError) as info:
        torch_task(model, loss_fn=loss, data=data, val_data=None, epochs=2)
    assert str(info.value) == (
        "val_data must be the validation (x, y) batches that score every epoch, or pass "
        "evaluate=, a function evaluate(model) -> float, got None"
    )
    # scored by evaluate(model): val_data is not read
    for unread in (None, []):
        scored = torch_task(model, loss_fn=loss, data=data, val_data=unread,
                            evaluate=lambda m: 1.0, epochs=2)  # fmt: skip
        assert tune(scored, n_trials=1, seeding="blind", progress=False).best_value == 1.0
    # validation batches of another layout: the range test's own error type, as before
    from lrkit.torch import BatchLayoutError

    odd = torch_task(model, loss_fn=loss, data=data, val_data=[{"x": 1, "y": 2}], epochs=2)
    with pytest.raises(BatchLayoutError):
        tune(odd, n_trials=1, seeding="blind", progress=False)


def test_the_plots_lr_axis_has_one_label_per_decade_from_four_decades_on() -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    def train(schedule: Any, report: Any) -> float:
        return (math.log10(max(float(schedule(t)) for t in range(0, 100, 10))) + 2) ** 2

    for low in (1e-4, 1e-5):
        r = tune(Task(train, total_steps=100), n_trials=4, seeding=(low, 1.0), pruner="none",
                 seed=0, progress=False)  # fmt: skip
        fig = r.plot(None)
        FigureCanvasAgg(fig).draw()
        ax = fig.axes[1]
        lo, hi = ax.get_xlim()
        shown = [t.get_position()[0] for t in ax.get_xticklabels() if t.get_text()]
        shown = [x for x in shown if lo <= x <= hi]
        assert all(math.log10(x) == round(math.log10(x)) for x in shown), shown  # 1eN only


def test_the_task_builders_default_to_the_same_epochs() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    import inspect

    from lrkit.tune import demo_task, load_target, torch_task
    from lrkit.tune._load import as_task

    defaults = {
        f.__name__: inspect.signature(f).parameters["epochs"].default
        for f in (demo_task, torch_task, load_target, as_task)
    }
    assert set(defaults.values()) == {5}, defaults
    from lrkit.torch import demo

    t = demo.make_task("digits_mlp_sgd", seed=0, batch_size=32)
    spe = len(t.x_train) // t.batch_size
    assert demo_task().total_steps == 5 * spe
    assert demo_task(epochs=4).total_steps == 4 * spe
    assert (demo_task().name, demo_task().metric) == ("demo:digits_mlp_sgd", "val_loss")


def test_a_task_that_is_none_of_the_forms_is_named_as_the_argument_it_came_in() -> None:
    from lrkit.tune import as_task, tune

    with pytest.raises(ValueError) as e:
        tune(42, n_trials=1, progress=False)  # type: ignore[arg-type]
    assert str(e.value) == (
        "task must be a lrkit.tune.Task, a dict of its fields or a tuple "
        "(model_factory, loss_fn, data, val_data), got int"
    )
    with pytest.raises(ValueError) as e:
        as_task(42, target="pkg.mod:make")
    assert str(e.value).startswith("target 'pkg.mod:make' must return a lrkit.tune.Task")
    with pytest.raises(ValueError, match=r"^task is a mapping that is not a Task: "):
        as_task({"nope": 1})
    with pytest.raises(ValueError, match=r"^target 'pkg.mod:make' returned a mapping that is "):
        as_task({"nope": 1}, target="pkg.mod:make")


def test_a_search_space_takes_families_as_tune_does() -> None:
    from lrkit.tune import SearchSpace

    assert SearchSpace(100, families="cosine, wsd").families == ("cosine", "wsd")
    assert SearchSpace(100, families=["cosine", "wsd"]).families == ("cosine", "wsd")
    with pytest.raises(ValueError, match=r"^families must be one of .*got 'cosin'$"):
        SearchSpace(100, families="cosin")


def test_study_stop_from_a_callback_or_the_task_ends_the_search() -> None:
    """Optuna's way to end ``optimize`` early (``study.stop()`` in a callback, e.g.
    ``MaxTrialsCallback``, or in the objective) ends ``tune``'s loop as well."""
    from optuna.study import MaxTrialsCallback

    cap = MaxTrialsCallback(3, states=(TS.COMPLETE,))
    r = tune(_quadratic_task(), n_trials=10, seeding="blind", seed=0, callbacks=[cap])
    assert r.stop_reason == "study.stop" and not r.reached
    assert [t.state for t in r.study.trials] == [TS.COMPLETE] * 3
    r = tune(_quadratic_task(), n_trials=10, seeding="blind", callbacks=[lambda s, t: s.stop()])
    assert r.stop_reason == "study.stop" and len(r.study.trials) == 1
    with pytest.raises(RuntimeError):  # Optuna's own stop() again outside optimize
        r.study.stop()
    task = _quadratic_task()
    inner = task.train

    def train(schedule: S.Schedule, report: Any) -> float:
        report.trial.study.stop()
        return inner(schedule, report)

    task.train = train  # type: ignore[method-assign]
    r = tune(task, n_trials=10, seeding="blind", pruner="none")
    assert r.stop_reason == "study.stop"
    assert [t.state for t in r.study.trials] == [TS.COMPLETE]


def test_a_ctrl_c_dropped_inside_the_range_test_still_stops_the_search(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """Python drops a KeyboardInterrupt raised in a garbage-collection callback (as in a
    lazy import's clean-up): the range test then ends normally, and the search ran to its
    end. The interrupt is raised as the range test ends; nothing is stored."""
    import signal
    import weakref

    class Collected:
        pass

    def range_test() -> Any:
        held = Collected()
        ref = weakref.ref(held, lambda _: signal.raise_signal(signal.SIGINT))
        del held  # the callback runs here: its KeyboardInterrupt is dropped
        assert ref() is None
        return (1e-3, 1.0)

    said: list[Any] = []  # what Python would print as "Exception ignored in ..."
    monkeypatch.setattr(sys, "unraisablehook", said.append)
    trained: list[int] = []
    task = Task(train=lambda s, r: trained.append(1) or 1.0, total_steps=100,
                range_test=range_test)  # fmt: skip
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    with pytest.raises(KeyboardInterrupt) as info:
        tune(task, n_trials=3, storage=url)
    assert info.value.study_created is False  # type: ignore[attr-defined]
    assert trained == [] and not (tmp_path / "kept.db").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert said == []  # raised once as the range test ended, not also said as ignored

    # a Ctrl-C the range test caught and handled (its own choice) stays handled
    def handled() -> Any:
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass
        return (1e-3, 1.0)

    task = Task(train=lambda s, r: trained.append(1) or 1.0, total_steps=100, range_test=handled)
    assert tune(task, n_trials=1, storage=url).best_value == 1.0
    assert trained == [1]


def test_a_ctrl_c_dropped_inside_a_trial_stops_the_search(tmp_path: Any) -> None:
    """An interrupt Python drops during a trial (raised in a clean-up callback, as inside the
    database's code) stops the search at the next trial instead of being lost."""
    import signal
    import weakref

    class Collected:
        pass

    trained: list[int] = []

    def train(spec: Any, report: Any) -> float:
        trained.append(1)
        if len(trained) == 1:
            held = Collected()
            ref = weakref.ref(held, lambda _: signal.raise_signal(signal.SIGINT))
            del held  # the callback runs here: its KeyboardInterrupt is dropped
            assert ref() is None
        return 1.0

    task = Task(train=train, total_steps=100)
    with pytest.raises(KeyboardInterrupt):
        tune(task, n_trials=5, storage=f"sqlite:///{tmp_path / 'drop.db'}", seeding="blind")
    assert trained == [1]  # stopped before the second trial
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_during_a_report_s_write_lands_once_the_write_is_done(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """Ctrl-C while a report writes the intermediate value to the study: the write completes
    (the value is stored), then the interrupt stops the trial (FAIL) and the search."""
    import signal

    real = optuna.trial.Trial.report

    def report(self: Any, value: float, step: int) -> None:
        signal.raise_signal(signal.SIGINT)  # arrives in the middle of the database write
        real(self, value, step)

    monkeypatch.setattr(optuna.trial.Trial, "report", report)
    after: list[int] = []

    def train(spec: Any, report: Any) -> float:
        report(0, 0.5)
        after.append(1)  # the interrupt lands at the report's end, before this line
        return 1.0

    url = f"sqlite:///{tmp_path / 'rep.db'}"
    with pytest.raises(KeyboardInterrupt):
        tune(Task(train=train, total_steps=100), n_trials=3, storage=url, study_name="s",
             seeding="blind")  # fmt: skip
    (trial,) = optuna.load_study(study_name="s", storage=url).trials
    assert trial.intermediate_values == {0: 0.5} and after == []
    assert trial.state == optuna.trial.TrialState.FAIL


def test_a_new_studys_range_test_interrupted_says_no_study_was_created() -> None:
    def range_test() -> Any:
        raise KeyboardInterrupt

    task = Task(train=lambda s, r: 1.0, total_steps=100, range_test=range_test)
    with pytest.raises(KeyboardInterrupt) as info:
        tune(task, n_trials=1)  # in memory: not a file the command line could look into
    assert info.value.study_created is False  # type: ignore[attr-defined]


def test_the_seed_trials_peak_at_a_third_of_the_minimums_lr_kept_inside_the_interval() -> None:
    from lrkit.tune._loop import _seed_points

    assert _seed_points({"lr_min": 0.3}, (1e-3, 1.0), FAMILIES) == [
        ("onecycle", pytest.approx(0.1)),
        ("cosine", pytest.approx(0.1)),
    ]
    assert _seed_points({"lr_min": 3.0}, (1e-3, 0.5), FAMILIES) == [
        ("onecycle", 0.5),
        ("cosine", 0.5),
    ]
    assert _seed_points({"lr_min": 1e-5}, (1e-3, 0.5), ("wsd", "cosine")) == [("cosine", 1e-3)]
    assert _seed_points({"max_lr": 0.03}, (1e-3, 0.5), ("wsd", "step")) == [
        ("wsd", pytest.approx(0.01))
    ]
    assert _seed_points({"lr_min": None}, (1e-3, 0.5), FAMILIES) == []


def _pruned_at(
    pruner: str, value: float, step: int, finished: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0)
) -> bool:
    """Whether ``pruner`` stops a trial reporting ``value`` at ``step`` in a study of
    ``finished`` trials (by default five) that reported their value at steps 0 and 1."""
    from lrkit.tune._storage import make_pruner

    study = optuna.create_study(pruner=make_pruner(pruner))
    for v in finished:
        study.add_trial(
            optuna.trial.create_trial(
                value=v, params={}, distributions={}, intermediate_values={0: v, 1: v}
            )
        )
    trial = study.ask()
    trial.report(value, step)
    return bool(trial.should_prune())


def test_the_percentile_pruner_stops_the_worst_quarter_from_the_second_report_on() -> None:
    assert _pruned_at("percentile", 3.5, 1) is False  # worse than the median, best 3/4
    assert _pruned_at("percentile", 4.5, 1) is True
    assert _pruned_at("percentile", 100.0, 0) is False  # the first report is never judged


def test_the_median_pruner_stops_the_worse_half_from_the_second_report_on() -> None:
    assert _pruned_at("median", 2.5, 1) is False
    assert _pruned_at("median", 3.5, 1) is True
    assert _pruned_at("median", 100.0, 0) is False


@pytest.mark.parametrize("pruner", ["percentile", "median"])
def test_both_pruners_judge_a_trial_only_once_five_trials_finished(pruner: str) -> None:
    assert _pruned_at(pruner, 100.0, 1, finished=(1.0, 2.0, 3.0, 4.0)) is False
    assert _pruned_at(pruner, 100.0, 1, finished=(1.0, 2.0, 3.0, 4.0, 5.0)) is True


def test_a_worker_waiting_on_a_study_in_memory_looks_again_every_half_second(
    monkeypatch,
) -> None:
    import time

    from lrkit.tune import _loop

    slept: list[float] = []
    clock = SimpleNamespace(
        sleep=slept.append, monotonic=time.monotonic, monotonic_ns=time.monotonic_ns, time=time.time
    )
    monkeypatch.setattr(_loop, "time", clock)
    study = optuna.create_study(study_name="poll")
    study.ask()  # RUNNING, never finished
    calls = [0]

    def stop(_: object) -> bool:
        calls[0] += 1
        return calls[0] > 2

    r = tune(_quadratic_task(), n_trials=1, storage=study._storage, study_name="poll",
             seeding="blind", stop_when=stop)  # fmt: skip
    assert r.stop_reason == "stop_when"
    assert slept == [0.5, 0.5]


@pytest.mark.parametrize("heartbeat, poll", [(1, 1.0), (5, 2.0)])
def test_a_worker_waiting_on_a_database_looks_again_every_heartbeat_up_to_two_seconds(
    tmp_path, monkeypatch, heartbeat: int, poll: float
) -> None:
    import time

    from lrkit.tune import _loop

    slept: list[float] = []
    clock = SimpleNamespace(
        sleep=slept.append, monotonic=time.monotonic, monotonic_ns=time.monotonic_ns, time=time.time
    )
    monkeypatch.setattr(_loop, "time", clock)
    url = f"sqlite:///{tmp_path / 'poll.db'}"
    optuna.create_study(storage=url, study_name="poll").ask()  # RUNNING: another worker's
    calls = [0]

    def stop(_: object) -> bool:
        calls[0] += 1
        return calls[0] > 2

    r = tune(_quadratic_task(), n_trials=1, storage=url, study_name="poll", seeding="blind",
             heartbeat_interval=heartbeat, stop_when=stop)  # fmt: skip
    assert r.stop_reason == "stop_when"
    assert slept == [poll, poll]


def test_onecycle_warmup_is_at_least_two_steps_of_the_run() -> None:
    """A ``pct_start`` shorter than two steps is raised to ``2 / total_steps``."""
    assert build_schedule(
        "onecycle", lr=0.2, total_steps=100, pct_start=0.01, div_factor=25.0
    ) == S.onecycle(max_lr=0.2, total_steps=100, pct_start=0.02, div_factor=25.0)
    assert build_schedule(
        "onecycle", lr=0.2, total_steps=100, pct_start=0.03, div_factor=25.0
    ) == S.onecycle(max_lr=0.2, total_steps=100, pct_start=0.03, div_factor=25.0)


def test_an_lr_range_whose_ends_are_equal_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match=r"^lr_range\[1\] must be > lr_range\[0\]=0\.1, got 0\.1$"):
        SearchSpace(100, lr_range=(0.1, 0.1))


def test_lr_range_from_finder_low_is_where_the_loss_fell_by_a_tenth_of_its_drop() -> None:
    """Flat at 2.0, down to 1.0, up to 3.0: the smoothed curve's minimum is 1.059 (drop
    0.941); it is first at or below 2.0 - 0.0941 at index 22 (1.891; index 21 is 1.934), and
    first back above 2.0 at index 50, which bounds the interval above."""
    lrs = np.logspace(-5, 0, 60)
    losses = np.concatenate(
        [np.full(20, 2.0), np.linspace(2.0, 1.0, 20), np.linspace(1.0, 3.0, 20)]
    )
    res = SimpleNamespace(lrs=lrs, losses=losses, curve=None, stop_reason="done", stop_lr=None)
    assert lr_range_from_finder(res) == (float(lrs[22]), float(lrs[50]))


@pytest.mark.parametrize(("stop_reason", "high"), [("nan", 0.5), ("diverged", 0.5), ("done", 0.1)])
def test_lr_range_from_finder_high_is_the_lr_that_stopped_a_nan_or_diverged_sweep(
    stop_reason: str, high: float
) -> None:
    """A loss still falling at the sweep's end: the interval ends at the LR that stopped the
    sweep on a NaN or a divergence, else at the sweep's last LR."""
    lrs = np.logspace(-5, -1, 40)
    losses = np.concatenate([np.full(20, 2.0), np.linspace(2.0, 1.0, 20)])
    res = SimpleNamespace(lrs=lrs, losses=losses, curve=None, stop_reason=stop_reason, stop_lr=0.5)
    lo, hi = lr_range_from_finder(res)
    assert hi == pytest.approx(high, rel=1e-12)
    assert lo == lr_range_from_finder(SimpleNamespace(lrs=lrs, losses=losses, curve=None))[0]


def test_an_infinite_metric_is_a_diverged_trial_not_a_result() -> None:
    values = iter([math.inf, -math.inf, 0.5])
    task = Task(train=lambda s, rep: next(values), total_steps=20)
    r = tune(task, n_trials=1, seeding="blind", seed=0, pruner="none")
    assert [t.state for t in r.study.trials] == [TS.PRUNED, TS.PRUNED, TS.COMPLETE]
    assert [t.user_attrs.get("diverged") for t in r.study.trials] == [True, True, None]
    assert r.best_value == 0.5
