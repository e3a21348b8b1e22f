"""Message models of protocol v1.

Every frame is one JSON object with a ``type``. Models are strict about the types of the fields
they know (a string is never silently turned into a number) and ignore fields they do not know,
so newer clients can talk to older hubs. Fields that only the hub may set (``from``,
contributors, timestamps) do not exist on the client models at all: whatever a client puts
there is dropped on parsing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
)

PROTOCOL_VERSION = 1

FEATURE_TRAINER_REPORT = "trainer_report"
HUB_FEATURES: tuple[str, ...] = (FEATURE_TRAINER_REPORT,)
"""What this hub takes beyond protocol v1's first frames, listed in ``STATE.features``: a client
sends a newer frame type only to a hub that lists it (an older hub answers ``unknown_type``)."""

AiId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")
]
"""An AI's identity: letters, digits and ``_ . : @ -``, 1 to 128 characters."""

ItemId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""Identifier of a pattern, component, request or collaboration (1 to 256 characters)."""

Label = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Labels = Annotated[list[Label], Field(max_length=256)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Percent = Annotated[float, Field(ge=0.0, le=100.0)]
Reason = Annotated[str, StringConstraints(max_length=2048)]
MsgId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Message(BaseModel):
    """Base of every frame. ``msg_id`` is echoed as ``ref`` in the hub's ACK or ERROR."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, populate_by_name=True)

    msg_id: MsgId | None = None


# --------------------------------------------------------------------------- client -> hub


class Auth(Message):
    """First frame of every connection. ``type`` may be omitted on this frame only."""

    type: Literal["AUTH"] = "AUTH"
    ai_id: AiId
    token: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


Topic = Literal["patterns", "components", "requests", "presence"]
"""What a joined AI may follow: relayed ``PATTERN_SHARE``s, broadcast ``OS_COMPONENT_SHARE``s,
broadcast ``COLLABORATION_REQUEST``s, and ``AI_JOINED``/``AI_LEFT``."""

TOPICS: tuple[Topic, ...] = ("patterns", "components", "requests", "presence")


MAX_ORIGINS = 256
"""At most this many origins in ``STATE``'s and a ``HELLO`` resume's ``origins``."""

RunId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Origins = Annotated[dict[RunId, Annotated[int, Field(ge=0)]], Field(max_length=MAX_ORIGINS)]


class ResumePoint(BaseModel):
    """The last relayed share a reconnecting client saw: ``run`` and ``seq`` from the hub, and
    on a cluster of replicas, per origin (the run of the replica that stored a share), the
    last ``origin_seq`` it saw or that ``STATE`` said (``origins``): what lets another
    replica resume it."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    run: RunId
    after: Annotated[int, Field(ge=0)]
    origins: Origins | None = None


class Hello(Message):
    """Announces what the AI is good at; answered with ``STATE``. Required before other frames."""

    type: Literal["HELLO"] = "HELLO"
    specialization: Label
    capabilities: Labels = []
    protocol_version: int = PROTOCOL_VERSION
    follow: Annotated[list[Topic], Field(max_length=len(TOPICS))] | None = None
    resume: ResumePoint | None = None


LIST_AIS_MAX = 1000
"""The most AIs one ``AIS`` page lists, and the most ids one ``LIST_AIS`` names."""


class ListAis(Message):
    """Asks for joined AIs, a page at a time, ordered by id; answered with ``AIS``. ``ids``
    asks for those AIs only (the ones of them joined): a trainer on a hub of thousands wants
    the standings of the peers it knows, not a page of every AI."""

    type: Literal["LIST_AIS"] = "LIST_AIS"
    after: AiId | None = None
    limit: Annotated[int, Field(ge=1, le=LIST_AIS_MAX)] = 500
    specialization: Label | None = None
    ids: Annotated[list[AiId], Field(max_length=LIST_AIS_MAX)] | None = None


class PatternShare(Message):
    """A learned pattern. Persisted, ACKed after commit, then relayed to every other AI."""

    type: Literal["PATTERN_SHARE"] = "PATTERN_SHARE"
    pattern_id: ItemId
    pattern_data: dict[str, Any]


class ComponentShare(Message):
    """A component (artifact). Relayed to ``to`` only, or to every other AI.

    With ``collaboration_complete`` and ``collaboration_id`` it also completes that collaboration,
    in the same transaction as the component is stored.
    """

    type: Literal["OS_COMPONENT_SHARE"] = "OS_COMPONENT_SHARE"
    component_id: ItemId
    component_data: dict[str, Any]
    quality_score: Fraction | None = None
    to: AiId | None = None
    collaboration_id: ItemId | None = None
    collaboration_complete: bool = False


class CollaborationRequest(Message):
    """Asks peers (or one peer, ``to``) to collaborate."""

    type: Literal["COLLABORATION_REQUEST"] = "COLLABORATION_REQUEST"
    request_id: ItemId
    expertise_offered: Labels = []
    seeking_expertise: Labels = []
    to: AiId | None = None


class RequestTerms(BaseModel):
    """What a collaboration request asked for: kept by the hub with the collaboration it opened,
    returned by the API, and handed to engines. Not a frame of its own."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    request_id: str
    expertise_offered: list[str] = []
    seeking_expertise: list[str] = []
    to: str | None = None

    @classmethod
    def of(cls, request: CollaborationRequest | RelayedCollaborationRequest) -> RequestTerms:
        """The terms of a request as its requester sent it, or as the hub relayed it."""
        # Its fields were validated with the request: no need to validate them again.
        return cls.model_construct(
            request_id=request.request_id,
            expertise_offered=list(request.expertise_offered),
            seeking_expertise=list(request.seeking_expertise),
            to=getattr(request, "to", None),
        )


