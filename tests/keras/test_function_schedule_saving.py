"""A Keras model whose optimizer holds ``lk.schedule(S.function(fn, lr=...))`` saves and loads
as Keras saves a function (a ``Lambda`` layer's): by name, through ``custom_objects``, a lambda
only with ``safe_mode=False``; a callable Keras cannot write is left out with a warning, the
rest of the model saved. Every backend."""

import functools
import math
import warnings
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import lrkit.keras as lk  # noqa: E402
from lrkit import schedules as S  # noqa: E402


def hf_linear(step: float) -> float:
    if step < 10:
        return float(step) / 10.0
    return max(0.0, float(50 - step) / 40.0)


F = S.function(hf_linear, lr=0.1)


@keras.saving.register_keras_serializable(package="lrkit_tests")
def registered_warm(step: float) -> float:
    return min(1.0, (step + 1) / 10)


def _fitted(schedule: Any) -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lk.schedule(schedule)), loss="mse")
    x = np.linspace(-1, 1, 12, dtype="float32").reshape(6, 2)
    model.fit(x, x[:, :1] * 2.0, batch_size=2, epochs=2, shuffle=False, verbose=0)
    return model


def _same_schedule(loaded: Any, model: Any) -> None:
    got, want = loaded.optimizer._learning_rate, model.optimizer._learning_rate
    assert isinstance(got, lk.LRKitSchedule) and str(got.schedule) == str(want.schedule)
    steps = np.arange(80)
    np.testing.assert_array_equal(got.values(steps), want.values(steps))
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 6
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_model_with_a_function_schedule_saves_and_loads_as_keras_functions_do(
    tmp_path,
) -> None:
    cosine = S.cosine(0.1, total_steps=30)
    joined = S.join([S.function(registered_warm, lr=0.1, length=10), cosine], boundaries=[10])
    model = _fitted(joined)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # registered: found by name
    _same_schedule(loaded, model)
    assert loaded.optimizer._learning_rate.schedule == joined  # the very function

    # a function Keras does not know by name comes back through custom_objects
    model = _fitted(S.with_warmup(F, warmup_steps=3))
    model.save(tmp_path / "f.keras")
    with pytest.raises(Exception, match="hf_linear"):
        keras.saving.load_model(tmp_path / "f.keras")
    loaded = keras.saving.load_model(tmp_path / "f.keras", custom_objects={"hf_linear": hf_linear})
    _same_schedule(loaded, model)


def test_a_lambda_loads_only_with_safe_mode_off_as_a_lambda_layer(tmp_path) -> None:
    s = S.function(lambda t: 1.0 / (1.0 + t), lr=0.2, length=40) * 0.5
    model = _fitted(s)
    with pytest.warns(UserWarning, match="lambda"):  # Keras' own warning for a lambda
        model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="deserialization of a Python lambda"):
        keras.saving.load_model(tmp_path / "m.keras")
    _same_schedule(keras.saving.load_model(tmp_path / "m.keras", safe_mode=False), model)


def scaled_linear(step: float, scale: Any, *, end: int = 50, extra: Any = None) -> float:
    return float(scale) * max(0.0, float(end - step) / end)


@keras.saving.register_keras_serializable(package="lrkit_tests")
def registered_decay(step: float, power: float, *, steps: list) -> float:
    return (1.0 - min(step, steps[0]) / steps[0]) ** power


def test_a_partial_with_plain_arguments_saves_and_loads_as_its_function_does(tmp_path) -> None:
    """A functools.partial is written as its function (found as Keras finds that function)
    and its arguments: numbers, strings, lists, nested partials come back as they were."""
    fn = functools.partial(functools.partial(scaled_linear, np.float32(2.0)), end=40)
    fn = functools.partial(fn, extra={"steps": (3, 8), "weights": np.arange(3, dtype="int16")})
    model = _fitted(S.function(fn, lr=0.05))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "saved without its fn"
        model.save(tmp_path / "m.keras")
    with pytest.raises(Exception, match="scaled_linear"):
        keras.saving.load_model(tmp_path / "m.keras")
    loaded = keras.saving.load_model(
        tmp_path / "m.keras", custom_objects={"scaled_linear": scaled_linear}
    )
    _same_schedule(loaded, model)
    back = loaded.optimizer._learning_rate.schedule.fn
    assert isinstance(back, functools.partial) and back.func is scaled_linear
    # a numpy scalar comes back as the Python number of its value; a tuple as a tuple, an
    # array as an array of its dtype
    assert back.args == (2.0,) and type(back.args[0]) is float
    extra = back.keywords.pop("extra")
    assert back.keywords == {"end": 40} and extra["steps"] == (3, 8)
    assert extra["weights"].dtype == np.int16 and extra["weights"].tolist() == [0, 1, 2]


def test_a_model_whose_schedule_is_a_partial_of_a_registered_function_pickles_and_clones():
    """pickle and keras.models.clone_model write the optimizer as model.save does: a partial of
    a registered function comes back in the copy, the same values at every step."""
    import pickle

    s = S.function(functools.partial(registered_decay, 2.0, steps=[30]), lr=0.1, length=30)
    model = _fitted(s)
    steps = np.arange(40)
    for copy in (pickle.loads(pickle.dumps(model)), keras.models.clone_model(model)):
        got = copy.optimizer._learning_rate
        assert isinstance(got, lk.LRKitSchedule) and str(got.schedule) == str(s)
        np.testing.assert_array_equal(
            got.values(steps), model.optimizer._learning_rate.values(steps)
        )


