"""Fixtures shared by the tests of the commands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

#: A target for a quick ``lrkit tune`` run: a Task whose metric is the schedule's first LR.
TUNE_TASK = """\
from lrkit.tune import Task

def make():
    return Task(train=lambda schedule, report: schedule(0), total_steps=20)
"""


@pytest.fixture
def tune_task_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """``write(name)``: the module ``name`` holding :data:`TUNE_TASK` in ``tmp_path``,
    importable (and not yet imported); returns its target, ``"name:make"``."""

    def write(name: str) -> str:
        (tmp_path / f"{name}.py").write_text(TUNE_TASK)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, name, raising=False)
        return f"{name}:make"

    return write
