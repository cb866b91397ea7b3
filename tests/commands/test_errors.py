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

    def tuple_linear():
        data = _data()
        return (lambda: torch.nn.Linear(4, 2)), torch.nn.functional.cross_entropy, data, data

    def tuple_instance():  # a model where its factory belongs
        data = _data()
        return torch.nn.Linear(4, 2), torch.nn.functional.cross_entropy, data, data

    def tuple_mlp():
        data = _data()
        model = lambda: torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                                            torch.nn.Linear(8, 2))
        return model, torch.nn.functional.cross_entropy, data, data

    def make_groups():  # two param groups at lrs of their own, no optimizer lr
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
        opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.01},
                               {"params": model[1].parameters(), "lr": 0.1}])
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

    def tune_interrupted_loading():
        raise KeyboardInterrupt  # Ctrl-C while the target loads its data

    def tune_interrupted_range_test():
        from lrkit.tune import Task

        def range_test():
            raise KeyboardInterrupt  # Ctrl-C in a new study's range test

        return Task(train=lambda s, r: 1.0, total_steps=20, range_test=range_test)

    def tune_interrupted():
        from lrkit.tune import Task

        def train(schedule, report):
            raise KeyboardInterrupt

        return Task(train=train, total_steps=20)

    def tune_slow():
        import time

        from lrkit.tune import Task

        def train(schedule, report):
            CALLS.with_name("started.txt").write_text("x")
            for _ in range(600):  # until the test's SIGTERM
                time.sleep(0.1)
            return 1.0

        return Task(train=train, total_steps=20)

    def tune_diverges():
        from lrkit.tune import Task

        def train(schedule, report):
            return math.inf if schedule(0) > 1e-3 else float(schedule(0))

        return Task(train=train, total_steps=20)

    class Broken(torch.nn.Module):
        def __init__(self, exc):
            super().__init__()
            self.lin = torch.nn.Linear(4, 2)
            self.exc = exc

        def forward(self, x):
            raise self.exc("the user's model failed")  # USER LINE

    def make_value_error():
        model, opt, loss_fn, data = make()
        model = Broken(ValueError)
        return model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn, data

    def make_runtime_error():
        model, opt, loss_fn, data = make()
        model = Broken(RuntimeError)
        return model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn, data

    def make_raises():
        raise ValueError("the user's factory failed")

    def make_loss_calls_lrkit():
        model, opt, loss_fn, data = make()

        def loss(out, y):
            from lrkit.schedules import constant

            constant(-1.0)  # LRKIT CALL: lrkit's error, raised for the user's call
            return loss_fn(out, y)

        return model, opt, loss, data

    def tune_raises():
        from lrkit.tune import Task

        def train(schedule, report):
            raise ValueError("the user's train failed")

        return Task(train=train, total_steps=20)

    def tune_returns_none():
        from lrkit.tune import Task

        return Task(train=lambda schedule, report: None, total_steps=20)

    def tune_returns_text():
        from lrkit.tune import Task

        return Task(train=lambda schedule, report: "0.5", total_steps=20)

    def tune_too_long():
        from lrkit.tune import Task

        return Task(train=lambda schedule, report: 0.5, total_steps=10**17)

    def make_bad_val():
        return (*make(), [(1, 2, 3)])

    def make_empty_val():
        return (*make(), [])

    def make_bad_later():
        model, opt, loss_fn, data = make()
        batches = list(data)
        return model, opt, loss_fn, (b for b in [*batches, (*batches[0], batches[0][1])])
    """
)
USER_LINE = next(i for i, ln in enumerate(TASK.splitlines(), 1) if "# USER LINE" in ln)
LRKIT_CALL = next(i for i, ln in enumerate(TASK.splitlines(), 1) if "# LRKIT CALL" in ln)


@pytest.fixture
def task(tmp_path, monkeypatch, write_module):
    pytest.importorskip("torch")  # the task module trains a PyTorch model
    monkeypatch.chdir(tmp_path)
    return write_module("lrkit_err_task", TASK)


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
        ("find", ["--train-steps", "0"], "--train-steps"),
        ("find", ["--num-iter", "0"], "--num-iter"),
        ("find", ["--start-lr", "0"], "--start-lr"),
        ("find", ["--start-lr", "1", "--end-lr", "0.5"], "--end-lr"),
        ("compare", ["--steps", "3"], "--steps"),
        ("compare", ["--finder-iter", "1"], "--finder-iter"),
        ("compare", ["--finder-iter", "200000"], "--finder-iter"),
        ("compare", ["--methods", "fixed,nonsense"], "methods"),
        ("compare", ["--seed", str(2**32)], "--seed"),
    ],
)
def test_torch_commands_bad_values(command, argv, option, task, tmp_path, capsys):
    pytest.importorskip("torch")
    assert main([command, f"{task}:make", "--quiet", "--no-plot", *argv]) == 2
    _one_line_error(capsys, option)
    assert _calls(tmp_path) == 0


@pytest.mark.parametrize("command", ["find", "compare", "tune"])
@pytest.mark.parametrize("name", ["lrkit_err_task.py", "notes.ipynb", "link.json"])
def test_json_over_a_file_of_code_is_refused_before_any_work(command, name, task, tmp_path, capsys):
    """``--json`` naming the target's own module (the arguments mixed up), a notebook, or a
    link to the module: one line, exit 2, the file as it was, nothing run."""
    pytest.importorskip("optuna")
    (tmp_path / "notes.ipynb").write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "lrkit_err_task.py")
    before = (tmp_path / name).read_bytes()
    extra = ["--trials", "1", "--plot", "none"] if command == "tune" else ["--no-plot"]
    assert main([command, f"{task}:make", "--quiet", *extra, "--json", name]) == 2
    _one_line_error(capsys, "--json", "a file of code", "give another file name")
    assert (tmp_path / name).read_bytes() == before
    assert _calls(tmp_path) == 0
    assert not list(tmp_path.glob("*.db"))


@pytest.mark.parametrize("command", ["find", "compare"])
@pytest.mark.parametrize("target", ["not_a_target", "lrkit_err_task:missing", "no_such_mod:f"])
def test_torch_commands_bad_targets(command, target, task, capsys):
    pytest.importorskip("torch")
    assert main([command, target, "--quiet", "--no-plot"]) == 2
    _one_line_error(capsys)


@pytest.mark.parametrize("command", ["find", "compare"])
def test_param_groups_a_schedule_cannot_drive_are_refused_before_any_work(command, task, capsys):
    """Every group at an lr of its own and the optimizer's lr left at its default: the
    suggestions and the runs need the lr the groups are relative to; one line, exit 2,
    before the range test."""
    argv = [command, f"{task}:make_groups", "--quiet", "--no-plot"]
    assert main(argv + (["--steps", "10"] if command == "compare" else [])) == 2
    out = capsys.readouterr()
    assert "range test" not in out.out and "Traceback" not in out.err
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    assert len(lines) == 1, out.err
    assert "every param group sets its own lr (0.01, 0.1)" in lines[0]
    assert "SGD's default 0.001" in lines[0] and "pass lr= to the optimizer" in lines[0]
    assert "scheduler(" not in lines[0]  # no advice on the Python API


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
    assert "see the plot" in captured.err
    # without a plot the line points to none
    assert main(["find", f"{task}:make_nan", "--quiet", "--no-plot"]) == 1
    err = capsys.readouterr().err
    assert "no suggestion" in err and "plot" not in err and len(err.strip().splitlines()) == 1


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


def test_ctrl_c_while_the_command_line_is_read_is_one_line_and_exit_130(monkeypatch, capsys):
    """Ctrl-C before the command runs (lrkit and the command modules importing, the options
    parsed): a short note, status 130, no traceback."""
    import lrkit.cli

    def interrupted(argv=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(lrkit.cli, "build_parser", interrupted)
    assert main(["plot", "cosine(0.1, 10)"]) == 130
    assert capsys.readouterr().err == "\nlrkit: interrupted\n"


def test_the_entry_point_module_imports_only_the_standard_library():
    """What runs before ``main`` can catch Ctrl-C (the console script's ``from lrkit.cli
    import main``) imports no numpy and none of lrkit's schedules: a few milliseconds."""
    import os

    import lrkit

    env = dict(os.environ, PYTHONPATH=str(Path(lrkit.__file__).parents[1]))
    code = (
        "import sys; import lrkit.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lrkit', 'numpy')))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert p.stdout.strip() == "['lrkit', 'lrkit._imports', 'lrkit.cli']", p.stderr


def test_find_ctrl_c_during_the_probes_prints_and_writes_the_sweeps_result(
    task, monkeypatch, capsys, tmp_path
):
    pytest.importorskip("torch")
    import lrkit.torch
    from lrkit.finder import range_test

    sweep = range_test(lambda lr: (lr - 0.01) ** 2 + 1.0, warn=False)

    def interrupted(*a, **k):
        exc = KeyboardInterrupt()
        exc.result = sweep  # what the finder attaches when the probes are interrupted
        raise exc

    monkeypatch.setattr(lrkit.torch, "find_lr", interrupted)
    saved = tmp_path / "lr.json"
    assert main(["find", f"{task}:make", "--no-plot", "--json", str(saved)]) == 130
    out, err = capsys.readouterr()
    assert f"range test: {sweep.steps} steps, interrupted during the probes" in out
    written = json.loads(saved.read_text())  # the sweep's result, said to be cut
    assert written["interrupted"] is True and written["interrupted_during"] == "probes"
    assert written["suggestion"] == sweep.suggestion and written["probes"] is None
    assert f"{sweep.suggestion:.3g}" in out and "budget_edge" in out
    assert err.strip() == "lrkit find: interrupted"


def test_find_ctrl_c_during_the_sweep_prints_and_writes_the_steps_run(
    task, monkeypatch, capsys, tmp_path
):
    pytest.importorskip("torch")
    import lrkit.torch

    real = lrkit.torch.find_lr

    def interrupted(*a, **k):
        def stop(i, lr, loss):
            if i == 40:
                raise KeyboardInterrupt

        return real(*a, **k, callback=stop)

    monkeypatch.setattr(lrkit.torch, "find_lr", interrupted)
    saved, image = tmp_path / "lr.json", tmp_path / "lr.png"
    assert main(["find", f"{task}:make", "--json", str(saved), "-o", str(image)]) == 130
    out, err = capsys.readouterr()
    assert "range test: 41 steps, interrupted during the sweep" in out
    # the steps run are written, and read back as they were measured
    from lrkit.finder import FinderResult

    written = json.loads(saved.read_text())
    assert written["interrupted"] is True and written["interrupted_during"] == "sweep"
    kept = FinderResult.from_dict(written)
    assert kept.stop_reason == "interrupted" and kept.steps == 41 and not kept.reliable
    assert image.read_bytes()[:4] == b"\x89PNG"
    assert "reliable: NO" in out
    # the warnings the table points to follow it
    said = [line for line in out.splitlines() if line.startswith("  warning: LR range test: ")]
    assert said and any("interrupted" in line for line in said)
    assert err.strip() == "lrkit find: interrupted"


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
        ([DEEP], ["position 400", "nested more than 100 deep"]),
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
        spec=spec, steps=None, output=str(png), log=False, width=None, height=None
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
        (["--storage", "sqlite:///missing/s.db"], ["--storage", "missing", "does not exist"]),
        (["--plot", "noext"], ["--plot", "no extension"]),
        (["--plot", "missing/x.png"], ["--plot", "does not exist"]),
        (["--json", "."], ["--json", "is a folder"]),
    ],
)
def test_tune_bad_values(argv, words, task, tmp_path, capsys):
    pytest.importorskip("optuna")
    seeding = [] if "--lr-range" in argv else ["--seeding", "blind"]  # one or the other
    rc = main(["tune", f"{task}:tune_task", "--no-progress", *seeding, *argv])
    assert rc == 2
    _one_line_error(capsys, *words)
    assert not list(tmp_path.glob("*.db"))


