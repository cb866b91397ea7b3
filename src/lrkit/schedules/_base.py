"""The :class:`Schedule` base class: a pure, closed-form ``step -> lr`` function.

Every schedule is immutable, has no hidden state and gives the same value for the same step
no matter how or in which order it is called. Each one offers

* ``s(step) -> float``: the scalar path (plain ``math``, no numpy overhead);
* ``s.values(steps) -> np.ndarray``: the vectorized path (float64); ``s.values(t, xp=jnp)``
  evaluates the same formula with another array namespace (``jax.numpy``, ``keras.ops``), which
  is what the framework adapters use to trace a schedule;
* ``s.to_dict()`` / :func:`from_dict` and ``str(s)`` / :func:`parse` round trips.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import math
import operator
import sys
import types
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, SupportsFloat, TypeVar, cast, overload

import numpy as np
import numpy.typing as npt

from .. import _renamed
from .. import _validate as V

FloatArray = npt.NDArray[np.float64]

REGISTRY: dict[str, type[Schedule]] = {}
#: how a spec string or a ``to_dict()`` dict becomes a schedule (``as_schedule``, added by the
#: module that defines it): the composites read their parts with it, below the parser that
#: builds them
SPEC_READER: list[Callable[..., Schedule]] = []


def register(cls: type[Schedule]) -> type[Schedule]:
    """Class decorator: make a schedule family known to :func:`from_dict` and :func:`parse`.
    A class of the same module and name as the one registered replaces it (a notebook cell
    or a module run again); another class under a name already taken is a one-line
    ``ValueError`` (lrkit's own names cannot be taken over)."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"a registered schedule needs a class attribute name, got {V.fmt(name)}")
    old = REGISTRY.get(name)
    if old is not None and not (
        old.__module__ == cls.__module__
        and old.__qualname__ == cls.__qualname__
        and not old.__module__.startswith("lrkit.")
    ):
        raise ValueError(
            f"schedule name {name!r} is taken by {old.__module__}.{old.__qualname__}: give "
            f"{cls.__qualname__} another name"
        )
    REGISTRY[name] = cls
    return cls


def _composite(name: str) -> Callable[..., Schedule]:
    """The registered composite class ``name`` (registered when :mod:`lrkit.schedules` loads)."""
    return REGISTRY[name]


#: the largest step either path accepts: the largest float (an int above it has no float64)
_MAX_STEP = sys.float_info.max
#: integers up to this are exact in float64; a larger integer step is rounded to the nearest
#: float64 on both paths (as ``np.asarray(steps, dtype=np.float64)`` does)
_EXACT_INT = 2**53


def power(base: Any, exp: Any) -> Any:
    """``base ** exp`` (a scalar ``base`` to the step-dependent ``exp``) in a family's
    vectorized formula: numpy's array ``power`` (SIMD) also when both are scalars (the scalar
    path evaluates the formula at a numpy scalar), so that ``s(t)`` and ``s.values([t])``
    give the same bits; plain ``**`` for arrays and for other namespaces (jax, keras
    tracers)."""
    if _np_scalar(base) and _np_scalar(exp):
        return np.power(np.array([base], dtype=np.float64), np.array([exp], dtype=np.float64))[0]
    return base**exp


def growth(base: float, t: Any, xp: Any) -> Any:
    """``base ** t`` for a scalar ``base`` and a step-sized exponent ``t`` (``gamma ** step``):
    :func:`power` with numpy (the bits both paths share); ``exp(t * log(base))`` in other
    namespaces, with ``log(base)`` computed in float64 on the host. A float32 trace of
    ``base ** t`` first rounds ``base``, an error that ``t`` multiplies
    (``0.99999 ** 2**21`` comes out 3% high); this form keeps it near the rounding of the
    result."""
    if xp is np:
        return power(base, t)
    return xp.exp(t * math.log(base))


def _np_scalar(x: Any) -> bool:
    return isinstance(x, (float, int, np.floating)) or (isinstance(x, np.ndarray) and x.ndim == 0)


def _pow_of(base: float, exp: float) -> float:
    """``base ** exp`` for one step as :meth:`Schedule.values` computes an array ``base`` to a
    scalar ``exp`` (numpy's ``ndarray ** scalar``, which takes ``sqrt`` for 0.5, ...)."""
    return float((np.array([base]) ** exp)[0])


def _pow(base: float, exp: float) -> float:
    """``base ** exp`` for one step exactly as :meth:`Schedule.values` computes a scalar
    ``base`` to an array ``exp``: numpy's array ``power`` (SIMD), which may differ by an ulp
    from Python's or a numpy scalar's."""
    if base > 1.0 and exp * math.log(base) > 700.0:  # beyond float64: inf, as values()
        with np.errstate(over="ignore"):
            return float(np.power(np.array([base]), np.array([exp]))[0])
    return float(np.power(np.array([base]), np.array([exp]))[0])


#: how deeply schedules and lists may nest: in a spec string, a dict, and so in a composite
#: (each schedule and each list is one level; ``add([a, b])`` is two above ``a``)
MAX_DEPTH = 100


#: set while :func:`structure` reads ``to_dict()``: a schedule holding a Python callable
#: (:func:`lrkit.schedules.function`), which refuses to be written, then gives its dict with
#: the callable in it (compared by identity), and so do the composites holding one
READING = contextvars.ContextVar("lrkit_reading_structure", default=False)


def structure(s: Schedule) -> dict[str, Any]:
    """``s.to_dict()``, with a Python callable held in place rather than refused: what
    equality, hashing and the nesting check compare (never written anywhere)."""
    token = READING.set(True)
    try:
        return s.to_dict()
    finally:
        READING.reset(token)


#: a schedule's nesting depth by ``id`` (a schedule is immutable), with a weak reference that
#: drops the entry when the schedule goes: a composite built term by term (``s = s + c``)
#: reads each term's depth once, not its whole structure at every new sum
_DEPTHS: dict[int, tuple[weakref.ref[Any], int]] = {}


def _forget_depth(key: int, _ref: Any) -> None:
    _DEPTHS.pop(key, None)


def spec_depth(value: Any) -> int:
    """How deeply ``value`` (a schedule, a list, a number) nests in its spec string."""
    if isinstance(value, Schedule):
        # not cached on the instance: a key added to its __dict__ after __init__ slows every
        # attribute read of the scalar hot path
        key = id(value)
        hit = _DEPTHS.get(key)
        if hit is not None and hit[0]() is value:
            return hit[1]
        depth = spec_depth(structure(value))
        _DEPTHS[key] = (weakref.ref(value, functools.partial(_forget_depth, key)), depth)
        return depth
    if isinstance(value, dict):
        return 1 + max((spec_depth(v) for k, v in value.items() if k != "name"), default=0)
    if isinstance(value, (list, tuple)):
        return 1 + max((spec_depth(v) for v in value), default=0)
    return 0


def check_depth(name: str, value: Any, levels: int) -> None:
    """A ``ValueError`` naming ``name`` when ``value`` placed ``levels`` below a new
    composite would nest deeper than :data:`MAX_DEPTH` (its spec could not be read back)."""
    depth = spec_depth(value) + levels
    if depth > MAX_DEPTH:
        raise ValueError(
            f"{name}: schedules and lists nested more than {MAX_DEPTH} deep "
            f"(this one would nest {depth} deep; parse and from_dict read at most {MAX_DEPTH})"
        )


def _show(x: Any) -> str:
    """``repr(x)``, but an integer beyond float64 as its number of digits."""
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) > _MAX_STEP:
        return f"{V.digits(x)} (beyond float64)"
    return repr(x)


