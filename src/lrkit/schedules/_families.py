"""The schedule families. Each is a closed form of the step; where PyTorch has a counterpart,
parameter names mirror it and values equal PyTorch's scheduler step for step."""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np

from .. import _validate as v
from ._base import HF_WARMUPS, Schedule, _pow, _pow_of, growth, power, register

_PI = math.pi


def _floor_div(t: Any, c: float, xp: Any) -> Any:
    """``floor(t / c)`` over an array of ``xp``. numpy divides in float64, correctly rounded:
    exact at multiples of ``c`` (below 2**53) and what the scalar path computes, so it is
    left as it is. A compiled division (XLA computes ``t / c`` as ``t * (1 / c)``, in float32
    or float64) can land just below a whole quotient at an exact multiple, and the floor one
    step short: put it back on the integer with ``n c <= t < (n + 1) c`` (exact products
    below 2**24 in float32, 2**53 in float64)."""
    n = xp.floor(t / c)
    if xp is np:
        return n
    n = xp.where((n + 1.0) * c <= t, n + 1.0, n)
    return xp.where(n * c > t, n - 1.0, n)


def _lr(name: str, value: Any) -> float:
    return v.non_negative(name, value)


#: Keras' (``initial_learning_rate``) and optax's (``init_value``) names of ``lr``, and the
#: optimizers' (``learning_rate``): see :attr:`Schedule.peer_names`
_LR_PEERS = {
    "initial_learning_rate": ("lr", ""),
    "init_value": ("lr", ""),
    "learning_rate": ("lr", ""),
}

#: Hugging Face's names of ``total_steps`` and ``warmup_steps`` (``get_*_schedule_with_warmup``)
_HF_TOTAL = {"num_training_steps": ("total_steps", "")}
_HF_WARMUP = {
    given: ("warmup_steps", "" if count == given else count) for given, count, _ in HF_WARMUPS
}

#: timm's CosineLRScheduler: one cosine by default (cycle_limit=1), restarts with a limit
_TIMM_NAMES = (
    "t_initial",
    "lr_min",
    "cycle_mul",
    "cycle_decay",
    "cycle_limit",
    "warmup_t",
    "warmup_lr_init",
    "warmup_prefix",
    "k_decay",
)
_TIMM_CALL = (
    ("t_initial", "cycle_mul", "cycle_decay", "cycle_limit", "warmup_t", "warmup_lr_init"),
    _TIMM_NAMES,
    "timm's CosineLRScheduler(t_initial=n, lr_min=m) is cosine(lr, n, eta_min=m) (its "
    "cycle_limit=1); with cycle_mul=r, cycle_decay=g, cycle_limit=c it is "
    "join([cosine_restarts(lr, n, r, m, g), constant(m)], [n * (1 + r + ... + r ** (c - 1))]) "
    "where m = 0 or g = 1 (timm's g scales the peak, m_mul the height above m); "
    "warmup_t=w, warmup_lr_init=a with warmup_prefix=True is with_warmup(..., "
    "warmup_steps=w, start_lr=a) (warmup_prefix=False and k_decay have no counterpart)",
)

#: PyTorch's OneCycleLR and CyclicLR cycle the momentum too: another schedule in lrkit
_MOMENTUM_NAMES = ("base_momentum", "max_momentum", "cycle_momentum")
_MOMENTUM_CALL = (
    _MOMENTUM_NAMES,
    _MOMENTUM_NAMES,
    "PyTorch's cycled momentum is onecycle_momentum(total_steps, base_momentum=, "
    "max_momentum=), given to lrkit.torch.scheduler as momentum=",
)


# ============================================================================ basic decays
@register
class Constant(Schedule):
    """``lr`` at every step."""

    name = "constant"
    params = ("lr",)
    hf_warmup = True
    peer_names = _LR_PEERS

    def __init__(self, lr: float) -> None:
        self.lr = _lr("lr", lr)

    # kept: the stored lr itself (no formula to write twice); the adapters' default
    def _at(self, t: float) -> float:
        return self.lr

    def _values(self, t: Any, xp: Any) -> Any:
        return t * 0.0 + self.lr


@register
class Step(Schedule):
    """``lr * gamma ** floor(step / step_size)`` (PyTorch ``StepLR``)."""

    name = "step"
    params = ("lr", "step_size", "gamma")
    # Keras' ExponentialDecay(staircase=True), optax's exponential_decay(staircase=True)
    peer_names = {
        **_LR_PEERS,
        "decay_steps": ("step_size", ""),
        "transition_steps": ("step_size", ""),
        "decay_rate": ("gamma", ""),
        # timm's StepLRScheduler
        "decay_t": ("step_size", ""),
    }

    def __init__(self, lr: float, *, step_size: int, gamma: float = 0.1) -> None:
        self.lr = _lr("lr", lr)
        self.step_size = v.integer("step_size", step_size, 1, v.MAX_STEPS)
        self.gamma = v.positive("gamma", gamma)

    # the scalar path computes ``**`` as values() does (numpy's array power)
    def _at(self, t: float) -> float:
        if not self.lr:
            return 0.0
        return self.lr * _pow(self.gamma, float(math.floor(t / self.step_size)))

    def _values(self, t: Any, xp: Any) -> Any:
        if not self.lr:
            return t * 0.0
        return self.lr * self.gamma ** _floor_div(t, float(self.step_size), xp)


@register
class MultiStep(Schedule):
    """``lr * gamma ** (number of milestones <= step)`` (PyTorch ``MultiStepLR``; a repeated
    milestone applies ``gamma`` once per repetition, as in PyTorch)."""

    name = "multistep"
    params = ("lr", "milestones", "gamma")
    peer_names = {
        **_LR_PEERS,
        # timm's MultiStepLRScheduler: a milestone m applies from step m - 1
        "decay_t": (
            "milestones",
            "[max(m - 1, 0) for m in decay_t]: timm's MultiStepLRScheduler applies a milestone "
            "a step before PyTorch's MultiStepLR",
        ),
        "decay_rate": ("gamma", ""),
    }

    def __init__(self, lr: float, *, milestones: Any, gamma: float = 0.1) -> None:
        self.lr = _lr("lr", lr)
        # a milestone 0 applies gamma from the first step, as PyTorch's does
        self.milestones = v.sorted_ints("milestones", milestones, 0, maximum=v.MAX_STEPS)
        self.gamma = v.positive("gamma", gamma)

    def _at(self, t: float) -> float:
        if not self.lr:
            return 0.0
        return self.lr * _pow(self.gamma, float(bisect.bisect_right(self.milestones, t)))

    def _values(self, t: Any, xp: Any) -> Any:
        count = t * 0.0
        if not self.lr:
            return count
        if xp is np:  # a search, not one pass per milestone
            count = np.searchsorted(self.milestones, t, side="right")
            # the formula's float type: the steps' without milestones, float64's with
            count = count.astype(np.result_type(t, 0.0) if not self.milestones else np.float64)
            return self.lr * self.gamma**count
        for m in self.milestones:
            count = count + xp.where(t >= m, 1.0, 0.0)
        return self.lr * self.gamma**count


