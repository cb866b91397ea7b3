"""Adaptive optimizers made visible: the per-element step size Adam & co. actually apply.

``effective_lr(optimizer)`` returns one tensor per parameter (param-group order, the parameter's
shape). Each optimizer's update is written as ``param -= step_size * direction``, with the
direction normalised as below, and ``step_size`` is what is returned. It is computed from the
optimizer's *current* state and the group's *current* ``lr``: the step size of the last step
taken (with the lr it will use next), which is also the next step's as long as the second-moment
estimate does not move. Weight decay is not counted (it is a separate term of the update).
``t`` is ``state["step"]``, ``lr`` the group's lr, ``bc2 = 1 - beta2**t``.

==========  ===================================================  ============================
optimizer   step size (returned)                                 direction
==========  ===================================================  ============================
Adam/AdamW  ``lr / (sqrt(v / bc2) + eps)``; with ``amsgrad``     ``m / (1 - beta1**t)``
            ``v`` is ``max_exp_avg_sq``
NAdam       ``lr / (sqrt(v / bc2) + eps)``; on torch's foreach   Nesterov mix
            path, ``lr / (sqrt(v) / sqrt(bc2) + eps)``           ``(1-mu_t)/(1-P_t) g +
                                                                 mu_{t+1}/(1-P_{t+1}) m``
                                                                 (``P``: ``mu_product``)
RAdam       ``rho_t > 5``: ``lr * r_t * sqrt(bc2) / (sqrt(v) +   ``m / (1 - beta1**t)``
            eps)`` with the rectification ``r_t``; otherwise
            ``lr`` (the un-adapted, SGD-with-momentum step)
Adamax      ``lr / u`` (``u = exp_inf``, eps already inside)     ``m / (1 - beta1**t)``
RMSprop     ``lr / (sqrt(v) + eps)``; centered:                  ``g`` (see momentum below)
            ``lr / (sqrt(v - g_avg**2) + eps)``
Adagrad     ``lr / (1 + (t-1) lr_decay) / (sqrt(sum) + eps)``     ``g``
SGD         ``lr`` everywhere                                    ``g`` (or momentum buffer)
==========  ===================================================  ============================

RMSprop with ``momentum > 0`` adds ``g / (sqrt(v) + eps)`` to a buffer ``b = momentum*b + ...``
and steps by ``lr * b``: the value returned is the weight of the current gradient in this step;
a gradient that persists is amplified up to ``1 / (1 - momentum)`` times over later steps.

Where torch's two implementations of an optimizer round differently, the step size follows the
one that runs: NAdam one tensor at a time divides ``v`` by ``bc2`` before the square root,
its multi-tensor (foreach) path takes the square roots first. In float16 the first overflows
(step 0) where the second still steps. The foreach path is the one taken with
``foreach=True``, or with the default ``foreach=None`` when every parameter of the group is
on a device torch has foreach kernels for (CUDA, XPU, MTIA) and ``differentiable`` is off.

Parameters without state (before their first step, or Adagrad at ``step == 0``) get a tensor
of NaN: their step size depends on a gradient not seen yet. Summaries skip NaNs; an
infinite step size (an overflow, e.g. in float16) counts, and a percentile that reaches one
is ``inf``.

:class:`EffectiveLRLogger` summarises each parameter by percentiles of its step sizes. By
default (``sample=4096``) they are computed on a fixed uniform random sample of at most 4096
elements per parameter, drawn once when the logger is built (its own generator: the global RNG
is not touched); a parameter with at most that many elements is summarised exactly. A sample
percentile is an exact percentile of the sample, and its rank in the whole tensor is within
:data:`SAMPLE_RANK_TOLERANCE` (3 percentile points) of the one asked for, except with
probability below 0.2% (Dvoretzky-Kiefer-Wolfowitz bound ``2 exp(-2 n eps^2)`` for
``n = 4096``, ``eps = 0.03``, all percentiles at once). ``sample=None`` computes them over every
element (exact, at a cost of a sort of every parameter at each log).
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import _validate as V
from .._figure import is_axes, is_path, label_log_axis, new_axes, resolve, save_figure
from .._format import failure
from .._imports import install_hint, optional, require
from .._runtime import caller_level, in_range_test

require("torch", "torch")  # without PyTorch: the one-line install hint

import torch

__all__ = ["EffectiveLRLogger", "effective_lr"]

SAMPLE_RANK_TOLERANCE = 0.03
"""With a sample, the rank (in the whole tensor) of a logged percentile is within this of the
percentile asked for, except with probability below 0.2% (see the module docstring)."""

SUPPORTED = ("Adam", "AdamW", "NAdam", "RAdam", "Adamax", "RMSprop", "Adagrad", "SGD")


def _kind(optimizer: torch.optim.Optimizer) -> str:
    o = torch.optim
    for cls, name in (
        (o.Adam, "adam"),
        (o.AdamW, "adam"),  # a subclass of Adam from PyTorch 2.5 on, not before
        (o.NAdam, "nadam"),
        (o.RAdam, "radam"),
        (o.Adamax, "adamax"),
        (o.RMSprop, "rmsprop"),
        (o.Adagrad, "adagrad"),
        (o.SGD, "sgd"),
    ):
        if isinstance(optimizer, cls):
            return name
    raise ValueError(
        f"optimizer must be one of torch.optim.{', '.join(SUPPORTED)} (or a subclass), "
        f"got {type(optimizer).__name__}"
    )


def _f(x: Any) -> float:
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)


def _nan_like(p: torch.Tensor) -> torch.Tensor:
    return torch.full_like(p, math.nan, memory_format=torch.contiguous_format).detach()


#: the devices torch's optimizers run their multi-tensor (foreach) path on by default
_FOREACH_DEVICES = frozenset({"cuda", "xpu", "mtia", "privateuseone"})


def _foreach(group: Mapping[str, Any]) -> bool:
    """Whether torch steps ``group`` on its multi-tensor (foreach) path: ``foreach=True``, or
    the default ``None`` with ``differentiable`` off and every parameter torch steps (those
    with a gradient; all of them where none has one, as after ``zero_grad()``) a plain
    tensor on a device of :data:`_FOREACH_DEVICES` (as torch's optimizers decide the
    default)."""
    foreach = group.get("foreach")
    if foreach is not None:
        return bool(foreach)
    if group.get("differentiable", False):
        return False
    params = [p for p in group["params"] if p.grad is not None] or list(group["params"])
    return all(
        type(p) in (torch.Tensor, torch.nn.Parameter) and p.device.type in _FOREACH_DEVICES
        for p in params
    )


def _step_size(
    kind: str,
    group: Mapping[str, Any],
    state: Mapping[str, Any],
    p: torch.Tensor,
    *,
    foreach: bool = False,
) -> torch.Tensor:
    """The step size of ``p`` (module docstring); ``foreach``: whether torch steps the group
    on its multi-tensor path (:func:`_foreach`), which rounds NAdam's differently."""
    lr = _f(group["lr"])
    if kind == "sgd":
        return torch.full_like(p, lr, memory_format=torch.contiguous_format).detach()
    if "step" not in state:
        return _nan_like(p)
    t = _f(state["step"])
    if t <= 0:
        return _nan_like(p)
    eps = _f(group["eps"])
    if kind in ("adam", "nadam", "radam"):
        beta2 = _f(group["betas"][1])
        bc2: float = 1.0 - beta2**t
        v: torch.Tensor = state["exp_avg_sq"]
        if kind == "adam" and group.get("amsgrad", False):
            v = state["max_exp_avg_sq"]
        if kind == "radam":
            rho_inf = 2.0 / (1.0 - beta2) - 1.0
            rho_t = rho_inf - 2.0 * t * (beta2**t) / bc2
            if rho_t <= 5.0:
                return torch.full_like(v, lr)
            rect: float = (
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            ) ** 0.5
            sqrt_bc2: float = bc2**0.5
            return lr * rect * sqrt_bc2 / (v.sqrt() + eps)
        if kind == "adam" or foreach:  # square roots first, as torch's Adam and foreach NAdam
            return lr / (v.sqrt() / math.sqrt(bc2) + eps)  # (v / bc2 may overflow float16)
        return lr / ((v / bc2).sqrt() + eps)  # NAdam one tensor at a time divides first
    if kind == "adamax":
        exp_inf: torch.Tensor = state["exp_inf"]
        return lr / exp_inf
    if kind == "rmsprop":
        sq: torch.Tensor = state["square_avg"]
        if group.get("centered", False):
            g: torch.Tensor = state["grad_avg"]
            avg = sq.addcmul(g, g, value=-1).sqrt()
        else:
            avg = sq.sqrt()
        return lr / (avg + eps)
    if kind == "adagrad":
        clr = lr / (1.0 + (t - 1.0) * _f(group["lr_decay"]))
        acc: torch.Tensor = state["sum"]
        return clr / (acc.sqrt() + eps)
    raise AssertionError(kind)  # pragma: no cover


