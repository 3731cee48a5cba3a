"""Speech session state (the reference's ``SpeechStateManager``), written once over a Backend.

Records live under ``<tenant>speech/s/<session_id>/`` (see
:mod:`~statekeeper_server.engine.tenancy`):

* ``meta`` — the session document: type, streaming mode, config, status, the current STT, TTS
  and conversation states, and ``seq``, the sequence number of the session's latest event;
* ``ev/<sequence, 20 digits>`` — one event per change of the session.

Every change reads ``meta``, checks the state machine, and commits the new ``meta`` (with
``seq + 1``) and the event ``ev/<seq + 1>`` in one compare-and-set transaction, retried on
conflict. So sequence numbers are consecutive with no gaps, and event order is commit order,
whichever server instance a writer uses.

A subscriber (:meth:`SpeechEngine.watch_session`) reads ``meta`` (latest sequence ``S`` at
revision ``M``), replays the stored events from the requested sequence up to ``S`` with range
reads, then follows the backend watch of ``ev/`` from revision ``M + 1``, skipping sequences
already delivered. If the backend's watch history is compacted under a slow subscriber, the
subscriber re-syncs from the stored events, so nothing is lost while the events are retained.

Retention: each event expires ``event_retention`` after it is written (default one hour); when
the session ends, ``meta`` and the end event expire ``ended_retention`` later (default one
hour), after which the session is NOT_FOUND.

Idle expiry (``Limits.speech_session_idle_ttl``, 0: off): every change of a live session sets
``idle_at`` (now + the idle TTL) in ``meta``, gives ``meta`` a backend TTL of ``idle_at +
ended_retention`` and rewrites the lease key ``idle`` with a backend TTL of ``idle_at``, all in
the change's transaction; so a session nobody touches needs no background task of its own. A
session whose ``idle_at`` has passed is ended (status ENDED, reason :data:`IDLE_END_REASON`,
``ended_at`` = ``idle_at``, an end event like EndSession's) by whichever comes first: the
backend's EXPIRE of the lease seen by a subscriber of the session, or any read or change of the
session; each of these ends it with a compare-and-set on ``meta``, so concurrent ones on several
servers end it once. A session with no subscriber and no reads is removed by ``meta``'s TTL.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from statekeeper import values
from statekeeper.errors import (
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    HistoryCompactedError,
    InvalidArgumentError,
    NotFoundError,
    Reason,
)
from statekeeper.v1 import speech_service_pb2 as pb

from statekeeper_server.engine.domains.tools import invalid
from statekeeper_server.engine.identifiers import check_id
from statekeeper_server.engine.limits import Limits, check_ttl
from statekeeper_server.engine.records import retry_on_conflict
from statekeeper_server.engine.storage.backend import (
    Backend,
    Compare,
    Delete,
    EventType,
    Operation,
    Put,
)
from statekeeper_server.engine.storage.glob import GlobPattern
from statekeeper_server.engine.tenancy import tenant_prefix

#: The backend namespace of speech sessions (after the tenant prefix).
NAMESPACE = "speech/s/"
#: Defaults of the per-session retention settings, in seconds.
DEFAULT_ENDED_RETENTION = 3600.0
DEFAULT_EVENT_RETENTION = 3600.0
#: The longest session type and end reason.
MAX_TYPE_LENGTH = 256
MAX_REASON_LENGTH = 1024
#: The end reason of a session ended by idle expiry.
IDLE_END_REASON = "idle_expired"
#: The keys of a session a subscriber follows: its events and its idle lease (not ``meta``).
_WATCHED = GlobPattern("[ei]*")
#: How many stored events a catching-up subscriber reads per range call.
REPLAY_PAGE = 500

INITIALIZING = pb.AUDIO_SESSION_STATUS_INITIALIZING
ACTIVE = pb.AUDIO_SESSION_STATUS_ACTIVE
PAUSED = pb.AUDIO_SESSION_STATUS_PAUSED
ERROR = pb.AUDIO_SESSION_STATUS_ERROR
ENDED = pb.AUDIO_SESSION_STATUS_ENDED

#: The status each status may move to (ENDED may move nowhere).
TRANSITIONS: dict[int, frozenset[int]] = {
    INITIALIZING: frozenset({INITIALIZING, ACTIVE, PAUSED, ERROR, ENDED}),
    ACTIVE: frozenset({ACTIVE, PAUSED, ERROR, ENDED}),
    PAUSED: frozenset({PAUSED, ACTIVE, ERROR, ENDED}),
    ERROR: frozenset({ERROR, ACTIVE, ENDED}),
    ENDED: frozenset(),
}

#: Event kinds (the ``kind`` member of a stored event).
CREATED_EVENT = "created"
STATUS_EVENT = "status"
STT_EVENT = "stt"
TTS_EVENT = "tts"
CONVERSATION_EVENT = "conversation"
ENDED_EVENT = "ended"


@dataclass(frozen=True, slots=True)
class WatchStarted:
    """The first item of a session watch: the session's latest sequence at subscription."""

    last_sequence: int


