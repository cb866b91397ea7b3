"""PyTorch adapter for lrkit (``pip install 'lrkit[torch]'``). ``torch`` is imported only when
a name below is first used; without PyTorch that raises ``ImportError: lrkit.torch needs torch:
pip install 'lrkit[torch]'``.

Each public name lives in a private submodule; the table maps name -> submodule.
"""

from __future__ import annotations

from .._imports import lazy_exports

_EXPORTS: dict[str, str] = {
    # schedules driving an optimizer
    "scheduler": "_scheduler",
    "LRKitScheduler": "_scheduler",
    "lrkit_schedulers": "_scheduler",
    "report": "_scheduler",
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
    "evaluate": "_train",
    "seed_all": "_train",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
