"""lrkit.lightning on a real Lightning Trainer with a tiny module (CPU, synthetic data)."""

from __future__ import annotations

import copy
import json
import math
import os
import warnings
from typing import Any

import numpy as np
import pytest

pl = pytest.importorskip("pytorch_lightning")
torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import lrkit.torch as lt  # noqa: E402
from lrkit import schedules as S  # noqa: E402
from lrkit.feedback import ReduceOnPlateau  # noqa: E402
from lrkit.finder import LRFinderWarning  # noqa: E402
from lrkit.lightning import LRFinder, ReportMetric  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
    pytest.mark.filterwarnings("ignore:.*GPU available but not used.*"),
]

BATCHES_PER_EPOCH = 4


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]) + 0.1 * torch.randn(64, 1, generator=g)
    return x, y


class Tiny(pl.LightningModule):  # type: ignore[misc,name-defined]
    def __init__(
        self,
        lr: float = 0.05,
        spec: Any = None,
        patience: int | None = None,
        val_losses: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.lr = lr
        self.spec = spec
        self.patience = patience
        self.val_losses = val_losses
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        loss = F.mse_loss(self.net(x), y)
        if self.val_losses is not None:  # a scripted metric: the plateau is known in advance
            loss = torch.tensor(self.val_losses[self.current_epoch])
        self.log("val_loss", loss)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        if self.spec is None:
            return opt
        fb = None if self.patience is None else ReduceOnPlateau(factor=0.5, patience=self.patience)
        sched = lt.scheduler(opt, self.spec, feedback=fb)
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "interval": "step", "monitor": "val_loss"},
        }

    def train_dataloader(self) -> DataLoader:
        x, y = _data()
        return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        x, y = _data()
        return DataLoader(TensorDataset(x[:32], y[:32]), batch_size=32)


class LRRecorder(pl.Callback):  # type: ignore[misc,name-defined]
    """The LR each optimizer step runs at, keyed by global step."""

    def __init__(self) -> None:
        self.lrs: dict[int, float] = {}

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, idx: int) -> None:
        self.lrs[trainer.global_step] = trainer.optimizers[0].param_groups[0]["lr"]


class MemoryLogger(pl.loggers.Logger):  # type: ignore[misc,name-defined]
    def __init__(self, log_dir: str | None = None) -> None:
        super().__init__()
        self.metrics: list[tuple[int | None, dict[str, float]]] = []
        self._log_dir = log_dir

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    @property
    def log_dir(self) -> str | None:
        return self._log_dir

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append((step, dict(metrics)))


def _trainer(**kwargs: Any) -> Any:
    opts: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
    )
    opts.update(kwargs)
    return pl.Trainer(**opts)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- schedules


def test_logged_lrs_equal_the_schedule_step_for_step() -> None:
    spec = "join([warmup(0, 0.1, 4), cosine(0.1, 8)], boundaries=[4])"
    torch.manual_seed(0)
    rec, logger = LRRecorder(), MemoryLogger()
    trainer = _trainer(
        max_epochs=3,
        callbacks=[rec, pl.callbacks.LearningRateMonitor(logging_interval="step")],
        logger=logger,
        log_every_n_steps=1,
        limit_val_batches=0,
    )
    trainer.fit(Tiny(spec=spec))
    s = S.parse(spec)
    steps = 3 * BATCHES_PER_EPOCH
    assert rec.lrs == {k: s(k) for k in range(steps)}
    logged = [m["lr-SGD"] for _, m in logger.metrics if "lr-SGD" in m]
    assert logged == [s(k) for k in range(steps)]


def test_step_with_a_metric_says_to_report_it() -> None:
    opt = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    sched = lt.scheduler(opt, "constant(0.1)", feedback=ReduceOnPlateau())
    with pytest.raises(ValueError, match=r"report\(value\).*ReportMetric"):
        sched.step(torch.tensor(4.23))
    with pytest.raises(ValueError, match="takes no metric"):
        sched.step(0.5)


def test_reduce_on_plateau_config_gets_the_report_error() -> None:
    class Misused(Tiny):
        def configure_optimizers(self) -> Any:
            cfg = super().configure_optimizers()
            cfg["lr_scheduler"].update(reduce_on_plateau=True, interval="epoch")
            return cfg

    trainer = _trainer(max_epochs=1)
    with pytest.raises(ValueError, match=r"report\(value\)"):
        trainer.fit(Misused(spec="constant(0.1)", patience=1, val_losses=[1.0]))


# ----------------------------------------------------------------------------- finder


def _reference(model: Tiny, seed: int, **kw: Any) -> Any:
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer
        return lt.find_lr(
            model,
            model.configure_optimizers(),
            None,
            model.train_dataloader(),
            step=lambda m, b: m.training_step(b, 0),
            num_iter=30,
            total_steps=200,
            warn=False,
            **kw,
        )


def test_finder_equals_find_lr_and_leaves_the_module_bit_identical(tmp_path: Any) -> None:
    torch.manual_seed(0)
    model = Tiny()
    ref = _reference(copy.deepcopy(model), seed=7)
    before = _state(model)
    finder = LRFinder(num_iter=30, total_steps=200, set_lr=False)
    logger = MemoryLogger(log_dir=str(tmp_path))
    torch.manual_seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=0, callbacks=[finder], logger=logger).fit(model)
    res = finder.result
    assert res is not None
    assert res.suggestion == ref.suggestion and res.max_lr == ref.max_lr
    assert res.losses.tolist() == ref.losses.tolist()
    assert _same(before, _state(model))
    assert model.lr == 0.05
    assert "log" not in model.__dict__ and "log_dict" not in model.__dict__
    (step, metrics), *_ = [m for m in logger.metrics if "lr_finder/suggestion" in m[1]]
    assert metrics["lr_finder/suggestion"] == ref.suggestion
    assert metrics["lr_finder/max_lr"] == ref.max_lr
    saved = json.loads((tmp_path / "lr_finder.json").read_text())
    assert saved["suggestion"] == ref.suggestion
    assert os.path.getsize(tmp_path / "lr_finder.png") > 0


def _two_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two (x, y) batches for Tiny, never trained on."""
    gen = torch.Generator().manual_seed(5)
    return [(torch.randn(8, 4, generator=gen), torch.randn(8, 1, generator=gen)) for _ in range(2)]


def _finder_beside_reference(**kw: Any) -> tuple[Any, LRFinder, bool]:
    """``lrkit.torch.find_lr`` with ``kw`` (``val_data``, ``probe_data``) on a copy of a fresh
    ``Tiny``, and ``LRFinder(**kw)`` in a fit of the module itself, from the same RNG state:
    ``(by hand, the finder, whether the module is bit-identical after the fit)``."""
    torch.manual_seed(0)
    model = Tiny()
    ref = _reference(copy.deepcopy(model), seed=7, **kw)
    before = _state(model)
    finder = LRFinder(num_iter=30, total_steps=200, set_lr=False, plot=False, **kw)
    torch.manual_seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=0, callbacks=[finder], logger=False).fit(model)
    return ref, finder, _same(before, _state(model))


class _Draws(Tiny):
    """Draws from torch's RNG in on_fit_start and in validation (the sanity check's too); its
    train loader shuffles with torch's RNG, its own generator, or a numpy permutation."""

    def __init__(self, loader: str = "global") -> None:
        super().__init__()
        self.drawn: list[float] = []
        self.loader = loader
        self.generator = torch.Generator().manual_seed(1)

    def train_dataloader(self) -> DataLoader:
        x, y = _data()
        if self.loader == "generator":
            data = TensorDataset(x, y)
            return DataLoader(data, batch_size=16, shuffle=True, generator=self.generator)
        if self.loader in ("numpy", "torch"):  # a subset drawn as the loader is made
            keep = (
                np.random.permutation(64)[:48]
                if self.loader == "numpy"
                else torch.randperm(64)[:48]
            )
            return DataLoader(TensorDataset(x[keep], y[keep]), batch_size=16, shuffle=True)
        return super().train_dataloader()

    def on_fit_start(self) -> None:
        self.drawn.append(float(torch.randn(())))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.drawn.append(float(torch.randn(())))
        super().validation_step(batch, batch_idx)


@pytest.mark.parametrize("loader", ["global", "generator", "numpy", "torch"])
@pytest.mark.parametrize("num_sanity_val_steps", [0, 2])
def test_set_lr_false_trains_exactly_as_without_the_finder(
    num_sanity_val_steps: int, loader: str
) -> None:
    """What runs after the finder's on_fit_start (the module's, the sanity check) draws from
    the RNG as it would without it, and so does training."""

    def run(callbacks: list[Any]) -> tuple[list[float], dict[str, torch.Tensor]]:
        torch.manual_seed(0)
        np.random.seed(0)
        model = _Draws(loader)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _trainer(max_epochs=2, num_sanity_val_steps=num_sanity_val_steps,
                     callbacks=callbacks).fit(model)  # fmt: skip
        return model.drawn, _state(model)

    drawn, weights = run([])
    finder = LRFinder(num_iter=20, set_lr=False, plot=False)
    drawn_with, weights_with = run([finder])
    assert drawn_with == drawn and _same(weights_with, weights) and finder.result is not None


def test_limit_train_batches_0_skips_the_sweep_with_a_warning() -> None:
    from lrkit.finder import LRFinderWarning

    model, finder = Tiny(), LRFinder(num_iter=10, plot=False)
    with pytest.warns(LRFinderWarning, match="since limit_train_batches=0 trains nothing; ") as rec:
        _trainer(max_epochs=1, limit_train_batches=0, callbacks=[finder]).fit(model)
    assert finder.result is None and model.lr == 0.05
    assert rec[0].filename == __file__  # the user's fit(), not Lightning's caller of the hook


def test_finder_with_val_data_equals_find_lr_with_it() -> None:
    ref, finder, _ = _finder_beside_reference(val_data=_two_batches())
    res = finder.result
    assert res is not None and len(res.held_losses) > 0
    assert res.held_losses.tolist() == ref.held_losses.tolist()
    assert res.losses.tolist() == ref.losses.tolist() and res.suggestion == ref.suggestion


def test_finder_sets_the_lr_and_trains_at_it() -> None:
    torch.manual_seed(0)
    model, rec = Tiny(), LRRecorder()
    finder = LRFinder(num_iter=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_steps=2, callbacks=[finder, rec], limit_val_batches=0).fit(model)
    sug = finder.result.suggestion
    assert model.lr == sug
    assert rec.lrs == {0: sug, 1: sug}


def test_finder_schedule_from_the_result() -> None:
    torch.manual_seed(0)
    model, rec = Tiny(), LRRecorder()
    finder = LRFinder(
        num_iter=30, set_lr=False, schedule=lambda r, n: S.cosine(r.max_lr, total_steps=n)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=2, callbacks=[finder, rec], limit_val_batches=0).fit(model)
    s = S.cosine(finder.result.max_lr, total_steps=2 * BATCHES_PER_EPOCH)
    assert rec.lrs == {k: s(k) for k in range(2 * BATCHES_PER_EPOCH)}


def test_finder_without_an_lr_attribute_says_what_to_do() -> None:
    class Named(Tiny):
        def __init__(self) -> None:
            super().__init__()
            self.step_size = self.lr
            del self.lr

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.step_size)

    with pytest.raises(ValueError, match="attr_name"):
        _trainer(max_epochs=0, callbacks=[LRFinder(num_iter=10)]).fit(Named())
    model, finder = Named(), LRFinder(num_iter=10, attr_name="step_size")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=0, callbacks=[finder]).fit(model)
    assert model.step_size == finder.result.suggestion


def test_finder_schedule_on_a_module_without_an_lr_attribute_drives_the_lr() -> None:
    class Fixed(Tiny):
        def __init__(self) -> None:
            super().__init__()
            del self.lr

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.05)

    rec = LRRecorder()
    finder = LRFinder(num_iter=10, plot=False, schedule=lambda r, n: S.constant(0.005))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=1, callbacks=[finder, rec], limit_val_batches=0).fit(Fixed())
    assert finder.result is not None
    assert rec.lrs == {k: 0.005 for k in range(BATCHES_PER_EPOCH)}


