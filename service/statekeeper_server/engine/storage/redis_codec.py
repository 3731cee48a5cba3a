"""Decoding the Redis backend's replies and change-log entries into entries and events."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgpack

from statekeeper_server.engine.storage.backend import Entry, Event, EventType


def expire_text(expire_at: float | None) -> str:
    """An expiry time as a script argument ("" for none)."""
    return "" if expire_at is None else repr(float(expire_at))


def expire_value(raw: bytes | str | None) -> float | None:
    """An expiry time as Redis stores it ("" or missing for none)."""
    if not raw:
        return None
    return float(raw)


def text_of(raw: bytes | str) -> str:
    """A key or id from a reply, as text."""
    return raw.decode() if isinstance(raw, bytes) else raw


def decode_events(
    revision: int, packed: bytes, keep: Callable[[str], bool] | None = None
) -> tuple[Event, ...]:
    """The events of one change-log entry (see the scripts for the layout), only those whose
    key ``keep`` accepts when it is given (the others are not built)."""
    events: list[Event] = []
    for item in msgpack.unpackb(packed, raw=True):
        kind, raw_key, value, create, version, expire = item[:6]
        key = raw_key.decode()
        if keep is not None and not keep(key):
            continue
        prev_value, prev_create, prev_mod, prev_version, prev_expire = item[6:11]
        prev = None
        if prev_mod:
            prev = Entry(
                key,
                bytes(prev_value),
                int(prev_create),
                int(prev_mod),
                int(prev_version),
                expire_value(prev_expire),
            )
        entry = None
        event_type = EventType(int(kind))
        if event_type is EventType.PUT:
            entry = Entry(
                key, bytes(value), int(create), revision, int(version), expire_value(expire)
            )
        events.append(Event(event_type, key, revision, entry, prev))
    return tuple(events)


def stream_revision(entry_id: bytes | str) -> int:
    """The revision of a change-log stream id ``<revision>-0``."""
    return int(text_of(entry_id).split("-", 1)[0])


#: The hash fields of an entry: value, create revision, mod revision, version, expiry.
ENTRY_FIELDS = ("v", "c", "m", "n", "x")


def entry_of(key: str, fields: list[Any]) -> Entry | None:
    """The live entry for the HMGET reply ``fields``, or None when missing or expired."""
    value, create, mod, version, expire = fields
    if value is None:
        return None
    expire_at = expire_value(expire)
    if expire_at is not None and expire_at <= time.time():
        return None
    return Entry(key, bytes(value), int(create), int(mod), int(version), expire_at)


def flat_entry(reply: list[Any], index: int) -> Entry:
    """The entry a script wrote with ``emit`` at ``reply[index:index + 6]``."""
    key, value, create, mod, version, expire = reply[index : index + 6]
    return Entry(
        text_of(key), bytes(value), int(create), int(mod), int(version), expire_value(expire)
    )
