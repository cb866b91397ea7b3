"""Fit the default rule's coefficients on the zoo cache, and score it out of fold.

The rule (``lrkit.finder.rules``, ``"budget_edge"``) reads ``lr_min``, the minimum of the
smoothed held-batch curve, and suggests ``lr_min * exp(a[schedule, optimizer] + b[schedule] *
ln(total_steps / 1000))``, capped at ``EDGE_CAP * lr_min`` (a stability limit: the
fit is made without it, and the cap applies to the fitted rule's suggestions). For a
schedule, the fit picks ``b`` on a grid and, given ``b``,
each optimizer family's ``a`` on a grid, minimising the sum over tasks and sweep seeds of
``miss + min(ln(loss / oracle), ln 3)`` (``miss`` is 1 when the loss of the suggested LR,
read off the oracle grid, is above 1.1 x the oracle's + 0.01).

Grouped k-fold cross-validation: a group is a task family (same data and model kind; the
T/H/V tasks belong to the family of their data and model), folds are formed from whole
families, so no family is in both the fitting and the scoring part. Every number reported
by ``benchmarks/finder_zoo.py`` is out of fold.

With probes (``probe_data=``), the same fit is made for the edge the probes move
(:func:`probed`, from ``probes.py``'s cache) and written as ``PROBED_INTERCEPT`` and
``PROBED_BUDGET_SLOPE``. Its stability cap is part of the fit: for each schedule, the cap of
``PROBE_CAPS`` with the lowest objective under grouped cross-validation inside the fitting
part (:func:`choose_cap`; the probes trained at rates around the edge, so how close to it a
rate may go is read off the zoo rather than fixed), written as ``PROBED_EDGE_CAP``; the
out-of-fold numbers choose it inside each training part (a nested choice).

    python benchmarks/zoo/fit_rule.py            # print the full-data fits
    python benchmarks/zoo/fit_rule.py --write    # also write src/lrkit/finder/_coefficients.py
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from replay import SCHEDULES, load, loss_at, optimizer_kind, oracle_curves, replay  # noqa: E402

from lrkit.finder.rules import EDGE_CAP  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
COEF_PATH = os.path.join(ROOT, "src", "lrkit", "finder", "_coefficients.py")
FAMILIES = ("sgd", "momentum", "adaptive")
SCHED_KEY = {"constant": "constant", "onecycle": "onecycle", "wcos": "warmup_cosine"}
A_GRID = np.round(np.arange(-5.0, 2.0001, 0.05), 4)
B_GRID = np.round(np.arange(-1.5, 0.30001, 0.05), 4)
OFFSETS = np.round(np.arange(-8.0, 4.0001, 0.05), 4)  # ln(lr / lr_min) table
CAP = math.log(3.0)
MISS_WEIGHT = 1.0  # objective: misses, then the capped log loss ratio
K_FOLDS = 5
SEEDS = (0, 1, 2)
#: the stability caps compared for the suggestions made from the probes' edge
PROBE_CAPS = (0.5, 0.74, 1.0)


def sweep_options() -> dict[str, Any]:
    """The finder's defaults (what a user gets), as replayed on the cache."""
    return {}


