"""Spec strings: a small grammar, parsed by a tokenizer and a recursive-descent parser (never
``eval``). ``str(schedule)`` writes one; :func:`parse` reads it back.

Grammar::

    spec    := call EOF
    call    := NAME "(" [ arg ("," arg)* [","] ] ")"
    arg     := NAME "=" value | value               (positional args come first)
    value   := call | list | NUMBER | STRING | "true" | "false" | "none" | NAME
    list    := "[" [ value ("," value)* [","] ] "]"

Numbers are decimal (``1``, ``-2.5``, ``3e-4``); strings use double or single quotes; a bare
NAME that is not a call reads as a string (``mode=triangular2``), and so does a bare word of
digits and hyphenated names (``decay=1-sqrt``).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import _validate as V
from ._base import (
    MAX_DEPTH,
    REGISTRY,
    SPEC_READER,
    Schedule,
    missing_params,
    param_hint,
    unknown_params,
)
from ._function import Function, checked_steps

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<word>\d+(?:-[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<punct>[()\[\],=])
    """,
    re.VERBOSE,
)

_KEYWORDS: dict[str, Any] = {
    "true": True,
    "false": False,
    "none": None,
    "True": True,
    "False": False,
    "None": None,
    "null": None,
}


#: names that spec strings and dicts accept beside the families: each builds another
#: schedule (``with_warmup(...)`` a ``join``), with the family's ``name``, ``params`` and
#: ``peer_names`` and a constructor that returns what it builds
FORMS: dict[str, Any] = {}


def spec_names() -> list[str]:
    """The names usable in spec strings and dicts: the families and the :data:`FORMS`."""
    return sorted([*REGISTRY, *FORMS])


def _known() -> str:
    return ", ".join(spec_names())


def _plain(name: str) -> str:
    """A schedule name as :data:`_OTHER_NAMES` reads it: without case, ``_`` or ``-``."""
    return name.lower().replace("_", "").replace("-", "")


#: lrkit's spelling of the schedules other libraries (PyTorch, Keras, optax, Hugging Face)
#: name otherwise, with their names for it; the finder's "warmup-cosine" among them
_SPELLED_OTHERWISE = {
    "with_warmup(cosine(0.1, total_steps=1000), warmup_steps=100)": (
        "warmup_cosine", "warmup_cosine_decay", "warmup_cosine_decay_schedule",
        "cosine_with_warmup",
    ),
    "cosine(0.1, total_steps=1000)": (
        "cosine_decay", "cosine_decay_schedule", "cosine_annealing", "CosineAnnealingLR",
    ),
    "cosine_restarts(0.1, T_0=100)": (
        "CosineAnnealingWarmRestarts", "CosineDecayRestarts", "sgdr_schedule",
    ),
    "onecycle(0.1, total_steps=1000)": ("OneCycleLR", "cosine_onecycle_schedule"),
    "onecycle(0.1, total_steps=1000, anneal_strategy=linear)": ("linear_onecycle_schedule",),
    "cyclic(0.001, max_lr=0.1, step_size_up=500)": ("CyclicLR",),
    "exponential(0.1, gamma=0.99)": ("ExponentialLR", "exponential_decay"),
    "step(0.1, step_size=100, gamma=0.5)": ("StepLR",),
    "multistep(0.1, milestones=[300, 600])": ("MultiStepLR",),
    "polynomial(0.1, total_steps=1000, power=2)": (
        "PolynomialLR", "PolynomialDecay", "polynomial_schedule",
    ),
    "inverse_time(0.1, decay_steps=100, decay_rate=0.5)": ("InverseTimeDecay",),
    "piecewise_constant([300, 600], values=[0.1, 0.01, 0.001])": (
        "PiecewiseConstantDecay", "piecewise_constant_schedule",
    ),
    "linear(0.1, end_lr=0.0, total_steps=1000)": ("linear_schedule",),
    "wsd(0.1, total_steps=1000, warmup_steps=100)": ("warmup_stable_decay",),
}  # fmt: skip
#: each of those names, as :func:`_plain` reads it: lrkit's spelling
_OTHER_NAMES = {
    _plain(name): spelled for spelled, names in _SPELLED_OTHERWISE.items() for name in names
}


