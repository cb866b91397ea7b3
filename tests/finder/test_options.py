"""lrkit.finder: the shared options object, held-batch measurement, bounded extension,
budget-aware default rule, public rules."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.finder import (
    DEFAULT_RULE,
    RULES,
    FinderResult,
    Sweep,
    SweepOptions,
    optimizer_family,
    range_test,
    suggest,
    suggestions,
)
from lrkit.finder import _coefficients as C
from lrkit.finder.rules import EDGE_CAP, smooth_curve, turned_up
from lrkit.finder.smoothing import robust_smooth
from lrkit.finder.sweep import risen

# a curve that descends, bottoms out at lr ~ 1e-2 and rises (analytic, no noise)


def bowl(lr: float) -> float:
    x = math.log10(lr)
    return 2.0 - 1.5 / (1 + math.exp(-2.0 * (x + 4))) + 0.2 * max(0.0, x + 2) ** 2


def test_options_defaults_validation_and_method_alias():
    o = SweepOptions()
    assert (o.start_lr, o.end_lr, o.num_iter, o.eval_every, o.eval_batches) == (
        1e-7,
        10.0,
        100,
        4,
        1,
    )
    assert o.rule == DEFAULT_RULE and o.ceiling == 1e4
    assert SweepOptions.build(method="valley").rule == "valley"
    assert SweepOptions.build(o, num_iter=50).num_iter == 50
    with pytest.raises(
        TypeError,
        match=r"^num_iters is not an option of the range test \(use num_iter\); options: beta, ",
    ):
        SweepOptions.build(num_iters=5)
    with pytest.raises(TypeError, match=r"^smooth_f .* beta = 1 - smooth_f"):
        SweepOptions.build(smooth_f=0.05)  # torch-lr-finder's name
    with pytest.raises(TypeError, match=r"^num_training_steps .*\(use total_steps, the optim"):
        SweepOptions.build(num_training_steps=1000)  # Hugging Face's run length, not num_iter
    for kw, name in [
        ({"eval_every": 0}, "eval_every"),
        ({"eval_batches": -1}, "eval_batches"),
        ({"max_extra_iter": -1}, "max_extra_iter"),
        ({"max_end_lr": 1.0}, "max_end_lr"),
        ({"total_steps": 0}, "total_steps"),
        ({"optimizer_family": "lion"}, "optimizer_family"),
        ({"rule": "best"}, "rule"),
    ]:
        with pytest.raises(ValueError, match=name):
            SweepOptions(**kw)
    with pytest.raises(ValueError, match="options must be a SweepOptions"):
        SweepOptions.build({"num_iter": 5})  # type: ignore[arg-type]


def test_same_result_from_options_object_and_keywords():
    a = range_test(bowl, options=SweepOptions(num_iter=40, total_steps=300), warn=False)
    b = range_test(bowl, num_iter=40, total_steps=300, warn=False)
    np.testing.assert_array_equal(a.lrs, b.lrs)
    assert a.suggestion == b.suggestion and a.max_lr == b.max_lr and a.options == b.options


def test_held_loss_measured_every_eval_every_steps_and_read_by_the_rule():
    calls = []

    def evaluate():
        calls.append(len(calls))
        return 1.0 + len(calls)

    r = range_test(lambda lr: 1.0, num_iter=20, eval_every=3, max_extra_iter=0, evaluate=evaluate,
                   diverge_th=100.0, warn=False)  # fmt: skip
    assert len(r.losses) == 20
    np.testing.assert_array_equal(r.held_lrs, r.lrs[::3])
    np.testing.assert_array_equal(r.held_losses, [2.0 + i for i in range(7)])
    assert r.curve[0] is r.held_lrs
    # eval_batches=0 turns the held measurement off: an evaluate given with it is refused
    # before any step (as val_data is by the framework finders), and without it the rule
    # reads the training losses
    calls.clear()
    with pytest.raises(ValueError) as info:
        range_test(bowl, num_iter=20, eval_batches=0, evaluate=evaluate, warn=False)
    assert str(info.value) == (
        "evaluate is given but eval_batches=0 turns the held measurement off: give "
        "eval_batches >= 1 (the default) to measure with evaluate, or drop evaluate"
    )
    assert calls == []
    r = range_test(bowl, num_iter=20, eval_batches=0, warn=False)
    assert len(r.held_losses) == 0 and r.curve[0] is r.lrs


def test_held_loss_divergence_stops_the_sweep():
    held = iter([1.0, 0.9, 0.8, 10.0, 1.0, 1.0])
    r = range_test(lambda lr: 1.0, num_iter=30, eval_every=1, evaluate=lambda: next(held),
                   warn=False)  # fmt: skip
    assert r.stop_reason == "diverged" and len(r.losses) == 4


@pytest.mark.parametrize("held", [False, True])
def test_a_loss_below_0_diverges_as_the_same_curve_above_0_does(held: bool) -> None:
    """A negative log-likelihood's best loss is below 0: the sweep stops when the loss has
    risen above it by (diverge_th - 1) times its size, as it stops at diverge_th times a
    positive best."""

    def curve(shift: float) -> Callable[[float], float]:
        def f(lr: float) -> float:
            base = 1.0 - 0.1 * math.log10(lr / 1e-7) if lr < 1e-2 else 0.5
            return base + (0.0 if lr < 1e-2 else (lr / 1e-2) ** 3 - 1) + shift

        return f

    def run(shift: float) -> FinderResult:
        if held:  # the same curve measured on held batches; the training loss is flat
            last = {"lr": 1e-7}

            def step(lr: float) -> float:
                last["lr"] = lr
                return 1.0

            return range_test(step, evaluate=lambda: curve(shift)(last["lr"]), eval_every=1,
                              stop_early=False, warn=False)  # fmt: skip
        return range_test(curve(shift), stop_early=False, warn=False)

    up = run(10.0)  # best 10.5: stops above 52.5
    down = run(-3.0)  # best -2.5: stops above -2.5 + 4 * 2.5 = 7.5
    assert up.stop_reason == down.stop_reason == "diverged"
    assert down.steps <= up.steps < 100
    values = down.held_losses if held else down.smoothed
    assert values[-1] > -2.5 + 4 * 2.5 >= max(values[:-1])


def test_a_best_loss_of_exactly_0_diverges_by_the_first_losss_size() -> None:
    """The held loss (read as measured, not smoothed) reaches exactly 0: a rise above it by
    4 x the first held loss's size (1.0) is a divergence."""
    last = {"lr": 0.0}

    def step(lr: float) -> float:
        last["lr"] = lr
        return 1.0

    def held() -> float:  # 1 at first, 0 from 1e-4 on, then a steep rise
        lr = last["lr"]
        return (1.0 if lr < 1e-4 else 0.0) + max(0.0, lr - 1e-2) * 1e6

    r = range_test(step, evaluate=held, eval_every=1, stop_early=False, warn=False)
    assert min(r.held_losses) == 0.0 and r.stop_reason == "diverged"
    assert r.held_losses[-1] > 4.0 >= max(r.held_losses[1:-1])
    # a loss that is 0 from the first step has no size to judge a rise by: it runs on
    flat = range_test(lambda lr: max(0.0, lr - 1e-2) * 1e6, start_lr=1e-6, stop_early=False,
                      max_extra_iter=0, warn=False)  # fmt: skip
    assert flat.stop_reason == "completed"


