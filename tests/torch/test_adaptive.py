"""effective_lr: equals a manual computation from optimizer.state, and explains the real update."""

from __future__ import annotations

import copy
import json
import math
import re
import warnings
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lrkit.torch as lt  # noqa: E402
from lrkit.torch import effective_lr  # noqa: E402
from lrkit.torch._adaptive import EffectiveLRLogger  # noqa: E402

O = torch.optim

CASES = [
    ("Adam", lambda ps: O.Adam(ps, lr=0.01)),
    ("Adam-amsgrad", lambda ps: O.Adam(ps, lr=0.01, amsgrad=True, betas=(0.8, 0.99))),
    ("AdamW", lambda ps: O.AdamW(ps, lr=0.02, weight_decay=0.1, eps=1e-6)),
    ("AdamW-amsgrad", lambda ps: O.AdamW(ps, lr=0.02, amsgrad=True)),
    ("Adam-foreach", lambda ps: O.Adam(ps, lr=0.01, foreach=True, weight_decay=0.01)),
    ("NAdam", lambda ps: O.NAdam(ps, lr=0.01)),
    (
        "NAdam-decoupled",
        lambda ps: O.NAdam(ps, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
    ),
    ("RAdam", lambda ps: O.RAdam(ps, lr=0.01)),
    ("RAdam-fastbeta", lambda ps: O.RAdam(ps, lr=0.01, betas=(0.9, 0.9))),
    ("Adamax", lambda ps: O.Adamax(ps, lr=0.01)),
    ("RMSprop", lambda ps: O.RMSprop(ps, lr=0.01)),
    ("RMSprop-centered", lambda ps: O.RMSprop(ps, lr=0.01, centered=True)),
    ("RMSprop-momentum", lambda ps: O.RMSprop(ps, lr=0.01, momentum=0.9)),
    ("RMSprop-centered-momentum", lambda ps: O.RMSprop(ps, lr=0.01, momentum=0.5, centered=True)),
    ("Adagrad", lambda ps: O.Adagrad(ps, lr=0.1)),
    (
        "Adagrad-decay",
        lambda ps: O.Adagrad(ps, lr=0.1, lr_decay=0.05, initial_accumulator_value=0.1),
    ),
    ("SGD", lambda ps: O.SGD(ps, lr=0.1, momentum=0.9)),
]


def _setup(make, steps=6, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    model = model.double()  # float64: the update check below subtracts nearby numbers
    head, body = list(model[2].parameters()), list(model[0].parameters())
    opt = make([{"params": body}, {"params": head}])
    opt.param_groups[1]["lr"] *= 0.5
    x, y = torch.randn(32, 5).double(), torch.randn(32, 2).double()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x * (1 + 0.1 * torch.randn(1))), y).backward()
        opt.step()
    return model, opt, x, y


def _manual(opt, group, p):
    """The documented formula, written independently of the implementation."""
    st = opt.state[p]
    lr = group["lr"]
    if isinstance(opt, O.SGD):
        return torch.full_like(p, lr)
    t = float(st["step"])
    eps = group["eps"]
    if isinstance(opt, (O.Adam, O.AdamW, O.NAdam)):  # AdamW subclasses Adam from 2.5 only
        b2 = group["betas"][1]
        v = st["max_exp_avg_sq"] if group.get("amsgrad") else st["exp_avg_sq"]
        return lr / (torch.sqrt(v / (1 - b2**t)) + eps)
    if isinstance(opt, O.RAdam):
        b2 = group["betas"][1]
        rho_inf = 2 / (1 - b2) - 1
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho <= 5:
            return torch.full_like(p, lr)
        r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
        return lr * r * math.sqrt(1 - b2**t) / (torch.sqrt(st["exp_avg_sq"]) + eps)
    if isinstance(opt, O.Adamax):
        return lr / st["exp_inf"]
    if isinstance(opt, O.RMSprop):
        v = st["square_avg"]
        if group["centered"]:
            v = v - st["grad_avg"] ** 2
        return lr / (torch.sqrt(v) + eps)
    if isinstance(opt, O.Adagrad):
        return lr / (1 + (t - 1) * group["lr_decay"]) / (torch.sqrt(st["sum"]) + eps)
    raise AssertionError


@pytest.mark.parametrize("name, make", CASES, ids=[c[0] for c in CASES])
def test_equals_manual_computation(name, make):
    _, opt, _, _ = _setup(make)
    got = effective_lr(opt)
    params = [(g, p) for g in opt.param_groups for p in g["params"]]
    assert len(got) == len(params) == 4
    for s, (g, p) in zip(got, params):
        assert s.shape == p.shape and s.dtype == p.dtype
        assert torch.allclose(s, _manual(opt, g, p), rtol=1e-6, atol=0)
        assert torch.isfinite(s).all() and (s > 0).all()
    # param-group lr ratio shows up
    if name.startswith("SGD"):
        assert torch.equal(got[2], torch.full_like(got[2], 0.05))


def _direction(opt, group, p, grad, prev):
    """What the step size multiplies in the documented update ``p -= step_size * direction``."""
    st = opt.state[p]
    if isinstance(opt, O.SGD):
        return grad
    t = float(st["step"])
    if isinstance(opt, (O.Adam, O.AdamW, O.RAdam, O.Adamax)):
        return st["exp_avg"] / (1 - group["betas"][0] ** t)
    if isinstance(opt, O.NAdam):
        b1, md = group["betas"][0], group["momentum_decay"]
        mu = b1 * (1 - 0.5 * 0.96 ** (t * md))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * md))
        prod = float(st["mu_product"])
        return (1 - mu) / (1 - prod) * grad + mu_next / (1 - prod * mu_next) * st["exp_avg"]
    return grad


@pytest.mark.parametrize("name, make", CASES, ids=[c[0] for c in CASES])
def test_explains_the_actual_update(name, make):
    model, opt, x, y = _setup(make, steps=5, seed=1)
    for g in opt.param_groups:  # weight decay is a separate term, not part of the step size
        g["weight_decay"] = 0.0
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    params = [(g, p) for g in opt.param_groups for p in g["params"]]
    before = [p.detach().clone() for _, p in params]
    grads = [p.grad.detach().clone() for _, p in params]
    bufs = [
        opt.state[p].get("momentum_buffer", torch.zeros_like(p)).clone()
        if opt.state[p].get("momentum_buffer") is not None
        else torch.zeros_like(p)
        for _, p in params
    ]
    opt.step()
    sizes = effective_lr(opt)
    for (g, p), b, gr, s, buf in zip(params, before, grads, sizes, bufs):
        delta = b - p.detach()
        mom = g.get("momentum", 0.0)
        if isinstance(opt, (O.RMSprop, O.SGD)) and mom:
            delta = delta - g["lr"] * mom * buf  # the part carried over by momentum
        expected = s * _direction(opt, g, p, gr, None)
        assert torch.allclose(delta, expected, rtol=1e-9, atol=1e-15), name


