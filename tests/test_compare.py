"""lrkit.compare from Python: every method sees the same batches, the caller's RNGs are left
alone, and bad inputs are one-line errors naming the parameter."""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from lrkit import compare as C  # noqa: E402
from lrkit.torch import BatchLayoutError  # noqa: E402


def _task(log: list[list[int]]):
    def fn():
        x = torch.arange(64.0).reshape(64, 1).repeat(1, 4) / 64
        y = torch.arange(64) % 3
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        seen: list[int] = []
        log.append(seen)

        def loss_fn(out, t):
            if torch.is_grad_enabled():  # a training batch, identified by its first label
                seen.append(int(t[0]) * 1000 + len(t))
            return torch.nn.functional.cross_entropy(out, t)

        train = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
        val = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
        return model, opt, loss_fn, train, val

    return fn


def test_every_method_trains_on_the_same_batches_and_the_rngs_are_left_alone():
    log: list[list[int]] = []
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(7)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    methods = ["fixed", "plateau", "cosine", "adam"]
    C.compare(C.factory(_task(log), seed=0), methods=methods, steps=40, num_iter=10)
    runs = log[-len(methods) :]
    assert all(len(r) == 40 for r in runs)
    assert all(r == runs[0] for r in runs)  # plateau evaluates mid-run, yet the same order
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]


def test_a_make_that_does_not_seed_still_gives_every_run_the_same_batches():
    """A make() returning a Setup itself (weights loaded from a fixed state, nothing seeded):
    each run starts from the same global RNG state, so a shuffled loader without a generator
    of its own deals every method the same batches (it dealt each a different order)."""
    log: list[list[int]] = []
    build = _task(log)
    torch.manual_seed(0)
    fixed = build()[0].state_dict()

    def make():
        model, opt, loss_fn, train, val = build()
        model.load_state_dict(fixed)
        return C.Setup(model, optimizer=opt, loss_fn=loss_fn, data=train, val_data=val)

    methods = ["fixed", "cosine", "adam"]
    C.compare(make, methods=methods, steps=20, num_iter=10)
    runs = log[-len(methods) :]
    assert all(len(r) == 20 for r in runs) and all(r == runs[0] for r in runs)


def test_the_up_front_check_draws_nothing_the_runs_see(monkeypatch):
    # a make() that leaves the global RNG alone (its model seeded on a forked RNG) while the
    # loaders shuffle from it: the check's extra setup and step must not move the global RNG
    # the range tests and the runs draw from
    fn = _task([])

    def unseeded():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return C.as_setup(fn())

    def run():
        torch.manual_seed(0)
        r = C.compare(unseeded, methods=["fixed", "cosine"], steps=10, num_iter=10)
        return r.lrs.base, [x.val_loss for x in r.results]

    with_check = run()
    monkeypatch.setattr(C, "_preflight", lambda make: None)
    assert run() == with_check


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: C.factory(5), TypeError, r"^fn must be a callable fn\(\)"),
        (lambda: C.factory(lambda: None, seed=-1), ValueError, r"^seed must be an integer in \["),
        (lambda: C.factory(lambda: None, seed=2**40), ValueError, r"^seed must be .* got 1099"),
        (lambda: C.factory(lambda: None, seed="a"), ValueError, r"^seed must be an integer"),
        (lambda: C.demo_factory(seed=-1), ValueError, r"^seed must be an integer in \[0, "),
        (lambda: C.demo_factory(seed=2**40), ValueError, r"^seed must be .* got 1099"),
        (lambda: C.parse_methods(5), ValueError, r"^methods must be a comma-separated subset"),
        (lambda: C.parse_methods(None), ValueError, r"^methods must be a comma-separated"),
        (lambda: C.find_lrs(lambda: (1, 2), methods=["fixed"]), TypeError,
         r"^make\(\) must return a lrkit.compare.Setup"),
        (lambda: C.find_lrs(lambda: None, methods=["fixed"], num_iter=0), ValueError,
         r"^num_iter must be an integer in \[10, 100000\]"),
        (lambda: C.find_lrs(lambda: None, methods=["fixed"], num_iter=200_000), ValueError,
         r"^num_iter must be an integer in \[10, 100000\]"),
        (lambda: C.compare(lambda: None, methods=["fixed"], num_iter=200_000), ValueError,
         r"^num_iter must be an integer in \[10, 100000\]"),
        (lambda: C.find_lrs(lambda: None, methods="adamx"), ValueError, r"^methods must be"),
        (lambda: C.run_method("nope", make=lambda: None, lrs=None, steps=10), ValueError,
         r"^method must be one of 'fixed'"),
    ],
)  # fmt: skip
def test_bad_inputs_are_one_line_errors_naming_the_parameter(call, error, message):
    with pytest.raises(error, match=message) as info:
        call()
    assert "\n" not in str(info.value)


@pytest.fixture
def no_lrfree(monkeypatch):
    """schedulefree and prodigyopt as if they were not installed."""
    import sys

    monkeypatch.setitem(sys.modules, "schedulefree", None)
    monkeypatch.setitem(sys.modules, "prodigyopt", None)


def test_methods_whose_package_is_missing_are_left_out_by_default_and_refused_by_name(
    no_lrfree,
):
    calls: list[list[int]] = []
    make = C.factory(_task(calls), seed=0)
    assert C.missing_packages(C.METHODS) == {
        "schedulefree": ("schedulefree", "lrfree"),
        "prodigy": ("prodigyopt", "lrfree"),
    }
    assert C.available_methods() == [m for m in C.METHODS if m not in C.PACKAGES]
    with pytest.raises(ImportError) as info:
        C.compare(make, methods="fixed,prodigy", steps=10, num_iter=10)
    assert str(info.value) == "method 'prodigy' needs prodigyopt: pip install 'lrkit[lrfree]'"
    assert calls == []  # refused before anything trained
    report = C.compare(make, steps=10, num_iter=10)
    assert [r.method for r in report.results] == C.available_methods()


def test_every_method_is_available_when_the_packages_are_installed():
    pytest.importorskip("schedulefree")
    pytest.importorskip("prodigyopt")
    assert C.missing_packages(C.METHODS) == {}
    assert C.available_methods() == list(C.METHODS)
    assert C.check_installed("prodigy,fixed") == ["prodigy", "fixed"]


def test_validation_data_without_a_batch_is_refused_before_any_method_trains():
    log: list[list[int]] = []
    inner = _task(log)

    def fn():
        model, opt, loss_fn, train, _ = inner()
        return model, opt, loss_fn, train, []

    with pytest.raises(ValueError, match=r"^val_data must yield at least one batch, got none$"):
        C.compare(C.factory(fn, seed=0), methods="fixed,adam", steps=10, num_iter=10)
    assert [len(r) for r in log] == [1]  # the one check step of a throwaway setup, no run


def test_param_groups_a_schedule_cannot_drive_are_refused_before_any_method_trains():
    """Every group at an lr of its own and the optimizer's lr at its default: the methods
    drive the optimizer with schedules, so each would fail; refused up front, untrained."""
    log: list[list[int]] = []
    inner = _task(log)

    def fn():
        model, _, loss_fn, train, val = inner()
        groups = [{"params": model[0].parameters(), "lr": 0.01},
                  {"params": model[2].parameters(), "lr": 0.1}]  # fmt: skip
        return model, torch.optim.SGD(groups), loss_fn, train, val

    with pytest.raises(ValueError, match=r"^optimizer: every param group sets its own lr "):
        C.compare(C.factory(fn, seed=0), methods="fixed,adam", steps=10, num_iter=10)
    assert [len(r) for r in log] == [0]  # one throwaway setup, nothing trained


def test_groups_at_other_lrs_are_noted_beside_the_lr_they_are_ratios_of():
    """The LR column is the schedule's value (the optimizer's lr); each group trains at its
    ratio of it, which the row says."""
    log: list[list[int]] = []
    inner = _task(log)

    def fn():
        model, _, loss_fn, train, val = inner()
        groups = [{"params": model[0].parameters(), "lr": 0.01},
                  {"params": model[2].parameters()}]  # fmt: skip
        return model, torch.optim.SGD(groups, lr=0.1), loss_fn, train, val

    report = C.compare(C.factory(fn, seed=0), methods="fixed,plateau,adam", steps=10,
                       num_iter=10)  # fmt: skip
    fixed, plateau, adam = report.results
    assert fixed.note == "groups at x0.1, x1 the LR"
    assert plateau.note.endswith(" reductions; groups at x0.1, x1 the LR")
    assert adam.note == "one group, no group LRs (the target's not carried)"  # its own optimizer
    assert fixed.lrs[0] == pytest.approx(0.1 * report.lrs.base)  # group 0's, plotted
    assert fixed.lr == f"{report.lrs.base:.3g}"
    # one group: no note
    plain = C.compare(C.factory(_task([]), seed=0), methods="fixed", steps=10, num_iter=10)
    assert plain.results[0].note == ""


