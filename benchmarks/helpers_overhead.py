"""Per-step cost of the helpers left on for a whole run, against the same loop without them.

Each row times the same model with and without the helper at its defaults, in one process:
PyTorch (1 thread) with a hand-written loop, Keras 3 (JAX backend, 1 thread) with
``model.fit``. PyTorch's two loops alternate step by step; Keras' variants alternate ``fit()``
calls. Timing is in blocks, many rounds; a block holds a whole number of the helper's periodic
events (snapshots, logs), so each block pays for them. The us/step columns are each variant's
fastest block (best-of-N); "ratio" is the median over rounds of helper / bare for the blocks
of the same round (run back to back, so a loaded machine slows both alike), in wall-clock time
(what a run takes); "ratio (CPU time)" is the same with the process's CPU time, shown for
reference (it ignores waiting, e.g. the overlap Keras loses when a callback waits for each
step's result).

    python benchmarks/helpers_overhead.py                        # ~4 min on 2 cores
    python benchmarks/helpers_overhead.py --json benchmarks/results/helpers_overhead.json
    python benchmarks/helpers_overhead.py --quick                # fewer rounds

Goal: every helper at most 1.05x the bare step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

# one thread everywhere, and the JAX backend for Keras: set before torch/jax/keras load
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
).strip()
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

GOAL = 1.05


Samples = dict[str, list[tuple[float, float]]]  # variant -> per round (wall, CPU) per step


def _rounds(variants: dict[str, Callable[[], None]], rounds: int, steps: int) -> Samples:
    """Run every variant's block once per round (order rotated each round); per variant and
    round the wall-clock and process CPU time per step."""
    out: Samples = {k: [] for k in variants}
    names = list(variants)
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            c0, t0 = time.process_time(), time.perf_counter()
            variants[name]()
            t1, c1 = time.perf_counter(), time.process_time()
            out[name].append(((t1 - t0) / steps, (c1 - c0) / steps))
    return out


def _row(label: str, task: str, samples: Samples, key: str) -> list[Any]:
    """Best-of-N times per step, and the median over rounds of the helper/bare ratio of the
    same round (both ran back to back, under the same load)."""
    bare, helper = samples["bare"], samples[key]

    def ratio(i: int) -> float:
        return round(statistics.median(h[i] / b[i] for b, h in zip(bare, helper)), 3)

    return [
        label,
        task,
        round(min(b[0] for b in bare) * 1e6, 1),
        round(min(h[0] for h in helper) * 1e6, 1),
        ratio(0),
        ratio(1),
    ]


# ------------------------------------------------------------------------------- PyTorch
def torch_rows(rounds: int, block: int) -> list[list[Any]]:
    import torch
    import torch.nn.functional as F

    import lrkit.torch as lt
    from lrkit import schedules as S

    torch.set_num_threads(1)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(64, 256, generator=gen), torch.randint(0, 10, (64,), generator=gen))
        for _ in range(8)
    ]

    def mlp() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(256, 512),
            torch.nn.ReLU(),
            torch.nn.Linear(512, 512),
            torch.nn.ReLU(),
            torch.nn.Linear(512, 10),
        )

    def make(opt_cls: type, helper: str | None) -> Callable[[int], None]:
        model = mlp()
        opt = opt_cls(model.parameters(), lr=1e-3)
        guard = (
            lt.DivergenceGuard(model, optimizer=opt, check_grads=helper == "guard")
            if helper in ("guard", "guard_no_grads")
            else None
        )
        if helper == "effective_lr":
            lt.EffectiveLRLogger(opt, every=10, tensorboard=False)
        sched = (
            lt.scheduler(opt, S.cosine(1e-3, total_steps=10**6)) if helper == "scheduler" else None
        )

        def step(i: int) -> None:
            x, y = batches[i % len(batches)]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            if guard is None or guard.check(loss):
                opt.step()
            if sched is not None:
                sched.step()

        for i in range(block):  # warm up (allocations, optimizer state, first snapshot)
            step(i)
        return step

    def compare(bare: Callable[[int], None], helper: Callable[[int], None]) -> Samples:
        """Blocks of ``block`` steps of each, interleaved step by step (both see the same
        load): per round the wall and CPU time per step of each."""
        out: Samples = {"bare": [], "helper": []}
        i = 0
        for _ in range(rounds):
            acc = {"bare": [0.0, 0.0], "helper": [0.0, 0.0]}
            for _ in range(block):
                for name, fn in (("bare", bare), ("helper", helper)):
                    c0, t0 = time.process_time(), time.perf_counter()
                    fn(i)
                    t1, c1 = time.perf_counter(), time.process_time()
                    acc[name][0] += t1 - t0
                    acc[name][1] += c1 - c0
                i += 1
            for name in out:
                out[name].append((acc[name][0] / block, acc[name][1] / block))
        return out

    rows = []
    for helper, opt_cls, label in (
        ("guard", torch.optim.AdamW, "lrkit.torch.DivergenceGuard(model, optimizer=opt)"),
        (
            "guard_no_grads",
            torch.optim.AdamW,
            "not a default, for the gradient screen's share: the same, check_grads=False",
        ),
        ("effective_lr", torch.optim.Adam, "lrkit.torch.EffectiveLRLogger(opt, every=10)"),
        ("scheduler", torch.optim.Adam, "lrkit.torch.scheduler(opt, cosine).step()"),
    ):
        samples = compare(make(opt_cls, None), make(opt_cls, helper))
        task = f"MLP 256-512-512-10, {opt_cls.__name__}, batch 64"
        rows.append(_row(label, task, samples, "helper"))
    return rows


# ------------------------------------------------------------------------------- Keras
def keras_rows(rounds: int, steps: int) -> list[list[Any]]:
    import keras

    import lrkit.keras as lk
    from lrkit import schedules as S

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64 * steps, 64)).astype("float32")
    y = rng.integers(0, 10, 64 * steps)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # compile

    class NoOp(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            pass

    class KerasPerBatch(keras.callbacks.Callback):  # type: ignore[misc]
        """The Keras way to a per-batch LR from a callback: what LearningRateScheduler does
        per epoch (``model.optimizer.learning_rate = value``), before each batch."""

        def __init__(self) -> None:
            super().__init__()
            self.step = 0

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            self.model.optimizer.learning_rate = 1e-3 * 0.5 ** (self.step / 10**6)
            self.step += 1

    def fit(make: Callable[[], list[Any]]) -> Callable[[], None]:
        def run() -> None:
            model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=make())

        return run

    variants = {
        "bare": fit(lambda: []),
        "noop": fit(lambda: [NoOp()]),
        "keras_per_batch": fit(lambda: [KerasPerBatch()]),
        "guard": fit(lambda: [lk.DivergenceGuard()]),
        "logger_batch": fit(lambda: [lk.LRLogger(per="batch")]),
        "logger_epoch": fit(lambda: [lk.LRLogger()]),
        "scheduler": fit(lambda: [lk.LRScheduler(S.cosine(1e-3, total_steps=10**6))]),
    }
    samples = _rounds(variants, rounds, steps)
    task = f"MLP 64-256-256-10, Adam, batch 64, model.fit ({keras.backend.backend()})"
    rows = []
    for key, label in (
        ("guard", "lrkit.keras.DivergenceGuard()"),
        ("logger_batch", 'lrkit.keras.LRLogger(per="batch")'),
        ("logger_epoch", "lrkit.keras.LRLogger()"),
        ("scheduler", "lrkit.keras.LRScheduler(cosine) (per batch)"),
        ("noop", "for scale: a Keras callback with an empty on_train_batch_end"),
        (
            "keras_per_batch",
            "for scale: a Keras callback setting model.optimizer.learning_rate each batch",
        ),
    ):
        rows.append(_row(label, task, samples, key))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30, help="timed blocks per variant")
    ap.add_argument("--block", type=int, default=50, help="PyTorch steps per block")
    ap.add_argument("--keras-steps", type=int, default=200, help="Keras steps per fit() block")
    ap.add_argument("--quick", action="store_true", help="5 rounds")
    ap.add_argument("--only", choices=("torch", "keras"), help="one framework only")
    ap.add_argument("--json", metavar="PATH", help="write the table as JSON")
    args = ap.parse_args()
    rounds = 5 if args.quick else args.rounds
    t_start = time.time()
    rows: list[list[Any]] = []
    if args.only != "keras":
        rows += torch_rows(rounds, args.block)
    if args.only != "torch":
        rows += keras_rows(rounds, args.keras_steps)
    columns = [
        "helper (defaults; TensorBoard off)",
        "task",
        "bare us/step",
        "with helper us/step",
        "ratio",
        "ratio (CPU time)",
    ]
    widths = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]
    print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    helpers = [r for r in rows if not str(r[0]).startswith(("for scale", "not a default"))]
    worst = max(float(r[4]) for r in helpers)
    print(f"worst helper: {worst:.3f}x (goal <= {GOAL}x); {time.time() - t_start:.0f} s")
    if args.json:
        import torch

        out = {
            "tables": {"overhead": {"columns": columns, "rows": rows}},
            "goal": GOAL,
            "worst": worst,
            "rounds": rounds,
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "numpy": np.__version__,
            },
        }
        if args.only != "torch":
            import jax
            import keras

            out["versions"].update(keras=keras.__version__, jax=jax.__version__)
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
