"""lrkit.keras callbacks: plateau and guard on scheduled optimizers, scheduler, logger."""

import copy
import warnings
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import lrkit.keras as lk  # noqa: E402
from lrkit import schedules as S  # noqa: E402
from lrkit.feedback import ReduceOnPlateau as Core  # noqa: E402

ONES = np.ones((1, 1), "float32")


def _fit(model, epochs, callbacks, batches=1):
    x = np.ones((batches, 1), "float32")
    return model.fit(
        x, x, epochs=epochs, batch_size=1, shuffle=False, verbose=0, callbacks=callbacks
    )


def _never_improves():
    # the loss (mean prediction) only decreases: in mode "max" only the first epoch improves
    return dict(monitor="loss", mode="max", factor=0.5, patience=0)


@pytest.mark.parametrize("kind", ["lrkit", "keras_schedule", "float"])
def test_plateau_scales_the_lr_the_optimizer_really_uses(kind, const_grad_model, mean_pred_loss):
    if kind == "lrkit":
        lr = lk.schedule(S.constant(0.01))
    elif kind == "keras_schedule":
        lr = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=1000, decay_rate=1.0)
    else:
        lr = 0.01
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss=mean_pred_loss)
    cb = lk.ReduceOnPlateau(**_never_improves())
    log = lk.LRLogger()
    _fit(model, 5, [cb, log])
    # epoch 0 sets best, epochs 1..4 each halve the LR (patience 0)
    assert cb.controller.reductions == [1, 2, 3, 4]
    used = [0.01, 0.01, 0.005, 0.0025, 0.00125]
    np.testing.assert_allclose([lr for _, lr in log.history], used, rtol=1e-6)
    # the kernel moved by exactly -lr per step: the compiled step used the scaled LR
    np.testing.assert_allclose(model.get_weights()[0], [[-sum(used)]], rtol=1e-5)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01 / 16, rel=1e-6)
    if kind == "keras_schedule":
        assert isinstance(model.optimizer._learning_rate, lk.ScaledSchedule)


@pytest.mark.parametrize("make", ["plateau", "guard", "both"])
def test_a_keras_schedule_is_wrapped_only_at_the_first_cut_so_a_model_saved_before_loads_anywhere(
    make, tmp_path
):
    """A plateau callback or guard that never acted leaves the optimizer's own schedule: the
    saved model names Keras' class only and loads in a process that never imports lrkit."""
    import json
    import subprocess
    import sys
    import zipfile

    lr = keras.optimizers.schedules.CosineDecay(0.01, decay_steps=100)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    callbacks: list[Any] = []
    if make in ("plateau", "both"):
        callbacks.append(lk.ReduceOnPlateau("loss", patience=100))
    if make in ("guard", "both"):
        callbacks.append(lk.DivergenceGuard())
    log = lk.LRLogger("batch")
    _fit(model, 3, [*callbacks, log], batches=2)
    assert model.optimizer._learning_rate is lr
    np.testing.assert_allclose(log.lrs, [float(lr(k)) for k in range(6)], rtol=1e-6)
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    assert "lrkit" not in json.dumps(config)
    code = (
        "import sys, keras; m = keras.saving.load_model(sys.argv[1], compile=True); "
        "assert not any(k.startswith('lrkit') for k in sys.modules); "
        "print(type(m.optimizer._learning_rate).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert (out.returncode, out.stdout.strip()) == (0, "CosineDecay"), out.stderr[-2000:]
    # the first cut wraps it (a plateau that never improves, both callbacks on one wrapper)
    cuts = [lk.ReduceOnPlateau(**_never_improves())]
    if make != "plateau":
        cuts.append(lk.DivergenceGuard())
    _fit(model, 3, cuts)
    wrapped = model.optimizer._learning_rate
    assert isinstance(wrapped, lk.ScaledSchedule) and wrapped.inner is lr
    assert wrapped.scale == 0.25


def test_plateau_logs_the_epochs_learning_rate_before_its_cut_as_keras_own_does(
    const_grad_model, mean_pred_loss
):
    runs = []
    for cb in (
        keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0),
        lk.ReduceOnPlateau("loss", factor=0.5, patience=0, threshold=10.0, threshold_mode="abs"),
    ):
        model = const_grad_model()
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss=mean_pred_loss)
        runs.append(_fit(model, 3, [cb]).history["learning_rate"])
    # the first epoch sets the best; each later one, never better by 10, is cut at its end
    assert runs[1] == runs[0] == [float(np.float32(v)) for v in (0.1, 0.1, 0.05)]
    model = const_grad_model()  # a schedule in the optimizer: no float LR to log
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=lk.schedule(S.constant(0.1))),
        loss=mean_pred_loss,
    )
    assert "learning_rate" not in _fit(model, 2, [lk.ReduceOnPlateau(**_never_improves())]).history


def test_keras_own_plateau_fails_with_a_schedule_ours_does_not(const_grad_model, mean_pred_loss):
    model = const_grad_model()
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=lk.schedule(S.cosine(0.01, total_steps=100))),
        loss=mean_pred_loss,
    )
    keras_cb = keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=0, min_delta=10.0)
    with pytest.raises(TypeError):
        _fit(model, 3, [keras_cb])
    model2 = const_grad_model()
    model2.compile(
        optimizer=keras.optimizers.SGD(learning_rate=lk.schedule(S.cosine(0.01, total_steps=100))),
        loss=mean_pred_loss,
    )
    ours = lk.ReduceOnPlateau(**_never_improves())
    _fit(model2, 3, [ours])
    assert model2.optimizer._learning_rate.scale == 0.25
    assert float(model2.optimizer.learning_rate) == float(
        np.float32(S.cosine(0.01, total_steps=100)(3) * 0.25)
    )


def test_plateau_negative_metric_controller_and_validation():
    # negative, constant metric: PyTorch/optax-style relative thresholds never reduce; ours does
    cb = lk.ReduceOnPlateau(monitor="m", factor=0.5, patience=1)
    ref = Core(factor=0.5, patience=1)
    for v in [-3.0] * 6:
        ref.update(v)
    assert ref.reductions == [3, 5]
    ctl = Core(factor=0.5, patience=1)
    assert lk.ReduceOnPlateau(controller=ctl).controller is ctl
    assert cb.controller.mode == "min"
    assert lk.ReduceOnPlateau(monitor="val_accuracy").controller.mode == "max"
    with pytest.raises(ValueError, match="factor"):
        lk.ReduceOnPlateau(factor=2.0)
    with pytest.raises(ValueError, match="mode"):
        lk.ReduceOnPlateau(mode="up")
    with pytest.raises(ValueError, match="controller"):
        lk.ReduceOnPlateau(controller=object())


def test_plateau_missing_metric_warns(const_grad_model, mean_pred_loss):
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=mean_pred_loss)
    with pytest.warns(RuntimeWarning, match="val_loss"):
        _fit(model, 1, [lk.ReduceOnPlateau()])


def _data_with_bad_batch(bad, n=8, value=np.nan):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n * 4, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True).astype("float32")
    x[bad * 4] = value
    return x, y


def _small(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    return model


def _twins(make_optimizer):
    """Two of :func:`_small`'s models with the same weights, each compiled (``"mse"``) with
    its own optimizer from ``make_optimizer()``."""
    a, b = _small(), _small()
    b.set_weights(a.get_weights())
    for m in (a, b):
        m.compile(optimizer=make_optimizer(), loss="mse")
    return a, b


def test_guard_restores_last_good_state_exactly_and_stops():
    x, y = _data_with_bad_batch(bad=5)
    a, b = _twins(lambda: keras.optimizers.Adam(lk.schedule(S.cosine(0.01, total_steps=50))))
    # batch 5 is NaN: the state it was computed on is not confirmed good, so the restored
    # state is the newest one checked good, the one batch 4 trained from (after 4 batches).
    # The loss of batch 5 is judged when batch 7 starts; batches 6 and 7 run but are undone.
    a.fit(x[:16], y[:16], batch_size=4, shuffle=False, verbose=0)
    guard = lk.DivergenceGuard(max_restores=0, snapshot_every=1)
    with pytest.warns(RuntimeWarning, match="stopped training"):
        b.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[guard])
    assert guard.gave_up and guard.restored_at == [6]
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    for va, vb in zip(a.optimizer.variables, b.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(va.numpy()), np.asarray(vb.numpy()))


def test_a_guard_deep_copies_and_pickles_as_keras_callbacks_do():
    """KerasTuner deep-copies the callbacks of every trial: a copy (or an unpickled guard)
    is a guard of its own, with its own lock, that restores exactly as a fresh one does."""
    import copy
    import pickle

    x, y = _data_with_bad_batch(bad=5)
    a, b = _twins(lambda: keras.optimizers.Adam(0.01))
    a.fit(x[:16], y[:16], batch_size=4, shuffle=False, verbose=0)
    original = lk.DivergenceGuard(max_restores=0, snapshot_every=1)
    for guard in (copy.deepcopy(original), pickle.loads(pickle.dumps(original))):
        assert guard is not original and guard.snapshot_every == 1
    guard = copy.deepcopy(original)
    with pytest.warns(RuntimeWarning, match="stopped training"):
        b.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[guard])
    assert guard.gave_up and guard.restored_at == [6] and original.restored_at == []
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    # after a fit, too (the callbacks of one trial copied for the next; Keras copies the
    # model the guard holds, and says its optimizer's variables were not built yet)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        again = copy.deepcopy(guard)
    assert again.restored_at == [6] and again.gave_up


