"""lrkit with Keras 3: range test, a warmup-cosine schedule, plateau + divergence guard.

    KERAS_BACKEND=jax python examples/keras_schedule.py      # pip install 'lrkit[keras,demo]'

It also runs with KERAS_BACKEND=torch. The data: scikit-learn's digits (the ``demo`` extra,
nothing is downloaded).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import lrkit.keras as lk  # noqa: E402
from lrkit import schedules as S  # noqa: E402

x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype("float32")
keras.utils.set_random_seed(0)
model = keras.Sequential(
    [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)]
)
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss=loss, metrics=["accuracy"])

# 1. range test for the run below (weights and optimizer state are restored afterwards)
epochs, steps = 8, int(np.ceil(len(x) * 0.8 / 64))
res = lk.find_lr(model, x, y, batch_size=64, total_steps=epochs * steps,
                 start_lr=1e-4, end_lr=10.0, num_iter=80)  # fmt: skip
print(f"find_lr: suggestion={res.suggestion:.3g} peak_lr={res.peak_lr:.3g} ({res.stop_reason})")

# 2. train with warmup + cosine up to the suggested peak, scaled by plateau/guard callbacks
sched = S.with_warmup(S.cosine(res.peak_lr, total_steps=epochs * steps - steps), warmup_steps=steps)
model.compile(
    optimizer=keras.optimizers.SGD(learning_rate=lk.schedule(sched), momentum=0.9),
    loss=loss,
    metrics=["accuracy"],
)
plateau = lk.ReduceOnPlateau(monitor="val_loss", patience=1)
guard = lk.DivergenceGuard()
log = lk.LRLogger()  # after the callbacks that set the LR
hist = model.fit(
    x,
    y,
    batch_size=64,
    epochs=epochs,
    validation_split=0.2,
    verbose=0,
    callbacks=[plateau, guard, log],
)
for (epoch, lr), acc in zip(log.history, hist.history["val_accuracy"]):
    print(f"epoch {epoch}: lr={lr:.4f} val_accuracy={acc:.3f}")

print(f"plateau cuts: {plateau.controller.reductions}, guard restores at: {guard.restored_at}")

# 3. the schedule, its scale (the cuts) and the step are saved with the model
path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "lrkit_keras_example.keras")
model.save(path)
loaded = keras.saving.load_model(path)  # import lrkit.keras first (it registers the schedule)
same = float(loaded.optimizer.learning_rate) == float(model.optimizer.learning_rate)
print(f"reloaded at step {int(loaded.optimizer.iterations)}, same learning rate: {same}")
