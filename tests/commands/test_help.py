"""Every sub-command's ``--help`` shows each option's default once (docs/cli.md says so)."""

from __future__ import annotations

import argparse
import os

import pytest

from lrkit.cli import COMMANDS, build_parser
from lrkit.commands._help import HelpFormatter, rename


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    return dict(build_parser().commands)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_shows_its_default_once(command: str) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("optuna")
    sub = _subparsers()[command]
    assert sub.formatter_class is HelpFormatter
    text = sub.format_help()
    assert "(default: None)" not in text
    fmt = HelpFormatter(command)
    for action in sub._actions:
        if not action.option_strings or action.nargs == 0 or action.help == argparse.SUPPRESS:
            continue  # positionals, flags and hidden aliases (find's --method of --rule)
        help_text = fmt._get_help_string(action)
        assert help_text.count("(default") == 1, (action.option_strings, help_text)


@pytest.mark.parametrize(
    "command, needs, shown",
    [
        ("find", "torch", [
            "first LR of the sweep (default: 1e-07)",
            "sweep steps (10 to 100000) (default: 100)",
            "steps of each check run (at least 1) (default: 300)",
            "--seed SEED seed for torch/numpy/random (default: 0)",
        ]),
        ("tune", "optuna", [
            "--trials TRIALS COMPLETE trials to reach (default: 20)",
            "--top TOP rows of the final table (default: 5)",
            "--max-retry MAX_RETRY retries of a killed trial (default: 3)",
            "sha: successive halving (default: percentile)",
            "(default: sqlite:///lrkit-tune.db)",
        ]),
    ],
)  # fmt: skip
def test_help_shows_the_defaults_as_given(command: str, needs: str, shown: list[str]) -> None:
    pytest.importorskip(needs)
    text = " ".join(_subparsers()[command].format_help().split())
    missing = [line for line in shown if line not in text]
    assert not missing, missing


def test_rename_replaces_whole_parameter_names_only() -> None:
    names = {
        "lr_range[0]": "--lr-range LOW",
        "lr_range[1]": "--lr-range HIGH",
        "num_iter": "--num-iter",
    }
    msg = "lr_range[1] must be > lr_range[0]=0.1, got 0.01; num_iter_x and my_num_iter stay"
    assert str(rename(ValueError(msg), names=names)) == (
        "--lr-range HIGH must be > --lr-range LOW=0.1, got 0.01; num_iter_x and my_num_iter stay"
    )


def test_rename_names_the_option_in_front_of_the_value_as_typed(capsys) -> None:
    names = {"start_lr": "--start-lr", "end_lr": "--end-lr"}
    msg = "end_lr must be > start_lr (allowed range: (1.0, inf)), got end_lr=0.1"
    assert str(rename(ValueError(msg), names=names)) == (
        "--end-lr must be > --start-lr (allowed range: (1.0, inf)), got --end-lr 0.1"
    )
    # a value that only looks like a name stays as typed
    assert str(rename(ValueError("x must be y, got 'end_lr=1'"), names=names)) == (
        "x must be y, got 'end_lr=1'"
    )
    pytest.importorskip("torch")
    from lrkit.cli import main

    assert main(["find", "--demo", "--start-lr", "1", "--end-lr", "0.1"]) == 2
    assert capsys.readouterr().err == (
        "lrkit find: error: --end-lr must be > --start-lr (allowed range: (1.0, inf)), "
        "got --end-lr 0.1\n"
    )


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_is_plain_text_and_json_reads_the_same_everywhere(command: str) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("optuna")
    sub = _subparsers()[command]
    text = sub.format_help()
    assert "``" not in text
    if command in ("find", "compare"):
        assert sub.description == (
            f"lrkit {command}: "
            + {
                "find": "run the LR range test, print the suggestions, plot, and check them "
                "by training.",
                "compare": "train with several LR methods from the same seed, side by side.",
            }[command]
        )
    if command != "plot":  # the same target argument and --json option everywhere
        (target,) = [a for a in sub._actions if a.dest == "target"]
        assert target.metavar == "MODULE:FUNCTION" and "[MODULE:FUNCTION]" in text
        (json_help,) = [a.help for a in sub._actions if "--json" in a.option_strings]
        assert json_help == "also write the results as JSON, full precision (default: not written)"


