"""The trial loop of :func:`lrkit.tune.tune`: shared LR interval, finder-seeded first trials,
N COMPLETE trials across workers."""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

from .. import _validate as V
from .._format import shorten
from .._runtime import HeldSignals, caller_level, kept_interrupts
from ._load import as_task
from ._result import TuneResult, searched_by
from ._space import (
    BLIND_LR_RANGE,
    FAMILIES,
    PARAMS,
    SearchSpace,
    _check_range,
    family_names,
    lr_range_from_finder,
)
from ._storage import (
    MAX_GRACE,
    MAX_HEARTBEAT,
    MAX_STUDY_NAME,
    check_storage,
    check_writable,
    database_error,
    database_errors,
    first_line,
    lost_connection,
    make_pruner,
    make_storage,
    shown_storage,
    sqlite_file,
    storage_error,
)
from ._task import Reporter, Task, check_metric
from ._task import optuna as _optuna

__all__ = ["StudySpaceError", "TuneWarning", "check_range_test", "tune"]

#: Study user attrs written by :func:`tune`.
ATTR_RANGE = "lrkit.lr_range"
ATTR_SEEDING = "lrkit.seeding"
ATTR_FINDER = "lrkit.finder"
ATTR_TOTAL_STEPS = "lrkit.total_steps"
#: The search space a study was created with (``families``, ``seeding``, ``total_steps``).
ATTR_SPACE = "lrkit.space"
#: the heartbeat the study's workers share: ``{"heartbeat_interval": s, "grace_period": s}``
ATTR_HEARTBEAT = "lrkit.heartbeat"


class TuneWarning(UserWarning):
    """A note of :func:`tune` on the search itself: the interval searched instead of the range
    test's, a run stopped at ``max_trials``, a trial another worker had failed. ``lrkit tune``
    prints these as ``note:`` lines and every other warning as Python shows it."""


#: the hook :func:`heartbeat_errors_warned` put in place and the one it replaced, and how many
#: runs (threads running ``tune()``) are inside it: the first installs it, the last one out
#: puts the one before back
_HOOK: dict[str, Any] = {"users": 0, "hook": None, "before": None}
_HOOK_LOCK = threading.Lock()


def _heartbeat_hook(args: Any) -> None:
    """``threading.excepthook`` while a run lasts (see :func:`heartbeat_errors_warned`)."""
    lost = database_error(args.exc_value) if args.exc_value is not None else None
    if lost is None or not _runs_through(args.exc_traceback, "_record_heartbeat"):
        before = _HOOK["before"] or threading.__excepthook__
        before(args)
        return
    warnings.warn(
        f"the heartbeat of a running trial stopped: the database did not answer "
        f"({first_line(lost)}); another worker may fail and re-queue the trial",
        TuneWarning,
        stacklevel=1,
    )


@contextlib.contextmanager
def heartbeat_errors_warned() -> Iterator[None]:
    """While it lasts, an Optuna heartbeat thread that ends with a database error (the
    database went away during a trial) is said in one ``TuneWarning`` line rather than
    Python's traceback of the thread: the run itself meets the same database and says it.
    Other threads' errors go to the hook there was, which is put back when the last run in
    the process ends (runs in several threads overlap)."""
    with _HOOK_LOCK:
        if _HOOK["users"] == 0:
            _HOOK["before"] = threading.excepthook
            threading.excepthook = _heartbeat_hook
        _HOOK["users"] += 1
    try:
        yield
    finally:
        with _HOOK_LOCK:
            _HOOK["users"] -= 1
            if _HOOK["users"] == 0:
                if threading.excepthook is _heartbeat_hook:  # (else: replaced since; kept)
                    threading.excepthook = _HOOK["before"]
                _HOOK["before"] = None


def _codes(tb: Any) -> Iterator[Any]:
    """The code objects of the frames of traceback ``tb``."""
    while tb is not None:
        yield tb.tb_frame.f_code
        tb = tb.tb_next


def _runs_through(tb: Any, where: str) -> bool:
    """Whether traceback ``tb`` runs through Optuna's code: its function ``where``, or, with
    ``where="storages"``, any code of its storages (a database call Optuna made)."""
    for code in _codes(tb):
        parts = code.co_filename.replace("\\", "/").split("/")
        if "optuna" in parts and (code.co_name == where or where in parts):
            return True
    return False


class StudySpaceError(ValueError):
    """:func:`tune` was asked to continue a study that was created with another search space.

    ``conflicts`` maps each differing parameter of :func:`tune` (``"families"``,
    ``"seeding"``: ``"finder"``, ``"blind"`` or a ``[low, high]`` interval, ``"total_steps"``,
    ``"task"``: the task's ``name``, ``"direction"``; ``"heartbeat_interval"`` and
    ``"grace_period"``, which the study's workers share) to ``(stored, requested)``. Raised
    before any trial runs; the study is left as it was."""

    def __init__(
        self,
        study_name: str,
        *,
        conflicts: dict[str, tuple[Any, Any]],
        advice: str | None = None,
    ) -> None:
        self.study_name = study_name
        self.conflicts = conflicts
        #: what to do instead of the usual advice (another study_name, or the same options)
        self.advice = advice
        what = ", ".join(f"{k}={a!r} (asked: {b!r})" for k, (a, b) in conflicts.items())
        usual = (
            f"give another study_name for a new study, or the same {' and '.join(conflicts)} "
            "to continue this one"
        )
        super().__init__(f"study {study_name!r} was created with {what}: {advice or usual}")

    def __reduce__(self) -> Any:  # picklable (e.g. across a process pool)
        import functools

        made = functools.partial(
            StudySpaceError, self.study_name, conflicts=self.conflicts, advice=self.advice
        )
        return (made, ())


def _space_record(
    families: Sequence[str], seeding: Any, total_steps: int, task: str
) -> dict[str, Any]:
    if isinstance(seeding, str):
        how: Any = V.choice("seeding", seeding, ("finder", "blind"))
    else:
        how = list(_check_range(seeding, name="seeding"))
    return {
        "families": list(families),
        "seeding": how,
        "total_steps": int(total_steps),
        "task": str(task),
    }


class ForeignStudyError(ValueError):
    """:func:`tune` was asked to continue a study it did not create (a multi-objective one, or
    one holding trials lrkit did not run). ``study_name``, ``storage`` (as the message shows
    it, password masked) and ``reason`` (what the study holds) are the message's parts.
    Raised before the range test and any trial; nothing is written to the study."""

    def __init__(self, study_name: str, *, storage: str, reason: str) -> None:
        self.study_name, self.storage, self.reason = study_name, storage, reason
        super().__init__(
            f"study_name {study_name!r} in storage {storage} {reason}: give another "
            "study_name for a new study"
        )

    def __reduce__(self) -> Any:  # picklable (e.g. across a process pool)
        import functools

        return (
            functools.partial(
                ForeignStudyError, self.study_name, storage=self.storage, reason=self.reason
            ),
            (),
        )


#: the Optuna parameters of lrkit's trials: ``"lr"``, ``"family"`` and ``"<family>.<param>"``
_OWN_PARAMS: frozenset[str] = frozenset(
    {"lr", "family", *(f"{f}.{p.name}" for f, ps in PARAMS.items() for p in ps)}
)


def _param_names(t: Any) -> set[str]:
    """The names of the parameters trial ``t`` sampled or was queued with."""
    names = {str(k) for k in t.params}
    fixed = t.system_attrs.get("fixed_params")
    if isinstance(fixed, Mapping):
        names |= {str(k) for k in fixed}
    return names


def _foreign_trial(t: Any) -> bool:
    """Whether trial ``t`` is not one :func:`tune` runs: one whose parameters (those it
    sampled, or those it was queued with) are not lrkit's, a COMPLETE one without both ``lr``
    and ``family`` (what :meth:`TuneResult.best_spec` builds its schedule from), or one with
    parameters but no ``lr`` (sampled first). A trial of lrkit's without parameters (pruned as
    ``surplus`` or ``dropped``, failed before it sampled any) is lrkit's."""
    names = _param_names(t)
    if names - _OWN_PARAMS or (names and "lr" not in names):
        return True
    return bool(t.state == _optuna().trial.TrialState.COMPLETE and "family" not in names)