@pytest.fixture
def read_only_cwd(tmp_path, monkeypatch):
    """The working folder (tmp_path), where the default plots go, reads as not writable
    (root writes anywhere: os.access is what the commands ask)."""
    import os

    real = os.access
    here = os.path.realpath(tmp_path)

    def access(path, mode, **kw):
        if mode == os.W_OK and os.path.realpath(path) == here:
            return False
        return real(path, mode, **kw)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "access", access)


def test_tune_checks_the_default_plot_before_any_trial(task, tmp_path, capsys, read_only_cwd):
    pytest.importorskip("optuna")
    db = tmp_path / "store"
    db.mkdir()
    rc = main(["tune", f"{task}:tune_task", "--no-progress", "--seeding", "blind",
               "--storage", f"sqlite:///{db / 's.db'}"])  # fmt: skip
    assert rc == 2
    _one_line_error(capsys, "--plot", "lrkit-tune-", "is not writable", "--plot none")
    assert not list(db.iterdir())  # refused before the study was created


@pytest.mark.parametrize("command", ["find", "compare"])
def test_the_default_plot_in_a_read_only_folder_says_it_is_the_default(
    command, capsys, read_only_cwd
):
    assert main([command, "--demo", "--quiet"]) == 2
    line = _one_line_error(capsys, f"-o/--output 'lrkit_{command}.png'", "is not writable")
    assert line.endswith("(the default plot; -o names another, --no-plot writes none)")


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
    assert data["seeding"] == data["searched_by"] == "given"  # --lr-range


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


@pytest.mark.parametrize("when", ["loading", "range_test"])
def test_tune_ctrl_c_before_the_search_names_no_study(task, tmp_path, capsys, when):
    db = tmp_path / "i.db"
    argv = ["tune", f"{task}:tune_interrupted_{when}", "--no-progress", "--quiet"]
    rc = main([*argv, "--storage", f"sqlite:///{db}"])
    assert rc == 130
    err = capsys.readouterr().err
    assert err == "\nlrkit tune: interrupted before the search began (nothing was stored)\n"
    assert not db.exists()


def test_tune_ctrl_c_in_the_range_test_names_no_study_on_any_storage(
    task, tmp_path, capsys, monkeypatch
):
    # a storage whose study the command cannot look up itself (PostgreSQL, say): the
    # interrupt tells it that no study was created
    from lrkit.commands import tune as tune_command

    monkeypatch.setattr(tune_command, "_stored", lambda storage, study: None)
    argv = ["tune", f"{task}:tune_interrupted_range_test", "--no-progress", "--quiet"]
    rc = main([*argv, "--storage", f"sqlite:///{tmp_path / 'i.db'}"])
    assert rc == 130
    err = capsys.readouterr().err
    assert err == "\nlrkit tune: interrupted before the search began (nothing was stored)\n"


