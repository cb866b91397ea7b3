"""lrkit._files: output files written whole or not at all."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from lrkit._files import write_file_whole, write_new, write_text_whole


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


def test_a_folder_no_file_can_be_created_in_is_refused_even_when_os_access_says_yes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root, ``os.access`` says every folder is writable (a read-only file system's too):
    the check creates a file there and removes it, leaving the folder as it was."""
    from lrkit import _files
    from lrkit._files import check_output

    assert check_output(str(tmp_path / "ok.json"), option="--json") == str(tmp_path / "ok.json")
    assert list(tmp_path.iterdir()) == []  # the trial file is gone

    def refuse(*args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_files.tempfile, "mkstemp", refuse)
    monkeypatch.setattr(_files.os, "access", lambda *a, **k: True)
    with pytest.raises(ValueError, match=r"^--json '.*r\.json': the folder '.*' is not writable$"):
        check_output(str(tmp_path / "r.json"), option="--json")


def test_check_output_refuses_a_file_name_too_long_for_the_folder(tmp_path) -> None:
    from lrkit._files import check_output

    path = str(tmp_path / ("x" * 300 + ".png"))
    with pytest.raises(ValueError, match=r"^--plot '.*': the file name is too long \(304 bytes; "
                       r"the folder takes at most \d+\)$"):  # fmt: skip
        check_output(path, option="--plot", types=("png",))
    assert check_output(str(tmp_path / "ok.png"), option="--plot", types=("png",))


# -- targets that are not regular files: written in place, never renamed over ---------------

needs_posix = pytest.mark.skipif(os.name == "nt", reason="FIFOs and /dev/fd are POSIX")


@pytest.fixture
def replace_only_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.replace`` works in ``tmp_path`` only: a writer that would rename a file over a
    device node or a stream fails instead of changing the machine."""
    real_replace = os.replace

    def guarded(src: str, dst: str) -> None:
        if not os.path.realpath(dst).startswith(str(tmp_path.resolve()) + os.sep):
            raise AssertionError(f"os.replace over {dst!r}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", guarded)


@needs_posix
def test_a_fifo_gets_the_text_through_its_reader_and_stays_a_fifo(tmp_path: Path) -> None:
    import threading

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as f:  # waits for the writer
            got.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    text = '{"lrs": [' + ", ".join(["0.1"] * 50_000) + "]}"  # more than a pipe holds
    write_text_whole(str(fifo), text)
    reader.join(timeout=30)
    assert not reader.is_alive() and got == [text.encode()]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.fifo"]  # no temporary left


@needs_posix
@pytest.mark.usefixtures("replace_only_in")
def test_dev_null_is_written_and_stays_the_device(tmp_path: Path) -> None:
    if not os.path.exists(os.devnull):
        pytest.skip(f"no {os.devnull} here")
    before = os.stat(os.devnull)
    link = tmp_path / "null.json"
    link.symlink_to(os.devnull)
    write_text_whole(os.devnull, '{"a": 1}')
    write_text_whole(str(link), '{"a": 1}')  # through a link too
    after = os.stat(os.devnull)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert after.st_ino == before.st_ino and link.is_symlink()


@needs_posix
@pytest.mark.usefixtures("replace_only_in")
@pytest.mark.parametrize("name", ["/dev/fd/{fd}", "/proc/self/fd/{fd}"])
def test_a_file_descriptor_is_written_at_its_place_not_replaced(tmp_path: Path, name: str) -> None:
    path = tmp_path / "log.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        target = name.format(fd=fd)
        if not os.path.exists(target):
            pytest.skip(f"no {target} here")
        os.write(fd, b"the table printed before\n")
        ino = os.fstat(fd).st_ino
        write_text_whole(target, '{"a": 1}\n')
        os.write(fd, b"after\n")
    finally:
        os.close(fd)
    assert path.read_text() == 'the table printed before\n{"a": 1}\nafter\n'
    assert path.stat().st_ino == ino  # the same file, not a new one renamed over it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.txt"]


_PRINT_THEN_WRITE = """
import sys
from lrkit._files import write_text_whole
stream = getattr(sys, sys.argv[2])
print("the table printed before", file=stream)  # still in Python's buffer: flushed first
write_text_whole(sys.argv[1], '{"a": 1}\\n')
print("after", file=stream)
"""


# Python's streams buffered as they are by default, so a missing flush shows
_BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}

_PRINT_THEN_DRAW = """
import sys
from lrkit._files import write_file_whole
stream = getattr(sys, sys.argv[2])
print("the table printed before", file=stream)  # still in Python's buffer: flushed first


