"""Coefficients of the default rule (``budget_edge``), written by
``benchmarks/zoo/fit_rule.py`` from the task zoo's cache. Do not edit by hand."""

from __future__ import annotations

SCHEDULES: tuple[str, ...] = ("constant", "onecycle", "warmup_cosine")
#: ln(lr / lr_min) at 1000 steps, by schedule and optimizer family
INTERCEPT: dict[str, dict[str, float]] = {
    "constant": {"sgd": -1.6, "momentum": -1.6, "adaptive": -1.6},
    "onecycle": {"sgd": -0.7, "momentum": -0.7, "adaptive": -0.7},
    "warmup_cosine": {"sgd": -0.7, "momentum": -0.7, "adaptive": -0.7},
}
#: d ln(lr) / d ln(total_steps), by schedule
BUDGET_SLOPE: dict[str, float] = {"constant": 0.0, "onecycle": 0.0, "warmup_cosine": 0.0}
