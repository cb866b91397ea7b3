"""Tests of FinderResult (lrkit.finder.result): the suggestions of another budget, the rules'
reading of a sweep that stopped early, and the dict summary read back."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import numpy as np
import pytest

from lrkit.finder import LRFinderWarning, Probes, Sweep, range_test
from lrkit.finder import rules as R


class _Quadratic:
    """Gradient descent on 0.5 * sum(h w^2), with the state a probe puts back."""

    def __init__(self):
        self.h = np.linspace(0.5, 2.0, 20)
        self.reset()

    def reset(self):
        self.w = np.ones(20)

    def step(self, lr):
        self.w = self.w - lr * self.h * self.w
        return self.loss()

    def loss(self):
        return float(0.5 * np.sum(self.h * self.w * self.w))

    def score(self):
        return self.loss() + 0.01


def _probed_sgd_result():
    task = _Quadratic()
    result = range_test(
        task.step,
        start_lr=1e-4,
        end_lr=10.0,
        num_iter=60,
        total_steps=500,
        optimizer_family="sgd",
        evaluate=task.loss,
        reset=task.reset,
        score=task.score,
        warn=False,
    )
    assert result.probes is not None and len(result.held_losses) == 15
    assert result.stop_reason == "diverged" and result.warnings == ()
    return result


def test_for_total_steps_of_the_own_budget_reads_the_held_curve_probes_and_family():
    result = _probed_sgd_result()

    def read(**kw):  # the result's own curves, read at its budget
        return R.suggestions(result.lrs, result.losses, held_lrs=result.held_lrs,
                             held_losses=result.held_losses, total_steps=500,
                             stop_reason="diverged", **kw)  # fmt: skip

    own = read(optimizer_family="sgd", probes=result.probes)
    same = result.for_total_steps(500)
    assert same == result._sugg == own
    assert (same.constant, same.max_lr) == (result.suggestion, result.max_lr)
    assert same.optimizer_family == "sgd"
    # the family and the probes both move the suggestions: neither is left out
    unprobed = read(optimizer_family="sgd")
    adaptive = read(probes=result.probes)
    assert unprobed.constant != same.constant
    assert adaptive.constant != same.constant


def test_to_dict_reads_back_through_json_with_its_probes_and_counts():
    result = _probed_sgd_result()
    d = json.loads(json.dumps(result.to_dict()))
    assert d["steps"] == len(result.losses) == 57
    assert d["extended"] == 0
    assert d["stop_reason"] == "diverged"
    assert d["stop_lr"] == result.stop_lr == result.lrs[-1]
    assert d["optimizer_family"] == d["optimizer"] == "sgd"
    assert d["total_steps"] == d["options"]["total_steps"] == 500
    assert d["base_lr"] == d["max_lr"] / 10.0 == result.base_lr
    assert d["suggestion"] == result.suggestion and d["lr_min"] == result.lr_min
    assert d["held_lrs"] == result.held_lrs.tolist()
    assert d["held_losses"] == result.held_losses.tolist()
    assert d["reliable"] is True and d["warnings"] == []
    assert Probes.from_dict(d["probes"]) == result.probes
    # the saved curve, replayed, gives the same suggestions
    sweep = Sweep(**d["options"])
    sweep.replay(
        d["losses"],
        held=dict(zip(d["held_lrs"], d["held_losses"])),
        stop_reason=d["stop_reason"],
        stop_lr=d["stop_lr"],
    )
    again = sweep.result(warn=False, probes=Probes.from_dict(d["probes"]))
    assert again.lrs.tolist() == d["lrs"]
    assert again.held_losses.tolist() == d["held_losses"]
    assert again.suggestion == result.suggestion
    assert again.max_lr == result.max_lr


def _saved_results():
    nan = iter([3.0, 2.9, 2.8, 2.7, 2.6, 2.5, math.nan])
    flat = range_test(lambda lr: 1.0 / (1.0 + lr), num_iter=30, warn=False)  # never turns up
    return {
        "probed": _probed_sgd_result(),
        "nan": range_test(
            lambda lr: next(nan), start_lr=1e-4, end_lr=1.0, num_iter=20, warn=False
        ),  # fmt: skip
        "lower bound": flat,
        "quadratic, adam": range_test(
            _Quadratic().step,
            num_iter=50,
            total_steps=3000,
            optimizer_family="adaptive",
            warn=False,
        ),  # fmt: skip
    }


@pytest.mark.parametrize("kind", ["probed", "nan", "lower bound", "quadratic, adam"])
def test_from_dict_rebuilds_the_result_to_dict_gave_through_json(kind):
    from lrkit.finder import FinderResult

    result = _saved_results()[kind]
    d = json.loads(json.dumps(result.to_dict()))
    again = FinderResult.from_dict(d)
    assert again.to_dict() == d  # curves, suggestions, warnings, probes: all as saved
    assert again.for_total_steps(2000) == result.for_total_steps(2000)
    assert again.suggest("valley") == result.suggest("valley")
    assert again.reliable == result.reliable and again.warnings == result.warnings


def test_from_dict_takes_a_callable_rule_back_by_name_and_names_what_is_missing():
    from lrkit.finder import FinderResult

    def middle(lrs, losses):
        return float(lrs[len(lrs) // 2])

    result = range_test(_Quadratic().step, num_iter=40, rule=middle, warn=False)
    d = json.loads(json.dumps(result.to_dict()))
    assert d["options"]["rule"] == "middle"
    assert FinderResult.from_dict(d, rule=middle).suggestion == result.suggestion
    with pytest.raises(ValueError) as info:
        FinderResult.from_dict(d)
    assert str(info.value).startswith(
        "the saved sweep used the rule 'middle', not one of lrkit.finder.RULES ("
    )
    assert str(info.value).endswith(
        "a callable rule, which a saved result holds by its name only: "
        "FinderResult.from_dict(state, rule=middle) (the same callable)"
    )
    with pytest.raises(ValueError, match=r"^state must be a dict from FinderResult\.to_dict\(\), "
                       r"got a dict without \['held_losses', 'held_lrs'\]$"):  # fmt: skip
        FinderResult.from_dict({k: v for k, v in d.items() if not k.startswith("held")})
    with pytest.raises(ValueError, match=r"^state must be a dict from FinderResult\.to_dict\(\), "
                       r"got list$"):  # fmt: skip
        FinderResult.from_dict([1, 2])


def test_to_dict_counts_the_nan_step_and_keeps_its_lr():
    values = iter([3.0, 2.9, 2.8, 2.7, 2.6, 2.5, math.nan])
    result = range_test(lambda lr: next(values), start_lr=1e-4, end_lr=1.0, num_iter=20, warn=False)
    d = result.to_dict()
    assert d["steps"] == result.steps == 7
    assert len(d["losses"]) == 6
    assert d["stop_reason"] == "nan"
    assert d["stop_lr"] == result.stop_lr == pytest.approx(1e-4 * 1e4 ** (6 / 19), rel=1e-15)
    assert d["reliable"] is False


def _v_shaped_step(lr):
    x = math.log10(lr) + 2.0
    return 1.0 + 0.5 * x * x if x > 0 else 1.0 - 0.3 * x


def test_fastais_rules_trim_by_the_planned_num_iter_of_a_sweep_that_stopped_early():
    result = range_test(
        _v_shaped_step, start_lr=1e-6, end_lr=1.0, num_iter=100, eval_batches=0, warn=False
    )
    assert result.stop_reason == "turned_up" and len(result.losses) == 81
    planned = R.RULES["valley"](result.lrs, result.losses, stop_reason="turned_up", num_iter=100)
    recorded = R.RULES["valley"](result.lrs, result.losses, stop_reason="turned_up", num_iter=81)
    assert planned != recorded  # the first 10 points are trimmed, not the first 8
    assert result.suggest("valley") == planned
    assert result.suggestions()["valley"] == planned


def test_from_dict_reads_held_losses_at_lrs_a_last_bit_off_and_names_what_is_wrong():
    from lrkit.finder import FinderResult

    result = _probed_sgd_result()
    d = json.loads(json.dumps(result.to_dict()))
    # as another machine's pow may write them: every LR a unit in the last place off
    shifted = {**d, "held_lrs": [math.nextafter(x, math.inf) for x in d["held_lrs"]]}
    shifted["lrs"] = [math.nextafter(x, 0.0) for x in d["lrs"]]
    again = FinderResult.from_dict(shifted)
    assert again.held_losses.tolist() == d["held_losses"]
    assert (again.suggestion, again.lr_min) == (result.suggestion, result.lr_min)

    def refused(error, match, **changes):
        with pytest.raises(error, match=match):
            FinderResult.from_dict({**d, **changes})

    refused(ValueError, r"^state\['held_lrs'\]\[0\] = 5\.0 is not an LR of the steps in ",
            held_lrs=[5.0, *d["held_lrs"][1:]])  # fmt: skip
    refused(ValueError, r"^state\['stop_lr'\] must be ", stop_lr="x")
    refused(ValueError, r"^state\['stop_reason'\] must be one of ", stop_reason="tired")
    refused(ValueError, r"^state\['optimizer_family'\] must be one of ", optimizer_family="x")
    refused(ValueError, r"^state\['probes'\]: ", probes={"lrs": [1.0]})
    with pytest.raises(TypeError, match=r"^rule must be the callable rule the saved result "):
        FinderResult.from_dict(d, rule="valley")


def test_a_budget_below_the_fitted_ones_is_a_warning_that_for_total_steps_replaces():
    result = range_test(_Quadratic().step, start_lr=1e-4, end_lr=10.0, num_iter=60,
                        total_steps=50, warn=False)  # fmt: skip
    assert result.stop_reason == "diverged"
    assert result.warnings == (R.budget_message(50),) and result.reliable is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a budget within the fitted ones warns nothing
        longer = result.for_total_steps(500)
    assert longer.warnings == () and longer.reliable is True
    with pytest.warns(LRFinderWarning, match=r"^LR range test: total_steps=20 is below ") as rec:
        shorter = result.for_total_steps(20)
    assert len(rec) == 1 and str(rec[0].message) == f"LR range test: {R.budget_message(20)}"
    assert shorter.warnings == (R.budget_message(20),) and shorter.reliable is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = result.for_total_steps(20, warn=False)
    assert quiet.warnings == (R.budget_message(20),)
    with pytest.raises(ValueError, match=r"^warn must be True or False, got 'no'"):
        result.for_total_steps(500, warn="no")


def test_the_result_reads_back_the_options_and_suggestions_it_was_made_with():
    result = range_test(_Quadratic().step, start_lr=1e-5, end_lr=5.0, num_iter=45,
                        mode="linear", beta=0.9, diverge_th=3.0, rule="valley",
                        optimizer_family="momentum", warn=False)  # fmt: skip
    given = {"start_lr": 1e-5, "end_lr": 5.0, "num_iter": 45, "mode": "linear", "beta": 0.9,
             "diverge_th": 3.0, "rule": "valley"}  # fmt: skip
    d = json.loads(json.dumps(result.to_dict()))
    for name, value in given.items():
        assert getattr(result, name) == d[name] == value, name
    assert result.method == "valley"
    assert d["smoothed"] == result.smoothed.tolist() != d["losses"]
    sugg = result._sugg
    assert (result.max_lr, result.peak_lr, result.lr_min) == (sugg.max_lr, sugg.peak_lr,
                                                              sugg.lr_min)  # fmt: skip
    assert len({result.max_lr, result.peak_lr, result.lr_min}) == 3
    every = result.suggestions()
    assert list(every) == list(R.RULES)
    assert every[R.DEFAULT_RULE] == result.suggest(R.DEFAULT_RULE) == sugg.constant
    assert every["valley"] == result.suggestion
    with pytest.raises(ValueError, match=r"^rule must be one of .*, got ''$"):
        result.suggest("")


def test_for_total_steps_reads_the_curve_as_turned_up_where_the_sweep_stopped_so():
    sweep = Sweep(num_iter=30, eval_batches=0)
    sweep.replay(np.linspace(2.0, 1.0, 20), stop_reason="turned_up")  # stopped while descending
    result = sweep.result(warn=False)
    assert result.warnings == () and result._sugg.turned_up is True
    again = result.for_total_steps(1000)
    assert again == result._sugg and again.turned_up is True


def test_a_callable_rule_is_given_copies_of_the_held_curve():
    result = _probed_sgd_result()
    before = [a.copy() for a in (result.lrs, result.losses, result.held_lrs, result.held_losses)]
    seen = []

    def overwrite(lrs, losses):
        seen.append((lrs.tolist(), losses.tolist()))
        lrs[:], losses[:] = 1.0, 0.0
        return 0.01

    assert result.suggest(overwrite) == 0.01
    assert seen == [(before[2].tolist(), before[3].tolist())]  # the held curve, 15 points
    after = (result.lrs, result.losses, result.held_lrs, result.held_losses)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_a_sweep_rule_that_raises_leaves_the_suggestion_none_and_says_why():
    def broken(lrs, losses):
        raise RuntimeError("no answer")

    result = range_test(_Quadratic().step, num_iter=40, rule=broken, warn=False)
    assert result.suggestion is None and result.reliable is False
    assert any("no answer" in m for m in result.warnings)
    d = result.to_dict()
    assert d["suggestion"] is None and d["max_lr"] == result.max_lr is not None


def test_to_dict_of_a_sweep_without_a_step():
    d = json.loads(json.dumps(Sweep(num_iter=10).result(warn=False).to_dict()))
    assert d["stop_lr"] is None and d["steps"] == 0 and d["lrs"] == []
    assert d["suggestion"] is None and set(d["suggestions"].values()) == {None}


# ----------------------------------------------------------------------------- plot


@pytest.fixture
def plt():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def _lines(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def _descent_then_divergence(lr):
    return 2.0 - 0.05 * math.log10(lr / 1e-7) if lr < 1e-2 else 1e6


def test_plot_draws_the_curves_the_suggestions_and_the_stop_in_a_frame_of_the_losses(plt):
    result = range_test(_descent_then_divergence, num_iter=60, eval_batches=0, warn=False)
    assert result.stop_reason == "diverged"
    ax = result.plot(title="descent, then divergence")
    assert ax.get_title() == "descent, then divergence"
    lines = _lines(ax)
    assert "loss (raw)" in lines and f"loss (lag-free, {R.DEFAULT_RULE})" in lines
    assert list(lines[f"max_lr: {result.max_lr:.2e}"].get_xdata()) == [result.max_lr] * 2
    for line in lines.values():  # the sweep's rule solid, the others dashed
        if list(line.get_xdata()) == [result.suggestion] * 2:
            assert line.get_linestyle() == "-" and line.get_label().startswith(R.DEFAULT_RULE)
        elif line.get_label().split(":")[0] in R.RULES:
            assert line.get_linestyle() == "--", line.get_label()
    # from the lowest loss to above the first half's highest: the divergence left out
    y, s = result.losses, result.smoothed
    lo, hi = min(y.min(), s.min()), max(s[: len(s) // 2].max(), s[0])
    span = hi - lo
    assert ax.get_ylim() == pytest.approx((lo - 0.05 * span, hi + 0.3 * span), rel=1e-12)
    stop = lines["stop: diverged"]
    assert list(stop.get_xdata()) == [result.stop_lr]
    assert list(stop.get_ydata()) == pytest.approx([hi + 0.27 * span], rel=1e-12)
    assert "loss (raw)" not in _lines(result.plot(show_raw=False))


def test_plot_frames_a_flat_curve_at_a_twentieth_of_its_level(plt):
    ax = range_test(lambda lr: 1.0, num_iter=20, warn=False).plot()
    assert ax.get_ylim() == pytest.approx((1.0 - 0.0025, 1.0 + 0.015), rel=1e-12)


def test_plot_of_the_held_curve_and_of_a_nan_stop(plt):
    ax = _probed_sgd_result().plot()
    assert f"loss (held batches, {R.DEFAULT_RULE})" in _lines(ax)
    values = iter([3.0, 2.9, 2.8, 2.7, 2.6, 2.5, math.nan])
    nan = range_test(lambda lr: next(values), start_lr=1e-4, end_lr=1.0, num_iter=20, warn=False)
    stop = _lines(nan.plot())["stop: nan"]
    assert list(stop.get_xdata()) == [nan.stop_lr] != [nan.lrs[-1]]


def test_plot_without_a_step_says_why_around_the_lr_it_stopped_at(plt):
    result = range_test(lambda lr: math.nan, start_lr=1e-6, num_iter=10, warn=False)
    ax = result.plot()
    assert ax.get_xlim() == pytest.approx((1e-7, 1e-5), rel=1e-12)
    assert [t.get_text() for t in ax.texts] == ["no step completed: stopped (nan) at LR 1e-06"]


def test_plot_draws_a_callable_rules_suggestion_at_it(plt):
    def middle(lrs, losses):
        return float(lrs[len(lrs) // 2])

    result = range_test(_Quadratic().step, num_iter=40, rule=middle, warn=False)
    line = _lines(result.plot())[f"middle: {result.suggestion:.2e}"]
    assert list(line.get_xdata()) == [result.suggestion] * 2 and line.get_linestyle() == "-"


def test_plot_draws_the_finite_probes_and_the_best_one_unless_all_diverged(plt):
    result = _probed_sgd_result()
    lrs, n = result.probes.lrs, len(result.probes.lrs)
    losses = (math.inf, *np.linspace(0.5, 0.9, n - 1))
    some = dataclasses.replace(result, probes=Probes(result.lr_min, lrs, losses))
    ax = some.plot()
    twin = next(a for a in ax.figure.axes if a is not ax)
    lines = _lines(twin)
    assert list(lines[f"probes ({result.probes.steps} steps)"].get_xdata()) == list(lrs[1:])
    assert f"best probe: {some.probes.best_lr:.2e}" in lines
    none = dataclasses.replace(result, probes=Probes(result.lr_min, lrs, (math.inf,) * n))
    ax = none.plot()
    twin = next(a for a in ax.figure.axes if a is not ax)
    assert [k for k in _lines(twin) if k.startswith("best probe")] == []


def test_plot_puts_the_legend_beside_its_own_axes_and_inside_the_callers(plt):
    result = _probed_sgd_result()
    own = result.plot()
    own.figure.canvas.draw()
    assert own.get_legend().get_window_extent().x0 > own.get_window_extent().x1
    fig, (left, right) = plt.subplots(1, 2, figsize=(16, 5))
    assert result.plot(left) is left
    fig.canvas.draw()
    inside, frame = left.get_legend().get_window_extent(), left.get_window_extent()
    assert frame.x0 <= inside.x0 and inside.x1 <= frame.x1


def test_plot_writes_its_file_only_where_the_result_writes_files(plt, tmp_path):
    result = range_test(_Quadratic().step, num_iter=40, warn=False)
    result.plot(path=str(tmp_path / "a.png"))
    dataclasses.replace(result, writes_files=False).plot(path=str(tmp_path / "b.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_plot_draws_one_line_for_rules_that_agree_styled_as_the_sweeps_rule(plt):
    valley = range_test(_Quadratic().step, num_iter=40, warn=False).suggest("valley")

    def same(lrs, losses):
        return valley

    result = range_test(_Quadratic().step, num_iter=40, rule=same, warn=False)
    assert result.suggest("valley") == result.suggestion == valley
    line = _lines(result.plot())[f"valley, same: {valley:.2e}"]
    assert line.get_linestyle() == "-" and line.get_color() == "C6"


def test_a_result_without_a_step_still_refuses_an_unknown_rule():
    result = Sweep(num_iter=10).result(warn=False)
    assert result.suggest("valley") is None
    with pytest.raises(ValueError, match=r"^rule must be one of .*, got 'fastest'$"):
        result.suggest("fastest")


def test_to_dict_and_from_dict_keep_the_steps_an_extended_sweep_added():
    from lrkit.finder import FinderResult

    result = range_test(lambda lr: 1.0 - 0.1 * math.log10(lr / 1e-5), start_lr=1e-5,
                        end_lr=1e-2, num_iter=50, warn=False)  # fmt: skip
    assert result.extended == 49 and len(result.losses) == 99
    d = json.loads(json.dumps(result.to_dict()))
    assert d["extended"] == 49
    again = FinderResult.from_dict(d)
    assert again.extended == 49 and again.to_dict() == d


def test_to_dict_keeps_a_replayed_sweeps_stop_lr_of_none():
    sweep = Sweep(num_iter=20)
    sweep.replay([3.0, 2.0, 1.0], stop_reason="interrupted")
    result = sweep.result(warn=False)
    assert result.stop_lr is None and result.to_dict()["stop_lr"] is None


def test_plot_frames_the_losses_by_the_highest_of_the_first_half(plt):
    # beta=0: the EMA is the raw curve; a bump to 3.0 at index 8 of 20 lies in the first half
    # (indices 0-9): from 1.0 to 3.0, a span of 2.0, framed 5% below and 30% above
    losses = [2.0] * 8 + [3.0] + [1.0] * 11
    values = iter(losses)
    result = range_test(lambda lr: next(values), num_iter=20, beta=0.0, diverge_th=10.0,
                        stop_early=False, max_extra_iter=0, warn=False)  # fmt: skip
    assert result.losses.tolist() == losses
    assert result.plot().get_ylim() == pytest.approx((0.9, 3.6), rel=1e-12)


def test_plot_draws_the_raw_losses_and_their_ema_as_recorded(plt):
    values = iter([3.0, 2.0, 2.5, 1.0, 1.5] * 4)
    result = range_test(lambda lr: next(values), num_iter=20, beta=0.5, diverge_th=10.0,
                        stop_early=False, max_extra_iter=0, warn=False)  # fmt: skip
    lines = _lines(result.plot())
    assert lines["loss (raw)"].get_ydata().tolist() == result.losses.tolist()
    ema = lines["loss (EMA, beta=0.5)"].get_ydata().tolist()
    assert ema == result.smoothed.tolist() != result.losses.tolist()


def test_plot_of_a_sweep_over_2_decades_labels_its_lrs_as_plain_numbers(plt):
    result = range_test(lambda lr: (math.log10(lr) + 2) ** 2 + 1, start_lr=1e-3, end_lr=0.1,
                        num_iter=30, eval_batches=0, warn=False)  # fmt: skip
    assert result.lrs[-1] <= 0.1 * (1 + 1e-12)
    axis = result.plot().xaxis
    assert axis.get_major_formatter()(0.05, 0) == "0.05"
