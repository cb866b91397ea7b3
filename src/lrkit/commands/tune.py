"""``lrkit tune``: search the learning rate and the schedule with Optuna.

    lrkit tune --demo                                    # built-in digits task
    lrkit tune pkg.module:function --trials 50 \\
        --storage postgresql://user@host:5432/db --study exp1   # same command on every worker

``pkg.module:function`` is imported (never eval'd) and called with no arguments; it returns a
``lrkit.tune.Task`` (or a dict of its fields, or ``(model_factory, loss_fn, data,
val_data)`` for PyTorch). See ``lrkit.tune.load_target``.

The tuple is lrkit's to train (``lrkit.tune.torch_task``), so what it holds is checked before
the range test and any trial: a callable ``loss_fn``, and ``(x, y)`` batches in ``data``
and ``val_data``, at least one. Anything else is a command-line mistake (exit code 2, one line
naming the target), also when it shows only in use (a ``loss_fn`` that returns no tensor). A
``Task``'s own ``train`` and ``range_test`` are the user's code: their errors are the target's
(exit code 1).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import sys
import warnings
from collections.abc import Mapping
from typing import Any

from .. import _validate as V
from .._files import (
    IMAGE_TYPES,
    check_output,
    fresh_path,
    names_stdout,
    starting_folder,
    write_file_whole,
    write_new,
)
from .._format import mask_secrets, mask_url, shorten
from .._imports import install_hint, install_note
from ..finder import LRFinderWarning
from ..tune import (
    DEFAULT_STORAGE,
    DEMO_TASK,
    FAMILIES,
    MAX_GRACE,
    MAX_HEARTBEAT,
    MAX_STUDY_NAME,
    DatabaseLostError,
    Task,
    TuneWarning,
    check_metric,
    check_range_test,
    check_storage,
    check_writable,
    database_error,
    database_errors,
    is_torch_tuple,
    lost_connection,
    sqlite_file,
)
from ._help import HelpFormatter, rename
from ._target import (
    CHECKING,
    Printer,
    TargetMistake,
    add_json_option,
    add_traceback_option,
    back_to_start,
    call_target,
    cannot_write,
    check_batches,
    check_distinct,
    check_loss_fn,
    check_plot_package,
    check_seed,
    import_function,
    naming,
    preserved_global_state,
    print_error,
    reporting_target_errors,
    same_file,
    show_progress,
    show_warnings,
    torch_missing,
    user_code,
    write_json,
)
from .signals import TERMINATED_EXIT, Terminated

HELP = "Search learning rate and schedule with Optuna."


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "tune",
        help=HELP,
        description=HELP
        + " Runs until the study has --trials COMPLETE trials (pruned or diverged trials are"
        " kept in the study but do not count). Start the same command on many machines with a"
        " shared --storage to search together.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "target",
        nargs="?",
        metavar="MODULE:FUNCTION",
        help="function returning a lrkit.tune.Task (or dict, or "
        "(model_factory, loss_fn, data, val_data))",
    )
    p.add_argument("--demo", action="store_true", help="tune the built-in demo task")
    p.add_argument(
        "--demo-task",
        default=None,
        help=f"which lrkit.torch.demo task --demo uses (default: {DEMO_TASK})",
    )
    p.add_argument("--trials", type=int, default=20, help="COMPLETE trials to reach")
    p.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help="Optuna storage URL (sqlite:///file.db, postgresql://user@host:port/db)",
    )
    p.add_argument(
        "--study",
        default=None,
        help="study name (default: from the target, lrkit-demo-<task> with --demo); a study "
        "is continued only with the search space it was created with",
    )
    p.add_argument(
        "--seeding",
        choices=("finder", "blind"),
        default=None,  # given or not: --lr-range refuses it rather than ignore it
        help="finder: bound the peak LR by a range test; blind: search 1e-6..10 (default: finder)",
    )
    p.add_argument(
        "--lr-range",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        help="peak-LR interval (default: from --seeding)",
    )
    p.add_argument(
        "--families",
        default=None,
        help=f"comma-separated families ({','.join(FAMILIES)}) (default: all)",
    )
    p.add_argument(
        "--pruner",
        choices=("percentile", "median", "sha", "none"),
        default="percentile",
        help="stop a trial in the worst quarter (percentile) or half (median) at an epoch; "
        "sha: successive halving",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs per trial, demo/tuple tasks (default: 4 with --demo, else 5)",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="TPE sampler seed, one worker (default: random)"
    )
    p.add_argument(
        "--heartbeat",
        type=int,
        default=None,
        help="heartbeat interval, seconds (default: the study's, 10 for a new study)",
    )
    p.add_argument(
        "--grace",
        type=int,
        default=None,
        help="seconds without heartbeat before a trial fails; longer than --heartbeat, at "
        "most 30 days (default: the study's, 3 x --heartbeat for a new study)",
    )
    p.add_argument("--max-retry", type=int, default=3, help="retries of a killed trial")
    p.add_argument(
        "--max-trials",
        type=int,
        default=None,
        help="cap on the trials this run starts; when reached first the command exits with "
        "code 1, and running it again starts up to as many more (default: 10x --trials, at "
        "least --trials + 50)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="start no new trial once SECONDS have passed since the search began (its range "
        "test included; a running trial finishes, a wait for other workers' trials stops); "
        "when reached first the command exits with code 1, and running it again continues the "
        "study (default: no limit)",
    )
    p.add_argument("--top", type=int, default=5, help="rows of the final table")
    p.add_argument(
        "--plot",
        default=None,
        help="image of the search (value per trial, LR vs value); 'none' to skip "
        "(default: lrkit-tune-<study>.png)",
    )
    add_json_option(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="print only the best spec (a --plot given is still written)",
    )
    add_traceback_option(p)
    return p


def _default_plot(study: str) -> str:
    """The plot ``lrkit tune`` writes without ``--plot``: a free name in the working folder
    (a long study name is cut, with a digest of the whole, so the file name stays short)."""
    slug = _slug(study)
    if len(slug) > 100:
        slug = f"{slug[:80]}-{hashlib.sha1(study.encode()).hexdigest()[:10]}"
    return fresh_path(f"lrkit-tune-{slug}.png")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "study"


def run(args: argparse.Namespace) -> int:
    with preserved_global_state():  # RNGs, torch threads, sys.path: as the caller had them
        try:
            import optuna
        except ImportError:
            return _run(args)
        verbosity = optuna.logging.get_verbosity()
        # a failing trial's exception reaches the user once (as an error line, or as the
        # traceback of a real bug), not also through Optuna's log
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        try:
            return _run(args)
        finally:
            optuna.logging.set_verbosity(verbosity)


#: ``lrkit.tune``'s parameter names -> the options of this command.
OPTIONS = {
    "lr_range[0]": "--lr-range LOW",
    "lr_range[1]": "--lr-range HIGH",
    "families": "--families",
    "total_steps": "--epochs",
}

#: What a target of ``lrkit tune`` returns.
RETURNS = "a lrkit.tune.Task, a dict of its fields or (model_factory, loss_fn, data, val_data)"


def parse_families(text: str | None) -> tuple[str, ...]:
    """``--families``: a comma-separated, non-empty subset of the families, in their
    canonical order (so that the same set always names the same search space)."""
    if text is None:
        return FAMILIES
    names = [f.strip() for f in text.split(",") if f.strip()]
    if not names or any(f not in FAMILIES for f in names):
        raise ValueError(
            f"--families must be a comma-separated list of one or more of {','.join(FAMILIES)}, "
            f"got {shorten(repr(text), 80)}"
        )
    return tuple(f for f in FAMILIES if f in names)


def _option(name: str, value: Any) -> str:
    """How a stored search-space setting reads as the option that gives it."""
    if name == "families":
        return f"--families {','.join(value)}"
    if name == "seeding":
        if isinstance(value, str):
            return f"--seeding {value}"
        return f"--lr-range {value[0]:g} {value[1]:g}"
    if name == "total_steps":
        return f"{value} training steps per trial"
    if name == "direction":  # the target's Task.direction
        return f"direction {value!r}"
    if name == "task":  # demo:NAME (--demo, --demo-task) or the target pkg.module:function
        return f"task {value!r}"
    if name == "heartbeat_interval":  # the study's workers share one heartbeat
        return f"--heartbeat {value}"
    if name == "grace_period":
        return f"--grace {value}"
    return f"{name}={value!r}"  # pragma: no cover - tune checks only the seven above


def _guarded(task: Any, target: str | None, *, lrkit_trains: bool = False) -> Any:
    """``task`` whose ``train`` and ``range_test`` report an error of the target's code as a
    :class:`TargetError` (Optuna's ``TrialPruned`` passes), and so does a ``train`` that
    returns something other than a real number; the demo task is left as it is. With
    ``lrkit_trains`` (the task lrkit trains from a target's tuple, see
    :func:`lrkit.tune.is_torch_tuple`), lrkit's checks of what the target returned that fail
    only in use (a ``loss_fn`` that returns no tensor) are a :class:`TargetMistake`."""
    if target is None:
        return task
    import dataclasses

    import optuna

    passes: tuple[type[BaseException], ...] = (optuna.TrialPruned, *database_errors())

    def wrap(fn: Any, during: str, check: Any = None) -> Any:
        if fn is None:
            return None

        def run(*a: Any) -> Any:
            with user_code(target, during=during, passes=passes, mistakes=lrkit_trains):
                out = fn(*a)
                return out if check is None else check(out)

        return run

    def checked_range(out: Any) -> Any:
        try:
            return check_range_test(out)
        except ValueError as exc:  # what the target's range test returned: its mistake
            raise TargetMistake(str(exc)) from None

    return dataclasses.replace(
        task,
        train=wrap(task.train, "a trial", check_metric),
        range_test=wrap(task.range_test, "the range test", checked_range),
    )


def _stored(storage: Any, study: str | None) -> bool | None:
    """Whether the SQLite database of ``storage`` holds the study ``study`` (read only, without
    creating anything); ``None`` when that cannot be told (another database, an error). A new
    study's range test runs before the study is created: interrupted there, nothing was."""
    path = sqlite_file(storage)
    if path is None or study is None:
        return None
    if not os.path.isfile(path):
        return False
    import sqlite3
    from urllib.parse import quote

    try:
        with contextlib.closing(sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)) as db:
            row = db.execute("select 1 from studies where study_name = ?", (study,)).fetchone()
    except sqlite3.Error:  # no studies table yet, locked, not a database
        return None
    return row is not None


