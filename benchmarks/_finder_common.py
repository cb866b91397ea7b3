"""Pieces shared by the finder benchmarks on held-out task sets (finder_holdout.py,
finder_validation.py): the task record, training at a constant LR or one-cycle, a task set's
range tests, grid oracle and trained suggestions, their scores, reading a loss off a grid
curve, one range-test step and held-batch losses (the zoo sweeps), and small helpers."""

from __future__ import annotations

import datetime
import json
import math
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lrkit import schedules as S
from lrkit.finder import LRFinderWarning
from lrkit.torch import find_lr, fit, scheduler

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


#: the peers' rules recorded for every range test (read on the same sweep)
PEER_RULES = ("steepest", "valley", "minimum", "slide")
#: how each use of a suggestion is trained, and the suggestion it trains
USES = (("constant", "suggestion"), ("onecycle", "max_lr"))


def range_test(task: Task, seed: int, data: list[Any], *, torch_seed: int) -> dict[str, Any]:
    """``lrkit.torch.find_lr`` with its defaults on a fresh model (``seed``) and the first 100
    of ``data``, given the task's budget: the curve, how it ended, the suggestions and the
    peers' rules on it."""
    model = fresh(task, seed)
    opt = task.opt_fn(model.parameters(), 1e-3)
    torch.manual_seed(torch_seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LRFinderWarning)  # kept in the result's warnings
        res = find_lr(model, opt, task.loss_fn, data[:100], total_steps=task.steps)
    out = {
        "lrs": [float(v) for v in res.lrs],
        "losses": [float(v) for v in res.losses],
        "stop_reason": res.stop_reason,
        "stop_lr": res.stop_lr,
        "steps": res.steps,
        "suggestion": res.suggestion,
        "max_lr": res.max_lr,
        "lr_min": res.lr_min,
        "reliable": res.reliable,
        "warnings": list(res.warnings),
    }
    out.update({r: res.suggest(r) for r in PEER_RULES})
    return out


def run_set(
    make_task: Callable[[str], Task],
    names: list[str],
    *,
    seeds: list[int],
    grid: list[float],
    seed_bases: tuple[int, int, int],
    json_path: str | None,
) -> dict[str, Any]:
    """For each task and seed: a range test, the grid oracle (every LR of ``grid``, constant
    and one-cycle) and a training run at each suggestion. Seed ``s`` orders the batches from
    ``seed_bases[0] + s``, seeds the range test's draws from ``seed_bases[1] + s`` and dropout
    from ``seed_bases[2] + s``. Written to ``json_path`` after each task."""
    batch_base, sweep_base, dropout_base = seed_bases
    t0 = time.perf_counter()
    out: dict[str, Any] = {
        "date": str(datetime.date.today()),
        "finder_rev": git_state(),
        "grid": grid,
        "seeds": seeds,
        "hit": HIT,
        "diverged_loss": DIVERGED,
        "tasks": {},
    }
    for name in names:
        task = make_task(name)
        data = {s: batches(task, batch_base + s, max(task.steps, 100)) for s in seeds}
        sweeps = [range_test(task, s, data[s], torch_seed=sweep_base + s) for s in seeds]

        def train(s: int, lr: float, use: str, task: Task = task, data: Any = data) -> float:
            return run_training(task, s, lr, use, data[s], dropout_seed=dropout_base + s)

        rec: dict[str, Any] = {"desc": task.desc, "steps": task.steps, "sweeps": sweeps}
        rec["grid"] = {use: [[train(s, lr, use) for lr in grid] for s in seeds] for use, _ in USES}
        rec["trained"] = {}
        for use, key in USES:
            lrs = [sw[key] for sw in sweeps]
            losses = [train(s, v, use) for s, v in zip(seeds, lrs)]
            rec["trained"][use] = {"lrs": lrs, "losses": losses}
        out["tasks"][name] = rec
        print(f"[{name} done, {time.perf_counter() - t0:.0f}s]", file=sys.stderr, flush=True)
        if json_path:
            os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
            with open(json_path, "w") as f:
                json.dump(out, f)
    return out


def scored(out: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per task and use of :func:`run_set`'s output: the oracle (grid LR of the best
    mean loss over seeds), the band of grid LRs within ``HIT`` of it (log10), the suggestions'
    trained loss and ratio, whether it is a hit, log10(LR / oracle's), the ratio read off the
    grid curves (:func:`interp_loss`), each peer rule's LR and ratio read so, and the grid's
    mean losses."""
    grid = out["grid"]
    rows = []
    for name, rec in out["tasks"].items():
        for use, key in USES:
            curves = rec["grid"][use]
            means = [float(np.mean([c[j] for c in curves])) for j in range(len(grid))]
            j = int(np.argmin(means))
            best = means[j]
            tr = rec["trained"][use]
            loss, lr = float(np.mean(tr["losses"])), gmean(tr["lrs"])
            ok = [math.log10(g) for g, m in zip(grid, means) if m <= HIT * best]
            peers = {r: [sw[r] for sw in rec["sweeps"]] for r in PEER_RULES}

            def read(lrs: list[float], curves: list[list[float]] = curves) -> float:
                return float(np.mean([interp_loss(grid, c, v) for c, v in zip(curves, lrs)]))

            rows.append(
                {
                    "task": name,
                    "use": use,
                    "key": key,
                    "means": means,
                    "oracle_lr": grid[j],
                    "oracle_loss": best,
                    "band": (min(ok), max(ok)),
                    "lr": lr,
                    "loss": loss,
                    "ratio": loss / best,
                    "hit": loss <= HIT * best,
                    "dlog": math.log10(lr / grid[j]),
                    "interp_ratio": read(tr["lrs"]) / best,
                    "peers": {r: (gmean(v), read(v) / best) for r, v in peers.items()},
                }
            )
    return rows


def fmt_curve(means: list[float], best: float) -> str:
    """A grid curve as mean loss / oracle loss per LR (``*``: a hit, ``div``: diverged)."""
    cells = []
    for m in means:
        r = m / best
        c = " div" if m >= DIVERGED else (f"{r:4.2f}" if r < 10 else " >10")
        cells.append(c.strip() + "*" if r <= HIT else c)
    return " ".join(f"{c:>5}" for c in cells)


HERE = os.path.dirname(os.path.abspath(__file__))
#: the finder's source, whose last commit :func:`git_state` names
FINDER_SRC = os.path.join(HERE, "..", "src", "lrkit", "finder")


def git_state() -> str:
    """The last commit of the finder's source, and whether it has uncommitted edits."""
    try:
        rev = subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", FINDER_SRC],
            capture_output=True,
            text=True,
            check=False,
            cwd=HERE,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", FINDER_SRC],
            capture_output=True,
            text=True,
            check=False,
            cwd=HERE,
        ).stdout.strip()
        return (rev or "?") + (" +uncommitted edits" if dirty else "")
    except OSError:
        return "?"
