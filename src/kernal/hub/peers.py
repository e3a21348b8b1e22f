"""Who is connected: the registry of live sessions, and sending to them.

This is the seam the cluster plugs into: everything else in the hub asks it who is online and
hands it frames to deliver, and never touches a connection directly. With ``--bus``,
:attr:`Peers.cluster` is set (:class:`ClusterLink`, implemented by :mod:`kernal.hub.cluster`):
AIs on other replicas then count as online, frames for them and broadcasts go over the bus.
Without it every hook is one ``is None`` test, off the per-recipient loops.

Each AI id has at most one *live* session. :meth:`Peers.claim` makes a newly authenticated
session the live one in a single step (no await), so any number of simultaneous logins of one
AI leave exactly one live session; the replaced one is told by the caller and departs. A live
session becomes *joined* when it has said HELLO: only joined peers get relays and presence, and
each only the topics it follows (all of them unless its HELLO said otherwise).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kernal.hub.counters import HubCounters, frame_type
from kernal.protocol import ErrorCode, ProtocolError, encode
from kernal.protocol.messages import TOPICS, ServerMessage, Topic

Sender = Callable[[bytes], None]
EVERYONE_CACHE_SIZE = 1024  # (topic, sender) audiences of "every follower" kept between joins


@dataclass
class _Fanout:
    """Relays queued this loop turn for one audience (see :meth:`Peers.send_to_many`)."""

    audience: Sequence[str]  # the ids as the caller gave them: same object, same audience
    senders: list[Sender]  # of those joined when the first frame came
    frames: list[bytes] = field(default_factory=list)


@dataclass(frozen=True)
class Profile:
    """What an AI said about itself in its latest HELLO."""

    ai_id: str
    specialization: str
    capabilities: tuple[str, ...]
    connected_at: float
    follows: frozenset[Topic] = frozenset(TOPICS)


class Peer(Protocol):
    """A session as the registry sees it."""

    @property
    def ai_id(self) -> str | None: ...

    @property
    def profile(self) -> Profile | None:
        """None until the session's first HELLO."""

    def send(self, message: ServerMessage) -> None:
        """Queue ``message`` for this peer; never waits for the network."""

    def send_raw(self, frame: bytes) -> None:
        """Queue an already encoded frame."""

    @property
    def raw_sender(self) -> Sender:
        """The fastest way to queue an encoded frame for this peer (the registry keeps it, so
        a broadcast is one call per peer). It does not count the frame: the registry does,
        once per broadcast (:class:`~kernal.hub.counters.HubCounters`)."""


class ClusterLink(Protocol):
    """What the registry asks of the cluster (AIs on other replicas)."""

    def broadcast(self, frame: bytes, exclude: str | None, topic: Topic | None) -> None:
        """Have every other replica deliver ``frame`` as :meth:`Peers.broadcast` would."""

    def send_to(self, ai_id: str, frame: bytes) -> bool:
        """Queue ``frame`` for ``ai_id`` on another replica; False if it is on none."""

    def remote_peer(self, ai_id: str) -> Peer | None:
        """``ai_id`` on another replica, as a peer frames can be sent to."""

    def remote_profiles(self) -> Iterable[Profile]:
        """Profiles of the AIs on other replicas, the ones that joined last first."""

    def remote_count(self) -> int: ...

    def remote_followers(self, topic: Topic) -> list[str]: ...

    def joined(self, profile: Profile) -> None:
        """An AI joined (or said HELLO again) here."""

    def left(self, ai_id: str) -> None:
        """A session of this AI finished departing here."""

    def claimed(self, ai_id: str) -> asyncio.Task[None] | None:
        """An AI authenticated here: evict it elsewhere; the task ends when it left there."""


