"""lrkit._validate: the shared argument checks (one line naming the parameter)."""

from __future__ import annotations

import re
from typing import Any

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


def test_a_misspelling_as_close_to_two_names_names_both() -> None:
    """One letter from two names (an option and a hint's, or two hints'): both are named with
    what each means, none guessed; one closest name is still the one suggested."""
    hints = {"min_lr": "use start_lr", "max_lr": "use end_lr"}
    allowed = ("start_lr", "end_lr", "probe_data")
    with pytest.raises(TypeError) as e:
        V.options("f", {"man_lr": 1}, allowed, hints)
    assert str(e.value) == (
        "man_lr is not an option of f (as close to max_lr (use end_lr) as to min_lr (use "
        "start_lr)); options: end_lr, probe_data, start_lr"
    )
    with pytest.raises(TypeError, match=r"^mun_lr is not an option of f \(use start_lr\);"):
        V.options("f", {"mun_lr": 1}, allowed, hints)
    with pytest.raises(TypeError, match=r"^probe_date is .* \(did you mean probe_data\?\);"):
        V.options("f", {"probe_date": 1}, allowed, hints)
    with pytest.raises(TypeError, match=r"\(as close to end_lr as to end_lx\)"):
        V.options("f", {"end_lt": 1}, ("end_lr", "end_lx"))


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


@pytest.mark.parametrize("value", ["false", "no", "True", 0, 1, None, [], 1.0, "maybe"])
def test_flag_refuses_what_is_not_a_bool(value):
    with pytest.raises(
        ValueError, match=rf"^progress must be True or False, got {re.escape(repr(value))}$"
    ):
        V.flag("progress", value)
    # in a config or a spec (spelled true or false), a quoted true or a word such as no is
    # said to be text, with what to write (right whether or not it was quoted)
    text = (
        " (text, not a boolean: write true or false, without quotes)"
        if value in ("false", "no", "True")
        else ""
    )
    with pytest.raises(
        ValueError, match=rf"^cycle must be true or false, got {re.escape(repr(value) + text)}$"
    ):
        V.flag("cycle", value, spelled="true or false")


@pytest.mark.parametrize("written", ["yes", "'yes'", "'true'", '"false"'])
def test_a_spec_boolean_written_as_text_gets_a_hint_right_with_or_without_quotes(written):
    from lrkit import schedules as S

    word = written.strip("'\"")
    with pytest.raises(ValueError) as info:
        S.parse(f"polynomial(0.1, 100, cycle={written})")
    assert (
        f"cycle must be true or false, got {word!r} (text, not a boolean: write true or "
        "false, without quotes)"
    ) in str(info.value)
    assert "write it without quotes" not in str(info.value)


def test_flag_accepts_bools_and_numpy_bools():
    import numpy as np

    assert V.flag("x", True) is True and V.flag("x", False) is False
    assert V.flag("x", np.bool_(True)) is True and V.flag("x", np.False_) is False


@pytest.mark.parametrize(
    "text, hint",
    [
        ("3e-4", " (text, not a number: YAML reads 3e-4 as text; write 3.0e-4)"),
        ("1E5", " (text, not a number: YAML reads 1E5 as text; write 1.0e+5)"),
        ("1.5e5", " (text, not a number: YAML reads 1.5e5 as text; write 1.5e+5)"),
        ("0.1", " (text, not a number)"),
        ("abc", ""),
    ],
)
def test_a_number_given_as_text_is_refused_with_what_to_write(text: str, hint: str) -> None:
    yaml = pytest.importorskip("yaml")
    with pytest.raises(ValueError) as info:
        V.number("lr", text)
    assert str(info.value) == f"lr must be a finite real number, got {text!r}{hint}"
    if "write " in hint:  # what the hint says to write is a number to YAML
        assert yaml.safe_load(hint.split("write ")[1].rstrip(")")) == float(text)