def test_a_loss_that_crosses_0_on_its_way_down_is_not_judged_by_a_best_close_to_0() -> None:
    """A negative log-likelihood's zero is where its constant terms put it: just past it, a
    bump of the loss is not a divergence (the loss's size is its first value's, 0.5 here);
    the rise at the end is."""
    steps = iter(range(1000))

    def loss(lr: float) -> float:
        i = next(steps)
        bump = 1.0 if 38 <= i < 41 else 0.0  # the smoothed loss is at -0.04 when it comes
        return 0.5 - 1.5 * min(i, 80) / 80 + bump + (0.0 if i < 80 else 3.0 ** (i - 80) - 1)

    r = range_test(loss, stop_early=False, warn=False)
    assert min(r.smoothed[:38]) < 0 < max(r.smoothed[38:42])
    assert r.stop_reason == "diverged" and len(r.losses) > 80


def test_extension_stops_when_the_curve_turns_up():
    # the bowl's bottom is at 1e-2; with end_lr=1e-3 the sweep must extend past it
    r = range_test(bowl, start_lr=1e-7, end_lr=1e-3, num_iter=50, warn=False)
    assert r.extended > 0 and r.lrs[-1] > 1e-2
    assert turned_up(r.lrs, r.losses) and r.reliable
    s = Sweep(start_lr=1e-7, end_lr=1e-3, num_iter=50)
    np.testing.assert_allclose(r.lrs, [s.lr_at(i) for i in range(len(r.lrs))], rtol=1e-12)
    # the curve had not turned up one step earlier
    assert not turned_up(r.lrs[:-1], r.losses[:-1])


