"""File helpers for the CLI: default output names never overwrite a user's existing file."""

from __future__ import annotations

import os


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
