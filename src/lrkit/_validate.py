"""Argument checks shared by the core. Every error names the parameter and the allowed range."""

from __future__ import annotations

import functools
import inspect
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ._format import shorten

#: the longest ``repr`` an error message shows whole; a longer one is cut (``... (N
#: characters)``), so that a message stays one readable line whatever was given
FMT_LIMIT = 200


def fmt(value: Any) -> str:
    """``repr(value)`` for an error message, on one line (a multi-line repr, an array's or a
    module's, has its lines joined by single spaces; an integer too long for ``str``, or a
    container holding one, described instead of raising Python's own ``ValueError``; cut to
    :data:`FMT_LIMIT` characters)."""
    try:
        text = repr(value)
        if "\n" in text:  # a line break and the indentation after it read as one space
            text = re.sub(r"\s*\n\s*", " ", text)
        return text if len(text) <= FMT_LIMIT else shorten(text, FMT_LIMIT)
    except ValueError as exc:  # an integer beyond Python's limit for str (4300 digits)?
        if isinstance(value, int):
            return digits(value)
        if "integer string conversion" in str(exc):  # a container holding one
            return f"a {type(value).__name__} holding an integer too long to print"
        return f"a {type(value).__name__} (its repr raised ValueError)"
    except Exception as exc:  # noqa: BLE001 - a repr that fails: the message is ours to give
        return f"a {type(value).__name__} (its repr raised {type(exc).__name__})"


def prefixed(prefix: str, error: BaseException) -> Exception:
    """``error`` (a ``ValueError`` or ``TypeError`` about some part) said of the whole: the same
    kind of error, its message after ``prefix`` (``"state['controllers'][1]: "``). Built as a
    plain ``ValueError`` or ``TypeError``: an error class of its own may take other arguments
    (a spec error takes its text and position)."""
    kind = ValueError if isinstance(error, ValueError) else TypeError
    return kind(f"{prefix}{error}")


def dict_given(value: Any) -> str:
    """What an error says of ``value`` given where a dict of known keys belongs: ``"a dict with
    keys ['a', 'b']"`` for a mapping, else its type's name."""
    if isinstance(value, Mapping):
        return f"a dict with keys {sorted(map(str, value))}"
    return type(value).__name__


def digits(value: int) -> str:
    """``value`` described by its number of digits (``str`` refuses more than 4300)."""
    try:
        n = len(str(abs(value)))
    except ValueError:
        n = int(math.log10(abs(value))) + 1
    return f"an integer with {n} digits"


