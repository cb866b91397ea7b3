"""Shared by the PyTorch commands (``lrkit find``, ``lrkit compare``) and ``lrkit tune``.

* :func:`check_seed` checks a ``--seed``.
* :func:`add_torch_task_parser` declares the arguments ``lrkit find`` and ``lrkit compare``
  share (``--demo`` or a target, ``--seed``, ``-o``, ``--no-plot``, ``--json``, ``--quiet``).
* :func:`check_outputs` checks ``-o`` and ``--json`` before any work starts.
* :func:`run_torch_command` runs a PyTorch command's body inside
  :func:`preserved_global_state` (or says how to install PyTorch).
* :func:`preserved_global_state` puts the RNG states, torch's thread count and ``sys.path`` back
  as they were when a command ends, so that calling ``lrkit.cli.main([...])`` from a running
  Python session (a notebook, a test) leaves nothing changed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from .._files import IMAGE_TYPES, check_output, fresh_path

SEED_MAX = 2**32 - 1


def check_seed(seed: Any, name: str = "--seed") -> int:
    """``seed`` as an int in ``[0, 2**32 - 1]`` (what numpy accepts), else a ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ValueError(
            f"{name} must be an integer in [0, {SEED_MAX}] (allowed range), got {seed!r}"
        )
    return seed


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


def check_outputs(args: argparse.Namespace, default_output: str) -> None:
    """Check ``-o`` (an image name; the default gets a free ``-N`` suffix) and ``--json``
    before any work starts; a ValueError names the option."""
    if not args.no_plot:
        if args.output is None:
            args.output = fresh_path(default_output)
        check_output(args.output, option="-o/--output", types=IMAGE_TYPES)
    if args.json is not None:
        check_output(args.json, option="--json")
