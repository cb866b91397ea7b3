"""``lrkit._runtime``: the one global-RNG save/restore and the one rank-0 check."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import types
from typing import Any

import numpy as np
import pytest

from lrkit._runtime import (
    GlobalRNGState,
    HeldSignals,
    data_generators,
    data_loaders,
    is_data_factory,
    is_rank0,
    kept_interrupts,
    one_pass,
    preserved_rng,
)


def _draw() -> tuple[float, float]:
    return random.random(), float(np.random.random())


def test_restore_replays_python_and_numpy() -> None:
    state = GlobalRNGState()
    first = _draw()
    state.restore()
    assert _draw() == first
    state.restore()  # restoring twice is allowed
    assert _draw() == first


def test_context_manager_restores_after_an_exception() -> None:
    before = GlobalRNGState()
    expected = _draw()
    before.restore()
    with pytest.raises(KeyError), preserved_rng():
        _draw()
        _draw()
        raise KeyError("boom")
    assert _draw() == expected


def test_torch_generator_restored_when_loaded() -> None:
    torch = pytest.importorskip("torch")
    with preserved_rng():
        a = torch.rand(3)
    assert torch.equal(torch.rand(3), a)


def test_does_not_import_torch() -> None:
    code = (
        "import sys; from lrkit._runtime import preserved_rng, is_rank0\n"
        "with preserved_rng(): pass\n"
        "print(is_rank0(), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_rank0_without_a_process_group() -> None:
    assert is_rank0() is True


def test_the_rng_state_covers_the_own_generators_of_the_loaders_it_is_given() -> None:
    torch = pytest.importorskip("torch")
    from lrkit._runtime import GlobalRNGState, data_generators

    data = torch.utils.data.TensorDataset(torch.arange(16.0))
    own = torch.Generator().manual_seed(1)
    sampler_gen = torch.Generator().manual_seed(2)
    a = torch.utils.data.DataLoader(data, batch_size=4, shuffle=True, generator=own)
    b = torch.utils.data.DataLoader(
        data, batch_size=4, sampler=torch.utils.data.RandomSampler(data, generator=sampler_gen)
    )
    plain = torch.utils.data.DataLoader(data, batch_size=4, shuffle=True)  # global generator
    assert data_generators({"a": a, "b": b}, [plain, a]) == [own, sampler_gen]
    state = GlobalRNGState(data=({"a": a, "b": b}, plain))
    first = [[x.tolist() for (x,) in loader] for loader in (a, b, plain)]
    state.restore()
    assert [[x.tolist() for (x,) in loader] for loader in (a, b, plain)] == first


def test_held_signals_are_delivered_only_where_they_may_be_raised() -> None:
    before = signal.getsignal(signal.SIGINT)
    with HeldSignals() as held:
        signal.raise_signal(signal.SIGINT)  # in the bookkeeping: held
        with pytest.raises(KeyboardInterrupt):
            held.deliver_pending()  # at a safe point
        held.deliver_pending()  # delivered once
        with pytest.raises(KeyboardInterrupt), held.deliverable():
            signal.raise_signal(signal.SIGINT)  # in the user's code: at once
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # a second one while one is held: at once
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt), held.deliverable():
            pass  # one held before a deliverable block is delivered as it starts
        held.deliver_pending()
    assert signal.getsignal(signal.SIGINT) is before


def test_a_signal_held_at_the_end_is_delivered_on_leaving_and_handlers_are_put_back() -> None:
    calls: list[int] = []

    def mine(signum: int, frame: object) -> None:
        calls.append(signum)

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with HeldSignals():
            signal.raise_signal(signal.SIGTERM)
            assert calls == []
        assert calls == [signal.SIGTERM]  # the handler that was there, once
        assert signal.getsignal(signal.SIGTERM) is mine
        with pytest.raises(RuntimeError), HeldSignals():
            signal.raise_signal(signal.SIGTERM)
            raise RuntimeError("an error on the way out: the held signal is dropped")
        assert calls == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("keeping", [HeldSignals, kept_interrupts])
def test_an_ignored_signal_stays_ignored(keeping: Any) -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with keeping():
            assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
            signal.raise_signal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_warning_points_at_user_code_under_a_folder_named_like_torchs_compiler(tmp_path):
    """caller_level passes over torch's compiler's own folder (the disable wrapper of a
    compiled step), not any folder whose path reads torch/_dynamo (a user's checkout)."""
    import importlib.util
    import warnings

    pytest.importorskip("torch")
    import torch._dynamo  # noqa: F401 - loaded, as when something was compiled

    folder = tmp_path / "torch" / "_dynamo"
    folder.mkdir(parents=True)
    (folder / "userfn.py").write_text(
        "from lrkit import _renamed\n\n\ndef go():\n    _renamed.warn('lrkit test: renamed')\n"
    )
    spec = importlib.util.spec_from_file_location("lrkit_test_userfn", folder / "userfn.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module.go()
    assert [(w.filename, w.lineno) for w in caught] == [(str(folder / "userfn.py"), 5)]


def test_a_callable_that_is_also_iterable_is_batches_not_a_factory() -> None:
    class Batches:
        def __iter__(self):
            return iter([1, 2])

        def __call__(self):
            raise AssertionError("not to be called")

    batches = Batches()
    assert is_data_factory(batches) is False
    assert one_pass(batches) is batches
    assert is_data_factory(lambda: [1, 2]) is True
    assert one_pass(lambda: [1, 2]) == [1, 2]


def test_the_generator_of_a_batch_samplers_sampler_is_found() -> None:
    torch = pytest.importorskip("torch")
    data = torch.utils.data.TensorDataset(torch.arange(8.0))
    gen = torch.Generator().manual_seed(3)
    batches = torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(data, generator=gen), batch_size=2, drop_last=False
    )
    loader = torch.utils.data.DataLoader(data, batch_sampler=batches)
    assert data_generators(loader) == [gen]
    state = GlobalRNGState(data=(loader,))
    first = [x.tolist() for (x,) in loader]
    state.restore()
    assert [x.tolist() for (x,) in loader] == first


def test_the_loaders_of_a_combined_loaders_flattened_list_are_found() -> None:
    torch = pytest.importorskip("torch")
    data = torch.utils.data.TensorDataset(torch.arange(8.0))
    gen = torch.Generator().manual_seed(4)
    inner = torch.utils.data.DataLoader(data, batch_size=2, shuffle=True, generator=gen)
    combined = types.SimpleNamespace(flattened=[inner])
    assert data_loaders(combined) == [combined, inner]
    assert data_generators(combined) == [gen]


def test_a_loader_given_twice_is_listed_once() -> None:
    torch = pytest.importorskip("torch")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(4.0)))
    assert data_loaders(loader, loader) == [loader]
    both = [loader]
    assert data_loaders(loader, both) == [loader, both]