def _check_own(study: Any, storage: Any) -> None:
    """Refuse, with a one-line :class:`ForeignStudyError` (a ``ValueError``) naming
    ``study_name`` and the storage (its password masked), a study :func:`tune` cannot
    continue without changing what it holds: a multi-objective one (lrkit tunes one metric),
    or one without lrkit's record of its search space (``"lrkit.space"``) whose trials lrkit
    did not run (:func:`_foreign_trial`; a study of an lrkit from before the record holds
    lrkit's trials only). Nothing is written."""
    where = shown_storage(storage)
    directions = list(study.directions)
    if len(directions) > 1:
        raise ForeignStudyError(
            study.study_name,
            storage=where,
            reason=f"is a multi-objective study (directions "
            f"{', '.join(d.name.lower() for d in directions)}); lrkit tunes one metric and "
            "leaves this study as it is",
        )
    damaged = _damaged_record(study.user_attrs)
    if damaged is not None:
        raise ForeignStudyError(
            study.study_name,
            storage=where,
            reason=f"holds a user attr {damaged} that is not lrkit's record; lrkit leaves "
            "this study as it is",
        )
    if ATTR_SPACE in study.user_attrs:
        return
    for t in study.get_trials(deepcopy=False):
        if not _foreign_trial(t):
            continue
        names = ", ".join(sorted(_param_names(t)))
        has = f"the parameters {shorten(names, 120)}" if names else "no parameters"
        raise ForeignStudyError(
            study.study_name,
            storage=where,
            reason=f"holds trials lrkit did not run (trial {t.number} has {has}, not lrkit's "
            "lr and family); lrkit leaves this study as it is",
        )


def _damaged_record(attrs: Mapping[str, Any]) -> str | None:
    """The first of lrkit's study records (:data:`ATTR_SPACE`, :data:`ATTR_RANGE`,
    :data:`ATTR_SEEDING`, :data:`ATTR_TOTAL_STEPS`) that is not as :func:`tune` writes it
    (edited by hand, or another program's), named with its value; ``None`` when all are."""

    def steps(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    def interval(v: Any) -> bool:
        try:
            _check_range(v)
        except ValueError:
            return False
        return isinstance(v, list)

    space_checks: dict[str, Callable[[Any], bool]] = {
        "families": lambda v: isinstance(v, list) and bool(v) and all(f in FAMILIES for f in v),
        "seeding": lambda v: v in ("finder", "blind") or interval(v),
        "total_steps": steps,
        "task": lambda v: isinstance(v, str),
    }
    for name, check in (
        (ATTR_RANGE, interval),
        (ATTR_SEEDING, lambda v: v in ("finder", "blind", "given")),
        (ATTR_TOTAL_STEPS, steps),
    ):
        if name in attrs and not check(attrs[name]):
            return f"{name!r} ({shorten(repr(attrs[name]), 60)})"
    if ATTR_SPACE in attrs:
        space = attrs[ATTR_SPACE]
        bad = not isinstance(space, dict) or any(
            k in space and not check(space[k]) for k, check in space_checks.items()
        )
        if bad:
            return f"{ATTR_SPACE!r} ({shorten(repr(space), 60)})"
    return None


def _started(study: Any) -> bool:
    """Whether any trial of ``study`` has started (a trial only enqueued, WAITING, has not)."""
    waiting = _optuna().trial.TrialState.WAITING
    return any(t.state != waiting for t in study.get_trials(deepcopy=False))


def _check_space(
    study: Any, record: dict[str, Any], requested_direction: str, *, started: bool
) -> list[str]:
    """Refuse (:class:`StudySpaceError`) to continue a study created with another search
    space or optimization direction. A study in which no trial has started (``started``
    false) takes the requested space (:func:`tune` records it when the search starts); its
    direction, fixed by Optuna, is still checked. A study from before the space was recorded
    is compared through its trials' ``family`` choices and its total steps. The same families
    in another order are the same space: the study's order is returned (Optuna's categorical
    choices keep the order they were created with)."""
    direction = study.direction.name.lower()  # Optuna keeps it: every study has one
    if direction != requested_direction:
        raise StudySpaceError(
            study.study_name, conflicts={"direction": (direction, requested_direction)}
        )
    if not started:
        return list(record["families"])
    stored = study.user_attrs.get(ATTR_SPACE)
    if stored is None:
        trials = study.get_trials(deepcopy=False)
        stored = {}
        for t in trials:
            if "family" in t.distributions:
                stored["families"] = list(t.distributions["family"].choices)
                break
        if ATTR_TOTAL_STEPS in study.user_attrs:
            stored["total_steps"] = study.user_attrs[ATTR_TOTAL_STEPS]

    def same(key: str, a: Any, b: Any) -> bool:
        if key == "families":
            return sorted(a) == sorted(b) and len(a) == len(b)
        return bool(a == b)

    conflicts = {
        k: (stored[k], v) for k, v in record.items() if k in stored and not same(k, stored[k], v)
    }
    if conflicts:
        raise StudySpaceError(study.study_name, conflicts=conflicts)
    return list(stored.get("families", record["families"]))


def _count(study: Any) -> tuple[int, int, int]:
    optuna = _optuna()
    ts = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    complete = sum(1 for t in trials if t.state == ts.COMPLETE)
    running = sum(1 for t in trials if t.state == ts.RUNNING)
    return complete, running, len(trials)


#: the user attr a trial's objective sets as it begins: the trial's own number (a re-queued
#: copy inherits its original's user attrs, so a copy carries another trial's number)
ATTR_BEGAN = "lrkit.began"


def _began(t: Any) -> bool:
    """Whether trial ``t`` began its objective (studies from before :data:`ATTR_BEGAN`: it has
    a ``"schedule"``)."""
    if ATTR_BEGAN in t.user_attrs:
        return bool(t.user_attrs[ATTR_BEGAN] == t.number)
    return "schedule" in t.user_attrs


def _fail_unstarted(study: Any, grace: float | None) -> bool:
    """Fail the RUNNING trials whose worker stopped before the trial's first heartbeat;
    whether one was failed (its copy is then queued by :func:`_requeue_interrupted`).

    Optuna creates a trial (RUNNING) in ``ask`` and starts its heartbeat only after sampling
    its parameters; a worker killed in between leaves a trial without a heartbeat, which
    ``fail_stale_trials`` never fails, so every worker would wait for it for ever. A trial
    that has not begun its objective (see :func:`_began`) more than ``2 * grace_period``
    seconds after it was created is failed here."""
    if not grace:
        return False
    import datetime

    optuna = _optuna()
    ts = optuna.trial.TrialState
    now = datetime.datetime.now()
    failed = False
    for t in study.get_trials(deepcopy=False, states=(ts.RUNNING,)):
        if _began(t) or t.datetime_start is None:
            continue
        if (now - t.datetime_start).total_seconds() <= 2 * grace:
            continue
        try:
            study.tell(t.number, state=ts.FAIL)
        except ValueError:  # finished meanwhile (another worker failed it, or it began)
            continue
        failed = True
    return failed


def _fits(space: SearchSpace, fixed: Mapping[str, Any]) -> bool:
    """Whether the parameters an enqueued trial fixes lie in ``space``: its family is one of
    the space's and its LR inside the space's interval (up to rounding)."""
    if "family" in fixed and fixed["family"] not in space.families:
        return False
    if "lr" in fixed:
        lo, hi = space.lr_range
        try:
            lr = float(fixed["lr"])
        except (TypeError, ValueError):
            return False
        if not lo * (1 - 1e-9) <= lr <= hi * (1 + 1e-9):
            return False
    return True


class _HeldReporter(Reporter):
    """The trial's :class:`Reporter`, whose writes to the study (the intermediate value, the
    pruner's question) are not cut by Ctrl-C or SIGTERM: one that comes during them is
    delivered once they are done (cut inside the database's code, the write could hold its
    lock, and failing the trial then reads as a lost connection)."""

    def __init__(self, trial: Any, held: HeldSignals) -> None:
        super().__init__(trial)
        self._held = held

    def __call__(self, epoch: int, value: float) -> None:
        with self._held.holding():
            super().__call__(epoch, value)


def _shown(params: Mapping[str, Any]) -> str:
    """Queued parameters as a warning quotes them: ``lr=0.5, family='constant'``."""
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in params.items()
    )


