"""Variants of the finder's measurement and edge, replayed on the zoo, out of fold.

Why do the three seeds of a task disagree, and does more held measurement or a different
edge fix it? Each variant replays the cached sweeps (``replay.replay``: the real
:class:`lrkit.finder.Sweep`, its stops and extension) with its measurement options, reads an
``lr_min`` per sweep, and is scored exactly as the shipped rule is in
``benchmarks/finder_zoo.py``: the coefficients ``a[family]``, ``b`` of
``ln(lr / lr_min) = a + b ln(steps / 1000)`` are fitted by grouped 5-fold cross-validation
over task families (``fit_rule.fit``), every task scored with the fit that did not see its
family. ``sd`` is the mean over tasks of the standard deviation of log10(lr_min) over the 3
seeds (0.15 = seeds typically 1.4x apart).

Edges: ``min`` is the shipped :func:`lrkit.finder.rules.edge` (minimum of the smoothed curve,
rise onset on a curve that did not descend); ``rise +f`` is where the smoothed curve (+-0.3
decades) first exceeds its minimum by the fraction ``f`` after the minimum (interpolated in
log LR); ``stop`` is the LR at which the sweep stopped (divergence).

Choosing one of these edges because its row reads best would report a number chosen by
looking at it: :func:`nested` makes the choice inside each training part (an inner grouped
cross-validation) and scores the outer fold with the edge it chose.

    python benchmarks/zoo/variants.py --json benchmarks/results/finder_variants.json  # ~8 min
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fit_rule as F  # noqa: E402
from replay import load, loss_at, optimizer_kind, oracle_curves, replay, score  # noqa: E402

from lrkit.finder.rules import edge, smooth_curve  # noqa: E402
from lrkit.finder.smoothing import robust_smooth  # noqa: E402


def rise(x: np.ndarray, y: np.ndarray, frac: float) -> float:
    """First LR after the minimum of the smoothed curve where it exceeds min * (1 + frac)."""
    r = smooth_curve(x, y)
    m = int(np.argmin(r))
    thr = float(r[m]) * (1 + frac)
    j = m
    while j + 1 < len(r) and r[j + 1] <= thr:
        j += 1
    if j + 1 < len(r) and r[j + 1] > r[j]:
        x0, x1 = math.log(x[j]), math.log(x[j + 1])
        return math.exp(x0 + (thr - r[j]) / (r[j + 1] - r[j]) * (x1 - x0))
    return float(x[j])


def parabola(x: np.ndarray, y: np.ndarray, *, held: bool, half: float = 0.5) -> float:
    """Vertex of the least-squares parabola of ln(loss) against log10(lr) over +-``half``
    decades around the minimum of the smoothed curve (kept within that window)."""
    r = smooth_curve(x, y) if held else robust_smooth(y)
    m = int(np.argmin(r))
    lx = np.log10(x)
    sel = np.abs(lx - lx[m]) <= half
    if sel.sum() < 4:
        return float(x[m])
    a, b, _ = np.polyfit(lx[sel], np.log(np.maximum(y[sel], 1e-12)), 2)
    if a <= 0:
        return float(x[m])
    return float(10 ** np.clip(-b / (2 * a), lx[m] - half, lx[m] + half))


def agrees(lr_mins: list[float]) -> bool:
    """Whether a task's seeds' edges lie within a factor 2 (the seed-spread bar)."""
    return max(lr_mins) / min(lr_mins) <= 2


def spread(feats: list[dict[str, Any]]) -> float:
    """The share of tasks whose seeds' edges lie within a factor 2."""
    return float(np.mean([agrees(f["lr_min"]) for f in feats]))


def gm(values: list[float]) -> float:
    return math.exp(float(np.mean(np.log(values))))


def t_min(r: Any) -> float:
    return edge(r.lrs, r.losses, held=False)


def h_min(r: Any) -> float:
    return edge(r.held_lrs, r.held_losses, held=True)


def t_rise(r: Any) -> float:
    return rise(r.lrs, r.losses, 1.0)


def h_rise(r: Any) -> float:
    return rise(r.held_lrs, r.held_losses, 0.3)


