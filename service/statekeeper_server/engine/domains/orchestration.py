"""Team orchestration (the reference's ``OrchestrationStateManager``), written once over a Backend.

Key layout, under the tenant prefix and the ``orch/`` namespace (``B`` = ``orch/<team>/``):

* ``B team`` the team record (settings, creation time);
* ``B agent/<agent>`` one record per agent (status, capabilities, current task);
* ``B seq`` the team's enqueue counter (the FIFO sequence number);
* ``B task/<task>`` a pointer naming the key that holds the task's record now;
* ``B q/p/<1000-priority:04>/<seq:016>/<task>`` a pending task: key order *is* hand-out order
  (most urgent first, then first in first out), so the next task is the first key of a range;
* ``B q/r/<task>`` an in-progress task; ``B lease/<expiry ms:015>/<task>`` its lease, in expiry
  order, so expired leases are the first keys of a range;
* ``B q/c/<finish ns:020>/<task>`` a completed task, oldest first (what retention trims);
* ``B q/d/<finish ns:020>/<task>`` a dead-lettered task.

Every transition (enqueue, assign, claim, complete, fail, lease expiry) is one multi-key
``txn`` with a compare on every key it read, so two server instances on one Redis can never both
hand out one task: the loser's compare fails and it moves on to the next candidate or re-reads.
No process-local lock is involved.

Expired leases are collected lazily: each claim, assignment and queue read of a team first
requeues (or dead-letters) the team's tasks whose lease has run out. Completed-task retention is
enforced in batches (every ``retention // 10`` completions served by one engine, and at every
queue read), so a team holds about ``completed_retention`` completed tasks at most.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from statekeeper import values
from statekeeper.errors import (
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    Reason,
)

from statekeeper_server.engine.identifiers import check_id, check_text
from statekeeper_server.engine.limits import Limits
from statekeeper_server.engine.records import retry_on_conflict
from statekeeper_server.engine.storage.backend import (
    Backend,
    Compare,
    Delete,
    Entry,
    EventType,
    Put,
)
from statekeeper_server.engine.tenancy import tenant_prefix
from statekeeper_server.engine.tokens import decode_scoped, encode_scoped

#: The backend namespace of the orchestration records.
NAMESPACE = "orch/"
#: Named priorities and their levels; a level is an integer from 0 to MAX_PRIORITY.
PRIORITIES = {"low": 10, "normal": 20, "high": 30, "critical": 40}
PRIORITY_NAMES = {level: name for name, level in PRIORITIES.items()}
MAX_PRIORITY = 1000
#: Defaults of the team settings.
DEFAULT_RETENTION = 1000
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_DELIVERIES = 10
#: The lease of a claim that does not name one, in seconds.
DEFAULT_LEASE = 30.0
#: The longest capability or task type, and the longest status, in characters.
MAX_NAME_LENGTH = 256
MAX_STATUS_LENGTH = 64
#: Task states as stored, and the index prefix of each.
PENDING, IN_PROGRESS, COMPLETED, DEAD_LETTERED = "pending", "in_progress", "completed", "dead"
STATE_PREFIX = {PENDING: "q/p/", IN_PROGRESS: "q/r/", COMPLETED: "q/c/", DEAD_LETTERED: "q/d/"}
#: How many pending tasks one range read of a claim looks at.
CLAIM_PAGE = 32
#: How many queue tasks an agent may hold at once unless its ``max_tasks`` says otherwise.
DEFAULT_MAX_TASKS = 1
#: The status of an agent that takes no queue task.
OFFLINE = "offline"


def priority_level(name: str | None, level: int | None, field: str = "task.priority") -> int:
    """The level of a priority given by name or level (neither: "normal")."""
    if name is not None:
        if name not in PRIORITIES:
            raise InvalidArgumentError(
                f"{field} {name!r} is not one of critical, high, normal, low",
                reason=Reason.INVALID_PRIORITY,
                violations=[(field, "unknown priority name")],
            )
        return PRIORITIES[name]
    if level is None:
        return PRIORITIES["normal"]
    if not 0 <= level <= MAX_PRIORITY:
        raise InvalidArgumentError(
            f"{field} {level} is outside 0..{MAX_PRIORITY}",
            reason=Reason.INVALID_PRIORITY,
            violations=[(field, f"must be between 0 and {MAX_PRIORITY}")],
        )
    return level


def _not_found(kind: str, ident: str, reason: Reason) -> NotFoundError:
    return NotFoundError(f"{kind} {ident!r} not found", reason=reason, metadata={"id": ident})


def _precondition(message: str, reason: Reason, **metadata: str) -> FailedPreconditionError:
    return FailedPreconditionError(message, reason=reason, metadata=metadata)


@dataclass
class TaskInput:
    """A task to enqueue, validated by :meth:`OrchestrationEngine.enqueue`."""

    task_id: str = ""
    type: str = ""
    priority: int = PRIORITIES["normal"]
    data: Any = None
    required_capabilities: list[str] = field(default_factory=list)
    max_retries: int | None = None


@dataclass
class TeamSettings:
    """A team's queue policies (0 / None mean the defaults)."""

    completed_retention: int = 0
    default_max_retries: int | None = None
    max_deliveries: int = 0


