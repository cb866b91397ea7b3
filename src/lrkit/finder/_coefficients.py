"""Coefficients of the default rule (``budget_edge``), written by
``benchmarks/zoo/fit_rule.py --write`` from the task zoo's cache (105 tasks). Do not
edit by hand."""

from __future__ import annotations

SCHEDULES: tuple[str, ...] = ("constant", "onecycle", "warmup_cosine")
#: ln(lr / lr_min) at 1000 steps, by schedule and optimizer family
INTERCEPT: dict[str, dict[str, float]] = {
    "constant": {"sgd": -2.15, "momentum": -2.45, "adaptive": -2.90},
    "onecycle": {"sgd": -0.80, "momentum": -2.65, "adaptive": -2.65},
    "warmup_cosine": {"sgd": -1.80, "momentum": -2.65, "adaptive": -2.90},
}
#: d ln(lr) / d ln(total_steps), by schedule
BUDGET_SLOPE: dict[str, float] = {"constant": -0.85, "onecycle": -1.40, "warmup_cosine": -1.40}
