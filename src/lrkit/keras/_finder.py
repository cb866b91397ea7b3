"""``lrkit.keras.find_lr``: the range test for a compiled Keras model, restoring everything."""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from .. import _validate as V
from .._format import counted, failure
from .._runtime import GlobalRNGState, from_torch
from ..finder import (
    PROBE_STEPS,
    FinderResult,
    Probes,
    Sweep,
    SweepOptions,
    check_scored,
    cycle_batches,
    held_batches,
    optimizer_family,
)
from ..finder.sweep import check_finder_kwargs
from ._callbacks import _inner_optimizer, _optimizers, _values
from ._schedule import forget_traces, host_eval, to_host

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..finder import SweepKwargs

__all__ = ["find_lr"]

_MISSING = object()


def _swept_optimizer(model: Any) -> Any:
    """The one optimizer whose learning rate ``find_lr`` sweeps (inside a
    ``LossScaleOptimizer``); a ``MultiOptimizer`` of several is a one-line ``ValueError``."""
    return _inner_optimizer(
        model, "find_lr", hint="sweep a copy of the model compiled with one of them"
    )


class _SweepLR(keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
    """The sweep's learning rate, read on the host at every call (so a compiled train step
    sees each new value without retracing)."""

    def __init__(self, lr: float) -> None:
        self.lr = lr

    def _host(self, t: np.ndarray) -> np.ndarray:
        return np.full(np.shape(t), self.lr, dtype=np.float32)

    def __call__(self, step: Any) -> Any:
        return host_eval(self._host, step)

    def get_config(self) -> dict[str, Any]:  # pragma: no cover - never saved
        return {"lr": self.lr}


class _KerasGlobalSeed:
    """Keras' global ``SeedGenerator`` (the one an unseeded ``keras.random.*`` call draws
    from, e.g. in a layer's ``call``) as it was at construction; :meth:`restore` puts it back:
    the same object with the same state, or none when there was none (the sweep may have
    created it, drawing its seed from Python's ``random``, which is restored separately).

    Keras exposes this generator only through a private module (``keras.src.random``); it is
    read from Keras' global state directly, without ``global_seed_generator()``, which would
    create it. A Keras without that module: nothing is saved or restored."""

    def __init__(self) -> None:
        try:
            from keras.src.backend.common import global_state
            from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
        except ImportError:  # pragma: no cover - a Keras that moved its private modules
            self.slot: tuple[Any, str] | None = None
            return
        self.slot = (global_state, GLOBAL_SEED_GENERATOR)
        self.gen = global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)
        state = getattr(self.gen, "state", None)
        self.state = None if state is None else _values([state])[0]

    def restore(self) -> None:
        if self.slot is None:  # pragma: no cover
            return
        global_state, name = self.slot
        global_state.set_global_attribute(name, self.gen)
        if self.state is not None:
            self.gen.state.assign(self.state)


class _Snapshot:
    """Model variables (weights, non-trainable state, seed generators), optimizer variables
    (iterations and learning-rate variable included), metric variables, the learning-rate
    object of ``inner`` (the optimizer that holds the learning rate) and the model's train
    function (the global RNGs are saved by :class:`lrkit._runtime.GlobalRNGState` and
    :class:`_KerasGlobalSeed`)."""

    def __init__(self, model: Any, inner: Any) -> None:
        self.model = model
        self.opt = model.optimizer
        self.inner = inner
        self.model_vars = list(model.variables)
        self.opt_vars = list(self.opt.variables)
        self.metric_vars = list(model.metrics_variables)
        self.values = (_values(self.model_vars), _values(self.opt_vars), _values(self.metric_vars))
        self.lr_obj = self.inner._learning_rate
        self.train_function = model.train_function
        self.test_function = getattr(model, "test_function", None)
        self.attrs = {
            k: model.__dict__.get(k, _MISSING) for k in ("_jax_state", "_jax_state_synced")
        }
        self.stop_training = getattr(model, "stop_training", _MISSING)

    def restore(self) -> None:
        model = self.model
        self.inner._learning_rate = self.lr_obj
        model.train_function = self.train_function
        model.test_function = self.test_function
        self.reset()
        forget_traces()  # the user's next step must not run the sweep's trace

    def reset(self) -> None:
        """The saved variables and state attributes back (the saved values are copies, so
        this can run more than once: before each probe), keeping the learning-rate object and
        the train function in place."""
        model = self.model
        for group, vals in zip((self.model_vars, self.opt_vars, self.metric_vars), self.values):
            for v, x in zip(group, vals):
                v.assign(x)
        for k, val in self.attrs.items():
            if val is _MISSING:
                model.__dict__.pop(k, None)
            else:
                model.__dict__[k] = val
        if self.stop_training is not _MISSING:
            model.stop_training = self.stop_training