@dataclass
class QueueSnapshot:
    """A team's tasks grouped by state, each list in hand-out / completion order."""

    pending: list[dict[str, Any]]
    in_progress: list[dict[str, Any]]
    completed: list[dict[str, Any]]
    dead_lettered: list[dict[str, Any]]


@dataclass
class TeamView:
    """A team record with its agents (by id) and the number of tasks in each state."""

    team: dict[str, Any]
    agents: dict[str, dict[str, Any]]
    counts: dict[str, int]
    queue: QueueSnapshot | None = None


@dataclass
class TeamChange:
    """One change seen by a team watch: ``kind`` is "agent", "task", "task_removed" or
    "team_deleted"; ``record`` the agent or task record after the change."""

    kind: str
    record: dict[str, Any] | None = None
    task_id: str = ""


class _Keys:
    """The backend keys of one team of the current tenant."""

    def __init__(self, team_id: str) -> None:
        self.base = tenant_prefix() + NAMESPACE + team_id + "/"
        self.team = self.base + "team"
        self.seq = self.base + "seq"
        self.agents = self.base + "agent/"
        self.leases = self.base + "lease/"

    def agent(self, agent_id: str) -> str:
        return self.agents + agent_id

    def pointer(self, task_id: str) -> str:
        return self.base + "task/" + task_id

    def record(self, task: dict[str, Any]) -> str:
        """The key that holds ``task`` in its current state."""
        state = task["state"]
        prefix = self.base + STATE_PREFIX[state]
        if state == PENDING:
            return f"{prefix}{MAX_PRIORITY - task['priority']:04d}/{task['seq']:016d}/{task['id']}"
        if state == IN_PROGRESS:
            return prefix + task["id"]
        return f"{prefix}{int(task['finished'] * 1e9):020d}/{task['id']}"

    def lease(self, task: dict[str, Any]) -> str | None:
        if task.get("lease") is None:
            return None
        return f"{self.leases}{int(task['lease'] * 1000):015d}/{task['id']}"


def _doc(entry: Entry) -> dict[str, Any]:
    document: dict[str, Any] = values.unpack(entry.value)
    return document


def _pack(document: dict[str, Any]) -> bytes:
    return values.pack(document)


def _is_free(agent: dict[str, Any]) -> bool:
    """Idle and without a current task: what ``get_available_agents`` lists."""
    return agent["status"] == "idle" and agent.get("task") is None


def _check_can_take(agent: dict[str, Any], agent_id: str) -> None:
    """The rule of :meth:`OrchestrationEngine.assign` and ``claim``: a queue task goes to any
    agent that is not ``offline`` and holds fewer queue tasks than its ``max_tasks``; its
    free-form status and a current task set by ``update_agent_status`` do not stop it."""
    if agent["status"] == OFFLINE:
        raise _precondition(f"agent {agent_id!r} is offline", Reason.AGENT_OFFLINE)
    held = agent.get("held", [])
    capacity = agent.get("max_tasks", DEFAULT_MAX_TASKS)
    if len(held) >= capacity:
        raise _precondition(
            f"agent {agent_id!r} is busy: it holds {len(held)} queue task(s) {held}, its"
            f" max_tasks is {capacity}",
            Reason.AGENT_BUSY,
        )


def _missing(task: dict[str, Any], agent: dict[str, Any]) -> list[str]:
    have = set(agent["caps"])
    return [cap for cap in task["caps"] if cap not in have]


