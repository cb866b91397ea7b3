"""optax's schedules and contrib.reduce_on_plateau, reproduced by lrkit expressions."""

import numpy as np
import pytest

optax = pytest.importorskip("optax")
jnp = pytest.importorskip("jax.numpy")

from lrkit import schedules as S  # noqa: E402
from lrkit.feedback import ReduceOnPlateau  # noqa: E402

STEPS = np.arange(0, 60)


@pytest.mark.parametrize(
    "init,end,power,steps,begin",
    [
        (25.0, 10.0, 2, 10, 0),
        (10.0, 20.0, 0.5, 13, 0),
        (30.0, 10.0, 2, 10, 4),
        (1.0, 0.01, 3, 40, 7),
    ],
)
def test_polynomial_schedule_nonzero_end_and_power(init, end, power, steps, begin):
    ref = np.asarray(
        optax.polynomial_schedule(init, end, power, steps, transition_begin=begin)(STEPS),
        dtype=np.float64,
    )
    poly = S.polynomial(init, total_steps=steps, power=power, end_lr=end)
    ours = S.join([S.constant(init), poly], boundaries=[begin]) if begin else poly
    assert S.parse(str(ours)) == ours
    np.testing.assert_allclose(ours.values(STEPS), ref, rtol=2e-6)


def _optax_scales(values, patience, cooldown, atol):
    import jax

    tx = optax.contrib.reduce_on_plateau(
        factor=0.5, patience=patience, cooldown=cooldown, rtol=0.0, atol=atol
    )
    params = {"w": jnp.zeros(())}

    def body(state, v):
        _, state = tx.update(params, state, params, value=v)
        return state, state.scale

    _, scales = jax.lax.scan(body, tx.init(params), jnp.asarray(values, jnp.float32))
    return [float(x) for x in np.asarray(scales)]


@pytest.mark.parametrize("seed,patience,cooldown", [(0, 1, 0), (1, 2, 1), (2, 3, 2), (3, 1, 3)])
def test_optax_reduce_on_plateau_timing(seed, patience, cooldown):
    # optax cuts on the patience-th bad value, one update earlier than PyTorch's timing
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.choice([-0.5, -0.25, 0.0, 0.0, 0.25, 0.5], size=50)) + 40.0
    ref = _optax_scales(values, patience, cooldown, 0.25)
    ours = ReduceOnPlateau(
        factor=0.5, patience=patience - 1, cooldown=cooldown, threshold=0.25, threshold_mode="abs"
    )
    assert [ours.update(v) for v in values] == ref
    assert min(ref) < 1.0


def test_join_schedules_counts_each_segment_from_zero():
    ref = optax.join_schedules(
        [optax.linear_schedule(0.0, 0.1, 10), optax.cosine_decay_schedule(0.1, 40, alpha=0.1)],
        [10],
    )
    ours = S.join(
        [S.linear(0.0, end_lr=0.1, total_steps=10), S.cosine(0.1, total_steps=40, eta_min=0.01)],
        boundaries=[10],
    )
    np.testing.assert_allclose(ours.values(STEPS), np.asarray(ref(STEPS)), rtol=2e-6, atol=1e-9)


BIG = np.concatenate([np.arange(0, 400), [999, 1000, 1001, 10**5, 10**7, 2**31 - 1]])


def _optax_values(fn):
    import jax

    return np.asarray(jax.vmap(fn)(jnp.asarray(BIG, jnp.int32)), dtype=np.float64)


