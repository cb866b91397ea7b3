"""Does the gradient noise scale tell where the optimum lies relative to the finder's edge?

The empirical model of large-batch training (McCandlish et al., 2018) puts the best LR at
``lr_max / (1 + B_noise / B)``: far below the stability limit when the gradient noise
scale ``B_noise = tr(Sigma) / |G|^2`` is large next to the batch size ``B``, close to it
when the gradient is clean. If that held on the zoo, ``ln(B_noise / B)`` would explain the
part of each task's best offset ``ln(lr / lr_min)`` that the shipped rule (optimizer family
and budget) leaves.

For every zoo task and sweep seed, this script measures at the model's initialisation (where
the sweep starts: its first steps at 1e-7 leave the weights where they are) the gradients of
``K`` consecutive training batches of the sweep's batch order, and estimates
``tr(Sigma) / B`` by their sample variance and ``|G|^2`` by the squared norm of their mean,
less its variance (unbiased). It then reports the Spearman correlation, across tasks, between
``ln(B_noise / B)`` (mean over the 3 seeds) and the residual of each task's best offset (the
one of ``variants.best_offsets``) after the family-and-budget fit, and the same for the
squared gradient norm.

    python benchmarks/zoo/noise_scale.py --json benchmarks/results/noise_scale.json  # ~1 min
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
from variants import best_offsets, fitted_offsets  # noqa: E402

K = 24  # batches per estimate


def measure(spec: dict[str, Any]) -> list[tuple[float, float]]:
    """(ln(B_noise / B), ln |g|^2) at initialisation, per sweep seed of one task."""
    import torch
    from _finder_common import batches, fresh
    from tasks import build

    torch.set_num_threads(1)
    task = build(spec)
    out = []
    for seed in F.SEEDS:
        model = fresh(task, seed)
        model.train()
        torch.manual_seed(3000 + seed)
        grads = []
        for x, y in batches(task, 100 + seed, K):
            model.zero_grad(set_to_none=True)
            task.loss_fn(model(x), y).backward()
            flat = [p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]
            grads.append(torch.cat(flat).double().numpy())
        g = np.stack(grads)
        mean = g.mean(0)
        var = float(((g - mean) ** 2).sum()) / (K - 1)  # tr(Sigma) / B
        clean = max(float(mean @ mean) - var / K, 1e-3 * var)  # |G|^2, unbiased, floored
        out.append((math.log(var / clean), math.log(float((g**2).sum(1).mean()))))
    return out


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    recs = load()
    with mp.Pool(args.jobs) as pool:
        runs = pool.map(measure, [rec["spec"] for rec in recs], chunksize=1)
    gns = np.array([np.mean([v[0] for v in run]) for run in runs])
    norm = np.array([np.mean([v[1] for v in run]) for run in runs])
    feats = F.features(recs)
    cols = ["measured at initialisation (ln)", "10% / 50% / 90% of tasks",
            "Spearman with the residual offset: constant", "one-cycle"]  # fmt: skip
    res = {s: best_offsets(feats, s) - fitted_offsets(feats, s) for s in ("constant", "onecycle")}
    rows = []
    for name, x in (("B_noise / B, gradient noise scale over batch size", gns),
                    ("squared gradient norm", norm)):  # fmt: skip
        q = " / ".join(f"{v:.2f}" for v in np.percentile(x, [10, 50, 90]))
        rows.append([name, q, *(round(spearman(x, res[s]), 3) for s in res)])
        print(" | ".join(map(str, rows[-1])), flush=True)
    if args.json:
        doc = {"tables": {"correlation": {"columns": cols, "rows": rows}}, "n_tasks": len(recs)}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