def test_a_group_frozen_at_lr_0_stays_frozen_in_every_row():
    """A layer frozen with lr=0 in the base optimizer: the schedules keep it at 0, and the
    rows with an optimizer of their own (adam) leave it out, so every row trains the same
    layers (adam trained it)."""
    log: list[list[int]] = []
    inner = _task(log)
    frozen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def fn():
        model, _, loss_fn, train, val = inner()
        frozen.append((model[0].weight, model[0].weight.detach().clone()))
        groups = [{"params": model[0].parameters(), "lr": 0.0},
                  {"params": model[2].parameters()}]  # fmt: skip
        return model, torch.optim.SGD(groups, lr=0.1), loss_fn, train, val

    C.compare(C.factory(fn, seed=0), methods="fixed,adam", steps=10, num_iter=10)
    assert len(frozen) >= 2 and all(torch.equal(w, start) for w, start in frozen[-2:])


def test_one_generator_handed_to_every_run_is_refused_and_a_fresh_one_each_time_is_taken():
    """A generator built once (at import) would give each run the batches the runs before it
    left: refused before any method trains; one built on every call reads from its start."""
    x = torch.arange(64.0).reshape(64, 1).repeat(1, 4) / 64
    y = torch.arange(64) % 3

    def batches():
        for _ in range(3):  # 12 batches: enough for 10 steps
            for i in range(0, 64, 16):
                yield x[i : i + 16], y[i : i + 16]

    shared = batches()

    def make(data):
        model = torch.nn.Linear(4, 3)
        return (
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            torch.nn.functional.cross_entropy,
            data,
        )

    with pytest.raises(C.NotFreshError) as info:
        C.compare(C.factory(lambda: make(shared), seed=0), methods="fixed", steps=10,
                  num_iter=10)  # fmt: skip
    assert "returned the first run's data again, a one-shot iterator (generator)" in str(info.value)
    fresh = C.compare(C.factory(lambda: make(batches()), seed=0), methods="fixed,cosine",
                      steps=10, num_iter=10)  # fmt: skip
    first = [r.losses[0] for r in fresh.results]
    assert first[0] == first[1]  # the same first batch, from the same weights


def test_adams_range_test_sweeps_the_parameters_its_runs_train():
    """A head fine-tuned with the body left out of the optimizer: Adam's suggestion comes from
    a sweep of the head alone, as its run trains the head alone."""
    import warnings

    from lrkit.torch import find_lr, seed_all

    g = torch.Generator().manual_seed(1)
    x = torch.randn(512, 8, generator=g)
    y = (x[:, 0] > 0).long()
    data = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 512, 32)]

    def fn():
        body = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU())
        model = torch.nn.Sequential(body, torch.nn.Linear(64, 2))
        opt = torch.optim.SGD(model[1].parameters(), lr=0.1)
        return model, opt, torch.nn.functional.cross_entropy, data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = C.compare(C.factory(fn, seed=0), methods="adam", steps=50, num_iter=50)
    seed_all(0)
    model, _, loss_fn, batches = fn()
    head = torch.optim.Adam(model[1].parameters(), lr=1e-3)
    alone = find_lr(model, head, loss_fn, batches, num_iter=50, total_steps=50, warn=False)
    assert report.lrs.adam == alone.suggestion


def test_callable_data_with_batchnorm_and_schedule_free():
    pytest.importorskip("schedulefree")

    def fn():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=g)
        y = (x[:, 0] > 0).long()
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8),
                                    torch.nn.ReLU(), torch.nn.Linear(8, 2))  # fmt: skip
        loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, torch.nn.functional.cross_entropy, lambda: iter(loader), [(x, y)]

    report = C.compare(C.factory(fn, seed=0), methods="schedulefree", steps=10, num_iter=10)
    (r,) = report.results
    assert not r.error and np.isfinite(r.val_loss) and report.best is r


def test_a_method_failing_late_is_a_row_with_its_error_and_the_others_are_kept(monkeypatch):
    pytest.importorskip("prodigyopt")
    import lrkit.torch

    def broken(params, **kwargs):
        raise RuntimeError("no\nprodigy today")

    monkeypatch.setattr(lrkit.torch, "prodigy", broken)
    log: list[list[int]] = []
    make = C.factory(_task(log), seed=0)
    report = C.compare(make, methods="fixed,prodigy,adam", steps=10, num_iter=10)
    fixed, failed, adam = report.results
    assert failed.error == "RuntimeError: no prodigy today" and "failed:" in failed.note
    assert failed.seconds > 0  # the time it took to fail, not 0 ms in the table
    assert not fixed.error and not adam.error and len(fixed.losses) == len(adam.losses) == 10
    assert report.best in (fixed, adam) and "RuntimeError: no prodigy today" in report.table()
    assert report.to_dict()["results"][1]["error"] == failed.error
    # every method failed: the rows are kept (the table, JSON and plot still say why)
    alone = C.compare(make, methods="prodigy", steps=10, num_iter=10)
    assert alone.best is None and [r.error for r in alone.results] == [failed.error]
    assert "RuntimeError: no prodigy today" in alone.table()
    assert alone.to_dict()["results"][0]["error"] == failed.error


def test_a_range_test_reads_data_given_as_a_function_and_raises_what_it_meets():
    """``data`` as fit takes it (a function called for each pass) is swept too; an error in
    the sweep is raised, not replaced by a default LR."""
    log: list[list[int]] = []
    task = _task(log)

    def as_function():
        model, opt, loss_fn, train, val = task()
        return model, opt, loss_fn, lambda: iter(train), val

    lrs = C.find_lrs(C.factory(as_function, seed=0), methods="fixed", num_iter=20)
    same = C.find_lrs(C.factory(task, seed=0), methods="fixed", num_iter=20)
    assert lrs.notes == same.notes and lrs.base == same.base
    assert not any(n.startswith("no reliable suggestion") for n in lrs.notes)  # no fallback

    def broken():
        model, opt, loss_fn, train, val = task()

        def loss(out, t):
            raise RuntimeError("the loss broke")

        return model, opt, loss, train, val

    with pytest.raises(RuntimeError, match="^the loss broke$"):
        C.find_lrs(C.factory(broken, seed=0), methods="fixed", num_iter=20)


def test_a_failed_row_shows_the_error_a_wrapper_only_restates():
    from lrkit.compare import _failure

    try:
        try:
            raise ValueError("bad\nvalue")
        except ValueError as inner:
            raise RuntimeError(f"ValueError: {inner}") from inner
    except RuntimeError as outer:
        assert _failure(outer) == "ValueError: bad value"
    assert _failure(KeyError("k")) == "KeyError: 'k'"


def _kept_model_task():
    """The trap: one model and optimizer created once and returned by every call."""
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    return lambda: (model, opt, torch.nn.functional.cross_entropy, data), model


def test_a_model_kept_between_runs_is_refused_not_trained_on():
    fn, model = _kept_model_task()
    with pytest.raises(ValueError) as info:
        C.compare(C.factory(fn, seed=0), methods="fixed,cosine", steps=10, num_iter=10)
    assert str(info.value) == (
        "make() must build a fresh model for every run; it returned the first call's model "
        "again, or a layer of it, whose weights have changed since (trained: it would go on "
        "training where the last run left it; its weights are put back as first returned): "
        "create the model inside the function (lrkit.compare.factory(fn, seed=0) seeds every "
        "call)"
    )


def test_compare_takes_num_iter_as_find_lrs_does_and_finder_iter_with_a_warning():
    calls: list[list[int]] = []
    make = C.factory(_task(calls), seed=0)
    with pytest.warns(DeprecationWarning) as rec:
        old = C.compare(make, methods="fixed", steps=10, finder_iter=12)
    assert [str(w.message) for w in rec if w.category is DeprecationWarning] == [
        "lrkit.compare.compare(): the argument finder_iter= was renamed num_iter="
    ]
    assert rec[0].filename == __file__
    new = C.compare(C.factory(_task([]), seed=0), methods="fixed", steps=10, num_iter=12)
    assert old.lrs.base == new.lrs.base and old.lrs.base is not None
    for given in (20, 100):  # 100 too: the default's value, but passed
        with pytest.raises(TypeError, match=r"^lrkit.compare.compare\(\) got both num_iter="):
            C.compare(make, methods="fixed", steps=10, num_iter=given, finder_iter=12)


