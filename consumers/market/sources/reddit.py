"""Reddit: mention counts and a crude sentiment score for the meme stocks (``reddit_api``).

Plain httpx rather than praw: we read one listing per subreddit with an application-only
OAuth token, and praw's own per-process rate limiting (it sleeps on Reddit's headers)
would work against the shared limiter that governs the budget across processes.

* Token: ``POST https://www.reddit.com/api/v1/access_token`` with HTTP basic auth
  (``REDDIT_CLIENT_ID``, ``REDDIT_SECRET``) and ``grant_type=client_credentials``
  (https://github.com/reddit-archive/reddit/wiki/OAuth2#application-only-oauth):
  ``{"access_token", "token_type": "bearer", "expires_in", "scope"}``.
* Posts: ``GET https://oauth.reddit.com/r/{subreddit}/new?limit=100`` (a Listing,
  https://www.reddit.com/dev/api#GET_new): ``{"kind": "Listing", "data": {"children":
  [{"kind": "t3", "data": {"id", "title", "selftext", "created_utc", ...}}]}}``.

Mentions: a post mentions a symbol when its title or text has ``$SYM`` or ``SYM`` as a
whole upper-case word (``$``-prefixed only for symbols that are English words, e.g.
``OPEN``). Score: over the mentioning posts, (bullish - bearish) / (bullish + bearish)
words of :data:`BULLISH` and :data:`BEARISH`; ``bullish_ratio`` their share; no such
word, no score. Documented as crude on purpose: it counts attention, not conviction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from consumers.market.sources.base import (
    Asset,
    Kind,
    MalformedResponse,
    NotConfigured,
    Sentiment,
    Source,
    field_of,
    list_of,
)
from consumers.market.sources.gateway import Gateway

TOKEN_URL = "https://www.reddit.com/api/v1/access_token"
API = "https://oauth.reddit.com"
SUBREDDITS = ("wallstreetbets", "stocks")
WORD_SYMBOLS = frozenset({"OPEN", "AMC"})  # only as $OPEN, $AMC
BULLISH = frozenset({"moon", "calls", "buy", "buying", "long", "squeeze", "bullish", "rocket",
                     "yolo", "hold", "hodl", "🚀"})  # fmt: skip
BEARISH = frozenset({"puts", "sell", "selling", "short", "dump", "crash", "bearish", "bagholder",
                     "overvalued", "rug"})  # fmt: skip
WORDS = re.compile(r"[a-z]+|🚀")
PLACES = Decimal("0.0001")


def mention_pattern(symbol: str) -> re.Pattern[str]:
    if symbol in WORD_SYMBOLS:
        return re.compile(rf"\${re.escape(symbol)}(?![A-Za-z0-9])")
    return re.compile(rf"(?<![A-Za-z0-9$])\$?{re.escape(symbol)}(?![A-Za-z0-9])")


class Reddit(Source):
    name = "reddit_api"
    serves = frozenset({Kind.SENTIMENT})

    def __init__(self, gateway: Gateway, env: Mapping[str, str]) -> None:
        self.gateway = gateway
        self.client_id = env.get("REDDIT_CLIENT_ID", "").strip()
        self.secret = env.get("REDDIT_SECRET", "").strip()
        self._token: tuple[str, datetime] | None = None

    def problem(self) -> str | None:
        missing = [n for n, v in (("REDDIT_CLIENT_ID", self.client_id),
                                  ("REDDIT_SECRET", self.secret)) if not v]  # fmt: skip
        return f"{' and '.join(missing)} not set" if missing else None

    def _bearer(self) -> str:
        why = self.problem()
        if why:
            raise NotConfigured(f"{self.name}: {why}")
        now = self.gateway.clock()
        if self._token is not None and self._token[1] > now:
            return self._token[0]
        body = self.gateway.json(
            self.name, TOKEN_URL, method="POST", data={"grant_type": "client_credentials"},
            auth=(self.client_id, self.secret),
        )  # fmt: skip
        token = field_of(body, "access_token", f"{self.name} token")
        expires = field_of(body, "expires_in", f"{self.name} token")
        if not isinstance(token, str) or not token or not isinstance(expires, int):
            raise MalformedResponse(f"{self.name} token: access_token/expires_in malformed")
        self._token = (token, now + timedelta(seconds=max(0, expires - 60)))
        return token

    def _posts(self, subreddit: str) -> list[tuple[datetime, str]]:
        headers = {"Authorization": f"bearer {self._bearer()}"}
        body = self.gateway.json(
            self.name, f"{API}/r/{subreddit}/new", params={"limit": "100", "raw_json": "1"},
            headers=headers,
        )  # fmt: skip
        what = f"{self.name} r/{subreddit}"
        if field_of(body, "kind", what) != "Listing":
            raise MalformedResponse(f"{what}: kind is not Listing")
        out = []
        for i, child in enumerate(list_of(field_of(field_of(body, "data", what), "children",
                                                   what), what)):  # fmt: skip
            post = field_of(child, "data", f"{what} children[{i}]")
            created = field_of(post, "created_utc", f"{what} children[{i}]")
            if not isinstance(created, int | float) or isinstance(created, bool):
                raise MalformedResponse(f"{what} children[{i}].created_utc is {created!r}")
            text = f"{post.get('title') or ''}\n{post.get('selftext') or ''}"
            out.append((datetime.fromtimestamp(created, UTC), text))
        return out

    def sentiment(self, assets: Sequence[Asset]) -> list[Sentiment]:
        posts = [(sub, at, text) for sub in SUBREDDITS for at, text in self._posts(sub)]
        now = self.gateway.clock()
        out: list[Sentiment] = []
        for asset in assets:
            pattern = mention_pattern(asset.symbol)
            hits = [(sub, at, text) for sub, at, text in posts if pattern.search(text)]
            words = [w for _, _, text in hits for w in WORDS.findall(text.lower())]
            bull = sum(w in BULLISH for w in words)
            bear = sum(w in BEARISH for w in words)
            score = ratio = None
            if bull + bear:
                score = (Decimal(bull - bear) / (bull + bear)).quantize(PLACES)
                ratio = (Decimal(bull) / (bull + bear)).quantize(PLACES)
            out.append(Sentiment(
                time=now, symbol=asset.symbol, platform="reddit", mentions=len(hits),
                score=score, bullish_ratio=ratio,
                metadata={"subreddits": list(SUBREDDITS), "posts_scanned": len(posts),
                          "oldest_post": min((a for _, a, _ in posts), default=now).isoformat()},
            ))  # fmt: skip
        return out
