"""Processes and leases: who still uses a server (a lease per process, named with its
start time so that a reused pid is not mistaken for it), and the helpers that wait for,
stop and read after server processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from consumers.servers.layout import PINNED, Kind, Layout

# --- leases ---------------------------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or "" elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, started: str) -> bool:
    if _exited(pid):
        return False
    now = _start_time(pid)
    return now is not None and (not started or not now or now == started)


def _lease_name(kind: Kind, pid: int) -> str:
    return f"{kind}.{pid}.{_start_time(pid) or 0}"


def live_leases(layout: Layout, kind: Kind) -> list[str]:
    """The leases on ``kind`` whose process still exists (stale ones are removed)."""
    if not layout.leases.is_dir():
        return []
    live = []
    for lease in layout.leases.glob(f"{kind}.*"):
        _, who, started = [*lease.name.split(".", 2), "", ""][:3]
        if who == PINNED or (who.isdigit() and _alive(int(who), started)):
            live.append(lease.name)
        else:
            lease.unlink(missing_ok=True)
    return sorted(live)


def _add_lease(layout: Layout, name: str) -> None:
    layout.leases.mkdir(parents=True, exist_ok=True)
    (layout.leases / name).touch()


def _pid_from(path: Path) -> int | None:
    try:
        text = path.read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


# --- process helpers -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, 10.0):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _exited(pid: int) -> bool:
    """Gone, or a zombie waiting for init to reap it (a container's init may be slow)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid):
            return True
        time.sleep(0.02)
    return False


def _tail(path: Path, chars: int = 600) -> str:
    try:
        return path.read_text(errors="replace")[-chars:].strip()
    except OSError:
        return f"(no log at {path})"


def _text(done: subprocess.CompletedProcess[bytes]) -> str:
    return (done.stdout + done.stderr).decode(errors="replace")[-600:].strip()
