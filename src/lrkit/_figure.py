"""Where a ``.plot()`` draws: the one home of the rule every lrkit plot method follows.

* ``.plot("file.png")`` or ``.plot(path="file.png")`` draws on a bare matplotlib ``Figure``
  (never pyplot: the caller's backend and open figures are untouched) and writes the file;
* ``.plot(ax)`` / ``.plot(ax=ax)`` draws on the caller's axes (single-panel plots);
* ``.plot()`` draws on a new pyplot figure, shown the way the caller's backend shows figures.

Core module: the standard library only (matplotlib is imported when a plot is drawn).
"""

from __future__ import annotations

import math
import os
import types
from collections.abc import Callable, Iterable
from typing import Any

from . import _validate as V
from ._files import names_folder

__all__ = [
    "check_path",
    "draw_grid",
    "grid_color",
    "is_path",
    "new_axes",
    "new_figure",
    "resolve",
    "save_figure",
]

#: How much of matplotlib's grid colour lrkit's grid lines take over the axes' background
#: (the look of a grid drawn at ``alpha=0.3``, drawn opaque).
GRID_STRENGTH = 0.3


def is_path(value: Any) -> bool:
    """A file name: a ``str``, ``bytes`` or ``os.PathLike``."""
    return isinstance(value, (str, bytes, os.PathLike))


def check_path(path: Any) -> None:
    """``path`` is ``None`` or a file name, else a one-line ``ValueError``."""
    if path is not None and not is_path(path):
        raise ValueError(f"path must be a file name (str, bytes or os.PathLike), got {V.fmt(path)}")


def resolve(first: Any, path: Any, *, first_name: str) -> tuple[Any, Any]:
    """Split a plot method's first argument: a file name there is the ``path`` (given twice
    is a one-line ``ValueError``); anything else is returned as it is. Returns
    ``(first, path)``."""
    if is_path(first):
        if path is not None:
            raise ValueError(
                f"{first_name} is a file name ({first!r}) and path={path!r} is given too: "
                "pass the file name once"
            )
        return None, first
    check_path(path)
    return first, path


#: the magnitude an image's axes span up to (not included): matplotlib's margins and ticks
#: overflow float64 near its largest value (a constant 1e307 on a log axis cannot be drawn)
MAX_DRAWN = 1e307


class UndrawableError(ValueError):
    """Values no image's axes can span (:func:`check_drawable`): a notebook display shows its
    table without the image; any other error of a plot is raised as it is."""


def check_drawable(ys: Any, *, what: str = "the values") -> None:
    """A one-line :class:`UndrawableError` (a ``ValueError``) for values beyond what
    matplotlib's axes can span (``MAX_DRAWN``), where it would fail deep inside its layout."""
    import numpy as np

    y = np.asarray(ys, dtype=float).ravel()
    y = y[np.isfinite(y)]
    if y.size and np.abs(y).max() >= MAX_DRAWN:
        raise UndrawableError(
            f"{what} reach {y[np.argmax(np.abs(y))]:.4g}, beyond what an image's axes can span "
            f"(magnitudes below {MAX_DRAWN:g}): the text plot (lrkit.textplot.text_plot) draws "
            "them"
        )


def off_frame(values: Any) -> Any:
    """``values`` as a float array with those no axes can span (magnitude ``MAX_DRAWN`` or
    more) left out (NaN): for a plot whose frame is set from other values (a range test's
    divergence, drawn out of the frame), where matplotlib would fail on them."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    return np.where(np.abs(v) < MAX_DRAWN, v, np.nan)


def draw_curve(ax: Any, xs: Any, ys: Any, **kwargs: Any) -> Any:
    """``ax.plot(xs, ys, **kwargs)``, visible also where a single point is finite (a line of
    one point draws nothing: it gets a marker) and over the whole range of ``xs`` (matplotlib
    would span the finite points only): the axes' data limits take that range in, their
    autoscaling stays on, so what else is drawn on them keeps its room. Returns the line."""
    import numpy as np

    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    check_drawable(y)
    if int(np.isfinite(y).sum()) == 1 and "marker" not in kwargs:
        kwargs["marker"] = "o"
    (line,) = ax.plot(x, y, **kwargs)
    if x.size > 1 and np.isfinite(x).all() and x.min() < x.max():
        ax.update_datalim([(x.min(), 0.0), (x.max(), 0.0)], updatey=False)
        ax.autoscale_view()
    return line


def new_figure(path: Any, *, figsize: tuple[float, float]) -> Any:
    """A figure to draw on: a bare ``Figure`` when it is written to ``path``, else pyplot's."""
    if path is not None:
        from matplotlib.figure import Figure

        return Figure(figsize=figsize)
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize)


def log_axis_fits(values: Iterable[float]) -> bool:
    """Whether a log y-axis can draw ``values``: every finite one is above 0 (a loss below 0,
    such as a negative log-likelihood, is drawn on a linear axis)."""
    return all(v > 0 for v in values if math.isfinite(v))


