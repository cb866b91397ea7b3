"""The zoo's out-of-fold numbers and the shipped coefficients reproduce from the packed cache
(replayed through the shipped lrkit.finder code; seconds, no training)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results" / "finder_zoo.json"

pytestmark = pytest.mark.skipif(
    not (BENCH / "zoo" / "zoo_cache.json.gz").exists() or not RESULTS.exists(),
    reason="the zoo cache or its results are not in this checkout",
)


@pytest.fixture(scope="module")
def zoo():
    sys.path[:0] = [str(BENCH), str(BENCH / "zoo")]
    try:
        import finder_zoo
        import fit_rule

        yield finder_zoo, fit_rule
    finally:
        del sys.path[:2]


@pytest.fixture(scope="module")
def rerun(zoo):
    finder_zoo, _ = zoo
    return finder_zoo.run(packed=True)


def test_out_of_fold_tables_reproduce(rerun):
    want = json.loads(RESULTS.read_text())
    assert rerun["tables"]["oof"] == want["tables"]["oof"]
    assert rerun["tables"]["by_family"] == want["tables"]["by_family"]
    assert len(rerun["feats"]) == want["n_tasks"] >= 100


def test_shipped_coefficients_are_the_full_zoo_fit(zoo, rerun):
    _, fit_rule = zoo
    from lrkit.finder import _coefficients as C

    full = fit_rule.full_fit(rerun["feats"])
    for sched, (a, b) in full.items():
        key = fit_rule.SCHED_KEY[sched]
        assert C.BUDGET_SLOPE[key] == pytest.approx(b, abs=1e-9)
        for fam, v in a.items():
            assert C.INTERCEPT[key][fam] == pytest.approx(v, abs=1e-9)


def test_folds_never_share_a_family(zoo, rerun):
    _, fit_rule = zoo
    folds = fit_rule.folds(rerun["feats"])
    groups = [{rerun["feats"][i]["group"] for i in f} for f in folds]
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            assert not groups[i] & groups[j]
    assert sorted(i for f in folds for i in f) == list(range(len(rerun["feats"])))


def test_variants_score_the_shipped_rule_as_finder_zoo_does(zoo, rerun):
    import variants

    want = json.loads(RESULTS.read_text())["tables"]["oof"]
    row = next(r for r in want["rows"] if r[0] == "lrkit")
    hits, gm = variants.oof(rerun["feats"], "constant")
    assert f"{hits:.0%}" in row[1]
    assert round(gm, 3) == row[2]
    shipped = json.loads((BENCH / "results" / "finder_variants.json").read_text())
    first = shipped["tables"]["variants"]["rows"][0]
    assert first[2:4] == [f"{hits:.0%}", round(gm, 3)]


def test_variant_edges_on_exact_curves(zoo):
    import numpy as np
    import variants

    x = np.logspace(-4, 0, 41)  # 10 points per decade
    y = 1.0 + (np.log10(x) + 2.0) ** 2  # minimum 1 at 1e-2
    assert variants.parabola(x, y, held=True) == pytest.approx(1e-2, rel=1e-6)
    # the smoothed curve first exceeds 1.3 x its minimum a little above 10 ** (-2 + 0.55)
    r = variants.rise(x, y, 0.3)
    assert 10**-1.5 < r < 10**-1.3


def test_offset_bound_tables_reproduce(zoo, rerun):
    import variants

    shipped = json.loads((BENCH / "results" / "finder_variants.json").read_text())["tables"]
    rows, spread = variants.ceiling(rerun["feats"])
    assert rows == shipped["ceiling"]["rows"]
    assert spread == shipped["offsets"]["rows"]
    # the bound is a bound: each task's own offset does at least as well as the rule's form
    fitted, own = rows[2], rows[3]
    assert own[2] <= fitted[2] and own[4] <= fitted[4]


def test_curve_shape_neighbours_table_reproduces(zoo, rerun):
    import variants

    shipped = json.loads((BENCH / "results" / "finder_variants.json").read_text())["tables"]
    feats = rerun["feats"]
    rows = variants.neighbours(feats, [f["results"] for f in feats])
    assert rows == shipped["neighbours"]["rows"]
    assert rows[0][1:] == shipped["ceiling"]["rows"][0][1:]  # the shipped rule, same numbers


def test_curve_shape_reads_min_zero_start_one_and_diverged_three(zoo):
    import numpy as np
    import variants

    lrs = np.logspace(-6, 0, 61)
    loss = np.concatenate([np.full(30, 2.0), np.linspace(2.0, 1.0, 20), np.linspace(1.0, 1.5, 11)])
    lr_min = float(lrs[49])
    z = variants._shape(lrs, loss, lr_min)
    grid = variants.SHAPE_GRID
    assert z[np.argmin(np.abs(grid))] == pytest.approx(0.0, abs=1e-9)
    assert z[0] == pytest.approx(1.0)
    assert z[grid > np.log(lrs[-1] / lr_min) + 1e-9].tolist() == [3.0] * int(
        (grid > np.log(lrs[-1] / lr_min) + 1e-9).sum()
    )


def test_no_sweep_row_reproduces_and_full_weight_is_the_shipped_rule(zoo, rerun):
    import variants

    shipped = json.loads((BENCH / "results" / "finder_variants.json").read_text())["tables"]
    rows = shipped["prior"]["rows"]
    feats = rerun["feats"]
    h0, g0, _ = variants._shrunk_oof(feats, "constant", [0.0])
    assert [f"{h0:.0%}", round(g0, 3)] == rows[1][1:3]
    # weight 1 on the edge is the shipped rule, scored the same way
    h1, g1, chosen = variants._shrunk_oof(feats, "constant", [1.0])
    assert [f"{h1:.0%}", round(g1, 3)] == rows[0][1:3] and chosen == [1.0] * 5


def test_every_oracle_brackets_its_best(zoo):
    """A suggestion outside the points run is scored as the nearest point run (a lower bound
    of its loss). A task's hit is a mean over its 3 sweep seeds <= 1.1 x best + 0.01, so the
    hits are exact when every end is the grid's end, diverged, or so high that one seed there
    keeps the mean above the hit line even with the other two at the best."""
    from replay import DIVERGED, HIT_ABS, HIT_RATIO, SCHEDULES, load, oracle_curves

    recs = load(packed=True)
    n = len(recs[0]["grid"])
    for rec in recs:
        for sched in SCHEDULES:
            grid, losses, best = oracle_curves(rec, sched)
            means = losses.mean(0)
            run = [j for j in range(n) if rec["grid"][j] in set(grid.tolist())]
            for end, mean in ((run[0], means[0]), (run[-1], means[-1])):
                one_seed_misses = (mean + 2 * best) / 3 > HIT_RATIO * best + HIT_ABS
                assert end in (0, n - 1) or one_seed_misses or mean >= DIVERGED, (
                    rec["spec"]["name"],
                    sched,
                    end,
                )


def test_bracket_walks_out_until_both_ends_are_clear_misses():
    sys.path.insert(0, str(BENCH / "zoo"))
    try:
        import build
    finally:
        del sys.path[0]
    curve = {j: 1.0 + 0.01 * (j - 12) ** 2 for j in range(25)}  # best 1 at 12
    means = {j: curve[j] for j in (11, 12, 13)}
    ran = []

    def run(j):
        ran.append(j)
        means[j] = curve[j]
        return means[j]

    build._bracket(run, means, 25)
    # a clear miss: above 1.3 x 1 + 0.03 = 1.33, first at 12 -+ 7 (1.49); 12 -+ 5 is 1.25
    assert min(means) == 5 and max(means) == 19
    assert curve[min(means) + 2] <= 1.33 < curve[min(means)]
    assert sorted(ran) == [5, 7, 9, 15, 17, 19]
    # a small best loss: the absolute part decides (0.001 + 0.03 > 1.3 x 0.001)
    small = {j: 0.001 + 0.004 * abs(j - 12) for j in range(25)}
    means = {12: small[12]}
    build._bracket(lambda j: means.__setitem__(j, small[j]), means, 25)
    assert small[min(means)] > 1.3 * 0.001 + 0.03 >= small[min(means) + 2]
    # at the grid's ends it stops
    means = {0: 1.0, 1: 1.0}
    build._bracket(lambda j: means.setdefault(j, 1.0), means, 3)
    assert sorted(means) == [0, 1, 2]


def test_nested_choice_rejects_a_scrambled_edge_and_scores_the_rest_as_oof(zoo, rerun):
    """Choosing among edges inside the training parts: an edge scrambled by a factor of up
    to 30 per sweep is never chosen, and the chosen edge is scored exactly as variants.oof
    scores it."""
    import numpy as np
    import variants

    feats = rerun["feats"]
    rng = np.random.default_rng(0)
    scrambled = [
        dict(f, lr_min=[v * float(np.exp(rng.uniform(-3.4, 3.4))) for v in f["lr_min"]])
        for f in feats
    ]
    picked, spread, chosen = variants.nested(
        [("scrambled", scrambled), ("shipped", feats)], ("constant",)
    )
    assert chosen == ["shipped"] * 5
    assert picked["constant"] == pytest.approx(variants.oof(feats, "constant"), abs=1e-12)
    want = np.mean([max(f["lr_min"]) / min(f["lr_min"]) <= 2 for f in feats])
    assert spread == pytest.approx(want)


def test_default_coefficients_on_the_default_sweep_are_the_shipped_rule_oof(zoo, rerun):
    """Scoring a sweep's edges with coefficients fitted on the default sweep's edges: on the
    default sweep itself, that is exactly the shipped rule's out-of-fold score."""
    import sweep_density
    import variants

    feats = rerun["feats"]
    got = sweep_density.with_default_coefficients(feats, feats)
    for k, sched in enumerate(("constant", "onecycle", "wcos")):
        hits, gm = variants.oof(feats, sched)
        assert got[2 * k : 2 * k + 2] == [f"{hits:.0%}", round(gm, 3)]
    # a sweep whose every edge is 10x higher is scored with the default sweep's coefficients
    # (fitted on ``feats`` in each training part), not refitted on its own edges
    import math

    import numpy as np
    from replay import score

    fit_rule = zoo[1]
    shifted = [dict(f, lr_min=[10 * v for v in f["lr_min"]]) for f in feats]
    tab = fit_rule.loss_tables(feats, "constant")
    hits = []
    logs = []
    for test in fit_rule.folds(feats):
        train = np.array([i for i in range(len(feats)) if i not in set(test.tolist())])
        a, b = fit_rule.fit(feats, tab, train)
        for i in test:
            lrs = [fit_rule.suggest_lr(shifted[i], k, a, b) for k in fit_rule.SEEDS]
            sc = score(feats[i]["rec"], "constant", lrs)
            hits.append(sc["hit"])
            logs.append(math.log(sc["ratio"]))
    want = [f"{np.mean(hits):.0%}", round(math.exp(float(np.mean(logs))), 3)]
    mine = sweep_density.with_default_coefficients(feats, shifted)
    refit_hits, refit_gm = variants.oof(shifted, "constant")  # refitting absorbs the shift
    assert mine[:2] == want and mine[:2] != [f"{refit_hits:.0%}", round(refit_gm, 3)]