def test_extension_is_bounded_by_the_step_cap_and_the_ceiling():
    down = lambda lr: 1.0 / (1.0 + lr)  # noqa: E731 - never turns up
    r = range_test(down, start_lr=1e-6, end_lr=1e-3, num_iter=31, max_extra_iter=7, warn=False)
    assert r.extended == 7 and len(r.losses) == 38 and not r.reliable
    assert any("never turned up" in w for w in r.warnings)
    r = range_test(down, start_lr=1e-6, end_lr=1e-3, num_iter=31, max_end_lr=1e-2, warn=False)
    # 10 steps per decade: 1e-3 -> 1e-2 is 10 more steps, the last one exactly at the ceiling
    assert r.extended == 10 and r.lrs[-1] == pytest.approx(1e-2, rel=1e-9)
    r = range_test(down, start_lr=1e-6, end_lr=1e-3, num_iter=31, max_extra_iter=0, warn=False)
    assert r.extended == 0 and len(r.losses) == 31 and not r.reliable


def test_extension_cap_defaults_to_50_or_half_a_denser_sweep():
    down = lambda lr: 2.0 - 0.05 * math.log10(lr)  # noqa: E731 - descends at every LR
    # the default sweep (1e-7 to 10 in 100 steps): 50 extra steps, about 4 decades
    r = range_test(down, max_end_lr=1e9, warn=False)
    assert r.extended == 50 and not r.reliable
    # four times as dense: num_iter // 2 = 200 extra steps, about the same 4 decades
    r4 = range_test(down, num_iter=400, max_end_lr=1e9, warn=False)
    assert r4.extended == 200
    assert math.log10(r4.lrs[-1] / r.lrs[-1]) == pytest.approx(0.0, abs=0.1)
    assert SweepOptions().extra_iter == 50 and SweepOptions().max_extra_iter is None
    assert SweepOptions(num_iter=20).extra_iter == 50
    assert SweepOptions(num_iter=400).extra_iter == 200
    assert SweepOptions(num_iter=400, max_extra_iter=7).extra_iter == 7
    # a default cap follows num_iter when options are rebuilt with another num_iter
    assert SweepOptions.build(SweepOptions(), num_iter=400).extra_iter == 200
    assert SweepOptions(**SweepOptions(num_iter=400).to_dict()).extra_iter == 200
    with pytest.raises(ValueError, match="max_extra_iter"):
        SweepOptions(max_extra_iter=-1)


def test_default_rule_formula_exact_for_every_schedule_budget_and_family():
    lrs = np.logspace(-7, 1, 100)
    y = np.array([bowl(v) for v in lrs])
    lr_min = float(lrs[int(np.argmin(robust_smooth(y)))])  # training curve only
    held = np.array([bowl(v) * 1.01 for v in lrs[::4]])
    r = smooth_curve(lrs[::4], held)
    m = int(np.argmin(r))
    lr_held = float(lrs[::4][m])
    capped = False
    for fam in ("sgd", "momentum", "adaptive"):
        for steps in (10, 100, 1000, 5000):
            s = suggestions(lrs, y, total_steps=steps, optimizer_family=fam, stop_reason="diverged")
            clamped = min(max(steps, C.STEPS_RANGE[0]), C.STEPS_RANGE[1])
            t = math.log(clamped / 1000)
            for key, got in (("constant", s.constant), ("onecycle", s.max_lr),
                             ("warmup_cosine", s.peak_lr)):  # fmt: skip
                factor = math.exp(C.INTERCEPT[key][fam] + C.BUDGET_SLOPE[key] * t)
                want = lr_min * min(factor, EDGE_CAP)  # never above half the edge
                assert got == pytest.approx(want, rel=1e-12)
                capped = capped or factor > EDGE_CAP
            assert s.lr_min == lr_min and s.turned_up and s.descended
    assert capped  # the short one-cycle budgets reach the cap
    d = suggestions(lrs, y)  # documented defaults: 1000 steps, adaptive
    assert (d.total_steps, d.optimizer_family) == (1000, "adaptive")
    # with a held curve: the geometric mean of the two edges (the held one refined between
    # grid points, within half a step of its lowest point)
    h = suggestions(lrs, y, held_lrs=lrs[::4], held_losses=held)
    edge_held = h.lr_min**2 / lr_min
    step = lrs[4] / lrs[0]
    assert lr_held / step**0.5 * (1 - 1e-9) <= edge_held <= lr_held * step**0.5 * (1 + 1e-9)
    assert h.constant == pytest.approx(h.lr_min * math.exp(C.INTERCEPT["constant"]["adaptive"]))


