"""``lrkit find``: run the LR range test, print the suggestions, plot, and check them by training.

    lrkit find --demo                       # built-in task: scikit-learn digits, MLP, Adam
    lrkit find mypkg.tasks:make_task        # your function -> (model, optimizer, loss_fn, data)

The user function is imported with ``importlib`` (only the module named, no code evaluated from
the command line) and called with no arguments; it returns ``(model, optimizer, loss_fn,
data)`` and optionally a fifth item, validation batches. After the sweep the command trains
briefly twice from fresh copies (the function is called again; the demo rebuilds its model):
at the constant ``suggestion`` and with ``onecycle(max_lr)``, and prints the final loss.

What the target returned is checked before the sweep: ``(x, y)`` batches in ``data`` (a list
or tuple: every batch; a generator or loader: as the sweep reads them) and ``val_data`` (its
first batch; a list or tuple: every batch), a callable ``loss_fn``, and a fresh model from
each call (the function's second call, the first check run's, is made before the sweep). A
target that returns something else is a command-line mistake (exit code 2), also when it
shows only during the sweep (a ``loss_fn`` that returns no tensor); an error raised by the
user's code is the target's (exit code 1).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from .. import _validate as V
from .._files import names_stdout
from .._format import duration, group_ratios_text
from .._runtime import kept_interrupts
from ..finder import DEFAULT_RULE, FITTED_STEPS, RULES
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
    print_error,
    run_torch_command,
    show_progress,
    show_warnings,
    user_code,
    write_json,
    write_outputs,
    write_plot,
)

DEFAULT_OUTPUT = "lrkit_find.png"
#: the steps of each check run (``--train-steps``)
TRAIN_STEPS = 300


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    def own(p: argparse.ArgumentParser) -> None:
        p.add_argument("--start-lr", type=float, default=1e-7, help="first LR of the sweep")
        p.add_argument("--end-lr", type=float, default=10.0, help="last LR of the sweep")
        p.add_argument(
            "--num-iter", type=int, default=100, help=f"sweep steps ({MIN_ITER} to {MAX_ITER})"
        )
        p.add_argument(
            "--rule",
            default=None,  # given or not: --method contradicting it is refused
            choices=tuple(RULES),
            help=f"the rule marked * (the suggestion) (default: {DEFAULT_RULE})",
        )
        # the option's name before it was ``--rule`` (find_lr's ``rule=``): still accepted
        p.add_argument(
            "--method",
            dest="method",
            choices=tuple(RULES),
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
        p.add_argument(
            "--total-steps",
            type=int,
            default=None,
            help="optimizer steps you plan to train: the suggestions depend on it "
            "(default: --train-steps, or 1000 with --no-train)",
        )
        p.add_argument(
            "--train-steps",
            type=int,
            default=None,  # given or not: --no-train refuses it rather than ignore it
            help=f"steps of each check run (at least {min_train_steps()}) (default: {TRAIN_STEPS})",
        )
        p.add_argument("--no-train", action="store_true", help="skip the two check runs")
        p.add_argument(
            "--probe",
            action="store_true",
            help="after the sweep, train 8 short runs around its edge and score them on the "
            "validation batches; the suggestions are scaled from the best for the budget (about "
            "6.5 to 9x the sweep's time)",
        )

    return add_torch_task_parser(
        subparsers,
        "find",
        "Run the learning-rate range test and suggest learning rates.",
        __doc__.split("\n\n")[0] if __doc__ else None,
        DEFAULT_OUTPUT,
        own,
    )


#: The sweep's options as ``find_lr`` names them -> the options of this command.
OPTIONS = {
    "start_lr": "--start-lr",
    "end_lr": "--end-lr",
    "num_iter": "--num-iter",
    "total_steps": "--total-steps",
    "rule": "--rule",
}

#: The sweep's warnings in this command's terms: its options for ``find_lr``'s names (not
#: "rule", a word of their text), and advice on ``find_lr`` arguments this command does not
#: have left out.
WARNING_NAMES = {
    **{name: option for name, option in OPTIONS.items() if name != "rule"},
    "end_lr or max_end_lr": "--end-lr",
    ", more held batches (eval_batches) or a larger batch": " or a larger batch",
}


def check_runs(lr: float, max_lr: float, steps: int) -> list[tuple[str, str, float, Any]]:
    """The two check runs: ``(label, LR column, LR, schedule)`` at the constant suggestion and
    one-cycle peaking at ``max_lr``, each ``steps`` long."""
    from ..schedules import constant, onecycle

    return [
        ("constant", "lr", lr, constant(lr)),
        ("one-cycle", "max_lr", max_lr, onecycle(max_lr, total_steps=steps)),
    ]


def min_train_steps() -> int:
    """The fewest ``--train-steps`` the check runs' schedules can be built for (read off the
    schedules' own checks)."""
    for n in range(1, 1000):
        try:
            check_runs(1.0, 1.0, n)
        except ValueError:
            continue
        return n
    raise AssertionError("no check run length works")  # pragma: no cover