def test_radam_unrectified_phase_is_plain_lr():
    _, opt, _, _ = _setup(lambda ps: O.RAdam(ps, lr=0.01), steps=3)  # rho_t <= 5 for t <= 5
    groups = [grp for grp in opt.param_groups for _ in grp["params"]]
    for s, g in zip(effective_lr(opt), groups):
        assert torch.equal(s, torch.full_like(s, g["lr"]))


def test_no_state_gives_nan_and_optimizer_untouched():
    model = torch.nn.Linear(3, 2)
    opt = O.Adam(model.parameters(), lr=0.1)
    sizes = effective_lr(opt)
    assert [s.shape for s in sizes] == [p.shape for p in model.parameters()]
    assert all(torch.isnan(s).all() for s in sizes)
    assert len(opt.state) == 0
    ada = O.Adagrad(model.parameters(), lr=0.1)  # Adagrad creates state (step 0) eagerly
    assert all(torch.isnan(s).all() for s in effective_lr(ada))
    # only the parameter that took a step gets a value
    w = torch.nn.Parameter(torch.ones(2))
    u = torch.nn.Parameter(torch.ones(2))
    opt2 = O.Adam([w, u], lr=0.1)
    w.grad = torch.ones(2)
    opt2.step()
    a, b = effective_lr(opt2)
    assert torch.isfinite(a).all() and torch.isnan(b).all()


def test_current_lr_and_tensor_lr():
    _, opt, _, _ = _setup(lambda ps: O.Adam(ps, lr=0.01), steps=2)
    before = effective_lr(opt)
    for g in opt.param_groups:
        g["lr"] = g["lr"] * 0.1
    after = effective_lr(opt)
    for a, b in zip(after, before):
        assert torch.allclose(a, b * 0.1, rtol=1e-6)
    opt_t = O.Adam(torch.nn.Linear(2, 2).parameters(), lr=torch.tensor(0.01))
    for p in opt_t.param_groups[0]["params"]:
        p.grad = torch.ones_like(p)
    opt_t.step()
    assert all(torch.isfinite(s).all() for s in effective_lr(opt_t))


def test_unsupported_optimizer():
    with pytest.raises(ValueError) as info:
        effective_lr(O.LBFGS(torch.nn.Linear(2, 2).parameters()))
    assert str(info.value) == (
        "optimizer must be one of torch.optim.Adam, AdamW, NAdam, RAdam, Adamax, RMSprop, "
        "Adagrad, SGD (or a subclass), got LBFGS"
    )


def test_effective_lr_refuses_complex_parameters():
    z = torch.nn.Parameter(torch.randn(3, dtype=torch.complex64))
    opt = O.Adam([z], lr=0.1)
    z.grad = torch.ones_like(z)
    opt.step()
    with pytest.raises(ValueError, match="^optimizer: complex parameters are not supported$"):
        effective_lr(opt)


def test_radam_at_rho_t_exactly_5_takes_the_plain_lr_step():
    """Rectification needs rho_t > 5: at rho_t == 5.0 exactly (beta2 chosen so at step 6)
    torch steps by lr * m_hat, and the step size reads lr."""
    b1, b2 = 0.9, 0.8397685748659791
    t = 6.0
    rho_inf = 2.0 / (1.0 - b2) - 1.0
    assert rho_inf - 2.0 * t * b2**t / (1.0 - b2**t) == 5.0
    w = torch.nn.Parameter(torch.linspace(-1, 1, 5, dtype=torch.float64))
    opt = O.RAdam([w], lr=0.01, betas=(b1, b2))
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        before = w.detach().clone()
        w.grad = torch.randn(5, generator=g, dtype=torch.float64)
        opt.step()
    (s,) = effective_lr(opt)
    assert torch.equal(s, torch.full_like(s, 0.01))
    m_hat = opt.state[w]["exp_avg"] / (1 - b1**t)
    assert torch.allclose(before - w.detach(), 0.01 * m_hat, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("foreach", "steps"),
    [
        (False, [False, True, True, False]),
        (None, [False, True, True, False]),  # on the CPU, torch's default is one at a time
        (True, [True, True, True, True]),
    ],
)
def test_float16_nadam_reads_the_step_it_takes(foreach, steps):
    """NAdam one tensor at a time divides v by bc2 before the square root: past float16's
    largest value (gradients above about 256) its step is 0, and so is the step size. Its
    foreach path takes the square roots first and steps: so does the step size, in
    ``effective_lr`` and in the logger."""
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float16))
    opt = O.NAdam([p], lr=1e-3, foreach=foreach)
    p.grad = torch.tensor([300.0, 10.0, 1.0, 1000.0], dtype=torch.float16)
    opt.step()
    (got,) = effective_lr(opt)
    assert torch.equal(p.detach() != 0, torch.tensor(steps))
    assert torch.equal(got > 0, torch.tensor(steps))
    assert torch.all(torch.isfinite(got))
    ((_, p5, p95),) = EffectiveLRLogger(opt, every=None, tensorboard=False).log().values()
    assert (p5 > 0) == all(steps)
    assert p95 == pytest.approx(float(np.percentile(got.double().numpy(), 95)), rel=1e-12)


def test_nadam_on_the_foreach_path_takes_the_square_roots_first():
    """In float32 both of torch's NAdam paths step alike, and the step size of each is its
    own rounding: sqrt(v) / sqrt(bc2) on the foreach path, sqrt(v / bc2) one at a time."""
    for foreach in (False, True):
        torch.manual_seed(0)
        p = torch.nn.Parameter(torch.zeros(64))
        opt = O.NAdam([p], lr=1e-3, betas=(0.9, 0.97), foreach=foreach)
        for _ in range(3):
            p.grad = torch.randn(64)
            opt.step()
        v, lr, eps = opt.state[p]["exp_avg_sq"], 1e-3, 1e-8
        bc2 = 1.0 - 0.97**3
        want = lr / (v.sqrt() / math.sqrt(bc2) + eps) if foreach else lr / ((v / bc2).sqrt() + eps)
        (got,) = effective_lr(opt)
        assert torch.equal(got, want)


def test_nadams_default_path_is_read_from_its_parameters_devices(monkeypatch):
    """With ``foreach=None`` torch takes the foreach path when every parameter is on a device
    with foreach kernels (CUDA and the like) and ``differentiable`` is off: the step size
    follows (here with the CPU counted as such a device)."""
    from lrkit.torch import _adaptive

    monkeypatch.setattr(_adaptive, "_FOREACH_DEVICES", frozenset({"cpu"}))
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float16))
    group = {"params": [p], "foreach": None, "differentiable": False}
    assert _adaptive._foreach(group)
    assert not _adaptive._foreach(dict(group, differentiable=True))
    assert not _adaptive._foreach(dict(group, foreach=False))
    meta = torch.empty(2, device="meta")
    assert not _adaptive._foreach(dict(group, params=[p, meta]))
    assert _adaptive._foreach(dict(group, params=[meta], foreach=True))
    opt = O.NAdam([p], lr=1e-3)
    p.grad = torch.tensor([300.0, 1.0], dtype=torch.float16)
    opt.step()
    assert torch.all(effective_lr(opt)[0] > 0)  # sqrt(v) / sqrt(bc2): no overflow