def test_finder_refuses_the_placeholder_optimizer_of_a_module_without_one() -> None:
    class NoOptimizer(Tiny):
        def configure_optimizers(self) -> Any:
            return None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"holding none of them \(did configure_optimizers"):
            _trainer(max_epochs=0, callbacks=[LRFinder(num_iter=10)]).fit(NoOptimizer())


def test_max_skipped_reaches_the_range_test_and_is_checked(spy: Any) -> None:
    import lrkit.lightning as LL

    seen = spy(LL, "find_lr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=0, callbacks=[LRFinder(num_iter=10, max_skipped=3)]).fit(Tiny())
    assert seen["max_skipped"] == 3
    assert LRFinder(num_iter=10).max_skipped == 10  # lrkit.torch.find_lr's default
    with pytest.raises(ValueError, match=r"^max_skipped must be an integer >= 0"):
        LRFinder(max_skipped=-1)
    for name, said in (("accumulation_steps", "accumulate_grad_batches="), ("amp", "precision=")):
        with pytest.raises(TypeError, match=rf"^{name} is not an option of lrkit.lightning"
                           rf".LRFinder \(read off the Trainer: {said}\)"):  # fmt: skip
            LRFinder(**{name: 2})


def test_lightnings_own_finder_keywords_point_to_lrkits() -> None:
    with pytest.raises(TypeError) as info:
        LRFinder(update_attr=True)  # type: ignore[call-arg]
    assert str(info.value).startswith(
        "update_attr is not an option of lrkit.lightning.LRFinder (use set_lr; attr_name names "
        "the attribute); options: attr_name, beta, callback, "
    )
    with pytest.raises(TypeError, match=r"^num_training_steps is not an option .*\(use num_iter"):
        LRFinder(num_training_steps=50)  # type: ignore[call-arg]
    # a value spelled as Lightning spells it
    with pytest.raises(ValueError) as err:
        LRFinder(mode="exponential")
    assert str(err.value) == (
        "mode must be one of 'exp', 'linear', got 'exponential' (Lightning's 'exponential' is "
        "'exp' here)"
    )


def test_finder_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="num_iter"):
        LRFinder(num_iter=1)
    with pytest.raises(ValueError, match="schedule"):
        LRFinder(schedule="cosine")  # type: ignore[arg-type]
    # held data that is no iterable of batches: refused now, not when fit starts
    for name in ("val_data", "probe_data"):
        with pytest.raises(ValueError) as info:
            LRFinder(**{name: 5})  # type: ignore[arg-type]
        assert str(info.value) == (
            f"{name} must be an iterable of batches (a list, a generator, a loader, or None), "
            "got int"
        )
        for empty in ([], ()):
            with pytest.raises(ValueError) as info:
                LRFinder(**{name: empty})
            assert str(info.value) == f"{name} must yield at least one batch, got an empty iterable"
    with pytest.raises(ValueError, match=r"^val_data is given but eval_batches=0"):
        LRFinder(val_data=[(torch.zeros(1), torch.zeros(1))], eval_batches=0)


def test_load_state_dict_refuses_what_no_lr_finder_saved() -> None:
    """As the schedulers and controllers do: one line naming what it got (it raised Python's
    own AttributeError or KeyError, or took another object's state without a word)."""
    from lrkit.feedback import ReduceOnPlateau

    head = r"^state_dict must be a dict from LRFinder\.state_dict\(\) .*, got "
    for bad, got in ((None, "NoneType"), ("x", "str"),
                     (ReduceOnPlateau().state_dict(), "a dict with keys \\['best', ")):  # fmt: skip
        with pytest.raises(ValueError, match=head + got):
            LRFinder().load_state_dict(bad)
    for bad, got in (("x", "str"), ({}, "a dict without \\['held_losses'")):
        with pytest.raises(ValueError, match=r"^state_dict\['result'\] must be .*, got " + got):
            LRFinder().load_state_dict({"result": bad})
    finder = LRFinder()
    finder.load_state_dict({})  # saved before the sweep ran: nothing to restore
    assert finder.result is None


def _edited(state: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(state)
    if key.startswith("options."):
        out["options"][key.split(".", 1)[1]] = value
    else:
        out[key] = value
    return out


def test_load_state_dict_names_the_field_of_a_damaged_result() -> None:
    """A hand-edited or truncated result is refused in one line naming its field (it raised
    Python's own messages, or replayed a truncated curve into another suggestion)."""
    from lrkit.finder import range_test

    res = range_test(lambda lr: (math.log10(lr) + 3) ** 2 + 1, evaluate=lambda: 1.0, warn=False)
    state = json.loads(json.dumps(res.to_dict()))
    n = len(state["lrs"])
    assert len(state["held_lrs"]) > 1
    where = r"state_dict\['result'\]"
    cases = [
        ("options", "x", rf"^{where}\['options'\] must be a dict from SweepOptions"),
        ("losses", [None] * n, rf"^{where}\['losses'\]\[0\] must be a finite real number"),
        ("losses", state["losses"][:3],
         rf"^{where}\['losses'\] must have one value per LR of {where}\['lrs'\] \({n}\), got 3"),
        ("lrs", "abc", rf"^{where}\['lrs'\] must be a list of numbers, got a string"),
        ("lrs", state["lrs"][::-1], rf"^{where}\['lrs'\] are not the LRs its options sweep"),
        ("held_losses", 5, rf"^{where}\['held_losses'\] must be a list of numbers, got 5"),
        ("held_losses", state["held_losses"][1:],
         rf"^{where}\['held_losses'\] must have one value per LR of {where}\['held_lrs'\]"),
        ("options.bogus", 1, rf"^{where}\['options'\]: bogus is not an option of the range"),
        ("options.num_iter", "x", rf"^{where}\['options'\]: num_iter must be an integer"),
        ("options.rule", 5, rf"^{where}\['options'\]\['rule'\] must be a rule's name, got 5"),
    ]  # fmt: skip
    for key, value, message in cases:
        finder = LRFinder()
        with pytest.raises(ValueError, match=message):
            finder.load_state_dict({"result": _edited(state, key, value)})
        assert finder.result is None
    finder = LRFinder()
    finder.load_state_dict({"result": state})
    assert finder.result is not None and finder.result.to_dict() == res.to_dict()


def test_a_finder_s_schedule_is_logged_under_lightning_s_own_name() -> None:
    """LearningRateMonitor logs the LRs of LRFinder(schedule=...) as it logs those of a
    scheduler from configure_optimizers (lr-SGD), each the LR its step ran at."""
    torch.manual_seed(0)
    finder = LRFinder(num_iter=30, schedule=lambda r, n: S.cosine(r.suggestion, total_steps=n))
    logger = MemoryLogger()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(
            max_epochs=2,
            callbacks=[finder, pl.callbacks.LearningRateMonitor(logging_interval="step")],
            logger=logger,
            log_every_n_steps=1,
            limit_val_batches=0,
        ).fit(Tiny())
    keys = {k for _, m in logger.metrics for k in m if k.startswith("lr") and "finder" not in k}
    assert keys == {"lr-SGD"}
    s = S.cosine(finder.result.suggestion, total_steps=2 * BATCHES_PER_EPOCH)
    logged = [m["lr-SGD"] for _, m in logger.metrics if "lr-SGD" in m]
    assert logged == [s(k) for k in range(2 * BATCHES_PER_EPOCH)]


def test_finder_state_resumes_without_a_second_sweep(tmp_path: Any) -> None:
    torch.manual_seed(0)
    finder = LRFinder(num_iter=30, schedule=lambda r, n: S.cosine(r.suggestion, total_steps=n))
    rec = LRRecorder()
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=3, callbacks=[finder, rec, ckpt], enable_checkpointing=True).fit(Tiny())
    torch.manual_seed(0)
    finder2, rec2 = (
        LRFinder(num_iter=30, schedule=lambda r, n: S.cosine(r.suggestion, total_steps=n)),
        LRRecorder(),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=3, callbacks=[finder2, rec2]).fit(
            Tiny(), ckpt_path=str(tmp_path / "epoch=0-step=4.ckpt")
        )
    assert finder2.result.suggestion == finder.result.suggestion
    assert finder2.result.losses.tolist() == finder.result.losses.tolist()
    assert rec2.lrs == {k: v for k, v in rec.lrs.items() if k >= BATCHES_PER_EPOCH}


def test_a_resume_that_plans_other_steps_keeps_the_saved_schedule_and_says_so(
    tmp_path: Any,
) -> None:
    """The checkpoint holds the state of the schedule built for the run's planned steps: a
    resume with a larger max_epochs keeps that schedule (its LRs end at its end) and warns; a
    resume with the same plan does not warn."""
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1)
    ns: list[int] = []

    def cosine(r: Any, n: int) -> Any:
        ns.append(n)
        return S.cosine(r.suggestion, total_steps=n)

    torch.manual_seed(0)
    rec = LRRecorder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=3, callbacks=[LRFinder(num_iter=30, schedule=cosine), rec, ckpt],
                 enable_checkpointing=True).fit(Tiny())  # fmt: skip
    path = str(tmp_path / "epoch=0-step=4.ckpt")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        _trainer(max_epochs=3, callbacks=[LRFinder(num_iter=30, schedule=cosine)]).fit(
            Tiny(), ckpt_path=path
        )
    assert not [w for w in said if issubclass(w.category, LRFinderWarning)]
    rec2, resumed = LRRecorder(), LRFinder(num_iter=30, schedule=cosine)
    with pytest.warns(LRFinderWarning) as said:
        _trainer(max_epochs=5, callbacks=[resumed, rec2]).fit(Tiny(), ckpt_path=path)
    ours = [str(w.message) for w in said if issubclass(w.category, LRFinderWarning)]
    assert ours == [
        "LRFinder: this fit plans 20 steps in all, the run it resumes planned 12: the "
        "schedule is the one built for that run (12 steps), whose state the checkpoint "
        "holds; past its end the LR stays at its last value (start a new fit, or resume with "
        "the run's max_epochs/max_steps)"
    ]
    assert ns == [12, 12, 12]
    assert {k: v for k, v in rec2.lrs.items() if k < 12} == {
        k: v for k, v in rec.lrs.items() if k >= BATCHES_PER_EPOCH
    }
    assert {v for k, v in rec2.lrs.items() if k >= 12} == {0.0}
    # its own checkpoints hold the schedule's steps and this fit's plan
    state = resumed.state_dict()
    assert (state["total_steps"], state["planned_steps"]) == (12, 20)


def test_a_fit_resumed_from_a_checkpoint_without_the_curve_keeps_its_lr(tmp_path: Any) -> None:
    """The checkpoint's optimizer state (its LRs) is loaded after on_fit_start, over any LR the
    finder set: no sweep, a warning, and the run trains at the checkpoint's LR, as the module
    says (a sweep's suggestion was set on the module and logged, and never trained at)."""
    torch.manual_seed(0)
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=1, callbacks=[ckpt], enable_checkpointing=True).fit(Tiny(lr=0.02))
    steps: list[int] = []
    finder = LRFinder(num_iter=20, callback=lambda i, lr, loss: steps.append(i))
    rec = LRRecorder()
    module = Tiny(lr=0.02)
    with pytest.warns(LRFinderWarning, match="saved without LRFinder's range test"):
        _trainer(max_epochs=2, callbacks=[finder, rec]).fit(
            module, ckpt_path=str(tmp_path / "epoch=0-step=4.ckpt")
        )
    assert steps == [] and finder.result is None and module.lr == 0.02
    assert set(rec.lrs.values()) == {0.02}


@pytest.mark.parametrize(
    "made",
    [
        lambda r, n: 42,
        lambda r, n: f"linear(0.1, end_lr=-0.1, total_steps={n})",  # a spec's own error
        lambda r, n: S.constant(0.1) - S.linear(0.0, end_lr=0.2, total_steps=10),  # < 0 later
        lambda r, n: [S.constant(0.1)] * 2,  # one param group
        lambda r, n: [],
    ],
    ids=["not-a-schedule", "bad-spec", "negative", "two-for-one-group", "empty-list"],
)
def test_a_bad_schedule_returned_changes_nothing_and_names_the_callable(made) -> None:
    module = Tiny(lr=0.02)
    finder = LRFinder(num_iter=20, schedule=made)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"^LRFinder\(schedule=...\): what it returned: "):
            _trainer(max_epochs=1, callbacks=[finder]).fit(module)
    assert module.lr == 0.02