def _outside(space: SearchSpace, fixed: Mapping[str, Any]) -> str | None:
    """Where the parameters an enqueued trial fixes leave ``space`` (``None``: inside): an LR
    outside its interval (up to rounding) or a family it does not search, else a family
    parameter outside its range or choices, or one of another family than the trial's, as
    ``SearchSpace(fixed=...)`` refuses it."""
    if not _fits(space, fixed):
        lo, hi = space.lr_range
        return f"lr in [{lo:.3g}, {hi:.3g}], families {', '.join(space.families)}"
    rest = {k: v for k, v in fixed.items() if k != "lr"}  # (checked above, with rounding)
    try:
        SearchSpace(space.total_steps, lr_range=space.lr_range, families=space.families,
                    fixed=rest)  # fmt: skip
    except ValueError as exc:
        return str(exc).replace("fixed[", "queued[")
    return None


def _drop_outside(trial: Any, fixed: Any, why: str) -> NoReturn:
    """Drop (PRUNED) a trial queued with parameters ``fixed`` outside the search space
    (``why`` says where it lies), with a warning; its parameters go to the user attr
    ``queued_params`` (the trial itself holds none)."""
    trial.set_user_attr("dropped", "outside the search space")
    trial.set_user_attr("queued_params", dict(fixed))
    warnings.warn(
        f"trial {trial.number}, queued with {_shown(fixed)}, lies outside the search space "
        f"({why}): dropped (PRUNED; its parameters in user attr 'queued_params')",
        TuneWarning,
        stacklevel=caller_level(),
    )
    raise _optuna().TrialPruned("a queued trial outside the search space: dropped")


def _duplicate_copy(trials: Sequence[Any], trial: Any, fixed: Mapping[str, Any]) -> bool:
    """Whether ``trial``, enqueued with the parameters ``fixed``, is a copy lrkit queued of an
    earlier one. A seed (user attr ``SEED_ATTR``): the same fixed parameters in a trial before
    it that did not fail (workers that started a new study together each queued the seeds; a
    failed seed's re-queued copy is no duplicate). Another trial lrkit re-queued (user attr
    ``REQUEUED_ATTR``, the failed trial's number): only another copy of that trial counts
    (workers restarting together each re-queued it), not a run of the same point the user
    queued. A trial the user queued is never one: it runs as queued."""
    seed = bool(trial.user_attrs.get(SEED_ATTR))
    origin = None if seed else trial.user_attrs.get(REQUEUED_ATTR)
    if not seed and origin is None:
        return False
    optuna = _optuna()
    return any(
        t.number < trial.number
        and t.state != optuna.trial.TrialState.FAIL
        and t.system_attrs.get("fixed_params") == fixed
        and (origin is None or t.user_attrs.get(REQUEUED_ATTR) == origin)
        for t in trials
    )


def _requeued_copy(u: Any, t: Any, fixed: Mapping[str, Any]) -> bool:
    """Whether ``u`` runs the failed queued trial ``t`` (parameters ``fixed``) again: a copy
    lrkit re-queued of it, or, for a seed, another worker's copy of that seed queued after
    it. A later run of the same point that the user queued is no such copy (two points
    queued to measure the noise at one both run)."""
    if u.number <= t.number or u.system_attrs.get("fixed_params") != fixed:
        return False
    if u.user_attrs.get("dropped"):  # dropped (a duplicate, outside the space): never ran
        return False
    if u.user_attrs.get(REQUEUED_ATTR) == t.number:
        return True
    return bool(t.user_attrs.get(SEED_ATTR)) and bool(u.user_attrs.get(SEED_ATTR))


def _failed_runs(t: Any, trials: Sequence[Any]) -> int:
    """The failed runs of the queued point ``t`` ran: ``t`` and the trials it is lrkit's copy
    of (``REQUEUED_ATTR``, back to the one first queued); another copy the user queued of the
    same point is a run of its own, with failures of its own."""
    ts = _optuna().trial.TrialState
    by_number = {u.number: u for u in trials}
    count, seen, u = 0, set(), t
    while u is not None and u.number not in seen:
        seen.add(u.number)
        count += u.state == ts.FAIL
        origin = u.user_attrs.get(REQUEUED_ATTR)
        u = by_number.get(origin) if isinstance(origin, int) else None
    return count


def _requeue_interrupted(
    study: Any, space: SearchSpace, *, max_retry: int | None, n_trials: int
) -> None:
    """Queue again each enqueued (finder-seeded) trial that ended FAIL with no copy after it:
    a run stopped by Ctrl-C fails its running trial, as :func:`_fail_unstarted` fails one a
    killed worker left, and the study would lose that seed. A seed is retried at most
    ``max_retry`` times in all (its FAIL trials, over every run: one that kills its worker
    each time is not retried for ever); a trial outside ``space`` (:func:`_outside`: the
    study's first run stopped before any trial began, and this run searches other families
    or ranges) is not queued again (it would only be dropped), and nothing is queued once
    the study holds ``n_trials`` COMPLETE trials."""
    optuna = _optuna()
    ts = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    if sum(1 for t in trials if t.state == ts.COMPLETE) >= n_trials:
        return
    for t in trials:
        fixed = t.system_attrs.get("fixed_params")
        if t.state != ts.FAIL or not fixed or _outside(space, fixed) is not None:
            continue
        if any(_requeued_copy(u, t, fixed) for u in trials):
            continue
        failures = _failed_runs(t, trials)
        if max_retry is not None and failures > max_retry:
            continue  # retried max_retry times already
        marks: dict[str, Any] = {REQUEUED_ATTR: t.number}  # a copy lrkit queued: run once
        if t.user_attrs.get(SEED_ATTR):
            marks[SEED_ATTR] = True
        study.enqueue_trial(dict(fixed), user_attrs=marks)


#: The user attr marking a trial lrkit queued from the range test (and its re-queued copies):
#: only such a trial, or a copy lrkit re-queued, is dropped as a copy of an earlier one
#: (workers starting a new study together each queue the seeds); a trial the user queues
#: runs as queued, copies too.
SEED_ATTR = "finder_seed"
#: The user attr of a copy lrkit re-queued (the number of the failed trial it repeats): run
#: once too (workers restarting together each re-queue it)
REQUEUED_ATTR = "requeued_from"

#: Families of the enqueued finder-seeded first trials, in order.
SEED_FAMILIES: tuple[str, ...] = ("onecycle", "cosine")


def _seed_points(
    info: Mapping[str, Any], rng: tuple[float, float], families: Sequence[str]
) -> list[tuple[str, float]]:
    """The first trials of a finder-seeded study: one-cycle and warmup-cosine peaking at a
    third of the range test's edge, ``lr_min`` (not the LR of the lowest loss: see
    :attr:`lrkit.finder.FinderResult.lr_min`; Smith's one-cycle rule), within ``rng``; the
    other parameters are sampled. On the demo tasks of ``benchmarks/tune_efficiency.py``
    these seeds reached the target in fewer trials than seeds at the range test's budget
    suggestions (its one-cycle ``max_lr`` and warmup-cosine ``peak_lr``)."""
    # ("min_loss_lr": the edge's former name, in studies lrkit 0.1 made)
    lr_min = info.get("lr_min") or info.get("min_loss_lr") or info.get("max_lr")
    if not lr_min:
        return []
    lr = min(max(float(lr_min) / 3.0, rng[0]), rng[1])
    fams = [f for f in SEED_FAMILIES if f in families] or [families[0]]
    return [(f, lr) for f in fams]


