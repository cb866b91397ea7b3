"""Optuna storages for :func:`lrkit.tune.tune`: database URLs with heartbeat and retry, and
their one-line errors (the password never shown)."""

from __future__ import annotations

import contextlib
import os
import random
import time
import warnings
from collections.abc import Iterator
from typing import Any

from .. import _validate as V
from .._files import is_code_file
from .._format import (
    MASK,
    mask_keywords,
    mask_secrets,
    mask_url,
    shorten,
    unencoded_at,
    url_parts,
)
from .._imports import install_hint, optional
from ._task import optuna as _optuna

__all__ = [
    "DEFAULT_STORAGE",
    "PRUNERS",
    "check_optuna_file",
    "check_storage",
    "check_writable",
    "make_pruner",
    "make_storage",
    "sqlite_file",
    "storage_error",
]

#: The CLI's default storage: an SQLite file in the working directory.
DEFAULT_STORAGE = "sqlite:///lrkit-tune.db"
#: the longest heartbeat interval, seconds (a day; a thread cannot wait much longer than
#: ``threading.TIMEOUT_MAX``, and a longer one would leave a killed trial unnoticed for days)
MAX_HEARTBEAT = 86_400
#: the longest grace period, seconds (30 days; a killed trial is failed and re-queued only
#: after it, and Optuna subtracts it from the current time, which a far longer one overflows)
MAX_GRACE = 30 * 86_400


def make_storage(
    storage: Any = None,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int | None = 3,
) -> Any:
    """An Optuna storage. ``None``: in memory. A URL (``sqlite:///file.db``,
    ``postgresql://user@host:port/db``, ...): an ``RDBStorage`` with a heartbeat every
    ``heartbeat_interval`` seconds (default 10); a trial whose heartbeat is older than
    ``grace_period`` (default ``3 * heartbeat_interval``) is marked FAIL by the next worker
    that looks and re-queued (``max_retry`` times; ``None``: without limit). An SQLite file
    that exists but is not an Optuna study database (it holds tables of something else) is
    refused with a one-line ``ValueError`` before Optuna adds its tables to it
    (:func:`check_optuna_file`). A server user who may connect but has no grant on Optuna's
    tables is refused as :func:`check_writable` refuses a database that cannot be written
    (Optuna's first read of them is denied). Any other object is returned as is (an Optuna
    storage); the three options are checked in every case."""
    optuna = _optuna()
    # checked whatever the storage (they matter for a URL only): a mistake is never silent
    hb = (
        10
        if heartbeat_interval is None
        else V.integer("heartbeat_interval", heartbeat_interval, 1, MAX_HEARTBEAT)
    )
    grace = (
        3 * hb if grace_period is None else V.integer("grace_period", grace_period, 1, MAX_GRACE)
    )
    if grace <= hb:
        raise ValueError(
            f"grace_period must be longer than heartbeat_interval (a running trial renews its "
            f"heartbeat every heartbeat_interval seconds): grace_period {grace} <= "
            f"heartbeat_interval {hb}" + (" (the default)" if heartbeat_interval is None else "")
        )
    if max_retry is not None:
        max_retry = V.integer("max_retry", max_retry, 0)
    if storage is None or not isinstance(storage, str):
        return storage
    check_storage(storage)
    user_url = storage
    storage = _with_driver(storage)
    retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    engine_kwargs = _engine_kwargs(storage)
    # Optuna adds its tables to any database it opens: an SQLite file of something else (an
    # app's database, a path mistyped) is refused before that
    check_optuna_file(storage, url=user_url)

    def create() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat is "experimental" in Optuna
            if retry_cls is not None:
                return optuna.storages.RDBStorage(
                    storage,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=hb,
                    grace_period=grace,
                    heartbeat_stale_trial_callback=retry_cls(max_retry=max_retry),
                )
            return optuna.storages.RDBStorage(  # pragma: no cover - Optuna < 4.9
                storage,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=hb,
                grace_period=grace,
                failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=max_retry),
            )

    # Workers started together on an empty database race to create Optuna's tables (one
    # fails with a duplicate-key error, or on SQLite with "table ... already exists"); the
    # tables exist on the next try.
    import sqlalchemy.exc

    for attempt in range(6):
        try:
            return create()
        except optuna.exceptions.StorageInternalError as exc:
            # Optuna wraps the failed commit of its first read (a user without grants on its
            # tables: "permission denied for table version_info"): a database that cannot be
            # written, as check_writable says; anything else (a connection lost) goes on
            cause = database_error(exc)
            if cause is not None and _permission_denied(cause):
                raise _not_writable_error(cause, user_url) from None
            raise
        except (sqlalchemy.exc.SQLAlchemyError, ImportError) as exc:
            # a grant missing (to create Optuna's tables, to connect) is no race: not retried
            if attempt == 5 or not _creation_race(exc) or _permission_denied(exc):
                raise storage_error(exc, user_url) from None
            time.sleep(0.1 + random.random() * 0.4 * (attempt + 1))
        except (ValueError, TypeError) as exc:  # a query argument the driver cannot read
            raise storage_error(exc, user_url) from None
        except RuntimeError as exc:  # Optuna: its tables are of an older or newer version
            raise storage_error(exc, user_url) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy's engine options for a storage URL (with its driver): SQLite waits up to a
    minute for a lock other workers hold; a server's pooled connections are checked first."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


