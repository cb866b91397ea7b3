"""Hugging Face Trainer with lrkit: the range test on the Trainer, an lrkit schedule built in
create_scheduler (the Trainer's weight-decay groups kept), plateau feedback on eval_loss.

    python examples/hf_trainer.py      # ~20 s on a CPU; pip install 'lrkit[hf]'

The model is a tiny BERT built from a config (nothing is downloaded); the task: is the first
of eight tokens in the upper half of the vocabulary?
"""

from __future__ import annotations

import torch
import transformers

from lrkit import schedules as S
from lrkit.feedback import ReduceOnPlateau
from lrkit.hf import ReportMetric, Trainer, find_lr


class UpperHalf(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 32, (n, 8), generator=g)
        self.labels = (self.ids[:, 0] >= 16).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def tiny_bert() -> transformers.PreTrainedModel:
    """A 1-layer BERT classifier from a config (seeded, nothing downloaded); the test suite
    builds its models with this function too."""
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def main() -> None:
    transformers.logging.set_verbosity_error()
    args = transformers.TrainingArguments(
        output_dir="hf_out",
        per_device_train_batch_size=32,
        num_train_epochs=3,
        learning_rate=1e-3,
        weight_decay=0.01,
        eval_strategy="epoch",
        save_strategy="no",
        logging_steps=16,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    train, val = UpperHalf(2048, seed=1), UpperHalf(256, seed=2)  # 3 epochs: 192 steps

    # 1. the range test on the Trainer's own model, optimizer, collator and data; all restored
    probe = transformers.Trainer(
        model=tiny_bert(), args=args, train_dataset=train, eval_dataset=val
    )
    result = find_lr(probe)  # total_steps: read off the Trainer (192)
    print(f"range test: suggestion {result.suggestion:.2e}, max_lr {result.max_lr:.2e}")

    # 2. cosine from the suggestion, built in create_scheduler; x0.5 when eval_loss stops improving
    trainer = Trainer(
        model=tiny_bert(),
        args=args,
        train_dataset=train,
        eval_dataset=val,
        schedule=lambda total_steps: S.cosine(result.suggestion, total_steps=total_steps),
        feedback=ReduceOnPlateau(factor=0.5, patience=0),
        callbacks=[ReportMetric("eval_loss")],
    )
    trainer.train()
    print(
        "param groups (weight decay):", [g["weight_decay"] for g in trainer.optimizer.param_groups]
    )
    for h in trainer.state.log_history:
        if "eval_loss" in h:
            print(f"epoch {h['epoch']:.0f}  eval loss {h['eval_loss']:.4f}")
    print(
        "logged LRs:",
        [f"{h['learning_rate']:.2e}" for h in trainer.state.log_history if "learning_rate" in h],
    )
    print("plateau scale:", trainer.lr_scheduler.feedback.scale)


if __name__ == "__main__":
    main()
