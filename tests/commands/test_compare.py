"""``lrkit compare``: demo and user tasks, same start for every method, table, plot, JSON."""

from __future__ import annotations

import io
import json
import math
import os
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from lrkit import compare as C  # noqa: E402
from lrkit._target import import_target  # noqa: E402
from lrkit.cli import main  # noqa: E402

TASK = textwrap.dedent(
    """
    import torch

    def make():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(96, 4, generator=g)
        y = (x[:, 0] + x[:, 1] > 0).long()
        model = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
            torch.nn.Linear(16, 2),
        )
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        data = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
        val = [(x[64:], y[64:])]
        return model, opt, torch.nn.functional.cross_entropy, data, val

    def make_noval():
        return make()[:4]

    def make_warns():  # a loss that warns at every call, on the training and the val batches
        import warnings

        model, opt, loss_fn, data, val = make()

        def loss(out, y):
            warnings.warn("cmp test: this loss warns", UserWarning)
            return loss_fn(out, y)

        return model, opt, loss, data, val

    def make_leaves_a_gone_start():  # moves elsewhere, and the folder it started in is gone
        import os
        import shutil

        start = os.getcwd()
        os.makedirs(os.path.join(start, "..", "elsewhere"), exist_ok=True)
        os.chdir(os.path.join(start, "..", "elsewhere"))
        shutil.rmtree(start)
        return make()

    def fails_in_a_gone_folder():
        import os
        import tempfile

        gone = tempfile.mkdtemp()
        os.chdir(gone)
        os.rmdir(gone)
        raise RuntimeError("boom")

    def fails_relative_in_a_gone_folder():  # code whose file name is relative
        import os
        import tempfile

        gone = tempfile.mkdtemp()
        os.chdir(gone)
        os.rmdir(gone)
        exec(compile("raise RuntimeError('boom')", "rel/task.py", "exec"))

    def make_moves():  # a task that moves the process to another folder (os.chdir)
        import os

        os.makedirs("moved", exist_ok=True)
        os.chdir("moved")
        return make()

    def make_linear():
        g = torch.Generator().manual_seed(1)
        x = torch.randn(64, 3, generator=g)
        y = x.sum(1, keepdim=True)
        model = torch.nn.Linear(3, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, torch.nn.functional.mse_loss, [(x[:32], y[:32]), (x[32:], y[32:])]

    def make_nan():
        model, opt, _, data = make_linear()
        return model, opt, (lambda out, y: (out - y).pow(2).mean() * float("nan")), data

    class Late(torch.nn.Linear):
        # raises in training mode after 15 forward passes: past the checks and range tests

        calls = 0

        def forward(self, x):
            if self.training:
                Late.calls += 1
                if Late.calls > 15:
                    raise KeyError("late failure")
            return super().forward(x)

    def make_late():
        Late.calls = 0
        _, _, loss, data = make_linear()
        model = Late(3, 1)
        return model, torch.optim.SGD(model.parameters(), lr=0.1), loss, data

    def make_bad_batch():  # a batch of the wrong width: the range test meets it
        model, opt, loss, data = make_linear()
        return model, opt, loss, [data[0], (data[1][0][:, :2], data[1][1])]

    def bad():
        return 42

    _X = torch.randn(64, 4, generator=torch.Generator().manual_seed(3))
    _Y = (_X[:, 0] > 0).long()
    GEN = torch.Generator().manual_seed(7)  # the loader's own, built once: the runs share it
    LOADER = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(_X, _Y), batch_size=16, shuffle=True, generator=GEN
    )

    def make_own_generator():
        model = torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, torch.nn.functional.cross_entropy, LOADER

    def make_one_shot():  # a fresh generator of 8 batches at each call
        model, opt, loss, data = make_linear()
        return model, opt, loss, (b for _ in range(4) for b in data)

    def make_one_shot_val():
        model, opt, loss, data = make_linear()
        val = (b for b in data)  # a fresh generator at each call: read once
        return model, opt, loss, data, val
    """
)


@pytest.fixture
def task_module(write_module):
    return write_module("cmp_task_mod", TASK)


