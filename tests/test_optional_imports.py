"""Every optional part fails on a missing dependency with the one-line install hint.

Each case runs in a fresh interpreter in which the dependency is hidden by a ``sys.meta_path``
entry (as if it were not installed), and checks the exact ``ImportError`` message. The extras
named by the hints exist in ``pyproject.toml`` and install the module they name.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import types
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

import lrkit
from lrkit import _imports
from lrkit._imports import (
    install_command,
    install_hint,
    install_note,
    lazy_exports,
    optional,
    require,
)

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(lrkit.__file__).resolve().parents[1]

# Runs each statement of STATEMENTS in order until one raises; prints what was raised.
RUNNER = """
import json, sys

class _Hidden:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Hidden())
error, namespace = None, {}
for statement in STATEMENTS:
    try:
        exec(statement, namespace)
    except BaseException as exc:
        error = [type(exc).__name__, str(exc), statement]
        break
leaked = sorted(HIDDEN & {m.split(".")[0] for m in sys.modules})
print(json.dumps({"error": error, "leaked": leaked}))
"""


def _run_hidden(hidden: set[str], statements: list[str]) -> dict[str, object]:
    code = f"HIDDEN = {sorted(hidden)!r}\nHIDDEN = set(HIDDEN)\nSTATEMENTS = {statements!r}\n"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    env.setdefault("MPLBACKEND", "Agg")
    out = subprocess.run(
        [sys.executable, "-c", code + RUNNER],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _public_names_statement(package: str) -> list[str]:
    """Import ``package`` and touch each name in its ``__all__`` (for lazy packages)."""
    return [f"import {package} as m\nfor n in getattr(m, '__all__', []):\n    getattr(m, n)"]


TORCH_NAMES = [
    "scheduler",
    "find_lr",
    "DivergenceGuard",
    "effective_lr",
    "schedule_free",
    "get_rank",
]
PARAMS = "import torch; p = [torch.nn.Parameter(torch.zeros(2))]\n"

CASES = {
    # lrkit.torch imports torch lazily: the hint comes with the first name used, whichever
    "torch": (
        {"torch"},
        [f"from lrkit.torch import {n}" for n in TORCH_NAMES],
        "ImportError",
        "lrkit.torch needs torch: pip install 'lrkit[torch]'",
    ),
    "torch-attribute": (
        {"torch"},
        ["import lrkit.torch", "lrkit.torch.find_lr"],
        "ImportError",
        "lrkit.torch needs torch: pip install 'lrkit[torch]'",
    ),
    "optax-without-jax": (
        {"jax", "optax"},
        ["import lrkit.optax"],
        "ImportError",
        "lrkit.optax needs jax: pip install 'lrkit[jax]'",
    ),
    "optax-without-optax": (
        {"optax"},
        ["import lrkit.optax"],
        "ImportError",
        "lrkit.optax needs optax: pip install 'lrkit[jax]'",
    ),
    "keras": (
        {"keras"},
        ["import lrkit.keras"],
        "ImportError",
        "lrkit.keras needs keras: pip install 'lrkit[keras]'",
    ),
    "keras-2": (  # a Keras 2 installed: the extra installs Keras 3
        set(),
        [
            "import sys, types\nk = types.ModuleType('keras')\nk.__version__ = '2.15.0'\n"
            "sys.modules['keras'] = k",
            "import lrkit.keras",
        ],
        "ImportError",
        "lrkit.keras needs Keras 3: pip install 'lrkit[keras]' (found keras 2.15.0)",
    ),
    "tune": (
        {"optuna"},
        ["import lrkit.tune", "lrkit.tune.make_storage()"],
        "ImportError",
        "lrkit.tune needs optuna: pip install 'lrkit[tune]'",
    ),
    "tune-torch-task": (
        {"torch"},
        [
            "import lrkit.tune",
            "lrkit.tune.torch_task(None, loss_fn=None, data=[], val_data=None)",
        ],
        "ImportError",
        "lrkit.tune.torch_task needs torch: pip install 'lrkit[torch]'",
    ),
    "tune-demo-task": (
        {"torch"},
        ["import lrkit.tune", "lrkit.tune.demo_task()"],
        "ImportError",
        "lrkit.tune.demo_task needs torch: pip install 'lrkit[torch]'",
    ),
    "schedule-plot": (
        {"matplotlib"},
        ["import lrkit", "lrkit.parse('cosine(0.1, 100)').plot()"],
        "ImportError",
        "Schedule.plot needs matplotlib: pip install 'lrkit[plot]'",
    ),
    "finder-plot": (
        {"matplotlib"},
        [
            "from lrkit.finder import range_test\n"
            "range_test(lambda lr: 1.0 / (1.0 + lr), num_iter=20, warn=False).plot()"
        ],
        "ImportError",
        "FinderResult.plot needs matplotlib: pip install 'lrkit[plot]'",
    ),
    "tune-plot": (
        {"matplotlib"},
        ["from lrkit.tune._report import plot_search\nplot_search(None)"],
        "ImportError",
        "TuneResult.plot needs matplotlib: pip install 'lrkit[plot]'",
    ),
    "effective-lr-plot": (
        {"matplotlib"},
        [
            PARAMS + "from lrkit.torch import EffectiveLRLogger\n"
            "EffectiveLRLogger(torch.optim.Adam(p), tensorboard=False).plot()"
        ],
        "ImportError",
        "EffectiveLRLogger.plot needs matplotlib: pip install 'lrkit[plot]'",
    ),
    "tensorboard": (  # outside lrkit's extras: its own install line
        {"tensorboard"},
        [
            PARAMS + "from lrkit.torch import EffectiveLRLogger\n"
            "EffectiveLRLogger(torch.optim.Adam(p), tensorboard='auto')\n"  # no error: skipped
            "EffectiveLRLogger(torch.optim.Adam(p), tensorboard=True)"
        ],
        "ImportError",
        "EffectiveLRLogger(tensorboard=True) needs tensorboard: pip install tensorboard",
    ),
    "schedulefree": (
        {"schedulefree"},
        [PARAMS + "from lrkit.torch import schedule_free\nschedule_free(p)"],
        "ImportError",
        "lrkit.torch.schedule_free needs schedulefree: pip install 'lrkit[lrfree]'",
    ),
    "prodigyopt": (
        {"prodigyopt"},
        [PARAMS + "from lrkit.torch import prodigy\nprodigy(p)"],
        "ImportError",
        "lrkit.torch.prodigy needs prodigyopt: pip install 'lrkit[lrfree]'",
    ),
    "demo data": (
        {"sklearn"},
        ["import torch\nimport lrkit.torch.demo"],
        "ImportError",
        "lrkit.torch.demo needs scikit-learn: pip install 'lrkit[demo]'",
    ),
    # the framework integrations: a module, or a lazy package whose names need the framework
    "lightning": (
        {"pytorch_lightning", "lightning"},
        _public_names_statement("lrkit.lightning"),
        "ImportError",
        re.compile(
            r"lrkit\.lightning(\.\w+)? needs (pytorch_lightning|lightning[\w.]*): "
            r"pip install 'lrkit\[lightning\]'"
        ),
    ),
    "hf": (
        {"transformers"},
        _public_names_statement("lrkit.hf"),
        "ImportError",
        re.compile(r"lrkit\.hf(\.\w+)? needs transformers: pip install 'lrkit\[hf\]'"),
    ),
}
# the integrations written beside this package: checked once they exist
NEEDS_MODULE = {"lightning": "lrkit.lightning", "hf": "lrkit.hf"}
# the cases that hide one package and need another one installed (the hint names the hidden one)
NEEDS_INSTALLED = {"optax-without-optax": "jax"}


def _skip_unless_installed(module: str) -> None:
    """Skip unless ``module`` is installed (found, not imported: importing keras picks a
    backend)."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"needs {module}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_missing_dependency_gives_the_one_line_hint(case: str) -> None:
    if case in NEEDS_MODULE and importlib.util.find_spec(NEEDS_MODULE[case]) is None:
        pytest.skip(f"{NEEDS_MODULE[case]} does not exist")
    hidden, statements, kind, expected = CASES[case]
    if "import torch" in "".join(statements):  # the case hides another package, not torch
        pytest.importorskip("torch")
    if case in NEEDS_INSTALLED:
        _skip_unless_installed(NEEDS_INSTALLED[case])
    result = _run_hidden(hidden, statements)
    error = result["error"]
    assert error is not None, f"{case}: no error with {sorted(hidden)} hidden"
    name, message, statement = error  # type: ignore[misc]
    assert name == kind, (statement, name, message)
    if isinstance(expected, re.Pattern):
        assert expected.fullmatch(message), (statement, message)
    else:
        assert message == expected, statement
    assert "\n" not in message
    assert result["leaked"] == []


