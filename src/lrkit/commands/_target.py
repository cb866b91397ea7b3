"""Shared by the PyTorch commands (``lrkit find``, ``lrkit compare``) and ``lrkit tune``.

* :func:`print_error` prints a command's one-line error with the secrets of the command line
  in it (a database URL's password) masked.
* :func:`show_progress` decides whether a command draws progress bars (not with ``--quiet``,
  and only on a terminal).
* :func:`check_seed` checks a ``--seed``.
* :func:`add_torch_task_parser` declares the arguments ``lrkit find`` and ``lrkit compare``
  share (``--demo`` or a target, ``--seed``, ``-o``, ``--no-plot``, ``--json``, ``--quiet``).
* :func:`check_outputs` checks ``-o`` and ``--json`` before any work starts (an image named
  by the user needs matplotlib: :func:`check_plot_package`);
  :func:`write_json` and :func:`write_plot` write them once the work is done.
* :func:`run_torch_command` runs a PyTorch command's body inside
  :func:`preserved_global_state` (or says how to install PyTorch), reporting an error of the
  target's code with :func:`reporting_target_errors`.
* :func:`preserved_global_state` puts the RNG states, torch's thread count and ``sys.path`` back
  as they were when a command ends, so that calling ``lrkit.cli.main([...])`` from a running
  Python session (a notebook, a test) leaves nothing changed.
* :func:`call_target`, :func:`user_code` and :func:`report_target_error` keep an error raised
  by the user's code (the target function, the model, the loss, the train function) apart
  from a command-line mistake: it is reported as an error in the target, with exit code 1
  (a mistake in the command line is exit code 2). With ``mistakes=True``, :func:`user_code`
  tells lrkit's own checks of what the target returned (data whose batches are not ``(x, y)``,
  a loss that is not a tensor) apart from the user's errors: they are a
  :class:`TargetMistake`, a mistake in the command line.
* :func:`check_loss_fn` and :func:`check_batches` check what a target
  returned before anything runs (run them under ``user_code(target, mistakes=True)``: reading
  the user's data runs the user's code); :func:`naming` leads such a mistake's message with
  the target.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import inspect
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .. import _validate as V
from .._files import (
    IMAGE_TYPES,
    back_to,
    check_output,
    fresh_path,
    names_stdout,
    starting_folder,
    write_file_whole,
    write_new,
    write_text_whole,
)
from .._imports import install_hint, install_note
from ._help import HelpFormatter


class OutputFailed(Exception):
    """The standard output could not be written (a full disk, an I/O error): ``lrkit.cli.main``
    says so in one line, with exit code 1. ``error`` is the ``OSError``."""

    def __init__(self, error: OSError) -> None:
        super().__init__(f"cannot write to the standard output: {error}")
        self.error = error


class Printer:
    """``print`` to the standard output until its reader goes away (``lrkit compare ... |
    head -1``) or a write fails (a full disk): from then on nothing more is printed, but the
    command goes on, so that the files it was asked for (``--json``, the plot) are still
    written; :meth:`check`, called once they are, raises the ``BrokenPipeError`` (exit code
    141, see :func:`main`) or :class:`OutputFailed` (exit code 1)."""

    def __init__(self) -> None:
        #: whether the reader of the standard output went away, or a write failed
        self.closed = False
        self.error: OSError | None = None  # the failed write's (not a closed pipe's)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        if self.closed:
            return
        try:
            print(*args, **kwargs)
        except BrokenPipeError:
            self.closed = True
        except OSError as exc:
            self.closed, self.error = True, exc

    def check(self) -> None:
        """Raise ``BrokenPipeError`` when the reader went away, :class:`OutputFailed` when a
        write failed (the command stops there)."""
        if self.error is not None:
            raise OutputFailed(self.error)
        if self.closed:
            raise BrokenPipeError(errno.EPIPE, "the reader of the standard output went away")


def typed(args: argparse.Namespace | Iterable[Any] | None) -> list[str]:
    """The text the user typed: the strings of an argument list, or of the values (and the
    lists of them) of parsed ``args``."""
    if args is None:
        return []
    values: Iterable[Any] = vars(args).values() if isinstance(args, argparse.Namespace) else args
    out: list[str] = []
    for value in values:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(v for v in value if isinstance(v, str))
    return out


def print_error(command: str, message: Any, args: argparse.Namespace | None) -> None:
    """Print the one-line error ``lrkit COMMAND: error: MESSAGE`` on stderr with the secrets
    of what the user typed (``args``, the parsed arguments) masked: the password of a
    database URL, the secret ``keyword=value`` of a libpq connection string
    (:func:`lrkit._format.mask_arguments`, which the argument parser's errors go through
    too). Every one-line error of a command goes through it."""
    from .._format import mask_arguments

    text = mask_arguments(str(message), typed(args))
    print(f"lrkit {command}: error: {text}", file=sys.stderr)


def show_progress(args: argparse.Namespace) -> bool:
    """Whether a command draws progress bars: not with ``--quiet`` (or ``--no-progress``), and
    only when stderr, where they go, is a terminal: in a log file or a CI log a bar's
    carriage-return frames would be clutter (tqdm's own convention)."""
    if getattr(args, "quiet", False) or getattr(args, "no_progress", False):
        return False
    stream = sys.stderr
    try:
        return stream is not None and bool(stream.isatty())
    except (AttributeError, OSError, ValueError):  # no file behind it, or a closed one
        return False


def check_seed(seed: Any, name: str = "--seed") -> int:
    """``seed`` as an int in ``[0, 2**32 - 1]`` (what numpy accepts), else a ValueError."""
    return V.seed(name, seed)


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


def torch_missing(feature: str) -> str | None:
    """Why PyTorch cannot be used by ``feature`` (e.g. ``"lrkit find"``), in one line: not
    installed (the install line), or installed but failing to import (the install line, then
    why); ``None`` when it imports."""
    try:
        import torch  # noqa: F401
    except (ImportError, OSError) as exc:  # not installed, or installed but broken
        message = install_hint("PyTorch", "torch", feature=feature)
        if not (isinstance(exc, ModuleNotFoundError) and exc.name == "torch"):
            message += f" ({' '.join(str(exc).split()) or type(exc).__name__})"
        return message
    return None


def run_torch_command(
    command: str, body: Callable[[argparse.Namespace], int], args: argparse.Namespace
) -> int:
    """``body(args)`` inside :func:`preserved_global_state` (an error of the target's code
    reported by :func:`reporting_target_errors`); exit code 2 without PyTorch, or when importing
    it fails (the message then ends with why, as :func:`lrkit._imports.require` says it)."""
    message = torch_missing(f"lrkit {command}")
    if message is not None:
        print(message, file=sys.stderr)
        return 2
    with preserved_global_state():  # RNGs, torch threads, sys.path: as the caller had them
        return reporting_target_errors(command, body, args)


def reporting_target_errors(
    command: str, body: Callable[[argparse.Namespace], int], args: argparse.Namespace
) -> int:
    """``body(args)``; a :class:`TargetError` it raises is reported by
    :func:`report_target_error` (exit code 1, the full traceback with ``--traceback``)."""
    try:
        return body(args)
    except TargetError as exc:
        return report_target_error(command, err=exc, show_traceback=args.traceback, args=args)


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
    if description is not None:  # a module docstring's first paragraph, as plain text
        description = " ".join(description.replace("``", "").split())
    p: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description, formatter_class=HelpFormatter
    )
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
        help=f"plot file (default: {default_output}, or {stem}-N.png if that exists)",
    )
    p.add_argument("--no-plot", action="store_true", help="do not write the plot")
    add_json_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_traceback_option(p)
    return p


