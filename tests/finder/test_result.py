"""Tests of FinderResult (lrkit.finder.result): the suggestions of another budget, the rules'
reading of a sweep that stopped early, and the dict summary read back."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lrkit.finder import Probes, Sweep, range_test
from lrkit.finder import rules as R


class _Quadratic:
    """Gradient descent on 0.5 * sum(h w^2), with the state a probe puts back."""

    def __init__(self):
        self.h = np.linspace(0.5, 2.0, 20)
        self.reset()

    def reset(self):
        self.w = np.ones(20)

    def step(self, lr):
        self.w = self.w - lr * self.h * self.w
        return self.loss()

    def loss(self):
        return float(0.5 * np.sum(self.h * self.w * self.w))

    def score(self):
        return self.loss() + 0.01


def _probed_sgd_result():
    task = _Quadratic()
    result = range_test(
        task.step,
        start_lr=1e-4,
        end_lr=10.0,
        num_iter=60,
        total_steps=500,
        optimizer_family="sgd",
        evaluate=task.loss,
        reset=task.reset,
        score=task.score,
        warn=False,
    )
    assert result.probes is not None and len(result.held_losses) == 15
    assert result.stop_reason == "diverged" and result.warnings == ()
    return result


def test_for_total_steps_of_the_own_budget_reads_the_held_curve_probes_and_family():
    result = _probed_sgd_result()

    def read(**kw):  # the result's own curves, read at its budget
        return R.suggestions(result.lrs, result.losses, held_lrs=result.held_lrs,
                             held_losses=result.held_losses, total_steps=500,
                             stop_reason="diverged", **kw)  # fmt: skip

    own = read(optimizer_family="sgd", probes=result.probes)
    same = result.for_total_steps(500)
    assert same == result._sugg == own
    assert (same.constant, same.max_lr) == (result.suggestion, result.max_lr)
    assert same.optimizer_family == "sgd"
    # the family and the probes both move the suggestions: neither is left out
    unprobed = read(optimizer_family="sgd")
    adaptive = read(probes=result.probes)
    assert unprobed.constant != same.constant
    assert adaptive.constant != same.constant


def test_to_dict_reads_back_through_json_with_its_probes_and_counts():
    result = _probed_sgd_result()
    d = json.loads(json.dumps(result.to_dict()))
    assert d["steps"] == len(result.losses) == 57
    assert d["extended"] == 0
    assert d["stop_reason"] == "diverged"
    assert d["stop_lr"] == result.stop_lr == result.lrs[-1]
    assert d["optimizer_family"] == d["optimizer"] == "sgd"
    assert d["total_steps"] == d["options"]["total_steps"] == 500
    assert d["base_lr"] == d["max_lr"] / 10.0 == result.base_lr
    assert d["suggestion"] == result.suggestion and d["lr_min"] == result.lr_min
    assert d["held_lrs"] == result.held_lrs.tolist()
    assert d["held_losses"] == result.held_losses.tolist()
    assert d["reliable"] is True and d["warnings"] == []
    assert Probes.from_dict(d["probes"]) == result.probes
    # the saved curve, replayed, gives the same suggestions
    sweep = Sweep(**d["options"])
    sweep.replay(
        d["losses"],
        held=dict(zip(d["held_lrs"], d["held_losses"])),
        stop_reason=d["stop_reason"],
        stop_lr=d["stop_lr"],
    )
    again = sweep.result(warn=False, probes=Probes.from_dict(d["probes"]))
    assert again.lrs.tolist() == d["lrs"]
    assert again.held_losses.tolist() == d["held_losses"]
    assert again.suggestion == result.suggestion
    assert again.max_lr == result.max_lr


def _saved_results():
    nan = iter([3.0, 2.9, 2.8, 2.7, 2.6, 2.5, math.nan])
    flat = range_test(lambda lr: 1.0 / (1.0 + lr), num_iter=30, warn=False)  # never turns up
    return {
        "probed": _probed_sgd_result(),
        "nan": range_test(
            lambda lr: next(nan), start_lr=1e-4, end_lr=1.0, num_iter=20, warn=False
        ),  # fmt: skip
        "lower bound": flat,
        "quadratic, adam": range_test(
            _Quadratic().step,
            num_iter=50,
            total_steps=3000,
            optimizer_family="adaptive",
            warn=False,
        ),  # fmt: skip
    }


@pytest.mark.parametrize("kind", ["probed", "nan", "lower bound", "quadratic, adam"])
def test_from_dict_rebuilds_the_result_to_dict_gave_through_json(kind):
    from lrkit.finder import FinderResult

    result = _saved_results()[kind]
    d = json.loads(json.dumps(result.to_dict()))
    again = FinderResult.from_dict(d)
    assert again.to_dict() == d  # curves, suggestions, warnings, probes: all as saved
    assert again.for_total_steps(2000) == result.for_total_steps(2000)
    assert again.suggest("valley") == result.suggest("valley")
    assert again.reliable == result.reliable and again.warnings == result.warnings


def test_from_dict_takes_a_callable_rule_back_by_name_and_names_what_is_missing():
    from lrkit.finder import FinderResult

    def middle(lrs, losses):
        return float(lrs[len(lrs) // 2])

    result = range_test(_Quadratic().step, num_iter=40, rule=middle, warn=False)
    d = json.loads(json.dumps(result.to_dict()))
    assert d["options"]["rule"] == "middle"
    assert FinderResult.from_dict(d, rule=middle).suggestion == result.suggestion
    with pytest.raises(ValueError) as info:
        FinderResult.from_dict(d)
    assert str(info.value).startswith(
        "the saved sweep used the rule 'middle', not one of lrkit.finder.RULES ("
    )
    assert str(info.value).endswith(
        "a callable rule, which a saved result holds by its name only: "
        "FinderResult.from_dict(state, rule=middle) (the same callable)"
    )
    with pytest.raises(ValueError, match=r"^state must be a dict from FinderResult\.to_dict\(\), "
                       r"got a dict without \['held_losses', 'held_lrs'\]$"):  # fmt: skip
        FinderResult.from_dict({k: v for k, v in d.items() if not k.startswith("held")})
    with pytest.raises(ValueError, match=r"^state must be a dict from FinderResult\.to_dict\(\), "
                       r"got list$"):  # fmt: skip
        FinderResult.from_dict([1, 2])


def test_to_dict_counts_the_nan_step_and_keeps_its_lr():
    values = iter([3.0, 2.9, 2.8, 2.7, 2.6, 2.5, math.nan])
    result = range_test(lambda lr: next(values), start_lr=1e-4, end_lr=1.0, num_iter=20, warn=False)
    d = result.to_dict()
    assert d["steps"] == result.steps == 7
    assert len(d["losses"]) == 6
    assert d["stop_reason"] == "nan"
    assert d["stop_lr"] == result.stop_lr == pytest.approx(1e-4 * 1e4 ** (6 / 19), rel=1e-15)
    assert d["reliable"] is False


def _v_shaped_step(lr):
    x = math.log10(lr) + 2.0
    return 1.0 + 0.5 * x * x if x > 0 else 1.0 - 0.3 * x


def test_fastais_rules_trim_by_the_planned_num_iter_of_a_sweep_that_stopped_early():
    result = range_test(
        _v_shaped_step, start_lr=1e-6, end_lr=1.0, num_iter=100, eval_batches=0, warn=False
    )
    assert result.stop_reason == "turned_up" and len(result.losses) == 81
    planned = R.RULES["valley"](result.lrs, result.losses, stop_reason="turned_up", num_iter=100)
    recorded = R.RULES["valley"](result.lrs, result.losses, stop_reason="turned_up", num_iter=81)
    assert planned != recorded  # the first 10 points are trimmed, not the first 8
    assert result.suggest("valley") == planned
    assert result.suggestions()["valley"] == planned


def test_from_dict_reads_held_losses_at_lrs_a_last_bit_off_and_names_what_is_wrong():
    from lrkit.finder import FinderResult

    result = _probed_sgd_result()
    d = json.loads(json.dumps(result.to_dict()))
    # as another machine's pow may write them: every LR a unit in the last place off
    shifted = {**d, "held_lrs": [math.nextafter(x, math.inf) for x in d["held_lrs"]]}
    shifted["lrs"] = [math.nextafter(x, 0.0) for x in d["lrs"]]
    again = FinderResult.from_dict(shifted)
    assert again.held_losses.tolist() == d["held_losses"]
    assert (again.suggestion, again.lr_min) == (result.suggestion, result.lr_min)

    def refused(error, match, **changes):
        with pytest.raises(error, match=match):
            FinderResult.from_dict({**d, **changes})

    refused(ValueError, r"^state\['held_lrs'\]\[0\] = 5\.0 is not an LR of the steps in ",
            held_lrs=[5.0, *d["held_lrs"][1:]])  # fmt: skip
    refused(ValueError, r"^state\['stop_lr'\] must be ", stop_lr="x")
    refused(ValueError, r"^state\['stop_reason'\] must be one of ", stop_reason="tired")
    refused(ValueError, r"^state\['optimizer_family'\] must be one of ", optimizer_family="x")
    refused(ValueError, r"^state\['probes'\]: ", probes={"lrs": [1.0]})
    with pytest.raises(TypeError, match=r"^rule must be the callable rule the saved result "):
        FinderResult.from_dict(d, rule="valley")
