"""What the commands share: one ``--json`` writer, a quiet end when the reader of the output
goes away, and the name the compare demo gives its task."""

from __future__ import annotations

import argparse
import json
import random
import sys
import warnings

import pytest

from lrkit.commands._target import (
    OutputFailed,
    Printer,
    TargetError,
    cannot_write,
    check_batches,
    check_distinct,
    naming,
    preserved_global_state,
    print_error,
    report_target_error,
    show_progress,
    show_warnings,
    typed,
    write_json,
)


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


class _Terminal:
    """A standard error that reads as a terminal (or fails to say, when ``fails``)."""

    def __init__(self, fails: bool = False) -> None:
        self.fails = fails

    def isatty(self) -> bool:
        if self.fails:
            raise ValueError("I/O operation on closed file")
        return True


def test_progress_bars_only_on_a_terminal_without_quiet_or_no_progress(monkeypatch) -> None:
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert show_progress(argparse.Namespace(quiet=False, no_progress=False)) is True
    assert show_progress(argparse.Namespace(quiet=False, no_progress=True)) is False
    assert show_progress(argparse.Namespace(quiet=True, no_progress=False)) is False
    assert show_progress(argparse.Namespace()) is True  # a command without the options
    monkeypatch.setattr(sys, "stderr", _Terminal(fails=True))
    assert show_progress(argparse.Namespace(quiet=False, no_progress=False)) is False


def test_write_json_writes_an_indented_text_file_ending_a_line(tmp_path) -> None:
    path = tmp_path / "r.json"
    assert write_json("tune", str(path), {"a": [1, None]}, out=Printer()) is False
    assert path.read_text() == '{\n "a": [\n  1,\n  null\n ]\n}\n'


def test_write_json_to_a_reader_gone_away_marks_the_output_closed(monkeypatch) -> None:
    from lrkit.commands import _target

    def gone(path, text):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(_target, "write_text_whole", gone)
    out = Printer()
    assert write_json("tune", "/dev/stdout", {"a": 1}, out=out) is False
    assert out.closed is True
    with pytest.raises(BrokenPipeError):
        out.check()


def test_a_printer_whose_write_fails_stops_printing_and_says_why(monkeypatch, capsys) -> None:
    out = Printer()
    out("first")
    out.check()  # nothing went wrong: nothing raised
    assert capsys.readouterr().out == "first\n"
    calls = []

    def full(*args, **kwargs):
        calls.append(args)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("builtins.print", full)
    out("second")
    out("third")  # not tried again
    assert calls == [("second",)]
    with pytest.raises(OutputFailed, match=r"^cannot write to the standard output: \[Errno 28\]"):
        out.check()


def test_warnings_already_shown_are_left_out(recwarn) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            warnings.warn_explicit("loss is big", UserWarning, "task.py", 7)
        warnings.warn_explicit("loss is big", UserWarning, "task.py", 8)
    shown: set = set()
    show_warnings(caught, shown=shown)
    assert [(str(w.message), w.lineno) for w in recwarn] == [("loss is big", 7), ("loss is big", 8)]
    assert shown == {
        ("loss is big", UserWarning, "task.py", 7),
        ("loss is big", UserWarning, "task.py", 8),
    }
    show_warnings(caught, shown=shown)  # shown before: none again
    assert len(recwarn) == 2


def test_check_distinct_compares_every_pair_of_outputs(tmp_path) -> None:
    check_distinct({"--json": "a.json", "--plot": None, "-o": "b.png"})
    said = "--json 'a.json' and -o 'a.json' are the same file: give each its own"
    for outputs in (
        {"--json": "a.json", "--plot": "b.png", "-o": "a.json"},
        {"--plot": "b.png", "--json": "a.json", "-o": "a.json"},
    ):
        with pytest.raises(ValueError) as info:
            check_distinct(outputs)
        assert str(info.value) == said


