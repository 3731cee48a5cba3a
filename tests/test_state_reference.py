"""The reference's "Core StateManager" examples, run verbatim in embedded and remote mode.

Only the import line changes (``agenticaiframework.state`` → ``statekeeper.state``), and in
remote mode the configuration points at the test server.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from statekeeper.state import StateConfig, StateManager
from statekeeper.transport import ConnectionOptions


def config_for(connection: ConnectionOptions, **overrides: object) -> StateConfig:
    """The example's in-memory configuration, or the remote one in remote mode."""
    if connection.persistence == "grpc":
        return StateConfig(backend="grpc", address=connection.address)
    return StateConfig(backend="memory", **overrides)  # type: ignore[arg-type]


async def test_initialization_example_constructs_every_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    from statekeeper.state import (  # noqa: F401 - the example imports all of them
        FileBackend,
        MemoryBackend,
        RedisBackend,
        StateConfig,
        StateManager,
    )

    # In-memory state (development)
    state_manager = StateManager(
        config=StateConfig(
            backend="memory",
            auto_save=True,
            save_interval=30,
        )
    )
    await state_manager.save("k", {"v": 1})
    assert await state_manager.get("k") == {"v": 1}

    # File-based state (single instance)
    state_manager = StateManager(
        config=StateConfig(
            backend="file",
            file_path="./state/app_state.json",
            auto_save=True,
        )
    )
    await state_manager.save("k", {"v": 2})
    assert await state_manager.get("k") == {"v": 2}
    assert (tmp_path / "state").is_dir()

    # Redis state (production/distributed): constructing it does not connect yet.
    state_manager = StateManager(
        config=StateConfig(
            backend="redis",
            redis_url="redis://localhost:6379",
            key_prefix="agenticai:",
            ttl=3600,
        )
    )
    assert state_manager.config.ttl == 3600


async def test_basic_operations_example(
    connection: ConnectionOptions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    state_manager = StateManager(config=config_for(connection, auto_save=True, save_interval=30))
    logger = logging.getLogger(__name__)

    # Save state
    await state_manager.save(
        "agent:researcher",
        {
            "status": "running",
            "current_task": "analyze_data",
            "progress": 0.45,
        },
    )

    # Get state
    agent_state = await state_manager.get("agent:researcher")
    logger.info(f"Status: {agent_state['status']}")

    # Update partial state
    await state_manager.update(
        "agent:researcher",
        {
            "progress": 0.75,
        },
    )
    assert await state_manager.get("agent:researcher") == {
        "status": "running",
        "current_task": "analyze_data",
        "progress": 0.75,
    }

    # Delete state
    await state_manager.delete("agent:researcher")
    assert await state_manager.get("agent:researcher") is None

    await state_manager.save("agent:writer", {"status": "idle"})
    await state_manager.save("tool:search", {"status": "idle"})
    # List all keys
    keys = await state_manager.list_keys("agent:*")
    assert keys == ["agent:writer"]
    assert "Status: running" in caplog.text
    await state_manager.close()


async def test_subscriptions_example(connection: ConnectionOptions) -> None:
    state_manager = StateManager(config=config_for(connection))
    logger = logging.getLogger(__name__)
    received: list[tuple[str, object, object]] = []
    done = asyncio.Event()

    # Subscribe to state changes
    async def on_state_change(key: str, old_value: dict, new_value: dict):
        logger.info(f"State changed for {key}")
        logger.info(f" Old: {old_value}")
        logger.info(f" New: {new_value}")
        received.append((key, old_value, new_value))
        if len(received) == 3:
            done.set()

    state_manager.subscribe("agent:*", on_state_change)

    await state_manager.save("agent:a", {"n": 1})
    await state_manager.save("other:b", {"n": 1})
    await state_manager.update("agent:a", {"n": 2})
    await state_manager.delete("agent:a")
    await asyncio.wait_for(done.wait(), 10)

    assert received == [
        ("agent:a", None, {"n": 1}),
        ("agent:a", {"n": 1}, {"n": 2}),
        ("agent:a", {"n": 2}, None),
    ]

    # Unsubscribe
    state_manager.unsubscribe("agent:*", on_state_change)
    await state_manager.close()
