"""Conversions between engine objects and proto messages that several servicers share."""

from __future__ import annotations

from typing import Any

from google.protobuf import duration_pb2
from statekeeper import values
from statekeeper.errors import InvalidArgumentError, Reason
from statekeeper.timestamps import from_duration, timestamp_from_unix
from statekeeper.v1 import common_pb2, state_service_pb2

from statekeeper_server.engine.backend import Entry, Event, EventType
from statekeeper_server.engine.limits import check_ttl

_EVENT_TYPES = {
    EventType.PUT: state_service_pb2.EVENT_TYPE_PUT,
    EventType.DELETE: state_service_pb2.EVENT_TYPE_DELETE,
    EventType.EXPIRE: state_service_pb2.EVENT_TYPE_EXPIRE,
}


def ttl_seconds(message: object, field: str = "ttl") -> float | None:
    """The validated TTL of ``message.<field>`` (a Duration) in seconds, or None when unset."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    duration: duration_pb2.Duration = getattr(message, field)
    return check_ttl(from_duration(duration), field)


def kv_to_proto(entry: Entry, encoding: int | None) -> common_pb2.KeyValue:
    """A KeyValue for ``entry``; with ``encoding`` None the value is left out."""
    kv = common_pb2.KeyValue(
        key=entry.key,
        create_revision=entry.create_revision,
        mod_revision=entry.mod_revision,
        version=entry.version,
    )
    if encoding is not None:
        kv.value.CopyFrom(values.bytes_to_wire(entry.value, encoding))
    if entry.expire_at is not None:
        kv.expire_time.CopyFrom(timestamp_from_unix(entry.expire_at))
    return kv


def event_to_proto(event: Event, encoding: int, with_prev: bool) -> state_service_pb2.Event:
    """An Event message for ``event``."""
    message = state_service_pb2.Event(type=_EVENT_TYPES[event.type])
    if event.entry is not None:
        message.kv.CopyFrom(kv_to_proto(event.entry, encoding))
    else:
        message.kv.key = event.key
        message.kv.mod_revision = event.revision
    if with_prev and event.prev is not None:
        message.prev_kv.CopyFrom(kv_to_proto(event.prev, encoding))
    return message


def enum_suffix(enum: Any, value: int, field: str) -> str:
    """The name of a known enum ``value`` without the enum's prefix ("" for the UNSPECIFIED
    zero value); an unknown number, which any client can send, is INVALID_ARGUMENT."""
    if value == 0:
        return ""
    descriptor = enum.DESCRIPTOR.values_by_number.get(value)
    if descriptor is None:
        raise InvalidArgumentError(
            f"{field} has no value {value}",
            reason=Reason.INVALID_ARGUMENT,
            violations=[(field, f"unknown enum value {value}")],
        )
    prefix = enum.DESCRIPTOR.values_by_number[0].name.removesuffix("UNSPECIFIED")
    return str(descriptor.name).removeprefix(prefix)
