"""DDP with two processes on the gloo backend (CPU), launched as torchrun launches them (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT in the environment, ``init_method="env://"``):
the scheduler gives every rank the same LR, the range test averages the loss over ranks, stops
on all ranks together with identical suggestions, and only rank 0 writes files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():  # pragma: no cover
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

SCRIPT = r"""
import json, os, sys
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import lrkit.torch as LT

torch.set_num_threads(1)
dist.init_process_group("gloo")  # env:// as torchrun sets it up
rank, world = dist.get_rank(), dist.get_world_size()
out_dir = sys.argv[1]

# same initial weights on every rank; DDP also broadcasts them from rank 0
torch.manual_seed(0)
model = DDP(nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1)))
g = torch.Generator().manual_seed(100 + rank)  # each rank has its own data shard
w_true = torch.arange(8.0) / 8
xs = torch.randn(64 * 8, 8, generator=g)
ys = xs @ w_true[:, None] + 0.1 * torch.randn(64 * 8, 1, generator=g)
batches = [(xs[i : i + 64], ys[i : i + 64]) for i in range(0, len(xs), 64)]

# 1. the scheduler: LR per step on this rank
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
sched = LT.scheduler(opt, "onecycle(max_lr=0.05, total_steps=24)")
lrs = [opt.param_groups[0]["lr"]]
for k in range(24):
    x, y = batches[k % len(batches)]
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    sched.step()
    lrs.append(opt.param_groups[0]["lr"])
weights = [p.detach().double().sum().item() for p in model.parameters()]

# 2. the range test: local losses recorded through a custom step
local = []
def step(m, batch):
    loss = nn.functional.mse_loss(m(batch[0]), batch[1])
    local.append(loss.item())
    return loss

before = [p.detach().clone() for p in model.parameters()]
opt2 = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
res = LT.find_lr(model, opt2, None, batches, step=step, start_lr=1e-5, end_lr=50.0,
                 num_iter=60, eval_batches=0, warn=False)  # step() sees training batches only
restored = all(torch.equal(a, b) for a, b in zip(before, model.parameters()))

# 3. files: only rank 0 writes
LT.main_process_only(lambda p: open(p, "w").write(f"rank {rank}"))(
    os.path.join(out_dir, "written.txt"))
import matplotlib
matplotlib.use("Agg")
res.plot(path=os.path.join(out_dir, f"find_rank{rank}.png"))  # written by rank 0 only
spec = LT.broadcast_object("cosine(lr=0.1, total_steps=10)" if rank == 0 else None)
mean_rank = LT.all_reduce_mean(float(rank))
spec_src1 = LT.broadcast_object(f"from rank {rank}", src=1)
try:
    LT.broadcast_object(1, src=world)
    src_error = None
except ValueError as exc:
    src_error = str(exc)
own = torch.tensor(float(rank + 1), dtype=torch.float64)  # a float64 tensor left as it is
means = [LT.all_reduce_mean(3.0 * rank + 1), LT.all_reduce_mean(0.1), LT.all_reduce_mean(own),
         LT.all_reduce_mean(torch.tensor(2.0**24 if rank == 0 else 1.0))]  # float32: 2**24 + 1

with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
    json.dump({
        "rank": rank, "world": world, "lrs": lrs, "weights": weights,
        "losses": res.losses.tolist(), "local": local, "stop_reason": res.stop_reason,
        "steps": res.steps, "suggestion": res.suggestion, "max_lr": res.max_lr,
        "base_lr": res.base_lr, "suggestions": res.suggestions(), "restored": restored,
        "is_main": LT.is_main_process(), "spec": spec, "mean_rank": mean_rank,
        "spec_src1": spec_src1, "src_error": src_error, "means": means, "own": own.item(),
        "world_helper": LT.get_world_size(), "rank_helper": LT.get_rank(),
    }, f)
dist.barrier()
dist.destroy_process_group()
# no interpreter teardown: gloo's threads can abort it ("terminate called without an
# active exception") after everything is written
sys.stdout.flush()
os._exit(0)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(script: Path, out: Path, world: int = 2) -> list[dict]:  # type: ignore[type-arg]
    port = _free_port()
    procs = []
    for rank in range(world):
        env = dict(
            os.environ,
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(world),
            LOCAL_WORLD_SIZE=str(world),
            GROUP_RANK="0",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            OMP_NUM_THREADS="1",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)]


