"""fastai's fit_one_cycle and timm's CosineLRScheduler, reproduced by the lrkit expressions
of the parity page (docs/parity.md). Neither library is a dependency: each reference below is
its source's arithmetic (fastai 2.7 callback/schedule.py, timm scheduler/cosine_lr.py)."""

import math

import numpy as np
import pytest

from lrkit import schedules as S

torch = pytest.importorskip("torch")


def _fastai_combined_cos(pct, start, middle, end):
    """fastai's combined_cos: combine_scheds([pct, 1 - pct], [SchedCos(start, middle),
    SchedCos(middle, end)]), its boundaries a float32 tensor as fastai builds them."""

    def sched_cos(a, b):
        return lambda pos: a + (1 + math.cos(math.pi * (1 - pos))) * (b - a) / 2

    scheds = [sched_cos(start, middle), sched_cos(middle, end)]
    pcts = torch.cumsum(torch.tensor([0, pct, 1 - pct]), 0)

    def inner(pos):
        idx = min(int((pos >= pcts).nonzero().max()), len(pcts) - 2)
        actual = (pos - pcts[idx]) / (pcts[idx + 1] - pcts[idx])
        return scheds[idx](actual.item())

    return inner


@pytest.mark.parametrize(
    ("n_iter", "pct", "div", "div_final"),
    [(100, 0.25, 25.0, 1e5), (40, 0.3, 10.0, 1e4), (64, 0.5, 25.0, 1e5), (10, 0.1, 5.0, 1e2)],
)
def test_fit_one_cycle_is_a_join_of_a_cosine_warmup_and_a_cosine(n_iter, pct, div, div_final):
    """fit_one_cycle(n_epoch, lr_max, div, div_final, pct_start) over T = n_epoch * batches
    steps, LR and momentum (moms=(0.95, 0.85, 0.95)), with k = pct_start * T whole."""
    lr_max, k = 0.01, round(pct * n_iter)
    assert k == pct * n_iter
    fa_lr = _fastai_combined_cos(pct, lr_max / div, lr_max, lr_max / div_final)
    fa_mom = _fastai_combined_cos(pct, 0.95, 0.85, 0.95)
    lr = S.join(
        [
            S.warmup(lr_max / div, end_lr=lr_max, warmup_steps=k, mode="cosine"),
            S.cosine(lr_max, total_steps=n_iter - k, eta_min=lr_max / div_final),
        ],
        boundaries=[k],
    )
    mom = S.join(
        [
            S.warmup(0.95, end_lr=0.85, warmup_steps=k, mode="cosine"),
            S.cosine(0.85, total_steps=n_iter - k, eta_min=0.95),
        ],
        boundaries=[k],
    )
    steps = np.arange(n_iter)
    # fastai's position within a phase is a float32 tensor: equal to float32's rounding
    # (of the position, so relative to the peak where the values are near 0)
    want = [fa_lr(i / n_iter) for i in steps]
    np.testing.assert_allclose(lr.values(steps), want, rtol=1e-6, atol=1e-7 * lr_max)
    np.testing.assert_allclose(mom.values(steps), [fa_mom(i / n_iter) for i in steps], rtol=1e-6)


def _timm_cosine(t, *, base, t_initial, lr_min=0.0, cycle_mul=1.0, cycle_decay=1.0,
                 cycle_limit=1, warmup_t=0, warmup_lr_init=0.0, warmup_prefix=False):  # fmt: skip
    """timm's CosineLRScheduler._get_lr at step t (k_decay=1)."""
    if t < warmup_t:
        return warmup_lr_init + t * (base - warmup_lr_init) / warmup_t
    if warmup_prefix:
        t = t - warmup_t
    if cycle_mul != 1:
        i = math.floor(math.log(1 - t / t_initial * (1 - cycle_mul), cycle_mul))
        t_i = cycle_mul**i * t_initial
        t_curr = t - (1 - cycle_mul**i) / (1 - cycle_mul) * t_initial
    else:
        i = t // t_initial
        t_i = t_initial
        t_curr = t - (t_initial * i)
    if i >= cycle_limit:
        return lr_min
    lr_max = base * cycle_decay**i
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * t_curr / t_i))


