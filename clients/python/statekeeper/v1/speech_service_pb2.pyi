import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from statekeeper.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioSessionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_SESSION_STATUS_UNSPECIFIED: _ClassVar[AudioSessionStatus]
    AUDIO_SESSION_STATUS_INITIALIZING: _ClassVar[AudioSessionStatus]
    AUDIO_SESSION_STATUS_ACTIVE: _ClassVar[AudioSessionStatus]
    AUDIO_SESSION_STATUS_PAUSED: _ClassVar[AudioSessionStatus]
    AUDIO_SESSION_STATUS_ERROR: _ClassVar[AudioSessionStatus]
    AUDIO_SESSION_STATUS_ENDED: _ClassVar[AudioSessionStatus]

class StreamingMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAMING_MODE_UNSPECIFIED: _ClassVar[StreamingMode]
    STREAMING_MODE_NONE: _ClassVar[StreamingMode]
    STREAMING_MODE_INPUT: _ClassVar[StreamingMode]
    STREAMING_MODE_OUTPUT: _ClassVar[StreamingMode]
    STREAMING_MODE_BIDIRECTIONAL: _ClassVar[StreamingMode]

class TranscriptionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSCRIPTION_STATUS_UNSPECIFIED: _ClassVar[TranscriptionStatus]
    TRANSCRIPTION_STATUS_IDLE: _ClassVar[TranscriptionStatus]
    TRANSCRIPTION_STATUS_LISTENING: _ClassVar[TranscriptionStatus]
    TRANSCRIPTION_STATUS_TRANSCRIBING: _ClassVar[TranscriptionStatus]
    TRANSCRIPTION_STATUS_COMPLETED: _ClassVar[TranscriptionStatus]
    TRANSCRIPTION_STATUS_FAILED: _ClassVar[TranscriptionStatus]
AUDIO_SESSION_STATUS_UNSPECIFIED: AudioSessionStatus
AUDIO_SESSION_STATUS_INITIALIZING: AudioSessionStatus
AUDIO_SESSION_STATUS_ACTIVE: AudioSessionStatus
AUDIO_SESSION_STATUS_PAUSED: AudioSessionStatus
AUDIO_SESSION_STATUS_ERROR: AudioSessionStatus
AUDIO_SESSION_STATUS_ENDED: AudioSessionStatus
STREAMING_MODE_UNSPECIFIED: StreamingMode
STREAMING_MODE_NONE: StreamingMode
STREAMING_MODE_INPUT: StreamingMode
STREAMING_MODE_OUTPUT: StreamingMode
STREAMING_MODE_BIDIRECTIONAL: StreamingMode
TRANSCRIPTION_STATUS_UNSPECIFIED: TranscriptionStatus
TRANSCRIPTION_STATUS_IDLE: TranscriptionStatus
TRANSCRIPTION_STATUS_LISTENING: TranscriptionStatus
TRANSCRIPTION_STATUS_TRANSCRIBING: TranscriptionStatus
TRANSCRIPTION_STATUS_COMPLETED: TranscriptionStatus
TRANSCRIPTION_STATUS_FAILED: TranscriptionStatus

