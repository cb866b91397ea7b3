"""The images the commands write (``lrkit plot -o``, ``lrkit find``/``compare -o``, ``lrkit tune
--plot``): whole or not at all, and drawn without transparency (no PostScript warning)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from lrkit.cli import main  # noqa: E402

OLD = b"\x89PNG\r\n\x1a\n yesterday's image"
ERROR = "could not write the file: OSError: [Errno 28] No space left on device"


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every figure's ``savefig`` writes part of the file, then the disk is full."""
    from matplotlib.figure import Figure

    def savefig(self: Any, fname: Any, *args: Any, **kwargs: Any) -> None:
        with open(fname, "wb") as f:
            f.write(b"half an ima")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", savefig)


def test_plot_that_fails_mid_write_leaves_the_old_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], full_disk: None
) -> None:
    path = tmp_path / "keep.png"
    path.write_bytes(OLD)
    assert main(["plot", "cosine(0.1, 100)", "-o", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == f"lrkit plot: error: -o/--output {str(path)!r}: {ERROR}\n"
    assert path.read_bytes() == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]  # no temporary file left


def test_find_and_compare_images_that_fail_mid_write_leave_the_old_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], full_disk: None
) -> None:
    """``lrkit find`` and ``lrkit compare`` write their ``-o`` image through ``write_plot``."""
    from lrkit.commands._target import write_plot
    from lrkit.finder import range_test

    result = range_test(lambda lr: 1.0 / (1.0 + lr), num_iter=20, warn=False)
    path = tmp_path / "keep.png"
    path.write_bytes(OLD)
    said: list[str] = []
    assert write_plot("find", str(path), result.plot, say=said.append) is True
    assert capsys.readouterr().err == f"lrkit find: error: -o/--output {str(path)!r}: {ERROR}\n"
    assert said == []
    assert path.read_bytes() == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


def test_tune_plot_that_fails_mid_write_leaves_the_old_image(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    full_disk: None,
    tune_task_module: Any,
) -> None:
    pytest.importorskip("optuna")
    target = tune_task_module("lrkit_image_task")
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "keep.png"
    path.write_bytes(OLD)
    argv = ["tune", target, "--trials", "1", "--seeding", "blind", "--quiet"]
    argv += ["--storage", "sqlite:///t.db", "--plot", str(path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.endswith(f"lrkit tune: error: --plot {str(path)!r}: {ERROR}\n"), err
    assert path.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".py") == ["keep.png", "t.db"]


@pytest.mark.parametrize("ext", ["eps", "ps"])
def test_plot_writes_postscript_without_a_transparency_warning(
    ext: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / f"x.{ext}"
    assert main(["plot", "cosine(0.1, 100)", "-o", str(path)]) == 0
    assert capsys.readouterr() == (f"wrote {path}\n", "")
    assert [r.getMessage() for r in caplog.records] == []  # matplotlib's PostScript warning
    data = path.read_bytes()
    assert data.startswith(b"%!PS-Adobe") and f"%%Title: x.{ext}".encode() in data