def test_probe_study_uses_the_finders_probes(zoo):
    """probes.py measures the probes the finder runs (tests/finder/test_probes.py tests them):
    the same offsets, best offset, divergence test and length."""
    import probes

    from lrkit.finder import probes as core

    assert probes.PROBE_OFFSETS is core.PROBE_OFFSETS and probes.best_offset is core.best_offset
    assert probes.blown_above is core.blown_above
    assert probes.CHECKPOINTS[-1] == core.PROBE_STEPS


def test_shipped_probed_coefficients_are_the_full_zoo_fit_of_the_probed_edges(zoo, rerun):
    """The coefficients ``probe_data`` uses: fitted on every task's edges as the cached probes
    move them (validation loss after 60 steps, half the best offset)."""
    import math

    _, fit_rule = zoo
    from lrkit.finder import _coefficients as C
    from lrkit.finder.probes import PROBE_WEIGHT

    moved = fit_rule.probed(rerun["feats"])
    f, g = rerun["feats"][0], moved[0]
    assert g["rec"] is f["rec"] and g["lr_min"] != f["lr_min"]
    for a, b in zip(f["lr_min"], g["lr_min"]):  # within half the probes' span of the edge
        assert -4.2 * PROBE_WEIGHT - 1e-9 <= math.log(b / a) <= 0.7 * PROBE_WEIGHT + 1e-9
    full = fit_rule.full_fit(moved)
    for sched, (a, b) in full.items():
        key = fit_rule.SCHED_KEY[sched]
        assert C.PROBED_BUDGET_SLOPE[key] == pytest.approx(b, abs=1e-9)
        for fam, v in a.items():
            assert C.PROBED_INTERCEPT[key][fam] == pytest.approx(v, abs=1e-9)
    assert C.PROBED_INTERCEPT != C.INTERCEPT
    caps = fit_rule.full_caps(moved)  # the probes' stability cap, chosen on the whole zoo
    assert {fit_rule.SCHED_KEY[s]: c for s, c in caps.items()} == C.PROBED_EDGE_CAP
    assert set(C.PROBED_EDGE_CAP.values()) <= set(fit_rule.PROBE_CAPS)


