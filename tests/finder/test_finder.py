"""Tests of the framework-free range-test engine (lrkit.finder)."""

from __future__ import annotations

import importlib.util
import json
import math
import warnings

import numpy as np
import pytest

from lrkit.finder import (
    METHODS,
    LRFinderWarning,
    Sweep,
    SweepOptions,
    range_test,
    smooth_ema,
    smooth_seeded,
    suggest,
    suggestions,
)
from lrkit.finder import rules as R
from lrkit.finder.smoothing import noise_level, robust_smooth


def replay(losses, **kw):
    """A step function returning a fixed sequence of losses."""
    it = iter(losses)
    kw.setdefault("max_extra_iter", 0)
    return range_test(lambda lr: next(it), **kw)


def quadratic(h, noise=0.0, seed=0):
    """Gradient descent on 0.5 * sum(h w^2): stable iff lr < 2 / max(h)."""
    rng = np.random.default_rng(seed)
    h = np.asarray(h, dtype=float)
    w = np.ones_like(h)

    def step(lr):
        nonlocal w
        g = h * w + noise * rng.normal(size=w.shape)
        w = w - lr * g
        return float(0.5 * np.sum(h * w * w))

    return step


# ----------------------------------------------------------------------------- sweep mechanics


def test_exponential_and_linear_lrs_exact():
    seen = []
    r = range_test(
        lambda lr: seen.append(lr) or 1.0,
        start_lr=1e-4,
        end_lr=1.0,
        num_iter=11,
        max_extra_iter=0,
        warn=False,
    )
    expected = [1e-4 * (1e4) ** (i / 10) for i in range(11)]
    np.testing.assert_allclose(seen, expected, rtol=1e-12)
    np.testing.assert_allclose(r.lrs, expected, rtol=1e-12)
    assert r.lrs[-1] == pytest.approx(1.0, rel=1e-12)
    assert r.stop_reason == "completed" and r.steps == 11
    seen.clear()
    range_test(
        lambda lr: seen.append(lr) or 1.0,
        start_lr=0.1,
        end_lr=1.1,
        num_iter=11,
        mode="linear",
        max_extra_iter=0,
        warn=False,
    )
    np.testing.assert_allclose(seen, [0.1 + 0.1 * i for i in range(11)], rtol=1e-12)


def test_smoothing_is_bias_corrected_ema():
    x = [4.0, 2.0, 3.0, 1.0]
    beta = 0.5
    a, out = 0.0, []
    for i, v in enumerate(x):
        a = beta * a + (1 - beta) * v
        out.append(a / (1 - beta ** (i + 1)))
    np.testing.assert_allclose(smooth_ema(x, beta=beta), out, rtol=1e-15)
    assert smooth_ema(x, beta=beta)[0] == 4.0  # bias correction: first value is the first loss
    r = replay(x + [1.0] * 20, beta=beta, num_iter=24, warn=False)
    np.testing.assert_allclose(r.smoothed[:4], out, rtol=1e-15)


def test_stops_on_divergence_of_smoothed_loss():
    losses = [10.0, 8.0, 5.0, 2.0, 1.0, 1.0, 3.0, 20.0, 100.0, 1000.0] + [1.0] * 10
    r = replay(losses, beta=0.0, diverge_th=4.0, num_iter=20, start_lr=1e-3, end_lr=1.0)
    # beta=0: smoothed == raw; best is 1.0; 20.0 > 4 * 1.0 at index 7
    assert r.stop_reason == "diverged"
    assert len(r.losses) == 8 and r.losses[-1] == 20.0
    assert r.stop_lr == pytest.approx(r.lrs[7])


def test_stops_on_nan_and_inf_without_recording_them():
    for bad in (math.nan, math.inf):
        losses = [5.0, 4.0, 3.0, 2.0, 1.5, 1.2, bad] + [1.0] * 20
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LRFinderWarning)
            r = replay(losses, num_iter=20, start_lr=1e-3, end_lr=1.0)
        assert r.stop_reason == "nan"
        assert len(r.losses) == 6 and np.all(np.isfinite(r.losses))
        assert r.steps == 7
        s = Sweep(start_lr=1e-3, end_lr=1.0, num_iter=20)
        assert r.stop_lr == pytest.approx(s.lr_at(6))


def test_sweep_incremental_api_matches_range_test():
    losses = list(np.linspace(3, 1, 30)) + list(np.linspace(1, 50, 30))
    a = replay(losses, num_iter=60, warn=False)
    sweep = Sweep(num_iter=60, max_extra_iter=0)
    it = iter(losses)
    for _lr in sweep:
        sweep.record(next(it))
    b = sweep.result(warn=False)
    np.testing.assert_array_equal(a.lrs, b.lrs)
    np.testing.assert_array_equal(a.smoothed, b.smoothed)
    assert a.suggestions() == b.suggestions() and a.stop_reason == b.stop_reason
    with pytest.raises(RuntimeError):
        sweep.record(1.0)


def test_callback_sees_every_step():
    calls = []
    range_test(
        lambda lr: 1.0,
        num_iter=12,
        max_extra_iter=0,
        callback=lambda i, lr, loss: calls.append(i),
        warn=False,
    )
    assert calls == list(range(12))


def test_progress_bar_counts_the_steps_and_closes_also_on_an_error(capsys, monkeypatch):
    import tqdm.auto

    made = []

    class Recording(tqdm.auto.tqdm):  # type: ignore[misc]
        def close(self):
            if not self.disable:  # the first close (tqdm closes again when collected)
                made.append((self.total, self.n))
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    range_test(lambda lr: 1.0, num_iter=12, max_extra_iter=0, progress=True, warn=False)
    assert made == [(12, 12)]
    assert "lrkit find" in capsys.readouterr().err

    def boom(lr):
        raise KeyboardInterrupt

    sweep = Sweep(num_iter=12)
    with pytest.raises(KeyboardInterrupt):
        sweep.run(boom, progress=True)
    assert sweep.stop_reason == "interrupted" and made[-1] == (12, 0)  # closed
    assert "lrkit find" in capsys.readouterr().err
    range_test(lambda lr: 1.0, num_iter=12, max_extra_iter=0, warn=False)  # default: no bar
    assert capsys.readouterr().err == ""


def test_ctrl_c_in_the_sweep_carries_the_result_of_the_steps_run() -> None:
    def curve(lr: float) -> float:
        return (math.log10(lr) + 2.0) ** 2 + 1.0

    full = range_test(curve, warn=False)

    def step(lr: float) -> float:
        if len(seen) == 30:
            raise KeyboardInterrupt
        seen.append(lr)
        return curve(lr)

    seen: list[float] = []
    with pytest.raises(KeyboardInterrupt) as info:
        range_test(step, warn=False)
    kept = info.value.result  # type: ignore[attr-defined]
    assert kept.stop_reason == "interrupted" and not kept.reliable
    assert kept.steps == 30 and np.array_equal(kept.lrs, full.lrs[:30])
    assert np.array_equal(kept.losses, full.losses[:30])
    assert any("interrupted" in w for w in kept.warnings)
    # interrupted before any step: nothing to carry
    seen = [0.0] * 30
    with pytest.raises(KeyboardInterrupt) as info:
        range_test(step, warn=False)
    assert not hasattr(info.value, "result")
    # a Ctrl-C between two appends of a step's record: the KeyboardInterrupt as it came
    sweep = Sweep(num_iter=20)

    def torn(lr: float) -> float:
        if len(sweep._lrs) == 5:
            sweep._lrs.append(lr)
            raise KeyboardInterrupt
        return 1.0

    with pytest.raises(KeyboardInterrupt) as info:
        sweep.run(torn)
    assert not hasattr(info.value, "result")
    # another exception is the caller's: it carries nothing
    with pytest.raises(RuntimeError) as err:
        range_test(lambda lr: (_ for _ in ()).throw(RuntimeError("x")), warn=False)
    assert not hasattr(err.value, "result")


# ----------------------------------------------------------------------------- rules, exact
# ----------------------------------------------------------------------------- rules, exact


# The peers' rules read the losses smoothed as those tools smooth them; beta=0 (fastai's) and
# smooth_f=1 (torch-lr-finder's) make the smoothed curve the raw one, for exact hand checks.
# exp mode makes ln(lr) equally spaced.
HAND = [5.0, 5.0, 4.9, 4.0, 2.0, 1.5, 1.4, 1.3, 2.0, 6.0]


def hand_result():
    return replay(HAND, num_iter=10, start_lr=1e-3, end_lr=1.0, diverge_th=10.0, warn=False)


def test_minimum_rule_exact():
    r = hand_result()
    # fastai trims the curve to [num_iter // 10 : -5] before every rule: indices 1..4 here,
    # whose minimum is at index 4 (the whole curve's, at index 7, is not read)
    got = R.minimum(r.lrs, r.losses, beta=0.0, num_iter=10)
    assert got == pytest.approx(r.lrs[4] / 10, rel=1e-12)


def test_steepest_rule_exact():
    r = hand_result()
    # a curve too short for torch-lr-finder's trim (10 first, 5 last): read whole up to its
    # minimum (index 7); np.gradient there: index 3 has (2.0 - 4.9) / 2 = -1.45, steeper
    # than index 4: (1.5 - 4.0) / 2 = -1.25
    g = np.gradient(np.array(HAND))
    assert int(np.argmin(g[:8])) == 3
    assert R.steepest(r.lrs, r.losses, smooth_f=1.0) == pytest.approx(r.lrs[3], rel=1e-12)
    # a long one: its [10:-5] window, the lowest np.gradient there, past the minimum too
    long = [5.0] * 10 + [4.0, 3.9, 3.0, 2.9, 2.8, 5.0, 1.0, 1.1, 1.2] + [9.0] * 5
    lrs = np.geomspace(1e-4, 1.0, len(long))
    window = np.array(long[10:-5])
    assert int(np.argmin(np.gradient(window))) == 6  # (1.1 - 5.0) / 2, past a minimum
    assert R.steepest(lrs, long, smooth_f=1.0) == lrs[16]


