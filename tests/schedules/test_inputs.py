"""Schedules from the inputs users have at hand: dicts from config libraries, long or malformed
spec strings, a warmup of zero steps, a negative number added to a schedule."""

from __future__ import annotations

import math
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


def test_from_dict_lists_unknown_keys_of_mixed_types() -> None:
    with pytest.raises(
        ValueError, match=r"^cosine: unknown parameter\(s\) \['x', 1\] \(parameters"
    ):
        S.from_dict({"name": "cosine", "lr": 0.1, "total_steps": 10, 1: 2, "x": 3})


@pytest.mark.parametrize(
    "make",
    [
        lambda v: S.cyclic(0.0, max_lr=1.0, mode=v),
        lambda v: S.onecycle(0.1, total_steps=10, anneal_strategy=v),
        lambda v: S.wsd(0.1, total_steps=10, decay=v),
    ],
)
@pytest.mark.parametrize("value", [np.array(["a", "b"]), ["cos"], 1, None])
def test_a_mode_that_is_not_a_string_is_named(make, value) -> None:
    with pytest.raises(ValueError, match=r"^(mode|anneal_strategy|decay) must be one of '"):
        make(value)


def test_with_warmup_of_a_negative_start_names_the_schedule() -> None:
    with pytest.raises(ValueError, match=r"^schedule must start at a learning rate >= 0"):
        S.with_warmup(S.constant(0.1) - 0.2, warmup_steps=10)
    with pytest.raises(ValueError, match=r"^schedule must start at a learning rate >= 0"):
        S.with_warmup(S.constant(0.1) - 0.2, warmup_steps=0)


@pytest.mark.parametrize("spec", ["constant(1,,)", "cosine(0.1,,100)", "cosine(lr=0.1,,100)"])
def test_an_empty_argument_asks_for_a_value(spec) -> None:
    with pytest.raises(
        S.SpecError, match=r"expected a value \(number, string, list or schedule\), found ','"
    ):
        S.parse(spec)


def test_the_scalar_and_vector_paths_agree_where_a_cycle_outgrows_float64() -> None:
    s = S.cosine_restarts(0.1, T_0=10**15, T_mult=10**5)
    with np.errstate(all="ignore"):
        vec = s.values([1e308])[0]
    got = s(1e308)  # math.cos(inf) raised a bare "math domain error"
    assert (math.isnan(got) and math.isnan(vec)) or got == vec


def test_add_and_mul_specs_take_their_schedules_one_by_one_as_python_does() -> None:
    from lrkit import schedules as S
    from lrkit.schedules import SpecError

    a, b, c = S.constant(0.85), S.cosine(0.1, total_steps=10), S.constant(2.0)
    assert S.parse("add(constant(0.85), cosine(0.1, 10))") == S.add(a, b) == a + b
    assert S.parse("mul(constant(0.85), cosine(0.1, 10), constant(2))") == S.mul(a, b, c)
    assert S.parse("add([constant(0.85), cosine(0.1, 10)])") == S.add(a, b)
    with pytest.raises(SpecError, match=r"add\(\): schedules\[1\] must be a schedule, got 2"):
        S.parse("add(constant(1), 2)")
    with pytest.raises(SpecError, match=r"add\(\) takes its schedules as one list or one by one"):
        S.parse("add([constant(1), constant(2)], constant(3))")
    with pytest.raises(SpecError, match=r"its first argument, 1, is not a schedule \(write a "):
        S.parse("add(1, 2)")


def test_a_family_registered_again_replaces_itself_and_no_other() -> None:
    """A notebook cell defining a custom family, run twice, registers it again; another
    class under a name taken (a built-in one included) is refused in one line."""
    from lrkit.schedules import REGISTRY, Schedule, register

    def define(lr_factor: float) -> type:
        class HalfLife(Schedule):
            name = "lrkit_test_half_life"
            params = ("lr", "half_life")

            def __init__(self, lr: float, *, half_life: float) -> None:
                self.lr, self.half_life = float(lr) * lr_factor, float(half_life)

            def _values(self, t, xp):  # noqa: ANN001, ANN202
                return self.lr * xp.power(0.5, t / self.half_life)

        return HalfLife

    try:
        first = register(define(1.0))
        second = register(define(2.0))  # the same cell run again
        assert REGISTRY["lrkit_test_half_life"] is second is not first
        assert S.parse("lrkit_test_half_life(0.1, half_life=10)")(10) == 0.1
        other = type("Other", (first,), {"__module__": "somewhere"})
        with pytest.raises(ValueError, match=r"^schedule name 'lrkit_test_half_life' is taken by"):
            register(other)
        cosine = type(
            "Cosine", (first,), {"name": "cosine", "__qualname__": "Cosine", "__module__": "x"}
        )
        with pytest.raises(ValueError, match=r"^schedule name 'cosine' is taken by lrkit\."):
            register(cosine)
        assert REGISTRY["cosine"].__module__.startswith("lrkit.")
    finally:
        REGISTRY.pop("lrkit_test_half_life", None)


