"""The finder's names of lrkit 0.1.0 that were renamed: ``lr_min`` (``min_loss_lr``) and
``optimizer_family`` (``optimizer``, the family string). The former names still work, with
the same values, and a ``DeprecationWarning`` that names the new one."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import math
import pickle
import warnings
from typing import Any

import numpy as np
import pytest

import lrkit.finder as F
from lrkit import _renamed
from lrkit.finder import (
    FinderResult,
    Suggestions,
    Sweep,
    SweepOptions,
    range_test,
    suggest,
    suggestions,
)
from lrkit.finder.rules import budget_edge


def bowl(lr: float) -> float:
    x = math.log10(lr)
    return 2.0 - 1.5 / (1 + math.exp(-2.0 * (x + 4))) + 0.2 * max(0.0, x + 2) ** 2


LRS = np.logspace(-7, 1, 100)
LOSSES = np.array([bowl(v) for v in LRS])


@pytest.fixture(scope="module")
def result() -> FinderResult:
    return range_test(bowl, total_steps=300, optimizer_family="momentum", warn=False)


def _deprecated(match: str) -> Any:
    return pytest.warns(DeprecationWarning, match=match)


# ----------------------------------------------------------------------------- lr_min


def test_lr_min_is_the_edge_the_suggestions_are_scaled_from(result: FinderResult) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name warns nothing
        lr_min = result.lr_min
    assert lr_min is not None and lr_min == result._sugg.lr_min  # type: ignore[union-attr]
    assert result.for_total_steps(1000).lr_min == lr_min  # type: ignore[union-attr]
    assert result.suggestion < lr_min and result.max_lr < lr_min  # type: ignore[operator]
    assert Sweep(num_iter=10).result(warn=False).lr_min is None  # no step ran


def test_min_loss_lr_is_a_deprecated_alias_of_lr_min(result: FinderResult) -> None:
    with _deprecated(r"^FinderResult\.min_loss_lr was renamed FinderResult\.lr_min \(") as rec:
        assert result.min_loss_lr == result.lr_min
    assert len(rec) == 1 and rec[0].filename == __file__  # points at the caller's line
    with pytest.raises(AttributeError):
        result.min_loss_lr = 1.0  # type: ignore[misc]


def test_to_dict_writes_every_suggestion_and_lr_min(result: FinderResult) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = json.loads(json.dumps(result.to_dict()))
    for name in ("suggestion", "max_lr", "peak_lr", "base_lr", "lr_min"):
        assert d[name] == getattr(result, name), name
    empty = Sweep(num_iter=10).result(warn=False).to_dict()
    assert empty["lr_min"] is None and empty["suggestion"] is None


# ----------------------------------------------------------------------------- optimizer_family


def test_the_family_is_optimizer_family_on_the_result_and_in_to_dict(
    result: FinderResult,
) -> None:
    assert result.optimizer_family == "momentum"
    assert result._sugg is not None and result._sugg.optimizer_family == "momentum"
    d = result.to_dict()
    # "optimizer" is kept for readers of lrkit 0.1.0's files (checkpoints, lrkit find --json)
    assert d["optimizer_family"] == d["optimizer"] == "momentum"
    assert d["options"]["optimizer_family"] == "momentum"
    with _deprecated(r"^FinderResult\.optimizer was renamed FinderResult\.optimizer_family$"):
        assert result.optimizer == "momentum"
    with _deprecated(r"^Suggestions\.optimizer was renamed Suggestions\.optimizer_family$"):
        assert result._sugg.optimizer == "momentum"
    with pytest.raises(AttributeError):  # read-only
        result.optimizer = "sgd"  # type: ignore[misc]


def test_range_test_takes_the_former_keyword_with_a_warning() -> None:
    new = range_test(bowl, total_steps=300, optimizer_family="sgd", warn=False)
    with _deprecated(
        r"^lrkit\.finder\.range_test\(\): the argument optimizer= was renamed optimizer_family=$"
    ) as rec:
        old = range_test(bowl, total_steps=300, optimizer="sgd", warn=False)
    assert len(rec) == 1 and rec[0].filename == __file__
    assert old.optimizer_family == new.optimizer_family == "sgd"
    assert (old.suggestion, old.max_lr, old.peak_lr, old.lr_min) == (
        new.suggestion,
        new.max_lr,
        new.peak_lr,
        new.lr_min,
    )
    # as in lrkit 0.1.0: the former argument gives the family when the options name none
    assert old.options.optimizer_family is None
    with _deprecated("optimizer_family"):
        r = range_test(
            bowl, options=SweepOptions(optimizer_family="adaptive"), optimizer="sgd", warn=False
        )
    assert r.optimizer_family == "adaptive"
    with _deprecated("optimizer_family"), pytest.raises(ValueError, match="^optimizer must be"):
        range_test(bowl, optimizer="lion")


@pytest.mark.parametrize(
    "call",
    [
        lambda: range_test(bowl, optimizer="sgd", optimizer_family="momentum"),
        lambda: Sweep(optimizer="sgd", optimizer_family="momentum"),
        lambda: suggestions(LRS, LOSSES, optimizer="sgd", optimizer_family="momentum"),
        lambda: budget_edge(LRS, LOSSES, optimizer="sgd", optimizer_family="momentum"),
        lambda: suggest(LRS, LOSSES, optimizer="sgd", optimizer_family="momentum"),
    ],
)
def test_both_names_at_once_is_a_one_line_type_error(call: Any) -> None:
    with pytest.raises(TypeError) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.endswith(
        "got both optimizer_family= and optimizer= (optimizer is the former name of "
        "optimizer_family): pass optimizer_family only"
    )


def test_sweep_takes_the_former_keyword_and_reads_the_family_as_optimizer_family() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = Sweep(num_iter=10, optimizer_family="sgd")
    assert s.optimizer_family == s.options.optimizer_family == "sgd"
    with _deprecated(r"^lrkit\.finder\.Sweep\(\): the argument optimizer= was renamed"):
        old = Sweep(num_iter=10, optimizer="momentum")
    assert old.optimizer_family == "momentum" and old.options.optimizer_family is None
    with _deprecated(r"^Sweep\.optimizer was renamed Sweep\.optimizer_family$"):
        assert old.optimizer == "momentum"
    with pytest.raises(AttributeError):
        old.optimizer = "sgd"  # type: ignore[misc]
    for lr in old:
        old.record(bowl(lr))
    assert old.result(warn=False).optimizer_family == "momentum"
    assert Sweep().optimizer_family is None  # not given: the rule reads "adaptive"


def test_suggestions_rules_and_suggest_take_the_former_keyword() -> None:
    new = suggestions(LRS, LOSSES, total_steps=300, optimizer_family="sgd")
    assert new.optimizer_family == "sgd"
    assert new != suggestions(LRS, LOSSES, total_steps=300)  # "adaptive"
    with _deprecated(r"^lrkit\.finder\.suggestions\(\): the argument optimizer= was renamed"):
        assert suggestions(LRS, LOSSES, total_steps=300, optimizer="sgd") == new
    with _deprecated(r"budget_edge\(\): the argument optimizer= was renamed optimizer_family="):
        assert budget_edge(LRS, LOSSES, total_steps=300, optimizer="sgd") == new.constant
    assert budget_edge(LRS, LOSSES, total_steps=300, optimizer_family="sgd") == new.constant
    assert suggest(LRS, LOSSES, total_steps=300, optimizer_family="sgd") == new.constant
    with _deprecated(r"^lrkit\.finder\.suggest\(\): the argument optimizer= was renamed"):
        assert suggest(LRS, LOSSES, total_steps=300, optimizer="sgd") == new.constant
    with pytest.raises(ValueError, match="^optimizer_family must be one of"):
        suggestions(LRS, LOSSES, optimizer_family="lion")


def test_the_function_optimizer_family_is_not_shadowed() -> None:
    # the argument of suggestions() and the function share a name: the function still works
    assert "optimizer_family" in inspect.signature(suggestions).parameters
    assert F.optimizer_family is F.rules.optimizer_family
    assert F.optimizer_family("SGD", momentum=0.9) == "momentum"
    assert suggestions(LRS, LOSSES, optimizer_family=F.optimizer_family("Adam")) == suggestions(
        LRS, LOSSES
    )


def _as_in_010(obj: Any) -> Any:
    """``obj`` with its family under the field's former name, as lrkit 0.1.0 held it."""
    old = object.__new__(type(obj))
    state = dict(obj.__dict__)
    state["optimizer"] = state.pop("optimizer_family")
    old.__dict__.update(state)
    return old


