"""The agent manager (the reference's ``AgentStateStore`` and ``AgentRecoveryManager``).

Records live in the ``agent/`` namespace (after the tenant prefix), one directory per agent::

    agent/<agent_id>/meta                        counters and the recovery status
    agent/<agent_id>/snap/<inverted sequence>     one snapshot
    agent/<agent_id>/ckpt/<inverted step>/<inverted sequence>   one checkpoint
    agent/<agent_id>/cid/<checkpoint_id>          pointer from a checkpoint id to its order key

``meta`` also points at the newest recoverable checkpoint (kept by every checkpoint save in
the same transaction), so recovery finds it with one read.

``delete_agent`` removes the whole directory.

Every write of snapshots or checkpoints bumps a counter in ``meta`` and is one
:func:`~statekeeper_server.engine.records.transact`: the commit is guarded by everything it
read (``meta`` included), so concurrent writers (also on other server instances) are
serialised by compare-and-set and retried, never by a local lock. Ids cannot contain ``/``, so
``agent/a1/`` is never a prefix of agent ``a10``'s keys. The records are typed
(:class:`AgentSnapshot`, :class:`AgentCheckpoint`, :class:`RecoveryStatus`), named like the
proto's messages; records written before typed records (version 0) read through their upgrade.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from statekeeper.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError, Reason

from statekeeper_server.engine.domains.checkpoints import (
    PRUNE_SLACK,
    check_count,
    check_step,
    checkpoint_not_found,
    delete_directory,
    find_checkpoint,
    kept_entries,
    newest_first,
    now,
    renamed,
    sequence_key,
    store_checkpoint,
)
from statekeeper_server.engine.identifiers import check_id
from statekeeper_server.engine.limits import Limits, check_revision
from statekeeper_server.engine.records import (
    Schema,
    Txn,
    transact,
)
from statekeeper_server.engine.storage.backend import Backend, Entry, EventType
from statekeeper_server.engine.tenancy import tenant_prefix

#: The backend namespace of agent records.
NAMESPACE = "agent/"
#: The checkpoint id that means "the newest one" and so cannot be used as an id.
LATEST = "latest"


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    """A picture of an agent's whole state (documents are plain values)."""

    agent_id: str = ""
    snapshot_id: str = ""
    timestamp: float | None = None
    memory_state: Any = None
    tool_state: Any = None
    conversation_history: Any = None
    metadata: Any = None
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class AgentCheckpoint:
    """A resumable point of an agent's task."""

    agent_id: str = ""
    checkpoint_id: str = ""
    step: int = 0
    state: Any = None
    recoverable: bool = False
    timestamp: float | None = None
    metadata: Any = None
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class RecoveryStatus:
    """An agent's recovery counters (``meta``), with the engine's save counters."""

    agent_id: str = ""
    attempts: int = 0
    last_attempt_time: float | None = None
    last_checkpoint_id: str = ""
    last_success_time: float | None = None
    recoveries: int = 0
    #: Engine-internal: the last snapshot and checkpoint sequence numbers given out.
    snapshot_sequence: int = 0
    checkpoint_sequence: int = 0
    #: Engine-internal: the order key of the newest recoverable checkpoint ("" for none);
    #: None for an agent whose checkpoints were stored before it was kept (such an agent is
    #: searched newest first until its next checkpoint save sets it).
    newest_recoverable: str | None = ""


def _legacy_meta(data: dict[str, Any]) -> dict[str, Any]:
    """Version 0 of ``meta``: short names, and no pointer to the newest recoverable one."""
    names = {
        "last_attempt": "last_attempt_time",
        "last_success": "last_success_time",
        "snap_seq": "snapshot_sequence",
        "ckpt_seq": "checkpoint_sequence",
    }
    return {**renamed(names)(data), "newest_recoverable": None}


SNAPSHOT = Schema(AgentSnapshot, field="snapshot")
CHECKPOINT = Schema(AgentCheckpoint, field="checkpoint")
META = Schema(RecoveryStatus, field="meta", upgrades={0: _legacy_meta})


@dataclass(frozen=True, slots=True)
class CheckpointEvent:
    """One update of a checkpoint watch: the created marker (no checkpoint) or a checkpoint."""

    revision: int
    checkpoint: AgentCheckpoint | None


def _recoverable(checkpoint: AgentCheckpoint) -> bool:
    return checkpoint.recoverable


