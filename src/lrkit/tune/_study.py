"""Driving an Optuna study: storage with heartbeat/retry, finder seeding, the trial loop."""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import _validate as V
from ..schedules import Schedule, parse
from ._space import BLIND_LR_RANGE, FAMILIES, SearchSpace, _check_range, lr_range_from_finder

__all__ = [
    "DEFAULT_STORAGE",
    "Reporter",
    "Task",
    "TuneResult",
    "load_target",
    "make_storage",
    "tune",
]

#: The CLI's default storage: an SQLite file in the working directory.
DEFAULT_STORAGE = "sqlite:///lrkit-tune.db"

#: Study user attrs written by :func:`tune`.
ATTR_RANGE = "lrkit.lr_range"
ATTR_SEEDING = "lrkit.seeding"
ATTR_FINDER = "lrkit.finder"
ATTR_TOTAL_STEPS = "lrkit.total_steps"


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("lrkit.tune needs optuna: pip install 'lrkit[tune]'") from exc
    return optuna


# ----------------------------------------------------------------------------- the task


@dataclass
class Task:
    """What :func:`tune` optimizes.

    ``train(schedule, report) -> float`` trains one model with ``schedule`` (an lrkit
    schedule over ``total_steps`` optimizer steps), calls ``report(epoch, value)`` after each
    epoch (this is where pruning happens: it raises ``optuna.TrialPruned``) and returns the
    final metric. A non-finite metric marks the trial diverged (it is pruned).
    ``range_test()`` (optional) runs the LR range test and returns a
    :class:`lrkit.finder.FinderResult` or an ``(low, high)`` pair; it seeds the search."""

    train: Callable[[Schedule, Callable[[int, float], None]], float]
    total_steps: int
    direction: str = "minimize"
    range_test: Callable[[], Any] | None = None
    name: str = "task"
    metric: str = "value"

    def __post_init__(self) -> None:
        if not callable(self.train):
            raise ValueError(
                f"train must be a callable train(schedule, report), got {self.train!r}"
            )
        self.total_steps = V.integer("total_steps", self.total_steps, 10)
        self.direction = V.choice("direction", self.direction, ("minimize", "maximize"))
        if self.range_test is not None and not callable(self.range_test):
            raise ValueError(f"range_test must be callable or None, got {self.range_test!r}")


class Reporter:
    """``report(epoch, value)`` handed to ``Task.train``: records the intermediate value on the
    trial and raises ``optuna.TrialPruned`` when the pruner says so."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.history: list[tuple[int, float]] = []

    def __call__(self, epoch: int, value: float) -> None:
        epoch = V.integer("epoch", epoch, 0)
        value = float(value)
        self.history.append((epoch, value))
        if not math.isfinite(value):
            self.trial.set_user_attr("diverged", True)
            raise _optuna().TrialPruned(f"metric is {value} at epoch {epoch} (diverged)")
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise _optuna().TrialPruned(f"pruned at epoch {epoch} (value {value:.6g})")


def load_target(target: str, *, epochs: int = 5) -> Task:
    """Import ``"pkg.module:function"`` (``importlib``, never eval), call ``function()`` and
    turn what it returns into a :class:`Task`:

    * a :class:`Task`;
    * a mapping with :class:`Task`'s fields (``train``, ``total_steps``, ...);
    * a 4-tuple ``(model_factory, loss_fn, train_data, val_data)`` (PyTorch): trained with
      :func:`lrkit.tune.torch_task` (SGD with momentum 0.9) for ``epochs`` epochs, metric
      the validation loss.

    The working directory is put on ``sys.path`` first (as ``python -m`` does)."""
    from ..commands._target import import_target

    fn = import_target(target)
    return as_task(fn(), epochs=epochs, name=target)


def as_task(value: Any, *, epochs: int = 5, name: str = "task") -> Task:
    """Coerce a :class:`Task`, a mapping of its fields or a ``(model_factory, loss_fn,
    train_data, val_data)`` tuple into a :class:`Task`."""
    if isinstance(value, Task):
        return value
    if isinstance(value, Mapping):
        kwargs = dict(value)
        kwargs.setdefault("name", name)
        try:
            return Task(**kwargs)
        except TypeError as exc:
            raise ValueError(f"target returned a mapping that is not a Task: {exc}") from None
    if isinstance(value, tuple) and len(value) == 4:
        from ._torch import torch_task

        model_factory, loss_fn, train_data, val_data = value
        return torch_task(model_factory, loss_fn, train_data, val_data, epochs=epochs, name=name)
    raise ValueError(
        "target must return a lrkit.tune.Task, a dict of its fields or a tuple "
        f"(model_factory, loss_fn, train_data, val_data), got {type(value).__name__}"
    )


# ----------------------------------------------------------------------------- storage


def make_storage(
    storage: Any = None,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int | None = 3,
) -> Any:
    """An Optuna storage. ``None``: in memory. A URL (``sqlite:///file.db``,
    ``postgresql://user@host:port/db``, ...): an ``RDBStorage`` with a heartbeat every
    ``heartbeat_interval`` seconds (default 10); a trial whose heartbeat is older than
    ``grace_period`` (default ``3 * heartbeat_interval``) is marked FAIL by the next worker
    that looks and re-queued (``max_retry`` times; ``None``: without limit). Any other
    object is returned as is (an Optuna storage)."""
    optuna = _optuna()
    if storage is None or not isinstance(storage, str):
        return storage
    if "://" not in storage:
        raise ValueError(
            f"storage must be a database URL such as sqlite:///lrkit-tune.db or "
            f"postgresql://user@host:5432/db, got {storage!r}"
        )
    storage = _with_driver(storage)
    hb = (
        10 if heartbeat_interval is None else V.integer("heartbeat_interval", heartbeat_interval, 1)
    )
    grace = 3 * hb if grace_period is None else V.integer("grace_period", grace_period, 1)
    if max_retry is not None:
        max_retry = V.integer("max_retry", max_retry, 0)
    retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    engine_kwargs: dict[str, Any] = {}
    if storage.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True

    def create() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat is "experimental" in Optuna
            if retry_cls is not None:
                return optuna.storages.RDBStorage(
                    storage,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=hb,
                    grace_period=grace,
                    heartbeat_stale_trial_callback=retry_cls(max_retry=max_retry),
                )
            return optuna.storages.RDBStorage(  # pragma: no cover - Optuna < 4.9
                storage,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=hb,
                grace_period=grace,
                failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=max_retry),
            )

    # Workers started together on an empty database race to create Optuna's tables (one
    # fails with a duplicate-key error); the tables exist on the next try.
    import sqlalchemy.exc

    for attempt in range(6):
        try:
            return create()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == 5:
                raise
            time.sleep(0.1 + random.random() * 0.4 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg (v3) to SQLAlchemy >= 2.1; use psycopg2 (the ``tune``
    extra) when psycopg is not installed."""
    from importlib.util import find_spec

    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme) and find_spec("psycopg") is None and find_spec("psycopg2"):
            return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


