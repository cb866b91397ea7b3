"""The core imports only numpy (and the standard library): never torch, keras, jax or others.

The static layering rules (every package, every import statement) are in test_layers.py."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import lrkit, lrkit.schedules, lrkit.finder, lrkit.feedback, lrkit.textplot, lrkit.cli
import lrkit._runtime, lrkit._imports, lrkit._validate, lrkit._files
import lrkit.torch, lrkit.tune._space  # adapter packages import their framework lazily
heavy = {"torch", "keras", "jax", "optax", "optuna", "matplotlib", "tensorflow", "sklearn",
         "schedulefree", "prodigyopt", "scipy", "pandas"}
print(sorted(heavy & {m.split(".")[0] for m in sys.modules}))
"""


def test_core_imports_only_numpy() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]", out