def test_copy_copy_of_a_callback_is_one_of_its_own(const_grad_model, mean_pred_loss):
    """copy.copy of a callback that holds a controller (as copy.copy of a controller) gives
    it a controller of its own: the copy's cuts leave the original's LR as it was; the model
    it was set on is shared, not copied."""
    import copy

    def run(cb, epochs):
        model = const_grad_model()
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=mean_pred_loss)
        _fit(model, epochs, [cb])
        return model

    plateau = lk.ReduceOnPlateau(**_never_improves())
    sched = lk.LRScheduler(S.constant(0.1), feedback=Core(mode="max", factor=0.5, patience=0),
                           monitor="loss", per="epoch")  # fmt: skip
    guard = lk.DivergenceGuard()
    for cb, ctrl in ((plateau, "controller"), (sched, "feedback"), (guard, "controller")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            model = run(cb, 1)
        twin = copy.copy(cb)
        assert twin.model is model and getattr(twin, ctrl) is not getattr(cb, ctrl)
        assert getattr(twin, "_handle", None) is None  # (it holds the optimizer: not copied)
        before = getattr(cb, ctrl).state_dict()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # mode="max" on a loss: as meant
            run(twin, 4)
        assert getattr(cb, ctrl).state_dict() == before
        assert getattr(twin, ctrl).state_dict() != before
    assert plateau.scale == 1.0 and sched.feedback.scale == 1.0


def test_a_guard_on_data_of_unknown_length_does_not_wait_for_the_batch_never_run(monkeypatch):
    """Keras begins one batch more than it runs on data of unknown length: at the epoch's
    end (every batch has ended) the guard does not wait for that batch's loss (it waited
    for _WAIT_S, 600 s, then warned)."""
    from lrkit.keras import _callbacks

    monkeypatch.setattr(_callbacks, "_WAIT_S", 3.0)
    monkeypatch.setattr(_callbacks, "_GRACE_S", 0.5)
    x, y = _data_with_bad_batch(bad=5)

    def batches():
        for i in range(0, len(x), 4):
            yield x[i : i + 4], y[i : i + 4]

    for validation in (None, (x[:8], y[:8])):  # validation begins before the epoch's end
        model = _small()
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        guard = lk.DivergenceGuard(snapshot_every=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(batches(), epochs=1, verbose=0, callbacks=[guard],
                      validation_data=validation)  # fmt: skip
        assert guard.restored_at == [6]
        assert not [w for w in caught if "no loss arrived" in str(w.message)]


def test_a_restore_as_the_batch_past_unknown_data_begins_survives_the_epochs_end(monkeypatch):
    """A divergence in the second-to-last batch of data of unknown length is restored as the
    next batch begins, one Keras never runs; Keras then writes its last step's state back
    over the variables. The restored state is assigned again: the epoch ends (and is
    validated) as on data of known length."""
    from lrkit.keras import _callbacks

    monkeypatch.setattr(_callbacks, "_GRACE_S", 0.5)
    x, y = _data_with_bad_batch(bad=6)

    def batches():
        for i in range(0, len(x), 4):
            yield x[i : i + 4], y[i : i + 4]

    for validation in (None, (x[:8], y[:8])):
        runs = []
        for data in (batches(), x):
            model = _small()
            model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
            guard = lk.DivergenceGuard(snapshot_every=1)
            kw = {"batch_size": 4, "shuffle": False} if data is x else {}
            h = model.fit(data, None if data is not x else y, epochs=1, verbose=0,
                          callbacks=[guard], validation_data=validation, **kw)  # fmt: skip
            assert guard.restored_at == [7]
            runs.append((model.get_weights(), h.history))
        (unknown, hu), (known, hk) = runs
        assert all(np.isfinite(w).all() for w in unknown)
        for a, b in zip(unknown, known):
            np.testing.assert_array_equal(a, b)
        assert hu["loss"] == hk["loss"]
        if validation is not None:  # (validated in batches of another size: a rounding apart)
            assert hu["val_loss"] == pytest.approx(hk["val_loss"], rel=1e-6)


def test_a_divergence_in_the_last_batch_is_restored_before_validation_with_a_slow_callback():
    """A slow callback before the guard (a remote logger) delays the last batches' losses
    past the start of validation: the guard waits for them there (Keras hands every loss
    over only by the epoch's end), and validation sees the restored state."""
    import time

    class SlowLogger(keras.callbacks.Callback):
        async_safe = True

        def on_train_batch_end(self, batch, logs=None):
            time.sleep(0.2)

    x, y = _data_with_bad_batch(bad=7)  # the last of 8 batches
    model = _small()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    guard = lk.DivergenceGuard(snapshot_every=1)
    h = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
                  callbacks=[SlowLogger(), guard], validation_data=(x[:8], y[:8]))  # fmt: skip
    assert guard.restored_at == [8]
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert np.isfinite(h.history["val_loss"][0])


def test_a_guard_that_gives_up_has_the_epoch_validated_on_the_restored_state():
    """Keras runs the batch begun when the guard gave up; the epoch's validation, which comes
    before on_epoch_end, sees the restored state, not that batch's."""
    x, y = _data_with_bad_batch(bad=5, value=1e20)
    x[5 * 4 :] = 1e20  # every batch from the fifth on diverges
    model = _small()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    seen = []

    trained = []  # the weights after each batch

    class Validated(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            seen.append([np.array(w, copy=True) for w in self.model.get_weights()])

        def on_train_batch_end(self, batch, logs=None):
            trained.append([np.array(w, copy=True) for w in self.model.get_weights()])

    guard = lk.DivergenceGuard(max_restores=0, snapshot_every=1)
    with pytest.warns(RuntimeWarning, match="stopped training"):
        history = model.fit(
            x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[guard, Validated()],
            validation_data=(x[:8], y[:8]),
        )  # fmt: skip
    assert guard.gave_up and np.isfinite(history.history["val_loss"]).all()
    # the state restored is the newest checked good: the one the fifth batch (index 4, the
    # last of clean data) trained from, since the sixth diverged; validated and kept as it is
    final = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(trained[3], final, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(seen[0], final, strict=True))


def test_guard_restores_cuts_lr_and_continues():
    x, y = _data_with_bad_batch(bad=6, n=10)
    model = _small()
    sched = lk.schedule(S.constant(0.01))
    model.compile(optimizer=keras.optimizers.SGD(sched), loss="mse")
    guard = lk.DivergenceGuard(factor=0.5, snapshot_every=2, min_history=2, window=5)
    model.fit(x, y, batch_size=4, shuffle=False, verbose=0, epochs=2, callbacks=[guard])
    # the NaN batch comes once per epoch: two restores, LR scale 0.25, weights finite
    assert guard.restored_at == [7, 16]  # batch 7, run before the restore, is not counted
    assert sched.scale == 0.25 and guard.scale == 0.25
    # the same record as lrkit.torch.DivergenceGuard's: restores and events
    assert guard.restores == 2 and guard.events is guard.controller.events
    assert [e["action"] for e in guard.events] == ["restore", "restore"]
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    assert not guard.gave_up
    # without the guard the same run ends in NaN
    bare = _small()
    bare.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    bare.fit(x, y, batch_size=4, shuffle=False, verbose=0, epochs=1)
    assert not all(np.all(np.isfinite(w)) for w in bare.get_weights())


def test_a_divergence_in_an_epochs_last_batch_is_restored_before_validation():
    """The last batch's loss is judged when fit validates (not after): the validation loss of
    that epoch is the restored state's, finite, and a plateau controller on it sees no
    divergence (it counted a NaN/inf epoch and cut on top of the guard's cut)."""
    x, y = _data_with_bad_batch(bad=9, n=10)  # the NaN sample is in the last batch
    val = (x[:8], y[:8])
    model = _small()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    guard = lk.DivergenceGuard(snapshot_every=1)
    seen: list[float] = []

    class Record(keras.callbacks.Callback):  # the weights fit validates
        def on_test_begin(self, logs=None):
            seen.append(float(np.abs(self.model.get_weights()[0]).sum()))

    h = model.fit(x, y, batch_size=4, shuffle=False, verbose=0, epochs=1,
                  validation_data=val, callbacks=[guard, Record()])  # fmt: skip
    assert guard.restores == 1 and guard.restored_at == [10]
    assert np.isfinite(h.history["val_loss"][0]) and np.isfinite(seen).all()


class _BlowUp(keras.callbacks.Callback):
    """Multiplies the first kernel by 1e4 as batch ``batch`` of epoch ``epoch`` begins, and
    records each batch's logged loss (Keras' running mean over the epoch's batches)."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch, self.means = (epoch, batch), -1, {}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            kernel = self.model.layers[0].kernel
            kernel.assign(kernel * 1e4)

    def on_train_batch_end(self, batch, logs=None):
        self.means[self.epoch, batch] = float(logs["loss"])


def _regression(n):
    """``n`` samples of a linear regression and a two-layer model on them, SGD at 0.01."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 8)).astype("float32")
    y = (x @ rng.standard_normal((8, 1)).astype("float32")).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return x, y, model


@pytest.mark.parametrize("validate", [False, True])
@pytest.mark.parametrize("bad", [6, 7])
def test_a_divergence_judged_at_the_epochs_end_leaves_its_loss_out_of_the_logs(bad, validate):
    """A divergence in an epoch's last two batches is judged once Keras has read the epoch's
    training loss, which holds the diverged batches: the callbacks after the guard (a plateau
    controller on the loss, History) see the mean loss of the batches checked good before
    it, as after a restore within the epoch, and the plateau controller does not cut on top
    of the guard's cut."""
    x, y, model = _regression(256)
    blow = _BlowUp(epoch=1, batch=bad)
    guard = lk.DivergenceGuard(snapshot_every=2)
    plateau = lk.ReduceOnPlateau("loss", patience=0, factor=0.5)
    extra = {"validation_data": (x[:32], y[:32])} if validate else {}
    h = model.fit(x, y, batch_size=32, epochs=3, verbose=0, shuffle=False,
                  callbacks=[blow, guard, plateau], **extra)  # fmt: skip
    assert guard.restores == 1 and guard.scale == 0.5
    assert h.history["loss"][1] == blow.means[1, bad - 1]  # batches 0 .. bad - 1
    assert np.isfinite(h.history["loss"]).all() and plateau.controller.reductions == []


def test_an_epoch_with_no_batch_checked_good_logs_the_latest_loss_checked_good():
    """Two batches an epoch, the first of epoch 1 diverging: no batch of that epoch is
    checked good before the divergence, so its logged loss is the latest loss checked good
    (epoch 0's last batch, recovered from Keras' running mean), not the diverged one."""
    x, y, model = _regression(64)
    blow = _BlowUp(epoch=1, batch=0)
    guard = lk.DivergenceGuard(snapshot_every=1)
    plateau = lk.ReduceOnPlateau("loss", patience=0, factor=0.5)
    h = model.fit(x, y, batch_size=32, epochs=3, verbose=0, shuffle=False,
                  callbacks=[blow, guard, plateau])  # fmt: skip
    assert guard.restores == 1
    first, mean = blow.means[0, 0], blow.means[0, 1]
    assert h.history["loss"][1] == 2 * mean - first  # the loss of epoch 0's second batch
    assert np.isfinite(h.history["loss"]).all()  # what the plateau controller was given
    # a second fit whose first batch diverges: the latest loss checked good is the first
    # fit's (its last epoch's second batch)
    again = _BlowUp(epoch=0, batch=0)
    h2 = model.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False,
                   callbacks=[again, guard, plateau])  # fmt: skip
    assert guard.restores == 2
    assert h2.history["loss"][0] == 2 * blow.means[2, 1] - blow.means[2, 0]


def test_guard_detects_a_spike_through_the_running_mean():
    x, y = _data_with_bad_batch(bad=7, n=10, value=300.0)
    model = _small()
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    guard = lk.DivergenceGuard(spike_factor=10.0, min_history=3, window=10, snapshot_every=1)
    model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[guard])
    assert guard.restored_at == [8]
    assert guard.controller.events[0]["action"] == "restore"
    assert float(model.optimizer.learning_rate) == pytest.approx(5e-4)


@pytest.mark.parametrize("per", ["batch", "epoch"])
def test_lr_scheduler_callback(per, const_grad_model, mean_pred_loss):
    s = S.step(0.01, step_size=2, gamma=0.5)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.123), loss=mean_pred_loss)
    cb = lk.LRScheduler(s, per=per)
    h = _fit(model, 3, [cb], batches=2)  # 6 steps
    if per == "batch":
        used = [s(t) for t in range(6)]
        assert cb.step == 6
    else:
        used = [s(e) for e in range(3) for _ in range(2)]
    np.testing.assert_allclose(model.get_weights()[0], [[-sum(used)]], rtol=1e-5)
    assert h.history["learning_rate"][-1] == pytest.approx(used[-1])
    # resumed training continues from the optimizer's iterations
    if per == "batch":
        cb2 = lk.LRScheduler(s, per="batch")
        _fit(model, 1, [cb2], batches=1)
        assert cb2.last_lr == float(np.float32(s(6)))  # as the optimizer holds it


def test_lr_scheduler_initial_step_is_read_once_and_later_fits_count_on():
    """``initial_step`` starts the count in the first fit(); the same callback in a later
    fit() goes on from the batches it trained (it started over at each fit())."""
    x = np.random.default_rng(0).random((64, 4)).astype("float32")
    y = x.sum(1, keepdims=True)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # iterations 2: not the count
    s = S.linear(1.0, end_lr=0.0, total_steps=10)
    cb = lk.LRScheduler(s, initial_step=0)
    seen = []
    for _ in range(3):
        log = lk.LRLogger("batch")
        model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[cb, log])
        seen += [float(v) for v in log.lrs]
    np.testing.assert_allclose(seen, [float(np.float32(s(t))) for t in range(6)], rtol=1e-7)
    assert cb.step == 6


def test_lr_scheduler_refuses_a_feedback_that_is_no_controller_as_torch_does():
    """In the words of lrkit.torch.scheduler and lrkit.hf (feedback.check_controllers); a list
    is refused (a Keras optimizer has one learning rate)."""
    torch = pytest.importorskip("torch")
    import lrkit.torch as lt

    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    for bad in (Core, "plateau", 3):
        with pytest.raises(ValueError) as keras_error:
            lk.LRScheduler("cosine(0.1, 100)", feedback=bad)
        with pytest.raises(ValueError) as torch_error:
            lt.scheduler(opt, "cosine(0.1, 100)", feedback=bad)
        assert str(keras_error.value) == str(torch_error.value)
    with pytest.raises(ValueError, match=r"^feedback must be one lrkit.feedback controller"):
        lk.LRScheduler("cosine(0.1, 100)", feedback=[Core()])


def test_lr_scheduler_with_feedback_and_errors(const_grad_model, mean_pred_loss):
    fb = Core(mode="max", factor=0.5, patience=0)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=mean_pred_loss)
    cb = lk.LRScheduler(S.constant(0.01), per="epoch", feedback=fb, monitor="loss")
    _fit(model, 3, [cb])
    np.testing.assert_allclose(model.get_weights()[0], [[-(0.01 + 0.01 + 0.005)]], rtol=1e-5)
    scheduled = const_grad_model()
    scheduled.compile(
        optimizer=keras.optimizers.SGD(lk.schedule(S.constant(0.1))), loss=mean_pred_loss
    )
    with pytest.raises(ValueError, match="learning_rate"):
        _fit(scheduled, 1, [lk.LRScheduler(S.constant(0.01))])
    with pytest.raises(ValueError, match="per"):
        lk.LRScheduler(S.constant(0.01), per="step")


def test_a_restart_per_epoch_begins_the_schedule_again_at_the_next_epoch(
    const_grad_model, mean_pred_loss
):
    """RestartOnPlateau with per="epoch": after a restart at epoch end, the next epoch trains
    at the schedule's step 0 (its peak), as the PyTorch adapter's step-then-report does; it
    trained at step 1 (half the peak here), and a warmup's first step was always skipped."""
    from lrkit.feedback import RestartOnPlateau

    s = S.exponential(0.1, gamma=0.5)
    fb = RestartOnPlateau(mode="max", patience=1)  # the loss only falls: plateaus
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=mean_pred_loss)
    h = _fit(model, 8, [lk.LRScheduler(s, per="epoch", feedback=fb, monitor="loss")])
    assert fb.restarts == [3, 6]
    expected = [s(e - max([0, *(r for r in fb.restarts if r <= e)])) for e in range(8)]
    np.testing.assert_allclose(h.history["learning_rate"], expected, rtol=1e-6)
    assert h.history["learning_rate"][3] == pytest.approx(0.1)  # the peak again


def test_lr_logger_per_batch_and_logs(const_grad_model, mean_pred_loss):
    s = S.linear(0.01, end_lr=0.0, total_steps=10)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(lk.schedule(s)), loss=mean_pred_loss)
    log = lk.LRLogger(per="batch")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        h = _fit(model, 2, [log], batches=3)
    assert [i for i, _ in log.history] == list(range(6))
    np.testing.assert_array_equal(log.lrs, [np.float32(s(t)) for t in range(6)])
    # logs: the LR the epoch's last step used (steps 2 and 5), as Keras' LearningRateScheduler
    assert h.history["learning_rate"] == [float(np.float32(s(2))), float(np.float32(s(5)))]


