"""Train with several LR methods from the same seed, side by side (``pip install
'lrkit[torch]'``; the plot needs ``lrkit[plot]``).

>>> from lrkit import compare
>>> report = compare.compare(compare.demo_factory(seed=0), steps=400)   # doctest: +SKIP
>>> print(report.table())                                               # doctest: +SKIP

Every method starts from the same initial weights and sees the same batches (a DataLoader with a
``generator=`` of its own, shared by the runs, is put back to its first state before each run,
and left in that state at the end, also after a failure; every run starts from the same global
RNG states, so a ``make()`` that seeds nothing deals each the same shuffles and dropout; the
same optimizer returned again with state or other LRs is refused): ``make()`` builds a fresh
:class:`Setup` for each run (:func:`factory` wraps a function returning ``(model, optimizer,
loss_fn, data[, val_data])``; :func:`demo_factory` is the built-in digits task). Methods that
need a learning rate start from the range test's suggestion (``lrkit.torch.find_lr``; one sweep
for the base optimizer, one for Adam): ``fixed``, ``step``, ``exponential``, ``cosine``,
``plateau`` use ``suggestion``; ``cyclic`` runs between ``base_lr`` and ``max_lr``; ``onecycle``
peaks at ``max_lr`` (the LR only: the optimizer's momentum stays as given, where PyTorch's
``OneCycleLR`` cycles it by default; a run of your own adds
``momentum=S.onecycle_momentum(steps)`` to ``lrkit.torch.scheduler``). With param groups at
different LRs the LR of a row is the optimizer's ``lr`` (the schedule's value; each group
follows its ratio of it, :func:`lrkit.torch.group_ratios`, which the row's note gives) and the
plot shows group 0's. The base optimizer is the one ``make()`` returns. ``adam`` is Adam at its
own suggestion; ``schedulefree`` is schedule-free AdamW at Adam's suggestion (5% warmup,
evaluated at its averaged weights); ``prodigy`` needs no LR. ``schedulefree`` and ``prodigy``
need ``pip install 'lrkit[lrfree]'`` (:data:`PACKAGES`): by default :func:`compare` runs every
method whose package is installed (:func:`available_methods`); asking for one whose package is
missing is an ``ImportError`` before anything trains. The range tests are for a run of ``steps``
steps (``total_steps``). ``plateau`` reports the validation loss (the mean training loss of the
last interval without validation data) to ``ReduceOnPlateau(factor=0.5, patience=2)`` every
``max(1, steps // 20)`` steps but after the last (19 times per run when ``steps`` is a multiple
of 20 from 20 on: a cut after the last step would apply to none); the evaluation draws nothing
from the global RNGs that the training batches depend on. Every run trains through
:func:`lrkit.torch.fit`; :func:`compare` leaves the global RNGs (Python, numpy, torch) as it
found them."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from . import _renamed
from . import _validate as V
from ._format import group_ratios_text
from ._runtime import Passes, caller_level, data_generators, is_data_factory
from .finder import LRFinderWarning
from .finder.sweep import MAX_ITER, MIN_ITER

__all__ = [
    "METHODS",
    "NEEDS_BASE_LR",
    "PACKAGES",
    "Comparison",
    "LRs",
    "NotFreshError",
    "Result",
    "Setup",
    "available_methods",
    "check_installed",
    "checked",
    "compare",
    "demo_factory",
    "factory",
    "find_lrs",
    "missing_packages",
    "parse_methods",
    "plot",
    "run_method",
    "table",
]

METHODS: tuple[str, ...] = (
    "fixed",
    "step",
    "exponential",
    "cosine",
    "cyclic",
    "onecycle",
    "plateau",
    "adam",
    "schedulefree",
    "prodigy",
)
#: the methods that run the base optimizer (the others bring their own: Adam, LR-free ones)
NEEDS_BASE_LR: tuple[str, ...] = tuple(
    m for m in METHODS if m not in ("adam", "schedulefree", "prodigy")
)
#: the methods that need an optional package: method -> (module, lrkit extra)
PACKAGES: dict[str, tuple[str, str]] = {
    "schedulefree": ("schedulefree", "lrfree"),
    "prodigy": ("prodigyopt", "lrfree"),
}


# ----------------------------------------------------------------------------- tasks
@_renamed.former_field("val", "val_data")
@dataclass
class Setup:
    """What one run trains: a fresh model and optimizer (same initial weights every call),
    the loss, the training ``data`` and the held-out ``val_data`` (``None`` for none; named
    as in ``lrkit.torch.find_lr`` and ``lrkit.tune.torch_task``). Its former name ``val``
    still works, with a ``DeprecationWarning``: ``Setup(..., val=...)`` and reading
    ``.val``; a Setup pickled by lrkit 0.1.0 loads with it as ``val_data``."""

    model: Any
    _: KW_ONLY
    optimizer: Any
    loss_fn: Callable[..., Any]
    data: Any
    val_data: Any = None

    @property
    def val(self) -> Any:
        """Deprecated alias of ``val_data``."""
        _renamed.attribute("Setup", "val", "val_data")
        return self.val_data


@dataclass
class Result:
    """One method's run: the loss and LR of every step and the final scores."""

    method: str
    _: KW_ONLY
    optimizer: str
    lr: str
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    final_loss: float = math.nan
    val_loss: float = math.nan
    val_acc: float = math.nan
    seconds: float = 0.0
    diverged: bool = False
    note: str = ""
    #: why the run failed (``"TypeError: ..."``), empty when it ran; a failed run has no
    #: scores and is never the best
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite numbers as ``None``), full precision."""
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in self.__dict__.items()
            if k not in ("losses", "lrs")
        } | {"losses": _finite(self.losses), "lrs": _finite(self.lrs)}

    def __repr__(self) -> str:
        """One line: the method, its LR and validation loss (the curves are in the
        attributes)."""
        from ._display import result_text

        return result_text(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Rich display in notebooks (summary table and plot)."""
        from ._display import compare_bundle

        return compare_bundle(self)


def _finite(xs: list[float]) -> list[float | None]:
    return [x if math.isfinite(x) else None for x in xs]