#: What the data of a target's tuple may be (``lrkit.tune.torch_task`` reads it every epoch).
TUPLE_DATA = "(a list, a DataLoader, or a function returning one)"


def _sized(data: Any) -> bool:
    try:
        len(data)
    except TypeError:  # no __len__, or a DataLoader over an IterableDataset
        return False
    return True


def _check_torch_tuple(value: Any, target: str) -> None:
    """What lrkit's training of a target's ``(model_factory, loss_fn, data, val_data)``
    needs of it, checked before the range test or any trial: a callable ``loss_fn``, and
    ``data`` and ``val_data`` (the metric of every trial) yielding ``(x, y)`` batches, at
    least one (a function returning them is called; a list or tuple: every batch is checked,
    else the first). A one-shot iterator (a generator) is not read: ``as_task`` refuses it. A
    one-line ValueError naming the target; an error of the user's code (a loader, a data
    function) is a :class:`TargetError`."""
    from .._runtime import one_pass, preserved_rng

    _, loss_fn, data, val_data = value
    try:
        with preserved_rng(import_torch=True):  # a shuffled loader draws nothing the trials see
            with user_code(target, during=CHECKING, mistakes=True):
                check_loss_fn(loss_fn)
                for name, source in (("data", data), ("val_data", val_data)):
                    if not hasattr(source, "__next__"):
                        batches = one_pass(source)
                        check_batches(batches, name=name, kinds=TUPLE_DATA)
                        if name == "data" and not _sized(batches):
                            # an epoch's steps are its len(): the command line cannot give them
                            raise TargetMistake(
                                "data must have a len() (a list, or a DataLoader over a "
                                "sized dataset): a trial trains --epochs x its batches, got "
                                f"a {type(batches).__name__} without one"
                            )
    except TargetMistake as exc:
        raise ValueError(naming(target, exc)) from None


