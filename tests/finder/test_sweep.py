"""Tests of the sweep itself (lrkit.finder.sweep): its options' bounds, the held-loss cadence,
replayed curves, divergence, the extension past end_lr and where and why it stops."""

from __future__ import annotations

import math
import sys

import pytest

from lrkit.finder import Sweep, SweepOptions


def test_max_end_lr_may_equal_end_lr_and_then_caps_the_extension_there():
    opts = SweepOptions(end_lr=10.0, max_end_lr=10.0)
    assert opts.ceiling == 10.0
    with pytest.raises(ValueError, match=r"max_end_lr must be >= end_lr"):
        SweepOptions(end_lr=10.0, max_end_lr=9.999)


@pytest.mark.parametrize(
    "first, later",
    [(1.0, 1.0), (500.0, 501.0), (500.0, 499.0)],  # 501 and 499: exactly FLAT_TOL off 500
)
def test_a_held_loss_within_flat_tol_of_its_first_is_measured_half_as_often(first, later):
    sweep = Sweep(start_lr=1e-4, end_lr=1.0, num_iter=40, max_extra_iter=0, stop_early=False)
    measured = []
    for i, _ in enumerate(sweep):
        held = (later if measured else first) if sweep.eval_due else None
        if held is not None:
            measured.append(i)
        sweep.record(2.0, held=held)
    assert sweep.stop_reason == "completed"
    assert measured == [0, 4, 8, 16, 24, 32]


def _descent(n):
    return [3.0 - 0.1 * i for i in range(n)]


def test_replay_takes_a_curve_of_exactly_as_many_steps_as_the_options_sweep():
    sweep = Sweep(start_lr=1e-3, end_lr=1.0, num_iter=10, max_extra_iter=0)
    sweep.replay(_descent(10), stop_reason="completed")
    result = sweep.result(warn=False)
    assert len(result.losses) == 10
    assert result.stop_reason == "completed"
    with pytest.raises(ValueError, match=r"^losses: 11 steps, more than these options sweep \(10:"):
        Sweep(start_lr=1e-3, end_lr=1.0, num_iter=10, max_extra_iter=0).replay(
            _descent(11), stop_reason="completed"
        )


def test_replay_reads_held_losses_only_at_the_steps_that_measure_them():
    sweep = Sweep(start_lr=1e-3, end_lr=1.0, num_iter=10, max_extra_iter=0)
    held = {sweep.lr_at(i): 5.0 - 0.1 * i for i in range(10)}
    sweep.replay(_descent(10), held=held, stop_reason="completed")
    result = sweep.result(warn=False)
    assert result.held_lrs.tolist() == [sweep.lr_at(0), sweep.lr_at(4), sweep.lr_at(8)]
    assert result.held_losses.tolist() == [5.0, 4.6, 4.2]


def _held_sweep(held_losses, **kw):
    """A 20-step sweep of a constant training loss 2.0 whose held losses are ``held_losses``."""
    kw = {"start_lr": 1e-4, "end_lr": 1.0, "num_iter": 20, "max_extra_iter": 0, **kw}
    sweep = Sweep(**kw)
    it = iter(held_losses)
    for _ in sweep:
        sweep.record(2.0, held=next(it) if sweep.eval_due else None)
    return sweep, sweep.result(warn=False)


def test_a_held_loss_at_exactly_diverge_th_times_its_best_has_not_diverged():
    sweep, result = _held_sweep([1.0, 5.0, 5.000001])
    assert result.stop_reason == "diverged"
    assert result.held_losses.tolist() == [1.0, 5.0, 5.000001]
    assert len(result.losses) == 9
    assert result.stop_lr == sweep.lr_at(8)


def test_the_second_held_loss_already_stops_a_sweep_when_it_diverges():
    sweep, result = _held_sweep([1.0, 5.5])
    assert result.stop_reason == "diverged"
    assert len(result.losses) == 5
    assert result.stop_lr == sweep.lr_at(4)


