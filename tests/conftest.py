"""Marks: everything under tests/integration is ``integration`` (real servers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).parent / "integration"

# The suite runs against the servers these name (CI starts them); with a URL unset
# riskgate would start embedded servers, which only the tests about them want.
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/riskgate")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
