"""Arrows point down: the library never imports the command line, the commands use only
public names of other packages, and ``lrkit.tune`` has no import circle."""

from __future__ import annotations

import ast
from pathlib import Path

import lrkit

SRC = Path(lrkit.__file__).parent


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(absolute module, imported names)`` for every import in ``path`` (also inside
    functions), relative imports resolved."""
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    package = parts if path.name == "__init__.py" else parts[:-1]
    if path.name == "__init__.py":
        package = parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def _library_files() -> list[Path]:
    return [
        p
        for p in SRC.rglob("*.py")
        if "commands" not in p.parts and p.name not in ("cli.py", "__main__.py")
    ]


def test_the_library_never_imports_the_command_line() -> None:
    bad = [
        (str(p.relative_to(SRC)), mod)
        for p in _library_files()
        for mod, _ in _imports(p)
        if mod.startswith(("lrkit.commands", "lrkit.cli"))
    ]
    assert bad == []


def test_commands_use_only_public_names_of_other_packages() -> None:
    """``lrkit.commands`` may import public names of any package and the shared top-level
    helper modules (``lrkit._files``, ``lrkit._format``, ...), never a package's private
    module or a private name."""
    bad = []
    for p in (SRC / "commands").glob("*.py"):
        for mod, names in _imports(p):
            if not mod.startswith("lrkit.") or mod.startswith("lrkit.commands"):
                continue
            inner = mod.split(".")[2:]  # below a top-level module or package
            private_module = any(part.startswith("_") for part in inner)
            private_names = [n for n in names if n.startswith("_")]
            if private_module or private_names:
                bad.append((p.name, mod, private_names))
    assert bad == []


def test_tune_has_no_import_circle() -> None:
    graph: dict[str, set[str]] = {}
    for p in (SRC / "tune").glob("*.py"):
        name = f"lrkit.tune.{p.stem}"
        graph[name] = {
            mod for mod, _ in _imports(p) if mod.startswith("lrkit.tune.") and mod != name
        }

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, " -> ".join((*path, node))
        for nxt in graph.get(node, ()):
            visit(nxt, (*path, node))

    for start in graph:
        visit(start, ())


def test_workflows_train_through_the_one_loop() -> None:
    """No module but ``lrkit.torch._train`` runs ``optimizer.step()`` in a training loop, and
    nothing sets ``group["lr"]`` by hand."""
    for p in [
        SRC / "compare.py",
        SRC / "torch" / "demo.py",
        *(SRC / "tune").glob("*.py"),
        *(SRC / "commands").glob("*.py"),
    ]:
        text = p.read_text()
        assert '["lr"] =' not in text and "loss.backward()" not in text, p.name
