"""find_lr restores what the optimizer owns beyond the model, and rejects unusable inputs with
a one-line error naming the parameter."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from lrkit.torch import find_lr  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::lrkit.finder.LRFinderWarning")


def data(n=128, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, 0] > 0).long()
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, n, 16)]


class TempLoss(nn.Module):
    """Cross-entropy with a learnable temperature: a parameter the loss owns."""

    def __init__(self):
        super().__init__()
        self.log_t = nn.Parameter(torch.tensor(0.25))

    def forward(self, out, y):
        return nn.functional.cross_entropy(out * self.log_t.exp(), y)


def test_loss_module_parameters_and_grads_restored():
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    loss = TempLoss()
    opt = torch.optim.Adam([*model.parameters(), *loss.parameters()], lr=1e-3)
    loss.log_t.grad = torch.tensor(0.5)
    t0, g0 = loss.log_t.detach().clone(), loss.log_t.grad.clone()
    w0 = model.weight.detach().clone()
    find_lr(model, opt, loss, data(), num_iter=20, end_lr=1.0)
    assert torch.equal(loss.log_t.detach(), t0)
    assert torch.equal(loss.log_t.grad, g0)
    assert torch.equal(model.weight.detach(), w0)
    assert opt.state == {} or all(len(s) == 0 for s in opt.state.values())


def test_loss_module_parameter_without_grad_gets_none_back():
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    loss = TempLoss()
    opt = torch.optim.SGD(
        [{"params": model.parameters()}, {"params": loss.parameters(), "lr": 0.1}], lr=0.01
    )
    t0 = loss.log_t.detach().clone()
    find_lr(model, opt, loss, data(), num_iter=20, end_lr=1.0)
    assert torch.equal(loss.log_t.detach(), t0)
    assert loss.log_t.grad is None


def snapshot(model, opt):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        repr(opt.state_dict()),
    )


def check_unchanged(before, model, opt):
    sd, o = before
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    assert repr(opt.state_dict()) == o


@pytest.mark.parametrize(
    "batches,match",
    [
        ([torch.randn(16, 6)] * 4, r"^data must yield \(x, y\) batches .* got a Tensor; .*step="),
        ([(torch.randn(16, 6),)] * 4, r"^data must yield \(x, y\) batches .* a tuple of 1 item"),
        (
            [(torch.randn(16, 6), torch.zeros(16, dtype=torch.long), torch.ones(16))] * 4,
            r"a tuple of 3 items",
        ),
        ([{"x": torch.randn(16, 6)}] * 4, r"got a dict"),
    ],
)
def test_batch_layout_is_explicit(batches, match):
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = snapshot(model, opt)
    with pytest.raises(ValueError, match=match):
        find_lr(model, opt, nn.functional.cross_entropy, batches, num_iter=10)
    check_unchanged(before, model, opt)


def test_val_data_layout_is_checked_before_the_sweep_and_named():
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = snapshot(model, opt)
    x, y = torch.randn(16, 6), torch.zeros(16, dtype=torch.long)
    good = [(x, y)] * 4
    # one (x, y) pair where an iterable of batches belongs: its items are tensors
    with pytest.raises(
        ValueError, match=r"^val_data must yield \(x, y\) batches .* got a Tensor \(one batch as "
        r"val_data: a list of it, \[\(x, y\)\]\); .*step="
    ):  # fmt: skip
        find_lr(model, opt, nn.functional.cross_entropy, good, num_iter=10, val_data=(x, y))
    check_unchanged(before, model, opt)
    r = find_lr(model, opt, nn.functional.cross_entropy, good, num_iter=10, val_data=[(x, y)])
    assert len(r.held_losses) > 0


def test_parameter_free_model_is_a_value_error_naming_model():
    model = nn.ReLU()
    stray = nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([stray], lr=0.1)
    with pytest.raises(ValueError, match=r"^model has no trainable parameters"):
        find_lr(model, opt, lambda out, y: (out - 1).pow(2).mean(), data(), num_iter=10)
    assert torch.equal(stray.detach(), torch.zeros(2)) and stray.grad is None


def test_an_optimizer_of_another_model_is_refused_before_the_sweep():
    """An optimizer built for another model (or a copy) would step nothing the loss reads:
    the sweep would see a flat curve and call it an LR too small."""
    model, other = nn.Linear(6, 2), nn.Linear(6, 2)
    opt = torch.optim.SGD(other.parameters(), lr=0.1)
    before = snapshot(model, opt)
    with pytest.raises(ValueError) as info:
        find_lr(model, opt, nn.functional.cross_entropy, data(), num_iter=10)
    assert str(info.value) == (
        "optimizer holds none of the parameters of model (Linear, 2 trainable): build it from "
        "this model's parameters, e.g. torch.optim.AdamW(model.parameters(), ...), after any "
        "copy or .to()"
    )
    check_unchanged(before, model, opt)
    # some of them (the rest frozen, or trained by another optimizer) is the user's choice
    part = torch.optim.SGD([model.weight], lr=0.1)
    r = find_lr(model, part, nn.functional.cross_entropy, data(), num_iter=10)
    assert len(r.lrs) > 0
    with pytest.raises(TypeError, match=r"^step must be a callable step\(model, batch\)"):
        find_lr(model, part, None, data(), num_iter=10, step=lambda batch: 0)


def _on_meta():
    with torch.device("meta"):
        return nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 2))


def _meta_buffer():
    model = nn.Sequential(nn.Linear(6, 2))
    model[0].register_buffer("scale", torch.ones(2, device="meta"))
    return model


META = (
    r"is on the meta device \(not materialized\): load or initialize its weights before the "
    r"range test \(model\.to_empty\(device=\.\.\.\) and a state dict; build the optimizer "
    r"after that\)$"
)
LAZY = (
    r"(a lazy module\): run one forward pass \(model\(x\) on a batch, under torch\.no_grad\(\)\) "
    r"before the range test$"
)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (_on_meta, rf"^model: parameter '0\.weight' {META}"),
        (_meta_buffer, rf"^model: buffer '0\.scale' {META}"),
        (
            lambda: nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.Linear(4, 2)),
            rf"^model: parameter '0\.weight' of LazyLinear is not initialized yet \{LAZY}",
        ),
        (
            lambda: nn.Sequential(nn.Linear(6, 2), nn.LazyBatchNorm1d(affine=False)),
            rf"^model: buffer '1\.running_mean' of LazyBatchNorm1d is not initialized yet \{LAZY}",
        ),
    ],
)
def test_a_model_without_weights_is_refused_in_one_line_naming_model(make, match):
    """On the meta device, or a lazy module before its first forward pass: refused before
    anything runs (not torch's error from deep inside the sweep or the snapshot)."""
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=match) as info:
        find_lr(model, opt, nn.functional.cross_entropy, data(), num_iter=10)
    assert "\n" not in str(info.value) and opt.state == {}


