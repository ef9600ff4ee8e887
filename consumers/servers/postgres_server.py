"""The embedded PostgreSQL: initdb on first use, then ``pg_ctl start`` on a Unix socket
only (trust authentication); as a system user of its own when run as root (PostgreSQL
refuses root); stopped by ``pg_ctl stop -m fast``."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import psycopg

from consumers.servers.binaries import postgres_bin_dir
from consumers.servers.layout import (
    PG_PORT,
    PG_SUPERUSER,
    PG_SYSTEM_USER,
    START_TIMEOUT_S,
    EmbeddedError,
    Layout,
    database_url_for,
)
from consumers.servers.processes import _alive, _pid_from, _tail, _text


def _pg_user() -> str | None:
    """The system user PostgreSQL runs as: ours, unless we are root."""
    if os.geteuid() != 0:
        return None
    user = os.environ.get("RISKGATE_PG_SYSTEM_USER", PG_SYSTEM_USER)
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
            check=True,
            capture_output=True,
        )
    return user


def _make_reachable(path: Path, user: str) -> None:
    """As root: the data directory owned by ``user`` and its parents traversable (o+x)."""
    entry = pwd.getpwnam(user)
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _pg_run(
    args: list[str], user: str | None, timeout: float
) -> subprocess.CompletedProcess[bytes]:
    """Run a PostgreSQL binary; as ``user`` (its uid, gid and groups only) when given."""
    uid = gid = None
    groups: list[int] | None = None
    if user is not None:
        entry = pwd.getpwnam(user)
        uid, gid, groups = entry.pw_uid, entry.pw_gid, []
    return subprocess.run(
        args,
        user=uid,
        group=gid,
        extra_groups=groups,
        capture_output=True,
        timeout=timeout,
        start_new_session=True,
        check=False,
        cwd="/",
    )


def _pg_ready(layout: Layout) -> bool:
    pid = _pid_from(layout.pgdata / "postmaster.pid")
    if pid is None or not _alive(pid, ""):
        return False
    try:
        psycopg.connect(
            database_url_for(layout, "postgres"), connect_timeout=2, autocommit=True
        ).close()
    except psycopg.Error:
        return False
    return True


def start_postgres(layout: Layout) -> None:
    """initdb on first use, then ``pg_ctl start`` unless running (call with the lock held)."""
    if _pg_ready(layout):
        return
    bindir = postgres_bin_dir()
    user = _pg_user()
    sockets = layout.socket_dir()
    for path in (layout.pgdata, sockets):
        if user is not None:
            _make_reachable(path, user)
        else:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = layout.pgdata / "log"
    if not (layout.pgdata / "PG_VERSION").exists():
        done = _pg_run(
            [str(bindir / "initdb"), "-D", str(layout.pgdata), "--auth=trust",
             "--encoding=UTF8", "--locale=C", "-U", PG_SUPERUSER],
            user, START_TIMEOUT_S * 2,
        )  # fmt: skip
        if done.returncode != 0:
            raise EmbeddedError(f"embedded PostgreSQL initdb failed: {_text(done)}")
    options = f"-c listen_addresses='' -k {sockets} -p {PG_PORT}"
    done = _pg_run(
        [str(bindir / "pg_ctl"), "-D", str(layout.pgdata), "-l", str(log), "-w",
         "-t", str(int(START_TIMEOUT_S)), "-o", options, "start"],
        user, START_TIMEOUT_S + 10,
    )  # fmt: skip
    if done.returncode != 0 or not _pg_ready(layout):
        raise EmbeddedError(f"embedded PostgreSQL did not start: {_text(done)} {_tail(log)}")


def stop_postgres(layout: Layout) -> bool:
    """``pg_ctl stop -m fast``; True if a server was running."""
    if not (layout.pgdata / "postmaster.pid").exists():
        return False
    bindir = postgres_bin_dir()
    owner = layout.pgdata.stat().st_uid
    user = pwd.getpwuid(owner).pw_name if os.geteuid() == 0 and owner != 0 else None
    done = _pg_run(
        [str(bindir / "pg_ctl"), "-D", str(layout.pgdata), "-w", "-t", "60", "-m", "fast", "stop"],
        user,
        90,
    )
    return done.returncode == 0
