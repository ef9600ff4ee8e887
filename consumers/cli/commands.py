"""CLI commands that talk to Redis: the gate worker, operator controls, the SDK's submit.

One module per group: ``worker_commands`` (gate, bench), ``control_commands`` (halt,
resume, release, enable, flag, status), ``sdk_commands`` (submit, deposit, fill,
mark), ``portfolio_commands`` (the registry); the options they share are in
``options``. This module registers them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consumers.cli import control_commands, portfolio_commands, sdk_commands, worker_commands
from consumers.cli.control_commands import (
    cmd_enable,
    cmd_flag,
    cmd_halt,
    cmd_release,
    cmd_resume,
    cmd_status,
)
from consumers.cli.options import add_redis_options
from consumers.cli.sdk_commands import cmd_event, cmd_fill, cmd_submit
from consumers.cli.worker_commands import cmd_bench, cmd_gate

if TYPE_CHECKING:
    from consumers.cli.options import Sub

__all__ = [
    "add_redis_options",
    "cmd_bench",
    "cmd_enable",
    "cmd_event",
    "cmd_fill",
    "cmd_flag",
    "cmd_gate",
    "cmd_halt",
    "cmd_release",
    "cmd_resume",
    "cmd_status",
    "cmd_submit",
    "register",
]


def register(sub: Sub) -> None:
    worker_commands.register(sub)
    control_commands.register(sub)
    sdk_commands.register(sub)
    portfolio_commands.register(sub)
