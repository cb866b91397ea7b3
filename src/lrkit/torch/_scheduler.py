"""Drive a PyTorch optimizer with an lrkit schedule.

``scheduler(optimizer, schedule)`` returns a real ``torch.optim.lr_scheduler.LRScheduler``
(so Lightning and Hugging Face accept it) with an explicit step counter: after construction
every group holds the LR of step 0, after ``k`` calls of ``.step()`` the LR of step ``k``.
Nothing is recursive: the LR is recomputed from the step, so resume never depends on the
optimizer's current LR and the order of ``optimizer.step()``/``scheduler.step()`` cannot drift.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from .._imports import require

require("torch", "torch")  # without PyTorch: the one-line install hint

import torch
from torch.optim.lr_scheduler import LRScheduler

from ..schedules import Schedule, as_schedule

__all__ = ["LRKitScheduler", "scheduler"]


def _set(group: dict[str, Any], key: str, value: float) -> None:
    if key == "momentum" and "momentum" not in group:
        group["betas"] = (value, *group["betas"][1:])
        return
    current = group.get(key)
    if isinstance(current, torch.Tensor):
        current.fill_(value)
    else:
        group[key] = value


class LRKitScheduler(LRScheduler):
    """An ``LRScheduler`` whose LR at step ``k`` is ``ratio_g * schedule(k)`` for group ``g``
    (times the feedback controller's scale, when one is given).

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        schedule: a schedule (or spec string / dict), or a list with one per param group.
        feedback: an optional :class:`lrkit.feedback.Feedback` controller; ``.report(value)``
            feeds it a metric and the LR becomes ``controller.apply(schedule, step)``.
        momentum: an optional schedule for the momentum (SGD/RMSprop ``momentum`` or Adam's
            ``beta1``), e.g. ``schedules.onecycle_momentum(total_steps)``.
        hyperparams: other group keys to drive, ``{"weight_decay": schedule, ...}``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: Any,
        *,
        feedback: Any = None,
        momentum: Any = None,
        hyperparams: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        groups = optimizer.param_groups
        if isinstance(schedule, (list, tuple)):
            if len(schedule) != len(groups):
                raise ValueError(
                    f"schedule: a list needs one schedule per param group "
                    f"({len(groups)}), got {len(schedule)}"
                )
            self.schedules = [as_schedule(s, name=f"schedule[{i}]") for i, s in enumerate(schedule)]
            self.ratios = [1.0] * len(groups)
        else:
            self.schedules = [as_schedule(schedule)] * len(groups)
            self.ratios = self._group_ratios(optimizer)
        self._feedback: Any = None
        self._check_feedback(feedback)
        self._feedback = feedback
        extra: dict[str, Schedule] = {}
        if momentum is not None:
            extra["momentum"] = as_schedule(momentum, name="momentum")
        for key, s in (hyperparams or {}).items():
            if key == "lr":
                raise ValueError("hyperparams must not contain 'lr': pass it as schedule")
            extra[key] = as_schedule(s, name=f"hyperparams[{key!r}]")
        for key in extra:
            for i, g in enumerate(groups):
                if key == "momentum" and "momentum" not in g and "betas" not in g:
                    raise ValueError(
                        f"momentum: param group {i} has neither 'momentum' nor 'betas' "
                        f"({type(optimizer).__name__} cannot cycle momentum)"
                    )
                if key != "momentum" and key not in g:
                    raise ValueError(
                        f"hyperparams: param group {i} has no key {key!r} "
                        f"(keys: {sorted(k for k in g if k != 'params')})"
                    )
        self.hyperparams = extra
        for g in groups:
            lr = g["lr"]
            g.setdefault("initial_lr", lr.clone() if isinstance(lr, torch.Tensor) else lr)
        self.base_lrs = [float(g["initial_lr"]) for g in groups]
        self._hp = []
        for key, sched in extra.items():
            if key == "momentum" and all("momentum" not in g for g in groups):
                kind = 1  # Adam-style betas[0]
            elif any(isinstance(g.get(key), torch.Tensor) for g in groups) or (
                key == "momentum" and any("momentum" not in g for g in groups)
            ):
                kind = 2
            else:
                kind = 0
            self._hp.append((sched._at, key, kind))
        self._shared = all(s is self.schedules[0] for s in self.schedules)
        self._tensor_lr = any(isinstance(g["lr"], torch.Tensor) for g in groups)
        self._at0 = self.schedules[0]._at
        self._update_fast_path()
        self.last_epoch = 0
        self._step_count = 1
        self._apply()

    @staticmethod
    def _check_feedback(feedback: Any) -> None:
        if feedback is None:
            return
        for attr in ("apply", "update", "state_dict", "load_state_dict"):
            if not callable(getattr(feedback, attr, None)):
                raise ValueError(
                    f"feedback must be an lrkit.feedback controller (with .{attr}()), "
                    f"got {type(feedback).__name__}"
                )

    def _update_fast_path(self) -> None:
        self._fast = self._shared and self._feedback is None and not self._tensor_lr

    @property
    def feedback(self) -> Any:
        """The feedback controller (or ``None``); assigning one takes effect at the next step
        (call :meth:`refresh` to apply it at once)."""
        return self._feedback

    @feedback.setter
    def feedback(self, value: Any) -> None:
        self._check_feedback(value)
        self._feedback = value
        self._update_fast_path()

    def refresh(self) -> None:
        """Set the LRs of the current step again (after a controller changed its scale)."""
        self._apply()

    @staticmethod
    def _group_ratios(optimizer: torch.optim.Optimizer) -> list[float]:
        default = optimizer.defaults.get("lr")
        base = [float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups]
        if default is None or float(default) == 0.0:
            if len(set(base)) > 1:
                raise ValueError(
                    "optimizer.defaults['lr'] must be > 0 to scale param groups with different "
                    "learning rates; pass one schedule per group instead"
                )
            return [1.0] * len(base)
        d = float(default)
        return [b / d for b in base]

    # ------------------------------------------------------------------ core
    def _lr_at(self, i: int, step: int) -> float:
        s = self.schedules[i]
        if self.feedback is not None:
            return float(self.feedback.apply(s, step))
        return s._at(step)

    def _apply(self) -> None:
        t = self.last_epoch
        groups = self.optimizer.param_groups
        if self._fast:  # one schedule, no controller, float lrs: the hot path
            lr = self._at0(t)
            lrs = [r * lr for r in self.ratios]
            for g, v in zip(groups, lrs):
                g["lr"] = v
        else:
            lrs = [r * self._lr_at(i, t) for i, r in enumerate(self.ratios)]
            for g, v in zip(groups, lrs):
                _set(g, "lr", v)
        for at, key, kind in self._hp:
            val = at(t)
            for g in groups:
                if kind == 0:
                    g[key] = val
                elif kind == 1:
                    g["betas"] = (val, *g["betas"][1:])
                else:
                    _set(g, key, val)
        self._last_lr = lrs

    def step(self, epoch: int | None = None) -> None:
        """Advance one step (or jump to step ``epoch``) and set the LRs of that step."""
        if epoch is None:
            self.last_epoch += 1
        else:
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
            self.last_epoch = epoch
        self._step_count += 1
        self._apply()

    def report(self, value: float) -> float:
        """Feed a measured metric (e.g. validation loss) to the feedback controller; the LRs
        change at once. Returns the controller's scale."""
        if self.feedback is None:
            raise ValueError(
                "report() needs a feedback controller: scheduler(opt, schedule, feedback=...)"
            )
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(
                    f"value must be a scalar metric (a number or a one-element tensor), "
                    f"got a tensor of shape {tuple(value.shape)}"
                )
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)  # numpy scalars and other number types
            except (TypeError, ValueError):
                raise ValueError(
                    f"value must be a scalar metric (a number), got {type(value).__name__}"
                ) from None
        scale = float(self.feedback.update(float(value), step=self.last_epoch))
        self._apply()
        return scale

    @property
    def current_step(self) -> int:
        """The step whose LRs the optimizer holds now (``last_epoch``)."""
        return self.last_epoch

    def get_lr(self) -> list[float]:  # type: ignore[override]
        return [r * self._lr_at(i, self.last_epoch) for i, r in enumerate(self.ratios)]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()

    def get_last_lr(self) -> list[float]:  # type: ignore[override]
        return list(self._last_lr)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "ratios": list(self.ratios),
            "base_lrs": list(self.base_lrs),
            "schedules": [s.to_dict() for s in self.schedules],
            "hyperparams": {k: s.to_dict() for k, s in self.hyperparams.items()},
            "feedback": None if self.feedback is None else self.feedback.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume exactly: the step, the group ratios and the controller state come from the
        checkpoint, and the LRs of that step are set at once (whatever the optimizer held)."""
        saved = state_dict.get("schedules")
        if saved is not None and saved != [s.to_dict() for s in self.schedules]:
            warnings.warn(
                "the checkpoint was made with a different schedule; keeping the schedule given "
                f"to this scheduler ({self.schedules[0]})",
                stacklevel=2,
            )
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict.get("_step_count", self.last_epoch + 1))
        ratios = state_dict.get("ratios")
        if ratios is not None:
            if len(ratios) != len(self.optimizer.param_groups):
                raise ValueError(
                    f"state_dict has ratios for {len(ratios)} param groups, the optimizer has "
                    f"{len(self.optimizer.param_groups)}"
                )
            self.ratios = [float(r) for r in ratios]
        if "base_lrs" in state_dict:
            self.base_lrs = [float(b) for b in state_dict["base_lrs"]]
        fb = state_dict.get("feedback")
        if fb is not None:
            if self.feedback is None:
                raise ValueError(
                    "state_dict holds a feedback controller's state but this scheduler has "
                    "none: pass feedback=... when constructing it"
                )
            self.feedback.load_state_dict(fb)
        self._apply()


def scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    *,
    feedback: Any = None,
    momentum: Any = None,
    hyperparams: Mapping[str, Any] | None = None,
) -> LRKitScheduler:
    """Return an ``LRScheduler`` that drives ``optimizer`` with ``schedule``.

    A group whose initial lr is ``r`` times ``optimizer.defaults['lr']`` follows
    ``r * schedule``; a list of schedules gives one per group. See :class:`LRKitScheduler`.
    """
    return LRKitScheduler(
        optimizer, schedule, feedback=feedback, momentum=momentum, hyperparams=hyperparams
    )
