"""The package's layering, read from the source of every module under ``src/lrkit``.

Layers, arrows only downward::

    core        lrkit, schedules, feedback, finder, textplot and the shared private modules
                (_validate, _files, _imports, _runtime, ...): numpy and the standard library
    adapters    torch, keras, optax (lightning, hf and demo on torch; _jaxtable for keras and
                optax)
    workflows   tune, compare
    commands    commands, cli, __main__

Checked for every import statement, also the ones inside functions:

* no module imports a higher layer, and adapters import no other adapter (except the pairs in
  ``ADAPTER_BASES``);
* no module imports another package's private module or private name (``lrkit.torch._finder``,
  ``from lrkit.feedback import _metric``); the top-level private modules (``lrkit._validate``
  and the like) are the whole library's toolbox;
* the core imports only numpy and the standard library at module level;
* there are no import cycles between modules.

``ALLOWED`` lists the known exceptions, each with what has to change; it only ever shrinks.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

CORE, ADAPTER, WORKFLOW, COMMAND = 0, 1, 2, 3
LAYER_NAMES = ("core", "adapter", "workflow", "command")

#: layer of each top-level package or module of lrkit ("" is lrkit/__init__.py)
LAYERS: dict[str, int] = {
    "": CORE,
    "schedules": CORE,
    "feedback": CORE,
    "finder": CORE,
    "textplot": CORE,
    "_validate": CORE,
    "_files": CORE,
    "_imports": CORE,
    "_runtime": CORE,
    "_renamed": CORE,
    "_version": CORE,
    "_format": CORE,
    "_target": CORE,
    "_display": CORE,
    "_figure": CORE,
    "torch": ADAPTER,
    "keras": ADAPTER,
    "optax": ADAPTER,
    "lightning": ADAPTER,
    "hf": ADAPTER,
    "demo": ADAPTER,  # the former name of lrkit.torch.demo
    "_jaxtable": ADAPTER,
    "tune": WORKFLOW,
    "compare": WORKFLOW,
    "commands": COMMAND,
    "cli": COMMAND,
    "__main__": COMMAND,
}

#: adapters built on another adapter
ADAPTER_BASES: dict[str, set[str]] = {
    "lightning": {"torch"},
    "hf": {"torch"},
    "demo": {"torch"},
    "keras": {"_jaxtable"},
    "optax": {"_jaxtable"},
}

#: Known exceptions: (importing module, imported module[:name]) -> what must change.
ALLOWED: dict[tuple[str, str], str] = {}

#: Known import cycles (sorted module names) -> what must change.
ALLOWED_CYCLES: dict[tuple[str, ...], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a module of lrkit, or a third-party top-level name
    name: str | None  # the name taken from ``target`` (``from target import name``), if any
    line: int
    module_level: bool
    type_checking: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


FILES = {_module_name(p): p for p in sorted((SRC / "lrkit").rglob("*.py"))}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(module: str, source: str | None = None) -> list[Import]:
    """The imports of ``module`` (its file, or ``source`` for a made-up module)."""
    path = FILES.get(module, SRC / "lrkit" / "_made_up.py")
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    is_pkg = path.name == "__init__.py"
    out: list[Import] = []

    def visit(node: ast.AST, module_level: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False, type_checking)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                visit(child, module_level, True)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    out.append(
                        Import(
                            module,
                            _resolve_module(alias.name),
                            None,
                            child.lineno,
                            module_level,
                            type_checking,
                        )
                    )
            elif isinstance(child, ast.ImportFrom):
                if child.module == "__future__":
                    continue
                base = child.module or ""
                if child.level:
                    anchor = module.split(".") if is_pkg else module.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    if sub in FILES:
                        out.append(
                            Import(module, sub, None, child.lineno, module_level, type_checking)
                        )
                    else:
                        out.append(
                            Import(
                                module,
                                _resolve_module(base),
                                alias.name,
                                child.lineno,
                                module_level,
                                type_checking,
                            )
                        )
            else:
                visit(child, module_level, type_checking)

    visit(tree, True, False)
    return out


def _resolve_module(name: str) -> str:
    """The lrkit module an absolute dotted name refers to (its longest existing prefix), or the
    top-level name of a third-party module."""
    if name == "lrkit" or name.startswith("lrkit."):
        parts = name.split(".")
        while parts and ".".join(parts) not in FILES:
            parts.pop()
        return ".".join(parts) or "lrkit"
    return name.split(".")[0]


ALL_IMPORTS = [imp for m in FILES for imp in _imports(m)]
LRKIT_IMPORTS = [i for i in ALL_IMPORTS if i.target == "lrkit" or i.target.startswith("lrkit.")]


def _private(name: str | None) -> bool:
    """A private name: ``_x``, but not a dunder such as ``__version__``."""
    return name is not None and name.startswith("_") and not name.endswith("__")


def _key(imp: Import) -> tuple[str, str]:
    """How ``ALLOWED`` names an import: ``(importer, module)``, or ``(importer, module:name)``
    for a private name taken from a public module."""
    private_module = any(_private(p) for p in imp.target.split(".")[2:])
    private_name = _private(imp.name)
    suffix = f":{imp.name}" if private_name and not private_module else ""
    return imp.importer, imp.target + suffix


def _where(imp: Import) -> str:
    what = imp.target + (f" ({imp.name})" if imp.name else "")
    return f"{imp.importer} line {imp.line} imports {what}"


def test_every_package_has_a_layer() -> None:
    unknown = sorted({_top(m) for m in FILES} - set(LAYERS))
    assert not unknown, f"give these lrkit packages a layer in LAYERS: {unknown}"


def _lrkit(imports: list[Import]) -> list[Import]:
    return [i for i in imports if i.target == "lrkit" or i.target.startswith("lrkit.")]


def _layer_violations(imports: list[Import] = LRKIT_IMPORTS) -> list[Import]:
    bad = []
    for imp in _lrkit(imports):
        src, dst = _top(imp.importer), _top(imp.target)
        if src == dst:
            continue
        ls, ld = LAYERS.get(src), LAYERS.get(dst)
        if ls is None or ld is None:
            continue  # reported by test_every_package_has_a_layer
        if ld > ls or (ls == ld == ADAPTER and dst not in ADAPTER_BASES.get(src, set())):
            bad.append(imp)
    return bad


def _private_violations(imports: list[Import] = LRKIT_IMPORTS) -> list[Import]:
    bad = []
    for imp in _lrkit(imports):
        src, dst = _top(imp.importer), _top(imp.target)
        if src == dst:
            continue
        inner = imp.target.split(".")[2:]  # below the package: lrkit.<pkg>.<inner...>
        if any(_private(p) for p in inner) or _private(imp.name):
            bad.append(imp)
    return bad


def test_no_upward_or_sideways_imports() -> None:
    bad = [i for i in _layer_violations() if _key(i) not in ALLOWED]
    assert not bad, "imports that point up (or across adapters):\n" + "\n".join(
        f"{_where(i)} ({LAYER_NAMES[LAYERS[_top(i.importer)]]} -> "
        f"{LAYER_NAMES[LAYERS[_top(i.target)]]})"
        for i in bad
    )


def test_no_private_names_of_other_packages() -> None:
    bad = [i for i in _private_violations() if _key(i) not in ALLOWED]
    assert not bad, "imports of another package's private module or name:\n" + "\n".join(
        _where(i) for i in bad
    )


#: the scripts outside the library that use it as its users do
SCRIPTS = sorted(p for d in ("benchmarks", "examples") for p in (SRC.parent / d).rglob("*.py"))


def _private_lrkit_imports(path: Path) -> list[str]:
    """The imports in ``path`` of a private lrkit module or name (``lrkit.finder._x``,
    ``from lrkit.finder.rules import _x``), each as ``line module:name``."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            targets = [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [(a.name, None) for a in node.names]
        else:
            continue
        for module, name in targets:
            if module != "lrkit" and not module.startswith("lrkit."):
                continue
            if any(_private(p) for p in module.split(".")) or _private(name):
                bad.append(f"{node.lineno} {module}:{name}")
    return bad


