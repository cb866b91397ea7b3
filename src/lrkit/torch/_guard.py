"""Divergence guard for PyTorch: in-memory snapshots, restore and LR cut on NaN/inf or spikes.

Usage (call ``check`` after ``backward()`` and before ``optimizer.step()``)::

    guard = lrkit.torch.DivergenceGuard(model, optimizer=optimizer, scheduler=sched)
    for x, y in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        if guard.check(loss):        # False: diverged; last good state restored, LR cut
            optimizer.step()
        sched.step()

The decision (ok / restore and cut / give up) is made by the framework-free
:class:`lrkit.feedback.DivergenceDetector` (the guard's :attr:`~DivergenceGuard.controller`);
this class keeps snapshots of the model's ``state_dict()`` (parameters *and* buffers, also
those registered with ``persistent=False``), the values of the tensors the optimizer steps
outside the model (a learnable loss temperature) and the optimizer's ``state_dict()``
(moments, step counts, param-group hyperparameters), as clones in memory, taken every
``snapshot_every`` good checks, and at the first good check after ``add_param_group`` (a
restore before it gives the new groups back as they are). On the final failure it restores
the last good state, then raises :class:`DivergenceError` (a ``RuntimeError``): the model is
left in its last good state.

Cost per step at the defaults: one read of the loss (``loss.item()``, which a training loop
usually does anyway), one finiteness screen over all gradients (one sum per gradient, one
device sync; an exact element test only when that sum is not finite), a few microseconds of
bookkeeping (under ``torch.distributed``, one all-reduce of the loss: every rank judges the
mean, so all restore together), and every ``snapshot_every`` (50) good checks one copy of the
model and optimizer state. A snapshot is taken at a good check, before that step's update.
What the default ``snapshot_every=50`` gives up: a restore goes back to the last snapshot, so
it undoes up to 50 updates rather than only the last one, after which the loss was bad
(``snapshot_every=1`` undoes only that one, at one state copy per step).
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from typing import TYPE_CHECKING, Any

from .. import _renamed
from .._imports import require

require("torch", "torch")  # without PyTorch: the one-line install hint

import torch

from .. import _validate as V
from .._runtime import caller_level
from ..feedback import (
    DEFAULT_GUARD_FACTOR,
    DETECTOR_HINTS,
    Chain,
    DetectorKwargs,
    DivergenceDetector,
    GuardBook,
    Multiplier,
    as_metric,
    claim_detector,
    guard_detector,
    members_of,
)
from ._checks import (
    check_group_lrs,
    check_module,
    check_optimizer,
    inner_optimizer,
    innermost_optimizer,
    keep_state_objects,
    wrapped_optimizer,
)
from ._distributed import all_reduce_mean, get_world_size
from ._scheduler import driving

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["DivergenceError", "DivergenceGuard"]


class DivergenceError(RuntimeError):
    """Training diverged more often than the guard allows; the last good state is restored."""


def _clone(obj: Any) -> Any:
    """Deep copy with tensors detached and cloned (no aliasing with the live objects)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_clone(v) for v in obj)
    return copy.deepcopy(obj)