class CollaborationAccept(Message):
    """Accepts ``to``'s request; the hub opens a collaboration and names it."""

    type: Literal["COLLABORATION_ACCEPT"] = "COLLABORATION_ACCEPT"
    request_id: ItemId
    to: AiId


class CollaborationReject(Message):
    """Declines ``to``'s request."""

    type: Literal["COLLABORATION_REJECT"] = "COLLABORATION_REJECT"
    request_id: ItemId
    to: AiId
    reason: Reason | None = None


class CollaborationProgress(Message):
    """Progress of an active collaboration, 0 to 100; relayed to the partner."""

    type: Literal["COLLABORATION_PROGRESS"] = "COLLABORATION_PROGRESS"
    collaboration_id: ItemId
    progress: Percent


class CollaborationComplete(Message):
    """Ends a collaboration successfully; ``result`` is any JSON value, recorded as the outcome."""

    type: Literal["COLLABORATION_COMPLETE"] = "COLLABORATION_COMPLETE"
    collaboration_id: ItemId
    result: Any = None


class CollaborationFailed(Message):
    """Ends a collaboration as failed."""

    type: Literal["COLLABORATION_FAILED"] = "COLLABORATION_FAILED"
    collaboration_id: ItemId
    reason: Reason


class Feedback(Message):
    """Reports a use of a pattern or component, optionally rating it: ``score`` (its quality,
    0 to 1) and ``usefulness`` (the measured outcome of using it, 0 = harmful or unusable,
    1 = as useful as it gets, e.g. a merge that cost no accuracy). One vote per AI per item:
    a later rating by the same AI replaces its earlier one."""

    type: Literal["FEEDBACK"] = "FEEDBACK"
    kind: Literal["pattern", "component"]
    id: ItemId
    score: Fraction | None = None
    usefulness: Fraction | None = None


MAX_TRUST_PEERS = 1000
"""At most this many peers in a ``TRAINER_REPORT``'s ``trust`` (and ``rejected``) map."""

Count = Annotated[int, Field(ge=0, le=2**53)]
TrustMap = Annotated[dict[AiId, Fraction], Field(max_length=MAX_TRUST_PEERS)]


