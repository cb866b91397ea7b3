"""Suggestion rules: a curve of losses against learning rates -> a learning rate.

A rule is any callable ``rule(lrs, losses) -> float`` (``lrs`` increasing, ``losses`` the raw
curve in sweep order), as fastai's ``suggest_funcs``; ``RULES`` holds the built-in ones by name
and :func:`suggest` applies a name or a callable. The built-in rules also accept keyword
context (``beta``, ``stop_reason``, ``total_steps``, ``optimizer_family``), which a finder
passes them; a user rule receives the two arrays only.

``"budget_edge"`` (default)
    ``lr_min`` is where the sweep stops making progress, the edge of stability of a short
    run, measured twice: at the minimum of the training-loss curve (lag-free smoothing,
    :func:`robust_smooth`) and at the minimum of the loss on the fixed held batches (smoothed
    over +-0.3 decades, the vertex of a parabola through the lowest point and its
    neighbours); on a curve that did not clearly descend, at the onset of its rise instead
    (:func:`edge`). ``lr_min`` is their geometric mean (the training curve alone when no held
    loss was measured, or fewer than ``SHAPE_POINTS`` held points). The two measurements err
    independently (batch noise, coarse held cadence), so their mean moves less from seed to
    seed. The LR to train with sits below
    that edge by a factor that depends on how long the run is (the longer, the more a
    too-large step costs) and on the optimizer (plain SGD, momentum, adaptive):
    ``ln(lr / lr_min) = a[schedule, optimizer] + b[schedule] * ln(total_steps / 1000)``
    for ``schedule`` in constant, one-cycle (``max_lr``) and warmup-cosine (peak), and
    never above ``EDGE_CAP * lr_min`` (a short one-cycle run tolerates a high peak, but not
    one at the edge where the sweep itself stopped making progress; after probe runs,
    :mod:`lrkit.finder.probes`, which trained at rates around the edge, the cap is
    ``_coefficients.PROBED_EDGE_CAP`` times the probes' edge, chosen on the zoo by grouped
    cross-validation);
    ``total_steps`` defaults to 1000 and the optimizer to ``"adaptive"``. ``total_steps`` is
    clamped into the range of budgets the coefficients were fitted on
    (``_coefficients.STEPS_RANGE``): the rule does not extrapolate. The coefficients
    are fitted on the task zoo (``benchmarks/zoo/fit_rule.py``, grouped cross-validation;
    ``docs/finder.md``) and live in :mod:`lrkit.finder._coefficients`.
``"steepest"``
    torch-lr-finder's rule: the losses smoothed as its ``range_test`` smooths them
    (:func:`smooth_seeded`, ``smooth_f=0.05``), without their first 10 and last 5 points,
    and ``lrs[argmin numpy.gradient(s)]`` on what is left, as its ``plot(suggest_lr=True)``
    does (see :func:`steepest`).
fastai's rules (``"valley"``, ``"minimum"``, ``"slide"``, ``"steep"``) read the losses smoothed as
fastai's ``Recorder`` smooths them (:func:`smooth_ema`, ``beta=0.98``), trimmed as
``lr_find`` trims them: without the first ``num_iter // 10`` points (``num_iter``: the
sweep's planned steps) and the last 5 (whole when fewer than 3 points would be left).
``"valley"``
    fastai's rule: the longest strictly decreasing subsequence of the trimmed ``s`` ends at
    ``b`` and has ``k`` points; with ``a = b - k`` (fastai's) and ``t = (b - a) / 3`` the
    suggestion is ``lrs[a + int(t) + int(t / 2)]`` (the first point where that index is
    -1: a descent of at most 2 points from the first point).
``"minimum"``
    ``lrs[argmin s] / 10`` over the trimmed ``s`` (fastai's ``minimum``).
``"slide"``
    fastai's rule: walking left from the end of the trimmed ``s``, the first ``lrs[l]`` where
    ``|g[r] - g[l]| <= 0.005`` with ``l = r - 15`` and ``g = numpy.gradient(s)``.
``"steep"``
    fastai's rule: ``lrs[i]`` for the ``i`` where ``(s[i + 1] - s[i]) / (ln lrs[i + 1] -
    ln lrs[i])`` is lowest, over the trimmed ``s`` (not torch-lr-finder's ``"steepest"``,
    which smooths and trims otherwise and reads a central gradient per point).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _renamed
from .. import _validate as V
from . import _coefficients as C
from .probes import Probes
from .smoothing import FloatArray, noise_level, robust_smooth, smooth_ema, smooth_seeded

__all__ = [
    "CurveShape",
    "DEFAULT_OPTIMIZER",
    "DEFAULT_RULE",
    "DEFAULT_TOTAL_STEPS",
    "OPTIMIZERS",
    "RULES",
    "Rule",
    "Suggestions",
    "budget_edge",
    "budget_message",
    "edge",
    "minimum",
    "optimizer_family",
    "saturated",
    "slide",
    "steep",
    "steepest",
    "suggest",
    "suggestions",
    "valley",
]

Rule = Callable[..., float]
DEFAULT_RULE = "budget_edge"
#: optimizer families the default rule distinguishes
OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "adaptive")
DEFAULT_TOTAL_STEPS = 1000

#: the budgets (optimizer steps) the default rule was fitted on, ``(fewest, most)``: a budget
#: outside them is read as the nearest (below the fewest, with a warning)
FITTED_STEPS: tuple[int, int] = C.STEPS_RANGE
DEFAULT_OPTIMIZER = "adaptive"
DESCENT_NOISE = 3.0  # a clear descent: deeper than this many noise units ...
MOVED_FRACTION = 0.002  # ... and than this fraction of the loss: less has not moved (a loss
# is taken to be >= 0 with its floor near 0, as cross-entropy or squared error)
FLOOR_NOISE = 3.0  # a flat curve's floor: within this many noise units of its minimum ...
FLOOR_FRACTION = 0.02  # ... plus this fraction of the minimum's loss
HELD_WEIGHT = 0.5  # lr_min = train_edge**(1 - w) * held_edge**w: the geometric mean
#: a held curve of fewer points is too sparse for its shape (descent, rise, floor) or its edge
#: to be read against its noise (one descended point smoothed with a diverged one reads as a
#: flat curve): the training curve's shape and edge are read instead (:func:`shape_curve`)
SHAPE_POINTS = 8
SMOOTH_DECADES = 0.3  # half-width of the default rule's smoothing, in decades of LR
EDGE_CAP = 0.5  # no suggestion above half the edge: a rate trained at must be stable
SATURATED_DECADES = 1.5  # a floor wider than this many decades of LR: saturated ...
SATURATED_DESCENT = 0.05  # ... a floor: within this fraction of the descent of the minimum
RISE_NOISE = 3.0  # "turned up": the curve ends this many noise units above its minimum ...
RISE_FRACTION = 0.05  # ... and this fraction of its descent (or of the loss) above it


def _check(
    lrs: npt.ArrayLike, losses: npt.ArrayLike, names: tuple[str, str] = ("lrs", "losses")
) -> tuple[FloatArray, FloatArray]:
    """The curve as float64 arrays, else a one-line ValueError naming ``names``."""
    xn, yn = names
    x = np.asarray(lrs, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(
            f"{xn} and {yn} must be 1-D arrays of the same non-zero length, got shapes "
            f"{x.shape} and {y.shape}"
        )
    bad = np.flatnonzero(~(np.isfinite(x) & (x > 0)))
    if bad.size:  # a sweep records none of these
        i = int(bad[0])
        raise ValueError(f"{xn} must be finite and > 0, got {V.fmt(float(x[i]))} at index {i}")
    bad = np.flatnonzero(np.diff(x) <= 0)
    if bad.size:  # a sweep's LRs grow from step to step; the rules read them in that order
        i = int(bad[0]) + 1
        raise ValueError(
            f"{xn} must be increasing (the LRs of a sweep, in order), got {V.fmt(float(x[i]))} "
            f"at index {i} after {V.fmt(float(x[i - 1]))}"
        )
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:  # a sweep stops at a non-finite loss, without recording it
        i = int(bad[0])
        raise ValueError(f"{yn} must be finite, got {V.fmt(float(y[i]))} at index {i}")
    return x, y


# ----------------------------------------------------------------------------- fastai-style


def _steepest_on(lrs: FloatArray, s: FloatArray) -> float:
    if len(s) < 2:
        return float(lrs[0])
    m = int(np.argmin(s))
    g = np.gradient(s)  # per point, as on a trimmed curve (and torch-lr-finder's)
    return float(lrs[int(np.argmin(g[: m + 1]))])


def _steep_on(lrs: FloatArray, s: FloatArray) -> float:
    if len(s) < 2:
        return float(lrs[0])
    g = np.diff(s) / np.diff(np.log(lrs))
    return float(lrs[int(np.argmin(g))])


def _fastai_trim(lrs: FloatArray, s: FloatArray, num_iter: Any = None) -> tuple[Any, Any]:
    """The part of a curve fastai's rules read: without the first ``num_iter // 10`` points
    (``num_iter``: the sweep's planned steps; default: the points recorded) and the last 5;
    a curve too short for that (under 3 points left) is read whole."""
    n = len(s)
    planned = num_iter if isinstance(num_iter, int) and not isinstance(num_iter, bool) else n
    lo, hi = planned // 10, n - 5
    if hi - lo < 3:
        return lrs, s
    return lrs[lo:hi], s[lo:hi]


def _fastai_curve(
    lrs: npt.ArrayLike, losses: npt.ArrayLike, beta: float, num_iter: Any
) -> tuple[Any, Any]:
    """What fastai's rules read of a sweep: the losses checked, smoothed as its ``Recorder``
    smooths them (:func:`smooth_ema`) and trimmed as ``lr_find`` trims them
    (:func:`_fastai_trim`)."""
    x, y = _check(lrs, losses)
    return _fastai_trim(x, smooth_ema(y, beta=beta), num_iter)


def _valley_on(x: FloatArray, y: FloatArray) -> float:
    n = len(y)
    if n < 2:
        return float(x[0])
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
    # fastai's start is one point before the descent's first: a descent of at most 2 points
    # from the first point reads index -1, the last point; the first point instead
    return float(x[max(0, max_start + int(sections) + int(sections / 2))])


def _slide_on(lrs: FloatArray, s: FloatArray, lr_diff: int = 15, thresh: float = 0.005) -> float:
    n = len(s)
    if n < 2 or lr_diff + 1 > n:
        return float(lrs[0])
    g = np.gradient(s)
    r_idx, l_idx = -1, -1 - lr_diff
    local = float(lrs[l_idx])
    while l_idx >= -n and abs(g[r_idx] - g[l_idx]) > thresh:
        local = float(lrs[l_idx])
        r_idx -= 1
        l_idx -= 1
    return local


STEEPEST_SKIP = (10, 5)  # points torch-lr-finder's steepest rule skips at the start / end
#: torch-lr-finder's ``range_test(smooth_f=...)`` default, the smoothing its rule reads
TLF_SMOOTH_F = 0.05
#: fastai's ``Recorder`` smooths the loss with this bias-corrected EMA factor
FASTAI_BETA = 0.98


def steepest(
    lrs: npt.ArrayLike, losses: npt.ArrayLike, *, smooth_f: float = TLF_SMOOTH_F, **_: Any
) -> float:
    """torch-lr-finder's suggestion: the losses smoothed as its ``range_test`` does
    (:func:`smooth_seeded`), without their first 10 and last 5 points, and the LR where
    ``numpy.gradient`` of what is left is lowest, as its ``plot(suggest_lr=True)`` reads it.
    A curve too short for that trim (under 17 points, where torch-lr-finder gives no
    suggestion) is read whole, up to its minimum."""
    x, y = _check(lrs, losses)
    s = smooth_seeded(y, smooth_f=smooth_f)
    first, last = STEEPEST_SKIP
    if len(s) - first - last >= 2:
        xs, ss = x[first : len(s) - last], s[first : len(s) - last]
        return float(xs[int(np.argmin(np.gradient(ss)))])
    return _steepest_on(x, s)


def valley(
    lrs: npt.ArrayLike,
    losses: npt.ArrayLike,
    *,
    beta: float = FASTAI_BETA,
    num_iter: Any = None,
    **_: Any,
) -> float:
    """fastai's ``valley`` on the losses smoothed as fastai's ``Recorder`` does
    (:func:`smooth_ema`, ``beta=0.98``), trimmed as fastai trims them (the first
    ``num_iter // 10`` points and the last 5; ``num_iter``: the sweep's planned steps)."""
    return _valley_on(*_fastai_curve(lrs, losses, beta, num_iter))


def minimum(
    lrs: npt.ArrayLike,
    losses: npt.ArrayLike,
    *,
    beta: float = FASTAI_BETA,
    num_iter: Any = None,
    **_: Any,
) -> float:
    """fastai's ``minimum``: the LR of the minimum of the smoothed losses (smoothed and trimmed
    as fastai does, see :func:`valley`), divided by 10."""
    tx, ty = _fastai_curve(lrs, losses, beta, num_iter)
    return float(tx[int(np.argmin(ty))]) / 10.0


def slide(
    lrs: npt.ArrayLike,
    losses: npt.ArrayLike,
    *,
    beta: float = FASTAI_BETA,
    num_iter: Any = None,
    **_: Any,
) -> float:
    """fastai's ``slide`` on the losses smoothed and trimmed as fastai does (see
    :func:`valley`)."""
    return _slide_on(*_fastai_curve(lrs, losses, beta, num_iter))


def steep(
    lrs: npt.ArrayLike,
    losses: npt.ArrayLike,
    *,
    beta: float = FASTAI_BETA,
    num_iter: Any = None,
    **_: Any,
) -> float:
    """fastai's ``steep`` on the losses smoothed and trimmed as fastai does (see
    :func:`valley`): the LR where the loss falls fastest per unit of ``ln(lr)``, the left end
    of the steepest step between two points."""
    return _steep_on(*_fastai_curve(lrs, losses, beta, num_iter))


# ----------------------------------------------------------------------------- default rule


@_renamed.former_field("optimizer", "optimizer_family")
@dataclass(frozen=True)
class Suggestions:
    """What the default rule reads off a curve.

    ``constant``: the LR for a constant-rate run; ``max_lr``: the peak of one-cycle;
    ``peak_lr``: the peak of warmup-cosine (a linear warmup over the first ``total_steps // 20``
    steps, then a cosine to 0); ``lr_min``: the edge the three are scaled from
    (the geometric mean of the training and held curves' edges, see :func:`edge`);
    ``turned_up``: whether the curve rose again after its minimum (if not, ``lr_min`` is
    only a lower bound of the edge, unless ``saturated``: the curve sat on a floor, see
    :func:`saturated`; a sweep stopped by divergence has turned up, one stopped by a NaN/inf
    loss only when the curve had clearly risen before it); ``descended``: whether
    it fell clearly before it (:attr:`CurveShape.dropped`: by more than its noise and a
    fraction of its loss; where the minimum lies is not considered, unlike
    :attr:`CurveShape.descended`: a minimum at the start is reported as a loss that rose from
    the first steps); ``total_steps``/``optimizer_family``: the budget and optimizer family
    (``"sgd"``, ``"momentum"`` or ``"adaptive"``) the LRs are for; ``noise``: the robust
    standard deviation of the curve's losses around its smoothing (:func:`noise_level`);
    ``warnings``: why these suggestions are unreliable (a finder's result fills them in:
    ``result.warnings`` for its own, those of ``result.for_total_steps(n)`` for another
    budget; empty from :func:`suggestions` itself) and ``reliable``: ``True`` when there are
    none."""

    constant: float
    max_lr: float
    peak_lr: float
    lr_min: float
    turned_up: bool
    saturated: bool
    descended: bool
    total_steps: int
    optimizer_family: str
    noise: float
    warnings: tuple[str, ...] = ()

    @property
    def reliable(self) -> bool:
        """Whether the suggestions can be trusted: ``True`` when there are no ``warnings``."""
        return not self.warnings

    @property
    def optimizer(self) -> str:
        """Deprecated alias of ``optimizer_family``."""
        _renamed.attribute("Suggestions", "optimizer", "optimizer_family")
        return self.optimizer_family


def optimizer_family(name: str, *, momentum: float = 0.0) -> str:
    """The family the default rule distinguishes, from an optimizer's class or factory name
    (case-insensitive) and its momentum: ``"sgd"``/``"momentum"`` for SGD (Nesterov
    included) without/with momentum, ``"adaptive"`` for every other optimizer."""
    if name.lower() in ("sgd", "nesterov", "sgdw"):
        return "momentum" if momentum else "sgd"
    return "adaptive"


def budget_message(total_steps: int) -> str | None:
    """The warning for suggestions asked for ``total_steps`` optimizer steps, below the budgets
    the default rule was fitted on (``_coefficients.STEPS_RANGE``), whose suggestions are then
    those for the lowest of them; ``None`` for a budget within or above them."""
    lo, hi = C.STEPS_RANGE
    if total_steps >= lo:
        return None
    return (
        f"total_steps={total_steps} is below the budgets the rule was fitted on "
        f"({lo}-{hi} steps): the suggestions are those for {lo} steps"
    )


def _points_per_decade(lrs: FloatArray) -> float:
    if len(lrs) < 2:
        return 1.0
    span = math.log10(float(lrs[-1]) / float(lrs[0]))
    return (len(lrs) - 1) / span if span > 0 else float(len(lrs))


def _vertex(lrs: FloatArray, r: FloatArray, m: int) -> float:
    """The LR of the minimum of ``r`` between grid points: the vertex of the parabola through
    ``r[m-1], r[m], r[m+1]`` in ln(lr), kept within half a step of ``lrs[m]``."""
    if m == 0 or m >= len(r) - 1:
        return float(lrs[m])
    x0, x1, x2 = np.log(lrs[m - 1 : m + 2])
    y0, y1, y2 = r[m - 1 : m + 2]
    den = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
    b = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / den
    if not a > 0:
        return float(lrs[m])
    v = float(np.clip(-b / (2 * a), (x0 + x1) / 2, (x1 + x2) / 2))
    return math.exp(v)


def smooth_curve(lrs: FloatArray, losses: FloatArray) -> FloatArray:
    """The default rule's smoothing: :func:`robust_smooth` over +-``SMOOTH_DECADES`` of LR."""
    width = int(round(SMOOTH_DECADES * _points_per_decade(lrs)))
    return robust_smooth(losses, width=max(1, width))


@dataclass(frozen=True)
class CurveShape:
    """A smoothed curve ``r`` read the way the default rule reads it: its minimum at index
    ``m``, the ``noise`` of the raw losses around it and the ``drop`` before the minimum."""

    r: FloatArray
    m: int
    noise: float
    drop: float

    @classmethod
    def of(cls, losses: FloatArray, r: FloatArray) -> CurveShape:
        """The shape of the raw ``losses`` smoothed into ``r``."""
        m = int(np.argmin(r))
        return cls(r, m, noise_level(losses, r), float(np.max(r[: m + 1]) - r[m]))

    @property
    def dropped(self) -> bool:
        """Whether the curve fell clearly before its minimum: by more than ``DESCENT_NOISE``
        noise units and more than ``MOVED_FRACTION`` of the minimum's loss (a noiseless curve,
        such as the loss of fixed held batches, that drifts by less has not moved). The
        fraction reads a loss whose floor is near 0; a loss with a large constant term (or a
        negative one) needs a proportionally larger drop."""
        low = abs(float(self.r[self.m]))
        return self.drop > max(DESCENT_NOISE * self.noise, MOVED_FRACTION * low)

    @property
    def descended(self) -> bool:
        """A clear descent (:attr:`dropped`), the minimum not in the first 10% of the curve."""
        return self.dropped and self.m > len(self.r) // 10

    def above_minimum(self, value: float) -> bool:
        """Whether a smoothed ``value`` is clearly above the minimum (see ``RISE_*``)."""
        low = float(self.r[self.m])
        margin = max(RISE_NOISE * self.noise, RISE_FRACTION * max(self.drop, abs(low)))
        return value > low + margin

    @property
    def turned_up(self) -> bool:
        """Whether the curve rose clearly above its minimum after it."""
        return self.above_minimum(float(np.max(self.r[self.m :])))

    def saturated(self, lrs: FloatArray) -> bool:
        """See :func:`saturated`."""
        return self.descended and _saturated_from(lrs, self.r, self.m, self.drop) is not None


def turned_up(lrs: FloatArray, losses: FloatArray) -> bool:
    """Whether the smoothed curve rose clearly above its minimum after it (see ``RISE_*``)."""
    return len(losses) >= 5 and CurveShape.of(losses, smooth_curve(lrs, losses)).turned_up


def _saturated_from(lrs: FloatArray, r: FloatArray, m: int, drop: float) -> int | None:
    """Where the floor of a saturated smoothed curve ``r`` (minimum at ``m``, descent
    ``drop``) begins, or ``None``: the run of points around ``m`` within
    ``SATURATED_DESCENT * drop`` of ``r[m]`` spans more than ``SATURATED_DECADES``."""
    tol = SATURATED_DESCENT * drop
    lo, hi = m, m
    while lo > 0 and r[lo - 1] <= r[m] + tol:
        lo -= 1
    while hi + 1 < len(r) and r[hi + 1] <= r[m] + tol:
        hi += 1
    return lo if math.log10(float(lrs[hi]) / float(lrs[lo])) > SATURATED_DECADES else None


def saturated(lrs: FloatArray, losses: FloatArray) -> bool:
    """Whether the smoothed curve descended clearly and then stayed on a floor over more than
    ``SATURATED_DECADES`` decades of LR (see :func:`edge`): it will not turn up before the
    loss diverges, and its edge is already known."""
    return len(losses) >= 5 and CurveShape.of(losses, smooth_curve(lrs, losses)).saturated(lrs)


def edge(lrs: FloatArray, losses: FloatArray, *, held: bool) -> float:
    """Where a curve stops making progress. The curve is smoothed (held-batch curve:
    :func:`smooth_curve`; training curve: :func:`robust_smooth` with its default widths).
    When it descended clearly before its minimum (by more than ``DESCENT_NOISE`` noise units
    and ``MOVED_FRACTION`` of its loss, the minimum not in the first 10% of the sweep), the
    edge is that minimum (refined between points by a parabola on the held curve), unless
    the curve saturated: it stays within ``SATURATED_DESCENT`` of its descent from the
    minimum over more than
    ``SATURATED_DECADES`` decades of LR (a loss at its bound, e.g. a task learnt perfectly
    during the sweep), where the minimum's position is noise and the edge is where that
    floor begins. Otherwise the minimum of a flat curve is noise,
    and the edge is the onset of the rise: the last point from the minimum on that stays
    within ``FLOOR_NOISE`` noise units plus ``FLOOR_FRACTION`` of the loss of the minimum."""
    s = CurveShape.of(losses, smooth_curve(lrs, losses) if held else robust_smooth(losses))
    r, m = s.r, s.m
    if s.descended:
        lo = _saturated_from(lrs, r, m, s.drop)
        if lo is not None:  # progress stopped where the floor begins
            return float(lrs[lo])
        return _vertex(lrs, r, m) if held else float(lrs[m])
    limit = float(r[m]) + FLOOR_NOISE * s.noise + FLOOR_FRACTION * abs(float(r[m]))
    j = m
    while j + 1 < len(r) and r[j + 1] <= limit:
        j += 1
    return float(lrs[j])


def _held_readable(held_losses: npt.ArrayLike) -> bool:
    """Whether a held curve has the ``SHAPE_POINTS`` points its edge and shape are read from."""
    return len(np.asarray(held_losses)) >= SHAPE_POINTS


def shape_curve(
    lrs: npt.ArrayLike, losses: npt.ArrayLike, held_lrs: npt.ArrayLike, held_losses: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """The curve whose shape (descent, rise, floor) a result reports: the held-batch curve,
    unless it has fewer than ``SHAPE_POINTS`` points (measured sparsely: e.g. ``eval_every``
    of 16 or more on a 100-step sweep), too few to tell a descent from its noise; then the
    training curve."""
    if _held_readable(held_losses):
        return np.asarray(held_lrs, dtype=np.float64), np.asarray(held_losses, dtype=np.float64)
    return np.asarray(lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64)


def suggestions(
    lrs: npt.ArrayLike,
    losses: npt.ArrayLike,
    *,
    held_lrs: npt.ArrayLike | None = None,
    held_losses: npt.ArrayLike | None = None,
    total_steps: int | None = None,
    optimizer_family: str | None = None,
    stop_reason: str = "completed",
    optimizer: str | None = _renamed.UNSET,
    probes: Probes | None = None,
) -> Suggestions:
    """The default rule on a sweep: constant, one-cycle and warmup-cosine LRs (see the module
    docstring) for ``total_steps`` optimizer steps with an optimizer of family
    ``optimizer_family`` (``"sgd"``, ``"momentum"`` or ``"adaptive"``; default
    ``"adaptive"``). ``lrs``/``losses`` are the training curve, ``held_lrs``/``held_losses``
    the held-batch curve when it was measured. With ``probes`` (the probe runs around this
    sweep's edge, :mod:`lrkit.finder.probes`) the LRs are scaled from the probes' edge
    ``probes.edge`` with the coefficients fitted for it; ``lr_min`` stays the sweep's edge.
    ``optimizer`` is the deprecated former name of ``optimizer_family``."""
    # (the argument shadows the function optimizer_family here, which this body does not call)
    family = _renamed.keyword(
        "lrkit.finder.suggestions()", "optimizer", "optimizer_family", optimizer, optimizer_family
    )
    stop_reason = V.choice("stop_reason", stop_reason, STOP_REASONS)
    x, y = _check(lrs, losses)
    if (held_lrs is None) != (held_losses is None):
        given, missing = (
            ("held_lrs", "held_losses") if held_losses is None else ("held_losses", "held_lrs")
        )
        raise ValueError(f"{given} needs {missing} (the held curve is both), got {missing}=None")
    steps = DEFAULT_TOTAL_STEPS if total_steps is None else V.integer("total_steps", total_steps, 1)
    opt = V.choice("optimizer_family", DEFAULT_OPTIMIZER if family is None else family, OPTIMIZERS)
    lr_min = edge(x, y, held=False)
    cx, cy = x, y
    if held_losses is not None and len(np.asarray(held_losses)) >= 3:
        assert held_lrs is not None  # checked above: both or neither
        hx, hy = _check(held_lrs, held_losses, ("held_lrs", "held_losses"))
        if _held_readable(hy):  # its edge and shape are read (as shape_curve reads it)
            cx, cy, w = hx, hy, HELD_WEIGHT
            lr_min = math.exp((1 - w) * math.log(lr_min) + w * math.log(edge(cx, cy, held=True)))
    shape = CurveShape.of(cy, smooth_curve(cx, cy))
    few = len(cy) < 5  # too few points to tell a rise or a floor
    # a NaN/inf loss is no rise of the curve: it counts only when the curve had risen before
    up = stop_reason in ("turned_up", "diverged") or (not few and shape.turned_up)
    lo, hi = C.STEPS_RANGE
    t = math.log(min(max(steps, lo), hi) / DEFAULT_TOTAL_STEPS)
    if probes is not None:
        if not math.isclose(probes.lr_min, lr_min, rel_tol=1e-9):
            raise ValueError(
                f"probes were run around lr_min={probes.lr_min!r}, not this sweep's edge "
                f"({lr_min!r})"
            )
        base, intercept, slope = probes.edge, C.PROBED_INTERCEPT, C.PROBED_BUDGET_SLOPE
        caps = C.PROBED_EDGE_CAP
    else:
        base, intercept, slope = lr_min, C.INTERCEPT, C.BUDGET_SLOPE
        caps = dict.fromkeys(C.SCHEDULES, EDGE_CAP)
    out = {}
    for sched in C.SCHEDULES:
        a = intercept[sched][opt]
        b = slope[sched]
        out[sched] = base * min(math.exp(a + b * t), caps[sched])
    return Suggestions(
        constant=out["constant"],
        max_lr=out["onecycle"],
        peak_lr=out["warmup_cosine"],
        lr_min=lr_min,
        turned_up=up,
        saturated=not few and shape.saturated(cx),
        descended=shape.dropped,
        total_steps=steps,
        optimizer_family=opt,
        noise=shape.noise,
    )


def budget_edge(
    lrs: npt.ArrayLike,
    losses: npt.ArrayLike,
    *,
    total_steps: int | None = None,
    optimizer_family: str | None = None,
    stop_reason: str = "completed",
    optimizer: str | None = _renamed.UNSET,
    **_: Any,
) -> float:
    """The default rule's constant LR (see :func:`suggestions`; ``optimizer`` is the
    deprecated former name of ``optimizer_family``)."""
    family = _renamed.keyword(
        "lrkit.finder.rules.budget_edge()",
        "optimizer",
        "optimizer_family",
        optimizer,
        optimizer_family,
    )
    return suggestions(
        lrs, losses, total_steps=total_steps, optimizer_family=family, stop_reason=stop_reason
    ).constant


RULES: dict[str, Rule] = {
    "budget_edge": budget_edge,
    "steepest": steepest,
    "valley": valley,
    "minimum": minimum,
    "slide": slide,
    "steep": steep,
}


def rule_lr(name: str, value: Any) -> float:
    """What a user's rule returned, as a learning rate: a finite number > 0, else a
    ``ValueError`` naming the rule."""
    try:
        lr = float(value)
    except (TypeError, ValueError):
        lr = math.nan
    if not (math.isfinite(lr) and lr > 0) or isinstance(value, (bool, np.bool_, str, bytes)):
        raise ValueError(f"rule {name!r} must return a learning rate > 0, got {V.fmt(value)}")
    return lr


def resolve(rule: str | Rule, name: str = "rule") -> tuple[str, Rule]:
    """``(name, callable)`` of a rule given by name (one of ``RULES``) or as a callable."""
    if isinstance(rule, str):
        key = V.choice(name, rule, tuple(RULES))
        return key, RULES[key]
    if callable(rule):
        V.takes(name, rule, "rule(lrs, losses) -> lr", 2)  # now, not after the sweep
        own = str(getattr(rule, "__name__", "custom"))
        if own in RULES and RULES[own] is not rule:  # a function of the user's named valley:
            own = f"{own} (custom)"  # not the built-in of that name, in to_dict and plots
        return own, rule
    raise ValueError(f"{name} must be one of {', '.join(map(repr, RULES))} or a callable "
                     f"rule(lrs, losses) -> lr, got {V.fmt(rule)}")  # fmt: skip


#: why a sweep stopped (``FinderResult.stop_reason``)
STOP_REASONS: tuple[str, ...] = ("completed", "turned_up", "diverged", "nan", "interrupted")
#: the keyword context :func:`suggest` passes on to the built-in rules
SUGGEST_CONTEXT = ("beta", "num_iter", "optimizer_family", "smooth_f", "stop_reason", "total_steps")


@_renamed.keyword_only(2)
def suggest(
    lrs: npt.ArrayLike,
    losses: npt.ArrayLike,
    *,
    rule: str | Rule = DEFAULT_RULE,
    **context: Any,
) -> float:
    """Apply a rule (a name in ``RULES`` or a callable ``rule(lrs, losses) -> lr``) to a curve
    (``losses`` raw, in sweep order). ``context`` (``beta``, ``total_steps``,
    ``optimizer_family``, ``stop_reason``; ``num_iter`` and ``smooth_f`` for the peers' rules)
    goes to the built-in rules only (``optimizer``, the deprecated former name of
    ``optimizer_family``, is still read); any other keyword is a ``TypeError``."""
    V.options("suggest()", context, (*SUGGEST_CONTEXT, "optimizer", "rule"))
    if "optimizer" in context:
        context["optimizer_family"] = _renamed.keyword(
            "lrkit.finder.suggest()",
            "optimizer",
            "optimizer_family",
            context.pop("optimizer"),
            context.get("optimizer_family"),
        )
    if "beta" in context:
        context["beta"] = V.in_range("beta", context["beta"], 0.0, 1.0, high_open=True)
    if "smooth_f" in context:
        context["smooth_f"] = V.in_range("smooth_f", context["smooth_f"], 0.0, 1.0, low_open=True)
    if context.get("num_iter") is not None:
        context["num_iter"] = V.integer("num_iter", context["num_iter"], 1)
    if "stop_reason" in context:
        context["stop_reason"] = V.choice("stop_reason", context["stop_reason"], STOP_REASONS)
    name, fn = resolve(rule)
    x, y = _check(lrs, losses)
    if fn in RULES.values():
        return float(fn(x, y, **context))
    return rule_lr(name, fn(x, y))
