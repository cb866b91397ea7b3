"""Feedback controllers: PyTorch-exact plateau semantics, sign-correct thresholds, exact resume."""

from __future__ import annotations

import copy
import json
import math
import pickle
import warnings

import numpy as np
import pytest

from lrkit import schedules as S
from lrkit.feedback import (
    Chain,
    DivergenceDetector,
    DivergenceGuard,
    Feedback,
    Multiplier,
    ReduceOnPlateau,
    RestartOnPlateau,
    from_state_dict,
    load_states,
    settings_differ,
)


def _stream(rng: np.random.Generator, n: int) -> list[float]:
    """Positive metric stream with improvements, noise, exact repeats and near-ties."""
    x = 1.0
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            x *= float(rng.uniform(0.9, 0.99999))  # improvement (sometimes within threshold)
        elif r < 0.5:
            pass  # exact repeat
        else:
            x *= float(rng.uniform(1.0, 1.05))
        out.append(float(x * rng.uniform(0.999, 1.001)) if rng.random() < 0.3 else x)
    return out


CONFIGS = [
    {},
    {"patience": 0},
    {"patience": 2, "cooldown": 3, "factor": 0.5},
    {"patience": 3, "threshold": 1e-2, "threshold_mode": "abs"},
    {"mode": "max", "patience": 1, "cooldown": 1, "factor": 0.3},
    {"mode": "max", "patience": 2, "threshold": 0.01, "threshold_mode": "abs"},
    {"patience": 1, "min_scale": 0.01, "factor": 0.2},
    {"patience": 4, "threshold": 0.05},
    {"patience": 1, "factor": 0.0},
]


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("seed", range(5))
def test_equals_pytorch_on_positive_streams(cfg, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    values = _stream(rng, 300)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    targs = dict(cfg)
    targs["min_lr"] = targs.pop("min_scale", 0.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, eps=0.0, **targs)
    ctrl = ReduceOnPlateau(**cfg)
    reductions = 0
    for x in values:
        before = opt.param_groups[0]["lr"]
        ref.step(x)
        got = ctrl.update(x)
        assert got == opt.param_groups[0]["lr"]  # exact
        assert ctrl.scale == got
        reductions += opt.param_groups[0]["lr"] != before
    assert ctrl.num_bad_updates == ref.num_bad_epochs
    assert ctrl.best == ref.best
    assert len(ctrl.reductions) == reductions


def test_pytorch_semantics_by_hand():
    c = ReduceOnPlateau(patience=2, cooldown=1, factor=0.5)
    seq = [c.update(x) for x in [5, 5, 5, 5, 5, 5, 5, 4, 4, 4, 4]]
    # 1st value is best; reduce on the 3rd bad one (num_bad > patience); 1 cooldown update
    # after which counting starts again; 4 is an improvement.
    assert seq == [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25]
    assert c.reductions == [4, 11]


@pytest.mark.parametrize("value", [-1.0, -1e-3, -250.0, 0.0])
def test_reduces_on_constant_nonpositive_metric(value):
    c = ReduceOnPlateau(patience=2, factor=0.5)
    scales = [c.update(value) for _ in range(10)]
    assert scales == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    m = ReduceOnPlateau(mode="max", patience=2, factor=0.5)
    assert [m.update(value) for _ in range(10)] == scales


def test_pytorch_relative_threshold_fails_on_negative_metrics():
    # the bug this controller fixes: PyTorch counts a constant negative metric as improving
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=2, factor=0.5)
    for _ in range(10):
        ref.step(-1.0)
    assert opt.param_groups[0]["lr"] == 1.0


def test_negative_relative_threshold_is_sign_correct():
    c = ReduceOnPlateau(threshold=0.1, patience=0)
    c.update(-10.0)
    assert c.update(-10.5) == 0.1  # -10.5 > -11 = best - 0.1*|best|: not an improvement
    c = ReduceOnPlateau(threshold=0.1, patience=0)
    c.update(-10.0)
    assert c.update(-11.5) == 1.0 and c.best == -11.5
    m = ReduceOnPlateau(mode="max", threshold=0.1, patience=0)
    m.update(-10.0)
    assert m.update(-9.5) == 0.1  # needs > -9
    m = ReduceOnPlateau(mode="max", threshold=0.1, patience=0)
    m.update(-10.0)
    assert m.update(-8.5) == 1.0


def test_crossing_zero():
    c = ReduceOnPlateau(patience=0)
    for x in [1.0, 0.0, -1e-9, -1.0]:
        assert c.update(x) == 1.0
    assert c.best == -1.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_counts_as_no_improvement(bad):
    c = ReduceOnPlateau(patience=1, factor=0.5)
    c.update(1.0)
    with pytest.warns(RuntimeWarning, match="no improvement"):
        c.update(bad)
    assert c.best == 1.0 and c.num_bad_updates == 1
    with pytest.warns(RuntimeWarning):
        assert c.update(bad) == 0.5
    assert c.best == 1.0
    m = ReduceOnPlateau(mode="max", patience=0)
    with pytest.warns(RuntimeWarning):
        m.update(bad)
    assert m.best is None and m.scale == 0.1


def test_accepts_numpy_and_tensor_metrics():
    c = ReduceOnPlateau()
    c.update(np.float32(0.5))
    assert c.best == pytest.approx(0.5)
    torch = pytest.importorskip("torch")
    c.update(torch.tensor(0.25))
    assert c.best == 0.25


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"factor": 1.0}, "factor"),
        ({"factor": -0.1}, "factor"),
        ({"patience": -1}, "patience"),
        ({"patience": 1.5}, "patience"),
        ({"mode": "avg"}, "mode"),
        ({"threshold_mode": "relative"}, "threshold_mode"),
        ({"threshold": -1e-4}, "threshold"),
        ({"cooldown": -2}, "cooldown"),
        ({"min_scale": -1}, "min_scale"),
    ],
)
def test_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ReduceOnPlateau(**kwargs)


def test_a_plateau_keyword_given_to_the_divergence_detector_names_its_options():
    with pytest.raises(TypeError) as e:
        DivergenceDetector(0.5, patience=3)
    assert str(e.value) == (
        "patience is not an option of DivergenceDetector (a non-finite loss or a spike is "
        "acted on at once; max_restores caps the restores); options: factor, max_restores, "
        "min_history, min_scale, quantile, spike_factor, spike_floor, window"
    )
    with pytest.raises(TypeError, match=r"^windw is not an option of DivergenceDetector \(did "
                       r"you mean window\?\); "):  # fmt: skip
        DivergenceDetector(windw=5)

    # a subclass passing keywords on to it takes them, and is checked against them too
    class Verbose(DivergenceDetector):
        def __init__(self, *args, verbose=False, **kwargs):
            super().__init__(*args, **kwargs)
            self.verbose = verbose

    assert Verbose(verbose=True, factor=0.3).factor == 0.3
    with pytest.raises(TypeError, match=r"^patience is not an option of Verbose .*, verbose, "):
        Verbose(patience=3)
    d = DivergenceDetector(0.25, window=5, min_history=3)  # built right: as before
    d.update(1.0)
    for clone in (copy.deepcopy(d), pickle.loads(pickle.dumps(d))):
        assert type(clone) is DivergenceDetector and clone.state_dict() == d.state_dict()