def test_checked_without_weights_keeps_no_copy_of_the_model_and_checks_the_rest():
    """compare.checked(make, weights=False), for a caller that checks its models otherwise
    (lrkit find): no host copy of the first model's weights (a large model's memory); the
    default compares them, refusing a model kept between runs."""
    fn, model = _kept_model_task()

    def fn_setup() -> C.Setup:  # a factory of its own each call: only checked() compares
        return C.factory(fn, seed=0)()

    light = C.checked(fn_setup, weights=False)
    light()
    assert light.first == []  # type: ignore[attr-defined]  # nothing recorded
    with torch.no_grad():
        model.weight.add_(1.0)  # what a run does to it
    light()  # not compared
    full = C.checked(fn_setup)
    full()
    # weights, models, names, buffers, those of a model reset in place
    assert len(full.first) == 5  # type: ignore[attr-defined]
    with torch.no_grad():
        model.weight.add_(1.0)  # what a run does to it
    with pytest.raises(ValueError, match=r"^make\(\) must build a fresh model for every run"):
        full()
    with pytest.raises(ValueError, match=r"^weights must be True or False"):
        C.checked(fn_setup, weights="no")
    assert C.checked(full) is full  # already checked: its records kept
    with pytest.raises(ValueError, match=r"^make is already checked with weights=True, got "):
        C.checked(full, weights=False)
    # the factory's own comparison, and its copy, left out the same way
    fn, model = _kept_model_task()
    light_factory, full_factory = C.factory(fn, weights=False), C.factory(fn)
    light_factory(), full_factory()
    with torch.no_grad():
        model.weight.add_(1.0)
    light_factory()
    with pytest.raises(ValueError, match=r"^make\(\) must build a fresh model for every run"):
        full_factory()


def test_fresh_models_with_the_same_weights_pass_the_start_check():
    calls: list[list[int]] = []
    make = C._setups(C.factory(_task(calls), seed=0))
    a, b = make(), make()
    assert a.model is not b.model
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    with torch.no_grad():
        a.model[0].weight.add_(1.0)  # the first run trains its own copy: the record stays
    make()


def _tiny(model):
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    return (
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        torch.nn.functional.cross_entropy,
        [(x, y)],
    )


def test_a_model_on_the_meta_device_is_a_one_line_error_naming_model():
    """No data to record the first weights from: refused as a mistake, not torch's
    NotImplementedError from copying a meta tensor."""

    def fn():
        with torch.device("meta"):
            return _tiny(torch.nn.Sequential(torch.nn.Linear(4, 2)))

    with pytest.raises(
        ValueError, match=r"^model: parameter '0\.weight' is on the meta device"
    ) as e:
        C.factory(fn, seed=0)()
    assert "\n" not in str(e.value) and "before training it" in str(e.value)


def test_a_lazy_model_passes_the_start_check():
    """Parameters a lazy module has not initialized yet are not compared (the runs' first
    forward pass gives them their weights)."""
    make = C._setups(C.factory(lambda: _tiny(torch.nn.LazyLinear(2)), seed=0))
    a, b = make(), make()
    assert a.model is not b.model


def test_a_model_reset_in_place_to_its_first_weights_passes():
    fn, model = _kept_model_task()
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def reset():
        model.load_state_dict(start)
        _, _, loss_fn, data = fn()
        return model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn, data

    r = C.compare(C.factory(reset, seed=0), methods="fixed,cosine", steps=10, num_iter=10)
    assert [x.method for x in r.results if not x.error] == ["fixed", "cosine"]


def test_a_layer_shared_by_the_models_is_refused_once_trained_and_passes_when_reset():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    body = torch.nn.Linear(4, 8)  # built once, at import
    start = {k: v.clone() for k, v in body.state_dict().items()}

    def task(reset: bool):  # type: ignore[no-untyped-def]
        def fn():  # type: ignore[no-untyped-def]
            if reset:
                body.load_state_dict(start)
            model = torch.nn.Sequential(body, torch.nn.ReLU(), torch.nn.Linear(8, 2))
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            return model, opt, torch.nn.functional.cross_entropy, data

        return fn

    with pytest.raises(C.NotFreshError, match=r"the first call's model again, or a layer of it"):
        C.compare(C.factory(task(False), seed=0), methods="fixed,cosine", steps=10, num_iter=10)
    body.load_state_dict(start)
    r = C.compare(C.factory(task(True), seed=0), methods="fixed,cosine", steps=10, num_iter=10)
    assert [x.method for x in r.results if not x.error] == ["fixed", "cosine"]


def test_an_optimizer_kept_between_runs_is_refused():
    """The model reset in place, the optimizer kept: its momentum and the LRs the last run
    left would start the next run."""
    fn, model = _kept_model_task()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def reset():
        model.load_state_dict(start)
        _, _, loss_fn, data = fn()
        return model, opt, loss_fn, data

    with pytest.raises(ValueError, match=r"^make\(\) must build a fresh optimizer for every run"):
        C.compare(C.factory(reset, seed=0), methods="fixed,cosine", steps=10, num_iter=10)


def test_a_loader_with_its_own_generator_gives_every_run_the_same_batches():
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    gen = torch.Generator().manual_seed(0)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=gen)

    def task():
        model = torch.nn.Linear(4, 2)
        return (
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            torch.nn.functional.cross_entropy,
            loader,
        )

    make = C._setups(C.factory(task, seed=0))
    firsts = []
    for _ in range(3):
        s = make()
        batches = list(s.data)  # a run draws the whole epoch (and moves the generator)
        firsts.append(batches[0][0])
    assert all(torch.equal(firsts[0], b) for b in firsts[1:])


def test_a_loaders_own_generator_is_left_as_found_by_every_entry_point():
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    gen = torch.Generator().manual_seed(5)
    list(DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=gen))  # moved
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=gen)

    def task():
        model = torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, torch.nn.functional.cross_entropy, loader

    make = C.factory(task, seed=0)
    before = gen.get_state()
    report = C.compare(make, methods="fixed,cosine", steps=10, num_iter=10)
    assert [r.error for r in report.results] == ["", ""]
    assert torch.equal(gen.get_state(), before)
    lrs = C.find_lrs(make, methods="fixed", num_iter=10)
    assert torch.equal(gen.get_state(), before)
    C.run_method("fixed", make=make, lrs=lrs, steps=10)
    assert torch.equal(gen.get_state(), before)
    with pytest.raises(RuntimeError, match="boom"):  # also when a run fails

        def failing(n):
            raise RuntimeError("boom")

        C.run_method("fixed", make=make, lrs=lrs, steps=10, tick=failing)
    assert torch.equal(gen.get_state(), before)


