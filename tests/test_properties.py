"""Property tests over the public API (hypothesis).

* random schedules (every family, nested composites): the scalar and vectorized paths agree,
  ``str``/``parse`` and ``to_dict``/``from_dict`` round-trip to equal schedules with equal values,
  the value at any step is finite (or ``inf`` on both paths for a growing ``gamma``), and a bad
  step is a ``ValueError``;
* random spec strings (mutations of valid ones): a schedule or a ``ValueError``, nothing else;
* random ``lrkit.torch.find_lr`` setups (param groups, loss-module parameters, BatchNorm,
  accumulation, AMP, validation data, an interrupt at a random step): everything the model and
  the optimizer hold comes back bit for bit;
* random scheduler resume points (feedback, momentum, groups): the resumed LRs are identical.
"""

from __future__ import annotations

import copy
import math
import random
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lrkit import schedules as S

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

lrs = st.floats(1e-6, 1.0)
decays = st.floats(0.5, 1.0)
steps_int = st.integers(1, 500)


def _build(cls: Any, *args: Any, **kwargs: Any) -> S.Schedule:
    try:
        return cls(*args, **kwargs)
    except ValueError:
        assume(False)
        raise  # pragma: no cover


@st.composite
def families(draw: st.DrawFn) -> S.Schedule:
    kind = draw(st.integers(0, 16))
    lr = draw(lrs)
    n = draw(steps_int)
    if kind == 0:
        return S.constant(lr)
    if kind == 1:
        return S.step(lr, step_size=draw(st.integers(1, 50)), gamma=draw(decays))
    if kind == 2:
        ms = sorted(draw(st.lists(st.integers(1, 400), max_size=4)))
        return S.multistep(lr, milestones=ms, gamma=draw(decays))
    if kind == 3:
        return S.exponential(lr, gamma=draw(st.floats(0.9, 1.0)))
    if kind == 4:
        return S.inverse_time(
            lr,
            decay_steps=draw(st.floats(1, 100)),
            decay_rate=draw(st.floats(0, 2)),
            staircase=draw(st.booleans()),
        )
    if kind == 5:
        return S.polynomial(
            lr,
            total_steps=n,
            power=draw(st.floats(0, 3)),
            end_lr=draw(st.floats(0, 1e-3)),
            cycle=draw(st.booleans()),
        )
    if kind == 6:
        return S.linear(lr, end_lr=draw(lrs), total_steps=n)
    if kind == 7:
        return S.cosine(lr, total_steps=n, eta_min=draw(st.floats(0, 1e-6)))
    if kind == 8:
        return S.cosine_restarts(
            lr,
            T_0=draw(st.integers(1, 40)),
            T_mult=draw(st.integers(1, 3)),
            eta_min=draw(st.floats(0, 1e-6)),
            m_mul=draw(st.floats(0.1, 1.0)),
        )
    if kind == 9:
        base = draw(st.floats(0, 1e-3))
        return _build(
            S.cyclic,
            base,
            max_lr=base + lr,
            step_size_up=draw(st.integers(1, 40)),
            step_size_down=draw(st.one_of(st.none(), st.integers(1, 40))),
            mode=draw(st.sampled_from(["triangular", "triangular2", "exp_range"])),
            gamma=draw(st.floats(0.99, 1.0)),
        )
    if kind == 10:
        return _build(
            S.onecycle,
            lr,
            total_steps=draw(st.integers(10, 500)),
            pct_start=draw(st.floats(0.05, 0.45)),
            anneal_strategy=draw(st.sampled_from(["cos", "linear"])),
            three_phase=draw(st.booleans()),
        )
    if kind == 11:
        return _build(
            S.onecycle_momentum,
            draw(st.integers(10, 500)),
            pct_start=draw(st.floats(0.05, 0.45)),
            three_phase=draw(st.booleans()),
        )
    if kind == 12:
        return S.inverse_sqrt(lr, warmup_steps=draw(st.integers(0, 50)))
    if kind == 13:
        bs = sorted(set(draw(st.lists(st.integers(0, 400), max_size=3))))
        return S.piecewise_constant(bs, values=[draw(lrs) for _ in range(len(bs) + 1)])
    if kind == 14:
        return _build(
            S.wsd,
            lr,
            total_steps=n,
            warmup_steps=draw(st.integers(0, 20)),
            decay_steps=draw(st.one_of(st.none(), st.integers(1, 100))),
            decay=draw(st.sampled_from(["linear", "cosine", "1-sqrt"])),
        )
    if kind == 15:
        mode = draw(st.sampled_from(["linear", "exponential", "cosine"]))
        return S.warmup(lr, end_lr=draw(lrs), warmup_steps=n, mode=mode)
    return S.with_warmup(S.cosine(lr, total_steps=n), warmup_steps=draw(st.integers(1, 50)))


