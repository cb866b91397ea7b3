"""``lrkit tune``: search the learning rate and the schedule with Optuna.

    lrkit tune --demo                                    # built-in digits task
    lrkit tune pkg.module:function --trials 50 \\
        --storage postgresql://user@host:5432/db --study exp1   # same command on every worker

``pkg.module:function`` is imported (never eval'd) and called with no arguments; it returns a
``lrkit.tune.Task`` (or a dict of its fields, or ``(model_factory, loss_fn, train_data,
val_data)`` for PyTorch). See ``lrkit.tune.load_target``.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from .. import _validate as V
from .._files import fresh_path
from ._target import check_seed, preserved_global_state

HELP = "Search learning rate and schedule with Optuna."


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "tune",
        help=HELP,
        description=HELP
        + " Runs until the study has --trials COMPLETE trials (pruned or diverged trials are"
        " kept in the study but do not count). Start the same command on many machines with a"
        " shared --storage to search together.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "target",
        nargs="?",
        help="pkg.module:function returning a lrkit.tune.Task (or dict, or "
        "(model_factory, loss_fn, train_data, val_data))",
    )
    p.add_argument("--demo", action="store_true", help="tune the built-in demo task")
    p.add_argument(
        "--demo-task", default="digits_mlp_sgd", help="which lrkit.torch.demo task --demo uses"
    )
    p.add_argument("--trials", type=int, default=20, help="COMPLETE trials to reach")
    p.add_argument(
        "--storage",
        default="sqlite:///lrkit-tune.db",
        help="Optuna storage URL (sqlite:///file.db, postgresql://user@host:port/db)",
    )
    p.add_argument("--study", default=None, help="study name (default: from the target)")
    p.add_argument(
        "--seeding",
        choices=("finder", "blind"),
        default="finder",
        help="finder: bound the peak LR by a range test; blind: search 1e-6..10",
    )
    p.add_argument(
        "--lr-range", nargs=2, type=float, metavar=("LOW", "HIGH"), help="peak-LR interval"
    )
    p.add_argument(
        "--families",
        default=None,
        help="comma-separated families (constant,cosine,onecycle,step,cyclic,wsd)",
    )
    p.add_argument(
        "--pruner", choices=("median", "sha", "none"), default="median", help="Optuna pruner"
    )
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (demo/tuple tasks)")
    p.add_argument("--seed", type=int, default=None, help="TPE sampler seed (one worker)")
    p.add_argument("--heartbeat", type=int, default=10, help="heartbeat interval, seconds")
    p.add_argument(
        "--grace", type=int, default=None, help="seconds without heartbeat before a trial fails"
    )
    p.add_argument("--max-retry", type=int, default=3, help="retries of a killed trial")
    p.add_argument("--max-trials", type=int, default=None, help="cap on trials started in all")
    p.add_argument("--top", type=int, default=5, help="rows of the final table")
    p.add_argument(
        "--plot",
        default=None,
        help="image of the search (value per trial, LR vs value); 'none' to skip "
        "(default: lrkit-tune-<study>.png)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--quiet", action="store_true", help="print only the best spec")
    return p


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "study"


def run(args: argparse.Namespace) -> int:
    with preserved_global_state():  # RNGs, torch threads, sys.path: as the caller had them
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..tune import FAMILIES, load_target, tune

    def err(msg: str) -> int:
        print(f"lrkit tune: error: {msg}", file=sys.stderr)
        return 2

    if args.demo == bool(args.target):
        return err("give either --demo or a target pkg.module:function")
    try:
        import optuna
    except ImportError:
        return err("optuna is not installed: pip install 'lrkit[tune]'")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    families = tuple(FAMILIES)
    if args.families:
        families = tuple(f.strip() for f in args.families.split(",") if f.strip())
    seeding: Any = args.seeding if args.lr_range is None else tuple(args.lr_range)
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    try:
        V.integer("--top", args.top, 1)
        if args.seed is not None:
            check_seed(args.seed)
        bad = [f for f in families if f not in FAMILIES]
        if bad or not families:
            raise ValueError(
                f"--families must be a comma-separated subset of {','.join(FAMILIES)}, "
                f"got {args.families!r}"
            )
        if args.epochs is not None:
            V.integer("--epochs", args.epochs, 1)
        if args.demo:
            from ..tune import demo_task

            task = demo_task(args.demo_task, epochs=4 if args.epochs is None else args.epochs)
            study = args.study or f"lrkit-demo-{args.demo_task}"
        else:
            task = load_target(args.target, epochs=5 if args.epochs is None else args.epochs)
            study = args.study or _slug(args.target)
        result = tune(
            task,
            args.trials,
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
            progress=not (args.no_progress or args.quiet),
            log=say,
        )
    except (ValueError, ImportError) as exc:  # bad options, target or missing package
        return err(str(exc))
    if not result.complete_trials:
        return err("no trial finished")
    if args.quiet:
        print(result.best_spec)
        return 0
    counts = ", ".join(f"{k.lower()} {v}" for k, v in sorted(result.counts().items()))
    lo, hi = result.lr_range
    print(f"study {study!r} ({args.storage}): {counts}")
    print(f"peak LR searched in [{lo:.3g}, {hi:.3g}] ({result.seeding})")
    print()
    print(result.table(args.top))
    print()
    print(f"best {result.metric}: {result.best_value:.6g} (trial {result.best_trial.number})")
    print("best schedule:")
    print(result.best_spec)
    plot = args.plot if args.plot is not None else fresh_path(f"lrkit-tune-{_slug(study)}.png")
    if plot.lower() != "none":
        try:
            result.plot(plot)
            print(f"plot of the search: {plot}")
        except ImportError:
            print("(matplotlib not installed: no plot; pip install 'lrkit[plot]')")
        except OSError as exc:
            print(f"(could not write the plot {plot}: {exc})", file=sys.stderr)
    return 0
