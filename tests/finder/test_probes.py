"""The probe runs (lrkit.finder.probes): the best offset, the driver, and how the default
rule's suggestions follow them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.finder import (
    PROBE_OFFSETS,
    PROBE_STEPS,
    Probes,
    SweepOptions,
    range_test,
    run_probes,
    suggestions,
)
from lrkit.finder import _coefficients as C
from lrkit.finder.probes import BLOWN, PROBE_WEIGHT, best_offset, probe_lrs
from lrkit.finder.rules import EDGE_CAP

INF = math.inf


def test_offsets_are_two_fold_apart_from_twice_the_edge_down():
    assert PROBE_OFFSETS == (0.7, 0.0, -0.7, -1.4, -2.1, -2.8, -3.5, -4.2)
    lrs = probe_lrs(0.1)
    assert lrs[1] == 0.1 and lrs[0] == pytest.approx(0.1 * math.exp(0.7))
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


def test_best_offset_is_the_vertex_of_the_probe_curve():
    # ln(loss) exactly quadratic in the offset, vertex between two probes
    assert best_offset([math.exp((o + 1.0) ** 2) for o in PROBE_OFFSETS]) == pytest.approx(
        -1.0, abs=1e-12
    )
    assert best_offset([5.0, 4.0, 3.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == pytest.approx(-1.4)
    assert best_offset([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]) == 0.7  # an end
    assert best_offset([INF, INF, 3.0, 2.0, INF, 4.0, 5.0, 6.0]) == -1.4  # no neighbour
    assert best_offset([INF] * 8) == -4.2  # every probe diverged: the lowest
    with pytest.raises(ValueError, match="one loss per offset"):
        best_offset([1.0, 2.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1e-6, 1e6), min_size=8, max_size=8))
def test_best_offset_stays_next_to_the_best_probe(losses):
    o = best_offset(losses)
    j = int(np.argmin(losses))
    assert PROBE_OFFSETS[min(j + 1, 7)] - 1e-9 <= o <= PROBE_OFFSETS[max(j - 1, 0)] + 1e-9


def _quadratic_task(best_lr: float):
    """A fake task whose probe's validation loss is lowest at ``best_lr``: ``step`` records
    each call's LR, ``score`` reads the LR of the last probe."""
    calls: list[tuple[str, float]] = []
    state = {"lr": None}

    def reset():
        calls.append(("reset", 0.0))
        state["lr"] = None

    def step(lr):
        calls.append(("step", lr))
        state["lr"] = lr
        return 1.0

    def score():
        calls.append(("score", 0.0))
        return math.exp((math.log(state["lr"] / best_lr)) ** 2)

    return reset, step, score, calls


def test_run_probes_resets_steps_and_scores_each_probe_in_order():
    reset, step, score, calls = _quadratic_task(best_lr=0.01 * math.exp(-1.2))
    p = run_probes(0.01, reset=reset, step=step, score=score)
    assert isinstance(p, Probes) and p.lr_min == 0.01 and p.steps == PROBE_STEPS
    assert p.lrs == probe_lrs(0.01)
    per = 1 + PROBE_STEPS + 1
    assert len(calls) == 8 * per
    for k, lr in enumerate(p.lrs):
        block = calls[k * per : (k + 1) * per]
        assert block[0] == ("reset", 0.0) and block[-1] == ("score", 0.0)
        assert all(c == ("step", lr) for c in block[1:-1])
    assert p.offset == pytest.approx(-1.2, abs=1e-9)
    assert p.best_lr == pytest.approx(0.01 * math.exp(-1.2))
    assert p.edge == pytest.approx(0.01 * math.exp(PROBE_WEIGHT * -1.2))
    assert not p.diverged


def test_a_probe_that_blows_up_stops_early_and_scores_inf():
    scored: list[float] = []

    def step(lr):  # the two highest LRs blow up on their third step
        step.n += 1
        return 1.0 if lr < 0.009 or step.n < 3 else BLOWN * 1.01

    def reset():
        step.n = 0

    def score():
        scored.append(1.0)
        return 2.0

    p = run_probes(0.01, reset=reset, step=step, score=score)
    assert p.losses[:2] == (INF, INF) and p.losses[2:] == (2.0,) * 6
    assert len(scored) == 6  # a diverged probe is not scored
    nan = run_probes(0.01, reset=lambda: None, step=lambda lr: math.nan, score=lambda: 1.0)
    assert nan.diverged and nan.offset == -4.2
    assert nan.to_dict()["losses"] == [None] * 8