def test_result_follows_total_steps_and_optimizer_family():
    a = range_test(bowl, total_steps=200, optimizer_family="sgd", warn=False)
    b = range_test(bowl, total_steps=200, warn=False)
    assert a.optimizer_family == "sgd" and b.optimizer_family is None
    assert a.suggestion != b.suggestion  # the family changes the default rule's LRs
    s = suggestions(*a.curve, total_steps=200, optimizer_family="sgd", stop_reason=a.stop_reason)
    assert (a.suggestion, a.max_lr, a.peak_lr) == (s.constant, s.max_lr, s.peak_lr)
    assert a.base_lr == pytest.approx(a.max_lr / 10)


def test_rules_are_public_and_suggest_takes_a_name_or_a_callable():
    assert set(RULES) == {DEFAULT_RULE, "steepest", "valley", "minimum", "slide", "steep"}
    lrs = np.logspace(-7, 1, 100)
    y = np.array([bowl(v) for v in lrs])

    def at_min(x, v):
        return float(x[int(np.argmin(v))])

    assert suggest(lrs, y, rule=at_min) == at_min(lrs, y)
    assert suggest(lrs, y, rule="minimum") == RULES["minimum"](lrs, y)
    r = range_test(bowl, eval_batches=0, warn=False)
    assert r.suggest(at_min) == at_min(r.lrs, r.losses)
    assert r.suggest("valley") == RULES["valley"](
        r.lrs, r.losses, beta=r.beta, num_iter=r.options.num_iter
    )
    assert range_test(bowl, rule=at_min, warn=False).suggestion == at_min(r.lrs, r.losses)
    with pytest.raises(ValueError, match="rule must be one of"):
        suggest(lrs, y, rule="fastest")


@pytest.mark.parametrize(
    "name,momentum,family",
    [("SGD", 0.0, "sgd"), ("sgd", 0.9, "momentum"), ("Adam", 0.0, "adaptive"),
     ("RMSprop", 0.9, "adaptive"), ("adagrad", 0.0, "adaptive")],
)  # fmt: skip
def test_optimizer_family(name, momentum, family):
    assert optimizer_family(name, momentum=momentum) == family


def test_to_dict_carries_options_and_reliability():
    r = range_test(bowl, total_steps=300, warn=False)
    d = r.to_dict()
    assert d["options"]["total_steps"] == 300 and d["options"]["rule"] == DEFAULT_RULE
    assert d["reliable"] is True and d["peak_lr"] == r.peak_lr
    assert len(d["held_losses"]) == 0


@settings(max_examples=40, deadline=None)
@given(
    scale=st.floats(1e-3, 1e3),
    steps=st.integers(1, 5000),
    family=st.sampled_from(["sgd", "momentum", "adaptive"]),
    seed=st.integers(0, 10_000),
)
def test_default_rule_is_scale_equivariant(scale, steps, family, seed):
    """Multiplying every LR of a sweep by c multiplies every suggestion by c."""
    rng = np.random.default_rng(seed)
    lrs = np.logspace(-7, 1, 100)
    y = np.array([bowl(v) for v in lrs]) + 0.05 * rng.normal(size=100)
    hx, hy = lrs[::4], np.array([bowl(v) for v in lrs[::4]]) + 0.01 * rng.normal(size=25)
    a = suggestions(lrs, y, held_lrs=hx, held_losses=hy, total_steps=steps, optimizer_family=family)
    b = suggestions(lrs * scale, y, held_lrs=hx * scale, held_losses=hy, total_steps=steps,
                    optimizer_family=family)  # fmt: skip
    for u, v in ((a.constant, b.constant), (a.max_lr, b.max_lr), (a.peak_lr, b.peak_lr)):
        assert v == pytest.approx(u * scale, rel=1e-9)
    assert a.turned_up == b.turned_up