@pytest.mark.parametrize("cls", [ReduceOnPlateau, RestartOnPlateau])
@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [
        ({"min_lr": 1e-5}, "min_scale=min_lr / lr"),
        ({"min_delta": 0.01}, 'threshold_mode="abs"'),
        ({"eps": 1e-8}, "every cut is applied"),
        ({"patienc": 3}, "did you mean patience?"),
        ({"frobnicate": 3}, None),
    ],
)
def test_another_librarys_keyword_names_the_option_meant(cls, kwargs, hint):
    with pytest.raises(TypeError) as e:
        cls("min", **kwargs)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{next(iter(kwargs))} is not an option of {cls.__name__}")
    assert "options: cooldown, factor, " in msg and "min_scale, mode, patience" in msg
    if hint:
        assert hint in msg
    else:
        assert "(" not in msg
    # a controller built right is unaffected, copies and pickles as before
    c = cls("max", patience=2, min_scale=0.1)
    for clone in (copy.deepcopy(c), pickle.loads(pickle.dumps(c))):
        assert type(clone) is cls and clone.state_dict() == c.state_dict()


def test_a_shallow_copy_of_a_controller_is_a_controller_of_its_own() -> None:
    """copy.copy (as PyTorch's ReduceLROnPlateau copies): stepping the copy leaves the
    original's counters and loss window as they were."""
    plateau = ReduceOnPlateau(patience=2)
    plateau.update(1.0)
    detector = DivergenceDetector(min_history=3)
    for _ in range(5):
        detector.update(1.0)
    chain = Chain(RestartOnPlateau(patience=1), ReduceOnPlateau(patience=1))
    chain.update(1.0)
    for original, bad in ((plateau, 5.0), (detector, 2.0), (chain, 5.0)):
        before = json.dumps(original.state_dict())
        clone = copy.copy(original)
        assert type(clone) is type(original) and json.dumps(clone.state_dict()) == before
        for _ in range(3):
            clone.update(bad)
        assert json.dumps(clone.state_dict()) != before
        assert json.dumps(original.state_dict()) == before


def test_bad_metric_and_step():
    c = ReduceOnPlateau()
    with pytest.raises(ValueError, match="value"):
        c.update("low")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step"):
        c.update(1.0, step=-1)
    # an int beyond what str() writes (4300 digits) is described by its size
    with pytest.raises(ValueError, match=r"^value must be a real number a float holds, got an "
                       r"integer with 5001 digits$"):  # fmt: skip
        c.update(10**5000)


def _resume_check(make, values, cut, steps=True):
    """Run ``values`` through one controller, and through a second one resumed (via JSON) from
    the first's state after ``cut`` updates; scales and LRs must be identical."""
    sched = lambda t: 0.1 * 0.99**t  # noqa: E731
    a = make()
    ref = []
    for i, x in enumerate(values):
        ref.append((a.update(x, step=i if steps else None), a.apply(sched, i)))
    b = make()
    got = []
    for i, x in enumerate(values[:cut]):
        got.append((b.update(x, step=i if steps else None), b.apply(sched, i)))
    state = json.loads(json.dumps(b.state_dict(), allow_nan=False))
    c = from_state_dict(state)
    assert type(c) is type(b)
    d = make()
    d.load_state_dict(state)
    for i, x in enumerate(values[cut:], start=cut):
        r1 = c.update(x, step=i if steps else None), c.apply(sched, i)
        r2 = d.update(x, step=i if steps else None), d.apply(sched, i)
        assert r1 == r2
        got.append(r1)
    assert got == ref
    assert c.state_dict() == a.state_dict()


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("cut", [0, 1, 37, 150])
def test_resume_exact(seed, cut):
    values = _stream(np.random.default_rng(seed), 200)
    values[120] = math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _resume_check(lambda: ReduceOnPlateau(patience=3, cooldown=2, factor=0.5), values, cut)
        _resume_check(
            lambda: ReduceOnPlateau(mode="max", patience=1, threshold_mode="abs"),
            [-x for x in values],
            cut,
            steps=False,
        )
        _resume_check(lambda: RestartOnPlateau(patience=4, factor=0.7), values, cut)
        _resume_check(
            lambda: RestartOnPlateau(patience=2) & ReduceOnPlateau(patience=5), values, cut
        )
        _resume_check(
            lambda: DivergenceGuard(window=5, min_history=3, spike_factor=1.02, max_restores=50),
            values,
            cut,
        )


def test_load_into_default_constructed_restores_config():
    a = ReduceOnPlateau(mode="max", patience=4, factor=0.3, cooldown=2, min_scale=0.01)
    for x in [1, 2, 2, 2]:
        a.update(x)
    b = ReduceOnPlateau()
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict()
    assert (b.mode, b.patience, b.factor, b.cooldown, b.min_scale) == ("max", 4, 0.3, 2, 0.01)


def test_load_state_dict_rejects_other_types():
    with pytest.raises(ValueError, match="type"):
        ReduceOnPlateau().load_state_dict(RestartOnPlateau().state_dict())
    with pytest.raises(ValueError, match="controllers"):
        Chain(ReduceOnPlateau()).load_state_dict(
            Chain(ReduceOnPlateau(), Multiplier()).state_dict()
        )
    with pytest.raises(ValueError, match="type"):
        from_state_dict({"type": "Bogus"})


def test_apply_is_schedule_times_scale():
    c = ReduceOnPlateau(patience=0, factor=0.5)
    sched = lambda t: 1.0 + t  # noqa: E731
    assert c.apply(sched, 3) == 4.0
    c.update(1.0)
    c.update(1.0)
    assert c.apply(sched, 3) == 2.0


def test_restart_on_plateau():
    sched = lambda t: 0.5**t  # noqa: E731
    r = RestartOnPlateau(patience=1, factor=0.5, max_restarts=2)
    assert r.apply(sched, 10) == 0.5**10
    for step, x in [(10, 1.0), (11, 1.0), (12, 1.0)]:
        r.update(x, step=step)
    assert r.restarts == [12] and r.restart_step == 12 and r.scale == 0.5
    assert r.apply(sched, 12) == 0.5  # schedule(0) * 0.5
    assert r.apply(sched, 15) == 0.5**3 * 0.5
    assert r.best is None  # improvement is measured afresh after a restart
    for step, x in [(20, 2.0), (21, 2.0), (22, 2.0)]:
        r.update(x, step=step)
    assert r.restarts == [12, 22] and r.scale == 0.25
    for step, x in [(30, 3.0), (31, 3.0), (32, 3.0)]:
        r.update(x, step=step)
    assert r.restarts == [12, 22]  # max_restarts reached
    # without a step, restart at the last step seen by apply()
    r2 = RestartOnPlateau(patience=0)
    r2.apply(sched, 7)
    r2.update(1.0)
    r2.update(1.0)
    assert r2.restart_step == 7 and r2.apply(sched, 7) == 1.0


@pytest.mark.parametrize("kind", [ReduceOnPlateau, RestartOnPlateau])
def test_a_floor_above_the_scale_never_raises_it(kind):
    c = kind(patience=0, factor=0.5, min_scale=2.0)
    for x in (1.0, 1.0, 1.0):
        assert c.update(x) == 1.0
    assert c.scale == 1.0
    d = DivergenceDetector(factor=0.5, min_scale=2.0)
    assert d.check(math.nan) == "restore" and d.scale == 1.0


