"""A study written by ``lrkit.tune`` is readable by optuna-dashboard: its web API lists the
study and serves every trial with its schedule spec (called in-process, no server, no port)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

optuna = pytest.importorskip("optuna")
dashboard = pytest.importorskip("optuna_dashboard")

from lrkit import schedules as S  # noqa: E402
from lrkit.tune import Task, tune  # noqa: E402


def _get(app: Any, path: str) -> tuple[str, bytes]:
    env: dict[str, Any] = {}
    setup_testing_defaults(env)
    env.update(PATH_INFO=path, REQUEST_METHOD="GET")
    status: list[str] = []
    body = b"".join(app(env, lambda s, headers, exc_info=None: status.append(s)))
    return status[0], body


def test_optuna_dashboard_reads_the_tuning_study(tmp_path: Path) -> None:
    def train(schedule: Any, report: Any) -> float:
        peak = max(schedule(t) for t in range(0, 100, 5))
        return float((math.log10(peak) + 2.0) ** 2)

    url = f"sqlite:///{tmp_path / 'lrkit-tune.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = tune(
        Task(train=train, total_steps=100),
        n_trials=5,
        storage=url,
        study_name="quad",
        seeding="blind",
        seed=0,
    )
    app = dashboard.wsgi(url)

    status, body = _get(app, "/api/studies")
    assert status == "200 OK"
    (summary,) = json.loads(body)["study_summaries"]
    assert summary["study_name"] == "quad" and summary["directions"] == ["minimize"]

    status, body = _get(app, f"/api/studies/{summary['study_id']}")
    assert status == "200 OK"
    study = json.loads(body)
    trials = {t["number"]: t for t in study["trials"]}
    assert len(trials) == len(result.study.trials)
    for t in result.complete_trials:
        shown = trials[t.number]
        assert shown["state"] == "Complete" and shown["values"] == [t.value]
        spec = {a["key"]: a["value"] for a in shown["user_attrs"]}["schedule"]
        assert spec == t.user_attrs["schedule"] and S.parse(spec) == S.parse(str(S.parse(spec)))
    (best,) = study["best_trials"]
    assert {a["key"]: a["value"] for a in best["user_attrs"]}["schedule"] == result.best_spec

    status, body = _get(app, f"/csv/{summary['study_id']}")
    assert status == "200 OK" and "UserAttribute schedule" in body.decode()


def test_a_diverged_trial_is_pruned_with_its_attribute_and_a_raising_one_fails(
    tmp_path: Path,
) -> None:
    values = iter([math.inf, 1.0])

    def train(schedule: Any, report: Any) -> float:
        return next(values)

    url = f"sqlite:///{tmp_path / 'lrkit-tune.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tune(Task(train=train, total_steps=100), n_trials=1, storage=url, study_name="d",
         seeding="blind", seed=0)  # fmt: skip

    def boom(schedule: Any, report: Any) -> float:
        raise RuntimeError("the user's train failed")

    with pytest.raises(RuntimeError, match="the user's train failed"):
        tune(Task(train=boom, total_steps=100), n_trials=2, storage=url, study_name="d",
             seeding="blind", seed=0)  # fmt: skip
    app = dashboard.wsgi(url)
    (summary,) = json.loads(_get(app, "/api/studies")[1])["study_summaries"]
    trials = json.loads(_get(app, f"/api/studies/{summary['study_id']}")[1])["trials"]
    shown = [
        (t["state"], {a["key"]: a["value"] for a in t["user_attrs"]}.get("diverged"))
        for t in sorted(trials, key=lambda t: t["number"])
    ]
    assert shown == [("Pruned", "True"), ("Complete", None), ("Fail", None)]  # shown as text