def test_a_schedule_per_group_returned_is_taken() -> None:
    module = Tiny(lr=0.02)
    rec = LRRecorder()
    finder = LRFinder(num_iter=20, schedule=lambda r, n: [S.constant(0.005)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=1, callbacks=[finder, rec]).fit(module)
    assert set(rec.lrs.values()) == {0.005}


@pytest.mark.parametrize("kw", [{"set_lr": False}, {"schedule": "constant(0.005)"}])
def test_a_fit_resumed_without_the_curve_sweeps_where_nothing_it_sets_is_overwritten(
    tmp_path: Any, kw: dict[str, Any]
) -> None:
    """set_lr=False sets no LR; a schedule= sets it at every step, after the checkpoint's
    optimizer state is loaded: these sweep as a new fit does."""
    torch.manual_seed(0)
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=1, callbacks=[ckpt], enable_checkpointing=True).fit(Tiny(lr=0.02))
        spec = kw.get("schedule")
        finder = LRFinder(num_iter=20, **({"schedule": lambda r, n: spec} if spec else kw))
        rec = LRRecorder()
        _trainer(max_epochs=2, callbacks=[finder, rec]).fit(
            Tiny(lr=0.02), ckpt_path=str(tmp_path / "epoch=0-step=4.ckpt")
        )
    assert finder.result is not None
    if spec:
        assert rec.lrs[max(rec.lrs)] == 0.005


class TwoGroups(Tiny):
    """The first layer at the module's LR, the last at 10x it."""

    def configure_optimizers(self) -> Any:
        groups = [
            {"params": self.net[0].parameters()},
            {"params": self.net[2].parameters(), "lr": 10 * self.lr},
        ]
        return torch.optim.SGD(groups, lr=self.lr)


def test_a_schedule_on_a_fit_resumed_without_the_curve_runs_over_the_steps_it_trains(
    tmp_path: Any,
) -> None:
    """The checkpoint's LRs and step are loaded after on_fit_start: the schedule is built again
    for the steps left and sets the first resumed step's LRs too, at the groups' ratios."""
    torch.manual_seed(0)
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1)
    lrs: dict[int, list[float]] = {}

    class Both(pl.Callback):  # type: ignore[misc,name-defined]
        def on_train_batch_start(self, trainer: Any, *args: Any) -> None:
            lrs[trainer.global_step] = [g["lr"] for g in trainer.optimizers[0].param_groups]

    ns: list[int] = []

    def linear(r: Any, n: int) -> Any:
        ns.append(n)
        return S.linear(1.0, end_lr=0.0, total_steps=n)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=1, callbacks=[ckpt], enable_checkpointing=True).fit(TwoGroups(0.02))
        finder = LRFinder(num_iter=20, schedule=linear)
        later = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "2", save_top_k=-1)
        _trainer(max_epochs=3, callbacks=[finder, Both(), later], enable_checkpointing=True).fit(
            TwoGroups(0.02), ckpt_path=str(tmp_path / "epoch=0-step=4.ckpt")
        )
        assert ns == [3 * BATCHES_PER_EPOCH, 2 * BATCHES_PER_EPOCH]  # checked first, then built
        first = dict(lrs)
        assert {k: v[0] for k, v in first.items()} == {4 + i: 1 - i / 8 for i in range(8)}
        assert all(v[1] == 10 * v[0] for v in first.values())
        # a resume of that fit builds the schedule it saved the state of (over 8 steps)
        lrs.clear()
        _trainer(max_epochs=3, callbacks=[LRFinder(num_iter=20, schedule=linear), Both()]).fit(
            TwoGroups(0.02), ckpt_path=str(tmp_path / "2" / "epoch=1-step=8.ckpt")
        )
    assert ns[2:] == [2 * BATCHES_PER_EPOCH]
    assert lrs == {k: v for k, v in first.items() if k >= 8}


def test_a_curve_loaded_by_validate_is_not_reused_by_the_next_new_fit(tmp_path: Any) -> None:
    torch.manual_seed(0)
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=1, callbacks=[LRFinder(num_iter=20), ckpt],
                 enable_checkpointing=True).fit(Tiny())  # fmt: skip
        steps: list[int] = []
        finder = LRFinder(num_iter=20, callback=lambda i, lr, loss: steps.append(i))
        path = str(tmp_path / "epoch=0-step=4.ckpt")
        _trainer(max_epochs=1, callbacks=[finder]).validate(Tiny(), ckpt_path=path)
        assert steps == []  # validate sweeps nothing
        saved = finder.result
        fresh = Tiny(lr=0.123)
        _trainer(max_epochs=1, callbacks=[finder]).fit(fresh)  # a new run: it sweeps
    assert steps == list(range(len(finder.result.lrs)))
    assert finder.result is not saved
    assert fresh.lr == finder.result.suggestion


# ----------------------------------------------------------------------------- plateau

VALS = [1.0, 0.9, 0.95, 0.97, 0.99, 0.8, 0.85, 0.9]


def _plateau_run(tmp_path: Any, epochs: int, ckpt_path: str | None = None) -> dict[int, float]:
    rec = LRRecorder()
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1)
    trainer = _trainer(
        max_epochs=epochs,
        callbacks=[ReportMetric(), rec, ckpt],
        enable_checkpointing=True,
    )
    torch.manual_seed(0)
    trainer.fit(Tiny(spec="constant(0.04)", patience=1, val_losses=VALS), ckpt_path=ckpt_path)
    return rec.lrs