def test_a_batch_met_later_that_is_no_pair_stops_the_comparison():
    """Every method reads the same batches: a bad one is raised once, not kept as a failed
    row per method (nor turned into a range-test note)."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    good = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 64, 8)]

    def task():
        model = torch.nn.Linear(4, 2)
        data = (b for b in [*good, (x[:8], y[:8], y[:8])])  # a fresh generator per call
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, torch.nn.functional.cross_entropy, data

    make = C.factory(task, seed=0)
    with pytest.raises(BatchLayoutError, match=r"got a tuple of 3 items$") as info:
        C.compare(make, methods="fixed,adam", steps=20, num_iter=10)
    assert "step=" not in str(info.value)  # find_lr's advice: compare takes no step
    with pytest.raises(BatchLayoutError, match=r"got a tuple of 3 items$") as info:
        C.find_lrs(make, methods="fixed", num_iter=10)
    assert "step=" not in str(info.value)


def test_the_tasks_name_must_be_text():
    with pytest.raises(TypeError, match=r"^name must be a string \(the task's name\) or None"):
        C.compare(C.factory(_task([]), seed=0), methods="fixed", steps=10, name=5)


def test_ctrl_c_propagates_with_the_methods_that_finished(monkeypatch):
    """Ctrl-C is not swallowed (a loop of comparisons stops), but the finished methods are
    not lost: the exception carries them as ``.comparison``, marked interrupted."""
    real = C.run_method

    def run(method, **kwargs):
        if method == "cosine":  # the third method: Ctrl-C while it trains
            raise KeyboardInterrupt
        return real(method, **kwargs)

    monkeypatch.setattr(C, "run_method", run)
    torch.manual_seed(3)
    before = torch.get_rng_state()
    make = C.factory(_task([]), seed=0)
    with pytest.raises(KeyboardInterrupt) as info:
        C.compare(make, methods="fixed,adam,cosine,plateau", steps=10, num_iter=10)
    report = info.value.comparison
    assert isinstance(report, C.Comparison)
    assert report.interrupted and report.not_run == ["cosine", "plateau"]
    assert [r.method for r in report.results] == ["fixed", "adam"]
    assert all(len(r.losses) == 10 and not r.error for r in report.results)
    assert report.best in report.results
    data = report.to_dict()
    assert data["interrupted"] is True and data["not_run"] == ["cosine", "plateau"]
    assert [r["method"] for r in data["results"]] == ["fixed", "adam"]
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNGs, as ever
    # a comparison that ran to its end says so too
    done = C.compare(make, methods="fixed", steps=10, num_iter=10).to_dict()
    assert done["interrupted"] is False and done["not_run"] == []


def test_ctrl_c_in_the_range_tests_carries_no_comparison(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(C, "find_lrs", interrupted)
    with pytest.raises(KeyboardInterrupt) as info:
        C.compare(C.factory(_task([]), seed=0), methods="fixed", steps=10, num_iter=10)
    assert not hasattr(info.value, "comparison")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: C.compare(lambda: None, methods="fixed", steps=2**53 + 1),
         r"^steps must be an integer in \[10, 2\*\*53\], got 9007199254740993$"),
        (lambda: C.run_method("fixed", make=lambda: None, lrs=None, steps=2**53 + 1),
         r"^steps must be an integer in \[1, 2\*\*53\], got 9007199254740993$"),
    ],
)  # fmt: skip
def test_steps_beyond_2_to_the_53_are_refused_before_anything_runs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------- renamed
def _setup_fields() -> dict:
    return dict(optimizer="opt", loss_fn=len, data=[1, 2], val_data=[3])


def test_setup_calls_the_held_data_val_data_as_the_finders_do():
    import dataclasses

    assert [f.name for f in dataclasses.fields(C.Setup)][-1] == "val_data"
    s = C.Setup("model", **_setup_fields())
    assert s.val_data == [3] and "val_data=[3]" in repr(s)
    x = torch.zeros(8, 2)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(x, torch.zeros(8, dtype=torch.long))]
    assert C.as_setup((model, opt, len, batches, batches[:1])).val_data == batches[:1]
    assert C.as_setup((model, opt, len, batches)).val_data is None
    assert C.demo_factory(seed=0)().val_data is not None


def test_setup_takes_and_reads_its_former_field_val_with_a_warning():
    kw = _setup_fields()
    kw["val"] = kw.pop("val_data")
    with pytest.warns(DeprecationWarning, match=r"^Setup\(\): the argument val= was renamed "
                      r"val_data=$") as rec:  # fmt: skip
        s = C.Setup("model", **kw)
    assert s.val_data == [3] and len(rec) == 1 and rec[0].filename == __file__
    with pytest.warns(DeprecationWarning, match=r"^Setup\.val was renamed Setup\.val_data$") as rec:
        assert s.val == [3]
    assert len(rec) == 1 and rec[0].filename == __file__
    with pytest.raises(AttributeError):  # read-only: the data is set as val_data
        s.val = [4]  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"^Setup\(\) got both val_data= and val= "):
        C.Setup("model", **_setup_fields(), val=[4])


def test_a_setup_pickled_by_lrkit_010_loads_with_its_val_data():
    import pickle
    import warnings

    new = C.Setup("model", **_setup_fields())
    old = object.__new__(C.Setup)  # as lrkit 0.1.0 held it: the field was named val
    state = dict(new.__dict__)
    state["val"] = state.pop("val_data")
    old.__dict__.update(state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading says nothing
        back = pickle.loads(pickle.dumps(old))
        again = pickle.loads(pickle.dumps(new))
    assert back == new == again and "val" not in back.__dict__


def test_a_comparison_reads_no_deprecated_name(recwarn):
    C.compare(C.factory(_task([]), seed=0), methods="plateau", steps=10, num_iter=10)
    said = [str(w.message) for w in recwarn if issubclass(w.category, DeprecationWarning)]
    assert not [m for m in said if "Setup" in m]


# ----------------------------------------------------------------------------- plot
def _png(tmp_path, name: str, **kwargs) -> bytes:
    result = C.Result("fixed", optimizer="SGD", lr="0.1", losses=[1.0, 0.5], lrs=[0.1, 0.1])
    fig = C.plot([result], path=str(tmp_path / name), **kwargs)
    assert fig.axes[0].get_title() == (kwargs.get("title") or "lrkit compare")
    return (tmp_path / name).read_bytes()


def test_plot_defaults_title_to_none_as_every_lrkit_plot_and_draws_as_before(tmp_path):
    import inspect

    pytest.importorskip("matplotlib")
    assert inspect.signature(C.plot).parameters["title"].default is None
    default = _png(tmp_path, "default.png")
    # None (the default) and "" (the former default) both head it "lrkit compare"
    assert _png(tmp_path, "none.png", title=None) == default
    assert _png(tmp_path, "empty.png", title="") == default
    assert _png(tmp_path, "named.png", title="lrkit compare") == default
    assert _png(tmp_path, "other.png", title="digits, 400 steps") != default


def test_plot_smooths_from_the_first_finite_loss_and_refuses_a_title_that_is_not_text(tmp_path):
    pytest.importorskip("matplotlib")
    nan = float("nan")
    r = C.Result("fixed", optimizer="SGD", lr="0.1", losses=[nan, 1.0, 0.5, 0.25], lrs=[0.1] * 4)
    fig = C.plot([r])
    y = fig.axes[0].get_lines()[0].get_ydata()
    # the EMA starts at the first finite loss (a NaN at step 0 no longer blanks the curve)
    a2 = 0.9 * 1.0 + 0.1 * 0.5
    assert y.tolist() == [1.0, 1.0, a2, 0.9 * a2 + 0.1 * 0.25]
    with pytest.raises(ValueError) as info:
        C.plot([r], path=str(tmp_path / "t.png"), title=123)  # type: ignore[arg-type]
    assert str(info.value) == "title must be a string or None, got 123"
    assert not (tmp_path / "t.png").exists()


def test_a_comparison_draws_on_a_pair_of_axes_of_yours_as_the_other_plots_take_ax(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    r = C.Result("fixed", optimizer="SGD", lr="0.1", losses=[1.0, 0.5, 0.25], lrs=[0.1] * 3)
    lrs = C.LRs(0.1, base_max=0.3, base_min=0.03, adam=float("nan"))
    report = C.Comparison([r], lrs=lrs, name="t", steps=3)
    own = report.plot()
    for given in (lambda f: f.subplots(2, 1, sharex=True), lambda f: list(f.subplots(1, 2))):
        fig = Figure()
        pair = given(fig)
        assert report.plot(pair) is fig and report.plot(ax=pair, path=tmp_path / "p.png") is fig
        first, second = fig.axes[:2]
        assert first.get_lines()[0].get_ydata().tolist() == (
            own.axes[0].get_lines()[0].get_ydata().tolist()
        )
        assert second.get_lines()[0].get_ydata().tolist() == [0.1] * 3
    assert (tmp_path / "p.png").stat().st_size > 0
    report.plot(str(tmp_path / "first.png"))  # a file name first is the path, as before
    assert (tmp_path / "first.png").exists()
    fig = Figure()
    for bad in (fig.add_subplot(), [fig.add_subplot()], 3, [1, 2]):
        with pytest.raises(ValueError, match=r"^ax must be a pair of matplotlib Axes \(the "):
            report.plot(ax=bad)


def test_a_make_whose_models_start_from_other_weights_is_refused():
    """Every method must start from the same initial weights: an unseeded make() returning
    Setups is refused before its second model trains."""
    x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))

    def make():
        m = torch.nn.Linear(8, 2)  # unseeded: other weights at every call
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        return C.Setup(m, optimizer=opt, loss_fn=torch.nn.functional.cross_entropy,
                       data=[(x, y)])  # fmt: skip

    with pytest.raises(C.NotFreshError, match=r"^make\(\) must give every run the same initial"):
        C.compare(make, steps=10, num_iter=10, methods="fixed,cosine")


def test_the_user_s_model_returned_again_is_refused_as_it_was():
    model = torch.nn.Linear(4, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def same_model():
        return _tiny(model)  # the same model, a fresh optimizer, at every call

    with pytest.raises(C.NotFreshError, match=r"weights are put back as first returned"):
        C.compare(C.factory(same_model, seed=0), steps=10, num_iter=10, methods="fixed")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_plateau_refuses_a_one_shot_val_data_naming_it():
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))

    def fn():
        model = torch.nn.Linear(4, 2)
        val = ((x[i : i + 32], y[i : i + 32]) for i in range(0, 64, 32))
        return _tiny(model) + (val,)

    r = C.compare(C.factory(fn, seed=0), steps=20, num_iter=10, methods="plateau,fixed")
    plateau, fixed = r.results
    assert plateau.error is not None and plateau.error.startswith(
        "ValueError: val_data must be a list, a tuple or a DataLoader for plateau"
    )
    assert not fixed.error


def test_the_module_table_marks_the_best_training_loss_without_validation():
    def run(method, loss):
        r = C.Result(method, optimizer="SGD", lr="0.1")
        r.final_loss = loss
        return r

    lines = C.table([run("a", 0.5), run("b", 0.25)]).splitlines()
    assert lines[2].startswith("  a") and lines[3].startswith(" *b")


def test_a_model_with_a_lazy_layer_reset_in_place_passes_and_names_not_order_are_compared():
    torch.manual_seed(0)
    kept = torch.nn.Sequential(torch.nn.LazyLinear(8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))

    saved = {k: v.clone() for k, v in kept[2].state_dict().items()}

    def reset():  # the layer made at the start back to its first weights
        kept[2].load_state_dict(saved)
        return (
            kept,
            torch.optim.SGD(kept.parameters(), lr=0.1),
            torch.nn.functional.cross_entropy,
            [(x, y)],
        )

    make = C.checked(C.factory(reset, seed=0))
    make()
    kept(x)  # the first run's forward pass makes the lazy layer
    make()  # reset in place (the lazy layer made since is not among the first weights)

    class Two(torch.nn.Module):
        def __init__(self, swap):
            super().__init__()
            first, second = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
            if swap:  # registered in the other order, each under its own name
                self.b, self.a = second, first
            else:
                self.a, self.b = first, second

    calls = []

    def two():
        calls.append(1)
        m = Two(swap=len(calls) > 1)
        return m, torch.optim.SGD(m.parameters(), lr=0.1), torch.nn.functional.mse_loss, [(x, x)]

    make = C.checked(C.factory(two, seed=0))
    make()
    make()


def test_a_frozen_backbone_built_once_is_shared_alike_by_every_run():
    """A backbone built once (frozen; its BatchNorm in train mode): each run starts from its
    first statistics, which are put back at the end; an unseeded head on it is refused."""
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8))
    for p in backbone.parameters():
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    data, val = [(x[:32], y[:32]), (x[32:], y[32:])], [(x, y)]

    def with_head():
        head = torch.nn.Linear(8, 2)
        model = torch.nn.Sequential(backbone, head)
        opt = torch.optim.SGD(head.parameters(), lr=0.1)
        return model, opt, torch.nn.functional.cross_entropy, data, val

    def run():
        r = C.compare(C.factory(with_head, seed=0), steps=10, num_iter=10, methods="fixed,cosine")
        return [res.val_loss for res in r.results]

    assert run() == run()  # the backbone's statistics as first seen, for every run
    assert all(torch.equal(backbone.state_dict()[k], v) for k, v in before.items())

    def unseeded():
        torch.seed()  # a seed drawn from the clock: the head starts elsewhere at every call
        return with_head()

    with pytest.raises(C.NotFreshError, match=r"^make\(\) must give every run the same initial"):
        C.compare(C.factory(unseeded, seed=0), steps=10, num_iter=10, methods="fixed,cosine")


# ----------------------------------------------------------------------------- behaviours
def _linear_task(val: bool = True):
    """A linear classifier on fixed batches (with one validation batch when ``val``)."""

    def fn():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=g)
        y = (x[:, 0] > 0).long()
        model = torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
        return (model, opt, torch.nn.functional.cross_entropy, data) + ((data[:1],) if val else ())

    return fn


_LRS = C.LRs(0.1, base_max=0.3, base_min=0.03, adam=0.01)


def _recorded_bn_data(monkeypatch) -> list:
    """The ``bn_data`` each scoring of a run hands to ``lrkit.torch.evaluating``, in order."""
    import lrkit.torch

    seen: list = []
    real = lrkit.torch.evaluating

    def evaluating(model, optimizer, **kwargs):
        seen.append(kwargs.get("bn_data"))
        return real(model, optimizer, **kwargs)

    monkeypatch.setattr(lrkit.torch, "evaluating", evaluating)
    return seen


def test_the_step_exponential_and_cyclic_rows_follow_their_documented_curves():
    """10 steps: step cuts x0.1 every ceil(10/3)=4 steps; exponential ends near x0.01;
    cyclic goes base_min..base_max in steps // 4 = 2 steps, halving each cycle."""
    make = C.factory(_linear_task(), seed=0)
    step = C.run_method("step", make=make, lrs=_LRS, steps=10)
    assert step.lr == "0.1 x0.1/4"
    assert step.lrs == pytest.approx([0.1] * 4 + [0.01] * 4 + [0.001] * 2)
    exp = C.run_method("exponential", make=make, lrs=_LRS, steps=10)
    assert exp.lr == "0.1 ->x0.01"
    assert exp.lrs == pytest.approx([0.1 * 0.01 ** (k / 10) for k in range(10)])
    cyc = C.run_method("cyclic", make=make, lrs=_LRS, steps=10)
    assert cyc.lr == "0.03..0.3"
    assert cyc.lrs == pytest.approx(
        [0.03, 0.165, 0.3, 0.165, 0.03, 0.0975, 0.165, 0.0975, 0.03, 0.06375]
    )


