"""What ``lrkit.torch.fit`` adds to a training step, against the bare loop, in one run.

Both loops train the same small MLP on the same batches with the same
``lrkit.torch.scheduler``; the bare loop is ``zero_grad, forward, loss, backward, step,
scheduler.step()``, ``fit`` adds the batch and loss checks, the per-step loss and LR records
and the NaN check. Runs are
paired (a bare run and a ``fit`` run back to back, in alternating order) and repeated; the
table reports the fastest run of each (the least disturbed by other processes, as ``timeit``
advises) and the median over the pairs of the ratio within a pair (two runs a moment apart
see the same load; the ratio of the two fastest runs of a busy machine does not). The last
column is the median over the pairs of the difference within a pair: what ``fit`` adds to a
step, in microseconds.

    python benchmarks/fit_overhead.py [--steps 300] [--repeats 7] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from lrkit import schedules as S
from lrkit.torch import fit, scheduler


def _setup(width: int, batch: int, n_batches: int):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch * n_batches, 64, generator=g)
    y = torch.randint(0, 10, (batch * n_batches,), generator=g)
    data = [(x[i : i + batch], y[i : i + batch]) for i in range(0, len(x), batch)]
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, 10)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model, opt, data


def bare(model, opt, data, steps: int) -> float:
    sched = scheduler(opt, S.cosine(0.05, total_steps=steps))
    loss_fn = torch.nn.functional.cross_entropy
    model.train()
    t0 = time.perf_counter()
    k = 0
    while k < steps:
        for x, y in data:
            if k >= steps:
                break
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            k += 1
    return (time.perf_counter() - t0) / steps


def with_fit(model, opt, data, steps: int) -> float:
    t0 = time.perf_counter()
    fit(
        model,
        optimizer=opt,
        loss_fn=torch.nn.functional.cross_entropy,
        data=data,
        steps=steps,
        schedule=S.cosine(0.05, total_steps=steps),
    )
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--json", default=None, metavar="PATH")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for width, batch in ((128, 32), (512, 128)):
        times: dict[str, list[float]] = {"bare": [], "fit": []}
        ratios: list[float] = []
        diffs: list[float] = []
        for r in range(args.repeats + 1):
            for name, fn in (
                (("bare", bare), ("fit", with_fit))
                if r % 2
                else (
                    ("fit", with_fit),
                    ("bare", bare),
                )
            ):
                model, opt, data = _setup(width, batch, 20)
                t = fn(model, opt, data, args.steps)
                if r:  # the first round warms up
                    times[name].append(t)
            if r:
                ratios.append(times["fit"][-1] / times["bare"][-1])
                diffs.append(times["fit"][-1] - times["bare"][-1])
        b, f = min(times["bare"]), min(times["fit"])  # least disturbed run (timeit's rule)
        name = f"MLP 64-{width}-10, batch {batch}"
        added = statistics.median(diffs) * 1e6
        rows.append([name, b * 1e6, f * 1e6, statistics.median(ratios), added])
    cols = [
        "task",
        "bare step (us)",
        "fit step (us)",
        "fit / bare (median of paired runs)",
        "fit step - bare step (us, median of paired runs)",
    ]
    for row in rows:
        print(
            f"{row[0]:<26} bare {row[1]:8.1f} us  fit {row[2]:8.1f} us  ratio {row[3]:.3f}  "
            f"fit adds {row[4]:.1f} us a step"
        )
    if args.json:
        out = {
            "tables": {
                "fit_overhead": {
                    "columns": cols,
                    "rows": [
                        [
                            r[0],
                            round(r[1], 1),
                            round(r[2], 1),
                            round(r[3], 3),
                            round(r[4], 1),
                        ]
                        for r in rows
                    ],
                }
            },
            "steps": args.steps,
            "repeats": args.repeats,
            "torch": torch.__version__,
        }
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
