"""Replicas of one hub joined over a bus (``kernal hub --bus redis://...``): trainers on
different replicas see each other as on one hub.

Each replica is a whole hub on the shared database; :class:`Cluster` plugs into the registry
(:class:`~kernal.hub.peers.ClusterLink`) and the sessions (:class:`~kernal.hub.session.Forwarder`)
and speaks to the other replicas over two channels: ``NS:all`` (every replica) and ``NS:r:ID``
(one replica). A bus message is a JSON header line, then the frame it carries, if any:

- ``b`` a broadcast (relayed share, ``AI_JOINED``/``AI_LEFT``): each replica delivers it to its
  own followers of the topic, once; ``s`` a frame for one AI, sent to its replica only.
- ``j``/``l`` an AI joined/left here; ``c`` an AI authenticated here (its session elsewhere is
  evicted with ``replaced``); ``sync``/``snap`` a replica asks for / sends the list of its AIs;
  ``bye`` a replica stops; ``hb`` a replica is alive (with each heartbeat).
- ``f``/``r`` a message handled by the replica that owns its state (see below), and its replies.
- ``v``/``p``/``q`` a vote, a completed collaboration, an item's figures after a feedback,
  committed here: every replica applies them to its standings and knowledge base.

Shares are stored once, by the replica the trainer is on; the others only relay them (and
count them in their in-memory knowledge base, and number them in their own replay log, so a
trainer that resumes on the same replica misses nothing; one that moves is resumed by the
shares' origins, see :mod:`kernal.hub.replay`). Each replica writes a heartbeat key
``NS:hb:ID`` (its figures, for ``/status``) with a TTL of a few seconds; a replica whose key
expired is dead: its AIs leave everyone's presence (``AI_LEFT``) and collaborations with them
fail.

Collaborations: the book of a request, and of the collaboration it becomes, lives with the
requester's replica (the *owner*). A ``COLLABORATION_ACCEPT`` to an AI on another replica, and
``PROGRESS``/``COMPLETE``/``FAILED``/component shares on a collaboration owned elsewhere, are
forwarded to the owner, which handles them as if the sender were local and sends back the
frames for the sender (its ``ACK`` or ``ERROR``). Rejects and relays need no book and go as
frames for one AI.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from kernal.hub.bus import Bus, cancel_all
from kernal.hub.directory import Directory, profile_from_wire, profile_to_wire
from kernal.hub.peers import Peer, Peers, Profile
from kernal.hub.presence import Presence
from kernal.hub.replica_wire import (
    ClusterConfig,
    Evictable,
    Mirrored,
    Outbox,
    Proxy,
    RelayedShare,
    RemotePeer,
    optional_float,
    pack,
    unpack,
)
from kernal.hub.router import Router
from kernal.protocol import ErrorCode, ProtocolError, decode_client_frame, encode
from kernal.protocol import messages as m
from kernal.protocol.codec import RawFields
from kernal.protocol.relay import relay_frame
from kernal.storage import CollaborationStatus, ItemKind, NotFoundError, Vote

log = logging.getLogger("kernal.hub.cluster")

FORWARD_TIMEOUT = 10.0  # seconds a forwarded message waits for the owner's answer
CLAIM_WAIT = 3.0  # seconds a login waits for its session on another replica to leave
MAX_MIRRORED = 100_000  # collaborations owned elsewhere that this replica remembers


_ENDINGS = (b'{"type":"COLLABORATION_COMPLETE"', b'{"type":"COLLABORATION_FAILED"')


class Cluster:
    """This replica's part of the cluster (see the module docstring)."""

    def __init__(
        self,
        bus: Bus,
        config: ClusterConfig,
        *,
        peers: Peers,
        router: Router,
        presence: Presence,
        figures: Callable[[], dict[str, Any]],
    ) -> None:
        self.bus = bus
        self.config = config
        self.replica_id = config.replica_id or f"{socket.gethostname()}-{secrets.token_hex(3)}"
        ns = config.namespace
        self._all = f"{ns}:all"
        self._mine = self.channel_of(self.replica_id)
        self._hb_prefix = f"{ns}:hb:"
        self.peers = peers
        self.router = router
        self.presence = presence
        self._figures = figures
        self.directory = Directory()
        self._replicas: dict[str, dict[str, Any]] = {}  # live replicas -> their latest figures
        self._mirrored: OrderedDict[str, Mirrored] = OrderedDict()
        self._waiting: dict[str, tuple[str, asyncio.Future[tuple[dict[str, Any], bytes]]]] = {}
        self._gone: dict[str, list[asyncio.Future[None]]] = {}  # ai_id -> logins waiting
        # ai_id -> when it last logged in here (kept: one float per AI id ever seen here; a
        # departure must not drop the claim of the login that replaced it)
        self._claims: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._severed = False
        self._stopped = False
        router.standings.feed = self
        router.knowledge.feed = self.item_rated
        self._outbox = Outbox(self._send_group)

    def channel_of(self, replica: str) -> str:
        return f"{self.config.namespace}:r:{replica}"

    def _publish(self, channel: str, data: bytes) -> None:
        """Everything this replica says goes through here, after the frames gathered for AIs
        elsewhere (the bus keeps one publisher's order)."""
        if self._outbox:
            self._outbox.flush()
        self.bus.publish(channel, data)

    def _send_group(self, replica: str, frame: bytes, ai_ids: list[str]) -> None:
        to: str | list[str] = ai_ids[0] if len(ai_ids) == 1 else ai_ids
        header = {"k": "s", "o": self.replica_id, "to": to}
        self.bus.publish(self.channel_of(replica), pack(header, frame))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Subscribe, announce this replica and ask the others for their AIs. Raises
        OSError/ConnectionError (or the client's own errors) if the bus is unreachable."""
        await self.bus.start([self._all, self._mine], self._on_message)
        await self._beat()
        for replica in await self._alive_replicas():
            self._replicas.setdefault(replica, {})
        self._publish(self._all, pack(self._replay_mark({"k": "sync", "o": self.replica_id})))
        self._heartbeat = asyncio.create_task(self._heartbeats())
        log.info(
            "Replica %s joined cluster %r (%d other replicas alive)",
            self.replica_id,
            self.config.namespace,
            len(self._replicas),
        )

    def others_alive(self) -> bool:
        return bool(self._replicas)

    async def stop(self) -> None:
        """Leave cleanly: the others drop this replica's AIs at once (not at its TTL)."""
        if self._stopped:
            return
        self._stopped = True
        if self._tasks:
            # Let what is under way finish (a standings load holds a database connection in a
            # worker thread that cancelling would not stop), briefly.
            await asyncio.wait(list(self._tasks), timeout=2)
        tasks = [*self._tasks, *([self._heartbeat] if self._heartbeat is not None else [])]
        await cancel_all(tasks)
        if not self._severed:
            self._publish(self._all, pack({"k": "bye", "o": self.replica_id}))
            with contextlib.suppress(Exception):
                await self.bus.delete_key(self._hb_prefix + self.replica_id)
        await self.bus.close()

    def sever(self) -> None:
        """Stop speaking on the bus at once, without a goodbye (what a crash looks like to the
        other replicas: they notice when the heartbeat key expires)."""
        self._severed = True
        self._outbox.clear()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self.bus.sever()

    # ------------------------------------------------------------------ heartbeat

    async def _beat(self) -> None:
        figures = {"replica": self.replica_id, "address": self.config.address, **self._figures()}
        await self.bus.set_key(
            self._hb_prefix + self.replica_id, json.dumps(figures).encode(), self.config.ttl
        )

    async def _alive_replicas(self) -> list[str]:
        """Replicas whose heartbeat key is there, this one excepted (a scan, at start only)."""
        keys = await self.bus.find_keys(self._hb_prefix)
        found = [key[len(self._hb_prefix) :] for key in keys]
        return [replica for replica in found if replica != self.replica_id]

    async def _heartbeats(self) -> None:
        while not self._stopped:  # not only cancelled: see bus.cancel_all
            await asyncio.sleep(self.config.heartbeat)
            try:
                await self._beat()
                # Also said on the bus: a replica the others counted dead (a stall longer than
                # the TTL) is heard again and re-synced at once, even when no trainer speaks.
                self._publish(self._all, pack({"k": "hb", "o": self.replica_id}))
                known = list(self._replicas)
                values = await self.bus.get_keys([self._hb_prefix + r for r in known])
            except Exception as exc:
                log.warning("Cluster heartbeat failed (%s); retrying", exc)
                continue
            for replica, value in zip(known, values, strict=True):
                if value is None:
                    log.warning("Replica %s stopped beating: its AIs leave", replica)
                    self._replica_gone(replica)
                elif replica in self._replicas:
                    with contextlib.suppress(ValueError):
                        self._replicas[replica] = json.loads(value)

    def replica_of(self, ai_id: str) -> str | None:
        """The replica ``ai_id`` is joined on, as far as this one knows (None: nowhere)."""
        if ai_id in self.peers:
            return self.replica_id
        entry = self.directory.get(ai_id)
        return None if entry is None else entry.replica

    def replicas(self) -> dict[str, dict[str, Any]]:
        """The figures of every live replica, this one's (current) included."""
        mine = {"replica": self.replica_id, "address": self.config.address, **self._figures()}
        return {self.replica_id: mine, **self._replicas}

    # ------------------------------------------------------------------ ClusterLink (registry)

    def broadcast(self, frame: bytes, exclude: str | None, topic: m.Topic | None) -> None:
        header = {"k": "b", "o": self.replica_id, "x": exclude, "t": topic}
        self._publish(self._all, pack(header, frame))

    def send_to(self, ai_id: str, frame: bytes) -> bool:
        entry = self.directory.get(ai_id)
        if entry is None:
            return False
        self._outbox.add(entry.replica, ai_id, frame)
        return True

    def remote_peer(self, ai_id: str) -> Peer | None:
        entry = self.directory.get(ai_id)
        if entry is None:
            return None
        return RemotePeer(entry.profile, lambda frame: self._send_or_drop(ai_id, frame))

    def _send_or_drop(self, ai_id: str, frame: bytes) -> None:
        self.send_to(ai_id, frame)

    def remote_profiles(self) -> Iterable[Profile]:
        return self.directory.newest_first()

    def remote_count(self) -> int:
        return len(self.directory)

    def remote_followers(self, topic: m.Topic) -> list[str]:
        return self.directory.followers(topic)

    def joined(self, profile: Profile) -> None:
        header = {"k": "j", "o": self.replica_id, "p": profile_to_wire(profile)}
        self._publish(self._all, pack(header))

    def left(self, ai_id: str) -> None:
        self._publish(self._all, pack({"k": "l", "o": self.replica_id, "ai": ai_id}))

    def claimed(self, ai_id: str) -> asyncio.Task[None] | None:
        at = time.time()
        self._claims[ai_id] = at
        self._publish(self._all, pack({"k": "c", "o": self.replica_id, "ai": ai_id, "at": at}))
        if self.directory.get(ai_id) is None:
            return None
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._gone.setdefault(ai_id, []).append(gone)

        async def wait() -> None:
            # Bounded: a replica that dies before answering must not hold the login.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLAIM_WAIT):
                    await gone
            waiting = self._gone.get(ai_id, [])
            if gone in waiting:
                waiting.remove(gone)
            if not waiting:
                self._gone.pop(ai_id, None)

        return asyncio.create_task(wait())

    # ------------------------------------------------------------------ standings and items

    def vote_committed(
        self, rater: str, contributor: str, item: tuple[str, str], vote: Vote
    ) -> None:
        header: dict[str, Any] = {"k": "v", "o": self.replica_id, "r": rater, "c": contributor}
        header.update(i=list(item), s=vote.score, u=vote.usefulness)
        self._publish(self._all, pack(header))

    def pair_completed(self, a: str, b: str) -> None:
        self._publish(self._all, pack({"k": "p", "o": self.replica_id, "a": a, "b": b}))

    def item_rated(
        self, kind: ItemKind, item_id: str, usage_count: int, quality_score: float | None
    ) -> None:
        header: dict[str, Any] = {"k": "q", "o": self.replica_id, "kind": kind.value}
        header.update(i=item_id, n=usage_count, q=quality_score)
        self._publish(self._all, pack(header))

    # ------------------------------------------------------------------ Forwarder (sessions)

    def owner_of(self, message: m.ClientMessage) -> str | None:
        kind = type(message)
        if kind is m.CollaborationAccept:
            assert isinstance(message, m.CollaborationAccept)
            if message.to in self.peers:
                return None
            entry = self.directory.get(message.to)
            return None if entry is None else entry.replica
        if kind in (m.CollaborationProgress, m.CollaborationComplete, m.CollaborationFailed):
            cid: str | None = message.collaboration_id  # type: ignore[union-attr]
        elif kind is m.ComponentShare:
            cid = message.collaboration_id  # type: ignore[union-attr]
        else:
            return None
        mirrored = None if cid is None else self._mirrored.get(cid)
        return None if mirrored is None else mirrored.owner

    async def forward(
        self, peer: Peer, message: m.ClientMessage, raw: RawFields, owner: str
    ) -> None:
        ref = message.msg_id
        if owner not in self._replicas:
            raise ProtocolError(
                ErrorCode.NOT_FOUND,
                f"replica {owner}, where this collaboration lived, is gone; it failed",
                ref,
            )
        forward_id = str(next(self._ids))
        answer: asyncio.Future[tuple[dict[str, Any], bytes]]
        answer = asyncio.get_running_loop().create_future()
        self._waiting[forward_id] = (owner, answer)
        header = {"k": "f", "o": self.replica_id, "id": forward_id, "s": peer.ai_id}
        self._publish(self.channel_of(owner), pack(header, raw.text.encode()))
        try:
            async with asyncio.timeout(FORWARD_TIMEOUT):
                reply, frames = await answer
        except TimeoutError:
            raise ProtocolError(
                ErrorCode.INTERNAL_ERROR,
                f"replica {owner}, which holds this collaboration, did not answer within "
                f"{FORWARD_TIMEOUT:g} s; retry",
                ref,
            ) from None
        finally:
            self._waiting.pop(forward_id, None)
        opened = reply.get("collab")
        if isinstance(opened, dict) and peer.ai_id is not None:
            self._mirror(str(opened["cid"]), Mirrored(owner, peer.ai_id, str(opened["partner"])))
        if frames:
            peer.send_raw(frames)

    def owner_of_collaboration(self, collaboration_id: str) -> str | None:
        """The replica holding ``collaboration_id`` if it is active with a member here and
        owned elsewhere, as far as this replica knows."""
        mirrored = self._mirrored.get(collaboration_id)
        return None if mirrored is None else mirrored.owner

    def _mirror(self, cid: str, mirrored: Mirrored) -> None:
        self._mirrored[cid] = mirrored
        while len(self._mirrored) > MAX_MIRRORED:
            self._mirrored.popitem(last=False)

    # ------------------------------------------------------------------ receiving

    def _on_message(self, channel: str, data: bytes) -> None:
        try:
            header, body = unpack(data)
            origin = str(header["o"])
            kind = header["k"]
        except (ValueError, KeyError, TypeError):
            log.warning("Unreadable bus message on %s; skipped", channel)
            return
        if origin == self.replica_id or self._stopped:
            return
        if kind == "bye":
            self._replica_gone(origin)
            return
        if origin not in self._replicas:
            self._replicas[origin] = {}
            if kind not in ("sync", "snap"):
                # Heard of it before its snapshot (or again after it was thought dead).
                sync = self._replay_mark({"k": "sync", "o": self.replica_id})
                self._publish(self.channel_of(origin), pack(sync))
        try:
            self._handle(kind, origin, header, body)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("Malformed %r bus message from %s (%s); skipped", kind, origin, exc)

    def _handle(self, kind: str, origin: str, header: dict[str, Any], body: bytes) -> None:
        if kind == "b":
            topic = header.get("t")
            exclude = header.get("x")
            if topic in ("patterns", "components"):
                body = self._adopt_share(body, topic, to=None)
            self.peers.broadcast_here(body, exclude=exclude, topic=topic)
        elif kind == "s":
            to = header["to"]
            for ai_id in [str(to)] if isinstance(to, str) else [str(ai) for ai in to]:
                self._deliver(ai_id, body)
        elif kind == "j":
            profile = profile_from_wire(header["p"])
            self.directory.add(profile, origin)
        elif kind == "l":
            self._remote_left(str(header["ai"]), origin)
        elif kind == "c":
            self._evict(str(header["ai"]), origin, float(header["at"]))
        elif kind == "sync":
            self._heard_replay(header)
            ais = [profile_to_wire(p) for p in self._local_profiles()]
            snap = self._replay_mark({"k": "snap", "o": self.replica_id, "ais": ais})
            self._publish(self.channel_of(origin), pack(snap))
        elif kind == "snap":
            self._snapshot(origin, [profile_from_wire(entry) for entry in header["ais"]])
            self._heard_replay(header)
        elif kind == "f":
            self._spawn(self._serve_forward(origin, str(header["id"]), str(header["s"]), body))
        elif kind == "r":
            waiting = self._waiting.get(str(header["id"]))
            if waiting is not None and not waiting[1].done():
                waiting[1].set_result((header, body))
        elif kind == "v":
            kind_of, item_id = header["i"]
            vote = Vote(optional_float(header["s"]), optional_float(header["u"]))
            item = (str(kind_of), str(item_id))
            self.router.standings.apply_vote(str(header["r"]), str(header["c"]), item, vote)
        elif kind == "p":
            self.router.standings.apply_pair(str(header["a"]), str(header["b"]))
        elif kind == "q":
            item_kind, count = ItemKind(header["kind"]), int(header["n"])
            self.router.knowledge.apply_rated(
                item_kind, str(header["i"]), count, optional_float(header["q"])
            )

    def _replay_mark(self, header: dict[str, Any]) -> dict[str, Any]:
        """``header`` with this replica's run and how many shares it stored so far: from then
        on another replica holds what this one relays, and can resume trainers by it."""
        replay = self.router.replay
        return header | {"run": replay.run, "os": replay.own_seq}

    def _heard_replay(self, header: dict[str, Any]) -> None:
        run, stored = header.get("run"), header.get("os")
        if isinstance(run, str) and type(stored) is int:  # an older replica does not say
            self.router.replay.heard(run, stored)

    def _deliver(self, to: str, frame: bytes) -> None:
        """A frame another replica sent for ``to``, an AI here."""
        if frame.startswith(b'{"type":"OS_COMPONENT_SHARE"'):
            frame = self._adopt_share(frame, "components", to=to)
        elif frame.startswith(_ENDINGS):
            # The member here was told: nothing left to fail if the owner dies later.
            self._mirrored.pop(str(json.loads(frame).get("collaboration_id")), None)
        self.peers.deliver(to, frame)

    def _local_profiles(self) -> list[Profile]:
        return [p for p in self.peers.profiles() if self.directory.get(p.ai_id) is None]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _adopt_share(self, frame: bytes, topic: m.Topic, *, to: str | None) -> bytes:
        """A share relayed by another replica: counted in this replica's knowledge base and
        numbered in its replay log (its ``seq`` is this replica's), so STATE and resume here
        include it. The frame as relayed if it is not one the router made."""
        share = RelayedShare.parse(frame, topic)
        self.router.knowledge.shared(share.record, private=to is not None)
        if share.head is None:
            return frame
        head = share.head
        return self.router.replay.record(
            lambda tail: head + tail,
            sender=share.record.contributor,
            topic=topic,
            to=to,
            origin=share.origin,
        )

    def _snapshot(self, replica: str, profiles: list[Profile]) -> None:
        """``replica``'s AIs as it listed them: the entries of that replica become these."""
        listed = {profile.ai_id for profile in profiles}
        for ai_id in self.directory.on_replica(replica):
            if ai_id not in listed:
                self._remote_left(ai_id, replica)
        for profile in sorted(profiles, key=lambda p: p.connected_at):
            if profile.ai_id not in self.peers:
                self.directory.add(profile, replica)

    def _evict(self, ai_id: str, origin: str, at: float) -> None:
        session = self.peers.live(ai_id)
        # Of two logins on two replicas at once, the later one stays (ties: the higher replica
        # name), whichever claim arrives first: each replica compares the same two claims.
        mine = self._claims.get(ai_id, 0.0)
        if (mine, self.replica_id) > (at, origin):
            return
        if isinstance(session, Evictable):
            log.info("[%s] Connected to replica %s: evicting it here", ai_id, origin)
            session.evict(f"{ai_id} connected again, to replica {origin}; closing this connection")

    def _remote_left(self, ai_id: str, replica: str, *, announce: bool = False) -> None:
        """``ai_id`` left ``replica``: forget it, fail the collaborations this replica holds
        with it; ``announce``: tell the trainers here (when its replica could not)."""
        if self.directory.remove(ai_id, replica) is None:
            return
        for gone in self._gone.pop(ai_id, []):
            if not gone.done():
                gone.set_result(None)
        if announce and self.presence.announced(leaving=True):
            self.peers.broadcast_here(encode(m.AiLeft(ai_id=ai_id)), topic="presence")
        self.presence.forget(ai_id)
        records = self.router.detach(ai_id)
        if records:
            self._spawn(self._fail_with(ai_id, records))

    async def _fail_with(self, ai_id: str, records: list[Any]) -> None:
        for record in records:
            ending = m.CollaborationFailed(
                collaboration_id=record.collaboration_id, reason=f"partner {ai_id} disconnected"
            )
            await self.router.end_collaboration(record, ending, sender=ai_id)

    def _replica_gone(self, replica: str) -> None:
        """``replica`` said goodbye or stopped beating: its AIs leave, what waited on it fails,
        collaborations it owned with members here fail."""
        if self._replicas.pop(replica, None) is None and not self.directory.on_replica(replica):
            return
        for ai_id in self.directory.on_replica(replica):
            self._remote_left(ai_id, replica, announce=True)
        for forward_id, (owner, answer) in list(self._waiting.items()):
            if owner == replica and not answer.done():
                answer.set_exception(
                    ProtocolError(
                        ErrorCode.INTERNAL_ERROR,
                        f"replica {replica}, which held this collaboration, is gone; it failed",
                    )
                )
                self._waiting.pop(forward_id, None)
        orphans = [(cid, mir) for cid, mir in self._mirrored.items() if mir.owner == replica]
        for cid, _ in orphans:
            del self._mirrored[cid]
        if orphans:
            self._spawn(self._fail_orphans(replica, orphans))

    async def _fail_orphans(self, replica: str, orphans: list[tuple[str, Mirrored]]) -> None:
        store = self.router.store
        for cid, mirrored in orphans:
            if mirrored.member not in self.peers:
                continue  # it left; its replica's AI_LEFT told the owner, now gone too
            reason = f"replica {replica} of partner {mirrored.partner} is gone"
            try:
                await store.end_collaboration(
                    cid, CollaborationStatus.FAILED, time.time(), reason=reason
                )
            except NotFoundError:
                # The owner ended it before it died, and its word never reached the member
                # (or it would have been forgotten): tell the member, unless it completed.
                record = await store.get_collaboration(cid)
                if record is None or record.status is not CollaborationStatus.FAILED:
                    continue
            ending = m.CollaborationFailed(collaboration_id=cid, reason=reason)
            self.peers.deliver(mirrored.member, relay_frame(ending, None, mirrored.partner))

    async def _serve_forward(self, origin: str, forward_id: str, sender: str, body: bytes) -> None:
        """Handle a message another replica forwarded as if ``sender`` were here; send back the
        frames for it (and the collaboration an accept opened)."""
        entry = self.directory.get(sender)
        proxy = Proxy(sender, entry.profile if entry is not None else None)
        reply: dict[str, Any] = {"k": "r", "o": self.replica_id, "id": forward_id}
        try:
            message, raw = decode_client_frame(body)
            await self.router.dispatch(proxy, message, raw)
            if isinstance(message, m.CollaborationAccept):
                for record in self.router.book.active_of(sender):
                    if (record.requester, record.request_id) == (message.to, message.request_id):
                        reply["collab"] = {"cid": record.collaboration_id, "partner": message.to}
        except ProtocolError as exc:
            proxy.send(m.Error(code=exc.code, error=exc.reason, ref=exc.ref))
        except Exception:
            log.exception("[%s] Failed to handle a message forwarded by %s", sender, origin)
            proxy.send(
                m.Error(
                    code=ErrorCode.INTERNAL_ERROR,
                    error="the hub failed to handle this message; nothing was stored",
                )
            )
        self._publish(self.channel_of(origin), pack(reply, b"".join(proxy.frames)))
