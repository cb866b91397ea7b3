"""Tests of the ``lrkit find`` command, run in-process through ``lrkit.cli.main``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from lrkit.cli import main  # noqa: E402

USER_MODULE = textwrap.dedent(
    """
    import warnings

    import torch
    from torch import nn

    CALLS = []

    def make(val=False):
        CALLS.append(1)
        torch.manual_seed(0)
        x = torch.randn(128, 5)
        y = (x[:, 0] > 0).long()
        model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 128, 16)]
        if val:
            return model, opt, nn.functional.cross_entropy, data, data[:2]
        return model, opt, nn.functional.cross_entropy, data

    def make_val():
        return make(val=True)

    def make_empty_val():
        return (*make(), [])

    def bad():
        return 42

    def make_warns():
        model, opt, loss_fn, data = make()

        def loss(out, y):
            warnings.warn("lrkit test: this loss warns", UserWarning)  # WARN LINE
            return loss_fn(out, y)

        return model, opt, loss, data

    def make_warns_val():  # the check runs score val_data with the warning loss too
        model, opt, loss, data = make_warns()
        return model, opt, loss, data, data[:2]

    def make_val_text():
        return (*make(), "abc")

    def make_val_triples():
        model, opt, loss_fn, data = make()
        return model, opt, loss_fn, data, [(x, y, 0) for x, y in data[:2]]

    def make_no_data():
        return (*make()[:3], [])

    def make_triples():
        model, opt, loss_fn, data = make()
        return model, opt, loss_fn, [(x, y, 0) for x, y in data]

    def make_triples_gen():
        model, opt, loss_fn, data = make()
        return model, opt, loss_fn, ((x, y, 0) for x, y in data)

    def make_gen():
        model, opt, loss_fn, data = make()
        return model, opt, loss_fn, (b for b in data)

    def make_empty_gen():
        return (*make()[:3], iter([]))

    def make_one_batch():
        model, opt, loss_fn, data = make()
        return model, opt, loss_fn, data[0]

    def make_val_one_batch():
        model, opt, loss_fn, data = make()
        return model, opt, loss_fn, data, data[0]

    def make_dict_gen():
        model, opt, loss_fn, data = make()
        return model, opt, loss_fn, ({"x": x, "y": y} for x, y in data)

    def make_float_loss():
        model, opt, _, data = make()
        return model, opt, (lambda out, y: 1.0), data

    def make_val_gen1():
        model, opt, loss_fn, data = make()
        return model, opt, loss_fn, data, (b for b in data[:1])

    def make_no_loss():
        model, opt, _, data = make()
        return model, opt, None, data

    def make_loss_class():
        model, opt, _, data = make()
        return model, opt, torch.nn.CrossEntropyLoss, data

    _X = torch.randn(256, 5)
    _LOADER = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(_X, torch.arange(256)),
        batch_size=32,
        shuffle=True,
        generator=torch.Generator().manual_seed(5),
    )
    FIRST_BATCHES = []  # the first batch each training run (each call's loss) sees

    def make_shared_loader():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        seen = []
        FIRST_BATCHES.append(seen)

        def loss(out, index):
            if model.training:
                seen.append(index.tolist())
            return nn.functional.cross_entropy(out, (_X[index, 0] > 0).long())

        return model, opt, loss, _LOADER

    _STREAM = (b for _ in range(1000) for b in make()[3])

    MODEL = nn.Linear(5, 2)

    def make_shared_stream():
        model, opt, loss_fn, _ = make()
        return model, opt, loss_fn, _STREAM

    def make_val_gen_bad_second():
        model, opt, loss_fn, data = make()
        return model, opt, loss_fn, data, (b for b in [data[0], (*data[1], 0)])

    def make_val_tuple_bad_second():
        model, opt, loss_fn, data = make()
        return model, opt, loss_fn, data, (data[0], (*data[1], 0))

    def make_flat_then_diverging():  # a loss that barely drifts, then blows up
        model, opt, _, data = make()
        steps = []

        def loss(out, y):
            if torch.is_grad_enabled():
                steps.append(1)
            return out.sum() * 0 + (2.0 - 1e-5 * len(steps) if len(steps) < 15 else 1e6)

        return model, opt, loss, data

    EVAL_SIZES = []  # the sizes of the batches loss_fn scored outside training, in order

    def make_val_of_two_sizes():
        model, opt, loss_fn, data = make()
        x, y = torch.randn(12, 5), torch.zeros(12, dtype=torch.long)

        def loss(out, target):
            if not model.training:
                EVAL_SIZES.append(len(target))
            return loss_fn(out, target)

        return model, opt, loss, data, [(x[:7], y[:7]), (x[7:], y[7:])]

    def make_loss_name():
        model, opt, _, data = make()
        return model, opt, "cross_entropy", data

    def make_val_bytes():
        return (*make(), b"abc")

    def make_float_loss_in_the_check_runs():  # calls after the first: a loss of no tensor
        model, opt, loss_fn, data = make()
        if len(CALLS) == 1:
            return model, opt, loss_fn, data
        return model, opt, (lambda out, y: 1.0), data

    def make_many_val():
        model, opt, loss_fn, data = make()
        return model, opt, loss_fn, data, [data[i % 8] for i in range(17)]
    """
)
WARN_LINE = next(i for i, ln in enumerate(USER_MODULE.splitlines(), 1) if "# WARN LINE" in ln)


@pytest.fixture()
def user_module(write_module):
    return write_module("lrkit_user_task_mod", USER_MODULE)


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "curve.png"
    js = tmp_path / "r.json"
    rc = main(
        [
            "find",
            "--demo",
            "--num-iter",
            "40",
            "--train-steps",
            "30",
            "-o",
            str(out),
            "--json",
            str(js),
            "--quiet",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    for word in ("lrkit", "steepest", "valley", "minimum", "slide", "steep ", "max_lr", "base_lr"):
        assert word in text
    assert "constant" in text and "one-cycle" in text and "val" in text
    assert out.exists() and out.stat().st_size > 1000
    d = json.loads(js.read_text())
    assert d["num_iter"] == 40 and d["start_lr"] == 1e-7 and d["suggestion"] > 0


def test_a_budget_longer_than_the_rule_knows_is_said_as_it_is_read(capsys):
    """The default rule reads a budget past the longest it was fitted on as that one
    (finder.md): the table says so, where it read as if the budget itself were used."""
    import numpy as np

    from lrkit.finder import FITTED_STEPS, suggest

    argv = ["find", "--demo", "--num-iter", "40", "--no-train", "--no-plot", "--quiet"]
    assert main([*argv, "--total-steps", "1000000"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"  for 1000000 training steps (read as {FITTED_STEPS[1]}, the longest budget the rule "
        "was fitted on); reliable: yes"
    )
    # whichever rule is marked: the budget rows are the default rule's
    assert main([*argv, "--total-steps", "1000000", "--rule", "steepest"]) == 0
    assert "(read as 1930, the longest budget" in capsys.readouterr().out.splitlines()[-1]
    assert main([*argv, "--total-steps", str(FITTED_STEPS[1])]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"  for {FITTED_STEPS[1]} training steps; reliable: yes"
    )
    # what it reads: the same suggestion as for the longest fitted budget
    lrs, losses = (
        np.geomspace(1e-4, 1.0, 60),
        np.r_[np.linspace(1.0, 0.2, 45), np.geomspace(0.2, 5, 15)],
    )
    at = [suggest(lrs, losses, total_steps=n) for n in (FITTED_STEPS[1], 10**6)]
    assert at[0] == at[1]


def test_without_check_runs_or_a_budget_the_suggestions_are_for_1000_steps(capsys):
    """``--no-train`` without ``--total-steps``: the table says the budget it assumed, and
    its suggestions are those for ``--total-steps 1000``."""
    argv = ["find", "--demo", "--num-iter", "40", "--no-train", "--no-plot", "--quiet"]
    assert main(argv) == 0
    assumed = capsys.readouterr().out.splitlines()
    assert assumed[-1] == "  for an assumed 1000 training steps; reliable: yes"
    assert main([*argv, "--total-steps", "1000"]) == 0
    given = capsys.readouterr().out.splitlines()
    assert given[-1] == "  for 1000 training steps; reliable: yes"
    table = slice(2, -1)  # the rows and the sweep, under the line that times it
    assert assumed[table] == given[table]


@pytest.mark.parametrize("option", ["--rule", "--method"])  # --method: the name before --rule
def test_user_function_no_train(user_module, tmp_path, capsys, option):
    out = tmp_path / "p.png"
    rc = main(
        [
            "find",
            f"{user_module}:make",
            "--no-train",
            "--num-iter",
            "30",
            "--start-lr",
            "1e-5",
            "--end-lr",
            "100",
            option,
            "valley",
            "-o",
            str(out),
            "--quiet",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "*valley" in text and "1e-05 -> 100" in text
    assert out.exists()
    import lrkit_user_task_mod as mod

    assert len(mod.CALLS) == 1
    assert "check:" not in text


def test_user_function_trains_twice_from_fresh_copies(user_module, tmp_path, capsys):
    rc = main(
        [
            "find",
            f"{user_module}:make_val",
            "--num-iter",
            "30",
            "--train-steps",
            "20",
            "--no-plot",
            "--quiet",
            "--seed",
            "3",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    import lrkit_user_task_mod as mod

    assert len(mod.CALLS) == 3  # sweep + two check runs
    assert text.count(" val ") == 2


def test_the_check_runs_draw_the_batches_of_a_loader_built_once_from_its_start(user_module, capsys):
    """A DataLoader built at import with a generator of its own: the second check run draws
    the batches the first drew (its generator is put back to its first state), as lrkit
    compare's runs do; a one-shot iterator shared by the calls is refused before anything
    trains (the second run would read on where the first stopped)."""
    argv = ["--train-steps", "10", "--num-iter", "30", "--no-plot", "--quiet"]
    assert main(["find", f"{user_module}:make_shared_loader", *argv]) == 0
    import lrkit_user_task_mod as mod

    _, first, second = mod.FIRST_BATCHES  # the sweep's, and the check runs'
    assert len(first) == len(second) == 10 and first == second
    capsys.readouterr()
    assert main(["find", f"{user_module}:make_shared_stream", *argv]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"lrkit find: error: target '{user_module}:make_shared_stream' must give every run "
        "the same batches from their start; it returned the first run's data again, a "
        "one-shot iterator (generator), which each run would read on from where the last "
        "stopped: return a list or a "
        "DataLoader, or build the iterator inside the function\n"
    )


@pytest.mark.parametrize(
    "target,msg",
    [
        ("no_colon_here", "package.module:function"),
        ("a:b:c", "package.module:function"),
        ("lrkit_user_task_mod:missing", "no callable"),
        ("lrkit_user_task_mod:bad", "must return"),
        ("lrkit_user_task_mod:MODEL", "; it is a model (Linear): name the function that builds it"),
        ("lrkit_no_such_module_xyz:f", "lrkit_no_such_module_xyz"),
    ],
)
def test_bad_targets_exit_2_with_message(user_module, target, msg, capsys):
    assert main(["find", target, "--no-train", "--no-plot", "--quiet"]) == 2
    assert msg in capsys.readouterr().err


def test_bad_range_reports_parameter(user_module, capsys):
    rc = main(["find", f"{user_module}:make", "--start-lr", "1", "--end-lr", "0.1", "--quiet"])
    assert rc == 2
    assert "--end-lr" in capsys.readouterr().err


def test_demo_and_target_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        main(["find", "--demo", "x:y"])
    with pytest.raises(SystemExit):
        main(["find"])


def _global_state():
    import random
    import sys

    import numpy as np
    import torch

    return (
        torch.get_rng_state(),
        np.random.get_state()[1].copy(),
        random.getstate(),
        torch.get_num_threads(),
        list(sys.path),
    )


def _assert_same_state(before, after):
    import numpy as np
    import torch

    assert torch.equal(before[0], after[0])  # torch RNG
    assert np.array_equal(before[1], after[1])  # numpy RNG
    assert before[2:] == after[2:]  # Python RNG, torch threads, sys.path


def test_demo_leaves_rng_threads_and_backend_unchanged(tmp_path, monkeypatch, capsys):
    import matplotlib
    import torch

    def no_backend_switch(*a, **k):
        raise AssertionError("matplotlib.use() switches the caller's backend")

    monkeypatch.setattr(matplotlib, "use", no_backend_switch)
    threads = torch.get_num_threads()
    torch.set_num_threads(2 if threads != 2 else 3)  # find --demo uses 1 thread meanwhile
    try:
        torch.manual_seed(123)
        before = _global_state()
        out = tmp_path / "p.png"
        argv = ["find", "--demo", "--num-iter", "15", "--no-train", "-o", str(out), "--quiet"]
        assert main(argv) == 0
        _assert_same_state(before, _global_state())
        assert out.stat().st_size > 1000
    finally:
        torch.set_num_threads(threads)


def test_target_in_working_directory_without_it_on_sys_path(tmp_path, monkeypatch, capsys):
    """The `lrkit` console script does not put the working directory on sys.path: the
    command does (for the import), and takes it out again afterwards."""
    import sys

    (tmp_path / "lrkit_cwd_task_mod.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    before = list(sys.path)
    try:
        argv = ["find", "lrkit_cwd_task_mod:make", "--num-iter", "10", "--no-train", "--quiet"]
        assert main([*argv, "--no-plot"]) == 0, capsys.readouterr().err
        assert sys.path == before
    finally:
        sys.modules.pop("lrkit_cwd_task_mod", None)


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["--seed", "-1"], "--seed must be an integer in [0, 4294967295], got -1"),
        (["--seed", str(2**32)], f"--seed must be an integer in [0, 4294967295], got {2**32}"),
        (["--train-steps", "0"], "--train-steps"),
    ],
)
def test_bad_options_name_the_option(user_module, argv, msg, capsys):
    assert main(["find", f"{user_module}:make", *argv, "--no-plot", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1
    assert "allowed range" in err or "[0, 4294967295]" in err


@pytest.mark.parametrize("steps", ["-1", "0", "-30", str(2**53 + 1), "10" * 10])
def test_every_rejected_train_steps_reports_the_real_range(user_module, steps, capsys):
    from lrkit.commands.find import min_train_steps

    low = min_train_steps()
    assert not low <= int(steps) <= 2**53
    assert main(["find", f"{user_module}:make", "--train-steps", steps, "--no-plot"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--train-steps must be an integer >= {low} (allowed range: [{low}, 2**53]), " in err
    assert err.endswith(f"got {int(steps)}")
    assert len(err.splitlines()) == 1


def test_evaluate_zero_accuracy_is_zero_not_missing():
    """A classifier that gets every validation example wrong scores 0.0 (it was shown as '-'
    by `lrkit find`); a regression has no accuracy (NaN); the model's mode is left alone."""
    import math

    import torch

    from lrkit.torch import evaluate

    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([1.0, 0.0]))  # always predicts class 0
    x, y = torch.randn(6, 2), torch.ones(6, dtype=torch.long)
    loss, acc = evaluate(
        model,
        loss_fn=torch.nn.functional.cross_entropy,
        data=[(x[:4], y[:4]), (x[4:], y[4:])],
    )
    expected = float(torch.nn.functional.cross_entropy(model(x), y).detach())
    assert acc == 0.0 and loss == pytest.approx(expected, rel=1e-6) and model.training
    reg = torch.nn.Linear(2, 1)
    _, acc = evaluate(reg, loss_fn=torch.nn.functional.mse_loss, data=[(x, torch.zeros(6, 1))])
    assert math.isnan(acc)


