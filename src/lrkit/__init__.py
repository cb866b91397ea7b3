"""lrkit: take the guesswork out of the learning rate.

The core (this package, minus the framework adapters ``lrkit.torch``, ``lrkit.keras`` and
``lrkit.optax``) imports only numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._imports import lazy_exports

if TYPE_CHECKING:  # imported on first use: ``import lrkit`` (and the command line) starts fast
    from . import schedules as schedules
    from .schedules import Schedule as Schedule
    from .schedules import from_dict as from_dict
    from .schedules import parse as parse

_EXPORTS = {
    "Schedule": "schedules",
    "from_dict": "schedules",
    "parse": "schedules",
    "schedules": "schedules",  # the submodule itself
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"  # the one place: pyproject.toml reads it, `lrkit --version` prints it

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