def test_plateau_halves_the_lr_after_three_reports_without_improvement():
    """An LR too small to move the loss: every report is a plateau, so the LR halves on the
    3rd, 6th, ... of the 19 reports of a 20-step run (patience 2, factor 0.5)."""
    lrs = C.LRs(1e-12, base_max=1e-12, base_min=1e-12, adam=1e-3)
    r = C.run_method("plateau", make=C.factory(_linear_task(), seed=0), lrs=lrs, steps=20)
    assert r.note == "6 reductions"
    for wrong in (None, 0.1, {"base": 0.1}):
        with pytest.raises(TypeError, match=r"^lrs must be a lrkit.compare.LRs \(what find_lrs"):
            C.run_method("plateau", make=C.factory(_linear_task(), seed=0), lrs=wrong, steps=20)
    halvings = [0] * 4 + [n for n in range(1, 6) for _ in range(3)] + [6]
    assert r.lrs == [1e-12 * 0.5**n for n in halvings]


def _recording_plateau(monkeypatch) -> list:
    """ReduceOnPlateau made by the plateau row, recording every metric it is given."""
    import lrkit.feedback

    made: list = []

    class Recording(lrkit.feedback.ReduceOnPlateau):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.values: list[float] = []
            made.append(self)

        def update(self, value, *args, **kwargs):
            self.values.append(float(value))
            return super().update(value, *args, **kwargs)

    monkeypatch.setattr(lrkit.feedback, "ReduceOnPlateau", Recording)
    return made


def test_plateau_without_validation_reports_each_intervals_mean_training_loss(monkeypatch):
    """40 steps: a report every 2 steps, but none after the last (19 reports), each the mean
    training loss of the 2 steps since the one before."""
    made = _recording_plateau(monkeypatch)
    r = C.run_method("plateau", make=C.factory(_linear_task(val=False), seed=0), lrs=_LRS,
                     steps=40)  # fmt: skip
    (fb,) = made
    assert len(r.losses) == 40
    assert fb.values == [(r.losses[i] + r.losses[i + 1]) / 2 for i in range(0, 38, 2)]


def test_plateau_reports_the_validation_loss_not_the_accuracy(monkeypatch):
    import lrkit.torch

    made = _recording_plateau(monkeypatch)
    scores: list[tuple[float, float]] = []
    real = lrkit.torch.evaluate

    def evaluate(*args, **kwargs):
        out = real(*args, **kwargs)
        scores.append((float(out[0]), float(out[1])))
        return out

    monkeypatch.setattr(lrkit.torch, "evaluate", evaluate)
    r = C.run_method("plateau", make=C.factory(_linear_task(), seed=0), lrs=_LRS, steps=20)
    (fb,) = made
    assert len(scores) == 20  # 19 reports, then the final score
    assert fb.values == [loss for loss, _ in scores[:19]]
    assert (r.val_loss, r.val_acc) == scores[-1]


def test_tick_is_told_of_every_step_also_past_the_last_ten():
    ticks: list[int] = []
    C.run_method("fixed", make=C.factory(_linear_task(), seed=0), lrs=_LRS, steps=25,
                 tick=ticks.append)  # fmt: skip
    assert ticks == [10, 10, 5]


def test_a_diverged_run_has_no_validation_scores():
    """Nor is a run stopped early by its divergence said to have run out of data."""
    from lrkit.torch import DataRanOutWarning

    def loss(out, t):
        return torch.nn.functional.cross_entropy(out, t) + out.pow(2).mean()

    def fn():
        model, opt, _, data, val = _linear_task()()
        return model, opt, loss, data, val

    huge = C.LRs(1e3, base_max=1e3, base_min=1e3, adam=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataRanOutWarning)
        r = C.run_method("fixed", make=C.factory(fn, seed=0), lrs=huge, steps=20)
    assert r.diverged and r.final_loss == float("inf") and len(r.losses) < 20
    assert r.note == ""
    assert np.isnan(r.val_loss) and np.isnan(r.val_acc)


