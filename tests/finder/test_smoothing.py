"""The smoothings of lrkit.finder.smoothing on small curves worked out by hand from their
definitions: a running median over 2k+1 points, then a triangular-weighted centred mean,
and the noise as 1.4826 times the median absolute deviation."""

from __future__ import annotations

import numpy as np
import pytest

from lrkit.finder.smoothing import noise_level, robust_smooth, smooth_ema, smooth_seeded


def test_robust_smooth_of_50_points_keeps_a_pair_through_a_3_point_median():
    # n = 50: k = 50 // 33 = 1 (a median of 3 keeps two adjacent 1s), h = 50 // 20 = 2
    # (weights 1, 2, 3, 2, 1 over 9)
    y = np.zeros(50)
    y[20] = y[21] = 1.0
    want = np.zeros(50)
    want[18:24] = np.array([1, 3, 5, 5, 3, 1]) / 9
    np.testing.assert_allclose(robust_smooth(y), want, rtol=1e-15, atol=0)


def test_robust_smooth_median_removes_a_lone_spike_and_the_mean_is_triangular():
    # width=2: h = 2, k = 1; the spike at index 2 is no median of 3, the step is kept
    y = np.array([0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    # the half-width shrinks to what fits at each end: 0 at the ends, 1 next to them
    want = np.array([0, 0, 0, 0, 1 / 9, 3 / 9, 6 / 9, 8 / 9, 1.0, 1.0])
    np.testing.assert_allclose(robust_smooth(y, width=2), want, rtol=1e-15, atol=0)


def test_noise_level_is_1_4826_times_the_median_absolute_deviation():
    losses = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert noise_level(losses, [1.0] * 5) == 2.0 * 1.4826  # |deviations| 0, 1, 2, 3, 4
    assert noise_level([], []) == 0.0
    assert noise_level([1.0, 1.5], [1.0, 1.0]) == pytest.approx(0.25 * 1.4826, rel=1e-15)


def test_robust_smooth_width_2_keeps_a_pair_through_a_3_point_median():
    # width=2: h=2 and k=1, a 3-point median that keeps the pair; the triangular mean of
    # half-width 2 (weights 1, 2, 3, 2, 1) then spreads it
    y = [0.0, 0.0, 0.0, 5.0, 5.0, 0.0, 0.0, 0.0]
    out = robust_smooth(y, width=2)
    assert out == pytest.approx([0.0, 0.0, 15 / 9, 25 / 9, 25 / 9, 15 / 9, 0.0, 0.0], abs=1e-12)


def test_robust_smooth_of_60_points_uses_a_3_point_median_and_half_width_3():
    # n = 60: k = 60 // 33 = 1 (a median of 3 keeps two adjacent 1s), h = 60 // 20 = 3
    # (weights 1, 2, 3, 4, 3, 2, 1 over 16)
    y = np.zeros(60)
    y[30] = y[31] = 1.0
    want = np.zeros(60)
    want[27:35] = np.array([1, 3, 5, 7, 7, 5, 3, 1]) / 16
    np.testing.assert_allclose(robust_smooth(y), want, rtol=1e-15, atol=0)


def test_robust_smooth_of_3_points_takes_the_median_and_the_mean():
    # n = 3: k = h = 1; the median of what fits, 4.5 at the ends, then the middle's mean
    # (4.5 + 2 * 0 + 4.5) / 4; the ends keep their median (no room for a window)
    assert robust_smooth([0.0, 9.0, 0.0]).tolist() == [4.5, 2.25, 4.5]


def test_robust_smooth_width_0_returns_the_losses_as_they_are():
    y = np.array([0.0, 9.0, 0.0, 1.0, 5.0])
    out = robust_smooth(y, width=0)
    assert out.tolist() == y.tolist() and out is not y


def test_robust_smooth_width_4_uses_a_5_point_median():
    # width=4: k = 4 // 2 = 2, a median of 5 removes a pair that a median of 3 keeps
    y = np.zeros(20)
    y[9] = y[10] = 1.0
    assert robust_smooth(y, width=4).tolist() == [0.0] * 20


def test_robust_smooth_of_2_points_returns_them_as_they_are():
    # too few points for a median of 3 or a centred mean: the losses unchanged
    assert robust_smooth([0.0, 4.0]).tolist() == [0.0, 4.0]
    assert robust_smooth([0.0, 4.0], width=2).tolist() == [0.0, 4.0]


def test_robust_smooth_width_3_keeps_a_pair_through_a_3_point_median():
    # width=3: k = 3 // 2 = 1 (a median of 3 keeps two adjacent 1s), then the triangular
    # mean of half-width 3 (weights 1, 2, 3, 4, 3, 2, 1 over 16)
    y = np.zeros(20)
    y[9] = y[10] = 1.0
    want = np.zeros(20)
    want[6:14] = np.array([1, 3, 5, 7, 7, 5, 3, 1]) / 16
    np.testing.assert_allclose(robust_smooth(y, width=3), want, rtol=1e-15, atol=0)


def test_ema_defaults_are_beta_0_9_and_smooth_f_0_05():
    # bias-corrected: 0.1 * 4 / 0.1, then (0.9 * 0.4 + 0.1 * 2) / (1 - 0.81)
    assert smooth_ema([4.0, 2.0]).tolist() == pytest.approx([4.0, 0.56 / 0.19], rel=1e-15)
    # seeded with the first loss: 4, then 0.05 * 2 + 0.95 * 4
    assert smooth_seeded([4.0, 2.0]).tolist() == pytest.approx([4.0, 3.9], rel=1e-15)


@pytest.mark.parametrize(
    ("smooth", "keyword", "value", "said"),
    [
        (smooth_ema, "beta", 1.0, r"beta must be in \[0\.0, 1\.0\), got 1\.0"),
        (smooth_ema, "beta", -0.1, r"beta must be in \[0\.0, 1\.0\), got -0\.1"),
        (smooth_seeded, "smooth_f", 0.0, r"smooth_f must be in \(0\.0, 1\.0\], got 0\.0"),
        (smooth_seeded, "smooth_f", 1.5, r"smooth_f must be in \(0\.0, 1\.0\], got 1\.5"),
    ],
)
def test_the_emas_refuse_a_factor_out_of_range_naming_it(smooth, keyword, value, said):
    with pytest.raises(ValueError, match=rf"^{said}$"):
        smooth([4.0, 2.0, 3.0], **{keyword: value})
