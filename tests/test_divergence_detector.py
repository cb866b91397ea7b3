"""lrkit.feedback.DivergenceDetector: its quantile equals numpy's bit for bit; the former name."""

from __future__ import annotations

import math
import warnings

import numpy as np
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
