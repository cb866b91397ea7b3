"""The zoo's out-of-fold numbers and the shipped coefficients reproduce from the packed cache
(replayed through the shipped lrkit.finder code; seconds, no training)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