def test_every_lrkit_torch_name_gives_the_hint_without_torch() -> None:
    """All public names of lrkit.torch, one interpreter: each raises the same hint."""
    code = (
        "import lrkit.torch, json\nout = []\n"
        "for n in lrkit.torch.__all__:\n"
        "    try:\n        getattr(lrkit.torch, n)\n"
        "    except ImportError as e:\n        out.append(str(e))\n"
        "    else:\n        out.append('imported ' + n)\n"
        "raise SystemExit(json.dumps(out))"
    )
    result = _run_hidden({"torch"}, [code])
    name, message, _ = result["error"]  # type: ignore[misc]
    assert name == "SystemExit"
    import lrkit.torch as lt

    assert json.loads(message) == [install_hint("torch", "torch", feature="lrkit.torch")] * len(
        lt.__all__
    )


def test_keras_with_a_missing_backend_package_names_the_backend() -> None:
    _skip_unless_installed("keras")  # keras itself missing: the plain hint (the "keras" case)
    result = _run_hidden(
        {"jax"}, ["import os\nos.environ['KERAS_BACKEND'] = 'jax'\nimport lrkit.keras"]
    )
    name, message, _ = result["error"]  # type: ignore[misc]
    assert name == "ImportError"
    assert message.startswith("lrkit.keras needs Keras 3 and its backend"), message
    assert message.endswith(
        "Keras is configured for the 'jax' backend (KERAS_BACKEND or ~/.keras/keras.json): "
        "install it (pip install 'lrkit[keras]'), or set KERAS_BACKEND=torch "
        "(pip install 'lrkit[torch]') before the first import of keras or lrkit.keras."
    ), message


