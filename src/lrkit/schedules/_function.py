"""``function(fn, lr=...)``: a schedule computed by a Python callable, ``lr * fn(step)``, the
counterpart of PyTorch's ``LambdaLR(optimizer, lr_lambda)`` (whose LR is
``base_lr * lr_lambda(step)``).

It is a schedule like the others where a schedule is *evaluated*: ``s(step)`` and
``s.values(steps)`` (the same float64 bits, ``fn`` called once per step on the host), every
combinator, plots, the PyTorch scheduler, and the Keras and optax value tables. What needs the
schedule *written* or *traced* is refused in one line: ``to_dict()`` and so every config and
JSON writer (the callable has no spec; PyTorch's ``LambdaLR`` does not save a lambda either),
:func:`lrkit.schedules.parse` of its ``str()``, and ``values(t, xp=jax.numpy)`` (the adapters'
``evaluation="formula"``). A framework with its own writer of Python functions (Keras'
``serialize_keras_object``) writes one through :func:`to_dict_with` and reads it back through
:func:`lrkit.schedules.from_dict_with`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _validate as v
from .._format import shorten
from ._base import (
    READING,
    Schedule,
    StepFailed,
    _format,
    _short_label,
    structure,
)

__all__ = [
    "Function",
    "checked_steps",
    "holds_callable",
    "reach",
    "to_dict_with",
]

_INF = math.inf


def _label(fn: Any) -> str:
    """How ``str()`` names ``fn``: its ``__qualname__`` (``<lambda>``, ``warmup``,
    ``Warmup.factor``) without the function it was defined in (``make.<locals>.``), a
    ``functools.partial``'s function, or the class of a callable object."""
    name = getattr(fn, "__qualname__", None)
    if isinstance(name, str) and name:
        return name.rpartition("<locals>.")[2]
    inner = getattr(fn, "func", None)  # functools.partial
    if inner is not None and inner is not fn:
        return f"partial({_label(inner)})"
    return f"<{type(fn).__qualname__} object>"