def test_schedule_free_warms_up_a_twentieth_of_the_steps_and_scores_with_training_batchnorm(
    monkeypatch,
):
    """Its 5% warmup (2 of 40 steps) at Adam's suggestion; scored at its averaged weights
    with the BatchNorm statistics recomputed from the training data."""
    pytest.importorskip("schedulefree")
    bn_data = _recorded_bn_data(monkeypatch)
    made = C.factory(_linear_task(), seed=0)
    setups: list = []

    def make():
        setups.append(made())
        return setups[-1]

    r = C.run_method("schedulefree", make=make, lrs=_LRS, steps=40)
    assert r.lr == "0.01 (x avg)" and r.lrs[:3] == pytest.approx([0.005, 0.01, 0.01])
    assert bn_data == [setups[-1].data]
    C.run_method("adam", make=make, lrs=_LRS, steps=10)
    assert bn_data[-1] is None  # other optimizers: the statistics training left


def test_the_range_tests_fall_back_to_default_lrs_and_keep_the_cyclic_range_around_the_suggestion(
    monkeypatch,
):
    from types import SimpleNamespace

    import lrkit.torch

    found: dict = {}
    monkeypatch.setattr(
        lrkit.torch, "find_lr", lambda model, opt, *a, **k: found[type(opt).__name__]
    )
    make = C.factory(_task([]), seed=0)
    none = SimpleNamespace(suggestion=None, max_lr=None, base_lr=None)
    found.update(SGD=none, Adam=SimpleNamespace(suggestion=float("nan"), max_lr=1.0, base_lr=0.1))
    lrs = C.find_lrs(make, methods="cyclic,schedulefree", num_iter=10)
    assert lrs == C.LRs(0.01, base_max=0.01 * 3, base_min=0.01 / 3, adam=1e-3, notes=[
        "no reliable suggestion for SGD: using lr=0.01",
        "no reliable suggestion for Adam: using lr=0.001",
    ])  # fmt: skip
    # a suggestion above the range's top: the range reaches up to it (and its bottom under it)
    found["SGD"] = SimpleNamespace(suggestion=0.2, max_lr=0.1, base_lr=0.5)
    got = C.find_lrs(make, methods="cyclic", num_iter=10)
    assert (got.base, got.base_max, got.base_min, got.notes) == (0.2, 0.2, 0.1, [])
    found["SGD"] = SimpleNamespace(suggestion=0.2, max_lr=None, base_lr=None)
    got = C.find_lrs(make, methods="fixed", num_iter=10)
    assert (got.base, got.base_max, got.base_min) == (0.2, 0.2 * 3, 0.2 / 3)
    # an unreliable suggestion (a lower bound, a flat curve) is used, and the note says why
    found["SGD"] = SimpleNamespace(
        suggestion=1876.3, max_lr=None, base_lr=None, reliable=False,
        warnings=("the loss never turned up (sweep extended to 9.8e+03): the edge lies "
                  "beyond it", "the loss did not clearly descend (noise 0): flat"),
    )  # fmt: skip
    got = C.find_lrs(make, methods="fixed", num_iter=10)
    assert (got.base, got.notes) == (1876.3, [
        "unreliable suggestion for SGD: the loss never turned up (sweep extended to 9.8e+03); "
        "using lr=1.88e+03"
    ])  # fmt: skip


def test_compares_notes_on_its_range_tests_are_warnings_at_the_call_unless_warn_is_false(
    monkeypatch,
):
    import inspect
    from types import SimpleNamespace

    import lrkit.torch
    from lrkit.finder import LRFinderWarning

    none = SimpleNamespace(suggestion=None, max_lr=None, base_lr=None)
    monkeypatch.setattr(lrkit.torch, "find_lr", lambda *a, **k: none)
    make = C.factory(_task([]), seed=0)
    note = "no reliable suggestion for SGD: using lr=0.01"
    with pytest.warns(LRFinderWarning) as said:
        line = inspect.currentframe().f_lineno + 1
        report = C.compare(make, methods="fixed", steps=10)
    ours = [w for w in said if issubclass(w.category, LRFinderWarning)]
    assert [(str(w.message), w.filename, w.lineno) for w in ours] == [
        (f"compare: {note}", __file__, line)
    ]
    assert report.lrs.notes == [note]
    with warnings.catch_warnings():
        warnings.simplefilter("error", LRFinderWarning)
        quiet = C.compare(make, methods="fixed", steps=10, warn=False)
    assert quiet.lrs.notes == [note]
    with pytest.raises(ValueError, match="^warn must be True or False, got 1$"):
        C.compare(make, methods="fixed", steps=10, warn=1)


def test_method_names_are_case_blind_and_each_runs_once():
    assert C.parse_methods("Fixed, cosine,,fixed,COSINE") == ["fixed", "cosine"]
    assert C.parse_methods(["adam", "adam"]) == ["adam"]


def _row(method: str, *, val_loss: float, final_loss: float = 1.0, error: str = "") -> C.Result:
    return C.Result(method, optimizer="SGD", lr="0.1", val_loss=val_loss, final_loss=final_loss,
                    error=error)  # fmt: skip


def test_the_best_row_is_the_lowest_validation_loss_of_the_rows_that_ran():
    rows = [
        _row("fixed", val_loss=0.5),
        _row("cosine", val_loss=0.25),
        _row("adam", val_loss=0.75),
        _row("prodigy", val_loss=0.1, error="KeyError: 'x'"),
    ]
    report = C.Comparison(rows, lrs=_LRS)
    assert report.best is rows[1]  # a failed row is never the best
    assert C.Comparison(rows[:3], lrs=_LRS).best_marks() == [False, True, False]


def test_the_table_marks_the_row_best_names_and_never_a_failed_one():
    rows = [_row("fixed", val_loss=0.5), _row("prodigy", val_loss=0.1, error="KeyError: 'x'")]
    report = C.Comparison(rows, lrs=_LRS)
    assert report.best is rows[0] and report.best_marks() == [True, False]
    assert [line.lstrip().startswith("*") for line in report.table().splitlines()[2:]] == [
        True,
        False,
    ]
    # no validation loss anywhere: the training loss decides, for best as for the marks
    nan = float("nan")
    rows = [_row("fixed", val_loss=nan, final_loss=0.5), _row("cosine", val_loss=nan,
            final_loss=0.25), _row("adam", val_loss=nan, final_loss=0.1, error="E")]  # fmt: skip
    report = C.Comparison(rows, lrs=_LRS)
    assert report.best is rows[1] and report.best_marks() == [False, True, False]
    failed = C.Comparison([_row("adam", val_loss=0.1, error="E")], lrs=_LRS)
    assert failed.best is None and failed.best_marks() == [False]


def test_an_interrupted_comparison_says_how_many_methods_ran_in_its_plot_title_and_json():
    pytest.importorskip("matplotlib")
    lrs = C.LRs(0.1, base_max=0.3, base_min=0.03, adam=float("nan"), notes=["a note"])
    rows = [C.Result("fixed", optimizer="SGD", lr="0.1", losses=[1.0, 0.5], lrs=[0.1, 0.1])]
    report = C.Comparison(rows, lrs=lrs, name="t", steps=2, interrupted=True,
                          not_run=["cosine", "adam"])  # fmt: skip
    assert report.plot().axes[0].get_title() == "lrkit compare: t (interrupted: 1 of 3 methods ran)"
    assert report.interruption() == (
        "interrupted after 1 of 3 methods; not run: cosine (stopped while training), adam"
    )
    assert report.to_dict()["lrs"] == {
        "base": 0.1, "base_max": 0.3, "base_min": 0.03, "adam": None, "notes": ["a note"]
    }  # fmt: skip


def test_a_failed_row_names_the_wrapping_error_when_it_says_more_than_its_cause():
    from lrkit.compare import _failure

    try:
        try:
            raise ValueError("bad value")
        except ValueError as inner:
            raise RuntimeError("while loading the batches") from inner
    except RuntimeError as outer:
        assert _failure(outer) == "RuntimeError: while loading the batches"


def test_the_first_optimizer_returned_again_with_other_lrs_is_refused():
    """No state (plain SGD) but the LR the last run's schedule left: refused; the same
    optimizer untouched (the model reset in place) passes."""
    fn, model = _kept_model_task()
    _, opt, loss_fn, data = fn()
    make = C.checked(C.factory(lambda: (model, opt, loss_fn, data), seed=0))
    make()
    make()  # untouched: passes
    opt.param_groups[0]["lr"] = 0.05
    with pytest.raises(C.NotFreshError, match=r"^make\(\) must build a fresh optimizer"):
        make()


