"""Tests of the sweep itself (lrkit.finder.sweep): its options' bounds, the held-loss cadence,
replayed curves, divergence, the extension past end_lr and where and why it stops."""

from __future__ import annotations

import math

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