def test_lr_scheduler_keeps_the_cuts_of_plateau(const_grad_model, mean_pred_loss):
    # float LR driven by LRScheduler; the plateau callback's cuts persist across its updates
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=mean_pred_loss)
    sched = lk.LRScheduler(S.constant(0.01), per="batch")
    plateau = lk.ReduceOnPlateau(**_never_improves())
    _fit(model, 4, [sched, plateau])
    used = [0.01, 0.01, 0.005, 0.0025]  # epoch 0 sets best, then each epoch halves
    np.testing.assert_allclose(model.get_weights()[0], [[-sum(used)]], rtol=1e-6)
    assert sched.last_lr == pytest.approx(0.0025)


class _LRAfterBatch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.lrs = []

    def on_train_batch_end(self, batch, logs=None):
        self.lrs.append(float(self.model.optimizer.learning_rate))


def _nan_below(threshold):
    def loss(y_true, y_pred):  # NaN once the prediction (= the kernel) drops below threshold
        return keras.ops.mean(keras.ops.where(y_pred < threshold, np.nan, y_pred))

    return loss


def test_guard_restore_keeps_a_later_plateau_cut_on_a_float_lr(const_grad_model):
    # kernel: 0 -> -0.01 -> -0.02; the 3rd batch is NaN. The snapshot (train begin) holds
    # LR 0.01, the plateau cut it to 0.005 after epoch 1: the guard restores the weights but
    # keeps the LR in use, then halves it (0.0025), instead of going back to 0.01 * 0.5.
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=_nan_below(-0.015))
    plateau = lk.ReduceOnPlateau(**_never_improves())
    guard = lk.DivergenceGuard(snapshot_every=1000, factor=0.5)
    probe = _LRAfterBatch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _fit(model, 3, [plateau, guard, probe])
    assert guard.restored_at == [3]
    # the NaN loss of the 3rd batch is judged at the epoch's end (after the probe read the LR)
    assert probe.lrs == pytest.approx([0.01, 0.01, 0.005])
    # at that epoch end the plateau (listed first) also saw the NaN epoch and halved the LR;
    # the guard then restored the weights, kept both plateau cuts and halved once more
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01 * 0.5 * 0.5 * 0.5)
    assert model.get_weights()[0][0, 0] == 0.0  # restored to the snapshot's weights
    assert int(model.optimizer.iterations) == 0


# ------------------------------------------------------------- one meaning of the logged LR
def _driver(kind, s):
    """(optimizer learning rate, callbacks placed before the logger) for one LR driver."""
    if kind == "keras_lrs":
        return 0.5, [keras.callbacks.LearningRateScheduler(lambda e: s(e))]
    if kind == "lk_schedule":
        return lk.schedule(s), []
    if kind == "lk_batch":
        return 0.5, [lk.LRScheduler(s, per="batch")]
    return 0.5, [lk.LRScheduler(s, per="epoch")]


@pytest.mark.parametrize("kind", ["keras_lrs", "lk_schedule", "lk_batch", "lk_epoch"])
def test_lr_logger_logs_the_lr_of_the_epochs_last_step_for_every_driver(
    kind, const_grad_model, mean_pred_loss
):
    """Whatever drives the LR, LRLogger's history holds the LR each step used (the kernel moves
    by exactly -lr per step, so they add up to -kernel) and logs["learning_rate"] the LR of
    the epoch's last step, the value Keras' own LearningRateScheduler logs."""
    s = S.step(0.01, step_size=5, gamma=0.5)
    per_epoch = kind in ("keras_lrs", "lk_epoch")
    used = [np.float32(s(e if per_epoch else 4 * e + b)) for e in range(3) for b in range(4)]
    lr, before = _driver(kind, s)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(lr), loss=mean_pred_loss)
    per_batch, per_epoch_log = lk.LRLogger(per="batch"), lk.LRLogger()
    h = _fit(model, 3, [*before, per_batch, per_epoch_log], batches=4)
    assert per_batch.history == [(t, float(u)) for t, u in enumerate(used)]
    np.testing.assert_allclose(model.get_weights()[0], [[-sum(map(float, used))]], rtol=1e-5)
    last = [float(used[4 * e + 3]) for e in range(3)]
    assert per_epoch_log.history == list(enumerate(last))
    assert h.history["learning_rate"] == last
    if kind == "keras_lrs":  # Keras' own callback alone logs the same values
        alone = const_grad_model()
        alone.compile(optimizer=keras.optimizers.SGD(0.5), loss=mean_pred_loss)
        h2 = _fit(alone, 3, [keras.callbacks.LearningRateScheduler(lambda e: s(e))], batches=4)
        assert h2.history["learning_rate"] == last


def test_a_long_epoch_keeps_the_logger_and_scheduler_state_small(const_grad_model, mean_pred_loss):
    """LRLogger("epoch") logs one LR an epoch: a long epoch does not keep a record per batch
    (nor do LRScheduler and LRLogger keep one finished batch index per batch), and the LR
    logged is the epoch's last step's."""
    sched = lk.LRScheduler(S.cosine(0.01, total_steps=2000))
    logger = lk.LRLogger()
    sizes = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch % 100 == 99:
                sizes.append((len(logger._records), len(logger._ends), len(sched._ends)))

    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=mean_pred_loss)
    h = _fit(model, 1, [sched, logger, Probe()], batches=1000)
    assert max(r for r, _, _ in sizes) <= 2 and max(max(e, f) for _, e, f in sizes) <= 257
    assert logger.history == [(0, float(np.float32(S.cosine(0.01, total_steps=2000)(999))))]
    assert h.history["learning_rate"] == [logger.history[0][1]]


def test_lr_logger_follows_a_plateau_cut_and_a_guard_restore(const_grad_model):
    """A cut of a lrkit schedule's scale mid-run and the iterations rewound by a restore are
    both seen: the per-batch history is the LR each step really used."""
    s = S.constant(0.01)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(lk.schedule(s)), loss=_nan_below(-0.035))
    guard = lk.DivergenceGuard(snapshot_every=1, factor=0.5)
    log = lk.LRLogger(per="batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _fit(model, 2, [guard, log], batches=3)
    # kernel -0.01 per step; batch 4 (kernel -0.04) is NaN, judged at the epoch end: the
    # guard restores the state batch 3 trained from (kernel -0.03, iterations 3) and halves
    assert guard.restored_at == [5]
    its = [t for t, _ in log.history]
    assert its == [0, 1, 2, 3, 4, 5]  # epoch 2 started from iterations 6, before the restore
    assert int(model.optimizer.iterations) == 3
    assert log.history[-1][1] == float(np.float32(0.01))
    assert float(model.optimizer.learning_rate) == float(np.float32(0.005))


class _OneBadBatch(keras.utils.PyDataset):
    """``n`` batches of ones; batch ``bad`` holds an inf (a non-finite loss) until
    :meth:`mend` is called."""

    def __init__(self, n, bad):
        super().__init__()
        self.n, self.bad = n, bad

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        x = np.full((1, 1), np.inf if i == self.bad else 1.0, "float32")
        return x, np.zeros((1, 1), "float32")

    def mend(self):
        self.bad = None


class _MendAtEpochEnd(keras.callbacks.Callback):
    def __init__(self, data):
        super().__init__()
        self.data = data

    def on_epoch_end(self, epoch, logs=None):
        self.data.mend()


@pytest.mark.parametrize("guard_first", [False, True])
def test_lr_scheduler_steps_back_with_a_guard_restore(
    guard_first, const_grad_model, mean_pred_loss
):
    """A restore rewinds the optimizer's iterations; a per-batch LRScheduler follows them, as a
    schedule inside the optimizer does: every step trains at schedule(iterations) x the cuts,
    whatever the callbacks' order, so the run sets the LRs a run resumed from the restored
    state would."""
    s = S.cosine(0.01, total_steps=40)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=mean_pred_loss)
    sched = lk.LRScheduler(s)
    guard = lk.DivergenceGuard(snapshot_every=1, factor=0.5)
    log = lk.LRLogger(per="batch")
    cbs = [guard, sched] if guard_first else [sched, guard]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        data = _OneBadBatch(6, bad=3)
        model.fit(
            data, epochs=2, shuffle=False, verbose=0, callbacks=[*cbs, log, _MendAtEpochEnd(data)]
        )
    assert guard.restores == 1
    its = int(model.optimizer.iterations)
    assert sched.step == its < len(log.history)  # some batches were taken back
    cut = False
    for t, lr in log.history:
        cut = cut or lr < float(np.float32(s(t))) * 0.75
        assert lr == float(np.float32((0.5 if cut else 1.0) * s(t))), (t, lr)
    # the last steps trained at consecutive iterations up to the last one
    assert [t for t, _ in log.history][-(its - 3) :] == list(range(3, its))


def test_guard_and_logger_keep_keras_async_dispatch():
    """No lrkit callback makes Keras wait for each step's result (that wait costs more than
    the callbacks' own work): their batch-end hooks only record a number (async-safe)."""
    from keras.src.callbacks.callback_list import CallbackList

    model = _small()
    ours = [lk.DivergenceGuard(), lk.LRLogger(per="batch"), lk.LRScheduler(S.constant(0.1))]
    cbs = CallbackList(ours, model=model)
    if not hasattr(cbs, "_async_train"):
        pytest.skip("this Keras has no async callback dispatch")
    assert cbs._async_train
    assert not CallbackList([_LRAfterBatch()], model=model)._async_train  # a plain one does


def test_guard_default_restores_the_promised_snapshot():
    """snapshot_every=50 (default): a snapshot of the state batch j trains from is taken once
    50 more good losses were judged, and kept once batch j's loss is judged good. Batch 55 is
    NaN: the state restored is the one batch 51 trained from (51 batches trained)."""
    x, y = _data_with_bad_batch(bad=55, n=60)
    a, b = _twins(lambda: keras.optimizers.Adam(lk.schedule(S.cosine(0.01, total_steps=100))))
    a.fit(x[: 51 * 4], y[: 51 * 4], batch_size=4, shuffle=False, verbose=0)
    guard = lk.DivergenceGuard(max_restores=0)
    assert guard.snapshot_every == 50 and guard.keep == 2
    c = lk.DivergenceGuard(0.25, window=7, min_history=3).controller
    assert (c.factor, c.window, c.min_history, c.max_restores) == (0.25, 7, 3, 3)
    with pytest.warns(RuntimeWarning, match="stopped training"):
        b.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[guard])
    assert guard.restored_at == [56]
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    for va, vb in zip(a.optimizer.variables, b.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(va.numpy()), np.asarray(vb.numpy()))


def test_guard_arguments_match_the_detector_and_the_torch_guard():
    from lrkit.feedback import DivergenceDetector

    g = lk.DivergenceGuard(quantile=0.5, window=20, min_history=5)
    assert isinstance(g.controller, DivergenceDetector)
    assert (g.controller.quantile, g.controller.window, g.controller.min_history) == (0.5, 20, 5)
    ready = DivergenceDetector(0.3)
    assert lk.DivergenceGuard(controller=ready).controller is ready
    with pytest.raises(ValueError, match="controller"):
        lk.DivergenceGuard(controller=Core())
    with pytest.raises(ValueError, match="quantile"):
        lk.DivergenceGuard(quantile=2.0)
    with pytest.raises(ValueError, match="keep"):
        lk.DivergenceGuard(keep=0)
    with pytest.raises(TypeError):
        lk.DivergenceGuard(0.5, 3)  # keyword-only after factor
    with pytest.raises(TypeError):
        lk.LRLogger("batch", "lr")


def test_reduce_on_plateau_arguments_are_the_controllers() -> None:
    cb = lk.ReduceOnPlateau("val_accuracy", factor=0.5, patience=3, cooldown=1)
    c = cb.controller
    assert (c.mode, c.factor, c.patience, c.cooldown, c.threshold) == ("max", 0.5, 3, 1, 1e-4)
    with pytest.raises(TypeError):
        lk.ReduceOnPlateau("val_loss", 0.5)  # type: ignore[misc]
    with pytest.raises(ValueError, match="factor"):
        lk.ReduceOnPlateau(factor=2.0)