class RejectedRequests(BaseModel):
    """What a trainer refused of one peer, how often, and why (the latest reason): its
    collaboration requests (e.g. ``low reputation``) in ``rejected``, its models in
    ``refused_merges`` (e.g. ``worse on our validation data``)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    count: Annotated[int, Field(ge=1, le=2**53)]
    reason: Label = "low reputation"


class TrainerFigures(Message):
    """What a trainer measured of itself, for the hub to keep as a time series and show:
    ``accuracy`` (0 to 1; the reference trainer sends its held-out test accuracy, the figure
    its own report gives), its equal-budget ``local_only_accuracy`` and a
    ``centralized_baseline`` when known, the merges it kept and rejected, the reputation it
    holds of each peer (``trust``), the requests it refused per peer (``rejected``) and the
    models it refused to merge per peer, with the gate's latest reason (``refused_merges``).
    Stored under the authenticated sender; ACKed after commit. Send it only to a hub whose
    ``STATE`` lists ``trainer_report`` in ``features`` (older hubs answer ``unknown_type``)."""

    type: Literal["TRAINER_REPORT"] = "TRAINER_REPORT"
    accuracy: Fraction
    local_only_accuracy: Fraction | None = None
    centralized_baseline: Fraction | None = None
    merges_kept: Count = 0
    merges_rejected: Count = 0
    trust: TrustMap = {}
    rejected: Annotated[dict[AiId, RejectedRequests], Field(max_length=MAX_TRUST_PEERS)] = {}
    refused_merges: Annotated[dict[AiId, RejectedRequests], Field(max_length=MAX_TRUST_PEERS)] = {}
    final: bool = False


class Ping(Message):
    """Liveness check; answered with ``PONG``."""

    type: Literal["PING"] = "PING"


ClientMessage = (
    Hello
    | ListAis
    | PatternShare
    | ComponentShare
    | CollaborationRequest
    | CollaborationAccept
    | CollaborationReject
    | CollaborationProgress
    | CollaborationComplete
    | CollaborationFailed
    | Feedback
    | TrainerFigures
    | Ping
)

CLIENT_MESSAGE_TYPES: dict[str, type[Message]] = {
    model.model_fields["type"].default: model
    for model in (
        Auth,
        Hello,
        ListAis,
        PatternShare,
        ComponentShare,
        CollaborationRequest,
        CollaborationAccept,
        CollaborationReject,
        CollaborationProgress,
        CollaborationComplete,
        CollaborationFailed,
        Feedback,
        TrainerFigures,
        Ping,
    )
}


# --------------------------------------------------------------------------- hub -> client


class ServerMessage(BaseModel):
    """Base of frames the hub sends. Clients should ignore fields they do not know."""

    model_config = ConfigDict(strict=False, extra="ignore", frozen=True, populate_by_name=True)


class AuthOk(ServerMessage):
    type: Literal["AUTH_OK"] = "AUTH_OK"
    ai_id: str
    protocol_version: int = PROTOCOL_VERSION


class AuthFailed(ServerMessage):
    """Sent before the hub closes a connection that did not authenticate."""

    type: Literal["AUTH_FAILED"] = "AUTH_FAILED"
    error: str


class AiInfo(ServerMessage):
    ai_id: str
    specialization: str
    capabilities: list[str]
    reputation: float | None = None
    # The hub's credibility of this AI as a rater, sent only when below 1 (kernal.hub.credibility)
    credibility: float | None = None


class RecentPattern(ServerMessage):
    """A pattern as ``STATE`` lists it. The hub always sends every field."""

    pattern_id: str
    contributor: str
    timestamp: float = 0.0
    usage_count: int = 0
    pattern_data: dict[str, Any]


class RecentComponent(ServerMessage):
    """A component as ``STATE`` lists it. The hub always sends every field."""

    component_id: str
    contributor: str
    timestamp: float = 0.0
    quality_score: float | None = None
    usage_count: int = 0
    component_data: dict[str, Any]

    @model_serializer(mode="wrap")
    def _always_quality(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The key is always there, null or not, as it has been since the first protocol.
        data: dict[str, Any] = handler(self)
        data.setdefault("quality_score", self.quality_score)
        return data


class KnowledgeBase(ServerMessage):
    shared_patterns: int
    shared_components: int
    recent_patterns: list[RecentPattern]
    recent_components: list[RecentComponent]


class State(ServerMessage):
    """Answer to ``HELLO``: who else is here and what has been shared so far."""

    type: Literal["STATE"] = "STATE"
    active_ais: list[AiInfo]
    knowledge_base: KnowledgeBase
    active_total: int | None = None
    idle_timeout: float | None = None
    run: str | None = None
    seq: int | None = None
    resumed: bool | None = None
    features: list[str] = []
    origins: dict[str, int] | None = None


class Ais(ServerMessage):
    """Answer to ``LIST_AIS``: one page of joined AIs."""

    type: Literal["AIS"] = "AIS"
    ref: str | None = None
    ais: list[AiInfo]
    next: str | None = None
    active_total: int


class AiJoined(AiInfo):
    type: Literal["AI_JOINED"] = "AI_JOINED"


class AiLeft(ServerMessage):
    type: Literal["AI_LEFT"] = "AI_LEFT"
    ai_id: str


class Ack(ServerMessage):
    """Confirms a frame was carried out (for shares: after the database commit)."""

    type: Literal["ACK"] = "ACK"
    ref: str | None = None
    of: str
    id: str | None = None
    collaboration_id: str | None = None
    duplicate: bool | None = None


class Error(ServerMessage):
    type: Literal["ERROR"] = "ERROR"
    code: str
    error: str
    ref: str | None = None


class Pong(ServerMessage):
    type: Literal["PONG"] = "PONG"
    ref: str | None = None


class Relayed(ServerMessage):
    """Base of frames the hub forwards from one AI to others, stamped with the sender."""

    sender: str = Field(alias="from")


class RelayedPatternShare(Relayed):
    type: Literal["PATTERN_SHARE"] = "PATTERN_SHARE"
    pattern_id: str
    pattern_data: dict[str, Any]
    timestamp: float
    origin: str | None = None
    origin_seq: int | None = None
    seq: int | None = None


class RelayedComponentShare(Relayed):
    type: Literal["OS_COMPONENT_SHARE"] = "OS_COMPONENT_SHARE"
    component_id: str
    component_data: dict[str, Any]
    quality_score: float | None = None
    collaboration_id: str | None = None
    collaboration_complete: bool = False
    timestamp: float
    origin: str | None = None
    origin_seq: int | None = None
    seq: int | None = None


class RelayedCollaborationRequest(Relayed):
    type: Literal["COLLABORATION_REQUEST"] = "COLLABORATION_REQUEST"
    request_id: str
    expertise_offered: list[str]
    seeking_expertise: list[str]
    # The hub's view of the requester, so a receiver can judge complementarity without a lookup.
    specialization: str | None = None
    reputation: float | None = None
    credibility: float | None = None  # as in AiInfo: only when below 1


class RelayedCollaborationAccept(Relayed):
    type: Literal["COLLABORATION_ACCEPT"] = "COLLABORATION_ACCEPT"
    request_id: str
    collaboration_id: str


class RelayedCollaborationReject(Relayed):
    type: Literal["COLLABORATION_REJECT"] = "COLLABORATION_REJECT"
    request_id: str
    reason: str | None = None


class RelayedCollaborationProgress(Relayed):
    type: Literal["COLLABORATION_PROGRESS"] = "COLLABORATION_PROGRESS"
    collaboration_id: str
    progress: float


class RelayedCollaborationComplete(Relayed):
    type: Literal["COLLABORATION_COMPLETE"] = "COLLABORATION_COMPLETE"
    collaboration_id: str
    result: Any = None


class RelayedCollaborationFailed(Relayed):
    """Also sent by the hub itself (``from`` is the lost partner) when a member disconnects."""

    type: Literal["COLLABORATION_FAILED"] = "COLLABORATION_FAILED"
    collaboration_id: str
    reason: str


RELAYED_FORMS: dict[type[Message], type[Relayed]] = {
    PatternShare: RelayedPatternShare,
    ComponentShare: RelayedComponentShare,
    CollaborationRequest: RelayedCollaborationRequest,
    CollaborationAccept: RelayedCollaborationAccept,
    CollaborationReject: RelayedCollaborationReject,
    CollaborationProgress: RelayedCollaborationProgress,
    CollaborationComplete: RelayedCollaborationComplete,
    CollaborationFailed: RelayedCollaborationFailed,
}
"""The frame the hub forwards for each client message it relays."""

_NOT_RELAYED = frozenset({"msg_id", "to", "type"})


def relayed(message: Message, sender: str, **stamps: Any) -> Relayed:
    """The relayed form of ``message``: its fields (bar ``msg_id`` and ``to``), ``from`` set to
    the authenticated ``sender``, plus what the hub adds (``stamps``: a timestamp, the
    requester's standing...). Raises KeyError for a message the hub never relays.

    The client's fields were validated when its frame was decoded, so the relayed model is
    built without validating them again.
    """
    form = RELAYED_FORMS[type(message)]
    fields = {
        name: getattr(message, name) for name in type(message).model_fields.keys() - _NOT_RELAYED
    }
    return form.model_construct(sender=sender, **fields, **stamps)


SERVER_MESSAGE_TYPES: dict[str, type[ServerMessage]] = {
    model.model_fields["type"].default: model
    for model in (
        AuthOk,
        AuthFailed,
        State,
        Ais,
        AiJoined,
        AiLeft,
        Ack,
        Error,
        Pong,
        RelayedPatternShare,
        RelayedComponentShare,
        RelayedCollaborationRequest,
        RelayedCollaborationAccept,
        RelayedCollaborationReject,
        RelayedCollaborationProgress,
        RelayedCollaborationComplete,
        RelayedCollaborationFailed,
    )
}
