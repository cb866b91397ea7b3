"""lrkit.tune's plot of a search: what its legend names is what it draws."""

from __future__ import annotations

from typing import Any

import pytest

from lrkit.tune import Task, tune

EDGE = "worse: drawn at the edge"


def _legend(fig: Any) -> list[str]:
    return [t.get_text() for t in fig.axes[1].get_legend().get_texts()]


def test_the_edge_marker_is_in_the_legend_only_when_a_trial_is_drawn_at_the_edge() -> None:
    pytest.importorskip("matplotlib")

    def pruned_once(schedule: Any, report: Any) -> float:
        lr = float(schedule(0))
        if lr > 0.05:  # a trial cut short inside the range shown: drawn as an open circle
            report(0, 1.0)
            import optuna

            raise optuna.TrialPruned()
        return 1.0  # every complete trial alike: none beyond the detailed range

    r = tune(Task(pruned_once, total_steps=10), n_trials=6, seeding=(1e-3, 1.0),
             pruner="none", seed=0, progress=False)  # fmt: skip
    assert any(t.state.name == "PRUNED" for t in r.study.trials)
    fig = r.plot(None)
    assert "pruned (last value)" in _legend(fig) and EDGE not in _legend(fig)

    values = iter([1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 100.0])
    r = tune(Task(lambda s, rep: next(values), total_steps=10), n_trials=10, seeding="blind",
             pruner="none", seed=0, progress=False)  # fmt: skip
    fig = r.plot(None)
    assert EDGE in _legend(fig)  # 100.0 is beyond the detailed range: a triangle at the edge


def test_a_pruned_trial_beyond_the_detailed_range_is_a_triangle_at_the_edge() -> None:
    """A pruned trial whose last value lies beyond the range shown is drawn at the edge as an
    open triangle (said in the legend), not as an open circle that reads as a value there."""
    pytest.importorskip("matplotlib")
    import itertools

    values = (1.0 + 0.1 * k for k in itertools.count())

    def one_far_off(schedule: Any, report: Any) -> float:
        if float(schedule(0)) > 0.2:  # cut short far above every complete trial
            report(0, 100.0)
            import optuna

            raise optuna.TrialPruned()
        return next(values)

    r = tune(Task(one_far_off, total_steps=10), n_trials=12, seeding=(1e-3, 1.0),
             pruner="none", seed=0, progress=False)  # fmt: skip
    far = [t for t in r.study.trials if t.state.name == "PRUNED"]
    assert far and all(float(t.params["lr"]) > 0.2 for t in far)
    fig = r.plot(None)
    assert EDGE in _legend(fig)
    top = fig.axes[0].get_ylim()[1]
    open_markers = [
        c
        for c in fig.axes[0].collections
        if len(c.get_facecolors()) == 0  # no fill: pruned
    ]
    ys = [y for c in open_markers for _, y in c.get_offsets()]
    assert sorted(ys) == [top] * len(far)  # at the edge
    from matplotlib.markers import MarkerStyle

    up = MarkerStyle("^")
    triangle = up.get_path().transformed(up.get_transform()).vertices
    for c in open_markers:  # the edge's triangle, as a complete trial's there
        assert c.get_paths()[0].vertices.tolist() == triangle.tolist()


