"""Collaboration bookkeeping: open requests, active collaborations and who may speak on them.

The store holds the durable record; this keeps the in-memory index the router needs on every
frame (members of each active collaboration, requests that may still be accepted).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

from kernal.protocol import ErrorCode, ProtocolError
from kernal.protocol.messages import CollaborationRequest, RequestTerms
from kernal.storage import CollaborationRecord, CollaborationStatus

MAX_OPEN_REQUESTS = 10_000


class CollaborationBook:
    """Requests that can be accepted and collaborations that are active, by id."""

    def __init__(self, *, max_per_ai: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_per_ai = max_per_ai  # active collaborations one AI may be in (0: no limit)
        self._clock = clock
        self._heard: dict[str, float] = {}  # collaboration -> when a member last spoke on it
        # (requester, request id) -> the request as validated (most are never accepted, so no
        # copy is made, nor anything else per request: booking one is on every relay's path).
        self._requests: OrderedDict[tuple[str, str], CollaborationRequest] = OrderedDict()
        self._taken: dict[tuple[str, str], str] = {}  # open request -> who accepted it
        # requester -> the ids of its open requests: forgetting an AI's requests as it leaves
        # must not scan everyone's (10,000 of them, for each of 1,000 trainers leaving).
        self._request_ids: dict[str, set[str]] = {}
        self._active: dict[str, CollaborationRecord] = {}
        self._by_ai: dict[str, set[str]] = {}  # ai_id -> its active (or opening) collaborations
        # Progress is kept here and written to the store in batches (see take_progress): at
        # scale, a commit per progress report is most of the hub's write load.
        self._progress: dict[str, float] = {}
        self._unsaved: set[str] = set()

    # ------------------------------------------------------------------ requests

    def add_request(self, requester: str, request: CollaborationRequest) -> None:
        """Open (or re-send) a request. Re-sending replaces its terms; a request that was
        accepted stays taken: re-sending its id never opens a second collaboration."""
        key = (requester, request.request_id)
        requests = self._requests
        if key in requests:  # its id is listed already, and the book does not grow
            requests[key] = request
            requests.move_to_end(key)
            return
        requests[key] = request  # a new key comes last
        ids = self._request_ids.get(requester)
        if ids is None:
            ids = self._request_ids[requester] = set()
        ids.add(request.request_id)
        while len(requests) > MAX_OPEN_REQUESTS:
            oldest_key, _ = requests.popitem(last=False)  # oldest expire first
            self._taken.pop(oldest_key, None)
            oldest, request_id = oldest_key
            ids = self._request_ids[oldest]
            ids.discard(request_id)
            if not ids:
                del self._request_ids[oldest]

    def open_collaboration(
        self, requester: str, request_id: str, acceptor: str, now: float
    ) -> CollaborationRecord:
        """Validate an accept and return the new (not yet stored) collaboration, the request
        taken at once (so a second accept arriving while it is stored gets ``conflict``): call
        :meth:`activate` once it is stored, or :meth:`abandon` if storing it failed."""
        if requester == acceptor:
            raise ProtocolError(ErrorCode.FORBIDDEN, "an AI cannot accept its own request")
        key = (requester, request_id)
        request = self._requests.get(key)
        if request is None:
            raise ProtocolError(
                ErrorCode.NOT_FOUND, f"no open request {request_id!r} from {requester}"
            )
        taker = self._taken.get(key)
        if taker is not None:
            # A request finds one partner: first accept wins. Letting every peer in made
            # collaborations grow with the square of the trainers.
            raise ProtocolError(
                ErrorCode.CONFLICT, f"request {request_id!r} was already accepted by {taker}"
            )
        target = request.to
        if target is not None and target != acceptor:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"request {request_id!r} was sent to {target}")
        for member in (requester, acceptor):
            if self.max_per_ai and len(self._by_ai.get(member, ())) >= self.max_per_ai:
                raise ProtocolError(
                    ErrorCode.FORBIDDEN,
                    f"{member} is already in {self.max_per_ai} active collaborations, "
                    "this hub's limit",
                )
        self._taken[key] = acceptor
        record = CollaborationRecord(
            collaboration_id=f"collab_{uuid.uuid4().hex}",
            request_id=request_id,
            requester=requester,
            acceptor=acceptor,
            request=RequestTerms.of(request),
            status=CollaborationStatus.ACTIVE,
            progress=0.0,
            started_at=now,
        )
        for member in record.members:
            self._by_ai.setdefault(member, set()).add(record.collaboration_id)
        return record

    def activate(self, record: CollaborationRecord) -> None:
        """Record a collaboration that the store has committed."""
        self._active[record.collaboration_id] = record
        self._heard[record.collaboration_id] = self._clock()

    def abandon(self, record: CollaborationRecord) -> None:
        """A collaboration from :meth:`open_collaboration` could not be stored: its request is
        open again."""
        key = (record.requester, record.request_id)
        if self._taken.get(key) == record.acceptor:
            del self._taken[key]
        self._forget_members(record)

    def forget_requests_of(self, ai_id: str) -> None:
        for request_id in self._request_ids.pop(ai_id, ()):
            key = (ai_id, request_id)
            del self._requests[key]
            self._taken.pop(key, None)

    # ------------------------------------------------------------------ active collaborations

    def member_view(self, collaboration_id: str, ai_id: str) -> CollaborationRecord:
        """The active collaboration, if ``ai_id`` is a member; ``not_found`` / ``forbidden``."""
        record = self._active.get(collaboration_id)
        if record is None:
            raise ProtocolError(
                ErrorCode.NOT_FOUND, f"no active collaboration {collaboration_id!r}"
            )
        if ai_id not in record.members:
            raise ProtocolError(
                ErrorCode.FORBIDDEN, f"{ai_id} is not a member of collaboration {collaboration_id}"
            )
        self._heard[collaboration_id] = self._clock()
        return record

    def silent(self, seconds: float) -> list[CollaborationRecord]:
        """Active collaborations on which no member has spoken for ``seconds``."""
        cutoff = self._clock() - seconds
        return [self._active[cid] for cid, heard in self._heard.items() if heard < cutoff]

    @staticmethod
    def partner(record: CollaborationRecord, ai_id: str) -> str:
        return record.acceptor if ai_id == record.requester else record.requester

    def set_progress(self, collaboration_id: str, progress: float) -> None:
        self._progress[collaboration_id] = progress
        self._unsaved.add(collaboration_id)

    def progress_of(self, collaboration_id: str) -> float | None:
        """Latest reported progress of an active collaboration (None if none reported)."""
        return self._progress.get(collaboration_id)

    def take_progress(self, collaboration_ids: set[str] | None = None) -> dict[str, float]:
        """Progress reported since the last call and not yet stored (all, or just these ids)."""
        ids = self._unsaved if collaboration_ids is None else self._unsaved & collaboration_ids
        taken = {cid: self._progress[cid] for cid in ids if cid in self._progress}
        self._unsaved -= set(taken)
        return taken

    def _forget_members(self, record: CollaborationRecord) -> None:
        for member in record.members:
            ids = self._by_ai.get(member)
            if ids is not None:
                ids.discard(record.collaboration_id)
                if not ids:
                    del self._by_ai[member]

    def finish(self, collaboration_id: str) -> None:
        self._heard.pop(collaboration_id, None)
        record = self._active.pop(collaboration_id, None)
        if record is not None:
            self._forget_members(record)
        self._progress.pop(collaboration_id, None)
        self._unsaved.discard(collaboration_id)

    def active_of(self, ai_id: str) -> list[CollaborationRecord]:
        return [self._active[cid] for cid in self._by_ai.get(ai_id, ()) if cid in self._active]

    def active(self) -> list[CollaborationRecord]:
        return list(self._active.values())

    def __len__(self) -> int:
        return len(self._active)
