"""What the hub does with each message from a joined AI.

Every handler either completes and replies ``ACK`` (shares only after their transaction has
committed), or raises :class:`ProtocolError` before anything is persisted or relayed. ``from``,
contributors and timestamps always come from the authenticated session and the hub's clock.

The router gets its collaborators (store, registry of peers, collaboration book, standings,
clock) and knows nothing of sessions, sockets or the server around it. FEEDBACK and
TRAINER_REPORT go to the :class:`~kernal.hub.feedback.FeedbackDesk` it owns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kernal.hub.collaborations import CollaborationBook
from kernal.hub.counters import HubCounters
from kernal.hub.feedback import FeedbackDesk
from kernal.hub.knowledge import Knowledge
from kernal.hub.limits import Pace
from kernal.hub.peers import Peer, Peers
from kernal.hub.replay import ReplayLog
from kernal.hub.reputation import Standings
from kernal.protocol import ErrorCode, ProtocolError
from kernal.protocol import messages as m
from kernal.protocol.codec import RawFields
from kernal.protocol.relay import (
    ack_frame,
    encode_stamps,
    encode_value,
    relay_body,
    relay_frame,
    relay_request,
    request_head,
    share_frame,
)
from kernal.storage import (
    CollaborationRecord,
    CollaborationStatus,
    ComponentRecord,
    ConflictError,
    ItemRecord,
    NewShare,
    NotFoundError,
    PatternRecord,
    ShareOutcome,
    Store,
)
from kernal.timing import Clock

log = logging.getLogger("kernal.hub")


@dataclass(frozen=True, kw_only=True)
class Router:
    """Carries out the messages of joined AIs with the hub's parts it is given."""

    store: Store
    peers: Peers
    book: CollaborationBook
    standings: Standings
    knowledge: Knowledge
    replay: ReplayLog
    clock: Clock
    request_fanout: int = 16
    max_data_bytes: int = 512 * 1024
    feedback_pace: Pace | None = None  # None: FEEDBACK as fast as they come
    counters: HubCounters = field(default_factory=HubCounters)
    feedback: FeedbackDesk = field(init=False)
    """FEEDBACK and TRAINER_REPORT: what AIs say of others' work and of their own learning."""

    def __post_init__(self) -> None:
        desk = FeedbackDesk(
            store=self.store,
            standings=self.standings,
            knowledge=self.knowledge,
            clock=self.clock,
            pace=self.feedback_pace,
            counters=self.counters,
        )
        object.__setattr__(self, "feedback", desk)  # frozen: set once, here

    @staticmethod
    def can_pipeline(message: m.ClientMessage) -> bool:
        """Whether ``message`` may be stored concurrently with its neighbours: plain shares only,
        which touch no in-memory state that a later frame of the same client could depend on."""
        if isinstance(message, m.PatternShare):
            return True
        return (
            isinstance(message, m.ComponentShare)
            and message.collaboration_id is None
            and not message.collaboration_complete
        )

    async def dispatch(
        self, peer: Peer, message: m.ClientMessage, raw: RawFields | None = None
    ) -> None:
        """Carry out ``message`` from the joined ``peer``; ``raw``: its fields as sent, for
        relays (without it, relays are encoded from the model)."""
        sender = peer.ai_id
        assert sender is not None
        match message:
            case m.PatternShare():
                await self._pattern(sender, peer, message, raw)
            case m.ComponentShare():
                await self._component(sender, peer, message, raw)
            case m.CollaborationRequest():
                self._request(sender, peer, message, raw)
            case m.CollaborationAccept():
                await self._accept(sender, peer, message, raw)
            case m.CollaborationReject():
                self._reject(sender, peer, message, raw)
            case m.CollaborationProgress():
                await self._progress(sender, peer, message, raw)
            case m.CollaborationComplete() | m.CollaborationFailed():
                await self._end(sender, peer, message, raw)
            case m.Feedback():
                await self.feedback.feedback(sender, peer, message)
            case m.TrainerFigures():
                await self.feedback.trainer_report(sender, peer, message)
            case _:  # HELLO and PING are handled by the session
                raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unexpected {message.type}")

    def _check_size(self, name: str, value: object, raw: RawFields | None, ref: str | None) -> None:
        text = None if raw is None else raw.text_of(name)
        size = len(text) if text is not None else len(encode_value(value))
        if size > self.max_data_bytes:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"{name}: {size} bytes of JSON, more than this hub takes ({self.max_data_bytes}; "
                "its operator sets --max-data-bytes)",
                ref,
            )

    async def expire_silent(self, seconds: float) -> int:
        """Fail the collaborations on which no member spoke for ``seconds`` (a partner that
        vanished without its connection closing); both members are told. Returns how many."""
        expired = self.book.silent(seconds)
        for record in expired:
            reason = f"no member spoke on it for {seconds:g} s"
            ending = m.CollaborationFailed(collaboration_id=record.collaboration_id, reason=reason)
            await self.end_collaboration(record, ending, sender=record.requester)
            self.peers.send_to(record.requester, relay_frame(ending, None, record.acceptor))
        return len(expired)

    def detach(self, ai_id: str) -> list[CollaborationRecord]:
        """An AI is leaving: forget its open requests; return its active collaborations (for
        :meth:`end_collaboration`)."""
        self.book.forget_requests_of(ai_id)
        return self.book.active_of(ai_id)

    # ------------------------------------------------------------------ knowledge

    async def share_many(
        self,
        peer: Peer,
        shares: Sequence[tuple[m.ClientMessage, RawFields | None]],
        fail: Callable[[ProtocolError], object],
    ) -> int:
        """Carry out a run of plain shares (:meth:`can_pipeline`) from the joined ``peer`` as
        :meth:`dispatch` would one by one, but stored with one write (one job, one future):
        each is checked alone, all are committed together, then in order each gets its ACK and
        relay, or its ERROR through ``fail``. Returns how many were ACKed."""
        sender = peer.ai_id
        assert sender is not None
        now = self.clock.now()
        checked: list[NewShare | ProtocolError] = []
        for message, raw in shares:
            try:
                checked.append(self._new_share(message, raw, sender, now))
            except ProtocolError as exc:
                checked.append(exc)
        new = [item for item in checked if isinstance(item, NewShare)]
        started = time.perf_counter()
        try:
            results = await self.store.add_shares(new) if new else []
        except Exception as exc:  # the store's contract is to return it; an outage may not
            results = [exc] * len(new)
        stored = iter(results)
        self.counters.persist_seconds.observe_many(time.perf_counter() - started, len(new))
        acked = 0
        shared: list[ItemRecord] = []
        public: list[ItemRecord] = []  # shared with everyone: listed in STATE
        # What every relay of this run has in common, encoded once; the ACKs, and the relays
        # of each topic, leave as one queued write per connection.
        sender_json, stamp = encode_value(sender), encode_stamps({"timestamp": now})
        acks: list[bytes] = []
        relays: list[bytes] = []
        relay_topic: m.Topic = "patterns"
        record_relay = self.replay.record
        for (message, raw), item in zip(shares, checked, strict=True):
            if isinstance(item, ProtocolError):
                self._send_acks(peer, acks)  # the ERROR after the ACKs before it
                fail(item)
                continue
            outcome = next(stored)
            if isinstance(outcome, Exception):
                self._send_acks(peer, acks)
                fail(self._share_failed(message, outcome))
                continue
            acked += 1
            record = item.record
            duplicate = outcome is ShareOutcome.DUPLICATE
            acks.append(
                ack_frame(message.msg_id, message.type, record.item_id, duplicate=duplicate or None)
            )
            if duplicate:
                continue
            shared.append(record)
            if item.recipient is None:
                public.append(record)
            else:
                self.knowledge.shared(record, private=True)
            topic: m.Topic = "patterns" if isinstance(record, PatternRecord) else "components"
            # The frame but its tail (seq...), which the replay log adds: built here, once.
            head = relay_body(message, raw, sender_json) + stamp
            frame = record_relay(head.__add__, sender=sender, topic=topic, to=item.recipient)
            if item.recipient is not None:
                self.peers.send_to(item.recipient, frame)
                continue
            if topic != relay_topic:
                self.peers.broadcast_many(relays, exclude=sender, topic=relay_topic)
                relays, relay_topic = [], topic
            relays.append(frame)
        self._send_acks(peer, acks)
        self.peers.broadcast_many(relays, exclude=sender, topic=relay_topic)
        if shared:
            self.knowledge.shared_many(public)
            _log_shared(shared, sender)
        return acked

    def _new_share(
        self, message: m.ClientMessage, raw: RawFields | None, sender: str, now: float
    ) -> NewShare:
        """What to store for a plain share, checked as :meth:`_pattern` and
        :meth:`_component` check it; raises ProtocolError."""
        ref = message.msg_id
        if isinstance(message, m.PatternShare):
            self._check_size("pattern_data", message.pattern_data, raw, ref)
            record: ItemRecord = PatternRecord(
                message.pattern_id, message.pattern_data, sender, now
            )
            return NewShare(record, None if raw is None else raw.text_of("pattern_data"))
        if not isinstance(message, m.ComponentShare) or not self.can_pipeline(message):
            raise ProtocolError(
                ErrorCode.INTERNAL_ERROR, f"{message.type} is not a plain share", ref
            )
        self._check_size("component_data", message.component_data, raw, ref)
        if message.to is not None:
            self.peers.require_online(message.to, ref)
        record = ComponentRecord(
            message.component_id, message.component_data, sender, now, message.quality_score
        )
        data_text = None if raw is None else raw.text_of("component_data")
        return NewShare(record, data_text, message.to)

    def _send_acks(self, peer: Peer, acks: list[bytes]) -> None:
        """Queue ``acks`` for ``peer`` as one write (counted as the frames they are); empty it."""
        if len(acks) == 1:
            peer.send_raw(acks[0])
        elif acks:
            data = b"".join(acks)
            peer.raw_sender(data)
            self.counters.sent_many(b"ACK", len(acks), len(data))
        acks.clear()

    @staticmethod
    def _share_failed(message: m.ClientMessage, exc: Exception) -> ProtocolError:
        if isinstance(exc, ConflictError):
            return ProtocolError(ErrorCode.CONFLICT, str(exc), message.msg_id)
        # An outage or a bug must cost this frame, not the connection or the hub.
        log.error("Failed to store %s", message.type, exc_info=exc)
        return ProtocolError(
            ErrorCode.INTERNAL_ERROR,
            f"the hub failed to handle this {message.type}; nothing was stored",
            message.msg_id,
        )

    async def _pattern(
        self, sender: str, peer: Peer, msg: m.PatternShare, raw: RawFields | None
    ) -> None:
        self._check_size("pattern_data", msg.pattern_data, raw, msg.msg_id)
        now = self.clock.now()
        record = PatternRecord(msg.pattern_id, msg.pattern_data, sender, now)
        started = time.perf_counter()
        try:
            outcome = await self.store.add_pattern(
                record, data_text=None if raw is None else raw.text_of("pattern_data")
            )
        except ConflictError as exc:
            raise ProtocolError(ErrorCode.CONFLICT, str(exc), msg.msg_id) from None
        self.counters.persist_seconds.observe(time.perf_counter() - started)
        duplicate = outcome is ShareOutcome.DUPLICATE
        ack = ack_frame(msg.msg_id, msg.type, msg.pattern_id, duplicate=duplicate or None)
        peer.send_raw(ack)
        if duplicate:
            return
        self.knowledge.shared(record)
        log.info("Pattern %s shared by %s", msg.pattern_id, sender)
        frame = self.replay.record(
            share_frame(msg, raw, sender, now),
            sender=sender,
            topic="patterns",
        )
        self.peers.broadcast(frame, exclude=sender, topic="patterns")

    async def _component(
        self, sender: str, peer: Peer, msg: m.ComponentShare, raw: RawFields | None
    ) -> None:
        ref = msg.msg_id
        self._check_size("component_data", msg.component_data, raw, ref)
        completes: CollaborationRecord | None = None
        if msg.collaboration_complete and msg.collaboration_id is None:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                "collaboration_id: required when collaboration_complete is true",
                ref,
            )
        if msg.collaboration_id is not None:
            # Only members speak on a collaboration, with or without completing it.
            collaboration = await self._member_view(msg.collaboration_id, sender, ref)
            partner = self.book.partner(collaboration, sender)
            if msg.collaboration_complete:
                if msg.to not in (None, partner):
                    raise ProtocolError(
                        ErrorCode.FORBIDDEN,
                        f"the result of collaboration {collaboration.collaboration_id} goes to "
                        f"its partner {partner}, not {msg.to}",
                        ref,
                    )
                completes = collaboration
        if msg.to is not None:
            self.peers.require_online(msg.to, ref)
        now = self.clock.now()
        record = ComponentRecord(
            msg.component_id, msg.component_data, sender, now, msg.quality_score
        )
        started = time.perf_counter()
        try:
            outcome = await self.store.add_component(
                record,
                completes_collaboration=completes.collaboration_id if completes else None,
                data_text=None if raw is None else raw.text_of("component_data"),
                recipient=msg.to,
            )
        except ConflictError as exc:
            raise ProtocolError(ErrorCode.CONFLICT, str(exc), ref) from None
        except NotFoundError as exc:
            raise ProtocolError(ErrorCode.NOT_FOUND, str(exc), ref) from None
        self.counters.persist_seconds.observe(time.perf_counter() - started)
        duplicate = outcome is ShareOutcome.DUPLICATE
        if completes is not None:
            self.counters.collaborations_ended[CollaborationStatus.COMPLETED] += 1
            self.book.finish(completes.collaboration_id)
            self.standings.collaborated(completes.requester, completes.acceptor)
            log.info(
                "Collaboration %s completed by %s with component %s",
                completes.collaboration_id,
                sender,
                msg.component_id,
            )
        peer.send_raw(ack_frame(ref, msg.type, msg.component_id, duplicate=duplicate or None))
        if not duplicate:
            self.knowledge.shared(record, private=msg.to is not None)
        elif completes is None:
            return
        log.info("Component %s shared by %s", msg.component_id, sender)
        frame = self.replay.record(
            share_frame(msg, raw, sender, now),
            sender=sender,
            topic="components",
            to=msg.to,
        )
        if msg.to is not None:
            self.peers.send_to(msg.to, frame)
        else:
            self.peers.broadcast(frame, exclude=sender, topic="components")

    # ------------------------------------------------------------------ collaborations

    def _request(
        self, sender: str, peer: Peer, msg: m.CollaborationRequest, raw: RawFields | None
    ) -> None:
        acks: list[bytes] = []
        self._relay_request(sender, peer, msg, self._request_parts(sender, peer), acks)
        peer.send_raw(acks[0])

    def requests(
        self,
        peer: Peer,
        requests: Sequence[m.CollaborationRequest],
        fail: Callable[[ProtocolError], object],
    ) -> int:
        """Carry out a run of ``COLLABORATION_REQUEST``s from the joined ``peer`` as
        :meth:`dispatch` would one by one (each checked, booked and relayed in order, its ERROR
        through ``fail``, which returns False to end the run there), with what they have in
        common computed once: the sender's standing
        and specialization cannot change within the run (nothing else runs meanwhile), so the
        relayed frames' opening and stamps are encoded once, and the ACKs leave as one queued
        write. Returns how many were ACKed."""
        sender = peer.ai_id
        assert sender is not None
        parts = self._request_parts(sender, peer)
        acks: list[bytes] = []
        acked = 0
        for msg in requests:
            try:
                self._relay_request(sender, peer, msg, parts, acks)
                acked += 1
            except ProtocolError as exc:
                self._send_acks(peer, acks)  # the ERROR after the ACKs before it
                if fail(exc) is False:
                    break
            except Exception:
                # A bug must cost this frame, not the connection or the hub (as dispatch).
                log.exception("[%s] Failed to handle %s", sender, msg.type)
                self._send_acks(peer, acks)
                failed = ProtocolError(
                    ErrorCode.INTERNAL_ERROR,
                    f"the hub failed to handle this {msg.type}; nothing was stored",
                    msg.msg_id,
                )
                if fail(failed) is False:
                    break
        self._send_acks(peer, acks)
        return acked

    def _request_parts(self, sender: str, peer: Peer) -> tuple[bytes, bytes, str | None]:
        """What every relayed request of ``sender`` has in common now: the frame's opening, its
        stamps and closing brace (the hub's view of the requester, so a receiver can judge
        complementarity without a lookup), and the specialization to sample unlike."""
        profile = peer.profile
        specialization = None if profile is None else profile.specialization
        stamps = {
            "specialization": specialization,
            "reputation": self.standings.of(sender),
            "credibility": self.standings.doubted(sender),
        }
        head = request_head(encode_value(sender))
        return head, encode_stamps(stamps) + b"}\n", specialization

    def _relay_request(
        self,
        sender: str,
        peer: Peer,
        msg: m.CollaborationRequest,
        parts: tuple[bytes, bytes, str | None],
        acks: list[bytes],
    ) -> None:
        """Check, book and relay one request; append its ACK to ``acks``."""
        to = msg.to
        if to is not None:
            if to == sender:
                raise ProtocolError(
                    ErrorCode.FORBIDDEN,
                    "a collaboration request cannot be sent to yourself",
                    msg.msg_id,
                )
            self.peers.require_online(to, msg.msg_id)
        self.book.add_request(sender, msg)
        head, tail, unlike = parts
        forward = relay_request(msg, head, tail)
        if to is not None:
            self.peers.send_to(to, forward)
        else:
            # To every follower on a small hub; past request_fanout, to that many of them, the
            # complementary ones first: relaying to all made requests cost N^2.
            chosen = self.peers.sample(
                "requests", self.request_fanout, exclude=sender, unlike=unlike
            )
            self.peers.send_to_many(chosen, forward)
        acks.append(ack_frame(msg.msg_id, msg.type, msg.request_id))

    async def _accept(
        self, sender: str, peer: Peer, msg: m.CollaborationAccept, raw: RawFields | None
    ) -> None:
        self.peers.require_online(msg.to, msg.msg_id)
        try:
            record = self.book.open_collaboration(msg.to, msg.request_id, sender, self.clock.now())
        except ProtocolError as exc:
            exc.ref = msg.msg_id
            raise
        try:
            await self.store.create_collaboration(record)
        except BaseException:
            self.book.abandon(record)
            raise
        self.book.activate(record)
        self.counters.collaborations_started += 1
        log.info("Collaboration %s started: %s <-> %s", record.collaboration_id, msg.to, sender)
        self.peers.send_to(
            msg.to, relay_frame(msg, raw, sender, collaboration_id=record.collaboration_id)
        )
        ack = ack_frame(
            msg.msg_id, msg.type, msg.request_id, collaboration_id=record.collaboration_id
        )
        peer.send_raw(ack)

    def _reject(
        self, sender: str, peer: Peer, msg: m.CollaborationReject, raw: RawFields | None
    ) -> None:
        self.peers.require_online(msg.to, msg.msg_id)
        self.peers.send_to(msg.to, relay_frame(msg, raw, sender))
        peer.send_raw(ack_frame(msg.msg_id, msg.type, msg.request_id))

    async def _member_view(
        self, collaboration_id: str, sender: str, ref: str | None
    ) -> CollaborationRecord:
        try:
            return self.book.member_view(collaboration_id, sender)
        except ProtocolError as exc:
            exc.ref = ref
            if exc.code is not ErrorCode.NOT_FOUND:
                raise
            # Not in this book: on a cluster it may be active in another replica's (a member
            # there would have been sent to it). An outsider is refused as on one hub.
            stored = await self.store.get_collaboration(collaboration_id)
            if stored is None or stored.status is not CollaborationStatus.ACTIVE:
                raise
            if sender in (stored.requester, stored.acceptor):
                raise
            raise ProtocolError(
                ErrorCode.FORBIDDEN,
                f"{sender} is not a member of collaboration {collaboration_id}",
                ref,
            ) from None

    async def _progress(
        self, sender: str, peer: Peer, msg: m.CollaborationProgress, raw: RawFields | None
    ) -> None:
        record = await self._member_view(msg.collaboration_id, sender, msg.msg_id)
        self.book.set_progress(msg.collaboration_id, msg.progress)  # stored by the next flush
        self.peers.send_to(self.book.partner(record, sender), relay_frame(msg, raw, sender))
        peer.send_raw(ack_frame(msg.msg_id, msg.type, msg.collaboration_id))

    async def _end(
        self,
        sender: str,
        peer: Peer,
        msg: m.CollaborationComplete | m.CollaborationFailed,
        raw: RawFields | None,
    ) -> None:
        record = await self._member_view(msg.collaboration_id, sender, msg.msg_id)
        await self.end_collaboration(record, msg, sender=sender, raw=raw)
        peer.send_raw(ack_frame(msg.msg_id, msg.type, msg.collaboration_id))

    async def end_collaboration(
        self,
        record: CollaborationRecord,
        ending: m.CollaborationComplete | m.CollaborationFailed,
        *,
        sender: str,
        raw: RawFields | None = None,
    ) -> None:
        """Close ``record`` in the store as ``ending`` says (a member's frame, or one the hub
        makes when a member leaves) and relay ``ending`` to the partner of ``sender``."""
        cid = record.collaboration_id
        unsaved = self.book.take_progress({cid})
        self.book.finish(cid)
        completed = isinstance(ending, m.CollaborationComplete)
        try:
            if unsaved and not completed:  # completed ones are stored at 100
                await self.store.set_collaboration_progress(cid, unsaved[cid])
            await self.store.end_collaboration(
                cid,
                CollaborationStatus.COMPLETED if completed else CollaborationStatus.FAILED,
                self.clock.now(),
                outcome=ending.result if isinstance(ending, m.CollaborationComplete) else None,
                reason=ending.reason if isinstance(ending, m.CollaborationFailed) else None,
            )
        except NotFoundError:
            return  # already closed (e.g. completed by a component share in the same instant)
        self.counters.collaborations_ended[
            CollaborationStatus.COMPLETED if completed else CollaborationStatus.FAILED
        ] += 1
        if isinstance(ending, m.CollaborationComplete):
            self.standings.collaborated(record.requester, record.acceptor)
            log.info("Collaboration %s completed by %s", cid, sender)
        else:
            log.info("Collaboration %s failed (%s): %s", cid, sender, ending.reason)
        self.peers.send_to(self.book.partner(record, sender), relay_frame(ending, raw, sender))


def _log_shared(records: list[ItemRecord], sender: str) -> None:
    """One line per kind for a run of shares (a line per share cost more than storing it)."""
    if not log.isEnabledFor(logging.INFO):
        return
    for kind, label in ((PatternRecord, "Pattern"), (ComponentRecord, "Component")):
        ids = [record.item_id for record in records if isinstance(record, kind)]
        if len(ids) == 1:
            log.info("%s %s shared by %s", label, ids[0], sender)
        elif ids:
            log.info("%ss %s shared by %s", label, ", ".join(ids), sender)
