"""Drive a PyTorch optimizer with an lrkit schedule.

``scheduler(optimizer, schedule)`` returns a real ``torch.optim.lr_scheduler.LRScheduler``
(so Lightning and Hugging Face accept it) with an explicit step counter: after construction
every group holds the LR of step 0, after ``k`` calls of ``.step()`` the LR of step ``k``.
Nothing is recursive: the LR is recomputed from the step, so resume never depends on the
optimizer's current LR and the order of ``optimizer.step()``/``scheduler.step()`` cannot drift.
"""

from __future__ import annotations

import bisect
import contextlib
import inspect
import math
import numbers
import sys
import warnings
import weakref
from collections.abc import Mapping, Sized
from typing import Any, cast

from .._imports import require

require("torch", "torch")  # without PyTorch: the one-line install hint

import numpy as np
import torch
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from .. import _validate as V
from .._runtime import caller_level
from ..feedback import (
    Chain,
    Metric,
    as_metric,
    check_controllers,
    guard_hint,
    load_states,
    members_of,
    settings_differ,
)
from ..schedules import Schedule, as_schedule, holds_callable, is_schedule_list
from ..schedules.tables import checked_steps
from ._checks import check_group_lrs, check_optimizer, default_lr, innermost_optimizer

__all__ = ["LRKitScheduler", "scheduler"]


def _written(s: Schedule) -> dict[str, Any] | None:
    """``s.to_dict()``, or ``None`` for a schedule holding a Python callable (what a
    checkpoint keeps of it, as PyTorch's ``LambdaLR`` keeps ``None`` for a lambda)."""
    return None if holds_callable(s) else s.to_dict()


def _settings_loaded(differ: list[str]) -> list[str]:
    """The warning of a load whose feedback controller state was saved by a controller built
    with other settings (``differ``: their names), which it brings along."""
    if not differ:
        return []
    return [
        f"the checkpoint's feedback controller was built with other {', '.join(differ)}: "
        "its settings are loaded with its state (as PyTorch's ReduceLROnPlateau loads "
        "them), replacing those given to this scheduler's controller"
    ]


def _as_now(written: Any) -> Any:
    """A schedule as a checkpoint holds it (:func:`_written`; a list of them, or a dict of
    those), as this lrkit writes the schedule it loads into: a checkpoint from before a family
    gained a parameter (at its default) equals the same schedule written now. What does not
    load is kept as it was."""
    if isinstance(written, list):
        return [_as_now(x) for x in written]
    if not isinstance(written, Mapping):
        return written
    if "name" not in written:  # hyperparameter schedules by key
        return {k: _as_now(v) for k, v in written.items()}
    from ..schedules import from_dict

    try:
        return from_dict(dict(written)).to_dict()
    except Exception:  # noqa: BLE001 - a state from another lrkit: compared as it was saved
        return written


def _shown(written: Any) -> str:
    """A schedule as a checkpoint holds it (:func:`_written`), as its spec string, for a
    message: ``"a function schedule"`` for ``None``, the dict itself if it does not load."""
    if written is None:
        return "a function schedule"
    from ..schedules import from_dict

    try:
        return str(from_dict(written))
    except Exception:  # noqa: BLE001 - a state from another lrkit: shown as it was saved
        return V.fmt(written)


def _schedule_or_list(name: str, value: Any, n_groups: int) -> Any:
    """A schedule, or (for a list) one schedule per param group."""
    if is_schedule_list(value):
        if len(value) != n_groups:
            raise ValueError(
                f"{name}: a list needs one schedule per param group ({n_groups}), got {len(value)}"
            )
        return [as_schedule(s, name=f"{name}[{i}]", nonnegative=True) for i, s in enumerate(value)]
    return as_schedule(value, name=name, nonnegative=True)


def _set(group: dict[str, Any], key: str, value: float) -> None:
    if key == "momentum" and "momentum" not in group:
        group["betas"] = (value, *group["betas"][1:])
        return
    current = group.get(key)
    if isinstance(current, torch.Tensor):
        current.fill_(value)
    else:
        group[key] = value


def _own_lr_tensors(groups: Any, held: set[int]) -> None:
    """Give each of ``groups`` whose ``lr`` tensor another group already holds (``held``: ids
    of the tensors held so far) a copy of its own. torch hands every group built without its
    own ``lr`` the one tensor of ``optimizer.defaults["lr"]``, and a scheduler sets the LRs in
    place: through one shared tensor the last group's value would be every group's."""
    for g in groups:
        lr = g["lr"]
        if isinstance(lr, torch.Tensor) and id(lr) in held:
            g["lr"] = lr.clone()
        held.add(id(g["lr"]))


def _set_hp(group: dict[str, Any], key: str, kind: int, value: float) -> None:
    """Set a driven hyperparameter; ``kind`` (from ``_bind``): 0 a float key, 1 Adam-style
    ``betas[0]`` for ``"momentum"``, 2 a key that may hold a tensor or differ per group."""
    if kind == 0:
        group[key] = value
    elif kind == 1:
        group["betas"] = (value, *group["betas"][1:])
    else:
        _set(group, key, value)


def _check_driven_keys(optimizer: Any, i: int, group: dict[str, Any], keys: Any) -> None:
    """The keys of ``group`` (param group ``i``) that the scheduler drives: present, and a
    number (momentum: a ``momentum`` or ``betas`` entry); at construction and for a group
    added later alike."""
    for key in keys:
        if key == "momentum":
            if "momentum" not in group and "betas" not in group:
                raise ValueError(
                    f"momentum: param group {i} has neither 'momentum' nor 'betas' "
                    f"({type(optimizer).__name__} cannot cycle momentum)"
                )
            if "momentum" not in group:  # Adam's beta1, which torch's Adam takes in [0, 1)
                held = keys[key][i] if isinstance(keys[key], list) else keys[key]
                top = _peak(held)
                if top is not None and not top < 1:
                    raise ValueError(
                        f"momentum: it drives param group {i}'s betas[0] (Adam's beta1), which "
                        f"must be in [0, 1), got a schedule reaching {V.fmt(top)}: {held}"
                    )
            continue
        if key not in group:
            raise ValueError(
                f"hyperparams: param group {i} has no key {key!r} "
                f"(keys: {sorted(k for k in group if k != 'params')})"
            )
        _check_numeric(i, key, group[key])


def _check_numeric(i: int, key: str, value: Any) -> None:
    """A hyperparameter a schedule drives must hold a number (not a tuple, list or flag)."""
    numeric = (
        value.numel() == 1 and value.is_floating_point()
        if isinstance(value, torch.Tensor)
        else isinstance(value, numbers.Real) and not isinstance(value, bool)
    )
    if not numeric:
        hint = " (Adam's beta1: pass momentum=...)" if key == "betas" else ""
        shown = repr(value)
        if "\n" in shown or len(shown) > 60:
            shown = f"a {type(value).__name__}"
        raise ValueError(
            f"hyperparams: param group {i} key {key!r} holds {shown}, not a number; a "
            f"schedule drives numeric keys only{hint}"
        )


def _negative_lr(lr: float, step: int) -> ValueError:
    # step 0 is the step the scheduler sets when it is built
    return V.negative_at_step("schedule: the learning rate", lr, step, built_at=0, what="scheduler")


#: the lrkit schedulers of each optimizer: LRs one of them set are not another hand's change
_ATTACHED: weakref.WeakKeyDictionary[Any, weakref.WeakSet[Any]] = weakref.WeakKeyDictionary()