#: SQLSTATE of a privilege the user lacks (``42501``, PostgreSQL) and of a write in a
#: read-only transaction (``25006``)
_NO_WRITE_STATES = ("42501", "25006")


def _permission_denied(exc: BaseException) -> bool:
    """Whether the database error ``exc`` says the user may not do what was asked (a grant
    missing: PostgreSQL's ``permission denied for table ...``, MySQL's ``command denied``) or
    may not write (a read-only transaction), rather than that the database cannot be reached
    (a lost connection, a refused login)."""
    orig = getattr(exc, "orig", None) or exc
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state in _NO_WRITE_STATES:
        return True
    text = str(orig).lower()
    return any(
        why in text for why in ("permission denied", "command denied", "read-only transaction")
    )


def _creation_race(exc: BaseException) -> bool:
    """Whether ``exc`` is what a worker gets when another one created Optuna's tables (or
    their first rows) between its check and its ``CREATE``: a duplicate key, or SQLite's
    ``table ... already exists``. Any other database error (a locked or unreadable file, a
    refused connection) is not retried."""
    import sqlalchemy.exc

    if isinstance(exc, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)):
        return True
    if isinstance(exc, sqlalchemy.exc.OperationalError):
        return "already exists" in str(getattr(exc, "orig", None) or exc).lower()
    return False


def _mask_non_url(text: str) -> str:
    """A string meant as a database URL but without ``://`` (a typo: ``postgresql:/u:pw@h``,
    or a libpq connection string ``host=h password=pw``), shown with the value of each secret
    ``keyword=value`` (``password=``, ``passwd=``, ``sslpassword=``, a ``token``, a ``key``,
    ...) replaced by ``***``, then everything before its last ``@`` (where a user name and
    password would be) too, and its secret query arguments masked as in a URL."""
    text = mask_keywords(text)
    if "@" in text:
        text = MASK + text[text.rindex("@") :]
    return mask_url("x://" + text)[len("x://") :]


def shown_storage(storage: Any) -> str:
    """How a message names ``storage`` (its password never shown): a URL masked as
    :func:`lrkit._format.mask_url` masks it, a string that is no URL as :func:`_mask_non_url`,
    an Optuna database storage by its URL (masked), any other storage by its class
    (``InMemoryStorage``)."""
    if storage is None:
        return "in memory"
    if isinstance(storage, str):
        return mask_url(storage) if "://" in storage else _mask_non_url(storage)
    url = getattr(storage, "url", None)
    if isinstance(url, str) and "://" in url:
        return mask_url(url)
    return type(storage).__name__