def _brief_int(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return digits(value)
    return fmt(value)


def _schedule_hint(value: Any) -> str:
    """For a schedule given where a number goes (``warmup(cosine(...), ...)``): where a
    schedule goes instead."""
    if not type(value).__module__.startswith("lrkit.schedules"):
        return ""
    return (
        " (a schedule where a number goes: with_warmup(schedule, warmup_steps=N) warms up "
        "into a schedule, join([...], boundaries=[...]) chains schedules)"
    )


def _text_hint(value: Any) -> str:
    """For a number that arrived as text (YAML 1.1, PyYAML's, reads ``3e-4`` as a string)."""
    if not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    text = value.strip()
    mantissa, _, exponent = text.lower().partition("e")
    digits = mantissa.lstrip("+-")
    if exponent and (digits.isdigit() or exponent[0] not in "+-"):
        # YAML 1.1 wants a dot and a signed exponent: 3.0e-4, 1.0e+5
        dotted = mantissa if "." in digits else f"{mantissa}.0"
        signed = exponent if exponent[0] in "+-" else f"+{exponent}"
        return f" (text, not a number: YAML reads {text} as text; write {dotted}e{signed})"
    return " (text, not a number)"


def real_dtype(dtype: Any, *, integer: bool = False) -> bool:
    """Whether ``dtype`` (numpy's, JAX's or torch's) holds real numbers: integers or floats
    (``integer=True``: integers only), not bools or complex numbers (nor no dtype)."""
    if dtype is None:  # (numpy would read None as float64)
        return False
    if hasattr(dtype, "is_floating_point") and hasattr(dtype, "is_complex"):  # torch's
        if integer and dtype.is_floating_point:
            return False
        return not dtype.is_complex and str(dtype) != "torch.bool"
    import numpy as np

    try:
        d = np.dtype(dtype)
    except TypeError:
        return False
    if d.kind == "V" and d.names is None:  # a type of ml_dtypes (JAX's bfloat16, int4)
        whole = d.name.startswith(("int", "uint"))
        return (whole or not integer) and bool(d.itemsize <= 8)
    return d.kind in ("iu" if integer else "iuf")


def number(name: str, value: Any) -> float:
    """Return ``value`` as a finite float, or raise ``ValueError`` naming ``name``. A numpy
    scalar, or a 0-d numpy, JAX or torch array of real numbers, is the number it holds; a
    value traced by JAX (inside ``jit`` or ``vmap``) is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if "Tracer" in type(value).__name__ and type(value).__module__.startswith("jax"):
            raise ValueError(
                f"{name} must be a concrete real number, got a value traced by JAX "
                f"({type(value).__name__}): a schedule's parameters are fixed when it is built "
                "(to vary a peak LR under jit or vmap, build the schedule with peak 1 and "
                "multiply its compiled value by it: lrkit.optax.schedule(s)(count) * lr)"
            )
        dtype = getattr(value, "dtype", None)
        if (
            dtype is not None
            and getattr(value, "ndim", None) == 0
            and not isinstance(value, (str, bytes))
            and real_dtype(dtype)
        ):
            try:
                value = float(value)
            except (TypeError, ValueError):  # a void dtype that is no float type after all
                raise ValueError(f"{name} must be a finite real number, got {fmt(value)}") from None
        else:
            raise ValueError(
                f"{name} must be a finite real number, got {fmt(value)}"
                f"{_text_hint(value)}{_schedule_hint(value)}"
            )
    try:
        v = float(value)
    except OverflowError:  # an int beyond float64
        raise ValueError(f"{name} must be a finite real number, got {_brief_int(value)}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite real number, got {fmt(value)}")
    return v + 0.0  # -0.0 is 0.0: a value is the same after any round trip (text keeps no sign)


def positive(name: str, value: Any) -> float:
    v = number(name, value)
    if v <= 0:
        raise ValueError(f"{name} must be > 0 (allowed range: (0, inf)), got {fmt(value)}")
    return v


def non_negative(name: str, value: Any) -> float:
    v = number(name, value)
    if v < 0:
        raise ValueError(f"{name} must be >= 0 (allowed range: [0, inf)), got {fmt(value)}")
    return v


def step_count(name: str, value: Any, minimum: float) -> float:
    """A (possibly fractional) number of steps in ``[minimum, MAX_STEPS]``."""
    v = number(name, value)
    if not minimum <= v <= MAX_STEPS:
        raise ValueError(
            f"{name} must be a number of steps in [{minimum!r}, 2**53], got {fmt(value)}"
        )
    return v


def in_range(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    v = number(name, value)
    ok_low = v > low if low_open else v >= low
    ok_high = v < high if high_open else v <= high
    if not (ok_low and ok_high):
        # an infinite bound is never reached: a value must be finite
        lb = "(" if low_open or math.isinf(low) else "["
        hb = ")" if high_open or math.isinf(high) else "]"
        raise ValueError(f"{name} must be in {lb}{low}, {high}{hb}, got {fmt(value)}")
    return v


#: the largest count of steps (a length, a boundary) a schedule takes: float64 holds every
#: integer up to it exactly, so both evaluation paths see the same number
MAX_STEPS = 2**53


def _bound(value: float) -> str:
    if value == sys.maxsize:  # the longest a container can be (a deque's maxlen)
        return "sys.maxsize"
    return "2**53" if value == MAX_STEPS else repr(value)


def integer(name: str, value: Any, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer (a float with an integral value, numpy's included, is accepted) that is
    >= ``minimum`` (and <= ``maximum`` when given, e.g. :data:`MAX_STEPS`)."""
    flag = isinstance(value, bool)  # an int to Python, not a count to a user
    import numpy as np

    if (
        getattr(value, "ndim", None) == 0
        and not isinstance(value, np.generic)
        and hasattr(value, "item")
        and "Tracer" not in type(value).__name__
        and real_dtype(getattr(value, "dtype", None))
    ):
        value = value.item()  # a 0-d numpy, JAX or torch array: the number it holds

    if isinstance(value, np.floating) and not isinstance(value, float):
        value = float(value)  # np.float32, np.float16: as a Python float (exactly)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, np.integer):
        value = int(value)
    if maximum is not None and (
        flag or not isinstance(value, int) or not minimum <= value <= maximum
    ):
        raise ValueError(
            f"{name} must be an integer in [{minimum}, {_bound(maximum)}], got {_brief_int(value)}"
            f"{_text_hint(value)}"
        )
    if flag or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"{name} must be an integer >= {minimum} (allowed range: [{minimum}, inf)), "
            f"got {fmt(value)}{_text_hint(value)}"
        )
    return value


