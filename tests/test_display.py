"""Rich notebook display (``_repr_mimebundle_``) of schedules, range tests, tune and compare
results."""

from __future__ import annotations

import base64
import contextlib
import html as htmllib
import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from lrkit import schedules as S
from lrkit.finder import range_test

pytest.importorskip("matplotlib")
PNG = b"\x89PNG\r\n\x1a\n"


def _check(bundle: dict[str, Any]) -> str:
    assert set(bundle) == {"text/plain", "text/html", "image/png"}
    assert "\n" not in bundle["text/plain"]
    png = bundle["image/png"]
    assert png.startswith(PNG)
    html = bundle["text/html"]
    inline = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert inline is not None and base64.b64decode(inline.group(1)) == png
    return str(html)


@pytest.fixture(autouse=True)
def _no_pyplot_figures() -> Any:
    """Displaying draws on a bare Figure: pyplot's figure list is left as it was."""
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


def test_schedule_display() -> None:
    s = S.join(
        [S.warmup(0.0, end_lr=0.1, warmup_steps=10), S.cosine(0.1, total_steps=90)], boundaries=[10]
    )
    html = _check(s._repr_mimebundle_())
    assert htmllib.escape(str(s)) in html
    cell = "</th><td style='text-align:left'>"
    assert f"lr at step 0{cell}0<" in html and f"lr at step 50{cell}{s(50):.4g}<" in html
    assert f"length{cell}100<" in html


def test_long_schedule_display_is_bounded() -> None:
    """A schedule of 10**15 steps displays from at most textplot.MAX_POINTS evaluations."""
    from lrkit.textplot import MAX_POINTS

    calls: list[int] = []

    class Counted(S.Cosine):  # counts the steps the display evaluates
        def _values(self, t: Any, xp: Any) -> Any:
            calls.append(int(np.size(t)))
            return super()._values(t, xp)

    s = Counted(0.1, total_steps=10**15)
    html = _check(s._repr_mimebundle_())
    cell = "</th><td style='text-align:left'>"
    assert f"lr at step {10**15 // 2}{cell}{s(10**15 // 2):.4g}<" in html
    assert f"min / max ({MAX_POINTS} steps sampled){cell}0 / 0.1<" in html
    assert max(calls) <= MAX_POINTS


def _curve() -> Any:
    def step(lr: float) -> float:  # a smooth valley with a blow-up past lr = 1
        return 2.0 - math.tanh(3 * (math.log10(lr) + 4)) + (lr * 3) ** 2

    return range_test(step, num_iter=60, warn=False)


def test_finder_result_display() -> None:
    r = _curve()
    html = _check(r._repr_mimebundle_())
    assert f"{r.suggestion:.4g}" in html and f"{r.max_lr:.4g}" in html
    assert f"{r.stop_reason} after {r.steps} steps" in html
    assert (
        r._repr_mimebundle_()["text/plain"]
        == repr(r)
        == str(r)
        == (
            f"FinderResult(suggestion={r.suggestion:.4g}, max_lr={r.max_lr:.4g}, "
            f"base_lr={r.base_lr:.4g}, stop_reason={r.stop_reason!r}, steps={r.steps})"
        )
    )  # one line, not the curves: print(result) in a script shows this


def test_ipython_shows_html_png_and_plain_text() -> None:
    formatters = pytest.importorskip("IPython.core.formatters")
    data, _ = formatters.DisplayFormatter().format(_curve())
    assert {"text/plain", "text/html", "image/png"} <= set(data)


def test_empty_finder_result_has_no_plot() -> None:
    r = range_test(lambda lr: math.nan, num_iter=10, warn=False)
    bundle = r._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    assert "no step completed" in bundle["text/html"]
    assert (
        bundle["text/plain"]
        == repr(r)
        == ("FinderResult(suggestion=None, max_lr=None, base_lr=None, stop_reason='nan', steps=1)")
    )


