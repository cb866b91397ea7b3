"""Build the finder zoo's cache: grid oracles and raw sweeps for every task of ``tasks.specs()``.

For each task (one JSON file per task under ``benchmarks/zoo/cache/``, written as soon as the
task finishes, so an interrupted build resumes where it stopped):

* **grid oracle**: final validation loss after ``steps`` optimizer steps at 25 log-spaced LRs
  (4 per decade, 1e-5 to 10), 2 seeds (init, batch order, dropout), for a constant LR, one-cycle
  (``onecycle(lr, total_steps=steps)``) and warmup-cosine (5% linear warmup to ``lr``, then cosine
  to 0). A run whose loss turns NaN/inf, exceeds 1e3 or whose smoothed training loss exceeds
  10x its first loss scores 1e3 (diverged) and stops; a constant-LR run whose smoothed
  training loss is still above 0.98x its first loss after half the budget stops there and is
  scored by its validation loss at that point. For the constant LR every other grid point is
  run from the top down, stopping below the best once three consecutive points are worse than
  1.3x the best mean (the last no better than the one before); one-cycle and warmup-cosine
  search locally from the constant LR's best point, two grid points at a time while the loss
  improves. Every schedule's run points are then bracketed: while the lowest (highest) point
  run is within 1.3x the best mean + 0.03, the search goes on two grid points further down
  (up), until both ends are worse than that, diverged, or at the grid's end. Then the two
  neighbours of the best are filled in. Points not run are ``null``: a suggestion there is
  scored as the nearest point run (a lower bound of its loss; outside the points run, that
  point is a clear miss (``CLEAR_MISS_ABS``) or the grid's end, so hits are exact).
* **raw sweeps**, 3 seeds: from 1e-7 at the default density (100 steps per 8 decades), one
  optimizer step per LR on the batches the training run would see, recording at every step the
  training-batch loss and the eval-mode loss of each of 4 fixed held batches (drawn from the
  training set with another shuffle). The sweep runs until the loss is non-finite, or both the
  smoothed training loss and the held loss exceed 10x their best, or the LR passes 1e4. Any
  cadence of held evaluation, smoothing, extension policy or rule can be replayed from it.

    python benchmarks/zoo/build.py --jobs 2          # whole zoo, resumable: 105 tasks, ~34 min
                                                     # on 2 cores shared with other jobs (31 min
                                                     # before the bracketing, which added ~3)
    python benchmarks/zoo/build.py --only clf_mlp_0  # one task
    python benchmarks/zoo/build.py --pack            # cache/*.json -> zoo_cache.json.gz
    python benchmarks/zoo/build.py --extend --jobs 2 # bracket the packed cache's oracles
                                                     # (runs only the points missing)
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import multiprocessing as mp
import os
import sys
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

CACHE_DIR = os.path.join(HERE, "cache")
PACKED = os.path.join(HERE, "zoo_cache.json.gz")
GRID = [float(v) for v in np.logspace(-5, 1, 25)]
SCHEDULES = ("constant", "onecycle", "wcos")
ORACLE_SEEDS = (0, 1)
SWEEP_SEEDS = (0, 1, 2)
SWEEP_START = 1e-7
SWEEP_RATIO = 10 ** (8 / 99)  # the default sweep's density: 1e-7..10 in 100 steps
SWEEP_CAP = 1e4
N_HELD = 4
DIVERGED = 1e3
PRUNE = 1.3
# A task's hit is a mean over its 3 sweep seeds <= 1.1 x best + 0.01 (replay.py). A seed
# whose LR lies beyond an end of the points run is scored at that end (a lower bound); an
# end above PRUNE x best + CLEAR_MISS_ABS keeps that mean above the hit line even when the
# other two seeds sit at the best (3 x (1.1 b + 0.01) - 2 b = 1.3 b + 0.03), so hits are exact.
CLEAR_MISS_ABS = 0.03


def sweep_lr(i: int) -> float:
    return SWEEP_START * SWEEP_RATIO**i


def schedule_values(kind: str, lr: float, steps: int) -> np.ndarray:
    from lrkit import schedules as S

    k = np.arange(steps)
    if kind == "constant":
        return np.full(steps, lr)
    if kind == "onecycle":
        return np.asarray(S.onecycle(lr, total_steps=steps).values(list(k)), dtype=np.float64)
    w = max(1, steps // 20)
    cos = 0.5 * lr * (1 + np.cos(np.pi * np.clip(k - w, 0, None) / max(1, steps - w)))
    return np.where(k < w, lr * (k + 1) / w, cos)


def train_run(task: Any, seed: int, lrs: np.ndarray, data: list[Any]) -> float:
    import torch
    from _finder_common import fresh

    model = fresh(task, seed)
    opt = task.opt_fn(model.parameters(), float(lrs[0]))
    groups = opt.param_groups
    torch.manual_seed(200 + seed)  # dropout
    model.train()
    first = None
    ema = 0.0
    const = bool(np.all(lrs == lrs[0]))
    for k, (x, y) in enumerate(data[: task.steps]):
        for g in groups:
            g["lr"] = float(lrs[k])
        opt.zero_grad(set_to_none=True)
        loss = task.loss_fn(model(x), y)
        lv = float(loss.item())
        if not math.isfinite(lv) or lv > DIVERGED:
            return DIVERGED
        first = lv if first is None else first
        ema = 0.9 * ema + 0.1 * lv
        sm = ema / (1 - 0.9 ** (k + 1))
        if k >= 20 and sm > 10 * max(first, 1e-3):
            return DIVERGED
        if const and k == task.steps // 2 and sm > 0.98 * first:
            break  # no progress in half the budget at a constant LR: scored as it stands
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        v = float(task.loss_fn(model(task.x_va), task.y_va))
    return v if math.isfinite(v) and v < DIVERGED else DIVERGED


def oracle(
    task: Any,
    kind: str,
    data: dict[int, list[Any]],
    start: int | None = None,
    existing: list[list[float | None]] | None = None,
) -> list[list[float | None]]:
    """losses[seed][grid index] (``None``: not run).

    Without ``start``: every other grid point from the top down, stopping below the best once
    three consecutive points are worse than ``PRUNE`` x the best mean (the last no better
    than the one before). With ``start`` (the constant schedule's best index): a local search
    from there in steps of two grid points, moving while the mean loss improves. With
    ``existing`` (a cached oracle): no search, its points are kept. Then the points run are
    bracketed (:func:`_bracket`) and the two neighbours of the best are filled in."""
    n = len(GRID)
    out: list[list[float | None]] = [[None] * n for _ in ORACLE_SEEDS]
    means: dict[int, float] = {}
    if existing is not None:
        for j in range(n):
            if all(existing[si][j] is not None for si in range(len(ORACLE_SEEDS))):
                for si in range(len(ORACLE_SEEDS)):
                    out[si][j] = existing[si][j]
                means[j] = float(np.mean([existing[si][j] for si in range(len(ORACLE_SEEDS))]))

    def run(j: int) -> float:
        if j not in means:
            vals = []
            for si, s in enumerate(ORACLE_SEEDS):
                v = train_run(task, s, schedule_values(kind, GRID[j], task.steps), data[s])
                out[si][j] = v
                vals.append(v)
            means[j] = float(np.mean(vals))
        return means[j]

    if existing is not None:
        pass
    elif start is None:
        best = math.inf
        trail: list[float] = []
        for j in range(n - 1, -1, -2):
            m = run(j)
            best = min(best, m)
            trail = trail + [m] if m > PRUNE * best and best < DIVERGED else []
            if len(trail) >= 3 and trail[-1] >= trail[-2]:
                break
    else:
        jb = start
        run(jb)
        for d in (2, -2):
            j = jb + d
            while 0 <= j < n and run(j) < means[jb]:
                jb = j
                j += d
    _bracket(run, means, n)
    jb = min(means, key=lambda j: means[j])
    for j in (jb - 1, jb + 1):
        if 0 <= j < n:
            run(j)
    return out


def _bracket(run: Any, means: dict[int, float], n: int) -> None:
    """Run points two grid steps beyond the lowest / highest point run while that end is
    within ``PRUNE`` x the best mean + ``CLEAR_MISS_ABS`` (and not at the grid's end), so
    that a suggestion outside the points run is a clear miss."""
    while means:
        best = min(means.values())
        if best >= DIVERGED:
            return
        moved = False
        for j, d in ((min(means), -2), (max(means), 2)):
            k = min(max(j + d, 0), n - 1)
            if k != j and k not in means and means[j] <= PRUNE * best + CLEAR_MISS_ABS:
                run(k)
                moved = True
        if not moved:
            return


def raw_sweep(task: Any, seed: int) -> dict[str, Any]:
    import torch
    from _finder_common import batches, eval_losses, fresh, sweep_step

    n_max = int(math.log(SWEEP_CAP / SWEEP_START) / math.log(SWEEP_RATIO)) + 1
    data = batches(task, 100 + seed, n_max)
    held = batches(task, 300 + seed, N_HELD)
    model = fresh(task, seed)
    opt = task.opt_fn(model.parameters(), 1e-3)
    torch.manual_seed(3000 + seed)
    train: list[float] = []
    hl: list[list[float]] = []
    ema, best_ema, best_h = 0.0, math.inf, math.inf
    for i in range(n_max):
        lv = sweep_step(task, model, opt, data[i], sweep_lr(i))
        if not math.isfinite(lv):
            break
        h = eval_losses(task, model, held)
        train.append(lv)
        hl.append(h)
        if not all(math.isfinite(v) for v in h):
            break
        ema = 0.9 * ema + 0.1 * lv
        sm = ema / (1 - 0.9 ** (i + 1))
        hm = float(np.mean(h))
        best_ema, best_h = min(best_ema, sm), min(best_h, hm)
        if i > 10 and sm > 10 * best_ema and hm > 10 * best_h:
            break
    return {
        "train": [float(f"{v:.5g}") for v in train],
        "held": [[float(f"{v:.5g}") for v in row] for row in hl],
    }


def _write(path: str, rec: dict[str, Any]) -> None:
    """Write a task's record to ``path`` atomically (an interrupted build leaves no half file)."""
    os.makedirs(CACHE_DIR, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rec, f, separators=(",", ":"))
    os.replace(tmp, path)


def run_task(spec: dict[str, Any]) -> str:
    import torch

    torch.set_num_threads(1)
    from _finder_common import batches
    from tasks import build

    path = os.path.join(CACHE_DIR, spec["name"] + ".json")
    if os.path.exists(path):
        return spec["name"] + " (cached)"
    task = build(spec)
    data = {s: batches(task, 100 + s, task.steps) for s in ORACLE_SEEDS}
    t1 = time.perf_counter()
    sweeps = [raw_sweep(task, s) for s in SWEEP_SEEDS]
    t2 = time.perf_counter()
    orc = {"constant": oracle(task, "constant", data)}
    const = np.array([[np.inf if v is None else v for v in row] for row in orc["constant"]])
    j0 = int(np.argmin(const.mean(0)))
    for k in SCHEDULES[1:]:
        orc[k] = oracle(task, k, data, start=j0)
    t3 = time.perf_counter()
    rec = {
        "spec": spec,
        "desc": task.desc,
        "steps": task.steps,
        "bs": task.batch_size,
        "n_train": len(task.x_tr),
        "grid": GRID,
        "oracle": orc,
        "sweeps": sweeps,
        "seconds": {"sweeps": round(t2 - t1, 1), "oracle": round(t3 - t2, 1)},
    }
    _write(path, rec)
    return f"{spec['name']}: sweeps {t2 - t1:.1f}s oracle {t3 - t2:.1f}s"


def extend_task(spec: dict[str, Any]) -> str:
    """Bracket a cached task's oracles (:func:`_bracket`), running only the points missing:
    ``cache/<name>.json`` when it exists (what :func:`replay.load` reads first), else the
    packed record; the result goes to ``cache/<name>.json``."""
    import torch

    torch.set_num_threads(1)
    from _finder_common import batches
    from tasks import build

    path = os.path.join(CACHE_DIR, spec["name"] + ".json")
    if os.path.exists(path):
        with open(path) as f:
            rec = json.load(f)
    else:
        with gzip.open(PACKED, "rt") as f:
            rec = next(r for r in json.load(f)["tasks"] if r["spec"]["name"] == spec["name"])
    task = build(spec)
    data = {s: batches(task, 100 + s, task.steps) for s in ORACLE_SEEDS}
    t0 = time.perf_counter()
    added = {}
    for k in SCHEDULES:
        before = sum(v is not None for v in rec["oracle"][k][0])
        rec["oracle"][k] = oracle(task, k, data, existing=rec["oracle"][k])
        added[k] = sum(v is not None for v in rec["oracle"][k][0]) - before
    seconds = time.perf_counter() - t0
    rec["seconds"]["oracle"] = round(rec["seconds"]["oracle"] + seconds, 1)
    _write(path, rec)
    return f"{spec['name']}: +{added} points, {seconds:.1f}s"


def pack() -> None:
    recs = []
    for fn in sorted(os.listdir(CACHE_DIR)):
        if fn.endswith(".json"):
            with open(os.path.join(CACHE_DIR, fn)) as f:
                recs.append(json.load(f))
    meta = {
        "grid": GRID,
        "schedules": list(SCHEDULES),
        "sweep_start": SWEEP_START,
        "sweep_ratio": SWEEP_RATIO,
        "n_held": N_HELD,
        "diverged": DIVERGED,
    }
    with gzip.open(PACKED, "wt") as f:
        json.dump({"meta": meta, "tasks": recs}, f, separators=(",", ":"))
    print(f"packed {len(recs)} tasks into {PACKED} ({os.path.getsize(PACKED) / 1e6:.2f} MB)")


def order(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Round-robin over families, so a partial build covers every family."""
    by: dict[str, list[dict[str, Any]]] = {}
    for s in specs:
        by.setdefault(s["family"], []).append(s)
    out = []
    for i in range(max(len(v) for v in by.values())):
        for fam in sorted(by):
            if i < len(by[fam]):
                out.append(by[fam][i])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default=None, help="comma-separated task names")
    ap.add_argument("--per-family", type=int, default=4)
    ap.add_argument("--pack", action="store_true", help="only pack cache/*.json")
    ap.add_argument(
        "--extend",
        action="store_true",
        help="bracket the packed cache's oracles (cache/*.json, then --pack)",
    )
    args = ap.parse_args(argv)
    if args.pack:
        pack()
        return 0
    from tasks import specs

    if args.extend:
        with gzip.open(PACKED, "rt") as f:
            todo = [r["spec"] for r in json.load(f)["tasks"]]
        work: Any = extend_task
    else:
        todo = order(specs(args.per_family))
        work = run_task
    if args.only:
        names = set(args.only.split(","))
        todo = [s for s in todo if s["name"] in names]
    t0 = time.perf_counter()
    if args.jobs <= 1:
        for s in todo:
            print(work(s), f"[{time.perf_counter() - t0:.0f}s]", flush=True)
    else:
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            for msg in pool.imap_unordered(work, todo):
                print(msg, f"[{time.perf_counter() - t0:.0f}s]", flush=True)
    print(f"done: {len(todo)} tasks in {time.perf_counter() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