def _is_arrays(x: Any) -> bool:
    return hasattr(x, "shape") or isinstance(x, dict)


def _num_samples(x: Any, name: str = "x") -> int:
    leaves = keras.tree.flatten(x)
    if not leaves:
        raise ValueError(f"{name} must hold at least one array")
    shape = getattr(leaves[0], "shape", None)
    if not shape:
        raise ValueError(
            f"{name} must be an array (or a list/dict of arrays) with a leading sample axis, "
            f"got a leaf of type {type(leaves[0]).__name__}"
        )
    return int(shape[0])


def _take(x: Any, idx: np.ndarray) -> Any:
    if x is None:
        return None
    return keras.tree.map_structure(lambda a: np.asarray(a)[idx], x)


def _array_batches(
    x: Any,
    y: Any,
    sample_weight: Any,
    batch_size: int,
    shuffle: bool,
    seed: int | None,
    *,
    where: str = "",
) -> Iterator[tuple[Any, Any, Any]]:
    """Batches of ``batch_size`` from the arrays, every pass in a new order (``shuffle``) or in
    order, forever. ``where`` prefixes the names in the errors (``"val_data's "``)."""
    n = _num_samples(x, f"{where}x")
    if n == 0:
        raise ValueError(f"{where}x must hold at least one sample, got 0")
    for name, other in (("y", y), ("sample_weight", sample_weight)):
        if other is not None and _num_samples(other, where + name) != n:
            raise ValueError(
                f"{where}{name} must have as many samples as {where}x ({n}), "
                f"got {_num_samples(other, where + name)}"
            )
    rng = np.random.default_rng(seed)  # private generator: the global RNGs are not used
    while True:
        order = rng.permutation(n) if shuffle else np.arange(n)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            yield _take(x, idx), _take(y, idx), _take(sample_weight, idx)


def _host(leaf: Any) -> Any:
    # torch tensors (e.g. from a DataLoader) go to numpy unless the backend is torch itself
    return leaf if keras.backend.backend() == "torch" else from_torch(leaf)


def _unpack(batch: Any) -> tuple[Any, Any, Any]:
    batch = keras.tree.map_structure(_host, batch)
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            return batch[0], None, None
        if len(batch) == 2:
            return batch[0], batch[1], None
        if len(batch) == 3:
            return batch[0], batch[1], batch[2]
        raise ValueError(
            f"each batch must be x, (x,), (x, y) or (x, y, sample_weight), got a tuple of "
            f"{counted(len(batch), 'item')}"
        )
    return batch, None, None


def _iter_batches(data: Any) -> Iterator[tuple[Any, Any, Any]]:
    if isinstance(data, keras.utils.PyDataset):
        while True:
            n = len(data)
            if not n:
                raise ValueError("x must yield at least one batch, got an empty PyDataset")
            # the batches again in the same order: on_epoch_end is the user's training loop's
            # to call (it may reshuffle the dataset's own index, which the sweep must not move)
            for i in range(n):
                yield _unpack(data[i])
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise ValueError(
            f"x must be arrays (with y) or an iterable of (x, y) batches, got {type(data).__name__}"
        )
    for b in cycle_batches(data, name="x"):
        yield _unpack(b)


def _keeps_running_means() -> bool:
    """Whether ``train_on_batch`` / ``test_on_batch`` keep a running mean of the loss across
    calls (Keras before 3.15: they do not reset the metrics), so that each call's own loss needs
    a ``model.reset_metrics()`` before it."""
    try:
        major, minor = (int(p) for p in str(keras.__version__).split(".")[:2])
    except ValueError:  # pragma: no cover - a version string we cannot read: reset anyway
        return True
    return (major, minor) < (3, 15)


