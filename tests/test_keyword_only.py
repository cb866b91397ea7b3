"""Options after a function's leading inputs are keyword-only; lrkit 0.1.0's positional calls
still work, with a DeprecationWarning naming the options (``lrkit._renamed.keyword_only``)."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np
import pytest

from lrkit import _renamed
from lrkit.feedback import (
    Chain,
    DivergenceDetector,
    GuardBook,
    Multiplier,
    ReduceOnPlateau,
    RestartOnPlateau,
)
from lrkit.finder import suggest

CONTROLLERS = [
    ReduceOnPlateau(patience=0),
    RestartOnPlateau(patience=0),
    DivergenceDetector(),
    Multiplier(),
    Chain(ReduceOnPlateau(patience=0), DivergenceDetector()),
]


@pytest.mark.parametrize("method", [
    ReduceOnPlateau.update, RestartOnPlateau.update, DivergenceDetector.update,
    DivergenceDetector.check, Multiplier.update, Chain.update, GuardBook.check, suggest,
])  # fmt: skip
def test_options_are_keyword_only(method: Any) -> None:
    params = list(inspect.signature(method).parameters.values())
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert len(positional) <= 2 and positional[-1] in ("value", "loss", "losses")


@pytest.mark.parametrize("c", CONTROLLERS, ids=lambda c: type(c).__name__)
def test_a_positional_step_still_works_with_a_deprecation_warning(c: Any) -> None:
    import copy

    a, b = copy.deepcopy(c), copy.deepcopy(c)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = [a.update(v, step=k) for k, v in enumerate([1.0, 2.0, 3.0])]
    got = []
    for k, v in enumerate([1.0, 2.0, 3.0]):
        with pytest.warns(DeprecationWarning) as rec:
            got.append(b.update(v, k))
        assert str(rec[0].message) == (
            f"{type(c).__qualname__}.update(): pass step= by keyword (taking it by position is "
            "deprecated)"
        )
        assert rec[0].filename == __file__  # pointed at the caller
    assert got == expected and a.state_dict() == b.state_dict()


def test_a_positional_step_of_check_and_rule_of_suggest() -> None:
    d = DivergenceDetector()
    with pytest.warns(DeprecationWarning, match=r"^DivergenceDetector\.check\(\): pass step="):
        d.check(1.0, 0)
    lrs = np.logspace(-5, 0, 60)
    losses = (np.log10(lrs) + 2.5) ** 2 + 1.0
    with pytest.warns(DeprecationWarning, match=r"^suggest\(\): pass rule= by keyword"):
        old = suggest(lrs, losses, "minimum")
    assert old == suggest(lrs, losses, rule="minimum")


def test_values_xp_and_plot_ax_by_position() -> None:
    from lrkit import schedules as S

    s = S.cosine(0.1, total_steps=10)
    with pytest.warns(DeprecationWarning, match=r"^Schedule\.values\(\): pass xp= by keyword"):
        old = s.values(np.arange(10), np)
    assert (old == s.values(np.arange(10), xp=np)).all()
    for method in (S.Schedule.values, S.Schedule.plot):
        params = inspect.signature(method).parameters.values()
        assert [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD] == ["self", "steps"]


def test_search_space_takes_its_options_by_keyword() -> None:
    from lrkit.tune import SearchSpace

    params = inspect.signature(SearchSpace).parameters.values()
    assert [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD] == ["total_steps"]
    with pytest.warns(DeprecationWarning, match=r"^SearchSpace\(\): pass lr_range=, families="):
        old = SearchSpace(100, (1e-3, 1.0), "cosine")
    assert old == SearchSpace(100, lr_range=(1e-3, 1.0), families="cosine")


def test_keyword_only_refuses_what_python_would() -> None:
    @_renamed.keyword_only(1)
    def f(x: int, *, a: int = 0, b: int = 0) -> tuple[int, int, int]:
        return x, a, b

    with pytest.warns(DeprecationWarning, match=r"pass a=, b= by keyword"):
        assert f(1, 2, 3) == (1, 2, 3)
    with pytest.raises(TypeError, match=r"takes 1 positional arguments but 4 were given"):
        f(1, 2, 3, 4)
    with pytest.raises(TypeError, match=r"got multiple values for argument 'a'"):
        f(1, 2, a=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(1, b=2) == (1, 0, 2)
    assert inspect.signature(f).parameters["a"].kind is inspect.Parameter.KEYWORD_ONLY
