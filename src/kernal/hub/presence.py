"""What a joining AI is told (``STATE``) and what the others are told about it (``AI_JOINED``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from kernal.hub.peers import Peers, Profile
from kernal.hub.reputation import Standings
from kernal.protocol import encode
from kernal.protocol.messages import (
    AiInfo,
    AiJoined,
    KnowledgeBase,
    RecentComponent,
    RecentPattern,
    State,
)
from kernal.storage import Store

InfoT = TypeVar("InfoT", bound=AiInfo)


@dataclass(frozen=True, kw_only=True)
class Presence:
    """Builds ``STATE`` and ``AI_JOINED`` from the registry, the standings and the store."""

    store: Store
    peers: Peers
    standings: Standings
    recent_limit: int
    max_state_bytes: int

    def info(self, profile: Profile, kind: type[InfoT] = AiInfo) -> InfoT:  # type: ignore[assignment]
        """``profile`` with the hub's standing, as ``STATE`` lists it (or as ``kind``)."""
        return kind(
            ai_id=profile.ai_id,
            specialization=profile.specialization,
            capabilities=list(profile.capabilities),
            reputation=self.standings.of(profile.ai_id),
        )

    def joined(self, profile: Profile) -> AiJoined:
        """The announcement of ``profile`` to the others."""
        return self.info(profile, AiJoined)

    async def welcome(self, newcomer: Profile) -> State:
        """``STATE`` for ``newcomer``: every joined AI (itself included, by id) and the counts
        and newest items of the knowledge base, the oldest items left out until the frame fits
        in ``max_state_bytes``. The caller must send it before awaiting anything, so that it
        matches who is joined when it leaves."""
        await self.standings.load([newcomer.ai_id])
        counts = await self.store.counts()
        # The records have the listed fields by the same names.
        patterns = [
            RecentPattern.model_validate(record, from_attributes=True)
            for record in await self.store.recent_patterns(self.recent_limit)
        ]
        components = [
            RecentComponent.model_validate(record, from_attributes=True)
            for record in await self.store.recent_components(self.recent_limit)
        ]
        # Built after the last await, so it matches who is joined when STATE is sent.
        others = [p for p in self.peers.profiles() if p.ai_id != newcomer.ai_id]
        active: list[AiInfo] = [self.info(profile) for profile in (*others, newcomer)]
        active.sort(key=lambda info: info.ai_id)
        base = State(
            active_ais=active,
            knowledge_base=KnowledgeBase(
                shared_patterns=counts.shared_patterns,
                shared_components=counts.shared_components,
                recent_patterns=[],
                recent_components=[],
            ),
        )
        patterns, components = self._fit(len(encode(base)), patterns, components)
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