#: The largest seed: numpy's global RNG (and Optuna's TPE sampler, which seeds one) takes
#: ``[0, 2**32 - 1]``.
SEED_MAX = 2**32 - 1


def warmup_steps(value: Any) -> int:
    """A warmup's length, ``warmup_steps``: a number of steps (an :func:`integer` in
    ``[0, MAX_STEPS]``). A fraction below 1 is told how to count it: transformers reads such a
    ``warmup_steps`` (and ``warmup_ratio``) as a share of the run."""
    try:
        return integer("warmup_steps", value, 0, MAX_STEPS)
    except ValueError as error:
        if isinstance(value, float) and 0.0 < value < 1.0:
            raise ValueError(
                f"{error} (a number of steps; transformers reads a value below 1 as a share "
                "of the run: warmup_steps=math.ceil(share * num_training_steps))"
            ) from None
        raise


def seed(name: str, value: Any) -> int:
    """A seed: an integer in ``[0, SEED_MAX]``, what numpy, torch and Python all accept."""
    return integer(name, value, 0, SEED_MAX)


def takes(name: str, value: Any, signature: str, args: int) -> Any:
    """``value`` if it can be called with ``args`` positional arguments (as lrkit calls it),
    else a one-line ``TypeError`` naming ``name`` and the ``signature`` expected, raised when
    the callable is given rather than when lrkit first calls it (after a sweep, a fit). A
    callable whose signature Python cannot read (some builtins) is taken as it is."""
    try:
        sig = inspect.signature(value)
    except (TypeError, ValueError):
        return value
    try:
        sig.bind(*range(args))
    except TypeError:
        what = getattr(value, "__name__", type(value).__name__)
        raise TypeError(
            f"{name} must be a callable {signature}, taking {args} positional "
            f"argument{'' if args == 1 else 's'}; got {what}{sig}"
        ) from None
    return value


def not_a_class(name: str, value: Any) -> Any:
    """``value``, unless it is a class whose instances are the callable meant (a loss given as
    ``nn.CrossEntropyLoss`` for ``nn.CrossEntropyLoss()``): called with a batch's tensors, the
    class would make an instance of them, or fail deep inside its constructor; a one-line
    ``TypeError`` naming ``name`` then."""
    if isinstance(value, type) and any("__call__" in vars(k) for k in value.__mro__[:-1]):
        raise TypeError(
            f"{name} is the class {value.__module__}.{value.__qualname__}: give an instance, "
            f"{value.__qualname__}()"
        )
    return value