def test_valley_rule_exact():
    r = hand_result()
    # trimmed to indices 1..4 (5, 4.9, 4, 2): one strictly decreasing run, lds = 4 at its
    # last point (max_end = 3), max_start = 3 - 4 = -1 (fastai's), sections = 4/3; the index
    # is -1 + 1 + 0 = 0: the window's first point, index 1
    assert R.valley(r.lrs, r.losses, beta=0.0, num_iter=10) == pytest.approx(r.lrs[1], rel=1e-12)
    # a longer curve, untrimmed by the window's edges: the run 1..7 of the raw curve
    long = [5.0] * 3 + HAND + [9.0] * 7  # 20 points: trimmed to [2:15]
    lrs = np.geomspace(1e-3, 1.0, 20)
    # window values 5,5,5,4.9,4,2,1.5,1.4,1.3,2,6,9,9 (indices 2..14): the longest decreasing
    # run ends at window index 8 (1.3) with lds 7 (5 -> 1.3): max_start = 1, sections = 7/3,
    # index 1 + 2 + 1 = 4 (the window's), index 6 of the curve
    assert R.valley(lrs, long, beta=0.0, num_iter=20) == pytest.approx(lrs[6], rel=1e-12)


def test_valley_never_reads_the_last_point_for_a_short_first_descent():
    # fastai's index is -1 when the longest descent is at most 2 points from the first
    # point: its last point (the highest LR); lrkit reads the first point instead
    from lrkit.finder.rules import _valley_on

    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert _valley_on(x, np.array([2.0, 1.0, 3.0, 5.0])) == 1.0


def test_slide_rule_exact():
    losses = list(np.linspace(4.0, 1.0, 45)) + [1.0] * 15
    lrs_all = np.geomspace(1e-4, 1.0, 60)
    # fastai's window: [60 // 10 : -5]
    lrs, g = lrs_all[6:55], np.gradient(np.array(losses[6:55]))
    # from the right, l = r - 15 slides left while |g[r] - g[l]| > 0.005 (and l in the window)
    r_idx, l_idx = -1, -16
    local = lrs[l_idx]
    while l_idx >= -len(g) and abs(g[r_idx] - g[l_idx]) > 0.005:
        local = lrs[l_idx]
        r_idx -= 1
        l_idx -= 1
    assert R.slide(lrs_all, losses, beta=0.0, num_iter=60) == pytest.approx(local, rel=1e-12)
    # the gradient is flat (0) on the right and -3/44 on the left: the slide stops once its
    # right end reaches the slope (index 43); its left end, 14 points before: index 29
    assert local == lrs_all[29]


def _noisy_curve(seed):
    """A range test's raw losses: a descent, a floor, a rise, batch noise."""
    rng = np.random.default_rng(seed)
    lrs = np.geomspace(1e-7, 10.0, 100)
    c, w, noise = rng.uniform(-5, -1), rng.uniform(0.5, 2), rng.uniform(0.005, 0.1)
    x = np.log10(lrs)
    raw = 2.0 - np.tanh((x - c) / w) + np.maximum(0.0, x - c - 1) ** 2
    return lrs, raw + noise * rng.standard_normal(100)


@pytest.mark.parametrize("seed", range(12))
def test_steepest_is_torch_lr_finders_own_suggestion(seed):
    """torch-lr-finder's range_test history (smooth_f=0.05, stop at 5x the best) and its own
    plot(suggest_lr=True): lrkit's "steepest" on the same raw losses gives the same LR."""
    tlf = pytest.importorskip("torch_lr_finder")
    pytest.importorskip("matplotlib")
    import contextlib
    import io

    import matplotlib.pyplot as plt

    lrs, raw = _noisy_curve(seed)
    history: dict[str, list[float]] = {"lr": [], "loss": []}
    best = math.inf
    for i, (lr, v) in enumerate(zip(lrs, raw)):  # LRFinder.range_test's bookkeeping
        loss = float(v) if i == 0 else 0.05 * float(v) + 0.95 * history["loss"][-1]
        best = min(best, loss)
        history["lr"].append(float(lr))
        history["loss"].append(loss)
        if loss > 5 * best:
            break
    finder = tlf.LRFinder.__new__(tlf.LRFinder)
    finder.history = history
    with contextlib.redirect_stdout(io.StringIO()):
        _, theirs = finder.plot(suggest_lr=True)
    plt.close("all")
    n = len(history["lr"])
    assert R.steepest(lrs[:n], raw[:n]) == theirs