def test_nadams_default_path_is_read_from_the_parameters_torch_steps(monkeypatch):
    """torch decides the default path from the parameters that have a gradient at that step
    (all of them where none has, as after ``zero_grad()``), and takes the foreach path
    only for plain tensors."""
    from lrkit.torch import _adaptive

    class Marked(torch.Tensor):
        pass

    monkeypatch.setattr(_adaptive, "_FOREACH_DEVICES", frozenset({"cpu"}))
    p = torch.nn.Parameter(torch.zeros(2))
    meta = torch.nn.Parameter(torch.empty(2, device="meta"))
    group = {"params": [p, meta], "foreach": None, "differentiable": False}
    assert not _adaptive._foreach(group)
    p.grad = torch.zeros(2)
    assert _adaptive._foreach(group)
    meta.grad = torch.empty(2, device="meta")
    assert not _adaptive._foreach(group)
    marked = torch.zeros(2).as_subclass(Marked)
    marked.grad = torch.zeros(2)
    assert not _adaptive._foreach(dict(group, params=[p, marked]))


def test_exported_lazily():
    assert lt.effective_lr is effective_lr
    assert lt.EffectiveLRLogger is EffectiveLRLogger


class _Writer:
    def __init__(self):
        self.calls = []

    def add_scalar(self, tag, value, step):
        self.calls.append((tag, value, step))


@pytest.mark.parametrize("how", ["deepcopy", "pickle", "torch.save"])
def test_a_copied_logger_logs_the_steps_of_the_optimizer_it_holds(how: str) -> None:
    """An optimizer leaves its step hooks behind when copied: the copy of a logger (copied
    with its model and optimizer, or from a whole-object checkpoint) hooks itself onto the
    copied optimizer, and the original keeps logging its own."""
    import copy
    import io
    import pickle

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = O.Adam(model.parameters(), lr=1e-3)
    log = EffectiveLRLogger(opt, names=model, every=1, tensorboard=False)
    x = torch.randn(3, 4)

    def train(m: torch.nn.Module, o: torch.optim.Optimizer, n: int) -> None:
        for _ in range(n):
            o.zero_grad()
            m(x).sum().backward()
            o.step()

    train(model, opt, 3)
    if how == "deepcopy":
        model2, opt2, log2 = copy.deepcopy((model, opt, log))
    elif how == "pickle":
        model2, opt2, log2 = pickle.loads(pickle.dumps((model, opt, log)))
    else:
        buf = io.BytesIO()
        torch.save((model, opt, log), buf)
        buf.seek(0)
        model2, opt2, log2 = torch.load(buf, weights_only=False)
    assert log2.optimizer is opt2
    train(model2, opt2, 2)
    assert log2.steps == [1, 2, 3, 4, 5] and log.steps == [1, 2, 3]
    train(model, opt, 1)
    assert log.steps == [1, 2, 3, 4] and log2.steps == [1, 2, 3, 4, 5]
    log2.close()  # the copy's hook, not the original's
    train(model2, opt2, 1)
    train(model, opt, 1)
    assert log2.steps == [1, 2, 3, 4, 5] and log.steps == [1, 2, 3, 4, 5]
    # copy.copy: a second logger of the same optimizer, with a history of its own
    shallow = copy.copy(log)
    train(model, opt, 1)
    assert log.steps == [1, 2, 3, 4, 5, 6] and shallow.steps == [1, 2, 3, 4, 5, 6]
    assert len(log.history["weight"]["median"]) == 6
    shallow.close()
    train(model, opt, 1)
    assert log.steps == [1, 2, 3, 4, 5, 6, 7] and shallow.steps == [1, 2, 3, 4, 5, 6]
    # names given as pairs: a group added to the copied optimizer is named from them
    net = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Linear(2, 1))
    first = O.Adam(net[0].parameters(), lr=1e-3)
    paired = EffectiveLRLogger(first, names=list(net.named_parameters()), every=1,
                               tensorboard=False)  # fmt: skip
    net2, first2, paired2 = copy.deepcopy((net, first, paired))
    first2.add_param_group({"params": list(net2[1].parameters())})
    train(net2, first2, 1)
    assert paired2.names == ["0.weight", "0.bias", "1.weight", "1.bias"]
    # a logger without a hook (every=None, logging when called) stays without one
    plain = EffectiveLRLogger(opt, every=None, tensorboard=False)
    model3, opt3, plain3 = copy.deepcopy((model, opt, plain))
    train(model3, opt3, 1)
    assert plain3.steps == []


def test_logger_history_writer_and_hook(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 1))
    opt = O.Adam(model.parameters(), lr=0.01)
    w = _Writer()
    log = EffectiveLRLogger(opt, names=model, every=2, writer=w)
    assert log.names == ["0.weight", "0.bias", "1.weight", "1.bias"]
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    for _ in range(6):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    assert log.steps == [2, 4, 6]
    sizes = effective_lr(opt)
    import numpy as np

    a = sizes[0].numpy().ravel().astype(np.float64)
    med, p5, p95 = (
        log.history["0.weight"]["median"][-1],
        *[log.history["0.weight"][k][-1] for k in ("p5", "p95")],
    )
    assert (med, p5, p95) == tuple(float(q) for q in np.percentile(a, [50, 5, 95]))  # exact
    with pytest.raises(TypeError):
        EffectiveLRLogger(opt, model)  # names is keyword-only
    assert p5 <= med <= p95
    assert ("effective_lr/0.weight/median", med, 6) in w.calls
    assert len(w.calls) == 3 * 4 * 3
    log.close()
    for _ in range(2):
        opt.step()
    assert log.steps == [2, 4, 6]  # hook removed
    d = log.to_dict()
    assert d["steps"] == [2, 4, 6] and set(d["layers"]) == set(log.names)
    out = tmp_path / "elr.png"
    log.plot(out)
    assert out.stat().st_size > 1000
    log.plot(str(tmp_path / "elr2.png"), layers=["0.weight"])
    with pytest.raises(ValueError, match="layers"):
        log.plot(str(tmp_path / "x.png"), layers=["nope"])


