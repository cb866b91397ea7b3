"""Text for people: durations, short numbers, shortened echoes, URLs without their secrets.

Standard library only; shared by the workflows and the command line (which print), never
used for what is written to JSON (that keeps full precision).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

__all__ = [
    "duration",
    "mask_arguments",
    "mask_keywords",
    "mask_secrets",
    "mask_url",
    "round_floats",
    "shorten",
    "title_lines",
    "unencoded_at",
    "url_parts",
    "wrap_spec",
]

MASK = "***"


def failure(exc: BaseException) -> str:
    """``"Type: first line"`` of an exception (its type alone when it has no message): how a
    one-line error quotes the error it stands for."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def loss_cell(x: float) -> str:
    """A comparison's loss as its tables show it: 4 significant digits, ``"diverged"`` for
    inf, ``"-inf"`` for -inf (a loss unbounded below, e.g. a negative log-likelihood whose
    variance collapsed: measured, not missing), ``"-"`` for nan (not measured)."""
    if math.isfinite(x):
        return f"{x:.4g}"
    return "-" if math.isnan(x) else "diverged" if x > 0 else "-inf"


def accuracy_cell(x: float) -> str:
    """A comparison's accuracy as its tables show it: a percentage, ``"-"`` when not
    measured (nan)."""
    return f"{x:.2%}" if math.isfinite(x) else "-"


def counted(n: int, noun: str) -> str:
    """``"1 item"``, ``"3 items"``: ``n`` and ``noun``, made plural with an ``s`` unless ``n``
    is 1."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def group_ratios_text(ratios: Sequence[float]) -> str | None:
    """``"x0.01, x0.1"``: param groups' LRs as multiples of the LR shown (the optimizer's
    ``lr``, which a schedule or a range test's suggestion sets); ``None`` when the groups all
    train at it."""
    if len(set(ratios)) <= 1:
        return None
    return ", ".join(f"x{r:.3g}" for r in ratios)


def duration(seconds: float) -> str:
    """``0.042`` -> ``"42 ms"``, ``3.456`` -> ``"3.46 s"``, ``754`` -> ``"12 min 34 s"``."""
    s = float(seconds)
    if s != s or s < 0:
        return "-"
    if s < 1.0 and float(f"{s * 1000:.3g}") < 1000:  # 0.9996 s is "1 s", not "1e+03 ms"
        return f"{s * 1000:.3g} ms"
    if s < 60.0 and float(f"{s:.3g}") < 60:  # 59.996 s is "1 min 0 s"
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
    ``"cosine(lr=0.001235, total_steps=100)"``); integers stay as they are, and so does a
    number whose rounded form would not be shorter (``"1.2345E-7"``, not ``"1.235e-07"``)."""

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


