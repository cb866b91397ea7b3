"""The outcome of a range test: :class:`FinderResult`."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _renamed
from .. import _validate as V
from .._runtime import caller_level
from .probes import Probes
from .rules import (
    DEFAULT_RULE,
    RULES,
    Rule,
    Suggestions,
    budget_message,
    resolve,
    rule_lr,
    smooth_curve,
    suggestions,
)
from .smoothing import FloatArray

if TYPE_CHECKING:
    from .sweep import SweepOptions

__all__ = ["FinderResult", "LRFinderWarning"]


class LRFinderWarning(UserWarning):
    """The range-test curve gives no reliable suggestion; the message says what to change."""


#: rebuilds a saved result: the sweep module's ``replay_result``, which adds itself here (a
#: result cannot import the sweep that makes it)
_REPLAY: list[Callable[..., FinderResult]] = []


@_renamed.former_field("optimizer", "optimizer_family")
@dataclass(frozen=True, eq=False)
class FinderResult:
    """The outcome of a range test.

    ``lrs``/``losses``/``smoothed`` hold one entry per completed step: the learning rate, the
    training-batch loss and its EMA (a NaN/inf loss is not recorded; ``stop_lr`` is the
    learning rate of the step that stopped the sweep). ``held_lrs``/``held_losses`` hold the
    loss on the fixed held batches at the steps where it was measured (empty when the sweep did
    not measure one); the default rule reads that curve (``curve``).

    ``suggestion`` is the LR for a constant-rate run, ``max_lr`` the peak of one-cycle,
    ``peak_lr`` the peak of warmup-cosine, ``base_lr`` (``max_lr / 10``) the floor of a
    cyclical schedule, all for ``total_steps`` optimizer steps; ``lr_min`` is the edge they are
    scaled from, and ``optimizer_family`` the family they are for. ``reliable`` is ``False`` when
    the curve never turned up (the suggestions are then lower bounds; a ``saturated`` curve
    excepted), did not descend, or diverged at once, or when ``total_steps`` is below the
    budgets the default rule was fitted on; ``warnings`` says why. Results compare by
    identity (their curves are arrays).
    """

    lrs: FloatArray
    losses: FloatArray
    smoothed: FloatArray
    stop_reason: str
    stop_lr: float | None
    options: SweepOptions
    held_lrs: FloatArray = field(default_factory=lambda: np.zeros(0))
    held_losses: FloatArray = field(default_factory=lambda: np.zeros(0))
    extended: int = 0
    #: the optimizer family the default rule was told (``"sgd"``, ``"momentum"``,
    #: ``"adaptive"``; ``None``: not given, read as ``"adaptive"``)
    optimizer_family: str | None = None
    warnings: tuple[str, ...] = ()
    _sugg: Suggestions | None = field(default=None, repr=False, compare=False)
    #: why the sweep's rule (a user's callable) gave no learning rate on this curve, if it
    #: did not: ``suggestion`` is then ``None`` and ``warnings`` says why
    _rule_failed: str | None = field(default=None, repr=False, compare=False)
    #: False on the non-zero ranks of a distributed job: ``plot(path=...)`` then writes nothing
    writes_files: bool = field(default=True, repr=False, compare=False)
    #: the probe runs around the edge (:mod:`lrkit.finder.probes`), when the finder ran them
    #: (``probe_data=``): the default rule's suggestions are then scaled from ``probes.edge``
    probes: Probes | None = None

    # --------------------------------------------------------------- the options, for reading
    @property
    def start_lr(self) -> float:
        """The learning rate of the sweep's first step."""
        return self.options.start_lr

    @property
    def end_lr(self) -> float:
        """The learning rate the planned sweep ends at (an extended sweep goes past it, see
        ``extended``)."""
        return self.options.end_lr

    @property
    def num_iter(self) -> int:
        """The planned number of sweep steps, from ``start_lr`` to ``end_lr``."""
        return self.options.num_iter

    @property
    def mode(self) -> str:
        """The LR spacing of the sweep: ``"exp"`` (log-spaced) or ``"linear"``."""
        return self.options.mode

    @property
    def beta(self) -> float:
        """The EMA factor of ``smoothed`` (the divergence test, the plots, the fastai-style
        rules)."""
        return self.options.beta

    @property
    def diverge_th(self) -> float:
        """The divergence threshold: the sweep stops when the smoothed training loss (or the
        held-batch loss) exceeds this multiple of its best value."""
        return self.options.diverge_th

    @property
    def rule(self) -> str:
        """The name of the rule ``suggestion`` follows."""
        return resolve(self.options.rule)[0]

    @property
    def method(self) -> str:
        """Alias of ``rule``."""
        return self.rule

    @property
    def total_steps(self) -> int | None:
        """The optimizer steps of the planned training run the suggestions are for
        (``None``: not given; the default rule then reads 1000)."""
        return self.options.total_steps

    # --------------------------------------------------------------- curves and suggestions
    @property
    def steps(self) -> int:
        """Number of steps run (including the one that stopped the sweep on NaN/inf)."""
        return len(self.losses) + (1 if self.stop_reason == "nan" else 0)

    @property
    def curve(self) -> tuple[FloatArray, FloatArray]:
        """``(lrs, losses)`` the default rule reads: the held-batch losses where measured,
        else the training losses. (Its edge counts in ``lr_min``; the curve's shape, which the
        warnings report, is read off the training curve when the held one has fewer than
        ``SHAPE_POINTS`` points, see :func:`lrkit.finder.rules.shape_curve`.)"""
        if len(self.held_losses):
            return self.held_lrs, self.held_losses
        return self.lrs, self.losses

    @property
    def reliable(self) -> bool:
        """Whether the suggestions can be trusted: ``True`` when there are no ``warnings``."""
        return not self.warnings

    @property
    def suggestion(self) -> float | None:
        """The learning rate to train with at a constant rate (by the sweep's rule; ``None``
        when no step ran, or when the sweep's rule, a callable, raised or returned no learning
        rate on this curve: ``warnings`` then says why)."""
        if self._rule_failed is not None:
            return None
        return self.suggest()

    @property
    def max_lr(self) -> float | None:
        """The peak of a one-cycle run of ``total_steps`` (default rule)."""
        return None if self._sugg is None else self._sugg.max_lr

    @property
    def peak_lr(self) -> float | None:
        """The peak of a warmup-cosine run of ``total_steps`` (default rule): a linear warmup over
        its first ``total_steps // 20`` steps, then a cosine to 0 (docs/finder.md)."""
        return None if self._sugg is None else self._sugg.peak_lr

    @property
    def base_lr(self) -> float | None:
        """The floor of a cyclical schedule: ``max_lr / 10``."""
        return None if self._sugg is None else self._sugg.max_lr / 10.0

    @property
    def lr_min(self) -> float | None:
        """The edge the default rule scales its suggestions from: where the sweep stopped
        making progress (the geometric mean of the training and held curves' edges, see
        :func:`lrkit.finder.rules.edge`); not the LR of the lowest loss. ``None`` if no step
        ran."""
        return None if self._sugg is None else self._sugg.lr_min

    @property
    def min_loss_lr(self) -> float | None:
        """Deprecated alias of ``lr_min`` (which is not the LR of the lowest loss)."""
        why = "the edge the default rule scales from, not the learning rate of the lowest loss"
        _renamed.attribute("FinderResult", "min_loss_lr", "lr_min", why)
        return self.lr_min

    @property
    def optimizer(self) -> str | None:
        """Deprecated alias of ``optimizer_family``."""
        _renamed.attribute("FinderResult", "optimizer", "optimizer_family")
        return self.optimizer_family

    def for_total_steps(self, total_steps: int, *, warn: bool = True) -> Suggestions | None:
        """The default rule's suggestions (``constant``, ``max_lr``, ``peak_lr``) for a run of
        another length, read off the same sweep, as a sweep run with that ``total_steps``
        would have given them; ``None`` if no step ran. Their ``warnings`` are this result's,
        with that of a budget below those the rule was fitted on (its suggestions are then
        those for the lowest, 100 steps) for ``total_steps`` instead of this result's
        ``total_steps``, and ``reliable`` is ``False`` when there are any; that budget warning
        is also issued as an :class:`LRFinderWarning` (``warn=False``: not issued)."""
        total_steps = V.integer("total_steps", total_steps, 1)
        warn = V.flag("warn", warn)
        if self._sugg is None:
            return None
        held = len(self.held_losses) > 0
        out = suggestions(
            self.lrs,
            self.losses,
            held_lrs=self.held_lrs if held else None,
            held_losses=self.held_losses if held else None,
            total_steps=total_steps,
            optimizer_family=self.optimizer_family,
            stop_reason=self.stop_reason,
            probes=self.probes,
        )
        own = budget_message(self.total_steps) if self.total_steps is not None else None
        budget = budget_message(total_steps)
        msgs = [m for m in self.warnings if m != own]
        if budget is not None:
            msgs.append(budget)
            if warn:
                warnings.warn(
                    f"LR range test: {budget}", LRFinderWarning, stacklevel=caller_level()
                )
        return replace(out, warnings=tuple(msgs))

    def suggest(self, rule: str | Rule | None = None) -> float | None:
        """The constant-rate LR of one rule: a name in ``RULES`` or a callable
        ``rule(lrs, losses) -> lr`` (``None``: the sweep's rule). The default rule reads
        ``curve``; torch-lr-finder's and fastai's rules read the training losses, smoothed
        as those tools smooth them (not with the sweep's ``beta``); a callable gets
        ``curve``. ``None`` if no step ran."""
        name, fn = resolve(self.options.rule if rule is None else rule)
        if len(self.losses) == 0:
            return None
        if fn is RULES[DEFAULT_RULE]:
            assert self._sugg is not None
            return self._sugg.constant
        if fn in RULES.values():
            return float(
                fn(
                    self.lrs,
                    self.losses,
                    stop_reason=self.stop_reason,
                    num_iter=self.options.num_iter,
                )
            )
        x, y = self.curve
        return rule_lr(name, fn(x.copy(), y.copy()))  # copies: the result's curve stays as is

    def suggestions(self) -> dict[str, float | None]:
        """Every built-in rule's suggestion, by name."""
        return {m: self.suggest(m) for m in RULES}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any], *, rule: Any = None) -> FinderResult:
        """The result ``to_dict()`` gave (also read back from JSON, ``lrkit find --json``),
        rebuilt exactly: its curves replayed through a sweep with the options it was recorded
        with, so ``suggest``, ``for_total_steps`` and ``plot`` work as on the original. A
        callable rule is saved by its name only: give the same callable as ``rule`` (any
        other name is a warning; a name not in :data:`lrkit.finder.RULES` without it, a
        one-line ``ValueError``)."""
        return _REPLAY[0](state, rule=rule)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (curves as lists). ``"optimizer"`` repeats
        ``"optimizer_family"`` under its former name, for readers of lrkit 0.1.0's files (a
        Lightning checkpoint, ``lrkit find --json``)."""
        return {
            "lrs": [float(v) for v in self.lrs],
            "losses": [float(v) for v in self.losses],
            "smoothed": [float(v) for v in self.smoothed],
            "held_lrs": [float(v) for v in self.held_lrs],
            "held_losses": [float(v) for v in self.held_losses],
            "stop_reason": self.stop_reason,
            "stop_lr": self.stop_lr,
            "extended": self.extended,
            "options": self.options.to_dict(),
            "start_lr": self.start_lr,
            "end_lr": self.end_lr,
            "num_iter": self.num_iter,
            "mode": self.mode,
            "beta": self.beta,
            "diverge_th": self.diverge_th,
            "rule": self.rule,
            "total_steps": self.total_steps,
            "optimizer_family": self.optimizer_family,
            "optimizer": self.optimizer_family,  # the former key, read by lrkit 0.1.0
            "suggestion": self.suggestion,
            "max_lr": self.max_lr,
            "peak_lr": self.peak_lr,
            "base_lr": self.base_lr,
            "lr_min": self.lr_min,
            "suggestions": self.suggestions(),
            "reliable": self.reliable,
            "warnings": list(self.warnings),
            "steps": self.steps,
            "probes": None if self.probes is None else self.probes.to_dict(),
        }

    def plot(
        self,
        ax: Any = None,
        *,
        path: str | None = None,
        show_raw: bool = True,
        title: str | None = None,
    ) -> Any:
        """Plot loss against log learning rate: the raw losses, the EMA curve, the curve the
        default rule reads, each rule's suggestion, ``max_lr`` and the stop point; with
        ``probes``, their losses on ``probe_data`` (on a second y axis) and the best probe's LR.
        ``title`` (e.g. the task's name) heads the plot; the legend sits beside the axes, off
        the curve, in a figure of its own, and inside ``ax`` (``loc="best"``) on yours, clear
        of a neighbouring panel.

        Returns the matplotlib ``Axes``; writes the figure to ``path`` when given (a file name
        as the first argument is the ``path``: ``result.plot("lr.png")``). With ``path`` and no
        ``ax`` the figure is drawn without pyplot, so the caller's matplotlib backend and open
        figures are left untouched."""
        from .._figure import (
            check_drawable,
            label_log_axis,
            new_axes,
            off_frame,
            resolve,
            save_figure,
        )
        from .._imports import require

        ax, path = resolve(ax, path, first_name="ax")
        require("matplotlib", "plot", feature="FinderResult.plot")
        show_raw = V.flag("show_raw", show_raw)
        frame = self._frame()
        if frame is not None:  # what the frame spans must be drawable; beyond it, left out
            check_drawable(frame[:2], what="the losses (the plot's frame)")
        own = ax is None  # a figure of its own: laid out here
        fig, ax = new_axes(ax, path, figsize=(9.5, 4.5), title=title)
        if len(self.lrs):
            if show_raw:
                ax.plot(self.lrs, off_frame(self.losses), color="0.75", lw=1, label="loss (raw)")
            ax.plot(
                self.lrs,
                off_frame(self.smoothed),
                color="C0",
                lw=1.5,
                label=f"loss (EMA, beta={self.beta})",
            )
            cx, cy = self.curve
            which = "held batches" if len(self.held_losses) else "lag-free"
            ax.plot(
                cx,
                off_frame(smooth_curve(cx, cy)),
                color="C3",
                lw=2,
                alpha=0.8,
                label=f"loss ({which}, {DEFAULT_RULE})",
            )
        colors = {"steepest": "C1", "valley": "C2", "minimum": "C4", "slide": "C5", "steep": "C7"}
        lines = dict(self.suggestions())
        if self.rule not in lines:  # a rule of the user's: its suggestion, drawn solid
            lines[self.rule] = self.suggestion
            colors[self.rule] = "C6"
        at: dict[float, list[str]] = {}  # rules that suggest the same LR: one line, named so
        for name, lr in lines.items():
            if lr is not None:
                at.setdefault(lr, []).append(name)
        for lr, names in at.items():
            first = self.rule if self.rule in names else names[0]
            style = "-" if first == self.rule else "--"
            ax.axvline(
                lr,
                color=colors.get(first, "C3"),
                ls=style,
                lw=1.5,
                label=f"{', '.join(names)}: {lr:.2e}",
            )
        if self.max_lr is not None:
            ax.axvline(self.max_lr, color="C3", ls=":", lw=1.5, label=f"max_lr: {self.max_lr:.2e}")
        ax.set_xscale("log")
        if len(self.lrs):
            label_log_axis(ax.xaxis, float(np.min(self.lrs)), float(np.max(self.lrs)))
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        if frame is not None:
            bottom, top, span = frame
            ax.set_ylim(bottom, top)
            x = self.stop_lr if self.stop_lr is not None else float(self.lrs[-1])
            y = min(float(self.smoothed[-1]), top - 0.03 * span)  # keep the marker in view
            ax.plot([x], [y], "kx", ms=9, mew=2, label=f"stop: {self.stop_reason}")
        if not len(self.losses):  # nothing to draw: say why instead of an empty frame
            where = f" at LR {self.stop_lr:.3g}" if self.stop_lr is not None else ""
            ax.text(
                0.5,
                0.5,
                f"no step completed: stopped ({self.stop_reason}){where}",
                transform=ax.transAxes,
                ha="center",
                va="center",
            )
            if self.stop_lr is not None and self.stop_lr > 0:
                ax.set_xlim(self.stop_lr / 10, self.stop_lr * 10)
        handles, labels = ax.get_legend_handles_labels()
        if self.probes is not None and len(self.losses):
            # their validation losses on an axis of their own (another scale than training's)
            kept = [(lr, v) for lr, v in zip(self.probes.lrs, off_frame(self.probes.losses))
                    if np.isfinite(v)]  # fmt: skip
            px, py = [lr for lr, _ in kept], [v for _, v in kept]
            current = ax.figure.gca()  # pyplot's current axes stay the caller's
            twin = ax.twinx()
            ax.figure.sca(current)
            # the curves' axes (and their legend) drawn over the probes' markers
            ax.set_zorder(twin.get_zorder() + 1)
            ax.patch.set_visible(False)
            twin.plot(px, py, "D", color="C8", ms=5, label=f"probes ({self.probes.steps} steps)")
            if not self.probes.diverged:
                twin.axvline(
                    self.probes.best_lr,
                    color="C8",
                    ls="-.",
                    lw=1.2,
                    label=f"best probe: {self.probes.best_lr:.2e}",
                )
            twin.set_ylabel("probe loss (probe_data)")
            h2, l2 = twin.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        import textwrap

        ax.set_title(textwrap.fill(title or "LR range test", 70), fontsize=10)
        if handles and own:  # beside the axes, in a figure of its own
            ax.legend(
                handles,
                labels,
                fontsize=8,
                loc="upper left",
                bbox_to_anchor=(1.13 if self.probes is not None else 1.02, 1.0),
                borderaxespad=0,
            )
        elif handles:  # inside the caller's axes, clear of a neighbouring panel
            ax.legend(handles, labels, fontsize=8, loc="best")
        if own:  # the legend beside the axes, in the figure
            fig.tight_layout()
        if path is not None and self.writes_files:
            # on the caller's figure, as laid out, widened to whatever is drawn outside it
            save_figure(fig, path, whole=not own)
        return ax

    def _frame(self) -> tuple[float, float, float] | None:
        """``(bottom, top, span)`` of the plot's loss axis: from the lowest raw loss to a bit
        above the plateau (a divergence leaves the frame); ``None`` without a loss."""
        if not len(self.losses):
            return None
        lo = float(min(np.min(self.losses), np.min(self.smoothed)))
        half = max(1, len(self.smoothed) // 2)
        hi = float(max(np.max(self.smoothed[:half]), self.smoothed[0]))
        # a flat or very short curve (hi == lo) gets a frame of 5% of its level: readable
        # ticks, not matplotlib's 1e-13 offsets
        span = max(hi - lo, 0.05 * max(abs(hi), abs(lo)), 1e-12)
        return lo - 0.05 * span, hi + 0.3 * span, span

    def __repr__(self) -> str:
        """One line: the suggestions, why the sweep stopped and its steps (the curves are in
        the attributes)."""
        from .._display import finder_text

        return finder_text(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Rich display in notebooks (summary table and plot)."""
        from .._display import finder_bundle

        return finder_bundle(self)
