"""lrkit.tune: what a refused run leaves behind, nothing. An SQLite file that is not an Optuna
study database is refused before Optuna adds its tables to it, and a new study whose range
test returns no interval is refused before the study (or a new database file) is created;
both from Python and from ``lrkit tune``."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lrkit import schedules as S
from lrkit.tune import Task, check_writable, make_storage, tune

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)
TS = optuna.trial.TrialState


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _made(path: Path, *sql: str) -> Path:
    """The SQLite file ``path`` made by running ``sql`` on it (the file of another program)."""
    with sqlite3.connect(path) as con:
        for statement in sql:
            con.execute(statement)
    con.close()
    return path


def _refusal(url: str, tables: str) -> str:
    return (
        f"storage {url}: the file is not an Optuna study database (it holds tables that are "
        f"not Optuna's: {tables}); lrkit leaves it as it is: choose another file for the study "
        "(a new one, or an Optuna study database)"
    )


def _task(calls: list[str], range_test: Any = (1e-3, 1.0)) -> Task:
    def train(schedule: S.Schedule, report: Any) -> float:
        calls.append("train")
        return 1.0

    def test() -> Any:
        calls.append("range_test")
        return range_test

    return Task(name="flat", train=train, total_steps=100, range_test=test)


# --------------------------------------------------- an SQLite file that is not Optuna's

#: SQLite files of other programs: (their schema, the tables the refusal names)
THEIRS = {
    # Optuna's table name, not its table: Optuna would add its other tables, then fail
    "studies": (("create table studies(id integer, name text)",), "studies"),
    # no table of Optuna's name: Optuna's tables would be added without a word
    "app": (
        (
            "create table users(id integer primary key, name text)",
            "create table orders(id integer, user_id integer)",
            "insert into users(name) values ('ada')",
        ),
        "orders, users",
    ),  # fmt: skip
    # an app migrated by alembic, as Optuna's database is
    "alembic": (
        (
            "create table alembic_version(version_num varchar(32) not null)",
            "insert into alembic_version values ('abc123')",
            "create table trials(id integer, patient text)",
        ),
        "trials",
    ),  # fmt: skip
    "view": (("create view answer as select 42 as n",), "answer"),
}


@pytest.mark.parametrize("kind", THEIRS)
def test_an_sqlite_file_of_something_else_is_refused_and_left_byte_for_byte(
    tmp_path: Path, kind: str
) -> None:
    sql, tables = THEIRS[kind]
    path = _made(tmp_path / "app.db", *sql)
    before = _digest(path)
    url = f"sqlite:///{path}"
    calls: list[str] = []
    for seeding in ("finder", "blind"):
        with pytest.raises(ValueError) as info:
            tune(_task(calls), storage=url, study_name="s", n_trials=2, seeding=seeding)
        assert type(info.value) is ValueError and str(info.value) == _refusal(url, tables)
    for check in (make_storage, check_writable):
        with pytest.raises(ValueError) as info:
            check(url)
        assert str(info.value) == _refusal(url, tables)
    assert calls == []  # neither the range test nor a trial ran
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no journal left


def test_the_refusal_of_a_file_of_something_else_masks_the_password(tmp_path: Path) -> None:
    path = _made(tmp_path / "app.db", "create table users(id integer)")
    url = f"sqlite:///{path}?password=Secret123"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pysqlite ignores the argument, and says so
        with pytest.raises(ValueError) as info:
            make_storage(url)
    msg = str(info.value)
    assert "Secret123" not in msg and "\n" not in msg
    assert msg == _refusal(f"sqlite:///{path}?password=***", "users")


def test_new_empty_and_optuna_sqlite_files_are_still_used(tmp_path: Path) -> None:
    calls: list[str] = []
    new = tmp_path / "new.db"
    r = tune(_task(calls), storage=f"sqlite:///{new}", study_name="s", n_trials=2, seed=0)
    assert len(r.complete_trials) == 2 and calls == ["range_test", "train", "train"]
    calls.clear()
    # the same study continued: its interval is kept, no new range test
    r = tune(_task(calls), storage=f"sqlite:///{new}", study_name="s", n_trials=3, seed=0)
    assert len(r.complete_trials) == 3 and calls == ["train"]
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    r = tune(_task(calls), storage=f"sqlite:///{empty}", study_name="s", n_trials=1)
    assert len(r.complete_trials) == 1
    # a study database of Optuna's own (not lrkit's), beside which the user keeps a table
    theirs = tmp_path / "theirs.db"
    optuna.create_study(storage=f"sqlite:///{theirs}", study_name="other")
    _made(theirs, "create table notes(id integer, text text)")
    r = tune(_task(calls), storage=f"sqlite:///{theirs}", study_name="s", n_trials=1)
    assert len(r.complete_trials) == 1
    names = {s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{theirs}")}
    assert names == {"other", "s"}


def test_a_database_whose_optuna_tables_another_worker_is_creating_is_used(
    tmp_path: Path,
) -> None:
    """Workers started together race to create Optuna's tables: one that finds some of them
    (and none of anything else) goes on."""
    import sqlalchemy
    from optuna.storages._rdb import models

    path = tmp_path / "race.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    tables = models.BaseModel.metadata.tables
    for name in ("studies", "study_directions", "trials"):
        tables[name].create(engine)
    engine.dispose()
    r = tune(_task([]), storage=f"sqlite:///{path}", study_name="s", n_trials=1)
    assert len(r.complete_trials) == 1


@pytest.fixture
def task_module(tmp_path: Path, monkeypatch: Any) -> Iterator[str]:
    source = """
            from lrkit.tune import Task

            RAN = []

            def make():
                RAN.append("make")
                return Task(train=lambda s, r: RAN.append("trial") or 1.0, total_steps=20,
                            range_test=lambda: RAN.append("range test") or (1e-3, 1.0))

            def badrange():
                RAN.append("make")
                return Task(train=lambda s, r: RAN.append("trial") or 1.0, total_steps=100,
                            range_test=lambda: RAN.append("range test") and None)
