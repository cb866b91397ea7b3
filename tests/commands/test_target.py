"""``pkg.module:function`` targets: a module of the target that is missing is a mistake in the
command line (exit code 2); a module missing for the target's own imports is the target's
error (exit code 1)."""

from __future__ import annotations

import json
import sys

import pytest

from lrkit._target import TargetNotFoundError, TargetSpecError, import_target
from lrkit.cli import main


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("lrkit_tgt_tasks", "lrkit_tgt_kept", "lrkit_tgt_pkg", "lrkit_tgt_pkg.sub"):
        sys.modules.pop(name, None)


def test_a_missing_import_whose_name_prefixes_the_module_is_the_targets_error(folder):
    # module "lrkit_tgt_tasks" exists; what it imports, "lrkit_tgt", does not
    (folder / "lrkit_tgt_tasks.py").write_text("import lrkit_tgt\n\ndef make():\n    pass\n")
    with pytest.raises(ModuleNotFoundError) as info:
        import_target("lrkit_tgt_tasks:make")
    assert not isinstance(info.value, TargetNotFoundError)
    assert info.value.name == "lrkit_tgt"


def test_a_missing_module_or_package_of_the_target_is_not_found(folder):
    (folder / "lrkit_tgt_pkg").mkdir()
    (folder / "lrkit_tgt_pkg" / "__init__.py").write_text("")
    with pytest.raises(TargetNotFoundError, match="no module named 'lrkit_tgt_pkg.nosub'"):
        import_target("lrkit_tgt_pkg.nosub:make")
    with pytest.raises(TargetNotFoundError, match="no module named 'lrkit_tgt_nopkg'"):
        import_target("lrkit_tgt_nopkg.sub:make")


def test_a_missing_module_names_the_missing_one_on_the_error(folder):
    with pytest.raises(TargetNotFoundError) as info:
        import_target("lrkit_tgt_nopkg.sub:make")
    assert info.value.name == "lrkit_tgt_nopkg"
    assert str(info.value) == (
        "target 'lrkit_tgt_nopkg.sub:make': no module named 'lrkit_tgt_nopkg' (run from the "
        "folder that holds it, or install it)"
    )


def test_a_dotted_attribute_path_names_a_callable_and_anything_else_is_refused(folder):
    (folder / "lrkit_tgt_tasks.py").write_text(
        "value = 3\nnothing = None\n\nclass Task:\n    @staticmethod\n    def make():\n"
        "        return 'made'\n"
    )
    assert import_target("lrkit_tgt_tasks:Task.make")() == "made"
    for attr in ("value", "missing", "nothing.__class__", "Task.missing"):
        with pytest.raises(TargetSpecError) as info:
            import_target(f"lrkit_tgt_tasks:{attr}")
        assert str(info.value) == (
            f"target 'lrkit_tgt_tasks:{attr}': module 'lrkit_tgt_tasks' has no callable {attr!r}"
        )


def test_a_malformed_target_is_quoted_short_with_its_password_masked():
    with pytest.raises(TargetSpecError) as info:
        import_target("tasks.make")
    assert str(info.value) == "target must look like 'package.module:function', got 'tasks.make'"
    with pytest.raises(TargetSpecError) as info:
        import_target("postgresql://user:s3cret@host/db")
    assert "s3cret" not in str(info.value)
    assert str(info.value).endswith("got 'postgresql://user:***@host/db'")
    with pytest.raises(TargetSpecError) as info:
        import_target("x" * 100)
    shown = "'" + "x" * 74 + "...'"
    assert str(info.value) == f"target must look like 'package.module:function', got {shown}"


def test_the_working_folder_is_put_first_on_the_path_when_it_is_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    (tmp_path / "lrkit_tgt_tasks.py").write_text("def make():\n    return 1\n")
    try:
        assert import_target("lrkit_tgt_tasks:make")() == 1
        assert sys.path[0] == str(tmp_path)
    finally:
        sys.modules.pop("lrkit_tgt_tasks", None)


@pytest.mark.parametrize(
    "spec, said",
    [
        ("pkg/tasks.py:make", "pkg.tasks:make"),
        ("./pkg/sub/tasks.py:make", "pkg.sub.tasks:make"),
        ("tasks.py:Task.build", "tasks:Task.build"),
        ("../tasks.py:make", None),  # a file above the folder: no module name from here
        ("my-tasks.py:make", None),
    ],
)
def test_a_file_path_as_the_target_is_told_the_module_it_names(spec, said):
    with pytest.raises(TargetSpecError) as info:
        import_target(spec)
    assert str(info.value) == (
        f"target {spec!r}: name the module, not its file: {said} (run from the folder that "
        "holds it)"
        if said
        else f"target must look like 'package.module:function', got {spec!r}"
    )