def test_the_second_step_already_stops_a_sweep_whose_smoothed_loss_diverges():
    losses = iter([1.0, 100.0, 100.0, 100.0])
    sweep = Sweep(start_lr=1e-4, end_lr=1.0, num_iter=20, eval_batches=0)
    for _ in sweep:
        sweep.record(next(losses))
    result = sweep.result(warn=False)
    assert result.stop_reason == "diverged"
    assert result.losses.tolist() == [1.0, 100.0]
    assert result.stop_lr == sweep.lr_at(1)
    assert result.steps == 2


def _descending_sweep(**kw):
    """A 10-step sweep from 1e-3 to 1 (three steps a decade) of a loss that keeps falling."""
    sweep = Sweep(start_lr=1e-3, end_lr=1.0, num_iter=10, eval_batches=0, **kw)
    for i, _ in enumerate(sweep):
        sweep.record(10.0 - 0.1 * i)
    return sweep, sweep.result(warn=False)


def test_an_extension_runs_exactly_max_extra_iter_more_steps():
    sweep, result = _descending_sweep(max_extra_iter=5)
    assert len(result.losses) == 15
    assert result.extended == 5
    assert result.to_dict()["extended"] == 5
    assert result.stop_reason == "completed"
    assert result.stop_lr == sweep.lr_at(14)
    assert not result.reliable
    assert result.warnings == (
        "the loss never turned up (sweep extended to 46): the edge of stability lies beyond "
        "it, so the suggestions are lower bounds; rerun with a larger end_lr or max_end_lr",
    )


@pytest.mark.parametrize(
    "max_end_lr, steps",
    # lr_at(15) is 100.00000000000006, 1e-3 * 1000 ** (15 / 9) in float64: max_end_lr=100
    # reaches it; lr_at(12) is 9.999999999999995
    [(100.0, 16), (10.0, 13), (99.0, 15)],
)
def test_an_extension_reaches_max_end_lr_up_to_rounding(max_end_lr, steps):
    sweep, result = _descending_sweep(max_end_lr=max_end_lr)
    assert len(result.losses) == steps
    assert result.extended == steps - 10
    assert result.stop_lr == sweep.lr_at(steps - 1)
    assert result.stop_reason == "completed"


def _v_shaped(x):
    """A loss with its minimum 1.0 at x = 0, falling gently to it and rising steeply past it."""
    return 1.0 + 0.5 * x * x if x > 0 else 1.0 - 0.3 * x


@pytest.mark.parametrize(
    "training, steps, reason",
    [
        (lambda i, x: 10.0 - 0.05 * i, 60, "completed"),  # still falling: no early stop
        (lambda i, x: _v_shaped(x), 41, "turned_up"),
    ],
)
def test_a_turned_up_held_curve_stops_the_sweep_only_once_the_training_curve_has_too(
    training, steps, reason
):
    sweep = Sweep(start_lr=1e-6, end_lr=1.0, num_iter=60)
    for i, lr in enumerate(sweep):
        x = math.log10(lr) + 3.0  # the held curve's minimum at lr = 1e-3
        sweep.record(training(i, x), held=_v_shaped(x) if sweep.eval_due else None)
    result = sweep.result(warn=False)
    assert result.stop_reason == reason
    assert len(result.losses) == steps
    assert result.extended == 0


def test_a_curve_that_turned_up_by_end_lr_is_not_extended():
    sweep = Sweep(start_lr=1e-6, end_lr=1.0, num_iter=60, eval_batches=0, stop_early=False)
    for lr in sweep:
        x = math.log10(lr) + 3.0
        sweep.record(1.0 + 0.1 * x * x if x > 0 else 1.0 - 0.3 * x)
    result = sweep.result(warn=False)
    assert result.stop_reason == "completed"
    assert len(result.losses) == 60
    assert result.extended == 0
    assert result.stop_lr == 1.0
    assert result.warnings == ()
    assert result.reliable