def test_chain_scale_apply_update():
    a = ReduceOnPlateau(patience=0, factor=0.5)
    b = ReduceOnPlateau(patience=1, factor=0.1)
    m = Multiplier(2.0)
    ch = a & b & m
    assert isinstance(ch, Chain) and len(ch) == 3 and ch[2] is m
    ch.update(1.0)
    assert ch.update(1.0) == 0.5 * 2.0
    assert ch.update(1.0) == 0.25 * 0.1 * 2.0
    assert ch.scale == a.scale * b.scale * m.scale
    assert ch.apply(lambda t: 10.0, 0) == 10.0 * ch.scale
    r = RestartOnPlateau(patience=0)
    ch2 = Chain(r, ReduceOnPlateau(patience=0, factor=0.5))
    sched = lambda t: 1.0 / (1 + t)  # noqa: E731
    ch2.update(1.0, step=4)
    ch2.update(1.0, step=5)  # restart at 5 and reduce by half
    assert ch2.apply(sched, 5) == 1.0 * 0.5
    assert ch2.apply(sched, 7) == pytest.approx(1 / 3 * 0.5)
    with pytest.raises(ValueError, match="controllers"):
        Chain()
    with pytest.raises(ValueError, match=r"controllers\[1\]"):
        Chain(a, object())  # type: ignore[arg-type]


def test_multiplier():
    m = Multiplier()
    assert m.scale == 1.0 and m.update(123.0) == 1.0
    m.set_scale(0.3)
    assert m.multiply(0.5) == 0.15
    with pytest.raises(ValueError, match="scale"):
        m.set_scale(-1)


def test_a_multiplier_scale_stays_finite_so_its_state_loads():
    m = Multiplier()
    m.multiply(1e200)
    with pytest.raises(ValueError) as info:
        m.multiply(1e200)
    assert str(info.value) == (
        "factor 1e+200 would make scale 1e+200 x 1e+200 = inf: scale must stay a finite number"
    )
    assert m.scale == 1e200  # unchanged by the refused product
    again = Multiplier()
    again.load_state_dict(m.state_dict())
    assert again.scale == m.scale


def test_guard_nonfinite_restores_and_cuts():
    g = DivergenceGuard(factor=0.5, max_restores=2)
    assert g.check(1.0) == "ok"
    assert g.check(math.nan) == "restore" and g.scale == 0.5 and g.restores == 1
    assert g.check(0.9) == "ok"
    assert g.check(math.inf) == "restore" and g.scale == 0.25
    assert g.check(-math.inf) == "give_up" and g.scale == 0.25
    assert [e["action"] for e in g.events] == ["restore", "restore", "give_up"]
    json.dumps(g.state_dict(), allow_nan=False)  # non-finite losses stored as strings


def test_guard_spike_reference():
    g = DivergenceGuard(spike_factor=3.0, window=4, min_history=3, quantile=0.5)
    assert g.reference is None
    assert g.check(100.0) == "ok" and g.reference == 100.0  # the largest loss, until 3 seen
    assert g.check(301.0) == "restore"
    for x in [1.0, 2.0]:
        assert g.check(x) == "ok"
    assert g.reference == 2.0  # median of 100, 1, 2
    assert g.check(6.0) == "ok"  # == 3 x reference: not a spike
    assert g.reference == 4.0  # median of 100, 1, 2, 6
    assert g.check(12.5) == "restore"
    assert g.reference == 4.0  # spikes do not join the window
    neg = DivergenceGuard(spike_factor=2.0, window=3, min_history=1, quantile=0.5)
    neg.check(-4.0)
    assert neg.check(-0.5) == "ok"  # limit: -4 + (2 - 1) * |-4| = 0
    assert neg.reference == -2.25 and neg.check(0.5) == "restore"  # > -2.25 + 2.25
    # default reference: the 0.9 quantile (linear interpolation), robust to noise near zero
    p90 = DivergenceGuard(window=5, min_history=5)
    for x in [0.01, 0.02, 0.01, 0.03, 0.05]:
        assert p90.check(x) == "ok"
    assert p90.reference == pytest.approx(0.042)
    assert p90.check(0.4) == "ok"  # 40x the median, but < 10 x p90 = 0.42
    assert p90.check(5.0) == "restore"
    off = DivergenceGuard(spike_factor=None, min_history=1)
    off.check(1.0)
    assert off.check(1e30) == "ok" and off.check(math.nan) == "restore"


def test_guard_as_feedback_and_validation():
    g = DivergenceGuard(factor=0.1)
    assert isinstance(g, Feedback)
    assert g.update(math.nan) == pytest.approx(0.1)
    assert g.apply(lambda t: 2.0, 0) == pytest.approx(0.2)
    for kwargs, name in [
        ({"factor": 1.0}, "factor"),
        ({"max_restores": -1}, "max_restores"),
        ({"spike_factor": 1.0}, "spike_factor"),
        ({"window": 0}, "window"),
        ({"window": 5, "min_history": 6}, "min_history"),
        ({"quantile": 1.5}, "quantile"),
    ]:
        with pytest.raises(ValueError, match=name):
            DivergenceGuard(**kwargs)


def test_nonfinite_metric_warning_points_at_the_callers_line():
    """However deep the call (controller, Chain, scheduler.report), the RuntimeWarning names
    the user's line, not a frame inside lrkit or above the caller."""
    import inspect

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        ReduceOnPlateau().update(float("nan"))
        (RestartOnPlateau() & ReduceOnPlateau()).update(float("inf"))
    where = [(w.filename, w.lineno) for w in caught]
    assert where == [(__file__, line), (__file__, line + 1), (__file__, line + 1)]


def test_restart_on_plateau_shares_the_plateau_view():
    r = RestartOnPlateau(mode="max", patience=3, threshold=0.01, cooldown=2, factor=0.5)
    assert (r.mode, r.patience, r.threshold, r.threshold_mode, r.cooldown) == (
        "max",
        3,
        0.01,
        "rel",
        2,
    )
    r.update(1.0)
    r.update(0.5)
    assert r.best == 1.0 and r.num_bad_updates == 1 and not r.in_cooldown
    assert repr(r).startswith("RestartOnPlateau(mode='max'")
    with pytest.raises(ValueError, match="factor"):
        RestartOnPlateau(factor=1.5)
    assert RestartOnPlateau(factor=1.0).factor == 1.0  # a restart may keep the same peak
    with pytest.raises(ValueError, match="factor"):
        ReduceOnPlateau(factor=1.0)  # a reduction must reduce


