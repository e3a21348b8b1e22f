"""The hub's headline figures: one model for the stats loop, the API, the harness and the page."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from kernal.storage import StatsSnapshot


class ReplicaStatus(BaseModel):
    """One replica's figures, as its latest heartbeat (at most a few seconds old) said."""

    model_config = ConfigDict(frozen=True)

    replica: str
    address: str = ""  # where trainers reach it, host:port
    connected_ais: int = 0
    active_collaborations: int = 0  # those whose requester is on it (it holds their book)
    uptime: float = 0.0


class ClusterStatus(BaseModel):
    """The whole cluster, on a hub started with ``--bus``: totals and every live replica."""

    model_config = ConfigDict(frozen=True)

    connected_ais: int
    active_collaborations: int
    replicas: list[ReplicaStatus]

    @classmethod
    def of(cls, figures: dict[str, dict[str, Any]]) -> ClusterStatus:
        """From the replicas' published figures (an empty dict for one not heard from yet)."""
        replicas = [
            ReplicaStatus.model_validate({**found, "replica": replica})
            for replica, found in sorted(figures.items())
        ]
        return cls(
            connected_ais=sum(r.connected_ais for r in replicas),
            active_collaborations=sum(r.active_collaborations for r in replicas),
            replicas=replicas,
        )


class HubStatus(BaseModel):
    """What ``GET /status`` returns. The first four fields are the original prototype's (scripts
    poll them); ``uptime`` is in real seconds; ``demo_tokens`` says the prototype's tokens work.

    On a replica (``--bus``), ``connected_ais`` and ``active_collaborations`` are this
    replica's, the shared counts are the whole knowledge base's (one database), and
    ``cluster`` has the totals and each replica's figures; ``cluster`` is null on one hub."""

    model_config = ConfigDict(frozen=True)

    connected_ais: int
    shared_patterns: int
    shared_components: int
    active_collaborations: int
    uptime: float
    demo_tokens: bool
    replica: str | None = None  # this replica's name, with --bus
    cluster: ClusterStatus | None = None

    def snapshot(self, timestamp: float) -> StatsSnapshot | None:
        """The figures kept in the stats history. On a cluster, the whole cluster's, kept by
        one replica (the first by name of those alive; another one takes over when it dies):
        None on the others, so the history is one series, not one per replica."""
        connected, collaborations = self.connected_ais, self.active_collaborations
        if self.cluster is not None:
            if self.replica != min(r.replica for r in self.cluster.replicas):
                return None
            connected = self.cluster.connected_ais
            collaborations = self.cluster.active_collaborations
        return StatsSnapshot(
            timestamp=timestamp,
            connected_ais=connected,
            shared_patterns=self.shared_patterns,
            shared_components=self.shared_components,
            active_collaborations=collaborations,
        )
