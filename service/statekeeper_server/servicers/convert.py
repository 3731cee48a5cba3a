"""Conversions between engine objects and proto messages that several servicers share."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import duration_pb2, timestamp_pb2
from statekeeper import values
from statekeeper.v1 import common_pb2, state_service_pb2

from statekeeper_server.engine.backend import Entry, Event, EventType
from statekeeper_server.engine.limits import check_ttl

_EVENT_TYPES = {
    EventType.PUT: state_service_pb2.EVENT_TYPE_PUT,
    EventType.DELETE: state_service_pb2.EVENT_TYPE_DELETE,
    EventType.EXPIRE: state_service_pb2.EVENT_TYPE_EXPIRE,
}


def timestamp_from_unix(seconds: float) -> timestamp_pb2.Timestamp:
    """A Timestamp for Unix time ``seconds``."""
    stamp = timestamp_pb2.Timestamp()
    whole = int(seconds // 1)
    stamp.seconds = whole
    stamp.nanos = round((seconds - whole) * 1e9) % 1_000_000_000
    return stamp


def timestamp_from_datetime(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A Timestamp for ``moment`` (naive datetimes are local time, as ``datetime.now()``)."""
    if moment is None:
        return None
    return timestamp_from_unix(moment.timestamp())


def datetime_from_timestamp(stamp: timestamp_pb2.Timestamp) -> datetime:
    """An aware UTC datetime for ``stamp``."""
    return datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, tz=UTC)


def ttl_seconds(message: object, field: str = "ttl") -> float | None:
    """The validated TTL of ``message.<field>`` (a Duration) in seconds, or None when unset."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    duration: duration_pb2.Duration = getattr(message, field)
    return check_ttl(duration.seconds + duration.nanos / 1e9, field)


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