def _val_batches(
    val_data: Any,
    batch_size: int,
    *,
    name: str = "val_data",
    warn_many: bool = True,
    sample_shape: tuple[int, ...] | None = None,
) -> list[tuple[Any, Any, Any]]:
    """The held set from ``val_data``: arrays ``(x, y[, sample_weight])`` (a tuple, or a list
    whose first item is an array, as Keras' ``validation_data`` takes them) cut into batches in
    order, or the batches of one pass over an iterable (a ``PyDataset``: each of its batches;
    an array stacking batches of inputs along its first axis). ``name`` names it in the errors
    (``"probe_data"``); ``warn_many``: as :func:`lrkit.finder.held_batches`. One array whose
    samples are shaped as the training ``x``'s (``sample_shape``, when ``x`` is one array) is
    the inputs without their targets: a one-line ``ValueError``."""
    shape = getattr(val_data, "shape", None)
    if shape is not None and sample_shape is not None and tuple(shape[1:]) == sample_shape:
        raise ValueError(
            f"{name} must be (x, y) or (x, y, sample_weight) arrays, or an iterable of such "
            f"batches, got one array of shape {tuple(shape)}, samples shaped as x's: pass "
            f"{name}=(x_val, y_val) ({name}=(x_val, None) for a model whose loss needs no "
            "targets)"
        )
    pair = isinstance(val_data, (tuple, list)) and len(val_data) in (2, 3)
    first = val_data[0] if pair else None
    # a list of batches is a list too: a list is arrays when its first item is an array, or
    # a dict of them beside an array (a list of dicts alone reads as dict batches)
    arrays = _is_arrays(first) and (
        isinstance(val_data, tuple) or not all(isinstance(b, dict) for b in val_data)
    )
    if pair and arrays:
        x, y, w = (*val_data, None)[:3]
        batches = _array_batches(x, y, w, batch_size, False, None, where=f"{name}'s ")
        first = next(batches)  # the arrays are checked here
        rest = math.ceil(_num_samples(x) / batch_size) - 1
        return held_batches(
            [first, *(next(batches) for _ in range(rest))], name=name, warn_many=warn_many
        )
    if isinstance(val_data, keras.utils.PyDataset):
        return held_batches(
            [_unpack(val_data[i]) for i in range(len(val_data))], name=name, warn_many=warn_many
        )
    return [_unpack(b) for b in held_batches(val_data, name=name, warn_many=warn_many)]


def _raise_if_targets_missing(model: Any, batch: tuple[Any, Any, Any], exc: Exception) -> None:
    """The loss failed (``exc``) on ``batch``, the first batch, which has no targets: the
    one-line error naming ``y`` when the model itself runs on its ``x`` (the loss needs the
    targets: ``model.fit(x)`` says ``None is not a valid value for jnp.array``). Returns
    when the model fails on ``x`` too: the inputs are at fault, and the caller raises
    ``exc`` as it is."""
    try:
        model(batch[0], training=False)
    except Exception:  # noqa: BLE001 - the model fails on x: its own error says why
        return
    raise ValueError(
        f"y: the loss could not be computed on the first batch without targets "
        f"({failure(exc)}); pass the targets (find_lr(model, x, y) for arrays, or batches "
        "(x, y))"
    ) from exc


def _check_targets(model: Any, batch: tuple[Any, Any, Any]) -> None:
    """A first batch without targets, for a built model: :func:`_raise_if_targets_missing`
    when its loss
    cannot be computed on it (a model that computes its loss from ``x`` alone passes). The
    caller puts back what the calls change (the metric variables)."""
    if _keeps_running_means():
        model.reset_metrics()
    try:
        model.test_on_batch(batch[0], None, sample_weight=batch[2], return_dict=True)
    except Exception as exc:  # noqa: BLE001 - reported with its type and first line
        _raise_if_targets_missing(model, batch, exc)
        raise