def _attach(sched: Any) -> None:
    _ATTACHED.setdefault(sched.optimizer, weakref.WeakSet()).add(sched)


def driving(optimizer: Any) -> list[Any]:
    """The live lrkit schedulers that set the LRs ``optimizer`` holds now: built on it, on
    an optimizer it wraps or on one wrapping it (compared by the innermost optimizer), and
    the last to set them (not one whose phase of a ``SequentialLR`` has ended)."""
    inner = innermost_optimizer(optimizer)
    found = []
    for opt, scheds in list(_ATTACHED.items()):
        try:  # another optimizer's wrapper may fail to unwrap: not this one's scheduler
            same = opt is optimizer or innermost_optimizer(opt) is inner
        except Exception:  # noqa: BLE001
            same = False
        found += [s for s in list(scheds) if same and s._owns_lrs()]
    return found


def _foreign_change(last: Any, groups: Any) -> str:
    """The warning for LRs changed between two steps by something other than the scheduler."""
    i, was, now = next(
        (i, v, float(g["lr"])) for i, (g, v) in enumerate(zip(groups, last)) if g["lr"] != v
    )
    where = f"param group {i}'s " if len(groups) > 1 else ""
    return (
        f"the optimizer's {where}LR changed between two steps of the lrkit scheduler "
        f"({was:g} set, {now:g} found): it sets the LR of each step from the schedule, so what "
        "changed it (ReduceLROnPlateau on the same optimizer, a recursive scheduler such as "
        "LinearLR, ConstantLR or ExponentialLR in a ChainedScheduler with it, a "
        "DivergenceGuard built without scheduler=, a hand edit) is "
        "overwritten or applied once per step instead of compounding; for cuts on a metric give "
        "the scheduler feedback=lrkit.feedback.ReduceOnPlateau(...) and call "
        "scheduler.report(metric), write products as S.mul(...) and phases as S.join(...)"
    )


def _stepped_per_epoch(sched: Any) -> str | None:
    """The warning for a scheduler that Lightning's training loop steps once an epoch (the
    scheduler config's ``"interval"``, ``"epoch"`` by default) although its schedule spans
    more steps than the fit has epochs: it would never get past step ``max_epochs``. Read off
    the caller's frames at the first step (Lightning's ``_update_learning_rates``); ``None``
    for any other caller, or a schedule that fits the epochs or has no end."""
    frame: Any = sys._getframe(2)
    for _ in range(12):
        if frame is None:
            return None
        if frame.f_code.co_name == "_update_learning_rates" and "lightning" in str(
            frame.f_globals.get("__name__", "")
        ):
            break
        frame = frame.f_back
    else:
        return None
    local = frame.f_locals
    if local.get("interval") != "epoch":
        return None
    trainer: Any = getattr(local.get("self"), "trainer", None)
    epochs = getattr(trainer, "max_epochs", None)
    if not isinstance(epochs, int) or epochs <= 0:  # no epoch limit: the one max_steps sets
        max_steps, batches = getattr(trainer, "max_steps", -1), None
        with contextlib.suppress(Exception):
            accumulate = max(1, int(getattr(trainer, "accumulate_grad_batches", 1)))
            batches = math.ceil(float(trainer.num_training_batches) / accumulate)
        if not isinstance(max_steps, int) or max_steps <= 0 or not batches:
            return None
        epochs = math.ceil(max_steps / batches)
    every = getattr(local.get("config"), "frequency", 1)
    steps = epochs // every if isinstance(every, int) and every >= 1 else epochs
    lengths = [n for n in (s.length for s in sched.schedules) if n is not None]
    if not lengths or max(lengths) <= steps:
        return None
    per = "once an epoch" if steps == epochs else f"once every {every} epochs"
    return (
        f"Lightning steps this scheduler {per} (its config's 'interval' is 'epoch', "
        f"Lightning's default) but its schedule spans {max(lengths)} steps, more than the "
        f"{steps} steps the fit's {epochs} epochs give it: it would stop at step {steps}. "
        "Return {'optimizer': opt, 'lr_scheduler': {'scheduler': sched, 'interval': "
        "'step'}} from configure_optimizers (or count the schedule in epochs)"
    )


def _negative_hp(key: str, value: float, step: int) -> ValueError:
    name = "momentum" if key == "momentum" else f"hyperparams[{key!r}]"
    return V.negative_at_step(name, value, step, built_at=0, what="scheduler")


def _peak(schedule: Any) -> float | None:
    """The largest value of ``schedule`` over the steps a plot of it evaluates (its natural
    length, or the first steps of one without) and a function schedule inside it reaches
    (within its ``length``); ``None`` when there is no such step."""
    steps = checked_steps(schedule)
    if steps.size == 0:
        return None
    return float(np.max(schedule.values(steps)))


def _is_signature_default(optimizer: torch.optim.Optimizer, value: Any) -> bool:
    """Whether ``value`` is the default of the optimizer class's ``lr`` argument (so the
    optimizer was most likely built without an explicit top-level ``lr``)."""
    try:
        param = inspect.signature(type(optimizer).__init__).parameters.get("lr")
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False
    if param is None or param.default is inspect.Parameter.empty:
        return False
    default = param.default
    if isinstance(default, torch.Tensor) or isinstance(value, torch.Tensor):
        return False
    try:
        return bool(float(default) == float(value))
    except (TypeError, ValueError):
        return False


#: integer steps float64 holds exactly (``MAX_STEPS``); a schedule reads a later one as the
#: nearest float64
_EXACT_STEPS = V.MAX_STEPS


def _as_read(step: int) -> float:
    """``step`` as a schedule's call and ``values()`` read it: an int up to 2**53, the
    nearest float64 past it."""
    return step if step <= _EXACT_STEPS else float(step)


#: the last step a float64 holds at all: a later one is refused as a schedule's call refuses it
_MAX_EPOCH = int(sys.float_info.max)


def _epoch_error(name: str, value: int, minimum: int = 0) -> ValueError:
    shown = V.digits(value) + " (beyond float64)" if value > _MAX_EPOCH else repr(value)
    return ValueError(
        f"{name} must be an integer >= {minimum} and at most float64's largest value (about "
        f"1.8e308), got {shown}"
    )


