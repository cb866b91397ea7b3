"""``"pkg.module:function"`` targets: the one place that turns such a string into a callable.

:func:`import_target` imports ``pkg.module`` with ``importlib`` (only the module named; the
working directory is on the path, as with ``python -m``; nothing is evaluated) and returns its
callable ``function`` (a dotted attribute path such as ``module:Class.method`` works too).
Standard library only (and :mod:`lrkit._format`, which is too): the workflows (``lrkit.tune``,
``lrkit.compare``) and the command line share it.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["FORMAT", "TargetNotFoundError", "TargetSpecError", "import_target"]

FORMAT = "target must look like 'package.module:function'"


class TargetSpecError(ValueError):
    """A malformed target string, or a module without the named callable."""


class TargetNotFoundError(ImportError):
    """The target's module cannot be found (an error the target's own code raises while it is
    imported is passed through as it is)."""


def _show(spec: Any, limit: int = 80) -> str:
    """``spec`` as an error message quotes it: a database URL (a storage URL given where the
    target goes) with its password masked before it is cut short, so no part of it shows."""
    from ._format import mask_url

    text = repr(mask_url(spec) if isinstance(spec, str) else spec)
    return text if len(text) <= limit else text[: limit - 5] + "...'"


def import_target(spec: Any) -> Callable[..., Any]:
    """The callable named by ``"pkg.module:function"`` (``importlib``, never ``eval``).

    Raises ``ValueError`` (:class:`TargetSpecError`) for a malformed string or a missing
    attribute and ``ImportError`` (:class:`TargetNotFoundError`)
    (one line, naming the module) when the module cannot be imported."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise TargetSpecError(f"{FORMAT}, got {_show(spec)}")
    mod_name, attr = spec.split(":")
    names_attr = all(p.isidentifier() for p in attr.split("."))
    if names_attr and mod_name.endswith(".py"):
        # a file name (pkg/tasks.py, .\\tasks.py): the module it holds, when it names one
        # (importing "tasks.py" would run tasks.py first, as the import of a package "tasks")
        folders = [p for p in re.split(r"[\\/]", mod_name[: -len(".py")]) if p not in ("", ".")]
        if folders and all(p.isidentifier() for p in folders):
            raise TargetSpecError(
                f"target {_show(spec)}: name the module, not its file: "
                f"{'.'.join(folders)}:{attr} (run from the folder that holds it)"
            )
    if not names_attr or not all(p.isidentifier() for p in mod_name.split(".")):
        raise TargetSpecError(f"{FORMAT}, got {_show(spec)}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # as `python -m` does; the command line takes it out again
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        # the target's module or a package above it is missing (``pkg`` of ``pkg.mod``, not
        # ``my`` imported by a module ``mytasks`` that exists: that is the target's own error)
        if exc.name is not None and (mod_name + ".").startswith(exc.name + "."):
            raise TargetNotFoundError(
                f"target {spec!r}: no module named {exc.name!r} (run from the folder that "
                "holds it, or install it)",
                name=exc.name,
            ) from None
        raise
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            break
    if not callable(obj):
        raise TargetSpecError(f"target {spec!r}: module {mod_name!r} has no callable {attr!r}")
    return obj  # type: ignore[no-any-return]