def _run(args: argparse.Namespace) -> int:
    try:
        return reporting_target_errors("tune", _tune, args)
    except Exception as exc:
        lost = database_error(exc)
        if lost is None:
            raise
        # the database stopped answering (during or after the run)
        print_error("tune", lost_connection(lost, args.storage, again="run the same command"), args)
        return 1


def _tune(args: argparse.Namespace) -> int:
    from ..tune import (
        BLIND_LR_RANGE,
        ForeignStudyError,
        SearchSpace,
        StudySpaceError,
        as_task,
        tune,
    )

    url = args.storage if isinstance(args.storage, str) else None

    def err(msg: str, code: int = 2) -> int:
        print_error("tune", mask_secrets(msg, url), args)
        return code

    if args.demo == bool(args.target):
        return err("give either --demo or a target pkg.module:function")
    from importlib.util import find_spec

    if find_spec("optuna") is None:  # worded as lrkit find and compare say it of PyTorch
        print(install_hint("optuna", "tune", feature="lrkit tune"), file=sys.stderr)
        return 2
    if args.demo:  # the demo task is a PyTorch one: said as lrkit find --demo says it
        missing = torch_missing("lrkit tune --demo")
        if missing is not None:
            print(missing, file=sys.stderr)
            return 2
    if args.lr_range is not None and args.seeding is not None:  # refused rather than ignored
        return err(
            "--lr-range gives the interval that --seeding would find: give one of them, got "
            f"--seeding {args.seeding} and --lr-range {args.lr_range[0]:g} {args.lr_range[1]:g}"
        )
    seeding: Any = (args.seeding or "finder") if args.lr_range is None else tuple(args.lr_range)
    quiet = args.quiet

    def say(msg: str) -> None:
        if not quiet:
            print(mask_secrets(msg, url), file=sys.stderr)

    study = args.study
    searching = False
    start = starting_folder()  # relative outputs are written from there
    if study is not None:
        try:
            V.utf8_text("--study", study)
        except ValueError as exc:
            return err(str(exc))
    try:
        V.integer("--trials", args.trials, 1)
        V.integer("--top", args.top, 1)
        if args.max_trials is not None:
            V.integer("--max-trials", args.max_trials, args.trials)
        if args.timeout is not None:
            V.positive("--timeout", args.timeout)
        if args.seed is not None:
            check_seed(args.seed)
        if study is not None and not study.strip():
            raise ValueError(f"--study must be a non-empty name, got {V.fmt(study)}")
        if study is not None and "://" in study:  # a URL given to the wrong option
            raise ValueError(
                "--study is the study's name; a database URL goes to --storage, got --study "
                f"{mask_url(study)!r}"
            )
        if study is not None and len(study) > MAX_STUDY_NAME:
            raise ValueError(
                f"--study must be at most {MAX_STUDY_NAME} characters (what Optuna stores), "
                f"got {len(study)}"
            )
        families = parse_families(args.families)
        if args.epochs is not None:
            V.integer("--epochs", args.epochs, 1)
        if args.heartbeat is not None:
            V.integer("--heartbeat", args.heartbeat, 1, MAX_HEARTBEAT)
        if args.grace is not None:
            V.integer("--grace", args.grace, 1, MAX_GRACE)
            # given alone, it is checked against the study's heartbeat (or a new study's 10)
            if args.heartbeat is not None and args.grace <= args.heartbeat:
                raise ValueError(
                    f"--grace must be longer than --heartbeat (a running trial renews its "
                    f"heartbeat every --heartbeat seconds), got --grace {args.grace} <= "
                    f"--heartbeat {args.heartbeat}"
                )
        if args.max_retry is not None:
            V.integer("--max-retry", args.max_retry, 0)
        plot = args.plot
        if plot is not None and plot.lower() == "none":
            plot = None
        if isinstance(args.storage, str):  # (first: the study's own file is said as such)
            check_storage(args.storage, name="--storage")
            _check_not_the_database(args.storage, {"--json": args.json, "--plot": plot})
        if args.json is not None:
            check_output(args.json, option="--json", example="results.json")
        if plot is not None:
            check_plot_package("--plot")  # asked for by name: refused (the default: a note)
            check_output(plot, option="--plot", types=IMAGE_TYPES)
        check_distinct({"--json": args.json, "--plot": plot})
        if isinstance(args.storage, str):
            # an SQLite file that cannot be written (made read-only, in a read-only folder):
            # refused before the target's code runs (a server is asked as tune() opens it)
            check_writable(args.storage)
        lrkit_trains = False  # whether lrkit trains the target's tuple (lrkit.tune.torch_task)
        if args.demo:
            from ..torch.demo import TASKS
            from ..tune import demo_task

            name = V.choice(
                "--demo-task", DEMO_TASK if args.demo_task is None else args.demo_task, TASKS
            )
            try:
                task = demo_task(name, epochs=4 if args.epochs is None else args.epochs)
            except ValueError as exc:
                raise rename(exc, names={"epochs": "--epochs"}) from None
            study = study or f"lrkit-demo-{name}"
        else:
            if args.demo_task is not None:
                raise ValueError(
                    "--demo-task chooses the built-in task of --demo; it has no use with a "
                    f"target, got --demo-task {args.demo_task!r} and {args.target!r}"
                )
            fn = import_function(args.target)
            value = call_target(fn, target=args.target, returns=RETURNS)
            if args.epochs is not None and isinstance(value, (Task, Mapping)):
                # (what it may not return at all is said below, by the check of it)
                raise ValueError(
                    "--epochs sets the epochs of --demo and of a target that returns "
                    "(model_factory, loss_fn, data, val_data); a Task sets its own "
                    f"total_steps, got --epochs {args.epochs} and a target {args.target!r} "
                    f"returning {'a Task' if isinstance(value, Task) else 'a dict of its fields'}"
                )
            epochs = 5 if args.epochs is None else args.epochs
            lrkit_trains = is_torch_tuple(value)
            if lrkit_trains:
                _check_torch_tuple(value, args.target)
            try:
                task = as_task(value, epochs=epochs, name=args.target, target=args.target)
            except ValueError as exc:  # what the target returned: named, as the others
                text = str(rename(exc, names={"epochs": "--epochs"}))
                # (one that leads with an option of the command is the command line's)
                shown = text if text.startswith("--") else naming(args.target, text)
                raise ValueError(shown) from None
            study = study or _slug(args.target)
        if args.plot is None and not quiet:  # the default plot, written after the search
            try:
                check_output(_default_plot(study), option="--plot", types=IMAGE_TYPES)
            except ValueError as exc:
                raise ValueError(f"{exc} (the default plot; --plot none writes none)") from None
        try:
            SearchSpace(
                task.total_steps, lr_range=args.lr_range or BLIND_LR_RANGE, families=families
            )
        except ValueError as exc:
            raise rename(exc, names=OPTIONS) from None
        task = _guarded(task, None if args.demo else args.target, lrkit_trains=lrkit_trains)
        searching = True  # an interrupt from here on leaves a study to continue
        # recorded under the user's warning filters (an "error" filter raises where it would),
        # lrkit's own notes whatever they are: this command says them in its words
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TuneWarning)
            warnings.simplefilter("ignore", LRFinderWarning)  # the first lines give the interval
            result = tune(
                task,
                n_trials=args.trials,
                storage=args.storage,
                study_name=study,
                seeding=seeding,
                families=families,
                pruner=args.pruner,
                seed=args.seed,
                heartbeat_interval=args.heartbeat,
                grace_period=args.grace,
                max_retry=args.max_retry,
                max_trials=args.max_trials,
                timeout=args.timeout,
                progress=show_progress(args),  # on a terminal only
                log=say,
            )
        # tune()'s notes name its seeding="finder": here, --seeding's (given or the default)
        finder = {
            "seeding='finder'": "--seeding finder" + ("" if args.seeding else " (the default)")
        }
        for w in caught:  # tune()'s notes on the search, in this command's words
            if issubclass(w.category, TuneWarning) and "max_trials" not in str(w.message):
                say(f"note: {rename(str(w.message), names=finder)}")
        # the others (the task's code's, torch's), as Python shows them, each once
        show_warnings([w for w in caught if not issubclass(w.category, TuneWarning)], shown=set())
    except StudySpaceError as exc:
        was = ", ".join(_option(k, a) for k, (a, _) in exc.conflicts.items())
        now = ", ".join(_option(k, b) for k, (_, b) in exc.conflicts.items())
        steps = (
            " (set by --epochs, or the target's total_steps)"
            if "total_steps" in exc.conflicts
            else " (the target's Task.direction)"
            if "direction" in exc.conflicts
            else ""
        )
        heart = {"heartbeat_interval", "grace_period"} & set(exc.conflicts)
        advice = "pass --study NAME for a new study, or the same options to continue it" + (
            " (or leave out --heartbeat and --grace)" if heart else ""
        )
        return err(
            f"study {exc.study_name!r} ({mask_url(args.storage)}) was created with {was}, not "
            f"{now}{steps}: {exc.advice or advice}"
        )
    except TargetMistake as exc:  # what the target returned, seen once it was used
        return err(naming(args.target, exc))
    except DatabaseLostError as exc:  # the database stopped answering during the run
        print_error("tune", lost_connection(exc.lost, args.storage, again="run the same command"),
                    args)  # fmt: skip
        return 1
    except (ValueError, ImportError) as exc:  # bad options, target, storage or package
        if _raised_by_optuna(exc):
            raise  # not a mistake in the command line: Optuna's own error, with its traceback
        if isinstance(exc, ForeignStudyError):  # a study lrkit leaves alone: its options
            return err(str(rename(exc, names={"study_name": "--study", "storage": "--storage"})))
        options = {"heartbeat_interval": "--heartbeat", "grace_period": "--grace"}
        return err(str(rename(exc, names=options)))
    except KeyboardInterrupt as exc:
        how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        kept = (
            f"; the finished trials stay in study {study!r} ({mask_url(args.storage)}): run "
            "the same command to continue"
            if searching
            and getattr(exc, "study_created", None) is not False
            and _stored(args.storage, study) is not False
            else " before the search began (nothing was stored)"
        )
        print(f"\nlrkit tune: {how}{kept}", file=sys.stderr)
        return TERMINATED_EXIT if isinstance(exc, Terminated) else 130
    if not back_to_start("tune", start):  # where the outputs were checked
        return 1
    n_done = len(result.complete_trials)
    failed = json_written = False
    out = Printer()  # a reader that goes away stops the printing, not the plot

    def json_file() -> bool:
        return write_json(
            "tune", args.json, _results(result, study, mask_url(args.storage)), out=out
        )

    json_last = names_stdout(args.json)  # JSON on standard output comes after every line
    if args.json and not json_last:
        failed = json_file()
        json_written = not failed
    if n_done and quiet:
        out(result.best_spec)
    elif n_done:
        _print(result, study, mask_url(args.storage), args.top, say=out)
    # --quiet prints less; a --plot that was asked for is written all the same (also when no
    # trial finished: it shows the pruned and diverged ones)
    plot = args.plot
    default = plot is None
    if plot is None and not quiet and n_done:
        plot = _default_plot(study)
    if plot is not None and plot.lower() != "none":
        try:
            if default:  # never replaces a file that appeared there meanwhile
                plot = write_new(plot, result.plot)
            else:  # whole or not at all: a failed write leaves the file that was there
                write_file_whole(plot, result.plot)
            if not quiet:
                out(f"plot of the search: {plot}")
        except ImportError:
            note = install_note("matplotlib", "plot", feature="--plot", skipped="no plot")
            if quiet:
                print(note, file=sys.stderr)
            else:
                out(note)
        except Exception as exc:  # the image could not be written (disk, backend)
            failed = cannot_write("tune", option="--plot", path=plot, error=exc)
    if json_written and not quiet:
        out(f"results written to {args.json}")
    if args.json and json_last:
        failed = json_file() or failed
    out.check()  # the reader went away: exit code 141, the files written all the same
    if not n_done:
        if result.stop_reason == "max_trials":
            return err(
                f"no trial finished: {_why(result)}; run the same command again to start up "
                f"to --max-trials more, or {_cap_remedy(result)}",
                1,
            )
        if result.stop_reason == "timeout":
            return err(
                f"no trial finished: {_why(result)}; run the same command again to continue "
                "the study, or raise --timeout",
                1,
            )
        return err("no trial finished (all were pruned, diverged or failed)", 1)
    if not result.reached:
        remedy = "raise --timeout" if result.stop_reason == "timeout" else _cap_remedy(result)
        return err(
            f"only {n_done} of {args.trials} trials COMPLETE: {_why(result)}; run the same "
            f"command again to add trials to the study, or {remedy}",
            1,
        )
    return 1 if failed else 0


