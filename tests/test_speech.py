"""SpeechStateManager: the reference's examples (embedded and remote), the session state
machine, the live session stream (voice loop, resume, end), retention and bad input."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from statekeeper import values
from statekeeper.errors import (
    FailedPreconditionError,
    HistoryCompactedError,
    InvalidArgumentError,
    NotFoundError,
    Reason,
    StateKeeperError,
)
from statekeeper.state import (
    AudioSessionStatus,
    SessionEvent,
    SessionEventKind,
    SpeechStateManager,
    StreamingMode,
    STTState,
    TranscriptionStatus,
    TTSState,
    VoiceConversationState,
)
from statekeeper_server.config import ServerConfig
from statekeeper_server.engine.domains import speech_records as records
from statekeeper_server.engine.domains.speech import SpeechEngine, WatchStarted
from statekeeper_server.engine.storage.backend import EventType
from statekeeper_server.engine.storage.memory import MemoryBackend
from statekeeper_server.runtime import Runtime
from statekeeper_server.server import StatekeeperServer

logger = logging.getLogger(__name__)

#: No stream in these tests should take longer than this (a guard against hangs, not a timing).
GUARD = 120


async def collect(
    speech_state: SpeechStateManager,
    session_id: str,
    from_sequence: int,
    received: asyncio.Queue[SessionEvent] | None = None,
) -> list[SessionEvent]:
    """Every event of a session stream until it ends."""
    events: list[SessionEvent] = []
    async for event in speech_state.watch_session(session_id, from_sequence=from_sequence):
        events.append(event)
        if received is not None:
            received.put_nowait(event)
    return events


# -- the reference examples ------------------------------------------------------------------


async def test_reference_examples(persistence_kwargs: dict[str, str]) -> None:
    """Session Management, STT State Tracking, TTS State Tracking and Voice Conversation State,
    verbatim but for the import lines and ``persistence="redis"`` (the test's mode)."""
    from statekeeper.state import (
        AudioSessionStatus,
        SpeechStateManager,
        StreamingMode,
    )

    # Initialize speech state manager
    speech_state = SpeechStateManager(
        **persistence_kwargs,
    )

    # Create audio session
    session_id = await speech_state.create_session(
        session_type="voice_conversation",
        streaming_mode=StreamingMode.BIDIRECTIONAL,
        config={
            "stt_provider": "openai",
            "tts_provider": "elevenlabs",
            "language": "en-US",
        },
    )

    # Update session status
    await speech_state.update_session_status(
        session_id=session_id,
        status=AudioSessionStatus.ACTIVE,
    )

    from statekeeper.state import STTState, TranscriptionStatus

    # Track STT state
    stt_state = STTState(
        session_id=session_id,
        status=TranscriptionStatus.TRANSCRIBING,
        audio_received_bytes=45000,
        transcription_progress=0.6,
        interim_transcript="Hello, I would like to...",
    )

    await speech_state.update_stt_state(stt_state)

    # Get current STT state
    current_stt = await speech_state.get_stt_state(session_id)
    logger.info(f"Progress: {current_stt.transcription_progress:.0%}")
    logger.info(f"Interim: {current_stt.interim_transcript}")

    from statekeeper.state import TTSState

    # Track TTS state
    tts_state = TTSState(
        session_id=session_id,
        text_queue=["Hello! How can I help you today?"],
        audio_generated_bytes=12000,
        audio_played_bytes=8000,
        is_speaking=True,
    )

    await speech_state.update_tts_state(tts_state)

    # Check if speaking
    current_tts = await speech_state.get_tts_state(session_id)
    if current_tts.is_speaking:
        logger.info("Agent is currently speaking...")

    from statekeeper.state import VoiceConversationState

    # Track full conversation state
    conversation_state = VoiceConversationState(
        session_id=session_id,
        turn_count=5,
        current_speaker="user",
        stt_state=stt_state,
        tts_state=tts_state,
        transcript=[
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            # ...
        ],
    )

    await speech_state.update_conversation_state(conversation_state)

    # End session
    await speech_state.end_session(
        session_id=session_id,
        reason="user_ended",
    )

    # What a user would check afterwards.
    assert current_stt.status is TranscriptionStatus.TRANSCRIBING
    assert current_stt.audio_received_bytes == 45000
    assert current_stt.transcription_progress == 0.6
    assert current_stt.interim_transcript == "Hello, I would like to..."
    assert current_tts.is_speaking is True
    assert current_tts.text_queue == ["Hello! How can I help you today?"]
    assert (current_tts.audio_generated_bytes, current_tts.audio_played_bytes) == (12000, 8000)
    conversation = await speech_state.get_conversation_state(session_id)
    assert conversation is not None
    assert conversation.turn_count == 5 and conversation.current_speaker == "user"
    assert conversation.transcript[1] == {"role": "assistant", "content": "Hi! How can I help?"}
    assert conversation.stt_state is not None and conversation.stt_state.audio_received_bytes == (
        45000
    )
    session = await speech_state.get_session(session_id)
    assert session is not None
    assert session.status is AudioSessionStatus.ENDED and session.end_reason == "user_ended"
    assert session.streaming_mode is StreamingMode.BIDIRECTIONAL
    assert session.config["language"] == "en-US"
    assert session.last_sequence == 6
    history = await collect(speech_state, session_id, 1)
    assert [e.kind for e in history] == [
        SessionEventKind.CREATED,
        SessionEventKind.STATUS_CHANGED,
        SessionEventKind.STT_STATE,
        SessionEventKind.TTS_STATE,
        SessionEventKind.CONVERSATION_STATE,
        SessionEventKind.ENDED,
    ]
    assert [e.sequence for e in history] == [1, 2, 3, 4, 5, 6]
    assert history[1].status is AudioSessionStatus.ACTIVE
    assert history[-1].end_reason == "user_ended"
    await speech_state.close()


# -- the voice loop --------------------------------------------------------------------------


async def test_voice_loop_three_subscribers_get_every_update_in_order(
    persistence_kwargs: dict[str, str],
) -> None:
    speech_state = SpeechStateManager(**persistence_kwargs)
    session_id = await speech_state.create_session(
        session_type="voice_conversation", streaming_mode=StreamingMode.BIDIRECTIONAL
    )
    await speech_state.update_session_status(session_id, AudioSessionStatus.ACTIVE)
    session = await speech_state.get_session(session_id)
    assert session is not None
    first_update = session.last_sequence + 1

    progress: asyncio.Queue[SessionEvent] = asyncio.Queue()
    early = [
        asyncio.create_task(collect(speech_state, session_id, first_update, progress)),
        asyncio.create_task(collect(speech_state, session_id, first_update)),
    ]

    async def producer() -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        for number in range(500):
            await speech_state.update_stt_state(
                STTState(
                    session_id=session_id,
                    status=TranscriptionStatus.TRANSCRIBING,
                    audio_received_bytes=320 * (number + 1),
                    transcription_progress=(number + 1) / 500,
                    interim_transcript=f"interim {number}",
                )
            )
            deadline += 1 / 50  # 50 updates per second
            await asyncio.sleep(max(0.0, deadline - loop.time()))

    producing = asyncio.create_task(producer())
    # The third subscriber joins once the first has seen 250 updates, and resumes from 1.
    for _ in range(250):
        await asyncio.wait_for(progress.get(), GUARD)
    late = asyncio.create_task(collect(speech_state, session_id, 1))
    await asyncio.wait_for(producing, GUARD)
    await speech_state.end_session(session_id, reason="user_hung_up")
    results = await asyncio.wait_for(asyncio.gather(*early, late), GUARD)

    expected = [f"interim {n}" for n in range(500)]
    for events in results:
        stt = [e for e in events if e.kind is SessionEventKind.STT_STATE]
        assert [e.stt_state.interim_transcript for e in stt if e.stt_state] == expected
        sequences = [e.sequence for e in events]
        assert sequences == list(range(sequences[0], sequences[0] + len(events)))
        assert events[-1].kind is SessionEventKind.ENDED
        assert events[-1].end_reason == "user_hung_up"
    for events in results[:2]:
        assert len(events) == 501 and events[0].sequence == first_update
    assert [e.kind for e in results[2][:2]] == [
        SessionEventKind.CREATED,
        SessionEventKind.STATUS_CHANGED,
    ]
    assert len(results[2]) == 503
    await speech_state.close()


# -- the stream contract ---------------------------------------------------------------------


async def test_resume_from_a_sequence_has_no_gaps_or_duplicates(
    persistence_kwargs: dict[str, str],
) -> None:
    speech_state = SpeechStateManager(**persistence_kwargs)
    session_id = await speech_state.create_session("transcription", StreamingMode.INPUT)
    for number in range(10):
        await speech_state.update_tts_state(
            TTSState(session_id=session_id, audio_generated_bytes=number)
        )
    seen: list[int] = []
    async for event in speech_state.watch_session(session_id, from_sequence=1):
        seen.append(event.sequence)
        if len(seen) == 4:
            break  # a subscriber disconnects after sequence 4
    resumed = asyncio.create_task(collect(speech_state, session_id, seen[-1] + 1))
    for number in range(10, 15):
        await speech_state.update_tts_state(
            TTSState(session_id=session_id, audio_generated_bytes=number)
        )
    await speech_state.end_session(session_id, "done")
    rest = await asyncio.wait_for(resumed, GUARD)
    assert seen + [e.sequence for e in rest] == list(range(1, 18))
    generated = [e.tts_state.audio_generated_bytes for e in rest if e.tts_state]
    assert generated == list(range(3, 15))


async def test_live_subscriber_of_an_ended_session_gets_the_end(
    persistence_kwargs: dict[str, str],
) -> None:
    speech_state = SpeechStateManager(**persistence_kwargs)
    session_id = await speech_state.create_session("tts", StreamingMode.OUTPUT)
    await speech_state.end_session(session_id, "timeout")
    events = await asyncio.wait_for(collect(speech_state, session_id, 0), GUARD)
    assert [(e.kind, e.end_reason, e.sequence) for e in events] == [
        (SessionEventKind.ENDED, "timeout", 2)
    ]


async def test_remote_stream_resumes_after_a_server_restart() -> None:
    backend = MemoryBackend()  # outlives both servers, like a shared Redis would
    config = ServerConfig(backend="memory", port=0, shutdown_grace=1.0)
    first = StatekeeperServer(config, runtime=Runtime(backend))
    port = await first.start()
    address = f"127.0.0.1:{port}"
    speech_state = SpeechStateManager(persistence="grpc", address=address)
    session_id = await speech_state.create_session("voice_conversation")
    for number in range(5):
        await speech_state.update_stt_state(
            STTState(session_id=session_id, interim_transcript=f"before {number}")
        )
    received: asyncio.Queue[SessionEvent] = asyncio.Queue()
    watching = asyncio.create_task(collect(speech_state, session_id, 1, received))
    for _ in range(6):
        await asyncio.wait_for(received.get(), GUARD)
    await first.stop(0)  # the stream breaks; the client keeps trying to resume
    second = StatekeeperServer(
        ServerConfig(backend="memory", port=port, shutdown_grace=1.0), runtime=Runtime(backend)
    )
    await second.start()
    writer = SpeechStateManager(persistence="grpc", address=address)
    for number in range(5):
        await writer.update_stt_state(
            STTState(session_id=session_id, interim_transcript=f"after {number}")
        )
    await writer.end_session(session_id, "done")
    events = await asyncio.wait_for(watching, GUARD)
    assert [e.sequence for e in events] == list(range(1, 13))
    assert [e.stt_state.interim_transcript for e in events if e.stt_state] == [
        *(f"before {n}" for n in range(5)),
        *(f"after {n}" for n in range(5)),
    ]
    await writer.close()
    await speech_state.close()
    await second.stop(0)


async def test_stream_across_two_servers_on_one_redis(redis_instances: list[Any]) -> None:
    first, second = redis_instances
    writer = SpeechStateManager(persistence="grpc", address=first.address)
    reader = SpeechStateManager(persistence="grpc", address=second.address)
    session_id = await writer.create_session("voice_conversation", StreamingMode.BIDIRECTIONAL)
    watching = asyncio.create_task(collect(reader, session_id, 1))
    for number in range(50):
        await writer.update_stt_state(
            STTState(session_id=session_id, interim_transcript=f"t{number}")
        )
    await writer.end_session(session_id, "user_ended")
    events = await asyncio.wait_for(watching, GUARD)
    assert [e.sequence for e in events] == list(range(1, 53))
    assert [e.stt_state.interim_transcript for e in events if e.stt_state] == [
        f"t{n}" for n in range(50)
    ]
    assert events[-1].end_reason == "user_ended"
    await writer.close()
    await reader.close()


# -- state machine and errors ----------------------------------------------------------------


async def test_status_transitions(persistence_kwargs: dict[str, str]) -> None:
    speech_state = SpeechStateManager(**persistence_kwargs)
    session_id = await speech_state.create_session("voice_conversation")
    for status in (
        AudioSessionStatus.ACTIVE,
        AudioSessionStatus.PAUSED,
        AudioSessionStatus.ACTIVE,
        AudioSessionStatus.ERROR,
        AudioSessionStatus.ACTIVE,
    ):
        await speech_state.update_session_status(session_id, status)
    for illegal in (AudioSessionStatus.INITIALIZING,):
        with pytest.raises(FailedPreconditionError) as caught:
            await speech_state.update_session_status(session_id, illegal)
        assert caught.value.reason == Reason.INVALID_STATUS_TRANSITION
    await speech_state.update_session_status(session_id, AudioSessionStatus.ERROR)
    with pytest.raises(FailedPreconditionError):
        await speech_state.update_session_status(session_id, AudioSessionStatus.PAUSED)
    await speech_state.update_session_status(session_id, AudioSessionStatus.ENDED)
    session = await speech_state.get_session(session_id)
    assert session is not None and session.status is AudioSessionStatus.ENDED
    assert session.end_reason == "status_ended"


async def test_changes_to_an_ended_session_fail_and_change_nothing(
    persistence_kwargs: dict[str, str],
) -> None:
    speech_state = SpeechStateManager(**persistence_kwargs)
    session_id = await speech_state.create_session("voice_conversation")
    await speech_state.update_stt_state(STTState(session_id=session_id, interim_transcript="a"))
    await speech_state.end_session(session_id, "user_ended")
    before = await speech_state.get_session(session_id)
    calls = [
        lambda: speech_state.update_session_status(session_id, AudioSessionStatus.ACTIVE),
        lambda: speech_state.update_stt_state(STTState(session_id=session_id)),
        lambda: speech_state.update_tts_state(TTSState(session_id=session_id)),
        lambda: speech_state.update_conversation_state(
            VoiceConversationState(session_id=session_id)
        ),
        lambda: speech_state.end_session(session_id, "again"),
    ]
    for call in calls:
        with pytest.raises(FailedPreconditionError) as caught:
            await call()
        assert caught.value.reason == Reason.SESSION_ENDED
    assert await speech_state.get_session(session_id) == before
    stt = await speech_state.get_stt_state(session_id)
    assert stt is not None and stt.interim_transcript == "a"


async def test_unknown_sessions(persistence_kwargs: dict[str, str]) -> None:
    speech_state = SpeechStateManager(**persistence_kwargs)
    assert await speech_state.get_session("sess_missing") is None
    for call in (
        lambda: speech_state.update_session_status("sess_missing", AudioSessionStatus.ACTIVE),
        lambda: speech_state.get_stt_state("sess_missing"),
        lambda: speech_state.end_session("sess_missing", "x"),
        lambda: collect(speech_state, "sess_missing", 0),
    ):
        with pytest.raises(NotFoundError) as caught:
            await call()
        assert caught.value.reason == Reason.SESSION_NOT_FOUND
    session_id = await speech_state.create_session("x")
    assert await speech_state.get_stt_state(session_id) is None
    assert await speech_state.get_tts_state(session_id) is None
    assert await speech_state.get_conversation_state(session_id) is None


async def test_bad_input_is_rejected_and_changes_nothing(
    persistence_kwargs: dict[str, str],
) -> None:
    speech_state = SpeechStateManager(**persistence_kwargs)
    session_id = await speech_state.create_session("voice_conversation", session_id="s1")
    cases: list[tuple[Any, type[StateKeeperError], str, str]] = [
        (
            lambda: speech_state.create_session("x", session_id="a/b"),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "session_id",
        ),
        (
            lambda: speech_state.create_session("x" * 300),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "session_type",
        ),
        (
            lambda: speech_state.update_stt_state(
                STTState(session_id=session_id, transcription_progress=1.5)
            ),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "stt_state.transcription_progress",
        ),
        (
            lambda: speech_state.update_stt_state(
                STTState(session_id=session_id, audio_received_bytes=-1)
            ),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "stt_state.audio_received_bytes",
        ),
        (
            lambda: speech_state.update_tts_state(
                TTSState(session_id=session_id, audio_played_bytes=-5)
            ),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "tts_state.audio_played_bytes",
        ),
        (
            lambda: speech_state.update_conversation_state(
                VoiceConversationState(
                    session_id=session_id, stt_state=STTState(session_id="other")
                )
            ),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "conversation_state.stt_state.session_id",
        ),
        (
            lambda: speech_state.update_conversation_state(
                VoiceConversationState(session_id=session_id, turn_count=-1)
            ),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "conversation_state.turn_count",
        ),
        (
            lambda: speech_state.end_session(session_id, "r" * 2000),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "reason",
        ),
        (
            lambda: speech_state.end_session(session_id, "r", retention=-1),
            InvalidArgumentError,
            Reason.INVALID_TTL,
            "retention",
        ),
        (
            lambda: collect(speech_state, session_id, 99),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "from_sequence",
        ),
        (
            lambda: collect(speech_state, session_id, -1),
            InvalidArgumentError,
            Reason.INVALID_ARGUMENT,
            "from_sequence",
        ),
    ]
    before = await speech_state.get_session(session_id)
    for call, error_type, reason, field in cases:
        with pytest.raises(error_type) as caught:
            await call()
        assert caught.value.reason == reason, field
        assert [v[0] for v in caught.value.violations] == [field]
    assert await speech_state.get_session(session_id) == before
    assert await speech_state.get_session("a") is None


# -- retention -------------------------------------------------------------------------------


async def test_ended_sessions_are_removed_after_their_retention() -> None:
    backend = MemoryBackend()
    engine = SpeechEngine(backend)
    meta = await engine.create_session(
        session_id="",
        session_type="voice",
        streaming_mode=None,
        config={},
        ended_retention=0.05,
        event_retention=None,
    )
    session_id = meta.session_id
    updates = backend.watch(f"speech/s/{session_id}/meta")
    await anext(updates)
    _, sequence, expire_at = await engine.end_session(session_id, "bye", None)
    assert sequence == 2
    ended = await engine.get_session(session_id)
    assert ended.ended_at is not None and expire_at == pytest.approx(ended.ended_at + 0.05)
    assert (await engine.get_session(session_id)).end_reason == "bye"
    async for update in updates:
        if any(event.type is EventType.EXPIRE for event in update.events):
            break
    with pytest.raises(NotFoundError):
        await engine.get_session(session_id)
    await backend.close()


async def test_expired_events_are_reported_not_skipped() -> None:
    backend = MemoryBackend()
    engine = SpeechEngine(backend)
    await engine.create_session(
        session_id="s",
        session_type="voice",
        streaming_mode=None,
        config={},
        ended_retention=None,
        event_retention=0.05,
    )
    updates = backend.watch("speech/s/s/ev/")
    await anext(updates)
    await engine.update_status("s", records.AudioSessionStatus.ACTIVE)
    expired = 0
    async for update in updates:
        expired += sum(1 for event in update.events if event.type is EventType.EXPIRE)
        if expired == 2:
            break
    await engine.update_status("s", records.AudioSessionStatus.PAUSED)  # sequence 3 is retained
    stream = engine.watch_session("s", 1)
    assert await anext(stream) == WatchStarted(3)
    with pytest.raises(HistoryCompactedError) as caught:
        await anext(stream)
    assert caught.value.metadata["oldest_sequence"] == "3"
    resumed = engine.watch_session("s", 3)
    assert await anext(resumed) == WatchStarted(3)
    event = await anext(resumed)
    assert not isinstance(event, WatchStarted) and event.status_changed is not None
    assert event.sequence == 3 and event.status_changed.status is records.AudioSessionStatus.PAUSED
    await resumed.aclose()
    await backend.close()


async def test_sessions_written_before_typed_records_keep_working() -> None:
    """A session stored in the previous format (proto enum numbers, short names) is read,
    replayed and changed by the typed engine."""
    backend = MemoryBackend()
    stt = {
        "status": 3,
        "audio_received_bytes": 10,
        "transcription_progress": 0.5,
        "interim_transcript": "hel",
        "final_transcript": "",
        "confidence": 0.9,
        "updated_at": 101.0,
    }
    meta = {
        "session_id": "old",
        "session_type": "voice",
        "streaming_mode": 4,
        "config": {"voice": "calm"},
        "status": 2,
        "created_at": 100.0,
        "updated_at": 101.0,
        "ended_at": None,
        "end_reason": "",
        "seq": 3,
        "stt": stt,
        "tts": None,
        "conv": {"turn_count": 1, "current_speaker": "u", "transcript": [], "updated_at": 99.0},
        "ended_retention": 3600.0,
        "event_retention": 3600.0,
        "idle_at": None,
    }
    events = [
        {
            "seq": 1,
            "time": 100.0,
            "kind": "created",
            "payload": {"session_type": "voice", "streaming_mode": 4, "config": {"voice": "calm"}},
        },
        {"seq": 2, "time": 100.5, "kind": "status", "payload": {"previous_status": 1, "status": 2}},
        {"seq": 3, "time": 101.0, "kind": "stt", "payload": stt},
    ]
    await backend.put("speech/s/old/meta", values.pack(meta))
    for event in events:
        await backend.put(f"speech/s/old/ev/{event['seq']:020d}", values.pack(event))
    engine = SpeechEngine(backend)
    session = await engine.get_session("old")
    assert (session.status, session.streaming_mode) == (
        records.AudioSessionStatus.ACTIVE,
        records.StreamingMode.BIDIRECTIONAL,
    )
    assert session.last_sequence == 3 and session.config == {"voice": "calm"}
    assert session.stt_state is not None and session.stt_state.session_id == "old"
    assert session.stt_state.status is records.TranscriptionStatus.TRANSCRIBING
    conversation = session.conversation()
    assert conversation is not None and conversation.stt_state == session.stt_state
    stream = engine.watch_session("old", 1)
    assert await anext(stream) == WatchStarted(3)
    replayed = [await anext(stream) for _ in range(3)]
    await stream.aclose()
    assert [e.sequence for e in replayed if isinstance(e, records.SessionEvent)] == [1, 2, 3]
    created, changed, transcribed = replayed
    assert isinstance(created, records.SessionEvent) and created.created is not None
    assert created.created.streaming_mode is records.StreamingMode.BIDIRECTIONAL
    assert isinstance(changed, records.SessionEvent) and changed.status_changed is not None
    assert changed.status_changed.previous_status is records.AudioSessionStatus.INITIALIZING
    assert isinstance(transcribed, records.SessionEvent) and transcribed.stt_state is not None
    assert transcribed.stt_state.session_id == "old"
    previous, status, sequence = await engine.update_status(
        "old", records.AudioSessionStatus.PAUSED
    )
    assert (previous, status, sequence) == (
        records.AudioSessionStatus.ACTIVE,
        records.AudioSessionStatus.PAUSED,
        4,
    )
    await backend.close()
