"""Smoke tests of lrkit as installed from the wheel (run by .ci/run's packaging job).

    python .ci/smoke.py venv DIR [DIST ...]   a bare virtual environment (no pip, nothing else);
                                              DIST (e.g. torch): installed distributions of this
                                              interpreter, with what they depend on, are made
                                              visible in it (linked, not copied)
    DIR/bin/python .ci/smoke.py core          what `pip install lrkit` gives (no extras)
    DIR/bin/python .ci/smoke.py torch         what `pip install 'lrkit[torch]'` gives

Each check says what it checks; the first failure stops with exit code 1.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
from importlib import metadata
from pathlib import Path

HINT = "{who} needs {module}: pip install 'lrkit[{extra}]'"


def check(ok: object, what: str) -> None:
    if not ok:
        raise SystemExit(f"smoke: FAILED: {what}")
    print(f"  ok  {what}")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ----------------------------------------------------------------------------- environments


def _closure(names: list[str]) -> list[metadata.Distribution]:
    """The installed distributions ``names`` and, recursively, what they require."""
    from packaging.requirements import Requirement  # pip's and build's dependency

    todo, seen, out = list(names), set(), []
    while todo:
        name = _norm(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional or platform-specific requirement that is not installed
        out.append(dist)
        for req in dist.requires or []:
            r = Requirement(req)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r.name)
    return out


def make_venv(target: Path, expose: list[str]) -> None:
    """A bare venv at ``target``; ``expose``'s distributions linked into a path overlay."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    if not expose:
        return
    overlay = target / "overlay"
    overlay.mkdir()
    dists = _closure(expose)
    for dist in dists:
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in sorted(t for t in tops if t != ".." and not t.startswith("__pycache__")):
            if (base / top).exists() and not (overlay / top).exists():
                (overlay / top).symlink_to(base / top)
    out = subprocess.run(
        [
            str(target / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    Path(out.stdout.strip(), "_lrkit_smoke_overlay.pth").write_text(str(overlay) + "\n")
    print(f"venv {target}: sees {', '.join(sorted(d.metadata['Name'] for d in dists))}")


# ----------------------------------------------------------------------------- checks


def _run(*args: str, cwd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, timeout=600)


def _lrkit(*args: str, cwd: str) -> subprocess.CompletedProcess[str]:
    """The installed ``lrkit`` console script."""
    return _run(str(Path(sys.executable).parent / "lrkit"), *args, cwd=cwd)


def _installed_from_wheel() -> str:
    import lrkit

    where = Path(lrkit.__file__).resolve()
    check(
        where.is_relative_to(Path(sysconfig.get_path("purelib")).resolve()),
        f"lrkit is imported from this environment's site-packages ({where})",
    )
    check(metadata.version("lrkit") == lrkit.__version__, f"version {lrkit.__version__}")
    return lrkit.__version__


def _refusal(proc: subprocess.CompletedProcess[str], extra: str, what: str) -> None:
    err = proc.stderr.strip()
    check(
        proc.returncode == 2 and "Traceback" not in err and f"pip install 'lrkit[{extra}]'" in err,
        f"{what}: exit 2, one line naming lrkit[{extra}] ({err.splitlines()[-1] if err else ''})",
    )


def _hint(statement: str, expected: str) -> None:
    try:
        exec(statement, {})
    except ImportError as exc:
        check(str(exc) == expected, f"{statement!r}: {exc}")
    else:
        check(False, f"{statement!r} raises ImportError")


def smoke_core(tmp: str) -> None:
    print("core install (no extras):")
    version = _installed_from_wheel()
    names = sorted(_norm(d.metadata["Name"]) for d in metadata.distributions())
    check(set(names) <= {"lrkit", "numpy", "tqdm", "colorama"}, f"nothing else installed: {names}")

    import lrkit
    from lrkit.feedback import ReduceOnPlateau
    from lrkit.finder import range_test
    from lrkit.textplot import text_plot  # noqa: F401

    s = lrkit.parse("cosine(0.1, 100)")
    check(s(0) == 0.1 and s(100) == 0.0 and abs(s(50) - 0.05) < 1e-12, "parse + values")
    check(lrkit.from_dict(s.to_dict()) == s, "to_dict/from_dict round trip")
    check(lrkit.parse(str(s)) == s, "spec string round trip")
    one = lrkit.parse("onecycle(0.1, 100)")
    peak = max(one.values(range(100)))
    check(one(0) < peak and abs(peak - 0.1) < 1e-6, "one-cycle peaks at its max_lr")
    plateau = ReduceOnPlateau(patience=1, factor=0.5)
    check([plateau.update(x) for x in (1.0, 1.0, 1.0)] == [1.0, 1.0, 0.5], "reduce on plateau")
    result = range_test(
        lambda lr: 1.0 / (1.0 + 50 * lr) + (lr > 1.0) * lr**2, num_iter=60, warn=False
    )
    check(result.suggestion is not None, f"framework-free range test suggests {result.suggestion}")

    v = _lrkit("--version", cwd=tmp)
    check(v.returncode == 0 and v.stdout.strip() == f"lrkit {version}", "lrkit --version")
    m = _run(sys.executable, "-m", "lrkit", "--version", cwd=tmp)
    check(m.returncode == 0 and m.stdout.strip() == f"lrkit {version}", "python -m lrkit --version")
    p = _lrkit("plot", "cosine(0.1, 100)", cwd=tmp)
    check(p.returncode == 0 and "*" in p.stdout, "lrkit plot draws in the terminal")
    bad = _lrkit("plot", "cosine(", cwd=tmp)
    check(bad.returncode == 2 and "Traceback" not in bad.stderr, "lrkit plot: a bad spec, exit 2")
    _refusal(_lrkit("plot", "cosine(0.1, 100)", "-o", "x.png", cwd=tmp), "plot", "lrkit plot -o")
    _refusal(_lrkit("find", "--demo", cwd=tmp), "torch", "lrkit find --demo")
    _refusal(_lrkit("compare", "--demo", cwd=tmp), "torch", "lrkit compare --demo")
    _refusal(_lrkit("tune", "--demo", cwd=tmp), "tune", "lrkit tune --demo")

    torch_hint = HINT.format(who="lrkit.torch", module="torch", extra="torch")
    _hint("from lrkit.torch import find_lr", torch_hint)
    _hint("import lrkit.torch; lrkit.torch.scheduler", torch_hint)
    _hint("import lrkit.optax", HINT.format(who="lrkit.optax", module="jax", extra="jax"))
    _hint("import lrkit.keras", HINT.format(who="lrkit.keras", module="keras", extra="keras"))
    _hint(
        "import lrkit.tune; lrkit.tune.make_storage()",
        HINT.format(who="lrkit.tune", module="optuna", extra="tune"),
    )
    _hint(
        "import lrkit; lrkit.parse('cosine(0.1, 100)').plot()",
        HINT.format(who="Schedule.plot", module="matplotlib", extra="plot"),
    )
    for module, extra in (("lightning", "lightning"), ("hf", "hf")):
        if importlib.util.find_spec(f"lrkit.{module}") is not None:
            try:
                mod = importlib.import_module(f"lrkit.{module}")
                for n in getattr(mod, "__all__", []):
                    getattr(mod, n)
            except ImportError as exc:
                ok = str(exc).startswith(f"lrkit.{module} needs ")
                check(ok and str(exc).endswith(f"pip install 'lrkit[{extra}]'"), f"{exc}")
            else:
                check(False, f"lrkit.{module} raises the install hint")


def smoke_torch(tmp: str) -> None:
    print("lrkit[torch] install:")
    _installed_from_wheel()
    import torch

    check(torch.__version__.split("+")[0] == "2.13.0", f"torch {torch.__version__} (not replaced)")
    from lrkit.torch import scheduler

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = scheduler(opt, "cosine(0.1, 10)")
    lrs = []
    for _ in range(3):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    check(
        lrs[0] < 0.1 and lrs == sorted(lrs, reverse=True), f"lrkit.torch.scheduler drives SGD {lrs}"
    )
    f = _lrkit("find", "--demo", "--no-train", cwd=tmp)
    out = f.stdout.strip().splitlines()
    check(f.returncode == 0 and "Traceback" not in f.stderr, "lrkit find --demo --no-train: exit 0")
    print("\n".join("      " + line for line in out[-12:]))


def main(argv: list[str]) -> int:
    if argv[:1] == ["venv"] and len(argv) >= 2:
        make_venv(Path(argv[1]), argv[2:])
        return 0
    if argv not in (["core"], ["torch"]):
        print(__doc__, file=sys.stderr)
        return 2
    os.environ.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory() as tmp:
        (smoke_core if argv == ["core"] else smoke_torch)(tmp)
    print("smoke: all checks passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
