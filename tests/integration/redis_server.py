"""A private ``redis-server`` on a free port with its own data dir, for tests that need
their own server: ACL files, TLS, restarts, kills. Never touches the shared one.

    with RedisServer(tmp_path) as server:           # plain
        client = Redis.from_url(server.url)
    with RedisServer(tmp_path, aclfile=path) as server:
        ...
    certs = make_tls_certs(tmp_path / "tls")        # CA, server and client certs
    with RedisServer(tmp_path, tls=certs) as server:
        Redis.from_url(server.url + certs.query())  # rediss://127.0.0.1:PORT/0?...

``stop()``/``start()`` keep the port and the dir (``restart()`` for fault tests; pass
``--appendonly yes`` in ``args`` to keep data across it); ``kill()`` is SIGKILL.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from consumers.errors import UsageError
from consumers.servers.binaries import system_binary


def _system_redis_server() -> str:
    """The first redis-server on PATH that is Redis 7 or later (see
    :func:`consumers.servers.binaries.system_binary`); none: the first on PATH, which
    then fails with words of its own."""
    try:
        return system_binary("redis-server")
    except UsageError:
        return shutil.which("redis-server") or "redis-server"


REDIS_SERVER = _system_redis_server()
OPENSSL = shutil.which("openssl") or "openssl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files from :func:`make_tls_certs`; SANs cover 127.0.0.1 and localhost."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def query(self, *, client_cert: bool = True) -> str:
        """redis-py URL parameters: verify against our CA, present the client cert."""
        params = [f"ssl_ca_certs={quote(str(self.ca_cert))}", "ssl_cert_reqs=required"]
        if client_cert:
            params += [
                f"ssl_certfile={quote(str(self.client_cert))}",
                f"ssl_keyfile={quote(str(self.client_key))}",
            ]
        return "?" + "&".join(params)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_tls_certs(directory: Path, *, name: str = "riskgate-test") -> TlsFiles:
    """A throwaway CA and a server and a client certificate signed by it (EC P-256)."""
    directory.mkdir(parents=True, exist_ok=True)
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", f"/CN={name}-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    for role, usage in (("server", "serverAuth"), ("client", "clientAuth")):
        ext = directory / f"{role}.ext"
        ext.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={usage}\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid,issuer\n"
        )
        _openssl(
            "req", *curve, "-keyout", f"{role}.key", "-out", f"{role}.csr",
            "-subj", f"/CN={name}-{role}", cwd=directory,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{role}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{role}.crt", "-days", "2", "-extfile", ext.name,
            cwd=directory,
        )  # fmt: skip
    d = directory
    return TlsFiles(
        d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key"
    )


class RedisServer:
    def __init__(
        self,
        directory: Path,
        *,
        aclfile: Path | None = None,
        tls: TlsFiles | None = None,
        args: tuple[str, ...] = (),
        start_timeout: float = 20.0,
    ) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.aclfile = aclfile
        self.tls = tls
        self.args = args
        self.start_timeout = start_timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "redis.log"

    @property
    def url(self) -> str:
        """``redis://`` or, with TLS, ``rediss://`` (add ``tls.query()`` for the CA)."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def url_for(self, user: str, password: str) -> str:
        scheme = "rediss" if self.tls else "redis"
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}@"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        cmd = [
            REDIS_SERVER, "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--save", "", "--appendonly", "no", "--logfile", str(self.log),
            "--daemonize", "no", "--protected-mode", "no",
        ]  # fmt: skip
        if self.tls:
            cmd += [
                "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.server_cert),
                "--tls-key-file", str(self.tls.server_key),
                "--tls-ca-cert-file", str(self.tls.ca_cert),
                "--tls-auth-clients", "yes",
            ]  # fmt: skip
        else:
            cmd += ["--port", str(self.port)]
        if self.aclfile:
            cmd += ["--aclfile", str(self.aclfile)]
        return [*cmd, *self.args]

    def start(self) -> RedisServer:
        """Start (on a free port the first time, the same port after a stop)."""
        if self.proc is not None:
            raise RuntimeError("redis-server is already running")
        for attempt in range(5):
            if self.port == 0 or attempt:
                self.port = free_port()
            offset = self.log.stat().st_size if self.log.exists() else 0
            self.proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ready(offset):
                return self
            self._reap()
            if "Address already in use" not in self._log_since(offset):
                break
        raise RuntimeError(f"redis-server did not start:\n{self._log_since(0)[-2000:]}")

    def _log_since(self, offset: int) -> str:
        if not self.log.exists():
            return ""
        with self.log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def _wait_ready(self, offset: int) -> bool:
        deadline = time.monotonic() + self.start_timeout
        assert self.proc is not None
        while time.monotonic() < deadline:
            if "Ready to accept connections" in self._log_since(offset):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.02)
        return False

    def _reap(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=30)
            self.proc = None

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop the server (SIGTERM: clean shutdown); returns its exit status."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=30)

    def kill(self) -> int | None:
        return self.stop(signal.SIGKILL)

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
