"""A second stage after the sweep: short constant-rate probe runs around the edge.

What the sweep's edge leaves unexplained is where, relative to it, each task's best LR lies
(``variants.py``'s bound). A probe measures that directly: from the model's initial weights
(restored, as the finder restores them), train ``K`` steps at a constant LR ``lr_min *
exp(o)`` for each of 8 offsets ``o`` (``PROBE_OFFSETS``: 2x apart, from 2x above the edge to
67x below it), on a batch order of their own (``PROBE_ORDER``: the oracle's runs start from
the same initial weights, and a probe on their batches would be the first steps of a run it
is scored against), and read which offset makes the most progress. ``o*`` is that offset,
refined by a parabola through its neighbours (:func:`lrkit.finder.probes.best_offset`). The
probes are measured after 15, 30 and 60 steps in three ways: the mean loss of 4 fixed held
batches (``held``), the loss of the task's whole validation set (``validation``: a user's
``probe_data``) and the EMA of the probe's own training losses (``train EMA``).

A row then moves each sweep's edge part of the way to the probes' best, ``lr_min *
exp(w o*)``, and is scored exactly as ``variants.py`` scores an edge: the coefficients of
``ln(lr / edge) = a[family] + b ln(steps / 1000)`` fitted in each training part of the
grouped 5-fold cross-validation, every task scored out of fold against the cached oracles.
Choosing a row because it reads best would report a number chosen by looking at it: the
last rows make the choice inside each training part (``variants.nested``), among the rows
that need no validation set, then among all rows.

The probes run live on every zoo task and sweep seed (the cache's models and edges; 2
processes, about 4 minutes) with ``--rerun``, which writes their losses to
``probes_cache.json.gz``; without it they are read from there. The nested choices take
about 6 more minutes. The finder's ``probe_data`` ships the row chosen (60 steps, the
validation set, w = 0.5: ``lrkit.finder.probes``), its coefficients fitted on this cache by
``fit_rule.py``.

    python benchmarks/zoo/probes.py --rerun --json benchmarks/results/finder_probes.json
"""

from __future__ import annotations

import argparse
import gzip
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

from lrkit.finder.probes import (  # noqa: E402
    PROBE_OFFSETS,
    PROBE_STEPS,
    best_offset,
    blown_above,
)

CHECKPOINTS = (15, 30, PROBE_STEPS)  # probe lengths read (steps); the finder's is the last
MEASURES = ("held", "validation", "train EMA")
WEIGHTS = (0.5, 1.0)  # w in lr_min * exp(w o*)
N_HELD = 4
# the probes' batch order (shuffle seed + sweep seed): one that neither the sweeps (100 +) nor
# the oracle's runs (100 +, 200 + for dropout) use, so no probe is the start of a scored run
PROBE_ORDER = 500
CACHE = os.path.join(HERE, "probes_cache.json.gz")  # the probes' losses, per task and seed


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
                if not math.isfinite(v) or (first is not None and v > blown_above(first)):
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


def load_probes(
    recs: list[dict[str, Any]], feats: list[dict[str, Any]], *, jobs: int = 2, run: bool = False
) -> list[Any]:
    """Per task (in ``recs``' order) its probes' losses (``run_task``'s output), read from
    ``CACHE``; with ``run``, run live (``jobs`` processes) and written to ``CACHE``. The cache
    holds the edges the probes were placed around: a cache run from other edges (the finder's
    sweep or edge changed) is refused, as is a missing one, unless ``run``."""
    edges = {f["name"]: f["lr_min"] for f in feats}
    if not run:
        if not os.path.exists(CACHE):
            raise FileNotFoundError(f"no probe cache at {CACHE}: run probes.py --rerun")
        with gzip.open(CACHE, "rt") as fh:
            cached = json.load(fh)
        stale = [n for n, e in edges.items() if cached["edges"].get(n) != e]
        if stale:
            raise ValueError(
                f"the probe cache was run around other edges ({len(stale)} tasks, e.g. "
                f"{stale[0]}): run probes.py --rerun"
            )
        return [
            [[{int(k): v for k, v in p.items()} for p in per] for per in cached["probes"][n]]
            for n in (r["spec"]["name"] for r in recs)
        ]
    with mp.Pool(jobs) as pool:
        probes = pool.map(run_task, [(r["spec"], f["lr_min"]) for r, f in zip(recs, feats)], 1)
    with gzip.open(CACHE, "wt") as fh:
        by_name = {r["spec"]["name"]: p for r, p in zip(recs, probes)}
        json.dump({"edges": edges, "probes": by_name}, fh, separators=(",", ":"))
    return probes


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
    ap.add_argument("--rerun", action="store_true", help=f"run the probes live and rewrite {CACHE}")
    args = ap.parse_args(argv)
    recs = load()
    feats = F.features(recs)
    probes = load_probes(recs, feats, jobs=args.jobs, run=args.rerun)

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