def test_only_rank_0_of_an_initialized_process_group_is_rank0(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for rank, expected in ((0, True), (1, False), (2, False)):
        dist = types.SimpleNamespace(
            is_available=lambda: True, is_initialized=lambda: True, get_rank=lambda r=rank: r
        )
        monkeypatch.setitem(sys.modules, "torch.distributed", dist)
        assert is_rank0() is expected
    uninitialized = types.SimpleNamespace(is_available=lambda: True, is_initialized=lambda: False)
    monkeypatch.setitem(sys.modules, "torch.distributed", uninitialized)
    assert is_rank0() is True


def test_a_warning_from_deep_inside_lrkit_points_at_the_users_call() -> None:
    import os
    import warnings

    from lrkit import _runtime

    inner = os.path.join(os.path.dirname(_runtime.__file__), "_deep_example.py")
    code = "from lrkit import _renamed\n\ndef outer():\n    inner()\n\ndef inner():\n"
    code += "    _renamed.warn('lrkit test: renamed')\n"
    namespace: dict[str, object] = {}
    exec(compile(code, inner, "exec"), namespace)  # two frames that count as lrkit's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        namespace["outer"]()  # type: ignore[operator]
        line = sys._getframe().f_lineno - 1
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, line)]


def test_range_test_steps_are_marked_only_inside_the_block_also_after_an_error() -> None:
    from lrkit._runtime import in_range_test, range_test_steps

    assert in_range_test() is False
    with pytest.raises(KeyError), range_test_steps():
        assert in_range_test() is True
        raise KeyError("boom")
    assert in_range_test() is False


