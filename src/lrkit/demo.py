"""Former home of :mod:`lrkit.torch.demo` (the built-in tasks need PyTorch): importing it warns
with a ``DeprecationWarning`` and gives that module's public names."""

from __future__ import annotations

from . import _renamed

_renamed.warn("lrkit.demo was renamed lrkit.torch.demo (its tasks need PyTorch)")

from .torch.demo import *  # noqa: E402, F403
from .torch.demo import __all__  # noqa: E402, F401
