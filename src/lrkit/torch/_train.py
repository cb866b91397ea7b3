"""The one PyTorch training loop of lrkit's workflows, driven by :func:`lrkit.torch.scheduler`.

:func:`fit` trains ``model`` on ``(x, y)`` batches for a number of optimizer steps (or epochs),
with the LR of every step set by an lrkit scheduler (never by writing ``group["lr"]``), and
records the loss and the LR of each step. ``lrkit.compare``, ``lrkit.tune``'s PyTorch tasks,
the demo tasks and the ``lrkit find`` check runs all train through it.
:func:`evaluate` scores a model on validation batches; :func:`seed_all` seeds every RNG a
training run draws from.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._imports import require

require("torch", "torch")  # without PyTorch: the one-line install hint

import torch
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from .. import _validate as V
from .._runtime import caller_level, is_data_factory
from ..schedules import Schedule, as_schedule, is_schedule_list
from ._checks import check_module
from ._distributed import all_reduce_mean, get_world_size
from ._finder import _check_loss, _refuse_closure, check_batch, check_optimizer_of
from ._lrfree import _sf_flags, first_lr_reader, is_schedule_free
from ._scheduler import _schedule_or_list
from ._scheduler import scheduler as make_scheduler

__all__ = ["History", "evaluate", "fit", "seed_all"]


def seed_all(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global RNG and Python's ``random`` with ``seed``
    (an integer in ``[0, 2**32 - 1]``)."""
    import numpy as np

    seed = V.seed("seed", seed)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


class DataRanOutWarning(RuntimeWarning):
    """:func:`fit`'s data (a one-shot iterator, such as a generator) ran out before the
    ``steps`` or ``epochs`` asked for: training stopped there."""


@dataclass
class History:
    """What :func:`fit` recorded: the loss and the LR (group 0; Prodigy: ``d * lr``; a
    schedule-free optimizer: its warmed-up LR) of every step, in order, and whether training
    stopped at a non-finite loss (that step's loss is the last entry; no update was made)."""

    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    diverged: bool = False
    epochs: int = 0
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        """Optimizer steps made (a diverged last step is not counted)."""
        return len(self.losses) - int(self.diverged)

    def final_loss(self, fraction: float = 0.1) -> float:
        """Mean training loss over the last ``fraction`` of the steps; ``inf`` when diverged,
        ``nan`` when nothing ran."""
        fraction = V.in_range("fraction", fraction, 0.0, 1.0, low_open=True)
        if self.diverged:
            return math.inf
        if not self.losses:
            return math.nan
        tail = self.losses[-max(1, int(len(self.losses) * fraction)) :]
        return sum(tail) / len(tail)


def _passes(data: Any) -> Callable[[], Iterable[Any]]:
    if is_data_factory(data):
        V.takes("data", data, "data() -> batches (a zero-argument callable)", 0)

        def one_pass() -> Iterable[Any]:
            batches = data()
            if not _iterable(batches):
                raise ValueError(
                    "data must be an iterable of (input, target) batches or a zero-argument "
                    f"callable returning one; the callable returned {type(batches).__name__}"
                    + _samples_hint(batches)
                )
            return batches  # type: ignore[no-any-return]

        return one_pass
    if not _iterable(data):
        raise ValueError(
            "data must be an iterable of (input, target) batches or a zero-argument callable "
            f"returning one, got {type(data).__name__}" + _samples_hint(data)
        )
    return lambda: data  # type: ignore[no-any-return]


def _samples_hint(data: Any) -> str:
    if isinstance(data, torch.utils.data.Dataset):
        return " (a map-style Dataset holds samples: wrap it in a DataLoader)"
    return ""


def _iterable(data: Any) -> bool:
    """Whether ``data`` is read as batches: what a for loop reads (``__iter__``, or the
    sequence protocol's ``__getitem__``), except a map-style ``Dataset``, whose items are
    samples, not batches (wrap it in a ``DataLoader``); what its iteration raises is its
    own error, not hidden."""
    if hasattr(data, "__iter__"):
        return True
    return hasattr(data, "__getitem__") and not isinstance(data, torch.utils.data.Dataset)


