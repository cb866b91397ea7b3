"""GuardBook: the snapshot bookkeeping both framework divergence guards share; as_metric."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from lrkit.feedback import DivergenceDetector, GuardBook, as_metric


def test_a_snapshot_is_due_every_snapshot_every_good_checks() -> None:
    book: GuardBook[int] = GuardBook(DivergenceDetector(), snapshot_every=3, keep=2)
    due = []
    for k in range(7):
        assert book.check(1.0, step=k) == "ok"
        due.append(book.due())
    assert due == [False, False, True, False, False, True, False]
    assert book.good == 1


def test_restores_the_newest_and_drops_one_that_diverged_again_at_once() -> None:
    book: GuardBook[str] = GuardBook(DivergenceDetector(max_restores=5), keep=3)
    for name in ("a", "b", "c", "d"):
        book.add(name)
    assert list(book.snapshots) == ["b", "c", "d"]  # keep=3
    assert book.check(math.nan) == "restore"
    assert book.to_restore() == "d"
    assert book.check(math.inf) == "restore"  # diverged at once after the restore
    assert book.to_restore() == "c"
    assert book.to_restore(again=True) == "c"  # the same one once more
    assert book.check(1.0) == "ok" and book.check(math.nan) == "restore"
    assert book.to_restore() == "c"  # a good check in between: the newest stays
    assert book.check(math.nan) == "restore"
    assert book.to_restore() == "b"
    assert book.check(math.nan) == "restore"
    assert book.to_restore() == "b"  # the last one is never dropped
    book.clear()
    assert list(book.snapshots) == [] and book.good == 0 and book.last_ok


def test_a_snapshot_taken_after_a_restore_is_the_one_restored_next() -> None:
    """A snapshot added between a restore and the next divergence (a guard's ``snapshot()``
    after the param groups changed, as its error says) is a new state: restored at the next
    divergence, not dropped as the restored state that diverged again."""
    book: GuardBook[str] = GuardBook(DivergenceDetector(max_restores=5), keep=3)
    book.add("a")
    assert book.check(math.nan) == "restore"
    assert book.to_restore() == "a"
    book.add("b")
    assert book.check(math.nan) == "restore"
    assert book.to_restore() == "b"
    assert list(book.snapshots) == ["a", "b"]
    assert book.check(math.nan) == "restore"  # b diverged again at once: dropped
    assert book.to_restore() == "a"


def test_bad_arguments_are_one_line_value_errors() -> None:
    with pytest.raises(ValueError, match="snapshot_every must be an integer >= 1"):
        GuardBook(DivergenceDetector(), snapshot_every=0)
    with pytest.raises(
        ValueError, match=r"keep must be an integer in \[1, sys.maxsize\], got True"
    ):
        GuardBook(DivergenceDetector(), keep=True)
    with pytest.raises(ValueError, match=r"^keep must be an integer in \[1, sys.maxsize\]"):
        GuardBook(DivergenceDetector(), keep=2**63)  # (a deque's longest is 2**63 - 1)
    with pytest.raises(ValueError, match="controller must be a lrkit.feedback.DivergenceDetector"):
        GuardBook(object())  # type: ignore[arg-type]


def test_as_metric_reads_numbers_and_rejects_the_rest() -> None:
    assert as_metric(2) == 2.0 and as_metric(np.float32(0.5)) == 0.5
    assert as_metric(np.array(3.0)) == 3.0
    bools_and_complex = (np.bool_(False), np.array(True), np.complex128(1), np.complex64(2j))
    for bad in (True, "abc", "0.1", b"1", None, [1.0, 2.0], 1j, *bools_and_complex):
        with pytest.raises(ValueError, match="value must be a real number"):
            as_metric(bad)
    with pytest.raises(ValueError, match=r"^value must be a real number a float holds, got an "):
        as_metric(10**400)
    with pytest.raises(ValueError, match=r"^metric must be a real number, got 'x'$"):
        as_metric("x", name="metric")


def test_a_detector_names_the_loss_it_was_given() -> None:
    for bad in ("nan", None, [1.0]):
        for call in (DivergenceDetector().check, DivergenceDetector().is_divergent):
            with pytest.raises(
                ValueError, match="^" + re.escape(f"loss must be a real number, got {bad!r}") + "$"
            ):
                call(bad)  # type: ignore[arg-type]


def test_as_metric_refuses_torch_bool_and_complex_tensors() -> None:
    torch = pytest.importorskip("torch")
    assert as_metric(torch.tensor(0.25)) == 0.25 and as_metric(torch.tensor(3)) == 3.0
    for bad in (torch.tensor(True), torch.tensor(1 + 0j), torch.tensor(1j, dtype=torch.complex128)):
        with pytest.raises(ValueError, match=r"^value must be a real number, got .*\(dtype torch"):
            as_metric(bad)


def test_detector_arguments_have_one_definition() -> None:
    import inspect

    from lrkit.feedback import DetectorKwargs

    params = list(inspect.signature(DivergenceDetector).parameters.values())
    assert params[0].name == "factor"
    assert list(DetectorKwargs.__annotations__) == [p.name for p in params[1:]]
    assert all(p.kind is p.KEYWORD_ONLY for p in params[1:])


def test_as_metric_refuses_numbers_written_as_text_inside_arrays() -> None:
    """A string inside a numpy array (or an object array holding a string or a bool) is as
    much a string as a bare one; an object array holding a number is read as the number."""
    for bad in (np.array("1.5"), np.array(["1.5"]), np.array(b"1"), np.array("nan"),
                np.array([True], dtype=object), np.array(["0.25"], dtype=object),
                np.array("2026-12-03", dtype="datetime64[D]")):  # fmt: skip
        with pytest.raises(ValueError, match="^value must be a real number, got "):
            as_metric(bad)
    assert as_metric(np.array([1.5], dtype=object)) == 1.5
    assert as_metric(np.array(2, dtype=object)) == 2.0
    with pytest.raises(ValueError, match="^loss must be a real number"):
        DivergenceDetector().check(np.array("nan"))  # was read as a NaN loss: "restore"


def test_a_relative_threshold_of_1_or_more_in_min_mode_is_refused() -> None:
    """No positive metric can fall below best * (1 - threshold) <= 0: the plateau would cut at
    every patience + 1 updates (PyTorch) or one update later (before); either is a mistake
    (threshold=1 meant as 1%), so it is refused. mode="max" and "abs" thresholds keep it."""
    from lrkit.feedback import ReduceOnPlateau, RestartOnPlateau

    for th in (1, 1.0, 1.5):
        for make in (ReduceOnPlateau, RestartOnPlateau):
            with pytest.raises(
                ValueError,
                match=r"^threshold must be < 1 with mode='min' and threshold_mode='rel' ",
            ):
                make(threshold=th)
    assert ReduceOnPlateau(mode="max", threshold=1.0).threshold == 1.0
    assert ReduceOnPlateau(threshold=1.0, threshold_mode="abs").threshold == 1.0
