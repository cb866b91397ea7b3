"""``S.function(fn, lr=...)``: ``lr * fn(step)`` (PyTorch's ``LambdaLR``), evaluated exactly on
both paths, composed and plotted like any schedule, and refused in one line where a callable
cannot go (a spec, a dict, a traced formula)."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from typing import Any

import numpy as np
import pytest

from lrkit import schedules as S
from lrkit.schedules.tables import formula_error, value_table


def warm(step: int) -> float:
    return min(1.0, (step + 1) / 10)


class Outer:
    class Factor:
        def __call__(self, step: float) -> float:
            return 1.0


def hf_linear(step: float) -> float:
    # transformers' get_linear_schedule_with_warmup lambda (10 warmup steps, 50 in all)
    if step < 10:
        return float(step) / float(max(1, 10))
    return max(0.0, float(50 - step) / float(max(1, 50 - 10)))


def _bits(x: float) -> int:
    return int(np.array([x], dtype=np.float64).view(np.int64)[0])


def test_value_is_lr_times_fn_and_fn_gets_an_int_for_whole_steps() -> None:
    seen: list[object] = []

    def fn(step: float) -> float:
        seen.append(step)
        return 0.5 * step

    s = S.function(fn, lr=0.1)
    assert s(3) == 0.1 * 1.5
    assert s(3.0) == 0.1 * 1.5
    assert s(np.int64(3)) == 0.1 * 1.5
    assert s(2.5) == 0.1 * 1.25
    assert [type(x) for x in seen] == [int, int, int, float]
    seen.clear()
    assert s.values(np.array([0, 3, 2.5])).tolist() == [0.0, 0.1 * 1.5, 0.1 * 1.25]
    assert seen == [0, 3, 2.5] and [type(x) for x in seen] == [int, int, float]
    assert s.values(np.arange(6).reshape(2, 3)).shape == (2, 3)
    assert s.length is None and S.function(fn, lr=0.1, length=100).length == 100


@pytest.mark.parametrize("fn", [warm, hf_linear, lambda t: np.float32(0.97) ** t, math.cos])
def test_scalar_and_array_paths_give_the_same_bits(fn: object) -> None:
    s = S.function(fn, lr=3e-4)  # type: ignore[arg-type]
    steps = [*range(60), 0.5, 7.25, 2.0**40, 2**53 + 2]
    arr = s.values(steps)
    for i, t in enumerate(steps):
        assert _bits(s(t)) == _bits(s.values([t])[0]) == _bits(arr[i]), t


def test_it_composes_with_every_combinator_step_for_step() -> None:
    f = S.function(warm, lr=0.1)
    c = S.cosine(0.1, total_steps=40)
    cases = {
        "mul": (f * c, lambda t: f(t) * c(t)),
        "add": (f + c, lambda t: f(t) + c(t)),
        "sub": (0.5 - f, lambda t: 0.5 - f(t)),
        "scale": (2.0 * f, lambda t: 2.0 * f(t)),
        "clamp": (f.clamp(min_lr=0.03, max_lr=0.08), lambda t: min(max(f(t), 0.03), 0.08)),
        "join": (S.join([c, f], boundaries=[20]), lambda t: c(t) if t < 20 else f(t - 20)),
        "with_warmup": (
            S.with_warmup(f, warmup_steps=5),
            lambda t: S.warmup_linear(0.0, end_lr=f(0), warmup_steps=5)(t) if t < 5 else f(t - 5),
        ),
    }
    for name, (s, expected) in cases.items():
        got = s.values(np.arange(60))
        for t in range(60):
            assert s(t) == expected(t) == got[t], (name, t)
    assert S.join([f, c], boundaries=[20]).length == 60
    assert "function(fn=warm, lr=0.1)" in str(S.with_warmup(f, warmup_steps=5))


def test_it_plots(tmp_path: object) -> None:
    pytest.importorskip("matplotlib")
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "lr.png"
    ax = S.function(warm, lr=0.1, length=30).plot(path=path)
    assert path.stat().st_size > 0
    assert ax.get_lines()[0].get_label() == "function(fn=warm, lr=0.1, length=30)"
    assert ax.get_lines()[0].get_xdata()[-1] == 30


def test_str_and_repr_name_the_callable() -> None:
    assert str(S.function(warm, lr=0.1)) == "function(fn=warm, lr=0.1)"
    assert str(S.function(lambda t: 1.0, lr=1)) == "function(fn=<lambda>, lr=1.0)"
    assert repr(S.function(warm, lr=0.1, length=9)) == (
        "<lrkit schedule function(fn=warm, lr=0.1, length=9)>"
    )
    assert str(S.function(Outer.Factor(), lr=1.0)) == "function(fn=<Outer.Factor object>, lr=1.0)"
    part = functools.partial(pow, 0.5)
    assert str(S.function(part, lr=1.0)) == "function(fn=partial(pow), lr=1.0)"


def test_equality_and_hash_hold_the_callable_by_identity_without_calling_it() -> None:
    calls = []

    def fn(t: float) -> float:
        calls.append(t)
        return 1.0

    a, b = S.function(fn, lr=0.1), S.function(fn, lr=0.1)
    assert a == b and hash(a) == hash(b)
    assert a != S.function(fn, lr=0.2) and a != S.function(fn, lr=0.1, length=5)
    assert a != S.function(lambda t: 1.0, lr=0.1)
    assert S.with_warmup(a, warmup_steps=3) == S.with_warmup(b, warmup_steps=3)
    assert a * S.constant(1.0) != S.function(warm, lr=0.1) * S.constant(1.0)
    assert len({a, b, a * 2.0}) == 2
    unhashable = type("Unhashable", (), {"__call__": lambda self, t: 1.0, "__hash__": None})()
    assert hash(S.function(unhashable, lr=1.0)) == hash(S.function(unhashable, lr=1.0))
    # with_warmup reads schedule(0) (its end), equality and hashing never call fn
    assert calls == [0, 0]


def test_fn_must_be_a_callable_of_one_step() -> None:
    with pytest.raises(TypeError, match=r"^fn must be a callable fn\(step\) -> float .*got 0\.1$"):
        S.function(0.1, lr=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^fn must be a callable fn\(step\) -> float, taking 1"):
        S.function(lambda a, b: 1.0, lr=1.0)
    with pytest.raises(ValueError, match=r"^lr must be >= 0"):
        S.function(warm, lr=-0.1)
    with pytest.raises(ValueError, match=r"^length must be an integer in \[1, 2\*\*53\]"):
        S.function(warm, lr=0.1, length=0)
    with pytest.raises(TypeError, match="lr"):
        S.function(warm)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "value, shown",
    [
        (float("nan"), "nan"),
        (math.inf, "inf"),
        (None, "None"),
        (True, "True"),
        ("1", "'1'"),
        (np.complex128(1 + 2j), r"np\.complex128\(1\+2j\)"),
    ],
)
def test_a_value_that_is_not_a_finite_real_number_is_a_one_line_error(
    value: object, shown: str
) -> None:
    s = S.function(lambda t: value if t == 3 else 1.0, lr=0.1)  # type: ignore[arg-type, return-value]
    expected = rf"^fn must return a finite real number, got {shown} at step 3 \(schedule "
    for evaluate in (lambda: s(3), lambda: s.values([0, 3, 4]), lambda: s.values([3.0])):
        with pytest.raises(ValueError, match=expected) as info:
            evaluate()
        assert "\n" not in str(info.value)
    assert s(2) == 0.1


def test_equal_but_distinct_callable_objects_make_distinct_schedules() -> None:
    @dataclasses.dataclass
    class Ramp:
        steps: int

        def __call__(self, step: float) -> float:
            return min(1.0, step / self.steps)

    ramp = Ramp(10)
    assert ramp == Ramp(10)  # the objects compare equal, the schedules hold different ones
    a = S.function(ramp, lr=0.1)
    assert a == S.function(ramp, lr=0.1) and hash(a) == hash(S.function(ramp, lr=0.1))
    assert a != S.function(Ramp(10), lr=0.1)
    assert len({a, S.function(Ramp(10), lr=0.1), S.function(ramp, lr=0.1)}) == 2


def test_a_number_of_another_type_is_read_as_a_float() -> None:
    s = S.function(lambda t: np.float32(0.5) if t else np.array(2), lr=1.0)
    assert s.values([0, 1]).tolist() == [2.0, 0.5] and s(1) == 0.5


def test_fn_raising_is_a_one_line_error_naming_the_step() -> None:
    s = S.function(lambda t: 1.0 / (t - 2), lr=0.1)
    with pytest.raises(ValueError, match=r"^fn raised ZeroDivisionError at step 2: ") as info:
        s.values(range(5))
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_it_cannot_be_written_as_a_dict_or_spec() -> None:
    f = S.function(warm, lr=0.1)
    message = r"^function\(fn=warm, lr=0\.1\) holds a Python callable and cannot be written"
    for s in (f, S.with_warmup(f, warmup_steps=5), f * 2.0, S.mul(f, S.constant(1.0))):
        with pytest.raises(TypeError, match=message) as info:
            s.to_dict()
        assert "\n" not in str(info.value) and "S.join" in str(info.value)
        str(s), repr(s)  # labels never raise


def test_to_dict_with_writes_each_fn_by_the_given_writer_and_reads_it_back() -> None:
    f = S.function(warm, lr=0.1, length=20)
    g = S.function(hf_linear, lr=0.5)
    table = {"warm": warm, "hf_linear": hf_linear}
    written: list[object] = []

    def write(fn: Any) -> dict[str, str]:
        written.append(fn)
        return {"ref": fn.__name__}  # a mapping, as Keras' serializer writes one

    def read(config: Any) -> Any:
        return table[config["ref"]]

    for s in (
        f,
        S.join([f, S.cosine(0.1, total_steps=30)], boundaries=[20]),
        S.with_warmup(g, warmup_steps=5) * 2.0,
        S.clamp(S.mul(f, g), min_lr=1e-4, max_lr=0.2),
        S.cosine(0.1, total_steps=30),  # no callable: to_dict() itself
    ):
        written.clear()
        d = S.to_dict_with(s, write=write)
        assert json.loads(json.dumps(d)) == d  # JSON-able once fn is written
        assert all(x is warm or x is hf_linear for x in written)  # only the fns
        back = S.from_dict_with(d, read=read)
        assert back == s
        steps = np.arange(60)
        assert [_bits(x) for x in back.values(steps)] == [_bits(x) for x in s.values(steps)]
    assert (
        S.to_dict_with(S.cosine(0.1, total_steps=30), write=write)
        == S.cosine(0.1, total_steps=30).to_dict()
    )
    # a callable already in place is taken as is (the reader is not called)
    assert S.from_dict_with({"name": "function", "fn": warm, "lr": 0.1}, read=read) == S.function(
        warm, lr=0.1
    )


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ({"name": "function", "lr": 0.1}, r"^function\(\) missing required parameter 'fn'"),
        ({"name": "function", "fn": {"ref": "warm"}, "lr": 0.1, "decay": 1}, r"unknown parame"),
        ({"name": "function", "fn": {"ref": "x"}, "lr": 0.1}, r"^function: fn must be a callable"),
        ({"name": "function", "fn": {"ref": "warm"}, "lr": -1.0}, r"^lr must be >= 0"),
        (
            {"name": "join", "schedules": [1], "boundaries": []},
            r"^schedules\[0\] must be a schedule",
        ),
    ],
)
def test_from_dict_with_refuses_bad_entries_in_one_line(d: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        S.from_dict_with(d, read=lambda c: {"warm": warm}.get(c["ref"], 3))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "function(fn=<lambda>, lr=1.0)",
        str(S.function(warm, lr=0.1)),
        str(S.with_warmup(S.function(lambda t: 1.0, lr=0.1), warmup_steps=5)),
        "function(fn=os.system, lr=1.0)",
    ],
)
def test_parsing_its_str_is_a_spec_error(text: str) -> None:
    with pytest.raises(S.SpecError) as info:
        S.parse(text)
    first = str(info.value).splitlines()[0]
    assert first.endswith(
        "a function schedule holds a Python callable and cannot be parsed: build it in code "
        "with lrkit.schedules.function(fn, lr=...), or write it from lrkit's families"
    )
    assert info.value.pos == text.index("function(")


def test_no_formula_to_trace() -> None:
    f = S.function(warm, lr=0.1)
    with pytest.raises(TypeError, match=r"holds a Python callable, which cannot be traced"):
        f.values(np.arange(3.0), xp=math)
    assert formula_error(S.cosine(0.1, total_steps=10)) is None
    assert formula_error(f * 2.0) == (
        'evaluation="formula" traces the schedule\'s formula, but scale(schedule=function(fn=warm, '
        "lr=0.1), factor=2.0) holds a Python callable (lrkit.schedules.function), which cannot "
        'be traced: use evaluation="table" (the default) or "host"'
    )
    assert formula_error(S.with_warmup(f, warmup_steps=3)) is not None


def test_value_tables_hold_its_values_and_leave_the_rest_to_the_host() -> None:
    f = S.function(hf_linear, lr=0.1)
    vt = value_table(f, limit=64)
    assert vt.beyond == "host" and vt.size == 64
    assert np.array_equal(vt.values, f.values(np.arange(64)).astype(np.float32))
    # a function schedule followed by a family that holds: exact at every step
    held = value_table(S.join([f, S.constant(0.01)], boundaries=[50]))
    assert held.beyond == "hold" and held.size == 51
    assert held.values[-1] == np.float32(0.01)
    assert value_table(2.0 * f, limit=8).beyond == "host"


def test_as_schedule_checks_its_sign_within_its_length_and_nowhere_without_one() -> None:
    seen: list[int] = []

    def fn(t: int) -> float:
        seen.append(t)
        return 1.0 - t / 10

    with pytest.raises(ValueError, match=r"^schedule must be >= 0 at every step .* at step 11"):
        S.as_schedule(S.function(fn, lr=0.1, length=20), nonnegative=True)
    assert max(seen) == 20
    seen.clear()
    assert S.as_schedule(S.function(fn, lr=0.1, length=10), nonnegative=True).length == 10
    assert max(seen) == 10  # the steps 0..length only: fn is >= 0 there
    seen.clear()
    # without a length nothing is checked up front: fn may be defined for the run's steps only
    s = S.function(fn, lr=0.1)
    assert S.as_schedule(s, nonnegative=True) is s and seen == []


def lookup(table: list[float], seen: list[int]) -> Any:
    """A ``LambdaLR`` lambda that is a lookup table: defined for ``len(table)`` steps only."""

    def fn(t: int) -> float:
        seen.append(t)
        return table[t]

    return fn


def test_a_check_calls_fn_at_no_step_past_its_length() -> None:
    seen: list[int] = []
    fn = lookup([1.0 - i / 300 for i in range(301)], seen)  # a 300-step run: steps 0..300
    S.as_schedule(S.function(fn, lr=0.1), nonnegative=True)
    assert seen == []
    S.as_schedule(S.function(fn, lr=0.1, length=300), nonnegative=True)
    assert sorted(set(seen)) == list(range(301))  # the plot range: 0..length
    # composites: fn at its own steps within its length only
    for s, top in [
        (S.function(fn, lr=0.1, length=300) * S.cosine(1.0, total_steps=1000), 300),
        (S.join([S.function(fn, lr=0.1, length=300), S.constant(0.1)], boundaries=[250]), 249),
        (S.join([S.constant(0.1), S.function(fn, lr=0.1, length=200)], boundaries=[50]), 200),
        (0.5 * S.function(fn, lr=0.1, length=100), 100),
        (S.function(fn, lr=0.1, length=100).clamp(max_lr=0.05), 100),
        (S.constant(0.2) - S.function(fn, lr=0.1, length=100), 100),
    ]:
        seen.clear()
        S.as_schedule(s, nonnegative=True)
        assert max(seen) == top, s
    seen.clear()
    S.as_schedule(
        S.join([S.constant(0.1), S.function(fn, lr=0.1)], boundaries=[50]), nonnegative=True
    )
    assert seen == []


def test_a_check_still_covers_the_steps_before_a_function_without_length() -> None:
    seen: list[int] = []
    first = S.constant(0.1) - S.linear(0.0, end_lr=0.2, total_steps=40)  # negative from 21
    s = S.join([first, S.function(lookup([1.0] * 10, seen), lr=0.1)], boundaries=[30])
    with pytest.raises(ValueError, match=r"^schedule must be >= 0 at every step .* at step 21:"):
        S.as_schedule(s, nonnegative=True)
    assert seen == []


def test_reach_is_the_steps_a_composite_may_evaluate_fn_at() -> None:
    from lrkit.schedules._function import reach

    f = S.function(warm, lr=0.1, length=100)
    g = S.function(warm, lr=0.1)
    c = S.cosine(0.1, total_steps=1000)
    assert reach(c) == reach(c, table=True) == math.inf
    assert (reach(f), reach(f, table=True)) == (101, 100)
    assert (reach(g), reach(g, table=True)) == (0, math.inf)
    assert reach(f * c) == reach(c + f) == reach(c - f) == reach(2.0 * f) == 101
    assert reach(S.join([f, c], boundaries=[100])) == math.inf  # f ends before its length
    assert reach(S.join([f, c], boundaries=[100]), table=True) == math.inf
    assert reach(S.join([f, c], boundaries=[150])) == 101
    assert reach(S.join([c, f, c], boundaries=[10, 500])) == 111
    assert reach(S.join([c, g], boundaries=[10])) == 10
    assert reach(S.join([c, g], boundaries=[10]), table=True) == math.inf

    class Hold(S.Schedule):  # a family of another kind that holds a schedule
        name = "lrkit_test_hold"
        params = ("schedule",)

        def __init__(self, schedule: S.Schedule) -> None:
            self.schedule = schedule

        def _values(self, t, xp):  # noqa: ANN001, ANN202
            return self.schedule.values(t, xp=xp)

    assert (reach(Hold(f)), reach(Hold(f), table=True)) == (0, 0)  # nothing known of its steps
    assert reach(Hold(c)) == math.inf


@pytest.mark.parametrize("result", [RuntimeError("boom"), math.nan, None])
def test_a_step_where_fn_fails_calls_it_once(result: object) -> None:
    """fn is called once per step, also where it raises or returns no number: the error is
    not taken for a formula's domain error and the step evaluated again (alone or in a
    composite)."""
    calls: list[object] = []

    def fn(step: float) -> object:
        calls.append(step)
        if isinstance(result, Exception):
            raise result
        return result

    for s in (S.function(fn, lr=0.1), S.function(fn, lr=0.1) * 2.0):
        calls.clear()
        with pytest.raises(ValueError, match=r"^fn (raised RuntimeError|must return)"):
            s(3)
        assert calls == [3]


def test_an_exception_in_fn_names_the_step_and_suggests_length() -> None:
    fn = lookup([1.0] * 301, [])
    with pytest.raises(ValueError) as info:
        S.function(fn, lr=0.1).values(np.arange(302))
    assert str(info.value) == (
        "fn raised IndexError at step 301: list index out of range (schedule function(fn=fn, "
        "lr=0.1)); if fn covers a limited range of steps, pass length= (lrkit then calls it up "
        "front at steps 0..length only)"
    )
    with pytest.raises(ValueError) as info:
        S.function(fn, lr=0.1, length=300)(301)
    assert str(info.value) == (
        "fn raised IndexError at step 301: list index out of range (schedule function(fn=fn, "
        "lr=0.1, length=300))"
    )


def test_value_table_of_a_function_with_length_stops_there() -> None:
    seen: list[int] = []
    f = S.function(lookup([1.0 - i / 300 for i in range(300)], seen), lr=0.1, length=300)
    vt = value_table(f)
    assert vt.beyond == "host" and vt.size == 300 and max(seen) == 299
    assert np.array_equal(vt.values, f.values(np.arange(300)).astype(np.float32))
    assert value_table(f, limit=64).size == 64
    # a composite: the table stops where fn would pass its length, the host beyond
    seen.clear()
    vt = value_table(S.join([S.constant(0.05), f * 2.0], boundaries=[10]))
    assert vt.beyond == "host" and vt.size == 310 and max(seen) == 299
    # a join whose function segment ends within its length still holds after it
    seen.clear()
    held = value_table(S.join([f, S.constant(0.01)], boundaries=[300]))
    assert held.beyond == "hold" and held.size == 301 and max(seen) == 299
    seen.clear()
    short = value_table(S.join([f, S.constant(0.01)], boundaries=[400]))
    assert short.beyond == "host" and short.size == 300 and max(seen) == 299


def test_a_value_table_refuses_a_negative_lr_of_a_function_without_length() -> None:
    """Without a ``length`` nothing checks a function schedule's sign up front: the compiled
    adapters' value table does, at the steps it holds, in one line naming the step."""
    s = S.function(lambda t: 0.05 - 0.01 * t, lr=1.0)  # negative from step 6 on
    with pytest.raises(ValueError, match=r"must be >= 0 at every step .* at step 6$") as exc:
        value_table(s, limit=64)
    assert "\n" not in str(exc.value)
    ok = value_table(S.function(lambda t: 0.05 / (1 + t), lr=1.0), limit=64)
    assert ok.beyond == "host" and len(ok.values) == 64


