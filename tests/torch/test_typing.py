"""Type checkers see the real types of lrkit.torch's lazily imported names (not ``Any``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lrkit.torch as lt

INIT = Path(lt.__file__)


def _type_checking_imports() -> dict[str, str]:
    """``name -> submodule`` of the ``from .sub import name as name`` under ``TYPE_CHECKING``."""
    tree = ast.parse(INIT.read_text(), str(INIT))
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1, "lrkit/torch/__init__.py: no single `if TYPE_CHECKING:` block"
    found: dict[str, str] = {}
    for node in blocks[0].body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.dump(node)
        for alias in node.names:
            assert alias.asname == alias.name, f"{alias.name}: not re-exported (`as` itself)"
            found[alias.name] = str(node.module)
    return found


def test_type_checking_block_imports_every_lazy_name_from_its_submodule() -> None:
    assert _type_checking_imports() == lt._EXPORTS


def test_mypy_sees_the_real_types(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    names = ["find_lr", "scheduler", "History", "DivergenceGuard", "effective_lr", "get_rank"]
    (tmp_path / "check.py").write_text(
        "import lrkit.torch as lt\n" + "".join(f"reveal_type(lt.{n})\n" for n in names)
    )
    # the frameworks' own sources are not read (fast): their types are Any here
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\nstrict = True\n"
        "[mypy-torch.*,numpy.*,sklearn.*,matplotlib.*,tqdm.*,scipy.*]\n"
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
    assert "Any" not in revealed, out
    assert revealed[0].startswith("def (model: ")
    assert revealed[0].endswith('-> lrkit.finder.result.FinderResult"')
    assert revealed[2].startswith("def (losses: list[float] =, ")
    assert revealed[2].endswith('-> lrkit.torch._train.History"')
