"""What :func:`lrkit.tune.tune` optimizes (:class:`Task`) and how a trial reports to it
(:class:`Reporter`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import Any

from .. import _validate as V
from .._imports import require
from ..feedback import as_metric
from ..schedules import Schedule
from ._space import MIN_TOTAL_STEPS

__all__ = ["Reporter", "Task", "check_metric", "optuna"]


def optuna() -> Any:
    """The ``optuna`` module, or a one-line ImportError naming ``pip install 'lrkit[tune]'``."""
    return require("optuna", "tune", feature="lrkit.tune")


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
    _: KW_ONLY
    total_steps: int
    direction: str = "minimize"
    range_test: Callable[[], Any] | None = None
    name: str = "task"
    metric: str = "value"

    def __post_init__(self) -> None:
        if not callable(self.train):
            raise ValueError(
                f"train must be a callable train(schedule, report), got {V.fmt(self.train)}"
            )
        V.takes("train", self.train, "train(schedule, report)", 2)
        self.total_steps = V.integer("total_steps", self.total_steps, MIN_TOTAL_STEPS, V.MAX_STEPS)
        self.direction = V.choice("direction", self.direction, ("minimize", "maximize"))
        if self.range_test is not None and not callable(self.range_test):
            raise ValueError(f"range_test must be callable or None, got {V.fmt(self.range_test)}")
        V.optional_callable("range_test", self.range_test, "range_test()", 0)
        # the name is stored with the study's search space, the metric labels its value
        for field_name in ("name", "metric"):
            value = getattr(self, field_name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{field_name} must be a non-empty string, got {V.fmt(value)}")


def check_metric(value: Any) -> float:
    """What ``Task.train`` returned, as a float: a real number (an ``int``, a ``float``, a numpy
    scalar, a one-element tensor; NaN or inf marks the trial diverged), else a one-line
    ``TypeError`` that shows the value and its type (``None``, a string, a bool, an array of
    several values, ...)."""
    from .._format import shorten
    from ..feedback import as_metric

    if not isinstance(value, (str, bytes, bytearray)):
        try:
            return as_metric(value)
        except ValueError:
            pass
    raise TypeError(
        "train must return the final metric as a real number (int, float or a numpy or "
        "tensor scalar; NaN or inf marks the trial diverged), got "
        f"{shorten(repr(value), 80)} ({type(value).__name__})"
    )


class Reporter:
    """``report(epoch, value)`` handed to ``Task.train``: records the intermediate value on the
    trial and raises ``optuna.TrialPruned`` when the pruner says so."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.history: list[tuple[int, float]] = []

    def __call__(self, epoch: int, value: float) -> None:
        epoch = V.integer("epoch", epoch, 0, V.MAX_STEPS)
        value = as_metric(value, name="report(epoch, value): value")
        self.history.append((epoch, value))
        if not math.isfinite(value):
            self.trial.set_user_attr("diverged", True)
            raise optuna().TrialPruned(f"metric is {value} at epoch {epoch} (diverged)")
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise optuna().TrialPruned(f"pruned at epoch {epoch} (value {value:.6g})")
