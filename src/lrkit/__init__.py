"""lrkit: take the guesswork out of the learning rate.

The core (this package, minus the framework adapters ``lrkit.torch``, ``lrkit.keras`` and
``lrkit.optax``) imports only numpy.
"""

from __future__ import annotations

from . import schedules
from .schedules import Schedule, from_dict, parse

__all__ = ["Schedule", "from_dict", "parse", "schedules"]
__version__ = "0.1.0"  # the one place: pyproject.toml reads it, `lrkit --version` prints it