def test_ddp_two_ranks_gloo(tmp_path: Path) -> None:
    script = tmp_path / "ddp_script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / "out"
    out.mkdir()
    r0, r1 = _launch(script, out)
    assert (r0["world"], r1["world"]) == (2, 2)
    assert (r0["world_helper"], r0["rank_helper"], r1["rank_helper"]) == (2, 0, 1)

    # scheduler: the same LR sequence on both ranks, exactly the schedule's values
    from lrkit.schedules import parse

    expected = parse("onecycle(max_lr=0.05, total_steps=24)").values(np.arange(25)).tolist()
    assert r0["lrs"] == r1["lrs"]
    assert r0["lrs"] == pytest.approx(expected, rel=0, abs=1e-15)
    assert r0["weights"] == r1["weights"]  # DDP kept the replicas in sync

    # finder: per-rank losses differ (different shards), the recorded curve is their mean
    n = len(r0["losses"])
    assert r0["local"][:n] != r1["local"][:n]
    assert r0["losses"] == r1["losses"]
    mean = (np.array(r0["local"][:n]) + np.array(r1["local"][:n])) / 2
    np.testing.assert_allclose(r0["losses"], mean, rtol=1e-6)
    # it stopped on both ranks together, with identical suggestions
    assert r0["steps"] == r1["steps"] and r0["stop_reason"] == r1["stop_reason"] == "turned_up"
    assert r0["steps"] < 60  # the divergence stop came on both ranks at the same step
    assert len(r0["local"]) == len(r1["local"])
    for key in ("suggestion", "max_lr", "base_lr", "suggestions"):
        assert r0[key] == r1[key]
    assert r0["suggestion"] is not None
    assert r0["restored"] and r1["restored"]

    # only rank 0 wrote the file; helpers agree
    assert (out / "written.txt").read_text() == "rank 0"
    assert (out / "find_rank0.png").exists() and not (out / "find_rank1.png").exists()
    assert (r0["is_main"], r1["is_main"]) == (True, False)
    assert r0["spec"] == r1["spec"] == "cosine(lr=0.1, total_steps=10)"
    assert r0["mean_rank"] == r1["mean_rank"] == 0.5
    assert r0["spec_src1"] == r1["spec_src1"] == "from rank 1"
    assert r0["src_error"] == r1["src_error"] == "src must be a rank in [0, 2), got 2"
    # float64 sums: 2**24 + 1 is exact, 0.1 comes back as 0.1; the input tensor is unchanged
    assert r0["means"] == r1["means"] == [2.5, 0.1, 1.5, (2**24 + 1) / 2]
    assert (r0["own"], r1["own"]) == (1.0, 2.0)


def test_helpers_in_one_process(tmp_path: Path) -> None:
    import lrkit.torch as LT

    assert LT.get_rank() == 0 and LT.get_world_size() == 1 and LT.is_main_process()
    assert LT.broadcast_object({"a": 1}) == {"a": 1}
    assert LT.all_reduce_mean(torch.tensor(2.5)) == 2.5
    assert LT.all_reduce_mean(3) == 3.0
    path = tmp_path / "x.txt"
    assert LT.main_process_only(path.write_text)("hi") == 2
    assert path.read_text() == "hi"
    with pytest.raises(ValueError, match="fn"):
        LT.main_process_only(42)  # type: ignore[arg-type]


def test_main_process_only_keeps_the_functions_name_and_doc():
    import lrkit.torch as LT

    def save(path):
        """Write the report."""

    wrapped = LT.main_process_only(save)
    assert (wrapped.__name__, wrapped.__doc__, wrapped.__wrapped__) == (
        "save",
        "Write the report.",
        save,
    )


@pytest.mark.parametrize("bad", ["x", None, True, torch.ones(2), torch.ones(0)])
def test_all_reduce_mean_names_what_it_takes(bad):
    import lrkit.torch as LT

    with pytest.raises(ValueError, match=r"^value must be a number or a one-element tensor"):
        LT.all_reduce_mean(bad)


