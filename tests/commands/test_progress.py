"""Progress bars only on a terminal: ``lrkit tune``, ``lrkit find`` and ``lrkit compare``
draw their bars on stderr when it is a terminal, and none (no carriage-return frames) when it
is redirected to a file or a pipe (a log, CI); ``--quiet`` / ``--no-progress`` hide them on a
terminal too."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lrkit.cli import main

TASK = textwrap.dedent(
    """
    def make():
        import torch

        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=g)
        y = (x[:, 0] > 0).long()
        model = torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
        return model, opt, torch.nn.functional.cross_entropy, data

    def tune_task():
        from lrkit.tune import Task

        def train(schedule, report):
            report(0, float(schedule(0)))
            return float(schedule(0))

        return Task(train=train, total_steps=20)
    """
)


@pytest.fixture
def task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_module) -> str:
    monkeypatch.chdir(tmp_path)
    return write_module("lrkit_progress_task", TASK)


def _argv(command: str, task: str) -> list[str]:
    if command == "tune":
        pytest.importorskip("optuna")
        return ["tune", f"{task}:tune_task", "--trials", "2", "--seeding", "blind"]
    pytest.importorskip("torch")
    if command == "find":
        return ["find", f"{task}:make", "--num-iter", "10", "--no-train", "--no-plot"]
    return ["compare", f"{task}:make", "--methods", "fixed", "--steps", "10", "--no-plot"]


def _tune_extra(command: str) -> list[str]:
    return ["--plot", "none", "--storage", "sqlite:///p.db"] if command == "tune" else []


@pytest.mark.parametrize("command", ["tune", "find", "compare"])
def test_no_progress_frames_when_stderr_is_not_a_terminal(command, task, capsys):
    assert main([*_argv(command, task), *_tune_extra(command)]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "%|" not in err, err


@pytest.mark.parametrize("command", ["tune", "find", "compare"])
def test_progress_bars_on_a_terminal(command, task, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main([*_argv(command, task), *_tune_extra(command)]) == 0
    err = capsys.readouterr().err
    assert "\r" in err and "%|" in err, err


@pytest.mark.parametrize("option", ["--quiet", "--no-progress"])
def test_quiet_and_no_progress_hide_the_bar_on_a_terminal_too(option, task, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main([*_argv("tune", task), *_tune_extra("tune"), option]) == 0
    assert "\r" not in capsys.readouterr().err


def test_a_log_file_gets_no_progress_frames(task, tmp_path):
    """``lrkit tune ... 2> log``: the log holds lines, not carriage-return frames."""
    argv = [*_argv("tune", task), *_tune_extra("tune")]
    log = tmp_path / "tune.log"
    with log.open("w") as f:
        p = subprocess.run(
            [sys.executable, "-m", "lrkit.cli", *argv],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=f,
            timeout=300,
        )
    text = log.read_text()
    assert p.returncode == 0, text
    assert "\r" not in text and "%|" not in text, text
    assert "searching peak LR" in text  # the progress lines are still there
