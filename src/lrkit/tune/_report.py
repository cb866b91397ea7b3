"""Text table and plots of a study."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

from .._format import round_floats

__all__ = ["is_rank0", "plot_search", "trials_table"]


def is_rank0() -> bool:
    """``False`` only on a non-zero rank of an initialized ``torch.distributed`` group (torch is
    not imported for this)."""
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return True
    try:
        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank()) == 0
    except Exception:  # pragma: no cover - defensive
        return True
    return True


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def trials_table(trials: Sequence[Any], *, metric: str = "value") -> str:
    """Rank, trial number, metric, peak LR, family and schedule spec of each trial."""
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
    lines = []
    for r in [header, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1])
        if r is header:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 8)
    return "\n".join(lines)


def plot_search(result: Any, path: str | None = None) -> Any:
    """Value per trial (best so far as a line) and peak LR vs value (log x), by family."""
    if path is not None:  # a bare Figure: no pyplot, the caller's backend is untouched
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11, 4))
        ax1, ax2 = fig.subplots(1, 2)
    else:
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    trials = result.complete_trials
    maximize = result._maximize
    nums = [t.number for t in trials]
    vals = [float(t.value) for t in trials]
    families = sorted({str(t.params.get("family", "?")) for t in trials})
    colors = {f: f"C{i}" for i, f in enumerate(families)}
    for fam in families:
        sel = [t for t in trials if str(t.params.get("family", "?")) == fam]
        ax1.scatter([t.number for t in sel], [t.value for t in sel], color=colors[fam], label=fam)
        ax2.scatter(
            [t.params["lr"] for t in sel], [t.value for t in sel], color=colors[fam], label=fam
        )
    best: list[float] = []
    for v in vals:
        best.append(v if not best else (max(best[-1], v) if maximize else min(best[-1], v)))
    if nums:
        ax1.step(nums, best, where="post", color="k", lw=1.5, label="best so far")
    ax1.set_xlabel("trial")
    ax1.set_ylabel(result.metric)
    ax1.set_title("value per trial")
    ax2.set_xscale("log")
    from matplotlib.ticker import NullFormatter

    ax2.xaxis.set_minor_formatter(NullFormatter())
    lo, hi = result.lr_range
    ax2.axvspan(lo, hi, color="0.9", zorder=0, label=f"searched ({result.seeding})")
    ax2.set_xlabel("peak learning rate")
    ax2.set_ylabel(result.metric)
    ax2.set_title("LR vs value")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if vals:
        srt = sorted(vals)
        lo_v, hi_v = srt[0], srt[min(len(srt) - 1, int(0.8 * len(srt)))]
        if maximize:
            lo_v, hi_v = srt[max(0, int(0.2 * len(srt)) - 1)], srt[-1]
        span = max(hi_v - lo_v, 1e-12)
        for ax in (ax1, ax2):
            ax.set_ylim(lo_v - 0.1 * span, hi_v + 0.3 * span)
    fig.tight_layout()
    if path is not None and is_rank0():
        fig.savefig(path, dpi=110)
    return fig