def check_options(args: argparse.Namespace) -> None:
    """Every option, before any work starts; a ValueError names the option (the limits are
    ``find_lr``'s and the check runs' own)."""
    from ..finder import SweepOptions

    check_outputs(args, DEFAULT_OUTPUT)
    check_seed(args.seed)
    method = getattr(args, "method", None)  # --rule's former name
    if method is not None and args.rule not in (None, method):
        raise ValueError(
            f"--method is the former name of --rule: give one of them, got --rule "
            f"{args.rule} and --method {method}"
        )
    args.rule = args.rule or method or DEFAULT_RULE
    try:
        SweepOptions(
            start_lr=args.start_lr,
            end_lr=args.end_lr,
            num_iter=args.num_iter,
            rule=args.rule,
            total_steps=args.total_steps,
        )
    except ValueError as exc:
        raise rename(exc, names=OPTIONS) from None
    if args.no_train and args.train_steps is not None:  # refused rather than ignored
        raise ValueError(
            "--train-steps sets the steps of the check runs that --no-train skips: give one "
            f"of them, got --no-train and --train-steps {args.train_steps!r}"
        )
    if not args.no_train:
        if args.train_steps is None:
            args.train_steps = TRAIN_STEPS
        low = min_train_steps()
        try:
            steps = V.integer("--train-steps", args.train_steps, low, V.MAX_STEPS)
            check_runs(1.0, 1.0, steps)
        except ValueError:
            raise ValueError(
                f"--train-steps must be an integer >= {low} (allowed range: [{low}, 2**53]), "
                f"got {V.fmt(args.train_steps)}"
            ) from None


NOTES = {
    DEFAULT_RULE: "default rule: constant LR for total_steps",
    "steepest": "torch-lr-finder's steepest descent",
    "valley": "fastai's valley",
    "minimum": "fastai's minimum (LR at the minimum / 10)",
    "slide": "fastai's slide",
    "steep": "fastai's steep",
}


def _groups_line(ratios: str | None) -> list[str]:
    """The line saying that the LRs shown are the optimizer's ``lr``, which param groups at
    LRs of their own train at multiples of."""
    if ratios is None:
        return []
    return [f"  param groups train at {ratios} these LRs (the optimizer's lr is their unit)"]


def _say_warnings(result: Any, args: Any, total_steps: Any, say: Any) -> None:
    """The result's warnings, under its table, in the options of this command (``--start-lr``,
    not ``start_lr``)."""
    names = dict(WARNING_NAMES)
    if args.total_steps is None and total_steps is not None:  # the default: --train-steps
        names["total_steps"] = "--train-steps"
    for msg in result.warnings:
        say(f"\n  warning: LR range test: {rename(msg, names=names)}")


