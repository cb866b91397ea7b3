"""Resuming with the LR cuts: keras.callbacks.BackupAndRestore, model.save / load_model."""

import copy
import pickle
import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import lrkit.keras as lk  # noqa: E402
from lrkit import schedules as S  # noqa: E402
from lrkit.feedback import ReduceOnPlateau as Core  # noqa: E402

SCHED = S.cosine(0.1, total_steps=64)
X = np.random.default_rng(0).standard_normal((32, 4)).astype("float32")
Y = X.sum(axis=1, keepdims=True)
#: the monitored metric per epoch: one cut (patience=0) at the end of epoch 1, none after,
#: also for a plateau callback that starts afresh at epoch 2
METRIC = [1.0, 2.0, 0.5, 0.4]


class _Metric(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        logs["m"] = METRIC[epoch]


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise RuntimeError("interrupted")


def _learning_rate(kind):
    if kind == "lrkit":
        return lk.schedule(SCHED)
    if kind == "keras_schedule":
        return keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=8, decay_rate=0.5)
    return 0.1  # "float" and "scheduler" (LRScheduler sets it)


def _model(kind):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(_learning_rate(kind), momentum=0.9), loss="mse")
    return model


def _callbacks(kind, *, ctrl=None):
    """The LR callbacks (fresh ones, unless a restored controller is given) and the logger."""
    log = lk.LRLogger("batch")
    plateau = (
        lk.ReduceOnPlateau("m", controller=ctrl)
        if ctrl is not None
        else lk.ReduceOnPlateau("m", mode="min", factor=0.5, patience=0)
    )
    cbs = [_Metric(), plateau]
    if kind == "scheduler":
        cbs.insert(1, lk.LRScheduler(SCHED))
    return cbs, log


def _fit(model, callbacks, *, epochs=4, initial_epoch=0):
    model.fit(X, Y, batch_size=8, epochs=epochs, initial_epoch=initial_epoch, shuffle=False,
              verbose=0, callbacks=callbacks)  # fmt: skip


KINDS = ["scheduler", "lrkit", "keras_schedule", "float"]


@pytest.mark.parametrize("kind", KINDS)
def test_backup_and_restore_keeps_a_plateau_cut(kind, tmp_path):
    """The cut made at the end of epoch 1 is in that epoch's backup (BackupAndRestore listed
    after the plateau callback): a run resumed with fresh callbacks trains at the cut LR, the
    same LRs and weights as one uninterrupted run."""
    whole = _model(kind)
    cbs, log = _callbacks(kind)
    _fit(whole, [*cbs, log])
    ref = log.history
    assert ref[8][1] < ref[7][1] * 0.75  # the cut, from the epoch-2 steps on

    path = str(tmp_path / "backup")
    cbs, log = _callbacks(kind)
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(_model(kind), [*cbs, keras.callbacks.BackupAndRestore(path), log, _Interrupt()])
    first = log.history
    resumed = _model(kind)  # a new process would build the same model
    cbs, log = _callbacks(kind)
    _fit(resumed, [*cbs, keras.callbacks.BackupAndRestore(path), log])
    assert first + log.history == ref
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    lr = resumed.optimizer._learning_rate
    if kind in ("lrkit", "keras_schedule"):
        assert isinstance(lr, (lk.LRKitSchedule, lk.ScaledSchedule)) and lr.scale == 0.5


