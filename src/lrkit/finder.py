"""The learning-rate range test (LR finder), framework-free.

The engine sweeps the learning rate from ``start_lr`` to ``end_lr`` over ``num_iter`` steps
(exponentially by default), calling a user ``step(lr) -> loss`` once per step. It smooths the
losses with a bias-corrected exponential moving average, stops early when the smoothed loss
exceeds ``diverge_th`` times the best smoothed loss so far or when a loss is NaN/inf, and
returns a :class:`FinderResult` with the raw and smoothed curves, the reason the sweep stopped
and suggested learning rates.

Suggestion rules (``result.suggest(method)``), with ``s`` the smoothed curve and ``lrs`` the
learning rates, in sweep order:

``"steepest"``
    ``lrs[i*]`` with ``i* = argmin_i ds/d(ln lr)`` (``numpy.gradient`` of ``s`` against
    ``ln lrs``), searched over the points up to the minimum of ``s`` (inclusive).
``"valley"``
    fastai's rule: the longest strictly decreasing subsequence of ``s`` (after dropping the
    first ``n // 10`` and last 5 points when ``n >= 20``) spans indices ``[a, b]``; with
    ``t = (b - a) / 3`` the suggestion is ``lrs[a + int(t) + int(t / 2)]``.
``"minimum"``
    ``lrs[argmin s] / 10`` (fastai's ``minimum``).
``"slide"``
    fastai's rule: walking left from the end, the first ``lrs[l]`` where
    ``|g[r] - g[l]| <= 0.005`` with ``l = r - 15`` and ``g = numpy.gradient(s)``.
``"lrkit"`` (default)
    A rule designed for robustness. The raw losses are smoothed without lag (running median
    over ``2k+1`` points, ``k = max(1, n // 33)``, then a centred triangular moving average of
    half-width ``h = max(1, n // 20)``), giving ``r``. Let ``m = argmin r`` and ``lr_min =
    lrs[m]``. Then

    * ``suggestion = lr_min / 10`` (the constant learning rate),
    * ``max_lr = lr_min / 3`` (the peak of a one-cycle run),
    * ``base_lr = max_lr / 10`` (the floor of a cyclical schedule).

    The descent is measured from a robust start level ``r0 = median(losses[:max(3, n // 10)])``
    (not ``r[0]``, which one noisy first batch can move): ``drop = r0 - r[m]``. When the drop is
    below 1.5 noise units (no descent at all, so ``m`` is a spurious minimum of the noise) and
    the sweep diverged, the onset of the rise is the only information: ``lr_rise = lrs[j]``
    where ``j`` is the first step from which ``r`` stays more than 3 noise units above its
    running minimum, and ``suggestion = lr_rise / 8``, ``max_lr = lr_rise / 3``. (The onset
    does not depend on ``diverge_th`` or on how fast the loss explodes, as ``stop_lr`` does.)
    ``lr_half``, the first LR where ``r <= r0 - drop / 2``, is reported for information only.

    The divisors were chosen on the union of two task sets (``benchmarks/finder_quality.py``
    and ``benchmarks/finder_holdout.py``, see the README for the per-set hit rates); the
    no-descent branch was then checked on a third (``benchmarks/finder_validation.py``).

    When the curve never turned up (``m`` is the last point and the sweep was not stopped by
    divergence), the minimum is only a lower bound of the edge of stability and a warning asks
    for a larger ``end_lr``. When it rises from the start, ``start_lr`` was too large. When the
    total descent is smaller than 3 times the noise (median absolute deviation of the raw losses
    around ``r``) or than 1% of the initial loss, the curve carries no usable signal: a warning
    (:class:`LRFinderWarning`) says what to change, and ``result.reliable`` is ``False``.

Typical use (any framework)::

    from lrkit.finder import range_test

    def step(lr: float) -> float:
        set_learning_rate(lr)
        return train_one_batch()  # returns the loss as a float

    result = range_test(step, start_lr=1e-7, end_lr=10.0, num_iter=100)
    result.suggestion, result.max_lr, result.base_lr
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _validate as V

__all__ = [
    "METHODS",
    "FinderResult",
    "LRFinderWarning",
    "Sweep",
    "range_test",
    "smooth_ema",
    "suggest",
]

FloatArray = npt.NDArray[np.float64]

METHODS: tuple[str, ...] = ("lrkit", "steepest", "valley", "minimum", "slide")
MODES: tuple[str, ...] = ("exp", "linear")
STOP_REASONS: tuple[str, ...] = ("completed", "diverged", "nan", "interrupted")
MIN_ITER = 10

# Constants of the default rule (chosen on finder_quality.py + finder_holdout.py; see README).
SUGGESTION_DIV = 10.0
MAX_LR_DIV = 3.0
BASE_LR_DIV = 10.0
HALF_FRACTION = 0.5
START_FRACTION = 10  # r0 = median of the first max(3, n // START_FRACTION) raw losses
NOSIGNAL_SUGGESTION_DIV = 8.0  # suggestion = lr_rise / 8 when the curve has no descent
NOSIGNAL_MAX_LR_DIV = 3.0  # max_lr = lr_rise / 3 then
RISE_FACTOR = 3.0  # the rise starts where r leaves its running minimum by 3 noise units for good
NOISE_FACTOR = 3.0
NOSIGNAL_FACTOR = 1.5
MIN_REL_DROP = 0.01


class LRFinderWarning(UserWarning):
    """The range-test curve gives no reliable suggestion; the message says what to change."""


# ----------------------------------------------------------------------------- smoothing


def smooth_ema(losses: npt.ArrayLike, beta: float = 0.9) -> FloatArray:
    """Bias-corrected exponential moving average: ``a_i = beta a_{i-1} + (1 - beta) x_i``,
    ``a_{-1} = 0``, returned as ``a_i / (1 - beta**(i + 1))``."""
    beta = V.in_range("beta", beta, 0.0, 1.0, high_open=True)
    x = np.asarray(losses, dtype=np.float64)
    out = np.empty_like(x)
    avg = 0.0
    for i, v in enumerate(x):
        avg = beta * avg + (1.0 - beta) * float(v)
        out[i] = avg / (1.0 - beta ** (i + 1))
    return out


def _running_median(y: FloatArray, k: int) -> FloatArray:
    n = len(y)
    if k <= 0 or n < 3:
        return y.copy()
    out = np.empty_like(y)
    for i in range(n):
        lo, hi = max(0, i - k), min(n, i + k + 1)
        out[i] = np.median(y[lo:hi])
    return out


def _centred_mean(y: FloatArray, h: int) -> FloatArray:
    """Triangular-weighted centred moving average, windows shrinking symmetrically at edges."""
    n = len(y)
    if h <= 0 or n < 3:
        return y.copy()
    out = np.empty_like(y)
    for i in range(n):
        w = min(h, i, n - 1 - i)
        if w == 0:
            out[i] = y[i]
            continue
        idx = np.arange(i - w, i + w + 1)
        wt = (w + 1.0) - np.abs(idx - i)
        out[i] = float(np.dot(wt, y[idx]) / wt.sum())
    return out


def robust_smooth(losses: npt.ArrayLike) -> FloatArray:
    """The zero-lag smoothing used by the ``"lrkit"`` rule (median, then triangular mean)."""
    y = np.asarray(losses, dtype=np.float64)
    n = len(y)
    return _centred_mean(_running_median(y, max(1, n // 33)), max(1, n // 20))


# ----------------------------------------------------------------------------- rules


def _steepest_index(lrs: FloatArray, s: FloatArray, upto: int, start: int = 0) -> int:
    if len(s) < 2:
        return 0
    g = np.gradient(s, np.log(lrs)) if len(s) >= 2 else np.zeros_like(s)
    start = min(start, upto)
    return start + int(np.argmin(g[start : upto + 1]))


def _steepest(lrs: FloatArray, s: FloatArray) -> float:
    m = int(np.argmin(s))
    return float(lrs[_steepest_index(lrs, s, m)])


def _trim_fastai(n: int) -> tuple[int, int]:
    if n >= 20:
        return n // 10, n - 5
    return 0, n


def _valley(lrs: FloatArray, s: FloatArray) -> float:
    lo, hi = _trim_fastai(len(s))
    x, y = lrs[lo:hi], s[lo:hi]
    n = len(y)
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if y[i] < y[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return float(x[idx])


def _minimum(lrs: FloatArray, s: FloatArray) -> float:
    return float(lrs[int(np.argmin(s))]) / 10.0


def _slide(lrs: FloatArray, s: FloatArray, lr_diff: int = 15, thresh: float = 0.005) -> float:
    n = len(s)
    if n < 2:
        return float(lrs[0])
    g = np.gradient(s)
    r_idx = -1
    l_idx = r_idx - lr_diff
    if -l_idx > n:
        return float(lrs[0])
    local = float(lrs[l_idx])
    while l_idx >= -n and abs(g[r_idx] - g[l_idx]) > thresh:
        local = float(lrs[l_idx])
        r_idx -= 1
        l_idx -= 1
    return local


def _rise_index(r: FloatArray, noise: float) -> int:
    """First index from which ``r`` stays more than ``RISE_FACTOR`` noise units above its
    running minimum: where the loss starts to climb for good."""
    above = r > np.minimum.accumulate(r) + RISE_FACTOR * noise
    below = np.nonzero(~above)[0]  # never empty: r[0] equals its running minimum
    return min(int(below[-1]) + 1, len(r) - 1)


@dataclass(frozen=True)
class _LrkitRule:
    suggestion: float
    max_lr: float
    base_lr: float
    lr_min: float
    lr_half: float
    messages: tuple[str, ...]


def _lrkit_rule(
    lrs: FloatArray,
    losses: FloatArray,
    stop_reason: str,
    num_iter: int,
    stop_lr: float | None = None,
) -> _LrkitRule:
    n = len(losses)
    msgs: list[str] = []
    if n < 5:
        lr0 = float(lrs[0])
        msgs.append(
            f"the sweep stopped after {n} step(s) ({stop_reason}): the loss diverged almost "
            "at once; lower start_lr (e.g. by 100x) and rerun"
        )
        sug = lr0 / SUGGESTION_DIV
        return _LrkitRule(
            sug, lr0 / MAX_LR_DIV, lr0 / MAX_LR_DIV / BASE_LR_DIV, lr0, lr0, tuple(msgs)
        )
    r = robust_smooth(losses)
    m = int(np.argmin(r))
    lr_min = float(lrs[m])
    r0 = float(np.median(losses[: max(3, n // START_FRACTION)]))
    drop = float(r0 - r[m])
    noise = float(np.median(np.abs(losses - r))) * 1.4826
    if m >= n - 1 and stop_reason == "completed":
        msgs.append(
            "the loss never turned up: the edge of stability lies beyond end_lr, so the "
            "suggestion is a lower bound; rerun with a larger end_lr (e.g. 10x)"
        )
    if m <= max(1, n // 10) and stop_reason in ("diverged", "nan"):
        msgs.append(
            "the loss rose from the first steps: start_lr is already too large; lower "
            "start_lr (e.g. by 100x)"
        )
    scale = max(abs(r0), abs(float(r[m])), 1e-12)
    if drop < NOISE_FACTOR * noise or drop < MIN_REL_DROP * scale:
        msgs.append(
            f"the loss did not clearly descend (drop {drop:.3g} vs noise {noise:.3g}): the "
            "curve is flat or too noisy; use more iterations (num_iter), a wider range "
            "(start_lr/end_lr) or a larger batch"
        )
    # the LR where the smoothed loss has made half of its descent: training clearly works here
    reached = np.nonzero(r[: m + 1] <= r0 - HALF_FRACTION * drop)[0]
    lr_half = float(lrs[int(reached[0])]) if len(reached) else lr_min
    no_signal = drop < NOSIGNAL_FACTOR * noise or drop < MIN_REL_DROP * scale
    if no_signal and stop_reason in ("diverged", "nan"):
        # no descent to read: the onset of the rise is the only information; back off from it
        lr_rise = float(lrs[_rise_index(r, noise)])
        sug = lr_rise / NOSIGNAL_SUGGESTION_DIV
        max_lr = lr_rise / NOSIGNAL_MAX_LR_DIV
    else:
        sug = lr_min / SUGGESTION_DIV
        max_lr = lr_min / MAX_LR_DIV
    return _LrkitRule(sug, max_lr, max_lr / BASE_LR_DIV, lr_min, lr_half, tuple(msgs))


def suggest(
    lrs: npt.ArrayLike,
    losses: npt.ArrayLike,
    method: str = "lrkit",
    *,
    beta: float = 0.9,
    stop_reason: str = "completed",
    stop_lr: float | None = None,
) -> float:
    """Apply one suggestion rule to a curve (``losses`` raw, sweep order). The fastai-style rules
    use the bias-corrected EMA of ``losses`` with ``beta``; ``"lrkit"`` its own smoothing."""
    method = V.choice("method", method, METHODS)
    x = np.asarray(lrs, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(
            f"lrs and losses must be 1-D arrays of the same non-zero length, got shapes "
            f"{x.shape} and {y.shape}"
        )
    if method == "lrkit":
        return _lrkit_rule(x, y, stop_reason, len(x), stop_lr).suggestion
    s = smooth_ema(y, beta)
    rules: dict[str, Callable[[FloatArray, FloatArray], float]] = {
        "steepest": _steepest,
        "valley": _valley,
        "minimum": _minimum,
        "slide": _slide,
    }
    return rules[method](x, s)


# ----------------------------------------------------------------------------- result


@dataclass(frozen=True)
class FinderResult:
    """The outcome of a range test.

    ``lrs``/``losses``/``smoothed`` hold one entry per completed step (a NaN/inf loss is not
    recorded; ``stop_lr`` is the learning rate of the step that stopped the sweep).
    ``suggestion`` is the LR for a constant-rate run (or the peak of warmup-cosine);
    ``max_lr``/``base_lr`` the range for one-cycle and cyclical schedules.
    """

    lrs: FloatArray
    losses: FloatArray
    smoothed: FloatArray
    stop_reason: str
    stop_lr: float | None
    start_lr: float
    end_lr: float
    num_iter: int
    mode: str
    beta: float
    diverge_th: float
    method: str = "lrkit"
    warnings: tuple[str, ...] = ()
    _rule: _LrkitRule | None = field(default=None, repr=False, compare=False)
    #: False on the non-zero ranks of a distributed job: ``plot(path=...)`` then writes nothing
    writes_files: bool = field(default=True, repr=False, compare=False)

    @property
    def steps(self) -> int:
        """Number of steps run (including the one that stopped the sweep on NaN/inf)."""
        return len(self.losses) + (1 if self.stop_reason == "nan" else 0)

    @property
    def reliable(self) -> bool:
        return not self.warnings

    @property
    def suggestion(self) -> float | None:
        """The learning rate to train with at a constant rate (by ``self.method``)."""
        return self.suggest(self.method)

    @property
    def max_lr(self) -> float | None:
        return None if self._rule is None else self._rule.max_lr

    @property
    def base_lr(self) -> float | None:
        return None if self._rule is None else self._rule.base_lr

    @property
    def min_loss_lr(self) -> float | None:
        """The LR at the minimum of the (lag-free) smoothed curve."""
        return None if self._rule is None else self._rule.lr_min

    def suggest(self, method: str | None = None) -> float | None:
        """The suggestion of one rule (see the module docstring), ``None`` if no step ran."""
        method = V.choice("method", self.method if method is None else method, METHODS)
        if len(self.losses) == 0:
            return None
        if method == "lrkit":
            assert self._rule is not None
            return self._rule.suggestion
        return suggest(self.lrs, self.losses, method, beta=self.beta, stop_reason=self.stop_reason)

    def suggestions(self) -> dict[str, float | None]:
        """Every rule's suggestion, by name."""
        return {m: self.suggest(m) for m in METHODS}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (curves as lists)."""
        return {
            "lrs": [float(v) for v in self.lrs],
            "losses": [float(v) for v in self.losses],
            "smoothed": [float(v) for v in self.smoothed],
            "stop_reason": self.stop_reason,
            "stop_lr": self.stop_lr,
            "start_lr": self.start_lr,
            "end_lr": self.end_lr,
            "num_iter": self.num_iter,
            "mode": self.mode,
            "beta": self.beta,
            "diverge_th": self.diverge_th,
            "method": self.method,
            "suggestion": self.suggestion,
            "max_lr": self.max_lr,
            "base_lr": self.base_lr,
            "suggestions": self.suggestions(),
            "warnings": list(self.warnings),
            "steps": self.steps,
        }

    def plot(self, ax: Any = None, *, path: str | None = None, show_raw: bool = True) -> Any:
        """Plot loss against log learning rate: the raw losses, the EMA curve, the lag-free
        curve the default rule reads, each rule's suggestion, ``max_lr`` and the stop point.

        Returns the matplotlib ``Axes``; writes the figure to ``path`` when given. With
        ``path`` and no ``ax`` the figure is drawn without pyplot, so the caller's matplotlib
        backend and open figures are left untouched."""
        if ax is None:
            if path is not None:
                from matplotlib.figure import Figure

                fig = Figure(figsize=(7, 4.5))
                ax = fig.add_subplot()
            else:
                import matplotlib.pyplot as plt

                fig, ax = plt.subplots(figsize=(7, 4.5))
        else:
            fig = ax.figure
        if len(self.lrs):
            if show_raw:
                ax.plot(self.lrs, self.losses, color="0.75", lw=1, label="loss (raw)")
            ax.plot(
                self.lrs, self.smoothed, color="C0", lw=1.5, label=f"loss (EMA, beta={self.beta})"
            )
            ax.plot(
                self.lrs,
                robust_smooth(self.losses),
                color="C3",
                lw=2,
                alpha=0.8,
                label="loss (lag-free, lrkit rule)",
            )
        colors = {"lrkit": "C3", "steepest": "C1", "valley": "C2", "minimum": "C4", "slide": "C5"}
        for name, lr in self.suggestions().items():
            if lr is None:
                continue
            style = "-" if name == self.method else "--"
            ax.axvline(lr, color=colors[name], ls=style, lw=1.5, label=f"{name}: {lr:.2e}")
        if self.max_lr is not None:
            ax.axvline(self.max_lr, color="C3", ls=":", lw=1.5, label=f"max_lr: {self.max_lr:.2e}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        if len(self.losses):
            # from the lowest raw loss to a bit above the plateau: divergence leaves the frame
            lo = float(min(np.min(self.losses), np.min(self.smoothed)))
            half = max(1, len(self.smoothed) // 2)
            hi = float(max(np.max(self.smoothed[:half]), self.smoothed[0]))
            span = max(hi - lo, 1e-12)
            top = hi + 0.3 * span
            ax.set_ylim(lo - 0.05 * span, top)
            x = self.stop_lr if self.stop_lr is not None else float(self.lrs[-1])
            y = min(float(self.smoothed[-1]), top - 0.03 * span)  # keep the marker in view
            ax.plot([x], [y], "kx", ms=9, mew=2, label=f"stop: {self.stop_reason}")
        ax.set_title("LR range test")
        ax.legend(fontsize=8)
        if path is not None and self.writes_files:
            fig.tight_layout()
            fig.savefig(path, dpi=110)
        return ax

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Rich display in notebooks (summary table and plot)."""
        from ._display import finder_bundle

        return finder_bundle(self)