"""
    (tmp_path / "untouchedtasks.py").write_text(textwrap.dedent(source))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "untouchedtasks"
    sys.modules.pop("untouchedtasks", None)


@pytest.mark.parametrize("kind", ("studies", "app"))
def test_cli_an_sqlite_file_of_something_else_is_one_line_before_the_target_runs(
    task_module: str, tmp_path: Path, capsys: Any, kind: str
) -> None:
    from lrkit.cli import main

    sql, tables = THEIRS[kind]
    path = _made(tmp_path / "app.db", *sql)
    before = _digest(path)
    rc = main(["tune", f"{task_module}:make", "--trials", "2", "--no-progress", "--plot",
               "none", "--storage", "sqlite:///app.db"])  # fmt: skip
    out, err = capsys.readouterr()
    assert (rc, out) == (2, "")
    assert err == f"lrkit tune: error: {_refusal('sqlite:///app.db', tables)}\n"
    assert getattr(sys.modules.get(task_module), "RAN", []) == []  # the target did not run
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".py") == ["app.db"]


# ------------------------------------------- a new study's range test that gives no interval

#: what a range test returns that is no interval, and the end of the error
BAD_RANGES = {
    "none": (None, "range_test() must return a FinderResult or a (low, high) pair, got None "
                   "(NoneType)"),
    "reversed": ((1.0, 0.1), "range_test()[1] must be > range_test()[0]=1.0, got 0.1"),
}  # fmt: skip


@pytest.mark.parametrize("bad", BAD_RANGES)
def test_a_new_studys_range_test_of_no_interval_creates_no_file(tmp_path: Path, bad: str) -> None:
    value, message = BAD_RANGES[bad]
    calls: list[str] = []
    path = tmp_path / "fresh.db"
    with pytest.raises(ValueError) as info:
        tune(_task(calls, value), storage=f"sqlite:///{path}", study_name="s", n_trials=1)
    assert str(info.value) == message
    assert calls == ["range_test"]
    assert not path.exists() and list(tmp_path.iterdir()) == []
    empty = tmp_path / "empty.db"  # an empty file is a new database too: it stays empty
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="range_test"):
        tune(_task(calls, value), storage=f"sqlite:///{empty}", study_name="s", n_trials=1)
    assert empty.read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


@pytest.mark.parametrize("bad", BAD_RANGES)
def test_a_new_studys_range_test_of_no_interval_adds_no_study(tmp_path: Path, bad: str) -> None:
    value, message = BAD_RANGES[bad]
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    calls: list[str] = []
    tune(_task(calls), storage=url, study_name="old", n_trials=1, seed=0)
    calls.clear()
    before = _digest(path)
    with pytest.raises(ValueError) as info:
        tune(_task(calls, value), storage=url, study_name="new", n_trials=1)
    assert str(info.value) == message
    assert _digest(path) == before
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["old"]
    # a storage object: the study is not created there either
    storage = optuna.storages.InMemoryStorage()
    with pytest.raises(ValueError, match="range_test"):
        tune(_task(calls, value), storage=storage, study_name="new", n_trials=1)
    assert storage.get_all_studies() == []
    assert calls == ["range_test", "range_test"]  # and no trial


def test_bad_storage_options_are_refused_before_a_new_files_range_test(tmp_path: Path) -> None:
    calls: list[str] = []
    path = tmp_path / "fresh.db"
    with pytest.raises(ValueError, match="^grace_period must be longer than heartbeat_interval"):
        tune(_task(calls), storage=f"sqlite:///{path}", n_trials=1, heartbeat_interval=5,
             grace_period=5)  # fmt: skip
    with pytest.raises(ValueError, match="the folder .* does not exist"):
        tune(_task(calls), storage=f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}", n_trials=1)
    assert calls == [] and list(tmp_path.iterdir()) == []


def test_cli_a_range_test_of_no_interval_writes_no_database(
    task_module: str, tmp_path: Path, capsys: Any
) -> None:
    """Exit code 2 means nothing was run: no database file, no study."""
    from lrkit.cli import main

    rc = main(["tune", f"{task_module}:badrange", "--quiet", "--storage",
               "sqlite:///fresh.db"])  # fmt: skip
    out, err = capsys.readouterr()
    assert (rc, out) == (2, "")
    assert err.startswith("lrkit tune: error: ") and err.count("\n") == 1
    assert err.endswith(
        "range_test() must return a FinderResult or a (low, high) pair, got None (NoneType)\n"
    )
    assert sys.modules[task_module].RAN == ["make", "range test"]
    assert not (tmp_path / "fresh.db").exists()


def test_a_new_studys_range_test_that_raises_creates_no_file(tmp_path: Path) -> None:
    def range_test() -> Any:
        raise RuntimeError("out of memory")

    task = Task(train=lambda s, r: 1.0, total_steps=100, range_test=range_test)
    with pytest.raises(RuntimeError, match="^out of memory$"):
        tune(task, storage=f"sqlite:///{tmp_path / 'fresh.db'}", study_name="s", n_trials=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_a_new_file_another_worker_stored_a_study_in_meanwhile_stays(
    tmp_path: Path, exc: type
) -> None:
    """Workers started together on a new SQLite file: one whose range test fails (or is
    interrupted) leaves the file, with the study and trials another worker stored in it
    meanwhile, as it is."""
    import optuna

    url = f"sqlite:///{tmp_path / 'shared.db'}"

    def range_test() -> Any:
        other = optuna.create_study(storage=url, study_name="other")
        other.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
        raise exc("stopped")

    task = Task(train=lambda s, r: 1.0, total_steps=100, range_test=range_test)
    with pytest.raises(exc):
        tune(task, storage=url, study_name="mine", n_trials=1)
    study = optuna.load_study(study_name="other", storage=url)
    assert [t.value for t in study.trials] == [0.5]
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["other"]


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_a_new_file_another_worker_opened_before_storing_its_study_stays(
    tmp_path: Path, exc: type
) -> None:
    """Workers started together on a new SQLite file: another worker that opened it (Optuna's
    tables made) and is still in its own range test stores its study there after this one's
    range test failed: the file is created only once a range test has given an interval."""
    import optuna

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    other: list[Any] = []

    def range_test() -> Any:
        other.append(optuna.storages.RDBStorage(url))  # the other worker opens the file
        raise exc("stopped")

    task = Task(train=lambda s, r: 1.0, total_steps=100, range_test=range_test)
    with pytest.raises(exc):
        tune(task, storage=url, study_name="mine", n_trials=1)
    study = optuna.create_study(storage=other[0], study_name="theirs")  # its range test ended
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["theirs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.db"]  # no probe left


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("folder", "'folder' is a folder; name a database file in it, e.g. "
                   "sqlite:///folder/lrkit-tune.db"),
        ("folder/", "'folder/' is a folder; name a database file in it"),
        ("folder/new/", "'folder/new/' is a folder; name a database file in it"),
        ("dangling.db", "'dangling.db' is a link to '"),
    ],
)  # fmt: skip
def test_a_path_sqlite_cannot_open_is_refused_before_the_range_test(
    tmp_path: Path, monkeypatch: Any, name: str, why: str
) -> None:
    """Refused in one line before the range test, and nothing is created or removed (the
    link stays a link)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "dangling.db").symlink_to(tmp_path / "nowhere" / "x.db")
    calls: list[str] = []
    with pytest.raises(ValueError, match="^" + re.escape(f"storage sqlite:///{name}: {why}")):
        tune(_task(calls), storage=f"sqlite:///{name}", study_name="s", n_trials=1)
    assert calls == []  # the range test did not run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling.db", "folder"]
    assert (tmp_path / "dangling.db").is_symlink() and list((tmp_path / "folder").iterdir()) == []


