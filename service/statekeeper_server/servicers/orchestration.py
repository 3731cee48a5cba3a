"""The OrchestrationService servicer: validate the request, call the engine, build the response."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from statekeeper import values
from statekeeper.errors import InvalidArgumentError, Reason
from statekeeper.v1 import orchestration_service_pb2 as pb
from statekeeper.v1 import orchestration_service_pb2_grpc

from statekeeper_server.engine.domains.orchestration import (
    COMPLETED,
    DEAD_LETTERED,
    DEFAULT_LEASE,
    DEFAULT_MAX_TASKS,
    IN_PROGRESS,
    PENDING,
    PRIORITY_NAMES,
    OrchestrationEngine,
    QueueSnapshot,
    TaskInput,
    TeamChange,
    TeamSettings,
    TeamView,
    priority_level,
)
from statekeeper_server.servicers.batching import RESPONSE_OVERHEAD, field_bytes, pieces
from statekeeper_server.servicers.convert import (
    document_to_wire,
    optional_document,
    set_time,
    ttl_seconds,
)

if TYPE_CHECKING:
    from statekeeper_server.core import Core

#: How often an idle team watch reports progress unless the request says otherwise.
DEFAULT_PROGRESS_INTERVAL = 10.0

STATE_TO_PROTO = {
    PENDING: pb.TASK_STATE_PENDING,
    IN_PROGRESS: pb.TASK_STATE_IN_PROGRESS,
    COMPLETED: pb.TASK_STATE_COMPLETED,
    DEAD_LETTERED: pb.TASK_STATE_DEAD_LETTERED,
}
STATE_FROM_PROTO = {number: name for name, number in STATE_TO_PROTO.items()}


def agent_to_proto(agent: dict[str, Any]) -> pb.AgentCoordinationState:
    """An AgentCoordinationState message for an agent record."""
    message = pb.AgentCoordinationState(
        agent_id=agent["id"],
        status=agent["status"],
        capabilities=agent["caps"],
        current_task=agent.get("task"),
        max_tasks=agent.get("max_tasks", DEFAULT_MAX_TASKS),
    )
    set_time(message, "update_time", agent.get("updated"))
    return message


def agent_from_proto(message: pb.AgentCoordinationState) -> dict[str, Any]:
    """An agent record (not yet validated) for a message."""
    return {
        "id": message.agent_id,
        "status": message.status,
        "caps": list(message.capabilities),
        "task": message.current_task if message.HasField("current_task") else None,
        "max_tasks": message.max_tasks,
    }


def task_to_proto(task: dict[str, Any], encoding: int) -> pb.Task:
    """A Task message for a task record, its documents in ``encoding``."""
    message = pb.Task(
        task_id=task["id"],
        type=task["type"],
        priority=task["priority"],
        priority_name=PRIORITY_NAMES.get(task["priority"], ""),
        data=document_to_wire(task["data"], encoding),
        required_capabilities=task["caps"],
        state=STATE_TO_PROTO[task["state"]],
        agent_id=task["agent"],
        delivery_count=task["deliveries"],
        failure_count=task["failures"],
        max_retries=task["max_retries"],
        last_error=task["error"],
        sequence=task["seq"],
    )
    if task["state"] == COMPLETED:
        message.result.CopyFrom(document_to_wire(task["result"], encoding))
    set_time(message, "enqueue_time", task["enqueued"])
    set_time(message, "start_time", task["started"])
    set_time(message, "lease_expire_time", task["lease"])
    set_time(message, "finish_time", task["finished"])
    return message


def task_from_proto(spec: pb.TaskSpec, field: str = "task") -> TaskInput:
    """A TaskInput for a TaskSpec (priority and data validated)."""
    kind = spec.WhichOneof("priority")
    level = priority_level(
        spec.priority_name if kind == "priority_name" else None,
        spec.priority_level if kind == "priority_level" else None,
        f"{field}.priority",
    )
    data = values.wire_to_document(spec.data, f"{field}.data") if spec.HasField("data") else None
    return TaskInput(
        task_id=spec.task_id,
        type=spec.type,
        priority=level,
        data=data,
        required_capabilities=list(spec.required_capabilities),
        max_retries=spec.max_retries if spec.HasField("max_retries") else None,
    )


def queue_to_proto(queue: QueueSnapshot, encoding: int) -> pb.TaskQueueState:
    """A TaskQueueState message for a queue snapshot."""
    return pb.TaskQueueState(
        pending=[task_to_proto(t, encoding) for t in queue.pending],
        in_progress=[task_to_proto(t, encoding) for t in queue.in_progress],
        completed=[task_to_proto(t, encoding) for t in queue.completed],
        dead_lettered=[task_to_proto(t, encoding) for t in queue.dead_lettered],
    )


def team_to_proto(view: TeamView, encoding: int) -> pb.TeamState:
    """A TeamState message for a team view."""
    team = view.team
    message = pb.TeamState(
        team_id=team["id"],
        settings=pb.TeamSettings(
            completed_retention=team["retention"],
            default_max_retries=team["max_retries"],
            max_deliveries=team["max_deliveries"],
        ),
        queue_counts=pb.QueueCounts(
            pending=view.counts[PENDING],
            in_progress=view.counts[IN_PROGRESS],
            completed=view.counts[COMPLETED],
            dead_lettered=view.counts[DEAD_LETTERED],
        ),
    )
    for agent_id, agent in view.agents.items():
        message.agents[agent_id].CopyFrom(agent_to_proto(agent))
    if view.queue is not None:
        message.task_queue.CopyFrom(queue_to_proto(view.queue, encoding))
    set_time(message, "create_time", team["created"])
    return message


def _change_to_proto(change: TeamChange, encoding: int) -> pb.TeamChange:
    if change.kind == "agent":
        assert change.record is not None
        return pb.TeamChange(
            type=pb.TEAM_CHANGE_TYPE_AGENT_UPDATED, agent=agent_to_proto(change.record)
        )
    if change.kind == "task":
        assert change.record is not None
        return pb.TeamChange(
            type=pb.TEAM_CHANGE_TYPE_TASK_UPDATED,
            task=task_to_proto(change.record, encoding),
            task_id=change.task_id,
        )
    if change.kind == "task_removed":
        return pb.TeamChange(type=pb.TEAM_CHANGE_TYPE_TASK_REMOVED, task_id=change.task_id)
    return pb.TeamChange(type=pb.TEAM_CHANGE_TYPE_TEAM_DELETED)


def _queued_tasks(snapshot: pb.TeamState) -> list[pb.TeamChange]:
    """Empty the task lists of a snapshot too large for one message, and return its tasks as
    TASK_UPDATED changes to send after it (at the snapshot's revision)."""
    queue = snapshot.task_queue
    tasks = [*queue.pending, *queue.in_progress, *queue.completed, *queue.dead_lettered]
    snapshot.ClearField("task_queue")
    return [
        pb.TeamChange(type=pb.TEAM_CHANGE_TYPE_TASK_UPDATED, task=task, task_id=task.task_id)
        for task in tasks
    ]


def _lease(request: Any, default: float | None) -> float | None:
    seconds = ttl_seconds(request, "lease")
    return default if seconds is None else seconds


class OrchestrationServicer(orchestration_service_pb2_grpc.OrchestrationServiceServicer):
    """gRPC front of the orchestration engine (task queue, teams, assignments)."""

    def __init__(self, runtime: Core) -> None:
        self.runtime = runtime
        self.engine = OrchestrationEngine(runtime.backend, runtime.limits)

    async def CreateTeam(
        self, request: pb.CreateTeamRequest, context: object
    ) -> pb.CreateTeamResponse:
        """Create a team."""
        tasks = [
            task_from_proto(t, f"initial_tasks[{i}]") for i, t in enumerate(request.initial_tasks)
        ]
        settings = request.settings
        view = await self.engine.create_team(
            request.team_id,
            [agent_from_proto(a) for a in request.agents],
            tasks,
            TeamSettings(
                completed_retention=settings.completed_retention,
                default_max_retries=settings.default_max_retries
                if settings.HasField("default_max_retries")
                else None,
                max_deliveries=settings.max_deliveries,
            ),
        )
        return pb.CreateTeamResponse(team=team_to_proto(view, request.value_encoding))

    async def GetTeam(self, request: pb.GetTeamRequest, context: object) -> pb.GetTeamResponse:
        """Read a team."""
        view = await self.engine.get_team(request.team_id)
        return pb.GetTeamResponse(team=team_to_proto(view, request.value_encoding))

    async def DeleteTeam(
        self, request: pb.DeleteTeamRequest, context: object
    ) -> pb.DeleteTeamResponse:
        """Delete a team."""
        return pb.DeleteTeamResponse(deleted=await self.engine.delete_team(request.team_id))

    async def AddAgent(self, request: pb.AddAgentRequest, context: object) -> pb.AddAgentResponse:
        """Add an agent."""
        agent = await self.engine.add_agent(request.team_id, agent_from_proto(request.agent))
        return pb.AddAgentResponse(agent=agent_to_proto(agent))

    async def UpdateAgentStatus(
        self, request: pb.UpdateAgentStatusRequest, context: object
    ) -> pb.UpdateAgentStatusResponse:
        """Set an agent's status."""
        agent = await self.engine.update_agent_status(
            request.team_id,
            request.agent_id,
            request.status,
            request.current_task if request.HasField("current_task") else None,
        )
        return pb.UpdateAgentStatusResponse(agent=agent_to_proto(agent))

    async def GetAvailableAgents(
        self, request: pb.GetAvailableAgentsRequest, context: object
    ) -> pb.GetAvailableAgentsResponse:
        """List idle agents with a capability."""
        agents = await self.engine.available_agents(request.team_id, request.capability)
        return pb.GetAvailableAgentsResponse(agents=[agent_to_proto(a) for a in agents])

    async def EnqueueTask(
        self, request: pb.EnqueueTaskRequest, context: object
    ) -> pb.EnqueueTaskResponse:
        """Enqueue a task (idempotent by task id)."""
        task, created = await self.engine.enqueue(request.team_id, task_from_proto(request.task))
        return pb.EnqueueTaskResponse(
            task=task_to_proto(task, request.value_encoding), created=created
        )

    async def GetTask(self, request: pb.GetTaskRequest, context: object) -> pb.GetTaskResponse:
        """Read a task."""
        task = await self.engine.get_task(request.team_id, request.task_id)
        return pb.GetTaskResponse(task=task_to_proto(task, request.value_encoding))

    async def AssignTask(
        self, request: pb.AssignTaskRequest, context: object
    ) -> pb.AssignTaskResponse:
        """Assign a pending task to an agent."""
        task = await self.engine.assign(
            request.team_id, request.task_id, request.agent_id, _lease(request, None)
        )
        return pb.AssignTaskResponse(task=task_to_proto(task, request.value_encoding))

    async def ClaimNextTask(
        self, request: pb.ClaimNextTaskRequest, context: object
    ) -> pb.ClaimNextTaskResponse:
        """Claim the next task an agent can do."""
        lease = _lease(request, DEFAULT_LEASE)
        assert lease is not None
        task = await self.engine.claim(request.team_id, request.agent_id, lease)
        if task is None:
            return pb.ClaimNextTaskResponse()
        return pb.ClaimNextTaskResponse(task=task_to_proto(task, request.value_encoding))

    async def RenewLease(
        self, request: pb.RenewLeaseRequest, context: object
    ) -> pb.RenewLeaseResponse:
        """Extend a lease."""
        lease = _lease(request, None)
        if lease is None:
            raise InvalidArgumentError(
                "lease is required",
                reason=Reason.INVALID_TTL,
                violations=[("lease", "required")],
            )
        task = await self.engine.renew_lease(
            request.team_id, request.task_id, request.agent_id, lease
        )
        return pb.RenewLeaseResponse(task=task_to_proto(task, request.value_encoding))

    async def CompleteTask(
        self, request: pb.CompleteTaskRequest, context: object
    ) -> pb.CompleteTaskResponse:
        """Complete a task."""
        result = optional_document(request, "result", "result")
        task = await self.engine.complete(
            request.team_id, request.task_id, result, request.agent_id
        )
        return pb.CompleteTaskResponse(task=task_to_proto(task, request.value_encoding))

    async def FailTask(self, request: pb.FailTaskRequest, context: object) -> pb.FailTaskResponse:
        """Report a failed attempt."""
        task = await self.engine.fail(
            request.team_id,
            request.task_id,
            request.reason,
            request.agent_id,
            request.retry_limit if request.HasField("retry_limit") else None,
        )
        return pb.FailTaskResponse(task=task_to_proto(task, request.value_encoding))

    async def RequeueTask(
        self, request: pb.RequeueTaskRequest, context: object
    ) -> pb.RequeueTaskResponse:
        """Queue a dead-lettered task again."""
        task = await self.engine.requeue(request.team_id, request.task_id)
        return pb.RequeueTaskResponse(task=task_to_proto(task, request.value_encoding))

    async def GetQueueStatus(
        self, request: pb.GetQueueStatusRequest, context: object
    ) -> pb.GetQueueStatusResponse:
        """Read the whole queue."""
        queue = await self.engine.queue_status(request.team_id)
        return pb.GetQueueStatusResponse(queue=queue_to_proto(queue, request.value_encoding))

    async def ListTasks(
        self, request: pb.ListTasksRequest, context: object
    ) -> pb.ListTasksResponse:
        """One page of tasks in one state."""
        state = STATE_FROM_PROTO.get(request.state)
        if state is None:
            raise InvalidArgumentError(
                "state is required",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("state", "required")],
            )
        tasks, token = await self.engine.list_tasks(
            request.team_id, state, request.page_size, request.page_token
        )
        return pb.ListTasksResponse(
            tasks=[task_to_proto(t, request.value_encoding) for t in tasks],
            next_page_token=token,
        )

    async def WatchTeam(
        self, request: pb.WatchTeamRequest, context: object
    ) -> AsyncIterator[pb.WatchTeamResponse]:
        """Stream a snapshot, then the team's changes."""
        interval = ttl_seconds(request, "progress_interval") or DEFAULT_PROGRESS_INTERVAL
        encoding = request.value_encoding
        limit = self.runtime.limits.max_message_bytes
        updates = self.engine.watch_team(request.team_id, interval)
        async for revision, view, changes in self.runtime.until_stopping(updates):
            messages = [_change_to_proto(c, encoding) for c in changes]
            if view is not None:
                snapshot = team_to_proto(view, encoding)
                if snapshot.ByteSize() + RESPONSE_OVERHEAD > limit:
                    messages = _queued_tasks(snapshot)
                yield pb.WatchTeamResponse(snapshot=snapshot, revision=revision)
                if not messages:
                    continue
            elif not messages:
                yield pb.WatchTeamResponse(revision=revision)  # progress
                continue
            # Changes carry whole records, so one update's changes may be split anywhere.
            sized = ((revision, m, field_bytes(m.ByteSize())) for m in messages)
            for piece in pieces(sized, revision, limit):
                yield pb.WatchTeamResponse(changes=piece.items, revision=revision)
