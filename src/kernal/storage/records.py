"""The records the storage interface returns and takes, its errors and enums (see
:mod:`kernal.storage.base` for the interface itself)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

from kernal.protocol.messages import RequestTerms

__all__ = [
    "AiRecord",
    "CollaborationQuery",
    "CollaborationRecord",
    "CollaborationStatus",
    "ComponentRecord",
    "ConflictError",
    "FeedbackEdge",
    "FeedbackResult",
    "FeedbackScore",
    "ItemEntry",
    "ItemKind",
    "ItemQuery",
    "ItemRecord",
    "ItemVote",
    "KnowledgeCounts",
    "NewShare",
    "NotFoundError",
    "PatternRecord",
    "RatingRecord",
    "ShareOutcome",
    "StatsSnapshot",
    "StoreError",
    "StoredToken",
    "TokenAction",
    "TokenChange",
    "TokenInfo",
    "TrainerReportRecord",
    "Vote",
]


class StoreError(Exception):
    """Base of the errors a store raises for a request it refuses."""


class ConflictError(StoreError):
    """The id is already taken by another contributor."""


class NotFoundError(StoreError):
    """The pattern, component or collaboration does not exist."""


class ShareOutcome(enum.Enum):
    """What storing a pattern or component did."""

    CREATED = "created"
    DUPLICATE = "duplicate"  # same contributor re-sent the same id: nothing written


class CollaborationStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"


class ItemKind(enum.StrEnum):
    PATTERN = "pattern"
    COMPONENT = "component"


@dataclass(frozen=True)
class PatternRecord:
    kind: ClassVar[ItemKind] = ItemKind.PATTERN

    pattern_id: str
    pattern_data: dict[str, Any]
    contributor: str
    timestamp: float
    usage_count: int = 0

    @property
    def item_id(self) -> str:
        return self.pattern_id


@dataclass(frozen=True)
class ComponentRecord:
    kind: ClassVar[ItemKind] = ItemKind.COMPONENT

    component_id: str
    component_data: dict[str, Any]
    contributor: str
    timestamp: float
    quality_score: float | None = None
    usage_count: int = 0

    @property
    def item_id(self) -> str:
        return self.component_id


#: A shared item of either kind; ``record.kind`` says which.
ItemRecord: TypeAlias = PatternRecord | ComponentRecord


@dataclass(frozen=True, slots=True)
class NewShare:
    """One plain share for :meth:`~kernal.storage.base.Store.add_shares`: an item, its data's
    JSON text if the caller has it (as the client sent it), and for a component shared with
    one AI only, that AI."""

    record: ItemRecord
    data_text: str | None = None
    recipient: str | None = None


@dataclass(frozen=True)
class AiRecord:
    ai_id: str
    specialization: str
    capabilities: list[str]
    first_seen: float
    last_seen: float


@dataclass(frozen=True)
class CollaborationRecord:
    collaboration_id: str
    request_id: str
    requester: str
    acceptor: str
    request: RequestTerms
    status: CollaborationStatus
    progress: float
    started_at: float
    ended_at: float | None = None
    outcome: Any = None
    reason: str | None = None

    @property
    def members(self) -> tuple[str, str]:
        return (self.requester, self.acceptor)


@dataclass(frozen=True)
class Vote:
    """One rater's vote on one item: the last ``score`` and ``usefulness`` it sent (None: not
    given). A rater has at most one vote per item; a new FEEDBACK with either field replaces
    both, one with neither only reports a use and leaves the vote as it was."""

    score: float | None = None
    usefulness: float | None = None

    @property
    def rated(self) -> bool:
        """Whether the vote says anything of the item's worth (not just that it was used)."""
        return self.score is not None or self.usefulness is not None


@dataclass(frozen=True)
class ItemVote:
    """One rater's current vote on one item, and when the rater last sent FEEDBACK on it
    (what an item's page shows as "who rated it")."""

    rater: str
    vote: Vote
    timestamp: float


@dataclass(frozen=True)
class RatingRecord:
    """A stored vote that rates its item, with who cast it and whose item it is."""

    rater: str
    contributor: str
    kind: ItemKind
    item_id: str
    vote: Vote


@dataclass(frozen=True)
class FeedbackResult:
    """State after a feedback was recorded, read in the transaction that recorded it."""

    usage_count: int
    """How many distinct AIs have sent FEEDBACK on the item (plus, on a database adopted from
    the prototype, the uses it had counted before)."""
    quality_score: float | None = None  # components only: mean of the raters' current scores
    contributor: str = field(kw_only=True)
    """The item's contributor (``""`` for a row adopted from the prototype without one)."""
    vote: Vote = field(kw_only=True)
    """The rater's vote on the item now, this feedback included."""
    replaced: Vote | None = field(kw_only=True, default=None)
    """The rater's vote on the item before this feedback; None if it is its first."""