def test_tune_result_display() -> None:
    pytest.importorskip("optuna")
    from lrkit.tune import Task, tune

    def train(schedule: Any, report: Any) -> float:
        lr = max(schedule(t) for t in range(0, 100, 5))
        return float((math.log10(lr) + 2.0) ** 2)

    r = tune(Task(train=train, total_steps=100), n_trials=4, seeding="blind", seed=0)
    html = _check(r._repr_mimebundle_())
    assert f"{r.best_value:.4g}" in html
    assert htmllib.escape(r.best_spec) in html
    assert html.count("<tr>") >= 1 + 4  # header + one row per complete trial


def _run(method: str, peak: float, val: float) -> Any:
    from lrkit.compare import Result

    r = Result(method=method, optimizer="SGD", lr=f"onecycle({peak}, 50)")
    r.losses = list(np.linspace(2.0, val, 50))
    r.lrs = [S.onecycle(peak, total_steps=50)(t) for t in range(50)]
    r.final_loss, r.val_loss, r.val_acc = val, val + 0.1, 0.9
    return r


def test_compare_result_display() -> None:
    run = _run("onecycle", 0.1, 0.5)
    html = _check(run._repr_mimebundle_())
    assert "onecycle(0.1, 50)" in html and "0.6" in html
    assert (
        run._repr_mimebundle_()["text/plain"]
        == repr(run)
        == ("Result(method='onecycle', lr='onecycle(0.1, 50)', val_loss=0.6)")
    )


def test_comparison_display() -> None:
    from lrkit.compare import Comparison, LRs

    comparison = Comparison(
        [_run("constant", 0.05, 0.7), _run("onecycle", 0.1, 0.4)],
        lrs=LRs(0.05, base_max=0.1, base_min=0.01, adam=1e-3),
        name="digits",
    )
    bundle = comparison._repr_mimebundle_()
    html = _check(bundle)
    assert "<td style='text-align:left'>* onecycle</td>" in html  # the best run is marked
    assert "<td style='text-align:left'>constant</td>" in html
    assert (
        bundle["text/plain"]
        == repr(comparison)
        == ("Comparison('digits', best='onecycle', runs=2)")
    )


def test_a_comparison_display_marks_the_rows_its_table_marks_and_says_it_was_interrupted():
    """A tie for best: both rows marked, as table() marks them; the time column and the key
    are there; an interrupted comparison says so and names what did not run."""
    from lrkit.compare import Comparison, LRs

    runs = [_run("fixed", 0.05, 0.5), _run("plateau", 0.05, 0.5)]
    runs[0].seconds = 0.0119
    comparison = Comparison(runs, lrs=LRs(0.05, base_max=0.1, base_min=0.01, adam=1e-3),
                            name="tie", interrupted=True, not_run=["cosine", "adam"])  # fmt: skip
    html = _check(comparison._repr_mimebundle_())
    text_marked = [ln[1] == "*" for ln in comparison.table().splitlines()[2:]]
    assert text_marked == comparison.best_marks() == [True, True]
    for method in ("fixed", "plateau"):
        assert f"<td style='text-align:left'>* {method}</td>" in html
    assert "<th style='text-align:left'>time</th>" in html and "11.9 ms" in html
    assert (
        "* best val loss; interrupted after 2 of 4 methods; not run: cosine (stopped while "
        "training), adam" in html
    )
    assert (
        comparison._repr_mimebundle_()["text/plain"]
        == repr(comparison)
        == ("Comparison('tie', best='fixed', runs=2, interrupted, not run: cosine, adam)")
    )