@register
class Exponential(Schedule):
    """``lr * gamma ** step`` (PyTorch ``ExponentialLR``)."""

    name = "exponential"
    params = ("lr", "gamma")
    # Keras' ExponentialDecay: decay_rate every decay_steps
    peer_names = {
        **_LR_PEERS,
        # Keras' decay_steps is optax's transition_steps; a staircase is lrkit's step()
        **dict.fromkeys(
            ("decay_rate", "decay_steps", "transition_steps", "staircase"),
            (
                "gamma",
                "decay_rate ** (1 / decay_steps), decay_steps being optax's transition_steps; "
                "staircase=True is step(lr, step_size=decay_steps, gamma=decay_rate)",
            ),
        ),
    }
    peer_calls = (
        (
            ("transition_begin", "end_value"),
            ("transition_begin", "end_value"),
            "optax's exponential_decay(init_value=i, transition_steps=k, decay_rate=r, "
            "transition_begin=b, end_value=e) is join([constant(i), clamp(exponential(i, "
            "r ** (1 / k)), min_lr=e)], [b]) (max_lr=e where r > 1)",
        ),
    )

    def __init__(self, lr: float, *, gamma: float) -> None:
        self.lr = _lr("lr", lr)
        self.gamma = v.positive("gamma", gamma)

    def _at(self, t: float) -> float:
        if not self.lr:
            return 0.0
        return self.lr * _pow(self.gamma, float(t))

    def _values(self, t: Any, xp: Any) -> Any:
        if not self.lr:
            return t * 0.0
        return self.lr * growth(self.gamma, t, xp)


@register
class InverseTime(Schedule):
    """``lr / (1 + decay_rate * p)`` with ``p = step / decay_steps`` (floored when
    ``staircase``), as Keras' ``InverseTimeDecay``."""

    name = "inverse_time"
    params = ("lr", "decay_steps", "decay_rate", "staircase")
    peer_names = _LR_PEERS

    def __init__(
        self, lr: float, *, decay_steps: float, decay_rate: float, staircase: bool = False
    ) -> None:
        self.lr = _lr("lr", lr)
        self.decay_steps = v.positive("decay_steps", decay_steps)
        self.decay_rate = v.non_negative("decay_rate", decay_rate)
        self.staircase = v.flag("staircase", staircase, spelled="true or false")

    def _values(self, t: Any, xp: Any) -> Any:
        if not self.decay_rate:  # no decay, also where step / decay_steps overflows (0 * inf)
            return self.lr + 0.0 * t
        p = _floor_div(t, self.decay_steps, xp) if self.staircase else t / self.decay_steps
        return self.lr / (1.0 + self.decay_rate * p)


@register
class Polynomial(Schedule):
    """``(lr - end_lr) * (1 - min(step, total_steps) / total_steps) ** power + end_lr``
    (PyTorch ``PolynomialLR`` when ``end_lr == 0``; Keras' ``PolynomialDecay``; optax's
    ``polynomial_schedule``). With ``cycle=true`` the decay restarts instead of holding
    ``end_lr``: the horizon becomes ``total_steps * ceil(step / total_steps)`` (Keras'
    ``PolynomialDecay(cycle=True)``)."""

    name = "polynomial"
    params = ("lr", "total_steps", "power", "end_lr", "cycle")
    # Keras' PolynomialDecay, optax's polynomial_schedule, PyTorch's PolynomialLR
    hf_warmup = True
    peer_names = {
        **_LR_PEERS,
        "decay_steps": ("total_steps", ""),
        "transition_steps": ("total_steps", ""),
        "total_iters": ("total_steps", ""),
        "end_learning_rate": ("end_lr", ""),
        "end_value": ("end_lr", ""),
        "lr_end": ("end_lr", ""),
        **_HF_TOTAL,
    }
    peer_calls = (
        (
            ("transition_begin",),
            ("transition_begin",),
            "optax's polynomial_schedule(init_value=i, end_value=e, power=p, "
            "transition_steps=n, transition_begin=b) is join([constant(i), polynomial(i, n, "
            "p, e)], [b])",
        ),
    )

    def __init__(
        self,
        lr: float,
        *,
        total_steps: int,
        power: float = 1.0,
        end_lr: float = 0.0,
        cycle: bool = False,
    ) -> None:
        self.lr = _lr("lr", lr)
        self.total_steps = v.integer("total_steps", total_steps, 1, v.MAX_STEPS)
        self.power = v.non_negative("power", power)
        self.end_lr = _lr("end_lr", end_lr)
        self.cycle = v.flag("cycle", cycle, spelled="true or false")

    @property
    def length(self) -> int:
        return self.total_steps

    # the formula of _values in plain math (``**`` as values() computes it)
    def _at(self, t: float) -> float:
        T = self.total_steps
        if self.cycle:
            # k with (k - 1) T < t <= k T, corrected as in _values (above 2**53, t / T may
            # round to a whole number below the true quotient)
            k = float(math.ceil(t / T))
            if (k - 1.0) * T >= t:
                k -= 1.0
            if k * T < t:
                k += 1.0
            frac = 1.0 - t / (T * max(k, 1.0))
        else:
            frac = 0.0 if t >= T else 1.0 - min(t, float(T)) / T
        frac = min(max(frac, 0.0), 1.0)
        return (self.lr - self.end_lr) * _pow_of(frac, self.power) + self.end_lr

    def _values(self, t: Any, xp: Any) -> Any:
        if self.cycle:
            T = self.total_steps
            k = xp.ceil(t / T)
            # float32 (a compiled step) rounds t / T, e.g. 3T / T to 3.0000002 (ceil 4, the
            # next cycle's value) or 3 + 1 / T to 3.0 for a large T: put k back on the integer
            # with (k - 1) T < t <= k T (exact products below 2**24); no change with float64
            k = xp.where((k - 1.0) * T >= t, k - 1.0, k)
            k = xp.where(k * T < t, k + 1.0, k)
            horizon = T * xp.maximum(k, 1.0)
            frac = 1.0 - t / horizon
        else:
            frac = 1.0 - xp.minimum(t, float(self.total_steps)) / self.total_steps
            # numpy gives exactly 0 from total_steps on; XLA rewrites t / T as t * (1 / T),
            # so a jitted 1 - t / T is a hair off 0 there (a negative LR, or sqrt's 1e-5)
            frac = xp.where(t >= self.total_steps, 0.0, frac)
        frac = xp.clip(frac, 0.0, 1.0)  # in [0, 1] already with numpy
        return (self.lr - self.end_lr) * frac**self.power + self.end_lr