def test_keras_with_another_missing_backend_names_each_install_line() -> None:
    _skip_unless_installed("keras")
    result = _run_hidden(
        {"tensorflow"},
        ["import os\nos.environ['KERAS_BACKEND'] = 'tensorflow'\nimport lrkit.keras"],
    )
    name, message, _ = result["error"]  # type: ignore[misc]
    assert name == "ImportError"
    assert message.endswith(
        "Keras is configured for the 'tensorflow' backend (KERAS_BACKEND or "
        "~/.keras/keras.json): install it (pip install tensorflow), or set KERAS_BACKEND=jax "
        "(pip install 'lrkit[keras]') or KERAS_BACKEND=torch (pip install 'lrkit[torch]') "
        "before the first import of keras or lrkit.keras."
    ), message
    assert "\n" not in message


# ----------------------------------------------------------------------------- the helper


def test_the_install_line_hint_and_note_share_one_wording() -> None:
    assert install_command("plot") == "pip install 'lrkit[plot]'"
    assert install_command(package="tensorboard") == "pip install tensorboard"
    for bad in ({}, {"extra": "plot", "package": "matplotlib"}):
        with pytest.raises(TypeError, match="^give one of extra and package"):
            install_command(**bad)  # type: ignore[arg-type]
    assert (
        install_hint("matplotlib", "plot", feature="-o/--output")
        == "-o/--output needs matplotlib: pip install 'lrkit[plot]'"
    )
    assert (
        install_hint("tensorboard", package="tensorboard", feature="f")
        == "f needs tensorboard: pip install tensorboard"
    )
    assert (
        install_note("matplotlib", "plot", feature="--plot", skipped="no plot")
        == "note: no plot (--plot needs matplotlib: pip install 'lrkit[plot]')"
    )


def test_require_returns_the_module() -> None:
    assert require("json", "none") is sys.modules["json"]


