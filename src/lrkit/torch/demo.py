"""Built-in demo tasks (no download): small PyTorch models on scikit-learn's bundled data.

Used by ``lrkit find --demo``, ``lrkit compare --demo`` and ``lrkit tune --demo``::

    from lrkit.torch.demo import digits_task, train, evaluate

    task = digits_task(seed=0, batch_size=32)   # 8x8 digits, MLP, Adam, cross-entropy
    model = task.make_model()                    # same seed -> same initial weights
    opt = task.make_optimizer(model, lr=1e-3)
    history = train(model, optimizer=opt, task=task, steps=300, schedule=None)  # or a schedule
    val_loss, val_acc = evaluate(model, task=task)

A :class:`DemoTask` holds the tensors (``x_train``, ``y_train``, ``x_val``, ``y_val``), the
``loss_fn``, ``make_model()`` and ``make_optimizer(model, lr)``; ``task.train_batches()`` is a
re-iterable of shuffled ``(x, y)`` batches (a fresh epoch each pass, drawn from its own
``torch.Generator`` exposed as ``.generator``), ``task.val_batches()`` a list of batches.
``accuracy`` is ``nan`` for regression tasks. Requires ``torch`` and ``scikit-learn``
(``pip install 'lrkit[torch,demo]'``). :func:`make_task` builds one of ``TASKS`` by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _renamed
from .._imports import require
from .._runtime import preserved_rng

require("torch", "torch")  # without PyTorch: the one-line install hint
require("sklearn", "demo", feature="lrkit.torch.demo")

import torch
from torch import nn

from .. import _validate as V
from ._checks import check_module

__all__ = [
    "TASKS",
    "Batches",
    "DemoTask",
    "digits_data",
    "digits_task",
    "evaluate",
    "make_task",
    "mlp",
    "split_arrays",
    "to_tensors",
    "train",
]


class Batches:
    """Shuffled mini-batches of ``(x, y)``; each iteration is one epoch in a new order, of
    ``len(x) // batch_size`` full batches (the examples left over, fewer than ``batch_size``,
    are not used that epoch; ``len()`` counts the full batches). ``batch_size`` is an integer
    in ``[1, len(x)]`` and ``seed`` one in ``[0, 2**32 - 1]``."""

    def __init__(self, x: torch.Tensor, *, y: torch.Tensor, batch_size: int, seed: int = 0) -> None:
        self.batch_size = _batch_size(batch_size, len(x))
        self.x, self.y = x, y
        self.generator = torch.Generator().manual_seed(V.seed("seed", seed))

    def __len__(self) -> int:
        return len(self.x) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(len(self.x), generator=self.generator)
        for i in range(0, len(perm) - self.batch_size + 1, self.batch_size):
            idx = perm[i : i + self.batch_size]
            yield self.x[idx], self.y[idx]


def _batch_size(batch_size: Any, n: int) -> int:
    """``batch_size`` checked: an integer in ``[1, n]`` (``n`` training examples; a larger
    batch would leave no full batch to train on)."""
    return V.integer("batch_size", batch_size, 1, max(n, 1))


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
        """A fresh model; its initial weights depend only on ``seed``. Only the CPU generator is
        seeded (an accelerator's are left alone); the global generators are put back after."""
        with preserved_rng():
            torch.default_generator.manual_seed(self.seed)
            return self.model_fn()

    def make_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        return self.optimizer_fn(model.parameters(), lr)

    def train_batches(self, seed: int | None = None) -> Batches:
        return Batches(
            self.x_train,
            y=self.y_train,
            batch_size=self.batch_size,
            seed=self.seed if seed is None else seed,
        )

    def val_batches(self, batch_size: int = 256) -> list[tuple[torch.Tensor, torch.Tensor]]:
        batch_size = V.integer("batch_size", batch_size, 1)
        n = len(self.x_val)
        return [
            (self.x_val[i : i + batch_size], self.y_val[i : i + batch_size])
            for i in range(0, n, batch_size)
        ]


def _check_task(task: Any) -> None:
    if not isinstance(task, DemoTask):
        raise ValueError(
            f"task must be a DemoTask (make_task(name) or digits_task()), got {V.fmt(task)}"
        )


def train(
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer,
    task: DemoTask,
    steps: int,
    schedule: Any = None,
    seed: int | None = None,
    lr_schedule: Any = _renamed.UNSET,
) -> dict[str, list[float]]:
    """Train for ``steps`` optimizer steps on shuffled batches (epochs repeat as needed), with
    :func:`lrkit.torch.fit` (the LR driven by :func:`lrkit.torch.scheduler`).

    ``schedule`` (an lrkit schedule, spec string or dict) gives the LR of step ``k``;
    ``None`` keeps the optimizer's LR (``lr_schedule`` is its former name). Returns
    ``{"loss": [...], "lr": [...]}`` per step. Stops early (keeping what ran) at the first
    NaN/inf loss."""
    from ._train import fit

    schedule = _renamed.keyword(
        "lrkit.torch.demo.train()", "lr_schedule", "schedule", lr_schedule, schedule
    )
    _check_task(task)
    hist = fit(
        model,
        optimizer=optimizer,
        loss_fn=task.loss_fn,
        data=task.train_batches(seed),
        steps=steps,
        schedule=schedule,
    )
    return {"loss": hist.losses, "lr": hist.lrs}


def evaluate(model: nn.Module, *, task: DemoTask) -> tuple[float, float]:
    """Validation ``(loss, accuracy)`` in eval mode (accuracy ``nan`` for regression). The
    model's train/eval flags are restored afterwards."""
    _check_task(task)
    check_module(model)
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


def split_arrays(
    x: np.ndarray, *, y: np.ndarray, seed: int, val_frac: float = 0.25
) -> tuple[Any, ...]:
    """``(x_train, y_train, x_val, y_val)``: a random split (``val_frac`` held out, drawn with
    ``seed``), ``x`` standardized with the training part's mean and standard deviation."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    n_val = int(len(x) * val_frac)
    va, tr = perm[:n_val], perm[n_val:]
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
    x = (x - mu) / sd
    return x[tr], y[tr], x[va], y[va]


def to_tensors(arrays: tuple[Any, ...], *, classification: bool) -> tuple[torch.Tensor, ...]:
    """``(x_train, y_train, x_val, y_val)`` as tensors: inputs float32, targets int64 labels
    (``classification``) or float32."""
    xt, yt, xv, yv = arrays
    ydt = torch.long if classification else torch.float32
    return (
        torch.as_tensor(xt, dtype=torch.float32),
        torch.as_tensor(yt, dtype=ydt),
        torch.as_tensor(xv, dtype=torch.float32),
        torch.as_tensor(yv, dtype=ydt),
    )


def digits_data(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """scikit-learn's 8x8 digits as ``(x_train, y_train, x_val, y_val)`` (1348 / 449); the
    split is drawn with ``seed``, an integer in ``[0, 2**32 - 1]``."""
    seed = V.seed("seed", seed)
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    d = load_digits()
    arrays = split_arrays(d.data.astype(np.float64), y=d.target, seed=seed)
    return to_tensors(arrays, classification=True)


def digits_task(seed: int = 0, *, batch_size: int = 32) -> DemoTask:
    """scikit-learn's 8x8 digits (1348 train / 449 val), an MLP 64-128-64-10, Adam.
    ``seed``: an integer in ``[0, 2**32 - 1]``; ``batch_size``: one in ``[1, 1348]``."""
    xt, yt, xv, yv = digits_data(seed)
    batch_size = _batch_size(batch_size, len(xt))
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


def mlp(n_in: int, *, n_out: int, hidden: int = 64, bn: bool = False, depth: int = 2) -> nn.Module:
    """``depth`` hidden layers of ``hidden`` ReLU units (BatchNorm before each ReLU if ``bn``)."""
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


#: The built-in tasks by name: ``digits_mlp_adam`` (``lrkit find/compare --demo``) and
#: ``digits_mlp_sgd`` (``lrkit tune --demo``).
TASKS: tuple[str, ...] = ("digits_mlp_adam", "digits_mlp_sgd")


def make_task(name: str, *, seed: int = 0, batch_size: int = 32) -> DemoTask:
    """The built-in task ``name`` (one of ``TASKS``); ``seed`` and ``batch_size`` as in
    :func:`digits_task`."""
    if name == "digits_mlp_adam":
        return digits_task(seed, batch_size=batch_size)
    if name == "digits_mlp_sgd":
        xt, yt, xv, yv = digits_data(seed)
        batch_size = _batch_size(batch_size, len(xt))
        return DemoTask(
            name=name,
            x_train=xt,
            y_train=yt,
            x_val=xv,
            y_val=yv,
            model_fn=lambda: mlp(64, n_out=10, hidden=128),
            optimizer_fn=lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
            loss_fn=nn.functional.cross_entropy,
            batch_size=batch_size,
            seed=seed,
        )
    raise ValueError(f"name must be one of {', '.join(repr(t) for t in TASKS)}, got {V.fmt(name)}")