def test_run_probes_refuses_bad_arguments_in_one_line():
    ok = {"reset": lambda: None, "step": lambda lr: 1.0, "score": lambda: 1.0}
    with pytest.raises(ValueError, match="lr_min must be a finite number > 0"):
        run_probes(0.0, **ok)
    with pytest.raises(TypeError, match="score must be a callable"):
        run_probes(0.1, **{**ok, "score": 3})
    with pytest.raises(ValueError, match="step must return the loss at lr"):
        run_probes(0.1, **{**ok, "step": lambda lr: "x"})
    with pytest.raises(ValueError, match="score must return the validation loss"):
        run_probes(0.1, **{**ok, "score": lambda: None})


def _curve():
    lrs = np.geomspace(1e-5, 1.0, 60)
    losses = 2.0 - np.exp(-((np.log(lrs) - np.log(0.05)) ** 2) / 4.0)
    losses[lrs > 0.1] += 20 * (np.log(lrs[lrs > 0.1] / 0.1)) ** 2
    return lrs, losses


def test_suggestions_follow_the_probes_with_their_own_coefficients():
    lrs, losses = _curve()
    plain = suggestions(lrs, losses, total_steps=1000, optimizer_family="momentum")
    reset, step, score, _ = _quadratic_task(best_lr=plain.lr_min * math.exp(-2.0))
    p = run_probes(plain.lr_min, reset=reset, step=step, score=score)
    probed = suggestions(lrs, losses, total_steps=1000, optimizer_family="momentum", probes=p)
    assert probed.lr_min == plain.lr_min  # the sweep's edge, unchanged
    assert p.edge == pytest.approx(plain.lr_min * math.exp(-1.0))
    for sched, got in (("constant", probed.constant), ("onecycle", probed.max_lr)):
        a = C.PROBED_INTERCEPT[sched]["momentum"]
        assert got == pytest.approx(p.edge * min(math.exp(a), EDGE_CAP), rel=1e-12)
    # a longer run: the probed budget slope
    long = suggestions(lrs, losses, total_steps=1900, optimizer_family="momentum", probes=p)
    slope = C.PROBED_BUDGET_SLOPE["constant"]
    assert long.constant / probed.constant == pytest.approx(1.9**slope, rel=1e-9)


def test_probes_of_another_edge_are_refused():
    lrs, losses = _curve()
    p = Probes(lr_min=123.0, lrs=probe_lrs(123.0), losses=(1.0,) * 8)
    with pytest.raises(ValueError, match="probes were run around lr_min=123.0"):
        suggestions(lrs, losses, probes=p)


def _descent(**extra):
    """Gradient descent on ``w**2`` from ``w = 5``: ``(state, step, reset)``; ``step(lr)``
    returns the loss before the step."""
    state = {"w": 5.0, **extra}

    def step(lr):
        loss = state["w"] ** 2
        state["w"] -= lr * 2 * state["w"]
        return loss

    def reset():
        state["w"] = 5.0

    return state, step, reset


def test_range_test_runs_the_probes_with_reset_and_score():
    state, step, reset = _descent()

    plain = range_test(step, warn=False)
    reset()
    r = range_test(step, reset=reset, score=lambda: state["w"] ** 2, warn=False)
    assert r.probes is not None and r.probes.lr_min == r.lr_min == plain.lr_min
    assert r.probes.losses[1] < r.probes.losses[-1]  # near the edge beats 67x below it
    assert r.suggestion != plain.suggestion
    assert r.suggestion == pytest.approx(
        suggestions(r.lrs, r.losses, optimizer_family=None, probes=r.probes).constant
    )
    d = r.to_dict()
    assert d["probes"]["lrs"] == list(r.probes.lrs) and d["probes"]["steps"] == PROBE_STEPS
    again = r.for_total_steps(1000)
    assert again.constant == pytest.approx(r.suggestion)  # the probes are kept
    assert plain.probes is None and plain.to_dict()["probes"] is None


