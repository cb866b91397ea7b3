"""Keras' own schedules and ReduceLROnPlateau, reproduced by lrkit expressions (the Keras side
computes in float32)."""

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from lrkit import schedules as S  # noqa: E402
from lrkit.feedback import ReduceOnPlateau  # noqa: E402

KS = keras.optimizers.schedules
STEPS = np.arange(0, 400)


def keras_values(sched):
    if keras.backend.backend() != "jax":  # e.g. PiecewiseConstantDecay takes one step on torch
        one = [keras.ops.convert_to_numpy(sched(keras.ops.convert_to_tensor(float(t))))
               for t in STEPS]  # fmt: skip
        return np.asarray(one, dtype=np.float64)
    t = keras.ops.convert_to_tensor(STEPS.astype("float32"))
    return np.asarray(keras.ops.convert_to_numpy(sched(t)), dtype=np.float64)


@pytest.mark.parametrize("power,end", [(1.0, 0.0), (2.0, 0.01), (0.5, 0.001)])
@pytest.mark.parametrize("decay_steps", [7, 50])
def test_polynomial_decay_cycle(power, end, decay_steps):
    ref = keras_values(KS.PolynomialDecay(0.1, decay_steps, end, power=power, cycle=True))
    ours = S.parse(f"polynomial(0.1, {decay_steps}, {power}, {end}, cycle=true)")
    # Keras takes ceil(step / decay_steps) in float32 (on JAX: 21 / 7 > 3), so at some multiples
    # of decay_steps it starts the next cycle one step early; those steps are checked against
    # the exact formula only
    exact = np.ceil(STEPS / decay_steps)
    same = STEPS % decay_steps != 0
    np.testing.assert_allclose(ours.values(STEPS)[same], ref[same], rtol=2e-6, atol=2e-8)
    scalar = np.array([ours(int(t)) for t in STEPS])
    np.testing.assert_array_equal(scalar, ours.values(STEPS))
    horizon = decay_steps * np.maximum(exact, 1)
    expected = (0.1 - end) * (1 - STEPS / horizon) ** power + end
    np.testing.assert_allclose(scalar, expected, rtol=1e-12)


