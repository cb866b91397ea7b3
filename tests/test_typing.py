"""Documented usage type-checks: a user's code that calls lrkit as the guides show passes
``mypy --strict`` (lrkit ships ``py.typed``)."""

from __future__ import annotations

from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")
pytest.importorskip("torch")

USER_CODE = """
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

import lrkit.optax as lo
import lrkit.torch as lt
from lrkit import schedules as S
from lrkit.feedback import DivergenceDetector, ReduceOnPlateau
from lrkit.tune import Task, demo_task


def lrs(s: S.Schedule) -> npt.NDArray[np.float64]:
    return s.values(range(10))  # a float64 array, typed as one


def one(s: S.Schedule) -> float:
    return s(np.int64(5)) + s(torch.tensor(5))  # numpy and 0-d torch steps


def metrics(opt: torch.optim.Optimizer) -> None:  # a tensor or numpy metric, as docs show
    plateau = ReduceOnPlateau(patience=1)
    sched = lt.scheduler(opt, S.cosine(0.1, total_steps=10), feedback=plateau)
    sched.report(torch.tensor(0.5))
    plateau.update(np.float32(0.3))
    DivergenceDetector().check(torch.tensor(0.5))


def task() -> Task:
    return demo_task()  # lazily exported, with its real type


def configs(s: S.Schedule) -> Any:
    return lo.schedule(MappingProxyType(s.to_dict()))  # any mapping
"""


def test_documented_usage_passes_mypy_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "user_code.py"
    user.write_text(USER_CODE)
    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("MYPYPATH", str(root / "src"))  # this checkout's lrkit
    out, err, status = api.run(
        ["--strict", "--cache-dir", str(root / ".mypy_cache"), str(user)]
    )  # fmt: skip
    assert status == 0, out + err