# ----------------------------------------------------------------------------- engine


class Sweep:
    """An incremental range test, for drivers that own the loop::

    sweep = Sweep(start_lr=1e-7, end_lr=10.0, num_iter=100)
    for lr in sweep:
        sweep.record(train_step(lr))   # record() returns False when the sweep stops
    result = sweep.result()
    """

    def __init__(
        self,
        *,
        start_lr: float = 1e-7,
        end_lr: float = 10.0,
        num_iter: int = 100,
        mode: str = "exp",
        beta: float = 0.9,
        diverge_th: float = 5.0,
        method: str = "lrkit",
    ) -> None:
        self.start_lr = V.positive("start_lr", start_lr)
        self.end_lr = V.positive("end_lr", end_lr)
        if self.end_lr <= self.start_lr:
            raise ValueError(
                f"end_lr must be > start_lr (allowed range: ({self.start_lr}, inf)), "
                f"got end_lr={end_lr!r}"
            )
        self.num_iter = V.integer("num_iter", num_iter, MIN_ITER)
        self.mode = V.choice("mode", mode, MODES)
        self.beta = V.in_range("beta", beta, 0.0, 1.0, high_open=True)
        self.diverge_th = V.in_range("diverge_th", diverge_th, 1.0, math.inf, low_open=True)
        self.method = V.choice("method", method, METHODS)
        self._lrs: list[float] = []
        self._losses: list[float] = []
        self._smoothed: list[float] = []
        self._avg = 0.0
        self._best = math.inf
        self._stop: str | None = None
        self._stop_lr: float | None = None

    def lr_at(self, i: int) -> float:
        """Learning rate of step ``i`` (0-based); step ``num_iter - 1`` is exactly ``end_lr``."""
        t = i / (self.num_iter - 1)
        if self.mode == "exp":
            return float(self.start_lr * (self.end_lr / self.start_lr) ** t)
        return float(self.start_lr + (self.end_lr - self.start_lr) * t)

    @property
    def done(self) -> bool:
        return self._stop is not None

    @property
    def stop_reason(self) -> str | None:
        return self._stop

    def __iter__(self) -> Iterator[float]:
        while not self.done:
            yield self.lr_at(len(self._losses))

    def record(self, loss: float) -> bool:
        """Record the loss of the current step; return ``True`` while the sweep continues."""
        if self.done:
            raise RuntimeError("the sweep has stopped; call result()")
        lr = self.lr_at(len(self._losses))
        loss = float(loss)
        if not math.isfinite(loss):
            self._stop, self._stop_lr = "nan", lr
            return False
        i = len(self._losses)
        self._avg = self.beta * self._avg + (1.0 - self.beta) * loss
        sm = self._avg / (1.0 - self.beta ** (i + 1))
        self._lrs.append(lr)
        self._losses.append(loss)
        self._smoothed.append(sm)
        if i > 0 and sm > self.diverge_th * self._best and self._best > 0:
            self._stop, self._stop_lr = "diverged", lr
            return False
        self._best = min(self._best, sm)
        if len(self._losses) >= self.num_iter:
            self._stop, self._stop_lr = "completed", lr
            return False
        return True

    def run(
        self,
        step: Callable[[float], float],
        callback: Callable[[int, float, float], None] | None = None,
    ) -> None:
        """Drive the sweep: ``step(lr) -> loss`` for each LR until it stops, then
        ``callback(i, lr, loss)`` after each step. If ``step`` raises (``KeyboardInterrupt``
        included) the sweep is marked interrupted and the exception propagates, so the caller's
        ``finally`` can restore its state."""
        try:
            for i, lr in enumerate(self):
                loss = float(step(lr))
                self.record(loss)
                if callback is not None:
                    callback(i, lr, loss)
        except BaseException:
            self.interrupt()
            raise

    def interrupt(self) -> None:
        """Stop the sweep early (e.g. on KeyboardInterrupt); the result keeps what was run."""
        if not self.done:
            self._stop = "interrupted"
            self._stop_lr = self._lrs[-1] if self._lrs else None

    def result(self, *, warn: bool = True) -> FinderResult:
        """Build the :class:`FinderResult`; emits :class:`LRFinderWarning` when unreliable."""
        reason = self._stop or "interrupted"
        lrs = np.asarray(self._lrs, dtype=np.float64)
        losses = np.asarray(self._losses, dtype=np.float64)
        rule = None
        msgs: tuple[str, ...] = ()
        if len(losses):
            rule = _lrkit_rule(lrs, losses, reason, self.num_iter, self._stop_lr)
            msgs = rule.messages
        else:
            msgs = (
                "no step completed (the first loss was NaN/inf or the sweep was interrupted): "
                "lower start_lr and check the training step",
            )
        res = FinderResult(
            lrs=lrs,
            losses=losses,
            smoothed=np.asarray(self._smoothed, dtype=np.float64),
            stop_reason=reason,
            stop_lr=self._stop_lr,
            start_lr=self.start_lr,
            end_lr=self.end_lr,
            num_iter=self.num_iter,
            mode=self.mode,
            beta=self.beta,
            diverge_th=self.diverge_th,
            method=self.method,
            warnings=msgs,
            _rule=rule,
        )
        if warn:
            for msg in msgs:
                warnings.warn(f"LR range test: {msg}", LRFinderWarning, stacklevel=3)
        return res


