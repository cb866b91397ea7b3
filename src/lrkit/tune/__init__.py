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

from typing import TYPE_CHECKING

from .._imports import lazy_exports
from ._load import as_task, is_torch_tuple, load_target
from ._loop import ForeignStudyError, StudySpaceError, TuneWarning, check_range_test, tune
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
from ._storage import (
    DEFAULT_STORAGE,
    MAX_GRACE,
    MAX_HEARTBEAT,
    MAX_STUDY_NAME,
    DatabaseLostError,
    check_storage,
    check_writable,
    database_error,
    database_errors,
    lost_connection,
    make_storage,
    sqlite_file,
)
from ._task import Reporter, Task, check_metric

__all__ = [
    "BLIND_LR_RANGE",
    "DEFAULT_STORAGE",
    "MAX_GRACE",
    "MAX_HEARTBEAT",
    "MAX_STUDY_NAME",
    "FAMILIES",
    "PARAMS",
    "Param",
    "Reporter",
    "SearchSpace",
    "ForeignStudyError",
    "StudySpaceError",
    "Task",
    "TuneResult",
    "TuneWarning",
    "as_task",
    "build_schedule",
    "check_metric",
    "check_range_test",
    "check_storage",
    "check_writable",
    "DatabaseLostError",
    "database_error",
    "database_errors",
    "lost_connection",
    "demo_task",
    "is_torch_tuple",
    "load_target",
    "lr_range_from_finder",
    "make_storage",
    "sqlite_file",
    "torch_task",
    "tune",
]


if TYPE_CHECKING:  # the torch-backed helpers' real types for type checkers (never run)
    from ._torch import DEMO_TASK as DEMO_TASK
    from ._torch import demo_task as demo_task
    from ._torch import torch_task as torch_task

# torch-backed helpers, imported on first use
__getattr__, _dir = lazy_exports(
    __name__, {"demo_task": "_torch", "torch_task": "_torch", "DEMO_TASK": "_torch"}
)


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(_dir()))