def _surplus(trials: Sequence[Any], number: int, n_trials: int) -> bool:
    """Whether trial ``number`` is one too many: the COMPLETE trials plus the trials ahead
    of it already make ``n_trials`` (two workers raced for the last slot; the later one gives
    way). Ahead: those still RUNNING that were started before it, and those queued (WAITING)
    before it was made (a stopped worker's trial re-queued while another worker was making
    a new one: the copy, which the next trial asked for takes, keeps its slot)."""
    optuna = _optuna()
    ts = optuna.trial.TrialState
    complete = sum(1 for t in trials if t.state == ts.COMPLETE)
    ahead = sum(1 for t in trials if t.state in (ts.RUNNING, ts.WAITING) and t.number < number)
    return complete + ahead >= n_trials


def _searched_range(study: Any) -> tuple[float, float] | None:
    """The LR interval the trials of ``study`` were sampled from (a study from before the
    interval was always stored), else ``None``."""
    for t in study.get_trials(deepcopy=False):
        d = t.distributions.get("lr")
        if d is not None:
            return float(d.low), float(d.high)
    return None


def _resolve_range(
    study: Any,
    task: Task,
    seeding: Any,
    log: Callable[[str], None],
    *,
    started: bool,
    tested: tuple[tuple[float, float], str, dict[str, Any] | None] | None = None,
) -> tuple[tuple[float, float], str, dict[str, Any] | None]:
    """The LR interval and how it was found (``"finder"``, ``"blind"`` or ``"given"``).

    With ``seeding="finder"`` the interval is shared through the study's user attrs, so that
    every worker and every later run searches the one the study was started with: the range
    test's interval, or the blind one when the task has no range test or the test gave no
    usable interval, whichever way a later range test goes. A study in which no trial has
    started, or one created with another ``seeding``, has no interval to keep. The range test
    is deterministic for a given task, so two workers racing to it find the same interval.
    ``tested``: what :func:`_range_from_test` gave before the study was created, used where
    the range test would run."""
    if not isinstance(seeding, str):
        return _check_range(seeding, name="seeding"), "given", None
    seeding = V.choice("seeding", seeding, ("finder", "blind"))
    if seeding == "blind":
        return BLIND_LR_RANGE, "blind", None
    attrs = study.user_attrs
    space = attrs.get(ATTR_SPACE)
    was_finder = (
        space.get("seeding") == "finder"
        if isinstance(space, dict)
        else attrs.get(ATTR_SEEDING) == "finder"
    )
    stored = attrs.get(ATTR_RANGE)
    how = attrs.get(ATTR_SEEDING)
    if was_finder and stored is not None and how in ("finder", "blind"):
        if started or how == "finder":  # a blind fallback is retried while nothing started
            return _check_range(stored), str(how), attrs.get(ATTR_FINDER)
    if started and was_finder:  # stored before the interval was: read it off the trials
        searched = _searched_range(study)
        if searched is not None:
            how = "finder" if attrs.get(ATTR_SEEDING) == "finder" else "blind"
            return searched, how, attrs.get(ATTR_FINDER)
    if task.range_test is None:
        warnings.warn(
            "seeding='finder' but the task has no range_test: searching the blind interval "
            f"{BLIND_LR_RANGE}",
            TuneWarning,
            stacklevel=caller_level(),
        )
        return BLIND_LR_RANGE, "blind", None
    if tested is not None:  # run before the study was created (see tune)
        return tested
    return _range_from_test(task, log)


def check_range_test(result: Any) -> Any:
    """What ``Task.range_test()`` returned, checked: a :class:`lrkit.finder.FinderResult`
    (anything with ``lrs``) as it is, a ``(low, high)`` pair (any sequence) as a tuple of
    floats with ``0 < low < high``; anything else is a one-line ``ValueError`` that shows the
    value and its type."""
    if hasattr(result, "lrs"):
        return result
    if isinstance(result, (str, bytes, Mapping)) or not hasattr(result, "__len__"):
        raise ValueError(
            "range_test() must return a FinderResult or a (low, high) pair, got "
            f"{shorten(repr(result), 80)} ({type(result).__name__})"
        )
    return _check_range(list(result), name="range_test()")


def _range_from_test(
    task: Task, log: Callable[[str], None]
) -> tuple[tuple[float, float], str, dict[str, Any] | None]:
    """Run ``task.range_test()`` and read the LR interval off what it returns
    (:func:`check_range_test`): ``(interval, "finder", info)``, or the blind interval (with a
    warning) when a FinderResult gives no usable one."""
    assert task.range_test is not None
    log("running the LR range test to bound the search ...")
    with kept_interrupts():  # a Ctrl-C there is not lost (in a lazy import's clean-up)
        tested = task.range_test()
    result = check_range_test(tested)
    if not hasattr(result, "lrs"):  # a (low, high) pair
        return result, "finder", None
    try:
        rng = lr_range_from_finder(result)
    except ValueError as exc:
        warnings.warn(
            f"the range test gave no usable interval ({exc}); searching {BLIND_LR_RANGE}",
            TuneWarning,
            stacklevel=caller_level(),
        )
        return BLIND_LR_RANGE, "blind", None
    info = {
        "suggestion": getattr(result, "suggestion", None),
        "max_lr": getattr(result, "max_lr", None),
        "base_lr": getattr(result, "base_lr", None),
        "lr_min": getattr(result, "lr_min", None),
        "stop_reason": getattr(result, "stop_reason", None),
        "steps": int(getattr(result, "steps", 0)),
    }
    return rng, "finder", info


#: the files SQLite keeps beside a database while it writes it
_SIDE_FILES = ("-journal", "-wal", "-shm")


def _new_file(storage: Any) -> dict[str, bool] | None:
    """For an SQLite URL whose file does not exist yet or is empty (opening the storage writes
    Optuna's tables there): ``{file: whether it existed}`` for it and the files SQLite keeps
    beside it; else ``None``."""
    path = sqlite_file(storage)
    if path is None or (os.path.isfile(path) and os.path.getsize(path) > 0):
        return None
    return {f: os.path.exists(f) for f in _sqlite_files(path)}


def _sqlite_files(path: str) -> tuple[str, ...]:
    """The database file ``path`` and the files SQLite keeps beside it while it writes it."""
    return (path, *(path + x for x in _SIDE_FILES))


def _probe_url(storage: str, made: dict[str, bool]) -> str | None:
    """An SQLite URL for a probe file beside the new file ``storage`` names, with the same
    options; ``None`` where no probe stands for the file (a missing or read-only folder, a
    read-only empty file: opening ``storage`` itself then refuses it, creating nothing; an
    SQLite URI, a percent-encoded path). A folder at the path is refused by
    :func:`check_storage` first."""
    path = next(iter(made))
    head, sep, rest = storage.partition(":///")
    raw, _, query = rest.partition("?")
    folder = os.path.dirname(path) or "."
    if (
        not sep
        or raw != path  # percent-encoded, or an SQLite URI (file:...)
        or not os.path.isdir(folder)
        or not os.access(folder, os.W_OK | os.X_OK)
        or (os.path.exists(path) and not os.access(path, os.W_OK))
    ):
        return None
    # a short name of its own: a long database name plus a suffix could pass the file system's
    # limit on a name
    _remove_stale_probes(folder)
    name = f".lrkit-probe-{_HOST}-{os.getpid()}-{time.monotonic_ns() % 10**12}.db"
    return f"{head}:///{os.path.join(os.path.dirname(path), name)}" + (f"?{query}" if query else "")


#: this machine, in probe files' names: a probe's process is looked for on its own machine only
_HOST = format(zlib.crc32(socket.gethostname().encode()), "08x")
_PROBE = re.compile(rf"\.lrkit-probe-{_HOST}-(\d+)-\d+\.db(?:-journal|-wal|-shm)?")
STALE_PROBE_SECONDS = 600  # a probe lives for a fraction of a second: older is a killed run's


