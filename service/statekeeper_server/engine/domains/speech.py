"""Speech session state (the reference's ``SpeechStateManager``), written once over a Backend.

Records live under ``<tenant>speech/s/<session_id>/`` (see
:mod:`~statekeeper_server.engine.tenancy`):

* ``meta`` — the session (an :class:`AudioSession` record): type, streaming mode, config,
  status, the current STT, TTS and conversation states, and ``last_sequence``, the sequence
  number of the session's latest event;
* ``ev/<sequence, 20 digits>`` — one event (a :class:`SessionEvent` record) per change.

Every change reads ``meta``, checks the state machine, and commits the new ``meta`` (with
``last_sequence + 1``) and the event ``ev/<seq + 1>`` in one compare-and-set transaction, retried on
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
from dataclasses import dataclass, replace
from typing import Any

from statekeeper.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    HistoryCompactedError,
    InvalidArgumentError,
    NotFoundError,
    Reason,
)

from statekeeper_server.engine.domains.speech_records import (
    DEFAULT_ENDED_RETENTION,
    DEFAULT_EVENT_RETENTION,
    EVENT,
    SESSION,
    TRANSITIONS,
    AudioSession,
    AudioSessionStatus,
    SessionCreated,
    SessionEnded,
    SessionEvent,
    SessionStatusChanged,
    Status,
    StreamingMode,
    SttState,
    TranscriptionStatus,
    TtsState,
    VoiceConversationState,
)
from statekeeper_server.engine.identifiers import check_id, invalid
from statekeeper_server.engine.limits import Limits, check_ttl
from statekeeper_server.engine.records import Txn, transact
from statekeeper_server.engine.storage.backend import (
    Backend,
    EventType,
)
from statekeeper_server.engine.storage.glob import GlobPattern
from statekeeper_server.engine.tenancy import tenant_prefix

#: The backend namespace of speech sessions (after the tenant prefix).
NAMESPACE = "speech/s/"
#: The longest session type and end reason.
MAX_TYPE_LENGTH = 256
MAX_REASON_LENGTH = 1024
#: The end reason of a session ended by idle expiry.
IDLE_END_REASON = "idle_expired"
#: The keys of a session a subscriber follows: its events and its idle lease (not ``meta``).
_WATCHED = GlobPattern("[ei]*")
#: How many stored events a catching-up subscriber reads per range call.
REPLAY_PAGE = 500


# -- checks ----------------------------------------------------------------------------------


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


def _check_owner(session_id: str, state_session_id: str, field: str) -> None:
    if state_session_id and state_session_id != session_id:
        raise invalid(f"{field}.session_id", "differs from the request's session_id")


def check_stt(session_id: str, state: SttState, field: str) -> SttState:
    """Validate an STT state (owner, byte count, progress, confidence); unspecified status is
    IDLE."""
    _check_owner(session_id, state.session_id, field)
    _check_count(state.audio_received_bytes, f"{field}.audio_received_bytes")
    _check_fraction(state.transcription_progress, f"{field}.transcription_progress")
    _check_fraction(state.confidence, f"{field}.confidence")
    return replace(state, session_id=session_id, status=state.status or TranscriptionStatus.IDLE)


def check_tts(session_id: str, state: TtsState, field: str) -> TtsState:
    """Validate a TTS state (owner, byte counts)."""
    _check_owner(session_id, state.session_id, field)
    _check_count(state.audio_generated_bytes, f"{field}.audio_generated_bytes")
    _check_count(state.audio_played_bytes, f"{field}.audio_played_bytes")
    return replace(state, session_id=session_id)


def check_conversation(
    session_id: str, state: VoiceConversationState, field: str
) -> VoiceConversationState:
    """Validate a conversation state (owner, turn count, transcript list, nested states)."""
    _check_owner(session_id, state.session_id, field)
    _check_count(state.turn_count, f"{field}.turn_count")
    _check_text(state.current_speaker, f"{field}.current_speaker", MAX_TYPE_LENGTH)
    transcript = [] if state.transcript is None else state.transcript
    if not isinstance(transcript, list):
        raise invalid(f"{field}.transcript", "must be a list of turns")
    stt, tts = state.stt_state, state.tts_state
    return replace(
        state,
        session_id=session_id,
        transcript=transcript,
        stt_state=None if stt is None else check_stt(session_id, stt, f"{field}.stt_state"),
        tts_state=None if tts is None else check_tts(session_id, tts, f"{field}.tts_state"),
    )


def _owned(event: SessionEvent, session_id: str) -> SessionEvent:
    """The event with its session id (and its states'), which version 0 did not store."""
    if event.session_id:
        return event
    return replace(
        event,
        session_id=session_id,
        stt_state=event.stt_state and replace(event.stt_state, session_id=session_id),
        tts_state=event.tts_state and replace(event.tts_state, session_id=session_id),
        conversation_state=event.conversation_state
        and _owned_conversation(event.conversation_state, session_id),
    )


def _owned_conversation(state: VoiceConversationState, session_id: str) -> VoiceConversationState:
    return replace(
        state,
        session_id=session_id,
        stt_state=state.stt_state and replace(state.stt_state, session_id=session_id),
        tts_state=state.tts_state and replace(state.tts_state, session_id=session_id),
    )


def _session_not_found(session_id: str) -> NotFoundError:
    return NotFoundError(
        f"speech session {session_id!r} not found",
        reason=Reason.SESSION_NOT_FOUND,
        metadata={"session_id": session_id},
    )


#: A change of a live session: ``change(session, now) -> (new session, event)``; the event's
#: sequence and time are filled in by :meth:`SpeechEngine._change`.
Change = Callable[[AudioSession, float], tuple[AudioSession, SessionEvent]]


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
        streaming_mode: StreamingMode | None,
        config: Any,
        ended_retention: float | None,
        event_retention: float | None,
    ) -> AudioSession:
        """Create a session in status INITIALIZING; its creation is event 1."""
        if session_id:
            check_id(session_id, "session_id")
        else:
            session_id = f"sess_{uuid.uuid4().hex}"
        _check_text(session_type, "session_type", MAX_TYPE_LENGTH)
        config = {} if config is None else config
        if not isinstance(config, dict):
            raise invalid("config", "must be a map")
        now = time.time()
        idle_ttl = self.limits.speech_session_idle_ttl
        session = AudioSession(
            session_id=session_id,
            session_type=session_type,
            streaming_mode=streaming_mode or StreamingMode.NONE,
            config=config,
            status=Status.INITIALIZING,
            created_at=now,
            updated_at=now,
            last_sequence=1,
            ended_retention=check_ttl(ended_retention, "ended_retention")
            or DEFAULT_ENDED_RETENTION,
            event_retention=check_ttl(event_retention, "event_retention")
            or DEFAULT_EVENT_RETENTION,
            idle_at=now + idle_ttl if idle_ttl > 0 else None,
        )
        created = SessionCreated(session_type, session.streaming_mode, config)
        event = SessionEvent(session_id, 1, now, created=created)
        prefix = self._prefix(session_id)

        async def body(txn: Txn) -> AudioSession:
            if await txn.entry(prefix + "meta") is not None:
                raise AlreadyExistsError(
                    f"speech session {session_id!r} already exists",
                    reason=Reason.ALREADY_EXISTS,
                    metadata={"session_id": session_id},
                )
            idle_at = session.idle_at
            expiry = None if idle_at is None else idle_at + session.ended_retention
            txn.put(prefix + "meta", session, SESSION, expiry)
            txn.put(self._event_key(prefix, 1), event, EVENT, now + session.event_retention)
            if idle_at is not None:
                txn.put_raw(prefix + "idle", b"", idle_at)
            return session

        return await transact(self.backend, body, limits=self.limits)

    async def get_session(self, session_id: str) -> AudioSession:
        """The session, or SESSION_NOT_FOUND."""
        check_id(session_id, "session_id")
        return await self._expire_idle(session_id)

    async def _expire_idle(self, session_id: str, lease_revision: int = 0) -> AudioSession:
        """The session, after ending it if it is idle: its ``idle_at`` has passed, or its
        ``meta`` is still at ``lease_revision`` (the revision of a lease whose expiry the
        backend reported, so no change came since)."""
        prefix = self._prefix(session_id)

        async def body(txn: Txn) -> AudioSession:
            entry = await txn.entry(prefix + "meta")
            if entry is None:
                raise _session_not_found(session_id)
            session = SESSION.unpack(entry.value)
            if session.status is Status.ENDED or session.idle_at is None:
                return session
            if not session.idle_due() and entry.mod_revision != lease_revision:
                return session
            now = time.time()
            sequence = session.last_sequence + 1
            ended = replace(
                session,
                status=Status.ENDED,
                ended_at=session.idle_at,
                end_reason=IDLE_END_REASON,
                last_sequence=sequence,
            )
            event = SessionEvent(
                session_id, sequence, now, ended=SessionEnded(IDLE_END_REASON, session.status)
            )
            expiry = now + session.ended_retention
            txn.put(prefix + "meta", ended, SESSION, expiry)
            txn.put(
                self._event_key(prefix, sequence),
                event,
                EVENT,
                max(expiry, now + session.event_retention),
            )
            txn.delete(prefix + "idle")
            return ended

        return await transact(self.backend, body, limits=self.limits)

    async def _change(self, session_id: str, change: Change) -> tuple[AudioSession, SessionEvent]:
        """Apply ``change`` to a live session and append its event, atomically; returns the new
        session and the event."""
        check_id(session_id, "session_id")
        prefix = self._prefix(session_id)

        async def body(txn: Txn) -> tuple[AudioSession, SessionEvent]:
            entry = await txn.entry(prefix + "meta")
            if entry is None:
                raise _session_not_found(session_id)
            session = SESSION.unpack(entry.value)
            if session.idle_due():
                session = await self._expire_idle(session_id)
            if session.status is Status.ENDED:
                raise FailedPreconditionError(
                    f"speech session {session_id!r} has ended",
                    reason=Reason.SESSION_ENDED,
                    metadata={"session_id": session_id},
                )
            now = time.time()
            session, event = change(session, now)
            sequence = session.last_sequence + 1
            event = replace(event, session_id=session_id, sequence=sequence, event_time=now)
            session = replace(session, last_sequence=sequence, updated_at=now, idle_at=None)
            meta_expiry: float | None = None
            event_expiry = now + session.event_retention
            idle_ttl = self.limits.speech_session_idle_ttl
            if event.ended is not None:
                meta_expiry = now + session.ended_retention
                event_expiry = max(event_expiry, meta_expiry)
                txn.delete(prefix + "idle")
            elif idle_ttl > 0:
                session = replace(session, idle_at=now + idle_ttl)
                meta_expiry = now + idle_ttl + session.ended_retention
                txn.put_raw(prefix + "idle", b"", now + idle_ttl)
            else:
                txn.delete(prefix + "idle")
            txn.put(prefix + "meta", session, SESSION, meta_expiry)
            txn.put(self._event_key(prefix, sequence), event, EVENT, event_expiry)
            return session, event

        return await transact(self.backend, body, limits=self.limits)

    async def update_status(
        self, session_id: str, status: AudioSessionStatus | None
    ) -> tuple[AudioSessionStatus, AudioSessionStatus, int]:
        """Move a session to ``status``; returns (previous status, status, sequence).
        ENDED ends the session with reason ``status_ended``."""
        if status is None:
            raise invalid("status", "unknown or unspecified session status")
        if status is Status.ENDED:
            previous, sequence, _ = await self.end_session(session_id, "status_ended", None)
            return previous, Status.ENDED, sequence

        def change(session: AudioSession, now: float) -> tuple[AudioSession, SessionEvent]:
            previous = session.status or Status.INITIALIZING
            if status not in TRANSITIONS[previous]:
                raise FailedPreconditionError(
                    f"speech session {session_id!r} cannot move from {_name(previous)} to "
                    f"{_name(status)}",
                    reason=Reason.INVALID_STATUS_TRANSITION,
                    metadata={
                        "session_id": session_id,
                        "from": _name(previous),
                        "to": _name(status),
                    },
                )
            event = SessionEvent(status_changed=SessionStatusChanged(previous, status))
            return replace(session, status=status), event

        _, event = await self._change(session_id, change)
        assert event.status_changed is not None and event.status_changed.previous_status
        return event.status_changed.previous_status, status, event.sequence

    async def update_stt(self, session_id: str, state: SttState) -> tuple[SttState, int]:
        """Replace the STT state; returns the stored state and the event's sequence."""
        return await self._replace_part(
            session_id, "stt_state", check_stt(session_id, state, "stt_state")
        )

    async def update_tts(self, session_id: str, state: TtsState) -> tuple[TtsState, int]:
        """Replace the TTS state; returns the stored state and the event's sequence."""
        return await self._replace_part(
            session_id, "tts_state", check_tts(session_id, state, "tts_state")
        )

    async def _replace_part(self, session_id: str, part: str, state: Any) -> tuple[Any, int]:
        """Replace the session's ``part`` (``stt_state`` or ``tts_state``) with ``state`` and
        append the event that carries it; the stored state and the event's sequence."""

        def change(session: AudioSession, now: float) -> tuple[AudioSession, SessionEvent]:
            stored = replace(state, updated_at=now)
            return replace(session, **{part: stored}), SessionEvent(**{part: stored})

        session, event = await self._change(session_id, change)
        return getattr(session, part), event.sequence

    async def update_conversation(
        self, session_id: str, state: VoiceConversationState
    ) -> tuple[VoiceConversationState, int]:
        """Replace the conversation state (and the STT / TTS states it carries)."""
        state = check_conversation(session_id, state, "conversation_state")

        def change(session: AudioSession, now: float) -> tuple[AudioSession, SessionEvent]:
            stt = state.stt_state and replace(state.stt_state, updated_at=now)
            tts = state.tts_state and replace(state.tts_state, updated_at=now)
            stored = replace(state, stt_state=stt, tts_state=tts, updated_at=now)
            session = replace(
                session,
                stt_state=stt or session.stt_state,
                tts_state=tts or session.tts_state,
                conversation_state=replace(stored, stt_state=None, tts_state=None),
            )
            return session, SessionEvent(conversation_state=stored)

        _, event = await self._change(session_id, change)
        assert event.conversation_state is not None
        return event.conversation_state, event.sequence

    async def end_session(
        self, session_id: str, reason: str, retention: float | None
    ) -> tuple[AudioSessionStatus, int, float]:
        """End a session; returns (previous status, end sequence, removal time)."""
        _check_text(reason, "reason", MAX_REASON_LENGTH)
        retention = check_ttl(retention, "retention")

        def change(session: AudioSession, now: float) -> tuple[AudioSession, SessionEvent]:
            ended = replace(
                session,
                status=Status.ENDED,
                ended_at=now,
                end_reason=reason,
                ended_retention=session.ended_retention if retention is None else retention,
            )
            return ended, SessionEvent(ended=SessionEnded(reason, session.status))

        session, event = await self._change(session_id, change)
        assert event.ended is not None and event.ended.previous_status is not None
        assert session.ended_at is not None
        return (
            event.ended.previous_status,
            event.sequence,
            session.ended_at + session.ended_retention,
        )

    async def watch_session(
        self, session_id: str, from_sequence: int = 0
    ) -> AsyncIterator[WatchStarted | SessionEvent]:
        """A :class:`WatchStarted`, then every event from ``from_sequence`` (0: after the
        current one; an ended session then yields only its end event), in consecutive
        sequence order, ending after the end event."""
        check_id(session_id, "session_id")
        if from_sequence < 0:
            raise InvalidArgumentError(
                "from_sequence must not be negative",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("from_sequence", "negative")],
            )
        prefix = self._prefix(session_id)
        cursor = _Cursor(from_sequence)
        while True:
            entry = await self.backend.get(prefix + "meta")
            if entry is None:
                raise _session_not_found(session_id)
            session = SESSION.unpack(entry.value)
            if session.idle_due():
                await self._expire_idle(session_id)
                continue  # read the ended session again
            last = session.last_sequence
            if not cursor.started:
                cursor.start(last, session.status is Status.ENDED)
                yield WatchStarted(last)
            async for event in self._replay(session_id, cursor, last):
                yield event
            if cursor.done:
                return
            async for event in self._follow(session_id, cursor, entry.mod_revision + 1):
                yield event
            if cursor.done or cursor.closing:
                return

    async def _replay(
        self, session_id: str, cursor: _Cursor, last: int
    ) -> AsyncIterator[SessionEvent]:
        """The stored events from the cursor up to ``last``."""
        prefix = self._prefix(session_id)
        while cursor.next <= last and not cursor.done:
            page = await self.backend.range(
                prefix + "ev/",
                start_after=self._event_key(prefix, cursor.next - 1),
                limit=REPLAY_PAGE,
            )
            if not page.entries:
                raise _compacted(session_id, cursor.next, last + 1)
            for stored in page.entries:
                event = _owned(EVENT.unpack(stored.value), session_id)
                if event.sequence != cursor.next:
                    raise _compacted(session_id, cursor.next, event.sequence)
                yield event
                cursor.advance(event)
                if cursor.done or cursor.next > last:
                    break

    async def _follow(
        self, session_id: str, cursor: _Cursor, start_revision: int
    ) -> AsyncIterator[SessionEvent]:
        """The live events from the backend watch, until the end event, a gap (the caller
        re-syncs from the stored events) or the backend closing (``cursor.closing``)."""
        prefix = self._prefix(session_id)
        updates = self.backend.watch(prefix, _WATCHED, start_revision=start_revision)
        try:
            async for update in updates:
                for change in update.events:
                    if change.key == prefix + "idle":
                        if change.type is EventType.EXPIRE and change.prev is not None:
                            # The session went idle: end it (its end event comes next).
                            try:
                                await self._expire_idle(session_id, change.prev.mod_revision)
                            except NotFoundError:
                                cursor.closing = True  # removed meanwhile: nothing will come
                                return
                        continue
                    if change.entry is None:
                        continue
                    event = _owned(EVENT.unpack(change.entry.value), session_id)
                    if event.sequence < cursor.next:
                        continue
                    if event.sequence > cursor.next:
                        return  # a gap: re-sync from the stored events
                    yield event
                    cursor.advance(event)
                    if cursor.done:
                        return
            cursor.closing = True  # the backend is closing: the caller reports it
        except HistoryCompactedError:
            pass  # the stored events are still there: replay from them
        finally:
            await updates.aclose()  # type: ignore[attr-defined]


@dataclass
class _Cursor:
    """Where a session watch stands: the next sequence to deliver."""

    next: int
    started: bool = False
    done: bool = False
    closing: bool = False

    def start(self, last: int, ended: bool) -> None:
        """Fix the first sequence once the session's latest one is known."""
        self.started = True
        if self.next == 0:
            self.next = last if ended else last + 1
        elif self.next > last + 1:
            raise invalid("from_sequence", f"beyond the next sequence ({last + 1})")

    def advance(self, event: SessionEvent) -> None:
        """Move past a delivered event (the end event ends the watch)."""
        self.next += 1
        self.done = event.ended is not None


def _name(status: AudioSessionStatus) -> str:
    """A status as the proto names it, for error messages."""
    return f"AUDIO_SESSION_STATUS_{status.name}"


def _compacted(session_id: str, wanted: int, oldest: int) -> HistoryCompactedError:
    return HistoryCompactedError(
        f"event {wanted} of speech session {session_id!r} is no longer retained; the oldest "
        f"retained sequence is {oldest}",
        metadata={"session_id": session_id, "oldest_sequence": str(oldest)},
    )
