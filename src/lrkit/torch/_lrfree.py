"""Learning-rate-free optimizers through their maintained packages (never re-implemented).

* Schedule-Free (``pip install schedulefree``): :func:`schedule_free` builds
  ``AdamWScheduleFree`` / ``SGDScheduleFree`` / ``RAdamScheduleFree``. These optimizers keep two
  weight sequences: training steps happen at ``y`` (``optimizer.train()``), evaluation must use
  the average ``x`` (``optimizer.eval()``). :func:`evaluating` switches both the model and the
  optimizer for evaluation and puts everything back afterwards; with ``bn_data`` it first
  re-estimates BatchNorm statistics at ``x`` (the schedulefree README's recipe: forward a few
  training batches with the model in train mode, no gradients). :func:`finalize` does the same
  for good, at the end of training (before saving or deploying).
* Prodigy (``pip install prodigyopt``): :func:`prodigy` builds ``prodigyopt.Prodigy`` (lr=1.0: the
  step size is estimated as ``d``; ``lr`` is a multiplier on it). :func:`lrfree_lr` reports the
  LR these optimizers actually use (``d * lr`` for Prodigy, the warmed-up lr for schedule-free).

Both are optional: ``pip install 'lrkit[lrfree]'``.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .._imports import require
from .._runtime import GlobalRNGState

require("torch", "torch")  # without PyTorch: the one-line install hint

import torch

from ._finder import _data_generators

__all__ = [
    "evaluating",
    "finalize",
    "is_schedule_free",
    "lrfree_lr",
    "prodigy",
    "reestimate_batchnorm",
    "schedule_free",
]

_SF_KINDS = {
    "adamw": "AdamWScheduleFree",
    "sgd": "SGDScheduleFree",
    "radam": "RAdamScheduleFree",
}


def schedule_free(
    params: Any, *, kind: str = "adamw", lr: float | None = None, **kwargs: Any
) -> torch.optim.Optimizer:
    """A schedule-free optimizer from the ``schedulefree`` package, already in train mode.

    ``kind``: ``"adamw"`` (default lr 0.0025), ``"sgd"`` (default lr 1.0) or ``"radam"``;
    ``kwargs`` go to the constructor (``warmup_steps``, ``betas``/``momentum``,
    ``weight_decay``...). Do not combine with a decaying LR schedule: the averaging replaces it
    (use ``warmup_steps`` for warmup).
    """
    if kind not in _SF_KINDS:
        allowed = ", ".join(repr(k) for k in _SF_KINDS)
        raise ValueError(f"kind must be one of {allowed}, got {kind!r}")
    if lr is not None and (isinstance(lr, bool) or not float(lr) > 0):
        raise ValueError(f"lr must be > 0 (allowed range: (0, inf)), got {lr!r}")
    sf = require("schedulefree", "lrfree", feature="lrkit.torch.schedule_free")
    cls = getattr(sf, _SF_KINDS[kind])
    opt = cls(params, **kwargs) if lr is None else cls(params, lr=float(lr), **kwargs)
    opt.train()
    return opt  # type: ignore[no-any-return]


def prodigy(params: Any, *, lr: float = 1.0, **kwargs: Any) -> torch.optim.Optimizer:
    """``prodigyopt.Prodigy(params, lr=lr, **kwargs)``. Keep ``lr=1.0`` (it multiplies the
    estimated step size ``d``); with an LR warmup pass ``safeguard_warmup=True``, and use
    ``weight_decay`` with ``decouple=True`` (the default) for AdamW-style decay."""
    if isinstance(lr, bool) or not float(lr) > 0:
        raise ValueError(f"lr must be > 0 (allowed range: (0, inf)), got {lr!r}")
    po = require("prodigyopt", "lrfree", feature="lrkit.torch.prodigy")
    return po.Prodigy(params, lr=float(lr), **kwargs)  # type: ignore[no-any-return]


def is_schedule_free(optimizer: Any) -> bool:
    """True for schedule-free optimizers (they have ``train()``/``eval()`` and a
    ``train_mode`` flag in their param groups)."""
    groups = getattr(optimizer, "param_groups", None)
    return bool(
        groups
        and callable(getattr(optimizer, "train", None))
        and callable(getattr(optimizer, "eval", None))
        and "train_mode" in groups[0]
    )


def lrfree_lr(optimizer: torch.optim.Optimizer) -> list[float]:
    """The LR each param group effectively uses: ``d * lr`` for Prodigy (``d`` is its estimate),
    the current warmed-up lr for schedule-free optimizers, the group's ``lr`` otherwise."""
    out = []
    for g in optimizer.param_groups:
        lr = float(g["lr"])
        if "d" in g and "d0" in g:  # Prodigy
            out.append(float(g["d"]) * lr)
        elif "train_mode" in g and "warmup_steps" in g:
            k, w = int(g.get("k", 0)), int(g.get("warmup_steps", 0))
            out.append(lr * (min(1.0, (k + 1) / w) if w > 0 else 1.0))
        else:
            out.append(lr)
    return out


