"""``lrkit compare``: train with several LR methods from the same seed, side by side.

    lrkit compare --demo                        # built-in task: scikit-learn digits, MLP
    lrkit compare mypkg.tasks:make_task         # your function -> (model, optimizer, loss_fn,
                                                #   data[, val_data])
    lrkit compare --demo --steps 600 --methods fixed,onecycle,plateau,prodigy

Every method starts from the same initial weights and sees the same batches. Methods that need
a learning rate start from the range test's suggestion (``lrkit.torch.find_lr``; one sweep for
the base optimizer, one for Adam): ``fixed``, ``step``, ``exponential``, ``cosine``, ``plateau``
use ``suggestion``; ``cyclic`` runs between ``base_lr`` and ``max_lr``; ``onecycle`` peaks at
``max_lr``. The base optimizer is the one your function returns (the demo: SGD with momentum
0.9). ``adam`` is Adam at its own suggestion; ``schedulefree`` is schedule-free AdamW at Adam's
suggestion (5% warmup, evaluated at its averaged weights); ``prodigy`` needs no LR.
``plateau`` reports the validation loss (the mean training loss of the last interval without
validation data) to ``ReduceOnPlateau(factor=0.5, patience=2)`` 20 times per run.

Prints a table (final training loss, validation loss and accuracy, wall time) and writes one
PNG with the loss curves and the LR each method used.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ._target import (
    add_torch_task_parser,
    check_seed,
    evaluate,
    import_target,
    run_torch_command,
    seed_all,
    unpack_torch_task,
)

DEFAULT_OUTPUT = "lrkit_compare.png"
METHODS = (
    "fixed",
    "step",
    "exponential",
    "cosine",
    "cyclic",
    "onecycle",
    "plateau",
    "adam",
    "schedulefree",
    "prodigy",
)
NEEDS_BASE_LR = ("fixed", "step", "exponential", "cosine", "cyclic", "onecycle", "plateau")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    def own(p: argparse.ArgumentParser) -> None:
        p.add_argument("--steps", type=int, default=400, help="training steps per method (400)")
        p.add_argument(
            "--methods",
            default=",".join(METHODS),
            help=f"comma-separated subset of: {', '.join(METHODS)} (default: all)",
        )
        p.add_argument("--finder-iter", type=int, default=100, help="range-test steps (100)")

    return add_torch_task_parser(
        subparsers,
        "compare",
        "Train with several LR methods side by side and compare them.",
        __doc__.split("\n\n")[0] if __doc__ else None,
        DEFAULT_OUTPUT,
        own,
    )


# ----------------------------------------------------------------------------- tasks
@dataclass
class Setup:
    """What one run trains: a fresh model and optimizer (same initial weights every call)."""

    model: Any
    optimizer: Any
    loss_fn: Callable[..., Any]
    data: Any
    val: Any = None


@dataclass
class Result:
    method: str
    optimizer: str
    lr: str
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    final_loss: float = math.nan
    val_loss: float = math.nan
    val_acc: float = math.nan
    seconds: float = 0.0
    diverged: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in self.__dict__.items()
            if k not in ("losses", "lrs")
        } | {"losses": _finite(self.losses), "lrs": _finite(self.lrs)}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Rich display in notebooks (summary table and plot)."""
        from .._display import compare_bundle

        return compare_bundle(self)


def _finite(xs: list[float]) -> list[float | None]:
    return [x if math.isfinite(x) else None for x in xs]


def user_factory(spec: str, seed: int) -> Callable[[], Setup]:
    """A factory calling the user's function afresh (after seeding) for every run."""
    fn = import_target(spec)

    def make() -> Setup:
        seed_all(seed)
        return Setup(*unpack_torch_task(spec, fn()))

    return make


def demo_factory(seed: int) -> tuple[Callable[[], Setup], str]:
    """The built-in digits task with SGD(momentum=0.9) as the base optimizer."""
    import torch

    from ..demo import digits_task

    task = digits_task(seed=seed)

    def make() -> Setup:
        seed_all(seed)
        model = task.make_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        return Setup(model, opt, task.loss_fn, task.train_batches(seed), task.val_batches())

    name = f"demo: {task.name} ({len(task.x_train)} train / {len(task.x_val)} val)"
    return make, name


