"""``lrkit.torch.find_lr``: the range test for PyTorch, restoring everything it touched; and
``check_batch``, how it and ``fit`` read a batch as ``(x, y)``."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from .._imports import require

require("torch", "torch")  # without PyTorch: the one-line install hint

import torch

from .. import _validate as V
from .._format import counted, failure
from .._runtime import (
    GlobalRNGState,
    caller_level,
    data_generators,
    data_loaders,
    is_rank0,
    range_test_steps,
    started_loader,
)
from ..finder import (
    PROBE_STEPS,
    FinderResult,
    LRFinderWarning,
    Probes,
    Sweep,
    SweepOptions,
    cycle_batches,
    held_batches,
    optimizer_family,
)
from ..finder.sweep import check_finder_kwargs
from ._checks import (
    check_module,
    check_optimizer,
    default_lr,
    inner_optimizer,
    innermost_optimizer,
    keep_state_objects,
)
from ._distributed import all_reduce_mean
from ._lrfree import _is_prodigy, _sf_flags, is_schedule_free

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..finder import SweepKwargs

__all__ = ["BatchLayoutError", "check_batch", "data_generators", "find_lr"]


# ----------------------------------------------------------------------------- snapshot


#: what a torchmetrics ``Metric`` counts besides its states (torchmetrics 1.x)
_METRIC_COUNTS = ("_update_count", "_update_called", "_computed", "_forward_cache")


def _is_metric(m: torch.nn.Module) -> bool:
    """A metric module that accumulates state between calls (torchmetrics' ``Metric``: its
    states are attributes, neither parameters nor buffers)."""
    state = getattr(type(m), "metric_state", None)
    return isinstance(state, property) and callable(getattr(m, "reset", None))


def _metric_attribute_names(m: torch.nn.Module) -> list[str]:
    names: Any = m.metric_state  # a dict: state name -> value
    return [*names, *_METRIC_COUNTS]


def _metric_attributes(m: torch.nn.Module) -> dict[str, Any]:
    """A copy of a metric's states (tensors, lists of tensors) and counts."""
    out: dict[str, Any] = {}
    with torch.no_grad():
        for k in _metric_attribute_names(m):
            if k in m.__dict__:
                v = m.__dict__[k]
                if torch.is_tensor(v):
                    out[k] = v.detach().clone()
                elif isinstance(v, list):
                    out[k] = [
                        x.detach().clone() if torch.is_tensor(x) else copy.deepcopy(x) for x in v
                    ]
                else:
                    out[k] = copy.deepcopy(v)
    return out


