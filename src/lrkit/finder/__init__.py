"""The learning-rate range test (LR finder), framework-free.

The engine (:mod:`lrkit.finder.sweep`) sweeps the learning rate from ``start_lr`` to ``end_lr``
over ``num_iter`` steps (exponentially by default), calling a user ``step(lr) -> loss`` once
per step and, every ``eval_every`` steps, an optional ``evaluate() -> loss`` on fixed held
batches. It stops when the loss is NaN/inf or clearly diverges, extends the sweep (bounded)
when the loss has not turned up by ``end_lr``, and returns a :class:`FinderResult`
(:mod:`lrkit.finder.result`) with the curves and the suggested learning rates for a constant
rate, one-cycle and warmup-cosine, for the planned number of steps (``total_steps``).

Rules (:mod:`lrkit.finder.rules`) are public: ``RULES`` by name, :func:`suggest` with a name or
a callable ``rule(lrs, losses) -> lr``; the default, ``"budget_edge"``, is described there and
in ``docs/finder.md``. Smoothing lives in :mod:`lrkit.finder.smoothing`. Optional probe runs
after the sweep (:mod:`lrkit.finder.probes`, :func:`run_probes`) measure where below the edge
a task trains best, on the user's validation data.

Typical use (any framework)::

    from lrkit.finder import range_test

    def step(lr: float) -> float:
        set_learning_rate(lr)
        return train_one_batch()  # returns the loss as a float

    result = range_test(step, evaluate=held_batch_loss, total_steps=2000)
    result.suggestion, result.max_lr, result.peak_lr, result.reliable
"""

from __future__ import annotations

from .probes import PROBE_OFFSETS, PROBE_STEPS, Probes, run_probes
from .result import FinderResult, LRFinderWarning
from .rules import (
    DEFAULT_OPTIMIZER,
    DEFAULT_RULE,
    DEFAULT_TOTAL_STEPS,
    FITTED_STEPS,
    OPTIMIZERS,
    RULES,
    Rule,
    Suggestions,
    optimizer_family,
    suggest,
    suggestions,
)
from .smoothing import robust_smooth, smooth_ema, smooth_seeded
from .sweep import (
    MAX_HELD_BATCHES,
    MODES,
    STOP_REASONS,
    Sweep,
    SweepKwargs,
    SweepOptions,
    check_batches_type,
    check_scored,
    cycle_batches,
    held_batches,
    range_test,
    replay_result,
)

#: the names of the built-in rules (``tuple(RULES)``)
METHODS: tuple[str, ...] = tuple(RULES)

__all__ = [
    "DEFAULT_OPTIMIZER",
    "DEFAULT_RULE",
    "DEFAULT_TOTAL_STEPS",
    "FITTED_STEPS",
    "MAX_HELD_BATCHES",
    "METHODS",
    "MODES",
    "OPTIMIZERS",
    "PROBE_OFFSETS",
    "PROBE_STEPS",
    "RULES",
    "STOP_REASONS",
    "FinderResult",
    "LRFinderWarning",
    "Probes",
    "Rule",
    "Suggestions",
    "Sweep",
    "SweepKwargs",
    "SweepOptions",
    "check_batches_type",
    "check_scored",
    "cycle_batches",
    "held_batches",
    "optimizer_family",
    "range_test",
    "replay_result",
    "run_probes",
    "robust_smooth",
    "smooth_ema",
    "smooth_seeded",
    "suggest",
    "suggestions",
]