def test_range_test_needs_both_reset_and_score():
    with pytest.raises(ValueError, match="reset needs score"):
        range_test(lambda lr: 1.0, reset=lambda: None)
    with pytest.raises(ValueError, match="score needs reset"):
        range_test(lambda lr: 1.0, score=lambda: 1.0)
    with pytest.raises(TypeError, match="reset must be a callable"):
        range_test(lambda lr: 1.0, reset=3, score=lambda: 1.0)


def test_every_probe_diverged_is_a_warning():
    state = {"n": 0}

    def step(lr):
        state["n"] += 1
        return 1.0 / (1.0 + 1e-3 * state["n"]) if state["n"] <= 100 else math.nan

    def reset():
        state["n"] = 10**6  # every probe's step returns NaN

    r = range_test(step, reset=reset, score=lambda: 1.0, warn=False,
                   options=SweepOptions(stop_early=False))  # fmt: skip
    assert r.probes is not None and r.probes.diverged
    assert any("every probe diverged" in w for w in r.warnings) and not r.reliable


def test_probes_round_trip_through_their_dict_and_refuse_another():
    p = Probes(lr_min=0.02, lrs=probe_lrs(0.02), losses=(3.0, INF, 1.0, 0.5, 0.7, 2.0, 2.5, 3.0))
    back = Probes.from_dict(p.to_dict())
    assert back == p and back.offset == p.offset and back.to_dict() == p.to_dict()
    import json

    assert Probes.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    with pytest.raises(ValueError, match=r"^probes must be a dict of Probes.to_dict\(\)"):
        Probes.from_dict({"lrs": [1.0]})
    with pytest.raises(ValueError, match="must hold 8 lrs and losses, got 2 lrs"):
        Probes.from_dict({**p.to_dict(), "lrs": [1.0, 2.0]})


def test_the_plot_shows_the_probes_on_an_axis_of_their_own(tmp_path):
    pytest.importorskip("matplotlib")
    state, step, reset = _descent()

    r = range_test(step, reset=reset, score=lambda: state["w"] ** 2 + 1.0, warn=False)
    ax = r.plot(path=str(tmp_path / "p.png"))
    (twin,) = [a for a in ax.figure.axes if a is not ax]
    (points,) = [ln for ln in twin.get_lines() if ln.get_marker() == "D"]
    finite = [v for v in r.probes.losses if math.isfinite(v)]
    assert list(points.get_ydata()) == finite and len(finite) >= 2
    assert twin.get_ylabel() == "probe loss (probe_data)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"best probe: {r.probes.best_lr:.2e}" in labels
    assert (tmp_path / "p.png").stat().st_size > 0
    reset()
    plain = range_test(step, warn=False).plot()
    assert len(plain.figure.axes) == 1


def test_best_offset_reads_negative_losses_as_losses():
    """A negative log-likelihood is a loss too: the lowest one is the best probe, refined
    through the losses themselves."""
    shifted = [v - 100.0 for v in (5.0, 4.0, 3.0, 2.0, 3.0, 4.0, 5.0, 6.0)]
    assert best_offset(shifted) == pytest.approx(-1.4)
    quad = [(o + 1.0) ** 2 - 3.0 for o in PROBE_OFFSETS]  # vertex -1.0, values through 0
    assert best_offset(quad) == pytest.approx(-1.0, abs=1e-12)


def test_a_probe_that_blows_up_on_its_last_step_scores_inf():
    def step(lr):
        step.n += 1
        return BLOWN * 1.01 if lr > 0.009 and step.n == PROBE_STEPS else 1.0

    def reset():
        step.n = 0

    p = run_probes(0.01, reset=reset, step=step, score=lambda: 2.0)
    assert p.losses[:2] == (INF, INF) and p.losses[2:] == (2.0,) * 6


