"""lrkit.tune: what a study keeps across runs and workers (direction, LR interval, search
space, sampler seed, cap on started trials), storage creation and URL checks, argument
checks before the storage is touched, and how ``lrkit tune`` reports a lost database."""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from lrkit import schedules as S
from lrkit.tune import (
    BLIND_LR_RANGE,
    ForeignStudyError,
    StudySpaceError,
    Task,
    TuneWarning,
    check_storage,
    tune,
)
from lrkit.tune._loop import REQUEUED_ATTR, SEED_ATTR

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)
TS = optuna.trial.TrialState


def _shared(name: str) -> Any:
    """An in-memory storage holding a new study ``name`` (what several runs share)."""
    return optuna.create_study(study_name=name)._storage


def _flat(schedule: S.Schedule, report: Any) -> float:
    return 1.0


# ----------------------------------------------------------------------------- direction


def test_maximize_ranks_the_best_trial_first_in_top_table_and_plot(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    values = iter([3.0, 9.0, 1.0, 7.0, 5.0])
    task = Task(train=lambda s, rep: next(values), total_steps=10, direction="maximize")
    r = tune(task, n_trials=5, seeding="blind", seed=0, pruner="none")
    assert r._maximize
    assert r.best_trial.number == 1 and r.best_value == 9.0
    assert [t.value for t in r.top(5)] == [9.0, 7.0, 5.0, 3.0, 1.0]
    assert r.top(1)[0].number == r.study.best_trial.number
    first_row = r.table(5).splitlines()[2].split()
    assert first_row[:3] == ["1", "1", "9"]
    fig = r.plot(str(tmp_path / "max.png"))
    ax1 = fig.axes[0]
    (best_line,) = [ln for ln in ax1.get_lines() if ln.get_label() == "best so far"]
    assert list(best_line.get_ydata()) == [3.0, 9.0, 9.0, 9.0, 9.0]
    lo, hi = ax1.get_ylim()
    assert lo < 9.0 < hi  # the best value is inside the limits, not clipped at the edge
    # minimize is unchanged
    values2 = iter([3.0, 9.0, 1.0])
    r2 = tune(Task(train=lambda s, rep: next(values2), total_steps=10), n_trials=3,
              seeding="blind", seed=0, pruner="none")  # fmt: skip
    assert not r2._maximize and [t.value for t in r2.top(3)] == [1.0, 3.0, 9.0]


# ----------------------------------------------------------------------------- best trial


def test_best_attributes_without_a_complete_trial_name_the_study_and_its_trials() -> None:
    from lrkit.tune import SearchSpace, TuneResult

    study = optuna.create_study(study_name="none-done")
    dist = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    for state in (TS.FAIL, TS.PRUNED, TS.FAIL, TS.PRUNED, TS.FAIL):
        study.add_trial(optuna.trial.create_trial(params={"x": 0.5}, distributions=dist,
                                                  state=state))  # fmt: skip
    r = TuneResult(study, space=SearchSpace(total_steps=10), n_trials=5, seeding="blind")
    message = (
        "no trial completed in study 'none-done': 0 of 5 trials completed (3 failed, 2 pruned); "
        "the best_* attributes need a COMPLETE trial"
    )
    for name in ("best_trial", "best_value", "best_params", "best_spec", "best_schedule"):
        with pytest.raises(ValueError) as info:
            getattr(r, name)
        assert str(info.value) == message, name
    # an empty study says so too, without a state list
    empty = TuneResult(optuna.create_study(study_name="empty"), space=SearchSpace(total_steps=10),
                       n_trials=1, seeding="blind")  # fmt: skip
    with pytest.raises(ValueError, match=r"^no trial completed in study 'empty': 0 of 0 trials "
                       r"completed; the best_\* attributes need a COMPLETE trial$"):  # fmt: skip
        _ = empty.best_value


def test_best_attributes_after_a_search_whose_trials_all_diverged() -> None:
    with pytest.warns(UserWarning, match="max_trials=2"):
        r = tune(Task(train=lambda s, rep: float("nan"), total_steps=20), n_trials=1,
                 seeding="blind", max_trials=2, seed=0)  # fmt: skip
    assert r.stop_reason == "max_trials" and r.counts() == {"PRUNED": 2}
    name = r.study.study_name
    with pytest.raises(ValueError) as info:
        _ = r.best_spec
    assert str(info.value) == (
        f"no trial completed in study {name!r}: 0 of 2 trials completed (2 pruned); "
        "the best_* attributes need a COMPLETE trial"
    )


# ----------------------------------------------------------------------------- storage


def _operational(message: str) -> Exception:
    import sqlite3

    import sqlalchemy.exc

    return sqlalchemy.exc.OperationalError(
        "CREATE TABLE studies", {}, sqlite3.OperationalError(message)
    )


def test_sqlite_table_creation_race_is_retried(tmp_path, monkeypatch) -> None:
    from lrkit.tune import _storage

    real = optuna.storages.RDBStorage
    calls: list[str] = []

    def first_loses_the_race(*a: Any, **k: Any) -> Any:
        calls.append("create")
        if len(calls) == 1:  # another worker created the tables between check and CREATE
            raise _operational("table studies already exists")
        return real(*a, **k)

    monkeypatch.setattr(optuna.storages, "RDBStorage", first_loses_the_race)
    monkeypatch.setattr(_storage, "time", SimpleNamespace(sleep=lambda s: None))
    st = _storage.make_storage(f"sqlite:///{tmp_path / 'race.db'}")
    assert isinstance(st, real) and calls == ["create", "create"]


def _refused_creating(tmp_path: Path, monkeypatch: Any, error: Exception) -> tuple[str, str, Any]:
    """``make_storage`` of an SQLite URL whose table creation raises ``error`` every time: the
    URL, the one-line message it raised and the creations tried."""
    from lrkit.tune import _storage

    calls: list[str] = []

    def create(*a: Any, **k: Any) -> Any:
        calls.append("create")
        raise error

    monkeypatch.setattr(optuna.storages, "RDBStorage", create)
    monkeypatch.setattr(_storage, "time", SimpleNamespace(sleep=lambda s: None))
    url = f"sqlite:///{tmp_path / 'refused.db'}"
    with pytest.raises(ValueError) as info:
        _storage.make_storage(url)
    return url, str(info.value), calls


def test_other_operational_errors_fail_at_once_in_one_line(tmp_path, monkeypatch) -> None:
    url, message, calls = _refused_creating(
        tmp_path, monkeypatch, _operational("database is locked")
    )
    assert message == f"storage {url}: cannot use the database: database is locked"
    assert calls == ["create"]


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite+pysqlite:///:memory:",
        "sqlite+pysqlite://",
        "sqlite:///file::memory:?uri=true",
        "sqlite:///file:shared?mode=memory&cache=shared&uri=true",
        "SQLite:///:memory:",
    ],
)
def test_in_memory_sqlite_is_refused_in_every_form(url: str) -> None:
    from lrkit.tune import make_storage, sqlite_file

    for check in (check_storage, make_storage):
        with pytest.raises(ValueError, match="is an in-memory SQLite database") as info:
            check(url)
        assert str(info.value).startswith(f"storage {url!r} ")
    assert sqlite_file(url) is None


def test_in_memory_refusal_masks_the_password() -> None:
    with pytest.raises(ValueError) as info:
        check_storage("sqlite:///:memory:?password=Secret123", name="--storage")
    msg = str(info.value)
    assert "Secret123" not in msg
    assert msg.startswith("--storage 'sqlite:///:memory:?password=***' is an in-memory")


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        (b"postgresql://u:Secret123@h/db", "bytes 'postgresql://u:***@h/db'"),
        (bytearray(b"postgresql://u:Secret123@h/db"), "bytearray 'postgresql://u:***@h/db'"),
        (b"u:Secret123@h/db", "bytes '***@h/db'"),  # as the same text given as a string
        (b"host=h password=Secret123", "bytes 'host=h password=***'"),
    ],
)
def test_a_url_given_as_bytes_is_refused_without_its_password(given, shown) -> None:
    with pytest.raises(ValueError) as info:
        check_storage(given)
    assert str(info.value).endswith(f", got {shown}")


def test_sqlite_files_are_still_accepted(tmp_path) -> None:
    for url in (f"sqlite:///{tmp_path / 'a.db'}", f"sqlite+pysqlite:///{tmp_path / 'b.db'}",
                f"sqlite:///file:{tmp_path / 'c.db'}?mode=rwc&uri=true"):  # fmt: skip
        assert check_storage(url) == url
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- cap per run


def test_max_trials_caps_the_trials_of_each_run_so_a_rerun_adds_trials() -> None:
    st = _shared("cap")
    task = Task(train=lambda s, rep: math.nan, total_steps=20)
    for expected in (3, 6):
        with pytest.warns(UserWarning, match="this run started max_trials=3 trials"):
            r = tune(task, n_trials=2, storage=st, study_name="cap", seeding="blind",
                     max_trials=3)  # fmt: skip
        assert r.stop_reason == "max_trials" and not r.reached
        assert len(r.study.trials) == expected


def test_the_cap_warning_counts_the_complete_trials_against_n_trials() -> None:
    values = iter([1.0, math.nan, math.nan, math.nan])
    task = Task(train=lambda s, rep: next(values), total_steps=20)
    with pytest.warns(TuneWarning) as caught:
        r = tune(task, n_trials=3, seeding="blind", max_trials=4, seed=0)
    assert [str(w.message) for w in caught] == [
        "stopped after this run started max_trials=4 trials, with 1 of 3 COMPLETE in the study "
        "(the others were pruned, diverged or failed); running again starts up to max_trials "
        "more"
    ]
    assert r.counts() == {"COMPLETE": 1, "PRUNED": 3} and r.stop_reason == "max_trials"


# ----------------------------------------------------------------------------- timeout


class _Clock:
    """What :func:`tune` reads as ``time.monotonic`` and ``time.sleep``: a clock that stands
    still but for ``advance`` (a trial or a range test moves it on) and for what is slept."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: Any) -> _Clock:
    from lrkit.tune import _loop

    c = _Clock()
    monkeypatch.setattr(_loop, "time", SimpleNamespace(monotonic=c.monotonic, sleep=c.sleep))
    return c


def _timed_task(clock: _Clock, seconds: float, **kw: Any) -> Task:
    """A task whose every trial takes ``seconds`` on ``clock``."""

    def train(schedule: S.Schedule, report: Any) -> float:
        clock.advance(seconds)
        return 1.0

    return Task(train=train, total_steps=20, **kw)


def test_timeout_starts_no_trial_once_it_has_passed_and_warns_of_nothing(clock) -> None:
    """Trials of 100 s and timeout=250: the third trial starts at 200 s and finishes at 300 s;
    no fourth is started. No warning: a timeout is what was asked for."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = tune(_timed_task(clock, 100.0), n_trials=10, seeding="blind", pruner="none",
                 timeout=250)  # fmt: skip
    assert r.stop_reason == "timeout" and not r.reached and r.timeout == 250.0
    assert r.counts() == {"COMPLETE": 3} and clock.now == 300.0
    # a timeout that does not pass first changes nothing
    r = tune(_timed_task(clock, 100.0), n_trials=2, seeding="blind", pruner="none", timeout=250)
    assert r.stop_reason == "complete" and r.reached and r.counts() == {"COMPLETE": 2}


def test_the_range_test_counts_toward_the_timeout(clock) -> None:
    """A new study's range test runs in the time of the call: one that outlasts timeout leaves
    the seed trials queued and none run."""

    from lrkit.finder import range_test

    def bowl(lr: float) -> float:  # falls from 1e-4 to 1e-1, blows up beyond
        x = math.log10(lr)
        return 2.0 if x < -4 else 2.0 - 0.6 * (x + 4) if x < -1 else 0.2 + 300.0 * (x + 1) ** 2

    found = range_test(bowl, start_lr=1e-7, end_lr=10.0, num_iter=100, warn=False)

    def slow_range_test() -> Any:
        clock.advance(60.0)
        return found

    task = _timed_task(clock, 1.0, range_test=slow_range_test)
    r = tune(task, n_trials=3, seeding="finder", timeout=50)
    assert r.stop_reason == "timeout" and not r.reached and r.seeding == "finder"
    assert r.counts() == {"WAITING": 2} and clock.now == 60.0  # the seeds, no trial run

    # the next run on that study trains the queued seeds once each, without queuing them again
    st = _shared("late")
    tune(task, n_trials=3, storage=st, study_name="late", seeding="finder", timeout=50)
    again = tune(task, n_trials=2, storage=st, study_name="late", seeding="finder")
    assert again.counts() == {"COMPLETE": 2}
    assert [t.params["family"] for t in again.study.trials] == ["onecycle", "cosine"]
    queued = [t.system_attrs["fixed_params"]["family"] for t in r.study.trials]
    assert queued == ["onecycle", "cosine"]


def test_a_worker_waiting_for_other_trials_stops_waiting_at_the_timeout(clock) -> None:
    st = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=st, study_name="w").ask()  # RUNNING: another worker's
    said: list[str] = []
    r = tune(_timed_task(clock, 1.0), n_trials=1, storage=st, study_name="w", seeding="blind",
             poll_interval=0.5, timeout=1.2, log=said.append)  # fmt: skip
    assert r.stop_reason == "timeout" and not r.reached
    assert clock.slept == pytest.approx([0.5, 0.5, 0.2])  # the last wait ends at the timeout
    assert "waiting for 1 running trial(s) to finish" in said


@pytest.mark.parametrize(
    "value, message",
    [
        (0, "timeout must be > 0 (allowed range: (0, inf)), got 0"),
        (-1.5, "timeout must be > 0 (allowed range: (0, inf)), got -1.5"),
        (math.inf, "timeout must be a finite real number, got inf"),
        (math.nan, "timeout must be a finite real number, got nan"),
        ("60", "timeout must be a finite real number, got '60' (text, not a number)"),
        (True, "timeout must be a finite real number, got True"),
    ],
)
def test_a_bad_timeout_is_one_line_before_the_storage_is_touched(
    value: Any, message: str, tmp_path: Path
) -> None:
    db = tmp_path / "t.db"
    with pytest.raises(ValueError) as info:
        tune(Task(train=_flat, total_steps=20), n_trials=1, seeding="blind",
             storage=f"sqlite:///{db}", timeout=value)  # fmt: skip
    assert str(info.value) == message
    assert not db.exists()


# ----------------------------------------------------------------------------- LR interval


class _NoCurve:
    """A range-test result with no usable interval (the loss never falls)."""

    lrs = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    losses = [1.0] * 6


def test_a_study_keeps_the_blind_fallback_interval_when_a_later_range_test_works() -> None:
    st = _shared("fallback")
    first = Task(train=_flat, total_steps=20, range_test=lambda: _NoCurve())
    with pytest.warns(UserWarning, match="no usable interval"):
        r1 = tune(first, n_trials=2, storage=st, study_name="fallback", seed=0)
    assert r1.lr_range == BLIND_LR_RANGE and r1.seeding == "blind"
    assert r1.study.user_attrs["lrkit.lr_range"] == list(BLIND_LR_RANGE)
    ran: list[int] = []
    works = Task(train=_flat, total_steps=20, range_test=lambda: ran.append(1) or (1e-3, 1.0))
    said: list[str] = []
    r2 = tune(works, n_trials=4, storage=st, study_name="fallback", seed=0, log=said.append)
    assert ran == []  # the study has its interval: no range test
    assert r2.lr_range == BLIND_LR_RANGE and r2.seeding == "blind"
    assert "searching peak LR in [1e-06, 10] (blind)" in said[0]
    dists = {(t.distributions["lr"].low, t.distributions["lr"].high) for t in r2.study.trials}
    assert dists == {BLIND_LR_RANGE}


