"""How reports read (issue 15, items 2 and 5): money to its precision, one-line
decisions, the embedded database named by its socket, URL checks."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from consumers.bus.urls import RedisUrlError, check_redis_url, masked
from consumers.cli import render
from consumers.cli.parser import did_you_mean
from consumers.db.connection import describe_url
from schemas.messages import Decision, Reason, ReasonCode, Side, Status
from tests.builders import base_config

D = Decimal


@pytest.mark.parametrize(
    ("value", "currency", "shown"),
    [
        ("100000.1234567", "USD", "100,000.12 USD"),
        ("0", "USD", "0.00 USD"),
        ("-1234.565", "USD", "-1,234.56 USD"),  # half-even at the cent
        ("99999.995", "", "100,000.00"),
    ],
)
def test_money_when_formatted_then_cents_and_separators(
    value: str, currency: str, shown: str
) -> None:
    """Account-currency amounts: 2 decimals, thousands separated (not 7 decimals)."""
    assert render.money(value, currency) == shown


@pytest.mark.parametrize(
    ("symbol", "quantity", "price", "shown_q", "shown_p"),
    [
        ("BTC/USDT", "0.1", "100000", "0.10000", "100,000.00"),  # lot 0.00001
        ("ETH/USDT", "1.23456", "3900.5", "1.2345", "3,900.50"),  # lot 0.0001: rounded down
        ("NVDA", "10", "132.456", "10", "132.46"),
        ("GBP/JPY", "1000", "200.1234", "1000", "200.12"),  # pip 0.01
        ("USD/TRY", "2000", "42.123456", "2000", "42.1235"),  # pip 0.0001
        ("AMC", "5", "0.0123", "5", "0.01230"),  # under 1: enough places to see it
    ],
)
def test_quantity_and_price_when_formatted_then_asset_precision(
    symbol: str, quantity: str, price: str, shown_q: str, shown_p: str
) -> None:
    """Quantities to the lot size's decimals (never up), prices to the pip or cent."""
    asset = base_config().assets[symbol]
    assert render.quantity(quantity, asset) == shown_q
    assert render.price(price, asset) == shown_p


def _decision(status: Status, approved: str, reasons: tuple[Reason, ...] = ()) -> Decision:
    return Decision(
        intent_id="momo-1", agent_id="momo", symbol="BTC/USDT", side=Side.BUY, status=status,
        requested_quantity=D("3"), approved_quantity=D(approved), stop_price=D("94000"),
        reasons=reasons, checks={}, decided_at=datetime(2026, 12, 1, tzinfo=UTC),
        config_hash="abc", price=D("100000"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("decision", "line"),
    [
        (
            _decision(Status.APPROVED, "3"),
            "momo-1: approved buy 3.00000 BTC/USDT @ 100,000.00 stop 94,000.00",
        ),
        (
            _decision(
                Status.RESIZED,
                "1",
                (Reason(code=ReasonCode.MAX_ORDER_QUANTITY, message="at most 1"),),
            ),
            "momo-1: resized buy 1.00000 of 3.00000 BTC/USDT @ 100,000.00 stop 94,000.00"
            " - max_order_quantity: at most 1",
        ),
        (
            _decision(
                Status.REJECTED,
                "0",
                (
                    Reason(code=ReasonCode.TRADING_HALTED, message="halted"),
                    Reason(code=ReasonCode.NO_EQUITY, message="equity 0"),
                ),
            ),
            "momo-1: rejected buy 0.00000 of 3.00000 BTC/USDT @ 100,000.00"
            " - trading_halted: halted; no_equity: equity 0",
        ),
    ],
)
def test_decision_line_when_rendered_then_one_line_with_status_first(
    decision: Decision, line: str
) -> None:
    """`submit --wait` prints this one line (status near the start, not on line 6)."""
    assert render.decision_line(decision, base_config()) == line


def test_describe_url_when_unix_socket_then_database_on_socket_not_port() -> None:
    """The embedded PostgreSQL reads `riskgate on socket DIR`, not `DIR:5432/riskgate`."""
    url = "postgresql://postgres@/riskgate?host=/srv/x/.riskgate/postgres"
    assert describe_url(url) == "riskgate on socket /srv/x/.riskgate/postgres"
    assert describe_url("postgresql://u:secret@db.example:6543/prod") == "db.example:6543/prod"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://h:6379", "did you mean redis://h:6379/0?"),
        ("https://h", "did you mean redis://h:6379/0?"),
        ("localhost:6379", "is not a Redis one"),
        ("redis://", "no host"),
        ("redis://h:0/0", "port '0' is not a number from 1 to 65535"),
        ("redis://h/db1", "database 'db1' is not a number"),
        ("unix://", "needs the socket's path"),
    ],
)
def test_check_redis_url_when_bad_then_error_names_it_and_the_form(url: str, problem: str) -> None:
    """A bad Redis URL is a RedisUrlError (a UsageError and a ValueError) with the form."""
    with pytest.raises(RedisUrlError) as caught:
        check_redis_url(url, "REDIS_URL")
    text = str(caught.value)
    assert text.startswith("REDIS_URL ") and problem in text and "expected redis://" in text
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "url",
    ["redis://h", "redis://:pw@h:6380/3", "rediss://u:pw@h:6380/0?ssl_ca_certs=/ca.pem",
     "unix:///run/redis.sock?db=2", "redis://[::1]:6379/0"],
)  # fmt: skip
def test_check_redis_url_when_good_then_returned_unchanged(url: str) -> None:
    """Good URLs pass as they are."""
    assert check_redis_url(url) == url


def test_masked_when_url_has_a_password_then_hidden() -> None:
    """Messages never show a password."""
    assert masked("redis://:s3cret@h:6380/1") == "redis://:***@h:6380/1"
    assert masked("redis://user:s3cret@h/0") == "redis://user:***@h/0"


@pytest.mark.parametrize(
    ("word", "pool", "guess"),
    [
        ("nvda", ["NVDA", "TSLA"], "NVDA"),
        ("stauts", ["status", "submit"], "status"),
        ("trendy", ["trending", "sideways"], "trending"),
        ("btc/usd", ["BTC/USDT", "ETH/USDT"], "BTC/USDT"),
        ("zzzz", ["NVDA"], None),
    ],
)
def test_did_you_mean_when_close_then_suggested(
    word: str, pool: list[str], guess: str | None
) -> None:
    """Suggestions: another case first, else the nearest spelling, else nothing."""
    assert did_you_mean(word, pool) == guess
