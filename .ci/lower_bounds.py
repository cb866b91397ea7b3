"""Print the pip requirements of the lower-bounds environment: every dependency that
``pyproject.toml`` bounds with ``>=`` and that installs from the package index without a
multi-GB download, pinned to its bound (``name==bound``), plus the pins that releases this
old need from their own dependencies. Used by ``.ci/lower-bounds``."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
#: dependencies tested at their bound (PyTorch is not: a CPU build of an old PyTorch is not on
#: the index, and the CUDA build is several GB; .ci/lower-bounds installs the one CI uses)
TESTED = (
    "numpy",
    "tqdm",
    "keras",
    "jax",
    "optax",
    "optuna",
    "matplotlib",
    "scikit-learn",
    "pytorch-lightning",
    "transformers",
    "accelerate",
    "schedulefree",
    "prodigyopt",
)
#: what the old releases need from packages lrkit does not depend on directly
EXTRA_PINS: tuple[str, ...] = ()


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    pins: dict[str, str] = {}
    for req in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([\d.]+)", req.strip())
        if m and m.group(1).lower() in TESTED:
            pins[m.group(1).lower()] = m.group(3)
    missing = sorted(set(TESTED) - set(pins))
    if missing:
        sys.exit(f"no lower bound in pyproject.toml for {', '.join(missing)}")
    # a bound X.Y means the oldest X.Y release line: its last patch release (X.Y.*);
    # a bound X.Y.Z is that release
    out = [
        f"{name}=={version}" if version.count(".") >= 2 else f"{name}~={version}.0"
        for name, version in sorted(pins.items())
    ]
    out.append(f"jaxlib=={pins['jax']}")
    print(" ".join([*out, *EXTRA_PINS]))


if __name__ == "__main__":
    main()
