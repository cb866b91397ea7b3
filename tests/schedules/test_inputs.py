"""Schedules from the inputs users have at hand: dicts from config libraries, long or malformed
spec strings, a warmup of zero steps, a negative number added to a schedule."""

from __future__ import annotations

import types

import numpy as np
import pytest

from lrkit import schedules as S

NESTED = S.join(
    [S.warmup(0.0, end_lr=0.1, warmup_steps=10), S.cosine(0.1, total_steps=90)], boundaries=[10]
)


def test_from_dict_reads_any_mapping_and_sequence() -> None:
    d = NESTED.to_dict()
    frozen = types.MappingProxyType(
        {
            "name": "join",
            "schedules": tuple(types.MappingProxyType(x) for x in d["schedules"]),
            "boundaries": tuple(d["boundaries"]),
        }
    )
    assert S.from_dict(frozen) == NESTED
    assert S.as_schedule(frozen) == NESTED


def test_from_dict_reads_an_omegaconf_config_without_to_container() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.create({"schedule": NESTED.to_dict()})
    assert S.from_dict(cfg.schedule) == NESTED
    assert S.as_schedule(cfg.schedule) == NESTED
    t = np.arange(120)
    assert np.array_equal(S.as_schedule(cfg.schedule).values(t), NESTED.values(t))


@pytest.mark.parametrize("name", [["cosine"], None, 3])
def test_from_dict_with_a_name_that_is_not_a_string(name: object) -> None:
    with pytest.raises(ValueError, match=r"^unknown schedule name .* \(known: add, clamp"):
        S.from_dict({"name": name, "lr": 0.1})


def test_a_long_spec_error_shows_the_part_around_the_position() -> None:
    spec = "add([" + "constant(0.1), " * 40 + "constant(-1)])"
    with pytest.raises(S.SpecError) as info:
        S.parse(spec)
    pos = spec.index("-1")
    first, shown, caret = str(info.value).split("\n")
    assert first == (
        f"invalid schedule spec at position {pos}: constant(): lr must be >= 0 "
        "(allowed range: [0, inf)), got -1"
    )
    assert shown.startswith("  ...") and shown.endswith("constant(-1)])")
    assert len(shown) <= 2 + 3 + 60 + 60
    assert caret.index("^") == shown.index("-1")


def test_a_huge_integer_is_a_spec_error_at_the_number() -> None:
    spec = "constant(" + "1" * 5000 + ")"
    with pytest.raises(S.SpecError) as info:
        S.parse(spec)
    assert info.value.pos == 9
    first, shown, caret = str(info.value).split("\n")
    assert first == "invalid schedule spec at position 9: integer with 5000 digits (at most 4300)"
    assert shown == "  constant(" + "1" * 60 + "..."
    assert caret == " " * 11 + "^"


def test_with_warmup_of_zero_steps_is_the_schedule_itself() -> None:
    c = S.cosine(0.1, total_steps=100)
    w = S.with_warmup(c, warmup_steps=0)
    assert w == S.join([c], boundaries=[])
    t = np.arange(150)
    assert np.array_equal(w.values(t), c.values(t))
    assert [w(int(x)) for x in t] == [c(int(x)) for x in t]
    assert S.parse(str(w)) == w
    with pytest.raises(
        ValueError, match=r"^warmup_steps must be an integer in \[0, 2\*\*53\], got -1$"
    ):
        S.with_warmup(c, warmup_steps=-1)
    with pytest.raises(ValueError, match=r"^mode must be one of 'linear', 'exponential', 'cosine'"):
        S.with_warmup(c, warmup_steps=0, mode="sqrt")


def test_adding_a_negative_number_subtracts_it() -> None:
    c = S.cosine(0.5, total_steps=100)
    t = np.arange(120)
    for s, want in [
        (c + (-0.1), c.values(t) - 0.1),
        (-0.1 + c, c.values(t) - 0.1),
        (c - (-0.1), c.values(t) + 0.1),
    ]:
        assert np.array_equal(s.values(t), want)
        assert S.parse(str(s)) == s
    assert c + (-0.1) == S.sub(c, b=S.constant(0.1))
    assert c - (-0.1) == S.add(c, S.constant(0.1))


def test_a_spec_over_several_lines_is_shown_on_one_with_the_caret_under_the_error() -> None:
    spec = "join([warmup(0.0, 0.1, 10),\n\tcosine(0.1, total_steps=0)], [10])"
    with pytest.raises(S.SpecError) as info:
        S.parse(spec)
    assert info.value.pos == spec.index("0)]")
    first, shown, caret = str(info.value).split("\n")
    assert first.endswith("cosine(): total_steps must be an integer in [1, 2**53], got 0")
    assert shown == "  join([warmup(0.0, 0.1, 10),  cosine(0.1, total_steps=0)], [10])"
    assert shown[caret.index("^") :].startswith("0)]")