def test_an_optimizer_built_on_the_meta_parameters_is_refused_in_one_line_naming_it():
    model = _on_meta()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.to_empty(device="cpu")  # new parameters: the optimizer still holds the meta ones
    with pytest.raises(
        ValueError, match=r"^optimizer: param group 0 holds a parameter on the meta"
    ):
        find_lr(model, opt, nn.functional.cross_entropy, data(), num_iter=10)


def test_a_lazy_model_runs_once_materialized_by_a_forward_pass():
    torch.manual_seed(0)
    model = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # built before: the same parameters
    with torch.no_grad():
        model(data()[0][0])
    w = model[0].weight.detach().clone()
    r = find_lr(model, opt, nn.functional.cross_entropy, data(), num_iter=10)
    assert r.steps > 0 and torch.equal(model[0].weight, w)


TARGETS = """
import torch
from torch import nn

x = torch.randn(64, 6)
y = (x[:, 0] > 0).long()
data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]


def make_meta():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    return model, torch.optim.SGD(model.parameters(), lr=0.1), nn.functional.cross_entropy, data


def make_lazy():
    model = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.Linear(4, 2))
    return model, torch.optim.SGD(model.parameters(), lr=0.1), nn.functional.cross_entropy, data
"""


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("make_meta", "model: parameter '0.weight' is on the meta device (not materialized)"),
        ("make_lazy", "model: parameter '0.weight' of LazyLinear is not initialized yet"),
    ],
)
def test_lrkit_find_refuses_a_model_without_weights_in_one_line(
    tmp_path, monkeypatch, capsys, target, message
):
    from lrkit.cli import main

    (tmp_path / "lrkit_nodata_tasks.py").write_text(TARGETS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        argv = ["find", f"lrkit_nodata_tasks:{target}", "--no-train", "--no-plot", "--quiet"]
        assert main(argv) == 2
    finally:
        import sys

        sys.modules.pop("lrkit_nodata_tasks", None)
    err = capsys.readouterr().err
    assert err.startswith(f"lrkit find: error: {message}") and err.count("\n") == 1


@pytest.mark.parametrize("who", ["loss_fn", "step"])
def test_non_scalar_loss_is_a_value_error_naming_the_parameter(who):
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = snapshot(model, opt)
    per_sample = nn.CrossEntropyLoss(reduction="none")
    kw = (
        {"loss_fn": per_sample}
        if who == "loss_fn"
        else {"loss_fn": None, "step": lambda m, b: per_sample(m(b[0]), b[1])}
    )
    with pytest.raises(ValueError, match=rf"^{who} must return a scalar loss .* shape \(16,\)"):
        find_lr(model, opt, data=data(), num_iter=10, **kw)
    check_unchanged(before, model, opt)


def test_detached_loss_is_a_value_error():
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"^loss_fn returned a loss that does not require grad"):
        find_lr(
            model,
            opt,
            lambda out, y: nn.functional.cross_entropy(out, y).detach(),
            data(),
            num_iter=10,
        )