def _fastai(lrs, raw, num_it):
    """fastai 2.7's lr_find on recorded raw losses: Recorder's SmoothenValue(0.98), the
    [num_it // 10 : -5] window, then valley, slide, minimum and steep as fastai writes them."""
    mov, smooth = 0.0, []
    for n, v in enumerate(raw, 1):
        mov = 0.98 * mov + (1 - 0.98) * v
        smooth.append(mov / (1 - 0.98**n))
    x, y = np.asarray(lrs)[num_it // 10 : -5], np.asarray(smooth)[num_it // 10 : -5]
    n = len(y)
    lds, max_start, max_end = [1] * n, 0, 0
    for i in range(1, n):
        for j in range(0, i):
            if (y[i] < y[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    valley = float(x[max_start + int(sections) + int(sections / 2)])
    g = np.gradient(y)
    r_idx, l_idx = -1, -16
    slide = float(x[l_idx])
    while l_idx >= -len(y) and abs(g[r_idx] - g[l_idx]) > 0.005:
        slide = float(x[l_idx])
        r_idx -= 1
        l_idx -= 1
    grads = (y[1:] - y[:-1]) / (np.log(x[1:]) - np.log(x[:-1]))
    steep = float(x[int(np.argmin(grads))])
    return {
        "valley": valley,
        "slide": slide,
        "minimum": float(x[int(np.argmin(y))]) / 10,
        "steep": steep,
    }


@pytest.mark.parametrize("seed", range(12))
def test_fastais_rules_are_fastais_on_a_sweep_of_any_beta(seed):
    """A sweep's result, whatever its own beta (its divergence test and plot), gives fastai's
    valley, slide, minimum and steep on its raw losses."""
    lrs, raw = _noisy_curve(seed)
    want = _fastai(lrs, raw, 100)
    for beta in (0.0, 0.9, 0.98):
        r = replay(list(raw), num_iter=100, start_lr=1e-7, end_lr=10.0, beta=beta,
                   diverge_th=1e9, stop_early=False, warn=False)  # fmt: skip
        np.testing.assert_allclose(r.lrs, lrs, rtol=1e-12)
        for rule in ("valley", "slide", "minimum", "steep"):
            assert r.suggest(rule) == pytest.approx(want[rule], rel=1e-12), (rule, beta)


def test_suggest_function_matches_result_methods():
    r = hand_result()
    for m in METHODS:
        got = suggest(r.lrs, r.losses, rule=m, stop_reason=r.stop_reason, num_iter=10)
        assert got == r.suggest(m)


# ----------------------------------------------------------------------------- known answers


@pytest.mark.parametrize(
    "h,noise", [([10.0], 0.0), ([10.0, 1.0, 0.1], 0.0), ([10.0] * 5, 0.3), ([2.0, 0.5], 0.1)]
)
def test_quadratic_suggestions_below_the_stability_limit(h, noise):
    limit = 2.0 / max(h)  # gradient descent diverges above this LR
    with warnings.catch_warnings():
        warnings.simplefilter("error", LRFinderWarning)
        r = range_test(quadratic(h, noise), start_lr=1e-5, end_lr=100.0, num_iter=100)
    assert r.stop_reason == "diverged"
    # conservative on a pure quadratic (it converges early in the sweep), never unstable
    assert limit / 300 < r.suggestion < limit
    assert limit / 300 < r.max_lr < limit
    assert r.base_lr == pytest.approx(r.max_lr / 10, rel=1e-12)


def test_noisy_analytic_curve():
    # loss(lr) = 1 + 0.5 tanh(-(ln lr - ln 1e-3)) + rise above 0.1, plus noise
    rng = np.random.default_rng(0)

    def step(lr):
        base = 1.0 - 0.5 * np.tanh(np.log(lr / 1e-3)) + 5.0 * max(0.0, np.log(lr / 0.1)) ** 2
        return float(base + 0.05 * rng.normal())

    r = range_test(step, start_lr=1e-6, end_lr=10.0, num_iter=100)
    assert 1e-3 < r.lr_min < 0.3
    assert 1e-4 < r.suggestion < r.lr_min and 1e-4 < r.max_lr < r.lr_min
    assert r.reliable


# ----------------------------------------------------------------------------- edge cases


def test_never_diverges_warns_to_widen_range():
    with pytest.warns(LRFinderWarning, match="end_lr"):
        r = range_test(
            lambda lr: 1.0 - 0.1 * math.log10(lr / 1e-5), start_lr=1e-5, end_lr=1e-2, num_iter=50
        )
    assert r.stop_reason == "completed" and r.lrs[-1] == pytest.approx(r.options.ceiling)
    assert not r.reliable
    assert r.lr_min == pytest.approx(r.lrs[-1])
    assert r.suggestion is not None and r.suggestion < r.lrs[-1]


def test_a_loss_that_reaches_its_floor_and_stays_there_is_saturated():
    # the task is learnt perfectly from 1e-3 on: the loss sits at 0 for 4 decades, never rises
    r = range_test(lambda lr: max(1.0 - lr / 1e-3, 0.0), start_lr=1e-6, end_lr=10.0, num_iter=100)
    s = r._sugg
    assert s is not None and s.saturated and not s.turned_up
    assert r.stop_reason == "completed" and r.extended == 0 and r.reliable
    # the edge is where the floor begins, not a point inside it
    assert 5e-4 <= r.lr_min <= 2e-3


def test_diverges_at_once_warns_to_lower_start_lr():
    with pytest.warns(LRFinderWarning, match="start_lr"):
        r = range_test(lambda lr: 1.0 + 1e4 * lr, start_lr=1e-3, end_lr=10.0, num_iter=100)
    assert r.stop_reason == "diverged"
    assert r.suggestion is not None and r.suggestion < r.lrs[0]


def test_immediate_nan_warns():
    with pytest.warns(LRFinderWarning, match="start_lr"):
        r = range_test(lambda lr: math.nan, num_iter=20)
    assert r.steps == 1 and r.suggestion is None and r.max_lr is None


def test_flat_noisy_curve_warns_with_advice():
    rng = np.random.default_rng(1)
    with pytest.warns(LRFinderWarning) as caught:
        r = range_test(lambda lr: float(2.0 + 0.2 * rng.normal()), num_iter=100, diverge_th=50)
    assert any("larger batch" in str(w.message) for w in caught)
    assert not r.reliable


def _flat_then(bad, held):
    """A flat, noisy training loss that turns into ``bad`` past 5e-5, with ``held(lr)`` as
    the held loss."""
    rng = np.random.default_rng(0)
    at = {"lr": 0.0}

    def step(lr):
        at["lr"] = lr
        return bad if lr > 5e-5 else float(2.35 + 0.05 * rng.normal())

    return range_test(step, evaluate=lambda: held(at["lr"]), optimizer_family="sgd", warn=False)


@pytest.mark.parametrize("bad", [math.nan, 1e6])
def test_a_held_loss_that_barely_drifts_did_not_descend(bad):
    """A noiseless held loss that drifts by 0.003% has not moved: the curve did not clearly
    descend, whatever stopped the sweep, and the result says so."""
    r = _flat_then(bad, lambda lr: 2.3915 - 1.5 * lr)
    assert r.stop_reason == ("nan" if math.isnan(bad) else "diverged")
    assert not r.reliable
    # a NaN is no rise: the curve had not turned up when it came (a divergence is one)
    *nan, flat = r.warnings
    assert "did not clearly descend" in flat
    assert [w.split(" (at")[0] for w in nan] == (["the loss became NaN/inf"] if nan else [])
    assert len(nan) == math.isnan(bad)


@pytest.mark.parametrize("bad", [math.nan, 1e6])
def test_a_constant_held_loss_did_not_rise_from_the_first_steps(bad):
    r = _flat_then(bad, lambda lr: 2.3915)
    assert not r.reliable
    *nan, flat = r.warnings
    assert "did not clearly descend" in flat and len(nan) == math.isnan(bad)


def test_a_loss_rising_from_the_start_still_says_so():
    at = {"lr": 0.0}

    def step(lr):
        at["lr"] = lr
        return 1.0 + 1e4 * lr

    r = range_test(step, evaluate=lambda: 1.0 + 1e4 * at["lr"], start_lr=1e-3, warn=False)
    assert r.stop_reason == "diverged" and not r.reliable
    assert len(r.warnings) == 1 and "rose from the first steps" in r.warnings[0]


def test_a_loss_rising_from_the_start_into_nan_still_says_so():
    at = {"lr": 0.0}

    def step(lr):
        at["lr"] = lr
        return math.nan if lr > 0.1 else 1.0 + lr

    r = range_test(step, evaluate=lambda: 1.0 + at["lr"], start_lr=1e-3, warn=False)
    assert r.stop_reason == "nan" and not r.reliable
    assert len(r.warnings) == 1 and "rose from the first steps" in r.warnings[0]


def test_a_clear_drop_exceeds_the_noise_and_a_fraction_of_the_loss():
    from lrkit.finder.rules import MOVED_FRACTION, CurveShape

    assert MOVED_FRACTION == 0.002
    r = np.array([2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    for depth, dropped in ((0.003, False), (0.005, True)):  # 0.15% and 0.25% of 2.0 - depth
        curve = r.copy()
        curve[6:] -= depth
        shape = CurveShape.of(curve, curve)  # noiseless: only the fraction counts
        assert shape.noise == 0.0 and shape.dropped is dropped and shape.descended is dropped
    noisy = CurveShape(r=r - np.linspace(0, 0.5, 12), m=11, noise=0.2, drop=0.5)
    assert not noisy.dropped  # 0.5 < 3 noise units of 0.2


def test_step_must_be_callable():
    with pytest.raises(ValueError, match="step must be a callable"):
        range_test(5)


def test_num_iter_has_an_upper_limit():
    with pytest.raises(ValueError, match=r"num_iter must be an integer in \[10, 100000\]"):
        range_test(lambda lr: 1.0, num_iter=10**20)
    with pytest.raises(ValueError, match=r"max_extra_iter must be an integer in \[0, 100000\]"):
        range_test(lambda lr: 1.0, max_extra_iter=10**6)


def test_small_sweep_still_suggests():
    losses = [3.0, 2.9, 2.5, 1.8, 1.2, 1.0, 1.1, 2.0, 5.0, 30.0]
    r = replay(losses, num_iter=10, start_lr=1e-4, end_lr=1.0, warn=False)
    assert r.lrs[0] < r.suggestion < r.lrs[-1]


# ----------------------------------------------------------------------------- result object


def test_to_dict_is_json_and_complete():
    r = hand_result()
    d = json.loads(json.dumps(r.to_dict()))
    assert d["lrs"] == [float(v) for v in r.lrs]
    assert d["suggestion"] == r.suggestion and d["max_lr"] == r.max_lr
    assert set(d["suggestions"]) == set(METHODS)
    assert d["stop_reason"] == r.stop_reason and d["steps"] == r.steps


def test_plot_marks_suggestions(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    r = hand_result()
    path = tmp_path / "curve.png"
    ax = r.plot(path=str(path))
    assert path.exists() and path.stat().st_size > 1000
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    for m in METHODS:  # rules that suggest the same LR share one line: "slide, steep: ..."
        assert any(m in lab.split(":")[0].split(", ") for lab in labels), m
    assert any("stop" in lab for lab in labels)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_plot_draws_a_custom_rules_suggestion_solid(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    def fifth_of_min(lrs, losses):
        return float(lrs[int(np.argmin(losses))]) / 5

    r = replay(HAND, beta=0.0, num_iter=10, start_lr=1e-3, end_lr=1.0, diverge_th=10.0,
               warn=False, rule=fifth_of_min)  # fmt: skip
    ax = r.plot(path=str(tmp_path / "c.png"))
    (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("fifth_of_min:")]
    assert line.get_xdata()[0] == r.suggestion and line.get_linestyle() == "-"
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-" and ":" in ln.get_label()]
    assert solid == [line]  # the built-in rules' lines stay dashed
    plt.close("all")


def test_results_compare_by_identity():
    a, b = hand_result(), hand_result()
    assert a == a and a != b and a in [a] and b not in [a]
    assert len({a, b}) == 2


def test_a_warning_of_a_sweep_run_by_hand_points_at_the_callers_line():
    sweep = Sweep(SweepOptions(num_iter=20, max_extra_iter=0))
    for _lr in sweep:
        sweep.record(1.0)  # a flat curve: the result warns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sweep.result()
    assert caught and {w.filename for w in caught} == {__file__}


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kw,param",
    [
        ({"start_lr": 1.0, "end_lr": 0.5}, "end_lr"),
        ({"start_lr": 1.0, "end_lr": 1.0}, "end_lr"),
        ({"start_lr": -1.0}, "start_lr"),
        ({"start_lr": 0.0}, "start_lr"),
        ({"num_iter": 5}, "num_iter"),
        ({"num_iter": 2.5}, "num_iter"),
        ({"method": "best"}, "rule"),
        ({"rule": "best"}, "rule"),
        ({"mode": "log"}, "mode"),
        ({"beta": 1.0}, "beta"),
        ({"diverge_th": 1.0}, "diverge_th"),
    ],
)
def test_bad_inputs_raise_naming_the_parameter(kw, param):
    with pytest.raises(ValueError, match=param):
        range_test(lambda lr: 1.0, **kw)


def test_bad_method_lists_allowed_values():
    r = hand_result()
    with pytest.raises(ValueError, match="rule must be one of 'budget_edge', 'steepest'"):
        r.suggest("fastest")
    with pytest.raises(ValueError, match="step"):
        range_test(42)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- driving helpers
def test_cycle_batches_replays_generators_and_reiterates_iterables():
    from itertools import islice

    from lrkit.finder import cycle_batches

    assert list(islice(cycle_batches(iter([1, 2, 3])), 7)) == [1, 2, 3, 1, 2, 3, 1]
    assert list(islice(cycle_batches(x for x in "ab"), 5)) == ["a", "b", "a", "b", "a"]

    class Loader:  # re-iterable, like a DataLoader: iter() is called once per pass only
        calls = 0

        def __iter__(self):
            Loader.calls += 1
            return iter([10, 20])

    assert list(islice(cycle_batches(Loader()), 5)) == [10, 20, 10, 20, 10]
    assert Loader.calls == 3
    with pytest.raises(ValueError, match="val_data must yield at least one batch"):
        next(cycle_batches([], name="val_data"))
    with pytest.raises(ValueError, match="data must yield at least one batch"):
        next(cycle_batches(iter(())))
    with pytest.raises(ValueError, match="data must be an iterable of batches"):
        next(cycle_batches(42))

    class Stream:  # a loader over a one-shot stream: every pass returns the same iterator
        def __init__(self):
            self.it = iter([1, 2, 3])

        def __iter__(self):
            return self.it

    batches = cycle_batches(Stream())
    assert list(islice(batches, 3)) == [1, 2, 3]
    with pytest.raises(
        ValueError, match=r"^data yielded 3 batches on its first pass and none on its second: "
    ):
        next(batches)


def test_sweep_run_marks_interrupted_and_reraises():
    from lrkit.finder import Sweep

    seen = []
    sweep = Sweep(start_lr=1e-3, end_lr=1.0, num_iter=10)

    def step(lr):
        if len(seen) == 4:
            raise KeyboardInterrupt
        return 1.0

    with pytest.raises(KeyboardInterrupt):
        sweep.run(step, callback=lambda i, lr, loss: seen.append((i, lr, loss)))
    assert [i for i, _, _ in seen] == [0, 1, 2, 3]
    assert [lr for _, lr, _ in seen] == [sweep.lr_at(i) for i in range(4)]
    r = sweep.result(warn=False)
    assert r.stop_reason == "interrupted" and len(r.losses) == 4


def test_plot_to_a_file_leaves_the_matplotlib_backend_alone(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        rng = np.random.default_rng(0)
        r = range_test(
            lambda lr: 1.0 + 0.01 * rng.normal() + 50 * max(0.0, np.log10(lr) + 1) ** 2,
            warn=False,
        )
        r.plot(path=tmp_path / "f.png")
        assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"callback": 3}, r"^callback must be a callable callback\(i, lr, loss\) or None, got 3$"),
        ({"evaluate": 3}, r"^evaluate must be a callable evaluate\(\) -> held loss or None"),
    ],
)
def test_a_bad_callable_is_refused_before_any_step(bad, message):
    calls = []

    def step(lr: float) -> float:
        calls.append(lr)
        return 1.0

    with pytest.raises(TypeError, match=message):
        range_test(step, **bad)
    assert calls == []


def test_a_user_rule_must_return_a_learning_rate():
    r = range_test(lambda lr: 2.0 - lr if lr < 1 else 10.0, num_iter=50, warn=False)
    for value in (None, -1.0, float("nan"), "0.1", True, np.True_):
        with pytest.raises(ValueError, match=r"^rule 'bad' must return a learning rate > 0, got "):
            r.suggest(_named("bad", value))
    assert r.suggest(_named("ok", 0.25)) == 0.25


def _named(name, value):
    def rule(lrs, losses):
        return value

    rule.__name__ = name
    return rule


def _zero_division(lrs, losses):
    return 1 / 0


@pytest.mark.parametrize(
    "rule, said",
    [
        (_named("bad", None), r"rule 'bad' must return a learning rate > 0, got None"),
        (
            _named("bad", np.array([1e-3])),
            r"rule 'bad' must return a learning rate > 0, got array\(\[0\.001\]\)",
        ),
        (_zero_division, r"rule '_zero_division' raised ZeroDivisionError: division by zero"),
    ],
)
def test_a_sweep_rule_that_gives_no_lr_keeps_the_curve(rule, said, tmp_path):
    def step(lr):
        return 2.0 - lr if lr < 1 else 10.0

    with pytest.warns(LRFinderWarning, match=said + r": suggestion is None"):
        r = range_test(step, num_iter=50, rule=rule)
    reference = range_test(step, num_iter=50, warn=False)
    assert r.suggestion is None and not r.reliable and r.warnings[-1].startswith("rule ")
    np.testing.assert_array_equal(r.losses, reference.losses)
    saved = json.loads(json.dumps(r.to_dict()))
    assert saved["suggestion"] is None and saved["losses"] == reference.to_dict()["losses"]
    assert saved["max_lr"] == reference.max_lr
    if importlib.util.find_spec("matplotlib") is not None:  # (an install without [plot])
        r.plot(path=tmp_path / "f.png")
        assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises((ValueError, ZeroDivisionError)):  # asked for by name: raised
        r.suggest(rule)


def test_a_rule_gets_copies_of_the_curve():
    def scribble(lrs, losses):
        lrs[:] = 99.0
        losses[:] = -1.0
        return 1e-3

    r = range_test(lambda lr: 2.0 - lr if lr < 1 else 10.0, num_iter=50, warn=False)
    before = r.to_dict()
    assert r.suggest(scribble) == 1e-3
    assert r.to_dict() == before


def test_suggest_refuses_a_keyword_no_rule_reads():
    lrs = np.logspace(-6, 0, 80)
    losses = np.concatenate([np.linspace(2, 0.3, 60), np.linspace(0.3, 4, 20)])
    assert suggest(lrs, losses, total_steps=1900) != suggest(lrs, losses)
    with pytest.raises(
        TypeError,
        match=r"^total_step is not an option of suggest\(\) \(did you mean total_steps\?\)",
    ):
        suggest(lrs, losses, total_step=1900)
    with pytest.raises(TypeError, match=r"^optimizer_fam is not an option of suggest\(\)"):
        suggest(lrs, losses, rule="valley", optimizer_fam="sgd")


@pytest.mark.parametrize(
    "rule, keyword, value, said",
    [
        ("valley", "num_iter", -50, r"num_iter must be an integer >= 1 .*, got -50"),
        (
            "valley",
            "num_iter",
            "100",
            r"num_iter must be an integer >= 1 .*, got '100' \(text, not a number\)",
        ),
        ("slide", "num_iter", 2.5, r"num_iter must be an integer >= 1 .*, got 2.5"),
        ("minimum", "num_iter", True, r"num_iter must be an integer >= 1 .*, got True"),
        ("valley", "beta", 1.0, r"beta must be in \[0.0, 1.0\), got 1.0"),
        ("steepest", "beta", 1.0, r"beta must be in \[0.0, 1.0\), got 1.0"),
        ("budget_edge", "beta", "x", r"beta must be a finite real number, got 'x'"),
        ("valley", "smooth_f", 5, r"smooth_f must be in \(0.0, 1.0\], got 5"),
        ("budget_edge", "smooth_f", 0.0, r"smooth_f must be in \(0.0, 1.0\], got 0.0"),
        (
            "budget_edge",
            "stop_reason",
            "bogus",
            r"stop_reason must be one of 'completed', "
            r"'turned_up', 'diverged', 'nan', 'interrupted', got 'bogus'",
        ),  # fmt: skip
        (
            "valley",
            "stop_reason",
            "bogus",
            r"stop_reason must be one of 'completed', "
            r"'turned_up', 'diverged', 'nan', 'interrupted', got 'bogus'",
        ),  # fmt: skip
    ],
)
def test_suggest_checks_the_keywords_it_takes(rule, keyword, value, said):
    lrs = np.logspace(-6, 0, 80)
    losses = np.concatenate([np.linspace(2, 0.3, 60), np.linspace(0.3, 4, 20)])
    with pytest.raises(ValueError, match=rf"^{said}$"):
        suggest(lrs, losses, rule=rule, **{keyword: value})
    with pytest.raises(ValueError, match=r"^stop_reason must be one of 'completed'"):
        suggestions(lrs, losses, stop_reason="bogus")
    assert suggest(lrs, losses, rule="valley", num_iter=None) == suggest(lrs, losses, rule="valley")
    assert suggest(lrs, losses, rule="valley", num_iter=np.int64(300)) == suggest(
        lrs, losses, rule="valley", num_iter=300
    )


@pytest.mark.parametrize(
    "keyword, said",
    [
        ("evalute", r"\(did you mean evaluate\?\)"),
        ("probe_date", r"\(use reset= and score=, which run the probes\)"),
        ("val_data", r"\(use evaluate=, a function returning the loss on your held batches\)"),
    ],
)
def test_range_test_names_its_own_keywords(keyword, said):
    with pytest.raises(
        TypeError,
        match=rf"^{keyword} is not an option of the range test {said}; "
        r"options: .*\bcallback\b.*\bevaluate\b.*\breset\b",
    ):
        range_test(lambda lr: 1.0, **{keyword: 1})


@pytest.mark.parametrize("value", ["1.0", True, None, np.array([1.0, 2.0])])
def test_sweep_record_checks_its_losses_as_range_test_does(value):
    with pytest.raises(
        ValueError, match=r"^loss must be the loss of the current step \(a number\), got "
    ):
        Sweep().record(value)
    if value is None:  # held=None: no held loss this step
        return
    with pytest.raises(ValueError, match=r"^held must be the held-batch loss \(a number\), got "):
        Sweep().record(1.0, held=value)
    sweep = Sweep()
    assert sweep.record(np.float32(1.5), held=np.array(1.25)) is True


def test_the_warning_says_ended_when_the_sweep_was_not_extended():
    rng = np.random.default_rng(0)
    with pytest.warns(LRFinderWarning, match=r"never turned up \(sweep ended at 10\)"):
        r = range_test(lambda lr: float(2.0 + 0.001 * rng.normal()), max_extra_iter=0)
    assert r.extended == 0


def test_steepest_skips_the_first_10_and_last_5_points_as_torch_lr_finder():
    # a noisy first point (the EMA drops steeply from it) must not be the steepest descent
    lrs = 1e-7 * (10 ** (8 / 99)) ** np.arange(100)
    x = np.log10(lrs)
    losses = 2.0 - 1.5 / (1 + np.exp(-(x + 3) * 2)) + 0.3 * np.maximum(0, x + 0.5) ** 2
    losses[0] = 6.0
    assert suggest(lrs, losses, rule="steepest") != lrs[0]
    s = smooth_seeded(losses)[10:95]
    assert suggest(lrs, losses, rule="steepest") == lrs[10:95][int(np.argmin(np.gradient(s)))]
    # the untrimmed curve's steepest point would have been start_lr
    assert int(np.argmin(np.gradient(smooth_seeded(losses)))) == 0


def test_steepest_reads_only_torch_lr_finders_window():
    # as torch-lr-finder: a minimum within the first 10 points is not read, the window after
    # them (here only the rise) is; a curve too short for the window is read whole, up to
    # its minimum
    lrs = np.logspace(-5, 0, 40)
    losses = np.r_[2.0 * 0.8 ** np.arange(8), 0.5 * np.exp(np.linspace(0, 3, 32))]
    window = smooth_seeded(losses)[10:35]
    assert suggest(lrs, losses, rule="steepest") == lrs[10 + int(np.argmin(np.gradient(window)))]
    short = losses[:16]
    assert suggest(lrs[:16], short, rule="steepest", smooth_f=1.0) == lrs[0]


def test_an_interrupted_sweep_that_never_turned_up_is_unreliable():
    sweep = Sweep(start_lr=1e-5, end_lr=1e-2, num_iter=50)

    def step(lr):
        if len(sweep._losses) == 30:
            raise KeyboardInterrupt
        return 1.0 - 0.1 * math.log10(lr / 1e-5)

    with pytest.raises(KeyboardInterrupt):
        sweep.run(step)
    with pytest.warns(LRFinderWarning, match="had not turned up when the sweep was interrupted"):
        r = sweep.result()
    assert r.stop_reason == "interrupted" and not r.reliable
    assert any("lower bounds" in w for w in r.warnings)


def test_an_interrupted_sweep_after_the_turn_is_not_marked_a_lower_bound():
    sweep = Sweep(start_lr=1e-5, end_lr=1.0, num_iter=100, stop_early=False, diverge_th=1e9)
    lrs = [sweep.lr_at(i) for i in range(100)]
    curve = [2.0 - 1.5 / (1 + (1e-3 / lr) ** 1.5) + 50 * max(0.0, lr - 0.01) ** 2 for lr in lrs]

    def step(lr):
        if len(sweep._losses) == 90:
            raise KeyboardInterrupt
        return curve[len(sweep._losses)]

    with pytest.raises(KeyboardInterrupt):
        sweep.run(step)
    r = sweep.result(warn=False)
    assert r.stop_reason == "interrupted"
    assert not any("lower bounds" in w for w in r.warnings)


def test_for_total_steps_reads_the_same_sweep_for_another_budget():
    rng = np.random.default_rng(0)
    w = rng.normal(size=50)

    def step(lr):
        w[:] -= lr * w * np.linspace(0.5, 2, 50)
        return float(0.5 * np.sum(w**2) + 0.01 * rng.normal())

    r = range_test(step, total_steps=3000, eval_every=4, evaluate=lambda: float(np.sum(w**2)))
    same = r.for_total_steps(3000)
    assert same == r._sugg  # the result's own suggestions, field for field
    other = r.for_total_steps(300)
    assert other.total_steps == 300 and other.lr_min == r.lr_min
    assert other.constant > r.suggestion  # a shorter run takes a larger rate
    assert range_test(lambda lr: 1.0, num_iter=10, warn=False).for_total_steps(100) is not None
    interrupted = Sweep(num_iter=10).result(warn=False)
    assert interrupted.for_total_steps(100) is None


def test_held_batches_reads_one_pass_and_names_the_argument():
    from lrkit.finder import held_batches

    gen = (i for i in range(3))
    assert held_batches(gen) == [0, 1, 2] and list(gen) == []
    assert held_batches([[1], [2]]) == [[1], [2]]
    with pytest.raises(ValueError, match=r"^val_data must yield at least one batch"):
        held_batches([])
    with pytest.raises(ValueError, match=r"^held must be an iterable of batches .* got str$"):
        held_batches("abc", name="held")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(held_batches(range(16))) == 16  # up to 16: no warning
    with pytest.warns(UserWarning, match=r"^val_data holds 17 batches, all kept and evaluated"):
        assert len(held_batches(range(17))) == 17


def test_an_endless_held_set_is_a_one_line_error_not_a_hang():
    import itertools

    from lrkit.finder import MAX_HELD_BATCHES, held_batches

    with pytest.raises(ValueError) as info:
        held_batches(itertools.cycle([1, 2]), name="probe_data", warn_many=False)
    assert str(info.value) == (
        f"probe_data has no len() and yields more than {MAX_HELD_BATCHES} batches (an endless "
        "iterator, such as itertools.cycle or a streaming loader?): it is read whole before the "
        "sweep; give a finite set, e.g. list(itertools.islice(loader, 4)) (a list or a sized "
        "loader is read whole)"
    )
    unsized = (i for i in range(MAX_HELD_BATCHES))
    assert len(held_batches(unsized, warn_many=False)) == MAX_HELD_BATCHES
    many = list(range(10 * MAX_HELD_BATCHES + 1))  # a large validation set of known size
    assert held_batches(many, name="probe_data", warn_many=False) == many


def test_a_rise_to_end_lr_from_the_first_step_says_lower_start_lr():
    import warnings

    from lrkit.finder import range_test

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = range_test(lambda lr: 1 + 0.1 * (np.log10(lr) + 7))
    assert r.stop_reason == "completed" and not r.reliable
    assert any("the loss rose from the first steps" in w for w in r.warnings)
    assert not any("did not clearly descend" in w for w in r.warnings)


@pytest.mark.parametrize(
    ("losses", "reason", "steps"),
    [
        ([1.0, math.nan], "nan", 2),
        ([1.0] * 4 + [math.nan], "nan", 5),
        ([1.0] * 4 + [1000.0], "diverged", 5),
    ],
)
def test_divergence_within_five_steps_counts_the_steps_taken(losses, reason, steps):
    import warnings

    from lrkit.finder import range_test

    seq = iter([*losses, *[1.0] * 200])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = range_test(lambda lr: next(seq))
    assert r.stop_reason == reason and r.steps == steps
    assert r.warnings == (
        f"the sweep stopped after {steps} step(s) ({reason}): the loss diverged almost at once; "
        "lower start_lr (e.g. by 100x) and rerun",
    )


def test_plot_arguments_are_checked():
    pytest.importorskip("matplotlib")
    from lrkit.finder import range_test

    r = range_test(lambda lr: (np.log10(lr) + 3) ** 2, num_iter=50, warn=False)
    with pytest.raises(ValueError, match=r"^show_raw must be True or False, got 'false'$"):
        r.plot(show_raw="false")
    with pytest.raises(ValueError, match=r"^ax must be a matplotlib Axes or None, got 3$"):
        r.plot(ax=3)
    with pytest.raises(ValueError, match=r"^title must be a string or None, got 123$"):
        r.plot(title=123)


def test_a_sparse_held_curve_does_not_hide_a_clear_descent():
    """With a held loss every 20 or more steps (fewer than 8 held points) the held curve is
    too sparse to read its shape or its edge against its noise: the training curve's shape
    and edge are read, so a clear descent is not reported as flat; a flat sparse run still
    is."""
    from lrkit.finder.rules import edge

    def curve(lr):
        rise = 0.0 if lr < 0.1 else 5 * np.log10(lr / 0.1)
        return 2.0 - 1.5 * np.exp(-((np.log10(lr) + 2) ** 2) / 2) + rise

    def noisy(seed):
        rs = np.random.RandomState(seed)
        last = {}

        def step(lr):
            last["lr"] = lr
            return float(curve(lr) + rs.normal(0, 0.05))

        def held():
            return float(curve(last["lr"]) + rs.normal(0, 0.01))

        return step, held

    for every in (20, 25, 40):
        step, held = noisy(0)
        r = range_test(step, evaluate=held, warn=False, eval_every=every)
        assert 3 <= len(r.held_losses) < 8
        assert r.reliable, (every, r.warnings)
        train = edge(r.lrs, r.losses, held=False)  # lr_min: the training curve's edge alone
        held_edge = edge(r.held_lrs, r.held_losses, held=True)
        assert r.lr_min == train and held_edge != train
    rs = np.random.RandomState(1)
    flat = range_test(lambda lr: float(1.0 + rs.normal(0, 0.05)), evaluate=lambda: 1.0,
                      warn=False, eval_every=25, max_extra_iter=0)  # fmt: skip
    assert any("did not clearly descend" in w for w in flat.warnings)


# ----------------------------------------------------------------------------- NaN stops
def _descent(lr):
    """Falls from 2 towards 1 around lr = 1e-4 and never rises."""
    return 1.0 + 1.0 / (1.0 + lr / 1e-4)


def test_a_nan_before_the_curve_turned_up_makes_the_suggestions_lower_bounds():
    def step(lr):
        return math.nan if lr > 3e-3 else _descent(lr)

    msg = (
        "the loss became NaN/inf (at {:.2g}) before the curve turned up: the edge of stability "
        "may lie beyond it, so the suggestions are lower bounds; if a batch or an operation of "
        "the training step gives the NaN/inf (e.g. the log of 0), fix it and rerun"
    )
    with pytest.warns(LRFinderWarning, match=r"^LR range test: the loss became NaN/inf") as got:
        r = range_test(step, eval_batches=0)
    assert r.stop_reason == "nan" and r.stop_lr > 3e-3 > r.lrs[-1]
    assert r.warnings == (msg.format(r.stop_lr),) and not r.reliable
    assert [str(w.message) for w in got] == [f"LR range test: {r.warnings[0]}"]
    assert not r._sugg.turned_up and r._sugg.descended and not r._sugg.reliable
    # the numbers are the rule's, as for the same curve stopped by a divergence
    same = suggestions(r.lrs, r.losses, stop_reason="diverged")
    assert same.turned_up and same.reliable
    assert (r.suggestion, r.max_lr, r.lr_min) == (same.constant, same.max_lr, same.lr_min)


def test_a_nan_after_the_curve_turned_up_leaves_the_result_reliable():
    def step(lr):  # a minimum at 1e-3, risen clearly by 1e-2, NaN past 2e-2
        return math.nan if lr > 2e-2 else 1.0 + 0.5 * (math.log10(lr) + 3) ** 2

    with warnings.catch_warnings():
        warnings.simplefilter("error", LRFinderWarning)
        r = range_test(step, eval_batches=0, stop_early=False)
    assert r.stop_reason == "nan" and r.reliable and r.warnings == ()
    assert r._sugg.turned_up


# ----------------------------------------------------------------------------- one-shot data
def test_cycle_batches_keeps_a_bounded_number_of_a_generators_batches():
    import gc
    import weakref
    from itertools import islice

    from lrkit.finder import cycle_batches
    from lrkit.finder.sweep import REPLAY_BATCHES

    class Batch:
        pass

    alive: weakref.WeakSet[Batch] = weakref.WeakSet()

    def endless():
        while True:
            b = Batch()
            alive.add(b)
            yield b

    batches = cycle_batches(endless())
    for _ in islice(batches, 10 * REPLAY_BATCHES):
        pass
    gc.collect()
    assert REPLAY_BATCHES == 64 and len(alive) == REPLAY_BATCHES  # not all 640


def test_cycle_batches_replays_a_long_generators_last_batches_with_a_warning():
    from itertools import islice

    from lrkit.finder import cycle_batches
    from lrkit.finder.sweep import REPLAY_BATCHES

    n = REPLAY_BATCHES + 36
    batches = cycle_batches((i for i in range(n)), name="x")
    assert list(islice(batches, n)) == list(range(n))
    with pytest.warns(
        UserWarning,
        match=r"^x \(a one-shot iterator\) ran out after 100 batches: its last 64 are replayed, "
        r"the most kept; pass a list or a re-iterable loader to cycle over all 100$",
    ):
        again = list(islice(batches, 2 * REPLAY_BATCHES))
    assert again == 2 * list(range(n - REPLAY_BATCHES, n))
    # as many as it keeps: replayed whole, without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        short = cycle_batches(iter(range(REPLAY_BATCHES)))
        assert list(islice(short, 2 * REPLAY_BATCHES)) == 2 * list(range(REPLAY_BATCHES))


# ----------------------------------------------------------------------------- budgets
def test_for_total_steps_below_the_fitted_budgets_says_so_as_the_sweep_does():
    def step(lr):
        return 1.0 + 0.5 * (math.log10(lr) + 3) ** 2

    budget = (
        r"^LR range test: total_steps=50 is below the budgets the rule was fitted on "
        r"\(100-1930 steps\): the suggestions are those for 100 steps$"
    )
    r = range_test(step, eval_batches=0, total_steps=1000)
    with pytest.warns(LRFinderWarning, match=budget):
        short = range_test(step, eval_batches=0, total_steps=50)
    assert r.reliable and not short.reliable
    with pytest.warns(LRFinderWarning, match=budget):
        s = r.for_total_steps(50)
    # what the sweep with total_steps=50 gives: its values (those for 100 steps), its warning
    assert s == short._sugg and s.warnings == short.warnings and not s.reliable
    assert (s.constant, s.max_lr) == (short.suggestion, short.max_lr)
    assert s.constant == r.for_total_steps(100).constant
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert r.for_total_steps(50, warn=False) == s
        back = short.for_total_steps(1000)  # the budget warning is the sweep's no more
        assert back == r._sugg and back.reliable and r._sugg.reliable
    with pytest.raises(ValueError, match=r"^warn must be True or False, got 'no'$"):
        r.for_total_steps(50, warn="no")


def _synthetic_curve():
    lrs = np.logspace(-6, 0, 100)
    x = np.log10(lrs)
    noise = np.random.default_rng(1).normal(0, 0.05, 100)
    loss = 2.3 - 1.5 / (1 + np.exp(-(x + 4) * 3)) + np.where(x > -1.7, (x + 1.7) ** 2 * 8, 0)
    return lrs, loss + noise


def test_no_suggestion_is_above_half_the_edge():
    lrs, loss = _synthetic_curve()
    from lrkit.finder import _coefficients as C

    s = suggestions(lrs, loss, total_steps=100)

    def fitted(schedule: str) -> float:  # the coefficients' factor for 100 steps, adaptive
        a, b = C.INTERCEPT[schedule]["adaptive"], C.BUDGET_SLOPE[schedule]
        return math.exp(a + b * math.log(100 / 1000))

    # one-cycle and warmup-cosine at 100 steps would go above half the edge: held at half
    assert fitted("onecycle") > 0.5 and fitted("warmup_cosine") > 0.5
    assert s.max_lr == 0.5 * s.lr_min and s.peak_lr == 0.5 * s.lr_min
    assert fitted("constant") < 0.5
    assert s.constant == pytest.approx(s.lr_min * fitted("constant"), rel=1e-12)


def test_budget_message_starts_below_the_fitted_budgets():
    assert R.budget_message(100) is None and R.budget_message(5000) is None
    assert R.budget_message(99) == (
        "total_steps=99 is below the budgets the rule was fitted on (100-1930 steps): "
        "the suggestions are those for 100 steps"
    )


def test_a_repeated_lr_is_refused():
    with pytest.raises(
        ValueError,
        match=r"^lrs must be increasing \(the LRs of a sweep, in order\), got 0\.01 at index 2 "
        r"after 0\.01$",
    ):
        R.steepest([1e-3, 1e-2, 1e-2, 1e-1], [1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize(
    ("name", "momentum", "family"),
    [
        ("SGD", 0.0, "sgd"),
        ("sgd", 0.9, "momentum"),
        ("Nesterov", 0.9, "momentum"),
        ("SGDW", 0.0, "sgd"),
        ("SGDW", 0.9, "momentum"),
        ("SGD", 0.1, "momentum"),
        ("Adam", 0.9, "adaptive"),
        ("AdamW", 0.0, "adaptive"),
    ],
)
def test_optimizer_family_of_a_name_and_momentum(name, momentum, family):
    assert R.optimizer_family(name, momentum=momentum) == family


@pytest.mark.parametrize(("m", "descended"), [(5, False), (6, True)])
def test_a_descent_needs_its_minimum_past_the_first_tenth(m, descended):
    r = np.r_[[2.0] * m, 0.5, [3.0] * (49 - m)]  # 50 points: the first tenth is indices 0-5
    shape = R.CurveShape.of(r, r)
    assert shape.m == m and shape.dropped
    assert shape.descended is descended


def test_steepest_trims_a_curve_of_17_points_and_reads_one_of_16_whole():
    losses = [5.0, 4.0, 1.0, 0.5] + [1.0 + 0.5 * i for i in range(13)]
    lrs = np.geomspace(1e-4, 1.0, 17)
    # 17 points: the window is points 10 and 11, one gradient for both: the first
    assert R.steepest(lrs, losses, smooth_f=1.0) == lrs[10]
    # 16: up to the minimum (index 3), the steepest at index 1: (1.0 - 5.0) / 2
    assert R.steepest(lrs[:16], losses[:16], smooth_f=1.0) == lrs[1]


@pytest.mark.parametrize(("width", "saturated"), [(29, False), (31, True)])
def test_a_floor_saturates_past_one_and_a_half_decades(width, saturated):
    lrs = np.logspace(-6, 0, 121)  # 20 points a decade: a floor of 29 steps is 1.45 decades
    r = np.r_[[2.0] * 40, [0.5] * (width + 1), [3.0] * (80 - width)]
    shape = R.CurveShape.of(r, r)
    assert shape.descended and shape.saturated(lrs) is saturated


def test_lr_min_is_the_geometric_mean_of_the_training_and_held_edges():
    lrs, loss = _synthetic_curve()
    x = np.log10(lrs)
    held = 2.3 - 1.5 / (1 + np.exp(-(x + 3) * 3)) + np.where(x > -1.0, (x + 1.0) ** 2 * 8, 0)
    held_lrs, held_losses = lrs[::4], held[::4]
    train_edge = R.edge(lrs, loss, held=False)
    held_edge = R.edge(held_lrs, held_losses, held=True)
    assert held_edge > 5 * train_edge
    s = suggestions(lrs, loss, held_lrs=held_lrs, held_losses=held_losses, total_steps=100)
    assert s.lr_min == pytest.approx(train_edge**0.5 * held_edge**0.5, rel=1e-12)


def test_fastai_rules_trim_a_curve_that_leaves_exactly_3_points():
    # 8 points, num_iter=8: no point off the start, 5 off the end: 3 points are left, read
    # alone; the minimum of a falling curve is then the third point, not the last
    lrs = np.logspace(-6, 0, 8)
    losses = [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    assert suggest(lrs, losses, rule="minimum", num_iter=8) == lrs[2] / 10


def test_slide_reads_the_first_trimmed_point_when_the_gradient_never_levels_off():
    # a parabola: numpy.gradient 15 points apart differs by far more than 0.005 everywhere,
    # so the walk left reaches the first point of the trimmed curve (index 40 // 10 = 4)
    lrs = np.logspace(-6, 0, 40)
    losses = [float(i * i) for i in range(40)]
    assert R.slide(lrs, losses) == lrs[4]


def test_a_rise_small_against_a_high_loss_has_not_turned_up():
    # descends by 0.1 to 10.0, then rises by 0.2: less than RISE_FRACTION of the loss (0.5)
    lrs = np.logspace(-5, 0, 100)
    losses = np.array(
        [10.1 - 0.1 * i / 50 if i <= 50 else 10.0 + 0.2 * (i - 50) / 49 for i in range(100)]
    )
    assert R.turned_up(lrs, losses) is False
    assert suggestions(lrs, losses).turned_up is False


def test_held_edge_lies_at_the_vertex_between_grid_points():
    # a parabola in ln(lr) with its vertex 30% of a step past lrs[30]: the held edge is
    # refined between grid points, not the grid point itself
    lrs = np.logspace(-5, 0, 51)
    c = math.log(lrs[30]) + 0.3 * (math.log(lrs[31]) - math.log(lrs[30]))
    losses = np.array([(math.log(x) - c) ** 2 + 1 for x in lrs])
    e = R.edge(lrs, losses, held=True)
    assert lrs[30] < e < lrs[31]
    assert e == pytest.approx(math.exp(c), rel=5e-3)


def test_edge_of_a_flat_curve_allows_floor_fraction_of_the_loss_above_its_minimum():
    # flat at 10.0, then rising by 0.01 a step from index 60: the floor reaches
    # 10.0 + FLOOR_FRACTION * 10.0 = 10.2, at index 80
    lrs = np.logspace(-5, 0, 100)
    losses = np.array([10.0 if i < 60 else 10.0 + 0.01 * (i - 60) for i in range(100)])
    assert R.edge(lrs, losses, held=False) == lrs[80]


def test_a_curve_of_4_points_is_never_read_as_saturated():
    lrs = np.array([1e-6, 1e-4, 1e-2, 1.0])
    s = suggestions(lrs, [3.0, 1.0, 1.0, 1.0])
    assert s.descended is True
    assert s.saturated is False


def test_a_user_rule_returning_zero_is_refused_with_the_rules_name():
    def zero(lrs, losses):
        return 0.0

    lrs = np.logspace(-6, 0, 20)
    with pytest.raises(ValueError, match=r"^rule 'zero' must return a learning rate > 0, got 0"):
        suggest(lrs, np.linspace(3.0, 1.0, 20), rule=zero)


def test_default_smoothing_spans_three_tenths_of_a_decade_by_points_per_decade():
    # 9 points over one decade: 8 steps a decade, so +-0.3 decades is 2.4 steps: width 2
    lrs = np.logspace(-3, -2, 9)
    y = np.array([5.0, 1.0, 4.0, 0.0, 6.0, 2.0, 7.0, 3.0, 8.0])
    out = R.smooth_curve(lrs, y)
    assert np.array_equal(out, robust_smooth(y, width=2))
    assert not np.allclose(out, robust_smooth(y, width=3))


def test_steepest_on_a_short_curve_reads_the_gradient_at_its_minimum_too():
    # 5 points, read whole up to the minimum (index 3) inclusive: the central gradient there,
    # (0.1 - 6.0) / 2, is steeper than any before it
    lrs = np.logspace(-4, 0, 5)
    assert R.steepest(lrs, [5.0, 4.0, 6.0, 0.0, 0.1], smooth_f=1.0) == lrs[3]


def test_steepest_reads_a_short_curve_per_point_as_it_reads_a_trimmed_one():
    """``numpy.gradient`` per point, as on the trimmed window (torch-lr-finder's): on a sweep
    of evenly spaced LRs the steepest point is the first, (5 - 8) / 1, not the last, which
    a gradient against ln(lr) would read as steepest."""
    assert R.steepest([1.0, 2.0, 3.0, 4.0, 5.0], [8.0, 5.0, 4.0, 3.0, 2.0], smooth_f=1.0) == 1.0


@pytest.mark.parametrize("rule", sorted(R.RULES))
def test_every_rule_refuses_an_empty_curve_in_one_line(rule):
    with pytest.raises(ValueError) as info:
        suggest([], [], rule=rule)
    assert str(info.value) == (
        "lrs and losses must be 1-D arrays of the same non-zero length, got shapes (0,) and (0,)"
    )


def test_a_bool_num_iter_is_no_planned_step_count():
    # 30 points: fastai's window drops 30 // 10 = 3 points off the start; num_iter=True is
    # read as no planned count (the points recorded), not as 1 planned step
    lrs = np.logspace(-6, 0, 30)
    losses = np.linspace(1.0, 3.0, 30)  # rising: the minimum is the window's first point
    assert R.minimum(lrs, losses, beta=0.0, num_iter=True) == lrs[3] / 10


def test_slide_reads_the_first_point_of_a_trimmed_curve_shorter_than_its_window():
    # 22 points, trimmed to indices 2..16: 15 points, one fewer than slide's 16-point window
    lrs = np.arange(1.0, 23.0)
    losses = [float(i * i) for i in range(22)]
    assert R.slide(lrs, losses) == lrs[2]


def test_held_edge_of_a_curve_still_falling_at_its_last_point_is_that_point():
    lrs = np.logspace(-5, 0, 51)
    losses = np.linspace(3.0, 1.0, 51)
    assert R.edge(lrs, losses, held=True) == lrs[-1]


@pytest.mark.parametrize(
    ("decades", "points", "width"),
    # points per decade 1, 3, 6 and 10: +-0.3 decades is 0.3, 0.9, 1.8 and 3 steps
    [(4, 5, 1), (3, 10, 1), (2, 13, 2), (1, 11, 3)],
)
def test_default_smoothing_rounds_its_width_and_keeps_at_least_one_step(decades, points, width):
    lrs = np.logspace(-decades, 0, points)
    y = np.resize([5.0, 1.0, 4.0, 0.0, 6.0, 2.0, 7.0, 3.0, 8.0], points)
    out = R.smooth_curve(lrs, y)
    assert np.array_equal(out, robust_smooth(y, width=width))
    for other in {0, 1, 2, 3, 4} - {width}:
        assert not np.array_equal(out, robust_smooth(y, width=other))


def test_the_drop_is_from_the_highest_point_before_the_minimum():
    r = np.r_[[1.0] * 10, [3.0] * 10, [0.5] * 10, [5.0] * 20]
    shape = R.CurveShape.of(r, r)
    assert shape.m == 20 and shape.drop == 2.5


def test_a_flat_zero_loss_has_not_dropped():
    shape = R.CurveShape.of(np.zeros(20), np.zeros(20))
    assert shape.drop == 0.0 and shape.noise == 0.0
    assert shape.dropped is False and shape.descended is False


def test_a_rise_of_exactly_the_margin_has_not_turned_up():
    # noiseless, minimum 0 after a drop of 20: the margin is RISE_FRACTION * 20 = 1.0
    r = np.r_[[20.0] * 10, [0.0] * 10, [1.0] * 10]
    shape = R.CurveShape.of(r, r)
    assert shape.above_minimum(1.0) is False and shape.turned_up is False
    assert shape.above_minimum(1.0 + 1e-9) is True


def test_a_curve_of_4_points_is_too_short_to_have_turned_up_or_saturated():
    lrs = np.array([1e-6, 1e-4, 1e-2, 1.0])
    assert R.turned_up(lrs, [3.0, 1.0, 1.0, 50.0]) is False
    assert suggestions(lrs, [3.0, 1.0, 1.0, 50.0]).turned_up is False
    assert R.saturated(lrs, [3.0, 1.0, 1.0, 1.0]) is False
    assert R.turned_up(np.logspace(-6, 0, 5), [3.0, 1.0, 1.0, 50.0, 50.0]) is True


@pytest.mark.parametrize(
    "floor", [[0.0] + [1.0] * 40, [1.0] * 40 + [0.0]], ids=["after_minimum", "before_minimum"]
)
def test_a_floor_includes_points_exactly_at_its_tolerance(floor):
    # a drop of 20 to 0: the floor holds points up to SATURATED_DESCENT * 20 = 1.0 above the
    # minimum; 40 of them span 2 decades at 20 points a decade, on either side of it
    lrs = np.logspace(-6, 0, 121)
    r = np.r_[[20.0] * 30, floor, [30.0] * 50]
    shape = R.CurveShape.of(r, r)
    assert shape.descended and shape.saturated(lrs) is True


def test_a_floor_of_exactly_one_and_a_half_decades_is_not_saturated():
    lrs = np.array([1e-3, 1e-2, 0.1, 1.0, 2.0, 4.0, 10**1.5, 100.0, 1000.0])
    r = np.array([20.0, 20.0, 20.0, 0.0, 0.0, 0.0, 0.0, 30.0, 30.0])  # floor: 1.0 to 10**1.5
    assert R.CurveShape.of(r, r).saturated(lrs) is False
    r[7] = 0.0  # one point further: 2 decades
    assert R.CurveShape.of(r, r).saturated(lrs) is True


def test_edge_of_a_flat_negative_loss_allows_floor_fraction_of_its_magnitude():
    # flat at -10.0, then rising by 0.01 a step from index 60: the floor reaches
    # -10.0 + FLOOR_FRACTION * 10.0 = -9.8, at index 80
    lrs = np.logspace(-5, 0, 100)
    losses = np.array([-10.0 if i < 60 else -10.0 + 0.01 * (i - 60) for i in range(100)])
    assert R.edge(lrs, losses, held=False) == lrs[80]


def test_suggestions_report_a_drop_even_with_the_minimum_in_the_first_tenth():
    # a drop from 5 to 1 within the first 5 of 50 points, then a rise: the curve dropped
    # (descended) though its minimum is too early for CurveShape.descended
    lrs = np.logspace(-6, 0, 50)
    losses = np.r_[[5.0] * 2, [1.0] * 3, np.linspace(1.0, 20.0, 46)[1:]]
    shape = R.CurveShape.of(losses, R.smooth_curve(lrs, losses))
    assert shape.m == 4 and shape.dropped and not shape.descended
    s = suggestions(lrs, losses)
    assert s.descended is True and s.turned_up is True


def test_budget_edge_checks_its_stop_reason():
    lrs = np.logspace(-6, 0, 80)
    losses = np.concatenate([np.linspace(2, 0.3, 60), np.linspace(0.3, 4, 20)])
    with pytest.raises(ValueError, match=r"^stop_reason must be one of 'completed', .*got 'done'$"):
        R.budget_edge(lrs, losses, stop_reason="done")
    assert R.budget_edge(lrs, losses, stop_reason="nan") == suggestions(lrs, losses).constant


def test_a_held_curve_is_read_from_8_points_on():
    lrs = np.logspace(-6, 0, 40)
    losses = np.linspace(3.0, 1.0, 40)
    for n, read in ((7, lrs), (8, lrs[:8])):
        x, y = R.shape_curve(lrs, losses, lrs[:n], losses[:n] + 1.0)
        assert np.array_equal(x, read)
        assert np.array_equal(y, losses if n == 7 else losses[:8] + 1.0)


def test_edge_of_a_flat_noisy_curve_allows_three_noise_units_above_its_minimum():
    lrs = np.logspace(-5, 0, 100)
    rng = np.random.default_rng(0)
    flat = np.array([1.0 if i < 50 else 1.0 + 0.002 * (i - 50) for i in range(100)])
    losses = flat + rng.normal(0, 0.01, 100)
    r = robust_smooth(losses)
    m, noise = int(np.argmin(r)), noise_level(losses, r)
    assert not R.CurveShape.of(losses, r).descended
    limit = r[m] + 3.0 * noise + 0.02 * r[m]  # FLOOR_NOISE units, FLOOR_FRACTION of the loss
    j = m
    while r[j + 1] <= limit:
        j += 1
    assert (m, j) == (12, 67)
    assert R.edge(lrs, losses, held=False) == lrs[j]


def test_a_rise_within_three_noise_units_has_not_turned_up():
    # noise 1.0, a drop of 1.0: the margin is RISE_NOISE * 1.0 = 3.0 (RISE_FRACTION gives 0.05)
    r = np.r_[[1.0] * 5, [0.0] * 5, [2.5] * 5]
    shape = R.CurveShape(r=r, m=5, noise=1.0, drop=1.0)
    assert shape.above_minimum(2.5) is False and shape.turned_up is False
    assert shape.above_minimum(3.5) is True


def test_a_curve_of_2_d_arrays_is_refused_in_one_line():
    with pytest.raises(ValueError) as info:
        suggest([[1e-3, 1e-2, 1e-1]], [[3.0, 2.0, 1.0]], rule="valley")
    assert str(info.value) == (
        "lrs and losses must be 1-D arrays of the same non-zero length, got shapes (1, 3) and "
        "(1, 3)"
    )


def test_the_first_non_finite_loss_is_the_one_named():
    lrs = np.logspace(-6, 0, 6)
    with pytest.raises(ValueError, match=r"^losses must be finite, got nan at index 1$"):
        suggest(lrs, [2.0, math.nan, 1.0, math.inf, 1.0, 1.0], rule="steep")


@pytest.mark.parametrize("rule", ["steepest", "valley", "slide", "steep"])
def test_a_peer_rule_on_a_curve_of_one_point_reads_that_point(rule):
    assert suggest([1e-3], [2.0], rule=rule) == 1e-3
    assert suggest([1e-3], [2.0], rule="minimum") == 1e-3 / 10


def test_fastai_rules_read_a_curve_that_would_leave_2_points_whole():
    # 7 points, num_iter=7: no point off the start, 5 off the end would leave 2: the curve
    # is read whole, and the minimum of a falling curve is its last point
    lrs = np.logspace(-6, 0, 7)
    losses = [7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    assert suggest(lrs, losses, rule="minimum", num_iter=7) == lrs[6] / 10


def test_steepest_on_a_short_curve_stops_at_its_minimum():
    # 5 points (too few for the trim), minimum at index 2: np.gradient is -0.5, -2.0, 2.25,
    # 0.5, -7.0; the steepest up to the minimum is index 1, not the fall after it at index 4
    lrs = np.logspace(-4, 0, 5)
    assert R.steepest(lrs, [5.0, 4.5, 1.0, 9.0, 2.0], smooth_f=1.0) == lrs[1]


def test_steepest_on_a_linear_sweep_reads_the_gradient_per_point():
    # LRs 1..30 (linear), the window [10:25]: drops of 1.0 at LR 12 and of 0.9 at LR 22;
    # per point the first is steeper (-0.5 against -0.45), though per unit of ln(lr) the
    # second would be
    lrs = np.arange(1.0, 31.0)
    losses = np.r_[[10.0] * 12, [9.0] * 10, [8.1] * 8]
    assert R.steepest(lrs, losses, smooth_f=1.0) == lrs[11]


def test_slide_on_a_flat_curve_reads_15_points_left_of_the_end_of_its_window():
    # 40 points: fastai's window is [4:35]; the gradient is 0 everywhere, so the slide stops
    # at once, at l = -16 of the window: index 35 - 16 = 19
    lrs = np.logspace(-6, 0, 40)
    assert R.slide(lrs, [1.0] * 40) == lrs[19]


def test_slide_moves_on_while_the_gradients_differ_by_more_than_0_005_only():
    # beta=0 (the raw curve), window [3:27]: zeros, then 0.005 and 0.01 (twice 0.005, exact);
    # np.gradient at its last two points is exactly 0.005, 15 points left of them 0: a
    # difference of exactly 0.005 stops the slide (fastai's "> 0.005"), at l = -16
    lrs = np.logspace(-6, 0, 32)
    losses = [0.0] * 25 + [0.005, 0.01] + [9.0] * 5
    assert R.slide(lrs, losses, beta=0.0, num_iter=32) == lrs[11]


def test_a_negative_noiseless_loss_must_drop_by_a_fraction_of_its_magnitude():
    # at -2.0: a drop of 0.003 is less than MOVED_FRACTION of |-2.003|, one of 0.005 more
    for depth, dropped in ((0.003, False), (0.005, True)):
        curve = np.full(12, -2.0)
        curve[6:] -= depth
        shape = R.CurveShape.of(curve, curve)
        assert shape.noise == 0.0 and shape.dropped is dropped


def test_turned_up_reads_the_highest_point_after_the_minimum():
    # back down to the minimum at the end: it rose clearly above it in between
    r = np.r_[[5.0] * 10, [0.0] * 10, [5.0] * 5, [0.0] * 5]
    shape = R.CurveShape.of(r, r)
    assert shape.m == 10 and shape.turned_up is True


def test_a_floor_that_runs_to_the_last_point_counts_it():
    # 20 points a decade: a floor from index 89 to the last point (120) spans 1.55 decades,
    # one from index 90 spans 1.5
    lrs = np.logspace(-6, 0, 121)
    for start, saturated in ((89, True), (90, False)):
        r = np.r_[[2.0] * start, [0.5] * (121 - start)]
        shape = R.CurveShape.of(r, r)
        assert shape.descended and shape.saturated(lrs) is saturated


def test_edge_of_a_drop_within_the_first_tenth_is_the_onset_of_the_rise():
    # 50 points: a drop to the floor by index 4 (within the first tenth), flat to index 31,
    # then a rise: no descent to read the minimum of, the edge is where the floor ends
    lrs = np.logspace(-6, 0, 50)
    losses = np.r_[[5.0] * 2, [1.0] * 30, np.linspace(1.0, 20.0, 19)[1:]]
    shape = R.CurveShape.of(losses, robust_smooth(losses))
    assert shape.m == 4 and shape.dropped and not shape.descended
    assert R.edge(lrs, losses, held=False) == lrs[29]


def test_suggestions_report_the_noise_of_the_curve_around_its_smoothing():
    lrs, loss = _synthetic_curve()
    s = suggestions(lrs, loss)
    assert s.noise == noise_level(loss, R.smooth_curve(lrs, loss)) > 0


def test_suggestions_read_the_held_curves_shape_also_when_the_training_curve_is_short():
    # 4 training points, too few for a rise; 8 held points, which rise clearly
    held_lrs = np.logspace(-6, 0, 8)
    s = suggestions(np.logspace(-6, 0, 4), [3.0, 2.0, 1.5, 1.0], held_lrs=held_lrs,
                    held_losses=[3.0, 2.0, 1.0, 0.5, 0.5, 2.0, 5.0, 9.0])  # fmt: skip
    assert s.turned_up is True


@pytest.mark.parametrize(
    ("keyword", "value", "said"),
    [
        ("total_steps", 0, r"total_steps must be an integer >= 1 .*, got 0"),
        ("total_steps", 2.5, r"total_steps must be an integer >= 1 .*, got 2\.5"),
        (
            "optimizer_family",
            "adam",
            r"optimizer_family must be one of 'sgd', 'momentum', 'adaptive', got 'adam'",
        ),
    ],
)
def test_suggestions_check_the_budget_and_the_family(keyword, value, said):
    lrs, loss = _synthetic_curve()
    with pytest.raises(ValueError, match=rf"^{said}$"):
        suggestions(lrs, loss, **{keyword: value})


def test_budget_edge_reads_the_optimizer_family():
    lrs, loss = _synthetic_curve()
    sgd = R.budget_edge(lrs, loss, optimizer_family="sgd")
    assert sgd == suggestions(lrs, loss, optimizer_family="sgd").constant
    assert sgd != R.budget_edge(lrs, loss)


def test_a_misspelt_rule_name_lists_the_rules_in_one_line():
    lrs, loss = _synthetic_curve()
    with pytest.raises(ValueError) as info:
        suggest(lrs, loss, rule="fastest")
    assert str(info.value) == (
        "rule must be one of 'budget_edge', 'steepest', 'valley', 'minimum', 'slide', 'steep', "
        "got 'fastest'"
    )


def test_a_rule_without_a_name_is_called_custom():
    import functools

    def scaled(lrs, losses, scale):
        return scale

    lrs, loss = _synthetic_curve()
    with pytest.raises(ValueError, match=r"^rule 'custom' must return a learning rate > 0, got 0"):
        suggest(lrs, loss, rule=functools.partial(scaled, scale=0.0))
    r = range_test(lambda lr: (np.log10(lr) + 3) ** 2, rule=functools.partial(scaled, scale=1e-3),
                   warn=False)  # fmt: skip
    assert (r.rule, r.suggestion) == ("custom", 1e-3)


def test_probed_suggestions_scale_the_probes_edge_by_the_probed_coefficients():
    from lrkit.finder import Probes
    from lrkit.finder import _coefficients as C
    from lrkit.finder.probes import probe_lrs

    lrs, loss = _synthetic_curve()
    sweep = suggestions(lrs, loss, total_steps=300, optimizer_family="sgd")
    probes = Probes(sweep.lr_min, probe_lrs(sweep.lr_min), (9.0, 5.0, 3.0, 2.0, 1.0, 1.5, 2.5, 4.0))
    assert probes.edge != probes.best_lr and probes.edge != sweep.lr_min
    s = suggestions(lrs, loss, total_steps=300, optimizer_family="sgd", probes=probes)
    assert s.lr_min == sweep.lr_min  # the sweep's edge
    t = math.log(300 / 1000)
    for key, got in (("constant", s.constant), ("onecycle", s.max_lr),
                     ("warmup_cosine", s.peak_lr)):  # fmt: skip
        factor = math.exp(C.PROBED_INTERCEPT[key]["sgd"] + C.PROBED_BUDGET_SLOPE[key] * t)
        assert got == pytest.approx(probes.edge * min(factor, C.PROBED_EDGE_CAP[key]), rel=1e-12)
    # probes run around another edge are refused
    other = Probes(2 * sweep.lr_min, probes.lrs, probes.losses)
    with pytest.raises(ValueError, match=r"^probes were run around lr_min=.*, not this sweep's"):
        suggestions(lrs, loss, total_steps=300, optimizer_family="sgd", probes=other)