def test_plateau_cuts_after_patience_plus_one_bad_evaluations_and_resumes(tmp_path: Any) -> None:
    lrs = _plateau_run(tmp_path / "a", epochs=8)
    per_epoch = [lrs[e * BATCHES_PER_EPOCH] for e in range(8)]
    # evaluations: 1.0 best, 0.9 best, 0.95 bad, 0.97 bad -> cut after epoch 3 (patience=1),
    # 0.99 bad, 0.8 best, 0.85 bad, 0.9 bad -> cut after epoch 7 (not seen)
    assert per_epoch == [0.04] * 4 + [0.02] * 4
    assert all(lrs[k] == per_epoch[k // BATCHES_PER_EPOCH] for k in lrs)
    resumed = _plateau_run(
        tmp_path / "b", epochs=8, ckpt_path=str(tmp_path / "a/epoch=2-step=12.ckpt")
    )
    assert resumed == {k: v for k, v in lrs.items() if k >= 3 * BATCHES_PER_EPOCH}


class Composite(Tiny):
    """An lrkit plateau scheduler inside torch's SequentialLR or ChainedScheduler."""

    def __init__(self, kind: str) -> None:
        super().__init__(val_losses=[1.0] * 4)  # flat: a cut after every evaluation
        self.kind = kind
        self.plateau = ReduceOnPlateau(factor=0.5, patience=0)

    def configure_optimizers(self) -> Any:
        L = torch.optim.lr_scheduler
        opt = torch.optim.SGD(self.parameters(), lr=0.04)
        main = lt.scheduler(opt, "constant(0.04)", feedback=self.plateau)
        if self.kind == "sequential":
            first = L.LinearLR(opt, start_factor=0.5, total_iters=2)
            sched: Any = L.SequentialLR(opt, [first, main], milestones=[2])
        elif self.kind == "two_lrkit_phases":  # the first phase has its own controller
            self.first_plateau = ReduceOnPlateau(factor=0.5, patience=0)
            first = lt.scheduler(opt, "constant(0.04)", feedback=self.first_plateau)
            sched = L.SequentialLR(opt, [first, main], milestones=[2])
        else:
            sched = L.ChainedScheduler([main, L.ExponentialLR(opt, gamma=1.0)])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@pytest.mark.parametrize("kind", ["sequential", "chained", "two_lrkit_phases"])
def test_report_metric_reaches_an_lrkit_scheduler_inside_a_torch_composite(kind: str) -> None:
    model = Composite(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "no lrkit scheduler" warning
        _trainer(max_epochs=3, callbacks=[ReportMetric()]).fit(model)
    # 1.0 best, then two bad evaluations at patience=0: two cuts
    assert model.plateau.num_updates == 3
    assert model.plateau.scale == 0.25
    # only the current phase sets the LRs: the ended one's controller learns, cuts nothing
    assert model.trainer.optimizers[0].param_groups[0]["lr"] == 0.04 * 0.25
    if kind == "two_lrkit_phases":
        assert model.first_plateau.num_updates == 3


class SharedController(Tiny):
    """Two optimizers, each with an lrkit scheduler, sharing one plateau controller."""

    def __init__(self) -> None:
        super().__init__(val_losses=[1.0, 1.0, 1.0])
        self.automatic_optimization = False
        self.plateau = ReduceOnPlateau(factor=0.5, patience=1)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        for opt in self.optimizers():
            opt.zero_grad()
            self.manual_backward(F.mse_loss(self.net(x), y))
            opt.step()
        for sched in self.lr_schedulers():
            sched.step()

    def configure_optimizers(self) -> Any:
        first, second = self.net[0].parameters(), self.net[2].parameters()
        opts = [torch.optim.SGD(first, lr=0.04), torch.optim.SGD(second, lr=0.04)]
        return opts, [lt.scheduler(o, "constant(0.04)", feedback=self.plateau) for o in opts]


def test_report_metric_warns_when_no_validation_ran_in_the_fit() -> None:
    model = Tiny(spec="constant(0.04)", patience=0)
    with pytest.warns(RuntimeWarning, match="^ReportMetric: no validation ran in this fit "):
        _trainer(max_epochs=2, limit_val_batches=0, callbacks=[ReportMetric()]).fit(model)
    # a run that ends at max_steps before its first validation
    with pytest.warns(RuntimeWarning) as said:
        _trainer(max_steps=2, callbacks=[ReportMetric()]).fit(
            Tiny(spec="constant(0.04)", patience=0)
        )
    assert [str(w.message) for w in said if "ReportMetric" in str(w.message)] == [
        "ReportMetric: no validation ran in this fit (limit_val_batches=0, no val_dataloader, "
        "a check_val_every_n_epoch or val_check_interval the run ended before, e.g. at "
        "max_steps): the feedback controllers received no metric"
    ]
    with warnings.catch_warnings():  # a fit that validated: no such warning
        warnings.simplefilter("error", RuntimeWarning)
        warnings.filterwarnings("ignore", message="^(?!ReportMetric)")
        _trainer(max_epochs=1, callbacks=[ReportMetric()]).fit(
            Tiny(spec="constant(0.04)", patience=0)
        )
    with warnings.catch_warnings(record=True) as caught:  # no controller: nothing to say
        warnings.simplefilter("always")
        _trainer(max_epochs=2, limit_val_batches=0, callbacks=[ReportMetric()]).fit(
            Tiny(spec="constant(0.04)")
        )
    assert [str(w.message) for w in caught if "ReportMetric" in str(w.message)] == []


def test_report_metric_without_a_controller_to_feed_says_so_once_per_fit() -> None:
    said = "ReportMetric: no lrkit scheduler with a feedback controller among the trainer's LR "
    said += "schedulers (lrkit.torch.scheduler(opt, schedule, feedback=...))"
    report = ReportMetric()
    for _ in range(2):  # three validations in each fit, one warning each fit
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _trainer(max_epochs=3, callbacks=[report]).fit(Tiny(spec="constant(0.04)"))
        ours = [w for w in caught if str(w.message).startswith("ReportMetric")]
        assert [(str(w.message), w.filename) for w in ours] == [(said, __file__)]


def test_report_metric_updates_a_shared_controller_once_per_validation() -> None:
    model = SharedController()
    _trainer(max_epochs=2, callbacks=[ReportMetric()]).fit(model)
    # two validations: 1.0 best, 1.0 bad -- patience=1 is not yet exhausted
    assert model.plateau.num_updates == 2
    assert model.plateau.scale == 1.0
    model = SharedController()
    _trainer(max_epochs=3, callbacks=[ReportMetric()]).fit(model)
    assert model.plateau.num_updates == 3 and model.plateau.scale == 0.5  # the cut, once
    assert [o.param_groups[0]["lr"] for o in model.trainer.optimizers] == [0.02, 0.02]


def test_report_metric_says_once_which_metric_it_reports_under_manual_optimization() -> None:
    # Lightning drops a config's "monitor" under manual optimization: "val_loss" is reported,
    # and said so once (three validations, one warning); a named monitor is not warned of
    model = SharedController()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer(max_epochs=3, callbacks=[ReportMetric()]).fit(model)
    ours = [w for w in caught if "ReportMetric: under manual optimization" in str(w.message)]
    assert len(ours) == 1 and "ReportMetric(monitor=...)" in str(ours[0].message)
    assert model.plateau.num_updates == 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer(max_epochs=1, callbacks=[ReportMetric("val_loss")]).fit(SharedController())
    assert not [w for w in caught if "ReportMetric: under manual" in str(w.message)]


def test_report_metric_skips_the_sanity_check() -> None:
    """The sanity check's validation feeds no controller: one observation per epoch."""
    model = Tiny(spec="constant(0.04)", patience=0, val_losses=[1.0, 1.0])
    _trainer(max_epochs=2, num_sanity_val_steps=1, callbacks=[ReportMetric()]).fit(model)
    plateau = model.trainer.lr_scheduler_configs[0].scheduler.feedback
    assert plateau.num_updates == 2 and plateau.scale == 0.5  # 1.0 best, 1.0 bad: one cut


def test_finder_schedule_of_the_wrong_arity_is_refused_before_the_sweep() -> None:
    # the Hugging Face form schedule(n) is refused when the callback is made, not after a sweep
    with pytest.raises(TypeError, match=r"schedule must be a callable schedule\(result, total_s"):
        LRFinder(schedule=lambda n: S.cosine(0.1, total_steps=n))
    LRFinder(schedule=lambda r, n: S.cosine(r.suggestion, total_steps=n))
    with pytest.raises(TypeError, match=r"callback must be a callable callback\(i, lr, loss\)"):
        LRFinder(callback=lambda i: None)


def test_report_metric_warns_on_a_missing_metric() -> None:
    trainer = _trainer(max_epochs=1, callbacks=[ReportMetric("nope")])
    with pytest.warns(RuntimeWarning, match="'nope' is not logged"):
        trainer.fit(Tiny(spec="constant(0.04)", patience=1))
    with pytest.raises(ValueError, match="monitor"):
        ReportMetric("")


@pytest.mark.parametrize(
    "kwargs, says",
    [
        ({"metric": "val_acc"}, "(use monitor=, the name of the metric)"),
        ({"monitr": "val_acc"}, "(did you mean monitor?)"),
        ({"mode": "max"}, "(a controller's mode is its own: lrkit.feedback.ReduceOnPlateau(mode))"),
    ],
)
def test_report_metric_names_the_option_meant_for_an_unknown_keyword(kwargs, says) -> None:
    with pytest.raises(TypeError) as info:
        ReportMetric(**kwargs)
    assert str(info.value) == (
        f"{next(iter(kwargs))} is not an option of lrkit.lightning.ReportMetric {says}; "
        "options: monitor"
    )
    assert ReportMetric(monitor="val_acc").monitor == "val_acc"


# ----------------------------------------------------------------------------- finder data


class Workers(Tiny):
    def train_dataloader(self) -> DataLoader:
        x, y = _data()
        return DataLoader(
            TensorDataset(x, y), batch_size=16, shuffle=True, num_workers=1, persistent_workers=True
        )


class TwoLoaders(Tiny):
    """train_dataloader returns a dict of loaders; each batch is a dict of their batches."""

    def __init__(self, as_list: bool = False) -> None:
        super().__init__()
        self.as_list = as_list

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        a, b = (batch[0], batch[1]) if self.as_list else (batch["a"], batch["b"])
        x, y = torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])
        return F.mse_loss(self.net(x), y)

    def train_dataloader(self) -> Any:
        x, y = _data()
        a = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
        b = DataLoader(TensorDataset(x[:32], y[:32]), batch_size=8, shuffle=True)
        return [a, b] if self.as_list else {"a": a, "b": b}


def _trained(model: Any, finder: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(callbacks=[finder] if finder else [], limit_val_batches=0, **kwargs).fit(model)
    return _state(model)


@pytest.mark.parametrize("as_list", [False, True])
def test_finder_with_several_train_loaders_combines_them_as_fit_does(as_list: bool) -> None:
    torch.manual_seed(0)
    plain = _trained(TwoLoaders(as_list), None, max_steps=6)
    torch.manual_seed(0)
    finder = LRFinder(num_iter=20, set_lr=False, plot=False)
    swept = _trained(TwoLoaders(as_list), finder, max_steps=6)
    assert finder.result is not None and finder.result.steps > 0
    assert _same(plain, swept)


def _middle(lrs: Any, losses: Any) -> float:
    return float(lrs[len(lrs) // 2])


def test_finder_with_a_callable_rule_reloads_from_its_state() -> None:
    torch.manual_seed(0)
    finder = LRFinder(num_iter=20, set_lr=False, plot=False, rule=_middle)
    _trained(Tiny(), finder, max_epochs=0)
    res = finder.result
    assert res is not None and res.suggestion == res.lrs[len(res.lrs) // 2]
    state = json.loads(json.dumps(finder.state_dict()))
    again = LRFinder(num_iter=20, set_lr=False, plot=False, rule=_middle)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again.load_state_dict(state)
    assert again.result.suggestion == res.suggestion
    assert again.result.losses.tolist() == res.losses.tolist()

    def renamed(lrs: Any, losses: Any) -> float:
        return float(lrs[len(lrs) // 2])

    other = LRFinder(num_iter=20, rule=renamed)
    with pytest.warns(RuntimeWarning, match="'_middle'.*'renamed'"):
        other.load_state_dict(state)
    assert other.result.suggestion == res.suggestion
    with pytest.raises(
        ValueError,
        match=r"^LRFinder: the checkpoint's sweep used the rule '_middle', not one of "
        r"lrkit.finder.RULES "
        r"\('budget_edge', .*\): a callable rule.*: resume with LRFinder\(rule=_middle\)",
    ):
        LRFinder(num_iter=20).load_state_dict(state)


def test_a_callable_rule_of_another_shape_is_refused_when_the_finder_is_made() -> None:
    from lrkit.finder import SweepOptions

    def one(lrs: Any) -> float:
        return float(lrs[0])

    with pytest.raises(
        TypeError,
        match=r"^rule must be a callable rule\(lrs, losses\) -> lr, taking 2 positional "
        r"arguments; got one\(lrs: 'Any'\) -> 'float'$",
    ):
        LRFinder(num_iter=20, rule=one)
    with pytest.raises(TypeError, match=r"^rule must be a callable rule\(lrs, losses\) -> lr"):
        LRFinder(options=SweepOptions(num_iter=20), rule=lambda lrs, losses, extra: 1.0)


def test_a_run_resumed_with_a_callable_rule_does_not_sweep_again(tmp_path: Any) -> None:
    calls = [0]

    class Counting(Tiny):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            calls[0] += 1
            return super().training_step(batch, batch_idx)

    torch.manual_seed(0)
    finder = LRFinder(num_iter=20, plot=False, rule=_middle)
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=1, callbacks=[finder, ckpt], enable_checkpointing=True).fit(Tiny())
    resumed, model = LRFinder(num_iter=20, plot=False, rule=_middle), Counting()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=2, callbacks=[resumed], limit_val_batches=0).fit(
            model, ckpt_path=str(tmp_path / "epoch=0-step=4.ckpt")
        )
    assert calls[0] == BATCHES_PER_EPOCH  # the second epoch only: no sweep
    assert resumed.result.suggestion == finder.result.suggestion == model.lr


def test_finder_with_namedtuple_batches() -> None:
    from collections import namedtuple

    Batch = namedtuple("Batch", ["x", "y"])
    seen: list[type] = []

    class Named(Tiny):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            seen.append(type(batch))
            return F.mse_loss(self.net(batch.x), batch.y)

        def train_dataloader(self) -> DataLoader:
            x, y = _data()
            return DataLoader(
                TensorDataset(x, y),
                batch_size=16,
                collate_fn=lambda items: Batch(*map(torch.stack, zip(*items))),
            )

    torch.manual_seed(0)
    finder = LRFinder(num_iter=20, set_lr=False, plot=False)
    _trained(Named(), finder, max_epochs=0)
    assert finder.result is not None and finder.result.steps > 0
    assert set(seen) == {Batch}


def test_finder_schedule_for_an_endless_run_is_a_one_line_error() -> None:
    torch.manual_seed(0)
    model = Tiny()
    finder = LRFinder(num_iter=10, schedule=lambda r, n: S.cosine(r.max_lr, total_steps=n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError) as info:  # before the fix: OverflowError from int(inf)
            _trainer(max_epochs=-1, callbacks=[finder], limit_val_batches=0).fit(model)
    assert str(info.value) == (
        "LRFinder(schedule=...) builds the schedule for the steps the run trains, but "
        "trainer.estimated_stepping_batches is inf (no max_steps or max_epochs limit, or an "
        "endless train dataloader): set max_steps, or pass schedule=None"
    )
    assert model.lr == 0.05  # the module's LR is left as it was


def test_report_metric_leaves_the_lr_alone_in_trainer_validate() -> None:
    torch.manual_seed(0)
    model = Tiny(spec="constant(0.05)", patience=0, val_losses=[1.0] * 4)
    trainer = _trainer(max_epochs=2, callbacks=[ReportMetric()])
    trainer.fit(model)
    sched = trainer.lr_scheduler_configs[0].scheduler
    assert sched.feedback.scale == 0.5 and sched.feedback.num_updates == 2
    state = sched.state_dict()
    trainer.validate(model, verbose=False)  # before the fix: a third report, a second cut
    assert sched.state_dict() == state
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.025


def test_finder_files_of_an_earlier_sweep_are_not_overwritten(tmp_path: Any) -> None:
    (tmp_path / "lr_finder.json").write_text("earlier")
    (tmp_path / "lr_finder-1.png").write_text("earlier")
    torch.manual_seed(0)
    finder = LRFinder(num_iter=20, total_steps=200, set_lr=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=0, callbacks=[finder], logger=MemoryLogger(str(tmp_path))).fit(Tiny())
    assert (tmp_path / "lr_finder.json").read_text() == "earlier"
    assert (tmp_path / "lr_finder-1.png").read_text() == "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lr_finder-1.png",
        "lr_finder-2.json",
        "lr_finder-2.png",
        "lr_finder.json",
    ]
    saved = json.loads((tmp_path / "lr_finder-2.json").read_text())
    assert finder.result is not None and saved["suggestion"] == finder.result.suggestion


class Metered(Tiny):
    """training_step updates a torchmetrics metric that the epoch end reads and resets."""

    def __init__(self) -> None:
        super().__init__()
        import torchmetrics

        self.batches = torchmetrics.SumMetric()
        self.counted: list[int] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.batches.update(torch.ones(()))
        return super().training_step(batch, batch_idx)

    def on_train_epoch_end(self) -> None:
        self.counted.append(int(self.batches.compute()))
        self.batches.reset()


def test_finder_leaves_the_metrics_training_step_updates_as_without_it() -> None:
    pytest.importorskip("torchmetrics")
    runs = []
    for finder in (None, LRFinder(num_iter=20, set_lr=False, plot=False)):
        torch.manual_seed(0)
        model = Metered()
        state = _trained(model, finder, max_epochs=2)
        runs.append((model.counted, state))
    assert runs[0][0] == runs[1][0] == [4, 4]  # 64 samples, batches of 16: no sweep step counted
    assert _same(runs[0][1], runs[1][1])


@pytest.mark.parametrize("name", ["set_lr", "plot", "progress", "warn"])
def test_finder_flags_must_be_bools(name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be True or False, got 'false'$"):
        LRFinder(**{name: "false"})  # a config file's "false" is truthy: refused, not used


class _NoIndex(Tiny):
    """training_step(self, batch) without batch_idx, which Lightning allows; every fourth
    call returns None, Lightning's "skip this batch"."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def training_step(self, batch: Any) -> Any:  # type: ignore[override]
        self.calls += 1
        if self.calls % 4 == 0:
            return None
        x, y = batch
        return F.mse_loss(self.net(x), y)


def _both_sweeps(
    model: Any,
    ref_model: Any,
    *,
    optimizer: Any,
    step: Any,
    num_iter: int,
    val_data: Any = None,
    datamodule: Any = None,
    **trainer_kwargs: Any,
) -> tuple[Any, Any]:
    """The same sweep twice from the same RNG state: by hand, ``lrkit.torch.find_lr`` on
    ``ref_model`` (a copy) with ``step``, and by :class:`LRFinder` inside ``fit`` of
    ``model``. Returns ``(by hand, the finder's result)``."""
    torch.manual_seed(7)
    ref = lt.find_lr(
        ref_model,
        optimizer,
        None,
        ref_model.train_dataloader(),
        step=step,
        num_iter=num_iter,
        total_steps=200,
        val_data=val_data,
        warn=False,
    )
    finder = LRFinder(
        num_iter=num_iter, total_steps=200, set_lr=False, plot=False, val_data=val_data
    )
    torch.manual_seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(callbacks=[finder], **trainer_kwargs).fit(model, datamodule=datamodule)
    return ref, finder.result


def test_finder_calls_training_step_as_fit_does_and_skips_a_none() -> None:
    torch.manual_seed(0)
    model = _NoIndex()
    ref_model = copy.deepcopy(model)
    ref, res = _both_sweeps(
        model,
        ref_model,
        optimizer=ref_model.configure_optimizers(),
        step=lambda m, b: m.training_step(b),
        num_iter=30,
        max_epochs=1,
    )
    assert res is not None and res.losses.tolist() == ref.losses.tolist()
    assert len(ref.losses) > 10 and model.calls > len(ref.losses)  # the Nones were skipped


class _LossDict(Tiny):
    """training_step returns a dict holding the loss and another value, as Lightning allows."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = super().training_step(batch, batch_idx)
        return {"loss": loss, "size": len(batch[0])}


def test_finder_reads_the_loss_of_a_dict_training_step_returns() -> None:
    torch.manual_seed(0)
    model = _LossDict()
    ref_model = copy.deepcopy(model)
    ref, res = _both_sweeps(
        model,
        ref_model,
        optimizer=ref_model.configure_optimizers(),
        step=lambda m, b: m.training_step(b, 0)["loss"],
        num_iter=30,
        max_epochs=0,
    )
    assert res is not None and len(res.losses) > 10
    assert res.losses.tolist() == ref.losses.tolist()


def test_finder_clips_gradients_as_fit_does() -> None:
    """gradient_clip_val clips in the sweep (through configure_gradient_clipping) as in fit."""

    def sweep(clip: float | None) -> Any:
        torch.manual_seed(0)
        model = Tiny()
        finder = LRFinder(num_iter=30, total_steps=200, set_lr=False, plot=False)
        torch.manual_seed(7)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _trainer(max_epochs=0, callbacks=[finder], gradient_clip_val=clip).fit(model)
        return finder.result

    def by_hand(clip: float | None) -> Any:
        torch.manual_seed(0)
        params = list((model := Tiny()).parameters())
        if clip is None:
            return _reference(model, seed=7)
        return _reference(
            model, seed=7, before_step=lambda opt: torch.nn.utils.clip_grad_norm_(params, clip)
        )

    clipped, plain = sweep(0.01), sweep(None)
    assert clipped.losses.tolist() == by_hand(0.01).losses.tolist()
    assert plain.losses.tolist() == by_hand(None).losses.tolist()
    assert clipped.losses.tolist() != plain.losses.tolist()


class _OwnClipping(Tiny):
    """configure_gradient_clipping overridden: records what it is given, then clips."""

    def __init__(self) -> None:
        super().__init__()
        self.clipping: list[tuple[Any, Any]] = []

    def configure_gradient_clipping(
        self, optimizer: Any, gradient_clip_val: Any = None, gradient_clip_algorithm: Any = None
    ) -> None:
        self.clipping.append((gradient_clip_val, gradient_clip_algorithm))
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)


def test_finder_passes_the_trainer_s_clipping_to_configure_gradient_clipping() -> None:
    torch.manual_seed(0)
    model = _OwnClipping()
    finder = LRFinder(num_iter=10, total_steps=200, set_lr=False, plot=False)
    _trained(model, finder, max_epochs=0, gradient_clip_val=0.5, gradient_clip_algorithm="value")
    assert finder.result is not None and len(model.clipping) >= finder.result.steps
    assert set(model.clipping) == {(0.5, "value")}


def test_a_finder_used_again_sweeps_again() -> None:
    """Only the fit resuming from a checkpoint reuses the saved curve; another fit (another
    model) sweeps anew."""
    finder = LRFinder(num_iter=30, total_steps=200, plot=False)
    results = []
    for lr in (0.05, 0.5):
        torch.manual_seed(0)
        model = Tiny(lr=lr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _trainer(max_epochs=0, callbacks=[finder]).fit(model)
        results.append(finder.result)
        assert model.lr == finder.result.suggestion
    assert results[0] is not results[1]


def test_finder_schedule_beside_the_modules_own_scheduler_is_refused() -> None:
    class WithOneCycle(Tiny):
        def configure_optimizers(self) -> Any:
            opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=100)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    model = WithOneCycle()
    before = _state(model)
    finder = LRFinder(num_iter=10, schedule=lambda r, n: S.constant(0.05))
    with pytest.raises(ValueError) as info:
        _trainer(max_epochs=1, callbacks=[finder]).fit(model)
    assert str(info.value) == (
        "LRFinder(schedule=...) sets every LR itself, but configure_optimizers also returned "
        "OneCycleLR, which may have changed the optimizer's lr and momentum when it was built: "
        "return only the optimizer from configure_optimizers, or pass schedule=None to keep "
        "yours"
    )
    assert _same(before, _state(model)) and model.lr == 0.05 and finder.result is None


class _Typed(Tiny):
    """Records the dtype of the inputs training_step receives."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: list[torch.dtype] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        self.dtypes.append(x.dtype)
        return F.mse_loss(self.net(x), y)


@pytest.mark.parametrize(
    "precision, dtype",
    [("64-true", torch.float64), ("bf16-true", torch.bfloat16), ("16-true", torch.float16)],
)
def test_finder_converts_the_batches_as_fit_does_under_a_true_precision(
    precision: str, dtype: torch.dtype
) -> None:
    """Lightning converts a "true" precision's module and inputs (convert_input): the sweep's
    batches too (before the fix: float32 inputs into a float64 module, a RuntimeError)."""
    torch.manual_seed(0)
    model = _Typed()
    ref_model = copy.deepcopy(model).to(dtype)
    ref, res = _both_sweeps(
        model,
        ref_model,
        optimizer=torch.optim.SGD(ref_model.parameters(), lr=0.05, momentum=0.9),
        step=lambda m, b: m.training_step(tuple(t.to(dtype) for t in b), 0),
        num_iter=20,
        max_epochs=0,
        precision=precision,
    )
    assert res is not None
    assert res.losses.tolist() == ref.losses.tolist()
    assert set(model.dtypes) == {dtype}


class _DictStep(Tiny):
    """training_step reads a dict batch; the loader yields (x, y): the hooks of _Hooks make
    one (on the module, or on a datamodule)."""

    def __init__(self, calls: list[str]) -> None:
        super().__init__()
        self.calls = calls

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return F.mse_loss(self.net(batch["x"]), batch["y"])


class _Hooks:
    """on_before_batch_transfer makes a dict of an (x, y) batch, on_after_batch_transfer
    doubles y (an augmentation); each call is recorded in ``calls``."""

    calls: list[str]

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        self.calls.append("before")
        x, y = batch
        return {"x": x, "y": y}

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        self.calls.append("after")
        return {"x": batch["x"], "y": 2 * batch["y"]}


class _Hooked(_Hooks, _DictStep):
    pass


class _HookedData(_Hooks, pl.LightningDataModule):  # type: ignore[misc,name-defined]
    def __init__(self, calls: list[str]) -> None:
        super().__init__()
        self.calls = calls

    def train_dataloader(self) -> DataLoader:
        x, y = _data()
        return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)


@pytest.mark.parametrize("on", ["module", "datamodule"])
def test_finder_puts_batches_through_the_transfer_hooks_as_fit_does(on: str) -> None:
    """The sweep's batches, and val_data's, go through on_before_batch_transfer and
    on_after_batch_transfer, the module's or the datamodule's (before the fix: a tuple reached
    training_step, a TypeError); each batch once, when it is drawn (a held batch is not
    transformed again at each evaluation)."""
    gen = torch.Generator().manual_seed(5)
    val = [(torch.randn(8, 4, generator=gen), torch.randn(8, 1, generator=gen)) for _ in range(2)]
    torch.manual_seed(0)
    calls: list[str] = []
    model = _Hooked(calls) if on == "module" else _DictStep(calls)
    ref_model = copy.deepcopy(model)
    ref, res = _both_sweeps(
        model,
        ref_model,
        optimizer=ref_model.configure_optimizers(),
        step=lambda m, b: m.training_step({"x": b[0], "y": 2 * b[1]}, 0),
        num_iter=30,
        val_data=val,
        datamodule=_HookedData(calls) if on == "datamodule" else None,
        max_epochs=0,
    )
    assert res is not None and len(res.held_losses) > 0
    assert res.losses.tolist() == ref.losses.tolist()
    assert res.held_losses.tolist() == ref.held_losses.tolist()
    # the 2 held batches, then one batch per sweep step, each through both hooks once
    assert calls == ["before", "after"] * (len(val) + len(res.losses))


def test_finder_attr_name_the_module_lacks_is_a_one_line_error() -> None:
    """An attr_name given and missing is refused with a schedule too (before the fix the
    suggestion was silently written nowhere)."""
    for schedule in (None, lambda r, n: S.constant(r.suggestion)):
        model = Tiny()
        finder = LRFinder(num_iter=10, attr_name="no_such_attr", schedule=schedule)
        with pytest.raises(ValueError) as info:
            _trainer(max_epochs=1, callbacks=[finder]).fit(model)
        assert str(info.value) == (
            "LRFinder(attr_name='no_such_attr'): Tiny has no attribute 'no_such_attr' (nor in "
            "hparams) to write the suggestion to: name the one configure_optimizers reads, or "
            "pass set_lr=False"
        )
        assert finder.result is None and model.lr == 0.05  # refused before the sweep


# ----------------------------------------------------------------------------- finder options


@pytest.mark.parametrize("snapshot", ["memory", "disk"])
def test_finder_snapshot_and_callback_are_those_of_find_lr(snapshot: str, monkeypatch: Any) -> None:
    import tempfile

    made: list[str] = []
    real = tempfile.mkdtemp

    def mkdtemp(**kw: Any) -> str:
        made.append(real(**kw))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    torch.manual_seed(0)
    model = Tiny()
    ref_calls: list[tuple[int, float, float]] = []
    ref = _reference(copy.deepcopy(model), seed=7, callback=lambda *a: ref_calls.append(a))
    before, calls = _state(model), []
    finder = LRFinder(
        num_iter=30,
        total_steps=200,
        set_lr=False,
        plot=False,
        snapshot=snapshot,
        callback=lambda i, lr, loss: calls.append((i, lr, loss)),
    )
    torch.manual_seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=0, callbacks=[finder]).fit(model)
    res = finder.result
    assert res is not None and _same(before, _state(model))  # restored exactly
    assert res.losses.tolist() == ref.losses.tolist() and res.suggestion == ref.suggestion
    # called after every sweep step, with the step's index, LR and loss, as find_lr calls it
    assert calls == ref_calls and len(calls) == res.steps
    assert calls[: len(res.lrs)] == list(
        zip(range(len(res.lrs)), res.lrs.tolist(), res.losses.tolist())
    )
    ours = [p for p in made if os.path.basename(p).startswith("lrkit_find_")]
    assert len(ours) == (1 if snapshot == "disk" else 0)
    assert not any(os.path.exists(p) for p in ours)  # the copy on disk is removed


@pytest.mark.parametrize("warn", [True, False])
def test_finder_warn_false_leaves_the_finders_warnings_unsaid(warn: bool) -> None:
    from lrkit.finder import LRFinderWarning

    torch.manual_seed(0)
    # a sweep that ends long before the loss turns up: an unreliable result
    finder = LRFinder(
        num_iter=10, end_lr=1e-5, max_extra_iter=0, set_lr=False, plot=False, warn=warn
    )
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        _trainer(max_epochs=0, callbacks=[finder]).fit(Tiny())
    res = finder.result
    assert res is not None and not res.reliable and res.warnings
    said = [str(w.message) for w in rec if issubclass(w.category, LRFinderWarning)]
    assert said == ([f"LR range test: {m}" for m in res.warnings] if warn else [])


def test_finder_refuses_bad_snapshot_and_callback_before_fit() -> None:
    with pytest.raises(ValueError, match=r"^snapshot must be one of 'memory', 'disk', got "):
        LRFinder(snapshot="tape")
    with pytest.raises(TypeError, match=r"^callback must be a callable callback\(i, lr, loss\)"):
        LRFinder(callback="print")  # type: ignore[arg-type]


def test_finder_state_round_trips_lr_min_and_the_family_and_reads_a_010_state() -> None:
    torch.manual_seed(0)
    finder = LRFinder(num_iter=30, total_steps=200, set_lr=False, plot=False)
    _trained(Tiny(), finder, max_epochs=0)
    res = finder.result
    assert res is not None and res.lr_min is not None
    state = json.loads(json.dumps(finder.state_dict()))
    saved = state["result"]
    assert saved["lr_min"] == res.lr_min
    # SGD with momentum, read off the optimizer: the options name no family
    assert saved["optimizer_family"] == saved["optimizer"] == "momentum"
    assert saved["options"]["optimizer_family"] is None
    again = LRFinder(num_iter=30, total_steps=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again.load_state_dict(state)
    assert again.result is not None and again.result.to_dict() == res.to_dict()
    # the state lrkit 0.1.0 saved: the family as "optimizer" only, no "lr_min"
    old = {k: v for k, v in saved.items() if k not in ("optimizer_family", "lr_min")}
    older = LRFinder(num_iter=30, total_steps=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        older.load_state_dict({"result": old})
    assert older.result is not None and older.result.optimizer_family == "momentum"
    assert older.result.to_dict() == res.to_dict()


@pytest.mark.parametrize("held", [False, True])
def test_a_checkpoint_keeps_its_curve_where_this_versions_stops_would_cut_it(held: bool) -> None:
    """A saved curve is replayed as it was recorded, its stops not judged again: a sweep whose
    rules ran on where this version's stop (a checkpoint of another version, or of other
    options) comes back whole, with its own stop reason and stop LR."""
    from lrkit.finder import range_test

    def loss(lr: float) -> float:  # a negative log-likelihood that rises at large LRs
        return -1.0 - 2.0 * min(lr, 1e-2) ** 0.1 + (lr / 1e-2) ** 2

    evaluate = (lambda: -1.5) if held else None
    saved = range_test(loss, evaluate=evaluate, stop_early=False, diverge_th=1e6,
                       max_extra_iter=0, warn=False)  # fmt: skip
    state = json.loads(json.dumps(saved.to_dict()))
    state["options"]["diverge_th"] = state["diverge_th"] = 5.0  # these stop the curve earlier
    stopped = range_test(loss, evaluate=evaluate, stop_early=False, diverge_th=5.0,
                         max_extra_iter=0, warn=False)  # fmt: skip
    assert stopped.stop_reason == "diverged" and len(stopped.losses) < len(saved.losses)
    finder = LRFinder()
    finder.load_state_dict({"result": state})
    res = finder.result
    assert res is not None and res.stop_reason == saved.stop_reason == "completed"
    assert res.stop_lr == saved.stop_lr
    np.testing.assert_array_equal(res.losses, saved.losses)
    np.testing.assert_array_equal(res.smoothed, saved.smoothed)
    np.testing.assert_array_equal(res.held_losses, saved.held_losses)
    assert json.loads(json.dumps(res.to_dict())) == state


def test_finder_with_probe_data_equals_find_lr_with_it_and_a_checkpoint_keeps_the_probes() -> None:
    from lrkit.finder import FinderResult

    ref, finder, unchanged = _finder_beside_reference(probe_data=_two_batches())
    res = finder.result
    assert res is not None and res.probes is not None and ref.probes is not None
    assert res.probes == ref.probes and res.suggestion == ref.suggestion
    assert unchanged
    again = FinderResult.from_dict(json.loads(json.dumps(finder.state_dict()["result"])))
    assert again.probes == res.probes
    assert (again.suggestion, again.max_lr) == (res.suggestion, res.max_lr)
    plain = FinderResult.from_dict({**finder.state_dict()["result"], "probes": None})
    assert plain.probes is None and plain.suggestion != res.suggestion


class _SeenHooked(_Hooked):
    """_Hooked that also records, per on_before_batch_transfer call, the id of the batch's x."""

    def __init__(self, calls: list[str], seen: list[int]) -> None:
        super().__init__(calls)
        self.seen = seen

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        self.seen.append(id(batch[0]))
        return super().on_before_batch_transfer(batch, dataloader_idx)


def test_finder_prepares_each_probe_data_batch_when_a_probe_is_scored() -> None:
    """probe_data (a validation loader, possibly large) is not kept on the device for the
    sweep and the probes: each batch goes through the transfer hooks when a probe is scored
    on it, once per scored probe, and the probes score the batches as fit would see them."""
    gen = torch.Generator().manual_seed(5)
    val = [(torch.randn(8, 4, generator=gen), torch.randn(8, 1, generator=gen)) for _ in range(3)]
    calls: list[str] = []
    seen: list[int] = []
    torch.manual_seed(0)
    model = _SeenHooked(calls, seen)
    finder = LRFinder(num_iter=30, total_steps=200, set_lr=False, plot=False, probe_data=val)
    torch.manual_seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=0, callbacks=[finder], logger=False).fit(model)
    res = finder.result
    assert res is not None and res.probes is not None
    scored = sum(math.isfinite(v) for v in res.probes.losses)
    assert scored >= 2
    for x, _ in val:  # not once when drawn: once per scored probe
        assert seen.count(id(x)) == scored


class _Counted(Tiny):
    """:class:`Tiny` counting its ``training_step`` calls."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.steps = 0

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.steps += 1
        return super().training_step(batch, batch_idx)


@pytest.mark.parametrize("schedule", [None, lambda r, n: S.onecycle(r.max_lr, total_steps=n)])
def test_finder_skips_the_sweep_under_fast_dev_run(schedule: Any) -> None:
    """fast_dev_run: no range test (as Lightning's Tuner.lr_find skips it), said with an
    LRFinderWarning, the LR as it was and no schedule of the finder's."""
    from lrkit.finder import LRFinderWarning

    plain = _Counted()
    _trainer(fast_dev_run=True).fit(plain)
    model, recorder = _Counted(), LRRecorder()
    finder = LRFinder(num_iter=10, plot=False, schedule=schedule)
    with pytest.warns(LRFinderWarning) as rec:
        _trainer(fast_dev_run=True, callbacks=[finder, recorder]).fit(model)
    said = [str(w.message) for w in rec if issubclass(w.category, LRFinderWarning)]
    assert said == [
        "LRFinder: skipping the learning rate range test since fast_dev_run is enabled; the "
        "learning rate is unchanged"
    ]
    assert model.steps == plain.steps == 1
    assert finder.result is None and model.lr == 0.05 and recorder.lrs == {0: 0.05}


def test_report_metric_does_not_warn_after_a_resumed_fit_that_trains_nothing(tmp_path: Any) -> None:
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=1, callbacks=[ReportMetric(), ckpt], enable_checkpointing=True).fit(
            Tiny(spec="constant(0.04)", patience=0)
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.filterwarnings("ignore", message="^(?!ReportMetric)")
        _trainer(max_epochs=1, callbacks=[ReportMetric()]).fit(
            Tiny(spec="constant(0.04)", patience=0), ckpt_path=str(tmp_path / "last.ckpt")
        )


def test_a_second_sweep_in_the_same_log_dir_writes_the_next_free_files(tmp_path: Any) -> None:
    """The first sweep writes lr_finder.*, the next one in the same folder lr_finder-1.*."""
    for _ in range(2):
        torch.manual_seed(0)
        finder = LRFinder(num_iter=20, total_steps=200, set_lr=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _trainer(max_epochs=0, callbacks=[finder], logger=MemoryLogger(str(tmp_path))).fit(
                Tiny()
            )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lr_finder-1.json",
        "lr_finder-1.png",
        "lr_finder.json",
        "lr_finder.png",
    ]


class _UnevenLoaders(Tiny):
    """Two train loaders of 4 and 2 batches (no shuffling); training_step records the first
    row of each batch of the longer one."""

    def __init__(self) -> None:
        super().__init__()
        self.firsts: list[float] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        a, b = batch["a"], batch["b"]
        self.firsts.append(float(a[0][0, 0]))
        x, y = torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])
        return F.mse_loss(self.net(x), y)

    def train_dataloader(self) -> Any:
        x, y = _data()
        a = DataLoader(TensorDataset(x, y), batch_size=16)
        b = DataLoader(TensorDataset(x[:32], y[:32]), batch_size=16)
        return {"a": a, "b": b}


def test_finder_cycles_the_shorter_train_loader_as_fit_does() -> None:
    """Loaders of different lengths are combined in "max_size_cycle" mode: the sweep draws
    every batch of the longer loader, the shorter one cycling."""
    torch.manual_seed(0)
    model = _UnevenLoaders()
    finder = LRFinder(num_iter=10, total_steps=200, set_lr=False, plot=False)
    _trained(model, finder, max_epochs=0)
    x, _ = _data()
    assert finder.result is not None and finder.result.steps >= 4
    assert set(model.firsts) == {float(x[16 * i, 0]) for i in range(4)}


def test_a_finder_given_a_curve_by_hand_sweeps_in_a_fit_without_a_checkpoint() -> None:
    """Only a fit resuming from a checkpoint reuses a loaded curve: one loaded by hand with
    load_state_dict is not this run's, and the fit sweeps."""
    torch.manual_seed(0)
    first = LRFinder(num_iter=20, total_steps=200, set_lr=False, plot=False)
    _trained(Tiny(), first, max_epochs=0)
    state = json.loads(json.dumps(first.state_dict()))
    steps: list[int] = []
    finder = LRFinder(num_iter=20, total_steps=200, plot=False,
                      callback=lambda i, lr, loss: steps.append(i))  # fmt: skip
    finder.load_state_dict(state)
    loaded = finder.result
    module = Tiny(lr=0.123)
    _trained(module, finder, max_epochs=0)
    assert steps == list(range(len(finder.result.lrs)))
    assert finder.result is not loaded and module.lr == finder.result.suggestion


def test_a_curve_loaded_by_validate_is_not_reused_by_a_fit_resumed_without_one(
    tmp_path: Any,
) -> None:
    """A validate that loads a checkpoint's curve leaves nothing for the next fit: one that
    resumes from a checkpoint saved without the curve keeps that checkpoint's LR, and says
    so, as a finder that never validated does."""
    torch.manual_seed(0)
    with_curve = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "a", save_top_k=-1)
    without = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "b", save_top_k=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=1, callbacks=[LRFinder(num_iter=20), with_curve],
                 enable_checkpointing=True).fit(Tiny())  # fmt: skip
        _trainer(max_epochs=1, callbacks=[without], enable_checkpointing=True).fit(Tiny(lr=0.02))
        finder = LRFinder(num_iter=20)
        path = str(tmp_path / "a" / "epoch=0-step=4.ckpt")
        _trainer(max_epochs=1, callbacks=[finder]).validate(Tiny(), ckpt_path=path)
    assert finder.result is not None
    module, rec = Tiny(lr=0.02), LRRecorder()
    with pytest.warns(LRFinderWarning, match="saved without LRFinder's range test"):
        _trainer(max_epochs=2, callbacks=[finder, rec], limit_val_batches=0).fit(
            module, ckpt_path=str(tmp_path / "b" / "epoch=0-step=4.ckpt")
        )
    assert module.lr == 0.02 and set(rec.lrs.values()) == {0.02}


def test_finder_budget_defaults_to_the_steps_the_fit_trains() -> None:
    """Without total_steps the sweep's budget is trainer.estimated_stepping_batches."""
    torch.manual_seed(0)
    finder = LRFinder(num_iter=20, set_lr=False, plot=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=3, callbacks=[finder], limit_val_batches=0).fit(Tiny())
    assert finder.result is not None
    assert finder.result.total_steps == 3 * BATCHES_PER_EPOCH
    assert finder.result.to_dict()["options"]["total_steps"] == 3 * BATCHES_PER_EPOCH


class _SkipsOnce(Tiny):
    """training_step(batch, batch_idx) recording each batch_idx; its third call returns
    None, Lightning's "skip this batch"."""

    def __init__(self) -> None:
        super().__init__()
        self.indices: list[int] = []

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        self.indices.append(batch_idx)
        if len(self.indices) == 3:
            return None
        return super().training_step(batch, batch_idx)


def test_finder_counts_a_skipped_batch_in_batch_idx_as_fit_does() -> None:
    torch.manual_seed(0)
    model = _SkipsOnce()
    finder = LRFinder(num_iter=10, total_steps=200, set_lr=False, plot=False)
    _trained(model, finder, max_epochs=0)
    assert finder.result is not None and len(model.indices) > 3
    assert model.indices == list(range(len(model.indices)))


def test_finder_accumulates_gradients_as_fit_does() -> None:
    """accumulate_grad_batches=2: each sweep step accumulates two batches, as
    lrkit.torch.find_lr(accumulation_steps=2) does."""
    torch.manual_seed(0)
    model = Tiny()
    ref = _reference(copy.deepcopy(model), seed=7, accumulation_steps=2)
    plain = _reference(copy.deepcopy(model), seed=7)
    finder = LRFinder(num_iter=30, total_steps=200, set_lr=False, plot=False)
    torch.manual_seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=0, callbacks=[finder], accumulate_grad_batches=2).fit(model)
    res = finder.result
    assert res is not None and res.losses.tolist() == ref.losses.tolist()
    assert res.losses.tolist() != plain.losses.tolist()


class _NeverSteps(Tiny):
    """Manual optimization whose training_step never steps the optimizer: the fit makes no
    optimizer step."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> None:
        return None


def test_report_metric_does_not_warn_after_a_fit_that_made_no_step() -> None:
    """A fit that ran its training loop without a single optimizer step trained nothing: no
    "no validation ran" warning."""
    model = _NeverSteps(spec="constant(0.04)", patience=0)
    trainer = _trainer(max_epochs=1, limit_val_batches=0, callbacks=[ReportMetric()])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.filterwarnings("ignore", message="^(?!ReportMetric)")
        trainer.fit(model)
    assert trainer.global_step == 0


def test_finder_refuses_manual_optimization_with_one_optimizer() -> None:
    finder = LRFinder(num_iter=10, plot=False)
    with pytest.raises(ValueError) as info:
        _trainer(max_epochs=1, callbacks=[finder]).fit(_NeverSteps())
    assert str(info.value) == (
        "LRFinder needs automatic optimization (training_step returns the loss); with manual "
        "optimization run lrkit.torch.find_lr with your own step"
    )
    assert finder.result is None


class _CountedLoader(Tiny):
    """Counts its train_dataloader() calls."""

    def __init__(self) -> None:
        super().__init__()
        self.loaders = 0

    def train_dataloader(self) -> DataLoader:
        self.loaders += 1
        return super().train_dataloader()


def test_finder_sets_the_train_data_up_once_and_trains_as_without_it() -> None:
    """The train data the sweep set up is the one fit trains on (train_dataloader() called
    once, as without the finder), and training draws from the RNG as without it."""
    runs = []
    for finder in (None, LRFinder(num_iter=20, set_lr=False, plot=False)):
        torch.manual_seed(0)
        model = _CountedLoader()
        runs.append((model, _trained(model, finder, max_epochs=2)))
    (plain, plain_state), (swept, swept_state) = runs
    assert plain.loaders == swept.loaders == 1
    assert _same(plain_state, swept_state)


def test_load_state_dict_refuses_a_step_count_that_is_not_a_positive_integer() -> None:
    from lrkit.finder import range_test

    res = range_test(lambda lr: (math.log10(lr) + 3) ** 2 + 1, evaluate=lambda: 1.0, warn=False)
    saved = json.loads(json.dumps(res.to_dict()))
    for key in ("total_steps", "planned_steps"):
        for bad in (0, -3, 2.5):
            with pytest.raises(ValueError) as info:
                LRFinder().load_state_dict({"result": saved, key: bad})
            assert str(info.value) == (
                f"{key} must be an integer >= 1 (allowed range: [1, inf)), got {bad!r}"
            )
        with pytest.raises(ValueError, match=rf"^{key} must be an integer >= 1 .*, got '12'"):
            LRFinder().load_state_dict({"result": saved, key: "12"})
    finder = LRFinder()
    finder.load_state_dict({"result": saved, "total_steps": 12, "planned_steps": 12})
    assert finder.result is not None and finder.result.to_dict() == res.to_dict()


def test_finder_refuses_an_empty_attr_name_when_it_is_made() -> None:
    for bad, shown in (("", "''"), (5, "5")):
        with pytest.raises(ValueError) as info:
            LRFinder(attr_name=bad)  # type: ignore[arg-type]
        assert str(info.value) == f"attr_name must be a non-empty attribute name, got {shown}"


class _DropsThird(Tiny):
    """on_before_batch_transfer turns the third batch drawn into None (fit skips it, and
    counts it in batch_idx); training_step records each batch_idx it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.drawn = 0
        self.indices: list[int] = []

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        self.drawn += 1
        return None if self.drawn == 3 else batch

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.indices.append(batch_idx)
        return super().training_step(batch, batch_idx)


def test_finder_counts_a_batch_the_hooks_turn_into_none_in_batch_idx_as_fit_does() -> None:
    torch.manual_seed(0)
    fitted = _DropsThird()
    _trained(fitted, None, max_steps=3)  # fit alone: the None batch is skipped and counted
    assert fitted.indices == [0, 1, 3]
    torch.manual_seed(0)
    swept = _DropsThird()
    finder = LRFinder(num_iter=10, total_steps=200, set_lr=False, plot=False)
    _trained(swept, finder, max_epochs=0)
    assert finder.result is not None and len(swept.indices) > 3
    assert 2 not in swept.indices
    assert swept.indices == [i for i in range(len(swept.indices) + 1) if i != 2]


def test_report_metric_used_for_a_second_fit_warns_when_that_fit_validates_nothing() -> None:
    """The validation runs are counted per fit: one that validated does not hide that the
    next fit, with the same callback, gave its controllers no metric."""
    report = ReportMetric()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=1, callbacks=[report]).fit(Tiny(spec="constant(0.04)", patience=0))
    with pytest.warns(RuntimeWarning) as said:
        _trainer(max_epochs=1, limit_val_batches=0, callbacks=[report]).fit(
            Tiny(spec="constant(0.04)", patience=0)
        )
    assert [str(w.message) for w in said if "ReportMetric" in str(w.message)] == [
        "ReportMetric: no validation ran in this fit (limit_val_batches=0, no val_dataloader, "
        "a check_val_every_n_epoch or val_check_interval the run ended before, e.g. at "
        "max_steps): the feedback controllers received no metric"
    ]


def test_finder_logs_the_suggestion_max_lr_and_base_lr_through_every_logger() -> None:
    torch.manual_seed(0)
    finder = LRFinder(num_iter=30, total_steps=200, set_lr=False, plot=False)
    loggers = [MemoryLogger(), MemoryLogger()]
    torch.manual_seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=0, callbacks=[finder], logger=loggers).fit(Tiny())
    res = finder.result
    assert res is not None and None not in (res.suggestion, res.max_lr, res.base_lr)
    expected = {
        "lr_finder/suggestion": res.suggestion,
        "lr_finder/max_lr": res.max_lr,
        "lr_finder/base_lr": res.base_lr,
    }
    for logger in loggers:
        assert [(s, m) for s, m in logger.metrics if any("lr_finder" in k for k in m)] == [
            (0, expected)
        ]