def test_the_probes_row_chooses_its_cap_inside_each_training_part(zoo, rerun):
    """The probes row's numbers are those of the nested choice: each fold's cap is the one
    choose_cap picks on that fold's training part alone, and its suggestions use it."""
    import math

    _, fit_rule = zoo
    moved = fit_rule.probed(rerun["feats"])
    folds = fit_rule.folds(moved)
    sched = "onecycle"
    tab = fit_rule.loss_tables(moved, sched)
    for k, test in enumerate(folds[:2]):
        train = [i for i in range(len(moved)) if i not in set(test)]
        fold = rerun["cv_probed"]["fits"][sched][k]
        assert fold["cap"] == fit_rule.choose_cap(moved, tab, np.array(train))
        i = int(test[0])
        want = [fit_rule.suggest_lr(moved[i], s, fold["a"], fold["b"], fold["cap"])
                for s in fit_rule.SEEDS]  # fmt: skip
        got = rerun["cv_probed"]["lrs"][sched][i]
        assert all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(got, want))


def test_probe_rows_move_each_edge_by_the_weighted_best_offset(zoo, rerun):
    """Each sweep's edge moves by w times the best offset of its own probes, read at the
    checkpoint and with the measure of the row: every (task, seed, checkpoint, measure) has a
    different best offset here."""
    import math

    import probes

    feats = rerun["feats"][:3]
    offs = probes.PROBE_OFFSETS

    def centre(i, s, c, m):  # a distinct vertex for each, nearest an inner probe
        return -0.2 - 0.05 * i - 0.17 * s - 0.41 * probes.CHECKPOINTS.index(c) - 0.83 * m

    fake = [
        [
            [
                {c: [math.exp((o - centre(i, s, c, m)) ** 2) for m in range(3)]
                 for c in probes.CHECKPOINTS}
                for o in offs
            ]
            for s in range(3)
        ]
        for i in range(len(feats))
    ]  # fmt: skip
    for c in probes.CHECKPOINTS:
        for m in range(3):
            for w in (0.5, 1.0):
                moved = probes.moved(feats, fake, c, m, w)
                for i, (f, g) in enumerate(zip(feats, moved)):
                    for s, (a, b) in enumerate(zip(f["lr_min"], g["lr_min"])):
                        want = a * math.exp(w * centre(i, s, c, m))
                        assert b == pytest.approx(want, rel=1e-9)
                    assert g["rec"] is f["rec"] and g["group"] == f["group"]


