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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from statekeeper import values
from statekeeper.errors import NotFoundError
from statekeeper.state.client import MAX_RECONNECT_DELAY as MAX_RECONNECT_DELAY
from statekeeper.state.client import MSGPACK, ServiceClient, enum_maps
from statekeeper.state.live import LiveStream
from statekeeper.timestamps import from_duration, optional_datetime, to_duration
from statekeeper.transport import Transport
from statekeeper.v1 import speech_service_pb2 as pb
from statekeeper.v1 import speech_service_pb2_grpc

log = logging.getLogger("statekeeper.speech")


class AudioSessionStatus(enum.Enum):
    """The lifecycle state of a speech session."""

    INITIALIZING = "initializing"
    ACTIVE = "active"
    PAUSED = "paused"
    ERROR = "error"
    ENDED = "ended"


class StreamingMode(enum.Enum):
    """In which directions a session streams audio."""

    NONE = "none"
    INPUT = "input"
    OUTPUT = "output"
    BIDIRECTIONAL = "bidirectional"


class TranscriptionStatus(enum.Enum):
    """The state of speech-to-text in a session."""

    IDLE = "idle"
    LISTENING = "listening"
    TRANSCRIBING = "transcribing"
    COMPLETED = "completed"
    FAILED = "failed"


class SessionEventKind(enum.Enum):
    """What a :class:`SessionEvent` reports."""

    CREATED = "created"
    STATUS_CHANGED = "status_changed"
    STT_STATE = "stt_state"
    TTS_STATE = "tts_state"
    CONVERSATION_STATE = "conversation_state"
    ENDED = "ended"


_SESSION_TO, _SESSION_FROM = enum_maps(
    AudioSessionStatus, pb.AudioSessionStatus, "AUDIO_SESSION_STATUS"
)
_MODE_TO, _MODE_FROM = enum_maps(StreamingMode, pb.StreamingMode, "STREAMING_MODE")
_STT_TO, _STT_FROM = enum_maps(TranscriptionStatus, pb.TranscriptionStatus, "TRANSCRIPTION_STATUS")


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


def _stt_to_proto(state: STTState) -> pb.SttState:
    return pb.SttState(
        session_id=state.session_id,
        status=_STT_TO[TranscriptionStatus(state.status)],
        audio_received_bytes=state.audio_received_bytes,
        transcription_progress=state.transcription_progress,
        interim_transcript=state.interim_transcript,
        final_transcript=state.final_transcript,
        confidence=state.confidence,
    )


def _stt(message: pb.SttState) -> STTState:
    return STTState(
        session_id=message.session_id,
        status=_STT_FROM[message.status],
        audio_received_bytes=message.audio_received_bytes,
        transcription_progress=message.transcription_progress,
        interim_transcript=message.interim_transcript,
        final_transcript=message.final_transcript,
        confidence=message.confidence,
        updated_at=optional_datetime(message, "updated_at"),
    )


def _tts_to_proto(state: TTSState) -> pb.TtsState:
    return pb.TtsState(
        session_id=state.session_id,
        text_queue=list(state.text_queue),
        audio_generated_bytes=state.audio_generated_bytes,
        audio_played_bytes=state.audio_played_bytes,
        is_speaking=state.is_speaking,
        current_text=state.current_text,
    )


def _tts(message: pb.TtsState) -> TTSState:
    return TTSState(
        session_id=message.session_id,
        text_queue=list(message.text_queue),
        audio_generated_bytes=message.audio_generated_bytes,
        audio_played_bytes=message.audio_played_bytes,
        is_speaking=message.is_speaking,
        current_text=message.current_text,
        updated_at=optional_datetime(message, "updated_at"),
    )


def _conversation(message: pb.VoiceConversationState) -> VoiceConversationState:
    return VoiceConversationState(
        session_id=message.session_id,
        turn_count=message.turn_count,
        current_speaker=message.current_speaker,
        stt_state=_stt(message.stt_state) if message.HasField("stt_state") else None,
        tts_state=_tts(message.tts_state) if message.HasField("tts_state") else None,
        transcript=values.wire_to_python(message.transcript) or [],
        updated_at=optional_datetime(message, "updated_at"),
    )


def _session(message: pb.AudioSession) -> AudioSession:
    return AudioSession(
        session_id=message.session_id,
        session_type=message.session_type,
        streaming_mode=_MODE_FROM[message.streaming_mode],
        config=values.wire_to_python(message.config) or {},
        status=_SESSION_FROM[message.status],
        created_at=optional_datetime(message, "created_at"),
        updated_at=optional_datetime(message, "updated_at"),
        ended_at=optional_datetime(message, "ended_at"),
        end_reason=message.end_reason,
        last_sequence=message.last_sequence,
        stt_state=_stt(message.stt_state) if message.HasField("stt_state") else None,
        tts_state=_tts(message.tts_state) if message.HasField("tts_state") else None,
        conversation_state=_conversation(message.conversation_state)
        if message.HasField("conversation_state")
        else None,
        ended_retention=from_duration(message.ended_retention),
        event_retention=from_duration(message.event_retention),
    )


