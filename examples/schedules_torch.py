"""Drive a PyTorch optimizer with an lrkit schedule, checkpoint mid-run and resume exactly.

Run: python examples/schedules_torch.py
"""

import torch

import lrkit.torch as lt
from lrkit import schedules as S

torch.manual_seed(0)
x = torch.randn(512, 16)
y = x @ torch.randn(16, 1) + 0.1 * torch.randn(512, 1)
model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))

total = 300
schedule = S.with_warmup(
    S.cosine(0.05, total_steps=total - 30), warmup_steps=30
)  # warmup, then cosine from its step 0
print("schedule:", schedule)  # a spec string: S.parse() reads it back

opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
sched = lt.scheduler(opt, schedule)
for step in range(total):
    lr = opt.param_groups[0]["lr"]  # the LR this step trains with: schedule(step)
    idx = torch.randint(0, 512, (64,))
    loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()  # sets the LR of the next step
    if step % 50 == 0:
        print(f"step {step:4d}  lr {lr:.5f}  loss {loss.item():.4f}")
    if step == 149:  # 150 steps done: the checkpoint resumes at step 150
        ckpt = {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}

# resume from the checkpoint: the LR of step 150 is set at once
opt2 = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
opt2.load_state_dict(ckpt["opt"])
sched2 = lt.scheduler(opt2, schedule)
sched2.load_state_dict(ckpt["sched"])
assert sched2.current_step == 150 and opt2.param_groups[0]["lr"] == schedule(150)
print(f"resumed at step {sched2.current_step}, lr {opt2.param_groups[0]['lr']:.5f}")