def test_check_distinct_sees_a_hard_link_as_the_same_file(tmp_path) -> None:
    image = tmp_path / "curve.png"
    image.write_bytes(b"an earlier plot")
    (tmp_path / "r.json").hardlink_to(image)
    outputs = {"-o/--output": str(image), "--json": str(tmp_path / "r.json")}
    with pytest.raises(ValueError) as info:
        check_distinct(outputs)
    assert str(info.value) == (
        f"-o/--output {str(image)!r} and --json {str(tmp_path / 'r.json')!r} are the same "
        "file: give each its own"
    )


def test_check_batches_leaves_a_loaders_own_generator_where_it_was() -> None:
    """Reading a shuffled loader's first batch draws from its generator: put back, so the
    runs read the batches they would have read unchecked."""
    torch = pytest.importorskip("torch")
    x = torch.arange(16.0).reshape(8, 2)
    generator = torch.Generator().manual_seed(3)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, torch.zeros(8)),
        batch_size=4,
        shuffle=True,
        generator=generator,
    )
    before = generator.get_state()
    check_batches(loader)
    assert torch.equal(generator.get_state(), before)


def test_cannot_write_names_the_option_the_file_and_the_errors_first_line(capsys) -> None:
    assert cannot_write("tune", option="--plot", path="a.png", error=OSError("full\nmore")) is True
    assert cannot_write("find", option="--json", path="r.json", error=RuntimeError("")) is True
    assert capsys.readouterr().err.splitlines() == [
        "lrkit tune: error: --plot 'a.png': could not write the file: OSError: full",
        "lrkit find: error: --json 'r.json': could not write the file: RuntimeError",
    ]


def test_an_error_of_the_target_is_one_line_with_every_line_of_its_message(capsys) -> None:
    err = TargetError("m:f", error=ValueError("line one\n  line two\n"), during="a trial")
    assert report_target_error("tune", err=err, show_traceback=False) == 1
    assert capsys.readouterr().err.splitlines() == [
        "lrkit tune: error in target 'm:f' during a trial: ValueError: line one / line two "
        "(--traceback shows the full traceback)"
    ]


def test_the_errors_of_a_command_mask_the_password_typed(capsys) -> None:
    url = "postgresql://u:secretpw@h/db"
    args = argparse.Namespace(storage=url, lr_range=[0.1, 1.0], other=["x", url])
    print_error("tune", f"cannot open {url}", args)
    assert capsys.readouterr().err == "lrkit tune: error: cannot open postgresql://u:***@h/db\n"
    assert typed(argparse.Namespace(a="x", b=["y", 1], c=("z",), d=3)) == ["x", "y", "z"]


def test_a_message_that_names_the_target_is_not_led_by_it_again() -> None:
    assert naming("m:f", "x") == "target 'm:f': x"
    assert naming("m:f", ValueError("target 'm:f': x")) == "target 'm:f': x"


def test_the_global_state_a_command_changed_is_put_back(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    path = list(sys.path)
    random.seed(1)
    expected = random.random()
    random.seed(1)
    with preserved_global_state():
        sys.path.insert(0, str(tmp_path))
        torch.set_num_threads(threads + 1)
        random.random()
    assert (sys.path, torch.get_num_threads(), random.random()) == (path, threads, expected)


def test_an_error_raised_in_code_the_target_execs_is_placed_at_the_target_s_line(
    tmp_path, monkeypatch, capsys
) -> None:
    """A frame of code given to ``exec`` has no file: the place shown is the innermost
    frame of the target's own file, relative to the folder the command runs in."""
    import importlib.util

    (tmp_path / "task_exec.py").write_text("def f():\n    exec(\"raise ValueError('x')\")\n")
    spec = importlib.util.spec_from_file_location("task_exec", tmp_path / "task_exec.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as caught:
        module.f()
    err = TargetError("task_exec:f", error=caught.value, during="")
    assert report_target_error("find", err=err, show_traceback=False) == 1
    assert capsys.readouterr().err.splitlines() == [
        "lrkit find: error in target 'task_exec:f': ValueError: x "
        "(at task_exec.py:2 in f; --traceback shows the full traceback)"
    ]