def test_require_names_the_extra_and_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lrkit_missing_dep", None)
    with pytest.raises(ImportError) as info:
        require("lrkit_missing_dep", "extra", feature="lrkit.thing")
    assert str(info.value) == "lrkit.thing needs lrkit_missing_dep: pip install 'lrkit[extra]'"
    assert info.value.name == "lrkit_missing_dep"
    assert isinstance(info.value.__cause__, ModuleNotFoundError)

    # the default feature: the calling lrkit module without its private parts
    fake = types.ModuleType("lrkit.adapter._private")
    exec(
        "from lrkit._imports import require\ndef f():\n    require('lrkit_missing_dep', 'x')",
        fake.__dict__,
    )
    with pytest.raises(ImportError, match=r"^lrkit\.adapter needs lrkit_missing_dep: "):
        fake.f()

    # called from outside lrkit: the message names lrkit
    outside = types.ModuleType("user_code")
    exec(
        "from lrkit._imports import require\ndef f():\n    require('lrkit_missing_dep', 'x')",
        outside.__dict__,
    )
    with pytest.raises(ImportError) as info:
        outside.f()
    assert str(info.value) == "lrkit needs lrkit_missing_dep: pip install 'lrkit[x]'"


def test_require_of_a_submodule_whose_package_is_missing_gives_the_plain_hint() -> None:
    with pytest.raises(ImportError) as info:
        require("lrkit_not_installed_anywhere.sub", "extra", feature="f")
    assert str(info.value) == (
        "f needs lrkit_not_installed_anywhere.sub: pip install 'lrkit[extra]'"
    )
    assert info.value.name == "lrkit_not_installed_anywhere"


def test_require_of_a_package_missing_its_own_submodule_gives_the_plain_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lrkit_dep_pkg").mkdir()
    (tmp_path / "lrkit_dep_pkg" / "__init__.py").write_text("import lrkit_dep_pkg.absent\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as info:
        require("lrkit_dep_pkg", "extra", feature="f")
    assert str(info.value) == "f needs lrkit_dep_pkg: pip install 'lrkit[extra]'"
    assert info.value.name == "lrkit_dep_pkg.absent"
    monkeypatch.delitem(sys.modules, "lrkit_dep_pkg", raising=False)


def test_require_reports_a_missing_dependency_of_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lrkit_dep_outer.py").write_text("import lrkit_dep_inner_missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as info:
        require("lrkit_dep_outer", "extra", feature="f")
    assert str(info.value) == (
        "f needs lrkit_dep_outer: pip install 'lrkit[extra]' "
        "(No module named 'lrkit_dep_inner_missing')"
    )
    assert info.value.name == "lrkit_dep_inner_missing"
    monkeypatch.delitem(sys.modules, "lrkit_dep_outer", raising=False)


def test_require_lets_other_errors_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lrkit_dep_broken.py").write_text("raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RuntimeError, match="broken on import"):
        require("lrkit_dep_broken", "extra")
    with pytest.raises(RuntimeError, match="broken on import"):
        optional("lrkit_dep_broken")


