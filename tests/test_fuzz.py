"""Fuzzing: random requests to every RPC, and property tests over the public StateManager API.

* Random requests (structured messages with odd values, and raw random bytes decoded as each
  request type) go to every servicer of the registry in process, and a smaller sample over
  real gRPC: nothing crashes, a failure is only INVALID_ARGUMENT, NOT_FOUND,
  FAILED_PRECONDITION, RESOURCE_EXHAUSTED or ABORTED (a documented revision conflict), and a
  rejected request leaves the store exactly as it was.
* Property tests: random keys, values, patterns, revisions and TTLs behave as documented.
"""

from __future__ import annotations

import asyncio
import fnmatch
import math
import random
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from statekeeper.errors import (
    ConflictError,
    InvalidArgumentError,
    ResourceExhaustedError,
    StateKeeperError,
)
from statekeeper.state import StateConfig, StateManager
from statekeeper.v1 import common_pb2
from statekeeper.v1 import state_service_pb2 as pb
from statekeeper_server.engine.memory import MemoryBackend
from statekeeper_server.interceptors import Undecodable, check_decoded
from statekeeper_server.runtime import Runtime
from statekeeper_server.server import StatekeeperServer

from tests.protofuzz import Rpc, all_rpcs, random_message

#: The codes a bad request may get.
ALLOWED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    # Creating a record whose id is taken is a documented outcome of a create request.
    grpc.StatusCode.ALREADY_EXISTS,
}
RPCS = all_rpcs()
#: How long one streaming call may take to send its first message (a hang guard only).
STREAM_GUARD = 30.0


class _Context:
    """The servicer context of an in-process call."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def peer(self) -> str:
        return "fuzz"

    def cancelled(self) -> bool:
        return False


async def call_in_process(runtime: Runtime, rpc: Rpc, request: Any) -> grpc.StatusCode:
    """Call one RPC on the runtime's servicer; the status code it ends with."""
    method = getattr(runtime.servicers[rpc.service], rpc.name)
    try:
        check_decoded(request, rpc.path)  # what the server's interceptor does first
        if rpc.server_streaming:
            responses = method(request, _Context())
            try:
                await asyncio.wait_for(anext(responses), STREAM_GUARD)
            except StopAsyncIteration:
                pass
            finally:
                await responses.aclose()
        else:
            await method(request, _Context())
    except StateKeeperError as error:
        return error.code
    return grpc.StatusCode.OK


async def snapshot(runtime: Runtime) -> tuple[int, list[tuple[Any, ...]]]:
    """The store's revision and every entry."""
    page = await runtime.backend.range("", None, limit=10**9)
    return await runtime.backend.revision(), [
        (e.key, e.value, e.mod_revision, e.version, e.expire_at) for e in page.entries
    ]


async def seeded_runtime() -> Runtime:
    """A memory runtime with a few keys in it (so that a bad request has something to hit)."""
    runtime = Runtime(MemoryBackend())
    state = runtime.servicers["statekeeper.v1.StateService"]
    for key in ("a", "a1", "k1", "key/with/slash"):
        await state.Save(
            pb.SaveRequest(key=key, value=common_pb2.Value(msgpack=b"\x81\xa1n\x01")), _Context()
        )
    return runtime


def requests(rng: random.Random, count: int) -> Iterator[tuple[Rpc, Any]]:
    """``count`` random requests: structured odd messages and raw bytes decoded
    (:class:`Undecodable` when the bytes are not a message of that type)."""
    for _ in range(count):
        rpc = rng.choice(RPCS)
        if rng.random() < 0.5:
            yield rpc, random_message(rpc.request, rng)
            continue
        data = rng.randbytes(rng.randint(0, 48))
        try:
            yield rpc, rpc.request.FromString(data)
        except DecodeError as error:
            yield rpc, Undecodable(str(error))


class Tally:
    """Counts of the fuzz run."""

    def __init__(self) -> None:
        self.bad = 0
        self.ok = 0
        self.undecodable = 0
        self.codes: dict[str, int] = {}