def test_plateau_arguments_one_definition_keyword_only_after_mode() -> None:
    import inspect

    from lrkit.feedback import PlateauKwargs

    names = list(PlateauKwargs.__annotations__)
    assert names == ["factor", "patience", "threshold", "threshold_mode", "cooldown", "min_scale"]
    for cls in (ReduceOnPlateau, RestartOnPlateau):
        params = list(inspect.signature(cls).parameters.values())
        assert params[0].name == "mode" and params[0].default == "min"
        assert [p.name for p in params[1:7]] == names
        assert all(p.kind is p.KEYWORD_ONLY for p in params[1:])
    plateau = "mode, factor, patience, threshold, threshold_mode, cooldown, min_scale"
    for call, said in [
        (lambda: ReduceOnPlateau("min", 0.5, 3), f"ReduceOnPlateau: takes 1 positional argument "
         f"(mode) but 3 were given; give the others by keyword (parameters: {plateau})"),
        (lambda: RestartOnPlateau("min", 0.5), f"RestartOnPlateau: takes 1 positional argument "
         f"(mode) but 2 were given; give the others by keyword (parameters: {plateau}, "
         "max_restarts)"),
        (lambda: DivergenceDetector(0.5, 3), "DivergenceDetector: takes 1 positional argument "
         "(factor) but 2 were given; give the others by keyword (parameters: factor, "
         "max_restores, spike_factor, window, min_history, min_scale, quantile, spike_floor)"),
    ]:  # fmt: skip
        with pytest.raises(TypeError) as info:  # PyTorch's ReduceLROnPlateau(opt, "min", 0.5, 3)
            call()
        assert str(info.value) == said
    assert ReduceOnPlateau("max").mode == RestartOnPlateau("max").mode == "max"
    assert DivergenceDetector(0.25).factor == 0.25
    for cls in (ReduceOnPlateau, RestartOnPlateau):  # a factor where mode goes: said so
        with pytest.raises(ValueError) as info:
            cls(0.5)  # type: ignore[arg-type]
        assert str(info.value) == (
            "mode must be one of 'min', 'max', got 0.5 (the first argument is mode, as in "
            "PyTorch's ReduceLROnPlateau after its optimizer; here pass factor=0.5)"
        )
    with pytest.raises(ValueError, match="factor"):
        ReduceOnPlateau(factor=1.5)


@pytest.mark.parametrize(
    "make, drop",
    [
        (lambda: ReduceOnPlateau(patience=0), "reductions"),
        (lambda: RestartOnPlateau(patience=0), "last_step"),
        (lambda: DivergenceDetector(min_history=2), "history"),
        (lambda: ReduceOnPlateau(patience=0) & Multiplier(0.5), "controllers"),
    ],
)
def test_a_malformed_state_is_a_value_error_and_changes_nothing(make, drop) -> None:
    c = make()
    for x in (1.0, 2.0, 3.0, 2.5):
        c.check(x) if isinstance(c, DivergenceDetector) else c.update(x)
    before = c.state_dict()
    other = make()
    other.update(0.1)
    bad = {k: v for k, v in other.state_dict().items() if k != drop}
    with pytest.raises(ValueError, match=rf"^state.*{drop}"):
        c.load_state_dict(bad)
    assert c.state_dict() == before


@pytest.mark.parametrize(
    "key, bad, message",
    [
        ("best", "abc", "state['best'] must be a finite real number, got 'abc'"),
        ("best", math.nan, "state['best'] must be a finite real number, got nan"),
        ("mode", "avg", "state['mode'] must be one of 'min', 'max', got 'avg'"),
        ("threshold_mode", "x", "state['threshold_mode'] must be one of 'rel', 'abs', got 'x'"),
    ],
)
def test_a_bad_plateau_value_in_a_state_names_its_key(key, bad, message) -> None:
    c = ReduceOnPlateau(patience=0)
    c.update(1.0)
    before = c.state_dict()
    with pytest.raises(ValueError) as e:
        c.load_state_dict({**before, key: bad})
    assert str(e.value) == message
    assert c.state_dict() == before


@pytest.mark.parametrize(
    "make, key, entries, message",
    [
        (lambda: ReduceOnPlateau(patience=0, factor=0.5), "reductions", [2, math.inf],
         "state['reductions'][1] must be an integer >= 0 (allowed range: [0, inf)), got inf"),
        (lambda: ReduceOnPlateau(patience=0, factor=0.5), "reductions", [2.7],
         "state['reductions'][0] must be an integer >= 0 (allowed range: [0, inf)), got 2.7"),
        (lambda: RestartOnPlateau(patience=0), "restarts", ["1"],
         "state['restarts'][0] must be an integer >= 0 (allowed range: [0, inf)), got '1' "
         "(text, not a number)"),
        (lambda: DivergenceDetector(factor=0.25), "history", [1.0, 10**400],
         "state['history'][1] must be a finite real number, got an integer with 401 digits"),
        (lambda: DivergenceDetector(factor=0.25), "history", [1.0, math.nan, 1.0],
         "state['history'][1] must be a finite real number, got nan"),
        (lambda: DivergenceDetector(factor=0.25), "history", [math.inf],
         "state['history'][0] must be a finite real number, got inf"),
    ],
)  # fmt: skip
def test_a_bad_list_entry_in_a_state_is_refused_whole(make, key, entries, message) -> None:
    """Entries a float or an int cannot hold (an OverflowError) or that are not what the list
    holds (NaN in the good losses would switch spike detection off): one line, nothing
    changed."""
    c = make()
    other = make()
    for x in (1.0, 2.0, 3.0, 4.0):
        other.check(x) if isinstance(other, DivergenceDetector) else other.update(x)
    before = c.state_dict()
    with pytest.raises(ValueError) as info:
        c.load_state_dict({**other.state_dict(), key: entries})
    assert str(info.value) == message
    assert c.state_dict() == before


def test_from_state_dict_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match=r"^state is missing 'factor': .* ReduceOnPlateau$"):
        from_state_dict({"type": "ReduceOnPlateau"})
    with pytest.raises(ValueError, match=r"^state\['controllers'\] must be a non-empty list"):
        from_state_dict({"type": "Chain"})


def test_a_controller_holding_what_cannot_be_copied_still_loads_its_state() -> None:
    import threading

    class Locked(Multiplier):
        def __init__(self, scale: float = 1.0) -> None:
            super().__init__(scale)
            self.lock = threading.Lock()

    c = Locked(0.5)
    other = Locked(1.0)
    other.load_state_dict(c.state_dict())
    assert other.scale == 0.5
    chain = ReduceOnPlateau() & Locked(0.25)
    fresh = ReduceOnPlateau() & Locked(1.0)
    fresh.load_state_dict(chain.state_dict())
    assert fresh.state_dict() == chain.state_dict()


