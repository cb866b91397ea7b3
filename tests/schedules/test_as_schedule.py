"""``schedules.as_schedule``: the one conversion every adapter uses."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from lrkit import schedules as S


def test_schedule_passes_through_unchanged() -> None:
    s = S.cosine(0.1, total_steps=100)
    assert S.as_schedule(s) is s


def test_spec_string_and_dict_round_trip() -> None:
    s = S.join(
        [S.warmup(0.0, end_lr=0.1, warmup_steps=10), S.cosine(0.1, total_steps=90)], boundaries=[10]
    )
    assert S.as_schedule(str(s)) == s
    assert S.as_schedule(s.to_dict()) == s
    assert S.as_schedule(MappingProxyType(s.to_dict())) == s


@pytest.mark.parametrize("bad", [1.0, None, [S.constant(0.1)], b"cosine(0.1, 10)"])
def test_other_values_name_the_parameter(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^momentum must be a lrkit schedule, a spec string"):
        S.as_schedule(bad, name="momentum")


def test_a_wrapper_of_a_schedule_is_refused_with_what_to_give_instead() -> None:
    class Wrapper:  # as lrkit.keras.schedule(s) holds it
        schedule = S.cosine(0.1, total_steps=10)

    def fn(count):  # as lrkit.optax.schedule(s) returns it
        return count

    fn.lrkit_schedule = S.cosine(0.1, total_steps=10)  # type: ignore[attr-defined]
    for wrapper, attr in ((Wrapper(), "schedule"), (fn, "lrkit_schedule")):
        with pytest.raises(ValueError) as info:
            S.as_schedule(wrapper)
        assert str(info.value).endswith(f" (it wraps one: give that, its .{attr})")

    class Holder:  # as lrkit.torch.scheduler holds one schedule per param group
        schedules = [S.cosine(0.1, total_steps=10)]

    with pytest.raises(ValueError, match=r" \(it holds lrkit schedules: give one of them, "):
        S.as_schedule(Holder())

    def optax_like(count):  # a peer library's schedule function, by its module
        return count

    optax_like.__module__ = "optax._src.schedule"
    with pytest.raises(ValueError, match=r" \(an optax object: optax's own schedules go to "):
        S.as_schedule(optax_like)


def test_bad_spec_is_a_spec_error() -> None:
    with pytest.raises(S.SpecError):
        S.as_schedule("cosine(0.1, 100")


def test_operators_build_composites() -> None:
    a, b = S.cosine(0.1, total_steps=100), S.linear(1.0, end_lr=0.0, total_steps=100)
    assert a * b == S.mul(a, b)
    assert 2.0 * a == S.scale(a, factor=2.0) == a.scale(2.0) == a * 2
    assert a.clamp(min_lr=0.01, max_lr=0.05) == S.clamp(a, min_lr=0.01, max_lr=0.05)


def test_an_omegaconf_config_is_read_as_it_is() -> None:
    """A Hydra config's DictConfig (nested schedules in a ListConfig) needs no to_container."""
    omegaconf = pytest.importorskip("omegaconf")
    plain = {
        "name": "join",
        "schedules": [
            {"name": "warmup", "start_lr": 0.0, "end_lr": 0.1, "warmup_steps": 5},
            {"name": "cosine", "lr": 0.1, "total_steps": 20},
        ],
        "boundaries": [5],
    }
    cfg = omegaconf.OmegaConf.create({"schedule": plain}).schedule
    assert S.from_dict(cfg) == S.from_dict(plain) == S.as_schedule(cfg)
    assert [S.from_dict(cfg)(t) for t in range(30)] == [S.from_dict(plain)(t) for t in range(30)]


def test_a_whole_config_given_as_the_schedule_is_named_by_its_keys_not_its_values() -> None:
    """A config passed where its schedule entry was meant: the error lists its keys and never
    prints its values (a database URL with a password, an API key)."""
    config = {
        "storage": "postgresql://user:hunter2@db/tune",
        "api_key": "sk-secret",
        "schedule": {"name": "cosine", "lr": 0.1, "total_steps": 100},
    }
    with pytest.raises(ValueError) as info:
        S.as_schedule(config)
    msg = str(info.value)
    assert msg == (
        "d must be a dict with a 'name' key, got a dict with keys 'storage', 'api_key', 'schedule'"
    )
    many = {f"k{i}": i for i in range(20)}
    with pytest.raises(ValueError, match=r"keys 'k0', .*'k7', \.\.\. \(20 keys\)$"):
        S.from_dict(many)
    with pytest.raises(ValueError, match=r"got a dict with keys none$"):
        S.from_dict({})


def test_an_error_in_a_nested_schedule_of_a_config_says_where_it_is() -> None:
    d = {
        "name": "join",
        "schedules": [
            {"name": "constant", "lr": 0.1},
            {"name": "cosine", "lr": -0.1, "total_steps": 10},
        ],
        "boundaries": [5],
    }
    with pytest.raises(ValueError) as info:
        S.from_dict(d)
    assert str(info.value) == (
        "join: schedules[1]: lr must be >= 0 (allowed range: [0, inf)), got -0.1"
    )
    inner = [{"name": "constant", "lr": 0.1}, {"x": 1}]
    outer = {"name": "add", "schedules": [{**d, "schedules": inner}]}
    with pytest.raises(ValueError) as info:
        S.from_dict(outer)
    assert str(info.value) == (
        "add: schedules[0]: join: schedules[1]: d must be a dict with a 'name' key, got a dict "
        "with keys 'x'"
    )
    # the top level's own errors read as before
    with pytest.raises(ValueError, match=r"^lr must be >= 0"):
        S.from_dict({"name": "cosine", "lr": -0.1, "total_steps": 10})


