"""The ``lrkit`` commands, one module each (``plot``, ``find``, ``compare``, ``tune``)."""

from ._target import OutputFailed, print_error

__all__ = ["OutputFailed", "print_error"]