def check_storage(storage: str, *, name: str = "storage") -> str:
    """``storage`` if it is a database URL :func:`make_storage` can use, without connecting to
    it; else a one-line ``ValueError`` that starts with ``name`` and never shows the password:
    not a URL, an in-memory SQLite database (which the heartbeat of another connection cannot
    see), an unencoded ``@`` in the user name or password, a port that is not an integer, a
    URL SQLAlchemy cannot read, or an argument only an SQLite URI reads in a plain SQLite URL
    (``sqlite:///x.db?mode=ro``, which SQLAlchemy would drop: :func:`_sqlite_uri_only`), or an
    SQLite file that is an existing file of code (a ``.py`` or notebook, an empty one too)."""
    if not isinstance(storage, str) or "://" not in storage:
        if isinstance(storage, (bytes, bytearray)):  # as text would be: its password masked
            text = bytes(storage).decode("utf-8", "replace")
            masked = mask_url(text) if "://" in text else _mask_non_url(text)
            got = f"{type(storage).__name__} {shorten(masked, 120)!r}"
        elif isinstance(storage, str):
            got = repr(shorten(_mask_non_url(storage), 120))
        else:
            got = V.fmt(storage)
        raise ValueError(
            f"{name} must be a database URL such as sqlite:///lrkit-tune.db or "
            f"postgresql://user@host:5432/db, got {got}"
        )
    shown = shorten(mask_url(storage), 200)
    if _sqlite_in_memory(storage):
        raise ValueError(
            f"{name} {shown!r} is an in-memory SQLite database, which the heartbeat of "
            "another connection cannot see: give a file, e.g. sqlite:///lrkit-tune.db"
        )
    if unencoded_at(storage):
        raise ValueError(
            f"{name} {shown}: the user name or password holds an unencoded '@'; write it as %40"
        )
    parts = url_parts(storage) or {}
    host, port = parts.get("ipv4host") or "", parts.get("port")
    if "[" in host or (not host and port and ":" in port):  # IPv6, not written as [addr]:port
        raise ValueError(
            f"{name} {shown}: an IPv6 host must be written in brackets, "
            "e.g. postgresql://user@[::1]:5432/db"
        )
    if port and not port.strip().isdigit():
        raise ValueError(
            f"{name} {shown}: the port must be an integer (e.g. postgresql://user@host:5432/db), "
            f"got {V.fmt(shorten(port, 40))}"
        )
    try:
        from sqlalchemy.engine import make_url
    except ImportError:  # pragma: no cover - optuna depends on sqlalchemy
        return storage
    try:
        make_url(storage)
    except Exception as exc:  # sqlalchemy's ArgumentError, a ValueError of a part
        why = mask_secrets((str(exc).strip().splitlines() or [type(exc).__name__])[0], storage)
        raise ValueError(
            f"{name} {shown}: not a URL SQLAlchemy can read ({shorten(why, 120)})"
        ) from None
    ignored = _sqlite_uri_only(storage)
    if ignored:
        from urllib.parse import unquote

        database = unquote((url_parts(storage) or {}).get("database") or "")
        database = database[len("file:") :] if database.startswith("file:") else database
        uri = f"sqlite:///file:{database}?{'&'.join(ignored)}&uri=true"
        them = "them" if len(ignored) > 1 else "it"
        if any(a.lower().startswith(("mode=", "immutable=")) for a in ignored):
            them += " and open the database for writing"
        raise ValueError(  # only SQLite's own arguments are named: no secret among them
            f"{name} {shown}: SQLite reads {' and '.join(ignored)} only in its URI form "
            f"({shorten(uri, 120)}); in this URL SQLAlchemy would ignore {them}"
        )
    path = sqlite_file(storage)
    if path is not None and (path.endswith(("/", os.sep)) or os.path.isdir(path)):
        raise ValueError(
            f"{name} {shown}: {path!r} is a folder; name a database file in it, e.g. "
            f"sqlite:///{os.path.join(path, 'lrkit-tune.db')}"
        )
    if path is not None and is_code_file(path):
        # (an empty one too: a package's __init__.py) a target's module where the study goes
        raise ValueError(
            f"{name} {shown}: {path!r} is a file of code (a Python module or notebook): a "
            "study database there would replace it; name another file, e.g. "
            "sqlite:///lrkit-tune.db"
        )
    if path is not None and os.path.islink(path) and not os.path.exists(path):
        raise ValueError(
            f"{name} {shown}: {path!r} is a link to {os.readlink(path)!r}, which does not exist"
        )
    if path is not None and not os.path.exists(path):  # SQLite would create it there
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise ValueError(f"{name} {shown}: the folder {folder!r} does not exist")
        if not os.access(folder, os.W_OK):
            raise ValueError(f"{name} {shown}: the folder {folder!r} is not writable")
    return storage