def test_tune_sigterm_fails_the_running_trial_and_keeps_the_study(task, tmp_path):
    """A worker preempted by SIGTERM (a batch system, ``kill``): one line, exit 143, and its
    trial is FAIL at once (not RUNNING until another worker's grace period runs out)."""
    import os
    import signal
    import time

    optuna = pytest.importorskip("optuna")
    import lrkit

    url = f"sqlite:///{tmp_path / 't.db'}"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(Path(lrkit.__file__).parents[1]), str(tmp_path)]),
    )
    cmd = [sys.executable, "-m", "lrkit.cli", "tune", f"{task}:tune_slow", "--no-progress"]
    cmd += ["--storage", url, "--seeding", "blind", "--study", "t", "--trials", "3"]
    p = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        started = tmp_path / "started.txt"
        deadline = time.monotonic() + 120
        while not started.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), p.stderr.read() if p.poll() is not None else "no trial started"
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, err
    assert "Traceback" not in err
    notes = [ln for ln in err.splitlines() if "terminated" in ln]
    assert len(notes) == 1 and "terminated (SIGTERM)" in notes[0]
    assert "run the same command" in notes[0] and err.rstrip().endswith(notes[0])
    trials = optuna.load_study(study_name="t", storage=url).trials
    assert [t.state.name for t in trials] == ["FAIL"]


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
    # libpq's sslpassword, MySQL's passwd, tokens: every query argument that holds a secret
    assert mask_url("postgresql://a:b@h/db?sslpassword=TOP&sslmode=require") == (
        "postgresql://a:***@h/db?sslpassword=***&sslmode=require"
    )
    # SQLAlchemy reads a query value up to the next "&", a "#" included: masked whole
    assert mask_url("mysql://u@h/db?PASSWD=zz#f") == "mysql://u@h/db?PASSWD=***"
    assert mask_url("postgresql://h/db?auth_token=abc&application_name=x") == (
        "postgresql://h/db?auth_token=***&application_name=x"
    )


def test_secrets_inside_query_values_are_masked_everywhere():
    """SQLAlchemy's pass-through connection strings (odbc_connect=...PWD%3D...) and
    credentials arguments: masked in the URL and wherever a driver's message repeats them."""
    from lrkit._format import mask_secrets, mask_url

    odbc = (
        "mssql+pyodbc:///?odbc_connect=DRIVER%3D%7BODBC%7D%3BSERVER%3Ddbhost%3BUID%3Dbob"
        "%3BPWD%3DS3cretPw&echo=1"
    )
    assert mask_url(odbc) == "mssql+pyodbc:///?odbc_connect=***&echo=1"
    said = mask_secrets(f"login failed: PWD=S3cretPw on dbhost ({odbc})", odbc)
    assert "S3cretPw" not in said and said.startswith("login failed: PWD=*** on dbhost (")
    assert mask_url("bigquery://p/d?credentials_base64=eyJrZXki&location=EU") == (
        "bigquery://p/d?credentials_base64=***&location=EU"
    )
    # a query value without a password is left as it is
    assert mask_url("mssql+pyodbc:///?odbc_connect=DSN%3Dprod&x=1") == (
        "mssql+pyodbc:///?odbc_connect=DSN%3Dprod&x=1"
    )


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    "argv, words",
    [
        (["--num-iter", "7"], ["--num-iter", "[10, 100000]"]),  # the finder's own limits
        (["--num-iter", "99999999999999999999"], ["--num-iter", "[10, 100000]"]),
        (["--total-steps", "-1"], ["--total-steps", ">= 1"]),
        (["--total-steps", "0"], ["--total-steps", ">= 1"]),  # was taken as "the default"
        (["--train-steps", "0"], ["--train-steps", ">= 1"]),
        (["--train-steps", "-3"], ["--train-steps", ">= 1"]),
        (["--end-lr", "1e-8"], ["--end-lr", "--start-lr"]),
        (["-o", "plot.pgf"], ["-o", "unknown file type .pgf"]),  # needs LaTeX: not offered
    ],
)
def test_find_checks_every_option_before_any_work(argv, words, task, tmp_path, capsys):
    pytest.importorskip("torch")
    assert main(["find", f"{task}:make", "--quiet", *argv]) == 2
    line = _one_line_error(capsys, *words)
    assert "num_iter" not in line and "total_steps" not in line
    assert _calls(tmp_path) == 0  # the target was not even called


def test_find_train_steps_at_the_lower_limit_run(task, capsys):
    pytest.importorskip("torch")
    from lrkit.commands.find import min_train_steps

    low = min_train_steps()
    assert low == 1  # a one-cycle run of one step is OneCycleLR's too
    argv = ["find", f"{task}:make", "--quiet", "--no-plot", "--num-iter", "10"]
    assert main([*argv, "--train-steps", str(low)]) == 0, capsys.readouterr().err
    assert "check: 1 training step from" in capsys.readouterr().out


def test_json_folder_message_suggests_a_file(task, tmp_path, capsys):
    pytest.importorskip("torch")
    assert main(["find", f"{task}:make", "--quiet", "--json", str(tmp_path)]) == 2
    line = _one_line_error(capsys, "--json", "is a folder")
    assert repr(str(tmp_path / "results.json")) in line


def test_find_plot_that_cannot_be_written_is_one_line_after_the_table(
    task, tmp_path, monkeypatch, capsys
):
    pytest.importorskip("torch")  # the task trains a PyTorch model
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    def fails(self, *a, **k):
        raise RuntimeError("the backend needs a program that is not installed\nmore lines")

    monkeypatch.setattr(Figure, "savefig", fails)
    js = tmp_path / "r.json"
    argv = ["find", f"{task}:make", "--quiet", "--no-train", "--num-iter", "10"]
    rc = main([*argv, "-o", str(tmp_path / "p.png"), "--json", str(js)])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "learning rate" in out and "budget_edge" in out  # the table was printed
    assert json.loads(js.read_text())["suggestion"] is not None  # and the JSON written
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "-o/--output" in lines[0] and "could not write" in lines[0]
    assert "not installed" in lines[0] and "more lines" not in lines[0]


# ----------------------------------------------------------------------------- user code
def _target_error(capsys, command: str, target: str, *words: str) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"lrkit {command}: error in target {target!r}"), lines[0]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("exc", ["ValueError", "RuntimeError"])
@pytest.mark.parametrize("command", ["find", "compare"])
def test_an_error_in_the_users_model_is_not_a_command_line_mistake(command, exc, task, capsys):
    pytest.importorskip("torch")
    target = {
        "ValueError": f"{task}:make_value_error",
        "RuntimeError": f"{task}:make_runtime_error",
    }[exc]
    extra = (
        ["--methods", "fixed", "--steps", "10", "--finder-iter", "10"]
        if command == "compare"
        else []
    )
    rc = main([command, target, "--quiet", "--no-plot", *extra])
    assert rc == 1  # not 2: the command line was fine, the user's code failed
    _target_error(
        capsys,
        command,
        target,
        f"{exc}: the user's model failed",
        f"at lrkit_err_task.py:{USER_LINE} in forward",
        "--traceback",
    )


