"""``lrkit compare``: train with several LR methods from the same seed, side by side.

    lrkit compare --demo                        # built-in task: scikit-learn digits, MLP
    lrkit compare mypkg.tasks:make_task         # your function -> (model, optimizer, loss_fn,
                                                #   data[, val_data])
    lrkit compare --demo --steps 600 --methods fixed,onecycle,plateau,prodigy

The runs, the methods and what each one does are :mod:`lrkit.compare`'s; this command parses
the options, checks the output paths before any work starts, and prints a table (final
training loss, validation loss and accuracy, wall time) and writes one PNG with the loss
curves and the LR each method used (``--json`` keeps every number at full precision).

What the target returns is checked before the runs, on two calls of its own: a callable
``loss_fn`` and ``(x, y)`` batches in ``data`` and ``val_data`` (a list or tuple: every batch,
else the first); that every run starts from the same weights (a fresh model, or one reset in
place), by the runs themselves. A target that returns something else is a
command-line mistake (exit code 2, one line naming the target), also when it shows only once
the runs start (a ``loss_fn`` that returns no tensor, the model of an earlier run returned
again); an error raised by the user's code is the target's (exit code 1).
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from .. import _validate as V
from .._files import names_stdout
from .._format import duration, shorten
from .._imports import install_note
from .._runtime import one_pass, preserved_rng
from ..compare import METHODS
from ..finder.sweep import MAX_ITER, MIN_ITER
from ._help import rename
from ._target import (
    CHECKING,
    RETURNS,
    Printer,
    TargetMistake,
    add_torch_task_parser,
    back_to_start,
    call_target,
    check_batches,
    check_loss_fn,
    check_outputs,
    check_seed,
    import_function,
    naming,
    print_error,
    run_torch_command,
    show_progress,
    user_code,
    write_json,
    write_outputs,
    write_plot,
)

DEFAULT_OUTPUT = "lrkit_compare.png"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    def own(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--steps", type=int, default=400, help="training steps per method (10 to 2**53)"
        )
        p.add_argument(
            "--methods",
            default=None,
            help=f"comma-separated subset of: {', '.join(METHODS)} (default: all whose "
            "package is installed)",
        )
        p.add_argument(
            "--finder-iter",
            type=int,
            default=100,
            help=f"range-test steps ({MIN_ITER} to {MAX_ITER})",
        )

    return add_torch_task_parser(
        subparsers,
        "compare",
        "Train with several LR methods side by side and compare them.",
        __doc__.split("\n\n")[0] if __doc__ else None,
        DEFAULT_OUTPUT,
        own,
    )


def run(args: argparse.Namespace) -> int:
    return run_torch_command("compare", _compare, args)


#: ``lrkit.compare.compare``'s parameters -> the options of this command.
OPTIONS = {"methods": "--methods", "steps": "--steps", "num_iter": "--finder-iter"}


def _check_returned(make: Any, target: str, methods: Sequence[str]) -> None:
    """What the runs need of what ``target`` returns, checked on calls of their own before
    anything trains (``make`` calls the target afresh): a callable ``loss_fn``; ``(x, y)``
    batches in ``data`` (a zero-argument callable returning them is called) and in
    ``val_data`` (``None``, or at least one batch): a list or tuple: every batch, else the
    first (a one-shot iterator only when the second call built another: one built once, at
    import, is the runs'). Whether each run starts from the same weights (a fresh model, or
    one reset in place) is checked by the runs themselves; a ``val_data`` that ``methods``
    read while they train (plateau) must be re-readable. A one-line ValueError; run it under
    ``user_code(target, mistakes=True)`` and ``preserved_rng``."""
    from ..compare import READS_VAL_DATA_AGAIN, check_rereadable

    first = make()
    data, val = one_pass(first.data), first.val_data
    for method in set(methods) & set(READS_VAL_DATA_AGAIN):
        check_rereadable(method, val)
    check_loss_fn(first.loss_fn)
    check_batches(data, read=not hasattr(data, "__next__"))
    check_batches(val, name="val_data", none=True, read=not hasattr(val, "__next__"))
    second = make()
    for name, batches, again in (("data", data, second.data), ("val_data", val, second.val_data)):
        if hasattr(batches, "__next__") and batches is not again:
            check_batches(batches, name=name)


def _compare(args: argparse.Namespace) -> int:
    import torch

    from .. import compare as C
    from ..torch import DataRanOutWarning

    target = None if args.demo else args.target
    try:
        check_outputs(args, DEFAULT_OUTPUT)
        check_seed(args.seed)
        skipped: dict[str, tuple[str, str]] = {}
        if args.methods is None:  # the default: every method whose package is installed
            methods = C.available_methods()
            skipped = C.missing_packages(METHODS)
        else:
            try:
                methods = C.parse_methods(args.methods)
            except ValueError as exc:
                raise rename(exc, names=OPTIONS) from None
            try:
                C.check_installed(methods)
            except ImportError as exc:
                raise ImportError(f"--methods {args.methods!r}: {exc}") from None
        V.integer("--steps", args.steps, 10, V.MAX_STEPS)
        V.integer("--finder-iter", args.finder_iter, MIN_ITER, MAX_ITER)
        if args.demo:
            torch.set_num_threads(1)  # tiny model: one thread is fastest
            make = C.demo_factory(seed=args.seed)
            name = str(getattr(make, "name", "demo"))
        else:
            fn = import_function(args.target)
            make = C.factory(
                lambda: call_target(fn, target=args.target, returns=RETURNS),
                seed=args.seed,
                name=f"target {args.target!r}",
            )
            name = args.target
            with preserved_rng(import_torch=True):  # draws nothing the runs would see
                with user_code(args.target, during=CHECKING, mistakes=True):
                    _check_returned(make, args.target, methods)
    except TargetMistake as e:
        print_error("compare", naming(str(target), e), args)
        return 2
    except (ValueError, ImportError) as e:
        print_error("compare", e, args)
        return 2
    say = Printer()  # a reader that goes away stops the printing, not the files
    counted = f"{len(methods)} method{'s' if len(methods) != 1 else ''}"
    say(f"lrkit compare: {name}; {counted} x {args.steps} steps, seed {args.seed}")
    for m, (module, extra) in skipped.items():  # one line each, as check_installed says it
        say("  " + install_note(module, extra, feature=f"method {m!r}", skipped="skipped"))
    interrupt: KeyboardInterrupt | None = None
    show = warnings.showwarning
    shown: set[tuple[Any, ...]] = set()

    def ran_out(message: Any, category: Any, *where: Any, **kw: Any) -> None:
        """The data running out, in this command's words (a line each run); others as shown,
        once each over the whole comparison (each method's run starts Python's record of the
        warnings shown afresh)."""
        if not issubclass(category, DataRanOutWarning):
            key = (str(message), category, *where[:2])
            if key in shown:
                return None
            shown.add(key)
            return show(message, category, *where, **kw)
        text = str(message).removeprefix("compare: ").replace("give the data as", "return")
        say(f"  warning: {text.replace(f'steps={args.steps}', f'--steps {args.steps}')}")

    try:  # lrkit's checks of what the target returned (a loss that is no tensor): exit 2
        with user_code(target, during="the runs", mistakes=True), warnings.catch_warnings():
            warnings.simplefilter("always", DataRanOutWarning)
            warnings.showwarning = ran_out
            report = C.compare(
                make,
                methods=methods,
                steps=args.steps,
                num_iter=args.finder_iter,
                progress=show_progress(args),  # on a terminal only
                name=name,
                warn=False,  # its notes are printed below, with the range test's LRs
            )
    except TargetMistake as e:
        print_error("compare", naming(str(target), e), args)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM: the methods that finished are kept
        partial = getattr(exc, "comparison", None)
        if partial is None or not partial.results:
            raise  # nothing finished: nothing to show or write
        report, interrupt = partial, exc
    lrs = report.lrs
    parts = []
    if math.isfinite(lrs.base):
        parts.append(f"base {lrs.base:.3g} (cyclic {lrs.base_min:.3g}..{lrs.base_max:.3g})")
    if math.isfinite(lrs.adam):
        parts.append(f"Adam {lrs.adam:.3g}")
    if parts:
        say("range test suggestions: " + ", ".join(parts))
    for n in lrs.notes:
        say(f"  note: {n}")
    say()
    say(report.table())
    which = "val" if report.has_val else "train"
    best = report.best
    if best is not None:
        say(f"\n  total {duration(report.seconds)}; * best {which} loss")
    else:
        say(f"\n  total {duration(report.seconds)}; no method ended with a finite loss")
    if interrupt is not None:
        say(f"  {report.interruption()}")

    def json_file() -> bool:
        if not args.json:
            return False
        failed = write_json("compare", args.json, report.to_dict() | {"seed": args.seed}, out=say)
        if not failed and not names_stdout(args.json):  # the JSON comes last on stdout
            say(f"  results written to {args.json}")
        return failed

    def plot_file() -> bool:
        if args.no_plot:
            return False
        default = getattr(args, "output_is_default", False)
        return write_plot("compare", args.output, report.plot, say=say, default=default)

    if not back_to_start("compare", args.start_folder):  # where the outputs were checked
        return 1
    failed = write_outputs(args.json, json_file, plot_file)
    if interrupt is not None:  # the one line and exit code of an interrupt (130, 143)
        raise interrupt
    say.check()  # the reader went away: exit code 141, the files written all the same
    if best is None:  # every method diverged or failed: there is no best to report
        print(
            "lrkit compare: error: no method ended with a finite loss (all diverged or failed): "
            "there is no best method; the table shows each one's loss and note",
            file=sys.stderr,
        )
        return 1
    broken = [r for r in report.results if r.error]
    if broken:  # the others' results stand, but the comparison asked for is not complete
        names = ", ".join(r.method for r in broken)
        print(
            f"lrkit compare: error: {len(broken)} method{'s' if len(broken) != 1 else ''} "
            f"failed ({names}; first: {shorten(broken[0].error, 200)}): the table and files "
            "hold the others",
            file=sys.stderr,
        )
        return 1
    return 1 if failed else 0