def _unknown_name(name: Any) -> str:
    """What to write instead of an unknown schedule ``name``: lrkit's spelling of another
    library's name, or the nearest name lrkit knows, then every name it knows."""
    said = ""
    if isinstance(name, str):
        other = _OTHER_NAMES.get(_plain(name))
        if other is not None:
            said = f"; in lrkit, e.g. {other}"
        elif near := difflib.get_close_matches(name, spec_names(), n=1):
            said = f"; did you mean {near[0]!r}?"
    return f"{V.fmt(name)}{said} (known: {_known()})"


@functools.cache
def _arg_names(cls: type[Schedule]) -> tuple[str, ...]:
    """The constructor's parameter names in declared order: a spec's positional arguments map
    onto them (``cosine(0.1, 1000)`` is ``cosine(lr=0.1, total_steps=1000)``), although the
    constructor itself takes all but the first by keyword."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in inspect.signature(cls).parameters.values() if p.kind in named)


@functools.cache
def _required(cls: type[Schedule]) -> tuple[str, ...]:
    """The constructor's parameters that have no default."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind in named and p.default is inspect.Parameter.empty
    )


def _missing(cls: type[Schedule], given: Mapping[str, Any]) -> str | None:
    """``"cosine() missing required parameter 'total_steps' (parameters: ...)"`` or None."""
    missing = [n for n in _required(cls) if n not in given]
    if not missing:
        return None
    return missing_params(cls.name, missing, _arg_names(cls))


#: how much of a long spec the message shows on each side of the error's position
_CONTEXT = 60


def _excerpt(text: str, pos: int) -> tuple[str, int]:
    """The part of ``text`` shown under an error (all of it when short, else ``_CONTEXT``
    characters either side of ``pos``, cut ends marked ``...``) on one line (a spec written
    over several lines, as in a YAML block, has its line breaks shown as spaces, so that the
    caret stays under ``pos``), and ``pos`` within it."""
    start, end = max(0, pos - _CONTEXT), min(len(text), pos + _CONTEXT)
    head = "..." if start > 0 else ""
    tail = "..." if end < len(text) else ""
    return head + re.sub(r"\s", " ", text[start:end]) + tail, pos - start + len(head)


