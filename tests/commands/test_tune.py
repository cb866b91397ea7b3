"""``lrkit tune``: the summary it prints and the ``--json`` file it writes, the line and exit
code of each way a search stops short, and the note on Ctrl-C."""

from __future__ import annotations

import json
import warnings

import pytest

from lrkit.cli import main

#: A target whose trains raise Ctrl-C (a user stopping the search in its first trial).
INTERRUPTED_TASK = """\
from lrkit.tune import Task

def train(schedule, report):
    raise KeyboardInterrupt

def make():
    return Task(train=train, total_steps=20)
"""

URL = "postgresql://alice:hunter2secret@127.0.0.1:1/lrkit"  # nothing listens on port 1
MASKED = "postgresql://alice:***@127.0.0.1:1/lrkit"


@pytest.fixture
def optuna():
    return pytest.importorskip("optuna")


@pytest.fixture
def target(tune_task_module, tmp_path, monkeypatch) -> str:
    """A quick target's ``module:function``, run from ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    return tune_task_module("lrkit_tune_cmd_task")


def _argv(target: str, *argv: str) -> list[str]:
    return ["tune", target, "--no-progress", "--seeding", "blind", "--seed", "0", *argv]


def test_tune_prints_the_summary_and_writes_every_trial_to_json(optuna, target, tmp_path, capsys):
    argv = _argv(target, "--trials", "2", "--top", "1", "--plot", "none", "--json", "r.json")
    assert main([*argv, "--storage", "sqlite:///s.db", "--study", "s"]) == 0
    study = optuna.load_study(study_name="s", storage="sqlite:///s.db")
    best = min(study.trials, key=lambda t: t.value)
    spec = best.user_attrs["schedule"]
    assert json.loads((tmp_path / "r.json").read_text()) == {
        "study": "s",
        "storage": "sqlite:///s.db",
        "metric": "value",
        "n_trials": 2,
        "complete": 2,
        "reached": True,
        "lr_range": [1e-6, 10.0],
        "seeding": "blind",
        "searched_by": "blind",
        "best": {"trial": best.number, "value": best.value, "schedule": spec},
        "trials": [
            {
                "number": t.number,
                "state": "COMPLETE",
                "value": t.value,
                "params": t.params,
                "schedule": t.user_attrs["schedule"],
                "diverged": False,
            }
            for t in study.trials
        ],
    }
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["study 's' (sqlite:///s.db): complete 2",
                         "peak LR searched in [1e-06, 10] (blind)", ""]  # fmt: skip
    table, rest = lines[3:6], lines[6:]  # --top 1: a header, its rule and one row
    assert table[2].split()[:2] == ["1", str(best.number)]
    assert rest == [
        "",
        f"best value: {best.value:.4g} (trial {best.number})",
        "best schedule (full precision):",
        spec,
        "results written to r.json",
    ]


def test_tune_quiet_with_json_prints_only_the_best_schedule(optuna, target, tmp_path, capsys):
    argv = _argv(target, "--trials", "1", "--plot", "none", "--json", "r.json", "--quiet")
    assert main([*argv, "--storage", "sqlite:///s.db", "--study", "s"]) == 0
    spec = json.loads((tmp_path / "r.json").read_text())["best"]["schedule"]
    assert capsys.readouterr() == (spec + "\n", "")


def test_tune_stopped_by_its_timeout_says_how_to_go_on_and_exits_1(
    optuna, target, tmp_path, capsys
):
    common = ["--storage", "sqlite:///s.db", "--study", "s"]
    # no trial started: no default plot either (there is nothing to draw)
    assert main(_argv(target, "--trials", "1", "--timeout", "1e-9", *common)) == 1
    out, err = capsys.readouterr()
    tally = "(no new trial is started after it; 0 pruned, 0 diverged, 0 failed in the study)"
    assert out == ""
    assert err.splitlines()[-1] == (
        "lrkit tune: error: no trial finished: this run stopped at its --timeout of 1e-09 "
        f"seconds {tally}; run the same command again to continue the study, or raise --timeout"
    )
    assert not list(tmp_path.glob("*.png"))
    assert main(_argv(target, "--trials", "1", "--plot", "none", *common)) == 0
    capsys.readouterr()
    argv = _argv(target, "--trials", "3", "--timeout", "1e-9", "--plot", "none", "--quiet")
    assert main([*argv, *common, "--json", "r.json"]) == 1
    out, err = capsys.readouterr()
    assert out.count("\n") == 1  # the best schedule so far
    assert err == (
        "lrkit tune: error: only 1 of 3 trials COMPLETE: this run stopped at its --timeout of "
        f"1e-09 seconds {tally}; run the same command again to add trials to the study, or "
        "raise --timeout\n"
    )
    data = json.loads((tmp_path / "r.json").read_text())
    assert (data["n_trials"], data["complete"], data["reached"]) == (3, 1, False)


def test_tune_ctrl_c_names_the_study_it_kept(optuna, write_module, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    target = f"{write_module('lrkit_tune_cmd_int', INTERRUPTED_TASK)}:make"
    assert main(_argv(target, "--quiet", "--storage", "sqlite:///i.db")) == 130
    study = "lrkit_tune_cmd_int-make"  # the default: from the target
    assert capsys.readouterr() == (
        "",
        f"\nlrkit tune: interrupted; the finished trials stay in study {study!r} "
        "(sqlite:///i.db): run the same command to continue\n",
    )
    trials = optuna.load_study(study_name=study, storage="sqlite:///i.db").trials
    assert [t.state.name for t in trials] == ["FAIL"]


def _interrupted(*args, **kwargs):
    raise KeyboardInterrupt


def test_tune_ctrl_c_masks_the_password_of_the_storage(optuna, target, monkeypatch, capsys):
    pytest.importorskip("psycopg2")
    import lrkit.tune

    monkeypatch.setattr(lrkit.tune, "tune", _interrupted)
    assert main(_argv(target, "--quiet", "--plot", "none", "--storage", URL, "--study", "s")) == 130
    assert capsys.readouterr() == (
        "",
        f"\nlrkit tune: interrupted; the finished trials stay in study 's' ({MASKED}): run the "
        "same command to continue\n",
    )


@pytest.mark.parametrize(
    "held, kept",
    [
        ("another study", False),  # the study's name is not in it: nothing was stored
        ("nothing", True),  # an empty file: what it holds cannot be told, said as kept
    ],
)
def test_tune_ctrl_c_reads_the_database_file_for_the_study(
    optuna, target, tmp_path, monkeypatch, capsys, held, kept
):
    import lrkit.tune

    url = "sqlite:///i.db"
    if held == "another study":
        optuna.create_study(study_name="other", storage=url)
    else:
        (tmp_path / "i.db").touch()
    capsys.readouterr()
    monkeypatch.setattr(lrkit.tune, "tune", _interrupted)
    assert main(_argv(target, "--quiet", "--plot", "none", "--storage", url, "--study", "s")) == 130
    said = (
        f"; the finished trials stay in study 's' ({url}): run the same command to continue"
        if kept
        else " before the search began (nothing was stored)"
    )
    assert capsys.readouterr().err == f"\nlrkit tune: interrupted{said}\n"


def test_tune_summary_and_json_mask_the_password_of_the_storage(
    optuna, target, tmp_path, monkeypatch, capsys
):
    pytest.importorskip("psycopg2")
    import lrkit.tune

    real = lrkit.tune.tune

    def on_a_file(task, **kwargs):  # the server's study, kept in a file here
        return real(task, **{**kwargs, "storage": "sqlite:///s.db"})

    monkeypatch.setattr(lrkit.tune, "tune", on_a_file)
    argv = _argv(target, "--trials", "1", "--plot", "none", "--json", "r.json")
    assert main([*argv, "--storage", URL, "--study", "s"]) == 0
    out, err = capsys.readouterr()
    assert "hunter2secret" not in out + err
    assert out.splitlines()[0] == f"study 's' ({MASKED}): complete 1"
    assert json.loads((tmp_path / "r.json").read_text())["storage"] == MASKED


def test_tune_escapes_a_study_name_its_standard_output_cannot_encode(optuna, target, monkeypatch):
    """An ASCII standard output and a study named outside it: the summary says it escaped,
    as standard error would, the search done (exit code 0); the stream's strict error
    handler is put back afterwards."""
    import io
    import sys

    stdout = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="strict", newline="\n")
    monkeypatch.setattr(sys, "stdout", stdout)
    argv = _argv(target, "--trials", "1", "--plot", "none", "--storage", "sqlite:///s.db")
    assert main([*argv, "--study", "\u00e9t\u00e9"]) == 0
    assert stdout.errors == "strict"
    stdout.flush()
    lines = stdout.buffer.getvalue().decode("ascii").splitlines()
    assert lines[0] == "study '\\xe9t\\xe9' (sqlite:///s.db): complete 1"
    assert optuna.get_all_study_names("sqlite:///s.db") == ["\u00e9t\u00e9"]


def test_tune_without_storage_keeps_the_study_in_lrkit_tune_db_of_the_working_folder(
    optuna, target, tmp_path
):
    argv = _argv(target, "--trials", "1", "--plot", "none", "--json", "r.json", "--quiet")
    assert main([*argv, "--study", "s"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["storage"] == "sqlite:///lrkit-tune.db"
    assert (tmp_path / "lrkit-tune.db").is_file()
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path / 'lrkit-tune.db'}") == ["s"]


def test_tune_plot_none_writes_no_plot_also_beside_a_database_named_none(
    optuna, target, tmp_path, capsys
):
    """``--plot none`` asks for no image: it is never taken for a file named ``none``, the
    database of ``--storage`` included."""
    argv = _argv(target, "--trials", "1", "--plot", "none", "--storage", "sqlite:///none")
    assert main([*argv, "--study", "s", "--quiet"]) == 0
    assert optuna.get_all_study_names("sqlite:///none") == ["s"]
    assert not list(tmp_path.glob("*.png"))


def test_tune_a_plot_that_fails_exits_1_also_with_json_on_stdout(
    optuna, target, tmp_path, monkeypatch, capfd
):
    """The JSON written last, to standard output, does not hide the plot's failure."""
    from lrkit.tune import TuneResult

    def fails(self, *a, **k):
        raise RuntimeError("the backend needs a program that is not installed")

    monkeypatch.setattr(TuneResult, "plot", fails)
    pytest.importorskip("matplotlib")
    argv = _argv(target, "--trials", "1", "--plot", "t.png", "--json", "/dev/stdout")
    assert main([*argv, "--storage", "sqlite:///s.db"]) == 1
    out, err = capfd.readouterr()
    assert json.loads(out[out.index("\n{") + 1 :])["complete"] == 1
    assert err.splitlines()[-1].startswith("lrkit tune: error: --plot")
    assert not (tmp_path / "t.png").exists()