def test_traceback_option_shows_the_users_code(task, capsys):
    pytest.importorskip("torch")
    target = f"{task}:make_value_error"
    assert main(["find", target, "--quiet", "--no-plot", "--traceback"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and f'lrkit_err_task.py", line {USER_LINE}' in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"lrkit find: error in target {target!r}") and "--traceback" not in last


def test_lrkit_refusing_a_call_of_the_users_code_is_the_targets_error(task, capsys):
    """lrkit's checks of what the target returned are command-line mistakes (exit code 2);
    a ValueError of lrkit's, raised for a call made by the user's code, is the user's."""
    target = f"{task}:make_loss_calls_lrkit"
    assert main(["find", target, "--quiet", "--no-plot", "--no-train"]) == 1
    _target_error(
        capsys,
        "find",
        target,
        "during the range test: ValueError: lr must be >= 0",
        f"at lrkit_err_task.py:{LRKIT_CALL} in loss",
    )


@pytest.mark.parametrize("command", ["find", "compare", "tune"])
def test_an_error_raised_by_the_target_function_itself(command, task, tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("optuna")
    rc = main([command, f"{task}:make_raises", "--no-plot" if command != "tune" else "--quiet"])
    assert rc == 1
    _target_error(capsys, command, f"{task}:make_raises", "ValueError: the user's factory failed")
    assert not list(tmp_path.glob("*.db"))


@pytest.mark.parametrize("command", ["find", "compare", "tune"])
def test_a_target_that_is_no_factory_is_one_line(command, capsys, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("optuna")
    monkeypatch.chdir(tmp_path)
    assert main([command, "os.path:join", "--no-plot" if command != "tune" else "--quiet"]) == 2
    line = _one_line_error(capsys, "target 'os.path:join'", "no arguments", "returns")
    assert "(model, optimizer" in line or "lrkit.tune.Task" in line
    assert not list(tmp_path.iterdir())


def test_tune_train_error_is_the_targets_and_exit_1(task, tmp_path, capsys):
    optuna = pytest.importorskip("optuna")
    url = f"sqlite:///{tmp_path / 'e.db'}"
    argv = ["tune", f"{task}:tune_raises", "--no-progress", "--seeding", "blind"]
    rc = main([*argv, "--storage", url, "--study", "e", "--plot", "none"])
    assert rc == 1
    err = capsys.readouterr().err
    line = [ln for ln in err.splitlines() if "error" in ln]
    assert len(line) == 1 and "Traceback" not in err
    assert line[0].startswith(f"lrkit tune: error in target '{task}:tune_raises' during a trial")
    assert "ValueError: the user's train failed" in line[0]
    states = [t.state.name for t in optuna.load_study(study_name="e", storage=url).trials]
    assert states == ["FAIL"]


# ----------------------------------------------------------------------------- tune options
@pytest.mark.parametrize(
    "argv, words, not_words",
    [
        (["--heartbeat", "0"], ["--heartbeat"], ["heartbeat_interval"]),
        (["--grace", "0"], ["--grace"], ["grace_period"]),
        (["--grace", "5", "--heartbeat", "10"], ["--grace", "--heartbeat"], ["grace_period"]),
        (["--grace", "10", "--heartbeat", "10"], ["--grace", "--heartbeat"], []),
        (["--max-retry", "-1"], ["--max-retry"], ["max_retry"]),
        (["--lr-range", "1", "0.1"], ["--lr-range HIGH", "--lr-range LOW"], ["lr_range"]),
        (["--lr-range", "0", "0.1"], ["--lr-range LOW"], ["lr_range"]),
        (["--families", ""], ["--families"], []),
        (["--families", " , "], ["--families"], []),
        (["--json", "."], ["--json", "results.json"], ["'a file name'"]),
    ],
)
def test_tune_messages_name_the_options(argv, words, not_words, task, tmp_path, capsys):
    pytest.importorskip("optuna")
    seeding = [] if "--lr-range" in argv else ["--seeding", "blind"]  # one or the other
    rc = main(["tune", f"{task}:tune_task", "--no-progress", *seeding, *argv])
    assert rc == 2
    line = _one_line_error(capsys, *words)
    for w in not_words:
        assert w not in line
    assert not list(tmp_path.glob("*.db"))


def test_tune_demo_task_is_named_as_the_option(tmp_path, monkeypatch, capsys):
    pytest.importorskip("optuna")
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    assert main(["tune", "--demo", "--demo-task", "foo", "--no-progress"]) == 2
    _one_line_error(capsys, "--demo-task must be one of", "digits_mlp_sgd")
    assert not list(tmp_path.iterdir())


def test_tune_refuses_a_run_too_long_for_a_schedule_before_any_study(
    task, tmp_path, capsys
) -> None:
    pytest.importorskip("optuna")
    storage = f"sqlite:///{tmp_path / 's.db'}"
    common = ["--trials", "1", "--no-progress", "--plot", "none", "--storage", storage]
    assert main(["tune", "--demo", "--epochs", str(10**15), *common]) == 2
    _one_line_error(capsys, "--epochs x steps_per_epoch", "must be at most 2**53")
    # a Task built by the target's code: lrkit's error for the target's call (exit code 1)
    assert main(["tune", f"{task}:tune_too_long", *common]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "total_steps must be an integer in [10, 2**53]" in err and "tune_too_long" in err
    assert not (tmp_path / "s.db").exists()  # no study created


def test_tune_refuses_a_url_given_as_the_study_name_without_showing_its_password(
    tmp_path, monkeypatch, capsys
) -> None:
    pytest.importorskip("optuna")
    monkeypatch.chdir(tmp_path)
    url = "postgresql://alice:s3cret@h/db"
    assert main(["tune", "--demo", "--study", url, "--no-progress", "--json", "r.json"]) == 2
    line = _one_line_error(capsys, "--study is the study's name", "alice:***@h/db")
    assert "s3cret" not in line
    assert not list(tmp_path.iterdir())


def test_tune_refuses_an_empty_demo_task(tmp_path, monkeypatch, capsys) -> None:
    pytest.importorskip("optuna")
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    assert main(["tune", "--demo", "--demo-task", "", "--no-progress"]) == 2
    _one_line_error(capsys, "--demo-task must be one of", "got ''")


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--timeout", "0"], ["--timeout must be > 0", "got 0"]),
        (["--timeout", "-5"], ["--timeout must be > 0"]),
        (["--heartbeat", "86401"], ["--heartbeat must be an integer in [1, 86400]"]),
        (["--epochs", "0"], ["--epochs must be an integer >= 1", "got 0"]),
        (["--study", "s" * 513], ["--study must be at most 512 characters", "got 513"]),
    ],
)
def test_tune_refuses_values_past_the_limits_before_the_target_runs(
    argv, words, task, tmp_path, capsys
) -> None:
    pytest.importorskip("optuna")
    rc = main(["tune", f"{task}:tune_task", "--no-progress", "--seeding", "blind", *argv])
    assert rc == 2
    line = _one_line_error(capsys, *words)
    assert "timeout=" not in line and "heartbeat_interval" not in line
    assert _calls(tmp_path) == 0  # the target was not called
    assert not list(tmp_path.glob("*.db"))


@pytest.mark.parametrize(
    "argv",
    [
        ["--study", "s" * 512],
        ["--heartbeat", "86400"],
        ["--max-trials", "1"],
        ["--max-retry", "0"],
        ["--plot", "NONE"],
    ],
)
def test_tune_accepts_the_limits_of_its_options(argv, task, tmp_path, capsys) -> None:
    pytest.importorskip("optuna")
    common = ["tune", f"{task}:tune_task", "--no-progress", "--seeding", "blind", "--seed", "0"]
    plot = [] if "--plot" in argv else ["--plot", "none"]
    assert main([*common, "--trials", "1", *plot, *argv]) == 0, capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))  # --plot none (in any case): no image