def test_only_torch_tensors_are_converted_from_torch() -> None:
    from lrkit._runtime import from_torch

    class Detachable:
        def detach(self):
            raise AssertionError("not a torch tensor: left as it is")

    leaf = Detachable()
    assert from_torch(leaf) is leaf
    torch = pytest.importorskip("torch")
    got = from_torch(torch.arange(3.0))
    assert isinstance(got, np.ndarray) and got.tolist() == [0.0, 1.0, 2.0]


def test_a_missing_data_source_is_skipped_not_the_ones_after_it() -> None:
    first, second = types.SimpleNamespace(), types.SimpleNamespace()
    assert data_loaders(None, first, None, second) == [first, second]


def test_a_handler_set_inside_held_signals_stays() -> None:
    def mine(signum: int, frame: object) -> None:
        pass

    previous = signal.getsignal(signal.SIGTERM)
    try:
        with HeldSignals():
            signal.signal(signal.SIGTERM, mine)
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.usefixtures("python_sigint")
def test_a_signal_held_by_holding_is_delivered_at_its_end() -> None:
    with HeldSignals() as held, held.deliverable():
        with pytest.raises(KeyboardInterrupt):
            with held.holding():
                signal.raise_signal(signal.SIGINT)  # a database write: held
                reached = True
        assert reached  # the write was not cut
    with HeldSignals() as held:
        with held.holding():  # outside a deliverable block: held until a safe point
            signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            held.deliver_pending()


@pytest.fixture
def python_sigint():
    """SIGINT raises ``KeyboardInterrupt`` (Python's own handler) during the test."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class _InterruptedCleanUp:
    """An object whose clean-up is interrupted: Python drops the ``KeyboardInterrupt``."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)


@pytest.mark.usefixtures("python_sigint")
def test_an_interrupt_python_dropped_is_raised_once_by_the_block_function() -> None:
    try:
        with kept_interrupts() as raise_dropped:
            _InterruptedCleanUp()
            with pytest.raises(KeyboardInterrupt):
                raise_dropped()
            raise_dropped()  # once only
    except KeyboardInterrupt:
        pytest.fail("the dropped interrupt was raised again")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.usefixtures("python_sigint")
def test_an_interrupt_python_dropped_is_raised_on_leaving_the_block() -> None:
    with pytest.raises(KeyboardInterrupt), kept_interrupts():
        _InterruptedCleanUp()
        reached = True
    assert reached


@pytest.mark.usefixtures("python_sigint")
def test_other_dropped_errors_are_reported_as_before_and_a_new_handler_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reported: list[BaseException] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))

    class FailingCleanUp:
        def __del__(self) -> None:
            raise ValueError("in a clean-up")

    def mine(signum: int, frame: object) -> None:
        pass

    with kept_interrupts():
        FailingCleanUp()
        signal.signal(signal.SIGINT, mine)
    assert [str(e) for e in reported] == ["in a clean-up"]
    assert signal.getsignal(signal.SIGINT) is mine


def test_a_warning_from_lrkit_code_a_library_runs_points_at_the_users_call() -> None:
    """lrkit code that torch runs from its own (an optimizer hook, as lrkit's loggers use)
    warns at the user's ``opt.step()`` line, not inside torch."""
    import inspect
    import warnings

    torch = pytest.importorskip("torch")
    from lrkit import _renamed

    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.1)
    from lrkit import _runtime

    # a hook whose code reads as lrkit's own (as a logger's is), run by torch's step()
    code = compile(
        "def hook(*_):\n    warn('lrkit test: renamed')\n",
        _runtime._PACKAGE_DIR + "hook.py",
        "exec",
    )
    space = {"warn": _renamed.warn}
    exec(code, space)
    opt.register_step_post_hook(space["hook"])
    p.grad = torch.ones(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        opt.step()
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, line)]