def loss_callable(loss_fn: Any, *, optional: bool = False) -> Any:
    """``loss_fn`` if it is a callable ``loss_fn(output, target)`` (or, with ``optional``,
    ``None``), else a one-line ``TypeError`` naming it: not callable, a loss's class rather
    than an instance (:func:`not_a_class`), or one that cannot take two arguments
    (:func:`takes`). The one check of every PyTorch ``loss_fn``."""
    if optional and loss_fn is None:
        return None
    if not callable(loss_fn):
        also = " or None" if optional else ""
        raise TypeError(
            f"loss_fn must be a callable loss_fn(output, target){also}, got {fmt(loss_fn)}"
        )
    not_a_class("loss_fn", loss_fn)
    return takes("loss_fn", loss_fn, "loss_fn(output, target)", 2)


def optional_callable(name: str, value: Any, signature: str, args: int | None = None) -> Any:
    """``value`` if it is ``None`` or callable (with ``args``: callable with that many
    positional arguments, :func:`takes`), else a ``TypeError`` naming ``name``."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a callable {signature} or None, got {fmt(value)}")
    if value is not None and args is not None:
        takes(name, value, signature, args)
    return value


def optional_text(name: str, value: Any, *, meaning: str = "") -> str | None:
    """``value`` if it is ``None`` or a string, else a one-line ``TypeError`` naming ``name``
    (``meaning``, e.g. ``"the task's name"``, is said in parentheses)."""
    if value is not None and not isinstance(value, str):
        said = f" ({meaning})" if meaning else ""
        raise TypeError(f"{name} must be a string{said} or None, got {fmt(value)}")
    return value


def utf8_text(name: str, value: str) -> str:
    """``value`` if UTF-8 can write it, else a one-line ``ValueError`` naming ``name``: text
    Python read from bytes it could not decode (an argument given in an ASCII locale holds
    them as lone surrogates) cannot be stored or shown."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        shown = value.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        raise ValueError(
            f"{name} must be text UTF-8 can write, got '{shown}' (bytes the locale could not "
            "decode: run with a UTF-8 locale, e.g. LC_ALL=C.UTF-8, or PYTHONUTF8=1)"
        ) from None
    return value


def flag(name: str, value: Any, *, spelled: str = "True or False") -> bool:
    """``value`` if it is a bool (numpy's included), else a ``ValueError`` naming ``name``: a
    string such as ``"false"`` from a config file is truthy, and must not switch a flag on."""
    if isinstance(value, bool):
        return value
    import numpy as np

    if isinstance(value, np.bool_):
        return bool(value)
    # in a config or spec, a quoted true or a word such as yes is read as text (it may or may
    # not have been written in quotes: the hint is right either way)
    hint = ""
    words = ("true", "false", "yes", "no")
    if spelled.islower() and isinstance(value, str) and value.strip().lower() in words:
        hint = " (text, not a boolean: write true or false, without quotes)"
    raise ValueError(f"{name} must be {spelled}, got {fmt(value)}{hint}")


