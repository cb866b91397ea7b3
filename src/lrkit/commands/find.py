"""``lrkit find``: run the LR range test, print the suggestions, plot, and check them by training.

    lrkit find --demo                       # built-in task: scikit-learn digits, MLP, Adam
    lrkit find mypkg.tasks:make_task        # your function -> (model, optimizer, loss_fn, data)

The user function is imported with ``importlib`` (only the module named, no code evaluated from
the command line) and called with no arguments; it returns ``(model, optimizer, loss_fn,
data)`` and optionally a fifth item, validation batches. After the sweep the command trains
briefly twice from fresh copies (the function is called again; the demo rebuilds its model):
at the constant ``suggestion`` and with ``onecycle(max_lr)``, and prints the final loss.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from typing import Any

from .. import _validate as V
from ..finder import DEFAULT_RULE, METHODS
from ._target import (
    add_torch_task_parser,
    evaluate,
    import_target,
    run_torch_command,
    seed_all,
    unpack_torch_task,
)

DEFAULT_OUTPUT = "lrkit_find.png"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    def own(p: argparse.ArgumentParser) -> None:
        p.add_argument("--start-lr", type=float, default=1e-7, help="first LR (default 1e-7)")
        p.add_argument("--end-lr", type=float, default=10.0, help="last LR (default 10)")
        p.add_argument("--num-iter", type=int, default=100, help="sweep steps (default 100)")
        p.add_argument("--method", default=DEFAULT_RULE, choices=METHODS, help="suggestion rule")
        p.add_argument(
            "--total-steps",
            type=int,
            default=None,
            help="optimizer steps you plan to train: the suggestions depend on it "
            "(default: --train-steps, or 1000 with --no-train)",
        )
        p.add_argument("--train-steps", type=int, default=300, help="steps of each check run")
        p.add_argument("--no-train", action="store_true", help="skip the two check runs")

    return add_torch_task_parser(
        subparsers,
        "find",
        "Run the learning-rate range test and suggest learning rates.",
        __doc__.split("\n\n")[0] if __doc__ else None,
        DEFAULT_OUTPUT,
        own,
    )


def _onecycle(max_lr: float, steps: int) -> Any:
    from ..schedules import onecycle

    return onecycle(max_lr=max_lr, total_steps=steps)


def _train_generic(
    model: Any, opt: Any, loss_fn: Any, data: Any, steps: int, schedule: Any, val: Any
) -> tuple[float, float]:
    """Train ``steps`` steps on cycled ``(x, y)`` batches; return (final loss, accuracy)."""
    import torch

    model.train()
    losses: list[torch.Tensor] = []
    k = 0
    while k < steps:
        n = 0
        for x, y in data:
            if k >= steps:
                break
            n += 1
            if schedule is not None:
                for g in opt.param_groups:
                    g["lr"] = float(schedule(k))
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
            k += 1
        if n == 0:
            break
    if val is None:
        tail = torch.stack(losses[-max(1, len(losses) // 10) :])
        return float(tail.mean()), math.nan
    model.eval()
    return evaluate(model, loss_fn, val)


def _table(result: Any) -> str:
    notes = {
        DEFAULT_RULE: "default rule: constant LR for total_steps",
        "steepest": "steepest descent of the smoothed loss",
        "valley": "fastai's valley",
        "minimum": "LR at the minimum loss / 10",
        "slide": "fastai's slide",
    }
    lines = ["", "  rule        learning rate   use", "  " + "-" * 62]
    for m, lr in result.suggestions().items():
        mark = "*" if m == result.method else " "
        val = f"{lr:13.3e}" if lr is not None else "            -"
        lines.append(f" {mark}{m:<10} {val}   {notes[m]}")
    if result.max_lr is not None:
        lines.append(f"  {'max_lr':<10} {result.max_lr:13.3e}   peak of one-cycle / cyclic")
        lines.append(f"  {'base_lr':<10} {result.base_lr:13.3e}   floor of cyclic")
        lines.append(f"  {'peak_lr':<10} {result.peak_lr:13.3e}   peak of warmup-cosine")
    lines.append(
        f"\n  sweep: {result.steps} steps, {result.lrs[0] if len(result.lrs) else 0:.1e} -> "
        f"{result.stop_lr if result.stop_lr is not None else 0:.1e}, stopped: {result.stop_reason}"
    )
    lines.append(
        f"  for {result.total_steps or 'an assumed 1000'} training steps; reliable: "
        + ("yes" if result.reliable else "NO (see the warnings below)")
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    return run_torch_command("find", _run, args)


def _run(args: argparse.Namespace) -> int:
    from .._files import fresh_path

    if args.output is None:
        args.output = fresh_path(DEFAULT_OUTPUT)
    from ..finder import LRFinderWarning
    from ..torch import find_lr, is_main_process

    rank0 = is_main_process()
    say = print if rank0 else (lambda *a, **k: None)
    task = None
    try:
        seed_all(args.seed)
        if not args.no_train:
            V.integer("--train-steps", args.train_steps, 2)
        if args.demo:
            import torch

            from ..torch.demo import digits_task

            torch.set_num_threads(1)  # tiny model: one thread is fastest, also on busy machines
            task = digits_task(seed=args.seed)
            model = task.make_model()
            opt = task.make_optimizer(model, 1e-3)
            loss_fn, data, val = task.loss_fn, task.train_batches(), task.val_batches()
            name = f"demo: {task.name} ({len(task.x_train)} train / {len(task.x_val)} val)"
        else:
            fn = import_target(args.target)
            model, opt, loss_fn, data, val = unpack_torch_task(args.target, fn())
            name = args.target
    except (ValueError, ImportError) as e:
        print(f"lrkit find: error: {e}", file=sys.stderr)
        return 2
    say(f"lrkit find: {name}, {type(opt).__name__}, LR {args.start_lr:g} -> {args.end_lr:g}")
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LRFinderWarning)
            result = find_lr(
                model,
                opt,
                loss_fn,
                data,
                start_lr=args.start_lr,
                end_lr=args.end_lr,
                num_iter=args.num_iter,
                method=args.method,
                total_steps=args.total_steps or (None if args.no_train else args.train_steps),
                progress=not args.quiet,
            )
    except ValueError as e:
        print(f"lrkit find: error: {e}", file=sys.stderr)
        return 2
    say(f"range test: {time.perf_counter() - t0:.1f}s")
    say(_table(result))
    for w in caught:
        if issubclass(w.category, LRFinderWarning):
            say(f"\n  warning: {w.message}")
    if result.suggestion is None:
        return 1
    if rank0 and not args.no_plot:
        try:
            from matplotlib.figure import Figure  # no pyplot: the caller's backend is untouched

            fig = Figure(figsize=(7, 4.5))
            result.plot(fig.add_subplot())
            fig.tight_layout()
            fig.savefig(args.output, dpi=110)
            say(f"\n  plot written to {args.output}")
        except ImportError:
            say("\n  (matplotlib not installed: no plot; pip install 'lrkit[plot]')")
    if args.json and rank0:
        with open(args.json, "w") as f:
            json.dump(result.to_dict(), f, indent=1)
    if args.no_train:
        return 0
    steps = args.train_steps
    sug, max_lr = float(result.suggestion), float(result.max_lr)
    runs = [("constant", sug, None), ("one-cycle", max_lr, _onecycle(max_lr, steps))]
    say(f"\n  check: {steps} training steps from the same initial weights")
    say("  schedule    LR              final loss   accuracy")
    for label, lr, sched in runs:
        seed_all(args.seed)
        if task is not None:
            from ..torch.demo import evaluate, train

            m = task.make_model()
            o = task.make_optimizer(m, lr)
            train(m, o, task, steps, sched)
            loss, acc = evaluate(m, task)
            kind = "val"
        else:
            fn = import_target(args.target)
            m, o, lf, d, v = unpack_torch_task(args.target, fn())
            for g in o.param_groups:
                g["lr"] = lr
            loss, acc = _train_generic(m, o, lf, d, steps, sched, v)
            kind = "val" if v is not None else "train"
        acc_s = f"{acc:8.2%}" if not math.isnan(acc) else "       -"
        peak = "max_lr" if sched is not None else "lr"
        say(f"  {label:<11} {peak} {lr:9.2e}  {kind} {loss:8.4f}  {acc_s}")
    return 0