def test_a_resumed_logger_counts_on_from_its_initial_step_and_plot_checks_its_arguments(
    tmp_path,
):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = O.Adam(model.parameters(), lr=0.01)
    w = _Writer()
    log = EffectiveLRLogger(opt, names=model, every=10, initial_step=50, writer=w)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    for _ in range(25):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    assert log.steps == [60, 70]  # the first run's cadence, on from its 50 steps
    assert sorted({step for _, _, step in w.calls}) == [60, 70]
    for bad in (-1, 1.5, "5"):
        with pytest.raises(ValueError, match=r"^initial_step must be an integer >= 0"):
            EffectiveLRLogger(opt, every=10, initial_step=bad, tensorboard=False)
    one = tmp_path / "one.png"
    log.plot(str(one), layers="weight")  # one layer's name, not its characters
    assert one.stat().st_size > 1000
    with pytest.raises(ValueError) as info:
        log.plot(3)
    assert str(info.value) == "path_or_ax must be a file name, a matplotlib Axes or None, got 3"
    with pytest.raises(ValueError) as info:
        log.plot(torch.zeros(2, 2))
    assert str(info.value) == (
        "path_or_ax must be a file name, a matplotlib Axes or None, got "
        "tensor([[0., 0.], [0., 0.]])"
    )
    log.close()


def test_lrfree_lr_of_something_that_is_no_optimizer_is_one_line():
    from lrkit.torch import lrfree_lr

    with pytest.raises(ValueError) as info:
        lrfree_lr(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()))
    assert str(info.value) == (
        "optimizer must be a torch optimizer (with param_groups), got Sequential"
    )


def _adam_with_state(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    ps = [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in shapes]
    opt = O.Adam(ps, lr=0.01)
    for _ in range(3):
        for p in ps:  # gradients of very different scales per element
            p.grad = torch.randn(p.shape, generator=g) * torch.rand(p.shape, generator=g) ** 4
        opt.step()
    return ps, opt


def test_logger_exact_mode_equals_numpy_percentiles():
    import numpy as np

    ps, opt = _adam_with_state([(300, 50), (7,), (1,)])
    opt.state[ps[1]]["exp_avg_sq"][2] = math.nan  # NaN elements are skipped
    log = EffectiveLRLogger(opt, sample=None, tensorboard=False)
    got = log.log()
    for name, s in zip(log.names, effective_lr(opt)):
        a = s.double().numpy().ravel()
        a = a[np.isfinite(a)]
        want = np.percentile(a, [50, 5, 95])
        assert got[name] == tuple(float(v) for v in want)  # bit for bit


def test_a_percentile_halfway_between_two_values_has_numpys_bits():
    """At weight 0.5 numpy interpolates down from the upper value: 0.7 - 0.6 * 0.5 is
    0.39999999999999997, where 0.1 + 0.6 * 0.5 would be 0.4."""
    from lrkit.torch._adaptive import _summaries

    row = [0.0, 0.0, 0.1, 0.7, 2.0, 2.0]
    ((median, p5, p95),) = _summaries([torch.tensor(row, dtype=torch.float64)])
    assert median == float(np.percentile(row, 50)) == 0.39999999999999997
    assert (p5, p95) == tuple(float(v) for v in np.percentile(row, [5, 95]))


def test_an_infinite_step_size_shows_in_the_percentiles_it_reaches():
    """An overflow (float16 Adam, tiny second moments) is what the logger is for: the
    percentiles it reaches read inf (numpy's would be NaN), the others stay numpy's."""
    import numpy as np

    from lrkit.torch._adaptive import _summaries

    inf = math.inf
    rows = [torch.tensor([1.0, 2.0, 3.0, inf]), torch.tensor([inf] * 3), torch.tensor([4.0])]
    rows.append(torch.tensor([math.nan, 1.0, inf]))
    got = _summaries(rows)
    assert got[0] == (2.5, float(np.percentile([1.0, 2.0, 3.0, 4.0], 5)), inf)
    assert got[1] == (inf, inf, inf) and got[2] == (4.0, 4.0, 4.0)
    assert got[3] == (inf, inf, inf)  # NaN skipped; between 1 and inf, any weight on inf: inf
    # the median of [1, 2, inf] is 2 exactly (no weight on inf; numpy's would be NaN)
    got = _summaries([torch.tensor([1.0, 2.0, inf])])
    assert got[0] == (2.0, float(np.percentile([1.0, 2.0, 3.0], 5)), inf)
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(1000, dtype=torch.float16))
    opt = O.Adam([w], lr=1e-3)
    log = EffectiveLRLogger(opt, tensorboard=False)
    g = torch.randn(1000) * 1e-2
    g[:200] *= 1e-3
    w.grad = g.half()
    opt.step()
    assert torch.isinf(effective_lr(opt)[0].float()).float().mean() > 0.5
    median, p5, p95 = log.log()["p0[1000]"]
    assert median == inf and p95 == inf and math.isfinite(p5)


def test_float16_adam_with_large_gradients_reads_the_step_it_takes():
    """v / bc2 past float16's largest value (gradients above about 256): the step size is
    computed in torch's order, square roots first, and reads the step Adam took, not 0."""
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float16))
    opt = O.Adam([p], lr=1e-3, foreach=False)
    p.grad = torch.tensor([300.0, 10.0, 1.0, 1000.0], dtype=torch.float16)
    opt.step()
    taken = -p.detach().float() / (opt.state[p]["exp_avg"].float() / 0.1)  # m / (1 - 0.9)
    got = effective_lr(opt)[0].float()
    assert torch.all(got > 0)
    assert torch.allclose(got, taken, rtol=2e-2)  # float16 rounding of the step taken


def test_logger_sampled_percentiles_within_the_documented_rank_tolerance():
    """Default sample of 4096 elements: each logged percentile is a value whose rank in the
    whole tensor is within SAMPLE_RANK_TOLERANCE of the percentile asked for; tensors with
    at most 4096 elements are summarised exactly; the global RNG is not touched."""
    import numpy as np

    from lrkit.torch._adaptive import SAMPLE_RANK_TOLERANCE

    ps, opt = _adam_with_state([(512, 512), (300, 40), (4096,), (64,)], seed=1)
    rng_before = torch.get_rng_state()
    log = EffectiveLRLogger(opt, tensorboard=False)
    assert log.sample == 4096 and SAMPLE_RANK_TOLERANCE == 0.03
    got = log.log()
    assert torch.equal(torch.get_rng_state(), rng_before)
    exact = EffectiveLRLogger(opt, sample=None, tensorboard=False).log()
    for name, s, p in zip(log.names, effective_lr(opt), ps):
        full = np.sort(s.double().numpy().ravel())
        if p.numel() <= 4096:
            assert got[name] == exact[name]
            continue
        assert got[name] != exact[name]  # really sampled
        for value, q in zip(got[name], (0.5, 0.05, 0.95)):
            below = np.searchsorted(full, value, side="left") / full.size
            upto = np.searchsorted(full, value, side="right") / full.size
            assert q - SAMPLE_RANK_TOLERANCE <= upto and below <= q + SAMPLE_RANK_TOLERANCE
    again = EffectiveLRLogger(opt, tensorboard=False).log()  # the same fixed sample (seed 0)
    assert again == got
    assert EffectiveLRLogger(opt, seed=1, tensorboard=False).log() != got
    with pytest.raises(ValueError, match="sample"):
        EffectiveLRLogger(opt, sample=10, tensorboard=False)