def test_a_schedule_given_where_a_number_goes_says_where_a_schedule_goes() -> None:
    """``warmup(cosine(...), ...)``, in Python or in a spec: the schedule is refused as
    ``start_lr`` with the composites that take one; the spec itself parses with them."""
    from lrkit import schedules as S

    hint = (
        " (a schedule where a number goes: with_warmup(schedule, warmup_steps=N) warms up "
        "into a schedule, join([...], boundaries=[...]) chains schedules)"
    )
    cos = S.cosine(0.1, total_steps=100)
    with pytest.raises(ValueError) as info:
        S.warmup(cos, end_lr=0.1, warmup_steps=10)
    assert str(info.value) == f"start_lr must be a finite real number, got {cos!r}{hint}"
    with pytest.raises(ValueError) as info:
        S.parse("warmup(cosine(0.1, 100), 0.1, 10)")
    assert hint in str(info.value)
    assert S.parse("with_warmup(cosine(0.1, 100), warmup_steps=10)")(5) == pytest.approx(0.05)
    with pytest.raises(ValueError) as info:
        V.number("lr", object())
    assert "a schedule" not in str(info.value)


@pytest.mark.parametrize("maximum", [None, 2**53])
def test_an_integer_given_as_text_is_refused_with_what_to_write(maximum: int | None) -> None:
    yaml = pytest.importorskip("yaml")
    with pytest.raises(ValueError) as info:
        V.integer("total_steps", "1e5", 1, maximum)
    hint = " (text, not a number: YAML reads 1e5 as text; write 1.0e+5)"
    assert str(info.value).endswith(f"got '1e5'{hint}")
    written = yaml.safe_load(hint.split("write ")[1].rstrip(")"))
    assert V.integer("total_steps", written, 1, maximum) == 100000  # and it is accepted
    with pytest.raises(ValueError) as info:
        V.integer("total_steps", "abc", 1, maximum)
    assert str(info.value).endswith("got 'abc'")


def test_a_yaml_config_with_an_integer_as_text_names_the_field_and_what_to_write() -> None:
    yaml = pytest.importorskip("yaml")
    from lrkit import schedules as S

    with pytest.raises(ValueError, match=r"^total_steps must be an integer .* write 1\.0e\+5\)$"):
        S.from_dict(yaml.safe_load("{name: cosine, lr: 0.1, total_steps: 1e5}"))
    s = S.from_dict(yaml.safe_load("{name: cosine, lr: 0.1, total_steps: 1.0e+5}"))
    assert s == S.cosine(0.1, total_steps=100000)


def test_minus_zero_is_zero_so_every_round_trip_keeps_the_value() -> None:
    import json
    import math
    import pickle

    from lrkit import schedules as S

    assert math.copysign(1.0, V.number("lr", -0.0)) == 1.0
    assert math.copysign(1.0, V.non_negative("lr", -0.0)) == 1.0
    for s in (S.constant(-0.0), S.cosine(0.1, total_steps=10) * -0.0):
        for back in (
            S.parse(str(s)),
            S.from_dict(json.loads(json.dumps(s.to_dict()))),
            pickle.loads(pickle.dumps(s)),
        ):
            assert back == s
            assert [math.copysign(1.0, back(t)) for t in range(3)] == [
                math.copysign(1.0, s(t)) for t in range(3)
            ]
            assert all(math.copysign(1.0, s(t)) == 1.0 for t in range(3))


def test_a_callable_is_checked_for_the_arguments_lrkit_calls_it_with() -> None:
    def two(a, b):  # noqa: ANN001, ANN202
        return a

    assert V.takes("fn", two, "fn(a, b)", 2) is two
    for ok in (lambda *a: 0, lambda a, b, c=1: 0, print, max):  # a builtin: not readable, taken
        assert V.takes("fn", ok, "fn(a, b)", 2) is ok
    with pytest.raises(TypeError) as err:
        V.takes("fn", two, "fn()", 0)
    assert str(err.value) == (
        "fn must be a callable fn(), taking 0 positional arguments; got two(a, b)"
    )
    with pytest.raises(TypeError, match=r"taking 1 positional argument; got <lambda>\(\*, k\)"):
        V.takes("fn", lambda *, k: 0, "fn(x)", 1)
    assert V.optional_callable("cb", None, "cb(i)", 1) is None
    with pytest.raises(TypeError, match="cb must be a callable cb"):
        V.optional_callable("cb", two, "cb(i)", 1)
    with pytest.raises(TypeError, match="cb must be a callable cb\\(i\\) or None, got 3"):
        V.optional_callable("cb", 3, "cb(i)", 1)


