"""The agent manager (the reference's ``AgentStateStore`` and ``AgentRecoveryManager``).

Records live in the ``agent/`` namespace (after the tenant prefix), one directory per agent::

    agent/<agent_id>/meta                        counters and the recovery status
    agent/<agent_id>/snap/<inverted sequence>     one snapshot
    agent/<agent_id>/ckpt/<inverted step>/<inverted sequence>   one checkpoint
    agent/<agent_id>/cid/<checkpoint_id>          pointer from a checkpoint id to its order key

``delete_agent`` removes the whole directory.

Every write of snapshots or checkpoints bumps a counter in ``meta`` and is committed in one
transaction guarded by ``meta``'s revision, so concurrent writers (also on other server
instances) are serialised by compare-and-set and retried, never by a local lock. Ids cannot
contain ``/``, so ``agent/a1/`` is never a prefix of agent ``a10``'s keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from statekeeper import values
from statekeeper.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError, Reason

from statekeeper_server.engine.domains.checkpoints import (
    check_count,
    check_step,
    checkpoint_not_found,
    newest_first,
    now,
    order_key,
    pack_record,
    prune_operations,
    sequence_key,
)
from statekeeper_server.engine.identifiers import check_id
from statekeeper_server.engine.limits import Limits, check_revision
from statekeeper_server.engine.records import (
    batch_size,
    count_removed,
    delete_all,
    delete_batch,
    retry_on_conflict,
)
from statekeeper_server.engine.storage.backend import (
    Backend,
    Compare,
    Delete,
    Entry,
    EventType,
    Operation,
    Put,
)
from statekeeper_server.engine.tenancy import tenant_prefix

#: The backend namespace of agent records.
NAMESPACE = "agent/"
#: The checkpoint id that means "the newest one" and so cannot be used as an id.
LATEST = "latest"
#: How many surplus entries one save reads to prune (more are pruned by later saves).
_PRUNE_SLACK = 64


@dataclass(frozen=True, slots=True)
class CheckpointEvent:
    """One update of a checkpoint watch: the created marker (no checkpoint) or a checkpoint."""

    revision: int
    checkpoint: dict[str, Any] | None


def _empty_meta() -> dict[str, Any]:
    return {
        "ckpt_seq": 0,
        "snap_seq": 0,
        "attempts": 0,
        "last_attempt": None,
        "last_checkpoint_id": "",
        "last_success": None,
        "recoveries": 0,
    }


class AgentEngine:
    """Snapshots, checkpoints and recovery attempts of agents."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        self.backend = backend
        self.limits = limits or Limits()

    @staticmethod
    def _dir(agent_id: str) -> str:
        return f"{tenant_prefix()}{NAMESPACE}{agent_id}/"

    async def _meta(self, base: str) -> tuple[dict[str, Any], int]:
        entry = await self.backend.get(base + "meta")
        if entry is None:
            return _empty_meta(), 0
        return {**_empty_meta(), **values.unpack(entry.value)}, entry.mod_revision

    def _meta_put(self, base: str, meta: dict[str, Any]) -> Put:
        return Put(base + "meta", pack_record(meta, self.limits, "meta"))

    # -- snapshots ----------------------------------------------------------------------------

    async def save_snapshot(self, snapshot: dict[str, Any], keep_latest: int = 0) -> dict[str, Any]:
        """Store a snapshot (fields of AgentSnapshot); returns it with id, sequence and time."""
        agent_id = check_id(snapshot.get("agent_id", ""), "snapshot.agent_id")
        check_count(keep_latest, "keep_latest")
        base = self._dir(agent_id)

        async def attempt() -> dict[str, Any]:
            meta, meta_revision = await self._meta(base)
            sequence = meta["snap_seq"] + 1
            meta["snap_seq"] = sequence
            record = {
                **snapshot,
                "snapshot_id": str(sequence),
                "sequence": sequence,
                "timestamp": snapshot.get("timestamp") or now(),
            }
            key = base + "snap/" + sequence_key(sequence)
            operations: list[Operation] = [
                self._meta_put(base, meta),
                Put(key, pack_record(record, self.limits, "snapshot")),
            ]
            if keep_latest > 0:
                page = await self.backend.range(base + "snap/", limit=keep_latest + _PRUNE_SLACK)
                fresh = Entry(key, b"", 0, 0, 0)
                entries = sorted([fresh, *page.entries], key=lambda e: e.key)
                operations.extend(prune_operations(entries, keep_latest, None, "", key))
            await self.backend.txn([Compare(base + "meta", meta_revision)], operations)
            return record

        return await retry_on_conflict(attempt)

    async def get_snapshot(self, agent_id: str, snapshot_id: str = "") -> dict[str, Any]:
        """One snapshot by id, or the newest; NOT_FOUND (SNAPSHOT_NOT_FOUND) when missing."""
        check_id(agent_id, "agent_id")
        check_id(snapshot_id, "snapshot_id", required=False)
        base = self._dir(agent_id)
        entry: Entry | None = None
        if snapshot_id:
            if snapshot_id.isdigit() and 0 < int(snapshot_id) < 10**19:
                entry = await self.backend.get(base + "snap/" + sequence_key(int(snapshot_id)))
        else:
            page = await self.backend.range(base + "snap/", limit=1)
            entry = page.entries[0] if page.entries else None
        if entry is None:
            which = f"snapshot {snapshot_id!r}" if snapshot_id else "no snapshot"
            raise NotFoundError(
                f"{which} of agent {agent_id!r} not found",
                reason=Reason.SNAPSHOT_NOT_FOUND,
                metadata={"agent_id": agent_id, "snapshot_id": snapshot_id},
            )
        record: dict[str, Any] = values.unpack(entry.value)
        return record

    async def list_snapshots(
        self, agent_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """One page of an agent's snapshots, newest first (empty for an unknown agent)."""
        check_id(agent_id, "agent_id")
        return await newest_first(
            self.backend, self._dir(agent_id) + "snap/", self.limits, page_size, page_token, True
        )

    # -- checkpoints --------------------------------------------------------------------------

    async def save_checkpoint(
        self, checkpoint: dict[str, Any], keep_latest: int = 0
    ) -> tuple[dict[str, Any], int]:
        """Store (or replace, by id) a checkpoint; returns it as stored and how many older
        checkpoints retention removed."""
        agent_id = check_id(checkpoint.get("agent_id", ""), "checkpoint.agent_id")
        checkpoint_id = check_id(checkpoint.get("checkpoint_id", ""), "checkpoint.checkpoint_id")
        if checkpoint_id == LATEST:
            raise InvalidArgumentError(
                f"checkpoint_id {LATEST!r} is reserved (it means the newest checkpoint)",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("checkpoint.checkpoint_id", "reserved")],
            )
        step = check_step(int(checkpoint.get("step", 0)), "checkpoint.step")
        check_count(keep_latest, "keep_latest")
        base = self._dir(agent_id)

        async def attempt() -> tuple[dict[str, Any], int]:
            meta, meta_revision = await self._meta(base)
            sequence = meta["ckpt_seq"] + 1
            meta["ckpt_seq"] = sequence
            record = {
                **checkpoint,
                "step": step,
                "sequence": sequence,
                "timestamp": checkpoint.get("timestamp") or now(),
            }
            operations, pruned = await checkpoint_operations(
                self.backend, self.limits, base, record, "checkpoint_id", keep_latest
            )
            await self.backend.txn(
                [Compare(base + "meta", meta_revision)], [self._meta_put(base, meta), *operations]
            )
            return record, pruned

        return await retry_on_conflict(attempt)

    async def get_checkpoint(
        self, agent_id: str, checkpoint_id: str = "", recoverable_only: bool = False
    ) -> dict[str, Any]:
        """One checkpoint by id, or the newest (recoverable) one; NOT_FOUND when missing."""
        check_id(agent_id, "agent_id")
        check_id(checkpoint_id, "checkpoint_id", required=False)
        base = self._dir(agent_id)
        record = await find_checkpoint(self.backend, base, checkpoint_id, recoverable_only)
        if record is None:
            raise checkpoint_not_found("agent", agent_id, checkpoint_id)
        return record

    async def list_checkpoints(
        self, agent_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """One page of an agent's checkpoints, newest first (empty for an unknown agent)."""
        check_id(agent_id, "agent_id")
        return await newest_first(
            self.backend, self._dir(agent_id) + "ckpt/", self.limits, page_size, page_token, False
        )

    async def watch_checkpoints(
        self, agent_id: str, start_revision: int = 0
    ) -> AsyncIterator[CheckpointEvent]:
        """The created marker, then every checkpoint the agent saves, in revision order."""
        check_id(agent_id, "agent_id")
        check_revision(start_revision, "start_revision")
        prefix = self._dir(agent_id) + "ckpt/"
        async for update in self.backend.watch(prefix, start_revision=start_revision):
            if not update.events:
                yield CheckpointEvent(update.revision, None)
                continue
            for event in update.events:
                if event.type is EventType.PUT and event.entry is not None:
                    yield CheckpointEvent(event.revision, values.unpack(event.entry.value))

    # -- recovery -----------------------------------------------------------------------------

    async def begin_recovery(
        self, agent_id: str, checkpoint_id: str = "", max_attempts: int = 0
    ) -> tuple[dict[str, Any], int]:
        """Count one recovery attempt and choose its checkpoint (the newest recoverable one,
        or ``checkpoint_id``, which must be recoverable); returns it and the attempt number.

        FAILED_PRECONDITION: RECOVERY_ATTEMPTS_EXHAUSTED once ``max_attempts`` attempts began
        since the last success, NO_RECOVERABLE_CHECKPOINT when there is nothing to restore
        (neither counts an attempt). NOT_FOUND for an unknown ``checkpoint_id``.
        """
        check_id(agent_id, "agent_id")
        check_id(checkpoint_id, "checkpoint_id", required=False)
        if checkpoint_id == LATEST:
            checkpoint_id = ""
        check_count(max_attempts, "max_attempts")
        base = self._dir(agent_id)

        async def attempt() -> tuple[dict[str, Any], int]:
            meta, meta_revision = await self._meta(base)
            if max_attempts and meta["attempts"] >= max_attempts:
                raise FailedPreconditionError(
                    f"agent {agent_id!r} used all {max_attempts} recovery attempts",
                    reason=Reason.RECOVERY_ATTEMPTS_EXHAUSTED,
                    metadata={"agent_id": agent_id, "attempts": str(meta["attempts"])},
                )
            record = await find_checkpoint(self.backend, base, checkpoint_id, not checkpoint_id)
            if record is None and checkpoint_id:
                raise checkpoint_not_found("agent", agent_id, checkpoint_id)
            if record is None or not record.get("recoverable"):
                raise FailedPreconditionError(
                    f"agent {agent_id!r} has no recoverable checkpoint"
                    + (f" {checkpoint_id!r}" if checkpoint_id else ""),
                    reason=Reason.NO_RECOVERABLE_CHECKPOINT,
                    metadata={"agent_id": agent_id, "checkpoint_id": checkpoint_id},
                )
            meta["attempts"] += 1
            meta["last_attempt"] = now()
            meta["last_checkpoint_id"] = record["checkpoint_id"]
            await self.backend.txn(
                [Compare(base + "meta", meta_revision)], [self._meta_put(base, meta)]
            )
            return record, int(meta["attempts"])

        return await retry_on_conflict(attempt)

    async def complete_recovery(self, agent_id: str, success: bool) -> dict[str, Any]:
        """Record an attempt's outcome; success resets the attempt count."""
        check_id(agent_id, "agent_id")
        base = self._dir(agent_id)

        async def attempt() -> dict[str, Any]:
            meta, meta_revision = await self._meta(base)
            if success:
                meta["attempts"] = 0
                meta["last_success"] = now()
                meta["recoveries"] += 1
            await self.backend.txn(
                [Compare(base + "meta", meta_revision)], [self._meta_put(base, meta)]
            )
            return meta

        return await retry_on_conflict(attempt)

    async def recovery_status(self, agent_id: str) -> dict[str, Any]:
        """The agent's recovery counters (zero for an unknown agent)."""
        check_id(agent_id, "agent_id")
        meta, _ = await self._meta(self._dir(agent_id))
        return meta

    # -- deletion -----------------------------------------------------------------------------

    async def delete_agent(self, agent_id: str) -> tuple[int, int]:
        """Remove every record of the agent (``meta``, ``snap/``, ``ckpt/``, ``cid/``); returns
        how many records went (snapshots, checkpoints, and 1 for ``meta``) and the store
        revision. One transaction guarded by ``meta``'s revision when everything fits the
        transaction limit; otherwise batches of data keys first and ``meta`` last (see
        :mod:`~statekeeper_server.engine.deletion`). An unknown agent removes nothing."""
        check_id(agent_id, "agent_id")
        base = self._dir(agent_id)
        size = batch_size(self.limits.max_transaction_operations)
        removed = 0

        def counted(name: str) -> bool:
            return name == "meta" or name.startswith(("snap/", "ckpt/"))

        async def attempt() -> tuple[int, int]:
            nonlocal removed
            while True:
                meta = await self.backend.get(base + "meta")
                page = await self.backend.range(base, limit=size)
                keys = [entry.key for entry in page.entries]
                if not page.more:
                    revision = meta.mod_revision if meta is not None else 0
                    result = await delete_all(self.backend, base, "meta", revision, keys)
                    return removed + count_removed(base, keys, result, counted), result.revision
                batch = [key for key in keys if key != base + "meta"]
                result = await delete_batch(self.backend, batch)
                removed += count_removed(base, batch, result, counted)

        return await retry_on_conflict(attempt)


async def find_checkpoint(
    backend: Backend, base: str, checkpoint_id: str, recoverable_only: bool
) -> dict[str, Any] | None:
    """The checkpoint ``checkpoint_id`` under ``base``, or the newest (recoverable) one."""
    if checkpoint_id:
        pointer = await backend.get(base + "cid/" + checkpoint_id)
        if pointer is None:
            return None
        entry = await backend.get(base + "ckpt/" + values.unpack(pointer.value)["order"])
        return None if entry is None else values.unpack(entry.value)
    start_after = ""
    while True:
        page = await backend.range(base + "ckpt/", start_after=start_after, limit=100)
        for entry in page.entries:
            record = values.unpack(entry.value)
            if not recoverable_only or record.get("recoverable"):
                return dict(record)
        if not page.more or not page.entries:
            return None
        start_after = page.entries[-1].key


async def checkpoint_operations(
    backend: Backend,
    limits: Limits,
    base: str,
    record: dict[str, Any],
    id_field: str,
    keep_latest: int,
) -> tuple[list[Operation], int]:
    """The writes that store ``record`` (with ``step`` and ``sequence``) as a checkpoint under
    ``base``: its ordered entry, its id pointer, the removal of an earlier checkpoint with the
    same id, and retention. The caller commits them guarded by the owner record's revision
    (which every checkpoint write changes), so the reads made here stay valid."""
    checkpoint_id = record[id_field]
    order = order_key(record["step"], record["sequence"])
    key = base + "ckpt/" + order
    operations: list[Operation] = [
        Put(key, pack_record(record, limits, "checkpoint")),
        Put(base + "cid/" + checkpoint_id, values.pack({"order": order})),
    ]
    replaced = ""
    pointer = await backend.get(base + "cid/" + checkpoint_id)
    if pointer is not None:
        replaced = base + "ckpt/" + values.unpack(pointer.value)["order"]
        operations.append(Delete(replaced))
    pruned = 0
    if keep_latest > 0:
        page = await backend.range(base + "ckpt/", limit=keep_latest + _PRUNE_SLACK + 1)
        entries = [e for e in page.entries if e.key != replaced]
        entries.append(Entry(key, values.pack({id_field: checkpoint_id}), 0, 0, 0))
        entries.sort(key=lambda e: e.key)
        deletes = prune_operations(entries, keep_latest, base + "cid/", id_field, key)
        operations.extend(deletes)
        pruned = len(deletes) // 2
    return operations, pruned