class DivergenceGuard:
    """Restore the last good snapshot and cut the LR when the loss diverges.

    Args:
        model: the ``torch.nn.Module`` being trained.
        optimizer: its optimizer (keyword).
        scheduler: an optional ``lrkit.torch.scheduler(...)``; the guard's LR multiplier
            (:attr:`feedback`, a :class:`lrkit.feedback.Multiplier`) is appended to its feedback
            chain, so cuts compose with the schedule and are saved in the scheduler's
            ``state_dict()``. If you build the chain yourself (``feedback=plateau &
            guard.feedback``) it is not appended twice. Without an lrkit scheduler the cut is
            applied to the param groups' ``lr`` directly: a stock scheduler that updates the
            LR it finds (``StepLR``, ``ExponentialLR``) keeps it, one that recomputes the LR
            from its base LRs (``LambdaLR``, ``OneCycleLR``) overwrites it at its next step.
        factor: LR multiplier applied at each restore (0 < factor < 1).
        controller: optional, a ready :class:`lrkit.feedback.DivergenceDetector`, which holds
            its own settings (as ``lrkit.keras.DivergenceGuard``'s): giving ``factor`` or a
            detector argument beside it is a one-line ``ValueError``.
        **detector: by keyword, the :class:`lrkit.feedback.DivergenceDetector` arguments
            (:class:`lrkit.feedback.DetectorKwargs`, with the detector's defaults):
        max_restores: restores allowed; the next divergence raises :class:`DivergenceError`.
        spike_factor: a loss above ``spike_factor`` x the ``quantile`` (default 0.9) of the last
            ``window`` good losses counts as a divergence (None: only NaN/inf do).
        window, min_history: size of the reference window, and the number of good losses needed
            before spikes are detected.
        quantile: the quantile of the window used as the reference.
        spike_floor: a spike must also lie above this fraction of the largest good loss seen
            (batch noise of a loss driven near 0 is not a divergence).
        min_scale: the LR multiplier never goes below this.
        snapshot_every: take a snapshot every this many good checks (the first at
            construction), before that step's update. A restore undoes at most
            ``snapshot_every`` updates; 1 snapshots every step and undoes only the update after
            which the loss was bad (one state copy per step).
        check_grads: also treat non-finite gradients of the optimizer's parameters (when
            present) as a divergence (one sum per gradient and one sync; an exact element test
            only when that sum is not finite).
        keep: snapshots kept (memory: ``keep`` copies of the model and optimizer state). When
            the state just restored diverges again at once, it was a bad state that passed for
            good (e.g. a blow-up before spike detection was armed): it is dropped and the
            next older snapshot is restored.
    """

    # a guard unpickled from a version without these flags: asked before restores only
    _unattached_asked = True
    _unattached_warned = False

    @V.keyword_only("lrkit.torch.DivergenceGuard", accepted=tuple(DetectorKwargs.__annotations__))
    def __init__(
        self,
        model: torch.nn.Module,
        *,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        factor: float = DEFAULT_GUARD_FACTOR,
        snapshot_every: int = 50,
        keep: int = 2,
        controller: DivergenceDetector | None = None,
        check_grads: bool = True,
        **detector: Unpack[DetectorKwargs],
    ) -> None:
        check_module(model)
        check_optimizer(optimizer)
        if inner_optimizer(optimizer) is not None:
            raise ValueError(
                f"optimizer: a {type(optimizer).__name__} keeps each rank's shard of the state "
                "in the optimizer it wraps, and its state_dict() only after "
                "consolidate_state_dict() on every rank; DivergenceGuard snapshots and restores "
                "whole optimizer states: guard a plain optimizer (under DDP, each rank holds "
                "the whole state)"
            )
        V.options(  # as the Keras guard and the detector say it: the option meant, if close
            "lrkit.torch.DivergenceGuard",
            detector,
            ["model", "optimizer", "scheduler", "factor", "snapshot_every", "keep", "controller"]
            + ["check_grads", *DetectorKwargs.__annotations__],
            DETECTOR_HINTS,
        )
        self._book: GuardBook[dict[str, Any]] = GuardBook(
            guard_detector(factor, controller, detector, guard=self),
            snapshot_every=snapshot_every,
            keep=keep,
        )
        self.controller = self._book.controller
        self.model = model
        self.optimizer = optimizer
        self.snapshot_every = self._book.snapshot_every
        self.check_grads = V.flag("check_grads", check_grads)
        # a ready controller's cuts and checks go on (fresh: scale 1, no checks), as after
        # load_state_dict; the optimizer's LRs (its own checkpoint's) include those cuts
        self.feedback = Multiplier(self.controller.scale)
        self.scheduler = None
        # the warning for an lrkit scheduler that drives the optimizer without the guard's
        # cuts: given once; asked at the first check and before each restore
        self._unattached_warned = False
        self._unattached_asked = False
        if scheduler is not None:
            self.attach(scheduler)
        self.num_checks = self.controller.num_checks
        self._lr_scale = self.controller.scale  # the multiplier the optimizer's LRs include
        self._resnapshot = False  # after load_state_dict: the first check snapshots afresh
        # after load_state_dict: what decides when the next snapshot is due, as saved (good
        # checks since the newest snapshot; param groups that snapshot held), put back once
        # the first check has snapshotted the loaded state
        self._resume: tuple[int, int | None] = (0, None)
        self._saved_groups: int | None = None  # until the next snapshot: the saved count
        self.snapshot()
        claim_detector(self.controller, self)  # built: no other guard may act through it

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a deep copy (copy.deepcopy, pickle) acts through its own copy of the detector; a
        # shallow one (copy.copy) shares the original's, whose claim stays with the original
        self.__dict__.update(state)
        claim_detector(self.controller, self, if_free=True)

    # ------------------------------------------------------------------ scheduler
    def _warn_unattached(self) -> None:
        """Warn, once, when an lrkit scheduler drives the optimizer without the guard's cuts:
        its next ``step()`` sets the schedule's LR again, without them. Asked at the first
        check (after a ``guard.attach(scheduler)`` that follows the guard's construction) and
        before a restore."""
        self._unattached_asked = True
        if self._unattached_warned or self.scheduler is not None:
            return
        if not driving(self.optimizer):
            return
        self._unattached_warned = True
        warnings.warn(
            "DivergenceGuard: an lrkit.torch.scheduler(...) drives this optimizer and the guard "
            "was built without scheduler=: the scheduler's next step() sets the schedule's LR "
            "again, without the guard's cuts; build the guard with scheduler=<that scheduler> "
            "(or call guard.attach(scheduler)) so its cuts compose with the schedule (with "
            "lrkit.torch.fit, build it with lrkit.torch.scheduler and pass it as schedule=)",
            stacklevel=caller_level(),
        )

    def attach(self, scheduler: Any) -> None:
        """Make ``scheduler`` (an lrkit scheduler) include the guard's LR multiplier."""
        if not hasattr(scheduler, "feedback") or not hasattr(scheduler, "report"):
            raise ValueError(
                "scheduler must be an lrkit.torch.scheduler(...) (with or without feedback=: "
                "the guard adds its own controller), got "
                f"{type(scheduler).__name__}"
            )
        driven = getattr(scheduler, "optimizer", None)
        inner = innermost_optimizer(self.optimizer)
        if driven is not None and innermost_optimizer(driven) is not inner:
            raise ValueError(
                f"scheduler drives another optimizer (a {type(driven).__name__} that is not "
                "the guard's optimizer): the guard's cuts would set that one's LRs; pass the "
                "scheduler built on the guarded optimizer"
            )
        fb = scheduler.feedback
        if isinstance(fb, list):
            raise ValueError(
                "scheduler: a DivergenceGuard needs a scheduler with one feedback controller "
                "for all param groups (or none), got one with per-group feedback=[...]"
            )
        # (a scheduler whose feedback holds the guard's detector is refused when the guard
        # takes it, or when the scheduler does: feedback.guard_detector, check_controllers)
        if not any(m is self.feedback for m in members_of(fb)):
            scheduler.feedback = self.feedback if fb is None else Chain(fb, self.feedback)
        if not any(c is self.feedback for c in getattr(scheduler, "_held_feedback", ())):
            hold = getattr(scheduler, "_hold_feedback", None)  # an lrkit scheduler keeps it
            if hold is not None:  # through a later ``scheduler.feedback = ...``
                hold(self.feedback)
        self.scheduler = scheduler
        if self.feedback.scale != 1.0 and hasattr(scheduler, "refresh"):
            scheduler.refresh()  # a ready controller's cuts: in the LRs from now on

    # ------------------------------------------------------------------ snapshots
    def _outside_model(self) -> list[torch.Tensor]:
        """The tensors the optimizer steps that the model does not own (a learnable loss
        temperature, another module's weights): their values are in neither state dict."""
        own = {id(p) for p in self.model.parameters()}
        seen: set[int] = set()
        out = []
        for g in self.optimizer.param_groups:
            for p in g["params"]:
                if id(p) not in own and id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def snapshot(self) -> None:
        """Take a snapshot of the model and the optimizer now (done automatically)."""
        snaps = self._book.snapshots
        # param groups added since the newest snapshot: lrs a restore can set (one that
        # requires grad cannot be set in place)
        check_group_lrs(
            self.optimizer.param_groups,
            len(snaps[-1]["optimizer"]["param_groups"]) if snaps else 0,
        )
        model_state = self.model.state_dict()
        self._book.add(
            {
                "model": _clone(model_state),
                # buffers registered with persistent=False are not in state_dict()
                "buffers": {
                    name: b.detach().clone()
                    for name, b in self.model.named_buffers()
                    if name not in model_state
                },
                "outside": [(p, p.detach().clone()) for p in self._outside_model()],
                "optimizer": _clone(self.optimizer.state_dict()),
                "scale": self.feedback.scale,
                "check": self.num_checks,
            }
        )
        self._book.good = 0
        self._saved_groups = None

    def _optimizer_state(self, snap: dict[str, Any]) -> dict[str, Any]:
        """The snapshot's optimizer state for the optimizer as it is now: groups added since
        the snapshot (``add_param_group``, e.g. layers unfrozen) keep their current state and
        hyperparameters; the groups the snapshot holds get theirs back."""
        saved: dict[str, Any] = _clone(snap["optimizer"])
        now = self.optimizer.state_dict()
        n = len(saved["param_groups"])
        if len(now["param_groups"]) == n:
            return saved
        if len(now["param_groups"]) < n or any(
            len(a["params"]) != len(b["params"])
            for a, b in zip(saved["param_groups"], now["param_groups"])
        ):
            raise RuntimeError(
                "DivergenceGuard: the optimizer's param groups changed since the last "
                "snapshot in a way other than add_param_group; call guard.snapshot() after "
                "changing them"
            )
        state: dict[Any, Any] = {}
        groups = []
        for i, group in enumerate(now["param_groups"]):
            if i < n:
                old = saved["param_groups"][i]
                for old_id, new_id in zip(old["params"], group["params"]):
                    if old_id in saved["state"]:
                        state[new_id] = saved["state"][old_id]
                groups.append({**old, "params": list(group["params"])})
            else:  # added since the snapshot: as it is now
                for pid in group["params"]:
                    if pid in now["state"]:
                        state[pid] = _clone(now["state"][pid])
                groups.append(_clone(group))
        return {"state": state, "param_groups": groups}

    def _groups(self) -> int:
        """The number of param groups the newest snapshot holds (after a resume, until the
        next snapshot: the newest snapshot's before the checkpoint, as saved)."""
        if self._saved_groups is not None:
            return self._saved_groups
        return len(self._book.snapshots[-1]["optimizer"]["param_groups"])

    @property
    def snapshot_check(self) -> int:
        """The number of checks done when the current snapshot was taken."""
        return int(self._book.snapshots[-1]["check"])

    def restore(self) -> None:
        """Put the last good snapshot back into the model and optimizer (gradients cleared).
        The LRs are not taken from the snapshot: they stay what they were (with an lrkit
        scheduler, what it sets now), times every cut made since they were last set. Every
        other entry of the param groups the snapshot holds comes back (``momentum``,
        ``weight_decay``, ...); an entry added to a group since (``initial_lr``, set by a
        PyTorch scheduler built after the guard) stays, and so do groups added since."""
        self._warn_unattached()  # an lrkit scheduler built since the first check
        snap = self._book.snapshots[-1]
        with torch.no_grad():
            self.model.load_state_dict(snap["model"])
            live = dict(self.model.named_buffers())
            for name, saved in snap["buffers"].items():
                b = live.get(name)
                if b is not None and b.shape == saved.shape and b.dtype == saved.dtype:
                    b.copy_(saved)  # in place, as load_state_dict does: references stay live
                else:
                    owner, _, leaf = name.rpartition(".")
                    setattr(self.model.get_submodule(owner), leaf, saved.clone())
            for p, saved in snap["outside"]:
                p.copy_(saved)
        opt = self.optimizer
        groups, group_dicts = opt.param_groups, list(opt.param_groups)
        lrs = [g["lr"] for g in group_dicts]  # the objects (a tensor LR stays the same tensor)
        values = [lr.clone() if isinstance(lr, torch.Tensor) else lr for lr in lrs]
        state = opt.state  # the mapping, its dicts and tensors: refilled in place below
        before = dict(state)
        # a wrapper sharing its inner optimizer's groups (PostLocalSGDOptimizer): loading
        # rebinds the inner optimizer's list, which must stay the wrapper's
        inner = wrapped_optimizer(opt)
        shared = inner is not None and inner.param_groups is groups
        opt.load_state_dict(self._optimizer_state(snap))
        loaded = inner.param_groups if inner is not None and shared else opt.param_groups
        keep_state_objects(opt, before)
        if opt.state is not state:
            fresh = dict(opt.state)
            state.clear()
            state.update(fresh)
            with contextlib.suppress(AttributeError):  # a wrapper whose state is read-only
                opt.state = state  # (PostLocalSGDOptimizer's, its inner optimizer's)
        # load_state_dict() builds new group dicts and a new list: put the values back into the
        # user's objects, so references held to them (or to the list) stay live. The snapshot's
        # entries come back; an entry added since (``initial_lr``, set by a scheduler built
        # after the snapshot) stays as it is: resuming that scheduler needs it
        for old, new in zip(group_dicts, loaded):
            old.update(new)
        groups[:] = group_dicts
        opt.param_groups = groups
        if inner is not None and shared:
            inner.param_groups = groups
        for p in self.model.parameters():
            p.grad = None
        for p, _ in snap["outside"]:
            p.grad = None
        if self.scheduler is not None and hasattr(self.scheduler, "refresh"):
            for g, lr, v in zip(group_dicts, lrs, values):
                g["lr"] = lr.copy_(v) if isinstance(lr, torch.Tensor) else v
            self.scheduler.refresh()  # the scheduler's LR (schedule x feedback incl. the cut)
            return
        # no lrkit scheduler: the LRs as they are now (whatever set them since the snapshot),
        # cut by the cuts made since they were last scaled (a stock scheduler that recomputes
        # the LR from its base LRs, LambdaLR or OneCycleLR, writes the uncut value back at its
        # next step: documented, the guard cannot see it)
        ratio = self.feedback.scale / self._lr_scale if self._lr_scale > 0 else 0.0
        for g, lr, v in zip(group_dicts, lrs, values):
            g["lr"] = lr.copy_(v * ratio) if isinstance(lr, torch.Tensor) else v * ratio
        self._lr_scale = self.feedback.scale

    # ------------------------------------------------------------------ the check
    def _grads_finite(self) -> bool:
        grads = [
            p.grad for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None
        ]
        if not grads:
            return True
        grads = [g if g.layout == torch.strided else g.coalesce().values() for g in grads]
        # a complex gradient as its real and imaginary parts (a view, no copy): a sum to float32
        # would drop the imaginary part (and warn at every check)
        grads = [torch.view_as_real(g) if g.is_complex() else g for g in grads]
        # Screen with one sum per gradient (one fast pass, no sync) and one sync for the total:
        # NaN/inf anywhere make it non-finite. A finite total proves every element finite; a
        # non-finite one may be an overflow of huge finite values, so it is confirmed exactly.
        device = grads[0].device
        if all(g.device == device for g in grads):
            total = torch.stack([g.sum(dtype=torch.float32) for g in grads]).sum()
            if math.isfinite(float(total)):
                return True
        return all(bool(torch.isfinite(g).all()) for g in grads)

    def check(self, loss: Any) -> bool:
        """Judge this step's ``loss`` (a tensor or number).

        True: the step is good; go on with ``optimizer.step()``. False: the loss was NaN/inf, a
        spike, or the gradients were non-finite; the last good snapshot has been restored and
        the LR cut by ``factor`` -- skip this batch. Raises :class:`DivergenceError` (after
        restoring) when ``max_restores`` restores were already used.

        Under ``torch.distributed`` (DDP) every rank must call it: the loss judged is the mean
        of the ranks' losses (NaN when a rank's loss or gradients are not finite; one
        all-reduce of a number per check), so all ranks restore and cut together and the
        replicas stay identical.
        """
        if not self._unattached_asked:
            self._warn_unattached()
        if isinstance(loss, torch.Tensor):
            if loss.numel() != 1:
                raise ValueError(
                    f"loss must be a number or a one-element tensor, got shape {tuple(loss.shape)}"
                )
            # a real float tensor: one read; any other dtype (bool, complex, integer) is
            # judged by as_metric, as a number is
            if loss.is_floating_point():
                value = float(loss.item())
            else:
                value = as_metric(loss, name="loss")
        else:
            value = as_metric(loss, name="loss")
        if self._resnapshot:  # the model and optimizer are loaded by now: their state
            self._resnapshot = False
            self._book.clear()
            self.snapshot()
            # the next snapshot falls where it would have without the interruption
            self._book.good, self._saved_groups = self._resume
        groups = self.optimizer.param_groups
        if len(groups) > self._groups():  # added since the newest snapshot: lrs it can restore
            check_group_lrs(groups, self._groups())
        self.num_checks += 1
        # a finite loss with non-finite gradients is judged as a NaN loss (the step would
        # write them into the weights); the events and the error say which it was
        bad_grads = self.check_grads and math.isfinite(value) and not self._grads_finite()
        loss_value = value
        if bad_grads:
            value = math.nan
        if get_world_size() > 1:
            value = all_reduce_mean(value)  # every rank judges one number: they restore together
        events = len(self.controller.events)
        action = self._book.check(value, step=self.num_checks)
        if bad_grads and len(self.controller.events) > events:
            self.controller.events[-1].update(loss=loss_value, gradients="not finite")
        if action == "ok":
            # due, or param groups added since the last snapshot (layers unfrozen): now
            if self._book.due() or len(self.optimizer.param_groups) != self._groups():
                self.snapshot()
            return True
        self.feedback.set_scale(self.controller.scale)
        self._book.to_restore()  # drops the state restored last time if it diverged at once
        self.restore()
        if action == "give_up":
            what = (
                f"loss {loss_value!r} with non-finite gradients" if bad_grads else f"loss {value!r}"
            )
            hint = (
                " (with a GradScaler, whose skipped steps have non-finite gradients: "
                "check_grads=False)"
                if bad_grads
                else ""
            )
            raise DivergenceError(
                f"training diverged ({what} at check {self.num_checks}) after "
                f"{self.controller.restores} restore(s) with the LR cut to "
                f"{self.controller.scale:g}x; the model and optimizer were restored to their last "
                f"good state (from check {self.snapshot_check}). Lower the learning rate, "
                f"or raise max_restores{hint}."
            )
        return False

    __call__ = check
    update = check

    @property
    def restores(self) -> int:
        """Restores so far (the controller's count, as ``lrkit.keras.DivergenceGuard``; a
        loaded :meth:`state_dict` brings back the saved count)."""
        return self.controller.restores

    @property
    def scale(self) -> float:
        """The LR multiplier from all cuts so far."""
        return self.feedback.scale

    @property
    def keep(self) -> int:
        """The snapshots kept (``keep=``), as ``lrkit.keras.DivergenceGuard.keep``."""
        return self._book.keep

    @property
    def gave_up(self) -> bool:
        """Whether the guard has given up (a divergence after ``max_restores`` restores: the
        :class:`DivergenceError` raised), read off :attr:`events`, so a loaded
        :meth:`state_dict` brings it back (``lrkit.keras.DivergenceGuard.gave_up`` says
        whether that guard stopped the current ``fit()``)."""
        return any(e["action"] == "give_up" for e in self.controller.events)

    @property
    def restored_at(self) -> list[int]:
        """The check whose loss (or gradients) diverged, for each restore (the give-up's
        restore too): the steps of :attr:`events`, counted from the start of training (a
        loaded :meth:`state_dict` holds the restores made before it was saved), as
        ``lrkit.keras.DivergenceGuard.restored_at``."""
        return [int(e["step"]) for e in self.controller.events]

    @property
    def events(self) -> list[dict[str, Any]]:
        """The controller's record of each restore and give-up, one dict each: ``step`` (the
        check it happened at), ``loss`` (a non-finite one as a string: ``"nan"``, ``"inf"``,
        ``"-inf"``), ``action`` (``"restore"`` or ``"give_up"``) and, for a restore, the
        ``reference`` loss it was judged against (None before any good loss) and the LR
        ``scale`` after the cut; as ``lrkit.keras.DivergenceGuard.events``. A check whose
        loss was finite and whose gradients were not (``check_grads``) has that loss and
        ``gradients="not finite"``."""
        return self.controller.events

    def state_dict(self) -> dict[str, Any]:
        """The decision state (not the snapshots, which live in memory only): the detector's,
        the LR multiplier's, and when the next snapshot is due (``good``: good checks since
        the newest snapshot; ``groups``: the param groups it holds)."""
        if self._resnapshot:  # loaded, not checked since: the state as loaded
            good, groups = self._resume[0], self._resume[1]
        else:
            good, groups = self._book.good, None
        return {
            "controller": self.controller.state_dict(),
            "feedback": self.feedback.state_dict(),
            "good": good,
            "groups": self._groups() if groups is None else groups,
        }

    def load_state_dict(
        self, state_dict: Any = _renamed.UNSET, *, state: Any = _renamed.UNSET
    ) -> None:
        """Restore a :meth:`state_dict` (also one saved before the ``controller`` rename); the
        check count goes on from the saved one. The snapshots taken before (of the state the
        checkpoint replaces) are dropped: the next :meth:`check` snapshots the model and the
        optimizer as loaded, so load theirs before that check. The following snapshots fall
        on the checks they would have fallen on without the interruption (a state saved
        without ``good`` and ``groups``, by an older lrkit: counted from that check).

        The argument is named ``state_dict``, as in PyTorch's own ``load_state_dict``
        methods; ``state=`` (its name in lrkit 0.1.0) still works but is deprecated."""
        state_dict = _renamed.keyword(
            "DivergenceGuard.load_state_dict()",
            "state",
            "state_dict",
            state,
            state_dict,
            default=_renamed.UNSET,
        )
        if state_dict is _renamed.UNSET:
            raise TypeError(
                "DivergenceGuard.load_state_dict() missing 1 required argument: 'state_dict'"
            )
        if (
            not isinstance(state_dict, dict)
            or "feedback" not in state_dict
            or ("controller" not in state_dict and "core" not in state_dict)
        ):
            raise ValueError(
                "state_dict must be a dict from DivergenceGuard.state_dict() (keys 'controller' "
                f"and 'feedback'), got {V.dict_given(state_dict)}"
            )
        good = V.integer("state_dict['good']", state_dict.get("good", 0), 0)
        groups = state_dict.get("groups")
        if groups is not None:
            groups = V.integer("state_dict['groups']", groups, 0)
        previous = self.controller.state_dict()
        self.controller.load_state_dict(
            state_dict["controller"] if "controller" in state_dict else state_dict["core"]
        )
        try:
            self.feedback.load_state_dict(state_dict["feedback"])
        except Exception:
            self.controller.load_state_dict(previous)
            raise
        self.num_checks = self.controller.num_checks  # each check is one of the controller's
        # the optimizer's LRs (saved in the optimizer's own checkpoint) include the loaded cuts
        self._lr_scale = self.feedback.scale
        # the snapshots hold the state from before the checkpoint (e.g. a fresh model): they
        # are replaced by one of the state now and again at the next check, by which time the
        # model's and the optimizer's checkpoints are loaded whatever the order of the loads
        self._book.clear()
        self.snapshot()
        self._resnapshot = True
        self._resume = (good, groups)