# name, held forward passes per step, measurement options, lr_min(result)
VARIANTS: list[tuple[str, str, dict[str, int], Callable[[Any], float]]] = [
    ("shipped: gm(train min, held min), 1 held batch / 4 steps", "1/4", {},
     lambda r: r.lr_min),
    ("train min only", "0", {}, t_min),
    ("held min only, 1 batch / 4 steps", "1/4", {}, h_min),
    ("held min only, 4 batches / 4 steps", "1", {"eval_batches": 4}, h_min),
    ("held min only, 4 batches / step", "4", {"eval_batches": 4, "eval_every": 1}, h_min),
    ("gm(train min, held min), 4 batches / 4 steps", "1", {"eval_batches": 4},
     lambda r: gm([t_min(r), h_min(r)])),
    ("gm(train min, held min), 4 batches / step", "4", {"eval_batches": 4, "eval_every": 1},
     lambda r: gm([t_min(r), h_min(r)])),
    ("gm(train rise +100%, held rise +30%)", "1/4", {}, lambda r: gm([t_rise(r), h_rise(r)])),
    ("gm(train rise +100%, held rise +30%), 4 batches", "1", {"eval_batches": 4},
     lambda r: gm([t_rise(r), h_rise(r)])),
    ("gm of the four edges (min and rise, train and held)", "1/4", {},
     lambda r: gm([t_min(r), h_min(r), t_rise(r), h_rise(r)])),
    ("gm(train min, held min, train rise +100%)", "1/4", {},
     lambda r: gm([t_min(r), h_min(r), t_rise(r)])),
    ("shipped edge, 1 held batch / 8 steps", "1/8", {"eval_every": 8},
     lambda r: r.lr_min),
    ("gm of parabola fits around the train and held minima", "1/4", {},
     lambda r: gm([parabola(r.lrs, r.losses, held=False),
                   parabola(r.held_lrs, r.held_losses, held=True)])),
    ("stop (divergence) LR", "1/4", {}, lambda r: float(r.lrs[-1])),
]  # fmt: skip


def oof(
    feats: list[dict[str, Any]], sched: str, fit_on: list[dict[str, Any]] | None = None
) -> tuple[float, float]:
    """Out-of-fold hit rate and gm loss ratio of ``lr_min * exp(a + b t)``, with ``a``, ``b``
    fitted in each training part on ``fit_on``'s edges (default: ``feats``' own; the same
    tasks in the same order, e.g. the default sweep's edges)."""
    fit_on = feats if fit_on is None else fit_on
    tab = F.loss_tables(fit_on, sched)
    hits, logs = [], []
    for test in F.folds(fit_on):
        tset = set(test.tolist())
        train = np.array([i for i in range(len(feats)) if i not in tset])
        a, b = F.fit(fit_on, tab, train)
        for i in test:
            sc = score(feats[i]["rec"], sched, [F.suggest_lr(feats[i], s, a, b) for s in F.SEEDS])
            hits.append(sc["hit"])
            logs.append(math.log(sc["ratio"]))
    return float(np.mean(hits)), math.exp(float(np.mean(logs)))


def best_offsets(feats: list[dict[str, Any]], sched: str) -> np.ndarray:
    """Each task's own best offset: the ``ln(lr / lr_min)`` (on ``fit_rule.OFFSETS``, one for
    the task's 3 seeds) whose mean loss over the seeds, the quantity hits and gm are computed
    from, is lowest. In sample: a bound, not a rule."""
    out = []
    for f in feats:
        grid, losses, _ = oracle_curves(f["rec"], sched)
        mean = [np.mean([loss_at(grid, losses, v * math.exp(off)) for v in f["lr_min"]])
                for off in F.OFFSETS]  # fmt: skip
        out.append(F.OFFSETS[int(np.argmin(mean))])
    return np.array(out)


def fitted_offsets(feats: list[dict[str, Any]], sched: str) -> np.ndarray:
    """Each task's offset ``ln(lr / lr_min)`` as the rule's form (family and budget) fitted on
    every task predicts it (in sample)."""
    a, b = F.fit(feats, F.loss_tables(feats, sched), np.arange(len(feats)))
    return np.array([a[f["opt"]] + b * f["t"] for f in feats])


def _scored(feats: list[dict[str, Any]], sched: str, mult: list[float]) -> tuple[str, float]:
    scores = [score(f["rec"], sched, [v * m for v in f["lr_min"]]) for f, m in zip(feats, mult)]
    g = math.exp(float(np.mean([math.log(s["ratio"]) for s in scores])))
    return f"{np.mean([s['hit'] for s in scores]):.0%}", round(g, 3)


