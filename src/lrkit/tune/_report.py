"""Text table and plots of a study."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .._figure import check_path, check_title, draw_grid, label_log_axis, new_figure, save_figure
from .._format import round_floats, wrap_spec
from .._imports import require
from .._runtime import is_rank0
from ._space import FAMILIES

__all__ = ["is_rank0", "plot_search", "trials_table"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def trials_table(trials: Sequence[Any], *, metric: str = "value", width: int | None = None) -> str:
    """Rank, trial number, metric, peak LR, family and schedule spec of each trial; numbers
    at 4 significant digits (the stored spec keeps full precision). With ``width``, a long
    spec is wrapped onto further lines under its column so no line is longer, the spec
    keeping at least 30 characters a line (a ``width`` the other columns leave less of is
    exceeded by what that needs)."""
    header = ["rank", "trial", metric, "peak lr", "family", "schedule"]
    rows = []
    for i, t in enumerate(trials, 1):
        spec = round_floats(str(t.user_attrs.get("schedule", "")), 4)
        rows.append(
            [
                str(i),
                str(t.number),
                _fmt(float(t.value)) if t.value is not None else "-",
                _fmt(float(t.params.get("lr", math.nan))),
                str(t.params.get("family", "?")),
                spec,
            ]
        )
    if not rows:
        return "(no finished trials)"
    widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header) - 1)]
    indent = sum(widths) + 2 * len(widths)
    room = max(30, width - indent) if width is not None else None
    lines = []
    for r in [header, *rows]:
        left = "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  "
        parts = wrap_spec(r[-1], room) if room is not None else [r[-1]]
        lines.append(left + parts[0])
        lines.extend(" " * indent + p for p in parts[1:])
        if r is header:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 8)
    return "\n".join(lines)


def _edges(values: Sequence[float], maximize: bool) -> tuple[float, float]:
    """y-limits that show the good trials in detail: from the best value to the 80th
    percentile (worst 20% clipped to the edge)."""
    srt = sorted(values)
    lo_v, hi_v = srt[0], srt[min(len(srt) - 1, int(0.8 * len(srt)))]
    if maximize:
        lo_v, hi_v = srt[max(0, int(0.2 * len(srt)) - 1)], srt[-1]
    span = max(hi_v - lo_v, 1e-12 * max(1.0, abs(hi_v)))
    return lo_v - 0.1 * span, hi_v + 0.3 * span


def plot_search(result: Any, *, path: Any = None, title: str | None = None) -> Any:
    """Two panels: the value of every trial (best so far as a line; integer trial axis) and
    peak LR against value (log LR axis, labelled). The y-axis shows the best 80% of the
    COMPLETE trials in detail; worse ones are drawn at the edge as triangles, pruned trials as
    open circles at their last reported value (open triangles at the edge when worse) and
    diverged trials as crosses at the edge, so every trial stays visible."""
    check_path(path)
    check_title(title)
    require("matplotlib", "plot", feature="TuneResult.plot")
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(path, figsize=(12, 4.5))  # with a path: no pyplot
    ax1, ax2 = fig.subplots(1, 2)
    if title is not None:
        fig.suptitle(title, fontsize=11)
    trials = result.complete_trials
    maximize = result._maximize
    everything = result.study.get_trials(deepcopy=False)
    pruned = [
        t
        for t in everything
        if t.state.name == "PRUNED" and not t.user_attrs.get("surplus") and "lr" in t.params
    ]
    diverged = [t for t in pruned if t.user_attrs.get("diverged")]
    pruned = [t for t in pruned if not t.user_attrs.get("diverged") and t.intermediate_values]
    vals = [float(t.value) for t in trials]
    lo, hi = _edges(vals, maximize) if vals else (0.0, 1.0)
    bad_edge = lo if maximize else hi  # where worse-than-shown values are drawn
    edge_marker = "v" if maximize else "^"  # and how: pointing the way they lie

    def clip(v: float) -> tuple[float, bool]:
        out = v < lo if maximize else v > hi
        return (bad_edge, True) if out or not math.isfinite(v) else (v, False)

    families = sorted({str(t.params.get("family", "?")) for t in trials})
    # a family keeps its colour from one study to the next: its place among all families
    order = [*FAMILIES, *(f for f in families if f not in FAMILIES)]
    colors = {f: f"C{order.index(f) % 10}" for f in families}

    # each panel's x of a trial: its number, its peak LR
    def number(t: Any) -> Any:
        return t.number

    def peak_lr(t: Any) -> Any:
        return t.params["lr"]

    panels = ((ax1, number), (ax2, peak_lr))
    for fam in families:
        sel = [t for t in trials if str(t.params.get("family", "?")) == fam]
        inside = [(t, clip(float(t.value))) for t in sel]
        for ax, x_of in panels:
            pts = [(x_of(t), y, c) for t, (y, c) in inside]
            shown = [(x, y) for x, y, c in pts if not c]
            edge = [(x, y) for x, y, c in pts if c]
            if shown:
                ax.scatter(*zip(*shown), color=colors[fam], label=fam, s=28, alpha=0.85, zorder=3)
            if edge:
                ax.scatter(
                    *zip(*edge),
                    color=colors[fam],
                    marker=edge_marker,
                    s=40,
                    zorder=3,
                    clip_on=False,
                    label=None if shown else fam,
                )
    pruned_out = False  # a pruned trial's last value beyond the edge: an open triangle there
    if pruned:
        last = [(t, clip(float(t.intermediate_values[max(t.intermediate_values)]))) for t in pruned]
        pruned_out = any(out for _, (_, out) in last)
        for ax, x_of in panels:
            label: str | None = "pruned (last value)"
            for beyond in (False, True):
                part = [(t, y) for t, (y, out) in last if out is beyond]
                if not part:
                    continue
                ax.scatter(
                    [x_of(t) for t, _ in part],
                    [y for _, y in part],
                    marker=edge_marker if beyond else "o",
                    facecolors="none",
                    edgecolors="0.55",
                    s=22,
                    lw=0.8,
                    zorder=2,
                    clip_on=False,
                    label=label,
                )
                label = None
    if diverged:
        for ax, x_of in panels:
            ax.scatter(
                [x_of(t) for t in diverged],
                [bad_edge] * len(diverged),
                marker="x",
                color="C3",
                s=36,
                lw=1.5,
                zorder=4,
                clip_on=False,
                label="diverged",
            )
    best: list[float] = []
    for v in vals:
        best.append(v if not best else (max(best[-1], v) if maximize else min(best[-1], v)))
    if trials:
        nums = [t.number for t in trials]
        ax1.step(nums, best, where="post", color="k", lw=1.5, label="best so far", zorder=4)
    ax1.set_xlabel("trial")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_ylabel(result.metric)
    ax1.set_title("value per trial", pad=12)
    ax2.set_xscale("log")
    lo_lr, hi_lr = result.lr_range
    ax2.axvspan(lo_lr, hi_lr, color="0.92", zorder=0, label=f"searched ({result.searched_by})")
    ax2.set_xlim(lo_lr / 1.25, hi_lr * 1.25)
    label_log_axis(ax2.xaxis, lo_lr, hi_lr)
    ax2.set_xlabel("peak learning rate (log scale)")
    ax2.set_ylabel(result.metric)
    ax2.set_title("peak LR vs value", pad=12)
    for ax in (ax1, ax2):
        draw_grid(ax)
        ax.set_ylim(lo, hi)
    handles, labels = [], []
    for ax in (ax1, ax2):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if pruned_out or any(clip(v)[1] for v in vals):  # the triangles: trials beyond the edge
        labels.append("worse: drawn at the edge")
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], ls="none", marker=edge_marker, color="0.3"))
    ax2.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    if path is not None and is_rank0():
        save_figure(fig, path)
    return fig