@pytest.mark.parametrize(
    "first,t_mul,m_mul,alpha", [(10, 2, 0.5, 0.0), (13, 1, 0.9, 0.1), (5, 3, 0.7, 0.25)]
)
def test_cosine_decay_restarts_m_mul(first, t_mul, m_mul, alpha):
    lr = 0.1
    ref = keras_values(
        KS.CosineDecayRestarts(lr, first, t_mul=float(t_mul), m_mul=m_mul, alpha=alpha)
    )
    ours = S.parse(f"cosine_restarts({lr}, {first}, {t_mul}, eta_min={alpha * lr}, m_mul={m_mul})")
    np.testing.assert_allclose(ours.values(STEPS), ref, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose([ours(int(t)) for t in STEPS], ref, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "first,t_mul,m_mul,alpha",
    [(10, 1.5, 0.5, 0.0), (10, 1.5, 0.9, 0.1), (10, 2.5, 0.7, 0.25), (7, 2.5, 0.8, 0.1)],
)
def test_cosine_decay_restarts_fractional_t_mul(first, t_mul, m_mul, alpha):
    # cycles of first * t_mul**i steps: 10, 15, 22.5, 33.75, ... (a whole step or not)
    lr = 0.1
    ref = keras_values(KS.CosineDecayRestarts(lr, first, t_mul=t_mul, m_mul=m_mul, alpha=alpha))
    ours = S.cosine_restarts(lr, T_0=first, T_mult=t_mul, eta_min=alpha * lr, m_mul=m_mul)
    assert S.parse(f"cosine_restarts({lr}, {first}, {t_mul}, {alpha * lr}, m_mul={m_mul})") == ours
    starts = first * (t_mul ** np.arange(12) - 1) / (t_mul - 1)  # exact: dyadic
    starts = starts[starts < STEPS[-1]]
    assert len(starts) >= 5  # a few cycles
    # Keras takes floor(log(...) / log(t_mul)) in float32 (on torch: log(2.25) / log(1.5) < 2),
    # so a cycle that starts on a whole step can start one step late there (the step gives the
    # end of the cycle before, alpha * lr); those steps are checked against the formula only
    whole = [int(x) for x in starts if float(x).is_integer()]
    same = ~np.isin(STEPS, whole)
    np.testing.assert_allclose(ours.values(STEPS)[same], ref[same], rtol=1e-5, atol=1e-8)
    scalar = [ours(int(t)) for t in STEPS]
    assert scalar == ours.values(STEPS).tolist()
    # each cycle that starts on a whole step starts at its peak, m_mul ** i above alpha * lr
    for i, start in enumerate(starts):
        if float(start).is_integer():
            peak = alpha * lr + (lr - alpha * lr) * m_mul**i
            assert ours(int(start)) == pytest.approx(peak, rel=1e-12)
            assert ref[int(start)] in (pytest.approx(peak, rel=1e-5), pytest.approx(alpha * lr))


def _callback_lrs(cb, values, monitor="val_loss"):
    """The learning rate after each epoch end of ``cb`` fed ``values`` as ``monitor``."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    cb.set_model(model)
    cb.on_train_begin()
    out = []
    for epoch, v in enumerate(values):
        cb.on_epoch_end(epoch, {monitor: float(v)})
        out.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    return out


def _keras_plateau_lrs(values, patience, cooldown, min_delta):
    cb = keras.callbacks.ReduceLROnPlateau(
        monitor="val_loss",
        factor=0.5,
        patience=patience,
        cooldown=cooldown,
        min_delta=min_delta,
        mode="min",
    )
    return _callback_lrs(cb, values)


@pytest.mark.parametrize(
    "seed,patience,cooldown", [(0, 0, 0), (1, 1, 0), (2, 2, 1), (3, 3, 2), (4, 1, 3), (5, 0, 2)]
)
def test_keras_reduce_lr_on_plateau_mapping(seed, patience, cooldown):
    # dyadic values and min_delta: float32 and float64 comparisons agree exactly
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.choice([-0.5, -0.25, 0.0, 0.0, 0.25, 0.5], size=50)) + 40.0
    min_delta = 0.25
    ref = _keras_plateau_lrs(values, patience, cooldown, min_delta)
    ours = ReduceOnPlateau(
        factor=0.5,
        patience=max(patience, 1) - 1,
        cooldown=max(cooldown - 1, 0),
        threshold=min_delta,
        threshold_mode="abs",
    )
    got = [ours.update(v) for v in values]
    assert got == ref
    assert min(ref) < 1.0  # the streams do reach plateaus


@pytest.mark.parametrize(
    "seed,patience,cooldown,min_lr",
    [(0, 0, 0, 0.0), (1, 1, 0, 0.0), (2, 2, 1, 0.125), (3, 3, 2, 0.0), (4, 1, 3, 0.25),
     (5, 0, 2, 0.0625), (6, 10, 0, 0.0)],
)  # fmt: skip
def test_the_keras_named_callback_has_keras_arguments_and_timing(seed, patience, cooldown, min_lr):
    # dyadic values, min_delta and min_lr: float32 and float64 agree exactly
    from lrkit.keras import ReduceLROnPlateau, ReduceOnPlateau

    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.choice([-0.5, -0.25, 0.0, 0.0, 0.25, 0.5], size=80)) + 40.0
    kw = dict(factor=0.5, patience=patience, cooldown=cooldown, min_delta=0.25, min_lr=min_lr)
    ref = _callback_lrs(keras.callbacks.ReduceLROnPlateau(**kw), values)
    assert _callback_lrs(ReduceLROnPlateau(**kw), values) == ref
    assert min(ref) < 1.0
    # the defaults are Keras' too
    flat = [1.0] * 30
    assert _callback_lrs(ReduceLROnPlateau(), flat) == _callback_lrs(
        keras.callbacks.ReduceLROnPlateau(), flat
    )
    assert ReduceLROnPlateau.__mro__[1] is ReduceOnPlateau


@pytest.mark.parametrize("set_between", [False, True])
@pytest.mark.parametrize(
    "seed,patience,cooldown,min_lr", [(0, 2, 0, 0.0), (1, 1, 2, 0.125), (2, 3, 1, 0.0625)]
)
def test_the_keras_named_callback_begins_a_new_watch_at_every_fit_as_keras(
    seed, patience, cooldown, min_lr, set_between
):
    """Several fit() calls with one callback: Keras forgets the best value, the wait and the
    cooldown at each one (the LR cut stays), and writes each epoch's LR into the logs; an LR
    set between two fit() calls is cut down to min_lr again, as Keras' own does."""
    from lrkit.keras import ReduceLROnPlateau

    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.choice([-0.5, -0.25, 0.0, 0.0, 0.25, 0.5], size=60)) + 40.0
    kw = dict(factor=0.5, patience=patience, cooldown=cooldown, min_delta=0.25, min_lr=min_lr)
    runs = []
    for cb in (keras.callbacks.ReduceLROnPlateau(**kw), ReduceLROnPlateau(**kw)):
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
        cb.set_model(model)
        lrs, logged = [], []
        for fit in range(4):  # 15 epochs each
            if set_between and fit in (1, 3):
                model.optimizer.learning_rate = 2.0 if fit == 1 else 0.5
            cb.on_train_begin()
            for epoch in range(15):
                logs = {"val_loss": float(values[fit * 15 + epoch])}
                cb.on_epoch_end(epoch, logs)
                logged.append(logs["learning_rate"])
                lrs.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
            cb.on_train_end()
        runs.append((lrs, logged))
    assert runs[1] == runs[0]
    assert min(runs[0][0]) < 1.0  # the streams do reach plateaus