def ceiling(feats: list[dict[str, Any]]) -> tuple[list[list[Any]], list[list[Any]]]:
    """How much of the miss is the seeds' lr_min noise, how much the offset's. Rows: the
    shipped rule out of fold; lr_min averaged over the 3 sweeps (out of fold); the rule's
    form (family and budget) fitted on every task (in sample); each task's own best offset,
    with the edge's seed-to-seed noise left in (in sample: a bound). Second table: how far
    the best offsets spread across tasks, and what the family-and-budget fit leaves of it."""
    rows: list[list[Any]] = [["shipped: per-seed lr_min, family-and-budget offset, out of fold",
                              *_pair(feats)]]  # fmt: skip
    avg = [dict(f, lr_min=[gm(f["lr_min"])] * len(F.SEEDS)) for f in feats]
    rows.append(["lr_min averaged over the 3 sweeps (3x the cost), out of fold", *_pair(avg)])
    insample: list[Any] = ["family-and-budget offset fitted on every task (in sample)"]
    own: list[Any] = ["each task's own best offset from its per-seed lr_min (in sample: a bound)"]
    offsets: list[list[Any]] = []
    for sched in ("constant", "onecycle"):
        pred = fitted_offsets(feats, sched)
        insample += _scored(feats, sched, [min(math.exp(p), F.EDGE_CAP) for p in pred])
        best = best_offsets(feats, sched)
        own += _scored(feats, sched, [math.exp(o) for o in best])
        offsets.append([SCHED_NAMES[sched], round(float(np.std(best)), 2),
                       round(float(np.std(best - pred)), 2)])  # fmt: skip
    rows += [insample, own]
    return rows, offsets


def _pair(feats: list[dict[str, Any]]) -> list[Any]:
    ch, cg = oof(feats, "constant")
    oh, og = oof(feats, "onecycle")
    return [f"{ch:.0%}", round(cg, 3), f"{oh:.0%}", round(og, 3)]


SCHED_NAMES = {"constant": "constant", "onecycle": "one-cycle"}
SHRINK_WEIGHTS = np.round(np.arange(0.0, 1.0001, 0.1), 2)


def _toward_family(feats: list[dict[str, Any]], train: np.ndarray, w: float) -> list[dict]:
    """Each sweep's edge pulled toward its optimizer family's mean edge over the ``train``
    tasks: ``ln lr_min' = w ln lr_min + (1 - w) mean``; ``w = 0`` ignores the sweep."""
    centre = {}
    for fam in F.FAMILIES:
        logs = [math.log(v) for i in train for v in feats[i]["lr_min"] if feats[i]["opt"] == fam]
        centre[fam] = float(np.mean(logs)) if logs else 0.0
    return [
        dict(
            f, lr_min=[math.exp(w * math.log(v) + (1 - w) * centre[f["opt"]]) for v in f["lr_min"]]
        )
        for f in feats
    ]


def _shrunk_oof(feats: list[dict[str, Any]], sched: str, weights: np.ndarray) -> tuple:
    """Out-of-fold hits and gm of the rule on edges pulled toward the family mean, the weight
    chosen in each training part (with the coefficients) by the fit's own objective; and
    the weight each fold chose."""
    hits, logs, chosen = [], [], []
    for test in F.folds(feats):
        tset = set(test.tolist())
        train = np.array([i for i in range(len(feats)) if i not in tset])
        best: tuple[float, float, list[dict], dict[str, float], float] | None = None
        for w in weights:
            ff = _toward_family(feats, train, float(w))
            tab = F.loss_tables(ff, sched)
            a, b = F.fit(ff, tab, train)
            x = np.array([a[ff[i]["opt"]] + b * ff[i]["t"] for i in train])
            cost = float(F._interp(tab[train], np.repeat(x[:, None], len(F.SEEDS), 1)).sum())
            if best is None or cost < best[0] - 1e-12:
                best = (cost, float(w), ff, a, b)
        assert best is not None
        _, w, ff, a, b = best
        chosen.append(w)
        for i in test:
            sc = score(ff[i]["rec"], sched, [F.suggest_lr(ff[i], s, a, b) for s in F.SEEDS])
            hits.append(sc["hit"])
            logs.append(math.log(sc["ratio"]))
    return float(np.mean(hits)), math.exp(float(np.mean(logs))), chosen


