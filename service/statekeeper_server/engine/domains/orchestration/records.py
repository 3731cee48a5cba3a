"""The stored records of orchestration, their format versions and their backend keys.

Field names are the proto's (``Task``, ``AgentCoordinationState``, ``TeamSettings``); fields
the proto does not have (an agent's ``held`` tasks) are engine-internal. Version 0 is the
format written before typed records (short names such as ``caps``, ``lease``, ``created``, the
dead-lettered state spelled ``"dead"``); the upgrades below lift it.
"""

from __future__ import annotations

import enum
import hashlib
import zlib
from dataclasses import dataclass, field
from typing import Any

from statekeeper.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    Reason,
)

from statekeeper_server.engine.records import Schema, renamed
from statekeeper_server.engine.tenancy import tenant_prefix

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
#: How many queue tasks an agent may hold at once unless its ``max_tasks`` says otherwise.
DEFAULT_MAX_TASKS = 1
#: The status of an agent that takes no queue task.
OFFLINE = "offline"
#: The stored value of an index key (an empty MessagePack map).
MARKER = b"\x80"
#: How many count records a team's task counts are spread over (a transition updates the one
#: of its task, so concurrent transitions rarely touch the same one).
COUNT_SHARDS = 32
#: The key layout a team is at: 1 adds the claim index and the task counts. A team stored
#: before (layout 0) is brought to it once, by :meth:`Base._team`.
LAYOUT = 1


class TaskState(enum.StrEnum):
    """Where a task is in its team's queue."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    DEAD_LETTERED = "dead_lettered"

    @property
    def phrase(self) -> str:
        """The state in an error message ("in progress", "dead-lettered")."""
        return "dead-lettered" if self is TaskState.DEAD_LETTERED else self.value.replace("_", " ")


#: The key prefix (after the team's base) of the tasks in each state.
STATE_PREFIX = {
    TaskState.PENDING: "q/p/",
    TaskState.IN_PROGRESS: "q/r/",
    TaskState.COMPLETED: "q/c/",
    TaskState.DEAD_LETTERED: "q/d/",
}


class ChangeType(enum.StrEnum):
    """What one change of a team watch reports."""

    AGENT_UPDATED = "agent_updated"
    TASK_UPDATED = "task_updated"
    TASK_REMOVED = "task_removed"
    TEAM_DELETED = "team_deleted"


@dataclass
class TeamSettings:
    """A team's queue policies (as given, 0 / None mean the defaults; as stored, resolved)."""

    completed_retention: int = 0
    default_max_retries: int | None = None
    max_deliveries: int = 0


@dataclass
class Team:
    """The team record; ``layout`` (engine-internal) is its key layout version."""

    team_id: str = ""
    settings: TeamSettings = field(default_factory=TeamSettings)
    create_time: float | None = None
    layout: int = 0


@dataclass
class QueueCounts:
    """The number of tasks in each state (of a team, or of one count record)."""

    pending: int = 0
    in_progress: int = 0
    completed: int = 0
    dead_lettered: int = 0


@dataclass
class CapabilitySet:
    """One set of required capabilities that pending tasks were enqueued with."""

    required_capabilities: list[str] = field(default_factory=list)


@dataclass
class AgentCoordinationState:
    """One agent of a team. ``held`` (engine-internal) lists the queue tasks it holds."""

    agent_id: str = ""
    status: str = ""
    capabilities: list[str] = field(default_factory=list)
    current_task: str | None = None
    update_time: float | None = None
    max_tasks: int = 0
    held: list[str] = field(default_factory=list)


@dataclass
class TaskSpec:
    """A task to enqueue: a priority by name or level (neither: "normal")."""

    task_id: str = ""
    type: str = ""
    priority_name: str | None = None
    priority_level: int | None = None
    data: Any = None
    required_capabilities: list[str] = field(default_factory=list)
    max_retries: int | None = None


@dataclass
class Task:
    """One task of a team's queue with its delivery history."""

    task_id: str = ""
    type: str = ""
    priority: int = PRIORITIES["normal"]
    priority_name: str = ""
    data: Any = None
    required_capabilities: list[str] = field(default_factory=list)
    state: TaskState = TaskState.PENDING
    agent_id: str = ""
    delivery_count: int = 0
    failure_count: int = 0
    max_retries: int = 0
    last_error: str = ""
    result: Any = None
    sequence: int = 0
    enqueue_time: float | None = None
    start_time: float | None = None
    lease_expire_time: float | None = None
    finish_time: float | None = None
    #: Engine-internal: whether the team's counts include this task (tasks stored before
    #: layout 1 are counted by the first transition or the layout upgrade that meets them).
    counted: bool = False


@dataclass
class Pointer:
    """Where a task's record is stored now (its key after the team's base)."""

    at: str = ""


