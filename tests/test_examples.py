"""Every script in examples/ runs to completion (they are what users copy)."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import lrkit

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))

#: optional packages an example needs beyond the dev extra's core (skipped without them)
NEEDS: dict[str, tuple[str, ...]] = {
    "lightning_trainer.py": ("pytorch_lightning",),
    "hf_trainer.py": ("transformers", "accelerate"),
    "config_schedules.py": ("yaml", "hydra"),
}


def _imports(script: Path) -> set[str]:
    """The top-level packages a script imports (outside the standard library and lrkit)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("lrkit",)}


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script: Path, tmp_path: Path) -> None:
    needs = sorted(_imports(script) | set(NEEDS.get(script.name, ())))
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{script.name} needs {', '.join(missing)}")
    src = str(Path(lrkit.__file__).resolve().parents[1])  # the scripts import this lrkit
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    env = dict(
        os.environ, MPLBACKEND="Agg", KERAS_BACKEND="jax", PYTHONHASHSEED="0", PYTHONPATH=path
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