def _loader(n: int = 64, **kw):
    g = torch.Generator().manual_seed(0)
    ds = torch.utils.data.TensorDataset(torch.randn(n, 4), torch.randn(n, 1))
    return torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True, generator=g, **kw), g


def test_a_shuffled_val_data_leaves_the_rngs_and_its_generator_as_they_were():
    torch.manual_seed(1)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    data, g_data = _loader()
    val, g_val = _loader(16)
    val_unseeded = torch.utils.data.DataLoader(val.dataset, batch_size=8, shuffle=True)
    for v in (val, val_unseeded):
        rng = torch.get_rng_state()
        states = (g_data.get_state(), g_val.get_state())
        find_lr(model, opt, nn.functional.mse_loss, data, val_data=v, num_iter=20, warn=False)
        assert torch.equal(torch.get_rng_state(), rng)
        assert torch.equal(g_data.get_state(), states[0]) and torch.equal(
            g_val.get_state(), states[1]
        )


def test_a_tensor_lr_is_restored_in_place():
    model = nn.Linear(4, 1)
    lr = torch.tensor(0.01)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    group = opt.param_groups[0]
    data, _ = _loader()
    find_lr(model, opt, nn.functional.mse_loss, data, num_iter=20, warn=False)
    assert opt.param_groups[0] is group and group["lr"] is lr
    assert torch.equal(lr, torch.tensor(0.01))