def _compose(children: st.SearchStrategy[S.Schedule]) -> st.SearchStrategy[S.Schedule]:
    pair = st.tuples(children, children)
    return st.one_of(
        st.builds(lambda ab: S.mul(*ab), pair),
        st.builds(lambda ab: S.add(*ab), pair),
        st.builds(lambda ab: S.sub(ab[0], b=ab[1]), pair),
        st.builds(lambda s, f: S.scale(s, factor=f), children, st.floats(0, 10)),
        st.builds(lambda s, lo: S.clamp(s, min_lr=lo), children, st.floats(0, 1e-3)),
        st.builds(
            lambda ab, b: S.join(list(ab), boundaries=[b]),
            pair,
            st.integers(1, 300),
        ),
    )


schedules = st.recursive(families(), _compose, max_leaves=4)
steps = st.one_of(
    st.integers(0, 2000),
    st.floats(0, 1e6),
    st.sampled_from([0, 1, 2**31, 2**53, 1e15, 1e100, 1e300]),
)


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return False
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@FAST
@given(s=schedules, ts=st.lists(steps, min_size=1, max_size=8))
def test_scalar_equals_vector_and_finite_at_any_step(s: S.Schedule, ts: list[float]) -> None:
    vec = s.values(ts)
    assert vec.shape == (len(ts),) and vec.dtype == np.float64
    for t, v in zip(ts, vec):
        x = s(t)
        assert isinstance(x, float)
        assert math.isfinite(x), (str(s), t, x)
        assert _close(x, float(v)), (str(s), t, x, v)


#: numpy 1.x evaluates an array's cos with SIMD code whose last bits can differ from the scalar
#: path's (amplified where 1 + cos(x) cancels); numpy 2 agrees bit for bit, as the docs say
_NUMPY_1 = int(np.__version__.split(".")[0]) < 2


def _same_bits(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


powers = st.one_of(
    st.builds(lambda lr, g: S.exponential(lr, gamma=g), lrs, st.floats(0.01, 3.0)),
    st.builds(
        lambda lr, n, g: S.step(lr, step_size=n, gamma=g),
        lrs,
        st.integers(1, 50),
        st.floats(0.01, 3.0),
    ),
    st.builds(
        lambda lr, n, p, c: S.polynomial(lr, total_steps=n, power=p, end_lr=1e-4, cycle=c),
        lrs,
        steps_int,
        st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]), st.floats(0, 5)),
        st.booleans(),
    ),
    st.builds(
        lambda lr, up, down, mode, g: S.cyclic(
            lr, max_lr=2 * lr, step_size_up=up, step_size_down=down, mode=mode, gamma=g
        ),
        lrs,
        st.one_of(st.integers(1, 40), st.floats(1, 40)),
        st.one_of(st.none(), st.integers(1, 40)),
        st.sampled_from(["triangular", "triangular2", "exp_range"]),
        st.floats(0.5, 2.0),
    ),
    st.builds(
        lambda lr, t0, tm, mm: S.cosine_restarts(lr, T_0=t0, T_mult=tm, m_mul=mm),
        lrs,
        st.integers(1, 40),
        st.sampled_from([1, 2, 3, 10]),
        st.one_of(st.just(1.0), st.floats(0, 2)),
    ),
    st.builds(
        lambda a, b, n: S.warmup(a, end_lr=b, warmup_steps=n, mode="exponential"),
        lrs,
        lrs,
        steps_int,
    ),
)


