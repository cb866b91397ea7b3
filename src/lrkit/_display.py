"""Rich display in notebooks: the one home of the ``_repr_mimebundle_`` renderings.

Each lrkit result class has a two-line ``_repr_mimebundle_`` that calls its renderer here.
The bundle holds ``text/plain`` (a one-line summary), ``text/html`` (a summary table with the
plot embedded as a PNG) and ``image/png`` (the plot alone, for front ends without HTML).
Plots are drawn on bare matplotlib ``Figure`` objects (never pyplot), so nothing is left open
and no figure is shown twice. Without matplotlib the bundle holds the HTML table only.

Core module: numpy and the standard library only (matplotlib imported when present).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from ._figure import UndrawableError, log_axis_fits
from ._format import accuracy_cell, duration, loss_cell

__all__ = ["mimebundle"]

DPI = 80


def _num(x: Any) -> str:
    """A float for reading: 4 significant digits; ints, strings and None as they are."""
    if x is None:
        return "-"
    if isinstance(x, bool) or not isinstance(x, float):
        return html.escape(str(x))
    if not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"


def _txt(x: float | None) -> str:
    return "None" if x is None else f"{x:.4g}"


def table(rows: Sequence[tuple[str, Any]]) -> str:
    """A two-column key/value HTML table."""
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{_num(v)}</td></tr>"
        for k, v in rows
    )
    return f"<table>{body}</table>"


def grid(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table with a header row."""
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{_num(c)}</td>" for c in r) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def png_from_axes(draw: Callable[[Any], Any], figsize: tuple[float, float]) -> bytes | None:
    """PNG of ``draw(ax)`` on a bare figure; ``None`` without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=figsize)
    try:
        draw(fig.add_subplot())
    except UndrawableError:  # values no image can span: the table alone, as without matplotlib
        return None
    fig.tight_layout()
    return _figure_png(fig)


def png_from_path(draw: Callable[[str], Any]) -> bytes | None:
    """PNG written by ``draw(path)`` (an object's own ``plot(path=...)``, which draws without
    pyplot), read back from a temporary directory; ``None`` without matplotlib or a file."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    with tempfile.TemporaryDirectory(prefix="lrkit_display_") as tmp:
        path = os.path.join(tmp, "plot.png")
        try:
            draw(path)
        except UndrawableError:  # values no image can span: the table alone
            return None
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            return f.read()


def mimebundle(title: str, body: str, png: bytes | None, text: str) -> dict[str, Any]:
    """``text/plain`` (a one-line summary), ``text/html`` (title, ``body``, the PNG inline)
    and ``image/png``."""
    img = ""
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        img = f"<img src='data:image/png;base64,{data}'/>"
    out: dict[str, Any] = {
        "text/plain": text,
        "text/html": f"<div><b>{html.escape(title)}</b>{body}{img}</div>",
    }
    if png is not None:
        out["image/png"] = png
    return out


# ----------------------------------------------------------------------------- per class