def test_a_title_that_is_no_text_is_refused_as_every_plot_refuses_it(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    r = tune(Task(lambda s, rep: 1.0, total_steps=10), n_trials=2, seeding="blind",
             pruner="none", seed=0, progress=False)  # fmt: skip
    for title in (5, ["a"]):
        with pytest.raises(ValueError, match=r"^title must be a string or None, got "):
            r.plot(str(tmp_path / "t.png"), title=title)  # type: ignore[arg-type]
    assert not (tmp_path / "t.png").exists()
    assert r.plot(str(tmp_path / "t.png"), title="search").texts[0].get_text() == "search"


def _result(
    direction: str,
    values: list[float],
    spec: Any = None,
    n_trials: int = 0,
    family: str = "constant",
) -> Any:
    """A TuneResult over a study holding one COMPLETE ``family`` trial per value."""
    optuna = pytest.importorskip("optuna")
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from lrkit.tune import SearchSpace, TuneResult

    study = optuna.create_study(direction=direction)
    dists = {
        "lr": FloatDistribution(1e-6, 10.0, log=True),
        "family": CategoricalDistribution([family]),
    }
    for i, v in enumerate(values):
        lr = 0.0012345678 * (i + 1)
        attrs = {"schedule": spec if spec is not None else f"constant(lr={lr!r})"}
        study.add_trial(
            optuna.trial.create_trial(
                params={"lr": lr, "family": family},
                distributions=dists,
                value=v,
                user_attrs=attrs,
            )
        )
    return TuneResult(study, space=SearchSpace(100), n_trials=n_trials or len(values),
                      seeding="blind")  # fmt: skip


def test_top_puts_the_highest_values_first_when_maximizing() -> None:
    r = _result("maximize", [0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2])
    assert [t.value for t in r.top(3)] == [0.9, 0.8, 0.7]
    assert [t.value for t in r.top()] == [0.9, 0.8, 0.7, 0.5, 0.3]  # 5 by default
    assert [t.value for t in _result("minimize", [0.5, 0.1, 0.3]).top(2)] == [0.1, 0.3]


def test_reached_holds_from_exactly_n_trials_complete() -> None:
    assert _result("minimize", [1.0, 2.0], n_trials=2).reached
    assert not _result("minimize", [1.0, 2.0], n_trials=3).reached


def test_the_table_shows_numbers_and_specs_at_four_significant_digits() -> None:
    r = _result("minimize", [1.23456, 2.5])
    assert r.table(2) == (
        "rank  trial  value  peak lr   family    schedule\n"
        "----  -----  -----  --------  --------  --------\n"
        "1     0      1.235  0.001235  constant  constant(lr=0.001235)\n"
        "2     1      2.5    0.002469  constant  constant(lr=0.002469)"
    )
    assert r.top(1)[0].user_attrs["schedule"] == "constant(lr=0.0012345678)"  # kept whole


def _add_pruned(r: Any, intermediate: dict[int, float], **attrs: Any) -> None:
    """A PRUNED trial (peak LR 0.01) that reported ``intermediate``, added to ``r``'s study."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    dists = {
        "lr": FloatDistribution(1e-6, 10.0, log=True),
        "family": CategoricalDistribution(["constant"]),
    }
    r.study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED,
            params={"lr": 0.01, "family": "constant"},
            distributions=dists,
            intermediate_values=intermediate,
            user_attrs=attrs,
        )
    )


def _open_markers(ax: Any) -> list[list[float]]:
    """Where the unfilled (pruned) markers of ``ax`` are drawn."""
    return [
        [float(x), float(y)]
        for c in ax.collections
        if len(c.get_facecolors()) == 0
        for x, y in c.get_offsets()
    ]


def test_a_pruned_trial_is_drawn_at_the_value_of_its_last_report() -> None:
    pytest.importorskip("matplotlib")
    r = _result("minimize", [float(v) for v in range(1, 11)])
    _add_pruned(r, {1: 5.0, 0: 2.0})  # step 1 is the last, whatever the order stored
    fig = r.plot(None)
    assert _open_markers(fig.axes[0]) == [[10.0, 5.0]]
    assert _open_markers(fig.axes[1]) == [[0.01, 5.0]]


def test_a_surplus_pruned_trial_is_not_drawn() -> None:
    pytest.importorskip("matplotlib")
    r = _result("minimize", [float(v) for v in range(1, 11)])
    _add_pruned(r, {0: 3.0}, surplus=True)
    fig = r.plot(None)
    assert _open_markers(fig.axes[0]) == [] and _open_markers(fig.axes[1]) == []
    assert "pruned (last value)" not in _legend(fig)


def test_only_rank_0_of_a_process_group_writes_the_plot(tmp_path: Any, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    import sys
    import types

    r = _result("minimize", [1.0, 2.0])
    for rank, written in ((1, False), (0, True)):
        dist = types.SimpleNamespace(
            is_available=lambda: True, is_initialized=lambda: True, get_rank=lambda r=rank: r
        )
        monkeypatch.setitem(sys.modules, "torch.distributed", dist)
        path = tmp_path / f"rank{rank}.png"
        assert r.plot(str(path)) is not None
        assert path.exists() is written


@pytest.mark.parametrize("family, color", [("constant", "C0"), ("wsd", "C5")])
def test_a_family_keeps_its_colour_whatever_families_the_study_holds(
    family: str, color: str
) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.colors import to_rgba

    fig = _result("minimize", [1.0, 2.0], family=family).plot(None)
    for ax in fig.axes[:2]:
        (points,) = [c for c in ax.collections if c.get_label() == family]
        assert tuple(points.get_facecolors()[0][:3]) == to_rgba(color)[:3]


def test_maximizing_a_trial_far_below_is_a_downward_triangle_at_the_lower_edge() -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.markers import MarkerStyle

    fig = _result("maximize", [*(float(v) for v in range(1, 10)), -100.0]).plot(None)
    down = MarkerStyle("v")
    triangle = down.get_path().transformed(down.get_transform()).vertices.tolist()
    ax = fig.axes[0]
    edge = [c for c in ax.collections if c.get_paths()[0].vertices.tolist() == triangle]
    assert [[float(x), float(y)] for c in edge for x, y in c.get_offsets()] == [
        [9.0, ax.get_ylim()[0]]
    ]
    assert EDGE in _legend(fig)


def test_the_lr_axis_shows_the_searched_interval_with_a_margin() -> None:
    pytest.importorskip("matplotlib")
    r = _result("minimize", [1.0, 2.0])
    lo, hi = r.lr_range
    assert r.plot(None).axes[1].get_xlim() == pytest.approx((lo / 1.25, hi * 1.25), rel=1e-9)


def test_a_diverged_trial_is_a_cross_at_the_edge_not_a_pruned_circle() -> None:
    pytest.importorskip("matplotlib")
    r = _result("minimize", [float(v) for v in range(1, 11)])
    _add_pruned(r, {0: 3.0}, diverged=True)  # reported once, then its metric was not finite
    fig = r.plot(None)
    assert _open_markers(fig.axes[0]) == [] and _open_markers(fig.axes[1]) == []
    (cross,) = [c for c in fig.axes[0].collections if c.get_label() == "diverged"]
    assert cross.get_offsets().tolist() == [[10.0, fig.axes[0].get_ylim()[1]]]
    assert "pruned (last value)" not in _legend(fig)


def test_the_table_of_a_search_without_a_complete_trial_says_so() -> None:
    assert _result("minimize", [], n_trials=3).table(5) == "(no finished trials)"


def test_a_table_narrower_than_its_columns_still_gives_the_spec_30_characters() -> None:
    spec = 'wsd(lr=0.1, total_steps=100, warmup_steps=5, decay_steps=20, decay="1-sqrt")'
    lines = _result("minimize", [1.0], spec=spec).table(1, width=60).splitlines()
    assert lines[2:] == [
        "1     0      1      0.001235  constant  wsd(lr=0.1, total_steps=100,",
        "                                        warmup_steps=5,",
        "                                        decay_steps=20,",
        '                                        decay="1-sqrt")',
    ]
    assert all(len(line) - 40 <= 30 for line in lines[2:])  # 40: the columns before it


@pytest.mark.parametrize(
    ("direction", "ylim"), [("minimize", (0.2, 11.4)), ("maximize", (1.2, 12.4))]
)
def test_the_plot_shows_the_best_80_percent_of_the_values_in_detail(
    direction: str, ylim: tuple[float, float]
) -> None:
    """Values 1..10: minimizing, from the best (1) to the 80th percentile (9), widened by 10%
    of that span below and 30% above; maximizing, from the 20th percentile (2) to the best."""
    pytest.importorskip("matplotlib")
    fig = _result(direction, [float(v) for v in range(1, 11)]).plot(None)
    for ax in fig.axes[:2]:
        assert ax.get_ylim() == pytest.approx(ylim, rel=1e-12)
