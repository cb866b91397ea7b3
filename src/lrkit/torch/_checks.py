"""The one-line checks of the PyTorch objects lrkit's functions take (a model, an optimizer),
shared by every function that takes them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._imports import require

require("torch", "torch")  # without PyTorch: the one-line install hint

import torch


def check_module(model: Any) -> None:
    """A one-line ``ValueError`` unless ``model`` is a ``torch.nn.Module``."""
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def check_optimizer(optimizer: Any) -> None:
    """A one-line ``ValueError`` unless ``optimizer`` is a ``torch.optim.Optimizer`` whose
    groups have an ``lr`` (not ``None``) and whose tensor LRs, if any, are floating-point (an
    integer tensor would hold every LR set in it cut to an integer: 0.1 as 0)."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    check_group_lrs(optimizer.param_groups)


def wrapped_optimizer(optimizer: Any) -> torch.optim.Optimizer | None:
    """The optimizer a wrapper holds as ``.optim`` (``ZeroRedundancyOptimizer``,
    ``PostLocalSGDOptimizer``); ``None`` for a plain optimizer."""
    inner = getattr(optimizer, "optim", None)
    if isinstance(inner, torch.optim.Optimizer) and inner is not optimizer:
        return inner
    return None


def innermost_optimizer(optimizer: Any) -> Any:
    """The optimizer a wrapper holds, unwrapped to the innermost one: as ``.optimizer``
    (accelerate's ``AcceleratedOptimizer``, Lightning's ``LightningOptimizer``) or as
    ``.optim`` (``ZeroRedundancyOptimizer``, ``PostLocalSGDOptimizer``); a plain optimizer
    itself."""
    for _ in range(8):
        inner = getattr(optimizer, "optimizer", None)
        if not isinstance(inner, torch.optim.Optimizer) or inner is optimizer:
            inner = wrapped_optimizer(optimizer)
        if inner is None or inner is optimizer:
            break
        optimizer = inner
    return optimizer


def inner_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer | None:
    """The optimizer a ``ZeroRedundancyOptimizer`` wraps (``.optim``): it holds this rank's
    shard of the state, the wrapper's own ``state`` stays empty; ``None`` for others (a
    wrapper whose state is its inner optimizer's, ``PostLocalSGDOptimizer``, is read as a
    plain optimizer)."""
    if hasattr(optimizer, "consolidate_state_dict"):  # ZeRO's mark
        return wrapped_optimizer(optimizer)
    return None


def default_lr(optimizer: Any) -> Any:
    """The optimizer's default ``lr`` (``optimizer.defaults["lr"]``), read from the optimizer
    a wrapper without ``defaults`` of its own wraps (``PostLocalSGDOptimizer``'s ``optim``);
    ``None`` when there is none."""
    defaults = getattr(optimizer, "defaults", None)
    if defaults is None:
        defaults = getattr(wrapped_optimizer(optimizer), "defaults", None)
    return (defaults or {}).get("lr")


def keep_state_objects(optimizer: torch.optim.Optimizer, before: Mapping[Any, Any]) -> None:
    """After ``optimizer.state`` was refilled with saved copies (``load_state_dict``, a
    restore): the values go back into the objects the state held before (``before``: each
    parameter's dict then), the dict and each tensor that matches in shape, dtype and device,
    so code holding them (a compiled optimizer step, which would compile again for new
    tensors) stays connected."""
    state = optimizer.state
    with torch.no_grad():
        for p, saved in list(state.items()):
            old = before.get(p)
            if old is None or old is saved:
                continue
            for k, v in saved.items():
                o = old.get(k)
                if (
                    torch.is_tensor(v)
                    and torch.is_tensor(o)
                    and o is not v
                    and (o.shape, o.dtype, o.device) == (v.shape, v.dtype, v.device)
                ):
                    o.copy_(v)
                    saved[k] = o
            old.clear()
            old.update(saved)
            state[p] = old


def check_group_lrs(groups: list[dict[str, Any]], start: int = 0) -> None:
    """A one-line ``ValueError`` when a param group (from index ``start`` on: groups added
    since) has no ``lr``, an integer tensor or one that requires grad as its ``lr``
    (:func:`check_optimizer`)."""
    for i, group in enumerate(groups[start:], start):
        lr = group.get("lr")
        if lr is None:
            raise ValueError(
                f"optimizer: param group {i} has no lr (None: an optimizer that sets its own "
                "step size, such as Adafactor with relative_step=True); a schedule, a range "
                "test or a guard drives a numeric lr: give one (Adafactor: lr=..., "
                "relative_step=False)"
            )
        if isinstance(lr, torch.Tensor) and lr.requires_grad:
            shown = _as_typed(lr.detach())
            raise ValueError(
                f"optimizer: param group {i}'s lr is a tensor that requires grad (an LR learned "
                "by gradients); a schedule, a range test or a guard sets the lr in place: give "
                f"one without requires_grad (torch.tensor({shown}))"
            )
        if isinstance(lr, torch.Tensor) and not lr.is_floating_point():
            raise ValueError(
                f"optimizer: param group {i}'s lr is a tensor of {lr.dtype}, which holds every "
                "LR set in it cut to an integer; give a floating-point tensor "
                f"(torch.tensor({float(lr)!r}))"
            )


def _as_typed(value: torch.Tensor) -> str:
    """The shortest decimal that the float tensor ``value`` (one element) reads back as in its
    own dtype: the number as typed (``torch.tensor(1e-3, dtype=torch.float16)``: ``0.001``)."""
    x = float(value)
    for digits in range(1, 18):
        text = f"{x:.{digits}g}"
        if torch.tensor(float(text), dtype=value.dtype) == value:
            return text
    return repr(x)
