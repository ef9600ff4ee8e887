"""Where the embedded servers live: the data directory, its :class:`Layout` (lock,
leases, Redis and PostgreSQL directories), the URLs that reach them, and the lock that
serialises start, join, leave and stop."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from consumers.errors import UsageError

Kind = Literal["redis", "postgres"]
KINDS: tuple[Kind, ...] = ("redis", "postgres")
DEFAULT_DATA_DIR = ".riskgate"
DATABASE_NAME = "riskgate"
PG_SUPERUSER = "postgres"
PG_SYSTEM_USER = "pgserver"  # when run as root (postgres refuses root); pgserver's own choice
PG_PORT = 5432  # names the socket file only: no TCP listener
_SOCKET_MAX = 100  # AF_UNIX names are at most 107 bytes on Linux, 103 on macOS
START_TIMEOUT_S = 60.0
PINNED = "pinned"


class EmbeddedError(UsageError):
    """The embedded servers cannot be used: reported as one line, exit status 2."""


def data_dir() -> Path:
    """``$RISKGATE_DATA_DIR`` (set by ``riskgate --data-dir``), else ``./.riskgate``."""
    return Path(os.environ.get("RISKGATE_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve()


def use_data_dir(path: str | None) -> None:
    """``--data-dir``: exported so that every process riskgate starts uses it too."""
    if path:
        os.environ["RISKGATE_DATA_DIR"] = str(Path(path).expanduser().resolve())


# --- paths -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layout:
    root: Path

    @property
    def lock(self) -> Path:
        return self.root / "embedded.lock"

    @property
    def leases(self) -> Path:
        return self.root / "leases"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"

    @property
    def pgdata(self) -> Path:
        return self.root / "postgres"

    def socket_dir(self) -> Path:
        """PostgreSQL's socket directory: PGDATA, or a short one when its path is too long."""
        if len(str(self.pgdata / f".s.PGSQL.{PG_PORT}")) <= _SOCKET_MAX:
            return self.pgdata
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"riskgate-{digest}"

    @property
    def redis_pidfile(self) -> Path:
        return self.redis_dir / "redis.pid"

    @property
    def redis_address(self) -> Path:
        """``port password`` of the running Redis (0600)."""
        return self.redis_dir / "address"


def _redis_address(layout: Layout) -> tuple[int, str] | None:
    try:
        port, password = layout.redis_address.read_text().split()
        return int(port), password
    except (OSError, ValueError):
        return None


def redis_url_for(layout: Layout) -> str:
    found = _redis_address(layout)
    port, password = found if found else (0, "")
    return f"redis://:{password}@127.0.0.1:{port}/0"


def database_url_for(layout: Layout, dbname: str = DATABASE_NAME) -> str:
    return f"postgresql://{PG_SUPERUSER}@/{dbname}?host={layout.socket_dir()}"


@contextlib.contextmanager
def locked(layout: Layout) -> Iterator[None]:
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(layout.lock, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