def as_setup(value: Any, *, name: str = "task") -> Setup:
    """A :class:`Setup` from ``(model, optimizer, loss_fn, data[, val_data])`` (or a Setup),
    else a ValueError saying what is expected."""
    import torch

    if isinstance(value, Setup):
        return value
    if not isinstance(value, (tuple, list)) or len(value) not in (4, 5):
        raise ValueError(
            f"{name} must return (model, optimizer, loss_fn, data[, val_data]), "
            f"got {type(value).__name__}"
        )
    model, opt, loss_fn, data = value[:4]
    if not isinstance(model, torch.nn.Module) or not isinstance(opt, torch.optim.Optimizer):
        raise ValueError(
            f"{name} must return a torch.nn.Module and a torch.optim.Optimizer first, "
            f"got {type(model).__name__} and {type(opt).__name__}"
        )
    val_data = value[4] if len(value) == 5 else None
    return Setup(model, optimizer=opt, loss_fn=loss_fn, data=data, val_data=val_data)


def factory(
    fn: Callable[[], Any], *, seed: int = 0, name: str = "task", weights: bool = True
) -> Callable[[], Setup]:
    """A ``make()`` that seeds every RNG with ``seed`` and calls ``fn()`` afresh for each run
    (``fn`` returns ``(model, optimizer, loss_fn, data[, val_data])``); ``fn`` returning the
    first call's model again with other weights (it would go on training where the last run
    left it) is a one-line ValueError. ``weights=False`` leaves that comparison out, and the
    host copy of the first model's weights it keeps (as :func:`checked`)."""
    from .torch import seed_all

    if not callable(fn):
        raise TypeError(
            f"fn must be a callable fn() -> (model, optimizer, loss_fn, data[, val_data]), "
            f"got {V.fmt(fn)}"
        )
    V.takes("fn", fn, "fn() -> (model, optimizer, loss_fn, data[, val_data])", 0)
    seed = V.seed("seed", seed)
    weights = V.flag("weights", weights)
    first: list[Any] = []

    def make() -> Setup:
        seed_all(seed)
        setup = as_setup(fn(), name=name)
        if weights:
            _same_start(setup.model, first)
        return setup

    return make


class NotFreshError(ValueError):
    """``make()`` handed a run the model or optimizer an earlier run trained: no method's
    result would mean anything, so the comparison stops (not a failed row)."""


def _same_optimizer(opt: Any, first: list[Any]) -> None:
    """Record the first optimizer (a weak reference) and its LRs in ``first``; the same
    optimizer returned again with state (momentum, moments) or other LRs is a ValueError: the
    next run would start from what the last one left."""
    import weakref

    lrs = [float(g["lr"]) for g in getattr(opt, "param_groups", [])]
    if not first:
        first.extend([weakref.ref(opt), lrs])
        return
    if first[0]() is not opt or (not opt.state and lrs == first[1]):
        return
    raise NotFreshError(
        "make() must build a fresh optimizer for every run; it returned the first run's "
        "optimizer again, with the state (momentum, moments) or the LRs that run left: create "
        "the optimizer inside the function, with the model"
    )


def _same_batches(setup: Setup, states: dict[int, tuple[Any, Any]]) -> None:
    """Every run draws the same batches: a DataLoader with a generator of its own (one
    object shared by the runs, e.g. built at module level) is put back to the state it had
    when first seen, before each run (without one, the loader draws from torch's global
    generator, which the runs seed alike)."""
    for g in data_generators(setup.data, setup.val_data):
        if id(g) in states and states[id(g)][0] is g:
            g.set_state(states[id(g)][1])
        else:
            states[id(g)] = (g, g.get_state())


def _same_stream(setup: Setup, seen: list[Any]) -> None:
    """Record (weak references to) the one-shot iterators (generators) a setup's ``data`` and
    ``val_data`` are; one returned again by a later call is a ValueError: an earlier run has
    read from it, so the runs would not see the same batches."""
    import weakref

    for name, data in (("data", setup.data), ("val_data", setup.val_data)):
        if data is None or not hasattr(data, "__next__"):
            continue  # re-iterable (a list, a DataLoader) or a function returning one
        if any(ref() is data for ref in seen):
            raise NotFreshError(
                f"make() must give every run the same batches from their start; it returned "
                f"the first run's {name} again, a one-shot iterator "
                f"({type(data).__name__}), which each run would read on from where the last "
                "stopped: return a list or a "
                "DataLoader, or build the iterator inside the function"
            )
        try:
            seen.append(weakref.ref(data))
        except TypeError:  # an iterator without weak references: kept itself
            seen.append(lambda data=data: data)


def _trained_params(setup: Setup) -> list[Any]:
    """The parameters a run trains: those of the base optimizer's groups (all of the model's,
    or only a head's when the rest is frozen by leaving it out), in their order, less those of
    a group frozen at ``lr=0`` (the schedules keep it at 0 too; unless every group is). The
    Adam and LR-free runs, and Adam's range test, train these."""
    groups = setup.optimizer.param_groups
    live = [g for g in groups if float(g["lr"]) != 0.0] or groups
    return [p for g in live for p in g["params"]]


class _Setups:
    """``make`` checked: each call returns a :class:`Setup`, checked as the docstring of
    :func:`_setups` says; :meth:`restore` puts every DataLoader generator the setups held back
    to the state it had when first seen (the runs leave it where the last one stopped)."""

    def __init__(self, make: Callable[[], Any], *, weights: bool = True) -> None:
        self.make = make
        self.check_start = weights  # (False: no host copy of the first model's weights)
        self.first: list[Any] = []
        self.first_opt: list[Any] = []
        self.generators: dict[int, tuple[Any, Any]] = {}
        self.streams: list[Any] = []

    def __call__(self) -> Setup:
        setup = self.make()
        if not isinstance(setup, Setup):
            raise TypeError(
                f"make() must return a lrkit.compare.Setup, got {type(setup).__name__}: wrap "
                "a function returning (model, optimizer, loss_fn, data[, val_data]) with "
                "lrkit.compare.factory(fn, seed=0), which also seeds every run alike"
            )
        if self.check_start:
            _same_start(setup.model, self.first)
        _same_optimizer(setup.optimizer, self.first_opt)
        _same_batches(setup, self.generators)
        _same_stream(setup, self.streams)
        return setup

    def restore(self) -> None:
        for g, state in self.generators.values():
            g.set_state(state)
        if len(self.first) > 3:  # the buffers of a module shared by the runs, as first seen
            own = self.first[4]  # (a model reset in place keeps its last run's, as its weights)
            _put_back({k: v for k, v in self.first[3].items() if k not in own})


def checked(make: Callable[[], Any], *, weights: bool = True) -> Callable[[], Setup]:
    """``make`` checked on every call as :func:`compare` checks it, for runs made one after
    the other by other means (``lrkit find``'s check runs): each call must return a
    :class:`Setup` (wrap a function returning a tuple with :func:`factory`); a DataLoader
    generator of its own, seen at an earlier call, is put back to the state it had when first
    seen (the runs draw the same batches); a one-shot iterator, a trained model or an
    optimizer with state returned again is a :class:`NotFreshError`. ``weights=False`` leaves
    out the comparison of the first model's weights, and the host copy of them it keeps, for
    a caller that checks its models otherwise (``lrkit find`` refuses models sharing a
    trainable parameter; pass it to :func:`factory` too). The result's ``restore()`` puts
    those generators back to their first states. A make already checked is returned as it
    is, with what it has recorded (given another ``weights=``: a one-line ``ValueError``)."""
    weights = V.flag("weights", weights)
    if isinstance(make, _Setups):
        if make.check_start != weights:
            raise ValueError(
                f"make is already checked with weights={make.check_start}, got "
                f"weights={weights}: check the make itself once, with the weights= wanted"
            )
        return make
    setups = _setups(make)
    setups.check_start = weights
    return setups


def _setups(make: Any) -> _Setups:
    """``make`` checked: a callable whose every call returns a :class:`Setup`, else a one-line
    TypeError that says to wrap a function returning a tuple with :func:`factory`; the first
    model returned again with other weights is a one-line ValueError (it would go on training
    where the last run left it). One already checked is returned as it is (its checks are
    not made twice)."""
    if isinstance(make, _Setups):  # compare() hands its own to find_lrs and run_method
        return make
    if not callable(make):
        raise TypeError(f"make must be callable make() -> Setup, got {type(make).__name__}")
    V.takes("make", make, "make() -> Setup", 0)
    return _Setups(make)


def _same_start(model: Any, first: list[Any]) -> None:
    """Record the first model's parameters (weak references) and their weights in ``first``;
    a later model holding one of those parameters (the first model returned again, or a layer
    built once and shared by the models) with other weights is a ValueError (the run would go
    on training where the last run left it; the weights are put back first). A model or layer
    reset in place to its first weights passes; a fresh model of the same make-up with other
    weights (an unseeded initialisation) is a ValueError too: the runs would start from other
    weights. Parameters not yet initialized (lazy modules) are not compared. A model with a
    parameter or buffer on the ``meta`` device (no data to copy) is a one-line ValueError
    naming ``model``."""
    import weakref

    import torch

    if not isinstance(model, torch.nn.Module):
        return
    from .torch import check_materialized

    check_materialized(model, lazy=False, before="training it")
    named = {
        name: p
        for name, p in model.named_parameters()
        if not isinstance(p, torch.nn.parameter.UninitializedParameter)
    }
    now = list(named.values())
    buffers = [
        b for b in model.buffers() if not isinstance(b, torch.nn.parameter.UninitializedBuffer)
    ]
    if not first:  # kept in host memory: no second copy of the weights on the accelerator
        first.append({id(p): (weakref.ref(p), p.detach().to("cpu", copy=True)) for p in now})
        first.append([weakref.ref(model)])  # every model seen: one returned again is known
        first.append(list(named))  # the parameters' names, in the order of the weights
        # its buffers (BatchNorm statistics): a module shared by the runs (a frozen backbone
        # built once) gets them back before each run, as its parameters stay as they were
        first.append({id(b): (weakref.ref(b), b.detach().to("cpu", copy=True)) for b in buffers})
        first.append(set())  # the buffers of a model reset in place: left as its last run left
        return
    recorded, seen, names, kept = first[0], first[1], first[2], first[3]
    _put_back(kept, ())  # the shared modules' buffers as first seen, whatever ran since
    # the first model's weights by name; a model of the same names and shapes is compared
    # with them (one of another make-up, or with a lazy layer made since, is not)
    starts = dict(zip(names, (start for _, start in recorded.values())))
    alike = set(named) == set(starts) and all(named[k].shape == starts[k].shape for k in starts)
    pairs = [(named[k], starts[k]) for k in starts] if alike else []
    shared = shared_changed = False
    for p in now:
        if not _recorded(recorded, p):
            continue  # a parameter of its own: a fresh model (or layer)
        start = recorded[id(p)][1]
        shared = True
        if not (p.shape == start.shape and torch.equal(p.detach().cpu(), start)):
            shared_changed = True
    # a model seen at an earlier call (with the first weights then), returned again: its
    # parameters may have been replaced since
    same_model = any(ref() is model for ref in seen)
    if not same_model:
        seen.append(weakref.ref(model))
    if shared_changed or (same_model and alike and _differ(pairs)):
        _put_back(recorded, pairs if same_model else ())  # as make() first gave it
        raise NotFreshError(
            "make() must build a fresh model for every run; it returned the first call's "
            "model again, or a layer of it, whose weights have changed since (trained: it "
            "would go on training where the last run left it; its weights are put back as "
            "first returned): create the model inside the function "
            "(lrkit.compare.factory(fn, seed=0) seeds every call)"
        )
    if same_model:  # reset in place: it ends as its last run leaves it, buffers with weights
        first[4].update(id(b) for b in buffers)
    if same_model or not alike:
        return  # reset in place, or a model of another make-up: no weights to compare
    # the parameters of its own (beside layers shared with the first model, such as a frozen
    # backbone built once) must hold the first model's weights of their names
    own = [(p, start) for p, start in pairs if not _recorded(recorded, p)]
    if shared and not own:
        return
    if _differ(own if shared else pairs):
        raise NotFreshError(
            "make() must give every run the same initial weights; it returned a fresh model "
            "whose weights differ from the first one's (an unseeded initialisation): each "
            "method would start from other weights. Seed inside the function "
            "(lrkit.compare.factory(fn, seed=0) seeds every call)"
        )


def _recorded(recorded: Mapping[int, tuple[Any, Any]], t: Any) -> bool:
    """Whether tensor ``t`` is one recorded by :func:`_same_start` (the object itself, not
    another that took its id)."""
    ref = recorded.get(id(t), (None, None))[0]
    return ref is not None and ref() is t


def _differ(pairs: Sequence[tuple[Any, Any]]) -> bool:
    """Whether any parameter of ``(parameter, host copy)`` pairs holds other weights."""
    import torch

    return not all(torch.equal(p.detach().cpu(), start) for p, start in pairs)


def _put_back(
    recorded: Mapping[int, tuple[Any, Any]], pairs: Sequence[tuple[Any, Any]] = ()
) -> None:
    """The parameters recorded by :func:`_same_start` that are still alive set back to their
    recorded weights; ``pairs``: a model's parameters now (they may have been replaced since)
    with the first weights of their names, set back to them."""
    import torch

    with torch.no_grad():
        for ref, start in recorded.values():
            p = ref()
            if p is not None and p.shape == start.shape:
                p.copy_(start.to(p.device))
        for p, start in pairs:
            p.copy_(start.to(p.device))