async def fuzz_batch(runtime: Runtime, rng: random.Random, count: int, tally: Tally) -> Runtime:
    """Send ``count`` random requests; returns the runtime to go on with. Every write bumps
    the store revision, so a rejected request must leave the revision as it was; the whole
    store is compared at the end of a batch."""
    start = await snapshot(runtime)
    reset = False
    for rpc, request in requests(rng, count):
        if isinstance(request, Undecodable):
            tally.undecodable += 1
        before = await runtime.backend.revision()
        code = await call_in_process(runtime, rpc, request)
        tally.codes[code.name] = tally.codes.get(code.name, 0) + 1
        if code == grpc.StatusCode.OK:
            tally.ok += 1
            if await runtime.backend.revision() != before:
                # A valid write: start again from the seeded store.
                await runtime.close()
                runtime = await seeded_runtime()
                reset = True
            continue
        assert code in ALLOWED, f"{rpc.path} answered {code.name} for {request!r}"
        tally.bad += 1
        assert await runtime.backend.revision() == before, f"rejected {rpc.path} wrote"
    if not reset:
        assert await snapshot(runtime) == start
    return runtime


def test_ten_thousand_bad_requests_only_get_client_errors_and_change_nothing() -> None:
    tally = Tally()
    loop = asyncio.new_event_loop()
    try:
        state: dict[str, Runtime] = {"runtime": loop.run_until_complete(seeded_runtime())}
        seeded = loop.run_until_complete(snapshot(state["runtime"]))

        @settings(
            max_examples=110,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(seed=st.integers(min_value=0, max_value=2**32))
        def batch(seed: int) -> None:
            state["runtime"] = loop.run_until_complete(
                fuzz_batch(state["runtime"], random.Random(seed), 120, tally)
            )

        batch()
        runtime = state["runtime"]
        if loop.run_until_complete(runtime.backend.revision()) == seeded[0]:
            assert loop.run_until_complete(snapshot(runtime)) == seeded
        loop.run_until_complete(runtime.close())
    finally:
        loop.close()
    print(f"fuzz: {tally.bad} rejected, {tally.ok} ok, {tally.undecodable} undecodable")
    print(f"fuzz codes: {sorted(tally.codes.items())}")
    assert tally.bad >= 10_000


async def test_random_bad_requests_over_grpc_get_client_errors(
    server: StatekeeperServer, address: str
) -> None:
    """Raw random bytes and odd messages sent over a real channel, the request bytes exactly as
    a broken client would send them."""
    rng = random.Random(20261127)
    before = await snapshot(server.runtime)
    codes: dict[str, int] = {}
    async with grpc.aio.insecure_channel(address) as channel:
        for _ in range(400):
            rpc = rng.choice(RPCS)
            if rng.random() < 0.5:
                data = rng.randbytes(rng.randint(1, 48))
            else:
                data = random_message(rpc.request, rng).SerializeToString()
            if rpc.server_streaming:
                call = channel.unary_stream(rpc.path)(data)
                try:
                    await asyncio.wait_for(anext(aiter(call)), STREAM_GUARD)
                    code = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as error:
                    code = error.code()
                except StopAsyncIteration:
                    code = await call.code()
                finally:
                    call.cancel()
            else:
                try:
                    await channel.unary_unary(rpc.path)(data)
                    code = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as error:
                    code = error.code()
            codes[code.name] = codes.get(code.name, 0) + 1
            assert code == grpc.StatusCode.OK or code in ALLOWED, f"{rpc.path}: {code.name}"
            if code == grpc.StatusCode.OK and await server.runtime.backend.revision() != before[0]:
                before = await snapshot(server.runtime)  # a valid write; go on from here
    assert codes.get("INVALID_ARGUMENT", 0) > 0
    print(f"grpc fuzz codes: {sorted(codes.items())}")


async def test_undecodable_bytes_are_invalid_argument(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await channel.unary_unary("/statekeeper.v1.StateService/Get")(b"\xff\xff\xff")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid Get request" in (raised.value.details() or "")


# -- property tests over the public API -----------------------------------------------------

keys = st.text(min_size=1, max_size=40)
documents = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _valid_key(key: str) -> bool:
    return len(key.encode("utf-8", "surrogatepass")) <= 512 and not any(
        ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in key
    )


def run(coroutine: Any) -> Any:
    """Run one property example on a fresh event loop."""
    return asyncio.run(coroutine)


@PROPERTY_SETTINGS
@given(key=keys, value=documents)
def test_save_then_get_returns_the_value_or_rejects_the_key(key: str, value: Any) -> None:
    async def scenario() -> None:
        async with StateManager(StateConfig(backend=MemoryBackend())) as manager:  # type: ignore[arg-type]
            if not _valid_key(key):
                with pytest.raises(InvalidArgumentError):
                    await manager.save(key, value)
                return
            if not isinstance(value, dict):
                try:
                    await manager.save(key, value)
                except InvalidArgumentError:
                    return  # documents may be restricted to objects
            else:
                await manager.save(key, value)
            assert await manager.get(key) == value

    run(scenario())


@PROPERTY_SETTINGS
@given(
    saved=st.sets(st.text(alphabet="ab/:*?[]!-", min_size=1, max_size=6), max_size=12),
    pattern=st.text(alphabet="ab/:*?[]!-", min_size=1, max_size=6),
)
def test_list_keys_matches_fnmatch(saved: set[str], pattern: str) -> None:
    async def scenario() -> None:
        async with StateManager(StateConfig(backend=MemoryBackend())) as manager:  # type: ignore[arg-type]
            for key in saved:
                await manager.save(key, {"k": key})
            try:
                listed = await manager.list_keys(pattern)
            except InvalidArgumentError:
                # Only a pattern with an unclosed "[" set is refused.
                assert "[" in pattern
                return
            expected = sorted(k for k in saved if fnmatch.fnmatchcase(k, pattern))
            assert sorted(listed) == expected

    run(scenario())


@PROPERTY_SETTINGS
@given(writes=st.integers(min_value=1, max_value=4), offset=st.integers(-3, 3))
def test_expected_revision_is_compare_and_set(writes: int, offset: int) -> None:
    async def scenario() -> None:
        async with StateManager(StateConfig(backend=MemoryBackend())) as manager:  # type: ignore[arg-type]
            revision = 0
            for index in range(writes):
                revision = await manager.save("doc", {"n": index})
            guess = revision + offset
            if guess < 0:
                with pytest.raises(InvalidArgumentError):
                    await manager.save("doc", {"n": -1}, expected_revision=guess)
            elif offset != 0:
                with pytest.raises(ConflictError):
                    await manager.save("doc", {"n": -1}, expected_revision=guess)
                assert await manager.get("doc") == {"n": writes - 1}
            else:
                await manager.save("doc", {"n": -1}, expected_revision=guess)
                assert await manager.get("doc") == {"n": -1}

    run(scenario())


@PROPERTY_SETTINGS
@given(ttl=st.floats(allow_nan=True, allow_infinity=True) | st.none())
def test_ttl_is_positive_seconds_or_rejected(ttl: float | None) -> None:
    async def scenario() -> None:
        async with StateManager(StateConfig(backend=MemoryBackend())) as manager:  # type: ignore[arg-type]
            # A TTL below a nanosecond rounds to zero: "never expires".
            acceptable = ttl is None or (
                math.isfinite(ttl) and (abs(ttl) < 5e-10 or 0 < ttl <= 100 * 365 * 24 * 3600)
            )
            try:
                await manager.save("t", {"v": 1}, ttl=ttl)
            except (InvalidArgumentError, ResourceExhaustedError):
                assert not acceptable
                assert await manager.get("t") is None
                return
            assert acceptable
            if ttl is None or abs(ttl) < 5e-10 or ttl > 3600:
                assert await manager.get("t") == {"v": 1}

    run(scenario())
