"""What ``pip install lrkit`` gets: license, metadata, version, entry points and the built files.

The checks of the built wheel and sdist run when ``LRKIT_DIST`` names the folder they were
built into (``python -m build -o DIR``; the packaging job in ``.ci/run`` does this).
"""

from __future__ import annotations

import email.parser
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

import lrkit
from lrkit import cli

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
URLS = PROJECT["urls"]
PACKAGE_FILES = sorted(
    p.relative_to(ROOT / "src").as_posix()
    for p in (ROOT / "src" / "lrkit").rglob("*")
    if p.is_file() and (p.suffix == ".py" or p.name == "py.typed") and "__pycache__" not in p.parts
)


def test_license_is_the_full_apache_2_0_text_and_declared() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    for section in (
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
        "9. Accepting Warranty or Additional Liability.",
        "END OF TERMS AND CONDITIONS",
    ):
        assert section in text
    assert len(text) > 10_000
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert not [c for c in PROJECT["classifiers"] if c.startswith("License ::")]  # PEP 639


def test_version_lives_in_one_place() -> None:
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "lrkit.__version__"}
    writers = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "src").rglob("*.py")
        if re.search(r"^__version__\s*[:=]", p.read_text(), re.M)
    ]
    assert writers == ["src/lrkit/__init__.py"]
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", lrkit.__version__)


def test_version_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"lrkit {lrkit.__version__}\n"


