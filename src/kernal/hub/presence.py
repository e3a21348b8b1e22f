"""What a joining AI is told (``STATE``) and what the others are told about it (``AI_JOINED``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from kernal.hub.knowledge import Knowledge
from kernal.hub.peers import Peers, Profile
from kernal.hub.reputation import Standings
from kernal.protocol import encode
from kernal.protocol.messages import (
    AiInfo,
    AiJoined,
    Ais,
    KnowledgeBase,
    RecentComponent,
    RecentPattern,
    State,
)
from kernal.storage import ItemKind

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
    limit: int
    max_state_bytes: int

    def info(self, profile: Profile, kind: type[InfoT] = AiInfo) -> InfoT:  # type: ignore[assignment]
        """``profile`` with the hub's standing, as ``STATE`` lists it (or as ``kind``)."""
        return kind(
            ai_id=profile.ai_id,
            specialization=profile.specialization,
            capabilities=list(profile.capabilities),
            reputation=self.standings.of(profile.ai_id),
        )

    def announced(self, *, leaving: bool = False) -> bool:
        """Whether an arrival (or departure) is broadcast: while at most ``limit`` AIs are
        joined, counting the one arriving (or leaving)."""
        return len(self.peers) + leaving <= self.limit

    def joined(self, profile: Profile) -> AiJoined:
        """The announcement of ``profile`` to the others."""
        return self.info(profile, AiJoined)

    def page(self, after: str | None, limit: int, specialization: str | None) -> Ais:
        """Joined AIs with ids after ``after``, in id order (the ``AIS`` answer)."""
        chosen: list[AiInfo] = []
        more = False
        for profile in self.peers.profiles():
            if after is not None and profile.ai_id <= after:
                continue
            if specialization is not None and profile.specialization != specialization:
                continue
            if len(chosen) == limit:
                more = True
                break
            chosen.append(self.info(profile))
        return Ais(
            ais=chosen,
            next=chosen[-1].ai_id if more else None,
            active_total=len(self.peers),
        )

    async def welcome(self, newcomer: Profile) -> State:
        """``STATE`` for ``newcomer``: the joined AIs (itself included, by id) and the counts
        and newest items of the knowledge base, the oldest items left out until the frame fits
        in ``max_state_bytes``. The caller must send it before awaiting anything, so that it
        matches who is joined when it leaves."""
        await self.standings.load([newcomer.ai_id])
        # After the last await, so it matches who is joined when STATE is sent.
        others = self.peers.newest_profiles(self.limit, exclude=newcomer.ai_id)
        active: list[AiInfo] = [self.info(profile) for profile in (*others, newcomer)]
        active.sort(key=lambda info: info.ai_id)
        total = len(self.peers) + (newcomer.ai_id not in self.peers)
        base = State(
            active_ais=active,
            knowledge_base=KnowledgeBase(
                shared_patterns=self.knowledge.count(ItemKind.PATTERN),
                shared_components=self.knowledge.count(ItemKind.COMPONENT),
                recent_patterns=[],
                recent_components=[],
            ),
            active_total=total,
        )
        patterns, components = self._fit(
            len(encode(base)), self.knowledge.recent_patterns(), self.knowledge.recent_components()
        )
        return base.model_copy(
            update={
                "knowledge_base": base.knowledge_base.model_copy(
                    update={"recent_patterns": patterns, "recent_components": components}
                )
            }
        )

    def _fit(
        self,
        base_size: int,
        patterns: list[RecentPattern],
        components: list[RecentComponent],
    ) -> tuple[list[RecentPattern], list[RecentComponent]]:
        """Drop the oldest items, from the longer list first, until the frame fits. Each item is
        measured once (a frame is its items plus a comma between two of them)."""
        pattern_sizes = [len(encode(p)) for p in patterns]  # encode adds "\n": the comma
        component_sizes = [len(encode(c)) for c in components]
        size = base_size + sum(pattern_sizes) + sum(component_sizes)
        size -= bool(pattern_sizes) + bool(component_sizes)  # n items, n - 1 commas
        while size > self.max_state_bytes and (pattern_sizes or component_sizes):
            sizes = pattern_sizes if len(pattern_sizes) >= len(component_sizes) else component_sizes
            size -= sizes.pop()
            if not sizes:
                size += 1  # the last item of a list had no comma
        return patterns[: len(pattern_sizes)], components[: len(component_sizes)]
