"""statekeeper.messages: the one conversion between messages and dataclass records."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from statekeeper.errors import InvalidArgumentError
from statekeeper.messages import from_message, to_message
from statekeeper.v1 import common_pb2
from statekeeper.v1 import knowledge_service_pb2 as kb
from statekeeper.v1 import speech_service_pb2 as sp


class Indexing(enum.StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"


@dataclass
class Progress:
    knowledge_base_id: str = ""
    status: Indexing | None = None
    total_documents: int = 0
    embedding_count: int | None = None
    started: datetime | None = None
    update_time: float | None = None
    engine_only: str = "kept out of the message"


@dataclass
class Tts:
    session_id: str = ""
    text_queue: list[str] = field(default_factory=list)
    is_speaking: bool = False


@dataclass
class Session:
    session_id: str = ""
    config: Any = None
    tts_state: Tts | None = None
    ended_retention: float | None = None
    event_retention: timedelta | None = None


def test_scalars_enums_optionals_times_and_renames_round_trip() -> None:
    record = Progress("kb1", Indexing.IN_PROGRESS, 7, None, datetime(2026, 1, 2, 3, 4, 5), 10.5)
    message = to_message(record, kb.IndexingProgress, {"started": "start_time"})
    assert message.status == kb.INDEXING_STATUS_IN_PROGRESS
    assert not message.HasField("embedding_count")
    assert message.update_time.seconds == 10 and message.update_time.nanos == 500_000_000
    back = from_message(message, Progress, {"started": "start_time"})
    assert back == record


def test_unspecified_enum_reads_as_none_and_names_or_values_are_accepted() -> None:
    assert from_message(kb.IndexingProgress(), Progress).status is None
    message = to_message(Progress(status="in_progress"), kb.IndexingProgress)  # type: ignore[arg-type]
    assert message.status == kb.INDEXING_STATUS_IN_PROGRESS
    # A name the enum lacks goes out as a number no value has (not as UNSPECIFIED, which a
    # list filter reads as "any"): the receiver refuses it with its own error.
    sideways = to_message(Progress(status="sideways"), kb.IndexingProgress)  # type: ignore[arg-type]
    assert sideways.status not in kb.IndexingStatus.values()
    with pytest.raises(InvalidArgumentError):
        from_message(sideways, Progress)
    with pytest.raises(InvalidArgumentError):  # and an unknown number coming in is refused
        from_message(kb.IndexingProgress(status=99), Progress)  # type: ignore[arg-type]


def test_nested_repeated_durations_and_documents_in_either_encoding() -> None:
    record = Session(
        "s", {"voice": "calm", "n": [1, 2]}, Tts("s", ["a", "b"], True), 60.0, timedelta(minutes=2)
    )
    for encoding in (None, common_pb2.VALUE_ENCODING_JSON, common_pb2.VALUE_ENCODING_MSGPACK):
        message = to_message(record, sp.AudioSession, encoding=encoding)
        assert message.config.WhichOneof("kind") == (
            "json" if encoding == common_pb2.VALUE_ENCODING_JSON else "msgpack"
        )
        assert list(message.tts_state.text_queue) == ["a", "b"]
        assert message.ended_retention.seconds == 60
        assert from_message(message, Session) == record


def test_unset_nested_message_and_document_read_as_none() -> None:
    assert from_message(sp.AudioSession(session_id="s"), Session) == Session("s")


def test_an_invalid_document_is_invalid_argument_naming_the_field() -> None:
    message = sp.AudioSession(config=common_pb2.Value(msgpack=b"\xc1"))
    with pytest.raises(InvalidArgumentError) as caught:
        from_message(message, Session)
    assert "config" in str(caught.value)
