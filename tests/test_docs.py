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
        "lrkit.schedules.tables",
        "lrkit.textplot",
    ]
    guides = {"lrkit.lightning": "lightning.md", "lrkit.hf": "hf.md"}
    for package, page in guides.items():  # their reference is on their guide page
        assert f"::: {package}." in (ROOT / "docs" / page).read_text()
    for module in ("lrkit.torch.demo", "lrkit", "lrkit.schedules.tables", "lrkit.textplot"):
        assert f"::: {module}\n" in index


def test_schedules_page_states_the_cyclic_step_sizes_the_code_accepts() -> None:
    from lrkit import schedules as S

    text = " ".join((ROOT / "docs" / "schedules.md").read_text().split())
    assert (
        "`cyclic`'s `step_size_up` a number in `[1, 2**53]` and its `step_size_down` `0` (no way "
        "down: a sawtooth, as PyTorch's) or a number in `[1, 2**53]` (left out, it is "
        "`step_size_up`)" in text
    )
    assert "`cyclic` step sizes numbers in `[1, 2**53]`" not in text

    def accepted(**kw: float) -> bool:
        try:
            S.cyclic(0.01, max_lr=0.1, **kw)
        except ValueError:
            return False
        return True

    assert [accepted(step_size_up=u) for u in (0, 0.5, 1, 1.5, 2**53, 2**53 + 2)] == [
        False, False, True, True, True, False,
    ]  # fmt: skip
    assert [
        accepted(step_size_up=2, step_size_down=d) for d in (-1, 0, 0.5, 1, 2.5, 2**53, 2**53 + 2)
    ] == [False, True, False, True, True, True, False]
    assert S.cyclic(0.01, max_lr=0.1, step_size_up=2).step_size_down is None
    assert S.cyclic(0.01, max_lr=0.1, step_size_up=2).values([0, 2, 4]).tolist() == [
        0.01, 0.1, 0.01,
    ]  # fmt: skip


def test_the_compare_sample_in_the_cli_page_is_the_commands_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/cli.md shows ``lrkit compare --demo`` output as the command prints it (the wall
    times, which vary from machine to machine, aside): rerun it."""
    import shlex

    for package in ("torch", "sklearn", "matplotlib", "schedulefree", "prodigyopt"):
        pytest.importorskip(package)
    from lrkit.cli import main

    page = (ROOT / "docs" / "cli.md").read_text()
    block = re.search(r"```text\n\$ (lrkit compare [^\n]*)\n(.*?)```", page, re.S)
    assert block is not None
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(block.group(1))[1:]) == 0
    assert (tmp_path / "lrkit_compare.png").stat().st_size > 0

    def untimed(text: str) -> list[str]:
        masked = re.sub(r"\b\d+(\.\d+)? (ms|s)\b", "TIME", text)
        return [" ".join(ln.split()) for ln in masked.splitlines()]

    def steady(lines: list[str]) -> list[str]:
        # Prodigy's losses hang on the last bits of the CPU's float kernels (docs/cli.md)
        prodigy = re.compile(r"^(prodigy Prodigy d estimated) \S+ \S+ \S+ (TIME final d\*lr \S+)$")
        return [prodigy.sub(r"\1 \2", ln) for ln in lines]

    shown = untimed(block.group(2))
    assert any(ln.startswith("prodigy Prodigy d estimated ") for ln in shown)
    assert sum(ln != s for ln, s in zip(shown, steady(shown))) == 1
    shown = steady(shown)
    printed = steady(untimed(capsys.readouterr().out))
    assert len(printed) == len(shown)
    for got, want in zip(printed, shown):  # the words as shown, the numbers to 2%: a CPU's
        assert _same_numbers(got, want), (got, want)  # own float kernels move the last digit


def test_the_schedules_in_the_cli_pages_tune_sample_print_as_the_table_prints_them() -> None:
    """Each schedule of docs/cli.md's ``lrkit tune`` sample (its table rows, wrapped, and the
    best one at full precision) is what the command prints for it today: read back, the
    table's form (4 significant digits) and the full-precision form give the same text."""
    from lrkit import schedules as S
    from lrkit._format import round_floats

    page = (ROOT / "docs" / "cli.md").read_text()
    block = re.search(r"```text\n\$ lrkit tune [^\n]*\n(.*?)```", page, re.S)
    assert block is not None
    lines = block.group(1).splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("----"))
    rows: list[str] = []
    for ln in lines[start + 1 :]:
        if not ln.strip():
            break
        if ln[0].isdigit():
            rows.append(ln.split(None, 5)[5])
        else:  # a wrapped row goes on under its schedule column
            rows[-1] += " " + ln.strip()
    assert len(rows) == 5
    for spec in rows:
        assert round_floats(str(S.parse(spec)), 4) == spec
    best = lines[lines.index("best schedule (full precision):") + 1]
    assert str(S.parse(best)) == best