@pytest.mark.parametrize(
    "where, kind",
    [("val_data", "generator"), ("data", "list_iterator")],  # a list_iterator has no weakref
)
def test_one_iterator_handed_to_every_run_is_refused_naming_it(where: str, kind: str):
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    shared = (b for b in [(x, y)]) if kind == "generator" else iter([(x, y)] * 3)
    keep = 4 if where == "val_data" else 3  # the task's items before the shared one
    make = C.checked(C.factory(lambda: _tiny(torch.nn.Linear(4, 2))[:keep] + (shared,), seed=0))
    make()
    with pytest.raises(C.NotFreshError) as info:
        make()
    assert f"returned the first run's {where} again, a one-shot iterator ({kind})" in str(
        info.value
    )


def test_a_module_shared_by_the_runs_gets_its_first_batchnorm_statistics_back():
    """Before each run and by restore() (after the last)."""
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8))
    before = {k: v.clone() for k, v in backbone.state_dict().items()}

    def with_head():
        head = torch.nn.Linear(8, 2)
        model, _, loss_fn, data = _tiny(torch.nn.Sequential(backbone, head))
        return model, torch.optim.SGD(head.parameters(), lr=0.1), loss_fn, data

    make = C.checked(C.factory(with_head, seed=0))
    make()
    for restore in (make, make.restore):  # type: ignore[attr-defined]
        with torch.no_grad():
            backbone[1].running_mean.add_(1.0)  # what a run in training mode does to it
        restore()
        assert all(torch.equal(backbone.state_dict()[k], v) for k, v in before.items())


def test_the_first_model_returned_with_a_replaced_parameter_gets_its_first_weights_back():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    first = model.weight.detach().clone()
    make = C.checked(C.factory(lambda: _tiny(model), seed=0))
    make()
    model.weight = torch.nn.Parameter(first + 1.0)  # a run that swapped in other weights
    with pytest.raises(C.NotFreshError, match=r"weights are put back as first returned"):
        make()
    assert torch.equal(model.weight.detach(), first)


def test_data_that_runs_out_ends_a_run_with_a_note_and_a_warning_at_the_callers_line():
    """A fresh generator of 8 batches for a 10-step run: each method trains 8 steps; its row
    says so, and one warning per method names the method and the steps asked for."""
    import sys
    import warnings

    from lrkit.torch import DataRanOutWarning

    x = torch.arange(64.0).reshape(64, 1).repeat(1, 4) / 64
    y = torch.arange(64) % 3

    def make():
        model = torch.nn.Linear(4, 3)
        data = ((x[i : i + 8], y[i : i + 8]) for i in range(0, 64, 8))
        return (
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            torch.nn.functional.cross_entropy,
            data,
        )

    make_setup = C.factory(make, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = C.compare(make_setup, methods="fixed,adam", steps=10, num_iter=10)
        lrs = report.lrs
        line = sys._getframe().f_lineno + 1
        alone = C.run_method("cosine", make=make_setup, lrs=lrs, steps=10)
    ran_out = [w for w in caught if issubclass(w.category, DataRanOutWarning)]
    assert [str(w.message) for w in ran_out] == [
        f"compare: method {m!r}: data ran out after 8 of steps=10 steps: a one-shot iterator (a "
        "generator) yields its batches once; give the data as a list, a DataLoader or a "
        "function returning a new iterator"
        for m in ("fixed", "adam", "cosine")
    ]
    assert {w.filename for w in ran_out} == {__file__}  # the caller's line, not lrkit's
    assert ran_out[-1].lineno == line
    for r in [*report.results, alone]:
        assert len(r.losses) == 8 and r.note.startswith("data ran out after 8 of 10 steps")
    assert "data ran out after 8 of 10 steps" in report.table()


def test_a_model_reset_in_place_ends_as_its_last_run_left_it_buffers_too():
    """make() loads the first weights into a kept model with BatchNorm: after the runs the
    model is the last run's, its BatchNorm statistics with its weights (what that row
    scored), not the last weights over the first statistics."""
    import copy

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g)
    data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8),
                                torch.nn.Linear(8, 3))  # fmt: skip
    first = copy.deepcopy(model.state_dict())

    def make():
        model.load_state_dict(first)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, torch.nn.functional.cross_entropy, data, data[:1]

    report = C.compare(C.factory(make, seed=0), methods="fixed,adam", steps=10, num_iter=10)
    now = model.state_dict()
    assert int(now["1.num_batches_tracked"]) == 10  # the last run's 10 steps
    assert not torch.equal(now["1.running_mean"], first["1.running_mean"])
    model.eval()
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(data[0][0]), data[0][1]).item()
    assert loss == pytest.approx(report.results[-1].val_loss, rel=1e-6)


