"""Keras 3 adapter for lrkit (``pip install 'lrkit[keras]'``). ``keras`` is imported only when a
name below is first used; choose the backend with ``KERAS_BACKEND`` (``jax``, ``torch`` or
``tensorflow``) before that.

* :func:`schedule` -- a ``keras.optimizers.schedules.LearningRateSchedule`` equal to the lrkit
  schedule (float32, bit for bit), serializable in ``.keras`` files.
* :class:`ReduceOnPlateau`, :class:`DivergenceGuard` -- callbacks on the framework-free
  controllers of :mod:`lrkit.feedback`; they also work when the optimizer holds a schedule.
* :class:`LRScheduler` (per batch or per epoch) and :class:`LRLogger` callbacks.
* :func:`find_lr` -- the range test, restoring weights and optimizer state exactly.

Importing ``lrkit.keras`` imports ``keras`` and registers the schedule classes with
``keras.saving`` (package ``"lrkit"``), so ``keras.saving.load_model`` finds them; the callbacks
and the finder are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._schedule import LRKitSchedule as LRKitSchedule
from ._schedule import ScaledSchedule as ScaledSchedule
from ._schedule import schedule as schedule

_EXPORTS: dict[str, str] = {
    "ReduceOnPlateau": "_callbacks",
    "ReduceLROnPlateau": "_callbacks",
    "DivergenceGuard": "_callbacks",
    "LRScheduler": "_callbacks",
    "LRLogger": "_callbacks",
    "find_lr": "_finder",
}

__all__ = sorted([*_EXPORTS, "LRKitSchedule", "ScaledSchedule", "schedule"])


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'lrkit.keras' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
