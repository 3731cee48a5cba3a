"""The SpeechService servicer: convert the request, call the SpeechEngine, build the response."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from statekeeper.errors import UnavailableError
from statekeeper.messages import enum_to_number, from_message, read_field, to_message
from statekeeper.timestamps import clamped_timestamp
from statekeeper.v1 import speech_service_pb2 as pb
from statekeeper.v1 import speech_service_pb2_grpc

from statekeeper_server.engine.domains.speech import SpeechEngine, WatchStarted
from statekeeper_server.engine.domains.speech_records import (
    AudioSessionStatus,
    StreamingMode,
    SttState,
    TtsState,
    VoiceConversationState,
)
from statekeeper_server.servicers.convert import optional_document, optional_seconds

if TYPE_CHECKING:
    from statekeeper_server.core import Core

_STATUS = pb.AudioSessionStatus.DESCRIPTOR


class SpeechServicer(speech_service_pb2_grpc.SpeechServiceServicer):
    """gRPC front of :class:`~statekeeper_server.engine.domains.speech.SpeechEngine`."""

    def __init__(self, runtime: Core) -> None:
        self.runtime = runtime
        self.engine = SpeechEngine(runtime.backend, runtime.limits)

    async def CreateSession(
        self, request: pb.CreateSessionRequest, context: object
    ) -> pb.CreateSessionResponse:
        """Create a session."""
        session = await self.engine.create_session(
            session_id=request.session_id,
            session_type=request.session_type,
            streaming_mode=read_field(request, "streaming_mode", StreamingMode),
            config=optional_document(request, "config", "config"),
            ended_retention=optional_seconds(request, "ended_retention"),
            event_retention=optional_seconds(request, "event_retention"),
        )
        return pb.CreateSessionResponse(
            session=to_message(session, pb.AudioSession, encoding=request.value_encoding)
        )

    async def GetSession(
        self, request: pb.GetSessionRequest, context: object
    ) -> pb.GetSessionResponse:
        """Read a session."""
        session = await self.engine.get_session(request.session_id)
        return pb.GetSessionResponse(
            session=to_message(session, pb.AudioSession, encoding=request.value_encoding)
        )

    async def UpdateSessionStatus(
        self, request: pb.UpdateSessionStatusRequest, context: object
    ) -> pb.UpdateSessionStatusResponse:
        """Change a session's status."""
        previous, status, sequence = await self.engine.update_status(
            request.session_id, read_field(request, "status", AudioSessionStatus)
        )
        response = pb.UpdateSessionStatusResponse(sequence=sequence)
        response.previous_status = enum_to_number(previous, _STATUS)  # type: ignore[assignment]
        response.status = enum_to_number(status, _STATUS)  # type: ignore[assignment]
        return response

    async def UpdateSttState(
        self, request: pb.UpdateSttStateRequest, context: object
    ) -> pb.UpdateSttStateResponse:
        """Replace the STT state."""
        state, sequence = await self.engine.update_stt(
            request.session_id, from_message(request.stt_state, SttState)
        )
        return pb.UpdateSttStateResponse(
            stt_state=to_message(state, pb.SttState), sequence=sequence
        )

    async def GetSttState(
        self, request: pb.GetSttStateRequest, context: object
    ) -> pb.GetSttStateResponse:
        """Read the STT state."""
        session = await self.engine.get_session(request.session_id)
        if session.stt_state is None:
            return pb.GetSttStateResponse(found=False)
        return pb.GetSttStateResponse(
            found=True, stt_state=to_message(session.stt_state, pb.SttState)
        )

    async def UpdateTtsState(
        self, request: pb.UpdateTtsStateRequest, context: object
    ) -> pb.UpdateTtsStateResponse:
        """Replace the TTS state."""
        state, sequence = await self.engine.update_tts(
            request.session_id, from_message(request.tts_state, TtsState)
        )
        return pb.UpdateTtsStateResponse(
            tts_state=to_message(state, pb.TtsState), sequence=sequence
        )

    async def GetTtsState(
        self, request: pb.GetTtsStateRequest, context: object
    ) -> pb.GetTtsStateResponse:
        """Read the TTS state."""
        session = await self.engine.get_session(request.session_id)
        if session.tts_state is None:
            return pb.GetTtsStateResponse(found=False)
        return pb.GetTtsStateResponse(
            found=True, tts_state=to_message(session.tts_state, pb.TtsState)
        )

    async def UpdateConversationState(
        self, request: pb.UpdateConversationStateRequest, context: object
    ) -> pb.UpdateConversationStateResponse:
        """Replace the conversation state."""
        state, sequence = await self.engine.update_conversation(
            request.session_id,
            from_message(request.conversation_state, VoiceConversationState),
        )
        return pb.UpdateConversationStateResponse(
            conversation_state=to_message(
                state, pb.VoiceConversationState, encoding=request.value_encoding
            ),
            sequence=sequence,
        )

    async def GetConversationState(
        self, request: pb.GetConversationStateRequest, context: object
    ) -> pb.GetConversationStateResponse:
        """Read the conversation state (with the session's current STT and TTS states)."""
        session = await self.engine.get_session(request.session_id)
        conversation = session.conversation()
        if conversation is None:
            return pb.GetConversationStateResponse(found=False)
        return pb.GetConversationStateResponse(
            found=True,
            conversation_state=to_message(
                conversation, pb.VoiceConversationState, encoding=request.value_encoding
            ),
        )

    async def EndSession(
        self, request: pb.EndSessionRequest, context: object
    ) -> pb.EndSessionResponse:
        """End a session."""
        _, sequence, expire_at = await self.engine.end_session(
            request.session_id, request.reason, optional_seconds(request, "retention")
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
            event = to_message(item, pb.SessionEvent, encoding=request.value_encoding)
            yield pb.WatchSessionResponse(event=event)
            if item.ended is not None:
                return
            next_sequence = item.sequence + 1
        raise UnavailableError(
            "the server is shutting down: reconnect and watch again with from_sequence "
            f"{next_sequence}",
            metadata={"next_sequence": str(next_sequence)},
        )