def test_tune_demo_trains_four_epochs_without_epochs(tmp_path, monkeypatch, capsys) -> None:
    pytest.importorskip("optuna")
    pytest.importorskip("torch")
    import lrkit.tune

    monkeypatch.chdir(tmp_path)
    asked = []

    def demo_task(name, *, epochs):
        asked.append((name, epochs))
        raise ValueError("the demo task is not built in this test")

    monkeypatch.setattr(lrkit.tune, "demo_task", demo_task)
    assert main(["tune", "--demo", "--no-progress", "--plot", "none"]) == 2
    _one_line_error(capsys, "the demo task is not built in this test")
    assert asked == [("digits_mlp_sgd", 4)]


@pytest.mark.parametrize(
    ("target", "words"),
    [("make_bad_val", "got a tuple of 3 items"), ("make_empty_val", "at least one batch")],
)
def test_find_checks_val_data_also_with_no_train(task, capsys, target, words) -> None:
    args = ["find", f"{task}:{target}", "--quiet", "--no-plot", "--num-iter", "20", "--no-train"]
    assert main(args) == 2
    _one_line_error(capsys, "val_data must yield", words)


def test_compare_stops_at_a_batch_that_is_no_pair_in_one_line(task, capsys) -> None:
    args = ["compare", f"{task}:make_bad_later", "--quiet", "--steps", "10", "--no-plot"]
    assert main([*args, "--finder-iter", "10", "--methods", "fixed,adam"]) == 2
    line = _one_line_error(capsys, "data must yield (x, y) batches", "got a tuple of 3 items")
    assert "step=" not in line and "lambda" not in line  # no Python-only advice


@pytest.mark.parametrize("train", [["--no-train"], ["--train-steps", "20"]])
@pytest.mark.parametrize("plot", [[], ["-o", "f.png"]])
def test_json_on_stdout_comes_last(tmp_path, monkeypatch, capfd, plot, train) -> None:
    """After every line, the plot's and the check runs' table included, so that what follows
    the text is JSON (a text file: it ends its last line)."""
    pytest.importorskip("torch")
    if plot:
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    args = ["find", "--demo", "--quiet", "--num-iter", "20", *train]
    assert main([*args, *(plot or ["--no-plot"]), "--json", "/dev/stdout"]) == 0
    out = capfd.readouterr().out
    start = 0 if out.startswith("{") else out.index("\n{") + 1
    assert json.loads(out[start:])["steps"] > 0 and out.endswith("}\n")
    assert ("check:" in out[:start]) == (train != ["--no-train"])
    assert not plot or (tmp_path / "f.png").stat().st_size > 0


@pytest.mark.parametrize(("error", "code"), [(RuntimeError("boom"), 1), (KeyboardInterrupt(), 130)])
def test_json_on_stdout_is_written_when_the_check_runs_fail(
    tmp_path, monkeypatch, capfd, error, code
) -> None:
    """The range test's result reaches standard output as it reaches a file, also when a check
    run fails or is interrupted."""
    pytest.importorskip("torch")
    from lrkit.commands import find as find_command

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(find_command, "_check", fail)
    monkeypatch.chdir(tmp_path)
    args = ["find", "--demo", "--quiet", "--num-iter", "20", "--train-steps", "20", "--no-plot"]
    if code == 130:
        assert main([*args, "--json", "/dev/stdout"]) == code
    else:  # raised on (a target's error is reported by the target's wrapper, not here)
        with pytest.raises(RuntimeError, match="boom"):
            main([*args, "--json", "/dev/stdout"])
    out = capfd.readouterr().out
    assert json.loads(out[out.index("\n{") + 1 :])["steps"] > 0 and out.endswith("}\n")


def test_tune_json_on_stdout_comes_after_the_summary_and_the_plot(tmp_path, monkeypatch, capfd):
    pytest.importorskip("optuna")
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    args = ["tune", "--demo", "--trials", "1", "--epochs", "1", "--no-progress"]
    args += ["--storage", f"sqlite:///{tmp_path / 's.db'}", "--plot", "t.png"]
    assert main([*args, "--json", "/dev/stdout"]) == 0
    out = capfd.readouterr().out
    assert "plot of the search: t.png" in out
    assert json.loads(out[out.index("\n{") + 1 :])["study"] == "lrkit-demo-digits_mlp_sgd"


def test_compare_methods_message_names_the_option(task, tmp_path, capsys):
    pytest.importorskip("torch")
    for bad in ("foo", ""):
        assert main(["compare", f"{task}:make", "--quiet", "--methods", bad]) == 2
        _one_line_error(capsys, "--methods must be")
    assert _calls(tmp_path) == 0


# ----------------------------------------------------------------------------- tune studies
def _tune(task: str, url: str, *argv: str) -> int:
    common = ["tune", f"{task}:tune_task", "--no-progress", "--plot", "none", "--seed", "0"]
    return main([*common, "--storage", url, "--study", "s", *argv])


def _snapshot(optuna, url: str):  # type: ignore[no-untyped-def]
    study = optuna.load_study(study_name="s", storage=url)
    return study.user_attrs, [(t.number, t.state.name, t.value, t.params) for t in study.trials]


@pytest.mark.parametrize(
    "first, second, words",
    [
        (["--families", "onecycle"], ["--families", "cosine"], ["--families onecycle"]),
        (["--families", "onecycle"], ["--families", "cosine", "--trials", "6"], ["--families"]),
        (
            ["--lr-range", "0.001", "0.1"],
            ["--lr-range", "0.01", "1"],
            ["--lr-range 0.001 0.1", "not --lr-range 0.01 1"],
        ),
        (["--seeding", "blind"], ["--lr-range", "0.01", "1"], ["--seeding blind"]),
    ],
)
def test_tune_refuses_to_continue_a_study_with_another_search_space(
    first, second, words, task, tmp_path, capsys
):
    optuna = pytest.importorskip("optuna")
    url = f"sqlite:///{tmp_path / 's.db'}"
    base = ["--seeding", "blind"] if "--lr-range" not in first else []
    assert _tune(task, url, "--trials", "3", *base, *first) == 0
    capsys.readouterr()
    before = _snapshot(optuna, url)
    calls = _calls(tmp_path)
    base = ["--seeding", "blind"] if "--lr-range" not in second else []
    assert _tune(task, url, "--trials", "3", *base, *second) == 2
    line = _one_line_error(capsys, "study 's'", "--study NAME", *words)
    assert "dynamic value space" not in line
    assert _snapshot(optuna, url) == before  # nothing stored changed, no trial added
    assert _calls(tmp_path) == calls + 1  # the target was loaded, no trial ran
    # the same options continue the study
    base = ["--seeding", "blind"] if "--lr-range" not in first else []
    assert _tune(task, url, "--trials", "4", *base, *first) == 0
    assert len(_snapshot(optuna, url)[1]) == 4


def test_tune_refuses_to_continue_a_study_with_another_task(task, tmp_path, capsys):
    optuna = pytest.importorskip("optuna")
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _tune(task, url, "--trials", "2", "--seeding", "blind") == 0
    capsys.readouterr()
    before = _snapshot(optuna, url)
    argv = ["tune", f"{task}:tune_diverges", "--no-progress", "--plot", "none", "--seed", "0"]
    assert main([*argv, "--storage", url, "--study", "s", "--seeding", "blind"]) == 2
    _one_line_error(
        capsys,
        f"was created with task '{task}:tune_task', not task '{task}:tune_diverges'",
        "--study NAME",
    )
    assert _snapshot(optuna, url) == before


