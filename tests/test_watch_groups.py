"""Watch groups: streams of the same watch share one engine watch, responses are merged for a
member that is behind, and a member further behind than the window loses nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from statekeeper import values
from statekeeper.errors import InvalidArgumentError
from statekeeper.v1 import state_service_pb2 as pb
from statekeeper_server.engine.storage.memory import MemoryBackend
from statekeeper_server.runtime import Runtime
from statekeeper_server.servicers.batching import RESPONSE_OVERHEAD, field_bytes
from statekeeper_server.servicers.fanout import encoded_once
from statekeeper_server.servicers.state import StateServicer


@pytest.fixture
async def servicer() -> AsyncIterator[StateServicer]:
    runtime = Runtime(MemoryBackend())
    yield runtime.servicers["statekeeper.v1.StateService"]
    await runtime.close()


def watch(
    servicer: StateServicer, pattern: str = "k*", start_revision: int = 0
) -> AsyncIterator[pb.WatchResponse]:
    request = pb.WatchRequest(pattern=pattern, prev_kv=True, start_revision=start_revision)
    return servicer.Watch(request, None)


async def save(servicer: StateServicer, key: str, n: int) -> int:
    request = pb.SaveRequest(key=key, value=values.document_to_wire({"n": n}))
    return (await servicer.Save(request, None)).kv.mod_revision


def revisions(responses: list[pb.WatchResponse]) -> list[int]:
    return [event.kv.mod_revision for r in responses for event in r.events]


async def test_streams_of_the_same_watch_share_one_group_and_its_responses(servicer):
    first, second = watch(servicer), watch(servicer)
    other = watch(servicer, "other*")
    created = [await anext(first), await anext(second), await anext(other)]
    assert all(c.created for c in created)
    assert len(servicer._watch_groups) == 2

    revision = await save(servicer, "k1", 1)
    one, two = await anext(first), await anext(second)
    assert one is two
    assert revisions([one]) == [revision]
    assert values.wire_to_document(one.events[0].kv.value) == {"n": 1}

    for stream in (first, second, other):
        await stream.aclose()
    assert len(servicer._watch_groups) == 0


async def test_a_member_behind_gets_its_pending_changes_merged_into_one_message(servicer):
    leader, behind = watch(servicer), watch(servicer)
    await anext(leader), await anext(behind)
    written = []
    for i in range(3):
        written.append(await save(servicer, f"k{i}", i))
        assert revisions([await anext(leader)]) == written[-1:]

    merged = await anext(behind)
    assert revisions([merged]) == written
    assert merged.revision == written[-1]
    await leader.aclose(), await behind.aclose()


async def test_a_member_further_behind_than_the_window_loses_nothing(servicer):
    servicer._watch_groups.window = 4
    leader, behind = watch(servicer), watch(servicer)
    await anext(leader), await anext(behind)
    written = []
    for i in range(20):
        written.append(await save(servicer, f"k{i % 3}", i))
        assert revisions([await anext(leader)]) == written[-1:]

    caught_up: list[pb.WatchResponse] = []
    while revisions(caught_up) != written:
        caught_up.append(await anext(behind))
        assert len(revisions(caught_up)) <= len(written)
    # ...and it goes on receiving new changes after catching up.
    later = await save(servicer, "k9", 99)
    assert revisions([await anext(behind)]) == [later]
    await leader.aclose(), await behind.aclose()


async def test_a_member_joining_later_starts_after_the_groups_revision(servicer):
    early = watch(servicer)
    await anext(early)
    before = await save(servicer, "k1", 1)
    assert revisions([await anext(early)]) == [before]

    late = watch(servicer)
    created = await anext(late)
    assert created.created and created.revision == before
    after = await save(servicer, "k2", 2)
    assert revisions([await anext(late)]) == [after]
    assert revisions([await anext(early)]) == [after]
    await early.aclose(), await late.aclose()


async def test_a_bad_pattern_fails_every_stream_and_leaves_no_group(servicer):
    for _ in range(2):
        with pytest.raises(InvalidArgumentError):
            await anext(watch(servicer, "k[*"))
    assert len(servicer._watch_groups) == 0


async def test_a_stream_resuming_where_the_group_stands_joins_it(servicer):
    live = watch(servicer)
    await anext(live)
    written = []
    for i in range(3):
        written.append(await save(servicer, f"k{i}", i))
        assert revisions([await anext(live)]) == written[-1:]

    # Resuming after the second change: the group's window starts exactly there.
    resumed = watch(servicer, start_revision=written[1] + 1)
    assert (await anext(resumed)).created
    assert revisions([await anext(resumed)]) == written[2:]
    later = await save(servicer, "k9", 9)
    shared = await anext(live)
    assert await anext(resumed) is shared
    assert revisions([shared]) == [later]
    await live.aclose(), await resumed.aclose()


async def test_a_stream_resuming_before_the_window_reads_its_own_watch(servicer):
    servicer._watch_groups.window = 2
    early = await save(servicer, "k0", 0)
    live = watch(servicer)
    await anext(live)
    written = []
    for i in range(1, 6):
        written.append(await save(servicer, f"k{i}", i))
        assert revisions([await anext(live)]) == written[-1:]

    resumed = watch(servicer, start_revision=early)
    assert (await anext(resumed)).created
    got: list[pb.WatchResponse] = []
    while len(revisions(got)) < 1 + len(written):
        got.append(await anext(resumed))
    assert revisions(got) == [early, *written]
    later = await save(servicer, "k9", 9)
    assert revisions([await anext(resumed)]) == revisions([await anext(live)]) == [later]
    await live.aclose(), await resumed.aclose()


async def test_changes_during_a_hold_reach_every_member_as_one_shared_message(servicer):
    groups = servicer._watch_groups
    groups.hold_per_send, groups.max_hold_s = 1e9, 3600.0  # only a full message flushes early
    first, second = watch(servicer), watch(servicer)
    await anext(first), await anext(second)
    # After a quiet spell a change goes out at once.
    alone = await save(servicer, "k1", 1)
    sent = await anext(first)
    assert revisions([sent]) == [alone] and await anext(second) is sent

    # The next ones wait for the hold, unless what waits fills a message.
    groups.merge_bytes = 3 * field_bytes(sent.events[0].ByteSize()) + RESPONSE_OVERHEAD
    written = [await save(servicer, f"k{i}", i) for i in (2, 3, 4)]
    merged = await anext(first)
    assert revisions([merged]) == written and merged.revision == written[-1]
    assert await anext(second) is merged
    await first.aclose(), await second.aclose()


async def test_a_group_holds_longer_while_its_members_are_still_sending(servicer):
    groups = servicer._watch_groups
    groups.max_hold_s, groups.hold_per_send = 3600.0, 1e9
    first, second = watch(servicer), watch(servicer)
    await anext(first), await anext(second)
    # Nothing measured yet: each change goes out at once.
    for i in (1, 2):
        revision = await save(servicer, f"k{i}", i)
        sent = await anext(first)
        assert revisions([sent]) == [revision] and await anext(second) is sent
    # Neither member was back for more when the second change came: that flush measured the
    # time since the first as its cost, so the group now holds (here: until a message is full).
    groups.merge_bytes = 2 * field_bytes(sent.events[0].ByteSize()) + RESPONSE_OVERHEAD
    written = [await save(servicer, f"k{i}", i) for i in (3, 4)]
    merged = await anext(first)
    assert revisions([merged]) == written and await anext(second) is merged
    await first.aclose(), await second.aclose()


def test_a_shared_response_is_encoded_once_however_many_streams_send_it():
    encoded: list[pb.WatchResponse] = []

    def serialize(message: pb.WatchResponse) -> bytes:
        encoded.append(message)
        return message.SerializeToString()

    encode = encoded_once(serialize)
    shared, other = pb.WatchResponse(revision=7), pb.WatchResponse(revision=8)
    sent = [encode(shared) for _ in range(100)] + [encode(other), encode(shared)]
    assert encoded == [shared, other]
    assert pb.WatchResponse.FromString(sent[0]) == shared
    assert pb.WatchResponse.FromString(sent[100]) == other
