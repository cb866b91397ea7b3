"""The ``--help`` of every sub-command: each option's default, written once.

:class:`HelpFormatter` appends ``(default: X)`` to an option's help unless the help already
says what the default is (``(default: ...)`` in its text) or the option is a flag
(``store_true``) or positional. An option whose default is ``None`` says in its own help what
it falls back to.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["HelpFormatter", "rename", "show_default"]


def show_default(value: Any) -> str:
    """How a default reads in ``--help``: numbers as typed (``1e-07``, ``10.0``)."""
    if isinstance(value, (list, tuple)):
        return " ".join(show_default(v) for v in value)
    return str(value)


class HelpFormatter(argparse.HelpFormatter):
    """Adds ``(default: X)`` to each option's help (see the module docstring)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "(default" in text
            or action.default is None
            or action.default is argparse.SUPPRESS
            or isinstance(action.default, bool)
            or not action.option_strings
            or action.nargs == 0
        ):
            return text
        return f"{text} (default: {show_default(action.default).replace('%', '%%')})"


def rename(exc: BaseException | str, *, names: dict[str, str]) -> ValueError:
    """``exc``'s message (or ``exc``, a message) with the library's parameter names replaced
    by the command-line options they come from (``{"num_iter": "--num-iter"}``): the checks
    stay the library's, the message names what the user typed."""
    text = str(exc)
    keys: Sequence[str] = sorted(names, key=len, reverse=True)
    pattern = "|".join(re.escape(k) for k in keys)
    # the value after ", got " is what the user typed: it is quoted as it was, only a
    # ``name=`` in front of it becomes the option (``got end_lr=0.1`` -> ``got --end-lr 0.1``)
    head, sep, tail = text.partition(", got ")
    out = re.sub(rf"(?<![\w.\-\[])(?:{pattern})(?![\w\[])", lambda m: names[m.group(0)], head)
    tail = re.sub(rf"^({pattern})=", lambda m: names[m.group(1)] + " ", tail)
    return ValueError(out + sep + tail)
