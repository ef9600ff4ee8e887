"""Passwords of the ACL users: from the environment, else the secrets file, else
generated; generated ones kept only in a 0600 secrets file (never printed, never in the
ACL file, which holds their SHA-256 hashes)."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PASSWORD_ENV_PREFIX = "RISKGATE_ACL_PASSWORD_"
MIN_PASSWORD_CHARS = 16


class AclError(ValueError):
    """A bad role, name, prefix or password source; never contains a password."""


@dataclass(frozen=True, slots=True)
class Password:
    user: str
    value: str = field(repr=False)
    source: str  # "env <VAR>", "secrets file" or "generated"

    @property
    def kept_in_secrets_file(self) -> bool:
        return not self.source.startswith("env ")


def env_var(user: str) -> str:
    """The environment variable that holds ``user``'s password."""
    return PASSWORD_ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", user.upper())


def read_secrets(path: Path) -> dict[str, str]:
    """``VAR=value`` lines of a secrets file written by :func:`write_acl` (if it exists)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and not name.startswith("#"):
            found[name.strip()] = value.strip()
    return found


def resolve_passwords(
    users: Sequence[str],
    environ: Mapping[str, str],
    stored: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
) -> dict[str, Password]:
    """Each user's password: ``overrides`` (user -> env var), then ``env_var(user)``,
    then the secrets file (``stored``), else a new random one."""
    overrides = overrides or {}
    unknown = set(overrides) - set(users)
    if unknown:
        raise AclError(f"--password-env for unknown users: {', '.join(sorted(unknown))}")
    seen: dict[str, str] = {}
    for user in users:
        var = env_var(user)
        if var in seen:
            raise AclError(f"users {seen[var]!r} and {user!r} share {var}; use --password-env")
        seen[var] = user
    out: dict[str, Password] = {}
    for user in users:
        var = overrides.get(user, env_var(user))
        if user in overrides and var not in environ:
            raise AclError(f"{var} (password of {user}) is not set")
        if var in environ:
            value = environ[var]
            if len(value) < MIN_PASSWORD_CHARS or value != value.strip():
                raise AclError(
                    f"{var}: a password needs at least {MIN_PASSWORD_CHARS} characters "
                    "and no surrounding spaces"
                )
            out[user] = Password(user, value, f"env {var}")
        elif stored.get(env_var(user)):
            out[user] = Password(user, stored[env_var(user)], "secrets file")
        else:
            out[user] = Password(user, secrets.token_urlsafe(32), "generated")
    return out


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 (never readable by others)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def secrets_text(passwords: Mapping[str, Password]) -> str:
    lines = [
        "# riskgate ACL passwords (keep this file 0600, out of the Redis host's reach).",
        "# One VAR=password per user; source it to reuse these when regenerating.",
    ]
    for p in passwords.values():
        if p.kept_in_secrets_file:
            lines += [f"# {p.user}", f"{env_var(p.user)}={p.value}"]
    return "\n".join(lines) + "\n"
