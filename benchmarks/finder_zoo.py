"""The finder's suggestions on the task zoo, out of fold, next to torch-lr-finder and fastai.

Everything is replayed from the zoo cache (``benchmarks/zoo/``; rebuild it with
``python benchmarks/zoo/build.py --jobs 2``): each task's three raw sweeps (seeds 0-2) and its
grid oracle (2 seeds; constant, one-cycle, warmup-cosine). For each method and task:

* ``lrkit`` (``budget_edge``): the finder with its defaults (held-batch loss every 4 steps,
  1 held batch, extension) replayed through ``lrkit.finder.Sweep``, with ``total_steps`` = the
  task's budget; its coefficients fitted by grouped 5-fold cross-validation over task
  families (``benchmarks/zoo/fit_rule.py``), each task scored with the fit of the folds that
  do not contain its family;
* ``lrkit, probes (probe_data)``: the same, after the probe runs around the edge
  (``probe_data=``, :mod:`lrkit.finder.probes`; 8 x 60 steps, scored on the task's
  validation set; ``benchmarks/zoo/probes.py``'s cache), its coefficients fitted and scored
  the same way;
* ``lrkit 0.x rule``: the rule lrkit shipped before (``lr_min / 10`` constant, ``/ 3``
  one-cycle, on the lag-free training-loss curve);
* ``torch-lr-finder``: its smoothing (``smooth_f=0.05``), stop (``diverge_th=5``) and
  suggestion (steepest gradient after skipping 10 first / 5 last points) on the same sweep's
  training losses;
* ``fastai valley/slide/minimum/steep``: fastai's smoothing (debiased EMA, beta 0.98),
  stop (4x the best smoothed loss) and trimming (``num_it // 10`` first, 5 last points).

torch-lr-finder's and fastai's LR is used for every schedule, as their users do. A method's
loss on a task is the mean over the 3 sweep seeds of the oracle's mean (over its 2 seeds)
final validation loss at the suggested LR, read off the grid (log-log interpolation); a hit is
a loss <= 1.1 x the oracle's + 0.01. ``gm`` is the geometric mean of loss / oracle; ``spread
<= 2x`` the share of tasks whose 3 seeds' suggestions are within a factor 2.

    python benchmarks/finder_zoo.py --json benchmarks/results/finder_zoo.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "zoo"))

import fit_rule  # noqa: E402
from replay import SCHEDULES, load, score  # noqa: E402

from lrkit.finder import smooth_ema, smooth_seeded, suggest  # noqa: E402
from lrkit.finder.smoothing import robust_smooth  # noqa: E402

SCHED_NAMES = {"constant": "constant", "onecycle": "one-cycle", "wcos": "warmup-cosine"}
N_DEFAULT = 100  # the default sweep: 1e-7 .. 10 in 100 steps
PROBED = "lrkit, probes (probe_data)"


def _default_lrs(n: int) -> np.ndarray:
    return 1e-7 * (10 ** (8 / 99)) ** np.arange(n)


def _stopped(smoothed: np.ndarray, factor: float) -> int:
    """The points a range test records before it stops: up to the first smoothed loss above
    ``factor`` times the best before it (that one included), as torch-lr-finder (5) and
    fastai (4) stop."""
    for i in range(1, len(smoothed)):
        if smoothed[i] > factor * float(np.min(smoothed[:i])):
            return i + 1
    return len(smoothed)


def torch_lr_finder(train: list[float]) -> float:
    """torch-lr-finder's suggestion on the first ``N_DEFAULT`` losses of a sweep, stopped
    where its range test stops."""
    y = np.asarray(train[:N_DEFAULT], dtype=float)
    n = _stopped(smooth_seeded(y), 5)
    return suggest(_default_lrs(n), y[:n], rule="steepest")


def fastai(train: list[float]) -> dict[str, float]:
    """fastai's four suggestions on the first ``N_DEFAULT`` losses of a sweep, stopped where
    its ``lr_find`` stops."""
    y = np.asarray(train[:N_DEFAULT], dtype=float)
    n = _stopped(smooth_ema(y, beta=0.98), 4)
    lrs = _default_lrs(n)
    return {
        r: suggest(lrs, y[:n], rule=r, num_iter=N_DEFAULT)
        for r in ("valley", "slide", "minimum", "steep")
    }


def old_rule(train: list[float]) -> tuple[float, float]:
    """lrkit's previous default: lr_min / 10 and / 3 on the lag-free training curve (the
    no-descent branch and the stop at 5x the EMA's best included)."""
    y = np.asarray(train[:N_DEFAULT])
    n = _stopped(smooth_ema(y, beta=0.9), 5)
    y = y[:n]
    lrs = _default_lrs(n)
    r = robust_smooth(y)
    m = int(np.argmin(r))
    return float(lrs[m]) / 10, float(lrs[m]) / 3