def test_a_nan_stops_the_sweep_at_the_lr_of_the_step_that_gave_it():
    sweep = Sweep(start_lr=1e-4, end_lr=1.0, num_iter=20)
    values = iter([3.0, 2.9, 2.8, 2.7, 2.6, 2.5, math.nan])
    for _ in sweep:
        sweep.record(next(values))
    result = sweep.result(warn=False)
    assert result.stop_reason == "nan"
    assert result.stop_lr == sweep.lr_at(6)
    assert len(result.losses) == 6
    assert result.steps == 7
    assert result.extended == 0
    assert result.warnings == (
        "the loss became NaN/inf (at 0.0018) before the curve turned up: the edge of stability "
        "may lie beyond it, so the suggestions are lower bounds; if a batch or an operation of "
        "the training step gives the NaN/inf (e.g. the log of 0), fix it and rerun",
    )


def test_an_interrupted_sweep_stops_at_the_lr_of_its_last_recorded_step():
    sweep = Sweep(start_lr=1e-4, end_lr=1.0, num_iter=20)
    for i, _ in enumerate(sweep):
        if i == 7:
            break
        sweep.record(3.0 - 0.1 * i)
    sweep.interrupt()
    result = sweep.result(warn=False)
    assert result.stop_reason == "interrupted"
    assert result.stop_lr == sweep.lr_at(6)
    assert result.steps == 7
    assert result.extended == 0
    assert result.warnings == (
        "the loss had not turned up when the sweep was interrupted (at 0.0018): the edge of "
        "stability lies beyond it, so the suggestions are lower bounds; rerun the sweep to the end",
    )


def test_an_interrupted_sweep_without_a_step_has_no_stop_lr():
    sweep = Sweep(start_lr=1e-4, end_lr=1.0, num_iter=20)
    sweep.interrupt()
    result = sweep.result(warn=False)
    assert result.stop_reason == "interrupted"
    assert result.stop_lr is None
    assert result.suggestion is None
    assert result.steps == 0


def test_a_minimum_at_the_second_step_of_a_short_sweep_says_the_loss_rose_from_the_start():
    values = iter([3.0, 2.0] + [2.0 + 0.05 * k for k in range(1, 30)])
    sweep = Sweep(start_lr=1e-4, end_lr=1.0, num_iter=20, eval_batches=0, max_extra_iter=0)
    for _ in sweep:
        sweep.record(next(values))
    result = sweep.result(warn=False)
    assert result.stop_reason == "turned_up"
    assert len(result.losses) == 13
    assert result.warnings == (
        "the loss rose from the first steps: start_lr is already too large; lower start_lr "
        "(e.g. by 100x)",
    )


def test_a_held_loss_that_moved_and_came_back_is_measured_at_the_full_rate_until_it_stays():
    # first 1.0, then 2.0 (moved), then 1.0 again: the last two measurements must both be
    # within FLAT_TOL of the first before the cadence halves
    sweep = Sweep(start_lr=1e-4, end_lr=1.0, num_iter=40, max_extra_iter=0, stop_early=False)
    values = iter([1.0, 2.0] + [1.0] * 20)
    measured = []
    for i, _ in enumerate(sweep):
        held = next(values) if sweep.eval_due else None
        if held is not None:
            measured.append(i)
        sweep.record(2.0, held=held)
    assert sweep.stop_reason == "completed"
    assert measured == [0, 4, 8, 12, 16, 24, 32]


