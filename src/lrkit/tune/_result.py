"""The outcome of :func:`lrkit.tune.tune`."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from .. import _validate as V
from ..schedules import Schedule, parse
from ._space import SearchSpace
from ._task import optuna as _optuna

__all__ = ["TuneResult"]


def searched_by(how: str, finder: Any) -> str:
    """How a study's interval was found, as printed: ``how`` (``"finder"``, ``"blind"`` or
    ``"given"``), except a ``range_test`` that returned a ``(low, high)`` pair, which the
    study records as ``"finder"`` without a range test's result: ``"range_test's pair"``."""
    return "range_test's pair" if how == "finder" and not finder else how


@dataclass
class TuneResult:
    """The outcome of :func:`tune`: the Optuna ``study`` and the lrkit view of it."""

    study: Any
    _: KW_ONLY
    space: SearchSpace
    n_trials: int
    seeding: str
    finder: dict[str, Any] | None = None
    metric: str = "value"
    extra: dict[str, Any] = field(default_factory=dict)
    #: Why this worker stopped: ``"complete"`` (``n_trials`` COMPLETE trials),
    #: ``"max_trials"`` (the cap on started trials reached first), ``"timeout"`` (the
    #: ``timeout`` seconds of :func:`tune` passed first), ``"stop_when"`` or ``"study.stop"``
    #: (called by a callback or the task).
    stop_reason: str = "complete"
    max_trials: int | None = None
    #: The ``timeout`` of :func:`tune`, in seconds (``None``: none was given).
    timeout: float | None = None

    @property
    def reached(self) -> bool:
        """Whether the study holds ``n_trials`` COMPLETE trials."""
        return len(self.complete_trials) >= self.n_trials

    def _states(self, *names: str) -> list[Any]:
        optuna = _optuna()
        states = tuple(getattr(optuna.trial.TrialState, n) for n in names)
        return list(self.study.get_trials(deepcopy=False, states=states))

    @property
    def complete_trials(self) -> list[Any]:
        """The study's COMPLETE trials, as Optuna ``FrozenTrial`` objects, of every worker and
        run on the study (pruned trials, the diverged ones among them, failed and running
        trials left out)."""
        return self._states("COMPLETE")

    def _check_complete(self) -> None:
        """A one-line ``ValueError`` when the study holds no COMPLETE trial (what the
        ``best_*`` attributes need), naming the study and its trials by state."""
        if self.complete_trials:
            return
        counts = self.counts()
        total = sum(counts.values())
        words = {"FAIL": "failed", "PRUNED": "pruned", "RUNNING": "running", "WAITING": "waiting"}
        states = ", ".join(
            f"{counts[k]} {words.get(k, k.lower())}" for k in sorted(counts) if k != "COMPLETE"
        )
        name = getattr(self.study, "study_name", None)
        raise ValueError(
            f"no trial completed in study {name!r}: 0 of {total} trials completed"
            + (f" ({states})" if states else "")
            + "; the best_* attributes need a COMPLETE trial"
        )

    @property
    def best_trial(self) -> Any:
        """The study's best COMPLETE trial (Optuna's ``study.best_trial``: the lowest value,
        or the highest for a task with ``direction="maximize"``). Raises ``ValueError``
        (naming the study and its trials by state) when no trial has completed, as do the
        other ``best_*`` attributes."""
        self._check_complete()
        return self.study.best_trial

    @property
    def best_value(self) -> float:
        """The metric of :attr:`best_trial`, as a float."""
        self._check_complete()
        return float(self.study.best_value)

    @property
    def best_params(self) -> dict[str, Any]:
        """The Optuna parameters of :attr:`best_trial` (a copy): ``"lr"``, ``"family"`` and
        the family's ``"<family>.<param>"`` entries (see :class:`SearchSpace`)."""
        self._check_complete()
        return dict(self.study.best_params)

    @property
    def best_spec(self) -> str:
        """The best trial's schedule as a spec string (``lrkit.schedules.parse`` reads it)."""
        spec = self.best_trial.user_attrs.get("schedule")
        return str(spec) if spec is not None else str(self.space.build(self.best_params))

    @property
    def best_schedule(self) -> Schedule:
        """The best trial's schedule, rebuilt from :attr:`best_spec` (built for the search
        space's ``total_steps``)."""
        return parse(self.best_spec)

    @property
    def lr_range(self) -> tuple[float, float]:
        """The peak-LR interval ``(low, high)`` searched (log-uniform): the range test's
        (``seeding="finder"``), the blind ``(1e-6, 10.0)``, or the pair given as ``seeding``;
        the ``seeding`` field says which (``"finder"``, ``"blind"`` or ``"given"``)."""
        return self.space.lr_range

    @property
    def searched_by(self) -> str:
        """How the interval was found, as the tables and the plot say it: ``seeding`` (a
        ``range_test`` returning a ``(low, high)`` pair instead of a range test's result is
        ``"range_test's pair"``)."""
        return searched_by(self.seeding, self.finder)

    def top(self, k: int = 5) -> list[Any]:
        """The ``k`` best COMPLETE trials, best first."""
        k = V.integer("k", k, 1)
        sign = -1.0 if self._maximize else 1.0
        return sorted(self.complete_trials, key=lambda t: sign * float(t.value))[:k]

    @property
    def _maximize(self) -> bool:
        optuna = _optuna()
        return bool(self.study.direction == optuna.study.StudyDirection.MAXIMIZE)

    def counts(self) -> dict[str, int]:
        """Number of trials per state (``COMPLETE``, ``PRUNED``, ``FAIL``, ...)."""
        out: dict[str, int] = {}
        for t in self.study.get_trials(deepcopy=False):
            out[t.state.name] = out.get(t.state.name, 0) + 1
        return out

    def table(self, k: int = 5, *, width: int | None = None) -> str:
        """A text table of the ``k`` best trials (numbers at 4 significant digits; with
        ``width``, long specs wrapped so that no line is longer, each spec line keeping at
        least 30 characters: a ``width`` the other columns leave less of is exceeded)."""
        from ._report import trials_table

        return trials_table(self.top(k), metric=self.metric, width=width)

    def plot(self, path: Any = None, *, title: str | None = None) -> Any:
        """Two panels: value per trial (with the best so far) and peak LR vs value (log x),
        by family. Writes ``path`` when given (drawn without pyplot; only on rank 0 under
        ``torch.distributed``); ``title`` heads the figure. Returns the matplotlib figure."""
        from ._report import plot_search

        return plot_search(self, path=path, title=title)

    def __repr__(self) -> str:
        """One line: trial counts, and the best value and schedule when a trial completed."""
        from .._display import tune_text

        return tune_text(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Rich display in notebooks (summary table and plot)."""
        from .._display import tune_bundle

        return tune_bundle(self)
