"""Optional dependencies and lazy exports: the one home for both.

``require(module, extra)`` imports an optional dependency or raises an :class:`ImportError`
whose one-line message names the extra to install, e.g.::

    torch = require("torch", "torch")
    # ImportError: lrkit.torch needs torch: pip install 'lrkit[torch]'

Every message about a missing optional package is built here, in one wording: who needs
what, then the exact install line (:func:`install_hint`; ``pip install 'lrkit[extra]'``, or
``pip install package`` for a package outside lrkit's extras). Where the part that needs it is
skipped rather than refused (a plot the command line draws by default), the same hint is the
one-line note of :func:`install_note`::

    note: no plot (-o/--output needs matplotlib: pip install 'lrkit[plot]')

In an adapter module the framework is then imported normally (so type checkers see it)::

    from .._imports import require

    require("torch", "torch")

    import torch

``optional(module)`` is the same for a dependency that is only used when it is installed: the
module, or ``None`` when it is not installed.

``lazy_exports(package, table)`` returns the ``__getattr__`` and ``__dir__`` of a package whose
public names live in private submodules and are imported on first use.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

__all__ = [
    "install_command",
    "install_hint",
    "install_note",
    "lazy_exports",
    "optional",
    "require",
]


def install_command(extra: str | None = None, *, package: str | None = None) -> str:
    """The install line: ``pip install 'lrkit[extra]'``, or ``pip install package`` for a
    package outside lrkit's extras (give one of them)."""
    if (extra is None) == (package is None):
        raise TypeError(f"give one of extra and package, got {extra=!r} and {package=!r}")
    return f"pip install 'lrkit[{extra}]'" if extra is not None else f"pip install {package}"


def install_hint(
    module: str,
    extra: str | None = None,
    *,
    feature: str | None = None,
    package: str | None = None,
) -> str:
    """The one-line message for a missing optional dependency ``module`` of ``feature``:
    ``{feature} needs {module}: {install line}`` (the module by its pip name, scikit-learn for
    ``sklearn``; :func:`install_command` of ``extra`` or
    ``package``). ``feature`` defaults to the calling lrkit module (see :func:`require`)."""
    who = feature if feature is not None else _caller_package()
    named = _DISTRIBUTIONS.get(module, module)
    return f"{who} needs {named}: {install_command(extra, package=package)}"


#: the names pip installs these modules by, where they differ from the import name
_DISTRIBUTIONS = {"sklearn": "scikit-learn"}


def install_note(
    module: str,
    extra: str | None = None,
    *,
    feature: str,
    skipped: str,
    package: str | None = None,
) -> str:
    """The one-line note for a missing optional dependency whose use is ``skipped`` rather
    than an error: ``note: {skipped} ({install_hint})``, e.g. ``note: no plot (-o/--output
    needs matplotlib: pip install 'lrkit[plot]')``."""
    hint = install_hint(module, extra, feature=feature, package=package)
    return f"note: {skipped} ({hint})"


def require(module: str, extra: str, *, feature: str | None = None) -> ModuleType:
    """Import ``module`` or raise ``ImportError`` naming ``pip install 'lrkit[extra]'``.

    ``feature`` names what needs it in the message (default: the calling lrkit module, without
    its private parts: ``lrkit.torch._finder`` says ``lrkit.torch``).
    Only a missing ``module`` itself (or its own missing dependency) is turned into the hint;
    other errors raised while importing it propagate unchanged. When a dependency of
    ``module`` is what is missing, the message ends with it, e.g. ``(No module named 'jax')``,
    and the error's ``name`` is that dependency's.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        who = feature if feature is not None else _caller_package()
        message = install_hint(module, extra, feature=who)
        missing = exc.name or module
        if not (_is_part_of(missing, module) or _is_part_of(module, missing)):
            message += f" ({exc})"
        raise ImportError(message, name=missing) from exc


def optional(module: str) -> ModuleType | None:
    """``module`` when it is installed, else ``None`` (for dependencies used only if present).

    Only ``module`` itself (or its parent package) not being installed gives ``None``; a module
    that is installed but fails to import raises as usual.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and _is_part_of(module, exc.name):
            return None
        raise


def lazy_exports(
    package: str, table: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose name ``n`` lives in
    ``package + "." + table[n]``; each value is imported on first use and cached.

    Typical use, at the end of the package's ``__init__.py``::

        _EXPORTS = {"find_lr": "_finder", "scheduler": "_scheduler"}
        __all__ = sorted(_EXPORTS)
        __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

    A name that is its own submodule (``table[n] == n``) is that submodule. A submodule that
    needs a missing optional dependency raises its :func:`require` hint.
    """
    names = sorted(table)

    def __getattr__(name: str) -> Any:
        try:
            sub = table[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module = importlib.import_module(f"{package}.{sub}")
        value = module if sub == name else getattr(module, name)
        importlib.import_module(package).__dict__[name] = value
        return value

    def __dir__() -> list[str]:
        return list(names)

    return __getattr__, __dir__


def _is_part_of(name: str, package: str) -> bool:
    """``name`` is ``package`` or one of its submodules."""
    return name == package or name.startswith(package + ".")


def _caller_package() -> str:
    """The ``lrkit`` module that called :func:`require` (for the message)."""
    frame = inspect.currentframe()
    try:
        f = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
        while f is not None:
            name = f.f_globals.get("__name__", "")
            if name.startswith("lrkit") and name != __name__:
                parts = str(name).split(".")
                public = [p for p in parts if not p.startswith("_")]
                return ".".join(public)
            f = f.f_back
    finally:
        del frame
    return "lrkit"