def test_a_held_loss_back_within_rise_fraction_of_its_best_does_not_stop_the_sweep():
    # descends to 1.0 at step 40, then rises; at step 51 the held loss is 1.01, within
    # RISE_FRACTION of its best: the sweep stops at the next step instead
    def run(dip):
        sweep = Sweep(start_lr=1e-6, end_lr=1.0, num_iter=100, eval_every=1, max_extra_iter=0)
        for i, _ in enumerate(sweep):
            v = 1.01 if i == dip else (3.0 - 2.0 * i / 40 if i <= 40 else 1.0 + 0.1 * (i - 40))
            sweep.record(v, held=v if sweep.eval_due else None)
        return sweep

    plain = run(dip=None)
    assert plain.stop_reason == "turned_up" and len(plain.result(warn=False).losses) == 52
    dipped = run(dip=51)
    assert dipped.stop_reason == "turned_up"
    assert len(dipped.result(warn=False).losses) == 53
    assert dipped.result(warn=False).stop_lr == dipped.lr_at(52)


def test_one_array_read_as_many_held_batches_is_named_in_the_warning():
    """An array given as the held set is read row by row: the warning says so and how to give
    one batch of inputs and targets instead; a list of many batches keeps the plain wording."""
    import numpy as np

    from lrkit.finder import held_batches

    with pytest.warns(UserWarning) as record:
        assert len(held_batches(np.zeros((20, 3)), name="probe_data")) == 20
    assert str(record[0].message) == (
        "probe_data holds 20 batches (one array of shape (20, 3): its rows are read as batches; "
        "for one batch of inputs and targets give [(x, y)]), all kept and evaluated every "
        "eval_every steps of the sweep; a few are enough (e.g. list(itertools.islice(loader, 4)))"
    )
    with pytest.warns(UserWarning) as record:
        held_batches([np.zeros(3)] * 20)
    assert str(record[0].message).startswith("val_data holds 20 batches, all kept and evaluated")


def test_one_batch_of_arrays_is_told_from_a_held_set_of_batches():
    """check_not_one_batch refuses (x, y) arrays (or dicts of them) of one leading size where
    the training batches are tuples of as many items, and nothing else."""
    import numpy as np

    from lrkit.finder.sweep import check_not_one_batch

    x, y, w = np.zeros((8, 3)), np.zeros((8, 1)), np.ones(8)
    with pytest.raises(ValueError, match=r"^held is one batch's arrays, a tuple of 3 with 8 "):
        check_not_one_batch((x, y, w), (x, y, w), name="held")
    with pytest.raises(ValueError, match=r"^held is one batch's arrays, a list of 2 with 8 "):
        check_not_one_batch([{"a": x, "b": x}, y], [x, y], name="held")
    for given, reference in [
        ([(x, y), (x, y)], (x, y)),  # batches
        ((x, y), {"x": x, "y": y}),  # training batches that are no tuples
        ((x, y), (x, y, w)),  # another number of items
        ((x, np.zeros((4, 1))), (x, y)),  # sizes differ: two batches of arrays
        ((x, 3), (x, y)),
        ([x, y, w, w], (x, y, w, w)),  # four: no (x, y[, sample_weight])
        ((x, {}), (x, y)),
    ]:
        check_not_one_batch(given, reference, name="held")


def test_eval_batches_0_never_asks_for_the_held_loss():
    sweep = Sweep(start_lr=1e-4, end_lr=1.0, num_iter=20, eval_batches=0, max_extra_iter=0)
    due = []
    for i, _ in enumerate(sweep):
        due.append(sweep.eval_due)
        sweep.record(3.0 - 0.1 * i)
    assert due == [False] * 20


def test_a_step_without_its_held_loss_does_not_stop_the_sweep():
    # the held loss is passed at every other step it is due (i % 4 == 0); beta=0 makes the
    # smoothed training loss the loss itself, risen by step 38: the sweep stops only at the
    # next step that measured the held loss
    sweep = Sweep(start_lr=1e-6, end_lr=1.0, num_iter=60, eval_every=2, beta=0.0)
    for i, lr in enumerate(sweep):
        x = math.log10(lr) + 3.0
        held = _v_shaped(x + 0.5) if sweep.eval_due and i % 4 == 0 else None
        sweep.record(_v_shaped(x), held=held)
    result = sweep.result(warn=False)
    assert result.stop_reason == "turned_up"
    assert len(result.losses) == 41
    assert result.stop_lr == sweep.lr_at(40)
    assert result.held_lrs.tolist() == [sweep.lr_at(i) for i in range(0, 41, 4)]


