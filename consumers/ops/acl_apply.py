"""Create riskgate's ACL users on running servers (``riskgate acl ... --apply``).

ACL users are per server: Redis neither replicates ``ACL SETUSER`` nor shares users
across a cluster. So the users of an ACL file are sent to **every node** the client
knows: each primary and replica of a Redis Cluster (consumers/bus/nodes.py), or the
one server of a standalone URL. Behind Sentinel the client knows only the primary: run
it once per server (a ``redis://`` URL naming each), or load the file on each with
``aclfile``.

The ``default`` user is left as it is: switching it off over the wire would cut off
replication and cluster tooling that still use it (set ``masteruser``/``masterauth``
on every node first, then load the file's ``user default ... off`` line). Where a
server has an ``aclfile``, ``ACL SAVE`` writes the users to it; elsewhere they last
until the server restarts (said in the report).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from redis.exceptions import ResponseError

from consumers.bus.nodes import every_node


@dataclass(frozen=True, slots=True)
class Applied:
    users: list[str]
    nodes: list[str]  # host:port of every server the users were sent to
    saved: list[str]  # the ones that wrote them to their aclfile


def _rules(line: str) -> list[str]:
    """The words of an ACL file line, a selector ``(... ...)`` kept as one."""
    words: list[str] = []
    group: list[str] = []
    for word in line.split():
        if group or word.startswith("("):
            group.append(word)
            if word.endswith(")"):
                words.append(" ".join(group))
                group = []
        else:
            words.append(word)
    if group:
        raise ValueError(f"unclosed selector in ACL line: {line[:60]}...")
    return words


def user_rules(acl_text: str) -> list[tuple[str, list[str]]]:
    """(name, rules) of each ``user`` line but ``default``'s."""
    out = []
    for line in acl_text.splitlines():
        parts = _rules(line)
        if len(parts) >= 2 and parts[0] == "user" and parts[1] != "default":
            out.append((parts[1], parts[2:]))
    return out


def _address(node: Redis) -> str:
    kw = node.connection_pool.connection_kwargs
    return f"{kw.get('host', '?')}:{kw.get('port', '?')}"


def apply_acl(redis: Redis, acl_text: str) -> Applied:
    """``ACL SETUSER`` every user of ``acl_text`` (but ``default``) on every node, then
    ``ACL SAVE`` where the server has an aclfile."""
    users = user_rules(acl_text)
    nodes, saved = [], []
    for node in every_node(redis):
        for name, rules in users:
            node.execute_command("ACL", "SETUSER", name, *rules)  # type: ignore[no-untyped-call]
        address = _address(node)
        nodes.append(address)
        try:
            node.execute_command("ACL", "SAVE")  # type: ignore[no-untyped-call]
            saved.append(address)
        except ResponseError:  # no aclfile configured: the users live until a restart
            pass
    return Applied([name for name, _ in users], nodes, saved)