def schedule_bundle(s: Any) -> dict[str, Any]:
    """A schedule: its spec, length, LR at a few steps, and the curve."""
    import numpy as np

    from .textplot import MAX_STEP, natural_steps, plot_steps

    # the natural length, as Schedule.plot draws; evaluated at no more than MAX_POINTS steps;
    # a length beyond 2**53 (e.g. a join of long segments) is shown up to step 2**53 - 1
    natural = natural_steps(s)
    n = min(natural, MAX_STEP)
    points = sorted({0, n // 4, n // 2, (3 * n) // 4, n - 1})
    at = s.values(np.array(points, dtype=np.int64))
    xs = plot_steps(s, steps=n)
    values = s.values(xs)
    rows: list[tuple[str, Any]] = [("spec", str(s)), ("length", s.length)]
    rows += [(f"lr at step {p}", float(v)) for p, v in zip(points, at)]
    span = "min / max" if len(xs) == n else f"min / max ({len(xs)} steps sampled)"
    if natural > n:
        span = f"{span[:-1]}, of steps 0 to 2**53 - 1 only)" if "(" in span else span
        rows += [("shown", f"steps 0 to 2**53 - 1 of 0 to {natural - 1} (a plot stops at 2**53)")]
    rows += [(span, f"{float(np.min(values)):.4g} / {float(np.max(values)):.4g}")]
    png = png_from_axes(lambda ax: s.plot(n, ax=ax), (6, 3))
    return mimebundle(type(s).__name__, table(rows), png, repr(s))


def finder_text(r: Any) -> str:
    """A range test in one line: its ``repr`` and its notebook display's ``text/plain``."""
    return (
        f"FinderResult(suggestion={_txt(r.suggestion)}, max_lr={_txt(r.max_lr)}, "
        f"base_lr={_txt(r.base_lr)}, stop_reason={r.stop_reason!r}, steps={r.steps})"
    )


def finder_bundle(r: Any) -> dict[str, Any]:
    """A range test: the suggestions, how it stopped, its warnings, and the plot."""
    rows: list[tuple[str, Any]] = [
        ("suggestion", r.suggestion),
        ("max_lr (one-cycle)", r.max_lr),
        ("base_lr", r.base_lr),
        ("stopped", f"{r.stop_reason} after {r.steps} steps"),
    ]
    rows += [(f"rule {m}", v) for m, v in r.suggestions().items() if m != r.method]
    rows += [("warning", w) for w in r.warnings]
    png = png_from_path(lambda p: r.plot(path=p)) if len(r.lrs) else None
    return mimebundle(f"LR range test ({r.method})", table(rows), png, finder_text(r))


def tune_bundle(r: Any) -> dict[str, Any]:
    """A tuning study: best trial, trial counts, the top 5, and the search plot."""
    rows: list[tuple[str, Any]] = [
        ("study", getattr(r.study, "study_name", "")),
        ("trials", ", ".join(f"{k.lower()} {v}" for k, v in sorted(r.counts().items()))),
    ]
    top = r.top(5) if r.complete_trials else []
    if top:
        rows += [(f"best {r.metric}", r.best_value), ("best schedule", r.best_spec)]
    lines = [
        (
            i,
            t.number,
            float(t.value),
            float(t.params.get("lr", math.nan)),
            str(t.params.get("family", "?")),
            str(t.user_attrs.get("schedule", "")),
        )
        for i, t in enumerate(top, 1)
    ]
    body = table(rows) + grid(["rank", "trial", r.metric, "peak lr", "family", "schedule"], lines)
    png = png_from_path(lambda p: r.plot(path=p)) if top else None
    return mimebundle("lrkit tune", body, png, tune_text(r))


def tune_text(r: Any) -> str:
    """A tuning study in one line: its ``repr`` and its display's ``text/plain``."""
    top = bool(r.complete_trials)
    return f"TuneResult(trials={r.counts()}" + (
        f", best_value={r.best_value:.4g}, best_spec={r.best_spec!r})" if top else ")"
    )


def result_text(r: Any) -> str:
    """One run of a comparison in one line: its ``repr`` and its display's ``text/plain``."""
    return f"Result(method={r.method!r}, lr={r.lr!r}, val_loss={_txt(r.val_loss)})"


def comparison_text(c: Any) -> str:
    """A comparison in one line: its ``repr`` and its display's ``text/plain``."""
    best = c.best
    text = f"Comparison({c.name!r}, best={best.method if best else None!r}, "
    text += f"runs={len(c.results)}"
    return text + (f", interrupted, not run: {', '.join(c.not_run)})" if c.interrupted else ")")


def compare_bundle(r: Any) -> dict[str, Any]:
    """One run of a comparison: its numbers and its loss and LR curves."""
    rows: list[tuple[str, Any]] = [
        ("optimizer", r.optimizer),
        ("learning rate", r.lr),
        ("final train loss", loss_cell(r.final_loss)),
        ("val loss", loss_cell(r.val_loss)),
        ("val accuracy", accuracy_cell(r.val_acc)),
        ("diverged", str(r.diverged)),
    ]
    if r.note:
        rows.append(("note", r.note))

    def draw(ax: Any) -> None:
        ax.plot(r.losses, lw=1, label="train loss")
        if log_axis_fits(r.losses):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("train loss")
        lr_ax = ax.twinx()
        lr_ax.plot(r.lrs, color="C1", lw=1.2)
        lr_ax.set_ylabel("learning rate", color="C1")

    png = png_from_axes(draw, (6, 3)) if r.losses else None
    return mimebundle(f"compare: {r.method}", table(rows), png, result_text(r))


def comparison_bundle(c: Any) -> dict[str, Any]:
    """A comparison: one row per method (the best marked) and the loss and LR curves."""
    rows = [
        (
            ("* " if marked else "") + r.method,
            r.optimizer,
            r.lr,
            loss_cell(r.final_loss),
            loss_cell(r.val_loss),
            accuracy_cell(r.val_acc),
            duration(r.seconds),
            r.note,
        )
        for r, marked in zip(c.results, c.best_marks())
    ]
    header = ["method", "optimizer", "LR", "train loss", "val loss", "val acc", "time", "note"]
    png = png_from_path(lambda p: c.plot(path=p)) if any(r.losses for r in c.results) else None
    said = "* best val loss" if c.has_val else "* best train loss"
    if c.interrupted:  # as the command says it
        said += f"; {c.interruption()}"
    body = grid(header, rows) + f"<p>{html.escape(said)}</p>"
    return mimebundle(f"lrkit compare: {c.name}", body, png, comparison_text(c))