def _number(token: str) -> float | None:
    try:
        return float(token.rstrip("%"))
    except ValueError:
        return None


def _same_numbers(got: str, want: str, rel: float = 0.02) -> bool:
    """``got`` and ``want`` have the same words, and numbers within ``rel`` of each other."""
    a, b = got.split(), want.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        u, v = _number(x), _number(y)
        if u is None or v is None or x.endswith("%") != y.endswith("%"):
            return False
        if abs(u - v) > rel * max(abs(u), abs(v)):
            return False
    return True


def test_parity_page_gives_the_add_and_sub_spec_forms_that_parse() -> None:
    from lrkit import schedules as S

    text = " ".join((ROOT / "docs" / "parity.md").read_text().split())
    section = text[text.index("## Sums and differences") : text.index("## Reduce on plateau")]
    a, b = S.constant(0.95), S.cosine(0.1, total_steps=10)
    same = {"add": S.add(a, b), "sub": S.sub(a, b=b)}
    forms = [f.replace(", ...", "") for f in re.findall(r"`((?:add|sub)\([^`]*\))`", section)]
    # the forms with placeholders (str()'s keyword forms and the examples checked below)
    forms = [f for f in forms if "..." not in f and "constant" not in f]
    assert forms == [
        "add(a, b)", "add([a, b])", "add(schedules=[a, b])", "sub(a, b)", "sub(a=a, b=b)",
    ]  # fmt: skip
    for form in forms:
        spec = re.sub(r"\b[ab]\b(?!=)", lambda m: str(a if m.group() == "a" else b), form)
        assert S.parse(spec) == same[form[:3]], form
    assert str(same["add"]).startswith("add(schedules=[") and "`add(schedules=[...])`" in section
    assert str(same["sub"]).startswith("sub(a=") and "`sub(a=..., b=...)`" in section
    example = "sub(constant(0.95), cyclic(0, 0.1, 2000, mode=triangular2))"
    assert f"`{example}`" in section
    assert S.parse(example) == S.sub(S.constant(0.95), b=S.parse(example[20:-1]))
    assert (
        '`str(S.parse("sub(constant(0.95), constant(0.1))"))` is '
        "`sub(a=constant(lr=0.95), b=constant(lr=0.1))`" in section
    )
    assert str(S.parse("sub(constant(0.95), constant(0.1))")) == (
        "sub(a=constant(lr=0.95), b=constant(lr=0.1))"
    )


def _modules_with_examples() -> list[str]:
    """The modules of the package whose docstrings hold ``>>>`` examples."""
    src = Path(__file__).resolve().parents[1] / "src"
    found = []
    for path in sorted((src / "lrkit").rglob("*.py")):
        if ">>>" in path.read_text(encoding="utf-8"):
            parts = path.relative_to(src).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


@pytest.mark.parametrize("module", _modules_with_examples())
def test_the_docstring_examples_give_what_they_say(module: str) -> None:
    """``help()`` shows these first: each example runs as written and prints what it says
    (the ones too long for a test are marked ``+SKIP``)."""
    import doctest
    import importlib

    if module.startswith("lrkit.tune"):
        pytest.importorskip("optuna")
    result = doctest.testmod(importlib.import_module(module), verbose=False)
    assert result.failed == 0 and result.attempted > 0


#: the probes' cost as the pages and messages state it in words, where no table is rendered
PROBE_COST = re.compile(r"6\.5[- ](?:to )?9x")


def test_the_probes_cost_stated_in_words_holds_the_measured_ratios() -> None:
    """Each page and message that says the probes take "about 6.5 to 9x" a sweep's time,
    against the ratios benchmarks/finder_speed.py measured (its JSON, rendered in
    docs/finder.md): a range the measurement has left is no longer true."""
    import json

    measured = json.loads((ROOT / "benchmarks" / "results" / "finder_speed.json").read_text())
    ratios = [float(row[-1]) for row in measured["tables"]["probes"]["rows"]]
    assert ratios and all(6.5 <= r <= 9.0 for r in ratios), ratios
    places = [
        ROOT / "README.md",
        ROOT / "docs" / "cli.md",
        ROOT / "docs" / "finder.md",
        ROOT / "src" / "lrkit" / "torch" / "_finder.py",
        ROOT / "src" / "lrkit" / "commands" / "find.py",
    ]
    for path in places:
        assert PROBE_COST.search(path.read_text()), path  # the statement this test guards