def test_the_optimizer_state_comes_back_in_its_own_dicts_and_tensors():
    """A compiled optimizer step guards on the state's tensors: they come back holding the
    values from before the sweep, the same objects (new ones compiled the step again)."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.01))
    data, _ = _loader()
    for x, y in list(data)[:3]:
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    dicts = {p: opt.state[p] for p in model.parameters()}
    held = {p: dict(st) for p, st in dicts.items()}
    values = {p: {k: v.clone() for k, v in st.items()} for p, st in dicts.items()}
    find_lr(model, opt, nn.functional.mse_loss, data, num_iter=20, warn=False)
    for p in model.parameters():
        assert opt.state[p] is dicts[p]
        assert all(opt.state[p][k] is t for k, t in held[p].items())
        assert all(torch.equal(opt.state[p][k], v) for k, v in values[p].items())


def test_param_groups_keep_their_dicts_lists_and_key_order():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 2))
    opt = torch.optim.AdamW(
        [
            {"params": model[0].parameters(), "lr": 1e-3},
            {"params": model[1].parameters(), "lr": 1e-2, "weight_decay": 0.1},
        ]
    )
    groups = list(opt.param_groups)
    lists = [g["params"] for g in groups]
    contents = [list(p) for p in lists]
    keys = [list(g) for g in groups]
    values = [{k: v for k, v in g.items() if k != "params"} for g in groups]
    find_lr(model, opt, nn.functional.cross_entropy, data(), num_iter=20, warn=False)
    assert all(a is b for a, b in zip(opt.param_groups, groups))
    assert all(g["params"] is p for g, p in zip(groups, lists))
    assert [list(p) for p in lists] == contents
    assert [list(g) for g in groups] == keys and keys[0][0] == "params"
    assert [{k: v for k, v in g.items() if k != "params"} for g in groups] == values


# ----------------------------------------------------------------------------- loaders


def _epoch_order(loader) -> list[int]:
    return [int(v) for x, _ in loader for v in x.flatten()]


def _shuffled(**kw):
    from torch.utils.data import DataLoader, TensorDataset

    ds = TensorDataset(torch.arange(32).float().unsqueeze(1), torch.zeros(32, dtype=torch.long))
    g = torch.Generator().manual_seed(123)
    return DataLoader(ds, batch_size=4, shuffle=True, generator=g, **kw)


@pytest.mark.parametrize(
    "kw", [{}, {"num_workers": 1}, {"num_workers": 1, "persistent_workers": True}]
)
def test_the_next_epoch_order_is_the_one_without_the_sweep(kw):
    def orders(sweep: bool) -> list[list[int]]:
        torch.manual_seed(0)
        dl, val = _shuffled(**kw), _shuffled(**kw)
        model = nn.Linear(1, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        if sweep:
            find_lr(model, opt, nn.CrossEntropyLoss(), dl, val_data=val, num_iter=10)
            assert vars(dl).get("_iterator") is None and vars(val).get("_iterator") is None
        return [_epoch_order(dl), _epoch_order(dl), _epoch_order(val)]

    assert orders(True) == orders(False)


def test_a_generator_function_over_a_loader_keeps_the_loaders_next_epoch_order():
    def batches(loader):  # the loader as an argument, or read from the enclosing function
        for x, y in loader:
            yield x, y.clone()

    def closure(loader):
        def gen():
            for x, y in loader:
                yield x, y.clone()

        return gen()

    for make in (batches, closure):

        def orders(sweep: bool) -> list[list[int]]:
            torch.manual_seed(0)
            dl = _shuffled()
            model = nn.Linear(1, 2)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            if sweep:
                find_lr(model, opt, nn.CrossEntropyLoss(), make(dl), num_iter=10)  # noqa: B023
            return [_epoch_order(dl), _epoch_order(dl)]

        assert orders(True) == orders(False)


def test_a_generator_expression_over_a_loader_is_said_to_move_its_order():
    from lrkit.finder import LRFinderWarning

    torch.manual_seed(0)
    dl = _shuffled()
    model = nn.Linear(1, 2)
    with pytest.warns(LRFinderWarning, match=r"^data: a generator over a DataLoader") as rec:
        find_lr(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            nn.CrossEntropyLoss(),
            ((x, y) for x, y in dl),
            num_iter=10,
        )
    assert [w.filename for w in rec if "generator over" in str(w.message)] == [__file__]
    # the loader itself, or a generator that is not over a loader: nothing said
    import warnings

    for data in (dl, ((x, y) for x, y in [(torch.ones(4, 1), torch.zeros(4).long())] * 20)):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            find_lr(
                model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), data,
                num_iter=10, warn=True,
            )  # fmt: skip
        assert not [w for w in rec if "generator over" in str(w.message)]
    with warnings.catch_warnings(record=True) as rec:  # warn=False: not said
        warnings.simplefilter("always")
        find_lr(
            model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(),
            ((x, y) for x, y in dl), num_iter=10, warn=False,
        )  # fmt: skip
    assert not [w for w in rec if "generator over" in str(w.message)]


def test_a_persistent_iterator_the_loader_already_had_is_left_alone():
    torch.manual_seed(0)
    dl = _shuffled(num_workers=1, persistent_workers=True)
    _epoch_order(dl)
    mine = dl._iterator
    assert mine is not None
    model = nn.Linear(1, 2)
    find_lr(
        model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), dl, num_iter=10
    )
    assert dl._iterator is mine
    # the same loader as data and val_data: its iterator still comes back
    find_lr(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        nn.CrossEntropyLoss(),
        dl,
        val_data=dl,
        num_iter=10,
    )
    assert dl._iterator is mine
    after = _epoch_order(dl)
    torch.manual_seed(0)
    ref = _shuffled(num_workers=1, persistent_workers=True)
    _epoch_order(ref)
    assert after == _epoch_order(ref)


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_disk_snapshot_that_cannot_be_written_leaves_no_file_and_the_iterator(
    error, tmp_path, monkeypatch
):
    """A full disk (or a Ctrl-C) while the snapshot is written: no partial copy is left in the
    temporary folder, the loader keeps the iterator it had, and a disk error is one line."""
    import tempfile

    def full(*args, **kwargs):
        with open(args[1], "wb") as f:
            f.write(b"partial")
        raise error

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(torch, "save", full)
    dl = _shuffled()
    mine = object()
    dl._iterator = mine  # a persistent-worker loader's, after an epoch
    model = nn.Linear(1, 2)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    kind = RuntimeError if isinstance(error, Exception) else KeyboardInterrupt
    with pytest.raises(kind) as info:
        find_lr(model, opt, nn.CrossEntropyLoss(), dl, num_iter=10, snapshot="disk")
    if kind is RuntimeError:
        message = str(info.value)
        assert "\n" not in message and message.startswith("snapshot='disk' could not write")
        assert "No space left on device" in message and "snapshot='memory'" in message
    assert list(tmp_path.glob("lrkit_find_*")) == []
    assert dl._iterator is mine
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_disk_snapshot_whose_folder_cannot_be_made_is_the_same_one_line(monkeypatch):
    import tempfile

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", full)
    dl = _shuffled()
    mine = object()
    dl._iterator = mine
    model = nn.Linear(1, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(RuntimeError, match=r"^snapshot='disk' could not write .*No space left"):
        find_lr(model, opt, nn.CrossEntropyLoss(), dl, num_iter=10, snapshot="disk")
    assert dl._iterator is mine


# ----------------------------------------------------------------------------- batches


def test_namedtuple_batches_for_loss_fn_val_data_and_step():
    from collections import namedtuple

    Batch = namedtuple("Batch", ["x", "y"])
    batches = [Batch(x, y) for x, y in data()]
    seen = []

    def step(model, batch):
        seen.append(type(batch))
        return nn.functional.cross_entropy(model(batch.x), batch.y)

    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    a = find_lr(model, opt, nn.CrossEntropyLoss(), batches, val_data=batches[:2], num_iter=20)
    b = find_lr(model, opt, None, batches, val_data=batches[:2], step=step, num_iter=20)
    assert seen and set(seen) == {Batch}
    assert a.losses.tolist() == b.losses.tolist()


# ----------------------------------------------------------------------------- slots


class Growing(nn.Module):
    """A module whose buffers change during training: one grows (reassigned), one is resized
    in place, one appears, one goes from None to a tensor."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 2)
        self.register_buffer("hist", torch.zeros(3))
        self.register_buffer("count", torch.arange(2.0))
        self.register_buffer("maybe", None)

    def forward(self, x):
        if self.training:
            self.hist = torch.cat([self.hist, x.detach().mean().reshape(1)])
            self.count.resize_(self.count.numel() + 1).fill_(7.0)
            if "added" not in self._buffers:
                self.register_buffer("added", torch.ones(1), persistent=False)
            self.maybe = torch.ones(2)
        return self.lin(x)