def _check_scored(
    model: Any, batch: tuple[Any, Any, Any], reference: tuple[Any, Any, Any], name: str
) -> None:
    """:func:`lrkit.finder.check_scored` with ``model.test_on_batch`` (what the held
    evaluation and the probes' scoring run): ``batch`` is ``name``'s first batch,
    ``reference`` the first batch of ``x``. The caller puts back what these calls change
    (the metric variables, the global RNGs)."""
    reset = _keeps_running_means()

    def score(b: tuple[Any, Any, Any]) -> None:
        if reset:
            model.reset_metrics()
        model.test_on_batch(b[0], b[1], sample_weight=b[2], return_dict=True)

    also = ", as val_data takes them" if name != "val_data" else ""
    check_scored(
        score,
        batch,
        reference,
        name=name,
        expected=(
            f"(x, y) or (x, y, sample_weight) arrays, or an iterable of such batches{also}, "
            "with x the model's inputs and y its targets"
        ),
    )


def _build(model: Any, batch: tuple[Any, Any, Any]) -> None:
    """Build the model and its optimizer (what the first train step would do) so that the
    snapshot holds every variable the sweep will touch."""
    opt = model.optimizer
    if model.built and opt.built:
        return
    build = getattr(model, "_symbolic_build", None)
    if build is not None:
        build(data_batch=batch)
    else:  # pragma: no cover - every Keras 3 trainer has _symbolic_build
        model(batch[0])
    if not opt.built:  # pragma: no cover
        opt.build(model.trainable_variables)


def _accumulation(opt: Any) -> tuple[Any, int]:
    """The optimizer that accumulates gradients (``opt`` or, for a ``LossScaleOptimizer``, its
    inner optimizer) and its ``gradient_accumulation_steps`` (1 without accumulation)."""
    for o in (opt, getattr(opt, "inner_optimizer", None)):
        steps = getattr(o, "gradient_accumulation_steps", None) if o is not None else None
        if steps and int(steps) > 1:
            return o, int(steps)
    return opt, 1


def _loss_scale(opt: Any) -> float:
    """A ``LossScaleOptimizer``'s current loss scale (cut when it skips a step)."""
    return float(to_host(opt.dynamic_scale))


def _start_accumulation(opt: Any) -> int:
    """Start the sweep on an accumulation boundary (the snapshot puts the optimizer's counter
    and accumulators back afterwards): the micro-batch counter is rounded down to the last
    update and the accumulated gradients are zeroed, so each sweep step is one whole update of
    ``gradient_accumulation_steps`` micro-batches. Returns that number (1 without
    accumulation)."""
    acc, steps = _accumulation(opt)
    if steps > 1:
        it = int(to_host(acc._iterations))
        acc._iterations.assign(it - it % steps)
        for g in getattr(acc, "_accumulated_gradients", None) or []:
            if g is not None:
                g.assign(keras.ops.zeros(g.shape, dtype=g.dtype))
    return steps


_NO_LOSS = (
    "model must be compiled with a loss (model.compile(optimizer=..., loss=...)): it has none "
    "and adds none (add_loss), so there is no curve to read"
)


def _no_loss(model: Any) -> bool:
    """True when ``model`` was compiled without a loss and trains with Keras' own
    ``train_step``/``compute_loss`` (so only ``add_loss`` terms, if any, make its loss)."""
    if getattr(model, "loss", None) is not None or getattr(model, "_compile_loss", None):
        return False
    cls = type(model)
    return bool(
        cls.compute_loss is keras.Model.compute_loss and cls.train_step is keras.Model.train_step
    )


#: the keywords of the other finders, and what this one has instead
_KERAS_HINTS = {
    "optimizer": "the model's compiled optimizer is swept; optimizer_family names its family",
    "snapshot": "lrkit.torch.find_lr's; this finder keeps the model's and optimizer's "
    "variables in memory",
    "accumulation_steps": "build the optimizer with gradient_accumulation_steps=",
    "amp": "set a mixed-precision policy (keras.mixed_precision.set_global_policy)",
    "validation_data": "use val_data (Keras' fit() name: the same (x, y) arrays or batches)",
    "validation_split": "use val_data: give the held-out (x, y) arrays",
}


