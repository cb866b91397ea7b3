"""lrkit._validate: the shared argument checks (one line naming the parameter)."""

from __future__ import annotations

import re

import pytest

from lrkit import _validate as V


def test_options_names_the_unknown_option_the_hint_and_the_accepted_ones() -> None:
    V.options("f", {"a": 1}, ("a", "b"))  # known options pass
    V.options("f", {}, ("a",))
    with pytest.raises(TypeError) as e:
        V.options("f", {"min_lr": 1, "zz": 2}, ("b", "a"), {"min_lr": "use min_scale"})
    assert str(e.value) == "min_lr is not an option of f (use min_scale); options: a, b"
    with pytest.raises(TypeError, match=r"^zz is not an option of f; options: a$"):
        V.options("f", {"zz": 1}, ("a",))


def test_seed_is_what_numpy_torch_and_python_all_accept() -> None:
    import numpy as np

    assert V.seed("seed", 0) == 0
    assert V.seed("seed", np.int64(V.SEED_MAX)) == V.SEED_MAX == 2**32 - 1
    np.random.default_rng(V.SEED_MAX)
    np.random.seed(V.SEED_MAX)  # the widest of the three is numpy's global RNG
    for bad, shown in ((-1, "-1"), (2**32, "4294967296"), (1.5, "1.5"), (True, "True")):
        with pytest.raises(ValueError) as e:
            V.seed("--seed", bad)
        assert str(e.value).startswith("--seed must be an integer")
        assert str(e.value).endswith(f"got {shown}")
    with pytest.raises(ValueError):
        np.random.seed(2**32)  # what the bound guards against


@pytest.mark.parametrize("maximum", [None, 10])
def test_a_flag_is_no_integer_and_the_message_gives_the_range(maximum) -> None:
    allowed = "in [1, 10]" if maximum else ">= 1 (allowed range: [1, inf))"
    for flag in (True, False):
        with pytest.raises(ValueError) as e:
            V.integer("n", flag, 1, maximum)
        assert str(e.value) == f"n must be an integer {allowed}, got {flag}"
    assert V.integer("n", 3, 1, maximum) == 3


def test_an_infinite_bound_is_shown_open() -> None:
    import math

    with pytest.raises(ValueError) as e:
        V.in_range("f", 0.5, 1.0, math.inf, low_open=True)
    assert str(e.value) == "f must be in (1.0, inf), got 0.5"
    with pytest.raises(ValueError, match=r"^f must be in \(-inf, 0\], got 1$"):
        V.in_range("f", 1, -math.inf, 0)


def test_every_float_type_with_an_integral_value_is_a_count() -> None:
    """10.0 counts as 10 whatever its float type (np.float64 is a Python float; np.float32 and
    np.float16 are not, and were refused); a fraction is refused in each."""
    import numpy as np

    from lrkit import schedules as S

    for ftype in (float, np.float64, np.float32, np.float16):
        value = V.integer("total_steps", ftype(10.0), 1)
        assert value == 10 and type(value) is int
        assert S.cosine(0.1, total_steps=ftype(10.0)) == S.cosine(0.1, total_steps=10)
        with pytest.raises(
            ValueError, match=r"^total_steps must be an integer .*got (np\.float64\()?10\.5\)?$"
        ):
            V.integer("total_steps", ftype(10.5), 1)
    with pytest.raises(ValueError, match=r"got inf$"):
        V.integer("n", np.float32("inf"), 1)


@pytest.mark.parametrize("value", ["false", "no", 0, 1, None, [], 1.0])
def test_flag_refuses_what_is_not_a_bool(value):
    with pytest.raises(
        ValueError, match=rf"^progress must be True or False, got {re.escape(repr(value))}$"
    ):
        V.flag("progress", value)


def test_flag_accepts_bools_and_numpy_bools():
    import numpy as np

    assert V.flag("x", True) is True and V.flag("x", False) is False
    assert V.flag("x", np.bool_(True)) is True and V.flag("x", np.False_) is False
