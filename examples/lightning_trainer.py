"""PyTorch Lightning with lrkit: the range test as a callback, a one-cycle schedule built from
its result, then plateau feedback through the scheduler config's "monitor" key.

    python examples/lightning_trainer.py      # ~20 s on a CPU; pip install 'lrkit[lightning]'
"""

from __future__ import annotations

import warnings

import pytorch_lightning as pl
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import lrkit.torch as lt
from lrkit import schedules as S
from lrkit.feedback import ReduceOnPlateau
from lrkit.lightning import LRFinder, ReportMetric
from lrkit.torch.demo import digits_task

warnings.filterwarnings("ignore", ".*does not have many workers.*")
task = digits_task(seed=0)  # scikit-learn digits: 1348 train / 449 val images, 8x8


class Digits(pl.LightningModule):
    def __init__(self, lr: float = 1e-3, plateau: bool = False) -> None:
        super().__init__()
        self.lr = lr  # LRFinder(set_lr=True) writes its suggestion here
        self.plateau = plateau
        self.net = task.make_model()

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)  # muted during the range test
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        if not self.plateau:
            return opt
        # halve the LR whenever val_loss improves by less than 2% (patience=0: at once)
        plateau = ReduceOnPlateau(factor=0.5, patience=0, threshold=0.02)
        sched = lt.scheduler(opt, S.constant(self.lr), feedback=plateau)
        return {
            "optimizer": opt,
            # every step advances the schedule; ReportMetric feeds "monitor" after validation
            "lr_scheduler": {"scheduler": sched, "interval": "step", "monitor": "val_loss"},
        }

    def train_dataloader(self):
        return DataLoader(TensorDataset(task.x_train, task.y_train), batch_size=32, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(task.x_val, task.y_val), batch_size=256)


def quiet_trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,  # an epoch is 43 steps
        **kwargs,
    )


# 1. range test before fit, then one-cycle to max_lr over the whole run
pl.seed_everything(0, verbose=False)
finder = LRFinder(
    schedule=lambda result, total_steps: S.onecycle(result.max_lr, total_steps=total_steps)
)
model = Digits()
trainer = quiet_trainer(max_epochs=3, callbacks=[finder], logger=pl.loggers.CSVLogger("logs"))
trainer.fit(model)
r = finder.result
print(f"range test: suggestion {r.suggestion:.2e}, max_lr {r.max_lr:.2e} ({r.stop_reason})")
print(f"plot and curve: {trainer.logger.log_dir}/lr_finder.png, lr_finder.json")
print(f"one-cycle, 3 epochs: val loss {trainer.callback_metrics['val_loss']:.4f}")

# 2. plateau feedback: constant x ReduceOnPlateau, fed val_loss after every validation
pl.seed_everything(0, verbose=False)
model = Digits(lr=r.suggestion, plateau=True)
trainer = quiet_trainer(max_epochs=5, callbacks=[ReportMetric()], logger=False)
trainer.fit(model)
sched = trainer.lr_scheduler_configs[0].scheduler
print(
    f"plateau: val loss {trainer.callback_metrics['val_loss']:.4f}, LR halved at steps "
    f"{sched.feedback.reductions}, scale now x{sched.feedback.scale:g}"
)
