"""``StatekeeperSaver``: a LangGraph checkpointer (``BaseCheckpointSaver``) kept in statekeeper.

Swap it in where ``InMemorySaver``, ``SqliteSaver`` or ``PostgresSaver`` was::

    saver = StatekeeperSaver(StateManager(StateConfig(backend="grpc", address="localhost:50051")))
    graph = builder.compile(checkpointer=saver)

The keys are described in :mod:`~statekeeper.integrations.langgraph.layout`. A ``put`` writes
the new channel values and the checkpoint's record and moves the thread's head in one
transaction (when that is more than the transaction cap allows, the channel values go first,
in batches: values nothing refers to yet are harmless if the put is interrupted).

Options beyond LangGraph's contract:

- ``fencing=True``: two processes continuing one thread cannot fork it silently. Each
  ``get_tuple`` notes the revision of the thread's head it read in the returned config, which
  LangGraph hands to the run's ``put`` calls; a ``put`` succeeds only if its parent is the head
  now, or the head is still at the revision the run read (a deliberate fork from an older
  checkpoint: time travel), and it moves the head by compare-and-set on that revision.
  Otherwise it raises :class:`ThreadForkedError` (a ConflictError) and writes nothing. Pending
  writes are not fenced (LangGraph may store them after the next checkpoint).
- ``ttl`` (seconds): retention by age. Every checkpoint, its pending writes and the head expire
  ``ttl`` after they were written, so a thread keeps a sliding window of history and disappears
  ``ttl`` after its last step. A channel value lives ``2 * ttl`` and is written again by a later
  ``put`` that still refers to it once it is older than ``ttl``, so it outlives every
  checkpoint that refers to it.
- ``keep_last`` (count): retention by number. After each ``put`` only the newest ``keep_last``
  checkpoints of the thread's namespace stay, with their writes and the channel values they
  refer to.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from statekeeper.errors import ConflictError
from statekeeper.integrations.langgraph.bridge import LoopBridge
from statekeeper.integrations.langgraph.layout import Layout
from statekeeper.integrations.storage import DELETE_BATCH, delete_matching, get_entries
from statekeeper.state import StateEntry, StateManager
from statekeeper.state.state_manager import escape_glob

#: The key prefix of the saver's keys when none is given.
DEFAULT_KEY_PREFIX = "langgraph/"
#: The configurable key in which ``get_tuple`` notes the head revision it read (fencing).
HEAD_REVISION = "__statekeeper_head_revision"
_EMPTY = ("empty", b"")


class ThreadForkedError(ConflictError):
    """A fenced ``put`` found that another writer moved the thread on since this run read it;
    nothing was written. Read the thread again (``get_state``) and decide how to continue."""


def _typed(value: tuple[str, bytes]) -> list[Any]:
    """A serializer's ``(type, bytes)`` as a stored document (bytes stay binary)."""
    kind, data = value
    return [kind, data]


def _untyped(stored: Sequence[Any]) -> tuple[str, bytes]:
    return str(stored[0]), bytes(stored[1])


def _ids(config: RunnableConfig) -> tuple[str, str, str | None]:
    configurable = config["configurable"]
    return (
        str(configurable["thread_id"]),
        str(configurable.get("checkpoint_ns", "")),
        get_checkpoint_id(config),
    )


def _config(thread: str, ns: str, checkpoint_id: str, **extra: Any) -> RunnableConfig:
    configurable = {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}
    return {"configurable": {**configurable, **extra}}


class StatekeeperSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpoints of every thread, kept in statekeeper through ``manager``.

    ``manager`` is any :class:`~statekeeper.state.StateManager` (embedded or remote; its owner
    closes it). ``key_prefix`` starts every key; ``fencing``, ``ttl`` and ``keep_last`` are
    described in the module docstring. The synchronous methods run on the event loop the
    async methods last ran on (see :mod:`~statekeeper.integrations.langgraph.bridge`)."""

    def __init__(
        self,
        manager: StateManager,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        fencing: bool = False,
        ttl: float | None = None,
        keep_last: int | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        if keep_last is not None and keep_last < 1:
            raise ValueError("keep_last must be at least 1")
        self.manager = manager
        self.layout = Layout(key_prefix)
        self.fencing = fencing
        self.ttl = ttl
        self.keep_last = keep_last
        self._bridge = LoopBridge()

    # -- reading ------------------------------------------------------------------------------

    async def _read_all(self, prefix: str) -> list[tuple[str, Any]]:
        """``(key, document)`` of every key that starts with ``prefix``, in key order."""
        return [(entry.key, entry.value) async for entry in self.manager.range(prefix)]

    async def _delete_unused(self, prefix: str, used: set[str]) -> None:
        """Delete every key that starts with ``prefix`` except those in ``used``."""
        await delete_matching(self.manager, escape_glob(prefix) + "*", used.__contains__)

    async def _tuple(
        self, thread: str, ns: str, checkpoint_id: str, record: Mapping[str, Any], **extra: Any
    ) -> CheckpointTuple:
        """The checkpoint tuple of a stored record, with its channel values and writes."""
        checkpoint: Checkpoint = self.serde.loads_typed(_untyped(record["checkpoint"]))
        channels = list(checkpoint["channel_versions"].items())
        blobs, writes = await asyncio.gather(
            get_entries(
                self.manager, [self.layout.blob(thread, ns, ch, ver) for ch, ver in channels]
            ),
            self._read_all(self.layout.writes(thread, ns, checkpoint_id)),
        )
        values: dict[str, Any] = {}
        for (channel, _), blob in zip(channels, blobs, strict=True):
            if blob is not None and blob.value[0] != _EMPTY[0]:
                values[channel] = self.serde.loads_typed(_untyped(blob.value))
        ordered = sorted(
            (doc for _, doc in writes),
            key=lambda doc: writes_sort_key(doc["path"], doc["task"], doc["idx"]),
        )
        parent = record["parent"]
        return CheckpointTuple(
            config=_config(thread, ns, checkpoint_id, **extra),
            checkpoint={**checkpoint, "channel_values": values},
            metadata=self.serde.loads_typed(_untyped(record["metadata"])),
            parent_config=_config(thread, ns, parent) if parent else None,
            pending_writes=[
                (doc["task"], doc["channel"], self.serde.loads_typed(_untyped(doc["value"])))
                for doc in ordered
            ],
        )

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``, else the thread's newest),
        with its channel values and pending writes; None when there is none."""
        self._bridge.remember()
        thread, ns, checkpoint_id = _ids(config)
        extra: dict[str, Any] = {}
        if self.fencing:
            # The head first: the checkpoint loaded is the one at the revision noted.
            head = await self.manager.get_entry(self.layout.head(thread, ns))
            extra[HEAD_REVISION] = head.mod_revision if head is not None else 0
            if checkpoint_id is None:
                if head is None:
                    return None
                checkpoint_id = str(head.value["id"])
        if checkpoint_id is None:
            # The newest checkpoint is the last key of the namespace: one reverse range read.
            prefix = self.layout.thread("ckpt", thread, ns)
            async for newest in self.manager.range(prefix, reverse=True, limit=1):
                _, _, found = self.layout.parts("ckpt", newest.key)
                return await self._tuple(thread, ns, found, newest.value)
            return None
        record = await self.manager.get(self.layout.checkpoint(thread, ns, checkpoint_id))
        if record is None:
            return None
        return await self._tuple(thread, ns, checkpoint_id, record, **extra)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first: of ``config``'s thread (and namespace, when it names one;
        every thread when ``config`` is None), older than ``before``'s checkpoint, whose
        metadata has every ``filter`` item, at most ``limit``."""
        self._bridge.remember()
        configurable = config["configurable"] if config else {}
        thread = configurable.get("thread_id")
        ns = configurable.get("checkpoint_ns")
        only = configurable.get("checkpoint_id")
        before_id = get_checkpoint_id(before) if before else None
        layout = self.layout
        if thread is None:
            prefix = layout.thread("ckpt")
        else:
            prefix = layout.thread("ckpt", str(thread), None if ns is None else str(ns))
        # One namespace: its checkpoints are one key range, newest last; `before` ends it.
        one_range = thread is not None and ns is not None
        end = layout.checkpoint(str(thread), str(ns), before_id) if one_range and before_id else ""
        exact = one_range and not filter and not only
        remaining = limit
        records = self.manager.range(
            prefix,
            end=end,
            reverse=True,
            limit=limit if exact else None,
            page_size=min(limit or 100, 100),
        )
        async for entry in records:
            t, n, cid = layout.parts("ckpt", entry.key)
            if (ns is not None and n != ns) or (only and cid != only):
                continue
            if before_id and cid >= before_id:
                continue
            if filter:
                metadata = self.serde.loads_typed(_untyped(entry.value["metadata"]))
                if any(metadata.get(k) != v for k, v in filter.items()):
                    continue
            yield await self._tuple(t, n, cid, entry.value)
            if remaining is not None:
                remaining -= 1
                if remaining <= 0:
                    return

    # -- writing ------------------------------------------------------------------------------

    async def _fence(
        self, config: RunnableConfig, head: StateEntry | None, parent: str | None
    ) -> int:
        """The head revision a fenced put compares against, or ThreadForkedError."""
        head_id = None if head is None else head.value["id"]
        revision = 0 if head is None else int(head.mod_revision)
        if parent == head_id or config["configurable"].get(HEAD_REVISION) == revision:
            return revision
        thread, ns, _ = _ids(config)
        raise ThreadForkedError(
            f"thread {thread!r} (namespace {ns!r}) moved on to checkpoint {head_id} since this "
            f"run read it; this run's checkpoint would fork it from {parent}"
        )

    async def _put_batches(self, documents: Mapping[str, Any], ttl: float | None) -> None:
        items = list(documents.items())
        for start in range(0, len(items), DELETE_BATCH):
            await self.manager.transaction(put=dict(items[start : start + DELETE_BATCH]), ttl=ttl)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store ``checkpoint`` (a child of ``config``'s checkpoint) with the channel values of
        ``new_versions`` and make it the thread's head; returns the config that names it."""
        self._bridge.remember()
        thread, ns, parent = _ids(config)
        layout = self.layout
        checkpoint_id = str(checkpoint["id"])
        head = None
        if self.fencing or self.ttl:
            head = await self.manager.get_entry(layout.head(thread, ns))
        compare = {}
        if self.fencing:
            compare[layout.head(thread, ns)] = await self._fence(config, head, parent)
        blob = functools.partial(self._blob, checkpoint["channel_values"])
        blobs = {layout.blob(thread, ns, ch, ver): blob(ch) for ch, ver in new_versions.items()}
        head_doc: dict[str, Any] = {"id": checkpoint_id}
        if self.ttl:
            head_doc["blobs"] = self._refresh(
                thread, ns, checkpoint, new_versions, head, blob, blobs
            )
        final: dict[str, Any] = {
            layout.checkpoint(thread, ns, checkpoint_id): self._record(
                config, checkpoint, metadata, parent
            ),
            layout.head(thread, ns): head_doc,
        }
        revision = await self._commit(thread, ns, compare, blobs, final)
        if self.keep_last is not None:
            await self._retain(thread, ns, self.keep_last)
        extra = {HEAD_REVISION: revision} if self.fencing else {}
        return _config(thread, ns, checkpoint_id, **extra)

    def _blob(self, values: Mapping[str, Any], channel: str) -> list[Any]:
        """The stored document of ``channel``'s value in ``values`` (empty when it has none)."""
        if channel not in values:
            return _typed(_EMPTY)
        return _typed(self.serde.dumps_typed(values[channel]))

    def _record(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        parent: str | None,
    ) -> dict[str, Any]:
        """A checkpoint's record: the checkpoint without its channel values (those are blobs),
        its metadata, its parent, the channel versions it refers to and its run id."""
        stored = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        full_metadata = get_checkpoint_metadata(config, metadata)
        return {
            "checkpoint": _typed(self.serde.dumps_typed(stored)),
            "metadata": _typed(self.serde.dumps_typed(full_metadata)),
            "parent": parent,
            "versions": {ch: str(ver) for ch, ver in checkpoint["channel_versions"].items()},
            "run_id": full_metadata.get("run_id"),
        }

    async def _commit(
        self,
        thread: str,
        ns: str,
        compare: dict[str, int],
        blobs: Mapping[str, Any],
        final: dict[str, Any],
    ) -> int:
        """Write ``blobs`` and then ``final`` (the record and the head) guarded by ``compare``:
        all in one transaction when they fit its cap and need no ttl of their own, else the
        blobs first in batches. Returns the revision; ThreadForkedError on a conflict."""
        if self.ttl is None and len(blobs) + len(final) + len(compare) <= DELETE_BATCH:
            final = {**blobs, **final}
        else:
            await self._put_batches(blobs, None if self.ttl is None else 2 * self.ttl)
        try:
            return await self.manager.transaction(compare=compare, put=final, ttl=self.ttl)
        except ConflictError:
            raise ThreadForkedError(
                f"thread {thread!r} (namespace {ns!r}) was changed by another writer while "
                "this checkpoint was stored; nothing was written"
            ) from None

    def _refresh(
        self,
        thread: str,
        ns: str,
        checkpoint: Checkpoint,
        new_versions: ChannelVersions,
        head: StateEntry | None,
        blob: Callable[[str], list[Any]],
        blobs: dict[str, Any],
    ) -> dict[str, list[Any]]:
        """With a ttl: add to ``blobs`` the unchanged channel values last written more than
        ``ttl`` ago, and return when each value the checkpoint refers to was last written."""
        assert self.ttl is not None
        now = time.time()
        previous = head.value.get("blobs", {}) if head is not None else {}
        written: dict[str, list[Any]] = {}
        for channel, version in checkpoint["channel_versions"].items():
            seen = previous.get(channel) or [None, 0.0]
            fresh = seen[0] == str(version) and now - seen[1] < self.ttl
            if channel not in new_versions and fresh:
                written[channel] = seen
                continue
            written[channel] = [str(version), now]
            if channel not in new_versions:
                blobs[self.layout.blob(thread, ns, channel, version)] = blob(channel)
        return written

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes on ``config``'s checkpoint (idempotent per task and
        write index: storing them again replaces them)."""
        self._bridge.remember()
        thread, ns, checkpoint_id = _ids(config)
        assert checkpoint_id is not None, "put_writes needs the config of a checkpoint"
        documents = {}
        for idx, (channel, value) in enumerate(writes):
            index = WRITES_IDX_MAP.get(channel, idx)
            documents[self.layout.write(thread, ns, checkpoint_id, task_id, index)] = {
                "task": task_id,
                "path": task_path,
                "idx": index,
                "channel": channel,
                "value": _typed(self.serde.dumps_typed(value)),
            }
        await self._put_batches(documents, self.ttl)

    # -- removing and copying -----------------------------------------------------------------

    async def adelete_thread(self, thread_id: str) -> None:
        """Remove every checkpoint, write and channel value of ``thread_id`` (the heads
        first, so an interrupted delete leaves nothing that get_tuple finds; run it again to
        finish)."""
        self._bridge.remember()
        for kind in ("head", "ckpt", "write", "blob"):
            await self.manager.delete_range(self.layout.thread(kind, str(thread_id)))

    async def _remove(self, thread: str, ns: str, doomed: set[str], ids: Iterable[str]) -> None:
        """Remove the checkpoints ``doomed`` of a namespace whose checkpoint ids are ``ids``,
        with their writes and every channel value no remaining checkpoint refers to."""
        layout = self.layout
        kept = sorted(set(ids) - doomed)
        head = await self.manager.get_entry(layout.head(thread, ns))
        if head is not None and head.value["id"] in doomed:
            if kept:
                await self.manager.save(
                    layout.head(thread, ns),
                    {"id": kept[-1]},
                    ttl=self.ttl,
                    expected_revision=head.mod_revision,
                )
            else:
                await self.manager.delete(layout.head(thread, ns))
        records = [layout.checkpoint(thread, ns, cid) for cid in sorted(doomed)]
        for start in range(0, len(records), DELETE_BATCH):
            await self.manager.transaction(delete=records[start : start + DELETE_BATCH])
        for cid in doomed:
            await self.manager.delete_range(layout.writes(thread, ns, cid))
        kept_records = await get_entries(
            self.manager, [layout.checkpoint(thread, ns, cid) for cid in kept]
        )
        referenced = {
            layout.blob(thread, ns, channel, version)
            for entry in kept_records
            if entry is not None
            for channel, version in entry.value["versions"].items()
        }
        await self._delete_unused(layout.thread("blob", thread, ns), referenced)

    async def _namespaces(self, thread: str) -> dict[str, list[str]]:
        """The checkpoint ids of each namespace of ``thread``."""
        found: dict[str, list[str]] = defaultdict(list)
        async for entry in self.manager.range(self.layout.thread("ckpt", thread), keys_only=True):
            _, ns, cid = self.layout.parts("ckpt", entry.key)
            found[ns].append(cid)
        return found

    async def _retain(self, thread: str, ns: str, keep: int) -> None:
        ids = sorted((await self._namespaces(thread)).get(ns, []))
        if len(ids) > keep:
            await self._remove(thread, ns, set(ids[:-keep]), ids)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``"keep_latest"``: keep only the newest checkpoint of each namespace of each thread
        (with its writes and values); ``"delete"``: remove the threads."""
        self._bridge.remember()
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}")
        for thread in thread_ids:
            if strategy == "delete":
                await self.adelete_thread(thread)
                continue
            for ns, ids in (await self._namespaces(str(thread))).items():
                ids.sort()
                await self._remove(str(thread), ns, set(ids[:-1]), ids)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Remove every checkpoint whose metadata's ``run_id`` is one of ``run_ids`` (of every
        thread), with its writes and the values no remaining checkpoint refers to."""
        self._bridge.remember()
        wanted = set(run_ids)
        if not wanted:
            return
        ids: dict[tuple[str, str], list[str]] = defaultdict(list)
        doomed: dict[tuple[str, str], set[str]] = defaultdict(set)
        async for entry in self.manager.range(self.layout.thread("ckpt"), page_size=1000):
            thread, ns, cid = self.layout.parts("ckpt", entry.key)
            ids[thread, ns].append(cid)
            if entry.value.get("run_id") in wanted:
                doomed[thread, ns].add(cid)
        for (thread, ns), cids in doomed.items():
            await self._remove(thread, ns, cids, ids[thread, ns])

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and value of one thread to another on the server (one
        range copy per kind of key; the heads last, so the target's newest checkpoint is
        complete when a fenced get_tuple finds it)."""
        self._bridge.remember()
        layout = self.layout
        for kind in ("blob", "write", "ckpt", "head"):
            await self.manager.copy_range(
                layout.thread(kind, str(source_thread_id)),
                layout.thread(kind, str(target_thread_id)),
            )

    # -- versions and the synchronous API ------------------------------------------------------

    def get_next_version(self, current: str | int | float | None, channel: None) -> str:
        """The version after ``current``: a zero-padded counter (so versions sort as strings)
        and a random suffix, so that two branches of a forked thread never store different
        values under one channel version."""
        number = 0 if current is None else int(str(current).split(".")[0])
        return f"{number + 1:032}.{secrets.randbits(52):016}"

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Synchronous :meth:`aget_tuple`."""
        return self._bridge.run(self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Synchronous :meth:`alist`."""
        yield from self._bridge.iterate(
            self.alist(config, filter=filter, before=before, limit=limit)
        )

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Synchronous :meth:`aput`."""
        return self._bridge.run(self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Synchronous :meth:`aput_writes`."""
        self._bridge.run(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        """Synchronous :meth:`adelete_thread`."""
        self._bridge.run(self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Synchronous :meth:`adelete_for_runs`."""
        self._bridge.run(self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Synchronous :meth:`acopy_thread`."""
        self._bridge.run(self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Synchronous :meth:`aprune`."""
        self._bridge.run(self.aprune(thread_ids, strategy=strategy))

    def close(self) -> None:
        """Stop the private loop of the synchronous methods (the manager stays open)."""
        self._bridge.close()


__all__ = ["DEFAULT_KEY_PREFIX", "HEAD_REVISION", "StatekeeperSaver", "ThreadForkedError"]
