"""``lrkit plot SPEC --steps N [-o file.png]``: draw a schedule given as a spec string.

However long the schedule, it is drawn at no more than ``lrkit.textplot.MAX_POINTS`` steps
(first and last included; see :func:`lrkit.textplot.plot_steps`).
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from .._imports import install_hint
from ._help import HelpFormatter
from ._target import Printer, cannot_write, check_backend, print_error

#: Longest spec string accepted on the command line (a spec is a short expression).
MAX_SPEC = 20_000
#: Longest run of digits in one number of a spec.
MAX_DIGITS = 100


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "plot",
        help="Plot a schedule given as a spec string (a file, or a curve in the terminal).",
        description=(
            "Plot a schedule spec such as 'cosine(lr=0.1, total_steps=1000)'. "
            "Without -o the curve is drawn in the terminal."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("spec", help='schedule spec string, e.g. "onecycle(0.1, 1000)"')
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="steps 0 to N-1 are drawn (default: its length + 1, so that its last "
        "step, where it ends, is drawn too; 1000 when it has no length)",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="image file to write (png, svg, pdf, ...) (default: draw in the terminal)",
    )
    p.add_argument("--log", action="store_true", help="logarithmic LR axis")
    p.add_argument(
        "--width", type=int, default=None, help="terminal plot width, 10 to 1000 (default 72)"
    )
    p.add_argument(
        "--height", type=int, default=None, help="terminal plot height, 3 to 500 (default 16)"
    )
    return p


def _spec_error(exc: Exception, spec: str) -> str:
    """One line: what is wrong, where, and the spec around that place."""
    from .._format import shorten

    pos = getattr(exc, "pos", None)
    first = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(pos, int):
        lo, hi = max(0, pos - 30), min(len(spec), pos + 30)
        near = ("..." if lo else "") + spec[lo:pos] + " <here> " + spec[pos:hi]
        near += "..." if hi < len(spec) else ""
        return f"{shorten(first, 400)} (near: {' '.join(near.split())})"
    return shorten(first, 400)


def _parse(spec: str) -> Any:
    from ..schedules import parse

    if len(spec) > MAX_SPEC:
        raise ValueError(
            f"spec is {len(spec)} characters long (at most {MAX_SPEC}): a spec is a short "
            "expression such as 'cosine(0.1, 1000)'"
        )
    m = re.search(rf"\d{{{MAX_DIGITS + 1},}}", spec)
    if m:
        raise ValueError(
            f"invalid schedule spec at position {m.start()}: a number with "
            f"{m.end() - m.start()} digits (at most {MAX_DIGITS})"
        )
    try:
        return parse(spec)
    except IndexError:  # the parser ran past the last token
        raise ValueError(
            f"invalid schedule spec at position {len(spec)}: it ends too early "
            f"(near: {' '.join(spec[-40:].split())} <here>)"
        ) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(_spec_error(exc, spec)) from None


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from .._figure import check_drawable, draw_curve, draw_grid, save_figure
    from .._files import IMAGE_TYPES, check_output, write_file_whole
    from .._format import title_lines
    from ..textplot import MAX_STEP, natural_steps, nothing_to_plot, plot_steps, text_plot

    def err(msg: str) -> int:
        print_error("plot", msg, args)
        return 2

    # the reader going away ends it with exit code 141, a failed write (a full disk) with 1
    say = Printer()

    sized = [f"--{k}" for k in ("width", "height") if getattr(args, k) is not None]
    if args.output is not None and sized:
        return err(
            f"{' and '.join(sized)} {'size' if len(sized) > 1 else 'sizes'} the terminal plot, "
            f"not the -o image (960x480 pixels): leave {'them' if len(sized) > 1 else 'it'} "
            "out, or leave out -o to draw in the terminal"
        )
    args.width = 72 if args.width is None else args.width
    args.height = 16 if args.height is None else args.height
    try:
        if args.output is not None:
            check_output(args.output, option="-o/--output", types=IMAGE_TYPES)
            check_backend("-o/--output")
        else:
            text_plot([0.0], [0.0], width=args.width, height=args.height)  # checks the sizes
        schedule = _parse(args.spec)
        steps = plot_steps(schedule, steps=args.steps)
        with _np_quiet():
            lrs = schedule.values(steps)
    except ValueError as exc:
        msg = str(exc)
        if msg.startswith(("width", "height", "steps")):
            msg = "--" + msg
        return err(msg)
    except OverflowError as exc:
        return err(f"the schedule cannot be evaluated over these steps ({exc})")
    spec = str(schedule)
    if args.output:
        why = nothing_to_plot(steps, lrs, logy=args.log)
        if why is not None:  # an image of empty axes is no plot: refused, as none is drawn
            hint = "; --log draws values > 0 only" if args.log and "positive" in why else ""
            return err(f"nothing to plot: {why}{hint} (-o {args.output!r} not written)")
        try:
            from matplotlib.figure import Figure  # no pyplot: no backend switch
        except ImportError:
            return err(install_hint("matplotlib", "plot", feature="-o/--output"))
        try:
            check_drawable(lrs, what="the schedule's values")
        except ValueError as exc:
            return err(f"{exc}; leave out -o ({args.output!r} not written)")
        fig = Figure(figsize=(8, 4))
        ax = fig.add_subplot()
        drawn = np.asarray(lrs, dtype=float)
        hidden = 0
        if args.log:  # a value <= 0 has no place on a log axis: left out and counted
            below = drawn <= 0
            hidden = int(below.sum())
            drawn = np.where(below, np.nan, drawn)
        line = draw_curve(ax, steps, drawn, lw=1.5)  # one finite point too
        if hidden:  # a point between two left out joins no line: drawn as a dot
            ok = np.isfinite(drawn)
            before = np.concatenate([[False], ok[:-1]])
            after = np.concatenate([ok[1:], [False]])
            alone = ok & ~before & ~after
            if alone.any() and int(ok.sum()) > 1:
                ax.plot(np.asarray(steps)[alone], drawn[alone], "o", ms=3,
                        color=line.get_color())  # fmt: skip
            s = "" if hidden == 1 else "s"
            ax.text(0.99, 0.02, f"{hidden} value{s} <= 0 not drawn on the log axis",
                    transform=ax.transAxes, ha="right", va="bottom", fontsize=8)  # fmt: skip
        ax.set_xlabel("step")
        ax.set_ylabel("learning rate")
        draw_grid(ax)  # opaque: PostScript draws no transparency
        if args.log:
            with np.errstate(over="ignore", invalid="ignore"):  # ticks over huge values
                ax.set_yscale("log")
        lines = title_lines(spec, 90)
        ax.set_title("\n".join(lines), fontsize=9 if len(lines) > 1 else 10)
        # a log axis over huge values: matplotlib's ticks overflow, harmlessly, as it lays out
        with np.errstate(over="ignore", invalid="ignore"):
            fig.tight_layout()
        try:
            # whole or not at all: a failed write leaves the file that was there
            with np.errstate(over="ignore", invalid="ignore"):
                write_file_whole(args.output, lambda path: save_figure(fig, path, dpi=120))
        except Exception as exc:  # the image could not be written (disk, link, backend)
            cannot_write("plot", option="-o/--output", path=args.output, error=exc)
            return 1
        say(f"wrote {args.output}")
        say.check()
        return 0
    lines = title_lines(spec, max(args.width, 40))
    say(
        text_plot(
            steps,
            lrs,
            width=args.width,
            height=args.height,
            logy=args.log,
            title="\n".join(lines),
        )
    )
    sampled = (
        ""
        if len(steps) == int(steps[-1]) + 1
        else f" ({len(steps)} of {int(steps[-1]) + 1} steps drawn)"
    )
    natural = natural_steps(schedule)
    if args.steps is None and natural > MAX_STEP:  # longer than a plot goes
        sampled += f"; the schedule runs to step {natural - 1}, a plot to 2**53 - 1"
    say(f"lr: start {lrs[0]:.4g}, {_extremes(lrs)}, end {lrs[-1]:.4g}" + sampled)
    say.check()
    return 0


def _extremes(lrs: Any) -> str:
    """``max ..., min ...`` of the finite values (those drawn), saying so when some are not
    finite (inf or nan, which ``max()`` and ``min()`` would otherwise report)."""
    import numpy as np

    finite = lrs[np.isfinite(lrs)]
    if finite.size == 0:
        return "max -, min - (no finite values)"
    text = f"max {finite.max():.4g}, min {finite.min():.4g}"
    if finite.size < lrs.size:
        s = "" if finite.size == 1 else "s"
        text += f" (of the {finite.size} finite value{s})"
    return text


def _np_quiet() -> Any:
    import numpy as np

    return np.errstate(over="ignore", invalid="ignore")
