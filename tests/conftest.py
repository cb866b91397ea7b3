"""Run from an unpacked sdist (the package, its tests and examples, without the repository's
docs sources, CI script and benchmarks), the tests that read those parts skip and say why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# property tests: no per-example time limit (a busy machine is no failure)
settings.register_profile("lrkit", deadline=None)
settings.load_profile("lrkit")

ROOT = Path(__file__).resolve().parents[1]
#: the parts of the repository the sdist leaves out (see MANIFEST.in)
REPOSITORY_ONLY = {
    "docs": ROOT / "docs",
    ".ci": ROOT / ".ci" / "run",
    "benchmarks": ROOT / "benchmarks",
}

# whole modules that read them when imported
collect_ignore = [
    module
    for module, part in (("test_docs.py", ".ci"), ("finder/test_zoo.py", "benchmarks"))
    if not REPOSITORY_ONLY[part].exists()
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "repository(part): reads docs, .ci or benchmarks, which the sdist leaves out"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for mark in item.iter_markers("repository"):
            part = mark.args[0]
            if not REPOSITORY_ONLY[part].exists():
                reason = f"reads the repository's {part}, which the sdist leaves out"
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``spy(module, name)``: ``module.name`` replaced by a wrapper that records the keywords
    of its last call (the returned dict) and calls the original."""

    def on(module: Any, name: str) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        real = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen.update(kwargs)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)
        return seen

    return on
