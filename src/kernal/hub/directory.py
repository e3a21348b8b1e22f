"""The AIs joined on the other replicas of a cluster, and which replica each is on.

Fed by the bus (``joined``/``left`` events and snapshots, see :mod:`kernal.hub.cluster`); read
by the registry (:class:`~kernal.hub.peers.Peers`) through the cluster. In memory only: every
replica rebuilds it from the others' snapshots when it starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kernal.hub.peers import Profile
from kernal.protocol.messages import TOPICS, Topic


@dataclass(frozen=True, slots=True)
class RemoteAi:
    profile: Profile
    replica: str


def profile_to_wire(profile: Profile) -> dict[str, Any]:
    return {
        "ai": profile.ai_id,
        "spec": profile.specialization,
        "caps": list(profile.capabilities),
        "at": profile.connected_at,
        "follows": sorted(profile.follows),
    }


def profile_from_wire(data: dict[str, Any]) -> Profile:
    """Raises KeyError/TypeError/ValueError on a malformed entry."""
    follows = frozenset(topic for topic in data["follows"] if topic in TOPICS)
    return Profile(
        ai_id=str(data["ai"]),
        specialization=str(data["spec"]),
        capabilities=tuple(str(cap) for cap in data["caps"]),
        connected_at=float(data["at"]),
        follows=follows,
    )


class Directory:
    """Remote AIs by id, in the order they joined (the newest last)."""

    def __init__(self) -> None:
        self._ais: dict[str, RemoteAi] = {}
        self._followers: dict[Topic, dict[str, None]] = {topic: {} for topic in TOPICS}

    def add(self, profile: Profile, replica: str) -> None:
        """``profile`` joined on ``replica`` (again: it moves to the newest place)."""
        self._discard(profile.ai_id)
        self._ais[profile.ai_id] = RemoteAi(profile, replica)
        for topic in profile.follows:
            self._followers[topic][profile.ai_id] = None

    def remove(self, ai_id: str, replica: str | None = None) -> RemoteAi | None:
        """Forget ``ai_id`` if it is on ``replica`` (any replica if None): a ``left`` that
        arrives after the same AI joined elsewhere must not remove the newer entry."""
        entry = self._ais.get(ai_id)
        if entry is None or (replica is not None and entry.replica != replica):
            return None
        self._discard(ai_id)
        return entry

    def _discard(self, ai_id: str) -> None:
        if self._ais.pop(ai_id, None) is not None:
            for followers in self._followers.values():
                followers.pop(ai_id, None)

    def on_replica(self, replica: str) -> list[str]:
        """The AIs on ``replica``."""
        return [ai_id for ai_id, entry in self._ais.items() if entry.replica == replica]

    def get(self, ai_id: str) -> RemoteAi | None:
        return self._ais.get(ai_id)

    def newest_first(self) -> Iterator[Profile]:
        for entry in reversed(list(self._ais.values())):
            yield entry.profile

    def followers(self, topic: Topic) -> list[str]:
        return list(self._followers[topic])

    def by_replica(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self._ais.values():
            counts[entry.replica] = counts.get(entry.replica, 0) + 1
        return counts

    def __len__(self) -> int:
        return len(self._ais)
