"""``lrkit find`` and ``lrkit compare`` without a working PyTorch: one line, exit code 2, and
when PyTorch is installed but fails to import, why."""

from __future__ import annotations

import builtins
import sys
from typing import Any

import pytest

from lrkit.cli import main

HINT = "needs PyTorch: pip install 'lrkit[torch]'"


@pytest.fixture(autouse=True)
def _folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing is written: the command stops before its work


def _failing_import(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """``import torch`` raises ``error`` (as from a broken installation)."""
    real = builtins.__import__

    def fake(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch":
            raise error
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


@pytest.mark.parametrize("command", ["find", "compare"])
def test_without_pytorch_the_command_says_how_to_install_it(command, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if not installed
    assert main([command, "--demo"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"lrkit {command} {HINT}\n")


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (
            OSError("libtorch_cpu.so: cannot open shared object file: No such file or directory"),
            "libtorch_cpu.so: cannot open shared object file: No such file or directory",
        ),
        (
            ImportError("cannot import name 'Tensor' from 'torch._C'\n(most likely a bad build)"),
            "cannot import name 'Tensor' from 'torch._C' (most likely a bad build)",
        ),
        (ModuleNotFoundError("No module named 'sympy'", name="sympy"), "No module named 'sympy'"),
        (OSError(), "OSError"),
    ],
)
@pytest.mark.parametrize("command", ["find", "compare"])
def test_a_broken_pytorch_is_reported_with_the_cause(command, error, cause, monkeypatch, capsys):
    _failing_import(monkeypatch, error)
    assert main([command, "--demo"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"lrkit {command} {HINT} ({cause})\n")
