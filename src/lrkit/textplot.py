"""Seeing a schedule (numpy only): a readable curve in the terminal (``lrkit plot`` without
``-o``) and the bounded set of steps at which any plot evaluates a schedule."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _validate as V

__all__ = [
    "ENVELOPE_STEPS",
    "MAX_POINTS",
    "check_steps",
    "natural_steps",
    "nothing_to_plot",
    "plot_steps",
    "text_plot",
]

#: The most steps at which a plot evaluates a schedule (however long it is).
MAX_POINTS = 4000
#: The largest step a plot can place exactly (float64 holds every integer up to 2**53).
MAX_STEP = 2**53
#: Up to this many steps, a plot of more than :data:`MAX_POINTS` steps reads every step's
#: value and draws, for each of ``MAX_POINTS // 2`` runs of steps, the step of the run's
#: lowest value and the step of its highest: a cycle shorter than a run is drawn as the band
#: it fills, and the curve's extremes are its own (evenly spaced steps would meet the cycle
#: at one phase, and draw a flat line or a false pattern). Longer schedules, and schedules
#: holding a Python function, are drawn at ``MAX_POINTS`` evenly spaced steps.
ENVELOPE_STEPS = 1 << 22
_CHUNK = 1 << 18  # steps evaluated at once while reading every step


def natural_steps(schedule: Any) -> int:
    """The number of steps a plot of ``schedule`` spans by default: its natural length + 1
    (its ``length`` attribute), or 1000 when it has none."""
    n = getattr(schedule, "length", None)
    if not n or not np.isfinite(float(n)):
        return 1000
    return int(n) + 1


def check_steps(schedule: Any) -> Any:
    """The steps a schedule is checked at (its sign when an adapter takes it, its peak), over
    its natural length (at most 2**53 steps): every step up to :data:`MAX_POINTS` steps, else
    that many evenly spaced ones. An adapter is built at the start of a run (a Keras callback
    at each ``fit()``): reading every step of a long schedule there, as a plot does, would
    cost up to a second."""
    return plot_steps(schedule, extremes=False)


def plot_steps(
    schedule: Any, *, steps: int | None = None, max_points: int = MAX_POINTS, extremes: bool = True
) -> Any:
    """The integer steps at which to draw ``schedule`` over ``[0, steps)``: every step when
    there are at most ``max_points``; else, up to :data:`ENVELOPE_STEPS` steps, the first,
    the last and the steps of the lowest and highest value of each of ``max_points // 2 - 1``
    runs of steps (at most ``max_points``); else ``max_points`` evenly spaced steps including
    the first and the last (so a plot of ``cosine(0.1, total_steps=10**12)`` costs what one
    of 4000 steps does); ``extremes=False``: evenly spaced steps at any length. ``steps``
    defaults to the schedule's natural length + 1 (its ``length`` attribute), or 1000 when it
    has none. Returns an ``int64`` array."""
    if steps is None:  # a schedule of the longest length (2**53 steps) is drawn to its end
        total = min(natural_steps(schedule), MAX_STEP)
    else:
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {V.fmt(steps)}")
        total = int(steps)
    if total > MAX_STEP:
        raise ValueError(f"steps must be at most 2**53 to plot, got {total}")
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2:
        raise ValueError(f"max_points must be an integer >= 2, got {V.fmt(max_points)}")
    if total <= max_points:
        return np.arange(total, dtype=np.int64)
    if extremes and total <= ENVELOPE_STEPS:
        extremes = _extreme_steps(schedule, total, max_points)
        if extremes is not None:
            return extremes
    xs = np.round(np.linspace(0.0, float(total - 1), max_points)).astype(np.int64)
    return np.unique(xs)


def _extreme_steps(schedule: Any, total: int, max_points: int) -> Any:
    """The first and last step, and the steps of the lowest and highest value of each of
    ``max_points // 2 - 1`` runs of steps over ``[0, total)`` (NaN read as neither); ``None``
    for a schedule that cannot give every step's value at once: one that cannot be written
    as a dict (it holds a Python function, evaluated step by step), or without ``values``."""
    if not callable(getattr(schedule, "values", None)):
        return None
    try:
        schedule.to_dict()  # refused for a schedule holding a Python function
    except Exception:  # noqa: BLE001 - any refusal: drawn at evenly spaced steps
        return None
    runs = max_points // 2 - 1
    if runs < 1:
        return None
    width = -(-total // runs)
    rows = max(1, _CHUNK // width)
    picks = [np.array([0, total - 1], dtype=np.int64)]
    try:
        with np.errstate(all="ignore"):
            for first in range(0, runs, rows):
                start = first * width
                stop = min((first + rows) * width, total)
                if start >= stop:
                    break
                y = np.asarray(schedule.values(np.arange(start, stop, dtype=np.int64)), float)
                n = -(-(stop - start) // width)
                y = np.concatenate([y, np.full(n * width - (stop - start), np.nan)])
                y = y.reshape(n, width)
                nan = np.isnan(y)
                base = start + np.arange(n, dtype=np.int64) * width
                picks.append(base + np.where(nan, np.inf, y).argmin(axis=1))
                picks.append(base + np.where(nan, -np.inf, y).argmax(axis=1))
    except (ArithmeticError, ValueError):
        return None  # left to the caller's evaluation, which reports it
    xs = np.concatenate(picks)
    return np.unique(xs[xs < total])


def _drawable(x: np.ndarray, y: np.ndarray, *, logx: bool, logy: bool) -> tuple[np.ndarray, str]:
    """The points a plot can draw (finite, and positive on a log axis) and, when there is
    none, why."""
    keep = np.isfinite(x) & np.isfinite(y)
    why = "no finite values"
    if keep.any() and (logx or logy):
        finite = keep.copy()
        if logx:
            keep &= x > 0
        if logy:
            keep &= y > 0
        if not keep.any():
            axis = "log axes" if logx and logy else "a log x axis" if logx else "a log axis"
            what = "values" if logy and (finite & (y > 0)).sum() == 0 else "steps"
            why = f"no positive {what} for {axis}"
    return keep, why


def nothing_to_plot(
    xs: Sequence[float] | np.ndarray,
    ys: Sequence[float] | np.ndarray,
    *,
    logx: bool = False,
    logy: bool = False,
) -> str | None:
    """Why a plot of ``ys`` against ``xs`` would be empty (``"no finite values"``, ``"no
    positive values for a log axis"``: what :func:`text_plot` says in its ``(nothing to plot:
    ...)`` line), or ``None`` when it has a point to draw."""
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    keep, why = _drawable(x, y, logx=logx, logy=logy)
    return None if keep.any() else why


def text_plot(
    xs: Sequence[float] | np.ndarray,
    ys: Sequence[float] | np.ndarray,
    *,
    width: int = 72,
    height: int = 16,
    logx: bool = False,
    logy: bool = False,
    title: str | None = None,
    xlabel: str = "step",
) -> str:
    """Render ``ys`` against ``xs`` as a character plot with labelled axes."""
    if isinstance(width, bool) or not isinstance(width, int) or not 10 <= width <= 1000:
        raise ValueError(f"width must be an integer in [10, 1000], got {V.fmt(width)}")
    if isinstance(height, bool) or not isinstance(height, int) or not 3 <= height <= 500:
        raise ValueError(f"height must be an integer in [3, 500], got {V.fmt(height)}")
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError("xs and ys must be 1-d sequences of the same, non-zero length")
    finite_x = np.isfinite(x)
    not_finite = int((~(finite_x & np.isfinite(y))).sum())
    # the steps the x axis spans: every step asked for, also one whose value is not finite
    span = finite_x & (x > 0) if logx else finite_x.copy()
    keep, why = _drawable(x, y, logx=logx, logy=logy)
    hidden = int((span & np.isfinite(y)).sum() - keep.sum())  # values <= 0 a log axis hides
    xs_all = x[span]
    x, y = x[keep], y[keep]
    if x.size == 0:
        return (title + "\n" if title else "") + f"(nothing to plot: {why})"
    tx = np.log10(x) if logx else x
    ty = np.log10(y) if logy else y
    # the x axis spans every step, also those whose value (<= 0) a log axis cannot show
    tspan = np.log10(xs_all) if logx else xs_all
    x0, x1 = float(tspan.min()), float(tspan.max())
    y0, y1 = float(ty.min()), float(ty.max())
    one_x = x1 == x0  # a single step: labelled once, not as a range
    if one_x:
        x1 = x0 + 1.0
    mid_row = height - 1 - height // 2  # the row of the middle label
    if y1 == y0:  # a flat curve: on the row of the middle label, which shows its value
        v = y0
        pad = 0.5 if logy else abs(v) * 0.05 or 1.0  # half a decade on a log axis
        y0 = v - 2 * pad * mid_row / (height - 1)
        y1 = v + 2 * pad * (height - 1 - mid_row) / (height - 1)
        top = math.log10(sys.float_info.max) if logy else sys.float_info.max
        bottom = math.log10(5e-324) if logy else -sys.float_info.max
        if y1 > top:  # no room above the largest float: the curve on the top row
            y0, y1 = v - 2 * pad, v
        elif y0 < bottom:  # nor below the smallest: the curve on the bottom row
            y0, y1 = v, v + 2 * pad
    grid = [[" "] * width for _ in range(height)]
    cols = _cells(tx, x0, x1, width)
    rows = _cells(ty, y0, y1, height)
    # connect consecutive points in the same or the next column so steep drops stay visible
    # (and a cycle drawn by each column's lowest and highest value fills its band)
    prev: tuple[int, int] | None = None
    for c, r in zip(cols.tolist(), rows.tolist()):
        if prev is not None and c - 1 <= prev[0] <= c and abs(prev[1] - r) > 1:
            lo, hi = sorted((prev[1], r))
            for rr in range(lo + 1, hi):
                grid[height - 1 - rr][c] = "|" if grid[height - 1 - rr][c] == " " else "*"
        grid[height - 1 - r][c] = "*"
        prev = (c, r)

    def fmt(v: float, log: bool, digits: int = 3) -> str:
        if log:
            try:
                val = 10.0**v
            except OverflowError:  # log10 of the largest floats rounds up past them
                return f"{10.0 ** (v - 1.0):.{digits}g}".replace("e+307", "e+308")
            # 10 ** log10(1199) is 1198.9999999999998; a log axis never shows 0
            if abs(val) >= 0.5 and abs(val - round(val)) <= 1e-9 * abs(val):
                val = round(val)
        else:
            val = v
        if float(val).is_integer() and abs(val) < 1e6:
            return str(int(val))  # a step: 1199, not 1.2e+03
        return f"{val:.{digits}g}"

    # the middle label is the value of the row it stands on (the midpoint for odd heights);
    # 3 significant digits, more where the curve spans too little for them to differ
    frac = mid_row / (height - 1)
    ym = y0 + (y1 - y0) * frac  # no overflow near float64's largest
    if not math.isfinite(ym):  # a span wider than float64's range: weighed, not subtracted
        ym = y0 * (1.0 - frac) + y1 * frac
    for digits in range(3, 13):
        labels = [fmt(y1, logy, digits), fmt(ym, logy, digits), fmt(y0, logy, digits)]
        if len(set(labels)) == 3:
            break
    lw = max(len(s) for s in labels)
    lines = []
    if title:
        lines.append(title)
    for i, row in enumerate(grid):
        if i == 0:
            lab = labels[0]
        elif i == height // 2:
            lab = labels[1]
        elif i == height - 1:
            lab = labels[2]
        else:
            lab = ""
        lines.append(f"{lab:>{lw}} |" + "".join(row))
    lines.append(" " * lw + " +" + "-" * width)
    left, right = fmt(x0, logx), "" if one_x else fmt(x1, logx)
    mid = f"{xlabel}{' (log)' if logx else ''}"
    gap = max(2, width - len(left) - len(right) - len(mid))  # a space on each side of mid
    lines.append(" " * (lw + 2) + left + " " * (gap // 2) + mid + " " * (gap - gap // 2) + right)
    if hidden:
        s = "" if hidden == 1 else "s"
        lines.append(f"({hidden} value{s} <= 0 not drawn on the log axis)")
    if not_finite:
        s = "" if not_finite == 1 else "s"
        lines.append(f"({not_finite} non-finite value{s} (inf or nan) not drawn)")
    return "\n".join(lines)


def _cells(v: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    """The cell (0 to ``n - 1``) of each value of ``v`` on an axis from ``lo`` to ``hi``; a
    span wider than float64's range (``-1.7e308`` to ``1.7e308``) is measured in halves, so
    that nothing overflows to inf."""
    span = hi - lo
    if span == 0:  # one step at a float too large for lo + 1 to differ from it
        pos = np.zeros_like(v)
    elif math.isfinite(span):
        pos = (v - lo) / span
    else:
        pos = (v / 2 - lo / 2) / (hi / 2 - lo / 2)
    cells: np.ndarray = np.clip((pos * (n - 1)).round().astype(int), 0, n - 1)
    return cells
