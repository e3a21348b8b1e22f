"""The hub's protocol tests, run against three replicas as if they were one hub: every client
a test connects goes to the next replica in turn (r1, r2, r3, r1, ...), and what the test reads
of the hub (its store, its figures) is r1's."""

from __future__ import annotations

from typing import Any

import pytest

from kernal.hub.server import Hub
from tests.cluster.conftest import ReplicaFactory, eventually
from tests.hub import test_collaboration, test_sharing


class SpreadHub:
    """r1's hub, except that each read of ``address`` is the next replica's."""

    def __init__(self, hubs: list[Hub]) -> None:
        self._hubs = hubs
        self._turn = 0

    @property
    def address(self) -> tuple[str, int]:
        hub = self._hubs[self._turn % len(self._hubs)]
        self._turn += 1
        return hub.address

    async def settle(self, ai_id: str) -> None:
        """Until every replica knows where ``ai_id`` joined (presence crosses the bus in a few
        milliseconds; on one hub it is immediate, and the tests rely on that)."""
        await eventually(lambda: all(hub.cluster.replica_of(ai_id) for hub in self._hubs))  # type: ignore[union-attr]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hubs[0], name)


@pytest.fixture
async def hub(make_replica: ReplicaFactory) -> SpreadHub:
    replicas = [await make_replica() for _ in range(3)]
    await eventually(lambda: all(len(r.hub.cluster.replicas()) == 3 for r in replicas))  # type: ignore[union-attr]
    return SpreadHub([r.hub for r in replicas])


# The stats history of a cluster comes from heartbeats, a heartbeat behind the replicas:
# test_status.py checks it at its own pace.
NOT_AS_ONE_HUB = {"test_stats_snapshots_are_recorded"}


def _takes_hub(test: Any) -> bool:
    """A test of one started hub (the ``hub`` fixture), not one that starts hubs itself."""
    code = test.__code__
    arguments = code.co_varnames[: code.co_argcount]
    return "hub" in arguments and "make_hub" not in arguments


# Sharing and collaborations: the protocol end to end (reputation across replicas has its own
# tests in test_reputation.py; connection handling is each replica's own).
for _module in (test_sharing, test_collaboration):
    for _name in dir(_module):
        if (
            _name.startswith("test_")
            and _name not in NOT_AS_ONE_HUB
            and _takes_hub(getattr(_module, _name))
        ):
            globals()[_name] = getattr(_module, _name)
