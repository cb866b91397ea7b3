"""Where the shipped rule misses on the zoo, and whether normalization layers explain it.

Scores the shipped rule out of fold exactly as ``benchmarks/finder_zoo.py`` does (grouped
5-fold cross-validation over task families, ``fit_rule.cross_validate``) and splits the
tasks by what their model holds (BatchNorm; LayerNorm without BatchNorm; neither) and by the
size of the oracle's loss (below 0.01, where the hit's ``+ 0.01`` dominates and the loss ratio
is one between small numbers). For each group: hits, gm, and the mean of ln(suggested LR /
oracle's best LR), whose sign says whether the suggestions sit low or high.

A layer that normalizes its input makes the weights before it scale-invariant: their
effective step is ``lr / |w|^2``, and as training grows ``|w|``, a rate that is too large at
the start (where the sweep measures) becomes usable later. If that moved the optimum, the
suggestions on such models would sit low, and one more offset for them would help. The
``offset`` table fits that offset (one per schedule, shared by the optimizer families) with
the family-and-budget coefficients inside each training part and scores out of fold.

    python benchmarks/zoo/breakdown.py --json benchmarks/results/finder_breakdown.json  # ~2 min
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import fit_rule as F  # noqa: E402
from replay import load, score  # noqa: E402

from lrkit.finder.rules import EDGE_CAP  # noqa: E402

SHOWN = ("constant", "onecycle")
OFFSET_SCHEDULES = ("constant", "onecycle", "wcos")
NAMES = {"constant": "constant", "onecycle": "one-cycle", "wcos": "warmup-cosine"}
C_GRID = np.round(np.arange(-1.0, 3.0001, 0.1), 4)  # the extra offset, ln units
TINY = 0.01  # oracle losses below this: the hit's absolute term dominates
WORST = 10


def norm_layers(spec: dict[str, Any]) -> str:
    """``"batchnorm"``, ``"layernorm"`` or ``"none"``: what the task's model holds."""
    import tasks
    import torch

    model = tasks.build(spec).model_fn()
    kinds = {type(m) for m in model.modules()}
    if any(issubclass(k, torch.nn.modules.batchnorm._BatchNorm) for k in kinds):
        return "batchnorm"
    if any(issubclass(k, torch.nn.LayerNorm) for k in kinds):
        return "layernorm"
    return "none"


def _shift(tab: np.ndarray, c: float) -> np.ndarray:
    """``tab[..., OFFSETS]`` read at ``OFFSETS + c`` (clamped at the ends)."""
    out = np.empty_like(tab)
    for idx in np.ndindex(tab.shape[:-1]):
        out[idx] = np.interp(F.OFFSETS + c, F.OFFSETS, tab[idx])
    return out


def _cost(
    feats: list[dict[str, Any]], tab: np.ndarray, idx: np.ndarray, a: dict, b: float
) -> float:
    x = np.array([[a[feats[i]["opt"]] + b * feats[i]["t"]] * len(F.SEEDS) for i in idx])
    return float(F._interp(tab[idx], x).sum())


def fit_with_offset(
    feats: list[dict[str, Any]], tab: np.ndarray, idx: np.ndarray, mark: np.ndarray
) -> tuple[dict[str, float], float, float]:
    """(a, b, c): the family-and-budget fit plus an offset ``c`` for the ``mark``ed tasks,
    chosen on ``C_GRID`` by the fit's own objective over tasks ``idx``."""
    best: tuple[float, dict[str, float], float, float] | None = None
    for c in C_GRID:
        moved = tab.copy()
        moved[mark] = _shift(tab[mark], float(c))
        a, b = F.fit(feats, moved, idx)
        cost = _cost(feats, moved, idx, a, b)
        if best is None or cost < best[0] - 1e-12:
            best = (cost, a, b, float(c))
    assert best is not None
    return best[1], best[2], best[3]


def offset_cv(feats: list[dict[str, Any]], mark: np.ndarray, sched: str) -> tuple[list, list]:
    """Out-of-fold LRs (per task, per seed) with the extra offset, and each fold's ``c``."""
    tab = F.loss_tables(feats, sched)
    lrs: list[list[float]] = [[] for _ in feats]
    cs = []
    for test in F.folds(feats):
        train = np.array([i for i in range(len(feats)) if i not in set(test)])
        a, b, c = fit_with_offset(feats, tab, train, mark)
        cs.append(c)
        for i in test:
            f = feats[i]
            x = a[f["opt"]] + b * f["t"] + (c if mark[i] else 0.0)
            lrs[i] = [f["lr_min"][s] * min(math.exp(x), EDGE_CAP) for s in F.SEEDS]
    return lrs, cs