@pytest.mark.parametrize("name", ["pkg/__init__.py", "notes.ipynb", "link.db"])
def test_a_file_of_code_is_never_made_a_study_database(
    tmp_path: Path, monkeypatch: Any, name: str
) -> None:
    """An empty package __init__.py (an empty file is otherwise a new database), a notebook,
    a link to a module: refused in one line before the range test, left as they were."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "notes.ipynb").write_text("{}")
    (tmp_path / "link.db").symlink_to(tmp_path / "pkg" / "__init__.py")
    calls: list[str] = []
    with pytest.raises(ValueError) as info:
        tune(_task(calls), storage=f"sqlite:///{name}", study_name="s", n_trials=1)
    assert str(info.value) == (
        f"storage sqlite:///{name}: {name!r} is a file of code (a Python module or notebook): "
        "a study database there would replace it; name another file, e.g. "
        "sqlite:///lrkit-tune.db"
    )
    assert calls == []
    assert (tmp_path / "pkg" / "__init__.py").read_text() == ""
    assert (tmp_path / "notes.ipynb").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.db", "notes.ipynb", "pkg"]


def test_a_new_file_of_a_long_name_is_created_after_the_range_test(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The probe's own name is short: a database name near the file system's limit works."""
    monkeypatch.chdir(tmp_path)
    name = "L" * 240 + ".db"
    calls: list[str] = []
    tune(_task(calls), storage=f"sqlite:///{name}", study_name="s", n_trials=1, seed=0)
    assert calls[0] == "range_test" and [p.name for p in tmp_path.iterdir()] == [name]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_a_new_studys_range_test_interrupted_creates_no_file(tmp_path: Path, exc: type) -> None:
    def range_test() -> Any:
        raise exc

    task = Task(train=lambda s, r: 1.0, total_steps=100, range_test=range_test)
    with pytest.raises(exc):
        tune(task, storage=f"sqlite:///{tmp_path / 'fresh.db'}", study_name="s", n_trials=1)
    assert list(tmp_path.iterdir()) == []


def test_a_storage_url_opening_refuses_is_refused_before_a_new_files_range_test(
    tmp_path: Path,
) -> None:
    calls: list[str] = []
    url = f"sqlite:///{tmp_path / 'fresh.db'}?timeout=abc"  # SQLite's own option, malformed
    with pytest.raises(ValueError, match="^storage .*fresh.db.*: cannot use the database"):
        tune(_task(calls), storage=url, study_name="s", n_trials=1)
    assert calls == []  # the range test did not run


def test_the_tables_known_as_optunas_are_those_of_the_installed_optuna() -> None:
    from optuna.storages._rdb import models

    from lrkit.tune._storage import _OPTUNA_TABLES

    theirs = models.BaseModel.metadata.tables
    for name, table in theirs.items():
        assert name in _OPTUNA_TABLES, name
        assert set(_OPTUNA_TABLES[name]) <= {c.name for c in table.columns}, name
