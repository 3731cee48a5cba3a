"""The Google ADK session service in statekeeper: ADK's session contract (learned from its own
services and their tests, written here as our own), stale writers, idempotent appends, scale
of listing and deletion, tenants, writers in two processes, and an ADK ``Runner`` end to end
with a scripted model (no network)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from google.adk.agents import LlmAgent
from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions import BaseSessionService
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from google.adk.tools.tool_context import ToolContext
from google.genai import types
from statekeeper.integrations.adk import StatekeeperSessionService
from statekeeper.integrations.storage import RANGE_PAGE
from statekeeper.state import StateConfig, StateManager
from statekeeper_server.config import ServerConfig
from statekeeper_server.server import StatekeeperServer

from tests.agent_stores import auth_server, calls, manager, tenant_config
from tests.programs import child_processes
from tests.servers import ServerProcess
from tests.test_metrics import scrape

__all__ = ["auth_server", "manager"]

APP = "my_app"


@pytest.fixture
def service(manager: StateManager) -> StatekeeperSessionService:
    return StatekeeperSessionService(manager)


def event(invocation: str = "inv", delta: dict[str, Any] | None = None, **fields: Any) -> Event:
    return Event(
        invocation_id=invocation,
        author="user",
        actions=EventActions(state_delta=delta or {}),
        **fields,
    )


async def fetch(service: BaseSessionService, user: str, sid: str, **config: Any) -> Any:
    got = await service.get_session(
        app_name=APP,
        user_id=user,
        session_id=sid,
        config=GetSessionConfig(**config) if config else None,
    )
    assert got is not None
    return got


# -- create, get, delete -----------------------------------------------------------------------


async def test_create_get_and_delete(service: StatekeeperSessionService) -> None:
    assert await service.get_session(app_name=APP, user_id="u", session_id="nope") is None
    session = await service.create_session(app_name=APP, user_id="u", state={"key": "value"})
    assert session.id and session.state == {"key": "value"} and session.events == []
    assert session.last_update_time <= time.time()
    assert await fetch(service, "u", session.id) == session
    await service.delete_session(app_name=APP, user_id="u", session_id=session.id)
    assert await service.get_session(app_name=APP, user_id="u", session_id=session.id) is None
    await service.delete_session(app_name=APP, user_id="u", session_id=session.id)  # no error


async def test_an_existing_id_is_refused_even_when_created_concurrently(
    service: StatekeeperSessionService,
) -> None:
    await service.create_session(app_name=APP, user_id="u", session_id="taken")
    with pytest.raises(AlreadyExistsError):
        await service.create_session(app_name=APP, user_id="u", session_id="taken")
    results = await asyncio.gather(
        *(service.create_session(app_name=APP, user_id="u", session_id="race") for _ in range(5)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, AlreadyExistsError) for r in results if isinstance(r, Exception))


async def test_padded_session_ids_are_stripped(service: StatekeeperSessionService) -> None:
    created = await service.create_session(app_name=APP, user_id="u", session_id="  s1 ")
    assert created.id == "s1"
    assert (await fetch(service, "u", " s1 ")).id == "s1"
    await service.delete_session(app_name=APP, user_id="u", session_id=" s1  ")
    assert await service.get_session(app_name=APP, user_id="u", session_id="s1") is None


async def test_sessions_belong_to_their_user_and_ids_never_collide(
    service: StatekeeperSessionService,
) -> None:
    s1 = await service.create_session(app_name=APP, user_id="u1", session_id="s1")
    await service.append_event(s1, event())
    await service.create_session(app_name=APP, user_id="u2", session_id="s1")
    assert (await fetch(service, "u2", "s1")).events == []
    for odd in ["a/b", "a*", "a?", "[x]", "%2F", "ü"]:
        await service.create_session(app_name=odd, user_id=odd, session_id=odd, state={"k": odd})
        got = await service.get_session(app_name=odd, user_id=odd, session_id=odd)
        assert got is not None and got.state == {"k": odd}
    assert await service.get_session(app_name="a", user_id="a/b", session_id="a/b") is None


# -- state scopes and delta semantics ----------------------------------------------------------


async def test_app_user_session_and_temp_scopes(service: StatekeeperSessionService) -> None:
    s1 = await service.create_session(
        app_name=APP,
        user_id="u1",
        session_id="s1",
        state={"app:k1": "a1", "user:k1": "u1", "sk1": "s1", "temp:t": "gone"},
    )
    assert s1.state == {"app:k1": "a1", "user:k1": "u1", "sk1": "s1"}
    await service.append_event(
        s1, event(delta={"app:k2": "a2", "user:k2": "u2", "sk2": "s2", "temp:k": "t"})
    )
    # temp state is visible in the running session, never stored.
    assert s1.state["temp:k"] == "t"
    got = await fetch(service, "u1", "s1")
    assert got.state == {
        "app:k1": "a1",
        "app:k2": "a2",
        "user:k1": "u1",
        "user:k2": "u2",
        "sk1": "s1",
        "sk2": "s2",
    }
    assert got.events[0].actions.state_delta == {"app:k2": "a2", "user:k2": "u2", "sk2": "s2"}
    # Another session of the same user sees app and user state; another user only app state.
    same_user = await service.create_session(app_name=APP, user_id="u1", session_id="s1b")
    assert same_user.state == {"app:k1": "a1", "app:k2": "a2", "user:k1": "u1", "user:k2": "u2"}
    other = await service.create_session(app_name=APP, user_id="u2", session_id="s2")
    assert other.state == {"app:k1": "a1", "app:k2": "a2"}
    assert await service.get_user_state(app_name=APP, user_id="u1") == {"k1": "u1", "k2": "u2"}
    assert await service.get_user_state(app_name=APP, user_id="nobody") == {}
    other_app = await service.create_session(app_name="other", user_id="u1")
    assert other_app.state == {}


async def test_a_delta_replaces_values_and_stores_none(service: StatekeeperSessionService) -> None:
    session = await service.create_session(
        app_name=APP,
        user_id="u",
        session_id="s",
        state={"cfg": {"a": 1, "b": 2}, "app:cfg": {"a": 1, "b": 2}, "user:cfg": [1, 2]},
    )
    await service.append_event(
        session, event(delta={"cfg": {"a": 3}, "app:cfg": {"b": None}, "user:cfg": None, "n": None})
    )
    got = await fetch(service, "u", "s")
    assert got.state == {"cfg": {"a": 3}, "app:cfg": {"b": None}, "user:cfg": None, "n": None}
    assert session.state == got.state


async def test_concurrent_sessions_never_lose_app_or_user_state(
    service: StatekeeperSessionService,
) -> None:
    sessions = [
        await service.create_session(app_name=APP, user_id="u", session_id=f"s{n}")
        for n in range(12)
    ]
    await asyncio.gather(
        *(
            service.append_event(s, event(delta={f"app:k{n}": n, f"user:k{n}": n}))
            for n, s in enumerate(sessions)
        )
    )
    state = (await fetch(service, "u", "s0")).state
    assert {k: v for k, v in state.items() if k.startswith("app:")} == {
        f"app:k{n}": n for n in range(12)
    }
    assert await service.get_user_state(app_name=APP, user_id="u") == {
        f"k{n}": n for n in range(12)
    }


# -- events ------------------------------------------------------------------------------------


async def test_events_round_trip_whole(service: StatekeeperSessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    image = types.Content(
        role="user", parts=[types.Part.from_bytes(data=b"\x00\xffimage", mime_type="image/png")]
    )
    await service.append_event(session, event(content=image))
    await service.append_event(
        session,
        Event(
            invocation_id="inv2",
            author="agent",
            content=types.Content(role="model", parts=[types.Part(text="hello")]),
            turn_complete=True,
            actions=EventActions(transfer_to_agent="other", escalate=True, artifact_delta={"f": 0}),
            long_running_tool_ids={"tool1"},
            error_code="code",
            usage_metadata=types.GenerateContentResponseUsageMetadata(
                prompt_token_count=1, candidates_token_count=1, total_token_count=2
            ),
            custom_metadata={"k": "v"},
        ),
    )
    got = await fetch(service, "u", session.id)
    assert got == session
    assert got.events[0].content == image


async def test_partial_events_are_not_stored(service: StatekeeperSessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    await service.append_event(session, Event(author="user", partial=True))
    assert session.events == [] and (await fetch(service, "u", session.id)).events == []


async def test_append_to_an_unknown_session_fails(service: StatekeeperSessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    await service.delete_session(app_name=APP, user_id="u", session_id=session.id)
    with pytest.raises(SessionNotFoundError):
        await service.append_event(session, event())


async def test_get_session_filters_recent_events(service: StatekeeperSessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    for n in range(1, 6):
        await service.append_event(session, Event(author="user", timestamp=n))
    sid = session.id
    assert [e.timestamp for e in (await fetch(service, "u", sid)).events] == [1, 2, 3, 4, 5]
    assert [e.timestamp for e in (await fetch(service, "u", sid, num_recent_events=3)).events] == [
        3,
        4,
        5,
    ]
    assert (await fetch(service, "u", sid, num_recent_events=0)).events == []
    assert [e.timestamp for e in (await fetch(service, "u", sid, after_timestamp=4.0)).events] == [
        4,
        5,
    ]
    assert (await fetch(service, "u", sid, after_timestamp=50.0)).events == []
    both = await fetch(service, "u", sid, num_recent_events=3, after_timestamp=4.0)
    assert [e.timestamp for e in both.events] == [4, 5]
    assert [e.timestamp for e in (await fetch(service, "u", sid, num_recent_events=9)).events] == [
        1,
        2,
        3,
        4,
        5,
    ]


async def test_last_update_time_follows_the_event(service: StatekeeperSessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    later = session.last_update_time + 10
    await service.append_event(session, event(timestamp=later))
    assert session.last_update_time == pytest.approx(later, abs=1e-6)
    assert (await fetch(service, "u", session.id)).last_update_time == pytest.approx(
        later, abs=1e-6
    )


# -- revision guard and idempotency ------------------------------------------------------------


async def test_a_stale_writer_gets_stale_session_error_and_writes_nothing(
    service: StatekeeperSessionService,
) -> None:
    original = await service.create_session(app_name=APP, user_id="u")
    await service.append_event(original, event("inv1", {"sk1": "v1"}))
    updated = await fetch(service, "u", original.id)
    await service.append_event(updated, event("inv2", {"sk2": "v2"}))
    with pytest.raises(StaleSessionError):
        await service.append_event(original, event("inv3", {"sk3": "v3"}, content=None))
    stored = await fetch(service, "u", original.id)
    assert [e.invocation_id for e in stored.events] == ["inv1", "inv2"]
    assert "sk3" not in stored.state
    # The documented recovery: reload, then append again.
    await service.append_event(stored, event("inv3", {"sk3": "v3"}))
    assert [e.invocation_id for e in (await fetch(service, "u", original.id)).events] == [
        "inv1",
        "inv2",
        "inv3",
    ]


async def test_of_two_concurrent_writers_of_one_revision_one_wins(
    service: StatekeeperSessionService,
) -> None:
    created = await service.create_session(app_name=APP, user_id="u")
    copies = [await fetch(service, "u", created.id) for _ in range(4)]
    results = await asyncio.gather(
        *(service.append_event(c, event(f"inv{n}", {"who": n})) for n, c in enumerate(copies)),
        return_exceptions=True,
    )
    winners = [n for n, r in enumerate(results) if not isinstance(r, Exception)]
    assert len(winners) == 1
    assert all(isinstance(r, StaleSessionError) for r in results if isinstance(r, Exception))
    stored = await fetch(service, "u", created.id)
    assert [e.invocation_id for e in stored.events] == [f"inv{winners[0]}"]
    assert stored.state == {"who": winners[0]}


async def test_a_hand_built_session_is_checked_against_the_last_event(
    service: StatekeeperSessionService,
) -> None:
    from google.adk.sessions import Session

    created = await service.create_session(app_name=APP, user_id="u", session_id="hand")
    first = event("inv1", timestamp=created.last_update_time + 1)
    await service.append_event(created, first)
    current = Session(id="hand", app_name=APP, user_id="u", events=[first], last_update_time=0)
    await service.append_event(current, event("inv2", timestamp=created.last_update_time + 2))
    behind = Session(id="hand", app_name=APP, user_id="u", events=[first], last_update_time=0)
    with pytest.raises(StaleSessionError):
        await service.append_event(behind, event("inv3"))


async def test_appending_the_same_event_again_changes_nothing(
    service: StatekeeperSessionService,
) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    before = session.model_copy(deep=True)
    once = event("inv1", {"counter": 1, "app:hits": 1})
    await service.append_event(session, once)
    # The same call again (a retry after a lost answer), from the session or its old copy.
    await service.append_event(session, once)
    await service.append_event(before, once.model_copy(deep=True))
    stored = await fetch(service, "u", session.id)
    assert [e.id for e in stored.events] == [once.id]
    assert stored.state == {"counter": 1, "app:hits": 1}


# -- listing -----------------------------------------------------------------------------------


async def test_list_is_ordered_by_last_update_with_merged_state(
    service: StatekeeperSessionService,
) -> None:
    base = time.time()
    for user, sid in [("u1", "a"), ("u1", "b"), ("u2", "c")]:
        await service.create_session(
            app_name=APP, user_id=user, session_id=sid, state={"key": sid, f"user:{user}": 1}
        )
    a = await fetch(service, "u1", "a")
    await service.append_event(a, event(timestamp=base + 100, delta={"app:shared": True}))
    mine = (await service.list_sessions(app_name=APP, user_id="u1")).sessions
    assert [s.id for s in mine] == ["b", "a"]
    assert mine[1].state == {"key": "a", "user:u1": 1, "app:shared": True}
    assert all(s.events == [] for s in mine)
    everyone = (await service.list_sessions(app_name=APP)).sessions
    assert [(s.user_id, s.id) for s in everyone] == [("u1", "b"), ("u2", "c"), ("u1", "a")]
    assert everyone[1].state == {"key": "c", "user:u2": 1, "app:shared": True}
    assert (await service.list_sessions(app_name=APP, user_id="")).sessions == []
    assert (await service.list_sessions(app_name="none")).sessions == []
    await service.delete_session(app_name=APP, user_id="u1", session_id="a")
    assert [s.id for s in (await service.list_sessions(app_name=APP)).sessions] == ["b", "c"]


async def test_listing_thousands_of_sessions(manager: StateManager) -> None:
    if manager.config.backend == "grpc":
        count = 600  # the same paths; fewer round trips over the network
    else:
        count = 3000
    service = StatekeeperSessionService(manager)
    for n in range(count):
        await service.create_session(
            app_name="big", user_id=f"user{n % 7}", session_id=f"s{n:05d}", state={"n": n}
        )
    listed = (await service.list_sessions(app_name="big")).sessions
    assert len(listed) == count
    times = [s.last_update_time for s in listed]
    assert times == sorted(times)
    assert {s.state["n"] for s in listed} == set(range(count))
    of_one = (await service.list_sessions(app_name="big", user_id="user3")).sessions
    assert [s.state["n"] for s in of_one] == [n for n in range(count) if n % 7 == 3]


async def test_listing_reads_one_range_page_per_round_trip() -> None:
    server = StatekeeperServer(ServerConfig(backend="memory", port=0, metrics_port=0))
    await server.start()
    try:
        async with StateManager(
            StateConfig(backend="grpc", address=f"127.0.0.1:{server.port}")
        ) as manager:
            service = StatekeeperSessionService(manager)
            for n in range(RANGE_PAGE + 1):
                await service.create_session(
                    app_name="big", user_id="u", session_id=f"s{n:05d}", state={"n": n}
                )
            await service.create_session(app_name="big", user_id="v", session_id="x")
            assert server.metrics_port is not None

            async def calls_of(**listing: Any) -> tuple[list[Session], dict[str, float]]:
                before = await asyncio.to_thread(scrape, server.metrics_port)
                listed = (await service.list_sessions(app_name="big", **listing)).sessions
                after = await asyncio.to_thread(scrape, server.metrics_port)
                counts = {
                    method: calls(after, method) - calls(before, method)
                    for method in ("Range", "Get", "ListKeys")
                }
                return listed, counts

            listed, counts = await calls_of(user_id="u")
            assert [s.state["n"] for s in listed] == list(range(RANGE_PAGE + 1))
            # Two index pages, the app state and the user state: no session head is read.
            assert counts == {"Range": 2, "Get": 2, "ListKeys": 0}
            listed, counts = await calls_of()
            assert [(s.user_id, s.id) for s in listed][-2:] == [
                ("u", f"s{RANGE_PAGE:05d}"),
                ("v", "x"),
            ]
            # The users' states (one page), two index pages and the app state.
            assert counts == {"Range": 3, "Get": 1, "ListKeys": 0}
    finally:
        await server.stop(0)


async def test_a_listed_session_carries_its_revision(service: StatekeeperSessionService) -> None:
    await service.create_session(app_name=APP, user_id="u", session_id="s")
    (listed,) = (await service.list_sessions(app_name=APP, user_id="u")).sessions
    await service.append_event(listed, event("inv1", {"n": 1}))  # the stored revision: fresh
    (copy,) = (await service.list_sessions(app_name=APP)).sessions
    assert copy.state == {"n": 1}
    await service.append_event(await fetch(service, "u", "s"), event("inv2", {"n": 2}))
    with pytest.raises(StaleSessionError):  # listed before the second append
        await service.append_event(copy, event("inv3", {"n": 3}))
    assert (await fetch(service, "u", "s")).state == {"n": 2}


# -- large sessions ----------------------------------------------------------------------------


async def test_deleting_a_large_session_removes_every_key(
    service: StatekeeperSessionService, manager: StateManager
) -> None:
    session = await service.create_session(app_name=APP, user_id="u", session_id="long")
    await service.create_session(app_name=APP, user_id="u", session_id="long2")
    for n in range(300):  # more keys than one transaction may hold
        await service.append_event(session, event(f"inv{n}", {"n": n}))
    assert len((await fetch(service, "u", "long")).events) == 300
    assert len((await fetch(service, "u", "long", num_recent_events=5)).events) == 5
    await service.delete_session(app_name=APP, user_id="u", session_id="long")
    assert await manager.list_keys("adk/event/my_app/u/long/*") == []
    assert await manager.list_keys("adk/*long[!2]*") == []
    again = await service.create_session(app_name=APP, user_id="u", session_id="long")
    assert (await fetch(service, "u", again.id)).events == []
    assert await service.get_session(app_name=APP, user_id="u", session_id="long2") is not None


async def test_tenants_do_not_see_each_others_sessions(auth_server: StatekeeperServer) -> None:
    async with (
        StateManager(tenant_config(auth_server, "agents-a", "team-a")) as team_a,
        StateManager(tenant_config(auth_server, "agents-b", "team-b")) as team_b,
    ):
        a, b = StatekeeperSessionService(team_a), StatekeeperSessionService(team_b)
        await a.create_session(app_name=APP, user_id="u", session_id="s", state={"app:x": 1})
        assert await b.get_session(app_name=APP, user_id="u", session_id="s") is None
        assert (await b.list_sessions(app_name=APP)).sessions == []
        created = await b.create_session(app_name=APP, user_id="u", session_id="s")
        assert created.state == {}


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from google.adk.errors import StaleSessionError
    from google.adk.events.event import Event
    from google.adk.events.event_actions import EventActions
    from statekeeper.state import StateConfig, StateManager
    from statekeeper.integrations.adk import StatekeeperSessionService

    async def main(address, name, count):
        async with StateManager(StateConfig(backend="grpc", address=address)) as manager:
            service = StatekeeperSessionService(manager)
            session = await service.get_session(app_name="app", user_id="u", session_id="shared")
            stale = 0
            for n in range(count):
                while True:
                    try:
                        await service.append_event(session, Event(
                            invocation_id=f"{name}{n}", author="user",
                            actions=EventActions(state_delta={name: n, f"app:{name}": n})))
                        break
                    except StaleSessionError:
                        stale += 1
                        session = await service.get_session(
                            app_name="app", user_id="u", session_id="shared")
            print(stale)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_writers_in_two_processes_on_two_servers(
    redis_instances: list[ServerProcess],
) -> None:
    addresses = [server.address for server in redis_instances]
    async with StateManager(StateConfig(backend="grpc", address=addresses[0])) as manager:
        service = StatekeeperSessionService(manager)
        await service.create_session(app_name="app", user_id="u", session_id="shared")
        async with child_processes(
            [
                (sys.executable, "-c", WRITER, address, name, "40")
                for address, name in zip(addresses, ("p", "q"), strict=True)
            ],
            stdout=asyncio.subprocess.PIPE,
        ) as writers:
            outputs = [await writer.communicate() for writer in writers]
        assert [writer.returncode for writer in writers] == [0, 0]
        stored = await service.get_session(app_name="app", user_id="u", session_id="shared")
    assert stored is not None
    assert len(stored.events) == 80 and len({e.id for e in stored.events}) == 80
    for name in ("p", "q"):
        own = [int(e.invocation_id[1:]) for e in stored.events if e.invocation_id[0] == name]
        assert own == list(range(40))
        assert stored.state[name] == 39 and stored.state[f"app:{name}"] == 39
    assert all(int(out.strip()) >= 0 for out, _ in outputs)


# -- an ADK Runner end to end ------------------------------------------------------------------


class ScriptedModel(BaseLlm):
    """Answers from a script: first a call of the ``remember`` tool, then text that quotes
    how many contents (history) the request carried."""

    model: str = "scripted"
    requests: list[LlmRequest] = []

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        self.requests.append(llm_request)
        last = llm_request.contents[-1]
        if last.role == "user" and last.parts and last.parts[0].text:
            call = types.FunctionCall(name="remember", args={"fact": last.parts[0].text})
            yield LlmResponse(
                content=types.Content(role="model", parts=[types.Part(function_call=call)])
            )
            return
        text = f"noted ({len(llm_request.contents)} contents)"
        yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]))


def remember(fact: str, tool_context: ToolContext) -> dict[str, Any]:
    """Remember a fact for this user."""
    facts = list(tool_context.state.get("user:facts", []))
    tool_context.state["user:facts"] = [*facts, fact]
    tool_context.state["temp:scratch"] = fact
    tool_context.state["last"] = fact
    return {"stored": len(facts) + 1}


async def run_turn(runner: Runner, user: str, sid: str, text: str) -> list[Event]:
    message = types.Content(role="user", parts=[types.Part(text=text)])
    return [e async for e in runner.run_async(user_id=user, session_id=sid, new_message=message)]


async def test_an_adk_runner_keeps_its_session_in_statekeeper(manager: StateManager) -> None:
    model = ScriptedModel(requests=[])
    agent = LlmAgent(name="assistant", model=model, instruction="Remember facts.", tools=[remember])
    service = StatekeeperSessionService(manager)
    session = await service.create_session(app_name=APP, user_id="u")
    runner = Runner(agent=agent, app_name=APP, session_service=service)
    first = await run_turn(runner, "u", session.id, "the sky is blue")
    assert first[-1].content.parts[0].text.startswith("noted")
    # A second runner over a fresh service (as a restarted worker) continues the session.
    again = Runner(agent=agent, app_name=APP, session_service=StatekeeperSessionService(manager))
    second = await run_turn(again, "u", session.id, "grass is green")
    assert second[-1].content.parts[0].text == "noted (7 contents)"
    stored = await fetch(service, "u", session.id)
    # user message, tool call, tool response, answer: twice.
    assert len(stored.events) == 8
    assert [e.author for e in stored.events[:4]] == ["user", "assistant", "assistant", "assistant"]
    assert stored.state["user:facts"] == ["the sky is blue", "grass is green"]
    assert stored.state["last"] == "grass is green"
    assert "temp:scratch" not in stored.state
    assert await service.get_user_state(app_name=APP, user_id="u") == {
        "facts": ["the sky is blue", "grass is green"]
    }
    other = await service.create_session(app_name=APP, user_id="u")
    assert other.state == {"user:facts": ["the sky is blue", "grass is green"]}


async def test_listing_reads_index_entries_written_before_they_held_the_listed_form(
    service: StatekeeperSessionService, manager: StateManager
) -> None:
    """Index entries of the earlier layout held only the ids: the listing reads those heads."""
    for user, sid in [("u1", "a"), ("u2", "b")]:
        await service.create_session(app_name=APP, user_id=user, session_id=sid, state={"k": sid})
    old_form = {
        entry.key: {"user_id": entry.value["user_id"], "session_id": entry.value["session_id"]}
        async for prefix in _index_prefixes(service)
        async for entry in manager.range(prefix)
    }
    assert len(old_form) == 4  # two indexes per session
    await manager.transaction(put=old_form)
    everyone = (await service.list_sessions(app_name=APP)).sessions
    assert [(s.user_id, s.id, s.state) for s in everyone] == [
        ("u1", "a", {"k": "a"}),
        ("u2", "b", {"k": "b"}),
    ]
    mine = (await service.list_sessions(app_name=APP, user_id="u2")).sessions
    assert [(s.id, s.state) for s in mine] == [("b", {"k": "b"})]
    await service.append_event(mine[0], event(delta={"k": "new"}))  # the revision is the head's


async def _index_prefixes(service: StatekeeperSessionService) -> Any:
    for index in ("recent/", "recent-app/"):
        yield f"{service.key_prefix}{index}"
