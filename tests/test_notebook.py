"""The tutorial notebook runs top to bottom in a fresh kernel, and its results display as
tables with plots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import lrkit

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
for _module in ("torch", "optuna", "sklearn", "matplotlib"):
    pytest.importorskip(_module)

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "tutorial.ipynb"


def test_tutorial_notebook_runs(tmp_path: Path, monkeypatch: Any) -> None:
    src = str(Path(lrkit.__file__).resolve().parents[1])  # the kernel imports this lrkit
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # stored clean
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    rich = [o["data"] for o in outputs if "data" in o and "image/png" in o["data"]]
    # two schedules, the range test, the study, the best schedule
    assert len(rich) == 5
    assert all("text/html" in d for d in rich)
    assert any(d["text/plain"].startswith("FinderResult(suggestion=") for d in rich)
    assert any(d["text/plain"].startswith("TuneResult(trials=") for d in rich)
    assert list(tmp_path.iterdir()) == []  # the notebook writes no files
