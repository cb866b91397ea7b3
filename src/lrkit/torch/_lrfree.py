"""Learning-rate-free optimizers through their maintained packages (never re-implemented).

* Schedule-Free (``pip install schedulefree``): :func:`schedule_free` builds
  ``AdamWScheduleFree`` / ``SGDScheduleFree`` / ``RAdamScheduleFree``. These optimizers keep two
  weight sequences: training steps happen at ``y`` (``optimizer.train()``), evaluation must use
  the average ``x`` (``optimizer.eval()``). :func:`evaluating` switches both the model and the
  optimizer for evaluation and puts everything back afterwards; with ``bn_data`` it first
  re-estimates BatchNorm statistics at ``x`` (the schedulefree README's recipe: forward a few
  training batches with the model in train mode, no gradients). :func:`finalize` does the same
  for good, at the end of training (before saving or deploying).
  ``schedulefree.ScheduleFreeWrapper`` (any optimizer made schedule-free) is handled alike.
* Prodigy (``pip install prodigyopt``): :func:`prodigy` builds ``prodigyopt.Prodigy`` (lr=1.0: the
  step size is estimated as ``d``; ``lr`` is a multiplier on it). :func:`lrfree_lr` reports the
  LR these optimizers use at their next step, by the packages' own formulas.

Both are optional: ``pip install 'lrkit[lrfree]'``.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .. import _validate as V
from .._imports import require
from .._runtime import GlobalRNGState, is_data_factory, one_pass
from ._checks import check_module

require("torch", "torch")  # without PyTorch: the one-line install hint

import torch

__all__ = [
    "evaluating",
    "finalize",
    "is_schedule_free",
    "lrfree_lr",
    "prodigy",
    "reestimate_batchnorm",
    "schedule_free",
]

_SF_KINDS = {
    "adamw": "AdamWScheduleFree",
    "sgd": "SGDScheduleFree",
    "radam": "RAdamScheduleFree",
}


#: the schedule-free kinds whose constructor takes ``warmup_steps`` (RAdam warms up through its
#: rectification instead)
_SF_WARMUP = ("adamw", "sgd")


def _lr(value: Any) -> float:
    """``lr`` as a float > 0 (a one-element tensor is read), else a one-line ValueError."""
    return V.positive("lr", _scalar(value))


def schedule_free(
    params: Any, *, kind: str = "adamw", lr: float | None = None, **kwargs: Any
) -> torch.optim.Optimizer:
    """A schedule-free optimizer from the ``schedulefree`` package, already in train mode.

    ``kind``: ``"adamw"`` (default lr 0.0025), ``"sgd"`` (default lr 1.0) or ``"radam"``
    (default lr 0.0025); ``kwargs`` go to the constructor (``betas``/``momentum``,
    ``weight_decay``...). ``warmup_steps`` (a linear LR warmup) is taken by ``"adamw"`` and
    ``"sgd"`` only: ``"radam"`` needs no warmup (its rectification starts it with
    ``silent_sgd_phase``). Do not combine with a decaying LR schedule: the averaging replaces it.
    """
    kind = V.choice("kind", kind, tuple(_SF_KINDS))
    if lr is not None:
        lr = _lr(lr)
    if "warmup_steps" in kwargs and kind not in _SF_WARMUP:
        raise ValueError(
            f"warmup_steps is taken by kind 'adamw' and 'sgd' only, got kind={kind!r} "
            "(RAdamScheduleFree warms up through its rectification)"
        )
    sf = require("schedulefree", "lrfree", feature="lrkit.torch.schedule_free")
    cls = getattr(sf, _SF_KINDS[kind])
    _check_kwargs(cls, kwargs, f"lrkit.torch.schedule_free(kind={kind!r})", ("kind", "lr"))
    opt = cls(params, **kwargs) if lr is None else cls(params, lr=lr, **kwargs)
    opt.train()
    return opt  # type: ignore[no-any-return]


def prodigy(params: Any, *, lr: float = 1.0, **kwargs: Any) -> torch.optim.Optimizer:
    """``prodigyopt.Prodigy(params, lr=lr, **kwargs)``. Keep ``lr=1.0`` (it multiplies the
    estimated step size ``d``); with an LR warmup pass ``safeguard_warmup=True``, and use
    ``weight_decay`` with ``decouple=True`` (the default) for AdamW-style decay."""
    lr = _lr(lr)
    po = require("prodigyopt", "lrfree", feature="lrkit.torch.prodigy")
    _check_kwargs(po.Prodigy, kwargs, "lrkit.torch.prodigy()", ("lr",))
    return po.Prodigy(params, lr=lr, **kwargs)  # type: ignore[no-any-return]


def _scalar(value: Any) -> Any:
    """A one-element tensor's number (torch's optimizers take tensor hyperparameters), else
    ``value`` as it is."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