class OrchestrationEngine:
    """Teams, agents and a task queue that hands each task to exactly one agent at a time."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        self.backend = backend
        self.limits = limits or Limits()
        # Completions served since the last retention trim, per team key base (a hint for
        # when to trim, never used for correctness).
        self._since_trim: dict[str, int] = {}

    # -- reading helpers --------------------------------------------------------------------

    async def _team(self, keys: _Keys, team_id: str) -> Entry:
        entry = await self.backend.get(keys.team)
        if entry is None:
            raise _not_found("team", team_id, Reason.TEAM_NOT_FOUND)
        return entry

    async def _agent(self, keys: _Keys, agent_id: str) -> Entry:
        entry = await self.backend.get(keys.agent(agent_id))
        if entry is None:
            raise _not_found("agent", agent_id, Reason.AGENT_NOT_FOUND)
        return entry

    async def _task(self, keys: _Keys, task_id: str) -> tuple[Entry, Entry] | None:
        """The pointer and record entries of a task, or None when it does not exist."""
        for _ in range(100):
            pointer = await self.backend.get(keys.pointer(task_id))
            if pointer is None:
                return None
            record = await self.backend.get(keys.base + _doc(pointer)["at"])
            if record is not None:
                return pointer, record
            # The task moved between the two reads: read the pointer again.
        raise ConflictError(f"task {task_id!r} keeps moving", reason=Reason.REVISION_CONFLICT)

    async def _range_all(self, prefix: str) -> list[Entry]:
        entries: list[Entry] = []
        start_after = ""
        while True:
            page = await self.backend.range(prefix, start_after=start_after, limit=1000)
            entries.extend(page.entries)
            if not page.more or not page.entries:
                return entries
            start_after = page.entries[-1].key

    @staticmethod
    def _settings(team: dict[str, Any]) -> tuple[int, int, int]:
        return team["retention"], team["max_retries"], team["max_deliveries"]

    # -- teams and agents -------------------------------------------------------------------

    @staticmethod
    def _agent_record(agent: dict[str, Any], field: str) -> dict[str, Any]:
        check_id(agent["id"], f"{field}.agent_id")
        check_text(agent["status"] or "idle", f"{field}.status", MAX_STATUS_LENGTH)
        for index, cap in enumerate(agent["caps"]):
            check_text(cap, f"{field}.capabilities[{index}]", MAX_NAME_LENGTH, required=True)
        if agent.get("task") is not None:
            check_id(agent["task"], f"{field}.current_task")
        max_tasks = agent.get("max_tasks") or DEFAULT_MAX_TASKS
        if max_tasks < 0:
            raise InvalidArgumentError(
                f"{field}.max_tasks must not be negative",
                reason=Reason.INVALID_ARGUMENT,
                violations=[(f"{field}.max_tasks", "negative")],
            )
        return {
            "id": agent["id"],
            "status": agent["status"] or "idle",
            "caps": list(dict.fromkeys(agent["caps"])),
            "task": agent.get("task"),
            "max_tasks": max_tasks,
            "held": [],
            "updated": time.time(),
        }

    async def create_team(
        self,
        team_id: str,
        agents: Sequence[dict[str, Any]],
        tasks: Sequence[TaskInput],
        settings: TeamSettings,
    ) -> TeamView:
        """Create a team with its agents, then enqueue ``tasks`` in order."""
        check_id(team_id, "team_id")
        records = [self._agent_record(a, f"agents[{i}]") for i, a in enumerate(agents)]
        ids = [r["id"] for r in records]
        if len(set(ids)) != len(ids):
            raise InvalidArgumentError(
                "agent ids must be distinct",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("agents", "duplicate agent_id")],
            )
        for name, number in (
            ("completed_retention", settings.completed_retention),
            ("max_deliveries", settings.max_deliveries),
            ("default_max_retries", settings.default_max_retries or 0),
        ):
            if number < 0:
                raise InvalidArgumentError(
                    f"settings.{name} must not be negative",
                    reason=Reason.INVALID_ARGUMENT,
                    violations=[(f"settings.{name}", "negative")],
                )
        for index, task in enumerate(tasks):
            self._check_task(task, f"initial_tasks[{index}]")
        team = {
            "id": team_id,
            "created": time.time(),
            "retention": settings.completed_retention or DEFAULT_RETENTION,
            "max_retries": DEFAULT_MAX_RETRIES
            if settings.default_max_retries is None
            else settings.default_max_retries,
            "max_deliveries": settings.max_deliveries or DEFAULT_MAX_DELIVERIES,
        }
        keys = _Keys(team_id)
        operations: list[Put | Delete] = [Put(keys.team, _pack(team))]
        operations += [Put(keys.agent(r["id"]), _pack(r)) for r in records]
        try:
            await self.backend.txn([Compare(keys.team, 0)], operations)
        except ConflictError:
            raise AlreadyExistsError(
                f"team {team_id!r} already exists",
                reason=Reason.ALREADY_EXISTS,
                metadata={"id": team_id},
            ) from None
        for task in tasks:
            await self.enqueue(team_id, task)
        return await self.get_team(team_id)

    async def get_team(self, team_id: str, *, with_queue: bool = False) -> TeamView:
        """The team with its agents and task counts (and its whole queue when asked)."""
        check_id(team_id, "team_id")
        keys = _Keys(team_id)
        team = _doc(await self._team(keys, team_id))
        if with_queue:
            await self._requeue_expired(keys, team)
        agents = {(a := _doc(e))["id"]: a for e in await self._range_all(keys.agents)}
        queue = await self._queue(keys)
        counts = {
            PENDING: len(queue.pending),
            IN_PROGRESS: len(queue.in_progress),
            COMPLETED: len(queue.completed),
            DEAD_LETTERED: len(queue.dead_lettered),
        }
        return TeamView(team, agents, counts, queue if with_queue else None)

    async def delete_team(self, team_id: str) -> bool:
        """Remove the team record first (so every later call sees NOT_FOUND), then the rest."""
        check_id(team_id, "team_id")
        keys = _Keys(team_id)
        result = await self.backend.delete(keys.team)
        existed = result.results[0] is not None
        entries = await self._range_all(keys.base)
        for start in range(0, len(entries), 100):
            await self.backend.txn([], [Delete(e.key) for e in entries[start : start + 100]])
        return existed

    async def add_agent(self, team_id: str, agent: dict[str, Any]) -> dict[str, Any]:
        """Add an agent to an existing team."""
        check_id(team_id, "team_id")
        record = self._agent_record(agent, "agent")
        keys = _Keys(team_id)
        team = await self._team(keys, team_id)
        try:
            await self.backend.txn(
                [Compare(keys.team, team.mod_revision), Compare(keys.agent(record["id"]), 0)],
                [Put(keys.agent(record["id"]), _pack(record))],
            )
        except ConflictError:
            if await self.backend.get(keys.agent(record["id"])) is not None:
                raise AlreadyExistsError(
                    f"agent {record['id']!r} already exists",
                    reason=Reason.ALREADY_EXISTS,
                    metadata={"id": record["id"]},
                ) from None
            raise
        return record

    async def update_agent_status(
        self, team_id: str, agent_id: str, status: str, current_task: str | None
    ) -> dict[str, Any]:
        """Set an agent's status and current task (free-form; no queue change)."""
        check_id(team_id, "team_id")
        check_id(agent_id, "agent_id")
        check_text(status, "status", MAX_STATUS_LENGTH, required=True)
        if current_task is not None:
            check_id(current_task, "current_task")
        keys = _Keys(team_id)
        await self._team(keys, team_id)

        async def attempt() -> dict[str, Any]:
            entry = await self._agent(keys, agent_id)
            agent = _doc(entry)
            agent.update(status=status, task=current_task, updated=time.time())
            await self.backend.put(entry.key, _pack(agent), expected_revision=entry.mod_revision)
            return agent

        return await retry_on_conflict(attempt)

    async def available_agents(self, team_id: str, capability: str) -> list[dict[str, Any]]:
        """Idle agents without a current task that have ``capability`` (empty: any)."""
        check_id(team_id, "team_id")
        check_text(capability, "capability", MAX_NAME_LENGTH)
        keys = _Keys(team_id)
        await self._team(keys, team_id)
        agents = [_doc(e) for e in await self._range_all(keys.agents)]
        return [a for a in agents if _is_free(a) and (not capability or capability in a["caps"])]

    # -- enqueue ----------------------------------------------------------------------------

    @staticmethod
    def _check_task(task: TaskInput, field: str) -> None:
        if task.task_id:
            check_id(task.task_id, f"{field}.task_id")
        check_text(task.type, f"{field}.type", MAX_NAME_LENGTH)
        for index, cap in enumerate(task.required_capabilities):
            check_text(
                cap, f"{field}.required_capabilities[{index}]", MAX_NAME_LENGTH, required=True
            )
        if task.max_retries is not None and task.max_retries < 0:
            raise InvalidArgumentError(
                f"{field}.max_retries must not be negative",
                reason=Reason.INVALID_ARGUMENT,
                violations=[(f"{field}.max_retries", "negative")],
            )
        values.validate(task.data, f"{field}.data")

    async def enqueue(self, team_id: str, task: TaskInput) -> tuple[dict[str, Any], bool]:
        """Add a pending task; an id that exists returns the existing task (created False)."""
        check_id(team_id, "team_id")
        self._check_task(task, "task")
        task_id = task.task_id or uuid.uuid4().hex
        keys = _Keys(team_id)

        async def attempt() -> tuple[dict[str, Any], bool]:
            team_entry = await self._team(keys, team_id)
            existing = await self._task(keys, task_id)
            if existing is not None:
                return _doc(existing[1]), False
            team = _doc(team_entry)
            seq_entry = await self.backend.get(keys.seq)
            seq = (values.unpack(seq_entry.value) if seq_entry else 0) + 1
            record: dict[str, Any] = {
                "id": task_id,
                "type": task.type,
                "priority": task.priority,
                "data": task.data,
                "caps": list(dict.fromkeys(task.required_capabilities)),
                "state": PENDING,
                "agent": "",
                "deliveries": 0,
                "failures": 0,
                "max_retries": team["max_retries"]
                if task.max_retries is None
                else task.max_retries,
                "error": "",
                "result": None,
                "seq": seq,
                "enqueued": time.time(),
                "started": None,
                "lease": None,
                "finished": None,
            }
            data = _pack(record)
            self.limits.check_value_size(data, "task")
            key = keys.record(record)
            await self.backend.txn(
                [
                    Compare(keys.team, team_entry.mod_revision),
                    Compare(keys.pointer(task_id), 0),
                    Compare(keys.seq, seq_entry.mod_revision if seq_entry else 0),
                ],
                [
                    Put(keys.seq, values.pack(seq)),
                    Put(keys.pointer(task_id), _pack({"at": key[len(keys.base) :]})),
                    Put(key, data),
                ],
            )
            return record, True

        return await retry_on_conflict(attempt)

    # -- transitions --------------------------------------------------------------------------

    def _move_ops(
        self,
        keys: _Keys,
        before: dict[str, Any],
        after: dict[str, Any],
        record_entry: Entry,
        pointer_entry: Entry | None,
    ) -> tuple[list[Compare], list[Put | Delete]]:
        """Compares and operations that replace ``before`` (read as ``record_entry``) with
        ``after``, moving the record and its lease key when their keys change."""
        compares = [Compare(record_entry.key, record_entry.mod_revision)]
        operations: list[Put | Delete] = []
        new_key = keys.record(after)
        if new_key != record_entry.key:
            operations.append(Delete(record_entry.key))
            if pointer_entry is not None:
                compares.append(Compare(pointer_entry.key, pointer_entry.mod_revision))
            operations.append(
                Put(keys.pointer(after["id"]), _pack({"at": new_key[len(keys.base) :]}))
            )
        operations.append(Put(new_key, _pack(after)))
        old_lease, new_lease = keys.lease(before), keys.lease(after)
        if old_lease != new_lease:
            if old_lease is not None:
                operations.append(Delete(old_lease))
            if new_lease is not None:
                operations.append(Put(new_lease, b"\x80"))
        return compares, operations

    def _free_agent_ops(
        self, agent_entry: Entry | None, task_id: str
    ) -> tuple[list[Compare], list[Put | Delete]]:
        """Release ``task_id`` from the agent's queue tasks; when it was the agent's current
        task, the agent works on its last other queue task, or is idle."""
        if agent_entry is None:
            return [], []
        agent = _doc(agent_entry)
        held = agent.get("held", [])
        if task_id not in held and agent.get("task") != task_id:
            return [], []
        agent["held"] = [held_id for held_id in held if held_id != task_id]
        if agent.get("task") == task_id:
            remaining = agent["held"]
            agent.update(status="working" if remaining else "idle", task=(remaining or [None])[-1])
        agent["updated"] = time.time()
        return (
            [Compare(agent_entry.key, agent_entry.mod_revision)],
            [Put(agent_entry.key, _pack(agent))],
        )

    async def _start(
        self,
        keys: _Keys,
        record_entry: Entry,
        pointer_entry: Entry | None,
        agent_entry: Entry,
        lease: float | None,
    ) -> dict[str, Any]:
        """Hand a pending task to an agent: one txn over task, pointer and agent."""
        task = _doc(record_entry)
        now = time.time()
        after = dict(task)
        after.update(
            state=IN_PROGRESS,
            agent=_doc(agent_entry)["id"],
            deliveries=task["deliveries"] + 1,
            started=now,
            lease=None if lease is None else now + lease,
        )
        if pointer_entry is None:
            pointer_entry = await self.backend.get(keys.pointer(task["id"]))
            if pointer_entry is None:
                raise ConflictError("task vanished", reason=Reason.REVISION_CONFLICT)
        compares, operations = self._move_ops(keys, task, after, record_entry, pointer_entry)
        agent = _doc(agent_entry)
        held = [*agent.get("held", []), task["id"]]
        agent.update(status="working", task=task["id"], held=held, updated=now)
        compares.append(Compare(agent_entry.key, agent_entry.mod_revision))
        operations.append(Put(agent_entry.key, _pack(agent)))
        await self.backend.txn(compares, operations)
        return after

    async def assign(
        self, team_id: str, task_id: str, agent_id: str, lease: float | None
    ) -> dict[str, Any]:
        """Move a pending task to in progress for ``agent_id``: the coordinator's explicit
        decision, refused only for an offline agent, one that lacks a required capability, or
        one that holds ``max_tasks`` queue tasks already (see :func:`_check_can_take`)."""
        check_id(team_id, "team_id")
        check_id(task_id, "task_id")
        check_id(agent_id, "agent_id")
        keys = _Keys(team_id)
        team = _doc(await self._team(keys, team_id))
        await self._requeue_expired(keys, team)

        async def attempt() -> dict[str, Any]:
            agent_entry = await self._agent(keys, agent_id)
            found = await self._task(keys, task_id)
            if found is None:
                raise _not_found("task", task_id, Reason.TASK_NOT_FOUND)
            pointer, record = found
            task, agent = _doc(record), _doc(agent_entry)
            if task["state"] != PENDING:
                raise _precondition(
                    f"task {task_id!r} is {task['state']}, not pending",
                    Reason.TASK_NOT_PENDING,
                    state=task["state"],
                )
            _check_can_take(agent, agent_id)
            missing = _missing(task, agent)
            if missing:
                raise _precondition(
                    f"agent {agent_id!r} lacks capabilities {missing} that task {task_id!r} needs",
                    Reason.MISSING_CAPABILITY,
                    missing=",".join(missing),
                )
            return await self._start(keys, record, pointer, agent_entry, lease)

        return await retry_on_conflict(attempt)

    async def claim(self, team_id: str, agent_id: str, lease: float) -> dict[str, Any] | None:
        """Lease the most urgent pending task the agent can do to it (None when there is none).

        The pending index is read in key order (priority, then sequence); the first task whose
        required capabilities the agent has is taken with one txn. When another claimer wins
        that task, the compare fails and the next candidate is tried.
        """
        check_id(team_id, "team_id")
        check_id(agent_id, "agent_id")
        keys = _Keys(team_id)
        team = _doc(await self._team(keys, team_id))
        await self._requeue_expired(keys, team)
        prefix = keys.base + STATE_PREFIX[PENDING]

        async def attempt() -> dict[str, Any] | None:
            agent_entry = await self._agent(keys, agent_id)
            agent = _doc(agent_entry)
            _check_can_take(agent, agent_id)
            lost = False
            start_after = ""
            while True:
                page = await self.backend.range(prefix, start_after=start_after, limit=CLAIM_PAGE)
                for entry in page.entries:
                    if _missing(_doc(entry), agent):
                        continue
                    try:
                        return await self._start(keys, entry, None, agent_entry, lease)
                    except ConflictError as error:
                        if error.metadata.get("key") == agent_entry.key:
                            raise  # the agent changed: read it again
                        # Another claimer took this task: try the next candidate.
                        lost = True
                if not page.more or not page.entries:
                    break
                start_after = page.entries[-1].key
            if lost:
                raise ConflictError("every candidate was taken", reason=Reason.REVISION_CONFLICT)
            return None

        return await retry_on_conflict(attempt)

    async def _in_progress(
        self, keys: _Keys, task_id: str, agent_id: str
    ) -> tuple[Entry, Entry, dict[str, Any]]:
        found = await self._task(keys, task_id)
        if found is None:
            raise _not_found("task", task_id, Reason.TASK_NOT_FOUND)
        pointer, record = found
        task = _doc(record)
        if task["state"] != IN_PROGRESS:
            raise _precondition(
                f"task {task_id!r} is {task['state']}, not in progress",
                Reason.TASK_NOT_IN_PROGRESS,
                state=task["state"],
            )
        if agent_id and task["agent"] != agent_id:
            raise _precondition(
                f"task {task_id!r} is held by agent {task['agent']!r}, not {agent_id!r}",
                Reason.NOT_TASK_OWNER,
                holder=task["agent"],
            )
        return pointer, record, task

    async def renew_lease(
        self, team_id: str, task_id: str, agent_id: str, lease: float
    ) -> dict[str, Any]:
        """Extend the lease of an in-progress task held by ``agent_id``."""
        check_id(team_id, "team_id")
        check_id(task_id, "task_id")
        check_id(agent_id, "agent_id")
        keys = _Keys(team_id)
        await self._team(keys, team_id)

        async def attempt() -> dict[str, Any]:
            pointer, record, task = await self._in_progress(keys, task_id, agent_id)
            after = dict(task, lease=time.time() + lease)
            compares, operations = self._move_ops(keys, task, after, record, pointer)
            await self.backend.txn(compares, operations)
            return after

        return await retry_on_conflict(attempt)

    async def complete(
        self, team_id: str, task_id: str, result: Any, agent_id: str = ""
    ) -> dict[str, Any]:
        """Store the result, move the task to completed and free its agent.

        A holder whose lease ran out may still complete while the task has not been handed to
        anyone else; once it was requeued, the completion fails (TASK_NOT_IN_PROGRESS or
        NOT_TASK_OWNER).
        """
        check_id(team_id, "team_id")
        check_id(task_id, "task_id")
        if agent_id:
            check_id(agent_id, "agent_id")
        values.validate(result, "result")
        keys = _Keys(team_id)
        team = _doc(await self._team(keys, team_id))

        async def attempt() -> dict[str, Any]:
            pointer, record, task = await self._in_progress(keys, task_id, agent_id)
            after = dict(task, state=COMPLETED, result=result, lease=None, finished=time.time())
            data = _pack(after)
            self.limits.check_value_size(data, "result")
            compares, operations = self._move_ops(keys, task, after, record, pointer)
            agent_entry = await self.backend.get(keys.agent(task["agent"]))
            more_compares, more_operations = self._free_agent_ops(agent_entry, task_id)
            await self.backend.txn(compares + more_compares, operations + more_operations)
            return after

        completed = await retry_on_conflict(attempt)
        retention = team["retention"]
        count = self._since_trim.get(keys.base, 0) + 1
        if count >= max(1, retention // 10):
            count = 0
            await self._trim_completed(keys, retention)
        self._since_trim[keys.base] = count
        return completed

    async def fail(
        self,
        team_id: str,
        task_id: str,
        reason: str,
        agent_id: str = "",
        retry_limit: int | None = None,
    ) -> dict[str, Any]:
        """Record a failure: back to pending while failures <= the retry limit, else
        dead-lettered. The task keeps its sequence number, so it returns to the head of its
        priority."""
        check_id(team_id, "team_id")
        check_id(task_id, "task_id")
        if agent_id:
            check_id(agent_id, "agent_id")
        check_text(reason, "reason", 4096)
        if retry_limit is not None and retry_limit < 0:
            raise InvalidArgumentError(
                "retry_limit must not be negative",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("retry_limit", "negative")],
            )
        keys = _Keys(team_id)
        await self._team(keys, team_id)

        async def attempt() -> dict[str, Any]:
            pointer, record, task = await self._in_progress(keys, task_id, agent_id)
            failures = task["failures"] + 1
            limit = task["max_retries"] if retry_limit is None else retry_limit
            after = dict(task, failures=failures, error=reason, lease=None)
            if failures > limit:
                after.update(state=DEAD_LETTERED, finished=time.time())
            else:
                after.update(state=PENDING)
            compares, operations = self._move_ops(keys, task, after, record, pointer)
            agent_entry = await self.backend.get(keys.agent(task["agent"]))
            more_compares, more_operations = self._free_agent_ops(agent_entry, task_id)
            await self.backend.txn(compares + more_compares, operations + more_operations)
            return after

        return await retry_on_conflict(attempt)

    async def requeue(self, team_id: str, task_id: str) -> dict[str, Any]:
        """Return a dead-lettered task to pending with its failures and deliveries reset (it
        keeps its sequence number, so it goes to the head of its priority). NOT_FOUND for an
        unknown task, FAILED_PRECONDITION for one that is not dead-lettered."""
        check_id(team_id, "team_id")
        check_id(task_id, "task_id")
        keys = _Keys(team_id)
        await self._team(keys, team_id)

        async def attempt() -> dict[str, Any]:
            found = await self._task(keys, task_id)
            if found is None:
                raise _not_found("task", task_id, Reason.TASK_NOT_FOUND)
            pointer, record = found
            task = _doc(record)
            if task["state"] != DEAD_LETTERED:
                raise _precondition(
                    f"task {task_id!r} is {task['state']}, not dead-lettered",
                    Reason.FAILED_PRECONDITION,
                    state=task["state"],
                )
            after = dict(task, state=PENDING, failures=0, deliveries=0, agent="", finished=None)
            compares, operations = self._move_ops(keys, task, after, record, pointer)
            await self.backend.txn(compares, operations)
            return after

        return await retry_on_conflict(attempt)

    async def _requeue_expired(self, keys: _Keys, team: dict[str, Any]) -> None:
        """Return tasks whose lease has expired to pending (delivery count kept, so the next
        hand-out makes it +1), or dead-letter them after ``max_deliveries`` hand-outs; their
        agent is set idle. Each task moves in its own txn; a lost race is simply skipped."""
        now_ms = time.time() * 1000
        tried: set[str] = set()
        while True:
            page = await self.backend.range(keys.leases, limit=CLAIM_PAGE)
            due = [
                e
                for e in page.entries
                if int(e.key[len(keys.leases) :].split("/")[0]) <= now_ms and e.key not in tried
            ]
            if not due:
                return
            for lease_entry in due:
                tried.add(lease_entry.key)
                task_id = lease_entry.key.rsplit("/", 1)[1]
                try:
                    await self._expire_one(keys, team, task_id, lease_entry)
                except ConflictError:
                    continue  # another caller moved the task first

    async def _expire_one(
        self, keys: _Keys, team: dict[str, Any], task_id: str, lease_entry: Entry
    ) -> None:
        found = await self._task(keys, task_id)
        if found is None or keys.lease(_doc(found[1])) != lease_entry.key:
            # A leftover lease key without its task: remove it if it is still the same.
            await self.backend.txn(
                [Compare(lease_entry.key, lease_entry.mod_revision)], [Delete(lease_entry.key)]
            )
            return
        pointer, record = found
        task = _doc(record)
        after = dict(task, lease=None, error=f"lease of agent {task['agent']!r} expired")
        if task["deliveries"] >= team["max_deliveries"]:
            after.update(state=DEAD_LETTERED, finished=time.time())
        else:
            after.update(state=PENDING)
        compares, operations = self._move_ops(keys, task, after, record, pointer)
        compares.append(Compare(lease_entry.key, lease_entry.mod_revision))
        agent_entry = await self.backend.get(keys.agent(task["agent"]))
        more_compares, more_operations = self._free_agent_ops(agent_entry, task_id)
        await self.backend.txn(compares + more_compares, operations + more_operations)

    async def _trim_completed(self, keys: _Keys, retention: int) -> None:
        """Remove the oldest completed tasks beyond ``retention`` (records and pointers)."""
        entries = await self._range_all(keys.base + STATE_PREFIX[COMPLETED])
        excess = entries[: max(0, len(entries) - retention)]
        for start in range(0, len(excess), 50):
            batch = excess[start : start + 50]
            compares = [Compare(e.key, e.mod_revision) for e in batch]
            operations: list[Put | Delete] = [Delete(e.key) for e in batch]
            operations += [Delete(keys.pointer(_doc(e)["id"])) for e in batch]
            try:
                await self.backend.txn(compares, operations)
            except ConflictError:
                continue  # another instance trimmed these concurrently

    # -- reading the queue ------------------------------------------------------------------

    async def _queue(self, keys: _Keys) -> QueueSnapshot:
        lists = []
        for state in (PENDING, IN_PROGRESS, COMPLETED, DEAD_LETTERED):
            entries = await self._range_all(keys.base + STATE_PREFIX[state])
            lists.append([_doc(e) for e in entries])
        return QueueSnapshot(*lists)

    async def queue_status(self, team_id: str) -> QueueSnapshot:
        """Every task of the team grouped by state (expired leases collected first)."""
        check_id(team_id, "team_id")
        keys = _Keys(team_id)
        team = _doc(await self._team(keys, team_id))
        await self._requeue_expired(keys, team)
        queue = await self._queue(keys)
        if len(queue.completed) > team["retention"]:
            await self._trim_completed(keys, team["retention"])
            queue.completed = queue.completed[len(queue.completed) - team["retention"] :]
        return queue

    async def get_task(self, team_id: str, task_id: str) -> dict[str, Any]:
        """One task (expired leases collected first)."""
        check_id(team_id, "team_id")
        check_id(task_id, "task_id")
        keys = _Keys(team_id)
        team = _doc(await self._team(keys, team_id))
        await self._requeue_expired(keys, team)
        found = await self._task(keys, task_id)
        if found is None:
            raise _not_found("task", task_id, Reason.TASK_NOT_FOUND)
        return _doc(found[1])

    async def list_tasks(
        self, team_id: str, state: str, page_size: int, page_token: str
    ) -> tuple[list[dict[str, Any]], str]:
        """One page of the team's tasks in ``state``, in the order of the queue lists."""
        check_id(team_id, "team_id")
        size = self.limits.check_page_size(page_size)
        keys = _Keys(team_id)
        team = _doc(await self._team(keys, team_id))
        await self._requeue_expired(keys, team)
        prefix = keys.base + STATE_PREFIX[state]
        after = decode_scoped(
            page_token,
            f"{team_id}/{state}",
            "page_token is not a token returned by ListTasks for this team and state",
            "malformed or issued for another list",
        )
        page = await self.backend.range(
            prefix, start_after=prefix + after if after else "", limit=size
        )
        tasks = [_doc(e) for e in page.entries]
        token = ""
        if page.more and page.entries:
            token = encode_scoped(f"{team_id}/{state}", page.entries[-1].key[len(prefix) :])
        return tasks, token

    # -- watching ---------------------------------------------------------------------------

    async def watch_team(
        self, team_id: str, progress_interval: float | None
    ) -> AsyncIterator[tuple[int, TeamView | None, list[TeamChange]]]:
        """A snapshot ``(revision, view, [])``, then ``(revision, None, changes)`` per update
        (empty changes: progress). Changes carry whole records, so replaying one is harmless;
        the stream ends after a "team_deleted" change."""
        check_id(team_id, "team_id")
        keys = _Keys(team_id)
        start = await self.backend.revision()
        view = await self.get_team(team_id, with_queue=True)
        yield start, view, []
        updates = self.backend.watch(
            keys.base, start_revision=start + 1, progress_interval=progress_interval
        )
        first = True
        async for update in updates:
            if first:
                first = False
                continue
            changes: list[TeamChange] = []
            put_ids = {
                (e.revision, e.key.rsplit("/", 1)[1])
                for e in update.events
                if e.type is EventType.PUT and e.key.startswith(keys.base + "q/")
            }
            ended = False
            for event in update.events:
                rest = event.key[len(keys.base) :]
                if rest == "team" and event.type is not EventType.PUT:
                    changes.append(TeamChange("team_deleted"))
                    ended = True
                    break
                if rest.startswith("agent/") and event.entry is not None:
                    changes.append(TeamChange("agent", _doc(event.entry)))
                elif rest.startswith("q/"):
                    task_id = rest.rsplit("/", 1)[1]
                    if event.entry is not None:
                        changes.append(TeamChange("task", _doc(event.entry), task_id))
                    elif (event.revision, task_id) not in put_ids:
                        changes.append(TeamChange("task_removed", None, task_id))
            if changes or not update.events:
                yield update.revision, None, changes
            if ended:
                return
