"""Names of lrkit 0.1.0 that were renamed, kept working as deprecated aliases: one way to
take a former keyword, warn of a former attribute and load a former dataclass field."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from ._runtime import caller_level

T = TypeVar("T")


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


#: the default of a former keyword: tells "not passed" from any value, ``None`` included
UNSET: Any = _Unset()


class _DefaultInt(int):
    """An integer default that :func:`keyword` tells from the same value passed (by identity):
    it shows as the number in a signature."""


def default_int(value: int) -> int:
    """``value`` as the default of a renamed keyword's new name (see :func:`keyword`)."""
    return _DefaultInt(value)


def keyword(
    where: str, old: str, new: str, old_value: Any, new_value: Any, *, default: Any = None
) -> Any:
    """The value of an argument of ``where`` renamed ``old`` -> ``new``: ``new_value`` when
    ``old`` was not passed, else ``old_value`` with a ``DeprecationWarning`` naming ``new``;
    both given (``new_value`` not its ``default``, ``None`` or one made by
    :func:`default_int`, told apart from the same value passed): a one-line ``TypeError``, as
    Python's own for an argument given twice."""
    if old_value is UNSET:
        return new_value
    if new_value is not default:
        raise TypeError(
            f"{where} got both {new}= and {old}= ({old} is the former name of {new}): "
            f"pass {new} only"
        )
    warn(f"{where}: the argument {old}= was renamed {new}=")
    return old_value


def attribute(owner: str, old: str, new: str, why: str = "") -> None:
    """Warn that ``owner.old`` was renamed ``owner.new`` (``why``: the reason, if any)."""
    warn(f"{owner}.{old} was renamed {owner}.{new}" + (f" ({why})" if why else ""))


def warn(message: str) -> None:
    """A ``DeprecationWarning`` at the caller's first frame outside lrkit."""
    warnings.warn(message, DeprecationWarning, stacklevel=caller_level())


def former_field(old: str, new: str) -> Callable[[type[T]], type[T]]:
    """A dataclass decorator (applied over ``@dataclass``): the constructor still takes the
    field ``new`` by its former name ``old``, with a ``DeprecationWarning``, and an instance
    pickled when the field was ``old`` loads with it as ``new``."""

    def wrap(cls: type[T]) -> type[T]:
        init = cls.__init__
        where = f"{cls.__name__}()"

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            if old in kwargs:
                kwargs[new] = keyword(where, old, new, kwargs.pop(old), kwargs.get(new))
            init(self, *args, **kwargs)

        def __setstate__(self: Any, state: dict[str, Any]) -> None:
            state = dict(state)
            if old in state and new not in state:  # pickled by lrkit 0.1.0
                state[new] = state.pop(old)
            self.__dict__.update(state)

        # setattr: mypy refuses assigning to a method
        setattr(cls, "__init__", __init__)  # noqa: B010
        setattr(cls, "__setstate__", __setstate__)  # noqa: B010
        return cls

    return wrap


F = TypeVar("F", bound=Callable[..., Any])


def keyword_only(positional: int) -> Callable[[F], F]:
    """A decorator for a function whose options became keyword-only: a call that still passes
    them by position (as lrkit 0.1.0 took them) works, with a ``DeprecationWarning`` naming
    them. ``positional``: how many leading parameters stay positional (``self`` included);
    the options taken by position are the decorated function's keyword-only parameters, in
    order."""

    def wrap(fn: F) -> F:
        import inspect

        params = inspect.signature(fn).parameters.values()
        names = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
        where = f"{fn.__qualname__.removesuffix('.__init__')}()"

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if len(args) > positional:
                extra = args[positional:]
                if len(extra) > len(names):
                    raise TypeError(
                        f"{where} takes {positional} positional arguments but {len(args)} were "
                        "given"
                    )
                moved = names[: len(extra)]
                for name, value in zip(moved, extra):
                    if name in kwargs:
                        raise TypeError(f"{where} got multiple values for argument {name!r}")
                    kwargs[name] = value
                warn(
                    f"{where}: pass {', '.join(f'{n}=' for n in moved)} by keyword (taking it by "
                    "position is deprecated)"
                )
                args = args[:positional]
            return fn(*args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap
