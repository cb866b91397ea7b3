"""Each command line's message for a missing optional package, with the package hidden as if
it were not installed: worded by :func:`lrkit._imports.install_hint` (who needs what, then the
install line), one line, no traceback; a refusal is exit code 2, a skipped plot a note."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lrkit.cli import main


def _hide(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """``name`` and its submodules as if not installed (``import`` fails, ``find_spec`` finds
    none); restored after the test."""
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        monkeypatch.setitem(sys.modules, key, None)
    monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture(autouse=True)
def _folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_tune_without_optuna(monkeypatch, capsys) -> None:
    _hide(monkeypatch, "optuna")
    assert main(["tune", "--demo"]) == 2
    assert capsys.readouterr() == ("", "lrkit tune needs optuna: pip install 'lrkit[tune]'\n")


def test_plot_output_without_matplotlib(monkeypatch, capsys, tmp_path) -> None:
    _hide(monkeypatch, "matplotlib")
    png = tmp_path / "x.png"
    assert main(["plot", "cosine(0.1, 100)", "-o", str(png)]) == 2
    assert capsys.readouterr() == (
        "",
        "lrkit plot: error: -o/--output needs matplotlib: pip install 'lrkit[plot]'\n",
    )
    assert not png.exists()


@pytest.mark.parametrize("command", [["plot", "cosine(0.1, 100)"], ["find", "--demo"]])
def test_a_backend_matplotlib_does_not_know_is_one_line_before_any_work(command, tmp_path):
    """MPLBACKEND is read when matplotlib is first imported (a fresh process): an unknown one
    is named in one line, exit code 2, before the range test or the plot runs."""
    import os
    import subprocess

    if command[0] == "find":
        pytest.importorskip("torch")
    png = tmp_path / "x.png"
    env = {**os.environ, "MPLBACKEND": "bogus"}
    out = subprocess.run([sys.executable, "-m", "lrkit", *command, "-o", str(png)], env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == (
        f"lrkit {command[0]}: error: MPLBACKEND='bogus' is not a backend matplotlib knows, and "
        "-o/--output draws with matplotlib: unset MPLBACKEND, or set it to one (e.g. "
        "MPLBACKEND=agg)\n"
    )
    assert not png.exists()


def test_a_backend_matplotlib_does_not_know_refuses_the_default_plot_too(tmp_path):
    """Without -o, the default plot draws with matplotlib as well: the unknown backend is
    refused before the range test, with how to do without that plot."""
    import os
    import subprocess

    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    import lrkit

    here = os.path.dirname(os.path.dirname(os.path.abspath(lrkit.__file__)))
    path = os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "MPLBACKEND": "bogus", "PYTHONPATH": path}  # run in tmp_path
    out = subprocess.run([sys.executable, "-m", "lrkit", "find", "--demo"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == (
        "lrkit find: error: MPLBACKEND='bogus' is not a backend matplotlib knows, and the "
        "default plot draws with matplotlib: unset MPLBACKEND, or set it to one (e.g. "
        "MPLBACKEND=agg) (the default plot; -o names another, --no-plot writes none)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_find_output_by_name_without_matplotlib(monkeypatch, capsys, tmp_path) -> None:
    pytest.importorskip("torch")
    _hide(monkeypatch, "matplotlib")
    png = tmp_path / "x.png"
    assert main(["find", "--demo", "-o", str(png)]) == 2
    assert capsys.readouterr() == (
        "",
        "lrkit find: error: -o/--output needs matplotlib: pip install 'lrkit[plot]'\n",
    )


def test_the_default_plot_without_matplotlib_is_a_note(monkeypatch, tmp_path) -> None:
    """``lrkit find`` and ``lrkit compare`` skip their default image (the real plot call:
    :meth:`FinderResult.plot` refuses first)."""
    from lrkit.commands._target import write_plot
    from lrkit.finder import range_test

    result = range_test(lambda lr: 1.0 / (1.0 + lr), num_iter=20, warn=False)
    _hide(monkeypatch, "matplotlib")
    said: list[str] = []
    png = tmp_path / "lrkit-find.png"
    assert write_plot("find", str(png), result.plot, say=said.append, default=True) is False
    assert said == ["  note: no plot (-o/--output needs matplotlib: pip install 'lrkit[plot]')"]
    assert not png.exists()


def _tune_task(tmp_path: Path, write: Callable[[str], str]) -> list[str]:
    """The arguments of a quick ``lrkit tune`` run (one trial, a study in ``t.db``) of the
    target ``write`` (the ``tune_task_module`` fixture) makes."""
    argv = ["tune", write("lrkit_nompl_task"), "--trials", "1", "--seeding", "blind"]
    return argv + ["--storage", f"sqlite:///{tmp_path / 't.db'}", "--no-progress"]


@pytest.mark.parametrize("quiet", [False, True])
def test_tune_plot_by_name_without_matplotlib_is_refused_before_any_work(
    monkeypatch, capsys, tmp_path, quiet, tune_task_module
) -> None:
    """As ``lrkit find -o``: the plot asked for by name is refused before the study is made."""
    pytest.importorskip("optuna")
    argv = _tune_task(tmp_path, tune_task_module)
    _hide(monkeypatch, "matplotlib")
    argv += ["--plot", str(tmp_path / "search.png"), *(["--quiet"] if quiet else [])]
    assert main(argv) == 2
    assert capsys.readouterr() == (
        "",
        "lrkit tune: error: --plot needs matplotlib: pip install 'lrkit[plot]'\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lrkit_nompl_task.py"]  # no study
    assert "lrkit_nompl_task" not in sys.modules  # the target was not even imported


def test_tune_default_plot_without_matplotlib_is_a_note(
    monkeypatch, capsys, tmp_path, tune_task_module
) -> None:
    pytest.importorskip("optuna")
    argv = _tune_task(tmp_path, tune_task_module)
    _hide(monkeypatch, "matplotlib")
    assert main(argv) == 0
    out, err = capsys.readouterr()
    note = "note: no plot (--plot needs matplotlib: pip install 'lrkit[plot]')"
    assert out.splitlines().count(note) == 1, (out, err)
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lrkit_nompl_task.py", "t.db"]


def test_tune_demo_without_torch(monkeypatch, capsys, tmp_path) -> None:
    """The demo task of ``lrkit tune --demo`` is a PyTorch one: without PyTorch the command
    says so as ``lrkit find --demo`` does, before a study is made."""
    pytest.importorskip("optuna")
    _hide(monkeypatch, "torch")
    monkeypatch.chdir(tmp_path)
    assert main(["tune", "--demo"]) == 2
    assert capsys.readouterr() == (
        "",
        "lrkit tune --demo needs PyTorch: pip install 'lrkit[torch]'\n",
    )
    assert list(tmp_path.iterdir()) == []