@pytest.mark.parametrize("between", ["skipped the sweep", "swept anew"])
def test_a_curve_loaded_by_hand_is_not_reused_after_a_fit_that_ran_without_it(
    tmp_path: Any, between: str
) -> None:
    """A fit that skips the range test (limit_train_batches=0), or sweeps anew (no
    checkpoint), ends the loaded curve's claim: a later fit resuming from a checkpoint saved
    without the curve keeps that checkpoint's LR, and says so."""
    torch.manual_seed(0)
    first = LRFinder(num_iter=20, total_steps=200, set_lr=False, plot=False)
    _trained(Tiny(), first, max_epochs=0)
    without = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_top_k=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=1, callbacks=[without], enable_checkpointing=True).fit(Tiny(lr=0.02))
    if between == "skipped the sweep":
        finder = LRFinder(num_iter=20, plot=False)
        finder.load_state_dict(json.loads(json.dumps(first.state_dict())))
        with pytest.warns(LRFinderWarning, match="limit_train_batches=0 trains nothing"):
            _trainer(max_epochs=1, limit_train_batches=0, limit_val_batches=0,
                     callbacks=[finder]).fit(Tiny(lr=0.02))  # fmt: skip
    else:
        finder = LRFinder(num_iter=20, total_steps=200, plot=False)
        finder.load_state_dict(json.loads(json.dumps(first.state_dict())))
        _trained(Tiny(), finder, max_epochs=0)  # no checkpoint: a sweep of its own
    module, rec = Tiny(lr=0.02), LRRecorder()
    with pytest.warns(LRFinderWarning, match="saved without LRFinder's range test"):
        _trainer(max_epochs=2, callbacks=[finder, rec], limit_val_batches=0).fit(
            module, ckpt_path=str(tmp_path / "epoch=0-step=4.ckpt")
        )
    assert module.lr == 0.02 and set(rec.lrs.values()) == {0.02}