def test_an_extension_stops_before_an_lr_float64_cannot_hold():
    # past end_lr=1e300 the next LR (about 10 ** 333.7) is beyond float64
    sweep = Sweep(
        start_lr=1e-3, end_lr=1e300, num_iter=10, eval_batches=0, max_end_lr=sys.float_info.max
    )
    lrs = []
    for i, lr in enumerate(sweep):
        lrs.append(lr)
        sweep.record(10.0 - 0.1 * i)
    result = sweep.result(warn=False)
    assert all(math.isfinite(lr) for lr in lrs)
    assert len(result.losses) == 10
    assert result.extended == 0
    assert result.stop_reason == "completed"
    assert result.stop_lr == 1e300


def test_a_v_shaped_curve_stops_exactly_risen_decades_past_its_minimum():
    # ten steps a decade: the smoothed minimum is at step 11, and lr_at(18) / lr_at(11) is
    # exactly 10 ** 0.7 in float64
    sweep = Sweep(start_lr=1e-4, end_lr=1.0, num_iter=41, eval_batches=0, eval_every=1)
    for lr in sweep:
        sweep.record(_v_shaped(math.log10(lr) + 3.0))
    result = sweep.result(warn=False)
    assert math.log10(sweep.lr_at(18) / sweep.lr_at(11)) == 0.7
    assert result.stop_reason == "turned_up"
    assert len(result.losses) == 19
    assert result.stop_lr == sweep.lr_at(18)


def test_a_sweep_stops_early_only_once_it_has_ten_steps():
    # a decade of LR a step, beta=0 (the smoothed loss is the loss): the V, its minimum at
    # the fourth step, has clearly turned up by the seventh, but a curve of fewer than ten
    # points is too short to stop on
    sweep = Sweep(
        start_lr=1e-4,
        end_lr=1e15,
        num_iter=20,
        eval_batches=0,
        eval_every=1,
        beta=0.0,
        diverge_th=1000.0,
    )
    values = iter([4.0, 3.0, 2.0, 1.0] + [1.0 + k for k in range(1, 17)])
    for _ in sweep:
        sweep.record(next(values))
    result = sweep.result(warn=False)
    assert result.stop_reason == "turned_up"
    assert len(result.losses) == 10
    assert result.stop_lr == sweep.lr_at(9)


def _floor(lr):
    """A loss learnt perfectly from lr = 1e-3 on: 0 from there, it never rises."""
    return max(1.0 - lr / 1e-3, 0.0)


@pytest.mark.parametrize("reason", ["interrupted", "nan"])
def test_a_sweep_stopped_on_a_long_floor_is_no_lower_bound(reason):
    sweep = Sweep(start_lr=1e-6, end_lr=10.0, num_iter=100, eval_batches=0)
    for i, lr in enumerate(sweep):
        if i == 90 and reason == "interrupted":
            sweep.interrupt()
            break
        sweep.record(math.nan if i == 90 else _floor(lr))
    result = sweep.result(warn=False)
    assert result.stop_reason == reason
    assert len(result.losses) == 90
    assert result.warnings == ()
    assert result.reliable


_ROSE = (
    "the loss rose from the first steps: start_lr is already too large; lower start_lr "
    "(e.g. by 100x)",
)


@pytest.mark.parametrize(
    "losses", [[3.0, 1.0, 4.0, 8.0, 12.0], [3.0, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0]]
)
def test_a_curve_of_five_to_nine_steps_rising_from_its_second_says_so(losses):
    sweep = Sweep(start_lr=1e-4, end_lr=1.0, num_iter=20, eval_batches=0, diverge_th=100.0)
    for loss in losses:
        sweep.record(loss)
    sweep.interrupt()
    result = sweep.result(warn=False)
    assert result.stop_reason == "interrupted"
    assert result.warnings == _ROSE