def prior(feats: list[dict[str, Any]]) -> list[list[Any]]:
    """What the sweep adds over a default LR per optimizer family and budget (no sweep: every
    edge replaced by its family's mean edge over the training part), and whether pulling each
    edge part of the way toward that mean (a noisy measurement shrunk toward a prior; the
    weight fitted with the coefficients inside the training part) does better out of fold."""
    rows: list[list[Any]] = [["shipped: the sweep's edge, out of fold", *_pair(feats), "1 (fixed)"]]
    for label, weights in (
        ("no sweep: a default LR per optimizer family and budget, out of fold", [0.0]),
        ("the edge pulled toward its family's mean, weight fitted in each training part, out "
         "of fold", SHRINK_WEIGHTS),
    ):  # fmt: skip
        row: list[Any] = [label]
        chosen = []
        for sched in ("constant", "onecycle"):
            h, g, w = _shrunk_oof(feats, sched, np.asarray(weights))
            row += [f"{h:.0%}", round(g, 3)]
            chosen.append("/".join(f"{v:g}" for v in w))
        rows.append(row + [" ; ".join(chosen) if len(weights) > 1 else "0 (fixed)"])
    return rows


SHAPE_GRID = np.round(np.arange(-7.0, 2.0001, 0.25), 4)  # ln(lr / lr_min)
RESIDUALS = np.round(np.arange(-3.0, 3.0001, 0.05), 4)
NEIGHBOURS = (3, 7, 15)


