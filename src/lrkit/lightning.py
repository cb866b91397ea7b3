"""PyTorch Lightning glue for lrkit (``pip install 'lrkit[lightning]'``).

* :class:`LRFinder` -- a callback that runs the range test (:func:`lrkit.torch.find_lr`) before
  ``fit`` from the module's own ``training_step``, ``configure_optimizers`` and train
  dataloader, restores everything, optionally sets the LR (``self.lr``/``self.learning_rate``)
  and/or installs a schedule built from the result, and logs the suggestion and the plot through
  the trainer's loggers.
* :class:`ReportMetric` -- a callback that feeds a validation metric to the feedback controller
  of every lrkit scheduler after each validation run (plateau annealing), reading the metric name
  from the scheduler config's ``"monitor"`` key.

The plateau recipe, in ``configure_optimizers``::

    sched = lrkit.torch.scheduler(opt, "cosine(0.1, 1000)", feedback=ReduceOnPlateau(patience=2))
    return {"optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "interval": "step", "monitor": "val_loss"}}

and ``Trainer(callbacks=[lrkit.lightning.ReportMetric()])``.

``lightning.pytorch`` is used when the ``lightning`` package is installed (and
``pytorch_lightning`` was not imported first), else ``pytorch_lightning``.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import _validate as V
from ._figure import save_figure
from ._imports import require
from ._runtime import GlobalRNGState, caller_level, data_loaders
from .feedback import REPORT_HINTS, metric_mode, warn_against_metric
from .finder import (
    FinderResult,
    LRFinderWarning,
    Sweep,
    SweepOptions,
    check_batches_type,
)
from .finder.sweep import check_finder_kwargs, replay_result
from .schedules import as_schedule, is_schedule_list

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .finder import SweepKwargs

__all__ = ["LRFinder", "ReportMetric"]


def _lightning() -> ModuleType:
    # the package already imported (None there: blocked, as a test blocks a package)
    if sys.modules.get("pytorch_lightning") is not None and "lightning.pytorch" not in sys.modules:
        return sys.modules["pytorch_lightning"]
    try:
        return importlib.import_module("lightning.pytorch")
    except ImportError:
        return require("pytorch_lightning", "lightning")


pl = _lightning()
torch = require("torch", "lightning")

from .torch import (  # noqa: E402
    LRKitScheduler,
    all_reduce_mean,
    find_lr,
    get_world_size,
    lrkit_schedulers,
    report,
)

_parsing = importlib.import_module(f"{pl.__name__}.utilities.parsing")
_combined = importlib.import_module(f"{pl.__name__}.utilities.combined_loader")
_types = importlib.import_module(f"{pl.__name__}.utilities.types")
_signature = importlib.import_module(f"{pl.__name__}.utilities.signature_utils")
_helpers = importlib.import_module(f"{pl.__name__}.utilities.model_helpers")

_LR_ATTRS = ("lr", "learning_rate")


# ----------------------------------------------------------------------------- finder


#: the keywords of Lightning's LearningRateFinder and Tuner.lr_find, and the ones meant
_LIGHTNING_HINTS = {
    "update_attr": "use set_lr; attr_name names the attribute",
    "num_training_steps": "use num_iter",
    "num_training": "use num_iter",
    "accumulation_steps": "read off the Trainer: accumulate_grad_batches=",
    "gradient_accumulation_steps": "read off the Trainer: accumulate_grad_batches=",
    "amp": "read off the Trainer: precision=",
}


#: the names of the temporary checkpoints of Lightning's tuner callbacks (``BatchSizeFinder``,
#: ``LearningRateFinder``): each saves the run as its ``on_fit_start`` begins and restores it
#: at its end, which leaves ``trainer.ckpt_path`` naming that file in a fit that resumes nothing
_TUNER_CHECKPOINTS = (".scale_batch_size_", ".lr_find_")


class LRFinder(pl.Callback):  # type: ignore[misc,name-defined]
    """Run the LR range test when ``fit`` starts, on the module's own training step.

    The sweep uses the optimizer ``configure_optimizers`` returned, the trainer's train
    dataloader (several loaders combined as ``fit`` combines them, ``"max_size_cycle"``),
    ``training_step`` (with ``self.log`` muted; ``batch_idx`` passed when it takes one; a
    ``None`` it returns skips the batch), the trainer's precision (its ``convert_input``, e.g.
    float64 batches under ``"64-true"``, and its context), the batch hooks fit calls
    (``on_before_batch_transfer``, ``transfer_batch_to_device``, ``on_after_batch_transfer``,
    of the module or the datamodule; once per batch drawn, ``val_data``'s too),
    ``accumulate_grad_batches`` and gradient clipping (``configure_gradient_clipping``). Each
    ``fit`` sweeps anew, except one resumed from a checkpoint, and one with
    ``Trainer(fast_dev_run=...)``, which skips the sweep with an
    :class:`lrkit.finder.LRFinderWarning` and leaves the LR as it is (as Lightning's
    ``Tuner.lr_find`` does). Afterwards the module's
    weights, buffers and grads, the optimizer, the RNGs and the dataloader's generator are
    exactly as before (see :func:`lrkit.torch.find_lr`). The sweep options are those of
    :class:`lrkit.finder.SweepOptions` (``start_lr``, ``num_iter``, ``rule``, ...), as keywords
    or ``options=``; ``total_steps`` defaults to ``trainer.estimated_stepping_batches``, the
    steps the run will train for. ``val_data`` (a few batches, never trained on, e.g. some of
    the validation loader's) is the held set instead of the first training batch, as in
    :func:`lrkit.torch.find_lr`; ``probe_data`` (e.g. the validation loader) runs the probe
    runs after the sweep, scored on it, and the suggestions are scaled from the best (see
    :func:`lrkit.torch.find_lr`; the checkpoint keeps them too); ``progress=True`` shows a
    progress bar on rank 0.
    ``snapshot``, ``callback``, ``warn`` and ``max_skipped`` are those of
    :func:`lrkit.torch.find_lr` (``max_skipped``: how many steps in a row a mixed-precision
    gradient scaler may skip before the sweep gives up):
    ``snapshot="disk"`` keeps the copy of the model and optimizer in a temporary directory
    instead of memory, ``callback(i, lr, loss)`` is called after each sweep step (on every
    rank), and ``warn=False`` leaves the :class:`lrkit.finder.LRFinderWarning` of an
    unreliable result unsaid (``result.warnings`` still holds it).

    Then, with ``set_lr=True``, the suggestion is written to the module's LR attribute
    (``attr_name``, default: the first of ``lr``/``learning_rate`` found on the module or its
    ``hparams``; an ``attr_name`` the module lacks is a one-line ``ValueError``, with
    ``schedule`` too) and ``configure_optimizers`` is called again, so the run trains at it. With
    ``schedule``, a callable ``schedule(result, total_steps)`` returning an lrkit schedule (or a
    spec string or dict), one :class:`lrkit.torch.LRKitScheduler` stepped every optimizer step
    drives the LR, e.g. ``schedule=lambda r, n: S.onecycle(r.max_lr, total_steps=n)``;
    ``configure_optimizers`` must then return the optimizer alone (a scheduler of its own has
    changed the optimizer's LRs when it was built: a one-line ``ValueError``).

    The result is :attr:`result`; ``lr_finder/suggestion``, ``lr_finder/max_lr`` and
    ``lr_finder/base_lr`` are logged through every logger, and with ``plot=True`` (and
    matplotlib) the plot is added to loggers that take figures (TensorBoard ``add_figure``,
    ``log_image``) and written as ``lr_finder.png`` next to ``lr_finder.json`` in each logger's
    ``log_dir`` (``lr_finder-1.*``, ``lr_finder-2.*``, ... when an earlier sweep's are
    there). The callback's state (the curve) is saved in checkpoints: a run resumed from one
    does not sweep again, it sets the same LR and schedule, whose state the checkpoint restores
    (a callable ``rule`` is saved by name: the resuming ``LRFinder`` passes the callable).
    """

    def __init__(
        self,
        *,
        options: SweepOptions | None = None,
        set_lr: bool = True,
        attr_name: str | None = None,
        schedule: Callable[[FinderResult, int], Any] | None = None,
        plot: bool = True,
        val_data: Iterable[Any] | None = None,
        probe_data: Iterable[Any] | None = None,
        snapshot: str = "memory",
        max_skipped: int = 10,
        progress: bool = False,
        callback: Callable[[int, float, float], None] | None = None,
        warn: bool = True,
        **sweep_options: Unpack[SweepKwargs],
    ) -> None:
        super().__init__()
        check_finder_kwargs("lrkit.lightning.LRFinder", sweep_options, finder=LRFinder,
                            hints=_LIGHTNING_HINTS)  # fmt: skip
        # validates every sweep option now, not when fit starts
        self.options = SweepOptions.build(options, **sweep_options)
        self.snapshot = V.choice("snapshot", snapshot, ("memory", "disk"))
        V.optional_callable("callback", callback, "callback(i, lr, loss)", 3)
        self.callback = callback
        self.warn = V.flag("warn", warn)
        self.max_skipped = V.integer("max_skipped", max_skipped, 0)
        if schedule is not None and not callable(schedule):
            raise ValueError(
                f"schedule must be a callable schedule(result, total_steps) returning an lrkit "
                f"schedule, a spec string or a dict, got {V.fmt(schedule)}"
            )
        if schedule is not None:  # now, not after the sweep
            V.takes("schedule", schedule, "schedule(result, total_steps)", 2)
        if attr_name is not None and (not isinstance(attr_name, str) or not attr_name):
            raise ValueError(
                f"attr_name must be a non-empty attribute name, got {V.fmt(attr_name)}"
            )
        self.set_lr = V.flag("set_lr", set_lr)
        self.attr_name = attr_name
        self.schedule = schedule
        self.plot = V.flag("plot", plot)
        check_batches_type(val_data, name="val_data", none=True)  # now, not when fit starts
        check_batches_type(probe_data, name="probe_data", none=True)
        Sweep(self.options).check_val_data(val_data)
        self.val_data = val_data
        self.probe_data = probe_data
        self.progress = V.flag("progress", progress)
        self.result: FinderResult | None = None
        self._restored = False  # result loaded from a checkpoint, for the fit that resumes
        # the schedule's group ratios, when it is built again at train start (a fit resumed
        # from a checkpoint without the curve)
        self._rebuild: list[float] | None = None
        # the steps the schedule was built for (saved with the curve: a resumed fit builds the
        # same schedule, whose state the checkpoint restores), and the ones a checkpoint held
        self._total: int | None = None
        self._saved_total: int | None = None
        # the steps the whole run planned when it was built (estimated_stepping_batches), and
        # the ones a checkpoint held: a resume that plans others is told its schedule stays
        self._planned: int | None = None
        self._saved_planned: int | None = None
        self._draws = 0  # the loader seed draws to make at on_train_start (see on_fit_start)
        # the RNG states before, and torch's after, the sweep set the training data up
        self._set_up: tuple[GlobalRNGState, Any] | None = None

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        # The sweep sets the training data up here instead of where fit sets it up (after the
        # module's and later callbacks' on_fit_start and the sanity check). Setting it up draws
        # each loader iterator's seed from torch's RNG (a loader without its own generator):
        # those draws are made again at on_train_start, where fit would have made them, so
        # what runs between and training draw what they would draw without this callback.
        # Where setting it up drew otherwise from torch's RNG (a random_split in
        # train_dataloader(), an IterableDataset's first batch), the data is set up again
        # where fit sets it up, from the RNG states as they were.
        self._draws = 0
        self._set_up = None
        try:
            self._fit_start(trainer, pl_module)
        finally:
            if self._set_up is not None:
                (before, after), self._set_up = self._set_up, None
                draws = _seed_draws(trainer.fit_loop)
                torch.set_rng_state(before.torch)
                _draw_seeds(draws)
                if torch.equal(torch.get_rng_state(), after):
                    torch.set_rng_state(before.torch)
                    self._draws = draws  # made at on_train_start
                else:
                    _set_up_again(trainer.fit_loop)
                    before.restore()

    def _fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._rebuild = None
        self._total = None
        self._planned = None
        saved_total, self._saved_total = self._saved_total, None
        saved_planned, self._saved_planned = self._saved_planned, None
        attr = self._lr_attr(pl_module)
        if self.schedule is not None and trainer.lr_scheduler_configs:
            names = ", ".join(type(c.scheduler).__name__ for c in trainer.lr_scheduler_configs)
            raise ValueError(
                f"LRFinder(schedule=...) sets every LR itself, but configure_optimizers also "
                f"returned {names}, which may have changed the optimizer's lr and momentum when "
                "it was built: return only the optimizer from configure_optimizers, or pass "
                "schedule=None to keep yours"
            )
        skip = (
            "fast_dev_run is enabled"  # a few batches to check the code: no range test, as
            if trainer.fast_dev_run  # Lightning's own Tuner.lr_find skips it
            else "limit_train_batches=0 trains nothing"
            if trainer.limit_train_batches == 0
            else ""
        )
        if skip:
            self._restored = False
            warnings.warn(
                f"LRFinder: skipping the learning rate range test since {skip}; the "
                "learning rate is unchanged",
                LRFinderWarning,
                stacklevel=caller_level(),
            )
            return
        # only a fit resumed from a checkpoint reuses the curve it holds (one loaded by a
        # validate or test with ckpt_path, or by an earlier fit, is not this run's)
        ckpt = getattr(trainer, "ckpt_path", None)
        if ckpt is not None and os.path.basename(str(ckpt)).startswith(_TUNER_CHECKPOINTS):
            # Lightning's BatchSizeFinder (which Lightning runs first) saved the run as it
            # began and restored it: ckpt_path names that file, and no resume is under way
            ckpt = None
        resumed = self._restored and ckpt is not None
        later = bool(getattr(trainer.strategy, "restore_checkpoint_after_setup", False))
        if ckpt is not None and not self._restored and not later and attr is not None:
            if self.schedule is None:
                # a checkpoint saved without this callback's curve: its optimizer state (the
                # LRs it trained at) is loaded after this hook, over the LR it would set (a
                # schedule= sets the LR at every step, after that load; set_lr=False sets none)
                warnings.warn(
                    "LRFinder: this fit resumes from a checkpoint saved without LRFinder's "
                    "range test; the learning rate the checkpoint holds is kept (no range "
                    "test: the checkpoint's optimizer state would overwrite the LR it sets)",
                    LRFinderWarning,
                    stacklevel=caller_level(),
                )
                return
        if self.result is None or not resumed:
            self.result = self._sweep(trainer, pl_module)
            self._log(trainer)
        self._restored = False
        lr = self.result.suggestion
        if lr is None:
            warnings.warn(
                "LRFinder: the range test gave no suggestion; the learning rate is unchanged",
                RuntimeWarning,
                stacklevel=caller_level(),
            )
            return
        total = 0
        if self.schedule is not None:  # checked before the module's LR changes
            # (read after the sweep, which sets up the data first: it keeps the RNG as it was)
            planned = float(trainer.estimated_stepping_batches)
            if not math.isfinite(planned):
                raise ValueError(
                    "LRFinder(schedule=...) builds the schedule for the steps the run trains, "
                    "but trainer.estimated_stepping_batches is inf (no max_steps or max_epochs "
                    "limit, or an endless train dataloader): set max_steps, or pass "
                    "schedule=None"
                )
            total = int(planned)
            if resumed and saved_total is not None:
                total = saved_total  # the schedule the checkpoint's state is of
                if saved_planned is not None and saved_planned != int(planned):
                    warnings.warn(
                        f"LRFinder: this fit plans {int(planned)} steps in all, the run it "
                        f"resumes planned {saved_planned}: the schedule is the one built for "
                        f"that run ({saved_total} steps), whose state the checkpoint holds; "
                        "past its end the LR stays at its last value (start a new fit, or "
                        "resume with the run's max_epochs/max_steps)",
                        LRFinderWarning,
                        stacklevel=caller_level(),
                    )
            self._total = total
            self._planned = int(planned)
        built: Any = None
        if self.schedule is not None:  # built and checked before the module's LR changes
            built = self._build(len(_single_optimizer(trainer).param_groups), total)
        if attr is not None:
            _parsing.lightning_setattr(pl_module, attr, lr)
            trainer.strategy.setup_optimizers(trainer)
        if built is not None:
            optimizer = _single_optimizer(trainer)
            sched = LRKitScheduler(optimizer, built)
            _install(trainer, sched)
            if ckpt is not None and not resumed and not later:
                # the checkpoint's optimizer state (its LRs) and step are loaded after this
                # hook: the schedule is built again for the steps left once they are
                self._rebuild = [*sched.ratios]

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        draws, self._draws = self._draws, 0
        _draw_seeds(draws)  # where fit sets up its data: see on_fit_start
        ratios, self._rebuild = self._rebuild, None
        if ratios is None:
            return
        # a fit resumed from a checkpoint without this callback's curve: the schedule starts
        # at the resumed step, over the steps this fit trains, at the group ratios it was built
        # with (the optimizer now holds the checkpoint's LRs)
        planned = int(trainer.estimated_stepping_batches)
        left = max(planned - int(trainer.global_step), 1)
        self._total = left
        self._planned = planned
        optimizer = _single_optimizer(trainer)
        built = self._build(len(optimizer.param_groups), left)
        sched = LRKitScheduler(optimizer, built)
        if not isinstance(built, list):
            sched.ratios = ratios
            sched.refresh()
        _install(trainer, sched)

    def _build(self, groups: int, total: int) -> Any:
        """``schedule(result, total)``, checked as :class:`LRKitScheduler` checks it: one
        schedule, or one per param group (of ``groups``)."""
        assert self.schedule is not None and self.result is not None
        made = self.schedule(self.result, total)
        try:
            if is_schedule_list(made):
                if len(made) != groups:
                    raise ValueError(
                        f"a list needs one schedule per param group ({groups}), got {len(made)}"
                    )
                return [as_schedule(m, nonnegative=True) for m in made]
            return as_schedule(made, nonnegative=True)
        except (TypeError, ValueError) as e:
            raise V.prefixed("LRFinder(schedule=...): what it returned: ", e) from None

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit":  # a validate/test/predict that loaded a checkpoint resumes nothing
            self._restored = False

    def state_dict(self) -> dict[str, Any]:
        if self.result is None:
            return {}
        state: dict[str, Any] = {"result": self.result.to_dict()}
        if self._total is not None and self.schedule is not None:
            state["total_steps"] = self._total
            if self._planned is not None:
                state["planned_steps"] = self._planned
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # a dict of its own (or an empty one: a checkpoint saved before the sweep ran)
        if not isinstance(state_dict, Mapping) or not (
            set(state_dict) <= {"result", "total_steps", "planned_steps"}
        ):
            raise ValueError(
                "state_dict must be a dict from LRFinder.state_dict() (keys 'result', "
                f"'total_steps', 'planned_steps'), got {V.dict_given(state_dict)}"
            )
        saved = state_dict.get("result")
        if saved is not None:
            self.result = replay_result(
                saved,
                # a rule by name: the checkpoint's own (a callable one is saved by name only)
                rule=self.options.rule if callable(self.options.rule) else None,
                where="state_dict['result']",
                source="LRFinder: the checkpoint's sweep",
                again="resume with LRFinder(rule={name})",
            )
            self._restored = True  # the fit resuming from the checkpoint does not sweep
            total = state_dict.get("total_steps")
            self._saved_total = None if total is None else V.integer("total_steps", total, 1)
            planned = state_dict.get("planned_steps")
            self._saved_planned = (
                None if planned is None else V.integer("planned_steps", planned, 1)
            )

    # ------------------------------------------------------------------ parts
    def _lr_attr(self, pl_module: Any) -> str | None:
        """The attribute the suggestion is written to (None: nothing to write)."""
        if not self.set_lr:
            return None
        if self.attr_name is not None:  # named: it must be there, with a schedule or without
            if _parsing.lightning_hasattr(pl_module, self.attr_name):
                return self.attr_name
            raise ValueError(
                f"LRFinder(attr_name={self.attr_name!r}): {type(pl_module).__name__} has no "
                f"attribute {self.attr_name!r} (nor in hparams) to write the suggestion to: "
                f"name the one configure_optimizers reads, or pass set_lr=False"
            )
        for name in _LR_ATTRS:
            if _parsing.lightning_hasattr(pl_module, name):
                return name
        if self.schedule is not None:
            return None  # the schedule sets the LR
        raise ValueError(
            f"LRFinder(set_lr=True) writes the suggestion to the module attribute that "
            f"configure_optimizers reads, but {type(pl_module).__name__} has none of "
            f"{list(_LR_ATTRS)} (nor in hparams): name it with attr_name=..., pass "
            f"schedule=..., or set_lr=False"
        )

    def _sweep(self, trainer: Any, pl_module: Any) -> FinderResult:
        if not pl_module.automatic_optimization:
            raise ValueError(
                "LRFinder needs automatic optimization (training_step returns the loss); "
                "with manual optimization run lrkit.torch.find_lr with your own step"
            )
        optimizer = _single_optimizer(trainer, pl_module)
        # the sweep sees the RNG as fit() found it (setting up the data draws from it: see
        # on_fit_start)
        before = GlobalRNGState()
        fresh = getattr(trainer.fit_loop, "_combined_loader", None) is None
        trainer.fit_loop.setup_data()
        if fresh:  # set up here, not already by fit (estimated_stepping_batches reads it)
            self._set_up = (before, torch.get_rng_state())
        torch.set_rng_state(before.torch)
        data = trainer.train_dataloader
        if data is None:
            raise ValueError(
                "LRFinder needs a train dataloader (train_dataloader() or a datamodule)"
            )
        if isinstance(data, (Mapping, list, tuple)):  # several loaders: combined as fit does
            data = _Combined(data)
        counter = [0]
        # as fit's loop calls it: batch_idx only when training_step takes it
        with_idx = _signature.is_param_in_hook_signature(
            pl_module.training_step, "batch_idx", min_args=2
        )

        def prepare(batch: Any) -> _Ready:
            # what fit's loop does to a batch before training_step: the precision plugin's
            # convert_input (the dtype of a "true" precision), on_before_batch_transfer, and
            # batch_to_device (transfer_batch_to_device, on_after_batch_transfer), with the
            # hooks of the module or the datamodule as fit picks them
            batch = trainer.precision_plugin.convert_input(batch)
            batch = before_transfer(batch, 0)
            return _Ready(trainer.strategy.batch_to_device(batch, dataloader_idx=0))

        # the datamodule's hook where it overrides it, else the module's, as fit picks it
        dm = getattr(trainer, "datamodule", None)
        hook = "on_before_batch_transfer"
        owner = dm if dm is not None and _helpers.is_overridden(hook, dm) else pl_module
        before_transfer = getattr(owner, hook)

        def step(model: Any, ready: _Ready | _Later) -> Any:
            batch = (ready.ready() if isinstance(ready, _Later) else ready).batch
            if batch is None:  # fit skips a batch that is None after the hooks
                counter[0] += 1
                return None
            args = (batch, counter[0]) if with_idx else (batch,)
            out = trainer.strategy.training_step(*args)
            counter[0] += 1
            if out is None:  # Lightning's "skip this batch": the sweep skips it too
                return None
            loss = out.get("loss") if isinstance(out, Mapping) else out
            if not isinstance(loss, torch.Tensor):
                raise ValueError(
                    "LRFinder: training_step must return the loss tensor (or a dict with "
                    f"'loss', or None to skip the batch), got {type(out).__name__}"
                )
            return loss

        def clip(opt: Any) -> None:  # the trainer's gradient clipping, as fit applies it
            pl_module.configure_gradient_clipping(
                opt,
                gradient_clip_val=trainer.gradient_clip_val,
                gradient_clip_algorithm=trainer.gradient_clip_algorithm,
            )

        scaler = getattr(trainer.precision_plugin, "scaler", None)
        options = self.options
        planned = float(trainer.estimated_stepping_batches)
        if options.total_steps is None and math.isfinite(planned) and planned >= 1:
            options = SweepOptions.build(options, total_steps=int(planned))
        muted = {name: pl_module.__dict__.get(name, _MISSING) for name in ("log", "log_dict")}
        pl_module.log = _mute
        pl_module.log_dict = _mute
        try:
            result: FinderResult = find_lr(
                pl_module,
                optimizer,
                None,
                _Prepared(data, prepare),
                step=step,
                accumulation_steps=int(trainer.accumulate_grad_batches),
                scaler=scaler,
                device=pl_module.device,
                val_data=_Prepared.of(self.val_data, prepare),
                probe_data=_Prepared.of(self.probe_data, prepare, later=True),
                progress=self.progress and trainer.is_global_zero,
                snapshot=self.snapshot,
                callback=self.callback,
                warn=self.warn,
                max_skipped=self.max_skipped,
                options=options,
                before_step=clip,
            )
            return result
        finally:
            for name, value in muted.items():
                if value is _MISSING:
                    pl_module.__dict__.pop(name, None)
                else:
                    pl_module.__dict__[name] = value

    def _log(self, trainer: Any) -> None:
        result = self.result
        if result is None or not trainer.is_global_zero:
            return
        metrics = {
            f"lr_finder/{k}": v
            for k, v in (
                ("suggestion", result.suggestion),
                ("max_lr", result.max_lr),
                ("base_lr", result.base_lr),
            )
            if v is not None
        }
        fig = _figure(result) if self.plot else None
        for logger in trainer.loggers:
            if metrics:
                logger.log_metrics(metrics, step=trainer.global_step)
            experiment: Any = getattr(logger, "experiment", None)
            if fig is not None and callable(getattr(experiment, "add_figure", None)):
                experiment.add_figure("lr_finder", fig, global_step=trainer.global_step)
            elif fig is not None and callable(getattr(logger, "log_image", None)):
                logger.log_image(key="lr_finder", images=[fig])
            log_dir = getattr(logger, "log_dir", None)
            if isinstance(log_dir, str) and log_dir:
                os.makedirs(log_dir, exist_ok=True)
                stem = _free_stem(os.path.join(log_dir, "lr_finder"))
                with open(stem + ".json", "w") as f:
                    json.dump(result.to_dict(), f)
                if fig is not None:
                    save_figure(fig, stem + ".png")


def _free_stem(stem: str) -> str:
    """``stem``, or the first ``stem-N`` (N = 1, 2, ...) with neither ``.json`` nor ``.png``
    there: the files of an earlier sweep in the same log folder are never overwritten."""
    candidate, n = stem, 0
    while os.path.exists(candidate + ".json") or os.path.exists(candidate + ".png"):
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


class _Combined:
    """Several train loaders (a dict, list or tuple of them) combined as ``fit`` combines them
    (``CombinedLoader`` in ``"max_size_cycle"`` mode: each batch holds the next batch of every
    loader, the shorter ones cycling), yielding the batches ``training_step`` receives. The
    loaders are ``flattened``, where :func:`lrkit.torch.find_lr` finds their generators."""

    def __init__(self, iterables: Any) -> None:
        self.iterables = iterables
        self.flattened = list(_combined.CombinedLoader(iterables, "max_size_cycle").flattened)

    def __iter__(self) -> Any:
        for batch, _, _ in _combined.CombinedLoader(self.iterables, "max_size_cycle"):
            yield batch


class _Ready:
    """A batch as fit's loop hands it to ``training_step`` (after the precision plugin and the
    transfer hooks): opaque to :func:`lrkit.torch.find_lr`, which moves the batches it is
    given to the device and rebuilds their containers (the hooks have done that already)."""

    __slots__ = ("batch",)

    def __init__(self, batch: Any) -> None:
        self.batch = batch


class _Later:
    """A batch put through ``prepare`` only when the step reads it, each time: a probe_data
    batch (the validation loader's) stays where its loader left it, off the device, between
    the probes' evaluations."""

    __slots__ = ("batch", "prepare")

    def __init__(self, batch: Any, prepare: Callable[[Any], _Ready]) -> None:
        self.batch, self.prepare = batch, prepare

    def ready(self) -> _Ready:
        return self.prepare(self.batch)


class _Prepared:
    """The batches of ``source`` (the train loader, ``val_data``) each put through
    ``prepare`` as it is drawn, as fit's loop does, once: a held batch is prepared when it is
    taken, not again at each evaluation (``later=True``, ``probe_data``: when the step reads
    it, each time, so the batches stay off the device between evaluations). Its loaders are
    ``flattened``, where :func:`lrkit.torch.find_lr` finds their generators and persistent
    workers."""

    def __init__(
        self, source: Iterable[Any], prepare: Callable[[Any], _Ready], *, later: bool = False
    ) -> None:
        self.source = source
        self.prepare = prepare
        self.later = later
        self.flattened = data_loaders(source)

    @classmethod
    def of(cls, source: Any, prepare: Callable[[Any], _Ready], *, later: bool = False) -> Any:
        """``source`` prepared, or as it is when it is not an iterable of batches (``None``,
        or a value :func:`lrkit.torch.find_lr` refuses naming it). ``later``: each batch is
        prepared when the step reads it (:class:`_Later`), not when it is drawn."""
        if source is None or isinstance(source, (str, bytes)) or not isinstance(source, Iterable):
            return source
        return cls(source, prepare, later=later)

    def __iter__(self) -> Any:
        for batch in self.source:
            yield _Later(batch, self.prepare) if self.later else self.prepare(batch)


def _mute(*args: Any, **kwargs: Any) -> None:
    """Stands in for ``self.log``/``self.log_dict`` during the sweep."""


_MISSING = object()


def _install(trainer: Any, sched: LRKitScheduler) -> None:
    """Make ``sched`` the trainer's one LR scheduler, stepped every optimizer step."""
    trainer.strategy.lr_scheduler_configs = [
        _types.LRSchedulerConfig(sched, interval="step", frequency=1)
    ]


def _seed_draws(loop: Any) -> int:
    """How many seeds setting up ``loop``'s training data drew from torch's global RNG: per
    DataLoader without its own generator, its iterator's base seed, and with workers (which
    are handed their first indices at once) its ``RandomSampler``'s seed."""
    combined = getattr(loop, "_combined_loader", None)
    loaders = getattr(combined, "flattened", None) or []
    n = 0
    for dl in loaders:
        if not isinstance(dl, torch.utils.data.DataLoader):
            continue
        n += dl.generator is None
        sampler = getattr(dl.batch_sampler, "sampler", dl.sampler)
        if (
            dl.num_workers > 0
            and isinstance(sampler, torch.utils.data.RandomSampler)
            and sampler.generator is None
        ):
            n += 1
    return n


def _set_up_again(loop: Any) -> None:
    """Have ``fit`` set its training data up again (its fetcher torn down: the workers of the
    set-up made for the sweep end)."""
    fetcher = getattr(loop, "_data_fetcher", None)
    if fetcher is not None:
        fetcher.teardown()
    loop._data_fetcher = None  # fit makes its own, and tears down only that
    loop._combined_loader = None


def _draw_seeds(n: int) -> None:
    """Draw ``n`` seeds from torch's global RNG, as a DataLoader iterator draws its own."""
    for _ in range(n):
        torch.empty((), dtype=torch.int64).random_()


def _single_optimizer(trainer: Any, module: Any = None) -> Any:
    optimizers = trainer.optimizers
    if len(optimizers) != 1:
        raise ValueError(
            f"LRFinder needs configure_optimizers to return exactly one optimizer, "
            f"got {len(optimizers)}; with several, run lrkit.torch.find_lr with your own step"
        )
    opt = optimizers[0]
    if module is not None:
        own = {id(p) for p in module.parameters()}
        if not any(id(p) in own for g in opt.param_groups for p in g["params"]):
            raise ValueError(
                "LRFinder needs configure_optimizers to return an optimizer of the module's "
                f"parameters, got a {type(opt).__name__} holding none of them (did "
                "configure_optimizers return None?)"
            )
    return opt


def _figure(result: FinderResult) -> Any:
    """The finder plot on a pyplot-free figure (None without matplotlib)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(7, 4.5))
    result.plot(fig.add_subplot())
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- feedback


class ReportMetric(pl.Callback):  # type: ignore[misc,name-defined]
    """Feed a validation metric to the feedback controller of every lrkit scheduler.

    After each validation run of ``fit`` (not the sanity check, nor ``trainer.validate()``,
    which leaves the LRs alone) the metric is read from
    ``trainer.callback_metrics`` and passed to ``scheduler.report(value)`` of each
    :class:`lrkit.torch.LRKitScheduler` that has a ``feedback`` controller, also one inside
    PyTorch's ``SequentialLR`` or ``ChainedScheduler``. A controller shared by several
    schedulers is updated once per validation. The metric's name
    is ``monitor``, else the scheduler config's ``"monitor"`` key, else ``"val_loss"`` (under
    manual optimization, where Lightning drops the config's ``"monitor"``, a warning says so
    once: pass ``monitor`` there). A missing
    metric is skipped with a warning. Under DDP every rank reports the metric's mean over the
    ranks (a metric logged without ``sync_dist=True`` differs by rank), so the replicas keep
    one LR. A fit that trains without any validation run (``limit_val_batches=0``, no
    ``val_dataloader``) warns at its end that the controllers received no metric. The report
    runs before ``ModelCheckpoint`` saves (Lightning
    orders checkpoint callbacks last), so a checkpoint holds the controller's state after it and a
    resumed run continues exactly.

    Keep the scheduler config at ``"interval": "step"`` and without ``"reduce_on_plateau"``:
    the schedule advances every step, the metric arrives here.
    """

    @V.checked_keywords("lrkit.lightning.ReportMetric", hints=REPORT_HINTS)
    def __init__(self, monitor: str | None = None) -> None:
        super().__init__()
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise ValueError(f"monitor must be the name of a logged metric, got {V.fmt(monitor)}")
        self.monitor = monitor
        self._manual_warned = False
        self._validations = 0  # the validation runs of this fit
        self._none_warned = False  # no controller to feed: said once per fit
        self._first_step: int | None = None  # the step this fit's training began at
        # (metric, scheduler) pairs whose controllers' mode was checked this fit
        self._mode_checked: set[tuple[str, int]] = set()

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._validations = 0
        self._first_step = None
        self._none_warned = False  # no controller to feed: said once per fit
        self._mode_checked = set()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._first_step = int(trainer.global_step)  # a resumed fit's: the checkpoint's

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        # a fit that trained without a validation run (limit_val_batches=0, no val_dataloader)
        # gave its controllers no metric: said, as Lightning refuses its own plateau scheduler
        first = self._first_step
        trained = first is not None and int(trainer.global_step) > first
        controlled = any(self._controlled(c) for c in trainer.lr_scheduler_configs)
        if trained and self._validations == 0 and controlled:
            warnings.warn(
                "ReportMetric: no validation ran in this fit (limit_val_batches=0, no "
                "val_dataloader, a check_val_every_n_epoch or val_check_interval the run "
                "ended before, e.g. at max_steps): the feedback controllers received no metric",
                RuntimeWarning,
                stacklevel=caller_level(),
            )

    @staticmethod
    def _controlled(config: Any) -> bool:
        """Whether an lrkit scheduler of the scheduler config ``config`` has a feedback
        controller."""
        return any(s.feedback is not None for s in lrkit_schedulers(config.scheduler))

    @staticmethod
    def _check_mode(trainer: Any, key: str, scheduler: Any) -> None:
        """Warn when a controller minimises a metric to maximise, or the other way round: a
        loss or an accuracy by name, else as the trainer's ``ModelCheckpoint`` or
        ``EarlyStopping`` on the same metric takes it (their ``mode``)."""
        mode: str | None = metric_mode(key)
        why = ""
        for cb in getattr(trainer, "callbacks", None) or []:
            if (  # a name that tells no direction: a callback's on the same metric (its mode
                mode is None  # defaults to "min", which a name that tells one outweighs)
                and isinstance(cb, (pl.callbacks.ModelCheckpoint, pl.callbacks.EarlyStopping))
                and cb.monitor == key
                and cb.mode in ("min", "max")
            ):
                mode, why = cb.mode, f" ({type(cb).__name__}(mode={cb.mode!r}))"
                break
        if mode is not None:
            fbs = [s.feedback for s in lrkit_schedulers(scheduler)]
            warn_against_metric("ReportMetric", "feedback controller", key, fbs, mode, why=why)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        # only the validation runs of fit: trainer.validate() changes no LR
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self._validations += 1
        found = False
        seen: list[Any] = []  # one validation, one observation per controller
        for config in trainer.lr_scheduler_configs:
            if not self._controlled(config):
                continue
            found = True
            key = self.monitor or config.monitor or "val_loss"
            if (
                key == "val_loss"
                and self.monitor is None
                and not pl_module.automatic_optimization
                and not self._manual_warned
            ):
                self._manual_warned = True  # Lightning drops the key there, with its own words
                warnings.warn(
                    "ReportMetric: under manual optimization Lightning ignores a scheduler "
                    "config's 'monitor'; reporting 'val_loss' (pass ReportMetric(monitor=...) "
                    "to report another metric)",
                    RuntimeWarning,
                    stacklevel=caller_level(),
                )
            value = trainer.callback_metrics.get(key)
            if get_world_size() > 1:
                # every rank reports the mean over ranks: a metric logged without
                # sync_dist=True differs by rank, and so would the LRs of the replicas
                present = all_reduce_mean(0.0 if value is None else 1.0) == 1.0
                mean = all_reduce_mean(math.nan if value is None else float(value))
                value = mean if present else None
            if value is None:
                warnings.warn(
                    f"ReportMetric: metric {key!r} is not logged (available: "
                    f"{sorted(trainer.callback_metrics)}); feedback skipped",
                    RuntimeWarning,
                    stacklevel=caller_level(),
                )
                continue
            if (key, id(config.scheduler)) not in self._mode_checked:
                self._mode_checked.add((key, id(config.scheduler)))
                self._check_mode(trainer, key, config.scheduler)
            # the composite itself: in a SequentialLR only the current phase sets the LRs
            report(config.scheduler, value=value, seen=seen)
        if not found and not self._none_warned:
            self._none_warned = True
            warnings.warn(
                "ReportMetric: no lrkit scheduler with a feedback controller among the "
                "trainer's LR schedulers (lrkit.torch.scheduler(opt, schedule, feedback=...))",
                RuntimeWarning,
                stacklevel=caller_level(),
            )