def choice(
    name: str,
    value: Any,
    allowed: Sequence[str],
    hints: Mapping[str, str] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> str:
    """``value`` if it is one of the strings ``allowed``, else a ``ValueError`` naming ``name``
    (compared as a string only: an array or another object is refused, not compared);
    ``hints`` maps another library's spelling of a value to a pointer at the one meant;
    ``aliases`` maps a second spelling to the allowed one it stands for (returned instead)."""
    if isinstance(value, str) and aliases and value in aliases:
        value = aliases[value]
    if not isinstance(value, str) or value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        hint = (hints or {}).get(value) if isinstance(value, str) else None
        raise ValueError(
            f"{name} must be one of {options}, got {fmt(value)}" + (f" ({hint})" if hint else "")
        )
    return str(value)


def listed(name: str, value: Any, what: str) -> Any:
    """``value`` unchanged, or a ``ValueError`` naming ``name`` when it is a string or a
    mapping, which iterate as characters or keys where a list of ``what`` is expected."""
    if isinstance(value, (str, bytes, Mapping)):
        kind = "a mapping" if isinstance(value, Mapping) else "a string"
        text = repr(value)
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise ValueError(f"{name} must be a list of {what}, got {kind}: {shown}")
    return value


def sorted_ints(
    name: str,
    values: Any,
    minimum: int = 0,
    strict: bool = False,
    maximum: int | None = None,
) -> tuple[int, ...]:
    """A sequence of integers >= ``minimum`` (and <= ``maximum`` when given) in
    non-decreasing (or increasing) order."""
    listed(name, values, "integers")
    if not isinstance(values, Sequence):
        try:
            values = list(values)
        except TypeError:
            raise ValueError(f"{name} must be a list of integers, got {fmt(values)}") from None
    out = tuple(integer(f"{name}[{i}]", v, minimum, maximum) for i, v in enumerate(values))
    for i in range(1, len(out)):
        bad = out[i] <= out[i - 1] if strict else out[i] < out[i - 1]
        if bad:
            order = "strictly increasing" if strict else "sorted in non-decreasing order"
            raise ValueError(
                f"{name} must be {order}, but {name}[{i}]={out[i]} follows "
                f"{name}[{i - 1}]={out[i - 1]}"
            )
    return out


def keywords(fn: Any) -> tuple[list[str], bool]:
    """The names ``fn`` takes by keyword (``self`` left out), and whether it also takes
    ``**kwargs``: what :func:`options` checks a call's keywords against."""
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


_F = TypeVar("_F", bound=Callable[..., Any])


def checked_keywords(where: str, hints: Mapping[str, str] | None = None) -> Callable[[_F], _F]:
    """A decorator for a function (or an ``__init__``) without ``**kwargs``: a keyword it does
    not take is the one-line ``TypeError`` of :func:`options` (the option meant, from
    ``hints`` or a close spelling, and the options), not Python's own."""

    def wrap(fn: _F) -> _F:
        names, more = keywords(fn)
        if more:
            return fn
        allowed = frozenset(names)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if not kwargs.keys() <= allowed:
                options(where, kwargs, names, hints)
            return fn(*args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap


def keyword_only(
    where: str, *, peer_order: Sequence[str] = (), accepted: Sequence[str] = ()
) -> Callable[[_F], _F]:
    """A decorator for a function (or an ``__init__``) that takes its first parameters by
    position and the others by keyword: more positional arguments are the one-line
    ``TypeError`` of :func:`too_many_positional`, not Python's own. ``peer_order``: the
    positional order of the peer library whose call it mirrors (Keras'
    ``ReduceLROnPlateau(monitor, factor, patience, ...)``); the message then shows the call
    with keywords, when every argument given maps onto a name it takes (its parameters and
    ``accepted``, the names its ``**kwargs`` take)."""

    def wrap(fn: _F) -> _F:
        P = inspect.Parameter
        every = list(inspect.signature(fn).parameters.values())
        method = bool(every) and every[0].name == "self"
        params = [p for p in every if p.name != "self"]
        positional = [
            p.name for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)
        ]
        named = [p.name for p in params if p.kind not in (P.VAR_POSITIONAL, P.VAR_KEYWORD)]
        takes = set(named) | set(accepted)
        short = where.rsplit(".", 1)[-1]

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            given = args[1:] if method else args
            if len(given) > len(positional):
                shown = []
                for i, a in enumerate(given):
                    name = peer_order[i] if i < len(peer_order) else None
                    if i < len(positional) and name in (None, positional[i]):
                        shown.append(fmt(a))
                    elif i < len(positional) and isinstance(a, str):
                        shown = []  # text where the peer takes a number: its own order, a
                        break  # string for its own first parameter (mode='min')
                    elif name in takes and name not in kwargs:
                        shown.append(f"{name}={fmt(a)}")
                    else:
                        shown = []
                        break
                shown += [f"{k}={fmt(v)}" for k, v in kwargs.items()] if shown else []
                example = f"{short}({', '.join(shown)})" if shown else None
                listed = named + [n for n in accepted if n not in named]
                raise TypeError(
                    too_many_positional(where, positional, listed, len(given), example=example)
                )
            return fn(*args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap


def no_step(what: str) -> TypeError:
    """The error for a schedule called with no step (``what``: how it was called), as a
    Keras optimizer calls a learning rate that is a plain callable, with no argument."""
    return TypeError(
        f"{what} takes the step and got none (a Keras optimizer calls a plain callable "
        "learning rate with no argument): give Keras lrkit.keras.schedule(schedule)"
    )


def negative_at_step(
    name: str, value: float, step: int, *, built_at: int | None, what: str
) -> ValueError:
    """The one-line error for a value below 0 (or NaN, or an LR overflowed to infinity) that
    a schedule gave at ``step``, where an adapter sets it (``name``: what it is,
    ``"schedule: the learning rate"``, ``"momentum"``; ``what``: the scheduler or callback
    setting it, which checked its schedule when it was built at step ``built_at``; ``None``:
    nothing was checked up front)."""
    kind = "NaN" if value != value else "infinite" if value == math.inf else "negative"
    later = (
        f" (the schedule is {kind} at a step not checked when the {what} was built)"
        if built_at is None or step > built_at
        else ""
    )
    bound = "finite and >= 0" if value == math.inf else ">= 0"
    return ValueError(f"{name} must be {bound}, got {fmt(value)} at step {step}{later}")


def too_many_positional(
    where: str,
    positional: Sequence[str],
    params: Sequence[str],
    given: int,
    *,
    example: str | None = None,
) -> str:
    """The one-line message for a call of ``where`` with ``given`` positional arguments where
    it takes only ``positional`` (``params``: all it takes, which the message lists;
    ``example``: the call as it reads with keywords)."""
    n = len(positional)
    which = f" ({', '.join(positional)})" if positional else ""
    rest = (
        ("; give the others by keyword" if positional else "; give them by keyword")
        if set(params) - set(positional)
        else ""
    )
    if rest and example:
        rest += f", as in {example}"
    return (
        f"{where}: takes {n} positional argument{'' if n == 1 else 's'}{which} but "
        f"{given} {'was' if given == 1 else 'were'} given{rest} (parameters: {', '.join(params)})"
    )


def options(
    where: str, given: Any, allowed: Sequence[str], hints: Mapping[str, str] | None = None
) -> None:
    """A ``TypeError`` naming the first of the keyword names ``given`` that is not in
    ``allowed``, with a pointer to the option meant (``hints``: a name users of another
    library reach for -> what to use instead) and the accepted names."""
    bad = sorted(set(given) - set(allowed))
    if bad:
        hint = (hints or {}).get(bad[0])
        if hint is None:  # a misspelling of an option (probe_date for probe_data), or of a
            import difflib  # name a hint is for

            names = [*allowed, *(k for k in hints or {} if k not in allowed)]
            close = difflib.get_close_matches(bad[0], names, n=len(names), cutoff=0.8)

            def ratio(name: str) -> float:
                return difflib.SequenceMatcher(None, bad[0], name).ratio()

            # as close to several (man_lr: max_lr and min_lr): each is named, none is guessed
            top = ratio(close[0]) if close else None
            tied = sorted(n for n in close if ratio(n) == top)
            said = [n if n in allowed else f"{n} ({(hints or {})[n]})" for n in tied]
            if len(tied) > 1:
                hint = f"as close to {' as to '.join(said)}"
            elif tied:
                hint = f"did you mean {tied[0]}?" if tied[0] in allowed else (hints or {})[tied[0]]
        raise TypeError(
            f"{bad[0]} is not an option of {where}"
            + (f" ({hint})" if hint else "")
            + f"; options: {', '.join(sorted(allowed))}"
        )