@pytest.mark.parametrize(
    ("kwargs", "ours"),
    [
        (  # timm's default cycle_limit=1: one cosine, then lr_min held
            dict(t_initial=100, lr_min=1e-3),
            S.cosine(0.1, total_steps=100, eta_min=1e-3),
        ),
        (
            dict(t_initial=100, lr_min=1e-3, warmup_t=10, warmup_lr_init=1e-4, warmup_prefix=True),
            S.with_warmup(
                S.cosine(0.1, total_steps=100, eta_min=1e-3), warmup_steps=10, start_lr=1e-4
            ),  # fmt: skip
        ),
        (
            dict(t_initial=20, cycle_mul=2.0, cycle_decay=0.5, cycle_limit=100),
            S.cosine_restarts(0.1, T_0=20, T_mult=2, m_mul=0.5),
        ),
        (
            dict(t_initial=20, lr_min=0.01, cycle_mul=2.0, cycle_limit=100),
            S.cosine_restarts(0.1, T_0=20, T_mult=2, eta_min=0.01),
        ),
        (  # after cycle_limit cycles (20 + 40 + 80 steps): lr_min
            dict(t_initial=20, lr_min=0.01, cycle_mul=2.0, cycle_limit=3),
            S.join(
                [S.cosine_restarts(0.1, T_0=20, T_mult=2, eta_min=0.01), S.constant(0.01)],
                boundaries=[140],
            ),  # fmt: skip
        ),
        (
            dict(t_initial=30, lr_min=0.002, cycle_limit=4),
            S.join(
                [S.cosine_restarts(0.1, T_0=30, eta_min=0.002), S.constant(0.002)], boundaries=[120]
            ),  # fmt: skip
        ),
    ],
)
def test_timm_cosine_scheduler_rows(kwargs, ours):
    steps = np.arange(400)
    want = [_timm_cosine(int(t), base=0.1, **kwargs) for t in steps]
    np.testing.assert_allclose(ours.values(steps), want, rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose([ours(int(t)) for t in steps], want, rtol=1e-12, atol=1e-18)


def test_timm_cycle_decay_with_a_floor_is_not_m_mul():
    """timm's cycle_decay scales the peak (lr * g**i), m_mul the height above the floor:
    with lr_min > 0 they differ, as the parity page says."""
    want = _timm_cosine(20, base=0.1, t_initial=20, lr_min=0.01, cycle_decay=0.5, cycle_limit=9)
    ours = S.cosine_restarts(0.1, T_0=20, eta_min=0.01, m_mul=0.5)(20)
    assert want == pytest.approx(0.05) and ours == pytest.approx(0.055)


def test_timm_step_scheduler_is_step():
    """timm's StepLRScheduler._get_lr: ``base * decay_rate ** (t // decay_t)``."""
    steps = np.arange(200)
    want = [0.1 * 0.5 ** (int(t) // 30) for t in steps]
    np.testing.assert_allclose(S.step(0.1, step_size=30, gamma=0.5).values(steps), want,
                               rtol=1e-15)  # fmt: skip


@pytest.mark.parametrize("decay_t", [[30, 80], [0, 5, 5, 120], [1, 2]])
def test_timm_multistep_scheduler_is_multistep_a_step_earlier(decay_t):
    """timm's MultiStepLRScheduler._get_lr: ``base * decay_rate ** bisect_right(decay_t,
    t + 1)``: a milestone m applies from step m - 1 (a milestone 0 from step 0)."""
    import bisect

    steps = np.arange(200)
    want = [0.1 * 0.5 ** bisect.bisect_right(decay_t, int(t) + 1) for t in steps]
    ours = S.multistep(0.1, milestones=[max(m - 1, 0) for m in decay_t], gamma=0.5)
    np.testing.assert_allclose(ours.values(steps), want, rtol=1e-15)
    with pytest.raises(TypeError) as info:
        S.multistep(0.1, decay_t=decay_t, decay_rate=0.5)
    assert str(info.value).endswith(
        "for decay_rate use gamma, for decay_t use milestones (= [max(m - 1, 0) for m in "
        "decay_t]: timm's MultiStepLRScheduler applies a milestone a step before PyTorch's "
        "MultiStepLR)"
    )


def test_timm_arguments_are_answered_with_the_expression_that_gives_them():
    with pytest.raises(TypeError) as info:
        S.cosine_restarts(0.1, t_initial=20, cycle_mul=2, cycle_limit=3)
    assert str(info.value).endswith(
        "timm's CosineLRScheduler(t_initial=n, lr_min=m) is cosine(lr, n, eta_min=m) (its "
        "cycle_limit=1); with cycle_mul=r, cycle_decay=g, cycle_limit=c it is "
        "join([cosine_restarts(lr, n, r, m, g), constant(m)], [n * (1 + r + ... + r ** "
        "(c - 1))]) where m = 0 or g = 1 (timm's g scales the peak, m_mul the height above "
        "m); warmup_t=w, warmup_lr_init=a with warmup_prefix=True is with_warmup(..., "
        "warmup_steps=w, start_lr=a) (warmup_prefix=False and k_decay have no counterpart) "
        "(these forms are spec strings: lrkit.schedules.parse reads them once each arithmetic "
        "expression is worked out into a number; in Python, give the arguments after the first "
        "by keyword)"
    )
    with pytest.raises(TypeError, match=r"for lr_min use eta_min$"):
        S.cosine(0.1, total_steps=10, lr_min=0.001)
    with pytest.raises(TypeError, match=r"for decay_rate use gamma, for decay_t use step_size$"):
        S.step(0.1, decay_t=30, decay_rate=0.5)
