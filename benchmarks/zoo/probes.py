"""A second stage after the sweep: short constant-rate probe runs around the edge.

What the sweep's edge leaves unexplained is where, relative to it, each task's best LR lies
(``variants.py``'s bound). A probe measures that directly: from the model's initial weights
(restored, as the finder restores them), train ``K`` steps at a constant LR ``lr_min *
exp(o)`` for each of 8 offsets ``o`` (``PROBE_OFFSETS``: 2x apart, from 2x above the edge to
67x below it), on a batch order of their own (``PROBE_ORDER``: the oracle's runs start from
the same initial weights, and a probe on their batches would be the first steps of a run it
is scored against), and read which offset makes the most progress. ``o*`` is that offset,
refined by a parabola through its neighbours (:func:`best_offset`). The probes are measured
after 15, 30 and 60 steps in three ways: the mean loss of 4 fixed held batches (``held``),
the loss of the task's whole validation set (``validation``: a user's ``val_data``) and the
EMA of the probe's own training losses (``train EMA``).

A row then moves each sweep's edge part of the way to the probes' best, ``lr_min *
exp(w o*)``, and is scored exactly as ``variants.py`` scores an edge: the coefficients of
``ln(lr / edge) = a[family] + b ln(steps / 1000)`` fitted in each training part of the
grouped 5-fold cross-validation, every task scored out of fold against the cached oracles.
Choosing a row because it reads best would report a number chosen by looking at it: the
last rows make the choice inside each training part (``variants.nested``), among the rows
that need no validation set, then among all rows.

The probes run live on every zoo task and sweep seed (the cache's models and edges; 2
processes, about 4 minutes; the nested choices about 6 more).

    python benchmarks/zoo/probes.py --json benchmarks/results/finder_probes.json
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import fit_rule as F  # noqa: E402
from replay import load  # noqa: E402
from variants import nested, oof, spread  # noqa: E402

#: ln(probe LR / lr_min) of the probes, highest first (2x apart)
PROBE_OFFSETS = tuple(round(0.7 - 0.7 * k, 1) for k in range(8))
CHECKPOINTS = (15, 30, 60)  # probe lengths read (steps)
MEASURES = ("held", "validation", "train EMA")
WEIGHTS = (0.5, 1.0)  # w in lr_min * exp(w o*)
N_HELD = 4
# the probes' batch order (shuffle seed + sweep seed): one that neither the sweeps (100 +) nor
# the oracle's runs (100 +, 200 + for dropout) use, so no probe is the start of a scored run
PROBE_ORDER = 500
BLOWN = 20.0  # a probe whose loss exceeds this many times its first: diverged


def best_offset(losses: list[float], offsets: tuple[float, ...] = PROBE_OFFSETS) -> float:
    """The offset of the lowest finite probe loss, refined by the vertex of the parabola in
    ln(loss) through it and its two neighbours (when both are finite and the parabola opens
    upward); every probe diverged: the lowest offset."""
    y = np.asarray(losses, dtype=np.float64)
    ok = np.isfinite(y)
    if not ok.any():
        return float(min(offsets))
    j = int(np.argmin(np.where(ok, y, np.inf)))
    if 0 < j < len(y) - 1 and ok[j - 1] and ok[j + 1]:
        y0, y1, y2 = np.log(y[j - 1 : j + 2])
        d = y0 - 2 * y1 + y2
        if d > 0:
            return float(offsets[j] + (offsets[j] - offsets[j - 1]) * (y0 - y2) / (2 * d))
    return float(offsets[j])


def run_task(args: tuple[dict[str, Any], list[float]]) -> list[list[dict[int, list[float]]]]:
    """Per sweep seed, per probe offset: {steps: [held, validation, train EMA]} (inf when the
    probe diverged before that many steps)."""
    import torch
    from _finder_common import batches, eval_losses, fresh, sweep_step
    from tasks import build

    spec, edges = args
    torch.set_num_threads(1)
    task = build(spec)
    k_max = max(CHECKPOINTS)
    out = []
    for seed, lr_min in enumerate(edges):
        held = batches(task, 300 + seed, N_HELD)
        data = batches(task, PROBE_ORDER + seed, k_max)
        per = []
        for off in PROBE_OFFSETS:
            lr = lr_min * math.exp(off)
            model = fresh(task, seed)
            opt = task.opt_fn(model.parameters(), lr)
            torch.manual_seed(3000 + seed)
            rec: dict[int, list[float]] = {}
            first, ema = None, 0.0
            for k in range(k_max):
                v = sweep_step(task, model, opt, data[k], lr)
                if not math.isfinite(v) or (first is not None and v > BLOWN * max(first, 1e-3)):
                    break
                first = v if first is None else first
                ema = 0.9 * ema + 0.1 * v
                if k + 1 in CHECKPOINTS:
                    h = float(np.mean(eval_losses(task, model, held)))
                    va = eval_losses(task, model, [(task.x_va, task.y_va)])[0]
                    rec[k + 1] = [h, va, ema / (1 - 0.9 ** (k + 1))]
            per.append({c: rec.get(c, [math.inf] * 3) for c in CHECKPOINTS})
        out.append(per)
    return out


def moved(
    feats: list[dict[str, Any]], probes: list[Any], steps: int, measure: int, w: float
) -> list[dict[str, Any]]:
    """``feats`` with each sweep's edge moved to ``lr_min * exp(w o*)``."""
    out = []
    for f, per_seed in zip(feats, probes):
        lm = [
            v * math.exp(w * best_offset([p[steps][measure] for p in per]))
            for v, per in zip(f["lr_min"], per_seed)
        ]
        out.append(dict(f, lr_min=lm))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    recs = load()
    feats = F.features(recs)
    with mp.Pool(args.jobs) as pool:
        probes = pool.map(run_task, [(r["spec"], f["lr_min"]) for r, f in zip(recs, feats)], 1)

    def row(name: str, fs: list[dict[str, Any]], cost: str) -> list[Any]:
        cells: list[Any] = [name, cost]
        for sched in ("constant", "onecycle", "wcos"):
            hits, gm = oof(fs, sched)
            cells += [f"{hits:.0%}", round(gm, 3)]
        cells.append(f"{spread(fs):.0%}")
        print(" | ".join(map(str, cells)), flush=True)
        return cells

    rows = [row("the sweep's edge alone (shipped)", feats, "0")]
    every = [("the sweep's edge alone (shipped)", feats)]
    n = len(PROBE_OFFSETS)
    for steps in CHECKPOINTS:
        for m, measure in enumerate(MEASURES):
            for w in WEIGHTS:
                name = f"probes of {steps} steps, {measure}, w = {w:g}"
                fs = moved(feats, probes, steps, m, w)
                rows.append(row(name, fs, f"{n} x {steps}"))
                every.append((name, fs))
    choice = []
    for label, pool_ in (
        ("without a validation set", [e for e in every if "validation" not in e[0]]),
        ("all rows", every),
    ):
        picked, share, chosen = nested(pool_, ("constant", "onecycle"))
        cells: list[Any] = [f"the row chosen inside each training part, {label}", "-"]
        for sched in ("constant", "onecycle"):
            cells += [f"{picked[sched][0]:.0%}", round(picked[sched][1], 3)]
        rows.append(cells + ["-", "-", f"{share:.0%}"])
        print(" | ".join(map(str, rows[-1])), chosen, flush=True)
        choice += [[label, f"fold {k + 1}", c] for k, c in enumerate(chosen)]
    cols = ["edge", "probe steps per sweep", "constant hits", "constant gm",
            "one-cycle hits", "one-cycle gm", "warmup-cosine hits", "warmup-cosine gm",
            "seed spread <= 2x"]  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            tables = {
                "probes": {"columns": cols, "rows": rows},
                "nested_choice": {"columns": ["rows", "outer fold", "chosen"], "rows": choice},
            }
            json.dump({"tables": tables}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