def _brief(x: Any) -> str:
    """``repr(x)`` on one line (an array's repr spans several), cut to 60 characters."""
    text = " ".join(repr(x).split())
    return text if len(text) <= 60 else text[:57] + "..."


class StepFailed(ValueError):
    """An error at one step that is already said in full (a user's ``fn`` raised there, or
    returned no finite number): the scalar path raises it as it is, rather than take it for
    a formula's domain error and evaluate the step again (which would call ``fn`` twice)."""


def _step_error(name: str, step: Any) -> ValueError:
    return ValueError(
        f"{name} must be finite and >= 0 (allowed range: [0, inf)), got {_show(step)}"
    )


def _as_step(step: Any, name: str = "step") -> float:
    """A step that is not a plain ``int``/``float`` (a numpy or torch scalar, a 0-d array)
    as a Python number; anything that is not a real number is a ``TypeError``."""
    dtype = getattr(step, "dtype", None)  # a 0-d numpy array or torch tensor of bools
    boolean = dtype is not None and (
        getattr(dtype, "kind", None) in ("b", "c")  # bools; complex numbers (float() drops i)
        or str(dtype) == "torch.bool"
        or getattr(dtype, "is_complex", False) is True
    )
    # one step: a 0-d array/tensor at most (a 1-element one is ``values()``'s business)
    shaped = getattr(step, "ndim", 0) != 0
    if not boolean and not shaped and not isinstance(step, (bool, np.bool_, str, bytes)):
        try:
            return operator.index(step)  # integer scalars, exactly
        except TypeError:
            pass
        try:
            return float(step)
        except (TypeError, ValueError):
            pass
        except OverflowError:  # a real number beyond float64 (a huge Fraction, Decimal)
            raise ValueError(
                f"{name} must be finite and >= 0 (allowed range: [0, inf)), "
                f"got {_brief(step)} (beyond float64)"
            ) from None
    hint = ""
    if type(step).__module__.split(".")[0] == "jax":  # a traced step, inside jax.jit
        hint = (
            "; a schedule reads Python numbers: give optax lrkit.optax.schedule(schedule), "
            "which evaluates it on a traced step"
        )
    raise TypeError(
        f"{name} must be a number (an int, or a float for fractional steps), got "
        f"{_brief(step)}{hint}"
    )