def _make_pruner(pruner: Any) -> Any:
    optuna = _optuna()
    if not isinstance(pruner, str):
        return pruner
    name = V.choice("pruner", pruner, ("median", "sha", "successive_halving", "none"))
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name in ("sha", "successive_halving"):
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


# ----------------------------------------------------------------------------- result


@dataclass
class TuneResult:
    """The outcome of :func:`tune`: the Optuna ``study`` and the lrkit view of it."""

    study: Any
    space: SearchSpace
    n_trials: int
    seeding: str
    finder: dict[str, Any] | None = None
    metric: str = "value"
    extra: dict[str, Any] = field(default_factory=dict)

    def _states(self, *names: str) -> list[Any]:
        optuna = _optuna()
        states = tuple(getattr(optuna.trial.TrialState, n) for n in names)
        return list(self.study.get_trials(deepcopy=False, states=states))

    @property
    def complete_trials(self) -> list[Any]:
        return self._states("COMPLETE")

    @property
    def best_trial(self) -> Any:
        return self.study.best_trial

    @property
    def best_value(self) -> float:
        return float(self.study.best_value)

    @property
    def best_params(self) -> dict[str, Any]:
        return dict(self.study.best_params)

    @property
    def best_spec(self) -> str:
        """The best trial's schedule as a spec string (``lrkit.schedules.parse`` reads it)."""
        spec = self.best_trial.user_attrs.get("schedule")
        return str(spec) if spec is not None else str(self.space.build(self.best_params))

    @property
    def best_schedule(self) -> Schedule:
        return parse(self.best_spec)

    @property
    def lr_range(self) -> tuple[float, float]:
        return self.space.lr_range

    def top(self, k: int = 5) -> list[Any]:
        """The ``k`` best COMPLETE trials, best first."""
        k = V.integer("k", k, 1)
        sign = -1.0 if self._maximize else 1.0
        return sorted(self.complete_trials, key=lambda t: sign * float(t.value))[:k]

    @property
    def _maximize(self) -> bool:
        return "MAXIMIZE" in str(self.study.direction).upper()

    def counts(self) -> dict[str, int]:
        """Number of trials per state (``COMPLETE``, ``PRUNED``, ``FAIL``, ...)."""
        out: dict[str, int] = {}
        for t in self.study.get_trials(deepcopy=False):
            out[t.state.name] = out.get(t.state.name, 0) + 1
        return out

    def table(self, k: int = 5) -> str:
        """A text table of the ``k`` best trials."""
        from ._report import trials_table

        return trials_table(self.top(k), metric=self.metric)

    def plot(self, path: str | None = None) -> Any:
        """Two panels: value per trial (with the best so far) and peak LR vs value (log x),
        by family. Writes ``path`` when given (only on rank 0 under ``torch.distributed``).
        Returns the matplotlib figure."""
        from ._report import plot_search

        return plot_search(self, path)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Rich display in notebooks (summary table and plot)."""
        from .._display import tune_bundle

        return tune_bundle(self)


# ----------------------------------------------------------------------------- tune


def _count(study: Any) -> tuple[int, int, int]:
    optuna = _optuna()
    ts = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    complete = sum(1 for t in trials if t.state == ts.COMPLETE)
    running = sum(1 for t in trials if t.state == ts.RUNNING)
    return complete, running, len(trials)


#: Families of the enqueued finder-seeded first trials, in order.
SEED_FAMILIES: tuple[str, ...] = ("onecycle", "cosine")


def _seed_points(
    info: Mapping[str, Any], rng: tuple[float, float], families: Sequence[str]
) -> list[tuple[str, float]]:
    """The first trials of a finder-seeded study: one-cycle and warmup-cosine peaking at a
    third of the LR at the range test's loss minimum (Smith's one-cycle rule), within
    ``rng``; the other parameters are sampled."""
    lr_min = info.get("min_loss_lr") or info.get("max_lr")
    if not lr_min:
        return []
    lr = min(max(float(lr_min) / 3.0, rng[0]), rng[1])
    fams = [f for f in SEED_FAMILIES if f in families] or [families[0]]
    return [(f, lr) for f in fams]


def _surplus(trials: Sequence[Any], number: int, n_trials: int) -> bool:
    """Whether trial ``number`` is one too many: the COMPLETE trials plus the trials still
    RUNNING that were started before it already make ``n_trials`` (two workers raced for
    the last slot; the later one gives way)."""
    optuna = _optuna()
    ts = optuna.trial.TrialState
    complete = sum(1 for t in trials if t.state == ts.COMPLETE)
    ahead = sum(1 for t in trials if t.state == ts.RUNNING and t.number < number)
    return complete + ahead >= n_trials


def _resolve_range(
    study: Any, task: Task, seeding: Any, log: Callable[[str], None]
) -> tuple[tuple[float, float], str, dict[str, Any] | None]:
    """The LR interval: shared through the study's user attrs so every worker searches the
    same space (the first worker runs the range test; the test is deterministic for a given
    task, so two workers racing to it write the same interval)."""
    if not isinstance(seeding, str):
        return _check_range(seeding), "given", None
    seeding = V.choice("seeding", seeding, ("finder", "blind"))
    if seeding == "blind":
        return BLIND_LR_RANGE, "blind", None
    stored = study.user_attrs.get(ATTR_RANGE)
    if stored is not None and study.user_attrs.get(ATTR_SEEDING) == "finder":
        return _check_range(stored), "finder", study.user_attrs.get(ATTR_FINDER)
    if task.range_test is None:
        warnings.warn(
            "seeding='finder' but the task has no range_test: searching the blind interval "
            f"{BLIND_LR_RANGE}",
            stacklevel=3,
        )
        return BLIND_LR_RANGE, "blind", None
    log("running the LR range test to bound the search ...")
    result = task.range_test()
    info: dict[str, Any] | None = None
    if isinstance(result, tuple):
        rng = _check_range(result)
    else:
        try:
            rng = lr_range_from_finder(result)
        except ValueError as exc:
            warnings.warn(
                f"the range test gave no usable interval ({exc}); searching {BLIND_LR_RANGE}",
                stacklevel=3,
            )
            return BLIND_LR_RANGE, "blind", None
        info = {
            "suggestion": getattr(result, "suggestion", None),
            "max_lr": getattr(result, "max_lr", None),
            "base_lr": getattr(result, "base_lr", None),
            "min_loss_lr": getattr(result, "min_loss_lr", None),
            "stop_reason": getattr(result, "stop_reason", None),
            "steps": int(getattr(result, "steps", 0)),
        }
    study.set_user_attr(ATTR_RANGE, list(rng))
    study.set_user_attr(ATTR_SEEDING, "finder")
    if info is not None:
        study.set_user_attr(ATTR_FINDER, info)
    return rng, "finder", info


def tune(
    task: Any,
    n_trials: int = 20,
    *,
    storage: Any = None,
    study_name: str | None = None,
    seeding: Any = "finder",
    families: Sequence[str] = FAMILIES,
    pruner: Any = "median",
    sampler: Any = None,
    seed: int | None = None,
    startup_trials: int | None = None,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int | None = 3,
    max_trials: int | None = None,
    poll_interval: float | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    callbacks: Sequence[Callable[[Any, Any], None]] = (),
    stop_when: Callable[[Any], bool] | None = None,
) -> TuneResult:
    """Search the peak LR, the schedule family and its parameters with Optuna (TPE).

    Runs until the study holds ``n_trials`` COMPLETE trials: pruned trials (by ``pruner``:
    ``"median"``, ``"sha"`` (successive halving), ``"none"`` or an Optuna pruner) and diverged
    ones (non-finite metric) are kept in the study but do not count; at most ``max_trials``
    trials in all (default ``max(4 n_trials, n_trials + 20)``) are started. Several workers
    running this with the same ``storage`` URL and ``study_name`` share the study and
    together stop at ``n_trials`` COMPLETE trials (a worker only starts a trial while
    ``complete + running < n_trials``, and waits while others finish). With a database
    storage a worker killed mid-trial stops its heartbeat; after ``grace_period`` seconds the
    next worker marks that trial FAIL and re-queues a copy (same parameters), which a worker
    then runs.

    ``seeding="finder"`` (default) runs ``task.range_test()`` once per study and searches the
    peak LR in the interval it supports (:func:`lr_range_from_finder`), and enqueues a first
    trial at the finder's ``max_lr``; ``"blind"`` searches ``1e-6..10``; a pair
    ``(low, high)`` searches that. Each trial stores its schedule spec as the user attr
    ``"schedule"``. ``stop_when(study) -> bool``, checked after each trial, ends this
    worker's loop early (e.g. a target value reached); ``callbacks`` go to
    ``study.optimize``."""
    optuna = _optuna()
    if not isinstance(task, Task):
        task = as_task(task)
    n_trials = V.integer("n_trials", n_trials, 1)
    if max_trials is None:
        max_trials = max(4 * n_trials, n_trials + 20)
    max_trials = V.integer("max_trials", max_trials, n_trials)
    SearchSpace(task.total_steps, BLIND_LR_RANGE, tuple(families))  # bad families: fail now
    say = log or (lambda msg: None)
    st = make_storage(
        storage,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        max_retry=max_retry,
    )
    hb = getattr(st, "heartbeat_interval", None)
    poll = (
        float(poll_interval) if poll_interval is not None else (min(float(hb), 2.0) if hb else 0.5)
    )
    if sampler is None:
        n_start = startup_trials if startup_trials is not None else min(10, max(3, n_trials // 5))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=V.integer("startup_trials", n_start, 0),
                multivariate=True,
                group=True,
                constant_liar=True,
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            storage=st,
            sampler=sampler,
            pruner=_make_pruner(pruner),
            study_name=study_name,
            direction=task.direction,
            load_if_exists=True,
        )
    rng, how, info = _resolve_range(study, task, seeding, say)
    space = SearchSpace(task.total_steps, rng, tuple(families))
    study.set_user_attr(ATTR_TOTAL_STEPS, task.total_steps)
    if how == "finder" and info is not None and not study.trials:
        for fam, lr in _seed_points(info, rng, space.families):
            study.enqueue_trial({"lr": lr, "family": fam}, skip_if_exists=True)
    say(
        f"searching peak LR in [{rng[0]:.3g}, {rng[1]:.3g}] ({how}), families: "
        + ", ".join(space.families)
    )

    def objective(trial: Any) -> float:
        if _surplus(study.get_trials(deepcopy=False), trial.number, n_trials):
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("surplus: the study already has enough trials")
        schedule = space.sample(trial)
        trial.set_user_attr("schedule", str(schedule))
        value = float(task.train(schedule, Reporter(trial)))
        if not math.isfinite(value):
            trial.set_user_attr("diverged", True)
            raise optuna.TrialPruned(f"metric is {value} (diverged)")
        return value

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_trials, desc="lrkit tune", unit="trial")
    try:
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            complete, running, total = _count(study)
            if bar is not None:
                bar.n = min(complete, n_trials)
                bar.set_postfix(running=running, all=total, refresh=False)
                bar.refresh()
            if complete >= n_trials or (stop_when is not None and total and stop_when(study)):
                break
            if total >= max_trials:
                warnings.warn(
                    f"stopped after max_trials={max_trials} trials with only {complete} of "
                    f"{n_trials} COMPLETE (the others were pruned, diverged or failed)",
                    stacklevel=2,
                )
                break
            if complete + running >= n_trials:
                time.sleep(poll)  # others are running the last trials
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.optimize(
                    objective,
                    n_trials=1,
                    catch=(),
                    callbacks=list(callbacks),
                    gc_after_trial=False,
                    show_progress_bar=False,
                )
    finally:
        if bar is not None:
            bar.close()
    return TuneResult(study, space, n_trials, how, info, metric=task.metric)