#: the query arguments of an SQLite URI (``sqlite:///file:x.db?mode=ro&uri=true``) that SQLite
#: itself reads; SQLAlchemy passes them on only with ``uri=true``, and drops them without
_SQLITE_URI_ARGS = frozenset(("mode", "immutable", "cache", "vfs", "nolock", "psow", "modeof"))


def _sqlite_uri_only(storage: str) -> list[str]:
    """The query arguments (``name=value``, as written) of the SQLite URL ``storage`` (the
    default driver, pysqlite) that only an SQLite URI reads (:data:`_SQLITE_URI_ARGS`), when it
    is not one (no ``uri=true``): SQLAlchemy would drop them (``mode=ro`` of
    ``sqlite:///x.db?mode=ro``: the file opened for writing all the same). ``[]`` for an SQLite
    URI and any other database."""
    from urllib.parse import parse_qsl

    parts = url_parts(storage)
    if not parts or (parts.get("name") or "").lower() not in ("sqlite", "sqlite+pysqlite"):
        return []
    args = parse_qsl(parts.get("query") or "", keep_blank_values=True)
    uri = [v for k, v in args if k == "uri"]
    if uri and uri[-1].strip().lower() in ("true", "yes", "on", "y", "t", "1"):
        return []
    return [f"{k}={v}" for k, v in args if k.strip().lower() in _SQLITE_URI_ARGS]


def _sqlite_in_memory(storage: str) -> bool:
    """Whether ``storage`` is an SQLite URL (any driver: ``sqlite+pysqlite://``, ...) of an
    in-memory database: no path (``sqlite://``, ``sqlite:///``), ``:memory:``, or an SQLite URI
    ``file::memory:`` / ``file:NAME?mode=memory``."""
    from urllib.parse import unquote

    parts = url_parts(storage)
    if not parts or not (parts.get("name") or "").lower().split("+")[0] == "sqlite":
        return False
    path = unquote(parts.get("database") or "").strip()
    query = unquote(parts.get("query") or "").lower()
    if path in ("", ":memory:"):
        return True
    if path.lower().startswith("file:"):
        rest, _, uri_query = path[len("file:") :].partition("?")
        return (
            rest in ("", ":memory:") or "mode=memory" in uri_query.lower() or "mode=memory" in query
        )
    return False


def sqlite_file(storage: Any) -> str | None:
    """The database file an ``sqlite:///PATH`` storage URL names (relative to the working
    directory, as SQLite opens it), else ``None`` (another database, an in-memory one, or not
    a URL)."""
    if not isinstance(storage, str) or not storage.lower().startswith("sqlite"):
        return None
    parts = url_parts(storage)
    path = parts.get("database") if parts else None
    if not path or _sqlite_in_memory(storage):
        return None
    from urllib.parse import unquote

    path = unquote(path)  # as SQLAlchemy reads it
    if path.startswith("file:"):  # an SQLite URI (?uri=true)
        path = path[len("file:") :]
    return path


#: the longest study name Optuna stores
MAX_STUDY_NAME = 512


def database_errors() -> tuple[type[BaseException], ...]:
    """The errors of the database layer Optuna stores through (SQLAlchemy's)."""
    try:
        import sqlalchemy.exc
    except ImportError:  # pragma: no cover - optuna depends on sqlalchemy
        return ()
    return (sqlalchemy.exc.SQLAlchemyError,)


def database_error(exc: BaseException) -> BaseException | None:
    """The database error behind ``exc``: ``exc`` itself, or one in the chain of errors it
    was raised from or while handling (Optuna wraps a failed commit in its
    ``StorageInternalError``, and an error in its own clean-up can hide that one); ``None``
    when there is none."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, database_errors()):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def first_line(exc: BaseException) -> str:
    """The database driver's first line of complaint (SQLAlchemy adds SQL and a link)."""
    orig = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    return shorten(lines[0] if lines else type(orig).__name__, 240)


class DatabaseLostError(ValueError):
    """The study's database stopped answering during :func:`lrkit.tune.tune`: the message
    says so in one line (the password masked); ``lost`` is the database's error. The trials
    that finished are in the study."""

    def __init__(self, message: str, lost: BaseException) -> None:
        super().__init__(message)
        self.lost = lost

    def __reduce__(self) -> Any:  # picklable (e.g. across a process pool)
        return (type(self), (str(self), self.lost))