def _shape(lrs: np.ndarray, losses: np.ndarray, lr_min: float) -> np.ndarray:
    """A curve's shape around its edge: the loss on ``SHAPE_GRID`` (ln(lr / lr_min)), scaled
    so that its minimum reads 0 and its first tenth 1, clipped to [-0.5, 3]; past the end of
    the sweep (divergence) 3."""
    x = np.log(np.asarray(lrs, dtype=float) / lr_min)
    y = np.asarray(losses, dtype=float)
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(y) < 3:
        return np.ones(len(SHAPE_GRID))
    lo, hi = float(y.min()), float(y[: max(3, len(y) // 10)].mean())
    z = np.clip((y - lo) / max(hi - lo, 1e-12), -0.5, 3.0)
    return np.interp(SHAPE_GRID, x, z, left=z[0], right=3.0)


def neighbours(feats: list[dict[str, Any]], results: list[list[Any]]) -> list[list[Any]]:
    """Does a task's curve shape say where its optimum lies relative to its edge? Each sweep
    is described by the shape of its smoothed training curve and its held curve around
    ``lr_min`` (:func:`_shape`); a test task's offset is the family-and-budget offset plus
    the median residual offset of the ``k`` training tasks whose mean shape is nearest
    (Euclidean) to its sweep's. A training task's residual is its own best one given the
    fold's fit (the fit's objective over its 3 seeds). Out of fold, as every row here."""
    shapes = np.array([
        [np.concatenate([_shape(r.lrs, r.smoothed, lm), _shape(r.held_lrs, r.held_losses, lm)])
         for r, lm in zip(rs, f["lr_min"])]
        for f, rs in zip(feats, results)
    ])  # fmt: skip
    mean_shape = shapes.mean(axis=1)
    rows: list[list[Any]] = [["shipped: family-and-budget offset, out of fold", *_pair(feats)]]
    cells: dict[int, list[Any]] = {k: [] for k in NEIGHBOURS}
    for sched in ("constant", "onecycle"):
        tab = F.loss_tables(feats, sched)
        hits: dict[int, list[float]] = {k: [] for k in NEIGHBOURS}
        logs: dict[int, list[float]] = {k: [] for k in NEIGHBOURS}
        for test in F.folds(feats):
            tset = set(test.tolist())
            train = np.array([i for i in range(len(feats)) if i not in tset])
            a, b = F.fit(feats, tab, train)
            base = {i: a[feats[i]["opt"]] + b * feats[i]["t"] for i in range(len(feats))}
            resid = {}
            for i in train:
                x = base[i] + RESIDUALS[:, None] + np.zeros((1, len(F.SEEDS)))
                cost = F._interp(np.broadcast_to(tab[i], (len(RESIDUALS),) + tab[i].shape), x)
                resid[i] = float(RESIDUALS[int(np.argmin(cost.sum(axis=1)))])
            for i in test:
                for k in NEIGHBOURS:
                    lrs = []
                    for s in range(len(F.SEEDS)):
                        d = np.linalg.norm(mean_shape[train] - shapes[i, s][None], axis=1)
                        near = train[np.argsort(d, kind="stable")[:k]]
                        off = base[i] + float(np.median([resid[j] for j in near]))
                        lrs.append(feats[i]["lr_min"][s] * min(math.exp(off), F.EDGE_CAP))
                    sc = score(feats[i]["rec"], sched, lrs)
                    hits[k].append(sc["hit"])
                    logs[k].append(math.log(sc["ratio"]))
        for k in NEIGHBOURS:
            cells[k] += [f"{np.mean(hits[k]):.0%}", round(math.exp(float(np.mean(logs[k]))), 3)]
    for k in NEIGHBOURS:
        rows.append([f"plus the median residual of the {k} nearest curve shapes, out of fold",
                     *cells[k]])  # fmt: skip
    return rows


INNER_FOLDS = 4


def _inner_cost(feats: list[dict[str, Any]], tab: np.ndarray, idx: np.ndarray) -> float:
    """The fit's objective out of fold within the tasks ``idx``: grouped ``INNER_FOLDS``-fold
    cross-validation over their families (each family's tasks scored with the coefficients
    fitted on the other families of ``idx``)."""
    idx = np.asarray(idx, dtype=int)
    total = 0.0
    for part in F.folds([feats[i] for i in idx], INNER_FOLDS):
        held = idx[part.astype(int)]
        fit_on = np.setdiff1d(idx, held)
        if len(held) == 0 or len(fit_on) == 0:
            continue
        a, b = F.fit(feats, tab, fit_on)
        x = np.array([min(a[feats[i]["opt"]] + b * feats[i]["t"], math.log(F.EDGE_CAP))
                      for i in held])  # fmt: skip
        total += float(F._interp(tab[held], np.repeat(x[:, None], len(F.SEEDS), 1)).sum())
    return total


def nested(
    variants: list[tuple[str, list[dict[str, Any]]]],
    schedules: tuple[str, ...] = ("constant", "onecycle", "wcos"),
) -> tuple[dict[str, tuple[float, float]], float, list[str]]:
    """Choosing the edge among ``variants`` (name, per-task features) honestly: in each outer
    fold, the variant with the lowest inner cross-validated objective (:func:`_inner_cost`,
    summed over ``schedules``) on the training families is chosen, its coefficients fitted
    there, and the outer fold scored with both. Returns per schedule the out-of-fold hits and
    gm, the seed spread (share of tasks within 2x) and the name chosen in each fold."""
    tabs = {(v, s): F.loss_tables(f, s) for v, (_, f) in enumerate(variants) for s in schedules}
    n = len(variants[0][1])
    hits: dict[str, list[float]] = {s: [] for s in schedules}
    logs: dict[str, list[float]] = {s: [] for s in schedules}
    agree: list[bool] = []
    chosen: list[str] = []
    for test in F.folds(variants[0][1]):
        tset = set(test.tolist())
        train = np.array([i for i in range(n) if i not in tset])
        costs = [
            sum(_inner_cost(f, tabs[(v, s)], train) for s in schedules)
            for v, (_, f) in enumerate(variants)
        ]
        v = int(np.argmin(costs))
        name, feats = variants[v]
        chosen.append(name)
        for s in schedules:
            a, b = F.fit(feats, tabs[(v, s)], train)
            for i in test:
                lrs = [F.suggest_lr(feats[i], k, a, b) for k in F.SEEDS]
                sc = score(feats[i]["rec"], s, lrs)
                hits[s].append(sc["hit"])
                logs[s].append(math.log(sc["ratio"]))
        agree += [agrees(feats[i]["lr_min"]) for i in test]
    out = {s: (float(np.mean(hits[s])), math.exp(float(np.mean(logs[s])))) for s in schedules}
    return out, float(np.mean(agree)), chosen


def oracle_agreement(recs: list[dict[str, Any]]) -> list[list[Any]]:
    """How well the oracle agrees with itself: per schedule, the share of tasks whose two
    oracle seeds' best LRs are within 2x (the one-cycle grid's spacing is 1.78x: the same or
    the next grid point), the correlation of the two seeds' log best LRs across tasks, and
    the standard deviation (ln) of one seed's best LR around the pair's mean."""
    rows: list[list[Any]] = []
    for sched, label in (("constant", "constant"), ("onecycle", "one-cycle")):
        a, b = [], []
        for rec in recs:
            grid, losses, _ = oracle_curves(rec, sched)
            a.append(math.log(grid[int(np.argmin(losses[0]))]))
            b.append(math.log(grid[int(np.argmin(losses[1]))]))
        x, y = np.array(a), np.array(b)
        within = float(np.mean(np.abs(x - y) <= math.log(2.0) + 1e-9))
        rows.append([label, f"{within:.0%}", round(float(np.corrcoef(x, y)[0, 1]), 3),
                     round(float(np.std(x - y) / 2), 2)])  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    recs = load()
    replays: dict[tuple[tuple[str, int], ...], list[list[Any]]] = {}
    rows = []
    every: list[tuple[str, list[dict[str, Any]]]] = []
    for name, cost, opts, fn in VARIANTS:
        key = tuple(sorted(opts.items()))
        if key not in replays:
            replays[key] = [
                [replay(rec, s, total_steps=rec["steps"], **opts) for s in F.SEEDS] for rec in recs
            ]
        feats = []
        for rec, rs in zip(recs, replays[key]):
            feats.append({
                "group": rec["spec"]["family"], "opt": optimizer_kind(rec),
                "t": math.log(rec["steps"] / 1000.0), "rec": rec,
                "lr_min": [float(fn(r)) for r in rs],
            })  # fmt: skip
        ch, cg = oof(feats, "constant")
        oh, og = oof(feats, "onecycle")
        share = spread(feats)
        sd = float(np.mean([np.std(np.log10(f["lr_min"])) for f in feats]))
        if not rows:
            shipped = feats
        every.append((name, feats))
        rows.append([name, cost, f"{ch:.0%}", round(cg, 3), f"{oh:.0%}", round(og, 3),
                     f"{share:.0%}", round(sd, 3)])  # fmt: skip
        print(" | ".join(map(str, rows[-1])), flush=True)
    cols = ["variant", "held forwards / step", "constant hits", "constant gm",
            "one-cycle hits", "one-cycle gm", "seed spread <= 2x", "sd log10 lr_min"]  # fmt: skip
    c2 = ["lr_min and offset", "constant hits", "constant gm", "one-cycle hits", "one-cycle gm"]
    r2, r3 = ceiling(shipped)
    for r in r2 + r3:
        print(" | ".join(map(str, r)), flush=True)
    c3 = ["schedule", "sd of the best offset across tasks (ln)",
          "sd left by the family-and-budget fit (ln)"]  # fmt: skip
    pri = prior(shipped)
    for r in pri:
        print(" | ".join(map(str, r)), flush=True)
    c5 = ["edge", "constant hits", "constant gm", "one-cycle hits", "one-cycle gm",
          "weight on the edge (per fold: constant ; one-cycle)"]  # fmt: skip
    near = neighbours(shipped, replays[()])
    for r in near:
        print(" | ".join(map(str, r)), flush=True)
    c7 = ["offset", "constant hits", "constant gm", "one-cycle hits", "one-cycle gm"]
    picked, nested_share, chosen = nested(every, ("constant", "onecycle"))
    names = sorted(set(chosen), key=chosen.index)
    nest = [
        ["the shipped edge, out of fold", *rows[0][2:7]],
        [
            f"the edge chosen among the {len(every)} variants of the first table inside each "
            "training part, "
            "out of fold",
            f"{picked['constant'][0]:.0%}",
            round(picked["constant"][1], 3),
            f"{picked['onecycle'][0]:.0%}",
            round(picked["onecycle"][1], 3),
            f"{nested_share:.0%}",
        ],
    ]
    nest_note = [[f"fold {k + 1}", f"row {1 + [n for n, _ in every].index(c)}: {c}"]
                 for k, c in enumerate(chosen)]  # fmt: skip
    print(" | ".join(map(str, nest[1])), names, flush=True)
    c6 = ["edge", "constant hits", "constant gm", "one-cycle hits", "one-cycle gm",
          "seed spread <= 2x"]  # fmt: skip
    agree = oracle_agreement(recs)
    for r in agree:
        print(" | ".join(map(str, r)), flush=True)
    c4 = ["schedule", "oracle seeds' best LRs within 2x", "correlation of their log best LRs",
          "sd of one seed's best around the pair's (ln)"]  # fmt: skip
    if args.json:
        tabs = {
            "variants": {"columns": cols, "rows": rows},
            "ceiling": {"columns": c2, "rows": r2},
            "offsets": {"columns": c3, "rows": r3},
            "oracle": {"columns": c4, "rows": agree},
            "prior": {"columns": c5, "rows": pri},
            "neighbours": {"columns": c7, "rows": near},
            "nested": {"columns": c6, "rows": nest},
            "nested_choice": {"columns": ["outer fold", "edge chosen"], "rows": nest_note},
        }
        with open(args.json, "w") as f:
            doc = {"tables": tabs, "n_tasks": len(recs)}
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