def test_a_negative_loss_that_keeps_falling_is_not_a_blown_probe():
    """A negative log-likelihood: -5 falling to -6 trains; -5 rising far above it blows up."""

    def falling(lr):
        falling.n += 1
        return -5.0 - falling.n / PROBE_STEPS

    def reset():
        falling.n = 0

    ok = run_probes(0.01, reset=reset, step=falling, score=lambda: -3.0)
    assert ok.losses == (-3.0,) * 8 and not ok.diverged

    def rising(lr):  # from -5 to 0.05 on the second step (a rise of 5.05 < 19 x 5): trains
        rising.n += 1
        return -5.0 if rising.n == 1 else (0.05 if lr < 0.009 else 200.0)

    rising.n = 0

    def reset2():
        rising.n = 0

    p = run_probes(0.01, reset=reset2, step=rising, score=lambda: 1.0)
    assert p.losses[:2] == (INF, INF) and p.losses[2:] == (1.0,) * 6
    with pytest.raises(ValueError, match="progress must be True or False"):
        run_probes(0.01, reset=reset2, step=rising, score=lambda: 1.0, progress="yes")


def test_from_dict_refuses_lrs_not_placed_around_lr_min():
    p = Probes(lr_min=0.02, lrs=probe_lrs(0.02), losses=(1.0,) * 8)
    d = {**p.to_dict(), "lrs": list(probe_lrs(0.03))}
    with pytest.raises(ValueError, match=r"probes' lrs must be those placed around lr_min=0.02"):
        Probes.from_dict(d)


def test_sweep_probe_runs_nothing_without_a_completed_step():
    from lrkit.finder import Sweep

    calls: list[str] = []
    sweep = Sweep(num_iter=10)
    sweep.record(math.nan)  # the first loss is NaN: no edge
    out = sweep.probe(reset=lambda: calls.append("reset"), step=lambda lr: 1.0, score=lambda: 1.0)
    assert out is None and calls == []


def test_an_interrupt_during_the_probes_carries_the_sweeps_result():
    state, step, reset = _descent(scores=0)

    def score():
        state["scores"] += 1
        if state["scores"] == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third probe's scoring
        return state["w"] ** 2

    plain = range_test(step, warn=False)
    reset()
    with pytest.raises(KeyboardInterrupt) as info:
        range_test(step, reset=reset, score=score, warn=False)
    kept = info.value.result  # type: ignore[attr-defined]
    assert kept.probes is None and kept.stop_reason == plain.stop_reason
    assert np.array_equal(kept.lrs, plain.lrs) and np.array_equal(kept.losses, plain.losses)
    assert kept.suggestion == plain.suggestion


def _counting_probe(losses_of_step):
    """``(reset, step, calls)``: ``step(lr)`` returns ``losses_of_step(lr, n)`` for its n-th
    call since the last ``reset()`` (n from 1), and ``calls`` counts the steps of each probe."""
    calls: list[int] = []

    def reset():
        calls.append(0)

    def step(lr):
        calls[-1] += 1
        return losses_of_step(lr, calls[-1])

    return reset, step, calls


def test_each_probe_trains_sixty_steps_as_documented():
    reset, step, calls = _counting_probe(lambda lr, n: 1.0)
    p = run_probes(0.01, reset=reset, step=step, score=lambda: 1.0)
    assert PROBE_STEPS == 60
    assert calls == [60] * 8 and p.steps == 60


def test_a_probe_is_blown_above_twenty_times_its_first_loss_not_at_or_below_it():
    assert BLOWN == 20.0

    def loss(lr, n):  # 1.0 first; then 15x, 20x (at the bound) or 20.5x it, by probe
        if n == 1:
            return 1.0
        return 20.5 if lr > 0.015 else 20.0 if lr > 0.009 else 15.0

    reset, step, calls = _counting_probe(loss)
    p = run_probes(0.01, reset=reset, step=step, score=lambda: 2.0)
    assert p.losses == (INF, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0)
    assert calls == [2, 60, 60, 60, 60, 60, 60, 60]  # the blown probe stopped at once


def test_a_probe_is_blown_against_its_first_loss_not_the_previous_one():
    """A loss that grows 1.1x a step stays within BLOWN of the step before but passes BLOWN
    times the first on step 33 (1.1**32 > 20): the probe has diverged. A loss that falls from
    100 to 100/29 and then rises to 80 (23x its low) stays under BLOWN times the first: it
    trains on."""

    def growing(lr, n):
        return 1.1 ** (n - 1) if lr > 0.009 else 100.0 / n if n < 30 else 80.0

    reset, step, calls = _counting_probe(growing)
    p = run_probes(0.01, reset=reset, step=step, score=lambda: 2.0)
    assert p.losses[:2] == (INF, INF) and p.losses[2:] == (2.0,) * 6
    assert calls[:2] == [33, 33] and calls[2:] == [60] * 6