@pytest.mark.parametrize("bad", [torch.tensor(True), torch.tensor(1 + 2j)])
def test_all_reduce_mean_refuses_bool_and_complex_tensors_as_it_refuses_a_bool(bad):
    import lrkit.torch as LT

    with pytest.raises(ValueError) as info:
        LT.all_reduce_mean(bad)
    assert str(info.value) == (
        "value must be a real number or a one-element real tensor, got a tensor of dtype "
        f"{bad.dtype}"
    )


def test_broadcast_object_checks_src():
    import lrkit.torch as LT

    assert LT.broadcast_object(1, src=0) == 1
    for src in (1, 5):
        with pytest.raises(ValueError) as info:
            LT.broadcast_object(1, src=src)
        assert str(info.value) == f"src must be a rank in [0, 1) (one process), got {src}"
    with pytest.raises(ValueError, match=r"^src must be an integer >= 0"):
        LT.broadcast_object(1, src=-1)


LIGHTNING_SCRIPT = r"""
import json, os, sys, warnings
warnings.filterwarnings("ignore")
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
import pytorch_lightning as pl

import lrkit.torch as LT
from lrkit.feedback import ReduceOnPlateau
from lrkit.lightning import ReportMetric

torch.set_num_threads(1)
rank = int(os.environ["RANK"])
# a scripted validation metric per rank, logged without sync_dist: rank 0 keeps improving,
# rank 1 never does; their mean (1.0 each time) stops improving after the first evaluation
VALS = {0: [1.0, 0.9, 0.8, 0.7], 1: [1.0, 1.1, 1.2, 1.3]}[rank]


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", torch.tensor(VALS[self.current_epoch]))

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        sched = LT.scheduler(opt, "constant(0.1)", feedback=ReduceOnPlateau(factor=0.5, patience=0))
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": sched, "interval": "step", "monitor": "val_loss"}}

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(32, 4, generator=g)
        return DataLoader(TensorDataset(x, x[:, :1]), batch_size=8)

    def val_dataloader(self):
        x = torch.zeros(8, 4)
        return DataLoader(TensorDataset(x, x[:, :1]), batch_size=8)


model = Tiny()
trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=4, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0,
                     callbacks=[ReportMetric()])
trainer.fit(model)
sched = trainer.lr_scheduler_configs[0].scheduler
with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as f:
    json.dump({"lr": trainer.optimizers[0].param_groups[0]["lr"],
               "scale": sched.feedback.scale,
               "weight": model.net.weight.detach().double().sum().item()}, f)
# a process group left to interpreter exit may abort in gloo's teardown ("terminate called
# without an active exception") on a loaded machine: end it in step on both ranks
if torch.distributed.is_initialized():
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
"""