def add_json_option(p: argparse.ArgumentParser) -> None:
    """``--json PATH``: the results as JSON, at full precision (see :func:`write_json`)."""
    p.add_argument(
        "--json",
        default=None,
        metavar="PATH",
        help="also write the results as JSON, full precision (default: not written)",
    )


def write_json(command: str, path: str, data: Any, *, out: Printer) -> bool:
    """Write ``data`` to the ``--json`` file ``path``, whole or not at all
    (:func:`lrkit._files.write_text_whole`); a file that cannot be written is one
    line on stderr (:func:`cannot_write`). A pipe whose reader went away
    (``--json /dev/stdout | head``) is no error: ``out`` is marked closed, and its
    :meth:`Printer.check` ends the command with exit code 141, as for the printed text.
    Returns whether it failed."""
    import json

    try:  # whole or not at all: a failed write leaves the file that was there
        write_text_whole(path, json.dumps(data, indent=1) + "\n")  # a text file: ends a line
    except BrokenPipeError:
        out.closed = True
    except OSError as exc:
        return cannot_write(command, option="--json", path=path, error=exc)
    return False


def write_plot(
    command: str,
    path: str,
    draw: Callable[[str], Any],
    *,
    say: Callable[[str], Any] = print,
    default: bool = False,
) -> bool:
    """``draw(path)`` writes the ``-o`` image once the work is done: ``say`` tells where, or
    that matplotlib is missing (no plot, not an error); an image that cannot be written is one
    line on stderr (:func:`cannot_write`). A name the user gave gets the image whole or not at
    all (:func:`lrkit._files.write_file_whole`). A ``default`` name (not one the user gave) never
    replaces a file that appeared there during the work: the next free ``-N`` name is taken
    (:func:`lrkit._files.write_new`). Returns whether it failed."""
    try:
        if default:
            path = write_new(path, draw)
        else:  # whole or not at all: a failed write leaves the file that was there
            write_file_whole(path, draw)
    except ImportError:
        say("  " + install_note("matplotlib", "plot", feature="-o/--output", skipped="no plot"))
        return False
    except Exception as exc:  # the image could not be written (disk, backend)
        return cannot_write(command, option="-o/--output", path=path, error=exc)
    say(f"  plot written to {path}")
    return False