@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="Keras' own torch backend emits numpy's copy-keyword DeprecationWarning",
)
def test_guard_and_logger_read_the_optimizer_without_numpy_deprecation_warnings():
    """A run under ``-W error::DeprecationWarning``: the guard's LR cut and the logger's
    step counter read Keras variables through their values."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x @ np.array([[1.0], [2.0], [3.0]])).astype("float32")
    x[43] = 1e30  # a batch whose loss is inf: the guard restores and cuts the LR
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    guard = lk.DivergenceGuard(snapshot_every=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False,
                  callbacks=[guard, lk.LRLogger("batch")])  # fmt: skip
    assert guard.restored_at and guard.scale < 1.0


@pytest.mark.parametrize("kind", ["scheduler", "float", "lrkit"])
def test_resume_with_a_restored_plateau_controller_is_exact(tmp_path, kind):
    """Saved after a plateau cut and resumed from ``load_model`` with the controller restored
    (``controller=`` after ``load_state_dict``): the same LRs and weights as one run."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype("float32")
    y = rng.standard_normal((64, 1)).astype("float32")
    cos = S.cosine(0.1, total_steps=64)
    plateau = dict(
        factor=0.5, patience=0, threshold=1e9, threshold_mode="abs"
    )  # cuts at every epoch end but one

    def compiled():
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        m.compile(keras.optimizers.SGD(lk.schedule(cos) if kind == "lrkit" else 0.1), "mse")
        return m

    def run(m, ctrl, first, last):
        log = lk.LRLogger("batch")
        cbs = [lk.ReduceOnPlateau("loss", controller=ctrl), log]
        if kind == "scheduler":
            cbs.insert(0, lk.LRScheduler(cos))
        m.fit(x, y, batch_size=16, epochs=last, initial_epoch=first, shuffle=False, verbose=0,
              callbacks=cbs)  # fmt: skip
        return log.history

    whole = compiled()
    ref = run(whole, Core("min", **plateau), 0, 5)
    part = compiled()
    ctrl = Core("min", **plateau)
    first = run(part, ctrl, 0, 2)
    assert ctrl.scale == 0.5  # cut at the end of epoch 2
    part.save(tmp_path / "m.keras")
    resumed = keras.saving.load_model(tmp_path / "m.keras")
    ctrl2 = Core("min", **plateau)
    ctrl2.load_state_dict(ctrl.state_dict())
    second = run(resumed, ctrl2, 2, 5)
    assert ctrl2.scale == 0.0625
    assert first + second == ref
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", [lk.ReduceOnPlateau, lk.ReduceLROnPlateau])
def test_a_mode_given_as_the_monitor_is_refused_naming_both(cls):
    """lrkit.feedback.ReduceOnPlateau takes its mode first; the Keras callbacks their metric,
    as Keras' own: "min" there would watch a metric of that name, never logged."""
    with pytest.raises(ValueError) as info:
        cls("min")
    assert str(info.value) == (
        "monitor must be the name of a logged metric (as Keras', the first argument here), "
        "got 'min', a mode: pass mode='min' and the metric as monitor= (e.g. 'val_loss')"
    )


def test_unknown_options_name_the_parameter_the_option_meant_and_the_options():
    with pytest.raises(TypeError) as info:
        lk.ReduceOnPlateau("val_loss", min_lr=1e-6)
    assert str(info.value) == (
        "min_lr is not an option of lrkit.keras.ReduceOnPlateau (use min_scale, a fraction of "
        "the learning rate: min_scale=min_lr / lr); options: controller, cooldown, factor, "
        "min_scale, mode, monitor, patience, threshold, threshold_mode, verbose"
    )
    with pytest.raises(TypeError, match=r"^min_delta is not an option .*threshold_mode=\"abs\""):
        lk.ReduceOnPlateau("val_loss", min_delta=0.1)
    with pytest.raises(TypeError) as info:
        lk.DivergenceGuard(check_grads=True)
    msg = str(info.value)
    assert msg.startswith("check_grads is not an option of lrkit.keras.DivergenceGuard (Keras ")
    assert msg.endswith(
        "; options: controller, factor, keep, max_restores, min_history, min_scale, quantile, "
        "snapshot_every, spike_factor, spike_floor, verbose, window"
    )
    with pytest.raises(TypeError, match=r"^foo is not an option of lrkit.keras.DivergenceGuard; "):
        lk.DivergenceGuard(0.5, foo=1)
    # the plateau options users reach for: the detector's hints, as it and the torch guard say
    with pytest.raises(TypeError) as info:
        lk.DivergenceGuard(min_lr=1e-5)
    assert str(info.value).startswith(
        "min_lr is not an option of lrkit.keras.DivergenceGuard (use min_scale, a fraction of "
        "the learning rate: min_scale=min_lr / lr); options: "
    )
    with pytest.raises(TypeError, match=r" \(a non-finite loss or a spike is acted on at "):
        lk.DivergenceGuard(patience=3)
    # Keras' own ReduceLROnPlateau ignores unknown keywords (Keras 2's epsilon too)
    with pytest.raises(TypeError) as info:
        lk.ReduceLROnPlateau(epsilon=1e-3)
    assert str(info.value) == (
        "epsilon is not an option of lrkit.keras.ReduceLROnPlateau (Keras 2's name of "
        "min_delta); options: cooldown, factor, min_delta, min_lr, mode, monitor, patience, "
        "verbose"
    )
    with pytest.raises(TypeError, match=r"^min_scale is not an option .*takes min_scale\); "):
        lk.ReduceLROnPlateau("val_loss", min_scale=0.1)


_MANY_STEPS_PER_CALL = pytest.mark.skipif(
    keras.backend.backend() == "torch", reason="Keras' torch backend runs one step per call"
)


@_MANY_STEPS_PER_CALL
def test_lr_scheduler_counts_every_batch_with_steps_per_execution(const_grad_model, mean_pred_loss):
    # Keras calls the callbacks once per 4 batches: the step still counts every batch
    s = S.linear(1.0, end_lr=0.0, total_steps=16)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.123), loss=mean_pred_loss, steps_per_execution=4)
    cb = lk.LRScheduler(s)
    log = lk.LRLogger("batch")
    h = _fit(model, 2, [cb, log], batches=6)  # calls of 4 and 2 batches per epoch
    assert cb.step == 12
    firsts = [0, 0, 0, 0, 4, 4, 6, 6, 6, 6, 10, 10]  # the LR is set at a call's first batch
    used = [s(t) for t in firsts]
    assert log.history == [(t, float(np.float32(lr))) for t, lr in enumerate(used)]
    np.testing.assert_allclose(model.get_weights()[0], [[-sum(used)]], rtol=1e-6)
    assert h.history["learning_rate"] == [float(np.float32(s(t))) for t in (4, 10)]
    assert lk.LRScheduler.async_safe and lk.LRLogger.async_safe  # Keras dispatches ahead


@_MANY_STEPS_PER_CALL
def test_lr_logger_records_every_step_of_a_call_with_steps_per_execution(
    const_grad_model, mean_pred_loss
):
    s = S.linear(0.01, end_lr=0.0, total_steps=12)
    model = const_grad_model()
    model.compile(
        optimizer=keras.optimizers.SGD(lk.schedule(s)),
        loss=mean_pred_loss,
        steps_per_execution=4,
    )
    log = lk.LRLogger("batch")
    h = _fit(model, 2, [log], batches=6)  # calls of 4 and 2 batches per epoch
    assert [i for i, _ in log.history] == list(range(12))
    np.testing.assert_array_equal(log.lrs, [np.float32(s(t)) for t in range(12)])
    assert h.history["learning_rate"] == [float(np.float32(s(5))), float(np.float32(s(11)))]


def test_lr_scheduler_monitor_must_be_a_metric_name():
    with pytest.raises(
        ValueError, match=r"^monitor must be the name of a logged metric, got None$"
    ):
        lk.LRScheduler(S.constant(0.1), monitor=None)


def test_plateau_scales_a_learning_rate_callable_as_keras_calls_it(
    const_grad_model, mean_pred_loss
):
    # Keras' optimizers call a learning-rate callable that is not a schedule with no arguments
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lambda: 0.01), loss=mean_pred_loss)
    cb = lk.ReduceOnPlateau(**_never_improves())
    log = lk.LRLogger("batch")
    _fit(model, 4, [cb, log])
    used = [0.01, 0.01, 0.005, 0.0025]
    assert isinstance(model.optimizer._learning_rate, lk.ScaledSchedule)
    np.testing.assert_allclose(log.lrs, used, rtol=1e-6)
    np.testing.assert_allclose(model.get_weights()[0], [[-sum(used)]], rtol=1e-6)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.00125, rel=1e-6)


def test_lr_logger_reads_a_learning_rate_callable(const_grad_model, mean_pred_loss):
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lambda: 0.05), loss=mean_pred_loss)
    log = lk.LRLogger("batch")
    h = _fit(model, 1, [log], batches=2)
    assert log.history == [(0, 0.05), (1, 0.05)]
    assert h.history["learning_rate"] == [0.05]


def _two_kernel_model(lr_a, lr_b, mean_pred_loss):
    """y = a(x) + b(x) with x = 1 and zero kernels; a MultiOptimizer trains kernel a with lr_a
    and kernel b with lr_b, each moving by exactly -lr per step."""
    if not hasattr(keras.optimizers, "MultiOptimizer"):
        pytest.skip("keras.optimizers.MultiOptimizer needs a newer Keras")
    inp = keras.Input((1,))
    a = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", name="a")
    b = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", name="b")
    model = keras.Model(inp, keras.layers.Add()([a(inp), b(inp)]))
    opts = keras.optimizers.OptimizerMap(
        keras.optimizers.SGD(lr_b), {"a/.*": keras.optimizers.SGD(lr_a)}
    )
    model.compile(optimizer=keras.optimizers.MultiOptimizer(opts), loss=mean_pred_loss)
    return model


def test_plateau_scales_every_optimizer_of_a_multi_optimizer(mean_pred_loss):
    model = _two_kernel_model(lk.schedule(S.constant(0.02)), 0.01, mean_pred_loss)
    cb = lk.ReduceOnPlateau(**_never_improves())
    _fit(model, 4, [cb])
    assert cb.controller.reductions == [1, 2, 3]
    scales = [1.0, 1.0, 0.5, 0.25]  # epoch 0 sets best; each later epoch halves
    kernels = {
        w.path.split("/")[0]: float(keras.ops.convert_to_numpy(w)[0, 0]) for w in model.weights
    }
    assert kernels["a"] == pytest.approx(-0.02 * sum(scales), rel=1e-6)
    assert kernels["b"] == pytest.approx(-0.01 * sum(scales), rel=1e-6)


@pytest.mark.parametrize("min_lr", [0.0, 0.005, 0.015])
def test_keras_plateau_logs_and_floors_each_optimizer_of_a_multi_optimizer_as_keras(
    min_lr, mean_pred_loss
):
    """Keras' own logs each optimizer's LR under ``learning_rate_<name>`` and floors each at
    ``min_lr`` (one at or below it is left): the LRs, the logs and the weights are Keras'."""
    runs = []
    for make in (keras.callbacks.ReduceLROnPlateau, lk.ReduceLROnPlateau):
        model = _two_kernel_model(0.02, 0.01, mean_pred_loss)
        opts = model.optimizer.optimizers
        cb = make(monitor="loss", mode="max", factor=0.5, patience=1, min_lr=min_lr)
        history = _fit(model, 6, [cb]).history
        runs.append(
            (
                history.pop("loss"),
                [history.pop(f"learning_rate_{o.name}") for o in opts],
                history,
                [float(keras.ops.convert_to_numpy(o.learning_rate)) for o in opts],
                [keras.ops.convert_to_numpy(w).tolist() for w in model.weights],
            )
        )
    assert runs[1] == runs[0]
    assert runs[0][2] == {}  # no other key, no "learning_rate"
    floors = {0.0: [0.02 / 32, 0.01 / 32], 0.005: [0.005, 0.005], 0.015: [0.015, 0.01]}
    assert runs[0][3] == pytest.approx(floors[min_lr], rel=1e-6)


def test_one_schedule_shared_by_two_optimizers_is_cut_once(mean_pred_loss):
    shared = lk.schedule(S.constant(0.02))
    model = _two_kernel_model(shared, shared, mean_pred_loss)
    cb = lk.ReduceOnPlateau(**_never_improves())
    _fit(model, 4, [cb])
    assert cb.controller.scale == shared.scale == 0.125  # was 0.125**2: each cut twice
    scales = [1.0, 1.0, 0.5, 0.25]
    kernels = {
        w.path.split("/")[0]: float(keras.ops.convert_to_numpy(w)[0, 0]) for w in model.weights
    }
    assert kernels["a"] == kernels["b"] == pytest.approx(-0.02 * sum(scales), rel=1e-6)


def test_guard_cuts_every_optimizer_of_a_multi_optimizer():
    if not hasattr(keras.optimizers, "MultiOptimizer"):
        pytest.skip("keras.optimizers.MultiOptimizer needs a newer Keras")
    x, y = _data_with_bad_batch(bad=6, n=10)
    keras.utils.set_random_seed(0)
    inp = keras.Input((3,))
    out = keras.layers.Add()([keras.layers.Dense(1, name="a")(inp), keras.layers.Dense(1)(inp)])
    model = keras.Model(inp, out)
    sched = lk.schedule(S.constant(0.02))
    opts = keras.optimizers.OptimizerMap(
        keras.optimizers.SGD(0.01), {"a/.*": keras.optimizers.SGD(sched)}
    )
    model.compile(optimizer=keras.optimizers.MultiOptimizer(opts), loss="mse")
    guard = lk.DivergenceGuard(factor=0.5, snapshot_every=2, min_history=2, window=5)
    model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[guard])
    assert guard.restored_at == [7] and guard.scale == 0.5
    assert sched.scale == 0.5  # the schedule of one optimizer and the float LR of the other
    floats = [o for o in model.optimizer.optimizers if o._learning_rate is not sched]
    assert [float(keras.ops.convert_to_numpy(o.learning_rate)) for o in floats] == [
        pytest.approx(0.005)
    ]
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


@pytest.mark.parametrize("make", [lambda: lk.LRScheduler(S.constant(0.1)), lambda: lk.LRLogger()])
def test_one_optimizer_callbacks_refuse_a_multi_optimizer_in_one_line(make, mean_pred_loss):
    model = _two_kernel_model(0.02, 0.01, mean_pred_loss)
    cb = make()
    name = type(cb).__name__
    one = rf"^{name} follows the learning rate of one optimizer; "
    with pytest.raises(ValueError, match=one + r".*\.MultiOptimizer of 2 optimizers \("):
        _fit(model, 1, [cb])


