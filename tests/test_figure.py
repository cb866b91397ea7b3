"""Every ``.plot()`` follows one rule (``lrkit._figure``): a file name as the first argument or
as ``path=`` writes a PNG drawn without pyplot, ``title=`` heads the plot, and a file name
given twice is a one-line error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

matplotlib = pytest.importorskip("matplotlib")
import matplotlib.pyplot as plt  # noqa: E402

from lrkit import _figure  # noqa: E402
from lrkit import schedules as S  # noqa: E402
from lrkit.compare import Comparison, Result  # noqa: E402
from lrkit.finder import range_test  # noqa: E402


def _finder() -> Any:
    return range_test(lambda lr: 1.0 / (1.0 + lr) + lr * lr, num_iter=30, warn=False)


def _comparison() -> Any:
    r = Result("fixed", optimizer="SGD", lr="0.1", losses=[1.0, 0.5, 0.25], lrs=[0.1, 0.1, 0.1])
    return Comparison([r], lrs=None, name="task", steps=3)


def _tune() -> Any:
    pytest.importorskip("optuna")
    from lrkit.tune import Task, tune

    values = iter([3.0, 1.0, 2.0])
    return tune(Task(train=lambda s, rep: next(values), total_steps=10), n_trials=3,
                seeding="blind", seed=0, pruner="none")  # fmt: skip


def _logger() -> Any:
    torch = pytest.importorskip("torch")
    from lrkit.torch import EffectiveLRLogger

    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    log = EffectiveLRLogger(opt, tensorboard=False)
    for _ in range(3):
        opt.zero_grad()
        model(torch.ones(2, 3)).sum().backward()
        opt.step()
        log.log()
    return log


MAKERS = {
    "schedule": lambda: S.cosine(0.1, total_steps=50),
    "finder": _finder,
    "comparison": _comparison,
    "tune": _tune,
    "effective_lr": _logger,
}


def _title(drawn: Any) -> str:
    fig = getattr(drawn, "figure", drawn)
    texts = [fig._suptitle.get_text()] if getattr(fig, "_suptitle", None) else []
    return " ".join(texts + [ax.get_title() for ax in fig.axes])


@pytest.mark.parametrize("kind", sorted(MAKERS))
@pytest.mark.parametrize("how", ["positional", "keyword", "pathlike"])
def test_a_file_name_writes_a_png_without_pyplot(kind: str, how: str, tmp_path: Path) -> None:
    obj = MAKERS[kind]()
    target = tmp_path / f"{kind}.png"
    before = plt.get_fignums()
    if how == "positional":
        drawn = obj.plot(str(target), title="my title")
    elif how == "keyword":
        drawn = obj.plot(path=str(target), title="my title")
    else:
        drawn = obj.plot(target, title="my title")
    assert target.read_bytes()[:4] == b"\x89PNG"
    assert plt.get_fignums() == before  # nothing left open in pyplot
    assert "my title" in _title(drawn)


@pytest.mark.parametrize("kind", ["schedule", "finder", "effective_lr"])
def test_a_file_name_given_twice_is_a_one_line_error(kind: str, tmp_path: Path) -> None:
    obj = MAKERS[kind]()
    with pytest.raises(ValueError) as e:
        obj.plot(str(tmp_path / "a.png"), path=str(tmp_path / "b.png"))
    assert "\n" not in str(e.value) and "pass the file name once" in str(e.value)
    assert not os.listdir(tmp_path)


def test_without_a_path_the_plot_is_a_pyplot_figure() -> None:
    before = set(plt.get_fignums())
    try:
        ax = S.cosine(0.1, total_steps=50).plot(title="t")
        assert ax.figure.number in set(plt.get_fignums()) - before and ax.get_title() == "t"
    finally:
        plt.close("all")


def test_a_schedules_own_figure_is_headed_by_its_spec_and_the_callers_axes_are_not(
    tmp_path: Path,
) -> None:
    """As ``lrkit plot -o`` heads its image: the spec, wrapped; on the caller's axes the
    title stays the caller's; a ``title=`` given heads it either way."""
    from lrkit._format import title_lines

    s = S.join([S.warmup(0.0, end_lr=0.1, warmup_steps=10), S.cosine(0.1, total_steps=90)],
               boundaries=[10])  # fmt: skip
    ax = s.plot(str(tmp_path / "s.png"))
    assert ax.get_title() == "\n".join(title_lines(str(s), 90)) and "\n" in ax.get_title()
    assert S.cosine(0.1, total_steps=50).plot(str(tmp_path / "c.png")).get_title() == str(
        S.cosine(0.1, total_steps=50)
    )
    fig, mine = plt.subplots()
    try:
        mine.set_title("mine")
        s.plot(ax=mine)
        assert mine.get_title() == "mine"
    finally:
        plt.close(fig)
    assert s.plot(str(tmp_path / "t.png"), title="warmup").get_title() == "warmup"