def write_outputs(
    json_path: Any, json_file: Callable[[], bool], plot_file: Callable[[], bool]
) -> bool:
    """Write a command's ``--json`` file and its plot (each a function that returns whether
    it failed): the JSON first, or last when it goes to standard output (``json_path``
    ``/dev/stdout``), after the plot's line, so that what follows the printed text is JSON.
    Returns whether one of them failed."""
    order = (plot_file, json_file) if names_stdout(json_path) else (json_file, plot_file)
    failed = False
    for write in order:
        failed = write() or failed
    return failed


def add_traceback_option(p: argparse.ArgumentParser) -> None:
    """``--traceback``: show the full traceback of an error raised by the target's code."""
    p.add_argument(
        "--traceback",
        action="store_true",
        help="when the target's code raises an error, print its full traceback",
    )


def check_outputs(args: argparse.Namespace, default_output: str) -> None:
    """Check ``-o`` (an image name; the default gets a free ``-N`` suffix; refused with
    ``--no-plot``) and ``--json`` before any work starts; a ValueError names the option. An
    image asked for by name needs matplotlib (the default one is skipped with a note when it
    is missing)."""
    args.start_folder = starting_folder()  # relative outputs are written from there
    if args.no_plot and args.output is not None:  # refused rather than ignored
        raise ValueError(
            f"-o/--output names the plot that --no-plot turns off: give one of them, got "
            f"--no-plot and -o {args.output!r}"
        )
    if not args.no_plot:
        if args.output is None:
            args.output = fresh_path(default_output)
            stem, ext = os.path.splitext(default_output)
            n = 0
            while args.json is not None and same_file(args.output, other=args.json):
                n += 1  # --json took the default image's name: the image takes another
                args.output = fresh_path(f"{stem}-{n}{ext}")
            args.output_is_default = True  # written by write_plot(default=True)
            try:
                check_backend("the default plot")
                check_output(args.output, option="-o/--output", types=IMAGE_TYPES)
            except ValueError as exc:  # an option not typed: what it is and how to avoid it
                raise ValueError(
                    f"{exc} (the default plot; -o names another, --no-plot writes none)"
                ) from None
        else:
            check_plot_package("-o/--output")
            check_output(args.output, option="-o/--output", types=IMAGE_TYPES)
    if args.json is not None:
        check_output(args.json, option="--json", example="results.json")
    check_distinct({"-o/--output": None if args.no_plot else args.output, "--json": args.json})