# ----------------------------------------------------------------------------- running
def _batches(data: Any) -> Iterator[Any]:
    while True:
        n = 0
        for batch in data:
            n += 1
            yield batch
        if n == 0:
            raise ValueError("data must yield at least one (input, target) batch, got none")


def _loss(setup: Setup, batch: Any) -> Any:
    x, y = batch[0], batch[1]
    return setup.loss_fn(setup.model(x), y)


def _validate(setup: Setup) -> tuple[float, float]:
    if setup.val is None:
        return math.nan, math.nan
    return evaluate(setup.model, setup.loss_fn, setup.val)


def _evaluate(setup: Setup) -> tuple[float, float]:
    from ..torch._lrfree import evaluating

    if setup.val is None:
        return math.nan, math.nan
    with evaluating(setup.model, setup.optimizer, bn_data=_bn_data(setup), num_batches=10):
        return _validate(setup)


def _bn_data(setup: Setup) -> Any:
    from ..torch._lrfree import _bn_layers, is_schedule_free

    if is_schedule_free(setup.optimizer) and _bn_layers(setup.model):
        return setup.data
    return None


@dataclass
class LRs:
    """Range-test suggestions for the base optimizer and for Adam."""

    base: float
    base_max: float
    base_min: float
    adam: float
    notes: list[str] = field(default_factory=list)


def find_lrs(make: Callable[[], Setup], methods: list[str], num_iter: int) -> LRs:
    import torch

    from ..torch._finder import find_lr

    notes: list[str] = []

    def sweep(adam: bool, fallback: float) -> tuple[float, float, float]:
        s = make()
        opt = torch.optim.Adam(s.model.parameters(), lr=1e-3) if adam else s.optimizer
        label = "Adam" if adam else type(opt).__name__
        try:
            r = find_lr(s.model, opt, s.loss_fn, s.data, num_iter=num_iter, warn=False)
            sug, mx, mn = r.suggestion, r.max_lr, r.base_lr
        except (ValueError, RuntimeError) as e:
            sug = mx = mn = None
            notes.append(f"range test for {label} failed ({e})")
        if sug is None or not math.isfinite(sug):
            notes.append(f"no reliable suggestion for {label}: using lr={fallback:g}")
            return fallback, fallback * 3, fallback / 3
        mx = float(mx) if mx is not None else float(sug) * 3
        mn = float(mn) if mn is not None else float(sug) / 3
        return float(sug), max(mx, float(sug)), min(mn, mx)

    base = base_max = base_min = math.nan
    if any(m in NEEDS_BASE_LR for m in methods):
        base, base_max, base_min = sweep(False, 0.01)
    adam = math.nan
    if any(m in ("adam", "schedulefree") for m in methods):
        adam = sweep(True, 1e-3)[0]
    return LRs(base, base_max, base_min, adam, notes)