def check_title(title: Any) -> None:
    """A plot's ``title``: a string or ``None``, else a one-line ``ValueError`` naming it."""
    if title is not None and not isinstance(title, str):
        raise ValueError(f"title must be a string or None, got {V.fmt(title)}")


def is_axes(value: Any) -> bool:
    """Whether ``value`` is (drawn on as) a matplotlib Axes: ``plot`` and ``get_xlim``
    methods and a figure (not pyplot, a module with functions of those names)."""
    return (
        not isinstance(value, types.ModuleType)
        and callable(getattr(value, "plot", None))
        and callable(getattr(value, "get_xlim", None))
        and getattr(value, "figure", None) is not None
    )


def new_axes(
    ax: Any, path: Any, *, figsize: tuple[float, float], title: Any = None
) -> tuple[Any, Any]:
    """``(figure, axes)``: the caller's ``ax`` and its figure, or one new axes on
    :func:`new_figure`. ``title`` (the plot's, given by the caller) must be a string or
    ``None``; both are checked before anything is drawn."""
    check_title(title)
    if ax is not None:
        if not is_axes(ax):
            hint = " (pyplot itself: pass plt.gca())" if isinstance(ax, types.ModuleType) else ""
            raise ValueError(f"ax must be a matplotlib Axes or None, got {V.fmt(ax)}{hint}")
        return ax.figure, ax
    fig = new_figure(path, figsize=figsize)
    return fig, fig.add_subplot()


def grid_color(ax: Any) -> tuple[float, float, float]:
    """The opaque colour of ``ax``'s grid lines: matplotlib's grid colour
    (``rcParams["grid.color"]``) mixed at :data:`GRID_STRENGTH` into the axes' background
    (white where the background is transparent)."""
    import matplotlib as mpl
    from matplotlib.colors import to_rgba

    line = to_rgba(mpl.rcParams["grid.color"])
    r, g, b, _ = _mixed((*line[:3], GRID_STRENGTH), _backdrop(ax))
    return (r, g, b)


def _backdrop(owner: Any) -> tuple[float, float, float]:
    """The colour of ``owner``'s background (axes or figure; ``None``: none), white where it
    is transparent."""
    from matplotlib.colors import to_rgba

    back = to_rgba(owner.get_facecolor()) if owner is not None else (1.0, 1.0, 1.0, 0.0)
    if back[3] == 0:
        return (1.0, 1.0, 1.0)
    return (back[0], back[1], back[2])


def _background(artist: Any) -> tuple[float, float, float]:
    """What ``artist`` is drawn over: its axes' (else the figure's) colour, white where that
    is transparent."""
    axes = getattr(artist, "axes", None)
    return _backdrop(axes if axes is not None else artist.get_figure())


def _mixed(rgba: Any, back: tuple[float, float, float]) -> tuple[float, float, float, float]:
    """``rgba`` drawn over ``back``, as one opaque colour (fully transparent stays so)."""
    r, g, b, a = (float(v) for v in rgba)
    if a == 0 or a == 1:
        return (r, g, b, a)
    return (a * r + (1 - a) * back[0], a * g + (1 - a) * back[1], a * b + (1 - a) * back[2], 1.0)


def flatten_alpha(fig: Any) -> Callable[[], None]:
    """Every partly transparent line, patch and collection of ``fig`` drawn opaque in the
    colour it shows over its background (PostScript cannot draw transparency: matplotlib
    draws such artists at full strength, with a warning). Returns the function that puts
    every artist's colours and alpha back as they were (a colour-mapped collection, whose
    colours come from its data, is left as it is)."""
    from matplotlib.collections import Collection
    from matplotlib.colors import to_rgba
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    undo: list[Callable[[], None]] = []
    for artist in fig.findobj(lambda a: isinstance(a, (Line2D, Patch, Collection))):
        if isinstance(artist, Collection) and artist.get_array() is not None:
            continue  # its colours come from its data at each draw
        back = _background(artist)
        alpha = artist.get_alpha()
        if isinstance(artist, Line2D):
            color = _mixed(to_rgba(artist.get_color(), alpha), back)
            undo.append(_restorer(artist, alpha, color=artist.get_color()))
            artist.set_alpha(None)
            artist.set_color(color)
            continue
        face, edge = artist.get_facecolor(), artist.get_edgecolor()
        # put back as the caller gave them (matplotlib keeps them: a patch's default edge is
        # None, drawn "none"; the RGBA it shows has the alpha applied, which setting it back
        # with the alpha would apply again: an invisible edge would show)
        undo.append(
            _restorer(
                artist,
                alpha,
                facecolor=getattr(artist, "_original_facecolor", face),
                edgecolor=getattr(artist, "_original_edgecolor", edge),
            )
        )
        faces = [_mixed(c, back) for c in _rgba_list(face)]
        edges = [_mixed(c, back) for c in _rgba_list(edge)]
        artist.set_alpha(None)
        if isinstance(artist, Patch):
            if faces:
                artist.set_facecolor(faces[0])
            if edges:
                artist.set_edgecolor(edges[0])
        else:
            artist.set_facecolor(faces)
            artist.set_edgecolor(edges)

    def restore() -> None:
        for fn in reversed(undo):
            fn()

    return restore