def test_a_replayed_curve_saved_as_turned_up_is_read_as_risen():
    # by this version's rules the curve has not turned up after its minimum; the sweep that
    # saved it stopped because it had
    sweep = Sweep(start_lr=1e-4, end_lr=1.0, num_iter=20, eval_batches=0)
    sweep.replay([2.0, 1.0] + [1.0] * 10, stop_reason="turned_up")
    result = sweep.result(warn=False)
    assert result.stop_reason == "turned_up"
    assert result.warnings == _ROSE


def test_probes_that_all_diverged_say_so_in_the_warnings():
    from lrkit.finder.probes import Probes, probe_lrs

    sweep = Sweep(start_lr=1e-6, end_lr=1.0, num_iter=60, eval_batches=0, stop_early=False)
    for lr in sweep:
        sweep.record(_v_shaped(math.log10(lr) + 3.0))
    lr_min = sweep.result(warn=False).lr_min
    lrs = probe_lrs(lr_min)
    result = sweep.result(warn=False, probes=Probes(lr_min, lrs, (math.inf,) * len(lrs)))
    assert result.warnings == (
        f"every probe diverged, down to {min(lrs):.3g}: the suggestions sit below them; check "
        "the training step or lower start_lr",
    )
    assert not result.reliable


def test_a_generator_one_batch_longer_than_the_replay_window_warns():
    from itertools import islice

    from lrkit.finder import cycle_batches
    from lrkit.finder.sweep import REPLAY_BATCHES

    n = REPLAY_BATCHES + 1
    batches = cycle_batches(iter(range(n)))
    with pytest.warns(UserWarning, match=rf"^data \(a one-shot iterator\) ran out after {n} "):
        assert list(islice(batches, n + 2)) == [*range(n), 1, 2]


def test_a_score_failing_on_the_training_batch_too_is_left_to_the_sweep():
    from lrkit.finder.sweep import check_scored

    def score(batch):
        raise KeyError(batch)

    check_scored(score, "held", "train", name="val_data", expected="batches like data's")
    with pytest.raises(ValueError, match=r"^val_data: the loss could not be computed on its first"):
        check_scored(
            lambda b: b["x"], "held", {"x": 1}, name="val_data", expected="batches like data's"
        )


def test_an_empty_list_or_none_is_no_set_of_batches():
    from lrkit.finder.sweep import check_batches_type

    with pytest.raises(ValueError, match=r"^val_data must yield at least one batch, got an empty"):
        check_batches_type([], name="val_data")
    with pytest.raises(
        ValueError,
        match=r"^probe_data must be an iterable of batches \(a list, a generator, a loader\), "
        r"got NoneType$",
    ):
        check_batches_type(None, name="probe_data")
    check_batches_type(None, name="probe_data", none=True)


def test_replay_refuses_a_sweep_that_has_already_stopped():
    sweep = Sweep(start_lr=1e-3, end_lr=1.0, num_iter=10)
    sweep.interrupt()
    with pytest.raises(RuntimeError, match=r"^replay\(\) takes a fresh sweep"):
        sweep.replay(_descent(10), stop_reason="completed")


def test_a_non_finite_held_loss_stops_the_sweep_as_a_nan_loss_does():
    sweep = Sweep(start_lr=1e-4, end_lr=1.0, num_iter=20)
    for i, _ in enumerate(sweep):
        held = (math.inf if i == 4 else 2.0) if sweep.eval_due else None
        sweep.record(3.0 - 0.1 * i, held=held)
    result = sweep.result(warn=False)
    assert result.stop_reason == "nan"
    assert result.stop_lr == sweep.lr_at(4)
    assert len(result.losses) == 4
    assert result.held_losses.tolist() == [2.0]


