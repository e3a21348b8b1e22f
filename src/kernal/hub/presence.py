"""What a joining AI is told (``STATE``) and what the others are told about it (``AI_JOINED``)."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TypeVar

from kernal.hub.knowledge import Knowledge
from kernal.hub.peers import Peers, Profile
from kernal.hub.replay import ReplayLog
from kernal.hub.reputation import Standings
from kernal.protocol import encode
from kernal.protocol.messages import (
    HUB_FEATURES,
    AiInfo,
    AiJoined,
)
from kernal.protocol.relay import encode_value
from kernal.storage import ItemKind

# What this hub takes beyond the first frames of v1 (see HUB_FEATURES), encoded once.
_FEATURES = b',"features":' + json.dumps(list(HUB_FEATURES), separators=(",", ":")).encode()

InfoT = TypeVar("InfoT", bound=AiInfo)


@dataclass(frozen=True, kw_only=True)
class Presence:
    """Builds ``STATE`` and ``AI_JOINED`` from the registry, the standings and what the
    knowledge base holds, all in memory.

    Small hubs behave as the original: ``STATE`` lists every joined AI and everyone is told of
    each arrival and departure. Past ``limit`` joined AIs, ``STATE`` lists the ``limit`` that
    joined last (and ``active_total``), and arrivals and departures are no longer broadcast:
    their cost grew with the square of the AIs. ``LIST_AIS`` pages through all of them.
    """

    peers: Peers
    standings: Standings
    knowledge: Knowledge
    replay: ReplayLog
    limit: int
    max_state_bytes: int
    idle_timeout: float = 0.0  # told to clients in STATE, so they PING in time
    # ai_id -> (profile, (standing, credibility), encoded AiInfo)
    _info_cache: dict[str, tuple[Profile, tuple[float, float | None], bytes]] = field(
        default_factory=dict
    )

    def info(self, profile: Profile, kind: type[InfoT] = AiInfo) -> InfoT:  # type: ignore[assignment]
        """``profile`` with the hub's standing, as ``STATE`` lists it (or as ``kind``)."""
        return kind(
            ai_id=profile.ai_id,
            specialization=profile.specialization,
            capabilities=list(profile.capabilities),
            reputation=self.standings.of(profile.ai_id),
            credibility=self.standings.doubted(profile.ai_id),
        )

    def announced(self, *, leaving: bool = False) -> bool:
        """Whether an arrival (or departure) is broadcast: while at most ``limit`` AIs are
        joined, counting the one arriving (or leaving)."""
        return self.peers.total() + leaving <= self.limit

    def joined(self, profile: Profile) -> AiJoined:
        """The announcement of ``profile`` to the others."""
        return self.info(profile, AiJoined)

    def page(
        self,
        after: str | None,
        limit: int,
        specialization: str | None,
        ref: str | None = None,
        ids: Collection[str] | None = None,
    ) -> bytes:
        """The encoded ``AIS`` answer: joined AIs with ids after ``after`` (and among ``ids``
        when given), in id order.

        Built from the pieces ``STATE`` uses (each AI encoded once while its profile and
        standing stay the same): on a hub of thousands, every trainer pages through every
        standing now and then, and building a model per AI per page was most of its cost."""
        chosen: list[Profile] = []
        more = False
        candidates = self.peers.profiles() if ids is None else self.peers.profiles_of(ids)
        for profile in candidates:
            if after is not None and profile.ai_id <= after:
                continue
            if specialization is not None and profile.specialization != specialization:
                continue
            if len(chosen) == limit:
                more = True
                break
            chosen.append(profile)
        frame = b'{"type":"AIS"' + (b"" if ref is None else b',"ref":' + encode_value(ref))
        frame += b',"ais":[' + b",".join(map(self._info_json, chosen)) + b"]"
        if more:
            frame += b',"next":' + encode_value(chosen[-1].ai_id)
        return frame + b',"active_total":%d}\n' % self.peers.total()

    async def welcome(self, newcomer: Profile, *, resumed: bool | None = None) -> bytes:
        """The encoded ``STATE`` for ``newcomer``: the joined AIs (itself included, by id) and
        the counts and newest items of the knowledge base, the oldest items left out until the
        frame fits in ``max_state_bytes``. The caller must send it before awaiting anything, so
        that it matches who is joined when it leaves.

        Built from pieces encoded once (each AI while its profile and standing stay the same,
        each item while it is unchanged): with hundreds of AIs joined, encoding ``STATE`` from
        models for every arrival was most of the cost of admitting one."""
        # Standings are in memory (restored at hub start): nothing to read, nothing awaited,
        # so this matches who is joined when STATE is sent.
        others = self.peers.newest_profiles(self.limit, exclude=newcomer.ai_id)
        ais = sorted((*others, newcomer), key=lambda profile: profile.ai_id)
        total = self.peers.total() + (newcomer.ai_id not in self.peers)
        knowledge = self.knowledge
        head = b'{"type":"STATE","active_ais":[' + b",".join(map(self._info_json, ais))
        head += b'],"knowledge_base":{"shared_patterns":%d,"shared_components":%d' % (
            knowledge.count(ItemKind.PATTERN),
            knowledge.count(ItemKind.COMPONENT),
        )
        head += b',"recent_patterns":['
        middle = b'],"recent_components":['
        tail = b']},"active_total":%d' % total
        if self.idle_timeout > 0:
            tail += b',"idle_timeout":' + repr(float(self.idle_timeout)).encode()
        tail += b',"run":"%s","seq":%d' % (self.replay.run.encode(), self.replay.seq)
        if self.replay.stamp_origin:  # a replica: what another one resumes this trainer by
            tail += b',"origins":' + encode_value(self.replay.origins())
        tail += _FEATURES
        if resumed is not None:
            tail += b',"resumed":' + (b"true" if resumed else b"false")
        tail += b"}\n"
        patterns, components = self._fit(
            len(head) + len(middle) + len(tail),
            knowledge.encoded(ItemKind.PATTERN),
            knowledge.encoded(ItemKind.COMPONENT),
        )
        return b"".join((head, b",".join(patterns), middle, b",".join(components), tail))

    def _info_json(self, profile: Profile) -> bytes:
        standing = (self.standings.of(profile.ai_id), self.standings.doubted(profile.ai_id))
        cached = self._info_cache.get(profile.ai_id)
        if cached is not None and cached[0] is profile and cached[1] == standing:
            return cached[2]
        encoded = encode(self.info(profile))[:-1]
        self._info_cache[profile.ai_id] = (profile, standing, encoded)
        return encoded

    def forget(self, ai_id: str) -> None:
        """``ai_id`` left: its cached pieces go too."""
        self._info_cache.pop(ai_id, None)

    def _fit(
        self, base_size: int, patterns: list[bytes], components: list[bytes]
    ) -> tuple[list[bytes], list[bytes]]:
        """Drop the oldest items, from the longer list first, until the frame fits (a list is
        its items and a comma between two of them)."""
        n_patterns, n_components = len(patterns), len(components)
        size = base_size + sum(map(len, patterns)) + sum(map(len, components))
        size += max(0, n_patterns - 1) + max(0, n_components - 1)
        while size > self.max_state_bytes and (n_patterns or n_components):
            if n_patterns >= n_components:
                n_patterns -= 1
                size -= len(patterns[n_patterns]) + (n_patterns > 0)
            else:
                n_components -= 1
                size -= len(components[n_components]) + (n_components > 0)
        return patterns[:n_patterns], components[:n_components]
