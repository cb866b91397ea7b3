"""Output files of the command line: checked before any work starts, default names that
never overwrite a user's existing file."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from . import _validate as V
from ._format import shorten

__all__ = [
    "IMAGE_TYPES",
    "check_output",
    "fresh_path",
    "names_folder",
    "write_file_whole",
    "write_new",
    "write_text_whole",
]

#: Image types matplotlib writes without extra packages or programs (``.pgf`` is left out: it
#: needs a LaTeX installation).
IMAGE_TYPES: tuple[str, ...] = (
    "png",
    "svg",
    "pdf",
    "jpg",
    "jpeg",
    "eps",
    "ps",
    "tif",
    "tiff",
    "webp",
    "svgz",
)

#: The image types whose writer needs no seeking: the only ones a pipe (a FIFO) can take.
_STREAM_TYPES: tuple[str, ...] = ("svg", "svgz", "eps", "ps")


def starting_folder() -> str | None:
    """The working folder, read when the output options are checked (``None`` when it is
    gone): :func:`back_to` returns to it before the outputs are written."""
    try:
        return os.getcwd()
    except OSError:
        return None


def back_to(folder: str | None) -> bool:
    """Return to ``folder`` (from :func:`starting_folder`) when the command's target moved
    the process elsewhere (``os.chdir`` in a task's code): relative output paths are written
    where they were checked, and the messages that name them stay true. False when it cannot
    (the folder is gone since): nothing is to be written elsewhere under its names."""
    if folder is None:
        return True
    try:
        here: str | None = os.getcwd()
    except OSError:  # the folder the target moved to is gone
        here = None
    if here != folder:
        try:
            os.chdir(folder)
        except OSError:
            return False
    return True


def fresh_path(path: str) -> str:
    """``path`` if nothing exists there, else the first free ``stem-N.ext`` (N = 1, 2, ...).

    Used for *default* output names only; a path the user names explicitly is used as given.
    """
    if not os.path.exists(path):
        return path
    stem, ext = os.path.splitext(path)
    n = 1
    while os.path.exists(f"{stem}-{n}{ext}"):
        n += 1
    return f"{stem}-{n}{ext}"


@contextlib.contextmanager
def _scratch(path: str) -> Iterator[str]:
    """A name to write ``path``'s file under before it is moved into place: in a new hidden
    folder beside ``path``, with ``path``'s own file name (so the type an image is written in,
    chosen from the extension, and the name some types store in the file are the ones of
    ``path``). The folder and whatever is left in it are removed in any case."""
    folder = tempfile.mkdtemp(prefix=".lrkit-", dir=os.path.dirname(path) or ".")
    try:
        yield os.path.join(folder, os.path.basename(path))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_new(path: str, draw: Callable[[str], Any]) -> str:
    """Write a file under a *default* name that never replaces one: ``draw(tmp)`` writes it
    into a temporary file beside ``path`` (same name, in a hidden folder), then it is copied
    to the first of ``path``, ``stem-1.ext``, ``stem-2.ext``, ... that can be created afresh
    (exclusively: a file that appeared there since the name was chosen, another run's, is left
    alone). Returns the name written; the temporary file is removed in any case."""
    stem, ext = os.path.splitext(path)
    with _scratch(path) as tmp:
        draw(tmp)
        with open(tmp, "rb") as f:
            data = f.read()
        candidate, n = path, 0
        while True:
            try:
                out = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                break
            except FileExistsError:
                n += 1
                candidate = f"{stem}-{n}{ext}"
        try:
            with os.fdopen(out, "wb") as f:
                f.write(data)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(candidate)  # no partial file under the new name
            raise
        return candidate


def write_file_whole(path: str, draw: Callable[[str], Any]) -> None:
    """Write a file (an image: ``draw`` is given a file name and writes the whole file there,
    as matplotlib's ``savefig`` does) to ``path`` whole or not at all, as
    :func:`write_text_whole` writes text: ``draw`` writes a temporary file in the same folder
    (with ``path``'s file name, so its extension picks the type), which is then renamed over
    ``path`` (through a symbolic link, onto the file it points to). A write that fails (a full
    disk, an interruption, an error of the plotting library) leaves the file that was there as
    it was and no partial file; the error is raised (an ``OSError`` names ``path``). The file
    keeps the permissions of the one it replaces (a new file gets the default ones).

    A target that is not a regular file (a standard stream such as ``/dev/stdout``, a FIFO, a
    device) is given to ``draw`` as it is: written in place, never replaced, after
    ``sys.stdout`` and ``sys.stderr`` are flushed."""
    if _stream_fd(path) is not None or not _regular_or_new(path):
        _flush_std_streams()
        draw(path)
        return
    real = os.path.realpath(path)
    folder = os.path.dirname(real)
    scratch = ""
    try:
        with _scratch(os.path.join(folder, os.path.basename(path))) as scratch:
            draw(scratch)
            os.chmod(scratch, _mode_for(real))
            os.replace(scratch, real)
    except OSError as exc:  # named after the file asked for, not the temporary one
        name = exc.filename
        ours = isinstance(name, str) and (name == scratch or os.path.dirname(name) == folder)
        if exc.errno is None or not ours:
            raise
        raise type(exc)(exc.errno, exc.strerror, path) from None


def _regular_or_new(path: str) -> bool:
    """Whether ``path`` is a regular file (or a folder) or nothing yet: a file replaced as a
    whole, never one written in place."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # nothing there (yet): a new regular file
        return True
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


def _mode_for(path: str) -> int:
    """The permissions of a file that replaces ``path``: those of the file there, else the
    default ones of a new file (``0o666`` less the umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_text_whole(path: str, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: into a temporary file in the same folder,
    then renamed over ``path`` (through a symbolic link, onto the file it points to). A write
    that fails (a full disk, an interruption) leaves the file that was there as it was and no
    partial file; the ``OSError`` is raised. The file keeps the permissions of the one it
    replaces (a new file gets the default ones).

    A target that is not a regular file is written in place, never renamed over, as ``tee``
    does: a standard stream (``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``,
    ``/proc/self/fd/N``) gets the text on that file descriptor, after ``sys.stdout`` and
    ``sys.stderr`` are flushed (what was printed before stays before, and a file the stream
    is redirected to is neither truncated nor replaced); an existing FIFO or device
    (``/dev/null``, a terminal) is opened for writing and gets the text (a FIFO waits for its
    reader)."""
    try:
        fd = _stream_fd(path)
        if fd is not None:
            _flush_std_streams()
            _write_all(fd, text.encode("utf-8"))
        elif not _write_in_place(path, text):
            _write_whole(os.path.realpath(path), text)
    except OSError as exc:  # named after the file asked for, not the temporary one
        if exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, path) from None


#: Names of a file descriptor of this process: ``/dev/stdout``, ``/dev/fd/N``,
#: ``/proc/self/fd/N`` (also ``/proc/<pid>/fd/N``, which ``/proc/self`` resolves to).
_STD_NAMES = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
_FD_PATH = re.compile(
    r"/(?:dev/fd|proc/(?:self|thread-self|(?P<pid>\d+)(?:/task/\d+)?)/fd)/(?P<fd>\d+)"
)


def _fd_name(path: str) -> int | None:
    """The file descriptor of this process that the absolute ``path`` names, else ``None``."""
    if path in _STD_NAMES:
        return _STD_NAMES[path]
    m = _FD_PATH.fullmatch(path)
    if m is None or (m["pid"] is not None and int(m["pid"]) != os.getpid()):
        return None
    return int(m["fd"])


def names_stdout(path: Any) -> bool:
    """Whether ``path`` names this process's standard output (``/dev/stdout``, ``/dev/fd/1``,
    ``-`` is not a path here): what a command writes there must come last."""
    return isinstance(path, str) and _stream_fd(path) == 1


def _stream_fd(path: str) -> int | None:
    """The file descriptor of this process that ``path`` names (``/dev/stdout``,
    ``/dev/fd/N``, ``/proc/self/fd/N``, or a symbolic link to one of them), else ``None``."""
    if os.name == "nt":
        return None
    p = os.path.abspath(path)
    for _ in range(40):  # as many links as the kernel follows
        fd = _fd_name(p)
        if fd is not None:
            return fd
        head, tail = os.path.split(p)
        real = os.path.join(os.path.realpath(head), tail)  # /dev/fd -> /proc/<pid>/fd
        fd = _fd_name(real)
        if fd is not None:
            return fd
        try:
            target = os.readlink(real)
        except OSError:  # not a link (or nothing there): a file, not a stream
            return None
        p = os.path.normpath(os.path.join(os.path.dirname(real), target))
    return None


def _flush_std_streams() -> None:
    """Flush ``sys.stdout`` and ``sys.stderr`` before their file descriptors are written."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):  # closed, or its reader went away
                stream.flush()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_in_place(path: str, text: str) -> bool:
    """Write ``text`` into ``path`` if it exists and is neither a regular file nor a folder
    (a FIFO, a device): opened for writing, never replaced. Returns whether it did."""
    try:
        st = os.stat(path)
    except OSError:  # nothing there (yet): a new regular file
        return False
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        return False
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOCTTY", 0))
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # a regular file took its place meanwhile
            return False
        _write_all(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    return True


def _write_whole(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".lrkit-", suffix=".tmp", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _name_max(folder: str) -> int:
    """The longest file name (bytes) ``folder``'s file system takes (255 where unknown)."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), or no answer
        return 255


def names_folder(path: str) -> bool:
    """Whether ``path`` names a folder: an existing one, or one by its trailing separator
    (``"out/"``, existing or not)."""
    seps = tuple(sep for sep in (os.sep, os.altsep) if sep)
    return os.path.isdir(path) or path.endswith(seps)


#: Files of code an output never replaces (what a target's ``module:function`` is read from).
SOURCE_SUFFIXES = (".py", ".pyw", ".pyi", ".ipynb")


def is_database_file(path: str) -> bool:
    """Whether ``path`` is an existing SQLite database (through a link too), read off its
    first bytes: an SQLite file of any name."""
    if not os.path.isfile(path):  # (a FIFO or a device is never opened here)
        return False
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:  # missing, unreadable, or not a regular file: nothing of a database's
        return False


def is_code_file(path: str) -> bool:
    """Whether ``path`` is an existing file of code (:data:`SOURCE_SUFFIXES`, through a link
    too), which no output or database may replace."""
    return os.path.splitext(os.path.realpath(path))[
        1
    ].lower() in SOURCE_SUFFIXES and os.path.isfile(path)


def check_output(
    path: str, *, option: str, types: tuple[str, ...] | None = None, example: str | None = None
) -> str:
    """``path`` if a file can be written there, else a one-line ``ValueError`` naming
    ``option``: a folder, a missing or read-only parent folder, and (with ``types``) a name
    without an extension or with one not in ``types`` are refused. Called before any work
    starts, so that nothing computed is lost to a bad output path. ``example`` is the file
    name the message for a folder suggests (default ``name.<first type>``).

    A target written in place (see :func:`write_text_whole`) needs no writable folder: a
    standard stream (``/dev/stdout``, ``/dev/fd/N``) must be open for writing, an existing
    FIFO or device writable; a socket is refused (it cannot be opened as a file). An image
    (``types`` given) goes into a pipe only as a type written without seeking (``.svg``,
    ``.svgz``, ``.eps``, ``.ps``), and never through a stream that is a regular file (opened by
    name, the file would be emptied). An existing file of code (:data:`SOURCE_SUFFIXES`,
    through a link too) is refused: results written there would replace a user's module."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"{option} must be a file name, got {V.fmt(path)}")
    if path == "-":  # many tools' name for standard output: here it would be a file named -
        stdout = "" if types is not None else ", or /dev/stdout for standard output"
        raise ValueError(f"{option} '-' would be a file named '-': give a file name{stdout}")
    if names_folder(path):
        name = example or (f"name.{types[0]}" if types else "")
        hint = f", e.g. {os.path.join(path, name)!r}" if name else ""
        raise ValueError(f"{option} {path!r} is a folder: give a file name{hint}")
    if types is not None:
        ext = os.path.splitext(path)[1].lower().lstrip(".")
        allowed = ", ".join("." + t for t in types)
        if not ext:
            raise ValueError(f"{option} {path!r} has no extension: end it with one of {allowed}")
        if ext not in types:
            raise ValueError(f"{option} {path!r}: unknown file type .{ext} (allowed: {allowed})")
    if _check_in_place(path, option=option, image=types is not None):
        return path
    if is_code_file(path):  # a target's module given where its results go
        instead = f", e.g. {example!r}" if example else ""
        raise ValueError(
            f"{option} {path!r} is a file of code (a Python module or notebook): writing there "
            f"would replace it; give another file name{instead}"
        )
    if is_database_file(path):  # a study's SQLite file given where results go
        instead = f", e.g. {example!r}" if example else ""
        raise ValueError(
            f"{option} {path!r} is an SQLite database (an Optuna study's, say): writing there "
            f"would replace it; give another file name{instead}"
        )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"{option} {path!r}: the folder {parent!r} does not exist")
    longest = _name_max(parent)
    size = len(os.fsencode(os.path.basename(path)))
    if size > longest:
        raise ValueError(
            f"{option} {shorten(path, 80)!r}: the file name is too long ({size} bytes; the "
            f"folder takes at most {longest})"
        )
    if not os.access(parent, os.W_OK) or not _can_create_in(parent):
        raise ValueError(f"{option} {path!r}: the folder {parent!r} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"{option} {path!r}: the file is not writable")
    return path


def _can_create_in(folder: str) -> bool:
    """Whether a file can be created in ``folder``: a temporary one is made and removed (as
    root, ``os.access`` says yes to every folder, a read-only file system's and ``/proc``'s
    included; the outputs are written through a temporary file beside the target)."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".lrkit-check-")
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return True


def _check_in_place(path: str, *, option: str, image: bool) -> bool:
    """Whether ``path`` is written in place (a standard stream, a FIFO, a device) and can be;
    a ``ValueError`` naming ``option`` when it cannot be. ``False`` for any other path.
    ``image``: the path is an image, which the plotting library opens by name itself."""
    fd = _stream_fd(path)
    if fd is not None:
        try:
            import fcntl

            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            mode = os.fstat(fd).st_mode
        except ImportError:  # pragma: no cover - no fcntl: the write itself will tell
            return True
        except OSError:
            raise ValueError(f"{option} {path!r}: file descriptor {fd} is not open") from None
        if flags & (os.O_WRONLY | os.O_RDWR) == 0:  # read-only
            raise ValueError(f"{option} {path!r}: file descriptor {fd} is not open for writing")
        if image and stat.S_ISREG(mode):  # opened by name, the file behind would be emptied
            raise ValueError(
                f"{option} {path!r} is file descriptor {fd}, a file an image would overwrite "
                "from its start: give the file's own name"
            )
    else:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return False
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            return False
        if stat.S_ISSOCK(mode):
            raise ValueError(
                f"{option} {path!r} is a socket, which cannot be opened for writing: give a "
                "file name"
            )
        if not os.access(path, os.W_OK):
            raise ValueError(f"{option} {path!r}: the file is not writable")
        if stat.S_ISCHR(mode):  # a device may refuse to open (/dev/tty without a terminal)
            flags = os.O_WRONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_NONBLOCK", 0)
            try:
                os.close(os.open(path, flags))
            except OSError as exc:
                raise ValueError(
                    f"{option} {path!r}: the device cannot be opened for writing ({exc.strerror})"
                ) from None
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if image and (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)) and ext not in _STREAM_TYPES:
        allowed = ", ".join("." + t for t in _STREAM_TYPES)
        raise ValueError(
            f"{option} {path!r} is a pipe: a .{ext} image cannot be written into one (its "
            f"writer seeks in the file); give a regular file, or one of {allowed}"
        )
    return True
