"""Output files of the command line: checked before any work starts, default names that
never overwrite a user's existing file."""

from __future__ import annotations

import os

__all__ = ["IMAGE_TYPES", "check_output", "fresh_path"]

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
    if os.path.isdir(path):
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
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{option} {path!r}: the folder {parent!r} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"{option} {path!r}: the file is not writable")
    return path