def lost_connection(lost: BaseException, storage: Any, *, again: str) -> DatabaseLostError:
    """The one-line error for a database that stopped answering during a run (``lost``: its
    error, :func:`database_error`), password masked; ``again``: how to go on."""
    url = storage if isinstance(storage, str) else getattr(storage, "url", None)
    msg = (
        f"storage {shown_storage(storage)}: lost the database connection: {first_line(lost)}; "
        f"the trials already finished stay in the study: {again} to continue"
    )
    return DatabaseLostError(mask_secrets(msg, url) if isinstance(url, str) else msg, lost)


#: SQLAlchemy's names of database drivers in a URL (``dialect+driver://``) and the packages
#: that install them (a name not here gets no install line: its package is not guessed)
_DRIVER_PACKAGES = {
    "psycopg": "psycopg",
    "asyncpg": "asyncpg",
    "pg8000": "pg8000",
    "pymysql": "pymysql",
    "mysqldb": "mysqlclient",
    "mysqlconnector": "mysql-connector-python",
    "mariadbconnector": "mariadb",
    "aiomysql": "aiomysql",
    "asyncmy": "asyncmy",
}


def storage_error(exc: BaseException, url: str) -> ValueError:
    """A one-line ``ValueError`` for a storage that cannot be used: the database's first
    line of complaint, with the URL's password masked everywhere."""
    orig = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    why = lines[0] if lines else type(orig).__name__
    if isinstance(exc, ImportError):
        missing = (exc.name or "").split(".")[0]
        scheme = ((url_parts(url) or {}).get("name") or "").lower()
        driver = scheme.split("+", 1)[1] if "+" in scheme else None
        postgres = scheme.startswith("postgres")
        if postgres and driver in (None, "psycopg2") and missing in ("", "psycopg", "psycopg2"):
            # the tune extra holds psycopg2, which _with_driver then picks
            why = f"{install_hint('psycopg2', 'tune', feature='a PostgreSQL storage')} ({why})"
        elif driver in _DRIVER_PACKAGES:  # the driver the URL names: its own package
            other = ", or leave it out (postgresql://...: psycopg2, in lrkit[tune])"
            package = _DRIVER_PACKAGES[driver]
            hint = install_hint(driver, package=package, feature=f"a {scheme} URL")
            why = f"{hint}{other if postgres else ''} ({why})"
        else:
            why = f"the database driver is not installed ({why})"
    return ValueError(
        mask_secrets(f"storage {url}: cannot use the database: {shorten(why, 240)}", url)
    )


def check_writable(storage: Any, *, url: str | None = None) -> None:
    """Refuse, with a one-line ``ValueError`` naming the storage URL (password masked), a
    database that :func:`lrkit.tune.tune` could read but not write: an SQLite file made
    read-only, or in a folder that is (SQLite writes a journal beside the file), an SQLite URI
    opened read-only (``mode=ro``, ``immutable=1``), a server user without write grants on
    Optuna's tables, a read-only server or transaction. Without it a study continued there
    would fail only as its first trial is stored.

    The database itself is asked: a write in a transaction that is rolled back (SQLite: a
    change to Optuna's one-row ``version_info`` table, which it must journal; a server: an
    ``UPDATE`` and an ``INSERT`` of no row of Optuna's ``trials`` table, for which it checks the
    grants and a read-only transaction), so nothing stored changes.

    ``storage``: an Optuna ``RDBStorage`` (what :func:`make_storage` makes of a URL; any other
    storage is not checked), or a database URL: then only an SQLite file that exists is
    checked, without creating anything or contacting a server (``lrkit tune`` does this before
    it runs its target's code). Such a file that is not an Optuna study database (it holds
    tables that are not Optuna's, see :func:`check_optuna_file`) is refused too, before anything
    is written to it. A database without Optuna's tables yet is not asked for a write (creating
    them fails on one that cannot be written). ``url``: the URL the message names (default:
    ``storage``'s own; :func:`make_storage` may have added a driver to the one given)."""
    if not isinstance(storage, str):
        if storage is None or not isinstance(storage, _optuna().storages.RDBStorage):
            return
        own = getattr(storage, "url", None)
        _probe_write(
            storage.engine, url if url is not None else own if isinstance(own, str) else ""
        )
        return
    path = sqlite_file(storage)
    if path is None or not os.path.isfile(path):
        return
    with _file_engine(storage, url or storage) as engine:
        _refuse_foreign(engine, url or storage)
        _probe_write(engine, url or storage)


