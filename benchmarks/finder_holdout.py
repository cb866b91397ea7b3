"""Second task set of the LR finder ("H"): 8 tasks unlike those of finder_quality.py ("T").

These tasks are now part of the finder's task zoo (``benchmarks/zoo/``, set "H"), on which
the default rule (``"budget_edge"``) is fitted: its out-of-fold numbers are in
``benchmarks/finder_zoo.py``; the numbers of this script, with the shipped coefficients, are
in-sample. What follows describes the rule this script was written for.

This script was written as a held-out check of a rule tuned on ``benchmarks/finder_quality.py``
(tasks in ``_demo_tasks.py``). The current ``"lrkit"`` divisors (``lr_min / 10``, ``lr_min / 3``)
were then chosen on the UNION of both sets, so neither is held out any more: its numbers here
are in-sample (the out-of-fold numbers of the shipped rule are in ``docs/finder.md`` and
``docs/finder-zoo.md``). The tasks differ from the
tuning set in datasets, architectures, optimizers, batch sizes and budgets:

==========================  ===============================  ==========  ====  =====
task                        model                            optimizer   bs    steps
==========================  ===============================  ==========  ====  =====
moons_deep_sgd              make_moons, MLP 4x64 ReLU        SGD         32    500
clf4_dropout_adam           make_classification (4 cls),     Adam        128   300
                            MLP 2x256 + dropout 0.3
digits_cnnbn_sgdm           digits, CNN 2 conv + BatchNorm   SGD m=0.9   64    300
seq_lstm_adam               synthetic sequences (3 cls),     Adam        64    300
                            LSTM(32)
friedman_bn_rmsprop         make_friedman1 (regression),     RMSprop     16    500
                            MLP 2x64 + BatchNorm
circles_wide_adamw          make_circles, MLP 1x512          AdamW wd    16    200
cancer_deep_sgdm            breast cancer, MLP 3x64 tanh     SGD m=0.9   32    200
digits_dropout_rmsprop      digits, MLP 1x256 + dropout 0.5  RMSprop     128   200
==========================  ===============================  ==========  ====  =====

For each task and seed (init, batch order and dropout depend on the seed; the data split does
not):

* ``lrkit.torch.find_lr`` with its defaults (start 1e-7, end 10, 100 steps) on the training
  batches (the first 100 batches the training run would see) gives ``suggestion`` (trained at
  a constant LR) and ``max_lr`` (trained with
  ``schedules.onecycle(max_lr, total_steps=steps)`` driven by
  ``lrkit.torch.scheduler``), plus the other rules' LRs (``result.suggest(name)``);
* a grid oracle trains the same budget at ~20 log-spaced LRs in [1e-5, 3], constant and
  one-cycle; score = final validation loss (a diverged run scores ``DIVERGED``); the oracle is
  the best mean-over-seeds loss on the grid.

A hit is a mean (over seeds) loss within 10% of the oracle's. The alternative rules are not
trained: their ratio is read off the grid by interpolating each seed's log-loss in log-LR
(marked ``~``; next to a diverged grid point the nearer point is taken). Everything (sweeps,
grid, trained results) goes to ``--json`` so that other rules can be re-scored offline.

    python benchmarks/finder_holdout.py                  # all 8 tasks, ~5 min on 1 core
    python benchmarks/finder_holdout.py --quick          # 3 tasks, 10-point grid, ~1 min
    python benchmarks/finder_holdout.py --json /tmp/finder_holdout.json
"""

from __future__ import annotations

import argparse
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


def _split(x: np.ndarray, y: np.ndarray, cls: bool, val_frac: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    nv = int(len(x) * val_frac)
    va, tr = perm[:nv], perm[nv:]
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
    x = (x - mu) / sd
    if not cls:
        ym, ys = y[tr].mean(), y[tr].std()
        y = ((y - ym) / ys)[:, None]
    ydt = torch.long if cls else torch.float32
    return (
        torch.as_tensor(x[tr], dtype=torch.float32),
        torch.as_tensor(y[tr], dtype=ydt),
        torch.as_tensor(x[va], dtype=torch.float32),
        torch.as_tensor(y[va], dtype=ydt),
    )


class _CNNBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.view(-1, 1, 8, 8))