def test_a_multi_line_repr_is_said_on_one_line() -> None:
    np = pytest.importorskip("numpy")

    class Module:
        def __repr__(self) -> str:
            return "Sequential(\n  (0): Linear()\n  (1): ReLU()\n)"

    assert V.fmt(np.zeros((2, 2))) == "array([[0., 0.], [0., 0.]])"
    assert V.fmt(Module()) == "Sequential( (0): Linear() (1): ReLU() )"
    assert V.fmt("a\nb") == "'a\\nb'"  # a string's repr is one line already
    assert V.fmt(["x   y"]) == "['x   y']"  # spaces inside a value kept

    class Broken:
        def __init__(self, error: type[Exception]) -> None:
            self.error = error

        def __repr__(self) -> str:
            raise self.error("no")

    assert V.fmt(Broken(RuntimeError)) == "a Broken (its repr raised RuntimeError)"
    assert V.fmt(Broken(ValueError)) == "a Broken (its repr raised ValueError)"
    assert V.fmt([10**5000]) == "a list holding an integer too long to print"
    with pytest.raises(ValueError) as info:
        V.integer("steps", np.ones((2, 2)), 1)
    assert "\n" not in str(info.value)


def test_a_number_may_be_a_zero_d_array_of_a_real_dtype() -> None:
    """A 0-d numpy, JAX or torch array of a real dtype is the number it holds (as a numpy
    scalar is); bool, complex, shaped and record ones are refused, and a value traced by JAX
    is refused with what to do instead."""
    import numpy as np

    assert V.number("lr", np.array(1e-3)) == 1e-3 and V.number("lr", np.array(3)) == 3.0
    got = V.integer("total_steps", np.array(100), 1)
    assert got == 100 and type(got) is int
    for bad in (np.array(True), np.array(1 + 0j), np.array([1e-3]), np.zeros((), "V8")):
        with pytest.raises(ValueError, match=r"^lr must be a finite real number, got "):
            V.number("lr", bad)
    torch = pytest.importorskip("torch")
    assert V.number("lr", torch.tensor(0.5)) == 0.5
    assert type(V.integer("patience", torch.tensor(3))) is int
    from lrkit import schedules as S

    s = S.cosine(1e-2, total_steps=torch.tensor(10))
    assert s == S.cosine(1e-2, total_steps=10) and type(s.total_steps) is int
    assert s * torch.tensor(2.0) == s * 2.0 == np.array(2.0) * s and s + np.float32(1) == s + 1
    with pytest.raises(ValueError, match=r"^lr must be a finite real number, got tensor\(True\)"):
        V.number("lr", torch.tensor(True))
    jax = pytest.importorskip("jax")
    assert V.number("lr", jax.numpy.asarray(0.5)) == 0.5
    with pytest.raises(ValueError, match=r"must be a concrete real number, got a value traced"):
        jax.jit(lambda lr: (s * lr)(3))(0.5)  # an operator names what it refuses too
    traced = r"^lr must be a concrete real number, got a value traced by JAX \(\w+\): "
    with pytest.raises(
        ValueError, match=traced + r".*lrkit\.optax\.schedule\(s\)\(count\) \* lr\)"
    ):
        jax.vmap(lambda lr: V.number("lr", lr))(jax.numpy.asarray([0.5, 0.25]))