def _params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in optimizer.param_groups for p in g["params"]]


def _group_values(group: dict[str, Any]) -> dict[str, Any]:
    """A param group's settings (not its parameters), tensors copied: what :func:`_put_back`
    restores."""
    return {
        k: (v, v.detach().clone()) if isinstance(v, torch.Tensor) else (v, None)
        for k, v in group.items()
        if k != "params"
    }


def _put_back(group: dict[str, Any], values: dict[str, Any]) -> None:
    """The settings :func:`_group_values` read, put back (a tensor is the same object, with
    its value; a key added since, such as a scheduler's ``initial_lr``, is removed)."""
    for k in [k for k in group if k != "params" and k not in values]:
        del group[k]
    for k, (v, copy) in values.items():
        if copy is not None:
            with torch.no_grad():
                v.copy_(copy)
        group[k] = v


_END = object()
#: what fit's batch-layout error suggests (fit has no ``step=``)
_OTHER_LAYOUT = (
    "for another layout, map the batches to (x, y): data=lambda: ((b['x'], b['y']) for b in loader)"
)


def fit(
    model: torch.nn.Module,
    *,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[..., torch.Tensor],
    data: Any,
    steps: int | None = None,
    epochs: int | None = None,
    schedule: Any = None,
    steps_per_epoch: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
    on_epoch: Callable[[int], None] | None = None,
    stop_on_nonfinite: bool = True,
) -> History:
    """Train ``model`` for ``steps`` optimizer steps and/or ``epochs`` passes over ``data``.

    Args:
        model: the ``torch.nn.Module`` to train (anything else is a one-line ``ValueError``).
        optimizer: a ``torch.optim.Optimizer`` over ``model``'s parameters, stepped once
            per batch.
        loss_fn: ``loss_fn(output, target) -> loss`` (a scalar tensor), e.g.
            ``torch.nn.CrossEntropyLoss()``.
        data: ``(x, y)`` batches (the loss is ``loss_fn(model(x), y)``): a re-iterable (a
            ``DataLoader``, a list) iterated again for each pass, or a zero-argument callable
            returning one (called at each pass).
        steps, epochs: stop after ``steps`` steps or ``epochs`` passes, whichever comes first
            (at least one of them is required).
        schedule: the LR: an lrkit schedule, spec string or dict (driven through
            :func:`lrkit.torch.scheduler`), an ``LRScheduler`` already built on ``optimizer``
            (stepped once per optimizer step), or ``None`` (the optimizer's LR as it is).
        steps_per_epoch: cut each pass after this many steps (default: the whole pass).
        on_step: ``on_step(step, loss)`` after each optimizer step (``step`` counts from 1);
            raising stops training (the exception propagates).
        on_epoch: ``on_epoch(epoch)`` after each pass, also a last one cut short by
            ``steps`` (``epoch`` counts from 0).
        stop_on_nonfinite: stop at the first NaN/inf loss, before its update
            (``History.diverged``); under ``torch.distributed``, on every rank at the step
            where any rank's loss is NaN/inf.

    Batches are drawn only as they are trained on: a shared iterator (a generator) continues
    where the last call stopped, and one that runs out ends training with a
    ``RuntimeWarning``. Every argument is checked before the model or the optimizer changes,
    the first batch's layout (a tuple or list of two items) included; an error of the first
    step (its loss, backward or optimizer step) puts the optimizer's LRs and settings and the
    modules' train/eval modes back as they were before it is raised. The model is put in
    train mode, and a schedule-free optimizer in eval mode (``optimizer.eval()``,
    :func:`lrkit.torch.finalize`) too (``optimizer.train()``, as Hugging Face's ``Trainer``
    does). Returns the :class:`History`.
    """
    check_module(model)
    if steps is None and epochs is None:
        raise ValueError("steps or epochs must be given, got neither")
    total = math.inf if steps is None else V.integer("steps", steps, 1)
    n_epochs = math.inf if epochs is None else V.integer("epochs", epochs, 1)
    spe = None if steps_per_epoch is None else V.integer("steps_per_epoch", steps_per_epoch, 1)
    if not all(callable(getattr(optimizer, a, None)) for a in ("step", "zero_grad")) or not (
        isinstance(getattr(optimizer, "param_groups", None), list)
    ):
        raise ValueError(
            "optimizer must be a torch optimizer (param_groups, step(), zero_grad()), "
            f"got {type(optimizer).__name__}"
        )
    _refuse_closure(optimizer, "fit")
    check_optimizer_of(model, optimizer)  # (built for a copy: it would train nothing)
    V.loss_callable(loss_fn)
    V.optional_callable("on_step", on_step, "on_step(step, loss)", 2)
    V.optional_callable("on_epoch", on_epoch, "on_epoch(epoch)", 1)
    V.flag("stop_on_nonfinite", stop_on_nonfinite)
    if isinstance(schedule, ReduceLROnPlateau):
        raise ValueError(
            "schedule must not be a ReduceLROnPlateau: it needs a metric that fit does not "
            "have; use lrkit's feedback instead: lrkit.torch.scheduler(optimizer, schedule, "
            "feedback=lrkit.feedback.ReduceOnPlateau(...)), reporting the metric from on_step"
        )
    if isinstance(schedule, LRScheduler) and schedule.optimizer is not optimizer:
        raise ValueError(
            "schedule: the LRScheduler drives another optimizer (a "
            f"{type(schedule.optimizer).__name__} that is not the optimizer given to fit); "
            "build it on this optimizer, or pass an lrkit schedule or spec string"
        )
    passes = _passes(data)
    # an lrkit schedule sets the LR of step 0 when its scheduler is built: built once the
    # first batch is drawn and checked; a failure of the first step puts the optimizer's
    # settings (and the train/eval modes) back
    sched = schedule if schedule is None or isinstance(schedule, LRScheduler) else None
    build = sched is None and schedule is not None
    if build:  # parsed now: a bad schedule is refused before any batch is drawn
        if is_schedule_list(schedule):  # (one per param group, as the scheduler reads it)
            schedule = _schedule_or_list("schedule", schedule, len(optimizer.param_groups))
        elif isinstance(schedule, (Schedule, str, Mapping)):
            schedule = as_schedule(schedule)
        else:  # every form fit takes, named
            raise ValueError(
                "schedule must be a lrkit schedule, a spec string, a to_dict() dict, a list of "
                "them (one per param group) or an LRScheduler built on optimizer, got "
                + V.fmt(schedule)
            )
    hist = History()
    ranks = get_world_size()  # under torch.distributed, the NaN check is made by all ranks
    read_lr = first_lr_reader(optimizer)  # lrfree_lr(optimizer)[0], looked up once
    in_train_mode = False  # set once the first batch is drawn and checked
    t0 = time.perf_counter()
    k = 0
    while k < total and hist.epochs < n_epochs:
        n = 0
        batches = iter(passes())
        # the stop is checked before the next batch is drawn: none is drawn and dropped
        while k < total and (spe is None or n < spe):
            batch: Any = next(batches, _END)
            if batch is _END:
                break
            x, y = check_batch(batch, advice=_OTHER_LAYOUT)
            first = not in_train_mode
            if first:  # what a failure of the first step puts back
                modes = [(m, m.training) for m in model.modules()]
                groups = [_group_values(g) for g in optimizer.param_groups]
                sf_train = is_schedule_free(optimizer) and not all(_sf_flags(optimizer))
                weights = [p.detach().clone() for p in _params(optimizer)] if sf_train else []
                if build:  # sets the LR of step 0, which the step (and the loss) may read
                    sched = make_scheduler(optimizer, schedule)
                model.train()
                if sf_train:
                    optimizer.train()  # type: ignore[attr-defined]  # as the model
                in_train_mode = True
            try:
                loss = loss_fn(model(x), y)
                _check_loss(loss, model, "loss_fn", "training")  # a one-line error, not torch's
                optimizer.zero_grad(set_to_none=True)
                value = loss.item()
                hist.lrs.append(read_lr())
                hist.losses.append(value)
                if stop_on_nonfinite and not math.isfinite(
                    # under torch.distributed: stopped on every rank together (a rank left
                    # alone would wait in the next gradient all-reduce)
                    all_reduce_mean(value) if ranks > 1 else value
                ):
                    hist.diverged = True
                    break
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            except BaseException:
                if first:  # a failed first step (its loss, backward or optimizer step): the
                    # optimizer's LRs and modes and the model's modes as they were
                    if sf_train:
                        optimizer.eval()  # type: ignore[attr-defined]
                        with torch.no_grad():  # (train() and eval() round the weights)
                            for p, w in zip(_params(optimizer), weights):
                                p.copy_(w)
                    for g, values in zip(optimizer.param_groups, groups):
                        _put_back(g, values)
                    for m, mode in modes:
                        m.train(mode)
                raise
            if sched is not None:
                sched.step()
            n += 1
            k += 1
            if on_step is not None:
                on_step(k, value)
        if hist.diverged:
            break
        if n == 0 and k == 0:
            raise ValueError("data must yield at least one (input, target) batch, got none")
        if n == 0:  # a later pass drew nothing: a one-shot iterator ran out
            ran = f"{hist.epochs} pass{'' if hist.epochs == 1 else 'es'}"
            warnings.warn(
                f"fit: data ran out after {k} steps ({ran}; "
                f"{'steps=' + str(steps) if steps is not None else 'epochs=' + str(epochs)} "
                "asked for more): a one-shot iterator (a generator) yields its batches once; "
                "pass a list, a DataLoader or a function returning a new iterator",
                DataRanOutWarning,
                stacklevel=caller_level(),
            )
            break
        if on_epoch is not None:
            on_epoch(hist.epochs)
        hist.epochs += 1
    hist.seconds = time.perf_counter() - t0
    return hist