@pytest.mark.parametrize("threshold_mode", ["rel", "abs"])
@pytest.mark.parametrize("seed", range(3))
def test_max_mode_is_min_mode_on_the_negated_metric_bit_for_bit(threshold_mode, seed) -> None:
    # mixed signs, zeros of both signs, exact repeats and NaN: "max" mirrors "min" exactly
    rng = np.random.default_rng(seed)
    pool = [0.0, -0.0, 0.25, -0.25, 1.0, -1.0, math.nan]
    values = [
        float(rng.choice(pool)) if rng.random() < 0.4 else float(rng.uniform(-2, 2))
        for _ in range(400)
    ]
    kw = dict(patience=1, cooldown=1, factor=0.5, threshold=0.1, threshold_mode=threshold_mode)
    hi, lo = ReduceOnPlateau("max", **kw), ReduceOnPlateau("min", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for x in values:
            assert hi.update(x) == lo.update(-x)
            assert hi.num_bad_updates == lo.num_bad_updates
            assert hi.best == (None if lo.best is None else -lo.best)
    assert hi.reductions == lo.reductions and len(hi.reductions) > 5
    # the documented rules for "max": best * (1 + th) above a positive best, best * (1 - th)
    # above a negative one, best + th with "abs"
    c = ReduceOnPlateau("max", patience=5, threshold=0.1, threshold_mode=threshold_mode)
    c.update(-10.0)
    c.update(-9.0 if threshold_mode == "rel" else -9.9)  # exactly at the bound: not better
    assert c.best == -10.0 and c.num_bad_updates == 1
    c.update(-8.5)
    assert c.best == -8.5 and c.num_bad_updates == 0


def test_divergence_detector_refuses_a_factor_of_zero_or_less() -> None:
    for bad in (0.0, 0, -0.1, 1.0):
        with pytest.raises(ValueError, match=r"^factor must be in \(0\.0, 1\.0\), got "):
            DivergenceDetector(bad)
    state = DivergenceDetector(0.5).state_dict()
    d = DivergenceDetector(0.25)
    with pytest.raises(ValueError, match=r"^factor must be in \(0\.0, 1\.0\), got 0\.0$"):
        d.load_state_dict({**state, "factor": 0.0})
    assert d.factor == 0.25  # left as it was


def test_one_element_arrays_are_their_value_and_larger_ones_name_the_shape() -> None:
    from lrkit.feedback import as_metric

    ones: list[object] = [np.array([0.5]), np.array([[0.5]]), np.float64(0.5), np.array(0.5)]
    jnp = pytest.importorskip("jax.numpy")
    ones += [jnp.array([0.5]), jnp.array([[0.5]])]
    for x in ones:
        assert as_metric(x) == 0.5
        c = ReduceOnPlateau(patience=0, factor=0.5)
        assert c.update(x) == 1.0
        assert c.update(x) == 0.5  # the same value again: no improvement, a cut
        assert DivergenceDetector().check(x) == "ok"
    for x, shape in ((np.zeros(3), (3,)), (jnp.zeros((2, 2)), (2, 2)), (np.zeros(0), (0,))):
        with pytest.raises(ValueError) as info:
            ReduceOnPlateau().update(x)
        assert str(info.value) == (
            f"value must be one value (a number or a one-element array), got an array of "
            f"shape {shape}"
        )
    with pytest.raises(ValueError, match=r"^loss must be one value .*shape \(2,\)$"):
        DivergenceDetector().check(np.ones(2))


def test_a_chain_refuses_one_controller_given_twice():
    """It would take every metric twice (a cut on the first metric alone) and scale twice."""
    from lrkit.feedback import Chain, ReduceOnPlateau

    a = ReduceOnPlateau(factor=0.5, patience=0)
    for build in (lambda: a & a, lambda: Chain(a, ReduceOnPlateau(), a), lambda: (a & a) & a):
        with pytest.raises(ValueError, match=r"^controllers: one controller is given twice"):
            build()
    chain = a & ReduceOnPlateau(factor=0.5, patience=0)  # two of them: each takes it once
    assert [chain.update(x) for x in (1.0, 2.0)] == [1.0, 0.25] and a.num_updates == 2


def test_a_chain_refusing_a_members_state_is_left_as_it_was_and_names_the_member():
    """All or nothing: the members loaded before the one that refuses its state are put back
    (the chain was left half-loaded)."""
    from lrkit.feedback import ReduceOnPlateau, RestartOnPlateau

    chain = ReduceOnPlateau(factor=0.5, patience=0) & RestartOnPlateau(patience=0)
    other = ReduceOnPlateau(factor=0.5, patience=0) & ReduceOnPlateau(factor=0.5, patience=0)
    for v in (1.0, 2.0, 3.0):
        other.update(v)
    chain.update(5.0)
    before = chain.state_dict()
    with pytest.raises(ValueError) as info:
        chain.load_state_dict(other.state_dict())
    assert str(info.value).startswith("state['controllers'][1]: state['type'] must be ")
    assert chain.state_dict() == before


def test_a_chain_names_a_refusing_member_whatever_its_error_class_takes():
    """A member's own error class may take other arguments than a message: the chain says it
    as a plain error of the same kind, the member named, the members before it put back."""
    from lrkit.feedback import Feedback, ReduceOnPlateau

    class OwnError(ValueError):
        def __init__(self, message: str, where: int) -> None:
            super().__init__(f"{message} (at {where})")

    class Picky(ReduceOnPlateau):
        def load_state_dict(self, state):  # type: ignore[no-untyped-def]
            raise OwnError("not this one", 3)

    first = ReduceOnPlateau(factor=0.5, patience=0)
    chain = first & Picky()
    assert isinstance(chain.controllers[1], Feedback)
    first.update(1.0)
    before = chain.state_dict()
    other = ReduceOnPlateau(factor=0.5, patience=0) & ReduceOnPlateau()
    for x in (2.0, 3.0):
        other.update(x)
    with pytest.raises(ValueError) as info:
        chain.load_state_dict(other.state_dict())
    assert str(info.value) == "state['controllers'][1]: not this one (at 3)"
    assert chain.state_dict() == before


def test_reset_plateau_forgets_the_cooldown_but_keeps_the_scale():
    c = ReduceOnPlateau(patience=0, cooldown=5)
    c.update(1.0)
    c.update(2.0)
    assert c.scale == 0.1 and c.in_cooldown
    c.reset_plateau()
    assert not c.in_cooldown and c.scale == 0.1
    c.update(1.0)
    c.update(2.0)  # no cooldown left to skip it: a second cut
    assert c.scale == 0.1 * 0.1 and c.reductions == [2, 4]


def test_a_restart_reads_the_schedule_from_its_step_0_before_the_restart_step():
    cosine = S.cosine(0.1, total_steps=100)
    r = RestartOnPlateau(patience=0)
    r.update(1.0, step=49)
    r.update(1.0, step=50)
    assert r.restart_step == 50
    assert r.apply(cosine, 10) == cosine(0) == 0.1
    assert r.apply(cosine, 60) == cosine(10)


def test_settings_differ_leaves_the_scale_aside():
    assert settings_differ(Multiplier(), Multiplier(0.5).state_dict()) == []
    chain = ReduceOnPlateau() & Multiplier()
    assert settings_differ(chain, (ReduceOnPlateau() & Multiplier(0.5)).state_dict()) == []
    other = (ReduceOnPlateau(patience=3) & Multiplier(0.5)).state_dict()
    assert settings_differ(chain, other) == ["0.patience"]


def test_load_states_refused_at_one_controller_leaves_those_before_it_as_they_were():
    first, second = ReduceOnPlateau(), ReduceOnPlateau()
    before = first.state_dict()
    good = ReduceOnPlateau(patience=2, factor=0.5).state_dict()
    bad = {**ReduceOnPlateau().state_dict(), "factor": 2.0}
    with pytest.raises(ValueError, match=r"^feedback\[1\]: state\['factor'\] must be in"):
        load_states([first, second], [good, bad], name="feedback")
    assert first.state_dict() == before and first.patience == 10 and first.factor == 0.1


def test_a_fractional_step_reads_the_schedule_there_after_a_restart_too() -> None:
    s = S.linear(1.0, end_lr=0.0, total_steps=10)
    for c in (ReduceOnPlateau(), RestartOnPlateau(), Multiplier()):
        assert c.apply(s, 3.5) == s(3.5) == 0.65
    r = RestartOnPlateau(patience=0)
    r.apply(s, 4)
    r.update(1.0)
    r.update(2.0)  # no improvement: restarts at the last step applied
    assert r.restart_step == 4 and r.scale == 1.0  # RestartOnPlateau's factor: 1
    assert r.apply(s, 6.5) == s(2.5)


def test_a_subclass_may_take_its_own_arguments_by_position() -> None:
    class Tracked(ReduceOnPlateau):
        def __init__(self, metric: str, /, **kwargs: object) -> None:
            super().__init__(**kwargs)  # type: ignore[arg-type]
            self.metric = metric

    t = Tracked("val_loss", patience=2)
    assert (t.metric, t.patience) == ("val_loss", 2)
    with pytest.raises(TypeError) as info:
        Tracked("val_loss", "min")  # type: ignore[call-arg]
    assert str(info.value).startswith("Tracked: takes 1 positional argument (metric) but 2 were")


def test_every_controller_loads_its_state_by_either_name_as_the_schedulers_do():
    """load_state_dict(state_dict=...) as PyTorch names it (lrkit.torch.scheduler's and the
    guards' load_state_dict), or state=; both, or neither, is a one-line TypeError."""
    from lrkit.feedback import (
        Chain,
        DivergenceDetector,
        Multiplier,
        ReduceOnPlateau,
        RestartOnPlateau,
    )

    def chain():
        return Chain(ReduceOnPlateau(), Multiplier(1.0))

    for make in (ReduceOnPlateau, RestartOnPlateau, DivergenceDetector, Multiplier, chain):
        used = make()
        used.update(1.0, step=0)
        used.update(2.0, step=1)
        saved = used.state_dict()
        for kwargs in ({"state_dict": saved}, {"state": saved}):
            fresh = make()
            fresh.load_state_dict(**kwargs)
            assert fresh.state_dict() == saved
        name = type(used).__name__
        with pytest.raises(TypeError, match=rf"^{name}.load_state_dict\(\) got both state and "):
            make().load_state_dict(state=saved, state_dict=saved)
        with pytest.raises(TypeError, match=rf"^{name}.load_state_dict\(\) missing 1 required"):
            make().load_state_dict()


def test_reduce_on_plateau_state_dict_is_a_snapshot_that_later_cuts_leave_alone():
    """The reductions list of a saved state is a copy: cuts made after state_dict() do not
    appear in it, and editing the saved list leaves the controller's own as it was."""
    c = ReduceOnPlateau(patience=0, factor=0.5)
    c.update(1.0)
    c.update(1.0)
    saved = c.state_dict()
    assert saved["reductions"] == [2]
    c.update(1.0)
    assert c.reductions == [2, 3]
    assert saved["reductions"] == [2]
    saved["reductions"].append(99)
    assert c.reductions == [2, 3]


def test_chain_of_two_restarts_nests_the_second_in_the_first_ones_clock():
    """Chain(a, b) with a first (outermost): b sees the steps a has shifted, so b's restart,
    taken at the last step applied, starts the schedule again at that real step."""
    a = RestartOnPlateau(patience=0, max_restarts=1)
    b = RestartOnPlateau(patience=3)
    c = Chain(a, b)
    lrs = []
    for t in range(40):
        lrs.append(c.apply(lambda s: float(s), t))
        if t % 5 == 4:
            c.update(1.0)
    assert a.restarts == [9] and b.restarts == [15]
    expected = [float(t if t < 10 else t - 9 if t < 25 else t - 24) for t in range(40)]
    assert lrs == expected


def test_load_states_loads_a_shared_controller_from_its_first_entry_only():
    """One controller at several places (shared by param groups) takes the state of its first
    place; the later entries for it are not loaded over it."""
    first = ReduceOnPlateau(patience=0)
    first.update(1.0)
    first.update(2.0)
    later = ReduceOnPlateau(patience=0)
    for x in (1.0, 2.0, 3.0, 4.0):
        later.update(x)
    other_state = ReduceOnPlateau(patience=5).state_dict()
    shared, other = ReduceOnPlateau(patience=0), ReduceOnPlateau(patience=5)
    load_states([shared, shared, other], [first.state_dict(), later.state_dict(), other_state])
    assert shared.state_dict() == first.state_dict()
    assert other.state_dict() == other_state


def test_schedule_step_is_where_apply_reads_the_schedule() -> None:
    from lrkit.feedback import Chain, Multiplier, ReduceOnPlateau, RestartOnPlateau

    seen: list[float] = []

    def sched(t: float) -> float:
        seen.append(t)
        return 1.0

    r1, r2 = RestartOnPlateau(patience=0), RestartOnPlateau(patience=0)
    r1.update(1.0, step=0)
    r1.update(2.0, step=10)
    r2.update(1.0, step=0)
    r2.update(2.0, step=4)
    for c in (ReduceOnPlateau(), Multiplier(0.5), r1, Chain(r1, r2), Chain(r2, Multiplier(2.0))):
        for step in (0, 3, 10, 17, 25.0):
            seen.clear()
            c.apply(sched, step)
            assert seen == [c.schedule_step(step)], (c, step)
    assert Chain(r1, r2).schedule_step(17) == 3 and r1.schedule_step(3) == 0


def test_a_reduction_is_recorded_at_the_step_given_to_update():
    """reductions holds the step passed to update(), and the count of updates without one."""
    c = ReduceOnPlateau(patience=0, factor=0.5)
    c.update(1.0, step=100)
    assert c.update(1.0, step=250) == 0.5
    assert c.update(1.0) == 0.25
    assert c.reductions == [250, 3]


def test_a_loaded_reduce_on_plateau_keeps_its_cooldown():
    """The updates left in the cooldown come back with the state: the next bad update is
    skipped as in the uninterrupted run."""
    c = ReduceOnPlateau(patience=0, cooldown=2, factor=0.5)
    c.update(1.0)
    c.update(2.0)
    assert c.scale == 0.5 and c.in_cooldown
    d = ReduceOnPlateau()
    d.load_state_dict(c.state_dict())
    assert d.in_cooldown
    assert [d.update(2.0) for _ in range(3)] == [c.update(2.0) for _ in range(3)]
    assert d.scale == 0.25 and d.reductions == [2, 5]


def test_reset_plateau_zeroes_the_count_of_updates_without_improvement():
    c = ReduceOnPlateau(patience=2, factor=0.5)
    for x in (1.0, 2.0, 2.0):
        c.update(x)
    assert c.num_bad_updates == 2
    c.reset_plateau()
    assert c.num_bad_updates == 0 and c.best is None
    with pytest.warns(RuntimeWarning):
        assert c.update(math.nan) == 1.0  # one bad update since the reset: no cut
    assert c.num_bad_updates == 1


def test_a_restart_on_plateau_loaded_into_a_default_one_keeps_its_cap_and_last_step():
    """Loaded into a default RestartOnPlateau: max_restarts comes back, and without a step
    the restart happens at the last step applied before the state was saved."""
    r = RestartOnPlateau(patience=0, max_restarts=1)
    r.update(1.0)
    r.apply(lambda t: 1.0, 7)
    d = RestartOnPlateau()
    d.load_state_dict(r.state_dict())
    assert d.max_restarts == 1
    d.update(1.0)
    assert d.restarts == [7] and d.restart_step == 7
    d.update(1.0, step=20)
    d.update(1.0, step=30)
    assert d.restarts == [7]  # capped at one restart
    assert d.state_dict()["last_step"] == 7


def test_restart_on_plateau_state_dict_is_a_snapshot_that_later_restarts_leave_alone():
    r = RestartOnPlateau(patience=0)
    r.update(1.0, step=0)
    r.update(1.0, step=5)
    saved = r.state_dict()
    assert saved["restarts"] == [5]
    r.update(1.0, step=6)  # the first metric after a restart: the new best
    r.update(1.0, step=8)
    assert r.restarts == [5, 8] and saved["restarts"] == [5]
    saved["restarts"].append(99)
    assert r.restarts == [5, 8]


def test_multiplier_refuses_a_negative_scale_when_built():
    with pytest.raises(ValueError) as info:
        Multiplier(-1)
    assert str(info.value) == "scale must be >= 0 (allowed range: [0, inf)), got -1"


def test_a_chain_reads_its_members_schedule_steps_first_member_first():
    """A member of one's own that reads the schedule elsewhere (here at twice the step): the
    chain's schedule_step applies the outermost member's shift first, as apply does."""

    class Doubled(Multiplier):
        def apply(self, schedule, step):  # type: ignore[no-untyped-def]
            return float(schedule(2 * step)) * self.scale

        def schedule_step(self, step):  # type: ignore[no-untyped-def]
            return 2 * step

    r = RestartOnPlateau(patience=0)
    r.update(1.0, step=0)
    r.update(1.0, step=10)
    seen: list[float] = []

    def sched(t: float) -> float:
        seen.append(t)
        return 1.0

    chain = Chain(r, Doubled())
    chain.apply(sched, 17)
    assert seen == [14] and chain.schedule_step(17) == 14


def test_a_chain_given_a_state_of_its_first_member_alone_says_to_load_before_the_guard():
    chain = ReduceOnPlateau() & Multiplier()
    before = chain.state_dict()
    with pytest.raises(ValueError) as info:
        chain.load_state_dict(ReduceOnPlateau(patience=3).state_dict())
    assert str(info.value) == (
        "state['type'] must be 'Chain' (a state_dict() of the same controller type), got "
        "'ReduceOnPlateau': it holds this chain's first controller alone; if the Multiplier "
        "that ends the chain is a divergence guard's, the checkpoint was saved without the "
        "guard: load it before adding the guard (build the DivergenceGuard after "
        "load_state_dict)"
    )
    assert chain.state_dict() == before


def test_a_state_of_another_type_names_the_type_expected_and_the_one_given():
    with pytest.raises(ValueError) as info:
        ReduceOnPlateau().load_state_dict(RestartOnPlateau().state_dict())
    assert str(info.value) == (
        "state['type'] must be 'ReduceOnPlateau' (a state_dict() of the same controller type), "
        "got 'RestartOnPlateau'"
    )


def test_from_state_dict_refuses_a_chain_without_members():
    with pytest.raises(ValueError) as info:
        from_state_dict({"type": "Chain", "controllers": []})
    assert str(info.value) == (
        "state['controllers'] must be a non-empty list of controller states (a Chain's "
        "state_dict()), got []"
    )


def test_a_state_ending_with_a_multiplier_says_the_guard_was_there():
    """A chain state whose last member is a Multiplier (where a divergence guard puts its
    own) loaded into a lone controller gets the hint to add the guard first; one whose
    Multiplier comes first does not."""
    with pytest.raises(ValueError) as info:
        ReduceOnPlateau().load_state_dict((ReduceOnPlateau() & Multiplier()).state_dict())
    assert str(info.value) == (
        "state['type'] must be 'ReduceOnPlateau' (a state_dict() of the same controller type), "
        "got 'Chain': it ends with a Multiplier; if that is a divergence guard's, the "
        "checkpoint was saved with the guard: add the guard before loading it (build the "
        "DivergenceGuard before load_state_dict)"
    )
    with pytest.raises(ValueError) as info:
        ReduceOnPlateau().load_state_dict((Multiplier() & ReduceOnPlateau()).state_dict())
    assert str(info.value) == (
        "state['type'] must be 'ReduceOnPlateau' (a state_dict() of the same controller type), "
        "got 'Chain'"
    )


def test_a_chain_ending_with_a_multiplier_given_another_multiplier_state_names_both():
    with pytest.raises(ValueError) as info:
        (ReduceOnPlateau() & Multiplier()).load_state_dict(Multiplier(0.5).state_dict())
    assert str(info.value) == (
        "state['type'] must be 'Chain' (a state_dict() of the same controller type), got "
        "'Multiplier': the checkpoint's controllers are Multiplier, this scheduler's "
        "Chain(ReduceOnPlateau, Multiplier): build it with the feedback= the checkpoint was "
        "saved with"
    )


def test_check_controllers_wants_one_controller_per_param_group():
    from lrkit.feedback import check_controllers

    check_controllers([ReduceOnPlateau(), ReduceOnPlateau()], groups=2)
    with pytest.raises(ValueError) as info:
        check_controllers([ReduceOnPlateau()], groups=2)
    assert str(info.value) == "feedback: a list needs one controller per param group (2), got 1"


def test_metric_mode_reads_a_loss_by_its_name_ending():
    from lrkit.feedback import metric_mode

    assert metric_mode("val_loss") == "min" and metric_mode("Train_Loss") == "min"
    assert metric_mode("val_accuracy") == "max"
    assert metric_mode("loss_ratio") is None and metric_mode("lr") is None


def test_restart_on_plateau_without_a_cap_restarts_on_every_plateau():
    r = RestartOnPlateau(patience=0)
    for k in range(150):
        r.update(1.0, step=2 * k)  # the first metric after a restart: the new best
        r.update(1.0, step=2 * k + 1)
    assert r.restarts == [2 * k + 1 for k in range(150)]


def test_guard_detector_builds_from_factor_or_takes_a_ready_one_alone():
    from lrkit.feedback import DEFAULT_GUARD_FACTOR, guard_detector

    class Guard:
        pass

    guard = Guard()
    built = guard_detector(0.25, None, {"window": 20}, guard=guard)
    assert (built.factor, built.window) == (0.25, 20)
    assert guard_detector(DEFAULT_GUARD_FACTOR, None, {}, guard=guard).factor == 0.5
    ready = DivergenceDetector()
    assert guard_detector(DEFAULT_GUARD_FACTOR, ready, {}, guard=guard) is ready
    for factor, detector, named in (
        (0.5, {}, "factor"),
        (DEFAULT_GUARD_FACTOR, {"window": 5}, "window"),
    ):
        with pytest.raises(ValueError) as info:
            guard_detector(factor, ready, detector, guard=guard)
        assert str(info.value) == (
            f"controller= holds its own settings; pass {named} to the controller you build, "
            "or leave controller out"
        )


def test_warn_against_metric_warns_when_the_mode_is_the_metrics_opposite():
    from lrkit.feedback import warn_against_metric

    with pytest.warns(RuntimeWarning) as caught:
        assert warn_against_metric(
            "ReportMetric", "feedback", "val_acc", ReduceOnPlateau(), "max", why=" (its name)"
        )
    assert [str(w.message) for w in caught] == [
        "ReportMetric: 'val_acc' is a metric to maximize (its name) but the feedback has "
        "mode='min': it would cut the learning rate while the metric improves; build the "
        "controller with mode='max'"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_against_metric(
            "ReportMetric", "feedback", "val_acc", ReduceOnPlateau("max"), "max"
        )


def test_settings_differ_names_the_members_of_a_chain_of_another_length():
    chain = ReduceOnPlateau() & Multiplier()
    longer = (ReduceOnPlateau() & Multiplier() & Multiplier()).state_dict()
    assert settings_differ(chain, longer) == ["controllers"]


def test_an_optimizer_given_as_the_mode_points_to_the_scheduler():
    class Optimizer:
        param_groups: list[dict[str, float]] = []

    for build in (lambda: ReduceOnPlateau(Optimizer()), lambda: RestartOnPlateau(mode=Optimizer())):
        with pytest.raises(ValueError) as info:
            build()
        assert str(info.value) == (
            "mode must be one of 'min', 'max', got a Optimizer optimizer (a controller takes no "
            "optimizer, as PyTorch's ReduceLROnPlateau does: give it to the scheduler, "
            "lrkit.torch.scheduler(opt, schedule, feedback=ReduceOnPlateau(...)))"
        )


def test_from_state_dict_refuses_a_state_without_a_type():
    for bad in ({"factor": 0.5}, [("type", "Multiplier")]):
        with pytest.raises(ValueError) as info:
            from_state_dict(bad)  # type: ignore[arg-type]
        assert str(info.value) == "state must be a dict produced by a controller's state_dict()"


def test_plateau_controllers_defaults_and_the_default_relative_threshold():
    """The defaults as documented (PyTorch's: factor 0.1, patience 10, threshold 1e-4 "rel");
    a fall by less than 1e-4 of the best is no improvement, one by more is."""
    defaults = ("min", 10, 1e-4, "rel", 0, 0.0)
    for c in (ReduceOnPlateau(), RestartOnPlateau()):
        assert (c.mode, c.patience, c.threshold, c.threshold_mode, c.cooldown, c.min_scale) == (
            defaults
        )
    assert ReduceOnPlateau().factor == 0.1
    r = RestartOnPlateau()
    assert (r.factor, r.max_restarts) == (1.0, None)
    c = ReduceOnPlateau()
    c.update(1.0)
    c.update(0.99995)  # above 1 * (1 - 1e-4)
    assert c.best == 1.0 and c.num_bad_updates == 1
    c.update(0.99989)  # below it
    assert c.best == 0.99989 and c.num_bad_updates == 0
    # patience 10: the restart comes with the 11th update without improvement
    for step in range(12):
        r.update(1.0, step=step)
    assert r.restarts == [11]


def test_min_scale_floors_the_cuts_and_a_cut_at_the_floor_is_not_recorded():
    c = ReduceOnPlateau(patience=0, factor=0.5, min_scale=0.3)
    assert [c.update(1.0) for _ in range(5)] == [1.0, 0.5, 0.3, 0.3, 0.3]
    assert c.reductions == [2, 3]  # the cut to the floor counts; none once there
    r = RestartOnPlateau(patience=0, factor=0.5, min_scale=0.3)
    for step in range(6):
        r.update(1.0, step=step)  # the first metric after a restart: the new best
    assert r.restarts == [1, 3, 5] and r.scale == 0.3


def test_a_restart_without_a_step_after_a_fractional_apply_is_at_the_whole_step():
    s = S.linear(1.0, end_lr=0.0, total_steps=10)
    r = RestartOnPlateau(patience=0)
    r.apply(s, 6.5)
    r.update(1.0)
    r.update(2.0)
    assert r.restarts == [6] and r.restart_step == 6
    assert r.apply(s, 7.5) == s(1.5) == 0.85
    resumed = RestartOnPlateau()
    resumed.load_state_dict(r.state_dict())
    assert resumed.state_dict() == r.state_dict() and resumed.apply(s, 7.5) == 0.85


def test_max_restarts_zero_watches_for_plateaus_but_never_restarts():
    sched = lambda t: 0.5**t  # noqa: E731
    r = RestartOnPlateau(patience=0, factor=0.5, max_restarts=0)
    for step in range(5):
        assert r.update(1.0, step=step) == 1.0
    assert r.restarts == [] and r.restart_step == 0 and r.num_bad_updates == 0
    assert r.apply(sched, 4) == 0.5**4


@pytest.mark.parametrize("bad", [-1, 1.5])
def test_max_restarts_must_be_a_count(bad):
    with pytest.raises(ValueError) as info:
        RestartOnPlateau(max_restarts=bad)
    assert str(info.value) == (
        f"max_restarts must be an integer >= 0 (allowed range: [0, inf)), got {bad}"
    )


def test_multiply_refuses_a_negative_factor_and_keeps_the_scale():
    m = Multiplier(0.5)
    with pytest.raises(ValueError) as info:
        m.multiply(-1)
    assert str(info.value) == "factor must be >= 0 (allowed range: [0, inf)), got -1"
    assert m.scale == 0.5


@pytest.mark.parametrize(
    "make",
    [ReduceOnPlateau, RestartOnPlateau, DivergenceDetector, Multiplier,
     lambda: ReduceOnPlateau() & Multiplier()],
)  # fmt: skip
def test_a_state_that_is_not_a_dict_is_a_value_error(make):
    c = make()
    before = c.state_dict()
    with pytest.raises(ValueError) as info:
        c.load_state_dict("abc")
    assert str(info.value) == "state must be a dict from state_dict(), got str"
    assert c.state_dict() == before


def test_a_state_entry_of_the_wrong_kind_is_a_value_error_naming_the_controller():
    c = ReduceOnPlateau(patience=0)
    c.update(1.0)
    before = c.state_dict()
    with pytest.raises(ValueError, match=r"^state must be a state_dict\(\) of a ReduceOnPlateau: "):
        c.load_state_dict({**before, "num_updates": 5, "reductions": None})
    assert c.state_dict() == before
    d = DivergenceDetector()
    with pytest.raises(ValueError, match=r"^state must be a state_dict\(\) of a Divergence"):
        d.load_state_dict({**d.state_dict(), "history": 3})


def test_a_controller_of_ones_own_whose_state_overflows_gets_a_value_error():
    """A number in a state that its own controller cannot hold (an int() of infinity) is a
    ValueError naming the controller, and the controller is left as it was."""

    class Counted(Multiplier):
        def __init__(self, scale: float = 1.0) -> None:
            super().__init__(scale)
            self.count = 0

        def state_dict(self):  # type: ignore[no-untyped-def]
            return {**super().state_dict(), "count": self.count}

        def _load_state(self, state):  # type: ignore[no-untyped-def]
            super()._load_state(state)
            self.count = int(state["count"])

    c = Counted(0.5)
    c.count = 3
    with pytest.raises(ValueError) as info:
        c.load_state_dict({"type": "Counted", "scale": 0.25, "count": math.inf})
    assert str(info.value) == (
        "state must be a state_dict() of a Counted: cannot convert float infinity to integer"
    )
    assert (c.scale, c.count) == (0.5, 3)


def test_check_controllers_refuses_a_class_and_an_object_without_the_controller_methods():
    from lrkit.feedback import check_controllers

    for given, message in (
        (ReduceOnPlateau, "feedback must be a controller instance, e.g. ReduceOnPlateau(...), "
         "got the class ReduceOnPlateau"),
        ([ReduceOnPlateau(), 3], "feedback[1] must be an lrkit.feedback controller (with "
         ".apply()), got int"),
    ):  # fmt: skip
        with pytest.raises(ValueError) as info:
            check_controllers(given)
        assert str(info.value) == message


def test_warn_against_metric_reads_the_members_of_a_chain():
    from lrkit.feedback import members_of, warn_against_metric

    plateau, m = ReduceOnPlateau(), Multiplier()
    assert members_of([plateau & m, None]) == [plateau, m]
    with pytest.warns(RuntimeWarning, match=r"^ReportMetric: 'val_acc' is a metric to maximize"):
        assert warn_against_metric("ReportMetric", "feedback", "val_acc", m & plateau, "max")
