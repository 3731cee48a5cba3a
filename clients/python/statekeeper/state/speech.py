"""``SpeechStateManager``: speech sessions, STT / TTS / conversation state and live streams.

The reference's names and calls are kept::

    speech_state = SpeechStateManager(persistence="redis")
    session_id = await speech_state.create_session(
        session_type="voice_conversation", streaming_mode=StreamingMode.BIDIRECTIONAL, config={...}
    )
    await speech_state.update_session_status(session_id, status=AudioSessionStatus.ACTIVE)

Every change of a session gets the next per-session sequence number (the session's creation is
1). :meth:`SpeechStateManager.watch_session` is an async iterator of :class:`SessionEvent`
that delivers every change in order, resumes from any retained sequence number, reconnects by
itself (from the next sequence) when a remote stream breaks, and ends after the session's
ENDED event, whose ``end_reason`` says why it ended.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from statekeeper import values
from statekeeper.errors import NotFoundError
from statekeeper.messages import enum_to_number, from_message, read_field, to_message
from statekeeper.state.client import MAX_RECONNECT_DELAY as MAX_RECONNECT_DELAY
from statekeeper.state.client import MSGPACK, ServiceClient
from statekeeper.state.live import LiveStream
from statekeeper.statuses import AudioSessionStatus, StreamingMode, TranscriptionStatus
from statekeeper.timestamps import to_duration
from statekeeper.v1 import speech_service_pb2 as pb
from statekeeper.v1 import speech_service_pb2_grpc

log = logging.getLogger("statekeeper.speech")
_MODES = pb.StreamingMode.DESCRIPTOR
_STATUSES = pb.AudioSessionStatus.DESCRIPTOR


class SessionEventKind(enum.Enum):
    """What a :class:`SessionEvent` reports."""

    CREATED = "created"
    STATUS_CHANGED = "status_changed"
    STT_STATE = "stt_state"
    TTS_STATE = "tts_state"
    CONVERSATION_STATE = "conversation_state"
    ENDED = "ended"


@dataclass
class STTState:
    """The speech-to-text state of a session."""

    session_id: str
    status: TranscriptionStatus = TranscriptionStatus.IDLE
    audio_received_bytes: int = 0
    transcription_progress: float = 0.0
    interim_transcript: str = ""
    final_transcript: str = ""
    confidence: float = 0.0
    updated_at: datetime | None = None


@dataclass
class TTSState:
    """The text-to-speech state of a session."""

    session_id: str
    text_queue: list[str] = field(default_factory=list)
    audio_generated_bytes: int = 0
    audio_played_bytes: int = 0
    is_speaking: bool = False
    current_text: str = ""
    updated_at: datetime | None = None


@dataclass
class VoiceConversationState:
    """The conversation of a voice session; ``stt_state`` / ``tts_state``, when set, also
    replace the session's STT / TTS states."""

    session_id: str
    turn_count: int = 0
    current_speaker: str = ""
    stt_state: STTState | None = None
    tts_state: TTSState | None = None
    transcript: list[Any] = field(default_factory=list)
    updated_at: datetime | None = None


@dataclass
class AudioSession:
    """A speech session with its current state."""

    session_id: str
    session_type: str
    streaming_mode: StreamingMode
    config: dict[str, Any]
    status: AudioSessionStatus
    created_at: datetime | None
    updated_at: datetime | None
    ended_at: datetime | None
    end_reason: str
    last_sequence: int
    stt_state: STTState | None = None
    tts_state: TTSState | None = None
    conversation_state: VoiceConversationState | None = None
    ended_retention: float = 0.0
    event_retention: float = 0.0


@dataclass
class SessionEvent:
    """One change of a session, as delivered by :meth:`SpeechStateManager.watch_session`.

    ``kind`` says which fields are set: CREATED (``session_type``, ``streaming_mode``,
    ``config``), STATUS_CHANGED (``previous_status``, ``status``), STT_STATE (``stt_state``),
    TTS_STATE (``tts_state``), CONVERSATION_STATE (``conversation_state``), ENDED
    (``end_reason``, ``previous_status``; always the last event).
    """

    session_id: str
    sequence: int
    kind: SessionEventKind
    timestamp: datetime | None = None
    status: AudioSessionStatus | None = None
    previous_status: AudioSessionStatus | None = None
    stt_state: STTState | None = None
    tts_state: TTSState | None = None
    conversation_state: VoiceConversationState | None = None
    end_reason: str | None = None
    session_type: str | None = None
    streaming_mode: StreamingMode | None = None
    config: dict[str, Any] | None = None