def _table(result: Any, groups: str | None = None) -> str:
    rows = result.suggestions()
    w = max(10, *(len(m) for m in rows))
    lines = ["", f"  {'rule':<{w}}  learning rate   use", "  " + "-" * (w + 52)]
    for m, lr in rows.items():
        mark = "*" if m == result.rule else " "
        val = f"{lr:13.3g}" if lr is not None else "            -"
        lines.append(f" {mark}{m:<{w}} {val}   {NOTES[m]}")
    if result.max_lr is not None:
        lines.append(f"  {'max_lr':<{w}} {result.max_lr:13.3g}   peak of one-cycle / cyclic")
        lines.append(f"  {'base_lr':<{w}} {result.base_lr:13.3g}   floor of cyclic")
        lines.append(
            f"  {'peak_lr':<{w}} {result.peak_lr:13.3g}   peak of warmup-cosine (5% warmup)"
        )
    stop = f"{result.stop_lr:.3g}" if result.stop_lr is not None else "-"
    if len(result.lrs):
        first = float(result.lrs[0])
        lines.append(
            f"\n  sweep: {result.steps} steps, {first:.3g} -> {stop}, stopped: {result.stop_reason}"
        )
    else:
        lines.append(f"\n  sweep: stopped at its first step (LR {stop}): {result.stop_reason}")
    if result.probes is not None:
        p = result.probes
        lines.append(
            f"  probes: {len(p.lrs)} x {p.steps} steps, {max(p.lrs):.3g} -> {min(p.lrs):.3g}; "
            f"best after {p.steps} steps near {p.best_lr:.3g}; the suggestions below are "
            "scaled from it for the budget (lower for a longer run)"
        )
    most = FITTED_STEPS[1]
    longer = result.total_steps is not None and result.total_steps > most
    read = (  # the default rule (its rows are shown whichever rule is marked) reads a
        # longer budget as the longest it was fitted on
        f" (read as {most}, the longest budget the rule was fitted on)" if longer else ""
    )
    lines.append(
        f"  for {result.total_steps or 'an assumed 1000'} training "
        + ("step" if result.total_steps == 1 else "steps")
        + read
        + "; reliable: "
        + ("yes" if result.reliable else "NO (see the warnings below)")
    )
    return "\n".join(lines + _groups_line(groups))


def run(args: argparse.Namespace) -> int:
    return run_torch_command("find", _find, args)


def _task(args: argparse.Namespace) -> tuple[Any, str, Any]:
    """``(make, name, task)``: ``make()`` builds ``(model, optimizer, loss_fn, data, val)``
    afresh (after seeding); ``task`` is the demo task or ``None``."""
    from ..compare import checked, factory
    from ..torch import seed_all

    if args.demo:
        import torch

        from ..torch.demo import digits_task

        torch.set_num_threads(1)  # tiny model: one thread is fastest, also on busy machines
        task = digits_task(seed=args.seed)

        def make_demo(lr: float = 1e-3) -> Any:
            seed_all(args.seed)
            model = task.make_model()
            opt = task.make_optimizer(model, lr)
            return model, opt, task.loss_fn, task.train_batches(), task.val_batches()

        name = f"demo: {task.name} ({len(task.x_train)} train / {len(task.x_val)} val)"
        return make_demo, name, task
    fn = import_function(args.target)
    # every check run draws the batches the sweep drew (a DataLoader's own generator, built
    # once, put back to its first state; a one-shot iterator returned again refused), as
    # lrkit compare's runs do; the models are checked by _check_fresh (no host copy of them)
    make = checked(
        factory(
            lambda: call_target(fn, target=args.target, returns=RETURNS),
            seed=args.seed,
            name=f"target {args.target!r}",
            weights=False,
        ),
        weights=False,
    )

    def make_user(lr: float | None = None) -> Any:
        s = make()  # seeded; the same model object returned again, trained, is refused
        return s.model, s.optimizer, s.loss_fn, s.data, s.val_data

    return make_user, args.target, None


def _check_fresh(first: Any, second: Any, target: str) -> None:
    """The models of the target's first two calls, ``first`` and ``second``: a one-line
    ValueError when they are one object, or share a trainable parameter (a layer built once,
    at import), which the check runs would train one after the other. Parameters that do not
    require grad (a frozen backbone loaded once) may be shared."""
    if second is first:
        how = "it returned the same model object from its first two calls"
    else:
        mine = {id(p) for p in first.parameters() if p.requires_grad}
        shared = sum(1 for p in second.parameters() if p.requires_grad and id(p) in mine)
        if not shared:
            _check_same_start(first, second, target)
            return
        noun = "parameter" if shared == 1 else "parameters"
        how = (
            f"the models of its first two calls share {shared} trainable {noun} "
            "(a layer built once, at import?)"
        )
    raise ValueError(
        f"target {target!r} must build a fresh model on every call (each check run trains "
        f"its own from the same initial weights): {how}; create the model inside the "
        "function, or pass --no-train"
    )