def test_a_study_keeps_its_finder_interval_when_a_later_range_test_fails() -> None:
    st = _shared("kept")
    said: list[str] = []
    r1 = tune(Task(train=_flat, total_steps=20, range_test=lambda: (1e-3, 1.0)), n_trials=2,
              storage=st, study_name="kept", seed=0, log=said.append)  # fmt: skip
    assert r1.lr_range == (1e-3, 1.0)
    # a pair returned by range_test is no range test's result: said so, not "(finder)"
    assert r1.seeding == "finder" and r1.searched_by == "range_test's pair"
    assert "searching peak LR in [0.001, 1] (range_test's pair)" in said[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no range test, so no "no usable interval" warning
        r2 = tune(Task(train=_flat, total_steps=20, range_test=lambda: _NoCurve()), n_trials=3,
                  storage=st, study_name="kept", seed=0)  # fmt: skip
    assert r2.lr_range == (1e-3, 1.0) and r2.seeding == "finder"
    assert all(1e-3 <= t.params["lr"] <= 1.0 for t in r2.study.trials)


@pytest.mark.parametrize("recorded", [None, "blind", "finder"])
def test_an_older_study_without_a_stored_interval_searches_the_one_of_its_trials(
    recorded: str | None,
) -> None:
    """The interval is read off the trials; how it was found is the study's recorded
    ``lrkit.seeding`` (the blind fallback when it records none)."""
    st = _shared("old")
    study = optuna.load_study(study_name="old", storage=st)
    dist = optuna.distributions.FloatDistribution(1e-6, 10.0, log=True)
    fam = optuna.distributions.CategoricalDistribution(["constant"])
    study.add_trial(optuna.create_trial(value=1.0, params={"lr": 0.1, "family": "constant"},
                                        distributions={"lr": dist, "family": fam}))  # fmt: skip
    study.set_user_attr("lrkit.space", {"families": ["constant"], "seeding": "finder",
                                        "total_steps": 20})  # fmt: skip
    if recorded is not None:
        study.set_user_attr("lrkit.seeding", recorded)
    ran: list[int] = []
    task = Task(train=_flat, total_steps=20, range_test=lambda: ran.append(1) or (1e-3, 1.0))
    r = tune(task, n_trials=2, storage=st, study_name="old", families=("constant",))
    assert ran == [] and r.lr_range == BLIND_LR_RANGE
    assert r.study.user_attrs["lrkit.lr_range"] == list(BLIND_LR_RANGE)
    how = "finder" if recorded == "finder" else "blind"
    assert r.seeding == how and r.study.user_attrs["lrkit.seeding"] == how


# ----------------------------------------------------------------------------- search space


def test_a_run_that_started_no_trial_does_not_fix_the_options() -> None:
    st = _shared("empty")

    def broken() -> Any:
        raise RuntimeError("range test crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        tune(Task(train=_flat, total_steps=20, range_test=broken), n_trials=2, storage=st,
             study_name="empty", families=("cosine",))  # fmt: skip
    study = optuna.load_study(study_name="empty", storage=st)
    assert study.trials == [] and "lrkit.space" not in study.user_attrs
    # an older run left a record but no trial: the new options replace it
    study.set_user_attr("lrkit.space", {"families": ["step"], "seeding": "blind",
                                        "total_steps": 99})  # fmt: skip
    r = tune(Task(train=_flat, total_steps=20), n_trials=2, storage=st, study_name="empty",
             seeding=(0.01, 0.1), families=("constant", "wsd"))  # fmt: skip
    assert r.study.user_attrs["lrkit.space"] == {
        "families": ["constant", "wsd"], "seeding": [0.01, 0.1], "total_steps": 20,
        "task": "task",
    }  # fmt: skip
    assert r.study.user_attrs["lrkit.lr_range"] == [0.01, 0.1]
    # with trials, other options are refused and nothing changes
    with pytest.raises(StudySpaceError) as info:
        tune(Task(train=_flat, total_steps=20), n_trials=3, storage=st, study_name="empty",
             seeding=(0.01, 0.1), families=("cosine",))  # fmt: skip
    assert info.value.conflicts == {"families": (["constant", "wsd"], ["cosine"])}
    assert len(optuna.load_study(study_name="empty", storage=st).trials) == 2


# ----------------------------------------------------------------------------- others' studies


def _their_studies(url: str) -> None:
    """Studies in ``url`` that lrkit did not create: an objective of someone else's
    (parameter ``x``), a search of the LR alone, trials without parameters, a trial only
    queued, a COMPLETE trial with a family but no LR, and two multi-objective ones (with and
    without trials)."""
    mine = optuna.create_study(study_name="mine", storage=url)
    mine.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=5)
    mine.set_user_attr("owner", "me")
    optuna.create_study(study_name="lr-only", storage=url).optimize(
        lambda t: t.suggest_float("lr", 1e-4, 1.0, log=True), n_trials=2
    )
    bare = optuna.create_study(study_name="bare", storage=url)
    bare.add_trial(optuna.create_trial(value=1.0, params={}, distributions={}))
    optuna.create_study(study_name="queued", storage=url).enqueue_trial({"x": 0.5})
    family = {"family": optuna.distributions.CategoricalDistribution(["cosine"])}
    optuna.create_study(study_name="family-only", storage=url).add_trial(
        optuna.create_trial(value=1.0, params={"family": "cosine"}, distributions=family)
    )
    pair = optuna.create_study(study_name="pair", storage=url, directions=["minimize"] * 2)
    pair.optimize(lambda t: (t.suggest_float("lr", 1e-4, 1.0), 1.0), n_trials=2)
    optuna.create_study(study_name="pair-empty", storage=url, directions=["minimize", "maximize"])


def _kept(url: str, name: str) -> tuple[Any, ...]:
    """Everything Optuna keeps of study ``name``: its trials (states, values, parameters,
    attributes, times), user and system attributes, directions."""
    study = optuna.load_study(study_name=name, storage=url)
    st = study._storage
    sid = st.get_study_id_from_name(name)
    return (study.trials, study.user_attrs, st.get_study_system_attrs(sid), study.directions)


_NOT_LRKITS = (
    "study_name {name!r} in storage {url} holds trials lrkit did not run (trial 0 has {has}, "
    "not lrkit's lr and family); lrkit leaves this study as it is: give another study_name "
    "for a new study"
)
_MULTI = (
    "study_name {name!r} in storage {url} is a multi-objective study (directions {dirs}); "
    "lrkit tunes one metric and leaves this study as it is: give another study_name for a "
    "new study"
)
THEIRS = [
    ("mine", _NOT_LRKITS, {"has": "the parameters x"}),
    ("lr-only", _NOT_LRKITS, {"has": "the parameters lr"}),
    ("bare", _NOT_LRKITS, {"has": "no parameters"}),
    ("queued", _NOT_LRKITS, {"has": "the parameters x"}),
    ("family-only", _NOT_LRKITS, {"has": "the parameters family"}),
    ("pair", _MULTI, {"dirs": "minimize, minimize"}),
    ("pair-empty", _MULTI, {"dirs": "minimize, maximize"}),
]


@pytest.mark.parametrize("name, message, parts", THEIRS, ids=[t[0] for t in THEIRS])
def test_a_study_lrkit_did_not_create_is_refused_and_left_as_it_was(
    tmp_path: Path, name: str, message: str, parts: dict[str, str]
) -> None:
    url = f"sqlite:///{tmp_path / 'theirs.db'}"
    _their_studies(url)
    before = _kept(url, name)
    db = (tmp_path / "theirs.db").read_bytes()
    ran: list[str] = []
    task = Task(train=lambda s, rep: ran.append("trial") or 1.0, total_steps=20,
                range_test=lambda: ran.append("range test") or (1e-3, 1.0))  # fmt: skip
    for storage in (url, optuna.storages.RDBStorage(url)):  # a URL or an Optuna storage
        with pytest.raises(ValueError) as info:
            tune(task, n_trials=2, storage=storage, study_name=name)
        assert type(info.value) is ForeignStudyError  # a ValueError, not a StudySpaceError
        assert str(info.value) == message.format(name=name, url=url, **parts)
        assert (info.value.study_name, info.value.storage) == (name, url)
    assert ran == []  # neither the range test nor a trial
    assert _kept(url, name) == before
    assert (tmp_path / "theirs.db").read_bytes() == db  # bit for bit


DAMAGED = [
    ("lrkit.space", "abc"),
    ("lrkit.space", ["constant", "cosine"]),
    ("lrkit.space", {"families": 5, "seeding": "blind", "total_steps": 20, "task": "t"}),
    ("lrkit.space", {"families": "constant,cosine"}),
    ("lrkit.space", {"families": ["constant", "linear"]}),
    ("lrkit.space", {"families": ["constant"], "total_steps": "20"}),
    ("lrkit.space", {"families": ["constant"], "seeding": [2.0, 1.0]}),
    ("lrkit.lr_range", "abc"),
    ("lrkit.lr_range", [2.0, 1.0]),
    ("lrkit.seeding", 3),
    ("lrkit.total_steps", True),
]


@pytest.mark.parametrize("attr, value", DAMAGED, ids=[f"{a}={v!r}" for a, v in DAMAGED])
def test_a_study_with_a_damaged_record_is_refused_in_one_line(
    tmp_path: Path, attr: str, value: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'st.db'}"
    task = Task(train=lambda s, rep: 1.0, total_steps=20)
    tune(task, n_trials=2, storage=url, study_name="s", seeding="blind", seed=0)
    optuna.load_study(study_name="s", storage=url).set_user_attr(attr, value)
    before = _kept(url, "s")
    with pytest.raises(ForeignStudyError) as info:
        tune(task, n_trials=3, storage=url, study_name="s", seeding="blind", seed=0)
    msg = str(info.value)
    assert msg.startswith(f"study_name 's' in storage {url} holds a user attr {attr!r} (")
    assert msg.endswith(
        "that is not lrkit's record; lrkit leaves this study as it is: give another "
        "study_name for a new study"
    )
    assert "\n" not in msg
    assert _kept(url, "s") == before


def test_a_refused_study_shows_its_storage_without_the_password() -> None:
    from lrkit.tune._storage import shown_storage

    url = "postgresql://alice:s3cr3tpw@dbhost:5432/db?sslpassword=kp9"
    assert shown_storage(url) == "postgresql://alice:***@dbhost:5432/db?sslpassword=***"
    assert shown_storage(SimpleNamespace(url=url)) == shown_storage(url)  # an RDBStorage
    assert shown_storage(optuna.storages.InMemoryStorage()) == "InMemoryStorage"
    assert shown_storage(None) == "in memory"
    st = _shared("theirs")
    optuna.load_study(study_name="theirs", storage=st).enqueue_trial({"x": 1})
    with pytest.raises(ValueError, match=r"^study_name 'theirs' in storage InMemoryStorage holds"):
        tune(Task(train=_flat, total_steps=20), n_trials=1, storage=st, study_name="theirs")


