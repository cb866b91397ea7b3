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
        if lr > 0.05:  # a trial cut short by the pruner: drawn as an open circle
            report(0, 1.0 + lr)
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


def test_a_title_that_is_no_text_is_refused_as_every_plot_refuses_it(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    r = tune(Task(lambda s, rep: 1.0, total_steps=10), n_trials=2, seeding="blind",
             pruner="none", seed=0, progress=False)  # fmt: skip
    for title in (5, ["a"]):
        with pytest.raises(ValueError, match=r"^title must be a string or None, got "):
            r.plot(str(tmp_path / "t.png"), title=title)  # type: ignore[arg-type]
    assert not (tmp_path / "t.png").exists()
    assert r.plot(str(tmp_path / "t.png"), title="search").texts[0].get_text() == "search"