DIVERGING_TASK = """\
from lrkit.tune import Task

def make():
    return Task(train=lambda schedule, report: float("inf"), total_steps=20)
"""


def test_tune_names_the_cap_of_max_trials_it_reached(
    optuna, write_module, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    target = f"{write_module('lrkit_tune_cmd_inf', DIVERGING_TASK)}:make"
    argv = _argv(target, "--trials", "1", "--max-trials", "2", "--plot", "none", "--quiet")
    assert main([*argv, "--storage", "sqlite:///s.db"]) == 1
    assert capsys.readouterr().err.startswith(
        "lrkit tune: error: no trial finished: this run reached its cap of 2 started trials "
        "(--max-trials; 0 pruned, 2 diverged, 0 failed in the study); "
    )


def test_tune_a_study_of_another_heartbeat_says_to_leave_the_option_out(optuna, target, capsys):
    common = ["--trials", "1", "--plot", "none", "--quiet", "--storage", "sqlite:///h.db"]
    assert main(_argv(target, *common, "--study", "s", "--heartbeat", "5")) == 0
    capsys.readouterr()
    assert main(_argv(target, *common, "--study", "s", "--heartbeat", "7")) == 2
    assert capsys.readouterr() == (
        "",
        "lrkit tune: error: study 's' (sqlite:///h.db) was created with --heartbeat 5, not "
        "--heartbeat 7: pass --study NAME for a new study, or the same options to continue it "
        "(or leave out --heartbeat and --grace)\n",
    )


def test_tune_names_the_default_plot_of_a_study_without_file_name_characters(
    optuna, target, tmp_path, capsys
):
    pytest.importorskip("matplotlib")
    argv = _argv(target, "--trials", "1", "--storage", "sqlite:///s.db", "--study", "!!!")
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "plot of the search: lrkit-tune-study.png"
    assert (tmp_path / "lrkit-tune-study.png").stat().st_size > 0


def test_tune_plot_given_by_name_replaces_the_file_there(optuna, target, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    (tmp_path / "t.png").write_bytes(b"an older image")
    argv = _argv(target, "--trials", "1", "--storage", "sqlite:///s.db", "--plot", "t.png")
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "plot of the search: t.png"
    assert (tmp_path / "t.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["t.png"]


def test_tune_a_database_lost_during_the_search_is_one_line_and_exit_1(
    optuna, target, monkeypatch, capsys
):
    import sqlite3

    import lrkit.tune
    from lrkit.tune import DatabaseLostError

    def lost(*args, **kwargs):
        error = sqlite3.OperationalError("disk I/O error")
        raise DatabaseLostError("the database stopped answering", error)

    monkeypatch.setattr(lrkit.tune, "tune", lost)
    argv = _argv(target, "--plot", "none", "--quiet", "--storage", "sqlite:///s.db")
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith("lrkit tune: error: ") and "disk I/O error" in err
    assert "run the same command" in err


def test_tune_an_error_raised_inside_optuna_keeps_its_traceback(optuna, target, monkeypatch):
    """Optuna's own ValueError is not taken for a mistake in the command line (exit code 2):
    it is raised on, with its traceback."""
    import lrkit.tune

    def optuna_fails(*args, **kwargs):
        optuna.distributions.FloatDistribution(1.0, 0.0)  # low > high: Optuna raises

    monkeypatch.setattr(lrkit.tune, "tune", optuna_fails)
    argv = _argv(target, "--plot", "none", "--quiet", "--storage", "sqlite:///s.db")
    with pytest.raises(ValueError, match="low"):
        main(argv)


TASK_MOVES = """\
import os
import shutil

from lrkit.tune import Task

def make():
    os.chdir({out!r})
    shutil.rmtree({work!r})
    return Task(train=lambda schedule, report: schedule(0), total_steps=20)
"""


def test_tune_writes_no_output_when_its_starting_folder_is_gone(
    optuna, write_module, tmp_path, monkeypatch, capsys
):
    """A target that moves the process out of the folder the command started in and removes
    it: one line, exit code 1, nothing written elsewhere."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    source = TASK_MOVES.format(work=str(work), out=str(tmp_path))
    target = f"{write_module('lrkit_tune_cmd_moves', source)}:make"
    url = f"sqlite:///{tmp_path / 's.db'}"
    argv = _argv(target, "--trials", "1", "--plot", "none", "--json", "r.json", "--storage", url)
    assert main(argv) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"lrkit tune: error: the folder the command started in ({work}) is gone: the output "
        "files were not written"
    )
    assert not (tmp_path / "r.json").exists()


def test_tune_leaves_a_standard_output_that_refuses_reconfigure_as_it_is(monkeypatch, capsys):
    """A stream whose error handler cannot be changed (closed, say): the command runs and
    says its error all the same."""
    import io
    import sys

    class Refusing(io.TextIOWrapper):
        def reconfigure(self, **kwargs):
            raise OSError("cannot reconfigure this stream")

    stdout = Refusing(io.BytesIO(), encoding="ascii", errors="strict")
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["tune", "--trials", "1", "--plot", "none"]) == 2
    assert stdout.errors == "strict"
    assert capsys.readouterr().err == (
        "lrkit tune: error: give either --demo or a target pkg.module:function\n"
    )


RANGE_TEST_TASK = """\
import warnings

from lrkit.finder import LRFinderWarning
from lrkit.tune import Task

def range_test():
    warnings.warn("the loss curve is flat", LRFinderWarning)
    return (1e-4, 0.1)

def make():
    return Task(train=lambda schedule, report: schedule(0), total_steps=20, metric="val_loss",
                range_test=range_test)
"""


def test_tune_searches_the_pair_its_range_test_returns_and_names_the_metric(
    optuna, write_module, tmp_path, monkeypatch, capsys
):
    """The interval is said once, from the range test's pair (a note of lrkit's finder in
    the range test is not repeated), and the target's metric names the best value."""
    from lrkit.finder import LRFinderWarning

    monkeypatch.chdir(tmp_path)
    target = f"{write_module('lrkit_tune_cmd_pair', RANGE_TEST_TASK)}:make"
    argv = ["tune", target, "--no-progress", "--seed", "0", "--trials", "1", "--plot", "none"]
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        assert main([*argv, "--storage", "sqlite:///s.db", "--json", "r.json"]) == 0
    assert not [w for w in shown if issubclass(w.category, LRFinderWarning)]
    data = json.loads((tmp_path / "r.json").read_text())
    best = data["best"]
    assert (data["metric"], data["lr_range"]) == ("val_loss", [1e-4, 0.1])
    assert (data["seeding"], data["searched_by"]) == ("finder", "range_test's pair")
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[1] == "peak LR searched in [0.0001, 0.1] (range_test's pair)"
    assert f"best val_loss: {best['value']:.4g} (trial {best['trial']})" in lines
    assert err.splitlines() == [
        "running the LR range test to bound the search ...",
        "searching peak LR in [0.0001, 0.1] (range_test's pair), families: constant, cosine, "
        "onecycle, step, cyclic, wsd",
    ]


SLOW_RANGE_TEST_TASK = """\
import time

from lrkit.tune import Task

def range_test():
    time.sleep(1.1)  # the --timeout of 1 second counts the range test
    return (1e-4, 0.1)

def make():
    return Task(train=lambda schedule, report: schedule(0), total_steps=20,
                range_test=range_test)
"""


def test_tune_says_a_whole_number_timeout_as_typed(
    optuna, write_module, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    target = f"{write_module('lrkit_tune_cmd_slow', SLOW_RANGE_TEST_TASK)}:make"
    argv = ["tune", target, "--no-progress", "--trials", "1", "--timeout", "1", "--quiet"]
    assert main([*argv, "--plot", "none", "--storage", "sqlite:///s.db"]) == 1
    assert capsys.readouterr().err.startswith(
        "lrkit tune: error: no trial finished: this run stopped at its --timeout of 1 seconds "
        "(no new trial"
    )
