"""Annealing by feedback: a cosine schedule x ReduceOnPlateau, with a divergence guard.

    python examples/plateau.py      # pip install 'lrkit[torch]'

The LR at step t is ``cosine(t) * plateau.scale * guard.scale``; the validation loss is
reported once per epoch; at step 150 (counted from 0; the guard's event counts it as check
151) we poison one loss with NaN to show the guard restoring the last good state and halving
the LR.
"""

import math

import torch

import lrkit.torch as lt
from lrkit import schedules as S
from lrkit.feedback import ReduceOnPlateau
from lrkit.torch.demo import digits_task, evaluate

torch.manual_seed(0)
task = digits_task(seed=0)
model = task.make_model()
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
plateau = ReduceOnPlateau(factor=0.5, patience=1)
sched = lt.scheduler(opt, S.cosine(0.05, total_steps=600), feedback=plateau)
# the guard's LR cut joins the feedback chain
guard = lt.DivergenceGuard(model, optimizer=opt, scheduler=sched)

step = 0
for epoch in range(14):
    for x, y in task.train_batches(seed=epoch):
        opt.zero_grad()
        loss = task.loss_fn(model(x), y)
        loss.backward()
        if step == 150:
            loss = loss * math.nan  # simulate a blow-up
        if guard.check(loss):
            opt.step()
        sched.step()
        step += 1
    val_loss, acc = evaluate(model, task=task)
    sched.report(val_loss)
    print(
        f"epoch {epoch:2d} step {step:3d}  val loss {val_loss:.4f}  acc {acc:.2%}  "
        f"lr {opt.param_groups[0]['lr']:.2e}  plateau x{plateau.scale:g}  guard x{guard.scale:g}"
    )
print("guard events:", guard.events)
print("plateau reductions at steps:", plateau.reductions)
