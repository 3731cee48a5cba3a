"""Conversions between engine objects and proto messages that several servicers share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from statekeeper import values
from statekeeper.errors import HistoryCompactedError
from statekeeper.timestamps import (
    clamped_timestamp,
    from_duration,
    unix_from_timestamp,
)
from statekeeper.v1 import common_pb2, state_service_pb2

from statekeeper_server.core import close_iterator
from statekeeper_server.engine.storage.backend import Entry, Event, EventType

if TYPE_CHECKING:
    from statekeeper_server.core import Core

R = TypeVar("R")

#: The cancel reason of a revision watch that the server ends because it is stopping (its
#: stable token is the part before the colon).
SHUTDOWN_CANCEL_REASON = (
    "server_shutdown: the server is stopping; reconnect and resume from the next revision"
)

_EVENT_TYPES = {
    EventType.PUT: state_service_pb2.EVENT_TYPE_PUT,
    EventType.DELETE: state_service_pb2.EVENT_TYPE_DELETE,
    EventType.EXPIRE: state_service_pb2.EVENT_TYPE_EXPIRE,
}


def optional_seconds(message: Any, field: str) -> float | None:
    """``message.<field>`` (a Duration) in seconds, or None when unset: the type conversion
    only; the manager that takes the value checks it (one HasField, no descriptor walk, as it
    runs on every Save)."""
    if not message.HasField(field):
        return None
    return from_duration(getattr(message, field))


def fill_kv(kv: common_pb2.KeyValue, entry: Entry, encoding: int | None) -> None:
    """Set the fields of ``kv`` (an empty KeyValue, often a response's own) from ``entry``;
    with ``encoding`` None the value is left out. Filling the response's message in place
    spares building one and copying it in."""
    kv.key = entry.key
    kv.create_revision = entry.create_revision
    kv.mod_revision = entry.mod_revision
    kv.version = entry.version
    if encoding == common_pb2.VALUE_ENCODING_MSGPACK:
        kv.value.msgpack = entry.value
    elif encoding is not None:
        kv.value.CopyFrom(values.bytes_to_wire(entry.value, encoding))
    if entry.expire_at is not None:
        kv.expire_time.CopyFrom(clamped_timestamp(entry.expire_at))


def kv_to_proto(entry: Entry, encoding: int | None) -> common_pb2.KeyValue:
    """A KeyValue for ``entry``; with ``encoding`` None the value is left out."""
    kv = common_pb2.KeyValue()
    fill_kv(kv, entry, encoding)
    return kv


def event_to_proto(event: Event, encoding: int, with_prev: bool) -> state_service_pb2.Event:
    """An Event message for ``event``."""
    message = state_service_pb2.Event(type=_EVENT_TYPES[event.type])
    if event.entry is not None:
        fill_kv(message.kv, event.entry, encoding)
    else:
        message.kv.key = event.key
        message.kv.mod_revision = event.revision
    if with_prev and event.prev is not None:
        fill_kv(message.prev_kv, event.prev, encoding)
    return message


def optional_document(message: Any, field: str, path: str) -> Any:
    """The validated document in ``message.<field>`` (a Value), or None when the field is
    unset; ``path`` names the field in errors."""
    if not message.HasField(field):
        return None
    return values.wire_to_document(getattr(message, field), path)


def optional_revision(message: object) -> int | None:
    """The message's ``expected_revision`` when it is set."""
    if message.HasField("expected_revision"):  # type: ignore[attr-defined]
        return int(message.expected_revision)  # type: ignore[attr-defined]
    return None


def optional_unix(message: Any, field: str) -> float | None:
    """``message.<field>`` (a Timestamp) in Unix seconds, or None when unset."""
    if not message.HasField(field):
        return None
    return unix_from_timestamp(getattr(message, field))


def document_to_wire(document: Any, encoding: int) -> common_pb2.Value:
    """A document as a Value in the requested encoding (converted once, not packed and then
    unpacked again for the JSON form)."""
    if encoding == common_pb2.VALUE_ENCODING_MSGPACK:
        return common_pb2.Value(msgpack=values.pack(document))
    return common_pb2.Value(json=values.to_json_value(document))


def set_time(message: Any, field: str, seconds: float | None) -> None:
    """Set the Timestamp ``message.<field>`` to ``seconds`` (Unix), unless it is None."""
    if seconds is not None:
        getattr(message, field).CopyFrom(clamped_timestamp(seconds))


async def revision_watch(
    runtime: Core, responses: AsyncIterator[R], response: Callable[..., R]
) -> AsyncIterator[R]:
    """The responses of a revision-based watch stream until the server stops; a compacted
    start revision or a stopping server ends the stream with a ``response(canceled=True, ...)``
    message."""
    messages = runtime.until_stopping(responses)
    try:
        async for message in messages:
            yield message
    except HistoryCompactedError as error:
        yield response(
            canceled=True, compact_revision=error.compact_revision, cancel_reason=error.message
        )
        return
    finally:
        await close_iterator(messages)
    yield response(canceled=True, cancel_reason=SHUTDOWN_CANCEL_REASON)