@register
class Linear(Schedule):
    """``start_lr + (end_lr - start_lr) * min(step, total_steps) / total_steps``, then
    ``end_lr`` (PyTorch ``LinearLR`` with ``start_lr = lr * start_factor`` and
    ``end_lr = lr * end_factor``)."""

    name = "linear"
    params = ("start_lr", "end_lr", "total_steps")
    # optax's linear_schedule, PyTorch's LinearLR
    hf_warmup = True
    peer_names = {
        "init_value": ("start_lr", ""),
        "end_value": ("end_lr", ""),
        "transition_steps": ("total_steps", ""),
        "total_iters": ("total_steps", ""),
        "start_factor": ("start_lr", "lr * start_factor"),
        "end_factor": ("end_lr", "lr * end_factor"),
        **_HF_TOTAL,
    }
    peer_calls = (
        (
            ("transition_begin",),
            ("transition_begin",),
            "optax's linear_schedule(init_value=i, end_value=e, transition_steps=n, "
            "transition_begin=b) is join([constant(i), linear(i, e, n)], [b])",
        ),
    )

    def __init__(self, start_lr: float, *, end_lr: float, total_steps: int) -> None:
        self.start_lr = _lr("start_lr", start_lr)
        self.end_lr = _lr("end_lr", end_lr)
        self.total_steps = v.integer("total_steps", total_steps, 1, v.MAX_STEPS)

    @property
    def length(self) -> int:
        return self.total_steps

    def _values(self, t: Any, xp: Any) -> Any:
        frac = xp.minimum(t, float(self.total_steps)) / self.total_steps
        out = self.start_lr + (self.end_lr - self.start_lr) * frac
        return xp.where(t >= self.total_steps, self.end_lr, out)


@register
class Cosine(Schedule):
    """``eta_min + (lr - eta_min) * (1 + cos(pi * step / total_steps)) / 2`` for
    ``step <= total_steps``, then ``eta_min`` (PyTorch ``CosineAnnealingLR`` with
    ``T_max = total_steps``; PyTorch's rises again after ``T_max``, this one stays)."""

    name = "cosine"
    params = ("lr", "total_steps", "eta_min")
    # Keras' CosineDecay, optax's cosine_decay_schedule, PyTorch's CosineAnnealingLR
    hf_warmup = True
    keras_warmup = True  # CosineDecay's warmup_target and warmup_steps
    peer_names = {
        **_LR_PEERS,
        "decay_steps": ("total_steps", ""),
        "T_max": ("total_steps", ""),
        "alpha": ("eta_min", "alpha * lr"),
        "lr_min": ("eta_min", ""),  # timm's
        # Hugging Face's cosine_with_min_lr
        "min_lr": ("eta_min", ""),
        "min_lr_rate": ("eta_min", "min_lr_rate * lr"),
        **_HF_TOTAL,
    }
    peer_calls = (
        (
            ("num_cycles",),
            ("num_cycles",),
            "Hugging Face's num_cycles=0.5 (its default) is cosine itself; other values (the "
            "LR rising again within the run) have no counterpart; cosine_with_restarts' "
            "num_cycles=k is cosine_restarts(lr, T_0=(num_training_steps - num_warmup_steps) "
            "/ k)",
        ),
        (
            ("peak_value", "end_value"),
            ("init_value", "peak_value", "warmup_steps", "decay_steps", "end_value", "exponent"),
            "optax's warmup_cosine_decay_schedule(init_value=i, peak_value=p, warmup_steps=w, "
            "decay_steps=n, end_value=e) is join([warmup(i, p, w), cosine(p, n - w, "
            "eta_min=e)], [w]) (its decay_steps count the warmup; exponent 1 only)",
        ),
        _TIMM_CALL,
    )

    def __init__(self, lr: float, *, total_steps: int, eta_min: float = 0.0) -> None:
        self.lr = _lr("lr", lr)
        self.total_steps = v.integer("total_steps", total_steps, 1, v.MAX_STEPS)
        self.eta_min = _lr("eta_min", eta_min)

    @property
    def length(self) -> int:
        return self.total_steps

    # kept in plain math: hot path, timed per .step() in benchmarks/schedules.py
    def _at(self, t: float) -> float:
        if t >= self.total_steps:
            return self.eta_min
        return self.eta_min + (self.lr - self.eta_min) * 0.5 * (
            1 + math.cos(_PI * t / self.total_steps)
        )

    def _values(self, t: Any, xp: Any) -> Any:
        tc = xp.minimum(t, float(self.total_steps))
        return self.eta_min + (self.lr - self.eta_min) * 0.5 * (
            1 + xp.cos(_PI * tc / self.total_steps)
        )


