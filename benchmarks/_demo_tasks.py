"""The "T" task set of the finder benchmarks: nine small PyTorch tasks on scikit-learn's
bundled data and synthetic data (no download), built on :mod:`lrkit.torch.demo`.

    from _demo_tasks import TASKS, make_task
    task = make_task("seq_gru_rmsprop", seed=0)   # a lrkit.torch.demo.DemoTask
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from lrkit.torch import demo
from lrkit.torch.demo import DemoTask, digits_data, mlp, split_arrays, to_tensors

__all__ = ["TASKS", "make_task"]


class _CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 16, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.view(-1, 1, 8, 8))


class _GRU(nn.Module):
    def __init__(self, n_in: int = 1, hidden: int = 32, n_out: int = 2) -> None:
        super().__init__()
        self.gru = nn.GRU(n_in, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1])


def _sequences(seed: int, n: int = 1600, length: int = 16) -> tuple[torch.Tensor, ...]:
    """Sequence task: is the sum of the first half larger than the sum of the second half?"""
    rng = np.random.default_rng(1000 + seed)
    x = rng.normal(size=(n, length, 1)).astype(np.float32)
    y = (x[:, : length // 2, 0].sum(1) > x[:, length // 2 :, 0].sum(1)).astype(np.int64)
    nv = n // 4
    return to_tensors((x[nv:], y[nv:], x[:nv], y[:nv]), classification=True)


def _regression(seed: int, which: str) -> tuple[torch.Tensor, ...]:
    if which == "diabetes":
        from sklearn.datasets import load_diabetes

        d = load_diabetes()
        x, y = d.data.astype(np.float64), d.target.astype(np.float64)
    else:  # synthetic: y = sin(x.w) + 0.5 (x.v)^2 + noise
        rng = np.random.default_rng(2000 + seed)
        x = rng.normal(size=(2000, 10))
        w, v = rng.normal(size=10) / 3, rng.normal(size=10) / 3
        y = np.sin(x @ w * 2) + 0.5 * (x @ v) ** 2 + 0.1 * rng.normal(size=2000)
    xt, yt, xv, yv = split_arrays(x, y=y, seed=seed)
    mu, sd = yt.mean(), yt.std()
    return to_tensors(
        (xt, ((yt - mu) / sd)[:, None], xv, ((yv - mu) / sd)[:, None]), classification=False
    )


TASKS: tuple[str, ...] = (
    "digits_mlp_sgd",
    "digits_mlp_adam",
    "digits_cnn_adamw",
    "seq_gru_rmsprop",
    "digits_bn_sgd",
    "diabetes_mlp_adam",
    "wine_mlp_rmsprop",
    "synth_reg_sgd",
    "cancer_bn_adamw",
)


#: the regression tasks: (data, optimizer class), each an MLP with 64 hidden units, MSE loss
_REGRESSION: dict[str, tuple[str, type[torch.optim.Optimizer]]] = {
    "diabetes_mlp_adam": ("diabetes", torch.optim.Adam),
    "synth_reg_sgd": ("synthetic", torch.optim.SGD),
}


def make_task(name: str, seed: int = 0, batch_size: int = 32) -> DemoTask:
    """One of the small tasks in ``TASKS``."""
    ce = nn.functional.cross_entropy
    mse = nn.functional.mse_loss
    if name in demo.TASKS:
        return demo.make_task(name, seed=seed, batch_size=batch_size)
    if name in ("digits_cnn_adamw", "digits_bn_sgd"):
        data = digits_data(seed)
        mf: Callable[[], nn.Module]
        of: Callable[[Any, float], torch.optim.Optimizer]
        if name == "digits_cnn_adamw":
            mf = _CNN
            of = lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=1e-2)  # noqa: E731
        else:
            mf = lambda: mlp(64, n_out=10, hidden=64, bn=True)  # noqa: E731
            of = lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True)  # noqa: E731
        return DemoTask(name, *data, mf, of, ce, batch_size, seed)
    if name == "seq_gru_rmsprop":
        return DemoTask(
            name,
            *_sequences(seed),
            _GRU,
            lambda p, lr: torch.optim.RMSprop(p, lr=lr),
            ce,
            batch_size,
            seed,
        )
    if name in _REGRESSION:
        which, opt = _REGRESSION[name]
        return DemoTask(
            name,
            *_regression(seed, which),
            lambda: mlp(10, n_out=1, hidden=64),
            lambda p, lr: opt(p, lr=lr),
            mse,
            batch_size,
            seed,
            classification=False,
        )
    if name in ("wine_mlp_rmsprop", "cancer_bn_adamw"):
        from sklearn.datasets import load_breast_cancer, load_wine

        d = load_wine() if name == "wine_mlp_rmsprop" else load_breast_cancer()
        arrays = split_arrays(d.data.astype(np.float64), y=d.target, seed=seed)
        data = to_tensors(arrays, classification=True)
        n_in, n_out = data[0].shape[1], int(d.target.max()) + 1
        if name == "wine_mlp_rmsprop":
            mf = lambda: mlp(n_in, n_out=n_out, hidden=32)  # noqa: E731
            of = lambda p, lr: torch.optim.RMSprop(p, lr=lr)  # noqa: E731
        else:
            mf = lambda: mlp(n_in, n_out=n_out, hidden=32, bn=True)  # noqa: E731
            of = lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=1e-2)  # noqa: E731
        return DemoTask(name, *data, mf, of, ce, min(batch_size, 16), seed)
    raise ValueError(f"name must be one of {', '.join(repr(t) for t in TASKS)}, got {name!r}")