@pytest.mark.parametrize("command", ["find", "compare", "tune"])
def test_a_file_name_as_the_target_runs_nothing_and_says_what_to_write(folder, capsys, command):
    (folder / "lrkit_tgt_tasks.py").write_text("raise SystemExit('imported')\n")
    assert main([command, "lrkit_tgt_tasks.py:make"]) == 2
    out, err = capsys.readouterr()
    assert "lrkit_tgt_tasks" not in sys.modules  # the file was not run
    assert err == (
        f"lrkit {command}: error: target 'lrkit_tgt_tasks.py:make': name the module, not its "
        "file: lrkit_tgt_tasks:make (run from the folder that holds it)\n"
    )


def test_the_command_reports_the_targets_missing_import_as_its_error(folder, capsys):
    pytest.importorskip("optuna")
    (folder / "lrkit_tgt_tasks.py").write_text("import lrkit_tgt\n\ndef make():\n    pass\n")
    assert main(["tune", "lrkit_tgt_tasks:make", "--plot", "none"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "lrkit tune: error in target 'lrkit_tgt_tasks:make' during the import: "
        "ModuleNotFoundError: No module named 'lrkit_tgt' (at lrkit_tgt_tasks.py:1 in "
        "<module>; --traceback shows the full traceback)"
    ]
    assert main(["tune", "lrkit_tgt_missing:make", "--plot", "none"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "lrkit tune: error: target 'lrkit_tgt_missing:make': no module named "
        "'lrkit_tgt_missing' (run from the folder that holds it, or install it)"
    ]


TUNE_TASK = """
from lrkit.tune import Task

CALLS = []

def make():
    CALLS.append(1)
    return Task(train=lambda schedule, report: 1.0, total_steps=20)
"""


def test_tune_refuses_options_a_target_would_silently_ignore(folder, capsys):
    pytest.importorskip("optuna")
    (folder / "lrkit_tgt_tasks.py").write_text(TUNE_TASK)
    argv = ["tune", "lrkit_tgt_tasks:make", "--plot", "none", "--no-progress"]
    assert main([*argv, "--epochs", "3"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "lrkit tune: error: --epochs sets the epochs of --demo and of a target that returns "
        "(model_factory, loss_fn, data, val_data); a Task sets its own total_steps, "
        "got --epochs 3 and a target 'lrkit_tgt_tasks:make' returning a Task"
    ]
    assert main([*argv, "--demo-task", "digits_mlp_adam"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "lrkit tune: error: --demo-task chooses the built-in task of --demo; it has no use "
        "with a target, got --demo-task 'digits_mlp_adam' and 'lrkit_tgt_tasks:make'"
    ]
    assert not (folder / "lrkit-tune.db").exists()  # refused before any study was made
    assert main([*argv, "--trials", "1", "--quiet"]) == 0  # without them it runs
    assert sys.modules["lrkit_tgt_tasks"].CALLS == [1, 1]


DICT_TASK = """
def make():
    return {"train": lambda schedule, report: 1.0, "total_steps": 20}
"""


def test_tune_refuses_epochs_with_a_target_returning_a_dict_of_task_fields(folder, capsys):
    pytest.importorskip("optuna")
    (folder / "lrkit_tgt_tasks.py").write_text(DICT_TASK)
    argv = ["tune", "lrkit_tgt_tasks:make", "--plot", "none", "--no-progress", "--epochs", "3"]
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [
        "lrkit tune: error: --epochs sets the epochs of --demo and of a target that returns "
        "(model_factory, loss_fn, data, val_data); a Task sets its own total_steps, "
        "got --epochs 3 and a target 'lrkit_tgt_tasks:make' returning a dict of its fields"
    ]
    assert not (folder / "lrkit-tune.db").exists()


TUPLE_TASK = """
import torch

x = torch.zeros(16, 4)
y = torch.zeros(16, dtype=torch.long)

def make():
    return (lambda: torch.nn.Linear(4, 2)), torch.nn.functional.cross_entropy, [(x, y)], [(x, y)]
"""


def test_tune_refuses_epochs_too_few_for_a_schedule_before_any_study(folder, capsys):
    pytest.importorskip("optuna")
    pytest.importorskip("torch")
    (folder / "lrkit_tgt_tasks.py").write_text(TUPLE_TASK)
    argv = ["tune", "lrkit_tgt_tasks:make", "--plot", "none", "--no-progress", "--epochs", "4"]
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [
        "lrkit tune: error: --epochs x steps_per_epoch (the steps a trial trains, which its "
        "schedule spans) must be at least 10, got 4 x 1 = 4"
    ]
    assert not (folder / "lrkit-tune.db").exists()


MAXIMIZE_TASK = """
from lrkit.tune import Task

def make():
    return Task(train=lambda schedule, report: 1.0, total_steps=20, direction="maximize")
"""


def test_tune_names_the_direction_a_study_was_created_with(folder, capsys):
    optuna = pytest.importorskip("optuna")
    optuna.create_study(study_name="lrkit_tgt_tasks-make", storage="sqlite:///lrkit-tune.db")
    capsys.readouterr()  # Optuna's own log line
    (folder / "lrkit_tgt_tasks.py").write_text(MAXIMIZE_TASK)
    assert main(["tune", "lrkit_tgt_tasks:make", "--plot", "none", "--no-progress"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "lrkit tune: error: study 'lrkit_tgt_tasks-make' (sqlite:///lrkit-tune.db) was created "
        "with direction 'minimize', not direction 'maximize' (the target's Task.direction): "
        "pass --study NAME for a new study, or the same options to continue it"
    ]


KEPT = """
import torch

torch.manual_seed(0)
x = torch.randn(64, 4)
y = (x[:, 0] > 0).long()
model = torch.nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]

def make():
    return model, opt, torch.nn.functional.cross_entropy, data
"""


def test_compare_refuses_a_target_returning_one_model_when_the_next_run_starts(folder, capsys):
    # every method would train the user's one model, each from where the last left it: a
    # mistake in what the target returns, one line naming the target when the second run
    # meets the first run's weights
    pytest.importorskip("torch")
    (folder / "lrkit_tgt_kept.py").write_text(KEPT)
    argv = ["compare", "lrkit_tgt_kept:make", "--steps", "20", "--finder-iter", "10"]
    assert main([*argv, "--methods", "fixed,cosine", "--no-plot", "--quiet"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "lrkit compare: error: target 'lrkit_tgt_kept:make' must build a fresh model for every "
        "run; it returned the first call's model again, or a layer of it, whose weights have "
        "changed since (trained: it would go on training where the last run left it; its "
        "weights are put back as first returned): create the model inside the function"
    ]


def test_compare_refuses_models_sharing_a_trainable_layer_built_at_import(folder, capsys):
    pytest.importorskip("torch")
    (folder / "lrkit_tgt_kept.py").write_text(KEPT_LAYER)
    argv = ["compare", "lrkit_tgt_kept:make", "--steps", "20", "--finder-iter", "10"]
    assert main([*argv, "--methods", "fixed,cosine", "--no-plot", "--quiet"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("lrkit compare: error: target 'lrkit_tgt_kept:make' must build a ")
    assert err[0].endswith("create the model inside the function")


def test_compare_runs_a_target_that_resets_its_model_in_place(folder, capsys):
    # the same model object, put back to its first weights on every call, with a fresh
    # optimizer: every method starts from the same weights, as lrkit.compare allows
    pytest.importorskip("torch")
    (folder / "lrkit_tgt_reset.py").write_text(RESET)
    argv = ["compare", "lrkit_tgt_reset:make", "--steps", "20", "--finder-iter", "10"]
    assert main([*argv, "--methods", "fixed,cosine", "--no-plot", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "fixed" in out and "cosine" in out


RESET = """
import copy

import torch

torch.manual_seed(0)
x = torch.randn(64, 4)
y = (x[:, 0] > 0).long()
model = torch.nn.Linear(4, 2)
INIT = copy.deepcopy(model.state_dict())
data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]

def make():
    model.load_state_dict(INIT)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, opt, torch.nn.functional.cross_entropy, data
"""


KEPT_LAYER = """
import torch

torch.manual_seed(0)
x = torch.randn(64, 4)
y = (x[:, 0] > 0).long()
body = torch.nn.Linear(4, 8)
FROZEN = False
body.requires_grad_(not FROZEN)
data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]

def make():
    model = torch.nn.Sequential(body, torch.nn.Tanh(), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    return model, opt, torch.nn.functional.cross_entropy, data
"""


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_weights(model, start) -> bool:
    import torch

    now = model.state_dict()
    return now.keys() == start.keys() and all(torch.equal(now[k], start[k]) for k in start)


def test_find_refuses_a_target_returning_one_model_before_anything_trains(folder, capsys):
    # the check runs would train the user's one model, the second from where the first left
    # it: refused when the second call returns it again, before the sweep, the model untouched
    pytest.importorskip("torch")
    (folder / "lrkit_tgt_kept.py").write_text(KEPT)
    import lrkit_tgt_kept as kept

    start = _weights(kept.model)
    rc = main(["find", "lrkit_tgt_kept:make", "--no-plot", "--quiet", "--train-steps", "20"])
    assert rc == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "lrkit find: error: target 'lrkit_tgt_kept:make' must build a fresh model on every "
        "call (each check run trains its own from the same initial weights): it returned the "
        "same model object from its first two calls; create the model inside the function, "
        "or pass --no-train"
    ]
    assert _same_weights(kept.model, start) and not kept.opt.state
    # without the check runs, one call: the range test puts the model back as it was
    assert main(["find", "lrkit_tgt_kept:make", "--no-plot", "--quiet", "--no-train"]) == 0
    assert _same_weights(kept.model, start)


def test_find_refuses_models_sharing_a_trainable_layer_built_at_import(folder, capsys):
    pytest.importorskip("torch")
    (folder / "lrkit_tgt_kept.py").write_text(KEPT_LAYER)
    import lrkit_tgt_kept as kept

    start = _weights(kept.body)
    rc = main(["find", "lrkit_tgt_kept:make", "--no-plot", "--quiet", "--train-steps", "20"])
    assert rc == 2
    assert capsys.readouterr().err.splitlines() == [
        "lrkit find: error: target 'lrkit_tgt_kept:make' must build a fresh model on every "
        "call (each check run trains its own from the same initial weights): the models of "
        "its first two calls share 2 trainable parameters (a layer built once, at import?); "
        "create the model inside the function, or pass --no-train"
    ]
    assert _same_weights(kept.body, start)


UNSEEDED = """
import numpy as np
import torch

x = torch.randn(64, 4)
y = (x[:, 0] > 0).long()
data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]

def make():
    model = torch.nn.Linear(4, 2)
    with torch.no_grad():  # numpy's own generator, unseeded: --seed does not reach it
        model.weight.copy_(torch.as_tensor(np.random.default_rng().normal(size=(2, 4))))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, opt, torch.nn.functional.cross_entropy, data
"""


def test_find_refuses_a_target_whose_calls_start_from_other_weights(folder, capsys):
    """The check runs start from the weights the sweep started from, as lrkit compare's runs
    do: a target whose initialisation --seed does not reach is refused before any training
    (compare refuses it too)."""
    pytest.importorskip("torch")
    (folder / "lrkit_tgt_unseeded.py").write_text(UNSEEDED)
    rc = main(["find", "lrkit_tgt_unseeded:make", "--no-plot", "--quiet", "--train-steps", "20"])
    out, err = capsys.readouterr()
    assert (rc, out) == (2, "")
    assert err.splitlines() == [
        "lrkit find: error: target 'lrkit_tgt_unseeded:make' must build the same initial "
        "weights on every call (the sweep and each check run start from them): the models of "
        "its first two calls differ in 'weight' (an initialisation --seed does not reach, such "
        "as numpy.random.default_rng() without a seed); seed it inside the function, or pass "
        "--no-train"
    ]
    argv = ["find", "lrkit_tgt_unseeded:make", "--no-plot", "--quiet", "--no-train"]
    assert main([*argv, "--num-iter", "10"]) == 0  # one call, no check runs: nothing to compare
    capsys.readouterr()
    # a lazy module (no shape yet) is not compared: the range test's own check names it
    (folder / "lrkit_tgt_lazy.py").write_text(UNSEEDED.replace(
        "model = torch.nn.Linear(4, 2)", "model = torch.nn.Sequential(torch.nn.LazyLinear(2))"
    ).replace("model.weight.copy_", "len"))  # fmt: skip
    rc = main(["find", "lrkit_tgt_lazy:make", "--no-plot", "--quiet", "--train-steps", "20"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(
        "lrkit find: error: model: parameter '0.weight' of LazyLinear is not initialized yet"
    )


def test_find_lets_models_share_a_frozen_layer(folder, capsys):
    # a frozen backbone loaded once, a fresh head on every call: nothing shared is trained
    pytest.importorskip("torch")
    (folder / "lrkit_tgt_kept.py").write_text(KEPT_LAYER.replace("FROZEN = False", "FROZEN = True"))
    import lrkit_tgt_kept as kept

    start = _weights(kept.body)
    argv = ["find", "lrkit_tgt_kept:make", "--no-plot", "--quiet", "--train-steps", "10"]
    assert main([*argv, "--num-iter", "10"]) == 0, capsys.readouterr().err
    assert "one-cycle" in capsys.readouterr().out
    assert _same_weights(kept.body, start)


def test_a_batch_layout_error_of_lrkit_is_a_mistake_without_its_api_advice(monkeypatch):
    """The advice of a batch-layout error is on arguments the command line lacks: left out,
    whatever it says; any other error of lrkit keeps its first line."""
    pytest.importorskip("torch")
    from lrkit.commands import _target
    from lrkit.torch import BatchLayoutError

    monkeypatch.setattr(_target, "raised_by_lrkit", lambda error: True)
    error = BatchLayoutError("data must yield (x, y) batches", "pass step=; or map them")
    with pytest.raises(_target.TargetMistake) as info:
        with _target.user_code("pkg:make", mistakes=True):
            raise error
    assert str(info.value) == "data must yield (x, y) batches" and info.value.__cause__ is error
    with pytest.raises(_target.TargetMistake, match=r"^loss_fn must return; for another layout$"):
        with _target.user_code("pkg:make", mistakes=True):
            raise ValueError("loss_fn must return; for another layout\nsecond line")


@pytest.mark.parametrize("command", ["find", "compare", "tune"])
def test_a_target_that_exits_is_the_targets_error(folder, capsys, command):
    (folder / "lrkit_tgt_tasks.py").write_text(
        "import sys\n\ndef make():\n    sys.exit('no GPU found')\n"
    )
    extra = ["--plot", "none"] if command == "tune" else ["--no-plot"]
    assert main([command, "lrkit_tgt_tasks:make", *extra]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith(
        f"lrkit {command}: error in target 'lrkit_tgt_tasks:make': SystemExit: no GPU found "
        "(at lrkit_tgt_tasks.py:4 in make"
    )


def test_a_target_module_parsing_the_command_line_when_imported_reads_its_own(folder, capsys):
    """A training script that calls ``parse_args()`` at import sees no arguments (as under
    ``python -m``), not lrkit's; ``sys.argv`` is lrkit's again afterwards."""
    (folder / "lrkit_tgt_tasks.py").write_text(
        "import argparse, sys\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--lr', type=float, default=0.1)\n"
        "ARGS = p.parse_args()\n"
        "SEEN = list(sys.argv)\n\n"
        "def make():\n"
        "    raise RuntimeError(f'lr={ARGS.lr} argv={sys.argv}')\n"
    )
    before = list(sys.argv)
    assert main(["find", "lrkit_tgt_tasks:make", "--no-plot"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: lr=0.1 argv=['lrkit_tgt_tasks:make']" in err
    assert sys.modules["lrkit_tgt_tasks"].SEEN == ["lrkit_tgt_tasks:make"]
    assert sys.argv == before


def test_every_line_of_the_targets_error_is_on_the_one_line(folder, capsys):
    (folder / "lrkit_tgt_tasks.py").write_text(
        "def make():\n"
        "    raise RuntimeError('Error(s) in loading state_dict for Linear:\\n'\n"
        "                       '\\tMissing key(s) in state_dict: \"bias\".')\n"
    )
    assert main(["find", "lrkit_tgt_tasks:make", "--no-plot"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert (
        "RuntimeError: Error(s) in loading state_dict for Linear: / Missing key(s) in "
        'state_dict: "bias". (at lrkit_tgt_tasks.py:2 in make' in err[0]
    )


@pytest.mark.parametrize("command", ["find", "compare", "tune"])
def test_a_model_named_as_the_target_is_a_command_line_mistake(folder, capsys, command):
    """A model at module level (a torch module, a Keras model), named where the function
    that builds the task goes: its signature reads as any arguments, and calling it ran its
    forward pass (the error was the target's, exit code 1)."""
    pytest.importorskip("torch")
    if command == "tune":
        pytest.importorskip("optuna")
    (folder / "lrkit_tgt_tasks.py").write_text("import torch\n\nMODEL = torch.nn.Linear(3, 1)\n")
    extra = {"find": ["--no-plot", "--no-train"], "compare": ["--no-plot"],
             "tune": ["--plot", "none"]}[command]  # fmt: skip
    assert main([command, "lrkit_tgt_tasks:MODEL", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lrkit {command}: error: target 'lrkit_tgt_tasks:MODEL' must be a ")
    assert err.endswith("; it is a model (Linear): name the function that builds it\n")
    assert not (folder / "lrkit-tune.db").exists()


def test_a_keras_model_named_as_the_target_is_a_command_line_mistake(folder, capsys, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("KERAS_BACKEND", __import__("os").environ.get("KERAS_BACKEND", "jax"))
    pytest.importorskip("keras")
    (folder / "lrkit_tgt_tasks.py").write_text(
        "import keras\n\nMODEL = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])\n"
    )
    assert main(["find", "lrkit_tgt_tasks:MODEL", "--no-plot", "--no-train"]) == 2
    assert capsys.readouterr().err.endswith(
        "; it is a model (Sequential): name the function that builds it\n"
    )


SMALL_TASK = """
import torch

def make():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    return model, opt, torch.nn.functional.cross_entropy, data
"""


@pytest.mark.parametrize("command", ["find", "compare"])
def test_the_command_leaves_sys_argv_as_its_caller_had_it(folder, capsys, monkeypatch, command):
    """The target's module is imported and its function called with ``sys.argv`` as its own;
    a command run inside a Python process gives the caller's ``sys.argv`` back."""
    pytest.importorskip("torch")
    (folder / "lrkit_tgt_tasks.py").write_text(SMALL_TASK)
    monkeypatch.setattr(sys, "argv", ["caller.py", "--its-own-option"])
    argv = [command, "lrkit_tgt_tasks:make", "--no-plot", "--quiet"]
    if command == "find":
        argv += ["--no-train", "--num-iter", "10"]
    else:
        argv += ["--methods", "fixed", "--steps", "10", "--finder-iter", "10"]
    assert main(argv) == 0, capsys.readouterr().err
    assert sys.argv == ["caller.py", "--its-own-option"]


def test_compare_json_on_standard_output_comes_after_the_plots_line(folder, capfd):
    """``--json /dev/stdout``: the plot is written first and its line printed, so that what
    follows the printed text is the JSON alone."""
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    import json

    (folder / "lrkit_tgt_tasks.py").write_text(SMALL_TASK)
    argv = ["compare", "lrkit_tgt_tasks:make", "--methods", "fixed", "--steps", "10"]
    argv += ["--finder-iter", "10", "--quiet", "-o", "c.png", "--json", "/dev/stdout"]
    assert main(argv) == 0
    out = capfd.readouterr().out
    start = out.index("\n{") + 1
    assert "  plot written to c.png\n" in out[:start]
    assert out.endswith("}\n") and json.loads(out[start:])
    assert (folder / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_a_target_that_changes_folder_and_fails_leaves_the_caller_in_its_folder(folder, capsys):
    """The command ends in the folder it started in, also when the target moved the process
    elsewhere (``os.chdir``) and then raised."""
    import os

    (folder / "elsewhere").mkdir()
    (folder / "lrkit_tgt_tasks.py").write_text(
        "import os\n\ndef make():\n    os.chdir('elsewhere')\n    raise RuntimeError('moved')\n"
    )
    assert main(["find", "lrkit_tgt_tasks:make", "--no-plot"]) == 1
    assert "RuntimeError: moved" in capsys.readouterr().err
    assert os.getcwd() == str(folder)


def test_find_names_one_shared_trainable_parameter_in_the_singular(folder, capsys):
    pytest.importorskip("torch")
    source = KEPT_LAYER.replace("torch.nn.Linear(4, 8)", "torch.nn.Linear(4, 8, bias=False)")
    (folder / "lrkit_tgt_kept.py").write_text(source)
    rc = main(["find", "lrkit_tgt_kept:make", "--no-plot", "--quiet", "--train-steps", "20"])
    assert rc == 2
    assert capsys.readouterr().err.splitlines() == [
        "lrkit find: error: target 'lrkit_tgt_kept:make' must build a fresh model on every "
        "call (each check run trains its own from the same initial weights): the models of "
        "its first two calls share 1 trainable parameter (a layer built once, at import?); "
        "create the model inside the function, or pass --no-train"
    ]


def test_find_never_replaces_a_file_that_took_the_default_plots_name_during_the_work(
    folder, capsys
):
    """The default plot's name is chosen before the work; a file written there meanwhile
    (here by the target) is kept, and the plot takes the next free name."""
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    source = SMALL_TASK.replace(
        "def make():\n", "def make():\n    open('lrkit_find.png', 'w').write('mine')\n"
    )
    (folder / "lrkit_tgt_tasks.py").write_text(source)
    argv = ["find", "lrkit_tgt_tasks:make", "--no-train", "--num-iter", "10", "--quiet"]
    assert main(argv) == 0
    assert "  plot written to lrkit_find-1.png\n" in capsys.readouterr().out
    assert (folder / "lrkit_find.png").read_text() == "mine"
    assert (folder / "lrkit_find-1.png").read_bytes()[:4] == b"\x89PNG"


def test_find_does_not_compare_the_weights_of_models_of_another_make_up(folder, capsys):
    """Models of other parameter shapes from the target's first two calls: nothing to compare,
    the check runs train them."""
    pytest.importorskip("torch")
    source = SMALL_TASK.replace(
        "    model = torch.nn.Linear(4, 2)\n",
        "    CALLS.append(1)\n    model = torch.nn.Linear(4, 2 if len(CALLS) == 1 else 3)\n",
    )
    (folder / "lrkit_tgt_tasks.py").write_text("CALLS = []\n" + source)
    argv = ["find", "lrkit_tgt_tasks:make", "--num-iter", "10", "--train-steps", "20"]
    assert main([*argv, "--no-plot", "--quiet"]) == 0, capsys.readouterr().err
    assert "check: 20 training steps from the same initial weights" in capsys.readouterr().out


def test_tune_without_demo_or_target_says_to_give_one(folder, capsys):
    pytest.importorskip("optuna")
    assert main(["tune", "--trials", "1", "--no-progress", "--plot", "none"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "lrkit tune: error: give either --demo or a target pkg.module:function"
    ]
    assert not (folder / "lrkit-tune.db").exists()


def test_tune_refuses_families_that_name_no_family(folder, capsys):
    pytest.importorskip("optuna")
    (folder / "lrkit_tgt_tasks.py").write_text(TUNE_TASK)
    argv = ["tune", "lrkit_tgt_tasks:make", "--plot", "none", "--no-progress"]
    assert main([*argv, "--families", " , "]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "lrkit tune: error: --families must be a comma-separated list of one or more of "
        "constant,cosine,onecycle,step,cyclic,wsd, got ' , '"
    ]
    assert "lrkit_tgt_tasks" not in sys.modules  # refused before the target was imported


def test_tune_refuses_a_grace_period_equal_to_the_heartbeat(folder, capsys):
    pytest.importorskip("optuna")
    (folder / "lrkit_tgt_tasks.py").write_text(TUNE_TASK)
    argv = ["tune", "lrkit_tgt_tasks:make", "--plot", "none", "--no-progress"]
    assert main([*argv, "--grace", "10", "--heartbeat", "10"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "lrkit tune: error: --grace must be longer than --heartbeat (a running trial renews "
        "its heartbeat every --heartbeat seconds), got --grace 10 <= --heartbeat 10"
    ]
    assert not (folder / "lrkit-tune.db").exists()


def test_tune_takes_a_study_name_as_long_as_optuna_stores(folder, capsys):
    optuna = pytest.importorskip("optuna")
    (folder / "lrkit_tgt_tasks.py").write_text(TUNE_TASK)
    study = "s" * 512
    argv = ["tune", "lrkit_tgt_tasks:make", "--no-progress", "--seeding", "blind", "--quiet"]
    assert main([*argv, "--trials", "1", "--seed", "0", "--study", study]) == 0
    assert optuna.get_all_study_names("sqlite:///lrkit-tune.db") == [study]


def test_tune_cuts_the_default_plot_name_of_a_long_study_name(folder, capsys):
    import hashlib

    pytest.importorskip("optuna")
    pytest.importorskip("matplotlib")
    (folder / "lrkit_tgt_tasks.py").write_text(TUNE_TASK)
    study = "s" * 101
    argv = ["tune", "lrkit_tgt_tasks:make", "--no-progress", "--seeding", "blind"]
    assert main([*argv, "--trials", "1", "--seed", "0", "--study", study]) == 0
    digest = hashlib.sha1(study.encode()).hexdigest()[:10]
    plot = f"lrkit-tune-{'s' * 80}-{digest}.png"
    assert capsys.readouterr().out.splitlines()[-1] == f"plot of the search: {plot}"
    assert (folder / plot).is_file()


def test_tune_trains_a_tuple_for_five_epochs_without_epochs(folder, capsys):
    pytest.importorskip("optuna")
    pytest.importorskip("torch")
    (folder / "lrkit_tgt_tasks.py").write_text(TUPLE_TASK)
    assert main(["tune", "lrkit_tgt_tasks:make", "--plot", "none", "--no-progress"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "lrkit tune: error: --epochs x steps_per_epoch (the steps a trial trains, which its "
        "schedule spans) must be at least 10, got 5 x 1 = 5"
    ]
    assert not (folder / "lrkit-tune.db").exists()


def test_tune_names_its_default_plot_after_the_study_in_file_name_characters(folder, capsys):
    pytest.importorskip("optuna")
    pytest.importorskip("matplotlib")
    (folder / "lrkit_tgt_tasks.py").write_text(TUNE_TASK)
    argv = ["tune", "lrkit_tgt_tasks:make", "--no-progress", "--seeding", "blind"]
    assert main([*argv, "--trials", "1", "--seed", "0", "--study", " exp 1! "]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "study ' exp 1! ' (sqlite:///lrkit-tune.db): complete 1"
    assert out[-1] == "plot of the search: lrkit-tune-exp-1.png"
    assert (folder / "lrkit-tune-exp-1.png").is_file()


def test_tune_quiet_with_no_retries_prints_only_the_best_schedule(folder, capsys):
    optuna = pytest.importorskip("optuna")
    (folder / "lrkit_tgt_tasks.py").write_text(TUNE_TASK)
    argv = ["tune", "lrkit_tgt_tasks:make", "--no-progress", "--seeding", "blind", "--quiet"]
    assert main([*argv, "--trials", "1", "--seed", "0", "--max-retry", "0"]) == 0
    out, err = capsys.readouterr()
    study = optuna.load_study(study_name="lrkit_tgt_tasks-make", storage="sqlite:///lrkit-tune.db")
    assert (out, err) == (study.best_trial.user_attrs["schedule"] + "\n", "")
    assert not list(folder.glob("*.png"))  # quiet: no default plot


DIVERGING_TASK = """
from lrkit.tune import Task

def train(schedule, report):
    report(1, float("inf"))
    return float("inf")

def make():
    return Task(train=train, total_steps=20)
"""


def test_tune_cap_reached_by_diverged_trials_counts_them_and_names_the_lr_range(folder, capsys):
    pytest.importorskip("optuna")
    (folder / "lrkit_tgt_tasks.py").write_text(DIVERGING_TASK)
    argv = ["tune", "lrkit_tgt_tasks:make", "--no-progress", "--seeding", "blind", "--quiet"]
    rc = main([*argv, "--trials", "1", "--max-trials", "1", "--plot", "none", "--json", "r.json"])
    assert rc == 1
    assert capsys.readouterr().err.splitlines() == [
        "lrkit tune: error: no trial finished: this run reached its cap of 1 started trials "
        "(--max-trials; 0 pruned, 1 diverged, 0 failed in the study); run the same command "
        "again to start up to --max-trials more, or raise --max-trials, or search lower LRs "
        "with a lower top of --lr-range (every pruned trial diverged, which no pruner setting "
        "changes)"
    ]
    data = json.loads((folder / "r.json").read_text())
    assert (data["complete"], data["reached"], data["best"]) == (0, False, None)
    assert [(t["state"], t["value"], t["diverged"]) for t in data["trials"]] == [
        ("PRUNED", None, True)
    ]


def test_tune_interrupted_before_its_database_file_exists_says_nothing_was_stored(
    folder, capsys, monkeypatch
):
    pytest.importorskip("optuna")
    import lrkit.tune

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lrkit.tune, "tune", interrupted)
    (folder / "lrkit_tgt_tasks.py").write_text(TUNE_TASK)
    argv = ["tune", "lrkit_tgt_tasks:make", "--no-progress", "--seeding", "blind"]
    assert main([*argv, "--plot", "none", "--study", "s"]) == 130
    assert capsys.readouterr().err == (
        "\nlrkit tune: interrupted before the search began (nothing was stored)\n"
    )
    assert not (folder / "lrkit-tune.db").exists()


FAILED_ELSEWHERE_TASK = """
import optuna
from lrkit.tune import Task

def train(schedule, report):
    # another worker fails this trial (its heartbeat stopped, say) while it trains
    storage = optuna.load_study(study_name="f", storage="sqlite:///f.db")._storage
    sid = storage.get_study_id_from_name("f")
    (mine,) = storage.get_all_trials(sid, states=(optuna.trial.TrialState.RUNNING,))
    storage.set_trial_state_values(mine._trial_id, optuna.trial.TrialState.FAIL)
    return 1.0

def make():
    return Task(train=train, total_steps=20)
"""


def test_tune_cap_reached_with_failed_trials_only_names_the_cap_and_the_pruner(folder, capsys):
    pytest.importorskip("optuna")
    (folder / "lrkit_tgt_tasks.py").write_text(FAILED_ELSEWHERE_TASK)
    argv = ["tune", "lrkit_tgt_tasks:make", "--no-progress", "--seeding", "blind", "--quiet"]
    argv += ["--storage", "sqlite:///f.db", "--study", "f", "--plot", "none"]
    assert main([*argv, "--trials", "1", "--max-trials", "1"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "lrkit tune: error: no trial finished: this run reached its cap of 1 started trials "
        "(--max-trials; 0 pruned, 0 diverged, 1 failed in the study); run the same command "
        "again to start up to --max-trials more, or raise --max-trials / use --pruner none"
    ]


def test_tune_cap_reached_is_said_once_in_the_words_of_the_command(folder, capsys):
    pytest.importorskip("optuna")
    (folder / "lrkit_tgt_tasks.py").write_text(FAILED_ELSEWHERE_TASK)
    argv = ["tune", "lrkit_tgt_tasks:make", "--no-progress", "--seeding", "blind"]
    argv += ["--storage", "sqlite:///f.db", "--study", "f", "--plot", "none"]
    assert main([*argv, "--trials", "1", "--max-trials", "1"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert not [line for line in lines if "max_trials" in line]  # Optuna's word, not ours
    assert lines[-1].startswith("lrkit tune: error: no trial finished: this run reached its cap")


def test_tune_puts_back_the_optuna_log_level_its_caller_had(folder, capsys):
    optuna = pytest.importorskip("optuna")
    (folder / "lrkit_tgt_tasks.py").write_text(TUNE_TASK)
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        argv = ["tune", "lrkit_tgt_tasks:make", "--no-progress", "--seeding", "blind"]
        assert main([*argv, "--trials", "1", "--quiet", "--plot", "none"]) == 0
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
    finally:
        optuna.logging.set_verbosity(before)