def _check_same_start(first: Any, second: Any, target: str) -> None:
    """The fresh models of the target's first two calls, neither trained yet: a one-line
    ValueError when they are of one make-up (the same parameter names and shapes) and their
    weights differ (an initialisation ``--seed`` does not reach): the check runs would start
    from other weights than the sweep. Parameters not yet initialized (lazy modules, the
    ``meta`` device) are not compared; nothing is copied."""
    import torch

    lazy = torch.nn.parameter.UninitializedParameter  # no shape, no values yet

    def make_up(model: Any) -> list[tuple[str, Any]]:
        return [(n, None if isinstance(p, lazy) else p.shape) for n, p in model.named_parameters()]

    if make_up(first) != make_up(second):
        return  # another make-up: nothing to compare
    for (name, p), (_, q) in zip(first.named_parameters(), second.named_parameters()):
        if isinstance(p, lazy) or isinstance(q, lazy) or p.is_meta or p.device != q.device:
            continue  # nothing to compare (another device: not compared, nothing copied)
        if not torch.equal(p.detach(), q.detach()):
            raise ValueError(
                f"target {target!r} must build the same initial weights on every call (the "
                "sweep and each check run start from them): the models of its first two "
                f"calls differ in {name!r} (an initialisation --seed does not reach, such as "
                "numpy.random.default_rng() without a seed); seed it inside the function, or "
                "pass --no-train"
            )


