"""lrkit._files: output files written whole or not at all."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lrkit._files import write_new, write_text_whole


def test_a_file_is_written_whole_and_keeps_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    write_text_whole(str(path), '{"a": 1}')
    assert path.read_text() == '{"a": 1}'
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # as open(path, "w") makes it
    path.chmod(0o640)
    write_text_whole(str(path), "two")
    assert path.read_text() == "two" and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary left


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.json"
    path.write_text("the results of yesterday")

    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left") as info:
        write_text_whole(str(path), "x" * 100_000)
    assert info.value.filename == str(path)  # the file asked for, not the temporary one
    assert path.read_text() == "the results of yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_a_link_is_followed_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_text_whole(str(link), "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_a_default_name_never_replaces_a_file_that_appeared_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "lrkit_find.png"

    def draw(into: str) -> None:
        Path(into).write_bytes(b"new image")
        path.write_text("another run's plot")  # appears while the image is drawn

    assert write_new(str(path), draw) == str(tmp_path / "lrkit_find-1.png")
    assert path.read_text() == "another run's plot"
    assert (tmp_path / "lrkit_find-1.png").read_bytes() == b"new image"
    assert write_new(str(path), lambda into: Path(into).write_bytes(b"x")) == str(
        tmp_path / "lrkit_find-2.png"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lrkit_find-1.png",
        "lrkit_find-2.png",
        "lrkit_find.png",
    ]  # no temporary file left


def test_a_default_name_that_fails_to_draw_leaves_nothing(tmp_path: Path) -> None:
    def draw(into: str) -> None:
        Path(into).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_new(str(tmp_path / "a.png"), draw)
    assert list(tmp_path.iterdir()) == []


def test_a_path_ending_with_a_separator_is_a_folder_even_if_missing(tmp_path: Path) -> None:
    from lrkit._files import check_output

    for path in (str(tmp_path / "out") + os.sep, str(tmp_path) + os.sep):
        with pytest.raises(ValueError) as info:
            check_output(path, option="--json", example="results.json")
        assert str(info.value) == (
            f"--json {path!r} is a folder: give a file name, e.g. "
            f"{os.path.join(path, 'results.json')!r}"
        )
    assert list(tmp_path.iterdir()) == []


def test_check_output_refuses_a_file_name_too_long_for_the_folder(tmp_path) -> None:
    from lrkit._files import check_output

    path = str(tmp_path / ("x" * 300 + ".png"))
    with pytest.raises(ValueError, match=r"^--plot '.*': the file name is too long \(304 bytes; "
                       r"the folder takes at most \d+\)$"):  # fmt: skip
        check_output(path, option="--plot", types=("png",))
    assert check_output(str(tmp_path / "ok.png"), option="--plot", types=("png",))
