"""Adaptive methods made visible: the per-element step size Adam actually applies.

    python examples/effective_lr.py      # pip install 'lrkit[torch,plot]'; writes effective_lr.png

``lrkit.torch.effective_lr(opt)`` returns one tensor per parameter with ``lr / (sqrt(v_hat) +
eps)`` (Adam); the logger records its median and 5th/95th percentiles per layer (and writes
to TensorBoard when installed).
"""

import torch

import lrkit.torch as lt
from lrkit.torch.demo import digits_task

task = digits_task(seed=0)
model = task.make_model()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
log = lt.EffectiveLRLogger(opt, names=model, every=10, tensorboard="auto")

for epoch in range(6):
    for x, y in task.train_batches(seed=epoch):
        opt.zero_grad()
        task.loss_fn(model(x), y).backward()
        opt.step()  # the logger's hook records every 10th step

for name, sizes in zip(log.names, lt.effective_lr(opt)):
    q = torch.quantile(sizes.flatten(), torch.tensor([0.05, 0.5, 0.95]))
    print(f"{name:10s} p5 {q[0]:.2e}  median {q[1]:.2e}  p95 {q[2]:.2e}   (lr {1e-3:.0e})")
log.plot("effective_lr.png")
log.close()
print("plot written to effective_lr.png")
