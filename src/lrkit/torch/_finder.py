"""``lrkit.torch.find_lr``: the range test for PyTorch, restoring everything it touched."""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .._imports import require

require("torch", "torch")  # without PyTorch: the one-line install hint

import torch

from .. import _validate as V
from .._runtime import GlobalRNGState, is_rank0
from ..finder import FinderResult, Sweep, SweepOptions, cycle_batches, optimizer_family

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..finder import SweepKwargs

__all__ = ["find_lr"]


# ----------------------------------------------------------------------------- snapshot


def _data_generators(*sources: Any) -> list[torch.Generator]:
    """torch.Generators the DataLoaders (or samplers) ``sources`` draw from, each once, so
    their state can be restored."""
    gens: list[torch.Generator] = []
    seen: set[int] = set()
    objs = [
        obj
        for data in sources
        for obj in (
            data,
            getattr(data, "sampler", None),
            getattr(data, "batch_sampler", None),
            getattr(getattr(data, "batch_sampler", None), "sampler", None),
        )
    ]
    for obj in objs:
        g = getattr(obj, "generator", None)
        if isinstance(g, torch.Generator) and id(g) not in seen:
            seen.add(id(g))
            gens.append(g)
    return gens


class _Snapshot:
    """Everything a sweep may change: weights, buffers, grads, optimizer state and groups,
    module modes, GradScaler, RNGs (torch CPU/CUDA, numpy, Python, DataLoader generators)."""

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
        self.modes = [(m, m.training) for m in model.modules()]
        self.rngs = GlobalRNGState()
        self.gens = [(g, g.get_state()) for g in _data_generators(*data)]
        self.opt_called = optimizer.__dict__.get("_opt_called", _MISSING)
        self.scaler_state = copy.deepcopy(scaler.__dict__) if scaler is not None else None
        # tensors the optimizer steps that the model does not own (e.g. a learnable
        # temperature inside the loss module): restored like the model's parameters
        own = {id(p) for p in model.parameters()}
        self.extra: list[torch.Tensor] = []
        for g in optimizer.param_groups:
            for p in g["params"]:
                if id(p) not in own:
                    own.add(id(p))
                    self.extra.append(p)
        with torch.no_grad():
            tensors: dict[str, Any] = {
                "params": {n: p.detach().clone() for n, p in model.named_parameters()},
                "buffers": {n: b.detach().clone() for n, b in model.named_buffers()},
                "grads": {
                    n: (None if p.grad is None else p.grad.detach().clone())
                    for n, p in model.named_parameters()
                },
                "extra": [p.detach().clone() for p in self.extra],
                "extra_grads": [
                    None if p.grad is None else p.grad.detach().clone() for p in self.extra
                ],
                "opt_state": {
                    id(p): {
                        k: (v.detach().clone() if torch.is_tensor(v) else copy.deepcopy(v))
                        for k, v in st.items()
                    }
                    for p, st in optimizer.state.items()
                },
            }
        self.param_by_id = {id(p): p for p in optimizer.state}
        self.groups = [
            (g, list(g["params"]), {k: copy.deepcopy(v) for k, v in g.items() if k != "params"})
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
            self.tmpdir = tempfile.mkdtemp(prefix="lrkit_find_")
            self.path = os.path.join(self.tmpdir, "snapshot.pt")
            torch.save(tensors, self.path)
            del tensors
            self.tensors: dict[str, Any] | None = None
        else:
            self.tensors = tensors

    def restore(self) -> None:
        model, optimizer = self.model, self.optimizer
        try:
            if self.tensors is None:
                tensors = torch.load(self.path, weights_only=False)
            else:
                tensors = self.tensors
            with torch.no_grad():
                for n, p in model.named_parameters():
                    p.copy_(tensors["params"][n])
                    g = tensors["grads"][n]
                    p.grad = g
                for n, b in model.named_buffers():
                    b.copy_(tensors["buffers"][n])
                for x, saved, g in zip(self.extra, tensors["extra"], tensors["extra_grads"]):
                    x.copy_(saved)
                    x.grad = g
            # optimizer: groups restored in place (dict and list identities kept)
            del optimizer.param_groups[self.n_groups :]
            for (g, params, saved), live in zip(self.groups, self.group_tensors):
                g.clear()
                g.update(saved)
                g["params"] = params
                with torch.no_grad():
                    for k, t in live.items():
                        t.copy_(saved[k])
                        g[k] = t
            optimizer.state.clear()
            for pid, st in tensors["opt_state"].items():
                optimizer.state[self.param_by_id[pid]] = st
            if self.opt_called is _MISSING:
                optimizer.__dict__.pop("_opt_called", None)
            else:
                optimizer.__dict__["_opt_called"] = self.opt_called
            if self.scaler is not None and self.scaler_state is not None:
                self.scaler.__dict__.clear()
                self.scaler.__dict__.update(self.scaler_state)
            for m, flag in self.modes:
                m.training = flag
            self.rngs.restore()
            for gen, state in self.gens:
                gen.set_state(state)
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


_MISSING = object()


# ----------------------------------------------------------------------------- helpers


def _to(obj: Any, device: torch.device) -> Any:
    if torch.is_tensor(obj):
        return obj if obj.device == device else obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


def _xy(batch: Any) -> tuple[Any, Any]:
    """The ``(x, y)`` of a batch for ``loss_fn(model(x), y)``: a tuple or list of two items."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    kind = (
        f"a {type(batch).__name__} of {len(batch)} items"
        if isinstance(batch, (tuple, list))
        else f"a {type(batch).__name__}"
    )
    raise ValueError(
        f"data must yield (x, y) batches for loss_fn(model(x), y), got {kind}; for any other "
        "batch layout pass step=lambda model, batch: loss"
    )


def _check_loss(loss: Any, model: torch.nn.Module, who: str) -> None:
    """A usable loss: a one-element tensor that requires grad (else a one-line error)."""
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
                "model has no trainable parameters (nothing for the range test to train), "
                f"got {type(model).__name__} with none that requires grad"
            )
        raise ValueError(
            f"{who} returned a loss that does not require grad (computed under torch.no_grad() "
            "or detached?): the range test needs a loss it can backpropagate"
        )


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _dist_world() -> int:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return 1
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    return 1


def _mean_over_ranks(value: torch.Tensor, world: int) -> float:
    if world > 1:
        import torch.distributed as dist

        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value = value / world
    return float(value.item())


# ----------------------------------------------------------------------------- find_lr


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
    train_mode: bool = True,
    snapshot: str = "memory",
    max_skipped: int = 10,
    progress: bool = False,
    callback: Callable[[int, float, float], None] | None = None,
    warn: bool = True,
    **sweep_options: Unpack[SweepKwargs],
) -> FinderResult:
    """Run the learning-rate range test on a PyTorch model and restore everything afterwards.

    The sweep's options (``start_lr``, ``end_lr``, ``num_iter``, ``total_steps``, ``rule``,
    ``eval_every``, ``eval_batches``, ...) are those of :class:`lrkit.finder.SweepOptions`,
    given as keyword arguments or as ``options``. Pass ``total_steps``, the number of
    optimizer steps you plan to train: the suggestions depend on it.

    Each sweep step sets every param group's ``lr``, runs ``accumulation_steps`` forward/backward
    passes on the next batches of ``data`` (cycled when exhausted), then ``optimizer.step()``.
    The loss of a batch is ``loss_fn(model(x), y)`` for an ``(x, y)`` batch, or
    ``step(model, batch)`` when a custom ``step`` is given (it returns the loss tensor; the
    backward pass, accumulation, AMP and the optimizer step stay with ``find_lr``). Batches are
    moved to ``device`` (default: the model's device).

    ``amp=True`` (or a dtype) runs the forward pass under ``torch.autocast`` (float16 on CUDA,
    bfloat16 elsewhere by default); with a ``torch.amp.GradScaler`` as ``scaler`` the loss is
    scaled, and a step the scaler skips (inf/NaN gradients) is retried at the same LR on the
    next batch (at most ``max_skipped`` times in a row). Every ``eval_every`` steps the mean
    loss on a fixed set of held batches is measured (eval mode, no grad): ``val_data`` (a few
    batches, kept in memory) or, without it, the first ``eval_batches`` batches of ``data``
    (taken before the sweep; trained on again only if ``data`` runs out and repeats); the
    default rule reads that curve (``result.curve``),
    which follows training progress rather than which batch was drawn.
    ``train_mode=True`` puts the model in train mode
    for the sweep. Under ``torch.distributed`` the loss is averaged over ranks each step, so
    every rank sees the same curve, stops together and gets the same suggestions.

    Afterwards the model's parameters, buffers (BatchNorm statistics included) and ``.grad``,
    the optimizer's state and param groups (dict identities kept), each module's ``training``
    flag, the GradScaler, and the torch (CPU, CUDA), numpy and Python RNG states (and the
    DataLoader's generator) are exactly as before, bit for bit, also when the step raises or
    on ``KeyboardInterrupt``. ``snapshot="disk"`` keeps the copy in a temporary directory
    (removed afterwards) instead of memory, for models too big to copy.

    Returns a :class:`lrkit.finder.FinderResult` (``.suggestion``, ``.max_lr``, ``.base_lr``,
    ``.suggest(rule)``, ``.plot()``, ...).
    """
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    if step is None and loss_fn is None:
        raise ValueError("loss_fn must be a callable loss_fn(output, target) when step is None")
    V.optional_callable("callback", callback, "callback(i, lr, loss)")
    accum = V.integer("accumulation_steps", accumulation_steps, 1)
    max_skipped = V.integer("max_skipped", max_skipped, 0)
    snapshot = V.choice("snapshot", snapshot, ("memory", "disk"))
    family = optimizer_family(
        "sgd" if isinstance(optimizer, torch.optim.SGD) else type(optimizer).__name__,
        momentum=max(
            (float(g.get("momentum", 0.0) or 0.0) for g in optimizer.param_groups), default=0.0
        ),
    )
    sweep = Sweep(options, optimizer=family, **sweep_options)
    dev = torch.device(device) if device is not None else _model_device(model)
    if amp is True:
        amp_dtype: torch.dtype | None = torch.float16 if dev.type == "cuda" else torch.bfloat16
    elif amp is False or amp is None:
        amp_dtype = None
    elif isinstance(amp, torch.dtype):
        amp_dtype = amp
    else:
        raise ValueError(f"amp must be a bool or a torch.dtype, got {amp!r}")
    use_scaler = scaler is not None and bool(getattr(scaler, "is_enabled", lambda: True)())
    world = _dist_world()
    # val_data's generators too: drawing its batches (a shuffled loader) moves them
    snap = _Snapshot(model, optimizer, scaler if use_scaler else None, (data, val_data), snapshot)
    bar = None
    try:
        val_batches = [_to(b, dev) for b in val_data] if val_data is not None else None
        if val_batches is not None and not val_batches:
            raise ValueError("val_data must yield at least one batch, got an empty iterable")
        if train_mode:
            model.train()
        sweep_modes = [(m, m.training) for m in model.modules()]

        def batch_loss(batch: Any) -> torch.Tensor:
            batch = _to(batch, dev)
            if amp_dtype is not None:
                with torch.autocast(device_type=dev.type, dtype=amp_dtype):
                    return _forward(batch)
            return _forward(batch)

        def _forward(batch: Any) -> torch.Tensor:
            if step is not None:
                return step(model, batch)
            x, y = _xy(batch)
            assert loss_fn is not None
            return loss_fn(model(x), y)

        def val_loss() -> torch.Tensor:
            model.eval()
            total = torch.zeros((), device=dev, dtype=torch.float64)
            with torch.no_grad():
                assert val_batches is not None
                for b in val_batches:
                    total += batch_loss(b).detach().double()
            for m, flag in sweep_modes:
                m.training = flag
            return total / len(val_batches)

        groups = optimizer.param_groups
        batches = cycle_batches(data)
        if val_batches is None and sweep.options.eval_batches > 0:
            val_batches = [_to(next(batches), dev) for _ in range(sweep.options.eval_batches)]
        if progress and is_rank0():
            from tqdm.auto import tqdm

            bar = tqdm(total=sweep.num_iter, desc="lrkit find", unit="step", leave=False)

        def one_step(lr: float) -> float:
            for g in groups:
                if torch.is_tensor(g["lr"]):
                    g["lr"].fill_(lr)
                else:
                    g["lr"] = lr
            skipped = 0
            while True:
                optimizer.zero_grad(set_to_none=True)
                total: torch.Tensor | None = None
                for _ in range(accum):
                    loss = batch_loss(next(batches))
                    _check_loss(loss, model, "step" if step is not None else "loss_fn")
                    back = loss / accum if accum > 1 else loss
                    if use_scaler:
                        scaler.scale(back).backward()
                    else:
                        back.backward()  # type: ignore[no-untyped-call]
                    d = loss.detach().float()
                    total = d if total is None else total + d
                assert total is not None
                if not use_scaler:
                    optimizer.step()
                    break
                scale_before = scaler.get_scale()
                scaler.step(optimizer)
                scaler.update()
                if scaler.get_scale() >= scale_before or skipped >= max_skipped:
                    break
                skipped += 1  # the scaler skipped this step: retry this LR on the next batch
            rec = total / accum if accum > 1 else total
            return _mean_over_ranks(rec, world)

        def evaluate() -> float:
            return _mean_over_ranks(val_loss(), world)

        def after_step(i: int, lr: float, value: float) -> None:
            if callback is not None:
                callback(i, lr, value)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(lr=f"{lr:.1e}", loss=f"{value:.4g}", refresh=False)

        sweep.run(one_step, after_step, evaluate if val_batches is not None else None)
    finally:
        if bar is not None:
            bar.close()
        snap.restore()
    result = sweep.result(warn=warn)
    if not is_rank0():  # only rank 0 writes files (plots) in a distributed job
        result = dataclasses.replace(result, writes_files=False)
    return result