def _check_text(value: str, field: str, limit: int) -> str:
    if len(value) > limit:
        raise invalid(field, f"longer than {limit} characters")
    return value


def _check_count(value: int, field: str) -> int:
    if value < 0:
        raise invalid(field, "must not be negative")
    return value


def _check_fraction(value: float, field: str) -> float:
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise invalid(field, "must be between 0 and 1")
    return value


def check_stt(state: dict[str, Any], field: str) -> dict[str, Any]:
    """Validate an STT state document (``status``, byte count, progress, confidence)."""
    if state["status"] not in pb.TranscriptionStatus.values():
        raise invalid(f"{field}.status", "unknown transcription status")
    if state["status"] == pb.TRANSCRIPTION_STATUS_UNSPECIFIED:
        state["status"] = pb.TRANSCRIPTION_STATUS_IDLE
    _check_count(state["audio_received_bytes"], f"{field}.audio_received_bytes")
    _check_fraction(state["transcription_progress"], f"{field}.transcription_progress")
    _check_fraction(state["confidence"], f"{field}.confidence")
    return state


def check_tts(state: dict[str, Any], field: str) -> dict[str, Any]:
    """Validate a TTS state document (byte counts)."""
    _check_count(state["audio_generated_bytes"], f"{field}.audio_generated_bytes")
    _check_count(state["audio_played_bytes"], f"{field}.audio_played_bytes")
    return state


def check_conversation(state: dict[str, Any], field: str) -> dict[str, Any]:
    """Validate a conversation state document (turn count, transcript list, nested states)."""
    _check_count(state["turn_count"], f"{field}.turn_count")
    _check_text(state["current_speaker"], f"{field}.current_speaker", MAX_TYPE_LENGTH)
    if state["transcript"] is None:
        state["transcript"] = []
    if not isinstance(state["transcript"], list):
        raise invalid(f"{field}.transcript", "must be a list of turns")
    if state.get("stt") is not None:
        check_stt(state["stt"], f"{field}.stt_state")
    if state.get("tts") is not None:
        check_tts(state["tts"], f"{field}.tts_state")
    return state


def _idle_due(meta: dict[str, Any]) -> bool:
    """True when a live session's ``idle_at`` has passed (it is to be ended as idle)."""
    idle_at = meta.get("idle_at")
    return meta["status"] != ENDED and idle_at is not None and time.time() >= idle_at


def _session_not_found(session_id: str) -> NotFoundError:
    return NotFoundError(
        f"speech session {session_id!r} not found",
        reason=Reason.SESSION_NOT_FOUND,
        metadata={"session_id": session_id},
    )