def check_plot_package(option: str) -> None:
    """An image asked for by name with ``option`` needs matplotlib: without it, a one-line
    ``ValueError`` (:func:`lrkit._imports.install_hint`), raised before any work starts. The
    package is looked up, not imported."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ValueError(install_hint("matplotlib", "plot", feature=option))
    check_backend(option)


def check_backend(option: str) -> None:
    """A ``MPLBACKEND`` matplotlib does not know fails its import (a traceback, after the
    work): a one-line ``ValueError`` naming it, before any work starts. Without
    ``MPLBACKEND`` (or matplotlib) there is nothing to check and nothing is imported."""
    backend = os.environ.get("MPLBACKEND")
    if not backend or importlib.util.find_spec("matplotlib") is None:
        return
    try:
        import matplotlib  # noqa: F401 - its import reads MPLBACKEND
    except ValueError:
        raise ValueError(
            f"MPLBACKEND={backend!r} is not a backend matplotlib knows, and {option} draws "
            "with matplotlib: unset MPLBACKEND, or set it to one (e.g. MPLBACKEND=agg)"
        ) from None


def same_file(path: str, *, other: str) -> bool:
    """Whether ``path`` and ``other`` name one file (through links too)."""
    if os.path.realpath(path) == os.path.realpath(other):
        return True
    try:
        return os.path.samefile(path, other)
    except OSError:  # one of them does not exist yet: different names, different files
        return False


def check_distinct(outputs: dict[str, str | None]) -> None:
    """A one-line ValueError naming both options when two outputs (option -> path, ``None``
    when not written) are the same file: the second would overwrite the first."""
    given = [(k, v) for k, v in outputs.items() if v is not None]
    for i, (opt_a, a) in enumerate(given):
        for opt_b, b in given[i + 1 :]:
            if same_file(a, other=b):
                raise ValueError(
                    f"{opt_a} {a!r} and {opt_b} {b!r} are the same file: give each its own"
                )


#: What a target of ``lrkit find`` / ``lrkit compare`` returns.
RETURNS = "(model, optimizer, loss_fn, data[, val_data])"


class TargetError(Exception):
    """An exception raised by the user's code while a command ran it (``error``), with the
    target it came from and what the command was doing (``during``)."""

    def __init__(self, target: str, *, error: BaseException, during: str = "") -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.target = target
        self.error = error
        self.during = during

    def __reduce__(self) -> Any:  # picklable (e.g. across a process pool)
        import functools

        return (
            functools.partial(TargetError, self.target, error=self.error, during=self.during),
            (),
        )


class TargetMistake(ValueError):
    """lrkit's own check of what the target returned failed while a command ran it (data whose
    batches are not ``(x, y)``, a loss that is not a tensor): a mistake in the command line
    (exit code 2), not an error raised by the user's code. The message is lrkit's, less the
    advice on arguments of the Python API that the command line does not have."""


@contextlib.contextmanager
def user_code(
    target: str | None,
    *,
    during: str = "",
    passes: tuple[type[BaseException], ...] = (),
    mistakes: bool = False,
) -> Iterator[None]:
    """Any exception raised in the block becomes a :class:`TargetError` for ``target``
    (``None``, the built-in demo: nothing is wrapped). ``KeyboardInterrupt`` and the
    exception types in ``passes`` (e.g. Optuna's ``TrialPruned``) go through unchanged. With
    ``mistakes=True``, a ``ValueError`` raised by lrkit's own code that never went through the
    user's (:func:`raised_by_lrkit`: lrkit's check of what the target returned) becomes a
    :class:`TargetMistake` instead."""
    if target is None:
        yield
        return
    through: tuple[type[BaseException], ...] = (TargetError, TargetMistake, *passes)
    try:
        with target_argv(target):
            yield
    except through:
        raise
    except (Exception, SystemExit) as exc:  # sys.exit() in the target: its error, not ours
        if mistakes and isinstance(exc, ValueError) and raised_by_lrkit(exc):
            raise TargetMistake(_without_api_advice(exc, target=target)) from exc
        raise TargetError(target, error=exc, during=during) from exc


@contextlib.contextmanager
def target_argv(target: str) -> Iterator[None]:
    """``sys.argv`` as the target's own (its name, no arguments) while its code runs, as
    ``python -m`` gives a module its own: a training script that parses the command line
    when imported reads its defaults, not lrkit's arguments. Put back afterwards."""
    saved = sys.argv
    sys.argv = [target]
    try:
        yield
    finally:
        sys.argv = saved


def _without_api_advice(error: ValueError, *, target: str) -> str:
    """The first line of lrkit's ``error``; of a :class:`lrkit.torch.BatchLayoutError`, its
    problem alone: its advice is on arguments of the Python API that the command line does not
    have (``step=`` of ``find_lr``, callable ``data`` of ``fit``). A
    :class:`lrkit.compare.NotFreshError` names ``target`` where it names ``make()``, less its
    hint on ``lrkit.compare.factory``."""
    from ..compare import NotFreshError

    try:
        from ..torch import BatchLayoutError
    except ImportError:  # without PyTorch none is raised
        pass
    else:
        if isinstance(error, BatchLayoutError):
            return str(error.problem)
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if isinstance(error, NotFreshError):
        first = first.split(" (lrkit.", 1)[0].replace("make()", f"target {target!r}", 1)
    return first


def naming(target: str, error: BaseException | str) -> str:
    """The message of ``error``, a mistake in what ``target`` returned, led by the target
    (``target 'pkg.mod:fn': ...``), unless it names the target already."""
    text = str(error)
    lead = f"target {target!r}"
    return text if text.startswith(lead) else f"{lead}: {text}"


