"""PyTorch tasks for :func:`lrkit.tune.tune`: a generic builder and the built-in demo."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .. import _renamed
from .. import _validate as V
from .._imports import require
from .._runtime import one_pass
from ..schedules import Schedule
from ._space import MIN_TOTAL_STEPS
from ._task import Task

__all__ = ["demo_task", "torch_task"]


class _Diverged(Exception):
    """Raised inside a trial to stop training at a non-finite validation loss."""


def torch_task(
    model_factory: Callable[[], Any],
    *,
    loss_fn: Callable[..., Any],
    data: Any = _renamed.UNSET,
    val_data: Any = _renamed.UNSET,
    epochs: int = 5,
    optimizer: Callable[[Any, float], Any] | None = None,
    steps_per_epoch: int | None = None,
    evaluate: Callable[[Any], float] | None = None,
    name: str = "torch",
    range_test_kwargs: dict[str, Any] | None = None,
    num_threads: int | None = None,
    seed: int | None = 0,
    train_data: Any = _renamed.UNSET,
) -> Task:
    """A :class:`Task` that trains ``model_factory()`` for ``epochs`` epochs over
    ``data`` (``(x, y)`` batches; a re-iterable or a zero-argument factory of one; the name
    :func:`lrkit.torch.find_lr` and :func:`lrkit.torch.fit` give it, ``train_data=`` still works
    with a ``DeprecationWarning``),
    stepping an :func:`lrkit.torch.scheduler` once per batch, and reports the validation loss
    (mean of ``loss_fn(model(x), y)`` over ``val_data``, or ``evaluate(model)``) after each
    epoch. A trial trains ``epochs x steps_per_epoch`` steps (at least 10), the
    ``total_steps`` of its schedule. ``optimizer(params, lr)`` defaults to SGD with momentum
    0.9. The range test is
    :func:`lrkit.torch.find_lr` on a fresh model (``range_test_kwargs`` go to it).
    ``num_threads`` sets torch's intra-op threads while a trial or the range test runs (the
    previous setting is restored afterwards); 1 is much faster for tiny models on busy CPUs.
    ``seed``: the range test and every trial build and train their model after
    :func:`lrkit.torch.seed_all` (``seed``), so every trial starts from the same weights and
    batch order (trials differ by their schedule only, a retried trial repeats its run, and
    a search with the same sampler seed is the same search); the global RNG states are put
    back afterwards. ``None``: the RNGs are left as they are (each trial draws its own)."""
    torch = require("torch", "torch", feature="lrkit.tune.torch_task")

    from .._runtime import preserved_rng
    from ..torch import evaluate as evaluate_batches
    from ..torch import find_lr, fit, scheduler, seed_all

    if isinstance(model_factory, torch.nn.Module) or not callable(model_factory):
        what = (
            f"a {type(model_factory).__name__} instance"
            if isinstance(model_factory, torch.nn.Module)
            else repr(model_factory)
        )
        raise ValueError(
            "model_factory must be a zero-argument callable that builds a fresh model (every "
            f"trial trains its own), got {what}: pass e.g. lambda: MyModel()"
        )
    V.takes("model_factory", model_factory, "model_factory() -> model", 0)
    V.loss_callable(loss_fn)
    V.optional_callable("optimizer", optimizer, "optimizer(params, lr) -> optimizer", 2)
    V.optional_callable("evaluate", evaluate, "evaluate(model) -> float", 1)
    data = _renamed.keyword(
        "lrkit.tune.torch_task()", "train_data", "data", train_data, data, default=_renamed.UNSET
    )
    for what, given in (("data", data), ("val_data", val_data)):
        if given is _renamed.UNSET:
            raise TypeError(f"torch_task() missing 1 required keyword-only argument: {what!r}")
    if val_data is None and evaluate is None:
        raise ValueError(
            "val_data must be the validation (x, y) batches that score every epoch, or pass "
            "evaluate=, a function evaluate(model) -> float, got None"
        )
    for what, source in (("data", data), ("val_data", val_data)):
        if what == "val_data" and evaluate is not None:
            continue  # evaluate(model) scores the trials: val_data is not read
        if hasattr(source, "__next__"):  # an iterator (a generator): read once, then empty
            raise ValueError(
                f"{what} must be re-iterable (a list, a DataLoader) or a zero-argument factory "
                f"of one, got a {type(source).__name__}, which can be read only once (every "
                "epoch of every trial reads the data again)"
            )
        if isinstance(source, (list, tuple)) and not source:  # (a loader may not know its len)
            raise ValueError(f"{what} must hold at least one (x, y) batch, got an empty "
                             f"{type(source).__name__}")  # fmt: skip
    epochs = V.integer("epochs", epochs, 1)
    make_opt = optimizer or (lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9))
    if steps_per_epoch is None:
        try:
            steps_per_epoch = len(one_pass(data))  # type: ignore[arg-type]
        except TypeError:
            raise ValueError("steps_per_epoch must be given when data has no len()") from None
    spe = V.integer("steps_per_epoch", steps_per_epoch, 1)
    if not MIN_TOTAL_STEPS <= epochs * spe <= V.MAX_STEPS:  # the steps its schedule spans
        bound = f"at least {MIN_TOTAL_STEPS}" if epochs * spe < MIN_TOTAL_STEPS else "at most 2**53"
        raise ValueError(
            f"epochs x steps_per_epoch (the steps a trial trains, which its schedule spans) "
            f"must be {bound}, got {epochs} x {spe} = {epochs * spe}"
        )
    threads = None if num_threads is None else V.integer("num_threads", num_threads, 1)
    seed = None if seed is None else V.seed("seed", seed)

    def set_up(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            before = torch.get_num_threads()
            if threads is not None:
                torch.set_num_threads(threads)
            try:
                if seed is None:
                    return fn(*args)
                # a loader's own generator too: every trial draws the same batches
                with preserved_rng(import_torch=True, data=(data, val_data)):
                    seed_all(seed)
                    return fn(*args)
            finally:
                if threads is not None:
                    torch.set_num_threads(before)

        return run

    def val_loss(model: Any) -> float:
        if evaluate is not None:
            return float(evaluate(model))
        try:
            return float(evaluate_batches(model, loss_fn=loss_fn, data=one_pass(val_data))[0])
        except ValueError as exc:  # no batch at all: said of val_data (fit's data is "data")
            if type(exc) is ValueError and str(exc).startswith("data must yield at least one"):
                raise ValueError(f"val_data {str(exc)[len('data ') :]}") from None
            raise

    def train(schedule: Schedule, report: Callable[[int, float], None]) -> float:
        model = model_factory()
        opt = make_opt(model.parameters(), 1e-3)
        value = [math.nan]

        def on_epoch(epoch: int) -> None:
            value[0] = val_loss(model)
            if not math.isfinite(value[0]):
                raise _Diverged
            report(epoch, value[0])

        try:
            hist = fit(
                model,
                optimizer=opt,
                loss_fn=loss_fn,
                data=lambda: one_pass(data),
                epochs=epochs,
                steps_per_epoch=spe,
                schedule=scheduler(opt, schedule),
                on_epoch=on_epoch,
            )
        except _Diverged:
            return math.inf
        return math.inf if hist.diverged else value[0]

    def range_test() -> Any:
        model = model_factory()
        opt = make_opt(model.parameters(), 1e-3)
        kwargs: dict[str, Any] = {"start_lr": 1e-7, "end_lr": 10.0, "num_iter": 100, "warn": False}
        kwargs.update(range_test_kwargs or {})
        return find_lr(model, opt, loss_fn, one_pass(data), **kwargs)

    return Task(
        train=set_up(train),
        total_steps=epochs * spe,
        range_test=set_up(range_test),
        name=name,
        metric="val_loss",
    )


#: The demo task of ``lrkit tune --demo``.
DEMO_TASK = "digits_mlp_sgd"


def demo_task(
    name: Any = DEMO_TASK, *, epochs: int = 5, seed: int = 0, batch_size: int = 32
) -> Task:
    """A built-in task from :mod:`lrkit.torch.demo` (scikit-learn data, small models), by name
    or as a ``DemoTask``: every trial starts from the same initial weights and sees the same
    batches, so trials differ only by the schedule. Metric: the validation loss (minimize).
    ``epochs`` defaults to 5, as in :func:`torch_task` (``lrkit tune --demo`` trains 4)."""
    require("torch", "torch", feature="lrkit.tune.demo_task")
    from ..torch import demo

    if isinstance(name, demo.DemoTask):
        t = name
        name = t.name
    else:
        t = demo.make_task(name, seed=seed, batch_size=batch_size)
    spe = len(t.x_train) // t.batch_size

    def evaluate(model: Any) -> float:
        return float(demo.evaluate(model, task=t)[0])

    return torch_task(
        t.make_model,
        loss_fn=t.loss_fn,
        data=lambda: t.train_batches(),
        val_data=t.val_batches,
        epochs=epochs,
        optimizer=lambda p, lr: t.optimizer_fn(p, lr),
        steps_per_epoch=spe,
        evaluate=evaluate,
        name=f"demo:{name}",
        num_threads=1,
    )
