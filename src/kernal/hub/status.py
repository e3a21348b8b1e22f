"""The hub's headline figures: one model for the stats loop, the API, the harness and the page."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kernal.storage import StatsSnapshot


class HubStatus(BaseModel):
    """What ``GET /status`` returns. The first four fields are the original prototype's (scripts
    poll them); ``uptime`` is in real seconds; ``demo_tokens`` says the prototype's tokens work."""

    model_config = ConfigDict(frozen=True)

    connected_ais: int
    shared_patterns: int
    shared_components: int
    active_collaborations: int
    uptime: float
    demo_tokens: bool

    def snapshot(self, timestamp: float) -> StatsSnapshot:
        """The figures kept in the stats history."""
        return StatsSnapshot(
            timestamp=timestamp,
            connected_ais=self.connected_ais,
            shared_patterns=self.shared_patterns,
            shared_components=self.shared_components,
            active_collaborations=self.active_collaborations,
        )