def _remove_stale_probes(folder: str) -> None:
    """Remove the probe files (:func:`_probe_url`) a run killed while it probed left in
    ``folder`` (SIGKILL skips the removal): those made on this machine, by a process no longer
    running, more than ``STALE_PROBE_SECONDS`` ago. Where a process cannot be looked for
    without signalling it (not POSIX), none is removed."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            m = _PROBE.fullmatch(entry.name)
            if m is None or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                if time.time() - entry.stat().st_mtime < STALE_PROBE_SECONDS:
                    continue
                if _running(int(m.group(1))):
                    continue
                os.remove(entry.path)


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this (POSIX) machine."""
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, the process is only looked for
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's, or not to be judged: left alone
    return True


def _probe(url: str, storage: str, **options: Any) -> None:
    """Open the probe file ``url`` as ``storage`` would be opened (:func:`make_storage`,
    :func:`check_writable`), and remove it: what would refuse ``storage`` is refused now, in
    its name, and ``storage``'s file itself is created only once the range test has given an
    interval (another worker started together on it may be storing its study there)."""
    probe = sqlite_file(url)
    assert probe is not None
    st = None
    try:
        st = make_storage(url, **options)
        check_writable(st, url=url)
    except ValueError as exc:
        raise ValueError(str(exc).replace(url, storage)) from None
    finally:
        engine = getattr(st, "engine", None)
        if engine is not None:
            engine.dispose()
        for f in _sqlite_files(probe):
            with contextlib.suppress(OSError):
                os.remove(f)


def _take_back(storage: Any, made: dict[str, bool]) -> None:
    """Undo what opening ``storage`` wrote to a new SQLite file (:func:`_new_file`): the files
    it created are removed, an empty file it filled is empty again; unless a study is in it
    now (another worker, started together on the new file, created one meanwhile) or it
    cannot be read: then it stays as it is."""
    try:
        if storage.get_all_studies():
            return
    except Exception:  # unreadable: nothing is removed that may hold someone's trials
        return
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()  # its connections closed: the files can go
    path = next(iter(made))
    with contextlib.suppress(OSError):
        for f, existed in made.items():
            if not existed and os.path.exists(f):
                os.remove(f)
        if made[path]:
            with open(path, "wb"):  # it was empty
                pass


def _no_such_study(storage: Any, study_name: str | None) -> bool:
    """Whether the opened storage ``storage`` (``None``: a new one in memory) holds no study
    ``study_name`` yet (``None``: Optuna names a new one), asked without writing. A database
    error says no: creating the study reports it."""
    if storage is None or study_name is None:
        return True
    optuna = _optuna()
    try:
        storage.get_study_id_from_name(study_name)
    except KeyError:
        return True
    except (*database_errors(), optuna.exceptions.StorageInternalError):
        return False
    return False


def _record(
    study: Any,
    record: dict[str, Any],
    rng: tuple[float, float],
    how: str,
    info: dict[str, Any] | None,
    *,
    started: bool,
) -> None:
    """Store the search space and the LR interval on ``study``: all of it on a study in
    which no trial has started (a run that never started one does not fix the options), and
    on an older study with trials only the interval, when it lacks one."""
    attrs = study.user_attrs
    if started and ATTR_RANGE in attrs:
        return
    if not started:
        study.set_user_attr(ATTR_SPACE, record)
    study.set_user_attr(ATTR_RANGE, list(rng))
    study.set_user_attr(ATTR_SEEDING, how)
    if info is not None or not started:
        study.set_user_attr(ATTR_FINDER, info)
    study.set_user_attr(ATTR_TOTAL_STEPS, record["total_steps"])


def _heartbeat_of(st: Any) -> dict[str, Any]:
    """The heartbeat a storage with one runs: its interval and grace period (``None``, which
    Optuna reads as twice the interval, as that)."""
    hb = st.heartbeat_interval
    grace = st.grace_period if st.grace_period is not None else 2 * hb
    return {"heartbeat_interval": hb, "grace_period": grace}


def _recorded_heartbeat(attrs: Mapping[str, Any]) -> dict[str, int] | None:
    """The heartbeat a study records (:data:`ATTR_HEARTBEAT`): an interval in ``[1,
    MAX_HEARTBEAT]`` and a longer grace period, as :func:`make_storage` takes them; ``None``
    when there is none, or what is there is no such pair (then this worker's replaces it)."""
    rec = attrs.get(ATTR_HEARTBEAT)
    if not isinstance(rec, dict):
        return None
    hb, grace = rec.get("heartbeat_interval"), rec.get("grace_period")
    if not isinstance(hb, int) or not isinstance(grace, int) or isinstance(hb, bool):
        return None
    if isinstance(grace, bool) or not (1 <= hb <= MAX_HEARTBEAT and hb < grace <= MAX_GRACE):
        return None
    return {"heartbeat_interval": hb, "grace_period": grace}


def _heartbeat_conflict(
    study_name: str, recorded: dict[str, Any], own: dict[str, Any], *, advice: str | None
) -> StudySpaceError:
    conflicts = {k: (recorded[k], own[k]) for k in own if recorded[k] != own[k]}
    return StudySpaceError(study_name, conflicts=conflicts, advice=advice)


def _join_heartbeat(study: Any, st: Any, *, given: bool, reopens: bool) -> None:
    """Record this worker's heartbeat on ``study`` when it has none (a new study, or one from
    before it was recorded); one recorded meanwhile by a worker started together on the new
    study with another heartbeat refuses this one (:class:`StudySpaceError`; one given
    neither option, from a URL, takes the study's when run again). Workers that both read
    the study before either recorded join with their own: the record is not atomic (docs:
    start the workers of one study with the same options)."""
    own = _heartbeat_of(st)
    recorded = _recorded_heartbeat(study.user_attrs)
    if recorded is None:
        study.set_user_attr(ATTR_HEARTBEAT, own)
    elif recorded != own:
        advice = None
        if not given and reopens:
            advice = (
                "another worker started together on this new study recorded its heartbeat "
                "first: run again to use it"
            )
        elif not reopens:
            advice = _storage_advice(recorded)
        raise _heartbeat_conflict(study.study_name, recorded, own, advice=advice)


def _storage_advice(recorded: Mapping[str, Any]) -> str:
    return (
        "the storage object runs its own heartbeat (heartbeat_interval and grace_period of "
        "tune() are for a URL): build it with heartbeat_interval="
        f"{recorded['heartbeat_interval']}, grace_period={recorded['grace_period']}"
    )


def _shared_heartbeat(
    st: Any,
    study_name: str | None,
    heartbeat_interval: int | None,
    grace_period: int | None,
    *,
    reopens: bool,
) -> dict[str, Any] | None:
    """The heartbeat recorded on an existing study (:data:`ATTR_HEARTBEAT`), when it is not
    the one ``st`` was opened with and what this worker was given agrees with it (an option
    left out takes the study's value): the storage is to be opened again with it (``None``: as
    it is; ``reopens``: whether it can be, from its URL). A worker given another value, or one
    whose storage object has another, is refused (:class:`StudySpaceError`, naming what it was
    given): a shorter ``grace_period`` would fail the live trials of the workers that keep the
    study's, and their results would be lost to the retried copies."""
    if study_name is None or getattr(st, "heartbeat_interval", None) is None:
        return None  # a new study, or no heartbeat (in memory, a storage without one)
    try:
        study_id = st.get_study_id_from_name(study_name)
    except KeyError:
        return None  # a new study: this worker's heartbeat is recorded as it is created
    recorded = _recorded_heartbeat(st.get_study_user_attrs(study_id))
    own = _heartbeat_of(st)
    if recorded is None:
        return None
    if reopens:
        given = {
            k: v
            for k, v in (("heartbeat_interval", heartbeat_interval), ("grace_period", grace_period))
            if v is not None
        }
        asked = {**recorded, **given}
        if asked != recorded:
            raise _heartbeat_conflict(study_name, recorded, asked, advice=None)
        return None if own == recorded else dict(recorded)
    if own != recorded:
        raise _heartbeat_conflict(study_name, recorded, own, advice=_storage_advice(recorded))
    return None


