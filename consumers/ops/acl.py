"""Redis ACL users for riskgate: one user per role and portfolio, least privilege.

Users are named ``<role>-<portfolio>`` (``agent-main``, ``gate-main``, ...), so a
credential never reaches past its portfolio's keys. Roles:

- ``agent``: XADD to ``intents``; GET ``decided:<id>``; XRANGE/XREVRANGE/XREAD on
  ``decisions``. Nothing else: it cannot read intents, orders or other portfolios.
- ``executor``: consume ``orders`` with its own group (XGROUP CREATE, XREADGROUP,
  XACK, XPENDING, XCLAIM, XAUTOCLAIM, XINFO); XADD to ``events``; SET/GET its
  ``handed:<group>:<intent id>`` dedupe markers.
- ``gate``: the commands the gate worker runs (streams, the state/control hashes,
  markers, EVALSHA of the commit script, MULTI/EXEC) on its portfolio's keys only.
- ``audit``: consume ``decisions`` (group ``audit``).
- ``phase``: consume ``events`` (group ``phase``), read ``control``, publish on
  ``phases`` and enable phases (HSET ``control`` + HINCRBY ``state`` in MULTI).
- ``operator``: every non-admin, non-dangerous data command on its portfolio's keys
  (controls, status, deposits, marks, correlations, clean-up); no scripting, pub/sub,
  key enumeration (SCAN, RANDOMKEY) or client management.

Plus one ``admin`` user (all keys and commands: ACL LOAD, INFO, backups), which no
riskgate process uses, and the ``default`` user switched off, with no password and no
rights: a client that does not name a user gets nothing, instead of silently running
with whatever ``default`` allows.

Each capability is a Redis 7 *selector* (``(cmds keys)``): commands are allowed only
on the keys of their own selector, so "XADD on events" never becomes "XADD on
orders" as it would with flat per-user command and key lists. Key patterns come from
:class:`consumers.bus.keys.Keys`; ``%R~``/``%W~`` narrow a key to reads or writes.

The file holds only SHA-256 password hashes (``#<hex>``). Passwords come from the
environment or are generated; generated ones are written only to a 0600 secrets file
(``acl_passwords.py``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from consumers.bus.keys import Keys
from consumers.ops.acl_passwords import (
    MIN_PASSWORD_CHARS,
    PASSWORD_ENV_PREFIX,
    AclError,
    Password,
    env_var,
    read_secrets,
    resolve_passwords,
    secrets_text,
    write_private,
)

__all__ = [
    "BASE_COMMANDS",
    "CLUSTER_CLIENT_COMMANDS",
    "CONSUME",
    "DEFAULT_ADMIN",
    "GATE_COMMANDS",
    "MIN_PASSWORD_CHARS",
    "OPERATOR_COMMANDS",
    "PASSWORD_ENV_PREFIX",
    "ROLES",
    "SAFE_NAME",
    "SAFE_PREFIX",
    "TRANSACTION",
    "AclError",
    "AclPlan",
    "AclReport",
    "Grant",
    "Password",
    "env_var",
    "grants",
    "password_hash",
    "read_secrets",
    "resolve_passwords",
    "role_line",
    "root_commands",
    "secrets_text",
    "user_line",
    "user_name",
    "write_acl",
    "write_private",
]

ROLES = ("agent", "executor", "gate", "audit", "phase", "operator")
DEFAULT_ADMIN = "admin"
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SAFE_PREFIX = re.compile(r"^[A-Za-z0-9_.-]+$")  # no glob, quote or ACL syntax chars

#: Every user may ping and pick a database (connection health checks, URLs with /N), and
#: read Redis's clock (TIME): the gate decides by it, the CLI and SDK date things by it.
#: And what a Redis Cluster client needs: ask whether the server is a cluster node
#: (CLUSTER INFO), learn the slots (CLUSTER SLOTS/SHARDS), where a command's keys are
#: (COMMAND, COMMAND GETKEYS) and follow an ASK redirect (ASKING). Key-less, harmless.
BASE_COMMANDS = ("+ping", "+hello", "+select", "+time")
CLUSTER_CLIENT_COMMANDS = (
    "+cluster|info",
    "+cluster|slots",
    "+cluster|shards",
    "+command",
    "+asking",
)
#: Consuming a stream with a consumer group, as riskgate's workers and SDK do.
CONSUME = (
    "+xreadgroup",
    "+xack",
    "+xpending",
    "+xclaim",
    "+xautoclaim",
    "+xgroup|create",
    "+xgroup|createconsumer",
    "+xinfo|groups",
    "+xinfo|consumers",
    "+xinfo|stream",
    "+xlen",
)
TRANSACTION = ("+multi", "+exec", "+discard")
GATE_COMMANDS = (
    *CONSUME,
    "+xadd",
    "+xtrim",
    "+xrange",
    "+xrevrange",
    "+hgetall",
    "+hget",
    "+hset",
    "+hdel",
    "+hincrby",
    "+get",
    "+set",
    "+exists",
    "+type",  # the commit script checks each key's type before its first write
    "+xdel",  # a durable gate moves its outbox to the decisions and orders streams
    "+evalsha",
    "+script|load",
    "+script|exists",
)
OPERATOR_COMMANDS = (
    "+@all",
    "-@admin",
    "-@dangerous",
    "-@scripting",
    "-@pubsub",
    "-scan",
    "-randomkey",
    "-client",
    "+client|setname",
    "+client|getname",
    "+client|id",
    "+client|info",
)


@dataclass(frozen=True, slots=True)
class Grant:
    """One selector: ``commands`` allowed on these keys (read, write, or both)."""

    commands: tuple[str, ...]
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    read_write: tuple[str, ...] = ()

    def rule(self) -> str:
        keys = [f"%R~{k}" for k in self.read] + [f"%W~{k}" for k in self.write]
        return "(" + " ".join([*keys, *(f"~{k}" for k in self.read_write), *self.commands]) + ")"


def _check_prefix(keys: Keys) -> None:
    if not SAFE_PREFIX.match(keys.prefix):
        raise AclError(f"key prefix {keys.prefix!r}: ACL files need A-Za-z0-9_.- only")


def grants(role: str, keys: Keys) -> tuple[Grant, ...]:
    """What ``role`` may do on ``keys``' portfolio, as selectors."""
    _check_prefix(keys)
    everything = keys.base + "*"
    if role == "agent":
        return (
            Grant(("+xadd",), write=(keys.intents,)),
            Grant(("+get",), read=(keys.decided("*"),)),
            Grant(("+xrange", "+xrevrange", "+xread"), read=(keys.decisions,)),
        )
    if role == "executor":
        return (
            Grant(CONSUME, read_write=(keys.orders,)),
            Grant(("+xadd",), write=(keys.events,)),
            # the SDK's per-group dedupe of orders by intent id
            Grant(("+set", "+get"), read_write=(keys.handed("*", "*"),)),
        )
    if role == "gate":
        return (
            Grant(GATE_COMMANDS, read_write=(everything,)),
            # its lease (consumers/bus/lease.py): renewed by PEXPIRE, released by DEL,
            # both inside compare scripts; on no other key
            Grant(("+pexpire", "+del", "+pttl"), read_write=(keys.lease,)),
        )
    if role == "audit":
        return (Grant(CONSUME, read_write=(keys.decisions,)),)
    if role == "phase":
        return (
            Grant(CONSUME, read_write=(keys.events,)),
            Grant(("+hgetall", "+hget"), read=(keys.control,)),
            Grant(("+hset",), write=(keys.control,)),
            Grant(("+hincrby",), read_write=(keys.state,)),
            Grant(("+xadd",), write=(keys.changes,)),  # a bump's change-log entry
            Grant(("+xadd", "+xrange", "+xrevrange"), read_write=(keys.phases,)),
        )
    if role == "operator":
        return (
            Grant(OPERATOR_COMMANDS, read_write=(everything,)),
            # `riskgate deposit` registers the portfolio it funds (--all-portfolios)
            Grant(("+sadd", "+smembers"), read_write=(keys.registry,)),
        )
    raise AclError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")