@pytest.mark.parametrize(
    "monitor, mode, expected",
    [
        ("val_auc", "auto", "max"),  # a metric that goes up: max, as Keras' callback reads it
        ("recall", "auto", "max"),
        ("val_mse", "auto", "min"),
        ("val_loss", "auto", "min"),
        ("val_accuracy", "auto", "max"),
        ("val_auc", "min", "min"),  # an explicit mode is kept
    ],
)
def test_plateau_auto_mode_reads_the_direction_of_the_compiled_metric(monitor, mode, expected):
    rng = np.random.default_rng(0)
    x = rng.random((16, 2)).astype("float32")
    y = (x[:, :1] > 0.5).astype("float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    metrics = [
        keras.metrics.AUC(name="auc"),
        keras.metrics.Recall(name="recall"),
        keras.metrics.MeanSquaredError(name="mse"),
        "accuracy",
    ]
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=metrics)
    cb = lk.ReduceOnPlateau(monitor, mode=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the metric is in the logs
        model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y), callbacks=[cb])
    assert cb.controller.mode == expected
    assert cb.controller.num_updates == 2


def test_settings_beside_a_ready_controller_are_refused_not_ignored():
    from lrkit.feedback import DivergenceDetector

    plateau = Core(factor=0.5, patience=1)
    for kwargs, named in (
        ({"factor": 0.2}, "factor"),
        ({"patience": 3, "cooldown": 1}, "cooldown, patience"),
        ({"mode": "max"}, "mode"),
    ):
        with pytest.raises(ValueError) as info:
            lk.ReduceOnPlateau("loss", controller=plateau, **kwargs)
        assert str(info.value) == (
            f"controller= holds its own settings; pass {named} to the controller you build, "
            "or leave controller out"
        )
    # the controller's own mode, or "auto", is no conflict
    assert lk.ReduceOnPlateau("loss", controller=plateau, mode="min").controller is plateau
    ready = DivergenceDetector(0.3, max_restores=5)
    for args, kwargs, named in (
        ((0.1,), {}, "factor"),
        ((0.5,), {}, "factor"),  # the default's value, given: still a setting ignored
        ((), {"factor": 0.5}, "factor"),
        ((), {"max_restores": 9}, "max_restores"),
    ):
        with pytest.raises(
            ValueError, match=rf"^controller= holds its own settings; pass {named} "
        ):
            lk.DivergenceGuard(*args, controller=ready, **kwargs)
    g = lk.DivergenceGuard(controller=ready, snapshot_every=5, keep=3)  # the guard's own
    assert g.controller is ready and (g.snapshot_every, g.keep) == (5, 3)
    assert (ready.factor, ready.max_restores) == (0.3, 5)
    with pytest.raises(ValueError, match=r"^controller is the controller of another Diverg"):
        lk.DivergenceGuard(controller=ready)  # a second live guard would take its cuts
    assert lk.DivergenceGuard(controller=copy.deepcopy(ready)).controller is not ready
    with pytest.raises(ValueError, match=r"^feedback holds the controller of a live Divergence"):
        lk.LRScheduler(S.constant(0.1), feedback=ready)  # its reports: the guard's checks
    fed = DivergenceDetector()
    scheduler = lk.LRScheduler(S.constant(0.1), feedback=fed)  # the other order: refused too
    with pytest.raises(ValueError, match=r"^controller is in the feedback of a live LRSched"):
        lk.DivergenceGuard(controller=fed)
    assert scheduler.feedback is fed
    scheduler.feedback = None  # let go of: a guard may take it
    lk.DivergenceGuard(controller=fed)
    later = lk.LRScheduler(S.constant(0.1))
    later.feedback = DivergenceDetector()
    guarded = lk.DivergenceGuard(controller=later.feedback)  # assigned, then trained: refused
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.zeros((4, 2), "float32")
    with pytest.raises(ValueError, match=r"^feedback holds the controller of a live Divergence"):
        model.fit(x, x[:, :1], epochs=1, verbose=0, callbacks=[later])
    assert guarded.controller is later.feedback
    with pytest.raises(ValueError, match=r"^controller must be a lrkit.feedback.Divergence"):
        lk.DivergenceGuard(controller=Core(), factor=0.3)  # the type first, not "beside"


def test_both_guards_keep_the_same_record_under_the_same_names():
    torch = pytest.importorskip("torch")
    import lrkit.torch as lt

    record = ("controller", "keep", "snapshot_every", "num_checks", "restores", "restored_at",
              "events", "scale", "gave_up", "state_dict", "load_state_dict")  # fmt: skip
    model = torch.nn.Linear(2, 1)
    torch_guard = lt.DivergenceGuard(model, optimizer=torch.optim.SGD(model.parameters()), keep=3)
    keras_guard = lk.DivergenceGuard(keep=3)
    for guard in (torch_guard, keras_guard):
        missing = [name for name in record if not hasattr(guard, name)]
        assert missing == [], type(guard).__module__
        assert (guard.keep, guard.num_checks, guard.restored_at, guard.gave_up) == (3, 0, [], False)


def _against(who: str, arg: str, monitor: str, mode: str) -> str:
    """The warning for a controller of ``mode`` on a metric that goes the other way."""
    other = "max" if mode == "min" else "min"
    return (
        f"{who}: {monitor!r} is a metric to {other}imize but the {arg} has mode={mode!r}: it "
        f"would cut the learning rate while the metric improves; build the controller with "
        f"mode={other!r}"
    )


def _binary_task() -> tuple[Any, Any, Any]:
    """16 samples of 2 features, a sigmoid unit compiled with an accuracy metric."""
    rng = np.random.default_rng(0)
    x = rng.random((16, 2)).astype("float32")
    y = (x[:, :1] > 0.5).astype("float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    return x, y, model


@pytest.mark.parametrize(
    "monitor, controller_mode, warns",
    [
        ("val_accuracy", "min", True),  # the controller's default mode on an accuracy
        ("val_accuracy", "max", False),
        ("val_loss", "min", False),
        ("val_loss", "max", True),
    ],
)
def test_a_ready_controller_against_the_metrics_direction_warns(monitor, controller_mode, warns):
    x, y, model = _binary_task()
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    ctl = Core(controller_mode)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            validation_data=(x, y),
            callbacks=[lk.ReduceOnPlateau(monitor, controller=ctl)],
        )
    said = [str(w.message) for w in seen if "controller= has mode" in str(w.message)]
    keep = f" (or pass mode={controller_mode!r} here to keep it)"
    want = _against("ReduceOnPlateau", "controller=", monitor, controller_mode) + keep
    assert said == ([want] if warns else [])
    assert ctl.mode == controller_mode  # never changed behind the user's back
    with warnings.catch_warnings():  # the mode given explicitly: the user's choice, no warning
        warnings.simplefilter("error", RuntimeWarning)
        cb = lk.ReduceOnPlateau(monitor, controller=Core(controller_mode), mode=controller_mode)
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y), callbacks=[cb])


@pytest.mark.parametrize(
    ("monitor", "controller_mode", "warns"),
    [("val_accuracy", "min", True), ("val_accuracy", "max", False), ("val_loss", "max", True)],
)
def test_lr_scheduler_feedback_against_the_metrics_direction_warns(monitor, controller_mode, warns):
    """As ``lk.ReduceOnPlateau`` warns: a feedback that minimises an accuracy would cut the LR
    while it improves (also inside a chain)."""
    from lrkit.feedback import RestartOnPlateau

    x, y, model = _binary_task()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    for feedback in (Core(controller_mode), RestartOnPlateau(controller_mode) & Core("max")):
        cb = lk.LRScheduler(S.constant(0.1), feedback=feedback, monitor=monitor)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            for _ in range(2):  # said once
                model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y), callbacks=[cb])
        said = [str(w.message) for w in seen if "feedback= has mode" in str(w.message)]
        want = _against("LRScheduler", "feedback=", monitor, controller_mode)
        assert said == ([want] if warns else [])