class AgentEngine:
    """Snapshots, checkpoints and recovery attempts of agents."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        self.backend = backend
        self.limits = limits or Limits()

    @staticmethod
    def _dir(agent_id: str) -> str:
        return f"{tenant_prefix()}{NAMESPACE}{agent_id}/"

    @staticmethod
    async def _meta(txn: Txn, base: str, agent_id: str) -> RecoveryStatus:
        """The agent's ``meta`` (fresh counters when it has none), guarding ``txn``."""
        meta = await txn.get(base + "meta", META)
        return replace(meta or RecoveryStatus(), agent_id=agent_id)

    # -- snapshots ----------------------------------------------------------------------------

    async def save_snapshot(self, snapshot: AgentSnapshot, keep_latest: int = 0) -> AgentSnapshot:
        """Store a snapshot; returns it with its id, sequence and time."""
        agent_id = check_id(snapshot.agent_id, "snapshot.agent_id")
        check_count(keep_latest, "keep_latest")
        base = self._dir(agent_id)

        async def body(txn: Txn) -> AgentSnapshot:
            meta = await self._meta(txn, base, agent_id)
            sequence = meta.snapshot_sequence + 1
            record = replace(
                snapshot,
                snapshot_id=str(sequence),
                sequence=sequence,
                timestamp=snapshot.timestamp or now(),
            )
            key = base + "snap/" + sequence_key(sequence)
            txn.put(base + "meta", replace(meta, snapshot_sequence=sequence), META)
            txn.put(key, record, SNAPSHOT)
            if keep_latest > 0:
                page = await txn.range(
                    base + "snap/", SNAPSHOT, limit=keep_latest + PRUNE_SLACK, guard=True
                )
                fresh = Entry(key, b"", 0, 0, 0)
                entries = sorted([fresh, *(entry for entry, _ in page)], key=lambda e: e.key)
                for entry in kept_entries(entries, keep_latest, key):
                    txn.delete(entry.key)
            return record

        return await transact(self.backend, body, limits=self.limits)

    async def get_snapshot(self, agent_id: str, snapshot_id: str = "") -> AgentSnapshot:
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
        return SNAPSHOT.unpack(entry.value)

    async def list_snapshots(
        self, agent_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[AgentSnapshot], str]:
        """One page of an agent's snapshots, newest first (empty for an unknown agent)."""
        check_id(agent_id, "agent_id")
        prefix = self._dir(agent_id) + "snap/"
        return await newest_first(
            self.backend, prefix, SNAPSHOT, self.limits, page_size, page_token, True
        )

    # -- checkpoints --------------------------------------------------------------------------

    async def save_checkpoint(
        self, checkpoint: AgentCheckpoint, keep_latest: int = 0
    ) -> tuple[AgentCheckpoint, int]:
        """Store (or replace, by id) a checkpoint; returns it as stored and how many older
        checkpoints retention removed."""
        agent_id = check_id(checkpoint.agent_id, "checkpoint.agent_id")
        checkpoint_id = check_id(checkpoint.checkpoint_id, "checkpoint.checkpoint_id")
        if checkpoint_id == LATEST:
            raise InvalidArgumentError(
                f"checkpoint_id {LATEST!r} is reserved (it means the newest checkpoint)",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("checkpoint.checkpoint_id", "reserved")],
            )
        check_step(checkpoint.step, "checkpoint.step")
        check_count(keep_latest, "keep_latest")
        base = self._dir(agent_id)

        async def body(txn: Txn) -> tuple[AgentCheckpoint, int]:
            meta = await self._meta(txn, base, agent_id)
            sequence = meta.checkpoint_sequence + 1
            record = replace(checkpoint, sequence=sequence, timestamp=checkpoint.timestamp or now())
            pruned, newest = await store_checkpoint(
                txn, base, record, CHECKPOINT, keep_latest, _recoverable, meta.newest_recoverable
            )
            changed = replace(meta, checkpoint_sequence=sequence, newest_recoverable=newest)
            txn.put(base + "meta", changed, META)
            return record, pruned

        return await transact(self.backend, body, limits=self.limits)

    async def get_checkpoint(
        self, agent_id: str, checkpoint_id: str = "", recoverable_only: bool = False
    ) -> AgentCheckpoint:
        """One checkpoint by id, or the newest (recoverable) one; NOT_FOUND when missing."""
        check_id(agent_id, "agent_id")
        check_id(checkpoint_id, "checkpoint_id", required=False)
        base = self._dir(agent_id)
        txn = Txn(self.backend)  # read only: never committed
        record = await self._find(txn, base, agent_id, checkpoint_id, recoverable_only)
        if record is None:
            raise checkpoint_not_found("agent", agent_id, checkpoint_id)
        return record

    async def _find(
        self,
        txn: Txn,
        base: str,
        agent_id: str,
        checkpoint_id: str,
        recoverable_only: bool,
        meta: RecoveryStatus | None = None,
    ) -> AgentCheckpoint | None:
        """A checkpoint by id, or the newest (recoverable) one by ``meta``'s pointer (``meta``
        is read when not given)."""
        if not recoverable_only or checkpoint_id:
            return await find_checkpoint(txn, base, CHECKPOINT, checkpoint_id)
        meta = meta or await self._meta(txn, base, agent_id)
        return await find_checkpoint(
            txn, base, CHECKPOINT, "", _recoverable, meta.newest_recoverable
        )

    async def list_checkpoints(
        self, agent_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[AgentCheckpoint], str]:
        """One page of an agent's checkpoints, newest first (empty for an unknown agent)."""
        check_id(agent_id, "agent_id")
        prefix = self._dir(agent_id) + "ckpt/"
        return await newest_first(
            self.backend, prefix, CHECKPOINT, self.limits, page_size, page_token, False
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
                    yield CheckpointEvent(event.revision, CHECKPOINT.unpack(event.entry.value))

    # -- recovery -----------------------------------------------------------------------------

    async def begin_recovery(
        self, agent_id: str, checkpoint_id: str = "", max_attempts: int = 0
    ) -> tuple[AgentCheckpoint, int]:
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

        async def body(txn: Txn) -> tuple[AgentCheckpoint, int]:
            meta = await self._meta(txn, base, agent_id)
            if max_attempts and meta.attempts >= max_attempts:
                raise FailedPreconditionError(
                    f"agent {agent_id!r} used all {max_attempts} recovery attempts",
                    reason=Reason.RECOVERY_ATTEMPTS_EXHAUSTED,
                    metadata={"agent_id": agent_id, "attempts": str(meta.attempts)},
                )
            record = await self._find(txn, base, agent_id, checkpoint_id, not checkpoint_id, meta)
            if record is None and checkpoint_id:
                raise checkpoint_not_found("agent", agent_id, checkpoint_id)
            if record is None or not record.recoverable:
                raise FailedPreconditionError(
                    f"agent {agent_id!r} has no recoverable checkpoint"
                    + (f" {checkpoint_id!r}" if checkpoint_id else ""),
                    reason=Reason.NO_RECOVERABLE_CHECKPOINT,
                    metadata={"agent_id": agent_id, "checkpoint_id": checkpoint_id},
                )
            attempts = meta.attempts + 1
            changed = replace(
                meta,
                attempts=attempts,
                last_attempt_time=now(),
                last_checkpoint_id=record.checkpoint_id,
            )
            txn.put(base + "meta", changed, META)
            return record, attempts

        return await transact(self.backend, body, limits=self.limits)

    async def complete_recovery(self, agent_id: str, success: bool) -> RecoveryStatus:
        """Record an attempt's outcome; success resets the attempt count."""
        check_id(agent_id, "agent_id")
        base = self._dir(agent_id)

        async def body(txn: Txn) -> RecoveryStatus:
            meta = await self._meta(txn, base, agent_id)
            if success:
                meta = replace(
                    meta, attempts=0, last_success_time=now(), recoveries=meta.recoveries + 1
                )
            txn.put(base + "meta", meta, META)
            return meta

        return await transact(self.backend, body, limits=self.limits)

    async def recovery_status(self, agent_id: str) -> RecoveryStatus:
        """The agent's recovery counters (zero for an unknown agent)."""
        check_id(agent_id, "agent_id")
        return await self._meta(Txn(self.backend), self._dir(agent_id), agent_id)

    # -- deletion -----------------------------------------------------------------------------

    async def delete_agent(self, agent_id: str) -> tuple[int, int]:
        """Remove every record of the agent (``meta``, ``snap/``, ``ckpt/``, ``cid/``,
        ``rcv/``); returns how many records went (snapshots, checkpoints, and 1 for ``meta``)
        and the store revision. One transaction guarded by ``meta``'s revision when everything
        fits the transaction limit; otherwise batches of data keys first and ``meta`` last. An
        unknown agent removes nothing."""
        check_id(agent_id, "agent_id")
        return await delete_directory(
            self.backend, self.limits, self._dir(agent_id), "meta", _counted
        )


def _counted(name: str) -> bool:
    """Whether the removed record ``name`` (after the agent's directory) is counted."""
    return name == "meta" or name.startswith(("snap/", "ckpt/"))
