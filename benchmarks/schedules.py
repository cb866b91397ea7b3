"""Schedules benchmark: lrkit's PyTorch adapter vs PyTorch's own schedulers, in one run.

1. per-step cost of ``lrkit.torch.scheduler(opt, onecycle(...)).step()`` vs ``OneCycleLR.step()``
   (goal: a fraction of PyTorch's cost), and the same for cosine vs ``CosineAnnealingLR`` and
   for a linear warmup then cosine (``with_warmup``: a ``join`` of ``warmup`` and ``cosine``)
   vs ``SequentialLR(LinearLR, CosineAnnealingLR)``;
   the two are timed in alternating blocks, many rounds, best-of-N CPU time each;
2. ``schedule.values(range(N))`` vs stepping PyTorch's ``OneCycleLR`` N times to get the same
   N learning rates (goal: 100x faster or more), with the max relative difference; both sides
   read the N values into an array, best of the same number of runs (``--values-repeat``).

Run: python benchmarks/schedules.py [--steps 1000000] [--repeat 15] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, OneCycleLR, SequentialLR

import lrkit.torch as lt
from lrkit import schedules as S


def _opt() -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(4)]
    return torch.optim.SGD(params, lr=0.1, momentum=0.9)


def _time_pair(make_ours, make_ref, n: int, repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Best-of-``repeat`` seconds per ``.step()`` of both (process CPU time, which waiting for
    other processes on a busy machine does not inflate), timed in alternating blocks of ``n``
    steps."""
    best = [float("inf"), float("inf")]
    for r in range(repeat):
        order = [(0, make_ours), (1, make_ref)]
        for i, make in order if r % 2 == 0 else order[::-1]:
            sch = make(_opt())
            step = sch.step
            t0 = time.process_time()
            for _ in range(n):
                step()
            best[i] = min(best[i], (time.process_time() - t0) / n)
    return best[0], best[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=1_000_000, help="N for the values() comparison")
    ap.add_argument("--per-step", type=int, default=20_000, help="steps timed per repeat")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--values-repeat", type=int, default=3, help="runs of each side of 2.")
    ap.add_argument("--json", metavar="PATH", help="write the tables as JSON")
    args = ap.parse_args()
    for name in ("steps", "per_step", "repeat", "values_repeat"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    total = max(args.steps, args.per_step) + 1

    rows = []
    # 1. per-step cost (momentum cycled in both, as OneCycleLR does by default)
    ours, ref = _time_pair(
        lambda o: lt.scheduler(
            o, S.onecycle(0.1, total_steps=total), momentum=S.onecycle_momentum(total)
        ),
        lambda o: OneCycleLR(o, 0.1, total_steps=total),
        args.per_step,
        args.repeat,
    )
    rows.append(("per-step .step(), one-cycle + momentum", ref * 1e6, ours * 1e6, "us/step"))
    ours_c, ref_c = _time_pair(
        lambda o: lt.scheduler(o, S.cosine(0.1, total_steps=total)),
        lambda o: CosineAnnealingLR(o, T_max=total),
        args.per_step,
        args.repeat,
    )
    rows.append(("per-step .step(), cosine", ref_c * 1e6, ours_c * 1e6, "us/step"))
    warm = total // 10
    ours_w, ref_w = _time_pair(
        lambda o: lt.scheduler(
            o,
            S.with_warmup(
                S.cosine(0.1, total_steps=total - warm), warmup_steps=warm, start_lr=1e-3
            ),
        ),
        lambda o: SequentialLR(
            o,
            [
                LinearLR(o, start_factor=0.01, total_iters=warm),
                CosineAnnealingLR(o, T_max=total - warm),
            ],
            milestones=[warm],
        ),
        args.per_step,
        args.repeat,
    )
    rows.append(("per-step .step(), warmup + cosine", ref_w * 1e6, ours_w * 1e6, "us/step"))

    # 2. N learning rates at once vs stepping PyTorch N times
    n = args.steps
    s = S.onecycle(0.1, total_steps=total)
    t_ref = best = float("inf")
    for _ in range(args.values_repeat):  # the same runs for both, alternating
        opt = _opt()
        ref_sched = OneCycleLR(opt, 0.1, total_steps=total)
        ref_lrs = np.empty(n)
        t0 = time.perf_counter()
        for k in range(n):
            ref_lrs[k] = opt.param_groups[0]["lr"]
            ref_sched.step()
        t_ref = min(t_ref, time.perf_counter() - t0)
        t0 = time.perf_counter()
        vals = s.values(np.arange(n))
        best = min(best, time.perf_counter() - t0)
    err = float(np.max(np.abs(vals - ref_lrs) / ref_lrs))
    rows.append((f"{n:.0e} LRs: values() vs {n:.0e} OneCycleLR.step()", t_ref, best, "s"))

    print(f"torch {torch.__version__}, numpy {np.__version__}")
    head = f"{'measure':<48} {'PyTorch':>12} {'lrkit':>12} {'unit':>8} {'lrkit/PyTorch':>14}"
    print(head + f" {'speed-up':>9}")
    for name, r, o, unit in rows:
        print(f"{name:<48} {r:>12.4g} {o:>12.4g} {unit:>8} {o / r:>14.3f} {r / o:>8.1f}x")
    print(f"max relative difference of the {n} LRs: {err:.2e}")
    if args.json:
        table = {
            "columns": ["measure", "PyTorch", "lrkit", "unit", "lrkit / PyTorch", "speed-up"],
            "rows": [
                [name, round(r, 4), round(o, 4), unit, round(o / r, 3), f"{r / o:.1f}x"]
                for name, r, o, unit in rows
            ],
        }
        out = {
            "tables": {"schedules": table},
            "max_relative_difference": err,
            "versions": {"torch": torch.__version__, "numpy": np.__version__},
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