def test_a_warning_of_the_users_code_is_shown_once_over_every_method(task_module, capsys):
    import warnings

    argv = ["compare", f"{task_module}:make_warns", "--steps", "10", "--finder-iter", "10"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        rc = main([*argv, "--methods", "fixed,cosine,adam,onecycle", "--no-plot", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert [(w.category, str(w.message)) for w in seen] == [
        (UserWarning, "cmp test: this loss warns")
    ]


def test_user_task_all_methods(task_module, tmp_path, capsys):
    out, js = tmp_path / "cmp.png", tmp_path / "cmp.json"
    rc = main(
        [
            "compare",
            f"{task_module}:make",
            "--steps",
            "30",
            "--finder-iter",
            "20",
            "-o",
            str(out),
            "--json",
            str(js),
            "--quiet",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    assert out.stat().st_size > 5000
    data = json.loads(js.read_text())
    res = data["results"]
    assert [r["method"] for r in res] == list(C.METHODS)
    for m in C.METHODS:
        assert f" {m} " in text or f"*{m} " in text
    # same initial weights and first batch: identical first loss for every method
    first = {r["losses"][0] for r in res}
    assert len(first) == 1
    for r in res:
        assert len(r["losses"]) == len(r["lrs"]) == 30
        assert r["val_loss"] is not None and 0 <= r["val_acc"] <= 1
    by = {r["method"]: r for r in res}
    lrs = data["lrs"]
    assert by["fixed"]["lrs"] == [pytest.approx(lrs["base"])] * 30
    assert by["onecycle"]["lrs"][0] == pytest.approx(lrs["base_max"] / 25)
    assert by["adam"]["optimizer"] == "Adam" and by["adam"]["lrs"][0] == pytest.approx(lrs["adam"])
    assert by["schedulefree"]["optimizer"] == "AdamWScheduleFree"
    assert by["prodigy"]["optimizer"] == "Prodigy"
    assert by["step"]["lrs"][-1] == pytest.approx(lrs["base"] * 0.01)


def test_demo_subset_and_train_loss_without_val(task_module, tmp_path, capsys):
    import random

    import numpy as np

    pytest.importorskip("sklearn")
    js = tmp_path / "d.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(2 if threads != 2 else 3)  # the demo trains on 1 thread meanwhile
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    rc = main(
        [
            "compare",
            "--demo",
            "--steps",
            "20",
            "--finder-iter",
            "15",
            "--methods",
            "fixed,plateau,prodigy",
            "--no-plot",
            "--json",
            str(js),
            "--quiet",
        ]
    )
    after_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    assert rc == 0
    # the caller's thread count and RNG states are as they were
    assert after_threads == (2 if threads != 2 else 3)
    assert torch.equal(before[0], torch.get_rng_state())
    assert np.array_equal(before[1], np.random.get_state()[1])
    assert before[2] == random.getstate()
    res = json.loads(js.read_text())["results"]
    assert [r["method"] for r in res] == ["fixed", "plateau", "prodigy"]
    assert all(r["val_acc"] is not None for r in res)
    capsys.readouterr()
    rc = main(
        [
            "compare",
            f"{task_module}:make_noval",
            "--steps",
            "20",
            "--finder-iter",
            "15",
            "--methods",
            "cosine,plateau",
            "--no-plot",
            "--quiet",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "best train loss" in text


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["--methods", "fixed,sgdr"], "methods"),
        (["--steps", "3"], "steps"),
        (["--finder-iter", "2"], "finder-iter"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_bad_arguments(task_module, capsys, argv, msg):
    rc = main(["compare", f"{task_module}:make", *argv, "--quiet", "--no-plot"])
    assert rc == 2 and msg in capsys.readouterr().err


@pytest.mark.parametrize("target", ["nodots", "cmp_task_mod:missing", "cmp_task_mod:bad"])
def test_bad_target(task_module, capsys, target):
    assert main(["compare", target, "--quiet", "--no-plot"]) == 2
    assert "error" in capsys.readouterr().err


def test_plateau_method_reduces_and_table_marks_divergence(task_module):
    make = C.factory(import_target(f"{task_module}:make"), seed=0)
    lrs = C.LRs(base=0.05, base_max=0.1, base_min=0.01, adam=1e-3)
    r = C.run_method("plateau", make=make, lrs=lrs, steps=200)
    assert r.lrs[0] == 0.05 and min(r.lrs) < 0.05  # the validation loss plateaus
    assert r.note.endswith("reductions")
    huge = C.LRs(base=1e6, base_max=1e6, base_min=1e6, adam=1e-3)
    lin = C.factory(import_target(f"{task_module}:make_linear"), seed=0)
    d = C.run_method("fixed", make=lin, lrs=huge, steps=50)
    assert d.diverged and d.final_loss == math.inf
    assert "diverged" in C.table([r, d])


def test_plot_writes_png_without_switching_the_backend(tmp_path, monkeypatch):
    import matplotlib

    def no_backend_switch(*a, **k):
        raise AssertionError("matplotlib.use() switches the caller's backend")

    monkeypatch.setattr(matplotlib, "use", no_backend_switch)
    r = C.Result("fixed", optimizer="SGD", lr="0.1", losses=[1.0, 0.5, 0.25], lrs=[0.1, 0.1, 0.1])
    C.plot([r], path=str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_of_a_make_returning_a_tuple_says_to_use_factory():
    """``compare(make)`` with the tuple a target returns: a one-line TypeError pointing at
    ``factory`` (which also seeds every run alike), not an AttributeError deep inside."""

    def make():
        model = torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
        return model, opt, torch.nn.functional.cross_entropy, [(x, y)]

    with pytest.raises(TypeError, match=r"lrkit\.compare\.factory\(fn") as info:
        C.compare(make, methods="fixed", steps=10, num_iter=10)
    assert "\n" not in str(info.value) and "got tuple" in str(info.value)
    with pytest.raises(TypeError, match="callable"):
        C.compare(42, methods="fixed", steps=10)  # type: ignore[arg-type]
    report = C.compare(C.factory(make), methods="fixed", steps=10, num_iter=10)
    assert [r.method for r in report.results] == ["fixed"]


@pytest.fixture
def no_lrfree(monkeypatch):
    """schedulefree and prodigyopt as if they were not installed."""
    import sys

    monkeypatch.setitem(sys.modules, "schedulefree", None)
    monkeypatch.setitem(sys.modules, "prodigyopt", None)


def test_default_methods_skip_a_missing_package_with_a_note_each(
    task_module, tmp_path, capsys, no_lrfree
):
    js = tmp_path / "c.json"
    argv = ["compare", f"{task_module}:make", "--steps", "10", "--finder-iter", "10"]
    rc = main([*argv, "--no-plot", "--quiet", "--json", str(js)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "Traceback" not in err
    methods = [m for m in C.METHODS if m not in ("schedulefree", "prodigy")]
    assert [r["method"] for r in json.loads(js.read_text())["results"]] == methods
    notes = [ln for ln in out.splitlines() if "note:" in ln]
    assert [n for n in notes if "note: skipped" in n] == [  # worded as check_installed refuses
        "  note: skipped (method 'schedulefree' needs schedulefree: pip install 'lrkit[lrfree]')",
        "  note: skipped (method 'prodigy' needs prodigyopt: pip install 'lrkit[lrfree]')",
    ]
    # 10 steps is below the budgets the range test's rule knows: its suggestions say so
    assert [n.split(": total_steps=")[0] for n in notes if "note: skipped" not in n] == [
        "  note: unreliable suggestion for SGD",
        "  note: unreliable suggestion for Adam",
    ]
    assert f"; {len(methods)} methods x 10 steps" in out


@pytest.mark.parametrize(
    "methods, module", [("fixed,schedulefree", "schedulefree"), ("prodigy", "prodigyopt")]
)
def test_a_requested_method_whose_package_is_missing_is_one_line_before_any_work(
    task_module, tmp_path, capsys, no_lrfree, monkeypatch, methods, module
):
    called = []
    monkeypatch.setattr(C, "find_lrs", lambda *a, **k: called.append(1))
    rc = main(["compare", f"{task_module}:make", "--methods", methods, "--no-plot", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 2 and called == [] and out == ""
    method = methods.split(",")[-1]
    assert err == (
        f"lrkit compare: error: --methods {methods!r}: method {method!r} needs {module}: "
        "pip install 'lrkit[lrfree]'\n"
    )


def test_every_method_diverging_is_exit_1_with_no_best(task_module, tmp_path, capsys):
    js = tmp_path / "nan.json"
    argv = ["compare", f"{task_module}:make_nan", "--methods", "fixed,adam", "--steps", "10"]
    rc = main([*argv, "--finder-iter", "20", "--no-plot", "--json", str(js), "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "* best" not in out and "no method ended with a finite loss" in out
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(
            "lrkit compare: error: no method ended with a finite loss (all diverged or failed)"
        )
    )
    assert js.exists()  # the results asked for are still written


def test_every_method_failing_still_writes_the_table_json_and_plot(task_module, tmp_path, capsys):
    js, png = tmp_path / "late.json", tmp_path / "late.png"
    argv = ["compare", f"{task_module}:make_late", "--methods", "fixed,cosine", "--steps", "20"]
    rc = main([*argv, "--finder-iter", "10", "--json", str(js), "-o", str(png), "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert out.count("failed: KeyError: 'late failure'") == 2
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(
            "lrkit compare: error: no method ended with a finite loss (all diverged or failed)"
        )
    )
    rows = json.loads(js.read_text())["results"]
    assert [r["error"] for r in rows] == ["KeyError: 'late failure'"] * 2
    assert png.stat().st_size > 0


def test_a_method_failing_is_exit_1_naming_it_and_the_others_are_written(
    task_module, tmp_path, capsys, monkeypatch
):
    pytest.importorskip("prodigyopt")
    import lrkit.torch

    def broken(params, **kwargs):
        raise RuntimeError("no prodigy today")

    monkeypatch.setattr(lrkit.torch, "prodigy", broken)
    js = tmp_path / "one.json"
    argv = ["compare", f"{task_module}:make_linear", "--methods", "fixed,prodigy", "--steps", "10"]
    rc = main([*argv, "--finder-iter", "10", "--no-plot", "--json", str(js), "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 1 and "* best" in out and "failed: RuntimeError: no prodigy today" in out
    assert err == (
        "lrkit compare: error: 1 method failed (prodigy; first: RuntimeError: no prodigy "
        "today): the table and files hold the others\n"
    )
    rows = json.loads(js.read_text())["results"]
    assert [r["error"] for r in rows] == ["", "RuntimeError: no prodigy today"]


def test_an_error_in_a_range_test_ends_the_command_as_in_find(task_module, capsys):
    """No default LR in its place: the runs would meet the same error."""
    argv = ["compare", f"{task_module}:make_bad_batch", "--methods", "fixed", "--steps", "10"]
    rc = main([*argv, "--finder-iter", "10", "--no-plot", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 1 and "range test suggestions" not in out
    assert err.startswith(
        f"lrkit compare: error in target '{task_module}:make_bad_batch' during the runs: "
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied"
    )
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "signame, code, how", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated (SIGTERM)")]
)
def test_ctrl_c_keeps_the_methods_that_finished(
    task_module, tmp_path, capsys, monkeypatch, signame, code, how
):
    """Ctrl-C (or SIGTERM) while the third method trains: the table of the two that finished
    is printed, --json and the plot are written, marked interrupted, with a line naming the
    methods that did not run; then the one line and exit code of an interrupt."""
    import signal

    real = C.run_method

    def run(method, **kwargs):
        if method == "cosine":
            signal.raise_signal(getattr(signal, signame))
        return real(method, **kwargs)

    monkeypatch.setattr(C, "run_method", run)
    js, png = tmp_path / "r.json", tmp_path / "r.png"
    argv = ["compare", f"{task_module}:make", "--methods", "fixed,step,cosine,adam"]
    argv += ["--steps", "10", "--finder-iter", "10", "--quiet"]
    rc = main([*argv, "--json", str(js), "-o", str(png)])
    out, err = capsys.readouterr()
    assert rc == code
    assert err == f"\nlrkit compare: {how}\n"
    lines = out.splitlines()
    rows = [ln.split()[0].lstrip("*") for ln in lines[lines.index("") + 3 :] if ln.strip()][:2]
    assert rows == ["fixed", "step"]
    assert lines[-3:] == [
        "  interrupted after 2 of 4 methods; not run: cosine (stopped while training), adam",
        f"  results written to {js}",
        f"  plot written to {png}",
    ]
    data = json.loads(js.read_text())
    assert data["interrupted"] is True and data["not_run"] == ["cosine", "adam"]
    assert [r["method"] for r in data["results"]] == ["fixed", "step"]
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_ctrl_c_before_any_method_finished_writes_nothing(
    task_module, tmp_path, capsys, monkeypatch
):
    def run(method, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(C, "run_method", run)
    js = tmp_path / "r.json"
    argv = ["compare", f"{task_module}:make", "--methods", "fixed,adam", "--steps", "10"]
    rc = main([*argv, "--finder-iter", "10", "--json", str(js), "--no-plot", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 130 and err == "\nlrkit compare: interrupted\n"
    assert out == f"lrkit compare: {task_module}:make; 2 methods x 10 steps, seed 0\n"
    assert not js.exists()


def test_steps_beyond_2_to_the_53_are_refused_before_any_work(task_module, capsys, monkeypatch):
    def work(*args, **kwargs):
        raise AssertionError("the work started")

    monkeypatch.setattr(C, "find_lrs", work)
    monkeypatch.setattr(C, "compare", work)
    argv = ["compare", f"{task_module}:make", "--methods", "step", "--no-plot", "--quiet"]
    assert main([*argv, "--steps", "9007199254740993"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "lrkit compare: error: --steps must be an integer in [10, 2**53], got 9007199254740993\n"
    )


class _ReaderGone(io.StringIO):
    """A standard output whose reader went away (``... | head -1``): every write fails."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("command", ["compare", "find", "tune"])
def test_the_files_are_written_when_the_reader_of_stdout_goes_away(
    task_module, tmp_path, monkeypatch, command
):
    """``lrkit compare ... --json r.json | head -1``: the printing stops, the files asked for
    are written all the same, exit code 141. ``lrkit find`` and ``lrkit tune`` alike."""
    js, png = tmp_path / "r.json", tmp_path / "r.png"
    outputs = ["--json", str(js)]
    if command == "compare":
        argv = ["compare", f"{task_module}:make", "--methods", "fixed,adam", "--steps", "10"]
        argv += ["--finder-iter", "10", "--quiet", "-o", str(png)]
    elif command == "find":
        argv = ["find", f"{task_module}:make", "--num-iter", "10", "--no-train", "--quiet"]
        argv += ["-o", str(png)]
    else:
        pytest.importorskip("optuna")
        pytest.importorskip("sklearn")
        argv = ["tune", "--demo", "--trials", "1", "--epochs", "1", "--no-progress"]
        argv += ["--storage", f"sqlite:///{tmp_path / 't.db'}", "--plot", str(png)]
    monkeypatch.setattr(sys, "stdout", _ReaderGone())
    assert main([*argv, *outputs]) == 141
    assert isinstance(json.loads(js.read_text()), dict)
    assert png.read_bytes()[:4] == b"\x89PNG"


MOVING_TUNE_TASK = """
import os
from lrkit.tune import Task

def train(schedule, report):
    os.makedirs("moved", exist_ok=True)
    os.chdir("moved")
    return schedule(0)

def make():
    return Task(train=train, total_steps=20)
"""


@pytest.mark.parametrize("command", ["compare", "find", "tune"])
def test_relative_outputs_land_where_they_were_checked_when_the_target_moves(
    task_module, tmp_path, monkeypatch, capsys, command
):
    """A target that changes folder (os.chdir): --json and the plot, given as relative
    paths, are written in the folder they were checked in, as the messages name them."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    if command == "compare":
        argv = ["compare", f"{task_module}:make_moves", "--methods", "fixed", "--steps", "10",
                "--finder-iter", "10", "-o", "out/p.png"]  # fmt: skip
    elif command == "find":
        argv = ["find", f"{task_module}:make_moves", "--num-iter", "10", "--no-train"]
        argv += ["-o", "out/p.png"]
    else:
        pytest.importorskip("optuna")
        (tmp_path / "moving_tune_mod.py").write_text(MOVING_TUNE_TASK)
        monkeypatch.delitem(sys.modules, "moving_tune_mod", raising=False)
        argv = ["tune", "moving_tune_mod:make", "--trials", "1", "--lr-range", "1e-3", "1e-1",
                "--no-progress", "--storage", f"sqlite:///{tmp_path / 't.db'}",
                "--plot", "out/p.png"]  # fmt: skip
    assert main([*argv, "--json", "out/r.json"]) == 0, capsys.readouterr().err
    assert isinstance(json.loads((tmp_path / "out" / "r.json").read_text()), dict)
    assert (tmp_path / "out" / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "moved" / "out").exists() and os.getcwd() == str(tmp_path)


@pytest.mark.parametrize("command", ["find"])  # (compare calls its target once per method)
def test_outputs_are_not_written_elsewhere_when_the_starting_folder_is_gone(
    task_module, tmp_path, monkeypatch, capsys, command
):
    """A target that moves away and removes the folder the command started in: the outputs
    are not written under their names in another folder; one line says why (exit code 1).
    A target failing in a folder gone since is named in one line, without a traceback."""
    start = tmp_path / "start"
    start.mkdir()
    monkeypatch.chdir(start)
    extra = (["--methods", "fixed", "--steps", "10", "--finder-iter", "10"]
             if command == "compare" else ["--num-iter", "10", "--no-train"])  # fmt: skip
    argv = [command, f"{task_module}:make_leaves_a_gone_start", *extra, "--json", "r.json"]
    try:
        assert main([*argv, "-o", "p.png", "--quiet"]) == 1
        err = capsys.readouterr().err.splitlines()[-1]
        assert err == (
            f"lrkit {command}: error: the folder the command started in ({start}) is gone: "
            "the output files were not written"
        )
        assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == []
        for target in ("fails_in_a_gone_folder", "fails_relative_in_a_gone_folder"):
            assert main([command, f"{task_module}:{target}", *extra]) == 1
            err = capsys.readouterr().err
            assert "Traceback" not in err and "RuntimeError: boom" in err
    finally:
        os.chdir(tmp_path)


@pytest.mark.parametrize("command", ["compare", "find", "tune"])
def test_a_dash_for_an_output_is_refused_naming_standard_output(capsys, command):
    argv = {"compare": ["compare", "--demo"], "find": ["find", "--demo"],
            "tune": ["tune", "--demo"]}[command]  # fmt: skip
    assert main([*argv, "--json", "-"]) == 2
    assert capsys.readouterr().err == (
        f"lrkit {command}: error: --json '-' would be a file named '-': give a file name, or "
        "/dev/stdout for standard output\n"
    )
    image = "--plot" if command == "tune" else "-o/--output"  # (an image needs a type)
    assert main([*argv, image.split("/")[0], "-"]) == 2
    assert capsys.readouterr().err == (
        f"lrkit {command}: error: {image} '-' would be a file named '-': give a file name\n"
    )


@pytest.mark.parametrize("command", ["compare", "find"])
def test_a_target_with_validation_data_is_read_without_a_deprecated_name(
    task_module, tmp_path, recwarn, command
):
    js = tmp_path / "c.json"
    if command == "compare":
        argv = ["compare", f"{task_module}:make", "--methods", "plateau", "--steps", "10",
                "--finder-iter", "10", "--no-plot"]  # fmt: skip
    else:
        argv = [
            "find",
            f"{task_module}:make",
            "--num-iter",
            "20",
            "--train-steps",
            "10",
            "--no-plot",
        ]
    assert main([*argv, "--quiet", "--json", str(js)]) == 0
    said = [str(w.message) for w in recwarn if issubclass(w.category, DeprecationWarning)]
    assert not [m for m in said if "Setup" in m]
    if command == "compare":
        assert math.isfinite(json.loads(js.read_text())["results"][0]["val_loss"])


def test_the_command_s_check_leaves_a_loader_s_own_generator_as_the_api_finds_it(
    task_module, tmp_path, capsys
):
    """The check reads the loader's first batch: its generator is put back, so the command's
    runs draw what compare() of the same target draws."""
    import importlib
    import json

    from lrkit import compare as C

    out = tmp_path / "c.json"
    argv = ["compare", f"{task_module}:make_own_generator", "--steps", "10", "--finder-iter",
            "10", "--methods", "fixed,cosine", "--no-plot", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    cli = [r["val_loss"] if r["val_loss"] is not None else r["final_loss"]
           for r in json.loads(out.read_text())["results"]]  # fmt: skip
    mod = importlib.import_module(task_module)
    mod.GEN.manual_seed(7)  # the module as a fresh process imports it
    api = C.compare(C.factory(mod.make_own_generator, seed=0), steps=10, num_iter=10,
                    methods="fixed,cosine")  # fmt: skip
    assert cli == [r.final_loss for r in api.results]


def test_plateau_on_a_one_shot_val_data_is_a_one_line_mistake_naming_it(task_module, capsys):
    argv = ["compare", f"{task_module}:make_one_shot_val", "--steps", "10", "--finder-iter",
            "10", "--methods", "plateau,fixed", "--no-plot"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "val_data must be a list, a tuple or a DataLoader for " in err
    assert main([*argv[:-2], "fixed", "--no-plot"]) == 0  # read once, at the end: fine


def test_data_that_runs_out_is_a_warning_line_per_method_naming_steps(task_module, capsys):
    argv = ["compare", f"{task_module}:make_one_shot", "--steps", "10", "--finder-iter", "10",
            "--methods", "fixed,adam", "--no-plot"]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err == ""  # no Python warning pointing into lrkit
    lines = out.splitlines()
    assert lines[1:3] == [
        f"  warning: method {m!r}: data ran out after 8 of --steps 10 steps: a one-shot iterator "
        "(a generator) yields its batches once; return a list, a DataLoader or a function "
        "returning a new iterator"
        for m in ("fixed", "adam")
    ]
    rows = [ln for ln in lines if ln.lstrip(" *").startswith(("fixed ", "adam "))]
    assert len(rows) == 2 and all(ln.endswith("data ran out after 8 of 10 steps") for ln in rows)


def test_the_header_range_test_line_and_json_say_what_ran(task_module, tmp_path, capsys):
    """One method (singular), the cyclic range from its bottom to its top, and the seed in
    the JSON."""
    js = tmp_path / "c.json"
    argv = ["compare", f"{task_module}:make_linear", "--methods", "cyclic", "--steps", "10",
            "--finder-iter", "10", "--seed", "3", "--no-plot", "--json", str(js)]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    data = json.loads(js.read_text())
    lrs = data["lrs"]
    assert lines[0] == f"lrkit compare: {task_module}:make_linear; 1 method x 10 steps, seed 3"
    assert lines[1] == (
        f"range test suggestions: base {lrs['base']:.3g} "
        f"(cyclic {lrs['base_min']:.3g}..{lrs['base_max']:.3g})"
    )
    assert lrs["base_min"] < lrs["base_max"]
    assert data["seed"] == 3 and data["steps"] == 10


def test_a_range_test_without_a_suggestion_is_a_note_under_the_suggestions(
    task_module, capsys, monkeypatch
):
    from types import SimpleNamespace

    import lrkit.torch

    none = SimpleNamespace(suggestion=None, max_lr=None, base_lr=None)
    monkeypatch.setattr(lrkit.torch, "find_lr", lambda *a, **k: none)
    argv = ["compare", f"{task_module}:make_linear", "--methods", "fixed", "--steps", "10",
            "--finder-iter", "10", "--no-plot"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:3] == [
        "range test suggestions: base 0.01 (cyclic 0.00333..0.03)",
        "  note: no reliable suggestion for SGD: using lr=0.01",
    ]


def test_two_methods_failing_are_counted_and_named_in_the_error(task_module, capsys, monkeypatch):
    pytest.importorskip("prodigyopt")
    pytest.importorskip("schedulefree")
    import lrkit.torch

    def broken(params, **kwargs):
        raise RuntimeError("not today")

    monkeypatch.setattr(lrkit.torch, "prodigy", broken)
    monkeypatch.setattr(lrkit.torch, "schedule_free", broken)
    argv = ["compare", f"{task_module}:make_linear", "--methods", "fixed,schedulefree,prodigy",
            "--steps", "10", "--finder-iter", "10", "--no-plot", "--quiet"]  # fmt: skip
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        "lrkit compare: error: 2 methods failed (schedulefree, prodigy; first: RuntimeError: "
        "not today): the table and files hold the others\n"
    )


def test_an_unknown_method_is_one_line_naming_the_option(task_module, capsys):
    argv = ["compare", f"{task_module}:make", "--methods", "fixed,sgdr", "--no-plot"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"lrkit compare: error: --methods must be a comma-separated subset of "
        f"{', '.join(C.METHODS)}, got 'fixed,sgdr' ('sgdr' is none of them)\n"
    )
    assert main(["compare", "--demo", "--methods", "fixed,Cosin", "--no-plot"]) == 2
    assert capsys.readouterr().err == (
        f"lrkit compare: error: --methods must be a comma-separated subset of "
        f"{', '.join(C.METHODS)}, got 'fixed,Cosin' ('cosin' is none of them: did you mean "
        "'cosine'?)\n"
    )


def test_json_on_standard_output_comes_last_without_a_line_naming_it(task_module, capfd):
    argv = ["compare", f"{task_module}:make_linear", "--methods", "fixed", "--steps", "10",
            "--finder-iter", "10", "--no-plot", "--json", "/dev/stdout"]  # fmt: skip
    assert main(argv) == 0
    out = capfd.readouterr().out
    assert "results written to" not in out
    text = out[out.index("\n{") + 1 :]
    assert json.loads(text)["results"][0]["method"] == "fixed"


def test_a_plot_that_cannot_be_written_is_exit_1(task_module, tmp_path, capsys, monkeypatch):
    def no_disk(self, path=None, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(C.Comparison, "plot", no_disk)
    png, js = tmp_path / "c.png", tmp_path / "c.json"
    argv = ["compare", f"{task_module}:make_linear", "--methods", "fixed", "--steps", "10",
            "--finder-iter", "10", "-o", str(png), "--json", str(js), "--quiet"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "-o/--output" in err
    assert not png.exists() and json.loads(js.read_text())["results"][0]["error"] == ""


UNFIT_PARTS_TASK = """
import torch

def _parts():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, generator=g)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, opt, torch.nn.functional.mse_loss, x, x.sum(1, keepdim=True)

def make_bad_val():
    model, opt, loss, x, y = _parts()
    return model, opt, loss, [(x, y)], [(x,)]

def make_bad_stream():
    model, opt, loss, x, y = _parts()
    return model, opt, loss, (b for b in [(x,), (x,)])

def make_list_of_singles():
    model, opt, loss, x, y = _parts()
    return model, opt, loss, [(x,), (x,)]

def make_int_data():
    model, opt, loss, x, y = _parts()
    return model, opt, loss, 5

def make_no_loss():
    model, opt, loss, x, y = _parts()
    return model, opt, None, [(x, y)]
"""

_NO_PAIRS = "must yield (x, y) batches for loss_fn(model(x), y), got a tuple of 1 item"


@pytest.mark.parametrize(
    "target, message",
    [
        ("make_bad_val", f"val_data {_NO_PAIRS}"),
        ("make_bad_stream", f"data {_NO_PAIRS}"),
        ("make_list_of_singles", f"data {_NO_PAIRS}"),
        (
            "make_int_data",
            "data must be an iterable of (x, y) batches (a list, a generator, a loader), got int",
        ),
        ("make_no_loss", "loss_fn must be a callable loss_fn(output, target), got NoneType"),
    ],
    ids=["bad_val", "bad_stream", "list_of_singles", "int_data", "no_loss"],
)
def test_the_command_refuses_unfit_data_or_loss_before_printing_anything(
    write_module, capsys, target, message
):
    """`lrkit compare` checks what the target returns up front: the training batches (a
    re-readable list read, not only its type; a one-shot iterator built afresh at each call),
    the validation batches and the loss function. Exit 2 with one line naming them, and not
    even the header on standard output."""
    module = write_module("cmp_unfit_parts_mod", UNFIT_PARTS_TASK)
    argv = ["compare", f"{module}:{target}", "--methods", "fixed", "--steps", "10",
            "--finder-iter", "10", "--no-plot"]  # fmt: skip
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"lrkit compare: error: target '{module}:{target}': {message}\n"


def test_a_failed_methods_error_is_quoted_up_to_200_characters(task_module, capsys, monkeypatch):
    """The error line quotes the first failure on one line: a message of up to 200 characters
    whole, a longer one cut there with its length; the table's note keeps it whole."""
    import lrkit.schedules

    words = "the cosine schedule could not be built for this optimizer " * 5
    message = f"RuntimeError: {words.strip()}"
    assert 200 < len(message)

    def broken(*args, **kwargs):
        raise RuntimeError(words)

    monkeypatch.setattr(lrkit.schedules, "cosine", broken)
    argv = ["compare", f"{task_module}:make_linear", "--methods", "fixed,cosine", "--steps",
            "10", "--finder-iter", "10", "--no-plot"]  # fmt: skip
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert f"failed: {message}" in out
    assert err == (
        f"lrkit compare: error: 1 method failed (cosine; first: {message[:170]} ... "
        f"({len(message)} characters)): the table and files hold the others\n"
    )
    words = "no cosine here, " * 8
    message = f"RuntimeError: {words.strip()}"
    assert 30 < len(message) <= 200
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        f"lrkit compare: error: 1 method failed (cosine; first: {message}): the table and "
        "files hold the others\n"
    )


def test_the_steps_and_range_test_length_default_to_400_and_100(task_module, capsys, monkeypatch):
    given: list[dict] = []

    def compare(make, **kwargs):
        given.append(kwargs)
        raise KeyboardInterrupt  # nothing finished: nothing to show or write

    monkeypatch.setattr(C, "compare", compare)
    argv = ["compare", f"{task_module}:make", "--methods", "fixed,adam", "--no-plot"]
    assert main(argv) == 130
    assert [(k["steps"], k["num_iter"]) for k in given] == [(400, 100)]
    assert capsys.readouterr().out == (
        f"lrkit compare: {task_module}:make; 2 methods x 400 steps, seed 0\n"
    )


def test_data_running_out_is_said_also_when_python_warnings_are_ignored(task_module, capsys):
    """``python -W ignore``: the lines are the command's own output, printed all the same."""
    import warnings

    argv = ["compare", f"{task_module}:make_one_shot", "--steps", "10", "--finder-iter", "10",
            "--methods", "fixed,adam", "--no-plot"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0] for ln in lines[1:3]] == ["  warning"] * 2
    assert [ln.split("'")[1] for ln in lines[1:3]] == ["fixed", "adam"]


LEAVES_ITS_START_ONCE = """
import os
import shutil

import torch

LEFT = []

def make():
    if not LEFT:  # the first call moves elsewhere and removes the folder it started in
        LEFT.append(os.getcwd())
        os.makedirs(os.path.join(LEFT[0], "..", "elsewhere"), exist_ok=True)
        os.chdir(os.path.join(LEFT[0], "..", "elsewhere"))
        shutil.rmtree(LEFT[0])
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, generator=g)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, opt, torch.nn.functional.mse_loss, [(x, x.sum(1, keepdim=True))]
"""


def test_compare_writes_no_output_elsewhere_when_the_starting_folder_is_gone(
    write_module, tmp_path, monkeypatch, capsys
):
    module = write_module("cmp_leaves_start_mod", LEAVES_ITS_START_ONCE)
    start = tmp_path / "start"
    start.mkdir()
    monkeypatch.chdir(start)
    argv = ["compare", f"{module}:make", "--methods", "fixed", "--steps", "10",
            "--finder-iter", "10", "--json", "r.json", "-o", "p.png", "--quiet"]  # fmt: skip
    try:
        assert main(argv) == 1
        assert capsys.readouterr().err == (
            f"lrkit compare: error: the folder the command started in ({start}) is gone: the "
            "output files were not written\n"
        )
        assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == []
    finally:
        os.chdir(tmp_path)


def test_a_target_s_data_given_as_a_function_is_taken_and_the_callers_rngs_left_alone(
    write_module, capsys
):
    """Data as fit takes it (a function returning the batches); and the command's own check
    of the target, which seeds every call, leaves the caller's global RNGs as they were."""
    import random

    import numpy as np

    module = write_module(
        "cmp_data_fn_mod",
        textwrap.dedent(
            """
            import torch

            def make():
                g = torch.Generator().manual_seed(1)
                x = torch.randn(64, 3, generator=g)
                y = x.sum(1, keepdim=True)
                batches = [(x[:32], y[:32]), (x[32:], y[32:])]
                model = torch.nn.Linear(3, 1)
                opt = torch.optim.SGD(model.parameters(), lr=0.1)
                return model, opt, torch.nn.functional.mse_loss, lambda: iter(batches)
            """
        ),
    )
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(7)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    argv = ["compare", f"{module}:make", "--methods", "fixed", "--steps", "10",
            "--finder-iter", "10", "--no-plot", "--quiet"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]
