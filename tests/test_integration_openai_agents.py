"""The OpenAI Agents SDK session in statekeeper: the ``Session`` protocol's behaviour, real
``Runner.run`` calls with a scripted model (no network), concurrent runs on one session, many
sessions in parallel, writers in two processes on two servers sharing Redis, and tenants."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from typing import Any

from agents import Agent, Model, ModelResponse, RunConfig, Runner, Usage
from agents.memory import Session, SessionSettings
from openai.types.responses import ResponseOutputMessage, ResponseOutputText
from statekeeper.integrations.openai_agents import SLOT_BYTES, TAIL_BYTES, StatekeeperSession
from statekeeper.state import StateConfig, StateManager
from statekeeper_server.config import ServerConfig
from statekeeper_server.server import StatekeeperServer

from tests.agent_stores import auth_server, calls, manager, tenant_config
from tests.programs import child_processes
from tests.servers import ServerProcess
from tests.test_metrics import scrape

__all__ = ["auth_server", "manager"]


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


class EchoModel(Model):
    """A scripted model: answers "echo: <last user message> (<n> items seen)", so a test can
    tell which history the run gave it."""

    def __init__(self) -> None:
        self.inputs: list[list[Any]] = []

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any):
        items = [user(input)] if isinstance(input, str) else list(input)
        self.inputs.append(items)
        last = next(i["content"] for i in reversed(items) if i.get("role") == "user")
        text = f"echo: {last} ({len(items)} items seen)"
        message = ResponseOutputMessage(
            id=f"msg-{len(self.inputs)}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
        )
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the tests run the non-streaming path")


def agent(model: Model) -> Agent[Any]:
    return Agent(name="assistant", instructions="Answer briefly.", model=model)


RUN_CONFIG = RunConfig(tracing_disabled=True)


def texts(items: list[Any]) -> list[str]:
    """The text of each item: a user message's content, an assistant message's output text."""
    out = []
    for item in items:
        content = item["content"]
        out.append(content if isinstance(content, str) else content[0]["text"])
    return out


# -- the Session protocol ----------------------------------------------------------------------


async def test_items_come_back_in_order_and_limit_gives_the_latest(manager: StateManager) -> None:
    session = StatekeeperSession("conv-1", manager)
    assert isinstance(session, Session)
    assert await session.get_items() == []
    await session.add_items([user("a"), user("b")])
    await session.add_items([user("c")])
    await session.add_items([])
    await session.add_items([user("d"), user("e"), user("f")])
    assert texts(await session.get_items()) == ["a", "b", "c", "d", "e", "f"]
    assert texts(await session.get_items(limit=4)) == ["c", "d", "e", "f"]
    assert texts(await session.get_items(limit=1)) == ["f"]
    assert texts(await session.get_items(limit=100)) == ["a", "b", "c", "d", "e", "f"]
    assert await session.get_items(limit=0) == []
    # session_settings.limit is the default limit; an explicit one wins.
    limited = StatekeeperSession("conv-1", manager, session_settings=SessionSettings(limit=2))
    assert texts(await limited.get_items()) == ["e", "f"]
    assert texts(await limited.get_items(limit=3)) == ["d", "e", "f"]
    # A second object on the same id (another worker) sees the same history.
    assert texts(await StatekeeperSession("conv-1", manager).get_items()) == list("abcdef")


async def test_order_holds_across_slots_and_the_head(manager: StateManager) -> None:
    session = StatekeeperSession("conv-mixed", manager)
    big = "y" * (TAIL_BYTES // 2)
    expected: list[str] = []
    for n in range(14):  # small and large items: some end in slots, the newest in the head
        batch = [f"{n}a", f"{n}b{big}"] if n % 3 == 0 else [f"{n}c"]
        expected += batch
        await session.add_items([user(text) for text in batch])
    assert len(await manager.list_keys("openai-agents/conv-mixed/*")) >= 2
    assert texts(await session.get_items()) == expected
    for limit in (1, 2, 3, 5, 8, len(expected)):
        assert texts(await session.get_items(limit=limit)) == expected[-limit:]
    popped = [texts([await session.pop_item()])[0] for _ in range(len(expected) - 2)]
    assert popped == expected[2:][::-1]
    assert texts(await session.get_items()) == expected[:2]
    await session.add_items([user("after")])
    assert texts(await session.get_items()) == [*expected[:2], "after"]


async def test_a_turn_reads_the_head_once() -> None:
    server = StatekeeperServer(ServerConfig(backend="memory", port=0, metrics_port=0))
    await server.start()
    try:
        address = f"127.0.0.1:{server.port}"
        async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
            session = StatekeeperSession("turns", manager)
            await session.get_items()
            await session.add_items([user("first")])
            assert server.metrics_port is not None
            before = await asyncio.to_thread(scrape, server.metrics_port)
            for n in range(5):
                await session.get_items()
                await session.add_items([user(f"turn {n}"), user(f"answer {n}")])
            after = await asyncio.to_thread(scrape, server.metrics_port)
            assert len(await session.get_items()) == 11
        # One Get and one Transact a turn: add_items starts from the head get_items read.
        assert calls(after, "Get") - calls(before, "Get") == 5
        assert calls(after, "Transact") - calls(before, "Transact") == 5
    finally:
        await server.stop(0)


async def test_a_writer_with_an_outdated_head_appends_after_every_item(
    manager: StateManager,
) -> None:
    mine, other = StatekeeperSession("shared", manager), StatekeeperSession("shared", manager)
    await mine.add_items([user("1")])
    await other.add_items([user("2")])  # mine's head is outdated now
    await mine.add_items([user("3")])
    assert await other.pop_item() == user("3")
    await mine.add_items([user("4")])
    assert await other.get_items() == [user("1"), user("2"), user("4")]
    await other.clear_session()
    await mine.add_items([user("5")])
    assert await other.get_items() == [user("5")]
    await other.add_items([user("6")])
    assert await mine.get_items() == [user("5"), user("6")]


async def test_pop_item_removes_the_most_recent_item(manager: StateManager) -> None:
    session = StatekeeperSession("conv-pop", manager)
    assert await session.pop_item() is None
    await session.add_items([user("a"), user("b")])
    await session.add_items([user("c")])
    assert texts([await session.pop_item()]) == ["c"]
    assert texts([await session.pop_item()]) == ["b"]
    assert texts(await session.get_items()) == ["a"]
    await session.add_items([user("d")])
    assert texts(await session.get_items()) == ["a", "d"]
    assert texts([await session.pop_item(), await session.pop_item()]) == ["d", "a"]
    assert await session.pop_item() is None
    assert await session.get_items() == []


async def test_clear_session_removes_every_item_and_key(manager: StateManager) -> None:
    session = StatekeeperSession("conv-clear", manager)
    other = StatekeeperSession("conv-clear-2", manager)
    await other.add_items([user("kept")])
    filler = "x" * TAIL_BYTES
    for n in range(120):  # each add moves the tail to a slot: more than one cleanup batch
        await session.add_items([user(f"m{n}{filler}")])
    assert len(await manager.list_keys("openai-agents/conv-clear/*")) == 120
    await session.clear_session()
    assert await session.get_items() == []
    assert await session.pop_item() is None
    assert await manager.list_keys("openai-agents/conv-clear/*") == []
    assert texts(await other.get_items()) == ["kept"]
    await session.add_items([user("again")])
    assert texts(await session.get_items()) == ["again"]
    await session.clear_session()
    await session.clear_session()
    assert await session.get_items() == []
    await StatekeeperSession("never-used", manager).clear_session()


async def test_a_large_add_items_is_one_transaction_over_several_slots(
    manager: StateManager,
) -> None:
    session = StatekeeperSession("conv-big", manager)
    payload = "x" * 4000
    items = [user(f"{n}:{payload}") for n in range(300)]  # about 1.2 MB in all
    await session.add_items(items)
    slots = await manager.list_keys("openai-agents/conv-big/*")
    assert len(slots) > 1 and len(slots) * SLOT_BYTES >= 1_200_000
    written = [await manager.get_entry(key) for key in ["openai-agents/conv-big", *slots]]
    assert len({entry.mod_revision for entry in written if entry}) == 1  # one commit
    assert await session.get_items() == items
    assert await session.get_items(limit=7) == items[-7:]
    assert await session.pop_item() == items[-1]
    assert await session.get_items() == items[:-1]


async def test_session_ids_never_share_keys(manager: StateManager) -> None:
    ids = ["a", "a/b", "a*", "a?", "a[1]", "a%2Fb", "ü"]
    for session_id in ids:
        await StatekeeperSession(session_id, manager).add_items([user(session_id)])
    for session_id in ids:
        assert texts(await StatekeeperSession(session_id, manager).get_items()) == [session_id]
    await StatekeeperSession("a", manager).clear_session()
    assert texts(await StatekeeperSession("a/b", manager).get_items()) == ["a/b"]


async def test_ttl_puts_an_expiry_on_the_session(manager: StateManager) -> None:
    session = StatekeeperSession("conv-ttl", manager, ttl=3600)
    await session.add_items([user("a" * TAIL_BYTES)])  # past the head: a slot too
    for key in ["openai-agents/conv-ttl", "openai-agents/conv-ttl/000000000000"]:
        entry = await manager.get_entry(key)
        assert entry is not None and entry.expires_at is not None
    plain = StatekeeperSession("conv-no-ttl", manager)
    await plain.add_items([user("a")])
    entry = await manager.get_entry("openai-agents/conv-no-ttl")
    assert entry is not None and entry.expires_at is None


async def test_tenants_do_not_see_each_others_sessions(auth_server: StatekeeperServer) -> None:
    async with (
        StateManager(tenant_config(auth_server, "agents-a", "team-a")) as team_a,
        StateManager(tenant_config(auth_server, "agents-b", "team-b")) as team_b,
    ):
        await StatekeeperSession("shared-id", team_a).add_items([user("from a")])
        assert await StatekeeperSession("shared-id", team_b).get_items() == []
        await StatekeeperSession("shared-id", team_b).clear_session()
        assert texts(await StatekeeperSession("shared-id", team_a).get_items()) == ["from a"]


# -- real runs ---------------------------------------------------------------------------------


async def test_runner_keeps_the_conversation_across_turns(manager: StateManager) -> None:
    model = EchoModel()
    session = StatekeeperSession("run-1", manager)
    first = await Runner.run(agent(model), "hello", session=session, run_config=RUN_CONFIG)
    assert first.final_output == "echo: hello (1 items seen)"
    # The next turn, from a fresh session object (as after a restart), gets the history.
    again = StatekeeperSession("run-1", manager)
    second = await Runner.run(agent(model), "and now?", session=again, run_config=RUN_CONFIG)
    assert second.final_output == "echo: and now? (3 items seen)"
    assert texts(model.inputs[1]) == ["hello", "echo: hello (1 items seen)", "and now?"]
    assert texts(await again.get_items()) == [
        "hello",
        "echo: hello (1 items seen)",
        "and now?",
        "echo: and now? (3 items seen)",
    ]


async def test_two_concurrent_runs_on_one_session_lose_nothing(manager: StateManager) -> None:
    model = EchoModel()
    await asyncio.gather(
        *(
            Runner.run(
                agent(model),
                text,
                session=StatekeeperSession("run-2", manager),
                run_config=RUN_CONFIG,
            )
            for text in ("left", "right")
        )
    )
    stored = texts(await StatekeeperSession("run-2", manager).get_items())
    # Both inputs and both replies are there (how much of the other run each reply saw
    # depends on the interleaving), and each run's input comes before its reply.
    assert len(stored) == 4
    for text in ("left", "right"):
        reply = next(i for i, item in enumerate(stored) if item.startswith(f"echo: {text} ("))
        assert stored.index(text) < reply


async def test_many_sessions_run_in_parallel(manager: StateManager) -> None:
    model = EchoModel()

    async def conversation(n: int) -> None:
        session = StatekeeperSession(f"parallel-{n}", manager)
        for turn in range(2):
            await Runner.run(agent(model), f"s{n} t{turn}", session=session, run_config=RUN_CONFIG)

    await asyncio.gather(*(conversation(n) for n in range(40)))
    for n in range(40):
        stored = texts(await StatekeeperSession(f"parallel-{n}", manager).get_items())
        assert stored == [
            f"s{n} t0",
            f"echo: s{n} t0 (1 items seen)",
            f"s{n} t1",
            f"echo: s{n} t1 (3 items seen)",
        ]


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from statekeeper.state import StateConfig, StateManager
    from statekeeper.integrations.openai_agents import StatekeeperSession

    async def main(address, name, count):
        async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
            session = StatekeeperSession("cross-process", manager)
            for n in range(count):
                await session.add_items([{"role": "user", "content": f"{name}{n}"}])
                if n % 10 == 9:
                    await session.pop_item()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_writers_in_two_processes_on_two_servers_keep_every_item(
    redis_instances: list[ServerProcess],
) -> None:
    addresses = [server.address for server in redis_instances]
    async with child_processes(
        (sys.executable, "-c", WRITER, address, name, "60")
        for address, name in zip(addresses, ("p", "q"), strict=True)
    ) as writers:
        assert [await writer.wait() for writer in writers] == [0, 0]
    async with StateManager(StateConfig(backend="grpc", address=addresses[0])) as reader:
        stored = texts(await StatekeeperSession("cross-process", reader).get_items())
    # 120 adds and 12 pops: 108 items; each writer's own items stay in its order.
    assert len(stored) == 108 and len(set(stored)) == 108
    for name in ("p", "q"):
        own = [int(text[1:]) for text in stored if text[0] == name]
        assert own == sorted(own)
