"""Helpers for ``torch.distributed`` (DDP, any backend); all work unchanged in one process.

* :func:`get_rank`, :func:`get_world_size`, :func:`is_main_process`;
* :func:`main_process_only` wraps a function so that it runs on rank 0 only (file writers);
* :func:`broadcast_object` gives every rank rank 0's (picklable) object;
* :func:`all_reduce_mean` averages a number over ranks.

The LR schedules need nothing: ``lrkit.torch.scheduler`` computes the LR from the step count,
so ranks that step together hold the same LR. ``lrkit.torch.find_lr`` averages the loss over
ranks at every step, so every rank sees the same curve, stops at the same step and gets the
same suggestions.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import Any, TypeVar

from .. import _validate as V
from .._imports import require

require("torch", "torch")  # without PyTorch: the one-line install hint

import torch

from .._runtime import is_rank0

__all__ = [
    "all_reduce_mean",
    "broadcast_object",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "main_process_only",
]

T = TypeVar("T")
# looked up once: get_world_size is called at every step of a guarded training loop
_DIST: Any = torch.distributed if torch.distributed.is_available() else None


def _active() -> bool:
    return _DIST is not None and bool(_DIST.is_initialized())


def get_rank() -> int:
    """This process's rank (0 when ``torch.distributed`` is not initialized)."""
    return int(_DIST.get_rank()) if _active() else 0


def get_world_size() -> int:
    """The number of processes (1 when ``torch.distributed`` is not initialized)."""
    return int(_DIST.get_world_size()) if _active() else 1


def is_main_process() -> bool:
    """``True`` on rank 0, and in a process that is not part of a distributed group."""
    return is_rank0()


def main_process_only(fn: Callable[..., T]) -> Callable[..., T | None]:
    """Wrap ``fn`` so that it runs only on rank 0 (returning ``None`` elsewhere), e.g.
    ``main_process_only(result.plot)(path="find.png")`` or ``main_process_only(torch.save)``.
    No collective call happens inside, so the other ranks do not wait for it."""
    if not callable(fn):
        raise ValueError(f"fn must be callable, got {V.fmt(fn)}")

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T | None:
        if is_main_process():
            return fn(*args, **kwargs)
        return None

    return wrapper


def broadcast_object(obj: Any = None, *, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (``torch.distributed.broadcast_object_list``);
    returns ``obj`` unchanged in a single process. Every rank must call it."""
    src = V.integer("src", src, 0)
    if not _active():
        if src != 0:
            raise ValueError(f"src must be a rank in [0, 1) (one process), got {src}")
        return obj
    if src >= get_world_size():
        raise ValueError(f"src must be a rank in [0, {get_world_size()}), got {src}")
    import torch.distributed as dist

    box = [obj if get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(value: float | torch.Tensor) -> float:
    """The mean of ``value`` (a number or a one-element tensor) over ranks, as a float
    (float64 sum). Every rank must call it."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"value must be a number or a one-element tensor, got a tensor of shape "
                f"{tuple(value.shape)}"
            )
        if value.dtype == torch.bool or value.is_complex():  # as a Python bool is refused
            raise ValueError(
                f"value must be a real number or a one-element real tensor, got a tensor of "
                f"dtype {value.dtype}"
            )
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"value must be a number or a one-element tensor, got {V.fmt(value)}")
    if not _active():  # one process: the value itself (a float holds any tensor's exactly)
        return float(value.item() if isinstance(value, torch.Tensor) else value)
    t = (
        value.detach().to(torch.float64).reshape(())
        if isinstance(value, torch.Tensor)
        else torch.tensor(float(value), dtype=torch.float64)
    )
    import torch.distributed as dist

    if dist.get_backend() == "nccl" and torch.cuda.is_available():  # pragma: no cover - GPU
        t = t.cuda()
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t) / get_world_size()
