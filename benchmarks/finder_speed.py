"""Wall time of a default range test: lrkit.torch.find_lr vs torch-lr-finder, in one run.

Three sweeps of the same task (``_demo_tasks`` tasks, batch 32, 1e-7 -> 10, 100 steps), timed
including snapshot and restore, interleaved over ``--rounds`` rounds (best of):

* ``lrkit (defaults)``: held-batch loss every 4 steps on 1 held batch, extension on;
* ``lrkit (training loss only)``: ``eval_batches=0, max_extra_iter=0``, the measurement lrkit
  made before the held-batch curve (the same loop: one step per LR, training loss recorded);
* ``torch-lr-finder``: ``LRFinder.range_test`` + ``reset()`` (its defaults: ``smooth_f=0.05``,
  ``diverge_th=5``).

Ratios are per sweep and per step (the sweeps may stop at different points). The ``probes``
table times the same default range test with ``probe_data`` (the task's validation split, one
batch): the sweep, then 8 probe runs of 60 steps, each scored on it. The ``profile``
table splits a step from a held evaluation on the same model and batch (best of
``--rounds`` x 50 calls): a sweep step (zero_grad, forward, backward, optimizer step,
``.item()``), the held evaluation as the finder makes it (eval mode, no grad, float64 loss,
the modules' train flags put back, ``.item()``) and its bare forward pass.

    python benchmarks/finder_speed.py --json benchmarks/results/finder_speed.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import torch
from _demo_tasks import make_task

from lrkit.finder import LRFinderWarning
from lrkit.torch import find_lr

TASKS = ("digits_mlp_adam", "digits_cnn_adamw", "seq_gru_rmsprop")


def loader(task):
    ds = torch.utils.data.TensorDataset(task.x_train, task.y_train)
    gen = torch.Generator().manual_seed(0)
    return torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, drop_last=True,
                                       generator=gen)  # fmt: skip


def time_lrkit(task, **kw) -> tuple[float, int]:
    torch.manual_seed(0)
    model = task.make_model()
    opt = task.make_optimizer(model, 1e-7)
    data = loader(task)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LRFinderWarning)
        res = find_lr(model, opt, task.loss_fn, data, **kw)
    return time.perf_counter() - t0, res.steps


def time_tlf(task) -> tuple[float, int]:
    from torch_lr_finder import LRFinder

    torch.manual_seed(0)
    model = task.make_model()
    opt = task.make_optimizer(model, 1e-7)
    data = loader(task)
    t0 = time.perf_counter()
    finder = LRFinder(model, opt, task.loss_fn, device="cpu")
    finder.range_test(data, end_lr=10.0, num_iter=100)
    finder.reset()
    return time.perf_counter() - t0, len(finder.history["lr"])


def profile(task, rounds: int) -> list[float]:
    """ms per sweep step, per held evaluation, per bare no-grad forward; the held cost per
    step at the default cadence (every 4 steps), in % of a step."""
    torch.manual_seed(0)
    model = task.make_model()
    opt = task.make_optimizer(model, 1e-4)
    x, y = task.x_train[:32], task.y_train[:32]
    modes = [(m, m.training) for m in model.modules()]

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = task.loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    def held() -> float:
        model.eval()
        with torch.no_grad():
            v = task.loss_fn(model(x), y).detach().double()
        for m, flag in modes:
            m.training = flag
        return float(v.item())

    def forward() -> float:
        with torch.no_grad():
            return task.loss_fn(model(x), y).item()

    out = []
    for fn in (step, held, forward):
        for _ in range(10):
            fn()
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(50):
                fn()
            best = min(best, (time.perf_counter() - t0) / 50)
        out.append(best * 1e3)
    return [round(v, 3) for v in out] + [round(100 * out[1] / 4 / out[0], 1)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    prof: list[list[object]] = []
    probe_rows: list[list[object]] = []
    for name in TASKS:
        task = make_task(name, 0)
        best: dict[str, tuple[float, int]] = {}
        runs = {
            "lrkit (defaults)": lambda t=task: time_lrkit(t),
            "lrkit (training loss only)": lambda t=task: time_lrkit(
                t, eval_batches=0, max_extra_iter=0
            ),
            "torch-lr-finder": lambda t=task: time_tlf(t),
            "lrkit (probe_data)": lambda t=task: time_lrkit(t, probe_data=[(t.x_val, t.y_val)]),
        }
        for _ in range(args.rounds):
            for k, fn in runs.items():
                dt, n = fn()
                if k not in best or dt < best[k][0]:
                    best[k] = (dt, n)
        d, o, t = (
            best["lrkit (defaults)"],
            best["lrkit (training loss only)"],
            best["torch-lr-finder"],
        )
        rows.append([
            name, round(d[0], 3), d[1], round(o[0], 3), o[1], round(t[0], 3), t[1],
            round(d[0] / o[0], 2), round(d[0] / t[0], 2),
            round((d[0] / d[1]) / (t[0] / t[1]), 2),
        ])  # fmt: skip
        print(rows[-1], flush=True)
        p = best["lrkit (probe_data)"]
        probe_rows.append([name, round(d[0], 3), round(p[0], 3), round(p[0] / d[0], 2)])
        print(probe_rows[-1], flush=True)
        prof.append([name, *profile(task, args.rounds)])
        print(prof[-1], flush=True)
    cols = ["task", "lrkit s", "steps", "train-loss-only s", "steps", "torch-lr-finder s",
            "steps", "lrkit / train-loss-only", "lrkit / torch-lr-finder",
            "per step: lrkit / torch-lr-finder"]  # fmt: skip
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(map(str, r)))
    if args.json:
        with open(args.json, "w") as f:
            pcols = ["task", "step ms", "held evaluation ms", "bare forward ms",
                     "held cost per step (every 4 steps), % of a step"]  # fmt: skip
            qcols = ["task", "lrkit s", "with probe_data s", "with probe_data / lrkit"]
            tabs = {"speed": {"columns": cols, "rows": rows},
                    "profile": {"columns": pcols, "rows": prof},
                    "probes": {"columns": qcols, "rows": probe_rows}}  # fmt: skip
            json.dump({"tables": tabs, "rounds": args.rounds}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
