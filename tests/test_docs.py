"""The README is an overview that agrees with CI, and the docs pages are wired up."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def _commands(text: str) -> list[str]:
    """The ruff and mypy command lines of a text (continuation lines joined)."""
    joined = re.sub(r"\\\n\s*", "", text)
    return [ln.strip() for ln in joined.splitlines() if re.match(r"\s*(ruff|mypy) ", ln)]


def test_readme_is_an_overview() -> None:
    assert len(README.encode()) < 10 * 1024


def test_readme_lint_commands_are_the_ci_ones() -> None:
    assert _commands(README), "the README shows the lint commands"
    assert _commands(README) == _commands(CI)


def test_readme_links_to_the_docs_site_and_every_guide_page() -> None:
    site = "https://lrkit.github.io/lrkit/"
    assert site in README
    nav = (ROOT / "mkdocs.yml").read_text()
    guide = re.findall(r"^ {6}- [^:#]+: (\w[\w-]*)\.md$", nav, re.M)
    assert guide, "mkdocs.yml lists the guide pages"
    missing = [p for p in guide if f"{site}{p}/" not in README]
    assert not missing, f"README links none of {missing}"


def test_nav_pages_exist() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = re.findall(r"^\s*- (?:[^:#\n]+: )?([\w/.-]+\.md)$", nav, re.M)
    assert pages
    missing = [p for p in pages if not (ROOT / "docs" / p).is_file()]
    assert not missing, missing


def test_pre_commit_runs_the_ci_mypy_command() -> None:
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    entry = re.search(r"entry: >-\n((?: {10}.*\n)+)", config)
    assert entry is not None
    command = " ".join(entry.group(1).split())
    assert [command] == [c for c in _commands(CI) if c.startswith("mypy")]


def _first_bash_block(text: str) -> list[str]:
    block = re.search(r"^```bash\n(.*?)^```$", text, re.M | re.S)
    assert block is not None
    return [ln for ln in block.group(1).splitlines() if ln and not ln.startswith("#")]


def test_readme_and_index_start_with_the_same_commands() -> None:
    index = (ROOT / "docs" / "index.md").read_text()
    assert (
        _first_bash_block(README)
        == _first_bash_block(index)
        == [
            "pip install torch==2.13.0 && pip install -e '.[torch,plot,demo]' && lrkit find --demo",
            "pip install torch==2.13.0 && pip install -e '.[dev]' && python -m pytest -q",
        ]
    )


def test_readme_test_command_is_the_ci_one() -> None:
    test_command = _first_bash_block(README)[1]
    ci = [re.sub(r"python -m pip install -q ", "pip install ", ln) for ln in CI.splitlines()]
    assert test_command in ci


def test_index_links_every_nav_page() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = re.findall(r"^\s*- (?:[^:#\n]+: )?([\w/.-]+\.md)$", nav, re.M)
    index = re.sub(r"<!--.*?-->", "", (ROOT / "docs" / "index.md").read_text(), flags=re.S)
    linked = set(re.findall(r"\]\(([\w/.-]+\.md)(?:#[\w-]+)?\)", index))
    missing = [p for p in pages if p != "index.md" and not p.startswith("api/") and p not in linked]
    assert not missing, f"docs/index.md links none of {missing}"


def test_readme_names_every_user_extra() -> None:
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    missing = [e for e in extras if e not in ("dev", "docs") and f"`lrkit[{e}]`" not in README]
    assert not missing, f"README names none of the extras {missing}"


def test_api_index_lists_every_public_package() -> None:
    index = (ROOT / "docs" / "api" / "index.md").read_text()
    listed = re.findall(r"^\| `(lrkit[\w.]*)` \|", index, re.M)
    assert listed == [
        "lrkit.schedules",
        "lrkit.feedback",
        "lrkit.finder",
        "lrkit.torch",
        "lrkit.keras",
        "lrkit.optax",
        "lrkit.tune",
        "lrkit.compare",
        "lrkit.lightning",
        "lrkit.hf",
        "lrkit.torch.demo",
    ]
    guides = {"lrkit.lightning": "lightning.md", "lrkit.hf": "hf.md"}
    for package, page in guides.items():  # their reference is on their guide page
        assert f"::: {package}." in (ROOT / "docs" / page).read_text()
    assert "::: lrkit.torch.demo\n" in index
