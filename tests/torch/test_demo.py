"""``lrkit.torch.demo``: the built-in tasks of ``lrkit find/compare/tune --demo``."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from lrkit.torch import demo  # noqa: E402


@pytest.mark.parametrize("name", demo.TASKS)
def test_tasks_build_and_are_reproducible(name: str) -> None:
    a, b = demo.make_task(name, seed=3), demo.make_task(name, seed=3)
    assert a.name == name
    assert (len(a.x_train), len(a.x_val)) == (1348, 449)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    sa, sb = a.make_model().state_dict(), b.make_model().state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_make_model_leaves_the_global_generator_alone() -> None:
    task = demo.digits_task()
    state = torch.get_rng_state()
    task.make_model()
    assert torch.equal(torch.get_rng_state(), state)


def test_make_model_seeds_only_the_cpu_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    """The accelerators' generators are the caller's: ``torch.manual_seed`` would reseed every
    CUDA device (or queue that until CUDA starts), which nothing puts back. The weights are
    those of the CPU generator seeded with the task's seed."""
    seeded: list[object] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: seeded.append(seed))
    model = demo.digits_task(seed=5).make_model()
    assert seeded == []
    monkeypatch.undo()
    state = torch.get_rng_state()
    torch.manual_seed(5)
    expected = demo.digits_task(seed=5).model_fn()
    torch.set_rng_state(state)
    got, want = model.state_dict(), expected.state_dict()
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in got)


def test_unknown_task_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"^name must be one of 'digits_mlp_adam', "):
        demo.make_task("nope")


def test_mlp_shape() -> None:
    net = demo.mlp(10, n_out=3, hidden=8, bn=True, depth=3)
    assert net(torch.zeros(4, 10)).shape == (4, 3)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules()) == 3


def test_train_follows_the_schedule_and_evaluate_restores_the_modes() -> None:
    from lrkit import schedules as S

    task = demo.digits_task(seed=1, batch_size=64)
    model = task.make_model()
    opt = task.make_optimizer(model, lr=1e-3)
    sched = S.cosine(0.01, total_steps=12)
    hist = demo.train(model, optimizer=opt, task=task, steps=12, schedule=sched)
    assert hist["lr"] == [sched(k) for k in range(12)] and len(hist["loss"]) == 12
    model.train()
    loss, acc = demo.evaluate(model, task=task)
    assert model.training and loss > 0 and 0.0 <= acc <= 1.0
    with pytest.raises(TypeError):  # keyword-only after the model, as lrkit.torch.fit
        demo.train(model, opt, task, 12)  # type: ignore[misc]
    with pytest.raises(TypeError):
        demo.evaluate(model, task)  # type: ignore[misc]


@pytest.mark.parametrize("batch_size", [32, 1348, 1000, 1])
def test_len_of_the_batches_is_the_number_iterated(batch_size: int) -> None:
    """The last partial batch is dropped (as ``lrkit tune --demo`` counts an epoch): len()
    counts the full batches only (it said 43 for 42 batches of 32 of 1348 examples)."""
    batches = demo.digits_task(batch_size=batch_size).train_batches()
    sizes = [len(x) for x, _ in batches]
    assert len(batches) == len(sizes) == 1348 // batch_size
    assert set(sizes) == {batch_size}


@pytest.mark.parametrize("bad", [0, -1, 1349, 2000, 32.5, "32", True, None])
def test_a_bad_batch_size_is_a_one_line_error(bad: object) -> None:
    text = " (text, not a number)" if isinstance(bad, str) else ""
    message = f"batch_size must be an integer in [1, 1348], got {bad!r}{text}"
    for make in (
        lambda: demo.digits_task(batch_size=bad),  # type: ignore[arg-type]
        lambda: demo.make_task("digits_mlp_sgd", batch_size=bad),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError) as info:
            make()
        assert str(info.value) == message
    task = demo.digits_task()
    with pytest.raises(ValueError) as info:
        demo.Batches(task.x_train, y=task.y_train, batch_size=bad)  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "0", True])
def test_a_bad_seed_is_a_one_line_error(bad: object) -> None:
    text = " (text, not a number)" if isinstance(bad, str) else ""
    message = f"seed must be an integer in [0, 4294967295], got {bad!r}{text}"
    task = demo.digits_task()
    for make in (
        lambda: demo.digits_task(seed=bad),  # type: ignore[arg-type]
        lambda: demo.make_task("digits_mlp_adam", seed=bad),  # type: ignore[arg-type]
        lambda: demo.digits_data(bad),  # type: ignore[arg-type]
        lambda: task.train_batches(bad),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError) as info:  # numpy's "expected non-negative integer"
            make()
        assert str(info.value) == message


def test_the_demo_helpers_name_a_bad_argument() -> None:
    task = demo.digits_task(seed=0)
    with pytest.raises(ValueError, match=r"^batch_size must be"):
        task.val_batches(0)
    for call in (
        lambda: demo.evaluate(torch.nn.Linear(64, 10), task=None),
        lambda: demo.train(
            torch.nn.Linear(64, 10),
            optimizer=torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1),
            task=None,
            steps=1,
        ),
    ):
        with pytest.raises(ValueError, match=r"^task must be a DemoTask"):
            call()


def test_the_former_names_still_work_with_a_deprecation_warning_at_the_users_line() -> None:
    """``lrkit.demo`` (now ``lrkit.torch.demo``) imports with a warning at the ``import``
    line, and ``train(lr_schedule=)`` (now ``schedule=``) trains as ``schedule=`` does."""
    import sys

    from lrkit import schedules as S

    sys.modules.pop("lrkit.demo", None)
    with pytest.warns(
        DeprecationWarning, match=r"^lrkit\.demo was renamed lrkit\.torch\.demo"
    ) as rec:
        import lrkit.demo as former
    assert rec[0].filename == __file__
    assert former.digits_task is demo.digits_task and former.__all__ == demo.__all__
    task = demo.digits_task(seed=1, batch_size=64)
    sched = S.cosine(0.01, total_steps=5)
    runs = []
    for kwargs in ({"schedule": sched}, {"lr_schedule": sched}):
        model = task.make_model()
        opt = task.make_optimizer(model, lr=1e-3)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runs.append(demo.train(model, optimizer=opt, task=task, steps=5, **kwargs))
        said = [str(w.message) for w in caught if w.category is DeprecationWarning]
        assert said == (
            ["lrkit.torch.demo.train(): the argument lr_schedule= was renamed schedule="]
            if "lr_schedule" in kwargs
            else []
        )
    assert runs[0] == runs[1] and runs[0]["lr"] == [sched(k) for k in range(5)]
    with pytest.raises(TypeError, match=r"got both schedule= and lr_schedule="):
        demo.train(model, optimizer=opt, task=task, steps=5, schedule=sched, lr_schedule=sched)