@pytest.mark.parametrize("name, make", CASES, ids=[c[0] for c in CASES])
def test_logger_sampled_percentiles_are_those_of_the_sampled_elements(name, make):
    """Each optimizer's state is read at the sampled elements only: the logged summary is
    numpy's percentiles of effective_lr at the indices the logger's generator draws."""
    from lrkit.torch._adaptive import _sample_indices

    w = torch.nn.Parameter(torch.randn(100, 100, dtype=torch.float64))
    opt = make([w])
    g = torch.Generator().manual_seed(0)
    for _ in range(7):  # RAdam rectified from step 6 on
        w.grad = torch.randn(100, 100, generator=g, dtype=torch.float64)
        w.grad *= torch.rand(100, 100, generator=g, dtype=torch.float64) ** 4
        opt.step()
    log = EffectiveLRLogger(opt, tensorboard=False)
    idx = _sample_indices(w.numel(), 4096, torch.Generator().manual_seed(0))
    (s,) = effective_lr(opt)
    want = np.percentile(s.reshape(-1)[idx].numpy(), [50, 5, 95])
    assert log.log()["p0[100x100]"] == tuple(float(v) for v in want)


def test_logger_names_and_validation():
    model = torch.nn.Linear(2, 2)
    other = torch.nn.Linear(2, 2)
    opt = O.Adam(model.parameters())
    log = EffectiveLRLogger(opt, tensorboard=False)
    assert log.names == ["p0[2x2]", "p1[2]"]
    assert log.log()["p0[2x2]"][0] != log.log()["p0[2x2]"][0]  # NaN before the first step
    assert EffectiveLRLogger(opt, names=["w", "b"], tensorboard=False).names == ["w", "b"]
    with pytest.raises(ValueError, match="names"):
        EffectiveLRLogger(opt, names=other, tensorboard=False)
    with pytest.raises(ValueError, match="names"):
        EffectiveLRLogger(opt, names=["w"], tensorboard=False)
    with pytest.raises(ValueError, match="every"):
        EffectiveLRLogger(opt, every=0, tensorboard=False)
    with pytest.raises(ValueError, match="tensorboard"):
        EffectiveLRLogger(opt, tensorboard="yes")


class _ClosableWriter:
    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []
        self.flushed = self.closed = 0

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        self.flushed += 1

    def close(self):
        self.closed += 1


def test_logger_close_closes_only_its_own_writer(monkeypatch):
    from lrkit.torch import _adaptive

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    mine = _ClosableWriter()
    log = EffectiveLRLogger(opt, names=model, writer=mine)
    log.close()
    assert mine.flushed == 1 and mine.closed == 0 and log.writer is mine  # yours stays open
    own = _ClosableWriter()
    monkeypatch.setattr(_adaptive, "_tensorboard_writer", lambda log_dir: own)
    log = EffectiveLRLogger(opt, names=model)  # tensorboard="auto": the logger made this writer
    assert log.writer is own
    log.close()
    log.close()  # idempotent
    assert own.flushed == 1 and own.closed == 1 and log.writer is None


def test_logger_plot_to_file_keeps_the_matplotlib_backend(tmp_path, monkeypatch):
    import matplotlib

    def no_backend_switch(*a, **k):
        raise AssertionError("matplotlib.use() switches the caller's backend")

    monkeypatch.setattr(matplotlib, "use", no_backend_switch)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    log = EffectiveLRLogger(opt, names=model, tensorboard=False)
    for _ in range(3):
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
        log.log()
    log.plot(tmp_path / "e.png")
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "kw, error, message",
    [
        ({"seed": "a"}, ValueError, r"^seed must be an integer in \[0, 4294967295\], got 'a'$"),
        ({"seed": 1.7}, ValueError, r"^seed must be an integer in \[0, 4294967295\], got 1.7$"),
        ({"seed": None}, ValueError, r"^seed must be an integer in \[0, 4294967295\], got None$"),
        ({"seed": 2**64}, ValueError, r"^seed must be an integer in \[0, 4294967295\], got "),
        ({"names": 5}, ValueError, r"^names must be a module, \(name, param\) pairs"),
        ({"writer": 5}, TypeError, r"^writer must have an add_scalar\(tag, value, step\) method"),
        ({"sample": 99}, ValueError, r"^sample must be an integer >= 100 or None, got 99$"),
        ({"sample": 500.5}, ValueError, r"^sample must be an integer >= 100 or None, got 500.5$"),
        ({"every": True}, ValueError, r"^every must be an integer >= 1 or None, got True$"),
        ({"every": 2.0}, ValueError, r"^every must be an integer >= 1 or None, got 2.0$"),
    ],
)
def test_effective_lr_logger_bad_inputs_name_the_parameter(kw, error, message):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with pytest.raises(error, match=message):
        lt.EffectiveLRLogger(opt, tensorboard=False, **kw)


def test_logger_takes_the_smallest_sample_it_documents():
    opt = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    assert EffectiveLRLogger(opt, sample=100, tensorboard=False).sample == 100


def test_logger_names_it_refuses_say_why():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError) as info:
        EffectiveLRLogger(opt, names="wb", tensorboard=False)  # a string, not two names
    assert str(info.value) == (
        "names must be a module, (name, param) pairs or one string per parameter, got 'wb'"
    )
    with pytest.raises(ValueError) as info:
        EffectiveLRLogger(opt, names=[1, 2], tensorboard=False)
    assert str(info.value) == (
        "names must be a module, (name, parameter) pairs, or 2 strings (one per optimizer "
        "parameter), got 2 entries"
    )
    many = torch.optim.Adam([torch.nn.Parameter(torch.ones(2)) for _ in range(7)])
    with pytest.raises(ValueError) as info:
        EffectiveLRLogger(many, names=model, tensorboard=False)
    assert str(info.value) == (
        "names: no name for the optimizer's parameter(s) [0, 1, 2, 3, 4] (pass the model whose "
        "parameters the optimizer holds, or model.named_parameters())"
    )


def test_logger_names_from_a_mapping_follow_the_optimizer_not_the_mapping_order():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    backwards = dict(reversed(list(model.named_parameters())))
    assert list(backwards) == ["bias", "weight"]
    log = EffectiveLRLogger(opt, names=backwards, tensorboard=False)
    assert log.names == ["weight", "bias"]


