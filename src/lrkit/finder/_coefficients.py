"""Coefficients of the default rule (``budget_edge``), written by
``benchmarks/zoo/fit_rule.py --write`` from the task zoo's cache (105 tasks). Do not
edit by hand."""

from __future__ import annotations

SCHEDULES: tuple[str, ...] = ("constant", "onecycle", "warmup_cosine")
#: ln(lr / lr_min) at 1000 steps, by schedule and optimizer family
INTERCEPT: dict[str, dict[str, float]] = {
    "constant": {"sgd": -1.70, "momentum": -2.25, "adaptive": -2.35},
    "onecycle": {"sgd": -0.85, "momentum": -2.55, "adaptive": -2.35},
    "warmup_cosine": {"sgd": -1.25, "momentum": -2.60, "adaptive": -2.55},
}
#: d ln(lr) / d ln(total_steps), by schedule
BUDGET_SLOPE: dict[str, float] = {"constant": -0.65, "onecycle": -1.25, "warmup_cosine": -1.30}
#: the budgets of the zoo: total_steps is clamped into this range (no extrapolation)
STEPS_RANGE: tuple[int, int] = (100, 1930)
