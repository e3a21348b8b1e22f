"""What the hub does with what joined AIs say about others: ``FEEDBACK`` on an item (a vote
toward its contributor's standing) and ``TRAINER_REPORT`` (a trainer's own figures).

Like the router that owns it, each handler either completes and replies ``ACK``, or raises
:class:`ProtocolError`; who speaks and when always come from the authenticated session and the
hub's clock, never from the frame.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from kernal.hub.counters import HubCounters
from kernal.hub.knowledge import Knowledge
from kernal.hub.limits import Pace
from kernal.hub.peers import Peer
from kernal.hub.reputation import Standings
from kernal.protocol import ErrorCode, ProtocolError
from kernal.protocol import messages as m
from kernal.protocol.relay import ack_frame
from kernal.storage import ItemKind, NotFoundError, Store, TrainerReportRecord
from kernal.timing import Clock


@dataclass(frozen=True, kw_only=True)
class FeedbackDesk:
    """Records FEEDBACK (paced per sender) and TRAINER_REPORT frames of joined AIs."""

    store: Store
    standings: Standings
    knowledge: Knowledge
    clock: Clock
    pace: Pace | None = None  # None: FEEDBACK as fast as they come
    counters: HubCounters = field(default_factory=HubCounters)

    async def feedback(self, sender: str, peer: Peer, msg: m.Feedback) -> None:
        await self._pace_feedback(sender, peer)
        kind = ItemKind(msg.kind)
        item = await self.store.get_item(kind, msg.id)
        if item is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no {msg.kind} {msg.id!r}", msg.msg_id)
        if item.contributor == sender:
            raise ProtocolError(
                ErrorCode.FORBIDDEN,
                f"{sender} cannot rate its own {msg.kind} {msg.id!r}: only other AIs' "
                "feedback counts toward an AI's standing; send FEEDBACK on others' work",
                msg.msg_id,
            )
        try:
            result = await self.store.record_feedback(
                kind, msg.id, sender, msg.score, self.clock.now(), usefulness=msg.usefulness
            )
        except NotFoundError as exc:
            raise ProtocolError(ErrorCode.NOT_FOUND, str(exc), msg.msg_id) from None
        self.standings.voted(sender, result.contributor, (kind.value, msg.id), result.vote)
        self.knowledge.rated(kind, msg.id, result)
        peer.send_raw(ack_frame(msg.msg_id, msg.type, msg.id))

    async def _pace_feedback(self, sender: str, peer: Peer) -> None:
        """Hold ``sender`` to its FEEDBACK rate: each costs a read and a commit of its own, and
        one AI's flood of them must not take the hub's time from everyone's shares. Over it,
        this FEEDBACK waits (and so do the sender's frames behind it); told once per episode,
        with no ``ref``: the FEEDBACK is still carried out."""
        pace = self.pace
        if pace is None:
            return
        wait, first = pace.take(sender)
        if wait <= 0:
            return
        if first:
            self.counters.errors[ErrorCode.RATE_LIMITED] += 1
            peer.send(
                m.Error(
                    code=ErrorCode.RATE_LIMITED,
                    error=f"slow down: at most {pace.rate:g} FEEDBACK per second; "
                    "they are carried out, later",
                )
            )
        await asyncio.sleep(wait)

    async def trainer_report(self, sender: str, peer: Peer, msg: m.TrainerFigures) -> None:
        # Whose figures these are is the session's identity, never a field of the frame.
        if sender in msg.trust or sender in msg.rejected or sender in msg.refused_merges:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"trust: {sender} cannot report trust in itself; list only its peers",
                msg.msg_id,
            )
        record = TrainerReportRecord(
            ai_id=sender,
            timestamp=self.clock.now(),
            accuracy=msg.accuracy,
            local_only_accuracy=msg.local_only_accuracy,
            centralized_baseline=msg.centralized_baseline,
            merges_kept=msg.merges_kept,
            merges_rejected=msg.merges_rejected,
            trust=dict(msg.trust),
            rejected={peer_id: (r.count, r.reason) for peer_id, r in msg.rejected.items()},
            refused_merges={p: (r.count, r.reason) for p, r in msg.refused_merges.items()},
            final=msg.final,
        )
        await self.store.add_trainer_report(record)
        peer.send_raw(ack_frame(msg.msg_id, msg.type))