def test_host_values_read_step_0_at_a_negative_step() -> None:
    """``host_values`` (the adapters' ``evaluation="host"``) reads step 0's value at a
    negative step, as the compiled table does."""
    from lrkit.schedules.tables import host_values

    s = S.cosine(0.1, total_steps=10)
    got = host_values(s, np.array([-3.0, -1.0, 0.0, 5.0]))
    assert got.tolist() == np.float32([s(0), s(0), s(0), s(5)]).tolist()


def test_a_value_that_is_not_finite_suggests_length_too() -> None:
    def grow(t: int) -> float:
        return 1.0 if t < 500 else math.inf

    hint = (
        "; if fn covers a limited range of steps, pass length= (lrkit then calls it up front "
        "at steps 0..length only)"
    )
    with pytest.raises(ValueError) as info:
        S.function(grow, lr=0.1).values(np.arange(501))
    assert str(info.value) == (
        "fn must return a finite real number, got inf at step 500 (schedule function(fn=grow, "
        "lr=0.1))" + hint
    )
    with pytest.raises(ValueError) as info:
        S.function(grow, lr=0.1, length=400)(500)
    assert str(info.value) == (
        "fn must return a finite real number, got inf at step 500 (schedule function(fn=grow, "
        "lr=0.1, length=400))"
    )
    assert S.function(grow, lr=0.1, length=400).values(np.arange(400)).tolist() == [0.1] * 400