def test_min_lr_is_read_against_the_lr_an_lrscheduler_trains_at():
    """The LR given to compile is replaced by lrkit's LRScheduler: Keras' floor, min_lr, is
    on the LR the run trains at (0.1 here), whatever compile was given."""
    from lrkit import schedules as S
    from lrkit.keras import LRLogger, LRScheduler, ReduceLROnPlateau

    x, y = np.zeros((8, 2), "float32"), np.zeros((8, 1), "float32")

    class Stalled(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = 1.0

    for compiled in (0.01, 0.1, 1.0):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(compiled), loss="mse")
        log = LRLogger("epoch")
        plateau = ReduceLROnPlateau(patience=1, factor=0.1, min_lr=0.05)
        model.fit(x, y, epochs=5, verbose=0,
                  callbacks=[LRScheduler(S.constant(0.1)), Stalled(), plateau, log])  # fmt: skip
        assert [round(lr, 6) for _, lr in log.history] == [0.1, 0.1, 0.05, 0.05, 0.05], compiled


def test_the_keras_named_callback_refuses_min_lr_beside_a_schedule():
    from lrkit.keras import ReduceLROnPlateau
    from lrkit.keras import schedule as keras_schedule

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(keras_schedule("cosine(0.1, 100)")), loss="mse")
    cb = ReduceLROnPlateau(min_lr=1e-3)
    cb.set_model(model)
    with pytest.raises(ValueError, match=r"^min_lr=0.001 needs a float learning rate"):
        cb.on_train_begin()
    cb = ReduceLROnPlateau()  # no floor: the schedule is scaled
    cb.set_model(model)
    cb.on_train_begin()
    with pytest.raises(ValueError, match="patience"):
        ReduceLROnPlateau(patience=-1)
    with pytest.raises(TypeError):
        ReduceLROnPlateau("val_loss", 0.5)  # keyword-only after the monitor


def _keras_max_plateau_lrs(values, min_delta):
    cb = keras.callbacks.ReduceLROnPlateau(
        monitor="val_acc", factor=0.5, patience=1, min_delta=min_delta, mode="max"
    )
    return _callback_lrs(cb, values, monitor="val_acc")[-1]


def test_a_tie_at_min_delta_as_docs_parity_tells_it():
    # docs/parity.md, "Ties at exactly min_delta": 4/50 -> 5/50 with min_delta=0.02
    ours = ReduceOnPlateau(mode="max", factor=0.5, patience=0, threshold=0.02, threshold_mode="abs")
    logged = [float(np.float32(4 / 50)), float(np.float32(5 / 50))]  # as Keras logs them
    assert logged == [0.07999999821186066, 0.10000000149011612]
    assert _keras_max_plateau_lrs(logged, 0.02) == 0.5  # float32: no improvement, a cut
    assert [ours.update(v) for v in logged] == [1.0, 1.0]  # float64: an improvement
    ours = ReduceOnPlateau(mode="max", factor=0.5, patience=0, threshold=0.02, threshold_mode="abs")
    assert _keras_max_plateau_lrs([0.08, 0.1], 0.02) == 0.5  # exact floats: both cut
    assert [ours.update(v) for v in (0.08, 0.1)] == [1.0, 0.5]


@pytest.mark.repository("docs")
def test_the_callback_docstring_gives_the_tested_keras_mapping():
    """The Keras recipe in ``lrkit.keras.ReduceOnPlateau``'s docstring is the mapping tested
    above (and the one on the parity page), cooldown included."""
    import lrkit.keras as lk

    mapping = (
        "ReduceOnPlateau(patience=max(P, 1) - 1, cooldown=max(C - 1, 0), threshold=d, "
        'threshold_mode="abs")'
    )
    doc = " ".join(lk.ReduceOnPlateau.__doc__.replace("``", "").split())
    assert "Keras' ReduceLROnPlateau(patience=P, cooldown=C, min_delta=d) is " + mapping in doc
    parity = Path(__file__).resolve().parents[2] / "docs" / "parity.md"
    assert mapping in parity.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "keras_schedule,ours",
    [
        (
            KS.PolynomialDecay(0.1, 70, 0.01, power=2.0),
            S.polynomial(0.1, total_steps=70, power=2.0, end_lr=0.01),
        ),
        (KS.InverseTimeDecay(0.1, 10, 0.5), S.inverse_time(0.1, decay_steps=10, decay_rate=0.5)),
        (
            KS.InverseTimeDecay(0.1, 10, 0.5, staircase=True),
            S.inverse_time(0.1, decay_steps=10, decay_rate=0.5, staircase=True),
        ),
        (
            KS.PiecewiseConstantDecay([10, 100], [0.1, 0.01, 0.001]),
            S.piecewise_constant([10, 100], values=[0.1, 0.01, 0.001]),
        ),
        (KS.ExponentialDecay(0.1, 10, 0.5), S.exponential(0.1, gamma=0.5 ** (1 / 10))),
        (KS.ExponentialDecay(0.1, 10, 0.5, staircase=True), S.step(0.1, step_size=10, gamma=0.5)),
    ],
    ids=["polynomial", "inverse_time", "inverse_time_stair", "piecewise", "exp", "exp_stair"],
)
def test_other_keras_schedules(keras_schedule, ours):
    np.testing.assert_allclose(ours.values(STEPS), keras_values(keras_schedule), rtol=1e-5)
