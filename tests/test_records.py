"""The one read-modify-write mechanism and the typed record codec (engine/records.py)."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

import pytest
from statekeeper import values
from statekeeper.errors import ConflictError, FailedPreconditionError
from statekeeper_server.engine.domains.knowledge import (
    IndexingProgress,
    IndexingStatus,
    KnowledgeEngine,
    SourceState,
    SyncStatus,
)
from statekeeper_server.engine.records import Schema, Txn, scan, transact
from statekeeper_server.engine.storage.memory import MemoryBackend


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Leaf:
    name: str = ""
    colour: Colour | None = None


@dataclass
class Tree:
    id: str = ""
    leaves: list[Leaf] = field(default_factory=list)
    by_name: dict[str, Leaf] = field(default_factory=dict)
    count: int = 0
    note: str | None = None


TREE = Schema(Tree, version=2, upgrades={0: lambda d: {**d, "id": d.pop("key")}, 1: dict})


def test_schema_round_trips_nested_records_and_marks_the_version() -> None:
    tree = Tree("t", [Leaf("a", Colour.RED)], {"b": Leaf("b", Colour.BLUE)}, 3, None)
    packed = TREE.pack(tree)
    assert values.unpack(packed)["_v"] == 2
    assert values.unpack(packed)["leaves"] == [{"name": "a", "colour": "red"}]
    assert TREE.unpack(packed) == tree


def test_schema_lifts_old_versions_drops_unknown_keys_and_defaults_missing_ones() -> None:
    old = values.pack({"key": "t", "count": 2, "gone": True})
    assert TREE.unpack(old) == Tree(id="t", count=2)


async def test_commit_is_guarded_by_every_record_read_and_reruns_on_fresh_data() -> None:
    backend = MemoryBackend()
    counter = Schema(Tree)
    await backend.put("a", counter.pack(Tree("a", count=1)))
    runs = 0

    async def body(txn: Txn) -> int:
        nonlocal runs
        runs += 1
        record = await txn.get("a", counter)
        other = await txn.get("b", counter)  # absent: guarded as "still absent"
        assert record is not None and other is None
        if runs == 1:  # another writer changes what this attempt read
            await backend.put("a", counter.pack(Tree("a", count=10)))
        txn.put("a", Tree("a", count=record.count + 1), counter)
        return record.count

    assert await transact(backend, body) == 10
    assert runs == 2
    entry = await backend.get("a")
    assert entry is not None and counter.unpack(entry.value).count == 11


async def test_a_key_read_as_absent_guards_against_its_creation() -> None:
    backend = MemoryBackend()
    schema = Schema(Tree)

    async def body(txn: Txn) -> None:
        if await txn.get("new", schema) is None:
            await backend.put("new", schema.pack(Tree("other")))
            txn.put("new", Tree("mine"), schema)

    with pytest.raises(ConflictError):
        await transact(backend, body, attempts=1)
    entry = await backend.get("new")
    assert entry is not None and schema.unpack(entry.value).id == "other"


async def test_a_body_that_raises_writes_nothing() -> None:
    backend = MemoryBackend()
    revision = await backend.revision()

    async def body(txn: Txn) -> None:
        txn.put_raw("x", b"\x01")
        raise FailedPreconditionError("no")

    with pytest.raises(FailedPreconditionError):
        await transact(backend, body)
    assert await backend.revision() == revision and await backend.get("x") is None


async def test_concurrent_increments_lose_nothing() -> None:
    backend = MemoryBackend()
    schema = Schema(Tree)

    async def increment(txn: Txn) -> None:
        record = await txn.get("n", schema) or Tree("n")
        await asyncio.sleep(0)  # let the other writers interleave
        txn.put("n", Tree("n", count=record.count + 1), schema)

    await asyncio.gather(*(transact(backend, increment) for _ in range(50)))
    entry = await backend.get("n")
    assert entry is not None and schema.unpack(entry.value).count == 50


async def test_scan_reads_every_page() -> None:
    backend = MemoryBackend()
    for number in range(25):
        await backend.put(f"p/{number:03}", b"\x00")
    await backend.put("q/0", b"\x00")
    keys = [entry.key async for entry in scan(backend, "p/", page=4)]
    assert keys == [f"p/{number:03}" for number in range(25)]


async def test_knowledge_reads_records_written_before_typed_records() -> None:
    """A store written by the previous format (plain maps with short names) keeps opening."""
    backend = MemoryBackend()
    await backend.put(
        "kb/docs/progress",
        values.pack(
            {
                "kb": "docs",
                "status": "in_progress",
                "total": 10,
                "processed": 4,
                "failed": 1,
                "started": 100.0,
                "completed": None,
                "embeddings": None,
                "storage_bytes": 2048,
                "error": "",
                "updated": 200.0,
            }
        ),
    )
    await backend.put(
        "kb/docs/source/s1",
        values.pack(
            {
                "id": "s1",
                "kb": "docs",
                "status": "synced",
                "last_sync": 150.0,
                "synced": 7,
                "pending": 2,
                "error": "",
                "updated": 300.0,
            }
        ),
    )
    engine = KnowledgeEngine(backend)
    assert await engine.get_progress("docs") == IndexingProgress(
        knowledge_base_id="docs",
        status=IndexingStatus.IN_PROGRESS,
        total_documents=10,
        processed_documents=4,
        failed_documents=1,
        start_time=100.0,
        storage_bytes=2048,
        update_time=200.0,
    )
    sources, _ = await engine.list_sources("docs")
    assert sources == [
        SourceState("s1", "docs", SyncStatus.SYNCED, 150.0, 7, 2, "", 300.0),
    ]
    overview = await engine.overview("docs")
    assert (overview.total_documents, overview.documents_synced) == (4, 7)
    assert overview.last_update_time == 300.0
    # A later report within the same run may not go back, judged against the old record.
    with pytest.raises(FailedPreconditionError):
        await engine.update_progress(
            IndexingProgress("docs", IndexingStatus.IN_PROGRESS, 10, 3, 1, start_time=100.0)
        )