# ----------------------------------------------------------------------------- early stop


curves = st.tuples(
    st.floats(-6.0, 0.0),  # log10 of the LR of the minimum
    st.floats(0.05, 3.0),  # depth of the descent
    st.floats(0.0, 0.3),  # noise, relative to the depth
    st.floats(0.2, 4.0),  # steepness of the rise
    st.integers(0, 2**32 - 1),
)


def _noisy_bowl(params: tuple[float, float, float, float, int]) -> Callable[[float], float]:
    """A descent (of ``depth``, ending 1.5 decades before ``centre``), a floor, a quadratic
    rise after ``centre``, and Gaussian noise; reproducible from ``seed``."""
    centre, depth, noise, rise, seed = params
    rng = np.random.default_rng(seed)

    def step(lr: float) -> float:
        x = math.log10(lr) - centre
        y = 1.0 + depth / (1.0 + math.exp(3.0 * (x + 1.5))) + rise * max(x, 0.0) ** 2
        return y + noise * depth * float(rng.standard_normal())

    return step


@settings(max_examples=40, deadline=None)
@given(params=curves)
def test_an_early_stop_is_a_prefix_of_the_full_sweep_and_has_turned_up(
    params: tuple[float, float, float, float, int],
) -> None:
    early = range_test(_noisy_bowl(params), warn=False)
    full = range_test(_noisy_bowl(params), warn=False, stop_early=False)
    n = len(early.losses)
    # the same steps, the same losses, up to where the early sweep stopped
    np.testing.assert_array_equal(early.lrs, full.lrs[:n])
    np.testing.assert_array_equal(early.losses, full.losses[:n])
    assert n <= len(full.losses)
    if early.stop_reason == "turned_up":  # it stopped because the curve had risen
        assert risen(early.lrs, early.losses) and turned_up(early.lrs, early.losses)
    else:
        assert early.stop_reason == full.stop_reason and n == len(full.losses)


def test_noise_on_a_flat_start_does_not_stop_the_sweep() -> None:
    # batch noise of 30% of the descent on a flat start: a rise of the noise alone (before any
    # clear descent) is no reason to stop; the sweep runs past the minimum at 10**-0.45
    early = range_test(_noisy_bowl((-0.45, 1.74, 0.3, 0.74, 0)), warn=False)
    assert early.lrs[-1] > 10**-0.45
    full = range_test(_noisy_bowl((-0.45, 1.74, 0.3, 0.74, 0)), warn=False, stop_early=False)
    assert abs(math.log10(early.lr_min / full.lr_min)) < 0.5


@pytest.mark.parametrize(
    "name,hint",
    [
        ("stop_div", "the sweep always stops on divergence; diverge_th sets where"),
        ("show_plot", "use result.plot()"),
        ("val_loader", "use val_data, an argument of every find_lr"),
        ("update_attr", "set the learning rate from result.suggestion"),
    ],
)
def test_the_names_of_fastai_torch_lr_finder_and_lightning_point_to_lrkits(name, hint):
    with pytest.raises(TypeError) as e:
        SweepOptions.build(**{name: True})
    assert str(e.value).startswith(f"{name} is not an option of the range test ({hint}); ")


def test_rule_and_its_alias_method_together_are_refused():
    with pytest.raises(TypeError) as e:
        SweepOptions.build(rule="valley", method="minimum")
    assert str(e.value) == (
        "rule and method name the same option (method is its alias): pass one, "
        "got rule='valley' and method='minimum'"
    )
    assert SweepOptions.build(method="minimum").rule == "minimum"


def test_a_numpy_bool_option_is_stored_as_a_bool_and_the_result_stays_json() -> None:
    import json

    opts = SweepOptions(stop_early=np.bool_(False))
    assert opts.stop_early is False
    sweep = Sweep(opts)
    for k, _ in enumerate(sweep):
        sweep.record(3.0 - 0.01 * k if k < 60 else 10.0**k)
    result = sweep.result(warn=False)
    assert json.loads(json.dumps(result.to_dict()))["options"]["stop_early"] is False