# -- conversions -----------------------------------------------------------------------------


def _event(message: pb.SessionEvent) -> SessionEvent:
    """The API's flat event for a message (its ``change`` says which fields are set)."""
    change = message.WhichOneof("change")
    event = SessionEvent(
        session_id=message.session_id,
        sequence=message.sequence,
        kind=_KINDS[change],
        timestamp=read_field(message, "event_time", datetime),
    )
    if change == "created":
        created = from_message(message.created, _Created)
        event.session_type = created.session_type
        event.streaming_mode = created.streaming_mode
        event.config = created.config or {}
    elif change == "status_changed":
        status = from_message(message.status_changed, _StatusChanged)
        event.previous_status, event.status = status.previous_status, status.status
    elif change == "stt_state":
        event.stt_state = from_message(message.stt_state, STTState)
    elif change == "tts_state":
        event.tts_state = from_message(message.tts_state, TTSState)
    elif change == "conversation_state":
        event.conversation_state = from_message(message.conversation_state, VoiceConversationState)
    else:
        ended = from_message(message.ended, _Ended)
        event.status = AudioSessionStatus.ENDED
        event.previous_status, event.end_reason = ended.previous_status, ended.reason
    return event


@dataclass
class _Created:
    session_type: str = ""
    streaming_mode: StreamingMode | None = None
    config: dict[str, Any] | None = None


@dataclass
class _StatusChanged:
    previous_status: AudioSessionStatus | None = None
    status: AudioSessionStatus | None = None


@dataclass
class _Ended:
    reason: str = ""
    previous_status: AudioSessionStatus | None = None


_KINDS = {
    "created": SessionEventKind.CREATED,
    "status_changed": SessionEventKind.STATUS_CHANGED,
    "stt_state": SessionEventKind.STT_STATE,
    "tts_state": SessionEventKind.TTS_STATE,
    "conversation_state": SessionEventKind.CONVERSATION_STATE,
    "ended": SessionEventKind.ENDED,
}