def root_commands(role: str) -> tuple[str, ...]:
    """Key-less commands outside any selector: health checks, MULTI/EXEC where needed."""
    extra: tuple[str, ...] = TRANSACTION if role in ("gate", "phase") else ()
    if role == "gate":  # a durable gate waits for its replicas (--replicas: WAIT);
        extra += ("+wait",)  # --aof's WAITAOF (Redis 7.2+) is added by hand: 7.0 lacks it
    return BASE_COMMANDS + CLUSTER_CLIENT_COMMANDS + extra


def user_name(role: str, portfolio: str) -> str:
    return f"{role}-{portfolio}"


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def user_line(name: str, password: str, rules: Sequence[str]) -> str:
    return " ".join(["user", name, "reset", "on", "#" + password_hash(password), *rules])


def role_line(role: str, keys: Keys, password: str) -> str:
    rules = ["resetchannels", *root_commands(role), *(g.rule() for g in grants(role, keys))]
    return user_line(user_name(role, keys.portfolio), password, rules)


# -- the files ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AclPlan:
    keys: tuple[Keys, ...]
    roles: tuple[str, ...]
    admin: str

    def __post_init__(self) -> None:
        for role in self.roles:
            if role not in ROLES:
                raise AclError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        if not SAFE_NAME.match(self.admin) or self.admin == "default":
            raise AclError(f"admin user name {self.admin!r} must be 1-64 chars of A-Za-z0-9_.-")
        for keys in self.keys:
            _check_prefix(keys)
        if self.admin in self.users()[1:]:
            raise AclError(f"admin user name {self.admin!r} clashes with a role user")

    def role_users(self) -> list[tuple[str, Keys, str]]:
        return [(r, k, user_name(r, k.portfolio)) for k in self.keys for r in self.roles]

    def users(self) -> list[str]:
        return [self.admin, *(name for _, _, name in self.role_users())]

    def render(self, passwords: Mapping[str, Password]) -> str:
        # Redis refuses comment lines in ACL files: user lines only.
        lines = [
            "user default reset resetchannels off",
            user_line(self.admin, passwords[self.admin].value, ["~*", "&*", "+@all"]),
        ]
        lines += [role_line(r, k, passwords[name].value) for r, k, name in self.role_users()]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class AclReport:
    out: Path
    secrets: Path | None
    sources: dict[str, str]  # user -> where its password came from (never the value)


def write_acl(
    plan: AclPlan,
    out: Path,
    secrets_path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> AclReport:
    """Write the ACL file (0600) and, if any password is not from the env, the secrets file."""
    env = os.environ if environ is None else environ
    if out.resolve() == secrets_path.resolve():
        raise AclError("the ACL file and the secrets file must be different files")
    passwords = resolve_passwords(plan.users(), env, read_secrets(secrets_path), overrides)
    kept = any(p.kept_in_secrets_file for p in passwords.values())
    if kept:
        write_private(secrets_path, secrets_text(passwords))
    write_private(out, plan.render(passwords))
    return AclReport(
        out, secrets_path if kept else None, {u: p.source for u, p in passwords.items()}
    )