def _find(args: argparse.Namespace) -> int:
    from ..torch import find_lr, group_ratios, is_main_process

    rank0 = is_main_process()
    out = Printer()  # a reader that goes away stops the printing, not the files
    say: Callable[..., None] = out if rank0 else (lambda *a, **k: None)
    prepared: Any = None  # the first check run's task, made before the sweep
    groups: str | None = None  # the param groups' ratios to the optimizer's lr, if they differ
    try:
        check_options(args)
        make, name, task = _task(args)
        model, opt, loss_fn, data, val = make()
        # what the sweep needs of what the target returned: a callable loss_fn and (x, y)
        # batches in data (a list or tuple: every batch; anything else is the sweep's to
        # read, which checks each batch as it reads it)
        with user_code(args.target, during=CHECKING, mistakes=True):
            check_loss_fn(loss_fn)
            check_batches(data, read=False)
            # the suggestions are in the units of the optimizer's lr, and the check runs
            # drive it with schedules: param groups at lrs of their own need it given
            groups = group_ratios_text(group_ratios(opt))
        if args.probe and val is None:
            raise ValueError(
                f"--probe scores its runs on validation batches: target {args.target!r} "
                "returned none (return them as a fifth item), or leave out --probe"
            )
        if args.probe:  # read once, kept: the probes score on every batch (a generator's too)
            from ..finder import held_batches

            with user_code(args.target, during=CHECKING, mistakes=True):
                val = held_batches(val, name="val_data", warn_many=False)
        from .._runtime import GlobalRNGState, preserved_rng

        # the check runs score on it: refused now, not after the sweep (also with
        # --no-train, as documented). Its first batch is read (a list or tuple: every batch
        # is checked): the first call's val_data, which no check run reads
        with preserved_rng(import_torch=True):
            with user_code(args.target, during=CHECKING, mistakes=True):
                check_batches(val, name="val_data", none=True)
        if not args.no_train:
            if task is None:
                # a target's second call, the first check run's, made now: a target that
                # returns its first model again is refused before anything trains. The RNGs
                # stay as each call left them: the sweep starts where the first left them,
                # the first check run where the second did (as when it is called after)
                sweep_rng = GlobalRNGState(import_torch=True)
                with user_code(args.target, during=CHECKING, mistakes=True):
                    second = make()  # the first's one-shot iterator again: refused
                prepared = (second, GlobalRNGState(import_torch=True))
                sweep_rng.restore()
                _check_fresh(model, second[0], args.target)
    except (ValueError, ImportError) as e:
        print_error("find", e, args)
        return 2
    say(f"lrkit find: {name}, {type(opt).__name__}, LR {args.start_lr:g} -> {args.end_lr:g}")
    if args.total_steps is not None:
        total_steps = args.total_steps
    else:
        total_steps = None if args.no_train else args.train_steps
    t0 = time.perf_counter()
    # the warnings of the user's code and the libraries it calls, shown once each over the
    # sweep and the check runs (a loss that warns at every step warns once)
    shown: set[tuple[Any, ...]] = set()
    caught: list[Any] = []
    interrupt: KeyboardInterrupt | None = None
    try:  # lrkit's checks of what the target returned (a loss that is no tensor): exit 2
        with (
            user_code(args.target, during="the range test", mistakes=True),
            kept_interrupts(),  # a Ctrl-C dropped by Python (in a lazy import) stops it too
            warnings.catch_warnings(record=True) as caught,  # under the user's filters
        ):
            result = find_lr(
                model,
                opt,
                loss_fn,
                data,
                start_lr=args.start_lr,
                end_lr=args.end_lr,
                num_iter=args.num_iter,
                rule=args.rule,
                total_steps=total_steps,
                probe_data=val if args.probe else None,
                progress=show_progress(args),  # on a terminal only
                warn=False,  # the result's warnings are printed below; the user's are shown
            )
    except TargetMistake as e:
        print_error("find", e, args)
        return 2
    except KeyboardInterrupt as exc:  # the sweep's result so far is kept, shown and written
        kept = getattr(exc, "result", None)
        if kept is None:
            raise
        result, interrupt = kept, exc
    finally:
        show_warnings(caught, shown=shown)
    del model, opt, loss_fn, data, val  # the sweep's task: the check runs train their own
    during = "sweep" if result.stop_reason == "interrupted" else "probes"
    if interrupt is not None:
        say(f"range test: {result.steps} steps, interrupted during the {during}")
    else:
        probes = result.probes
        runs = "" if probes is None else f" and {len(probes.lrs)} probes of {probes.steps} steps"
        steps = f"{result.steps} step{'s' if result.steps != 1 else ''}"
        say(f"range test: {steps}{runs} in {duration(time.perf_counter() - t0)}")
    say(_table(result, groups))
    _say_warnings(result, args, total_steps, say)

    def json_file() -> bool:
        if not (args.json and rank0):
            return False
        # where the run was cut, if it was: the sweep's result is complete without its probes
        cut = None if interrupt is None else during
        saved = result.to_dict() | {"interrupted": interrupt is not None, "interrupted_during": cut}
        failed = write_json("find", args.json, saved, out=out)
        if not failed and not names_stdout(args.json):  # the JSON comes last on stdout
            say(f"\n  results written to {args.json}")
        return failed

    def plot_file() -> bool:
        if not rank0 or args.no_plot:
            return False

        def draw(path: str) -> None:
            # the result's own figure (no pyplot: the caller's backend is untouched), its
            # legend beside the curve
            result.plot(path=path, title=f"LR range test: {name}")

        default = getattr(args, "output_is_default", False)
        return write_plot("find", args.output, draw, say=say, default=default)

    if not back_to_start("find", args.start_folder):  # where the outputs were checked
        return 1
    # JSON on standard output comes after everything printed, the check runs' table too
    json_last = names_stdout(args.json)
    failed = plot_file() if json_last else write_outputs(args.json, json_file, plot_file)
    if interrupt is not None:  # the curve measured is written; no check runs: exit 130 (143)
        if json_last:
            json_file()
        raise interrupt
    out.check()  # the reader went away (exit code 141): the files are written, the rest is text
    code = 0
    try:
        if result.suggestion is None:
            print(
                f"lrkit find: no suggestion: the sweep stopped ({result.stop_reason}) before "
                "the loss fell; "
                + ("" if args.no_plot else "see the plot, ")
                + "try a lower --start-lr or check the task",
                file=sys.stderr,
            )
            code = 1
        elif not args.no_train:
            try:
                with user_code(args.target, during="the check runs", mistakes=True):
                    _check(args, make, result, say, prepared=prepared, shown=shown, groups=groups)
            except TargetMistake as e:
                print_error("find", e, args)
                code = 2
            out.check()
    finally:
        # the range test's result reaches standard output as it reaches a file, also when the
        # check runs fail or are interrupted
        if json_last:
            failed = json_file() or failed
    return code or (1 if failed else 0)


