"""CLI: ``riskgate acl`` writes the Redis ACL file (and the secrets file, 0600)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from consumers.bus.keys import Keys
from consumers.bus.runtime import connect
from consumers.errors import UsageError
from consumers.ops.acl import DEFAULT_ADMIN, ROLES, AclError, AclPlan, env_var, write_acl
from consumers.ops.acl_apply import apply_acl

if TYPE_CHECKING:  # subscriptable for the type checker only
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def _overrides(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        user, sep, var = pair.partition("=")
        if not sep or not user or not var:
            raise UsageError(f"--password-env expects USER=ENV_VAR, got {pair!r}")
        out[user] = var
    return out


def _said(source: str) -> str:
    """Where a password came from, for the report (never the password)."""
    if source.startswith("env "):
        return f"password from ${source[4:]}"
    return "password generated" if source == "generated" else f"password kept from the {source}"


def cmd_acl(args: argparse.Namespace) -> int:
    out = Path(args.out)
    secrets_path = Path(args.secrets) if args.secrets else out.with_suffix(".secrets")
    try:
        keys = tuple(
            Keys(p, args.prefix) if args.prefix else Keys.from_env(p)
            for p in dict.fromkeys(args.portfolio)
        )
        plan = AclPlan(keys, tuple(dict.fromkeys(args.role or ROLES)), args.admin_user)
        report = write_acl(plan, out, secrets_path, overrides=_overrides(args.password_env))
    except (AclError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    print(f"wrote {report.out} (0600): {len(report.sources)} users; default user off")
    for user, source in report.sources.items():
        print(f"  {user:32} {_said(source)}")
    if report.secrets is not None:
        print(f"passwords not taken from the environment are in {report.secrets} (0600)")
    if args.apply:
        _apply(args, report.out)
    return 0


def _apply(args: argparse.Namespace, acl_file: Path) -> None:
    """The users of the file on every node --redis-url leads to (a cluster: all)."""
    redis = connect(args.redis_url)
    try:
        done = apply_acl(redis, acl_file.read_text())
    finally:
        redis.close()
    print(f"applied {len(done.users)} users (default user unchanged) on {len(done.nodes)} "
          f"server(s): {', '.join(done.nodes)}")  # fmt: skip
    unsaved = [n for n in done.nodes if n not in done.saved]
    if unsaved:
        print(f"no aclfile on {', '.join(unsaved)}: these users last until a restart there")


def register(sub: Sub) -> None:
    p = sub.add_parser(
        "acl",
        help="write a Redis ACL file: one least-privilege user per role and portfolio",
        description=(
            "Users are <role>-<portfolio> plus an admin; the default user is switched off. "
            "A user's password is read from $RISKGATE_ACL_PASSWORD_<USER> (the user name "
            f"in capitals, other characters as _, e.g. {env_var('agent-main')}) or the "
            "variable named with --password-env, else kept from the secrets file, else "
            "generated. "
            "Passwords are never printed: the ACL file holds SHA-256 hashes, the secrets "
            "file (mode 0600) the passwords that did not come from the environment."
        ),
    )
    p.add_argument(
        "--portfolio",
        action="append",
        required=True,
        help="portfolio to create users for (repeat for more)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="the ACL file to write")
    p.add_argument(
        "--secrets",
        metavar="FILE",
        help="passwords file (default: FILE with the suffix .secrets)",
    )
    p.add_argument(
        "--password-env",
        action="append",
        default=[],
        metavar="USER=ENV_VAR",
        help="take USER's password from ENV_VAR (repeatable)",
    )
    p.add_argument("--role", action="append", choices=ROLES, help="only these roles (default: all)")
    p.add_argument("--admin-user", default=DEFAULT_ADMIN, help="name of the admin user")
    p.add_argument(
        "--apply",
        action="store_true",
        help="also create the users (ACL SETUSER, not the default user) on the running "
        "servers --redis-url leads to: every primary and replica of a cluster",
    )
    p.add_argument(
        "--redis-url",
        default=None,
        help="with --apply, an admin's URL (default: $REDIS_URL, else the embedded Redis)",
    )
    p.add_argument(
        "--prefix",
        default=None,
        help=f"key prefix (default: $RISKGATE_PREFIX or {Keys().prefix})",
    )
    p.set_defaults(handler=cmd_acl)