def test_a_study_of_an_lrkit_from_before_the_space_record_is_continued(tmp_path: Path) -> None:
    """What lrkit 0.1.0 left: the total steps, the LR interval and how it was found as user
    attrs (no "lrkit.space"), trials with lrkit's parameters, a surplus trial pruned before
    it sampled any, a trial failed while it sampled (its LR only)."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    study = optuna.create_study(study_name="old", storage=url)
    for key, value in {"lrkit.total_steps": 20, "lrkit.lr_range": [1e-3, 1.0],
                       "lrkit.seeding": "finder", "lrkit.finder": None}.items():  # fmt: skip
        study.set_user_attr(key, value)
    dists = {
        "lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True),
        "family": optuna.distributions.CategoricalDistribution(["constant", "cosine"]),
        "cosine.warmup_frac": optuna.distributions.FloatDistribution(0.0, 0.2),
    }
    study.add_trial(optuna.create_trial(
        value=0.5, params={"lr": 0.01, "family": "cosine", "cosine.warmup_frac": 0.1},
        distributions=dists, user_attrs={"schedule": "cosine(...)"}))  # fmt: skip
    study.add_trial(optuna.create_trial(state=TS.PRUNED, user_attrs={"surplus": True}))
    study.add_trial(optuna.create_trial(state=TS.FAIL, params={"lr": 0.1},
                                        distributions={"lr": dists["lr"]}))  # fmt: skip
    ran: list[int] = []
    task = Task(train=_flat, total_steps=20, range_test=lambda: ran.append(1) or (1e-5, 1e-4))
    r = tune(task, n_trials=3, storage=url, study_name="old", families=("cosine", "constant"))
    assert ran == [] and r.lr_range == (1e-3, 1.0) and r.seeding == "finder"
    assert len(r.complete_trials) == 3 and r.best_value == 0.5
    assert r.best_spec == "cosine(...)"
    with pytest.raises(StudySpaceError) as info:  # still checked against its trials
        tune(task, n_trials=4, storage=url, study_name="old", families=("wsd",))
    assert info.value.conflicts == {"families": (["constant", "cosine"], ["wsd"])}


# ----------------------------------------------------------------------------- seed


def _lrs(r: Any) -> list[float]:
    return [t.params["lr"] for t in r.study.trials]


def test_seeded_rerun_continues_rather_than_repeats() -> None:
    from lrkit.tune._loop import _sampler_seed

    kw: dict[str, Any] = {
        "seeding": "blind",
        "seed": 7,
        "pruner": "none",
        "families": ("constant",),
    }
    a = tune(Task(train=_flat, total_steps=20), n_trials=3, **kw)
    b = tune(Task(train=_flat, total_steps=20), n_trials=3, **kw)
    assert _lrs(a) == _lrs(b)  # a new study with the same seed is searched the same way
    st = _shared("rerun")
    first = tune(Task(train=_flat, total_steps=20), n_trials=3, storage=st, study_name="rerun",
                 **kw)  # fmt: skip
    assert _lrs(first) == _lrs(a)
    second = tune(Task(train=_flat, total_steps=20), n_trials=6, storage=st,
                  study_name="rerun", **kw)  # fmt: skip
    old, new = _lrs(second)[:3], _lrs(second)[3:]
    assert len(new) == 3 and not set(old) & set(new)
    assert _sampler_seed(7, 0) == 7 and _sampler_seed(7, 3) != _sampler_seed(7, 4)
    assert _sampler_seed(7, 3) == _sampler_seed(7, 3)


# ----------------------------------------------------------------------------- paused worker


@pytest.mark.parametrize("first", [1.0, math.nan])  # finished, or pruned as diverged
def test_a_result_told_after_another_worker_failed_the_trial_is_a_notice(first: float) -> None:
    st = _shared("paused")
    calls = itertools.count()

    def train(schedule: S.Schedule, report: Any) -> float:
        if next(calls) == 0:  # meanwhile another worker failed this trial by its heartbeat
            (mine,) = st.get_all_trials(st.get_study_id_from_name("paused"), states=(TS.RUNNING,))
            st.set_trial_state_values(mine._trial_id, TS.FAIL)
            return first
        return 1.0

    with pytest.warns(UserWarning, match=r"^trial 0 finished here after another worker had "
                      r"marked it FAIL .* the retried copy of the trial carries on$"):  # fmt: skip
        r = tune(Task(train=train, total_steps=20), n_trials=2, storage=st, study_name="paused",
                 seeding="blind", seed=0)  # fmt: skip
    assert [t.state for t in r.study.trials] == [TS.FAIL, TS.COMPLETE, TS.COMPLETE]
    assert r.reached and r.stop_reason == "complete"


def test_other_optuna_value_errors_still_propagate(monkeypatch) -> None:
    def refuse(*a: Any, **k: Any) -> Any:
        raise ValueError("Cannot tell a COMPLETE trial.")

    monkeypatch.setattr(optuna.study.Study, "optimize", refuse)
    with pytest.raises(ValueError, match="Cannot tell a COMPLETE trial"):
        tune(Task(train=_flat, total_steps=20), n_trials=1, seeding="blind")


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seed": -1}, r"^seed must be an integer in \[0, 4294967295\], got -1$"),
        ({"seed": "a"}, r"^seed must be an integer in \[0, 4294967295\], got 'a'$"),
        ({"seed": 1.5}, r"^seed must be an integer in \[0, 4294967295\], got 1.5$"),
        ({"seed": 2**32}, r"^seed must be an integer in \[0, 4294967295\], got 4294967296$"),
        ({"seeding": (1.0, 0.1)}, r"^seeding\[1\] must be > seeding\[0\]=1.0, got 0.1$"),
        ({"seeding": (0.0, 0.1)}, r"^seeding\[0\] must be > 0"),
        ({"seeding": (1.0,)}, r"^seeding must be a pair \(low, high\), got \(1.0,\)$"),
        ({"seeding": "bogus"}, r"^seeding must be one of 'finder', 'blind', got 'bogus'$"),
        ({"storage": 123}, r"^storage must be None \(in memory\), a database URL .* got int 123$"),
        ({"poll_interval": -1}, r"^poll_interval must be > 0 .* got -1$"),
        ({"poll_interval": 0}, r"^poll_interval must be > 0"),
        ({"startup_trials": -2}, r"^startup_trials must be an integer >= 0"),
        ({"pruner": "hyperband"}, r"^pruner must be one of"),
        ({"study_name": ""}, r"^study_name must be a non-empty string or None, got ''$"),
        ({"study_name": 123}, r"^study_name must be a non-empty string or None, got 123$"),
        ({"sampler": 5}, r"^sampler must be None \(TPE\) or an Optuna sampler, got int$"),
        ({"families": "cosine,sgdr"}, r"^families must be one of .* got 'sgdr'$"),
        (
            {"families": None},
            r"^families must be a sequence of names or a comma-separated "
            r"string of constant, cosine, .*, got NoneType None$",
        ),
        ({"families": 5}, r"^families must be a sequence of names .*, got int 5$"),
    ],
)
def test_bad_arguments_are_one_line_before_the_storage_is_touched(
    tmp_path, kwargs, message
) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "untouched.db"
    kw: dict[str, Any] = {"storage": f"sqlite:///{db}", "study_name": "s", **kwargs}
    ran: list[int] = []
    task = Task(train=lambda s, r: ran.append(1) or 1.0, total_steps=20)
    with pytest.raises(ValueError, match=message):
        tune(task, n_trials=1, **kw)
    assert not db.exists() and ran == []


def test_a_callback_that_is_not_callable_is_refused_before_the_storage_is_touched(
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "untouched.db"
    with pytest.raises(TypeError) as info:
        tune(Task(train=_flat, total_steps=20), n_trials=1, storage=f"sqlite:///{db}",
             callbacks=[print, 1])  # fmt: skip
    assert str(info.value) == "callbacks[1] must be a callable (study, trial) -> None, got 1"
    assert not db.exists()


def test_families_as_a_comma_separated_string_as_on_the_command_line() -> None:
    r = tune(Task(train=_flat, total_steps=20), n_trials=2, seeding="blind", seed=0,
             families=" wsd, cosine ")  # fmt: skip
    assert r.space.families == ("wsd", "cosine")
    assert {t.params["family"] for t in r.complete_trials} <= {"wsd", "cosine"}
    assert r.study.user_attrs["lrkit.space"]["families"] == ["wsd", "cosine"]


# ----------------------------------------------------------------------------- CLI


def _task_module(tmp_path: Path, monkeypatch: Any, name: str, source: str) -> Iterator[str]:
    """Write ``source`` (dedented) as module ``name`` in ``tmp_path``, the working folder and
    on ``sys.path``; yield its name, then forget the module."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
def nan_module(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    source = """
            import optuna
            from lrkit.tune import Task

            def nan():
                return Task(train=lambda s, r: float("nan"), total_steps=20)

            def paused():
                calls = []

                def train(schedule, report):
                    if not calls:  # another worker fails this trial (its heartbeat stopped)
                        st = optuna.load_study(study_name="p", storage="sqlite:///p.db")._storage
                        sid = st.get_study_id_from_name("p")
                        (mine,) = st.get_all_trials(sid, states=(optuna.trial.TrialState.RUNNING,))
                        st.set_trial_state_values(mine._trial_id, optuna.trial.TrialState.FAIL)
                    calls.append(1)
                    return 1.0

                return Task(train=train, total_steps=20)

            def warns():
                import warnings

                def train(schedule, report):
                    warnings.warn("task: a runtime warning", RuntimeWarning)
                    warnings.warn("task: a user warning", UserWarning)
                    # placed in the caller (lrkit's code): still the task's warning
                    warnings.warn("task: one level up", RuntimeWarning, stacklevel=2)
                    return 1.0

                return Task(train=train, total_steps=20)

            def every_other():
                calls = []

                def train(schedule, report):
                    calls.append(1)
                    report(0, 2.0)
                    return 1.0 if len(calls) % 2 else float("nan")

                return Task(train=train, total_steps=20)
"""
    yield from _task_module(tmp_path, monkeypatch, "studytasks", source)


@pytest.fixture
def timed_module(tmp_path, monkeypatch, clock):  # type: ignore[no-untyped-def]
    """Targets ``timedtasks:flat`` and ``timedtasks:nan`` (every trial diverges) whose every
    trial takes 100 s on ``clock``."""
    source = """
            from lrkit.tune import Task

            tick = None  # what a trial's time passes through

            def flat():
                def train(schedule, report):
                    tick()
                    return 1.0

                return Task(train=train, total_steps=20)

            def nan():
                def train(schedule, report):
                    tick()
                    return float("nan")

                return Task(train=train, total_steps=20)
"""
    for name in _task_module(tmp_path, monkeypatch, "timedtasks", source):
        import importlib

        importlib.import_module(name).tick = lambda: clock.advance(100.0)
        yield name


def test_cli_timeout_stops_the_search_and_says_so(timed_module: str, clock, capsys) -> None:
    from lrkit.cli import main

    argv = ["tune", f"{timed_module}:flat", "--trials", "5", "--timeout", "250", "--seeding",
            "blind", "--pruner", "none", "--storage", "sqlite:///t.db", "--study", "t",
            "--no-progress", "--plot", "none"]  # fmt: skip
    assert main(argv) == 1  # as a cap reached first: not the trials asked for
    out, err = capsys.readouterr()
    assert "best schedule (full precision):" in out  # the trials that finished are shown
    assert err.strip().splitlines()[-1] == (
        "lrkit tune: error: only 3 of 5 trials COMPLETE: this run stopped at its --timeout of "
        "250 seconds (no new trial is started after it; 0 pruned, 0 diverged, 0 failed in the "
        "study); run the same command again to add trials to the study, or raise --timeout"
    )
    assert main(argv) == 0  # a rerun (its own 250 s) completes the study
    assert len(optuna.load_study(study_name="t", storage="sqlite:///t.db").trials) == 5


def test_cli_timeout_before_any_trial_finished_says_so(timed_module: str, clock, capsys) -> None:
    from lrkit.cli import main

    argv = ["tune", f"{timed_module}:nan", "--trials", "2", "--timeout", "150", "--seeding",
            "blind", "--storage", "sqlite:///n.db", "--study", "n", "--no-progress",
            "--plot", "none"]  # fmt: skip
    assert main(argv) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "lrkit tune: error: no trial finished: this run stopped at its --timeout of 150 seconds "
        "(no new trial is started after it; 0 pruned, 2 diverged, 0 failed in the study); run "
        "the same command again to continue the study, or raise --timeout"
    )