def test_lightning_report_metric_keeps_one_lr_on_every_rank(tmp_path: Path) -> None:
    pytest.importorskip("pytorch_lightning")
    script = tmp_path / "lightning_ddp.py"
    script.write_text(LIGHTNING_SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    r0, r1 = _launch(script, out)
    # each rank's own metric would cut rank 1 three times and rank 0 never (replicas drifting
    # apart); the mean over ranks (1.0 each time) stops improving after the first evaluation
    assert r0["scale"] == r1["scale"] == 0.125
    assert r0["lr"] == r1["lr"] == 0.1 * 0.125
    assert r0["weight"] == r1["weight"]


GUARD_SCRIPT = r"""
import json, os, sys
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import lrkit.torch as LT

torch.set_num_threads(1)
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = DDP(nn.Linear(4, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
guard = LT.DivergenceGuard(model, optimizer=opt, snapshot_every=1)
g = torch.Generator().manual_seed(rank)
oks = []
for k in range(12):
    x = torch.randn(16, 4, generator=g)
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x), x[:, :1])
    loss.backward()
    # rank 1 alone sees a non-finite loss at step 10 (the gradients stay finite)
    judged = loss.detach() * float("inf") if (rank == 1 and k == 10) else loss
    ok = guard.check(judged)
    oks.append(ok)
    if ok:
        opt.step()
with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as f:
    json.dump({"oks": oks, "scale": guard.scale, "lr": opt.param_groups[0]["lr"],
               "weights": [p.detach().double().sum().item() for p in model.parameters()]}, f)
dist.barrier()
dist.destroy_process_group()
# no interpreter teardown: gloo's threads can abort it ("terminate called without an
# active exception") after everything is written
sys.stdout.flush()
os._exit(0)
"""


def test_guard_ranks_restore_together(tmp_path: Path) -> None:
    script = tmp_path / "guard_ddp.py"
    script.write_text(GUARD_SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    r0, r1 = _launch(script, out)
    # before: rank 1 alone restored and skipped its step, rank 0 stepped (replicas apart)
    assert r0["oks"] == r1["oks"] == [True] * 10 + [False, True]
    assert r0["scale"] == r1["scale"] == 0.5 and r0["lr"] == r1["lr"] == 0.05
    assert r0["weights"] == r1["weights"]


ZERO_SCRIPT = r"""
import json, os, sys, warnings
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel as DDP

import lrkit.torch as LT
from lrkit.finder import LRFinderWarning

torch.set_num_threads(1)
dist.init_process_group("gloo")
rank = dist.get_rank()
g = torch.Generator().manual_seed(7 + rank)
data = [(torch.randn(8, 4, generator=g), torch.randn(8, 1, generator=g)) for _ in range(8)]
mse = nn.functional.mse_loss
out = {}

# a ZeroRedundancyOptimizer's state (this rank's shard, in the Adam it wraps) comes back
weights, said = [], []
for sweep in (False, True):
    torch.manual_seed(0)
    model = DDP(nn.Linear(4, 1))
    opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.Adam, lr=0.01)
    for x, y in data[:3]:
        opt.zero_grad()
        mse(model(x), y).backward()
        opt.step()
    if sweep:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = LT.find_lr(model, opt, mse, data, num_iter=30, end_lr=1e-3)
        said = [str(w.message) for w in caught if issubclass(w.category, LRFinderWarning)]
        out["result_warnings"] = len(res.warnings)
        out["steps_after"] = [float(s["step"]) for s in opt.optim.state.values()]
    x, y = data[3]
    opt.zero_grad()
    mse(model(x), y).backward()
    opt.step()
    weights.append([p.detach().double().flatten().tolist() for p in model.parameters()])
out["same_after_sweep"] = weights[0] == weights[1]
out["said"] = len(said)
try:
    LT.DivergenceGuard(model, optimizer=opt)
    out["guard"] = "built"
except ValueError as exc:
    out["guard"] = str(exc)

# fit: rank 1 alone draws an inf loss at its 4th batch; both ranks stop there
torch.manual_seed(0)
model = DDP(nn.Linear(4, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
batches = list(data)
if rank == 1:
    batches[3] = (batches[3][0], torch.full((8, 1), float("inf")))
hist = LT.fit(model, optimizer=opt, loss_fn=mse, data=batches, steps=6)
out["fit"] = [hist.steps, hist.diverged]
dist.barrier()
with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as f:
    json.dump(out, f)
dist.destroy_process_group()
sys.stdout.flush()
os._exit(0)
"""


def test_zero_optimizer_fit_and_warnings_across_ranks(tmp_path: Path) -> None:
    """find_lr restores a ZeroRedundancyOptimizer's state (each rank's shard, in the
    optimizer it wraps) and warns on rank 0 only; the guard refuses it in one line; fit
    stops every rank where one rank's loss is not finite (a rank left alone would wait in
    the next gradient all-reduce)."""
    script = tmp_path / "zero_ddp.py"
    script.write_text(ZERO_SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    r0, r1 = _launch(script, out)
    for r in (r0, r1):
        assert r["same_after_sweep"] and r["steps_after"] == [3.0]
        assert r["result_warnings"] >= 1
        assert r["guard"].startswith("optimizer: a ZeroRedundancyOptimizer keeps each rank's")
        assert r["fit"] == [3, True]
    assert (r0["said"], r1["said"]) == (r0["result_warnings"], 0)


POST_LOCAL_SGD_SCRIPT = r"""
import json, os, sys
import torch
import torch.distributed as dist
from torch.distributed.algorithms.model_averaging.averagers import PeriodicModelAverager
from torch.distributed.optim import PostLocalSGDOptimizer

import lrkit.torch as LT

torch.set_num_threads(1)
dist.init_process_group("gloo")
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
inner = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
opt = PostLocalSGDOptimizer(optim=inner, averager=PeriodicModelAverager(period=2, warmup_steps=0))
x = torch.randn(8, 4)
before = [p.detach().clone() for p in model.parameters()]
res = LT.find_lr(model, opt, torch.nn.functional.mse_loss, [(x, x[:, :1])] * 4, num_iter=20,
                 warn=False)
restored = all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
guard = LT.DivergenceGuard(model, optimizer=opt, snapshot_every=1)
oks = []
for k in range(4):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), x[:, :1])
    loss.backward()
    ok = guard.check(loss * float("nan") if k == 2 else loss)
    oks.append(ok)
    if ok:
        opt.step()
with open(os.path.join(sys.argv[1], f"rank{dist.get_rank()}.json"), "w") as f:
    json.dump({"oks": oks, "restores": guard.restores, "restored": restored,
               "suggested": res.suggestion is not None, "family": res.optimizer_family,
               "connected": opt.param_groups is inner.param_groups,
               "lrs": [opt.param_groups[0]["lr"], inner.param_groups[0]["lr"]]}, f)
dist.destroy_process_group()
sys.stdout.flush()
os._exit(0)
"""


def test_a_wrapper_sharing_its_inner_optimizers_state_is_guarded(tmp_path: Path) -> None:
    """PostLocalSGDOptimizer's state is its inner optimizer's (not sharded, as
    ZeroRedundancyOptimizer's): the guard restores it as a plain optimizer's, and the range
    test reads the LR its inner optimizer defaults to (it has no defaults of its own)."""
    script = tmp_path / "post_local_sgd.py"
    script.write_text(POST_LOCAL_SGD_SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    (r0,) = _launch(script, out, world=1)
    # the inner optimizer keeps the wrapper's groups: it steps at the cut LR
    assert r0 == {"oks": [True, True, False, True], "restores": 1, "restored": True,
                  "suggested": True, "family": "momentum", "connected": True,
                  "lrs": [0.005, 0.005]}  # fmt: skip


def test_all_reduce_mean_gives_a_float_in_one_process() -> None:
    import lrkit.torch as LT

    for value, expected in ((3, 3.0), (torch.tensor(2.5), 2.5), (np.float32(0.5), 0.5)):
        got = LT.all_reduce_mean(value)
        assert type(got) is float and got == expected


def test_main_process_only_skips_the_call_on_another_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    import lrkit.torch as LT

    calls: list[str] = []
    write = LT.main_process_only(calls.append)
    rank1 = types.SimpleNamespace(
        is_available=lambda: True, is_initialized=lambda: True, get_rank=lambda: 1
    )
    monkeypatch.setitem(sys.modules, "torch.distributed", rank1)
    assert LT.is_main_process() is False
    assert write("on rank 1") is None
    monkeypatch.undo()
    assert write("on rank 0") is None  # list.append's own result
    assert calls == ["on rank 0"]


@pytest.fixture
def one_rank_group(tmp_path: Path):
    """A gloo process group of this process alone (world size 1), ended after the test."""
    dist.init_process_group(
        "gloo", init_method=(tmp_path / "rendezvous").as_uri(), rank=0, world_size=1
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.usefixtures("one_rank_group")
def test_rank_broadcast_and_mean_in_a_process_group_of_one() -> None:
    import lrkit.torch as LT

    assert (LT.get_rank(), LT.get_world_size(), LT.is_main_process()) == (0, 1, True)
    assert LT.broadcast_object({"a": [1, 2]}) == {"a": [1, 2]}
    with pytest.raises(ValueError) as info:
        LT.broadcast_object(1, src=1)
    assert str(info.value) == "src must be a rank in [0, 1), got 1"
    own = torch.tensor([0.1], dtype=torch.float64)
    got = LT.all_reduce_mean(own)
    assert type(got) is float and got == 0.1
    assert own.tolist() == [0.1]
    assert LT.all_reduce_mean(torch.tensor(7, dtype=torch.int32)) == 7.0
    called: list[int] = []
    assert LT.main_process_only(lambda: called.append(1) or "done")() == "done"
    assert called == [1]
