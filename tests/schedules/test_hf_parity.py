"""Every ``TrainingArguments.lr_scheduler_type`` has an lrkit schedule with the same values
(docs/hf.md's table): stepped through ``transformers.get_scheduler`` as the Trainer does."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from lrkit import schedules as S

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

LR = 3e-4
WARMUP = 10
TOTAL = 100

CASES = [
    (
        "linear",
        {},
        S.with_warmup(S.linear(LR, end_lr=0.0, total_steps=TOTAL - WARMUP), warmup_steps=WARMUP),
    ),
    ("cosine", {}, S.with_warmup(S.cosine(LR, total_steps=TOTAL - WARMUP), warmup_steps=WARMUP)),
    (
        "cosine_with_restarts",
        {"num_cycles": 3},
        S.with_warmup(S.cosine_restarts(LR, T_0=(TOTAL - WARMUP) / 3), warmup_steps=WARMUP),
    ),
    (
        "polynomial",
        {"lr_end": 1e-6, "power": 2.0},
        S.with_warmup(
            S.polynomial(LR, total_steps=TOTAL - WARMUP, end_lr=1e-6, power=2.0),
            warmup_steps=WARMUP,
        ),
    ),
    ("constant", {}, S.constant(LR)),
    ("constant_with_warmup", {}, S.with_warmup(S.constant(LR), warmup_steps=WARMUP)),
    ("inverse_sqrt", {}, S.inverse_sqrt(LR, warmup_steps=WARMUP)),
    (
        "cosine_with_min_lr",
        {"min_lr_rate": 0.1},
        S.with_warmup(
            S.cosine(LR, total_steps=TOTAL - WARMUP, eta_min=0.1 * LR), warmup_steps=WARMUP
        ),
    ),
    (
        "warmup_stable_decay",
        {"num_decay_steps": 20, "min_lr_ratio": 0.1},
        S.wsd(
            LR,
            total_steps=TOTAL,
            warmup_steps=WARMUP,
            decay_steps=20,
            decay="cosine",
            min_lr=0.1 * LR,
            init_lr=0.1 * LR,
        ),
    ),
    (
        "warmup_stable_decay",
        {"num_decay_steps": 20, "decay_type": "1-sqrt"},
        S.wsd(LR, total_steps=TOTAL, warmup_steps=WARMUP, decay_steps=20, decay="1-sqrt"),
    ),
    (
        "warmup_stable_decay",
        {"num_decay_steps": 30, "decay_type": "linear"},
        S.wsd(LR, total_steps=TOTAL, warmup_steps=WARMUP, decay_steps=30, decay="linear"),
    ),
    (
        "warmup_stable_decay",
        {"num_decay_steps": 20, "warmup_type": "cosine", "min_lr_ratio": 0.1},
        S.wsd(
            LR,
            total_steps=TOTAL,
            warmup_steps=WARMUP,
            decay_steps=20,
            decay="cosine",
            warmup="cosine",
            min_lr=0.1 * LR,
            init_lr=0.1 * LR,
        ),  # fmt: skip
    ),
    (
        "warmup_stable_decay",
        {"num_decay_steps": 20, "warmup_type": "1-sqrt", "decay_type": "1-sqrt"},
        S.wsd(
            LR,
            total_steps=TOTAL,
            warmup_steps=WARMUP,
            decay_steps=20,
            decay="1-sqrt",
            warmup="1-sqrt",
        ),  # fmt: skip
    ),
    (  # no decay phase: min_lr from the run's end on
        "warmup_stable_decay",
        {"num_decay_steps": 0, "min_lr_ratio": 0.2},
        S.wsd(
            LR,
            total_steps=TOTAL,
            warmup_steps=WARMUP,
            decay_steps=0,
            min_lr=0.2 * LR,
            init_lr=0.2 * LR,
        ),  # fmt: skip
    ),
]


def _hf_run(
    name: str, kwargs: dict, *, warmup: int = WARMUP, total: int = TOTAL, steps: int | None = None
) -> tuple[np.ndarray, Any]:
    """The LR of each of the first ``steps`` steps (``total``, the run's, by default) under
    transformers' scheduler ``name``, and the scheduler, stepped after every step but the
    last."""
    steps = total if steps is None else steps
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=LR)
    sched = transformers.get_scheduler(
        name,
        opt,
        num_warmup_steps=warmup,
        num_training_steps=total,
        scheduler_specific_kwargs=kwargs,
    )
    out = []
    for i in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if i < steps - 1:
            sched.step()
    return np.array(out), sched


@pytest.mark.parametrize(
    ("name", "kwargs", "schedule"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_lr_scheduler_type_has_an_lrkit_schedule_with_its_values(name, kwargs, schedule) -> None:
    hf, _ = _hf_run(name, kwargs)
    steps = np.arange(TOTAL)
    # the two evaluate the same formula in another order: equal to a few units in the last place
    # (relative to the peak near a value of 0, where a cosine's last steps are)
    np.testing.assert_allclose(schedule.values(steps), hf, rtol=1e-12, atol=1e-15 * LR)
    np.testing.assert_allclose([schedule(int(t)) for t in steps], hf, rtol=1e-12, atol=1e-15 * LR)
    # and the spec string of each reproduces it
    np.testing.assert_array_equal(S.parse(schedule.spec).values(steps), schedule.values(steps))


@pytest.mark.parametrize(
    ("warmup", "total", "cycles"),
    [
        (10, 110, 3),  # cycles of 100 / 3 steps
        (10, 28, 14),  # 18 / 14: steps 9 and 18 of the decay are multiples, 9 / T_0 < 7
        (10, 60, 22),  # 50 / 22: step 25 is the 11th multiple
        (0, 54, 21),
        (7, 107, 6),  # 100 / 6: 50 is the 3rd multiple
        (3, 20, 13),  # cycles of 17 / 13 steps, a little over 1
    ],
)
def test_cosine_with_restarts_whose_cycles_do_not_divide_the_decay(warmup, total, cycles) -> None:
    # docs/hf.md: T_0 = (N - W) / k, a fraction of a step when k does not divide N - W
    hf, _ = _hf_run("cosine_with_restarts", {"num_cycles": cycles}, warmup=warmup, total=total)
    ours = S.with_warmup(S.cosine_restarts(LR, T_0=(total - warmup) / cycles), warmup_steps=warmup)
    steps = np.arange(total)
    np.testing.assert_allclose(ours.values(steps), hf, rtol=1e-12, atol=1e-15 * LR)
    assert [ours(int(t)) for t in steps] == ours.values(steps).tolist()
    # HF's is 0 from step N on (the scheduler stepped on past the run): the join holds it
    after, _ = _hf_run(
        "cosine_with_restarts", {"num_cycles": cycles}, warmup=warmup, total=total, steps=total + 40
    )
    joined = S.join([ours, S.constant(0.0)], boundaries=[total])
    longer = np.arange(total + 40)
    np.testing.assert_allclose(joined.values(longer), after, rtol=1e-12, atol=1e-15 * LR)
    assert after[total:].tolist() == joined.values(longer)[total:].tolist() == [0.0] * 40
    assert S.parse(str(joined)) == joined


@pytest.mark.parametrize(
    ("warmup", "total", "cycles", "missed"),
    [(0, 50, 50, [29]), (0, 44, 22, [30]), (0, 1000, 50, [580]), (100, 1100, 50, [680])],
)
def test_cosine_with_restarts_where_transformers_rounds_past_a_restart(
    warmup, total, cycles, missed
) -> None:
    """docs/hf.md: with many cycles, transformers' ``(num_cycles * progress) % 1`` can round to
    just below 1 at a step where a cycle ends (29 * 50 / 50 reads 0.99999...); it gives that
    step the cycle's end, 0, where ``cosine_restarts`` restarts at ``lr``. Every other step
    agrees."""
    hf, _ = _hf_run("cosine_with_restarts", {"num_cycles": cycles}, warmup=warmup, total=total)
    ours = S.with_warmup(S.cosine_restarts(LR, T_0=(total - warmup) / cycles), warmup_steps=warmup)
    values = ours.values(np.arange(total))
    differ = np.nonzero(~np.isclose(values, hf, rtol=1e-12, atol=1e-15 * LR))[0].tolist()
    assert differ == missed
    for t in missed:  # a whole number of cycles: a restart, read by HF as the end of one
        assert ((t - warmup) * cycles) % (total - warmup) == 0
        assert hf[t] == 0.0 and values[t] == LR


ALL_WARMUP = [
    ("linear", {}),
    ("cosine", {}),
    ("cosine_with_min_lr", {"min_lr_rate": 0.1}),
    ("cosine_with_restarts", {"num_cycles": 3}),
    ("polynomial", {"lr_end": 1e-6, "power": 2.0}),
    ("constant_with_warmup", {}),
    ("warmup_stable_decay", {"num_decay_steps": 20}),
    ("warmup_stable_decay", {"num_decay_steps": 20, "min_lr_ratio": 0.1}),
]


@pytest.mark.parametrize("warmup", [TOTAL, TOTAL + 1, 2 * TOTAL])
@pytest.mark.parametrize(("name", "kwargs"), ALL_WARMUP)
def test_warmup_of_the_whole_run(name: str, kwargs: dict, warmup: int) -> None:
    # docs/hf.md: with W >= N the run is all warmup, which S.warmup gives (N - W is no length)
    hf, sched = _hf_run(name, kwargs, warmup=warmup)
    if name == "polynomial" and warmup == TOTAL:
        with pytest.raises(ZeroDivisionError):  # HF's decay of N - W = 0 steps, at the N-th step
            sched.step()
    else:
        sched.step()
    start = kwargs.get("min_lr_ratio", 0.0) * LR if name == "warmup_stable_decay" else 0.0
    schedule = S.warmup(start, end_lr=LR, warmup_steps=warmup)
    steps = np.arange(TOTAL)
    np.testing.assert_allclose(schedule.values(steps), hf, rtol=1e-12, atol=1e-15 * LR)
    with pytest.raises(ValueError, match="total_steps must be an integer"):
        S.cosine(LR, total_steps=TOTAL - warmup)


def test_inverse_sqrt_without_warmup_has_transformers_timescale_of_10000() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=LR)
    sched = transformers.get_inverse_sqrt_schedule(opt, num_warmup_steps=0)
    ours = S.inverse_sqrt(LR)
    for t in (0, 1000, 10000, 50000):
        assert ours(t) == pytest.approx(LR * sched.lr_lambdas[0](t), rel=1e-12)
    assert ours(10000) == pytest.approx(LR * math.sqrt(0.5), rel=1e-12)


@pytest.mark.parametrize(("warmup", "decay"), [(WARMUP, 0), (TOTAL, 0), (0, 0), (WARMUP, 1)])
def test_wsd_without_a_decay_phase_is_min_lr_from_the_runs_end_as_hugging_faces(warmup, decay):
    """get_wsd_schedule(num_decay_steps=0): the LR drops to min_lr_ratio * lr once the warmup
    and stable steps are done (a warmup of the whole run included), as wsd(decay_steps=0)."""
    kwargs = {"num_decay_steps": decay, "min_lr_ratio": 0.25, "warmup_type": "cosine"}
    hf, _ = _hf_run("warmup_stable_decay", kwargs, warmup=warmup, steps=TOTAL + 5)
    ours = S.wsd(LR, total_steps=TOTAL, warmup_steps=warmup, decay_steps=decay,
                 min_lr=0.25 * LR, init_lr=0.25 * LR, warmup="cosine")  # fmt: skip
    steps = np.arange(TOTAL + 5)
    np.testing.assert_allclose(ours.values(steps), hf, rtol=1e-12, atol=1e-15 * LR)
    assert ours(TOTAL) == ours(TOTAL + 4) == 0.25 * LR
    assert S.parse(ours.spec) == ours and S.from_dict(ours.to_dict()) == ours


def test_wsd_warmup_of_the_whole_run_needs_decay_steps_said():
    """The default decay (20% of the run) needs a step after the warmup; decay_steps=0 says
    there is none."""
    with pytest.raises(ValueError, match=r"^warmup_steps must be < total_steps \(allowed range"):
        S.wsd(LR, total_steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match=r"^warmup_steps must be <= total_steps \(allowed range"):
        S.wsd(LR, total_steps=10, warmup_steps=11, decay_steps=0)
    with pytest.raises(ValueError, match=r"^warmup must be one of 'linear', 'cosine', '1-sqrt'"):
        S.wsd(LR, total_steps=10, warmup="exponential")