class SpeechStateManager(ServiceClient):
    """Speech session state for STT / TTS operations, with live session streams.

    ``persistence`` is ``"memory"``, ``"file"`` or ``"redis"`` (the engine runs in this
    process) or ``"grpc"`` with ``address="host:port"``. ``ended_retention`` and
    ``event_retention`` (seconds; None: one hour) apply to the sessions this manager creates:
    how long an ended session stays readable, and how long each event stays replayable.
    """

    _STUB = speech_service_pb2_grpc.SpeechServiceStub
    _SERVICE = "statekeeper.v1.SpeechService"

    def __init__(
        self,
        persistence: Any = "memory",
        *,
        ended_retention: float | None = None,
        event_retention: float | None = None,
        **connection: Any,
    ) -> None:
        super().__init__(persistence, **connection)
        self.ended_retention = ended_retention
        self.event_retention = event_retention

    async def create_session(
        self,
        session_type: str = "",
        streaming_mode: StreamingMode = StreamingMode.NONE,
        config: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
    ) -> str:
        """Create a session (status INITIALIZING) and return its id (generated unless given)."""
        request = pb.CreateSessionRequest(
            session_id=session_id or "",
            session_type=session_type,
            streaming_mode=enum_to_number(streaming_mode, _MODES),  # type: ignore[arg-type]
            config=values.document_to_wire(config or {}),
            ended_retention=to_duration(self.ended_retention),
            event_retention=to_duration(self.event_retention),
        )
        response = await self._call("CreateSession", request)
        return str(response.session.session_id)

    async def get_session(self, session_id: str) -> AudioSession | None:
        """A session with its current state, or None when unknown (or removed)."""
        try:
            response = await self._call(
                "GetSession", pb.GetSessionRequest(session_id=session_id, value_encoding=MSGPACK)
            )
        except NotFoundError:
            return None
        return from_message(response.session, AudioSession)

    async def update_session_status(self, session_id: str, status: AudioSessionStatus) -> int:
        """Move a session to ``status``; returns the change's sequence number. Raises
        FailedPreconditionError for an ended session or an illegal transition."""
        request = pb.UpdateSessionStatusRequest(
            session_id=session_id,
            status=enum_to_number(status, _STATUSES),  # type: ignore[arg-type]
        )
        response = await self._call("UpdateSessionStatus", request)
        return int(response.sequence)

    async def update_stt_state(self, stt_state: STTState) -> int:
        """Replace the STT state of ``stt_state.session_id``; returns the sequence number."""
        request = pb.UpdateSttStateRequest(
            session_id=stt_state.session_id, stt_state=to_message(stt_state, pb.SttState)
        )
        response = await self._call("UpdateSttState", request)
        return int(response.sequence)

    async def get_stt_state(self, session_id: str) -> STTState | None:
        """The current STT state, or None when none was set."""
        response = await self._call("GetSttState", pb.GetSttStateRequest(session_id=session_id))
        return from_message(response.stt_state, STTState) if response.found else None

    async def update_tts_state(self, tts_state: TTSState) -> int:
        """Replace the TTS state of ``tts_state.session_id``; returns the sequence number."""
        request = pb.UpdateTtsStateRequest(
            session_id=tts_state.session_id, tts_state=to_message(tts_state, pb.TtsState)
        )
        response = await self._call("UpdateTtsState", request)
        return int(response.sequence)

    async def get_tts_state(self, session_id: str) -> TTSState | None:
        """The current TTS state, or None when none was set."""
        response = await self._call("GetTtsState", pb.GetTtsStateRequest(session_id=session_id))
        return from_message(response.tts_state, TTSState) if response.found else None

    async def update_conversation_state(self, conversation_state: VoiceConversationState) -> int:
        """Replace the conversation state (and the STT / TTS states it carries); returns the
        sequence number."""
        state = replace(conversation_state, transcript=list(conversation_state.transcript or []))
        request = pb.UpdateConversationStateRequest(
            session_id=state.session_id,
            conversation_state=to_message(state, pb.VoiceConversationState),
            value_encoding=MSGPACK,
        )
        response = await self._call("UpdateConversationState", request)
        return int(response.sequence)

    async def get_conversation_state(self, session_id: str) -> VoiceConversationState | None:
        """The current conversation state (with the session's current STT / TTS states)."""
        response = await self._call(
            "GetConversationState",
            pb.GetConversationStateRequest(session_id=session_id, value_encoding=MSGPACK),
        )
        if not response.found:
            return None
        return from_message(response.conversation_state, VoiceConversationState)

    async def end_session(
        self, session_id: str, reason: str = "", *, retention: float | None = None
    ) -> int:
        """End a session; returns the end event's sequence. The session stays readable for
        ``retention`` seconds (default: the session's ``ended_retention``), then is removed."""
        request = pb.EndSessionRequest(
            session_id=session_id, reason=reason, retention=to_duration(retention)
        )
        response = await self._call("EndSession", request)
        return int(response.sequence)

    def watch_session(self, session_id: str, from_sequence: int = 0) -> LiveStream[SessionEvent]:
        """Every change of a session in sequence order, ending after its ENDED event.

        ``from_sequence``: 1 replays from the creation, N resumes after event N - 1, 0 starts
        with the changes after the subscription (an ended session then yields its ENDED event).
        A broken stream is resumed from the next sequence, so nothing is lost or repeated; a
        sequence no longer retained raises HistoryCompactedError.
        """
        feed = _SessionFeed(session_id, from_sequence)
        return LiveStream(self, "WatchSession", feed, f"stream of session {session_id!r}")


class _SessionFeed:
    """The WatchSession stream: resumed by sequence number, finished by the ENDED event."""

    def __init__(self, session_id: str, from_sequence: int) -> None:
        self.session_id = session_id
        self.next_sequence = from_sequence
        self._after = from_sequence
        self.finished = False
        self.revision = 0

    def request(self) -> pb.WatchSessionRequest:
        """Ask for the events from the next sequence."""
        return pb.WatchSessionRequest(
            session_id=self.session_id, from_sequence=self.next_sequence, value_encoding=MSGPACK
        )

    def receive(self, message: pb.WatchSessionResponse) -> list[SessionEvent]:
        """The event of one message (none for the start marker)."""
        if message.WhichOneof("kind") == "started":
            self._after = self.next_sequence or message.started.last_sequence + 1
            return []
        event = _event(message.event)
        self._after = event.sequence + 1
        self.finished = event.kind is SessionEventKind.ENDED
        return [event]

    def commit(self) -> None:
        """Resume after the delivered event."""
        self.next_sequence = self._after


__all__ = [
    "AudioSession",
    "AudioSessionStatus",
    "STTState",
    "SessionEvent",
    "SessionEventKind",
    "SpeechStateManager",
    "StreamingMode",
    "TTSState",
    "TranscriptionStatus",
    "VoiceConversationState",
]
