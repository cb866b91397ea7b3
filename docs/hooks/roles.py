"""MkDocs hook: docstrings cite names with Sphinx roles (``:class:`Sweep```); in the generated
API reference show them as plain code (``Sweep``)."""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):(?=<code>)")


def on_page_content(html: str, **kwargs: Any) -> str:
    return _ROLE.sub("", html)
