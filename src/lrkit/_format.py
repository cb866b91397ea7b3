"""Text for people: durations, short numbers, shortened echoes, URLs without their secrets.

Standard library only; shared by the workflows and the command line (which print), never
used for what is written to JSON (that keeps full precision).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["duration", "mask_secrets", "mask_url", "round_floats", "shorten", "wrap_spec"]

MASK = "***"


def duration(seconds: float) -> str:
    """``0.042`` -> ``"42 ms"``, ``3.456`` -> ``"3.46 s"``, ``754`` -> ``"12 min 34 s"``."""
    s = float(seconds)
    if s != s or s < 0:
        return "-"
    if s < 1.0:
        return f"{s * 1000:.3g} ms"
    if s < 60.0:
        return f"{s:.3g} s"
    m, rest = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m} min {rest} s"
    h, m = divmod(m, 60)
    return f"{h} h {m} min"


_FLOAT = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")


def round_floats(text: str, digits: int = 4) -> str:
    """``text`` with every number that has more than ``digits`` significant digits written
    with ``digits`` (``"cosine(lr=0.0012345678, total_steps=100)"`` ->
    ``"cosine(lr=0.001235, total_steps=100)"``); integers stay as they are."""

    def short(m: re.Match[str]) -> str:
        tok = m.group(0)
        if not any(c in tok for c in ".eE"):
            return tok
        try:
            value = float(tok)
        except ValueError:  # pragma: no cover - the pattern only matches numbers
            return tok
        out = f"{value:.{digits}g}"
        if "e+" in out and value.is_integer() and abs(value) < 1e15:
            out = str(int(value))  # 10000.0 -> 10000, not 1e+04
        return out if len(out) < len(tok) else tok

    return _FLOAT.sub(short, text)


def shorten(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters (``... (N characters)`` at the end)."""
    one = " ".join(str(text).split())
    if len(one) <= limit:
        return one
    return one[: max(0, limit - 30)] + f" ... ({len(one)} characters)"


def mask_url(url: str) -> str:
    """A database URL with its password replaced by ``***``
    (``postgresql://u:pw@h/db`` -> ``postgresql://u:***@h/db``); also masks ``password=``
    query arguments. Anything that is not a URL is returned unchanged."""
    if not isinstance(url, str) or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    end = len(rest)
    for sep in "/?#":
        i = rest.find(sep)
        if i != -1:
            end = min(end, i)
    netloc, tail = rest[:end], rest[end:]
    if "@" in netloc:
        cred, host = netloc.rsplit("@", 1)
        if ":" in cred:
            netloc = cred.split(":", 1)[0] + ":" + MASK + "@" + host
    tail = re.sub(r"(?i)([?&](?:password|passwd|pwd)=)[^&#]*", rf"\1{MASK}", tail)
    return f"{scheme}://{netloc}{tail}"


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def mask_secrets(text: str, url: str | None) -> str:
    """``text`` with ``url`` and its password (wherever it appears) masked."""
    if not url or not isinstance(url, str):
        return text
    out = text.replace(url, mask_url(url))
    pw = _password(url)
    if pw:
        out = out.replace(pw, MASK)
        # a driver that splits the URL elsewhere (at the first "@" of an unencoded password)
        # prints pieces of it: mask every piece of 3 characters or more
        for piece in sorted(re.split(r"[@:/]", pw), key=len, reverse=True):
            if len(piece) >= 3:
                out = out.replace(piece, MASK)
    return out


def unencoded_at(url: str) -> bool:
    """Whether the credentials of a database URL hold an unencoded ``@`` (drivers disagree on
    where such a password ends)."""
    if not isinstance(url, str) or "://" not in url:
        return False
    rest = url.split("://", 1)[1]
    end = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
    return rest[:end].count("@") > 1


def wrap_spec(spec: str, width: int) -> list[str]:
    """``spec`` cut after ``", "`` into lines of at most ``width`` characters where it can be
    (a longer single argument stays whole on its line)."""
    out: list[str] = []
    line = ""
    for piece in spec.replace(", ", ",\0").split("\0"):
        if line and len(line) + len(piece) + 1 > width:
            out.append(line.rstrip())
            line = ""
        line += piece if not line else " " + piece
    out.append(line)
    return out