@pytest.mark.parametrize("command", ["find", "compare"])
def test_an_image_asked_for_by_name_needs_matplotlib_before_any_work(
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def without_matplotlib(name: str, *args: object, **kwargs: object):
        return None if name == "matplotlib" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_matplotlib)
    out = tmp_path / "x.png"
    assert main([command, "--demo", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"lrkit {command}: error: -o/--output needs matplotlib: pip install 'lrkit[plot]'"
    ]
    assert not out.exists()


def _check_lrs(text: str) -> tuple[str, str]:
    rows = {
        ln.split()[0]: ln.split()[2]
        for ln in text.splitlines()
        if ln.strip()[:4] in ("cons", "one-")
    }
    return rows["constant"], rows["one-cycle"]


def _suggestions_for(d: dict[str, Any], total_steps: int) -> Any:
    """The suggestions for ``total_steps`` read off the curves of a ``--json`` file."""
    from lrkit.finder import suggestions

    return suggestions(
        d["lrs"],
        d["losses"],
        held_lrs=d["held_lrs"],
        held_losses=d["held_losses"],
        total_steps=total_steps,
        optimizer_family=d["optimizer_family"],
        stop_reason=d["stop_reason"],
    )


def test_check_runs_shorter_than_total_steps_train_at_their_own_budgets_suggestions(
    tmp_path, capsys
):
    js = tmp_path / "r.json"
    argv = ["find", "--demo", "--num-iter", "40", "--no-plot", "--quiet", "--json", str(js)]
    assert main([*argv, "--total-steps", "3000", "--train-steps", "30"]) == 0
    text = capsys.readouterr().out
    assert "at the suggestions for a run of 30 steps (those above are for 3000)" in text
    d = json.loads(js.read_text())
    assert d["total_steps"] == 3000
    assert d["interrupted"] is False and d["interrupted_during"] is None
    own = _suggestions_for(d, 30)
    assert own.constant != d["suggestion"]  # the budgets' suggestions differ
    assert _check_lrs(text) == (f"{own.constant:.3g}", f"{own.max_lr:.3g}")
    # a check as long as --total-steps trains at the suggestions shown above it
    assert main([*argv, "--train-steps", "30"]) == 0
    text = capsys.readouterr().out
    d = json.loads(js.read_text())
    assert d["total_steps"] == 30 and "at the suggestions for" not in text
    assert _check_lrs(text) == (f"{d['suggestion']:.3g}", f"{d['max_lr']:.3g}")


@pytest.mark.parametrize("command", ["find", "compare"])
def test_empty_val_data_is_refused_before_the_range_test(user_module, capsys, command):
    import sys

    argv = [command, f"{user_module}:make_empty_val", "--no-plot", "--quiet"]
    if command == "compare":
        argv += ["--methods", "fixed", "--steps", "10"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    # compare names the target, as in all it says of what the target returned
    target = f"target '{user_module}:make_empty_val': " if command == "compare" else ""
    assert err == (
        f"lrkit {command}: error: {target}val_data must yield at least one batch, got none\n"
    )
    assert len(sys.modules[user_module].CALLS) == 1 and "range test" not in out  # nothing ran


@pytest.mark.parametrize("rule", ["valley", "budget_edge"])  # the default rule typed too
def test_rule_and_its_former_name_contradicting_are_refused(capsys, rule):
    assert main(["find", "--demo", "--rule", rule, "--method", "steepest"]) == 2
    assert capsys.readouterr().err == (
        "lrkit find: error: --method is the former name of --rule: give one of them, got "
        f"--rule {rule} and --method steepest\n"
    )


def test_json_named_like_the_default_image_moves_the_image_not_the_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["find", "--demo", "--no-train", "--num-iter", "10", "--quiet"]
    assert main([*argv, "--json", "lrkit_find.png"]) == 0
    assert json.loads((tmp_path / "lrkit_find.png").read_text())["num_iter"] == 10
    assert (tmp_path / "lrkit_find-1.png").read_bytes()[:4] == b"\x89PNG"


def test_the_users_own_warnings_reach_the_user_once_and_the_finders_are_printed(
    user_module, tmp_path, capsys
):
    """The sweep's warnings other than lrkit's own (a loss that warns on every step, torch's
    MSELoss on mismatched shapes) are shown as Python shows them, once each, with their
    category, place and message; the finder's (LRFinderWarning) are the table's lines."""
    import warnings

    from lrkit.finder import LRFinderWarning

    argv = ["find", f"{user_module}:make_warns", "--num-iter", "10", "--end-lr", "1e-3"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        assert main([*argv, "--no-train", "--no-plot", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert [(w.category, str(w.message), w.filename, w.lineno) for w in seen] == [
        (
            UserWarning,
            "lrkit test: this loss warns",
            str(tmp_path / f"{user_module}.py"),
            WARN_LINE,
        )
    ]
    assert not any(issubclass(w.category, LRFinderWarning) for w in seen)
    assert "reliable: NO (see the warnings below)" in out
    assert "\n  warning: LR range test: the loss never turned up" in out
    # a filter of the user's that makes it an error: an error in the target, in one line
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="lrkit test: this loss warns")
        assert main([*argv, "--no-train", "--no-plot", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"lrkit find: error in target '{user_module}:make_warns' during the range test: "
        "UserWarning: lrkit test: this loss warns"
    )
    # with the check runs (every step of each warns too), and with val_data, which each
    # check run is scored on: still once
    for target in ("make_warns", "make_warns_val"):
        argv[1] = f"{user_module}:{target}"
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("default")
            assert main([*argv, "--train-steps", "20", "--no-plot", "--quiet"]) == 0
        capsys.readouterr()
        assert [(w.category, str(w.message)) for w in seen] == [
            (UserWarning, "lrkit test: this loss warns")
        ]


@pytest.mark.parametrize(
    "target,message",
    [
        ("make_val_text", "val_data must be an iterable of (x, y) batches or None, got str"),
        (
            "make_val_triples",
            "val_data must yield (x, y) batches for loss_fn(model(x), y), got a tuple of 3 items",
        ),
        ("make_no_data", "data must yield at least one batch, got none"),
        (
            "make_one_batch",
            "data must yield (x, y) batches for loss_fn(model(x), y), got a Tensor (one batch "
            "as data: a list of it, [(x, y)])",
        ),
        (
            "make_val_one_batch",
            "val_data must yield (x, y) batches for loss_fn(model(x), y), got a Tensor (one "
            "batch as val_data: a list of it, [(x, y)])",
        ),
        (
            "make_triples",
            "data must yield (x, y) batches for loss_fn(model(x), y), got a tuple of 3 items",
        ),
        (
            "make_val_tuple_bad_second",
            "val_data must yield (x, y) batches for loss_fn(model(x), y), got a tuple of 3 items",
        ),
        ("make_no_loss", "loss_fn must be a callable loss_fn(output, target), got NoneType"),
        ("make_loss_name", "loss_fn must be a callable loss_fn(output, target), got str"),
        ("make_val_bytes", "val_data must be an iterable of (x, y) batches or None, got bytes"),
        (
            "make_loss_class",
            "loss_fn is the class torch.nn.modules.loss.CrossEntropyLoss: give an instance, "
            "CrossEntropyLoss()",
        ),
    ],
)
def test_a_target_returning_unusable_data_is_refused_before_the_range_test(
    user_module, target, message, capsys
):
    """What the target returned is lrkit's to check, not an error in the user's code: one
    line naming what it must be, exit code 2, before anything runs."""
    import sys

    assert main(["find", f"{user_module}:{target}", "--no-plot", "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert err == f"lrkit find: error: {message}\n"
    assert out == "" and len(sys.modules[user_module].CALLS) == 1  # nothing ran


@pytest.mark.parametrize(
    "target,message",
    [
        (
            "make_triples_gen",
            "data must yield (x, y) batches for loss_fn(model(x), y), got a tuple of 3 items",
        ),
        (
            "make_dict_gen",
            "data must yield (x, y) batches for loss_fn(model(x), y), got a dict",
        ),
        ("make_empty_gen", "data must yield at least one batch, got an empty iterable"),
        ("make_float_loss", "loss_fn must return the loss as a tensor, got float"),
    ],
)
def test_what_only_the_range_test_shows_of_the_target_is_a_command_line_mistake_too(
    user_module, target, message, capsys
):
    """A generator's batches and what loss_fn returns are seen once the sweep reads them:
    still exit code 2 and one line in the command line's words (no step= of find_lr)."""
    assert main(["find", f"{user_module}:{target}", "--no-plot", "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert err == f"lrkit find: error: {message}\n"
    assert "range test:" not in out


def test_probe_scores_runs_on_the_targets_val_data_and_prints_them(user_module, tmp_path, capsys):
    js = tmp_path / "r.json"
    argv = ["find", f"{user_module}:make_val", "--no-train", "--no-plot", "--quiet"]
    assert main([*argv, "--probe", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    doc = json.loads(js.read_text())
    probes = doc["probes"]
    assert len(probes["lrs"]) == len(probes["losses"]) == 8 and probes["steps"] == 60
    assert probes["lr_min"] == doc["lr_min"]
    assert "and 8 probes of 60 steps in" in out
    assert f"best after 60 steps near {probes['best_lr']:.3g}; the suggestions below" in out
    assert main([*argv, "--json", str(js)]) == 0  # without --probe: none
    plain = json.loads(js.read_text())
    assert plain["probes"] is None and "probes" not in capsys.readouterr().out
    assert plain["lr_min"] == doc["lr_min"] and plain["suggestion"] != doc["suggestion"]


def test_probe_without_validation_batches_is_a_one_line_mistake(user_module, capsys):
    argv = ["find", f"{user_module}:make", "--probe", "--no-train", "--no-plot", "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrkit find: error: --probe scores its runs on validation batches")
    assert "fifth item" in err and len(err.strip().splitlines()) == 1


def test_probe_scores_every_batch_of_a_generators_val_data(user_module, tmp_path, capsys):
    """The check of the target's val_data reads a generator's first batch: with --probe the
    batches are kept first, so the probes still score on all of them (here the only one)."""
    js = tmp_path / "r.json"
    argv = ["find", f"{user_module}:make_val_gen1", "--train-steps", "30", "--no-plot"]
    assert main([*argv, "--quiet", "--probe", "--json", str(js)]) == 0, capsys.readouterr().err
    probes = json.loads(js.read_text())["probes"]
    assert sum(v is not None for v in probes["losses"]) >= 2


def test_a_budget_warning_names_the_option_that_set_the_budget(capsys):
    argv = ["find", "--demo", "--num-iter", "40", "--no-plot"]
    assert main([*argv, "--train-steps", "50"]) == 0  # --total-steps defaults to it
    out = capsys.readouterr().out
    assert "warning: LR range test: --train-steps=50 is below the budgets" in out
    assert main([*argv, "--train-steps", "50", "--total-steps", "60"]) == 0
    out = capsys.readouterr().out
    assert "warning: LR range test: --total-steps=60 is below the budgets" in out
    # the check of 50 steps, shorter than --total-steps, says its own budget's note in the
    # command's words, not as a Python warning
    assert main([*argv, "--train-steps", "50", "--total-steps", "300"]) == 0
    out, err = capsys.readouterr()
    assert "\n  note: --train-steps=50 is below the budgets the rule was fitted on" in out
    assert "Warning" not in err and "--total-steps=300 is below" not in out


def test_check_runs_on_data_that_runs_out_say_so_in_the_commands_words(user_module, capsys):
    assert main(["find", f"{user_module}:make_gen", "--train-steps", "20", "--no-plot"]) == 0
    out, err = capsys.readouterr()
    lines = [ln for ln in out.splitlines() if "data ran out" in ln]
    assert lines and all(ln.startswith("  warning: ") and "check run: data ran out after" in ln
                         for ln in lines)  # fmt: skip
    assert "--train-steps 20 asked for more" in lines[0] and "return a list" in lines[0]
    assert "RuntimeWarning" not in err and "find.py" not in err
    # said whatever the user's warning filters are: it is the command's own diagnostic
    import warnings

    for action in ("ignore", "error"):
        with warnings.catch_warnings():
            warnings.simplefilter(action)
            assert (
                main(["find", f"{user_module}:make_gen", "--train-steps", "20", "--no-plot"]) == 0
            )
        again = [ln for ln in capsys.readouterr().out.splitlines() if "data ran out" in ln]
        assert again == lines


SHUFFLED_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    CALLS = []
    SEEN = []  # the indices of the batches each call's training run read, one list per call

    _X = torch.randn(128, 5, generator=torch.Generator().manual_seed(1))

    def _make(draws):
        model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
        torch.rand(draws)  # what the call draws from the global RNG after building the model
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(_X, torch.arange(128)), batch_size=16, shuffle=True
        )  # no generator of its own: it shuffles with torch's global RNG
        seen = []
        SEEN.append(seen)

        def loss(out, index):
            if model.training:
                seen.append(index.tolist())
            return nn.functional.cross_entropy(out, (_X[index, 0] > 0).long())

        return model, opt, loss, loader

    def make():
        CALLS.append(1)
        return _make(1)

    def make_drawing_more_each_call():
        CALLS.append(1)
        return _make(len(CALLS))
    """
)


@pytest.fixture()
def shuffled_module(write_module):
    """A target whose DataLoader shuffles with torch's global RNG (importable, not imported)."""
    return write_module("lrkit_shuffled_task_mod", SHUFFLED_MODULE)


def test_each_check_run_starts_from_the_rng_state_its_own_call_left(shuffled_module, capsys):
    """A loader shuffled by torch's global RNG, a target that draws more at each call: each
    check run reads first the batch the loader draws right after the run's own (seeded)
    call, the first run's too, though its call was made before the range test."""
    import sys

    import torch

    target = f"{shuffled_module}:make_drawing_more_each_call"
    argv = ["find", target, "--num-iter", "10", "--train-steps", "12", "--no-plot", "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    mod = sys.modules[shuffled_module]
    firsts = [seen[0] for seen in mod.SEEN]
    assert len(firsts) == 3  # the sweep's, and the check runs'
    mod.CALLS.clear()
    expected = []
    with torch.random.fork_rng(devices=[]):
        for _ in range(3):
            torch.manual_seed(0)  # --seed's default, set before every call
            loader = mod.make_drawing_more_each_call()[3]
            expected.append(next(iter(loader))[1].tolist())
    assert len({str(e) for e in expected}) == 3  # each call leaves the RNG elsewhere
    assert firsts[1:] == expected[1:]


def test_the_range_test_draws_the_same_batches_with_and_without_the_check_runs(
    shuffled_module, tmp_path, capsys
):
    """The target's second call (the first check run's, made before the sweep) draws more
    from the global RNG than its first: the sweep still starts from the RNG state the first
    call left, so it reads the batches (and finds the curve) it finds with --no-train."""
    import sys

    target = f"{shuffled_module}:make_drawing_more_each_call"
    js = tmp_path / "r.json"
    argv = ["find", target, "--num-iter", "10", "--no-plot", "--quiet", "--json", str(js)]
    assert main([*argv, "--no-train", "--total-steps", "12"]) == 0, capsys.readouterr().err
    mod = sys.modules[shuffled_module]
    alone, curve = mod.SEEN[0], json.loads(js.read_text())
    mod.CALLS.clear()
    mod.SEEN.clear()
    assert main([*argv, "--train-steps", "12"]) == 0, capsys.readouterr().err
    assert len(mod.SEEN) == 3
    assert mod.SEEN[0] == alone
    checked = json.loads(js.read_text())
    assert checked["lrs"] == curve["lrs"] and checked["losses"] == curve["losses"]


def test_the_check_runs_train_300_steps_by_default(user_module, tmp_path, capsys):
    """Without --train-steps each check run is 300 steps long, and the suggestions are for
    300 steps (a generator of 8 batches ends each run early: the runs say so)."""
    js = tmp_path / "r.json"
    argv = ["find", f"{user_module}:make_gen", "--num-iter", "10", "--no-plot", "--quiet"]
    assert main([*argv, "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "\n  check: 300 training steps from the same initial weights\n" in out
    ran_out = [ln for ln in out.splitlines() if "data ran out" in ln]
    assert len(ran_out) == 2 and all("--train-steps 300 asked for more" in ln for ln in ran_out)
    assert json.loads(js.read_text())["total_steps"] == 300


def test_a_rule_other_than_the_default_is_checked_at_its_own_suggestion_for_any_budget(
    user_module, tmp_path, capsys
):
    """Only the default rule's constant LR depends on the run's length: a check run shorter
    than --total-steps trains at the chosen rule's suggestion shown in the table, and at the
    max_lr for its own length."""
    js = tmp_path / "r.json"
    argv = ["find", f"{user_module}:make", "--num-iter", "30", "--no-plot", "--quiet"]
    argv += ["--rule", "valley", "--json", str(js)]
    assert main([*argv, "--total-steps", "3000", "--train-steps", "30"]) == 0
    text = capsys.readouterr().out
    d = json.loads(js.read_text())
    assert d["rule"] == "valley" and d["total_steps"] == 3000
    own = _suggestions_for(d, 30)
    assert f"{own.constant:.3g}" != f"{d['suggestion']:.3g}"
    assert _check_lrs(text) == (f"{d['suggestion']:.3g}", f"{own.max_lr:.3g}")


def test_a_range_test_warning_is_not_repeated_as_a_note_of_a_shorter_check(user_module, capsys):
    """A check run shorter than --total-steps notes what its own budget adds (here: below the
    budgets the rule was fitted on); the range test's warnings, said above, are not noted
    again."""
    argv = ["find", f"{user_module}:make", "--end-lr", "1e-3", "--num-iter", "10"]
    argv += ["--total-steps", "3000", "--train-steps", "30", "--no-plot", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("the loss never turned up") == 1
    assert "\n  warning: LR range test: the loss never turned up" in out
    assert [ln for ln in out.splitlines() if ln.startswith("  note: ")] == [
        "  note: --train-steps=30 is below the budgets the rule was fitted on (100-1930 "
        "steps): the suggestions are those for 100 steps"
    ]


def test_json_named_like_the_next_free_default_image_moves_the_image_further(
    user_module, tmp_path, monkeypatch
):
    """The default image is taken (lrkit_find.png) and --json names the next free name
    (lrkit_find-1.png): the image takes the one after, nothing is overwritten."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lrkit_find.png").write_bytes(b"an earlier plot")
    argv = ["find", f"{user_module}:make", "--no-train", "--num-iter", "10", "--quiet"]
    assert main([*argv, "--json", "lrkit_find-1.png"]) == 0
    assert json.loads((tmp_path / "lrkit_find-1.png").read_text())["num_iter"] == 10
    assert (tmp_path / "lrkit_find-2.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "lrkit_find.png").read_bytes() == b"an earlier plot"


def test_a_budget_of_one_step_is_said_in_the_singular(capsys):
    argv = ["find", "--demo", "--num-iter", "40", "--no-train", "--no-plot", "--quiet"]
    assert main([*argv, "--total-steps", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "  for 1 training step; reliable: NO (see the warnings below)" in out


DIVERGES_IN_CHECKS = textwrap.dedent(
    """
    import torch
    from torch import nn

    STEPS = []

    def make():
        torch.manual_seed(0)
        x = torch.randn(128, 5)
        y = (x[:, 0] > 0).long()
        model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 128, 16)]

        def loss(out, target):
            value = nn.functional.cross_entropy(out, target)
            if torch.is_grad_enabled():
                STEPS.append(1)
                if len(STEPS) > 12:  # every training step after the range test's
                    return value * float("nan")
            return value

        return model, opt, loss, data, data[:2]
    """
)


def test_a_check_run_that_diverges_is_not_scored_on_the_validation_batches(write_module, capsys):
    """A diverged check run is reported as diverged on its training loss, without an
    accuracy: its model is not scored on val_data."""
    name = write_module("lrkit_find_diverges", DIVERGES_IN_CHECKS)
    argv = ["find", f"{name}:make", "--num-iter", "10", "--train-steps", "20"]
    assert main([*argv, "--no-plot", "--quiet"]) == 0
    rows = [ln.split() for ln in capsys.readouterr().out.splitlines()]
    checks = [r for r in rows if r and r[0] in ("constant", "one-cycle")]
    assert [(r[0], r[3], r[4], r[5]) for r in checks] == [
        ("constant", "train", "diverged", "-"),
        ("one-cycle", "train", "diverged", "-"),
    ]


NAN_FROM_THE_FIRST_STEP = textwrap.dedent(
    """
    import torch
    from torch import nn

    def make():
        torch.manual_seed(0)
        x = torch.randn(64, 4)
        y = (x[:, 0] > 0).long()
        model = nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]

        def loss(out, target):
            value = nn.functional.cross_entropy(out, target)
            return value * float("nan") if torch.is_grad_enabled() else value

        return model, opt, loss, data
    """
)


def test_a_range_test_of_one_step_is_said_in_the_singular(write_module, capsys):
    name = write_module("lrkit_find_nan_first", NAN_FROM_THE_FIRST_STEP)
    main(["find", f"{name}:make", "--no-plot", "--quiet", "--no-train"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("range test: 1 step in "), lines[1]


def test_the_image_is_the_results_own_figure_with_its_legend_beside_the_curve(
    user_module, tmp_path, monkeypatch, capsys
):
    """``lrkit find -o`` draws what ``FinderResult.plot(path)`` draws (its legend beside the
    axes), headed by the target's name."""
    pytest.importorskip("matplotlib")
    from lrkit.finder import FinderResult

    calls = []
    plot = FinderResult.plot

    def recorded(self, *args, **kwargs):
        calls.append((args, kwargs))
        return plot(self, *args, **kwargs)

    monkeypatch.setattr(FinderResult, "plot", recorded)
    out = tmp_path / "f.png"
    argv = ["find", f"{user_module}:make_val", "--no-train", "--quiet", "-o", str(out)]
    assert main(argv) == 0
    [(args, kwargs)] = calls
    assert args == () and set(kwargs) == {"path", "title"}  # no axes of the command's own
    assert kwargs["title"] == f"LR range test: {user_module}:make_val"
    assert Path(kwargs["path"]).name == "f.png"  # written beside it first, then moved there
    assert out.read_bytes().startswith(b"\x89PNG")


GROUPS_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def make(groups=True):
        torch.manual_seed(0)
        x = torch.randn(128, 5)
        y = (x[:, 0] > 0).long()
        model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
        params = [{"params": model[0].parameters(), "lr": 0.001},
                  {"params": model[2].parameters(), "lr": 0.01}]
        opt = torch.optim.SGD(params if groups else model.parameters(), lr=0.1)
        data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 128, 16)]
        return model, opt, nn.functional.cross_entropy, data, data[:2]

    def make_one():
        return make(groups=False)
    """
)


def test_find_says_the_lrs_are_in_units_of_the_optimizers_lr_for_groups_of_their_own(
    write_module, capsys
) -> None:
    mod = write_module("lrkit_groups_task", GROUPS_MODULE)
    assert main(["find", f"{mod}:make", "--no-plot", "--train-steps", "5"]) == 0
    out = capsys.readouterr().out
    line = "  param groups train at x0.01, x0.1 these LRs (the optimizer's lr is their unit)"
    assert out.count(line + "\n") == 2  # under the table and in the check's header
    assert out.index(line) < out.index("check: 5 training steps") < out.rindex(line)
    assert main(["find", f"{mod}:make_one", "--no-plot", "--no-train"]) == 0
    assert "param groups train at" not in capsys.readouterr().out


def test_the_former_name_of_rule_takes_only_the_names_of_the_rules(capsys):
    with pytest.raises(SystemExit) as info:
        main(["find", "--demo", "--method", "nonsense"])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith(
        "lrkit find: error: argument --method: invalid choice: 'nonsense' (choose from "
        "'budget_edge', 'steepest', "
    )


def test_rule_and_its_former_name_naming_the_same_rule_are_accepted(user_module, capsys):
    argv = ["find", f"{user_module}:make", "--no-train", "--no-plot", "--quiet"]
    assert main([*argv, "--num-iter", "10", "--rule", "valley", "--method", "valley"]) == 0
    out = capsys.readouterr().out
    assert [ln.split()[0] for ln in out.splitlines() if ln.startswith(" *")] == ["*valley"]


def test_the_range_tests_warnings_give_this_commands_options_in_its_words(user_module, capsys):
    """The sweep's advice names the options of the command (--end-lr for end_lr; max_end_lr,
    which it has not, left out; --total-steps for total_steps) and leaves the word "rule"
    of its text as it is."""
    argv = ["find", f"{user_module}:make", "--end-lr", "1e-3", "--num-iter", "10"]
    assert main([*argv, "--no-train", "--total-steps", "50", "--no-plot", "--quiet"]) == 0
    warned = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  warning:")]
    assert len(warned) == 2
    assert warned[0].startswith("  warning: LR range test: the loss never turned up (sweep ")
    assert warned[0].endswith(
        "the edge of stability lies beyond it, so the suggestions are lower bounds; rerun "
        "with a larger --end-lr"
    )
    assert warned[1] == (
        "  warning: LR range test: --total-steps=50 is below the budgets the rule was fitted "
        "on (100-1930 steps): the suggestions are those for 100 steps"
    )


def test_a_curve_that_did_not_descend_is_said_without_the_python_apis_arguments(
    user_module, capsys
):
    argv = ["find", f"{user_module}:make_flat_then_diverging", "--num-iter", "20"]
    assert main([*argv, "--no-train", "--no-plot", "--quiet"]) == 0
    warned = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  warning:")]
    assert warned == [
        "  warning: LR range test: the loss did not clearly descend (noise 0): the curve is "
        "flat or too noisy; use more iterations (--num-iter), a wider range "
        "(--start-lr/--end-lr) or a larger batch"
    ]


def test_the_check_runs_are_the_constant_suggestion_and_one_cycle_over_the_run():
    from lrkit.commands.find import check_runs
    from lrkit.schedules import onecycle

    runs = check_runs(0.01, 0.5, 40)
    assert [run[:3] for run in runs] == [("constant", "lr", 0.01), ("one-cycle", "max_lr", 0.5)]
    (_, _, _, flat), (_, _, _, cycle) = runs
    assert [flat(k) for k in range(40)] == [0.01] * 40
    expected = onecycle(0.5, total_steps=40)
    assert [cycle(k) for k in range(40)] == [expected(k) for k in range(40)]


def test_each_check_run_is_scored_on_every_validation_batch(user_module, capsys):
    import sys

    argv = ["find", f"{user_module}:make_val_of_two_sizes", "--num-iter", "10"]
    assert main([*argv, "--train-steps", "5", "--no-plot", "--quiet"]) == 0
    sizes = [n for n in sys.modules[user_module].EVAL_SIZES if n in (7, 5)]
    assert sizes == [7, 5, 7, 5]  # both batches, after each of the two check runs


def test_only_the_first_batch_of_a_generators_val_data_is_read_before_the_range_test(
    user_module, capsys
):
    """A generator's val_data is checked on its first batch (it is read once); a list or
    tuple is checked on every batch (see the refusals above)."""
    argv = ["find", f"{user_module}:make_val_gen_bad_second", "--num-iter", "10"]
    assert main([*argv, "--no-train", "--no-plot", "--quiet"]) == 0, capsys.readouterr().err


def test_probe_on_many_validation_batches_does_not_warn_of_their_number(user_module, capsys):
    """The sweep warns of many held batches it evaluates every few steps; the probes score
    on each batch once per run: no warning."""
    import warnings

    argv = ["find", f"{user_module}:make_many_val", "--num-iter", "10", "--probe"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main([*argv, "--no-train", "--no-plot", "--quiet"]) == 0
    assert [str(w.message) for w in seen if issubclass(w.category, UserWarning)] == []


def test_check_runs_longer_than_total_steps_train_at_their_own_budgets_suggestions(
    user_module, tmp_path, capsys
):
    js = tmp_path / "r.json"
    argv = ["find", f"{user_module}:make", "--num-iter", "30", "--no-plot", "--quiet"]
    assert main([*argv, "--total-steps", "100", "--train-steps", "200", "--json", str(js)]) == 0
    text = capsys.readouterr().out
    assert "at the suggestions for a run of 200 steps (those above are for 100)" in text
    d = json.loads(js.read_text())
    own = _suggestions_for(d, 200)
    assert f"{own.constant:.3g}" != f"{d['suggestion']:.3g}"
    assert _check_lrs(text) == (f"{own.constant:.3g}", f"{own.max_lr:.3g}")


def test_an_image_named_by_the_user_replaces_the_file_there(user_module, tmp_path, capsys):
    out = tmp_path / "p.png"
    out.write_bytes(b"an earlier plot")
    argv = ["find", f"{user_module}:make", "--no-train", "--num-iter", "10", "--quiet"]
    assert main([*argv, "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png") == ["p.png"]


def test_a_mistake_only_the_check_runs_show_is_a_command_line_mistake_after_the_table(
    user_module, tmp_path, capsys
):
    js = tmp_path / "r.json"
    argv = ["find", f"{user_module}:make_float_loss_in_the_check_runs", "--num-iter", "10"]
    assert main([*argv, "--train-steps", "5", "--no-plot", "--quiet", "--json", str(js)]) == 2
    out, err = capsys.readouterr()
    assert err == "lrkit find: error: loss_fn must return the loss as a tensor, got float\n"
    assert "check: 5 training steps" in out and "final loss" not in out
    assert json.loads(js.read_text())["suggestion"] > 0  # the range test's result is kept


def test_a_standard_output_that_fails_during_the_check_runs_is_one_line_exit_1(
    user_module, monkeypatch, capsys
):
    """The check runs' lines cannot be written (a full disk): the command says so in one line,
    exit code 1, rather than ending as if all was printed."""
    import errno
    import io
    import sys

    class FailsFromTheCheck(io.StringIO):
        def write(self, text):
            if "check:" in text or self.failed:
                self.failed = True
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(text)

    stdout = FailsFromTheCheck()
    stdout.failed = False
    monkeypatch.setattr(sys, "stdout", stdout)
    argv = ["find", f"{user_module}:make", "--num-iter", "10", "--train-steps", "5"]
    assert main([*argv, "--no-plot", "--quiet"]) == 1
    assert stdout.failed and "sweep:" in stdout.getvalue()
    assert capsys.readouterr().err == (
        "lrkit find: error: cannot write to the standard output: [Errno 28] No space left on "
        "device\n"
    )


def test_the_image_and_the_json_named_alike_are_refused_before_any_work(
    user_module, tmp_path, monkeypatch, capsys
):
    import sys

    monkeypatch.chdir(tmp_path)
    argv = ["find", f"{user_module}:make", "--no-train", "--quiet"]
    assert main([*argv, "-o", "r.png", "--json", "./r.png"]) == 2
    assert capsys.readouterr().err == (
        "lrkit find: error: -o/--output 'r.png' and --json './r.png' are the same file: give "
        "each its own\n"
    )
    assert not (tmp_path / "r.png").exists() and user_module not in sys.modules


def test_the_table_gives_the_schedules_peaks_and_what_they_are_for() -> None:
    """Below the rules: one-cycle's and cyclic's peak and floor, and warmup-cosine's peak with
    the warmup it was chosen for (5% of the run)."""
    import math

    from lrkit.commands.find import _table
    from lrkit.finder import range_test

    result = range_test(lambda lr: (math.log10(lr) + 3) ** 2 + 1, total_steps=500, warn=False)
    w = max(10, *(len(m) for m in result.suggestions()))
    lines = _table(result).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  max_lr "))
    assert lines[at : at + 3] == [
        f"  {'max_lr':<{w}} {result.max_lr:13.3g}   peak of one-cycle / cyclic",
        f"  {'base_lr':<{w}} {result.max_lr / 10:13.3g}   floor of cyclic",
        f"  {'peak_lr':<{w}} {result.peak_lr:13.3g}   peak of warmup-cosine (5% warmup)",
    ]