def test_tune_refuses_to_continue_a_study_with_another_tuple_target(task, tmp_path, capsys):
    """A (model_factory, loss_fn, data, val_data) target records its own name too."""
    optuna = pytest.importorskip("optuna")
    url = f"sqlite:///{tmp_path / 's.db'}"
    argv = ["tune", "--no-progress", "--plot", "none", "--seed", "0", "--storage", url,
            "--study", "s", "--seeding", "blind", "--epochs", "3"]  # fmt: skip
    assert main([*argv, "--trials", "1", f"{task}:tuple_linear"]) == 0
    capsys.readouterr()
    study = optuna.load_study(study_name="s", storage=url)
    assert study.user_attrs["lrkit.space"]["task"] == f"{task}:tuple_linear"
    before = _snapshot(optuna, url)
    assert main([*argv, "--trials", "2", f"{task}:tuple_mlp"]) == 2
    _one_line_error(
        capsys,
        f"was created with task '{task}:tuple_linear', not task '{task}:tuple_mlp'",
        "--study NAME",
    )
    assert _snapshot(optuna, url) == before


def test_tune_families_are_one_space_in_any_order(task, tmp_path, capsys):
    optuna = pytest.importorskip("optuna")
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _tune(task, url, "--trials", "2", "--seeding", "blind", "--families", "wsd,cosine") == 0
    assert _tune(task, url, "--trials", "3", "--seeding", "blind", "--families", "cosine,wsd") == 0
    study = optuna.load_study(study_name="s", storage=url)
    assert study.user_attrs["lrkit.space"]["families"] == ["cosine", "wsd"]
    assert len(study.trials) == 3


def test_tune_checks_a_study_from_before_the_space_was_recorded(tmp_path):
    """A study without the recorded space is compared through its trials' family choices."""
    optuna = pytest.importorskip("optuna")
    from lrkit.tune import StudySpaceError, Task, tune

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = optuna.create_study(study_name="old", storage=url)
    dist = optuna.distributions
    old.add_trial(
        optuna.trial.create_trial(
            params={"lr": 0.01, "family": "onecycle"},
            distributions={
                "lr": dist.FloatDistribution(1e-6, 10.0, log=True),
                "family": dist.CategoricalDistribution(["onecycle"]),
            },
            value=1.0,
        )
    )
    task = Task(train=lambda s, r: 1.0, total_steps=20)
    with pytest.raises(StudySpaceError) as info:
        tune(task, n_trials=2, storage=url, study_name="old", seeding="blind", families=["cosine"])
    assert info.value.conflicts == {"families": (["onecycle"], ["cosine"])}
    assert "\n" not in str(info.value)
    study = optuna.load_study(study_name="old", storage=url)
    assert len(study.trials) == 1 and "lrkit.space" not in study.user_attrs