@pytest.mark.parametrize(
    "name",
    [
        "exponential_decay",
        "exponential_decay staircase",
        "exponential_decay begin end",
        "piecewise_constant_schedule",
        "piecewise_constant_schedule equal scales",
        "warmup_cosine_decay_schedule",
        "warmup_exponential_decay_schedule",
        "cosine_onecycle_schedule",
        "linear_onecycle_schedule",
        "sgdr_schedule",
        "sgdr_schedule as cosine_restarts",
        "sgdr_schedule as cosine_restarts with a fractional T_mult",
    ],
)
def test_optax_schedule_rows_of_the_parity_page(name):
    """Each row of docs/parity.md's optax table, at its boundaries and at large steps."""
    init, peak, end = 0.01, 0.1, 1e-3
    # sgdr_schedule's cycles: (init, peak, warmup steps, steps, end)
    cycles = [
        (0.0, peak, 5, 50, end),
        (init, peak / 2, 0, 30, 0.0),
        (init, peak / 4, 10, 40, end / 10),
    ]
    rows = {
        "exponential_decay": (
            optax.exponential_decay(peak, 10, 0.5),
            S.exponential(peak, gamma=0.5 ** (1 / 10)),
        ),
        "exponential_decay staircase": (
            optax.exponential_decay(peak, 10, 0.5, staircase=True),
            S.step(peak, step_size=10, gamma=0.5),
        ),
        "exponential_decay begin end": (
            optax.exponential_decay(peak, 10, 0.5, transition_begin=7, end_value=end),
            S.join(
                [S.constant(peak), S.clamp(S.exponential(peak, gamma=0.5 ** (1 / 10)), min_lr=end)],
                boundaries=[7],
            ),
        ),
        "piecewise_constant_schedule": (
            optax.piecewise_constant_schedule(peak, {10: 0.5, 100: 0.2}),
            S.piecewise_constant([9, 99], values=[peak, peak * 0.5, peak * 0.5 * 0.2]),
        ),
        "piecewise_constant_schedule equal scales": (
            optax.piecewise_constant_schedule(peak, {10: 0.5, 100: 0.5}),
            S.multistep(peak, milestones=[10, 100], gamma=0.5),
        ),
        "warmup_cosine_decay_schedule": (
            optax.warmup_cosine_decay_schedule(init, peak, 10, 100, end),
            S.join(
                [
                    S.warmup(init, end_lr=peak, warmup_steps=10),
                    S.cosine(peak, total_steps=90, eta_min=end),
                ],
                boundaries=[10],
            ),
        ),
        "warmup_exponential_decay_schedule": (
            optax.warmup_exponential_decay_schedule(init, peak, 10, 20, 0.5),
            S.join(
                [
                    S.warmup(init, end_lr=peak, warmup_steps=10),
                    S.exponential(peak, gamma=0.5 ** (1 / 20)),
                ],
                boundaries=[10],
            ),
        ),
        "cosine_onecycle_schedule": (
            optax.cosine_onecycle_schedule(1000, peak, 0.3, 25.0, 1e4),
            S.join(
                [
                    S.warmup(peak / 25.0, end_lr=peak, warmup_steps=300, mode="cosine"),
                    S.cosine(peak, total_steps=700, eta_min=peak / 25.0 / 1e4),
                ],
                boundaries=[300],
            ),
        ),
        "linear_onecycle_schedule": (
            optax.linear_onecycle_schedule(1000, peak, 0.3, 0.85, 25.0, 1e4),
            S.join(
                [
                    S.warmup(peak / 25.0, end_lr=peak, warmup_steps=300),
                    S.linear(peak, end_lr=peak / 25.0, total_steps=550),
                    S.linear(peak / 25.0, end_lr=peak / 25.0 / 1e4, total_steps=150),
                ],
                boundaries=[300, 850],
            ),
        ),
        "sgdr_schedule": (
            optax.sgdr_schedule([dict(zip(_CYCLE, c)) for c in cycles]),
            S.join([_warmup_cosine(*c) for c in cycles], boundaries=[50, 80]),
        ),
        # no warmups, one end value, cycles 20 * 2**i long whose height above it halves
        "sgdr_schedule as cosine_restarts": (
            optax.sgdr_schedule(
                [
                    dict(zip(_CYCLE, (0.0, end + (peak - end) * 0.5**i, 0, 20 * 2**i, end)))
                    for i in range(4)
                ]
            ),
            S.join(
                [
                    S.cosine_restarts(peak, T_0=20, T_mult=2, eta_min=end, m_mul=0.5),
                    S.constant(end),
                ],
                boundaries=[20 + 40 + 80 + 160],
            ),
        ),
        # cycles 16 * 1.5**i long (16, 24, 36, 54: each a whole number of steps)
        "sgdr_schedule as cosine_restarts with a fractional T_mult": (
            optax.sgdr_schedule(
                [
                    dict(zip(_CYCLE, (0.0, end + (peak - end) * 0.5**i, 0, 16 * 1.5**i, end)))
                    for i in range(4)
                ]
            ),
            S.join(
                [
                    S.cosine_restarts(peak, T_0=16, T_mult=1.5, eta_min=end, m_mul=0.5),
                    S.constant(end),
                ],
                boundaries=[16 + 24 + 36 + 54],
            ),
        ),
    }
    ref_fn, ours = rows[name]
    assert S.parse(str(ours)) == ours
    # optax computes in float32: its rounding, relative, and absolute near a value of 0
    np.testing.assert_allclose(ours.values(BIG), _optax_values(ref_fn), rtol=1e-5, atol=1e-9)


#: warmup_cosine_decay_schedule's arguments, which sgdr_schedule takes for each cycle
_CYCLE = ("init_value", "peak_value", "warmup_steps", "decay_steps", "end_value")


def _warmup_cosine(init, peak, w, n, end):
    """The parity page's warmup_cosine_decay_schedule(init, peak, w, n, end)."""
    return S.join(
        [
            S.warmup(init, end_lr=peak, warmup_steps=w),
            S.cosine(peak, total_steps=n - w, eta_min=end),
        ],
        boundaries=[w],
    )


@pytest.mark.parametrize(
    "T,pct_start,pct_final,div,final_div",
    [(100, 0.3, 0.85, 25.0, 1e4), (37, 0.25, 0.5, 10.0, 100.0), (300, 0.3, 0.99, 25.0, 1e4)],
)
def test_linear_onecycle_schedule_for_other_phases(T, pct_start, pct_final, div, final_div):
    k1, k2, a = int(pct_start * T), int(pct_final * T), 1.0 / div
    ref = _optax_values(
        optax.linear_onecycle_schedule(T, 1.0, pct_start, pct_final, div, final_div)
    )
    ours = S.join(
        [
            S.warmup(a, end_lr=1.0, warmup_steps=k1),
            S.linear(1.0, end_lr=a, total_steps=k2 - k1),
            S.linear(a, end_lr=a / final_div, total_steps=T - k2),
        ],
        boundaries=[k1, k2],
    )
    np.testing.assert_allclose(ours.values(BIG), ref, rtol=1e-5, atol=1e-9)