@pytest.mark.skipif(
    _NUMPY_1, reason="numpy 1.x: an array's cosine can differ from the scalar path's last bits"
)
@FAST
@given(
    s=st.one_of(schedules, powers),
    ts=st.lists(st.one_of(steps, st.floats(0, 5000)), min_size=1, max_size=8),
)
def test_scalar_and_vector_paths_agree_bit_for_bit(s: S.Schedule, ts: list[float]) -> None:
    # ``**`` on a numpy array (SIMD) and on a scalar may round differently: every family
    # evaluates it the same way on both paths, for one step, a 0-d array or a list
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        vec = s.values(ts)
        for t, v in zip(ts, vec):
            x = s(t)
            assert _same_bits(x, float(v)), (str(s), t, x, float(v))
            assert _same_bits(x, float(s.values([t])[0])), (str(s), t)
            assert _same_bits(x, float(s.values(np.float64(t)))), (str(s), t)
            assert _same_bits(x, float(s.values(np.array([[t, 0.0]]))[0, 0])), (str(s), t)


@FAST
@given(s=schedules)
def test_round_trips_keep_every_value(s: S.Schedule) -> None:
    ts = np.arange(0, 600, 7)
    for back in (S.parse(str(s)), S.from_dict(s.to_dict()), S.parse(s.spec)):
        assert back == s and str(back) == str(s) and hash(back) == hash(s)
        np.testing.assert_array_equal(back.values(ts), s.values(ts))
        assert [back(int(t)) for t in ts[:20]] == [s(int(t)) for t in ts[:20]]


@FAST
@given(
    lr=lrs,
    ratio=st.floats(0.0, 2.0),
    decay=st.sampled_from(["linear", "cosine", "1-sqrt"]),
    total=st.integers(20, 5000),
    decay_frac=st.floats(0.05, 0.9),
)
def test_wsd_holds_lr_then_ends_at_min_lr_exactly(
    lr: float, ratio: float, decay: str, total: int, decay_frac: float
) -> None:
    """The stable phase is ``lr`` and every step from ``total_steps`` on is ``min_lr``, both
    exactly, for every decay; in between it moves one way only, never past ``min_lr`` (a
    ``min_lr`` above ``lr`` is a rise, as Hugging Face's ``min_lr_ratio > 1``)."""
    d = max(1, int(total * decay_frac))
    s = _build(S.wsd, lr, total_steps=total, decay_steps=d, min_lr=lr * ratio, decay=decay)
    start = total - d
    v = s.values(np.arange(start, total + 3))
    assert v[0] == s(start) == lr and (v[d:] == s.min_lr).all() and s(total) == s.min_lr
    sign = 1.0 if s.min_lr <= lr else -1.0  # a decay, or a rise
    assert (sign * np.diff(v) <= 0).all() and (sign * (v - s.min_lr) >= 0).all()


