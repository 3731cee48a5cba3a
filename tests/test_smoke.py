"""A first end-to-end check of the StateService through both modes."""

from statekeeper.state import StateConfig, StateManager
from statekeeper.transport import ConnectionOptions


async def test_save_get_round_trip(connection: ConnectionOptions) -> None:
    config = StateConfig(backend=connection.persistence, address=connection.address)
    async with StateManager(config) as manager:
        await manager.save("agent:x", {"n": 1, "x": 0.5})
        assert await manager.get("agent:x") == {"n": 1, "x": 0.5}
