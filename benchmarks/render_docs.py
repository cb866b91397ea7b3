"""Fill the benchmark tables in ``docs/`` from the benchmarks' JSON output.

Every benchmark script writes ``--json PATH`` (by convention ``benchmarks/results/NAME.json``)
holding a ``"tables"`` mapping: ``{"TABLE": {"columns": [...], "rows": [[...], ...]}}``, cells
already formatted or plain numbers. A docs page marks where a table goes::

    <!-- bench:NAME:TABLE -->
    (replaced)
    <!-- /bench -->

``python benchmarks/render_docs.py`` rewrites every marked block (in ``docs/`` and the README)
from the JSON files;
``--check`` exits 1 when a page is out of date (nothing is written then).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(<!-- bench:([\w.-]+):([\w.-]+) -->\n)(.*?)(<!-- /bench -->)", re.S)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_table(table: dict[str, list]) -> str:
    """A Markdown table from ``{"columns": [...], "rows": [[...], ...]}``."""
    cols = [str(c) for c in table["columns"]]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table["rows"]:
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def render_page(text: str, results: Path = RESULTS) -> str:
    def fill(m: re.Match[str]) -> str:
        name, table = m.group(2), m.group(3)
        path = results / f"{name}.json"
        try:
            data = json.loads(path.read_text())
            body = render_table(data["tables"][table])
        except (OSError, KeyError, ValueError) as exc:
            msg = f"docs table bench:{name}:{table}: cannot read {path}: {exc}"
            raise SystemExit(msg) from None
        return m.group(1) + body + m.group(5)

    return BLOCK.sub(fill, text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a page is out of date")
    args = ap.parse_args(argv)
    stale = []
    for page in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        old = page.read_text()
        new = render_page(old)
        if new != old:
            stale.append(page.relative_to(ROOT))
            if not args.check:
                page.write_text(new)
    for p in stale:
        print(("stale: " if args.check else "updated: ") + str(p))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