def test_for_total_steps_checks_its_argument_when_no_step_ran() -> None:
    sweep = Sweep(SweepOptions())
    for _ in sweep:
        sweep.record(math.nan)
    result = sweep.result(warn=False)
    assert result.suggestion is None and result.for_total_steps(100) is None
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="total_steps must be an integer >= 1"):
            result.for_total_steps(bad)


def test_a_range_whose_ratio_float64_cannot_hold_is_refused() -> None:
    from lrkit.finder import SweepOptions

    with pytest.raises(
        ValueError,
        match=r"^end_lr / start_lr must be a ratio float64 holds .*got 10000000000\.0 / 1e-300 "
        r"\(inf\)$",
    ):
        SweepOptions(start_lr=1e-300, end_lr=1e10)
    assert SweepOptions(start_lr=1e-300, end_lr=1e10, mode="linear").end_lr == 1e10


def test_an_extension_near_float64_s_limit_records_no_infinite_lr() -> None:
    """A curve that never turns up is extended toward 1000 x end_lr, which float64 may not
    hold: the extension stops at the last LR it holds (the LRs, the suggestion: finite)."""
    from lrkit.finder import range_test

    for start, end in ((1e-10, 1e297), (1e-2, 1e306)):
        r = range_test(lambda lr: 1.0 / (1.0 + math.log1p(lr)), start_lr=start, end_lr=end,
                       num_iter=50, stop_early=False)  # fmt: skip
        assert np.isfinite(r.lrs).all() and max(r.lrs) <= 1000 * end
        assert r.suggestion is None or math.isfinite(r.suggestion)


@pytest.mark.parametrize("rule", ["budget_edge", "steepest", "valley", "minimum", "slide", "steep"])
def test_every_rule_refuses_non_finite_losses_and_lrs_not_above_0(rule) -> None:
    from lrkit.finder import suggest

    lrs = np.logspace(-7, 1, 10)
    losses = [2, 1.9, 1.7, 1.5, 1.2, 1, 0.8, 1, 2, 5]
    for i, bad in ((2, math.nan), (9, math.inf)):
        y = list(losses)
        y[i] = bad
        with pytest.raises(ValueError, match=rf"^losses must be finite, got {bad!r} at index {i}$"):
            suggest(lrs, y, rule=rule)
    for i, bad in ((0, 0.0), (3, -1e-3), (5, math.nan)):
        x = lrs.copy()
        x[i] = bad
        with pytest.raises(ValueError, match=rf"^lrs must be finite and > 0, got {bad!r} at "):
            suggest(x, losses, rule=rule)
    # reversed, or two sweeps one after the other: not a sweep's order
    with pytest.raises(ValueError) as info:
        suggest(lrs[::-1], losses[::-1], rule=rule)
    assert str(info.value) == (
        "lrs must be increasing (the LRs of a sweep, in order), got 1.2915496650148828 at index "
        "1 after 10.0"
    )
    with pytest.raises(ValueError, match=r"^lrs must be increasing .* at index 10 after 10\.0$"):
        suggest(np.concatenate([lrs, lrs]), losses * 2, rule=rule)


def test_use_family_fills_in_a_family_the_options_do_not_name():
    s = Sweep(num_iter=10)
    s.use_family(None)
    assert s.optimizer_family is None
    s.use_family("sgd")
    assert s.optimizer_family == "sgd"
    named = Sweep(num_iter=10, optimizer_family="momentum")
    named.use_family("sgd")
    assert named.optimizer_family == "momentum"  # the options' family wins
    with pytest.raises(
        ValueError, match=r"^family must be one of 'sgd', 'momentum', 'adaptive', got 'lion'$"
    ):
        Sweep(num_iter=10).use_family("lion")