#: A database URL as SQLAlchemy reads it (``sqlalchemy.engine.url.make_url``): a user name
#: without ``:`` or ``/``, then ``:`` and a password up to the first ``@`` (a password may hold
#: ``/``, ``?``, ``#`` and ``:``), then the host, ``:port``, ``/database`` and ``?query``.
#: Only the scheme is looser (anything before ``://``), so that any URL can be masked.
_URL = re.compile(
    r"""
    (?P<name>[^:/?#]*)://
    (?:
        (?P<username>[^:/]*)
        (?::(?P<password>[^@]*))?
    @)?
    (?:
        (?:
            \[(?P<ipv6host>[^/\?]+)\] |
            (?P<ipv4host>[^/:\?]+)
        )?
        (?::(?P<port>[^/\?]*))?
    )?
    (?:/(?P<database>[^\?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.X | re.S,
)


def url_parts(url: str) -> dict[str, str | None] | None:
    """The parts of a database URL as SQLAlchemy splits it (``name``, ``username``,
    ``password``, ``ipv4host``, ``ipv6host``, ``port``, ``database``, ``query``; ``None`` where
    absent, nothing unquoted), or ``None`` for a string without ``://``."""
    if not isinstance(url, str) or "://" not in url:
        return None
    m = _URL.match(url)
    return None if m is None else m.groupdict()


def _secret_span(url: str) -> tuple[int, int] | None:
    """Where the password of ``url`` is: from after the ``:`` that follows the user name (as
    SQLAlchemy reads it) to the last ``@`` of the URL (an unencoded ``@`` in a password is read
    differently by different drivers: everything before the last ``@`` is treated as secret)."""
    if not isinstance(url, str) or "://" not in url:
        return None
    m = _URL.match(url)
    if m is None or m.group("password") is None:
        return None
    return m.start("password"), max(m.end("password"), url.rfind("@"))


#: a query argument that holds a secret: ``password=``, libpq's ``sslpassword=``, ``passwd=``,
#: ``pwd=``, a ``secret``, ``token``, ``credentials``, a ``key`` (any name containing one of
#: those)
#: the words that make a name a secret's (a query argument, a ``keyword=value``)
SECRET_WORDS = "pass|pwd|secret|token|credential|key"
#: the same words spelt out, which a misspelt option name is compared with (``--pasword``)
SECRET_NAMES = ("password", "passwd", "pwd", "secret", "token", "credential", "key")


def secret_like(name: str) -> bool:
    """Whether ``name`` (an option's, ``--db-pasword``) names a secret: a word of it (split at
    ``-`` and ``_``) spelt as one of :data:`SECRET_NAMES`, or nearly."""
    import difflib

    words = [w for w in re.split(r"[-_]+", name.lower()) if w]
    return any(difflib.get_close_matches(w, SECRET_NAMES, n=1, cutoff=0.75) for w in words)


_SECRET_QUERY = re.compile(rf"(?i)([?&][^=&]*(?:{SECRET_WORDS})[^=&]*=)[^&]*")
#: any query argument (name=, value): one whose value holds a connection string with a
#: password (SQLAlchemy's ``odbc_connect=...PWD%3D...``) is masked whole
_QUERY_ARG = re.compile(r"([?&][^=&]*=)([^&]*)")
_SECRET_IN_VALUE = re.compile(r"(?i)(?:^|[;\s])\s*(?:pwd|password|passwd)\s*=")
_VALUE_PASSWORD = re.compile(r"(?i)(?:^|[;\s])\s*(?:pwd|password|passwd)\s*=\s*(\{[^}]*\}|[^;]*)")


def _mask_query(tail: str) -> str:
    from urllib.parse import unquote_plus

    tail = _SECRET_QUERY.sub(rf"\1{MASK}", tail)
    return _QUERY_ARG.sub(
        lambda m: (
            m.group(1) + MASK if _SECRET_IN_VALUE.search(unquote_plus(m.group(2))) else m.group(0)
        ),
        tail,
    )


def mask_url(url: str) -> str:
    """A database URL with its password replaced by ``***``
    (``postgresql://u:pw@h/db`` -> ``postgresql://u:***@h/db``), the password found as
    SQLAlchemy finds it (it may hold ``/``, ``?``, ``#`` and ``:``) and running to the last
    ``@`` of the URL; also masks the query arguments that hold secrets (``password=``,
    ``sslpassword=``, ``passwd=``, a ``token``, ``credentials``, ...) and those whose value is
    a connection string with a password (``odbc_connect=...PWD=...``). Anything that is not a
    URL is returned unchanged."""
    if not isinstance(url, str) or "://" not in url:
        return url
    span = _secret_span(url)
    if span is not None:
        head, tail = url[: span[0]] + MASK, url[span[1] :]
    else:
        head, tail = "", url
    return head + _mask_query(tail)


def _passwords(url: str) -> list[str]:
    """The password of ``url`` as SQLAlchemy reads it and as :func:`mask_url` masks it, as
    written and unquoted (``%2F`` -> ``/``), longest first."""
    from urllib.parse import unquote, unquote_plus

    found: set[str] = set()
    span = _secret_span(url)
    if span is not None:
        parts = url_parts(url) or {}
        found |= {url[span[0] : span[1]], parts.get("password") or ""}
    # the secrets of the query: a secret argument's value, a connection string's password
    query = url[url.find("?", span[1] if span is not None else 0) :] if "?" in url else ""
    for m in _SECRET_QUERY.finditer(query):
        found.add(m.group(0)[len(m.group(1)) :])
    for m in _QUERY_ARG.finditer(query):
        for pw in _VALUE_PASSWORD.finditer(unquote_plus(m.group(2))):
            found |= {pw.group(1), pw.group(1).strip("{}")}
    found |= {unquote(p) for p in found}
    return sorted((p for p in found if p), key=len, reverse=True)


#: A password shorter than this is masked outside the URL only after a password keyword: as
#: a bare token it would also stand for parts of hosts, ports and words ("1" in "127.0.0.1"),
#: and the masks left there would show it.
SHORT_SECRET = 4
_KEYWORD = r"(?i:\b(?:password|passwd|pwd)\b[\s:=]*['\"]?)"


def _mask_token(text: str, secret: str, *, keyword_only: bool) -> str:
    """``text`` with each occurrence of ``secret`` that is not part of a longer word (no
    letter or digit right before or after it) replaced by ``***``; with ``keyword_only``,
    only those right after a password keyword (``password``, ``passwd``, ``pwd``)."""
    body = rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])"
    if keyword_only:
        return re.sub(rf"({_KEYWORD}){body}", rf"\1{MASK}", text)
    return re.sub(body, MASK, text)


