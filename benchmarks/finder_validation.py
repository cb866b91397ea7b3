"""Third task set of the LR finder ("V"): an out-of-sample check of the default rule.

These tasks are now part of the finder's task zoo (``benchmarks/zoo/``, set "V"), on which
the default rule (``"budget_edge"``) is fitted: its out-of-fold numbers are in
``benchmarks/finder_zoo.py``; the numbers of this script, with the shipped coefficients, are
in-sample. What follows describes the rule this script was written for.

The ``"lrkit"`` rule's divisors (``suggestion = lr_min / 10``, ``max_lr = lr_min / 3``) were
chosen on the union of ``benchmarks/finder_quality.py`` ("T", tasks in ``_demo_tasks.py``) and
``benchmarks/finder_holdout.py`` ("H"). None of the 8 tasks below was looked at when they were
chosen, and none copies a task of T or H (datasets, splits, architectures, optimizers, batch
sizes or budgets differ):

=====================  =========================================  ============  ===  =====
task                   data, model                                optimizer     bs   steps
=====================  =========================================  ============  ===  =====
clf3_mlp_sgdm          make_classification 3 cls, MLP 2x64 ReLU   SGD m=0.9     64   500
digits_drop_adam       digits (20% val), MLP 1x128 + dropout 0.2  Adam          128  300
digits_cnnpool_adamw   digits, CNN 2x(conv+maxpool), linear head  AdamW         64   300
sine_gru_rmsprop       noisy sines, 3 frequencies, GRU(24)        RMSprop       32   300
blobs_bn_sgd           make_blobs 5 cls, MLP 2x64 + BatchNorm1d   SGD           128  500
reg_mlp_adamw          make_regression (20 feat), MLP 2x64        AdamW         32   300
iris_mlp_rmsprop       iris, MLP 1x32 ReLU                        RMSprop       32   500
sinreg_tanh_adam       1-d y = sin(3x) + noise, MLP 3x32 tanh     Adam          64   500
=====================  =========================================  ============  ===  =====

Optimizers use PyTorch's defaults (Adam betas, AdamW weight decay 0.01, RMSprop alpha 0.99).
For each task and seed (the seed sets the init, the batch order and dropout; the data split is
fixed):

* ``lrkit.torch.find_lr(model, optimizer, loss_fn, batches)`` with its defaults (1e-7..10, 100
  steps) on a fresh model, ``batches`` = the first 100 shuffled training batches;
* training for the budget at ``result.suggestion`` (constant LR) and with
  ``schedules.onecycle(result.max_lr, total_steps=budget)`` driven by
  ``lrkit.torch.scheduler`` (``sched.step()`` after ``opt.step()``);
* a grid oracle: the same budget at 25 log-spaced LRs in [1e-5, 10], constant and one-cycle.

Score: final validation loss (a run whose loss became NaN/inf or exceeded 1e3 scores 1e3). The
oracle is the grid LR with the best mean-over-seeds loss; a hit is a mean loss within 10% of it.

The sweeps (lrs, losses, stop reason, stop LR, ``lr_min``, the peers' rules on them) and the
whole grid go to ``--json`` (default ``/tmp/val/validation.json``) so other rules can be
re-scored offline; the peers' rules are scored by reading each seed's grid curve at their LR
(linear in log-LR / log-loss, marked ``~``).

    python benchmarks/finder_validation.py            # 8 tasks, ~6 min on 1 core (372 s measured)
    python benchmarks/finder_validation.py --quick    # 3 tasks, 13-point grid, ~1 min
    python benchmarks/finder_validation.py --rescore /tmp/val/validation.json  # no training
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np
import torch
from _finder_common import (  # the sibling module benchmarks/_finder_common.py
    HIT,
    PEER_RULES,
    USES,
    Task,
    fmt_curve,
    mlp,
    run_set,
    scored,
)
from torch import nn

F = nn.functional


# ----------------------------------------------------------------------------- tasks


def _split(x: Any, y: Any, cls: bool, val_frac: float = 0.25, seed: int = 11) -> tuple:
    """Fixed train/validation split; features (and regression targets) standardized on train."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    nv = int(round(len(x) * val_frac))
    va, tr = perm[:nv], perm[nv:]
    mu, sd = x[tr].mean(0), x[tr].std(0)
    x = (x - mu) / np.where(sd > 1e-8, sd, 1.0)  # as StandardScaler: constant columns unscaled
    if not cls:
        y = y.astype(np.float64)
        y = ((y - y[tr].mean()) / y[tr].std())[:, None]
    ydt = torch.long if cls else torch.float32
    return (
        torch.as_tensor(x[tr], dtype=torch.float32),
        torch.as_tensor(y[tr], dtype=ydt),
        torch.as_tensor(x[va], dtype=torch.float32),
        torch.as_tensor(y[va], dtype=ydt),
    )