def test_a_sparse_held_curve_moves_neither_the_edge_nor_the_shape():
    """A held curve of fewer than SHAPE_POINTS points (eval_every=16 on a default sweep): its
    one descended point smoothed with a diverged one reads as a flat curve whose edge is the
    flat start, decades below the training curve's; the training curve alone is read."""
    from lrkit.finder import suggestions
    from lrkit.finder.rules import SHAPE_POINTS

    lrs = np.geomspace(1e-7, 0.3, 85)
    y = 2.36 - 0.6 / (1 + np.exp(-3 * (np.log10(lrs) + 2.5)))
    y = y + np.where(lrs > 0.05, 3 * np.log10(np.maximum(lrs, 0.05) / 0.05), 0.0)
    hx = np.array([1e-07, 1.963e-06, 3.854e-05, 1.485e-02, 2.915e-01])
    hy = np.array([2.36, 2.36, 2.358, 1.779, 3.757])
    assert len(hy) < SHAPE_POINTS
    alone = suggestions(lrs, y)
    assert suggestions(lrs, y, held_lrs=hx, held_losses=hy) == alone
    assert alone.lr_min > 1e-2  # the training curve's edge, not the held curve's 3.9e-5
    # from SHAPE_POINTS points on, the held curve counts
    dense_x = np.geomspace(1e-7, 0.3, SHAPE_POINTS)
    dense_y = np.interp(np.log(dense_x), np.log(lrs), y) * 0.9
    assert suggestions(lrs, y, held_lrs=dense_x, held_losses=dense_y) != alone


def test_suggestions_name_the_held_curve_in_their_errors():
    from lrkit.finder import suggestions

    lrs = np.geomspace(1e-5, 1.0, 30)
    losses = 1.0 + (np.log10(lrs) + 2.0) ** 2
    with pytest.raises(ValueError) as info:
        suggestions(lrs, losses, held_lrs=lrs[:5], held_losses=losses[:4])
    assert str(info.value) == (
        "held_lrs and held_losses must be 1-D arrays of the same non-zero length, got shapes "
        "(5,) and (4,)"
    )
    with pytest.raises(ValueError, match=r"^held_losses must be finite, got nan at index 1$"):
        suggestions(lrs, losses, held_lrs=lrs[:3], held_losses=[1.0, np.nan, 1.0])
    with pytest.raises(ValueError) as info:
        suggestions(lrs, losses, held_lrs=lrs)
    assert str(info.value) == (
        "held_lrs needs held_losses (the held curve is both), got held_losses=None"
    )
    with pytest.raises(ValueError, match=r"^held_losses needs held_lrs"):
        suggestions(lrs, losses, held_losses=losses)


def test_a_users_rule_named_like_a_built_in_keeps_its_own_name():
    from lrkit.finder import range_test

    def valley(lrs, losses):  # the user's, not fastai's
        return 1e-3

    r = range_test(lambda lr: (np.log10(lr) + 2) ** 2 + 1, rule=valley, warn=False)
    assert r.suggestion == 1e-3
    assert r.to_dict()["rule"] == "valley (custom)"
    assert r.suggest("valley") != 1e-3  # the built-in of that name is fastai's


@pytest.mark.parametrize(
    "value, got",
    [(None, "NoneType"), ("x", "str"), ("1.0", "str"), (True, "True"), ([1.0, 2.0], "[1.0, 2.0]")],
)
def test_a_step_that_returns_no_loss_is_a_one_line_error_naming_step(value, got):
    from lrkit.finder import range_test

    with pytest.raises(ValueError) as info:
        range_test(lambda lr: value)
    assert str(info.value) == f"step must return the loss at lr (a number), got {got}"
    if value is None:  # evaluate's None: no held loss this time
        return
    with pytest.raises(ValueError) as info:  # the held loss as well
        range_test(lambda lr: 1.0, evaluate=lambda: value)
    assert str(info.value) == f"evaluate must return the held loss (a number), got {got}"


def test_a_one_element_array_is_a_loss_as_a_one_element_tensor_is():
    """A step returning a numpy or JAX array of one element (shape (1,), (1, 1)) gives the
    loss it holds, as a torch tensor of one element does (it was refused)."""
    from lrkit.finder import range_test

    def curve(lr):
        return (np.log10(lr) + 2) ** 2 + 1

    want = range_test(curve, warn=False)
    for wrap in (lambda v: np.array([v]), lambda v: np.array([[v]])):
        got = range_test(lambda lr, wrap=wrap: wrap(curve(lr)), warn=False)
        assert np.array_equal(got.losses, want.losses) and got.suggestion == want.suggestion