@pytest.mark.parametrize(
    "argv, line",
    [
        (["plot", "cosine(0.1,100)", "--bogus"], "lrkit plot: error: unrecognized arguments: "
         "--bogus (see: lrkit plot --help)"),
        (["plot", "--bogus", "cosine(0.1,100)", "extra"], "lrkit plot: error: unrecognized "
         "arguments: --bogus extra (see: lrkit plot --help)"),
        (["--bogus"], "lrkit: error: unrecognized arguments: --bogus (see: lrkit --help)"),
        # a short option is not guessed at, though --log starts with its letter
        (["plot", "cosine(0.1,100)", "-l"], "lrkit plot: error: unrecognized arguments: -l "
         "(see: lrkit plot --help)"),
        # a mistyped command before an option: the command is named, not the option
        (["fnd", "--demo"], "lrkit: error: argument COMMAND: invalid choice: 'fnd' (choose "
         "from 'plot', 'find', 'compare', 'tune'); did you mean 'find'? (see: lrkit --help)"),
        (["plt", "cosine(0.1,10)", "--log"], "lrkit: error: argument COMMAND: invalid choice: "
         "'plt' (choose from 'plot', 'find', 'compare', 'tune'); did you mean 'plot'? (see: "
         "lrkit --help)"),
        (["find", "--rule", "zzz"], "lrkit find: error: argument --rule: invalid choice: 'zzz' "
         "(choose from 'budget_edge', 'steepest', 'valley', 'minimum', 'slide', 'steep') (see: "
         "lrkit find --help)"),
    ],
)  # fmt: skip
def test_an_unknown_option_is_named_by_the_command_it_was_given_to(argv, line, capsys) -> None:
    """The sub-command's parser reports it, and points at that command's --help, where its
    options are listed (a single parse_args reported it against `lrkit`)."""
    from lrkit.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [line]


@pytest.mark.parametrize("command", ["find", "compare", "tune"])
def test_an_unknown_option_of_a_torch_command_names_that_command(command, capsys) -> None:
    pytest.importorskip("torch")
    from lrkit.cli import main

    with pytest.raises(SystemExit):
        main([command, "--demo", "--trails=5"])
    near = " (did you mean --trials?)" if command == "tune" else ""  # only tune has --trials
    assert capsys.readouterr().err.splitlines() == [
        f"lrkit {command}: error: unrecognized arguments: --trails=5{near} (see: lrkit {command} "
        "--help)"
    ]


@pytest.mark.parametrize(
    "argv, said",
    [
        (["tune", "--demo", "--n-trials=3"], "--n-trials=3 (did you mean --trials?)"),
        (["find", "--demo", "--total_steps", "5"], "--total_steps 5 (did you mean --total-steps?)"),
        (["find", "--demo", "--totl-steps=5"], "--totl-steps=5 (did you mean --total-steps?)"),
        (["find", "--demo", "--numiter", "5", "--totalsteps", "4"],
         "--numiter 5 --totalsteps 4 (--numiter: did you mean --num-iter?; --totalsteps: did "
         "you mean --total-steps?)"),
        (["tune", "--demo", "--no-plot", "--n_trials=3"],
         "--no-plot --n_trials=3 (--no-plot here is --plot none; --n_trials: did you mean "
         "--trials?)"),
        (["find", "--demo", "--xyz"], "--xyz"),
        # one dash for two
        (["find", "--demo", "-num_iter", "5"], "-num_iter 5 (did you mean --num-iter?)"),
        (["tune", "--demo", "-trials=5"], "-trials=5 (did you mean --trials?)"),
        # another command's output option, misspelt: how this one spells it
        (["tune", "--demo", "--no_plot"], "--no_plot (--no-plot here is --plot none)"),
        (["find", "--demo", "--no_progress"], "--no_progress (--no-progress here is --quiet)"),
        (["find", "--demo", "--plots", "x.png"],
         "--plots x.png (--plot here is -o/--output PATH or --no-plot)"),
        # an option of this command written with underscores, beside another unknown one
        (["compare", "--demo", "--no_plot", "--xyz", "3"],
         "--no_plot --xyz 3 (--no_plot: did you mean --no-plot?)"),
        # an old name kept working but hidden from --help is never suggested
        (["find", "--demo", "--methd", "steep"], "--methd steep"),
    ],
)  # fmt: skip
def test_a_misspelt_option_is_named_with_the_one_meant(argv, said, capsys) -> None:
    """An unknown long option with underscores for dashes, one dash for two, or one spelt a
    letter or a word off (Optuna's n_trials for --trials), gets the option of this command
    it most likely meant (said for which option when several are unknown); one near none
    gets no guess."""
    pytest.importorskip("torch")
    from lrkit.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"lrkit {argv[0]}: error: unrecognized arguments: {said} (see: lrkit {argv[0]} --help)"
    ]