def group_ratios(optimizer: torch.optim.Optimizer, *, schedule: Any = None) -> list[float]:
    """Each param group's LR as a multiple of the optimizer's ``lr``
    (``optimizer.defaults['lr']``; a group's ``initial_lr``, once a scheduler has set it, else
    its ``lr``): the factor by which :func:`scheduler` multiplies a schedule for that group
    and the ratios at which :func:`find_lr` sweeps the groups. One group, or groups that all
    start at one LR (whatever the optimizer's ``lr``, and 0 too), get 1 each: the schedule is
    their LR; a group at ``lr=0`` beside groups at other LRs keeps its ratio, 0 (frozen).

    A one-line ``ValueError`` when they cannot be read: the groups set different LRs and the
    optimizer has no ``lr`` (or 0), or every group sets its own ``lr`` and the optimizer's is
    its constructor's default (most likely not given: the groups would follow e.g. 10x and
    100x a schedule), unless ``schedule`` peaks at that default (it then reads the same
    whether the ``lr`` was given or not: each group peaks at its own). The message says to
    pass ``lr=`` to the optimizer.
    """
    check_optimizer(optimizer)
    if schedule is not None:  # a spec string or a to_dict() dict, as scheduler() takes it
        schedule = as_schedule(schedule)
    default = default_lr(optimizer)
    base = [float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups]
    lrs = ", ".join(f"{b:g}" for b in base)
    if len(set(base)) == 1:  # one group, or groups at one LR (0 too): the schedule is their LR
        # (an optimizer built with lr=0, or left at 0 by CyclicLR(base_lr=0), for the schedule
        # to drive; a group frozen at lr=0 beside groups at other LRs keeps its ratio, 0)
        return [1.0] * len(base)
    if default is None or float(default) == 0.0:
        raise ValueError(
            f"optimizer: the param groups set different lrs ({lrs}) and the optimizer has "
            f"no lr (defaults['lr'] is {default!r}), so a schedule cannot keep their "
            "ratios; pass lr= to the optimizer (the LR a schedule's values stand for: "
            "each group then follows lr_group / lr times the schedule)"
        )
    d = float(default)
    for g, b in zip(optimizer.param_groups, base):
        if isinstance(default, torch.Tensor) and g["lr"] is default:
            # a tensor lr given to the constructor is the very object of each group without an
            # lr of its own: schedulers set it in place, so its value now may be a schedule's;
            # that group's initial_lr holds what it was
            d = b
            break
    if (
        all(b != d for b in base)
        and _is_signature_default(optimizer, default)
        and (
            schedule is None
            or (peak := _peak(schedule)) is None
            or not math.isclose(peak, d, rel_tol=1e-9)
        )
    ):
        # every group set its own lr and the optimizer's lr is its constructor's default
        # (1e-3 for most), most likely not given, and the schedule is not in its units (its
        # peak is not that lr): the groups would silently follow e.g. 10x and 100x the
        # schedule. A schedule that peaks at the optimizer's lr reads the same whether that
        # lr was given or not: each group peaks at its own lr.
        ratios = ", ".join(f"{b / d:g}x" for b in base)
        # a function schedule without a length is called at no step up front: no peak
        shown = None if schedule is None else _peak(schedule)
        peaks = "" if shown is None else f", which peaks at {shown:g}"
        what = "a schedule" if schedule is None else "the schedule"
        raise ValueError(
            f"optimizer: every param group sets its own lr ({lrs}) and the optimizer's lr is "
            f"{type(optimizer).__name__}'s default {d:g}, so the groups would follow "
            f"{ratios} {what}{peaks}; pass lr= to the optimizer (the LR a schedule's values "
            "stand for, the groups then follow lr_group / lr times the schedule; a schedule "
            "peaking at that lr is taken as given in its units)"
        )
    return [b / d for b in base]


_OUTSIDE: dict[Any, Any] = {}  # fn -> fn wrapped by torch.compiler.disable


def _outside_graph(fn: Any) -> Any:
    """``fn`` wrapped by ``torch.compiler.disable`` (made once, on first use: it imports the
    compiler, which a run that never compiles does not load; kept in a plain dict, which the
    compiler reads without the warning a ``functools`` cache draws)."""
    wrapped = _OUTSIDE.get(fn)
    if wrapped is None:
        wrapped = _OUTSIDE[fn] = torch.compiler.disable(  # type: ignore[no-untyped-call]
            fn,
            reason="lrkit's scheduler step runs outside the graph, as PyTorch's schedulers do: "
            "call it outside a torch.compile(fullgraph=True) function",
        )
    return wrapped


#: PyTorch's keywords lrkit's scheduler does not take (a resumed scheduler's, OneCycleLR's and
#: CyclicLR's momentum cycling), and what does it here
_RESUME_HINT = {
    "last_epoch": "to resume, build it and load_state_dict(state): the saved step's LRs are set",
    **dict.fromkeys(
        ("cycle_momentum", "base_momentum", "max_momentum"),
        "to cycle the momentum (beta1 for Adam), pass "
        "momentum=lrkit.schedules.onecycle_momentum(total_steps, base_momentum=..., "
        "max_momentum=...), or any schedule of it",
    ),
}