@register
class CosineRestarts(Schedule):
    """SGDR: cosine from ``lr`` to ``eta_min`` over cycles of ``T_0``, ``T_0*T_mult``, ...
    steps (PyTorch ``CosineAnnealingWarmRestarts``). With ``m_mul`` the height above
    ``eta_min`` of cycle ``i`` is ``m_mul ** i`` times the first one (Keras'
    ``CosineDecayRestarts(m_mul=..., alpha=eta_min / lr)``). ``T_0`` may be a fractional
    number of steps (Hugging Face's ``cosine_with_restarts`` cycles ``(N - W) / num_cycles``
    steps) and ``T_mult`` any real number ``>= 1`` (Keras' ``t_mul=1.5``). With ``T_mult=1``
    and a fractional ``T_0``, a step at most ``2**-51`` of itself below a multiple of ``T_0``
    (the rounding of a multiple of the fraction ``T_0`` holds) starts that cycle:
    ``T_0=18 / 14`` (held as ``1.2857142857142858``) restarts at step ``9 = 7 * 18 / 14``,
    where ``9 / T_0`` is ``6.999999999999999``. With ``T_mult > 1`` a step below ``2**43`` at
    most ``2**-44`` of itself below a cycle's float64 start starts that cycle: ``T_0=10,
    T_mult=1.9`` restarts at step ``10``, where ``T_0 (T_mult - 1) / (T_mult - 1)`` is
    ``10.000000000000002``."""

    name = "cosine_restarts"
    params = ("lr", "T_0", "T_mult", "eta_min", "m_mul")
    # Keras' CosineDecayRestarts
    hf_warmup = True
    peer_names = {
        **_LR_PEERS,
        "first_decay_steps": ("T_0", ""),
        "t_mul": ("T_mult", ""),
        # Hugging Face's cosine_with_restarts: num_cycles equal cycles after the warmup
        "num_cycles": ("T_0", "(num_training_steps - num_warmup_steps) / num_cycles"),
        "num_training_steps": ("T_0", "(num_training_steps - num_warmup_steps) / num_cycles"),
        "alpha": ("eta_min", "alpha * lr"),
        "min_lr": ("eta_min", ""),
        "lr_min": ("eta_min", ""),  # timm's
        "min_lr_rate": ("eta_min", "min_lr_rate * lr"),
    }
    peer_calls = (_TIMM_CALL,)

    def __init__(
        self,
        lr: float,
        *,
        T_0: float,
        T_mult: float = 1,
        eta_min: float = 0.0,
        m_mul: float = 1.0,
    ) -> None:
        self.lr = _lr("lr", lr)
        self.T_0 = _int_if_integral(_at_least_one("T_0", T_0, "a number of steps"))
        self.T_mult = _int_if_integral(_at_least_one("T_mult", T_mult, "a number"))
        self.eta_min = _lr("eta_min", eta_min)
        self.m_mul = v.non_negative("m_mul", m_mul)
        self._frac_T0 = not float(self.T_0).is_integer()
        # rounds of the cycle number's correction (see _values)
        self._rounds = _NEAR_ONE_ROUNDS if 1 < self.T_mult < 1 + _NEAR_ONE else 1
        # the scalar path's powers of T_mult and m_mul at the cycle numbers, computed by the
        # array routine values() uses (a cycle number of T_mult >= 2 stays below 1100; a
        # larger one, of a T_mult near 1, takes the generic path)
        k = np.arange(float(_POW_TABLE))
        with np.errstate(over="ignore"):  # inf past float64, as in values()
            self._m_pow = np.power(float(self.T_mult), k).tolist() if self.T_mult > 1 else []
            self._mul_pow = np.power(self.m_mul, k).tolist() if self.m_mul != 1.0 else []

    # the formula of _values in plain math, with the powers from the tables
    def _at(self, t: float) -> float:
        T_0 = float(self.T_0)
        if self.T_mult == 1:
            n = float(math.floor(t / T_0))
            t_cur = t - n * T_0
            if self._frac_T0 and (n + 1.0) * T_0 - t <= _SNAP * t:  # see _values
                n += 1.0
                t_cur = 0.0
            t_i = T_0
        else:
            m, mp = float(self.T_mult), self._m_pow
            x = t / T_0 * (m - 1) + 1
            if not x < 1e300:  # past any cycle the table holds: the generic path
                return Schedule._at(self, t)
            k = math.floor(math.log(x) / math.log(m))
            if k >= _POW_TABLE - 2:  # (T_mult near 1) past the table: the generic path
                return Schedule._at(self, t)
            if T_0 * (mp[k] - 1) / (m - 1) > t:
                k -= 1
            if T_0 * (mp[k + 1] - 1) / (m - 1) <= t:
                k += 1
            if self._rounds > 1 and not (
                T_0 * (mp[k] - 1) / (m - 1) <= t < T_0 * (mp[k + 1] - 1) / (m - 1)
            ):  # an estimate more than a cycle off: values()' rounds of correction
                return Schedule._at(self, t)
            gap = T_0 * (mp[k + 1] - 1) / (m - 1) - t
            if gap <= _RESTART_SNAP * t and t < _RESTART_SNAP_BELOW:  # see _values
                k += 1
                t_cur = 0.0
            else:
                t_cur = t - T_0 * (mp[k] - 1) / (m - 1)
            n = float(k)
            t_i = T_0 * mp[k]
        if t_cur >= _HUGE:  # see _values: scaled by a power of 2, so pi * t_cur is finite
            t_cur, t_i = t_cur * _SHRINK, t_i * _SHRINK
        if self.m_mul != 1.0:
            mul = self._mul_pow[int(n)] if n < _POW_TABLE else _pow(self.m_mul, n)
            height = (self.lr - self.eta_min) * mul
            return self.eta_min + height * 0.5 * (1 + math.cos(_PI * t_cur / t_i))
        return self.eta_min + (self.lr - self.eta_min) * 0.5 * (1 + math.cos(_PI * t_cur / t_i))

    def _values(self, t: Any, xp: Any) -> Any:
        T_0, m = float(self.T_0), float(self.T_mult)
        if self.T_mult == 1:
            n = _floor_div(t, T_0, xp)
            t_cur = t - n * T_0
            if self._frac_T0:
                # a fractional T_0 is a fraction rounded (Hugging Face's (N - W) / k), its
                # multiples too, by at most 2**-52 of themselves: a step that close below
                # one starts its cycle (there Hugging Face's k * step / (N - W) is whole)
                end = (n + 1.0) * T_0 - t <= _SNAP * t
                n = xp.where(end, n + 1.0, n)
                t_cur = xp.where(end, 0.0, t_cur)
            t_i = T_0
        else:
            # cycle n starts at T_0 (m**n - 1) / (m - 1): log's estimate of n, then corrected
            # to the n with start(n) <= t < start(n + 1) (with m near 1 the estimate can be a
            # few cycles off: more rounds)
            q = t / T_0
            wide = _wide(t)
            if wide:  # a step whose q (m - 1) would overflow: log(q) + log(m - 1)
                small = q < 1e290
                x = xp.where(
                    small,
                    xp.log(xp.where(small, q, 0.0) * (m - 1) + 1),
                    xp.log(xp.where(small, 1.0, q)) + math.log(m - 1),
                )
            else:
                x = xp.log(q * (m - 1) + 1)
            n = xp.floor(x / math.log(m))

            def start(k: Any) -> Any:
                return T_0 * (power(m, k) - 1) / (m - 1)

            for _ in range(self._rounds):
                n = xp.where(start(n) > t, n - 1, n)
                n = xp.where(start(n + 1) <= t, n + 1, n)
            # a step a few roundings below the next start starts that cycle: a start on a
            # whole step (T_0=10, T_mult=1.9: step 10) computes as 10.000000000000002
            restart = (start(n + 1) - t <= _RESTART_SNAP * t) & (t < _RESTART_SNAP_BELOW)
            n = xp.where(restart, n + 1, n)
            t_cur = xp.where(restart, 0.0, t - start(n))
            t_i = T_0 * power(m, n)
            # a step near float64's largest: pi * t_cur would overflow to inf (and the cosine
            # be NaN); both scaled by a power of 2 (exact), the ratio is the same
            if wide:
                huge = t_cur >= _HUGE
                t_cur = xp.where(huge, t_cur * _SHRINK, t_cur)
                t_i = xp.where(huge, t_i * _SHRINK, t_i)
        if self.m_mul != 1.0:
            height = (self.lr - self.eta_min) * power(self.m_mul, n)
            return self.eta_min + height * 0.5 * (1 + xp.cos(_PI * t_cur / t_i))
        return self.eta_min + (self.lr - self.eta_min) * 0.5 * (1 + xp.cos(_PI * t_cur / t_i))


def _at_least_one(name: str, value: Any, what: str) -> float:
    """A finite number in ``[1, 2**53]`` (an integer compared exactly: ``2**53 + 1`` is
    refused, not read as the float ``2**53``)."""
    x = value.item() if isinstance(value, (np.integer, np.floating)) else value
    if isinstance(x, (int, float)) and not isinstance(x, bool) and not 1 <= x <= v.MAX_STEPS:
        got = v.digits(x) if isinstance(x, int) and abs(x) > 10**30 else v.fmt(value)
        raise ValueError(f"{name} must be {what} in [1, 2**53], got {got}")
    return v.number(name, value)


#: a cycle position from which ``pi * t_cur`` could overflow float64, and the power of 2 both
#: ``t_cur`` and the cycle's length are scaled by there
_HUGE = 2.0**1000
_SHRINK = 2.0**-64


def _wide(t: Any) -> bool:
    """Whether the steps ``t`` are of a float type that holds :data:`_HUGE` (float64; a
    float32 step, as Keras and optax compute, never comes near it)."""
    return str(getattr(t, "dtype", "")).endswith("float64")  # numpy's, JAX's, torch's


#: how close below a multiple of a fractional T_0 (relative to the step) a step starts that
#: cycle: twice the rounding of the multiple (T_0's and the product's, 2**-53 each)
_SNAP = 2.0**-51

#: how close below the start of a cycle of a ``T_mult > 1`` (relative to the step) a step
#: starts that cycle: the float64 start ``T_0 (T_mult**n - 1) / (T_mult - 1)`` of a cycle that
#: starts on a whole step (``T_0=10, T_mult=1.9``: step 10) can round a few units of 2**-52
#: above it (``10.000000000000002``), and the restart would come a step late
_RESTART_SNAP = 2.0**-44
#: ... below this step only, where that margin is under half a step (further on, with a
#: T_mult next to 1, a cycle can be shorter than the margin)
_RESTART_SNAP_BELOW = 0.5 / _RESTART_SNAP