class _LSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(2, 32, batch_first=True)
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def _sequences(n: int = 2000, length: int = 18) -> tuple[np.ndarray, np.ndarray]:
    """Which third of the sequence holds the largest mean of (channel 0 - channel 1)?"""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, length, 2))
    d = (x[:, :, 0] - x[:, :, 1]).reshape(n, 3, length // 3).mean(2)
    return x, d.argmax(1)


def make_task(name: str) -> Task:
    from sklearn import datasets as D

    ce, mse = F.cross_entropy, F.mse_loss
    sgd = lambda p, lr: torch.optim.SGD(p, lr=lr)  # noqa: E731
    sgdm = lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9)  # noqa: E731
    adam = lambda p, lr: torch.optim.Adam(p, lr=lr)  # noqa: E731
    adamw = lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=0.05)  # noqa: E731
    rms = lambda p, lr: torch.optim.RMSprop(p, lr=lr)  # noqa: E731
    if name == "moons_deep_sgd":
        x, y = D.make_moons(n_samples=2000, noise=0.3, random_state=0)
        return Task(
            name, *_split(x, y, True), lambda: mlp(2, 2, [64] * 4), sgd, ce, 32, 500,
            "make_moons(noise .3), MLP 4x64 ReLU, SGD, bs 32, 500 steps",
        )  # fmt: skip
    if name == "clf4_dropout_adam":
        x, y = D.make_classification(
            n_samples=3000, n_features=20, n_informative=8, n_redundant=4, n_classes=4,
            n_clusters_per_class=2, class_sep=1.0, random_state=1,
        )  # fmt: skip
        return Task(
            name, *_split(x, y, True), lambda: mlp(20, 4, [256, 256], drop=0.3), adam, ce,
            128, 300, "make_classification 4 cls, MLP 2x256 dropout .3, Adam, bs 128, 300 steps",
        )  # fmt: skip
    if name in ("digits_cnnbn_sgdm", "digits_dropout_rmsprop"):
        d = D.load_digits()
        data = _split(d.data.astype(np.float64), d.target, True)
        if name == "digits_cnnbn_sgdm":
            return Task(
                name, *data, _CNNBN, sgdm, ce, 64, 300,
                "digits, CNN 2 conv + BatchNorm2d, SGD momentum .9, bs 64, 300 steps",
            )  # fmt: skip
        return Task(
            name, *data, lambda: mlp(64, 10, [256], drop=0.5), rms, ce, 128, 200,
            "digits, MLP 1x256 dropout .5, RMSprop, bs 128, 200 steps",
        )  # fmt: skip
    if name == "seq_lstm_adam":
        x, y = _sequences()
        nv = len(x) * 3 // 10
        data = tuple(
            torch.as_tensor(a, dtype=t)
            for a, t in (
                (x[nv:], torch.float32),
                (y[nv:], torch.long),
                (x[:nv], torch.float32),
                (y[:nv], torch.long),
            )
        )
        return Task(
            name, *data, _LSTM, adam, ce, 64, 300,
            "synthetic sequences (len 18, 2 ch, 3 cls), LSTM(32), Adam, bs 64, 300 steps",
        )  # fmt: skip
    if name == "friedman_bn_rmsprop":
        x, y = D.make_friedman1(n_samples=2000, n_features=10, noise=0.5, random_state=3)
        return Task(
            name, *_split(x, y, False), lambda: mlp(10, 1, [64, 64], bn=True), rms, mse, 16,
            500, "make_friedman1 regression, MLP 2x64 BatchNorm, RMSprop, bs 16, 500 steps",
        )  # fmt: skip
    if name == "circles_wide_adamw":
        x, y = D.make_circles(n_samples=1500, noise=0.2, factor=0.5, random_state=4)
        return Task(
            name, *_split(x, y, True), lambda: mlp(2, 2, [512]), adamw, ce, 16, 200,
            "make_circles(noise .2), MLP 1x512, AdamW wd .05, bs 16, 200 steps",
        )  # fmt: skip
    if name == "cancer_deep_sgdm":
        d = D.load_breast_cancer()
        return Task(
            name, *_split(d.data, d.target, True), lambda: mlp(30, 2, [64] * 3, act=nn.Tanh),
            sgdm, ce, 32, 200, "breast cancer, MLP 3x64 tanh, SGD momentum .9, bs 32, 200 steps",
        )  # fmt: skip
    raise ValueError(f"name must be one of {', '.join(TASKS)}, got {name!r}")


TASKS = (
    "moons_deep_sgd",
    "clf4_dropout_adam",
    "digits_cnnbn_sgdm",
    "seq_lstm_adam",
    "friedman_bn_rmsprop",
    "circles_wide_adamw",
    "cancer_deep_sgdm",
    "digits_dropout_rmsprop",
)
QUICK = ("moons_deep_sgd", "digits_cnnbn_sgdm", "circles_wide_adamw")