@pytest.mark.parametrize("distributed", [False, True])
def test_lr_scheduler_writes_are_exact_and_leave_a_usable_optimizer(
    distributed, tmp_path, const_grad_model, mean_pred_loss
):
    """The per-batch write (a host scalar on the JAX backend, the public assign under a
    keras.distribution or on other backends) is the float32 of the schedule's value; the
    optimizer is then saved, reloaded and trained on without the callback as usual."""
    if distributed and keras.backend.backend() != "jax":
        pytest.skip("keras.distribution is for the JAX backend")
    s = S.cosine(0.01, total_steps=8)
    scope = None
    if distributed:
        dist = keras.distribution.DataParallel(devices=keras.distribution.list_devices()[:1])
        scope = keras.distribution.distribution()
        keras.distribution.set_distribution(dist)
    try:
        model = const_grad_model()
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=mean_pred_loss)
        cb = lk.LRScheduler(s)
        _fit(model, 2, [cb], batches=3)
        used = [np.float32(s(t)) for t in range(6)]
        np.testing.assert_allclose(model.get_weights()[0], [[-sum(map(float, used))]], rtol=1e-6)
        assert np.float32(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == used[-1]
        path = str(tmp_path / "m.keras")
        model.save(path)
        back = keras.saving.load_model(path, custom_objects={"_mean_pred_loss": mean_pred_loss})
        assert np.float32(keras.ops.convert_to_numpy(back.optimizer.learning_rate)) == used[-1]
        before = float(model.get_weights()[0][0, 0])
        _fit(model, 1, [], batches=2)  # no callback: the last LR set stays in effect
        after = float(model.get_weights()[0][0, 0])
        assert after == pytest.approx(before - 2 * float(used[-1]), rel=1e-6)
    finally:
        if distributed:
            keras.distribution.set_distribution(scope)


class _NeverImproves(keras.callbacks.Callback):
    """A val_loss that never improves: a plateau cut at every epoch after the first."""

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = 1.0


def test_a_second_fit_carries_the_cuts_without_applying_them_twice():
    """The cuts stay with the optimizer (its multiplier, as a schedule's scale): a second fit
    with the restored controller does not apply them again, a fit without a plateau callback
    keeps them."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x.sum(1, keepdims=True)
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    m.compile(keras.optimizers.SGD(0.1), "mse")
    sched = S.constant(0.01)
    first = lk.ReduceOnPlateau("val_loss", factor=0.5, patience=0)
    m.fit(x, y, epochs=2, verbose=0, callbacks=[_NeverImproves(), lk.LRScheduler(sched), first])
    assert first.controller.scale == 0.5
    # the resume recipe, in the same process: a new callback with the restored controller
    ctrl = Core("min", factor=0.5, patience=0)
    ctrl.load_state_dict(first.controller.state_dict())
    log = lk.LRLogger("epoch")
    cbs = [
        _NeverImproves(),
        lk.LRScheduler(sched),
        lk.ReduceOnPlateau("val_loss", controller=ctrl),
        log,
    ]
    m.fit(x, y, epochs=3, initial_epoch=2, verbose=0, callbacks=cbs)
    assert log.history[0][1] == np.float32(0.01 * 0.5)  # not 0.01 * 0.5 * 0.5
    assert ctrl.scale == 0.25  # cut again at the end of that epoch
    # and a fit without a plateau callback runs at the schedule times the cuts made so far
    log = lk.LRLogger("epoch")
    m.fit(x, y, epochs=4, initial_epoch=3, verbose=0, callbacks=[lk.LRScheduler(sched), log])
    assert log.history[0][1] == np.float32(0.01 * 0.25)


def test_scheduler_and_logger_with_gradient_accumulation_count_batches():
    # Keras' iterations is then a tensor (updates); a schedule in the optimizer is evaluated
    # at the batches trained, and so are these callbacks
    x = np.random.default_rng(0).random((64, 4)).astype("float32")
    y = x.sum(1, keepdims=True)
    sched = S.linear(0.01, end_lr=0.001, total_steps=8)
    for callbacks in ([lk.LRScheduler(sched)], []):
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        lr = 0.1 if callbacks else lk.schedule(sched)
        m.compile(keras.optimizers.SGD(lr, gradient_accumulation_steps=2), "mse")
        log = lk.LRLogger("batch")
        m.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[*callbacks, log])
        assert [i for i, _ in log.history] == list(range(8))
        np.testing.assert_array_equal(
            [v for _, v in log.history], sched.values(np.arange(8)).astype(np.float32)
        )


@pytest.mark.parametrize("spe", [1, 3])
def test_data_of_unknown_length_keeps_the_scheduler_and_logger_on_the_steps_that_ran(spe):
    """Data without a length (an IterableDataset): Keras' JAX loop begins one batch more
    than it runs and reports a last partial call as full; the step count, the logged LRs
    and the LR logged per epoch are those of the steps that ran."""
    torch = pytest.importorskip("torch")
    if spe > 1 and keras.backend.backend() == "torch":
        pytest.skip("steps_per_execution must be 1 with the PyTorch backend")

    class Five(torch.utils.data.IterableDataset):  # type: ignore[misc]
        def __iter__(self):  # type: ignore[no-untyped-def]
            for _ in range(5):
                yield np.ones((4, 1), "float32"), np.zeros((4, 1), "float32")

    data = torch.utils.data.DataLoader(Five(), batch_size=None)
    sched = S.cosine(0.1, total_steps=40)
    for use_logger in (False, True):
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
        if use_logger:
            opt = keras.optimizers.SGD(lk.schedule(sched))
            cb: Any = lk.LRLogger("batch")
        else:
            opt = keras.optimizers.SGD(0.1)
            cb = lk.LRScheduler(sched)
        model.compile(optimizer=opt, loss=lambda yt, yp: keras.ops.mean(yp),
                      steps_per_execution=spe)  # fmt: skip
        h = model.fit(data, epochs=2, verbose=0, callbacks=[cb])
        assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 10
        if use_logger:
            assert [it for it, _ in cb.history] == list(range(10))
            assert cb.lrs.tolist() == [float(np.float32(sched(t))) for t in range(10)]
        else:
            assert cb.step == 10
            assert h.history["learning_rate"] == [float(np.float32(sched(t))) for t in (4, 9)]


def test_guard_refuses_a_factor_of_zero_or_less_and_keeps_its_sentinel():
    for bad in (0.0, 0, -0.5):
        with pytest.raises(ValueError, match=r"^factor must be in \(0\.0, 1\.0\), got "):
            lk.DivergenceGuard(bad)
    assert lk.DivergenceGuard().controller.factor == 0.5  # the default, not given
    ready = lk.DivergenceGuard(0.25).controller
    with pytest.raises(ValueError, match="factor"):  # given beside a ready controller
        lk.DivergenceGuard(0.5, controller=ready)


@pytest.mark.parametrize("order", ["scheduler_first", "backup_first"])
def test_lrscheduler_per_batch_resumes_with_backup_and_restore_in_any_order(order, tmp_path):
    """keras.callbacks.BackupAndRestore restores ``iterations`` in its on_train_begin; the
    scheduler reads the step after every callback's on_train_begin, so the resumed run
    continues the schedule (it restarted the warmup when listed first)."""
    sched = S.with_warmup(S.cosine(0.1, total_steps=40), warmup_steps=7)
    rs = np.random.RandomState(0)
    x, y = rs.rand(64, 4).astype("float32"), rs.rand(64, 1).astype("float32")
    seen: list[tuple[int, float]] = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            opt = self.model.optimizer
            seen.append((int(opt.iterations) - 1, float(np.asarray(opt.learning_rate))))

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    def run(extra):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
        pair = [lk.LRScheduler(sched), backup]
        pair = pair if order == "scheduler_first" else pair[::-1]
        model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[*pair, Record(), *extra])

    with pytest.raises(RuntimeError, match="interrupted"):
        run([Interrupt()])
    assert [k for k, _ in seen] == list(range(8))
    seen.clear()
    run([])
    assert [k for k, _ in seen] == list(range(8, 16))
    want = sched.values(np.arange(16)).astype(np.float32)
    assert [np.float32(v) for _, v in seen] == [want[k] for k, _ in seen]


def test_guard_resumes_from_the_backup_in_either_order(tmp_path):
    """keras.callbacks.BackupAndRestore loads a resumed run's state in its on_train_begin; the
    guard's first snapshot is taken when the first epoch begins, so a divergence in the
    resumed epoch goes back to the loaded state (iterations 20), not to the fresh weights the
    guard would have copied before the load had it been listed first."""
    x = np.random.default_rng(0).standard_normal((40, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    bad = x.copy()
    bad[3 * 4] = np.nan  # batch 3 of the resumed epoch

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    def run(data, epochs, callbacks):
        model = _small()
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")
        model.fit(
            data, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks
        )
        return model

    results = []
    for order in ("guard_first", "backup_first"):
        path = str(tmp_path / order)
        with pytest.raises(RuntimeError, match="interrupted"):
            run(x, 5, [keras.callbacks.BackupAndRestore(path), Interrupt()])
        guard = lk.DivergenceGuard(snapshot_every=50)
        pair = [guard, keras.callbacks.BackupAndRestore(path)]
        model = run(bad, 3, pair if order == "guard_first" else pair[::-1])
        # batch 3's NaN is judged as batch 5 begins: back to the loaded state, then batches
        # 5 to 9 train from it
        assert guard.restored_at == [4]
        assert int(model.optimizer.iterations) == 25
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_verbose_is_0_1_or_a_bool_in_every_callback() -> None:
    makers = [
        lambda v: lk.LRScheduler(S.constant(0.1), verbose=v),
        lambda v: lk.ReduceOnPlateau(verbose=v),
        lambda v: lk.DivergenceGuard(verbose=v),
    ]
    for make in makers:
        assert make(True).verbose == 1 and make(0).verbose == 0
        for bad in ("0", 2, -1, 0.5, None):
            with pytest.raises(ValueError, match=r"^verbose must be an integer in \[0, 1\]"):
                make(bad)


def test_a_backup_resume_with_a_restored_plateau_controller_applies_its_cut_once(tmp_path):
    """A run resumed by keras.callbacks.BackupAndRestore loads the optimizer's multiplier (the
    cut saved with the backup); a restored plateau controller passed beside it does not cut
    the learning rate a second time, whatever callback first touched the multiplier."""
    sched = S.cosine(0.1, total_steps=64)
    x = np.random.default_rng(0).standard_normal((32, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    metric = [1.0, 2.0, 0.5, 0.4]  # one cut (patience=0) at the end of epoch 1

    class Metric(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["m"] = metric[epoch]

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    def model():
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        return m

    path = str(tmp_path / "backup")
    plateau = lk.ReduceOnPlateau("m", mode="min", factor=0.5, patience=0)
    first_log = lk.LRLogger("batch")
    cbs = [Metric(), lk.LRScheduler(sched), plateau, keras.callbacks.BackupAndRestore(path)]
    with pytest.raises(RuntimeError, match="interrupted"):
        model().fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0,
                    callbacks=[*cbs, first_log, Interrupt()])  # fmt: skip
    assert plateau.scale == 0.5
    restored = Core("min", factor=0.5, patience=0)
    restored.load_state_dict(plateau.controller.state_dict())
    log = lk.LRLogger("batch")
    resumed = model()
    cbs = [
        Metric(),
        lk.LRScheduler(sched),
        keras.callbacks.BackupAndRestore(path),
        lk.ReduceOnPlateau("m", controller=restored),
    ]
    resumed.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0, callbacks=[*cbs, log])
    assert [it for it, _ in log.history] == list(range(8, 16))
    want = [float(np.float32(sched(t) * 0.5)) for t in range(8, 16)]
    assert log.lrs.tolist() == want


def test_keras_named_plateau_keeps_a_learning_rate_another_callback_logged(
    const_grad_model, mean_pred_loss
):
    """ReduceLROnPlateau writes the epoch's learning rate into the logs only where no callback
    before it has written one; without such a callback it logs the optimizer's LR."""

    class Writes(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["learning_rate"] = 100.0 + epoch

    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=mean_pred_loss)
    plateau = lk.ReduceLROnPlateau("loss", mode="max", factor=0.5, patience=1)
    h = _fit(model, 3, [Writes(), plateau])
    assert h.history["learning_rate"] == [100.0, 101.0, 102.0]
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=mean_pred_loss)
    plateau = lk.ReduceLROnPlateau("loss", mode="max", factor=0.5, patience=1)
    h = _fit(model, 3, [plateau])
    assert h.history["learning_rate"] == [0.5, 0.5, 0.25]


def test_guard_detects_a_spike_the_running_mean_of_a_long_epoch_dilutes():
    """Late in an epoch Keras' running-mean loss hardly moves for one bad batch; the guard
    judges the batch's own loss, recovered from the running mean, and restores."""
    x, y = _data_with_bad_batch(bad=30, n=34, value=12.0)
    model = _small()
    model.set_weights([np.full((3, 1), 0.5, "float32"), np.zeros(1, "float32")])  # any backend
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    guard = lk.DivergenceGuard(spike_factor=10.0, min_history=3, window=10, snapshot_every=1)
    model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[guard])
    assert guard.restored_at == [31]
    assert [e["action"] for e in guard.events] == ["restore"]
    assert guard.events[0]["loss"] == pytest.approx(77.08, abs=0.01)  # not the epoch's mean


def test_guard_counts_good_checks_for_the_next_snapshot_from_the_restore():
    """After a restore the next snapshot is due ``snapshot_every`` good checks later: the
    count of good checks (state_dict()["good"]) starts again at the restore."""
    x, y = _data_with_bad_batch(bad=6, n=10)
    model = _small()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    guard = lk.DivergenceGuard(snapshot_every=50)
    model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[guard])
    assert guard.restored_at == [7]
    assert guard.state_dict()["good"] == 2  # batches 8 and 9, checked after the restore


def test_guard_state_dict_returns_a_loaded_state_before_the_next_fit():
    """A guard loaded from a state_dict() hands the same state back until it trains: saving
    it again before the next fit() keeps when the next snapshot is due."""
    state = {"controller": lk.DivergenceGuard().controller.state_dict(), "good": 7}
    guard = lk.DivergenceGuard()
    guard.load_state_dict(state)
    assert guard.state_dict() == state


def test_a_backup_resume_leaves_a_feedback_on_another_metric_its_own_state(tmp_path):
    """The feedback= state saved with a BackupAndRestore backup belongs to the LRScheduler
    that monitored its metric: a resumed LRScheduler whose feedback watches another metric
    goes on from its own (fresh) state, quietly."""
    sched = S.cosine(0.1, total_steps=64)
    x = np.random.default_rng(0).standard_normal((32, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)

    class Flat(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["m"] = logs["n"] = 1.0  # never improves: a cut at every epoch but the first

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    def fit(callbacks):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0, callbacks=callbacks)

    path = str(tmp_path / "backup")
    first = lk.LRScheduler(sched, feedback=Core("min", factor=0.5, patience=0), monitor="m")
    with pytest.raises(RuntimeError, match="interrupted"):
        fit([Flat(), first, keras.callbacks.BackupAndRestore(path), Interrupt()])
    assert first.feedback.scale == 0.5
    other = lk.LRScheduler(sched, feedback=Core("min", factor=0.5, patience=0), monitor="n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fit([Flat(), other, keras.callbacks.BackupAndRestore(path)])
    # its own state: epoch 2 sets its best value, epoch 3 cuts once
    assert other.feedback.scale == 0.5
    assert other.feedback.num_updates == 2


def test_a_guard_that_gave_up_guards_the_next_fit_again():
    """gave_up describes one fit(): the next fit() of the same guard judges its batches again
    and restores a divergence."""
    x, y = _data_with_bad_batch(bad=5)
    model = _small()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    guard = lk.DivergenceGuard(max_restores=1, snapshot_every=1)
    with pytest.warns(RuntimeWarning, match="stopped training"):
        model.fit(x, y, batch_size=4, shuffle=False, verbose=0, epochs=2, callbacks=[guard])
    assert guard.gave_up and [e["action"] for e in guard.events] == ["restore", "give_up"]
    clean, _ = _data_with_bad_batch(bad=5, value=0.0)
    model.fit(clean, y, batch_size=4, shuffle=False, verbose=0, callbacks=[guard])
    assert not guard.gave_up
    with pytest.warns(RuntimeWarning, match="stopped training"):
        model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[guard])
    assert guard.gave_up and [e["action"] for e in guard.events] == [
        "restore",
        "give_up",
        "give_up",
    ]
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_lr_logger_under_a_loss_scale_optimizer_logs_the_steps_it_applied():
    """mixed_float16: the steps a LossScaleOptimizer skips (overflowing gradients) use no
    learning rate and do not move the schedule's step; the logger's steps are those applied,
    and the epoch's LR is the one its last applied step used."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(256, 8)).astype("float32")
        y = rng.normal(size=(256, 1)).astype("float32")
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1, dtype="float32")]
        )
        sched = S.linear(0.1, end_lr=0.0, total_steps=40)
        opt = keras.optimizers.SGD(lk.schedule(sched))
        model.compile(keras.optimizers.LossScaleOptimizer(opt, initial_scale=2.0**30), "mse")
        per_epoch, per_batch = lk.LRLogger("epoch"), lk.LRLogger("batch")
        counts = []

        class Count(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):  # type: ignore[no-untyped-def]
                counts.append(int(keras.ops.convert_to_numpy(opt.iterations)))

        h = model.fit(x, y, batch_size=32, epochs=3, verbose=0,
                      callbacks=[per_epoch, Count(), per_batch])  # fmt: skip
    finally:
        keras.mixed_precision.set_global_policy("float32")
    applied = counts[-1]
    assert 0 < applied < 24  # steps were skipped
    assert [it for it, _ in per_batch.history] == list(range(applied))
    assert per_batch.lrs.tolist() == [float(np.float32(sched(t))) for t in range(applied)]
    ran = [e for e, (a, b) in enumerate(zip([0, *counts], counts)) if b > a]
    assert [e for e, _ in per_epoch.history] == ran
    assert per_epoch.lrs.tolist() == [float(np.float32(sched(counts[e] - 1))) for e in ran]
    assert h.history["learning_rate"][-1] == float(np.float32(sched(applied - 1)))


@pytest.mark.parametrize("per", ["batch", "epoch"])
@pytest.mark.parametrize("in_optimizer", [False, True])
def test_lr_logger_under_a_loss_scale_optimizer_after_a_guard_restore_logs_as_without_it(
    per, in_optimizer
):
    """A LossScaleOptimizer that skips no step, a DivergenceGuard that restores a state: the
    logger's steps and LRs are those of the same run without the LossScaleOptimizer (the
    counter went back with the restore: no step was skipped). ``in_optimizer``: the schedule
    is in the optimizer and the guard snapshots once, so nothing reads the model per batch."""
    sched = S.linear(0.01, end_lr=0.0, total_steps=100)

    def run(scaled: bool) -> list[tuple[int, float]]:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(320, 4)).astype("float32")
        y = (x @ np.ones((4, 1))).astype("float32")
        y[32 * 7 : 32 * 8] *= 1e4  # batch 7: a loss spike
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        opt: Any = keras.optimizers.SGD(lk.schedule(sched) if in_optimizer else 0.01)
        if scaled:
            opt = keras.optimizers.LossScaleOptimizer(opt, initial_scale=1.0)
        model.compile(opt, "mse")
        log = lk.LRLogger(per)
        guard = lk.DivergenceGuard(
            snapshot_every=50 if in_optimizer else 1, min_history=3, window=5
        )
        drivers = [] if in_optimizer else [lk.LRScheduler(sched)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False,
                      callbacks=[*drivers, guard, log])  # fmt: skip
        assert [e["action"] for e in guard.events] == ["restore"]
        return log.history

    assert run(True) == run(False)


@pytest.mark.parametrize(
    ("monitor", "expected"),
    [("fmeasure", "max"), ("fmeasure_macro", "max"), ("val_fmeasure", "max"), ("val_f1", "min")],
)
def test_plateau_auto_mode_of_a_metric_keras_does_not_know_follows_its_name(monitor, expected):
    """mode="auto" on a metric name Keras does not know: "max" for a name starting with
    "fmeasure" (or holding "acc") after Keras' "val_" prefix, "min" otherwise."""
    assert lk.ReduceOnPlateau(monitor).controller.mode == expected
    assert lk.ReduceLROnPlateau(monitor).controller.mode == expected