def test_a_result_pickled_by_lrkit_010_loads_with_its_family(result: FinderResult) -> None:
    old = _as_in_010(result)
    old.__dict__["_sugg"] = _as_in_010(result._sugg)
    back = pickle.loads(pickle.dumps(old))
    assert back.optimizer_family == "momentum" and back._sugg == result._sugg
    assert back.for_total_steps(300) == result._sugg and back.to_dict() == result.to_dict()
    again = pickle.loads(pickle.dumps(result))
    assert again.optimizer_family == "momentum" and again.lr_min == result.lr_min
    # the former field is not kept beside the new one
    assert set(vars(back)) == set(vars(result))
    assert set(vars(back._sugg)) == set(vars(result._sugg))


def test_copying_a_result_of_lrkit_010_leaves_the_original_as_it_was(
    result: FinderResult,
) -> None:
    old = _as_in_010(result._sugg)
    before = dict(vars(old))
    new = copy.copy(old)
    assert new == result._sugg
    assert vars(old) == before


def test_the_dataclasses_take_the_former_field_name_with_a_warning(
    result: FinderResult,
) -> None:
    s = result._sugg
    assert s is not None
    fields = {f.name: getattr(s, f.name) for f in dataclasses.fields(Suggestions)}
    fields["optimizer"] = fields.pop("optimizer_family")
    with _deprecated(r"^Suggestions\(\): the argument optimizer= was renamed optimizer_family="):
        assert Suggestions(**fields) == s
    kept = {f.name: getattr(result, f.name) for f in dataclasses.fields(FinderResult)}
    kept["optimizer"] = kept.pop("optimizer_family")
    with _deprecated(r"^FinderResult\(\): the argument optimizer= was renamed"):
        r = FinderResult(**kept)
    with pytest.raises(TypeError) as info:
        Suggestions(**fields, optimizer_family="sgd")
    assert str(info.value) == (
        "Suggestions() got both optimizer_family= and optimizer= (optimizer is the former name "
        "of optimizer_family): pass optimizer_family only"
    )
    assert r.optimizer_family == "momentum"
    assert dataclasses.replace(result, optimizer_family="sgd").optimizer_family == "sgd"