@dataclass(frozen=True)
class FeedbackEdge:
    """The FEEDBACK one AI (``rater``) sent on the items of another (``contributor``): how often,
    how many of those carried a score and their sum, and when the first and last arrived."""

    rater: str
    contributor: str
    count: int
    scored: int
    score_total: float
    first_at: float
    last_at: float

    @property
    def mean_score(self) -> float | None:
        return self.score_total / self.scored if self.scored else None


@dataclass(frozen=True)
class FeedbackScore:
    """One scored FEEDBACK: ``rater`` measured an item of ``contributor`` at ``score``."""

    rater: str
    contributor: str
    score: float
    timestamp: float


@dataclass(frozen=True)
class StatsSnapshot:
    timestamp: float
    connected_ais: int
    shared_patterns: int
    shared_components: int
    active_collaborations: int


@dataclass(frozen=True)
class TrainerReportRecord:
    """What trainer ``ai_id`` measured of itself at ``timestamp`` (hub clock): see the
    ``TRAINER_REPORT`` frame. ``trust``: peer -> the reputation it holds of that peer;
    ``rejected``: peer -> (requests it refused, why); ``refused_merges``: peer -> (models of
    it the trainer refused to merge, the latest reason)."""

    ai_id: str
    timestamp: float
    accuracy: float
    local_only_accuracy: float | None = None
    centralized_baseline: float | None = None
    merges_kept: int = 0
    merges_rejected: int = 0
    trust: dict[str, float] = field(default_factory=dict)
    rejected: dict[str, tuple[int, str]] = field(default_factory=dict)
    final: bool = False
    refused_merges: dict[str, tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenInfo:
    """A stored token, without its hash."""

    ai_id: str
    created_at: float
    expires_at: float | None = None  # None: never
    source: str = "cli"  # "cli" (kernal token), "file" (the tokens file), "launcher" (web)


@dataclass(frozen=True)
class StoredToken:
    """What the hub checks a login against."""

    token_hash: str
    expires_at: float | None = None
    source: str = "cli"


class TokenAction(enum.Enum):
    """What the last change of an AI's token was."""

    ADDED = "added"  # the AI had no token before
    REPLACED = "replaced"  # a new token took the place of the one it had (add again, rotate)
    REVOKED = "revoked"


@dataclass(frozen=True)
class TokenChange:
    """The last change of ``ai_id``'s token; ``seq`` grows with every change of any token."""

    ai_id: str
    seq: int
    action: TokenAction
    changed_at: float


@dataclass(frozen=True)
class ItemQuery:
    """Which items :meth:`Store.list_items` returns; every filter left None lets all through.

    ``before`` is a keyset cursor: only items strictly older than ``(timestamp, item_id)`` in
    the newest-first order (the last item of the previous page), so pages never overlap or skip
    an item, however many are shared meanwhile.
    """

    contributor: str | None = None
    since: float | None = None  # timestamp >= since
    until: float | None = None  # timestamp < until
    search: str | None = None  # in the id or the data's JSON text, case-insensitive for ASCII
    before: tuple[float, str] | None = None
    item_id: str | None = None  # exactly this id


@dataclass(frozen=True)
class ItemEntry:
    """One item of a listing. ``data_size``: bytes of its data's JSON text (UTF-8) as stored.
    ``data_included``: false when the data was longer than the listing's ``max_data`` and so
    was never decoded (the record then holds ``{}`` as its data; read the item alone for it)."""

    record: ItemRecord
    data_size: int
    data_included: bool


@dataclass(frozen=True)
class CollaborationQuery:
    """Which collaborations :meth:`Store.list_collaborations_page` returns (see
    :class:`ItemQuery` for ``before``, here ``(started_at, collaboration_id)``)."""

    status: CollaborationStatus | None = None
    member: str | None = None  # requester or acceptor
    since: float | None = None  # started_at >= since
    until: float | None = None  # started_at < until
    search: str | None = None  # in the collaboration or request id, or the request's JSON text
    before: tuple[float, str] | None = None


@dataclass(frozen=True)
class KnowledgeCounts:
    shared_patterns: int
    shared_components: int
    extra: dict[str, int] = field(default_factory=dict)
