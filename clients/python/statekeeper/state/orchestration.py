"""``OrchestrationStateManager``: multi-agent team state and a task queue (the reference's API).

A team has agents (:class:`AgentCoordinationState`) and a queue (:class:`TaskQueueState`).
Tasks are handed out most urgent first — priority names map to levels ``"low"`` 10,
``"normal"`` 20, ``"high"`` 30, ``"critical"`` 40, and an integer 0..1000 may be given
instead (larger is more urgent) — and first in, first out within one level. ``assign_task``
and ``claim_next_task`` move a task and its agent in one atomic step on the server, so a task
is never handed to two agents, even with several servers on one Redis. ``claim_next_task``
leases the task: when the lease runs out before ``complete_task`` / ``fail_task``, the task
returns to pending and the next hand-out counts as another delivery.

Every call is one round trip to the store; nothing is cached in the client.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from statekeeper import values
from statekeeper.errors import InvalidArgumentError, Reason
from statekeeper.messages import enum_from_number, enum_to_number, from_message, to_message
from statekeeper.state.client import (
    FIRST_RECONNECT_DELAY,
    MSGPACK,
    ServiceClient,
    optional_document,
)
from statekeeper.state.live import LiveStream
from statekeeper.timestamps import optional_datetime, to_duration
from statekeeper.v1 import orchestration_service_pb2 as pb
from statekeeper.v1 import orchestration_service_pb2_grpc

#: How many tasks of one state each page of :meth:`OrchestrationStateManager.get_queue_status`
#: reads (the server's largest page).
QUEUE_PAGE = 1000
#: The range of the wire's priority level.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_TASK_KEYS = frozenset(
    {"id", "task_id", "type", "priority", "data", "capability", "required_capabilities"}
    | {"max_retries"}
)


class TaskStatus(enum.StrEnum):
    """Where a task is in its team's queue."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    DEAD_LETTERED = "dead_lettered"


@dataclass
class AgentCoordinationState:
    """One agent of a team: ``status`` ``"idle"`` means available; ``current_task`` is the id
    of the task it works on. ``max_tasks`` is how many queue tasks (``assign_task``,
    ``claim_next_task``) it may hold at once (default 1); ``"offline"`` agents get none."""

    agent_id: str
    status: str = "idle"
    capabilities: list[str] = field(default_factory=list)
    current_task: str | None = None
    updated_at: datetime | None = None
    max_tasks: int = 1


@dataclass
class QueuedTask:
    """One task of a queue with its delivery history.

    ``priority`` is the name when the level is a named one, else the integer level;
    ``delivery_count`` counts hand-outs (assignments and claims), so a task claimed again after
    an expired lease has ``delivery_count == 2``.
    """

    id: str
    type: str = ""
    priority: str | int = "normal"
    data: Any = None
    status: TaskStatus = TaskStatus.PENDING
    agent_id: str | None = None
    delivery_count: int = 0
    failure_count: int = 0
    max_retries: int = 0
    last_error: str = ""
    result: Any = None
    sequence: int = 0
    required_capabilities: list[str] = field(default_factory=list)
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    lease_expires_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass
class TaskQueueState:
    """A team's queue: pending (most urgent first), in progress, completed (oldest first, the
    retained ones) and dead-lettered tasks."""

    pending: list[Any] = field(default_factory=list)
    in_progress: list[Any] = field(default_factory=list)
    completed: list[Any] = field(default_factory=list)
    dead_lettered: list[Any] = field(default_factory=list)


@dataclass
class TeamState:
    """A team: its agents by id and its queue. When creating a team, ``task_queue.pending``
    may hold task dicts (as for :meth:`OrchestrationStateManager.enqueue_task`) that are
    enqueued in order."""

    team_id: str
    agents: dict[str, AgentCoordinationState] = field(default_factory=dict)
    task_queue: TaskQueueState = field(default_factory=TaskQueueState)
    created_at: datetime | None = None


class TeamChangeType(enum.StrEnum):
    """What a :class:`TeamChange` reports."""

    SNAPSHOT = "snapshot"
    AGENT_UPDATED = "agent_updated"
    TASK_UPDATED = "task_updated"
    TASK_REMOVED = "task_removed"
    TEAM_DELETED = "team_deleted"


