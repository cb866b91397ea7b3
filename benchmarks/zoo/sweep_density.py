"""Does a longer or denser sweep make the finder's edge more accurate, or the seeds agree more?

The "two-speed" rows spend the steps where the loss moves (:func:`two_speed`): they show how
much these out-of-fold numbers move between two nearly identical sweeps. The last row
repeats the default sweep 3 times on each seed's model (same initialisation and held batch,
other batch orders) and reads the median edge: how much of the seeds' disagreement a user
removes by repeating the range test on the model in hand.

The cached sweeps (``replay.py``) fix the LR sequence (1e-7 to 10 in 100 steps), so this
script runs the range test live on every zoo task and sweep seed (the cache's models, batch
orders and first held batch; 2 processes), with the real :class:`lrkit.finder.Sweep` and the
options of each row, then scores the per-sweep ``lr_min`` exactly as ``variants.py`` does:
coefficients refitted by grouped 5-fold cross-validation over task families, out-of-fold hits
and gm against the cached grid oracles. ``steps`` is the mean number of sweep steps (the
cost, with the held evaluations in the next column).

    python benchmarks/zoo/sweep_density.py --json benchmarks/results/sweep_density.json  # ~10 min
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
from replay import OPT_KIND, load, optimizer_kind  # noqa: E402
from variants import nested, oof, spread  # noqa: E402

ROWS: list[tuple[str, dict[str, Any]]] = [
    ("default: 1e-7 to 10 in 100 steps", {}),
    ("1e-5 to 10 in 100 steps", {"start_lr": 1e-5}),
    ("1e-7 to 10 in 200 steps", {"num_iter": 200}),
    ("1e-7 to 10 in 400 steps", {"num_iter": 400}),  # extension: max(50, num_iter // 2) = 200
    ("two-speed, moved = 1%, 130 steps to 10", {"num_iter": 130, "moved": 0.01}),
    ("two-speed, moved = 0.3%, 130 steps to 10", {"num_iter": 130, "moved": 0.003}),
    ("two-speed, moved = 0.3%, 100 steps to 10", {"num_iter": 100, "moved": 0.003}),
    ("default, 3 sweeps from the same initialisation (other batch orders), median", {"repeats": 3}),
]


def two_speed(moved: float, fast: float = 4.0) -> type:
    """A sweep that spends its steps where the loss moves: ``fast`` steps per decade (held
    loss every 2 steps) while the held loss is within ``moved`` of its first value, then the
    steps left of ``num_iter`` spread evenly (in log LR) up to ``end_lr``."""
    from lrkit.finder import Sweep

    class TwoSpeed(Sweep):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._seq: list[float] = []
            self._fast = True
            self._ratio = 1.0

        def _moved(self) -> bool:
            h = self._held
            return len(h) >= 2 and abs(h[-1] - h[0]) > moved * abs(h[0])

        def lr_at(self, i: int) -> float:
            while len(self._seq) <= i:
                self._extend()
            return self._seq[i]

        def _extend(self) -> None:
            s = self._seq
            if not s:
                s.append(self.start_lr)
                return
            if self._fast:
                nxt = s[-1] * 10 ** (1 / fast)
                if not self._moved() and nxt < self.end_lr:
                    s.append(nxt)
                    return
                self._fast = False
                left = max(self.num_iter - len(s), 10)
                self._ratio = (self.end_lr / s[-1]) ** (1 / left)
            s.append(s[-1] * self._ratio)

        @property
        def eval_due(self) -> bool:
            every = 2 if self._fast else self.options.eval_every
            return self.options.eval_batches > 0 and len(self._losses) % every == 0

    return TwoSpeed


def with_default_coefficients(
    default: list[dict[str, Any]], feats: list[dict[str, Any]]
) -> list[Any]:
    """What a user who changes only the sweep gets: per schedule, the out-of-fold hits and gm
    of ``feats``' edges with the coefficients fitted on the default sweep's edges
    (``default``) in the training part of each fold, as the shipped coefficients are."""
    out: list[Any] = []
    for sched in ("constant", "onecycle", "wcos"):
        hits, gm = oof(feats, sched, fit_on=default)
        out += [f"{hits:.0%}", round(gm, 3)]
    return out


def run_task(args: tuple[dict[str, Any], dict[str, Any]]) -> list[tuple[float, int, int]]:
    """(lr_min, steps, held evaluations) of each sweep seed of one task. With ``repeats`` k,
    each seed's model runs k sweeps from the same initialisation and held batch, on other
    batch orders, and reads the median of their lr_min (steps and evaluations summed)."""
    import torch
    from _finder_common import batches, eval_losses, fresh, sweep_step
    from tasks import build

    from lrkit.finder import Sweep, SweepOptions

    spec, opts = args
    opts = dict(opts)
    moved = opts.pop("moved", None)
    repeats = int(opts.pop("repeats", 1))
    cls = Sweep if moved is None else two_speed(moved)
    torch.set_num_threads(1)
    task = build(spec)
    out = []
    for seed in F.SEEDS:
        first = batches(task, 300 + seed, 1)[0]
        runs = []
        for rep in range(repeats):
            family = OPT_KIND[spec["opt"]["name"]]
            options = SweepOptions(**{"optimizer_family": family, **opts}, total_steps=task.steps)
            sweep = cls(options)
            n = 2 * options.num_iter + options.extra_iter + 1
            data = batches(task, 100 + seed + 1000 * rep, n)
            model = fresh(task, seed)
            opt = task.opt_fn(model.parameters(), 1e-3)
            torch.manual_seed(3000 + seed + 1000 * rep)
            for i, lr in enumerate(sweep):
                value = sweep_step(task, model, opt, data[i], lr)
                if not math.isfinite(value):
                    sweep.record(math.nan)
                    break
                held = eval_losses(task, model, [first])[0] if sweep.eval_due else None
                sweep.record(value, held=held)
            r = sweep.result(warn=False)
            runs.append((float(r.lr_min), len(r.losses), len(r.held_losses)))
        lr_min = float(np.median([v[0] for v in runs]))
        out.append((lr_min, sum(v[1] for v in runs), sum(v[2] for v in runs)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    recs = load()
    rows = []
    every: list[tuple[str, list[dict[str, Any]]]] = []
    cost: list[tuple[list[float], list[float]]] = []
    for name, opts in ROWS:
        with mp.Pool(args.jobs) as pool:
            runs = pool.map(run_task, [(rec["spec"], opts) for rec in recs], chunksize=1)
        feats = [
            {"group": rec["spec"]["family"], "opt": optimizer_kind(rec),
             "t": math.log(rec["steps"] / 1000.0), "rec": rec,
             "lr_min": [v[0] for v in run]}
            for rec, run in zip(recs, runs)
        ]  # fmt: skip
        ch, cg = oof(feats, "constant")
        oh, og = oof(feats, "onecycle")
        share = spread(feats)
        steps = float(np.mean([v[1] for run in runs for v in run]))
        held = float(np.mean([v[2] for run in runs for v in run]))
        every.append((name, feats))
        cost.append(([float(np.mean([v[1] for v in run])) for run in runs],
                     [float(np.mean([v[2] for v in run])) for run in runs]))  # fmt: skip
        rows.append([name, round(steps, 1), round(held, 1), f"{ch:.0%}", round(cg, 3),
                     f"{oh:.0%}", round(og, 3), f"{share:.0%}"])  # fmt: skip
        print(" | ".join(map(str, rows[-1])), flush=True)
    # the sweep chosen among the rows inside each training part (nested): its cost is that
    # of the row each task's fold chose
    picked, share, chosen = nested(every, ("constant", "onecycle"))
    names = [n for n, _ in every]
    fold_of = {i: k for k, test in enumerate(F.folds(every[0][1])) for i in test}
    row_of = [names.index(chosen[fold_of[i]]) for i in range(len(recs))]
    steps = float(np.mean([cost[r][0][i] for i, r in enumerate(row_of)]))
    held = float(np.mean([cost[r][1][i] for i, r in enumerate(row_of)]))
    rows.append([f"the sweep chosen among the {len(every)} rows above inside each training part",
                 round(steps, 1), round(held, 1), f"{picked['constant'][0]:.0%}",
                 round(picked["constant"][1], 3), f"{picked['onecycle'][0]:.0%}",
                 round(picked["onecycle"][1], 3), f"{share:.0%}"])  # fmt: skip
    print(" | ".join(map(str, rows[-1])), chosen, flush=True)
    cols = ["sweep", "steps", "held evaluations", "constant hits", "constant gm",
            "one-cycle hits", "one-cycle gm", "seed spread <= 2x"]  # fmt: skip
    choice = [[f"fold {k + 1}", f"row {1 + names.index(c)}: {c}"] for k, c in enumerate(chosen)]
    shipped = []
    for k, (name, feats) in enumerate(every):
        if {"moved", "repeats"} & set(ROWS[k][1]):  # not options of the finder
            continue
        shipped.append([name, rows[k][1], rows[k][2],
                        *with_default_coefficients(every[0][1], feats)])  # fmt: skip
        print(" | ".join(map(str, shipped[-1])), flush=True)
    c2 = ["sweep", "steps", "held evaluations", "constant hits", "constant gm",
          "one-cycle hits", "one-cycle gm", "warmup-cosine hits", "warmup-cosine gm"]  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            tables = {
                "density": {"columns": cols, "rows": rows},
                "nested_choice": {"columns": ["outer fold", "sweep chosen"], "rows": choice},
                "default_coefficients": {"columns": c2, "rows": shipped},
            }
            json.dump({"tables": tables}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