def _team_v0(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "team_id": data.get("id", ""),
        "create_time": data.get("created"),
        "settings": {
            "completed_retention": data.get("retention", DEFAULT_RETENTION),
            "default_max_retries": data.get("max_retries", DEFAULT_MAX_RETRIES),
            "max_deliveries": data.get("max_deliveries", DEFAULT_MAX_DELIVERIES),
        },
    }


_task_names = renamed(
    {
        "id": "task_id",
        "caps": "required_capabilities",
        "agent": "agent_id",
        "deliveries": "delivery_count",
        "failures": "failure_count",
        "error": "last_error",
        "seq": "sequence",
        "enqueued": "enqueue_time",
        "started": "start_time",
        "lease": "lease_expire_time",
        "finished": "finish_time",
    }
)


def _task_v0(data: dict[str, Any]) -> dict[str, Any]:
    task = _task_names(data)
    if task.get("state") == "dead":
        task["state"] = TaskState.DEAD_LETTERED.value
    task["priority_name"] = PRIORITY_NAMES.get(task.get("priority", -1), "")
    return task


TEAM = Schema(Team, field="team", upgrades={0: _team_v0})
AGENT = Schema(
    AgentCoordinationState,
    field="agent",
    upgrades={
        0: renamed(
            {
                "id": "agent_id",
                "caps": "capabilities",
                "task": "current_task",
                "updated": "update_time",
            }
        )
    },
)
TASK = Schema(Task, field="task", upgrades={0: _task_v0})
POINTER = Schema(Pointer, field="task")
COUNTS = Schema(QueueCounts, field="counts")
CAPABILITY_SET = Schema(CapabilitySet, field="capabilities")


def capability_set_id(capabilities: list[str]) -> str:
    """The id of a set of capabilities (the same for any order)."""
    joined = "\n".join(sorted(set(capabilities)))
    return hashlib.sha256(joined.encode()).hexdigest()[:24]


class Keys:
    """The backend keys of one team of the current tenant."""

    def __init__(self, team_id: str) -> None:
        self.team_id = team_id
        self.base = tenant_prefix() + NAMESPACE + team_id + "/"
        self.team = self.base + "team"
        self.seq = self.base + "seq"
        self.agents = self.base + "agent/"
        self.leases = self.base + "lease/"
        self.capability_sets = self.base + "cap/"
        self.counts = self.base + "count/"

    def agent(self, agent_id: str) -> str:
        """The key of an agent's record."""
        return self.agents + agent_id

    def pointer(self, task_id: str) -> str:
        """The key of a task's pointer."""
        return self.base + "task/" + task_id

    def state(self, state: TaskState) -> str:
        """The prefix of the tasks in ``state``."""
        return self.base + STATE_PREFIX[state]

    def record(self, task: Task) -> str:
        """The key that holds ``task`` in its current state: pending tasks in hand-out order
        (most urgent, then first in), completed and dead-lettered ones by finish time."""
        prefix = self.state(task.state)
        if task.state is TaskState.PENDING:
            return f"{prefix}{MAX_PRIORITY - task.priority:04d}/{task.sequence:016d}/{task.task_id}"
        if task.state is TaskState.IN_PROGRESS:
            return prefix + task.task_id
        return f"{prefix}{int((task.finish_time or 0.0) * 1e9):020d}/{task.task_id}"

    def index(self, set_id: str) -> str:
        """The prefix of the claim index of the pending tasks requiring one capability set:
        ``idx/<set>/`` followed by the task's pending key after ``q/p/``."""
        return f"{self.base}idx/{set_id}/"

    def indexed(self, task: Task) -> str:
        """The claim index key of a pending task."""
        pending = self.record(task)[len(self.state(TaskState.PENDING)) :]
        return self.index(capability_set_id(task.required_capabilities)) + pending

    def count(self, task_id: str) -> str:
        """The count record a task's transitions update."""
        return f"{self.counts}{zlib.crc32(task_id.encode()) % COUNT_SHARDS:02d}"

    def lease(self, task: Task) -> str | None:
        """The lease key of a leased task, in expiry order (None when not leased)."""
        if task.lease_expire_time is None:
            return None
        return f"{self.leases}{int(task.lease_expire_time * 1000):015d}/{task.task_id}"

    def capability_set(self, set_id: str) -> str:
        """The key of a capability set's record."""
        return self.capability_sets + set_id


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


def negative(field: str) -> InvalidArgumentError:
    """The error of a count or limit below zero."""
    return InvalidArgumentError(
        f"{field} must not be negative",
        reason=Reason.INVALID_ARGUMENT,
        violations=[(field, "negative")],
    )


def not_found(kind: str, ident: str, reason: Reason) -> NotFoundError:
    """The error of a missing team, agent or task."""
    return NotFoundError(f"{kind} {ident!r} not found", reason=reason, metadata={"id": ident})


def precondition(message: str, reason: Reason, **metadata: str) -> FailedPreconditionError:
    """The error of a transition the current state does not allow."""
    return FailedPreconditionError(message, reason=reason, metadata=metadata)
