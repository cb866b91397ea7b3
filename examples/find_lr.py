"""Find a learning rate with the range test, then train with it: constant, one-cycle and
warmup-cosine.

    python examples/find_lr.py      # pip install 'lrkit[torch]'
"""

from __future__ import annotations

import torch

from lrkit import schedules
from lrkit.torch import find_lr, fit
from lrkit.torch.demo import digits_task, evaluate

torch.manual_seed(0)
task = digits_task(seed=0, batch_size=32)  # scikit-learn digits, MLP, Adam
model = task.make_model()
optimizer = task.make_optimizer(model, lr=1e-3)

# the suggestions are for the planned run: 300 optimizer steps
result = find_lr(model, optimizer, task.loss_fn, task.train_batches(), total_steps=300)
print(f"stopped: {result.stop_reason} after {result.steps} steps")
for rule, lr in result.suggestions().items():  # None: the curve gave that rule nothing
    print(f"  {rule:<12} {'-' if lr is None else f'{lr:.2e}'}")
if not result.reliable:  # e.g. a curve still falling at the end of the sweep
    print("the curve cannot be trusted:", *result.warnings, sep="\n  ")
if result.suggestion is None or result.max_lr is None or result.peak_lr is None:
    raise SystemExit(f"no suggestion from this sweep: {result.warnings}")
print(
    f"constant {result.suggestion:.2e}  one-cycle max_lr {result.max_lr:.2e}  "
    f"warmup-cosine peak_lr {result.peak_lr:.2e}"
)
try:
    result.plot(path="find_lr.png")  # loss vs log lr, suggestions marked
except ImportError:
    pass


def train_and_evaluate(name, model, optimizer, schedule=None):
    """300 steps with lrkit.torch.fit (the LR from ``schedule``, else the optimizer's)."""
    fit(model, optimizer=optimizer, loss_fn=task.loss_fn, data=task.train_batches(),
        steps=300, schedule=schedule)  # fmt: skip
    loss, acc = evaluate(model, task=task)
    print(f"{name:<13} val loss {loss:.4f}  accuracy {acc:.2%}")


# model and optimizer are exactly as before the sweep: train them at the suggestion
for g in optimizer.param_groups:
    g["lr"] = result.suggestion
train_and_evaluate("constant", model, optimizer)

# or a one-cycle run peaking at max_lr, from fresh weights
model = task.make_model()
optimizer = task.make_optimizer(model, lr=result.max_lr)
train_and_evaluate(
    "one-cycle", model, optimizer, schedules.onecycle(result.max_lr, total_steps=300)
)

# or a 5% linear warmup to peak_lr, then cosine to 0, from fresh weights
model = task.make_model()
optimizer = task.make_optimizer(model, lr=result.peak_lr)
warm_cosine = schedules.with_warmup(
    schedules.cosine(result.peak_lr, total_steps=285), warmup_steps=15
)
train_and_evaluate("warmup-cosine", model, optimizer, warm_cosine)