def test_optional(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert optional("json") is sys.modules["json"]
    assert optional("lrkit_not_installed_anywhere") is None
    assert optional("lrkit_not_installed_anywhere.sub") is None
    (tmp_path / "lrkit_dep_outer2.py").write_text("import lrkit_dep_inner_missing2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError):  # installed but broken: not hidden as "absent"
        optional("lrkit_dep_outer2")
    # a missing module whose name only starts like the requested one is not the requested one
    (tmp_path / "lrkit_dep_abc.py").write_text("import lrkit_dep_ab\n")
    with pytest.raises(ModuleNotFoundError, match="lrkit_dep_ab"):
        optional("lrkit_dep_abc")
    # a module raising ModuleNotFoundError without a module name is broken, not absent
    (tmp_path / "lrkit_dep_nameless.py").write_text("raise ModuleNotFoundError('no backend')\n")
    with pytest.raises(ModuleNotFoundError, match="^no backend$"):
        optional("lrkit_dep_nameless")


def test_lazy_exports(monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = types.ModuleType("lrkit_lazy_pkg")
    sub = types.ModuleType("lrkit_lazy_pkg._impl")
    sub.value = object()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lrkit_lazy_pkg", pkg)
    monkeypatch.setitem(sys.modules, "lrkit_lazy_pkg._impl", sub)
    getattr_, dir_ = lazy_exports("lrkit_lazy_pkg", {"value": "_impl"})
    pkg.__getattr__ = getattr_  # type: ignore[attr-defined]
    pkg.__dir__ = dir_  # type: ignore[method-assign]
    assert pkg.value is sub.value  # type: ignore[attr-defined]
    assert pkg.__dict__["value"] is sub.value  # cached: __getattr__ is not called again
    assert dir_() == ["value"]
    with pytest.raises(AttributeError, match="module 'lrkit_lazy_pkg' has no attribute 'nope'"):
        pkg.nope  # type: ignore[attr-defined]  # noqa: B018


def test_lazy_exports_of_submodules_and_of_names_listed_sorted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pkg = types.ModuleType("lrkit_lazy_pkg2")
    impl = types.ModuleType("lrkit_lazy_pkg2._impl")
    impl.impl = object()  # type: ignore[attr-defined]
    tools = types.ModuleType("lrkit_lazy_pkg2.tools")
    monkeypatch.setitem(sys.modules, "lrkit_lazy_pkg2", pkg)
    monkeypatch.setitem(sys.modules, "lrkit_lazy_pkg2._impl", impl)
    monkeypatch.setitem(sys.modules, "lrkit_lazy_pkg2.tools", tools)
    getattr_, dir_ = lazy_exports("lrkit_lazy_pkg2", {"tools": "tools", "impl": "_impl"})
    pkg.__getattr__ = getattr_  # type: ignore[attr-defined]
    assert pkg.tools is tools  # type: ignore[attr-defined]  # its own submodule
    assert pkg.impl is impl.impl  # type: ignore[attr-defined]  # a name in _impl
    assert dir_() == ["impl", "tools"]


@pytest.mark.parametrize("package", ["lrkit.torch", "lrkit.keras"])
def test_lazy_packages_list_and_resolve_their_names(
    package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if package == "lrkit.keras":
        if "keras" not in sys.modules:
            monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "jax"))
        pytest.importorskip("keras")
    else:
        pytest.importorskip("torch")
    mod = importlib.import_module(package)
    assert dir(mod) == sorted(mod.__all__)
    for name in mod.__all__:
        assert getattr(mod, name) is not None


# ----------------------------------------------------------------------------- the extras


def _require_calls() -> list[tuple[str, str | None, str]]:
    """``(file, module, extra)`` of every ``require``, ``install_hint`` and ``install_note``
    call in the package that names both as constants, and ``(file, None, extra)`` of every
    ``install_command(extra)``."""
    calls: list[tuple[str, str | None, str]] = []
    for path in sorted((SRC / "lrkit").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            args = [a.value for a in node.args if isinstance(a, ast.Constant)]
            if len(args) != len(node.args):
                continue
            where = str(path.relative_to(SRC))
            if node.func.id in ("require", "install_hint", "install_note") and len(args) == 2:
                calls.append((where, args[0], args[1]))
            elif node.func.id == "install_command" and len(args) == 1:
                calls.append((where, None, args[0]))
    return calls


def _extras() -> dict[str, set[str]]:
    """Each extra of pyproject.toml -> the distributions it installs (nested extras expanded)."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def names(extra: str, seen: frozenset[str] = frozenset()) -> set[str]:
        out: set[str] = set()
        for req in table[extra]:
            m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(\[([^\]]*)\])?", req)
            assert m, req
            dist = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            if dist == "lrkit":
                for inner in (m.group(3) or "").split(","):
                    if inner.strip() and inner.strip() not in seen:
                        out |= names(inner.strip(), seen | {extra})
            else:
                out.add(dist)
        return out

    return {extra: names(extra) for extra in table}


def test_every_hint_names_an_extra_that_installs_the_module() -> None:
    calls = _require_calls()
    assert len(calls) >= 10, calls
    extras = _extras()
    dists = packages_distributions()
    assert {(w, e) for w, m, e in calls if m is None} >= {("lrkit/keras/__init__.py", "keras")}
    for where, module, extra in calls:
        assert extra in extras, f"{where}: require({module!r}, {extra!r}): no extra {extra!r}"
        if module is None:
            continue
        providers = {re.sub(r"[-_.]+", "-", d).lower() for d in dists.get(module.split(".")[0], [])}
        if providers:  # installed here: the extra must install a distribution providing it
            assert providers & extras[extra], f"{where}: lrkit[{extra}] does not install {module}"


def test_install_lines_are_written_by_the_helper_only() -> None:
    """No message outside ``lrkit._imports`` spells an install line itself (docstrings may)."""
    found = []
    for path in sorted((SRC / "lrkit").rglob("*.py")):
        if path.name == "_imports.py" and path.parent.name == "lrkit":
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and re.search(r"pip install|not installed", node.value)
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value!r}")
    allowed = {  # not an optional package of lrkit: a database driver the URL names
        "the database driver is not installed (",
    }
    assert [f for f in found if not any(a in f for a in allowed)] == []


def test_the_all_extra_holds_every_other_extra() -> None:
    extras = _extras()
    everything = set().union(*(v for k, v in extras.items() if k not in ("all", "dev", "docs")))
    assert extras["all"] == everything
    assert {"lightning", "hf", "torch", "jax", "keras", "tune", "plot", "lrfree"} <= set(extras)
    assert _imports.__all__ == [
        "install_command",
        "install_hint",
        "install_note",
        "lazy_exports",
        "optional",
        "require",
    ]


def _imported_packages(script: Path) -> set[str]:
    """The top-level packages a script imports (outside the standard library and lrkit)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(script.read_text(), str(script))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "lrkit"}


def test_examples_name_extras_that_install_what_they_import() -> None:
    """An example's ``pip install 'lrkit[...]' [packages]`` line names extras (and packages
    beside them) that install every package it imports (besides lrkit's own dependencies):
    scikit-learn's digits need ``demo`` with Keras and optax."""
    extras = _extras()
    core = {
        re.sub(r"[-_.]+", "-", re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0]).lower()
        for req in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    dists = packages_distributions()
    checked = []
    for path in sorted((ROOT / "examples").glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(), str(path))) or ""
        named = re.search(r"pip install 'lrkit\[([\w,-]+)\]'((?:[ \t]+[A-Za-z][\w.-]*)*)", doc)
        if named is None:
            continue
        beside = {re.sub(r"[-_.]+", "-", p).lower() for p in named.group(2).split()}
        for package in list(beside):  # and what they install (hydra-core: omegaconf)
            with contextlib.suppress(PackageNotFoundError):
                beside |= {
                    re.sub(r"[-_.]+", "-", re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0]).lower()
                    for r in requires(package) or []
                    if "extra ==" not in r
                }
        installed = core.union(beside, *(extras[e] for e in named.group(1).split(",")))
        for module in sorted(_imported_packages(path)):
            providers = {re.sub(r"[-_.]+", "-", d).lower() for d in dists.get(module, [])}
            if providers:  # installed here: one of the named extras installs it
                assert providers & installed, f"{path.name}: {named.group(0)} misses {module}"
        checked.append(path.name)
    assert {"keras_schedule.py", "optax_schedule.py", "tune_lr.py"} <= set(checked), checked


@pytest.mark.parametrize("module", ["lrkit.lightning", "lrkit.hf"])
def test_a_package_blocked_with_none_in_sys_modules_gives_the_hint_too(module: str) -> None:
    """``sys.modules[name] = None`` (how a test hides a package) reads as missing."""
    import subprocess
    import sys

    if module == "lrkit.lightning" and importlib.util.find_spec("lightning") is not None:
        pytest.skip("the lightning package would stand in for pytorch_lightning")
    code = (
        "import sys\n"
        "for name in ('pytorch_lightning', 'transformers'):\n"
        "    sys.modules[name] = None\n"
        f"import {module}\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    extra = module.split(".")[1]
    assert re.fullmatch(
        rf"ImportError: lrkit\.{extra} needs [\w.]+: pip install 'lrkit\[{extra}\]'", last
    ), last
