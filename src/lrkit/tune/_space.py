"""The search space: peak LR x schedule family x family parameters -> an lrkit schedule.

Pure (stdlib, numpy and :mod:`lrkit.schedules` only). ``SearchSpace.sample(trial)`` works with
any object offering Optuna's ``suggest_float`` / ``suggest_int`` / ``suggest_categorical``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol

import numpy as np

from .. import _renamed
from .. import _validate as V
from .. import schedules as S
from ..schedules import Schedule

#: The fewest optimizer steps a tuned run trains and its schedule spans (a task's
#: ``total_steps``, a searched schedule's length).
MIN_TOTAL_STEPS = 10

__all__ = [
    "BLIND_LR_RANGE",
    "FAMILIES",
    "PARAMS",
    "Param",
    "SearchSpace",
    "build_schedule",
    "lr_range_from_finder",
]

#: The schedule families searched by default.
FAMILIES: tuple[str, ...] = ("constant", "cosine", "onecycle", "step", "cyclic", "wsd")

#: The LR interval of a blind search (no range test).
BLIND_LR_RANGE: tuple[float, float] = (1e-6, 10.0)


@dataclass(frozen=True)
class Param:
    """One family parameter: ``kind`` is ``"float"`` (``low``..``high``, optionally log),
    ``"int"`` (``low``..``high``) or ``"choice"`` (``choices``)."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    choices: tuple[Any, ...] = ()


#: The parameters of each family (besides the peak LR ``lr``); Optuna names them
#: ``"<family>.<name>"``.
PARAMS: dict[str, tuple[Param, ...]] = {
    "constant": (),
    "cosine": (Param("warmup_frac", "float", 0.0, 0.2),),
    "onecycle": (
        Param("pct_start", "float", 0.1, 0.5),
        Param("div_factor", "float", 5.0, 100.0, log=True),
    ),
    "step": (
        Param("step_frac", "float", 0.2, 0.7),
        Param("gamma", "float", 0.05, 0.5, log=True),
    ),
    "cyclic": (
        Param("cycles", "int", 1, 4),
        Param("ratio", "float", 3.0, 30.0, log=True),
        Param("mode", "choice", choices=("triangular", "triangular2")),
    ),
    "wsd": (
        Param("warmup_frac", "float", 0.0, 0.2),
        Param("decay_frac", "float", 0.1, 0.5),
        Param("decay", "choice", choices=("linear", "cosine", "1-sqrt")),
    ),
}

_DEFAULTS: dict[str, dict[str, Any]] = {
    "constant": {},
    "cosine": {"warmup_frac": 0.05},
    "onecycle": {"pct_start": 0.3, "div_factor": 25.0},
    "step": {"step_frac": 0.5, "gamma": 0.1},
    "cyclic": {"cycles": 2, "ratio": 10.0, "mode": "triangular"},
    "wsd": {"warmup_frac": 0.05, "decay_frac": 0.2, "decay": "1-sqrt"},
}


def build_schedule(family: str, *, lr: float, total_steps: int, **params: Any) -> Schedule:
    """The schedule of one point of the search space (missing parameters take defaults).

    * ``constant``: ``constant(lr)``
    * ``cosine``: linear warmup from 0 over ``w = round(warmup_frac * total_steps)`` steps,
      then ``cosine(lr, total_steps - w)`` (plain cosine when ``w == 0``)
    * ``onecycle``: ``onecycle(max_lr=lr, total_steps, pct_start, div_factor)``
    * ``step``: ``step(lr, step_size=round(step_frac * total_steps), gamma)``
    * ``cyclic``: ``cyclic(base_lr=lr / ratio, max_lr=lr, step_size_up=total_steps //
      (2 cycles), mode)``
    * ``wsd``: ``wsd(lr, total_steps, warmup_steps=round(warmup_frac T),
      decay_steps=round(decay_frac T), decay)``
    """
    family = V.choice("family", family, FAMILIES)
    lr = V.positive("lr", lr)
    total = V.integer("total_steps", total_steps, MIN_TOTAL_STEPS, V.MAX_STEPS)
    unknown = set(params) - {p.name for p in PARAMS[family]}
    if unknown:
        names = ", ".join(p.name for p in PARAMS[family]) or "none"
        raise ValueError(f"params: {family} has no parameter(s) {sorted(unknown)} ({names})")
    p = {**_DEFAULTS[family], **params}
    if family == "constant":
        return S.constant(lr)
    if family == "cosine":
        w = int(round(V.in_range("warmup_frac", p["warmup_frac"], 0.0, 0.5) * total))
        if w < 1:
            return S.cosine(lr, total_steps=total)
        return S.with_warmup(S.cosine(lr, total_steps=total - w), warmup_steps=w)
    if family == "onecycle":
        pct = V.in_range("pct_start", p["pct_start"], 0.0, 1.0, low_open=True, high_open=True)
        pct = max(pct, 2.0 / total)
        return S.onecycle(max_lr=lr, total_steps=total, pct_start=pct, div_factor=p["div_factor"])
    if family == "step":
        frac = V.in_range("step_frac", p["step_frac"], 0.0, 1.0, low_open=True)
        return S.step(lr, step_size=max(1, int(round(frac * total))), gamma=p["gamma"])
    if family == "cyclic":
        cycles = V.integer("cycles", p["cycles"], 1)
        ratio = V.in_range("ratio", p["ratio"], 1.0, math.inf)
        up = max(1, total // (2 * cycles))
        return S.cyclic(base_lr=lr / ratio, max_lr=lr, step_size_up=up, mode=p["mode"])
    # wsd
    w = int(round(V.in_range("warmup_frac", p["warmup_frac"], 0.0, 0.5) * total))
    d = max(1, int(round(V.in_range("decay_frac", p["decay_frac"], 0.0, 1.0) * total)))
    d = min(d, total - w)
    return S.wsd(lr, total_steps=total, warmup_steps=w, decay_steps=d, decay=p["decay"])


class _Trial(Protocol):  # the part of optuna.Trial that sampling uses
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int) -> int: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