def test_a_guard_that_gives_up_stops_a_fit_of_several_epochs_in_the_restored_state():
    """Giving up sets ``model.stop_training``: a fit of three epochs ends after the first,
    in the last good state (that of a model trained on the batches before the divergence)."""
    x, y = _data_with_bad_batch(bad=5)
    a, b = _twins(lambda: keras.optimizers.SGD(0.01))
    a.fit(x[:16], y[:16], batch_size=4, shuffle=False, verbose=0)
    guard = lk.DivergenceGuard(max_restores=0, snapshot_every=1)
    with pytest.warns(RuntimeWarning, match="stopped training"):
        hist = b.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0, callbacks=[guard])
    assert guard.gave_up and b.stop_training is True
    assert hist.epoch == [0]
    assert int(np.asarray(b.optimizer.iterations)) == 4
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_lr_logger_writes_the_epochs_lr_under_the_key_it_was_given(
    const_grad_model, mean_pred_loss
):
    """``key=`` names the entry of the epoch logs (and so of History) the logger writes."""
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.25), loss=mean_pred_loss)
    log = lk.LRLogger(key="lr_used")
    sched = lk.LRScheduler(S.constant(0.125), per="epoch")
    hist = _fit(model, 2, [sched, log])
    assert hist.history["lr_used"] == [0.125, 0.125]
    assert log.history == [(0, 0.125), (1, 0.125)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: lk.ReduceOnPlateau("loss"),
        lambda: lk.ReduceLROnPlateau("loss"),
        lambda: lk.LRScheduler("cosine(0.01, 100)"),
        lambda: lk.DivergenceGuard(),
        lambda: lk.LRLogger(),
    ],
)
def test_a_callback_reads_the_backends_values_without_numpys_deprecation_warning(make) -> None:
    # numpy 2 warns when Keras' convert_to_numpy hands it a torch tensor or a Keras variable
    # (np.array of an object whose __array__ takes no copy=): a user's fit under
    # -W error::DeprecationWarning must not fail in lrkit's callbacks
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x = np.random.default_rng(0).random((64, 8), dtype=np.float32)
    y = np.random.default_rng(1).random((64, 1), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[make()])


def test_keras_plateau_arguments_by_position_get_the_call_with_keywords() -> None:
    with pytest.raises(TypeError) as info:
        lk.ReduceLROnPlateau("val_loss", 0.2, 5)
    assert str(info.value) == (
        "lrkit.keras.ReduceLROnPlateau: takes 1 positional argument (monitor) but 3 were given; "
        "give the others by keyword, as in ReduceLROnPlateau('val_loss', factor=0.2, "
        "patience=5) (parameters: monitor, factor, patience, verbose, mode, min_delta, "
        "cooldown, min_lr)"
    )
    with pytest.raises(TypeError, match=r"as in ReduceOnPlateau\('loss', factor=0.5, mode='min'\)"):
        lk.ReduceOnPlateau("loss", 0.5, mode="min")
    made = lk.ReduceLROnPlateau("loss", factor=0.2, patience=5)  # the call shown works
    assert (made.monitor, made.min_lr) == ("loss", 0.0)


def test_one_controller_fed_by_two_callbacks_of_a_fit_is_refused_and_one_per_fit_is_not() -> None:
    class Metric(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs["val_loss"] = 1.0

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x, y = np.zeros((16, 2), np.float32), np.zeros((16, 1), np.float32)
    c = Core(factor=0.5, patience=0)
    both = [Metric(), lk.LRScheduler(S.constant(0.1), feedback=c),
            lk.ReduceOnPlateau("val_loss", controller=c)]  # fmt: skip
    with pytest.raises(ValueError, match=r"^controller: one ReduceOnPlateau is fed by two "
                       r"callbacks of this fit \(LRScheduler and ReduceOnPlateau\)"):  # fmt: skip
        model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=both)
    assert c.num_updates == 1  # the second callback refused before it fed the metric
    # the same controller in a new callback for each fit (a notebook cell run again): fed once
    # an epoch, as by one callback
    c = Core(factor=0.5, patience=0)
    for _ in range(2):
        model.fit(x, y, epochs=2, batch_size=16, verbose=0,
                  callbacks=[Metric(), lk.LRScheduler(S.constant(0.1), feedback=c)])  # fmt: skip
    assert c.num_updates == 4


@pytest.mark.parametrize("kind", ["plateau", "scheduler", "guard"])
def test_a_callback_kept_for_another_model_starts_as_it_was_given(
    kind, const_grad_model, mean_pred_loss
):
    """One callback list for the folds of a cross-validation: a new model does not take the
    last model's cuts and bookkeeping (as Keras' callbacks start afresh); the same model's
    next fit() goes on from them."""
    if kind == "plateau":
        cb = lk.ReduceOnPlateau(**_never_improves())
        controller = cb.controller
    elif kind == "scheduler":
        controller = Core(mode="max", factor=0.5, patience=0)
        cb = lk.LRScheduler(S.constant(0.01), per="epoch", feedback=controller, monitor="loss")
    else:
        cb = lk.DivergenceGuard()
        controller = cb.controller
    given = copy.deepcopy(controller.state_dict())

    def fold():
        model = const_grad_model()
        lr = 0.01 if kind == "scheduler" else lk.schedule(S.constant(0.01))
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss=mean_pred_loss)
        return model

    class Cut(keras.callbacks.Callback):  # a guard cuts on a divergence: one, made here
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                controller.load_state_dict({**controller.state_dict(), "scale": 0.25,
                                            "restores": 1})  # fmt: skip

    first = fold()
    _fit(first, 4, [cb, Cut()] if kind == "guard" else [cb])
    assert controller.scale < 1.0
    carried = controller.state_dict()
    _fit(first, 1, [cb])  # the same model: goes on from its cuts
    assert controller.scale <= carried["scale"]
    second = fold()
    log = lk.LRLogger()
    _fit(second, 1, [cb, log])  # another model: as given
    assert log.history[0][1] == pytest.approx(0.01, rel=1e-6)
    assert controller.scale == given["scale"] == 1.0
    if kind != "guard":
        assert controller.num_updates == 1  # the new model's one epoch, from the start
    else:
        assert controller.restores == 0


def test_the_lr_scheduler_logs_the_lr_as_the_optimizer_holds_it_and_refuses_wrappers(
    const_grad_model, mean_pred_loss
):
    s = S.with_warmup(S.cosine(0.05, total_steps=60), warmup_steps=8)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=mean_pred_loss)
    history = _fit(model, 3, [lk.LRScheduler(s)], batches=4)
    logged = history.history["learning_rate"]
    assert logged == [float(np.float32(s(step))) for step in (3, 7, 11)]  # each epoch's last
    with pytest.raises(ValueError, match=r"\(it wraps one: give that, its \.schedule\)$"):
        lk.LRScheduler(lk.schedule(s))
    decay = keras.optimizers.schedules.CosineDecay(0.05, decay_steps=60)
    with pytest.raises(ValueError, match=r"\(a keras object: Keras' own schedules go to its "):
        lk.LRScheduler(decay)


def test_a_controller_assigned_between_fits_is_kept_and_auto_mode_read_again_for_a_new_model(
    const_grad_model, mean_pred_loss
):
    """A controller assigned between two fit() calls is the state the next models start
    from; mode="auto" reads the next model's metric again; a fit() that raised, and a copy of
    the callback, do not carry the last model's cuts to a new one."""
    cb = lk.ReduceOnPlateau(monitor="auc", factor=0.5, patience=0)  # "min" by its name alone

    def model(metrics=()):
        m = const_grad_model()
        m.compile(optimizer=keras.optimizers.SGD(learning_rate=lk.schedule(S.constant(0.01))),
                  loss=mean_pred_loss, metrics=list(metrics))  # fmt: skip
        return m

    def first_lr(m, callbacks, epochs=1):
        log = lk.LRLogger()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (AUC of a constant target)
            _fit(m, epochs, [*callbacks, log])
        return log.history[0][1]

    first_lr(model([keras.metrics.AUC(name="auc")]), [cb])
    assert cb.controller.mode == "max"  # read off the compiled metric
    fresh = Core(mode="max", factor=0.5, patience=0)
    fresh.load_state_dict({**fresh.state_dict(), "scale": 0.125})
    cb.controller = fresh  # assigned by the user before the next model
    assert first_lr(model([keras.metrics.AUC(name="auc")]), [cb]) == pytest.approx(0.00125)
    assert first_lr(model(), [cb]) == pytest.approx(0.00125)  # the state given, again

    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("stopped")

    plateau = lk.ReduceOnPlateau(**_never_improves())
    with pytest.raises(RuntimeError, match="stopped"):
        _fit(model(), 3, [plateau, Boom()])  # cut once, then raised
    assert plateau.scale == 0.5
    twin = copy.copy(plateau)
    assert first_lr(model(), [plateau]) == pytest.approx(0.01)  # another model: as given
    assert first_lr(model(), [twin]) == pytest.approx(0.01)  # the copy too


@pytest.mark.parametrize("cls", [lk.ReduceOnPlateau, lk.ReduceLROnPlateau])
def test_an_empty_monitor_or_any_mode_as_the_monitor_is_refused(cls):
    with pytest.raises(ValueError) as info:
        cls("")
    assert str(info.value) == "monitor must be the name of a logged metric, got ''"
    for mode in ("max", "auto"):
        with pytest.raises(ValueError) as info:
            cls(mode)
        assert str(info.value).endswith(
            f"got {mode!r}, a mode: pass mode={mode!r} and the metric as monitor= (e.g. 'val_loss')"
        )


def _plateau_settings(cb):
    state = cb.controller.state_dict()
    return {k: state[k] for k in ("factor", "patience", "cooldown", "threshold", "threshold_mode")}


def test_keras_named_plateau_translates_keras_arguments_and_checks_them_by_their_names():
    assert _plateau_settings(lk.ReduceLROnPlateau("loss")) == dict(
        factor=0.1, patience=9, cooldown=0, threshold=1e-4, threshold_mode="abs"
    )
    given = lk.ReduceLROnPlateau("loss", factor=0.5, patience=3, cooldown=2, min_delta=0.5)
    assert _plateau_settings(given) == dict(
        factor=0.5, patience=2, cooldown=1, threshold=0.5, threshold_mode="abs"
    )
    for bad, message in [
        (dict(min_delta=-1.0), "min_delta must be >= 0 (allowed range: [0, inf)), got -1.0"),
        (dict(min_lr=-1.0), "min_lr must be >= 0 (allowed range: [0, inf)), got -1.0"),
        (dict(cooldown=1.5), "cooldown must be an integer >= 0 (allowed range: [0, inf)), got 1.5"),
        (dict(patience=-1), "patience must be an integer >= 0 (allowed range: [0, inf)), got -1"),
    ]:
        with pytest.raises(ValueError) as info:
            lk.ReduceLROnPlateau("loss", **bad)
        assert str(info.value) == message


def test_plateau_verbose_prints_a_line_at_each_cut_only(const_grad_model, mean_pred_loss, capsys):
    for verbose, printed in [
        (
            1,
            "\nEpoch 2: ReduceOnPlateau scaled the learning rate by 0.5 (scale 0.5)\n"
            "\nEpoch 3: ReduceOnPlateau scaled the learning rate by 0.5 (scale 0.25)\n",
        ),
        (0, ""),
    ]:
        model = const_grad_model()
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss=mean_pred_loss)
        _fit(model, 3, [lk.ReduceOnPlateau(**_never_improves(), verbose=verbose)])
        assert capsys.readouterr().out == printed


def test_guard_verbose_prints_the_restore_and_the_give_up_warning_counts_restores(capsys):
    x, y = _data_with_bad_batch(bad=6, n=10)
    for verbose, printed in [
        (
            1,
            "\nDivergenceGuard: loss nan at check 7 (the losses it judged, counted from 1 over "
            "all epochs and fit() calls): restored the last good state, learning-rate scale 0.5\n",
        ),
        (0, ""),
    ]:
        model = _small()
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        guard = lk.DivergenceGuard(snapshot_every=2, min_history=2, window=5, verbose=verbose)
        model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[guard])
        assert guard.restored_at == [7]
        assert capsys.readouterr().out == printed
    x, y = _data_with_bad_batch(bad=5)
    model = _small()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    guard = lk.DivergenceGuard(max_restores=1, snapshot_every=1)
    with pytest.warns(RuntimeWarning) as record:
        model.fit(x, y, batch_size=4, shuffle=False, verbose=0, epochs=2, callbacks=[guard])
    assert [str(w.message) for w in record if "DivergenceGuard" in str(w.message)] == [
        "DivergenceGuard: training diverged again after 1 restore(s); restored the last good "
        "state and stopped training"
    ]


