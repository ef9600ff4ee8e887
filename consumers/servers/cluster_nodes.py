"""What a Redis Cluster's ``CLUSTER NODES`` reply says of its nodes, as far as the
local cluster (consumers/servers/local_cluster.py) and its tests need it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Node:
    """One line of ``CLUSTER NODES`` that matters here."""

    port: int
    node_id: str
    master: bool  # a master not marked failed
    master_id: str | None  # a replica's master
    slots: tuple[tuple[int, int], ...]

    def holds(self, slot: int) -> bool:
        return any(lo <= slot <= hi for lo, hi in self.slots)


def parse_nodes(reply: bytes | str) -> list[Node]:
    """The nodes of a ``CLUSTER NODES`` reply; slots being migrated (``[...]``) skipped."""
    text = reply.decode() if isinstance(reply, bytes) else reply
    nodes = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        flags = parts[2].split(",")
        slots = []
        for item in parts[8:]:
            if not item.startswith("["):
                lo, _, hi = item.partition("-")
                slots.append((int(lo), int(hi or lo)))
        nodes.append(
            Node(
                int(parts[1].split("@")[0].rsplit(":", 1)[1]),
                parts[0],
                "master" in flags and "fail" not in flags,
                None if parts[3] == "-" else parts[3],
                tuple(slots),
            )
        )
    return nodes