def test_optax_onecycle_is_not_pytorchs():
    # lrkit's onecycle is PyTorch's OneCycleLR (phases end at pct * T - 1 and T - 1), not
    # optax's cosine_onecycle_schedule (phases end at int(pct * T) and T)
    ref = _optax_values(optax.cosine_onecycle_schedule(1000, 0.1, 0.3, 25.0, 1e4))
    ours = S.onecycle(0.1, total_steps=1000).values(BIG)
    assert ours[299] == 0.1 and ref[300] == pytest.approx(0.1, rel=1e-6)
    assert not np.allclose(ours, ref, rtol=1e-3)
    # nor is optax's linear_onecycle_schedule PyTorch's three-phase linear one (whose second
    # phase ends at 2 * pct * T - 2: pct_final = 2 * pct_start is still a step off)
    ref = _optax_values(optax.linear_onecycle_schedule(1000, 0.1, 0.3, 0.6, 25.0, 1e4))
    ours = S.onecycle(0.1, total_steps=1000, anneal_strategy="linear", three_phase=True)
    assert ours.values(BIG)[299] == 0.1 and ref[300] == pytest.approx(0.1, rel=1e-6)
    assert not np.allclose(ours.values(BIG), ref, rtol=1e-3)


def test_the_warmup_rows_hold_with_a_warmup_of_0_steps():
    """optax takes a warmup of 0 steps (warmup_cosine_decay_schedule with warmup_steps=0,
    the onecycle schedules whose int(pct * T) is 0): so do the mappings, a warmup of 0 steps
    being end_lr from step 0."""
    steps = np.arange(0, 30)
    cases = [
        (optax.warmup_cosine_decay_schedule(0.0, 1.0, 0, 20, 0.1),
         S.join([S.warmup(0.0, end_lr=1.0, warmup_steps=0),
                 S.cosine(1.0, total_steps=20, eta_min=0.1)], boundaries=[0])),
        (optax.warmup_exponential_decay_schedule(0.0, 1.0, 0, 5, 0.5),
         S.join([S.warmup(0.0, end_lr=1.0, warmup_steps=0),
                 S.exponential(1.0, gamma=0.5 ** (1 / 5))], boundaries=[0])),
        (optax.cosine_onecycle_schedule(20, 1.0, 0.04, 25.0, 1e4),
         S.join([S.warmup(1.0 / 25, end_lr=1.0, warmup_steps=0, mode="cosine"),
                 S.cosine(1.0, total_steps=20, eta_min=1.0 / 25 / 1e4)], boundaries=[0])),
        (optax.linear_onecycle_schedule(20, 1.0, 0.04, 0.5, 25.0, 1e4),
         S.join([S.warmup(1.0 / 25, end_lr=1.0, warmup_steps=0),
                 S.linear(1.0, end_lr=1.0 / 25, total_steps=10),
                 S.linear(1.0 / 25, end_lr=1.0 / 25 / 1e4, total_steps=10)],
                boundaries=[0, 10])),
        (optax.sgdr_schedule([dict(zip(_CYCLE, (0.0, 1.0, 0, 10, 0.1)))] * 2),
         S.join([S.cosine_restarts(1.0, T_0=10, eta_min=0.1), S.constant(0.1)],
                boundaries=[20])),
    ]  # fmt: skip
    for ref, ours in cases:
        want = np.asarray([float(ref(int(k))) for k in steps])
        np.testing.assert_allclose(ours.values(steps), want, rtol=1e-5, atol=1e-9)
        assert [ours(int(k)) for k in steps] == ours.values(steps).tolist()


@pytest.mark.parametrize(
    "ours",
    [
        S.cosine_restarts(0.1, T_0=7.5, T_mult=1.5, eta_min=1e-3, m_mul=0.8),
        S.cosine_restarts(0.1, T_0=10, T_mult=2.5, m_mul=0.5),
        S.cosine_restarts(0.1, T_0=12.5),
    ],
    ids=str,
)
def test_a_fractional_restarts_formula_traced_with_jax(ours):
    """values(t, xp=jnp) under jit: the float64 formula to float32's rounding (cycles that
    start on dyadic steps, which float32 places exactly too)."""
    import jax

    # steps float32 holds exactly (it rounds 2**31 - 1 to 2**31, a multiple of 12.5)
    steps = np.concatenate([np.arange(0, 2000), [10**5, 10**7 + 1, 2**24 - 3]])
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    traced = jax.jit(lambda t: ours.values(t, xp=jnp))(jnp.asarray(steps, dtype))
    np.testing.assert_allclose(
        np.asarray(traced, np.float64), ours.values(steps), rtol=2e-5, atol=1e-8
    )
