"""The SpeechService servicer: validate the request, call the SpeechEngine, build the response."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from statekeeper.errors import UnavailableError
from statekeeper.timestamps import clamped_duration, clamped_timestamp
from statekeeper.v1 import speech_service_pb2 as pb
from statekeeper.v1 import speech_service_pb2_grpc

from statekeeper_server.engine.domains import speech
from statekeeper_server.engine.domains.speech import SpeechEngine, WatchStarted
from statekeeper_server.engine.domains.tools import invalid
from statekeeper_server.servicers.convert import (
    document_to_wire,
    optional_document,
    ttl_seconds,
)

if TYPE_CHECKING:
    from statekeeper_server.core import Core


def _check_owner(session_id: str, message: Any, field: str) -> None:
    if message.session_id and message.session_id != session_id:
        raise invalid(f"{field}.session_id", "differs from the request's session_id")


def stt_from_proto(message: pb.SttState) -> dict[str, Any]:
    """The engine document of an SttState message."""
    return {
        "status": message.status,
        "audio_received_bytes": message.audio_received_bytes,
        "transcription_progress": message.transcription_progress,
        "interim_transcript": message.interim_transcript,
        "final_transcript": message.final_transcript,
        "confidence": message.confidence,
    }


def stt_to_proto(session_id: str, state: dict[str, Any]) -> pb.SttState:
    """An SttState message for an engine document."""
    return pb.SttState(
        session_id=session_id,
        status=state["status"],
        audio_received_bytes=state["audio_received_bytes"],
        transcription_progress=state["transcription_progress"],
        interim_transcript=state["interim_transcript"],
        final_transcript=state["final_transcript"],
        confidence=state["confidence"],
        updated_at=clamped_timestamp(state["updated_at"]),
    )


def tts_from_proto(message: pb.TtsState) -> dict[str, Any]:
    """The engine document of a TtsState message."""
    return {
        "text_queue": list(message.text_queue),
        "audio_generated_bytes": message.audio_generated_bytes,
        "audio_played_bytes": message.audio_played_bytes,
        "is_speaking": message.is_speaking,
        "current_text": message.current_text,
    }


def tts_to_proto(session_id: str, state: dict[str, Any]) -> pb.TtsState:
    """A TtsState message for an engine document."""
    return pb.TtsState(
        session_id=session_id,
        text_queue=state["text_queue"],
        audio_generated_bytes=state["audio_generated_bytes"],
        audio_played_bytes=state["audio_played_bytes"],
        is_speaking=state["is_speaking"],
        current_text=state["current_text"],
        updated_at=clamped_timestamp(state["updated_at"]),
    )


def conversation_from_proto(session_id: str, message: pb.VoiceConversationState) -> dict[str, Any]:
    """The engine document of a VoiceConversationState message."""
    _check_owner(session_id, message, "conversation_state")
    state: dict[str, Any] = {
        "turn_count": message.turn_count,
        "current_speaker": message.current_speaker,
        "transcript": optional_document(message, "transcript", "conversation_state.transcript"),
        "stt": None,
        "tts": None,
    }
    if message.HasField("stt_state"):
        _check_owner(session_id, message.stt_state, "conversation_state.stt_state")
        state["stt"] = stt_from_proto(message.stt_state)
    if message.HasField("tts_state"):
        _check_owner(session_id, message.tts_state, "conversation_state.tts_state")
        state["tts"] = tts_from_proto(message.tts_state)
    return state


def conversation_to_proto(
    session_id: str, state: dict[str, Any], encoding: int
) -> pb.VoiceConversationState:
    """A VoiceConversationState message for an engine document."""
    message = pb.VoiceConversationState(
        session_id=session_id,
        turn_count=state["turn_count"],
        current_speaker=state["current_speaker"],
        transcript=document_to_wire(state["transcript"], encoding),
        updated_at=clamped_timestamp(state["updated_at"]),
    )
    if state.get("stt") is not None:
        message.stt_state.CopyFrom(stt_to_proto(session_id, state["stt"]))
    if state.get("tts") is not None:
        message.tts_state.CopyFrom(tts_to_proto(session_id, state["tts"]))
    return message


def session_to_proto(meta: dict[str, Any], encoding: int) -> pb.AudioSession:
    """An AudioSession message for a session document."""
    session_id = meta["session_id"]
    message = pb.AudioSession(
        session_id=session_id,
        session_type=meta["session_type"],
        streaming_mode=meta["streaming_mode"],
        config=document_to_wire(meta["config"], encoding),
        status=meta["status"],
        created_at=clamped_timestamp(meta["created_at"]),
        updated_at=clamped_timestamp(meta["updated_at"]),
        end_reason=meta["end_reason"],
        last_sequence=meta["seq"],
        ended_retention=clamped_duration(meta["ended_retention"]),
        event_retention=clamped_duration(meta["event_retention"]),
    )
    if meta["ended_at"] is not None:
        message.ended_at.CopyFrom(clamped_timestamp(meta["ended_at"]))
    if meta["stt"] is not None:
        message.stt_state.CopyFrom(stt_to_proto(session_id, meta["stt"]))
    if meta["tts"] is not None:
        message.tts_state.CopyFrom(tts_to_proto(session_id, meta["tts"]))
    if meta["conv"] is not None:
        message.conversation_state.CopyFrom(_current_conversation(meta, encoding))
    return message


def _current_conversation(meta: dict[str, Any], encoding: int) -> pb.VoiceConversationState:
    """The conversation state with the session's current STT and TTS states."""
    state = {**meta["conv"], "stt": meta["stt"], "tts": meta["tts"]}
    return conversation_to_proto(meta["session_id"], state, encoding)