def demo_factory(*, seed: int = 0) -> Callable[[], Setup]:
    """The built-in digits task with SGD(momentum=0.9) as the base optimizer; the returned
    ``make`` carries a ``name`` attribute describing the task."""
    import torch

    from .torch import seed_all
    from .torch.demo import digits_task

    seed = V.seed("seed", seed)
    task = digits_task(seed=seed)

    def make() -> Setup:
        seed_all(seed)
        model = task.make_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        return Setup(
            model,
            optimizer=opt,
            loss_fn=task.loss_fn,
            data=task.train_batches(seed),
            val_data=task.val_batches(),
        )

    # the data and model of task "digits_mlp_adam", but the base optimizer is SGD: say so
    sizes = f"{len(task.x_train)} train / {len(task.x_val)} val"
    make.name = f"demo: digits MLP 64-128-64-10, SGD(momentum=0.9) ({sizes})"  # type: ignore[attr-defined]
    return make


def parse_methods(spec: str | Sequence[str]) -> list[str]:
    """Method names from ``"a,b,c"`` or a sequence, each in :data:`METHODS`, duplicates
    dropped."""
    allowed = f"a comma-separated subset of {', '.join(METHODS)}"
    if isinstance(spec, str):
        items = spec.split(",")
    elif isinstance(spec, Sequence) and all(isinstance(m, str) for m in spec):
        items = list(spec)
    else:
        raise ValueError(
            f"methods must be {allowed} (a string or a list of names), got {V.fmt(spec)}"
        )
    out = [m.strip().lower() for m in items if m.strip()]
    bad = [m for m in out if m not in METHODS]
    if bad or not out:
        which = ""
        if bad:
            import difflib

            close = difflib.get_close_matches(bad[0], METHODS, n=1, cutoff=0.75)
            which = f" ({bad[0]!r} is none of them" + (
                f": did you mean {close[0]!r}?)" if close else ")"
            )
        raise ValueError(
            f"methods must be a comma-separated subset of {', '.join(METHODS)}, got "
            f"{V.fmt(spec)}{which}"
        )
    return list(dict.fromkeys(out))


def missing_packages(methods: str | Sequence[str]) -> dict[str, tuple[str, str]]:
    """The ``methods`` whose optional package is not installed: method -> (module, extra)."""
    from ._imports import optional

    return {
        m: PACKAGES[m]
        for m in parse_methods(methods)
        if m in PACKAGES and optional(PACKAGES[m][0]) is None
    }


def available_methods() -> list[str]:
    """Every method of :data:`METHODS` whose package is installed (the default of
    :func:`compare`)."""
    missing = missing_packages(METHODS)
    return [m for m in METHODS if m not in missing]


def check_installed(methods: str | Sequence[str]) -> list[str]:
    """``methods`` parsed (:func:`parse_methods`), or a one-line ``ImportError`` naming the
    first method whose package is not installed and the extra that installs it."""
    from ._imports import install_hint

    out = parse_methods(methods)
    missing = missing_packages(out)
    if missing:
        m, (module, extra) = next(iter(missing.items()))
        raise ImportError(install_hint(module, extra, feature=f"method {m!r}"), name=module)
    return out


# ----------------------------------------------------------------------------- running
def _evaluate(setup: Setup) -> tuple[float, float, str]:
    """The validation loss and accuracy, and a note for the row ("" for none)."""
    from .torch import evaluate, evaluating, is_schedule_free

    if setup.val_data is None:
        return math.nan, math.nan, ""
    # BatchNorm statistics at schedule-free's x: from the training data, read as fit reads it
    # (a zero-argument callable is called); a one-shot iterator that the run read cannot be
    # read again: the statistics stay those of training
    bn_data = setup.data if is_schedule_free(setup.optimizer) else None
    note = ""
    if bn_data is not None and hasattr(bn_data, "__next__"):  # an iterator: read on from
        import itertools  # where the run left it (an endless one), unless it is spent

        first = next(bn_data, None)
        bn_data = None if first is None else itertools.chain([first], bn_data)
        if bn_data is None and any(
            getattr(m, "running_mean", None) is not None for m in setup.model.modules()
        ):
            note = "BatchNorm statistics as trained (one-shot data, not read again)"
    with evaluating(setup.model, setup.optimizer, bn_data=bn_data, num_batches=10):
        loss, acc = evaluate(setup.model, loss_fn=setup.loss_fn, data=setup.val_data)
    return float(loss), float(acc), note


def _preflight(make: Callable[[], Setup]) -> None:
    """What would make every run fail, found on one throwaway setup before anything trains:
    one training step through :func:`lrkit.torch.fit` (the data read as every run reads it)
    and the first validation batch through :func:`lrkit.torch.evaluate`; the errors are
    theirs (a one-line ValueError naming ``data``), or ``val_data`` yielding no batch. Param
    groups whose ratios a schedule cannot keep (:func:`lrkit.torch.group_ratios`) are refused
    first: the methods drive the optimizer with schedules."""
    import copy

    from .torch import check_batch, evaluate, fit, group_ratios

    setup = make()
    group_ratios(setup.optimizer)
    # the optimizer's state and the gradients as make() gave them, put back after the check
    # step: a make() that returns its objects again is refused at the next call, its weights
    # put back there, and must not keep a step's momentum either
    opt, params = setup.optimizer, list(setup.model.parameters())
    state = copy.deepcopy(opt.state_dict())
    grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    try:
        fit(setup.model, optimizer=opt, loss_fn=setup.loss_fn, data=setup.data, steps=1)
    finally:
        opt.load_state_dict(state)
        for p, g in zip(params, grads):
            p.grad = g
    first = first_val_batch(setup.val_data)
    if first is not None:
        check_batch(first[0], name="val_data", advice="")  # another layout: val_data's
        evaluate(setup.model, loss_fn=setup.loss_fn, data=first)


#: the methods that score the model on ``val_data`` while they train, not only at the end
READS_VAL_DATA_AGAIN = ("plateau",)


def check_rereadable(method: str, val: Any) -> None:
    """A one-line ``ValueError`` naming ``val_data`` when ``method`` (one that scores the
    model on it while it trains, :data:`READS_VAL_DATA_AGAIN`) would read a one-shot
    iterator (a generator) more than once: empty from its second reading on."""
    if val is not None and hasattr(val, "__next__"):
        raise ValueError(
            f"val_data must be a list, a tuple or a DataLoader for {method}, which scores the "
            f"model on it while it trains, got a one-shot iterator ({type(val).__name__}): it "
            "would be empty from its second reading on"
        )