@FAST
@given(
    lr=lrs,
    gamma=st.floats(1.0, 10.0),
    t=st.one_of(st.integers(0, 10**6), st.floats(0, 1e300)),
)
def test_growing_gamma_overflows_to_inf_on_both_paths(lr: float, gamma: float, t: float) -> None:
    for s in (S.exponential(lr, gamma=gamma), S.step(lr, step_size=3, gamma=gamma)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            v = float(s.values([t])[0])
        x = s(t)
        assert not math.isnan(x) and (x == v or math.isclose(x, v, rel_tol=1e-9))


@FAST
@given(
    s=schedules,
    bad=st.one_of(
        st.floats(max_value=-1e-300),
        st.sampled_from([math.inf, -math.inf, math.nan, 10**309, -1, -(10**400)]),
    ),
)
def test_a_bad_step_is_a_value_error_on_both_paths(s: S.Schedule, bad: float) -> None:
    with pytest.raises(ValueError, match=r"^step must be finite and >= 0"):
        s(bad)
    with pytest.raises(ValueError, match=r"^steps must be finite and >= 0"):
        s.values([0, bad])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    s=schedules,
    edits=st.lists(
        st.tuples(
            st.integers(0, 10**6),
            st.sampled_from(["del", "ins", "dup"]),
            st.sampled_from(list("()[],=\"'-.e1a_ x9")),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_specs_parse_or_raise_a_value_error(s: S.Schedule, edits: list[Any]) -> None:
    text = str(s)
    for pos, op, ch in edits:
        i = pos % (len(text) + 1)
        if op == "del":
            text = text[:i] + text[i + 1 :]
        elif op == "ins":
            text = text[:i] + ch + text[i:]
        else:
            text = text[:i] + text[i:] + text[i:]
    try:
        out = S.parse(text)
    except ValueError as exc:
        assert "\n" not in str(exc).split("\n")[0]
        return
    assert isinstance(out, S.Schedule)
    assert S.parse(str(out)) == out


# ------------------------------------------------------------------------------ torch
torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import lrkit.torch as lt  # noqa: E402
from lrkit.feedback import ReduceOnPlateau, RestartOnPlateau  # noqa: E402


class _Temp(nn.Module):
    """A loss module with a learnable temperature (a parameter the model does not own)."""

    def __init__(self) -> None:
        super().__init__()
        self.t = nn.Parameter(torch.tensor(0.3))

    def forward(self, out: Any, y: Any) -> Any:
        return nn.functional.cross_entropy(out * self.t.exp(), y)


def _everything(model: Any, opt: Any, extra: list[Any]) -> dict[str, Any]:
    return {
        "sd": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "extra": [(p.detach().clone(), None if p.grad is None else p.grad.clone()) for p in extra],
        "opt": copy.deepcopy(opt.state_dict()),
        "groups": [id(g) for g in opt.param_groups],
        "modes": [m.training for m in model.modules()],
        "rng": (torch.get_rng_state().clone(), np.random.get_state()[1].copy(), random.getstate()),
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["sd"].keys() == b["sd"].keys()
    for k in a["sd"]:
        assert torch.equal(a["sd"][k], b["sd"][k]), k
    for x, y in zip(a["grads"], b["grads"]):
        assert (x is None and y is None) or torch.equal(x, y)
    for (p, g), (q, h) in zip(a["extra"], b["extra"]):
        assert torch.equal(p, q) and ((g is None and h is None) or torch.equal(g, h))
    oa, ob = a["opt"], b["opt"]
    assert oa["param_groups"] == ob["param_groups"]
    assert oa["state"].keys() == ob["state"].keys()
    for k in oa["state"]:
        for name, v in oa["state"][k].items():
            w = ob["state"][k][name]
            assert torch.equal(v, w) if torch.is_tensor(v) else v == w
    assert a["groups"] == b["groups"] and a["modes"] == b["modes"]
    assert torch.equal(a["rng"][0], b["rng"][0])
    assert np.array_equal(a["rng"][1], b["rng"][1]) and a["rng"][2] == b["rng"][2]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    n_groups=st.integers(1, 3),
    loss_param=st.booleans(),
    bn=st.booleans(),
    accum=st.integers(1, 3),
    amp=st.booleans(),
    val=st.booleans(),
    opt_kind=st.sampled_from(["sgd", "adam", "adamw", "rmsprop"]),
    pretrain=st.integers(0, 2),
    grads=st.booleans(),
    stop_at=st.one_of(st.none(), st.integers(0, 30)),
    stop_in=st.sampled_from(["loss", "callback"]),
    where=st.sampled_from(["memory", "disk"]),
)
def test_find_lr_restores_everything_the_model_and_optimizer_hold(
    seed: int,
    n_groups: int,
    loss_param: bool,
    bn: bool,
    accum: int,
    amp: bool,
    val: bool,
    opt_kind: str,
    pretrain: int,
    grads: bool,
    stop_at: int | None,
    stop_in: str,
    where: str,
) -> None:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(5, 8)]
    if bn:
        layers.append(nn.BatchNorm1d(8))
    layers += [nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 3)]
    model = nn.Sequential(*layers)
    loss_fn: Any = _Temp() if loss_param else nn.functional.cross_entropy
    params = list(model.parameters())
    chunks = [params[i::n_groups] for i in range(n_groups)]
    groups: list[dict[str, Any]] = [
        {"params": c, "lr": 0.01 * (i + 1)} for i, c in enumerate(chunks) if c
    ]
    extra = list(loss_fn.parameters()) if loss_param else []
    if extra:
        groups.append({"params": extra, "lr": 0.005})
    make = {
        "sgd": lambda g: torch.optim.SGD(g, lr=0.01, momentum=0.9),
        "adam": lambda g: torch.optim.Adam(g, lr=0.01),
        "adamw": lambda g: torch.optim.AdamW(g, lr=0.01, weight_decay=0.1),
        "rmsprop": lambda g: torch.optim.RMSprop(g, lr=0.01, momentum=0.5),
    }[opt_kind]
    opt = make(groups)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 5, generator=g)
    y = torch.randint(0, 3, (96,), generator=g)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 96, 16)]
    for xb, yb in batches[:pretrain]:
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
    if grads:
        for p in [*model.parameters(), *extra]:
            p.grad = torch.full_like(p, 0.25)
    if seed % 3 == 0:
        model[-1].eval()  # a mode the user chose must survive
    before = _everything(model, opt, extra)

    # Ctrl-C at a random point: inside the loss (mid-step, mid-accumulation: some gradients
    # and BatchNorm statistics already changed) or between steps
    calls = [0]

    def interrupting_loss(out: Any, y: Any) -> Any:
        calls[0] += 1
        if stop_in == "loss" and calls[0] - 1 == stop_at:
            raise KeyboardInterrupt
        return loss_fn(out, y)

    def callback(i: int, lr: float, loss: float) -> None:
        if stop_in == "callback" and i == stop_at:
            raise KeyboardInterrupt

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add contention
    kw: dict[str, Any] = dict(
        num_iter=10,
        end_lr=1.0,
        accumulation_steps=accum,
        amp=amp,
        snapshot=where,
        callback=callback,
        warn=False,
    )
    if val:
        kw["val_data"] = batches[:2]
    try:
        lt.find_lr(model, opt, interrupting_loss, batches, **kw)
    except KeyboardInterrupt:
        assert stop_at is not None
    finally:
        torch.set_num_threads(threads)
    _same(before, _everything(model, opt, extra))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    s=families(),
    resume=st.integers(0, 80),
    fb=st.sampled_from(["none", "reduce", "restart", "chain", "per_group"]),
    momentum=st.booleans(),
    metrics=st.lists(st.sampled_from([1.0, 0.9, 0.9, 0.95, 0.5]), min_size=10, max_size=10),
    two_groups=st.booleans(),
)
def test_scheduler_resume_at_any_step_is_identical(
    s: S.Schedule, resume: int, fb: str, momentum: bool, metrics: list[float], two_groups: bool
) -> None:
    def build() -> tuple[Any, Any]:
        a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
        groups = [{"params": [a]}, {"params": [b], "lr": 0.02}] if two_groups else [{"params": [a]}]
        opt = torch.optim.SGD(groups, lr=0.01, momentum=0.9)
        n = len(groups)
        if fb == "none":
            feedback: Any = None
        elif fb == "reduce":
            feedback = ReduceOnPlateau(patience=1, factor=0.5)
        elif fb == "restart":
            feedback = RestartOnPlateau(patience=1, factor=0.7)
        elif fb == "chain":
            feedback = RestartOnPlateau(patience=2) & ReduceOnPlateau(patience=1)
        else:
            feedback = [ReduceOnPlateau(patience=1, min_scale=0.1 * (i + 1)) for i in range(n)]
        mom = S.cosine(0.95, total_steps=50, eta_min=0.85) if momentum else None
        return opt, lt.scheduler(opt, s, feedback=feedback, momentum=mom)

    def run(opt: Any, sch: Any, start: int, stop: int, out: list[Any]) -> None:
        for k in range(start, stop):
            out.append([(g["lr"], g["momentum"]) for g in opt.param_groups])
            if fb != "none" and k % 8 == 7:
                sch.report(metrics[(k // 8) % len(metrics)])
            opt.step()
            sch.step()

    opt, sch = build()
    full: list[Any] = []
    run(opt, sch, 0, resume, full)
    ckpt = copy.deepcopy(sch.state_dict())
    run(opt, sch, resume, 100, full)
    opt2, sch2 = build()
    for g in opt2.param_groups:
        g["lr"] = 123.0  # whatever the fresh optimizer holds, the checkpoint decides
    sch2.load_state_dict(ckpt)
    resumed: list[Any] = []
    run(opt2, sch2, resume, 100, resumed)
    assert resumed == full[resume:]