def test_resolve_and_is_path() -> None:
    assert _figure.is_path("a.png") and _figure.is_path(Path("a.png")) and _figure.is_path(b"a")
    assert not _figure.is_path(None) and not _figure.is_path(3)
    assert _figure.resolve(5, None, first_name="steps") == (5, None)
    assert _figure.resolve("a.png", None, first_name="steps") == (None, "a.png")
    with pytest.raises(ValueError, match=r"^path must be a file name"):
        _figure.resolve(None, 3, first_name="ax")
    _figure.check_path(None)
    _figure.check_path(Path("a.png"))
    with pytest.raises(ValueError, match=r"^path must be a file name .* got 3$"):
        _figure.check_path(3)


def test_the_grid_is_the_light_grey_of_a_grid_at_alpha_0_3_drawn_opaque() -> None:
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    _figure.draw_grid(ax)
    _assert_opaque_light_grid(ax)


def test_the_grids_of_a_comparison_are_opaque() -> None:
    fig = _comparison().plot()
    assert len(fig.axes) == 2
    for ax in fig.axes:
        _assert_opaque_light_grid(ax)
    plt.close(fig)


def _assert_opaque_light_grid(ax: Any) -> None:
    """``ax``'s grid is drawn, opaque (PostScript draws it: no warning when an ``.eps`` is
    written), in matplotlib's grid colour (#b0b0b0) at 0.3 over white."""
    from matplotlib.colors import to_rgba

    line = ax.xaxis.get_gridlines()[0]
    assert line.get_visible() and line.get_alpha() == 1.0
    grey = 0.3 * (0xB0 / 255) + 0.7
    assert to_rgba(line.get_color()) == pytest.approx((grey, grey, grey, 1.0))