class _CNNPool(nn.Module):
    """conv 1->12 3x3, ReLU, maxpool (4x4), conv 12->24 3x3, ReLU, maxpool (2x2), linear."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 12, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(12, 24, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(24 * 2 * 2, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.view(-1, 1, 8, 8))


class _GRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(1, 24, batch_first=True)
        self.head = nn.Linear(24, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1])


def _sines(n: int = 2400, length: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Noisy sines of random phase and amplitude; class = frequency (1.5, 2.5 or 3.5 cycles per
    sequence), noise sd 0.8."""
    rng = np.random.default_rng(21)
    y = rng.integers(0, 3, size=n)
    f = (1.5 + y)[:, None]
    t = np.arange(length)[None, :] / length
    amp = rng.uniform(0.5, 1.5, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    x = amp * np.sin(2 * np.pi * f * t + phase) + 0.8 * rng.normal(size=(n, length))
    return x[:, :, None], y


def _seq_split(x: np.ndarray, y: np.ndarray) -> tuple:
    nv = len(x) // 4
    return (
        torch.as_tensor(x[nv:], dtype=torch.float32),
        torch.as_tensor(y[nv:], dtype=torch.long),
        torch.as_tensor(x[:nv], dtype=torch.float32),
        torch.as_tensor(y[:nv], dtype=torch.long),
    )


def make_task(name: str) -> Task:
    from sklearn import datasets as D

    ce, mse = F.cross_entropy, F.mse_loss
    sgd = lambda p, lr: torch.optim.SGD(p, lr=lr)  # noqa: E731
    sgdm = lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9)  # noqa: E731
    adam = lambda p, lr: torch.optim.Adam(p, lr=lr)  # noqa: E731
    adamw = lambda p, lr: torch.optim.AdamW(p, lr=lr)  # noqa: E731
    rms = lambda p, lr: torch.optim.RMSprop(p, lr=lr)  # noqa: E731
    if name == "clf3_mlp_sgdm":
        x, y = D.make_classification(
            n_samples=2500, n_features=10, n_informative=6, n_redundant=2, n_classes=3,
            class_sep=0.8, flip_y=0.02, random_state=12,
        )  # fmt: skip
        return Task(
            name, *_split(x, y, True), lambda: mlp(10, 3, [64, 64]), sgdm, ce, 64, 500,
            "make_classification 3 cls, MLP 2x64 ReLU, SGD momentum .9, bs 64, 500 steps",
        )  # fmt: skip
    if name in ("digits_drop_adam", "digits_cnnpool_adamw"):
        d = D.load_digits()
        if name == "digits_drop_adam":
            return Task(
                name, *_split(d.data, d.target, True, val_frac=0.2, seed=13),
                lambda: mlp(64, 10, [128], drop=0.2), adam, ce, 128, 300,
                "digits (20% val), MLP 1x128 dropout .2, Adam, bs 128, 300 steps",
            )  # fmt: skip
        return Task(
            name, *_split(d.data, d.target, True, seed=14), _CNNPool, adamw, ce, 64, 300,
            "digits, CNN 2x(conv 3x3 + maxpool) + linear, AdamW, bs 64, 300 steps",
        )  # fmt: skip
    if name == "sine_gru_rmsprop":
        return Task(
            name, *_seq_split(*_sines()), _GRU, rms, ce, 32, 300,
            "noisy sines (len 20, 3 frequencies), GRU(24), RMSprop, bs 32, 300 steps",
        )  # fmt: skip
    if name == "blobs_bn_sgd":
        x, y = D.make_blobs(
            n_samples=3000, n_features=8, centers=5, cluster_std=3.0, random_state=15
        )
        return Task(
            name, *_split(x, y, True), lambda: mlp(8, 5, [64, 64], bn=True), sgd, ce, 128, 500,
            "make_blobs 5 cls (sd 3), MLP 2x64 BatchNorm1d, SGD, bs 128, 500 steps",
        )  # fmt: skip
    if name == "reg_mlp_adamw":
        x, y = D.make_regression(
            n_samples=2000, n_features=20, n_informative=10, noise=20.0, random_state=16
        )
        return Task(
            name, *_split(x, y, False), lambda: mlp(20, 1, [64, 64]), adamw, mse, 32, 300,
            "make_regression 20 feat (noise 20), MLP 2x64, AdamW, bs 32, 300 steps",
        )  # fmt: skip
    if name == "iris_mlp_rmsprop":
        d = D.load_iris()
        return Task(
            name, *_split(d.data, d.target, True, val_frac=0.3, seed=17),
            lambda: mlp(4, 3, [32]), rms, ce, 32, 500,
            "iris (30% val), MLP 1x32 ReLU, RMSprop, bs 32, 500 steps",
        )  # fmt: skip
    if name == "sinreg_tanh_adam":
        rng = np.random.default_rng(18)
        x = rng.uniform(-2, 2, size=(1500, 1))
        y = np.sin(3 * x[:, 0]) + 0.2 * rng.normal(size=1500)
        return Task(
            name, *_split(x, y, False), lambda: mlp(1, 1, [32] * 3, act=nn.Tanh), adam, mse,
            64, 500, "1-d regression sin(3x) + noise .2, MLP 3x32 tanh, Adam, bs 64, 500 steps",
        )  # fmt: skip
    raise ValueError(f"name must be one of {', '.join(TASKS)}, got {name!r}")


