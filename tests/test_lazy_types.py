"""Type checkers see the real types of the adapters' lazily imported names (not ``Any``, what
a name of a bare module ``__getattr__`` would be): each package's ``if TYPE_CHECKING:`` block
imports every lazy name from its submodule, and mypy reveals the real signatures."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

#: package -> (names imported at run time as well, the modules mypy does not read: fast)
PACKAGES = {
    "lrkit.torch": (set(), "torch.*,numpy.*,sklearn.*,matplotlib.*,tqdm.*,scipy.*"),
    "lrkit.keras": (
        {"LRKitSchedule", "ScaledSchedule", "schedule"},  # keras.saving needs them
        "keras.*,jax.*,numpy.*,matplotlib.*,tqdm.*,scipy.*,torch.*,typing_extensions.*",
    ),
}


def _package(name: str) -> Any:
    pytest.importorskip(name.split(".")[1])  # torch / keras
    return importlib.import_module(name)


def _relative_imports(body: list[ast.stmt], *, only: bool) -> dict[str, str]:
    """``name -> submodule`` of the ``from .sub import name as name`` in ``body`` (``only``:
    nothing else is allowed there)."""
    found: dict[str, str] = {}
    for node in body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for alias in node.names:
                assert alias.asname == alias.name, f"{alias.name}: not re-exported (`as` itself)"
                found[alias.name] = str(node.module)
        else:
            assert not only, ast.dump(node)
    return found


@pytest.mark.parametrize("name", PACKAGES)
def test_type_checking_block_imports_every_lazy_name_from_its_submodule(name: str) -> None:
    pkg = _package(name)
    tree = ast.parse(Path(pkg.__file__).read_text(), pkg.__file__)
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1, f"{name}: no single `if TYPE_CHECKING:` block"
    eager = _relative_imports(tree.body, only=False)
    lazy = _relative_imports(blocks[0].body, only=True)
    assert set(eager) == PACKAGES[name][0]
    assert not set(eager) & set(lazy)
    assert {**eager, **lazy} == pkg._EXPORTS


def _revealed(tmp_path: Path, name: str, names: list[str]) -> list[str]:
    """What mypy (strict) reveals for ``name``'s ``names``."""
    api = pytest.importorskip("mypy.api")
    _package(name)
    (tmp_path / "check.py").write_text(
        f"import {name} as pkg\n" + "".join(f"reveal_type(pkg.{n})\n" for n in names)
    )
    skipped = PACKAGES[name][1]
    (tmp_path / "mypy.ini").write_text(
        f"[mypy]\nstrict = True\n[mypy-{skipped}]\nfollow_imports = skip\n"
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
    assert "Any" not in revealed, out
    return revealed


def test_mypy_sees_the_real_types_of_lrkit_torch(tmp_path: Path) -> None:
    names = ["find_lr", "scheduler", "History", "DivergenceGuard", "effective_lr", "get_rank"]
    revealed = _revealed(tmp_path, "lrkit.torch", names)
    assert revealed[0].startswith("def (model: ")
    assert revealed[0].endswith('-> lrkit.finder.result.FinderResult"')
    assert revealed[2].startswith("def (losses: list[float] =, ")
    assert revealed[2].endswith('-> lrkit.torch._train.History"')


def test_mypy_sees_the_real_types_of_lrkit_keras(tmp_path: Path) -> None:
    names = ["LRScheduler", "ReduceOnPlateau", "DivergenceGuard", "LRLogger", "find_lr"]
    revealed = _revealed(tmp_path, "lrkit.keras", names)
    for name, shown in zip(names[:4], revealed):
        assert shown.endswith(f'-> lrkit.keras._callbacks.{name}"'), shown
    assert revealed[0].startswith("def (schedule: "), revealed[0]
    assert revealed[4].endswith('-> lrkit.finder.result.FinderResult"'), revealed[4]


def test_lrkit_keras_loads_the_callbacks_and_the_finder_on_first_use() -> None:
    pytest.importorskip("keras")
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


def test_lrkit_imports_its_schedules_on_first_use_and_mypy_sees_their_types(
    tmp_path: Path,
) -> None:
    """``import lrkit`` (what the command line starts with) imports no numpy; its names load on
    first use, and type checkers see their real types."""
    code = (
        "import sys, lrkit\n"
        "assert 'numpy' not in sys.modules and 'lrkit.schedules' not in sys.modules\n"
        "assert lrkit.parse('constant(0.5)')(3) == 0.5\n"
        "assert lrkit.schedules.Schedule is lrkit.Schedule\n"
        "assert lrkit.from_dict is lrkit.schedules.from_dict and 'lrkit.schedules' in sys.modules\n"
        "from lrkit import parse, schedules\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    api = pytest.importorskip("mypy.api")
    (tmp_path / "check.py").write_text(
        "import lrkit\nreveal_type(lrkit.parse)\nreveal_type(lrkit.schedules.cosine)\n"
    )
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\nstrict = True\n[mypy-numpy.*,matplotlib.*]\nfollow_imports = skip\n"
    )
    out, err, status = api.run(["--config-file", str(tmp_path / "mypy.ini"), "--cache-dir",
                                str(tmp_path / "cache"), "--no-error-summary",
                                str(tmp_path / "check.py")])  # fmt: skip
    assert status == 0, out + err
    revealed = [line.split('Revealed type is "', 1)[1] for line in out.splitlines()]
    assert len(revealed) == 2 and "Any" not in " ".join(revealed), out
    assert revealed[0].endswith('-> lrkit.schedules._base.Schedule"'), revealed[0]