@pytest.mark.parametrize(
    "value, line",
    [
        ("0", "--timeout must be > 0 (allowed range: (0, inf)), got 0.0"),
        ("-3", "--timeout must be > 0 (allowed range: (0, inf)), got -3.0"),
        ("inf", "--timeout must be a finite real number, got inf"),
        ("nan", "--timeout must be a finite real number, got nan"),
    ],
)
def test_cli_a_bad_timeout_is_one_line_exit_code_2(
    timed_module: str, value: str, line: str, capsys, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from lrkit.cli import main

    argv = ["tune", f"{timed_module}:flat", "--timeout", value, "--seeding", "blind",
            "--storage", "sqlite:///b.db", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [f"lrkit tune: error: {line}"]
    assert not (tmp_path / "b.db").exists()
    with pytest.raises(SystemExit) as info:  # not a number: argparse's one line
        main(["tune", f"{timed_module}:flat", "--timeout", "soon"])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "lrkit tune: error: argument --timeout: invalid float value: 'soon' "
        "(see: lrkit tune --help)"
    ]


def test_cli_cap_reached_with_nothing_finished_names_the_cap_and_a_rerun_adds_trials(
    nan_module: str, capsys
) -> None:  # type: ignore[no-untyped-def]
    from lrkit.cli import main

    argv = ["tune", f"{nan_module}:nan", "--trials", "2", "--max-trials", "3", "--seeding",
            "blind", "--storage", "sqlite:///cap.db", "--study", "c", "--no-progress",
            "--plot", "none"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "lrkit tune: error: no trial finished: this run reached its cap of 3 started trials "
        "(--max-trials; 0 pruned, 3 diverged, 0 failed in the study); run the same command "
        "again to start up to --max-trials more, or raise --max-trials, or search lower LRs "
        "with a lower top of --lr-range (every pruned trial diverged, which no pruner setting "
        "changes)"
    )
    assert main(argv) == 1
    assert "cap of 3 started trials (--max-trials; 0 pruned, 6 diverged" in capsys.readouterr().err
    assert len(optuna.load_study(study_name="c", storage="sqlite:///cap.db").trials) == 6


def test_cli_with_nothing_finished_still_writes_the_plot_and_json_asked_for(
    nan_module: str, capsys, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib")
    import json

    from lrkit.cli import main

    argv = ["tune", f"{nan_module}:nan", "--trials", "2", "--max-trials", "3", "--seeding",
            "blind", "--storage", "sqlite:///nothing.db", "--study", "n", "--no-progress",
            "--plot", "nothing.png", "--json", "nothing.json"]  # fmt: skip
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert (tmp_path / "nothing.png").stat().st_size > 0  # the diverged trials, at the edge
    assert json.loads((tmp_path / "nothing.json").read_text())["complete"] == 0
    assert "plot of the search: nothing.png" in out and "results written to nothing.json" in out
    assert err.strip().splitlines()[-1].startswith("lrkit tune: error: no trial finished: ")
    # without --plot, nothing is drawn for a search with no finished trial
    argv = [a for a in argv if a not in ("--plot", "nothing.png")]
    argv[argv.index("n")] = "m"
    assert main(argv) == 1
    assert "plot of the search" not in capsys.readouterr().out
    assert not list(tmp_path.glob("lrkit-tune-*"))


def test_cli_quiet_with_nothing_finished_is_one_line_not_a_traceback(
    nan_module: str, capsys, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import json

    from lrkit.cli import main

    argv = ["tune", f"{nan_module}:nan", "--trials", "1", "--max-trials", "2", "--seeding",
            "blind", "--storage", "sqlite:///quiet.db", "--study", "q", "--no-progress",
            "--quiet", "--json", "quiet.json"]  # fmt: skip
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""  # no best schedule to print
    assert err.strip().splitlines() == [
        "lrkit tune: error: no trial finished: this run reached its cap of 2 started trials "
        "(--max-trials; 0 pruned, 2 diverged, 0 failed in the study); run the same command "
        "again to start up to --max-trials more, or raise --max-trials, or search lower LRs "
        "with a lower top of --lr-range (every pruned trial diverged, which no pruner setting "
        "changes)"
    ]
    assert json.loads((tmp_path / "quiet.json").read_text())["best"] is None


def test_cli_says_its_notes_under_a_users_error_filter(nan_module: str, capsys) -> None:  # type: ignore[no-untyped-def]
    """lrkit's notes on the search are the command's to say: an "error" warning filter (a
    CI's PYTHONWARNINGS=error) does not turn them into a traceback."""
    import warnings

    from lrkit.cli import main

    argv = ["tune", f"{nan_module}:every_other", "--trials", "1", "--storage", "sqlite:///e.db",
            "--study", "e", "--no-progress", "--plot", "none"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "note: --seeding finder (the default) but the task has no range_test" in out + err


def test_cli_json_marks_the_diverged_trials(nan_module: str, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from lrkit.cli import main

    argv = ["tune", f"{nan_module}:every_other", "--trials", "2", "--seeding", "blind",
            "--storage", "sqlite:///odd.db", "--study", "o", "--no-progress", "--quiet",
            "--plot", "none", "--json", "odd.json"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    trials = json.loads(Path("odd.json").read_text())["trials"]
    assert [(t["state"], t["value"], t["diverged"]) for t in trials] == [
        ("COMPLETE", 1.0, False),
        ("PRUNED", 2.0, True),  # its last finite report
        ("COMPLETE", 1.0, False),
    ]


def test_cli_shows_the_tasks_own_warnings_as_python_does_once_each(nan_module: str, capsys) -> None:  # type: ignore[no-untyped-def]
    import warnings

    from lrkit.cli import main

    argv = ["tune", f"{nan_module}:warns", "--trials", "3", "--seeding", "blind", "--storage",
            "sqlite:///w.db", "--study", "w", "--no-progress", "--plot", "none"]  # fmt: skip
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        assert main(argv) == 0
    out, err = capsys.readouterr()
    assert sorted((w.category.__name__, str(w.message)) for w in seen) == [
        ("RuntimeWarning", "task: a runtime warning"),
        ("RuntimeWarning", "task: one level up"),
        ("UserWarning", "task: a user warning"),
    ]
    assert "task:" not in out + err  # not one of lrkit's notes
    # a filter of the user's that makes one an error: the trials fail on it, as in Python
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="task: a user warning")
        argv = ["tune", f"{nan_module}:warns", "--trials", "2", "--max-trials", "2", "--seeding",
                "blind", "--storage", "sqlite:///w.db", "--study", "w2", "--no-progress",
                "--plot", "none"]  # fmt: skip
        assert main(argv) == 1
    assert "UserWarning: task: a user warning" in capsys.readouterr().err


def test_cli_a_trial_failed_by_another_worker_is_a_note_not_an_error(
    nan_module: str, capsys
) -> None:  # type: ignore[no-untyped-def]
    from lrkit.cli import main

    rc = main(["tune", f"{nan_module}:paused", "--trials", "2", "--seeding", "blind",
               "--storage", "sqlite:///p.db", "--study", "p", "--no-progress", "--plot",
               "none"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "note: trial 0 finished here after another worker had marked it FAIL" in err
    assert "error" not in err
    states = [t.state for t in optuna.load_study(study_name="p", storage="sqlite:///p.db").trials]
    assert states == [TS.FAIL, TS.COMPLETE, TS.COMPLETE]


@pytest.fixture
def counting_module(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    source = """
            from lrkit.tune import Task

            RAN = []

            def make():
                return Task(train=lambda s, r: RAN.append("trial") or 1.0, total_steps=20,
                            range_test=lambda: RAN.append("range test") or (1e-3, 1.0))
"""
    yield from _task_module(tmp_path, monkeypatch, "countingtask", source)


@pytest.mark.parametrize("name, message, parts", THEIRS[::4], ids=["mine", "pair"])
def test_cli_a_study_lrkit_did_not_create_is_one_line_and_left_as_it_was(
    counting_module: str, capsys, name: str, message: str, parts: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    from lrkit.cli import main

    url = "sqlite:///theirs.db"
    _their_studies(url)
    before = _kept(url, name)
    rc = main(["tune", f"{counting_module}:make", "--trials", "2", "--no-progress", "--plot",
               "none", "--study", name, "--storage", url])  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    # the command names its options: --study and --storage, not study_name and storage
    said = message.format(name=name, url=url, **parts)
    said = said.replace("study_name", "--study").replace("in storage", "in --storage")
    assert err == f"lrkit tune: error: {said}\n"
    assert "study_name" not in err
    assert sys.modules[counting_module].RAN == []
    assert _kept(url, name) == before


def test_cli_lost_database_connection_is_one_masked_line(
    nan_module: str, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy.exc

    import lrkit.tune
    from lrkit.cli import main

    url = "postgresql://bob:Secret99@db.example:5432/lrkit"

    def lost(*a: Any, **k: Any) -> Any:
        orig = Exception(
            'connection to server at "db.example" failed: server closed the connection '
            "unexpectedly (password Secret99)\n\tThis probably means the server terminated"
        )
        raise sqlalchemy.exc.OperationalError("SELECT trials", {}, orig)

    monkeypatch.setattr(lrkit.tune, "tune", lost)
    rc = main(["tune", f"{nan_module}:nan", "--storage", url, "--study", "x", "--no-progress",
               "--plot", "none"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and "Traceback" not in err and "Secret99" not in err
    assert err == (
        "lrkit tune: error: storage postgresql://bob:***@db.example:5432/lrkit: lost the "
        'database connection: connection to server at "db.example" failed: server closed the '
        "connection unexpectedly (password ***); the trials already finished stay in the "
        "study: run the same command to continue\n"
    )


def test_cli_lost_database_behind_optunas_own_errors_is_the_same_line(
    nan_module: str, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Optuna wraps a failed commit in StorageInternalError, and its trial clean-up may then
    raise an error of its own (an UnboundLocalError) while handling that one: the database
    error in the chain is what is reported."""
    import sqlalchemy.exc

    import lrkit.tune
    from lrkit.cli import main

    url = "postgresql://bob:Secret99@db.example:5432/lrkit"

    def lost(*a: Any, **k: Any) -> Any:
        try:
            try:
                raise sqlalchemy.exc.OperationalError(
                    "UPDATE trials", {}, Exception("server closed the connection unexpectedly")
                )
            except sqlalchemy.exc.OperationalError as exc:
                raise optuna.exceptions.StorageInternalError("during the commit") from exc
        finally:
            raise UnboundLocalError("cannot access local variable 'updated_state'")

    monkeypatch.setattr(lrkit.tune, "tune", lost)
    rc = main(["tune", f"{nan_module}:nan", "--storage", url, "--study", "x", "--no-progress",
               "--plot", "none"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "Secret99" not in err
    assert err == (
        "lrkit tune: error: storage postgresql://bob:***@db.example:5432/lrkit: lost the "
        "database connection: server closed the connection unexpectedly; the trials already "
        "finished stay in the study: run the same command to continue\n"
    )


def test_cli_an_error_raised_inside_optuna_is_not_reported_as_a_user_mistake(
    nan_module: str, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import lrkit.tune
    from lrkit.cli import main

    def optuna_bug(*a: Any, **k: Any) -> Any:
        optuna.distributions.FloatDistribution(1.0, 0.5)  # Optuna raises a ValueError

    monkeypatch.setattr(lrkit.tune, "tune", optuna_bug)
    with pytest.raises(ValueError):
        main(["tune", f"{nan_module}:nan", "--storage", "sqlite:///o.db", "--no-progress",
              "--plot", "none"])  # fmt: skip


def test_cli_database_lost_after_the_run_is_the_same_line(
    nan_module: str, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy.exc

    from lrkit.tune import TuneResult

    def lost(self: Any) -> Any:
        raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("server has gone away"))

    monkeypatch.setattr(TuneResult, "complete_trials", property(lost))
    from lrkit.cli import main

    rc = main(["tune", f"{nan_module}:nan", "--trials", "1", "--max-trials", "1", "--seeding",
               "blind", "--storage", "sqlite:///after.db", "--no-progress",
               "--plot", "none"])  # fmt: skip
    assert rc == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "lrkit tune: error: storage sqlite:///after.db: lost the database connection: server "
        "has gone away; the trials already finished stay in the study: run the same command "
        "to continue"
    )


def test_cli_database_lost_during_the_run_is_the_same_line(
    nan_module: str, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Optuna's write at a trial's end fails (the server went away): one line, exit code 1,
    however Optuna's clean-up failed on top of it."""
    import sqlalchemy.exc
    from optuna.storages import RDBStorage

    real, calls = RDBStorage.set_trial_state_values, []

    def failing(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) > 2:
            raise sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("server has gone away"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RDBStorage, "set_trial_state_values", failing)
    from lrkit.cli import main

    rc = main(["tune", f"{nan_module}:nan", "--trials", "3", "--seeding", "blind",
               "--storage", "sqlite:///during.db", "--no-progress", "--plot", "none"])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines()[-1] == (
        "lrkit tune: error: storage sqlite:///during.db: lost the database connection: server "
        "has gone away; the trials already finished stay in the study: run the same command "
        "to continue"
    )


def test_a_missing_postgresql_driver_names_the_extra_and_masks_the_password() -> None:
    from lrkit.tune._storage import storage_error

    url = "postgresql://user:s3cret@127.0.0.1:5432/db"
    msg = str(storage_error(ImportError("No module named 'psycopg2'"), url))
    assert "\n" not in msg and "s3cret" not in msg
    assert msg == (
        "storage postgresql://user:***@127.0.0.1:5432/db: cannot use the database: a PostgreSQL "
        "storage needs psycopg2: pip install 'lrkit[tune]' (No module named 'psycopg2')"
    )
    v3 = ModuleNotFoundError("No module named 'psycopg'", name="psycopg")  # SQLAlchemy >= 2.1
    assert "a PostgreSQL storage needs psycopg2: pip install 'lrkit[tune]'" in str(
        storage_error(v3, url)
    )
    other = str(storage_error(ImportError("No module named 'pymysql'"), "mysql://u@h/db"))
    assert "lrkit[tune]" not in other  # the extra holds the PostgreSQL driver only
    assert other.endswith("the database driver is not installed (No module named 'pymysql')")
    # the driver the URL names, not the extra's, whatever name the ImportError carries
    for driver in ("asyncpg", "psycopg"):
        for name in (driver, None):
            missing = ModuleNotFoundError(f"No module named '{driver}'", name=name)
            other = str(storage_error(missing, f"postgresql+{driver}://u@h/db"))
            assert "needs psycopg2" not in other
            assert other.endswith(
                f"a postgresql+{driver} URL needs {driver}: pip install {driver}, or leave it out "
                f"(postgresql://...: psycopg2, in lrkit[tune]) (No module named '{driver}')"
            )
    # another server's driver: its own install line, without PostgreSQL's way out
    pymysql = ModuleNotFoundError("No module named 'pymysql'", name="pymysql")
    assert str(storage_error(pymysql, "mysql+pymysql://u@h/db")) == (
        "storage mysql+pymysql://u@h/db: cannot use the database: a mysql+pymysql URL needs "
        "pymysql: pip install pymysql (No module named 'pymysql')"
    )
    # a driver name that is not its package's: the package, or no install line at all
    mysqldb = ModuleNotFoundError("No module named 'MySQLdb'", name="MySQLdb")
    assert "pip install mysqlclient" in str(storage_error(mysqldb, "mysql+mysqldb://u@h/db"))
    odd = ModuleNotFoundError("No module named 'odd'", name="odd")
    assert str(storage_error(odd, "mysql+odd://u@h/db")).endswith(
        "the database driver is not installed (No module named 'odd')"
    )


def _quad(rt: Any = (1e-3, 1.0)) -> Task:
    def train(schedule: S.Schedule, report: Any) -> float:
        peak = float(max(schedule.values(np.arange(20))))
        return (math.log10(peak) + 2.0) ** 2

    return Task(train=train, total_steps=20, range_test=rt if callable(rt) else lambda: rt,
                name="quad")  # fmt: skip


def test_workers_started_together_search_the_interval_recorded_first(tmp_path: Any) -> None:
    """While this worker runs its range test, another starts on the same new study, records
    its interval and runs trials: this worker then searches that interval, not its own (a
    model's random initialisation moves a range test), and the stored one is kept."""
    url = f"sqlite:///{tmp_path / 'race.db'}"

    def slow_range_test() -> tuple[float, float]:
        tune(_quad((1e-2, 10.0)), n_trials=2, storage=url, study_name="s", pruner="none")
        return (1e-4, 1.0)

    r = tune(_quad(slow_range_test), n_trials=5, storage=url, study_name="s", pruner="none")
    assert r.lr_range == (1e-2, 10.0)
    study = optuna.load_study(study_name="s", storage=url)
    assert study.user_attrs["lrkit.lr_range"] == [1e-2, 10.0]
    assert len(study.trials) == 5 and all(1e-2 <= t.params["lr"] <= 10.0 for t in study.trials)


def test_a_worker_whose_range_test_ran_while_another_started_the_study_searches_its_interval() -> (
    None
):
    """The study existed, empty, when this worker began: another worker records its search
    space and interval and runs trials during this worker's range test; this worker then
    searches the interval recorded first and leaves the record as it was."""
    st = _shared("meanwhile")

    def slow_range_test() -> tuple[float, float]:
        tune(_quad((1e-2, 10.0)), n_trials=2, storage=st, study_name="meanwhile", pruner="none")
        return (1e-4, 1.0)

    r = tune(_quad(slow_range_test), n_trials=4, storage=st, study_name="meanwhile",
             pruner="none")  # fmt: skip
    assert r.lr_range == (1e-2, 10.0)
    assert r.study.user_attrs["lrkit.lr_range"] == [1e-2, 10.0]
    assert r.counts() == {"COMPLETE": 4}
    assert all(1e-2 <= t.params["lr"] <= 10.0 for t in r.study.trials)


def test_a_seed_queued_twice_runs_once(tmp_path: Any) -> None:
    """Workers that started a new study together each queued its seed trials: the copy is
    dropped (PRUNED, user attr "dropped") rather than trained again."""
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    for _ in range(2):
        study.enqueue_trial({"lr": 0.01, "family": "cosine"}, user_attrs={SEED_ATTR: True})
    tune(_quad(), n_trials=2, storage=url, study_name="s", seeding="blind", pruner="none")
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert [t.state for t in trials[:2]] == [TS.COMPLETE, TS.PRUNED]
    assert trials[1].user_attrs["dropped"] == "a copy of an earlier queued trial"
    assert "schedule" not in trials[1].user_attrs  # never trained
    assert sum(t.state == TS.COMPLETE for t in trials) == 2


def test_a_copy_lrkit_requeued_twice_runs_once(tmp_path: Any) -> None:
    """Two workers restarting together each re-queue the failed trial a killed worker left:
    the copies carry lrkit's mark, and the later one is dropped."""
    url = f"sqlite:///{tmp_path / 'requeued.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    for _ in range(2):
        study.enqueue_trial({"lr": 0.01, "family": "cosine"}, user_attrs={REQUEUED_ATTR: 0})
    tune(_quad(), n_trials=2, storage=url, study_name="s", seeding="blind", pruner="none")
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert [t.state for t in trials[:2]] == [TS.COMPLETE, TS.PRUNED]
    assert trials[1].user_attrs["dropped"] == "a copy of an earlier queued trial"


def _two_queued_copies_one_stopped(tmp_path: Any, stopped: int, n_trials: int) -> list[Any]:
    """The trials of a study where the user queued one point twice and the ``stopped``-th run
    (1-based) was stopped by Ctrl-C, after the next run of ``tune``."""
    url = f"sqlite:///{tmp_path / 'copies.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    for _ in range(2):
        study.enqueue_trial({"lr": 0.05, "family": "constant"})
    task = _quad()
    train, runs = task.train, []

    def stopping(schedule: S.Schedule, report: Any) -> float:
        runs.append(1)
        if len(runs) == stopped:
            raise KeyboardInterrupt
        return train(schedule, report)

    task.train = stopping  # type: ignore[misc]
    with pytest.raises(KeyboardInterrupt):
        tune(task, n_trials=n_trials, storage=url, study_name="s", seeding="blind",
             pruner="none", families="constant")  # fmt: skip
    tune(task, n_trials=n_trials, storage=url, study_name="s", seeding="blind", pruner="none",
         families="constant")  # fmt: skip
    return optuna.load_study(study_name="s", storage=url).trials


def test_lrkits_copy_of_a_failed_queued_point_runs_beside_its_completed_runs(
    tmp_path: Any,
) -> None:
    """The user queues a point twice; the second run is stopped (FAIL): the next run re-queues
    it, and the copy runs although the first copy of the point completed."""
    trials = _two_queued_copies_one_stopped(tmp_path, stopped=2, n_trials=2)
    assert [t.state for t in trials] == [TS.COMPLETE, TS.FAIL, TS.COMPLETE]
    assert trials[2].user_attrs[REQUEUED_ATTR] == 1 and "dropped" not in trials[2].user_attrs
    assert trials[2].user_attrs["schedule"] == trials[0].user_attrs["schedule"]


def test_the_first_of_two_copies_the_user_queued_stopped_is_queued_again(tmp_path: Any) -> None:
    """The user queues a point twice (two runs to measure its noise); the first is stopped
    (FAIL): the second is no copy of it, and the next run queues the stopped one again."""
    trials = _two_queued_copies_one_stopped(tmp_path, stopped=1, n_trials=3)
    assert [t.state for t in trials] == [TS.FAIL, TS.COMPLETE, TS.COMPLETE, TS.COMPLETE]
    assert [t.params for t in trials[:3]] == [{"lr": 0.05, "family": "constant"}] * 3
    assert trials[2].user_attrs[REQUEUED_ATTR] == 0 and "dropped" not in trials[2].user_attrs


def test_a_point_the_user_queues_twice_runs_twice_as_optuna_runs_it(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'user.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    for _ in range(3):  # to measure the noise at one point
        study.enqueue_trial({"lr": 0.05, "family": "constant"})
    tune(_quad(), n_trials=3, storage=url, study_name="s", seeding="blind", pruner="none",
         families="constant")  # fmt: skip
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert [t.state for t in trials] == [TS.COMPLETE] * 3
    assert [t.params for t in trials] == [{"lr": 0.05, "family": "constant"}] * 3
    assert not any("dropped" in t.user_attrs for t in trials)


@pytest.mark.parametrize(
    ("queued", "why"),
    [
        ({"lr": 0.01, "family": "cosine", "cosine.warmup_frac": 0.9},
         "queued['cosine.warmup_frac'] must be in [0.0, 0.2], got 0.9"),
        ({"lr": 0.01, "family": "wsd", "wsd.decay": "exp"}, "queued['wsd.decay'] must be one of"),
        # accepted by the schedule, outside the range searched: dropped too
        ({"lr": 0.01, "family": "cosine", "cosine.warmup_frac": 0.3},
         "queued['cosine.warmup_frac'] must be in [0.0, 0.2], got 0.3"),
        # another family's parameter: not silently ignored
        ({"lr": 0.01, "family": "cosine", "wsd.decay": "linear"},
         "queued['wsd.decay'] is a parameter of another family than queued['family']='cosine'"),
    ],
)  # fmt: skip
def test_a_queued_value_of_a_family_s_parameter_outside_the_space_is_dropped(
    tmp_path: Any, queued: dict, why: str
) -> None:
    """A family's own parameter queued outside its range (or not among its choices) is
    dropped as an LR outside the interval is: not an error of the run, nor queued again."""
    url = f"sqlite:///{tmp_path / 'param.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    study.enqueue_trial(queued)
    for run in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tune(_quad(), n_trials=2, storage=url, study_name="s", seeding="blind",
                 families="cosine,wsd", pruner="none")  # fmt: skip
        said = [str(w.message) for w in caught if issubclass(w.category, TuneWarning)]
        assert len(said) == (1 if run == 0 else 0)
        if run == 0:
            assert said[0].startswith("trial 0, queued with lr=0.01, family=")
            assert why in said[0] and said[0].endswith(
                ": dropped (PRUNED; its parameters in user attr 'queued_params')"
            )
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert trials[0].state == TS.PRUNED and trials[0].user_attrs["queued_params"] == queued
    assert [t.state for t in trials[1:]] == [TS.COMPLETE] * 2


def test_a_queued_seed_outside_the_new_space_is_dropped_not_run(tmp_path: Any) -> None:
    """A first run stopped before any trial began (its seeds queued) leaves the study unbound:
    a run with other families drops the queued one-cycle seed (it raised inside Optuna, and
    was queued again by every later run, so the study could never run again)."""
    url = f"sqlite:///{tmp_path / 'moved.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    study.enqueue_trial({"lr": 0.01, "family": "onecycle"})
    for run in range(2):  # the second run queues nothing again
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tune(_quad(), n_trials=2, storage=url, study_name="s", seeding="blind",
                 families="step,wsd", pruner="none")  # fmt: skip
        said = [str(w.message) for w in caught if issubclass(w.category, TuneWarning)]
        # said once, naming the trial, what it was queued with and the space it left
        assert said == (
            [
                "trial 0, queued with lr=0.01, family='onecycle', lies outside the search space "
                "(lr in [1e-06, 10], families step, wsd): dropped (PRUNED; its parameters in "
                "user attr 'queued_params')"
            ]
            if run == 0
            else []
        )
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert trials[0].state == TS.PRUNED
    assert trials[0].user_attrs["dropped"] == "outside the search space"
    assert trials[0].user_attrs["queued_params"] == {"lr": 0.01, "family": "onecycle"}
    assert [t.params["family"] in ("step", "wsd") for t in trials[1:]] == [True] * 2
    assert len(trials) == 3


def test_stop_when_is_asked_once_a_trial_is_complete(tmp_path: Any) -> None:
    """The documented use, a target value reached (study.best_value), on a study that holds
    only queued trials: it was asked before any trial finished, and best_value raised."""
    study = optuna.create_study(study_name="s")
    study.enqueue_trial({"lr": 0.01, "family": "cosine"})
    r = tune(_quad(), n_trials=5, storage=study._storage, study_name="s", seeding="blind",
             stop_when=lambda s: s.best_value < 1e9)  # fmt: skip
    assert r.stop_reason == "stop_when" and len(r.study.trials) == 1


def test_a_copy_that_never_began_its_objective_is_failed_after_twice_the_grace(tmp_path) -> None:
    """A re-queued copy inherits its original's user attrs (its "schedule" too): whether it
    began is told by the trial number its objective records, not by those attrs."""
    import time

    from lrkit.tune._loop import ATTR_BEGAN, _fail_unstarted

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'c.db'}", study_name="c")
    original = study.ask()
    original.set_user_attr("schedule", "constant(lr=0.1)")
    original.set_user_attr(ATTR_BEGAN, original.number)
    copy = study.ask()  # a copy, killed before its objective began: the original's attrs
    copy.set_user_attr("schedule", "constant(lr=0.1)")
    copy.set_user_attr(ATTR_BEGAN, original.number)
    time.sleep(0.25)
    assert _fail_unstarted(study, 0.1) is True
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {original.number: "RUNNING", copy.number: "FAIL"}


def test_a_seed_is_requeued_at_most_max_retry_times_and_not_into_a_finished_study(tmp_path) -> None:
    from lrkit.tune import SearchSpace
    from lrkit.tune._loop import _requeue_interrupted

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'r.db'}", study_name="r")
    space = SearchSpace(families=("onecycle",), lr_range=(1e-4, 1.0), total_steps=100)
    seed = {"lr": 0.01, "family": "onecycle"}

    def fail_next() -> None:
        t = study.ask()
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)

    def waiting() -> int:
        return sum(1 for t in study.get_trials() if t.state.name == "WAITING")

    study.enqueue_trial(seed)
    fail_next()  # the seed's first run fails (killed, Ctrl-C)
    _requeue_interrupted(study, space, max_retry=0, n_trials=5)
    assert waiting() == 0  # no retry allowed
    _requeue_interrupted(study, space, max_retry=1, n_trials=5)
    assert waiting() == 1
    _requeue_interrupted(study, space, max_retry=1, n_trials=5)
    assert waiting() == 1  # queued once: the copy is there
    fail_next()  # the copy fails too
    _requeue_interrupted(study, space, max_retry=1, n_trials=5)
    assert waiting() == 0  # retried once already, in any run
    _requeue_interrupted(study, space, max_retry=None, n_trials=5)
    assert waiting() == 1  # unlimited retries
    fail_next()
    for _ in range(2):
        t = study.ask()
        study.tell(t.number, 1.0)
    _requeue_interrupted(study, space, max_retry=None, n_trials=2)
    assert waiting() == 0  # the study is finished: nothing is added to it


def test_cli_heartbeat_beyond_a_day_is_a_one_line_error(capsys) -> None:
    from lrkit.cli import main
    from lrkit.tune import MAX_HEARTBEAT, make_storage

    assert main(["tune", "--demo", "--heartbeat", "10000000000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "lrkit tune: error: --heartbeat must be an integer in [1, 86400], got 10000000000"
    assert MAX_HEARTBEAT == 86400
    with pytest.raises(ValueError, match=r"^heartbeat_interval must be an integer in \[1, 86400\]"):
        make_storage("sqlite:///x.db", heartbeat_interval=MAX_HEARTBEAT + 1)


def test_a_grace_period_beyond_30_days_is_a_one_line_error(tmp_path, capsys, monkeypatch) -> None:
    from lrkit.cli import main
    from lrkit.tune import MAX_GRACE, make_storage

    monkeypatch.chdir(tmp_path)
    assert MAX_GRACE == 30 * 86400
    for given in ("2592001", "100000000000000"):
        assert main(["tune", "--demo", "--grace", given]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"lrkit tune: error: --grace must be an integer in [1, 2592000], got {given}"
    with pytest.raises(ValueError, match=r"^grace_period must be an integer in \[1, 2592000\]"):
        make_storage("sqlite:///x.db", grace_period=MAX_GRACE + 1)
    url = f"sqlite:///{tmp_path / 'g.db'}"
    with pytest.raises(ValueError, match=r"^grace_period must be an integer in \[1, 2592000\]"):
        tune(_flat_task(), storage=url, n_trials=1, seeding="blind", grace_period=10**14)
    assert list(tmp_path.iterdir()) == []  # refused before any database was made
    make_storage("sqlite:///x.db", grace_period=MAX_GRACE)


def _flat_task() -> Task:
    return Task(name="flat", train=_flat, total_steps=100)


def test_a_read_only_database_is_a_one_line_storage_error(tmp_path) -> None:
    """Optuna wraps the failed commit in its StorageInternalError; the database's complaint
    is what the one-line error gives."""
    path = tmp_path / "ro.db"
    optuna.create_study(storage=f"sqlite:///{path}", study_name="old")
    url = f"sqlite:///file:{path}?mode=ro&uri=true"
    with pytest.raises(ValueError) as info:
        tune(_flat_task(), storage=url, n_trials=1, seeding="blind", study_name="new")
    assert str(info.value) == (
        f"storage {url}: cannot use the database: it cannot be written (attempt to write a "
        "readonly database); the URL opens it read-only (mode=ro)"
    )


# ------------------------------------------------------------- a database that cannot be written


@contextlib.contextmanager
def _unwritable(path: Path, what: str) -> Iterator[None]:
    """The SQLite file ``path`` made read-only (``what="file"``: mode 0444), or its folder
    (``"folder"``: mode 0555; SQLite then cannot create the journal beside the file, and
    fails only at its first real write). Root writes whatever the modes (CAP_DAC_OVERRIDE):
    as root on Linux, this thread lowers that capability and CAP_DAC_READ_SEARCH from its
    effective set meanwhile (they stay permitted and are raised again after), so that the
    modes bind as they do for any other user; skipped where they still do not."""
    import ctypes
    import os

    target = path if what == "file" else path.parent
    mode = target.stat().st_mode
    caps = None
    if hasattr(os, "geteuid") and os.geteuid() == 0 and sys.platform.startswith("linux"):

        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        class Data(ctypes.Structure):
            _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]

        libc = ctypes.CDLL(None, use_errno=True)
        header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
        if libc.capget(ctypes.byref(header), data) == 0:
            caps = (libc, header, data, data[0].effective)
    target.chmod(0o444 if what == "file" else 0o555)
    try:
        if caps is not None:
            libc, header, data, effective = caps
            data[0].effective = effective & ~0b110  # CAP_DAC_OVERRIDE (1), CAP_DAC_READ_SEARCH (2)
            libc.capset(ctypes.byref(header), data)
        try:  # do the modes bind?
            if what == "file":
                path.open("r+b").close()
            else:
                (target / "probe").touch()
                (target / "probe").unlink()
        except PermissionError:
            pass
        else:
            pytest.skip(f"a {what} of mode {oct(target.stat().st_mode & 0o777)} stays writable "
                        "for this user (root whose capabilities cannot be lowered)")  # fmt: skip
        yield
    finally:
        if caps is not None:
            libc, header, data, effective = caps
            data[0].effective = effective
            assert libc.capset(ctypes.byref(header), data) == 0
        target.chmod(mode)


def _watched_task(calls: list[str]) -> Task:
    def train(schedule: S.Schedule, report: Any) -> float:
        calls.append("train")
        return 1.0

    def range_test() -> tuple[float, float]:
        calls.append("range_test")
        return (1e-3, 1.0)

    return Task(name="flat", train=train, total_steps=100, range_test=range_test)


def _stored(path: Path) -> tuple[str, dict[str, Any], list[tuple[Any, ...]]]:
    """What the SQLite file ``path`` holds: its bytes' digest, and study ``s`` read back
    (through a read-only URL: reading cannot change it)."""
    import hashlib

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    study = optuna.load_study(study_name="s", storage=f"sqlite:///file:{path}?mode=ro&uri=true")
    trials = [
        (t.number, t.state, t.values, t.params, t.user_attrs, t.system_attrs,
         t.intermediate_values, t.datetime_start, t.datetime_complete)
        for t in study.trials
    ]  # fmt: skip
    return digest, dict(study.user_attrs), trials


#: How a database that cannot be written is opened: an SQLite URI with ``mode=ro`` (works for
#: every user, root included), a file of mode 0444, a file in a folder of mode 0555.
READ_ONLY = ("uri", "file", "folder")


def _read_only(path: Path, how: str) -> tuple[str, Any]:
    """The storage URL of ``path`` opened the way ``how`` says, and the context to use it in."""
    if how == "uri":
        return f"sqlite:///file:{path}?mode=ro&uri=true", contextlib.nullcontext()
    return f"sqlite:///{path}", _unwritable(path, how)


def _hint(how: str) -> str:
    if how == "uri":
        return "; the URL opens it read-only (mode=ro)"
    return "; SQLite needs write access to the file and to its folder (for its journal)"


@pytest.mark.parametrize("how", READ_ONLY)
def test_continuing_a_study_in_a_database_that_cannot_be_written_fails_before_any_trial(
    tmp_path: Path, how: str
) -> None:
    """Reading the study works, and creating Optuna's trial would be the first write: it
    failed there, as a lost connection. The database is asked up front (a write rolled back),
    and the study's trials and the file are left bit-identical."""
    (tmp_path / "store").mkdir()
    path = tmp_path / "store" / "ro.db"
    calls: list[str] = []
    tune(_watched_task(calls), storage=f"sqlite:///{path}", study_name="s", n_trials=2,
         seeding="blind", seed=0)  # fmt: skip
    assert calls == ["train", "train"]
    calls.clear()
    before = _stored(path)
    url, context = _read_only(path, how)
    with context, pytest.raises(ValueError) as info:
        tune(_watched_task(calls), storage=url, study_name="s", n_trials=4, seeding="blind",
             seed=0)  # fmt: skip
    msg = str(info.value)
    assert msg.startswith(f"storage {url}: cannot use the database: it cannot be written (")
    assert msg.endswith(_hint(how)) and "\n" not in msg
    assert calls == []  # neither the range test nor a trial ran
    assert _stored(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["ro.db"]  # no journal left


@pytest.mark.parametrize("how", ("uri", "folder"))
def test_a_database_that_cannot_be_written_can_still_be_read(tmp_path: Path, how: str) -> None:
    from lrkit.tune import check_writable, make_storage

    (tmp_path / "store").mkdir()
    path = tmp_path / "store" / "ro.db"
    tune(_flat_task(), storage=f"sqlite:///{path}", study_name="s", n_trials=2, seeding="blind")
    before = _stored(path)
    url, context = _read_only(path, how)
    with context:
        st = make_storage(url)  # only tune() refuses it: it writes
        study = optuna.load_study(study_name="s", storage=st)
        assert [t.state for t in study.trials] == [TS.COMPLETE, TS.COMPLETE]
        assert study.best_value == 1.0 and "lrkit.space" in study.user_attrs
        assert [s.study_name for s in optuna.get_all_study_summaries(st)] == ["s"]
        for storage in (url, st):
            with pytest.raises(ValueError, match=r": it cannot be written \("):
                check_writable(storage)
    assert _stored(path) == before


def test_the_write_check_changes_nothing_and_creates_nothing(tmp_path: Path) -> None:
    from lrkit.tune import check_writable, make_storage

    new = tmp_path / "new.db"
    check_writable(f"sqlite:///{new}")  # nothing to ask yet: tune() creates it
    assert not new.exists()
    check_writable("postgresql://u:pw@127.0.0.1:1/db")  # a server is asked only by tune()
    check_writable(None)  # in memory, and any other storage but Optuna's RDBStorage: not asked
    check_writable(optuna.storages.InMemoryStorage())
    path = tmp_path / "rw.db"
    url = f"sqlite:///{path}"
    tune(_flat_task(), storage=url, study_name="s", n_trials=2, seeding="blind")
    before = _stored(path)
    check_writable(url)
    check_writable(make_storage(url))
    assert _stored(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rw.db"]  # no journal left
    empty = tmp_path / "empty.db"  # an SQLite file without Optuna's tables: not asked
    empty.write_bytes(b"")
    check_writable(f"sqlite:///{empty}")
    assert empty.read_bytes() == b""


def test_the_write_check_names_the_url_it_is_given(tmp_path: Path) -> None:
    """make_storage may add a driver to the URL given: the message names the one given."""
    from lrkit.tune import check_writable

    path = tmp_path / "ro.db"
    optuna.create_study(storage=f"sqlite:///{path}", study_name="old")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = optuna.storages.RDBStorage(f"sqlite:///file:{path}?mode=ro&uri=true")
    why = "it cannot be written (attempt to write a readonly database)"
    with pytest.raises(ValueError) as info:
        check_writable(storage, url="sqlite:///shown.db?mode=ro")
    assert str(info.value) == (
        f"storage sqlite:///shown.db?mode=ro: cannot use the database: {why}; the URL opens it "
        "read-only (mode=ro)"
    )
    with pytest.raises(ValueError) as info:
        check_writable(storage)
    assert str(info.value).startswith(f"storage sqlite:///file:{path}?mode=ro&uri=true: ")


@pytest.fixture
def watched_module(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    source = """
            from lrkit.tune import Task

            CALLS = []

            def make():
                CALLS.append("make")

                def train(schedule, report):
                    CALLS.append("train")
                    return 1.0

                return Task(train=train, total_steps=20)
"""
    yield from _task_module(tmp_path, monkeypatch, "watchedtasks", source)


@pytest.mark.parametrize("how", ("uri", "folder"))
def test_cli_continuing_a_study_in_a_database_that_cannot_be_written_is_one_line_at_once(
    watched_module: str, tmp_path: Path, capsys, how: str
) -> None:  # type: ignore[no-untyped-def]
    """Exit code 2 and one line, before the target's code runs (not a lost connection at
    the first trial, exit code 1)."""
    from lrkit.cli import main

    (tmp_path / "store").mkdir()
    path = tmp_path / "store" / "ro.db"
    argv = ["tune", f"{watched_module}:make", "--trials", "1", "--seeding", "blind", "--study",
            "s", "--no-progress", "--plot", "none", "--storage"]  # fmt: skip
    assert main([*argv, f"sqlite:///{path}"]) == 0
    calls = sys.modules[watched_module].CALLS
    assert calls == ["make", "train"]
    calls.clear()
    capsys.readouterr()
    before = _stored(path)
    url, context = _read_only(path, how)
    with context:
        rc = main([*argv, url, "--trials", "2"])
    out, err = capsys.readouterr()
    assert (rc, out, calls) == (2, "", [])  # the target was not even called
    assert err.startswith(
        f"lrkit tune: error: storage {url}: cannot use the database: it cannot be written ("
    )
    assert err.endswith(_hint(how) + "\n") and err.count("\n") == 1
    assert _stored(path) == before


def test_a_database_of_another_optuna_schema_is_a_one_line_storage_error(tmp_path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    optuna.create_study(storage=f"sqlite:///{path}", study_name="s")
    with sqlite3.connect(path) as con:
        con.execute("update alembic_version set version_num='v3.0.0.a'")
    url = f"sqlite:///{path}"
    with pytest.raises(ValueError) as info:
        tune(_flat_task(), storage=url, n_trials=1, seeding="blind", study_name="s")
    msg = str(info.value)
    assert msg.startswith(f"storage {url}: cannot use the database: ") and "\n" not in msg
    assert "optuna storage upgrade" in msg


def test_a_study_name_optuna_cannot_store_is_refused_before_any_work(tmp_path) -> None:
    from lrkit.cli import main
    from lrkit.tune import MAX_STUDY_NAME

    assert MAX_STUDY_NAME == 512
    with pytest.raises(ValueError, match=r"^study_name must be at most 512 characters .*got 600$"):
        tune(_flat_task(), storage=None, n_trials=1, seeding="blind", study_name="a" * 600)
    tune(_flat_task(), storage=None, n_trials=1, seeding="blind", study_name="a" * 512)
    assert main(["tune", "--demo", "--study", "b" * 513, "--storage",
                 f"sqlite:///{tmp_path / 'n.db'}"]) == 2  # fmt: skip
    assert not (tmp_path / "n.db").exists()


def test_a_study_name_utf8_cannot_write_is_refused_before_any_work(tmp_path, capsys) -> None:
    """A name read in an ASCII locale holds the bytes it could not decode as lone
    surrogates: refused in one line naming it, before the range test or any file."""
    from lrkit.cli import main

    undecodable = "\udcc3\udca9tude"  # "étude" read as ASCII
    with pytest.raises(ValueError, match=r"^study_name must be text UTF-8 can write, got "):
        tune(_flat_task(), storage=None, n_trials=1, seeding="blind", study_name=undecodable)
    db = tmp_path / "u.db"
    assert main(["tune", "--demo", "--study", undecodable, "--storage", f"sqlite:///{db}"]) == 2
    assert capsys.readouterr().err == (
        "lrkit tune: error: --study must be text UTF-8 can write, got '\\udcc3\\udca9tude' "
        "(bytes the locale could not decode: run with a UTF-8 locale, e.g. LC_ALL=C.UTF-8, or "
        "PYTHONUTF8=1)\n"
    )
    assert not db.exists()


def test_the_default_plot_name_of_a_long_study_stays_short(tmp_path, monkeypatch) -> None:
    from lrkit.commands.tune import _default_plot

    monkeypatch.chdir(tmp_path)
    long_name = "a" * 300
    name = _default_plot(long_name)
    assert len(name) < 120 and name.startswith("lrkit-tune-" + "a" * 80 + "-")
    assert name != _default_plot("a" * 299)  # a digest of the whole name tells them apart
    assert _default_plot("my study") == "lrkit-tune-my-study.png"


# ----------------------------------------------------------------------------- records kept


def test_a_trial_that_never_began_is_failed_only_after_twice_the_grace_period() -> None:
    """A RUNNING trial that has not begun its objective is left alone up to ``2 * grace``
    seconds after it was created, and failed after that."""
    import datetime

    from lrkit.tune._loop import _fail_unstarted

    study = optuna.create_study(study_name="aged")
    young, old = study.ask(), study.ask()
    now = datetime.datetime.now()
    created = {
        young.number: now - datetime.timedelta(seconds=15),
        old.number: now - datetime.timedelta(seconds=25),
    }

    class Aged:  # the study as a worker reads it: its trials created 15 s and 25 s ago
        def get_trials(self, deepcopy: bool, states: Any) -> list[Any]:
            trials = study.get_trials(deepcopy=True, states=states)
            for t in trials:
                t.datetime_start = created[t.number]
            return trials

        def tell(self, number: int, state: Any) -> Any:
            return study.tell(number, state=state)

    assert _fail_unstarted(Aged(), 10) is True
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {young.number: "RUNNING", old.number: "FAIL"}
    assert _fail_unstarted(Aged(), 10) is False  # nothing else to fail


def test_a_seeded_rerun_samples_as_a_new_study_seeded_with_the_seed_and_its_trial_count() -> None:
    """The second run of a seeded search on a study of 3 trials draws the LRs a new study
    seeded with ``SeedSequence((seed, 3))`` draws, not those of its first run again."""
    from lrkit.tune._loop import _sampler_seed

    kw: dict[str, Any] = {
        "seeding": "blind",
        "pruner": "none",
        "families": ("constant",),
        "startup_trials": 50,
    }
    st = _shared("again")
    first = tune(Task(train=_flat, total_steps=20), n_trials=3, storage=st, study_name="again",
                 seed=7, **kw)  # fmt: skip
    old = _lrs(first)
    second = tune(Task(train=_flat, total_steps=20), n_trials=6, storage=st, study_name="again",
                  seed=7, **kw)  # fmt: skip
    combined = int(np.random.SeedSequence((7, 3)).generate_state(1)[0])
    assert _sampler_seed(7, 3) == combined
    fresh = tune(Task(train=_flat, total_steps=20), n_trials=3, seed=combined, **kw)
    assert _lrs(second)[:3] == old
    assert _lrs(second)[3:] == _lrs(fresh)
    assert _lrs(fresh) != old


def test_a_new_study_records_its_space_interval_seeding_and_total_steps() -> None:
    task = Task(train=_flat, total_steps=20, name="flat")
    r = tune(task, n_trials=2, seeding=(0.01, 0.1), families=("constant",), seed=0)
    assert r.study.user_attrs == {
        "lrkit.space": {
            "families": ["constant"],
            "seeding": [0.01, 0.1],
            "total_steps": 20,
            "task": "flat",
        },
        "lrkit.lr_range": [0.01, 0.1],
        "lrkit.seeding": "given",
        "lrkit.finder": None,
        "lrkit.total_steps": 20,
    }


@pytest.mark.parametrize("value", [0, -3])
def test_a_study_recording_no_positive_total_steps_is_refused(tmp_path: Path, value: int) -> None:
    url = f"sqlite:///{tmp_path / 'z.db'}"
    task = Task(train=lambda s, rep: 1.0, total_steps=20)
    tune(task, n_trials=1, storage=url, study_name="z", seeding="blind", seed=0)
    optuna.load_study(study_name="z", storage=url).set_user_attr("lrkit.total_steps", value)
    with pytest.raises(ForeignStudyError) as info:
        tune(task, n_trials=2, storage=url, study_name="z", seeding="blind", seed=0)
    assert str(info.value) == (
        f"study_name 'z' in storage {url} holds a user attr 'lrkit.total_steps' ({value}) that "
        "is not lrkit's record; lrkit leaves this study as it is: give another study_name for "
        "a new study"
    )
    assert len(optuna.load_study(study_name="z", storage=url).trials) == 1


def test_the_default_cap_on_started_trials_is_ten_times_n_trials_or_fifty_more() -> None:
    """Every trial diverging, a run starts ``max(10 * n_trials, n_trials + 50)`` trials."""
    task = Task(train=lambda s, rep: math.nan, total_steps=20)
    with pytest.warns(TuneWarning, match=r"max_trials=52 trials"):
        r = tune(task, n_trials=2, seeding="blind", pruner="none", seed=0)
    assert r.max_trials == 52 and r.stop_reason == "max_trials"
    assert len(r.study.trials) == 52
    assert tune(_flat_task(), n_trials=6, seeding="blind", seed=0).max_trials == 60


def test_a_started_study_keeps_its_blind_fallback_though_no_trial_sampled_an_lr() -> None:
    """A study whose one started trial was dropped (queued outside its space: no parameters
    sampled) has started: a later run searches its blind fallback interval, no range test."""
    st = _shared("dropped")
    optuna.load_study(study_name="dropped", storage=st).enqueue_trial({"lr": 0.5, "family": "wsd"})
    first = Task(train=_flat, total_steps=20, range_test=lambda: _NoCurve())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r1 = tune(first, n_trials=1, max_trials=1, storage=st, study_name="dropped",
                  families=("constant",), seed=0)  # fmt: skip
    notes = [str(w.message) for w in caught]
    assert any("no usable interval" in n for n in notes)
    assert any("queued with lr=0.5, family='wsd', lies outside" in n for n in notes)
    assert [(t.state.name, t.params) for t in r1.study.trials] == [("PRUNED", {})]
    ran: list[int] = []
    works = Task(train=_flat, total_steps=20, range_test=lambda: ran.append(1) or (1e-3, 1.0))
    r2 = tune(works, n_trials=1, storage=st, study_name="dropped", families=("constant",), seed=0)
    assert ran == []
    assert r2.lr_range == BLIND_LR_RANGE and r2.seeding == "blind"
    assert r2.study.trials[-1].distributions["lr"].low == BLIND_LR_RANGE[0]


@pytest.mark.parametrize("name, url", [("a b.db", "sqlite:///{d}/a%20b.db"),
                                       ("u.db", "sqlite:///file:{d}/u.db?uri=true")])  # fmt: skip
def test_an_empty_file_opened_before_a_range_test_that_raises_is_left_empty(
    tmp_path: Path, name: str, url: str
) -> None:
    """A percent-encoded path or an SQLite URI (no probe file stands for them) is opened
    before the range test: when the test raises, the empty file is empty again."""

    def range_test() -> Any:
        raise RuntimeError("out of memory")

    (tmp_path / name).write_bytes(b"")
    url = url.format(d=tmp_path)
    task = Task(train=_flat, total_steps=20, range_test=range_test)
    with pytest.raises(RuntimeError, match="^out of memory$"):
        tune(task, storage=url, study_name="s", n_trials=1)
    assert [(p.name, p.stat().st_size) for p in tmp_path.iterdir()] == [(name, 0)]


def test_a_study_another_worker_stored_in_the_new_file_during_a_failed_range_test_is_kept(
    tmp_path: Path,
) -> None:
    """The new file opened before the range test is not taken back when another worker
    created a study in it meanwhile: that study and its trials stay."""
    url = f"sqlite:///{tmp_path}/a%20b.db"

    def range_test() -> Any:
        tune(_flat_task(), storage=url, study_name="other", n_trials=1, seeding="blind", seed=0)
        raise RuntimeError("out of memory")

    task = Task(train=_flat, total_steps=20, range_test=range_test)
    with pytest.raises(RuntimeError, match="^out of memory$"):
        tune(task, storage=url, study_name="s", n_trials=1)
    kept = optuna.load_study(study_name="other", storage=url)
    assert [t.state for t in kept.trials] == [TS.COMPLETE]
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["other"]


def test_a_table_creation_race_is_tried_six_times_then_one_line(tmp_path, monkeypatch) -> None:
    from lrkit.tune import _storage

    real = optuna.storages.RDBStorage
    calls: list[str] = []
    waits: list[float] = []

    def loses(times: int) -> Any:
        def create(*a: Any, **k: Any) -> Any:
            calls.append("create")
            if len(calls) <= times:
                raise _operational("table studies already exists")
            return real(*a, **k)

        return create

    monkeypatch.setattr(_storage, "time", SimpleNamespace(sleep=waits.append))
    monkeypatch.setattr(optuna.storages, "RDBStorage", loses(5))
    st = _storage.make_storage(f"sqlite:///{tmp_path / 'five.db'}")
    assert isinstance(st, real) and len(calls) == 6 and len(waits) == 5
    calls.clear()
    monkeypatch.setattr(optuna.storages, "RDBStorage", loses(6))
    url = f"sqlite:///{tmp_path / 'six.db'}"
    with pytest.raises(ValueError) as info:
        _storage.make_storage(url)
    assert str(info.value) == (
        f"storage {url}: cannot use the database: table studies already exists"
    )
    assert len(calls) == 6


@pytest.mark.parametrize("n_trials, startup", [(5, 3), (20, 4)])
def test_the_default_number_of_random_startup_trials_is_a_fifth_of_n_trials_at_least_three(
    n_trials: int, startup: int
) -> None:
    kw: dict[str, Any] = {"seeding": "blind", "pruner": "none", "families": ("constant",)}

    def lrs(**more: Any) -> list[float]:
        task = Task(train=_flat, total_steps=20)
        return _lrs(tune(task, n_trials=n_trials, seed=3, **kw, **more))

    default = lrs()
    assert default == lrs(startup_trials=startup)
    assert default != lrs(startup_trials=startup - 1)
    assert default != lrs(startup_trials=startup + 1)


def test_a_url_typo_whose_password_holds_an_at_is_shown_from_its_last_at() -> None:
    with pytest.raises(ValueError) as info:
        check_storage("postgresql:/alice:pa@ss@dbhost:5432/db")
    assert str(info.value) == (
        "storage must be a database URL such as sqlite:///lrkit-tune.db or "
        "postgresql://user@host:5432/db, got '***@dbhost:5432/db'"
    )


@pytest.mark.parametrize("error", ["IntegrityError", "ProgrammingError"])
def test_a_duplicate_key_or_table_while_creating_tables_is_retried(
    tmp_path, monkeypatch, error: str
) -> None:
    """Another worker created Optuna's tables or their first rows first (PostgreSQL: a
    duplicate key, a relation that already exists): tried again."""
    import sqlalchemy.exc

    from lrkit.tune import _storage

    real = optuna.storages.RDBStorage
    calls: list[str] = []

    def first_loses_the_race(*a: Any, **k: Any) -> Any:
        calls.append("create")
        if len(calls) == 1:
            raise getattr(sqlalchemy.exc, error)("CREATE TABLE studies", {}, Exception("dup"))
        return real(*a, **k)

    monkeypatch.setattr(optuna.storages, "RDBStorage", first_loses_the_race)
    monkeypatch.setattr(_storage, "time", SimpleNamespace(sleep=lambda s: None))
    st = _storage.make_storage(f"sqlite:///{tmp_path / 'dup.db'}")
    assert isinstance(st, real) and calls == ["create", "create"]


@pytest.mark.parametrize("flag", ["true", "1", "on", "yes"])
def test_an_sqlite_uri_flagged_by_any_true_value_keeps_its_mode(tmp_path, flag: str) -> None:
    url = f"sqlite:///file:{tmp_path / 'x.db'}?mode=ro&uri={flag}"
    assert check_storage(url) == url
    with pytest.raises(ValueError, match=r"SQLite reads mode=ro only in its URI form"):
        check_storage(f"sqlite:///file:{tmp_path / 'x.db'}?mode=ro&uri=0")


@pytest.mark.parametrize(
    "complaint, sqlstate",
    [
        ("permission denied for schema public", None),
        ("CREATE command denied to user 'u'@'h' for table 'studies'", None),  # MySQL
        ("cannot execute CREATE TABLE in a read-only transaction", None),
        # a server answering in another language: told by its SQLSTATE
        ("FEHLER: keine Berechtigung für Schema public", "42501"),
        ("FEHLER: kann CREATE TABLE nicht in einer Read-only-Transaktion ausführen", "25006"),
    ],
)
def test_a_grant_missing_while_creating_tables_is_not_retried(
    tmp_path, monkeypatch, complaint: str, sqlstate: str | None
) -> None:
    """A ProgrammingError that says permission denied is no race with another worker: one
    try, then a one-line error with the database's complaint."""
    import sqlalchemy.exc

    orig = Exception(complaint)
    orig.pgcode = sqlstate  # type: ignore[attr-defined]
    denied = sqlalchemy.exc.ProgrammingError("CREATE TABLE studies", {}, orig)
    url, message, calls = _refused_creating(tmp_path, monkeypatch, denied)
    assert message == f"storage {url}: cannot use the database: {complaint}"
    assert calls == ["create"]


@pytest.mark.parametrize("max_retry, copies", [(0, 0), (1, 1)])
def test_max_retry_decides_whether_a_stale_trial_gets_a_copy(
    tmp_path, max_retry: int, copies: int
) -> None:
    from lrkit.tune import make_storage

    storage = make_storage(f"sqlite:///{tmp_path / 'r.db'}", max_retry=max_retry)
    study = optuna.create_study(storage=storage)
    with warnings.catch_warnings():  # Optuna: a heartbeat is meant for Study.optimize
        warnings.simplefilter("ignore")
        study.tell(study.ask(), state=TS.FAIL)
    storage.get_heartbeat_stale_trial_callback()(study, study.trials[0])
    assert [t.state for t in study.trials] == [TS.FAIL] + [TS.WAITING] * copies


def test_the_default_heartbeat_is_named_when_the_grace_period_is_too_short(tmp_path) -> None:
    from lrkit.tune import make_storage

    url = f"sqlite:///{tmp_path / 'hb.db'}"
    with pytest.raises(ValueError) as info:
        make_storage(url, grace_period=10)
    assert str(info.value).endswith("grace_period 10 <= heartbeat_interval 10 (the default)")
    with pytest.raises(ValueError) as info:
        make_storage(url, heartbeat_interval=10, grace_period=10)
    assert str(info.value).endswith("grace_period 10 <= heartbeat_interval 10")
    assert make_storage(None, max_retry=0) is None  # no retry at all is a choice too
    assert not (tmp_path / "hb.db").exists()


def test_optunas_first_read_denied_is_a_database_that_cannot_be_written(
    tmp_path, monkeypatch
) -> None:
    """Optuna wraps the denied read of its tables in its own error: a grant missing is said
    as a database that cannot be written, in one line; another wrapped error is Optuna's."""
    import sqlalchemy.exc

    from lrkit.tune import make_storage

    def wrapped(complaint: str) -> Exception:
        cause = sqlalchemy.exc.ProgrammingError("SELECT", {}, Exception(complaint))
        try:
            raise optuna.exceptions.StorageInternalError("commit failed") from cause
        except optuna.exceptions.StorageInternalError as exc:
            return exc

    url, message, calls = _refused_creating(
        tmp_path, monkeypatch, wrapped("permission denied for table version_info")
    )
    assert message == (
        f"storage {url}: cannot use the database: it cannot be written (permission denied for "
        "table version_info); SQLite needs write access to the file and to its folder (for its "
        "journal)"
    )
    assert calls == ["create"]
    other = wrapped("server closed the connection unexpectedly")

    def lost(*a: Any, **k: Any) -> Any:
        raise other

    monkeypatch.setattr(optuna.storages, "RDBStorage", lost)
    with pytest.raises(optuna.exceptions.StorageInternalError) as info:
        make_storage(url)
    assert info.value is other


def test_the_grace_period_defaults_to_three_heartbeats(tmp_path) -> None:
    from lrkit.tune import make_storage

    url = f"sqlite:///{tmp_path / 'hb.db'}"
    storage = make_storage(url)
    assert (storage.heartbeat_interval, storage.grace_period) == (10, 30)
    storage = make_storage(url, heartbeat_interval=4)
    assert (storage.heartbeat_interval, storage.grace_period) == (4, 12)
    storage = make_storage(url, grace_period=11)
    assert (storage.heartbeat_interval, storage.grace_period) == (10, 11)


def test_a_url_sqlalchemy_cannot_parse_is_one_line_without_its_password() -> None:
    with pytest.raises(ValueError) as info:
        check_storage("post gres://alice:Secret9pw@h/db")
    assert str(info.value).startswith(
        "storage post gres://alice:***@h/db: not a URL SQLAlchemy can read ("
    )
    assert "Secret9pw" not in str(info.value)


def test_a_url_complaint_that_repeats_the_url_is_shown_without_its_password(
    monkeypatch,
) -> None:
    """SQLAlchemy 1.4 named the URL it could not parse in its complaint: the password there
    is masked too."""
    import sqlalchemy.engine
    import sqlalchemy.exc

    def repeats(url: str) -> Any:
        raise sqlalchemy.exc.ArgumentError(f"Could not parse rfc1738 URL from string '{url}'")

    monkeypatch.setattr(sqlalchemy.engine, "make_url", repeats)
    with pytest.raises(ValueError) as info:
        check_storage("postgresql://alice:Secret9pw@h/db")
    assert str(info.value) == (
        "storage postgresql://alice:***@h/db: not a URL SQLAlchemy can read (Could not parse "
        "rfc1738 URL from string 'postgresql://alice:***@h/db')"
    )


@pytest.mark.parametrize(
    "query, named, them",
    [
        ("immutable=1", "immutable=1", "it and open the database for writing"),
        ("Mode=ro", "Mode=ro", "it and open the database for writing"),
        ("cache=shared&nolock=1", "cache=shared and nolock=1", "them"),
    ],
)
def test_an_sqlite_uri_argument_in_a_plain_url_is_refused_saying_what_would_happen(
    query: str, named: str, them: str
) -> None:
    url = f"sqlite:///q.db?{query}"
    with pytest.raises(ValueError) as info:
        check_storage(url)
    assert str(info.value) == (
        f"storage {url}: SQLite reads {named} only in its URI form "
        f"(sqlite:///file:q.db?{query}&uri=true); in this URL SQLAlchemy would ignore {them}"
    )


def test_the_last_uri_flag_of_an_sqlite_url_is_the_one_read() -> None:
    url = "sqlite:///file:q.db?mode=ro&uri=0&uri=true"
    assert check_storage(url) == url


def test_a_named_psycopg2_driver_missing_names_the_extra() -> None:
    from lrkit.tune._storage import storage_error

    missing = ModuleNotFoundError("No module named 'psycopg2'", name="psycopg2")
    msg = str(storage_error(missing, "postgresql+psycopg2://u:s3cret@h/db"))
    assert msg == (
        "storage postgresql+psycopg2://u:***@h/db: cannot use the database: a PostgreSQL "
        "storage needs psycopg2: pip install 'lrkit[tune]' (No module named 'psycopg2')"
    )


def test_a_lost_connection_whose_complaint_repeats_the_url_masks_its_password() -> None:
    from lrkit.tune._storage import lost_connection

    url = "postgresql://u:Secret9pw@h/db"
    lost = _operational(f"could not reach {url}")
    e = lost_connection(lost, url, again="run it again")
    assert str(e) == (
        "storage postgresql://u:***@h/db: lost the database connection: could not reach "
        "postgresql://u:***@h/db; the trials already finished stay in the study: run it again "
        "to continue"
    )
    assert e.lost is lost


def test_a_new_sqlite_file_in_a_folder_that_cannot_be_written_is_refused(
    tmp_path, monkeypatch
) -> None:
    import os

    real = os.access
    folder = str(tmp_path / "ro")
    os.mkdir(folder)

    def access(path: Any, mode: int, **kw: Any) -> bool:  # readable, but not writable
        return not (path == folder and mode & os.W_OK) and real(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    url = f"sqlite:///{folder}/x.db"
    with pytest.raises(ValueError) as info:
        check_storage(url)
    assert str(info.value) == f"storage {url}: the folder {folder!r} is not writable"
    assert check_storage(f"sqlite:///{tmp_path}/x.db") == f"sqlite:///{tmp_path}/x.db"


def test_a_file_that_is_not_a_database_is_refused_by_the_file_check(tmp_path: Path) -> None:
    from lrkit.tune._storage import check_optuna_file

    path = tmp_path / "notes.db"
    path.write_bytes(b"plain text, not an SQLite database\n" * 40)
    url = f"sqlite:///{path}"
    with pytest.raises(ValueError) as info:
        check_optuna_file(url)
    assert str(info.value) == f"storage {url}: cannot use the database: file is not a database"


def test_a_new_sqlite_file_in_a_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nope' / 'x.db'}"
    with pytest.raises(ValueError) as info:
        check_storage(url, name="--storage")
    assert str(info.value) == (
        f"--storage {url}: the folder {str(tmp_path / 'nope')!r} does not exist"
    )
    assert not (tmp_path / "nope").exists()


def test_a_lost_database_error_round_trips_through_pickle() -> None:
    import pickle

    from lrkit.tune import DatabaseLostError

    e = DatabaseLostError("storage sqlite:///x.db: lost the database connection", OSError("gone"))
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is DatabaseLostError and str(back) == str(e)
    assert type(back.lost) is OSError and str(back.lost) == "gone"


def test_a_database_complaint_of_several_lines_is_shown_by_its_first(tmp_path, monkeypatch) -> None:
    locked = _operational("database is locked\n\n  while opening the study tables\n")
    url, message, _ = _refused_creating(tmp_path, monkeypatch, locked)
    assert message == f"storage {url}: cannot use the database: database is locked"


def test_a_database_that_cannot_be_written_says_what_sqlite_needs_unless_it_is_locked() -> None:
    from lrkit.tune._storage import _not_writable_error

    url = "sqlite:///x.db"
    assert str(_not_writable_error(_operational("database is locked"), url)) == (
        "storage sqlite:///x.db: cannot use the database: it cannot be written (database is locked)"
    )
    assert str(_not_writable_error(_operational("attempt to write a readonly database"), url)) == (
        "storage sqlite:///x.db: cannot use the database: it cannot be written (attempt to "
        "write a readonly database); SQLite needs write access to the file and to its folder "
        "(for its journal)"
    )
    ro = "sqlite:///file:x.db?mode=ro&uri=true"
    assert str(_not_writable_error(_operational("attempt to write a readonly database"), ro)) == (
        f"storage {ro}: cannot use the database: it cannot be written (attempt to write a "
        "readonly database); the URL opens it read-only (mode=ro)"
    )
    frozen = "sqlite:///file:x.db?immutable=1&uri=true"
    readonly = _operational("attempt to write a readonly database")
    assert str(_not_writable_error(readonly, frozen)) == (
        f"storage {frozen}: cannot use the database: it cannot be written (attempt to write a "
        "readonly database); the URL opens it read-only (immutable=1)"
    )


def test_sqlite_waits_a_minute_for_a_lock_and_a_server_connection_is_checked_first() -> None:
    from lrkit.tune._storage import _engine_kwargs

    assert _engine_kwargs("sqlite:///x.db") == {"connect_args": {"timeout": 60}}
    assert _engine_kwargs("postgresql+psycopg2://u@h/db") == {"pool_pre_ping": True}


@pytest.mark.parametrize("psycopg", [False, True])
@pytest.mark.parametrize("psycopg2", [False, True])
def test_a_postgresql_url_uses_psycopg2_only_when_psycopg_is_missing(
    monkeypatch, psycopg: bool, psycopg2: bool
) -> None:
    from lrkit.tune import _storage

    installed = {"psycopg"} if psycopg else set()
    installed |= {"psycopg2"} if psycopg2 else set()
    monkeypatch.setattr(_storage, "optional", lambda m: sys if m in installed else None)
    for url in ("postgresql://u@h/db", "postgres://u@h/db"):
        expected = "postgresql+psycopg2://u@h/db" if psycopg2 and not psycopg else url
        assert _storage._with_driver(url) == expected
    assert _storage._with_driver("sqlite:///x.db") == "sqlite:///x.db"


def _sqlite_db(path: Path, *statements: str) -> str:
    import sqlite3

    con = sqlite3.connect(path)
    for s in statements:
        con.execute(s)
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def test_a_file_with_a_studies_table_but_no_optuna_version_is_not_a_study_database(
    tmp_path: Path,
) -> None:
    from lrkit.tune._storage import check_optuna_file

    url = _sqlite_db(
        tmp_path / "app.db",
        "CREATE TABLE studies (study_id INTEGER PRIMARY KEY, study_name TEXT)",
        "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT)",
        "INSERT INTO users (name) VALUES ('ann')",
    )
    with pytest.raises(ValueError) as info:
        check_optuna_file(url)
    assert str(info.value) == (
        f"storage {url}: the file is not an Optuna study database (it holds tables that are "
        "not Optuna's: users); lrkit leaves it as it is: choose another file for the study (a "
        "new one, or an Optuna study database)"
    )


def test_views_named_as_optunas_tables_are_not_a_study_database(tmp_path: Path) -> None:
    from lrkit.tune._storage import check_optuna_file

    url = _sqlite_db(
        tmp_path / "views.db",
        "CREATE TABLE runs (study_id INTEGER PRIMARY KEY, study_name TEXT)",
        "CREATE VIEW studies AS SELECT study_id, study_name FROM runs",
        "CREATE VIEW version_info AS SELECT 1 AS version_info_id, 12 AS schema_version",
    )
    with pytest.raises(ValueError) as info:
        check_optuna_file(url)
    assert "(it holds tables that are not Optuna's: runs, studies, version_info)" in str(info.value)


@pytest.mark.parametrize(
    "name, kind",
    [
        ("sha", "SuccessiveHalvingPruner"),
        ("successive_halving", "SuccessiveHalvingPruner"),
        ("median", "MedianPruner"),
        ("percentile", "PercentilePruner"),
        ("none", "NopPruner"),
    ],
)
def test_each_pruner_name_makes_its_optuna_pruner(name: str, kind: str) -> None:
    from lrkit.tune._storage import make_pruner

    assert type(make_pruner(name)) is getattr(optuna.pruners, kind)


def test_the_progress_bar_of_a_study_already_past_n_trials_shows_it_full(capsys) -> None:
    st = _shared("past")
    kw: dict[str, Any] = {"storage": st, "study_name": "past", "seeding": "blind", "seed": 0}
    tune(Task(train=_flat, total_steps=20), n_trials=5, **kw)
    capsys.readouterr()
    r = tune(Task(train=_flat, total_steps=20), n_trials=3, progress=True, **kw)
    err = capsys.readouterr().err
    assert len(r.study.trials) == 5
    assert "lrkit tune: 100%" in err and "3/3" in err and "5/3" not in err


def test_a_database_lost_during_the_run_is_one_value_error_naming_it(tmp_path, monkeypatch) -> None:
    """Optuna's own write fails mid-run (the server went away): one ValueError saying so, with
    the database's complaint, whatever Optuna's clean-up raised on top of it."""
    import sqlalchemy.exc

    from lrkit.tune import make_storage

    url = f"sqlite:///{tmp_path / 'lost.db'}"
    st = make_storage(url)
    real, calls = st.set_trial_state_values, []

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) > 2:  # the second trial's end
            raise sqlalchemy.exc.OperationalError(
                "UPDATE trials", {}, Exception("server closed the connection unexpectedly")
            )
        return real(*args, **kwargs)

    monkeypatch.setattr(st, "set_trial_state_values", failing)
    with pytest.raises(ValueError) as info:
        tune(_flat_task(), storage=st, n_trials=3, seeding="blind", study_name="s")
    assert str(info.value) == (
        f"storage {url}: lost the database connection: server closed the connection "
        "unexpectedly; the trials already finished stay in the study: run tune() again to "
        "continue"
    )
    assert isinstance(info.value.__cause__, sqlalchemy.exc.OperationalError)
    done = optuna.load_study(study_name="s", storage=url).trials
    assert [t.state.name for t in done][:1] == ["COMPLETE"]  # what finished is kept


def test_a_heartbeat_thread_ended_by_the_database_is_one_warning_line(capsys) -> None:
    """Optuna's heartbeat thread meets the database gone: inside tune() that is a TuneWarning,
    not Python's traceback of the thread; another error of that thread, or of another thread,
    goes to the hook there was."""
    import threading

    import sqlalchemy.exc
    from optuna.storages._heartbeat import HeartbeatThread

    from lrkit.tune import TuneWarning
    from lrkit.tune._loop import heartbeat_errors_warned

    class Gone:
        def __init__(self, error: BaseException) -> None:
            self.error = error

        def get_heartbeat_interval(self) -> int:
            return 1

        def record_heartbeat(self, trial_id: int) -> None:
            raise self.error

    def lost() -> BaseException:
        return sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("connection refused"))

    seen: list[str] = []
    before = threading.excepthook

    def mine(args: Any) -> None:
        seen.append(type(args.exc_value).__name__)

    threading.excepthook = mine
    try:
        with warnings.catch_warnings(record=True) as caught, heartbeat_errors_warned():
            warnings.simplefilter("always")
            for error in (lost(), KeyError("other")):
                beat = HeartbeatThread(0, Gone(error))  # type: ignore[arg-type]
                beat.start()
                beat.join()
            other = threading.Thread(target=lambda: (_ for _ in ()).throw(lost()))
            other.start()
            other.join()
        assert threading.excepthook is mine  # put back
    finally:
        threading.excepthook = before
    assert [str(w.message) for w in caught if w.category is TuneWarning] == [
        "the heartbeat of a running trial stopped: the database did not answer (connection "
        "refused); another worker may fail and re-queue the trial"
    ]
    assert seen == ["KeyError", "OperationalError"]


def test_a_database_error_of_the_tasks_own_code_is_the_tasks(tmp_path) -> None:
    """The task's own database (not the study's) raising inside a trial: its error, as it
    was raised, not a lost study database; the study's database error, pickled, keeps its
    message and cause."""
    import pickle

    import sqlalchemy
    import sqlalchemy.exc

    from lrkit.tune import DatabaseLostError

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'own.db'}")

    def train(schedule: Any, report: Any) -> float:
        with engine.connect() as conn:
            return float(conn.execute(sqlalchemy.text("SELECT loss FROM no_such_table")).scalar())

    task = Task(name="own", train=train, total_steps=100)
    for storage in (None, f"sqlite:///{tmp_path / 'study.db'}"):
        with pytest.raises(sqlalchemy.exc.OperationalError, match="no such table"):
            tune(task, n_trials=1, seeding="blind", progress=False, storage=storage)
    lost = sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("server has gone away"))
    error = DatabaseLostError("storage x: lost the database connection", lost)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is DatabaseLostError and str(again) == str(error)
    assert str(again.lost) == str(lost)


def test_runs_overlapping_in_threads_put_the_first_hook_back() -> None:
    import threading

    from lrkit.tune._loop import heartbeat_errors_warned

    before = threading.excepthook
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    hooks: list[Any] = []

    def first() -> None:
        with heartbeat_errors_warned():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with heartbeat_errors_warned():
            second_in.set()
            first_out.wait(10)
            hooks.append(threading.excepthook)  # the first run ended: still in place

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hooks and hooks[0] is not before
    assert threading.excepthook is before


@pytest.mark.parametrize(
    ("lr", "kept"),
    [
        (1e-3 * (1 - 1e-12), True),
        (1.0 * (1 + 1e-12), True),
        (1e-3 * (1 - 1e-6), False),
        (1.0 * (1 + 1e-6), False),
    ],
)
def test_a_queued_trial_at_the_interval_edge_up_to_rounding_is_run_not_dropped(
    lr: float, kept: bool
) -> None:
    """A queued LR beyond the searched interval by a rounding error (a relative 1e-12) is run
    as queued; one beyond it by more (1e-6) is dropped (PRUNED, its parameters kept)."""
    study = optuna.create_study(study_name="edge")
    study.enqueue_trial({"lr": lr, "family": "constant"})
    seen: list[float] = []

    def train(schedule: S.Schedule, report: Any) -> float:
        seen.append(float(schedule(0)))
        return 1.0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna: the fixed value is outside its distribution
        r = tune(Task(train=train, total_steps=20), n_trials=1, storage=study._storage,
                 study_name="edge", seeding=(1e-3, 1.0), families="constant",
                 pruner="none")  # fmt: skip
    first = r.study.trials[0]
    if kept:
        assert first.state == TS.COMPLETE and first.params == {"lr": lr, "family": "constant"}
        assert seen == [lr]
    else:
        assert first.state == TS.PRUNED and first.params == {}
        assert first.user_attrs["dropped"] == "outside the search space"
        assert first.user_attrs["queued_params"] == {"lr": lr, "family": "constant"}
        assert len(seen) == 1 and seen != [lr]


def test_a_blind_fallback_before_any_trial_gives_way_to_a_later_range_test() -> None:
    """A range test that gave no interval leaves the blind one on the study; while no trial
    has started there, the next run's range test that gives one is searched instead."""
    storage = _shared("fallback")
    flat = SimpleNamespace(lrs=np.logspace(-5, 0, 10), losses=np.ones(10), curve=None)
    first = Task(train=_flat, total_steps=20, range_test=lambda: flat)
    with pytest.warns(TuneWarning, match="the range test gave no usable interval"):
        r = tune(first, n_trials=1, storage=storage, study_name="fallback", timeout=1e-9)
    assert r.stop_reason == "timeout" and r.study.trials == []
    assert (r.seeding, r.lr_range) == ("blind", BLIND_LR_RANGE)
    second = Task(train=_flat, total_steps=20, range_test=lambda: (1e-3, 1.0))
    r = tune(second, n_trials=1, storage=storage, study_name="fallback", families="constant")
    assert (r.seeding, r.lr_range) == ("finder", (1e-3, 1.0))
    assert r.study.user_attrs["lrkit.lr_range"] == [1e-3, 1.0]


def test_a_study_database_marked_by_alembic_alone_keeps_its_other_tables(tmp_path: Path) -> None:
    """Optuna's ``studies`` with alembic's ``alembic_version`` (no ``version_info``) is an
    Optuna study database: a table of its own beside them is left alone, not refused."""
    import sqlite3

    from lrkit.tune import check_writable

    path = tmp_path / "alembic.db"
    with contextlib.closing(sqlite3.connect(path)) as con:
        con.execute("CREATE TABLE studies (study_id INTEGER PRIMARY KEY, study_name TEXT)")
        con.execute("CREATE TABLE alembic_version (version_num TEXT)")
        con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
        con.commit()
    check_writable(f"sqlite:///{path}")
    path.unlink()
    with contextlib.closing(sqlite3.connect(path)) as con:
        con.execute("CREATE TABLE studies (study_id INTEGER PRIMARY KEY, study_name TEXT)")
        con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
        con.commit()
    with pytest.raises(ValueError, match=r"tables that are not Optuna's: notes\)"):
        check_writable(f"sqlite:///{path}")


def _requeue_case(max_retry: Any, build: Any) -> int:
    """The trials waiting after ``_requeue_interrupted`` on a study ``build`` prepared."""
    from lrkit.tune._loop import _requeue_interrupted
    from lrkit.tune._space import SearchSpace

    study = optuna.create_study()
    build(study)
    space = SearchSpace(100, lr_range=(1e-3, 1.0), families=("constant",))
    _requeue_interrupted(study, space, max_retry=max_retry, n_trials=10)
    return sum(t.state == TS.WAITING for t in study.trials)


POINT = {"lr": 0.01, "family": "constant"}


def test_a_failed_seed_whose_copy_was_dropped_as_a_duplicate_is_queued_again() -> None:
    def build(study: Any) -> None:
        for _ in range(2):  # two workers starting together each queued the seed
            study.enqueue_trial(POINT, user_attrs={SEED_ATTR: True})
        a, b = study.ask(), study.ask()
        b.set_user_attr("dropped", "a copy of an earlier queued trial")
        study.tell(b, state=TS.PRUNED)
        study.tell(a, state=TS.FAIL)  # the original, stopped

    assert _requeue_case(None, build) == 1


def test_max_retry_counts_the_failures_of_each_queued_copy_on_its_own() -> None:
    def build(study: Any) -> None:
        for _ in range(2):  # two runs of one point the user queued, each stopped once
            study.enqueue_trial(POINT)
        a, b = study.ask(), study.ask()
        study.tell(a, state=TS.FAIL)
        study.tell(b, state=TS.FAIL)

    assert _requeue_case(1, build) == 2  # each failed once: each is queued again
    assert _requeue_case(0, build) == 0

    def chain(study: Any) -> None:  # one copy re-queued and stopped again: its second failure
        study.enqueue_trial(POINT)
        first = study.ask()
        study.tell(first, state=TS.FAIL)
        study.enqueue_trial(POINT, user_attrs={REQUEUED_ATTR: first.number})
        study.tell(study.ask(), state=TS.FAIL)

    assert _requeue_case(1, chain) == 0 and _requeue_case(2, chain) == 1


def test_a_failed_queued_trial_with_a_family_parameter_outside_the_space_is_not_queued_again() -> (
    None
):
    from lrkit.tune._loop import _requeue_interrupted
    from lrkit.tune._space import SearchSpace

    study = optuna.create_study()
    outside = {"lr": 0.01, "family": "onecycle", "onecycle.pct_start": 0.9}  # range 0.1-0.5
    inside = {"lr": 0.01, "family": "onecycle", "onecycle.pct_start": 0.3}
    for point in (outside, inside):
        study.enqueue_trial(point)
        study.tell(study.ask(), state=TS.FAIL)
    space = SearchSpace(100, lr_range=(1e-3, 1.0), families=("onecycle",))
    _requeue_interrupted(study, space, max_retry=None, n_trials=10)
    waiting = [t.system_attrs["fixed_params"] for t in study.trials if t.state == TS.WAITING]
    assert waiting == [inside]  # the run would only drop the other one


def test_a_cap_below_n_trials_is_one_line_before_the_storage_is_touched(tmp_path) -> None:
    db = tmp_path / "untouched.db"
    with pytest.raises(ValueError) as info:
        tune(_flat_task(), n_trials=3, max_trials=2, storage=f"sqlite:///{db}", study_name="s")
    assert str(info.value) == "max_trials must be an integer >= 3 (allowed range: [3, inf)), got 2"
    assert not db.exists()
