"""The ``lrkit`` commands, one module each (``plot``, ``find``, ``compare``, ``tune``)."""

from ._target import OutputFailed

__all__ = ["OutputFailed"]
