"""Shared by the CLI commands: the user's ``pkg.module:function`` target, and global state.

* :func:`import_target` imports ``pkg.module`` with ``importlib`` (only the module named; the
  working directory is on the path, as with ``python -m``; nothing is evaluated) and returns
  its callable ``function`` (a dotted attribute path such as ``module:Class.method`` works too).
* :func:`unpack_torch_task` checks what ``lrkit find``/``lrkit compare`` targets return.
* :func:`seed_all` seeds torch, numpy and Python's ``random``.
* :func:`evaluate` scores a model on ``(x, y)`` validation batches.
* :func:`add_torch_task_parser` declares the arguments ``lrkit find`` and ``lrkit compare``
  share (``--demo`` or a target, ``--seed``, ``-o``, ``--no-plot``, ``--json``, ``--quiet``).
* :func:`run_torch_command` runs a PyTorch command's body inside
  :func:`preserved_global_state` (or says how to install PyTorch).
* :func:`preserved_global_state` puts the RNG states, torch's thread count and ``sys.path`` back
  as they were when a command ends, so that calling ``lrkit.cli.main([...])`` from a running
  Python session (a notebook, a test) leaves nothing changed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import random
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

FORMAT = "target must look like 'package.module:function'"


def import_target(spec: Any) -> Callable[..., Any]:
    """The callable named by ``"pkg.module:function"`` (``importlib``, never ``eval``)."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"{FORMAT}, got {spec!r}")
    mod_name, attr = spec.split(":")
    if not all(p.isidentifier() for p in mod_name.split(".")) or not all(
        p.isidentifier() for p in attr.split(".")
    ):
        raise ValueError(f"{FORMAT}, got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # as `python -m` does; preserved_global_state() takes it out
    module = importlib.import_module(mod_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            break
    if not callable(obj):
        raise ValueError(f"target {spec!r}: module {mod_name!r} has no callable {attr!r}")
    return obj  # type: ignore[no-any-return]


def unpack_torch_task(spec: str, out: Any) -> tuple[Any, Any, Any, Any, Any]:
    """``(model, optimizer, loss_fn, data, val_data or None)`` from what a ``lrkit find`` /
    ``lrkit compare`` target returned, or a ValueError saying what it must return."""
    import torch

    if not isinstance(out, (tuple, list)) or len(out) not in (4, 5):
        raise ValueError(
            f"target {spec!r} must return (model, optimizer, loss_fn, data[, val_data]), "
            f"got {type(out).__name__}"
        )
    model, opt, loss_fn, data = out[:4]
    if not isinstance(model, torch.nn.Module) or not isinstance(opt, torch.optim.Optimizer):
        raise ValueError(
            f"target {spec!r} must return a torch.nn.Module and a torch.optim.Optimizer first, "
            f"got {type(model).__name__} and {type(opt).__name__}"
        )
    return model, opt, loss_fn, data, (out[4] if len(out) == 5 else None)


SEED_MAX = 2**32 - 1


def check_seed(seed: Any, name: str = "--seed") -> int:
    """``seed`` as an int in ``[0, 2**32 - 1]`` (what numpy accepts), else a ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ValueError(
            f"{name} must be an integer in [0, {SEED_MAX}] (allowed range), got {seed!r}"
        )
    return seed


def seed_all(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global RNG and Python's ``random``."""
    import numpy as np
    import torch

    check_seed(seed)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@contextlib.contextmanager
def preserved_global_state() -> Iterator[None]:
    """Restore, on exit (also after an exception), the torch CPU/CUDA RNG states, numpy's and
    Python's global RNG states, torch's intra-op thread count and ``sys.path`` (an entry added
    by :func:`import_target` is removed; the imported modules stay imported)."""
    from .._runtime import GlobalRNGState

    rngs = GlobalRNGState(import_torch=True)
    torch: Any = sys.modules.get("torch")
    path = list(sys.path)
    threads = None if torch is None else torch.get_num_threads()
    try:
        yield
    finally:
        rngs.restore()
        for entry in [p for p in sys.path if p not in path]:
            sys.path.remove(entry)
        if torch is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def run_torch_command(
    command: str, body: Callable[[argparse.Namespace], int], args: argparse.Namespace
) -> int:
    """``body(args)`` inside :func:`preserved_global_state`; exit code 2 without PyTorch."""
    try:
        import torch  # noqa: F401
    except ImportError:
        print(f"lrkit {command} needs PyTorch: pip install 'lrkit[torch]'", file=sys.stderr)
        return 2
    with preserved_global_state():  # RNGs, torch threads, sys.path: as the caller had them
        return body(args)


def evaluate(
    model: Any, loss_fn: Callable[..., Any], batches: Iterable[Any]
) -> tuple[float, float]:
    """(mean loss per example, accuracy) of ``model`` over ``(x, y)`` batches, without
    gradients and without changing the model's train/eval mode. The loss is ``inf`` when it is
    not finite; the accuracy (argmax of 2-d outputs against integer labels) is NaN unless every
    batch is a classification batch."""
    import torch

    tot, cnt, correct, classification = 0.0, 0, 0, True
    with torch.no_grad():
        for x, y in batches:
            out = model(x)
            tot += float(loss_fn(out, y)) * len(y)
            cnt += len(y)
            if out.ndim == 2 and y.dtype == torch.long:
                correct += int((out.argmax(1) == y).sum())
            else:
                classification = False
    loss = tot / max(cnt, 1)
    acc = correct / cnt if classification and cnt else math.nan
    return (loss if math.isfinite(loss) else math.inf), acc


def add_torch_task_parser(
    subparsers: Any,
    name: str,
    help: str,
    description: str | None,
    default_output: str,
    add_own: Callable[[argparse.ArgumentParser], None],
) -> argparse.ArgumentParser:
    """The sub-parser of a command on a PyTorch task: ``--demo`` or ``MODULE:FUNCTION``, then
    the command's own options (``add_own(parser)``), then ``--seed``, ``-o``/``--output``,
    ``--no-plot``, ``--json`` and ``--quiet``."""
    p: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=description)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--demo", action="store_true", help="built-in task (scikit-learn digits)")
    src.add_argument(
        "target",
        nargs="?",
        metavar="MODULE:FUNCTION",
        help="function returning (model, optimizer, loss_fn, data[, val_data])",
    )
    add_own(p)
    p.add_argument("--seed", type=int, default=0, help="seed for torch/numpy/random")
    stem = os.path.splitext(default_output)[0]
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help=f"plot file (default {default_output}, or {stem}-N.png if that exists)",
    )
    p.add_argument("--no-plot", action="store_true", help="do not write the plot")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p