def test_validation_batches_of_another_layout_are_said_of_val_data():
    """(x_val, y_val) given as val_data itself: its first 'batch' is a tensor; the error names
    val_data (data is a right list of batches), as the command says it."""
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    data = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]

    def make():
        model = torch.nn.Linear(4, 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, torch.nn.functional.cross_entropy, data, (x, y)

    with pytest.raises(BatchLayoutError) as info:
        C.compare(C.factory(make, seed=0), methods="fixed", steps=10, num_iter=10)
    assert str(info.value) == (
        "val_data must yield (x, y) batches for loss_fn(model(x), y), got a Tensor (one batch "
        "as val_data: a list of it, [(x, y)])"
    )


def test_a_refused_make_leaves_the_optimizer_and_gradients_as_given():
    """make() returning the same model and optimizer every call is refused at its second call:
    the weights, the optimizer's state and the gradients are as make() gave them (the check
    step before the runs took one step with them)."""
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    data = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def make():
        return model, opt, torch.nn.functional.cross_entropy, data

    with pytest.raises(C.NotFreshError):
        C.compare(C.factory(make, seed=0), methods="fixed", steps=10, num_iter=10)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert len(opt.state) == 0 and all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("spec", [",", " , ", "", []])
def test_methods_naming_no_method_are_refused_before_anything_runs(spec):
    """A methods string of separators alone (or an empty list) names no method: a one-line
    ValueError, from parse_methods as from compare() before any setup is made."""
    message = f"methods must be a comma-separated subset of {', '.join(C.METHODS)}, got {spec!r}"
    with pytest.raises(ValueError) as info:
        C.parse_methods(spec)
    assert str(info.value) == message
    calls: list[int] = []

    def make():
        calls.append(1)
        raise AssertionError("make() called")

    with pytest.raises(ValueError) as info:
        C.compare(make, methods=spec, steps=10, num_iter=10)
    assert str(info.value) == message and calls == []


def test_the_plateau_row_counts_its_reductions_in_words():
    """Every report an improvement (an LR that trains): "0 reductions"; an LR too small to
    move the loss for 5 steps (4 reports, patience 2): one halving, "1 reduction"."""
    make = C.factory(_linear_task(), seed=0)
    r = C.run_method("plateau", make=make, lrs=_LRS, steps=10)
    assert r.note == "0 reductions" and r.lrs == [0.1] * 10
    tiny = C.LRs(1e-12, base_max=1e-12, base_min=1e-12, adam=1e-3)
    r = C.run_method("plateau", make=make, lrs=tiny, steps=5)
    assert r.note == "1 reduction"
    assert r.lrs == [1e-12] * 4 + [0.5e-12]


def test_data_one_batch_short_of_the_steps_is_noted_and_warned():
    """A one-shot iterator of 9 batches for a 10-step run: the run ends after 9 steps, and
    its row and a DataRanOutWarning say so."""
    from lrkit.torch import DataRanOutWarning

    x = torch.arange(72.0).reshape(72, 1).repeat(1, 4) / 72
    y = torch.arange(72) % 3

    def fn():
        model = torch.nn.Linear(4, 3)
        data = ((x[i : i + 8], y[i : i + 8]) for i in range(0, 72, 8))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, torch.nn.functional.cross_entropy, data

    with pytest.warns(DataRanOutWarning) as caught:
        r = C.run_method("fixed", make=C.factory(fn, seed=0), lrs=_LRS, steps=10)
    assert len(r.losses) == 9 and r.note == "data ran out after 9 of 10 steps"
    assert [str(w.message) for w in caught] == [
        "compare: method 'fixed': data ran out after 9 of steps=10 steps: a one-shot iterator "
        "(a generator) yields its batches once; give the data as a list, a DataLoader or a "
        "function returning a new iterator"
    ]


def test_a_loaders_own_generator_is_left_as_found_when_the_check_before_the_runs_fails():
    """The check before the range tests takes a training step (drawing from the loader's own
    generator), then meets validation data without a batch: the ValueError leaves the
    generator where the caller had it."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    gen = torch.Generator().manual_seed(5)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=gen)

    def task():
        model = torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, torch.nn.functional.cross_entropy, loader, []

    before = gen.get_state()
    with pytest.raises(ValueError, match=r"^val_data must yield at least one batch, got none$"):
        C.compare(C.factory(task, seed=0), methods="fixed", steps=10, num_iter=10)
    assert torch.equal(gen.get_state(), before)


def test_a_results_json_form_has_no_non_finite_number_in_its_curves():
    """Losses and LRs that are infinite or NaN (a diverged run) are None in to_dict(), in the
    row's and the comparison's, so that the JSON is standard."""
    import json

    inf, nan = float("inf"), float("nan")
    row = C.Result("fixed", optimizer="SGD", lr="0.1", losses=[1.5, inf, nan],
                   lrs=[0.1, nan, 0.05], final_loss=inf, diverged=True)  # fmt: skip
    d = row.to_dict()
    assert d["losses"] == [1.5, None, None] and d["lrs"] == [0.1, None, 0.05]
    assert d["final_loss"] is None and d["val_loss"] is None and d["diverged"] is True
    text = json.dumps(C.Comparison([row], lrs=_LRS).to_dict(), allow_nan=False)
    assert json.loads(text)["results"][0]["losses"] == [1.5, None, None]


@pytest.mark.parametrize("batches", [30, 25])
def test_schedulefree_on_one_shot_data_with_batchnorm_keeps_the_trained_statistics(batches):
    """A generator the run read to its end cannot be read again to re-estimate BatchNorm at
    the averaged weights: the row is scored with the statistics as trained, and says so."""
    pytest.importorskip("schedulefree")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(512, 20, generator=g), torch.randint(0, 4, (512,), generator=g)

    def make():
        torch.manual_seed(0)
        m = torch.nn.Sequential(
            torch.nn.Linear(20, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
            torch.nn.Linear(16, 4),
        )  # fmt: skip
        data = ((x[i * 16 : i * 16 + 16], y[i * 16 : i * 16 + 16]) for i in range(batches))
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        return m, opt, torch.nn.functional.cross_entropy, data, [(x[480:], y[480:])]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = C.run_method("schedulefree", make=C.factory(make, seed=0), lrs=_LRS, steps=30)
    said = "BatchNorm statistics as trained (one-shot data, not read again)"
    ran_out = [] if batches == 30 else [f"data ran out after {batches} of 30 steps"]
    assert r.note == "; ".join([said, *ran_out]) and math.isfinite(r.val_loss)


def test_adam_and_lr_free_rows_say_the_targets_weight_decay_and_group_lrs_are_not_carried():
    pytest.importorskip("schedulefree")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 20, generator=g), torch.randint(0, 4, (64,), generator=g)

    def task(groups: bool, wd: float):
        def make():
            torch.manual_seed(0)
            m = torch.nn.Sequential(
                torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)
            )
            params = (
                [{"params": m[0].parameters(), "lr": 1e-4}, {"params": m[2].parameters()}]
                if groups
                else m.parameters()
            )
            opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=wd)
            return m, opt, torch.nn.functional.cross_entropy, [(x, y)] * 10, [(x, y)]

        return C.factory(make, seed=0)

    for groups, wd, said in [
        (True, 0.1, "one group, no weight decay nor group LRs (the target's not carried)"),
        (False, 0.1, "one group, no weight decay (the target's not carried)"),
        (True, 0.0, "one group, no group LRs (the target's not carried)"),
        (False, 0.0, ""),
    ]:
        for method in ("adam", "schedulefree"):
            r = C.run_method(method, make=task(groups, wd), lrs=_LRS, steps=5)
            assert r.note == said, (groups, wd, method)
        fixed = C.run_method("fixed", make=task(groups, wd), lrs=_LRS, steps=5)
        assert "not carried" not in fixed.note


def test_schedulefree_on_an_endless_iterator_reestimates_batchnorm_from_it(monkeypatch):
    """An iterator the run did not spend (itertools.cycle) is read on for the statistics."""
    import itertools

    pytest.importorskip("schedulefree")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 20, generator=g), torch.randint(0, 4, (96,), generator=g)
    seen = _recorded_bn_data(monkeypatch)

    def make():
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 4))  # fmt: skip
        batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 80, 16)]
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        data = itertools.cycle(batches)
        return m, opt, torch.nn.functional.cross_entropy, data, [(x[80:], y[80:])]

    r = C.run_method("schedulefree", make=C.factory(make, seed=0), lrs=_LRS, steps=12)
    assert r.note == "" and seen[-1] is not None and math.isfinite(r.val_loss)


# ------------------------------------------------------------- tasks, notes and ranking
def test_a_task_of_the_wrong_length_or_without_an_optimizer_is_one_line_naming_it():
    model = torch.nn.Linear(4, 2)
    data = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy
    with pytest.raises(ValueError) as info:
        C.factory(lambda: (model, opt, loss), name="target 'm:f'")()
    assert str(info.value) == (
        "target 'm:f' must return (model, optimizer, loss_fn, data[, val_data]), got tuple"
    )
    with pytest.raises(ValueError) as info:
        C.factory(lambda: (model, "sgd", loss, data))()
    assert str(info.value) == (
        "task must return a torch.nn.Module and a torch.optim.Optimizer first, got Linear and str"
    )


def test_the_first_optimizer_returned_again_with_momentum_but_its_lrs_is_refused():
    """The LRs as first returned, but a run's momentum in its state: refused."""
    fn, model = _kept_model_task()
    _, _, loss_fn, data = fn()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def reset():
        model.load_state_dict(start)
        return model, opt, loss_fn, data

    make = C.checked(C.factory(reset, seed=0))
    make()
    loss_fn(model(data[0][0]), data[0][1]).backward()
    opt.step()  # a run's step: momentum buffers, the lr untouched
    with pytest.raises(C.NotFreshError, match=r"^make\(\) must build a fresh optimizer"):
        make()


def test_a_make_that_takes_an_argument_is_refused_naming_make():
    def make(seed):
        raise AssertionError("not called")

    for call in (
        lambda: C.compare(make, methods="fixed", steps=10, num_iter=10),
        lambda: C.checked(make),
    ):
        with pytest.raises(TypeError) as info:
            call()
        assert str(info.value) == (
            "make must be a callable make() -> Setup, taking 0 positional arguments; got make(seed)"
        )


def test_a_fresh_model_of_other_shapes_under_the_same_names_is_not_compared():
    """A task whose model changes its width between calls: no first weights to compare with."""
    widths = iter([2, 3, 2])
    make = C.checked(C.factory(lambda: _tiny(torch.nn.Linear(4, next(widths))), seed=0))
    shapes = [tuple(make().model.weight.shape) for _ in range(3)]
    assert shapes == [(2, 4), (3, 4), (2, 4)]


def test_the_demo_task_s_base_optimizer_is_the_sgd_with_momentum_its_name_says():
    pytest.importorskip("sklearn")
    make = C.demo_factory(seed=0)
    setup = make()
    assert type(setup.optimizer) is torch.optim.SGD
    assert [(g["lr"], g["momentum"]) for g in setup.optimizer.param_groups] == [(0.01, 0.9)]
    assert "SGD(momentum=0.9)" in make.name


def test_schedulefree_reestimates_batchnorm_from_ten_training_batches():
    """On an endless iterator: the run's steps, then 10 batches read on for the statistics."""
    pytest.importorskip("schedulefree")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 20, generator=g), torch.randint(0, 4, (96,), generator=g)
    read = [0]

    def endless():
        while True:
            for i in range(0, 80, 16):
                read[0] += 1
                yield x[i : i + 16], y[i : i + 16]

    def make():
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 4))  # fmt: skip
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        return m, opt, torch.nn.functional.cross_entropy, endless(), [(x[80:], y[80:])]

    r = C.run_method("schedulefree", make=C.factory(make, seed=0), lrs=_LRS, steps=12)
    assert r.note == "" and len(r.losses) == 12 and read[0] == 12 + 10


def test_a_failed_row_without_validation_scores_leaves_the_ranking_by_validation_loss():
    nan = float("nan")
    rows = [
        _row("fixed", val_loss=0.5, final_loss=0.1),
        _row("cosine", val_loss=0.25, final_loss=0.9),
        _row("adam", val_loss=nan, final_loss=nan, error="KeyError: 'x'"),
    ]
    report = C.Comparison(rows, lrs=_LRS)
    assert report.has_val and report.best is rows[1]
    assert report.best_marks() == [False, True, False]


def test_the_adam_row_says_nothing_of_group_lrs_when_the_other_group_is_frozen_at_0():
    def fn():
        model, _, loss_fn, data, val = _linear_task()()
        groups = [{"params": [model.weight], "lr": 0.0}, {"params": [model.bias]}]
        return model, torch.optim.SGD(groups, lr=0.1), loss_fn, data, val

    r = C.run_method("adam", make=C.factory(fn, seed=0), lrs=_LRS, steps=5)
    assert not r.error and r.note == ""