class Peers:
    """The live session of each AI id, which of them have joined, and who follows what."""

    def __init__(
        self, *, rng: random.Random | None = None, counters: HubCounters | None = None
    ) -> None:
        self._counters = counters or HubCounters()
        self._live: dict[str, Peer] = {}
        self._joined: dict[str, Peer] = {}
        self._senders: dict[str, Sender] = {}  # of the joined peers
        self._followers: dict[Topic, dict[str, Sender]] = {topic: {} for topic in TOPICS}
        self._audience_cache: dict[Topic, list[str]] = {}
        self._everyone: dict[tuple[Topic, str], tuple[str, ...]] = {}
        self._fanout: _Fanout | None = None
        self._departures: dict[str, asyncio.Task[None]] = {}
        self._rng = rng or random.Random()
        self.cluster: ClusterLink | None = None  # set by a clustered hub

    # ------------------------------------------------------------------ membership

    def claim(self, peer: Peer) -> Peer | None:
        """Make ``peer`` the live session of its AI id; return the session it replaces."""
        assert peer.ai_id is not None, "claim after authentication"
        previous = self._live.get(peer.ai_id)
        self._live[peer.ai_id] = peer
        self._unjoin(peer.ai_id)
        if self.cluster is not None:
            elsewhere = self.cluster.claimed(peer.ai_id)
            if elsewhere is not None and previous is None:
                self.departing(peer.ai_id, elsewhere)
        return previous if previous is not peer else None

    def is_live(self, peer: Peer) -> bool:
        return peer.ai_id is not None and self._live.get(peer.ai_id) is peer

    def join(self, peer: Peer) -> bool:
        """Count a live session that said HELLO as joined (again after a later HELLO: what
        it follows may have changed); False if it is no longer live."""
        ai_id, profile = peer.ai_id, peer.profile
        if not self.is_live(peer) or ai_id is None or profile is None:
            return False
        self._unjoin(ai_id)
        self._joined[ai_id] = peer
        send = peer.raw_sender
        self._senders[ai_id] = send
        for topic in profile.follows:
            self._followers[topic][ai_id] = send
        self._forget_audiences()
        if self.cluster is not None:
            self.cluster.joined(profile)
        return True

    def release(self, peer: Peer) -> bool:
        """Forget ``peer`` if it is still the live session of its id; return whether it was."""
        if not self.is_live(peer) or peer.ai_id is None:
            return False
        del self._live[peer.ai_id]
        self._unjoin(peer.ai_id)
        return True

    def _unjoin(self, ai_id: str) -> None:
        if self._fanout is not None:
            self.flush_fanout()  # what was relayed before it left, it gets (as before it left)
        if self._joined.pop(ai_id, None) is not None:
            del self._senders[ai_id]
            for followers in self._followers.values():
                followers.pop(ai_id, None)
            self._forget_audiences()

    def _forget_audiences(self) -> None:
        """Someone joined or left: the cached audiences are stale (a queued fan-out keeps the
        senders it was given, as if it had been handed to their connections already)."""
        self._audience_cache.clear()
        self._everyone.clear()

    def live(self, ai_id: str) -> Peer | None:
        """The live session of ``ai_id`` here, joined or not."""
        return self._live.get(ai_id)

    def sessions(self) -> dict[str, Peer]:
        """Every live session by AI id, joined or not (a copy)."""
        return dict(self._live)

    # ------------------------------------------------------------------ departures

    def departing(self, ai_id: str, task: asyncio.Task[None]) -> None:
        """Record that a session of ``ai_id`` is departing (failing its collaborations, telling
        the others); a new session of the same AI waits for it before it is admitted."""
        self._departures[ai_id] = task
        task.add_done_callback(lambda done: self._forget_departure(ai_id, done))
        if self.cluster is not None:
            # Once it is over (AI_LEFT sent, collaborations failed), as on one hub: a login of
            # the same AI on another replica waits for this.
            cluster = self.cluster
            task.add_done_callback(lambda _: cluster.left(ai_id))

    def departure_of(self, ai_id: str) -> asyncio.Task[None] | None:
        """The latest departure of ``ai_id`` still under way, if any."""
        return self._departures.get(ai_id)

    def _forget_departure(self, ai_id: str, task: asyncio.Task[None]) -> None:
        if self._departures.get(ai_id) is task:
            del self._departures[ai_id]

    # ------------------------------------------------------------------ lookups

    def get(self, ai_id: str) -> Peer | None:
        """The joined peer ``ai_id``, if it is online."""
        return self._joined.get(ai_id)

    def require_online(self, ai_id: str, ref: str | None = None) -> Peer:
        """The joined peer ``ai_id`` (here or, clustered, on another replica), or ``not_found``
        (with ``ref``) if it is not online."""
        peer = self._joined.get(ai_id)
        if peer is None and self.cluster is not None:
            peer = self.cluster.remote_peer(ai_id)
        if peer is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"{ai_id} is not connected", ref)
        return peer

    def joined(self) -> Iterator[Peer]:
        """Joined peers, in the order they joined."""
        return iter(list(self._joined.values()))

    def profiles(self) -> list[Profile]:
        """Profiles of the joined peers (with those on other replicas), ordered by AI id."""
        found = [peer.profile for peer in self._joined.values() if peer.profile is not None]
        if self.cluster is not None:
            found += [p for p in self.cluster.remote_profiles() if p.ai_id not in self._joined]
        return sorted(found, key=lambda profile: profile.ai_id)

    def profiles_of(self, ai_ids: Iterable[str]) -> list[Profile]:
        """Profiles of those of ``ai_ids`` that are joined (here or, clustered, on another
        replica), ordered by AI id: a lookup per id, however many have joined."""
        found: list[Profile] = []
        for ai_id in sorted(set(ai_ids)):
            peer = self._joined.get(ai_id)
            if peer is None and self.cluster is not None:
                peer = self.cluster.remote_peer(ai_id)
            if peer is not None and peer.profile is not None:
                found.append(peer.profile)
        return found

    def newest_profiles(self, limit: int, *, exclude: str | None = None) -> list[Profile]:
        """Profiles of at most ``limit`` joined peers, the ones that joined last (clustered:
        here and on the other replicas, by when they connected)."""
        found: list[Profile] = []
        for ai_id in reversed(self._joined):
            if len(found) >= limit:
                break
            profile = self._joined[ai_id].profile
            if ai_id != exclude and profile is not None:
                found.append(profile)
        if self.cluster is not None:
            remote: list[Profile] = []
            for profile in self.cluster.remote_profiles():
                if len(remote) >= limit:
                    break
                if profile.ai_id != exclude and profile.ai_id not in self._joined:
                    remote.append(profile)
            found = sorted([*found, *remote], key=lambda p: p.connected_at, reverse=True)[:limit]
        return found

    def total(self) -> int:
        """How many AIs have joined: here, and clustered on the other replicas too."""
        if self.cluster is None:
            return len(self._joined)
        return len(self._joined) + self.cluster.remote_count()

    def __len__(self) -> int:
        """How many peers have joined."""
        return len(self._joined)

    def __contains__(self, ai_id: object) -> bool:
        return ai_id in self._joined

    # ------------------------------------------------------------------ sending

    def send_to(self, ai_id: str, message: ServerMessage | bytes) -> bool:
        """Queue ``message`` (a model or an encoded frame) for the joined peer ``ai_id``; False
        if it is not online."""
        if self._fanout is not None:
            self.flush_fanout()
        send = self._senders.get(ai_id)
        if send is None:
            if self.cluster is None:
                return False
            return self.cluster.send_to(
                ai_id, message if isinstance(message, bytes) else encode(message)
            )
        frame = message if isinstance(message, bytes) else encode(message)
        send(frame)
        self._counters.sent(frame)
        return True

    def send_to_many(self, ai_ids: Sequence[str], frame: bytes) -> None:
        """:meth:`send_to` of one encoded ``frame`` to each of ``ai_ids``, counted once for all.

        Fan-outs to the same audience (the same ``ai_ids`` object, as :meth:`sample` returns
        for "every follower but the sender") in one loop turn are queued together and leave as
        one write per recipient when the turn ends: a publisher's run of requests to 1,000
        followers costs 1,000 calls, not 1,000 per request. Every other send flushes them
        first, so each recipient still gets every frame in the order it was sent.
        """
        pending = self._fanout
        if pending is not None:
            if pending.audience is ai_ids:
                pending.frames.append(frame)
                return
            self.flush_fanout()
        if self.cluster is None:
            senders = self._senders
            found = [send for ai_id in ai_ids if (send := senders.get(ai_id)) is not None]
            if found:
                self._queue_fanout(_Fanout(ai_ids, found, [frame]))
            return
        senders = self._senders
        here = elsewhere = 0
        for ai_id in ai_ids:
            send = senders.get(ai_id)
            if send is not None:
                send(frame)
                here += 1
            elif self.cluster.send_to(ai_id, frame):
                elsewhere += 1
        if here:
            self._counters.sent(frame, here)

    def _queue_fanout(self, fanout: _Fanout) -> None:
        self._fanout = fanout
        try:
            asyncio.get_running_loop().call_soon(self.flush_fanout)
        except RuntimeError:  # no loop (a synchronous caller): nothing to wait for
            self.flush_fanout()

    def flush_fanout(self) -> None:
        """Hand the queued fan-out to its recipients' connections (see :meth:`send_to_many`)."""
        pending, self._fanout = self._fanout, None
        if pending is None:
            return
        frames = pending.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        for send in pending.senders:
            send(data)
        reached = len(pending.senders)
        if len(frames) == 1:
            self._counters.sent(data, reached)
            return
        # Counted once for the run when its frames are all of one type (a run of requests).
        kind = frame_type(frames[0])
        opening = b'{"type":"' + kind + b'"'
        if frames[0].startswith(opening) and all(frame.startswith(opening) for frame in frames):
            self._counters.sent_many(kind, len(frames), len(data), reached)
        else:
            for frame in frames:
                self._counters.sent(frame, reached)

    def deliver(self, ai_id: str, frame: bytes) -> bool:
        """Queue ``frame`` for ``ai_id`` if it joined here (never over the bus)."""
        if self._fanout is not None:
            self.flush_fanout()
        send = self._senders.get(ai_id)
        if send is None:
            return False
        send(frame)
        return True

    def broadcast(
        self,
        message: ServerMessage | bytes,
        *,
        exclude: str | None = None,
        topic: Topic | None = None,
    ) -> int:
        """Queue ``message`` for every joined peer following ``topic`` (every joined peer if
        None) but ``exclude``, clustered on every replica; returns how many got it here."""
        frame = message if isinstance(message, bytes) else encode(message)  # once for all
        if self.cluster is not None:
            self.cluster.broadcast(frame, exclude, topic)
        return self.broadcast_here(frame, exclude=exclude, topic=topic)

    def broadcast_here(
        self, frame: bytes, *, exclude: str | None = None, topic: Topic | None = None
    ) -> int:
        """:meth:`broadcast` to the peers joined here only."""
        if self._fanout is not None:
            self.flush_fanout()
        senders = self._senders if topic is None else self._followers[topic]
        if exclude in senders:
            for ai_id, send in list(senders.items()):
                if ai_id != exclude:
                    send(frame)
            reached = len(senders) - 1
        else:
            for send in list(senders.values()):
                send(frame)
            reached = len(senders)
        self._counters.sent(frame, reached)  # once, not once per peer
        return reached

    def broadcast_many(
        self, frames: list[bytes], *, exclude: str | None = None, topic: Topic | None = None
    ) -> int:
        """:meth:`broadcast` of each of ``frames`` (encoded, all of one type), in order, as one
        queued write per peer here; returns how many peers here got them."""
        if len(frames) == 1:
            return self.broadcast(frames[0], exclude=exclude, topic=topic)
        if not frames:
            return 0
        if self._fanout is not None:
            self.flush_fanout()
        if self.cluster is not None:
            for frame in frames:
                self.cluster.broadcast(frame, exclude, topic)
        data = b"".join(frames)
        senders = self._senders if topic is None else self._followers[topic]
        reached = 0
        for ai_id, send in list(senders.items()):
            if ai_id != exclude:
                send(data)
                reached += 1
        self._counters.sent_many(frame_type(frames[0]), len(frames), len(data), reached)
        return reached

    def sample(
        self, topic: Topic, count: int, *, exclude: str, unlike: str | None = None
    ) -> Sequence[str]:
        """Up to ``count`` followers of ``topic`` but ``exclude``, chosen at random, those
        whose specialization is not ``unlike`` first (the complementary peers a request is
        for). Every follower when there are no more than ``count``: then the same tuple until
        someone joins or leaves (a fan-out to it is queued with the others to it, see
        :meth:`send_to_many`). Clustered, the followers on the other replicas are drawn from
        too."""
        if self.cluster is not None:
            return self._sample_cluster(topic, count, exclude=exclude, unlike=unlike)
        followers = self._followers[topic]
        if len(followers) - (exclude in followers) <= count:
            everyone = self._everyone.get((topic, exclude))
            if everyone is None:
                if len(self._everyone) >= EVERYONE_CACHE_SIZE:
                    self._everyone.clear()
                everyone = tuple(ai_id for ai_id in followers if ai_id != exclude)
                self._everyone[topic, exclude] = everyone
            return everyone
        ids = self._audience_cache.get(topic)
        if ids is None:
            ids = self._audience_cache[topic] = list(followers)

        def fits(ai_id: str) -> bool:
            profile = self._joined[ai_id].profile
            return ai_id != exclude and (
                unlike is None or profile is None or profile.specialization != unlike
            )

        chosen: set[str] = set()
        # Random draws first: with a few specializations most are complementary, and the cost
        # stays O(count) however many follow. Then, if that did not fill it, one pass.
        for _ in range(4 * count + 16):
            ai_id = ids[self._rng.randrange(len(ids))]
            if ai_id not in chosen and fits(ai_id):
                chosen.add(ai_id)
                if len(chosen) == count:
                    return list(chosen)
        rest = [ai_id for ai_id in ids if ai_id not in chosen]
        self._rng.shuffle(rest)
        complementary = [ai_id for ai_id in rest if fits(ai_id)]
        alike = [ai_id for ai_id in rest if ai_id != exclude and not fits(ai_id)]
        return [*chosen, *complementary, *alike][:count]

    def _sample_cluster(
        self, topic: Topic, count: int, *, exclude: str, unlike: str | None
    ) -> list[str]:
        """:meth:`sample` over the followers here and on the other replicas: one pass over
        all of them (a clustered hub pays O(followers) per request to everyone)."""
        assert self.cluster is not None
        ids = [ai_id for ai_id in self._followers[topic] if ai_id != exclude]
        ids += [ai_id for ai_id in self.cluster.remote_followers(topic) if ai_id != exclude]
        if len(ids) <= count:
            return ids
        self._rng.shuffle(ids)
        specialization = {p.ai_id: p.specialization for p in self.profiles()}
        complementary = [i for i in ids if unlike is None or specialization.get(i) != unlike]
        alike = [i for i in ids if unlike is not None and specialization.get(i) == unlike]
        return [*complementary, *alike][:count]
