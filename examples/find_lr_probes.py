"""The range test with probe runs: after the sweep, 8 short runs at constant LRs around its
edge, scored on the validation set, place the suggestions (about 6.5 to 9x the sweep's time).

    python examples/find_lr_probes.py      # pip install 'lrkit[torch]'
"""

from __future__ import annotations

import torch

from lrkit.torch import find_lr, fit
from lrkit.torch.demo import digits_task, evaluate

torch.manual_seed(0)
task = digits_task(seed=0, batch_size=32)  # scikit-learn digits, MLP, Adam
model = task.make_model()
optimizer = task.make_optimizer(model, lr=1e-3)

plain = find_lr(model, optimizer, task.loss_fn, task.train_batches(), total_steps=300)
probed = find_lr(
    model,
    optimizer,
    task.loss_fn,
    task.train_batches(),
    total_steps=300,
    probe_data=task.val_batches(),  # your validation set
)
probes = probed.probes
assert probes is not None and plain.suggestion is not None and probed.suggestion is not None
print(f"sweep's edge {probed.lr_min:.2e}; the probes (val loss after {probes.steps} steps):")
for lr, loss in zip(probes.lrs, probes.losses):
    print(f"  lr {lr:.2e}  val loss {loss:.4f}")
print(f"best probe near {probes.best_lr:.2e}")
print(f"constant LR: {plain.suggestion:.2e} from the sweep, {probed.suggestion:.2e} with probes")

# the model and optimizer are as before both range tests: train them at the suggestion
for g in optimizer.param_groups:
    g["lr"] = probed.suggestion
fit(model, optimizer=optimizer, loss_fn=task.loss_fn, data=task.train_batches(), steps=300)
loss, acc = evaluate(model, task=task)
print(f"trained 300 steps at {probed.suggestion:.2e}: val loss {loss:.4f}, accuracy {acc:.2%}")