def evaluate(
    feats: list[dict[str, Any]], cv: dict[str, Any], cv_probed: dict[str, Any]
) -> dict[str, Any]:
    """Per method, schedule and task: the score dict."""
    methods = ["lrkit", PROBED, "lrkit 0.x rule", "torch-lr-finder"] + [
        f"fastai {r}" for r in ("valley", "slide", "minimum", "steep")
    ]
    out: dict[str, dict[str, list[dict[str, float]]]] = {
        m: {s: [] for s in SCHEDULES} for m in methods
    }
    for i, f in enumerate(feats):
        sweeps = f["rec"]["sweeps"]
        tlf = [torch_lr_finder(sw["train"]) for sw in sweeps]
        fa = [fastai(sw["train"]) for sw in sweeps]
        old = [old_rule(sw["train"]) for sw in sweeps]
        for sched in SCHEDULES:
            rec = f["rec"]
            out["lrkit"][sched].append(score(rec, sched, cv["lrs"][sched][i]))
            out[PROBED][sched].append(score(rec, sched, cv_probed["lrs"][sched][i]))
            oi = 0 if sched == "constant" else 1
            out["lrkit 0.x rule"][sched].append(score(rec, sched, [o[oi] for o in old]))
            out["torch-lr-finder"][sched].append(score(rec, sched, tlf))
            for r in ("valley", "slide", "minimum", "steep"):
                out[f"fastai {r}"][sched].append(score(rec, sched, [d[r] for d in fa]))
    return out


def summary(rows: list[dict[str, float]]) -> tuple[float, float, float]:
    hits = float(np.mean([r["hit"] for r in rows]))
    gm = float(np.exp(np.mean([math.log(r["ratio"]) for r in rows])))
    spread = float(np.mean([r["spread"] <= 2.0 for r in rows]))
    return hits, gm, spread


