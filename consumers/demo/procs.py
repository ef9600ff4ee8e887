"""The demo's process tree: riskgate workers as ``python -m consumers.cli ...`` children.

Started like :class:`consumers.bench.kit.WorkerPool` starts gate workers (the same
interpreter, ``-m consumers.cli``, the environment passed down), but for any command, with a
log file each, in their own process group (a terminal's Ctrl-C reaches the demo only,
which then stops the tree in order: SIGTERM, then SIGKILL after a grace period), and
watched: a child that exits while the demo runs fails the demo. No URL is passed on the
command line (it may hold a password): children resolve the same environment, and so
join the same embedded servers through the data directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from consumers.bus.keys import Keys


@dataclass
class Child:
    name: str
    cmd: list[str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]


class Supervisor:
    def __init__(self, keys: Keys, log_dir: Path, config_path: str | None) -> None:
        self.keys = keys
        self.log_dir = log_dir
        self.config_path = config_path
        self.children: list[Child] = []

    def start(
        self, name: str, *args: str, metrics_port: int = 0, consumer: bool = True, **env: str
    ) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "consumers.cli"]
        if self.config_path:
            cmd += ["--config", self.config_path]
        cmd += [*args, "--portfolio", self.keys.portfolio]
        if consumer:  # stream consumers name themselves; the feed reads no stream
            cmd += ["--consumer", name]
        full_env = {
            **os.environ,
            "RISKGATE_PREFIX": self.keys.prefix,
            "RISKGATE_METRICS_PORT": str(metrics_port),
            **env,
        }
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(
            cmd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        child = Child(name, cmd, proc, log_path, log)
        self.children.append(child)
        return child

    def exited(self) -> list[Child]:
        """Children that are no longer running."""
        return [c for c in self.children if c.proc.poll() is not None]

    def stop(self, timeout: float = 30.0) -> dict[str, int]:
        """SIGTERM every child (they finish the batch in hand), SIGKILL stragglers."""
        for c in self.children:
            if c.proc.poll() is None:
                c.proc.send_signal(signal.SIGTERM)
        codes: dict[str, int] = {}
        for c in self.children:
            try:
                codes[c.name] = c.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                c.proc.kill()
                codes[c.name] = c.proc.wait()
            c.log.close()
        self.children.clear()
        return codes

    def kill_all(self) -> None:
        """Second Ctrl-C: no waiting."""
        for c in self.children:
            if c.proc.poll() is None:
                c.proc.kill()

    def tail(self, child: Child, chars: int = 1500) -> str:
        try:
            return child.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""
