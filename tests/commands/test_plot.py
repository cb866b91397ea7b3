from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lrkit import schedules as S
from lrkit.cli import main
from lrkit.textplot import text_plot


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures ``lrkit plot`` saves, in order (each is still written to its file)."""
    pytest.importorskip("matplotlib")
    import lrkit._figure

    figures: list[Any] = []
    real = lrkit._figure.save_figure

    def save(fig: Any, *args: Any, **kwargs: Any) -> Any:
        figures.append(fig)
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(lrkit._figure, "save_figure", save)
    return figures


def test_plot_in_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", "cosine(lr=0.1, total_steps=100)", "--steps", "101"]) == 0
    out = capsys.readouterr().out
    assert "cosine(lr=0.1, total_steps=100, eta_min=0.0)" in out
    assert out.count("*") >= 72  # one mark per column at least
    assert "start 0.1" in out and "end 0" in out


def test_plot_to_file(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "s.png"
    assert main(["plot", "onecycle(0.1, 500)", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_png_image_is_960_by_480_pixels(tmp_path: Path) -> None:
    import struct

    pytest.importorskip("matplotlib")
    out = tmp_path / "s.png"
    assert main(["plot", "onecycle(0.1, 500)", "-o", str(out)]) == 0
    header = out.read_bytes()
    assert header[12:16] == b"IHDR" and struct.unpack(">II", header[16:24]) == (960, 480)


def test_plot_sizes_of_the_terminal_beside_an_image_are_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "s.png"
    assert main(["plot", "onecycle(0.1, 500)", "-o", str(out), "--width", "30"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err == (
        "lrkit plot: error: --width sizes the terminal plot, not the -o image (960x480 "
        "pixels): leave it out, or leave out -o to draw in the terminal\n"
    )
    assert not out.exists()
    argv = ["plot", "onecycle(0.1, 500)", "-o", str(out), "--width", "3", "--height", "9"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "lrkit plot: error: --width and --height size the terminal plot, not the -o image "
        "(960x480 pixels): leave them out, or leave out -o to draw in the terminal\n"
    )
    assert main(["plot", "onecycle(0.1, 500)", "--width", "40", "--height", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(ln) for ln in lines[:-1]) <= 40 + 12  # the plot and its axis labels


@pytest.mark.parametrize("spec", ["constant(1e308)", "constant(1e307)", "cosine(1.7e308, 100)"])
def test_values_beyond_an_image_s_axes_are_one_line(tmp_path: Path, capsys, spec) -> None:
    out = tmp_path / "x.png"
    assert main(["plot", spec, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrkit plot: error: the schedule's values reach ")
    assert err.count("\n") == 1 and "beyond what an image's axes can span" in err
    assert not out.exists()
    with pytest.raises(ValueError, match=r"^the schedule's values reach .*text_plot\) draws them$"):
        S.parse(spec).plot(path=tmp_path / "y.png")
    assert not (tmp_path / "y.png").exists()
    assert main(["plot", spec]) == 0  # the terminal plot draws them


def test_a_log_image_of_huge_values_is_drawn_without_numpy_s_warnings(tmp_path) -> None:
    import warnings

    out = tmp_path / "e.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["plot", "exponential(0.1, gamma=2.0)", "--steps", "5000", "--log",
                     "-o", str(out)]) == 0  # fmt: skip
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", "constant(9.9e306)", "--log", "-o", str(out)]) == 0


def test_plot_bad_spec_reports_position(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", "cosine(0.1, 100"]) == 2
    err = capsys.readouterr().err
    assert "position 15" in err


def test_plot_bad_steps(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", "constant(0.1)", "--steps", "0"]) == 2
    assert "steps" in capsys.readouterr().err


def test_text_plot_shape_and_extremes() -> None:
    xs = np.arange(50)
    text = text_plot(xs, S.linear(1.0, end_lr=0.0, total_steps=49).values(xs), width=40, height=10)
    lines = text.splitlines()
    assert len(lines) == 10 + 2
    plot_rows = [ln.split("|", 1)[1] for ln in lines[:10]]
    assert plot_rows[0][0] == "*" and plot_rows[-1][-1] == "*"  # falls from top-left
    with pytest.raises(ValueError, match="width"):
        text_plot(xs, xs, width=3)


def test_schedule_plot_returns_axes() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    ax = S.with_warmup(S.cosine(0.1, total_steps=90), warmup_steps=10).plot()
    line = ax.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), np.arange(101))


def test_default_outputs_never_overwrite(tmp_path: Path) -> None:
    from lrkit._files import fresh_path

    target = tmp_path / "lrkit_find.png"
    assert fresh_path(str(target)) == str(target)
    target.write_bytes(b"user data")
    (tmp_path / "lrkit_find-1.png").write_bytes(b"more user data")
    assert fresh_path(str(target)) == str(tmp_path / "lrkit_find-2.png")
    assert target.read_bytes() == b"user data"


def test_text_plot_middle_label_is_the_value_of_its_row():
    from lrkit.textplot import text_plot

    rows = text_plot([0, 1, 2, 3], [0, 0.5, 0.5, 1], width=10, height=4).splitlines()
    assert rows[0].startswith("    1 |") and rows[3].startswith("    0 |")
    assert rows[2].startswith("0.333 |")  # the third of four rows stands for 1/3
    odd = text_plot([0, 1], [0, 1], width=10, height=5).splitlines()
    assert odd[2].startswith("0.5 |")


def test_text_plot_log_axis_labels_whole_steps_as_integers():
    from lrkit.textplot import text_plot

    last = text_plot([1, 1199], [1, 2], logx=True, width=20, height=3).splitlines()[-1]
    assert last.rstrip().endswith("1199")


def test_a_schedule_of_the_longest_length_is_drawn_up_to_step_2_to_the_53_by_default(tmp_path):
    pytest.importorskip("matplotlib")
    from lrkit import schedules as S
    from lrkit.textplot import MAX_POINTS, MAX_STEP, natural_steps, plot_steps

    for s in (
        S.cosine(0.1, total_steps=2**53),  # 2**53 + 1 steps
        S.join([S.constant(0.1), S.cosine(0.1, total_steps=2**53 - 5)], boundaries=[4]),
        S.join([S.constant(0.1), S.exponential(0.1, gamma=0.99)], boundaries=[2**52]),
    ):
        last = min(natural_steps(s), MAX_STEP) - 1
        xs = plot_steps(s)
        assert xs[0] == 0 and xs[-1] == last and len(xs) == MAX_POINTS
        ax = s.plot(tmp_path / "long.png")
        assert (tmp_path / "long.png").stat().st_size > 0
        assert ax.lines[0].get_xdata()[-1] == last
    with pytest.raises(
        ValueError, match=r"^steps must be at most 2\*\*53 to plot, got 9007199254740993$"
    ):
        plot_steps(S.constant(0.1), steps=2**53 + 1)


def _unwritable(tmp_path: Path, kind: str) -> Path:
    link = tmp_path / f"{kind}.png"
    if kind == "full":
        if not Path("/dev/full").exists():
            pytest.skip("no /dev/full here")
        link.symlink_to("/dev/full")
    else:  # a link into a folder that does not exist
        link.symlink_to(tmp_path / "missing" / "x.png")
    return link


@pytest.mark.parametrize("kind", ["full", "dangling"])
def test_plot_file_that_cannot_be_written_is_one_line_as_in_find(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    pytest.importorskip("matplotlib")
    out = _unwritable(tmp_path, kind)
    assert main(["plot", "onecycle(0.1, 500)", "-o", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"lrkit plot: error: -o/--output {str(out)!r}: could not write the file: "
    )


@pytest.mark.repository("docs")
def test_the_plot_sample_in_the_docs_is_the_commands_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/cli.md shows ``lrkit plot`` output verbatim (trailing blanks aside): rerun it."""
    import re
    import shlex

    page = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    block = re.search(r"```text\n\$ (lrkit plot [^\n]*)\n(.*?)```", page, re.S)
    assert block is not None
    argv = shlex.split(block.group(1))[1:]
    assert main(argv) == 0
    shown = [ln.rstrip() for ln in block.group(2).splitlines()]
    assert [ln.rstrip() for ln in capsys.readouterr().out.splitlines()] == shown


