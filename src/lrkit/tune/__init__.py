"""Learning-rate and schedule search on Optuna (``pip install 'lrkit[tune]'``).

>>> from lrkit import tune
>>> result = tune.tune(tune.demo_task(), n_trials=20)           # doctest: +SKIP
>>> result.best_spec, result.best_value                          # doctest: +SKIP

The search space (:class:`SearchSpace`) covers the peak LR (log-uniform), the schedule family
(constant, cosine with warmup, one-cycle, step, cyclical, wsd) and each family's parameters;
every trial is an lrkit schedule whose spec string is stored on the trial
(``trial.user_attrs["schedule"]``). Optuna is imported only when a study is run.
"""

from __future__ import annotations

from typing import Any

from ._load import as_task, load_target
from ._loop import tune
from ._result import TuneResult
from ._space import (
    BLIND_LR_RANGE,
    FAMILIES,
    PARAMS,
    Param,
    SearchSpace,
    build_schedule,
    lr_range_from_finder,
)
from ._storage import DEFAULT_STORAGE, make_storage
from ._task import Reporter, Task

__all__ = [
    "BLIND_LR_RANGE",
    "DEFAULT_STORAGE",
    "FAMILIES",
    "PARAMS",
    "Param",
    "Reporter",
    "SearchSpace",
    "Task",
    "TuneResult",
    "as_task",
    "build_schedule",
    "demo_task",
    "load_target",
    "lr_range_from_finder",
    "make_storage",
    "torch_task",
    "tune",
]


def __getattr__(name: str) -> Any:  # torch-backed helpers, imported on first use
    if name in ("demo_task", "torch_task", "DEMO_TASK"):
        from . import _torch

        return getattr(_torch, name)
    raise AttributeError(f"module 'lrkit.tune' has no attribute {name!r}")
