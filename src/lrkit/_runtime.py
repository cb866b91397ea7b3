"""Process-wide state every layer shares: the global RNGs and the distributed rank.

The one home for

* :class:`GlobalRNGState` / :func:`preserved_rng`: save the global random number generators
  (Python's ``random``, numpy's legacy global ``np.random``, and torch's CPU and CUDA default
  generators when torch is loaded) and put them back exactly;
* :func:`is_rank0`: ``False`` only on a non-zero rank of an initialized ``torch.distributed``
  process group;
* :func:`caller_level`: the ``stacklevel`` that points a warning at the user's code;
* :func:`data_loaders` / :func:`data_generators`: the torch DataLoaders inside a data source
  and the generators they draw their order from (public as ``lrkit.torch.data_generators``);
* :class:`HeldSignals`: Ctrl-C and SIGTERM delivered only while the user's own code runs,
  held while another library's bookkeeping (Optuna's) must not be cut in the middle.

None imports torch: torch's state is handled only when some other code has imported it
(or when ``import_torch=True`` asks for it), so the framework-free core can use them.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import random
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

__all__ = [
    "GlobalRNGState",
    "data_generators",
    "data_loaders",
    "in_range_test",
    "is_data_factory",
    "is_rank0",
    "one_pass",
    "preserved_rng",
    "range_test_steps",
]

# set while a range test steps the optimizer: lrkit's own step observers (hooks on the
# optimizer) leave those throwaway steps out
_RANGE_TEST: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lrkit_range_test", default=False
)


@contextlib.contextmanager
def range_test_steps() -> Iterator[None]:
    """Mark the steps taken inside the block as a range test's (see :func:`in_range_test`)."""
    token = _RANGE_TEST.set(True)
    try:
        yield
    finally:
        _RANGE_TEST.reset(token)


def is_data_factory(data: Any) -> bool:
    """Whether ``data`` is a zero-argument callable returning the batches (called once per
    pass, as :func:`lrkit.torch.fit` and :func:`lrkit.tune.torch_task` take it) rather than
    the batches themselves: callable and not iterable."""
    return callable(data) and not hasattr(data, "__iter__")


def one_pass(data: Any) -> Any:
    """The batches of one pass over ``data``: a data factory (:func:`is_data_factory`) is
    called, anything else is the batches."""
    return data() if is_data_factory(data) else data


class Passes:
    """The batches of the data factory ``factory`` (:func:`is_data_factory`), called again for
    each pass: an iterable, for what reads batches as one (a range test)."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory

    def __iter__(self) -> Iterator[Any]:
        return iter(self.factory())


def from_torch(leaf: Any) -> Any:
    """A torch tensor (e.g. of a DataLoader's batch) as a numpy array, on the host; anything
    else as it is (torch is not imported)."""
    if type(leaf).__module__.split(".")[0] == "torch" and hasattr(leaf, "detach"):
        return leaf.detach().cpu().numpy()
    return leaf


def in_range_test() -> bool:
    """Whether the current step is a range test's: lrkit's step hooks ignore such steps."""
    return _RANGE_TEST.get()


def _torch(import_torch: bool) -> Any:
    torch = sys.modules.get("torch")
    if torch is None and import_torch:
        try:
            import torch
        except ImportError:
            torch = None
    return torch


class GlobalRNGState:
    """The global RNG states at construction; :meth:`restore` sets them back bit for bit.

    Covers Python's ``random``, numpy's global ``np.random`` and, when torch is loaded (or
    ``import_torch=True`` and it is installed), ``torch``'s CPU generator and every
    initialized CUDA device's generator. A torch ``DataLoader`` draws its shuffling seed from
    these when its iterator starts, so restoring them also replays its order; one built with
    a ``generator=`` of its own draws from that: ``data`` (data sources: loaders, lists or
    dicts of them) names the loaders whose own generators are saved and restored too
    (:func:`data_generators`)."""

    def __init__(self, *, import_torch: bool = False, data: tuple[Any, ...] = ()) -> None:
        self.generators = [(g, g.get_state()) for g in data_generators(*data)]
        self.py = random.getstate()
        self.np = np.random.get_state()
        torch = _torch(import_torch)
        self.torch = None if torch is None else torch.get_rng_state()
        cuda = torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()
        self.cuda = torch.cuda.get_rng_state_all() if cuda else None

    def restore(self) -> None:
        """Put every saved state back (the object can restore more than once)."""
        for g, state in self.generators:
            g.set_state(state)
        random.setstate(self.py)
        np.random.set_state(self.np)
        if self.torch is not None:
            torch = sys.modules["torch"]
            torch.set_rng_state(self.torch)
            if self.cuda is not None:
                torch.cuda.set_rng_state_all(self.cuda)


@contextlib.contextmanager
def preserved_rng(
    *, import_torch: bool = False, data: tuple[Any, ...] = ()
) -> Iterator[GlobalRNGState]:
    """Save the global RNG states (and ``data``'s loaders' own generators) on entry and
    restore them on exit, also after an exception (see :class:`GlobalRNGState`)."""
    state = GlobalRNGState(import_torch=import_torch, data=data)
    try:
        yield state
    finally:
        state.restore()


def data_loaders(*sources: Any) -> list[Any]:
    """The data sources and the torch DataLoaders inside them, each once: a dict's values, the
    loaders of a list or tuple, a combined loader's ``flattened`` list (Lightning's
    ``CombinedLoader``), the loaders a Python generator holds in its frame (its arguments and
    the names it reads from an enclosing function: ``def batches(loader): for b in loader:
    yield ...``). Without torch loaded, the sources themselves."""
    torch = sys.modules.get("torch")
    loader = None if torch is None else torch.utils.data.DataLoader
    found: list[Any] = []
    for data in sources:
        if data is None:
            continue
        found.append(data)
        inner: Any = data.values() if isinstance(data, Mapping) else data
        if not isinstance(inner, (list, tuple)) and not isinstance(data, Mapping):
            inner = getattr(data, "flattened", None)
        if loader is not None and (isinstance(inner, (list, tuple)) or isinstance(data, Mapping)):
            found.extend(d for d in inner if isinstance(d, loader))
        if loader is not None:
            found.extend(d for d in _generator_locals(data) if isinstance(d, loader))
    out: list[Any] = []
    seen: set[int] = set()
    for d in found:  # each once (data and val_data may be the same loader)
        if id(d) not in seen:
            seen.add(id(d))
            out.append(d)
    return out


def started_loader(data: Any) -> bool:
    """Whether ``data`` is a Python generator that already holds a torch DataLoader's
    iterator: a generator expression over a loader (``(f(b) for b in loader)``) makes it when
    the expression is written, and making it draws from the loader's random generator (or
    torch's global one), before any code given the generator can save that state."""
    if sys.modules.get("torch") is None:
        return False
    return any(
        type(v).__module__ == "torch.utils.data.dataloader"
        and type(v).__name__.endswith("DataLoaderIter")
        for v in _generator_locals(data)
    )