TASKS = (
    "clf3_mlp_sgdm",
    "digits_drop_adam",
    "digits_cnnpool_adamw",
    "sine_gru_rmsprop",
    "blobs_bn_sgd",
    "reg_mlp_adamw",
    "iris_mlp_rmsprop",
    "sinreg_tanh_adam",
)
QUICK = ("clf3_mlp_sgdm", "blobs_bn_sgd", "sinreg_tanh_adam")


# ----------------------------------------------------------------------------- run


def report(out: dict[str, Any]) -> None:
    grid, seeds = out["grid"], out["seeds"]
    rows = scored(out)
    print(
        f"# finder validation set V ({out['date']}, finder {out['finder_rev']}): "
        f"{len(out['tasks'])} tasks, seeds {seeds}, grid {len(grid)} LRs in [1e-5, 10], "
        f"hit = mean loss <= {HIT:.2f} x oracle"
    )
    print("\n## tasks")
    for name, rec in out["tasks"].items():
        info = ", ".join(
            f"seed {s}: {x['stop_reason']} at {x['stop_lr']:.2e}, lr_min {x['lr_min']:.2e}"
            + ("" if x["reliable"] else " unreliable")
            for s, x in zip(seeds, rec["sweeps"])
        )
        print(f"- {name}: {rec['desc']} ({info})")
    print("\n## grid curves: mean loss / oracle loss per LR (* = within 10%, div = diverged)")
    print(f"{'log10 lr':>30} " + " ".join(f"{math.log10(g):5.1f}" for g in grid))
    for x in rows:
        tag = f"{x['task']} {'const' if x['use'] == 'constant' else '1cyc'}"
        print(f"{tag:>30} " + fmt_curve(x["means"], x["oracle_loss"]))
        print(f"{'':>30}   {x['key']} at log10 {math.log10(x['lr']):+.2f}")
    for use, label in USES:
        print(f"\n## use: {use} (lrkit {label}, trained)")
        print(
            f"| task | oracle lr | oracle loss | hit band log10 lr | {label} | loss | ratio | hit "
            "| log10(lr/oracle) | ~ratio (interp.) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for x in (x for x in rows if x["use"] == use):
            print(
                f"| {x['task']} | {x['oracle_lr']:.2e} | {x['oracle_loss']:.4f} | "
                f"[{x['band'][0]:+.2f}, {x['band'][1]:+.2f}] | {x['lr']:.2e} | {x['loss']:.4f} | "
                f"{x['ratio']:.2f} | {'✓' if x['hit'] else '✗'} | {x['dlog']:+.2f} | "
                f"{x['interp_ratio']:.2f} |"
            )
    print("\n## hits of the current rule (trained)")
    print("| use | hits | mean log10(lr/oracle) | sd | median ratio |")
    print("|---|---|---|---|---|")
    for use, _ in USES:
        rs = [x for x in rows if x["use"] == use]
        d = [x["dlog"] for x in rs]
        print(
            f"| {use} | {sum(x['hit'] for x in rs)}/{len(rs)} | {np.mean(d):+.2f} | "
            f"{np.std(d):.2f} | {np.median([x['ratio'] for x in rs]):.2f} |"
        )
    print("\n## the peers' rules on the same sweeps (not trained: ~ratio read off the grid)")
    print("| use | " + " | ".join(f"{r} hits ~" for r in PEER_RULES) + " |")
    print("|---|" + "---|" * len(PEER_RULES))
    for use, _ in USES:
        rs = [x for x in rows if x["use"] == use]
        hits = [f"{sum(x['peers'][r][1] <= HIT for x in rs)}/{len(rs)}" for r in PEER_RULES]
        print(f"| {use} | " + " | ".join(hits) + " |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 tasks, 13-point grid")
    ap.add_argument("--tasks", default=None, help="comma-separated task names")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--grid", type=int, default=25, help="number of grid LRs in [1e-5, 10]")
    ap.add_argument("--json", default="/tmp/val/validation.json", help="write everything here")
    ap.add_argument("--rescore", default=None, help="only print the report of this JSON file")
    args = ap.parse_args(argv)
    if args.rescore:
        with open(args.rescore) as f:
            report(json.load(f))
        return 0
    torch.set_num_threads(1)
    tasks = list(QUICK if args.quick else TASKS)
    if args.quick:
        args.grid = min(args.grid, 13)
    if args.tasks:
        tasks = args.tasks.split(",")
    grid = [float(v) for v in np.logspace(-5, 1, args.grid)]
    t0 = time.perf_counter()
    out = run_set(
        make_task,
        tasks,
        seeds=list(range(args.seeds)),
        grid=grid,
        seed_bases=(500, 900, 700),
        json_path=args.json,
    )
    report(out)
    print(f"\n(total {time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