def draw(into):
    with open(into, "ab") as f:
        f.write(b"<svg/>\\n")


write_file_whole(sys.argv[1], draw)
print("after", file=stream)
"""


@needs_posix
@pytest.mark.parametrize("name", ["/dev/stdout", "/dev/stderr"])
def test_an_image_into_a_standard_stream_comes_after_what_was_printed(name: str) -> None:
    import subprocess
    import sys

    if not os.path.exists(name):
        pytest.skip(f"no {name} here")
    stream = name.rsplit("/", 1)[1]
    cmd = [sys.executable, "-c", _PRINT_THEN_DRAW, name, stream]
    p = subprocess.run(cmd, capture_output=True, text=True, env=_BUFFERED)
    out, other = (p.stdout, p.stderr) if stream == "stdout" else (p.stderr, p.stdout)
    assert (p.returncode, other) == (0, "")
    assert out == "the table printed before\n<svg/>\nafter\n"


@needs_posix
@pytest.mark.parametrize(
    "name",
    ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1", "/dev/stderr", "/dev/fd/2"],
)
@pytest.mark.parametrize("into", ["file", "pipe"])
def test_a_standard_stream_keeps_what_was_printed_before(
    tmp_path: Path, name: str, into: str
) -> None:
    import subprocess
    import sys

    if not os.path.exists(name):
        pytest.skip(f"no {name} here")
    stream = "stderr" if name.endswith(("stderr", "/2")) else "stdout"
    cmd = [sys.executable, "-c", _PRINT_THEN_WRITE, name, stream]
    if into == "pipe":
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=_BUFFERED)
        out, other = (p.stdout, p.stderr) if stream == "stdout" else (p.stderr, p.stdout)
    else:  # `> log.txt` (`2> log.txt`)
        log = tmp_path / "log.txt"
        with open(log, "w") as f:
            if stream == "stdout":
                p = subprocess.run(
                    cmd,
                    stdout=f,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=tmp_path,
                    env=_BUFFERED,
                )
            else:
                p = subprocess.run(
                    cmd,
                    stdout=subprocess.PIPE,
                    stderr=f,
                    text=True,
                    cwd=tmp_path,
                    env=_BUFFERED,
                )
        out = log.read_text()
        other = p.stderr if stream == "stdout" else p.stdout
    assert (p.returncode, other) == (0, "")
    assert out == 'the table printed before\n{"a": 1}\nafter\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == (["log.txt"] if into == "file" else [])


def test_a_regular_file_is_still_replaced_whole_not_written_in_place(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("the results of yesterday")
    ino = path.stat().st_ino
    with open(path) as held:  # a reader of the old file keeps reading the old file
        write_text_whole(str(path), "new")
        assert held.read() == "the results of yesterday"
    assert path.read_text() == "new" and path.stat().st_ino != ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


# -- check_output: what is written in place is accepted, what cannot be is refused ------------


@needs_posix
def test_check_output_takes_a_fifo_a_device_and_the_standard_streams(tmp_path: Path) -> None:
    from lrkit._files import check_output

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    for path in (str(fifo), os.devnull, "/dev/stdout", "/dev/stderr", "/dev/fd/1"):
        assert check_output(path, option="--json", example="results.json") == path
    svg = tmp_path / "plot.svg"
    os.mkfifo(svg)  # an SVG is written without seeking: a pipe takes it
    assert check_output(str(svg), option="--plot", types=("png", "svg")) == str(svg)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and stat.S_ISFIFO(svg.stat().st_mode)


@needs_posix
def test_check_output_refuses_a_file_descriptor_that_cannot_be_written(tmp_path: Path) -> None:
    from lrkit._files import check_output

    (tmp_path / "in.txt").write_text("x")
    fd = os.open(tmp_path / "in.txt", os.O_RDONLY)
    try:
        with pytest.raises(ValueError) as info:
            check_output(f"/dev/fd/{fd}", option="--json")
        assert str(info.value) == (
            f"--json '/dev/fd/{fd}': file descriptor {fd} is not open for writing"
        )
    finally:
        os.close(fd)
    with pytest.raises(ValueError) as info:  # closed now
        check_output(f"/dev/fd/{fd}", option="--json")
    assert str(info.value) == f"--json '/dev/fd/{fd}': file descriptor {fd} is not open"


@needs_posix
def test_check_output_refuses_a_socket_and_leaves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from lrkit._files import check_output

    monkeypatch.chdir(tmp_path)  # a short name: a socket's path has a small limit
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("s.sock")
        with pytest.raises(ValueError) as info:
            check_output("s.sock", option="--json")
        assert str(info.value) == (
            "--json 's.sock' is a socket, which cannot be opened for writing: give a file name"
        )
        assert stat.S_ISSOCK(os.stat("s.sock").st_mode)


@needs_posix
def test_check_output_refuses_an_image_that_a_pipe_cannot_take(tmp_path: Path) -> None:
    from lrkit._files import IMAGE_TYPES, check_output

    fifo = tmp_path / "plot.png"
    os.mkfifo(fifo)
    with pytest.raises(ValueError) as info:
        check_output(str(fifo), option="-o/--output", types=IMAGE_TYPES)
    assert str(info.value) == (
        f"-o/--output {str(fifo)!r} is a pipe: a .png image cannot be written into one (its "
        "writer seeks in the file); give a regular file, or one of .svg, .svgz, .eps, .ps"
    )
    log = tmp_path / "log.txt"
    log.write_text("the table printed before\n")
    link = tmp_path / "to-stdout.png"
    with open(log, "a") as f:
        link.symlink_to(f"/dev/fd/{f.fileno()}")
        with pytest.raises(ValueError) as info:  # opened by name, the log would be emptied
            check_output(str(link), option="--plot", types=IMAGE_TYPES)
        assert str(info.value) == (
            f"--plot {str(link)!r} is file descriptor {f.fileno()}, a file an image would "
            "overwrite from its start: give the file's own name"
        )
    assert log.read_text() == "the table printed before\n"


def test_a_device_that_cannot_be_opened_is_refused_before_any_work() -> None:
    # /dev/tty with no controlling terminal (a job under cron or CI): the write would fail
    # only after the work; the check opens it (and closes it) first
    from lrkit._files import check_output

    try:
        os.close(os.open("/dev/tty", os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK))
    except OSError as exc:
        with pytest.raises(ValueError) as info:
            check_output("/dev/tty", option="--json")
        assert str(info.value) == (
            f"--json '/dev/tty': the device cannot be opened for writing ({exc.strerror})"
        )
    else:
        pytest.skip("this process has a controlling terminal: /dev/tty opens")
    assert check_output("/dev/null", option="--json") == "/dev/null"


def test_an_image_is_written_whole_under_its_own_name_keeping_the_permissions(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plot.eps"
    given: list[str] = []

    def draw(into: str) -> None:
        given.append(into)
        Path(into).write_bytes(b"%!PS new")

    write_file_whole(str(path), draw)
    assert path.read_bytes() == b"%!PS new"
    assert Path(given[0]).name == "plot.eps"  # the type, and the name stored in the file
    assert Path(given[0]).parent.parent == tmp_path  # in the same folder: renamed, not copied
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    path.chmod(0o640)
    write_file_whole(str(path), draw)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.eps"]  # no temporary left


def test_an_image_that_fails_mid_write_leaves_the_old_file_and_no_partial_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keep.png"
    path.write_bytes(b"yesterday's image")

    def draw(into: str) -> None:
        Path(into).write_bytes(b"half an ima")
        raise OSError(errno.ENOSPC, "No space left on device", into)

    with pytest.raises(OSError, match="No space left") as info:
        write_file_whole(str(path), draw)
    assert info.value.filename == str(path)  # the file asked for, not the temporary one
    assert path.read_bytes() == b"yesterday's image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]

    def interrupted(into: str) -> None:
        Path(into).write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # an interruption too
        write_file_whole(str(path), interrupted)
    assert path.read_bytes() == b"yesterday's image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


def test_an_image_through_a_link_replaces_the_file_it_points_to(tmp_path: Path) -> None:
    target = tmp_path / "real.png"
    target.write_bytes(b"old")
    link = tmp_path / "link.png"
    link.symlink_to(target)
    write_file_whole(str(link), lambda into: Path(into).write_bytes(b"new"))
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_an_image_into_a_device_is_written_in_place() -> None:
    given: list[str] = []
    write_file_whole(os.devnull, given.append)
    assert given == [os.devnull]


def test_a_default_name_takes_the_first_free_number_from_one(tmp_path: Path) -> None:
    from lrkit._files import fresh_path

    (tmp_path / "lrkit_find.png").write_bytes(b"user data")
    assert fresh_path(str(tmp_path / "lrkit_find.png")) == str(tmp_path / "lrkit_find-1.png")
    (tmp_path / "results").write_text("user data")
    assert fresh_path(str(tmp_path / "results")) == str(tmp_path / "results-1")


def test_a_default_name_whose_write_fails_leaves_no_empty_file_and_the_users_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image is drawn, but copying it under its new name fails (a full disk): the name
    created for it is removed again, and the user's file under the plain name is untouched."""
    path = tmp_path / "a.png"
    path.write_bytes(b"the user's image")

    def full_disk(fd: int, *args: object, **kwargs: object) -> object:
        os.close(fd)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_new(str(path), lambda into: Path(into).write_bytes(b"new image"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    assert path.read_bytes() == b"the user's image"


def test_check_output_takes_a_file_name_exactly_as_long_as_the_folder_allows(tmp_path) -> None:
    from lrkit._files import _name_max, check_output

    longest = _name_max(str(tmp_path))
    path = str(tmp_path / ("x" * (longest - 4) + ".png"))
    assert check_output(path, option="--plot", types=("png",)) == path
    too_long = str(tmp_path / ("x" * (longest - 3) + ".png"))
    with pytest.raises(ValueError, match=rf"the file name is too long \({longest + 1} bytes; "):
        check_output(too_long, option="--plot", types=("png",))
    assert list(tmp_path.iterdir()) == []


def test_check_output_reads_an_image_extension_in_any_case(tmp_path: Path) -> None:
    from lrkit._files import check_output

    for name in ("plot.PNG", "plot.Svg", "plot.JPEG"):
        path = str(tmp_path / name)
        assert check_output(path, option="--plot", types=("png", "svg", "jpeg")) == path
    with pytest.raises(ValueError) as info:
        check_output(str(tmp_path / "plot.GIF"), option="--plot", types=("png", "svg"))
    assert str(info.value) == (
        f"--plot {str(tmp_path / 'plot.GIF')!r}: unknown file type .gif (allowed: .png, .svg)"
    )


def test_check_output_refuses_a_file_of_code_whose_suffix_is_in_capitals(tmp_path: Path) -> None:
    from lrkit._files import check_output

    for name in ("Task.PY", "notes.IPYNB"):
        path = tmp_path / name
        path.write_text("x = 1\n")
        with pytest.raises(ValueError) as info:
            check_output(str(path), option="--json", example="results.json")
        assert str(info.value) == (
            f"--json {str(path)!r} is a file of code (a Python module or notebook): writing "
            "there would replace it; give another file name, e.g. 'results.json'"
        )
        assert path.read_text() == "x = 1\n"


@needs_posix
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_file_descriptor_of_another_process_is_not_this_ones_stream() -> None:
    from lrkit._files import names_stdout

    assert names_stdout(f"/proc/{os.getpid()}/fd/1")
    assert not names_stdout("/proc/4194305/fd/1")  # above any pid Linux gives out


def test_a_default_name_goes_past_every_taken_number(tmp_path: Path) -> None:
    from lrkit._files import fresh_path

    path = tmp_path / "lrkit_find.png"
    assert fresh_path(str(path)) == str(path)  # free: used as it is
    for name in ("lrkit_find.png", "lrkit_find-1.png", "lrkit_find-2.png"):
        (tmp_path / name).write_bytes(b"user data")
    assert fresh_path(str(path)) == str(tmp_path / "lrkit_find-3.png")


def _new_file_mode(umask: int, write: object) -> int:
    """The permissions ``write()`` gives a new file under ``umask``."""
    previous = os.umask(umask)
    try:
        path = write()
    finally:
        os.umask(previous)
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(("umask", "mode"), [(0o027, 0o640), (0o002, 0o664)])
def test_a_new_file_gets_the_permissions_the_umask_gives(
    tmp_path: Path, umask: int, mode: int
) -> None:
    def text() -> Path:
        write_text_whole(str(tmp_path / "out.json"), "{}")
        return tmp_path / "out.json"

    def image() -> Path:
        write_file_whole(str(tmp_path / "plot.png"), lambda into: Path(into).write_bytes(b"x"))
        return tmp_path / "plot.png"

    def default_name() -> str:
        return write_new(str(tmp_path / "a.png"), lambda into: Path(into).write_bytes(b"x"))

    assert _new_file_mode(umask, text) == mode  # group-writable under umask 002, as open() makes
    assert _new_file_mode(umask, image) == mode
    assert _new_file_mode(umask, default_name) == mode


def test_outputs_are_written_from_the_folder_the_command_started_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrkit._files import back_to, starting_folder

    monkeypatch.chdir(tmp_path)
    start = starting_folder()
    assert start == str(tmp_path.resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)  # the target moved the process
    assert back_to(start) is True and os.getcwd() == start
    assert back_to(start) is True and os.getcwd() == start  # already there
    assert back_to(None) is True and os.getcwd() == start  # no folder was read: stays
    os.chdir(elsewhere)
    assert back_to(str(tmp_path / "gone")) is False and os.getcwd() == str(elsewhere.resolve())


def test_an_error_of_the_plotting_library_about_another_file_keeps_its_name(
    tmp_path: Path,
) -> None:
    font = str(tmp_path.parent / "fonts" / "missing.ttf")

    def draw(into: str) -> None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", font)

    with pytest.raises(FileNotFoundError) as info:
        write_file_whole(str(tmp_path / "plot.png"), draw)
    assert info.value.filename == font
    assert list(tmp_path.iterdir()) == []


@needs_posix
def test_only_standard_output_is_standard_output(tmp_path: Path) -> None:
    from lrkit._files import names_stdout

    assert names_stdout("/dev/stdout") and names_stdout("/dev/fd/1")
    assert not names_stdout("/dev/stderr") and not names_stdout("/dev/fd/2")
    assert not names_stdout(str(tmp_path / "out.json")) and not names_stdout(None)
    fds = tmp_path / "fds"
    fds.symlink_to("/dev/fd")  # a folder linked to /dev/fd: its entries are still streams
    assert names_stdout(str(fds / "1")) and not names_stdout(str(fds / "2"))


def test_check_output_refuses_every_kind_of_code_file_also_through_a_link(
    tmp_path: Path,
) -> None:
    from lrkit._files import check_output

    (tmp_path / "tasks.py").write_text("x = 1\n")
    (tmp_path / "to-tasks.json").symlink_to(tmp_path / "tasks.py")
    for name in ("tool.pyw", "types.pyi", "to-tasks.json"):
        path = tmp_path / name
        if not path.exists():
            path.write_text("x = 1\n")
        with pytest.raises(ValueError) as info:
            check_output(str(path), option="--json")
        assert str(info.value) == (
            f"--json {str(path)!r} is a file of code (a Python module or notebook): writing "
            "there would replace it; give another file name"
        )
        assert path.read_text() == "x = 1\n"


def test_check_output_refuses_an_sqlite_database_of_any_name(tmp_path: Path) -> None:
    """An Optuna study's file given as --json (a copy named kcopy.db, say) is not replaced."""
    import sqlite3

    from lrkit._files import check_output

    db = tmp_path / "kcopy.db"
    with sqlite3.connect(db) as con:
        con.execute("create table t (x)")
    (tmp_path / "link.json").symlink_to(db)
    before = db.read_bytes()
    for path in (db, tmp_path / "link.json"):
        with pytest.raises(ValueError) as info:
            check_output(str(path), option="--json")
        assert str(info.value) == (
            f"--json {str(path)!r} is an SQLite database (an Optuna study's, say): writing "
            "there would replace it; give another file name"
        )
    assert db.read_bytes() == before
    (tmp_path / "notes.db").write_text("not a database\n")  # a name alone says nothing
    assert check_output(str(tmp_path / "notes.db"), option="--json") == str(tmp_path / "notes.db")


def test_check_output_names_what_is_wrong_with_a_path(tmp_path: Path) -> None:
    from lrkit._files import IMAGE_TYPES, check_output

    def refused(path: str, **kwargs: object) -> str:
        with pytest.raises(ValueError) as info:
            check_output(path, option="--plot", **kwargs)  # type: ignore[arg-type]
        return str(info.value)

    assert refused("  ") == "--plot must be a file name, got '  '"
    assert refused("-") == (
        "--plot '-' would be a file named '-': give a file name, or /dev/stdout for standard output"
    )
    assert refused("-", types=("png",)) == "--plot '-' would be a file named '-': give a file name"
    folder = str(tmp_path)
    assert refused(folder, types=("png", "svg")) == (
        f"--plot {folder!r} is a folder: give a file name, e.g. "
        f"{os.path.join(folder, 'name.png')!r}"
    )
    plot = str(tmp_path / "plot")
    assert refused(plot, types=("png", "svg")) == (
        f"--plot {plot!r} has no extension: end it with one of .png, .svg"
    )
    missing = tmp_path / "missing" / "plot.png"
    assert refused(str(missing), types=IMAGE_TYPES) == (
        f"--plot {str(missing)!r}: the folder {str(missing.parent)!r} does not exist"
    )
    assert list(tmp_path.iterdir()) == []


def test_check_output_takes_every_image_type(tmp_path: Path) -> None:
    from lrkit._files import IMAGE_TYPES, check_output

    for ext in ("png", "svg", "pdf", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp", "svgz"):
        path = str(tmp_path / f"plot.{ext}")
        assert check_output(path, option="--plot", types=IMAGE_TYPES) == path


@needs_posix
def test_check_output_refuses_a_file_or_fifo_that_is_not_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``os.access`` answers for the user running the command (root may write anywhere)."""
    from lrkit import _files
    from lrkit._files import check_output

    kept = tmp_path / "kept.json"
    kept.write_text("the user's results")
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    read_only = {str(kept), str(fifo)}
    real_access = os.access
    monkeypatch.setattr(
        _files.os, "access", lambda p, mode: str(p) not in read_only and real_access(p, mode)
    )
    for path in (kept, fifo):
        with pytest.raises(ValueError) as info:
            check_output(str(path), option="--json")
        assert str(info.value) == f"--json {str(path)!r}: the file is not writable"
    assert kept.read_text() == "the user's results" and stat.S_ISFIFO(fifo.stat().st_mode)


def test_an_image_through_a_link_that_fails_mid_write_leaves_the_file_it_points_to(
    tmp_path: Path,
) -> None:
    target = tmp_path / "real.png"
    target.write_bytes(b"yesterday's image")
    link = tmp_path / "link.png"
    link.symlink_to(target)

    def draw(into: str) -> None:
        Path(into).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", into)

    with pytest.raises(OSError, match="No space left"):
        write_file_whole(str(link), draw)
    assert link.is_symlink() and target.read_bytes() == b"yesterday's image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.png", "real.png"]


def test_an_image_whose_temporary_folder_cannot_be_made_names_the_file_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk (or a read-only folder) fails the hidden folder the image is drawn in: the
    error names the file asked for, not that folder, and the old file is as it was."""
    path = tmp_path / "plot.png"
    path.write_bytes(b"yesterday's image")

    def full_disk(name: str, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", name)

    monkeypatch.setattr(os, "mkdir", full_disk)
    with pytest.raises(OSError, match="No space left") as info:
        write_file_whole(str(path), lambda into: Path(into).write_bytes(b"new"))
    assert info.value.filename == str(path)
    assert path.read_bytes() == b"yesterday's image"


def test_a_text_file_interrupted_before_its_rename_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.json"
    path.write_text("the results of yesterday")

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_whole(str(path), "new")
    assert path.read_text() == "the results of yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_a_default_name_interrupted_while_copied_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"the user's image")

    def interrupted(fd: int, *args: object, **kwargs: object) -> object:
        os.close(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fdopen", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_new(str(path), lambda into: Path(into).write_bytes(b"new image"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    assert path.read_bytes() == b"the user's image"


@needs_posix
def test_a_stream_that_takes_part_of_a_write_gets_the_rest_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``os.write`` may write less than it is given (a signal, a slow reader): what is left
    is written after it, in order."""
    path = tmp_path / "log.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    try:
        target = f"/dev/fd/{fd}"
        if not os.path.exists(target):
            pytest.skip(f"no {target} here")
        write_text_whole(target, '{"lrs": [0.1, 0.01, 0.001]}\n')
    finally:
        os.close(fd)
    assert path.read_text() == '{"lrs": [0.1, 0.01, 0.001]}\n'


@needs_posix
def test_a_regular_file_that_took_a_fifo_s_place_is_replaced_whole_not_written_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path was a FIFO when it was looked at and is a regular file when it is opened:
    the file is replaced as a whole, none of its old text is left after the new one."""
    path = tmp_path / "out.json"
    path.write_text("the results of yesterday")
    real_stat = os.stat
    looked: list[str] = []

    def was_a_fifo(p: object, *args: object, **kwargs: object) -> os.stat_result:
        st = real_stat(p, *args, **kwargs)  # type: ignore[arg-type]
        if str(p) == str(path) and not looked:
            looked.append(str(p))
            return os.stat_result((stat.S_IFIFO | 0o644, *tuple(st)[1:]))
        return st

    monkeypatch.setattr(os, "stat", was_a_fifo)
    write_text_whole(str(path), "new")
    assert looked == [str(path)]
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


@needs_posix
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc")
def test_a_thread_s_name_of_a_file_descriptor_is_this_process_s_stream() -> None:
    import threading

    from lrkit._files import names_stdout

    tid = threading.get_native_id()
    assert names_stdout("/proc/thread-self/fd/1")
    assert names_stdout(f"/proc/{os.getpid()}/task/{tid}/fd/1")
    assert names_stdout(f"/proc/self/task/{tid}/fd/1")
    assert not names_stdout(f"/proc/self/task/{tid}/fd/2")


def test_check_output_counts_a_file_name_s_length_in_bytes(tmp_path: Path) -> None:
    """A name of 130 characters, 256 bytes in UTF-8 (each é is two): longer than a folder
    takes, refused before any work."""
    from lrkit._files import _name_max, check_output

    if _name_max(str(tmp_path)) != 255:
        pytest.skip("a file system whose names are not at most 255 bytes")
    name = "\u00e9" * 126 + ".png"
    with pytest.raises(ValueError) as info:
        check_output(str(tmp_path / name), option="--plot", types=("png",))
    assert str(info.value).endswith(
        ": the file name is too long (256 bytes; the folder takes at most 255)"
    )
    fits = str(tmp_path / ("\u00e9" * 125 + ".png"))  # 254 bytes
    assert check_output(fits, option="--plot", types=("png",)) == fits


@needs_posix
def test_check_output_takes_a_file_descriptor_open_for_reading_and_writing(
    tmp_path: Path,
) -> None:
    from lrkit._files import check_output

    fd = os.open(tmp_path / "log.txt", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        assert check_output(f"/dev/fd/{fd}", option="--json") == f"/dev/fd/{fd}"
    finally:
        os.close(fd)


def test_check_output_takes_a_new_file_whose_name_ends_like_code(tmp_path: Path) -> None:
    """Only an existing file of code is refused: a new name ending in .py replaces nothing."""
    from lrkit._files import check_output

    path = str(tmp_path / "results.py")
    assert check_output(path, option="--json") == path
    assert list(tmp_path.iterdir()) == []


def test_check_output_reads_an_sqlite_file_by_its_whole_header(tmp_path: Path) -> None:
    """Text that begins like an SQLite header is not a database; the refusal of a real one
    suggests the example name."""
    import sqlite3

    from lrkit._files import check_output

    notes = tmp_path / "notes.txt"
    notes.write_text("SQLite format 3 is the file format of a study\n")
    assert check_output(str(notes), option="--json") == str(notes)
    db = tmp_path / "study.db"
    con = sqlite3.connect(db)
    con.execute("create table t (x)")
    con.commit()
    con.close()
    with pytest.raises(ValueError) as info:
        check_output(str(db), option="--json", example="results.json")
    assert str(info.value) == (
        f"--json {str(db)!r} is an SQLite database (an Optuna study's, say): writing there "
        "would replace it; give another file name, e.g. 'results.json'"
    )


_PRINT_PART_OF_A_LINE = """
import sys
from lrkit._files import write_text_whole
print("progress 50%", end="", file=sys.stderr)  # a line not ended yet: still buffered
write_text_whole("/dev/stderr", "|{}")
"""


@needs_posix
def test_text_left_unended_on_standard_error_comes_before_what_is_written_there() -> None:
    import subprocess
    import sys

    if not os.path.exists("/dev/stderr"):
        pytest.skip("no /dev/stderr here")
    cmd = [sys.executable, "-c", _PRINT_PART_OF_A_LINE]
    p = subprocess.run(cmd, capture_output=True, text=True, env=_BUFFERED)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "progress 50%|{}")
