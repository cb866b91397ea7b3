"""The Python blocks of README.md and docs/index.md run as written and give what their
comments say (with a small model, optimizer and data defined first)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lrkit
from lrkit import schedules as S

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(page: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", (ROOT / page).read_text(), re.M | re.S)


def _block(page: str, first_line: str) -> str:
    found = [b for b in _python_blocks(page) if b.startswith(first_line)]
    assert len(found) == 1, f"{page}: no single python block starts with {first_line!r}"
    return found[0]


def _torch_namespace() -> dict[str, Any]:
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from lrkit.torch.demo import digits_task

    torch.manual_seed(0)
    task = digits_task(seed=0)
    model = task.make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return {
        "torch": torch,
        "model": model,
        "opt": opt,
        "optimizer": opt,
        "loss_fn": task.loss_fn,
        "train_loader": list(task.train_batches()),
        "val_loss": 1.0,
    }


def test_readme_python_blocks_are_all_checked() -> None:
    firsts = [b.splitlines()[0] for b in _python_blocks("README.md")]
    assert firsts == [
        "from lrkit import schedules as S",
        "import lrkit.torch as lt",
        "result = lt.find_lr(model, opt, loss_fn, train_loader, total_steps=5000)",
        "from lrkit.feedback import ReduceOnPlateau",
        "sizes = lt.effective_lr(opt)   # one tensor per parameter, its shape",
        "import keras, lrkit.keras as lk       # KERAS_BACKEND=jax or torch",
    ]


@pytest.mark.repository("docs")
def test_index_python_blocks_are_all_checked() -> None:
    assert [b.splitlines()[0] for b in _python_blocks("docs/index.md")] == [
        "from lrkit import schedules as S"
    ]


def test_readme_opening_commands_start_with_the_checkout() -> None:
    """``pip install -e .`` needs the sources: the first block says how to get them first,
    from the project's Source URL."""
    source = re.search(r'^Source = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert source is not None
    block = re.search(r"^```bash\n(.*?)^```$", (ROOT / "README.md").read_text(), re.M | re.S)
    assert block is not None
    lines = block.group(1).splitlines()
    clone = [i for i, ln in enumerate(lines) if f"git clone {source.group(1)} && cd lrkit" in ln]
    installs = [i for i, ln in enumerate(lines) if "pip install -e " in ln]
    assert len(clone) == 1 and installs and clone[0] < installs[0], lines
    commands = [ln for ln in lines if ln and not ln.startswith("#")]
    assert commands[0].startswith("pip install torch==2.13.0 && pip install -e '.[")


def test_readme_schedules_block() -> None:
    ns: dict[str, Any] = {}
    exec(_block("README.md", "from lrkit import schedules as S"), ns)
    s = ns["s"]
    assert s(50) == 0.05
    values = s.values(range(1000))
    assert isinstance(values, np.ndarray) and values.dtype == np.float64
    assert values.shape == (1000,)
    assert S.parse(str(s)) == s
    assert S.from_dict(s.to_dict()) == s
    m = ns["m"]
    assert isinstance(m, S.Schedule)
    assert m(0) == 0.95 - 0.1 * 1.0 and m(1000) == 0.95


def test_readme_torch_blocks_in_order() -> None:
    """The PyTorch, finder, feedback and adaptive blocks, run one after another."""
    ns = _torch_namespace()
    torch = ns["torch"]
    exec(_block("README.md", "from lrkit import schedules as S"), ns)

    # the loop's `...` is "forward, backward, opt.step()"
    pytorch = _block("README.md", "import lrkit.torch as lt")
    assert "    ...                     # forward, backward, opt.step()\n" in pytorch
    exec(pytorch.replace("    ...  ", "    opt.step()  "), ns)
    sched, opt = ns["sched"], ns["opt"]
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
    one = S.onecycle(0.1, total_steps=1000)
    mom = S.onecycle_momentum(1000)
    assert opt.param_groups[0]["lr"] == one(1000)
    assert opt.param_groups[0]["momentum"] == mom(1000)

    weights = [p.detach().clone() for p in ns["model"].parameters()]
    state = opt.state_dict()
    exec(_block("README.md", "result = lt.find_lr("), ns)
    result = ns["result"]
    assert result.total_steps == 5000
    assert all(isinstance(v, float) for v in (result.suggestion, result.max_lr, result.peak_lr))
    assert isinstance(result.reliable, bool)
    # "model, optimizer ... restored bit for bit afterwards"
    after = list(ns["model"].parameters())
    assert all(torch.equal(a, b) for a, b in zip(weights, after, strict=True))
    assert opt.param_groups[0]["lr"] == state["param_groups"][0]["lr"]

    exec(_block("README.md", "from lrkit.feedback import ReduceOnPlateau"), ns)
    sched, plateau = ns["sched"], ns["plateau"]
    assert sched.feedback is plateau
    for _ in range(3):  # patience=2: the 3rd report without improvement cuts x0.5
        sched.report(1.0)
    assert plateau.scale == 0.5
    assert opt.param_groups[0]["lr"] == S.cosine(0.05, total_steps=5000)(0) * 0.5

    opt = torch.optim.Adam(ns["model"].parameters(), lr=1e-3)
    x, y = ns["train_loader"][0]
    ns["loss_fn"](ns["model"](x), y).backward()
    opt.step()
    ns["opt"] = opt
    exec(_block("README.md", "sizes = lt.effective_lr(opt)"), ns)
    shapes = [p.shape for p in ns["model"].parameters()]
    assert [t.shape for t in ns["sizes"]] == shapes


@pytest.mark.repository("docs")
def test_index_first_look_block() -> None:
    ns = _torch_namespace()
    exec(_block("docs/index.md", "from lrkit import schedules as S"), ns)
    s = ns["s"]
    assert S.parse(str(s)) == s
    assert [s(0), s(500), s(1000)] == [0.0, 0.05, 0.1]
    assert s(1000 + 9000) == 0.0
    sched = ns["sched"]
    assert isinstance(sched, ns["torch"].optim.lr_scheduler.LRScheduler)
    assert ns["optimizer"].param_groups[0]["lr"] == s(0)
    sched.step()
    assert ns["optimizer"].param_groups[0]["lr"] == s(1)


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("keras", "jax", "optax")),
    reason="needs keras, jax and optax",
)
def test_readme_keras_and_optax_block(tmp_path: Path) -> None:
    block = _block("README.md", "import keras, lrkit.keras as lk")
    keras_part, optax_part = block.split("\n\n")
    check_keras = textwrap.dedent(
        """
        import numpy as np
        assert isinstance(opt, keras.optimizers.SGD) and opt.momentum == 0.9
        assert isinstance(opt._learning_rate, lk.LRKitSchedule)
        assert float(opt.learning_rate) == np.float32(S.cosine(0.1, total_steps=9000)(0))
        """
    )
    check_optax = textwrap.dedent(
        """
        import jax.numpy as jnp
        params = {"w": jnp.ones(3)}
        updates, _ = opt.update({"w": jnp.ones(3)}, opt.init(params), params)
        first = float(np.float32(S.onecycle(3e-3, total_steps=10_000)(0)))
        assert abs(float(updates["w"][0]) + first) <= 1e-5 * first, (updates, first)
        print("ok")
        """
    )
    block = keras_part + "\n" + check_keras + optax_part + "\n" + check_optax
    code = "from lrkit import schedules as S\n" + block
    src = str(Path(lrkit.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=path)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.splitlines()[-1] == "ok"