def test_the_result_of_a_sweep_still_running_reads_as_interrupted():
    sweep = Sweep(start_lr=1e-4, end_lr=1.0, num_iter=20, eval_batches=0)
    for i in range(6):
        sweep.record(3.0 - 0.1 * i)
    result = sweep.result(warn=False)
    assert not sweep.done
    assert result.stop_reason == "interrupted"
    assert result.stop_lr is None
    assert result.warnings[0].startswith(
        "the loss had not turned up when the sweep was interrupted"
    )


def test_the_callback_sees_each_steps_training_loss_not_the_held_one():
    from lrkit.finder import range_test

    calls = []
    range_test(
        lambda lr: 3.0,
        evaluate=lambda: 1.0,
        num_iter=12,
        max_extra_iter=0,
        callback=lambda i, lr, loss: calls.append((i, loss)),
        warn=False,
    )
    assert calls == [(i, 3.0) for i in range(12)]


def test_range_test_refuses_reset_without_score():
    from lrkit.finder import range_test

    with pytest.raises(ValueError, match=r"^reset needs score \(the probes use both\), got score"):
        range_test(lambda lr: 1.0, reset=lambda: None)


def test_probes_of_a_sweep_without_a_step_run_nothing():
    sweep = Sweep(start_lr=1e-4, end_lr=1.0, num_iter=20)
    sweep.interrupt()
    calls = []
    probes = sweep.probe(
        reset=lambda: calls.append("reset"),
        step=lambda lr: calls.append(lr) or 1.0,
        score=lambda: 1.0,
    )
    assert probes is None
    assert calls == []


def test_ctrl_c_in_the_probes_carries_the_sweeps_own_result():
    sweep = Sweep(start_lr=1e-6, end_lr=1.0, num_iter=60, eval_batches=0, stop_early=False)
    for lr in sweep:
        sweep.record(_v_shaped(math.log10(lr) + 3.0))

    def step(lr):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        sweep.probe(reset=lambda: None, step=step, score=lambda: 1.0)
    carried = info.value.result
    assert carried.probes is None
    assert carried.losses.tolist() == sweep.result(warn=False).losses.tolist()
    assert carried.lr_min == sweep.result(warn=False).lr_min


def test_options_built_on_other_options_keep_their_rule_object():
    class Rule:
        __name__ = "half_last"

        def __call__(self, lrs, losses):
            return float(lrs[-1]) / 2

    rule = Rule()
    opts = SweepOptions.build(SweepOptions(rule=rule), num_iter=20)
    assert opts.rule is rule
    assert opts.num_iter == 20


def _saved(**changes):
    """The to_dict() of a 10-step sweep of a falling loss, with ``changes`` made to it."""
    sweep = Sweep(start_lr=1e-3, end_lr=1.0, num_iter=10, max_extra_iter=0)
    sweep.replay(_descent(10), stop_reason="completed")
    return {**sweep.result(warn=False).to_dict(), **changes}


def test_a_saved_result_whose_lrs_its_options_do_not_sweep_is_refused():
    from lrkit.finder import FinderResult

    state = _saved()
    state["lrs"] = [lr * 1.01 for lr in state["lrs"]]
    with pytest.raises(ValueError, match=r"^state\['lrs'\] are not the LRs its options sweep"):
        FinderResult.from_dict(state)


def test_a_saved_result_of_lrkit_0_1_0_gives_its_family_under_optimizer():
    from lrkit.finder import FinderResult

    state = _saved()
    del state["optimizer_family"]
    state["optimizer"] = "sgd"
    assert FinderResult.from_dict(state).optimizer_family == "sgd"


def test_a_saved_result_given_a_rule_of_another_name_says_which_it_follows():
    from lrkit.finder import FinderResult

    def half_last(lrs, losses):
        return float(lrs[-1]) / 2

    with pytest.warns(
        RuntimeWarning,
        match=r"used the rule 'budget_edge', the rule given is 'half_last': the suggestion "
        r"follows 'half_last'$",
    ):
        result = FinderResult.from_dict(_saved(), rule=half_last)
    assert result.suggestion == 0.5