def family_names(families: str | Sequence[str]) -> tuple[str, ...]:
    """``families`` as a tuple of names: a sequence of them, or one comma-separated string
    (``"cosine,wsd"``, as on the command line)."""
    if isinstance(families, str):
        return tuple(f.strip() for f in families.split(",") if f.strip())
    if isinstance(families, (bytes, Mapping)) or not isinstance(families, Iterable):
        raise ValueError(
            f"families must be a sequence of names or a comma-separated string of "
            f"{', '.join(FAMILIES)}, got {type(families).__name__} {families!r}"
        )
    return tuple(families)


@dataclass(frozen=True)
class SearchSpace:
    """Peak LR (log-uniform over ``lr_range``) x ``families`` x each family's parameters.

    ``total_steps`` is the number of optimizer steps of one training run (the schedules are
    built for it). Optuna parameter names: ``"lr"``, ``"family"`` and
    ``"<family>.<param>"`` (see :data:`PARAMS`). ``families``: a sequence of names or one
    comma-separated string (``"cosine,wsd"``), as :func:`lrkit.tune.tune` takes them.
    ``fixed``: parameters left out of the search, by those names (``{"lr": 0.1,
    "cosine.warmup_frac": 0.05}``): :meth:`sample` takes them as given and draws the others,
    :meth:`build` adds them to the params it is given; each is checked against its range."""

    total_steps: int
    _: KW_ONLY
    lr_range: tuple[float, float] = BLIND_LR_RANGE
    families: tuple[str, ...] = FAMILIES
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        total = V.integer("total_steps", self.total_steps, MIN_TOTAL_STEPS, V.MAX_STEPS)
        object.__setattr__(self, "total_steps", total)  # a Python int, as Task keeps it
        lo, hi = _check_range(self.lr_range)
        object.__setattr__(self, "lr_range", (lo, hi))
        fams = family_names(self.families)
        if not fams:
            raise ValueError(f"families must name at least one of {', '.join(FAMILIES)}")
        for f in fams:
            V.choice("families", f, FAMILIES)
        repeated = sorted({f for f in fams if fams.count(f) > 1})
        if repeated:
            raise ValueError(f"families must name each family once, got {V.fmt(repeated[0])} twice")
        object.__setattr__(self, "families", fams)
        object.__setattr__(self, "fixed", self._checked_fixed())

    def _checked_fixed(self) -> dict[str, Any]:
        """``fixed`` as a dict whose every name is a parameter of this space and every value
        within that parameter's range, else a one-line ``ValueError`` naming it."""
        if not isinstance(self.fixed, Mapping):
            raise ValueError(f"fixed must be a dict of parameter names to values, got "
                             f"{V.fmt(self.fixed)}")  # fmt: skip
        params = {f"{f}.{p.name}": p for f in self.families for p in PARAMS[f]}
        out: dict[str, Any] = {}
        for key, value in self.fixed.items():
            name = f"fixed[{key!r}]"
            if key == "lr":
                out[key] = V.in_range(name, value, *self.lr_range)
            elif key == "family":
                out[key] = V.choice(name, value, self.families)
            elif key in params:
                p = params[key]
                if p.kind == "float":
                    out[key] = V.in_range(name, value, p.low, p.high)
                elif p.kind == "int":
                    out[key] = V.integer(name, value, int(p.low), int(p.high))
                else:
                    out[key] = V.choice(name, value, p.choices)
            else:
                known = ", ".join(["lr", "family", *params])
                raise ValueError(
                    f"fixed names a parameter this space does not search, {key!r}; its "
                    f"parameters: {known}"
                )
        family = out.get("family")
        stray = [k for k in out if family is not None and "." in k and k.split(".")[0] != family]
        if stray:
            raise ValueError(f"fixed[{stray[0]!r}] is a parameter of another family than "
                             f"fixed['family']={family!r}")  # fmt: skip
        return out

    def sample(self, trial: _Trial) -> Schedule:
        """Draw one schedule with ``trial`` (an ``optuna.Trial``); the ``fixed`` parameters are
        taken as given (they are not Optuna parameters of the trial)."""
        lo, hi = self.lr_range
        fixed = self.fixed
        lr = fixed["lr"] if "lr" in fixed else float(trial.suggest_float("lr", lo, hi, log=True))
        family = (
            fixed["family"]
            if "family" in fixed
            else str(trial.suggest_categorical("family", list(self.families)))
        )
        params: dict[str, Any] = {}
        for p in PARAMS[family]:
            key = f"{family}.{p.name}"
            if key in fixed:
                params[p.name] = fixed[key]
            elif p.kind == "float":
                params[p.name] = float(trial.suggest_float(key, p.low, p.high, log=p.log))
            elif p.kind == "int":
                params[p.name] = int(trial.suggest_int(key, int(p.low), int(p.high)))
            else:
                params[p.name] = trial.suggest_categorical(key, list(p.choices))
        return build_schedule(family, lr=lr, total_steps=self.total_steps, **params)

    def build(self, params: Mapping[str, Any]) -> Schedule:
        """The schedule of an Optuna params dict (e.g. ``study.best_params``), with the
        ``fixed`` parameters added."""
        params = {**self.fixed, **params}
        if "lr" not in params or "family" not in params:
            raise ValueError(f"params must hold 'lr' and 'family', got {V.fmt(dict(params))}")
        family = str(params["family"])
        prefix = family + "."
        rest = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
        return build_schedule(family, lr=float(params["lr"]), total_steps=self.total_steps, **rest)