#: entries of CosineRestarts' power tables (T_mult ** n for T_mult >= 2 reaches float64's
#: largest at n = 1024)
_POW_TABLE = 1100

#: below ``1 + _NEAR_ONE`` a ``T_mult``'s cycle number takes ``_NEAR_ONE_ROUNDS`` rounds of
#: correction: log's estimate can miss by more than one cycle there
_NEAR_ONE = 2.0**-20
_NEAR_ONE_ROUNDS = 4


# ============================================================================ cyclical
_CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


@register
class Cyclic(Schedule):
    """Cyclical LR between ``base_lr`` and ``max_lr`` (PyTorch ``CyclicLR``; Smith 2017):
    ``triangular``, ``triangular2`` (amplitude halves each cycle) and ``exp_range``
    (amplitude ``gamma ** step``)."""

    name = "cyclic"
    params = ("base_lr", "max_lr", "step_size_up", "step_size_down", "mode", "gamma")
    peer_calls = (
        (
            _MOMENTUM_NAMES,
            _MOMENTUM_NAMES,
            "PyTorch's cycled momentum (base_momentum=b, max_momentum=m) is "
            "sub(constant(m), cyclic(0, m - b, step_size_up, step_size_down, mode=mode, "
            "gamma=gamma)), given to lrkit.torch.scheduler as momentum=",
        ),
    )

    def __init__(
        self,
        base_lr: float,
        *,
        max_lr: float,
        step_size_up: float = 2000,
        step_size_down: float | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
    ) -> None:
        self.base_lr = _lr("base_lr", base_lr)
        self.max_lr = _lr("max_lr", max_lr)
        if self.max_lr < self.base_lr:
            raise ValueError(
                f"max_lr must be >= base_lr (allowed range: [{self.base_lr!r}, inf)), "
                f"got max_lr={max_lr!r}"
            )
        # at least one step up (and none or at least one down): up + down and
        # step / (up + down) stay finite at any step
        self.step_size_up = _int_if_integral(v.step_count("step_size_up", step_size_up, 1))
        down: float | None = None
        if step_size_down is not None:
            down = v.step_count("step_size_down", step_size_down, 0)
            if 0 < down < 1:
                raise ValueError(
                    "step_size_down must be 0 (a sawtooth, as PyTorch's) or a number of steps "
                    f"in [1, 2**53], got {v.fmt(step_size_down)}"
                )
        self.step_size_down = None if down is None else _int_if_integral(down)
        self.mode = v.choice("mode", mode, _CYCLIC_MODES)
        self.gamma = v.positive("gamma", gamma)
        up = float(self.step_size_up)
        down = float(self.step_size_down) if self.step_size_down is not None else up
        self._total = up + down
        self._ratio = up / self._total

    # the formula of _values in plain math (``**`` as values() computes it)
    def _at(self, t: float) -> float:
        q = t / self._total
        cycle = float(math.floor(1 + q))
        x = 1.0 + q - cycle
        factor = x / self._ratio if x <= self._ratio else (x - 1) / (self._ratio - 1)
        height = (self.max_lr - self.base_lr) * factor
        if self.mode == "triangular":
            return self.base_lr + height
        if self.mode == "triangular2":
            return self.base_lr + height * _pow(0.5, cycle - 1)
        if not height:  # at a cycle's start (or max_lr == base_lr): 0, even where gamma ** t
            return self.base_lr  # overflows (gamma > 1), not 0 * inf
        return self.base_lr + height * _pow(self.gamma, float(t))

    def _values(self, t: Any, xp: Any) -> Any:
        cycle = xp.floor(1 + t / self._total)
        x = 1.0 + t / self._total - cycle
        up = x / self._ratio
        if self._ratio < 1.0:
            down = (x - 1) / (self._ratio - 1)
            factor = xp.where(x <= self._ratio, up, down)
        else:  # step_size_down=0: no way down, a sawtooth (x < 1 is always on the way up)
            factor = up
        height = (self.max_lr - self.base_lr) * factor
        if self.mode == "triangular":
            return self.base_lr + height
        if self.mode == "triangular2":
            return self.base_lr + height * power(0.5, cycle - 1)
        # 0 where the height is 0, also where gamma ** t overflows: no 0 * inf is computed
        return self.base_lr + height * xp.where(height == 0, 0.0, growth(self.gamma, t, xp))


def _int_if_integral(x: float) -> float:
    return int(x) if float(x).is_integer() else x


# ============================================================================ one-cycle
_ANNEAL = ("cos", "linear")
_ANNEAL_ALIASES = {"cosine": "cos"}  # the spelling of warmup's and wsd's modes


def _phased_at(
    fast: list[tuple[float, float, float, float, float, float]], last: float, cos: bool
) -> Any:
    """``_Phased._at`` unrolled for the two phases of the default cycle: no loop, no
    attribute lookups, the constants in closure cells; the arithmetic is ``_Phased._at``'s,
    operation for operation. ``None`` for three phases (the method's loop serves them)."""
    if len(fast) != 2:
        return None
    (s0, e0, w0, a0, b0, h0), (s1, _e1, w1, a1, b1, h1) = fast
    cos_ = math.cos

    def at(t: float) -> float:
        if t > last:
            t = last
        if cos:
            if t <= e0:
                return b0 + h0 * (cos_(_PI * ((t - s0) / w0)) + 1)
            return b1 + h1 * (cos_(_PI * ((t - s1) / w1)) + 1)
        if t <= e0:
            return (b0 - a0) * ((t - s0) / w0) + a0
        return (b1 - a1) * ((t - s1) / w1) + a1

    return at