def test_buffers_that_change_shape_or_appear_are_put_back_with_everything_else():
    import numpy as np

    torch.manual_seed(0)
    model = Growing()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.eval()
    hist, count = model.hist, model.count
    state = {k: v.clone() for k, v in model.state_dict().items()}
    keys = list(model.state_dict())
    rng = torch.get_rng_state().clone(), np.random.get_state()[1].copy()
    find_lr(model, opt, nn.CrossEntropyLoss(), data(), num_iter=20, end_lr=1.0)
    assert model.hist is hist and model.count is count
    assert list(model.state_dict()) == keys and "added" not in model._buffers
    assert model.maybe is None and "maybe" in model._buffers
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert model.count.shape == (2,) and model.count.tolist() == [0.0, 1.0]
    assert opt.param_groups[0]["lr"] == 0.1 and len(opt.state) == 0
    assert not model.training and not model.lin.training
    assert torch.equal(torch.get_rng_state(), rng[0])
    assert np.array_equal(np.random.get_state()[1], rng[1])
    model.train()
    model(torch.randn(4, 6))  # still usable


def test_a_part_that_cannot_be_restored_is_one_line_raised_after_the_rest(monkeypatch):
    from lrkit.torch import _finder

    def broken(self, **_):
        raise OSError("gone\nsecond line")

    monkeypatch.setattr(_finder._Snapshot, "_restore_scaler", broken)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.1), nn.Linear(8, 2))
    model.eval()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state().clone()
    with pytest.raises(RuntimeError) as info:
        find_lr(model, opt, nn.CrossEntropyLoss(), data(), num_iter=20, end_lr=1.0)
    msg = str(info.value)
    assert "\n" not in msg and "the GradScaler (OSError: gone)" in msg
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert opt.param_groups[0]["lr"] == 1e-3 and len(opt.state) == 0
    assert not any(m.training for m in model.modules())
    assert torch.equal(torch.get_rng_state(), rng)