def _bn_layers(model: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def _default_forward(model: torch.nn.Module, batch: Any) -> Any:
    if isinstance(batch, (list, tuple)):
        return model(batch[0])
    if isinstance(batch, dict):
        return model(**batch)
    return model(batch)


@torch.no_grad()
def reestimate_batchnorm(
    model: torch.nn.Module,
    data: Iterable[Any],
    *,
    num_batches: int = 50,
    forward: Callable[[torch.nn.Module, Any], Any] | None = None,
) -> int:
    """Recompute BatchNorm running statistics from ``num_batches`` batches of ``data``.

    Statistics are reset and re-accumulated as an exact average over the batches (momentum
    ``None`` during the pass, restored afterwards). The model is run in train mode without
    gradients; its train/eval flags are restored. ``forward(model, batch)`` defaults to
    ``model(batch[0])`` for tuples/lists, ``model(**batch)`` for dicts, ``model(batch)``
    otherwise. Returns the number of batches used (0 when the model has no BatchNorm).
    """
    if isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1:
        raise ValueError(f"num_batches must be an integer >= 1, got {num_batches!r}")
    bns = _bn_layers(model)
    if not bns:
        return 0
    fwd = forward or _default_forward
    modes = {m: m.training for m in model.modules()}
    momenta = [bn.momentum for bn in bns]
    try:
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average
        model.train()
        used = 0
        for batch in itertools.islice(data, num_batches):
            fwd(model, batch)
            used += 1
    finally:
        for bn, mom in zip(bns, momenta):
            bn.momentum = mom
        for m, training in modes.items():
            m.training = training
    if used == 0:
        raise ValueError("data must yield at least one batch, got none")
    return used


def _bn_buffers(model: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for bn in _bn_layers(model):
        for t in (bn.running_mean, bn.running_var, bn.num_batches_tracked):
            if t is not None:
                out.append((t, t.detach().clone()))
    return out


@contextlib.contextmanager
def evaluating(
    model: torch.nn.Module,
    optimizer: Any = None,
    *,
    bn_data: Iterable[Any] | None = None,
    num_batches: int = 50,
    forward: Callable[[torch.nn.Module, Any], Any] | None = None,
) -> Iterator[torch.nn.Module]:
    """Evaluate correctly, whatever the optimizer, and leave training exactly as it was.

    Inside the block: ``model.eval()``; a schedule-free ``optimizer`` is switched to its
    evaluation weights (``optimizer.eval()``); with ``bn_data``, BatchNorm statistics are
    re-estimated at those weights (see :func:`reestimate_batchnorm`). On exit the weights are
    the training weights again, bit for bit (an exact copy is kept, one copy of the parameters
    in memory), the optimizer is in its previous mode, the BatchNorm buffers get their previous
    values back and every module its previous train/eval flag; the global RNGs and the
    generators of ``bn_data`` are as they were.
    """
    modes = {m: m.training for m in model.modules()}
    sf = optimizer is not None and is_schedule_free(optimizer)
    flags = [g["train_mode"] for g in optimizer.param_groups] if sf else []
    # optimizer.train() after .eval() gives the training weights back only up to rounding:
    # keep an exact copy instead
    weights = (
        [(p, p.detach().clone()) for g in optimizer.param_groups for p in g["params"]] if sf else []
    )
    saved = _bn_buffers(model) if bn_data is not None else []
    # the re-estimation's forward passes (dropout) and data order draw from the global RNGs
    # and the loader's generators: they are put back too
    rngs = GlobalRNGState(import_torch=True) if bn_data is not None else None
    gens = [(g, g.get_state()) for g in _data_generators(bn_data)] if bn_data is not None else []
    try:
        if sf:
            optimizer.eval()
        if bn_data is not None:
            reestimate_batchnorm(model, bn_data, num_batches=num_batches, forward=forward)
        model.eval()
        yield model
    finally:
        if rngs is not None:
            rngs.restore()
        for gen, state in gens:
            gen.set_state(state)
        with torch.no_grad():
            for live, old in [*weights, *saved]:
                live.copy_(old)
        for g, flag in zip(optimizer.param_groups if sf else [], flags):
            g["train_mode"] = flag
        for m, training in modes.items():
            m.training = training


def finalize(
    model: torch.nn.Module,
    optimizer: Any = None,
    *,
    bn_data: Iterable[Any] | None = None,
    num_batches: int = 50,
    forward: Callable[[torch.nn.Module, Any], Any] | None = None,
) -> torch.nn.Module:
    """End of training: switch a schedule-free optimizer to its evaluation weights for good,
    re-estimate BatchNorm statistics there (with ``bn_data``) and put the model in eval mode.
    Call ``optimizer.train()`` to continue training later."""
    if optimizer is not None and is_schedule_free(optimizer):
        optimizer.eval()
    if bn_data is not None:
        reestimate_batchnorm(model, bn_data, num_batches=num_batches, forward=forward)
    model.eval()
    return model