@contextlib.contextmanager
def _file_engine(storage: str, shown: str) -> Iterator[Any]:
    """An SQLAlchemy engine on the SQLite database of the URL ``storage`` (nothing is opened
    until it is used), disposed of afterwards; a URL it cannot make is a one-line error
    naming ``shown`` (:func:`storage_error`)."""
    import sqlalchemy
    import sqlalchemy.exc

    try:
        driver_url = _with_driver(storage)
        engine = sqlalchemy.create_engine(driver_url, **_engine_kwargs(driver_url))
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, TypeError) as exc:
        raise storage_error(exc, shown) from None
    try:
        yield engine
    finally:
        engine.dispose()


#: Optuna's tables (those of its ``RDBStorage``, and alembic's record of their version) and
#: the columns each has in every version of Optuna: its primary key (``studies``: and the
#: study's name)
_OPTUNA_TABLES: dict[str, tuple[str, ...]] = {
    "studies": ("study_id", "study_name"),
    "study_directions": ("study_direction_id",),
    "study_user_attributes": ("study_user_attribute_id",),
    "study_system_attributes": ("study_system_attribute_id",),
    "trials": ("trial_id",),
    "trial_user_attributes": ("trial_user_attribute_id",),
    "trial_system_attributes": ("trial_system_attribute_id",),
    "trial_params": ("param_id",),
    "trial_values": ("trial_value_id",),
    "trial_intermediate_values": ("trial_intermediate_value_id",),
    "trial_heartbeats": ("trial_heartbeat_id",),
    "version_info": ("version_info_id", "schema_version"),
    "alembic_version": ("version_num",),
}


def _foreign_tables(conn: Any) -> list[str]:
    """The tables (and views) of the SQLite database ``conn`` is connected to that keep
    Optuna from using it as a study database, read from its schema (nothing is written):
    none for a database without tables, an Optuna study database (Optuna's ``studies`` with
    ``study_name`` and its ``version_info`` or ``alembic_version``: other tables beside them
    are left alone) or one whose tables are all Optuna's (another worker is creating them);
    else those that are not Optuna's, or not as Optuna makes them (a ``studies`` of its own)."""
    import sqlalchemy

    inspector = sqlalchemy.inspect(conn)
    views = {str(n) for n in inspector.get_view_names()}
    names = [
        n
        for n in (*map(str, inspector.get_table_names()), *views)
        if not n.lower().startswith("sqlite_")  # SQLite's own (sqlite_sequence, ...)
    ]

    def optunas(name: str) -> bool:
        if name not in _OPTUNA_TABLES or name in views:
            return False
        columns = {str(c["name"]) for c in inspector.get_columns(name)}
        return set(_OPTUNA_TABLES[name]) <= columns

    own = {n for n in names if optunas(n)}
    if "studies" in own and own & {"version_info", "alembic_version"}:
        return []
    return sorted(n for n in names if n not in own)


def _refuse_foreign(engine: Any, url: str) -> None:
    """A one-line ``ValueError`` naming the storage ``url`` (password masked) when the SQLite
    database of ``engine`` holds tables that are not Optuna's (:func:`_foreign_tables`);
    another database is not asked. Its schema is read in a transaction rolled back."""
    import sqlalchemy.exc

    if engine.dialect.name != "sqlite":
        return
    try:
        with engine.connect() as conn:
            try:
                foreign = _foreign_tables(conn)
            finally:
                conn.rollback()
    except sqlalchemy.exc.SQLAlchemyError as exc:  # not a database, locked, unreadable
        raise storage_error(exc, url) from None
    if foreign:
        tables = shorten(", ".join(foreign), 120)
        raise ValueError(
            mask_secrets(
                f"storage {url}: the file is not an Optuna study database (it holds tables "
                f"that are not Optuna's: {tables}); lrkit leaves it as it is: choose another file "
                "for the study (a new one, or an Optuna study database)",
                url,
            )
        )


