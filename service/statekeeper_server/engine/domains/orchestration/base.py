"""What every orchestration operation shares: reading a team and a task, moving a task between
states inside a transaction, freeing its agent, and the lazy housekeeping (expired leases,
completed-task retention)."""

from __future__ import annotations

import functools
import time
from dataclasses import replace

from statekeeper.errors import ConflictError, Reason

from statekeeper_server.engine.domains.orchestration.index import (
    Tally,
    read_counts,
    track,
    upgrade_layout,
)
from statekeeper_server.engine.domains.orchestration.records import (
    AGENT,
    LAYOUT,
    MARKER,
    POINTER,
    TASK,
    TEAM,
    Keys,
    Pointer,
    Task,
    TaskState,
    Team,
    not_found,
)
from statekeeper_server.engine.limits import Limits
from statekeeper_server.engine.records import Txn, transact
from statekeeper_server.engine.storage.backend import Backend

#: How many lease keys one pass of the expiry collection reads.
LEASE_PAGE = 32
#: How many completed tasks one retention transaction removes.
TRIM_BATCH = 50


async def read_task(txn: Txn, keys: Keys, task_id: str) -> Task | None:
    """The task (None when it does not exist), guarding the commit on its pointer and record."""
    pointer = await txn.get(keys.pointer(task_id), POINTER)
    if pointer is None:
        return None
    task = await txn.get(keys.base + pointer.at, TASK)
    if task is None:
        # The task moved between the two reads: run the body again on fresh data.
        raise ConflictError(f"task {task_id!r} moved", reason=Reason.REVISION_CONFLICT)
    return task


async def move(txn: Txn, keys: Keys, before: Task | None, after: Task) -> None:
    """Replace ``before`` (read through ``txn``; None for a new task) with ``after``, moving
    the record, its pointer and its lease key when their keys change, and keeping the claim
    index and the counts."""
    old_key = keys.record(before) if before is not None else None
    new_key = keys.record(after)
    if new_key != old_key:
        if old_key is not None:
            txn.delete(old_key)
        txn.put(keys.pointer(after.task_id), Pointer(new_key[len(keys.base) :]), POINTER)
    txn.put(new_key, await track(txn, keys, before, after), TASK)
    old_lease = keys.lease(before) if before is not None else None
    new_lease = keys.lease(after)
    if old_lease != new_lease:
        if old_lease is not None:
            txn.delete(old_lease)
        if new_lease is not None:
            txn.put_raw(new_lease, MARKER)


async def free_agent(txn: Txn, keys: Keys, agent_id: str, task_id: str) -> None:
    """Release ``task_id`` from the agent's queue tasks; when it was the agent's current task,
    the agent works on its last other queue task, or is idle."""
    agent = await txn.get(keys.agent(agent_id), AGENT)
    if agent is None or (task_id not in agent.held and agent.current_task != task_id):
        return
    held = [held_id for held_id in agent.held if held_id != task_id]
    agent = replace(agent, held=held, update_time=time.time())
    if agent.current_task == task_id:
        agent = replace(
            agent, status="working" if held else "idle", current_task=held[-1] if held else None
        )
    txn.put(keys.agent(agent_id), agent, AGENT)


async def _expire_one(txn: Txn, *, keys: Keys, team: Team, lease_key: str) -> None:
    """Requeue or dead-letter the task of one expired lease (nothing when it moved)."""
    if await txn.entry(lease_key) is None:
        return  # another caller moved the task first
    task = await read_task(txn, keys, lease_key.rsplit("/", 1)[1])
    if task is None or keys.lease(task) != lease_key:
        txn.delete(lease_key)  # a leftover lease key without its task
        return
    after = replace(
        task, lease_expire_time=None, last_error=f"lease of agent {task.agent_id!r} expired"
    )
    if task.delivery_count >= team.settings.max_deliveries:
        after = replace(after, state=TaskState.DEAD_LETTERED, finish_time=time.time())
    else:
        after = replace(after, state=TaskState.PENDING)
    await move(txn, keys, task, after)
    await free_agent(txn, keys, task.agent_id, task.task_id)


class Base:
    """The backend and limits of an orchestration engine, with the reads and the housekeeping
    its operations share."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        self.backend = backend
        self.limits = limits or Limits()
        # Completions served since the last retention trim, per team key base (a hint for
        # when to trim, never used for correctness).
        self._since_trim: dict[str, int] = {}

    async def _team(self, keys: Keys) -> Team:
        """The team record (its stored tasks upgraded to the current layout first);
        NOT_FOUND when the team does not exist."""
        entry = await self.backend.get(keys.team)
        if entry is None:
            raise not_found("team", keys.team_id, Reason.TEAM_NOT_FOUND)
        team = TEAM.unpack(entry.value)
        if team.layout < LAYOUT:
            team = await upgrade_layout(self.backend, keys, team)
        return team

    async def _requeue_expired(self, keys: Keys, team: Team) -> None:
        """Return tasks whose lease has expired to pending (delivery count kept, so the next
        hand-out makes it +1), or dead-letter them after ``max_deliveries`` hand-outs; their
        agent is freed. Each task moves in its own transaction."""
        now_ms = time.time() * 1000
        tried: set[str] = set()
        while True:
            page = await self.backend.range(keys.leases, limit=LEASE_PAGE)
            due = [
                entry.key
                for entry in page.entries
                if int(entry.key[len(keys.leases) :].split("/")[0]) <= now_ms
                and entry.key not in tried
            ]
            if not due:
                return
            for lease_key in due:
                tried.add(lease_key)
                expire = functools.partial(_expire_one, keys=keys, team=team, lease_key=lease_key)
                await transact(self.backend, expire, limits=self.limits)

    async def _trim_completed(self, keys: Keys, retention: int) -> None:
        """Remove the oldest completed tasks beyond ``retention`` (records and pointers)."""
        prefix = keys.state(TaskState.COMPLETED)

        async def body(txn: Txn) -> int:
            excess = (await read_counts(self.backend, keys)).completed - retention
            if excess <= 0:
                return 0
            tally = Tally()
            oldest = await txn.range(prefix, TASK, limit=min(excess, TRIM_BATCH), guard=True)
            for entry, task in oldest:
                txn.delete(entry.key)
                txn.delete(keys.pointer(task.task_id))
                if task.counted:
                    tally.add(keys, task, task.state, -1)
            await tally.write(txn)
            return len(oldest)

        while await transact(self.backend, body, limits=self.limits):
            pass