def evaluate(
    model: torch.nn.Module, *, loss_fn: Callable[..., torch.Tensor], data: Iterable[Any]
) -> tuple[float, float]:
    """``(mean loss per example, accuracy)`` of ``model`` over the ``(x, y)`` batches of
    ``data``, in eval mode and without gradients; every module's train/eval flag is restored
    afterwards. The loss is ``inf`` when it is not finite; the accuracy (argmax of 2-d outputs
    against integer labels) is NaN unless every batch is a classification batch. ``data``
    that yields no example is a ValueError (there is no score to give). As for :func:`fit`,
    ``data`` may be a zero-argument function returning the batches (called once)."""
    check_module(model)
    V.loss_callable(loss_fn)
    data = _passes(data)()  # the batches, or those a zero-argument callable returns
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    tot, cnt, correct, classification = 0.0, 0, 0, True
    try:
        with torch.no_grad():
            for batch in data:
                x, y = check_batch(batch, advice=_OTHER_LAYOUT)
                out = model(x)
                loss = loss_fn(out, y)
                if not torch.is_tensor(loss) or loss.numel() != 1:
                    shape = tuple(loss.shape) if torch.is_tensor(loss) else type(loss).__name__
                    raise ValueError(
                        "loss_fn must return a scalar loss (one element, e.g. "
                        f"reduction='mean'), got {shape}"
                    )
                n = int(y.shape[0]) if torch.is_tensor(y) and y.ndim else 1
                tot += float(loss) * n
                cnt += n
                if out.ndim == 2 and y.dtype == torch.long:
                    correct += int((out.argmax(1) == y).sum())
                else:
                    classification = False
    finally:
        for m, flag in modes:
            m.training = flag
    if cnt == 0:
        raise ValueError("data must yield at least one batch, got none")
    mean = tot / cnt
    acc = correct / cnt if classification else math.nan
    return (mean if math.isfinite(mean) else math.inf), acc
