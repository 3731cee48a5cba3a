"""Conversions between Python times and protobuf Timestamp / Duration.

The reference API compares results with ``datetime.now()``, so datetimes returned by the API are
naive local time, like ``datetime.now()``. Datetimes given to the API may be naive (read as local
time) or timezone-aware.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2

from statekeeper.errors import InvalidArgumentError


def timestamp_from_unix(seconds: float) -> timestamp_pb2.Timestamp:
    """A Timestamp for Unix time ``seconds``."""
    whole = int(seconds // 1)
    nanos = round((seconds - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    return timestamp_pb2.Timestamp(seconds=whole, nanos=nanos)


def to_timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A Timestamp for ``moment``, or None."""
    return None if moment is None else timestamp_from_unix(moment.timestamp())


def unix_from_timestamp(stamp: timestamp_pb2.Timestamp) -> float:
    """Unix seconds of ``stamp``."""
    return stamp.seconds + stamp.nanos / 1e9


def from_timestamp(stamp: timestamp_pb2.Timestamp) -> datetime:
    """A naive local datetime for ``stamp`` (comparable with ``datetime.now()``)."""
    return datetime.fromtimestamp(unix_from_timestamp(stamp))


def optional_datetime(message: object, field: str) -> datetime | None:
    """``message.<field>`` as a naive local datetime, or None when the field is unset."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    return from_timestamp(getattr(message, field))


#: The longest google.protobuf.Duration, in seconds (about 10,000 years).
MAX_DURATION_SECONDS = 315_576_000_000


def to_duration(seconds: float | timedelta | None) -> duration_pb2.Duration | None:
    """A Duration for ``seconds`` (or a timedelta), or None."""
    if seconds is None:
        return None
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    if not math.isfinite(seconds) or abs(seconds) > MAX_DURATION_SECONDS:
        raise InvalidArgumentError(
            f"a duration must be a finite number of seconds up to {MAX_DURATION_SECONDS:,}, "
            f"got {seconds}",
            violations=[("duration", "out of range")],
        )
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def from_duration(duration: duration_pb2.Duration) -> float:
    """Seconds of ``duration``."""
    return duration.seconds + duration.nanos / 1e9
