"""docs/keras.md lists each callback's arguments in the order of its real signature."""

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

keras = pytest.importorskip("keras")

import lrkit.keras as lk  # noqa: E402
from lrkit.feedback import DetectorKwargs, PlateauKwargs  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "keras.md"


def _documented(name: str) -> list[str]:
    """The argument names of ``lk.<name>(...)`` as the bold signature in docs/keras.md shows
    them (``*`` marks the keyword-only ones)."""
    found = re.search(rf"\*\*`lk\.{name}\((.*?)\)`\*\*", DOC.read_text(), re.S)
    assert found is not None, f"docs/keras.md shows no signature of lk.{name}"
    return [a.split("=")[0].strip() for a in " ".join(found.group(1).split()).split(",")]


def _real(cls: Any, keywords: Any) -> list[str]:
    """``cls``'s arguments in signature order, its ``**`` keywords spelled out."""
    out = []
    for p in inspect.signature(cls).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            out += list(keywords.__annotations__)
            continue
        if p.kind is p.KEYWORD_ONLY and "*" not in out:
            out.append("*")
        out.append(p.name)
    return out


@pytest.mark.repository("docs")
@pytest.mark.parametrize(
    "name, keywords",
    [("DivergenceGuard", DetectorKwargs), ("ReduceOnPlateau", PlateauKwargs)],
)
def test_the_documented_arguments_follow_the_signature(name: str, keywords: Any) -> None:
    assert _documented(name) == _real(getattr(lk, name), keywords)


@pytest.mark.parametrize(
    "member",
    [
        lk.LRLogger.lrs,
        lk.ReduceOnPlateau.scale,
        lk.DivergenceGuard.scale,
        lk.LRKitSchedule.get_config,
        lk.ScaledSchedule.get_config,
    ],
)
def test_the_public_members_say_what_they_hold(member: Any) -> None:
    assert inspect.getdoc(member)
