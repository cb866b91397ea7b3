"""lrkit.feedback.DivergenceDetector: its quantile equals numpy's bit for bit; the former name."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.feedback import DivergenceDetector, from_state_dict

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    losses=st.lists(finite, min_size=1, max_size=120),
    window=st.integers(1, 40),
    quantile=st.floats(0.0, 1.0),
)
def test_reference_is_numpys_quantile_of_the_window(losses, window, quantile):
    d = DivergenceDetector(spike_factor=None, window=window, min_history=1, quantile=quantile)
    kept: list[float] = []
    for x in losses:
        assert d.check(x) == "ok"
        kept = (kept + [x])[-window:]
        assert d.reference == float(np.quantile(np.asarray(kept, dtype=np.float64), quantile))


def test_state_dict_round_trip_and_the_former_name():
    d = DivergenceDetector(0.5, window=4, min_history=2)
    for x in [3.0, 1.0, 2.0, 5.0, 4.0, math.nan]:
        d.check(x)
    sd = d.state_dict()
    assert sd["type"] == "DivergenceDetector" and sd["history"] == [1.0, 2.0, 5.0, 4.0]
    e = from_state_dict(sd)
    assert e.state_dict() == sd and e.reference == d.reference
    old = {**sd, "type": "DivergenceGuard"}  # saved under the former name
    assert from_state_dict(old).state_dict() == sd
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from lrkit import feedback

        assert feedback.DivergenceGuard is DivergenceDetector
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def _converged_run(sigma: float, seed: int = 0) -> list[float]:
    """A loss falling from 2.3 to 1e-6, then log-normal batch noise around 1e-6."""
    rng = np.random.default_rng(seed)
    falls = np.geomspace(2.3, 1e-6, 500)
    return [float(x) for x in [*falls, *(1e-6 * np.exp(rng.normal(0.0, sigma, 20_000)))]]


def test_batch_noise_of_a_converged_loss_is_not_a_divergence() -> None:
    losses = _converged_run(1.5)
    # without the floor, factors of 10 between batches near 1e-6 read as spikes (and, after
    # max_restores, as a run to give up)
    old = DivergenceDetector(spike_floor=0.0)
    assert [old.check(x) for x in losses].count("ok") < len(losses)
    d = DivergenceDetector()
    assert d.spike_floor == 0.01
    assert all(d.check(x) == "ok" for x in losses)
    assert d.state_dict()["peak"] == 2.3
    # a loss back above 1% of the untrained one (and 10x the reference) is a spike; NaN too
    assert d.is_divergent(0.03) and not d.is_divergent(0.02)
    assert d.is_divergent(float("nan"))


def test_the_floor_resumes_bit_for_bit_and_older_states_load_without_it() -> None:
    losses = _converged_run(1.0, seed=1)
    a = DivergenceDetector(spike_floor=0.05)
    for x in losses[:700]:
        a.check(x)
    b = DivergenceDetector()
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.spike_floor == 0.05 and b.state_dict() == a.state_dict()
    for x in [*losses[700:900], 0.2, 1e-6]:
        assert a.check(x) == b.check(x)
    assert a.state_dict() == b.state_dict()
    old = {k: v for k, v in a.state_dict().items() if k not in ("spike_floor", "peak")}
    c = DivergenceDetector()
    c.load_state_dict(old)
    assert c.spike_floor == 0.0  # a state saved before the floor judges as it did


def test_spike_floor_is_a_fraction() -> None:
    for bad in (-0.1, 1.5, float("nan"), "0.1"):
        with pytest.raises(ValueError, match=r"^spike_floor must be"):
            DivergenceDetector(spike_floor=bad)


def test_a_loss_at_the_spike_floor_is_no_spike():
    # the reference is 0.5 and 10.0 is above 10 * 0.5, but not above spike_floor * peak = 10.0
    d = DivergenceDetector(spike_floor=1.0, quantile=0.5, min_history=2, window=5)
    assert [d.check(x) for x in (10.0, 0.5, 0.5, 0.5)] == ["ok"] * 4
    assert d.reference == 0.5
    assert d.check(10.0) == "ok"
    half = DivergenceDetector(spike_floor=0.5, quantile=0.5, min_history=2, window=5)
    assert [half.check(x) for x in (10.0, 0.5, 0.5, 0.5, 5.01)][-1] == "restore"


def test_reference_at_an_exact_half_interpolates_as_numpy_does():
    """At a position halfway between two losses the reference is numpy's b - d * 0.5, which
    differs in the last bit from a + d * 0.5 for 0.1 and 0.7."""
    d = DivergenceDetector(spike_factor=None, window=2, min_history=1, quantile=0.5)
    d.check(0.1)
    d.check(0.7)
    assert d.reference == float(np.quantile([0.1, 0.7], 0.5)) == 0.39999999999999997


def test_a_zero_reference_counts_only_non_finite_losses_as_divergent():
    """With a reference of 0 no finite loss is a spike, however large; NaN still is."""
    d = DivergenceDetector(window=3, min_history=1)
    assert d.check(0.0) == "ok"
    assert d.reference == 0.0
    assert not d.is_divergent(5.0)
    assert d.check(5.0) == "ok"
    z = DivergenceDetector(window=3, min_history=1)
    z.check(0.0)
    assert z.check(math.nan) == "restore"


def test_events_record_the_step_given_to_check_else_the_check_count():
    """A restore or give_up event names the step passed to check(), and the number of checks
    made when no step is given."""
    d = DivergenceDetector(max_restores=1, window=4, min_history=1)
    assert d.check(1.0, step=100) == "ok"
    assert d.check(math.nan, step=117) == "restore"
    assert d.check(math.inf) == "give_up"
    assert d.events == [
        {"step": 117, "loss": "nan", "reference": 1.0, "action": "restore", "scale": 0.5},
        {"step": 3, "loss": "inf", "action": "give_up"},
    ]


def test_a_state_saved_before_the_quantile_loads_with_the_median_reference():
    """A state without 'quantile' (saved when the reference was the median) loads with
    quantile 0.5, so its reference is the median of its window."""
    a = DivergenceDetector(window=5, min_history=1)
    for x in (1.0, 2.0, 3.0, 4.0, 10.0):
        a.check(x)
    old = {k: v for k, v in a.state_dict().items() if k != "quantile"}
    b = DivergenceDetector()
    b.load_state_dict(old)
    assert b.quantile == 0.5
    assert b.reference == 3.0


def test_detector_state_dict_is_a_snapshot_that_later_checks_leave_alone():
    """The events list of a saved state is a copy: restores after state_dict() do not appear
    in it."""
    d = DivergenceDetector(window=4, min_history=1)
    d.check(1.0)
    d.check(math.nan)
    saved = d.state_dict()
    assert len(saved["events"]) == 1
    d.check(math.nan)
    assert len(d.events) == 2
    assert len(saved["events"]) == 1
    assert from_state_dict(saved).state_dict() == saved


def test_the_spike_floor_leaves_negative_losses_alone():
    """The floor is a fraction of a positive peak: with negative losses every spike counts."""
    d = DivergenceDetector(spike_factor=1.5, window=1, min_history=1)
    assert [d.check(x) for x in (-1.0, -4.0)] == ["ok", "ok"]
    assert d.reference == -4.0
    assert d.check(-1.5) == "restore"  # above -4 + 0.5 * |-4| = -2


def test_last_action_is_the_latest_decision():
    d = DivergenceDetector(max_restores=1, window=4, min_history=1)
    assert d.last_action == "ok"
    d.check(1.0)
    d.check(math.nan)
    assert d.last_action == "restore"
    d.check(math.nan)
    assert d.last_action == "give_up" and d.state_dict()["last_action"] == "give_up"
    d.check(1.0)
    assert d.last_action == "ok"


def test_update_records_the_step_it_is_given():
    d = DivergenceDetector(window=4, min_history=1)
    d.update(1.0, step=5)
    assert d.update(math.nan, step=42) == 0.5
    assert d.events == [
        {"step": 42, "loss": "nan", "reference": 1.0, "action": "restore", "scale": 0.5}
    ]


def test_a_state_with_an_unknown_last_action_is_refused_and_changes_nothing():
    d = DivergenceDetector(window=4, min_history=1)
    d.check(1.0)
    before = d.state_dict()
    with pytest.raises(ValueError) as info:
        d.load_state_dict({**before, "last_action": "bogus", "restores": 2})
    assert str(info.value) == (
        "state['last_action'] must be one of 'ok', 'restore', 'give_up', got 'bogus'"
    )
    assert d.state_dict() == before


def test_check_refuses_a_negative_step():
    d = DivergenceDetector()
    with pytest.raises(ValueError) as info:
        d.check(1.0, step=-1)
    assert str(info.value) == "step must be an integer >= 0 (allowed range: [0, inf)), got -1"
    assert d.num_checks == 0


def test_a_peak_of_zero_puts_no_floor_under_negative_spikes():
    """The floor is a fraction of a positive peak: after a loss of 0, a negative loss far above
    a negative reference is still a spike."""
    d = DivergenceDetector(spike_factor=1.5, window=1, min_history=1)
    assert [d.check(x) for x in (0.0, -4.0)] == ["ok", "ok"]
    assert d.reference == -4.0 and d.state_dict()["peak"] == 0.0
    assert d.check(-1.5) == "restore"  # above -4 + 0.5 * |-4| = -2
