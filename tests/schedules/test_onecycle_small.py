"""onecycle / onecycle_momentum accept exactly the settings PyTorch's OneCycleLR runs
(small total_steps included) and give its values there; only a phase PyTorch divides by
zero in is refused."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from lrkit import schedules as S

torch = pytest.importorskip("torch")

PCTS = (0.0, 0.05, 0.1, 0.2, 0.25, 0.3, 1 / 3, 0.45, 0.5, 0.6, 2 / 3, 0.75, 0.9, 0.99, 1.0)


def _torch_run(T: int, pct: float, anneal: str, three: bool) -> tuple[list[float], list[float]]:
    """PyTorch's LR and momentum at steps 0..T-1; ZeroDivisionError if it divides by zero at
    any step of 0..T (the T-th step() of a T-step run computes step T)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    sch = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, total_steps=T, pct_start=pct, anneal_strategy=anneal, three_phase=three
    )
    lrs, moms = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(T):
            lrs.append(opt.param_groups[0]["lr"])
            moms.append(opt.param_groups[0]["momentum"])
            opt.step()
            sch.step()
    return lrs, moms


@pytest.mark.parametrize("three", [False, True])
@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_small_total_steps_match_pytorch(anneal: str, three: bool) -> None:
    for T, pct in itertools.product(range(1, 13), PCTS):
        kw = dict(total_steps=T, pct_start=pct, anneal_strategy=anneal, three_phase=three)
        try:
            lrs, moms = _torch_run(T, pct, anneal, three)
        except ZeroDivisionError:
            with pytest.raises(ValueError, match=r"no width .*pct_start must be in \[0, 1\]"):
                S.onecycle(0.1, **kw)
            with pytest.raises(ValueError, match="no width"):
                S.onecycle_momentum(**kw)
            continue
        s = S.onecycle(0.1, **kw)
        m = S.onecycle_momentum(**kw)
        steps = list(range(T))
        np.testing.assert_allclose(s.values(steps), lrs, rtol=1e-14, atol=1e-18, err_msg=str(s))
        np.testing.assert_allclose(m.values(steps), moms, rtol=1e-14, err_msg=str(m))
        assert [s(t) for t in steps] == s.values(steps).tolist()
        assert [m(t) for t in steps] == m.values(steps).tolist()
        assert s(T + 5) == s(T - 1)  # the last value is held


def test_issue_values() -> None:
    assert S.onecycle(0.1, total_steps=2).values([0, 1]) == pytest.approx(
        [0.0811745, 4e-7], abs=1e-7
    )
    assert S.onecycle(0.1, total_steps=3).values([0, 1, 2]) == pytest.approx(
        [0.0994415, 0.0462637, 4e-7], abs=1e-7
    )


@pytest.mark.parametrize(
    ("kw", "phase"),
    [
        ({"total_steps": 10, "pct_start": 0.1}, 1),  # pct_start * total_steps == 1
        ({"total_steps": 10, "pct_start": 1.0}, 2),  # the decay has no steps
        ({"total_steps": 3, "pct_start": 2 / 3, "three_phase": True}, 3),
    ],
)
def test_zero_width_phase_is_refused(kw: dict[str, object], phase: int) -> None:
    with pytest.raises(ValueError, match=f"phase {phase} of the cycle no width") as e:
        S.onecycle(0.1, **kw)  # type: ignore[arg-type]
    assert "\n" not in str(e.value) and ">= 2" not in str(e.value)


@pytest.mark.parametrize("pct", [-0.1, 1.1])
def test_pct_start_outside_0_1(pct: float) -> None:
    with pytest.raises(ValueError, match=r"pct_start must be in \[0.0, 1.0\]"):
        S.onecycle(0.1, total_steps=10, pct_start=pct)
