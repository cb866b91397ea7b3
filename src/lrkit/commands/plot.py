"""``lrkit plot SPEC --steps N [-o file.png]``: draw a schedule given as a spec string."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "plot",
        help="Plot a schedule given as a spec string (a file, or a curve in the terminal).",
        description=(
            "Plot a schedule spec such as 'cosine(lr=0.1, total_steps=1000)'. "
            "Without -o the curve is drawn in the terminal."
        ),
    )
    p.add_argument("spec", help='schedule spec string, e.g. "onecycle(0.1, 1000)"')
    p.add_argument("--steps", type=int, default=None, help="number of steps (default: its length)")
    p.add_argument("-o", "--output", default=None, help="image file to write (png, svg, pdf)")
    p.add_argument("--log", action="store_true", help="logarithmic LR axis")
    p.add_argument("--width", type=int, default=72, help="terminal plot width (default 72)")
    p.add_argument("--height", type=int, default=16, help="terminal plot height (default 16)")
    return p


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..schedules import parse
    from ..schedules._base import _plot_steps
    from ..textplot import text_plot

    try:
        schedule = parse(args.spec)
        n = _plot_steps(schedule, args.steps)
    except ValueError as exc:
        print(f"lrkit plot: error: {exc}", file=sys.stderr)
        return 2
    steps = np.arange(n)
    lrs = schedule.values(steps)
    if args.output:
        try:
            from matplotlib.figure import Figure  # no pyplot: no backend switch
        except ImportError:
            print("lrkit plot: -o needs matplotlib: pip install 'lrkit[plot]'", file=sys.stderr)
            return 2
        fig = Figure(figsize=(8, 4))
        ax = fig.add_subplot()
        schedule.plot(steps=n, ax=ax)
        if args.log:
            ax.set_yscale("log")
        ax.set_title(str(schedule) if len(str(schedule)) < 90 else schedule.name)
        fig.tight_layout()
        fig.savefig(args.output, dpi=120)
        print(f"wrote {args.output}")
        return 0
    print(
        text_plot(
            steps,
            lrs,
            width=args.width,
            height=args.height,
            logy=args.log,
            title=str(schedule),
        )
    )
    print(f"lr: start {lrs[0]:.4g}, max {lrs.max():.4g}, min {lrs.min():.4g}, end {lrs[-1]:.4g}")
    return 0
