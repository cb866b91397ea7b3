"""What the commands share: one ``--json`` writer, a quiet end when the reader of the output
goes away, and the name the compare demo gives its task."""

from __future__ import annotations

import json

import pytest

from lrkit.commands._target import Printer, write_json


def test_write_json_writes_full_precision_and_says_once_when_it_cannot(tmp_path, capsys) -> None:
    path = tmp_path / "r.json"
    assert write_json("find", str(path), {"lr": 0.1 + 0.2}, out=Printer()) is False
    assert json.loads(path.read_text()) == {"lr": 0.30000000000000004}
    missing = tmp_path / "gone" / "r.json"
    assert write_json("compare", str(missing), {"a": 1}, out=Printer()) is True
    assert capsys.readouterr().err.splitlines() == [
        f"lrkit compare: error: --json {str(missing)!r}: could not write the file: "
        f"FileNotFoundError: [Errno 2] No such file or directory: {str(missing)!r}"
    ]


def test_the_compare_demo_names_its_base_optimizer(capsys) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from lrkit.cli import main
    from lrkit.compare import demo_factory

    name = "demo: digits MLP 64-128-64-10, SGD(momentum=0.9) (1348 train / 449 val)"
    assert demo_factory(seed=0).name == name  # type: ignore[attr-defined]
    argv = ["compare", "--demo", "--methods", "fixed", "--steps", "10", "--finder-iter", "10"]
    assert main([*argv, "--no-plot", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"lrkit compare: {name}; 1 method x 10 steps, seed 0"
    assert "*fixed        SGD  " in out


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    import subprocess
    import sys

    # 500 rows of 1000 characters: far more than a pipe holds, so the write meets the closed
    # pipe (as `lrkit plot ... | head -1` does)
    argv = ["plot", "cosine(0.1, 100)", "--height", "500", "--width", "1000"]
    p = subprocess.Popen(
        [sys.executable, "-m", "lrkit", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None and p.stderr is not None
    assert p.stdout.readline() == "cosine(lr=0.1, total_steps=100, eta_min=0.0)\n"
    p.stdout.close()
    assert p.wait(timeout=60) == 141
    assert p.stderr.read() == ""


def test_json_to_a_closed_standard_output_ends_the_command_quietly(tmp_path) -> None:
    """``lrkit find --demo --json /dev/stdout | head -1``: the JSON meets the closed pipe as
    the printed text does, exit code 141 and nothing on stderr (no "could not write")."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # the reader went away before anything was written
    try:
        p = subprocess.run(
            [sys.executable, "-m", "lrkit", "find", "--demo", "--no-plot", "--num-iter", "20"]
            + ["--json", "/dev/stdout"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
    finally:
        os.close(write)
    assert (p.returncode, p.stderr) == (141, "")


@pytest.mark.skipif(not __import__("os").path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("command", ["plot", "find"])
def test_a_standard_output_that_cannot_be_written_is_one_line_and_the_files_are_written(
    tmp_path, command
) -> None:
    """Standard output on a full disk (``/dev/full``): one line on stderr, exit code 1, no
    traceback; ``lrkit find`` still writes the ``--json`` it was asked for."""
    import subprocess
    import sys

    argv = {
        "plot": ["plot", "cosine(0.1, 10)"],
        "find": [
            "find",
            "--demo",
            "--no-train",
            "--no-plot",
            "--num-iter",
            "20",
            "--json",
            "r.json",
        ],
    }[command]
    with open("/dev/full", "w") as full:
        p = subprocess.run(
            [sys.executable, "-m", "lrkit", *argv],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
    assert (p.returncode, p.stderr) == (
        1,
        f"lrkit {command}: error: cannot write to the standard output: [Errno 28] No space "
        "left on device\n",
    )
    if command == "find":
        assert json.loads((tmp_path / "r.json").read_text())["suggestion"] > 0
