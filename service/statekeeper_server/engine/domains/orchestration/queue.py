"""The task queue's transitions: enqueue, assign, claim, renew, complete, fail and requeue.

Each transition is one :func:`~statekeeper_server.engine.records.transact` body: it reads the
task (pointer and record) and the agent it touches through the transaction, so the commit is
guarded by exactly what was read, and a lost race runs the body again on fresh data.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

from statekeeper import values
from statekeeper.errors import ConflictError, InvalidArgumentError, Reason

from statekeeper_server.engine.domains.orchestration.base import Base, free_agent, move, read_task
from statekeeper_server.engine.domains.orchestration.index import claim_candidate
from statekeeper_server.engine.domains.orchestration.records import (
    AGENT,
    DEFAULT_LEASE,
    MAX_NAME_LENGTH,
    OFFLINE,
    PRIORITY_NAMES,
    TASK,
    TEAM,
    AgentCoordinationState,
    Keys,
    Task,
    TaskSpec,
    TaskState,
    negative,
    not_found,
    precondition,
    priority_level,
)
from statekeeper_server.engine.identifiers import check_id, check_text
from statekeeper_server.engine.limits import check_ttl
from statekeeper_server.engine.records import Txn, transact

#: The longest failure reason, in characters.
MAX_REASON_LENGTH = 4096


def check_spec(spec: TaskSpec, field: str) -> int:
    """Validate a task to enqueue; its priority level."""
    if spec.task_id:
        check_id(spec.task_id, f"{field}.task_id")
    check_text(spec.type, f"{field}.type", MAX_NAME_LENGTH)
    level = priority_level(spec.priority_name, spec.priority_level, f"{field}.priority")
    for index, cap in enumerate(spec.required_capabilities):
        check_text(cap, f"{field}.required_capabilities[{index}]", MAX_NAME_LENGTH, required=True)
    if spec.max_retries is not None and spec.max_retries < 0:
        raise negative(f"{field}.max_retries")
    values.validate(spec.data, f"{field}.data")
    return level


def check_can_take(agent: AgentCoordinationState) -> None:
    """The rule of assign and claim: a queue task goes to any agent that is not ``offline``
    and holds fewer queue tasks than its ``max_tasks``; its free-form status and a current
    task set by ``update_agent_status`` do not stop it."""
    if agent.status == OFFLINE:
        raise precondition(f"agent {agent.agent_id!r} is offline", Reason.AGENT_OFFLINE)
    if len(agent.held) >= agent.max_tasks:
        raise precondition(
            f"agent {agent.agent_id!r} is busy: it holds {len(agent.held)} queue task(s)"
            f" {agent.held}, its max_tasks is {agent.max_tasks}",
            Reason.AGENT_BUSY,
        )


def missing(task: Task, agent: AgentCoordinationState) -> list[str]:
    """The capabilities ``task`` requires that ``agent`` lacks."""
    have = set(agent.capabilities)
    return [cap for cap in task.required_capabilities if cap not in have]


async def start(
    txn: Txn, keys: Keys, task: Task, agent: AgentCoordinationState, lease: float | None
) -> Task:
    """Hand a pending task to an agent (both read through ``txn``)."""
    now = time.time()
    after = replace(
        task,
        state=TaskState.IN_PROGRESS,
        agent_id=agent.agent_id,
        delivery_count=task.delivery_count + 1,
        start_time=now,
        lease_expire_time=None if lease is None else now + lease,
    )
    await move(txn, keys, task, after)
    working = replace(
        agent,
        status="working",
        current_task=task.task_id,
        held=[*agent.held, task.task_id],
        update_time=now,
    )
    txn.put(keys.agent(agent.agent_id), working, AGENT)
    return after


async def read_agent(txn: Txn, keys: Keys, agent_id: str) -> AgentCoordinationState:
    """The agent read through ``txn``; NOT_FOUND when unknown."""
    agent = await txn.get(keys.agent(agent_id), AGENT)
    if agent is None:
        raise not_found("agent", agent_id, Reason.AGENT_NOT_FOUND)
    return agent


async def task_in(txn: Txn, keys: Keys, task_id: str, state: TaskState, reason: Reason) -> Task:
    """The task read through ``txn``: NOT_FOUND when unknown, FAILED_PRECONDITION with
    ``reason`` when it is not in ``state``."""
    task = await read_task(txn, keys, task_id)
    if task is None:
        raise not_found("task", task_id, Reason.TASK_NOT_FOUND)
    if task.state is not state:
        raise precondition(
            f"task {task_id!r} is {task.state.phrase}, not {state.phrase}",
            reason,
            state=task.state,
        )
    return task


async def in_progress(txn: Txn, keys: Keys, task_id: str, agent_id: str) -> Task:
    """The in-progress task (held by ``agent_id`` when one is named), read through ``txn``."""
    task = await task_in(txn, keys, task_id, TaskState.IN_PROGRESS, Reason.TASK_NOT_IN_PROGRESS)
    if agent_id and task.agent_id != agent_id:
        raise precondition(
            f"task {task_id!r} is held by agent {task.agent_id!r}, not {agent_id!r}",
            Reason.NOT_TASK_OWNER,
            holder=task.agent_id,
        )
    return task


class Queue(Base):
    """The queue transitions of :class:`OrchestrationEngine`."""

    async def enqueue(self, team_id: str, spec: TaskSpec) -> tuple[Task, bool]:
        """Add a pending task; an id that exists returns the existing task (created False)."""
        check_id(team_id, "team_id")
        level = check_spec(spec, "task")
        task_id = spec.task_id or uuid.uuid4().hex
        keys = Keys(team_id)

        async def body(txn: Txn) -> tuple[Task, bool]:
            team = await txn.get(keys.team, TEAM)
            if team is None:
                raise not_found("team", team_id, Reason.TEAM_NOT_FOUND)
            existing = await read_task(txn, keys, task_id)
            if existing is not None:
                return existing, False
            seq_entry = await txn.entry(keys.seq)
            seq = (values.unpack(seq_entry.value) if seq_entry else 0) + 1
            retries = team.settings.default_max_retries
            task = Task(
                task_id=task_id,
                type=spec.type,
                priority=level,
                priority_name=PRIORITY_NAMES.get(level, ""),
                data=spec.data,
                required_capabilities=list(dict.fromkeys(spec.required_capabilities)),
                max_retries=(retries or 0) if spec.max_retries is None else spec.max_retries,
                sequence=seq,
                enqueue_time=time.time(),
            )
            txn.put_raw(keys.seq, values.pack(seq))
            await move(txn, keys, None, task)
            return task, True

        return await transact(self.backend, body, limits=self.limits)

    async def assign(self, team_id: str, task_id: str, agent_id: str, lease: float | None) -> Task:
        """Move a pending task to in progress for ``agent_id``: the coordinator's explicit
        decision, refused only for an offline agent, one that lacks a required capability, or
        one that holds ``max_tasks`` queue tasks already (see :func:`check_can_take`). With
        ``lease`` None or 0 the assignment lasts until the task ends."""
        check_id(team_id, "team_id")
        check_id(task_id, "task_id")
        check_id(agent_id, "agent_id")
        lease = check_ttl(lease, "lease")
        keys = Keys(team_id)
        await self._requeue_expired(keys, await self._team(keys))

        async def body(txn: Txn) -> Task:
            agent = await read_agent(txn, keys, agent_id)
            task = await task_in(txn, keys, task_id, TaskState.PENDING, Reason.TASK_NOT_PENDING)
            check_can_take(agent)
            lacking = missing(task, agent)
            if lacking:
                raise precondition(
                    f"agent {agent_id!r} lacks capabilities {lacking} that task {task_id!r} needs",
                    Reason.MISSING_CAPABILITY,
                    missing=",".join(lacking),
                )
            return await start(txn, keys, task, agent, lease)

        return await transact(self.backend, body, limits=self.limits)

    async def claim(self, team_id: str, agent_id: str, lease: float | None) -> Task | None:
        """Lease the most urgent pending task the agent can do to it (None when there is none).

        The candidate comes from the claim index (see
        :mod:`~statekeeper_server.engine.domains.orchestration.index`): the best head among the
        capability sets the agent has. When another claimer took it first, the commit's guard
        fails and the claim runs again on fresh data. ``lease`` None or 0 is
        :data:`~statekeeper_server.engine.domains.orchestration.records.DEFAULT_LEASE`.
        """
        check_id(team_id, "team_id")
        check_id(agent_id, "agent_id")
        lease = check_ttl(lease, "lease") or DEFAULT_LEASE
        keys = Keys(team_id)
        await self._requeue_expired(keys, await self._team(keys))

        async def body(txn: Txn) -> Task | None:
            agent = await read_agent(txn, keys, agent_id)
            check_can_take(agent)
            candidate = await claim_candidate(self.backend, keys, agent.capabilities)
            if candidate is None:
                return None
            task = await txn.get(keys.state(TaskState.PENDING) + candidate, TASK)
            if task is None:
                # Taken between the index read and this one: look again.
                raise ConflictError("the candidate was taken", reason=Reason.REVISION_CONFLICT)
            await txn.entry(keys.pointer(task.task_id))
            return await start(txn, keys, task, agent, lease)

        return await transact(self.backend, body, limits=self.limits)

    async def renew_lease(
        self, team_id: str, task_id: str, agent_id: str, lease: float | None
    ) -> Task:
        """Extend the lease of an in-progress task held by ``agent_id`` to ``lease`` seconds
        from now (required)."""
        check_id(team_id, "team_id")
        check_id(task_id, "task_id")
        check_id(agent_id, "agent_id")
        checked = check_ttl(lease, "lease")
        if checked is None:
            raise InvalidArgumentError(
                "lease is required", reason=Reason.INVALID_TTL, violations=[("lease", "required")]
            )
        keys = Keys(team_id)
        await self._team(keys)

        async def body(txn: Txn) -> Task:
            task = await in_progress(txn, keys, task_id, agent_id)
            after = replace(task, lease_expire_time=time.time() + checked)
            await move(txn, keys, task, after)
            return after

        return await transact(self.backend, body, limits=self.limits)

    async def complete(self, team_id: str, task_id: str, result: Any, agent_id: str = "") -> Task:
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
        keys = Keys(team_id)
        team = await self._team(keys)

        async def body(txn: Txn) -> Task:
            task = await in_progress(txn, keys, task_id, agent_id)
            after = replace(
                task,
                state=TaskState.COMPLETED,
                result=result,
                lease_expire_time=None,
                finish_time=time.time(),
            )
            await move(txn, keys, task, after)
            await free_agent(txn, keys, task.agent_id, task_id)
            return after

        completed = await transact(self.backend, body, limits=self.limits)
        retention = team.settings.completed_retention
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
    ) -> Task:
        """Record a failure: back to pending while failures <= the retry limit, else
        dead-lettered. The task keeps its sequence number, so it returns to the head of its
        priority."""
        check_id(team_id, "team_id")
        check_id(task_id, "task_id")
        if agent_id:
            check_id(agent_id, "agent_id")
        check_text(reason, "reason", MAX_REASON_LENGTH)
        if retry_limit is not None and retry_limit < 0:
            raise negative("retry_limit")
        keys = Keys(team_id)
        await self._team(keys)

        async def body(txn: Txn) -> Task:
            task = await in_progress(txn, keys, task_id, agent_id)
            failures = task.failure_count + 1
            limit = task.max_retries if retry_limit is None else retry_limit
            after = replace(task, failure_count=failures, last_error=reason, lease_expire_time=None)
            if failures > limit:
                after = replace(after, state=TaskState.DEAD_LETTERED, finish_time=time.time())
            else:
                after = replace(after, state=TaskState.PENDING)
            await move(txn, keys, task, after)
            await free_agent(txn, keys, task.agent_id, task_id)
            return after

        return await transact(self.backend, body, limits=self.limits)

    async def requeue(self, team_id: str, task_id: str) -> Task:
        """Return a dead-lettered task to pending with its failures and deliveries reset (it
        keeps its sequence number, so it goes to the head of its priority). NOT_FOUND for an
        unknown task, FAILED_PRECONDITION for one that is not dead-lettered."""
        check_id(team_id, "team_id")
        check_id(task_id, "task_id")
        keys = Keys(team_id)
        await self._team(keys)

        async def body(txn: Txn) -> Task:
            task = await task_in(
                txn, keys, task_id, TaskState.DEAD_LETTERED, Reason.FAILED_PRECONDITION
            )
            after = replace(
                task,
                state=TaskState.PENDING,
                failure_count=0,
                delivery_count=0,
                agent_id="",
                finish_time=None,
            )
            await move(txn, keys, task, after)
            return after

        return await transact(self.backend, body, limits=self.limits)