def range_test(
    step: Callable[[float], float],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    mode: str = "exp",
    beta: float = 0.9,
    diverge_th: float = 5.0,
    method: str = "lrkit",
    callback: Callable[[int, float, float], None] | None = None,
    warn: bool = True,
) -> FinderResult:
    """Run a range test driven by ``step(lr) -> loss``.

    ``mode``: ``"exp"`` (log-spaced) or ``"linear"``; ``beta``: EMA factor of the smoothed
    curve; ``diverge_th``: stop when the smoothed loss exceeds this multiple of the best one;
    ``callback(i, lr, loss)`` is called after each step. A ``KeyboardInterrupt`` inside ``step``
    stops the sweep and propagates after the caller's cleanup (the partial curve is lost)."""
    if not callable(step):
        raise ValueError(f"step must be a callable step(lr) -> loss, got {step!r}")
    sweep = Sweep(
        start_lr=start_lr,
        end_lr=end_lr,
        num_iter=num_iter,
        mode=mode,
        beta=beta,
        diverge_th=diverge_th,
        method=method,
    )
    sweep.run(step, callback)
    return sweep.result(warn=warn)


def cycle_batches(data: Iterable[Any], name: str = "data") -> Iterator[Any]:
    """Yield batches of ``data`` forever: a re-iterable (list, DataLoader) is iterated again
    when exhausted; a one-shot iterator (a generator) is replayed from the batches it yielded.
    Raises ``ValueError`` naming ``name`` when it yields no batch at all."""
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise ValueError(
            f"{name} must be an iterable of batches (a list, a generator, a loader), "
            f"got {type(data).__name__}"
        )
    if isinstance(data, Iterator):  # one-shot (a generator): remember what it gave
        seen: list[Any] = []
        for b in data:
            seen.append(b)
            yield b
        if not seen:
            raise ValueError(f"{name} must yield at least one batch, got an empty iterable")
        while True:
            yield from seen
    while True:
        n = 0
        for b in data:
            n += 1
            yield b
        if n == 0:
            raise ValueError(f"{name} must yield at least one batch, got an empty iterable")