class _Phased(Schedule):
    """Piecewise annealing over PyTorch ``OneCycleLR``'s phases."""

    _phases: list[tuple[float, float, float]]  # (end_step, start_value, end_value)
    anneal_strategy: str
    total_steps: int

    def _build(self, pct_start: float, three_phase: bool, a: float, b: float, c: float) -> None:
        """Phases over values: start ``a`` -> peak ``b`` (-> ``a``) -> ``c``."""
        t = self.total_steps
        if three_phase:
            ends = [float(pct_start * t) - 1, float(2 * pct_start * t) - 2, float(t - 1)]
            vals = [(a, b), (b, a), (a, c)]
        else:
            ends = [float(pct_start * t) - 1, float(t - 1)]
            vals = [(a, b), (b, c)]
        # PyTorch takes a step into the first phase whose end it does not pass and divides by
        # the phase's width (end - the previous phase's end) there; a phase of no width is
        # always reached by some step in [0, total_steps] (at total_steps, PyTorch's last
        # step() of the run), where PyTorch raises ZeroDivisionError. Narrower phases, even
        # ones no step reaches (an end below 0, e.g. total_steps=2), are PyTorch's arithmetic.
        start = 0.0
        for i, end in enumerate(ends):
            if end == start:
                raise ValueError(
                    f"pct_start and total_steps give phase {i + 1} of the cycle no width (it "
                    f"starts and ends at step {end!r}; PyTorch's OneCycleLR divides by zero "
                    "there): pct_start must be in [0, 1] with pct_start * total_steps != 1 and "
                    + (
                        "2 * pct_start * total_steps - 2 != total_steps - 1"
                        if three_phase
                        else "pct_start * total_steps != total_steps"
                    )
                    + f", got pct_start={pct_start!r}, total_steps={t!r}"
                )
            start = end
        self._phases = [(e, s0, s1) for e, (s0, s1) in zip(ends, vals)]
        self._last = float(t - 1)
        starts = [0.0, *ends[:-1]]
        fast = []
        reach = -math.inf
        for i, (st, (end, a, b)) in enumerate(zip(starts, self._phases)):
            # a step is in the first phase whose end it does not pass (PyTorch's loop): the
            # phase of the steps above every earlier end and up to its own, i.e. up to the
            # largest end so far (ends need not increase: three_phase with a tiny pct_start);
            # the last phase takes every later step (PyTorch: ``or i == len(phases) - 1``)
            reach = max(reach, end)
            e = math.inf if i == len(self._phases) - 1 else reach
            fast.append((st, e, end - st, a, b, (a - b) / 2.0))
        self._fast = fast
        self._cos = self.anneal_strategy == "cos"
        self._unroll()

    def _unroll(self) -> None:
        # the scalar hot path: a function specialized to these phases, set on the instance
        at = _phased_at(self._fast, self._last, self._cos)
        if at is not None:  # also on unpickling, after the constructor (no setattr then)
            self.__dict__["_at"] = at

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_at", None)  # a closure: rebuilt from the phase constants on unpickling
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._unroll()

    # kept in plain math: hot path (one-cycle + momentum, benchmarks/schedules.py)
    def _at(self, t: float) -> float:
        # PyTorch's arithmetic exactly, with the per-phase constants precomputed (instances
        # use the specialized function from ``_phased_at``, which computes the same)
        if t > self._last:
            t = self._last
        for start, end, width, a, b, half in self._fast:
            if t <= end:
                if self._cos:
                    return b + half * (math.cos(_PI * ((t - start) / width)) + 1)
                return (b - a) * ((t - start) / width) + a
        raise AssertionError("unreachable")  # pragma: no cover

    def _values(self, t: Any, xp: Any) -> Any:
        if xp is np:
            return self._values_np(t)
        tc = xp.minimum(t, float(self.total_steps - 1))
        starts = [0.0] + [end for end, _, _ in self._phases[:-1]]
        out: Any = None
        # from the last phase back, so that an earlier phase wins where it applies
        for s, (end, a, b) in reversed(list(zip(starts, self._phases))):
            pct = (tc - s) / (end - s)
            if self.anneal_strategy == "cos":
                val = b + (a - b) / 2.0 * (xp.cos(_PI * pct) + 1)
            else:
                val = (b - a) * pct + a
            out = val if out is None else xp.where(tc <= end, val, out)
        return out

    def _values_np(self, t: Any) -> Any:
        # each step evaluated once, in its own phase (cos is the cost; don't do it per phase)
        tc = np.minimum(t, self._last)
        out = np.empty_like(tc)
        flat = tc.reshape(-1)
        sorted_steps = flat.size < 2 or bool(np.all(flat[1:] >= flat[:-1]))
        ends = np.array([f[1] for f in self._fast[:-1]])
        if sorted_steps:  # e.g. np.arange: each phase is one contiguous slice
            cuts = [0, *np.searchsorted(flat, ends, side="right").tolist(), flat.size]
            parts = [slice(cuts[i], cuts[i + 1]) for i in range(len(self._fast))]
            src, dst = flat, out.reshape(-1)
        else:
            idx = np.searchsorted(ends, tc, side="left")
            parts = [idx == i for i in range(len(self._fast))]  # type: ignore[misc]
            src, dst = tc, out
        for part, (start, _end, width, a, b, half) in zip(parts, self._fast):
            x = src[part] - start
            x /= width
            if self._cos:
                x *= _PI
                np.cos(x, out=x)
                x += 1
                x *= half
                x += b
            else:
                x *= b - a
                x += a
            dst[part] = x
        return out


@register
class OneCycle(_Phased):
    """One-cycle policy (PyTorch ``OneCycleLR``): from ``max_lr / div_factor`` up to
    ``max_lr`` over ``pct_start`` of ``total_steps``, then down to
    ``max_lr / div_factor / final_div_factor``; the last value is held after the end."""

    name = "onecycle"
    params = (
        "max_lr",
        "total_steps",
        "pct_start",
        "anneal_strategy",
        "div_factor",
        "final_div_factor",
        "three_phase",
    )
    # PyTorch's OneCycleLR(epochs=, steps_per_epoch=)
    peer_names = {
        "epochs": ("total_steps", "epochs * steps_per_epoch"),
        "steps_per_epoch": ("total_steps", "epochs * steps_per_epoch"),
        **_HF_TOTAL,
    }
    peer_calls = (
        (
            ("peak_value", "transition_steps"),
            ("peak_value", "transition_steps"),
            "optax's cosine_onecycle_schedule(transition_steps=T, peak_value=p, pct_start=c, "
            "div_factor=d, final_div_factor=f) is join([warmup(p / d, p, k, mode='cosine'), "
            "cosine(p, T - k, eta_min=p / d / f)], [k]) with k = int(c * T) (onecycle is "
            "PyTorch's OneCycleLR, whose phases end a step earlier)",
        ),
        _MOMENTUM_CALL,
    )

    def __init__(
        self,
        max_lr: float,
        *,
        total_steps: int,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ) -> None:
        self.max_lr = v.positive("max_lr", max_lr)
        self.total_steps = v.integer("total_steps", total_steps, 1, v.MAX_STEPS)
        self.pct_start = v.in_range("pct_start", pct_start, 0.0, 1.0)
        self.anneal_strategy = v.choice(
            "anneal_strategy", anneal_strategy, _ANNEAL, aliases=_ANNEAL_ALIASES
        )
        self.div_factor = v.positive("div_factor", div_factor)
        self.final_div_factor = v.positive("final_div_factor", final_div_factor)
        self.three_phase = v.flag("three_phase", three_phase, spelled="true or false")
        initial = self.max_lr / self.div_factor
        self.initial_lr = initial
        self.min_lr = initial / self.final_div_factor
        self._build(self.pct_start, three_phase, initial, self.max_lr, self.min_lr)

    @property
    def length(self) -> int:
        return self.total_steps


@register
class OneCycleMomentum(_Phased):
    """The momentum (or Adam ``beta1``) that PyTorch's ``OneCycleLR`` cycles inversely to the
    LR: ``max_momentum`` -> ``base_momentum`` at the LR peak -> ``max_momentum``."""

    name = "onecycle_momentum"
    params = (
        "total_steps",
        "pct_start",
        "anneal_strategy",
        "base_momentum",
        "max_momentum",
        "three_phase",
    )
    # PyTorch's OneCycleLR(epochs=, steps_per_epoch=)
    peer_names = {
        "epochs": ("total_steps", "epochs * steps_per_epoch"),
        "steps_per_epoch": ("total_steps", "epochs * steps_per_epoch"),
    }

    def __init__(
        self,
        total_steps: int,
        *,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        three_phase: bool = False,
    ) -> None:
        self.total_steps = v.integer("total_steps", total_steps, 1, v.MAX_STEPS)
        self.pct_start = v.in_range("pct_start", pct_start, 0.0, 1.0)
        self.anneal_strategy = v.choice(
            "anneal_strategy", anneal_strategy, _ANNEAL, aliases=_ANNEAL_ALIASES
        )
        self.base_momentum = v.in_range("base_momentum", base_momentum, 0.0, 1.0)
        self.max_momentum = v.in_range("max_momentum", max_momentum, 0.0, 1.0)
        self.three_phase = v.flag("three_phase", three_phase, spelled="true or false")
        hi, lo = self.max_momentum, self.base_momentum
        if three_phase:
            self._build(self.pct_start, True, hi, lo, hi)
        else:
            self._build(self.pct_start, False, hi, lo, hi)

    @property
    def length(self) -> int:
        return self.total_steps