def test_breakdown_tables_agree_with_the_out_of_fold_table():
    """The breakdown's "all tasks" and "shipped" rows are finder_zoo's out-of-fold numbers, and
    its groups partition the zoo."""
    oof = json.loads(RESULTS.read_text())["tables"]["oof"]
    lrkit = next(r for r in oof["rows"] if r[0] == "lrkit")  # const hits, gm, 1cyc hits, gm, ...
    tabs = json.loads((BENCH / "results" / "finder_breakdown.json").read_text())["tables"]
    groups = {r[0]: r for r in tabs["groups"]["rows"]}
    n = groups["all tasks"][1]
    assert f"({groups['all tasks'][2]})" in lrkit[1] and groups["all tasks"][3] == lrkit[2]
    assert f"({groups['all tasks'][5]})" in lrkit[3] and groups["all tasks"][6] == lrkit[4]
    kinds = [r[1] for name, r in groups.items() if name.startswith("models ")]
    sizes = [r[1] for name, r in groups.items() if name.startswith("oracle")]
    assert len(kinds) == 3 and sum(kinds) == n and len(sizes) == 2 and sum(sizes) == n
    shipped = tabs["offset"]["rows"][0]
    assert shipped[1:7] == [lrkit[1].split("(")[1][:-1], lrkit[2],
                            lrkit[3].split("(")[1][:-1], lrkit[4],
                            lrkit[5].split("(")[1][:-1], lrkit[6]]  # fmt: skip


def test_breakdown_offset_fit_without_marked_tasks_is_the_shipped_fit(zoo, rerun):
    import breakdown
    import numpy as np

    _, fit_rule = zoo
    feats = rerun["feats"]
    tab = fit_rule.loss_tables(feats, "constant")
    assert np.array_equal(breakdown._shift(tab[:2], 0.0), tab[:2])
    step = float(fit_rule.OFFSETS[1] - fit_rule.OFFSETS[0])
    moved = breakdown._shift(tab[:2], step)
    assert np.allclose(moved[..., :-1], tab[:2, :, 1:])  # one grid step: the next column
    idx = np.arange(len(feats))
    a, b, c = breakdown.fit_with_offset(feats, tab, idx, np.zeros(len(feats), bool))
    assert (a, b) == fit_rule.fit(feats, tab, idx)
    assert c == breakdown.C_GRID[0]  # no task marked: every offset costs the same
