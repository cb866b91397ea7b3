"""Many workers, one study on a real PostgreSQL server: ``lrkit tune`` worker processes share
the study; one is SIGKILLed mid-trial, its trial is failed by heartbeat and retried, and the
study ends with exactly the requested number of COMPLETE trials, every trial accounted for.

The test starts its own server (``initdb`` into a temporary directory, ``pg_ctl start`` on a
free loopback port); it skips when the PostgreSQL server binaries are not installed
(``apt-get install postgresql``; ``.ci/run`` installs them)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("psycopg2")
TS = optuna.trial.TrialState


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: The running server's data folder and command runner (for tests that change its settings).
_SERVER: dict[str, object] = {}


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: "
            "apt-get install postgresql (.ci/run installs them)"
        )
    # initdb/postgres refuse to run as root: run them as the 'postgres' user
    prefix: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        runuser = shutil.which("runuser")
        prefix = [runuser, "-u", "postgres", "--"] if runuser else ["su", "postgres", "-c"]
    root = tempfile.mkdtemp(prefix="lrkit-pg-")
    data, sock, log = f"{root}/data", f"{root}/sock", f"{root}/server.log"
    os.mkdir(sock)
    if owner is not None:
        for d in (root, sock):
            os.chown(d, owner.pw_uid, owner.pw_gid)

    def run(*cmd: str) -> None:
        args = [*prefix, " ".join(cmd)] if prefix[:1] == ["su"] else [*prefix, *cmd]
        subprocess.run(args, check=True, capture_output=True, timeout=120)

    port = _free_port()
    try:
        run(str(bindir / "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(str(bindir / "pg_ctl"), "-D", data, "-l", log, "-w", "-o", opts, "start")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(root, ignore_errors=True)
        err = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"could not start a PostgreSQL server: {err.decode(errors='replace')[:300]}")
    _SERVER.update(data=data, run=run, pg_ctl=str(bindir / "pg_ctl"))
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        try:
            run(str(bindir / "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _readback(url: str) -> str:
    # what the workers were given is the plain URL a user types; read back with psycopg2
    return url.replace("postgresql://", "postgresql+psycopg2://")


OBJECTIVE = """
import math, os, time
from lrkit.tune import Task

MARK = os.environ["LRKIT_TEST_MARKS"]

def make():
    def train(schedule, report):
        mark = os.path.join(MARK, f"{os.getpid()}.running")
        open(mark, "w").close()
        try:
            val = (math.log10(schedule(0) + 1e-12) + 2.0) ** 2
            for epoch in range(3):
                time.sleep(0.2)
                report(epoch, val + 0.1 * (2 - epoch))
            return val
        finally:
            os.remove(mark)
    return Task(train=train, total_steps=100, range_test=lambda: (1e-4, 1.0), name="quad")