def _plan(method: str, setup: Setup, lrs: LRs, steps: int) -> tuple[Any, Any, Any, str]:
    """(optimizer, lrkit scheduler or None, feedback or None, LR description) for a method."""
    import torch

    from .. import schedules as S
    from ..feedback import ReduceOnPlateau
    from ..torch._lrfree import prodigy, schedule_free
    from ..torch._scheduler import scheduler

    params = [p for g in setup.optimizer.param_groups for p in g["params"]]
    opt = setup.optimizer
    lr, mx, mn = lrs.base, lrs.base_max, lrs.base_min
    if method == "fixed":
        return opt, scheduler(opt, S.constant(lr)), None, f"{lr:.2e}"
    if method == "step":
        size = max(1, math.ceil(steps / 3))
        return opt, scheduler(opt, S.step(lr, size, 0.1)), None, f"{lr:.2e} x0.1/{size}"
    if method == "exponential":
        gamma = 0.01 ** (1.0 / max(1, steps))
        return opt, scheduler(opt, S.exponential(lr, gamma)), None, f"{lr:.2e} ->x0.01"
    if method == "cosine":
        return opt, scheduler(opt, S.cosine(lr, steps)), None, f"{lr:.2e} cos"
    if method == "cyclic":
        up = max(1, steps // 4)
        sched = scheduler(opt, S.cyclic(mn, mx, step_size_up=up, mode="triangular2"))
        return opt, sched, None, f"{mn:.1e}..{mx:.1e}"
    if method == "onecycle":
        return opt, scheduler(opt, S.onecycle(mx, steps)), None, f"peak {mx:.2e}"
    if method == "plateau":
        fb = ReduceOnPlateau(factor=0.5, patience=2)
        return opt, scheduler(opt, S.constant(lr), feedback=fb), fb, f"{lr:.2e} x0.5/plateau"
    if method == "adam":
        a = torch.optim.Adam(params, lr=lrs.adam)
        return a, None, None, f"{lrs.adam:.2e}"
    if method == "schedulefree":
        sf = schedule_free(params, "adamw", lr=lrs.adam, warmup_steps=max(1, steps // 20))
        return sf, None, None, f"{lrs.adam:.2e} (x avg)"
    if method == "prodigy":
        return prodigy(params), None, None, "d estimated"
    raise ValueError(f"methods: unknown method {method!r} (allowed: {', '.join(METHODS)})")


def run_method(
    method: str,
    make: Callable[[], Setup],
    lrs: LRs,
    steps: int,
    tick: Callable[[int], None] | None = None,
) -> Result:
    """Train one method for ``steps`` steps from a fresh setup; returns its curves and scores."""
    from ..torch._lrfree import lrfree_lr

    setup = make()
    opt, sched, fb, desc = _plan(method, setup, lrs, steps)
    setup.optimizer = opt
    res = Result(method=method, optimizer=type(opt).__name__, lr=desc)
    report_every = max(1, steps // 20)
    setup.model.train()
    t0 = time.perf_counter()
    window: list[float] = []
    it = _batches(setup.data)
    ticked = 0
    for k in range(steps):
        batch = next(it)
        opt.zero_grad(set_to_none=True)
        loss = _loss(setup, batch)
        value = float(loss.detach())
        res.lrs.append(lrfree_lr(opt)[0])
        res.losses.append(value)
        if not math.isfinite(value):
            res.diverged = True
            break
        loss.backward()
        opt.step()
        window.append(value)
        if sched is not None:
            sched.step()
            if fb is not None and (k + 1) % report_every == 0:
                if setup.val is not None:
                    setup.model.eval()
                    metric = _validate(setup)[0]
                    setup.model.train()
                else:
                    metric = sum(window) / len(window)
                sched.report(metric)
                window = []
        if tick is not None and (k + 1) % 10 == 0:
            tick(10)
            ticked += 10
    if tick is not None and steps > ticked:
        tick(steps - ticked)
    tail = [x for x in res.losses[-max(1, len(res.losses) // 10) :] if math.isfinite(x)]
    res.final_loss = sum(tail) / len(tail) if tail and not res.diverged else math.inf
    if not res.diverged:
        res.val_loss, res.val_acc = _evaluate(setup)
    res.seconds = time.perf_counter() - t0
    if fb is not None:
        res.note = f"{len(fb.reductions)} reductions"
    if method == "prodigy":
        res.note = f"final d*lr {lrfree_lr(opt)[0]:.2e}"
    return res


def compare(
    make: Callable[[], Setup],
    methods: list[str],
    steps: int,
    *,
    finder_iter: int = 100,
    progress: bool = False,
) -> tuple[list[Result], LRs]:
    """Range tests, then every method in turn; returns the results and the LRs used."""
    lrs = find_lrs(make, methods, finder_iter)
    bar: Any = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps * len(methods), desc="compare", unit="step", leave=False)
        except ImportError:  # pragma: no cover
            bar = None
    results = []
    try:
        for m in methods:
            if bar is not None:
                bar.set_postfix_str(m)
            results.append(run_method(m, make, lrs, steps, bar.update if bar else None))
    finally:
        if bar is not None:
            bar.close()
    return results, lrs


# ----------------------------------------------------------------------------- output
def table(results: list[Result], *, val: bool = True) -> str:
    def num(x: float, fmt: str) -> str:
        return format(x, fmt) if math.isfinite(x) else "diverged" if x == math.inf else "-"

    lines = [
        f"  {'method':<13}{'optimizer':<19}{'LR':<22}{'train loss':>11}{'val loss':>10}"
        f"{'val acc':>9}{'time':>8}  note",
        "  " + "-" * 100,
    ]
    finite = [r.val_loss if val else r.final_loss for r in results]
    best = min((x for x in finite if math.isfinite(x)), default=math.nan)
    for r in results:
        acc = f"{r.val_acc:8.2%}" if math.isfinite(r.val_acc) else "       -"
        key = r.val_loss if val else r.final_loss
        mark = "*" if math.isfinite(key) and key == best else " "
        lines.append(
            f" {mark}{r.method:<13}{r.optimizer[:18]:<19}{r.lr[:21]:<22}"
            f"{num(r.final_loss, '11.4f'):>11}{num(r.val_loss, '10.4f'):>10}{acc:>9}"
            f"{r.seconds:7.2f}s  {r.note}"
        )
    return "\n".join(lines)


def plot(results: list[Result], path: str, title: str = "") -> None:
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: the caller's backend is untouched

    fig = Figure(figsize=(10, 8))
    ax_loss, ax_lr = fig.subplots(2, 1, sharex=True)
    for r in results:
        y = np.asarray(r.losses, dtype=float)
        if y.size:
            s = np.empty_like(y)
            acc = y[0]
            for i, v in enumerate(y):  # EMA (beta 0.9), debiased-free, for readability
                acc = 0.9 * acc + 0.1 * v if np.isfinite(v) else acc
                s[i] = acc
            (line,) = ax_loss.plot(s, label=r.method, lw=1.3)
            ax_lr.plot(r.lrs, color=line.get_color(), lw=1.3, label=r.method)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("training loss (EMA 0.9)")
    ax_loss.set_title(title or "lrkit compare")
    ax_loss.legend(fontsize="small", ncol=2)
    ax_lr.set_yscale("log")
    ax_lr.set_ylabel("learning rate (group 0; Prodigy: d*lr)")
    ax_lr.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path)


def _methods(spec: str) -> list[str]:
    out = [m.strip().lower() for m in spec.split(",") if m.strip()]
    bad = [m for m in out if m not in METHODS]
    if bad or not out:
        raise ValueError(
            f"methods must be a comma-separated subset of {', '.join(METHODS)}, got {spec!r}"
        )
    return list(dict.fromkeys(out))


def run(args: argparse.Namespace) -> int:
    return run_torch_command("compare", _run, args)


def _run(args: argparse.Namespace) -> int:
    import torch

    from .._files import fresh_path

    if args.output is None:
        args.output = fresh_path(DEFAULT_OUTPUT)
    try:
        methods = _methods(args.methods)
        check_seed(args.seed)
        if args.steps < 10:
            raise ValueError(f"steps must be an integer >= 10, got {args.steps}")
        if args.finder_iter < 10:
            raise ValueError(f"finder-iter must be an integer >= 10, got {args.finder_iter}")
        if args.demo:
            torch.set_num_threads(1)  # tiny model: one thread is fastest
            make, name = demo_factory(args.seed)
        else:
            make, name = user_factory(args.target, args.seed), args.target
        make()  # fail early on a bad target
    except (ValueError, ImportError) as e:
        print(f"lrkit compare: error: {e}", file=sys.stderr)
        return 2
    print(f"lrkit compare: {name}; {len(methods)} methods x {args.steps} steps, seed {args.seed}")
    t0 = time.perf_counter()
    try:
        results, lrs = compare(
            make, methods, args.steps, finder_iter=args.finder_iter, progress=not args.quiet
        )
    except ValueError as e:
        print(f"lrkit compare: error: {e}", file=sys.stderr)
        return 2
    parts = []
    if math.isfinite(lrs.base):
        parts.append(f"base {lrs.base:.2e} (cyclic {lrs.base_min:.1e}..{lrs.base_max:.1e})")
    if math.isfinite(lrs.adam):
        parts.append(f"Adam {lrs.adam:.2e}")
    if parts:
        print("range test suggestions: " + ", ".join(parts))
    for n in lrs.notes:
        print(f"  note: {n}")
    has_val = any(math.isfinite(r.val_loss) for r in results)
    print()
    print(table(results, val=has_val))
    print(f"\n  total {time.perf_counter() - t0:.1f}s; * best {'val' if has_val else 'train'} loss")
    if not args.no_plot:
        try:
            plot(results, args.output, title=f"lrkit compare: {name}")
            print(f"  plot written to {args.output}")
        except ImportError:
            print("  (matplotlib not installed: no plot; pip install 'lrkit[plot]')")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "task": name,
                    "steps": args.steps,
                    "seed": args.seed,
                    "lrs": {
                        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                        for k, v in lrs.__dict__.items()
                    },
                    "results": [r.to_dict() for r in results],
                },
                f,
                indent=1,
            )
    return 0