def test_guard_load_state_dict_refuses_another_state_in_one_line():
    state = lk.DivergenceGuard().state_dict()
    guard = lk.DivergenceGuard()
    for bad, message in [
        (
            {"controller": state["controller"]},
            "state_dict must be a DivergenceGuard.state_dict() (keys 'controller', 'good'), "
            "got dict with keys ['controller']",
        ),
        (
            {**state, "extra": 1},
            "state_dict must be a DivergenceGuard.state_dict() (keys 'controller', 'good'), "
            "got dict with keys ['controller', 'extra', 'good']",
        ),
        (
            [state],
            "state_dict must be a DivergenceGuard.state_dict() (keys 'controller', 'good'), "
            "got list",
        ),
        (
            {**state, "good": -1},
            "state_dict['good'] must be an integer >= 0 (allowed range: [0, inf)), got -1",
        ),
    ]:
        with pytest.raises(ValueError) as info:
            guard.load_state_dict(bad)
        assert str(info.value) == message
    assert guard.state_dict() == state


def test_a_ready_controller_against_the_metric_warns_once_per_model():
    """The warning comes at the first fit() of each model: the same model's next fit() is
    quiet, another model's starts as the callback was given and says it again."""
    x, y, model = _binary_task()
    other = _binary_task()[2]
    cb = lk.ReduceOnPlateau("val_accuracy", controller=Core("min"))

    def warnings_of(m):
        m.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            m.fit(x, y, epochs=1, verbose=0, validation_data=(x, y), callbacks=[cb])
        return [str(w.message) for w in seen if "controller= has mode" in str(w.message)]

    want = _against("ReduceOnPlateau", "controller=", "val_accuracy", "min")
    want += " (or pass mode='min' here to keep it)"
    assert warnings_of(model) == [want]
    assert warnings_of(model) == []
    assert warnings_of(other) == [want]


def test_a_controller_assigned_after_the_auto_mode_was_read_keeps_its_own_mode(
    const_grad_model, mean_pred_loss
):
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=mean_pred_loss,
                  metrics=[keras.metrics.AUC(name="auc")])  # fmt: skip
    cb = lk.ReduceOnPlateau(monitor="auc", factor=0.5, patience=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (AUC of a constant target)
        _fit(model, 1, [cb])
        assert cb.controller.mode == "max"  # read off the compiled metric
        mine = Core(mode="min", factor=0.5, patience=0)
        cb.controller = mine
        _fit(model, 1, [cb])
    assert cb.controller is mine and mine.mode == "min"


def test_keras_named_plateau_floors_at_min_lr_of_each_fit_and_watches_afresh(
    const_grad_model, mean_pred_loss
):
    """min_lr is read against the LR each fit() trains at (one set between two fit() calls
    is cut down to min_lr again), and every fit() begins a new watch for a plateau."""
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss=mean_pred_loss)
    plateau = lk.ReduceLROnPlateau("loss", mode="max", factor=0.5, patience=1, min_lr=0.2)
    h = _fit(model, 5, [plateau])
    assert h.history["learning_rate"] == pytest.approx([1.0, 1.0, 0.5, 0.25, 0.2])
    model.optimizer.learning_rate = 2.0
    h = _fit(model, 6, [plateau])
    assert h.history["learning_rate"] == pytest.approx([2.0, 2.0, 1.0, 0.5, 0.25, 0.2])
    watch = lk.ReduceLROnPlateau("loss", mode="max", factor=0.5, patience=2)
    for _ in range(2):  # one epoch without improvement in each fit(): no cut
        assert _fit(model, 2, [watch]).history["learning_rate"] == pytest.approx([0.2, 0.2])
    assert watch.scale == 1.0
    scheduled = const_grad_model()
    scheduled.compile(optimizer=keras.optimizers.SGD(lk.schedule(S.constant(0.1))),
                      loss=mean_pred_loss)  # fmt: skip
    with pytest.raises(ValueError) as info:
        _fit(scheduled, 1, [lk.ReduceLROnPlateau("loss", min_lr=0.01)])
    assert str(info.value) == (
        "min_lr=0.01 needs a float learning rate in the optimizer (as Keras' "
        "ReduceLROnPlateau), got LRKitSchedule: with a schedule, pass min_scale= to "
        "lrkit.keras.ReduceOnPlateau"
    )


def test_a_copied_or_unpickled_guard_holds_its_detector_as_its_own():
    import pickle

    original = lk.DivergenceGuard()
    for guard in (copy.deepcopy(original), pickle.loads(pickle.dumps(original))):
        assert guard.controller is not original.controller
        with pytest.raises(ValueError, match=r"^controller is the controller of another Div"):
            lk.DivergenceGuard(controller=guard.controller)


def test_guard_counts_its_checks_from_the_start_of_training_across_fits():
    x, y = _data_with_bad_batch(bad=5)
    clean, _ = _data_with_bad_batch(bad=5, value=0.0)
    model = _small()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    guard = lk.DivergenceGuard(snapshot_every=1)
    model.fit(clean, y, batch_size=4, shuffle=False, verbose=0, callbacks=[guard])
    assert guard.num_checks == 8 and guard.restored_at == []
    model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[guard])
    assert guard.restored_at == [14]  # batch 5 of the second fit, after the first's 8


def test_lr_scheduler_on_data_of_unknown_length_counts_the_steps_a_guard_restore_took_back(
    const_grad_model, mean_pred_loss
):
    """Data without a length, a DivergenceGuard restore in the epoch: the scheduler's step
    ends at the optimizer's iterations, as with data of known length."""

    def batches():
        for i in range(6):
            x = np.full((1, 1), np.inf if i == 3 else 1.0, "float32")
            yield x, np.zeros((1, 1), "float32")

    s = S.cosine(0.01, total_steps=40)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=mean_pred_loss)
    sched = lk.LRScheduler(s)
    guard = lk.DivergenceGuard(snapshot_every=1, factor=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model.fit(batches(), epochs=1, verbose=0, callbacks=[sched, guard])
    assert guard.restores == 1
    its = int(model.optimizer.iterations)
    assert sched.step == its < 6  # the restore took steps back


def test_lr_scheduler_kept_for_another_model_counts_again_from_initial_step(
    const_grad_model, mean_pred_loss
):
    """``initial_step`` starts the count again in a fit() of another model (one callback list
    for the folds of a cross-validation), as for the first model."""
    s = S.linear(0.01, end_lr=0.0, total_steps=10)
    cb = lk.LRScheduler(s, initial_step=2)
    seen = []
    for _ in range(2):
        model = const_grad_model()
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=mean_pred_loss)
        log = lk.LRLogger("batch")
        _fit(model, 1, [cb, log], batches=3)
        seen.append(log.lrs.tolist())
    want = [float(np.float32(s(t))) for t in (2, 3, 4)]
    assert seen == [want, want]
    assert cb.step == 5


class _HalveScheduleAfter(keras.callbacks.Callback):
    """Halve the optimizer's lrkit schedule after a given batch (as a cut in mid-epoch)."""

    def __init__(self, batch):
        super().__init__()
        self.batch = batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            self.model.optimizer._learning_rate.multiply(0.5)
            self.model.make_train_function(force=True)


def test_lr_logger_per_batch_follows_a_scale_change_in_the_middle_of_an_epoch(
    const_grad_model, mean_pred_loss
):
    s = S.linear(0.04, end_lr=0.0, total_steps=8)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(lk.schedule(s)), loss=mean_pred_loss)
    log = lk.LRLogger(per="batch")
    h = _fit(model, 1, [_HalveScheduleAfter(1), log], batches=4)
    used = [float(np.float32(s(t) * (1.0 if t < 2 else 0.5))) for t in range(4)]
    assert log.history == list(enumerate(used))
    assert h.history["learning_rate"] == [used[-1]]
    np.testing.assert_allclose(model.get_weights()[0], [[-sum(used)]], rtol=1e-6)


def test_lr_scheduler_refuses_an_empty_monitor_and_a_negative_initial_step():
    with pytest.raises(ValueError) as info:
        lk.LRScheduler(S.constant(0.1), monitor="")
    assert str(info.value) == "monitor must be the name of a logged metric, got ''"
    with pytest.raises(ValueError) as info:
        lk.LRScheduler(S.constant(0.1), initial_step=-1)
    assert str(info.value) == (
        "initial_step must be an integer >= 0 (allowed range: [0, inf)), got -1"
    )


def test_lr_logger_refuses_an_empty_key():
    with pytest.raises(ValueError) as info:
        lk.LRLogger(key="")
    assert str(info.value) == "key must be a non-empty string, got ''"


def test_lr_scheduler_per_epoch_verbose_prints_the_lr_set_at_each_epoch(
    const_grad_model, mean_pred_loss, capsys
):
    s = S.exponential(0.5, gamma=0.5)
    for verbose, printed in [
        (
            1,
            "\nEpoch 1: LRScheduler set the learning rate to 0.5\n"
            "\nEpoch 2: LRScheduler set the learning rate to 0.25\n",
        ),
        (0, ""),
    ]:
        model = const_grad_model()
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss=mean_pred_loss)
        _fit(model, 2, [lk.LRScheduler(s, per="epoch", verbose=verbose)])
        assert capsys.readouterr().out == printed


def test_lr_scheduler_feedback_on_a_metric_not_logged_warns_and_leaves_the_controller(
    const_grad_model, mean_pred_loss
):
    fb = Core(mode="min", factor=0.5, patience=0)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=mean_pred_loss)
    cb = lk.LRScheduler(S.constant(0.01), per="epoch", feedback=fb, monitor="val_loss")
    with pytest.warns(RuntimeWarning) as seen:
        _fit(model, 2, [cb])
    said = [str(w.message) for w in seen if "not in the logs" in str(w.message)]
    assert said == ["LRScheduler: metric 'val_loss' is not in the logs; feedback skipped"] * 2
    assert fb.state_dict() == Core(mode="min", factor=0.5, patience=0).state_dict()


def test_lr_logger_lrs_are_the_history_as_float64(const_grad_model, mean_pred_loss):
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(lambda: 0.1), loss=mean_pred_loss)
    log = lk.LRLogger(per="batch")
    _fit(model, 1, [log], batches=2)
    assert log.history == [(0, 0.1), (1, 0.1)]
    assert log.lrs.dtype == np.float64
    assert log.lrs.tolist() == [0.1, 0.1]


def test_lr_scheduler_from_a_later_step_on_a_new_optimizer_replaces_a_lower_lr_quietly(
    const_grad_model, mean_pred_loss
):
    """An optimizer that never trained holds no cut: its LR, below the schedule's, is replaced
    by the schedule's value at ``initial_step`` without a warning."""
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(1e-4), loss=mean_pred_loss)
    s = S.linear(0.01, end_lr=0.0, total_steps=10)
    log = lk.LRLogger("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _fit(model, 1, [lk.LRScheduler(s, initial_step=5), log], batches=2)
    assert log.history == [(0, float(np.float32(s(5)))), (1, float(np.float32(s(6))))]


def test_after_fit_the_lr_scheduler_leaves_the_learning_rate_a_backend_tensor(
    const_grad_model, mean_pred_loss
):
    """Per batch the LR may be written as a host scalar, also after the model's last sync
    (data of unknown length: the LR of the epoch's last step is set again at its end); when
    training ends the optimizer's learning-rate variable holds a backend tensor again, as
    Keras itself leaves it (Keras before 3.15 reads its sharding when the next fit() starts)."""

    def batches():
        for _ in range(3):
            yield ONES, ONES

    s = S.linear(0.5, end_lr=0.0, total_steps=4)
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=mean_pred_loss)
    model.fit(batches(), epochs=1, verbose=0, callbacks=[lk.LRScheduler(s)])
    value = model.optimizer.learning_rate.value
    assert keras.ops.is_tensor(value)
    assert float(keras.ops.convert_to_numpy(value)) == s(2)


def test_lr_logger_reads_a_bfloat16_learning_rate_callable_exactly(
    const_grad_model, mean_pred_loss
):
    model = const_grad_model()
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=lambda: keras.ops.cast(0.1, "bfloat16")),
        loss=mean_pred_loss,
    )
    log = lk.LRLogger("batch")
    h = _fit(model, 1, [log], batches=2)
    used = 0.10009765625  # 0.1 in bfloat16
    assert log.history == [(0, used), (1, used)]
    assert h.history["learning_rate"] == [used]
    np.testing.assert_array_equal(model.get_weights()[0], [[-2 * used]])


@pytest.mark.parametrize("cls", ["ReduceOnPlateau", "ReduceLROnPlateau"])
def test_a_missing_metric_is_warned_under_the_callbacks_own_name(
    cls, const_grad_model, mean_pred_loss
):
    model = const_grad_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=mean_pred_loss)
    with pytest.warns(RuntimeWarning) as record:
        _fit(model, 1, [getattr(lk, cls)("val_los")])
    assert [str(w.message) for w in record if "val_los" in str(w.message)] == [
        f"{cls}: metric 'val_los' is not in the logs (available: learning_rate, loss); skipping"
    ]
