"""Message models and error codes: the invariants the codec and the docs rely on."""

from __future__ import annotations

import typing
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

from kernal.protocol import CLOSING_CODES, PROTOCOL_VERSION, ErrorCode, ProtocolError
from kernal.protocol.errors import FrameTooLarge
from kernal.protocol.messages import (
    CLIENT_MESSAGE_TYPES,
    SERVER_MESSAGE_TYPES,
    Auth,
    ClientMessage,
    Hello,
    Message,
    PatternShare,
    Relayed,
    RelayedPatternShare,
    ServerMessage,
)

ALL_MODELS: list[tuple[str, type[BaseModel]]] = [
    *CLIENT_MESSAGE_TYPES.items(),
    *SERVER_MESSAGE_TYPES.items(),
]


@pytest.mark.parametrize(("name", "model"), ALL_MODELS, ids=[n for n, _ in ALL_MODELS])
def test_type_is_a_literal_equal_to_its_key(name: str, model: type[BaseModel]) -> None:
    field = model.model_fields["type"]
    assert get_origin(field.annotation) is Literal
    assert get_args(field.annotation) == (name,)
    assert field.default == name


def test_protocol_version() -> None:
    assert PROTOCOL_VERSION == 1
    assert Hello(specialization="s").protocol_version == 1


def test_client_message_union_is_every_client_type_but_auth() -> None:
    union = set(get_args(ClientMessage))
    assert union == set(CLIENT_MESSAGE_TYPES.values()) - {Auth}


@pytest.mark.parametrize(
    "model", list(CLIENT_MESSAGE_TYPES.values()), ids=list(CLIENT_MESSAGE_TYPES)
)
def test_client_models_are_strict_tolerant_and_frozen(model: type[Message]) -> None:
    assert issubclass(model, Message)
    config = model.model_config
    assert config.get("strict") is True
    assert config.get("extra") == "ignore"
    assert config.get("frozen") is True
    assert "msg_id" in model.model_fields


@pytest.mark.parametrize(
    "model", list(CLIENT_MESSAGE_TYPES.values()), ids=list(CLIENT_MESSAGE_TYPES)
)
def test_client_models_have_no_hub_only_fields(model: type[Message]) -> None:
    fields = set(model.model_fields)
    aliases = {f.alias for f in model.model_fields.values() if f.alias}
    for hub_only in ("from", "sender", "contributor", "timestamp"):
        assert hub_only not in fields | aliases


@pytest.mark.parametrize(
    "model", list(SERVER_MESSAGE_TYPES.values()), ids=list(SERVER_MESSAGE_TYPES)
)
def test_server_models_are_tolerant(model: type[ServerMessage]) -> None:
    assert issubclass(model, ServerMessage)
    assert model.model_config.get("extra") == "ignore"
    assert not model.model_config.get("strict")


def test_relayed_types_mirror_client_types() -> None:
    relayed = {name for name, model in SERVER_MESSAGE_TYPES.items() if issubclass(model, Relayed)}
    assert relayed <= set(CLIENT_MESSAGE_TYPES)
    # Every client message that other AIs see comes back to them under the same type.
    not_relayed = {"AUTH", "HELLO", "FEEDBACK", "TRAINER_REPORT", "PING", "LIST_AIS"}
    assert relayed == set(CLIENT_MESSAGE_TYPES) - not_relayed
    for name in relayed:
        field = SERVER_MESSAGE_TYPES[name].model_fields["sender"]
        assert field.alias == "from"
        assert field.is_required()


def test_relayed_accepts_from_and_sender() -> None:
    by_alias = RelayedPatternShare.model_validate(
        {"from": "a", "pattern_id": "p", "pattern_data": {}, "timestamp": 1}
    )
    by_name = RelayedPatternShare(sender="a", pattern_id="p", pattern_data={}, timestamp=1)
    assert by_alias == by_name


def test_models_are_frozen() -> None:
    message = PatternShare(pattern_id="p", pattern_data={})
    with pytest.raises(ValidationError):
        message.pattern_id = "q"  # type: ignore[misc]


def test_strict_models_do_not_coerce_in_python_either() -> None:
    with pytest.raises(ValidationError):
        Hello.model_validate({"specialization": "s", "protocol_version": "1"})


def test_mutable_defaults_are_not_shared() -> None:
    first = Hello(specialization="a")
    second = Hello(specialization="b")
    assert first.capabilities == second.capabilities == []
    assert first.capabilities is not second.capabilities


def test_hints_resolve() -> None:
    # The docs generator reads the models' types; they must resolve without NameError.
    for _, model in ALL_MODELS:
        typing.get_type_hints(model)


# ------------------------------------------------------------------------------ errors


def test_error_codes() -> None:
    assert {code.value for code in ErrorCode} == {
        "bad_json",
        "not_an_object",
        "unknown_type",
        "invalid_field",
        "not_authenticated",
        "frame_too_large",
        "conflict",
        "not_found",
        "forbidden",
        "internal_error",
        "replaced",
        "rate_limited",
        "idle_timeout",
        "token_revoked",
    }
    assert ErrorCode.BAD_JSON == "bad_json"  # a StrEnum: serialises as its value


def test_closing_codes() -> None:
    assert {
        ErrorCode.NOT_AUTHENTICATED,
        ErrorCode.FRAME_TOO_LARGE,
        ErrorCode.REPLACED,
        ErrorCode.IDLE_TIMEOUT,
        ErrorCode.TOKEN_REVOKED,
    } == CLOSING_CODES


def test_protocol_error_carries_code_reason_and_ref() -> None:
    error = ProtocolError(ErrorCode.CONFLICT, "taken", "m1")
    assert (error.code, error.reason, error.ref) == (ErrorCode.CONFLICT, "taken", "m1")
    assert str(error) == "conflict: taken"
    assert ProtocolError(ErrorCode.NOT_FOUND, "x").ref is None


def test_frame_too_large() -> None:
    error = FrameTooLarge(1024)
    assert isinstance(error, ProtocolError)
    assert error.code is ErrorCode.FRAME_TOO_LARGE
    assert error.limit == 1024
    assert "1024" in error.reason
    assert error.ref is None


def _field_names(model: type[BaseModel]) -> set[Any]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_relayed_shares_carry_what_the_client_sent() -> None:
    # Every field a client sends on a share reaches the receivers (except routing fields).
    for name in ("PATTERN_SHARE", "OS_COMPONENT_SHARE"):
        sent = _field_names(CLIENT_MESSAGE_TYPES[name]) - {"msg_id", "to"}
        assert sent <= _field_names(SERVER_MESSAGE_TYPES[name])
