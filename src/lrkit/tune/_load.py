"""Turning what a user's function returns into a :class:`~lrkit.tune.Task`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .._format import counted
from ._task import Task

__all__ = ["as_task", "load_target"]


def load_target(target: str, *, epochs: int = 5) -> Task:
    """Import ``"pkg.module:function"`` (``importlib``, never eval), call ``function()`` and
    turn what it returns into a :class:`Task`:

    * a :class:`Task`;
    * a mapping with :class:`Task`'s fields (``train``, ``total_steps``, ...);
    * a 4-tuple ``(model_factory, loss_fn, data, val_data)`` (PyTorch): trained with
      :func:`lrkit.tune.torch_task` (SGD with momentum 0.9) for ``epochs`` epochs, metric
      the validation loss.

    The working directory is put on ``sys.path`` first (as ``python -m`` does)."""
    from .._target import import_target

    fn = import_target(target)
    return as_task(fn(), epochs=epochs, name=target, target=target)


def is_torch_tuple(value: Any) -> bool:
    """Whether ``value`` is the ``(model_factory, loss_fn, data, val_data)`` tuple that
    :func:`as_task` trains with :func:`lrkit.tune.torch_task` (not the ``(model, optimizer,
    loss_fn, data)`` of ``lrkit find`` and ``lrkit compare``, whose second item is an
    optimizer)."""
    return isinstance(value, tuple) and len(value) == 4 and not hasattr(value[1], "param_groups")


def as_task(value: Any, *, epochs: int = 5, name: str = "task", target: str | None = None) -> Task:
    """Coerce a :class:`Task`, a mapping of its fields or a ``(model_factory, loss_fn,
    data, val_data)`` tuple into a :class:`Task`. ``name`` names a task that has no name
    of its own (a ``Task`` with the default name ``"task"`` gets it too: ``lrkit tune`` names
    a target's task after the target, and a study keeps the name of its task). ``target``:
    the ``"pkg.module:function"`` that returned ``value``, named in the error if it is none
    of these (else the error names ``task``, the argument of :func:`lrkit.tune.tune`)."""
    if isinstance(value, Task):
        if value.name == "task" and name != "task":
            return dataclasses.replace(value, name=name)
        return value
    if isinstance(value, Mapping):
        kwargs = dict(value)
        kwargs.setdefault("name", name)
        try:
            return Task(**kwargs)
        except TypeError as exc:
            what = "task is" if target is None else f"target {target!r} returned"
            raise ValueError(f"{what} a mapping that is not a Task: {exc}") from None
    find_form = isinstance(value, (tuple, list)) and (
        len(value) == 5 or (len(value) == 4 and hasattr(value[1], "param_groups"))
    )
    if is_torch_tuple(value):
        from ._torch import torch_task

        model_factory, loss_fn, data, val_data = value
        return torch_task(
            model_factory,
            loss_fn=loss_fn,
            data=data,
            val_data=val_data,
            epochs=epochs,
            name=name,
        )
    got = type(value).__name__
    if isinstance(value, (tuple, list)):
        got = f"a {got} of {counted(len(value), 'item')}"
        if find_form:
            # (model, optimizer, loss_fn, data[, val_data]): the form of find and compare
            got += (
                " (the (model, optimizer, loss_fn, data[, val_data]) of lrkit find and lrkit "
                "compare? tune trains a fresh model per trial: it needs a model factory)"
            )
    must = "task must be" if target is None else f"target {target!r} must return"
    raise ValueError(
        f"{must} a lrkit.tune.Task, a dict of its fields or a tuple "
        f"(model_factory, loss_fn, data, val_data), got {got}"
    )