def _has_bool(steps: Any) -> bool:
    """Whether the array-like ``steps`` holds a bool among numbers (numpy would read
    ``[True, 2]`` as ``[1, 2]``; a bool array is refused by its dtype)."""
    if isinstance(steps, np.ndarray):
        if steps.dtype.kind != "O":
            return False
        items: Any = steps.flat
    elif isinstance(steps, (list, tuple)):
        types = set(map(type, steps))  # one pass in C over a flat list of numbers
        if bool in types or np.bool_ in types:
            return True
        if not any(issubclass(k, (list, tuple, np.ndarray)) for k in types):
            return False
        try:  # nested
            items = np.asarray(steps, dtype=object).flat
        except (TypeError, ValueError):
            return False  # ragged: the float conversion below says so
    else:
        return False
    return any(isinstance(x, (bool, np.bool_)) for x in items)


def _frozen(value: Any) -> Any:
    """``to_dict()`` output as nested tuples: equal dicts give equal hashes."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, Schedule):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value


def _format(value: Any) -> str:
    if isinstance(value, Schedule):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value + 0.0)  # -0.0 is written 0.0 (equal, as to_dict() compares)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_format(v) for v in value) + "]"
    raise TypeError(f"cannot format {value!r} in a schedule spec")  # pragma: no cover


#: ids of the schedules whose constructor is running: the only time their attributes may be
#: set (kept out of the instances: a key added to their ``__dict__`` after ``__init__`` slows
#: every attribute read of the scalar hot path)
_BUILDING: set[int] = set()


#: the constructors :func:`_building` wrapped (a subclass's own ``__init__`` is wrapped once)
_WRAPPED: set[Any] = set()


def _building(init: Callable[..., None]) -> Callable[..., None]:
    """``init`` (a schedule class's ``__init__``) allowed to set attributes while it runs; the
    outermost call (a subclass's, which may call its parent's) freezes the instance on
    return."""

    @functools.wraps(init)
    def __init__(self: Schedule, *args: Any, **kwargs: Any) -> None:
        key = id(self)
        if key in _BUILDING:  # a parent's constructor, from the subclass's
            init(self, *args, **kwargs)
            return
        _BUILDING.add(key)
        try:
            init(self, *args, **kwargs)
        except TypeError as exc:
            # Python's own error for arguments ``init`` does not take (it was raised before
            # ``init``'s frame began: the traceback has this frame only), in one line naming
            # the schedule and its parameters; a TypeError raised inside ``init`` passes as is
            tb = exc.__traceback__
            better = _call_error(type(self), init, args, kwargs) if tb and not tb.tb_next else None
            if better is None:
                raise
            raise TypeError(better) from None
        finally:
            _BUILDING.discard(key)

    _WRAPPED.add(__init__)
    return __init__


def unknown_params(
    cls: type[Schedule],
    unknown: Iterable[Any],
    params: Sequence[str] | None = None,
    *,
    name: str | None = None,
) -> str:
    """``"cosine: unknown parameter(s) ['alpha'] (parameters: lr, total_steps, eta_min);
    for alpha use eta_min (= alpha * lr)"``: the one-line error for parameters ``unknown``
    that the schedule family ``cls`` (whose parameters are ``params``, by default
    ``cls.params``) does not take, with a hint for each that is a peer's (Keras, optax,
    PyTorch) name of one of its parameters (:func:`peer_hint`). ``name``: the function
    called, when it is not the family's own name."""
    name = name or getattr(cls, "name", cls.__name__)
    params = tuple(getattr(cls, "params", ()) if params is None else params)
    names = sorted(set(unknown), key=repr)
    text = f"{name}: unknown parameter(s) {V.fmt(names)} (parameters: {', '.join(params)})"
    hint = param_hint(cls, names, params)
    return f"{text}; {hint}" if hint else text


def param_hint(cls: type[Schedule], unknown: Sequence[Any], params: Sequence[str]) -> str:
    """What to use for parameters ``unknown`` that the schedule family ``cls`` does not take:
    the hints for a peer's names (:func:`peer_hint`), else the parameter each misspells
    (``"did you mean pct_start?"`` for ``pct_strt``); ``""`` when there is neither."""
    hint = peer_hint(cls, unknown, params)
    if hint:
        return hint
    import difflib

    near = {
        n: found[0]
        for n in unknown
        if isinstance(n, str) and (found := difflib.get_close_matches(n, params, n=1))
    }
    if len(unknown) == 1 and near:
        return f"did you mean {next(iter(near.values()))}?"
    said = ", ".join(f"{m} (for {n})" for n, m in near.items())
    return f"did you mean {said}?" if said else ""