class Scored(Tiny):
    """Logs a scripted score and accuracy beside the loss; one controller of a given mode."""

    def __init__(self, mode: str) -> None:
        super().__init__(spec="constant(0.04)")
        self.mode = mode

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        self.log("val_score", 0.5)
        self.log("val_acc", 0.5)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.04)
        sched = lt.scheduler(opt, self.spec, feedback=ReduceOnPlateau(self.mode, patience=5))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@pytest.mark.parametrize(
    ("monitor", "mode", "callbacks", "says"),
    [
        ("val_acc", "min", [], "'val_acc' is a metric to maximize but the feedback controller "
         "has mode='min'"),
        ("val_loss", "max", [], "'val_loss' is a metric to minimize but the feedback controller "
         "has mode='max'"),
        ("val_score", "min", [("ModelCheckpoint", "max")], "'val_score' is a metric to maximize "
         "(ModelCheckpoint(mode='max')) but the feedback controller has mode='min'"),
        ("val_score", "max", [("EarlyStopping", "min")], "'val_score' is a metric to minimize "
         "(EarlyStopping(mode='min')) but the feedback controller has mode='max'"),
        ("val_acc", "max", [], None),
        ("val_score", "min", [], None),  # a name that tells no direction
        ("val_score", "max", [("EarlyStopping", "max")], None),
        # a name that tells the direction outweighs a callback's (its "min" is the default)
        ("val_acc", "max", [("ModelCheckpoint", "min")], None),
    ],
)  # fmt: skip
def test_report_metric_warns_once_a_fit_when_a_controller_goes_against_the_metric(
    tmp_path: Any, monitor: str, mode: str, callbacks: Any, says: Any
) -> None:
    report = ReportMetric(monitor)
    for _ in range(2):  # two validations in each fit, one warning each fit
        others = [
            getattr(pl.callbacks, kind)(monitor=monitor, mode=m, **(
                {"dirpath": tmp_path} if kind == "ModelCheckpoint" else {}))
            for kind, m in callbacks
        ]  # fmt: skip
        trainer = _trainer(
            max_epochs=2,
            callbacks=[report, *others],
            enable_checkpointing=bool(others),
            default_root_dir=tmp_path,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(Scored(mode))
        said = [(str(w.message), w.filename) for w in caught if "is a metric to" in str(w.message)]
        if says is None:
            assert said == []
        else:
            want = mode == "min" and "max" or "min"
            assert said == [
                (
                    f"ReportMetric: {says}: it would cut the learning rate while the metric "
                    f"improves; build the controller with mode={want!r}",
                    __file__,
                )
            ]


class PerEpoch(Tiny):
    """A scheduler returned as Lightning users often do: without a config, or with one."""

    def __init__(self, total: int, config: dict[str, Any] | None) -> None:
        super().__init__(spec=f"cosine(0.05, total_steps={total})")
        self.config = config

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=self.lr)
        sched = lt.scheduler(opt, self.spec)
        if self.config is None:
            return [opt], [sched]
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, **self.config}}