# ----------------------------------------------------------------------------- run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 tasks, 10-point grid")
    ap.add_argument("--tasks", default=None, help="comma-separated task names")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--grid", type=int, default=20, help="number of grid LRs in [1e-5, 3]")
    ap.add_argument("--json", default=None, help="write sweeps, grid and results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    tasks = list(QUICK if args.quick else TASKS)
    if args.quick:
        args.grid = min(args.grid, 10)
    if args.tasks:
        tasks = args.tasks.split(",")
    grid = [float(v) for v in np.logspace(-5, math.log10(3.0), args.grid)]
    t0 = time.perf_counter()
    out = run_set(
        make_task,
        tasks,
        seeds=list(range(args.seeds)),
        grid=grid,
        seed_bases=(1000, 3000, 2000),
        json_path=args.json,
    )
    report(out)
    print(f"\n(total {time.perf_counter() - t0:.0f}s)")
    return 0


def report(out: dict[str, Any]) -> None:
    grid, seeds = out["grid"], out["seeds"]
    rows = scored(out)
    print(
        f"# finder hold-out ({out['date']}, finder {out['finder_rev']}): {len(out['tasks'])} "
        f"tasks, seeds {seeds}, grid {len(grid)} LRs in [1e-5, 3], hit = mean loss <= "
        f"{HIT:.2f} x oracle"
    )
    print("\n## grid curves: mean loss / oracle loss per LR (* = within 10%, div = diverged)")
    print(f"{'log10 lr':>28} " + " ".join(f"{math.log10(g):5.1f}" for g in grid))
    for x in rows:
        tag = f"{x['task']} {'const' if x['use'] == 'constant' else '1cyc'}"
        print(f"{tag:>28} " + fmt_curve(x["means"], x["oracle_loss"]))
        lo, hi = x["band"]
        print(
            f"{'':>28}   {x['key']} at log10 {math.log10(x['lr']):+.2f} "
            f"(oracle {math.log10(x['oracle_lr']):+.2f}, band [{lo:+.2f}, {hi:+.2f}], "
            f"d={x['dlog']:+.2f})"
        )
    for use, label in USES:
        print(f"\n## use: {use} (lrkit {label})")
        print(
            "| task | oracle lr | oracle loss | band log10 lr | lrkit lr | loss | ratio | hit "
            "| log10(lr/oracle) |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for x in (x for x in rows if x["use"] == use):
            print(
                f"| {x['task']} | {x['oracle_lr']:.2e} | {x['oracle_loss']:.4f} | "
                f"[{x['band'][0]:+.2f}, {x['band'][1]:+.2f}] | {x['lr']:.2e} | {x['loss']:.4f} | "
                f"{x['ratio']:.2f} | {'✓' if x['hit'] else '✗'} | {x['dlog']:+.2f} |"
            )
    print("\n## other rules (not trained: ratio ~ interpolated on each seed's grid curve)")
    print(
        "| task | use | "
        + " | ".join(f"{r} lr / ~ratio" for r in PEER_RULES)
        + " | lrkit ~ratio (trained) |"
    )
    print("|---|---|" + "---|" * (len(PEER_RULES) + 1))
    for x in rows:
        cells = [
            f"{lr:.2e} / {r:.2f}{' ✓' if r <= HIT else ''}"
            for lr, r in (x["peers"][name] for name in PEER_RULES)
        ]
        print(
            f"| {x['task']} | {x['use']} | "
            + " | ".join(cells)
            + f" | {x['interp_ratio']:.2f} ({x['ratio']:.2f}) |"
        )
    print("\n## summary")
    print("| use | lrkit hits | mean log10(lr/oracle) | sd | " + " | ".join(PEER_RULES) + " |")
    print("|---|---|---|---|" + "---|" * len(PEER_RULES))
    for use, _ in USES:
        rs = [x for x in rows if x["use"] == use]
        d = [x["dlog"] for x in rs]
        alt = [f"{sum(x['peers'][r][1] <= HIT for x in rs)}/{len(rs)} ~" for r in PEER_RULES]
        print(
            f"| {use} | {sum(x['hit'] for x in rs)}/{len(rs)} | {np.mean(d):+.2f} | "
            f"{np.std(d):.2f} | " + " | ".join(alt) + " |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