def test_a_callable_keras_cannot_write_is_left_out_and_the_rest_is_saved(tmp_path) -> None:
    """A model.save never leaves the file it writes empty: the fn Keras cannot write is left
    out with a warning, the weights and the optimizer state are saved, and loading the
    optimizer says in one line how to load the rest."""
    inner = functools.partial(scaled_linear, 1.0, extra=_Decay())  # JSON cannot keep it
    partial = S.function(inner, lr=0.1)
    model = _fitted(partial)
    path = tmp_path / "m.keras"
    path.write_bytes(b"an earlier save")
    with pytest.warns(UserWarning) as said:
        model.save(path)
    text = [str(w.message) for w in said if "saved without its fn" in str(w.message)]
    assert len(text) == 1 and "\n" not in text[0]
    assert text[0].startswith(
        "the function schedule function(fn=partial(scaled_linear), lr=0.1) is saved without "
        "its fn: Keras cannot serialize it (a functools.partial's arguments must be numbers, "
        "strings, None, numpy arrays, or lists, tuples or dicts of them); "
    )
    assert "load_model(path, compile=False)" in text[0]
    with pytest.raises(Exception, match=r"fn \(functools\.partial\(<function scaled_linear"):
        keras.saving.load_model(path)
    loaded = keras.saving.load_model(path, compile=False)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.warns(UserWarning, match="saved without its fn"):
        config = lk.schedule(partial).get_config()
    with pytest.raises(ValueError) as info:
        lk.LRKitSchedule.from_config(config)
    msg = str(info.value)
    assert msg.startswith("the function schedule's fn (functools.partial(<function scaled_linear")
    assert msg.endswith(
        ") was not saved (Keras cannot serialize it): "
        "load a saved model with keras.saving.load_model(path, compile=False) and compile it "
        "with a schedule again; a model to pickle or clone needs a fn Keras can write and find "
        "by name (a function registered with keras.saving.register_keras_serializable, or a "
        "functools.partial of one)"
    )


class _Decay:
    def at(self, step: float) -> float:
        return 1.0 / (1.0 + step)


@pytest.mark.parametrize(
    ("fn", "kind"),
    [
        (_Decay().at, "method"),  # Keras would write a name it cannot read back
        (math.exp, "builtin_function_or_method"),
        (np.exp, "ufunc"),  # Keras' serializer fails on it with an AttributeError
        (np.vectorize(lambda t: 1.0 / (1.0 + t)), "vectorize"),
    ],
)
def test_what_is_no_python_function_is_left_out_as_it_is_saved(fn, kind) -> None:
    """Not only what Keras' serializer refuses: a callable it would write but never read back
    (a bound method, a builtin) is left out too, with the same one-line warning."""
    ks = lk.schedule(S.function(fn, lr=0.1, length=10))
    with pytest.warns(UserWarning) as said:
        config = ks.get_config()
    text = str(said[-1].message)
    assert "\n" not in text and "is saved without its fn: Keras cannot serialize it (" in text
    if kind != "vectorize":
        assert f"a {kind} is no Python function" in text
    with pytest.raises(ValueError, match=r"was not saved \(Keras cannot serialize it\)"):
        lk.LRKitSchedule.from_config(config)


@keras.saving.register_keras_serializable(package="lrkit_tests")
def registered_bounded(bounds: Any, power: Any, step: float) -> float:
    return (1.0 - min(step, bounds[0]) / bounds[0]) ** power


def test_a_partials_positional_tuple_and_numpy_integer_come_back_as_they_were() -> None:
    """A partial's positional arguments are read back as they were written: a tuple as a
    tuple, a numpy integer as the Python int of its value."""
    s = S.function(functools.partial(registered_bounded, (30, 60), np.int64(2)), lr=0.1)
    back = lk.LRKitSchedule.from_config(lk.schedule(s).get_config())
    fn = back.schedule.fn
    assert fn.func is registered_bounded and fn.args == ((30, 60), 2)
    assert type(fn.args[0]) is tuple and type(fn.args[1]) is int
    steps = np.arange(40)
    np.testing.assert_array_equal(back.values(steps), lk.schedule(s).values(steps))


def test_a_partials_dict_argument_holding_class_name_is_left_out_as_it_is_saved() -> None:
    """A dict argument with a "class_name" key would be read back as one of the marks the
    config writes: the fn is left out with the one-line warning instead."""
    extra = {"class_name": "lrkit>tuple", "config": [30, 60]}
    s = S.function(functools.partial(scaled_linear, 1.0, extra=extra), lr=0.1)
    with pytest.warns(UserWarning, match=r"saved without its fn: .*a functools\.partial's arg"):
        config = lk.schedule(s).get_config()
    with pytest.raises(ValueError, match=r"was not saved \(Keras cannot serialize it\)"):
        lk.LRKitSchedule.from_config(config)


class _NoConfig:
    """A callable whose get_config raises (Keras' serializer calls it)."""

    def __call__(self, step: float) -> float:
        return 0.5

    def get_config(self) -> dict:
        raise NotImplementedError("_NoConfig has no config")


def test_a_callable_whose_serialization_raises_is_left_out_with_the_reason() -> None:
    ks = lk.schedule(S.function(_NoConfig(), lr=0.1))
    with pytest.warns(UserWarning) as said:
        config = ks.get_config()
    text = str(said[-1].message)
    assert "is saved without its fn: Keras cannot serialize it (_NoConfig has no config); " in (
        text
    )
    with pytest.raises(ValueError, match=r"was not saved \(Keras cannot serialize it\)"):
        lk.LRKitSchedule.from_config(config)
