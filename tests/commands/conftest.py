"""Fixtures shared by the tests of the commands."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

#: A target for a quick ``lrkit tune`` run: a Task whose metric is the schedule's first LR.
TUNE_TASK = """\
from lrkit.tune import Task

def make():
    return Task(train=lambda schedule, report: schedule(0), total_steps=20)
"""


@pytest.fixture
def write_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str], str]]:
    """``write(name, source)``: the module ``name`` holding ``source`` in ``tmp_path``,
    importable and not yet imported (taken out of ``sys.modules`` again after the test);
    returns ``name``."""
    written: list[str] = []

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))
        sys.modules.pop(name, None)
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


@pytest.fixture
def tune_task_module(write_module: Callable[[str, str], str]) -> Callable[[str], str]:
    """``write(name)``: the module ``name`` holding :data:`TUNE_TASK` (see
    :func:`write_module`); returns its target, ``"name:make"``."""
    return lambda name: f"{write_module(name, TUNE_TASK)}:make"