def _same_state(a: object, b: object) -> bool:
    """Two RNG states (nested tuples, dicts, numpy arrays) equal value for value."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, (tuple, list)):
        return (
            isinstance(b, (tuple, list))
            and len(a) == len(b)
            and all(_same_state(x, y) for x, y in zip(a, b))
        )
    return a == b


def test_the_restored_states_keep_the_cached_normal_draws() -> None:
    """``random.gauss`` and numpy's legacy normals draw two values at a time and keep one
    for the next call: that kept value is part of the state put back."""
    random.seed(5)
    np.random.seed(5)
    random.gauss(0.0, 1.0)  # one normal kept for the next call
    np.random.standard_normal()
    py, legacy = random.getstate(), np.random.get_state()
    assert py[2] is not None and legacy[3] == 1
    with preserved_rng():
        random.gauss(0.0, 1.0)
        np.random.standard_normal(3)
    assert random.getstate() == py
    assert _same_state(np.random.get_state(), legacy)


def test_import_torch_loads_torch_and_restores_its_generator() -> None:
    pytest.importorskip("torch")
    torch_state = (
        "import sys\n"
        "from lrkit._runtime import GlobalRNGState, preserved_rng\n"
        "with preserved_rng(import_torch=True) as state:\n"
        "    import torch\n"
        "    a = torch.rand(3)\n"
        "print(state.torch is not None, torch.equal(torch.rand(3), a))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", torch_state], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "True"]


def test_preserved_rng_restores_the_generators_of_the_loaders_it_is_given() -> None:
    torch = pytest.importorskip("torch")
    data = torch.utils.data.TensorDataset(torch.arange(8.0))
    own = torch.Generator().manual_seed(6)
    loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=True, generator=own)
    before = own.get_state()
    with preserved_rng(data=([loader],)):
        first = [x.tolist() for (x,) in loader]
    assert torch.equal(own.get_state(), before)
    assert [x.tolist() for (x,) in loader] == first


def test_a_loaders_own_generator_and_its_samplers_are_both_saved() -> None:
    torch = pytest.importorskip("torch")
    data = torch.utils.data.TensorDataset(torch.arange(8.0))
    seeds = torch.Generator().manual_seed(7)  # the loader's own: its iterator's base seed
    order = torch.Generator().manual_seed(8)
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=2,
        sampler=torch.utils.data.RandomSampler(data, generator=order),
        generator=seeds,
    )
    assert data_generators(loader) == [seeds, order]
    before = (seeds.get_state(), order.get_state())
    state = GlobalRNGState(data=(loader,))
    list(loader)
    state.restore()
    assert torch.equal(seeds.get_state(), before[0])
    assert torch.equal(order.get_state(), before[1])
    # without batching, the loader's sampler is read directly (it has no batch sampler)
    unbatched = torch.utils.data.DataLoader(
        data, batch_size=None, sampler=torch.utils.data.RandomSampler(data, generator=order)
    )
    assert data_generators(unbatched) == [order]


def test_the_loaders_a_python_generator_reads_are_found() -> None:
    torch = pytest.importorskip("torch")
    data = torch.utils.data.TensorDataset(torch.arange(8.0))
    gen = torch.Generator().manual_seed(9)
    loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=True, generator=gen)

    def batches(source):
        for (x,) in source:
            yield x

    pending = batches(loader)  # not started: its argument is in its frame
    assert data_loaders(pending) == [pending, loader]
    assert data_generators(pending) == [gen]
    list(pending)
    assert data_loaders(pending) == [pending]  # an ended generator holds nothing


def test_only_the_loaders_of_a_list_are_taken_from_it() -> None:
    torch = pytest.importorskip("torch")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(4.0)))
    mixed = [loader, [1, 2], "text"]
    assert data_loaders(mixed) == [mixed, loader]
    assert data_loaders({"a": loader, "b": 3}) == [{"a": loader, "b": 3}, loader]


def test_a_generator_expression_over_a_loader_has_started_it() -> None:
    torch = pytest.importorskip("torch")
    from lrkit._runtime import started_loader

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(4.0)))

    def batches():
        yield from loader

    assert started_loader(x for (x,) in loader) is True
    assert started_loader(batches()) is False  # its loop has not run yet
    assert started_loader([loader]) is False
    assert started_loader(loader) is False


def test_a_factorys_batches_are_made_again_for_each_pass() -> None:
    from lrkit._runtime import Passes

    made: list[int] = []

    def factory():
        made.append(len(made))
        return iter([len(made), 10 * len(made)])

    passes = Passes(factory)
    assert list(passes) == [1, 10]
    assert list(passes) == [2, 20]
    assert made == [0, 1]


def test_a_broken_process_group_counts_as_rank0(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> int:
        raise RuntimeError("the backend went away")

    dist = types.SimpleNamespace(
        is_available=lambda: True, is_initialized=lambda: True, get_rank=broken
    )
    monkeypatch.setitem(sys.modules, "torch.distributed", dist)
    assert is_rank0() is True


def test_a_warning_at_the_import_of_a_module_lrkit_loads_points_at_the_users_call(
    tmp_path, monkeypatch
) -> None:
    """A module imported by lrkit's own code that warns as it is imported: the warning passes
    over the import machinery and lrkit's importing function to the user's line."""
    import warnings

    from lrkit import _runtime

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "lrkit_test_outer.py").write_text(
        "def load():\n    import lrkit_test_inner  # noqa: F401\n"
    )
    (package / "lrkit_test_inner.py").write_text(
        "from lrkit import _renamed\n\n_renamed.warn('lrkit test: renamed')\n"
    )
    monkeypatch.setattr(_runtime, "_PACKAGE_DIR", str(package) + os.sep)  # counts as lrkit's
    monkeypatch.syspath_prepend(str(package))
    for name in ("lrkit_test_outer", "lrkit_test_inner"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import lrkit_test_outer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lrkit_test_outer.load()
        line = sys._getframe().f_lineno - 1
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, line)]


@pytest.mark.usefixtures("python_sigint")
def test_an_interrupt_raised_again_is_not_also_reported_and_the_hook_is_put_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reported: list[BaseException] = []

    def mine(unraisable: object) -> None:
        reported.append(unraisable.exc_value)  # type: ignore[attr-defined]

    monkeypatch.setattr(sys, "unraisablehook", mine)
    with pytest.raises(KeyboardInterrupt), kept_interrupts():
        _InterruptedCleanUp()
    assert reported == []
    assert sys.unraisablehook is mine


def test_signals_are_left_alone_outside_the_main_thread() -> None:
    import threading

    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    seen: list[object] = []

    def work() -> None:
        try:
            with HeldSignals() as held, kept_interrupts() as raise_dropped:
                with held.deliverable():
                    raise_dropped()
                seen.append((signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)))
        except BaseException as exc:  # reported to the main thread
            seen.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [before]


def test_a_signal_held_when_the_block_fails_is_not_delivered_later() -> None:
    calls: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        held = HeldSignals()
        with pytest.raises(RuntimeError), held:
            signal.raise_signal(signal.SIGTERM)
            raise RuntimeError("the block fails with the signal held")
        with held, held.deliverable():  # the same object used again
            pass
        assert calls == []
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_held_signal_whose_action_is_the_default_ends_the_process() -> None:
    code = (
        "import signal\n"
        "from lrkit._runtime import HeldSignals\n"
        "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
        "with HeldSignals() as held:\n"
        "    signal.raise_signal(signal.SIGTERM)\n"
        "    print('held', flush=True)\n"
        "    held.deliver_pending()\n"
        "    print('not reached', flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (out.returncode, out.stdout) == (-signal.SIGTERM, "held\n")


def test_cuda_generators_are_restored_without_starting_cuda() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    code = (
        "import torch\n"
        "from lrkit._runtime import GlobalRNGState\n"
        "GlobalRNGState()\n"
        "print(torch.cuda.is_initialized())\n"
        "torch.rand(1, device='cuda')\n"
        "state = GlobalRNGState()\n"
        "a = torch.rand(3, device='cuda')\n"
        "state.restore()\n"
        "print(torch.equal(torch.rand(3, device='cuda'), a))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