@torch.no_grad()
def effective_lr(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The per-element step size of every parameter, in param-group order.

    One tensor per parameter, with the parameter's shape, dtype and device (see the module
    docstring for the formula of each optimizer). Supported: Adam, AdamW, NAdam, RAdam,
    Adamax, RMSprop, Adagrad (and SGD, whose step size is ``lr`` everywhere). The optimizer is
    only read.
    """
    kind = _kind(optimizer)
    out: list[torch.Tensor] = []
    for group in optimizer.param_groups:
        foreach = kind == "nadam" and _foreach(group)
        for p in group["params"]:
            if torch.is_complex(p):
                raise ValueError("optimizer: complex parameters are not supported")
            s = _step_size(kind, group, optimizer.state.get(p, {}), p, foreach=foreach)
            out.append(s.detach())
    return out


# ---------------------------------------------------------------------------------- logging
def _param_names(optimizer: torch.optim.Optimizer, names: Any) -> list[str]:
    out = _names_given(optimizer, names)
    seen: set[str] = set()
    for n in out:
        if n in seen:
            raise ValueError(
                f"names: {n!r} names more than one parameter (e.g. the named_parameters() of "
                "two models): give each its own, e.g. [('enc.' + n, p) for n, p in "
                "enc.named_parameters()] + [('dec.' + n, p) for n, p in dec.named_parameters()]"
            )
        seen.add(n)
    return out


def _names_given(optimizer: torch.optim.Optimizer, names: Any) -> list[str]:
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if names is None:
        multi = len(optimizer.param_groups) > 1
        out = []
        for gi, g in enumerate(optimizer.param_groups):
            for pi, p in enumerate(g["params"]):
                shape = "x".join(str(d) for d in p.shape) or "scalar"
                prefix = f"g{gi}." if multi else ""
                out.append(f"{prefix}p{pi}[{shape}]")
        return out
    if isinstance(names, torch.nn.Module):
        names = list(names.named_parameters())
    if isinstance(names, Mapping):
        names = list(names.items())
    if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
        raise ValueError(
            "names must be a module, (name, param) pairs or one string per parameter, got "
            f"{names!r}"
        )
    names = list(names)
    if names and all(isinstance(n, tuple) and len(n) == 2 for n in names):
        by_id = {id(p): str(n) for n, p in names}
        missing = [i for i, p in enumerate(params) if id(p) not in by_id]
        if missing:
            raise ValueError(
                f"names: no name for the optimizer's parameter(s) {missing[:5]} (pass the model "
                "whose parameters the optimizer holds, or model.named_parameters())"
            )
        return [by_id[id(p)] for p in params]
    if len(names) != len(params) or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"names must be a module, (name, parameter) pairs, or {len(params)} strings "
            f"(one per optimizer parameter), got {len(names)} entries"
        )
    return list(names)


_Q = (0.5, 0.05, 0.95)  # median, p5, p95


def _percentiles(a: np.ndarray) -> np.ndarray:
    """numpy's default (linear) ``quantile(a, _Q, axis=1)`` of a 2-d array without NaN, with
    the same float operations (bit for bit), from one partition of all rows. An infinite
    element reached by the interpolation gives an infinite quantile (numpy's would be NaN:
    ``inf - inf``), as for a finite one the value between its two neighbours."""
    n = a.shape[1]
    vi = [(n - 1) * q for q in _Q]
    lo = [min(math.floor(v), n - 1) for v in vi]
    hi = [min(i + 1, n - 1) for i in lo]
    part = np.partition(a, sorted(set(lo + hi)), axis=1)
    out = np.empty((a.shape[0], len(_Q)))
    for j, (v, i0, i1) in enumerate(zip(vi, lo, hi)):
        x0, x1 = part[:, i0], part[:, i1]
        if v >= n - 1:
            out[:, j] = part[:, n - 1]
            continue
        t = v - i0
        with np.errstate(invalid="ignore"):  # inf - inf: replaced below
            d = x1 - x0
            val = x1 - d * (1 - t) if t >= 0.5 else x0 + d * t
        # an infinite end: the quantile is that end (the only value between a finite one and
        # inf, at t > 0, is inf); finite ends keep numpy's bits
        val = np.where(np.isinf(x0), x0, val)
        out[:, j] = np.where(np.isinf(x1) & ~np.isinf(x0), x1 if t > 0 else x0, val)
    return out


def _summaries(rows: list[torch.Tensor]) -> list[tuple[float, float, float]]:
    """``(median, p5, p95)`` of the values other than NaN of each 1-d CPU tensor (NaN when it
    has none), as ``numpy.percentile`` computes them; an infinite step size counts (a
    percentile that reaches one is ``inf``: :func:`_percentiles`). Rows of one length without
    NaN are done together (one partition)."""
    out: list[tuple[float, float, float]] = [(math.nan, math.nan, math.nan)] * len(rows)
    groups: dict[int, list[int]] = {}
    arrays = [r.numpy() if r.dtype == torch.float64 else r.double().numpy() for r in rows]
    for i, a in enumerate(arrays):
        if a.size and not np.isnan(a).any():
            groups.setdefault(a.size, []).append(i)
        else:  # NaN elements skipped: a row of its own length
            kept = a[~np.isnan(a)]
            if kept.size:
                out[i] = tuple(_percentiles(kept[None, :])[0].tolist())  # type: ignore[assignment]
    for idx in groups.values():
        vals = _percentiles(np.stack([arrays[i] for i in idx]))
        for i, v in zip(idx, vals.tolist()):
            out[i] = (v[0], v[1], v[2])
    return out


_STATE_KEYS = {  # the per-element state each step size reads
    "adam": ("exp_avg_sq", "max_exp_avg_sq"),
    "nadam": ("exp_avg_sq",),
    "radam": ("exp_avg_sq",),
    "adamax": ("exp_inf",),
    "rmsprop": ("square_avg", "grad_avg"),
    "adagrad": ("sum",),
}


def _sample_indices(n: int, k: int | None, gen: torch.Generator) -> torch.Tensor | None:
    """``k`` distinct element indices of ``n`` drawn uniformly (sorted); None: all of them.

    The first ``k`` distinct values of ``2k`` uniform draws (a uniform ``k``-subset), in
    O(k) time and memory: a permutation of all ``n`` would cost as much as the parameter.
    Where ``n`` is small, or the draws repeat too often, a permutation is cheap anyway."""
    if k is None or n <= k:
        return None
    if n > 16 * k:
        draws = torch.randint(n, (2 * k,), generator=gen)
        values, inverse = torch.unique(draws, return_inverse=True)
        if len(values) >= k:
            order = torch.arange(2 * k)
            first = torch.full((len(values),), 2 * k).scatter_reduce(0, inverse, order, "amin")
            picked: torch.Tensor = values[first.argsort()[:k]]
            return picked.sort().values
    return torch.randperm(n, generator=gen)[:k].sort().values


def _sampled_step_size(
    kind: str,
    group: Mapping[str, Any],
    state: Mapping[str, Any],
    p: torch.Tensor,
    idx: torch.Tensor | None,
    *,
    foreach: bool = False,
) -> torch.Tensor:
    """:func:`_step_size` on the elements ``idx`` of ``p`` only (all of them for None)."""
    if idx is None:
        return _step_size(kind, group, state, p, foreach=foreach)
    sub = dict(state)
    for k in _STATE_KEYS.get(kind, ()):
        if k in sub:
            sub[k] = sub[k].take(idx)
    return _step_size(kind, group, sub, p.detach().take(idx), foreach=foreach)


def _tensorboard_writer(log_dir: str | None) -> Any:
    if optional("tensorboard") is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=log_dir)


class EffectiveLRLogger:
    """Record per-layer summaries of :func:`effective_lr` over training.

    ``log(step)`` stores, for every parameter, the median and the 5th/95th percentiles of its
    per-element step sizes (NaN elements skipped; infinite ones count: a percentile that
    reaches one is ``inf``), computed on a fixed random sample of
    ``sample`` elements per parameter (see the module docstring for the tolerance; its cost
    at ``every=10``, against the bare training step, is measured by
    ``benchmarks/helpers_overhead.py``: ``docs/overhead.md``), or over all elements with
    ``sample=None``. With ``tensorboard="auto"`` (default) they
    also go to TensorBoard (``effective_lr/<name>/{median,p5,p95}``) when the ``tensorboard``
    package is installed; ``writer=`` takes any object with ``add_scalar(tag, value, step)``.
    ``plot(path_or_ax)`` draws the medians with a p5-p95 band (matplotlib).

    Args:
        optimizer: a supported optimizer (see :func:`effective_lr`).
        names: a module (its ``named_parameters()``), ``(name, param)`` pairs or one string per
            parameter. Default: ``p<i>[shape]`` (``g<j>.p<i>[shape]`` with several groups).
        every: log automatically after every ``every``-th ``optimizer.step()`` (a step post-hook,
            removed by :meth:`close`; the steps of a range test are not counted); None: call
            :meth:`log` yourself.
        initial_step: the optimizer steps taken before the logger was built (a resumed run):
            the automatic count goes on from it, so that the steps logged (and TensorBoard's)
            continue the first run's rather than start again from 0.
        log_dir: TensorBoard log directory (default: ``runs/...`` as SummaryWriter chooses).
        sample: elements per parameter the percentiles are computed on (an integer >= 100;
            parameters with fewer elements are summarised exactly); None: all elements.
        seed: seed of the logger's own generator that draws the sample.
    """

    @V.checked_keywords("EffectiveLRLogger")
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        names: Any = None,
        every: int | None = None,
        initial_step: int = 0,
        tensorboard: bool | str = "auto",
        log_dir: str | None = None,
        writer: Any = None,
        sample: int | None = 4096,
        seed: int = 0,
    ) -> None:
        self._kind = _kind(optimizer)
        self.optimizer = optimizer
        seed = V.seed("seed", seed)
        if writer is not None and not callable(getattr(writer, "add_scalar", None)):
            raise TypeError(
                f"writer must have an add_scalar(tag, value, step) method (a TensorBoard "
                f"SummaryWriter), got {V.fmt(writer)}"
            )
        if not isinstance(names, (torch.nn.Module, Mapping, str, bytes)) and hasattr(
            names, "__iter__"
        ):
            names = list(names)  # (named_parameters(): a generator, read twice below)
        self.names = _param_names(optimizer, names)
        # where the names of parameters added later (add_param_group) are looked up: the
        # module (read again then) or the pairs given; else they get the default names
        self._name_source: Any = names if isinstance(names, torch.nn.Module) else None
        pairs = list(names.items()) if isinstance(names, Mapping) else names
        if isinstance(pairs, list) and all(isinstance(n, tuple) and len(n) == 2 for n in pairs):
            # the parameters themselves, not their ids: a copy of the logger (with its
            # optimizer) looks up the copied parameters
            self._name_source = [(str(n), p) for n, p in pairs]
        if sample is not None and (
            isinstance(sample, bool) or not isinstance(sample, int) or sample < 100
        ):
            raise ValueError(f"sample must be an integer >= 100 or None, got {V.fmt(sample)}")
        self.sample = sample
        self._gen = torch.Generator().manual_seed(int(seed))
        self._idx: list[torch.Tensor | None] = []
        self._params: list[torch.Tensor] = []  # the parameters logged, in the order of names
        for g in optimizer.param_groups:
            for p in g["params"]:
                if torch.is_complex(p):  # refused now, not from inside a later step()
                    raise ValueError("optimizer: complex parameters are not supported")
                self._params.append(p)
                self._idx.append(self._draw(p))
        if every is not None and (isinstance(every, bool) or not isinstance(every, int)):
            raise ValueError(f"every must be an integer >= 1 or None, got {V.fmt(every)}")
        if every is not None and every < 1:
            raise ValueError(f"every must be an integer >= 1 or None, got {V.fmt(every)}")
        if tensorboard not in (True, False, "auto"):
            raise ValueError(f"tensorboard must be True, False or 'auto', got {V.fmt(tensorboard)}")
        self.writer = writer
        self._own_writer = False
        if writer is None and tensorboard:
            self.writer = _tensorboard_writer(log_dir)
            self._own_writer = self.writer is not None
            if self.writer is None and tensorboard is True:
                hint = install_hint(
                    "tensorboard",
                    package="tensorboard",
                    feature="EffectiveLRLogger(tensorboard=True)",
                )
                raise ImportError(hint, name="tensorboard")
        self.steps: list[int] = []
        self.history: dict[str, dict[str, list[float]]] = {
            n: {"median": [], "p5": [], "p95": []} for n in self.names
        }
        self._count = V.integer("initial_step", initial_step, 0)
        self._stopped = False
        self._hook: Any = None
        if every is not None:
            self.every = every
            self._hook = optimizer.register_step_post_hook(self._on_step)

    def __getstate__(self) -> dict[str, Any]:
        # an optimizer leaves its step hooks behind when copied or pickled: a copy of this
        # logger (with its copy of the optimizer) hooks itself onto the optimizer it holds
        state = self.__dict__.copy()
        state["_hook"] = self._hook is not None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        hooked = state.pop("_hook", False)
        self.__dict__.update(state)
        self._hook = self.optimizer.register_step_post_hook(self._on_step) if hooked else None

    def __copy__(self) -> EffectiveLRLogger:
        # a second logger of the same optimizer (and writer): its own history, sampling
        # generator and hook, so that neither logs into the other's
        state = self.__getstate__()
        for key in ("steps", "history", "names", "_gen"):
            state[key] = copy.deepcopy(state[key])
        state["_params"] = list(state["_params"])  # the same parameters, a list of its own
        state["_idx"] = list(state["_idx"])  # and their samples, kept in step with them
        new = object.__new__(type(self))
        new.__setstate__(state)
        return new

    def _draw(self, p: torch.Tensor) -> torch.Tensor | None:
        idx = _sample_indices(p.numel(), self.sample, self._gen)
        return None if idx is None else idx.to(p.device)

    def _on_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if in_range_test() or self._stopped:  # a range test's throwaway step (find_lr)
            return
        self._count += 1
        if self._count % self.every == 0:
            try:
                self.log(self._count)
            except Exception as exc:  # noqa: BLE001 - a logger never breaks the training step
                self._stopped = True
                warnings.warn(
                    f"EffectiveLRLogger: automatic logging stopped at step {self._count} "
                    f"({failure(exc)})",
                    RuntimeWarning,
                    stacklevel=caller_level(),
                )

    def _sync(self) -> list[dict[str, Any]]:
        """The param group of each logged parameter. Parameters the optimizer got since the
        logger was built (``add_param_group``) are added to the logged ones: named from
        ``names`` where it has them (else ``g<j>.p<i>[shape]``), their history NaN before;
        a parameter no longer in the optimizer is a one-line ValueError."""
        groups = self.optimizer.param_groups
        held = [(g, p) for g in groups for p in g["params"]]
        if len(held) == len(self._params) and all(p is q for (_, p), q in zip(held, self._params)):
            return [g for g, _ in held]
        group_of = {id(p): g for g, p in held}
        gone = sum(id(p) not in group_of for p in self._params)
        if gone:
            raise ValueError(
                f"optimizer: {gone} of the parameters the logger was built on are no longer in "
                "it; build a new EffectiveLRLogger"
            )
        known = {id(p) for p in self._params}
        source = self._name_source
        pairs = source.named_parameters() if isinstance(source, torch.nn.Module) else source
        lookup = {id(p): n for n, p in pairs or ()}
        for gi, g in enumerate(groups):
            for pi, p in enumerate(g["params"]):
                if id(p) in known:
                    continue
                if torch.is_complex(p):
                    raise ValueError("optimizer: complex parameters are not supported")
                shape = "x".join(str(d) for d in p.shape) or "scalar"
                base = lookup.get(id(p)) or f"g{gi}.p{pi}[{shape}]"
                name, k = base, 2
                while name in self.history:
                    name, k = f"{base}#{k}", k + 1
                nan = [math.nan] * len(self.steps)
                self.history[name] = {"median": list(nan), "p5": list(nan), "p95": list(nan)}
                self.names.append(name)
                self._params.append(p)
                self._idx.append(self._draw(p))
                known.add(id(p))
        return [group_of[id(p)] for p in self._params]

    def log(self, step: int | None = None) -> dict[str, tuple[float, float, float]]:
        """Record the summaries at ``step`` (default: the number of logs so far);
        returns ``{name: (median, p5, p95)}``."""
        step = len(self.steps) if step is None else V.integer("step", step)
        summaries = _summaries(self._sizes())
        out: dict[str, tuple[float, float, float]] = {}
        self.steps.append(step)
        for name, (med, p5, p95) in zip(self.names, summaries):
            h = self.history[name]
            h["median"].append(med)
            h["p5"].append(p5)
            h["p95"].append(p95)
            out[name] = (med, p5, p95)
            if self.writer is not None:
                for key, val in (("median", med), ("p5", p5), ("p95", p95)):
                    self.writer.add_scalar(f"effective_lr/{_tag(name)}/{key}", val, step)
        return out

    @torch.no_grad()
    def _sizes(self) -> list[torch.Tensor]:
        """The (sampled) step sizes of every parameter, on the CPU (one transfer per device)."""
        opt, kind = self.optimizer, self._kind
        params = list(zip(self._sync(), self._params))
        foreach = {id(g): kind == "nadam" and _foreach(g) for g in opt.param_groups}
        sizes = []
        for (g, p), idx in zip(params, self._idx):
            if torch.is_complex(p):
                raise ValueError("optimizer: complex parameters are not supported")
            state = opt.state.get(p, {})
            size = _sampled_step_size(kind, g, state, p, idx, foreach=foreach[id(g)])
            sizes.append(size.reshape(-1).double())
        if len({s.device for s in sizes}) == 1 and sizes[0].device.type != "cpu":
            flat = torch.cat(sizes).cpu()  # one device-to-host copy
            return list(torch.split(flat, [s.numel() for s in sizes]))
        return [s.cpu() for s in sizes]

    def to_dict(self) -> dict[str, Any]:
        """The history as plain Python types (``{"steps": [...], "layers": {name: {...}}}``)."""
        return {
            "steps": list(self.steps),
            "layers": {n: {k: list(v) for k, v in h.items()} for n, h in self.history.items()},
        }

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs, as plain Python types: the optimizer steps counted
        (``step``) and the history (``steps``, ``layers``, as :meth:`to_dict`). Save this in a
        checkpoint rather than the logger itself, which holds the optimizer and its
        parameters (a pickled logger is hooked onto its own copy of them)."""
        return {"step": self._count, **self.to_dict()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`: the count of optimizer steps and the history go on
        from the checkpoint's (a logger built on the resumed optimizer). A layer of this
        logger the checkpoint has no history of gets NaN for the steps saved; one the
        checkpoint has and this logger does not is a one-line ``ValueError``, as is a
        malformed state; nothing is changed then."""
        state = state_dict
        if not isinstance(state, Mapping) or not {"step", "steps", "layers"} <= set(state):
            raise ValueError(
                "state_dict must be a state_dict() of an EffectiveLRLogger (keys step, steps, "
                f"layers), got {V.fmt(state)}"
            )
        count = V.integer("state['step']", state["step"], 0)
        steps = [V.integer("state['steps'][i]", t) for t in state["steps"]]
        layers = state["layers"]
        self._sync()  # the parameters the optimizer got since this logger was built
        if isinstance(layers, Mapping):  # a default name with and without its group's prefix
            # ("p0[4x4]" of a logger built on one group is "g0.p0[4x4]" with several)
            known = set(self.names)
            layers = {
                (
                    f"g0.{n}"
                    if n not in known and f"g0.{n}" in known
                    else n[3:]
                    if n not in known and n.startswith("g0.") and n[3:] in known
                    else n
                ): h
                for n, h in layers.items()
            }
        unknown = sorted(set(layers) - set(self.names)) if isinstance(layers, Mapping) else []
        if not isinstance(layers, Mapping) or unknown:
            raise ValueError(
                f"state['layers'] names layers this logger does not have: {unknown[:5]} "
                f"(its layers: {self.names[:5]}...); build it with the same names= and "
                "optimizer"
                if unknown
                else f"state['layers'] must be a dict of layers, got {V.fmt(layers)}"
            )
        history: dict[str, dict[str, list[float]]] = {}
        for name in self.names:
            h = layers.get(name)
            if h is None:
                history[name] = {k: [math.nan] * len(steps) for k in ("median", "p5", "p95")}
                continue
            try:
                history[name] = {k: [float(v) for v in h[k]] for k in ("median", "p5", "p95")}
            except (KeyError, TypeError, ValueError):
                raise ValueError(
                    f"state['layers'][{name!r}] must hold median, p5 and p95 lists"
                ) from None
            if any(len(v) != len(steps) for v in history[name].values()):
                raise ValueError(
                    f"state['layers'][{name!r}] must hold one value per step saved ({len(steps)})"
                )
        self._count, self.steps, self.history = count, steps, history

    def plot(
        self,
        path_or_ax: Any = None,
        *,
        ax: Any = None,
        path: Any = None,
        layers: Sequence[str] | None = None,
        title: str | None = None,
    ) -> Any:
        """Plot median (line) and p5-p95 (band) per layer on a log scale.

        ``path_or_ax``: a file name (the figure is drawn without pyplot and written), a
        matplotlib Axes, or None (a new figure); ``path=`` is the same as a file name there,
        ``ax=`` as an Axes there. ``title`` replaces the default heading. Returns the Axes.
        """
        if ax is not None and path_or_ax is not None and not is_path(path_or_ax):
            raise ValueError("ax: the axes are given twice (as the first argument and as ax=)")
        first, path = resolve(path_or_ax, path, first_name="path_or_ax")
        if first is not None and not is_axes(first):
            raise ValueError(
                f"path_or_ax must be a file name, a matplotlib Axes or None, got {V.fmt(first)}"
            )
        ax = first if ax is None else ax
        require("matplotlib", "plot", feature="EffectiveLRLogger.plot")
        if isinstance(layers, str):  # one layer's name, not its characters
            layers = [layers]
        names = list(layers) if layers is not None else self.names
        for n in names:
            if n not in self.history:
                raise ValueError(f"layers: unknown layer {n!r} (known: {self.names[:5]}...)")
        own = ax is None  # a figure of its own: laid out here; the caller's is left as laid out
        # in a figure of its own the legend sits beside the axes, a column per 20 layers
        ncol = max(1, math.ceil(len(names) / 20))
        fig, ax = new_axes(ax, path, figsize=(8 + 1.8 * ncol, 4.5), title=title)
        for n in names:
            h = self.history[n]
            (line,) = ax.plot(self.steps, h["median"], label=n)
            ax.fill_between(self.steps, h["p5"], h["p95"], color=line.get_color(), alpha=0.2)
        shown = [
            v
            for n in names
            for key in ("median", "p5", "p95")
            for v in self.history[n][key]
            if math.isfinite(v) and v > 0
        ]
        if shown:
            ax.set_yscale("log")
            label_log_axis(ax.yaxis, min(shown), max(shown))
        else:  # nothing to draw on a log axis: no log yet, or no step taken yet (all NaN)
            ax.text(0.5, 0.5, "no finite step size logged yet", transform=ax.transAxes,
                    ha="center", va="center")  # fmt: skip
        ax.set_xlabel("step")
        ax.set_ylabel("effective step size (median, p5-p95)")
        ax.set_title(title or f"{type(self.optimizer).__name__}: per-element step size")
        if names and own:
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0),
                      borderaxespad=0, ncol=ncol)  # fmt: skip
        elif names:  # inside the caller's axes, as laid out
            ax.legend(fontsize="small", loc="best")
        if own:
            fig.tight_layout()
        if path is not None:
            save_figure(fig, path)
        return ax

    def close(self) -> None:
        """Remove the step hook (if any); flush the writer, and close it if this logger
        created it (a ``writer=`` you passed stays open for your own use)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.writer is not None and hasattr(self.writer, "flush"):
            self.writer.flush()
        if self._own_writer and hasattr(self.writer, "close"):
            self.writer.close()
            self.writer = None
            self._own_writer = False

    def __enter__(self) -> EffectiveLRLogger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _tag(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-/]", "_", name)