def features(recs: list[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
    """Per task: family, optimizer family, budget, per seed the replayed result."""
    out = []
    for rec in recs:
        results = [replay(rec, s, total_steps=rec["steps"], **options) for s in SEEDS]
        out.append({
            "name": rec["spec"]["name"],
            "group": rec["spec"]["family"],
            "set": rec["spec"]["set"],
            "opt": optimizer_kind(rec),
            "t": math.log(rec["steps"] / 1000.0),
            "results": results,
            "lr_min": [float(r.lr_min) for r in results],
            "rec": rec,
        })  # fmt: skip
    return out


def probed(feats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``feats`` with each sweep's edge moved by its probes (``probes.py``'s cache, the
    validation loss after ``PROBE_STEPS`` steps), as the finder moves it with ``probe_data``:
    ``lrkit.finder.Probes(...).edge``."""
    import probes as P  # (it imports this module)

    from lrkit.finder.probes import PROBE_STEPS, Probes, probe_lrs

    runs = P.load_probes([f["rec"] for f in feats], feats)
    out = []
    for f, per_seed in zip(feats, runs):
        edges = []
        for lm, per in zip(f["lr_min"], per_seed):
            losses = tuple(float(p[PROBE_STEPS][P.MEASURES.index("validation")]) for p in per)
            edges.append(Probes(lr_min=lm, lrs=probe_lrs(lm), losses=losses).edge)
        out.append(dict(f, lr_min=edges))
    return out


def loss_tables(feats: list[dict[str, Any]], schedule: str) -> np.ndarray:
    """capped ln(loss / oracle) at ``lr_min * exp(OFFSETS)``: [task, seed, offset]."""
    tab = np.empty((len(feats), len(SEEDS), len(OFFSETS)))
    for i, f in enumerate(feats):
        grid, losses, best = oracle_curves(f["rec"], schedule)
        for s, lm in enumerate(f["lr_min"]):
            for k, off in enumerate(OFFSETS):
                tab[i, s, k] = loss_at(grid, losses, lm * math.exp(off))
        thr = math.log(1.1 + 0.01 / best)  # a hit: loss <= 1.1 x oracle + 0.01
        lr_ = np.log(tab[i] / best)
        tab[i] = MISS_WEIGHT * (lr_ > thr) + np.minimum(lr_, CAP)
    return tab


def _interp(tab: np.ndarray, x: np.ndarray) -> np.ndarray:
    """tab[..., OFFSETS] at offsets x (same leading shape), linear."""
    pos = np.clip((x - OFFSETS[0]) / 0.05, 0, len(OFFSETS) - 1.000001)
    lo = np.floor(pos).astype(int)
    w = pos - lo
    a = np.take_along_axis(tab, lo[..., None], -1)[..., 0]
    b = np.take_along_axis(tab, (lo + 1)[..., None], -1)[..., 0]
    return a * (1 - w) + b * w


def fit(feats: list[dict[str, Any]], tab: np.ndarray, idx: np.ndarray) -> tuple[dict, float]:
    """Coefficients ({family: a}, b) minimising the capped loss over tasks ``idx``."""
    t = np.array([feats[i]["t"] for i in idx])
    opts = np.array([feats[i]["opt"] for i in idx])
    sub = tab[idx]  # [task, seed, offset]
    best: tuple[float, dict[str, float], float] | None = None
    for b in B_GRID:
        a_fit: dict[str, float] = {}
        total = 0.0
        for fam in FAMILIES:
            m = opts == fam
            if not m.any():
                a_fit[fam] = float("nan")
                continue
            # x[a, task, seed] = a + b t
            x = A_GRID[:, None, None] + b * t[m][None, :, None]
            x = np.broadcast_to(x, (len(A_GRID), int(m.sum()), len(SEEDS)))
            vals = _interp(np.broadcast_to(sub[m][None], (len(A_GRID),) + sub[m].shape), x)
            cost = vals.sum(axis=(1, 2))
            j = int(np.argmin(cost))
            a_fit[fam] = float(A_GRID[j])
            total += float(cost[j])
        if best is None or total < best[0] - 1e-12:
            best = (total, a_fit, float(b))
    assert best is not None
    a_fit = best[1]
    known = [v for v in a_fit.values() if not math.isnan(v)]
    for fam in FAMILIES:  # a family absent from the fitting part: the mean of the others
        if math.isnan(a_fit[fam]):
            a_fit[fam] = float(np.mean(known))
    return a_fit, best[2]


def folds(feats: list[dict[str, Any]], k: int = K_FOLDS) -> list[np.ndarray]:
    """Indices of the tasks of each fold; families dealt round-robin in sorted order."""
    groups = sorted({f["group"] for f in feats})
    fold_of = {g: i % k for i, g in enumerate(groups)}
    return [
        np.array([i for i, f in enumerate(feats) if fold_of[f["group"]] == j]) for j in range(k)
    ]


def suggest_lr(
    f: dict[str, Any], seed: int, a: dict[str, float], b: float, cap: float = EDGE_CAP
) -> float:
    return f["lr_min"][seed] * min(math.exp(a[f["opt"]] + b * f["t"]), cap)


def _objective(feats: list[dict[str, Any]], tab: np.ndarray, idx: np.ndarray, a: dict[str, float],
               b: float, cap: float) -> float:  # fmt: skip
    """The fit's objective over tasks ``idx`` for coefficients ``(a, b)`` capped at ``cap``."""
    x = np.array([[min(a[feats[i]["opt"]] + b * feats[i]["t"], math.log(cap))] * len(SEEDS)
                  for i in idx])  # fmt: skip
    return float(_interp(tab[idx], x).sum())


def choose_cap(feats: list[dict[str, Any]], tab: np.ndarray, idx: np.ndarray) -> float:
    """The cap of ``PROBE_CAPS`` with the lowest objective out of fold within tasks ``idx``
    (grouped ``K_FOLDS - 1``-fold cross-validation over their families; ties: the lower
    cap)."""
    groups = sorted({feats[i]["group"] for i in idx})
    fold_of = {g: j % (K_FOLDS - 1) for j, g in enumerate(groups)}
    inner = [np.array([i for i in idx if fold_of[feats[i]["group"]] == j])
             for j in range(K_FOLDS - 1)]  # fmt: skip
    totals = dict.fromkeys(PROBE_CAPS, 0.0)
    for test in inner:
        train = np.array([i for i in idx if i not in set(test)])
        a, b = fit(feats, tab, train)
        for cap in PROBE_CAPS:
            totals[cap] += _objective(feats, tab, test, a, b, cap)
    return min(PROBE_CAPS, key=lambda c: (totals[c], c))


def cross_validate(feats: list[dict[str, Any]], *, nested_cap: bool = False) -> dict[str, Any]:
    """OOF LRs per schedule: {schedule: [[lr per seed] per task]} and the fold fits. With
    ``nested_cap`` (the probes' rule), each fold's cap is chosen inside its training part
    (:func:`choose_cap`); else it is ``EDGE_CAP``."""
    out: dict[str, Any] = {"lrs": {}, "fits": {}}
    fs = folds(feats)
    for sched in SCHEDULES:
        tab = loss_tables(feats, sched)
        lrs: list[list[float]] = [[] for _ in feats]
        fits = []
        for test in fs:
            train = np.array([i for i in range(len(feats)) if i not in set(test)])
            a, b = fit(feats, tab, train)
            cap = choose_cap(feats, tab, train) if nested_cap else EDGE_CAP
            fits.append({"a": a, "b": b, "cap": cap})
            for i in test:
                lrs[i] = [suggest_lr(feats[i], s, a, b, cap) for s in SEEDS]
        out["lrs"][sched] = lrs
        out["fits"][sched] = fits
    return out


def full_caps(feats: list[dict[str, Any]]) -> dict[str, float]:
    """The cap :func:`choose_cap` picks on every task, by schedule (the probes' rule)."""
    idx = np.arange(len(feats))
    return {sched: choose_cap(feats, loss_tables(feats, sched), idx) for sched in SCHEDULES}


def full_fit(feats: list[dict[str, Any]]) -> dict[str, tuple[dict[str, float], float]]:
    out = {}
    for sched in SCHEDULES:
        tab = loss_tables(feats, sched)
        out[sched] = fit(feats, tab, np.arange(len(feats)))
    return out


def _intercepts(name: str, coefs: dict[str, tuple[dict[str, float], float]]) -> list[str]:
    """The lines of the intercept table ``name``: {schedule: {optimizer family: a}}."""
    lines = [f"{name}: dict[str, dict[str, float]] = {{"]
    for sched in SCHEDULES:
        a, _ = coefs[sched]
        inner = ", ".join(f'"{k}": {a[k]:.2f}' for k in FAMILIES)
        lines.append(f'    "{SCHED_KEY[sched]}": {{{inner}}},')
    return [*lines, "}"]


def write_coefficients(
    coefs: dict[str, tuple[dict[str, float], float]],
    probed_coefs: dict[str, tuple[dict[str, float], float]],
    n_tasks: int,
    steps: tuple[int, int],
    probed_caps: dict[str, float],
) -> None:
    lines = [
        '"""Coefficients of the default rule (``budget_edge``), written by',
        "``benchmarks/zoo/fit_rule.py --write`` from the task zoo's cache "
        f"({n_tasks} tasks). Do not",
        'edit by hand."""',
        "",
        "from __future__ import annotations",
        "",
        'SCHEDULES: tuple[str, ...] = ("constant", "onecycle", "warmup_cosine")',
        "#: ln(lr / lr_min) at 1000 steps, by schedule and optimizer family",
        *_intercepts("INTERCEPT", coefs),
    ]
    lines.append("#: d ln(lr) / d ln(total_steps), by schedule")
    inner = ", ".join(f'"{SCHED_KEY[s]}": {coefs[s][1]:.2f}' for s in SCHEDULES)
    lines.append(f"BUDGET_SLOPE: dict[str, float] = {{{inner}}}")
    lines.append(
        "#: the budgets of the zoo: total_steps is clamped into this range (no extrapolation)"
    )
    lines.append(f"STEPS_RANGE: tuple[int, int] = ({steps[0]}, {steps[1]})")
    lines.append("#: ln(lr / edge) at 1000 steps from the probes' edge (``probes.Probes.edge``)")
    lines += _intercepts("PROBED_INTERCEPT", probed_coefs)
    lines.append("#: d ln(lr) / d ln(total_steps) from the probes' edge")
    lines.append("PROBED_BUDGET_SLOPE: dict[str, float] = {")
    lines += [f'    "{SCHED_KEY[s]}": {probed_coefs[s][1]:.2f},' for s in SCHEDULES]
    lines.append("}")
    lines.append("#: the stability cap of the suggestions from the probes' edge (times that edge),")
    lines.append("#: chosen by grouped cross-validation among fit_rule.PROBE_CAPS, by schedule")
    lines.append("PROBED_EDGE_CAP: dict[str, float] = {")
    lines += [f'    "{SCHED_KEY[s]}": {probed_caps[s]},' for s in SCHEDULES]
    lines.append("}")
    with open(COEF_PATH, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="write the coefficients module")
    ap.add_argument("--packed", action="store_true", help="only the packed cache")
    args = ap.parse_args(argv)
    recs = load(packed=args.packed)
    feats = features(recs, **sweep_options())
    coefs = full_fit(feats)
    for sched, (a, b) in coefs.items():
        print(f"{sched:9s} a={a} b={b}")
    moved = probed(feats)
    probed_coefs = full_fit(moved)
    caps = full_caps(moved)
    for sched, (a, b) in probed_coefs.items():
        print(f"{sched:9s} with probes: a={a} b={b} cap={caps[sched]}")
    if args.write:
        steps = [r["steps"] for r in recs]
        write_coefficients(coefs, probed_coefs, len(recs), (min(steps), max(steps)), caps)
        print(f"wrote {COEF_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