def test_scripts_use_only_public_names() -> None:
    """Benchmarks and examples use lrkit as its users can: no private module or name (one of
    those would not be there in the next release)."""
    assert SCRIPTS
    bad = [f"{p.relative_to(SRC.parent)}:{b}" for p in SCRIPTS for b in _private_lrkit_imports(p)]
    assert not bad, "private lrkit names imported by a script:\n" + "\n".join(bad)


def test_a_private_name_in_a_script_is_found(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text(
        "import lrkit.finder\nfrom lrkit.finder.rules import _valley_on, edge\n"
        "import lrkit.torch._finder as f\nfrom lrkit import __version__\n"
    )
    assert _private_lrkit_imports(script) == [
        "2 lrkit.finder.rules:_valley_on",
        "3 lrkit.torch._finder:None",
    ]


def test_allow_list_only_holds_real_exceptions() -> None:
    found = {_key(i) for i in _layer_violations() + _private_violations()}
    stale = sorted(set(ALLOWED) - found)
    assert not stale, f"fixed, remove from ALLOWED in {__file__}: {stale}"


def test_core_imports_only_numpy_at_module_level() -> None:
    stdlib = set(sys.stdlib_module_names)
    bad = [
        imp
        for imp in ALL_IMPORTS
        if LAYERS.get(_top(imp.importer)) == CORE
        and imp.module_level
        and not imp.type_checking
        and not (imp.target == "lrkit" or imp.target.startswith("lrkit."))
        and imp.target not in stdlib | {"numpy"}
    ]
    assert not bad, "the core imports only numpy at module level:\n" + "\n".join(
        _where(i) for i in bad
    )


def _cycles() -> list[tuple[str, ...]]:
    graph: dict[str, set[str]] = {m: set() for m in FILES}
    for imp in LRKIT_IMPORTS:
        if not imp.type_checking and imp.target != imp.importer and imp.target in graph:
            graph[imp.importer].add(imp.target)
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[tuple[str, ...]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(tuple(sorted(comp)))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(out)


def test_no_import_cycles() -> None:
    cycles = _cycles()
    bad = [c for c in cycles if c not in ALLOWED_CYCLES]
    assert not bad, "modules that import each other (also inside functions): " + "; ".join(
        " <-> ".join(c) for c in bad
    )
    stale = sorted(set(ALLOWED_CYCLES) - set(cycles))
    assert not stale, f"fixed, remove from ALLOWED_CYCLES in {__file__}: {stale}"


# ----------------------------------------------------------------------------- the checker


@pytest.mark.parametrize(
    ("source", "target", "name"),
    [
        ("from ..feedback import Chain", "lrkit.feedback", "Chain"),
        ("from .. import _validate as V", "lrkit._validate", None),
        ("from . import _finder", "lrkit.torch._finder", None),
        ("import lrkit.schedules._base", "lrkit.schedules._base", None),
        ("import numpy.typing as npt", "numpy", None),
        ("def f():\n    from ..tune import tune", "lrkit.tune", "tune"),
    ],
)
def test_imports_are_resolved(source: str, target: str, name: str | None) -> None:
    (imp,) = _imports("lrkit.torch._made_up", source)
    assert (imp.target, imp.name) == (target, name)
    assert imp.module_level == (not source.startswith("def"))


@pytest.mark.parametrize(
    ("module", "source", "upward", "private"),
    [
        ("lrkit.finder", "import lrkit.torch", True, False),
        ("lrkit.tune._made_up", "def f():\n    from ..commands import find", True, False),
        ("lrkit.keras._made_up", "from ..torch import scheduler", True, False),
        ("lrkit.lightning", "from .torch import scheduler", False, False),
        ("lrkit.commands.x", "from ..torch._finder import find_lr", False, True),
        ("lrkit.torch._made_up", "from ..feedback import _metric", False, True),
        ("lrkit.torch._made_up", "from . import _finder", False, False),
        ("lrkit.commands.x", "from .._validate import check", False, False),
        ("lrkit.cli", "from . import __version__", False, False),
    ],
)
def test_the_rules_catch_what_they_should(
    module: str, source: str, upward: bool, private: bool
) -> None:
    imports = _imports(module, source)
    assert bool(_layer_violations(imports)) == upward
    assert bool(_private_violations(imports)) == private