def test_a_rule_that_does_not_take_lrs_and_losses_is_refused_when_given():
    """A callable rule is called as rule(lrs, losses): one of another shape is a one-line
    error when it is given, not after the sweep."""

    def one(lrs):
        return float(lrs[0])

    msg = (
        r"^rule must be a callable rule\(lrs, losses\) -> lr, taking 2 positional arguments; "
        r"got one\(lrs\)$"
    )
    with pytest.raises(TypeError, match=msg):
        SweepOptions(rule=one)
    with pytest.raises(TypeError, match=msg):
        range_test(bowl, rule=one)
    r: FinderResult = range_test(bowl, eval_batches=0, warn=False)
    with pytest.raises(TypeError, match=msg):
        r.suggest(one)
    lrs = np.logspace(-7, 1, 100)
    with pytest.raises(TypeError, match=msg):
        suggest(lrs, np.array([bowl(v) for v in lrs]), rule=one)
    with pytest.raises(TypeError, match=r"^rule must be a callable .* got <lambda>\(\)$"):
        SweepOptions(rule=lambda: 1.0)
    # two positional arguments, more with defaults or as *args: taken
    assert r.suggest(lambda x, y, scale=1.0: float(x[0]) * scale) == r.lrs[0]
    assert r.suggest(lambda *a: float(a[0][0])) == r.lrs[0]


def test_sweep_options_built_directly_name_the_option_meant() -> None:
    import copy
    import pickle

    with pytest.raises(
        TypeError,
        match=r"^total_step is not an option of SweepOptions\(\) \(did you mean total_steps\?\); options: beta, ",  # noqa: E501
    ):
        SweepOptions(total_step=1)
    with pytest.raises(
        TypeError, match=r"^smooth_f is not an option of SweepOptions\(\) \(use beta, "
    ):
        SweepOptions(smooth_f=0.05)
    with pytest.raises(
        TypeError, match=r"^SweepOptions takes keyword arguments only, got 1 positional$"
    ):
        SweepOptions(1e-6)
    o = SweepOptions(num_iter=50)
    assert pickle.loads(pickle.dumps(o)) == o == copy.deepcopy(o)


def test_a_subclass_of_sweep_options_with_its_own_init_builds() -> None:
    import dataclasses

    class Fast(SweepOptions):
        def __init__(self, preset: str = "fast", **kw: object) -> None:
            super().__init__(num_iter=50 if preset == "fast" else 100, **kw)

    assert Fast(preset="fast", end_lr=1.0).num_iter == 50
    with pytest.raises(TypeError, match=r"^method is not an option of SweepOptions\(\) \(use rule"):
        SweepOptions(method="valley")
    assert dataclasses.replace(SweepOptions(), num_iter=60).num_iter == 60


def test_replay_records_a_saved_curve_as_it_was_and_refuses_what_no_sweep_records() -> None:
    """Sweep.replay: the curve of a result rebuilt exactly (its stops not judged again); a
    non-finite loss, a curve longer than the options sweep, a sweep already run and an
    unknown stop reason are one-line errors."""
    r = range_test(lambda lr: 1.0 / (1.0 + lr) + lr**2, evaluate=lambda: 0.5, warn=False)
    again = Sweep(r.options)
    again.replay(
        r.losses, held=dict(zip(r.held_lrs, r.held_losses)), stop_reason=r.stop_reason,
        stop_lr=r.stop_lr,
    )  # fmt: skip
    assert again.result(warn=False).to_dict() == r.to_dict()
    cases = [
        (Sweep(), [1.0] * 10, {1e-7: math.inf}, "completed",
         "held[1e-07] must be finite (a sweep that met a NaN or inf stopped before it: "
         "stop_reason='nan'), got inf"),
        (Sweep(), [1.0, math.nan], None, "completed", "losses[1] must be finite"),
        (Sweep(num_iter=10), [1.0] * 61, None, "completed",
         "losses: 61 steps, more than these options sweep (60: num_iter 10 and at most 50 "
         "more); replay a curve with the options it was recorded with"),
        (again, [1.0], None, "completed",
         "replay() takes a fresh sweep (this one has recorded steps)"),
        (Sweep(), [1.0], None, "done", "stop_reason must be one of 'completed', "),
    ]  # fmt: skip
    for sweep, losses, held, reason, message in cases:
        with pytest.raises((ValueError, RuntimeError)) as info:
            sweep.replay(losses, held=held, stop_reason=reason)
        assert str(info.value).startswith(message)