@dataclass
class TeamChange:
    """One item of :meth:`OrchestrationStateManager.watch_team`: first a ``SNAPSHOT`` with
    ``team`` (whole queue included), then agent / task changes carrying the whole new record."""

    type: TeamChangeType
    revision: int
    team: TeamState | None = None
    agent: AgentCoordinationState | None = None
    task: QueuedTask | None = None
    task_id: str | None = None


#: The API's field names that differ from the messages'.
_AGENT_NAMES = {"updated_at": "update_time"}
_TASK_NAMES = {
    "id": "task_id",
    "status": "state",
    "enqueued_at": "enqueue_time",
    "started_at": "start_time",
    "lease_expires_at": "lease_expire_time",
    "finished_at": "finish_time",
}


def _agent(message: pb.AgentCoordinationState) -> AgentCoordinationState:
    return from_message(message, AgentCoordinationState, _AGENT_NAMES)


def _task(message: pb.Task) -> QueuedTask:
    """A QueuedTask: the fields by name; the priority as its name when it has one, the
    documents decoded, no agent as None."""
    task = from_message(message, QueuedTask, _TASK_NAMES)
    task.priority = message.priority_name or message.priority
    task.data = values.wire_to_python(message.data)
    task.result = optional_document(message, "result")
    task.agent_id = message.agent_id or None
    return task


def _queue(message: pb.TaskQueueState) -> TaskQueueState:
    return TaskQueueState(
        pending=[_task(t) for t in message.pending],
        in_progress=[_task(t) for t in message.in_progress],
        completed=[_task(t) for t in message.completed],
        dead_lettered=[_task(t) for t in message.dead_lettered],
    )


def task_spec(task: Mapping[str, Any] | QueuedTask) -> pb.TaskSpec:
    """The TaskSpec of a task dict (``id``, ``type``, ``priority``, ``data``,
    ``required_capabilities`` or ``capability``, ``max_retries``). A key that names none of
    them is refused here (the message has no field for it); the server checks every value.
    An integer priority is a level, any other priority a name."""
    if isinstance(task, QueuedTask):
        task = {
            "id": task.id,
            "type": task.type,
            "priority": task.priority,
            "data": task.data,
            "required_capabilities": task.required_capabilities,
        }
    unknown = sorted(set(task) - _TASK_KEYS)
    if unknown:
        raise InvalidArgumentError(
            f"unknown task fields {unknown}; put extra information under 'data'",
            reason=Reason.INVALID_ARGUMENT,
            violations=[(f"task.{name}", "unknown field") for name in unknown],
        )
    caps = list(task.get("required_capabilities") or [])
    if task.get("capability"):
        caps.append(task["capability"])
    spec = pb.TaskSpec(
        task_id=str(task.get("id") or task.get("task_id") or ""),
        type=str(task.get("type") or ""),
        required_capabilities=caps,
        max_retries=task.get("max_retries"),
    )
    if "data" in task:
        spec.data.CopyFrom(values.document_to_wire(task["data"]))
    priority = task.get("priority")
    if isinstance(priority, int) and not isinstance(priority, bool):
        # A level beyond the wire's int32 is sent as the nearest int32, which is outside the
        # server's range too, so the server's error is the one raised.
        spec.priority_level = min(max(priority, INT32_MIN), INT32_MAX)
    elif priority is not None:
        # Anything else is a name (its text): the server refuses one it does not know.
        spec.priority_name = str(priority)
    return spec