def test_tune_plot_that_cannot_be_written_is_one_line_after_the_results(
    task, tmp_path, monkeypatch, capsys
):
    pytest.importorskip("optuna")
    pytest.importorskip("matplotlib")
    from lrkit.tune import TuneResult

    def fails(self, *a, **k):
        raise RuntimeError("the backend needs a program that is not installed")

    monkeypatch.setattr(TuneResult, "plot", fails)
    js = tmp_path / "t.json"
    argv = ["tune", f"{task}:tune_task", "--no-progress", "--seeding", "blind", "--trials", "2"]
    rc = main([*argv, "--plot", str(tmp_path / "t.png"), "--json", str(js), "--seed", "0"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "best schedule" in out and f"results written to {js}" in out
    assert json.loads(js.read_text())["complete"] == 2
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("lrkit tune: error: --plot") and "could not write" in lines[0]


def test_a_value_error_while_the_target_module_imports_is_the_targets(
    tmp_path, capsys, monkeypatch, write_module
):
    pytest.importorskip("torch")  # lrkit find trains a PyTorch model
    write_module("lrkit_badmod", 'raise ValueError("boom at import")\n')
    monkeypatch.chdir(tmp_path)
    assert main(["find", "lrkit_badmod:make", "--no-plot"]) == 1
    _target_error(capsys, "find", "lrkit_badmod:make", "ValueError: boom at import")


def test_the_value_the_user_typed_is_quoted_as_typed(capsys):
    pytest.importorskip("torch")
    assert main(["compare", "--demo", "--methods", "steps,num_iter", "--no-plot"]) == 2
    line = _one_line_error(capsys, "--methods must be", "got 'steps,num_iter'")
    assert "--steps" not in line and "--finder-iter" not in line


def test_target_error_round_trips_through_pickle():
    import pickle

    from lrkit.commands._target import TargetError

    e = TargetError("m:f", error=ValueError("x"), during="the import")
    back = pickle.loads(pickle.dumps(e))
    assert str(back) == str(e) and back.target == "m:f" and back.during == "the import"
    assert type(back.error) is ValueError


@pytest.mark.parametrize("show_traceback", [False, True])
def test_an_error_of_the_users_code_has_the_typed_password_masked(capsys, show_traceback):
    """A target's error that echoes the storage URL it was given (``could not reach ...``)
    shows no password, in the one line and in the traceback (``--traceback``)."""
    import argparse

    from lrkit.commands._target import TargetError, report_target_error

    url = "postgresql://alice:hunter2xyz@127.0.0.1:5432/lrkit"
    try:
        raise RuntimeError(f"could not reach {url}")
    except RuntimeError as exc:
        err = TargetError("m:f", error=exc, during="a trial")
    args = argparse.Namespace(storage=url, traceback=show_traceback)
    assert report_target_error("tune", err=err, show_traceback=show_traceback, args=args) == 1
    text = capsys.readouterr().err
    assert "hunter2xyz" not in text
    assert text.count("postgresql://alice:***@127.0.0.1:5432/lrkit") == 1 + show_traceback
    assert text.splitlines()[-1].startswith(
        "lrkit tune: error in target 'm:f' during a trial: RuntimeError: could not reach "
        "postgresql://alice:***@127.0.0.1:5432/lrkit (at "
    )


# ----------------------------------------------------------------------------- tune outputs
@pytest.mark.parametrize(
    "argv, words",
    [
        (["--json", "s.db"], ["--json 's.db'", "--storage sqlite:///s.db", "database file"]),
        (["--json", "./sub/../s.db"], ["--json", "--storage", "database file"]),
        (["--plot", "s.png", "--storage", "sqlite:///s.png"], ["--plot 's.png'", "--storage"]),
        (["--json", "{tmp}/s.db"], ["--json", "--storage", "database file"]),
        (["--json", "x.png", "--plot", "x.png"], ["--json 'x.png'", "--plot 'x.png'", "same file"]),
    ],
)
def test_tune_outputs_never_overwrite_the_study_or_each_other(argv, words, task, tmp_path, capsys):
    optuna = pytest.importorskip("optuna")
    (tmp_path / "sub").mkdir()
    url = "sqlite:///s.db"  # relative to the working directory, tmp_path
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        optuna.create_study(study_name="kept", storage=url)
    finally:
        optuna.logging.set_verbosity(verbosity)
    before = (tmp_path / "s.db").read_bytes()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--storage" not in argv:
        argv += ["--storage", url]
    seeding = [] if "--lr-range" in argv else ["--seeding", "blind"]  # one or the other
    rc = main(["tune", f"{task}:tune_task", "--no-progress", *seeding, *argv])
    assert rc == 2
    _one_line_error(capsys, *words)
    assert _calls(tmp_path) == 0  # refused before the target ran
    assert (tmp_path / "s.db").read_bytes() == before
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "s.png").exists()


def test_compare_output_and_json_cannot_be_one_file(task, tmp_path, capsys):
    pytest.importorskip("torch")
    rc = main(["compare", f"{task}:make", "--quiet", "-o", "r.png", "--json", "./r.png"])
    assert rc == 2
    _one_line_error(capsys, "-o/--output 'r.png'", "--json './r.png'", "same file")
    assert _calls(tmp_path) == 0


@pytest.mark.parametrize(
    "url, words",
    [
        (
            "postgresql://a:pw@localhost:notaport/db",
            ["--storage postgresql://a:***@localhost:notaport/db", "port must be an integer",
             "'notaport'"],
        ),
        ("postgresql://a:pw@localhost:1:2/db", ["--storage", "port must be an integer"]),
        ("postgresql://a:p/w@x@localhost/db", ["--storage", "unencoded '@'"]),
    ],
)  # fmt: skip
def test_tune_storage_url_mistakes_name_the_option_before_any_work(
    url, words, task, tmp_path, capsys
):
    pytest.importorskip("optuna")
    assert main(["tune", f"{task}:tune_task", "--no-progress", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "pw" not in err.replace("postgresql", "") and "p/w" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("lrkit tune: error: --storage "), err
    for w in words:
        assert w in lines[0], lines[0]
    assert _calls(tmp_path) == 0


def test_tune_never_prints_a_password_holding_a_slash(task, tmp_path, capsys):
    pytest.importorskip("optuna")
    url = "postgresql://alice:pa/ss99@127.0.0.1:1/db"  # nothing listens on port 1
    assert main(["tune", f"{task}:tune_task", "--no-progress", "--storage", url]) == 2
    out, err = capsys.readouterr()
    assert "pa/ss99" not in out + err and "ss99" not in out + err
    line = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(line) == 1 and "alice:***@127.0.0.1:1/db" in line[0] and "Traceback" not in err


def test_tune_quiet_still_writes_the_plot_it_was_asked_for(task, tmp_path, capsys):
    pytest.importorskip("optuna")
    pytest.importorskip("matplotlib")
    png = tmp_path / "search.png"
    argv = ["tune", f"{task}:tune_task", "--quiet", "--seeding", "blind", "--trials", "2"]
    rc = main([*argv, "--seed", "0", "--storage", "sqlite:///q.db", "--plot", str(png)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert len(out.splitlines()) == 1  # only the best spec
    from lrkit.schedules import parse

    parse(out.strip())
    rc = main([*argv, "--seed", "0", "--storage", "sqlite:///q.db"])  # no --plot: none written
    assert rc == 0 and sorted(p.name for p in tmp_path.glob("*.png")) == ["search.png"]


@pytest.mark.parametrize(
    "target, shown",
    [("tune_returns_none", "None (NoneType)"), ("tune_returns_text", "'0.5' (str)")],
)
def test_a_train_that_returns_no_number_is_the_targets_error(target, shown, task, tmp_path, capsys):
    optuna = pytest.importorskip("optuna")
    url = "sqlite:///r.db"
    argv = ["tune", f"{task}:{target}", "--no-progress", "--seeding", "blind", "--study", "r"]
    rc = main([*argv, "--storage", url, "--plot", "none"])
    assert rc == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    line = lines[0]
    assert line.startswith(f"lrkit tune: error in target '{task}:{target}' during a trial: ")
    assert "TypeError: train must return the final metric as a real number" in line
    assert line.endswith(f"got {shown} (--traceback shows the full traceback)")
    states = [t.state.name for t in optuna.load_study(study_name="r", storage=url).trials]
    assert states == ["FAIL"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["find", "--no-plot", "-o", "a.png"], ["lrkit find: error: -o/--output", "--no-plot"]),
        (["compare", "--no-plot", "-o", "a.png"], ["lrkit compare: error:", "--no-plot"]),
        (["find", "--no-train", "--train-steps", "3"], ["--train-steps 3", "--no-train"]),
        (
            ["tune", "--seeding", "blind", "--lr-range", "0.01", "0.1"],
            ["lrkit tune: error:", "--seeding blind and --lr-range 0.01 0.1"],
        ),
    ],
)
def test_options_that_contradict_each_other_are_refused_not_ignored(
    argv, words, task, tmp_path, capsys
):
    pytest.importorskip("optuna")
    command, *rest = argv
    calls = _calls(tmp_path)
    assert main([command, f"{task}:tune_task" if command == "tune" else f"{task}:make",
                 "--no-progress" if command == "tune" else "--quiet", *rest]) == 2  # fmt: skip
    _one_line_error(capsys, *words)
    assert _calls(tmp_path) == calls  # refused before the target was called
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "lrkit-tune.db").exists()


#: a storage URL typed where it does not belong (its password must never be printed)
SECRET_URL = "postgresql://admin:Sup3rSecretX@127.0.0.1:55432/lrkit"


@pytest.mark.parametrize(
    "argv",
    [
        ["tune", "tasks:make", SECRET_URL, "--trials", "1"],  # --storage forgotten
        ["tune", "tasks:make", "--storge", SECRET_URL, "--trials", "1"],  # the option mistyped
        ["tune", "tasks:make", f"--storge={SECRET_URL}"],
        ["tune", "tasks:make", "--trials", SECRET_URL],  # the value of another option
        ["find", "--demo", "--seed", SECRET_URL],
        ["plot", "cosine(0.1, 100)", SECRET_URL],
    ],
    ids=["no-storage-option", "storge", "storge=", "trials", "find-seed", "plot"],
)
def test_the_parsers_errors_mask_a_password_typed_in_the_wrong_place(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    line = _one_line_error(capsys, "admin:***@127.0.0.1:55432/lrkit", "--help")
    assert "Sup3rSecretX" not in line


def test_a_libpq_password_typed_in_the_wrong_place_is_masked(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["tune", "tasks:make", "host=db user=admin password=Sup3rSecretX"])
    assert exc.value.code == 2
    line = _one_line_error(capsys, "unrecognized arguments: host=db user=admin password=***")
    assert "Sup3rSecretX" not in line


@pytest.mark.parametrize(
    "typed, shown",
    [
        (["--pasword=Sup3rSecretX"], "--pasword=***"),
        (["--api-token", "Sup3rSecretX", "--xyz", "3"], "--api-token *** --xyz 3"),
        (["--db_passwd", "Sup3rSecretX"], "--db_passwd ***"),
        (["--sekret=Sup3rSecretX"], "--sekret=***"),
        (["--numiter=50"], "--numiter=50"),  # no secret: shown as typed
    ],
)
def test_an_unknown_option_named_as_a_secret_is_echoed_without_its_value(typed, shown, capsys):
    """A misspelt or unknown option whose name is (nearly) a secret's, its value typed with
    '=' or after it: the error names the option and masks the value."""
    with pytest.raises(SystemExit) as exc:
        main(["find", "--demo", *typed])
    assert exc.value.code == 2
    line = _one_line_error(capsys, f"unrecognized arguments: {shown}")
    assert "Sup3rSecretX" not in line


@pytest.mark.parametrize(
    "command, needs",
    [("tune", "optuna"), ("find", "torch"), ("compare", "torch")],
)
def test_a_storage_url_given_as_the_target_is_masked(command, needs, capsys):
    pytest.importorskip(needs)
    assert main([command, SECRET_URL]) == 2
    line = _one_line_error(
        capsys, "target must look like", f"got '{SECRET_URL.replace('Sup3rSecretX', '***')}'"
    )
    assert "Sup3rSecretX" not in line


def test_a_long_url_given_as_the_target_is_masked_before_it_is_cut_short(capsys):
    pytest.importorskip("optuna")
    url = f"postgresql://admin:Sup3rSecretX@{'h' * 90}.example.com:5432/lrkit"
    assert main(["tune", url]) == 2
    line = _one_line_error(capsys, "target must look like", "admin:***@hhh")
    assert "Sup3r" not in line


def test_sqlite_mode_ro_outside_an_sqlite_uri_is_refused_not_ignored(task, tmp_path, capsys):
    """``sqlite:///q3.db?mode=ro``: SQLAlchemy drops ``mode=ro`` without ``uri=true`` and the
    file would be written: refused before anything runs, nothing created."""
    pytest.importorskip("optuna")
    from lrkit.tune import check_storage, make_storage

    url = "sqlite:///q3.db?mode=ro"
    argv = ["tune", f"{task}:tune_task", "--no-progress", "--plot", "none", "--storage", url]
    assert main(argv) == 2
    line = _one_line_error(
        capsys,
        "lrkit tune: error: --storage sqlite:///q3.db?mode=ro: SQLite reads mode=ro only in its "
        "URI form (sqlite:///file:q3.db?mode=ro&uri=true)",
    )
    assert "ignore it and open the database for writing" in line
    assert _calls(tmp_path) == 0 and not (tmp_path / "q3.db").exists()
    for check in (check_storage, make_storage):
        with pytest.raises(ValueError, match=r"mode=ro only in its URI form"):
            check(url)
    with pytest.raises(ValueError, match=r"immutable=1 and cache=shared only in its URI form"):
        check_storage("sqlite+pysqlite:///q3.db?immutable=1&cache=shared&timeout=5")
    assert not (tmp_path / "q3.db").exists()
    # the URI form and the driver's own arguments are taken as before
    assert check_storage("sqlite:///file:q3.db?mode=ro&uri=true")
    assert check_storage("sqlite:///q3.db?timeout=5")


@pytest.mark.parametrize(
    "argv, named",
    [
        (["find", "--demo", "--numiter", "50"], "--numiter 50 (did you mean --num-iter?)"),
        (["compare", "--demo", "--stpes", "100"], "--stpes 100 (did you mean --steps?)"),
        (["find", "--demo", "--numiter=50"], "--numiter=50 (did you mean --num-iter?)"),
        (["plot", "cosine(0.1, 100)", "--widht", "30"], "--widht 30 (did you mean --width?)"),
    ],
)
def test_a_mistyped_option_after_demo_is_named_not_taken_for_the_target(argv, named, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        f"lrkit {argv[0]}: error: unrecognized arguments: {named} (see: lrkit {argv[0]} --help)\n"
    )


def test_tune_names_the_target_whose_tuple_holds_a_model_instead_of_its_factory(
    task, tmp_path, capsys
):
    pytest.importorskip("optuna")
    url = f"sqlite:///{tmp_path / 's.db'}"
    argv = ["tune", f"{task}:tuple_instance", "--trials", "2", "--storage", url, "--plot", "none"]
    assert main(argv) == 2
    line = _one_line_error(capsys)
    assert line.startswith(
        f"lrkit tune: error: target '{task}:tuple_instance': model_factory must be a "
        "zero-argument callable"
    ), line
    assert not (tmp_path / "s.db").exists()  # refused before the study was made


def test_a_double_dash_alone_is_named_as_an_unrecognized_argument(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "lrkit: error: unrecognized arguments: -- (see: lrkit --help)\n"
    )


def test_sigterm_interrupts_once_and_the_handler_before_is_put_back(capsys):
    """While a command runs, the first SIGTERM raises ``Terminated`` and puts the handler that
    was there back at once (a second SIGTERM acts as it did); after the block, and after a
    command run through ``main``, the handler before is in place again."""
    import signal

    from lrkit.commands.signals import Terminated, sigterm_as_interrupt

    seen = []

    def before(signum, frame):
        seen.append(signum)

    old = signal.signal(signal.SIGTERM, before)
    try:
        with sigterm_as_interrupt():
            assert signal.getsignal(signal.SIGTERM) is not before
            with pytest.raises(Terminated):
                signal.raise_signal(signal.SIGTERM)
            assert signal.getsignal(signal.SIGTERM) is before
            signal.raise_signal(signal.SIGTERM)
        assert seen == [signal.SIGTERM]
        with sigterm_as_interrupt():
            assert signal.getsignal(signal.SIGTERM) is not before
        assert signal.getsignal(signal.SIGTERM) is before
        assert main(["plot", "cosine(0.1, 10)"]) == 0
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGTERM, old)
    capsys.readouterr()


@pytest.mark.parametrize(
    "argv, named",
    [
        (
            ["plot", "--widht=30", "cosine(0.1, 100)", "--steps", "abc"],
            "--widht=30 (did you mean --width?)",
        ),
        (
            ["find", "--demo", "--numiter=50", "pkg.mod:fn"],
            "--numiter=50 (did you mean --num-iter?)",
        ),
    ],
)
def test_a_mistyped_option_with_its_value_attached_names_only_itself(argv, named, capsys):
    """``--opt=value``: the word after it is no value of it (the spec, the target), and is
    not named with it, whatever other mistake the command line holds."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        f"lrkit {argv[0]}: error: unrecognized arguments: {named} (see: lrkit {argv[0]} --help)\n"
    )


def test_an_abbreviated_option_is_known_and_the_real_mistake_is_named(capsys):
    """``--wid`` is ``--width`` as argparse reads it: the error is that of ``--steps``, not an
    unrecognized ``--wid``."""
    with pytest.raises(SystemExit) as info:
        main(["plot", "cosine(0.1, 100)", "--wid", "30", "--steps", "abc"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "lrkit plot: error: argument --steps: invalid int value: 'abc' (see: lrkit plot --help)\n"
    )


def test_plot_imports_no_other_command():
    """``lrkit plot`` imports its own command module only (not find, compare or tune, with
    what they import)."""
    code = (
        "import sys\n"
        "from lrkit.cli import main\n"
        "assert main(['plot', 'cosine(0.1, 10)', '--height', '3']) == 0\n"
        "print(sorted(m for m in ('lrkit.commands.find', 'lrkit.commands.compare',"
        " 'lrkit.commands.tune', 'lrkit.commands.plot') if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "['lrkit.commands.plot']\n"


def test_find_json_on_stdout_is_written_when_the_plot_cannot_be(task, tmp_path, monkeypatch, capfd):
    """The plot failing (exit code 1) does not keep the JSON asked for on standard output
    from being written, after the plot's error."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    def fails(self, *a, **k):
        raise RuntimeError("the backend needs a program that is not installed")

    monkeypatch.setattr(Figure, "savefig", fails)
    argv = ["find", f"{task}:make", "--quiet", "--no-train", "--num-iter", "10"]
    assert main([*argv, "-o", str(tmp_path / "p.png"), "--json", "/dev/stdout"]) == 1
    captured = capfd.readouterr()
    out = captured.out
    assert json.loads(out[out.index("\n{") + 1 :])["num_iter"] == 10 and out.endswith("}\n")
    assert "could not write the file" in captured.err
    assert not (tmp_path / "p.png").exists()
