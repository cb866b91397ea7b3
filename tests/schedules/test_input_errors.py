"""One-line errors naming the parameter for bad steps and bad list parameters; the scalar and
vectorized paths of polynomial(cycle=True) agree above 2**53."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit import schedules as S
from lrkit.schedules._base import REGISTRY, SPEC_FORMS

SPEC = f" ({SPEC_FORMS})"

C = S.cosine(0.1, total_steps=100)


@pytest.mark.parametrize("steps", [[None], [1, None], [[1, None]], [1.0, "x", 2]])
def test_values_with_a_none_step_is_a_type_error(steps: list) -> None:
    with pytest.raises(TypeError, match=r"^steps must be an array-like of numbers") as e:
        C.values(steps)
    assert "nan" not in str(e.value)


def test_values_with_none_matches_the_scalar_message() -> None:
    with pytest.raises(TypeError, match="step must be a number"):
        C(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="step must be a number .*got None"):
        C.values([1, None])


@pytest.mark.parametrize("steps", [[[1, 2], [3]], [1, [2, 3]]])
def test_values_of_ragged_steps(steps: list) -> None:
    with pytest.raises(ValueError, match=r"^steps must be an array-like of numbers with rows") as e:
        C.values(steps)
    assert "inhomogeneous" not in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: C * 10**400, "the number a schedule is multiplied by"),
        (lambda: 10**400 * C, "the number a schedule is multiplied by"),
        (lambda: C.scale(10**400), "factor"),
    ],
)
def test_a_huge_factor_is_named(make, name) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value) == f"{name} must be a finite real number, got an integer with 401 digits"
    assert (C * 2) == S.scale(C, factor=2.0) and (3 * C)(0) == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: S.multistep(0.1, milestones="10"), "milestones"),
        (lambda: S.multistep(0.1, milestones=b"10"), "milestones"),
        (lambda: S.multistep(0.1, milestones={30: "x"}), "milestones"),
        (lambda: S.piecewise_constant({10: 1}, values=[1, 2]), "boundaries"),
        (lambda: S.piecewise_constant("10", values=[1, 2]), "boundaries"),
        (lambda: S.piecewise_constant([10], values={1: 0, 2: 0}), "values"),
        (lambda: S.join([C, C], boundaries="15"), "boundaries"),
        (lambda: S.join([C, C], boundaries={15: 0}), "boundaries"),
        (lambda: S.join({C: 0, S.constant(0.1): 1}, boundaries=[5]), "schedules"),
        (
            lambda: S.from_dict(
                {
                    "name": "join",
                    "schedules": [{"name": "constant", "lr": 0.1}] * 2,
                    "boundaries": "15",
                }
            ),
            "boundaries",
        ),
        (lambda: S.parse('multistep(0.1, milestones="10")'), "milestones"),
    ],
)
def test_a_string_or_mapping_for_a_list(make, name: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=f"{name} must be a list of .*, got a (string|mapping)"):
        make()


def test_lists_tuples_and_ranges_still_work() -> None:
    assert S.multistep(0.1, milestones=(10, 20)) == S.multistep(0.1, milestones=range(10, 30, 10))
    assert S.join([C, C], boundaries=(5,)) == S.join((C, C), boundaries=[5])


def test_polynomial_cycle_scalar_equals_values_above_2_53() -> None:
    s = S.polynomial(0.1, total_steps=49143, power=1.0, end_lr=0.01, cycle=True)
    t = 3.0979002858960978e19
    assert s(t) == s.values([t])[0] == 0.01000000000000013


@settings(max_examples=300, deadline=None)
@given(
    T=st.integers(1, 10**6),
    t=st.floats(2.0**53, 1e22),
    p=st.sampled_from([0.5, 1.0, 2.0]),
)
def test_polynomial_cycle_paths_agree_bit_for_bit(T: int, t: float, p: float) -> None:
    s = S.polynomial(0.1, total_steps=T, power=p, end_lr=0.01, cycle=True)
    assert s(t) == s.values([t])[0]


# ----------------------------------------------------------------- constructor arguments
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: S.cosine(0.1, total_steps=100, alpha=0.1),
            "cosine: unknown parameter(s) ['alpha'] (parameters: lr, total_steps, eta_min); "
            "for alpha use eta_min (= alpha * lr)",
        ),
        (
            lambda: S.cosine(0.1, T_max=100),
            "cosine: unknown parameter(s) ['T_max'] (parameters: lr, total_steps, eta_min); "
            "for T_max use total_steps",
        ),
        (
            lambda: S.cosine_restarts(initial_learning_rate=0.1, first_decay_steps=10, t_mul=2),
            "cosine_restarts: unknown parameter(s) ['first_decay_steps', "
            "'initial_learning_rate', 't_mul'] (parameters: lr, T_0, T_mult, eta_min, m_mul); "
            "for first_decay_steps use T_0, for initial_learning_rate use lr, "
            "for t_mul use T_mult",
        ),
        (
            lambda: S.polynomial(0.1, decay_steps=100, end_learning_rate=0.01),
            "polynomial: unknown parameter(s) ['decay_steps', 'end_learning_rate'] "
            "(parameters: lr, total_steps, power, end_lr, cycle); "
            "for decay_steps use total_steps, for end_learning_rate use end_lr",
        ),
        (
            lambda: S.exponential(0.1, decay_steps=10, decay_rate=0.5),
            "exponential: unknown parameter(s) ['decay_rate', 'decay_steps'] "
            "(parameters: lr, gamma); "
            "for decay_rate and decay_steps use gamma (= decay_rate ** (1 / decay_steps), "
            "decay_steps being optax's transition_steps; staircase=True is step(lr, "
            "step_size=decay_steps, gamma=decay_rate))",
        ),
        (  # optax's names of the same, and Keras' staircase
            lambda: S.exponential(init_value=0.1, transition_steps=10, decay_rate=0.5),
            "exponential: unknown parameter(s) ['decay_rate', 'init_value', 'transition_steps'] "
            "(parameters: lr, gamma); for decay_rate and transition_steps use gamma "
            "(= decay_rate ** (1 / decay_steps), decay_steps being optax's transition_steps; "
            "staircase=True is step(lr, step_size=decay_steps, gamma=decay_rate)), "
            "for init_value use lr",
        ),
        (
            lambda: S.step(0.1, step_size=10, decay_rate=0.5),
            "step: unknown parameter(s) ['decay_rate'] (parameters: lr, step_size, gamma); "
            "for decay_rate use gamma",
        ),
        (
            lambda: S.linear(0.1, end_lr=0.0, total_steps=10, end_value=0.0),
            "linear: unknown parameter(s) ['end_value'] (parameters: start_lr, end_lr, "
            "total_steps); for end_value use end_lr",
        ),
        (
            lambda: S.onecycle(0.1, epochs=3, steps_per_epoch=100),
            "onecycle: unknown parameter(s) ['epochs', 'steps_per_epoch'] (parameters: "
            "max_lr, total_steps, pct_start, anneal_strategy, div_factor, final_div_factor, "
            "three_phase); for epochs and steps_per_epoch use total_steps "
            "(= epochs * steps_per_epoch)",
        ),
        (  # Hugging Face's get_wsd_schedule
            lambda: S.wsd(
                0.1,
                num_warmup_steps=10,
                num_decay_steps=20,
                num_stable_steps=70,
                min_lr_ratio=0.1,
                decay_type="cosine",
                warmup_type="cosine",
            ),
            "wsd: unknown parameter(s) ['decay_type', 'min_lr_ratio', 'num_decay_steps', "
            "'num_stable_steps', 'num_warmup_steps', 'warmup_type'] (parameters: lr, "
            "total_steps, warmup_steps, decay_steps, decay, min_lr, init_lr, warmup); for "
            "decay_type use decay, "
            "for min_lr_ratio use min_lr (= min_lr_ratio * lr, and init_lr = min_lr_ratio * lr), "
            "for num_decay_steps use "
            "decay_steps, for num_stable_steps use total_steps (= num_warmup_steps + "
            "num_stable_steps + num_decay_steps), for num_warmup_steps use warmup_steps, "
            "for warmup_type use warmup",
        ),
        (  # Hugging Face's cosine_with_restarts
            lambda: S.cosine_restarts(0.1, num_training_steps=100, num_cycles=3),
            "cosine_restarts: unknown parameter(s) ['num_cycles', 'num_training_steps'] "
            "(parameters: lr, T_0, T_mult, eta_min, m_mul); for num_cycles and "
            "num_training_steps use T_0 (= (num_training_steps - num_warmup_steps) / num_cycles)",
        ),
        (  # Hugging Face's get_polynomial_decay_schedule_with_warmup
            lambda: S.polynomial(0.1, num_training_steps=100, lr_end=1e-7),
            "polynomial: unknown parameter(s) ['lr_end', 'num_training_steps'] (parameters: "
            "lr, total_steps, power, end_lr, cycle); for lr_end use end_lr, "
            "for num_training_steps use total_steps",
        ),
        (
            lambda: S.warmup(0.0, end_lr=0.1, num_warmup_steps=10),
            "warmup: unknown parameter(s) ['num_warmup_steps'] (parameters: start_lr, end_lr, "
            "warmup_steps, mode); for num_warmup_steps use warmup_steps",
        ),
        # Hugging Face's warmup before a family: with_warmup, the family's steps after it
        (
            lambda: S.cosine(0.1, total_steps=100, num_warmup_steps=10),
            "cosine: unknown parameter(s) ['num_warmup_steps'] (parameters: lr, total_steps, "
            "eta_min); for num_warmup_steps use lrkit.schedules.with_warmup(cosine(...), "
            "warmup_steps=num_warmup_steps), the schedule's total_steps = num_training_steps - "
            "num_warmup_steps",
        ),
        (
            lambda: S.linear(0.1, end_lr=0.0, num_training_steps=100, num_warmup_steps=10),
            "linear: unknown parameter(s) ['num_training_steps', 'num_warmup_steps'] "
            "(parameters: start_lr, end_lr, total_steps); for num_training_steps use total_steps "
            "(= num_training_steps - num_warmup_steps), for num_warmup_steps use "
            "lrkit.schedules.with_warmup(linear(...), warmup_steps=num_warmup_steps)",
        ),
        (
            lambda: S.constant(0.1, num_warmup_steps=10),
            "constant: unknown parameter(s) ['num_warmup_steps'] (parameters: lr); for "
            "num_warmup_steps use lrkit.schedules.with_warmup(constant(...), "
            "warmup_steps=num_warmup_steps)",
        ),
        (
            lambda: S.cosine_restarts(
                0.1, num_training_steps=100, num_cycles=3, num_warmup_steps=5
            ),
            "cosine_restarts: unknown parameter(s) ['num_cycles', 'num_training_steps', "
            "'num_warmup_steps'] (parameters: lr, T_0, T_mult, eta_min, m_mul); for num_cycles "
            "and num_training_steps use T_0 (= (num_training_steps - num_warmup_steps) / "
            "num_cycles), for num_warmup_steps use "
            "lrkit.schedules.with_warmup(cosine_restarts(...), warmup_steps=num_warmup_steps)",
        ),
        # Keras' CosineDecay warmup: the target is the cosine's lr, the ramp starts at lr
        (
            lambda: S.cosine(0.1, total_steps=100, warmup_target=0.2, warmup_steps=10),
            "cosine: unknown parameter(s) ['warmup_steps', 'warmup_target'] (parameters: lr, "
            "total_steps, eta_min); for warmup_steps and warmup_target (Keras' warmup) use "
            "lrkit.schedules.with_warmup(cosine(warmup_target, ...), warmup_steps=warmup_steps, "
            "start_lr=lr)",
        ),
        (
            lambda: S.cosine(0.1, total_steps=100, warmup_steps=10),
            "cosine: unknown parameter(s) ['warmup_steps'] (parameters: lr, total_steps, "
            "eta_min); for warmup_steps: Keras' CosineDecay warms up only with warmup_target "
            "(without it, Keras' schedule is cosine(...) alone: drop warmup_steps); a warmup "
            "from 0 is lrkit.schedules.with_warmup(cosine(...), warmup_steps=warmup_steps)",
        ),
        # a peer's name of a parameter this family does not have: no hint
        (
            lambda: S.onecycle(0.1, total_steps=100, num_warmup_steps=10),
            "onecycle: unknown parameter(s) ['num_warmup_steps'] (parameters: max_lr, "
            "total_steps, pct_start, anneal_strategy, div_factor, final_div_factor, three_phase)",
        ),
        (
            lambda: S.warmup(0.0, end_lr=0.1, warmup_steps=10, alpha=0.1),
            "warmup: unknown parameter(s) ['alpha'] (parameters: start_lr, end_lr, "
            "warmup_steps, mode)",
        ),
        (
            lambda: S.Join([C], boundaries=[], decay_steps=5),
            "join: unknown parameter(s) ['decay_steps'] (parameters: schedules, boundaries)",
        ),
        (  # optax's cosine_onecycle_schedule is not PyTorch's OneCycleLR: no renaming gives it
            lambda: S.onecycle(0.1, transition_steps=100, peak_value=0.1),
            "onecycle: unknown parameter(s) ['peak_value', 'transition_steps'] (parameters: "
            "max_lr, total_steps, pct_start, anneal_strategy, div_factor, final_div_factor, "
            "three_phase); optax's cosine_onecycle_schedule(transition_steps=T, peak_value=p, "
            "pct_start=c, div_factor=d, final_div_factor=f) is join([warmup(p / d, p, k, "
            "mode='cosine'), cosine(p, T - k, eta_min=p / d / f)], [k]) with k = int(c * T) "
            "(onecycle is PyTorch's OneCycleLR, whose phases end a step earlier)" + SPEC,
        ),
        (  # optax's decay_steps count the warmup: not total_steps
            lambda: S.cosine(0.0, peak_value=0.1, warmup_steps=10, decay_steps=100, end_value=1e-3),
            "cosine: unknown parameter(s) ['decay_steps', 'end_value', 'peak_value', "
            "'warmup_steps'] (parameters: lr, total_steps, eta_min); optax's "
            "warmup_cosine_decay_schedule(init_value=i, peak_value=p, warmup_steps=w, "
            "decay_steps=n, end_value=e) is join([warmup(i, p, w), cosine(p, n - w, "
            "eta_min=e)], [w]) (its decay_steps count the warmup; exponent 1 only)" + SPEC,
        ),
        (
            lambda: S.onecycle(0.1, total_steps=100, base_momentum=0.85, max_momentum=0.95),
            "onecycle: unknown parameter(s) ['base_momentum', 'max_momentum'] (parameters: "
            "max_lr, total_steps, pct_start, anneal_strategy, div_factor, final_div_factor, "
            "three_phase); PyTorch's cycled momentum is onecycle_momentum(total_steps, "
            "base_momentum=, max_momentum=), given to lrkit.torch.scheduler as momentum=" + SPEC,
        ),
        (
            lambda: S.cyclic(0.01, max_lr=0.1, cycle_momentum=True),
            "cyclic: unknown parameter(s) ['cycle_momentum'] (parameters: base_lr, max_lr, "
            "step_size_up, step_size_down, mode, gamma); PyTorch's cycled momentum "
            "(base_momentum=b, max_momentum=m) is sub(constant(m), cyclic(0, m - b, "
            "step_size_up, step_size_down, mode=mode, gamma=gamma)), given to "
            "lrkit.torch.scheduler as momentum=" + SPEC,
        ),
        (
            lambda: S.exponential(
                0.1, transition_steps=10, decay_rate=0.5, transition_begin=5, end_value=0.01
            ),
            "exponential: unknown parameter(s) ['decay_rate', 'end_value', 'transition_begin', "
            "'transition_steps'] (parameters: lr, gamma); optax's exponential_decay("
            "init_value=i, transition_steps=k, decay_rate=r, transition_begin=b, end_value=e) "
            "is join([constant(i), clamp(exponential(i, r ** (1 / k)), min_lr=e)], [b]) "
            "(max_lr=e where r > 1), for decay_rate and transition_steps use gamma (= "
            "decay_rate ** (1 / decay_steps), decay_steps being optax's transition_steps; "
            "staircase=True is step(lr, step_size=decay_steps, gamma=decay_rate))" + SPEC,
        ),
        (
            lambda: S.piecewise_constant(init_value=0.1, boundaries_and_scales={10: 0.5}),
            "piecewise_constant: unknown parameter(s) ['boundaries_and_scales', 'init_value'] "
            "(parameters: boundaries, values); optax's piecewise_constant_schedule("
            "init_value=i, boundaries_and_scales={b1: s1, b2: s2}) is piecewise_constant("
            "[b1 - 1, b2 - 1], [i, i * s1, i * s1 * s2]) at whole steps (optax changes the "
            "value at a boundary step, lrkit after it; a boundary at 0 scales i itself: start "
            "the values at i * s1 without it)" + SPEC,
        ),
        (
            lambda: S.linear(0.1, end_value=0.0, transition_steps=10, transition_begin=5),
            "linear: unknown parameter(s) ['end_value', 'transition_begin', "
            "'transition_steps'] (parameters: start_lr, end_lr, total_steps); optax's "
            "linear_schedule(init_value=i, end_value=e, transition_steps=n, "
            "transition_begin=b) is join([constant(i), linear(i, e, n)], [b]), for end_value "
            "use end_lr, for transition_steps use total_steps" + SPEC,
        ),
        (
            lambda: S.cosine(0.1, total_steps=10, num_cycles=1.5),
            "cosine: unknown parameter(s) ['num_cycles'] (parameters: lr, total_steps, "
            "eta_min); Hugging Face's num_cycles=0.5 (its default) is cosine itself; other "
            "values (the LR rising again within the run) have no counterpart; "
            "cosine_with_restarts' num_cycles=k is cosine_restarts(lr, T_0=(num_training_steps "
            "- num_warmup_steps) / k)" + SPEC,
        ),
        # Hugging Face's warmup_ratio: a share of the run, counted as transformers counts it
        (
            lambda: S.cosine(0.1, total_steps=90, warmup_ratio=0.1),
            "cosine: unknown parameter(s) ['warmup_ratio'] (parameters: lr, total_steps, "
            "eta_min); for warmup_ratio use lrkit.schedules.with_warmup(cosine(...), "
            "warmup_steps=math.ceil(warmup_ratio * num_training_steps)), the schedule's "
            "total_steps = num_training_steps - warmup_steps",
        ),
        (
            lambda: S.linear(0.1, end_lr=0.0, num_training_steps=100, warmup_ratio=0.1),
            "linear: unknown parameter(s) ['num_training_steps', 'warmup_ratio'] (parameters: "
            "start_lr, end_lr, total_steps); for num_training_steps use total_steps "
            "(= num_training_steps - warmup_steps), for warmup_ratio use "
            "lrkit.schedules.with_warmup(linear(...), "
            "warmup_steps=math.ceil(warmup_ratio * num_training_steps))",
        ),
        (
            lambda: S.with_warmup(S.constant(0.1), warmup_ratio=0.1),
            "with_warmup: unknown parameter(s) ['warmup_ratio'] (parameters: schedule, "
            "warmup_steps, start_lr, mode); for warmup_ratio use warmup_steps "
            "(= math.ceil(warmup_ratio * num_training_steps))",
        ),
    ],
    ids=[
        "cosine-alpha",
        "cosine-T_max",
        "cosine_restarts-keras",
        "polynomial-keras",
        "exponential-keras",
        "exponential-optax",
        "step-decay_rate",
        "linear-end_value",
        "onecycle-epochs",
        "wsd-hf",
        "cosine_restarts-hf",
        "polynomial-hf",
        "warmup-hf",
        "cosine-hf-warmup",
        "linear-hf-warmup-total",
        "constant-hf-warmup",
        "cosine_restarts-hf-warmup",
        "cosine-keras-warmup",
        "cosine-warmup_steps",
        "onecycle-hf-no-hint",
        "warmup-no-hint",
        "join-no-hint",
        "onecycle-optax",
        "cosine-optax-warmup",
        "onecycle-momentum",
        "cyclic-momentum",
        "exponential-optax-begin",
        "piecewise-optax",
        "linear-optax-begin",
        "cosine-hf-num_cycles",
        "cosine-hf-warmup_ratio",
        "linear-hf-warmup_ratio-total",
        "with_warmup-hf-warmup_ratio",
    ],
)
def test_an_unknown_keyword_names_the_schedule_and_its_parameters(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError) as info:
        make()
    assert str(info.value) == message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_an_unknown_keyword_is_said_as_from_dict_says_it() -> None:
    with pytest.raises(TypeError) as built:
        S.cosine(0.1, total_steps=100, warmup=5)
    with pytest.raises(ValueError) as read:
        S.from_dict({"name": "cosine", "lr": 0.1, "total_steps": 100, "warmup": 5})
    assert str(built.value) == str(read.value)


def test_every_peer_name_hints_at_a_parameter_of_its_family() -> None:
    for cls in REGISTRY.values():
        for peer, (target, _) in cls.peer_names.items():
            assert peer not in cls.params and target in cls.params, (cls.name, peer)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: S.cosine(0.1, 1000),
            "cosine: takes 1 positional argument (lr) but 2 were given; give the others by "
            "keyword, as in cosine(0.1, total_steps=1000) (parameters: lr, total_steps, eta_min)",
        ),
        (
            lambda: S.Product(C, C),
            "mul: takes 1 positional argument (schedules) but 2 were given (parameters: schedules)",
        ),
    ],
    ids=["cosine", "mul"],
)
def test_too_many_positional_arguments(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError) as info:
        make()
    assert str(info.value) == message


def test_missing_and_doubled_arguments_name_the_schedule_and_its_parameters() -> None:
    """As a spec or a dict is told (one message), not ``Cosine.__init__()``."""
    with pytest.raises(TypeError) as info:
        S.cosine(0.1)  # type: ignore[call-arg]
    assert str(info.value) == (
        "cosine() missing required parameter 'total_steps' (parameters: lr, total_steps, eta_min)"
    )
    with pytest.raises(S.SpecError) as spec:
        S.parse("cosine(0.1)")  # the spec's message ends with the same words
    assert str(spec.value).splitlines()[0].endswith(str(info.value))
    with pytest.raises(TypeError) as info:
        S.function(lambda t: 1.0)  # type: ignore[call-arg]
    assert (
        str(info.value) == "function() missing required parameter 'lr' (parameters: fn, lr, length)"
    )
    with pytest.raises(TypeError) as info:
        S.cosine(0.1, lr=0.2, total_steps=10)  # type: ignore[misc]
    assert str(info.value) == (
        "cosine() got parameter 'lr' twice, by position and by keyword "
        "(parameters: lr, total_steps, eta_min)"
    )


class _Halved(S.Schedule):
    name = "halved"
    params = ("lr",)

    def __init__(self, lr: float) -> None:
        if not isinstance(lr, float):
            raise TypeError("lr must be a float")
        self.lr = lr

    def _values(self, t, xp):  # type: ignore[no-untyped-def]
        return self.lr / 2 + 0 * t


class _Wrong(S.Cosine):
    def __init__(self, lr: float) -> None:
        super().__init__(lr, total_steps=10, alpha=0.1)  # type: ignore[call-arg]


def test_a_user_subclass_builds_and_its_own_errors_pass_unchanged() -> None:
    s = _Halved(0.2)
    assert s(3) == 0.1 and s.values([0, 1]).tolist() == [0.1, 0.1] and str(s) == "halved(lr=0.2)"
    with pytest.raises(AttributeError, match="immutable"):
        s.lr = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError, match="^lr must be a float$"):  # raised inside: as it is
        _Halved(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError) as info:
        _Halved(0.2, alpha=0.1)  # type: ignore[call-arg]
    assert str(info.value) == "halved: unknown parameter(s) ['alpha'] (parameters: lr)"
    # the parent's constructor given a wrong keyword by the subclass's: Python's error
    with pytest.raises(TypeError, match="unexpected keyword argument 'alpha'"):
        _Wrong(0.1)


def test_a_spec_string_with_a_peers_parameter_name_gets_the_hint_python_gets() -> None:
    with pytest.raises(S.SpecError) as info:
        S.parse("cosine(0.1, T_max=100)")
    first = str(info.value).splitlines()[0]
    assert first == (
        "invalid schedule spec at position 12: cosine() has no parameter 'T_max' (parameters: "
        "lr, total_steps, eta_min); for T_max use total_steps"
    )
    with pytest.raises(S.SpecError) as info:
        S.parse("cosine(0.1, 100, foo=1)")
    assert str(info.value).splitlines()[0].endswith("(parameters: lr, total_steps, eta_min)")


@pytest.mark.parametrize(
    "make",
    [
        lambda big: S.parse("cosine(0.1, 100 " + big + ")"),  # a token
        lambda big: S.parse(big + "(0.1)"),  # a schedule name
        lambda big: S.parse("cosine(0.1, 100, " + big + "=1)"),  # a keyword
        lambda big: S.parse('cosine(0.1, 100, "' + big + '")'),  # a value
        lambda big: S.parse("cosine(0.1, [" + ", ".join(["1"] * 30000) + "])"),
        lambda big: S.cosine(0.1, total_steps=1, **{big: 1}),
        lambda big: S.from_dict({"name": "cosine", "lr": big, "total_steps": 1}),
        lambda big: S.from_dict({"name": "cosine", "lr": 0.1, "total_steps": 1, big: 1}),
        lambda big: S.cosine(0.1, total_steps=list(range(100_000))),
    ],
    ids=["token", "name", "keyword", "value", "list", "kwarg", "dict-value", "dict-key", "steps"],
)
def test_an_error_stays_short_whatever_the_input(make) -> None:
    """A value shown in an error is cut (``... (N characters)``): a 100,000-character input
    gives a message of a few hundred characters, not the input again."""
    with pytest.raises((ValueError, TypeError)) as info:
        make("k" * 100_000)
    first = str(info.value).splitlines()[0]
    assert len(first) < 600, len(first)
    assert "characters)" in first


def test_the_nesting_depth_read_once_per_schedule_stays_right_when_ids_are_reused() -> None:
    """Each schedule's depth is kept by id while it lives: a schedule made after another is
    gone (CPython may give it the same id) reads its own depth."""
    import gc

    from lrkit.schedules._base import spec_depth

    for depth in range(1, 30):
        s = S.constant(0.1)
        for _ in range(depth):
            s = S.scale(s, factor=0.5)
        assert spec_depth(s) == 1 + depth
        del s
        gc.collect()
        flat = S.constant(0.2)
        assert spec_depth(flat) == 1
    c = S.constant(0.001)
    long_sum = c
    for _ in range(300):  # term by term: every sum is one level above its terms
        long_sum = long_sum + c
    assert spec_depth(long_sum) == 3 and len(long_sum.schedules) == 301


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda a, b: S.join([a, b], [100]),
            r"^join: takes 1 positional argument \(schedules\) but 2 were given; give the others by keyword, as in join\(\[constant\(lr=0\.1\), constant\(lr=0\.2\)\], boundaries=\[100\]\) \(parameters: schedules, boundaries\)$",  # noqa: E501
        ),
        (
            lambda a, b: S.join([a, b], milestones=[5]),
            r"^join: unknown parameter\(s\) \['milestones'\] \(parameters: schedules, boundaries\); for milestones use boundaries$",  # noqa: E501
        ),
        (lambda a, b: S.Join([a, b], milestones=[5]), r"; for milestones use boundaries$"),
        (
            lambda a, b: S.clamp(a, min=0),
            r"^clamp: unknown parameter\(s\) \['min'\] \(parameters: schedule, min_lr, max_lr\); for min use min_lr$",  # noqa: E501
        ),
        (
            lambda a, b: S.scale(a, 2),
            r"^scale: takes 1 positional argument \(schedule\) but 2 were given",
        ),
        (lambda a, b: S.sub(a, b), r"^sub: takes 1 positional argument \(a\) but 2 were given"),
        (
            lambda a, b: S.warmup_linear(0, 1, 10),
            r"^warmup_linear: takes 1 positional argument \(start_lr\) but 3 were given; give the others by keyword, as in warmup_linear\(0, end_lr=1, warmup_steps=10\) \(parameters: start_lr, end_lr, warmup_steps\)$",  # noqa: E501
        ),
        (
            lambda a, b: S.with_warmup(a, 10),
            r"^with_warmup: takes 1 positional argument \(schedule\) but 2 were given",
        ),
        (
            lambda a, b: S.warmup_cosine(0, end_lr=1),
            r"^warmup_cosine\(\) missing required parameter 'warmup_steps'",
        ),
    ],
)
def test_the_helper_functions_say_what_their_classes_say(call, message):
    with pytest.raises(TypeError, match=message):
        call(S.constant(0.1), S.constant(0.2))


def test_one_schedule_where_join_takes_a_list_is_not_called_a_config_dict():
    with pytest.raises(
        ValueError,
        match=r"^schedules must be a list of schedules, got one schedule \(in a config, a dict where a list of them belongs\): write it as a list: \[constant\(lr=0\.2\)\]$",  # noqa: E501
    ):
        S.join(S.constant(0.2), boundaries=[])
    assert S.join([S.constant(0.2), S.constant(0.1)], boundaries=[3])(3) == 0.1


def test_join_refuses_a_repeated_boundary() -> None:
    parts = [S.constant(0.1), S.constant(0.2), S.constant(0.3)]
    with pytest.raises(
        ValueError,
        match=r"^boundaries must be strictly increasing, but boundaries\[1\]=10 follows "
        r"boundaries\[0\]=10$",
    ):
        S.join(parts, boundaries=[10, 10])
    assert S.join(parts, boundaries=[10, 11])(10) == 0.2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: S.warmup(0.1, end_lr=0.0, warmup_steps=10, mode="exponential"),
            r"^start_lr and end_lr must be > 0 for mode='exponential' .*end_lr=0\.0$",
        ),
        (
            lambda: S.inverse_time(0.1, decay_steps=10, decay_rate=-0.5),
            r"^decay_rate must be >= 0 .*got -0\.5$",
        ),
    ],
    ids=["warmup-exponential-to-0", "inverse_time-negative-rate"],
)
def test_a_value_outside_a_familys_range_is_refused(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("warmup_steps", [5, 0])
def test_with_warmup_says_an_exponential_ramps_ends_in_its_own_terms(warmup_steps) -> None:
    """with_warmup has no end_lr: the ramp's end is schedule(0), and its start_lr defaults
    to 0, which a geometric ramp cannot start from."""
    to_zero = S.linear(0.0, end_lr=0.1, total_steps=10)
    with pytest.raises(ValueError) as info:
        S.with_warmup(to_zero, warmup_steps=warmup_steps, start_lr=0.01, mode="exponential")
    assert str(info.value) == (
        "schedule must start above 0 for mode='exponential' (a geometric ramp cannot reach 0), "
        "got schedule(0) = 0.0"
    )
    with pytest.raises(ValueError) as info:
        S.with_warmup(S.constant(0.1), warmup_steps=warmup_steps, mode="exponential")
    assert str(info.value) == (
        "start_lr must be > 0 for mode='exponential' (allowed range: (0, inf)), got 0.0"
    )
    ramp = S.with_warmup(S.constant(0.1), warmup_steps=2, start_lr=0.001, mode="exponential")
    assert [ramp(k) for k in range(3)] == pytest.approx([0.001, 0.01, 0.1], rel=1e-12)


@pytest.mark.parametrize(
    ("make", "hint"),
    [  # Hugging Face's cosine_with_min_lr names
        (lambda: S.cosine(0.1, total_steps=100, min_lr=1e-5), "for min_lr use eta_min"),
        (lambda: S.cosine(0.1, total_steps=100, min_lr_rate=0.1),
         "for min_lr_rate use eta_min (= min_lr_rate * lr)"),
        (lambda: S.cosine_restarts(0.1, T_0=10, min_lr=1e-5), "for min_lr use eta_min"),
    ],
)  # fmt: skip
def test_hugging_faces_names_of_the_cosine_floor_point_to_eta_min(make, hint) -> None:
    with pytest.raises(TypeError) as info:
        make()
    assert str(info.value).endswith("; " + hint)


def test_a_spec_keyword_given_twice_is_a_spec_error_at_the_second() -> None:
    with pytest.raises(
        S.SpecError, match=r"^invalid schedule spec at position 32: parameter 'lr' given twice\n"
    ):
        S.parse("cosine(lr=0.1, total_steps=100, lr=0.5)")


def test_a_spec_null_is_none() -> None:
    s = S.parse("clamp(cosine(0.1, 10), min_lr=null)")
    assert s.min_lr is None and s == S.clamp(S.cosine(0.1, total_steps=10))


def test_a_spec_string_escape_stands_for_the_character_after_the_backslash() -> None:
    s = S.parse('warmup(0.0, end_lr=0.1, warmup_steps=10, mode="lin\\ear")')
    assert s.mode == "linear"


def test_polynomial_cycle_paths_agree_where_the_previous_cycle_end_rounds_onto_the_step() -> None:
    """Above 2**53 the float64 end of the previous cycle, ``(k - 1) * total_steps``, can equal
    the step itself: the step closes that cycle (``end_lr``) on both paths."""
    t = 2.6484386846717743e19
    s = S.polynomial(1.0, total_steps=382160, cycle=True)
    k = float(-(-t // 382160))
    assert (k - 1.0) * 382160 == t
    assert s(t) == s.values([t])[0] == 0.0


def test_piecewise_constant_refuses_a_repeated_boundary() -> None:
    with pytest.raises(
        ValueError,
        match=r"^boundaries must be strictly increasing, but boundaries\[1\]=10(\.0)? follows "
        r"boundaries\[0\]=10(\.0)?$",
    ):
        S.piecewise_constant([10, 10], values=[0.1, 0.2, 0.3])
    assert S.piecewise_constant([10, 11], values=[0.1, 0.2, 0.3])(11) == 0.2


def test_a_misspelled_parameter_is_told_the_one_meant_in_python_and_in_a_spec() -> None:
    params = "max_lr, total_steps, pct_start, anneal_strategy, div_factor, final_div_factor, "
    params += "three_phase"
    with pytest.raises(TypeError) as info:
        S.onecycle(0.1, total_steps=10, pct_strt=0.3)  # type: ignore[call-arg]
    assert str(info.value) == (
        f"onecycle: unknown parameter(s) ['pct_strt'] (parameters: {params}); did you mean "
        "pct_start?"
    )
    with pytest.raises(TypeError) as info:
        S.cosine(0.1, total_steps=10, eta_mn=0.0, zzz=1)  # type: ignore[call-arg]
    assert str(info.value).endswith("; did you mean eta_min (for eta_mn)?")
    with pytest.raises(S.SpecError) as spec_info:
        S.parse("cosine(0.1, total_stps=10)")
    assert str(spec_info.value).splitlines()[0] == (
        "invalid schedule spec at position 12: cosine() has no parameter 'total_stps' "
        "(parameters: lr, total_steps, eta_min); did you mean total_steps?"
    )
    with pytest.raises(TypeError) as info:  # nothing near: no guess
        S.cosine(0.1, total_steps=10, zzz=1)  # type: ignore[call-arg]
    assert str(info.value) == (
        "cosine: unknown parameter(s) ['zzz'] (parameters: lr, total_steps, eta_min)"
    )


def test_clamp_given_its_bounds_by_position_says_which_keyword_each_is() -> None:
    s = S.cosine(0.1, total_steps=10)
    for call, example in [
        (lambda: s.clamp(0.01), "clamp(min_lr=0.01)"),
        (lambda: s.clamp(0.01, 0.05), "clamp(min_lr=0.01, max_lr=0.05)"),
    ]:
        with pytest.raises(TypeError) as info:
            call()
        n = example.count("=")
        assert str(info.value) == (
            f"Schedule.clamp: takes 0 positional arguments but {n} {'was' if n == 1 else 'were'} "
            "given; give them by "
            f"keyword, as in {example} (parameters: min_lr, max_lr)"
        )
    assert s.clamp(min_lr=0.01, max_lr=0.05) == S.parse(str(s.clamp(min_lr=0.01, max_lr=0.05)))


def test_a_schedule_called_with_no_step_says_what_to_give_keras() -> None:
    with pytest.raises(TypeError) as info:
        C()
    assert str(info.value) == (
        "Cosine.__call__() takes the step and got none (a Keras optimizer calls a plain "
        "callable learning rate with no argument): give Keras lrkit.keras.schedule(schedule)"
    )


def test_a_hyphenated_bare_word_is_one_value_the_family_names_in_its_error() -> None:
    with pytest.raises(S.SpecError) as info:
        S.parse("cyclic(0.01, 0.1, mode=exp-range)")
    assert info.value.pos == 23
    assert str(info.value).splitlines()[0] == (
        "invalid schedule spec at position 23: cyclic(): mode must be one of 'triangular', "
        "'triangular2', 'exp_range', got 'exp-range'"
    )


def test_a_spec_with_a_function_schedule_is_refused_at_the_one_holding_the_callable() -> None:
    spec = "add(function(fn=f, lr=1.0), function(fn=<lambda>, lr=1.0))"
    with pytest.raises(S.SpecError) as info:
        S.parse(spec)
    assert info.value.pos == spec.rindex("function(") == 28
    assert "a function schedule holds a Python callable" in str(info.value)


def test_a_name_ending_in_function_is_not_taken_for_a_function_schedule() -> None:
    spec = "add(constant(0.1), my_function(<x>))"
    with pytest.raises(S.SpecError) as info:
        S.parse(spec)
    assert str(info.value).splitlines()[0] == (
        "invalid schedule spec at position 31: unexpected character '<'"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: S.polynomial(0.1, total_steps=10, end_lr=-0.01),
            "end_lr must be >= 0 (allowed range: [0, inf)), got -0.01",
        ),
        (
            lambda: S.onecycle_momentum(100, base_momentum=1.5),
            "base_momentum must be in [0.0, 1.0], got 1.5",
        ),
        (
            lambda: S.piecewise_constant([10], values=[0.1, -0.2]),
            "values[1] must be >= 0 (allowed range: [0, inf)), got -0.2",
        ),
        (
            lambda: S.piecewise_constant([10, 20], values=[0.1, 0.2]),
            "values must have len(boundaries) + 1 = 3 entries, got 2",
        ),
        (
            lambda: S.wsd(0.1, total_steps=10, warmup_steps=5, decay_steps=6),
            "warmup_steps + decay_steps must be <= total_steps (allowed range for decay_steps: "
            "[0, 5]), got warmup_steps=5, decay_steps=6, total_steps=10",
        ),
        (
            lambda: S.onecycle(0.1, total_steps=100, pct_start=0.01, three_phase=True),
            "pct_start and total_steps give phase 1 of the cycle no width (it starts and ends at "
            "step 0.0; PyTorch's OneCycleLR divides by zero there): pct_start must be in [0, 1] "
            "with pct_start * total_steps != 1 and 2 * pct_start * total_steps - 2 != "
            "total_steps - 1, got pct_start=0.01, total_steps=100",
        ),
    ],
    ids=[
        "polynomial-end_lr",
        "momentum-base",
        "piecewise-value",
        "piecewise-count",
        "wsd-decay-range",
        "onecycle-three-phase",
    ],
)
def test_a_family_argument_out_of_range_is_named_with_its_range(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value) == message


def test_cyclic_with_no_steps_down_is_a_sawtooth() -> None:
    s = S.cyclic(0.0, max_lr=1.0, step_size_up=4, step_size_down=0)
    expected = [0.0, 0.25, 0.5, 0.75] * 2
    assert [s(t) for t in range(8)] == expected
    assert s.values(range(8)).tolist() == expected
    assert S.parse(str(s)) == s


def test_wsd_of_two_steps_keeps_one_step_of_decay_by_default() -> None:
    s = S.wsd(0.1, total_steps=2)
    assert s.decay_steps == 1
    assert [s(t) for t in range(3)] == [0.1, 0.1, 0.0]


@pytest.mark.parametrize(
    "make",
    [
        lambda w: S.with_warmup(S.constant(0.1), warmup_steps=w),
        lambda w: S.warmup(0.0, end_lr=0.1, warmup_steps=w),
        lambda w: S.wsd(0.1, total_steps=100, warmup_steps=w),
        lambda w: S.inverse_sqrt(0.1, warmup_steps=w),
        lambda w: S.parse(f"with_warmup(constant(0.1), warmup_steps={w})"),
    ],
    ids=["with_warmup", "warmup", "wsd", "inverse_sqrt", "spec"],
)
def test_a_warmup_given_as_a_share_of_the_run_is_told_how_to_count_it(make) -> None:  # type: ignore[no-untyped-def]
    """transformers reads a warmup_steps below 1 as a share of the run; lrkit counts steps."""
    with pytest.raises(ValueError) as info:
        make(0.1)
    first = str(info.value).splitlines()[0]  # a spec's error shows the spec below it
    assert first.endswith(
        "warmup_steps must be an integer in [0, 2**53], got 0.1 (a number of steps; "
        "transformers reads a value below 1 as a share of the run: "
        "warmup_steps=math.ceil(share * num_training_steps))"
    )
    with pytest.raises(ValueError) as info:  # above 1: a fraction of a step, no such hint
        make(1.5)
    first = str(info.value).splitlines()[0]
    assert first.endswith("warmup_steps must be an integer in [0, 2**53], got 1.5")
    assert make(10.0) == make(10)