def check_optuna_file(storage: str, *, url: str | None = None) -> None:
    """Refuse, with a one-line ``ValueError`` naming the storage URL (``url``, default
    ``storage``; password masked), an SQLite file that exists but is not an Optuna study
    database: one whose tables are not Optuna's (:func:`_foreign_tables`: an app's database,
    or a path mistyped), which Optuna would add its tables to. The file is only read. A new
    path, an empty file, an Optuna study database and any other database URL pass."""
    path = sqlite_file(storage)
    if path is None or not os.path.isfile(path) or os.path.getsize(path) == 0:
        return
    shown = url if url is not None else storage
    with _file_engine(storage, shown) as engine:
        _refuse_foreign(engine, shown)


def _probe_write(engine: Any, url: str) -> None:
    """:func:`check_writable`'s question to the database through ``engine``."""
    import sqlalchemy
    import sqlalchemy.exc

    try:
        conn = engine.connect()
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, TypeError) as exc:
        raise storage_error(exc, url) from None
    with conn:
        try:
            if not sqlalchemy.inspect(conn).has_table("version_info"):
                return  # not an Optuna database (yet): making its tables is the first write
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise storage_error(exc, url) from None
        finally:
            conn.rollback()
        try:
            if conn.dialect.name == "sqlite":
                # SQLite leaves a page that would not change untouched (and so would not
                # notice it cannot write): the one row of version_info is changed, and the
                # change rolled back
                conn.exec_driver_sql(
                    "UPDATE version_info SET library_version = library_version || '.'"
                )
            else:  # the server checks the grants, and a read-only transaction, on no row too
                conn.exec_driver_sql("UPDATE trials SET state = state WHERE 1 = 0")
                conn.exec_driver_sql(
                    "INSERT INTO trials (study_id) SELECT study_id FROM trials WHERE 1 = 0"
                )
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise _not_writable_error(exc, url) from None
        finally:
            conn.rollback()


def _not_writable_error(exc: BaseException, url: str) -> ValueError:
    """The one-line ``ValueError`` of :func:`check_writable`: the database's complaint, and
    for an SQLite file what it needs (the password masked everywhere)."""
    orig = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    why = shorten(lines[0] if lines else type(orig).__name__, 240)
    hint = ""
    if url.lower().startswith("sqlite") and "locked" not in why.lower():
        query = ((url_parts(url) or {}).get("query") or "").lower().split("&")
        opened = [q for q in ("mode=ro", "immutable=1") if q in query]
        if opened:
            hint = f"; the URL opens it read-only ({opened[0]})"
        else:
            hint = "; SQLite needs write access to the file and to its folder (for its journal)"
    return ValueError(
        mask_secrets(
            f"storage {url}: cannot use the database: it cannot be written ({why}){hint}", url
        )
    )


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg (v3) to SQLAlchemy >= 2.1; use psycopg2 (the ``tune``
    extra) when psycopg is not installed."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme) and optional("psycopg") is None and optional("psycopg2"):
            return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


#: The pruners :func:`make_pruner` knows by name.
PRUNERS: tuple[str, ...] = ("percentile", "median", "sha", "successive_halving", "none")


def make_pruner(pruner: Any) -> Any:
    """An Optuna pruner from its name (an Optuna pruner is returned as is; anything else is a
    one-line ``ValueError``).

    ``"percentile"`` (the default of :func:`lrkit.tune.tune`) stops a trial whose value at an
    epoch is in the worst quarter of the values other trials had there; ``"median"`` stops
    it in the worse half. Both start after 5 trials and from the second report on. Checked at
    every epoch, the median rule compounds and can stop most trials, so that reaching
    ``n_trials`` COMPLETE takes many times as many trials."""
    optuna = _optuna()
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if not isinstance(pruner, str):  # None too: Optuna's default is neither lrkit's nor none
        raise ValueError(
            f"pruner must be one of {', '.join(map(repr, PRUNERS))} (no pruning: 'none') or an "
            f"optuna.pruners.BasePruner, got {V.fmt(pruner)}"
        )
    name = V.choice("pruner", pruner, PRUNERS)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(75.0, n_startup_trials=5, n_warmup_steps=1)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name in ("sha", "successive_halving"):
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()