class OrchestrationStateManager(ServiceClient):
    """Team, agent and task-queue state shared by every process that uses the same store.

    ``persistence`` is ``"memory"``, ``"file"`` or ``"redis"`` (the engine runs in this
    process) or ``"grpc"`` (a server at ``address``); ``transport`` shares one connection.
    ``sync_interval`` (seconds) is kept from the reference: state is never cached client-side
    (every call reads or writes the shared store), so there is nothing to synchronise
    periodically; the value is the longest pause of :meth:`watch_team` before it reconnects
    after a dropped stream. ``completed_retention``, ``max_retries`` and ``max_deliveries`` are
    the settings of the teams this manager creates; ``default_lease`` (seconds) is the lease of
    :meth:`claim_next_task` when none is given. ``**connection`` (``address``, ``timeout``,
    TLS, token, namespace, ...) are those of :class:`~statekeeper.state.client.ServiceClient`.
    """

    _STUB = orchestration_service_pb2_grpc.OrchestrationServiceStub
    _SERVICE = "statekeeper.v1.OrchestrationService"

    def __init__(
        self,
        persistence: Any = "memory",
        sync_interval: float = 1.0,
        *,
        completed_retention: int = 1000,
        max_retries: int = 3,
        max_deliveries: int = 10,
        default_lease: float = 30.0,
        **connection: Any,
    ) -> None:
        super().__init__(persistence, **connection)
        self.sync_interval = sync_interval
        self.completed_retention = completed_retention
        self.max_retries = max_retries
        self.max_deliveries = max_deliveries
        self.default_lease = default_lease

    # -- teams and agents -----------------------------------------------------------------------

    async def create_team(self, team_state: TeamState) -> TeamState:
        """Create a team with its agents and enqueue the task dicts of
        ``team_state.task_queue.pending``; AlreadyExistsError when the team exists."""
        queue = team_state.task_queue
        if queue.in_progress or queue.completed or queue.dead_lettered:
            raise InvalidArgumentError(
                "a new team's queue may only hold pending tasks",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("task_queue", "in_progress/completed must be empty")],
            )
        for key, agent in team_state.agents.items():
            if key != agent.agent_id:
                raise InvalidArgumentError(
                    f"agents[{key!r}] holds agent_id {agent.agent_id!r}",
                    reason=Reason.INVALID_ARGUMENT,
                    violations=[(f"agents[{key}]", "key differs from agent_id")],
                )
        request = pb.CreateTeamRequest(
            team_id=team_state.team_id,
            agents=[
                to_message(a, pb.AgentCoordinationState, _AGENT_NAMES)
                for a in team_state.agents.values()
            ],
            initial_tasks=[task_spec(t) for t in queue.pending],
            settings=pb.TeamSettings(
                completed_retention=self.completed_retention,
                default_max_retries=self.max_retries,
                max_deliveries=self.max_deliveries,
            ),
            value_encoding=MSGPACK,
        )
        response = await self._call("CreateTeam", request)
        return await self._team_with_queue(response.team)

    async def _team_with_queue(self, message: pb.TeamState) -> TeamState:
        team = _team(message)
        team.task_queue = await self.get_queue_status(team.team_id)
        return team

    async def get_team(self, team_id: str) -> TeamState:
        """The team with its agents (a dict by agent id) and its queue; NotFoundError when
        unknown."""
        response = await self._call(
            "GetTeam", pb.GetTeamRequest(team_id=team_id, value_encoding=MSGPACK)
        )
        return await self._team_with_queue(response.team)

    async def delete_team(self, team_id: str) -> bool:
        """Delete a team with its agents and tasks; True when it existed."""
        response = await self._call("DeleteTeam", pb.DeleteTeamRequest(team_id=team_id))
        return bool(response.deleted)

    async def add_agent(
        self, team_id: str, agent: AgentCoordinationState
    ) -> AgentCoordinationState:
        """Add an agent to a team; AlreadyExistsError when the id is taken."""
        response = await self._call(
            "AddAgent",
            pb.AddAgentRequest(
                team_id=team_id, agent=to_message(agent, pb.AgentCoordinationState, _AGENT_NAMES)
            ),
        )
        return _agent(response.agent)

    async def update_agent_status(
        self, team_id: str, agent_id: str, status: str, current_task: str | None = None
    ) -> AgentCoordinationState:
        """Set an agent's status and current task (``None`` clears it)."""
        request = pb.UpdateAgentStatusRequest(
            team_id=team_id, agent_id=agent_id, status=status, current_task=current_task
        )
        response = await self._call("UpdateAgentStatus", request)
        return _agent(response.agent)

    async def get_available_agents(
        self, team_id: str, capability: str | None = None
    ) -> list[AgentCoordinationState]:
        """Idle agents without a current task that have ``capability`` (None: any)."""
        request = pb.GetAvailableAgentsRequest(team_id=team_id, capability=capability or "")
        response = await self._call("GetAvailableAgents", request)
        return [_agent(a) for a in response.agents]

    # -- the queue ------------------------------------------------------------------------------

    async def enqueue_task(self, team_id: str, task: Mapping[str, Any]) -> QueuedTask:
        """Add a task dict (``id``, ``type``, ``priority``, ``data``, optional
        ``required_capabilities`` / ``capability`` and ``max_retries``) to the pending queue.
        Enqueueing an id that exists returns the existing task unchanged."""
        request = pb.EnqueueTaskRequest(
            team_id=team_id, task=task_spec(task), value_encoding=MSGPACK
        )
        response = await self._call("EnqueueTask", request)
        return _task(response.task)

    async def get_task(self, team_id: str, task_id: str) -> QueuedTask:
        """One task; NotFoundError when unknown (or trimmed by completed-task retention)."""
        request = pb.GetTaskRequest(team_id=team_id, task_id=task_id, value_encoding=MSGPACK)
        return _task((await self._call("GetTask", request)).task)

    async def assign_task(
        self,
        team_id: str,
        task_id: str,
        agent_id: str,
        lease: float | timedelta | None = None,
    ) -> QueuedTask:
        """Atomically move a pending task to in progress and mark the agent working on it.

        This is the coordinator's decision: any agent of the team may get the task unless it
        is ``"offline"`` (AGENT_OFFLINE), lacks a required capability (MISSING_CAPABILITY) or
        already holds ``max_tasks`` queue tasks (AGENT_BUSY); its status and a current task set
        with :meth:`update_agent_status` do not stop it. FailedPreconditionError (nothing
        changed) also when the task is not pending. ``lease`` (seconds) is optional here."""
        request = pb.AssignTaskRequest(
            team_id=team_id,
            task_id=task_id,
            agent_id=agent_id,
            lease=to_duration(lease),
            value_encoding=MSGPACK,
        )
        return _task((await self._call("AssignTask", request)).task)

    async def claim_next_task(
        self, team_id: str, agent_id: str, lease: float | timedelta | None = None
    ) -> QueuedTask | None:
        """Lease the most urgent pending task the agent can do (None when there is none).
        ``lease`` (seconds, default ``default_lease``) is the visibility timeout."""
        request = pb.ClaimNextTaskRequest(
            team_id=team_id,
            agent_id=agent_id,
            lease=to_duration(self.default_lease if lease is None else lease),
            value_encoding=MSGPACK,
        )
        response = await self._call("ClaimNextTask", request)
        return _task(response.task) if response.HasField("task") else None

    async def renew_lease(
        self, team_id: str, task_id: str, agent_id: str, lease: float | timedelta
    ) -> QueuedTask:
        """Extend the lease of a task the agent holds to ``lease`` seconds from now."""
        request = pb.RenewLeaseRequest(
            team_id=team_id,
            task_id=task_id,
            agent_id=agent_id,
            lease=to_duration(lease),
            value_encoding=MSGPACK,
        )
        return _task((await self._call("RenewLease", request)).task)

    async def complete_task(
        self, team_id: str, task_id: str, result: Any = None, agent_id: str | None = None
    ) -> QueuedTask:
        """Store the result, move the task to completed and free its agent.
        FailedPreconditionError when the task is not in progress (or, with ``agent_id``, is
        held by another agent)."""
        request = pb.CompleteTaskRequest(
            team_id=team_id,
            task_id=task_id,
            result=values.document_to_wire(result),
            agent_id=agent_id or "",
            value_encoding=MSGPACK,
        )
        return _task((await self._call("CompleteTask", request)).task)

    async def fail_task(
        self,
        team_id: str,
        task_id: str,
        reason: str,
        agent_id: str | None = None,
        retry_limit: int | None = None,
    ) -> QueuedTask:
        """Record a failed attempt: the task returns to pending while its failures do not
        exceed the retry limit (``retry_limit``, else the task's ``max_retries``), and is
        dead-lettered after that."""
        request = pb.FailTaskRequest(
            team_id=team_id,
            task_id=task_id,
            reason=reason,
            agent_id=agent_id or "",
            retry_limit=retry_limit,
            value_encoding=MSGPACK,
        )
        return _task((await self._call("FailTask", request)).task)

    async def requeue_task(self, team_id: str, task_id: str) -> QueuedTask:
        """Return a dead-lettered task to pending, at the head of its priority with its failure
        and delivery counts reset. FailedPreconditionError when the task is not dead-lettered
        (so a repeated requeue never queues it twice), NotFoundError when unknown."""
        request = pb.RequeueTaskRequest(team_id=team_id, task_id=task_id, value_encoding=MSGPACK)
        return _task((await self._call("RequeueTask", request)).task)

    async def get_queue_status(self, team_id: str) -> TaskQueueState:
        """The team's queue: ``pending``, ``in_progress``, ``completed`` and
        ``dead_lettered`` lists of :class:`QueuedTask`, whole. The server answers with the
        first page of each list (GetQueueStatus), the rest is read page by page (ListTasks),
        so a large queue never needs one oversized message; a task that moves while the pages
        are read may be listed in two states or in none."""
        request = pb.GetQueueStatusRequest(
            team_id=team_id, page_size=QUEUE_PAGE, value_encoding=MSGPACK
        )
        response = await self._call("GetQueueStatus", request)
        queue = _queue(response.queue)
        for status in TaskStatus:
            tasks: list[Any] = getattr(queue, status.value)
            token = getattr(response.next_page_tokens, status.value)
            page_of: dict[str, Any] = {
                "team_id": team_id,
                "state": enum_to_number(status, pb.TaskState.DESCRIPTOR),
                "page_size": QUEUE_PAGE,
                "value_encoding": MSGPACK,
            }
            while token:
                page = await self._call(
                    "ListTasks", pb.ListTasksRequest(page_token=token, **page_of)
                )
                tasks.extend(_task(t) for t in page.tasks)
                token = page.next_page_token
        return queue

    async def iter_tasks(
        self, team_id: str, status: TaskStatus | str, page_size: int = 0
    ) -> AsyncIterator[QueuedTask]:
        """Every task in one state, fetched page by page, in queue order."""
        pages = self._pages(
            "ListTasks",
            pb.ListTasksRequest,
            "tasks",
            team_id=team_id,
            state=enum_to_number(status, pb.TaskState.DESCRIPTOR),
            page_size=page_size,
            value_encoding=MSGPACK,
        )
        async for task in pages:
            yield _task(task)

    def watch_team(self, team_id: str) -> LiveStream[TeamChange]:
        """A ``SNAPSHOT`` of the team, then every change of its agents and tasks, until the
        team is deleted. After a dropped connection the watch reconnects (waiting at most
        ``sync_interval`` between attempts) and starts again with a fresh snapshot."""
        changes = LiveStream(self, "WatchTeam", _TeamFeed(team_id), f"watch of team {team_id!r}")
        changes.backoff_limit = max(self.sync_interval, FIRST_RECONNECT_DELAY)
        return changes


