"""PyTorch adapter for lrkit (``pip install 'lrkit[torch]'``). ``torch`` is imported only when
a name below is first used; without PyTorch that raises ``ImportError: lrkit.torch needs torch:
pip install 'lrkit[torch]'``.

Each public name lives in a private submodule; the table maps name -> submodule. The same
imports under ``TYPE_CHECKING`` give type checkers the real types (never run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._imports import lazy_exports

if TYPE_CHECKING:  # each name of _EXPORTS from its submodule (``as``: re-exported)
    from ._adaptive import EffectiveLRLogger as EffectiveLRLogger
    from ._adaptive import effective_lr as effective_lr
    from ._distributed import all_reduce_mean as all_reduce_mean
    from ._distributed import broadcast_object as broadcast_object
    from ._distributed import get_rank as get_rank
    from ._distributed import get_world_size as get_world_size
    from ._distributed import is_main_process as is_main_process
    from ._distributed import main_process_only as main_process_only
    from ._finder import BatchLayoutError as BatchLayoutError
    from ._finder import check_batch as check_batch
    from ._finder import check_materialized as check_materialized
    from ._finder import data_generators as data_generators
    from ._finder import find_lr as find_lr
    from ._guard import DivergenceError as DivergenceError
    from ._guard import DivergenceGuard as DivergenceGuard
    from ._lrfree import evaluating as evaluating
    from ._lrfree import finalize as finalize
    from ._lrfree import is_schedule_free as is_schedule_free
    from ._lrfree import lrfree_lr as lrfree_lr
    from ._lrfree import prodigy as prodigy
    from ._lrfree import reestimate_batchnorm as reestimate_batchnorm
    from ._lrfree import schedule_free as schedule_free
    from ._scheduler import LRKitScheduler as LRKitScheduler
    from ._scheduler import group_ratios as group_ratios
    from ._scheduler import lrkit_schedulers as lrkit_schedulers
    from ._scheduler import report as report
    from ._scheduler import scheduler as scheduler
    from ._train import DataRanOutWarning as DataRanOutWarning
    from ._train import History as History
    from ._train import evaluate as evaluate
    from ._train import fit as fit
    from ._train import seed_all as seed_all

_EXPORTS: dict[str, str] = {
    # schedules driving an optimizer
    "scheduler": "_scheduler",
    "LRKitScheduler": "_scheduler",
    "lrkit_schedulers": "_scheduler",
    "report": "_scheduler",
    "group_ratios": "_scheduler",
    # range test
    "find_lr": "_finder",
    "data_generators": "_finder",
    "check_batch": "_finder",
    "check_materialized": "_finder",
    "BatchLayoutError": "_finder",
    # adaptive methods, divergence guard, LR-free optimizers
    "effective_lr": "_adaptive",
    "EffectiveLRLogger": "_adaptive",
    "DivergenceGuard": "_guard",
    "DivergenceError": "_guard",
    "schedule_free": "_lrfree",
    "prodigy": "_lrfree",
    "evaluating": "_lrfree",
    "finalize": "_lrfree",
    "reestimate_batchnorm": "_lrfree",
    "is_schedule_free": "_lrfree",
    "lrfree_lr": "_lrfree",
    # torch.distributed helpers
    "get_rank": "_distributed",
    "get_world_size": "_distributed",
    "is_main_process": "_distributed",
    "main_process_only": "_distributed",
    "broadcast_object": "_distributed",
    "all_reduce_mean": "_distributed",
    # the training loop of the workflows (compare, tune, demo, CLI)
    "fit": "_train",
    "History": "_train",
    "DataRanOutWarning": "_train",
    "evaluate": "_train",
    "seed_all": "_train",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
