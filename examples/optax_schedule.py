"""lrkit with JAX/optax: range test, an exact schedule under jit, a plateau transformation.

    python examples/optax_schedule.py      # pip install 'lrkit[jax,demo]'

The data: scikit-learn's digits (the ``demo`` extra, nothing is downloaded).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import lrkit.optax as lo
from lrkit import schedules as S

x, y = load_digits(return_X_y=True)
x, y = jnp.asarray(x / 16.0, jnp.float32), jnp.asarray(y)
batches = [(x[i : i + 64], y[i : i + 64]) for i in range(0, len(x) - 63, 64)]

k1, k2 = jax.random.split(jax.random.PRNGKey(0))
params = {
    "w1": jax.random.normal(k1, (64, 64)) * 0.125,
    "b1": jnp.zeros(64),
    "w2": jax.random.normal(k2, (64, 10)) * 0.125,
    "b2": jnp.zeros(10),
}


def loss_fn(p, batch):
    xb, yb = batch
    logits = jax.nn.relu(xb @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()


# 1. range test for the run below (params are never modified)
epochs = 6
total = epochs * len(batches)
res = lo.find_lr(loss_fn, params, optax.adam, batches, total_steps=total,
                 start_lr=1e-5, end_lr=1.0, num_iter=80)  # fmt: skip
print(f"find_lr: suggestion={res.suggestion:.3g} max_lr={res.max_lr:.3g} ({res.stop_reason})")

# 2. onecycle up to max_lr, plus a plateau transformation fed with the loss
sched = S.onecycle(res.max_lr, total_steps=total)
opt = optax.chain(
    optax.adam(lo.schedule(sched)),
    lo.reduce_on_plateau(factor=0.5, patience=1, accumulation_size=len(batches)),
)
state = opt.init(params)


@jax.jit
def step(p, st, batch):
    loss, grads = jax.value_and_grad(loss_fn)(p, batch)
    updates, st = opt.update(grads, st, p, value=loss)
    return optax.apply_updates(p, updates), st, loss


for epoch in range(epochs):
    losses = []
    for b in batches:
        params, state, loss = step(params, state, b)
        losses.append(float(loss))
    print(f"epoch {epoch}: loss={np.mean(losses):.4f} plateau scale={float(state[1].scale):.3g}")

# 3. the optax schedule is the numpy path, bit for bit, under jit and vmap
f = jax.jit(jax.vmap(lo.schedule(sched)))
t = jnp.arange(sched.total_steps)
print(
    "exact:",
    bool(
        np.array_equal(
            np.asarray(f(t)), sched.values(np.arange(sched.total_steps)).astype(np.float32)
        )
    ),
)