def test_logger_default_names_of_scalar_parameters():
    a, b = torch.nn.Parameter(torch.tensor(1.0)), torch.nn.Parameter(torch.ones(3))
    opt = O.Adam([a, b], lr=0.1)
    log = EffectiveLRLogger(opt, every=1, tensorboard=False)
    assert log.names == ["p0[scalar]", "p1[3]"]
    opt.add_param_group({"params": [torch.nn.Parameter(torch.tensor(2.0))]})
    log.log()
    assert log.names == ["p0[scalar]", "p1[3]", "g1.p0[scalar]"]


def test_logger_tensorboard_setting_decides_whether_it_makes_a_writer(monkeypatch):
    from lrkit.torch import _adaptive

    opt = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    made = []
    monkeypatch.setattr(_adaptive, "_tensorboard_writer", lambda log_dir: made.append(log_dir))
    assert EffectiveLRLogger(opt, tensorboard=False).writer is None
    assert made == []
    # tensorboard not installed (no writer made): "auto" goes without, True says what to install
    assert EffectiveLRLogger(opt, tensorboard="auto", log_dir="runs/x").writer is None
    assert made == ["runs/x"]
    with pytest.raises(ImportError) as info:
        EffectiveLRLogger(opt, tensorboard=True)
    assert str(info.value).startswith("EffectiveLRLogger(tensorboard=True) needs tensorboard: ")
    assert info.value.name == "tensorboard"


def test_logger_refuses_one_name_for_two_parameters():
    enc, dec = (
        torch.nn.Sequential(torch.nn.Linear(4, 8)),
        torch.nn.Sequential(torch.nn.Linear(8, 4)),
    )
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()])
    pairs = [*enc.named_parameters(), *dec.named_parameters()]  # '0.weight' twice
    with pytest.raises(ValueError, match=r"^names: '0\.weight' names more than one parameter"):
        EffectiveLRLogger(opt, names=pairs, tensorboard=False)
    with pytest.raises(ValueError, match=r"^names: 'a' names more than one parameter"):
        EffectiveLRLogger(opt, names=["a", "a", "b", "c"], tensorboard=False)
    ok = [(f"enc.{n}", p) for n, p in enc.named_parameters()]
    ok += [(f"dec.{n}", p) for n, p in dec.named_parameters()]
    log = EffectiveLRLogger(opt, names=ok, tensorboard=False)
    assert log.names == ["enc.0.weight", "enc.0.bias", "dec.0.weight", "dec.0.bias"]


def test_logger_plot_with_nothing_finite_says_so(tmp_path):
    pytest.importorskip("matplotlib")
    opt = torch.optim.Adam(torch.nn.Linear(10, 3).parameters())
    log = EffectiveLRLogger(opt, tensorboard=False)
    ax = log.plot(str(tmp_path / "none.png"))  # nothing logged
    assert [t.get_text() for t in ax.texts] == ["no finite step size logged yet"]
    log.log()  # before any step: every value NaN
    ax = log.plot(str(tmp_path / "nan.png"))
    assert ax.get_yscale() == "linear" and (tmp_path / "nan.png").exists()