#: What ``user_code`` says an error of the user's code came from while lrkit checks what a
#: target returned (reading its data runs the user's code: a generator, a loader, a factory).
CHECKING = "the check of what it returned"


def check_loss_fn(loss_fn: Any) -> None:
    """A one-line ValueError naming ``loss_fn`` when it is not callable, or is a loss's class
    rather than an instance of it."""
    if not callable(loss_fn):
        raise ValueError(
            f"loss_fn must be a callable loss_fn(output, target), got {type(loss_fn).__name__}"
        )
    try:
        V.not_a_class("loss_fn", loss_fn)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def check_batches(
    data: Any,
    *,
    name: str = "data",
    none: bool = False,
    read: bool = True,
    kinds: str = "(a list, a generator, a loader)",
) -> None:
    """``data``, what a target returned as ``name``: an iterable of ``(x, y)`` batches (or
    ``None`` where ``none``), at least one. A list or tuple: every batch is checked; another
    iterable: its first batch is read and checked (``read=False``: none, for data the run
    reads itself, checking each batch as it reads it). A one-line ValueError naming ``name``
    (a :class:`lrkit.torch.BatchLayoutError` without advice; ``kinds``: what ``data`` may be).
    Reading a shuffled loader draws from the RNGs: call it under ``preserved_rng``; a one-shot
    iterator read here is not there any more for the run."""
    import itertools

    from ..torch import check_batch

    if data is None and none:
        return
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        kinds = "or None" if none else kinds
        raise ValueError(
            f"{name} must be an iterable of (x, y) batches {kinds}, got {type(data).__name__}"
        )
    if isinstance(data, (list, tuple)):
        batches: Any = data
    elif read:
        from .._runtime import preserved_rng

        # a loader's own generator back where it was: the runs read from its first state
        with preserved_rng(data=(data,)):
            batches = list(itertools.islice(data, 1))
    else:
        return
    if not batches:
        raise ValueError(f"{name} must yield at least one batch, got none")
    for batch in batches:
        check_batch(batch, name=name, advice="")


def import_function(target: str) -> Callable[..., Any]:
    """:func:`lrkit._target.import_target`; an error raised while the target's module runs
    (other than its import errors) is a :class:`TargetError`."""
    from .._target import TargetNotFoundError, TargetSpecError, import_target

    try:
        with target_argv(target):
            return import_target(target)
    except (TargetSpecError, TargetNotFoundError):  # a command-line mistake
        raise
    except (Exception, SystemExit) as exc:  # sys.exit() when imported: its error, not ours
        raise TargetError(target, error=exc, during="the import") from exc