def find_lr(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    batch_size: int = 32,
    sample_weight: Any = None,
    shuffle: bool = True,
    seed: int | None = 0,
    options: SweepOptions | None = None,
    val_data: Any = None,
    probe_data: Any = None,
    max_skipped: int = 10,
    progress: bool = False,
    callback: Callable[[int, float, float], None] | None = None,
    warn: bool = True,
    **sweep_options: Unpack[SweepKwargs],
) -> FinderResult:
    """Run the LR range test on a compiled Keras model and restore it exactly afterwards.

    Every option of :class:`lrkit.finder.SweepOptions` is taken by keyword (or as
    ``options``); ``total_steps``, the optimizer steps the training will take, matters: the
    suggestions depend on it. The held set is the first ``eval_batches`` batches; their mean
    loss (``model.test_on_batch``), measured every ``eval_every`` steps, is the curve the
    default rule reads. ``val_data`` (a few batches never trained on, as in
    :func:`lrkit.torch.find_lr`) is the held set instead: a tuple ``(x_val, y_val)`` or
    ``(x_val, y_val, sample_weight)`` of arrays, as ``model.fit``'s ``validation_data``, cut
    into batches of ``batch_size`` in order, or an iterable of batches, read once.

    ``probe_data`` (your validation set, in the forms ``val_data`` takes, kept in memory) runs
    the probes after the sweep (:mod:`lrkit.finder.probes`): from the initial state, restored
    before each (variables, optimizer, RNGs, batch order), ``PROBE_STEPS`` (60) training steps
    at each of 8 constant LRs around the sweep's edge (same batches, same RNG), each scored by
    the mean loss over ``probe_data`` (``model.test_on_batch``); the suggestions then follow
    the best probe (``result.probes``). It costs 480 training steps and 8 passes over
    ``probe_data`` (with the sweep, about 6.6 times a default sweep's steps) and suggests
    better on the task zoo (``docs/finder.md``). The first batch of ``val_data`` and of
    ``probe_data`` is scored once before the sweep (and everything it changes put back): one
    ``model.test_on_batch`` cannot score while it scores ``x``'s (no targets, a layout the
    model does not take) is a one-line ``ValueError`` naming it, before any training step.

    Data: arrays ``x`` (a NumPy array, a dict or list of arrays for multi-input models) with
    targets ``y`` (and optional ``sample_weight``), cut into batches of ``batch_size`` (reshuffled
    each pass with a private generator seeded by ``seed`` when ``shuffle``); or, with
    ``y=None`` and ``x`` not an array, any iterable of batches ``(x, y)`` /
    ``(x, y, sample_weight)`` (a list, a generator, a ``keras.utils.PyDataset``, a torch
    ``DataLoader``; no ``tf.data`` needed), cycled when exhausted (a generator is replayed;
    a ``PyDataset`` is read again in the same order, its ``on_epoch_end`` never called, so a
    dataset that reshuffles its own index there keeps the order it had).

    Each sweep step runs ``model.train_on_batch`` (the model's compiled loss, regularization
    losses included, and its optimizer) at the sweep's learning rate, whatever the optimizer
    holds (a float or a schedule: the learning rate is swapped for the sweep and put back).
    With an optimizer built with ``gradient_accumulation_steps=n``, a sweep step is one
    optimizer update: ``n`` ``train_on_batch`` calls (micro-batches of ``batch_size``) at the
    same learning rate, and the loss recorded is their mean (as ``accumulation_steps`` in
    :func:`lrkit.torch.find_lr`); the sweep starts on an accumulation boundary. The learning
    rate swept is one optimizer's: a ``keras.optimizers.MultiOptimizer`` of several optimizers
    is a one-line ``ValueError`` (as for :class:`lrkit.keras.LRScheduler`). Under a
    ``LossScaleOptimizer`` (``mixed_float16``), a batch whose gradients it drops (non-finite
    scaled gradients: its loss scale is cut, nothing is applied or accumulated) is replaced
    by the next batch at the same learning rate, at most ``max_skipped`` times in a row, as
    :func:`lrkit.torch.find_lr` retries a ``GradScaler``'s skipped step.

    Afterwards every model variable (``model.variables``: weights, non-trainable state such as
    BatchNorm statistics, seed generators), every optimizer variable (iterations and learning
    rate included), the metric variables, the optimizer's learning-rate object, the model's
    train function, the numpy, Python and (when loaded) torch global RNG states and Keras'
    global ``SeedGenerator`` (the one an unseeded ``keras.random.*`` call draws from; left
    uncreated when there was none) are exactly as before, bit for bit, also when a step raises
    or on ``KeyboardInterrupt``. An unbuilt model or optimizer is built first (as the first
    ``fit`` step would), and that built state is what is restored: on a model never trained
    before, a seeded ``fit`` afterwards then shuffles its first epoch as the ``fit`` of a built
    model does (one shuffle order fewer drawn from NumPy's global RNG than a ``fit`` that builds).

    ``progress=True`` shows a progress bar; ``callback(i, lr, loss)`` is called after each
    sweep step; ``warn=False`` issues no :class:`~lrkit.finder.LRFinderWarning` for an
    unreliable result (``result.warnings`` and ``result.reliable`` still say why).

    Returns a :class:`lrkit.finder.FinderResult` (``.suggestion``, ``.max_lr``, ``.base_lr``,
    ``.suggest(rule)``, ``.plot()``, ``.to_dict()``).
    """
    check_finder_kwargs("lrkit.keras.find_lr", sweep_options, finder=find_lr, hints=_KERAS_HINTS)
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", True):
        raise ValueError("model must be compiled (model.compile(optimizer=..., loss=...))")
    batch_size = V.integer("batch_size", batch_size, 1)
    if seed is not None:
        try:
            seed = V.seed("seed", seed)
        except ValueError:
            raise ValueError(
                f"seed must be an integer in [0, {V.SEED_MAX}] or None, got {V.fmt(seed)}"
            ) from None
    if "optimizer" in sweep_options:  # the model's own optimizer is swept
        raise TypeError(
            "find_lr() got an unexpected keyword argument 'optimizer' (the model's compiled "
            "optimizer is swept; to name its family pass optimizer_family=)"
        )
    V.optional_callable("callback", callback, "callback(i, lr, loss)", 3)
    max_skipped = V.integer("max_skipped", max_skipped, 0)
    shuffle = V.flag("shuffle", shuffle)
    progress = V.flag("progress", progress)
    warn = V.flag("warn", warn)
    # the optimizer whose learning rate is swept (inside a LossScaleOptimizer); a
    # MultiOptimizer of several is refused as LRScheduler refuses it (its own learning rate is a
    # placeholder Keras never uses). One whose optimizers are known only once built (a
    # function as its map) is checked after the build.
    inner = _swept_optimizer(model) if _optimizers(model) else model.optimizer
    momentum = getattr(inner, "momentum", 0.0)
    family = optimizer_family(
        "sgd" if isinstance(inner, keras.optimizers.SGD) else type(inner).__name__,  # subclasses
        momentum=float(momentum) if isinstance(momentum, (int, float)) else 0.0,
    )
    sweep = Sweep(options, **sweep_options)
    sweep.use_family(family)  # read off the optimizer, unless the options name one
    sweep.check_val_data(val_data)
    arrays = y is not None or _is_arrays(x)
    if arrays and seed is None and probe_data is not None:
        # a seed from fresh entropy (as default_rng(None) draws), kept: each probe replays the
        # sweep's order
        seed = secrets.randbits(128)

    def stream() -> Iterator[tuple[Any, Any, Any]]:
        if arrays:
            return _array_batches(x, y, sample_weight, batch_size, shuffle, seed)
        return _iter_batches(x)

    if not arrays and sample_weight is not None:
        raise ValueError("sample_weight must be None when x is an iterable of batches")
    batches = stream()
    # before any batch is drawn (val_data's and probe_data's included); torch DataLoaders given
    # as data draw their order from generators of their own: those too
    rngs = GlobalRNGState(data=(x, val_data, probe_data))
    keras_seed = _KerasGlobalSeed()
    probes: Probes | None = None
    try:
        # x as one array: a held set of arrays shaped as its samples is inputs without targets
        samples = tuple(x.shape[1:]) if arrays and hasattr(x, "shape") else None
        probe_batches = (
            _val_batches(
                probe_data, batch_size, name="probe_data", warn_many=False, sample_shape=samples
            )
            if probe_data is not None
            else None
        )
        held = (
            _val_batches(val_data, batch_size, sample_shape=samples)
            if val_data is not None
            else None
        )
        first = next(batches)
        if held is None:
            held = [first] + [next(batches) for _ in range(sweep.options.eval_batches - 1)]
            if held and sweep.options.eval_batches > 0:
                first = next(batches)
            else:
                held = []
        untargeted = first[1] is None  # no targets (x's arrays without y, batches of x)
        try:
            _build(model, first)
        except Exception as exc:
            if untargeted:
                _raise_if_targets_missing(model, first, exc)
            raise
        snap = _Snapshot(model, _swept_optimizer(model))
        no_loss = _no_loss(model)
        lr_obj = _SweepLR(sweep.start_lr)
        try:
            # before any step: a val_data or probe_data the model cannot score is named now,
            # not after the sweep; what the scoring changes goes back before the sweep starts
            checked = (
                ("val_data", held if val_data is not None else None),
                ("probe_data", probe_batches),
            )
            if untargeted or any(scored for _, scored in checked):
                rngs_now, seed_now = GlobalRNGState(), _KerasGlobalSeed()
                try:
                    if untargeted:
                        _check_targets(model, first)
                    for name, scored in checked:
                        if scored:
                            _check_scored(model, scored[0], first, name)
                finally:
                    snap.reset()
                    seed_now.restore()
                    rngs_now.restore()
            snap.inner._learning_rate = lr_obj
            forget_traces()  # not an earlier trace with the user's learning-rate object
            model.make_train_function(force=True)  # a train step that reads the sweep's LR
            accum = _start_accumulation(snap.opt)
            reset = _keeps_running_means()
            pending: list[tuple[Any, Any, Any]] = [first]
            lso = keras.optimizers.LossScaleOptimizer
            scaled = model.optimizer if isinstance(model.optimizer, lso) else None

            def one_step(lr: float) -> float:
                lr_obj.lr = lr
                total = 0.0
                done = skipped = 0
                while done < accum:  # one optimizer update: ``accum`` micro-batches
                    bx, by, bw = pending.pop() if pending else next(batches)
                    scale = None if scaled is None else _loss_scale(scaled)
                    if reset:  # each call's own loss, not a mean since the first call
                        model.reset_metrics()
                    try:
                        logs = model.train_on_batch(bx, by, sample_weight=bw, return_dict=True)
                    except ValueError as exc:  # Keras' torch backend: "No loss to compute"
                        if no_loss and "loss" in str(exc).lower():
                            raise ValueError(_NO_LOSS) from None
                        raise
                    loss = float(np.asarray(logs["loss"]))
                    if loss == 0.0 and no_loss:  # the JAX backend: a loss of 0
                        raise ValueError(_NO_LOSS)
                    if scale is not None and _loss_scale(scaled) < scale:
                        # the LossScaleOptimizer cut its scale: this batch's gradients were
                        # dropped (no update, no micro-batch counted); the next batch, at this LR
                        skipped += 1
                        if skipped > max_skipped:  # the update ends with what it holds, and
                            _start_accumulation(snap.opt)  # the next starts on a boundary
                            return (total + loss) / (done + 1)
                        continue
                    skipped = 0  # (dropped batches in a row)
                    total += loss
                    done += 1
                return total / accum

            def evaluate(scored: list[tuple[Any, Any, Any]] | None = None) -> float:
                scored = held if scored is None else scored
                total = 0.0
                for hx, hy, hw in scored:
                    if reset:
                        model.reset_metrics()
                    logs = model.test_on_batch(hx, hy, sample_weight=hw, return_dict=True)
                    total += float(np.asarray(logs["loss"]))
                return total / len(scored)

            sweep.run(
                one_step,
                evaluate=evaluate if held else None,
                callback=callback,
                progress=progress,
            )
            if probe_batches is not None:
                one_shot = not arrays and isinstance(x, Iterator)
                kept: list[Any] | None = None  # one pass only: the probes share these batches

                def reset_probe() -> None:
                    nonlocal batches, kept
                    if one_shot and kept is None:  # the stream's next batches, kept
                        kept = [next(batches) for _ in range(PROBE_STEPS * accum)]
                    close = getattr(batches, "close", None)
                    if callable(close):  # (ends its pass over a loader now)
                        close()
                    snap.reset()
                    keras_seed.restore()
                    rngs.restore()
                    _start_accumulation(snap.opt)
                    pending.clear()
                    batches = cycle_batches(kept) if kept is not None else stream()

                scored = probe_batches
                probes = sweep.probe(
                    reset=reset_probe,
                    step=one_step,
                    score=lambda: evaluate(scored),
                    progress=progress,
                )
        finally:
            snap.restore()
    finally:
        keras_seed.restore()
        rngs.restore()
    return sweep.result(warn=warn, probes=probes)
