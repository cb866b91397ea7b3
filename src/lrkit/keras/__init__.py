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
and the finder are loaded on first use (imports under ``TYPE_CHECKING`` give type checkers
their real types).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from .._imports import install_command, install_hint, lazy_exports, require


def _configured_backend() -> str:
    """The backend Keras will load: ``KERAS_BACKEND``, else ``$KERAS_HOME/keras.json``."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return str(json.load(f).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


#: the install line of each Keras backend's package
_BACKENDS = {
    "jax": install_command("keras"),
    "torch": install_command("torch"),
    "tensorflow": install_command(package="tensorflow"),
}

try:
    keras = require("keras", "keras")
except (ImportError, ValueError) as exc:  # missing backend package, or an unknown name
    if isinstance(exc, ImportError) and exc.name == "keras":
        raise  # keras itself is not installed: the plain install hint
    cause = exc.__cause__ if isinstance(exc.__cause__, ImportError) else exc  # not the hint
    backend = _configured_backend()
    known = f" ({_BACKENDS[backend]})" if backend in _BACKENDS else ""
    others = " or ".join(
        f"KERAS_BACKEND={b} ({_BACKENDS[b]})" for b in ("jax", "torch") if b != backend
    )
    raise ImportError(
        f"lrkit.keras needs Keras 3 and its backend, and importing keras failed ({cause}). "
        f"Keras is configured for the {backend!r} backend (KERAS_BACKEND or "
        f"~/.keras/keras.json): install it{known}, or set {others} before the first import of "
        "keras or lrkit.keras."
    ) from exc
if int(str(getattr(keras, "__version__", "0")).split(".")[0]) < 3:
    raise ImportError(
        f"{install_hint('Keras 3', 'keras', feature='lrkit.keras')} "
        f"(found keras {keras.__version__})"
    )

from ._schedule import LRKitSchedule as LRKitSchedule  # noqa: E402
from ._schedule import ScaledSchedule as ScaledSchedule  # noqa: E402
from ._schedule import schedule as schedule  # noqa: E402

if TYPE_CHECKING:  # the lazily loaded names of _EXPORTS from their submodules (never run)
    from ._callbacks import DivergenceGuard as DivergenceGuard
    from ._callbacks import LRLogger as LRLogger
    from ._callbacks import LRScheduler as LRScheduler
    from ._callbacks import ReduceLROnPlateau as ReduceLROnPlateau
    from ._callbacks import ReduceOnPlateau as ReduceOnPlateau
    from ._finder import find_lr as find_lr

_EXPORTS: dict[str, str] = {
    "LRKitSchedule": "_schedule",  # imported above: keras.saving finds the classes
    "ScaledSchedule": "_schedule",
    "schedule": "_schedule",
    "ReduceOnPlateau": "_callbacks",
    "ReduceLROnPlateau": "_callbacks",
    "DivergenceGuard": "_callbacks",
    "LRScheduler": "_callbacks",
    "LRLogger": "_callbacks",
    "find_lr": "_finder",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