def test_the_sample_of_a_large_parameter_is_uniform_distinct_and_cheap():
    """Beyond 16 times ``sample`` elements the indices come from O(sample) draws, not a
    permutation of the whole parameter: distinct, sorted, in range, fixed by the seed and
    spread uniformly (10 equal bins of the index range, 300 samples)."""
    from lrkit.torch._adaptive import _sample_indices

    n, k = 1_000_003, 4096
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(10)
    for _ in range(300):
        idx = _sample_indices(n, k, gen)
        assert idx is not None and idx.numel() == k and idx.dtype == torch.int64
        assert torch.equal(idx, idx.unique())  # sorted and distinct
        assert 0 <= int(idx[0]) and int(idx[-1]) < n
        counts += torch.bincount(idx * 10 // n, minlength=10)
    expected = 300 * k / 10
    assert float((counts - expected).abs().max()) < 0.01 * expected
    first = _sample_indices(n, k, torch.Generator().manual_seed(5))
    assert torch.equal(first, _sample_indices(n, k, torch.Generator().manual_seed(5)))
    assert _sample_indices(k, k, gen) is None
    small = _sample_indices(3 * k, k, gen)  # a permutation where n is small
    assert small is not None and torch.equal(small, small.unique()) and small.numel() == k


def test_the_logger_refuses_complex_parameters_when_built_and_log_checks_its_step():
    z = torch.nn.Parameter(torch.randn(3, dtype=torch.complex64))
    opt = torch.optim.Adam([z], lr=0.1)
    with pytest.raises(ValueError, match="^optimizer: complex parameters are not supported$"):
        EffectiveLRLogger(opt, tensorboard=False)
    _, opt = _adam_with_state([(4, 3)], seed=0)
    log = EffectiveLRLogger(opt, tensorboard=False)
    for bad in ("x", 2.9, -1, True):
        with pytest.raises(ValueError, match=r"^step must be an integer >= 0"):
            log.log(bad)
    assert log.steps == []
    log.log(2.0)
    assert log.steps == [2] and type(log.steps[0]) is int


def _unfreezing(logged, add_at=2, steps=6):
    """Adam on a head, then the backbone added as a param group (progressive unfreezing)."""
    torch.manual_seed(0)
    backbone, head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
    opt = O.Adam(head.parameters(), lr=1e-2)
    log = EffectiveLRLogger(opt, every=1, sample=None, tensorboard=False) if logged else None
    x, y = torch.randn(16, 4), torch.randn(16, 2)
    expected = []
    for i in range(steps):
        if i == add_at:
            opt.add_param_group({"params": backbone.parameters(), "lr": 1e-3})
        opt.zero_grad()
        torch.nn.functional.mse_loss(head(backbone(x)), y).backward()
        opt.step()
        sizes = effective_lr(opt)
        expected.append([np.percentile(s.double().numpy().ravel(), [50, 5, 95]) for s in sizes])
    return backbone, head, log, expected


def test_logger_picks_up_a_param_group_added_after_it_was_built():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither an error nor a warning from the step
        backbone, head, log, expected = _unfreezing(True)
    b2, h2, _, _ = _unfreezing(False)
    trained = [*backbone.parameters(), *head.parameters()]
    for p, q in zip(trained, [*b2.parameters(), *h2.parameters()]):
        assert torch.equal(p, q)
    assert log.steps == [1, 2, 3, 4, 5, 6]
    assert log.names == ["p0[2x4]", "p1[2]", "g1.p0[4x4]", "g1.p1[4]"]
    for j, name in enumerate(log.names):
        h = log.history[name]
        for i in range(6):
            got = (h["median"][i], h["p5"][i], h["p95"][i])
            if j >= 2 and i < 2:  # not in the optimizer yet
                assert all(math.isnan(v) for v in got)
            else:
                assert got == tuple(float(v) for v in expected[i][j])


def test_logger_names_an_added_parameter_from_the_module_it_was_given():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    opt = O.Adam(model[1].parameters(), lr=1e-2)
    log = EffectiveLRLogger(opt, names=model, every=1, tensorboard=False)
    opt.add_param_group({"params": model[0].parameters()})
    opt.zero_grad()
    model(torch.randn(8, 4)).sum().backward()
    opt.step()
    assert log.names == ["1.weight", "1.bias", "0.weight", "0.bias"]
    assert all(math.isfinite(log.history[n]["median"][-1]) for n in log.names)


def test_logger_stops_with_one_warning_when_a_parameter_leaves_the_optimizer():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
    opt = O.Adam([{"params": a.parameters()}, {"params": b.parameters()}], lr=1e-2)
    log = EffectiveLRLogger(opt, every=1, tensorboard=False)
    x = torch.randn(8, 4)

    def step():
        opt.zero_grad()
        b(a(x)).sum().backward()
        opt.step()

    step()
    del opt.param_groups[0]
    with pytest.warns(RuntimeWarning) as caught:
        step()
        step()
    assert [str(w.message) for w in caught] == [
        "EffectiveLRLogger: automatic logging stopped at step 2 (ValueError: optimizer: 2 of "
        "the parameters the logger was built on are no longer in it; build a new "
        "EffectiveLRLogger)"
    ]
    assert log.steps == [1]


def test_an_automatic_logger_does_not_count_the_steps_of_a_range_test() -> None:
    """find_lr's throwaway steps are neither logged nor counted: the next training step is
    still step 1."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = O.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    data = [(x[i : i + 16], (x[i : i + 16, 0] > 0).long()) for i in range(0, 64, 16)]
    logger = EffectiveLRLogger(opt, every=1, tensorboard=False)
    lt.find_lr(model, opt, torch.nn.functional.cross_entropy, data, num_iter=10, warn=False)
    assert logger.steps == [] and not opt.state
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(data[0][0]), data[0][1]).backward()
    opt.step()
    assert logger.steps == [1]
    logger.close()


def test_a_shallow_copy_of_a_logger_names_a_group_added_later_on_its_own():
    import copy

    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
    opt = O.Adam(b.parameters(), lr=1e-2)
    log = EffectiveLRLogger(opt, every=1, sample=None, tensorboard=False)
    twin = copy.copy(log)
    opt.add_param_group({"params": a.parameters()})
    b(a(torch.randn(8, 4))).sum().backward()
    opt.step()
    names = ["p0[2x4]", "p1[2]", "g1.p0[4x4]", "g1.p1[4]"]
    assert log.names == names and twin.names == names
    assert log.to_dict() == twin.to_dict()
    assert all(math.isfinite(v) for h in log.history.values() for v in h["median"])
    log.close()
    twin.close()


def test_a_shallow_copy_and_the_original_each_sample_the_groups_added_later() -> None:
    """Each logger keeps its own samples: after two groups added (progressive unfreezing)
    both summarise every parameter as a logger built on the final optimizer does."""
    import copy

    torch.manual_seed(0)
    a, b, c = torch.nn.Linear(40, 40), torch.nn.Linear(40, 2), torch.nn.Linear(30, 10)
    opt = O.Adam(b.parameters(), lr=1e-2)
    log = EffectiveLRLogger(opt, sample=100, tensorboard=False)
    twin = copy.copy(log)
    opt.add_param_group({"params": a.parameters()})
    log.log()
    twin.log()
    opt.add_param_group({"params": c.parameters()})
    b(a(torch.randn(8, 40))).sum().backward()
    c(torch.randn(4, 30)).sum().backward()
    opt.step()
    want = list(EffectiveLRLogger(opt, sample=100, tensorboard=False).log().values())
    assert list(log.log().values()) == want
    assert list(twin.log().values()) == want


def test_logger_an_added_parameter_whose_default_name_is_taken_gets_a_suffix():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
    opt = O.Adam(b.parameters(), lr=1e-2)
    log = EffectiveLRLogger(opt, names=["g1.p0[4x4]", "g1.p1[4]"], tensorboard=False)
    log.log()
    opt.add_param_group({"params": a.parameters()})
    log.log()
    assert log.names == ["g1.p0[4x4]", "g1.p1[4]", "g1.p0[4x4]#2", "g1.p1[4]#2"]
    assert all(len(log.history[n]["median"]) == 2 for n in log.names)


def test_logger_log_counts_its_logs_and_writes_tags_tensorboard_accepts():
    opt = O.Adam(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    w = _Writer()
    log = EffectiveLRLogger(opt, writer=w)
    log.log()
    log.log()
    assert log.steps == [0, 1]
    assert sorted({tag for tag, _, _ in w.calls}) == [
        f"effective_lr/{layer}/{key}"
        for layer in ("p0_2x3_", "p1_2_")
        for key in ("median", "p5", "p95")
    ]
    d = log.to_dict()  # a copy: changing it leaves the logger's history as it is
    d["steps"].append(2)
    d["layers"]["p1[2]"]["median"].append(0.0)
    assert log.steps == [0, 1] and len(log.history["p1[2]"]["median"]) == 2


def test_logger_as_a_context_manager_stops_logging_on_exit():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = O.Adam(model.parameters(), lr=1e-3)
    w = _ClosableWriter()
    with EffectiveLRLogger(opt, every=1, writer=w) as log:
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
    opt.step()
    assert log.steps == [1] and w.flushed == 1 and w.closed == 0


def test_logger_plot_title_axes_given_twice_and_zero_step_sizes():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    model = torch.nn.Linear(3, 2)
    opt = O.SGD(model.parameters(), lr=0.0)  # a frozen model: every step size is 0
    log = EffectiveLRLogger(opt, tensorboard=False)
    log.log()
    ax = Figure().subplots()
    assert log.plot(ax, title="frozen run") is ax and ax.get_title() == "frozen run"
    assert ax.get_yscale() == "linear"  # 0 has no place on a log axis
    ax2 = Figure().subplots()
    assert log.plot(ax=ax2).get_title() == "SGD: per-element step size"
    with pytest.raises(ValueError) as info:
        log.plot(ax, ax=ax2)
    assert str(info.value) == "ax: the axes are given twice (as the first argument and as ax=)"


def test_a_logger_resumed_from_its_state_dict_goes_on_as_the_uninterrupted_one() -> None:
    x, y = torch.randn(32, 10, generator=torch.Generator().manual_seed(0)), torch.arange(32) % 2

    def made() -> tuple[Any, Any]:
        torch.manual_seed(0)
        m = torch.nn.Linear(10, 2)
        return m, torch.optim.Adam(m.parameters(), lr=1e-3)

    def train(m: Any, o: Any, n: int) -> None:
        for _ in range(n):
            o.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
            o.step()

    m, o = made()
    whole = lt.EffectiveLRLogger(o, names=m, every=5, tensorboard=False, sample=100)
    train(m, o, 20)
    m, o = made()
    first = lt.EffectiveLRLogger(o, names=m, every=5, tensorboard=False, sample=100)
    train(m, o, 10)
    ck = json.loads(json.dumps({"elr": first.state_dict()}))
    saved = {"model": copy.deepcopy(m.state_dict()), "opt": copy.deepcopy(o.state_dict())}
    m2, o2 = made()
    m2.load_state_dict(saved["model"])
    o2.load_state_dict(saved["opt"])
    log = lt.EffectiveLRLogger(o2, names=m2, every=5, tensorboard=False, sample=100)
    log.load_state_dict(ck["elr"])
    train(m2, o2, 10)
    assert log.steps == whole.steps == [5, 10, 15, 20]
    assert log.to_dict() == whole.to_dict()
    before = log.state_dict()
    for bad, says in [
        ({"steps": []}, "state_dict must be a state_dict() of an EffectiveLRLogger"),
        ({**before, "layers": {"other": {}}}, "names layers this logger does not have: ['other']"),
        ({**before, "layers": {"weight": {"median": [1.0]}}}, "must hold median, p5 and p95"),
        ({**before, "step": -1}, "state['step']"),
    ]:
        with pytest.raises(ValueError, match=re.escape(says)):
            log.load_state_dict(bad)
        assert log.state_dict() == before


@pytest.mark.parametrize("named", [True, False])
@pytest.mark.parametrize("built", ["before_the_group", "after_the_group"])
def test_a_logger_resumes_a_run_that_added_a_param_group(named: bool, built: str) -> None:
    """The first run unfroze a layer (add_param_group); the resumed logger is built on the
    resumed optimizer before or after the group is added back, named or by default names."""

    def made() -> tuple[Any, Any, Any]:
        torch.manual_seed(0)
        a, b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
        return a, b, torch.nn.Sequential(a, b)

    def train(a: Any, b: Any, o: Any, n: int) -> None:
        g = torch.Generator().manual_seed(n)
        for _ in range(n):
            o.zero_grad()
            b(a(torch.randn(8, 4, generator=g))).pow(2).mean().backward()
            o.step()

    def logger(o: Any, m: Any) -> Any:
        return lt.EffectiveLRLogger(o, names=m if named else None, every=2, tensorboard=False)

    a, b, m = made()
    o = torch.optim.Adam(a.parameters(), lr=1e-3)
    log = logger(o, m)
    train(a, b, o, 4)
    o.add_param_group({"params": list(b.parameters())})
    train(a, b, o, 4)
    state, opt_state = copy.deepcopy(log.state_dict()), copy.deepcopy(o.state_dict())
    a2, b2, m2 = made()
    o2 = torch.optim.Adam(a2.parameters(), lr=1e-3)
    if built == "before_the_group":
        log2 = logger(o2, m2)
    o2.add_param_group({"params": list(b2.parameters())})
    o2.load_state_dict(opt_state)
    if built == "after_the_group":
        log2 = logger(o2, m2)
    log2.load_state_dict(state)
    assert log2.steps == [2, 4, 6, 8] and log2._count == 8
    before = {n: h["median"] for n, h in log.history.items()}
    after = {n: h["median"] for n, h in log2.history.items()}
    assert len(after) == 4 and sorted(map(str, after.values())) == sorted(map(str, before.values()))


def test_the_writer_gets_each_percentile_under_its_own_tag() -> None:
    (w,), opt = _adam_with_state([(6, 5)], seed=0)
    writer = _Writer()
    log = EffectiveLRLogger(opt, writer=writer)
    ((med, p5, p95),) = log.log(3).values()
    assert p5 < med < p95
    assert writer.calls == [
        ("effective_lr/p0_6x5_/median", med, 3),
        ("effective_lr/p0_6x5_/p5", p5, 3),
        ("effective_lr/p0_6x5_/p95", p95, 3),
    ]


def test_a_checkpoint_of_a_logger_built_with_two_groups_resumes_one_built_with_one() -> None:
    """The first logger was built after a group was added (default names ``g0.p0[...]``);
    the resumed one before it is added back (``p0[...]``): the layers are read as the same."""

    def made() -> tuple[Any, Any]:
        torch.manual_seed(0)
        return torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

    def train(a: Any, b: Any, o: Any) -> None:
        g = torch.Generator().manual_seed(0)
        for _ in range(4):
            o.zero_grad()
            b(a(torch.randn(8, 4, generator=g))).pow(2).mean().backward()
            o.step()

    a, b = made()
    o = O.Adam(a.parameters(), lr=1e-3)
    o.add_param_group({"params": list(b.parameters())})
    first = EffectiveLRLogger(o, every=2, tensorboard=False)
    train(a, b, o)
    assert first.names == ["g0.p0[4x4]", "g0.p1[4]", "g1.p0[2x4]", "g1.p1[2]"]
    a2, b2 = made()
    o2 = O.Adam(a2.parameters(), lr=1e-3)
    log = EffectiveLRLogger(o2, every=2, tensorboard=False)
    o2.add_param_group({"params": list(b2.parameters())})
    o2.load_state_dict(o.state_dict())
    log.load_state_dict(first.state_dict())
    assert log.names == ["p0[4x4]", "p1[4]", "g1.p0[2x4]", "g1.p1[2]"]
    assert log.steps == [2, 4]
    assert [log.history[n] for n in log.names] == [first.history[n] for n in first.names]


def test_a_layer_the_checkpoint_lacks_is_nan_and_a_short_history_is_refused() -> None:
    model = torch.nn.Linear(3, 2)
    opt = O.Adam(model.parameters(), lr=1e-3)
    log = EffectiveLRLogger(opt, names=model, tensorboard=False)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    log.log(1)
    log.log(2)
    state = log.state_dict()
    resumed = EffectiveLRLogger(opt, names=model, tensorboard=False)
    resumed.load_state_dict({**state, "layers": {"weight": state["layers"]["weight"]}})
    assert resumed.steps == [1, 2]
    assert resumed.history["weight"] == log.history["weight"]
    nan = resumed.history["bias"]
    assert set(nan) == {"median", "p5", "p95"}
    assert all(len(v) == 2 and all(math.isnan(x) for x in v) for v in nan.values())
    short = {**state["layers"], "bias": {k: v[:1] for k, v in state["layers"]["bias"].items()}}
    before = resumed.state_dict()
    with pytest.raises(ValueError) as info:
        resumed.load_state_dict({**state, "layers": short})
    assert str(info.value) == "state['layers']['bias'] must hold one value per step saved (2)"
    assert repr(resumed.state_dict()) == repr(before)  # (NaN != NaN: compared as text)