def event_to_proto(session_id: str, event: dict[str, Any], encoding: int) -> pb.SessionEvent:
    """A SessionEvent message for a stored event document."""
    message = pb.SessionEvent(
        session_id=session_id, sequence=event["seq"], event_time=clamped_timestamp(event["time"])
    )
    kind = event["kind"]
    payload = event["payload"]
    if kind == speech.CREATED_EVENT:
        message.created.CopyFrom(
            pb.SessionCreated(
                session_type=payload["session_type"],
                streaming_mode=payload["streaming_mode"],
                config=document_to_wire(payload["config"], encoding),
            )
        )
    elif kind == speech.STATUS_EVENT:
        message.status_changed.CopyFrom(
            pb.SessionStatusChanged(
                previous_status=payload["previous_status"], status=payload["status"]
            )
        )
    elif kind == speech.STT_EVENT:
        message.stt_state.CopyFrom(stt_to_proto(session_id, payload))
    elif kind == speech.TTS_EVENT:
        message.tts_state.CopyFrom(tts_to_proto(session_id, payload))
    elif kind == speech.CONVERSATION_EVENT:
        message.conversation_state.CopyFrom(conversation_to_proto(session_id, payload, encoding))
    else:
        message.ended.CopyFrom(
            pb.SessionEnded(reason=payload["reason"], previous_status=payload["previous_status"])
        )
    return message


