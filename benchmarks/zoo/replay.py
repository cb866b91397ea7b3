"""Replay range tests from the zoo cache and score suggested LRs against the grid oracles.

A cached raw sweep holds, for every step of a sweep from 1e-7 at the default density, the
training-batch loss and the eval-mode loss of 4 fixed held batches. :func:`replay` turns it
into what a finder with given options would have recorded (where it stops, which held
evaluations it makes, how far it extends), through the real :class:`lrkit.finder.Sweep`, so
the suggestion comes from the shipped code. :func:`score` reads the oracle's loss at a
suggested LR off the grid (per seed, interpolated in log-LR / log-loss).
"""

from __future__ import annotations

import gzip
import json
import math
import os
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE_DIR = os.path.join(HERE, "cache")
PACKED = os.path.join(HERE, "zoo_cache.json.gz")
DIVERGED = 1e3
HIT_RATIO, HIT_ABS = 1.10, 0.01
SCHEDULES = ("constant", "onecycle", "wcos")
OPT_KIND = {
    "sgd": "sgd", "sgdm": "momentum", "nesterov": "momentum", "adam": "adaptive",
    "adamw": "adaptive", "rmsprop": "adaptive", "rmsprop_c": "adaptive", "adagrad": "adaptive",
}  # fmt: skip


def load(packed: bool = False) -> list[dict[str, Any]]:
    """Every cached task: the packed file, overridden by newer per-task files."""
    recs: dict[str, dict[str, Any]] = {}
    if os.path.exists(PACKED):
        with gzip.open(PACKED, "rt") as f:
            for r in json.load(f)["tasks"]:
                recs[r["spec"]["name"]] = r
    if not packed and os.path.isdir(CACHE_DIR):
        for fn in sorted(os.listdir(CACHE_DIR)):
            if fn.endswith(".json"):
                with open(os.path.join(CACHE_DIR, fn)) as f:
                    r = json.load(f)
                recs[r["spec"]["name"]] = r
    return [recs[k] for k in sorted(recs)]


def optimizer_kind(rec: dict[str, Any]) -> str:
    return OPT_KIND[rec["spec"]["opt"]["name"]]


def sweep_lr(i: int) -> float:
    return 1e-7 * (10 ** (8 / 99)) ** i


def replay(rec: dict[str, Any], seed: int, **options: Any) -> Any:
    """The :class:`lrkit.finder.FinderResult` a finder with ``options`` (those of
    :class:`lrkit.finder.SweepOptions`; ``eval_batches`` at most the held batches cached, 4)
    would have returned on this task's sweep ``seed`` (more is a ValueError). The sweep must
    use the cache's LR sequence (the defaults ``start_lr=1e-7, end_lr=10, num_iter=100``,
    exponential)."""
    from lrkit.finder import Sweep, SweepOptions

    sw = rec["sweeps"][seed]
    train, held = sw["train"], sw["held"]
    opts = SweepOptions(**{"optimizer_family": optimizer_kind(rec), **options})
    sweep = Sweep(opts)
    nb = max(1, opts.eval_batches)
    if nb > len(held[0]):  # an average of fewer batches than asked for would pass unseen
        raise ValueError(f"eval_batches={nb}: the cache holds {len(held[0])} held batches")
    i = 0
    for lr in sweep:
        if i >= len(train):  # the cached sweep ended: non-finite loss
            sweep.record(math.nan)
            break
        assert abs(lr / sweep_lr(i) - 1) < 1e-9, (lr, sweep_lr(i))
        ev = float(np.mean(held[i][:nb])) if sweep.eval_due else None
        sweep.record(train[i], held=ev)
        i += 1
    return sweep.result(warn=False)


def oracle_curves(rec: dict[str, Any], schedule: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(grid LRs run, losses[seed, lr], oracle loss = best mean over seeds)."""
    grid = np.asarray(rec["grid"])
    L = rec["oracle"][schedule]
    ok = np.array([all(L[s][j] is not None for s in range(len(L))) for j in range(len(grid))])
    losses = np.array([[L[s][j] for j in range(len(grid)) if ok[j]] for s in range(len(L))])
    return grid[ok], losses, float(losses.mean(0).min())


def loss_at(grid: np.ndarray, losses: np.ndarray, lr: float) -> float:
    """Mean over oracle seeds of each seed's loss at ``lr``, read off its grid curve (linear
    in log-LR / log-loss; next to a diverged point the nearer point; clamped outside)."""
    lx = np.log(grid)
    x = math.log(lr)
    out = []
    for row in losses:
        j = int(np.clip(np.searchsorted(lx, x), 1, len(lx) - 1))
        if lx[0] < x < lx[-1] and max(row[j - 1], row[j]) >= DIVERGED:
            out.append(float(row[j - 1] if x - lx[j - 1] < lx[j] - x else row[j]))
        else:
            out.append(float(np.exp(np.interp(x, lx, np.log(row)))))
    return float(np.mean(out))


def score(rec: dict[str, Any], schedule: str, lrs: list[float]) -> dict[str, float]:
    """Loss of each sweep seed's LR (mean over oracle seeds), their mean, ratio to the oracle,
    hit (mean <= 1.1 x oracle + 0.01) and the seeds' spread (max / min LR)."""
    grid, losses, best = oracle_curves(rec, schedule)
    per = [loss_at(grid, losses, lr) for lr in lrs]
    m = float(np.mean(per))
    return {
        "loss": m,
        "oracle": best,
        "ratio": m / best,
        "hit": float(m <= HIT_RATIO * best + HIT_ABS),
        "spread": max(lrs) / min(lrs),
        "best_lr": float(grid[int(np.argmin(losses.mean(0)))]),
    }
