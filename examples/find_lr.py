"""Find a learning rate with the range test, then train with it (constant and one-cycle).

python examples/find_lr.py
"""

from __future__ import annotations

import torch

from lrkit import schedules
from lrkit.torch import find_lr
from lrkit.torch.demo import digits_task, evaluate, train

torch.manual_seed(0)
task = digits_task(seed=0, batch_size=32)  # scikit-learn digits, MLP, Adam
model = task.make_model()
optimizer = task.make_optimizer(model, lr=1e-3)

# the suggestions are for the planned run: 300 optimizer steps
result = find_lr(model, optimizer, task.loss_fn, task.train_batches(), total_steps=300)
print(f"stopped: {result.stop_reason} after {result.steps} steps")
for method, lr in result.suggestions().items():
    print(f"  {method:<9} {lr:.2e}")
print(
    f"suggestion {result.suggestion:.2e}  max_lr {result.max_lr:.2e}  base_lr {result.base_lr:.2e}"
)
try:
    result.plot(path="find_lr.png")  # loss vs log lr, suggestions marked
except ImportError:
    pass

# model and optimizer are exactly as before the sweep: train them at the suggestion
for g in optimizer.param_groups:
    g["lr"] = result.suggestion
train(model, optimizer, task, steps=300)
loss, acc = evaluate(model, task)
print(f"constant  val loss {loss:.4f}  accuracy {acc:.2%}")

# or a one-cycle run peaking at max_lr, from fresh weights
model = task.make_model()
optimizer = task.make_optimizer(model, lr=result.max_lr)
sched = schedules.onecycle(max_lr=result.max_lr, total_steps=300)
train(model, optimizer, task, steps=300, lr_schedule=sched)
loss, acc = evaluate(model, task)
print(f"one-cycle val loss {loss:.4f}  accuracy {acc:.2%}")
