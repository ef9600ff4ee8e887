"""Which servers a command talks to, said whenever it is not the one ``REDIS_URL`` /
``DATABASE_URL`` names, so that nobody mistakes an empty embedded server for production.

The rule (README, "Which server"):

1. A command that uses an embedded server prints one line on stderr the first time it
   does: ``riskgate: using the embedded Redis in ./.riskgate/redis (REDIS_URL is not
   set)``. (A ``--redis-url``/``--database-url`` on the command line is the operator's
   own choice, said in the command itself: not announced.)
2. Operator writes (``deposit``, ``halt``, ``resume``, ``enable``, ``submit``, ... every
   command registered with :func:`consumers.cli.options.writes`) refuse to run against
   an embedded server unless ``--embedded`` (or ``RISKGATE_EMBEDDED=1``) says that is
   meant: a halt or a deposit that lands on the wrong server does its harm silently
   (production keeps trading, the money is not there), and a banner in a script's
   stderr is easy to miss. Reads and workers only say where they are.
3. ``status`` of a portfolio that has never seen an event says so and exits 1
   (:mod:`consumers.cli.control_commands`).

``riskgate demo`` is the embedded servers' own use: it runs, and says where.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from consumers.bus.urls import check_redis_url, masked
from consumers.db.connection import check_database_url
from consumers.errors import UsageError
from consumers.servers import embedded
from consumers.servers.layout import Kind

OPT_IN_ENV = "RISKGATE_EMBEDDED"
_ENV = {"redis": "REDIS_URL", "postgres": "DATABASE_URL"}
_NAME = {"redis": "Redis", "postgres": "PostgreSQL"}
_OPTION = {"redis": "redis_url", "postgres": "database_url"}


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (``./.riskgate``)."""
    try:
        return "./" + str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def embedded_line(kind: Kind, where: Path) -> str:
    return f"using the embedded {_NAME[kind]} in {shown(where)} ({_ENV[kind]} is not set)"


def _announce(kind: Kind, where: Path) -> None:
    print(f"riskgate: {embedded_line(kind, where)}", file=sys.stderr, flush=True)


def _embedded_dir(kind: Kind) -> Path:
    layout = embedded.Layout(embedded.data_dir())
    return layout.redis_dir if kind == "redis" else layout.pgdata


def _uses(args: argparse.Namespace) -> list[Kind]:
    """The servers this command connects to (by the URL options it has)."""
    return [kind for kind in ("redis", "postgres") if hasattr(args, _OPTION[kind])]


def _on_embedded(args: argparse.Namespace, kind: Kind) -> bool:
    return not getattr(args, _OPTION[kind]) and not os.environ.get(_ENV[kind])


def describe_redis(args: argparse.Namespace) -> str:
    """Where this command's Redis is, for messages: a URL (password hidden) and where it
    came from, or the embedded server's directory."""
    if getattr(args, "redis_url", None):
        return f"{masked(args.redis_url)} (--redis-url)"
    if os.environ.get("REDIS_URL"):
        return f"{masked(os.environ['REDIS_URL'])} (REDIS_URL)"
    return f"the embedded Redis in {shown(_embedded_dir('redis'))}"


def prepare(args: argparse.Namespace) -> None:
    """Before a command runs: URLs checked, the banner hooked, writes guarded."""
    uses = _uses(args)
    checks = {"redis": check_redis_url, "postgres": check_database_url}
    for kind in uses:
        given = getattr(args, _OPTION[kind])
        if given:
            checks[kind](given, "--" + _OPTION[kind].replace("_", "-"))
        elif os.environ.get(_ENV[kind]):
            checks[kind](os.environ[_ENV[kind]], _ENV[kind])
    embedded.on_first_use(_announce)
    writes = getattr(args, "writes", False)
    if writes(args) if callable(writes) else writes:
        _guard_writes(args, uses)


def _guard_writes(args: argparse.Namespace, uses: list[Kind]) -> None:
    if getattr(args, "embedded", False) or os.environ.get(OPT_IN_ENV, "") not in ("", "0"):
        return
    for kind in uses:
        if _on_embedded(args, kind):
            words = (
                args.command,
                getattr(args, "phase_command", None),
                getattr(args, "action", None),
            )
            what = " ".join(w for w in words if isinstance(w, str))
            option = "--" + _OPTION[kind].replace("_", "-")
            raise UsageError(
                f"refusing to run `{what}` on the embedded {_NAME[kind]} in "
                f"{shown(_embedded_dir(kind))}: {_ENV[kind]} is not set. Set {_ENV[kind]} "
                f"(or {option}) to the server you mean, or add --embedded to use the "
                "embedded one"
            )
