"""Output files of the command line: checked before any work starts, default names that
never overwrite a user's existing file."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from typing import Any

from ._format import shorten

__all__ = ["IMAGE_TYPES", "check_output", "fresh_path", "write_new", "write_text_whole"]

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


def write_new(path: str, draw: Callable[[str], Any]) -> str:
    """Write a file under a *default* name that never replaces one: ``draw(tmp)`` writes it
    into a temporary file beside ``path`` (same extension), then it is copied to the first of
    ``path``, ``stem-1.ext``, ``stem-2.ext``, ... that can be created afresh (exclusively: a
    file that appeared there since the name was chosen, another run's, is left alone).
    Returns the name written; the temporary file is removed in any case."""
    stem, ext = os.path.splitext(path)
    fd, tmp = tempfile.mkstemp(prefix=".lrkit-", suffix=ext, dir=os.path.dirname(path) or ".")
    os.close(fd)
    try:
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
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def write_text_whole(path: str, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: into a temporary file in the same folder,
    then renamed over ``path`` (through a symbolic link, onto the file it points to). A write
    that fails (a full disk, an interruption) leaves the file that was there as it was and no
    partial file; the ``OSError`` is raised. The file keeps the permissions of the one it
    replaces (a new file gets the default ones)."""
    try:
        _write_whole(os.path.realpath(path), text)
    except OSError as exc:  # named after the file asked for, not the temporary one
        if exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, path) from None


def _write_whole(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".lrkit-", suffix=".tmp", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
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


def check_output(
    path: str, *, option: str, types: tuple[str, ...] | None = None, example: str | None = None
) -> str:
    """``path`` if a file can be written there, else a one-line ``ValueError`` naming
    ``option``: a folder, a missing or read-only parent folder, and (with ``types``) a name
    without an extension or with one not in ``types`` are refused. Called before any work
    starts, so that nothing computed is lost to a bad output path. ``example`` is the file
    name the message for a folder suggests (default ``name.<first type>``)."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"{option} must be a file name, got {path!r}")
    seps = tuple(sep for sep in (os.sep, os.altsep) if sep)
    if os.path.isdir(path) or path.endswith(seps):  # "out/" names a folder, existing or not
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
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{option} {path!r}: the folder {parent!r} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"{option} {path!r}: the file is not writable")
    return path
