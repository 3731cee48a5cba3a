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
#: Unix seconds of 0001-01-01T00:00:00Z and of 9999-12-31T23:59:59Z, the Timestamp range.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799


def to_duration(seconds: float | timedelta | None) -> duration_pb2.Duration | None:
    """A Duration for ``seconds`` (or a timedelta), or None. Only what no Duration can hold
    (NaN, infinity, beyond the 64-bit seconds field) is refused here; the server checks the
    Duration range and what each field allows."""
    if seconds is None:
        return None
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    duration = duration_pb2.Duration()
    try:
        duration.FromNanoseconds(round(seconds * 1e9))
    except (ValueError, OverflowError):
        raise InvalidArgumentError(
            f"a Duration cannot hold {seconds} seconds (not a finite 64-bit number)",
            violations=[("duration", "not a number of seconds a Duration can hold")],
        ) from None
    return duration


def from_duration(duration: duration_pb2.Duration) -> float:
    """Seconds of ``duration``."""
    return duration.seconds + duration.nanos / 1e9


def clamped_timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    """The Timestamp of a stored Unix time, clamped into the Timestamp range.

    Requests can no longer carry a time outside 0001-01-01..9999-12-31 (see
    the server's request checks), but a record stored before that check may
    hold one (``seconds = 2**63 - 1``): such a time reads back as the nearest end of the range,
    9999-12-31T23:59:59.999999999Z or 0001-01-01T00:00:00Z (NaN as the latter), so reading a
    stored record never fails.
    """
    if not seconds < MAX_TIMESTAMP_SECONDS + 1:
        if math.isnan(seconds):
            return timestamp_pb2.Timestamp(seconds=MIN_TIMESTAMP_SECONDS)
        return timestamp_pb2.Timestamp(seconds=MAX_TIMESTAMP_SECONDS, nanos=999_999_999)
    if seconds < MIN_TIMESTAMP_SECONDS:
        return timestamp_pb2.Timestamp(seconds=MIN_TIMESTAMP_SECONDS)
    stamp = timestamp_from_unix(seconds)
    if stamp.seconds > MAX_TIMESTAMP_SECONDS:  # rounded up past the end
        return timestamp_pb2.Timestamp(seconds=MAX_TIMESTAMP_SECONDS, nanos=999_999_999)
    return stamp


def clamped_duration(seconds: float) -> duration_pb2.Duration:
    """The Duration of a stored number of seconds, clamped into the Duration range (as
    :func:`clamped_timestamp` clamps, so that reading a stored record never fails; NaN is 0)."""
    if math.isnan(seconds):
        seconds = 0.0
    bound = float(MAX_DURATION_SECONDS)
    message = duration_pb2.Duration()
    message.FromNanoseconds(round(min(max(seconds, -bound), bound) * 1e9))
    return message
