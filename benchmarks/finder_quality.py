"""How good are range-test suggestions? lrkit vs torch-lr-finder vs fastai's valley rule.

For each task (built-in data, CPU, seconds each; see ``benchmarks/_demo_tasks.py``) and seed:

* a grid-search oracle trains for a fixed budget (``--steps``) at log-spaced constant LRs and
  with one-cycle at log-spaced ``max_lr``; the oracle loss is the best mean (over seeds) final
  validation loss on the grid;
* lrkit's ``find_lr`` (defaults: 1e-7..10, 100 steps) gives ``suggestion`` (constant use) and
  ``max_lr`` (one-cycle use);
* torch-lr-finder's ``LRFinder.range_test`` (the real package; same range and num_iter) gives
  its suggestion, its own rule (steepest gradient after skipping 10 first / 5 last points),
  used for both uses, as its users do;
* fastai's ``valley`` rule on lrkit's sweep, smoothed and trimmed as fastai's ``lr_find``
  does (``result.suggest("valley")``: same sweep; fastai itself is not a dependency), used
  for both uses.

Each method's LR is trained with both seeds; ratio = its mean loss / oracle loss, a hit is
ratio <= 1.10. Also times ``find_lr`` against torch-lr-finder's ``range_test`` on one task.

These tasks are now part of the finder's task zoo (``benchmarks/zoo/``, set "T"), on which
the default rule (``"budget_edge"``) is fitted: its out-of-fold numbers are in
``benchmarks/finder_zoo.py``; the numbers of this script, with the shipped coefficients, are
in-sample. What follows describes the rule this script was written for.

The ``"lrkit"`` rule's divisors were chosen on these tasks together with those of
``benchmarks/finder_holdout.py``: lrkit's numbers here are in-sample, the competitors' are not.

    python benchmarks/finder_quality.py            # all tasks, ~5-8 min on 2 cores
    python benchmarks/finder_quality.py --quick    # 4 tasks, coarser grid
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time
import warnings

import numpy as np
import torch
from _demo_tasks import TASKS, make_task

from lrkit import schedules
from lrkit.finder import LRFinderWarning
from lrkit.torch import find_lr
from lrkit.torch.demo import DemoTask, evaluate, train


def run_training(task: DemoTask, lr: float, use: str, steps: int) -> float:
    torch.manual_seed(task.seed)
    model = task.make_model()
    opt = task.make_optimizer(model, lr)
    sched = schedules.onecycle(lr, total_steps=steps) if use == "onecycle" else None
    hist = train(model, optimizer=opt, task=task, steps=steps, schedule=sched)
    if hist["loss"] and not math.isfinite(hist["loss"][-1]):
        return math.inf
    loss, _ = evaluate(model, task=task)
    return min(loss, 1e6)


def loader(task: DemoTask) -> torch.utils.data.DataLoader:
    ds = torch.utils.data.TensorDataset(task.x_train, task.y_train)
    gen = torch.Generator().manual_seed(task.seed)
    return torch.utils.data.DataLoader(
        ds, batch_size=task.batch_size, shuffle=True, drop_last=True, generator=gen
    )


def torch_lr_finder_suggestion(task: DemoTask, num_iter: int) -> tuple[float, int, float]:
    from torch_lr_finder import LRFinder

    torch.manual_seed(task.seed)
    model = task.make_model()
    opt = task.make_optimizer(model, 1e-7)
    data = loader(task)
    t0 = time.perf_counter()  # timed like find_lr: snapshot, sweep, restore
    finder = LRFinder(model, opt, task.loss_fn, device="cpu")
    finder.range_test(data, end_lr=10.0, num_iter=num_iter)
    finder.reset()
    dt = time.perf_counter() - t0
    lrs, losses = finder.history["lr"], finder.history["loss"]
    skip_start, skip_end = 10, 5
    lrs_t, losses_t = lrs[skip_start:-skip_end], losses[skip_start:-skip_end]
    idx = int(np.gradient(np.array(losses_t)).argmin()) if len(losses_t) > 1 else 0
    lr = float(lrs_t[idx]) if lrs_t else float(lrs[0])
    return lr, len(lrs), dt


def lrkit_sweep(task: DemoTask, num_iter: int, steps: int | None = None):
    torch.manual_seed(task.seed)
    model = task.make_model()
    opt = task.make_optimizer(model, 1e-7)
    data = loader(task)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LRFinderWarning)
        res = find_lr(model, opt, task.loss_fn, data, num_iter=num_iter, total_steps=steps)
    return res, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 tasks, coarser grid")
    ap.add_argument("--tasks", default=None, help="comma-separated task names")
    ap.add_argument("--steps", type=int, default=300, help="training budget (steps)")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--num-iter", type=int, default=100)
    ap.add_argument("--per-decade", type=int, default=4, help="oracle grid density")
    ap.add_argument("--cache", default=None, help="JSON file caching oracle grid results")
    ap.add_argument("--json", default=None, help="write all results to this JSON file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    tasks = list(TASKS)
    if args.quick:
        tasks = ["digits_mlp_sgd", "digits_mlp_adam", "seq_gru_rmsprop", "digits_bn_sgd"]
        args.per_decade = min(args.per_decade, 2)
    if args.tasks:
        tasks = args.tasks.split(",")
    seeds = list(range(args.seeds))
    grid = [float(v) for v in np.logspace(-5, 1, 6 * args.per_decade + 1)]
    cache: dict[str, float] = {}
    if args.cache and os.path.exists(args.cache):
        with open(args.cache) as f:
            cache = json.load(f)

    def loss_at(name: str, seed: int, lr: float, use: str) -> float:
        key = f"{name}|{seed}|{use}|{args.steps}|{lr:.6e}"
        if key not in cache:
            cache[key] = run_training(make_task(name, seed), lr, use, args.steps)
        return cache[key]

    methods = ["lrkit", "torch-lr-finder", "fastai-valley"]
    uses = ["constant", "onecycle"]
    rows = []
    t_start = time.perf_counter()
    for name in tasks:
        oracle = {}
        for use in uses:
            means = [float(np.mean([loss_at(name, s, lr, use) for s in seeds])) for lr in grid]
            j = int(np.argmin(means))
            oracle[use] = (grid[j], means[j])
        if args.cache:
            with open(args.cache, "w") as f:
                json.dump(cache, f)
        sugg: dict[str, dict[str, list[float]]] = {m: {u: [] for u in uses} for m in methods}
        steps_cost = {m: [] for m in methods}
        curves = []
        for s in seeds:
            task = make_task(name, s)
            res, _ = lrkit_sweep(task, args.num_iter, args.steps)
            curves.append(res.to_dict())
            sugg["lrkit"]["constant"].append(res.suggestion)
            sugg["lrkit"]["onecycle"].append(res.max_lr)
            steps_cost["lrkit"].append(res.steps)
            fv = res.suggest("valley")
            sugg["fastai-valley"]["constant"].append(fv)
            sugg["fastai-valley"]["onecycle"].append(fv)
            steps_cost["fastai-valley"].append(res.steps)
            tl, n, _ = torch_lr_finder_suggestion(task, args.num_iter)
            sugg["torch-lr-finder"]["constant"].append(tl)
            sugg["torch-lr-finder"]["onecycle"].append(tl)
            steps_cost["torch-lr-finder"].append(n)
        for m in methods:
            for use in uses:
                lrs = sugg[m][use]
                losses = [loss_at(name, s, lr, use) for s, lr in zip(seeds, lrs)]
                loss = float(np.mean(losses))
                ratio = loss / oracle[use][1]
                rows.append(
                    {
                        "task": name,
                        "use": use,
                        "method": m,
                        "lr": float(np.exp(np.mean(np.log(lrs)))),
                        "lrs": lrs,
                        "loss": loss,
                        "oracle_lr": oracle[use][0],
                        "oracle_loss": oracle[use][1],
                        "ratio": ratio,
                        "hit": bool(ratio <= 1.10),
                        "steps": float(np.mean(steps_cost[m])),
                    }
                )
        if args.cache:
            with open(args.cache, "w") as f:
                json.dump(cache, f)
        if args.json:
            with open(args.json + f".{name}.curves.json", "w") as f:
                json.dump(curves, f)
        print(f"[{name} done, {time.perf_counter() - t_start:.0f}s]", file=sys.stderr)

    print(
        f"# finder quality ({datetime.date.today()}), {len(tasks)} tasks, seeds {seeds}, "
        f"{args.steps} training steps, oracle grid {len(grid)} LRs in [1e-5, 10]"
    )
    for use in uses:
        print(f"\n## use: {use}" + (" (max_lr of one-cycle)" if use == "onecycle" else ""))
        print(
            "| task | oracle lr | oracle loss | "
            + " | ".join(f"{m} lr / loss / ratio" for m in methods)
            + " |"
        )
        print("|---|---|---|" + "---|" * len(methods))
        for name in tasks:
            r = {x["method"]: x for x in rows if x["task"] == name and x["use"] == use}
            o = r["lrkit"]
            cells = [
                f"{r[m]['lr']:.2e} / {r[m]['loss']:.4f} / {r[m]['ratio']:.2f}"
                + (" ✓" if r[m]["hit"] else " ✗")
                for m in methods
            ]
            print(
                f"| {name} | {o['oracle_lr']:.2e} | {o['oracle_loss']:.4f} | "
                + " | ".join(cells)
                + " |"
            )
    print("\n## summary (hit = final validation loss within 10% of the oracle's)")
    print("| method | hits constant | hits one-cycle | median ratio const / 1cycle | sweep steps |")
    print("|---|---|---|---|---|")
    for m in methods:
        rc = [x for x in rows if x["method"] == m and x["use"] == "constant"]
        ro = [x for x in rows if x["method"] == m and x["use"] == "onecycle"]
        print(
            f"| {m} | {sum(x['hit'] for x in rc)}/{len(rc)} | {sum(x['hit'] for x in ro)}/"
            f"{len(ro)} | {np.median([x['ratio'] for x in rc]):.2f} / "
            f"{np.median([x['ratio'] for x in ro]):.2f} | {np.mean([x['steps'] for x in rc]):.0f} |"
        )

    # wall time: lrkit find_lr vs torch-lr-finder range_test, same task and num_iter
    name = "digits_cnn_adamw" if "digits_cnn_adamw" in tasks or not args.quick else tasks[0]
    task = make_task(name, 0)
    t_l, t_t = [], []
    for _ in range(3):
        t_l.append(lrkit_sweep(task, args.num_iter)[1])
        t_t.append(torch_lr_finder_suggestion(task, args.num_iter)[2])
    tl, tt = min(t_l), min(t_t)
    print(f"\n## wall time ({name}, num_iter={args.num_iter}, best of 3)")
    print(
        f"lrkit find_lr: {tl:.3f}s   torch-lr-finder range_test: {tt:.3f}s   "
        f"ratio lrkit/torch-lr-finder: {tl / tt:.2f}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "grid": grid, "time": [tl, tt]}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
