"""Schedules are immutable: no attribute can be set or deleted after construction (a family
that precomputes in its constructor would otherwise disagree with str/to_dict/==/hash)."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from lrkit import schedules as S
from lrkit.schedules import Schedule

C = S.cosine(0.1, total_steps=100)

SCHEDULES = [
    S.constant(0.1),
    S.step(0.1, step_size=10),
    S.multistep(0.1, milestones=[10, 20]),
    S.exponential(0.1, gamma=0.99),
    S.polynomial(0.1, total_steps=100, cycle=True),
    C,
    S.cosine_restarts(0.1, T_0=10, T_mult=2, m_mul=0.5),
    S.cyclic(0.0, max_lr=1.0, step_size_up=10),
    S.onecycle(0.1, total_steps=100),
    S.onecycle(0.1, total_steps=100, three_phase=True),
    S.onecycle_momentum(100),
    S.inverse_sqrt(0.1, warmup_steps=10),
    S.piecewise_constant([10], values=[1.0, 0.5]),
    S.warmup(0.0, end_lr=0.1, warmup_steps=10),
    S.wsd(1.0, total_steps=100),
    S.with_warmup(C, warmup_steps=10),
    C * S.constant(0.5),
    C + 0.1,
    0.5 - C,
    C * 2.0,
    C.clamp(min_lr=0.01),
    S.inverse_time(0.1, decay_steps=10, decay_rate=0.5),
    S.linear(0.1, end_lr=0.0, total_steps=10),
]


@pytest.mark.parametrize("s", SCHEDULES, ids=lambda s: s.name)
def test_no_attribute_can_be_set_or_deleted(s: Schedule) -> None:
    before, spec, h = s.values(range(0, 120, 7)).tolist(), str(s), hash(s)
    for attr in (*s.params, "_private", "new_attr"):
        with pytest.raises(AttributeError, match="schedules are immutable") as e:
            setattr(s, attr, 1.0)
        assert f"{attr!r}" in str(e.value) and s.name in str(e.value)
        assert "\n" not in str(e.value)
    for attr in s.__dict__:
        with pytest.raises(AttributeError, match=r"cannot delete .*schedules are immutable"):
            delattr(s, attr)
    assert s.values(range(0, 120, 7)).tolist() == before
    assert str(s) == spec and hash(s) == h
    # copies and round trips are built and frozen alike
    for other in (
        pickle.loads(pickle.dumps(s)),
        copy.copy(s),
        copy.deepcopy(s),
        S.parse(str(s)),
        S.from_dict(s.to_dict()),
    ):
        assert other == s and other.values(range(0, 120, 7)).tolist() == before
        with pytest.raises(AttributeError, match="immutable"):
            other.x = 1  # type: ignore[attr-defined]


def test_the_repro_onecycle_max_lr() -> None:
    s = S.onecycle(0.1, total_steps=100)
    with pytest.raises(AttributeError, match=r"cannot set attribute 'max_lr' of the schedule"):
        s.max_lr = 1.0  # type: ignore[misc]
    assert s.max_lr == 0.1 and S.parse(str(s))(30) == s(30)


def test_custom_family_and_subclass_init_still_work() -> None:
    class Half(Schedule):
        name = "half_life_immutable_test"
        params = ("lr", "half_life")

        def __init__(self, lr: float, *, half_life: float) -> None:
            self.lr, self.half_life = float(lr), float(half_life)

        def _values(self, t: Any, xp: Any) -> Any:
            return self.lr * xp.power(0.5, t / self.half_life)

    class Quarter(Half):  # a subclass constructor calling its parent's
        def __init__(self, lr: float) -> None:
            super().__init__(lr, half_life=2.0)
            self.extra = 1

    h = Quarter(1.0)
    assert h(2) == 0.5 and h.extra == 1
    with pytest.raises(AttributeError, match="immutable"):
        h.lr = 2.0
    with pytest.raises(AttributeError, match="immutable"):
        Half(1.0, half_life=1.0).half_life = 3.0


def test_a_failed_constructor_leaves_nothing_half_open() -> None:
    with pytest.raises(ValueError):
        S.cosine(0.1, total_steps=0)
    s = S.cosine(0.1, total_steps=5)
    with pytest.raises(AttributeError):
        s.lr = 1.0  # type: ignore[misc]