# ============================================================================ beyond PyTorch
@register
class InverseSqrt(Schedule):
    """Inverse square root ("Noam", as Hugging Face ``get_inverse_sqrt_schedule``): linear
    warmup ``lr * step / warmup_steps`` for ``step < warmup_steps``, then
    ``lr * sqrt(timescale / (step - warmup_steps + timescale))``;
    ``timescale`` defaults to ``warmup_steps`` (or 10000 without warmup)."""

    name = "inverse_sqrt"
    params = ("lr", "warmup_steps", "timescale")
    peer_names = {**_LR_PEERS, **_HF_WARMUP}

    def __init__(self, lr: float, *, warmup_steps: int = 0, timescale: float | None = None) -> None:
        self.lr = _lr("lr", lr)
        self.warmup_steps = v.warmup_steps(warmup_steps)
        self.timescale = None if timescale is None else v.positive("timescale", timescale)
        self._ts = (
            self.timescale if self.timescale is not None else float(self.warmup_steps or 10_000)
        )

    def _values(self, t: Any, xp: Any) -> Any:
        w = float(self.warmup_steps)
        decay = self.lr * xp.sqrt(self._ts / (xp.maximum(t - w, 0.0) + self._ts))
        if self.warmup_steps == 0:
            return decay
        # the ramp at the steps it serves only (past them ``lr * t`` may overflow); + 0.0:
        # a step of -0.0 is step 0 (a negative zero LR written into an optimizer otherwise)
        return xp.where(t < w, self.lr * (xp.minimum(t, w) + 0.0) / w, decay)


@register
class PiecewiseConstant(Schedule):
    """``values[i]`` for ``boundaries[i-1] < step <= boundaries[i]`` (Keras'
    ``PiecewiseConstantDecay`` convention: a boundary step still has the earlier value)."""

    name = "piecewise_constant"
    params = ("boundaries", "values")
    peer_calls = (
        (
            ("boundaries_and_scales", "init_value"),
            ("boundaries_and_scales", "init_value"),
            "optax's piecewise_constant_schedule(init_value=i, boundaries_and_scales={b1: s1, "
            "b2: s2}) is piecewise_constant([b1 - 1, b2 - 1], [i, i * s1, i * s1 * s2]) at "
            "whole steps (optax changes the value at a boundary step, lrkit after it; a "
            "boundary at 0 scales i itself: start the values at i * s1 without it)",
        ),
    )

    def __init__(self, boundaries: Any, *, values: Any) -> None:
        b = [
            v.step_count(f"boundaries[{i}]", x, 0)
            for i, x in enumerate(_as_list("boundaries", boundaries))
        ]
        for i in range(1, len(b)):
            if b[i] <= b[i - 1]:
                raise ValueError(
                    f"boundaries must be strictly increasing, but boundaries[{i}]={b[i]!r} "
                    f"follows boundaries[{i - 1}]={b[i - 1]!r}"
                )
        vals = [_lr(f"values[{i}]", x) for i, x in enumerate(_as_list("values", values))]
        if len(vals) != len(b) + 1:
            raise ValueError(
                f"values must have len(boundaries) + 1 = {len(b) + 1} entries, got {len(vals)}"
            )
        self.boundaries = tuple(_int_if_integral(x) for x in b)
        self.values_ = tuple(vals)

    # ``values`` is the vectorized method; the parameter is stored as ``values_``
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "boundaries": list(self.boundaries),
            "values": list(self.values_),
        }

    def __str__(self) -> str:
        from ._base import _format

        return (
            f"{self.name}(boundaries={_format(list(self.boundaries))}, "
            f"values={_format(list(self.values_))})"
        )

    def _at(self, t: float) -> float:
        # the number of boundaries below the step (a boundary step keeps the earlier value)
        return self.values_[bisect.bisect_left(self.boundaries, t)]

    def _values(self, t: Any, xp: Any) -> Any:
        if xp is np:  # a search, not one pass per boundary (in the steps' float type)
            table = np.asarray(self.values_, dtype=np.result_type(t, 0.0))
            return table[np.searchsorted(self.boundaries, t, side="left")]
        out = t * 0.0 + self.values_[-1]
        for b, val in zip(reversed(self.boundaries), reversed(self.values_[:-1])):
            out = xp.where(t <= b, val, out)
        return out

    @property
    def length(self) -> int | None:
        return int(self.boundaries[-1] * 1.25) + 1 if self.boundaries else None


def _as_list(name: str, value: Any) -> list[Any]:
    v.listed(name, value, "numbers")
    try:
        return list(value)
    except TypeError:
        raise ValueError(f"{name} must be a list of numbers, got {v.fmt(value)}") from None


_WARMUP_MODES = ("linear", "exponential", "cosine")
_COS_ALIASES = {"cos": "cosine"}  # the spelling of onecycle's anneal_strategy (PyTorch's)


@register
class Warmup(Schedule):
    """A warmup ramp from ``start_lr`` to ``end_lr`` over ``warmup_steps``, then ``end_lr``:
    ``linear``: ``start + (end - start) * p``; ``exponential``: ``start * (end/start) ** p``;
    ``cosine``: ``start + (end - start) * (1 - cos(pi p)) / 2``, ``p = step / warmup_steps``.
    ``warmup_steps=0``: no ramp, ``end_lr`` from step 0 (as optax's and Keras' warmups of 0
    steps)."""

    name = "warmup"
    params = ("start_lr", "end_lr", "warmup_steps", "mode")
    # optax's linear_schedule and warmup_constant_schedule, Keras' CosineDecay's warmup
    peer_names = {
        "init_value": ("start_lr", ""),
        "end_value": ("end_lr", ""),
        "peak_value": ("end_lr", ""),
        "warmup_target": ("end_lr", ""),
        **_HF_WARMUP,
    }

    def __init__(
        self, start_lr: float, *, end_lr: float, warmup_steps: int, mode: str = "linear"
    ) -> None:
        self.start_lr = _lr("start_lr", start_lr)
        self.end_lr = _lr("end_lr", end_lr)
        self.warmup_steps = v.warmup_steps(warmup_steps)
        self.mode = v.choice("mode", mode, _WARMUP_MODES, aliases=_COS_ALIASES)
        if self.mode == "exponential" and (self.start_lr <= 0 or self.end_lr <= 0):
            raise ValueError(
                "start_lr and end_lr must be > 0 for mode='exponential' "
                f"(allowed range: (0, inf)), got start_lr={start_lr!r}, end_lr={end_lr!r}"
            )

    @property
    def length(self) -> int:
        return self.warmup_steps

    # kept in plain math: hot path (warmup + cosine, timed in benchmarks/schedules.py)
    def _at(self, t: float) -> float:
        if t >= self.warmup_steps:
            return self.end_lr
        p = t / self.warmup_steps
        a, b = self.start_lr, self.end_lr
        if self.mode == "linear":
            return a + (b - a) * p
        if self.mode == "exponential":  # ``**``: numpy's, as values() computes it
            return a * _pow(b / a, p)
        return a + (b - a) * 0.5 * (1 - math.cos(_PI * p))

    def _values(self, t: Any, xp: Any) -> Any:
        a, b = self.start_lr, self.end_lr
        if self.warmup_steps == 0:  # no ramp (and no 0 / 0)
            return xp.where(t >= 0, b, b)
        p = xp.minimum(t, float(self.warmup_steps)) / self.warmup_steps
        if self.mode == "linear":
            out = a + (b - a) * p
        elif self.mode == "exponential":
            out = a * (b / a) ** p
        else:
            out = a + (b - a) * 0.5 * (1 - xp.cos(_PI * p))
        return xp.where(t >= self.warmup_steps, b, out)