def test_sweep_options_to_dict_rebuilds_the_options() -> None:
    o = SweepOptions(num_iter=50, rule="valley", optimizer_family="sgd", total_steps=300)
    d = json.loads(json.dumps(o.to_dict()))
    assert SweepOptions(**d) == o and d["rule"] == "valley"


# ----------------------------------------------------------------------------- the helpers


def test_the_former_keyword_shows_as_unset_in_the_signature() -> None:
    param = inspect.signature(suggestions).parameters["optimizer"]
    assert str(param).endswith("= <unset>")


def test_a_new_name_passed_with_the_value_of_its_default_is_still_given_twice() -> None:
    default = _renamed.default_int(100)
    with _deprecated(r"^f\(\): the argument old= was renamed new=$"):
        assert _renamed.keyword("f()", "old", "new", 5, default, default=default) == 5
    with pytest.raises(TypeError, match=r"^f\(\) got both new= and old= "):
        _renamed.keyword("f()", "old", "new", 5, 100, default=default)


class _Options:
    @_renamed.keyword_only(2)
    def __init__(self, a: int, *, first: int = 0, second: int = 0) -> None:
        self.got = (a, first, second)


def test_options_taken_by_position_are_moved_to_their_keywords_with_a_warning() -> None:
    with _deprecated(r"^_Options\(\): pass first= by keyword \(taking it by position is "):
        assert _Options(1, 2).got == (1, 2, 0)
    with _deprecated(r"^_Options\(\): pass first=, second= by keyword \("):
        assert _Options(1, 2, 3).got == (1, 2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _Options(1, second=3).got == (1, 0, 3)
    with pytest.raises(TypeError) as info:
        _Options(1, 2, 3, 4)
    assert str(info.value) == "_Options() takes 2 positional arguments but 5 were given"
    with pytest.raises(TypeError) as info:
        _Options(1, 2, first=3)
    assert str(info.value) == "_Options() got multiple values for argument 'first'"


def test_suggest_takes_its_rule_by_position_with_a_warning() -> None:
    with _deprecated(r"^suggest\(\): pass rule= by keyword"):
        assert suggest(LRS, LOSSES, "valley") == suggest(LRS, LOSSES, rule="valley")
