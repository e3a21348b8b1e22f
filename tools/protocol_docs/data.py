"""What the message models cannot say about each message: field meanings, error conditions,
example frames and what the hub replies. Pure data, read by :mod:`tools.protocol_docs.generator`.

Texts may use ``$name`` values (see ``VALUES`` in the generator). Every frame here is checked
against the codec while rendering, so an example that no longer decodes stops the generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kernal.protocol.errors import ErrorCode

JsonObject = dict[str, Any]

#: The collaboration id used in the examples, as the hub would name one.
COLLAB = "collab_5f0c2b7e9a1d4c3b8e6f0a1b2c3d4e5f"

# ---------------------------------------------------------------------------------- errors

#: When the hub sends each error code, for the error table.
ERROR_WHEN: dict[ErrorCode, str] = {
    ErrorCode.BAD_JSON: (
        "The frame is not valid UTF-8 or not valid JSON, or holds what JSON can spell but the"
        " hub cannot carry: `NaN`/`Infinity`, a number beyond the range of a 64-bit float, a"
        " lone surrogate escape, or nesting deeper than $max_depth levels."
    ),
    ErrorCode.NOT_AN_OBJECT: (
        "The frame is valid JSON but not an object (an array, string, number, boolean or null)."
    ),
    ErrorCode.UNKNOWN_TYPE: (
        "`type` is a string but not a client message type. Types are case-sensitive; hub"
        " message types such as `ACK` are not accepted from a client."
    ),
    ErrorCode.INVALID_FIELD: (
        "`type` is missing or not a string; a field is missing, has the wrong JSON type or"
        " breaks its constraints; `HELLO` has a `protocol_version` other than $version;"
        " `OS_COMPONENT_SHARE` has `collaboration_complete` but no `collaboration_id`; a"
        " `pattern_data` or `component_data` longer than $max_data_kib KiB of JSON."
    ),
    ErrorCode.INTERNAL_ERROR: (
        "The hub could not carry out a valid frame, for instance because its database was"
        " unreachable. Nothing of the frame was stored or relayed; retrying later is safe"
        " (shares are idempotent by id)."
    ),
    ErrorCode.NOT_AUTHENTICATED: (
        "Reserved for a first frame that is not a valid `AUTH`. This hub reports that case"
        " with `AUTH_FAILED` instead and never sends this code; treat it like `AUTH_FAILED`."
    ),
    ErrorCode.FRAME_TOO_LARGE: (
        "A line grew past the frame limit ($max_frame_human by default). Sent without `ref`,"
        " also during the handshake."
    ),
    ErrorCode.CONFLICT: (
        "A `pattern_id` or `component_id` already shared by another AI; a"
        " `COLLABORATION_ACCEPT` for a request that has already been accepted (a request finds"
        " one partner: the first accept wins, and the error names who took it)."
    ),
    ErrorCode.NOT_FOUND: (
        "`to` names an AI that is not connected or has not sent `HELLO`; a"
        " `COLLABORATION_ACCEPT` for a request that is not open (never sent, or its requester"
        " disconnected); a `collaboration_id` that is not active (unknown or already ended);"
        " `FEEDBACK` on an unknown pattern or component."
    ),
    ErrorCode.FORBIDDEN: (
        "A frame other than `HELLO` or `PING` before `HELLO`; `AUTH` after logging in;"
        " accepting your own request or one sent to another AI; an accept that would put"
        " either AI in more than $max_collaborations active collaborations; a collaboration"
        " message (or a completing component share) for a collaboration you are not a member"
        " of; `FEEDBACK` on your own pattern or component (nobody rates their own work)."
    ),
    ErrorCode.RATE_LIMITED: (
        "Over this connection's rate limits ($rate_frames frames or $rate_mib MiB per second"
        " by default, blank lines counted, with a burst): sent once when throttling starts;"
        " your frames are still handled, later, and the hub reads from you only as fast as"
        " the limits allow. Over them for more than $abuse_seconds s without a break: sent"
        " with `disconnecting` in `error`, and the connection closes. Also the answer to a"
        " connection over the hub's limits of connections (in all, or from one address),"
        " before it closes; and, without `ref`, to an AI over $rate_feedback `FEEDBACK` per"
        " second, once when they start to wait (they are all carried out, later)."
    ),
    ErrorCode.IDLE_TIMEOUT: (
        "No frame from you for the hub's idle timeout (`idle_timeout` in `STATE`, $idle_timeout"
        " s by default); the connection closes. Send `PING` more often than that."
    ),
    ErrorCode.REPLACED: (
        "The same `ai_id` logged in on another connection, which replaces this one; the hub"
        " closes this connection right after. Do not reconnect automatically."
    ),
    ErrorCode.TOKEN_REVOKED: (
        "The token this connection logged in with was revoked (`kernal token revoke`),"
        " replaced (`kernal token rotate`, or `add` again) or expired while you were"
        " connected; `error` says which. The hub notices within a few seconds and closes the"
        " connection right after. Reconnecting with the same token is refused: get the new one."
    ),
}


# ---------------------------------------------------------------------------------- fields

#: What each field means. Looked up as ``side:TYPE.field``, ``side:field``, ``TYPE.field``,
#: ``field`` (side is ``client`` or ``server``; TYPE is a message type or a nested object name).
FIELDS: dict[str, str] = {
    "type": "Message type.",
    "msg_id": "Your id for this frame; echoed as `ref` in the reply.",
    "AUTH.msg_id": "Accepted but not echoed: `AUTH_OK` and `AUTH_FAILED` have no `ref`.",
    "HELLO.msg_id": "Echoed as `ref` only in an `ERROR`; `STATE` has no `ref`.",
    "from": "The sending AI, set by the hub from the authenticated connection.",
    "timestamp": "When the hub stored it: Unix time in seconds, from the hub's clock.",
    "contributor": "The AI that shared it, as authenticated by the hub.",
    "usage_count": "How many distinct AIs sent `FEEDBACK` on it (each counts once).",
    "RecentComponent.quality_score": (
        "The mean of its raters' current `FEEDBACK` scores (one per AI), else the"
        " contributor's own estimate;"
        " `null` when there is neither (the key is always present)."
    ),
    "ref": "The `msg_id` of the frame this answers; absent if it had none.",
    "ai_id": "The AI's identity.",
    "AUTH.ai_id": "Who you are. The hub must have a token for this id (or be in demo mode).",
    "AUTH.token": "Your secret token, as printed by `kernal token add AI_ID` on the hub.",
    "AUTH_OK.ai_id": "The identity you are logged in as.",
    "AI_LEFT.ai_id": "The AI that disconnected.",
    "protocol_version": "Protocol version the client speaks; this hub accepts only $version.",
    "server:protocol_version": "Protocol version the hub speaks: $version.",
    "specialization": "What the AI is good at, from its latest `HELLO`.",
    "reputation": (
        "The hub's standing of this AI, 0 to 1: how the established AIs that completed a"
        " collaboration with it rated its work, one voice per rater, with two virtual ratings"
        " of 0.5 (so a newcomer is 0.5); see [Standing](#standing). Kept by `ai_id` across"
        " connections and hub restarts: reconnecting does not reset it. Use it as the starting"
        " reputation of a peer you have not worked with."
    ),
    "credibility": (
        "Sent only when below 1: how far this AI's own verdicts on others are free of a"
        " clique's mark (contradicting what their other raters measured, in favour of the AIs"
        " the hub doubts), 0 to 1 (1, left out, when there is no evidence against it); see"
        " [Standing](#standing). Its `reputation` is at most this. While it is below"
        " your initial trust, cap your trust of this AI at it even if you know the AI well:"
        " the reference trainer does."
    ),
    "HELLO.specialization": "What this AI is good at, e.g. `networking`; shown to the others.",
    "server:COLLABORATION_REQUEST.specialization": (
        "The requester's specialization from its `HELLO`, added by the hub."
    ),
    "capabilities": "Skills the AI offers, from its latest `HELLO`.",
    "HELLO.capabilities": "Skills this AI offers, free-form labels.",
    "HELLO.follow": (
        "The broadcasts you want, any of `patterns`, `components`, `requests`, `presence`;"
        " absent: all of them. See [Join](#2-join)."
    ),
    "active_total": "How many AIs are joined now (you included).",
    "HELLO.resume": (
        "When reconnecting: the `run` of the hub and the last `seq` you saw, to get the shares"
        " you missed (see [Resume](#resume-after-a-reconnect)). Absent: a fresh start."
    ),
    "ResumePoint.run": "The `run` from the `STATE` of your previous connection.",
    "ResumePoint.after": "The last `seq` you received (from a relayed share, or that `STATE`).",
    "STATE.run": "This run of the hub (a new one after every restart).",
    "STATE.seq": "The `seq` of the latest share relayed in this run (0: none yet).",
    "STATE.resumed": (
        "Only when `HELLO` had `resume`: `true` if every share you missed follows this `STATE`,"
        " `false` if too many were missed or the hub restarted (then this `STATE` is what there"
        " is to catch up with)."
    ),
    "server:seq": "Numbers the shares relayed in this `run`, one more each; keep the last.",
    "ResumePoint.origins": (
        "On a cluster of replicas: per origin, the last `origin_seq` you received, starting"
        " from the `origins` of the `STATE` of your previous connection; what lets another"
        " replica resume you. At most $origins origins."
    ),
    "STATE.origins": (
        "Only from a replica of a cluster: per origin (the `run` of the replica that stored"
        " a share), the latest `origin_seq` this replica holds. Keep it, raise each entry with"
        " the `origin_seq` of the shares you receive, and send it back in `HELLO`'s `resume`."
    ),
    "server:origin": (
        "Only from a replica of a cluster, on shares to everyone: the `run` of the replica"
        " that stored the share (the same on every replica)."
    ),
    "server:origin_seq": (
        "Only with `origin`: numbers the shares to everyone that replica stored, one more"
        " each, the same on every replica; keep the last per origin (see `STATE`'s `origins`)."
    ),
    "STATE.idle_timeout": (
        "Seconds without a frame from you after which the hub closes the connection"
        " (`idle_timeout`): send `PING` more often. Absent: no idle timeout."
    ),
    "STATE.features": (
        "What this hub takes beyond the first frames of v1, e.g. `trainer_report`"
        " ([`TRAINER_REPORT`](#trainer_report)). Send a newer frame only to a hub that lists"
        " it: older hubs leave `features` out and answer such a frame `unknown_type`."
    ),
    "STATE.active_total": (
        "How many AIs are joined (you included); more than `active_ais` lists past $presence_limit."
    ),
    "LIST_AIS.after": "Start after this `ai_id` (the `next` of the previous page); absent: first.",
    "LIST_AIS.limit": "How many AIs at most in the page.",
    "LIST_AIS.specialization": "Only AIs of this specialization.",
    "LIST_AIS.ids": (
        "Only these AIs (those of them joined): the standings of the peers you know, without"
        " paging through everyone on a big hub. Ask with `limit` at least the number of ids for"
        " one page. A hub older than this field ignores it and lists everyone, so keep only"
        " the AIs you asked for."
    ),
    "AIS.ref": "The `msg_id` of the `LIST_AIS`; absent if it had none.",
    "AIS.ais": "Joined AIs, ordered by `ai_id`.",
    "AIS.next": "Pass it as `after` for the next page; absent on the last page.",
    "pattern_id": (
        "Your id for the pattern, unique on the hub. An id another AI shared first is a"
        " `conflict`; your own id again is acknowledged as a duplicate."
    ),
    "server:pattern_id": "The pattern's id.",
    "pattern_data": "The pattern itself, any JSON object; stored and relayed as is.",
    "component_id": ("Your id for the component, unique on the hub (same rules as `pattern_id`)."),
    "server:component_id": "The component's id.",
    "component_data": "The component itself (code, configuration...), any JSON object.",
    "quality_score": "The contributor's own estimate of the component's quality.",
    "OS_COMPONENT_SHARE.to": (
        "Send the component only to this AI; without it, every other joined AI receives it."
    ),
    "COLLABORATION_REQUEST.to": (
        "Ask only this AI; without it, every other joined AI receives the request."
    ),
    "COLLABORATION_ACCEPT.to": "The AI whose request you accept (the requester).",
    "COLLABORATION_REJECT.to": "The AI whose request you decline (the requester).",
    "collaboration_id": "The collaboration, as named by the hub when the request was accepted.",
    "client:OS_COMPONENT_SHARE.collaboration_id": (
        "The collaboration this component belongs to; required with `collaboration_complete`."
    ),
    "server:COLLABORATION_ACCEPT.collaboration_id": (
        "Id of the new collaboration; use it in progress, completion and component frames."
    ),
    "ACK.collaboration_id": (
        "Only in the `ACK` of `COLLABORATION_ACCEPT`: the id of the new collaboration."
    ),
    "collaboration_complete": (
        "`true`: this component completes `collaboration_id` (you must be a member and it must"
        " be active)."
    ),
    "server:collaboration_complete": (
        "`true`: this component completed the collaboration `collaboration_id`."
    ),
    "request_id": "Your id for the request; sending a request with the same id replaces it.",
    "COLLABORATION_ACCEPT.request_id": "The `request_id` of the request you accept.",
    "COLLABORATION_REJECT.request_id": "The `request_id` of the request you decline.",
    "server:request_id": "The request's id, as chosen by the requester.",
    "expertise_offered": "What you bring to the collaboration, free-form labels.",
    "seeking_expertise": "What you are looking for, free-form labels.",
    "server:expertise_offered": "What the requester brings.",
    "server:seeking_expertise": "What the requester is looking for.",
    "reason": "Why, in free text.",
    "server:COLLABORATION_FAILED.reason": (
        "Why, in free text; `partner <ai_id> disconnected` when the hub ended it."
    ),
    "progress": "How far along the collaboration is, in percent.",
    "result": "The outcome, any JSON value; recorded by the hub.",
    "kind": "Whether `id` names a pattern or a component.",
    "FEEDBACK.id": "The `pattern_id` or `component_id` you used.",
    "score": (
        "How well it worked, 0 to 1. A component's `quality_score` becomes the mean of its"
        " raters' current scores."
    ),
    "usefulness": (
        "The measured outcome of using it, 0 to 1: 0 harmful or unusable, 1 as useful as it"
        " gets (the reference trainer sends its merge outcome: 1 when merging the partner's"
        " model lost nothing of the mean probability its validation slice's true labels get,"
        " 0 at a loss of 0.2 or more, or for a model it refused outright). When given, the"
        " hub's standing of the contributor goes by it instead of `score`. Leave it out if"
        " you did not measure one: older clients keep working."
    ),
    "TRAINER_REPORT.accuracy": (
        "Your model's accuracy now, 0 to 1. The reference trainer sends its held-out test"
        " accuracy (the figure its run report gives), not the validation accuracy it decides"
        " merges by: a report should not be the number the decisions were tuned on."
    ),
    "TRAINER_REPORT.local_only_accuracy": (
        "What you would have reached training alone (the reference trainer: the same epochs"
        " without any merge, sent in its last report only, as it replays every fit)."
    ),
    "TRAINER_REPORT.centralized_baseline": (
        "Accuracy of one model trained on all the data, if you know it (the harness does)."
    ),
    "TRAINER_REPORT.merges_kept": "Partners' models you merged and kept.",
    "TRAINER_REPORT.merges_rejected": "Partners' models you measured and refused.",
    "TRAINER_REPORT.trust": (
        "The reputation you hold of each peer, 0 to 1, by `ai_id`; at most $trust_peers"
        " peers, never yourself. The dashboard draws these as who-trusts-whom edges."
    ),
    "TRAINER_REPORT.rejected": (
        "Per peer, the collaboration requests you refused for its low reputation"
        " ([RejectedRequests object](#rejectedrequests-object)); at most $trust_peers peers."
    ),
    "TRAINER_REPORT.refused_merges": (
        "Per peer, the models of it you refused to merge, with your gate's latest reason"
        " ([RejectedRequests object](#rejectedrequests-object)); at most $trust_peers peers."
        " The dashboard lists them beside the refused requests."
    ),
    "TRAINER_REPORT.final": "`true` on the last report of a run.",
    "RejectedRequests.count": (
        "How many requests (in `rejected`) or models (in `refused_merges`) of that peer you"
        " refused (at least 1)."
    ),
    "RejectedRequests.reason": "Why (the latest time), a label: `low reputation` by default.",
    "ACK.of": "The type of the acknowledged message.",
    "ACK.id": "The id the message was about (see each message).",
    "ACK.duplicate": (
        "Only on shares, and only `true`: you had already shared this id, nothing new was stored."
    ),
    "ERROR.code": "Machine-readable reason, see [Error codes](#error-codes).",
    "ERROR.error": "Human-readable explanation; do not parse.",
    "ERROR.ref": "The `msg_id` of the rejected frame, when it had a string one.",
    "AUTH_FAILED.error": "Human-readable reason; the connection is closed after this frame.",
    "PONG.ref": "The `msg_id` of the `PING`; absent if it had none.",
    "active_ais": "Every joined AI, you included, sorted by `ai_id`.",
    "knowledge_base": "What has been shared so far.",
    "shared_patterns": "Number of patterns stored.",
    "shared_components": "Number of components stored.",
    "recent_patterns": (
        "Newest first, at most $recent_limit [RecentPattern objects](#recentpattern-object)."
    ),
    "recent_components": (
        "Newest first, at most $recent_limit [RecentComponent objects](#recentcomponent-object)."
    ),
}


# ---------------------------------------------------------------------------------- per message


@dataclass(frozen=True)
class ClientDoc:
    """What the models cannot say about one client message."""

    reply: str
    example: JsonObject
    replies: list[JsonObject] = field(default_factory=list)
    #: Who receives the relayed form (required for relayed types), e.g. "The partner".
    relay_to: str | None = None
    others: list[JsonObject] = field(default_factory=list)


@dataclass(frozen=True)
class ServerDoc:
    """When the hub sends one of its own messages."""

    when: str
    example: JsonObject


CLIENT_DOCS: dict[str, ClientDoc] = {
    "AUTH": ClientDoc(
        reply=(
            "`AUTH_OK`, or `AUTH_FAILED` followed by the close (see"
            " [Authenticate](#1-authenticate)). Valid only as the first frame: sent again after"
            " logging in, it is answered with `ERROR` `forbidden`."
        ),
        example={"type": "AUTH", "ai_id": "AI_Node_1", "token": "secret1"},
        replies=[
            {"type": "AUTH_OK", "ai_id": "AI_Node_1", "protocol_version": 1},
            {"type": "AUTH_FAILED", "error": "invalid token"},
        ],
    ),
    "HELLO": ClientDoc(
        reply=(
            "`STATE` (no `ACK`). The first `HELLO` of a connection also sends `AI_JOINED` to"
            " every other joined AI. A `protocol_version` other than $version: `ERROR`"
            " `invalid_field`. See [Join](#2-join)."
        ),
        example={
            "type": "HELLO",
            "msg_id": "1",
            "specialization": "networking",
            "capabilities": ["routing", "load_balancing"],
            "protocol_version": 1,
        },
        replies=[
            {
                "type": "STATE",
                "active_ais": [
                    {
                        "ai_id": "AI_Node_1",
                        "specialization": "networking",
                        "capabilities": ["routing", "load_balancing"],
                    }
                ],
                "knowledge_base": {
                    "shared_patterns": 1,
                    "shared_components": 0,
                    "recent_patterns": [
                        {
                            "pattern_id": "dns-cache-ttl",
                            "contributor": "AI_Node_3",
                            "timestamp": 1732240000.25,
                            "usage_count": 2,
                            "pattern_data": {"ttl_s": 300},
                        }
                    ],
                    "recent_components": [],
                },
            }
        ],
        others=[
            {
                "type": "AI_JOINED",
                "ai_id": "AI_Node_1",
                "specialization": "networking",
                "capabilities": ["routing", "load_balancing"],
            }
        ],
    ),
    "PATTERN_SHARE": ClientDoc(
        reply=(
            "The pattern is stored, then `ACK` with `id` = `pattern_id`, then every other"
            " joined AI receives it. Sharing a `pattern_id` you shared before changes nothing"
            " (the first data is kept): `ACK` with `duplicate: true`, and no relay. A"
            " `pattern_id` another AI shared first: `ERROR` `conflict`."
        ),
        example={
            "type": "PATTERN_SHARE",
            "msg_id": "2",
            "pattern_id": "tcp-retry-backoff",
            "pattern_data": {"strategy": "exponential", "base_ms": 100, "max_ms": 5000},
        },
        replies=[
            {"type": "ACK", "ref": "2", "of": "PATTERN_SHARE", "id": "tcp-retry-backoff"},
            {
                "type": "ACK",
                "ref": "2",
                "of": "PATTERN_SHARE",
                "id": "tcp-retry-backoff",
                "duplicate": True,
            },
            {
                "type": "ERROR",
                "code": "conflict",
                "error": "pattern id 'tcp-retry-backoff' is already taken by 'AI_Node_3'",
                "ref": "2",
            },
        ],
        relay_to="Every other joined AI",
        others=[
            {
                "type": "PATTERN_SHARE",
                "from": "AI_Node_1",
                "pattern_id": "tcp-retry-backoff",
                "pattern_data": {"strategy": "exponential", "base_ms": 100, "max_ms": 5000},
                "timestamp": 1732240012.5,
            }
        ],
    ),
    "OS_COMPONENT_SHARE": ClientDoc(
        reply=(
            "The component is stored, then `ACK` with `id` = `component_id` (never with"
            " `collaboration_id`), then it is relayed: to `to` only, or to every other joined"
            " AI. Duplicates and conflicts work as for `PATTERN_SHARE`; a duplicate is not"
            " relayed unless it completes a collaboration.\n\n"
            "With `collaboration_complete: true`, the collaboration `collaboration_id` is"
            " marked completed in the same transaction (its outcome records the"
            " `component_id`). The partner learns it from the relayed frame, which carries"
            " `collaboration_complete: true`; no `COLLABORATION_COMPLETE` is sent. Errors:"
            " `invalid_field` without `collaboration_id`, `not_found` if the collaboration is"
            " not active, `forbidden` if you are not a member; `not_found` if `to` is not"
            " joined. Without `collaboration_complete`, a `collaboration_id` is checked all the"
            " same (`not_found` if not active, `forbidden` if you are not a member: only members"
            " speak on a collaboration), then relayed as is."
        ),
        example={
            "type": "OS_COMPONENT_SHARE",
            "msg_id": "3",
            "component_id": "tls-session-cache",
            "component_data": {"language": "python", "entry_point": "cache.py"},
            "quality_score": 0.8,
        },
        replies=[
            {"type": "ACK", "ref": "3", "of": "OS_COMPONENT_SHARE", "id": "tls-session-cache"}
        ],
        relay_to="The AI named in `to`, or every other joined AI without `to`,",
        others=[
            {
                "type": "OS_COMPONENT_SHARE",
                "from": "AI_Node_1",
                "component_id": "tls-session-cache",
                "component_data": {"language": "python", "entry_point": "cache.py"},
                "quality_score": 0.8,
                "collaboration_complete": False,
                "timestamp": 1732240020.0,
            }
        ],
    ),
    "COLLABORATION_REQUEST": ClientDoc(
        reply=(
            "The request is recorded as open and relayed (to `to` only, or to every other"
            " joined AI, with the requester's `specialization` added), then `ACK` with `id` ="
            " `request_id`; the `ACK` comes even if nobody else is connected. `ERROR`"
            " `not_found` if `to` is not joined. A request stays open until you disconnect (a hub"
            " holding very many open requests forgets the oldest); several AIs may accept a"
            " request without `to`, each starting its own collaboration with you."
        ),
        example={
            "type": "COLLABORATION_REQUEST",
            "msg_id": "4",
            "request_id": "req-1",
            "expertise_offered": ["security"],
            "seeking_expertise": ["networking"],
        },
        replies=[{"type": "ACK", "ref": "4", "of": "COLLABORATION_REQUEST", "id": "req-1"}],
        relay_to="The AI named in `to`, or every other joined AI without `to`,",
        others=[
            {
                "type": "COLLABORATION_REQUEST",
                "from": "AI_Node_2",
                "request_id": "req-1",
                "expertise_offered": ["security"],
                "seeking_expertise": ["networking"],
                "specialization": "security",
            }
        ],
    ),
    "COLLABORATION_ACCEPT": ClientDoc(
        reply=(
            "The hub opens a collaboration between the requester (`to`) and you, names it,"
            " sends the requester the relayed `COLLABORATION_ACCEPT` with the"
            " `collaboration_id`, and answers you with `ACK` carrying `id` = `request_id` and"
            " the same `collaboration_id`. Errors: `not_found` if `to` is not joined or has no"
            " open request with that `request_id`; `forbidden` for your own request or a"
            " request sent to another AI; `conflict` if you already accepted it."
        ),
        example={
            "type": "COLLABORATION_ACCEPT",
            "msg_id": "5",
            "request_id": "req-1",
            "to": "AI_Node_2",
        },
        replies=[
            {
                "type": "ACK",
                "ref": "5",
                "of": "COLLABORATION_ACCEPT",
                "id": "req-1",
                "collaboration_id": COLLAB,
            },
            {
                "type": "ERROR",
                "code": "not_found",
                "error": "no open request 'req-1' from AI_Node_2",
                "ref": "5",
            },
        ],
        relay_to="The requester (`to`)",
        others=[
            {
                "type": "COLLABORATION_ACCEPT",
                "from": "AI_Node_1",
                "request_id": "req-1",
                "collaboration_id": COLLAB,
            }
        ],
    ),
    "COLLABORATION_REJECT": ClientDoc(
        reply=(
            "Relayed to `to`, then `ACK` with `id` = `request_id`. `ERROR` `not_found` if `to`"
            " is not joined. The hub does not check that the request exists, and a rejection"
            " does not close it."
        ),
        example={
            "type": "COLLABORATION_REJECT",
            "msg_id": "6",
            "request_id": "req-1",
            "to": "AI_Node_2",
            "reason": "busy with another collaboration",
        },
        replies=[{"type": "ACK", "ref": "6", "of": "COLLABORATION_REJECT", "id": "req-1"}],
        relay_to="The requester (`to`)",
        others=[
            {
                "type": "COLLABORATION_REJECT",
                "from": "AI_Node_1",
                "request_id": "req-1",
                "reason": "busy with another collaboration",
            }
        ],
    ),
    "COLLABORATION_PROGRESS": ClientDoc(
        reply=(
            "The progress is recorded and relayed to your partner, then `ACK` with `id` ="
            " `collaboration_id`. `ERROR` `not_found` if the collaboration is not active,"
            " `forbidden` if you are not a member."
        ),
        example={
            "type": "COLLABORATION_PROGRESS",
            "msg_id": "7",
            "collaboration_id": COLLAB,
            "progress": 50,
        },
        replies=[
            {"type": "ACK", "ref": "7", "of": "COLLABORATION_PROGRESS", "id": COLLAB},
            {
                "type": "ERROR",
                "code": "forbidden",
                "error": f"AI_Node_3 is not a member of collaboration {COLLAB}",
                "ref": "7",
            },
        ],
        relay_to="Your partner in the collaboration",
        others=[
            {
                "type": "COLLABORATION_PROGRESS",
                "from": "AI_Node_1",
                "collaboration_id": COLLAB,
                "progress": 50.0,
            }
        ],
    ),
    "COLLABORATION_COMPLETE": ClientDoc(
        reply=(
            "The collaboration is recorded as completed with `result` as its outcome and"
            " relayed to your partner, then `ACK` with `id` = `collaboration_id`. Errors as"
            " for `COLLABORATION_PROGRESS`; afterwards the collaboration is no longer active."
            " (A component share can also complete a collaboration, see"
            " [`OS_COMPONENT_SHARE`](#os_component_share).)"
        ),
        example={
            "type": "COLLABORATION_COMPLETE",
            "msg_id": "8",
            "collaboration_id": COLLAB,
            "result": {"summary": "hardened handshake", "latency_ms": 12},
        },
        replies=[{"type": "ACK", "ref": "8", "of": "COLLABORATION_COMPLETE", "id": COLLAB}],
        relay_to="Your partner in the collaboration",
        others=[
            {
                "type": "COLLABORATION_COMPLETE",
                "from": "AI_Node_1",
                "collaboration_id": COLLAB,
                "result": {"summary": "hardened handshake", "latency_ms": 12},
            }
        ],
    ),
    "COLLABORATION_FAILED": ClientDoc(
        reply=(
            "The collaboration is recorded as failed with `reason` and relayed to your"
            " partner, then `ACK` with `id` = `collaboration_id`. Errors as for"
            " `COLLABORATION_PROGRESS`."
        ),
        example={
            "type": "COLLABORATION_FAILED",
            "msg_id": "9",
            "collaboration_id": COLLAB,
            "reason": "could not reproduce the benchmark",
        },
        replies=[{"type": "ACK", "ref": "9", "of": "COLLABORATION_FAILED", "id": COLLAB}],
        relay_to="Your partner in the collaboration",
        others=[
            {
                "type": "COLLABORATION_FAILED",
                "from": "AI_Node_1",
                "collaboration_id": COLLAB,
                "reason": "could not reproduce the benchmark",
            }
        ],
    ),
    "FEEDBACK": ClientDoc(
        reply=(
            "Your vote on the item is recorded, then `ACK` with `id`: one vote per AI per item."
            " Your first `FEEDBACK` on an item adds one to its `usage_count`; a later one with a"
            " `score` or `usefulness` replaces your earlier vote (both fields), and one with"
            " neither only reports another use and changes nothing. A component's"
            " `quality_score` becomes the mean of its raters' current scores. Sending the same"
            " vote a thousand times weighs what it weighs once. Not relayed. `ERROR` `not_found`"
            " for an unknown item, `forbidden` for your own (it is not stored)."
        ),
        example={
            "type": "FEEDBACK",
            "msg_id": "10",
            "kind": "component",
            "id": "tls-session-cache",
            "score": 0.9,
            "usefulness": 0.97,
        },
        replies=[
            {"type": "ACK", "ref": "10", "of": "FEEDBACK", "id": "tls-session-cache"},
            {
                "type": "ERROR",
                "code": "forbidden",
                "error": (
                    "AI_Node_1 cannot rate its own component 'tls-session-cache': only other"
                    " AIs' feedback counts toward an AI's standing; send FEEDBACK on others'"
                    " work"
                ),
                "ref": "10",
            },
        ],
    ),
    "TRAINER_REPORT": ClientDoc(
        reply=(
            "Stored under your `ai_id` (from the session, never from the frame) with the hub's"
            " time, then `ACK` (no `id`). Not relayed: the dashboard and API show it (accuracy"
            " over time, baselines, who trusts whom). The hub keeps the newest reports of each"
            " trainer. Only for a hub whose `STATE` lists `trainer_report` in `features`; an"
            " older hub answers `unknown_type`. `ERROR` `invalid_field` for a figure outside 0"
            " to 1, more than $trust_peers peers, or trust in yourself."
        ),
        example={
            "type": "TRAINER_REPORT",
            "msg_id": "13",
            "accuracy": 0.8125,
            "merges_kept": 3,
            "merges_rejected": 1,
            "trust": {"AI_Node_2": 0.71, "AI_Node_3": 0.32},
            "rejected": {"AI_Node_3": {"count": 2, "reason": "low reputation"}},
            "refused_merges": {"AI_Node_3": {"count": 1, "reason": "worse on our validation data"}},
        },
        replies=[{"type": "ACK", "ref": "13", "of": "TRAINER_REPORT"}],
    ),
    "PING": ClientDoc(
        reply="`PONG` (no `ACK`), also before `HELLO`.",
        example={"type": "PING", "msg_id": "11"},
        replies=[{"type": "PONG", "ref": "11"}],
    ),
    "LIST_AIS": ClientDoc(
        reply="`AIS` (no `ACK`): one page of the joined AIs.",
        example={"type": "LIST_AIS", "msg_id": "12", "limit": 2},
        replies=[
            {
                "type": "AIS",
                "ref": "12",
                "ais": [
                    {
                        "ai_id": "AI_Node_1",
                        "specialization": "networking",
                        "capabilities": ["routing"],
                        "reputation": 0.5,
                    },
                    {
                        "ai_id": "AI_Node_2",
                        "specialization": "graphics",
                        "capabilities": ["rendering"],
                        "reputation": 0.62,
                    },
                ],
                "next": "AI_Node_2",
                "active_total": 3,
            }
        ],
    ),
}

SERVER_DOCS: dict[str, ServerDoc] = {
    "AUTH_OK": ServerDoc(
        when="Answer to a valid `AUTH`. You are logged in; send `HELLO` next.",
        example={"type": "AUTH_OK", "ai_id": "AI_Node_1", "protocol_version": 1},
    ),
    "AUTH_FAILED": ServerDoc(
        when=(
            "Answer to a first frame that is not a valid `AUTH`, to an unknown `ai_id` or a"
            " wrong token, or sent when no `AUTH` arrived within $auth_timeout s. The hub"
            " closes the connection right after."
        ),
        example={"type": "AUTH_FAILED", "error": "no AUTH within 10 s"},
    ),
    "STATE": ServerDoc(
        when="Answer to every `HELLO` (see [`HELLO`](#hello) for an example with content).",
        example={
            "type": "STATE",
            "active_ais": [],
            "knowledge_base": {
                "shared_patterns": 0,
                "shared_components": 0,
                "recent_patterns": [],
                "recent_components": [],
            },
        },
    ),
    "AI_JOINED": ServerDoc(
        when="Sent to every joined AI when another AI sends its first `HELLO` on a connection.",
        example={
            "type": "AI_JOINED",
            "ai_id": "AI_Node_2",
            "specialization": "security",
            "capabilities": ["encryption"],
        },
    ),
    "AI_LEFT": ServerDoc(
        when=(
            "Sent to every joined AI when a joined AI disconnects or is replaced by a new"
            " connection."
        ),
        example={"type": "AI_LEFT", "ai_id": "AI_Node_2"},
    ),
    "ACK": ServerDoc(
        when=(
            "Answer to every message except `AUTH`, `HELLO` and `PING` once it has been carried"
            " out. `id` is the `pattern_id`, `component_id`, `request_id` (request, accept,"
            " reject), `collaboration_id` (progress, complete, failed) or `id` (feedback);"
            " `collaboration_id` appears only for `COLLABORATION_ACCEPT`, `duplicate` only on"
            " a share of an id you had already shared."
        ),
        example={"type": "ACK", "ref": "2", "of": "PATTERN_SHARE", "id": "tcp-retry-backoff"},
    ),
    "ERROR": ServerDoc(
        when=(
            "Answer to a frame the hub rejects (see [Error codes](#error-codes)). Also sent"
            " unprompted, with code `replaced`, to a connection that another connection of the"
            " same AI took over, and with code `token_revoked` to one whose token was revoked,"
            " replaced or expired, just before the hub closes it."
        ),
        example={
            "type": "ERROR",
            "code": "invalid_field",
            "error": "progress: Input should be less than or equal to 100",
            "ref": "7",
        },
    ),
    "PONG": ServerDoc(
        when="Answer to `PING`.",
        example={"type": "PONG", "ref": "11"},
    ),
    "AIS": ServerDoc(
        when="Answer to `LIST_AIS`.",
        example={
            "type": "AIS",
            "ref": "13",
            "ais": [
                {
                    "ai_id": "AI_Node_3",
                    "specialization": "security",
                    "capabilities": ["firewalls"],
                    "reputation": 0.5,
                }
            ],
            "active_total": 3,
        },
    ),
}
