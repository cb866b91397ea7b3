"""Type checkers see the real types of lrkit.keras's lazily imported names (not ``Any``), and
importing lrkit.keras still loads the callbacks and the finder only on first use."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("keras")

import lrkit.keras as lk  # noqa: E402

INIT = Path(lk.__file__)


def _imports(tree: ast.Module, type_checking: bool) -> dict[str, str]:
    """``name -> submodule`` of the ``from .sub import name as name`` at the top level, or
    in the ``if TYPE_CHECKING:`` block."""
    if type_checking:
        blocks = [
            node
            for node in tree.body
            if isinstance(node, ast.If)
            and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"
        ]
        assert len(blocks) == 1, "lrkit/keras/__init__.py: no single `if TYPE_CHECKING:` block"
        body = blocks[0].body
    else:
        body = tree.body
    found: dict[str, str] = {}
    for node in body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for alias in node.names:
                assert alias.asname == alias.name, f"{alias.name}: not re-exported (`as` itself)"
                found[alias.name] = str(node.module)
        else:
            assert not type_checking, ast.dump(node)
    return found


def test_type_checking_block_imports_every_lazy_name_from_its_submodule() -> None:
    tree = ast.parse(INIT.read_text(), str(INIT))
    eager, lazy = _imports(tree, False), _imports(tree, True)
    assert set(eager) == {"LRKitSchedule", "ScaledSchedule", "schedule"}  # keras.saving needs
    assert not set(eager) & set(lazy)
    assert {**eager, **lazy} == lk._EXPORTS


def test_import_loads_the_callbacks_and_the_finder_on_first_use() -> None:
    code = (
        "import sys, lrkit.keras as lk\n"
        "assert 'keras' in sys.modules\n"
        "lazy = ('lrkit.keras._callbacks', 'lrkit.keras._finder')\n"
        "assert not any(m in sys.modules for m in lazy), [m for m in lazy if m in sys.modules]\n"
        "lk.LRScheduler\n"
        "assert 'lrkit.keras._callbacks' in sys.modules\n"
    )
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_mypy_sees_the_real_types(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    names = ["LRScheduler", "ReduceOnPlateau", "DivergenceGuard", "LRLogger", "find_lr"]
    (tmp_path / "check.py").write_text(
        "import lrkit.keras as lk\n" + "".join(f"reveal_type(lk.{n})\n" for n in names)
    )
    # the frameworks' own sources are not read (fast): their types are Any here
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\nstrict = True\n"
        "[mypy-keras.*,jax.*,numpy.*,matplotlib.*,tqdm.*,scipy.*,torch.*,typing_extensions.*]\n"
        "follow_imports = skip\n"
    )
    out, err, status = api.run(
        [
            "--config-file",
            str(tmp_path / "mypy.ini"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            str(tmp_path / "check.py"),
        ]
    )
    assert status == 0, out + err
    revealed = [line.split('Revealed type is "', 1)[1] for line in out.splitlines()]
    assert len(revealed) == len(names), out
    assert "Any" not in revealed, out  # what a name of a bare __getattr__ would be
    for name, shown in zip(names[:4], revealed):
        assert shown.endswith(f'-> lrkit.keras._callbacks.{name}"'), shown
    assert revealed[0].startswith("def (schedule: "), revealed[0]
    assert revealed[4].endswith('-> lrkit.finder.result.FinderResult"'), revealed[4]