def first_val_batch(val: Any) -> list[Any] | None:
    """The first batch of ``val`` (a target's validation data) as a one-element list, ``None``
    for no validation data; a one-line ``ValueError`` naming ``val_data`` when it is not an
    iterable or yields no batch. Reading a shuffled loader draws from the RNG: call it under
    ``preserved_rng``."""
    import itertools

    if val is None:
        return None
    if not hasattr(val, "__iter__"):
        raise ValueError(
            f"val_data must be an iterable of (input, target) batches or None, "
            f"got {type(val).__name__}"
        )
    first = list(itertools.islice(val, 1))
    if not first:
        raise ValueError("val_data must yield at least one batch, got none")
    return first


@dataclass
class LRs:
    """Range-test suggestions for the base optimizer and for Adam."""

    base: float
    _: KW_ONLY
    base_max: float
    base_min: float
    adam: float
    notes: list[str] = field(default_factory=list)


def _no_step_advice(error: Any) -> Any:
    """A :class:`lrkit.torch.BatchLayoutError` raised inside a comparison, without the advice
    of ``find_lr``/``fit`` (``step=``, which ``compare`` does not take): the problem alone."""
    return type(error)(error.problem)


def _failure(error: BaseException) -> str:
    """``"RuntimeError: boom"``: what a failed run's row says of ``error`` (an error that only
    restates its cause, as a command's wrapper of the task's error does, is shown as its
    cause)."""
    cause = error.__cause__
    if cause is not None and str(error) == f"{type(cause).__name__}: {cause}":
        error = cause
    return " ".join(f"{type(error).__name__}: {error}".split())


def find_lrs(
    make: Callable[[], Setup],
    *,
    methods: str | Sequence[str],
    num_iter: int = 100,
    total_steps: int | None = None,
) -> LRs:
    """The range tests the ``methods`` need, for runs of ``total_steps`` steps (a fallback LR,
    with a note, when one gives no suggestion; an error raised in one is raised)."""
    import torch

    from .torch import BatchLayoutError, find_lr

    methods = parse_methods(methods)
    num_iter = V.integer("num_iter", num_iter, MIN_ITER, MAX_ITER)
    if total_steps is not None:
        total_steps = V.integer("total_steps", total_steps, 1)
    make = _setups(make)
    try:
        notes: list[str] = []

        def sweep(adam: bool, fallback: float) -> tuple[float, float, float]:
            s = make()
            # Adam's sweep over the parameters its runs train: the base optimizer's
            opt = torch.optim.Adam(_trained_params(s), lr=1e-3) if adam else s.optimizer
            label = "Adam" if adam else type(opt).__name__
            # data given as a function (fit's form): called again for each pass, as fit calls it
            data = Passes(s.data) if is_data_factory(s.data) else s.data
            # an error of the task's code (or a check of what it returned) is raised: a
            # fallback LR would hide it, and every run would meet it too
            try:
                r = find_lr(s.model, opt, s.loss_fn, data, num_iter=num_iter,
                            total_steps=total_steps, warn=False)  # fmt: skip
            except BatchLayoutError as e:  # the data: every run would fail on it too
                raise _no_step_advice(e) from None
            sug, mx, mn = r.suggestion, r.max_lr, r.base_lr
            if sug is None or not math.isfinite(sug):
                notes.append(f"no reliable suggestion for {label}: using lr={fallback:g}")
                return fallback, fallback * 3, fallback / 3
            if getattr(r, "reliable", True) is False:  # kept, and the row says why
                why = [str(w).split(":")[0] for w in getattr(r, "warnings", ())]
                notes.append(
                    f"unreliable suggestion for {label}"
                    + (f": {why[0]}" if why else "")
                    + f"; using lr={float(sug):.3g}"
                )
            mx = float(mx) if mx is not None else float(sug) * 3
            mn = float(mn) if mn is not None else float(sug) / 3
            return float(sug), max(mx, float(sug)), min(mn, mx)

        base = base_max = base_min = math.nan
        if any(m in NEEDS_BASE_LR for m in methods):
            base, base_max, base_min = sweep(False, 0.01)
        adam = math.nan
        if any(m in ("adam", "schedulefree") for m in methods):
            adam = sweep(True, 1e-3)[0]
        return LRs(base, base_max=base_max, base_min=base_min, adam=adam, notes=notes)
    finally:
        make.restore()


def _not_carried(opt: Any) -> list[str]:
    """The note of a row that trains the target's parameters with an optimizer of its own
    (Adam, schedule-free, Prodigy: one group at their defaults) when the target's optimizer
    has a weight decay or groups at different LRs, which that row does not carry."""
    live = [g for g in opt.param_groups if float(g["lr"]) != 0.0] or opt.param_groups
    what = []
    if any(float(g.get("weight_decay", 0.0) or 0.0) != 0.0 for g in live):
        what.append("weight decay")
    if len({float(g["lr"]) for g in live}) > 1:
        what.append("group LRs")
    return [f"one group, no {' nor '.join(what)} (the target's not carried)"] if what else []