def test_checked_keywords_names_the_option_meant_and_leaves_kwargs_functions_alone() -> None:
    @V.checked_keywords("f()", hints={"lr_min": "use min_lr"})
    def f(a: int, *, min_lr: float = 0.0, max_lr: float = 1.0) -> float:
        return a + min_lr + max_lr

    assert f(1, min_lr=2.0) == 4.0 and f.__name__ == "f"
    with pytest.raises(TypeError) as info:
        f(1, lr_min=2.0)  # type: ignore[call-arg]
    assert (
        str(info.value) == "lr_min is not an option of f() (use min_lr); options: a, max_lr, min_lr"
    )
    with pytest.raises(TypeError, match=r"^man_lr is not an option of f\(\) \(as close to max_lr"):
        f(1, man_lr=2.0)  # type: ignore[call-arg]

    def g(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    assert V.checked_keywords("g()")(g) is g  # takes any keyword: nothing to check


def test_fmt_shows_a_repr_of_the_limits_length_whole_and_describes_a_huge_integer() -> None:
    at_limit = "x  y" + "z" * (V.FMT_LIMIT - 6)  # spaces inside kept as given
    assert V.fmt(at_limit) == repr(at_limit) and len(repr(at_limit)) == V.FMT_LIMIT
    assert V.fmt(10**5000) == "an integer with 5001 digits"
    assert V.digits(10**5000) == "an integer with 5001 digits"
    assert V.digits(-(10**12)) == "an integer with 13 digits"


def test_prefixed_keeps_the_kind_of_error_and_dict_given_sorts_the_keys() -> None:
    for kind in (ValueError, TypeError):
        error = V.prefixed("state['a'][1]: ", kind("bad"))
        assert type(error) is kind and str(error) == "state['a'][1]: bad"
    assert V.dict_given({"b": 1, "a": 2}) == "a dict with keys ['a', 'b']"
    assert V.dict_given([1]) == "list"


def test_real_dtype_tells_integers_from_floats_and_refuses_no_dtype() -> None:
    import numpy as np

    assert V.real_dtype(None) is False
    assert V.real_dtype(np.float32) and not V.real_dtype(np.float32, integer=True)
    assert V.real_dtype(np.int8, integer=True) and V.real_dtype(np.uint8)
    assert not V.real_dtype(np.bool_) and not V.real_dtype(np.complex64)
    ml_dtypes = pytest.importorskip("ml_dtypes")
    assert V.real_dtype(ml_dtypes.bfloat16)
    assert not V.real_dtype(ml_dtypes.bfloat16, integer=True)
    # ml_dtypes' small integer types are integers, as numpy's are
    assert V.real_dtype(ml_dtypes.int4, integer=True) and V.real_dtype(ml_dtypes.uint4)
    assert not V.real_dtype(ml_dtypes.float8_e4m3fn, integer=True)
    torch = pytest.importorskip("torch")
    assert V.real_dtype(torch.float32) and not V.real_dtype(torch.float32, integer=True)
    assert V.real_dtype(torch.int64, integer=True)
    assert not V.real_dtype(torch.bool) and not V.real_dtype(torch.complex64)


@pytest.mark.parametrize("bad", [True, False, float("inf"), -float("inf"), float("nan")])
def test_number_refuses_a_bool_and_what_is_not_finite(bad: Any) -> None:
    with pytest.raises(ValueError) as info:
        V.number("lr", bad)
    assert str(info.value) == f"lr must be a finite real number, got {bad!r}"


def test_the_bounds_of_positive_non_negative_steps_and_ranges() -> None:
    with pytest.raises(ValueError) as info:
        V.positive("lr", 0)
    assert str(info.value) == "lr must be > 0 (allowed range: (0, inf)), got 0"
    assert V.positive("lr", 1e-300) == 1e-300
    assert V.non_negative("lr", 0) == 0.0
    with pytest.raises(
        ValueError, match=r"^lr must be >= 0 \(allowed range: \[0, inf\)\), got -1$"
    ):
        V.non_negative("lr", -1)
    assert V.step_count("warmup", 0, 0) == 0.0 and V.step_count("warmup", 2**53, 0) == 2**53
    for bad in (-0.5, 2**53 + 2):
        with pytest.raises(ValueError) as info:
            V.step_count("warmup", bad, 0)
        assert str(info.value) == f"warmup must be a number of steps in [0, 2**53], got {bad!r}"
    assert V.in_range("f", 1.0, 1.0, 2.0) == 1.0 and V.in_range("f", 2.0, 1.0, 2.0) == 2.0
    with pytest.raises(ValueError, match=r"^f must be in \(1\.0, 2\.0\], got 1\.0$"):
        V.in_range("f", 1.0, 1.0, 2.0, low_open=True)
    with pytest.raises(ValueError, match=r"^f must be in \[1\.0, 2\.0\), got 2\.0$"):
        V.in_range("f", 2.0, 1.0, 2.0, high_open=True)


def test_an_integer_bound_is_shown_by_name_and_a_huge_integer_by_its_digits() -> None:
    import sys

    assert V.MAX_STEPS == 2**53
    assert V.integer("total_steps", 2**53, 1, V.MAX_STEPS) == 2**53
    with pytest.raises(ValueError) as info:
        V.integer("total_steps", 2**53 + 1, 1, V.MAX_STEPS)
    assert str(info.value) == f"total_steps must be an integer in [1, 2**53], got {2**53 + 1}"
    with pytest.raises(ValueError) as info:
        V.integer("maxlen", sys.maxsize + 1, 0, sys.maxsize)
    assert (
        str(info.value) == f"maxlen must be an integer in [0, sys.maxsize], got {sys.maxsize + 1}"
    )
    with pytest.raises(ValueError) as info:
        V.integer("n", 10**40, 1, 10)
    assert str(info.value) == "n must be an integer in [1, 10], got an integer with 41 digits"


def test_optional_text_takes_a_string_or_none_and_says_what_the_text_means() -> None:
    assert V.optional_text("name", None) is None and V.optional_text("name", "a") == "a"
    with pytest.raises(TypeError) as info:
        V.optional_text("name", 3, meaning="the task's name")
    assert str(info.value) == "name must be a string (the task's name) or None, got 3"
    with pytest.raises(TypeError, match=r"^name must be a string or None, got b'a'$"):
        V.optional_text("name", b"a")


def test_utf8_text_refuses_undecodable_bytes_with_what_to_do() -> None:
    assert V.utf8_text("path", "caf\u00e9") == "caf\u00e9"
    with pytest.raises(ValueError) as info:
        V.utf8_text("path", "a\udcff")
    assert str(info.value).startswith(
        "path must be text UTF-8 can write, got 'a\\udcff' (bytes the locale could not decode"
    )


def test_choice_points_at_the_value_meant_for_another_librarys_spelling() -> None:
    hints = {"triangular2": "use cyclic(..., decay=0.5)"}
    assert V.choice("mode", "a", ("a", "b"), hints) == "a"
    with pytest.raises(ValueError) as info:
        V.choice("mode", "triangular2", ("a", "b"), hints)
    assert str(info.value) == (
        "mode must be one of 'a', 'b', got 'triangular2' (use cyclic(..., decay=0.5))"
    )
    with pytest.raises(ValueError, match=r"^mode must be one of 'a', 'b', got 'c'$"):
        V.choice("mode", "c", ("a", "b"), hints)


def test_listed_refuses_a_string_or_a_mapping_and_cuts_a_long_one() -> None:
    assert V.listed("milestones", [1, 2], "integers") == [1, 2]
    with pytest.raises(ValueError) as info:
        V.listed("milestones", {"a": 1}, "integers")
    assert str(info.value) == "milestones must be a list of integers, got a mapping: {'a': 1}"
    long = "1" * 80
    with pytest.raises(ValueError) as info:
        V.listed("milestones", long, "integers")
    shown = repr(long)[:57] + "..."
    assert str(info.value) == f"milestones must be a list of integers, got a string: {shown}"


def test_sorted_ints_allows_repeats_unless_strict_and_names_the_entry_refused() -> None:
    assert V.sorted_ints("milestones", [1, 1, 2]) == (1, 1, 2)
    assert V.sorted_ints("milestones", range(3), strict=True) == (0, 1, 2)
    with pytest.raises(ValueError) as info:
        V.sorted_ints("milestones", [1, 1, 2], strict=True)
    assert str(info.value) == (
        "milestones must be strictly increasing, but milestones[1]=1 follows milestones[0]=1"
    )
    with pytest.raises(ValueError) as info:
        V.sorted_ints("milestones", [2, 1])
    assert str(info.value) == (
        "milestones must be sorted in non-decreasing order, but milestones[1]=1 follows "
        "milestones[0]=2"
    )
    with pytest.raises(ValueError) as info:
        V.sorted_ints("milestones", [1, -1])
    assert str(info.value) == (
        "milestones[1] must be an integer >= 0 (allowed range: [0, inf)), got -1"
    )


def test_keywords_leave_out_self_and_tell_whether_any_keyword_is_taken() -> None:
    class Task:
        @V.checked_keywords("Task()")
        def __init__(self, a: int, *, b: int = 0) -> None:
            self.total = a + b

    assert V.keywords(Task.__init__) == (["a", "b"], False)
    assert V.keywords(lambda x, *args, y, **kw: 0) == (["x", "y"], True)
    assert Task(1, b=2).total == 3
    with pytest.raises(TypeError) as info:
        Task(1, c=2)  # type: ignore[call-arg]
    assert str(info.value) == "c is not an option of Task(); options: a, b"


def test_a_name_only_loosely_like_an_option_gets_no_guess() -> None:
    with pytest.raises(TypeError) as info:
        V.options("f", {"total": 1}, ("total_steps",))
    assert str(info.value) == "total is not an option of f; options: total_steps"


def test_an_integer_traced_by_jax_is_refused_in_one_line() -> None:
    jax = pytest.importorskip("jax")
    with pytest.raises(
        ValueError, match=r"^n must be an integer >= 1 \(allowed range: \[1, inf\)\)"
    ):
        jax.jit(lambda n: V.integer("n", n, 1))(3)


def test_a_number_too_large_for_a_float_is_described_by_its_digits() -> None:
    with pytest.raises(ValueError) as info:
        V.number("lr", 10**400)
    assert str(info.value) == "lr must be a finite real number, got an integer with 401 digits"


def test_a_shaped_tensor_of_one_number_is_no_number() -> None:
    torch = pytest.importorskip("torch")
    for bad in (torch.tensor([0.5]), torch.tensor([[2]])):
        with pytest.raises(ValueError) as info:
            V.number("lr", bad)
        assert str(info.value) == f"lr must be a finite real number, got {V.fmt(bad)}"


def test_a_zero_d_array_of_bools_or_complex_numbers_is_no_count() -> None:
    import numpy as np

    for bad in (np.array(True), np.array(1 + 0j)):
        with pytest.raises(ValueError) as info:
            V.integer("n", bad)
        assert str(info.value) == (
            f"n must be an integer >= 0 (allowed range: [0, inf)), got {V.fmt(bad)}"
        )


class _Loss:
    def __call__(self, output: Any, target: Any) -> float:
        return 0.0


class _MeanLoss(_Loss):  # callable by what it inherits
    pass


def test_a_loss_class_given_for_an_instance_is_refused_with_the_call_meant() -> None:
    for cls in (_Loss, _MeanLoss):
        for check in (lambda c: V.not_a_class("loss_fn", c), V.loss_callable):
            with pytest.raises(TypeError) as info:
                check(cls)
            assert str(info.value) == (
                f"loss_fn is the class {cls.__module__}.{cls.__qualname__}: give an instance, "
                f"{cls.__qualname__}()"
            )
    loss = _Loss()
    assert V.not_a_class("loss_fn", loss) is loss and V.loss_callable(loss) is loss
    assert V.not_a_class("dtype", int) is int  # its instances are not callable


def test_loss_callable_takes_none_only_when_optional_and_needs_two_arguments() -> None:
    assert V.loss_callable(None, optional=True) is None
    with pytest.raises(TypeError) as info:
        V.loss_callable(None)
    assert str(info.value) == "loss_fn must be a callable loss_fn(output, target), got None"
    with pytest.raises(TypeError) as info:
        V.loss_callable(3, optional=True)
    assert str(info.value) == ("loss_fn must be a callable loss_fn(output, target) or None, got 3")
    with pytest.raises(TypeError) as info:
        V.loss_callable(lambda output: 0.0)
    assert str(info.value) == (
        "loss_fn must be a callable loss_fn(output, target), taking 2 positional arguments; "
        "got <lambda>(output)"
    )


def test_a_boolean_word_with_spaces_around_it_gets_the_hint_too() -> None:
    with pytest.raises(ValueError) as info:
        V.flag("cycle", " Yes ", spelled="true or false")
    assert str(info.value) == (
        "cycle must be true or false, got ' Yes ' (text, not a boolean: write true or false, "
        "without quotes)"
    )


def test_choice_returns_the_value_an_alias_stands_for_and_refuses_an_array() -> None:
    import numpy as np

    aliases = {"tri": "triangular"}
    assert V.choice("mode", "tri", ("triangular", "exp"), aliases=aliases) == "triangular"
    assert V.choice("mode", "exp", ("triangular", "exp"), aliases=aliases) == "exp"
    with pytest.raises(ValueError) as info:
        V.choice("mode", np.array("exp"), ("triangular", "exp"))
    assert str(info.value) == (
        "mode must be one of 'triangular', 'exp', got array('exp', dtype='<U3')"
    )


def test_listed_shows_a_repr_of_sixty_characters_whole() -> None:
    text = "1" * 58  # its repr, quotes included, is 60 characters
    with pytest.raises(ValueError) as info:
        V.listed("milestones", text, "integers")
    assert str(info.value) == f"milestones must be a list of integers, got a string: {text!r}"


def test_sorted_ints_names_the_entry_above_the_maximum() -> None:
    assert V.sorted_ints("milestones", [1, 10], maximum=10) == (1, 10)
    with pytest.raises(ValueError) as info:
        V.sorted_ints("milestones", [1, 11], maximum=10)
    assert str(info.value) == "milestones[1] must be an integer in [0, 10], got 11"


class _Plateau:
    @V.keyword_only(
        "lib.Plateau", peer_order=("monitor", "factor", "patience"), accepted=("verbose",)
    )
    def __init__(
        self, monitor: str = "loss", *, factor: float = 0.1, patience: int = 10, **kwargs: Any
    ) -> None:
        self.args = (monitor, factor, patience, kwargs)


def test_keyword_only_counts_no_self_and_shows_the_call_with_keywords() -> None:
    assert _Plateau("val", factor=0.5).args == ("val", 0.5, 10, {})
    with pytest.raises(TypeError) as info:
        _Plateau("val", 0.5, 3, verbose=1)
    assert str(info.value) == (
        "lib.Plateau: takes 1 positional argument (monitor) but 3 were given; give the others "
        "by keyword, as in Plateau('val', factor=0.5, patience=3, verbose=1) (parameters: "
        "monitor, factor, patience, verbose)"
    )
    with pytest.raises(TypeError) as info:
        _Plateau("val", 0.5)
    assert str(info.value).startswith(
        "lib.Plateau: takes 1 positional argument (monitor) but 2 were given; give the others "
        "by keyword, as in Plateau('val', factor=0.5) "
    )


def test_too_many_positional_says_which_are_positional_and_how_to_give_the_rest() -> None:
    assert V.too_many_positional("f", ["a"], ["a", "b"], 2, example="f(1, b=2)") == (
        "f: takes 1 positional argument (a) but 2 were given; give the others by keyword, as "
        "in f(1, b=2) (parameters: a, b)"
    )
    # every parameter positional: nothing to give by keyword, no call to show
    assert V.too_many_positional("f", ["a", "b"], ["a", "b"], 3, example="f(1, 2, c=3)") == (
        "f: takes 2 positional arguments (a, b) but 3 were given (parameters: a, b)"
    )
    assert V.too_many_positional("f", [], ["a", "b"], 1) == (
        "f: takes 0 positional arguments but 1 was given; give them by keyword (parameters: a, b)"
    )


def test_negative_at_step_says_nan_and_whether_the_step_was_checked() -> None:
    nan = float("nan")
    error = V.negative_at_step("momentum", nan, 3, built_at=None, what="callback")
    assert type(error) is ValueError and str(error) == (
        "momentum must be >= 0, got nan at step 3 (the schedule is NaN at a step not checked "
        "when the callback was built)"
    )
    error = V.negative_at_step("momentum", -0.5, 6, built_at=5, what="scheduler")
    assert str(error) == (
        "momentum must be >= 0, got -0.5 at step 6 (the schedule is negative at a step not "
        "checked when the scheduler was built)"
    )
    error = V.negative_at_step("momentum", -0.5, 5, built_at=5, what="scheduler")
    assert str(error) == "momentum must be >= 0, got -0.5 at step 5"


def test_no_step_says_what_to_give_keras() -> None:
    error = V.no_step("Cosine.__call__()")
    assert type(error) is TypeError and str(error) == (
        "Cosine.__call__() takes the step and got none (a Keras optimizer calls a plain "
        "callable learning rate with no argument): give Keras lrkit.keras.schedule(schedule)"
    )


def test_options_hints_the_first_unknown_name_only() -> None:
    with pytest.raises(TypeError) as info:
        V.options("f", {"aa": 1, "min_lr": 2}, ("b",), {"min_lr": "use min_scale"})
    assert str(info.value) == "aa is not an option of f; options: b"


def test_a_number_as_text_with_spaces_around_it_gets_what_to_write() -> None:
    with pytest.raises(ValueError) as info:
        V.number("lr", " 3e-4 ")
    assert str(info.value) == (
        "lr must be a finite real number, got ' 3e-4 ' (text, not a number: YAML reads 3e-4 as "
        "text; write 3.0e-4)"
    )


def test_real_dtype_takes_unsigned_integers_as_integers_and_refuses_a_record() -> None:
    import numpy as np

    assert V.real_dtype(np.uint8, integer=True) and V.real_dtype(np.uint64, integer=True)
    for record in (np.dtype([("a", "f8")]), np.dtype([("a", "f4"), ("b", "f4")])):
        assert not V.real_dtype(record) and not V.real_dtype(record, integer=True)


def test_positive_returns_a_python_float_whatever_number_type_was_given() -> None:
    import numpy as np

    for given in (3, np.float32(0.5), np.int64(2), np.array(0.25)):
        got = V.positive("lr", given)
        assert type(got) is float and got == float(given)


def test_choice_returns_a_plain_string_for_a_numpy_string() -> None:
    import numpy as np

    got = V.choice("mode", np.str_("max"), ("min", "max"))
    assert type(got) is str and got == "max"


def test_sorted_ints_refuses_what_is_not_a_list_in_one_line() -> None:
    for bad, shown in ((5, "5"), (None, "None"), (0.5, "0.5")):
        with pytest.raises(ValueError) as info:
            V.sorted_ints("milestones", bad)
        assert str(info.value) == f"milestones must be a list of integers, got {shown}"


def test_options_names_the_first_unknown_name_in_sorted_order() -> None:
    letters = "zyxwvutsrqponmlkjihgfedcba"
    given = {f"{c}{d}": 1 for c in letters for d in letters}  # in any order, aa is named
    with pytest.raises(TypeError) as info:
        V.options("f", given, ("b",))
    assert str(info.value) == "aa is not an option of f; options: b"


@V.keyword_only("lib.reduce", peer_order=("factor", "patience"))
def _reduce(mode: str = "min", *, factor: float = 0.1, patience: int = 10) -> tuple:
    return (mode, factor, patience)


def test_keyword_only_shows_no_call_for_text_where_the_peer_takes_a_number() -> None:
    """Text first is this function's own order (its mode), not the peer's (a factor first):
    no call is shown; a number first is the peer's order, shown with keywords."""
    assert _reduce("max", factor=0.5) == ("max", 0.5, 10)
    listed = "(parameters: mode, factor, patience)"
    with pytest.raises(TypeError) as info:
        _reduce("max", 0.5)
    assert str(info.value) == (
        "lib.reduce: takes 1 positional argument (mode) but 2 were given; give the others by "
        f"keyword {listed}"
    )
    with pytest.raises(TypeError) as info:
        _reduce(0.5, 3)
    assert str(info.value) == (
        "lib.reduce: takes 1 positional argument (mode) but 2 were given; give the others by "
        f"keyword, as in reduce(factor=0.5, patience=3) {listed}"
    )


def test_keyword_only_shows_no_call_where_a_keyword_would_be_given_twice() -> None:
    with pytest.raises(TypeError) as info:
        _Plateau("val", 0.5, factor=0.3)
    assert str(info.value) == (
        "lib.Plateau: takes 1 positional argument (monitor) but 2 were given; give the others "
        "by keyword (parameters: monitor, factor, patience, verbose)"
    )


def test_a_numpy_float_that_is_not_finite_is_shown_as_given() -> None:
    import numpy as np

    for bad in (np.float64("nan"), np.float64("-inf")):
        with pytest.raises(ValueError) as info:
            V.number("lr", bad)
        assert str(info.value) == f"lr must be a finite real number, got {bad!r}"
