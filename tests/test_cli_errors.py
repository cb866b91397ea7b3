"""Every sub-command with bad paths and values: a one-line error naming the option, no
traceback, exit code 2, and no work started (outputs are checked before anything runs), so
nothing computed is lost. Also: Ctrl-C, secrets in storage URLs, unbounded plots."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lrkit.cli import main

TASK = textwrap.dedent(
    """
    import math
    import pathlib

    import torch

    CALLS = pathlib.Path(__file__).with_name("calls.txt")

    def _data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=g)
        y = (x[:, 0] > 0).long()
        return [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]

    def make():
        with CALLS.open("a") as f:
            f.write("x")
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, torch.nn.functional.cross_entropy, _data()

    def make_nan():
        model, opt, _, data = make()
        return model, opt, (lambda out, y: out.sum() * math.nan), data

    def tune_task():
        with CALLS.open("a") as f:
            f.write("x")
        from lrkit.tune import Task

        def train(schedule, report):
            return float(schedule(0))

        return Task(train=train, total_steps=20)

    def tune_interrupted():
        from lrkit.tune import Task

        def train(schedule, report):
            raise KeyboardInterrupt

        return Task(train=train, total_steps=20)

    def tune_diverges():
        from lrkit.tune import Task

        def train(schedule, report):
            return math.inf if schedule(0) > 1e-3 else float(schedule(0))

        return Task(train=train, total_steps=20)
    """
)


@pytest.fixture
def task(tmp_path, monkeypatch):
    (tmp_path / "lrkit_err_task.py").write_text(TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield "lrkit_err_task"
    sys.modules.pop("lrkit_err_task", None)


def _calls(tmp_path: Path) -> int:
    f = tmp_path / "calls.txt"
    return len(f.read_text()) if f.exists() else 0


def _one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error:" in lines[0], err
    assert len(lines[0]) < 400, lines[0]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def _bad_paths(tmp_path: Path) -> list[tuple[list[str], str]]:
    folder = tmp_path / "a_folder"
    folder.mkdir(exist_ok=True)
    return [
        (["-o", str(folder)], "is a folder"),
        (["-o", str(tmp_path / "missing" / "x.png")], "does not exist"),
        (["-o", str(tmp_path / "noext")], "no extension"),
        (["-o", str(tmp_path / "x.unknownext")], "unknown file type"),
        (["--json", str(folder)], "is a folder"),
        (["--json", str(tmp_path / "missing" / "r.json")], "does not exist"),
    ]


@pytest.mark.parametrize("command", ["find", "compare"])
def test_torch_commands_check_outputs_before_any_work(command, task, tmp_path, capsys):
    pytest.importorskip("torch")
    for argv, words in _bad_paths(tmp_path):
        rc = main([command, f"{task}:make", "--quiet", *argv])
        assert rc == 2, argv
        _one_line_error(capsys, argv[0], words)
        assert _calls(tmp_path) == 0, f"{argv}: the task was built before the paths were checked"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".png", ".json")) == []


@pytest.mark.parametrize(
    "command, argv, option",
    [
        ("find", ["--seed", "-1"], "--seed"),
        ("find", ["--train-steps", "1"], "--train-steps"),
        ("find", ["--num-iter", "0"], "--num-iter"),
        ("find", ["--start-lr", "0"], "--start-lr"),
        ("find", ["--start-lr", "1", "--end-lr", "0.5"], "--end-lr"),
        ("compare", ["--steps", "3"], "--steps"),
        ("compare", ["--finder-iter", "1"], "--finder-iter"),
        ("compare", ["--methods", "fixed,nonsense"], "methods"),
        ("compare", ["--seed", str(2**32)], "--seed"),
    ],
)
def test_torch_commands_bad_values(command, argv, option, task, tmp_path, capsys):
    pytest.importorskip("torch")
    assert main([command, f"{task}:make", "--quiet", "--no-plot", *argv]) == 2
    _one_line_error(capsys, option)
    assert _calls(tmp_path) == 0


@pytest.mark.parametrize("command", ["find", "compare"])
@pytest.mark.parametrize("target", ["not_a_target", "lrkit_err_task:missing", "no_such_mod:f"])
def test_torch_commands_bad_targets(command, target, task, capsys):
    pytest.importorskip("torch")
    assert main([command, target, "--quiet", "--no-plot"]) == 2
    _one_line_error(capsys)


def test_find_on_a_nan_loss_still_writes_the_json_asked_for(task, tmp_path, capsys):
    pytest.importorskip("torch")
    js, png = tmp_path / "r.json", tmp_path / "r.png"
    rc = main(["find", f"{task}:make_nan", "--quiet", "--json", str(js), "-o", str(png)])
    captured = capsys.readouterr()
    assert rc == 1
    assert "no suggestion" in captured.err and "Traceback" not in captured.err
    data = json.loads(js.read_text())
    assert data["suggestion"] is None and data["stop_reason"]
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_find_ctrl_c_is_one_line_and_exit_130(task, monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    import lrkit.torch

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(lrkit.torch, "find_lr", interrupted)
    state = torch.get_rng_state()
    assert main(["find", f"{task}:make", "--quiet", "--no-plot"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is as it was


# ----------------------------------------------------------------------------- plot
DEEP = "mul(" * 3000 + "constant(0.1)" + ")" * 3000


@pytest.mark.parametrize(
    "argv, words",
    [
        (["cosine(0.1, 100)", "--width", "0"], ["--width"]),
        (["cosine(0.1, 100)", "--height", "1"], ["--height"]),
        (["cosine(0.1, 100)", "--steps", "0"], ["--steps"]),
        (["cosine(0.1, 100)", "--steps", str(10**20)], ["--steps"]),
        (["cosine(0.1, "], ["position 12", "end of input"]),
        ([DEEP], ["nested too deeply"]),
        (["constant(" + "1" * 5000 + ")"], ["position 9", "5000 digits"]),
        (["x" * 120_000], ["120000 characters"]),
        (["nosuch(1)"], ["position 0", "nosuch"]),
    ],
)
def test_plot_bad_values(argv, words, capsys):
    assert main(["plot", *argv]) == 2
    _one_line_error(capsys, *words)


def test_plot_bad_output_paths(tmp_path, capsys):
    for argv, words in _bad_paths(tmp_path):
        if argv[0] == "--json":
            continue
        assert main(["plot", "cosine(0.1, 100)", *argv]) == 2
        _one_line_error(capsys, "-o", words)


def test_plot_of_a_huge_schedule_is_bounded(tmp_path, capsys):
    from lrkit.schedules import parse
    from lrkit.textplot import MAX_POINTS, plot_steps

    steps = plot_steps(parse("cosine(0.1, 1000000000000)"))
    assert len(steps) == MAX_POINTS and steps[0] == 0 and steps[-1] == 10**12
    assert list(plot_steps(parse("cosine(0.1, 9)"))) == list(range(10))
    assert main(["plot", "onecycle(0.1, 100000000)", "--width", "40", "--height", "5"]) == 0
    out = capsys.readouterr().out
    assert f"{MAX_POINTS} of 100000001 steps drawn" in out
    png = tmp_path / "c.png"
    assert main(["plot", "cosine(0.1, 1000000000000)", "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_plot_title_holds_the_whole_spec(tmp_path):
    pytest.importorskip("matplotlib")
    from lrkit.commands import plot as P

    spec = "join([warmup(0, 0.1, 100), cosine(0.1, 900, eta_min=0.001)], [100])"
    png = tmp_path / "t.svg"
    import argparse

    args = argparse.Namespace(
        spec=spec, steps=None, output=str(png), log=False, width=72, height=16
    )
    assert P.run(args) == 0
    text = png.read_text()
    assert "eta_min=0.001" in text  # the full spec is in the title (wrapped), not cut


# ----------------------------------------------------------------------------- tune
@pytest.mark.parametrize(
    "argv, words",
    [
        (["--trials", "0"], ["--trials"]),
        (["--top", "0"], ["--top"]),
        (["--study", ""], ["--study"]),
        (["--families", "cosine,nope"], ["--families"]),
        (["--max-trials", "1", "--trials", "5"], ["--max-trials"]),
        (["--storage", "not-a-url"], ["storage"]),
        (["--storage", "sqlite:///"], ["in-memory"]),
        (["--storage", "nosuchdb://h/x"], ["storage", "cannot use the database"]),
        (["--plot", "noext"], ["--plot", "no extension"]),
        (["--plot", "missing/x.png"], ["--plot", "does not exist"]),
        (["--json", "."], ["--json", "is a folder"]),
    ],
)
def test_tune_bad_values(argv, words, task, tmp_path, capsys):
    pytest.importorskip("optuna")
    rc = main(["tune", f"{task}:tune_task", "--no-progress", "--seeding", "blind", *argv])
    assert rc == 2
    _one_line_error(capsys, *words)
    assert not list(tmp_path.glob("*.db"))


def test_tune_never_prints_the_password(task, tmp_path, capsys):
    pytest.importorskip("optuna")
    pytest.importorskip("psycopg2")
    url = "postgresql://alice:hunter2secret@127.0.0.1:1/lrkit"  # nothing listens on port 1
    assert main(["tune", f"{task}:tune_task", "--no-progress", "--storage", url]) == 2
    out, err = capsys.readouterr()
    assert "hunter2secret" not in out + err
    line = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(line) == 1 and "alice:***@127.0.0.1:1" in line[0] and "Traceback" not in err


def test_tune_shows_the_storage_masked(task, tmp_path, capsys):
    pytest.importorskip("optuna")
    url = f"sqlite:///{tmp_path / 's.db'}"
    rc = main(
        [
            "tune",
            f"{task}:tune_task",
            "--no-progress",
            "--trials",
            "2",
            "--storage",
            url,
            "--seeding",
            "blind",
            "--plot",
            "none",
            "--seed",
            "0",
        ]
    )
    assert rc == 0
    out, err = capsys.readouterr()
    assert url in out  # no password: shown as given


def test_tune_trials_means_complete_trials_or_a_nonzero_exit(task, tmp_path, capsys):
    optuna = pytest.importorskip("optuna")
    url = f"sqlite:///{tmp_path / 'd.db'}"
    common = [
        "tune",
        f"{task}:tune_diverges",
        "--no-progress",
        "--storage",
        url,
        "--plot",
        "none",
        "--seed",
        "0",
        "--lr-range",
        "1e-5",
        "1e-1",
        "--study",
        "d",
    ]
    js = tmp_path / "d.json"
    rc = main([*common, "--trials", "4", "--max-trials", "5", "--json", str(js)])
    err = capsys.readouterr().err
    study = optuna.load_study(study_name="d", storage=url)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if len(complete) < 4:
        assert rc == 1 and f"only {len(complete)} of 4 trials COMPLETE" in err
        assert "max-trials" in err and json.loads(js.read_text())["reached"] is False
    rc = main([*common, "--trials", "4", "--max-trials", "200", "--json", str(js)])
    study = optuna.load_study(study_name="d", storage=url)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert rc == 0 and len(complete) == 4
    data = json.loads(js.read_text())
    assert data["reached"] is True and data["complete"] == 4
    assert data["best"]["value"] == min(t.value for t in complete)  # full precision


def test_tune_ctrl_c_keeps_the_study_and_says_so(task, tmp_path, capsys):
    optuna = pytest.importorskip("optuna")
    url = f"sqlite:///{tmp_path / 'i.db'}"
    rc = main(
        [
            "tune",
            f"{task}:tune_interrupted",
            "--no-progress",
            "--storage",
            url,
            "--seeding",
            "blind",
            "--study",
            "i",
        ]
    )
    assert rc == 130
    err = capsys.readouterr().err
    assert len([ln for ln in err.splitlines() if "interrupted" in ln]) == 1
    assert "interrupted" in err and "run the same command" in err and "Traceback" not in err
    assert len(optuna.load_study(study_name="i", storage=url).trials) == 1


def test_no_traceback_through_the_real_entry_point(tmp_path):
    """The installed entry point path (``python -m lrkit.cli``), for two user mistakes."""
    import os

    import lrkit

    env = dict(os.environ, PYTHONPATH=str(Path(lrkit.__file__).parents[1]))
    for argv in (
        ["plot", "cosine(0.1, 100)", "--width", "0"],
        ["plot", "cosine(0.1, 100)", "-o", str(tmp_path)],
    ):
        p = subprocess.run(
            [sys.executable, "-m", "lrkit.cli", *argv],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        assert p.returncode == 2 and "Traceback" not in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv, words",
    [
        (["plot", "cosine(0.1, 10)", "--width", "abc"], ["--width", "lrkit plot --help"]),
        (["nosuch"], ["invalid choice"]),
        ([], ["COMMAND"]),
        (["find"], ["--demo"]),
    ],
)
def test_argparse_mistakes_are_one_line_too(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    _one_line_error(capsys, *words)


def test_storage_errors_are_one_line_and_masked():
    pytest.importorskip("optuna")
    from lrkit.tune._storage import storage_error

    url = "postgresql://alice:hunter2@db:5432/lrkit"
    inner = Exception(
        'connection to server at "db" failed: FATAL:  password authentication failed for '
        'user "alice"\nDETAIL: tried password hunter2 from ' + url
    )
    msg = str(storage_error(inner, url))
    assert "hunter2" not in msg and "\n" not in msg
    assert msg.startswith("storage postgresql://alice:***@db:5432/lrkit: cannot use the database")
    assert "password authentication failed" in msg


def test_mask_url():
    from lrkit._format import mask_url

    assert mask_url("postgresql://u:p@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("postgresql://u:p@w@h/db") == "postgresql://u:***@h/db"
    assert mask_url("postgresql://u@h/db?password=x&sslmode=require") == (
        "postgresql://u@h/db?password=***&sslmode=require"
    )
    assert mask_url("sqlite:///lrkit-tune.db") == "sqlite:///lrkit-tune.db"
    assert mask_url("not a url") == "not a url"