#: Hugging Face's names for a warmup's length: the ``warmup_steps`` each gives (as
#: transformers counts it) and how the hints name that length
HF_WARMUPS = (
    ("num_warmup_steps", "num_warmup_steps", "num_warmup_steps"),
    ("warmup_ratio", "math.ceil(warmup_ratio * num_training_steps)", "warmup_steps"),
)


def peer_hint(cls: type[Schedule], unknown: Iterable[Any], params: Sequence[str]) -> str:
    """``"for alpha use eta_min (= alpha * lr)"`` for the names of ``unknown`` that are a
    peer's (Keras, optax, PyTorch) name of one of the ``params`` of ``cls``
    (``cls.peer_names``); ``""`` when none is."""
    # one hint per lrkit parameter: "for decay_rate and decay_steps use gamma (= ...)"
    hints: dict[tuple[str, str], list[str]] = {}
    peers = getattr(cls, "peer_names", {})
    names = sorted(set(unknown), key=repr)
    calls: list[str] = []
    covered: set[str] = set()
    for given, covers, hint in getattr(cls, "peer_calls", ()):
        if any(n in given and n not in params for n in names if isinstance(n, str)):
            calls.append(hint)
            covered.update(covers)
    # Hugging Face's warmup comes before the family's own steps: its schedule spans the rest
    hf = getattr(cls, "hf_warmup", False) and "warmup_steps" not in params
    warmups = [w for w in HF_WARMUPS if hf and w[0] in names]
    for n in names:
        free = isinstance(n, str) and n not in params and n not in covered
        target = peers.get(n) if free else None
        if target is not None and target[0] in params:
            if warmups and n == "num_training_steps" and not target[1]:
                target = (target[0], f"num_training_steps - {warmups[0][2]}")
            hints.setdefault(target, []).append(n)
    said = calls + [
        f"for {' and '.join(given)} use {p}" + (f" (= {formula})" if formula else "")
        for (p, formula), given in hints.items()
    ]
    rest_said = "num_training_steps" in names  # its hint says what the family's steps are
    for given, count, warmup_said in warmups:
        said.append(
            f"for {given} use lrkit.schedules.with_warmup"
            f"({getattr(cls, 'name', cls.__name__)}(...), warmup_steps={count})"
            + (
                f", the schedule's total_steps = num_training_steps - {warmup_said}"
                if "total_steps" in params and not rest_said
                else ""
            )
        )
        rest_said = True
    keras = sorted({"warmup_target", "warmup_steps"} & {n for n in names if isinstance(n, str)})
    if (
        getattr(cls, "keras_warmup", False)
        and keras
        and "warmup_steps" not in params
        and "warmup_steps" not in covered
    ):
        name = getattr(cls, "name", cls.__name__)
        said.append(
            f"for {' and '.join(keras)} (Keras' warmup) use lrkit.schedules.with_warmup"
            f"({name}(warmup_target, ...), warmup_steps=warmup_steps, start_lr=lr)"
            if "warmup_target" in keras
            else "for warmup_steps: Keras' CosineDecay warms up only with warmup_target "
            f"(without it, Keras' schedule is {name}(...) alone: drop warmup_steps); a warmup "
            f"from 0 is lrkit.schedules.with_warmup({name}(...), warmup_steps=warmup_steps)"
        )
    text = ", ".join(said)
    if calls:  # positional forms, as str(schedule) prints them: Python takes them by keyword
        text += f" ({SPEC_FORMS})"
    return text


#: what a peer call's hint says of the expressions it gives
SPEC_FORMS = (
    "these forms are spec strings: lrkit.schedules.parse reads them once each arithmetic "
    "expression is worked out into a number; in Python, give the arguments after the first by "
    "keyword"
)


F = TypeVar("F", bound=Callable[..., Any])