def _restorer(artist: Any, alpha: Any, **colors: Any) -> Callable[[], None]:
    """What puts ``artist``'s alpha and ``colors`` (its setters' names without ``set_``, the
    values as its getters gave them) back."""

    def restore() -> None:
        artist.set_alpha(alpha)
        for name, value in colors.items():
            getattr(artist, f"set_{name}")(value)

    return restore


def _rgba_list(colors: Any) -> list[Any]:
    """matplotlib's face or edge colour(s) of an artist as a list of RGBA tuples."""
    import numpy as np

    arr = np.asarray(colors, dtype=float)
    if arr.size == 0:
        return []
    return [tuple(row) for row in arr.reshape(-1, 4)]


#: The file suffixes matplotlib writes with its PostScript backend.
POSTSCRIPT = (".eps", ".ps")


def save_figure(fig: Any, path: Any, *, dpi: int = 110, whole: bool = False) -> None:
    """Write ``fig`` to ``path`` (every lrkit figure is written through here; a folder is a
    one-line ``ValueError``, where matplotlib would write ``<folder>.png``, and so are a
    missing folder and a file type matplotlib does not write): for PostScript
    (``.eps``, ``.ps``), which cannot draw transparency, partly transparent artists are drawn
    opaque for the file (:func:`flatten_alpha`, undone afterwards), so the file looks as the
    figure does and matplotlib has nothing to warn about. ``whole``: the image is widened to
    everything drawn (``bbox_inches="tight"``), for a caller's figure on which lrkit drew
    beside its axes (a legend), which the caller's layout does not leave room for."""
    name = os.fsdecode(os.fspath(path))
    if not os.path.basename(name).strip():  # matplotlib would write ".png"
        raise ValueError(f"path must name a file, e.g. 'plot.png', got {V.fmt(name)}")
    if names_folder(name):  # matplotlib would write "<folder>.png"
        raise ValueError(
            f"path {name!r} is a folder: give a file name, e.g. {os.path.join(name, 'plot.png')!r}"
        )
    folder = os.path.dirname(name)
    if folder and not os.path.isdir(folder):  # Python's FileNotFoundError would not say why
        raise ValueError(f"path {name!r}: the folder {folder!r} does not exist")
    ext = os.path.splitext(name)[1].lower().lstrip(".")
    from matplotlib.backend_bases import FigureCanvasBase

    # the types matplotlib writes (its registry, where any backend is found for them) and the
    # ones this figure's canvas writes itself
    known = {**FigureCanvasBase.get_supported_filetypes(), **fig.canvas.get_supported_filetypes()}
    if ext and ext not in known:  # (no suffix: matplotlib's default format, PNG)
        allowed = ", ".join("." + t for t in sorted(known))
        raise ValueError(f"path {name!r}: unknown file type .{ext} (allowed: {allowed})")
    # the decoded name: matplotlib reads the format off a str's suffix, not off bytes
    target = name if isinstance(os.fspath(path), bytes) else path
    box: dict[str, Any] = {}
    if whole:  # the figure as laid out, widened (never cropped) to what is drawn beyond it
        from matplotlib.transforms import Bbox

        box["bbox_inches"] = Bbox.union([fig.bbox_inches, fig.get_tightbbox()])
    if not name.lower().endswith(POSTSCRIPT):
        fig.savefig(target, dpi=dpi, **box)
        return
    restore = flatten_alpha(fig)
    try:
        fig.savefig(target, dpi=dpi, **box)
    finally:  # the figure (maybe the caller's, through ax=) as it was
        restore()


def draw_grid(ax: Any) -> None:
    """A light grid on ``ax``, drawn opaque (:func:`grid_color`): no transparency, which
    PostScript (``.eps``, ``.ps``) cannot draw, so no warning when such a file is written."""
    ax.grid(True, color=grid_color(ax), alpha=1.0)  # opaque also where a style sets grid.alpha


def label_log_axis(axis: Any, lo: float, hi: float) -> None:
    """Ticks a log ``axis`` (``ax.xaxis``, ``ax.yaxis``) showing values from ``lo`` to ``hi``
    can be read by: over 3 decades or less, at 1, 2 and 5 times each power of ten (1, 2, 3, 5
    and 7 over 1.5 decades or less), labelled as plain numbers (``0.05``), where matplotlib
    labels only the powers of ten, one or two of them; over more, matplotlib's own."""
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        return
    decades = math.log10(hi / lo)
    if decades > 3:
        return
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    subs = (1.0, 2.0, 5.0) if decades > 1.5 else (1.0, 2.0, 3.0, 5.0, 7.0)
    axis.set_major_locator(LogLocator(base=10.0, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    axis.set_minor_formatter(NullFormatter())