class LRKitScheduler(LRScheduler):
    """An ``LRScheduler`` whose LR at step ``k`` is ``ratio_g * schedule(k)`` for group ``g``
    (times the feedback controller's scale, when one is given).

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        schedule: a schedule (or spec string / dict), or a list with one per param group.
        feedback: an optional :class:`lrkit.feedback.Feedback` controller; ``.report(value)``
            feeds it a metric and the LR becomes ``controller.apply(schedule, step)``. A list
            gives one controller per param group (e.g. a different ``min_scale`` floor each);
            ``.report`` feeds every one.
        momentum: an optional schedule for the momentum (SGD/RMSprop ``momentum`` or Adam's
            ``beta1``), e.g. ``schedules.onecycle_momentum(total_steps)``, or a list with one
            per param group.
        hyperparams: other group keys to drive, ``{"weight_decay": schedule, ...}`` (a value
            may also be a list with one schedule per param group). These and ``momentum``
            are read at ``controller.schedule_step(step)``: a restart starts them again with
            the LR; a controller's scale applies to the LR alone.
    """

    _foreign_warned = False
    # the first step() after construction looks whether Lightning steps it once an epoch
    _interval_unchecked = True
    # reported to while another scheduler holds the LRs (an ended SequentialLR phase, whose
    # controller may have changed its scale since its last step): the optimizer's LRs are not
    # this scheduler's, even where they equal the last ones it set (cleared when it sets
    # them again)
    _handed_over = False

    @V.checked_keywords("LRKitScheduler", hints=_RESUME_HINT)
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: Any,
        *,
        feedback: Any = None,
        momentum: Any = None,
        hyperparams: Mapping[str, Any] | None = None,
    ) -> None:
        check_optimizer(optimizer)
        self.optimizer = optimizer
        groups = optimizer.param_groups
        per_group = is_schedule_list(schedule)
        if per_group:
            self.schedules: list[Schedule] = _schedule_or_list("schedule", schedule, len(groups))
            self.ratios = [1.0] * len(groups)
        else:
            self.schedules = [as_schedule(schedule, nonnegative=True)] * len(groups)
        # a list is one schedule per group, even of one group or of the same schedule twice:
        # a group added later has none of its own (not silently given another group's)
        self._per_group = per_group
        if not self._per_group:
            self.ratios = self._group_ratios(optimizer, self.schedules[0])
        self._feedback: Any = None
        self._check_feedback(feedback)
        self._feedback = list(feedback) if isinstance(feedback, (list, tuple)) else feedback
        extra: dict[str, Any] = {}
        if momentum is not None:
            extra["momentum"] = _schedule_or_list("momentum", momentum, len(groups))
        if hyperparams is not None and not isinstance(hyperparams, Mapping):
            raise ValueError(
                "hyperparams must be a dict {param-group key: schedule}, e.g. "
                f"{{'weight_decay': 'cosine(0.01, total_steps=1000)'}}, got "
                f"{type(hyperparams).__name__}"
            )
        for key, s in (hyperparams or {}).items():
            if key == "lr":
                raise ValueError("hyperparams must not contain 'lr': pass it as schedule")
            extra[key] = _schedule_or_list(f"hyperparams[{key!r}]", s, len(groups))
        for i, g in enumerate(groups):
            _check_driven_keys(optimizer, i, g, extra)
        self.hyperparams = extra
        #: the warnings the last :meth:`load_state_dict` gave (their messages), or ``()``
        self.load_warnings: tuple[str, ...] = ()
        default = default_lr(optimizer)
        #: the optimizer's default LR as the scheduler found it (a tensor default is also the
        #: first group's LR, which the steps change): a group added later is read against it
        self._default_lr = None if default is None else float(default)
        # a scheduler that cannot be built (its schedule is refused at step 0) leaves the
        # groups as they were: their LR objects, and no initial_lr of its making
        found = [(g, g["lr"], "initial_lr" in g) for g in groups]
        try:
            _own_lr_tensors(groups, set())
            for g in groups:
                lr = g["lr"]
                g.setdefault("initial_lr", lr.clone() if isinstance(lr, torch.Tensor) else lr)
            self.base_lrs = [float(g["initial_lr"]) for g in groups]
            self._shared = all(s is self.schedules[0] for s in self.schedules)
            self._tensor_lr = any(isinstance(g["lr"], torch.Tensor) for g in groups)
            self._bind()
            self.last_epoch = 0
            self._step_count = 1
            self._foreign_warned = False  # warned once that another hand changed the LRs
            self._apply()
        except BaseException:
            for g, lr, had in found:
                g["lr"] = lr
                if not had:
                    g.pop("initial_lr", None)
            raise
        _attach(self)

    def _bind(self) -> None:
        """The schedules' evaluation functions the steps call (rebuilt after unpickling)."""
        groups = self.optimizer.param_groups
        self._hp: list[tuple[Any, str, int]] = []
        # (one _at per group, key, kind): a schedule per group
        self._hp_groups: list[tuple[list[Any], str, int]] = []
        for key, sched in self.hyperparams.items():
            if key == "momentum" and all("momentum" not in g for g in groups):
                kind = 1  # Adam-style betas[0]
            elif any(isinstance(g.get(key), torch.Tensor) for g in groups) or (
                key == "momentum" and any("momentum" not in g for g in groups)
            ):
                kind = 2
            else:
                kind = 0
            if isinstance(sched, list):
                self._hp_groups.append(([x._at for x in sched], key, kind))
            else:
                self._hp.append((sched._at, key, kind))
        self._at0 = self.schedules[0]._at
        self._update_fast_path()

    def __getstate__(self) -> dict[str, Any]:
        # the bound evaluation functions may be closures (not picklable): rebuilt on load
        state = self.__dict__.copy()
        for key in ("_hp", "_hp_groups", "_at0", "_hot"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind()
        _attach(self)
        if self._feedback is not None:  # a copy holds its own controllers: recorded as such
            check_controllers(self._feedback, owner=self)

    def _check_feedback(self, feedback: Any) -> None:
        check_controllers(feedback, groups=len(self.optimizer.param_groups), owner=self)

    def _controllers(self) -> list[Any]:
        """The distinct controllers (one, or one per group with repeats removed)."""
        fb = self._feedback
        if fb is None:
            return []
        if not isinstance(fb, list):
            return [fb]
        out: list[Any] = []
        for c in fb:
            if not any(c is o for o in out):
                out.append(c)
        return out

    def _update_fast_path(self) -> None:
        self._fast = self._shared and self._feedback is None and not self._tensor_lr
        self._update_hot_path()

    def _update_hot_path(self) -> None:
        # step()'s shortest path: one schedule, float lrs, no controller, a single group at
        # ratio 1 and at most one other hyperparameter, a plain float or Adam's beta1 (what
        # most training loops use): (lr schedule, hyperparameter schedule, kind, key)
        ratios = getattr(self, "_ratios", None)
        hp = getattr(self, "_hp", None)
        hot = (
            getattr(self, "_fast", False)
            and ratios is not None
            and len(ratios) == 1
            and ratios[0] == 1.0
            and hp is not None
            and len(hp) <= 1
            and all(kind in (0, 1) for _, _, kind in hp)
            and not getattr(self, "_hp_groups", None)
        )
        if not hot:
            self._hot: tuple[Any, Any, int, str] | None = None
        elif hp:
            at, key, kind = hp[0]
            self._hot = (self._at0, at, kind, key)
        else:
            self._hot = (self._at0, None, 0, "")

    @property
    def ratios(self) -> list[float]:
        """Each param group's LR as a multiple of the schedule's."""
        return self._ratios

    @ratios.setter
    def ratios(self, value: list[float]) -> None:
        self._ratios = value
        self._n_groups = len(value)
        self._update_hot_path()

    @property
    def feedback(self) -> Any:
        """The feedback controller (or ``None``); assigning one takes effect at the next step
        (call :meth:`refresh` to apply it at once)."""
        return self._feedback

    @feedback.setter
    def feedback(self, value: Any) -> None:
        self._check_feedback(value)
        held = getattr(self, "_held_feedback", ())
        if held and isinstance(value, (list, tuple)):
            raise ValueError(
                "feedback: a DivergenceGuard joined this scheduler, whose cuts need one "
                "controller for all param groups (or None), got a list of per-group controllers"
            )
        missing = [c for c in held if not any(c is m for m in members_of(value))]
        if missing:  # a guard's cut stays part of every LR set, whatever else is assigned
            value = Chain(*missing) if value is None else Chain(value, *missing)
            value = value.controllers[0] if len(value.controllers) == 1 else value
        self._feedback = list(value) if isinstance(value, (list, tuple)) else value
        self._update_fast_path()

    def _hold_feedback(self, controller: Any) -> None:
        """Keep ``controller`` (a :class:`DivergenceGuard`'s multiplier, already in
        ``feedback``) in ``feedback`` through later assignments."""
        self._held_feedback = (*getattr(self, "_held_feedback", ()), controller)

    def refresh(self) -> None:
        """Set the LRs of the current step again (after a controller changed its scale);
        param groups added since the last step are adopted first, as :meth:`step` does.

        Inside PyTorch's composites the optimizer's LRs may not be this scheduler's: before its
        phase of a ``SequentialLR`` (``last_epoch`` is -1) they are left alone (its first step
        applies the scale); after another scheduler changed them (stepped after it in a
        ``ChainedScheduler``) they are multiplied by the change of this scheduler's LR, so the
        other scheduler's factor is kept."""
        groups = self.optimizer.param_groups
        if len(groups) != self._n_groups:
            self._adopt_new_groups()
        t = self.last_epoch
        if t < 0:
            return
        if self._lrkit_lrs():
            self._apply()
            return
        x = _as_read(t)
        new = [r * self._lr_at(i, x) for i, r in enumerate(self.ratios)]
        for v in new:
            if not 0 <= v < math.inf:  # NaN, negative or overflowed
                raise _negative_lr(v, t)
        old = cast("list[float]", self._last_lr)
        for g, before, after in zip(groups, old, new):
            if before > 0 and after != before:
                _set(g, "lr", float(g["lr"]) * (after / before))
        self._last_lr = [*new]
        self._handed_over = False

    @staticmethod
    def _group_ratios(optimizer: torch.optim.Optimizer, schedule: Any) -> list[float]:
        try:
            return group_ratios(optimizer, schedule=schedule)
        except ValueError as e:
            raise ValueError(
                f"{e} or pass one schedule per group: scheduler(optimizer, [s0, s1, ...])"
            ) from None

    # ------------------------------------------------------------------ core
    def _lr_at(self, i: int, step: float) -> float:
        s = self.schedules[i]
        fb = self._feedback
        if fb is not None:
            if isinstance(fb, list):
                fb = fb[i]
            return float(fb.apply(s, step))
        return s._at(step)

    def _apply(self) -> None:
        t = self.last_epoch
        x = _as_read(t)
        groups = self.optimizer.param_groups
        if len(groups) != len(self.ratios):
            # only the groups this scheduler has adopted (after a load, groups added since the
            # save are adopted at the next step, as they were in the run that saved)
            groups = groups[: len(self.ratios)]
        if self._fast:  # one schedule, no controller, float lrs: the hot path
            lr = self._at0(x)
            lrs = [r * lr for r in self.ratios]
        else:
            lrs = [r * self._lr_at(i, x) for i, r in enumerate(self.ratios)]
        for v in lrs:
            if not 0 <= v < math.inf:  # NaN, negative or overflowed
                raise _negative_lr(v, t)
        # every value is checked before any is set: a refused step changes nothing
        # the momentum and hyperparameter schedules are read where the controller reads the
        # LR schedule (a restart starts them again): one step for one controller, one per group
        # for a list of them
        fb = self._feedback
        reads = bool(self._hp or self._hp_groups)
        if reads and isinstance(fb, list):
            xs = [c.schedule_step(x) for c in fb]
            hps = []
            hp_groups = [(key, kind, [at(xi) for xi in xs]) for at, key, kind in self._hp]
            hp_groups += [
                (key, kind, [at(xi) for at, xi in zip(ats, xs)])
                for ats, key, kind in self._hp_groups
            ]
        else:
            if reads and fb is not None:
                x = fb.schedule_step(x)
            hps = [(key, kind, at(x)) for at, key, kind in self._hp]
            hp_groups = [(key, kind, [at(x) for at in ats]) for ats, key, kind in self._hp_groups]
        for key, _, val in hps:
            if not val >= 0:
                raise _negative_hp(key, val, t)
        for key, _, vals in hp_groups:
            for val in vals:
                if not val >= 0:
                    raise _negative_hp(key, val, t)
        if self._fast:
            for g, v in zip(groups, lrs):
                g["lr"] = v
        else:
            for g, v in zip(groups, lrs):
                _set(g, "lr", v)
        for key, kind, val in hps:
            for g in groups:
                _set_hp(g, key, kind, val)
        for key, kind, vals in hp_groups:
            for g, val in zip(groups, vals):
                _set_hp(g, key, kind, val)
        self._last_lr = [*lrs]
        self._handed_over = False

    def _adopts_groups(self) -> bool:
        """Whether a param group added later follows this scheduler (one schedule and one
        controller for every group), rather than being refused."""
        return not (
            not self._shared
            or getattr(self, "_per_group", False)
            or isinstance(self._feedback, list)
            or any(isinstance(v, list) for v in self.hyperparams.values())
        )

    def _adopt_new_groups(self) -> None:
        """Param groups added to the optimizer since the scheduler was built (e.g. layers
        unfrozen during fine-tuning) follow the schedule like the others: a new group's ``lr``
        when it is first seen is its base LR (``initial_lr``), its ratio to the schedule is
        ``initial_lr / optimizer.defaults["lr"]``, as at construction (over the groups' one
        base LR when they all started at one, and so follow the schedule itself)."""
        groups = self.optimizer.param_groups
        n_old = len(self._ratios)
        if len(groups) < n_old:
            raise ValueError(
                f"optimizer: it has {len(groups)} param groups, the scheduler was built for "
                f"{n_old}; param groups cannot be removed from a scheduled optimizer"
            )
        check_group_lrs(groups, n_old)
        if not self._adopts_groups():
            raise ValueError(
                f"optimizer: param groups were added ({n_old} -> {len(groups)}) to an optimizer "
                "whose scheduler has one schedule or controller per group; build the scheduler "
                "after add_param_group"
            )
        for i, g in enumerate(groups[n_old:], n_old):
            _check_driven_keys(self.optimizer, i, g, self.hyperparams)
        shared, default = self._defaults_lr()
        d = default if default is not None and default != 0.0 else None
        old = set(self.base_lrs[:n_old])
        if len(old) == 1 and all(r == 1.0 for r in self._ratios) and 0.0 not in old:
            # groups that started at one LR follow the schedule itself (group_ratios): a new
            # group is read against that LR
            d = float(old.pop())
        ratios = [*self._ratios]
        bases = self._added_base_lrs()  # read before the shared tensors are replaced below
        self._pending: list[float] = []
        for g in groups[n_old:]:
            lr = g["lr"]
            if isinstance(lr, torch.Tensor) and lr is shared and default is not None:
                # added without its own lr: torch gave it the defaults' tensor, which the steps
                # have set to the current LR; its base LR is the default as it was
                g["lr"] = torch.full_like(g["lr"], default)
        _own_lr_tensors(groups[n_old:], {id(g["lr"]) for g in groups[:n_old]})
        for g, base in zip(groups[n_old:], bases):
            lr = g["lr"]
            if "initial_lr" not in g:  # its base, in the type of its lr
                tensor = isinstance(lr, torch.Tensor)
                if float(lr) == base:
                    g["initial_lr"] = lr.clone() if tensor else lr
                else:  # a pending base (read when built, or kept by a checkpoint)
                    g["initial_lr"] = torch.full_like(lr, base) if tensor else base
            self.base_lrs.append(base)
            self.schedules.append(self.schedules[0])
            ratios.append(base / d if d is not None else 1.0)
        self._tensor_lr = any(isinstance(g["lr"], torch.Tensor) for g in groups)
        self._update_fast_path()
        self.ratios = ratios

    def _defaults_lr(self) -> tuple[Any, float | None]:
        """The optimizer's default LR (a tensor the groups may share) and its value as this
        scheduler found it when built (the steps have since set a shared tensor)."""
        shared = default_lr(self.optimizer)
        return shared, getattr(self, "_default_lr", None if shared is None else float(shared))

    def _added_base_lrs(self) -> list[float]:
        """The base LRs that the param groups added since the last step will be adopted with
        (:meth:`_adopt_new_groups` reads them here): a group's ``initial_lr`` when another
        scheduler of this optimizer (an earlier phase of a ``SequentialLR``) has adopted it
        already, else the base read when this scheduler was built or kept by its checkpoint,
        else the default for a group holding the shared default tensor, else its ``lr``. What
        a checkpoint made before that step keeps for them (the optimizer's checkpoint holds a
        shared tensor's current value instead)."""
        groups = self.optimizer.param_groups[len(self._ratios) :]
        pending: list[float] = getattr(self, "_pending", [])
        shared, default = self._defaults_lr()
        bases = []
        for k, g in enumerate(groups):
            lr = g["lr"]
            if "initial_lr" in g:  # adopted already by another scheduler of this optimizer
                bases.append(float(g["initial_lr"]))
            elif k < len(pending):
                bases.append(pending[k])
            elif isinstance(lr, torch.Tensor) and lr is shared and default is not None:
                bases.append(default)
            else:
                bases.append(float(lr))
        return bases

    def step(self, epoch: int | None = None) -> None:
        """Advance one step (or jump to step ``epoch``) and set the LRs of that step. Param
        groups added to the optimizer since the last step are adopted first (see
        :meth:`_adopt_new_groups`). Called inside a compiled function (``torch.compile``), it
        runs outside the graph, as PyTorch's own schedulers do: traced, each step's LR would
        be a constant of the graph, compiled again at every step."""
        if torch.compiler.is_compiling():  # (run outside the graph, it is not compiling)
            _outside_graph(LRKitScheduler.step)(self, epoch)
            return
        groups = self.optimizer.param_groups
        if epoch is None:
            t = self.last_epoch + 1
            if self._interval_unchecked and t > 0:  # a training loop's first step
                self._interval_unchecked = False
                said = _stepped_per_epoch(self)
                if said is not None:
                    warnings.warn(said, stacklevel=caller_level())
        else:
            if isinstance(epoch, numbers.Integral) and not isinstance(epoch, bool):
                epoch = int(epoch)  # numpy integers too
            elif getattr(epoch, "ndim", None) == 0 and V.real_dtype(
                getattr(epoch, "dtype", None), integer=True
            ):
                epoch = int(epoch)  # a 0-d integer tensor (torch, JAX), as torch's own take it
            if not isinstance(epoch, int) or isinstance(epoch, bool):
                raise ValueError(
                    f"step() takes no metric or fractional epoch, got {V.fmt(epoch)}: report a "
                    "metric with .report(value) on a scheduler built with feedback=... (in "
                    "Lightning keep 'interval': 'step' without 'reduce_on_plateau' and add "
                    "lrkit.lightning.ReportMetric() to the Trainer's callbacks); for "
                    "step(epoch + i / iters), count the schedule in batches (T_0 * iters) and "
                    "call step() once per batch"
                )
            if not 0 <= epoch <= _MAX_EPOCH:
                raise _epoch_error("epoch", epoch)
            t = epoch
        hot = self._hot
        # LRs changed since its last step by another hand: warned once. Float LRs only (a
        # tensor LR read back each step would wait for its device); a step from -1 is a
        # composite's initial step (SequentialLR has just reset the LRs); the hot path's one
        # group is compared first, one float comparison
        if (
            epoch is None
            and not (self._foreign_warned or self._tensor_lr)
            and self.last_epoch >= 0
            and (hot is None or len(groups) != 1 or groups[0]["lr"] != self._last_lr[0])  # type: ignore[index]
            and not self._lrkit_lrs()
        ):
            self._foreign_warned = True
            warnings.warn(_foreign_change(self._last_lr, groups), stacklevel=caller_level())
        if hot is None or len(groups) != 1:
            if len(groups) != self._n_groups:
                self._adopt_new_groups()
            last, count = self.last_epoch, self._step_count
            self.last_epoch = t
            self._step_count += 1
            try:
                self._apply()
            except ValueError:  # a negative LR: nothing was set, the step is not taken
                self.last_epoch, self._step_count = last, count
                raise
            return
        at, at_hp, kind, key = hot  # the hot path (see _update_hot_path)
        x = t if t <= _EXACT_STEPS else float(t)  # as _as_read, inline on the hot path
        lr = at(x)
        if not 0 <= lr < math.inf:
            raise _negative_lr(lr, t)
        if at_hp is not None:
            hp = at_hp(x)
            if not hp >= 0:
                raise _negative_hp(key, hp, t)
        self.last_epoch = t
        self._step_count += 1
        group = groups[0]
        group["lr"] = lr
        if at_hp is not None:
            if kind == 0:
                group[key] = hp
            else:
                betas = group["betas"]
                group["betas"] = (hp, *betas[1:])
        self._last_lr = [lr]  # a new list: one handed out earlier keeps its values

    def _update_lr(self, epoch: int | None = None) -> None:
        # what SequentialLR calls at this scheduler's milestone: a step, hyperparameters too
        self.step(epoch)

    def report(self, value: Metric) -> float | list[float]:
        """Feed a measured metric (e.g. validation loss) to the feedback controller; the LRs
        change at once. Returns the controller's scale (a list of scales, one per group, when
        ``feedback`` is a list)."""
        if self.feedback is None:
            raise ValueError(
                "report() needs a feedback controller: scheduler(opt, schedule, feedback=...)"
            )
        scales = self._observe(value, [])
        if isinstance(self._feedback, list):
            return [float(c.scale) for c in self._feedback]
        return scales[0]

    def _observe(self, value: Any, seen: list[Any], *, in_charge: bool = True) -> list[float]:
        """Feed ``value`` to each controller not in ``seen`` (and add it there), then set the
        LRs (unless another scheduler is ``in_charge`` of them: a ``SequentialLR`` phase that
        has ended): one observation per controller, however many schedulers hold it."""
        # a one-element array of any shape (numpy, JAX, torch) is its value; a bool, a string,
        # a complex number or a larger array: a one-line error
        value = as_metric(value)
        step = self.last_epoch if self.last_epoch >= 0 else None  # -1: phase not begun
        scales = []
        for c in self._controllers():
            if not any(c is o for o in seen):
                seen.append(c)
                scales.append(float(c.update(value, step=step)))
        if in_charge:
            self.refresh()  # param groups added since the last step included
        elif self.last_epoch >= 0:  # an ended phase (a future one is at -1)
            self._handed_over = True
        return scales

    @property
    def current_step(self) -> int:
        """The step whose LRs the optimizer holds now (``last_epoch``)."""
        return self.last_epoch

    def get_lr(self) -> list[float]:  # type: ignore[override]
        x = _as_read(self.last_epoch)
        return [r * self._lr_at(i, x) for i, r in enumerate(self.ratios)]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()

    def get_last_lr(self) -> list[float | torch.Tensor]:
        """The LRs of the last step, one per param group, each of the type of its
        ``group["lr"]``, as PyTorch's schedulers return them: a float, or for a tensor LR a
        new tensor of its dtype and device holding the value set."""
        last = cast("list[float]", self._last_lr)
        if not self._tensor_lr:
            return list(last)
        return [
            torch.tensor(v, dtype=g["lr"].dtype, device=g["lr"].device)
            if isinstance(g["lr"], torch.Tensor)
            else v
            for g, v in zip(self.optimizer.param_groups, last)
        ]

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        added = self._added_base_lrs() if self._adopts_groups() else []
        return {
            # param groups added since the last step: the base LRs they will be adopted with
            **({"added_base_lrs": added} if added else {}),
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "ratios": list(self.ratios),
            "base_lrs": list(self.base_lrs),
            # None for a schedule holding a Python callable (lrkit.schedules.function), which
            # has no dict (PyTorch's LambdaLR saves no lambda either): the step resumes it
            "schedules": [_written(s) for s in self.schedules],
            "hyperparams": self._written_hyperparams(),
            "feedback": self._feedback_state(),
            "owns_lrs": self._owns_lrs(),
        }

    def _written_hyperparams(self) -> dict[str, Any]:
        """The momentum and hyperparameter schedules as :meth:`state_dict` writes them."""
        return {
            k: [_written(x) for x in s] if isinstance(s, list) else _written(s)
            for k, s in self.hyperparams.items()
        }

    def _owns_lrs(self) -> bool:
        """Whether the optimizer's LRs are the ones this scheduler set last (not another
        scheduler's: ``SequentialLR`` outside this scheduler's phase, a scheduler stepped after
        it in a ``ChainedScheduler``, or a hand-edit)."""
        if self._handed_over:
            return False
        groups = self.optimizer.param_groups
        last = cast("list[float]", self._last_lr)
        if len(groups) != len(last):  # groups added since the last step: adopted at the next
            return True
        # a tensor LR holds the value rounded to its dtype: compared in that dtype
        return all(bool(g["lr"] == v) for g, v in zip(groups, last))

    def _lrkit_lrs(self) -> bool:
        """Whether the optimizer's LRs are the ones this scheduler, or another lrkit scheduler
        of the same optimizer (one stepped with it in a ``ChainedScheduler``), set last."""
        if self._owns_lrs():
            return True
        others = _ATTACHED.get(self.optimizer, ())
        return any(s is not self and s._owns_lrs() for s in others)

    def _feedback_state(self) -> Any:
        fb = self._feedback
        if fb is None:
            return None
        if isinstance(fb, list):
            return [c.state_dict() for c in fb]
        return fb.state_dict()

    @staticmethod
    def _float_list(state: Mapping[str, Any], key: str, n: int) -> list[float] | None:
        values = state.get(key)
        if values is None:
            return None
        name = f"state_dict[{key!r}]"
        if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__len__"):
            raise ValueError(f"{name} must be a list of {n} numbers, got {V.fmt(values)}")
        if len(values) != n:
            raise ValueError(
                f"{name} must have one entry per param group ({n}), got {len(values)} "
                "(the checkpoint was made with another optimizer layout)"
            )
        return [V.non_negative(f"{name}[{i}]", x) for i, x in enumerate(values)]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume exactly: the step, the group ratios and the controller state come from the
        checkpoint, and the LRs of that step are set at once (whatever the optimizer held).

        When the optimizer's LRs were not this scheduler's at the save (another scheduler of a
        ``SequentialLR`` or ``ChainedScheduler`` set them since, or its phase has not begun:
        ``last_epoch`` is -1), the LRs and hyperparameters are left as the optimizer holds
        them (its own checkpoint has them), so the composite resumes exactly. A checkpoint
        refused (a ``ValueError``) leaves this scheduler and the optimizer's param groups as
        they were, groups added since the last step included.

        A checkpoint made with another schedule (e.g. another ``total_steps``) or other
        momentum or hyperparameter schedules loads, keeps the ones given to this scheduler and
        warns, naming the checkpoint's; :attr:`load_warnings` holds the messages of the last
        load (a trainer that silences warnings while it loads, as Hugging Face's does, can
        issue them again)."""
        groups = [(g, dict(g)) for g in self.optimizer.param_groups]
        kept = {k: getattr(self, k) for k in _ADOPTED if hasattr(self, k)}
        kept = {k: [*v] if isinstance(v, list) else v for k, v in kept.items()}
        try:
            said = self._load_state_dict(state_dict)
        except BaseException:
            for g, before in groups:  # what adopting the groups added since the last step wrote
                g.clear()
                g.update(before)
            for k, v in kept.items():
                setattr(self, k, v)
            self._update_fast_path()
            raise
        self.load_warnings = tuple(said)
        for message in said:
            warnings.warn(message, stacklevel=caller_level())

    def _load_state_dict(self, state_dict: dict[str, Any]) -> list[str]:
        """Load ``state_dict``; the warnings it gives (a schedule other than the checkpoint's),
        for the caller to issue once the load has succeeded."""
        if not isinstance(state_dict, Mapping):
            raise ValueError(
                "state_dict must be a dict from LRKitScheduler.state_dict(), "
                f"got {type(state_dict).__name__}"
            )
        if "last_epoch" not in state_dict:
            raise ValueError(
                "state_dict must hold 'last_epoch' (a dict from LRKitScheduler.state_dict()), "
                f"got keys {sorted(map(str, state_dict))}"
            )
        foreign = sorted(set(map(str, state_dict)) - set(self.state_dict()))
        if foreign and "schedules" not in state_dict:
            # another scheduler's (StepLR's has step_size, gamma, _last_lr...): its
            # last_epoch counts its own steps, which this schedule would silently jump to
            raise ValueError(
                "state_dict must be a dict from LRKitScheduler.state_dict(), got one with "
                f"keys it never writes: {foreign} (another scheduler's state?)"
            )
        saved_groups = state_dict.get("ratios")
        saved_n = len(saved_groups) if isinstance(saved_groups, Sized) else None
        # the groups without an initial_lr before an adoption here (what it writes on a group
        # the checkpoint leaves to the next step is taken back below)
        unadopted = [id(g) for g in self.optimizer.param_groups if "initial_lr" not in g]
        if len(self.optimizer.param_groups) != self._n_groups and saved_n != self._n_groups:
            # param groups added since the last step, which the checkpoint has adopted (or a
            # checkpoint without ratios); a checkpoint saved before its run adopted them
            # (add_param_group, then a save before the next step) leaves them to the next step
            self._adopt_new_groups()
        # everything is checked before anything changes: a bad checkpoint leaves this scheduler
        # (and the optimizer's LRs) as they were
        # -1: a scheduler of a SequentialLR whose phase has not begun
        last_epoch = V.integer("state_dict['last_epoch']", state_dict["last_epoch"], -1)
        if last_epoch > _MAX_EPOCH:
            raise _epoch_error("state_dict['last_epoch']", last_epoch, -1)
        owns = state_dict.get("owns_lrs", True)
        if not isinstance(owns, bool):
            raise ValueError(f"state_dict['owns_lrs'] must be True or False, got {V.fmt(owns)}")
        step_count = state_dict.get("_step_count")
        step_count = (
            last_epoch + 1
            if step_count is None
            else V.integer("state_dict['_step_count']", step_count, 0)
        )
        n = self._n_groups
        if saved_n is not None and 0 < saved_n < n and self._adopts_groups():
            # saved between add_param_group and the step that adopts the new groups, resumed
            # into a scheduler built with them: they are adopted at the next step, as in the
            # run that saved (until then they keep the LRs the optimizer's checkpoint holds)
            n = saved_n
        ratios = self._float_list(state_dict, "ratios", n)
        base_lrs = self._float_list(state_dict, "base_lrs", n)
        added = state_dict.get("added_base_lrs")
        if added is not None:
            if not isinstance(added, (list, tuple)):
                raise ValueError(
                    f"state_dict['added_base_lrs'] must be a list of numbers, got {V.fmt(added)}"
                )
            added = [
                V.non_negative(f"state_dict['added_base_lrs'][{i}]", x) for i, x in enumerate(added)
            ]
        said: list[str] = []  # the warnings of this load: load_warnings, once it is done
        saved = _as_now(state_dict.get("schedules"))
        mine_lr = [_written(s) for s in self.schedules[:n]]
        if saved is not None and saved != mine_lr:
            which = next(
                (i for i, (a, b) in enumerate(zip(saved, mine_lr)) if a != b), 0
            ) if isinstance(saved, list) else 0  # fmt: skip
            was = _shown(saved[which] if isinstance(saved, list) and saved else saved)
            per_group = len({id(x) for x in self.schedules[:n]}) > 1  # one schedule a group
            group = f" of param group {which}" if per_group else ""
            said.append(
                f"the checkpoint was made with a different schedule{group} ({was}); keeping "
                f"the schedule given to this scheduler ({self.schedules[which]})"
            )
        saved_hp = _as_now(state_dict.get("hyperparams"))
        mine = self._written_hyperparams()
        if isinstance(saved_hp, Mapping) and dict(saved_hp) != mine:
            keys = sorted(set(saved_hp) | set(mine))
            said.append(
                "the checkpoint was made with other momentum or hyperparameter schedules "
                f"({', '.join(keys)}); keeping the ones given to this scheduler "
                f"({', '.join(sorted(mine)) or 'none'})"
            )
        fb = state_dict.get("feedback")
        if fb is not None:
            if self.feedback is None:
                raise ValueError(
                    "state_dict holds a feedback controller's state but this scheduler has "
                    "none: pass feedback=... when constructing it" + guard_hint(fb)
                )
            if isinstance(self._feedback, list):
                if not isinstance(fb, list) or len(fb) != len(self._feedback):
                    raise ValueError(
                        "state_dict['feedback'] must hold one controller state per param group "
                        f"({len(self._feedback)}), as this scheduler has a list of controllers"
                    )
                differ = sorted(
                    {f"{n} (group {i})" for i, (c, f) in enumerate(zip(self._feedback, fb))
                     for n in settings_differ(c, f) if n != "type"}
                )  # fmt: skip
                load_states(self._feedback, fb)  # all or nothing
                said.extend(_settings_loaded(differ))
            else:
                if isinstance(fb, list):
                    raise ValueError(
                        "state_dict['feedback'] holds one controller per param group, but this "
                        "scheduler has a single controller: pass feedback=[...] (one per group)"
                    )
                differ = [n for n in settings_differ(self.feedback, fb) if n != "type"]
                self.feedback.load_state_dict(fb)
                said.extend(_settings_loaded(differ))
        self.last_epoch = last_epoch
        self._step_count = step_count
        if n < self._n_groups:
            # the groups past the checkpoint's are adopted at the next step, as in the run
            # that saved, from the base LRs this scheduler read when it was built (the
            # optimizer's checkpoint has since set their lr to what the saving run held, not
            # what they were given); kept until then, also through another load
            self._pending = added or [float(b) for b in self.base_lrs[n:]]
            for g in self.optimizer.param_groups[n:]:
                if id(g) in unadopted:  # adopted at the next step, from the pending base
                    g.pop("initial_lr", None)
            self.schedules = self.schedules[:n]
            self.base_lrs = self.base_lrs[:n]
            self.ratios = self.ratios[:n]
        elif added:  # added to the optimizer after this scheduler was built: the next step
            self._pending = added
        if ratios is not None:
            self.ratios = ratios
        if base_lrs is not None:
            self.base_lrs = [*base_lrs]
        if owns and last_epoch >= 0:
            self._apply()
        else:  # the optimizer's LRs are another scheduler's: kept
            if last_epoch >= 0:
                self._last_lr = [*self.get_lr()]
                self._handed_over = True  # still not this scheduler's, whatever they read
            else:  # a phase not begun: the LRs are another's if they were in the saving run
                self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]
                self._handed_over = not owns
        return said


#: what adopting param groups added since the last step changes in a scheduler
_ADOPTED = ("base_lrs", "schedules", "_ratios", "_n_groups", "_pending", "_tensor_lr")


def _walk(sched: Any) -> list[tuple[LRKitScheduler, bool]]:
    """The lrkit schedulers in ``sched`` (see :func:`lrkit_schedulers`), each once, with
    whether it is in charge of its optimizer's LRs now: in a ``SequentialLR`` only the
    current phase is (an ended or a future phase is not); in a ``ChainedScheduler`` or a
    list every one is."""
    out: list[tuple[LRKitScheduler, bool]] = []
    visited: set[int] = set()

    def walk(s: Any, charge: bool) -> None:
        if s is None or id(s) in visited:
            return
        visited.add(id(s))
        if isinstance(s, LRKitScheduler):
            out.append((s, charge))
        elif isinstance(s, (list, tuple)):
            for child in s:
                walk(child, charge)
        elif isinstance(s, LRScheduler):
            inner = getattr(s, "_schedulers", None)  # SequentialLR, ChainedScheduler
            if not isinstance(inner, (list, tuple)):
                return
            milestones = getattr(s, "_milestones", None)  # SequentialLR's phases
            current = (
                bisect.bisect_right(list(milestones), s.last_epoch)
                if isinstance(milestones, (list, tuple))
                else None
            )
            for k, child in enumerate(inner):
                walk(child, charge and (current is None or k == current))
        else:  # a wrapper (accelerate's AcceleratedScheduler)
            walk(getattr(s, "scheduler", None), charge)

    walk(sched, True)
    return out


def lrkit_schedulers(sched: Any) -> list[LRKitScheduler]:
    """The lrkit schedulers in ``sched``, each once: ``sched`` itself, those inside PyTorch's
    ``SequentialLR`` and ``ChainedScheduler`` (nested ones too), the one a wrapper holds as
    ``.scheduler`` (accelerate's ``AcceleratedScheduler``), or those of a list of any of
    these. Anything else (a stock PyTorch scheduler, ``None``) holds none."""
    return [s for s, _ in _walk(sched)]


@V.keyword_only("lrkit.torch.report")
def report(sched: Any, *, value: Any, seen: list[Any] | None = None) -> list[LRKitScheduler]:
    """Feed one observation of a metric to every lrkit scheduler with ``feedback`` in
    ``sched`` (what :func:`lrkit_schedulers` finds there) and set the LRs again: a feedback
    controller shared by several of them, or already in ``seen`` (a list this call extends,
    to share one observation across calls), is updated once; in a ``SequentialLR`` only the
    current phase sets the LRs (an ended phase's controller learns the value, its LRs are no
    longer in use). Returns the schedulers reached; when none has a feedback controller (a
    stock PyTorch scheduler, one built without ``feedback=``) the metric is not used, and a
    ``RuntimeWarning`` says so, as ``ReportMetric`` of Lightning and Hugging Face does (what
    they call after each validation). ``sched`` that is no scheduler, composite, wrapper or
    list of them is a one-line ``ValueError``; so is a ``value`` that is no real number."""
    if not (
        sched is None
        or isinstance(sched, (LRScheduler, ReduceLROnPlateau, list, tuple))
        or hasattr(sched, "scheduler")
    ):
        raise ValueError(
            "sched must be a learning-rate scheduler (lrkit.torch.scheduler's, a SequentialLR "
            "or ChainedScheduler holding one, accelerate's wrapper) or a list of them, got "
            f"{type(sched).__name__}"
        )
    value = as_metric(value)
    seen = [] if seen is None else seen
    reached = [(s, charge) for s, charge in _walk(sched) if s.feedback is not None]
    if not reached:
        warnings.warn(
            f"report: no lrkit scheduler with a feedback controller in sched (a "
            f"{type(sched).__name__}): the metric is not used; build one with "
            "lrkit.torch.scheduler(optimizer, schedule, feedback=...)",
            RuntimeWarning,
            stacklevel=caller_level(),
        )
    for s, charge in reached:
        s._observe(value, seen, in_charge=charge)
    return [s for s, _ in reached]


@V.checked_keywords("lrkit.torch.scheduler()", hints=_RESUME_HINT)
def scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    *,
    feedback: Any = None,
    momentum: Any = None,
    hyperparams: Mapping[str, Any] | None = None,
) -> LRKitScheduler:
    """Return an ``LRScheduler`` that drives ``optimizer`` with ``schedule`` (an lrkit
    schedule, spec string or dict; ``scheduler.step()`` after each ``optimizer.step()``).

    A group whose initial lr is ``r`` times ``optimizer.defaults['lr']`` follows
    ``r * schedule``; a list of schedules gives one per group. ``feedback``: a controller of
    :mod:`lrkit.feedback` (e.g. ``ReduceOnPlateau``), whose scale multiplies the schedule
    (``scheduler.report(value)`` feeds it); ``momentum``: a schedule for SGD's ``momentum``
    or Adam's ``beta1`` (e.g. ``onecycle_momentum(total_steps)``); ``hyperparams``: other
    group keys to drive, ``{"weight_decay": schedule}``. See :class:`LRKitScheduler`.
    """
    return LRKitScheduler(
        optimizer, schedule, feedback=feedback, momentum=momentum, hyperparams=hyperparams
    )