class SpeechEngine:
    """Speech sessions, their STT / TTS / conversation state and their event streams."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        self.backend = backend
        self.limits = limits or Limits()

    @staticmethod
    def _prefix(session_id: str) -> str:
        return f"{tenant_prefix()}{NAMESPACE}{session_id}/"

    @staticmethod
    def _event_key(prefix: str, sequence: int) -> str:
        return f"{prefix}ev/{sequence:020d}"

    async def create_session(
        self,
        *,
        session_id: str,
        session_type: str,
        streaming_mode: int,
        config: Any,
        ended_retention: float | None,
        event_retention: float | None,
    ) -> dict[str, Any]:
        """Create a session in status INITIALIZING; its creation is event 1."""
        if session_id:
            check_id(session_id, "session_id")
        else:
            session_id = f"sess_{uuid.uuid4().hex}"
        _check_text(session_type, "session_type", MAX_TYPE_LENGTH)
        if streaming_mode not in pb.StreamingMode.values():
            raise invalid("streaming_mode", "unknown streaming mode")
        if streaming_mode == pb.STREAMING_MODE_UNSPECIFIED:
            streaming_mode = pb.STREAMING_MODE_NONE
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise invalid("config", "must be a map")
        ended_retention = check_ttl(ended_retention, "ended_retention") or DEFAULT_ENDED_RETENTION
        event_retention = check_ttl(event_retention, "event_retention") or DEFAULT_EVENT_RETENTION
        now = time.time()
        idle_ttl = self.limits.speech_session_idle_ttl
        idle_at = now + idle_ttl if idle_ttl > 0 else None
        meta = {
            "session_id": session_id,
            "session_type": session_type,
            "streaming_mode": streaming_mode,
            "config": config,
            "status": INITIALIZING,
            "created_at": now,
            "updated_at": now,
            "ended_at": None,
            "end_reason": "",
            "seq": 1,
            "stt": None,
            "tts": None,
            "conv": None,
            "ended_retention": ended_retention,
            "event_retention": event_retention,
            "idle_at": idle_at,
        }
        event = {
            "seq": 1,
            "time": now,
            "kind": CREATED_EVENT,
            "payload": {
                "session_type": session_type,
                "streaming_mode": streaming_mode,
                "config": config,
            },
        }
        prefix = self._prefix(session_id)
        data = self.limits.check_value_size(values.pack(meta), "config")
        try:
            operations: list[Operation] = [
                Put(prefix + "meta", data, None if idle_at is None else idle_at + ended_retention),
                Put(self._event_key(prefix, 1), values.pack(event), now + event_retention),
            ]
            if idle_at is not None:
                operations.append(Put(prefix + "idle", b"", idle_at))
            await self.backend.txn([Compare(prefix + "meta", 0)], operations)
        except ConflictError:
            raise AlreadyExistsError(
                f"speech session {session_id!r} already exists",
                reason=Reason.ALREADY_EXISTS,
                metadata={"session_id": session_id},
            ) from None
        return meta

    async def get_session(self, session_id: str) -> dict[str, Any]:
        """The session document, or SESSION_NOT_FOUND."""
        check_id(session_id, "session_id")
        return await self._expire_idle(session_id)

    async def _expire_idle(self, session_id: str, lease_revision: int = 0) -> dict[str, Any]:
        """The session document, after ending the session if it is idle: its ``idle_at`` has
        passed, or its ``meta`` is still at ``lease_revision`` (the revision of a lease whose
        expiry the backend reported, so no change came since)."""
        prefix = self._prefix(session_id)

        async def attempt() -> dict[str, Any]:
            entry = await self.backend.get(prefix + "meta")
            if entry is None:
                raise _session_not_found(session_id)
            meta: dict[str, Any] = values.unpack(entry.value)
            idle_at = meta.get("idle_at")
            if meta["status"] == ENDED or idle_at is None:
                return meta
            if not _idle_due(meta) and entry.mod_revision != lease_revision:
                return meta
            now = time.time()
            previous_status = meta["status"]
            sequence = meta["seq"] + 1
            meta.update(status=ENDED, ended_at=idle_at, end_reason=IDLE_END_REASON, seq=sequence)
            payload = {"reason": IDLE_END_REASON, "previous_status": previous_status}
            event = {"seq": sequence, "time": now, "kind": ENDED_EVENT, "payload": payload}
            expiry = now + meta["ended_retention"]
            await self.backend.txn(
                [Compare(prefix + "meta", entry.mod_revision)],
                [
                    Put(prefix + "meta", values.pack(meta), expiry),
                    Put(
                        self._event_key(prefix, sequence),
                        values.pack(event),
                        max(expiry, now + meta["event_retention"]),
                    ),
                    Delete(prefix + "idle"),
                ],
            )
            return meta

        return await retry_on_conflict(attempt)

    async def _change(
        self,
        session_id: str,
        change: Callable[[dict[str, Any], float], tuple[str, dict[str, Any]]],
    ) -> tuple[dict[str, Any], int, dict[str, Any]]:
        """Apply ``change(meta, now) -> (event kind, payload)`` to a live session and append its
        event, atomically; returns the new session document, the sequence and the payload."""
        check_id(session_id, "session_id")
        prefix = self._prefix(session_id)

        async def attempt() -> tuple[dict[str, Any], int, dict[str, Any]]:
            entry = await self.backend.get(prefix + "meta")
            if entry is None:
                raise _session_not_found(session_id)
            meta = values.unpack(entry.value)
            if _idle_due(meta):
                meta = await self._expire_idle(session_id)
            if meta["status"] == ENDED:
                raise FailedPreconditionError(
                    f"speech session {session_id!r} has ended",
                    reason=Reason.SESSION_ENDED,
                    metadata={"session_id": session_id},
                )
            now = time.time()
            kind, payload = change(meta, now)
            sequence = meta["seq"] + 1
            meta["seq"] = sequence
            meta["updated_at"] = now
            event = {"seq": sequence, "time": now, "kind": kind, "payload": payload}
            meta_expiry: float | None = None
            event_expiry = now + meta["event_retention"]
            idle_ttl = self.limits.speech_session_idle_ttl
            lease: Operation = Delete(prefix + "idle")
            meta["idle_at"] = None
            if kind == ENDED_EVENT:
                meta_expiry = now + meta["ended_retention"]
                event_expiry = max(event_expiry, meta_expiry)
            elif idle_ttl > 0:
                meta["idle_at"] = now + idle_ttl
                meta_expiry = meta["idle_at"] + meta["ended_retention"]
                lease = Put(prefix + "idle", b"", meta["idle_at"])
            data = self.limits.check_value_size(values.pack(meta))
            await self.backend.txn(
                [Compare(prefix + "meta", entry.mod_revision)],
                [
                    Put(prefix + "meta", data, meta_expiry),
                    Put(self._event_key(prefix, sequence), values.pack(event), event_expiry),
                    lease,
                ],
            )
            return meta, sequence, payload

        return await retry_on_conflict(attempt)

    async def update_status(self, session_id: str, status: int) -> tuple[int, int, int]:
        """Move a session to ``status``; returns (previous status, status, sequence).
        ENDED ends the session with reason ``status_ended``."""
        if status not in pb.AudioSessionStatus.values() or status == 0:
            raise invalid("status", "unknown or unspecified session status")
        if status == ENDED:
            previous, sequence, _ = await self.end_session(session_id, "status_ended", None)
            return previous, ENDED, sequence
        previous_status = 0

        def change(meta: dict[str, Any], now: float) -> tuple[str, dict[str, Any]]:
            nonlocal previous_status
            previous_status = meta["status"]
            if status not in TRANSITIONS[previous_status]:
                raise FailedPreconditionError(
                    f"speech session {session_id!r} cannot move from "
                    f"{pb.AudioSessionStatus.Name(previous_status)} to "
                    f"{pb.AudioSessionStatus.Name(status)}",
                    reason=Reason.INVALID_STATUS_TRANSITION,
                    metadata={
                        "session_id": session_id,
                        "from": pb.AudioSessionStatus.Name(previous_status),
                        "to": pb.AudioSessionStatus.Name(status),
                    },
                )
            meta["status"] = status
            return STATUS_EVENT, {"previous_status": previous_status, "status": status}

        _, sequence, _ = await self._change(session_id, change)
        return previous_status, status, sequence

    async def update_stt(self, session_id: str, state: dict[str, Any]) -> tuple[dict, int]:
        """Replace the STT state; returns the stored state and the event's sequence."""
        return await self._replace_part(session_id, "stt", STT_EVENT, check_stt(state, "stt_state"))

    async def update_tts(self, session_id: str, state: dict[str, Any]) -> tuple[dict, int]:
        """Replace the TTS state; returns the stored state and the event's sequence."""
        return await self._replace_part(session_id, "tts", TTS_EVENT, check_tts(state, "tts_state"))

    async def _replace_part(
        self, session_id: str, part: str, kind: str, state: dict[str, Any]
    ) -> tuple[dict, int]:
        """Replace the session's ``part`` ("stt" or "tts") state with ``state`` and append a
        ``kind`` event; returns the stored state and the event's sequence."""

        def change(meta: dict[str, Any], now: float) -> tuple[str, dict[str, Any]]:
            state["updated_at"] = now
            meta[part] = state
            return kind, state

        _, sequence, payload = await self._change(session_id, change)
        return payload, sequence

    async def update_conversation(self, session_id: str, state: dict[str, Any]) -> tuple[dict, int]:
        """Replace the conversation state (and the STT / TTS states it carries)."""
        check_conversation(state, "conversation_state")

        def change(meta: dict[str, Any], now: float) -> tuple[str, dict[str, Any]]:
            state["updated_at"] = now
            for part in ("stt", "tts"):
                if state.get(part) is not None:
                    state[part]["updated_at"] = now
                    meta[part] = state[part]
            meta["conv"] = {k: v for k, v in state.items() if k not in ("stt", "tts")}
            return CONVERSATION_EVENT, state

        _, sequence, payload = await self._change(session_id, change)
        return payload, sequence

    async def end_session(
        self, session_id: str, reason: str, retention: float | None
    ) -> tuple[int, int, float]:
        """End a session; returns (previous status, end sequence, removal time)."""
        _check_text(reason, "reason", MAX_REASON_LENGTH)
        retention = check_ttl(retention, "retention")
        previous_status = 0

        def change(meta: dict[str, Any], now: float) -> tuple[str, dict[str, Any]]:
            nonlocal previous_status
            previous_status = meta["status"]
            meta["status"] = ENDED
            meta["ended_at"] = now
            meta["end_reason"] = reason
            if retention is not None:
                meta["ended_retention"] = retention
            return ENDED_EVENT, {"reason": reason, "previous_status": previous_status}

        meta, sequence, _ = await self._change(session_id, change)
        return previous_status, sequence, meta["ended_at"] + meta["ended_retention"]

    async def watch_session(
        self, session_id: str, from_sequence: int = 0
    ) -> AsyncIterator[WatchStarted | dict[str, Any]]:
        """A :class:`WatchStarted`, then every event document from ``from_sequence`` (0: after
        the current one; an ended session then yields only its end event), in consecutive
        sequence order, ending after the end event."""
        check_id(session_id, "session_id")
        if from_sequence < 0:
            raise InvalidArgumentError(
                "from_sequence must not be negative",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("from_sequence", "negative")],
            )
        prefix = self._prefix(session_id)
        started = False
        next_sequence = from_sequence
        while True:
            entry = await self.backend.get(prefix + "meta")
            if entry is None:
                raise _session_not_found(session_id)
            meta = values.unpack(entry.value)
            if _idle_due(meta):
                await self._expire_idle(session_id)
                continue  # read the ended session again
            last = meta["seq"]
            if not started:
                started = True
                if next_sequence == 0:
                    next_sequence = last if meta["status"] == ENDED else last + 1
                elif next_sequence > last + 1:
                    raise invalid("from_sequence", f"beyond the next sequence ({last + 1})")
                yield WatchStarted(last)
            # Replay what is stored up to ``last``.
            while next_sequence <= last:
                page = await self.backend.range(
                    prefix + "ev/",
                    start_after=self._event_key(prefix, next_sequence - 1),
                    limit=REPLAY_PAGE,
                )
                if not page.entries:
                    raise _compacted(session_id, next_sequence, last + 1)
                for stored in page.entries:
                    event = values.unpack(stored.value)
                    if event["seq"] != next_sequence:
                        raise _compacted(session_id, next_sequence, event["seq"])
                    yield event
                    if event["kind"] == ENDED_EVENT:
                        return
                    next_sequence += 1
                    if next_sequence > last:
                        break
            # Then follow the live changes.
            updates = self.backend.watch(prefix, _WATCHED, start_revision=entry.mod_revision + 1)
            try:
                async for update in updates:
                    resync = False
                    for change in update.events:
                        if change.key == prefix + "idle":
                            if change.type is EventType.EXPIRE and change.prev is not None:
                                # The session went idle: end it (its end event comes next).
                                try:
                                    await self._expire_idle(session_id, change.prev.mod_revision)
                                except NotFoundError:
                                    return  # removed meanwhile: nothing more will come
                            continue
                        if change.entry is None:
                            continue
                        event = values.unpack(change.entry.value)
                        if event["seq"] < next_sequence:
                            continue
                        if event["seq"] > next_sequence:
                            resync = True
                            break
                        yield event
                        if event["kind"] == ENDED_EVENT:
                            return
                        next_sequence += 1
                    if resync:
                        break
                else:
                    return  # the backend is closing: the caller reports the interruption
            except HistoryCompactedError:
                pass  # the stored events are still there: replay from them
            finally:
                await updates.aclose()  # type: ignore[attr-defined]


def _compacted(session_id: str, wanted: int, oldest: int) -> HistoryCompactedError:
    return HistoryCompactedError(
        f"event {wanted} of speech session {session_id!r} is no longer retained; the oldest "
        f"retained sequence is {oldest}",
        metadata={"session_id": session_id, "oldest_sequence": str(oldest)},
    )
