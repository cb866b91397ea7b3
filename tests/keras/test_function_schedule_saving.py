"""A Keras model whose optimizer holds ``lk.schedule(S.function(fn, lr=...))`` saves and loads
as Keras saves a function (a ``Lambda`` layer's): by name, through ``custom_objects``, a lambda
only with ``safe_mode=False``; a callable Keras cannot write is a one-line error. Every
backend."""

import functools
import math
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


def test_a_callable_keras_cannot_write_is_a_one_line_error() -> None:
    ks = lk.schedule(S.function(functools.partial(hf_linear), lr=0.1))
    with pytest.raises(
        TypeError,
        match=r"^the function schedule function\(fn=partial\(hf_linear\), lr=0\.1\) cannot be "
        r"saved: Keras cannot serialize its fn \(",
    ) as info:
        ks.get_config()
    assert "\n" not in str(info.value) and "save_weights" in str(info.value)


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
def test_what_is_no_python_function_is_refused_as_it_is_saved(fn, kind) -> None:
    """Not only what Keras' serializer refuses: a callable it would write but never read back
    (a bound method, a builtin) is refused too, in the same one line."""
    ks = lk.schedule(S.function(fn, lr=0.1, length=10))
    with pytest.raises(TypeError) as info:
        ks.get_config()
    text = str(info.value)
    assert "\n" not in text and "cannot be saved: Keras cannot serialize its fn (" in text
    assert text.endswith("; in model.save, Keras has emptied the file it was writing by now")
    if kind != "vectorize":
        assert f"a {kind} is no Python function" in text
