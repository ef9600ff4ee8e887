"""`riskgate acl`: the ACL file's users and rules, passwords, files and the CLI."""

from __future__ import annotations

import argparse
import hashlib
import stat
from pathlib import Path

import pytest

from consumers.bus.keys import Keys
from consumers.bus.tls import tls_options
from consumers.cli.security_commands import register
from consumers.errors import UsageError
from consumers.ops.acl import (
    ROLES,
    AclError,
    AclPlan,
    Grant,
    env_var,
    grants,
    read_secrets,
    resolve_passwords,
    write_acl,
)

STRONG = "correct-horse-battery-staple"


def plan(*portfolios: str, prefix: str = "riskgate", roles: tuple[str, ...] = ROLES) -> AclPlan:
    return AclPlan(tuple(Keys(p, prefix) for p in portfolios), roles, "admin")


def lines_by_user(text: str) -> dict[str, str]:
    return {line.split()[1]: line for line in text.splitlines()}


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="riskgate")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def test_grants_when_agent_then_xadd_intents_and_reads_of_own_decisions_only() -> None:
    """An agent writes its portfolio's intents and reads its decisions; nothing else."""
    k = Keys("main")
    assert grants("agent", k) == (
        Grant(("+xadd",), write=("riskgate:{main}:intents",)),
        Grant(("+get",), read=("riskgate:{main}:decided:*",)),
        Grant(("+xrange", "+xrevrange", "+xread"), read=("riskgate:{main}:decisions",)),
    )


def test_grants_when_executor_then_consumes_orders_and_only_xadds_events() -> None:
    """XADD is granted on events alone; the orders selector has no XADD; SET/GET only on
    the SDK's order dedupe markers."""
    consume, publish, handed = grants("executor", Keys("main"))
    assert consume.read_write == ("riskgate:{main}:orders",)
    assert "+xadd" not in consume.commands and "+xreadgroup" in consume.commands
    assert publish == Grant(("+xadd",), write=("riskgate:{main}:events",))
    assert handed == Grant(("+set", "+get"), read_write=("riskgate:{main}:handed:*:*",))


def test_grants_when_custom_prefix_then_patterns_follow_keys_module() -> None:
    """Patterns come from Keys: a prefix change moves every rule with it."""
    k = Keys("p1", "acme")
    patterns = [p for g in grants("gate", k) + grants("agent", k) for p in g.read_write + g.read]
    assert patterns and all(p.startswith(k.base) for p in patterns)
    assert grants("gate", k)[0].read_write == (k.base + "*",)


@pytest.mark.parametrize("prefix", ["a*b", "a?b", "a[b]", 'a"b', "a'b", "a\\b"])
def test_grants_when_prefix_has_glob_or_quote_chars_then_refused(prefix: str) -> None:
    """A prefix that would be read as a glob or break ACL-file quoting is refused."""
    with pytest.raises(AclError, match="prefix"):
        grants("gate", Keys("main", prefix))


def test_render_when_two_portfolios_then_users_per_role_and_portfolio() -> None:
    """Users are <role>-<portfolio>, plus admin; default is off with no password or rights."""
    p = plan("main", "alt")
    pw = resolve_passwords(p.users(), {}, {})
    users = lines_by_user(p.render(pw))
    expected = {"default", "admin"} | {f"{r}-{q}" for r in ROLES for q in ("main", "alt")}
    assert set(users) == expected
    assert users["default"] == "user default reset resetchannels off"
    assert users["admin"].endswith("~* &* +@all")
    assert "{alt}" not in users["agent-main"] and "{main}" not in users["gate-alt"]


def test_render_when_passwords_then_only_sha256_hashes_in_file() -> None:
    """Each user line holds '#<sha256 of the password>' and never the password itself."""
    p = plan("main")
    pw = resolve_passwords(p.users(), {}, {})
    text = p.render(pw)
    for user, line in lines_by_user(text).items():
        if user == "default":
            continue
        digest = hashlib.sha256(pw[user].value.encode()).hexdigest()
        assert f" #{digest} " in line
        assert pw[user].value not in text


def test_render_when_roles_selected_then_only_those_users() -> None:
    """--role limits the users written (admin is always there)."""
    p = plan("main", roles=("agent", "executor"))
    users = lines_by_user(p.render(resolve_passwords(p.users(), {}, {})))
    assert set(users) == {"default", "admin", "agent-main", "executor-main"}


def test_plan_when_unknown_role_or_bad_admin_then_error() -> None:
    """Typos fail loudly rather than producing a partial file."""
    with pytest.raises(AclError, match="unknown role"):
        plan("main", roles=("agnet",))
    with pytest.raises(AclError, match="admin user name"):
        AclPlan((Keys("main"),), ROLES, "default")
    with pytest.raises(AclError, match="clashes"):
        AclPlan((Keys("main"),), ROLES, "agent-main")