def test_nonnegative_refuses_a_nan_step() -> None:
    big = S.exponential(1e300, gamma=10.0)
    with pytest.raises(
        ValueError, match=r"^schedule must be >= 0 at every step .*, got nan at step 9: sub\("
    ):
        S.as_schedule(big - big, nonnegative=True)


def test_a_bad_dict_given_for_a_named_parameter_is_prefixed_with_its_name() -> None:
    with pytest.raises(ValueError) as err:
        S.as_schedule({"name": "cosine", "lr": 0.1}, name="momentum")
    assert str(err.value) == (
        "momentum: cosine: cosine() missing required parameter 'total_steps' "
        "(parameters: lr, total_steps, eta_min)"
    )
    with pytest.raises(ValueError) as err:
        S.as_schedule({"name": "cosine", "lr": 0.1})
    assert str(err.value).startswith("cosine: cosine() missing required parameter")


def test_a_dict_of_nine_keys_without_a_name_lists_eight_and_counts_them() -> None:
    with pytest.raises(ValueError) as err:
        S.from_dict({f"k{i}": i for i in range(9)})
    assert str(err.value) == (
        "d must be a dict with a 'name' key, got a dict with keys 'k0', 'k1', 'k2', 'k3', "
        "'k4', 'k5', 'k6', 'k7', ... (9 keys)"
    )
    with pytest.raises(ValueError, match=r"keys 'k0', .*'k7'$"):
        S.from_dict({f"k{i}": i for i in range(8)})


def test_parse_returns_a_schedule_given_to_it_as_is() -> None:
    s = S.cosine(0.1, total_steps=10)
    assert S.parse(s) is s


def test_a_holder_of_a_tuple_of_schedules_is_told_to_give_one_of_them() -> None:
    class Holder:
        schedules = (S.cosine(0.1, total_steps=10), S.constant(0.1))

    with pytest.raises(ValueError) as info:
        S.as_schedule(Holder())
    assert str(info.value).endswith(
        " (it holds lrkit schedules: give one of them, its .schedules[i])"
    )


@pytest.mark.parametrize(
    "module,hint",
    [
        ("keras.src.optimizers.schedules", "a keras object: Keras' own schedules"),
        ("torch.optim.lr_scheduler", "a torch object: PyTorch's own schedules"),
        ("optax._src.schedule", "an optax object: optax's own schedules"),
    ],
)
def test_a_peer_librarys_schedule_is_named_by_its_library(module: str, hint: str) -> None:
    def peer(step):  # a peer library's schedule, by its module
        return step

    peer.__module__ = module
    with pytest.raises(ValueError) as info:
        S.as_schedule(peer)
    assert str(info.value).endswith(
        f" ({hint} go to its own optimizer; this takes one of lrkit.schedules)"
    )


def test_a_plain_function_is_told_how_it_becomes_a_schedule() -> None:
    """PyTorch's LambdaLR takes a function; lrkit's counterpart is named, and it is what the
    hint says (lr * fn(step))."""

    def half_life(step):
        return 0.5 ** (step / 10)

    for value in (half_life, lambda step: 1.0):
        with pytest.raises(ValueError) as info:
            S.as_schedule(value)
        assert str(info.value).endswith(
            " (a function: lrkit.schedules.function(fn, lr=...) is lr * fn(step), as PyTorch's "
            "LambdaLR with lr_lambda=fn)"
        )
    assert S.function(half_life, lr=0.1)(10) == 0.1 * 0.5
    with pytest.raises(ValueError) as info:  # a class is no function to wrap
        S.as_schedule(S.Constant)
    assert str(info.value).endswith("got <class 'lrkit.schedules._families.Constant'>")


def test_nonnegative_names_the_first_step_when_it_is_step_0() -> None:
    s = S.constant(0.1) - 0.3
    with pytest.raises(ValueError) as err:
        S.as_schedule(s, name="momentum", nonnegative=True)
    assert str(err.value) == (
        "momentum must be >= 0 at every step (a learning rate or hyperparameter), got "
        f"{0.1 - 0.3!r} at step 0: sub(a=constant(lr=0.1), b=constant(lr=0.3))"
    )


def test_a_bad_spec_inside_a_dict_for_a_named_parameter_stays_a_spec_error() -> None:
    d = {"name": "join", "schedules": ["cosine(0.1, 10", "constant(0.1)"], "boundaries": [5]}
    for name in ("schedule", "momentum"):
        with pytest.raises(S.SpecError) as err:
            S.as_schedule(d, name=name)
        assert err.value.pos == 14 and err.value.text == "cosine(0.1, 10"
        assert str(err.value).splitlines()[0] == (
            "invalid schedule spec at position 14: expected ',' or ')', found end of input"
        )


def test_nonnegative_names_the_step_itself_past_4000_steps() -> None:
    # 10000 steps are checked at 4000 evenly spaced ones: the error names the step, not
    # its place among them
    s = S.linear(0.1, end_lr=0.0, total_steps=10000) - 0.05
    assert s(5001) < 0 <= s(5000)
    with pytest.raises(ValueError) as err:
        S.as_schedule(s, nonnegative=True)
    assert str(err.value).startswith(
        f"schedule must be >= 0 at every step (a learning rate or hyperparameter), got "
        f"{s(5001)!r} at step 5001: sub("
    )
