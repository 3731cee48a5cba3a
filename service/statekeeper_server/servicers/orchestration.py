"""The OrchestrationService servicer: validate the request, call the engine, build the response."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING

from statekeeper import values
from statekeeper.messages import enum_from_number, from_message, to_message
from statekeeper.v1 import orchestration_service_pb2 as pb
from statekeeper.v1 import orchestration_service_pb2_grpc

from statekeeper_server.engine.domains.orchestration import (
    AgentCoordinationState,
    OrchestrationEngine,
    Task,
    TaskQueueState,
    TaskSpec,
    TaskState,
    TeamChange,
    TeamSettings,
    TeamState,
)
from statekeeper_server.servicers.batching import RESPONSE_OVERHEAD, field_bytes, pieces
from statekeeper_server.servicers.convert import (
    document_to_wire,
    optional_document,
    optional_seconds,
)

if TYPE_CHECKING:
    from statekeeper_server.core import Core


def task_message(task: Task, encoding: int) -> pb.Task:
    """A Task message: the fields by name, the documents (data, result) in ``encoding``."""
    message = to_message(replace(task, data=None, result=None), pb.Task)
    message.data.CopyFrom(document_to_wire(task.data, encoding))
    if task.state is TaskState.COMPLETED:
        message.result.CopyFrom(document_to_wire(task.result, encoding))
    return message


def task_spec(message: pb.TaskSpec, field: str) -> TaskSpec:
    """A TaskSpec record: the fields by name, the data document decoded."""
    data = (
        values.wire_to_document(message.data, f"{field}.data") if message.HasField("data") else None
    )
    return replace(from_message(message, TaskSpec), data=data)


def queue_message(queue: TaskQueueState, encoding: int) -> pb.TaskQueueState:
    """A TaskQueueState message."""
    message = pb.TaskQueueState()
    for name in ("pending", "in_progress", "completed", "dead_lettered"):
        tasks = getattr(message, name)
        tasks.extend(task_message(task, encoding) for task in getattr(queue, name))
    return message


def team_message(view: TeamState, encoding: int) -> pb.TeamState:
    """A TeamState message (with the queue's tasks when the view holds them)."""
    message = to_message(replace(view, task_queue=None), pb.TeamState)
    if view.task_queue is not None:
        message.task_queue.CopyFrom(queue_message(view.task_queue, encoding))
    return message


def change_message(change: TeamChange, encoding: int) -> pb.TeamChange:
    """A TeamChange message."""
    message = to_message(replace(change, task=None), pb.TeamChange)
    if change.task is not None:
        message.task.CopyFrom(task_message(change.task, encoding))
    return message


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


class OrchestrationServicer(orchestration_service_pb2_grpc.OrchestrationServiceServicer):
    """gRPC front of the orchestration engine (task queue, teams, assignments)."""

    def __init__(self, runtime: Core) -> None:
        self.runtime = runtime
        self.engine = OrchestrationEngine(runtime.backend, runtime.limits)

    async def CreateTeam(
        self, request: pb.CreateTeamRequest, context: object
    ) -> pb.CreateTeamResponse:
        """Create a team."""
        view = await self.engine.create_team(
            request.team_id,
            [from_message(a, AgentCoordinationState) for a in request.agents],
            [task_spec(t, f"initial_tasks[{i}]") for i, t in enumerate(request.initial_tasks)],
            from_message(request.settings, TeamSettings),
        )
        return pb.CreateTeamResponse(team=team_message(view, request.value_encoding))

    async def GetTeam(self, request: pb.GetTeamRequest, context: object) -> pb.GetTeamResponse:
        """Read a team."""
        view = await self.engine.get_team(request.team_id)
        return pb.GetTeamResponse(team=team_message(view, request.value_encoding))

    async def DeleteTeam(
        self, request: pb.DeleteTeamRequest, context: object
    ) -> pb.DeleteTeamResponse:
        """Delete a team."""
        return pb.DeleteTeamResponse(deleted=await self.engine.delete_team(request.team_id))

    async def AddAgent(self, request: pb.AddAgentRequest, context: object) -> pb.AddAgentResponse:
        """Add an agent."""
        agent = await self.engine.add_agent(
            request.team_id, from_message(request.agent, AgentCoordinationState)
        )
        return pb.AddAgentResponse(agent=to_message(agent, pb.AgentCoordinationState))

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
        return pb.UpdateAgentStatusResponse(agent=to_message(agent, pb.AgentCoordinationState))

    async def GetAvailableAgents(
        self, request: pb.GetAvailableAgentsRequest, context: object
    ) -> pb.GetAvailableAgentsResponse:
        """List idle agents with a capability."""
        agents = await self.engine.available_agents(request.team_id, request.capability)
        return pb.GetAvailableAgentsResponse(
            agents=[to_message(a, pb.AgentCoordinationState) for a in agents]
        )

    async def EnqueueTask(
        self, request: pb.EnqueueTaskRequest, context: object
    ) -> pb.EnqueueTaskResponse:
        """Enqueue a task (idempotent by task id)."""
        task, created = await self.engine.enqueue(request.team_id, task_spec(request.task, "task"))
        return pb.EnqueueTaskResponse(
            task=task_message(task, request.value_encoding), created=created
        )

    async def GetTask(self, request: pb.GetTaskRequest, context: object) -> pb.GetTaskResponse:
        """Read a task."""
        task = await self.engine.get_task(request.team_id, request.task_id)
        return pb.GetTaskResponse(task=task_message(task, request.value_encoding))

    async def AssignTask(
        self, request: pb.AssignTaskRequest, context: object
    ) -> pb.AssignTaskResponse:
        """Assign a pending task to an agent."""
        task = await self.engine.assign(
            request.team_id, request.task_id, request.agent_id, optional_seconds(request, "lease")
        )
        return pb.AssignTaskResponse(task=task_message(task, request.value_encoding))

    async def ClaimNextTask(
        self, request: pb.ClaimNextTaskRequest, context: object
    ) -> pb.ClaimNextTaskResponse:
        """Claim the next task an agent can do."""
        lease = optional_seconds(request, "lease")
        task = await self.engine.claim(request.team_id, request.agent_id, lease)
        if task is None:
            return pb.ClaimNextTaskResponse()
        return pb.ClaimNextTaskResponse(task=task_message(task, request.value_encoding))

    async def RenewLease(
        self, request: pb.RenewLeaseRequest, context: object
    ) -> pb.RenewLeaseResponse:
        """Extend a lease."""
        task = await self.engine.renew_lease(
            request.team_id, request.task_id, request.agent_id, optional_seconds(request, "lease")
        )
        return pb.RenewLeaseResponse(task=task_message(task, request.value_encoding))

    async def CompleteTask(
        self, request: pb.CompleteTaskRequest, context: object
    ) -> pb.CompleteTaskResponse:
        """Complete a task."""
        result = optional_document(request, "result", "result")
        task = await self.engine.complete(
            request.team_id, request.task_id, result, request.agent_id
        )
        return pb.CompleteTaskResponse(task=task_message(task, request.value_encoding))

    async def FailTask(self, request: pb.FailTaskRequest, context: object) -> pb.FailTaskResponse:
        """Report a failed attempt."""
        task = await self.engine.fail(
            request.team_id,
            request.task_id,
            request.reason,
            request.agent_id,
            request.retry_limit if request.HasField("retry_limit") else None,
        )
        return pb.FailTaskResponse(task=task_message(task, request.value_encoding))

    async def RequeueTask(
        self, request: pb.RequeueTaskRequest, context: object
    ) -> pb.RequeueTaskResponse:
        """Queue a dead-lettered task again."""
        task = await self.engine.requeue(request.team_id, request.task_id)
        return pb.RequeueTaskResponse(task=task_message(task, request.value_encoding))

    async def GetQueueStatus(
        self, request: pb.GetQueueStatusRequest, context: object
    ) -> pb.GetQueueStatusResponse:
        """The counts and the first page of each state's tasks."""
        status = await self.engine.queue_status(request.team_id, request.page_size)
        return pb.GetQueueStatusResponse(
            queue=queue_message(status.queue, request.value_encoding),
            counts=to_message(status.counts, pb.QueueCounts),
            next_page_tokens=to_message(status.next_page_tokens, pb.QueuePageTokens),
        )

    async def ListTasks(
        self, request: pb.ListTasksRequest, context: object
    ) -> pb.ListTasksResponse:
        """One page of tasks in one state."""
        state = enum_from_number(request.state, pb.TaskState.DESCRIPTOR, TaskState)
        tasks, token = await self.engine.list_tasks(
            request.team_id, state, request.page_size, request.page_token
        )
        return pb.ListTasksResponse(
            tasks=[task_message(t, request.value_encoding) for t in tasks],
            next_page_token=token,
        )

    async def WatchTeam(
        self, request: pb.WatchTeamRequest, context: object
    ) -> AsyncIterator[pb.WatchTeamResponse]:
        """Stream a snapshot, then the team's changes."""
        interval = optional_seconds(request, "progress_interval")
        encoding = request.value_encoding
        limit = self.runtime.limits.max_message_bytes
        updates = self.engine.watch_team(request.team_id, interval)
        async for revision, view, changes in self.runtime.until_stopping(updates):
            messages = [change_message(c, encoding) for c in changes]
            if view is not None:
                snapshot = team_message(view, encoding)
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
