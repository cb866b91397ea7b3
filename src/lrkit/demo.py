"""Built-in demo tasks (no download): small PyTorch models on scikit-learn's bundled data.

Used by ``lrkit find --demo`` and reusable by other commands and benchmarks::

    from lrkit.demo import digits_task, train, evaluate

    task = digits_task(seed=0, batch_size=32)   # 8x8 digits, MLP, Adam, cross-entropy
    model = task.make_model()                    # same seed -> same initial weights
    opt = task.make_optimizer(model, lr=1e-3)
    history = train(model, opt, task, steps=300, lr_schedule=None)  # or a step -> lr callable
    val_loss, val_acc = evaluate(model, task)

A :class:`DemoTask` holds the tensors (``x_train``, ``y_train``, ``x_val``, ``y_val``), the
``loss_fn``, ``make_model()`` and ``make_optimizer(model, lr)``; ``task.train_batches()`` is a
re-iterable of shuffled ``(x, y)`` batches (a fresh epoch each pass, drawn from its own
``torch.Generator`` exposed as ``.generator``), ``task.val_batches()`` a list of batches.
``accuracy`` is ``nan`` for regression tasks. Requires ``torch`` and ``scikit-learn``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["Batches", "DemoTask", "digits_task", "evaluate", "make_task", "train"]


class Batches:
    """Shuffled mini-batches of ``(x, y)``; each iteration is one epoch in a new order."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int = 0) -> None:
        self.x, self.y, self.batch_size = x, y, int(batch_size)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(len(self.x), generator=self.generator)
        for i in range(0, len(perm) - self.batch_size + 1, self.batch_size):
            idx = perm[i : i + self.batch_size]
            yield self.x[idx], self.y[idx]


@dataclass
class DemoTask:
    """A small supervised task: data tensors, model and optimizer factories, loss."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    model_fn: Callable[[], nn.Module]
    optimizer_fn: Callable[[Any, float], torch.optim.Optimizer]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    batch_size: int = 32
    seed: int = 0
    classification: bool = True
    info: dict[str, Any] = field(default_factory=dict)

    def make_model(self) -> nn.Module:
        """A fresh model; its initial weights depend only on ``seed``."""
        state = torch.get_rng_state()
        torch.manual_seed(self.seed)
        try:
            return self.model_fn()
        finally:
            torch.set_rng_state(state)

    def make_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        return self.optimizer_fn(model.parameters(), lr)

    def train_batches(self, seed: int | None = None) -> Batches:
        return Batches(
            self.x_train, self.y_train, self.batch_size, self.seed if seed is None else seed
        )

    def val_batches(self, batch_size: int = 256) -> list[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x_val)
        return [
            (self.x_val[i : i + batch_size], self.y_val[i : i + batch_size])
            for i in range(0, n, batch_size)
        ]


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    task: DemoTask,
    steps: int,
    lr_schedule: Any = None,
    *,
    seed: int | None = None,
) -> dict[str, list[float]]:
    """Train for ``steps`` optimizer steps on shuffled batches (epochs repeat as needed), with
    :func:`lrkit.torch.fit` (the LR driven by :func:`lrkit.torch.scheduler`).

    ``lr_schedule`` (an lrkit schedule, spec string or dict) gives the LR of step ``k``;
    ``None`` keeps the optimizer's LR. Returns ``{"loss": [...], "lr": [...]}`` per step.
    Stops early (keeping what ran) at the first NaN/inf loss."""
    from .torch import fit

    hist = fit(
        model,
        optimizer=optimizer,
        loss_fn=task.loss_fn,
        data=task.train_batches(seed),
        steps=steps,
        schedule=lr_schedule,
    )
    return {"loss": hist.losses, "lr": hist.lrs}


def evaluate(model: nn.Module, task: DemoTask) -> tuple[float, float]:
    """Validation ``(loss, accuracy)`` in eval mode (accuracy ``nan`` for regression). The
    model's train/eval flags are restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            out = model(task.x_val)
            loss = float(task.loss_fn(out, task.y_val))
            acc = (
                float((out.argmax(1) == task.y_val).float().mean())
                if task.classification
                else math.nan
            )
    finally:
        for m, flag in modes:
            m.training = flag
    if not math.isfinite(loss):
        loss = math.inf
    return loss, acc


# ----------------------------------------------------------------------------- tasks


def _split(x: np.ndarray, y: np.ndarray, seed: int, val_frac: float = 0.25) -> tuple[Any, ...]:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    n_val = int(len(x) * val_frac)
    va, tr = perm[:n_val], perm[n_val:]
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
    x = (x - mu) / sd
    return x[tr], y[tr], x[va], y[va]