def test_display_module_is_core() -> None:
    import subprocess
    import sys

    code = (
        "import sys, lrkit._display; "
        "print(sorted({'matplotlib', 'torch', 'optuna'} & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_length_beyond_2_53_says_what_the_display_covers() -> None:
    # steps from 2**53 on cannot be plotted: the summary says its min / max stop there
    s = S.join([S.constant(0.1), S.cosine(0.2, total_steps=2**53)], boundaries=[2**53])
    assert s.length == 2**54
    html = _check(s._repr_mimebundle_())
    cell = "</th><td style='text-align:left'>"
    assert f"shown{cell}steps 0 to 2**53 - 1 of 0 to {2**54} (a plot stops at 2**53)<" in html
    assert "min / max (4000 steps sampled, of steps 0 to 2**53 - 1 only)" in html


def test_compare_displays_draw_a_negative_loss_on_a_linear_axis(tmp_path: Any) -> None:
    # a negative log-likelihood goes below 0: no log axis (an empty plot and a warning)
    pytest.importorskip("matplotlib")
    import warnings

    from lrkit import compare as C

    r = _run("onecycle", 0.1, -1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check(r._repr_mimebundle_())
        fig = C.plot([r, _run("cosine", 0.1, 0.5)], path=str(tmp_path / "a.png"))
    assert fig.axes[0].get_yscale() == "linear"
    fig = C.plot([_run("cosine", 0.1, 0.5)], path=str(tmp_path / "b.png"))
    assert fig.axes[0].get_yscale() == "log"


@pytest.mark.parametrize("spec", ["exponential(0.1, gamma=3.0)", "constant(1e308)"])
def test_a_schedule_no_image_can_span_displays_its_table(spec: str) -> None:
    s = S.parse(spec)
    bundle = s._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}  # no image, no traceback
    assert htmllib.escape(str(s)) in bundle["text/html"] and "<table>" in bundle["text/html"]


def test_a_range_test_s_divergence_beyond_an_image_s_axes_is_left_out_of_its_frame(
    tmp_path: Any,
) -> None:
    """A loss no axes can span after the curve (a divergence) is out of the plot's frame
    anyway: left out, the plot is drawn; a curve whose frame itself cannot be drawn is
    refused in one line, and its display is its table."""
    from lrkit.finder import range_test

    losses = iter([1.0] * 29 + [1.7e308])
    r = range_test(lambda lr: next(losses), num_iter=40, warn=False, max_extra_iter=0)
    r.plot(path=tmp_path / "d.png")
    assert (tmp_path / "d.png").read_bytes().startswith(PNG)
    _check(r._repr_mimebundle_())
    huge = range_test(lambda lr: 1.5e308, num_iter=20, warn=False, max_extra_iter=0)
    with pytest.raises(
        ValueError, match=r"^the losses \(the plot's frame\) reach 1\.5.*e\+308, beyond what"
    ):
        huge.plot(path=tmp_path / "never.png")
    assert not (tmp_path / "never.png").exists()
    assert set(huge._repr_mimebundle_()) == {"text/plain", "text/html"}


def test_a_display_shows_a_plot_s_own_error() -> None:
    """Only values no image can span leave the image out: any other error of a plot is
    raised, not hidden."""
    from unittest import mock

    s = S.cosine(0.1, total_steps=10)
    with mock.patch.object(type(s), "plot", side_effect=ValueError("a bug")):
        with pytest.raises(ValueError, match="^a bug$"):
            s._repr_mimebundle_()


def test_the_comparison_tables_show_the_numbers_alike() -> None:
    from lrkit.compare import Comparison, table

    good, bad = _run("constant", 0.05, 0.7), _run("onecycle", 0.1, 0.4)
    good.val_acc = 0.7
    bad.final_loss, bad.val_loss, bad.val_acc = math.inf, math.nan, math.nan
    text = table([good, bad])
    html = Comparison([good, bad], lrs=None, name="t")._repr_mimebundle_()["text/html"]
    cells = re.findall(r"<td style='text-align:left'>([^<]*)</td>", html)
    for shown in ("70.00%", "diverged"):
        assert shown in text and shown in cells
    assert "inf" not in cells and "nan" not in cells and cells.count("-") == 2
    one = bad._repr_mimebundle_()["text/html"]
    assert "diverged" in one and ">nan<" not in one


def test_a_tune_result_prints_as_its_one_line_summary() -> None:
    """print(result) in a script shows what a notebook's text/plain does, not the study
    object and every field."""
    pytest.importorskip("optuna")
    from lrkit.tune import Task, tune

    values = iter([3.0, 1.0, 2.0])
    r = tune(Task(train=lambda s, rep: next(values), total_steps=10), n_trials=3,
             seeding="blind", seed=0, pruner="none")  # fmt: skip
    text = r._repr_mimebundle_()["text/plain"]
    assert repr(r) == str(r) == text
    assert text == (
        f"TuneResult(trials={{'COMPLETE': 3}}, best_value=1, best_spec={r.best_spec!r})"
    )
    assert "optuna" not in text and "\n" not in text


def test_a_schedule_display_lists_the_lr_at_its_last_step() -> None:
    s = S.cosine(0.1, total_steps=99)
    html = _check(s._repr_mimebundle_())
    heads = re.findall(r"<th style='text-align:left'>([^<]*)</th>", html)
    steps = [h for h in heads if h.startswith("lr at step ")]
    assert steps == [f"lr at step {p}" for p in (0, 25, 50, 75, 99)]
    assert f"lr at step 99</th><td style='text-align:left'>{float(s(99)):.4g}<" in html


def test_a_range_test_display_lists_the_other_rules_but_not_its_own() -> None:
    r = range_test(lambda lr: 1.0 / (1.0 + lr) + lr * lr, num_iter=30, warn=False)
    html = _check(r._repr_mimebundle_())
    heads = re.findall(r"<th style='text-align:left'>([^<]*)</th>", html)
    rules = [h for h in heads if h.startswith("rule ")]
    assert rules == [f"rule {m}" for m in r.suggestions() if m != r.method]
    assert f"rule {r.method}" not in heads and len(rules) == len(r.suggestions()) - 1


def test_the_text_plot_sizes_and_inputs_it_refuses_in_one_line() -> None:
    from lrkit.textplot import text_plot

    xs, ys = [0, 1, 2], [1.0, 2.0, 3.0]
    assert len(text_plot(xs, ys, width=1000, height=3).splitlines()[0]) > 1000
    assert len(text_plot(xs, ys, width=10, height=500).splitlines()) == 502
    for kw, msg in (
        ({"width": 1001}, r"^width must be an integer in \[10, 1000\], got 1001$"),
        ({"width": 9}, r"^width must be an integer in \[10, 1000\], got 9$"),
        ({"height": 2}, r"^height must be an integer in \[3, 500\], got 2$"),
        ({"height": 501}, r"^height must be an integer in \[3, 500\], got 501$"),
    ):
        with pytest.raises(ValueError, match=msg):
            text_plot(xs, ys, **kw)
    msg = r"^xs and ys must be 1-d sequences of the same, non-zero length$"
    for a, b in (([], []), ([0, 1], [1.0]), ([[0, 1]], [[1.0, 2.0]])):
        with pytest.raises(ValueError, match=msg):
            text_plot(a, b)


def test_the_text_plot_joins_a_jump_of_two_rows_in_adjacent_columns() -> None:
    from lrkit.textplot import text_plot

    out = text_plot(list(range(10)), [0.0] * 5 + [2.0] * 5, width=10, height=3)
    rows = out.splitlines()
    assert rows[0].endswith("|     *****")
    assert rows[1].endswith("|     |    ")
    assert rows[2].endswith("|*****     ")


def test_the_text_plot_labels_steps_below_a_million_as_integers() -> None:
    from lrkit.textplot import text_plot

    out = text_plot([0, 500000], [1.0, 2.0], width=30, height=5)
    axis = out.splitlines()[-1]
    assert axis.split() == ["0", "step", "500000"]
    big = text_plot([0, 1000000], [1.0, 2.0], width=30, height=5)
    assert big.splitlines()[-1].split() == ["0", "step", "1e+06"]


def test_a_log_x_text_plot_spans_the_positive_steps_only() -> None:
    from lrkit.textplot import text_plot

    out = text_plot([0, 1, 10, 100], [1.0, 2.0, 3.0, 4.0], width=20, height=4, logx=True)
    assert out.splitlines() == [
        "   4 |                   *",
        "     |          *         ",
        "2.67 |                    ",
        "   2 |*                   ",
        "     +--------------------",
        "      1   step (log)   100",
    ]


def test_a_flat_text_plot_is_framed_five_percent_around_its_value() -> None:
    from lrkit.textplot import text_plot

    out = text_plot([0, 1, 2], [2.0, 2.0, 2.0], width=10, height=5)
    assert out.splitlines() == [
        "2.1 |          ",
        "    |          ",
        "  2 |*   *    *",
        "    |          ",
        "1.9 |          ",
        "    +----------",
        "     0  step  2",
    ]
    zero = text_plot([0, 1, 2], [0.0, 0.0, 0.0], width=10, height=5).splitlines()
    assert [line.split("|")[0].strip() for line in zero[:5]] == ["1", "", "0", "", "-1"]


def test_an_empty_range_test_shows_a_dash_for_each_missing_suggestion() -> None:
    r = range_test(lambda lr: math.nan, num_iter=10, warn=False)
    html = r._repr_mimebundle_()["text/html"]
    cell = "</th><td style='text-align:left'>"
    for key in ("suggestion", "max_lr (one-cycle)", "base_lr"):
        assert f"{key}{cell}-<" in html
    assert "None" not in html


def test_a_table_escapes_its_keys_and_values() -> None:
    from lrkit._display import table

    assert table([("a<b", "x&y"), ("n", 0.123456), ("none", None)]) == (
        "<table><tr><th style='text-align:left'>a&lt;b</th>"
        "<td style='text-align:left'>x&amp;y</td></tr>"
        "<tr><th style='text-align:left'>n</th><td style='text-align:left'>0.1235</td></tr>"
        "<tr><th style='text-align:left'>none</th><td style='text-align:left'>-</td></tr>"
        "</table>"
    )


def test_a_tune_display_lists_the_five_best_trials() -> None:
    pytest.importorskip("optuna")
    from lrkit.tune import Task, tune

    values = iter([6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 7.0])
    r = tune(Task(train=lambda s, rep: next(values), total_steps=10), n_trials=7,
             seeding="blind", seed=0, pruner="none")  # fmt: skip
    html = _check(r._repr_mimebundle_())
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    ranks = re.findall(r"<tr><td style='text-align:left'>(\d+)</td>", body)
    values_shown = re.findall(r"<tr>(?:<td style='text-align:left'>[^<]*</td>){2}"
                              r"<td style='text-align:left'>([^<]*)</td>", body)  # fmt: skip
    assert ranks == ["1", "2", "3", "4", "5"]
    assert values_shown == ["1", "2", "3", "4", "5"]


def test_a_connector_through_a_drawn_point_leaves_the_point_shown() -> None:
    from lrkit.textplot import text_plot

    out = text_plot([0, 0, 0, 1], [1.0, 0.0, 2.0, 0.0], width=10, height=3)
    assert [line.split("|", 1)[1][0] for line in out.splitlines()[:3]] == ["*", "*", "*"]


def test_the_text_plot_joins_no_points_across_a_skipped_column() -> None:
    from lrkit.textplot import text_plot

    out = text_plot([0, 2, 9], [0.0, 2.0, 2.0], width=10, height=3)
    assert out.splitlines()[:3] == [
        "2 |  *      *",
        "1 |          ",
        "0 |*         ",
    ]


def test_a_flat_log_text_plot_is_framed_half_a_decade_around_its_value() -> None:
    from lrkit.textplot import text_plot

    out = text_plot([0, 1], [1.0, 1.0], width=10, height=5, logy=True).splitlines()
    assert [line.split("|")[0].strip() for line in out[:5]] == ["3.16", "", "1", "", "0.316"]


@contextlib.contextmanager
def _kept_figures() -> Iterator[list[Any]]:
    """The figures the displays made inside the block (each still drawn to its PNG)."""
    from unittest import mock

    from lrkit import _display

    figures: list[Any] = []
    real = _display._figure_png

    def keep(fig: Any) -> bytes:
        figures.append(fig)
        return real(fig)

    with mock.patch.object(_display, "_figure_png", side_effect=keep):
        yield figures


def test_a_compare_result_display_draws_a_negative_loss_on_a_linear_axis() -> None:
    with _kept_figures() as figures:
        _check(_run("onecycle", 0.1, -1.5)._repr_mimebundle_())
        _check(_run("cosine", 0.1, 0.5)._repr_mimebundle_())
    assert [f.axes[0].get_yscale() for f in figures] == ["linear", "log"]


def test_a_plot_that_writes_no_file_displays_the_table_alone() -> None:
    from unittest import mock

    r = range_test(lambda lr: 1.0 / (1.0 + lr) + lr * lr, num_iter=30, warn=False)
    with mock.patch.object(type(r), "plot", return_value=None):
        bundle = r._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"} and "<img" not in bundle["text/html"]


def test_a_comparison_display_escapes_its_name_in_the_title() -> None:
    from lrkit.compare import Comparison

    c = Comparison([_run("cosine", 0.1, 0.5)], lrs=None, name="a<b & c")
    html = _check(c._repr_mimebundle_())
    assert html.startswith("<div><b>lrkit compare: a&lt;b &amp; c</b>")


def _png_size(png: bytes) -> tuple[int, int]:
    """The width and height a PNG's header gives, in pixels."""
    assert png.startswith(PNG) and png[12:16] == b"IHDR"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_a_schedule_display_draws_its_natural_length_in_a_480_by_240_image() -> None:
    """6 x 3 inches at 80 dpi; the curve spans the schedule's steps 0 to its length."""
    s = S.cosine(0.1, total_steps=100)
    with _kept_figures() as figures:
        bundle = s._repr_mimebundle_()
    _check(bundle)
    assert _png_size(bundle["image/png"]) == (480, 240)
    xs = figures[0].axes[0].lines[0].get_xdata()
    assert (min(xs), max(xs)) == (0, 100)


def test_a_tune_display_without_a_complete_trial_shows_counts_and_no_plot() -> None:
    """Every trial diverged: the one-line summary has no best value, and the metric's name
    (a user's string) is escaped in the table's header."""
    pytest.importorskip("optuna")
    import warnings

    from lrkit.tune import Task, tune

    task = Task(train=lambda s, rep: math.nan, total_steps=10, metric="val<loss>")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = tune(task, n_trials=2, max_trials=2, seeding="blind", seed=0, pruner="none")
    bundle = r._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    assert bundle["text/plain"] == repr(r) == "TuneResult(trials={'PRUNED': 2})"
    assert "<th style='text-align:left'>val&lt;loss&gt;</th>" in bundle["text/html"]
    assert "val<loss>" not in bundle["text/html"]


def test_a_compare_display_shows_a_note_and_no_plot_without_losses() -> None:
    from lrkit.compare import Comparison, LRs, Result

    run = _run("onecycle", 0.1, 0.5)
    run.note = "stopped at step 3 of 50: data ran out"
    assert "<td style='text-align:left'>stopped at step 3 of 50: data ran out</td>" in _check(
        run._repr_mimebundle_()
    )
    empty = Result(method="cosine", optimizer="SGD", lr="cosine(0.1, 50)")
    assert set(empty._repr_mimebundle_()) == {"text/plain", "text/html"}
    comparison = Comparison([empty], lrs=LRs(0.05, base_max=0.1, base_min=0.01, adam=1e-3))
    bundle = comparison._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}


def test_a_comparison_without_validation_marks_the_best_train_loss() -> None:
    from lrkit.compare import Comparison, LRs

    runs = [_run("constant", 0.05, 0.7), _run("onecycle", 0.1, 0.4)]
    for r in runs:
        r.val_loss = r.val_acc = math.nan
    comparison = Comparison(runs, lrs=LRs(0.05, base_max=0.1, base_min=0.01, adam=1e-3))
    html = _check(comparison._repr_mimebundle_())
    assert "<p>* best train loss</p>" in html and "best val loss" not in html
    assert "<td style='text-align:left'>* onecycle</td>" in html