def mask_secrets(text: str, url: str | None) -> str:
    """``text`` with ``url`` masked (:func:`mask_url`) and its password masked wherever else
    it stands as a token of its own (a driver's message may repeat it), never inside another
    word, host or number: ``postgres`` in ``postgresql://`` or ``1`` in ``127.0.0.1`` stay.
    A password shorter than :data:`SHORT_SECRET` is masked outside the URL only after a
    password keyword."""
    if not url or not isinstance(url, str):
        return text
    masked_url = mask_url(url)
    # the masked URL's own text (host, port, database) is left as it is
    parts = text.replace(url, masked_url).split(masked_url)
    split = unencoded_at(url)
    out = []
    for part in parts:
        for pw in _passwords(url):
            part = _mask_token(part, pw, keyword_only=len(pw) < SHORT_SECRET)
            if not split:
                continue
            # a driver that splits the URL elsewhere (at the first "@" of an unencoded
            # password) prints pieces of it: mask every piece of 3 characters or more
            for piece in sorted(re.split(r"[@:/?#]", pw), key=len, reverse=True):
                if len(piece) >= 3:
                    part = _mask_token(part, piece, keyword_only=False)
        out.append(part)
    return masked_url.join(out)


#: a secret ``keyword=value`` of a connection string that is not a URL (libpq's
#: ``host=h user=u password=pw``, ``sslpassword='a b'``): a keyword (any case) containing a
#: word the URL masking treats as secret in a query argument (``pass``, ``pwd``, ``secret``,
#: ``token``, ``credential``, ``key``); its value quoted (``'...'``, ``"..."`` or ``{...}``,
#: ``\\`` escapes, to the end when the quote is not closed) or up to the next blank
_SECRET_KEYWORD = re.compile(
    r"""(?ix)
    (\b\w*(?:SECRET_WORDS)\w*\s*=\s*)
    (?:
        '(?:\\.|[^'\\])*(?:'|\\?$) |
        "(?:\\.|[^"\\])*(?:"|\\?$) |
        \{[^}]*(?:\}|$) |
        (?:\\.|[^\s\\])*\\?
    )
    """.replace("SECRET_WORDS", SECRET_WORDS),
    re.S,
)


def mask_keywords(text: str) -> str:
    """``text`` with the value of each secret ``keyword=value`` (see :data:`_SECRET_KEYWORD`)
    replaced by ``***``: ``host=h password='a b'`` -> ``host=h password=***``."""
    return _SECRET_KEYWORD.sub(lambda m: m.group(1) + MASK, text)


def mask_arguments(text: str, arguments: Iterable[object]) -> str:
    """``text``, a message that may echo what was typed (an error of the command line), with
    the secrets of each of ``arguments`` masked wherever it shows them: a database URL in an
    argument (``postgresql://u:pw@h/db``, ``--storage=postgresql://...``) as
    :func:`mask_secrets` masks it, and, when an argument holds a secret
    ``keyword=value`` (libpq's ``host=h password=pw``), each such value in ``text`` as
    :func:`mask_keywords` masks one (also in an echo cut short). Arguments that are not text
    are skipped."""
    for arg in arguments:
        if not isinstance(arg, str) or not arg:
            continue
        if "://" in arg:  # its query's secrets too
            text = mask_secrets(text, arg)
            continue
        masked = mask_keywords(arg)
        if masked != arg:
            # the echo of the whole argument, then any other (one cut short: 'password=ab...')
            text = _SECRET_KEYWORD.sub(_mask_value, text.replace(arg, masked))
    return text


def _mask_value(m: re.Match[str]) -> str:
    """A match of :data:`_SECRET_KEYWORD` with its value masked (one masked already stays)."""
    value = m.group(0)[len(m.group(1)) :]
    return m.group(0) if value.startswith(MASK) else m.group(1) + MASK


def unencoded_at(url: str) -> bool:
    """Whether the credentials of a database URL hold an unencoded ``@`` (drivers disagree on
    where such a password ends): more than one ``@`` before the first ``/`` or ``?`` after
    the end of the user name and password as SQLAlchemy reads them."""
    if not isinstance(url, str) or "://" not in url:
        return False
    m = _URL.match(url)
    if m is None:  # pragma: no cover - every URL with "://" matches
        return False
    start = url.index("://") + 3
    after = m.end("password") if m.group("password") is not None else start
    ends = [i for i in (url.find("/", after), url.find("?", after)) if i != -1]
    return url.count("@", start, min(ends, default=len(url))) > 1


def title_lines(spec: str, width: int) -> list[str]:
    """A spec as a plot's title: wrapped to ``width``, at most 6 lines; a longer one ends with
    a mark saying it was cut and how long it is (in an image and on the terminal alike)."""
    lines = wrap_spec(spec, width)
    if len(lines) > 6:
        mark = f" ... ({len(spec)} characters)"
        lines = [*lines[:5], lines[5][: max(width - len(mark), 10)] + mark]
    return lines


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