def _check_kwargs(cls: Any, kwargs: dict[str, Any], where: str, own: Sequence[str]) -> None:
    """Every keyword a parameter of ``cls``'s constructor, else the one-line ``TypeError`` of
    an unknown option of ``where`` (the function, whose ``own`` keywords are options too: the
    option meant, if close, and the options); the values of those torch's own
    optimizers check (``betas``, ``eps``, ``weight_decay``, ``momentum``, ``warmup_steps``)
    checked as torch checks them, in one line (the packages check none: a bad one fails
    later inside them, or trains silently)."""
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", "params")]
    V.options(f"{where} for {cls.__name__}", kwargs, list(dict.fromkeys([*own, *accepted])))
    if "betas" in kwargs:
        betas = kwargs["betas"]
        # any pair torch takes: a tuple, a list, a numpy array, a tensor of two numbers
        pair = not isinstance(betas, (str, bytes, dict)) and hasattr(betas, "__getitem__")
        try:  # a 0-d array or tensor has __len__ and raises
            pair = pair and len(betas) == 2
        except TypeError:
            pair = False
        if not pair:
            raise ValueError(f"betas must be a pair (beta1, beta2) in [0, 1), got {V.fmt(betas)}")
        for i, b in enumerate(betas):
            V.in_range(f"betas[{i}]", _scalar(b), 0.0, 1.0, high_open=True)
    for name in ("eps", "weight_decay"):
        if name in kwargs:
            V.non_negative(name, _scalar(kwargs[name]))
    if "momentum" in kwargs:
        V.in_range("momentum", _scalar(kwargs["momentum"]), 0.0, 1.0, high_open=True)
    if "warmup_steps" in kwargs:
        V.integer("warmup_steps", kwargs["warmup_steps"], 0)


def _flag_in_groups(optimizer: Any) -> bool:
    """Whether the schedule-free train/eval flag lives in the param groups (the schedulefree
    optimizers) rather than on the object (``ScheduleFreeWrapper``)."""
    return "train_mode" in optimizer.param_groups[0]


def is_schedule_free(optimizer: Any) -> bool:
    """True for schedule-free optimizers: ``train()``/``eval()`` methods and a ``train_mode``
    flag, in their param groups (``AdamWScheduleFree``...) or on the optimizer itself
    (``schedulefree.ScheduleFreeWrapper``)."""
    groups = getattr(optimizer, "param_groups", None)
    return bool(
        groups
        and callable(getattr(optimizer, "train", None))
        and callable(getattr(optimizer, "eval", None))
        and ("train_mode" in groups[0] or isinstance(getattr(optimizer, "train_mode", None), bool))
    )


def _sf_flags(optimizer: Any) -> list[bool]:
    if _flag_in_groups(optimizer):
        return [bool(g["train_mode"]) for g in optimizer.param_groups]
    return [bool(optimizer.train_mode)]


def _set_sf_flags(optimizer: Any, flags: list[bool]) -> None:
    if _flag_in_groups(optimizer):
        for g, flag in zip(optimizer.param_groups, flags):
            g["train_mode"] = flag
    else:
        optimizer.train_mode = flags[0]


def _is_prodigy_group(g: Any) -> bool:
    """A Prodigy param group (also as the base of a ``ScheduleFreeWrapper``): it holds the
    step-size estimate ``d`` and its start ``d0``."""
    return "d" in g and "d0" in g


def _is_prodigy(optimizer: Any) -> bool:
    """Whether ``optimizer`` is ``prodigyopt.Prodigy`` (or wraps one), read off its groups."""
    groups = getattr(optimizer, "param_groups", None) or []
    return any(isinstance(g, dict) and _is_prodigy_group(g) for g in groups)