def _summary(scores: list[dict[str, float]], lrs: list[list[float]]) -> list[Any]:
    hits = float(np.mean([s["hit"] for s in scores]))
    gm = float(np.exp(np.mean([math.log(s["ratio"]) for s in scores])))
    bias = float(
        np.mean([np.mean(np.log(np.asarray(lr) / s["best_lr"])) for s, lr in zip(scores, lrs)])
    )
    return [f"{hits:.0%}", round(gm, 3), round(bias, 2)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    recs = load()
    feats = F.features(recs)
    kinds = np.array([norm_layers(rec["spec"]) for rec in recs])
    cv = F.cross_validate(feats)
    scores = {
        s: [score(f["rec"], s, cv["lrs"][s][i]) for i, f in enumerate(feats)]
        for s in OFFSET_SCHEDULES
    }
    tiny = np.array([s["oracle"] < TINY for s in scores["constant"]])
    groups = [
        ("all tasks", np.ones(len(feats), bool)),
        ("models with BatchNorm", kinds == "batchnorm"),
        ("models with LayerNorm (no BatchNorm)", kinds == "layernorm"),
        ("models without either", kinds == "none"),
        (f"oracle's constant-rate loss below {TINY}", tiny),
        (f"oracle's constant-rate loss {TINY} or more", ~tiny),
    ]
    cols = ["tasks", "n"]
    for s in SHOWN:
        cols += [f"{NAMES[s]} hits", f"{NAMES[s]} gm", f"{NAMES[s]} mean ln(suggested / best)"]
    rows = []
    for name, m in groups:
        row: list[Any] = [name, int(m.sum())]
        for s in SHOWN:
            idx = np.flatnonzero(m)
            row += _summary([scores[s][i] for i in idx], [cv["lrs"][s][i] for i in idx])
        rows.append(row)
        print(" | ".join(map(str, row)), flush=True)
    tables: dict[str, Any] = {"groups": {"columns": cols, "rows": rows}}

    # how much of the gm's log the few worst tasks carry
    crow = []
    for s in SHOWN:
        raw = np.array([math.log(x["ratio"]) for x in scores[s]])
        order = np.argsort(-raw, kind="stable")
        logs, worst = raw[order], order[:WORST]
        crow.append([
            NAMES[s], round(float(np.exp(logs.mean())), 3),
            f"{logs[:WORST].sum() / logs.sum():.0%}",
            round(float(np.exp(logs[WORST:].mean())), 3),
            f"{int((kinds[worst] != 'none').sum())} / {int(tiny[worst].sum())}",
        ])  # fmt: skip
    tables["concentration"] = {
        "columns": ["schedule", "gm, all tasks", f"share of ln(gm) from the {WORST} worst tasks",
                    f"gm of the other {len(feats) - WORST}",
                    "of the worst: normalized models / oracle's loss below 0.01"],
        "rows": crow,
    }  # fmt: skip

    orow = [["shipped: family-and-budget offset, out of fold"]]
    for s in OFFSET_SCHEDULES:
        orow[0] += _summary(scores[s], cv["lrs"][s])[:2]
    orow[0].append("-")
    for label, mark in (
        ("BatchNorm", kinds == "batchnorm"),
        ("BatchNorm or LayerNorm", kinds != "none"),
    ):
        row = [f"plus an offset for models with {label}, fitted in each training part, out of fold"]
        chosen = []
        for s in OFFSET_SCHEDULES:
            lrs, cs = offset_cv(feats, mark, s)
            row += _summary([score(f["rec"], s, lrs[i]) for i, f in enumerate(feats)], lrs)[:2]
            chosen.append("/".join(f"{c:+.1f}" for c in cs))
        row.append(" ; ".join(chosen))
        orow.append(row)
        print(" | ".join(map(str, row)), flush=True)
    tables["offset"] = {
        "columns": ["offset"]
        + [f"{NAMES[s]} {k}" for s in OFFSET_SCHEDULES for k in ("hits", "gm")]
        + ["extra offset per fold, ln (" + " ; ".join(NAMES[s] for s in OFFSET_SCHEDULES) + ")"],
        "rows": orow,
    }  # fmt: skip
    if args.json:
        doc = {"tables": tables, "n_tasks": len(recs)}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