def test_backup_and_restore_keeps_an_lr_schedulers_feedback_controller(tmp_path):
    """The feedback= controller of lk.LRScheduler is saved with the optimizer's multiplier:
    a run resumed with fresh callbacks goes on from its cuts and bookkeeping, the same LRs
    and weights as one uninterrupted run (it went back to the uncut schedule)."""
    from lrkit.feedback import RestartOnPlateau

    metric = [1.0, 1.0, 1.0, 1.0]  # never improves: a cut at every epoch end

    class Flat(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["m"] = metric[epoch]

    def callbacks():
        fb = Core(mode="min", factor=0.5, patience=0)
        return [Flat(), lk.LRScheduler(SCHED, feedback=fb, monitor="m")], lk.LRLogger("batch")

    whole = _model("float")
    wcbs, log = callbacks()
    _fit(whole, [*wcbs, log])
    ref = log.history
    assert wcbs[1].feedback.scale == 0.5**3  # the first epoch sets the best value
    path = str(tmp_path / "backup")
    cbs, log = callbacks()
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(_model("float"), [*cbs, keras.callbacks.BackupAndRestore(path), log, _Interrupt()])
    first = log.history
    resumed = _model("float")
    cbs, log = callbacks()
    _fit(resumed, [*cbs, keras.callbacks.BackupAndRestore(path), log])
    assert first + log.history == ref
    assert cbs[1].feedback.state_dict() == wcbs[1].feedback.state_dict()
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    # a controller of another kind cannot take the saved state: said, and it goes on afresh
    cbs, log = callbacks()
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(_model("float"), [*cbs, keras.callbacks.BackupAndRestore(path), _Interrupt()])
    other = lk.LRScheduler(SCHED, feedback=RestartOnPlateau(patience=0), monitor="m")
    with pytest.warns(RuntimeWarning) as said:
        _fit(_model("float"), [Flat(), other, keras.callbacks.BackupAndRestore(path)])
    assert other.feedback.restarts == [16]  # its first epoch (2) set its best value
    assert [str(w.message) for w in said if "LRScheduler" in str(w.message)] == [
        "LRScheduler: the weights loaded hold a feedback controller's state this callback's "
        "feedback= cannot take (it holds a ReduceOnPlateau's, not a RestartOnPlateau's); it "
        "goes on from its own state"
    ]
    # one built with other settings neither (said): it is not the controller that was saved
    cbs, log = callbacks()
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(_model("float"), [*cbs, keras.callbacks.BackupAndRestore(path), _Interrupt()])
    other = lk.LRScheduler(SCHED, feedback=Core(mode="min", factor=0.9, patience=5), monitor="m")
    with pytest.warns(RuntimeWarning) as said:
        _fit(_model("float"), [Flat(), other, keras.callbacks.BackupAndRestore(path)])
    assert [str(w.message) for w in said if "LRScheduler" in str(w.message)] == [
        "LRScheduler: the weights loaded hold a feedback controller's state this callback's "
        "feedback= cannot take (built with other factor, patience); it goes on from its own "
        "state"
    ]
    assert other.feedback.scale == 1.0 and other.feedback.factor == 0.9


def test_an_lr_scheduler_without_feedback_beside_one_with_it_leaves_it_the_state(tmp_path):
    metric = [1.0, 1.0, 1.0, 1.0]

    class Flat(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["m"] = metric[epoch]

    def callbacks():
        fb = lk.LRScheduler(SCHED, feedback=Core(factor=0.5, patience=0), monitor="m")
        return [Flat(), lk.LRScheduler(SCHED, per="epoch"), fb]

    whole = callbacks()
    _fit(_model("float"), whole)
    path = str(tmp_path / "backup")
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(_model("float"), [*callbacks(), keras.callbacks.BackupAndRestore(path), _Interrupt()])
    resumed = callbacks()
    _fit(_model("float"), [*resumed, keras.callbacks.BackupAndRestore(path)])
    assert resumed[2].feedback.state_dict() == whole[2].feedback.state_dict()


def test_weights_loaded_before_a_new_fit_leave_its_feedback_controller_as_built(tmp_path):
    """A new stage (load_weights of an earlier run's best weights, then a fit with a fresh
    LRScheduler) keeps the controller it is given: only a fit's own BackupAndRestore resume
    takes the saved state."""
    metric = [1.0, 1.0, 1.0, 1.0]

    class Flat(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["m"] = metric[epoch]

    model = _model("float")
    first = lk.LRScheduler(SCHED, feedback=Core(factor=0.5, patience=0), monitor="m")
    path = str(tmp_path / "best.weights.h5")
    _fit(model, [Flat(), first, keras.callbacks.ModelCheckpoint(path, save_weights_only=True)])
    assert first.feedback.scale == 0.125
    for fb in (Core(factor=0.5, patience=0), Core(factor=0.9, patience=5)):  # alike or not
        second = lk.LRScheduler(SCHED, feedback=fb, monitor="m")
        model.evaluate(X, Y, verbose=0, callbacks=[second])  # its set-up is no fit's
        model.load_weights(path)
        log = lk.LRLogger("batch")
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            _fit(model, [Flat(), second, log], epochs=1)
        assert log.history[0] == (log.history[0][0], float(np.float32(SCHED(log.history[0][0]))))
        assert second.feedback.scale == 1.0


@pytest.mark.parametrize("kind", ["scheduler", "lrkit"])
def test_backup_and_restore_keeps_a_guard_cut(kind, tmp_path):
    """A DivergenceGuard cut (a NaN batch in epoch 0) is carried by the backup too."""
    bad = X.copy()
    bad[8 + 2] = np.nan  # batch 1 of epoch 0

    class Data(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = 0

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return (bad if self.epoch == 0 else X)[i * 8 : (i + 1) * 8], Y[i * 8 : (i + 1) * 8]

    class Epoch(keras.callbacks.Callback):
        def __init__(self, data):
            super().__init__()
            self.data = data

        def on_epoch_begin(self, epoch, logs=None):
            self.data.epoch = epoch

    def callbacks():
        cbs = [lk.LRScheduler(SCHED)] if kind == "scheduler" else []
        return [*cbs, lk.DivergenceGuard(snapshot_every=1)], lk.LRLogger("batch")

    def fit(model, extra):
        data = Data()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # PyDataset's workers hint
            model.fit(data, epochs=4, verbose=0, callbacks=[Epoch(data), *extra])

    cbs, log = callbacks()
    fit(_model(kind), [*cbs, log])
    ref = log.history
    assert cbs[-1].restores == 1
    path = str(tmp_path / "backup")
    cbs, log = callbacks()
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(_model(kind), [*cbs, keras.callbacks.BackupAndRestore(path), log, _Interrupt()])
    first = log.history
    cbs, log = callbacks()
    fit(_model(kind), [*cbs, keras.callbacks.BackupAndRestore(path), log])
    assert first + log.history == ref
    want = [float(np.float32(SCHED(t) * 0.5)) for t, _ in log.history]
    assert [lr for _, lr in log.history] == want  # the resumed epochs: at the cut


@pytest.mark.parametrize("kind", KINDS)
def test_model_save_and_load_model_round_trip(kind, tmp_path):
    """A model saved after a cut loads with keras.saving.load_model (nothing to register
    beyond importing lrkit.keras) without a warning; a schedule comes back with its scale and
    its config unchanged; loading its weights into a model never trained by lrkit works too."""
    model = _model(kind)
    cbs, _ = _callbacks(kind)
    _fit(model, cbs, epochs=2)
    path = tmp_path / "m.keras"
    model.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = keras.saving.load_model(path)
        plain = _model(kind)
        plain.build((None, 4))
        plain.optimizer.build(plain.trainable_variables)
        plain.load_weights(path)
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    for v, w in zip(model.optimizer.variables, back.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(v.numpy()), np.asarray(w.numpy()))
    lr, lr2 = model.optimizer._learning_rate, back.optimizer._learning_rate
    if kind in ("lrkit", "keras_schedule"):
        assert type(lr2) is type(lr) and lr2.scale == lr.scale == 0.5
        assert lr2.get_config() == lr.get_config()
        again = type(lr).from_config(lr2.get_config())
        assert again.get_config() == lr.get_config()
    if kind == "lrkit":
        np.testing.assert_array_equal(lr2.values(np.arange(64)), lr.values(np.arange(64)))
        assert plain.optimizer._learning_rate.scale == 1.0  # load_weights: no lrkit multiplier


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("saved_as", ["weights", "model"])
def test_a_resume_from_saved_weights_or_model_with_the_restored_controller_is_exact(
    kind, saved_as, tmp_path
):
    """ModelCheckpoint(save_weights_only=True)'s resume: a new model, its weights loaded
    (before any lrkit callback met its optimizer: no scale comes back with them), and the
    restored controller given as controller=. The schedule in the optimizer takes the
    controller's cut as a float LR's multiplier does; a model from load_model, whose schedule
    holds the cut already, is not cut twice."""
    whole = _model(kind)
    cbs, log = _callbacks(kind)
    _fit(whole, [*cbs, log])
    ref = log.history

    first = _model(kind)
    ctrl = Core("min", factor=0.5, patience=0)
    cbs, log = _callbacks(kind, ctrl=ctrl)
    _fit(first, [*cbs, log], epochs=2)  # the cut at the end of epoch 1
    assert ctrl.scale == 0.5
    if saved_as == "weights":
        first.save_weights(tmp_path / "w.weights.h5")
        resumed = _model(kind)
        resumed.optimizer.build(resumed.trainable_variables)
        resumed.load_weights(tmp_path / "w.weights.h5")
    else:
        first.save(tmp_path / "m.keras")
        resumed = keras.saving.load_model(tmp_path / "m.keras")
    back = Core()
    back.load_state_dict(ctrl.state_dict())
    cbs, log2 = _callbacks(kind, ctrl=back)
    _fit(resumed, [*cbs, log2], initial_epoch=2)
    assert log.history + log2.history == ref
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    if kind == "lrkit":
        assert resumed.optimizer._learning_rate.scale == 0.5


def test_weights_saved_without_the_multiplier_load_into_an_optimizer_that_has_it(tmp_path):
    plain = _model("float")
    _fit(plain, [], epochs=1)
    plain.save_weights(tmp_path / "plain.weights.h5")
    model = _model("scheduler")
    cbs, _ = _callbacks("scheduler")
    _fit(model, cbs, epochs=2)  # cut once: the optimizer's multiplier is 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.load_weights(tmp_path / "plain.weights.h5")
    for a, b in zip(plain.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    scale = model.optimizer._lrkit_lr_scale
    assert scale.value == 0.5 and not scale.loaded  # nothing saved for it: left as it was
    # it pickles and copies as a plain object (not as a whole Keras model)
    for twin in (copy.deepcopy(scale), pickle.loads(pickle.dumps(scale))):
        assert (type(twin), twin.value, twin.loaded) == (type(scale), 0.5, False)


def test_load_model_with_fresh_callbacks_warns_that_float_lr_cuts_are_dropped(tmp_path):
    """With a float LR the cuts' product is not in what load_model rebuilds: LRScheduler with
    fresh callbacks replaces the saved (cut) LR by the schedule's and says so; with the
    restored controller it continues at the cut LR, quietly."""
    model = _model("scheduler")
    cbs, _ = _callbacks("scheduler")
    _fit(model, cbs, epochs=2)
    state = cbs[2].controller.state_dict()
    assert state["scale"] == 0.5
    model.save(tmp_path / "m.keras")
    held = float(np.float32(SCHED(7) * 0.5))
    assert float(model.optimizer.learning_rate.numpy()) == held

    back = keras.saving.load_model(tmp_path / "m.keras")
    cbs, log = _callbacks("scheduler")
    with pytest.warns(RuntimeWarning) as seen:
        _fit(back, [*cbs, log], epochs=3, initial_epoch=2)
    said = [str(w.message) for w in seen if "LRScheduler:" in str(w.message)]
    assert said == [
        f"LRScheduler: the optimizer's learning rate {held:.6g} is below the schedule's at "
        f"step 7 ({float(np.float32(SCHED(7))):.6g}), where training stopped; it is replaced "
        "by the schedule's values. If it holds cuts made by ReduceOnPlateau/DivergenceGuard "
        "before the model was saved (keras.saving.load_model, or load_weights before fit()), "
        "pass their restored controllers (controller= after load_state_dict) to keep them; a "
        "schedule in the optimizer (lrkit.keras.schedule) keeps them in a model file"
    ]
    assert log.history[0] == (8, float(np.float32(SCHED(8))))

    back = keras.saving.load_model(tmp_path / "m.keras")
    ctrl = Core("min", factor=0.5, patience=0)
    ctrl.load_state_dict(state)
    cbs, log = _callbacks("scheduler", ctrl=ctrl)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _fit(back, [*cbs, log], epochs=3, initial_epoch=2)
    assert log.history[0] == (8, float(np.float32(SCHED(8) * 0.5)))


def test_a_model_trained_before_at_a_higher_float_lr_takes_the_schedule_quietly():
    """A model trained first with plain Keras (LR 0.1, above the schedule's): LRScheduler
    sets the schedule's values with no warning (nothing there is a cut)."""
    model = _model("scheduler")
    model.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    sched = S.cosine(0.05, total_steps=64)
    log = lk.LRLogger("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0,
                  callbacks=[lk.LRScheduler(sched), log])  # fmt: skip
    assert log.history[0] == (2, float(np.float32(sched(2))))


def _guard_run(bad: set[int], every: int, tmp_path, *, split: bool | str):
    """8 batches an epoch for 10 epochs, a NaN target at each global batch in ``bad``: in one
    fit, or 5 epochs + model.save + guard.state_dict() (through JSON) + a new model and guard
    for the other 5 (``split="same"``: the same model and guard go on in a second fit)."""
    import json

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")

    def batches(k):
        while True:
            i = k % 8
            yb = y[i * 8 : (i + 1) * 8].copy()
            if k in bad:
                yb[:] = np.nan
            yield x[i * 8 : (i + 1) * 8], yb
            k += 1

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    sched = lk.schedule(S.cosine(0.05, total_steps=80))
    model.compile(optimizer=keras.optimizers.SGD(sched, momentum=0.9), loss="mse")
    guard = lk.DivergenceGuard(snapshot_every=every)
    fit = dict(steps_per_epoch=8, verbose=0)
    if not split:
        model.fit(batches(0), epochs=10, callbacks=[guard], **fit)
        return model, guard.restored_at
    model.fit(batches(0), epochs=5, callbacks=[guard], **fit)
    if split == "same":
        model.fit(batches(40), epochs=10, initial_epoch=5, callbacks=[guard], **fit)
        return model, guard.restored_at
    model.save(tmp_path / "m.keras")
    state = json.loads(json.dumps(guard.state_dict()))
    first = list(guard.restored_at)
    model = keras.saving.load_model(tmp_path / "m.keras")
    guard = lk.DivergenceGuard(snapshot_every=every)
    guard.load_state_dict(state)
    assert guard.restored_at == first  # its record: the restores before the save too
    model.fit(batches(40), epochs=10, initial_epoch=5, callbacks=[guard], **fit)
    return model, guard.restored_at


@pytest.mark.parametrize("split", [True, "same"])
@pytest.mark.parametrize(("bad", "every"), [({70}, 6), ({12, 70}, 4), ({30, 70}, 5), ({70}, 50)])
def test_a_guard_resumed_from_its_state_dict_restores_what_one_run_restores(
    bad, every, split, tmp_path
):
    """The snapshots after a resume fall on the checks they fall on in one run (the saved
    ``good`` count; the same guard in a second ``fit()`` keeps its own), so a later divergence
    restores the same state: same weights, steps and restore checks as one uninterrupted
    run."""
    whole, at = _guard_run(bad, every, tmp_path, split=False)
    resumed, at_resumed = _guard_run(bad, every, tmp_path, split=split)
    assert at == at_resumed and len(at) == len(bad)
    assert int(whole.optimizer.iterations) == int(resumed.optimizer.iterations)
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_guard_state_dict_is_checked_in_one_line():
    guard = lk.DivergenceGuard()
    assert guard.state_dict()["good"] == 0
    with pytest.raises(ValueError, match=r"^state_dict must be a DivergenceGuard.state_dict\(\)"):
        guard.load_state_dict({"good": 1})
    state = guard.state_dict()
    with pytest.raises(ValueError, match=r"state_dict\['good'\] must be"):
        guard.load_state_dict({**state, "good": -1})