# lrkit 0.1.0 took every field by position: still taken, with a DeprecationWarning
SearchSpace.__init__ = _renamed.keyword_only(2)(SearchSpace.__init__)  # type: ignore[method-assign]


def _check_range(value: Any, *, name: str = "lr_range") -> tuple[float, float]:
    """``(low, high)`` with ``0 < low < high``, else a one-line ``ValueError`` naming ``name``."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a pair (low, high), got {V.fmt(value)}")
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {V.fmt(value)}") from None
    lo, hi = V.positive(f"{name}[0]", lo), V.positive(f"{name}[1]", hi)
    if hi <= lo:
        raise ValueError(f"{name}[1] must be > {name}[0]={lo!r}, got {V.fmt(hi)}")
    return lo, hi


def lr_range_from_finder(result: Any, *, min_ratio: float = 10.0) -> tuple[float, float]:
    """The LR interval a range test supports: from where the loss starts to fall to where it
    diverges.

    The curve is the one the finder's rule reads (``result.curve``: the held-batch loss when
    it was measured, which follows training progress rather than batch noise, else the
    training loss). With ``r`` its lag-free smoothing (:func:`lrkit.finder.robust_smooth`),
    ``m`` its minimum and ``drop = r[0] - r[m]``: ``low`` is the first LR where ``r`` has
    fallen by 10% of ``drop``; ``high`` is the first LR after the minimum where ``r`` is back
    above ``r[0]`` (the loss diverges), else the LR that stopped the sweep (divergence/NaN),
    else the last LR of the sweep. The interval is widened downwards to span at least
    ``min_ratio``. ``result`` is a :class:`lrkit.finder.FinderResult` (``curve`` or ``lrs``
    and ``losses``, ``stop_reason``, ``stop_lr``). Raises ``ValueError`` when the curve has
    too few points or does not clearly descend (:attr:`lrkit.finder.rules.CurveShape.dropped`)."""
    from ..finder import robust_smooth
    from ..finder.rules import CurveShape

    min_ratio = V.in_range("min_ratio", min_ratio, 1.0, math.inf, low_open=True)
    curve = getattr(result, "curve", None)  # the held-batch curve when it was measured
    x, y = (
        curve if curve is not None else (getattr(result, "lrs", ()), getattr(result, "losses", ()))
    )
    lrs = np.asarray(x, dtype=np.float64)
    losses = np.asarray(y, dtype=np.float64)
    if len(losses) < 5 or lrs.shape != losses.shape:
        raise ValueError(
            f"result must be a range-test result with at least 5 points, got {len(losses)}"
        )
    r = robust_smooth(losses)
    m = int(np.argmin(r))
    drop = float(r[0] - r[m])
    if not drop > 0 or not CurveShape.of(losses, r).dropped:
        raise ValueError(
            "result: the range-test loss never clearly fell (by more than its noise and 0.2% "
            "of its value); no LR interval to search"
        )
    below = np.nonzero(r[: m + 1] <= r[0] - 0.1 * drop)[0]
    low = float(lrs[int(below[0])]) if len(below) else float(lrs[0])
    above = np.nonzero(r[m:] > r[0])[0]
    stop_lr = getattr(result, "stop_lr", None)
    if len(above):
        high = float(lrs[m + int(above[0])])
    elif getattr(result, "stop_reason", "") in ("diverged", "nan") and stop_lr is not None:
        high = float(stop_lr)
    else:
        high = float(lrs[-1])
    high = max(high, float(lrs[m]))
    if high / low < min_ratio:
        low = high / min_ratio
    return low, high