def builds(cls: type[Schedule]) -> Callable[[F], F]:
    """A decorator for a function that builds a ``cls`` (``join`` for :class:`Join`): a call
    with a keyword it does not take, too many positional arguments or a missing one is the
    one-line ``TypeError`` the class's constructor gives (named after the function, with the
    peers' names of ``cls``'s parameters pointed to), not Python's own."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except TypeError as exc:
                tb = exc.__traceback__  # raised by the call itself: this frame only
                better = (
                    _call_error(cls, fn, args, kwargs, bound=False, name=fn.__name__)
                    if tb and not tb.tb_next
                    else None
                )
                if better is None:
                    raise
                raise TypeError(better) from None

        return cast(F, call)

    return wrap


def _call_error(
    cls: type[Schedule],
    init: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    bound: bool = True,
    name: str | None = None,
) -> str | None:
    """The one-line message for a call of the constructor ``init`` (of ``cls``; ``bound=False``:
    a function building one, called ``name``) with a keyword it does not take or too many
    positional arguments; ``None`` for any other TypeError."""
    try:
        sig = list(inspect.signature(init).parameters.values())[1 if bound else 0 :]
    except (TypeError, ValueError):  # pragma: no cover - a constructor without a signature
        return None
    kinds = {p.kind for p in sig}
    P = inspect.Parameter
    params = [p.name for p in sig if p.kind not in (P.VAR_POSITIONAL, P.VAR_KEYWORD)]
    if P.VAR_KEYWORD not in kinds:
        unknown = [k for k in kwargs if k not in params]
        if unknown:
            return unknown_params(cls, unknown, params, name=name)
    positional = [p.name for p in sig if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    name = str(name or getattr(cls, "name", cls.__name__))
    if P.VAR_POSITIONAL not in kinds and len(args) > len(positional):
        named = params[len(positional) : len(args)]
        example = None
        if len(args) <= len(params) and not set(named) & set(kwargs):
            # the call with keywords, read in the order a spec string reads its arguments
            shown = [_short(a) for a in args[: len(positional)]]
            shown += [f"{n}={_short(a)}" for n, a in zip(named, args[len(positional) :])]
            shown += [f"{k}={_short(v)}" for k, v in kwargs.items()]
            example = f"{name}({', '.join(shown)})"
        return V.too_many_positional(name, positional, params, len(args), example=example)
    by_position = positional[: len(args)]
    twice = [n for n in by_position if n in kwargs]
    if twice:
        return (
            f"{name}() got parameter {twice[0]!r} twice, by position and by keyword "
            f"(parameters: {', '.join(params)})"
        )
    given = set(by_position) | set(kwargs)
    missing = [
        p.name for p in sig if p.name in params and p.default is P.empty and p.name not in given
    ]
    if missing:
        return missing_params(name, missing, params)
    return None


def _short(value: Any, limit: int = 40) -> str:
    """A value as a call shows it (a schedule by its spec, a list of them as a list of
    specs, anything else by its ``repr``), cut to ``limit`` characters."""
    if isinstance(value, Schedule):
        text = str(value)
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Schedule) for v in value):
        text = "[" + ", ".join(str(v) for v in value) + "]"
    else:
        text = V.fmt(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def missing_params(name: str, missing: Sequence[str], params: Sequence[str]) -> str:
    """``"cosine() missing required parameter 'total_steps' (parameters: lr, total_steps,
    eta_min)"``: the one-line error for a schedule family ``name`` built without its
    required ``missing`` parameters (a Python call, a spec, a dict)."""
    names = ", ".join(repr(n) for n in missing)
    plural = "s" if len(missing) > 1 else ""
    return f"{name}() missing required parameter{plural} {names} (parameters: {', '.join(params)})"


def _immutable(s: Schedule, attr: str, verb: str) -> AttributeError:
    return AttributeError(
        f"cannot {verb} attribute {attr!r} of the schedule {_short_label(s)}: schedules are "
        "immutable; build a new one instead (with its constructor, from_dict or parse)"
    )


class Schedule(ABC):
    """A learning-rate schedule: a pure function of the step (``step >= 0``).

    Immutable: its attributes are set by its constructor only (``s.lr = 1.0`` raises
    ``AttributeError``); build a new schedule instead."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and init not in _WRAPPED:
            cls.__init__ = _building(init)  # type: ignore[method-assign]

    def __setattr__(self, attr: str, value: Any) -> None:
        if id(self) not in _BUILDING:
            raise _immutable(self, attr, "set")
        object.__setattr__(self, attr, value)

    def __delattr__(self, attr: str) -> None:
        if id(self) not in _BUILDING:
            raise _immutable(self, attr, "delete")
        object.__delattr__(self, attr)

    #: registry name, used in ``to_dict()["name"]`` and in spec strings
    name: ClassVar[str]
    #: constructor parameters, in positional order
    params: ClassVar[tuple[str, ...]]
    #: a peer's (Keras, optax, PyTorch) name of a parameter -> ``(parameter, formula)``: the
    #: hint an unknown parameter of that name gets (``"alpha": ("eta_min", "alpha * lr")``)
    peer_names: ClassVar[Mapping[str, tuple[str, str]]] = {}
    #: whether Hugging Face puts a warmup before this family (``get_*_schedule_with_warmup``):
    #: its ``num_warmup_steps`` then hints at :func:`lrkit.schedules.with_warmup`
    hf_warmup: ClassVar[bool] = False
    #: Keras' ``warmup_target`` and ``warmup_steps`` (``CosineDecay``) hint at
    #: :func:`lrkit.schedules.with_warmup` too
    keras_warmup: ClassVar[bool] = False
    #: a peer's call that no renaming of its parameters gives (optax's
    #: ``cosine_onecycle_schedule`` is not PyTorch's ``OneCycleLR``): ``(names, covered,
    #: hint)``, the hint given when any of ``names`` is, in place of the renaming hints for
    #: ``covered``
    peer_calls: ClassVar[tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...]] = ()

    # ----------------------------------------------------------------- evaluation
    def __call__(self, step: SupportsFloat = _renamed.UNSET) -> float:
        """The learning rate at ``step`` (an int, or a float for fractional steps; a numpy
        scalar or a 0-d array or tensor is read as the number it holds)."""
        if type(step) is not int and type(step) is not float:
            if step is _renamed.UNSET:  # a Keras optimizer given the schedule itself calls it so
                raise V.no_step(f"{type(self).__name__}.__call__()")
            step = _as_step(step)
        if not 0 <= step <= _MAX_STEP:  # negative, NaN, inf, an int beyond float64
            raise _step_error("step", step)
        if step > _EXACT_INT and type(step) is int:
            step = float(step)  # as values() reads it
        try:
            return self._at(step)
        except StepFailed:
            raise
        except (OverflowError, ValueError):
            # a value beyond float64 (e.g. ``gamma ** step`` with gamma > 1), or math's domain
            # error where it went through one (``cos(inf)``): the float64 vectorized path gives
            # inf or NaN there, and so does this one
            with np.errstate(over="ignore", invalid="ignore"):
                return float(self.values([float(step)])[0])

    def _at(self, t: float) -> float:
        """Scalar formula; ``t >= 0`` is guaranteed.

        By default the vectorized formula (:meth:`_values`) at a numpy scalar, so that a
        family writes its formula once. Both paths give the same bits: numpy computes ``**``
        on a contiguous array with its SIMD routine, which may round differently from a
        scalar ``**``, so the formulas write it :func:`power` (the array routine for scalars
        too); ``+ - * /``, ``floor``, ``sqrt`` and ``cos`` round the same either way (``log``
        serves only as an estimate that the formula then corrects exactly). The families on
        the per-step hot path of the adapters (``benchmarks/schedules.py``) override it with
        the same formula in plain ``math``."""
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float64: inf, as values()
            return float(self._values(np.float64(t), np))

    @abstractmethod
    def _values(self, t: Any, xp: Any) -> Any:
        """Vectorized formula over the array ``t`` using the array namespace ``xp``."""

    @overload
    def values(self, steps: Any, *, xp: None = None) -> FloatArray: ...

    @overload
    def values(self, steps: Any, *, xp: Any) -> Any: ...

    @_renamed.keyword_only(2)
    def values(self, steps: Any, *, xp: Any = None) -> Any:
        """Learning rates at many steps at once.

        With ``xp=None`` (the default) ``steps`` is any array-like of steps ``>= 0`` and the
        result is a float64 ``np.ndarray`` of the same shape. With ``xp`` given (a numpy-like
        namespace such as ``jax.numpy``), ``steps`` must already be an array of that namespace
        and the same formula is evaluated with it (no validation: it may be a tracer; JAX
        without ``jax_enable_x64`` cannot read an integer parameter beyond 2**31 - 1, which
        :func:`lrkit.optax.schedule` and :func:`lrkit.keras.schedule` refuse in one line).
        """
        if xp is not None:
            return self._values(steps, xp)
        if type(steps).__module__.split(".")[0] == "jax" and "Tracer" in type(steps).__name__:
            raise TypeError(
                f"steps is a traced array (inside jax.jit), got {type(steps).__name__}: pass "
                "xp=jax.numpy to evaluate the formula on it, or give optax "
                "lrkit.optax.schedule(schedule)"
            )
        given = steps
        if type(steps).__module__.split(".")[0] == "torch" and hasattr(steps, "detach"):
            # a tensor as the scalar path reads one: its values (not the graph it is part of),
            # a float type numpy lacks (bfloat16) widened
            steps = steps.detach().cpu()
            steps = (steps.double() if steps.is_floating_point() else steps).numpy()
        try:
            kind = (
                np.asarray(steps).dtype.kind
                if not isinstance(steps, np.ndarray)
                else steps.dtype.kind
            )
        except ValueError:  # ragged: numpy's "inhomogeneous shape"
            raise ValueError(
                "steps must be an array-like of numbers with rows of equal length, got "
                f"{_brief(steps)}"
            ) from None
        if kind == "V" and np.asarray(steps).dtype.names is None:  # not a record: a float
            try:  # type of ml_dtypes (JAX's bfloat16)
                steps, kind = np.asarray(steps).astype(np.float64), "f"
            except (TypeError, ValueError):
                pass
        if steps is None or kind not in "iufO" or _has_bool(steps):
            raise TypeError(f"steps must be an array-like of numbers, got {_brief(given)}")
        if kind == "O":  # None (numpy would read it as NaN) or another non-number
            for x in np.asarray(steps, dtype=object).flat:
                if x is None or isinstance(x, (str, bytes)):
                    raise TypeError(
                        "steps must be an array-like of numbers: a step must be a number "
                        f"(an int, or a float for fractional steps), got {V.fmt(x)}"
                    )
        try:
            t = np.asarray(steps, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"steps must be an array-like of numbers, got {_brief(steps)}"
            ) from None
        except OverflowError:  # a Python int beyond float64
            big = next(x for x in np.asarray(steps, dtype=object).flat if not 0 <= x <= _MAX_STEP)
            raise _step_error("steps", big) from None
        ok = (t >= 0) & (t <= _MAX_STEP)
        if not bool(ok.all()):
            raise _step_error("steps", float(t[~ok].flat[0]))
        # always a contiguous 1-d array: numpy's SIMD loops (``**``) serve exactly those, as
        # :func:`power` does for the scalar path (a 0-d array would take another routine)
        flat = np.ascontiguousarray(t.reshape(-1))
        out = np.asarray(self._values(flat, np), dtype=np.float64)
        if out.shape != flat.shape:
            out = np.broadcast_to(out, flat.shape).copy()
        return out.reshape(t.shape)

    @property
    def length(self) -> int | None:
        """The natural number of steps of this schedule (used as the default plot range),
        or ``None`` when it has no end."""
        return None

    # ----------------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; :func:`lrkit.schedules.from_dict` turns it back into an equal
        schedule."""
        out: dict[str, Any] = {"name": self.name}
        for p in self.params:
            out[p] = _encode(getattr(self, p))
        return out

    def __str__(self) -> str:
        args = ", ".join(f"{p}={_format(getattr(self, p))}" for p in self.params)
        return f"{self.name}({args})"

    @property
    def spec(self) -> str:
        """The spec string, ``str(self)``; :func:`lrkit.schedules.parse` reads it back."""
        return str(self)

    def __repr__(self) -> str:
        return f"<lrkit schedule {self}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return structure(self) == structure(other)

    def __hash__(self) -> int:  # consistent with __eq__ (0.0 == -0.0, 1 == 1.0)
        return hash(_frozen(structure(self)))

    # ----------------------------------------------------------------- composition
    # The composites (``mul``, ``add``, ``sub``, ``scale``, ``clamp``) and ``constant`` live in
    # modules that build on this one; they are reached through the registry, so this module
    # imports nothing of theirs.
    def _chain(self, name: str) -> list[Schedule]:
        """``self``'s terms when it is itself a ``name`` composite (``a * b * c`` builds one
        product of three, not a product inside a product: a long chain stays within the
        nesting limit, and the left-to-right evaluation is the same), else ``[self]``."""
        return list(getattr(self, "schedules", [self])) if self.name == name else [self]

    # The number in ``s * x``, ``s + x``, ... is named after its role in the expression (the
    # user wrote no ``factor`` or ``lr``): a factor and the number a schedule is subtracted
    # from must be >= 0 (a ``scale`` and a ``constant``), a number added or subtracted any
    # finite real number.
    def __mul__(self, other: object) -> Schedule:
        if isinstance(other, Schedule):
            return _composite("mul")([*self._chain("mul"), other])
        if _is_number(other):
            factor = V.non_negative(_MULTIPLIED, other)
            return _composite("scale")(self, factor=factor)
        return NotImplemented

    def __rmul__(self, other: object) -> Schedule:
        if _is_number(other):
            factor = V.non_negative(_MULTIPLIED, other)
            return _composite("scale")(self, factor=factor)
        return NotImplemented

    # A number is a ``constant`` (whose lr is >= 0): adding a negative number subtracts its
    # magnitude, and subtracting one adds it (``s + (-0.1)`` is ``s - 0.1``).
    def __add__(self, other: object) -> Schedule:
        if isinstance(other, Schedule):
            return _composite("add")([*self._chain("add"), other])
        if _is_number(other):
            x = V.number(_ADDED, other)
            if x < 0:
                return _composite("sub")(self, b=_composite("constant")(-x))
            return _composite("add")([*self._chain("add"), _composite("constant")(x)])
        return NotImplemented

    def __radd__(self, other: object) -> Schedule:
        if _is_number(other):
            x = V.number(_ADDED, other)
            if x < 0:
                return _composite("sub")(self, b=_composite("constant")(-x))
            return _composite("add")([_composite("constant")(x), self])
        return NotImplemented

    def __sub__(self, other: object) -> Schedule:
        if isinstance(other, Schedule):
            return _composite("sub")(self, b=other)
        if _is_number(other):
            x = V.number(_SUBTRACTED, other)
            if x < 0:
                return _composite("add")([*self._chain("add"), _composite("constant")(-x)])
            return _composite("sub")(self, b=_composite("constant")(x))
        return NotImplemented

    def __rsub__(self, other: object) -> Schedule:
        if _is_number(other):
            x = V.non_negative(_SUBTRACTED_FROM, other)
            return _composite("sub")(_composite("constant")(x), b=self)
        return NotImplemented

    def scale(self, factor: float) -> Schedule:
        """This schedule multiplied by a constant ``factor`` (>= 0)."""
        return _composite("scale")(self, factor=factor)

    @V.keyword_only("Schedule.clamp", peer_order=("min_lr", "max_lr"))  # numpy.clip's order
    def clamp(self, *, min_lr: float | None = None, max_lr: float | None = None) -> Schedule:
        """This schedule clipped into ``[min_lr, max_lr]`` (either bound may be ``None``)."""
        return _composite("clamp")(self, min_lr=min_lr, max_lr=max_lr)

    # ----------------------------------------------------------------- seeing it
    @_renamed.keyword_only(2)
    def plot(
        self,
        steps: int | None = None,
        *,
        ax: Any = None,
        path: Any = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Plot the schedule with matplotlib (``pip install 'lrkit[plot]'``); returns the axes.

        ``steps`` defaults to the schedule's natural length (or 1000). ``path`` (or a file
        name as the first argument: ``s.plot("lr.png")``) writes the figure, drawn without
        pyplot; ``ax`` (or a matplotlib Axes as the first argument: ``s.plot(ax)``) draws on
        the caller's axes; ``title`` heads the plot (in a figure of its own, by default the
        schedule's spec, as ``lrkit plot -o`` heads it); other keywords go to ``ax.plot``."""
        from .._figure import (
            check_drawable,
            draw_curve,
            draw_grid,
            is_axes,
            is_path,
            new_axes,
            resolve,
            save_figure,
        )
        from .._imports import require

        if ax is None and (is_axes(steps) or isinstance(steps, types.ModuleType)):
            steps, ax = None, steps  # s.plot(ax), as the other plots take it (pyplot: refused)
        elif is_axes(steps) and is_path(ax) and path is None:  # s.plot(ax, "lr.png")
            steps, ax, path = None, steps, ax
        steps, path = resolve(steps, path, first_name="steps")
        require("matplotlib", "plot", feature="Schedule.plot")
        from ..textplot import plot_steps  # bounded: at most textplot.MAX_POINTS points

        xs = plot_steps(self, steps=steps)
        ys = self.values(xs)
        check_drawable(ys, what="the schedule's values")  # before a figure is made
        own = ax is None  # a figure of its own: laid out here; the caller's is left as laid out
        fig, ax = new_axes(ax, path, figsize=(7, 3.5), title=title)
        kwargs.setdefault("label", _short_label(self))
        draw_curve(ax, xs, ys, **kwargs)
        ax.set_xlabel("step")
        ax.set_ylabel("learning rate")
        draw_grid(ax)
        if title is None and own:  # a figure of its own says which schedule it shows
            from .._format import title_lines

            lines = title_lines(str(self), 90)
            ax.set_title("\n".join(lines), fontsize=9 if len(lines) > 1 else 10)
        elif title is not None:
            ax.set_title(title, fontsize=10)
        if path is not None:
            if own:
                fig.tight_layout()
            save_figure(fig, path)
        return ax

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Rich display in notebooks (summary table and plot)."""
        from .._display import schedule_bundle

        return schedule_bundle(self)


#: how the arithmetic operators name the number they are given, in their errors
_MULTIPLIED = "the number a schedule is multiplied by"
_ADDED = "the number added to a schedule"
_SUBTRACTED = "the number subtracted from a schedule"
_SUBTRACTED_FROM = "the number a schedule is subtracted from"


def _is_number(x: object) -> bool:
    """A real number an arithmetic operator takes with a schedule (a bool is not one): a
    Python or numpy number, or a 0-d numpy, JAX or torch array of one (a value traced by JAX
    too, which the operator then refuses in words)."""
    if isinstance(x, (int, float)):
        return not isinstance(x, bool)
    return getattr(x, "ndim", None) == 0 and V.real_dtype(getattr(x, "dtype", None))


def _short_label(s: Schedule, limit: int = 60) -> str:
    return _short(s, limit)


def isclose_int(x: float) -> bool:
    return math.isfinite(x) and float(x).is_integer()
