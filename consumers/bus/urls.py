"""Redis URLs checked before anything connects: a bad one is one line naming the URL (its
password hidden), what is wrong and the form expected, never a traceback from deep in
redis-py. :func:`consumers.bus.runtime.redis_url` calls :func:`check_redis_url`; the CLI
calls it first with the option's name, so the message says where the URL came from."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from consumers.errors import UsageError

SCHEMES = ("redis", "rediss", "unix")
#: checked by their own parser (consumers/bus/sentinel.py), which names what is wrong
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
FORM = (
    "redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://... (TLS), unix:///PATH/TO/SOCKET or "
    "redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE[/DB]"
)
_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:@/]*):[^@/]*@")
#: what a server has unless its ``databases`` setting says otherwise
DEFAULT_DATABASES = 16


class RedisUrlError(UsageError, ValueError):
    """A Redis URL that cannot work: for the CLI a usage error (exit 2), for SDK callers
    a ValueError."""


def masked(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    return _PASSWORD.sub(r"\1:***@", url)


def _port_text(netloc: str) -> str:
    hostport = netloc.rsplit("@", 1)[-1]
    if hostport.startswith("["):  # [::1]:6379
        return hostport.rsplit("]", 1)[-1].lstrip(":")
    return hostport.rsplit(":", 1)[1] if ":" in hostport else ""


def _problem(url: str) -> str | None:
    """What is wrong with ``url``, or None."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme.lower() in SENTINEL_SCHEMES:
        return None
    if parts.scheme not in SCHEMES:
        if parts.scheme in ("http", "https", "tcp") and parts.hostname:
            port = _port_text(parts.netloc) or "6379"
            return f"not a Redis URL; did you mean redis://{parts.hostname}:{port}/0?"
        return f"scheme {parts.scheme + '://' if parts.scheme else '(none)'} is not a Redis one"
    if parts.scheme == "unix":
        return None if parts.path else "a unix:// URL needs the socket's path"
    if not parts.hostname:
        return "no host"
    port = _port_text(parts.netloc)
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        return f"port {port!r} is not a number from 1 to 65535"
    db = parts.path.lstrip("/")
    if not db:
        db = (parse_qs(parts.query).get("db") or [""])[0]
    if db and not db.isdigit():
        top = DEFAULT_DATABASES - 1
        return f"database {db!r} is not a number (the database index: 0 to {top} by default)"
    return None


def check_redis_url(url: str, source: str = "Redis URL") -> str:
    """``url`` if it can be a Redis URL, else :class:`RedisUrlError` naming ``source``."""
    problem = _problem(url)
    if problem is not None:
        raise RedisUrlError(f"{source} {masked(url)}: {problem} (expected {FORM})")
    return url


def database_out_of_range(url: str, source: str = "Redis URL") -> RedisUrlError:
    """The server refused the URL's database index (``DB index is out of range``)."""
    parts = urlsplit(url)
    db = parts.path.lstrip("/") or (parse_qs(parts.query).get("db") or ["0"])[0]
    return RedisUrlError(
        f"{source} {masked(url)}: the server has no database {db} (expected a database "
        f"index below its `databases` setting, {DEFAULT_DATABASES} by default: /0 to "
        f"/{DEFAULT_DATABASES - 1})"
    )