@pytest.mark.parametrize("kind", sorted(MAKERS))
@pytest.mark.parametrize("suffix", [".eps", ".ps"])
def test_a_postscript_file_is_written_without_a_transparency_warning(
    kind: str, suffix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """PostScript cannot draw transparency: every lrkit figure is written opaque there
    (legend frames, faded curves, bands), so matplotlib has nothing to warn about (it logs
    the warning through ``logging``)."""
    obj = MAKERS[kind]()
    target = tmp_path / f"{kind}{suffix}"
    with caplog.at_level("WARNING"):
        obj.plot(target)
    assert target.read_bytes()[:2] == b"%!"
    assert not [r for r in caplog.records if "transparency" in r.getMessage()]


def test_flatten_alpha_draws_each_artist_in_the_colour_it_shows() -> None:
    """A line, a band, a scatter and a legend frame at alpha < 1 become their colour mixed
    into the background, opaque; a fully transparent face stays transparent."""
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    ax.set_facecolor((0.0, 0.0, 0.0))  # over black, the mix is the colour times alpha
    (line,) = ax.plot([0, 1], [0, 1], color=(1.0, 0.5, 0.0), alpha=0.5, label="a")
    band = ax.fill_between([0, 1], [0, 0], [1, 1], color=(0.0, 1.0, 0.0), alpha=0.2)
    dots = ax.scatter([0, 1], [1, 0], color=(0.0, 0.0, 1.0), alpha=0.8, facecolor="none")
    legend = ax.legend(framealpha=0.5)
    restore = _figure.flatten_alpha(fig)
    assert line.get_alpha() is None and to_rgba(line.get_color()) == (0.5, 0.25, 0.0, 1.0)
    assert band.get_facecolor().tolist() == [pytest.approx([0.0, 0.2, 0.0, 1.0])]
    assert dots.get_facecolor().size == 0 or dots.get_facecolor()[0][3] == 0
    assert dots.get_edgecolor().tolist() == [pytest.approx([0.0, 0.0, 0.8, 1.0])]
    frame = legend.get_frame()
    assert to_rgba(frame.get_facecolor())[3] == 1.0 and frame.get_alpha() is None
    restore()  # every artist as it was
    assert line.get_alpha() == 0.5 and to_rgba(line.get_color()) == (1.0, 0.5, 0.0, 1.0)
    assert band.get_alpha() == 0.2
    assert band.get_facecolor().tolist() == [pytest.approx([0.0, 1.0, 0.0, 0.2])]
    assert dots.get_edgecolor().tolist() == [pytest.approx([0.0, 0.0, 1.0, 0.8])]
    assert frame.get_alpha() == 0.5 and to_rgba(frame.get_facecolor())[3] == 0.5


def test_writing_postscript_leaves_the_callers_figure_as_it_was(tmp_path: Path) -> None:
    """A plot drawn on the caller's axes (``ax=``) and written to .eps leaves every artist of
    that figure, the caller's own included, with its colours and alpha, so a later .png of it
    is transparent as before."""
    from matplotlib.figure import Figure

    from lrkit import schedules as S

    fig = Figure()
    mine, theirs = fig.subplots(1, 2)
    (line,) = mine.plot([0, 1], [0, 1], color="red", alpha=0.3)
    band = mine.fill_between([0, 1], [0, 0], [1, 1], color="blue", alpha=0.2)
    dots = mine.scatter([0, 1], [1, 0], c=[0.0, 1.0], alpha=0.5)  # colour-mapped
    bars = mine.bar([0, 1, 2], [1, 2, 3], alpha=0.5)  # no edge: drawn "none"
    hist = mine.hist([0.1, 0.2, 0.2, 0.7], alpha=0.4)[2]
    plain = mine.scatter([0, 1], [0, 1], color="green", edgecolors="black", alpha=0.6)

    def state() -> list[object]:
        return [
            line.get_alpha(),
            line.get_color(),
            band.get_alpha(),
            band.get_facecolor().tolist(),
            band.get_edgecolor().tolist(),
            dots.get_alpha(),
            dots.get_array().tolist(),
            [(b.get_alpha(), b.get_facecolor(), b.get_edgecolor()) for b in bars],
            [(h.get_alpha(), h.get_facecolor(), h.get_edgecolor()) for h in hist],
            plain.get_facecolor().tolist(),
            plain.get_edgecolor().tolist(),
        ]

    before = state()
    S.cosine(0.1, total_steps=100).plot(ax=theirs, path=tmp_path / "out.eps")
    assert (tmp_path / "out.eps").read_bytes()[:2] == b"%!"
    assert state() == before


@pytest.mark.parametrize("path", ["", "  ", "out/"])
def test_a_path_naming_no_file_is_a_one_line_error(tmp_path: Path, monkeypatch, path) -> None:
    from lrkit import schedules as S

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"^path must name a file, e.g. 'plot.png', got "):
        S.cosine(0.1, total_steps=10).plot(path)
    assert list(tmp_path.iterdir()) == []  # no ".png" written


