"""Pieces shared by the finder benchmarks on held-out task sets (finder_holdout.py,
finder_validation.py): the task record, training at a constant LR or one-cycle, reading a loss
off a grid curve, one range-test step and held-batch losses (the zoo sweeps), and small
helpers."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lrkit import schedules as S
from lrkit.torch import fit, scheduler

DIVERGED = 1e3  # the loss a diverged run scores
HIT = 1.10  # a hit: mean final validation loss within 10% of the oracle's


@dataclass
class Task:
    name: str
    x_tr: torch.Tensor
    y_tr: torch.Tensor
    x_va: torch.Tensor
    y_va: torch.Tensor
    model_fn: Callable[[], nn.Module]
    opt_fn: Callable[[Any, float], torch.optim.Optimizer]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    batch_size: int
    steps: int
    desc: str


def mlp(
    n_in: int,
    n_out: int,
    widths: list[int],
    act: type[nn.Module] = nn.ReLU,
    bn: bool = False,
    drop: float = 0.0,
) -> nn.Module:
    """Linear layers of ``widths`` (each followed by BatchNorm when ``bn``, ``act`` and
    Dropout when ``drop``), then a linear head: the MLP of every benchmark task set."""
    layers: list[nn.Module] = []
    d = n_in
    for w in widths:
        layers.append(nn.Linear(d, w))
        if bn:
            layers.append(nn.BatchNorm1d(w))
        layers.append(act())
        if drop:
            layers.append(nn.Dropout(drop))
        d = w
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


def fresh(task: Task, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return task.model_fn()


def batches(task: Task, shuffle_seed: int, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``n`` mini-batches of a run whose shuffling is seeded with ``shuffle_seed``
    (reshuffled each epoch, last partial batch dropped)."""
    gen = torch.Generator().manual_seed(shuffle_seed)
    bs, m = task.batch_size, len(task.x_tr)
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    while len(out) < n:
        perm = torch.randperm(m, generator=gen)
        for i in range(0, m - bs + 1, bs):
            idx = perm[i : i + bs]
            out.append((task.x_tr[idx], task.y_tr[idx]))
            if len(out) == n:
                break
    return out


def sweep_step(task: Task, model: nn.Module, opt: Any, batch: Any, lr: float) -> float:
    """One range-test step at ``lr`` on ``batch`` in train mode; its loss (a NaN/inf loss is
    returned without a step)."""
    for g in opt.param_groups:
        g["lr"] = lr
    model.train()
    opt.zero_grad(set_to_none=True)
    x, y = batch
    loss = task.loss_fn(model(x), y)
    value = float(loss.item())
    if math.isfinite(value):
        loss.backward()
        opt.step()
    return value


def eval_losses(task: Task, model: nn.Module, held: list[Any]) -> list[float]:
    """The eval-mode loss of each held batch, without gradients."""
    model.eval()
    with torch.no_grad():
        return [float(task.loss_fn(model(hx), hy)) for hx, hy in held]


class _Diverged(Exception):
    """Raised from ``fit``'s ``on_step`` when the loss passed ``DIVERGED``."""


def _check(step: int, loss: float) -> None:
    if loss > DIVERGED:
        raise _Diverged


def run_training(
    task: Task, seed: int, lr: float, use: str, data: list[Any], dropout_seed: int
) -> float:
    """Final validation loss after ``task.steps`` steps at ``lr`` (constant) or with one-cycle
    peaking at ``lr`` (``lrkit.torch.fit``, one pass over ``data[:task.steps]``); ``DIVERGED``
    when the loss became NaN/inf or exceeded ``DIVERGED``."""
    model = fresh(task, seed)
    opt = task.opt_fn(model.parameters(), lr)
    sch = scheduler(opt, S.onecycle(lr, total_steps=task.steps)) if use == "onecycle" else None
    torch.manual_seed(dropout_seed)  # dropout
    try:
        hist = fit(
            model,
            optimizer=opt,
            loss_fn=task.loss_fn,
            data=data[: task.steps],
            steps=task.steps,
            epochs=1,
            schedule=sch,
            on_step=_check,
        )
    except _Diverged:
        return DIVERGED
    if hist.diverged:
        return DIVERGED
    model.eval()
    with torch.no_grad():
        v = float(task.loss_fn(model(task.x_va), task.y_va))
    return v if math.isfinite(v) and v < DIVERGED else DIVERGED


def interp_loss(grid: list[float], losses: list[float], lr: float) -> float:
    """A seed's loss at ``lr`` read off its grid curve (linear in log-LR / log-loss; next to a
    diverged grid point the nearer point is taken; clamped outside the grid)."""
    lx = np.log(np.asarray(grid))
    ly = np.log(np.asarray(losses))
    x = math.log(lr)
    j = int(np.clip(np.searchsorted(lx, x), 1, len(lx) - 1))
    if lx[0] < x < lx[-1] and max(losses[j - 1], losses[j]) >= DIVERGED:
        return float(losses[j - 1] if x - lx[j - 1] < lx[j] - x else losses[j])
    return float(np.exp(np.interp(x, lx, ly)))


def gmean(v: list[float]) -> float:
    return float(np.exp(np.mean(np.log(v))))


def git_state() -> str:
    try:
        rev = subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", "src/lrkit/finder.py"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src/lrkit/finder.py"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return rev + (" +uncommitted edits" if dirty else "")
    except OSError:
        return "?"