def _tensors(xt: Any, yt: Any, xv: Any, yv: Any, cls: bool) -> tuple[torch.Tensor, ...]:
    ydt = torch.long if cls else torch.float32
    return (
        torch.as_tensor(xt, dtype=torch.float32),
        torch.as_tensor(yt, dtype=ydt),
        torch.as_tensor(xv, dtype=torch.float32),
        torch.as_tensor(yv, dtype=ydt),
    )


def _digits(seed: int) -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return _tensors(*_split(d.data.astype(np.float64), d.target, seed), cls=True)


def digits_task(seed: int = 0, batch_size: int = 32) -> DemoTask:
    """scikit-learn's 8x8 digits (1347 train / 449 val), an MLP 64-128-64-10, Adam."""
    xt, yt, xv, yv = _digits(seed)
    return DemoTask(
        name="digits_mlp_adam",
        x_train=xt,
        y_train=yt,
        x_val=xv,
        y_val=yv,
        model_fn=lambda: nn.Sequential(
            nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
        ),
        optimizer_fn=lambda p, lr: torch.optim.Adam(p, lr=lr),
        loss_fn=nn.functional.cross_entropy,
        batch_size=batch_size,
        seed=seed,
    )


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
    return _tensors(x[nv:], y[nv:], x[:nv], y[:nv], cls=True)


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
    xt, yt, xv, yv = _split(x, y, seed)
    mu, sd = yt.mean(), yt.std()
    return _tensors(xt, ((yt - mu) / sd)[:, None], xv, ((yv - mu) / sd)[:, None], cls=False)


def _mlp(n_in: int, n_out: int, hidden: int = 64, bn: bool = False, depth: int = 2) -> nn.Module:
    layers: list[nn.Module] = []
    d = n_in
    for _ in range(depth):
        layers.append(nn.Linear(d, hidden))
        if bn:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(nn.ReLU())
        d = hidden
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


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


def make_task(name: str, seed: int = 0, batch_size: int = 32) -> DemoTask:
    """One of the small tasks in ``TASKS`` (used by ``benchmarks/finder_quality.py``)."""
    ce = nn.functional.cross_entropy
    mse = nn.functional.mse_loss
    sgdm = lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9)  # noqa: E731
    if name == "digits_mlp_adam":
        t = digits_task(seed, batch_size)
        return t
    if name in ("digits_mlp_sgd", "digits_cnn_adamw", "digits_bn_sgd"):
        data = _digits(seed)
        if name == "digits_mlp_sgd":
            mf: Callable[[], nn.Module] = lambda: _mlp(64, 10, 128)  # noqa: E731
            of: Callable[[Any, float], torch.optim.Optimizer] = sgdm
        elif name == "digits_cnn_adamw":
            mf = _CNN
            of = lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=1e-2)  # noqa: E731
        else:
            mf = lambda: _mlp(64, 10, 64, bn=True)  # noqa: E731
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
    if name == "diabetes_mlp_adam":
        return DemoTask(
            name,
            *_regression(seed, "diabetes"),
            lambda: _mlp(10, 1, 64),
            lambda p, lr: torch.optim.Adam(p, lr=lr),
            mse,
            batch_size,
            seed,
            classification=False,
        )
    if name == "synth_reg_sgd":
        return DemoTask(
            name,
            *_regression(seed, "synthetic"),
            lambda: _mlp(10, 1, 64),
            lambda p, lr: torch.optim.SGD(p, lr=lr),
            mse,
            batch_size,
            seed,
            classification=False,
        )
    if name in ("wine_mlp_rmsprop", "cancer_bn_adamw"):
        from sklearn.datasets import load_breast_cancer, load_wine

        d = load_wine() if name == "wine_mlp_rmsprop" else load_breast_cancer()
        data = _tensors(*_split(d.data.astype(np.float64), d.target, seed), cls=True)
        n_in, n_out = data[0].shape[1], int(d.target.max()) + 1
        if name == "wine_mlp_rmsprop":
            mf = lambda: _mlp(n_in, n_out, 32)  # noqa: E731
            of = lambda p, lr: torch.optim.RMSprop(p, lr=lr)  # noqa: E731
        else:
            mf = lambda: _mlp(n_in, n_out, 32, bn=True)  # noqa: E731
            of = lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=1e-2)  # noqa: E731
        return DemoTask(name, *data, mf, of, ce, min(batch_size, 16), seed)
    raise ValueError(f"name must be one of {', '.join(repr(t) for t in TASKS)}, got {name!r}")
