"""The tests' face of :mod:`consumers.servers.local_cluster` (the one launcher of a
private Redis Cluster, shared with ``riskgate bench --cluster``): the same cluster, plus
portfolio names placed on chosen masters.

    with LocalCluster(tmp_path) as cluster:            # 6 processes, cluster_state:ok
        cluster.url                                     # redis://127.0.0.1:PORT/0 (one node)
        names = cluster.portfolios("it")                # a portfolio on each master
        cluster.kill(cluster.master_of(names[0]))       # SIGKILL; its replica takes over

Never touches the shared server on 6379.
"""

from __future__ import annotations

import uuid

from redis.cluster import key_slot

from consumers.servers import local_cluster
from consumers.servers.cluster_nodes import Node

__all__ = ["LocalCluster", "Node", "slot_of"]


def slot_of(portfolio: str) -> int:
    """The hash slot of a portfolio's keys (the ``{portfolio}`` hash tag)."""
    return int(key_slot(portfolio.encode()))


class LocalCluster(local_cluster.LocalCluster):
    def master_of(self, portfolio: str) -> Node:
        return self.master_for_slot(slot_of(portfolio))

    def portfolios(self, tag: str) -> list[str]:
        """One new portfolio name per master, in the masters' slot order."""
        names: list[str] = []
        for master in self.live_masters():
            while True:
                name = f"{tag}-{uuid.uuid4().hex[:10]}"
                if master.holds(slot_of(name)):
                    names.append(name)
                    break
        return names
