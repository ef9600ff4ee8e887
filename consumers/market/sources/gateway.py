"""What every request of every adapter goes through: the shared limiter (the source's
budget in Redis), the usage counters, one httpx client with timeouts, and the mapping
of transport failures to :class:`SourceFailed` with a reason that never carries a
credential (query-string keys are redacted from anything that reaches a log).

Tests pass an httpx transport (respx, or ``httpx.MockTransport``) that replays the
providers' recorded responses: the adapters run unchanged, at the HTTP layer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from consumers.market.sources.base import Clock, MalformedResponse, SourceFailed
from consumers.market.sources.limiter import Limit, SharedLimiter

BODY_SHOWN = 160  # characters of an error body kept in the reason


@dataclass
class Usage:
    """One source's counters in this process since the last flush to the registry."""

    requests: int = 0
    errors: int = 0
    limited: int = 0
    last_request_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None

    def empty(self) -> bool:
        return not (self.requests or self.errors or self.limited or self.last_success_at)


class UsageBook:
    """Usage per source, thread-safe; ``take()`` hands the counters over and resets them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage: dict[str, Usage] = {}

    def _of(self, source: str) -> Usage:
        return self._usage.setdefault(source, Usage())

    def request(self, source: str, at: datetime) -> None:
        with self._lock:
            u = self._of(source)
            u.requests += 1
            u.last_request_at = at

    def success(self, source: str, at: datetime) -> None:
        with self._lock:
            self._of(source).last_success_at = at

    def error(self, source: str, reason: str, at: datetime) -> None:
        with self._lock:
            u = self._of(source)
            u.errors += 1
            u.last_error_at, u.last_error = at, reason

    def limited(self, source: str) -> None:
        with self._lock:
            self._of(source).limited += 1

    def take(self) -> dict[str, Usage]:
        with self._lock:
            taken, self._usage = self._usage, {}
        return {k: v for k, v in taken.items() if not v.empty()}


def redact(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


class Gateway:
    def __init__(
        self,
        limiter: SharedLimiter | None,
        limits: Mapping[str, Limit],
        usage: UsageBook,
        clock: Clock,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 10.0,
        secrets: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.limiter = limiter
        self.limits = dict(limits)
        self.usage = usage
        self.clock = clock
        self.secrets = secrets
        self.client = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout_s),
            headers={"User-Agent": "riskgate-feed/0.1 (+https://github.com/riskgate)"},
            follow_redirects=False,
        )

    def admit(self, source: str) -> None:
        """One request of ``source``'s budget (waits; RateLimited past the limiter's wait)."""
        if self.limiter is not None:
            limit = self.limits.get(source)
            if limit is not None:
                try:
                    self.limiter.acquire(source, limit)
                except Exception:
                    self.usage.limited(source)
                    raise
        self.usage.request(source, self.clock())

    def clean(self, text: str) -> str:
        return redact(text, self.secrets())

    def request(
        self,
        source: str,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        missing_ok: bool = False,
    ) -> httpx.Response | None:
        """The response, or None for a 404 when ``missing_ok`` (one unknown symbol is
        not the source failing: the router asks the next source for just that one)."""
        self.admit(source)
        try:
            resp = self.client.request(
                method, url, params=params, headers=headers, data=data, auth=auth
            )
        except httpx.TimeoutException:
            raise SourceFailed(f"{source}: timed out") from None
        except httpx.HTTPError as exc:
            raise SourceFailed(self.clean(f"{source}: {type(exc).__name__}: {exc}")) from None
        if resp.status_code == 404 and missing_ok:
            return None
        if resp.status_code >= 400:
            body = " ".join(resp.text.split())[:BODY_SHOWN]
            what = "rate limited by the provider" if resp.status_code == 429 else "error"
            raise SourceFailed(self.clean(f"{source}: HTTP {resp.status_code} {what}: {body}"))
        return resp

    def json(self, source: str, url: str, **kw: Any) -> Any:
        """The JSON body (None for a tolerated 404, see :meth:`request`)."""
        resp = self.request(source, kw.pop("method", "GET"), url, **kw)
        if resp is None:
            return None
        try:
            return resp.json()
        except ValueError:
            body = " ".join(resp.text.split())[:BODY_SHOWN]
            raise MalformedResponse(self.clean(f"{source}: not JSON: {body!r}")) from None

    def text(self, source: str, url: str, **kw: Any) -> str:
        resp = self.request(source, "GET", url, **kw)
        assert resp is not None  # only missing_ok may answer None
        return resp.text

    def close(self) -> None:
        self.client.close()
