"""lrkit._validate: the shared argument checks (one line naming the parameter)."""

from __future__ import annotations

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