class Counted(nn.Module):
    """A model whose forward updates torchmetrics metrics (a running sum and a list state)."""

    def __init__(self, torchmetrics):
        super().__init__()
        self.lin = nn.Linear(6, 2)
        self.seen = torchmetrics.SumMetric()
        self.outs = torchmetrics.CatMetric()

    def forward(self, x):
        out = self.lin(x)
        self.seen.update(torch.tensor(float(len(x))))
        self.outs.update(out.detach()[:, 0])
        return out


@pytest.mark.parametrize("before", [0, 3])
def test_metric_states_the_sweep_updates_go_back(before):
    torchmetrics = pytest.importorskip("torchmetrics")
    torch.manual_seed(0)
    model = Counted(torchmetrics)
    for x, _ in data()[:before]:  # states and counts accumulated before the range test
        model(x)
    saved = (
        model.seen.metric_state["sum_value"].clone(),
        [t.clone() for t in model.outs.metric_state["value"]],
    )
    count = model.seen.update_count
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    res = find_lr(
        model,
        opt,
        nn.functional.cross_entropy,
        data(),
        num_iter=20,
        end_lr=1.0,
        val_data=data()[:2],
    )
    assert res.steps > 0
    assert torch.equal(model.seen.metric_state["sum_value"], saved[0])
    assert len(model.outs.metric_state["value"]) == len(saved[1])
    assert all(torch.equal(a, b) for a, b in zip(model.outs.metric_state["value"], saved[1]))
    assert model.seen.update_count == model.outs.update_count == count
    if before:
        assert float(model.seen.compute()) == 16.0 * before
    # and the metric keeps working afterwards
    model(data()[0][0])
    assert model.seen.update_count == count + 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"train_mode": "no"}, ValueError, r"^train_mode must be True or False, got 'no'$"),
        ({"progress": "no"}, ValueError, r"^progress must be True or False, got 'no'$"),
        ({"warn": 0}, ValueError, r"^warn must be True or False, got 0$"),
        ({"loss_fn": 3}, TypeError, r"^loss_fn must be a callable loss_fn\(output, target\)"),
        (
            {"loss_fn": torch.nn.CrossEntropyLoss},
            TypeError,
            r"^loss_fn is the class torch\.nn\.modules\.loss\.CrossEntropyLoss: give an instance",
        ),
        ({"step": 3}, TypeError, r"^step must be a callable step\(model, batch\) -> loss"),
        ({"device": "gpu"}, ValueError, r"^device must be a torch.device or a device string"),
        ({"device": 3.5}, ValueError, r"^device must be a torch.device or a device string"),
        ({"device": "meta"}, ValueError, r"^device must be a device that holds data, got 'meta'"),
        pytest.param(
            {"device": "cuda"},
            ValueError,
            r"^device 'cuda' is not available here \(Torch not compiled with CUDA enabled\)$",
            marks=pytest.mark.skipif(
                torch.backends.cuda.is_built(), reason="this torch is built with CUDA"
            ),
        ),
    ],
)
def test_arguments_are_checked_before_the_sweep_and_named(kwargs, error, match):
    torch.manual_seed(0)
    model = nn.Linear(6, 2).eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    w = model.weight.detach().clone()
    args = {"loss_fn": nn.functional.cross_entropy, **kwargs}
    with pytest.raises(error, match=match):
        find_lr(model, opt, args.pop("loss_fn"), data(), num_iter=20, **args)
    assert model.training is False and torch.equal(model.weight, w) and opt.state == {}
    # numpy's bool is a bool
    import numpy as np

    find_lr(model, opt, nn.functional.cross_entropy, data(), num_iter=20, progress=np.bool_(False))


