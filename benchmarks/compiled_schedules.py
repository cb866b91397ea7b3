"""Compiled-schedules benchmark: lrkit's schedules inside compiled JAX steps vs the framework's own,
in one run.

1. ``optax`` table: per-step cost of a jitted Adam step of a small MLP with the learning rate
   from ``lrkit.optax.schedule(s)`` (default: the value table) vs the same step with optax's own
   schedule of the same shape (``cosine_decay_schedule``, ``cosine_onecycle_schedule``,
   ``exponential_decay``, ``join_schedules`` of a linear warmup and a cosine), and with
   ``evaluation="host"`` (a host round trip per step) for contrast. Goal: ratio <= 1.05.
   ``optax_plateau`` table: the same step with a reduce-on-plateau chained after Adam and
   given the loss every step (``optax.contrib.reduce_on_plateau`` and
   ``lrkit.optax.reduce_on_plateau`` at their defaults, and lrkit's with
   ``accumulation_size=10``), against the bare step; then the defaults on a wider MLP with
   larger batches (a step about ten times as long), with a noise row of its own.
2. ``keras`` table: per-step cost of ``model.fit`` (JAX backend, SGD) with ``lrkit.keras.schedule``
   vs Keras' own ``CosineDecay`` (same model, same data). Goal: ratio <= 1.05.
3. ``accuracy`` table: max relative error vs the float64 formula over steps 0..``--error-steps``
   of the default path (the table) and of the traced float32 formula (``evaluation="formula"``),
   and whether the default path equals ``np.float32(s.values(t))`` bit for bit there.
4. ``table_cost`` table: build time, first-jit time and peak host memory of a value table of
   1e5, 2**20 (the default limit) and 1e7 entries, each in a fresh process.

Each comparison alternates blocks of ``--steps`` steps (reference, lrkit, reference, ...) and
reports the median of the ratios of each lrkit block to the reference blocks around it (stable
on a loaded machine), in CPU time and in wall-clock time. The first row of each table compares
two separately built instances of the reference step and shows the noise level (differences
between two compiled programs of the same model included). Garbage collection is off inside a
timed block, as in ``timeit``.

Run: python benchmarks/compiled_schedules.py [--repeat 60] [--steps 200] [--json PATH]
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Iterable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import lrkit.keras as lk  # noqa: E402
import lrkit.optax as lo  # noqa: E402
from lrkit import schedules as S  # noqa: E402
from lrkit.schedules.tables import value_table  # noqa: E402

LR = 1e-3
TOTAL = 1_000_000  # schedule length: the tables cover steps 0..1e6
WARM = 10_000


def schedules() -> dict[str, tuple[S.Schedule, Any]]:
    """name -> (lrkit schedule, optax's own schedule of the same shape)."""
    return {
        "cosine": (S.cosine(LR, total_steps=TOTAL), optax.cosine_decay_schedule(LR, TOTAL)),
        "one-cycle": (
            S.onecycle(LR, total_steps=TOTAL),
            optax.cosine_onecycle_schedule(TOTAL, LR),
        ),
        "exponential": (
            S.exponential(LR, gamma=0.99999),
            optax.exponential_decay(LR, 1, 0.99999),
        ),
        "join (warmup + cosine)": (
            S.with_warmup(S.cosine(LR, total_steps=TOTAL - WARM), warmup_steps=WARM),
            optax.join_schedules(
                [
                    optax.linear_schedule(0.0, LR, WARM),
                    optax.cosine_decay_schedule(LR, TOTAL - WARM),
                ],
                [WARM],
            ),
        ),
    }


# ----------------------------------------------------------------------------- timing helpers


Timer = Callable[[], tuple[float, float]]


def paired(ref: Timer, ours: Timer, rounds: int) -> list[float]:
    """Time ``ref, ours, ref, ours, ..., ref`` (blocks of steps, back to back) and compare each
    ``ours`` block with the geometric mean of the two ``ref`` blocks around it: the median of
    those ratios is stable on a loaded machine, where the load drifts between blocks.

    Returns ``[ref CPU us/step, ours CPU us/step (both best of all blocks), median CPU-time
    ratio, median wall-clock ratio]``. CPU time (this process, all threads) does not count the
    time other processes hold the cores; the wall-clock ratio includes it."""
    r = [ref()]
    cpu_ratios, wall_ratios, ours_best = [], [], (float("inf"), float("inf"))
    for _ in range(rounds):
        o = ours()
        r.append(ref())
        a, b = r[-2], r[-1]
        cpu_ratios.append(o[0] / (a[0] * b[0]) ** 0.5)
        wall_ratios.append(o[1] / (a[1] * b[1]) ** 0.5)
        ours_best = (min(ours_best[0], o[0]), min(ours_best[1], o[1]))
    ref_best = min(x[0] for x in r)
    return [
        round(ref_best * 1e6, 1),
        round(ours_best[0] * 1e6, 1),
        round(statistics.median(cpu_ratios), 3),
        round(statistics.median(wall_ratios), 3),
    ]


# ----------------------------------------------------------------------------- optax


def _mlp_data(rng: np.random.Generator, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((n, 32)).astype(np.float32)
    y = (x @ rng.standard_normal((32, 1))).astype(np.float32)
    return x, y


def _init_params(rng: np.random.Generator, hidden: int = 64) -> dict[str, jax.Array]:
    def dense(i: int, o: int) -> jax.Array:
        return jnp.asarray(rng.standard_normal((i, o)).astype(np.float32) / np.sqrt(i))

    return {"w1": dense(32, hidden), "w2": dense(hidden, hidden), "w3": dense(hidden, 1)}


def _loss(p: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    h = jnp.tanh(x @ p["w1"])
    h = jnp.tanh(h @ p["w2"])
    return jnp.mean((h @ p["w3"] - y) ** 2)


def optax_timer(
    sched: Any, steps: int, plateau: Any = None, *, hidden: int = 64, batch: int = 64
) -> Timer:
    """A function timing ``steps`` jitted Adam steps with ``sched``; returns (CPU, wall) s/step.
    ``plateau``: a transformation chained after Adam and given the step's loss as ``value``
    (a reduce-on-plateau); ``hidden``, ``batch``: the MLP's width and the batch size."""
    rng = np.random.default_rng(0)
    x, y = (jnp.asarray(a) for a in _mlp_data(rng, batch))
    opt = optax.adam(sched) if plateau is None else optax.chain(optax.adam(sched), plateau)
    params = _init_params(rng, hidden)
    state = opt.init(params)

    @jax.jit
    def step(p: Any, st: Any) -> Any:
        loss, g = jax.value_and_grad(_loss)(p, x, y)
        if plateau is None:
            upd, st = opt.update(g, st, p)
        else:
            upd, st = opt.update(g, st, p, value=loss)
        return optax.apply_updates(p, upd), st, loss

    carry = [params, state]
    out = step(*carry)  # compile
    jax.block_until_ready(out)

    def run() -> float:
        p, st = carry
        gc.disable()  # as timeit does: no collection pauses inside a timed block
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(steps):
            p, st, loss = step(p, st)
        jax.block_until_ready(loss)
        c1, w1 = time.process_time(), time.perf_counter()
        gc.enable()
        return (c1 - c0) / steps, (w1 - w0) / steps

    return run


# ----------------------------------------------------------------------------- keras


def keras_timer(lr: Any, steps: int) -> Timer:
    """A function timing one ``model.fit`` epoch of ``steps`` SGD steps; (CPU, wall) s/step."""
    rng = np.random.default_rng(0)
    x, y = _mlp_data(rng, 16 * steps)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32,)),
            keras.layers.Dense(64, activation="tanh"),
            keras.layers.Dense(64, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)  # compile

    def run() -> float:
        gc.disable()
        c0, w0 = time.process_time(), time.perf_counter()
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
        c1, w1 = time.process_time(), time.perf_counter()
        gc.enable()
        return (c1 - c0) / steps, (w1 - w0) / steps

    return run


# ----------------------------------------------------------------------------- accuracy


def max_rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    got = np.asarray(got, dtype=np.float64)
    nz = ref != 0
    rel = np.abs(got[nz] - ref[nz]) / np.abs(ref[nz])
    zero_err = float(np.max(np.abs(got[~nz]))) if (~nz).any() else 0.0
    return float(max(rel.max(initial=0.0), np.inf if zero_err > 0 else 0.0))


_TABLE_COST = """
import json, sys, time
import jax, jax.numpy as jnp
import lrkit.optax as lo
from lrkit import schedules as S
from lrkit.schedules.tables import value_table
n = int(sys.argv[1])
s = S.inverse_sqrt(0.1, warmup_steps=1000)  # never constant: the table has exactly n entries
# warm up the compiler with the formula alone, then reset the peak memory counter
jax.jit(lambda c: lo.schedule(s, evaluation="formula")(c) * 2.0)(jnp.int32(5)).block_until_ready()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
def status_mb(key):
    with open("/proc/self/status") as f:
        return int(dict(line.split(":", 1) for line in f)[key].split()[0]) / 1024
base = status_mb("VmRSS")
build = first = float("inf")
for k in range(3):  # best of 3: a new schedule each time, so each first call compiles anew
    t0 = time.perf_counter()
    if n:
        value_table(s, limit=n)  # the build alone
    build = min(build, time.perf_counter() - t0)
    g = lo.schedule(s, table_limit=n) if n else lo.schedule(s, evaluation="formula")
    t0 = time.perf_counter()
    jax.jit(lambda c: g(c) * (3.0 + k))(jnp.int32(7)).block_until_ready()  # build + compile
    first = min(first, time.perf_counter() - t0)
print(json.dumps([build, first, status_mb("VmHWM") - base]))
"""


def table_cost(n: int) -> list[Any]:
    """Build time, first jitted call (build + trace + compile) time (best of 3) and the rise
    of peak host memory for an ``n``-entry table (``0``: the traced formula, no table), in a
    fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _TABLE_COST, str(n)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    build, compile_s, mem = json.loads(out.stdout.strip().splitlines()[-1])
    label = f"{n:,}" if n else 'none (evaluation="formula")'
    return [label, round(n * 4 / 2**20, 2), round(build, 3), round(compile_s, 3), round(mem)]


def _versus(
    title: str,
    noise: tuple[str, Timer, Timer],
    rows: Iterable[tuple[str, Timer, Timer]],
    repeat: int,
    names: tuple[str, str] = ("reference", "lrkit"),
) -> dict[str, Any]:
    """One timing table: the anchor against a second instance of itself (the noise row),
    then a row per ``(name, reference, timed)`` (timed as ``rows`` yields them); ``names``
    head the two us/step columns."""
    label, anchor, anchor2 = noise
    out = [[label, *paired(anchor, anchor2, repeat)]]
    out += [[name, *paired(ref, ours, repeat)] for name, ref, ours in rows]
    columns = [
        f"{names[0]} us/step (CPU, best)",
        f"{names[1]} us/step (CPU, best)",
        "ratio (median, CPU)",
        "ratio (median, wall)",
    ]
    return {"columns": [title, *columns], "rows": out}


def _print(key: str, tab: dict[str, Any]) -> None:
    print(f"\n[{key}]")
    print(" | ".join(str(c) for c in tab["columns"]))
    for row in tab["rows"]:
        print(" | ".join(str(c) for c in row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=60, help="paired rounds per comparison")
    ap.add_argument("--steps", type=int, default=200, help="optax steps timed per block")
    ap.add_argument("--keras-steps", type=int, default=400, help="steps per model.fit block")
    ap.add_argument("--error-steps", type=int, default=1_000_000)
    ap.add_argument("--json", default=None, help="write the tables to this JSON file")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    scheds = schedules()
    tables: dict[str, Any] = {}

    # 1. optax under jax.jit
    own_cos = optax_timer(scheds["cosine"][1], args.steps)
    own_cos2 = optax_timer(scheds["cosine"][1], args.steps)  # a second, separate instance

    def optax_rows() -> Iterator[tuple[str, Timer, Timer]]:
        for name, (s, own) in scheds.items():
            ref = own_cos if name == "cosine" else optax_timer(own, args.steps)
            yield name, ref, optax_timer(lo.schedule(s), args.steps)
        host = lo.schedule(scheds["cosine"][0], evaluation="host")
        yield 'cosine, evaluation="host"', own_cos, optax_timer(host, args.steps)

    tables["optax"] = _versus(
        "jitted Adam step (MLP): lrkit vs optax's own",
        ("optax's own cosine vs another instance (noise)", own_cos, own_cos2),
        optax_rows(),
        args.repeat,
    )
    _print("optax", tables["optax"])

    # 1b. a reduce-on-plateau after Adam (the loss as its value every step), against the bare
    # step: optax.contrib's and lrkit's, at their defaults and with a window of 10 values, on
    # the small MLP above and on a wider one with larger batches (a step ten times as long)
    bare = optax_timer(LR, args.steps)
    bare2 = optax_timer(LR, args.steps)
    wide = {"hidden": 256, "batch": 128}

    def plateau_rows() -> Iterator[tuple[str, Timer, Timer]]:
        yield (
            "optax.contrib.reduce_on_plateau()",
            bare,
            optax_timer(LR, args.steps, optax.contrib.reduce_on_plateau()),
        )
        yield (
            "lrkit.optax.reduce_on_plateau()",
            bare,
            optax_timer(LR, args.steps, lo.reduce_on_plateau()),
        )
        yield (
            "lrkit.optax.reduce_on_plateau(accumulation_size=10)",
            bare,
            optax_timer(LR, args.steps, lo.reduce_on_plateau(accumulation_size=10)),
        )
        big = optax_timer(LR, args.steps // 4, **wide)
        yield (
            "the bare step vs another instance (noise), MLP 32-256-256-1, batch 128",
            big,
            optax_timer(LR, args.steps // 4, **wide),
        )
        yield (
            "optax.contrib.reduce_on_plateau(), MLP 32-256-256-1, batch 128",
            big,
            optax_timer(LR, args.steps // 4, optax.contrib.reduce_on_plateau(), **wide),
        )
        yield (
            "lrkit.optax.reduce_on_plateau(), MLP 32-256-256-1, batch 128",
            big,
            optax_timer(LR, args.steps // 4, lo.reduce_on_plateau(), **wide),
        )

    tables["optax_plateau"] = _versus(
        "jitted Adam step (MLP 32-64-64-1, batch 64 unless named): with a plateau "
        "transformation vs without",
        ("the bare step vs another instance (noise)", bare, bare2),
        plateau_rows(),
        args.repeat,
        names=("bare step", "with it"),
    )
    _print("optax_plateau", tables["optax_plateau"])

    # 2. keras model.fit on the jax backend, against Keras' own CosineDecay
    k_cos = keras_timer(keras.optimizers.schedules.CosineDecay(LR, TOTAL), args.keras_steps)
    k_cos2 = keras_timer(keras.optimizers.schedules.CosineDecay(LR, TOTAL), args.keras_steps)

    def keras_rows() -> Iterator[tuple[str, Timer, Timer]]:
        for name, (s, _own) in scheds.items():
            yield name, k_cos, keras_timer(lk.schedule(s), args.keras_steps)
        host = lk.schedule(scheds["cosine"][0], evaluation="host")
        yield 'cosine, evaluation="host"', k_cos, keras_timer(host, args.keras_steps)

    tables["keras"] = _versus(
        "model.fit step (SGD, MLP): lrkit vs Keras CosineDecay",
        ("Keras CosineDecay vs another instance (noise)", k_cos, k_cos2),
        keras_rows(),
        args.repeat,
    )
    _print("keras", tables["keras"])

    # 3. accuracy over steps 0..error_steps
    n = args.error_steps + 1
    steps = np.arange(n)
    arows = []
    for name, (s, _own) in scheds.items():
        ref64 = s.values(steps)
        got = np.asarray(jax.jit(lo.schedule(s))(jnp.arange(n, dtype=jnp.int32)))
        traced = np.asarray(
            jax.jit(lo.schedule(s, evaluation="formula"))(jnp.arange(n, dtype=jnp.int32))
        )
        vt = value_table(s)
        exact = bool(np.array_equal(got, ref64.astype(np.float32)))
        arows.append(
            [
                name,
                f"{max_rel_error(got, ref64):.2e}",
                "yes" if exact else "no",
                f"{max_rel_error(traced, ref64):.2e}",
                vt.size,
                vt.beyond,
            ]
        )
    tables["accuracy"] = {
        "columns": [
            f"schedule (steps 0..{args.error_steps})",
            "default: max rel. error",
            "= float32(float64) bit for bit",
            'evaluation="formula": max rel. error',
            "table entries",
            "past the table",
        ],
        "rows": arows,
    }

    _print("accuracy", tables["accuracy"])

    # 4. what a table costs, by size (each in a fresh process)
    tables["table_cost"] = {
        "columns": [
            "table entries",
            "device MiB (float32)",
            "build s (host)",
            "first jitted call s (build + trace + compile)",
            "peak host memory rise MB",
        ],
        "rows": [table_cost(n) for n in (0, 10**5, 2**20, 10**7)],
    }
    _print("table_cost", tables["table_cost"])
    if args.json:
        meta = {
            "repeat": args.repeat,
            "steps": args.steps,
            "keras_steps": args.keras_steps,
            "jax": jax.__version__,
            "optax": optax.__version__,
            "keras": keras.__version__,
            "device": str(jax.devices()[0]),
            "cpu_count": os.cpu_count(),
        }
        with open(args.json, "w") as f:
            json.dump({"tables": tables, "meta": meta}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