"""


def _worker(cwd: Path, url: str, study: str, n: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "lrkit.cli", "tune", "pgobjective:make",
        "--trials", str(n), "--storage", url, "--study", study,
        "--heartbeat", "1", "--grace", "2", "--max-retry", "3",
        "--pruner", "none", "--no-progress", "--plot", "none",
    ]  # fmt: skip
    env = dict(os.environ, LRKIT_TEST_MARKS=str(cwd / "marks"), PYTHONUNBUFFERED="1")
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_workers_share_a_study_and_a_killed_trial_is_retried(pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "pgobjective.py").write_text(textwrap.dedent(OBJECTIVE))
    (tmp_path / "marks").mkdir()
    n = 8
    study_name = "pg-kill"
    a = _worker(tmp_path, pg_url, study_name, n)
    b = _worker(tmp_path, pg_url, study_name, n)
    procs = [a, b]
    try:
        # wait until worker A is inside a trial, then SIGKILL it
        mark = tmp_path / "marks" / f"{a.pid}.running"
        deadline = time.monotonic() + 60
        while not mark.exists():
            assert a.poll() is None, a.stdout.read().decode() if a.stdout else ""
            assert time.monotonic() < deadline, "worker A never started a trial"
            time.sleep(0.01)
        os.kill(a.pid, signal.SIGKILL)
        a.wait(10)
        # a worker restarted with the same command joins the survivor
        c = _worker(tmp_path, pg_url, study_name, n)
        procs.append(c)
        for p in (b, c):
            out = p.communicate(timeout=90)[0].decode()
            assert p.returncode == 0, out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    study = optuna.load_study(study_name=study_name, storage=_readback(pg_url))
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert states.count(TS.COMPLETE) == n
    assert TS.RUNNING not in states and TS.WAITING not in states
    failed = [t for t in trials if t.state == TS.FAIL]
    assert len(failed) == 1  # the killed one (failed by heartbeat, not by the dead worker)
    retry_of = {
        t.system_attrs.get("failed_trial"): t for t in trials if "failed_trial" in t.system_attrs
    }
    for f in failed:
        copy = retry_of[f.number]  # every failed trial has a retried copy ...
        assert copy.params == f.params  # ... with the same parameters
        assert copy.state == TS.COMPLETE
    # every trial is accounted for: COMPLETE, FAIL (retried) or PRUNED as surplus
    for t in trials:
        if t.state == TS.PRUNED:
            assert t.user_attrs.get("surplus")
    for t in study.get_trials(states=(TS.COMPLETE,)):
        assert "schedule" in t.user_attrs
    assert study.user_attrs["lrkit.lr_range"] == [1e-4, 1.0]


def test_cli_against_postgres(pg_url: str, tmp_path: Path) -> None:
    """One worker, sequential: the study on the server has exactly --trials COMPLETE trials."""
    (tmp_path / "pgobjective.py").write_text(textwrap.dedent(OBJECTIVE))
    (tmp_path / "marks").mkdir()
    p = _worker(tmp_path, pg_url, "pg-one", 3)
    out = p.communicate(timeout=90)[0].decode()
    assert p.returncode == 0, out
    study = optuna.load_study(study_name="pg-one", storage=_readback(pg_url))
    assert [t.state for t in study.trials] == [TS.COMPLETE] * 3
    assert study.best_trial.user_attrs["schedule"] in out


def test_wrong_password_is_one_line_without_the_password(pg_url: str, capsys) -> None:
    """A role with a password, the wrong one given: one error line, the password masked."""
    import psycopg2

    from lrkit.cli import main

    conn = psycopg2.connect(pg_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS alice")
        cur.execute("CREATE ROLE alice LOGIN PASSWORD 'the-right-one'")
    conn.close()
    hba = Path(str(_SERVER["data"])) / "pg_hba.conf"
    hba.write_text("host all alice 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    run = _SERVER["run"]
    assert callable(run)
    run(str(_SERVER["pg_ctl"]), "-D", str(_SERVER["data"]), "reload")
    url = pg_url.replace("postgres@", "alice:not-it-42@")
    rc = main(["tune", "--demo", "--storage", url, "--no-progress", "--plot", "none"])
    out, err = capsys.readouterr()
    assert rc == 2 and "not-it-42" not in out + err and "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "alice:***@127.0.0.1" in lines[0]
    assert "password authentication failed" in lines[0]


def test_users_who_cannot_write_are_refused_before_any_trial(pg_url: str) -> None:
    """A PostgreSQL user who may read the study but not add trials (SELECT only; INSERT on
    the study tables only; UPDATE but no INSERT; a read-only default transaction) resuming
    it: one line naming the URL, its password masked, before any trial, the stored study
    unchanged and still readable; a user with write grants resumes it."""
    import sqlalchemy

    from lrkit.tune import Task, make_storage, tune

    calls: list[int] = []

    def flat() -> Task:
        def train(schedule: object, report: object) -> float:
            calls.append(1)
            return 1.0

        return Task(name="flat", train=train, total_steps=100)

    name = "pg-grants"
    tune(flat(), storage=pg_url, study_name=name, n_trials=2, seeding="blind")
    engine = sqlalchemy.create_engine(_readback(pg_url), isolation_level="AUTOCOMMIT")
    grants = {
        "reader": ["GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader"],
        "partial": ["GRANT SELECT ON ALL TABLES IN SCHEMA public TO partial",
                    "GRANT INSERT ON studies, study_directions TO partial"],
        "updater": ["GRANT SELECT, UPDATE ON ALL TABLES IN SCHEMA public TO updater"],
        "rotx": ["GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO rotx",
                 "ALTER ROLE rotx SET default_transaction_read_only = on"],
        "writer": ["GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO writer",
                   "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO writer"],
    }  # fmt: skip
    with engine.connect() as c:
        for role, sql in grants.items():
            c.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
            for s in sql:
                c.exec_driver_sql(s)
    engine.dispose()

    def stored() -> list[tuple[object, ...]]:
        study = optuna.load_study(study_name=name, storage=_readback(pg_url))
        return [(t.number, t.state, t.values, t.params, t.user_attrs, t.datetime_start)
                for t in study.trials]  # fmt: skip

    before = stored()
    calls.clear()
    for role in ("reader", "partial", "updater", "rotx"):
        url = pg_url.replace("postgres@", f"{role}:s3cret-pw@")
        with pytest.raises(ValueError) as info:
            tune(flat(), storage=url, study_name=name, n_trials=4, seeding="blind")
        msg = str(info.value)
        assert "\n" not in msg and "s3cret-pw" not in msg and "cannot be written" in msg, msg
        assert msg.startswith(f"storage {url.replace(':s3cret-pw', ':***')}: "), msg
        trials = optuna.load_study(study_name=name, storage=make_storage(url)).trials
        assert len(trials) == 2
    assert calls == [] and stored() == before
    done = tune(flat(), storage=pg_url.replace("postgres@", "writer@"), study_name=name,
                n_trials=4, seeding="blind")  # fmt: skip
    assert len(done.complete_trials) == 4


def test_a_study_lrkit_did_not_create_is_refused_without_the_password(pg_url: str) -> None:
    """Another objective's study on the server: one line naming the study and the storage,
    its password masked, before the range test and any trial; the study unchanged."""
    from lrkit.tune import Task, make_storage, tune

    url = pg_url.replace("postgres@", "postgres:s3cret-pw@")
    theirs = optuna.create_study(study_name="pg-theirs", storage=_readback(pg_url))
    theirs.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=3)

    def stored() -> tuple[object, ...]:
        study = optuna.load_study(study_name="pg-theirs", storage=_readback(pg_url))
        return study.trials, study.user_attrs, study.directions

    before = stored()
    ran: list[str] = []
    task = Task(train=lambda s, r: ran.append("trial") or 1.0, total_steps=20,
                range_test=lambda: ran.append("range test") or (1e-3, 1.0))  # fmt: skip
    for storage in (url, make_storage(url)):
        with pytest.raises(ValueError) as info:
            tune(task, n_trials=2, storage=storage, study_name="pg-theirs")
        shown = (storage if isinstance(storage, str) else storage.url).replace(
            ":s3cret-pw@", ":***@"
        )
        assert str(info.value) == (
            f"study_name 'pg-theirs' in storage {shown} holds trials lrkit did not run (trial 0 "
            "has the parameters x, not lrkit's lr and family); lrkit leaves this study as it "
            "is: give another study_name for a new study"
        )
    assert ran == [] and stored() == before


NO_GRANT_TASK = """
from lrkit.tune import Task

