"""Finder-seeded search vs blind Optuna TPE: trials needed to come within 5% of the best value
a long blind search finds.

For each demo task (_demo_tasks.py, validation loss after a few epochs; every trial starts from
the same weights and sees the same batches), a long blind TPE search (peak LR log-uniform in
1e-6..10, all six schedule families) sets the reference best value. Then, for several sampler
seeds, a blind TPE search and a finder-seeded one (the range test bounds the peak-LR interval
and the first trials are one-cycle and warmup-cosine peaking at a third of the range test's
lr_min) run until the best value is
within 5% of the reference or the budget is spent. A trial is every trial started (diverged
ones included). The range test (one sweep of <= 100 steps, run once per study) is reported
separately, in units of one trial's training steps.

    python benchmarks/tune_efficiency.py                 # 4 tasks x 3 seeds, ~5 min on 2 cores
    python benchmarks/tune_efficiency.py --quick         # 2 tasks x 2 seeds
    python benchmarks/tune_efficiency.py --json benchmarks/results/tune_efficiency.json

``--json PATH`` also writes the table ``trials`` and the summary for the docs
(``benchmarks/render_docs.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import warnings

import optuna
from _demo_tasks import make_task

from lrkit.tune import Task, demo_task, tune

TASKS = ("digits_mlp_sgd", "digits_mlp_adam", "wine_mlp_rmsprop", "cancer_bn_adamw")


def trials_to_reach(study: optuna.Study, target: float) -> int | None:
    """1-based index of the first trial whose value is <= target (None if none)."""
    for i, t in enumerate(sorted(study.trials, key=lambda t: t.number), 1):
        if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None:
            if t.value <= target:
                return i
    return None


def run_until(task: Task, seeding: object, seed: int, target: float, budget: int) -> int | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = tune(
            task,
            n_trials=budget,
            seeding=seeding,
            seed=seed,
            pruner="none",
            max_trials=budget,
            stop_when=lambda st: trials_to_reach(st, target) is not None,
        )
    return trials_to_reach(r.study, target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--reference-trials", type=int, default=80)
    ap.add_argument("--budget", type=int, default=40, help="max trials per search")
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args()
    if args.quick:
        args.tasks, args.seeds, args.reference_trials, args.budget = (
            "digits_mlp_sgd,wine_mlp_rmsprop",
            2,
            40,
            25,
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t_start = time.time()
    rows = []
    all_blind: list[float] = []
    all_seeded: list[float] = []
    for name in args.tasks.split(","):
        task = demo_task(make_task(name), epochs=4)
        finder = task.range_test() if task.range_test is not None else None
        cached = Task(  # the range test is deterministic: run it once, reuse it per seed
            train=task.train,
            total_steps=task.total_steps,
            range_test=lambda f=finder: f,
            name=task.name,
            metric=task.metric,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = tune(
                task, n_trials=args.reference_trials, seeding="blind", seed=12345, pruner="none"
            )
        best = ref.best_value
        target = best * (1 + args.tolerance) if best > 0 else best * (1 - args.tolerance)
        blind, seeded = [], []
        for seed in range(args.seeds):
            b = run_until(cached, "blind", seed, target, args.budget)
            s = run_until(cached, "finder", seed, target, args.budget)
            # a search that never got there counts as budget + 1 (a lower bound)
            blind.append(float(b if b is not None else args.budget + 1))
            seeded.append(float(s if s is not None else args.budget + 1))
        all_blind += blind
        all_seeded += seeded
        steps = getattr(finder, "steps", 0)
        rows.append(
            (
                name,
                best,
                blind,
                seeded,
                statistics.mean(blind) / statistics.mean(seeded),
                steps / task.total_steps,
            )
        )

    def fmt(xs: list[float]) -> str:
        return " ".join(
            (f">{args.budget}" if x > args.budget else f"{int(x)}").rjust(4) for x in xs
        )

    print(
        f"trials to come within {args.tolerance:.0%} of the best of a {args.reference_trials}-"
        f"trial blind TPE search (seeds 0..{args.seeds - 1}, budget {args.budget})\n"
    )
    head = f"{'task':<18} {'ref best':>9}  {'blind TPE':<{5 * args.seeds}}  "
    head += f"{'finder-seeded':<{5 * args.seeds}}  {'ratio':>6}  finder cost"
    print(head)
    print("-" * len(head))
    for name, best, blind, seeded, ratio, cost in rows:
        print(
            f"{name:<18} {best:>9.4f}  {fmt(blind):<{5 * args.seeds}}  "
            f"{fmt(seeded):<{5 * args.seeds}}  {ratio:>6.2f}  {cost:.2f} trial"
        )
    ratio = statistics.mean(all_blind) / statistics.mean(all_seeded)
    gm = math.exp(statistics.mean(math.log(b / s) for b, s in zip(all_blind, all_seeded)))
    print(
        f"\nmean trials: blind {statistics.mean(all_blind):.1f}, finder-seeded "
        f"{statistics.mean(all_seeded):.1f}; ratio blind/seeded = {ratio:.2f} "
        f"(geometric mean of per-run ratios {gm:.2f}); {time.time() - t_start:.0f} s"
    )
    if args.json:
        seeds = ", ".join(str(i) for i in range(args.seeds))

        def cells(xs: list[float]) -> str:
            return ", ".join(f">{args.budget}" if x > args.budget else f"{int(x)}" for x in xs)

        table = {
            "columns": [
                "task",
                "reference best",
                f"blind TPE (seeds {seeds})",
                f"finder-seeded (seeds {seeds})",
                "ratio blind/seeded",
                "finder cost (trials)",
            ],
            "rows": [
                [name, round(best, 4), cells(b), cells(s), round(r, 2), round(c, 2)]
                for name, best, b, s, r, c in rows
            ],
        }
        summary = {
            "columns": [
                "mean trials, blind",
                "mean trials, finder-seeded",
                "ratio of the means",
                "geometric mean of per-run ratios",
            ],
            "rows": [
                [
                    round(statistics.mean(all_blind), 1),
                    round(statistics.mean(all_seeded), 1),
                    round(ratio, 2),
                    round(gm, 2),
                ]
            ],
        }
        out = {
            "tables": {"trials": table, "summary": summary},
            "settings": {
                "tasks": args.tasks.split(","),
                "seeds": args.seeds,
                "reference_trials": args.reference_trials,
                "budget": args.budget,
                "tolerance": args.tolerance,
            },
            "seconds": round(time.time() - t_start, 1),
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