class _TeamFeed:
    """The WatchTeam stream: resumed by a fresh snapshot, finished by TEAM_DELETED."""

    def __init__(self, team_id: str) -> None:
        self.team_id = team_id
        self.finished = False
        self.revision = 0

    def request(self) -> pb.WatchTeamRequest:
        """Ask for a snapshot and the changes after it."""
        return pb.WatchTeamRequest(team_id=self.team_id, value_encoding=MSGPACK)

    def receive(self, message: pb.WatchTeamResponse) -> list[TeamChange]:
        """The snapshot, or the changes, of one message."""
        self.revision = max(self.revision, message.revision)
        if message.HasField("snapshot"):
            team = _team(message.snapshot)
            team.task_queue = _queue(message.snapshot.task_queue)
            return [TeamChange(TeamChangeType.SNAPSHOT, message.revision, team=team)]
        changes = []
        for change in message.changes:
            kind = enum_from_number(change.type, pb.TeamChangeType.DESCRIPTOR, TeamChangeType)
            changes.append(
                TeamChange(
                    kind,
                    message.revision,
                    agent=_agent(change.agent) if change.HasField("agent") else None,
                    task=_task(change.task) if change.HasField("task") else None,
                    task_id=change.task_id or None,
                )
            )
            if kind is TeamChangeType.TEAM_DELETED:
                self.finished = True
                break
        return changes

    def commit(self) -> None:
        """Nothing to remember: a reconnect starts from a snapshot."""


def _team(message: pb.TeamState) -> TeamState:
    """A TeamState without its queue (the agents converted one by one for their renames)."""
    return TeamState(
        team_id=message.team_id,
        agents={agent_id: _agent(agent) for agent_id, agent in sorted(message.agents.items())},
        created_at=optional_datetime(message, "create_time"),
    )
