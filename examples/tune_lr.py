"""Tune the learning rate and the schedule of a small PyTorch model with Optuna.

    python examples/tune_lr.py            # pip install 'lrkit[torch,tune]'; 12 trials on digits

The same objective runs from the command line on many machines sharing one study:

    lrkit tune examples.tune_lr:make_task --trials 30 \
        --storage postgresql://user@dbhost:5432/lrkit --study digits
"""

from __future__ import annotations

import optuna
import torch
from sklearn.datasets import load_digits
from torch import nn

from lrkit import schedules
from lrkit.tune import torch_task, tune


def make_task():  # the target of `lrkit tune examples.tune_lr:make_task`
    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=gen)
    tr, va = perm[:1400], perm[1400:]
    train = [(x[tr[i : i + 50]], y[tr[i : i + 50]]) for i in range(0, 1400, 50)]
    val = [(x[va], y[va])]

    def model():
        torch.manual_seed(0)  # every trial starts from the same weights
        return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    return torch_task(
        model,
        loss_fn=nn.functional.cross_entropy,
        data=train,
        val_data=val,
        epochs=4,
        num_threads=1,
        name="digits",
    )


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = tune(make_task(), n_trials=12, seed=0, progress=True)
    lo, hi = result.lr_range
    print(f"range test bounded the peak LR to [{lo:.3g}, {hi:.3g}]")
    print(result.table(5))
    print("best schedule:", result.best_spec)
    assert schedules.parse(result.best_spec) == result.best_schedule
