"""The orchestration engine: teams and agents here, the queue and the reads in its bases."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from statekeeper.errors import AlreadyExistsError, InvalidArgumentError, Reason

from statekeeper_server.engine.domains.orchestration.queue import check_spec
from statekeeper_server.engine.domains.orchestration.records import (
    AGENT,
    DEFAULT_MAX_DELIVERIES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_TASKS,
    DEFAULT_RETENTION,
    LAYOUT,
    MAX_NAME_LENGTH,
    MAX_STATUS_LENGTH,
    TEAM,
    AgentCoordinationState,
    Keys,
    TaskSpec,
    Team,
    TeamSettings,
    negative,
    not_found,
)
from statekeeper_server.engine.domains.orchestration.views import TeamState, Views
from statekeeper_server.engine.identifiers import check_id, check_text
from statekeeper_server.engine.records import Txn, delete_prefix, scan, transact


def is_free(agent: AgentCoordinationState) -> bool:
    """Idle and without a current task: what ``available_agents`` lists."""
    return agent.status == "idle" and agent.current_task is None


def agent_record(agent: AgentCoordinationState, field: str) -> AgentCoordinationState:
    """A new agent as stored: validated, status "idle" when empty, capabilities distinct."""
    check_id(agent.agent_id, f"{field}.agent_id")
    check_text(agent.status or "idle", f"{field}.status", MAX_STATUS_LENGTH)
    for index, cap in enumerate(agent.capabilities):
        check_text(cap, f"{field}.capabilities[{index}]", MAX_NAME_LENGTH, required=True)
    if agent.current_task is not None:
        check_id(agent.current_task, f"{field}.current_task")
    if agent.max_tasks < 0:
        raise negative(f"{field}.max_tasks")
    return AgentCoordinationState(
        agent_id=agent.agent_id,
        status=agent.status or "idle",
        capabilities=list(dict.fromkeys(agent.capabilities)),
        current_task=agent.current_task,
        max_tasks=agent.max_tasks or DEFAULT_MAX_TASKS,
        update_time=time.time(),
    )


def team_record(team_id: str, settings: TeamSettings) -> Team:
    """A new team as stored, its settings validated and resolved to the defaults."""
    for name in ("completed_retention", "max_deliveries", "default_max_retries"):
        if (getattr(settings, name) or 0) < 0:
            raise negative(f"settings.{name}")
    retries = settings.default_max_retries
    resolved = TeamSettings(
        completed_retention=settings.completed_retention or DEFAULT_RETENTION,
        default_max_retries=DEFAULT_MAX_RETRIES if retries is None else retries,
        max_deliveries=settings.max_deliveries or DEFAULT_MAX_DELIVERIES,
    )
    return Team(team_id=team_id, settings=resolved, create_time=time.time(), layout=LAYOUT)


class OrchestrationEngine(Views):
    """Teams, agents and a task queue that hands each task to exactly one agent at a time."""

    async def create_team(
        self,
        team_id: str,
        agents: Sequence[AgentCoordinationState],
        tasks: Sequence[TaskSpec],
        settings: TeamSettings,
    ) -> TeamState:
        """Create a team with its agents, then enqueue ``tasks`` in order."""
        check_id(team_id, "team_id")
        records = [agent_record(a, f"agents[{i}]") for i, a in enumerate(agents)]
        ids = [r.agent_id for r in records]
        if len(set(ids)) != len(ids):
            raise InvalidArgumentError(
                "agent ids must be distinct",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("agents", "duplicate agent_id")],
            )
        team = team_record(team_id, settings)
        for index, spec in enumerate(tasks):
            check_spec(spec, f"initial_tasks[{index}]")
        keys = Keys(team_id)

        async def body(txn: Txn) -> None:
            if await txn.get(keys.team, TEAM) is not None:
                raise AlreadyExistsError(
                    f"team {team_id!r} already exists",
                    reason=Reason.ALREADY_EXISTS,
                    metadata={"id": team_id},
                )
            txn.put(keys.team, team, TEAM)
            for record in records:
                txn.put(keys.agent(record.agent_id), record, AGENT)

        await transact(self.backend, body, limits=self.limits)
        for spec in tasks:
            await self.enqueue(team_id, spec)
        return await self.get_team(team_id)

    async def delete_team(self, team_id: str) -> bool:
        """Remove the team record first (so every later call sees NOT_FOUND), then the rest."""
        check_id(team_id, "team_id")
        keys = Keys(team_id)
        result = await self.backend.delete(keys.team)
        existed = result.results[0] is not None
        await delete_prefix(self.backend, keys.base)
        return existed

    async def add_agent(
        self, team_id: str, agent: AgentCoordinationState
    ) -> AgentCoordinationState:
        """Add an agent to an existing team."""
        check_id(team_id, "team_id")
        record = agent_record(agent, "agent")
        keys = Keys(team_id)

        async def body(txn: Txn) -> AgentCoordinationState:
            if await txn.get(keys.team, TEAM) is None:
                raise not_found("team", team_id, Reason.TEAM_NOT_FOUND)
            if await txn.get(keys.agent(record.agent_id), AGENT) is not None:
                raise AlreadyExistsError(
                    f"agent {record.agent_id!r} already exists",
                    reason=Reason.ALREADY_EXISTS,
                    metadata={"id": record.agent_id},
                )
            txn.put(keys.agent(record.agent_id), record, AGENT)
            return record

        return await transact(self.backend, body, limits=self.limits)

    async def update_agent_status(
        self, team_id: str, agent_id: str, status: str, current_task: str | None
    ) -> AgentCoordinationState:
        """Set an agent's status and current task (free-form; no queue change)."""
        check_id(team_id, "team_id")
        check_id(agent_id, "agent_id")
        check_text(status, "status", MAX_STATUS_LENGTH, required=True)
        if current_task is not None:
            check_id(current_task, "current_task")
        keys = Keys(team_id)
        await self._team(keys)

        async def body(txn: Txn) -> AgentCoordinationState:
            agent = await txn.get(keys.agent(agent_id), AGENT)
            if agent is None:
                raise not_found("agent", agent_id, Reason.AGENT_NOT_FOUND)
            agent = replace(
                agent, status=status, current_task=current_task, update_time=time.time()
            )
            txn.put(keys.agent(agent_id), agent, AGENT)
            return agent

        return await transact(self.backend, body, limits=self.limits)

    async def available_agents(self, team_id: str, capability: str) -> list[AgentCoordinationState]:
        """Idle agents without a current task that have ``capability`` (empty: any)."""
        check_id(team_id, "team_id")
        check_text(capability, "capability", MAX_NAME_LENGTH)
        keys = Keys(team_id)
        await self._team(keys)
        agents = [AGENT.unpack(e.value) async for e in scan(self.backend, keys.agents)]
        return [
            a for a in agents if is_free(a) and (not capability or capability in a.capabilities)
        ]