def test_a_tiny_first_loss_is_blown_only_above_twenty_thousandths():
    """A first loss near 0 (a task trained to nearly nothing): the probe diverges above
    ``BLOWN * 1e-3`` = 0.02, not above 20 times that tiny loss."""

    def loss(lr, n):
        if n == 1:
            return 1e-6
        return 0.03 if lr > 0.009 else 0.019

    reset, step, calls = _counting_probe(loss)
    p = run_probes(0.01, reset=reset, step=step, score=lambda: 2.0)
    assert p.losses[:2] == (INF, INF) and p.losses[2:] == (2.0,) * 6
    assert calls == [2, 2] + [60] * 6


def test_best_offset_refines_through_the_losses_when_one_of_three_is_not_positive():
    """The best probe's loss is negative and its neighbours' positive: the parabola goes
    through the losses themselves (vertex -1.4 - 0.7 * 0.5 / 5 = -1.47), not their logs."""
    losses = [3.0, 2.0, 1.0, -0.5, 0.5, 2.0, 3.0, 4.0]
    assert best_offset(losses) == pytest.approx(-1.47, abs=1e-12)
    # the lowest loss at 0 (one not positive) between positive neighbours: the same rule
    zero = [3.0, 2.0, 1.0, 0.0, 0.5, 2.0, 3.0, 4.0]  # vertex -1.4 - 0.7 * 0.5 / 3
    assert best_offset(zero) == pytest.approx(-1.4 - 0.7 * 0.5 / 3.0, abs=1e-12)


def test_best_offset_of_a_flat_bottom_is_the_best_probes_own_offset():
    """Neighbours whose log-losses equal the best probe's (a flat bottom): no parabola to
    refine by, the best probe's offset itself (finite)."""
    low = 1e6
    losses = [4e6, 3e6, float(np.nextafter(low, 2 * low)), low, low, 2e6, 3e6, 4e6]
    assert best_offset(losses) == -1.4


def test_from_dict_refuses_fewer_losses_than_lrs_in_one_line():
    p = Probes(lr_min=0.02, lrs=probe_lrs(0.02), losses=(1.0,) * 8)
    d = {**p.to_dict(), "losses": [1.0] * 7}
    want = r"^probes must hold 8 lrs and losses, got 8 lrs and 7 losses$"
    with pytest.raises(ValueError, match=want):
        Probes.from_dict(d)


def test_a_negative_first_loss_is_blown_nineteen_times_its_size_above_it():
    """From -5 (a negative log-likelihood) the bound is -5 + 19 * 5 = 90: 92 has diverged,
    88 trains on."""

    def loss(lr, n):
        return -5.0 if n == 1 else 92.0 if lr > 0.009 else 88.0

    reset, step, calls = _counting_probe(loss)
    p = run_probes(0.01, reset=reset, step=step, score=lambda: 1.0)
    assert p.losses[:2] == (INF, INF) and p.losses[2:] == (1.0,) * 6
    assert calls == [2, 2] + [60] * 6


def test_a_validation_loss_that_is_nan_scores_the_probe_inf():
    p = run_probes(0.01, reset=lambda: None, step=lambda lr: 1.0, score=lambda: math.nan)
    assert p.losses == (INF,) * 8 and p.diverged
    assert p.to_dict()["losses"] == [None] * 8


def test_probes_whose_losses_are_all_nan_have_diverged():
    """NaN losses (from a JSON summary that holds NaN) are no finite probe either."""
    d = {**Probes(lr_min=0.02, lrs=probe_lrs(0.02), losses=(1.0,) * 8).to_dict()}
    d["losses"] = [math.nan] * 8
    p = Probes.from_dict(d)
    assert p.diverged and p.offset == -4.2


@pytest.mark.parametrize(
    ("value", "got"), [(True, "True"), (np.True_, "np.True_"), ("1.0", "str"), (b"1.0", "b'1.0'")]
)
def test_a_step_returning_a_flag_or_text_is_refused_in_one_line(value, got):
    want = rf"^step must return the loss at lr \(a number\), got {got}$"
    with pytest.raises(ValueError, match=want):
        run_probes(0.01, reset=lambda: None, step=lambda lr: value, score=lambda: 1.0)