def call_target(fn: Callable[..., Any], *, target: str, returns: str) -> Any:
    """``fn()``: a ``ValueError`` (a mistake in the command line) when ``fn`` cannot be called
    without arguments (or is a model: a ``torch.nn.Module`` or a Keras layer, whose signature
    reads as any arguments), a :class:`TargetError` when it raises."""
    torch, keras = sys.modules.get("torch"), sys.modules.get("keras")
    if (torch is not None and isinstance(fn, torch.nn.Module)) or (
        keras is not None and isinstance(fn, keras.layers.Layer)
    ):
        raise ValueError(
            f"target {target!r} must be a function called with no arguments that returns "
            f"{returns}; it is a model ({type(fn).__name__}): name the function that builds it"
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read (some built-ins): just call it
        signature = None
    if signature is not None:
        try:
            signature.bind()
        except TypeError as exc:
            raise ValueError(
                f"target {target!r} must be a function called with no arguments that returns "
                f"{returns}; it cannot be called that way ({exc})"
            ) from None
    with user_code(target):
        return fn()


def _is_lrkit(filename: str) -> bool:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    name = _absolute(filename)  # (lrkit's own files have absolute names)
    return os.path.isabs(name) and name.startswith(root + os.sep)


def _is_users(filename: str) -> bool:
    """Whether ``filename`` is the user's code: neither lrkit's nor installed (the standard
    library, site-packages)."""
    import sysconfig

    installed = {
        os.path.normpath(sysconfig.get_paths()[k]) + os.sep
        for k in ("stdlib", "purelib", "platlib")
    }
    name = _absolute(filename)
    return not (_is_lrkit(name) or any(name.startswith(p) for p in installed))


def _absolute(filename: str) -> str:
    """``filename`` made absolute against the working folder, as given when that folder is
    gone (a target may have left the process in one removed since)."""
    if os.path.isabs(filename):
        return os.path.normpath(filename)
    here = starting_folder()
    return filename if here is None else os.path.normpath(os.path.join(here, filename))


def show_warnings(caught: Iterable[Any], *, shown: set[tuple[Any, ...]]) -> None:
    """Show warnings recorded while a command ran (``catch_warnings(record=True)``) as Python
    shows them, each once: a warning of the same text, category and place already in
    ``shown`` (the keys of those shown before, which this adds to) is left out, as Python's
    default filter leaves out a warning repeated at one place (a check run of 300 steps
    records the user's loss warning 300 times). The user's filters still apply."""
    for w in caught:
        key = (str(w.message), w.category, w.filename, w.lineno)
        if key not in shown:
            shown.add(key)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def raised_by_lrkit(error: BaseException) -> bool:
    """Whether ``error`` was raised by lrkit's own code and never went through the user's: its
    innermost frame is lrkit's, and no frame of its traceback, nor of the exceptions it was
    raised from or while handling, is the user's code (:func:`_is_users`; code without a file,
    ``<string>``, counts as the user's). An error of the user's model, loss or data is raised
    in (or through) the user's code, or in an installed package (torch): not lrkit's."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames or not _is_lrkit(frames[-1].filename):
        return False
    seen: set[int] = set()
    exc: BaseException | None = error
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if any(_is_users(f.filename) for f in traceback.extract_tb(exc.__traceback__)):
            return False
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return True


def _where(error: BaseException) -> str:
    """``file:line in function`` of the innermost frame of ``error``'s traceback in code that
    is neither lrkit's nor installed (the standard library, site-packages); ``""`` if none."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if not _is_users(frame.filename):
            continue
        if frame.filename.startswith("<"):
            continue
        here = starting_folder()  # None: the target left the process in a folder gone since
        name = _absolute(frame.filename)
        shown = os.path.relpath(name, here) if here and name.startswith(here + os.sep) else name
        return f"{shown}:{frame.lineno} in {frame.name}"
    return ""


def back_to_start(command: str, folder: str | None) -> bool:
    """Return to the folder the outputs were checked in (:func:`lrkit._files.back_to`); when
    it is gone, one line on stderr and False: the outputs are not written (elsewhere)."""
    if back_to(folder):
        return True
    print(
        f"lrkit {command}: error: the folder the command started in ({folder}) is gone: the "
        "output files were not written",
        file=sys.stderr,
    )
    return False


def cannot_write(command: str, *, option: str, path: str, error: BaseException) -> bool:
    """One line on stderr for an output that could not be written after the work was done
    (a full disk, a plotting backend that needs a missing program); returns True."""
    from .._format import shorten

    why = (str(error).strip().splitlines() or [""])[0]
    print(
        f"lrkit {command}: error: {option} {path!r}: could not write the file: "
        f"{type(error).__name__}" + (f": {shorten(why, 200)}" if why else ""),
        file=sys.stderr,
    )
    return True


def report_target_error(
    command: str,
    *,
    err: TargetError,
    show_traceback: bool,
    args: argparse.Namespace | None = None,
) -> int:
    """Print an error of the user's code: its traceback with ``--traceback``, then one line
    ``lrkit COMMAND: error in target 'pkg.mod:fn' (during ...): Type: message (at file:line in
    function)``; the secrets of what the user typed (``args``: a storage URL's password) are
    masked in both, as in every error of a command (the user's code may echo them). Returns
    exit code 1."""
    from .._format import mask_arguments, shorten

    said = typed(args)
    if show_traceback:
        lines = traceback.format_exception(err.error)
        print(mask_arguments("".join(lines), said), end="", file=sys.stderr)
    during = f" during {err.during}" if err.during else ""
    where = _where(err.error)
    tail = [f"at {where}"] if where else []
    if not show_traceback:
        tail.append("--traceback shows the full traceback")
    # every line of the message, on one line (the first often only says what failed: a
    # state dict's "Error(s) in loading", its missing keys on the next)
    text = " / ".join(ln.strip() for ln in str(err.error).strip().splitlines() if ln.strip())
    what = f"{type(err.error).__name__}: {text}" if text else type(err.error).__name__
    what = mask_arguments(what, said)
    line = f"lrkit {command}: error in target {err.target!r}{during}: {shorten(what, 300)}"
    print(line + (f" ({'; '.join(tail)})" if tail else ""), file=sys.stderr)
    return 1