def _check(
    args: argparse.Namespace,
    make: Any,
    result: Any,
    say: Any,
    *,
    prepared: Any = None,
    shown: set[tuple[Any, ...]] | None = None,
    groups: str | None = None,
) -> None:
    """Train twice from the same initial weights: at the constant ``suggestion`` and with
    ``onecycle(max_lr)``; print the final loss (and accuracy) of each. ``prepared``: the
    first run's task, made before the sweep, and the RNG states its call left (``None``:
    ``make`` is called for each run). ``shown``: the warnings shown before (each is shown
    once). ``groups``: the param groups' ratios to the LRs shown, when they differ."""
    from ..torch import DataRanOutWarning, evaluate, fit

    steps = args.train_steps
    lr, max_lr = float(result.suggestion), float(result.max_lr)
    budget = ""  # what the check's LRs are for, when that is not --total-steps
    if result.total_steps is not None and result.total_steps != steps:
        # the suggestions above are for --total-steps: a run of --train-steps is checked at
        # the suggestions for its own length, read off the same sweep
        own = result.for_total_steps(steps, warn=False)
        lr = own.constant if result.rule == DEFAULT_RULE else lr
        max_lr = own.max_lr
        budget = (
            f"\n  at the suggestions for a run of {steps} steps (those above are for "
            f"{result.total_steps})"
        )
        # said here, in the check's words, rather than as a Python warning
        budget += "".join(
            f"\n  note: {rename(m, names={'total_steps': '--train-steps'})}"
            for m in own.warnings
            if m not in result.warnings
        )
    runs = check_runs(lr, max_lr, steps)
    noun = "training step" if steps == 1 else "training steps"
    say(f"\n  check: {steps} {noun} from the same initial weights{budget}")
    for line in _groups_line(groups):
        say(line)
    bar: Any = None
    if show_progress(args):
        from tqdm.auto import tqdm

        bar = tqdm(total=2 * steps, desc="check", unit="step", leave=False)
    rows = []
    shown = set() if shown is None else shown
    try:
        for label, peak, lr, sched in runs:
            if bar is not None:
                bar.set_postfix_str(label)
            if prepared is not None:
                (model, opt, loss_fn, data, val), rng = prepared
                prepared = None  # the second run's task is made after the first trained
                rng.restore()
            else:
                model, opt, loss_fn, data, val = make(lr)
            with warnings.catch_warnings(record=True) as caught:  # under the user's filters,
                # but the data running out, which this command says in its words
                warnings.simplefilter("always", DataRanOutWarning)
                hist = fit(
                    model,
                    optimizer=opt,
                    loss_fn=loss_fn,
                    data=data,
                    steps=steps,
                    schedule=sched,
                    on_step=(lambda k, v: bar.update(1)) if bar is not None else None,
                )
            others = []
            for w in caught:  # the data running out: in this command's words; others as raised
                text = str(w.message)
                if issubclass(w.category, DataRanOutWarning):
                    text = text[len("fit: ") :].replace(f"steps={steps}", f"--train-steps {steps}")
                    say(f"\n  warning: {label} check run: {text.replace('pass a', 'return a')}")
                else:
                    others.append(w)
            show_warnings(others, shown=shown)  # once each, over both runs
            if bar is not None and hist.steps < steps:
                bar.update(steps - hist.steps)
            if val is not None and not hist.diverged:
                with warnings.catch_warnings(record=True) as caught:  # shown once, as above
                    loss, acc = evaluate(model, loss_fn=loss_fn, data=val)
                show_warnings(caught, shown=shown)
                kind = "val"
            else:
                loss, acc, kind = hist.final_loss(), math.nan, "train"
            rows.append((label, peak, lr, kind, loss, acc, hist.seconds))
    finally:
        if bar is not None:
            bar.close()
    say(f"  {'schedule':<11} {'LR':<16} {'final loss':<15}  {'accuracy':>8}  {'time':>8}")
    for label, peak, lr, kind, loss, acc, secs in rows:
        acc_s = f"{acc:8.2%}" if not math.isnan(acc) else "       -"
        loss_s = f"{loss:.4g}" if math.isfinite(loss) else "diverged"
        say(
            f"  {label:<11} {peak:<6} {lr:<9.3g} {kind:<5} {loss_s:<9}  {acc_s}  "
            f"{duration(secs):>8}"
        )
