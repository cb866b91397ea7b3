"""What a target returns is lrkit's to check: ``lrkit tune`` (a ``(model_factory, loss_fn,
data, val_data)`` tuple, which lrkit trains) and ``lrkit compare`` refuse what cannot be
used with one line naming the target, exit code 2, before any work starts, as ``lrkit find``
does; an error the user's code raises meanwhile stays the target's (exit code 1). Messages and
notes name the options of the command, not the parameters of the Python API."""

from __future__ import annotations

import textwrap

import pytest

torch = pytest.importorskip("torch")

from lrkit.cli import main  # noqa: E402

MODULE = "lrkit_ret_tasks"

TASKS = textwrap.dedent(
    """
    import math

    import torch
    from torch import nn

    CALLS = []
    DRAWN = []
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    triples = [(a, b, 0) for a, b in data]
    F = nn.functional.cross_entropy


    def model():
        return nn.Linear(4, 2)


    # lrkit tune: (model_factory, loss_fn, data, val_data)
    def tup_triples():
        return model, F, triples, data

    def tup_val_triples():
        return model, F, data, triples

    def tup_triples_factory():
        return model, F, (lambda: iter(triples)), data

    def tup_no_loss():
        return model, None, data, data

    def tup_empty_val():
        return model, F, data, []

    def tup_unsized():
        return model, F, (lambda: iter(data)), data

    def tup_empty_train():
        return model, F, [], data

    def tup_no_val():
        return model, F, data, None

    def tup_train_number():
        return model, F, 42, data

    class Broken:
        def __len__(self):
            return 4

        def __iter__(self):
            raise RuntimeError("the user's loader failed")  # LOADER LINE

    def tup_broken_loader():
        return model, F, Broken(), data

    def tup_float_loss():
        return model, (lambda out, target: 1.0), data, data

    def tup_loader():
        ds = torch.utils.data.TensorDataset(x, y)
        loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True)
        return model, F, loader, (lambda: iter(data))

    def task_without_range_test():
        from lrkit.tune import Task

        return Task(train=lambda schedule, report: float(schedule(0)), total_steps=20)


    # lrkit find and lrkit compare: (model, optimizer, loss_fn, data[, val_data])
    def _setup(loss=F, batches=None, val=None):
        CALLS.append(1)
        torch.manual_seed(0)
        m = model()
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        out = (m, opt, loss, data if batches is None else batches)
        return out if val is None else (*out, val)

    def make_triples():
        return _setup(batches=triples)

    def make_triples_gen():
        return _setup(batches=(b for b in triples))

    def make_val_triples():
        return _setup(val=triples)

    def make_no_loss():
        return _setup(loss=None)

    def make_broken_val():
        return _setup(val=Broken())

    def make_float_loss():
        return _setup(loss=lambda out, target: 1.0)

    def make_nan():
        return _setup(loss=lambda out, target: F(out, target) * math.nan)

    def _drawn():
        for b in data * 1000:
            DRAWN.append(1)
            yield b

    STREAM = _drawn()  # one stream for every call: the runs', not the check's to read

    def make_stream():
        return _setup(batches=STREAM)

    LATER = []

    def make_kept_later():
        # a fresh model for the first two calls, then one kept and trained by every run
        CALLS.append(1)
        if len(CALLS) <= 2:
            m = model()
        else:
            if not LATER:
                LATER.append(model())
            m = LATER[0]
        return m, torch.optim.SGD(m.parameters(), lr=0.1), F, data
    """
)
LOADER_LINE = next(i for i, ln in enumerate(TASKS.splitlines(), 1) if "# LOADER LINE" in ln)


@pytest.fixture
def folder(tmp_path, monkeypatch, write_module):
    write_module(MODULE, TASKS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _tune(target: str, *argv: str) -> list[str]:
    return [
        "tune",
        f"{MODULE}:{target}",
        "--trials",
        "2",
        "--epochs",
        "3",
        "--no-progress",
        "--storage",
        "sqlite:///t.db",
        "--plot",
        "none",
        *argv,
    ]


BATCHES = "must yield (x, y) batches for loss_fn(model(x), y), got a tuple of 3 items"
DATA = "(a list, a DataLoader, or a function returning one)"


@pytest.mark.parametrize(
    "target, message",
    [
        ("tup_triples", f"data {BATCHES}"),
        ("tup_triples_factory", f"data {BATCHES}"),
        ("tup_val_triples", f"val_data {BATCHES}"),
        ("tup_no_loss", "loss_fn must be a callable loss_fn(output, target), got NoneType"),
        ("tup_empty_val", "val_data must yield at least one batch, got none"),
        (
            "tup_unsized",
            "data must have a len() (a list, or a DataLoader over a sized dataset): a "
            "trial trains --epochs x its batches, got a list_iterator without one",
        ),
        ("tup_empty_train", "data must yield at least one batch, got none"),
        ("tup_no_val", f"val_data must be an iterable of (x, y) batches {DATA}, got NoneType"),
        (
            "tup_train_number",
            f"data must be an iterable of (x, y) batches {DATA}, got int",
        ),
    ],
)
def test_tune_refuses_a_tuple_it_cannot_train_before_the_range_test(
    folder, capsys, target, message
):
    pytest.importorskip("optuna")
    assert main(_tune(target)) == 2
    out, err = capsys.readouterr()
    assert err == f"lrkit tune: error: target '{MODULE}:{target}': {message}\n"
    assert out == "" and not (folder / "t.db").exists()  # no range test, no study


def test_tune_reports_the_users_loader_failing_while_checked_as_the_targets(folder, capsys):
    pytest.importorskip("optuna")
    assert main(_tune("tup_broken_loader")) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"lrkit tune: error in target '{MODULE}:tup_broken_loader' during the check of what it "
        f"returned: RuntimeError: the user's loader failed (at {MODULE}.py:{LOADER_LINE} in "
        "__iter__; --traceback shows the full traceback)"
    ]
    assert not (folder / "t.db").exists()