def make():
    def train(schedule, report):
        open("trial-ran", "w").close()
        return 1.0
    return Task(train=train, total_steps=100, range_test=lambda: (1e-3, 1.0), name="nogrant")
"""


def test_a_user_without_grants_on_the_tables_cannot_write_not_lost(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A role that may connect but has no grant on Optuna's tables (Optuna's first read of
    them is denied, and wrapped in its StorageInternalError): one line saying the database
    cannot be written, exit code 2, the password masked; not a lost connection (exit 1)."""
    import sqlalchemy

    from lrkit.cli import main
    from lrkit.tune import make_storage

    make_storage(pg_url)  # Optuna's tables exist, owned by another user
    engine = sqlalchemy.create_engine(_readback(pg_url), isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.exec_driver_sql("DROP ROLE IF EXISTS nogrant")
        c.exec_driver_sql("CREATE ROLE nogrant LOGIN")
    engine.dispose()
    url = pg_url.replace("postgres@", "nogrant:NoGrant4321@")
    with pytest.raises(ValueError) as info:
        make_storage(url)
    msg = str(info.value)
    assert "\n" not in msg and "NoGrant4321" not in msg, msg
    assert msg.startswith(f"storage {url.replace(':NoGrant4321', ':***')}: "), msg
    assert "cannot use the database: it cannot be written (permission denied" in msg, msg

    (tmp_path / "nogranttask.py").write_text(textwrap.dedent(NO_GRANT_TASK))
    monkeypatch.chdir(tmp_path)
    rc = main(["tune", "nogranttask:make", "--trials", "1", "--storage", url,
               "--study", "nogrant", "--no-progress", "--plot", "none"])  # fmt: skip
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert "NoGrant4321" not in out + err and "lost the database connection" not in err
    assert lines[-1].startswith("lrkit tune: error: storage postgresql://nogrant:***@"), err
    assert "cannot be written (permission denied for table" in lines[-1], err
    assert not (tmp_path / "trial-ran").exists()