def _plan(method: str, setup: Setup, lrs: LRs, steps: int) -> tuple[Any, Any, Any, str]:
    """(optimizer, lrkit scheduler or None, feedback or None, LR description) for a method."""
    import torch

    from . import schedules as S
    from .feedback import ReduceOnPlateau
    from .torch import prodigy, schedule_free, scheduler

    params = _trained_params(setup)
    opt = setup.optimizer
    lr, mx, mn = lrs.base, lrs.base_max, lrs.base_min
    if method == "fixed":
        return opt, scheduler(opt, S.constant(lr)), None, f"{lr:.3g}"
    if method == "step":
        size = max(1, math.ceil(steps / 3))
        return (
            opt,
            scheduler(opt, S.step(lr, step_size=size, gamma=0.1)),
            None,
            f"{lr:.3g} x0.1/{size}",
        )
    if method == "exponential":
        gamma = 0.01 ** (1.0 / max(1, steps))
        return opt, scheduler(opt, S.exponential(lr, gamma=gamma)), None, f"{lr:.3g} ->x0.01"
    if method == "cosine":
        return opt, scheduler(opt, S.cosine(lr, total_steps=steps)), None, f"{lr:.3g} cos"
    if method == "cyclic":
        up = max(1, steps // 4)
        sched = scheduler(opt, S.cyclic(mn, max_lr=mx, step_size_up=up, mode="triangular2"))
        return opt, sched, None, f"{mn:.3g}..{mx:.3g}"
    if method == "onecycle":
        return opt, scheduler(opt, S.onecycle(mx, total_steps=steps)), None, f"peak {mx:.3g}"
    if method == "plateau":
        fb = ReduceOnPlateau(factor=0.5, patience=2)
        return opt, scheduler(opt, S.constant(lr), feedback=fb), fb, f"{lr:.3g} x0.5/plateau"
    if method == "adam":
        a = torch.optim.Adam(params, lr=lrs.adam)
        return a, None, None, f"{lrs.adam:.3g}"
    if method == "schedulefree":
        sf = schedule_free(params, kind="adamw", lr=lrs.adam, warmup_steps=max(1, steps // 20))
        return sf, None, None, f"{lrs.adam:.3g} (x avg)"
    if method == "prodigy":
        return prodigy(params), None, None, "d estimated"
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {V.fmt(method)}")


def run_method(
    method: str,
    *,
    make: Callable[[], Setup],
    lrs: LRs,
    steps: int,
    tick: Callable[[int], None] | None = None,
) -> Result:
    """Train one method for ``steps`` steps from a fresh setup; returns its curves and scores.
    ``tick(n)`` is called as steps are done (for a progress bar). Data that runs out first
    (a one-shot iterator) ends the run there, with a note on the row and a
    :class:`lrkit.torch.DataRanOutWarning`."""
    import time

    from ._runtime import preserved_rng
    from .torch import DataRanOutWarning, evaluate, fit, lrfree_lr

    method = V.choice("method", method, METHODS)
    steps = V.integer("steps", steps, 1, V.MAX_STEPS)
    if not isinstance(lrs, LRs):
        raise TypeError(f"lrs must be a lrkit.compare.LRs (what find_lrs returns), got "
                        f"{V.fmt(lrs)}")  # fmt: skip
    make = _setups(make)
    try:
        t0 = time.perf_counter()
        setup = make()
        target_opt = setup.optimizer
        opt, sched, fb, desc = _plan(method, setup, lrs, steps)
        if fb is not None:
            check_rereadable(method, setup.val_data)
        setup.optimizer = opt
        report_every = max(1, steps // 20)
        window: list[float] = []
        ticked = [0]

        def on_step(k: int, value: float) -> None:
            window.append(value)
            # no report after the last step: a cut there would apply to no step
            if fb is not None and k % report_every == 0 and k < steps:
                if setup.val_data is not None:
                    # starting the validation loader draws from the global RNGs, which the
                    # training loader's next shuffle also draws from: put them back
                    with preserved_rng(import_torch=True):
                        val = evaluate(setup.model, loss_fn=setup.loss_fn, data=setup.val_data)
                    metric = val[0]
                else:
                    metric = sum(window) / len(window)
                sched.report(metric)
                window.clear()
            if tick is not None and k % 10 == 0:
                tick(10)
                ticked[0] += 10

        with warnings.catch_warnings():  # said below, in this function's terms
            warnings.simplefilter("ignore", DataRanOutWarning)
            hist = fit(
                setup.model,
                optimizer=opt,
                loss_fn=setup.loss_fn,
                data=setup.data,
                steps=steps,
                schedule=sched,
                on_step=on_step,
            )
        if tick is not None and steps > ticked[0]:
            tick(steps - ticked[0])
        res = Result(method=method, optimizer=type(opt).__name__, lr=desc)
        res.losses, res.lrs, res.diverged = hist.losses, hist.lrs, hist.diverged
        res.final_loss = hist.final_loss()
        notes = []
        if not res.diverged:
            res.val_loss, res.val_acc, said = _evaluate(setup)
            notes += [said] if said else []
        res.seconds = time.perf_counter() - t0
        if not hist.diverged and hist.steps < steps:
            notes.append(f"data ran out after {hist.steps} of {steps} steps")
            warnings.warn(
                f"compare: method {method!r}: data ran out after {hist.steps} of steps={steps} "
                "steps: a one-shot iterator (a generator) yields its batches once; give the "
                "data as a list, a DataLoader or a function returning a new iterator",
                DataRanOutWarning,
                stacklevel=caller_level(),
            )
        if fb is not None:
            n = len(fb.reductions)
            notes.append(f"{n} reduction{'' if n == 1 else 's'}")
        if method == "prodigy":
            notes.append(f"final d*lr {lrfree_lr(opt)[0]:.3g}")
        if sched is None:  # Adam and the LR-free rows: one group at their own defaults
            notes += _not_carried(target_opt)
        ratios = None if sched is None else group_ratios_text(sched.ratios)
        if ratios is not None:
            # the LR column is the schedule's value, the optimizer's lr: each group trains at
            # its ratio of it (the plot shows group 0's LR)
            notes.append(f"groups at {ratios} the LR")
        res.note = "; ".join(notes)
        return res
    finally:
        make.restore()


@dataclass
class Comparison:
    """What :func:`compare` returns: one :class:`Result` per method, the range-test LRs,
    the task's name and the settings."""

    results: list[Result]
    _: KW_ONLY
    lrs: LRs
    name: str = "task"
    steps: int = 0
    seconds: float = 0.0
    #: whether Ctrl-C (or SIGTERM) stopped the comparison: ``results`` holds the methods that
    #: had finished, ``not_run`` the others (the first of them was cut short)
    interrupted: bool = False
    #: the methods asked for that have no result (an interrupted comparison's), in order
    not_run: list[str] = field(default_factory=list)

    @property
    def has_val(self) -> bool:
        """Whether any method has a validation loss (the table then ranks by it)."""
        return any(math.isfinite(r.val_loss) for r in self.results)

    @property
    def best(self) -> Result | None:
        """The method with the lowest validation loss (training loss without validation), the
        first row :meth:`best_marks` marks; ``None`` when no row that ran has a finite one."""
        marks = self.best_marks()
        return self.results[marks.index(True)] if True in marks else None

    def table(self) -> str:
        """The text table :func:`table` prints."""
        return table(self.results, val=self.has_val)

    def best_marks(self) -> list[bool]:
        """Which rows :meth:`table` marks best (see :func:`best_marks`)."""
        return best_marks(self.results, val=self.has_val)

    def interruption(self) -> str:
        """How an interrupted comparison says so under its table (``lrkit compare``, the
        notebook display): ``"interrupted after 1 of 3 methods; not run: cosine (stopped while
        training), adam"``; ``""`` when every method ran."""
        if not self.interrupted:
            return ""
        done, rest = len(self.results), self.not_run
        cut = [f"{rest[0]} (stopped while training)", *rest[1:]] if rest else []
        return f"interrupted after {done} of {done + len(rest)} methods; not run: " + ", ".join(cut)

    def plot(self, ax: Any = None, *, path: Any = None, title: str | None = None) -> Any:
        """The loss curves and the LR of every method (see :func:`plot`): on ``ax``, a pair of
        Axes (the loss's and the LR's), or in a figure of its own; a file name as the first
        argument is the ``path`` (``comparison.plot("cmp.png")``). The title of an
        interrupted comparison says how many methods finished."""
        from ._figure import resolve

        ax, path = resolve(ax, path, first_name="ax")
        if title is None:
            title = f"lrkit compare: {self.name}"
            if self.interrupted:
                done = len(self.results)
                title += f" (interrupted: {done} of {done + len(self.not_run)} methods ran)"
        return plot(self.results, path=path, title=title, ax=ax)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, full precision (non-finite numbers as ``None``); ``interrupted``
        and ``not_run`` say whether every method ran."""
        return {
            "task": self.name,
            "steps": self.steps,
            "interrupted": self.interrupted,
            "not_run": list(self.not_run),
            "lrs": {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in self.lrs.__dict__.items()
            },
            "results": [r.to_dict() for r in self.results],
        }

    def __repr__(self) -> str:
        """One line: the task, the best method and the runs (the rows are ``results``)."""
        from ._display import comparison_text

        return comparison_text(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Rich display in notebooks (summary table and plot)."""
        from ._display import comparison_bundle

        return comparison_bundle(self)


#: compare()'s default range-test length (told from 100 passed: finder_iter= beside it)
_NUM_ITER = _renamed.default_int(100)


def compare(
    make: Callable[[], Setup],
    *,
    methods: str | Sequence[str] | None = None,
    steps: int = 400,
    num_iter: int = _NUM_ITER,
    progress: bool = False,
    name: str | None = None,
    warn: bool = True,
    finder_iter: int = _renamed.UNSET,
) -> Comparison:
    """Range tests, then every method in turn, each for ``steps`` steps from ``make()``.

    The range tests run ``num_iter`` steps each (``lrkit.torch.find_lr``'s ``num_iter``, as
    :func:`find_lrs` takes it; the command's ``--finder-iter``); ``finder_iter`` is its
    deprecated former name. ``progress=True`` shows a progress bar per range test and run;
    ``name`` (e.g. the task's) heads the comparison's table and plot.

    ``make()`` returns a fresh :class:`Setup` for each run, from the same initial weights:
    wrap a function that returns ``(model, optimizer, loss_fn, data[, val_data])`` with
    :func:`factory` (which seeds every RNG before each call); anything else raises a
    ``TypeError`` that says so, one model object returned by every call (it would go on
    training where the last run left it; its weights are put back as first returned) a
    ``ValueError``, and so does a fresh model whose weights differ from the first one's (an
    unseeded initialisation: the methods would start from other weights). A one-shot iterator
    (a generator) as ``val_data`` fails ``plateau``'s run, which scores on it while it trains
    (``lrkit compare`` refuses it before anything trains). ``methods=None`` runs every
    method whose package is installed (:func:`available_methods`); a method named in
    ``methods`` whose package is missing is a one-line ``ImportError`` before anything
    trains, and so is training or validation data that is not batches or yields none (a
    ``ValueError``). A method whose run fails later is kept as a row with its ``error`` (and
    no scores) while the others run; when every method fails, the comparison holds only
    such rows (``best`` is ``None``). A batch met later that is not an ``(x, y)`` pair
    (:class:`lrkit.torch.BatchLayoutError`, in a range test or a run) stops the comparison:
    every method reads the same batches and would fail on it. So does an error raised in a
    range test (the task's code, or lrkit's check of what it returned): the runs that follow
    would need its LR; a range test that gives no suggestion is replaced by a default LR, with
    a note in ``lrs.notes``, and an unreliable one (``FinderResult.reliable`` False: e.g. a
    loss that never turned up, whose suggestion is a lower bound) is used with a note there
    that says why. Each note is also an :class:`lrkit.finder.LRFinderWarning` at the call
    (``warn=False``: in ``lrs.notes`` only, as ``lrkit compare`` prints them).

    ``KeyboardInterrupt`` (Ctrl-C) while the methods run is not swallowed: it propagates, so
    that a script or a loop of comparisons stops, but the methods that had finished are not
    lost: the exception carries them as ``exc.comparison``, a :class:`Comparison` with
    ``interrupted=True`` and the methods without a result in ``not_run`` (the first of them
    was cut short)::

        try:
            report = compare.compare(make, steps=5000)
        except KeyboardInterrupt as exc:
            report = getattr(exc, "comparison", None)  # None: stopped before any method ran

    An interrupt during the range tests, before any method started, carries none."""
    import time

    from ._runtime import GlobalRNGState, preserved_rng
    from .torch import BatchLayoutError

    t0 = time.perf_counter()
    methods = available_methods() if methods is None else check_installed(methods)
    steps = V.integer("steps", steps, 10, V.MAX_STEPS)
    progress = V.flag("progress", progress)
    warn = V.flag("warn", warn)
    num_iter = _renamed.keyword(
        "lrkit.compare.compare()",
        "finder_iter",
        "num_iter",
        finder_iter,
        num_iter,
        default=_NUM_ITER,
    )
    num_iter = V.integer("num_iter", num_iter, MIN_ITER, MAX_ITER)
    setups = _setups(make)
    results: list[Result] = []
    V.optional_text("name", name, meaning="the task's name")
    label = name if name is not None else str(getattr(make, "name", "task"))
    try:
        with preserved_rng(import_torch=True):
            with preserved_rng(import_torch=True):  # the check draws nothing the runs would see
                _preflight(setups)
            lrs = find_lrs(setups, methods=methods, num_iter=num_iter, total_steps=steps)
            if warn:
                for note in lrs.notes:
                    warnings.warn(f"compare: {note}", LRFinderWarning, stacklevel=caller_level())
            start = GlobalRNGState(import_torch=True)
            bar: Any = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=steps * len(methods), desc="compare", unit="step", leave=False)
            try:
                for m in methods:
                    if bar is not None:
                        bar.set_postfix_str(m)
                    tick = bar.update if bar else None
                    # every run from the same global RNG state: a make() that does not seed
                    # (factory() does) still gives each run the same batches and dropout
                    start.restore()
                    began = time.perf_counter()
                    try:
                        results.append(run_method(m, make=setups, lrs=lrs, steps=steps, tick=tick))
                    except NotFreshError:  # every method would fail
                        raise
                    except BatchLayoutError as e:  # the data: every method would fail
                        raise _no_step_advice(e) from None
                    except Exception as e:  # kept as a failed row: the other runs are not lost
                        msg = _failure(e)
                        results.append(
                            Result(
                                m,
                                optimizer="-",
                                lr="-",
                                error=msg,
                                note=f"failed: {msg}",
                                seconds=time.perf_counter() - began,
                            )  # fmt: skip
                        )
            except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM: stop, keeping what finished
                done = list(results)
                partial = Comparison(
                    done,
                    lrs=lrs,
                    name=label,
                    steps=steps,
                    seconds=time.perf_counter() - t0,
                    interrupted=True,
                    not_run=methods[len(done) :],
                )
                exc.comparison = partial  # type: ignore[attr-defined]
                if hasattr(exc, "add_note"):  # Python 3.11+: said under the traceback
                    exc.add_note(
                        f"lrkit.compare: interrupted after {len(done)} of {len(methods)} methods; "
                        "the finished ones are in this exception's .comparison"
                    )
                raise
            finally:
                if bar is not None:
                    bar.close()
    finally:  # a DataLoader's own generator: back where the user left it
        setups.restore()
    return Comparison(results, lrs=lrs, name=label, steps=steps, seconds=time.perf_counter() - t0)


# ----------------------------------------------------------------------------- output
def best_marks(results: Sequence[Result], *, val: bool = True) -> list[bool]:
    """Which rows a table marks best: those at the lowest finite validation loss (the
    training loss where no row has one), every one of a tie; a row that failed (``error``)
    is never marked. The text table, the notebook's HTML and :attr:`Comparison.best` (the
    first row marked) agree."""
    keys = [math.nan if r.error else r.val_loss if val else r.final_loss for r in results]
    if not any(math.isfinite(x) for x in keys):  # no validation loss: the training loss
        keys = [math.nan if r.error else r.final_loss for r in results]
    best = min((x for x in keys if math.isfinite(x)), default=math.nan)
    return [math.isfinite(key) and key == best for key in keys]


def table(results: Sequence[Result], *, val: bool = True) -> str:
    """One row per method: optimizer, LR, final training loss, validation loss and accuracy
    (4 significant digits), wall time; ``*`` marks the best (validation, else training)
    loss."""
    from ._format import accuracy_cell, duration, loss_cell

    lines = [
        f"  {'method':<13}{'optimizer':<19}{'LR':<22}{'train loss':>11}{'val loss':>10}"
        f"{'val acc':>9}{'time':>9}  note",
        "  " + "-" * 100,
    ]
    for r, marked in zip(results, best_marks(results, val=val)):
        mark = "*" if marked else " "
        lines.append(
            f" {mark}{r.method:<13}{r.optimizer[:18]:<19}{r.lr[:21]:<22}"
            f"{loss_cell(r.final_loss):>11}{loss_cell(r.val_loss):>10}"
            f"{accuracy_cell(r.val_acc):>9}"
            f"{duration(r.seconds):>9}  {r.note}".rstrip()
        )
    return "\n".join(lines)


def plot(
    results: Sequence[Result], *, path: Any = None, title: str | None = None, ax: Any = None
) -> Any:
    """Two panels sharing the step axis: the training loss (EMA 0.9, log scale) and the LR of
    every method. ``title`` heads the loss panel; ``None`` (the default) or ``""`` heads it
    "lrkit compare". ``ax``: a pair of Axes to draw on (the loss's and the LR's, e.g.
    ``fig.subplots(2, 1, sharex=True)``; your figure's layout is left to you), else a figure
    of its own. Writes ``path`` when given (the figure of ``ax`` when given; without pyplot,
    so the caller's backend is untouched). Returns the matplotlib figure."""
    import textwrap

    import numpy as np

    from ._figure import (
        check_path,
        check_title,
        draw_grid,
        label_log_axis,
        log_axis_fits,
        new_figure,
        save_figure,
    )
    from ._imports import require

    check_path(path)
    check_title(title)
    pair = None if ax is None else _axes_pair(ax)
    require("matplotlib", "plot", feature="lrkit.compare.plot")
    if pair is None:
        fig = new_figure(path, figsize=(10, 8))
        ax_loss, ax_lr = fig.subplots(2, 1, sharex=True)
    else:
        ax_loss, ax_lr = pair
        fig = ax_loss.figure
    for r in results:
        y = np.asarray(r.losses, dtype=float)
        if y.size:
            s = np.empty_like(y)
            finite = y[np.isfinite(y)]
            acc = finite[0] if finite.size else np.nan  # from the first finite loss on
            for i, v in enumerate(y):  # EMA (beta 0.9) for readability
                acc = 0.9 * acc + 0.1 * v if np.isfinite(v) else acc
                s[i] = acc
            (line,) = ax_loss.plot(s, label=r.method, lw=1.3)
            ax_lr.plot(r.lrs, color=line.get_color(), lw=1.3, label=r.method)
    if log_axis_fits(v for r in results for v in r.losses):
        ax_loss.set_yscale("log")
    ax_loss.set_ylabel("training loss (EMA 0.9)")
    ax_loss.set_title(textwrap.fill(title or "lrkit compare", 100), fontsize=10)
    if ax_loss.get_legend_handles_labels()[0]:  # none when every method failed
        ax_loss.legend(fontsize="small", ncol=2)
    ax_lr.set_yscale("log")
    drawn = [v for r in results for v in r.lrs if math.isfinite(v) and v > 0]
    if drawn:
        label_log_axis(ax_lr.yaxis, min(drawn), max(drawn))
    ax_lr.set_ylabel("learning rate (group 0; Prodigy: d*lr)")
    ax_lr.set_xlabel("step")
    for each in (ax_loss, ax_lr):
        draw_grid(each)
    if pair is None:  # a figure of its own: laid out here (yours is left as you lay it out)
        fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def _axes_pair(ax: Any) -> tuple[Any, Any]:
    """``ax`` as ``(loss axes, LR axes)``: two matplotlib Axes (a list, a tuple, or the array
    ``fig.subplots(2, 1)`` returns), else a one-line ``ValueError`` naming ``ax``."""
    from ._figure import is_axes

    try:
        pair = tuple(ax.ravel() if hasattr(ax, "ravel") else ax)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(is_axes(a) for a in pair):
        raise ValueError(
            "ax must be a pair of matplotlib Axes (the loss's and the LR's, e.g. "
            f"fig.subplots(2, 1, sharex=True)) or None, got {V.fmt(ax)}"
        )
    return pair[0], pair[1]