def test_val_data_with_the_held_measurement_off_is_refused():
    model = nn.Linear(6, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match=r"^val_data is given but eval_batches=0 turns the held"):
        find_lr(
            model, opt, nn.functional.cross_entropy, data(), val_data=data()[:2], eval_batches=0
        )
    assert opt.state == {}


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_requires_grad_flags_are_restored_when_the_step_changes_them(error):
    """A ``step`` that freezes a layer (or unfreezes one), then fails: every flag comes back."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))
    model[1].bias.requires_grad_(False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data, _ = _loader()
    calls = []

    def step(m, batch):
        calls.append(1)
        if len(calls) == 3:
            m[0].weight.requires_grad_(False)
            m[1].bias.requires_grad_(True)
        if len(calls) == 6:
            raise error("boom")
        x, y = batch
        return nn.functional.mse_loss(m(x), y)

    with pytest.raises(error, match="boom"):
        find_lr(model, opt, None, data, step=step, num_iter=20, warn=False)
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, False]


def test_a_submodule_the_sweep_builds_or_replaces_is_undone():
    """A head built on first use (as lazily made models do) is removed afterwards, and a
    submodule a step replaces goes back as the same object: state_dict keys, parameters
    and attributes as before."""

    class LazyHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(6, 8)
            self.head = None
            self.act = nn.ReLU()

        def forward(self, x):
            if self.head is None:
                self.head = nn.Linear(8, 2)
            return self.head(self.act(self.body(x)))

    torch.manual_seed(0)
    model = LazyHead()
    act = model.act
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    keys, params = list(model.state_dict()), list(model.parameters())

    def step(m, batch):
        m.act = nn.Tanh()  # a step that swaps a submodule
        x, y = batch
        return nn.functional.cross_entropy(m(x), y)

    find_lr(model, opt, None, data(), step=step, num_iter=20, warn=False)
    assert model.head is None and model.act is act
    assert list(model.state_dict()) == keys
    assert all(a is b for a, b in zip(model.parameters(), params))
    assert len(list(model.parameters())) == len(params)


def test_a_scheduler_stepped_before_the_first_optimizer_step_still_warns_after_find_lr():
    # find_lr's own optimizer steps are not the user's: torch's check that the scheduler
    # follows optimizer.step() sees an optimizer that has not stepped yet
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    find_lr(model, opt, nn.functional.cross_entropy, data(), num_iter=10, end_lr=1.0)
    with pytest.warns(UserWarning, match=r"before `optimizer.step\(\)`"):
        sched.step()


def test_an_optimizer_marked_as_not_stepped_yet_is_left_marked_so():
    # a training loop that resets torch's "optimizer.step() was called" mark between epochs:
    # the sweep's own steps do not set it, and the scheduler's check still warns
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    opt.step()
    opt._opt_called = False
    find_lr(model, opt, nn.functional.cross_entropy, data(), num_iter=10, end_lr=1.0)
    assert opt.__dict__["_opt_called"] is False
    with pytest.warns(UserWarning, match=r"before `optimizer.step\(\)`"):
        sched.step()


class GainOnFirstUse(nn.Module):
    """A module that registers a parameter on its first training forward pass."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 2)

    def forward(self, x):
        if self.training and "gain" not in self._parameters:
            self.register_parameter("gain", nn.Parameter(torch.ones(2)))
        out = self.lin(x)
        return out * self.gain if "gain" in self._parameters else out


def test_a_parameter_the_sweep_registers_is_removed_afterwards():
    torch.manual_seed(0)
    model = GainOnFirstUse()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    names = [n for n, _ in model.named_parameters()]
    keys = list(model.state_dict())
    find_lr(model, opt, nn.CrossEntropyLoss(), data(), num_iter=10, end_lr=1.0, train_mode=True)
    assert [n for n, _ in model.named_parameters()] == names == ["lin.weight", "lin.bias"]
    assert list(model.state_dict()) == keys
    assert "gain" not in model._parameters


class LazyTally(nn.Module):
    """A metric in torchmetrics' form (a ``metric_state`` property and ``reset``) whose state
    ``total`` is made on its first update."""

    @property
    def metric_state(self):
        return {"total": self.__dict__["total"]} if "total" in self.__dict__ else {"total": None}

    def reset(self):
        self.__dict__.pop("total", None)

    def update(self, x):
        self.__dict__["total"] = self.__dict__.get("total", torch.zeros(())) + x.sum().detach()


class Tallied(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 2)
        self.tally = LazyTally()

    def forward(self, x):
        self.tally.update(x)
        return self.lin(x)


def test_a_metric_state_made_during_the_sweep_is_removed_afterwards():
    torch.manual_seed(0)
    model = Tallied()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    find_lr(model, opt, nn.functional.cross_entropy, data(), num_iter=10, end_lr=1.0)
    assert "total" not in vars(model.tally)
    model(data()[0][0])  # and it is made again on the next update
    assert torch.equal(vars(model.tally)["total"], data()[0][0].sum())


