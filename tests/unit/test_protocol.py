"""WebSocket frame parsing: JSON objects with a type, validated, errors with their codes."""

from __future__ import annotations

from typing import Any

import pytest

from parley import errors
from parley.server.realtime import protocol


def parse(text: str) -> protocol.Frame:
    return protocol.parse(protocol.decode(text))


def test_send_frame_is_typed_and_its_content_cleaned() -> None:
    frame = parse('{"type": "send", "chat_id": 3, "content": "  hi  ", "client_id": "c1", "x": 1}')
    assert isinstance(frame, protocol.Send)
    assert (frame.chat_id, frame.content, frame.client_id) == (3, "hi", "c1")
    assert frame.reply_to is None and frame.attachment_ids == []


def test_seed_frame_without_type_is_a_send_to_general() -> None:
    frame = parse('{"content": "hello", "client_id": "s1"}')
    assert isinstance(frame, protocol.Send)
    assert frame.chat_id is None and frame.content == "hello" and frame.client_id == "s1"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('{"type": "edit", "message_id": 4, "content": "x"}', protocol.Edit),
        ('{"type": "delete", "message_id": 4}', protocol.Delete),
        ('{"type": "react", "message_id": 4, "emoji": "👍"}', protocol.React),
        ('{"type": "unreact", "message_id": 4, "emoji": "👍"}', protocol.Unreact),
        ('{"type": "typing", "chat_id": 1}', protocol.Typing),
        ('{"type": "read", "chat_id": 1, "seq": 0}', protocol.Read),
        ('{"type": "sync", "chats": {"1": 5, "2": 0}}', protocol.Sync),
        ('{"type": "ping"}', protocol.Ping),
    ],
)
def test_every_client_frame_type_parses(text: str, kind: type[protocol.Frame]) -> None:
    assert type(parse(text)) is kind


def test_sync_keys_become_chat_ids() -> None:
    frame = parse('{"type": "sync", "chats": {"7": 3}}')
    assert isinstance(frame, protocol.Sync) and frame.chats == {7: 3}


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2]", '"ping"', "null", "\x00"])
def test_non_objects_are_bad_frames(text: str) -> None:
    with pytest.raises(protocol.FrameError) as error:
        protocol.decode(text)
    assert error.value.code == "bad_frame"


@pytest.mark.parametrize("data", [{}, {"type": 3}, {"type": None}, {"chat_id": 1}])
def test_frames_need_a_string_type(data: dict[str, Any]) -> None:
    with pytest.raises(protocol.FrameError):
        protocol.parse(data)


def test_unknown_types_are_named_in_the_error() -> None:
    with pytest.raises(errors.ParleyError) as error:
        protocol.parse({"type": "dance"})
    assert error.value.code == "unknown_type" and "dance" in error.value.detail


@pytest.mark.parametrize(
    "data",
    [
        {"type": "send", "chat_id": 1, "content": "   "},
        {"type": "send", "chat_id": 1, "content": "x" * 4001},
        {"type": "send", "chat_id": 0, "content": "hi"},
        {"type": "send", "chat_id": "one", "content": "hi"},
        {"type": "send", "chat_id": 1, "content": "hi", "client_id": "has space"},
        {"type": "send", "chat_id": 1, "content": "hi", "attachment_ids": list(range(1, 12))},
        {"type": "edit", "message_id": 1},
        {"type": "read", "chat_id": 1, "seq": -1},
        {"type": "sync", "chats": {"x": 1}},
        {"type": "sync", "chats": [1, 2]},
        {"content": 5},
    ],
)
def test_invalid_fields_are_validation_errors(data: dict[str, Any]) -> None:
    with pytest.raises(errors.ValidationFailed) as error:
        protocol.parse(data)
    assert error.value.code == "validation_error" and error.value.detail


@pytest.mark.parametrize(
    ("data", "ref"),
    [
        ({"type": "send", "client_id": "c1", "message_id": 4}, "c1"),
        ({"type": "edit", "message_id": 4}, 4),
        ({"type": "ping"}, None),
        ([1], None),
    ],
)
def test_errors_echo_the_client_id_else_the_message_id(data: Any, ref: Any) -> None:
    assert protocol.ref_of(data) == ref


# --- one declaration per frame type -------------------------------------------------------


def test_every_frame_type_has_a_model_a_budget_and_a_handler() -> None:
    from parley.server.realtime import handlers as ws

    assert set(protocol.FRAMES) == set(ws.HANDLERS)
    assert set(protocol.FRAMES) >= {"send", "edit", "react", "unreact", "sync", "ping"}
    for kind, model in protocol.FRAMES.items():
        assert model.kind == kind
        assert isinstance(model.budget, protocol.Budget)
    assert protocol.FRAMES["unreact"].budget is protocol.FRAMES["react"].budget
    assert ws.HANDLERS["unreact"] is ws.HANDLERS["react"]


def test_a_frame_type_without_a_budget_fails_at_import() -> None:
    with pytest.raises(TypeError, match="budget"):

        class Wave(protocol.Frame, kind="wave_test"):
            pass

    assert "wave_test" not in protocol.FRAMES


def test_a_frame_type_declared_twice_or_without_a_handler_is_refused() -> None:
    with pytest.raises(TypeError, match="declared twice"):

        class Pong(protocol.Frame, kind="ping", budget="1/second"):
            pass

    handlers = {kind: object() for kind in protocol.FRAMES if kind != "sync"}
    with pytest.raises(TypeError, match=r"missing for \['sync'\]"):
        protocol.check_handled(handlers)


# --- server frames ---------------------------------------------------------------------------


def test_server_frames_encode_with_their_type_first() -> None:
    import orjson

    from parley.server.realtime import frames

    assert frames.Pong().encode() == '{"type":"pong"}'
    assert frames.Synced([]).encode() == '{"type":"synced"}'
    assert orjson.loads(frames.Synced([4, 5]).encode()) == {"type": "synced", "truncated": [4, 5]}
    text = frames.Read(chat_id=1, user_id=2, seq=3).encode()
    assert text == '{"type":"read","chat_id":1,"user_id":2,"seq":3}'
    error = orjson.loads(frames.Error("rate_limited", "Too many", "c1").encode())
    assert error == {"type": "error", "code": "rate_limited", "detail": "Too many", "ref": "c1"}
