"""The finder's task zoo: one procedural generator of small supervised tasks.

A task is a JSON-serialisable *spec* (family, data, model, optimizer, loss, batch size, budget)
built into tensors and factories by :func:`build`. A *family* is a kind of data with a kind of
model (e.g. ``clf/mlp``); the tasks of a family differ in data parameters, widths, optimizer,
loss, batch size and budget, all drawn from a random generator seeded by the family name and
the task index, so ``specs()`` returns the same list on every machine.

Three named sets of hand-written tasks are part of the zoo: ``T`` (``_demo_tasks.TASKS``, 300
steps, batch 32), ``H`` (``benchmarks/finder_holdout.py``) and ``V``
(``benchmarks/finder_validation.py``). Each belongs to the family its data and model kind say.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # benchmarks/: _finder_common, finder_holdout, ...

from _finder_common import Task, mlp  # noqa: E402

F = nn.functional

# ----------------------------------------------------------------------------- optimizers

OPTIMIZERS = ("sgd", "sgdm", "nesterov", "adam", "adamw", "rmsprop", "rmsprop_c", "adagrad")
#: optimizer -> family used by rules (plain SGD, momentum SGD, adaptive)
OPT_KIND = {
    "sgd": "sgd",
    "sgdm": "momentum",
    "nesterov": "momentum",
    "adam": "adaptive",
    "adamw": "adaptive",
    "rmsprop": "adaptive",
    "rmsprop_c": "adaptive",
    "adagrad": "adaptive",
}


def make_opt(spec: dict[str, Any]) -> Callable[[Any, float], torch.optim.Optimizer]:
    name, wd = spec["name"], float(spec.get("wd", 0.0))
    O = torch.optim
    table: dict[str, Callable[[Any, float], torch.optim.Optimizer]] = {
        "sgd": lambda p, lr: O.SGD(p, lr=lr, weight_decay=wd),
        "sgdm": lambda p, lr: O.SGD(p, lr=lr, momentum=0.9, weight_decay=wd),
        "nesterov": lambda p, lr: O.SGD(p, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd),
        "adam": lambda p, lr: O.Adam(p, lr=lr, weight_decay=wd),
        "adamw": lambda p, lr: O.AdamW(p, lr=lr, weight_decay=wd if wd else 0.01),
        "rmsprop": lambda p, lr: O.RMSprop(p, lr=lr, weight_decay=wd),
        "rmsprop_c": lambda p, lr: O.RMSprop(p, lr=lr, centered=True, momentum=0.5),
        "adagrad": lambda p, lr: O.Adagrad(p, lr=lr, weight_decay=wd),
    }
    return table[name]


# ----------------------------------------------------------------------------- losses


def make_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "ce":
        return F.cross_entropy
    if name == "ce_ls":
        return lambda out, y: F.cross_entropy(out, y, label_smoothing=0.1)
    if name == "bce":
        return F.binary_cross_entropy_with_logits
    if name == "mse":
        return F.mse_loss
    if name == "huber":
        return lambda out, y: F.huber_loss(out, y, delta=1.0)
    raise ValueError(name)


# ----------------------------------------------------------------------------- data


def _std_split(x: np.ndarray, y: np.ndarray, kind: str, seed: int, val_frac: float = 0.25):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    nv = int(len(x) * val_frac)
    va, tr = perm[:nv], perm[nv:]
    mu = x[tr].mean(axis=0, keepdims=True)
    sd = x[tr].std(axis=0, keepdims=True)
    x = (x - mu) / np.where(sd < 1e-3, 1.0, sd)  # constant columns (digits' borders) stay put
    if kind == "reg":
        y = y.reshape(len(y), -1).astype(np.float64)
        ym, ys = y[tr].mean(0), y[tr].std(0) + 1e-9
        y = (y - ym) / ys
    ydt = torch.long if kind == "cls" else torch.float32
    return (
        torch.as_tensor(x[tr], dtype=torch.float32),
        torch.as_tensor(y[tr], dtype=ydt),
        torch.as_tensor(x[va], dtype=torch.float32),
        torch.as_tensor(y[va], dtype=ydt),
    )


def make_data(spec: dict[str, Any]) -> tuple[tuple[torch.Tensor, ...], int, int, str]:
    """(x_tr, y_tr, x_va, y_va), n_in, n_out, target kind ('cls', 'reg', 'multi')."""
    from sklearn import datasets as D

    kind, rs = spec["kind"], int(spec["seed"])
    n = int(spec.get("n", 1500))
    if kind == "clf":
        x, y = D.make_classification(
            n_samples=n, n_features=spec["d"], n_informative=max(2, spec["d"] // 2),
            n_redundant=spec["d"] // 4, n_classes=spec["k"], n_clusters_per_class=2,
            class_sep=spec["sep"], flip_y=spec.get("flip", 0.02), random_state=rs,
        )  # fmt: skip
        return _std_split(x, y, "cls", rs), spec["d"], spec["k"], "cls"
    if kind in ("moons", "circles"):
        if kind == "moons":
            x, y = D.make_moons(n_samples=n, noise=spec["noise"], random_state=rs)
        else:
            x, y = D.make_circles(n_samples=n, noise=spec["noise"], factor=0.5, random_state=rs)
        return _std_split(x, y, "cls", rs), 2, 2, "cls"
    if kind == "blobs":
        x, y = D.make_blobs(
            n_samples=n, n_features=spec["d"], centers=spec["k"], cluster_std=spec["sd"],
            random_state=rs,
        )  # fmt: skip
        return _std_split(x, y, "cls", rs), spec["d"], spec["k"], "cls"
    if kind == "multilabel":
        x, y = D.make_multilabel_classification(
            n_samples=n, n_features=spec["d"], n_classes=spec["k"], n_labels=2, random_state=rs
        )
        x = np.log1p(x)
        tr = _std_split(x, np.zeros(len(x)), "reg", rs)
        rng = np.random.default_rng(rs)
        perm = rng.permutation(len(x))
        nv = int(len(x) * 0.25)
        yy = torch.as_tensor(y, dtype=torch.float32)
        return (tr[0], yy[perm[nv:]], tr[2], yy[perm[:nv]]), spec["d"], spec["k"], "multi"
    if kind in ("friedman", "regression", "sin"):
        if kind == "friedman":
            x, y = D.make_friedman1(
                n_samples=n, n_features=10, noise=spec["noise"], random_state=rs
            )
        elif kind == "regression":
            x, y = D.make_regression(
                n_samples=n, n_features=spec["d"], n_informative=spec["d"] // 2,
                noise=spec["noise"], random_state=rs,
            )  # fmt: skip
        else:
            rng = np.random.default_rng(rs)
            x = rng.uniform(-2, 2, size=(n, 1))
            y = np.sin(spec["freq"] * x[:, 0]) + spec["noise"] * rng.normal(size=n)
        return _std_split(x, y, "reg", rs), x.shape[1], 1, "reg"
    if kind in ("iris", "wine", "cancer", "digits", "diabetes"):
        loader = {
            "iris": D.load_iris, "wine": D.load_wine, "cancer": D.load_breast_cancer,
            "digits": D.load_digits, "diabetes": D.load_diabetes,
        }[kind]  # fmt: skip
        d = loader()
        x = d.data.astype(np.float64)
        if spec.get("noise"):
            x = x + spec["noise"] * np.random.default_rng(rs).normal(size=x.shape) * x.std(0)
        if kind == "diabetes":
            return _std_split(x, d.target, "reg", rs), x.shape[1], 1, "reg"
        k = int(d.target.max()) + 1
        return _std_split(x, d.target, "cls", rs), x.shape[1], k, "cls"
    if kind == "bars":  # small images: oriented bars in noise, class = orientation
        rng = np.random.default_rng(rs)
        s, k = 12, spec["k"]
        y = rng.integers(0, k, size=n)
        xs = np.zeros((n, s, s))
        ii, jj = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
        for c in range(k):
            ang = math.pi * c / k
            m = y == c
            off = rng.uniform(-3, 3, size=(int(m.sum()), 1, 1))
            dist = np.abs((ii - s / 2) * math.sin(ang) - (jj - s / 2) * math.cos(ang) - off)
            xs[m] = (dist < 1.2).astype(np.float64)
        xs += spec["noise"] * rng.normal(size=xs.shape)
        return _std_split(xs.reshape(n, -1), y, "cls", rs), s * s, k, "cls"
    if kind in ("seqsum", "sines", "ar"):
        rng = np.random.default_rng(rs)
        L = spec["len"]
        if kind == "seqsum":  # which third of the sequence has the largest mean of ch0 - ch1
            x = rng.normal(size=(n, L, 2))
            dd = (x[:, :, 0] - x[:, :, 1]).reshape(n, 3, L // 3).mean(2)
            y = dd.argmax(1)
            tgt = "cls"
        elif kind == "sines":  # class = frequency, noisy amplitude / phase
            y = rng.integers(0, 3, size=n)
            t = np.arange(L)[None, :] / L
            amp = rng.uniform(0.5, 1.5, size=(n, 1))
            ph = rng.uniform(0, 2 * np.pi, size=(n, 1))
            x = amp * np.sin(2 * np.pi * (1.5 + y)[:, None] * t + ph)
            x = (x + spec["noise"] * rng.normal(size=(n, L)))[:, :, None]
            tgt = "cls"
        else:  # AR(2) signal: predict the next value
            a1, a2 = spec["a"]
            z = np.zeros((n, L + 1))
            z[:, :2] = rng.normal(size=(n, 2))
            for t_ in range(2, L + 1):
                z[:, t_] = a1 * z[:, t_ - 1] + a2 * z[:, t_ - 2] + 0.5 * rng.normal(size=n)
            x, y = z[:, :L, None], z[:, L]
            tgt = "reg"
        nv = n // 4
        xt = torch.as_tensor(x, dtype=torch.float32)
        if tgt == "cls":
            yt = torch.as_tensor(y, dtype=torch.long)
        else:
            yt = torch.as_tensor(y / y[nv:].std(), dtype=torch.float32)[:, None]
        xt = xt / xt[nv:].std()
        return (xt[nv:], yt[nv:], xt[:nv], yt[:nv]), x.shape[2], (3 if tgt == "cls" else 1), tgt
    raise ValueError(kind)


# ----------------------------------------------------------------------------- models


class _ResLN(nn.Module):
    def __init__(self, n_in: int, n_out: int, width: int, depth: int) -> None:
        super().__init__()
        self.inp = nn.Linear(n_in, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(),
                          nn.Linear(width, width))
            for _ in range(depth)
        )  # fmt: skip
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for b in self.blocks:
            h = h + b(h)
        return self.head(self.norm(h))


class _CNN(nn.Module):
    def __init__(self, side: int, n_out: int, ch: int, bn: bool) -> None:
        super().__init__()
        self.side = side
        norm = (lambda c: nn.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
        self.net = nn.Sequential(
            nn.Conv2d(1, ch, 3, padding=1), norm(ch), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(ch, 2 * ch, 3, padding=1), norm(2 * ch), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * ch * (side // 4) ** 2, n_out),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.view(-1, 1, self.side, self.side))


class _RNN(nn.Module):
    def __init__(self, cell: str, n_in: int, n_out: int, hidden: int) -> None:
        super().__init__()
        self.rnn = (nn.GRU if cell == "gru" else nn.LSTM)(n_in, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class _Attn(nn.Module):
    def __init__(self, n_in: int, n_out: int, d: int, heads: int, length: int) -> None:
        super().__init__()
        self.emb = nn.Linear(n_in, d)
        self.pos = nn.Parameter(torch.randn(1, length, d) * 0.1)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.head = nn.Linear(d, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x) + self.pos
        a = self.ln1(h)
        h = h + self.attn(a, a, a, need_weights=False)[0]
        h = h + self.ff(self.ln2(h))
        return self.head(h.mean(1))


_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


class _AE(nn.Module):
    def __init__(self, n_in: int, width: int, code: int) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, code))
        self.dec = nn.Sequential(nn.Linear(code, width), nn.ReLU(), nn.Linear(width, n_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(x))


def make_model(spec: dict[str, Any], n_in: int, n_out: int) -> Callable[[], nn.Module]:
    k = spec["kind"]
    if k == "linear":
        return lambda: nn.Linear(n_in, n_out)
    if k == "mlp":
        act = _ACTIVATIONS[spec.get("act", "relu")]
        return lambda: mlp(n_in, n_out, spec["widths"], act, spec.get("bn", False),
                           spec.get("drop", 0.0))  # fmt: skip
    if k == "resln":
        return lambda: _ResLN(n_in, n_out, spec["width"], spec["depth"])
    if k == "cnn":
        return lambda: _CNN(spec["side"], n_out, spec["ch"], spec.get("bn", False))
    if k in ("gru", "lstm"):
        return lambda: _RNN(k, n_in, n_out, spec["hidden"])
    if k == "attn":
        return lambda: _Attn(n_in, n_out, spec["d"], spec["heads"], spec["len"])
    if k == "ae":
        return lambda: _AE(n_in, spec["width"], spec["code"])
    raise ValueError(k)


# ----------------------------------------------------------------------------- families


def _rng(*key: Any) -> np.random.Generator:
    h = hashlib.sha256("/".join(map(str, key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def _pick(rng: np.random.Generator, xs: Any) -> Any:
    return xs[int(rng.integers(len(xs)))]


def _budget(rng: np.random.Generator, hi: int = 800) -> int:
    return int(round(math.exp(rng.uniform(math.log(100), math.log(hi))) / 10) * 10)


def _opt(rng: np.random.Generator, pool: tuple[str, ...] = OPTIMIZERS) -> dict[str, Any]:
    name = _pick(rng, pool)
    wd = float(_pick(rng, [0.0, 0.0, 1e-4, 1e-2])) if name not in ("rmsprop_c",) else 0.0
    return {"name": name, "wd": wd}


# each family: data kind + model kind; draw(rng) -> (data, model, loss, batch size, budget)
def _fam_clf_linear(r):
    return ({"kind": "clf", "d": int(r.integers(6, 30)), "k": int(r.integers(2, 6)),
             "sep": float(r.uniform(0.6, 1.6)), "n": 1500}, {"kind": "linear"},
            _pick(r, ["ce", "ce", "ce_ls"]), _pick(r, [8, 16, 32, 64, 128]),
            _budget(r, 2000))  # fmt: skip


def _fam_clf_mlp(r):
    return ({"kind": "clf", "d": int(r.integers(8, 30)), "k": int(r.integers(2, 6)),
             "sep": float(r.uniform(0.6, 1.6)), "n": 2000},
            {"kind": "mlp", "widths": [int(_pick(r, [32, 64, 128]))] * int(r.integers(1, 4))},
            _pick(r, ["ce", "ce_ls"]), _pick(r, [16, 32, 64, 128, 256]), _budget(r))  # fmt: skip


def _fam_clf_dropout(r):
    return ({"kind": "clf", "d": 20, "k": int(r.integers(3, 6)), "sep": float(r.uniform(0.7, 1.3)),
             "n": 2000},
            {"kind": "mlp", "widths": [int(_pick(r, [128, 256]))] * 2,
             "drop": float(_pick(r, [0.2, 0.3, 0.5]))},
            "ce", _pick(r, [32, 64, 128, 256]), _budget(r))  # fmt: skip


def _fam_clf_resln(r):
    return ({"kind": "clf", "d": int(r.integers(8, 24)), "k": int(r.integers(2, 6)),
             "sep": float(r.uniform(0.6, 1.4)), "n": 2000},
            {"kind": "resln", "width": int(_pick(r, [32, 64])), "depth": int(r.integers(1, 4))},
            _pick(r, ["ce", "ce_ls"]), _pick(r, [16, 32, 64, 128]), _budget(r))  # fmt: skip


def _fam_toy2d_deep(r):
    return ({"kind": _pick(r, ["moons", "circles"]), "noise": float(r.uniform(0.1, 0.35)),
             "n": 1500},
            {"kind": "mlp", "widths": [int(_pick(r, [16, 32, 64]))] * int(r.integers(3, 6)),
             "act": _pick(r, ["tanh", "relu"])},
            "ce", _pick(r, [8, 16, 32, 64]), _budget(r, 2000))  # fmt: skip


def _fam_blobs_bn(r):
    return ({"kind": "blobs", "d": int(r.integers(4, 16)), "k": int(r.integers(3, 8)),
             "sd": float(r.uniform(1.5, 4.0)), "n": 2000},
            {"kind": "mlp", "widths": [int(_pick(r, [32, 64]))] * int(r.integers(1, 4)),
             "bn": True},
            "ce", _pick(r, [16, 32, 64, 128, 256, 512]), _budget(r))  # fmt: skip


def _fam_multilabel(r):
    return ({"kind": "multilabel", "d": int(r.integers(10, 30)), "k": int(r.integers(3, 8)),
             "n": 2000},
            {"kind": "mlp", "widths": [int(_pick(r, [32, 64, 128]))] * int(r.integers(1, 3))},
            "bce", _pick(r, [16, 32, 64, 128, 256]), _budget(r))  # fmt: skip


def _fam_reg_mlp(r):
    kind = _pick(r, ["friedman", "regression"])
    data = {
        "kind": kind,
        "noise": float(r.uniform(0.3, 1.5)) if kind == "friedman" else float(r.uniform(5, 40)),
        "d": int(r.integers(8, 24)),
        "n": 2000,
    }
    return (data, {"kind": "mlp", "widths": [int(_pick(r, [32, 64, 128]))] * int(r.integers(1, 4)),
                   "bn": bool(r.random() < 0.3)},
            _pick(r, ["mse", "huber"]), _pick(r, [8, 16, 32, 64, 128]), _budget(r))  # fmt: skip


def _fam_reg_linear(r):
    return ({"kind": "regression", "noise": float(r.uniform(5, 60)), "d": int(r.integers(5, 40)),
             "n": 1500},
            {"kind": "linear"}, _pick(r, ["mse", "huber"]), _pick(r, [8, 16, 32, 64, 256]),
            _budget(r, 2000))  # fmt: skip


def _fam_sin_tanh(r):
    return ({"kind": "sin", "freq": float(r.uniform(1.5, 4)), "noise": float(r.uniform(0.05, 0.4)),
             "n": 1500},
            {"kind": "mlp", "widths": [int(_pick(r, [16, 32, 64]))] * int(r.integers(2, 5)),
             "act": "tanh"},
            _pick(r, ["mse", "huber"]), _pick(r, [16, 32, 64, 128]), _budget(r, 2000))  # fmt: skip


def _fam_small_mlp(r):
    kind = _pick(r, ["iris", "wine", "cancer"])
    return ({"kind": kind, "noise": float(_pick(r, [0.0, 0.0, 0.3]))},
            {"kind": "mlp", "widths": [int(_pick(r, [16, 32, 64]))] * int(r.integers(1, 3)),
             "act": _pick(r, ["relu", "tanh"])},
            _pick(r, ["ce", "ce_ls"]), _pick(r, [8, 16, 32]), _budget(r, 2000))  # fmt: skip


def _fam_digits_mlp(r):
    return ({"kind": "digits", "noise": float(_pick(r, [0.0, 0.0, 0.5]))},
            {"kind": "mlp", "widths": [int(_pick(r, [64, 128, 256]))] * int(r.integers(1, 3)),
             "drop": float(_pick(r, [0.0, 0.0, 0.3])), "bn": bool(r.random() < 0.25)},
            _pick(r, ["ce", "ce_ls"]), _pick(r, [16, 32, 64, 128, 256]), _budget(r))  # fmt: skip


def _fam_digits_cnn(r):
    return ({"kind": "digits", "noise": 0.0},
            {"kind": "cnn", "side": 8, "ch": int(_pick(r, [4, 8])), "bn": bool(r.random() < 0.5)},
            "ce", _pick(r, [16, 32, 64]), _budget(r, 300))  # fmt: skip


def _fam_bars_cnn(r):
    return ({"kind": "bars", "k": int(r.integers(3, 6)), "noise": float(r.uniform(0.3, 1.0)),
             "n": 1200},
            {"kind": "cnn", "side": 12, "ch": 4, "bn": bool(r.random() < 0.5)},
            _pick(r, ["ce", "ce_ls"]), _pick(r, [8, 16, 32]), _budget(r, 300))  # fmt: skip


def _fam_seq_gru(r):
    L = int(_pick(r, [9, 12]))
    return ({"kind": "seqsum", "len": L, "n": 1200},
            {"kind": "gru", "hidden": int(_pick(r, [8, 16]))},
            "ce", _pick(r, [8, 16, 32]), _budget(r, 300))  # fmt: skip


def _fam_sines_lstm(r):
    return ({"kind": "sines", "len": 12, "noise": float(r.uniform(0.3, 0.9)), "n": 1200},
            {"kind": "lstm", "hidden": int(_pick(r, [8, 16]))},
            "ce", _pick(r, [8, 16, 32]), _budget(r, 300))  # fmt: skip


def _fam_ar_gru(r):
    a1 = float(r.uniform(0.3, 1.2))
    return ({"kind": "ar", "len": 10, "a": [a1, float(-0.5 * a1 * r.uniform(0.2, 0.9))],
             "n": 1200},
            {"kind": _pick(r, ["gru", "lstm"]), "hidden": 8},
            _pick(r, ["mse", "huber"]), _pick(r, [16, 32, 64]), _budget(r, 300))  # fmt: skip


def _fam_seq_attn(r):
    L = 9
    return ({"kind": _pick(r, ["seqsum", "sines"]), "len": L, "noise": 0.6, "n": 1200},
            {"kind": "attn", "d": 16, "heads": int(_pick(r, [1, 2])), "len": L},
            "ce", _pick(r, [8, 16, 32]), _budget(r, 300))  # fmt: skip


def _fam_digits_ae(r):
    return ({"kind": "digits", "noise": 0.0},
            {"kind": "ae", "width": int(_pick(r, [32, 64])), "code": int(_pick(r, [4, 8, 16]))},
            _pick(r, ["mse", "huber"]), _pick(r, [16, 32, 64, 128]), _budget(r))  # fmt: skip


def _fam_diabetes(r):
    return ({"kind": "diabetes", "noise": 0.0},
            {"kind": _pick(r, ["linear", "mlp"]), "widths": [int(_pick(r, [16, 32, 64]))]},
            _pick(r, ["mse", "huber"]), _pick(r, [8, 16, 32]), _budget(r, 2000))  # fmt: skip


FAMILIES: dict[str, Callable[[np.random.Generator], tuple]] = {
    "clf/linear": _fam_clf_linear,
    "clf/mlp": _fam_clf_mlp,
    "clf/dropout": _fam_clf_dropout,
    "clf/resln": _fam_clf_resln,
    "toy2d/deep": _fam_toy2d_deep,
    "blobs/bn": _fam_blobs_bn,
    "multilabel/mlp": _fam_multilabel,
    "reg/mlp": _fam_reg_mlp,
    "reg/linear": _fam_reg_linear,
    "sin/tanh": _fam_sin_tanh,
    "small/mlp": _fam_small_mlp,
    "digits/mlp": _fam_digits_mlp,
    "digits/cnn": _fam_digits_cnn,
    "bars/cnn": _fam_bars_cnn,
    "seqsum/gru": _fam_seq_gru,
    "sines/lstm": _fam_sines_lstm,
    "ar/rnn": _fam_ar_gru,
    "seq/attn": _fam_seq_attn,
    "digits/ae": _fam_digits_ae,
    "diabetes/mlp": _fam_diabetes,
}

# the hand-written sets and the family each task belongs to
NAMED: dict[str, dict[str, str]] = {
    "T": {
        "digits_mlp_sgd": "digits/mlp", "digits_mlp_adam": "digits/mlp",
        "digits_cnn_adamw": "digits/cnn", "seq_gru_rmsprop": "seqsum/gru",
        "digits_bn_sgd": "digits/mlp", "diabetes_mlp_adam": "diabetes/mlp",
        "wine_mlp_rmsprop": "small/mlp", "synth_reg_sgd": "reg/mlp",
        "cancer_bn_adamw": "small/mlp",
    },
    "H": {
        "moons_deep_sgd": "toy2d/deep", "clf4_dropout_adam": "clf/dropout",
        "digits_cnnbn_sgdm": "digits/cnn", "seq_lstm_adam": "seqsum/gru",
        "friedman_bn_rmsprop": "reg/mlp", "circles_wide_adamw": "toy2d/deep",
        "cancer_deep_sgdm": "small/mlp", "digits_dropout_rmsprop": "digits/mlp",
    },
    "V": {
        "clf3_mlp_sgdm": "clf/mlp", "digits_drop_adam": "digits/mlp",
        "digits_cnnpool_adamw": "digits/cnn", "sine_gru_rmsprop": "sines/lstm",
        "blobs_bn_sgd": "blobs/bn", "reg_mlp_adamw": "reg/mlp",
        "iris_mlp_rmsprop": "small/mlp", "sinreg_tanh_adam": "sin/tanh",
    },
}  # fmt: skip
NAMED_OPT = {  # optimizer of each hand-written task, for rules that read it
    "digits_mlp_sgd": "sgdm", "digits_mlp_adam": "adam", "digits_cnn_adamw": "adamw",
    "seq_gru_rmsprop": "rmsprop", "digits_bn_sgd": "nesterov", "diabetes_mlp_adam": "adam",
    "wine_mlp_rmsprop": "rmsprop", "synth_reg_sgd": "sgd", "cancer_bn_adamw": "adamw",
    "moons_deep_sgd": "sgd", "clf4_dropout_adam": "adam", "digits_cnnbn_sgdm": "sgdm",
    "seq_lstm_adam": "adam", "friedman_bn_rmsprop": "rmsprop", "circles_wide_adamw": "adamw",
    "cancer_deep_sgdm": "sgdm", "digits_dropout_rmsprop": "rmsprop", "clf3_mlp_sgdm": "sgdm",
    "digits_drop_adam": "adam", "digits_cnnpool_adamw": "adamw", "sine_gru_rmsprop": "rmsprop",
    "blobs_bn_sgd": "sgd", "reg_mlp_adamw": "adamw", "iris_mlp_rmsprop": "rmsprop",
    "sinreg_tanh_adam": "adam",
}  # fmt: skip


def specs(per_family: int = 4) -> list[dict[str, Any]]:
    """Every task of the zoo: ``per_family`` generated tasks per family, then T, H and V."""
    out: list[dict[str, Any]] = []
    for fam, draw in FAMILIES.items():
        for i in range(per_family):
            r = _rng(fam, i)
            data, model, loss, bs, steps = draw(r)
            data.setdefault("seed", int(r.integers(1 << 30)))
            opt = _opt(r)
            name = f"{fam.replace('/', '_')}_{i}"
            out.append({
                "name": name, "family": fam, "set": "Z", "data": data, "model": model,
                "opt": opt, "loss": loss, "bs": int(bs), "steps": int(steps),
            })  # fmt: skip
    for set_name, tasks in NAMED.items():
        for name, fam in tasks.items():
            out.append({"name": name, "family": fam, "set": set_name,
                        "opt": {"name": NAMED_OPT[name]}})  # fmt: skip
    return out


def build(spec: dict[str, Any]) -> Task:
    """The :class:`_finder_common.Task` of a spec (data tensors, factories, budget)."""
    s = spec["set"]
    if s == "T":
        from _demo_tasks import make_task

        t = make_task(spec["name"], 0, 32)
        return Task(spec["name"], t.x_train, t.y_train, t.x_val, t.y_val, t.model_fn,
                    t.optimizer_fn, t.loss_fn, 32, 300, spec["name"])  # fmt: skip
    if s == "H":
        import finder_holdout

        return finder_holdout.make_task(spec["name"])
    if s == "V":
        import finder_validation

        return finder_validation.make_task(spec["name"])
    data, n_in, n_out, tgt = make_data(spec["data"])
    if spec["model"]["kind"] == "ae":
        data = (data[0], data[0], data[2], data[2])
        n_out = n_in
    mf = make_model(spec["model"], n_in, n_out)
    desc = (f"{spec['family']}: {spec['data']['kind']}, {spec['model']['kind']}, "
            f"{spec['opt']['name']} wd {spec['opt'].get('wd', 0)}, {spec['loss']}, "
            f"bs {spec['bs']}, {spec['steps']} steps")  # fmt: skip
    return Task(spec["name"], *data, mf, make_opt(spec["opt"]), make_loss(spec["loss"]),
                spec["bs"], spec["steps"], desc)  # fmt: skip