def _generator_locals(data: Any) -> list[Any]:
    """The values a Python generator's frame holds (its arguments, its locals, the names it
    reads from an enclosing function); none for anything else, or a generator that ended."""
    frame = getattr(data, "gi_frame", None)
    return [] if frame is None else list(frame.f_locals.values())


def data_generators(*sources: Any) -> list[Any]:
    """The ``torch.Generator`` objects the DataLoaders (or samplers) ``sources`` draw their
    order from, each once (a loader built with ``generator=``), so that their state can be
    saved and put back (``g.get_state()`` / ``g.set_state(...)``): a loader without one draws
    from torch's global generator instead (:class:`GlobalRNGState`). Empty without torch
    loaded."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    gens: list[Any] = []
    seen: set[int] = set()
    objs = [
        obj
        for data in data_loaders(*sources)
        for obj in (
            data,
            getattr(data, "sampler", None),
            getattr(data, "batch_sampler", None),
            getattr(getattr(data, "batch_sampler", None), "sampler", None),
        )
    ]
    for obj in objs:
        g = getattr(obj, "generator", None)
        if isinstance(g, torch.Generator) and id(g) not in seen:
            seen.add(id(g))
            gens.append(g)
    return gens


def is_rank0() -> bool:
    """``False`` only on a non-zero rank of an initialized ``torch.distributed`` process group
    (``True`` without torch, without a process group, and on rank 0)."""
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return True
    try:
        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank()) == 0
    except Exception:  # pragma: no cover - defensive: a broken backend must not crash logging
        return True
    return True


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


#: the libraries that run lrkit's code from their own (a trainer's callbacks and hooks, a
#: compiled or traced step, a scheduler's constructor, a study's objective): a warning
#: passes over their frames to the user's call that started them (``trainer.fit(...)``)
_RUNNERS = (
    "torch",
    "pytorch_lightning",
    "lightning",
    "lightning_fabric",
    "transformers",
    "accelerate",
    "keras",
    "jax",
    "optax",
    "optuna",
)


def _passed_over() -> tuple[str, ...]:
    """Folders whose frames count as lrkit's own: lrkit's, and those of the libraries of
    :data:`_RUNNERS` that are loaded (the folder each was imported from, not any folder
    of that name)."""
    dirs = [_PACKAGE_DIR]
    for name in _RUNNERS:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path is not None:
            dirs.append(os.path.dirname(os.path.abspath(path)) + os.sep)
    return tuple(dirs)


def _import_machinery(frame: Any) -> bool:
    """Whether ``frame`` is one of Python's import machinery, which ``warnings`` passes over
    without counting it in a ``stacklevel``."""
    name = frame.f_code.co_filename
    return "importlib" in name and "_bootstrap" in name


def caller_level() -> int:
    """The ``stacklevel`` that points a warning, issued by the function that calls this, at
    the first frame outside lrkit and the libraries that run it (:data:`_RUNNERS`): the
    user's call, however deep inside them it was made (a module's import: the ``import``
    line)."""
    passed = _passed_over()
    level = 2
    frame: Any = sys._getframe(2)  # 2: the caller of the function that warns
    while frame is not None:
        if _import_machinery(frame):
            frame = frame.f_back
        elif frame.f_code.co_filename.startswith(passed):
            frame, level = frame.f_back, level + 1
        else:
            break
    return level


@contextlib.contextmanager
def kept_interrupts() -> Iterator[Callable[[], None]]:
    """While the block runs (in the main thread), SIGINT and SIGTERM are delivered as their
    handlers deliver them, and the exception a handler raised (``KeyboardInterrupt``, a
    command's own) is watched: where Python drops it (raised inside a garbage-collection
    callback, as during a lazy import, through ``sys.unraisablehook``), it is raised again on
    leaving the block, without Python's "Exception ignored in ..." traceback (a command ends
    with its one line). One that code in the block caught and handled stays handled. Where a
    handler is not Python's (the default action, ignored), nothing changes. The block gets a
    function that raises a dropped one at once, for a loop to call where an interrupt may be
    raised (between two trials)."""
    dropped: list[BaseException] = []

    def raise_dropped() -> None:
        if dropped:
            raise dropped.pop(0)

    if threading.current_thread() is not threading.main_thread():
        yield raise_dropped
        return
    kept: list[BaseException] = []
    previous_hook = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if any(unraisable.exc_value is exc for exc in kept):
            dropped.append(unraisable.exc_value)
            return  # raised again on leaving the block: not said here too
        previous_hook(unraisable)  # anything else, said as before ("Exception ignored in ...")

    installed: dict[int, tuple[Any, Any]] = {}
    for name in HeldSignals.SIGNALS:
        sig = getattr(signal, name, None)
        previous = None if sig is None else signal.getsignal(sig)
        if sig is None or not callable(previous):
            continue

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            try:
                previous(signum, frame)
            except BaseException as exc:
                kept.append(exc)
                raise

        installed[sig] = (previous, handler)
        signal.signal(sig, handler)
    sys.unraisablehook = hook
    try:
        yield raise_dropped
    finally:
        if sys.unraisablehook is hook:
            sys.unraisablehook = previous_hook
        for sig, (previous, handler) in installed.items():
            if signal.getsignal(sig) == handler:  # one that reset itself stays
                signal.signal(sig, previous)
    if dropped:  # delivered, and dropped where it was raised
        raise dropped[0]


class HeldSignals:
    """While active (a ``with`` block in the main thread), SIGINT and SIGTERM are delivered
    as their handlers would (``KeyboardInterrupt``, the handler a command installed, or the
    default action) only inside :meth:`deliverable` blocks (the user's own code, a wait);
    elsewhere they are held, and :meth:`deliver_pending` delivers one at a point where it is
    safe. A second signal while one is held is delivered at once, wherever the process is.

    Optuna's trial bookkeeping (creating and telling a trial, the heartbeat thread it starts
    and stops around the objective) cut by an interrupt can leave that thread running, so
    that the process never exits, or fail inside Optuna's own code. Elsewhere than the main
    thread, or for a signal whose handler is not Python's (ignored, or set outside Python),
    nothing changes."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._inside = 0
        self._pending: list[int] = []

    def __enter__(self) -> HeldSignals:
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name, None)
                if sig is None:
                    continue
                previous = signal.getsignal(sig)
                if previous is None or previous == signal.SIG_IGN:
                    continue
                self._previous[sig] = previous
                signal.signal(sig, self._handler)
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if exc_type is None:
                self.deliver_pending()  # one held during the last of the bookkeeping
        finally:
            for sig, previous in self._previous.items():
                if signal.getsignal(sig) == self._handler:  # one that reset itself stays
                    signal.signal(sig, previous)
            self._previous.clear()
            self._pending.clear()

    def _handler(self, signum: int, frame: Any) -> None:
        if self._inside or self._pending:
            self._pending.clear()
            self._deliver(signum, frame)
        else:
            self._pending.append(signum)

    def _deliver(self, signum: int, frame: Any) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)  # raises KeyboardInterrupt (or the command's exception)
        else:  # the default action (SIGTERM: the process ends)
            signal.signal(signum, previous)
            signal.raise_signal(signum)

    def deliver_pending(self) -> None:
        """Deliver a held signal now (the caller is at a point where it may be raised)."""
        if self._pending:
            signum = self._pending[0]
            self._pending.clear()
            self._deliver(signum, None)

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Inside a :meth:`deliverable` block, a block in which signals are held again (a
        database write the user's code makes through lrkit, such as a trial's report); one
        that came meanwhile is delivered at its end."""
        inside, self._inside = self._inside, 0
        try:
            yield
        finally:
            self._inside = inside
            if inside:
                self.deliver_pending()

    @contextlib.contextmanager
    def deliverable(self) -> Iterator[None]:
        """A block in which signals are delivered at once (one held before it is, first)."""
        self.deliver_pending()
        self._inside += 1
        try:
            yield
        finally:
            self._inside -= 1