class _Snapshot:
    """Everything a sweep may change: weights, buffers, grads, optimizer state and groups,
    module modes, GradScaler, RNGs (torch CPU/CUDA, numpy, Python, DataLoader generators),
    the worker iterator a DataLoader with persistent workers keeps, and the states of the
    metrics (torchmetrics) inside the model."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: Any,
        data: tuple[Any, ...],
        where: str,
    ) -> None:
        self.model, self.optimizer, self.scaler = model, optimizer, scaler
        self.where = where
        self.tmpdir: str | None = None
        named = list(model.named_modules())
        modules = [m for _, m in named]
        self.modes = [(m, m.training) for m in modules]
        self.rngs = GlobalRNGState(data=data)  # the loaders' own generators too
        self.iterators: list[tuple[Any, Any]] = []  # set aside last, below
        # metrics inside the model (torchmetrics: a module with a ``metric_state``) that the
        # sweep's steps update: their accumulated state and counts go back as they were
        self.metrics = [(m, _metric_attributes(m)) for m in modules if _is_metric(m)]
        self.opt_called = optimizer.__dict__.get("_opt_called", _MISSING)
        self.scaler_state = copy.deepcopy(scaler.__dict__) if scaler is not None else None
        # each module's parameter, buffer and submodule slots (the objects, by name):
        # tensors replaced, added or resized during the sweep go back to these, and so do
        # submodules (one a step builds on first use, e.g. a lazily made head, is removed)
        self.slots = [
            (
                m,
                dict(m._parameters),
                dict(m._buffers),
                set(m._non_persistent_buffers_set),
                dict(m._modules),
                # plain attributes, which assigning a module, parameter or buffer of that
                # name removes (``self.head = None`` until a head is built)
                {k: v for k, v in vars(m).items() if not k.startswith("_")},
            )
            for m in modules
        ]
        # every tensor to restore, once: the model's parameters and buffers, and tensors the
        # optimizer steps that the model does not own (e.g. a learnable temperature inside
        # the loss module)
        self.tensors_list: list[torch.Tensor] = []
        self.names: list[str] = []  # for the error message
        seen: set[int] = set()

        def add(t: torch.Tensor | None, name: str) -> None:
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                self.tensors_list.append(t)
                self.names.append(name)

        for (prefix, _), (_, params, buffers, _, _, _) in zip(named, self.slots):
            for k, t in (*params.items(), *buffers.items()):
                add(t, f"{prefix}.{k}" if prefix else k)
        for g in optimizer.param_groups:
            for p in g["params"]:
                add(p, "a tensor the optimizer steps outside the model")
        # a ZeroRedundancyOptimizer's state lives in the optimizer it wraps (this rank's
        # shard); its groups' settings are copied from the wrapper's at each step
        self.inner = inner_optimizer(optimizer)
        #: the optimizers whose ``state`` holds the optimizer's state
        self.holders = [optimizer] if self.inner is None else [optimizer, self.inner]
        with torch.no_grad():
            tensors: dict[str, Any] = {
                "values": [t.detach().clone() for t in self.tensors_list],
                "grads": [
                    None if t.grad is None else t.grad.detach().clone() for t in self.tensors_list
                ],
                "opt_state": [
                    {
                        id(p): {
                            k: (v.detach().clone() if torch.is_tensor(v) else copy.deepcopy(v))
                            for k, v in st.items()
                        }
                        for p, st in o.state.items()
                    }
                    for o in self.holders
                ],
            }
        # which tensors train (a step that freezes or unfreezes a layer is undone)
        self.requires_grad = [t.requires_grad for t in self.tensors_list]
        self.param_by_id = {id(p): p for o in self.holders for p in o.state}
        self.inner_groups = (
            []
            if self.inner is None
            else [
                {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
                for g in self.inner.param_groups
            ]
        )
        # each group: the dict, its params list (object and contents), the other entries
        # (in the group's key order, "params" where it stood)
        self.groups: list[tuple[dict[str, Any], Any, list[Any], dict[str, Any]]] = [
            (
                g,
                g["params"],
                list(g["params"]),
                {k: None if k == "params" else copy.deepcopy(v) for k, v in g.items()},
            )
            for g in optimizer.param_groups
        ]
        # tensor hyperparameters (a tensor lr): the sweep fills them in place; the same tensor
        # objects go back with their values, so code holding them stays connected
        self.group_tensors = [
            {k: v for k, v in g.items() if k != "params" and torch.is_tensor(v)}
            for g in optimizer.param_groups
        ]
        self.n_groups = len(optimizer.param_groups)
        if where == "disk":
            try:
                self.tmpdir = tempfile.mkdtemp(prefix="lrkit_find_")
                self.path = os.path.join(self.tmpdir, "snapshot.pt")
                torch.save(tensors, self.path)
            except BaseException as exc:  # a full disk, a Ctrl-C: no partial copy left behind
                self.cleanup()
                if not isinstance(exc, Exception):
                    raise
                raise RuntimeError(
                    "snapshot='disk' could not write the copy of the weights to "
                    f"{tempfile.gettempdir()} ({failure(exc)}); nothing was changed: free "
                    "space there (the folder is TMPDIR's) or use snapshot='memory'"
                ) from exc
            del tensors
            self.tensors: dict[str, Any] | None = None
        else:
            self.tensors = tensors
        # a DataLoader with persistent workers keeps its iterator (and workers) between
        # epochs: the sweep gets its own, the user's goes back afterwards, so the next
        # iter(loader) is the one it would have been (set aside once nothing here can fail)
        for d in data_loaders(*data):
            if isinstance(d, torch.utils.data.DataLoader) and "_iterator" in vars(d):
                self.iterators.append((d, d._iterator))
                d._iterator = None

    def restore(self) -> None:
        """Put everything back. Each part is restored even when another fails; what could not
        be restored is raised afterwards, as one line."""
        try:
            self._put_back(fresh=False)
        finally:
            self.cleanup()

    def reset(self) -> None:
        """Back to the saved state for another run from it (a probe): as :meth:`restore`, but
        with copies of what was saved (the run changes tensors and states in place), the
        snapshot kept and the run's DataLoader iterators left to it."""
        self._put_back(fresh=True)

    def _put_back(self, *, fresh: bool) -> None:
        failed: list[str] = []

        def attempt(what: str, fn: Callable[[], None]) -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - reported below, after the rest
                failed.append(f"{what} ({failure(exc)})")

        tensors: dict[str, Any] | None = None
        try:
            tensors = (
                torch.load(self.path, weights_only=False) if self.tensors is None else self.tensors
            )
        except Exception as exc:  # noqa: BLE001
            failed.append(f"the saved weights ({failure(exc)})")
        if fresh and tensors is not None and self.tensors is not None:
            tensors = _copied(tensors)  # (loaded from disk: already a copy)
        attempt("the parameter and buffer slots", self._restore_slots)
        if tensors is not None:
            attempt("the weights", lambda: self._restore_tensors(tensors, failed))
        attempt("the optimizer", lambda: self._restore_optimizer(tensors, fresh=fresh))
        attempt("the GradScaler", lambda: self._restore_scaler(fresh=fresh))
        attempt("the metrics' states", lambda: self._restore_metrics(fresh=fresh))
        for m, flag in self.modes:
            m.training = flag
        attempt("the RNG states and DataLoader generators", self.rngs.restore)
        if not fresh:
            attempt("the DataLoader iterators", self._restore_iterators)
        if failed:
            raise RuntimeError(
                "find_lr restored everything else but could not restore " + "; ".join(failed)
            )

    def _restore_slots(self) -> None:
        for m, params, buffers, non_persistent, submodules, attributes in self.slots:
            # same objects under the same names, in the same order; slots added during the
            # sweep are removed, and a plain attribute one of them replaced comes back
            m._modules.clear()
            m._modules.update(submodules)
            for k, v in attributes.items():
                if k not in vars(m) and not (k in submodules or k in params or k in buffers):
                    vars(m)[k] = v
            m._parameters.clear()
            m._parameters.update(params)
            m._buffers.clear()
            m._buffers.update(buffers)
            m._non_persistent_buffers_set.clear()
            m._non_persistent_buffers_set.update(non_persistent)

    def _restore_tensors(self, tensors: dict[str, Any], failed: list[str]) -> None:
        for t, name, saved, grad, trains in zip(
            self.tensors_list,
            self.names,
            tensors["values"],
            tensors["grads"],
            self.requires_grad,
        ):
            try:
                with torch.no_grad():
                    if (t.shape, t.dtype, t.device) == (saved.shape, saved.dtype, saved.device):
                        t.copy_(saved)
                    else:  # the sweep resized or converted it: the saved tensor goes back
                        t.data = saved
                if t.requires_grad != trains:
                    t.requires_grad_(trains)
                t.grad = grad
            except Exception as exc:  # noqa: BLE001 - reported after the rest is restored
                failed.append(f"{name} ({failure(exc)})")

    def _restore_optimizer(self, tensors: dict[str, Any] | None, *, fresh: bool) -> None:
        optimizer = self.optimizer
        # groups restored in place (dict and list identities kept)
        del optimizer.param_groups[self.n_groups :]
        for (g, plist, params, saved), live in zip(self.groups, self.group_tensors):
            if isinstance(plist, list):  # the same list object, with its contents back
                plist[:] = params
            g.clear()  # refilled in the saved key order ("params" first, as torch builds it)
            g.update({
                k: plist if k == "params" else copy.deepcopy(v) if fresh else v
                for k, v in saved.items()
            })  # fmt: skip
            with torch.no_grad():
                for k, t in live.items():
                    t.copy_(saved[k])
                    g[k] = t
        saved = tensors["opt_state"] if tensors is not None else [{} for _ in self.holders]
        for holder, saved_state in zip(self.holders, saved):
            before = dict(holder.state)
            holder.state.clear()
            for pid, st in saved_state.items():
                holder.state[self.param_by_id[pid]] = st
            keep_state_objects(holder, before)  # the tensors a compiled step holds stay
        if self.inner is not None:
            for g, saved_settings in zip(self.inner.param_groups, self.inner_groups):
                g.update(copy.deepcopy(saved_settings) if fresh else saved_settings)
        if self.opt_called is _MISSING:
            optimizer.__dict__.pop("_opt_called", None)
        else:
            optimizer.__dict__["_opt_called"] = self.opt_called

    def _restore_metrics(self, *, fresh: bool) -> None:
        for m, saved in self.metrics:
            for k in _metric_attribute_names(m):
                if k not in saved:
                    m.__dict__.pop(k, None)
            m.__dict__.update(copy.deepcopy(saved) if fresh else saved)

    def _restore_scaler(self, *, fresh: bool) -> None:
        if self.scaler is not None and self.scaler_state is not None:
            self.scaler.__dict__.clear()
            self.scaler.__dict__.update(
                copy.deepcopy(self.scaler_state) if fresh else self.scaler_state
            )

    def _restore_iterators(self) -> None:
        for d, saved in self.iterators:
            mine = vars(d).get("_iterator")
            if mine is not None and mine is not saved:
                shutdown = getattr(mine, "_shutdown_workers", None)
                if callable(shutdown):
                    shutdown()
            d._iterator = saved

    def cleanup(self) -> None:
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