class SpeechServicer(speech_service_pb2_grpc.SpeechServiceServicer):
    """gRPC front of :class:`~statekeeper_server.engine.domains.speech.SpeechEngine`."""

    def __init__(self, runtime: Core) -> None:
        self.runtime = runtime
        self.engine = SpeechEngine(runtime.backend, runtime.limits)

    async def CreateSession(
        self, request: pb.CreateSessionRequest, context: object
    ) -> pb.CreateSessionResponse:
        """Create a session."""
        meta = await self.engine.create_session(
            session_id=request.session_id,
            session_type=request.session_type,
            streaming_mode=request.streaming_mode,
            config=optional_document(request, "config", "config"),
            ended_retention=ttl_seconds(request, "ended_retention"),
            event_retention=ttl_seconds(request, "event_retention"),
        )
        return pb.CreateSessionResponse(session=session_to_proto(meta, request.value_encoding))

    async def GetSession(
        self, request: pb.GetSessionRequest, context: object
    ) -> pb.GetSessionResponse:
        """Read a session."""
        meta = await self.engine.get_session(request.session_id)
        return pb.GetSessionResponse(session=session_to_proto(meta, request.value_encoding))

    async def UpdateSessionStatus(
        self, request: pb.UpdateSessionStatusRequest, context: object
    ) -> pb.UpdateSessionStatusResponse:
        """Change a session's status."""
        previous, status, sequence = await self.engine.update_status(
            request.session_id, request.status
        )
        response = pb.UpdateSessionStatusResponse(sequence=sequence)
        response.previous_status = previous  # type: ignore[assignment]
        response.status = status  # type: ignore[assignment]
        return response

    async def UpdateSttState(
        self, request: pb.UpdateSttStateRequest, context: object
    ) -> pb.UpdateSttStateResponse:
        """Replace the STT state."""
        _check_owner(request.session_id, request.stt_state, "stt_state")
        state, sequence = await self.engine.update_stt(
            request.session_id, stt_from_proto(request.stt_state)
        )
        return pb.UpdateSttStateResponse(
            stt_state=stt_to_proto(request.session_id, state), sequence=sequence
        )

    async def GetSttState(
        self, request: pb.GetSttStateRequest, context: object
    ) -> pb.GetSttStateResponse:
        """Read the STT state."""
        meta = await self.engine.get_session(request.session_id)
        if meta["stt"] is None:
            return pb.GetSttStateResponse(found=False)
        return pb.GetSttStateResponse(
            found=True, stt_state=stt_to_proto(request.session_id, meta["stt"])
        )

    async def UpdateTtsState(
        self, request: pb.UpdateTtsStateRequest, context: object
    ) -> pb.UpdateTtsStateResponse:
        """Replace the TTS state."""
        _check_owner(request.session_id, request.tts_state, "tts_state")
        state, sequence = await self.engine.update_tts(
            request.session_id, tts_from_proto(request.tts_state)
        )
        return pb.UpdateTtsStateResponse(
            tts_state=tts_to_proto(request.session_id, state), sequence=sequence
        )

    async def GetTtsState(
        self, request: pb.GetTtsStateRequest, context: object
    ) -> pb.GetTtsStateResponse:
        """Read the TTS state."""
        meta = await self.engine.get_session(request.session_id)
        if meta["tts"] is None:
            return pb.GetTtsStateResponse(found=False)
        return pb.GetTtsStateResponse(
            found=True, tts_state=tts_to_proto(request.session_id, meta["tts"])
        )

    async def UpdateConversationState(
        self, request: pb.UpdateConversationStateRequest, context: object
    ) -> pb.UpdateConversationStateResponse:
        """Replace the conversation state."""
        state, sequence = await self.engine.update_conversation(
            request.session_id,
            conversation_from_proto(request.session_id, request.conversation_state),
        )
        return pb.UpdateConversationStateResponse(
            conversation_state=conversation_to_proto(
                request.session_id, state, request.value_encoding
            ),
            sequence=sequence,
        )

    async def GetConversationState(
        self, request: pb.GetConversationStateRequest, context: object
    ) -> pb.GetConversationStateResponse:
        """Read the conversation state (with the session's current STT and TTS states)."""
        meta = await self.engine.get_session(request.session_id)
        if meta["conv"] is None:
            return pb.GetConversationStateResponse(found=False)
        return pb.GetConversationStateResponse(
            found=True, conversation_state=_current_conversation(meta, request.value_encoding)
        )

    async def EndSession(
        self, request: pb.EndSessionRequest, context: object
    ) -> pb.EndSessionResponse:
        """End a session."""
        _, sequence, expire_at = await self.engine.end_session(
            request.session_id, request.reason, ttl_seconds(request, "retention")
        )
        return pb.EndSessionResponse(sequence=sequence, expire_time=clamped_timestamp(expire_at))

    async def WatchSession(
        self, request: pb.WatchSessionRequest, context: object
    ) -> AsyncIterator[pb.WatchSessionResponse]:
        """Stream a session's events; see WatchSessionResponse in the proto for the contract."""
        items = self.engine.watch_session(request.session_id, request.from_sequence)
        next_sequence = request.from_sequence
        async for item in self.runtime.until_stopping(items):
            if isinstance(item, WatchStarted):
                next_sequence = next_sequence or item.last_sequence + 1
                yield pb.WatchSessionResponse(
                    started=pb.WatchSessionStarted(last_sequence=item.last_sequence)
                )
                continue
            yield pb.WatchSessionResponse(
                event=event_to_proto(request.session_id, item, request.value_encoding)
            )
            if item["kind"] == speech.ENDED_EVENT:
                return
            next_sequence = item["seq"] + 1
        raise UnavailableError(
            "the server is shutting down: reconnect and watch again with from_sequence "
            f"{next_sequence}",
            metadata={"next_sequence": str(next_sequence)},
        )
