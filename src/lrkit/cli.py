"""The ``lrkit`` command line. Each sub-command lives in ``lrkit.commands.<name>`` and provides
``add_parser(subparsers)`` and ``run(args) -> int``; modules are imported only when used."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

COMMANDS: dict[str, str] = {
    "plot": "Plot a schedule given as a spec string (a file, or a curve in the terminal).",
    "find": "Run the learning-rate range test and suggest learning rates.",
    "compare": "Train with several LR methods side by side and compare them.",
    "tune": "Search learning rate and schedule with Optuna.",
}


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (and exit code 2), pointing at
    ``--help`` instead of printing the usage block, and which keeps the option strings of
    its arguments (:attr:`option_strings`)."""

    #: the parser of each sub-command, by name (set on the top-level parser)
    commands: dict[str, argparse.ArgumentParser]
    #: the command line being parsed, whose secrets an error masks (``None``: ``sys.argv``)
    argv: list[str] | None = None
    #: options of the command line this parser does not know: any error names them
    unknown: list[str] = []
    #: the option strings of every argument added so far (``-h``, ``--help``, ...), those
    #: added through an argument group or a mutually exclusive group included
    option_strings: list[str]
    #: those of them whose help is hidden (old names kept working): never suggested
    hidden_options: list[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.option_strings = []  # before the parser adds -h/--help
        self.hidden_options = []
        super().__init__(*args, **kwargs)

    def _record(self, action: argparse.Action) -> None:
        self.option_strings += action.option_strings
        if action.help == argparse.SUPPRESS:
            self.hidden_options += action.option_strings

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self._record(action)
        return action

    def add_argument_group(self, *args: Any, **kwargs: Any) -> Any:
        return self._recording(super().add_argument_group(*args, **kwargs))

    def add_mutually_exclusive_group(self, **kwargs: Any) -> Any:
        return self._recording(super().add_mutually_exclusive_group(**kwargs))

    def _recording(self, group: Any) -> Any:
        """``group`` (an argument group or a mutually exclusive group of this parser) whose
        ``add_argument`` records the option strings here too, as do the groups made in it."""
        add = group.add_argument

        def add_argument(*args: Any, **kwargs: Any) -> argparse.Action:
            action: argparse.Action = add(*args, **kwargs)
            self._record(action)
            return action

        group.add_argument = add_argument
        for method in ("add_argument_group", "add_mutually_exclusive_group"):
            make = getattr(group, method, None)
            if make is not None:
                setattr(group, method, self._nested(make))
        return group

    def _nested(self, make: Any) -> Any:
        def made(*args: Any, **kwargs: Any) -> Any:
            return self._recording(make(*args, **kwargs))

        return made

    def error(self, message: str) -> NoReturn:
        from ._format import mask_arguments

        if self.unknown and not message.startswith("unrecognized arguments"):
            message = f"unrecognized arguments: {' '.join(self.unknown)}"
        if message.startswith("unrecognized arguments: "):
            # an option of another command: how this one spells it
            table = _SPELLED_HERE.get(self.prog.split()[-1], {})
            typed = message[len("unrecognized arguments: ") :].split()
            options = [t.split("=", 1)[0] for t in typed if _is_option(t)]
            shown = [o for o in self.option_strings if o not in self.hidden_options]
            spelled: dict[str, None] = {}
            near: dict[str, str] = {}
            for t in dict.fromkeys(options):
                # as typed in the table; an option of this command with dashes for
                # underscores; the table's nearest; this command's nearest
                name = _spelled(t, table)
                if name is None and _dashed(t) in shown:
                    near[t] = _dashed(t)
                    continue
                name = name or _nearest_option(t, list(table))
                if name:
                    spelled[name] = None
                elif m := _nearest_option(t, shown):
                    near[t] = m
            said = [f"{name} here is {table[name]}" for name in spelled]
            if len(options) == 1 and near:
                said = [f"did you mean {m}?" for m in near.values()]
            else:
                said += [f"{t}: did you mean {m}?" for t, m in near.items()]
            message = "unrecognized arguments: " + " ".join(_mask_secret_like(typed))
            if said:
                message += f" ({'; '.join(said)})"
        message = _nearest_choice(message)
        # an error echoes what was typed (an unrecognized argument, a value): a database URL
        # given in the wrong place shows without its password (as every command's error:
        # lrkit.commands._target.print_error)
        message = mask_arguments(message, sys.argv[1:] if self.argv is None else self.argv)
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def _mask_secret_like(typed: list[str]) -> list[str]:
    """``typed`` (the unrecognized arguments, as argparse lists them) with the value of each
    option that names a secret (:func:`lrkit._format.secret_like`) masked: ``--pasword=***``,
    ``--api-token ***``."""
    from ._format import MASK, secret_like

    out = list(typed)
    for i, t in enumerate(typed):
        if not _is_option(t) or not secret_like(t.split("=", 1)[0]):
            continue
        if "=" in t:
            out[i] = t.split("=", 1)[0] + "=" + MASK
        elif i + 1 < len(typed) and not _is_option(typed[i + 1]):
            out[i + 1] = MASK
    return out


def _is_option(token: str) -> bool:
    """Whether ``token`` reads as an option (``--name``, ``-x``, ``-name``), not a negative
    number or ``--`` alone."""
    return (
        token.startswith("-") and len(token) > 1 and token != "--" and token[1] not in "0123456789."
    )


def _dashed(typed: str) -> str:
    """``typed`` as a long option: two dashes, dashes for underscores (``-num_iter``:
    ``--num-iter``)."""
    return "--" + typed.lstrip("-").replace("_", "-")


def _nearest_option(typed: str, options: Sequence[str]) -> str | None:
    """The long option of ``options`` that ``typed`` (an unknown option) most likely meant:
    the same with dashes for underscores (``--total_steps``) or two dashes for one
    (``-num-iter``), else the nearest by spelling (``--n-trials``, ``--totl-steps``); ``None``
    when none is near, and for a short option (``-x``)."""
    import difflib

    if not _is_option(typed):
        return None
    longs = [o for o in options if o.startswith("--")]
    dashed = _dashed(typed)
    if len(dashed) <= 3:  # -x or --x: a short option, nothing to compare
        return None
    if dashed in longs:
        return dashed
    near = difflib.get_close_matches(dashed, longs, n=1, cutoff=0.75)
    return near[0] if near else None


def _nearest_choice(message: str) -> str:
    """argparse's ``invalid choice: 'plto' (choose from 'plot', ...)`` with the choice
    nearest to what was typed, when one is near: ``...; did you mean 'plot'?``."""
    import difflib
    import re

    found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
    if found is None:
        return message
    choices = [c.strip().strip("'") for c in found.group(2).split(",")]  # quoted or not
    near = difflib.get_close_matches(found.group(1), choices, n=1)
    return f"{message}; did you mean {near[0]!r}?" if near else message


#: the output options of one command given to another, as that one spells them
_OUTPUTS_OF_FIND = {"--plot": "-o/--output PATH or --no-plot", "--no-progress": "--quiet"}
_SPELLED_HERE: dict[str, dict[str, str]] = {
    "tune": {"-o": "--plot PATH", "--output": "--plot PATH", "--no-plot": "--plot none"},
    "find": _OUTPUTS_OF_FIND,
    "compare": _OUTPUTS_OF_FIND,
}


def _spelled(typed: str, table: dict[str, str]) -> str | None:
    """The option of ``table`` that ``typed`` names, as argparse reads an option: in full, a
    unique prefix of a long option (``--out``), or a short one with its value attached
    (``-ox.png``)."""
    if typed in table:
        return typed
    if typed.startswith("--"):
        matches = [k for k in table if k.startswith(typed)]
        return matches[0] if len(matches) == 1 else None
    if len(typed) > 2 and typed[:2] in table:
        return typed[:2]
    return None


def build_parser(argv: Sequence[str] | None = None) -> _Parser:
    parser = _Parser(prog="lrkit", description="Take the guesswork out of the learning rate.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"lrkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = None
    if argv:
        wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, help_text in COMMANDS.items():
        if wanted is not None and wanted in COMMANDS and name != wanted:
            sub.add_parser(name, help=help_text)
            continue
        try:
            module = importlib.import_module(f"lrkit.commands.{name}")
        except ImportError:
            sub.add_parser(name, help=help_text + " (not available)")
            continue
        module.add_parser(sub)
    parser.commands = dict(sub.choices)
    if argv is not None:
        for p in (parser, *parser.commands.values()):
            if isinstance(p, _Parser):
                p.argv = list(argv)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lrkit`` command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit
    status. Ctrl-C at any point, also while the options are parsed and lrkit is imported,
    ends it with a short note and status 130, no traceback (importing this module imports
    nothing but the standard library)."""
    undo = _escape_unencodable()
    start: str | None = None
    back: Callable[[str | None], bool] | None = None
    try:
        from ._files import back_to, starting_folder

        back, start = back_to, starting_folder()
        return _main(argv)
    except KeyboardInterrupt:  # before the command ran (it has its own note, with its name)
        print("\nlrkit: interrupted", file=sys.stderr)
        return 130
    finally:
        undo()
        # a target that moved the process elsewhere (os.chdir): the caller's folder again,
        # for a command run inside a Python process
        if back is not None:
            back(start)


def _escape_unencodable() -> Callable[[], None]:
    """Standard output writes what its encoding cannot (a file name in ``é`` on an ASCII or
    cp1252 console) as backslash escapes, as Python's standard error does, rather than
    failing after the work is done. Returns what puts the stream's error handler back (the
    command line may run inside a Python process)."""
    stream = sys.stdout
    reconfigure = getattr(stream, "reconfigure", None)
    errors = getattr(stream, "errors", None)
    if not callable(reconfigure) or errors != "strict":
        return lambda: None
    try:
        reconfigure(errors="backslashreplace")
    except (ValueError, OSError):  # a closed or detached stream: left as it is
        return lambda: None

    def undo() -> None:
        with contextlib.suppress(ValueError, OSError):
            reconfigure(errors=errors)

    return undo


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    # `lrkit --bogus`: name it, not the command (a word that is no command, `lrkit fnd
    # --demo`, is named by argparse as the command mistyped)
    if not any(a in COMMANDS or not a.startswith("-") for a in argv):
        unknown = [a for a in argv if not _top_level_option(a)]
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    at = next((i for i, a in enumerate(argv) if a in COMMANDS), None)
    sub = parser.commands.get(argv[at]) if at is not None else None
    if isinstance(sub, _Parser) and at is not None:
        # argparse may read a mistyped option's value as the target, and then complain of
        # that (with --demo: "not allowed with argument --demo"): the option is named instead
        sub.unknown = _unknown_options(sub, argv[at + 1 :])
    args, extras = parser.parse_known_args(argv)
    if extras:  # reported by the command they were given to, which lists its options
        parser.commands.get(args.command, parser).error(
            f"unrecognized arguments: {' '.join(extras)}"
        )
    module = importlib.import_module(f"lrkit.commands.{args.command}")
    from .commands import OutputFailed, print_error
    from .commands.signals import TERMINATED_EXIT, Terminated, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            code = int(module.run(args) or 0)
        try:
            # a closed pipe shows here, not as an error at exit (a standard output closed
            # before the start, `>&-`, is None: Python drops what is printed to it)
            if sys.stdout is not None:
                sys.stdout.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:  # a full disk: buffered text is written here
            raise OutputFailed(exc) from exc
        return code
    except OutputFailed as exc:  # one line, as for a file that cannot be written
        print_error(args.command, exc, args)
        _drop_stdout()  # the text left in the buffer is not written again at exit
        return 1
    except Terminated:  # SIGTERM: as Ctrl-C
        print(f"\nlrkit {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return TERMINATED_EXIT
    except KeyboardInterrupt:  # Ctrl-C: a short note, no traceback (the command cleaned up)
        print(f"\nlrkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`lrkit plot ... | head`): stop quietly
        _drop_stdout()
        return 141


def _top_level_option(arg: str) -> bool:
    """Whether ``arg`` is an option of ``lrkit`` itself (``-h``, or ``--help``, ``--version``
    or a prefix of one, as argparse reads them)."""
    return arg == "-h" or (
        len(arg) > 2 and any(name.startswith(arg) for name in ("--help", "--version"))
    )


def _unknown_options(sub: _Parser, argv: Sequence[str]) -> list[str]:
    """The options of ``argv`` that ``sub`` does not know (with the value that follows one,
    as argparse names them), read as argparse reads them: ``--opt=value``, a unique prefix of
    an option, a short option with its value attached, a negative number as a value; a
    long option written with one dash (``-num-iter``) is unknown too. Otherwise ``lrkit find
    --demo --numiter 50`` takes ``50`` for the target and says the target is not allowed with
    ``--demo``."""
    known = [o for o in sub.option_strings if o.startswith("--")]
    short = [o for o in sub.option_strings if len(o) == 2]
    out: list[str] = []
    for i, a in enumerate(argv):
        if not _is_option(a):
            continue
        name = a.split("=", 1)[0]
        if not a.startswith("--"):  # -o, -ox.png (a value attached), or -name (one dash)
            if a[:2] in short:
                continue
        elif name in known or (sub.allow_abbrev and any(o.startswith(name) for o in known)):
            continue
        nxt = argv[i + 1] if i + 1 < len(argv) and "=" not in a else None
        out += [a] if nxt is None or nxt.startswith("-") else [a, nxt]
    return out


def _drop_stdout() -> None:
    """Point the standard output at ``os.devnull``, so that Python's flush at exit does not
    raise on the closed pipe again (what the Python docs advise for ``BrokenPipeError``)."""
    import os

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a notebook, a test)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
