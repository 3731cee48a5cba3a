"""The claim index and the task counts, kept by the same transactions that move tasks.

* **Claim index.** Every pending task has a key ``idx/<set>/<priority>/<seq>/<task>`` next to
  its record, where ``<set>`` names the set of capabilities it requires; each set ever used
  has a record under ``cap/``. A claim reads the sets (few: one per distinct combination of
  required capabilities), keeps those the agent has, and reads the first key of each one's
  index: the best of those heads is the task to hand out. The cost follows the number of
  capability sets, not the number of pending tasks, and a claim with no match reads only the
  sets.
* **Counts.** A team's counts per state are spread over :data:`COUNT_SHARDS` records
  (``count/<nn>``); each transition adds its -1/+1 to the record of its task, so a team view
  reads a fixed number of keys and concurrent transitions rarely touch the same record.

Tasks stored before this layout carry ``counted = False``: the first transition that meets
one counts it (and indexes it when pending) in its own commit, and the layout upgrade of
:func:`upgrade_layout` does the same for every task left, once per team; a task is counted
exactly once because ``counted`` changes in the same commit as the counts.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import replace

from statekeeper_server.engine.domains.orchestration.records import (
    CAPABILITY_SET,
    COUNTS,
    LAYOUT,
    MARKER,
    TASK,
    TEAM,
    CapabilitySet,
    Keys,
    QueueCounts,
    Task,
    TaskState,
    Team,
    capability_set_id,
)
from statekeeper_server.engine.records import Txn, scan, transact
from statekeeper_server.engine.storage.backend import Backend


class Tally:
    """Count changes gathered in one transaction and written once per count record."""

    def __init__(self) -> None:
        self._changes: dict[str, Counter[TaskState]] = {}

    def add(self, keys: Keys, task: Task, state: TaskState, delta: int) -> None:
        """Count ``delta`` tasks more in ``state`` for ``task``'s record."""
        self._changes.setdefault(keys.count(task.task_id), Counter())[state] += delta

    async def write(self, txn: Txn) -> None:
        """Apply the gathered changes to the count records read through ``txn``."""
        for key, changes in self._changes.items():
            counts = await txn.get(key, COUNTS) or QueueCounts()
            for state, delta in changes.items():
                setattr(counts, state.value, getattr(counts, state.value) + delta)
            txn.put(key, counts, COUNTS)


async def track(txn: Txn, keys: Keys, before: Task | None, after: Task) -> Task:
    """Update the claim index and the counts for a task going from ``before`` (None: new) to
    ``after``; the record to store (counted)."""
    # A task not yet counted was stored before layout 1, so it has no index key either.
    indexed = before is not None and before.counted and before.state is TaskState.PENDING
    old_index = keys.indexed(before) if before is not None and indexed else None
    new_index = keys.indexed(after) if after.state is TaskState.PENDING else None
    if old_index != new_index:
        if old_index is not None:
            txn.delete(old_index)
        if new_index is not None:
            txn.put_raw(new_index, MARKER)
            await register_capabilities(txn, keys, after.required_capabilities)
    counted = before is not None and before.counted
    if not counted or before is None or before.state is not after.state:
        tally = Tally()
        if counted and before is not None:
            tally.add(keys, before, before.state, -1)
        tally.add(keys, after, after.state, 1)
        await tally.write(txn)
    return replace(after, counted=True)


async def register_capabilities(txn: Txn, keys: Keys, capabilities: list[str]) -> None:
    """Record a capability set that a pending task requires (once per team)."""
    key = keys.capability_set(capability_set_id(capabilities))
    if await txn.get(key, CAPABILITY_SET) is None:
        txn.put(key, CapabilitySet(sorted(set(capabilities))), CAPABILITY_SET)


async def read_counts(backend: Backend, keys: Keys) -> QueueCounts:
    """The team's task counts: the sum of its count records."""
    total = QueueCounts()
    async for entry in scan(backend, keys.counts):
        counts = COUNTS.unpack(entry.value)
        for state in TaskState:
            name = state.value
            setattr(total, name, getattr(total, name) + getattr(counts, name))
    return total


async def claim_candidate(backend: Backend, keys: Keys, capabilities: list[str]) -> str | None:
    """The pending key (after ``q/p/``) of the most urgent task an agent with
    ``capabilities`` can do, from the heads of the index of each capability set it has."""
    have = set(capabilities)
    best: str | None = None
    async for entry in scan(backend, keys.capability_sets):
        needed = CAPABILITY_SET.unpack(entry.value).required_capabilities
        if not have.issuperset(needed):
            continue
        prefix = keys.index(entry.key[len(keys.capability_sets) :])
        head = await backend.range(prefix, limit=1)
        if head.entries:
            candidate = head.entries[0].key[len(prefix) :]
            best = candidate if best is None or candidate < best else best
    return best


async def upgrade_layout(backend: Backend, keys: Keys, team: Team) -> Team:
    """Count and index every task of a team stored before layout 1 (each in its own commit,
    skipped when a transition counted it first), then mark the team upgraded."""
    for state in TaskState:
        async for entry in scan(backend, keys.state(state)):
            if not TASK.unpack(entry.value).counted:
                await transact(backend, functools.partial(_count_one, keys=keys, key=entry.key))

    async def mark(txn: Txn) -> Team:
        stored = await txn.get(keys.team, TEAM)
        if stored is None or stored.layout >= LAYOUT:
            return stored or team
        upgraded = replace(stored, layout=LAYOUT)
        txn.put(keys.team, upgraded, TEAM)
        return upgraded

    return await transact(backend, mark)


async def _count_one(txn: Txn, *, keys: Keys, key: str) -> None:
    """Count (and index, when pending) one task stored before layout 1."""
    task = await txn.get(key, TASK)
    if task is not None and not task.counted:
        txn.put(key, await track(txn, keys, task, task), TASK)
