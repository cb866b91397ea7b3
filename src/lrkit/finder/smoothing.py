"""Smoothing of range-test curves: the bias-corrected EMA (what fastai plots and its rules
read), torch-lr-finder's EMA seeded with the first loss, and the zero-lag robust smoothing
the default rule reads."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .. import _validate as V

__all__ = ["FloatArray", "noise_level", "robust_smooth", "smooth_ema", "smooth_seeded"]

FloatArray = npt.NDArray[np.float64]


def smooth_ema(losses: npt.ArrayLike, *, beta: float = 0.9) -> FloatArray:
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


def smooth_seeded(losses: npt.ArrayLike, *, smooth_f: float = 0.05) -> FloatArray:
    """torch-lr-finder's smoothing (``range_test(smooth_f=0.05)``): ``s_0 = x_0``,
    ``s_i = smooth_f x_i + (1 - smooth_f) s_{i-1}``, an EMA seeded with the first loss and
    not bias-corrected."""
    smooth_f = V.in_range("smooth_f", smooth_f, 0.0, 1.0, low_open=True)
    x = np.asarray(losses, dtype=np.float64)
    out = np.empty_like(x)
    for i, v in enumerate(x):
        out[i] = float(v) if i == 0 else smooth_f * float(v) + (1.0 - smooth_f) * out[i - 1]
    return out


def _running_median(y: FloatArray, k: int) -> FloatArray:
    n = len(y)
    if k <= 0 or n < 3:
        return np.array(y, dtype=np.float64)  # a copy
    out = np.empty_like(y)
    for i in range(n):
        lo, hi = max(0, i - k), min(n, i + k + 1)
        out[i] = np.median(y[lo:hi])
    return out


def _centred_mean(y: FloatArray, h: int) -> FloatArray:
    """Triangular-weighted centred moving average, windows shrinking symmetrically at edges."""
    n = len(y)
    if h <= 0 or n < 3:
        return np.array(y, dtype=np.float64)  # a copy
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


def robust_smooth(losses: npt.ArrayLike, *, width: int | None = None) -> FloatArray:
    """Zero-lag smoothing: a running median over ``2k+1`` points, then a centred triangular
    mean of half-width ``h``. By default ``k = max(1, n // 33)`` and ``h = max(1, n // 20)``
    (``n`` points); ``width`` sets ``h`` (and ``k = max(1, width // 2)``) instead."""
    y = np.asarray(losses, dtype=np.float64)
    n = len(y)
    if width is None:
        k, h = max(1, n // 33), max(1, n // 20)
    else:
        h = V.integer("width", width, 0)
        k = max(1, h // 2) if h else 0
    return _centred_mean(_running_median(y, k), h)


def noise_level(losses: npt.ArrayLike, smoothed: npt.ArrayLike) -> float:
    """Robust standard deviation of ``losses`` around ``smoothed`` (1.4826 x the median
    absolute deviation)."""
    x = np.asarray(losses, dtype=np.float64)
    s = np.asarray(smoothed, dtype=np.float64)
    if len(x) == 0:
        return 0.0
    return float(np.median(np.abs(x - s))) * 1.4826
