"""Reading a team: the team view with its agents and counts, the queue, one task, pages of one
state, and the team watch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from statekeeper.errors import Reason

from statekeeper_server.engine.domains.orchestration.base import read_task
from statekeeper_server.engine.domains.orchestration.index import read_counts
from statekeeper_server.engine.domains.orchestration.queue import Queue
from statekeeper_server.engine.domains.orchestration.records import (
    AGENT,
    TASK,
    AgentCoordinationState,
    ChangeType,
    Keys,
    QueueCounts,
    Task,
    TaskState,
    TeamSettings,
    not_found,
)
from statekeeper_server.engine.identifiers import check_id, require
from statekeeper_server.engine.limits import check_progress_interval
from statekeeper_server.engine.records import Txn, scan, scoped_page, transact
from statekeeper_server.engine.storage.backend import EventType, WatchUpdate


@dataclass
class TaskQueueState:
    """A team's tasks grouped by state, each list in hand-out / completion order."""

    pending: list[Task] = field(default_factory=list)
    in_progress: list[Task] = field(default_factory=list)
    completed: list[Task] = field(default_factory=list)
    dead_lettered: list[Task] = field(default_factory=list)


@dataclass
class QueuePageTokens:
    """Per state, the ListTasks page token of the tasks after those returned ("" for none)."""

    pending: str = ""
    in_progress: str = ""
    completed: str = ""
    dead_lettered: str = ""


@dataclass
class QueueStatus:
    """The first page of each state's tasks, the counts, and where each list continues."""

    queue: TaskQueueState
    counts: QueueCounts
    next_page_tokens: QueuePageTokens


@dataclass
class TeamState:
    """A team with its agents (by id), its counts and, when asked, its whole queue."""

    team_id: str
    settings: TeamSettings
    create_time: float | None
    agents: dict[str, AgentCoordinationState]
    queue_counts: QueueCounts
    task_queue: TaskQueueState | None = None


@dataclass
class TeamChange:
    """One change seen by a team watch: the agent or task record after the change."""

    type: ChangeType
    agent: AgentCoordinationState | None = None
    task: Task | None = None
    task_id: str = ""


class Views(Queue):
    """The reads of :class:`OrchestrationEngine`."""

    async def _queue(self, keys: Keys) -> TaskQueueState:
        lists = []
        for state in TaskState:
            lists.append(
                [TASK.unpack(e.value) async for e in scan(self.backend, keys.state(state))]
            )
        return TaskQueueState(*lists)

    async def get_team(self, team_id: str, *, with_queue: bool = False) -> TeamState:
        """The team with its agents and task counts (and its whole queue when asked)."""
        check_id(team_id, "team_id")
        keys = Keys(team_id)
        team = await self._team(keys)
        if with_queue:
            await self._requeue_expired(keys, team)
        agents = [AGENT.unpack(e.value) async for e in scan(self.backend, keys.agents)]
        return TeamState(
            team_id=team.team_id,
            settings=team.settings,
            create_time=team.create_time,
            agents={agent.agent_id: agent for agent in agents},
            queue_counts=await read_counts(self.backend, keys),
            task_queue=await self._queue(keys) if with_queue else None,
        )

    async def queue_status(self, team_id: str, page_size: int = 0) -> QueueStatus:
        """The counts and the first ``page_size`` tasks of each state (0: the largest page),
        expired leases collected and completed-task retention applied first."""
        check_id(team_id, "team_id")
        size = self.limits.check_page_size(page_size or self.limits.max_page_size)
        keys = Keys(team_id)
        team = await self._team(keys)
        await self._requeue_expired(keys, team)
        counts = await read_counts(self.backend, keys)
        if counts.completed > team.settings.completed_retention:
            await self._trim_completed(keys, team.settings.completed_retention)
            counts = await read_counts(self.backend, keys)
        queue, tokens = TaskQueueState(), QueuePageTokens()
        for state in TaskState:
            tasks, token = await self._page(keys, state, size, "")
            setattr(queue, state.value, tasks)
            setattr(tokens, state.value, token)
        return QueueStatus(queue, counts, tokens)

    async def _page(
        self, keys: Keys, state: TaskState, size: int, page_token: str
    ) -> tuple[list[Task], str]:
        entries, token = await scoped_page(
            self.backend,
            keys.state(state),
            f"{keys.team_id}/{state.value}",
            page_token,
            size,
            "page_token is not a token returned by ListTasks for this team and state",
        )
        return [TASK.unpack(e.value) for e in entries], token

    async def get_task(self, team_id: str, task_id: str) -> Task:
        """One task (expired leases collected first)."""
        check_id(team_id, "team_id")
        check_id(task_id, "task_id")
        keys = Keys(team_id)
        await self._requeue_expired(keys, await self._team(keys))

        async def body(txn: Txn) -> Task | None:
            return await read_task(txn, keys, task_id)

        task = await transact(self.backend, body, limits=self.limits)
        if task is None:
            raise not_found("task", task_id, Reason.TASK_NOT_FOUND)
        return task

    async def list_tasks(
        self, team_id: str, state: TaskState | None, page_size: int, page_token: str
    ) -> tuple[list[Task], str]:
        """One page of the team's tasks in ``state``, in the order of the queue lists."""
        check_id(team_id, "team_id")
        state = require(state, "state")
        size = self.limits.check_page_size(page_size)
        keys = Keys(team_id)
        await self._requeue_expired(keys, await self._team(keys))
        return await self._page(keys, state, size, page_token)

    async def watch_team(
        self, team_id: str, progress_interval: float | None
    ) -> AsyncIterator[tuple[int, TeamState | None, list[TeamChange]]]:
        """A snapshot ``(revision, view, [])``, then ``(revision, None, changes)`` per update
        (empty changes: progress). Changes carry whole records, so replaying one is harmless;
        the stream ends after a TEAM_DELETED change."""
        check_id(team_id, "team_id")
        progress_interval = check_progress_interval(progress_interval)
        keys = Keys(team_id)
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
            changes = team_changes(keys, update)
            if changes or not update.events:
                yield update.revision, None, changes
            if changes and changes[-1].type is ChangeType.TEAM_DELETED:
                return


def team_changes(keys: Keys, update: WatchUpdate) -> list[TeamChange]:
    """The changes of one watch update of a team (a moved task is one TASK_UPDATED)."""
    put_ids = {
        (e.revision, e.key.rsplit("/", 1)[1])
        for e in update.events
        if e.type is EventType.PUT and e.key.startswith(keys.base + "q/")
    }
    changes: list[TeamChange] = []
    for event in update.events:
        rest = event.key[len(keys.base) :]
        if rest == "team" and event.type is not EventType.PUT:
            changes.append(TeamChange(ChangeType.TEAM_DELETED))
            break
        if rest.startswith("agent/") and event.entry is not None:
            changes.append(
                TeamChange(ChangeType.AGENT_UPDATED, agent=AGENT.unpack(event.entry.value))
            )
        elif rest.startswith("q/"):
            task_id = rest.rsplit("/", 1)[1]
            if event.entry is not None:
                task = TASK.unpack(event.entry.value)
                changes.append(TeamChange(ChangeType.TASK_UPDATED, task=task, task_id=task_id))
            elif (event.revision, task_id) not in put_ids:
                changes.append(TeamChange(ChangeType.TASK_REMOVED, task_id=task_id))
    return changes