class _Same:
    """``fn`` compared by identity (``is``) and hashed by ``id``: two function schedules are
    equal when they hold the very same callable (it is never called to compare them)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.fn is self.fn

    def __hash__(self) -> int:
        return id(self.fn)

    def __repr__(self) -> str:
        return _label(self.fn)


class Function(Schedule):
    """``lr * fn(step)``: PyTorch's ``LambdaLR(optimizer, lr_lambda)`` with ``lr`` the
    optimizer's LR (``base_lr``) and ``fn`` the ``lr_lambda``.

    ``fn`` is called with the step, an ``int`` when it is a whole number (as ``LambdaLR``
    passes ``last_epoch``; also from ``values(steps)``, one call per step), the ``float``
    otherwise, and must return a finite real number: anything else (NaN, inf, ``None``, an
    exception) is a one-line ``ValueError`` naming the step. ``length`` (steps, optional) is
    what ``s.length`` reports (the default plot range; ``None``: no end), and bounds the steps
    lrkit calls ``fn`` at up front (:func:`reach`): a plot and the adapters' sign check span
    steps ``0..length``, a value table ``[0, length)``; without it no check calls ``fn`` up
    front (the PyTorch scheduler checks each LR when it sets it).

    It composes with every combinator and plots; it cannot be written (``to_dict()``, a config,
    a spec string) nor traced (``values(t, xp=jax.numpy)``, ``evaluation="formula"``): those
    raise in one line. Two function schedules are equal when they hold the same ``fn`` object
    and the same ``lr`` and ``length``."""

    name = "function"
    params = ("fn", "lr", "length")

    def __init__(self, fn: Callable[[Any], float], *, lr: float, length: int | None = None) -> None:
        if not callable(fn):
            raise TypeError(
                f"fn must be a callable fn(step) -> float (as PyTorch's LambdaLR lr_lambda), "
                f"got {v.fmt(fn)}"
            )
        self.fn = v.takes("fn", fn, "fn(step) -> float", 1)
        self.lr = v.non_negative("lr", lr)
        self._length = None if length is None else v.integer("length", length, 1, v.MAX_STEPS)

    @property
    def length(self) -> int | None:
        return self._length

    # ----------------------------------------------------------------- evaluation
    def _at(self, t: float) -> float:
        if type(t) is not int and t.is_integer():
            t = int(t)  # a whole step reaches fn as an int, as LambdaLR's last_epoch
        try:
            value = self.fn(t)
        except Exception as exc:
            raise self._raised(exc, t) from exc
        if type(value) is float and -_INF < value < _INF:
            return self.lr * value
        return self.lr * self._checked(value, t)

    def _values(self, t: Any, xp: Any) -> Any:
        if xp is not np:
            raise TypeError(
                f"{self} holds a Python callable, which cannot be traced with "
                f"{getattr(xp, '__name__', xp)!r}: evaluate it on the host (s.values(steps), "
                'the adapters\' evaluation="table" or "host")'
            )
        steps = np.asarray(t, dtype=np.float64)
        fn, lr = self.fn, self.lr
        out = np.empty(steps.size, dtype=np.float64)
        # one call per step, each as the scalar path makes it (the same bits: lr * fn(step))
        for i, x in enumerate(steps.reshape(-1).tolist()):
            step = int(x) if x.is_integer() else x
            try:
                value = fn(step)
            except Exception as exc:
                raise self._raised(exc, step) from exc
            if type(value) is not float or not -_INF < value < _INF:
                value = self._checked(value, step)
            out[i] = lr * value
        return out.reshape(steps.shape)

    def _hint(self) -> str:
        """The end of an error about ``fn`` at one step: without ``length``, how to keep the
        up-front value tables from calling it past the steps it covers."""
        if self._length is not None:
            return ""
        return (
            "; if fn covers a limited range of steps, pass length= (lrkit then calls it "
            "up front at steps 0..length only)"
        )

    def _raised(self, exc: Exception, step: float) -> StepFailed:
        return StepFailed(
            f"fn raised {type(exc).__name__} at step {step!r}: {shorten(str(exc), 100)} "
            f"(schedule {self}){self._hint()}"
        )

    def _checked(self, value: Any, step: float) -> float:
        """``value`` (not a finite Python float) as a finite float, else the one-line error."""
        x = _real(value)
        if x is None or not math.isfinite(x):
            raise StepFailed(
                f"fn must return a finite real number, got {shorten(repr(value), 60)} at step "
                f"{step!r} (schedule {self}){self._hint()}"
            )
        return x

    # ----------------------------------------------------------------- what cannot be done
    def to_dict(self) -> dict[str, Any]:
        if READING.get():  # equality, hashing, the nesting check: the callable by identity
            return {"name": self.name, "fn": _Same(self.fn), "lr": self.lr, "length": self.length}
        raise TypeError(unwritable(self))

    def __str__(self) -> str:
        text = f"{self.name}(fn={_label(self.fn)}, lr={_format(self.lr)}"
        if self._length is not None:
            text += f", length={self._length}"
        return text + ")"


def _real(value: Any) -> float | None:
    """``value`` as a float when it is a real number (a Python or numpy number, a 0-d array
    or tensor of numbers; not a bool), else ``None``."""
    if isinstance(value, (bool, np.bool_)) or "bool" in str(getattr(value, "dtype", "")):
        return None
    if not isinstance(value, numbers.Real) and getattr(value, "ndim", None) != 0:
        return None
    if "complex" in str(getattr(value, "dtype", "")):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def unwritable(s: Schedule) -> str:
    """The one-line error for writing ``s`` (a schedule holding a Python callable)."""
    return (
        f"{_short_label(s, 100)} holds a Python callable and cannot be written as a spec, "
        "dict or config: build it from lrkit's families (S.join, S.warmup, S.cosine, ...) to "
        "write it, or keep the function in code"
    )


def holds_callable(s: Schedule) -> bool:
    """Whether ``s`` is, or is composed of, a :class:`Function` (it can then be neither
    written nor traced)."""

    def walk(x: Any) -> bool:
        if isinstance(x, _Same):
            return True
        if isinstance(x, dict):
            return any(walk(y) for y in x.values())
        if isinstance(x, (list, tuple)):
            return any(walk(y) for y in x)
        return False

    return walk(structure(s))


def to_dict_with(s: Schedule, *, write: Callable[[Any], Any]) -> dict[str, Any]:
    """``s.to_dict()`` with the ``fn`` of every function schedule inside ``s`` written as
    ``write(fn)`` (a framework's own serializer of Python functions, e.g. Keras'
    ``serialize_keras_object``) rather than refused; :func:`lrkit.schedules.from_dict_with`
    with the matching reader rebuilds an equal schedule. For a schedule holding no callable it
    is ``s.to_dict()``."""

    def walk(x: Any) -> Any:
        if isinstance(x, _Same):
            return write(x.fn)
        if isinstance(x, dict):
            return {k: walk(y) for k, y in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(y) for y in x]
        return x

    out: dict[str, Any] = walk(structure(s))
    return out


def reach(s: Schedule, *, table: bool = False) -> float:
    """How many steps from 0 lrkit may evaluate ``s`` at up front: ``n`` such that
    ``s.values(range(n))`` calls no function schedule inside it at a step past its
    ``length`` (``math.inf`` for a schedule that holds none).

    A function schedule reaches steps ``0..length`` (``length + 1``: a plot and the sign check
    end at its length, as for any schedule) and, with ``table=True`` (a value table: the steps
    of a ``length``-step run), ``[0, length)``; without ``length``, none for a check (``0``) and
    any for a table (``math.inf``: its ``limit`` bounds it). A join's segment only sees its own
    steps; the parts of a product, sum, difference, scale or clamp see every step."""
    from ._compose import Clamp, Difference, Join, Scale, _Pointwise

    if not holds_callable(s):
        return _INF
    if isinstance(s, Function):
        if s.length is None:
            return _INF if table else 0
        return s.length if table else s.length + 1
    if isinstance(s, Join):
        out = _INF
        starts = (0, *s.boundaries)
        ends = (*s.boundaries, _INF)
        for part, start, end in zip(s.schedules, starts, ends):
            n = reach(part, table=table)
            if n < end - start:  # the segment calls fn past its reach before its end
                out = min(out, start + n)
        return out
    if isinstance(s, _Pointwise):
        return min(reach(p, table=table) for p in s.schedules)
    if isinstance(s, Difference):
        return min(reach(s.a, table=table), reach(s.b, table=table))
    if isinstance(s, (Scale, Clamp)):
        return reach(s.schedule, table=table)
    return 0  # a schedule of another kind holding one: nothing known


def checked_steps(s: Schedule) -> Any:
    """The steps ``s`` is checked at up front (its sign when an adapter takes it, its peak):
    those of :func:`lrkit.textplot.check_steps` below
    :func:`reach`, so a function inside it is called at no step past its ``length`` (at none
    without one); possibly none."""
    from ..textplot import check_steps

    steps = check_steps(s)
    return steps[steps < reach(s)]
