"""Hugging Face ``transformers.Trainer`` glue for lrkit (``pip install 'lrkit[hf]'``, which brings
``accelerate``, needed by ``Trainer``).

* :class:`LRKitMixin` / :class:`Trainer` -- build an lrkit scheduler in ``create_scheduler``, on
  the optimizer the Trainer made (its weight-decay / no-decay parameter groups are kept)::

      trainer = lrkit.hf.Trainer(model=model, args=args, train_dataset=ds,
                                 schedule=lambda n: S.cosine(args.learning_rate, total_steps=n))

* :class:`ReportMetric` -- a ``TrainerCallback`` that feeds an evaluation metric
  (``eval_loss`` by default) to the scheduler's feedback controller after each evaluation.
* :func:`find_lr` -- the range test on a Trainer (its model, optimizer, collator and train
  dataset, ``compute_loss``), restoring everything it touched.

Passing ``optimizers=(opt, lrkit.torch.scheduler(opt, ...))`` to the stock ``Trainer`` works too,
but the optimizer is then yours: the Trainer's weight-decay parameter groups are not built.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _renamed
from . import _validate as V
from ._imports import require
from ._runtime import caller_level
from .feedback import REPORT_HINTS, check_controllers, metric_mode, warn_against_metric
from .finder import FinderResult, SweepOptions
from .finder.sweep import check_finder_kwargs
from .schedules import Schedule, SpecError, as_schedule, holds_callable, is_schedule_list

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .finder import SweepKwargs

transformers = require("transformers", "hf")
torch = require("torch", "hf")

from .torch import find_lr as _torch_find_lr  # noqa: E402
from .torch import lrkit_schedulers, report, scheduler  # noqa: E402

__all__ = ["LRKitMixin", "ReportMetric", "Trainer", "find_lr"]


# ----------------------------------------------------------------------------- scheduler


class LRKitMixin:
    """Mix into a ``transformers.Trainer`` subclass: ``create_scheduler`` builds
    ``lrkit.torch.scheduler(optimizer, schedule, feedback=feedback)``.

    ``schedule`` is an lrkit schedule, a spec string, a dict, or a callable
    ``schedule(num_training_steps)`` returning one of those (the step count is known only when
    training starts). The schedule gives absolute LRs; each parameter group follows it times
    its ratio to the optimizer's default ``lr`` (``args.learning_rate`` for the optimizer the
    Trainer builds, whose groups all get 1; your own optimizer's ``lr=`` for one passed in
    ``optimizers=``). ``feedback``: an
    :mod:`lrkit.feedback` controller, fed by :class:`ReportMetric`; every ``train()`` starts
    it from its state when the Trainer was made (as the Trainer's own schedulers start afresh;
    ``hyperparameter_search`` trials too), and ``trainer.lrkit_feedback`` is the same object.
    With ``schedule=None`` the Trainer's own scheduler is used. The scheduler's state (step,
    feedback) goes into every checkpoint and ``train(resume_from_checkpoint=...)`` continues
    exactly.
    """

    def __init__(self, *args: Any, schedule: Any = None, feedback: Any = None, **kwargs: Any):
        if schedule is None and feedback is not None:
            raise ValueError("feedback needs a schedule: pass schedule=... as well")
        if isinstance(schedule, type):  # e.g. S.cosine un-called: it would build cosine(n)
            raise ValueError(
                f"schedule must be a schedule or a callable schedule(num_training_steps), got the "
                f"class {schedule.__name__} itself: build one, e.g. schedule=lambda n: "
                "S.cosine(lr, total_steps=n)"
            )
        if schedule is not None and not isinstance(schedule, (Schedule, str, Mapping)):
            if not callable(schedule):
                raise ValueError(
                    "schedule must be an lrkit schedule, a spec string, a dict or a callable "
                    f"schedule(num_training_steps), got {V.fmt(schedule)}"
                )
            V.takes("schedule", schedule, "schedule(num_training_steps)", 1)  # now, not at train()
        check_controllers(feedback)  # now, as a bad schedule, not when train() starts
        optimizers = kwargs.get("optimizers", (None, None))
        if schedule is not None and optimizers is not None and optimizers[1] is not None:
            raise ValueError(
                "schedule and optimizers=(..., lr_scheduler) both set the scheduler: pass one"
            )
        super().__init__(*args, **kwargs)
        if isinstance(schedule, (str, Mapping)):  # a spec: checked now, not when train() starts
            try:
                schedule = as_schedule(schedule, nonnegative=True)
            except SpecError:  # says "invalid schedule spec at position ...", shows where
                raise
            except ValueError as exc:
                raise ValueError(f"schedule: {exc}") from None
        self.lrkit_schedule = schedule
        self.lrkit_feedback = feedback
        # every train() starts the controller(s) from this state, as the Trainer's own
        # schedulers start afresh (a resumed run then loads the checkpoint's state)
        controllers = feedback if isinstance(feedback, (list, tuple)) else [feedback]
        self._lrkit_feedback_start = [
            (c, copy.deepcopy(c.state_dict()))
            for c in controllers
            if callable(getattr(c, "state_dict", None)) and not isinstance(c, type)
        ]  # (a list's length is checked by lrkit.torch.scheduler when training starts)

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        if self.lrkit_schedule is None:
            return super().create_scheduler(num_training_steps, optimizer)  # type: ignore[misc]
        if getattr(self, "lr_scheduler", None) is None:
            opt = optimizer if optimizer is not None else self.optimizer  # type: ignore[attr-defined]
            spec = self.lrkit_schedule
            if not isinstance(spec, (Schedule, str, Mapping)):
                spec = spec(num_training_steps)
            for c, start in self._lrkit_feedback_start:
                c.load_state_dict(copy.deepcopy(start))
            self.lr_scheduler = scheduler(opt, spec, feedback=self.lrkit_feedback)
            _warn_unused_schedule_args(self.args, num_training_steps)  # type: ignore[attr-defined]
            _warn_ends_early(
                self.lr_scheduler, num_training_steps, per_group=is_schedule_list(spec)
            )
            _warn_unreported(self.lrkit_feedback, self.callback_handler.callbacks)  # type: ignore[attr-defined]
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def _load_optimizer_and_scheduler(self, checkpoint: Any) -> None:
        """transformers' own load, then the warnings of the lrkit schedulers' loads issued
        again: transformers loads the scheduler's state inside ``catch_warnings`` and issues
        no ``UserWarning`` again, so a resume with another schedule (another ``max_steps``,
        ``num_train_epochs`` or data size) would change the LRs without a word."""
        for s in lrkit_schedulers(getattr(self, "lr_scheduler", None)):
            s.load_warnings = ()  # only those of this load
        super()._load_optimizer_and_scheduler(checkpoint)  # type: ignore[misc]
        for s in lrkit_schedulers(getattr(self, "lr_scheduler", None)):
            for message in s.load_warnings:
                warnings.warn(message, stacklevel=caller_level())

    def train(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().train(*args, **kwargs)  # type: ignore[misc]
        finally:  # a train() that raised (Ctrl-C, out of memory) leaves no report pending
            for callback in self.callback_handler.callbacks:  # type: ignore[attr-defined]
                if isinstance(callback, ReportMetric):
                    callback._disarm()


def _warn_ends_early(sched: Any, num_training_steps: int, *, per_group: bool) -> None:
    """A ``UserWarning`` when a schedule is 0 over the last steps of the run (two or more): a
    schedule written for fewer steps than the Trainer runs (``cosine(1e-3, 10)`` in a run of
    30) trains the rest at LR 0. A schedule holding a Python function is not read (its
    function is called only at the steps it trains)."""
    n = int(num_training_steps)
    last = n - 1
    if n < 3:
        return
    # one schedule: each group follows a multiple of it (a frozen group at 0 aside)
    for g, schedule in enumerate(sched.schedules if per_group else sched.schedules[:1]):
        if holds_callable(schedule) or schedule(last) != 0 or schedule(last - 1) != 0:
            continue
        lo, gap = last - 1, 1  # back by doubling gaps to a step above 0 (or step 0) ...
        while lo > 0 and schedule(lo) == 0:
            gap *= 2
            lo = max(last - gap, 0)
        lrs = schedule.values(np.arange(lo, n))  # ... then the steps from there, each read
        above = np.flatnonzero(lrs != 0)
        if not above.size:  # 0 from step 0 on: a schedule that never trains, not one cut short
            continue
        first = lo + int(above[-1]) + 1
        whose = f"param group {g}'s schedule" if per_group else "the schedule"
        warnings.warn(
            f"{whose} is 0 from step {first} on: {n - first} of the {n} steps the Trainer runs "
            "train at LR 0 (a schedule written for fewer steps?); write it for the run's "
            "length, or pass a function of it: schedule=lambda n: S.cosine(1e-3, total_steps=n)",
            UserWarning,
            stacklevel=caller_level(),
        )
        return


def _warn_unreported(feedback: Any, callbacks: Iterable[Any]) -> None:
    """A ``feedback=`` controller with no :class:`ReportMetric` among the Trainer's callbacks
    would receive no metric (the Trainer's own ``reduce_lr_on_plateau`` steps itself; an
    lrkit controller is fed by the callback): a ``UserWarning`` saying so, when training
    starts."""
    if feedback is None or any(isinstance(c, ReportMetric) for c in callbacks):
        return
    warnings.warn(
        "feedback= is set but the Trainer has no lrkit.hf.ReportMetric callback: the "
        "controller receives no metric and never cuts the LR; add "
        "callbacks=[ReportMetric('eval_loss')]",
        UserWarning,
        stacklevel=caller_level(),
    )


def _warn_unused_schedule_args(args: Any, num_training_steps: int) -> None:
    """Warn about the ``TrainingArguments`` of the Trainer's own scheduler that were set but
    are not used once an lrkit schedule sets every LR (a warmup would silently be lost)."""
    unused: list[str] = []
    get_warmup = getattr(args, "get_warmup_steps", None)
    warmup = get_warmup(num_training_steps) if callable(get_warmup) else 0
    if warmup:
        unused.append(f"warmup_steps ({warmup} step{'' if warmup == 1 else 's'})")
    field = getattr(type(args), "__dataclass_fields__", {}).get("lr_scheduler_type")
    kind = getattr(args, "lr_scheduler_type", None)
    value = getattr(kind, "value", kind)
    if (
        field is not None
        and kind is not None
        and value != getattr(field.default, "value", field.default)
    ):
        unused.append(f"lr_scheduler_type={value!r}")
    if getattr(args, "lr_scheduler_kwargs", None):
        unused.append(f"lr_scheduler_kwargs={args.lr_scheduler_kwargs!r}")
    if unused:
        warnings.warn(
            f"lrkit.hf: the TrainingArguments' {', '.join(unused)} are not used: the lrkit "
            "schedule sets every LR (put a warmup into it, e.g. S.with_warmup(schedule, "
            "warmup_steps=...))",
            UserWarning,
            stacklevel=caller_level(),
        )


class Trainer(LRKitMixin, transformers.Trainer):  # type: ignore[misc,name-defined]
    """``transformers.Trainer`` with ``schedule=`` and ``feedback=`` (see :class:`LRKitMixin`)."""


# ----------------------------------------------------------------------------- feedback


#: the names users reach for in ReportMetric, and the option meant
_REPORT_HINTS = {
    **REPORT_HINTS,
    "metric_for_best_model": "use monitor=; without it, args.metric_for_best_model is read",
}


class ReportMetric(transformers.TrainerCallback):  # type: ignore[misc,name-defined]
    """Feed an evaluation metric to the lrkit scheduler's feedback controller after each
    evaluation of ``train()`` (``on_evaluate``), before the checkpoint of that step is saved.
    Only the evaluations the training loop makes after a step or an epoch are reported, as the
    Trainer's own ``ReduceLROnPlateau`` is stepped (whichever callback asked for them, listed
    before or after this one): not the one of ``eval_on_start=True`` (a
    resumed run repeats it on the checkpoint's weights), and not a ``trainer.evaluate()`` on
    its own, before, after or between ``train()`` calls, one that raised included (they leave
    the LRs alone).

    The metric is ``monitor`` (e.g. ``"eval_loss"``), else ``args.metric_for_best_model``
    (with the ``eval_`` prefix), else ``"eval_loss"``. With several eval datasets
    (``eval_dataset={"a": ..., "b": ...}``, metrics ``eval_a_loss``, ``eval_b_loss``, ...) the
    Trainer evaluates each in turn: the metric is reported once per evaluation round, from the
    dataset that has it. A round none of whose evaluations has the metric is skipped with a
    warning when it ends (at the next step or epoch, or when ``train()`` ends); a Trainer whose
    scheduler is not an lrkit scheduler with ``feedback``, with a warning at once. lrkit
    schedulers inside PyTorch's ``SequentialLR`` or ``ChainedScheduler`` are found there; a
    controller shared by several of them is updated once per evaluation.
    """

    @V.checked_keywords("lrkit.hf.ReportMetric", hints=_REPORT_HINTS)
    def __init__(self, monitor: str | None = None) -> None:
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise ValueError(f"monitor must be the name of a logged metric, got {V.fmt(monitor)}")
        self.monitor = monitor
        # set from the end of a step or an epoch until the next one begins: the training loop
        # evaluates there exactly when it has decided to (``control.should_evaluate``, read
        # after every callback's ``on_step_end``/``on_epoch_end``, whatever their order), once
        # per eval dataset (``eval_dataset={"a": ..., "b": ...}``: one ``on_evaluate`` each);
        # cleared once the metric is reported, so a round reports it once
        self._armed = False
        # (metric, keys seen) while this round's evaluations have lacked the metric: warned
        # when the round ends without it
        self._missing: tuple[str, set[str]] | None = None
        self._mode_checked = False  # the controllers' mode against the metric's: once a train

    def _disarm(self) -> None:
        """Report nothing until the training loop next ends a step or an epoch (when
        ``train()`` begins, and, with :class:`LRKitMixin`, when it raises: a round cut short
        is not warned about)."""
        self._armed = False
        self._missing = None

    def _end_round(self) -> None:
        """The evaluations of the round (if any) are over: warn if none had the metric."""
        missing, self._missing = self._missing, None
        self._armed = False
        if missing is not None:
            key, keys = missing
            warnings.warn(
                f"ReportMetric: metric {key!r} is not in the evaluation metrics (available: "
                f"{sorted(keys)}); feedback skipped",
                RuntimeWarning,
                stacklevel=caller_level(),
            )

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._disarm()
        self._mode_checked = False

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._end_round()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._end_round()

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._end_round()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._end_round()
        self._armed = True

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._end_round()
        self._armed = True

    @staticmethod
    def _check_mode(args: Any, key: str, sched: Any) -> None:
        """Warn when a controller minimises a metric to maximise, or the other way round:
        ``metric_for_best_model`` with a ``greater_is_better`` set against the Trainer's
        default for its name, else a loss or an accuracy by name."""
        best = getattr(args, "metric_for_best_model", None)
        greater = getattr(args, "greater_is_better", None)
        mode: str | None = metric_mode(key)
        why = ""
        # greater_is_better counts where it was set: the Trainer fills it in from the name
        # alone (True but for a name ending in "loss", a word error rate included)
        if best and key in (best, f"eval_{best}") and greater is not None:
            if bool(greater) != (not best.endswith("loss")):
                mode, why = ("max" if greater else "min"), f" (greater_is_better={bool(greater)})"
        if mode is not None:
            fbs = [s.feedback for s in lrkit_schedulers(sched)]
            warn_against_metric("ReportMetric", "feedback controller", key, fbs, mode, why=why)

    def _key(self, args: Any) -> str:
        if self.monitor is not None:
            return self.monitor
        name = getattr(args, "metric_for_best_model", None)
        if not name:
            return "eval_loss"
        return name if name.startswith("eval_") else f"eval_{name}"

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any
    ) -> None:
        if not self._armed:  # not an evaluation of the training loop: no LR changes
            return
        # the lrkit schedulers in accelerate's wrapper, SequentialLR or ChainedScheduler
        sched = kwargs.get("lr_scheduler")
        if not any(s.feedback is not None for s in lrkit_schedulers(sched)):
            self._disarm()  # said once per round
            warnings.warn(
                "ReportMetric: the Trainer's scheduler is not an lrkit scheduler with a feedback "
                "controller (lrkit.hf.Trainer(schedule=..., feedback=...))",
                RuntimeWarning,
                stacklevel=caller_level(),
            )
            return
        key = self._key(args)
        value = (metrics or {}).get(key)
        if value is None:  # another eval dataset of this round may have it: still armed
            seen = set() if self._missing is None else self._missing[1]
            self._missing = (key, seen | set(metrics or {}))
            return
        self._disarm()  # one report per round
        if not self._mode_checked:
            self._mode_checked = True
            self._check_mode(args, key, sched)
        # a controller shared by two: updated once; in a SequentialLR only the current phase
        # sets the LRs
        report(sched, value=value)


# ----------------------------------------------------------------------------- finder


#: the keywords of lrkit.torch.find_lr that this finder reads off the Trainer instead
_HF_HINTS = {
    "amp": "read off the TrainingArguments: bf16=, fp16=",
    "accumulation_steps": "read off the TrainingArguments: gradient_accumulation_steps=",
    "gradient_accumulation_steps": "read off the TrainingArguments",
    "max_grad_norm": "read off the TrainingArguments: max_grad_norm=",
    "max_steps": "use total_steps; without it, the TrainingArguments' max_steps is read",
}


def find_lr(
    trainer: Any,
    *,
    options: SweepOptions | None = None,
    val_data: Iterable[Any] | None = None,
    probe_data: Iterable[Any] | None = None,
    snapshot: str = "memory",
    max_skipped: int = 10,
    progress: bool = False,
    callback: Callable[[int, float, float], None] | None = None,
    warn: bool = True,
    **sweep_options: Unpack[SweepKwargs],
) -> FinderResult:
    """Run the LR range test on a ``transformers.Trainer`` and restore everything.

    The sweep trains ``trainer.model`` with the Trainer's optimizer (the one passed in
    ``optimizers=``, else the one ``create_optimizer()`` builds from ``args``: its parameter
    groups and weight decay), on the batches of ``get_train_dataloader()`` (train dataset,
    collator, sampler, batch size), with ``trainer.compute_loss``,
    ``args.gradient_accumulation_steps``, ``bf16``/``fp16`` autocast and the gradient clipping
    of ``args.max_grad_norm`` (1.0 by default, as ``train()`` clips). Each sweep step's batches
    are weighed as ``train()`` weighs an accumulation window: ``compute_loss`` gets the
    ``num_items_in_batch`` that ``get_batch_samples`` counts over the window (the label tokens,
    for a model that accepts loss kwargs, e.g. GPT-2, or with a ``compute_loss_func``), and the
    loss is divided by the accumulation steps only when ``training_step`` divides it (a model
    without loss kwargs), so the sweep steps on ``train()``'s gradients. The sweep options are
    those of :class:`lrkit.finder.SweepOptions` (keywords or ``options=``); ``total_steps``
    defaults to the optimizer steps ``train()`` will run (``args.max_steps``, else the epochs
    times the batches per epoch). Afterwards the model,
    the optimizer (or its absence: ``trainer.optimizer`` is ``None`` again if it was), the RNGs
    and the Trainer are as before (see :func:`lrkit.torch.find_lr`). ``val_data`` (a few
    batches in the collator's format, never trained on, e.g.
    ``list(itertools.islice(trainer.get_eval_dataloader(), 4))``) is the held set instead of
    the first training batch, as in :func:`lrkit.torch.find_lr`. ``probe_data`` (batches in the
    collator's format, e.g. ``list(trainer.get_eval_dataloader())``) runs the probe runs after
    the sweep, scored on it, and the suggestions are scaled from the best (see
    :func:`lrkit.torch.find_lr`). ``progress=True`` shows a progress bar;
    ``callback(i, lr, loss)`` is called after each sweep step; ``snapshot``, ``warn`` and
    ``max_skipped`` are those of :func:`lrkit.torch.find_lr` (``"disk"``: the copy of the
    model and optimizer in a temporary directory; ``False``: no
    :class:`lrkit.finder.LRFinderWarning`; how many steps in a row the fp16 gradient scaler may
    skip before the sweep gives up).

    Use the result with ``args.learning_rate = result.suggestion`` (before ``train()``) or a
    schedule:
    ``lrkit.hf.Trainer(..., schedule=lambda n: S.onecycle(result.max_lr, total_steps=n))``.
    """
    check_finder_kwargs("lrkit.hf.find_lr", sweep_options, finder=find_lr, hints=_HF_HINTS)
    if not isinstance(trainer, transformers.Trainer):
        raise ValueError(f"trainer must be a transformers.Trainer, got {type(trainer).__name__}")
    options = SweepOptions.build(options, **sweep_options)  # validated before anything is built
    V.optional_callable("callback", callback, "callback(i, lr, loss)", 3)
    progress = V.flag("progress", progress)
    warn = V.flag("warn", warn)
    max_skipped = V.integer("max_skipped", max_skipped, 0)
    args = trainer.args
    rng = torch.get_rng_state()
    created = trainer.optimizer is None
    prepared = None
    try:  # whatever fails, the Trainer is left as it was (no optimizer of the sweep's kept)
        optimizer = trainer.create_optimizer() if created else trainer.optimizer
        prepared = trainer.get_train_dataloader()
        torch.set_rng_state(rng)  # building the loader may draw; the sweep sees the caller's RNG
        data = getattr(prepared, "base_dataloader", prepared)
        if options.total_steps is None:  # the steps train() will run, as the Trainer counts them
            planned = int(args.max_steps) if args.max_steps > 0 else _epoch_steps(args, data)
            if planned >= 1:
                options = SweepOptions.build(options, total_steps=planned)
        amp: Any = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else False
        device = next(trainer.model.parameters()).device
        scaler = torch.amp.GradScaler(device.type) if args.fp16 else None

        def step(model: Any, batch: Any) -> Any:  # a held batch's loss (val_data, probes)
            with trainer.compute_loss_context_manager():
                return trainer.compute_loss(model, batch)

        def window(batches: list[Any]) -> tuple[list[Any], Callable[[Any, Any], Any]]:
            return _window_step(trainer, batches, device)

        clip = None
        if args.max_grad_norm is not None and args.max_grad_norm > 0:  # as train() clips

            def clip(opt: Any) -> None:
                torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), args.max_grad_norm)

        with _as_trained(trainer):
            result: FinderResult = _torch_find_lr(
                trainer.model,
                optimizer,
                None,
                data,
                step=step,
                options=options,
                accumulation_steps=int(args.gradient_accumulation_steps),
                amp=amp,
                scaler=scaler,
                device=device,
                snapshot=snapshot,
                val_data=val_data,
                probe_data=probe_data,
                progress=progress,
                callback=callback,
                warn=warn,
                max_skipped=max_skipped,
                before_step=clip,
                window_step=window,
            )
        return result
    finally:
        if created:
            trainer.optimizer = None
        registry = getattr(trainer.accelerator, "_dataloaders", None)
        if prepared is not None and isinstance(registry, list):
            registry[:] = [d for d in registry if d is not prepared]
        torch.set_rng_state(rng)  # (the sweep restores it too; this covers a failure before)


@contextlib.contextmanager
def _as_trained(trainer: Any) -> Any:
    """The model as ``train()`` trains it, for the sweep: activation (gradient) checkpointing
    (``args.gradient_checkpointing``, with its kwargs) and NEFTune's noisy embeddings
    (``args.neftune_noise_alpha``) turned on as ``train()`` turns them on, and off again
    afterwards where they were off."""
    args, model = trainer.args, trainer.model
    undo: list[Callable[[], None]] = []
    try:
        wanted = getattr(args, "activation_checkpointing", None)
        if wanted is None:
            wanted = getattr(args, "gradient_checkpointing", False)
        on = getattr(model, "is_activation_checkpointing", None)  # transformers 5's name
        if on is None:
            on = getattr(model, "is_gradient_checkpointing", True)
        if wanted and not on:
            kwargs = dict(
                getattr(args, "activation_checkpointing_kwargs", None)
                or getattr(args, "gradient_checkpointing_kwargs", None)
                or {}
            )

            # enabling it also makes the input embeddings' output require grad (a hook that
            # disabling it leaves, unless the model had one before): removed too
            def hooked() -> bool:
                names = ("_require_grads_hooks", "_require_grads_hook")
                return any(getattr(model, a, None) for a in names)

            if not hooked():

                def unhook() -> None:
                    if hooked() and hasattr(model, "disable_input_require_grads"):
                        model.disable_input_require_grads()

                undo.append(unhook)
            if hasattr(model, "activation_checkpointing_enable"):  # transformers 5
                every, offload = kwargs.pop("every_n_layers", 1), kwargs.pop("offload", False)
                model.activation_checkpointing_enable(
                    activation_checkpointing_kwargs=kwargs or None,
                    every_n_layers=every,
                    offload=offload,
                )
                undo.append(model.activation_checkpointing_disable)
            elif hasattr(model, "gradient_checkpointing_enable"):  # transformers 4
                kwargs.pop("every_n_layers", None)  # (transformers 5's keys)
                kwargs.pop("offload", None)
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs or None)
                undo.append(model.gradient_checkpointing_disable)
        alpha = getattr(args, "neftune_noise_alpha", None)
        if alpha is not None:
            try:  # transformers 5; 4.x has it in trainer_utils
                hook = importlib.import_module("transformers.integrations.neftune")
            except ImportError:  # pragma: no cover - transformers 4.x
                hook = importlib.import_module("transformers.trainer_utils")
            inner = trainer.accelerator.unwrap_model(model)
            inner = getattr(getattr(inner, "base_model", None), "model", inner)  # a PEFT model
            emb = inner.get_input_embeddings()
            had = emb.__dict__.get("neftune_noise_alpha", _renamed.UNSET)
            emb.neftune_noise_alpha = alpha
            handle = emb.register_forward_hook(hook.neftune_post_forward_hook)

            def off() -> None:
                handle.remove()
                if had is _renamed.UNSET:
                    del emb.neftune_noise_alpha
                else:
                    emb.neftune_noise_alpha = had

            undo.append(off)
        yield
    finally:
        for fn in reversed(undo):
            fn()


def _window_step(
    trainer: Any, batches: list[Any], device: Any
) -> tuple[list[Any], Callable[[Any, Any], Any]]:
    """The batches of one optimizer step and ``step(model, batch)`` giving each one's loss as
    ``train()`` weighs it: ``compute_loss`` gets the ``num_items_in_batch`` that
    ``get_batch_samples`` counts over the whole window (the label tokens, for a model that
    accepts loss kwargs or a ``compute_loss_func``), and the loss is divided by the window's
    batches only when it is not already scaled for the accumulation (``training_step``'s rule:
    ``loss_is_scaled_for_ga`` if set, else a model that accepts loss kwargs given
    ``num_items_in_batch``, or a ``compute_loss_func``)."""
    batches, items = trainer.get_batch_samples(iter(batches), len(batches), device)
    scaled = getattr(trainer, "loss_is_scaled_for_ga", None)
    if scaled is None:
        scaled = (
            bool(getattr(trainer, "model_accepts_loss_kwargs", False)) and items is not None
        ) or getattr(trainer, "compute_loss_func", None) is not None
    accum = len(batches)

    def step(model: Any, batch: Any) -> Any:
        with trainer.compute_loss_context_manager():
            loss = trainer.compute_loss(model, batch, num_items_in_batch=items)
        return loss if scaled or accum == 1 else loss / accum

    return batches, step


def _epoch_steps(args: Any, data: Any) -> int:
    """The optimizer steps of ``args.num_train_epochs`` epochs over ``data`` as the Trainer
    counts them (a last, partial accumulation is a step); 0 for data without a length (an
    ``IterableDataset``, which the Trainer trains only with ``max_steps``)."""
    try:
        batches = len(data)
    except TypeError:  # a DataLoader over an IterableDataset has __len__, which raises
        return 0
    accum = max(1, int(args.gradient_accumulation_steps))
    return int(math.ceil(float(args.num_train_epochs) * max(1, math.ceil(batches / accum))))
