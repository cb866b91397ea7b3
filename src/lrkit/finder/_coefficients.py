"""Coefficients of the default rule (``budget_edge``), written by
``benchmarks/zoo/fit_rule.py --write`` from the task zoo's cache (105 tasks). Do not
edit by hand."""

from __future__ import annotations

SCHEDULES: tuple[str, ...] = ("constant", "onecycle", "warmup_cosine")
#: ln(lr / lr_min) at 1000 steps, by schedule and optimizer family
INTERCEPT: dict[str, dict[str, float]] = {
    "constant": {"sgd": -1.65, "momentum": -2.25, "adaptive": -2.35},
    "onecycle": {"sgd": -1.55, "momentum": -1.45, "adaptive": -1.70},
    "warmup_cosine": {"sgd": -0.45, "momentum": -1.95, "adaptive": -1.70},
}
#: d ln(lr) / d ln(total_steps), by schedule
BUDGET_SLOPE: dict[str, float] = {"constant": -0.60, "onecycle": -0.70, "warmup_cosine": -0.70}
#: the budgets of the zoo: total_steps is clamped into this range (no extrapolation)
STEPS_RANGE: tuple[int, int] = (100, 1930)
#: ln(lr / edge) at 1000 steps from the probes' edge (``probes.Probes.edge``)
PROBED_INTERCEPT: dict[str, dict[str, float]] = {
    "constant": {"sgd": -1.90, "momentum": -2.35, "adaptive": -2.50},
    "onecycle": {"sgd": -0.60, "momentum": -1.90, "adaptive": -1.65},
    "warmup_cosine": {"sgd": -0.25, "momentum": -1.25, "adaptive": -1.15},
}
#: d ln(lr) / d ln(total_steps) from the probes' edge
PROBED_BUDGET_SLOPE: dict[str, float] = {
    "constant": -0.90,
    "onecycle": -1.15,
    "warmup_cosine": -0.60,
}
#: the stability cap of the suggestions from the probes' edge (times that edge),
#: chosen by grouped cross-validation among fit_rule.PROBE_CAPS, by schedule
PROBED_EDGE_CAP: dict[str, float] = {
    "constant": 0.5,
    "onecycle": 1.0,
    "warmup_cosine": 1.0,
}