def test_a_family_needs_a_name_of_its_own_to_be_registered() -> None:
    """A class without a name is refused; so is another class of the same module under a
    name taken (only the same class, defined again, replaces itself)."""
    from lrkit.schedules import REGISTRY, Schedule, register

    def family(qualname: str, name: str) -> type:
        def values(self, t, xp):  # noqa: ANN001, ANN202
            return t * 0.0

        return type(
            qualname,
            (Schedule,),
            {"name": name, "params": (), "_values": values, "__qualname__": qualname},
        )

    with pytest.raises(
        ValueError, match=r"^a registered schedule needs a class attribute name, got ''$"
    ):
        register(family("Nameless", ""))
    assert "" not in REGISTRY
    try:
        first = register(family("First", "lrkit_test_taken"))
        with pytest.raises(
            ValueError,
            match=r"^schedule name 'lrkit_test_taken' is taken by .*\.First: give Second another",
        ):
            register(family("Second", "lrkit_test_taken"))
        assert REGISTRY["lrkit_test_taken"] is first
    finally:
        REGISTRY.pop("lrkit_test_taken", None)


def test_a_custom_family_writes_negative_zero_as_zero() -> None:
    from lrkit.schedules import Schedule

    class Flat(Schedule):
        name = "lrkit_test_flat"
        params = ("lr",)

        def __init__(self, lr: float) -> None:
            self.lr = float(lr)

        def _values(self, t, xp):  # noqa: ANN001, ANN202
            return t * 0.0 + self.lr

    assert str(Flat(-0.0)) == "lrkit_test_flat(lr=0.0)" == str(Flat(0.0))
    assert Flat(-0.0) == Flat(0.0) and hash(Flat(-0.0)) == hash(Flat(0.0))


def test_cos_and_cosine_are_one_shape_in_every_family_that_names_it() -> None:
    pytorch = S.onecycle(0.1, total_steps=100, anneal_strategy="cos")
    spelled = S.onecycle(0.1, total_steps=100, anneal_strategy="cosine")
    steps = np.arange(101)
    assert np.array_equal(spelled.values(steps), pytorch.values(steps))
    assert spelled.to_dict() == pytorch.to_dict()  # saved as PyTorch's spelling
    assert S.parse("onecycle_momentum(100, anneal_strategy='cosine')").anneal_strategy == "cos"
    wsd = S.wsd(0.1, total_steps=100, warmup_steps=10, decay="cos", warmup="cos")
    assert (wsd.decay, wsd.warmup) == ("cosine", "cosine")
    assert wsd.to_dict() == S.wsd(0.1, total_steps=100, warmup_steps=10, decay="cosine",
                                  warmup="cosine").to_dict()  # fmt: skip
    assert S.warmup(0.0, end_lr=0.1, warmup_steps=10, mode="cos").mode == "cosine"
    with pytest.raises(ValueError, match=r"^anneal_strategy must be one of 'cos', 'linear', got"):
        S.onecycle(0.1, total_steps=100, anneal_strategy="cosin")


def test_another_librarys_name_for_a_schedule_is_told_lrkits_spelling() -> None:
    known = ", ".join(S.spec_names())
    with pytest.raises(S.SpecError) as info:
        S.parse("warmup_cosine(0.1, 1000)")
    assert str(info.value).splitlines()[0] == (
        "invalid schedule spec at position 0: unknown schedule 'warmup_cosine'; in lrkit, e.g. "
        f"with_warmup(cosine(0.1, total_steps=1000), warmup_steps=100) (known: {known})"
    )
    with pytest.raises(ValueError) as info:
        S.from_dict({"name": "OneCycleLR", "max_lr": 0.1})
    assert str(info.value) == (
        "unknown schedule name 'OneCycleLR'; in lrkit, e.g. onecycle(0.1, total_steps=1000) "
        f"(known: {known})"
    )


def test_every_spelling_told_for_another_librarys_name_parses() -> None:
    from lrkit.schedules._spec import _OTHER_NAMES

    names = {n.replace("_", "") for n in S.spec_names()}
    for other, spelled in _OTHER_NAMES.items():
        assert other not in names  # a name lrkit knows is never redirected
        s = S.parse(spelled)
        assert S.parse(str(s)) == s and s.values(np.arange(2000)).max() > 0, spelled


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("cosin(0.1, 100)", "unknown schedule 'cosin'; did you mean 'cosine'? (known: "),
        ("CosineAnnealingLR(0.1, 100)", "unknown schedule 'CosineAnnealingLR'; in lrkit, e.g. "
         "cosine(0.1, total_steps=1000) (known: "),
        ("exponential_decay(0.1)", "unknown schedule 'exponential_decay'; in lrkit, e.g. "
         "exponential(0.1, gamma=0.99) (known: "),
        ("zzz(1)", "unknown schedule 'zzz' (known: "),
    ],
)  # fmt: skip
def test_an_unknown_schedule_is_told_the_nearest_name_or_none(spec: str, said: str) -> None:
    with pytest.raises(S.SpecError) as info:
        S.parse(spec)
    assert (
        str(info.value).splitlines()[0].startswith(f"invalid schedule spec at position 0: {said}")
    )