class SttState(_message.Message):
    __slots__ = ("session_id", "status", "audio_received_bytes", "transcription_progress", "interim_transcript", "final_transcript", "confidence", "updated_at")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPTION_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    INTERIM_TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    FINAL_TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    status: TranscriptionStatus
    audio_received_bytes: int
    transcription_progress: float
    interim_transcript: str
    final_transcript: str
    confidence: float
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., status: _Optional[_Union[TranscriptionStatus, str]] = ..., audio_received_bytes: _Optional[int] = ..., transcription_progress: _Optional[float] = ..., interim_transcript: _Optional[str] = ..., final_transcript: _Optional[str] = ..., confidence: _Optional[float] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TtsState(_message.Message):
    __slots__ = ("session_id", "text_queue", "audio_generated_bytes", "audio_played_bytes", "is_speaking", "current_text", "updated_at")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_QUEUE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_GENERATED_BYTES_FIELD_NUMBER: _ClassVar[int]
    AUDIO_PLAYED_BYTES_FIELD_NUMBER: _ClassVar[int]
    IS_SPEAKING_FIELD_NUMBER: _ClassVar[int]
    CURRENT_TEXT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    text_queue: _containers.RepeatedScalarFieldContainer[str]
    audio_generated_bytes: int
    audio_played_bytes: int
    is_speaking: bool
    current_text: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., text_queue: _Optional[_Iterable[str]] = ..., audio_generated_bytes: _Optional[int] = ..., audio_played_bytes: _Optional[int] = ..., is_speaking: _Optional[bool] = ..., current_text: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class VoiceConversationState(_message.Message):
    __slots__ = ("session_id", "turn_count", "current_speaker", "stt_state", "tts_state", "transcript", "updated_at")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TURN_COUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_SPEAKER_FIELD_NUMBER: _ClassVar[int]
    STT_STATE_FIELD_NUMBER: _ClassVar[int]
    TTS_STATE_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    turn_count: int
    current_speaker: str
    stt_state: SttState
    tts_state: TtsState
    transcript: _common_pb2.Value
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., turn_count: _Optional[int] = ..., current_speaker: _Optional[str] = ..., stt_state: _Optional[_Union[SttState, _Mapping]] = ..., tts_state: _Optional[_Union[TtsState, _Mapping]] = ..., transcript: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AudioSession(_message.Message):
    __slots__ = ("session_id", "session_type", "streaming_mode", "config", "status", "created_at", "updated_at", "ended_at", "end_reason", "last_sequence", "stt_state", "tts_state", "conversation_state", "ended_retention", "event_retention")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_TYPE_FIELD_NUMBER: _ClassVar[int]
    STREAMING_MODE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STT_STATE_FIELD_NUMBER: _ClassVar[int]
    TTS_STATE_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_STATE_FIELD_NUMBER: _ClassVar[int]
    ENDED_RETENTION_FIELD_NUMBER: _ClassVar[int]
    EVENT_RETENTION_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    session_type: str
    streaming_mode: StreamingMode
    config: _common_pb2.Value
    status: AudioSessionStatus
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    end_reason: str
    last_sequence: int
    stt_state: SttState
    tts_state: TtsState
    conversation_state: VoiceConversationState
    ended_retention: _duration_pb2.Duration
    event_retention: _duration_pb2.Duration
    def __init__(self, session_id: _Optional[str] = ..., session_type: _Optional[str] = ..., streaming_mode: _Optional[_Union[StreamingMode, str]] = ..., config: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., status: _Optional[_Union[AudioSessionStatus, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_reason: _Optional[str] = ..., last_sequence: _Optional[int] = ..., stt_state: _Optional[_Union[SttState, _Mapping]] = ..., tts_state: _Optional[_Union[TtsState, _Mapping]] = ..., conversation_state: _Optional[_Union[VoiceConversationState, _Mapping]] = ..., ended_retention: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., event_retention: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CreateSessionRequest(_message.Message):
    __slots__ = ("session_id", "session_type", "streaming_mode", "config", "ended_retention", "event_retention", "value_encoding")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_TYPE_FIELD_NUMBER: _ClassVar[int]
    STREAMING_MODE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    ENDED_RETENTION_FIELD_NUMBER: _ClassVar[int]
    EVENT_RETENTION_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    session_type: str
    streaming_mode: StreamingMode
    config: _common_pb2.Value
    ended_retention: _duration_pb2.Duration
    event_retention: _duration_pb2.Duration
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, session_id: _Optional[str] = ..., session_type: _Optional[str] = ..., streaming_mode: _Optional[_Union[StreamingMode, str]] = ..., config: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., ended_retention: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., event_retention: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class CreateSessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: AudioSession
    def __init__(self, session: _Optional[_Union[AudioSession, _Mapping]] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id", "value_encoding")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, session_id: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class GetSessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: AudioSession
    def __init__(self, session: _Optional[_Union[AudioSession, _Mapping]] = ...) -> None: ...

class UpdateSessionStatusRequest(_message.Message):
    __slots__ = ("session_id", "status")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    status: AudioSessionStatus
    def __init__(self, session_id: _Optional[str] = ..., status: _Optional[_Union[AudioSessionStatus, str]] = ...) -> None: ...

class UpdateSessionStatusResponse(_message.Message):
    __slots__ = ("previous_status", "status", "sequence")
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    previous_status: AudioSessionStatus
    status: AudioSessionStatus
    sequence: int
    def __init__(self, previous_status: _Optional[_Union[AudioSessionStatus, str]] = ..., status: _Optional[_Union[AudioSessionStatus, str]] = ..., sequence: _Optional[int] = ...) -> None: ...

class UpdateSttStateRequest(_message.Message):
    __slots__ = ("session_id", "stt_state")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STT_STATE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    stt_state: SttState
    def __init__(self, session_id: _Optional[str] = ..., stt_state: _Optional[_Union[SttState, _Mapping]] = ...) -> None: ...

class UpdateSttStateResponse(_message.Message):
    __slots__ = ("stt_state", "sequence")
    STT_STATE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    stt_state: SttState
    sequence: int
    def __init__(self, stt_state: _Optional[_Union[SttState, _Mapping]] = ..., sequence: _Optional[int] = ...) -> None: ...

class GetSttStateRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetSttStateResponse(_message.Message):
    __slots__ = ("found", "stt_state")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    STT_STATE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    stt_state: SttState
    def __init__(self, found: _Optional[bool] = ..., stt_state: _Optional[_Union[SttState, _Mapping]] = ...) -> None: ...

class UpdateTtsStateRequest(_message.Message):
    __slots__ = ("session_id", "tts_state")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TTS_STATE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    tts_state: TtsState
    def __init__(self, session_id: _Optional[str] = ..., tts_state: _Optional[_Union[TtsState, _Mapping]] = ...) -> None: ...

class UpdateTtsStateResponse(_message.Message):
    __slots__ = ("tts_state", "sequence")
    TTS_STATE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    tts_state: TtsState
    sequence: int
    def __init__(self, tts_state: _Optional[_Union[TtsState, _Mapping]] = ..., sequence: _Optional[int] = ...) -> None: ...

class GetTtsStateRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetTtsStateResponse(_message.Message):
    __slots__ = ("found", "tts_state")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    TTS_STATE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    tts_state: TtsState
    def __init__(self, found: _Optional[bool] = ..., tts_state: _Optional[_Union[TtsState, _Mapping]] = ...) -> None: ...

class UpdateConversationStateRequest(_message.Message):
    __slots__ = ("session_id", "conversation_state", "value_encoding")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_STATE_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    conversation_state: VoiceConversationState
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, session_id: _Optional[str] = ..., conversation_state: _Optional[_Union[VoiceConversationState, _Mapping]] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class UpdateConversationStateResponse(_message.Message):
    __slots__ = ("conversation_state", "sequence")
    CONVERSATION_STATE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    conversation_state: VoiceConversationState
    sequence: int
    def __init__(self, conversation_state: _Optional[_Union[VoiceConversationState, _Mapping]] = ..., sequence: _Optional[int] = ...) -> None: ...

class GetConversationStateRequest(_message.Message):
    __slots__ = ("session_id", "value_encoding")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, session_id: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class GetConversationStateResponse(_message.Message):
    __slots__ = ("found", "conversation_state")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_STATE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    conversation_state: VoiceConversationState
    def __init__(self, found: _Optional[bool] = ..., conversation_state: _Optional[_Union[VoiceConversationState, _Mapping]] = ...) -> None: ...

class EndSessionRequest(_message.Message):
    __slots__ = ("session_id", "reason", "retention")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    reason: str
    retention: _duration_pb2.Duration
    def __init__(self, session_id: _Optional[str] = ..., reason: _Optional[str] = ..., retention: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class EndSessionResponse(_message.Message):
    __slots__ = ("sequence", "expire_time")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, sequence: _Optional[int] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SessionCreated(_message.Message):
    __slots__ = ("session_type", "streaming_mode", "config")
    SESSION_TYPE_FIELD_NUMBER: _ClassVar[int]
    STREAMING_MODE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    session_type: str
    streaming_mode: StreamingMode
    config: _common_pb2.Value
    def __init__(self, session_type: _Optional[str] = ..., streaming_mode: _Optional[_Union[StreamingMode, str]] = ..., config: _Optional[_Union[_common_pb2.Value, _Mapping]] = ...) -> None: ...

class SessionStatusChanged(_message.Message):
    __slots__ = ("previous_status", "status")
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    previous_status: AudioSessionStatus
    status: AudioSessionStatus
    def __init__(self, previous_status: _Optional[_Union[AudioSessionStatus, str]] = ..., status: _Optional[_Union[AudioSessionStatus, str]] = ...) -> None: ...

class SessionEnded(_message.Message):
    __slots__ = ("reason", "previous_status")
    REASON_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    reason: str
    previous_status: AudioSessionStatus
    def __init__(self, reason: _Optional[str] = ..., previous_status: _Optional[_Union[AudioSessionStatus, str]] = ...) -> None: ...

class SessionEvent(_message.Message):
    __slots__ = ("session_id", "sequence", "event_time", "created", "status_changed", "stt_state", "tts_state", "conversation_state", "ended")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    STATUS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    STT_STATE_FIELD_NUMBER: _ClassVar[int]
    TTS_STATE_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_STATE_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    sequence: int
    event_time: _timestamp_pb2.Timestamp
    created: SessionCreated
    status_changed: SessionStatusChanged
    stt_state: SttState
    tts_state: TtsState
    conversation_state: VoiceConversationState
    ended: SessionEnded
    def __init__(self, session_id: _Optional[str] = ..., sequence: _Optional[int] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created: _Optional[_Union[SessionCreated, _Mapping]] = ..., status_changed: _Optional[_Union[SessionStatusChanged, _Mapping]] = ..., stt_state: _Optional[_Union[SttState, _Mapping]] = ..., tts_state: _Optional[_Union[TtsState, _Mapping]] = ..., conversation_state: _Optional[_Union[VoiceConversationState, _Mapping]] = ..., ended: _Optional[_Union[SessionEnded, _Mapping]] = ...) -> None: ...

class WatchSessionRequest(_message.Message):
    __slots__ = ("session_id", "from_sequence", "value_encoding")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    from_sequence: int
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, session_id: _Optional[str] = ..., from_sequence: _Optional[int] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class WatchSessionStarted(_message.Message):
    __slots__ = ("last_sequence",)
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    last_sequence: int
    def __init__(self, last_sequence: _Optional[int] = ...) -> None: ...

class WatchSessionResponse(_message.Message):
    __slots__ = ("started", "event")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    started: WatchSessionStarted
    event: SessionEvent
    def __init__(self, started: _Optional[_Union[WatchSessionStarted, _Mapping]] = ..., event: _Optional[_Union[SessionEvent, _Mapping]] = ...) -> None: ...