def _event(message: pb.SessionEvent) -> SessionEvent:
    event = SessionEvent(
        session_id=message.session_id,
        sequence=message.sequence,
        kind=SessionEventKind.CREATED,
        timestamp=optional_datetime(message, "event_time"),
    )
    change = message.WhichOneof("change")
    if change == "created":
        event.session_type = message.created.session_type
        event.streaming_mode = _MODE_FROM[message.created.streaming_mode]
        event.config = values.wire_to_python(message.created.config) or {}
    elif change == "status_changed":
        event.kind = SessionEventKind.STATUS_CHANGED
        event.previous_status = _SESSION_FROM[message.status_changed.previous_status]
        event.status = _SESSION_FROM[message.status_changed.status]
    elif change == "stt_state":
        event.kind = SessionEventKind.STT_STATE
        event.stt_state = _stt(message.stt_state)
    elif change == "tts_state":
        event.kind = SessionEventKind.TTS_STATE
        event.tts_state = _tts(message.tts_state)
    elif change == "conversation_state":
        event.kind = SessionEventKind.CONVERSATION_STATE
        event.conversation_state = _conversation(message.conversation_state)
    else:
        event.kind = SessionEventKind.ENDED
        event.status = AudioSessionStatus.ENDED
        event.previous_status = _SESSION_FROM.get(message.ended.previous_status)
        event.end_reason = message.ended.reason
    return event


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
        address: str | None = None,
        redis_url: str | None = None,
        file_path: str | None = None,
        transport: Transport | None = None,
        timeout: float | None = None,
        ended_retention: float | None = None,
        event_retention: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            persistence,
            address=address,
            redis_url=redis_url,
            file_path=file_path,
            transport=transport,
            timeout=timeout,
            **options,
        )
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
            streaming_mode=_MODE_TO[StreamingMode(streaming_mode)],
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
        return _session(response.session)

    async def update_session_status(self, session_id: str, status: AudioSessionStatus) -> int:
        """Move a session to ``status``; returns the change's sequence number. Raises
        FailedPreconditionError for an ended session or an illegal transition."""
        request = pb.UpdateSessionStatusRequest(
            session_id=session_id, status=_SESSION_TO[AudioSessionStatus(status)]
        )
        response = await self._call("UpdateSessionStatus", request)
        return int(response.sequence)

    async def update_stt_state(self, stt_state: STTState) -> int:
        """Replace the STT state of ``stt_state.session_id``; returns the sequence number."""
        request = pb.UpdateSttStateRequest(
            session_id=stt_state.session_id, stt_state=_stt_to_proto(stt_state)
        )
        response = await self._call("UpdateSttState", request)
        return int(response.sequence)

    async def get_stt_state(self, session_id: str) -> STTState | None:
        """The current STT state, or None when none was set."""
        response = await self._call("GetSttState", pb.GetSttStateRequest(session_id=session_id))
        return _stt(response.stt_state) if response.found else None

    async def update_tts_state(self, tts_state: TTSState) -> int:
        """Replace the TTS state of ``tts_state.session_id``; returns the sequence number."""
        request = pb.UpdateTtsStateRequest(
            session_id=tts_state.session_id, tts_state=_tts_to_proto(tts_state)
        )
        response = await self._call("UpdateTtsState", request)
        return int(response.sequence)

    async def get_tts_state(self, session_id: str) -> TTSState | None:
        """The current TTS state, or None when none was set."""
        response = await self._call("GetTtsState", pb.GetTtsStateRequest(session_id=session_id))
        return _tts(response.tts_state) if response.found else None

    async def update_conversation_state(self, conversation_state: VoiceConversationState) -> int:
        """Replace the conversation state (and the STT / TTS states it carries); returns the
        sequence number."""
        state = conversation_state
        message = pb.VoiceConversationState(
            session_id=state.session_id,
            turn_count=state.turn_count,
            current_speaker=state.current_speaker,
            transcript=values.document_to_wire(list(state.transcript or [])),
        )
        if state.stt_state is not None:
            message.stt_state.CopyFrom(_stt_to_proto(state.stt_state))
        if state.tts_state is not None:
            message.tts_state.CopyFrom(_tts_to_proto(state.tts_state))
        request = pb.UpdateConversationStateRequest(
            session_id=state.session_id, conversation_state=message, value_encoding=MSGPACK
        )
        response = await self._call("UpdateConversationState", request)
        return int(response.sequence)

    async def get_conversation_state(self, session_id: str) -> VoiceConversationState | None:
        """The current conversation state (with the session's current STT / TTS states)."""
        response = await self._call(
            "GetConversationState",
            pb.GetConversationStateRequest(session_id=session_id, value_encoding=MSGPACK),
        )
        return _conversation(response.conversation_state) if response.found else None

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