_EPOCHS_3 = "once an epoch|12|3 steps the fit's 3 epochs|3"


@pytest.mark.parametrize(
    ("total", "config", "limits", "said"),
    [
        # 4 steps an epoch, 3 epochs: a schedule counted in steps
        (12, None, {"max_epochs": 3}, _EPOCHS_3),
        (12, {"interval": "epoch"}, {"max_epochs": 3}, _EPOCHS_3),
        (12, {"interval": "step"}, {"max_epochs": 3}, None),
        (3, None, {"max_epochs": 3}, None),  # counted in epochs
        (3, {"frequency": 2}, {"max_epochs": 4},
         "once every 2 epochs|3|2 steps the fit's 4 epochs|2"),
        (2, {"frequency": 2}, {"max_epochs": 4}, None),
        # no epoch limit: the epochs max_steps gives
        (12, None, {"max_epochs": -1, "max_steps": 12}, _EPOCHS_3),
        (12, None, {"max_steps": 12}, _EPOCHS_3),
        (3, None, {"max_steps": 12}, None),
    ],
)  # fmt: skip
def test_a_schedule_longer_than_the_fit_s_epochs_stepped_once_an_epoch_warns(
    total: int, config: Any, limits: Any, said: Any
) -> None:
    model = PerEpoch(total, config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer(limit_val_batches=0, **limits).fit(model)
    got = [str(w.message) for w in caught if "Lightning steps this" in str(w.message)]
    if said is None:
        assert got == []
        return
    per, length, given, stop = said.split("|")
    assert got == [
        f"Lightning steps this scheduler {per} (its config's 'interval' is 'epoch', "
        f"Lightning's default) but its schedule spans {length} steps, more than the {given} "
        f"give it: it would stop at step {stop}. Return {{'optimizer': opt, 'lr_scheduler': "
        "{'scheduler': sched, 'interval': 'step'}} from configure_optimizers (or count "
        "the schedule in epochs)"
    ]
    assert model.trainer.lr_scheduler_configs[0].scheduler.last_epoch == int(stop)


class Batched(Tiny):
    """A module whose batch size Lightning's BatchSizeFinder scales."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_size = 8

    def train_dataloader(self) -> DataLoader:
        x, y = _data()
        return DataLoader(TensorDataset(x, y), batch_size=self.batch_size, shuffle=True)


@pytest.mark.parametrize("order", ["finder_first", "finder_last"])
def test_beside_lightning_s_batch_size_finder_the_range_test_runs_and_sets_the_lr(
    tmp_path: Any, order: str
) -> None:
    """BatchSizeFinder, which Lightning runs first, saves and restores the run as it begins:
    that leaves trainer.ckpt_path naming its file, in a fit that resumes nothing."""
    finder = LRFinder(num_iter=20)
    bsf = pl.callbacks.BatchSizeFinder(max_trials=2, steps_per_trial=1)
    model = Batched()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer(
            max_epochs=1,
            callbacks=[finder, bsf] if order == "finder_first" else [bsf, finder],
            default_root_dir=tmp_path,
        ).fit(model)
    assert [str(w.message) for w in caught if "LRFinder" in str(w.message)] == []
    assert model.batch_size == 4 and finder.result is not None  # scaled: 2, then 4
    assert model.lr == finder.result.suggestion
    assert not list(tmp_path.glob(".scale_batch_size_*"))


class TwoControllers(SharedController):
    """Two optimizers (manual optimization), each scheduler with a controller of its own."""

    def __init__(self, modes: tuple[str, str]) -> None:
        super().__init__()
        self.modes = modes

    def configure_optimizers(self) -> Any:
        first, second = self.net[0].parameters(), self.net[2].parameters()
        opts = [torch.optim.SGD(first, lr=0.04), torch.optim.SGD(second, lr=0.04)]
        return opts, [
            lt.scheduler(o, "constant(0.04)", feedback=ReduceOnPlateau(m))
            for o, m in zip(opts, self.modes)
        ]


@pytest.mark.parametrize("modes", [("max", "min"), ("min", "max")])
def test_report_metric_checks_every_scheduler_s_controller_against_the_metric(modes) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer(max_epochs=1, callbacks=[ReportMetric("val_loss")]).fit(TwoControllers(modes))
    said = [str(w.message) for w in caught if "is a metric to" in str(w.message)]
    assert said == [
        "ReportMetric: 'val_loss' is a metric to minimize but the feedback controller has "
        "mode='max': it would cut the learning rate while the metric improves; build the "
        "controller with mode='min'"
    ]


def test_report_metric_ignores_the_mode_of_a_callback_on_another_metric(tmp_path: Any) -> None:
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, monitor="val_acc", mode="max")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer(
            max_epochs=1,
            callbacks=[ReportMetric("val_score"), ckpt],
            enable_checkpointing=True,
            default_root_dir=tmp_path,
        ).fit(Scored("min"))
    assert [str(w.message) for w in caught if "is a metric to" in str(w.message)] == []


def test_a_curve_loaded_by_hand_leaves_a_new_fit_s_schedule_to_its_own_steps() -> None:
    """The steps a loaded state's schedule was built for are those of the run it resumes: a
    fit without a checkpoint builds its schedule for the steps it trains."""
    ns: list[int] = []

    def cosine(r: Any, n: int) -> Any:
        ns.append(n)
        return S.cosine(r.suggestion, total_steps=n)

    torch.manual_seed(0)
    first = LRFinder(num_iter=20, schedule=cosine, plot=False)
    _trained(Tiny(), first, max_epochs=3)
    state = json.loads(json.dumps(first.state_dict()))
    assert (state["total_steps"], state["planned_steps"]) == (12, 12)
    finder, rec = LRFinder(num_iter=20, schedule=cosine, plot=False), LRRecorder()
    finder.load_state_dict(state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=2, callbacks=[finder, rec], limit_val_batches=0).fit(Tiny())
    assert ns == [12, 8]
    s = S.cosine(finder.result.suggestion, total_steps=8)
    assert rec.lrs == {k: s(k) for k in range(8)}
    state = finder.state_dict()
    assert (state["total_steps"], state["planned_steps"]) == (8, 8)


def _no_lr(lrs: Any, losses: Any) -> None:
    return None


def test_finder_without_a_suggestion_keeps_the_lr_and_logs_the_others() -> None:
    """A rule that gives no LR leaves the module's LR as it is, says so, and logs only the
    suggestions there are."""
    torch.manual_seed(0)
    finder = LRFinder(num_iter=20, total_steps=200, plot=False, rule=_no_lr)
    logger, module, rec = MemoryLogger(), Tiny(lr=0.02), LRRecorder()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        _trainer(max_epochs=1, callbacks=[finder, rec], logger=logger,
                 limit_val_batches=0).fit(module)  # fmt: skip
    res = finder.result
    assert res is not None and res.suggestion is None and res.max_lr is not None
    assert "LRFinder: the range test gave no suggestion; the learning rate is unchanged" in [
        str(w.message) for w in said if w.category is RuntimeWarning
    ]
    assert module.lr == 0.02 and set(rec.lrs.values()) == {0.02}
    assert [m for _, m in logger.metrics if any("lr_finder" in k for k in m)] == [
        {"lr_finder/max_lr": res.max_lr, "lr_finder/base_lr": res.base_lr}
    ]


class _BothNames(Tiny):
    """An ``lr`` that configure_optimizers reads beside a ``learning_rate`` it does not."""

    def __init__(self) -> None:
        super().__init__(lr=0.02)
        self.learning_rate = 0.3


def test_finder_writes_lr_before_learning_rate_when_the_module_has_both() -> None:
    torch.manual_seed(0)
    module = _BothNames()
    finder = LRFinder(num_iter=20, total_steps=200, plot=False)
    _trained(module, finder, max_epochs=1)
    assert module.lr == finder.result.suggestion and module.learning_rate == 0.3
    module2 = _BothNames()
    finder2 = LRFinder(num_iter=20, total_steps=200, plot=False, attr_name="learning_rate")
    torch.manual_seed(0)
    _trained(module2, finder2, max_epochs=1)
    assert module2.learning_rate == finder2.result.suggestion and module2.lr == 0.02


class _OwnLog(Tiny):
    """A module whose own ``log`` (an instance attribute) records what training logs."""

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[str] = []
        self.log = lambda name, value, **kw: self.logged.append(name)


def test_finder_gives_a_module_its_own_log_back_after_the_sweep() -> None:
    torch.manual_seed(0)
    module = _OwnLog()
    own = module.log
    _trained(module, LRFinder(num_iter=20, total_steps=200, set_lr=False, plot=False),
             max_epochs=1)  # fmt: skip
    assert module.log is own
    assert module.logged == ["train_loss"] * BATCHES_PER_EPOCH  # none from the sweep's steps


class _ImageLogger(MemoryLogger):
    """A logger that takes figures through ``log_image`` (as W&B's and Neptune's do)."""

    def __init__(self, log_dir: str | None = None) -> None:
        super().__init__(log_dir)
        self.images: list[tuple[str, list[Any]]] = []

    def log_image(self, key: str, images: list[Any], **kwargs: Any) -> None:
        self.images.append((key, list(images)))


@pytest.mark.parametrize("plot", [True, False])
def test_finder_plot_goes_to_log_image_and_the_log_dir_only_when_asked(
    plot: bool, tmp_path: Any
) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    torch.manual_seed(0)
    loggers = [_ImageLogger(str(tmp_path / "a")), _ImageLogger()]
    finder = LRFinder(num_iter=20, total_steps=200, set_lr=False, plot=plot)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(max_epochs=0, callbacks=[finder], logger=loggers).fit(Tiny())
    for logger in loggers:
        assert [key for key, _ in logger.images] == (["lr_finder"] if plot else [])
        if plot:
            (fig,) = logger.images[0][1]
            assert isinstance(fig, Figure) and len(fig.axes) >= 1
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == (["lr_finder.json", "lr_finder.png"] if plot else ["lr_finder.json"])


class TwoSeededLoaders(TwoLoaders):
    """Two train loaders, each shuffling with a generator of its own."""

    def train_dataloader(self) -> Any:
        x, y = _data()
        a = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True,
                       generator=torch.Generator().manual_seed(1))  # fmt: skip
        b = DataLoader(TensorDataset(x[:32], y[:32]), batch_size=8, shuffle=True,
                       generator=torch.Generator().manual_seed(2))  # fmt: skip
        return {"a": a, "b": b}


@pytest.mark.parametrize(
    "make", [Workers, TwoSeededLoaders], ids=["persistent workers", "seeded train loaders"]
)
def test_finder_trains_as_without_it(make: Any) -> None:
    """With persistent workers, or several loaders each drawing from its own generator,
    training after the sweep draws what it would draw without the finder."""
    torch.manual_seed(0)
    plain = _trained(make(), None, max_steps=6)
    torch.manual_seed(0)
    finder = LRFinder(num_iter=20, set_lr=False, plot=False)
    swept = _trained(make(), finder, max_steps=6)
    assert finder.result is not None and finder.result.steps > 0
    assert _same(plain, swept)