def test_a_png_keeps_its_transparency(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    (line,) = fig.add_subplot().plot([0, 1], [0, 1], alpha=0.5)
    _figure.save_figure(fig, tmp_path / "a.png")
    assert line.get_alpha() == 0.5


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_folder_as_the_path_is_a_one_line_error_and_nothing_is_written(
    kind: str, tmp_path: Path
) -> None:
    """matplotlib would write ``<folder>.png`` beside the folder."""
    folder = tmp_path / "plots"
    folder.mkdir()
    with pytest.raises(ValueError) as info:
        MAKERS[kind]().plot(str(folder))
    assert str(info.value).startswith(f"path {str(folder)!r} is a folder: give a file name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots"] and not list(folder.iterdir())
    plt.close("all")


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_an_unknown_file_type_or_a_missing_folder_is_a_one_line_error_naming_path(
    kind: str, tmp_path: Path
) -> None:
    bad_type = str(tmp_path / "lr.xyz")
    with pytest.raises(ValueError) as info:
        MAKERS[kind]().plot(bad_type)
    message = str(info.value)
    assert message.startswith(f"path {bad_type!r}: unknown file type .xyz (allowed: ")
    assert ".png" in message and ".svg" in message and "\n" not in message
    missing = str(tmp_path / "nofolder" / "lr.png")
    with pytest.raises(ValueError) as info:
        MAKERS[kind]().plot(missing)
    folder = str(tmp_path / "nofolder")
    assert str(info.value) == f"path {missing!r}: the folder {folder!r} does not exist"
    assert list(tmp_path.iterdir()) == []
    plt.close("all")


def test_a_type_matplotlib_writes_is_written_from_a_canvas_of_another_type(tmp_path: Path) -> None:
    """A figure on a PDF canvas (as under matplotlib.use("pdf")) still writes an SVG: matplotlib
    finds the backend for the type, so the check reads matplotlib's registry too."""
    from matplotlib.backends.backend_pdf import FigureCanvasPdf
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasPdf(fig)
    assert "svg" not in fig.canvas.get_supported_filetypes()
    S.cosine(0.1, total_steps=100).plot(ax=fig.add_subplot(), path=tmp_path / "lr.svg")
    assert (tmp_path / "lr.svg").read_text().startswith("<?xml")


def test_a_single_finite_point_is_drawn_over_the_whole_range(tmp_path: Path) -> None:
    """A line of one point draws nothing: it gets a marker, and the x axis spans every step
    asked for (a schedule whose values overflow after step 0, a plot of 1 step)."""
    fig = plt.figure()
    ax = fig.add_subplot()
    S.exponential(1e300, gamma=1e10).plot(ax=ax)
    (line,) = ax.get_lines()
    assert line.get_marker() == "o"
    lo, hi = ax.get_xlim()
    assert lo <= 0.0 and hi >= 999.0 and ax.get_autoscalex_on()
    plt.close(fig)
    ax = S.constant(0.1).plot(1)
    assert ax.get_lines()[0].get_marker() == "o"
    plt.close(ax.figure)
    ax = S.cosine(0.1, total_steps=50).plot()  # many points: no marker, as before
    assert ax.get_lines()[0].get_marker() in ("None", None, "")
    plt.close(ax.figure)


def test_the_plots_take_the_axes_by_position_and_by_keyword() -> None:
    torch = pytest.importorskip("torch")
    import lrkit.torch as lt

    fig = plt.figure()
    a, b = fig.subplots(1, 2)
    assert S.cosine(0.1, total_steps=10).plot(a) is a  # as the other plots take it
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=0.1)
    log = lt.EffectiveLRLogger(opt, tensorboard=False)
    p.grad = torch.ones(3)
    opt.step()
    log.log()
    assert log.plot(ax=b) is b
    with pytest.raises(ValueError, match=r"^ax: the axes are given twice"):
        log.plot(a, ax=b)
    plt.close(fig)


def test_a_schedule_plot_keeps_the_label_it_is_given() -> None:
    fig = plt.figure()
    ax = fig.subplots()
    S.cosine(0.1, total_steps=10).plot(ax, label="mine")
    S.constant(0.1).plot(ax=ax)
    assert [line.get_label() for line in ax.get_lines()] == ["mine", "constant(lr=0.1)"]
    plt.close(fig)


def test_a_flat_range_test_is_framed_readably() -> None:
    r = range_test(lambda lr: 2.5, num_iter=30, warn=False)
    ax = r.plot()
    lo, hi = ax.get_ylim()
    assert lo < 2.5 < hi and hi - lo > 0.01  # not a 1e-12 frame with 1e-13 offsets
    plt.close(ax.figure)


def test_curves_drawn_on_one_axes_each_keep_their_range() -> None:
    """The axes grow to hold every curve drawn on them, as ``ax.plot`` makes them: a shorter
    schedule drawn after a longer one, or a user's own line drawn after a schedule, hides
    nothing."""
    fig = plt.figure()
    ax = fig.add_subplot()
    S.cosine(0.1, total_steps=3000).plot(ax=ax)
    S.cosine(0.2, total_steps=500).plot(ax=ax)
    lo, hi = ax.get_xlim()
    assert lo <= 0.0 and hi >= 2999.0
    ax.plot([0, 5000], [0.1, 0.1])
    assert ax.get_xlim()[1] >= 5000.0
    plt.close(fig)


@pytest.mark.parametrize("kind", ["schedule", "finder", "logger"])
def test_a_plot_on_the_caller_s_axes_leaves_their_layout(tmp_path: Path, kind: str) -> None:
    fig, axes = plt.subplots(1, 2)
    try:
        fig.subplots_adjust(left=0.3, right=0.95, wspace=0.5)
        before = [a.get_position().bounds for a in axes]
        path = tmp_path / "x.png"
        if kind == "schedule":
            S.cosine(0.1, total_steps=100).plot(ax=axes[0], path=path)
        elif kind == "finder":
            _finder().plot(axes[0], path=path)
        else:
            _logger().plot(ax=axes[0], path=path)
        assert path.read_bytes()[:4] == b"\x89PNG"
        assert [a.get_position().bounds for a in axes] == before
    finally:
        plt.close(fig)