def tables(feats: list[dict[str, Any]], res: dict[str, Any]) -> dict[str, Any]:
    n = len(feats)
    cols = ["method"]
    for s in SCHEDULES:
        cols += [f"{SCHED_NAMES[s]} hits", f"{SCHED_NAMES[s]} gm"]
    cols.append("seed spread <= 2x")
    rows = []
    for m, by in res.items():
        row: list[Any] = [m]
        for s in SCHEDULES:
            h, g, _ = summary(by[s])
            row += [f"{round(h * n)}/{n} ({h:.0%})", round(g, 3)]
        row.append(f"{summary(by['constant'])[2]:.0%}")
        rows.append(row)
    out = {"oof": {"columns": cols, "rows": rows}}
    # per named set and per family: lrkit vs the best-known competitors
    show = ["lrkit", "torch-lr-finder", "fastai valley"]
    for key, label in (("set", "set"), ("group", "family")):
        names = sorted({f[key] for f in feats})
        c2 = [label, "tasks"] + [f"{m} const/1cyc hits" for m in show]
        r2 = []
        for nm in names:
            idx = [i for i, f in enumerate(feats) if f[key] == nm]
            row = [nm, len(idx)]
            for m in show:
                hc = sum(res[m]["constant"][i]["hit"] for i in idx)
                ho = sum(res[m]["onecycle"][i]["hit"] for i in idx)
                row.append(f"{int(hc)}/{int(ho)}")
            r2.append(row)
        out[f"by_{label}"] = {"columns": c2, "rows": r2}
    c3 = ["task", "family", "steps", "opt", "oracle const", "lrkit const", "ratio",
          "oracle 1cyc", "lrkit max_lr", "ratio", "spread"]  # fmt: skip
    r3 = []
    for i, f in enumerate(feats):
        a, b = res["lrkit"]["constant"][i], res["lrkit"]["onecycle"][i]
        lr_c = float(np.exp(np.mean(np.log(RES_LRS["constant"][i]))))
        lr_o = float(np.exp(np.mean(np.log(RES_LRS["onecycle"][i]))))
        r3.append([
            f["name"], f["group"], f["rec"]["steps"], f["rec"]["spec"]["opt"]["name"],
            f"{a['best_lr']:.1e}", f"{lr_c:.1e}", round(a["ratio"], 2),
            f"{b['best_lr']:.1e}", f"{lr_o:.1e}", round(b["ratio"], 2), round(a["spread"], 1),
        ])  # fmt: skip
    out["tasks"] = {"columns": c3, "rows": r3}
    results = [r for f in feats for r in f["results"]]
    ext = [r.extended for r in results if r.extended]
    out["sweeps"] = {
        "columns": ["sweeps", "reliable", "stopped: diverged / nan / turned up / completed",
                    "extended",
                    "mean extra steps when extended"],
        "rows": [[
            len(results), sum(r.reliable for r in results),
            " / ".join(str(sum(r.stop_reason == k for r in results))
                       for k in ("diverged", "nan", "turned_up", "completed")),
            len(ext), round(sum(ext) / len(ext), 1) if ext else 0,
        ]],
    }  # fmt: skip
    return out


RES_LRS: dict[str, list[list[float]]] = {}


def run(packed: bool = False) -> dict[str, Any]:
    recs = load(packed=packed)
    feats = fit_rule.features(recs, **fit_rule.sweep_options())
    cv = fit_rule.cross_validate(feats)
    cv_probed = fit_rule.cross_validate(fit_rule.probed(feats), nested_cap=True)
    RES_LRS.clear()
    RES_LRS.update(cv["lrs"])
    res = evaluate(feats, cv, cv_probed)
    tabs = tables(feats, res)
    # the probes' stability cap, chosen inside each training part (the nested choice)
    tabs["probe_caps"] = {
        "columns": ["schedule", *(f"fold {k + 1}" for k in range(fit_rule.K_FOLDS))],
        "rows": [[SCHED_NAMES[s], *(f["cap"] for f in cv_probed["fits"][s])] for s in SCHEDULES],
    }
    return {
        "feats": feats,
        "cv": cv,
        "cv_probed": cv_probed,
        "res": res,
        "tables": tabs,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--packed", action="store_true", help="only the packed cache")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = run(args.packed)
    tabs = out["tables"]
    for name in ("oof", "by_set", "by_family"):
        t = tabs[name]
        print(f"\n## {name}")
        print(" | ".join(map(str, t["columns"])))
        for r in t["rows"]:
            print(" | ".join(map(str, r)))
    print(f"\n{len(out['feats'])} tasks, {time.perf_counter() - t0:.1f}s")
    if args.json:
        doc = {
            "tables": tabs,
            "n_tasks": len(out["feats"]),
            "folds": fit_rule.K_FOLDS,
            "fits": out["cv"]["fits"],
            "oof_lrs": out["cv"]["lrs"],
            "probed_fits": out["cv_probed"]["fits"],
            "probed_oof_lrs": out["cv_probed"]["lrs"],
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