def test_from_dict_refuses_lrs_a_millionth_off_the_placed_ones():
    p = Probes(lr_min=0.02, lrs=probe_lrs(0.02), losses=(1.0,) * 8)
    d = {**p.to_dict(), "lrs": [v * (1 + 1e-6) for v in probe_lrs(0.02)]}
    with pytest.raises(ValueError, match=r"probes' lrs must be those placed around lr_min=0.02"):
        Probes.from_dict(d)


def test_the_probes_axis_leaves_pyplot_on_the_callers_axes_and_the_legend_on_top():
    """Drawn on the caller's axes, the probes' twin axes do not become pyplot's current axes
    (the user's next plt.ylabel labels their own panel), and the curves' axes, with the
    legend, are drawn over the probes' markers."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    state, step, reset = _descent()
    r = range_test(step, reset=reset, score=lambda: state["w"] ** 2 + 1.0, warn=False)
    fig, (left, right) = plt.subplots(1, 2)
    try:
        assert plt.gca() is right
        assert r.plot(left) is left
        assert plt.gca() is right
        (twin,) = [a for a in fig.axes if a not in (left, right)]
        assert left.get_zorder() > twin.get_zorder() and not left.patch.get_visible()
    finally:
        plt.close(fig)


def test_best_offset_passes_over_a_nan_loss_to_the_lowest_finite_one():
    """A NaN loss (a probe read back from a summary that holds NaN) is no finite probe: the
    best is the lowest finite loss, at the second probe (offset 0)."""
    assert best_offset([math.nan, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) == 0.0
    assert best_offset([5.0, 4.0, 3.0, 2.0, 3.0, 4.0, 5.0, math.nan]) == pytest.approx(-1.4)


def test_best_offset_next_to_a_diverged_probe_is_not_refined():
    """The highest probe diverged and the next is the best: no parabola through the diverged
    one, the best probe's own offset."""
    assert best_offset([INF, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) == 0.0
    assert best_offset([4.0, 3.0, INF, 1.0, 2.0, 3.0, 4.0, 5.0]) == -1.4


def test_probes_with_some_diverged_have_not_all_diverged():
    p = Probes(lr_min=0.02, lrs=probe_lrs(0.02), losses=(INF, INF, 3.0, 2.0, 3.0, 4.0, 5.0, 6.0))
    assert not p.diverged and p.offset == pytest.approx(-1.4)


def _probes_summary(**changes):
    """The summary of probes around ``lr_min=0.02`` (30 steps each), with ``changes``."""
    losses = (3.0, INF, 1.0, 0.5, 0.7, 2.0, 2.5, 3.0)
    p = Probes(lr_min=0.02, lrs=probe_lrs(0.02), losses=losses, steps=30)
    return p, {**p.to_dict(), **changes}


def test_the_summary_holds_the_steps_and_the_derived_rates():
    p, d = _probes_summary()
    assert d["steps"] == 30 and Probes.from_dict(d).steps == 30
    assert d["lr_min"] == 0.02 and d["offset"] == p.offset
    assert d["best_lr"] == 0.02 * math.exp(p.offset)
    assert d["edge"] == 0.02 * math.exp(PROBE_WEIGHT * p.offset)


@pytest.mark.parametrize(
    ("summary", "why"),
    [
        (None, r"NoneType: TypeError: 'NoneType' object is not subscriptable"),
        ({"lr_min": "abc"}, r"dict: ValueError: could not convert string to float: 'abc'"),
        ({"steps": None}, r"dict: TypeError: int\(\) argument must be"),
    ],
)
def test_from_dict_refuses_what_is_not_a_summary_in_one_line(summary, why):
    d = summary if summary is None else _probes_summary(**summary)[1]
    want = r"^probes must be a dict of Probes.to_dict\(\) \(lr_min, lrs, losses, steps\), got "
    with pytest.raises(ValueError, match=want + why):
        Probes.from_dict(d)


def test_from_dict_refuses_seven_probes_and_one_misplaced_lr():
    _, d = _probes_summary()
    short = {**d, "lrs": d["lrs"][:7], "losses": d["losses"][:7]}
    with pytest.raises(ValueError, match=r"^probes must hold 8 lrs and losses, got 7 lrs and 7 "):
        Probes.from_dict(short)
    one_off = {**d, "lrs": [*d["lrs"][:7], d["lrs"][7] * 2]}
    with pytest.raises(ValueError, match=r"probes' lrs must be those placed around lr_min=0.02"):
        Probes.from_dict(one_off)


@pytest.mark.parametrize(
    ("lr_min", "bad", "err", "want"),
    [
        (math.inf, None, ValueError, r"^lr_min must be a finite number > 0, got inf$"),
        (math.nan, None, ValueError, r"^lr_min must be a finite number > 0, got nan$"),
        (0.1, "reset", TypeError, r"^reset must be a callable, got int$"),
        (0.1, "step", TypeError, r"^step must be a callable, got int$"),
    ],
)
def test_run_probes_refuses_an_edge_or_callback_it_cannot_use(lr_min, bad, err, want):
    calls: list[str] = []
    fns = {
        "reset": lambda: calls.append("reset"),
        "step": lambda lr: calls.append("step") or 1.0,
        "score": lambda: 1.0,
    }
    if bad is not None:
        fns[bad] = 3
    with pytest.raises(err, match=want):
        run_probes(lr_min, **fns)
    assert calls == []  # refused before any probe


def test_progress_shows_the_probes_bar_only_when_asked(capsys):
    ok = {"reset": lambda: None, "step": lambda lr: 1.0, "score": lambda: 1.0}
    run_probes(0.01, **ok)
    assert capsys.readouterr().err == ""
    run_probes(0.01, progress=True, **ok)
    assert "lrkit probes" in capsys.readouterr().err


@pytest.mark.parametrize("first", [0.0, 5e-4, -5e-4])
def test_a_first_loss_below_a_thousandth_is_blown_nineteen_thousandths_above_it(first):
    """From a first loss of size below 1e-3 (0, positive or negative) the bound is
    ``first + 19 * 1e-3``: it moves with the first loss, with no jump at 0."""
    bound = first + 0.019

    def loss(lr, n):
        return first if n == 1 else bound + 4e-4 if lr > 0.009 else bound - 4e-4

    reset, step, calls = _counting_probe(loss)
    p = run_probes(0.01, reset=reset, step=step, score=lambda: 1.0)
    assert p.losses[:2] == (INF, INF) and p.losses[2:] == (1.0,) * 6
    assert calls == [2, 2] + [60] * 6


def test_one_element_arrays_are_read_as_the_loss():
    """A step or score returning a one-element array (numpy, as a JAX step may) gives its
    value."""
    p = run_probes(
        0.01, reset=lambda: None, step=lambda lr: np.array([1.0]), score=lambda: np.array([[2.5]])
    )
    assert p.losses == (2.5,) * 8


@pytest.mark.parametrize("lr_min", ["0.01", None, [0.01]])
def test_run_probes_refuses_an_edge_that_is_not_a_number_in_one_line(lr_min):
    calls: list[str] = []
    with pytest.raises(ValueError, match=r"^lr_min must be a finite number > 0, got ") as info:
        run_probes(lr_min, reset=lambda: calls.append("reset"), step=lambda lr: 1.0,
                   score=lambda: 1.0)  # fmt: skip
    assert "\n" not in str(info.value) and calls == []


def test_an_integer_edge_is_kept_as_a_float():
    p = run_probes(1, reset=lambda: None, step=lambda lr: 1.0, score=lambda: 1.0)
    assert type(p.lr_min) is float and p.lr_min == 1.0
    assert type(p.to_dict()["lr_min"]) is float


def test_from_dict_reads_lrs_written_with_ten_significant_digits():
    """A summary whose lrs were written rounded (a CSV, a report) is read back: the lrs are
    those placed around lr_min up to that rounding."""
    p = Probes(lr_min=0.02, lrs=probe_lrs(0.02), losses=(3.0, INF, 1.0, 0.5, 0.7, 2.0, 2.5, 3.0))
    d = {**p.to_dict(), "lrs": [float(f"{v:.10g}") for v in p.lrs]}
    assert d["lrs"] != list(p.lrs)
    back = Probes.from_dict(d)
    assert back.lrs == tuple(d["lrs"]) and back.losses == p.losses and back.offset == p.offset