_MISSING = object()


def _copied(tensors: dict[str, Any]) -> dict[str, Any]:
    """A copy of a snapshot's saved tensors (values, grads, optimizer state)."""
    with torch.no_grad():
        return {
            "values": [t.clone() for t in tensors["values"]],
            "grads": [None if g is None else g.clone() for g in tensors["grads"]],
            "opt_state": [
                {
                    pid: {
                        k: (v.clone() if torch.is_tensor(v) else copy.deepcopy(v))
                        for k, v in st.items()
                    }
                    for pid, st in held.items()
                }
                for held in tensors["opt_state"]
            ],
        }


# ----------------------------------------------------------------------------- helpers


def _to(obj: Any, device: torch.device) -> Any:
    if torch.is_tensor(obj):
        return obj if obj.device == device else obj.to(device, non_blocking=True)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple
        return type(obj)(*(_to(o, device) for o in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(o, device) for o in obj)
    if isinstance(obj, Mapping):  # a dict, or a mapping as Hugging Face's BatchEncoding
        moved = {k: _to(v, device) for k, v in obj.items()}
        if type(obj) is dict:
            return moved
        try:
            return cast("Any", type(obj))(moved)
        except Exception:  # a mapping not built from a dict (a defaultdict): a plain dict
            return moved
    return obj


def _check_scaler(scaler: Any) -> None:
    """A one-line error naming ``scaler`` unless it is None or a GradScaler instance (or an
    object with its methods)."""
    methods = ("scale", "step", "update", "get_scale")
    if scaler is not None and (
        isinstance(scaler, type) or not all(callable(getattr(scaler, m, None)) for m in methods)
    ):
        raise ValueError(
            f"scaler must be a torch.amp.GradScaler instance or None, got {V.fmt(scaler)}"
        )


def _device(device: Any) -> torch.device:
    """``device`` as a ``torch.device``, or a one-line error naming it (torch's own lists
    every device type it knows, without the parameter's name)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            "device must be a torch.device or a device string ('cpu', 'cuda', 'cuda:0', "
            f"'mps', ...), got {V.fmt(device)}"
        ) from None
    if dev.type == "meta":
        raise ValueError(
            "device must be a device that holds data, got 'meta' (a batch moved there has "
            "none): pass the device the model is on, or leave device=None for it"
        )
    try:  # a device this machine has (torch says so in a multi-line AssertionError otherwise)
        torch.empty(0, device=dev)
    except (AssertionError, RuntimeError) as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0]
        raise ValueError(f"device {str(dev)!r} is not available here ({why})") from None
    return dev


class BatchLayoutError(ValueError):
    """A batch is not an ``(x, y)`` pair for ``loss_fn(model(x), y)`` (raised by
    :func:`check_batch`, and so by :func:`find_lr` and :func:`fit`).

    ``problem`` says what is wrong (``"data must yield (x, y) batches for loss_fn(model(x), y),
    got a dict"``), ``advice`` what to do instead with the arguments of the function that raised
    it (``""``: none); the message is ``"problem; advice"``, or the problem alone."""

    def __init__(self, problem: str, advice: str = "") -> None:
        self.problem = problem
        self.advice = advice
        super().__init__(f"{problem}; {advice}" if advice else problem)

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt from its parts, not from ``args`` (the message): pickle and copy keep them
        return (type(self), (self.problem, self.advice), self.__dict__)


def check_batch(
    batch: Any,
    *,
    name: str = "data",
    advice: str = "for any other batch layout pass step=lambda model, batch: loss",
) -> tuple[Any, Any]:
    """The ``(x, y)`` of ``batch`` for ``loss_fn(model(x), y)``: a tuple or list of two items.

    Anything else raises :class:`BatchLayoutError` naming ``name`` (the argument the batch came
    from: ``"data"``, ``"val_data"``) and what ``batch`` is (``"got a dict"``, ``"got a tuple
    of 3 items"``), followed by ``advice`` (default: :func:`find_lr`'s ``step=``; ``""``:
    none). A tensor gets a hint to wrap one ``(x, y)`` batch in a list (``val_data=(x, y)``
    yields ``x``, then ``y``), except in ``data`` given with advice: tensor batches of ``data``
    are as often inputs alone, which the advice covers."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    kind = (
        f"a {type(batch).__name__} of {counted(len(batch), 'item')}"
        if isinstance(batch, (tuple, list))
        else f"a {type(batch).__name__}"
    )
    one = (
        f" (one batch as {name}: a list of it, [(x, y)])"
        if torch.is_tensor(batch) and (name != "data" or not advice)
        else ""
    )
    raise BatchLayoutError(
        f"{name} must yield (x, y) batches for loss_fn(model(x), y), got {kind}{one}", advice
    )


def _check_loss(loss: Any, model: torch.nn.Module, who: str, task: str = "the range test") -> None:
    """A usable loss: a one-element tensor that requires grad (else a one-line error naming
    ``who`` returned it and the ``task`` that trains on it)."""
    if not torch.is_tensor(loss):
        raise ValueError(f"{who} must return the loss as a tensor, got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(
            f"{who} must return a scalar loss (one element, e.g. reduction='mean'), "
            f"got a tensor of shape {tuple(loss.shape)}"
        )
    if not loss.requires_grad:
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError(
                f"model has no trainable parameters (nothing for {task} to train), "
                f"got {type(model).__name__} with none that requires grad"
            )
        raise ValueError(
            f"{who} returned a loss that does not require grad (computed under torch.no_grad() "
            f"or detached?): {task} needs a loss it can backpropagate"
        )


def check_optimizer_of(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """A one-line ``ValueError`` when ``model`` has trainable parameters and ``optimizer``
    holds none of them (an optimizer built for another model, or for a copy of this one):
    its steps would move nothing the loss depends on, and the sweep would read a flat
    curve as an LR too small. An optimizer that holds some of them (a frozen backbone, extra
    parameters outside the model) is the user's choice."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        return  # "no trainable parameters" is said where the loss is checked
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    if not any(id(p) in held for p in trainable):
        raise ValueError(
            f"optimizer holds none of the parameters of model ({type(model).__name__}, "
            f"{len(trainable)} trainable): build it from this model's parameters, "
            "e.g. torch.optim.AdamW(model.parameters(), ...), after any copy or .to()"
        )


def check_materialized(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    lazy: bool = True,
    before: str = "the range test",
) -> None:
    """A one-line ``ValueError`` naming ``model`` (or ``optimizer``) when a parameter or buffer
    holds no data: one on the ``meta`` device, or (``lazy``) one of a lazy module
    (``nn.LazyLinear``, ...) not yet materialized by a first forward pass. ``before`` names
    what needs the data (``"the range test"``). ``optimizer``: its params are checked too
    (one outside the model, or one the model replaced since, as ``to_empty`` does)."""
    from torch.nn.parameter import is_lazy

    for prefix, m in model.named_modules():
        owned = (
            *(("parameter", k, t) for k, t in m.named_parameters(recurse=False)),
            *(("buffer", k, t) for k, t in m.named_buffers(recurse=False)),
        )
        for kind, k, t in owned:
            name = f"{prefix}.{k}" if prefix else k
            if is_lazy(t):
                if lazy:
                    raise ValueError(
                        f"model: {kind} {name!r} of {type(m).__name__} is not initialized yet "
                        "(a lazy module): run one forward pass (model(x) on a batch, under "
                        f"torch.no_grad()) before {before}"
                    )
            elif t.is_meta:
                raise ValueError(
                    f"model: {kind} {name!r} is on the meta device (not materialized): load or "
                    f"initialize its weights before {before} (model.to_empty(device=...) and a "
                    "state dict; build the optimizer after that)"
                )
    if optimizer is None:
        return
    for i, g in enumerate(optimizer.param_groups):
        for p in g["params"]:
            if torch.is_tensor(p) and is_lazy(p):
                if lazy:
                    raise ValueError(
                        f"optimizer: param group {i} holds a lazy module's parameter that is "
                        "not initialized yet: run one forward pass of that module (on a batch, "
                        f"under torch.no_grad()) before {before}"
                    )
            elif torch.is_tensor(p) and p.is_meta:
                raise ValueError(
                    f"optimizer: param group {i} holds a parameter on the meta device (built "
                    "before the model was materialized? model.to_empty replaces the "
                    f"parameters): build the optimizer on the materialized model before {before}"
                )


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


# ----------------------------------------------------------------------------- find_lr


#: ``find_lr(window_step=)``: given the batches of one optimizer step (on the device), the
#: batches to train on and ``step(model, batch)`` returning each one's loss already weighed over
#: the whole window (summed, not divided by the accumulation steps), as a training loop that
#: counts the window's items (label tokens) weighs it
_WindowHook = Callable[[list[Any]], tuple[list[Any], Callable[[torch.nn.Module, Any], Any]]]


def _group_ratios(optimizer: torch.optim.Optimizer) -> list[float] | None:
    """Each param group's LR during the sweep as a multiple of the swept LR, as
    ``lrkit.torch.scheduler`` reads them (:func:`lrkit.torch.group_ratios`: a group's
    ``initial_lr`` or ``lr`` over ``optimizer.defaults['lr']``), so that the sweep's LRs, and
    so its suggestions, are in the units of the optimizer's ``lr``; ``None`` (every group at
    the swept LR) when every ratio is 1 (one group, or groups that share one LR), or when the
    scheduler could not read their ratios (every group sets its own lr and the optimizer's is
    its default, or none): then one ``UserWarning`` says that the groups are swept at one
    LR. A group frozen at ``lr=0`` keeps its ratio, 0, either way (no warning when the
    other groups share one LR)."""
    groups = optimizer.param_groups
    from ._scheduler import group_ratios

    try:
        # the sweep has no schedule peaking at the optimizer's lr: every group setting its
        # own lr beside a default optimizer lr is not read as ratios
        ratios = group_ratios(optimizer)
    except ValueError:  # groups at different LRs (one LR reads as ratios of 1)
        lrs = [float(g.get("initial_lr", g["lr"])) for g in groups]
        # a group frozen at lr=0 stays frozen whatever the swept LR stands for: its ratio, 0,
        # does not depend on the optimizer's lr
        kept = [0.0 if v == 0.0 else 1.0 for v in lrs]
        frozen = 0.0 in kept
        if len({v for v in lrs if v != 0.0}) <= 1:  # the others share one LR: swept at it
            return kept if frozen else None
        default = default_lr(optimizer)
        name = type(optimizer).__name__
        why = (
            f"the optimizer's lr is {name}'s default {float(default):g}"
            if default is not None and float(default) != 0.0
            else f"the optimizer has no lr (defaults['lr'] is {default!r})"
        )
        warnings.warn(
            f"optimizer: every param group sets its own lr ({', '.join(f'{v:g}' for v in lrs)}) "
            f"and {why}, so the range test sweeps every group"
            f"{' not frozen at lr=0' if frozen else ''} at one LR, not keeping their "
            "ratios; pass lr= to the optimizer (e.g. the first group's lr) to keep them: each "
            "group is then swept at its lr / that lr times the swept LR, as "
            "lrkit.torch.scheduler applies a schedule",
            UserWarning,
            stacklevel=caller_level(),
        )
        return kept if frozen else None
    if all(r == 1.0 for r in ratios):
        return None
    return ratios


def _refuse_closure(optimizer: Any, what: str) -> None:
    """A one-line ``ValueError`` when ``optimizer.step`` requires a closure (LBFGS): ``what``
    (the range test, fit) steps without one."""
    try:
        p = inspect.signature(optimizer.step).parameters.get("closure")
    except (TypeError, ValueError, AttributeError):
        return
    if p is not None and p.default is inspect.Parameter.empty:
        raise ValueError(
            f"optimizer {type(optimizer).__name__} needs a closure in step(closure): {what} "
            "steps without one; use a first-order optimizer (SGD, Adam, ...)"
        )


def _windowed(
    window_step: _WindowHook, batches: list[Any]
) -> tuple[list[Any], Callable[[torch.nn.Module, Any], Any]]:
    """``window_step(batches)``'s batches and step, or a one-line ``TypeError`` naming it."""
    got = window_step(batches)
    if not isinstance(got, tuple) or len(got) != 2:
        what = (
            f"a tuple of {counted(len(got), 'item')}"
            if isinstance(got, tuple)
            else type(got).__name__
        )
        raise TypeError(
            "window_step must return (batches, step): a list of batches and a callable "
            f"step(model, batch) -> loss, got {what}"
        )
    if not isinstance(got[0], list):
        raise TypeError(
            f"window_step must return its batches as a list, got a {type(got[0]).__name__}"
        )
    if not got[0]:
        raise ValueError("window_step returned no batches for an optimizer step: return them")
    if not callable(got[1]):
        raise TypeError(
            "window_step must return a callable step(model, batch) -> loss beside its "
            f"batches, got {type(got[1]).__name__}"
        )
    return got


def _warn_started_loaders(**sources: Any) -> None:
    """One :class:`LRFinderWarning` per source that is a generator over a DataLoader iterator
    made before the call: its draw from the loader's random generator cannot be put back."""
    for name, data in sources.items():
        if started_loader(data):
            warnings.warn(
                f"{name}: a generator over a DataLoader (such as (f(b) for b in loader)) "
                "iterates a loader iterator made when the generator was, which drew from the "
                "loader's random generator before the range test could save it: the loader's "
                "next epoch will not have the order it would have had; to keep it, pass the "
                "loader itself (for another batch layout with step=lambda model, batch: loss)",
                LRFinderWarning,
                stacklevel=caller_level(),
            )


def _check_lrfree(optimizer: torch.optim.Optimizer, *, train_mode: bool, warn: bool) -> bool:
    """Before the snapshot: a schedule-free ``optimizer`` in eval mode is switched to train mode
    for the sweep with ``train_mode`` (returns True), else a one-line ``ValueError``; with
    ``warn``, a Prodigy optimizer gets one :class:`LRFinderWarning` on what its suggestion is."""
    if warn and _is_prodigy(optimizer):
        warnings.warn(
            "optimizer: Prodigy estimates its own step size (d) and its lr is a multiplier on "
            "it, best left at 1.0; the range test's suggestion is for that multiplier",
            LRFinderWarning,
            stacklevel=caller_level(),
        )
    if not is_schedule_free(optimizer) or all(_sf_flags(optimizer)):
        return False
    if not train_mode:
        raise ValueError(
            f"optimizer: {type(optimizer).__name__} is in eval mode (optimizer.eval() or "
            "lrkit.torch.finalize) and train_mode=False: call optimizer.train() before the "
            "range test, or pass train_mode=True to switch it for the sweep"
        )
    return True


def _sweep_lrfree(optimizer: torch.optim.Optimizer, *, to_train: bool) -> None:
    """After the snapshot (which puts both back): a schedule-free optimizer's warmup off
    (``warmup_steps=0``: each step applies the swept LR, not a fraction of it) and, with
    ``to_train``, the optimizer in train mode (``optimizer.train()``)."""
    if to_train:
        optimizer.train()  # type: ignore[attr-defined]
    if is_schedule_free(optimizer):
        for g in optimizer.param_groups:
            if "warmup_steps" in g:
                g["warmup_steps"] = 0


def find_lr(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[..., torch.Tensor] | None,
    data: Iterable[Any],
    *,
    options: SweepOptions | None = None,
    step: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
    accumulation_steps: int = 1,
    amp: bool | torch.dtype = False,
    scaler: Any = None,
    device: torch.device | str | None = None,
    val_data: Iterable[Any] | None = None,
    probe_data: Iterable[Any] | None = None,
    train_mode: bool = True,
    snapshot: str = "memory",
    max_skipped: int = 10,
    progress: bool = False,
    callback: Callable[[int, float, float], None] | None = None,
    warn: bool = True,
    before_step: Callable[[torch.optim.Optimizer], None] | None = None,
    window_step: _WindowHook | None = None,
    **sweep_options: Unpack[SweepKwargs],
) -> FinderResult:
    """Run the learning-rate range test on a PyTorch model and restore everything afterwards.

    The sweep's options (``start_lr``, ``end_lr``, ``num_iter``, ``total_steps``, ``rule``,
    ``eval_every``, ``eval_batches``, ...) are those of :class:`lrkit.finder.SweepOptions`,
    given as keyword arguments or as ``options``. Pass ``total_steps``, the number of
    optimizer steps you plan to train: the suggestions depend on it.

    Each sweep step sets every param group's ``lr`` to the swept LR times the group's ratio as
    :func:`lrkit.torch.scheduler` reads it (its lr over the optimizer's ``lr``; groups at one LR,
    or whose ratios cannot be read, with a warning, all at the swept LR), so the suggestions are
    in the units of the optimizer's ``lr``; it runs ``accumulation_steps`` forward/backward
    passes on the next batches of ``data`` (cycled when exhausted), then ``optimizer.step()``.
    The loss of a batch is ``loss_fn(model(x), y)`` for an ``(x, y)`` batch (a tuple, list
    or namedtuple), or
    ``step(model, batch)`` when a custom ``step`` is given (it returns the loss tensor; the
    backward pass, accumulation, AMP and the optimizer step stay with ``find_lr``). A ``step``
    may return ``None`` to skip a batch, as Lightning's ``training_step`` may: a sweep step
    whose batches were all skipped is retried at the same LR on the next ones (at most
    ``max_skipped`` times in a row). ``before_step(optimizer)``, if given, is called after the
    backward passes and before ``optimizer.step()`` (with a ``scaler``, on unscaled gradients),
    e.g. to clip gradients as the training loop does. ``window_step(batches)``, if given, is
    called with the ``accumulation_steps`` batches of each optimizer step (moved to ``device``)
    and returns the batches to run (a non-empty list) and a ``step(model, batch)`` whose
    losses (tensors: ``None`` skips no batch here) are already weighed for the whole window:
    they are backpropagated and recorded as their sum, not divided by the window's size (held
    batches and probes are still scored by ``step`` or ``loss_fn``). Use it when a batch's
    share of the step is not 1 over the window's size, e.g. token losses summed per batch and
    divided by the window's token count, as Hugging Face's ``Trainer`` weighs them
    (:func:`lrkit.hf.find_lr` passes that).
    Batches are moved to ``device`` (default:
    the model's device): tensors, nested in tuples, lists, namedtuples and mappings (a dict, a
    Hugging Face ``BatchEncoding``). The optimizer's own step hooks run on the sweep's steps;
    an :class:`EffectiveLRLogger` leaves them out.

    ``amp=True`` (or ``torch.float16`` / ``torch.bfloat16``) runs the forward pass under
    ``torch.autocast`` (float16 on CUDA, bfloat16 elsewhere by default); with a
    ``torch.amp.GradScaler`` as ``scaler`` the loss is scaled, and a step the scaler skips
    (inf/NaN gradients) is retried at the same LR on the next batch (at most ``max_skipped``
    times in a row). Every ``eval_every`` steps the mean
    loss on a fixed set of held batches is measured (eval mode, no grad): ``val_data`` (a few
    batches, kept in memory) or, without it, the first ``eval_batches`` batches of ``data``
    (taken before the sweep; trained on again only if ``data`` runs out and repeats); the
    default rule reads that curve (``result.curve``),
    which follows training progress rather than which batch was drawn.

    ``probe_data`` (your validation set: an iterable of batches, kept in memory) runs the
    probes after the sweep (:mod:`lrkit.finder.probes`): from the initial state, restored
    before each, ``PROBE_STEPS`` (60) training steps at each of 8 constant LRs around the
    sweep's edge (same batches, same RNG), each scored by the mean loss over ``probe_data``
    (eval mode, no grad); the suggestions are then scaled from the best probe's rate for the
    budget (``result.probes``).
    It costs 480 training steps and 8 passes over ``probe_data`` (about 6.5 to 9x a
    default sweep's wall time) and suggests better on the task zoo (``docs/finder.md``).
    ``train_mode=True`` puts the model in train mode
    for the sweep, and a schedule-free optimizer in eval mode (``optimizer.eval()``,
    :func:`lrkit.torch.finalize`) in train mode (``train_mode=False`` refuses one in eval mode).
    A schedule-free optimizer's warmup is off during the sweep (each group's ``warmup_steps``
    is 0, restored afterwards), so each step applies the swept LR: the suggestions are for its
    ``lr``, the LR reached after its warmup. Prodigy's ``lr`` multiplies its own step-size
    estimate: the suggestions are for that multiplier (an :class:`LRFinderWarning` says so).
    Under ``torch.distributed`` the loss is averaged over ranks each step, so
    every rank sees the same curve, stops together and gets the same suggestions; rank 0
    alone shows the progress bar and the :class:`LRFinderWarning` (``result.warnings`` holds
    it on every rank). A ``ZeroRedundancyOptimizer``'s state (each rank's shard, in the
    optimizer it wraps) is restored as a plain optimizer's is.

    Afterwards the model's parameters, buffers (BatchNorm statistics included) and ``.grad``,
    the optimizer's state and param groups (the same dicts and params lists, keys in their
    order), each module's ``training``
    flag, the GradScaler, and the torch (CPU, CUDA), numpy and Python RNG states (and the
    ``torch.Generator`` of the DataLoader or its sampler; a sampler's own numpy or Python
    generator is not restored) are exactly as before, bit for bit, also when the step raises or
    on ``KeyboardInterrupt``. Parameters and buffers go back under their names as the same
    tensor objects, also one the sweep resized, replaced or added, and submodules as the same
    module objects (one the sweep added, e.g. a head built on first use, is removed); a
    DataLoader with persistent
    workers gets its own iterator back (the sweep's is shut down), so the next epoch's order
    is the one it would have had. Should a part fail to restore, the rest is restored first and
    a one-line ``RuntimeError`` names it. ``snapshot="disk"`` keeps the copy in a temporary
    directory (removed afterwards) instead of memory, for models too big to copy; when the copy
    cannot be written (a full disk), a one-line ``RuntimeError`` says so before anything
    changed, and no partial copy is left behind (nor after a Ctrl-C while it is written).

    ``progress=True`` shows a progress bar (on rank 0); ``callback(i, lr, loss)`` is called
    after each sweep step; ``warn=False`` issues no :class:`~lrkit.finder.LRFinderWarning`
    for an unreliable result (``result.warnings`` and ``result.reliable`` still say why).

    Returns a :class:`lrkit.finder.FinderResult` (``.suggestion``, ``.max_lr``, ``.base_lr``,
    ``.suggest(rule)``, ``.plot()``, ...).
    """
    check_finder_kwargs("lrkit.torch.find_lr", sweep_options, finder=find_lr)
    check_module(model)
    check_optimizer(optimizer)
    _refuse_closure(optimizer, "the range test")
    check_materialized(model, optimizer)
    check_optimizer_of(model, optimizer)
    if step is None and loss_fn is None:
        raise ValueError("loss_fn must be a callable loss_fn(output, target) when step is None")
    V.loss_callable(loss_fn, optional=True)
    V.optional_callable("step", step, "step(model, batch) -> loss", 2)
    V.optional_callable("callback", callback, "callback(i, lr, loss)", 3)
    V.optional_callable("before_step", before_step, "before_step(optimizer)", 1)
    V.optional_callable("window_step", window_step, "window_step(batches) -> (batches, step)", 1)
    train_mode = V.flag("train_mode", train_mode)
    progress = V.flag("progress", progress)
    warn = V.flag("warn", warn) and is_rank0()  # (said once, by rank 0, as it draws the bar)
    accum = V.integer("accumulation_steps", accumulation_steps, 1)
    max_skipped = V.integer("max_skipped", max_skipped, 0)
    snapshot = V.choice("snapshot", snapshot, ("memory", "disk"))
    inner = innermost_optimizer(optimizer)  # a wrapper's family is its optimizer's
    family = optimizer_family(
        "sgd" if isinstance(inner, torch.optim.SGD) else type(inner).__name__,
        momentum=max(
            (float(g.get("momentum", 0.0) or 0.0) for g in inner.param_groups), default=0.0
        ),
    )
    sweep = Sweep(options, **sweep_options)
    sweep.use_family(family)  # read off the optimizer, unless the options name one
    sweep.check_val_data(val_data)
    dev = _device(device) if device is not None else _model_device(model)
    if amp is True:
        amp_dtype: torch.dtype | None = torch.float16 if dev.type == "cuda" else torch.bfloat16
    elif amp is False or amp is None:
        amp_dtype = None
    elif amp in (torch.float16, torch.bfloat16):  # the dtypes torch.autocast runs in
        amp_dtype = amp
    else:
        raise ValueError(
            "amp must be True, False, torch.float16 or torch.bfloat16 (the dtypes "
            f"torch.autocast runs in), got {V.fmt(amp)}"
        )
    _check_scaler(scaler)
    ratios = _group_ratios(optimizer)  # may warn: before the snapshot, nothing to restore yet
    sf_to_train = _check_lrfree(optimizer, train_mode=train_mode, warn=warn)
    if warn:
        _warn_started_loaders(data=data, val_data=val_data, probe_data=probe_data)
    use_scaler = scaler is not None and bool(getattr(scaler, "is_enabled", lambda: True)())
    # val_data's generators too: drawing its batches (a shuffled loader) moves them
    snap = _Snapshot(
        model, optimizer, scaler if use_scaler else None, (data, val_data, probe_data), snapshot
    )
    batches: Iterator[Any] | None = None
    probes: Probes | None = None
    try:
        val_batches = (
            [_to(b, dev) for b in held_batches(val_data)] if val_data is not None else None
        )
        if val_batches is not None and step is None:
            for b in val_batches:  # before the sweep: the error names val_data
                check_batch(b, name="val_data")
        probe_batches: list[Any] = []
        if probe_data is not None:  # kept as given; moved to the device batch by batch
            probe_batches = held_batches(probe_data, name="probe_data", warn_many=False)
            if step is None:
                for b in probe_batches:
                    check_batch(b, name="probe_data")
        if train_mode:
            model.train()
        _sweep_lrfree(optimizer, to_train=sf_to_train)  # after the snapshot: undone with it
        sweep_modes = [(m, m.training) for m in model.modules()]

        def batch_loss(batch: Any, by: Callable[[torch.nn.Module, Any], Any] | None = None) -> Any:
            batch = _to(batch, dev)
            if amp_dtype is not None:
                with torch.autocast(device_type=dev.type, dtype=amp_dtype):
                    return _forward(batch, by or step)
            return _forward(batch, by or step)

        def _forward(batch: Any, by: Callable[[torch.nn.Module, Any], Any] | None) -> Any:
            if by is not None:
                return by(model, batch)
            x, y = check_batch(batch)
            assert loss_fn is not None
            return loss_fn(model(x), y)

        def val_loss(held: list[Any] | None = None) -> torch.Tensor | None:
            model.eval()
            total = torch.zeros((), device=dev, dtype=torch.float64)
            counted = 0
            scored = val_batches if held is None else held
            with torch.no_grad():
                assert scored is not None
                for b in scored:
                    loss = batch_loss(b)
                    if loss is None and step is not None:  # the step skips this batch
                        continue
                    total += loss.detach().double().reshape(())
                    counted += 1
            for m, flag in sweep_modes:
                m.training = flag
            if counted == 0:  # the step skipped every held batch: no held loss this time
                return None
            return total / counted

        groups = optimizer.param_groups
        batches = cycle_batches(data)
        if val_batches is None and sweep.options.eval_batches > 0:
            val_batches = [_to(next(batches), dev) for _ in range(sweep.options.eval_batches)]

        def one_step(lr: float) -> float:
            if ratios is None:  # every group at the swept LR
                for g in groups:
                    if torch.is_tensor(g["lr"]):
                        g["lr"].fill_(lr)
                    else:
                        g["lr"] = lr
            else:  # each at its ratio times it (a group added during the sweep: at it)
                for i, g in enumerate(groups):
                    v = ratios[i] * lr if i < len(ratios) else lr
                    if torch.is_tensor(g["lr"]):
                        g["lr"].fill_(v)
                    else:
                        g["lr"] = v
            skipped = 0
            source = batches  # (a probe's reset starts it again)
            assert source is not None
            step_name = "step" if step is not None else "loss_fn"
            while True:
                optimizer.zero_grad(set_to_none=True)
                total: torch.Tensor | None = None
                done = 0
                window: list[Any] | None = None
                by: Callable[[torch.nn.Module, Any], Any] | None = None
                if window_step is not None:  # the step's losses are weighed over the whole window
                    window, by = _windowed(
                        window_step, [_to(next(source), dev) for _ in range(accum)]
                    )
                for i in range(accum if window is None else len(window)):
                    loss = batch_loss(next(source) if window is None else window[i], by)
                    if loss is None and step is not None and by is None:  # step skips it
                        continue
                    who = "window_step's step" if by is not None else step_name
                    _check_loss(loss, model, who)
                    back = loss / accum if accum > 1 and by is None else loss
                    if use_scaler:
                        scaler.scale(back).backward()
                    else:
                        back.backward()  # type: ignore[no-untyped-call]
                    d = loss.detach().float().reshape(())
                    total = d if total is None else total + d
                    done += 1
                if total is None:  # every batch skipped: no update, this LR on the next ones
                    skipped += 1
                    if skipped > max_skipped:
                        raise ValueError(
                            f"step returned None (skip the batch) for {skipped * accum} "
                            f"batches in a row (max_skipped={max_skipped}): nothing to train on"
                        )
                    continue
                if before_step is not None:
                    if use_scaler:  # the hook sees the true gradients (clipping reads them)
                        scaler.unscale_(optimizer)
                    before_step(optimizer)
                if not use_scaler:
                    optimizer.step()
                    break
                scale_before = scaler.get_scale()
                scaler.step(optimizer)
                scaler.update()
                if scaler.get_scale() >= scale_before or skipped >= max_skipped:
                    break
                skipped += 1  # the scaler skipped this step: retry this LR on the next batch
            # the window's loss: the mean of its batches', or, weighed by the hook, their sum
            rec = total / done if done > 1 and window_step is None else total
            return all_reduce_mean(rec)

        def evaluate() -> float | None:
            held = val_loss()
            return None if held is None else all_reduce_mean(held)

        with range_test_steps():  # lrkit's own step hooks (EffectiveLRLogger) skip these
            sweep.run(
                one_step,
                evaluate=evaluate if val_batches is not None else None,
                callback=callback,
                progress=progress and is_rank0(),
            )
            if probe_data is not None:
                kept: list[Any] | None = None  # one-shot data: the batches the probes share

                def reset() -> None:
                    nonlocal batches, kept
                    if isinstance(data, Iterator) and kept is None:  # one pass only
                        sweep_batches = batches
                        assert sweep_batches is not None
                        kept = [next(sweep_batches) for _ in range(PROBE_STEPS * accum)]
                    close = getattr(batches, "close", None)
                    if callable(close):
                        close()
                    snap.reset()
                    if train_mode:
                        model.train()
                    _sweep_lrfree(optimizer, to_train=sf_to_train)
                    batches = cycle_batches(kept if kept is not None else data)

                def probe_score() -> float:
                    held = val_loss(probe_batches)
                    if held is None:
                        raise ValueError(
                            "step returned None (skip the batch) for every batch of "
                            "probe_data: nothing to score the probes on"
                        )
                    return all_reduce_mean(held)

                probes = sweep.probe(
                    reset=reset,
                    step=one_step,
                    score=probe_score,
                    progress=progress and is_rank0(),
                )
    finally:
        close = getattr(batches, "close", None)
        if callable(close):  # ends the sweep's pass over data (and its workers) now
            close()
        snap.restore()  # the schedule-free mode and warmup_steps too (in the groups)
    result = sweep.result(warn=warn, probes=probes)
    if not is_rank0():  # only rank 0 writes files (plots) in a distributed job
        result = dataclasses.replace(result, writes_files=False)
    return result