def test_text_plot_log_axis_labels_small_and_huge_values_never_zero():
    out = text_plot([0, 1, 2], [1e-300, 1e300, 1], logy=True, height=5, width=20)
    labels = [line.split("|")[0].strip() for line in out.splitlines()[:5]]
    assert labels == ["1e+300", "", "1", "", "1e-300"]
    top = text_plot([0, 1], [1.0, 1.7976931348623157e308], logy=True, height=3, width=20)
    assert top.splitlines()[0].split("|")[0].strip() == "1.8e+308"


def test_plot_log_of_a_decay_labels_its_smallest_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", "exponential(0.1, gamma=0.9)", "--log"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-4].split("|")[0].strip() == "1.94e-47"


def test_text_plot_says_why_a_log_axis_has_nothing_to_plot(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert text_plot([0, 1], [0.0, 0.0], logy=True) == (
        "(nothing to plot: no positive values for a log axis)"
    )
    assert text_plot([0, 1], [math.inf, math.nan]) == "(nothing to plot: no finite values)"
    assert text_plot([0, 0], [1.0, 2.0], logx=True) == (
        "(nothing to plot: no positive steps for a log x axis)"
    )
    assert main(["plot", "constant(0)", "--log"]) == 0
    assert "(nothing to plot: no positive values for a log axis)" in capsys.readouterr().out


def test_text_plot_of_one_step_labels_that_step_only():
    out = text_plot([5], [0.1], height=3, width=20).splitlines()
    assert out[-1].split() == ["5", "step"]


def test_text_plot_log_axis_spans_every_step_and_says_what_it_cannot_draw() -> None:
    out = text_plot([0, 1, 2, 3], [1.0, 0.5, 0.1, 0.0], logy=True, width=20, height=3)
    lines = out.splitlines()
    assert lines[-2].split() == ["0", "step", "3"]  # the step whose value is 0 is on the axis
    assert lines[-1] == "(1 value <= 0 not drawn on the log axis)"
    # steps 0, 1, 2 at columns round(19 * x / 3) = 0, 6, 13 after the 7-character labels
    assert [ln.index("*") for ln in lines[:3]] == [7, 13, 20]
    two = text_plot([0, 1, 2], [1.0, 0.0, -1.0], logy=True, width=20, height=3)
    assert two.splitlines()[-1] == "(2 values <= 0 not drawn on the log axis)"
    assert text_plot([0, 1], [1.0, 0.5], logy=True).splitlines()[-1].split()[-1] == "1"


def test_plot_log_of_a_schedule_ending_at_zero_spans_its_length(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plot", "cosine(0.1, 100)", "--log"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-3].split()[-1] == "100"
    assert out[-2] == "(1 value <= 0 not drawn on the log axis)"


def test_text_plot_of_a_flat_curve_draws_it_on_the_row_labelled_with_its_value() -> None:
    for height in (3, 8, 16, 17):
        out = text_plot(range(100), [0.1] * 100, height=height).splitlines()
        (row,) = [ln for ln in out if "*" in ln]
        assert row.split("|")[0].strip() == "0.1"


@pytest.mark.parametrize("logy", [False, True])
@pytest.mark.parametrize("value", [1e295, 1.7976931348623157e308, 1e-320])
def test_text_plot_of_a_flat_curve_at_floats_extremes_is_labelled_with_its_value(
    value: float, logy: bool
) -> None:
    out = text_plot(range(10), [value] * 10, logy=logy).splitlines()  # 1e295: was a traceback
    (row,) = [ln for ln in out if "*" in ln]
    assert row.split("|")[0].strip() == f"{value:.3g}"
    labels = [ln.split("|")[0].strip() for ln in out if "|" in ln and ln.split("|")[0].strip()]
    assert len(set(labels)) == 3 and not any("inf" in x or x == "0" for x in labels)


@pytest.mark.parametrize(("value", "logy"), [(-1.7976931348623157e308, False), (5e-324, True)])
def test_text_plot_of_a_flat_curve_at_the_lowest_floats_lies_on_the_bottom_row(
    value: float, logy: bool
) -> None:
    """No room below the lowest float (or the smallest subnormal on a log axis): the curve is
    drawn on the bottom row, labelled with its value, the frame above it."""
    out = text_plot(range(10), [value] * 10, logy=logy, height=5, width=20).splitlines()
    rows = [ln.split("|") for ln in out[:5]]
    assert [i for i, (_, cells) in enumerate(rows) if "*" in cells] == [4]
    assert rows[4][0].strip() == f"{value:.3g}"
    labels = [lab.strip() for lab, _ in rows if lab.strip()]
    assert len(set(labels)) == 3 and not any("inf" in x for x in labels)


def test_a_cut_title_says_so_on_the_terminal_as_in_the_image(capsys) -> None:
    from lrkit.cli import main

    spec = (
        "join(["
        + "cosine(0.1, 100), " * 8
        + "cosine(0.1, 100)], ["
        + ", ".join(str(100 * i) for i in range(1, 9))
        + "])"
    )
    assert main(["plot", spec, "--height", "3", "--width", "60"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[5].endswith(f" ... ({len(str(S.parse(spec)))} characters)") and len(out[5]) <= 60


def test_text_plot_says_how_many_non_finite_values_it_left_out() -> None:
    with np.errstate(over="ignore"):
        ys = 0.1 * np.exp2(np.arange(2000.0))  # inf from step 1024 on
    out = text_plot(range(2000), ys)
    assert out.splitlines()[-1] == "(976 non-finite values (inf or nan) not drawn)"
    # the x axis spans every step asked for, the non-finite ones too (left blank)
    assert out.splitlines()[-2].rstrip().endswith("1999")
    assert "not drawn" not in text_plot(range(10), [1.0] * 10)
    one = text_plot([0, 1, 2], [1.0, math.nan, 2.0], width=10, height=3)
    assert one.splitlines()[-1] == "(1 non-finite value (inf or nan) not drawn)"


def test_text_plot_labels_get_the_digits_that_tell_all_three_apart() -> None:
    """At 3 significant digits the top label of a curve from 1 to 1.006 reads 1.01 and the
    other two 1: more digits until all three differ."""
    out = text_plot([0, 1], [1.0, 1.006], width=10, height=3).splitlines()
    assert [ln.split("|")[0].strip() for ln in out[:3]] == ["1.006", "1.003", "1"]


def test_text_plot_of_one_step_past_floats_integers_draws_it_without_a_warning() -> None:
    """One step so large that step + 1 is the same float (the x axis spans nothing): drawn in
    the first column, no division by a zero span."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = text_plot([1e16], [0.5], width=10, height=3).splitlines()
    assert out[1] == "  0.5 |*         " and out[-1].split() == ["1e+16", "step"]


def test_an_unknown_schedule_name_lists_every_known_one(capsys):
    from lrkit import schedules as S
    from lrkit.cli import main

    assert main(["plot", "foo(0.1)"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "characters)" not in err
    assert f"(known: {', '.join(S.names())})" in err


def test_text_plot_labels_differ_on_a_narrow_range_and_stay_finite_near_float64s_largest():
    from lrkit.textplot import text_plot

    def labels(text: str) -> list[str]:
        return [ln.split("|")[0].strip() for ln in text.splitlines() if "|" in ln]

    narrow = [x for x in labels(text_plot([0, 1], [0.1, 0.09997532801828658], height=5)) if x]
    assert narrow == ["0.1", "0.09999", "0.09998"]
    huge = [x for x in labels(text_plot([0, 100], [1e308, 0.0], height=5)) if x]
    assert huge == ["1e+308", "5e+307", "0"]
    assert [x for x in labels(text_plot([0, 9], [0.3, 0.1], height=5)) if x] == [
        "0.3",
        "0.2",
        "0.1",
    ]


def test_a_curve_spanning_more_than_float64s_range_is_drawn_without_overflow(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """From the largest float to its negative: ``y1 - y0`` is inf; the two levels are still
    drawn on the top and the bottom row, the labels are finite, numpy warns of nothing."""
    import warnings

    spec = "join([constant(1.7e308), sub(constant(0), constant(1.7e308))], [500])"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["plot", spec, "--height", "5", "--width", "30"]) == 0
        along_x = text_plot([-1.7e308, 0.0, 1.7e308], [1.0, 2.0, 3.0], height=3, width=10)
    out = capsys.readouterr().out.splitlines()
    assert out[4:11] == [
        " 1.7e+308 |************************      ",
        "          |                       |      ",
        "        0 |                       |      ",
        "          |                       |      ",
        "-1.7e+308 |                       *******",
        "          +------------------------------",
        "           0           step           626",
    ]
    assert [ln.split("|")[1] for ln in along_x.splitlines()[:3]] == [
        "         *",
        "    *     ",
        "*         ",
    ]


def test_the_summary_line_gives_max_and_min_of_the_finite_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``max()`` of values with a nan is nan: the summary gives the max and min of the
    finite values (those drawn) and says so; ``end`` is the schedule's last value as it is."""
    spec = "sub(exponential(1, gamma=1e10), exponential(1, gamma=1e10))"  # nan from step 31
    assert main(["plot", spec, "--height", "5", "--width", "30"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [
        "(969 non-finite values (inf or nan) not drawn)",
        "lr: start 0, max 0, min 0 (of the 31 finite values), end nan",
    ]
    assert main(["plot", "add([constant(1.7e308), constant(1.7e308)])", "--steps", "3"]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "(nothing to plot: no finite values)",
        "lr: start inf, max -, min - (no finite values), end inf",
    ]
    assert main(["plot", "cosine(0.1, 10)"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "lr: start 0.1, max 0.1, min 0, end 0"


@pytest.mark.parametrize(
    "spec, extra, why",
    [
        (
            "constant(0)",
            ["--log"],
            "no positive values for a log axis; --log draws values > 0 only",
        ),
        ("add([constant(1.7e308), constant(1.7e308)])", [], "no finite values"),
    ],
)
def test_an_image_with_nothing_to_plot_is_refused_as_the_terminal_says_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, extra: list[str], why: str
) -> None:
    """Where the terminal curve says ``(nothing to plot: ...)``, ``-o`` writes no empty image
    (nor matplotlib's warning about it): one line, exit code 2."""
    import warnings

    pytest.importorskip("matplotlib")
    out = tmp_path / "z.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["plot", spec, *extra, "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err == f"lrkit plot: error: nothing to plot: {why} (-o {str(out)!r} not written)\n"
    )
    assert not out.exists()
    assert main(["plot", spec, *extra, "--steps", "3"]) == 0  # the terminal: its note
    assert f"(nothing to plot: {why.split(';')[0]})" in capsys.readouterr().out


def test_a_name_the_console_cannot_encode_is_escaped_not_a_traceback(tmp_path) -> None:
    """An ASCII (or cp1252) standard output and a file name outside it: the work is done,
    the line says where, escaped as standard error escapes, exit code 0."""
    import os
    import subprocess
    import sys

    pytest.importorskip("matplotlib")
    target = tmp_path / "\u00e9.png"
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, "-m", "lrkit", "plot", "cosine(0.1, 100)", "-o", str(target)],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"Traceback" not in done.stderr and b"\\xe9.png" in done.stdout
    assert target.stat().st_size > 0


def test_the_command_line_leaves_the_callers_stdout_error_handler(capsys) -> None:
    import sys

    before = getattr(sys.stdout, "errors", None)
    assert main(["plot", "cosine(0.1, 100)", "--height", "4"]) == 0
    assert getattr(sys.stdout, "errors", None) == before


def test_a_schedule_longer_than_a_plot_says_where_it_ends(capsys) -> None:
    n = 9_000_000_000_000_000
    spec = f"join([cosine(0.1, {n}), cosine(0.1, {n})], [{n}])"
    assert main(["plot", spec, "--height", "4", "--width", "30"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.endswith(f"; the schedule runs to step {2 * n}, a plot to 2**53 - 1")


def test_an_image_on_a_log_axis_leaves_out_the_zeros_and_counts_them(tmp_path, drawn):
    """As the terminal plot: a value of 0 has no place on a log axis (it was drawn as a fall
    to the frame's bottom, like a tiny LR)."""
    spec = "join([warmup(0, 0.1, 100), cosine(0.1, 900)], [100])"
    assert main(["plot", spec, "-o", str(tmp_path / "j.png"), "--log"]) == 0
    (ax,) = drawn[0].axes
    assert ax.get_yscale() == "log"
    y = ax.lines[0].get_ydata()
    assert int(np.isnan(y).sum()) == 2 and np.nanmin(y) > 0
    assert [t.get_text() for t in ax.texts] == ["2 values <= 0 not drawn on the log axis"]
    assert len(ax.lines) == 1  # no point stands alone
    # points between values left out join no line: drawn as dots
    drawn.clear()
    assert main(["plot", "cyclic(0, 0.1, 1)", "--steps", "12", "--log", "-o",
                 str(tmp_path / "c.png")]) == 0  # fmt: skip
    curve, dots = drawn[0].axes[0].lines
    assert dots.get_xdata().tolist() == [1, 3, 5, 7, 9, 11]
    assert dots.get_ydata().tolist() == [0.1] * 6
    # on a linear axis every value is drawn, and nothing is said
    drawn.clear()
    assert main(["plot", spec, "-o", str(tmp_path / "k.png")]) == 0
    assert drawn[0].axes[0].get_yscale() == "linear"
    assert not np.isnan(drawn[0].axes[0].lines[0].get_ydata()).any()
    assert list(drawn[0].axes[0].texts) == []


def test_plot_steps_needs_at_least_two_points_and_keeps_both_ends() -> None:
    from lrkit.textplot import plot_steps

    with pytest.raises(ValueError, match=r"^max_points must be an integer >= 2, got 1$"):
        plot_steps(S.constant(0.1), steps=10, max_points=1)
    assert plot_steps(S.constant(0.1), steps=10, max_points=2).tolist() == [0, 9]
    assert plot_steps(S.constant(0.1), steps=10, max_points=10).tolist() == list(range(10))


def test_the_x_axis_name_keeps_a_space_from_each_label_when_they_fill_the_width() -> None:
    text = text_plot([0, 99999], [1.0, 2.0], width=10, height=4)
    axis = text.splitlines()[-1].split()
    assert axis == ["0", "step", "99999"]


def test_a_spec_of_the_longest_length_accepted_is_drawn_and_one_longer_is_refused(capsys):
    from lrkit.commands.plot import MAX_SPEC

    spec = "constant(0.1)" + " " * (MAX_SPEC - len("constant(0.1)"))
    assert len(spec) == MAX_SPEC
    assert main(["plot", spec, "--steps", "5"]) == 0
    assert "lr: start 0.1, max 0.1, min 0.1, end 0.1" in capsys.readouterr().out
    assert main(["plot", spec + " ", "--steps", "5"]) == 2
    assert capsys.readouterr().err == (
        f"lrkit plot: error: spec is {MAX_SPEC + 1} characters long (at most {MAX_SPEC}): a "
        "spec is a short expression such as 'cosine(0.1, 1000)'\n"
    )


def test_the_terminal_plot_is_72_wide_and_16_high_by_default(capsys):
    spec = "cosine(0.1, 100)"
    assert main(["plot", spec]) == 0
    default = capsys.readouterr().out
    assert main(["plot", spec, "--width", "72", "--height", "16"]) == 0
    assert capsys.readouterr().out == default
    assert main(["plot", spec, "--width", "71", "--height", "16"]) == 0
    assert capsys.readouterr().out != default
    assert main(["plot", spec, "--width", "72", "--height", "15"]) == 0
    assert capsys.readouterr().out != default


def test_a_bad_spec_shows_its_end_without_a_mark_of_more_after_it(capsys):
    assert main(["plot", "cosine(0.1, 1000) ^ 2"]) == 2
    assert capsys.readouterr().err == (
        "lrkit plot: error: invalid schedule spec at position 18: unexpected character '^' "
        "(near: cosine(0.1, 1000) <here> ^ 2)\n"
    )


@pytest.mark.parametrize(("pieces", "cut"), [(6, False), (7, True)])
def test_a_title_of_six_lines_is_shown_whole_and_a_longer_one_is_cut_at_six(
    pieces: int, cut: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(
        S.join(
            [S.constant(0.1 * (i + 1)) for i in range(pieces)],
            boundaries=[10 * (i + 1) for i in range(pieces - 1)],
        )
    )
    assert main(["plot", spec, "--width", "40", "--height", "4", "--steps", "70"]) == 0
    out = capsys.readouterr().out.splitlines()
    title = out[: out.index(next(line for line in out if line.rstrip().endswith("*")))]
    if cut:
        assert len(title) == 6 and title[-1].endswith(f" ... ({len(spec)} characters)")
    else:
        assert len(title) == 6 and title[-1] == "boundaries=[10, 20, 30, 40, 50])"


@pytest.mark.parametrize("period", [200, 333, 1000])
def test_a_long_cyclic_schedule_is_drawn_by_each_runs_extremes_not_an_alias(period) -> None:
    """A cycle shorter than a column, over up to 2**22 steps: the steps drawn are each run's
    lowest and highest, so every plot (and the min/max it reports) spans the band; evenly
    spaced steps would meet the cycle at one phase."""
    from lrkit import schedules as S
    from lrkit.textplot import ENVELOPE_STEPS, MAX_POINTS, plot_steps

    s = S.cyclic(0.001, max_lr=0.1, step_size_up=period // 2)
    n = 3999 * period + 1  # evenly spaced steps would all be multiples of the period
    xs = plot_steps(s, steps=n)
    assert xs[0] == 0 and xs[-1] == n - 1 and len(xs) <= MAX_POINTS
    assert np.all(np.diff(xs) > 0) and xs.dtype == np.int64
    every = s.values(np.arange(n))
    assert s.values(xs).max() == every.max() == 0.1 and s.values(xs).min() == every.min()
    # each run's own extremes: the runs of ceil(n / 1999) steps, every one of them
    width = -(-n // (MAX_POINTS // 2 - 1))
    for k in (0, 700, (n - 1) // width):
        run = every[k * width : (k + 1) * width]
        got = s.values(xs[(xs >= k * width) & (xs < (k + 1) * width)])
        assert got.max() == run.max() and got.min() == run.min()
    assert n <= ENVELOPE_STEPS
    out = plot_cli_text(str(s), n)
    assert "max 0.1, min 0.001" in out


def plot_cli_text(spec: str, steps: int) -> str:
    import contextlib
    import io

    from lrkit.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["plot", spec, "--steps", str(steps)]) == 0
    return buf.getvalue()


def test_past_the_envelope_limit_and_for_a_function_the_steps_are_evenly_spaced() -> None:
    from lrkit import schedules as S
    from lrkit.textplot import ENVELOPE_STEPS, MAX_POINTS, plot_steps

    even = np.unique(np.round(np.linspace(0.0, ENVELOPE_STEPS, MAX_POINTS)).astype(np.int64))
    s = S.cyclic(0.001, max_lr=0.1, step_size_up=100)
    assert plot_steps(s, steps=ENVELOPE_STEPS + 1).tolist() == even.tolist()
    # at the limit itself, each run's extremes: the first run's peak (step 100) is drawn
    at_limit = plot_steps(s, steps=ENVELOPE_STEPS)
    width = -(-ENVELOPE_STEPS // (MAX_POINTS // 2 - 1))
    assert 100 in at_limit.tolist() and s.values(at_limit[at_limit < width]).max() == 0.1
    f = S.Function(lambda t: 1.0, lr=0.1, length=10**6)
    assert len(plot_steps(f, steps=10**6)) == MAX_POINTS


def test_the_terminal_curve_of_a_short_cycle_fills_every_columns_band(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each column holds a run of steps drawn by its lowest and highest value: the two are
    joined in the column, so the band has no empty column."""
    assert main(["plot", "cyclic(0.001, max_lr=0.1, step_size_up=50)", "--steps", "1000000",
                 "--height", "8", "--width", "40"]) == 0  # fmt: skip
    rows = [ln.split("|", 1)[1] for ln in capsys.readouterr().out.splitlines() if "|" in ln]
    rows = rows[:8]
    for c in range(40):
        column = "".join(r[c] for r in rows)
        assert column.strip(" ") == column and set(column) <= {"*", "|"}, (c, column)


def test_an_adapters_check_reads_evenly_spaced_steps_of_a_long_schedule() -> None:
    """The steps an adapter checks a schedule at when it is built are not every step: the
    plot's per-run extremes are for plots only."""
    from lrkit.textplot import MAX_POINTS, check_steps, natural_steps, plot_steps

    s = S.cyclic(0.001, max_lr=0.1, step_size_up=100, step_size_down=100)
    s = S.join([s, S.constant(0.001)], boundaries=[10**6])
    last = natural_steps(s) - 1
    assert last > MAX_POINTS
    even = np.unique(np.round(np.linspace(0.0, last, MAX_POINTS)).astype(np.int64))
    assert check_steps(s).tolist() == even.tolist()
    assert plot_steps(s, extremes=False).tolist() == even.tolist()
    assert plot_steps(s).tolist() != even.tolist()


def test_a_number_of_101_digits_is_refused_and_one_of_100_is_read(capsys) -> None:
    assert main(["plot", "constant(0." + "1" * 101 + ")", "--steps", "3"]) == 2
    assert capsys.readouterr().err == (
        "lrkit plot: error: invalid schedule spec at position 11: a number with 101 digits "
        "(at most 100)\n"
    )
    assert main(["plot", "constant(0." + "1" * 100 + ")", "--steps", "3"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "lr: start 0.1111, max 0.1111, min 0.1111, end 0.1111"
    )


def test_a_bad_spec_shows_the_30_characters_before_the_place_it_fails(capsys) -> None:
    spec = "cosine(lr=0.1, total_steps=1000, final_lr=0.0, warmup=10) ^ 2"
    assert main(["plot", spec]) == 2
    assert capsys.readouterr().err == (
        "lrkit plot: error: invalid schedule spec at position 58: unexpected character '^' "
        "(near: ...000, final_lr=0.0, warmup=10) <here> ^ 2)\n"
    )


def test_a_bad_spec_shows_the_30_characters_after_the_place_it_fails(capsys) -> None:
    spec = "cosine(0.1, 1000) ^ join([constant(0.1), constant(0.2)], [10])"
    assert main(["plot", spec]) == 2
    assert capsys.readouterr().err == (
        "lrkit plot: error: invalid schedule spec at position 18: unexpected character '^' "
        "(near: cosine(0.1, 1000) <here> ^ join([constant(0.1), constan...)\n"
    )


def test_a_schedule_longer_than_a_plot_drawn_over_given_steps_says_nothing_of_its_end(
    capsys,
) -> None:
    """With ``--steps`` the plot draws the steps asked for: no note on where the schedule
    ends beyond what a plot can draw."""
    n = 9_000_000_000_000_000
    spec = f"join([cosine(0.1, {n}), cosine(0.1, {n})], [{n}])"
    assert main(["plot", spec, "--height", "4", "--width", "30", "--steps", "100"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == "lr: start 0.1, max 0.1, min 0.1, end 0.1"


def test_the_summary_line_of_one_finite_value_says_value_not_values(capsys) -> None:
    assert main(["plot", "exponential(1e308, gamma=10)", "--steps", "3", "--height", "3",
                 "--width", "10"]) == 0  # fmt: skip
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "(2 non-finite values (inf or nan) not drawn)",
        "lr: start 1e+308, max 1e+308, min 1e+308 (of the 1 finite value), end inf",
    ]


def test_an_image_on_a_log_axis_with_one_positive_value_draws_it_once(tmp_path, drawn):
    """One value > 0 and one left out: the curve's own marker draws the single point; no
    second dot is drawn over it, and the note says "1 value"."""
    assert main(["plot", "cyclic(0, 0.1, 1)", "--steps", "2", "--log", "-o",
                 str(tmp_path / "one.png")]) == 0  # fmt: skip
    (ax,) = drawn[0].axes
    assert len(ax.lines) == 1
    assert ax.lines[0].get_ydata()[1] == 0.1 and np.isnan(ax.lines[0].get_ydata()[0])
    assert [t.get_text() for t in ax.texts] == ["1 value <= 0 not drawn on the log axis"]


def test_a_title_over_a_narrow_terminal_plot_is_wrapped_at_40_characters(capsys) -> None:
    spec = "join([cosine(0.1, 1000, eta_min=0.001), constant(0.001)], [1000])"
    assert main(["plot", spec, "--width", "20", "--height", "3", "--steps", "5"]) == 0
    assert capsys.readouterr().out.splitlines()[:3] == [
        "join(schedules=[cosine(lr=0.1,",
        "total_steps=1000, eta_min=0.001),",
        "constant(lr=0.001)], boundaries=[1000])",
    ]


def test_an_image_title_of_several_lines_is_set_smaller_than_one_line(tmp_path, drawn):
    long = "join([constant(0.1), constant(0.2), constant(0.3), constant(0.4)], [10, 20, 30])"
    for spec, lines, size in (("cosine(0.1, 100)", 1, 10.0), (long, 2, 9.0)):
        drawn.clear()
        assert main(["plot", spec, "--steps", "60", "-o", str(tmp_path / "t.png")]) == 0
        (ax,) = drawn[0].axes
        assert len(ax.get_title().splitlines()) == lines
        assert ax.title.get_fontsize() == size


def test_an_image_names_its_axes_and_draws_a_grid(tmp_path, drawn) -> None:
    assert main(["plot", "cosine(0.1, 100)", "-o", str(tmp_path / "a.png")]) == 0
    (ax,) = drawn[0].axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", "learning rate")
    grid = ax.xaxis.get_gridlines() + ax.yaxis.get_gridlines()
    assert grid and all(line.get_visible() for line in grid)


def test_an_image_that_fails_mid_write_leaves_the_users_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The disk fills while the image is written: the image that was there stays whole, no
    partial file is left beside it, and one line names -o and the file."""
    import errno

    pytest.importorskip("matplotlib")
    import lrkit._figure

    out = tmp_path / "s.png"
    out.write_bytes(b"yesterday's image")

    def full_disk(fig: Any, path: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(b"half an ima")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(lrkit._figure, "save_figure", full_disk)
    assert main(["plot", "onecycle(0.1, 500)", "-o", str(out)]) == 1
    assert out.read_bytes() == b"yesterday's image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.png"]
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"lrkit plot: error: -o/--output {str(out)!r}: could not write the file: OSError: "
        f"[Errno {errno.ENOSPC}] No space left on device: {str(out)!r}\n"
    )