_WSD_DECAYS = ("linear", "cosine", "1-sqrt")


@register
class WSD(Schedule):
    """Warmup-stable-decay: a warmup from ``init_lr`` to ``lr`` over ``warmup_steps``,
    ``lr`` until ``total_steps - decay_steps``, then a decay to ``min_lr`` at ``total_steps``
    (held after): ``linear`` ``lr - (lr - min_lr) p``, ``cosine``
    ``min_lr + (lr - min_lr)(1 + cos(pi p))/2`` or ``1-sqrt``
    ``min_lr + (lr - min_lr)(1 - sqrt(p))``
    with ``p`` the fraction of the decay phase done (``decay_steps=0``: ``min_lr`` from
    ``total_steps`` on). ``decay_steps`` defaults to 20% of ``total_steps`` (Hägele et al.
    2024). The warmup's shape (``warmup``, Hugging Face's ``warmup_type``) is ``linear``
    ``init_lr + (lr - init_lr) w``, ``cosine`` ``init_lr + (lr - init_lr)(1 - cos(pi w))/2``
    or ``1-sqrt`` ``init_lr + (lr - init_lr)(1 - sqrt(1 - w))``, ``w`` the fraction of the
    warmup done."""

    name = "wsd"
    params = (
        "lr",
        "total_steps",
        "warmup_steps",
        "decay_steps",
        "decay",
        "min_lr",
        "init_lr",
        "warmup",
    )
    peer_names = {
        **_LR_PEERS,
        **_HF_TOTAL,
        **_HF_WARMUP,
        "num_decay_steps": ("decay_steps", ""),
        "num_stable_steps": (
            "total_steps",
            "num_warmup_steps + num_stable_steps + num_decay_steps",
        ),
        "decay_type": ("decay", ""),
        "warmup_type": ("warmup", ""),
        # Hugging Face's warmup starts at min_lr_ratio * lr too
        "min_lr_ratio": ("min_lr", "min_lr_ratio * lr, and init_lr = min_lr_ratio * lr"),
    }

    def __init__(
        self,
        lr: float,
        *,
        total_steps: int,
        warmup_steps: int = 0,
        decay_steps: int | None = None,
        decay: str = "1-sqrt",
        min_lr: float = 0.0,
        init_lr: float = 0.0,
        warmup: str = "linear",
    ) -> None:
        self.lr = _lr("lr", lr)
        self.total_steps = v.integer("total_steps", total_steps, 1, v.MAX_STEPS)
        self.warmup_steps = v.warmup_steps(warmup_steps)
        # the default decay needs a step after the warmup; decay_steps=0 lets it fill the run
        most = self.total_steps - (decay_steps is None)
        if self.warmup_steps > most:
            raise ValueError(
                f"warmup_steps must be {'<' if decay_steps is None else '<='} total_steps "
                f"(allowed range: [0, {most}]"
                + ("; the decay needs at least 1 step" if decay_steps is None else "")
                + f"), got warmup_steps={self.warmup_steps}, total_steps={self.total_steps}"
            )
        if decay_steps is None:  # 20% of the run, at most the steps after the warmup
            decay_steps = min(
                max(1, round(0.2 * self.total_steps)), self.total_steps - self.warmup_steps
            )
        self.decay_steps = v.integer("decay_steps", decay_steps, 0, v.MAX_STEPS)
        if self.warmup_steps + self.decay_steps > self.total_steps:
            raise ValueError(
                "warmup_steps + decay_steps must be <= total_steps "
                f"(allowed range for decay_steps: [0, {self.total_steps - self.warmup_steps}]), "
                f"got warmup_steps={self.warmup_steps}, decay_steps={self.decay_steps}, "
                f"total_steps={self.total_steps}"
            )
        self.decay = v.choice("decay", decay, _WSD_DECAYS, aliases=_COS_ALIASES)
        self.warmup = v.choice("warmup", warmup, _WSD_DECAYS, aliases=_COS_ALIASES)
        self.min_lr = _lr("min_lr", min_lr)
        self.init_lr = _lr("init_lr", init_lr)
        self._decay_start = self.total_steps - self.decay_steps

    @property
    def length(self) -> int:
        return self.total_steps

    def _values(self, t: Any, xp: Any) -> Any:
        if self.decay_steps:
            p = xp.minimum(xp.maximum(t - self._decay_start, 0.0) / self.decay_steps, 1.0)
        else:  # no decay phase: min_lr from total_steps on
            p = xp.where(t >= self._decay_start, 1.0, 0.0)
        if self.decay == "linear":
            q = p
        elif self.decay == "cosine":
            q = 0.5 * (1 - xp.cos(_PI * p))
        else:  # (sqrt at p > 0 only: its slope at 0 would make a derivative NaN)
            q = xp.where(p > 0, xp.sqrt(xp.where(p > 0, p, 1.0)), 0.0)
        # the share q of the way: q = 0 is lr and q = 1 is min_lr, both exactly, and never
        # past min_lr on the way (``lr - span`` can miss min_lr by a rounding); a min_lr above
        # lr is a rise, as Hugging Face's min_lr_ratio > 1 gives
        span = self.lr - self.min_lr
        bound = xp.maximum if span >= 0 else xp.minimum
        out = xp.where(q >= 1.0, self.min_lr, bound(self.lr - span * q, self.min_lr))
        if self.warmup_steps:
            w = float(self.warmup_steps)
            # the ramp at the steps it serves only (past them it may overflow)
            f = xp.minimum(t, w) / w
            if self.warmup == "cosine":
                f = 0.5 * (1 - xp.cos(_PI * f))
            elif self.warmup == "1-sqrt":  # (sqrt above 0 only, as the decay's)
                g = 1.0 - f
                f = 1.0 - xp.where(g > 0, xp.sqrt(xp.where(g > 0, g, 1.0)), 0.0)
            ramp = self.init_lr + (self.lr - self.init_lr) * f
            out = xp.where(t < w, ramp, out)
        return out