@pytest.mark.parametrize(
    "argv, said",
    [
        (["tune", "--demo", "--output=x.png", "--no-plot"],
         "--output=x.png --no-plot (--output here is --plot PATH; --no-plot here is --plot none)"),
        (["find", "--demo", "--plot", "x.png"],
         "--plot x.png (--plot here is -o/--output PATH or --no-plot)"),
        (["compare", "--demo", "--no-progress"], "--no-progress (--no-progress here is --quiet)"),
        (["compare", "--demo", "--no-prog"], "--no-prog (--no-progress here is --quiet)"),
        (["find", "--demo", "--pl", "x.png"],
         "--pl x.png (--plot here is -o/--output PATH or --no-plot)"),
        (["tune", "--demo", "-ox.png"], "-ox.png (-o here is --plot PATH)"),
        (["tune", "--demo", "--o=x.png"], "--o=x.png (--output here is --plot PATH)"),
    ],
)  # fmt: skip
def test_an_output_option_of_another_command_says_how_this_one_spells_it(argv, said, capsys):
    """find and compare write their plot with -o and stay quiet with --quiet; tune writes it
    with --plot (none: no plot) and has --no-progress: given to the other, each is named
    with this command's spelling."""
    from lrkit.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"lrkit {argv[0]}: error: unrecognized arguments: {said} (see: lrkit {argv[0]} --help)"
    ]


def test_a_parser_keeps_the_option_strings_of_its_arguments_and_groups() -> None:
    """The options a sub-command knows, for naming the unknown ones: those added to the
    parser, to an argument group, to a mutually exclusive group (``--demo``) and to one made
    in a group, in the order they were added (``-h``/``--help`` first)."""
    from lrkit.cli import _Parser, _unknown_options, build_parser

    p = _Parser(prog="x")
    p.add_argument("--alpha")
    group = p.add_argument_group("more")
    group.add_argument("--beta")
    group.add_mutually_exclusive_group().add_argument("--gamma", action="store_true")
    p.add_mutually_exclusive_group().add_argument("-d", "--delta", action="store_true")
    group.add_argument("--old", help=argparse.SUPPRESS)
    assert p.option_strings == [
        "-h", "--help", "--alpha", "--beta", "--gamma", "-d", "--delta", "--old"
    ]  # fmt: skip
    assert p.hidden_options == ["--old"]
    argv = ["--gamma", "--del", "--alpha=1", "--omega", "3", "--beta", "2", "--zeta=4", "-q",
            "-d", "-5", "-omega"]  # fmt: skip
    # an unknown short option, and a long one written with one dash, are named too
    assert _unknown_options(p, argv) == ["--omega", "3", "--zeta=4", "-q", "-omega"]
    find = build_parser(["find"]).commands["find"]
    assert isinstance(find, _Parser)
    assert {"--demo", "--help", "--seed", "--output", "--json"} <= set(find.option_strings)


def test_a_prefix_of_version_is_read_as_argparse_reads_it(capsys) -> None:
    from lrkit.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--vers"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("lrkit ")


def test_a_standard_output_closed_before_the_start_is_no_traceback(tmp_path) -> None:
    """`lrkit ... >&-`: Python drops what is printed to a closed standard output; the command
    runs, and a usage mistake keeps exit code 2."""
    import subprocess
    import sys

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lrkit", *argv],
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            close_fds=True,
            preexec_fn=lambda: os.close(1),
        )

    ok = run("plot", "cosine(0.1, 10)", "--height", "3")
    assert ok.returncode == 0 and ok.stderr == ""
    bad = run("plot", "cosin(1,1)")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("lrkit plot: error: invalid schedule spec at position 0: ")
