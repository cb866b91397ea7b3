"""Drive a PyTorch optimizer with an lrkit schedule, checkpoint mid-run and resume exactly.

python examples/schedules_torch.py      # pip install 'lrkit[torch]'
"""

import io

import torch

import lrkit.torch as lt
from lrkit import schedules as S

torch.manual_seed(0)
x = torch.randn(512, 16)
y = x @ torch.randn(16, 1) + 0.1 * torch.randn(512, 1)


def new_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))


total = 300
schedule = S.with_warmup(
    S.cosine(0.05, total_steps=total - 30), warmup_steps=30
)  # warmup, then cosine from its step 0
print("schedule:", schedule)  # a spec string: S.parse() reads it back


def train(model, opt, sched, steps, gen, *, checkpoint_at=None):
    """Train ``steps`` steps (batches drawn from ``gen``); with ``checkpoint_at``, return the
    bytes of a checkpoint written after that many steps (``torch.save``: a copy, not the live
    tensors that ``state_dict()`` returns)."""
    saved = None
    for _ in range(steps):
        step = sched.current_step  # the LR this step trains with: schedule(step)
        lr = opt.param_groups[0]["lr"]
        idx = torch.randint(0, 512, (64,), generator=gen)
        loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()  # sets the LR of the next step
        if step % 50 == 0:
            print(f"step {step:4d}  lr {lr:.5f}  loss {loss.item():.4f}")
        if step + 1 == checkpoint_at:
            buffer = io.BytesIO()
            state = {"model": model.state_dict(), "opt": opt.state_dict()}
            torch.save({**state, "sched": sched.state_dict(), "gen": gen.get_state()}, buffer)
            saved = buffer.getvalue()
    return saved


torch.manual_seed(1)
model = new_model()
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
sched = lt.scheduler(opt, schedule)
ckpt = train(model, opt, sched, total, torch.Generator().manual_seed(2), checkpoint_at=150)

# resume from the checkpoint in a fresh model, optimizer and scheduler: the LR of step 150
# is set at once, and the run ends where the uninterrupted one did, bit for bit
state = torch.load(io.BytesIO(ckpt), weights_only=True)
model2 = new_model()
model2.load_state_dict(state["model"])
opt2 = torch.optim.SGD(model2.parameters(), lr=0.05, momentum=0.9)
opt2.load_state_dict(state["opt"])
sched2 = lt.scheduler(opt2, schedule)
sched2.load_state_dict(state["sched"])
assert sched2.current_step == 150 and opt2.param_groups[0]["lr"] == schedule(150)
print(f"resumed at step {sched2.current_step}, lr {opt2.param_groups[0]['lr']:.5f}")
gen = torch.Generator()
gen.set_state(state["gen"])
train(model2, opt2, sched2, total - 150, gen)
same = all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters()))
assert same
print("resumed run ends with the uninterrupted run's weights:", same)
