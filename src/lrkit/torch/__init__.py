"""PyTorch adapter for lrkit. ``torch`` is imported only when a name below is first used.

Each public name lives in a private submodule; the table maps name -> submodule.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # schedules driving an optimizer (foundation issue)
    "scheduler": "_scheduler",
    "LRKitScheduler": "_scheduler",
    # range test (finder issue)
    "find_lr": "_finder",
    # adaptive methods, divergence guard, LR-free optimizers (feedback issue)
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
    # torch.distributed helpers (tune issue)
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


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'lrkit.torch' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