class SpecError(ValueError):
    """A malformed spec string; the message gives the position and points at it (the first
    line says what is wrong; the next two show the spec, or the part of it around the
    position, with a caret under it)."""

    def __init__(self, message: str, text: str, pos: int) -> None:
        self.pos = pos
        self.text = text
        self._message = message
        shown, at = _excerpt(text, pos)
        super().__init__(
            f"invalid schedule spec at position {pos}: {message}\n  {shown}\n  {' ' * at}^"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt from its parts, not from ``args`` (the formatted message): a SpecError
        # raised in a worker process reaches the parent as itself (pickle, copy)
        return (type(self), (self._message, self.text, self.pos), self.__dict__)


class _Tok:
    __slots__ = ("kind", "text", "pos")

    def __init__(self, kind: str, text: str, pos: int) -> None:
        self.kind, self.text, self.pos = kind, text, pos


#: what a spec of a function schedule is refused with: it holds a Python callable, which a
#: spec cannot name (the grammar never imports nor evaluates anything)
_FUNCTION = (
    "a function schedule holds a Python callable and cannot be parsed: build it in code with "
    "lrkit.schedules.function(fn, lr=...), or write it from lrkit's families"
)


def _function_call(text: str, pos: int) -> int | None:
    """Where ``function(`` begins before ``pos`` in ``text`` (the ``str()`` of a function
    schedule, ``function(fn=<lambda>, ...)``, stops the tokenizer at ``<``), else ``None``."""
    found = None
    for m in re.finditer(r"(?<![A-Za-z0-9_])function\s*\(", text[:pos]):
        found = m.start()
    return found


def _tokenize(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            at = _function_call(text, pos) if "function" not in REGISTRY else None
            if at is not None:
                raise SpecError(_FUNCTION, text, at)
            if text[pos] in "\"'":  # a quote that no string token matched: never closed
                raise SpecError(f"unterminated string: the {text[pos]} is never closed", text, pos)
            raise SpecError(f"unexpected character {text[pos]!r}", text, pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    out.append(_Tok("eof", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, message: str, tok: _Tok | None = None) -> SpecError:
        tok = tok or self.peek()
        found = "end of input" if tok.kind == "eof" else V.fmt(tok.text)
        return SpecError(f"{message}, found {found}", self.text, tok.pos)

    def expect(self, text: str) -> _Tok:
        tok = self.peek()
        if tok.kind != "punct" or tok.text != text:
            raise self.fail(f"expected {text!r}")
        return self.take()

    def spec(self) -> Schedule:
        tok = self.peek()
        if tok.kind != "name":
            raise self.fail("expected a schedule name such as cosine(...)")
        result = self.value()
        if not isinstance(result, Schedule):
            raise self.fail("expected a schedule call such as cosine(...)", tok)
        if self.peek().kind != "eof":
            raise self.fail("expected end of input")
        return result

    def value(self) -> Any:
        tok = self.peek()
        if tok.kind == "number":
            self.take()
            text = tok.text
            if re.fullmatch(r"[+-]?\d+", text):
                try:
                    return int(text)
                except ValueError:  # beyond Python's limit on integer string conversion
                    digits = len(text.lstrip("+-"))
                    raise SpecError(
                        f"integer with {digits} digits (at most {sys.get_int_max_str_digits()})",
                        self.text,
                        tok.pos,
                    ) from None
            return float(text)
        if tok.kind == "string":
            self.take()
            body = tok.text[1:-1]
            return re.sub(r"\\(.)", r"\1", body)
        if tok.kind == "punct" and tok.text == "[":
            return self.nested(self.list_, tok)
        if tok.kind == "word":  # a bare word starting with digits, e.g. decay=1-sqrt
            self.take()
            return tok.text
        if tok.kind == "name":
            self.take()
            nxt = self.peek()
            if nxt.kind == "punct" and nxt.text == "(":
                return self.nested(lambda: self.call(tok), tok)
            if tok.text in _KEYWORDS:
                return _KEYWORDS[tok.text]
            return tok.text
        raise self.fail("expected a value (number, string, list or schedule)")

    def nested(self, read: Any, tok: _Tok) -> Any:
        if self.depth >= MAX_DEPTH:
            raise self.fail(f"schedules and lists nested more than {MAX_DEPTH} deep", tok)
        self.depth += 1
        try:
            return read()
        finally:
            self.depth -= 1

    def list_(self) -> list[Any]:
        self.expect("[")
        items: list[Any] = []
        while not (self.peek().kind == "punct" and self.peek().text == "]"):
            items.append(self.value())
            if self.peek().kind == "punct" and self.peek().text == ",":
                self.take()
            elif not (self.peek().kind == "punct" and self.peek().text == "]"):
                raise self.fail("expected ',' or ']'")
        self.expect("]")
        return items

    def call(self, name_tok: _Tok) -> Schedule:
        cls = REGISTRY.get(name_tok.text) or FORMS.get(name_tok.text)
        if cls is None and name_tok.text == "function":
            raise SpecError(_FUNCTION, self.text, name_tok.pos)
        if cls is None:
            raise SpecError(
                f"unknown schedule {_unknown_name(name_tok.text)}", self.text, name_tok.pos
            )
        self.expect("(")
        order = _arg_names(cls)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        where: dict[str, int] = {}  # each given parameter's value: where its error points
        spots: list[int] = []  # each positional argument's value
        while not (self.peek().kind == "punct" and self.peek().text == ")"):
            tok = self.peek()
            if tok.kind == "eof":
                raise self.fail("expected ')'")
            after = self.toks[self.i + 1]
            if tok.kind == "name" and after.kind == "punct" and after.text == "=":
                self.take()
                self.take()
                if tok.text not in cls.params:
                    # a peer's name (T_max, alpha, ...) gets the hint Python's callers get
                    hint = param_hint(cls, [tok.text], cls.params)
                    raise SpecError(
                        f"{cls.name}() has no parameter {V.fmt(tok.text)} "
                        f"(parameters: {', '.join(cls.params)})" + (f"; {hint}" if hint else ""),
                        self.text,
                        tok.pos,
                    )
                if tok.text in kwargs:
                    raise SpecError(f"parameter {V.fmt(tok.text)} given twice", self.text, tok.pos)
                where[tok.text] = self.peek().pos
                kwargs[tok.text] = self.value()
            else:
                if tok.kind == "punct" and tok.text == ",":  # an empty argument: ``f(1,,)``
                    raise self.fail("expected a value (number, string, list or schedule)")
                if kwargs:
                    raise self.fail("positional argument after keyword argument")
                # ``add(a, b, c)``, ``mul(a, b)``: the schedules one by one, as the Python
                # ``add(a, b, c)`` takes them (a list, ``add([a, b, c])``, is the same)
                variadic = order == ("schedules",) and bool(args)
                if variadic and not isinstance(args[0], Schedule):
                    variadic = False
                if len(args) >= len(order) and not variadic and order == ("schedules",):
                    raise SpecError(
                        f"{cls.name}() takes schedules, as a list or one by one; its first "
                        f"argument, {V.fmt(args[0])}, is not a schedule (write a number as "
                        f"constant({V.fmt(args[0])}))"
                        if not isinstance(args[0], list)
                        else f"{cls.name}() takes its schedules as one list or one by one, "
                        "not a list and more",
                        self.text,
                        tok.pos,
                    )
                if len(args) >= len(order) and not variadic:
                    raise self.fail(
                        f"too many positional arguments: {cls.name}() takes at most {len(order)} "
                        f"({', '.join(order)})"
                    )
                where.setdefault(order[min(len(args), len(order) - 1)], tok.pos)
                spots.append(tok.pos)
                args.append(self.value())
            if self.peek().kind == "punct" and self.peek().text == ",":
                self.take()
            elif not (self.peek().kind == "punct" and self.peek().text == ")"):
                raise self.fail("expected ',' or ')'")
        self.expect(")")
        one_by_one: list[int] = []  # where each of add(a, b, ...)'s schedules is
        if order == ("schedules",) and args and isinstance(args[0], Schedule):
            args = [args]  # add(a, b, ...) as add([a, b, ...])
            one_by_one = spots
        for name, value in zip(order, args):
            if name in kwargs:  # by position and by keyword: at the keyword's value
                at = where.get(name, name_tok.pos)
                raise SpecError(f"parameter {V.fmt(name)} given twice", self.text, at)
            kwargs[name] = value
        missing = _missing(cls, kwargs)
        if missing:
            raise SpecError(missing, self.text, name_tok.pos)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError, OverflowError) as exc:
            # the error names the parameter first ("total_steps must be ...",
            # "boundaries[1] must ..."): point at its value when the spec gave one; for
            # "schedules[1] ..." of add(a, b, ...), at the second of the schedules given
            named = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?", str(exc))
            pos = where.get(named.group(1) if named else "", name_tok.pos)
            if named and named.group(1) == "schedules" and named.group(2) is not None:
                i = int(named.group(2))
                if i < len(one_by_one):
                    pos = one_by_one[i]
            raise SpecError(f"{cls.name}(): {exc}", self.text, pos) from None


def parse(spec: str) -> Schedule:
    """Parse a spec string such as ``"cosine(lr=0.1, total_steps=1000)"`` into a schedule.

    Raises :class:`SpecError` (a ``ValueError``) with the position of the error."""
    if isinstance(spec, Schedule):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"spec must be a string, got {type(spec).__name__}")
    return _Parser(spec).spec()


def _decode(value: Any, depth: int) -> Any:
    # any mapping and any sequence other than a string: also a config library's containers
    # (OmegaConf's DictConfig and ListConfig) and tuples
    if isinstance(value, Mapping):
        return _from_dict(value, depth + 1)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if depth >= MAX_DEPTH:
            raise _TooDeep(f"d: schedules and lists nested more than {MAX_DEPTH} deep")
        out = []
        for i, v in enumerate(value):
            try:
                out.append(_decode(v, depth + 1))
            except _TooDeep:
                raise
            except ValueError as exc:
                raise ValueError(f"[{i}]{_where(exc)}") from None
        return out
    return value


class _TooDeep(ValueError):
    """Nesting beyond ``MAX_DEPTH``: said once, without the path of every level."""


def _where(exc: ValueError) -> str:
    """``exc``'s message after the path of a nested entry: ``[1]: ...`` or ``: ...``."""
    text = str(exc)
    return text if text.startswith("[") else f": {text}"


def from_dict(d: Any) -> Schedule:
    """Rebuild a schedule from :meth:`Schedule.to_dict` output (any mapping: nested
    schedules may be any mappings and their lists any sequences, e.g. a YAML or OmegaConf
    config's)."""
    return _from_dict(d, 0)


def _from_dict(d: Any, depth: int) -> Schedule:
    if depth >= MAX_DEPTH:
        raise _TooDeep(f"d: schedules and lists nested more than {MAX_DEPTH} deep")
    if isinstance(d, Mapping) and "name" not in d:
        # its keys, not its values: a whole config passed by mistake may hold secrets
        keys = [V.fmt(k) for k in list(d)[:8]]
        more = f", ... ({len(d)} keys)" if len(d) > 8 else ""
        raise ValueError(
            f"d must be a dict with a 'name' key, got a {type(d).__name__} with keys "
            f"{', '.join(keys) or 'none'}{more}"
        )
    if not isinstance(d, Mapping):
        raise ValueError(f"d must be a dict with a 'name' key, got {V.fmt(d)}")
    d = dict(d)
    name = d["name"]
    cls = (REGISTRY.get(name) or FORMS.get(name)) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown schedule name {_unknown_name(name)}")
    extra = set(d) - {"name"} - set(cls.params)
    if extra:
        raise ValueError(unknown_params(cls, extra))
    kwargs = {}
    for k, val in d.items():
        if k == "name":
            continue
        try:
            kwargs[k] = _decode(val, depth)
        except _TooDeep:
            raise
        except ValueError as exc:  # a nested schedule's error says where it is
            raise ValueError(f"{name}: {k}{_where(exc)}") from None
    missing = _missing(cls, kwargs)
    if missing:
        raise ValueError(f"{name}: {missing}")
    try:
        return cls(**kwargs)
    except (TypeError, OverflowError) as exc:
        raise ValueError(f"{name}: {exc}") from None


def is_schedule_list(value: Any) -> bool:
    """Whether ``value`` is a list of schedules (one per param group) rather than one: a list,
    a tuple or any other sequence that is no string (an OmegaConf ``ListConfig`` from a Hydra
    config), as :func:`from_dict` reads the lists inside a dict. Every adapter that takes one
    schedule per group tells the two apart with this function."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, Schedule))


#: the libraries whose own schedules a user may give where lrkit takes its own, by how the
#: hint names them
_PEER_LIBRARIES = {"keras": "Keras'", "optax": "optax's", "torch": "PyTorch's"}


def _wrapper_hint(value: Any) -> str:
    """What to give instead of ``value``: the lrkit schedule a wrapper holds
    (``lrkit.keras.schedule(s)``'s ``.schedule``, ``lrkit.optax.schedule(s)``'s
    ``.lrkit_schedule``, ``lrkit.torch.scheduler``'s ``.schedules``), where another library's
    own schedule goes, or how a plain function becomes a schedule."""
    for attr in ("schedule", "lrkit_schedule"):
        if isinstance(getattr(value, attr, None), Schedule):
            return f" (it wraps one: give that, its .{attr})"
    held = getattr(value, "schedules", None)
    if isinstance(held, (list, tuple)) and held and isinstance(held[0], Schedule):
        return " (it holds lrkit schedules: give one of them, its .schedules[i])"
    module = getattr(value, "__module__", None) or type(value).__module__
    library = str(module).split(".")[0]
    if library in _PEER_LIBRARIES:
        article = "an" if library[0] in "aeiou" else "a"
        return (
            f" ({article} {library} object: {_PEER_LIBRARIES[library]} own schedules go to its "
            "own optimizer; this takes one of lrkit.schedules)"
        )
    if callable(value) and not isinstance(value, type):
        return (
            " (a function: lrkit.schedules.function(fn, lr=...) is lr * fn(step), as PyTorch's "
            "LambdaLR with lr_lambda=fn)"
        )
    return ""


def as_schedule(value: Any, *, name: str = "schedule", nonnegative: bool = False) -> Schedule:
    """``value`` as a schedule: a :class:`Schedule` is returned as is, a spec string goes
    through :func:`parse`, a dict (``to_dict()`` output) through :func:`from_dict`.

    Anything else raises ``ValueError`` naming the parameter ``name`` and the accepted types.
    With ``nonnegative=True`` (a learning rate, a momentum), a schedule that is negative or
    NaN at one of the steps it is checked at (:func:`lrkit.textplot.check_steps`: every step
    of its natural length up to 4000, else 4000 evenly spaced ones) is a ``ValueError``
    naming that step; a schedule holding a function schedule is checked only at the steps
    within the function's ``length`` (none without one: see :func:`first_negative`). Every
    adapter takes schedules through this function."""
    if isinstance(value, Schedule):
        out = value
    elif isinstance(value, str):
        out = parse(value)
    elif isinstance(value, Mapping):
        try:
            out = from_dict(dict(value))
        except (TypeError, ValueError) as exc:
            if name == "schedule" or isinstance(exc, SpecError):
                raise
            # one of several (momentum, hyperparams['weight_decay'], schedule[1]): named
            raise V.prefixed(f"{name}: ", exc) from None
    else:
        raise ValueError(
            f"{name} must be a lrkit schedule, a spec string or a to_dict() dict, "
            f"got {V.fmt(value)}{_wrapper_hint(value)}"
        )
    if nonnegative:
        bad = first_negative(out)
        if bad is not None:
            raise ValueError(
                f"{name} must be >= 0 at every step (a learning rate or hyperparameter), got "
                f"{bad[1]!r} at step {bad[0]}: {out}"
            )
    return out


def first_negative(schedule: Schedule) -> tuple[int, float] | None:
    """``(step, value)`` of the first step, among those a plot of ``schedule`` evaluates,
    where it is negative or NaN; ``None`` when there is none.

    A function schedule inside ``schedule`` is never called past its ``length`` (at no step
    without one), since ``fn`` may be defined only for the steps the run takes (a lookup
    table): only the steps below ``reach(schedule)`` are checked. The PyTorch scheduler checks
    the LR of every step when it sets it."""
    import numpy as np

    steps = checked_steps(schedule)
    if steps.size == 0:
        return None
    with np.errstate(all="ignore"):
        values = schedule.values(steps)
    bad = np.nonzero(~(values >= 0))[0]
    if len(bad) == 0:
        return None
    return int(steps[bad[0]]), float(values[bad[0]])


def from_dict_with(d: Any, *, read: Callable[[Any], Any]) -> Schedule:
    """:func:`from_dict` of what :func:`lrkit.schedules.to_dict_with` wrote: the ``fn`` of
    every ``"function"`` entry that is not already a callable is read back as ``read(fn)``
    (the serializer's counterpart, e.g. Keras' ``deserialize_keras_object``)."""

    def walk(x: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:  # from_dict refuses it in one line
            return x
        if isinstance(x, Mapping):
            if x.get("name") == Function.name:  # built here: no spec or dict names it
                extra = set(x) - {"name", *Function.params}
                if extra:
                    raise ValueError(unknown_params(Function, extra))
                missing = [p for p in ("fn", "lr") if p not in x]
                if missing:
                    raise ValueError(missing_params(Function.name, missing, Function.params))
                fn = x["fn"] if callable(x["fn"]) else read(x["fn"])
                try:
                    return Function(fn, lr=x["lr"], length=x.get("length"))
                except (TypeError, OverflowError) as exc:  # as from_dict words them
                    raise ValueError(f"{Function.name}: {exc}") from None
            return {k: walk(y, depth + 1) for k, y in x.items()}
        if isinstance(x, Sequence) and not isinstance(x, (str, bytes)):
            return [walk(y, depth + 1) for y in x]
        return x

    out = walk(d, 0)
    return out if isinstance(out, Function) else from_dict(out)


SPEC_READER.append(as_schedule)