def _recorded_meanwhile(before: Mapping[str, Any], now: Mapping[str, Any]) -> bool:
    """Whether another worker recorded a search space or an interval on the study between
    the two readings of its user attrs."""
    keys = (ATTR_SPACE, ATTR_RANGE, ATTR_SEEDING)
    return ATTR_RANGE in now and any(before.get(k) != now.get(k) for k in keys)


@contextlib.contextmanager
def _experimental_ok() -> Iterator[None]:
    """Optuna's ``ExperimentalWarning`` silenced (the heartbeat, constant liar and grouped
    TPE that :func:`tune` uses are "experimental" in Optuna); other warnings pass."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _optuna().exceptions.ExperimentalWarning)
        yield


def _sampler_seed(seed: int, n_trials_in_study: int) -> int:
    """The TPE seed of a run: ``seed`` on a new study (so a new study with the same seed is
    searched the same way), else ``seed`` combined with the number of trials already in the
    study (``numpy.random.SeedSequence((seed, n)).generate_state(1)[0]``), so that running the
    same command again continues the search instead of repeating its first configurations."""
    if n_trials_in_study == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence((seed, n_trials_in_study)).generate_state(1)[0])


def _told_after_fail(exc: BaseException, study: Any, number: int | None) -> bool:
    """Whether ``exc`` is Optuna refusing the result of this worker's trial ``number``
    because another worker marked it FAIL (its heartbeat had stopped, e.g. while this
    process was paused) and re-queued a copy: its ``ValueError("Cannot tell a FAIL
    trial.")``, raised as is after a pruned trial, and behind the ``AssertionError`` of its
    logging after a finished one."""
    refused: BaseException | None = exc
    while refused is not None and not (
        isinstance(refused, ValueError) and str(refused).startswith("Cannot tell a ")
    ):
        refused = refused.__context__
    if number is None or refused is None:
        return False
    fail = _optuna().trial.TrialState.FAIL
    return any(t.number == number and t.state == fail for t in study.get_trials(deepcopy=False))


def tune(
    task: Any,
    *,
    n_trials: int = 20,
    storage: Any = None,
    study_name: str | None = None,
    seeding: Any = "finder",
    families: str | Sequence[str] = FAMILIES,
    pruner: Any = "percentile",
    sampler: Any = None,
    seed: int | None = None,
    startup_trials: int | None = None,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int | None = 3,
    max_trials: int | None = None,
    timeout: float | None = None,
    poll_interval: float | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    callbacks: Sequence[Callable[[Any, Any], None]] = (),
    stop_when: Callable[[Any], bool] | None = None,
) -> TuneResult:
    """Search the peak LR, the schedule family and its parameters with Optuna (TPE).

    Runs until the study holds ``n_trials`` COMPLETE trials: pruned trials (by ``pruner``:
    ``"percentile"`` (the worst quarter at an epoch), ``"median"``, ``"sha"`` (successive
    halving), ``"none"`` or an Optuna pruner; see :func:`make_pruner`) and diverged
    ones (non-finite metric) are kept in the study but do not count; at most ``max_trials``
    trials in all (default ``max(10 n_trials, n_trials + 50)``: enough for a pruner that
    stops 90% of the trials) are started by this call (the cap is per run: calling again on
    the same study starts up to ``max_trials`` more); when that cap comes first the result
    says so (``TuneResult.reached`` is false, ``stop_reason`` is ``"max_trials"``) and a
    warning is issued. ``timeout`` (seconds, ``> 0`` and finite; default ``None``: no limit) is
    Optuna's ``study.optimize(timeout=...)``: once ``timeout`` seconds have passed since this
    call began, no new trial is started (a running trial finishes) and a worker waiting for
    other workers' trials stops waiting; the result then says so (``stop_reason`` is
    ``"timeout"``; ``TuneResult.reached`` is false unless other workers finish the last
    trials) and no warning is issued (a limit asked for is no surprise). The time counts from
    the call, as Optuna's does from ``optimize``: the range test of a new finder-seeded study
    counts toward it (one that outlasts ``timeout`` leaves the study with its first trials
    queued and none run). Several workers
    running this with the same ``storage`` URL and ``study_name`` share the study and
    together stop at ``n_trials`` COMPLETE trials (a worker only starts a trial while
    ``complete + running < n_trials``, and waits while others finish). With a database
    storage a worker killed mid-trial stops its heartbeat; after ``grace_period`` seconds the
    next worker marks that trial FAIL and re-queues a copy (same parameters), which a worker
    then runs; one killed while Optuna was still sampling the trial's parameters (before its
    first heartbeat) is failed after ``2 * grace_period`` seconds, and a copy of it re-queued
    if it was an enqueued (finder-seeded) trial. A run stopped by Ctrl-C fails its running
    trial; the next run queues an enqueued one again (the seeds are not lost). The study
    records the ``heartbeat_interval`` and ``grace_period`` of the worker that created it
    (user attr ``"lrkit.heartbeat"``): a worker given neither uses the study's, one given
    others is refused (:class:`StudySpaceError`), since a shorter ``grace_period`` would fail
    the live trials of the workers that keep the study's.

    ``seeding="finder"`` (default) runs ``task.range_test()`` once per study and searches the
    peak LR in the interval it supports (:func:`lr_range_from_finder`), and enqueues the
    first trials of a new study: one-cycle and warmup-cosine (those of ``families``; else
    the first family) peaking at a third of the range test's edge (``lr_min``), within the
    interval (without a range test, or when it gives no usable interval, the blind interval
    is searched, and kept by the study); ``"blind"`` searches ``1e-6..10``; a pair
    ``(low, high)`` searches that. Each trial stores its schedule spec as the user attr
    ``"schedule"``.
    ``stop_when(study) -> bool``, checked after each trial once the study holds a COMPLETE
    one (so that ``study.best_value`` is defined) and while this worker waits for other
    workers' trials, ends this worker's loop early (e.g. a target value reached);
    ``families`` names the
    families searched (a sequence, or a comma-separated string); ``callbacks`` go to
    ``study.optimize``, and ``study.stop()`` called by one of them (Optuna's
    ``MaxTrialsCallback``) or by the task's code ends this worker's loop after that trial
    (``stop_reason`` ``"study.stop"``).

    The search space (``families``, ``seeding``, ``task.total_steps``, ``task.name``: a study
    holds the trials of one task, so a task of another name is refused rather than mixed in; a
    study from before the name was stored is not checked for it) and the LR interval searched
    (user attrs ``"lrkit.space"``, ``"lrkit.lr_range"``) are stored on the study when its search
    starts; continuing a study in which a trial has started with another search space raises
    :class:`StudySpaceError` before any trial runs (the study is left unchanged), and a
    continued finder-seeded study searches its stored interval without a new range test. A study
    in which no trial has started takes the options of the run; a trial it had queued outside
    the new search space is dropped (PRUNED, user attr ``"dropped"``) rather than run, as is one
    queued by hand (``study.enqueue_trial``) outside the study's space: a :class:`TuneWarning`
    names it, and its parameters stay in user attr ``"queued_params"`` (a dropped trial holds
    none). A study lrkit did not create is refused with a one-line ``ValueError`` naming
    ``study_name`` and the storage (password masked), before the range test and any trial, and
    nothing is written to it: a study of several objectives, or one without lrkit's record of
    its search space that holds a trial lrkit does not run (a COMPLETE trial without both ``lr``
    and ``family``, a trial with parameters of other names or without ``lr``; a study of lrkit
    0.1.0 holds none). Workers started together on a new study search the search space and
    interval recorded first (each may have run its own range test, and a model's random
    initialisation moves it); a seed trial two of them queued runs once.

    ``startup_trials``: the TPE sampler's random trials before it models the results
    (default ``min(10, max(3, n_trials // 5))``; not used with a ``sampler`` of your own).
    ``max_retry`` (default 3; ``None``: no limit): how many times in all an enqueued
    (finder-seeded) trial that failed is queued again. ``poll_interval`` (seconds; default
    the heartbeat interval up to 2 s, else 0.5 s): how often a worker waiting for other
    workers' trials looks again. ``progress=True`` shows a progress bar of COMPLETE trials;
    ``log(message)`` receives the run's few lines of news (the LR range searched, a wait for
    other workers), as ``lrkit tune`` prints them.

    ``seed`` (an integer in ``[0, 2**32 - 1]``) seeds the TPE sampler (not used with a
    ``sampler`` of your own): on a new study with ``seed`` itself, so the same call searches
    the same way; on a study that already holds ``n`` trials with ``seed`` combined with
    ``n`` (``numpy.random.SeedSequence((seed, n))``), so running again continues the search
    rather than repeating it. ``storage``: ``None`` (in memory), a database URL
    (:func:`make_storage`) or an Optuna storage. A worker whose finished trial had been
    failed by another worker (its heartbeat stopped, e.g. while the process was paused)
    warns and carries on: the retried copy of the trial runs in its place. Every argument is
    checked before the storage is touched; an SQLite file that is not an Optuna study database
    (it holds tables of something else) is refused with a one-line ``ValueError``
    before anything is written to it, and a database storage that
    can be read but not written (a read-only SQLite file or folder, a user without write
    grants) is refused with one (:func:`check_writable`) before the range test and any trial.
    A new study's range test runs before the study is created: one that raises (or is
    interrupted), or returns something that is no interval (a one-line ``ValueError``,
    :func:`check_range_test`), leaves no study behind and no new SQLite file (it is created
    after the range test, a probe file beside it checked and removed before; an empty one is
    left empty); a ``KeyboardInterrupt``
    from there carries ``study_created=False`` (on any storage: nothing is left to continue)."""
    began = time.monotonic()  # what timeout counts from: the range test counts toward it
    optuna = _optuna()
    if not isinstance(task, Task):
        task = as_task(task)
    # everything is checked before the storage is touched (a URL creates the database)
    n_trials = V.integer("n_trials", n_trials, 1)
    if max_trials is None:
        max_trials = max(10 * n_trials, n_trials + 50)
    max_trials = V.integer("max_trials", max_trials, n_trials)
    if timeout is not None:
        timeout = V.positive("timeout", timeout)
    families = family_names(families)  # "cosine,wsd", as on the command line, too
    SearchSpace(task.total_steps, families=families)  # bad families: fail now
    record = _space_record(families, seeding, task.total_steps, task.name)
    if study_name is not None and (not isinstance(study_name, str) or not study_name.strip()):
        raise ValueError(f"study_name must be a non-empty string or None, got {V.fmt(study_name)}")
    if study_name is not None:
        V.utf8_text("study_name", study_name)
    if study_name is not None and len(study_name) > MAX_STUDY_NAME:
        raise ValueError(
            f"study_name must be at most {MAX_STUDY_NAME} characters (what Optuna stores), got "
            f"{len(study_name)}"
        )
    if sampler is not None and not isinstance(sampler, optuna.samplers.BaseSampler):
        raise ValueError(
            f"sampler must be None (TPE) or an Optuna sampler, got {type(sampler).__name__}"
        )
    if (
        callable(callbacks)
        or isinstance(callbacks, (str, bytes))
        or not isinstance(callbacks, Iterable)
    ):
        raise TypeError(
            "callbacks must be a sequence of callables (study, trial) -> None, got "
            f"{callbacks!r} (pass callbacks=[fn] for one)"
        )
    callbacks = list(callbacks)
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(
                f"callbacks[{i}] must be a callable (study, trial) -> None, got {V.fmt(cb)}"
            )
    if seed is not None:  # what numpy (Optuna's TPE) accepts
        seed = V.seed("seed", seed)
    if startup_trials is not None:
        startup_trials = V.integer("startup_trials", startup_trials, 0)
    if poll_interval is not None:
        poll_interval = V.positive("poll_interval", poll_interval)
    if storage is not None and not isinstance(storage, (str, optuna.storages.BaseStorage)):
        raise ValueError(
            "storage must be None (in memory), a database URL such as sqlite:///lrkit-tune.db "
            f"or an Optuna storage, got {type(storage).__name__} {storage!r}"
        )
    the_pruner = make_pruner(pruner)
    V.optional_callable("stop_when", stop_when, "(study) -> bool", 1)
    progress = V.flag("progress", progress)
    V.optional_callable("log", log, "(message: str) -> None", 1)
    say = log or (lambda msg: None)
    # A new study's range test runs before the study is created, so that one that fails or
    # returns no interval leaves nothing behind: a new SQLite file is opened (created) after
    # it, a probe beside it before it; where no probe can be made, opening the file refuses
    # it (or, for an SQLite URI or a percent-encoded path, the file opened is taken back).
    finder_test = record["seeding"] == "finder" and task.range_test is not None
    made = _new_file(storage)
    # a grace period given alone is checked against the study's heartbeat, which is read from
    # the storage first (opened with the defaults: a grace period the study's interval allows
    # may be refused next to the default one); a new study's is checked before its range test
    alone = isinstance(storage, str) and heartbeat_interval is None and grace_period is not None
    options = {
        "heartbeat_interval": heartbeat_interval,
        "grace_period": None if alone and made is None else grace_period,
        "max_retry": max_retry,
    }
    probe = None
    if finder_test and made is not None and isinstance(storage, str):
        probe = _probe_url(storage, made)

    def opened() -> Any:
        st = make_storage(storage, **options)
        # a database this run could read but not write (a read-only file or folder, a user
        # without write grants) is refused now, not as the first trial is stored
        check_writable(st, url=storage if isinstance(storage, str) else None)
        return st

    def reopened(st: Any, heartbeat: Mapping[str, Any]) -> Any:
        options.update(heartbeat)
        engine = getattr(st, "engine", None)
        if engine is not None:
            engine.dispose()
        return opened()

    st = None
    if probe is not None:
        assert isinstance(storage, str)
        check_storage(storage)  # what is wrong with the URL itself, in its own words
        _probe(probe, storage, **options)
    else:
        st = opened()
        if options["grace_period"] != grace_period and _no_such_study(st, study_name):
            st = reopened(st, {"grace_period": grace_period})  # a new study: the one asked for
    tested = None
    if finder_test and (st is None or _no_such_study(st, study_name)):
        try:
            tested = _range_from_test(task, say)
        except BaseException as exc:
            if made is not None and st is not None:
                _take_back(st, made)
            if isinstance(exc, KeyboardInterrupt):
                exc.study_created = False  # type: ignore[attr-defined]
            raise
    if st is None:
        st = opened()
    shared = _shared_heartbeat(
        st, study_name, heartbeat_interval, grace_period, reopens=isinstance(storage, str)
    )
    if shared is None and options["grace_period"] != grace_period:
        shared = {"grace_period": grace_period}  # a study without a recorded heartbeat
    if shared is not None:  # the study's own (what this worker was given agrees with it)
        st = reopened(st, shared)
    hb = getattr(st, "heartbeat_interval", None)
    poll = poll_interval if poll_interval is not None else (min(float(hb), 2.0) if hb else 0.5)
    try:
        with _experimental_ok():
            study = optuna.create_study(
                storage=st,
                sampler=sampler,
                pruner=the_pruner,
                study_name=study_name,
                direction=task.direction,
                load_if_exists=True,
            )
    except (*database_errors(), optuna.exceptions.StorageInternalError) as exc:
        # Optuna wraps a failed commit (a read-only database, a refused permission) in its
        # own error: the database's complaint is in its chain
        cause = database_error(exc) or exc
        raise storage_error(cause, storage if isinstance(storage, str) else "") from None
    # a study of someone else's (another objective's trials, several objectives) is refused
    # before anything is written to it, the range test and the first trial
    _check_own(study, storage)
    if sampler is None:
        n_start = startup_trials if startup_trials is not None else min(10, max(3, n_trials // 5))
        with _experimental_ok():
            study.sampler = optuna.samplers.TPESampler(
                seed=None if seed is None else _sampler_seed(seed, len(study.trials)),
                n_startup_trials=n_start,
                multivariate=True,
                group=True,
                constant_liar=True,
            )
    before = dict(study.user_attrs)
    started = _started(study)
    families = _check_space(study, record, task.direction, started=started)
    rng, how, info = _resolve_range(study, task, seeding, say, started=started, tested=tested)
    if not started and _recorded_meanwhile(before, dict(study.user_attrs)):
        # workers started together on a new study: another one recorded its search space and
        # interval while this one ran its range test (which need not agree: a model's random
        # initialisation moves it). The first recorded is the study's: check it, search it.
        started = True
        families = _check_space(study, record, task.direction, started=True)
        rng, how, info = _resolve_range(study, task, seeding, say, started=True, tested=tested)
    if hb is not None:  # the checks passed: this worker joins the study with its heartbeat
        given = heartbeat_interval is not None or grace_period is not None
        _join_heartbeat(study, st, given=given, reopens=isinstance(storage, str))
    space = SearchSpace(task.total_steps, lr_range=rng, families=tuple(families))
    record["families"] = list(space.families)
    _record(study, record, rng, how, info, started=started)
    if how == "finder" and info is not None and not started:
        for fam, lr in _seed_points(info, rng, space.families):
            study.enqueue_trial(
                {"lr": lr, "family": fam}, user_attrs={SEED_ATTR: True}, skip_if_exists=True
            )
    _requeue_interrupted(study, space, max_retry=max_retry, n_trials=n_trials)
    say(
        f"searching peak LR in [{rng[0]:.3g}, {rng[1]:.3g}] ({searched_by(how, info)}), "
        "families: " + ", ".join(space.families)
    )
    current: dict[str, int] = {}

    def objective(trial: Any) -> float:
        current["number"] = trial.number
        trial.set_user_attr(ATTR_BEGAN, trial.number)  # its heartbeat runs from here on
        trials = study.get_trials(deepcopy=False)
        if _surplus(trials, trial.number, n_trials):
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("surplus: the study already has enough trials")
        fixed = next(
            (t.system_attrs.get("fixed_params") for t in trials if t.number == trial.number),
            None,
        )
        outside = _outside(space, fixed) if fixed else None
        if outside is not None:  # queued with another search space, or by hand
            _drop_outside(trial, fixed, outside)
        if fixed and _duplicate_copy(trials, trial, fixed):
            trial.set_user_attr("dropped", "a copy of an earlier queued trial")
            raise optuna.TrialPruned("a copy of an earlier queued trial: dropped")
        schedule = space.sample(trial)
        trial.set_user_attr("schedule", str(schedule))
        with held.deliverable():  # the task's own code: Ctrl-C stops it (the trial FAILs)
            value = check_metric(task.train(schedule, _HeldReporter(trial, held)))
        if not math.isfinite(value):
            trial.set_user_attr("diverged", True)
            raise optuna.TrialPruned(f"metric is {value} (diverged)")
        return value

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_trials, desc="lrkit tune", unit="trial")
    stop = "complete"
    waiting = False
    n_started = 0  # trials started by this run: what max_trials caps
    # Ctrl-C / SIGTERM reach the task's code and the waits at once; inside Optuna's trial
    # bookkeeping they are held until it is done (cut there, it may leave its heartbeat
    # thread running: the process would never exit)
    held = HeldSignals()
    # study.stop() from a callback or the objective (Optuna's MaxTrialsCallback, say) ends
    # the one-trial optimize call it was made in; it is seen here and ends this loop too
    stopped: list[bool] = []
    optuna_stop = study.stop

    def stop_study() -> None:
        stopped.append(True)
        optuna_stop()

    study.stop = stop_study
    try:
        # an interrupt Python drops (raised in a clean-up callback inside Optuna's or the
        # database's code) is raised at the next trial, as a held one is
        with kept_interrupts() as raise_dropped, held, heartbeat_errors_warned():
            while True:
                held.deliver_pending()
                raise_dropped()
                with _experimental_ok():
                    optuna.storages.fail_stale_trials(study)
                if _fail_unstarted(study, getattr(st, "grace_period", None)):
                    _requeue_interrupted(study, space, max_retry=max_retry, n_trials=n_trials)
                complete, running, total = _count(study)
                if bar is not None:
                    bar.n = min(complete, n_trials)
                    bar.set_postfix(running=running, all=total, refresh=False)
                    bar.refresh()
                if complete >= n_trials:
                    break
                must_wait = complete + running >= n_trials  # others run the last trials
                # stop_when is asked once a trial is COMPLETE (``study.best_value`` raises before),
                # and while this worker waits for other workers' trials
                if stop_when is not None and (complete or must_wait) and stop_when(study):
                    stop = "stop_when"
                    break
                if n_started >= max_trials:
                    stop = "max_trials"
                    warnings.warn(
                        f"stopped after this run started max_trials={max_trials} trials, with "
                        f"{complete} of {n_trials} COMPLETE in the study (the others were pruned, "
                        "diverged or failed); running again starts up to max_trials more",
                        TuneWarning,
                        stacklevel=caller_level(),
                    )
                    break
                left = None if timeout is None else began + timeout - time.monotonic()
                if left is not None and left <= 0:
                    stop = "timeout"  # no new trial, no more waiting
                    break
                if must_wait:
                    if not waiting:
                        grace = getattr(st, "grace_period", None)
                        msg = f"waiting for {running} running trial(s) to finish" + (
                            f" (a trial whose worker stopped is failed and re-queued after "
                            f"{grace} s without heartbeat)"
                            if grace
                            else ""
                        )
                        if bar is not None:  # on a line of its own, the bar drawn again below it
                            with bar.external_write_mode():
                                say(msg)
                        else:
                            say(msg)
                        waiting = True
                    with held.deliverable():
                        # others are running the last trials (waited for until the timeout)
                        time.sleep(poll if left is None else min(poll, left))
                    continue
                waiting = False
                n_started += 1
                current.clear()
                try:
                    with _experimental_ok():
                        study.optimize(
                            objective,
                            n_trials=1,
                            catch=(),
                            callbacks=list(callbacks),
                            gc_after_trial=False,
                            show_progress_bar=False,
                        )
                except (ValueError, AssertionError) as exc:
                    number = current.get("number")
                    if not _told_after_fail(exc, study, number):
                        raise
                    warnings.warn(
                        f"trial {number} finished here after another worker had marked it FAIL "
                        "(its heartbeat had stopped, e.g. while this process was paused); its "
                        "result is not stored, the retried copy of the trial carries on",
                        TuneWarning,
                        stacklevel=caller_level(),
                    )
                if stopped:
                    stop = "study.stop"
                    break
    except Exception as exc:
        lost = database_error(exc)  # behind Optuna's clean-up errors too (UnboundLocalError)
        if lost is None:
            raise
        # a database error raised inside the task's code, not by a call of Optuna's storage
        # (report() makes one), is the task's own (a database of its own)
        tasks = objective.__code__ in set(_codes(lost.__traceback__))
        if tasks and not _runs_through(lost.__traceback__, "storages"):
            raise
        raise lost_connection(lost, storage, again="run tune() again") from lost
    finally:
        del study.stop  # Optuna's own again
        if bar is not None:
            bar.close()
    return TuneResult(
        study,
        space=space,
        n_trials=n_trials,
        seeding=how,
        finder=info,
        metric=task.metric,
        stop_reason=stop,
        max_trials=max_trials,
        timeout=timeout,
    )