def test_the_weights_come_back_in_their_own_storage():
    """A view of a parameter (weights tied through shared storage, parameters that are views
    of one flat buffer) holds the weights from before the sweep afterwards."""
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    view = model.weight.detach()
    ptr, w0 = model.weight.data_ptr(), view.clone()
    find_lr(model, opt, nn.functional.cross_entropy, data(), num_iter=20, end_lr=1.0, warn=False)
    assert model.weight.data_ptr() == ptr
    assert torch.equal(view, w0) and torch.equal(model.weight.detach(), w0)


class Sharded(torch.optim.Optimizer):
    """A ZeroRedundancyOptimizer's form: the optimizer it wraps (``optim``) holds the state,
    and each step copies the wrapper's group settings into that optimizer's groups."""

    def __init__(self, params, lr):
        self.optim = torch.optim.SGD(params, lr=lr, momentum=0.9)
        self.defaults = dict(self.optim.defaults)
        self.param_groups = [
            {**{k: v for k, v in g.items() if k != "params"}, "params": list(g["params"])}
            for g in self.optim.param_groups
        ]
        self.state = {}

    def consolidate_state_dict(self, to=0):
        pass

    def zero_grad(self, set_to_none=True):
        self.optim.zero_grad(set_to_none)

    def step(self, closure=None):
        for mine, inner in zip(self.param_groups, self.optim.param_groups):
            inner.update({k: v for k, v in mine.items() if k != "params"})
        return self.optim.step(closure)


def test_the_wrapped_optimizers_groups_and_state_of_a_sharded_optimizer_go_back():
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    opt = Sharded(model.parameters(), lr=0.01)
    find_lr(model, opt, nn.functional.cross_entropy, data()[:3], num_iter=10, warn=False)
    assert opt.optim.state == {} or all(len(s) == 0 for s in opt.optim.state.values())
    inner = opt.optim.param_groups[0]
    assert inner["lr"] == 0.01 and opt.param_groups[0]["lr"] == 0.01


def test_every_part_that_cannot_be_restored_is_named_in_the_one_line(monkeypatch):
    from lrkit.torch import _finder

    def broken(self, **_):
        raise OSError("gone")

    monkeypatch.setattr(_finder._Snapshot, "_restore_scaler", broken)
    monkeypatch.setattr(_finder._Snapshot, "_restore_metrics", broken)
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(RuntimeError) as info:
        find_lr(model, opt, nn.CrossEntropyLoss(), data(), num_iter=10, end_lr=1.0)
    assert str(info.value) == (
        "find_lr restored everything else but could not restore the GradScaler "
        "(OSError: gone); the metrics' states (OSError: gone)"
    )


@pytest.mark.parametrize(
    "kw", [{}, {"probe_data": [(torch.ones(4, 1), torch.zeros(4, dtype=torch.long))]}]
)
def test_an_epoch_in_progress_on_a_persistent_loader_goes_on_where_it_was(kw):
    """An iterator the user is part way through keeps its place: the sweep, and each probe,
    draw from an iterator of their own, not from the one the loader keeps."""

    def rest_of_epoch(sweep: bool) -> list[int]:
        torch.manual_seed(0)
        dl = _shuffled(num_workers=1, persistent_workers=True)
        it = iter(dl)
        next(it)
        if sweep:
            model = nn.Linear(1, 2)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            r = find_lr(model, opt, nn.CrossEntropyLoss(), dl, num_iter=10, warn=False, **kw)
            assert (r.probes is not None) == ("probe_data" in kw)
        return [int(v) for x, _ in it for v in x.flatten()]

    assert rest_of_epoch(True) == rest_of_epoch(False)


class Restat(nn.Module):
    """A module whose training step registers its running statistic again as a buffer kept
    out of the state dict."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 2)
        self.register_buffer("running", torch.zeros(2))

    def forward(self, x):
        if self.training:
            self.register_buffer("running", self.running + 1.0, persistent=False)
        return self.lin(x)


def test_a_buffer_the_sweep_makes_non_persistent_is_in_the_state_dict_again():
    torch.manual_seed(0)
    model = Restat()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    keys = list(model.state_dict())
    find_lr(model, opt, nn.CrossEntropyLoss(), data(), num_iter=10, end_lr=1.0, warn=False)
    assert list(model.state_dict()) == keys == ["running", "lin.weight", "lin.bias"]
    assert torch.equal(model.state_dict()["running"], torch.zeros(2))