def test_tune_a_tuple_loss_that_returns_no_tensor_is_a_mistake_of_the_target(folder, capsys):
    # seen only once the range test calls it: the range test ends with one line, exit code 2
    pytest.importorskip("optuna")
    assert main(_tune("tup_float_loss")) == 2
    assert capsys.readouterr().err.splitlines() == [
        "running the LR range test to bound the search ...",
        f"lrkit tune: error: target '{MODULE}:tup_float_loss': loss_fn must return the loss as "
        "a tensor, got float",
    ]


def test_tune_a_tuple_with_a_loader_and_a_data_function_passes_the_check(folder, capsys):
    pytest.importorskip("optuna")
    assert main(_tune("tup_loader", "--seeding", "blind", "--seed", "0", "--quiet")) == 0
    assert capsys.readouterr().out.strip()  # the best schedule


@pytest.mark.parametrize(
    "seeding, said", [([], "--seeding finder (the default)"), (["--seeding", "finder"], None)]
)
def test_tune_note_on_a_task_without_range_test_names_the_option(folder, capsys, seeding, said):
    pytest.importorskip("optuna")
    argv = ["tune", f"{MODULE}:task_without_range_test", "--trials", "1", "--no-progress"]
    assert main([*argv, "--plot", "none", *seeding]) == 0
    notes = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("note:")]
    assert notes == [
        f"note: {said or '--seeding finder'} but the task has no range_test: searching the blind "
        "interval (1e-06, 10.0)"
    ]


COMPARE = ["--methods", "fixed,adam", "--steps", "10", "--finder-iter", "10", "--no-plot"]


@pytest.mark.parametrize(
    "target, message",
    [
        ("make_triples", f"data {BATCHES}"),
        ("make_triples_gen", f"data {BATCHES}"),
        ("make_val_triples", f"val_data {BATCHES}"),
        ("make_no_loss", "loss_fn must be a callable loss_fn(output, target), got NoneType"),
    ],
)
def test_compare_refuses_what_the_target_returned_before_the_runs(folder, capsys, target, message):
    assert main(["compare", f"{MODULE}:{target}", *COMPARE, "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert err == f"lrkit compare: error: target '{MODULE}:{target}': {message}\n"
    assert out == ""


@pytest.mark.parametrize("command", ["find", "compare"])
def test_the_users_loader_failing_while_checked_is_the_targets_error(folder, capsys, command):
    argv = [command, f"{MODULE}:make_broken_val", "--no-plot", "--quiet"]
    assert main([*argv, *(COMPARE[:-1] if command == "compare" else [])]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"lrkit {command}: error in target '{MODULE}:make_broken_val' during the check of what "
        f"it returned: RuntimeError: the user's loader failed (at {MODULE}.py:{LOADER_LINE} in "
        "__iter__; --traceback shows the full traceback)"
    ]


def test_compare_leaves_a_stream_every_call_returns_to_the_runs(folder, monkeypatch, capsys):
    # one generator returned by every call (built at import) is not read by the check; a
    # generator each call builds is (test above)
    from lrkit import compare as C

    tasks = __import__(MODULE)

    def runs(make, **kwargs):
        assert tasks.DRAWN == [] and len(tasks.CALLS) == 2  # checked, nothing drawn
        raise KeyboardInterrupt

    monkeypatch.setattr(C, "compare", runs)
    assert main(["compare", f"{MODULE}:make_stream", *COMPARE, "--quiet"]) == 130
    assert capsys.readouterr().err == "\nlrkit compare: interrupted\n"


def test_compare_a_loss_that_returns_no_tensor_is_a_mistake_of_the_target(folder, capsys):
    assert main(["compare", f"{MODULE}:make_float_loss", *COMPARE, "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"lrkit compare: error: target '{MODULE}:make_float_loss': loss_fn must return the loss "
        "as a tensor, got float\n"
    )


def test_compare_a_model_kept_by_later_calls_is_a_mistake_in_the_commands_words(folder, capsys):
    assert main(["compare", f"{MODULE}:make_kept_later", *COMPARE, "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"lrkit compare: error: target '{MODULE}:make_kept_later' must build a fresh model for "
        "every run; it returned the first call's model again, or a layer of it, whose weights "
        "have changed since (trained: it would go on training where the last run left it; its "
        "weights are put back as first returned): create the model inside the function\n"
    )


def test_find_warnings_name_the_options(folder, capsys):
    argv = ["find", f"{MODULE}:make_nan", "--no-plot", "--quiet", "--no-train"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert out.endswith(
        "\n  warning: LR range test: no step completed (the first loss was NaN/inf or the sweep "
        "was interrupted): lower --start-lr and check the training step\n"
    )
    pytest.importorskip("sklearn")  # the demo's data
    argv = ["find", "--demo", "--num-iter", "10", "--end-lr", "1e-4", "--no-train", "--quiet"]
    assert main([*argv, "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "rerun with a larger --end-lr\n" in out and "max_end_lr" not in out