@pytest.mark.parametrize("suffix, magic", [(".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_a_bytes_path_writes_the_format_its_suffix_names(tmp_path, suffix, magic) -> None:
    path = os.fsencode(tmp_path / f"plot{suffix}")
    S.cosine(0.1, total_steps=50).plot(path)
    with open(path, "rb") as f:
        assert f.read(len(magic)) == magic
    with pytest.raises(
        ValueError, match=r"^path must be a file name \(str, bytes or os.PathLike\)"
    ):
        S.cosine(0.1, total_steps=50).plot(path=3)


def test_a_range_test_on_the_caller_s_axes_is_written_with_its_legend(tmp_path: Path) -> None:
    """On the caller's Axes the legend sits inside them (a neighbouring panel stays clear);
    the figure is written as laid out, never cropped. In a figure of its own, beside them."""
    from PIL import Image

    fig, (ax, right) = plt.subplots(1, 2)
    try:
        path = tmp_path / "ax.png"
        _finder().plot(ax, path=path)
        fig.canvas.draw()
        legend, box = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert box.x0 <= legend.x0 and legend.x1 <= box.x1
        assert legend.x1 < right.get_window_extent().x0
        width, height = (n / 110 for n in Image.open(path).size)  # inches, at its dpi
        w, h = fig.get_size_inches()  # never cropped: the caller's layout whole
        assert width >= w - 0.02 and abs(height - h) < 0.02
    finally:
        plt.close(fig)
    own = _finder().plot()
    try:
        own.figure.canvas.draw()
        legend, box = own.get_legend().get_window_extent(), own.get_window_extent()
        assert legend.x0 > box.x1  # beside the axes
    finally:
        plt.close(own.figure)


def test_pyplot_given_as_the_axes_is_refused_before_anything_is_drawn() -> None:
    """``ax=plt`` (the module, a common slip) is not an Axes: one line that says what to pass,
    and no line left on the current figure."""
    fig = plt.figure()
    try:
        ax = fig.add_subplot()
        for draw in (
            lambda: S.cosine(0.1, total_steps=10).plot(ax=plt),
            lambda: _finder().plot(ax=plt),
        ):
            with pytest.raises(ValueError, match=r"^ax must be a matplotlib Axes or None, got "):
                draw()
        assert not ax.lines
        for draw in (
            lambda: S.cosine(0.1, total_steps=10).plot(ax=plt),
            lambda: S.cosine(0.1, total_steps=10).plot(plt),
        ):
            with pytest.raises(ValueError, match=r"\(pyplot itself: pass plt.gca\(\)\)$"):
                draw()
    finally:
        plt.close(fig)


def test_a_schedule_plot_given_axes_then_a_file_name_draws_there_and_writes_it(
    tmp_path: Path,
) -> None:
    fig = plt.figure()
    try:
        ax = fig.add_subplot()
        with pytest.warns(DeprecationWarning):
            assert S.cosine(0.1, total_steps=10).plot(ax, str(tmp_path / "lr.png")) is ax
        assert len(ax.lines) == 1 and (tmp_path / "lr.png").stat().st_size > 0
    finally:
        plt.close(fig)


def test_the_step_size_legend_sits_beside_the_axes_inside_the_image(tmp_path: Path) -> None:
    """Many parameters (22 here): the legend is drawn beside the axes, in columns of at most
    20, and the saved figure holds all of it."""
    torch = pytest.importorskip("torch")
    from lrkit.torch import EffectiveLRLogger

    torch.manual_seed(0)
    layers: list[Any] = []
    for _ in range(10):
        layers += [torch.nn.Linear(4, 4), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(4, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    log = EffectiveLRLogger(opt, names=model, every=1, tensorboard=False)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()
    ax = log.plot(tmp_path / "eff.png")
    fig = ax.figure
    renderer = fig._get_renderer()
    legend = ax.get_legend()
    box = legend.get_window_extent(renderer)
    assert len(legend.get_texts()) == 22 and legend._ncols == 2
    assert box.x0 >= ax.get_window_extent(renderer).x1  # beside the axes, not over the curves
    assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1
    assert fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1


def test_values_reaching_1e307_are_refused_as_undrawable() -> None:
    _figure.check_drawable([1.0, 9.99e306, float("inf"), float("nan")])
    with pytest.raises(_figure.UndrawableError, match=r"^the values reach -1e\+307, beyond"):
        _figure.check_drawable([1.0, -1e307])
    with pytest.raises(ValueError, match=r"^the losses reach 1e\+307, beyond"):
        _figure.check_drawable([1e307], what="the losses")


def test_a_log_axis_fits_positive_values_only() -> None:
    assert _figure.log_axis_fits([0.5, 2.0, float("nan"), float("inf")])
    assert not _figure.log_axis_fits([0.0, 1.0])
    assert not _figure.log_axis_fits([1.0, -0.5])


def test_flatten_alpha_leaves_a_fully_transparent_artist_invisible() -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    (hidden,) = ax.plot([0, 1], [0, 1], color=(0.2, 0.4, 0.6), alpha=0.0)
    restore = _figure.flatten_alpha(fig)
    assert hidden.get_color() == (0.2, 0.4, 0.6, 0.0)
    restore()
    assert hidden.get_alpha() == 0.0 and hidden.get_color() == (0.2, 0.4, 0.6)
    assert _figure._mixed((0.2, 0.4, 0.6, 0.0), (1.0, 1.0, 1.0)) == (0.2, 0.4, 0.6, 0.0)


def test_an_upper_case_postscript_suffix_is_written_without_a_transparency_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The suffix is read whatever its case: ``plot.EPS`` is PostScript, drawn opaque."""
    target = tmp_path / "finder.EPS"
    with caplog.at_level("WARNING"):
        _finder().plot(target)
    assert target.read_bytes()[:2] == b"%!"
    assert not [r for r in caplog.records if "transparency" in r.getMessage()]


def test_off_frame_leaves_out_values_of_magnitude_1e307_or_more() -> None:
    import numpy as np

    out = _figure.off_frame([1.0, -9.99e306, 1e307, -1e307, float("inf"), 2e307])
    assert out[:2].tolist() == [1.0, -9.99e306]
    assert np.isnan(out[2:]).all()


def test_flatten_alpha_leaves_a_colour_mapped_collection_as_it_is() -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    dots = ax.scatter([0, 1, 2], [0, 1, 2], c=[0.0, 0.5, 1.0], alpha=0.5)
    before = dots.get_facecolor().copy()
    restore = _figure.flatten_alpha(fig)
    assert dots.get_alpha() == 0.5 and dots.get_array() is not None
    assert (dots.get_facecolor() == before).all()
    restore()
    assert dots.get_alpha() == 0.5


def test_a_single_finite_point_keeps_the_marker_the_caller_gives() -> None:
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    line = _figure.draw_curve(ax, [0, 1, 2], [float("nan"), 1.0, float("nan")], marker="x")
    assert line.get_marker() == "x"
    dot = _figure.draw_curve(ax, [0, 1, 2], [float("nan"), 1.0, float("nan")])
    assert dot.get_marker() == "o"


def test_new_axes_refuses_a_title_that_is_not_a_string() -> None:
    with pytest.raises(ValueError, match=r"^title must be a string or None, got 3$"):
        _figure.new_axes(None, "a.png", figsize=(2, 2), title=3)


def test_the_grid_over_a_transparent_background_is_mixed_into_white() -> None:
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    ax.set_facecolor("none")
    line = to_rgba(plt.rcParams["grid.color"])
    expected = tuple(0.3 * c + 0.7 for c in line[:3])
    assert _figure.grid_color(ax) == pytest.approx(expected)


def test_flatten_alpha_draws_a_patch_s_faded_edge_opaque() -> None:
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    fig = Figure()
    ax = fig.add_subplot()
    box = Rectangle((0, 0), 1, 1, facecolor=(0, 0, 1, 0.5), edgecolor=(0, 0, 0, 0.5))
    ax.add_patch(box)
    restore = _figure.flatten_alpha(fig)
    assert tuple(box.get_edgecolor()) == pytest.approx((0.5, 0.5, 0.5, 1.0))
    assert tuple(box.get_facecolor()) == pytest.approx((0.5, 0.5, 1.0, 1.0))
    restore()
    assert tuple(box.get_edgecolor()) == pytest.approx((0.0, 0.0, 0.0, 0.5))


def _visible_labels(axis: Any, lo: float, hi: float) -> list[str]:
    ticks = [v for v in axis.get_major_locator().tick_values(lo, hi) if lo <= v <= hi]
    return [axis.get_major_formatter()(v, 0) for v in ticks]


def test_a_log_axis_over_few_decades_is_labelled_between_its_powers_of_ten() -> None:
    fig, ax = plt.subplots()
    try:
        ax.set_yscale("log")
        _figure.label_log_axis(ax.yaxis, 0.05, 0.05)  # one value: 1, 2, 3, 5, 7 per decade
        assert _visible_labels(ax.yaxis, 0.01, 0.1) == [
            "0.01",
            "0.02",
            "0.03",
            "0.05",
            "0.07",
            "0.1",
        ]
        _figure.label_log_axis(ax.yaxis, 1e-3, 0.04)  # 1.6 decades: 1, 2, 5
        assert _visible_labels(ax.yaxis, 1e-3, 0.04) == ["0.001", "0.002", "0.005", "0.01", "0.02"]
        ax.set_xscale("log")
        before = type(ax.xaxis.get_major_formatter())
        _figure.label_log_axis(ax.xaxis, 1e-7, 10.0)  # 8 decades: matplotlib's own
        assert type(ax.xaxis.get_major_formatter()) is before
    finally:
        plt.close(fig)
    narrow = range_test(lambda lr: 1.0 / (1.0 + lr), start_lr=1e-3, end_lr=0.04, num_iter=30,
                        max_extra_iter=0, warn=False)  # fmt: skip
    ax = narrow.plot()
    try:  # the range test's LR axis over its 1.6 decades reads 0.002, 0.005, ...
        lo, hi = ax.get_xlim()
        assert "0.005" in _visible_labels(ax.xaxis, lo, hi)
    finally:
        plt.close(ax.figure)


def test_rules_that_suggest_the_same_lr_share_one_line_named_by_both(monkeypatch) -> None:
    result = _finder()
    same = {"budget_edge": result.suggestion, "steepest": 0.02, "valley": 0.02, "minimum": 0.005}
    monkeypatch.setattr(type(result), "suggestions", lambda self: list(same.items()))
    ax = result.plot()
    try:
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "steepest, valley: 2.00e-02" in legend
        assert not any(t.startswith(("steepest:", "valley:")) for t in legend)
        at = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert sorted(at) == [0.005, 0.02]  # one dashed line each
    finally:
        plt.close(ax.figure)


def test_a_family_keeps_its_colour_in_the_tuning_plot_whatever_families_were_searched() -> None:
    pytest.importorskip("optuna")
    from lrkit.tune import Task, tune

    def colour(families: list[str]) -> Any:
        values = iter(range(1, 100))
        r = tune(Task(train=lambda s, rep: float(next(values)), total_steps=50), n_trials=8,
                 families=families, seeding="blind", seed=0, pruner="none")  # fmt: skip
        fig = r.plot(None)
        try:
            for c in fig.axes[0].collections:
                if c.get_label() == "wsd":
                    return tuple(c.get_facecolors()[0])
        finally:
            plt.close(fig)
        raise AssertionError("no wsd trial drawn")

    assert colour(["wsd"]) == colour(["constant", "cosine", "wsd"])


def test_a_curve_reaching_1e307_is_refused_before_anything_is_drawn() -> None:
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    with pytest.raises(_figure.UndrawableError, match=r"^the values reach 1e\+307, beyond"):
        _figure.draw_curve(ax, [0, 1, 2], [1.0, 2.0, 1e307])
    assert not ax.lines


def test_an_object_with_axes_methods_but_no_figure_is_not_taken_as_axes() -> None:
    import types

    lookalike = types.SimpleNamespace(plot=lambda *a: None, get_xlim=lambda: (0, 1), figure=None)
    assert not _figure.is_axes(lookalike)
    with pytest.raises(ValueError, match=r"^ax must be a matplotlib Axes or None, got "):
        _figure.new_axes(lookalike, None, figsize=(2, 2))
    ax = plt.figure().add_subplot()
    try:
        assert _figure.is_axes(ax) and _figure.new_axes(ax, None, figsize=(2, 2)) == (ax.figure, ax)
    finally:
        plt.close(ax.figure)


def test_flatten_alpha_puts_back_an_unfilled_faded_patch_unfilled() -> None:
    """A patch with no face (``facecolor="none"``) at alpha < 1 has no face again afterwards:
    its transparent face is not set back at the patch's alpha (a black fill would show)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    fig = Figure()
    ax = fig.add_subplot()
    box = Rectangle((0, 0), 1, 1, facecolor="none", edgecolor="red", alpha=0.5)
    ax.add_patch(box)
    restore = _figure.flatten_alpha(fig)
    assert tuple(box.get_edgecolor()) == pytest.approx((1.0, 0.5, 0.5, 1.0))
    restore()
    assert box.get_alpha() == 0.5
    assert tuple(box.get_facecolor()) == (0.0, 0.0, 0.0, 0.0)
    assert tuple(box.get_edgecolor()) == (1.0, 0.0, 0.0, 0.5)


def test_the_grid_is_opaque_also_where_a_style_fades_grid_lines() -> None:
    from matplotlib.figure import Figure

    with plt.rc_context({"grid.alpha": 0.4}):
        ax = Figure().add_subplot()
        _figure.draw_grid(ax)
    _assert_opaque_light_grid(ax)


def test_a_log_axis_over_no_finite_range_keeps_matplotlib_s_labels() -> None:
    fig, ax = plt.subplots()
    try:
        ax.set_yscale("log")
        locator, formatter = ax.yaxis.get_major_locator(), ax.yaxis.get_major_formatter()
        for lo, hi in ((float("inf"), float("inf")), (float("nan"), 1.0), (0.0, 1.0)):
            _figure.label_log_axis(ax.yaxis, lo, hi)
        assert ax.yaxis.get_major_locator() is locator
        assert ax.yaxis.get_major_formatter() is formatter
    finally:
        plt.close(fig)


def test_a_curve_widens_the_x_range_only_and_leaves_the_y_range_to_its_values() -> None:
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    _figure.draw_curve(ax, [0, 1, 2, 3], [5.0, 6.0, float("nan"), 5.5])
    lo, hi = ax.get_xlim()
    assert lo <= 0.0 and hi >= 3.0
    lo, hi = ax.get_ylim()
    assert 4.5 < lo < 5.0 and 6.0 < hi < 6.5  # 0 is not taken into the y range


def test_the_grid_over_a_coloured_background_is_mixed_into_that_colour() -> None:
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    ax.set_facecolor((0.0, 0.0, 0.5))
    line = to_rgba(plt.rcParams["grid.color"])
    expected = tuple(0.3 * c + 0.7 * b for c, b in zip(line[:3], (0.0, 0.0, 0.5)))
    assert _figure.grid_color(ax) == pytest.approx(expected)
    _figure.draw_grid(ax)
    gridline = ax.xaxis.get_gridlines()[0]
    assert to_rgba(gridline.get_color()) == pytest.approx((*expected, 1.0))


def test_a_log_axis_over_more_than_3_decades_keeps_matplotlib_s_labels() -> None:
    fig, ax = plt.subplots()
    try:
        ax.set_yscale("log")
        locator, formatter = ax.yaxis.get_major_locator(), ax.yaxis.get_major_formatter()
        _figure.label_log_axis(ax.yaxis, 1e-4, 0.3)  # 3.5 decades
        assert ax.yaxis.get_major_locator() is locator
        assert ax.yaxis.get_major_formatter() is formatter
        _figure.label_log_axis(ax.yaxis, 1e-4, 0.1)  # 3 decades: 1, 2 and 5 each
        assert _visible_labels(ax.yaxis, 1e-4, 1e-3) == ["0.0001", "0.0002", "0.0005", "0.001"]
    finally:
        plt.close(fig)


def test_a_log_axis_labelled_between_its_powers_of_ten_shows_no_minor_labels() -> None:
    """The plain labels at 1, 2, 3, 5 and 7 are the only ones: matplotlib's own labels of
    the ticks between (4, 6 times a power of ten) are not drawn over a narrow range."""
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    ax.set_yscale("log")
    ax.plot([0, 1], [0.02, 0.08])
    ax.set_ylim(0.02, 0.08)
    _figure.label_log_axis(ax.yaxis, 0.02, 0.08)
    fig.canvas.draw()
    assert [t.get_text() for t in ax.yaxis.get_minorticklabels() if t.get_text()] == []
    major = [t.get_text() for t in ax.yaxis.get_majorticklabels() if t.get_text()]
    assert {"0.02", "0.03", "0.05", "0.07"} <= set(major)


def test_a_module_with_axes_methods_is_not_taken_as_axes() -> None:
    """A module (``ax=plt`` and its like) is never drawn on, whatever functions it holds."""
    import types

    module = types.ModuleType("plotting")
    module.plot = lambda *a: None  # type: ignore[attr-defined]
    module.get_xlim = lambda: (0, 1)  # type: ignore[attr-defined]
    module.figure = object()  # type: ignore[attr-defined]
    assert not _figure.is_axes(module)
    with pytest.raises(ValueError, match=r"^ax must be a matplotlib Axes or None, got "):
        _figure.new_axes(module, None, figsize=(2, 2))