def _radam_lr(g: dict[str, Any]) -> float:
    """``RAdamScheduleFree``'s LR for its next step: ``lr * rect`` (0 or ``lr`` during its SGD
    phase, by ``silent_sgd_phase``), the package's formula for ``scheduled_lr``."""
    _, beta2 = g["betas"]
    step = int(g["k"]) + 1
    beta2_t = beta2**step
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * beta2_t / (1 - beta2_t)
    rect: float
    if rho_t > 4.0:
        rect = (
            (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        ) ** 0.5
    else:
        rect = float(not g["silent_sgd_phase"])
    return float(g["lr"]) * rect


def _prodigy_lr(groups: list[dict[str, Any]], g: dict[str, Any]) -> float:
    """Prodigy's step size for its next step: ``d * lr`` times its bias correction
    ``sqrt(1 - beta2**(k+1)) / (1 - beta1**(k+1))`` with ``use_bias_correction`` (``d`` and
    the correction read from the first group, as the package steps every group with them: a
    group added since the last step still holds ``d0``); 0 for a group at ``lr == 0``,
    Prodigy's way to freeze one (the package still applies its step size there to decoupled
    weight decay and to momentum the group holds from before it was set to 0, none of which a
    group frozen from the start without weight decay has)."""
    first = groups[0]
    bc = 1.0
    if first.get("use_bias_correction"):
        beta1, beta2 = first["betas"]
        k = int(first["k"])
        bc = ((1 - beta2 ** (k + 1)) ** 0.5) / (1 - beta1 ** (k + 1))
    lr = float(g["lr"])
    return float(first["d"]) * lr * bc if lr != 0.0 else 0.0


def lrfree_lr(optimizer: torch.optim.Optimizer) -> list[float]:
    """The LR each param group uses at its next ``step()``, as the package computes it.

    Prodigy: ``d * lr`` (times its bias correction with ``use_bias_correction=True``);
    ``AdamWScheduleFree``/``SGDScheduleFree`` (and their ``Closure`` and ``Reference``
    versions): ``lr`` warmed up over ``warmup_steps``; ``AdamWScheduleFreePaper``: that times
    ``sqrt(1 - beta2**(k+1))``; ``RAdamScheduleFree`` (and ``RAdamScheduleFreeClosure``):
    ``lr`` times its rectification (0 during its silent SGD phase). After the step the
    schedule-free optimizers store the same number as ``scheduled_lr``.
    Any other optimizer: the group's ``lr``."""
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise ValueError(
            "optimizer must be a torch optimizer (with param_groups), got "
            f"{type(optimizer).__name__}"
        )
    paper = _is_paper(optimizer)
    out = []
    for g in groups:
        lr = float(g["lr"])
        if _is_prodigy_group(g):  # Prodigy (also as the base of a ScheduleFreeWrapper)
            out.append(_prodigy_lr(groups, g))
        elif "scheduled_lr" in g and "silent_sgd_phase" in g:  # RAdam schedule-free
            out.append(_radam_lr(g))
        elif "scheduled_lr" in g and "warmup_steps" in g:  # AdamW/SGD schedule-free
            k, w = int(g.get("k", 0)), int(g["warmup_steps"])
            lr *= (k + 1) / w if k < w else 1.0
            if paper:  # the paper's version also scales by sqrt(1 - beta2**(k+1))
                lr *= math.sqrt(1 - g["betas"][1] ** (k + 1))
            out.append(lr)
        else:
            out.append(lr)
    return out


def first_lr_reader(optimizer: torch.optim.Optimizer) -> Callable[[], float]:
    """A function returning ``lrfree_lr(optimizer)[0]``, the LR of the first param group's
    next step, made once for a training loop that reads it at every step: a plain optimizer's
    is its first group's ``lr`` read directly (an LR-free one goes through
    :func:`lrfree_lr`)."""
    groups = optimizer.param_groups
    first = groups[0] if groups else {}
    if _is_prodigy_group(first) or "scheduled_lr" in first:
        return lambda: lrfree_lr(optimizer)[0]
    return lambda: float(optimizer.param_groups[0]["lr"])


def _is_paper(optimizer: Any) -> bool:
    """Whether ``optimizer`` is ``schedulefree.AdamWScheduleFreePaper`` (whose LR carries the
    second moment's bias correction); never imports the package."""
    sf = sys.modules.get("schedulefree")
    paper = getattr(sf, "AdamWScheduleFreePaper", None)
    return isinstance(paper, type) and isinstance(optimizer, paper)


def _bn_layers(model: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def _default_forward(model: torch.nn.Module, batch: Any) -> Any:
    if isinstance(batch, (list, tuple)):
        return model(batch[0])
    if isinstance(batch, dict):
        return model(**batch)
    return model(batch)


def _one_pass(data: Any, name: str) -> Iterator[Any]:
    """An iterator over one pass of ``data`` (a zero-argument callable is called, as
    :func:`lrkit.torch.fit` does), else a one-line ValueError naming ``name``."""
    source = one_pass(data)
    try:
        return iter(source)
    except TypeError:
        raise ValueError(
            f"{name} must be an iterable of batches (or a zero-argument callable returning "
            f"one) with at least one batch, got {type(source).__name__}"
        ) from None


_END = object()


def _reestimate(
    model: torch.nn.Module,
    batches: Iterator[Any],
    *,
    name: str,
    num_batches: int,
    forward: Callable[[torch.nn.Module, Any], Any] | None,
) -> int:
    bns = _bn_layers(model)
    if not bns:
        return 0
    first = next(batches, _END)  # before anything changes: empty data is refused as it is
    if first is _END:
        raise ValueError(f"{name} must yield at least one batch, got none")
    fwd = forward or _default_forward
    modes = {m: m.training for m in model.modules()}
    momenta = [bn.momentum for bn in bns]
    saved = _bn_buffers(model)
    used = 0
    try:
        with torch.no_grad():
            for bn in bns:
                bn.reset_running_stats()
                bn.momentum = None  # cumulative average
            model.train()
            for batch in itertools.chain([first], itertools.islice(batches, num_batches - 1)):
                fwd(model, batch)
                used += 1
    except BaseException:
        with torch.no_grad():  # a failed pass leaves the statistics exactly as they were
            for live, old in saved:
                live.copy_(old)
        raise
    finally:
        for bn, mom in zip(bns, momenta):
            bn.momentum = mom
        for m, training in modes.items():
            m.training = training
    return used


def _check_model(model: Any, optimizer: Any = None) -> None:
    """A one-line ``ValueError`` unless ``model`` is a ``torch.nn.Module`` and ``optimizer``
    is ``None`` or an optimizer (anything with ``param_groups``: torch's, a schedule-free
    wrapper, accelerate's)."""
    check_module(model)
    if optimizer is not None and not isinstance(getattr(optimizer, "param_groups", None), list):
        raise ValueError(
            f"optimizer must be a torch optimizer (with param_groups) or None, got "
            f"{type(optimizer).__name__}"
        )


def reestimate_batchnorm(
    model: torch.nn.Module,
    data: Iterable[Any] | Callable[[], Iterable[Any]],
    *,
    num_batches: int = 50,
    forward: Callable[[torch.nn.Module, Any], Any] | None = None,
) -> int:
    """Recompute BatchNorm running statistics from ``num_batches`` batches of ``data``.

    ``data``: an iterable of batches, or a zero-argument callable returning one (as for
    :func:`lrkit.torch.fit`), with at least one batch (checked before anything changes).
    Statistics are reset and re-accumulated as an exact average over the batches (momentum
    ``None`` during the pass, restored afterwards); if the pass fails, the statistics are put
    back as they were. The model is run in train mode without gradients; its train/eval flags
    are restored. ``forward(model, batch)`` defaults to ``model(batch[0])`` for tuples/lists,
    ``model(**batch)`` for dicts, ``model(batch)`` otherwise. Returns the number of batches
    used (0 when the model has no BatchNorm).
    """
    _check_model(model)
    if isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1:
        raise ValueError(f"num_batches must be an integer >= 1, got {V.fmt(num_batches)}")
    V.optional_callable("forward", forward, "forward(model, batch)", 2)
    batches = _one_pass(data, "data")
    return _reestimate(model, batches, name="data", num_batches=num_batches, forward=forward)


def _bn_buffers(model: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for bn in _bn_layers(model):
        for t in (bn.running_mean, bn.running_var, bn.num_batches_tracked):
            if t is not None:
                out.append((t, t.detach().clone()))
    return out


def _check_bn_args(bn_data: Any, num_batches: Any, forward: Any) -> None:
    if isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1:
        raise ValueError(f"num_batches must be an integer >= 1, got {V.fmt(num_batches)}")
    V.optional_callable("forward", forward, "forward(model, batch)", 2)
    if bn_data is not None and not is_data_factory(bn_data) and not hasattr(bn_data, "__iter__"):
        raise ValueError(
            "bn_data must be an iterable of batches (or a zero-argument callable returning one) "
            f"with at least one batch, or None, got {type(bn_data).__name__}"
        )


@contextlib.contextmanager
def evaluating(
    model: torch.nn.Module,
    optimizer: Any = None,
    *,
    bn_data: Iterable[Any] | Callable[[], Iterable[Any]] | None = None,
    num_batches: int = 50,
    forward: Callable[[torch.nn.Module, Any], Any] | None = None,
) -> Iterator[torch.nn.Module]:
    """Evaluate correctly, whatever the optimizer, and leave training exactly as it was.

    Inside the block: ``model.eval()``; a schedule-free ``optimizer`` (including
    ``schedulefree.ScheduleFreeWrapper``) is switched to its evaluation weights
    (``optimizer.eval()``); with ``bn_data`` (batches, or a zero-argument callable returning
    them, as for :func:`lrkit.torch.fit`), BatchNorm statistics are re-estimated at those
    weights (see :func:`reestimate_batchnorm`). On exit, also when entering fails, the weights
    are the training weights again, bit for bit (an exact copy is kept, one copy of the
    parameters in memory), the optimizer is in its previous mode, the BatchNorm buffers get
    their previous values back and every module its previous train/eval flag; the global RNGs
    and the generators of ``bn_data`` are as they were.
    """
    _check_model(model, optimizer)
    _check_bn_args(bn_data, num_batches, forward)
    modes = {m: m.training for m in model.modules()}
    sf = optimizer is not None and is_schedule_free(optimizer)
    flags = _sf_flags(optimizer) if sf else []
    # optimizer.train() after .eval() gives the training weights back only up to rounding:
    # keep an exact copy instead
    weights = (
        [(p, p.detach().clone()) for g in optimizer.param_groups for p in g["params"]] if sf else []
    )
    saved = _bn_buffers(model) if bn_data is not None else []
    # the re-estimation's forward passes (dropout) and data order draw from the global RNGs
    # and the loader's generators: they are put back too
    rngs = GlobalRNGState(import_torch=True) if bn_data is not None else None
    loaders: GlobalRNGState | None = None
    try:
        if bn_data is not None:
            source: Any = one_pass(bn_data)
            loaders = GlobalRNGState(data=(source,))  # the loaders' own generators too
            batches = _one_pass(source, "bn_data")
        if sf:
            optimizer.eval()
        if bn_data is not None:
            _reestimate(model, batches, name="bn_data", num_batches=num_batches, forward=forward)
        model.eval()
        yield model
    finally:
        if loaders is not None:
            loaders.restore()
        if rngs is not None:  # after: the global states from before the factory was called
            rngs.restore()
        with torch.no_grad():
            for live, old in [*weights, *saved]:
                live.copy_(old)
        if sf:
            _set_sf_flags(optimizer, flags)
        for m, training in modes.items():
            m.training = training


def finalize(
    model: torch.nn.Module,
    optimizer: Any = None,
    *,
    bn_data: Iterable[Any] | Callable[[], Iterable[Any]] | None = None,
    num_batches: int = 50,
    forward: Callable[[torch.nn.Module, Any], Any] | None = None,
) -> torch.nn.Module:
    """End of training: switch a schedule-free optimizer to its evaluation weights for good,
    re-estimate BatchNorm statistics there (with ``bn_data``: batches or a zero-argument
    callable returning them) and put the model in eval mode. If the re-estimation fails
    (e.g. ``bn_data`` yields nothing), the weights, the optimizer's mode and the BatchNorm
    statistics are left exactly as they were. Call ``optimizer.train()`` to continue training
    later."""
    _check_model(model, optimizer)
    _check_bn_args(bn_data, num_batches, forward)
    sf = optimizer is not None and is_schedule_free(optimizer)
    if bn_data is None:
        if sf:
            optimizer.eval()
        model.eval()
        return model
    batches = _one_pass(bn_data, "bn_data")
    flags = _sf_flags(optimizer) if sf else []
    weights = (
        [(p, p.detach().clone()) for g in optimizer.param_groups for p in g["params"]] if sf else []
    )
    try:
        if sf:
            optimizer.eval()
        _reestimate(model, batches, name="bn_data", num_batches=num_batches, forward=forward)
    except BaseException:
        with torch.no_grad():
            for live, old in weights:
                live.copy_(old)
        if sf:
            _set_sf_flags(optimizer, flags)
        raise
    model.eval()
    return model
