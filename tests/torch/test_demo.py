"""``lrkit.torch.demo``: the built-in tasks of ``lrkit find/compare/tune --demo``."""

from __future__ import annotations

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