def _raised_by_optuna(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside Optuna (its own run-time error, not a user mistake
    that lrkit's checks name)."""
    tb = exc.__traceback__
    name = ""
    while tb is not None:
        name = str(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    return name == "optuna" or name.startswith("optuna.")


def _check_not_the_database(storage: str, outputs: dict[str, str | None]) -> None:
    """A one-line ValueError when an output file is the SQLite database of ``--storage``
    (writing it would destroy the study)."""
    db = sqlite_file(storage)
    if db is None:
        return
    for option, path in outputs.items():
        if path is not None and same_file(path, other=db):
            raise ValueError(
                f"{option} {path!r} is the database file of --storage {mask_url(storage)}: "
                "writing it would destroy the study; give another file name"
            )


def _diverged(result: Any) -> int:
    """The trials of the study that diverged (a NaN/inf metric; Optuna records them as
    PRUNED, whatever the pruner)."""
    return sum(1 for t in result.study.trials if t.user_attrs.get("diverged"))


def _why(result: Any) -> str:
    counts = result.counts()
    pruned, failed = counts.get("PRUNED", 0), counts.get("FAIL", 0)
    diverged = _diverged(result)
    tally = f"{pruned - diverged} pruned, {diverged} diverged, {failed} failed in the study"
    if result.stop_reason == "max_trials":
        return (
            f"this run reached its cap of {result.max_trials} started trials (--max-trials; "
            f"{tally})"
        )
    if result.stop_reason == "timeout":
        return (
            f"this run stopped at its --timeout of {result.timeout:g} seconds (no new trial is "
            f"started after it; {tally})"
        )
    return f"stopped early ({result.stop_reason})"


def _cap_remedy(result: Any) -> str:
    """What to change when the --max-trials cap stopped the search short: the cap, or the
    pruner; when every pruned trial diverged (which no pruner setting keeps), the LR range."""
    pruned = result.counts().get("PRUNED", 0)
    if pruned and _diverged(result) == pruned:
        return (
            "raise --max-trials, or search lower LRs with a lower top of --lr-range (every "
            "pruned trial diverged, which no pruner setting changes)"
        )
    return "raise --max-trials / use --pruner none"


def _print(result: Any, study: str, where: str, top: int, *, say: Any = print) -> None:
    counts = ", ".join(f"{k.lower()} {v}" for k, v in sorted(result.counts().items()))
    lo, hi = result.lr_range
    say(f"study {study!r} ({where}): {counts}")
    say(f"peak LR searched in [{lo:.3g}, {hi:.3g}] ({result.searched_by})")
    say()
    import shutil

    say(result.table(top, width=min(shutil.get_terminal_size((120, 24)).columns, 160)))
    say()
    say(f"best {result.metric}: {result.best_value:.4g} (trial {result.best_trial.number})")
    say("best schedule (full precision):")
    say(result.best_spec)


def _results(result: Any, study: str, where: str) -> dict[str, Any]:
    """What ``--json`` holds: the study, its best trial and every trial, full precision."""
    import math

    def num(v: Any) -> Any:
        return v if not isinstance(v, float) or math.isfinite(v) else None

    trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": num(t.value),
            "params": {k: num(v) for k, v in t.params.items()},
            "schedule": t.user_attrs.get("schedule"),
            # a pruned trial's value is its last reported one; a diverged trial's metric was
            # NaN or inf
            "diverged": bool(t.user_attrs.get("diverged", False)),
        }
        for t in result.study.get_trials(deepcopy=False)
    ]
    complete = result.complete_trials
    return {
        "study": study,
        "storage": where,
        "metric": result.metric,
        "n_trials": result.n_trials,
        "complete": len(complete),
        "reached": result.reached,
        "lr_range": list(result.lr_range),
        "seeding": result.seeding,
        "searched_by": result.searched_by,
        "best": (
            {
                "trial": result.best_trial.number,
                "value": result.best_value,
                "schedule": result.best_spec,
            }
            if complete
            else None
        ),
        "trials": trials,
    }
