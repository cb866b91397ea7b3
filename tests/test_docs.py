"""The README is an overview that agrees with CI, and the docs pages are wired up."""

from __future__ import annotations

import re
from pathlib import Path

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