def test_python_m_lrkit_is_the_command_line() -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(lrkit.__file__).parents[1]))
    run = [sys.executable, "-m", "lrkit"]
    out = subprocess.run([*run, "--version"], capture_output=True, text=True, env=env, timeout=120)
    assert (out.returncode, out.stdout) == (0, f"lrkit {lrkit.__version__}\n")
    out = subprocess.run(
        [*run, "plot", "cosine(0.1, 10)", "--steps", "10"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.startswith("cosine(lr=0.1, total_steps=10")
    out = subprocess.run([*run], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "lrkit --help" in out.stderr and "Traceback" not in out.stderr


def test_classifiers_are_known_and_match_requires_python() -> None:
    trove = pytest.importorskip("trove_classifiers")
    classifiers = PROJECT["classifiers"]
    assert classifiers == sorted(set(classifiers), key=classifiers.index)  # no duplicates
    assert set(classifiers) <= trove.classifiers, set(classifiers) - trove.classifiers
    minimum = re.fullmatch(r">=3\.(\d+)", PROJECT["requires-python"])
    assert minimum, PROJECT["requires-python"]
    listed = sorted(
        int(m.group(1))
        for c in classifiers
        if (m := re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", c))
    )
    assert listed and listed[0] == int(minimum.group(1))
    assert listed == list(range(listed[0], listed[-1] + 1))
    assert "Typing :: Typed" in classifiers and (ROOT / "src" / "lrkit" / "py.typed").exists()


def test_project_urls_are_consistent() -> None:
    assert {"Homepage", "Documentation", "Source", "Changelog", "Issues"} <= set(URLS)
    assert all(u.startswith("https://") for u in URLS.values())
    source = URLS["Source"].rstrip("/")
    assert URLS["Homepage"].rstrip("/") == source
    assert URLS["Changelog"] == f"{source}/blob/main/CHANGELOG.md"
    assert URLS["Issues"] == f"{source}/issues"
    assert URLS["Documentation"].endswith("/")
    mkdocs = ROOT / "mkdocs.yml"
    if mkdocs.exists():  # the docs site says the same
        text = mkdocs.read_text()
        for key, url in (("site_url", URLS["Documentation"]), ("repo_url", source)):
            m = re.search(rf"^{key}:\s*(\S+)", text, re.M)
            if m:
                assert m.group(1).strip("'\"").rstrip("/") == url.rstrip("/"), key


@pytest.mark.repository("docs")
def test_install_page_lists_every_extra() -> None:
    page = (ROOT / "docs" / "install.md").read_text()
    missing = [e for e in PROJECT["optional-dependencies"] if f"lrkit[{e}]" not in page]
    assert not missing, f"docs/install.md does not describe the extras {missing}"


def _markdown_links(text: str) -> list[str]:
    """Link and image targets of a Markdown text, outside code blocks and code spans."""
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.M | re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = re.findall(r"\]\(\s*<?([^)\s>]+)", text)  # [text](target), ![alt](target)
    targets += re.findall(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?\s*$", text, re.M)  # [ref]: target
    targets += re.findall(r"""\b(?:href|src)\s*=\s*["']([^"']+)""", text)  # HTML
    return targets


def test_markdown_link_finder() -> None:
    text = (
        "[a](https://x.org/a) ![b](img/b.png) `[c](no)` [d](#sec) <a href='rel.html'>e</a>\n"
        "```\n[f](code)\n```\n[g]: ../g.md\n"
    )
    assert _markdown_links(text) == ["https://x.org/a", "img/b.png", "#sec", "../g.md", "rel.html"]


def test_readme_links_work_off_the_repository() -> None:
    """The README is the long description on the package index: its links must be absolute
    (a relative link or a ``#section`` anchor breaks there). Links into the project's own
    repository or docs start with the project URLs from pyproject.toml."""
    links = _markdown_links((ROOT / PROJECT["readme"]).read_text())
    relative = [u for u in links if not u.startswith("https://")]
    assert not relative, f"README.md has links that break off the repository: {relative}"
    own = ("https://github.com/lrkit/", "https://lrkit.github.io/")
    known = (URLS["Source"].rstrip("/") + "/", URLS["Documentation"])
    stray = [u for u in links if u.startswith(own) and not u.startswith(known)]
    assert not stray, f"links to the project that do not use its URLs: {stray}"


# ----------------------------------------------------------------------------- built files

DIST = os.environ.get("LRKIT_DIST")
built = pytest.mark.skipif(not DIST, reason="LRKIT_DIST: the folder the wheel and sdist are in")


def _one(pattern: str) -> Path:
    found = sorted(Path(str(DIST)).glob(pattern))
    assert len(found) == 1, found
    return found[0]


@built
def test_wheel_holds_the_package_license_and_types_and_nothing_else() -> None:
    wheel = _one("lrkit-*.whl")
    info = f"lrkit-{lrkit.__version__}.dist-info"
    assert wheel.name == f"lrkit-{lrkit.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        license_text = z.read(f"{info}/licenses/LICENSE")
        entry_points = z.read(f"{info}/entry_points.txt").decode()
    assert {n.split("/")[0] for n in names} == {"lrkit", info}
    assert "lrkit/py.typed" in names
    assert license_text == (ROOT / "LICENSE").read_bytes()
    assert sorted(n for n in names if n.startswith("lrkit/")) == PACKAGE_FILES
    bad = {"tests", "benchmarks", "examples", "docs", "__pycache__"}
    assert not [n for n in names if bad & set(n.split("/"))]
    assert "lrkit = lrkit.cli:main" in entry_points


@built
def test_wheel_metadata() -> None:
    with zipfile.ZipFile(_one("lrkit-*.whl")) as z:
        raw = z.read(f"lrkit-{lrkit.__version__}.dist-info/METADATA").decode()
    meta = email.parser.Parser().parsestr(raw)
    assert meta["Name"] == "lrkit" and meta["Version"] == lrkit.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == PROJECT["requires-python"]
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_all("Classifier") == PROJECT["classifiers"]
    assert set(meta.get_all("Provides-Extra")) == set(PROJECT["optional-dependencies"])
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {k.lower(): v for k, v in urls.items()} == {k.lower(): v for k, v in URLS.items()}
    assert meta.get_payload().strip() == (ROOT / "README.md").read_text().strip()


@built
def test_sdist_holds_the_sources_and_the_license() -> None:
    sdist = _one("lrkit-*.tar.gz")
    top = f"lrkit-{lrkit.__version__}"
    assert sdist.name == f"{top}.tar.gz"
    with tarfile.open(sdist) as t:
        names = {n.removeprefix(top + "/") for n in t.getnames()}
        license_file = t.extractfile(f"{top}/LICENSE")
        assert license_file is not None
        assert license_file.read() == (ROOT / "LICENSE").read_bytes()
    assert {"LICENSE", "README.md", "pyproject.toml", "PKG-INFO"} <= names
    assert {f"src/{f}" for f in PACKAGE_FILES} <= names
    assert not [n for n in names if n.split("/")[0] in ("benchmarks", "docs", ".ci")]


# ----------------------------------------------------------------------------- version bounds

#: APIs the package uses that need a given release: (pattern in the source, distribution,
#: the first release that has it)
NEWER_APIS = [
    (r"\btorch\.amp\.GradScaler\b", "torch", (2, 3)),
    (r"\bjax\.tree_util\.keystr\b", "jax", (0, 4, 6)),
    (r"\bkeras\.utils\.PyDataset\b", "keras", (3, 0)),
    (r"\bvmap_method=", "jax", (0, 4, 35)),
    (r"\btree_get_all_with_path\b", "optax", (0, 2, 4)),
]


def _lower_bounds() -> dict[str, tuple[int, ...]]:
    """The ``>=`` bound of each distribution named by the dependencies and the extras."""
    reqs = list(PROJECT["dependencies"])
    for extra in PROJECT["optional-dependencies"].values():
        reqs += extra
    out: dict[str, tuple[int, ...]] = {}
    for req in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([\d.]+)", req.strip())
        if m:
            version = tuple(int(x) for x in m.group(3).split("."))
            name = m.group(1).lower()
            assert out.get(name, version) == version, f"two lower bounds for {name}"
            out[name] = version
    return out


def test_every_dependency_has_a_lower_bound() -> None:
    bounds = _lower_bounds()
    for req in [*PROJECT["dependencies"], *sum(PROJECT["optional-dependencies"].values(), [])]:
        name = re.match(r"[A-Za-z0-9_.\-]+", req)
        assert name, req
        if name.group(0) not in ("lrkit", "trove-classifiers"):
            assert name.group(0).lower() in bounds, f"{req}: no lower bound"


@pytest.mark.parametrize(("pattern", "dist", "first"), NEWER_APIS)
def test_lower_bounds_cover_the_apis_used(pattern: str, dist: str, first: tuple[int, ...]) -> None:
    users = [
        p.relative_to(ROOT).as_posix()
        for p in sorted((ROOT / "src" / "lrkit").rglob("*.py"))
        if re.search(pattern, p.read_text())
    ]
    if not users:
        pytest.skip(f"{pattern} is not used")
    bound = _lower_bounds()[dist]
    needed, allowed = ".".join(map(str, first)), ".".join(map(str, bound))
    assert bound >= first, f"{users} need {dist} {needed}; pyproject.toml allows {dist}>={allowed}"


@pytest.mark.repository("docs")
def test_install_page_states_the_torch_bound() -> None:
    bound = ".".join(map(str, _lower_bounds()["torch"]))
    page = (ROOT / "docs" / "install.md").read_text()
    assert f"`torch>={bound}`" in page and f"PyTorch {bound} or newer" in page


@pytest.mark.repository("docs")
def test_install_page_states_every_tested_lower_bound() -> None:
    page = (ROOT / "docs" / "install.md").read_text()
    bounds = _lower_bounds()
    spec = importlib.util.spec_from_file_location("lower_bounds", ROOT / ".ci" / "lower_bounds.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in module.TESTED:  # what .ci/lower-bounds installs at its bound
        assert f"`{name}>={'.'.join(map(str, bounds[name]))}`" in page, name
