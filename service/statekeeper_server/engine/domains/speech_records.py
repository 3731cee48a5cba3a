"""The typed records of speech sessions (see :mod:`statekeeper_server.engine.domains.speech`)
and how the format before typed records (version 0: proto enum numbers, short names) is read."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from statekeeper.statuses import AudioSessionStatus, StreamingMode, TranscriptionStatus

from statekeeper_server.engine.records import Schema

#: Defaults of the per-session retention settings, in seconds.
DEFAULT_ENDED_RETENTION = 3600.0
DEFAULT_EVENT_RETENTION = 3600.0


Status = AudioSessionStatus
#: The status each status may move to (ENDED may move nowhere).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.INITIALIZING: frozenset(Status),
    Status.ACTIVE: frozenset({Status.ACTIVE, Status.PAUSED, Status.ERROR, Status.ENDED}),
    Status.PAUSED: frozenset({Status.PAUSED, Status.ACTIVE, Status.ERROR, Status.ENDED}),
    Status.ERROR: frozenset({Status.ERROR, Status.ACTIVE, Status.ENDED}),
    Status.ENDED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class SttState:
    """The speech-to-text state of a session."""

    session_id: str = ""
    status: TranscriptionStatus | None = None
    audio_received_bytes: int = 0
    transcription_progress: float = 0.0
    interim_transcript: str = ""
    final_transcript: str = ""
    confidence: float = 0.0
    updated_at: float | None = None


@dataclass(frozen=True, slots=True)
class TtsState:
    """The text-to-speech state of a session."""

    session_id: str = ""
    text_queue: list[str] = field(default_factory=list)
    audio_generated_bytes: int = 0
    audio_played_bytes: int = 0
    is_speaking: bool = False
    current_text: str = ""
    updated_at: float | None = None


@dataclass(frozen=True, slots=True)
class VoiceConversationState:
    """The conversation of a session; stored without its STT / TTS states, which the session
    holds (:meth:`AudioSession.conversation` puts them back)."""

    session_id: str = ""
    turn_count: int = 0
    current_speaker: str = ""
    stt_state: SttState | None = None
    tts_state: TtsState | None = None
    transcript: Any = None
    updated_at: float | None = None


@dataclass(frozen=True, slots=True)
class AudioSession:
    """One speech session (the ``meta`` record); ``idle_at`` is the server's idle deadline."""

    session_id: str = ""
    session_type: str = ""
    streaming_mode: StreamingMode | None = None
    config: Any = None
    status: AudioSessionStatus | None = None
    created_at: float | None = None
    updated_at: float | None = None
    ended_at: float | None = None
    end_reason: str = ""
    last_sequence: int = 0
    stt_state: SttState | None = None
    tts_state: TtsState | None = None
    conversation_state: VoiceConversationState | None = None
    ended_retention: float = DEFAULT_ENDED_RETENTION
    event_retention: float = DEFAULT_EVENT_RETENTION
    idle_at: float | None = None

    def conversation(self) -> VoiceConversationState | None:
        """The conversation state with the session's current STT and TTS states."""
        if self.conversation_state is None:
            return None
        return replace(self.conversation_state, stt_state=self.stt_state, tts_state=self.tts_state)

    def idle_due(self) -> bool:
        """True when a live session's ``idle_at`` has passed (it is to be ended as idle)."""
        return (
            self.status is not Status.ENDED
            and self.idle_at is not None
            and time.time() >= self.idle_at
        )


@dataclass(frozen=True, slots=True)
class SessionCreated:
    """The first event of a session."""

    session_type: str = ""
    streaming_mode: StreamingMode | None = None
    config: Any = None


@dataclass(frozen=True, slots=True)
class SessionStatusChanged:
    """A status change."""

    previous_status: AudioSessionStatus | None = None
    status: AudioSessionStatus | None = None


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The last event of a session."""

    reason: str = ""
    previous_status: AudioSessionStatus | None = None


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One change of a session; exactly one of the change fields is set."""

    session_id: str = ""
    sequence: int = 0
    event_time: float = 0.0
    created: SessionCreated | None = None
    status_changed: SessionStatusChanged | None = None
    stt_state: SttState | None = None
    tts_state: TtsState | None = None
    conversation_state: VoiceConversationState | None = None
    ended: SessionEnded | None = None


# -- the format before typed records (version 0): proto enum numbers, short names ----------

_V0_STATUS = dict(enumerate(("", *Status), start=0))
_V0_MODE = dict(enumerate(("", *StreamingMode), start=0))
_V0_TRANSCRIPTION = dict(enumerate(("", *TranscriptionStatus), start=0))


def _v0_enum(table: dict[int, str], number: Any) -> str | None:
    return table.get(number) or None


def _v0_stt(state: dict[str, Any] | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {**state, "status": _v0_enum(_V0_TRANSCRIPTION, state.get("status"))}


def _v0_conversation(state: dict[str, Any] | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        **state,
        "stt_state": _v0_stt(state.pop("stt", None)),
        "tts_state": state.pop("tts", None),
    }


def _v0_session(data: dict[str, Any]) -> dict[str, Any]:
    owner = {"session_id": data.get("session_id", "")}  # version 0 kept it on the session only
    parts = {
        "stt_state": _v0_stt(data.pop("stt", None)),
        "tts_state": data.pop("tts", None),
        "conversation_state": _v0_conversation(data.pop("conv", None)),
    }
    return {
        **data,
        "streaming_mode": _v0_enum(_V0_MODE, data.get("streaming_mode")),
        "status": _v0_enum(_V0_STATUS, data.get("status")),
        "last_sequence": data.pop("seq", 0),
        **{name: None if part is None else {**part, **owner} for name, part in parts.items()},
    }


def _v0_event(data: dict[str, Any]) -> dict[str, Any]:
    kind, payload = data.get("kind"), dict(data.get("payload") or {})
    event: dict[str, Any] = {"sequence": data.get("seq", 0), "event_time": data.get("time", 0.0)}
    if kind == "created":
        payload["streaming_mode"] = _v0_enum(_V0_MODE, payload.get("streaming_mode"))
        event["created"] = payload
    elif kind == "status":
        event["status_changed"] = {
            name: _v0_enum(_V0_STATUS, payload.get(name)) for name in ("previous_status", "status")
        }
    elif kind == "stt":
        event["stt_state"] = _v0_stt(payload)
    elif kind == "tts":
        event["tts_state"] = payload
    elif kind == "conversation":
        event["conversation_state"] = _v0_conversation(payload)
    else:
        payload["previous_status"] = _v0_enum(_V0_STATUS, payload.get("previous_status"))
        event["ended"] = payload
    return event


SESSION = Schema(AudioSession, field="session", upgrades={0: _v0_session})
EVENT = Schema(SessionEvent, field="event", upgrades={0: _v0_event})