def test_passwords_when_env_file_and_nothing_then_env_beats_file_beats_generated() -> None:
    """Sources in order: explicit --password-env, RISKGATE_ACL_PASSWORD_<USER>, file, new."""
    users = ["admin", "agent-main", "gate-main", "executor-main"]
    env = {"MY_VAR": STRONG + "1", env_var("agent-main"): STRONG + "2"}
    stored = {env_var("agent-main"): "from-file-0123456789", env_var("gate-main"): STRONG + "3"}
    got = resolve_passwords(users, env, stored, {"admin": "MY_VAR"})
    assert (got["admin"].value, got["admin"].source) == (STRONG + "1", "env MY_VAR")
    assert got["agent-main"].source == f"env {env_var('agent-main')}"
    assert (got["gate-main"].value, got["gate-main"].source) == (STRONG + "3", "secrets file")
    assert got["executor-main"].source == "generated"
    assert len(got["executor-main"].value) >= 40
    assert got["executor-main"].value not in repr(got)


@pytest.mark.parametrize("value", ["short", " " + STRONG, STRONG + "\n"])
def test_passwords_when_env_password_weak_or_padded_then_refused(value: str) -> None:
    """An environment password under 16 chars or with surrounding spaces is refused."""
    with pytest.raises(AclError, match="at least 16") as info:
        resolve_passwords(["agent-main"], {env_var("agent-main"): value}, {})
    assert value.strip() not in str(info.value)


def test_passwords_when_override_var_unset_or_user_unknown_then_refused() -> None:
    """--password-env naming an unset variable or an unknown user is an error."""
    with pytest.raises(AclError, match="is not set"):
        resolve_passwords(["admin"], {}, {}, {"admin": "NOPE"})
    with pytest.raises(AclError, match="unknown users"):
        resolve_passwords(["admin"], {"X": STRONG}, {}, {"ghost": "X"})


def test_passwords_when_two_users_map_to_one_env_var_then_refused() -> None:
    """agent-a.b and agent-a_b would share a variable: refused, not silently merged."""
    with pytest.raises(AclError, match="share"):
        resolve_passwords(["agent-a.b", "agent-a_b"], {}, {})


def test_write_acl_when_generated_then_both_files_0600_and_rerun_is_stable(
    tmp_path: Path,
) -> None:
    """Files are owner-only; a second run reuses the secrets file: same ACL file."""
    out, sec = tmp_path / "users.acl", tmp_path / "users.secrets"
    report = write_acl(plan("main"), out, sec, environ={})
    assert report.secrets == sec
    for path in (out, sec):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = out.read_text()
    stored = read_secrets(sec)
    assert set(stored) == {env_var(u) for u in plan("main").users()}
    for value in stored.values():
        assert value not in first
    report2 = write_acl(plan("main"), out, sec, environ={})
    assert out.read_text() == first
    assert set(report2.sources.values()) == {"secrets file"}
    assert not list(tmp_path.glob(".*.tmp"))


def test_write_acl_when_every_password_from_env_then_no_secrets_file(tmp_path: Path) -> None:
    """Passwords managed elsewhere are never copied into a secrets file."""
    p = plan("main", roles=("agent",))
    env = {env_var(u): STRONG + u for u in p.users()}
    report = write_acl(p, tmp_path / "u.acl", tmp_path / "u.secrets", environ=env)
    assert report.secrets is None and not (tmp_path / "u.secrets").exists()


def test_cli_when_acl_written_then_stdout_names_sources_and_no_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`riskgate acl` reports users and where each password came from, never a value."""
    monkeypatch.setenv("ADMIN_PW", STRONG)
    out = tmp_path / "users.acl"
    argv = ["acl", "--portfolio", "main", "--portfolio", "alt", "--out", str(out)]
    assert run_cli([*argv, "--password-env", "admin=ADMIN_PW"]) == 0
    printed = capsys.readouterr().out
    stored = read_secrets(tmp_path / "users.secrets")
    assert "agent-alt" in printed and "from $ADMIN_PW" in printed and "generated" in printed
    for value in [*stored.values(), STRONG]:
        assert value not in printed
    assert "agent-alt" in out.read_text()


def test_cli_when_bad_password_env_or_prefix_then_usage_error(tmp_path: Path) -> None:
    """Malformed flags are usage errors (exit 2 through riskgate's main)."""
    out = str(tmp_path / "u.acl")
    with pytest.raises(UsageError, match="USER=ENV_VAR"):
        run_cli(["acl", "--portfolio", "main", "--out", out, "--password-env", "admin"])
    with pytest.raises(UsageError, match="prefix"):
        run_cli(["acl", "--portfolio", "main", "--out", out, "--prefix", "a*"])


def test_tls_options_when_rediss_and_env_then_paths_unless_url_sets_them() -> None:
    """Env TLS files apply to rediss:// only, and a URL parameter wins."""
    env = {"RISKGATE_REDIS_CA_CERTS": "/ca.pem", "RISKGATE_REDIS_CERTFILE": "/c.pem"}
    assert tls_options("redis://h:6379/0", env) == {}
    assert tls_options("rediss://h:6380/0", env) == {
        "ssl_ca_certs": "/ca.pem",
        "ssl_certfile": "/c.pem",
    }
    assert tls_options("rediss://h/0?ssl_ca_certs=/other.pem", env) == {"ssl_certfile": "/c.pem"}
