"""Team orchestration (the reference's ``OrchestrationStateManager``), written once over a Backend.

Modules: ``records`` (the stored records, their format versions and keys), ``base`` (reads,
moving a task inside a transaction, lease expiry, retention), ``queue`` (the transitions),
``views`` (team view, queue, pages, watch) and ``engine`` (teams and agents: the engine).

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

Every transition (enqueue, assign, claim, complete, fail, lease expiry) is one
:func:`~statekeeper_server.engine.records.transact` body, committed guarded by every key it
read, so two server instances on one Redis can never both hand out one task: the loser's guard
fails and its body runs again on fresh data. No process-local lock is involved.

Expired leases are collected lazily: each claim, assignment and queue read of a team first
requeues (or dead-letters) the team's tasks whose lease has run out. Completed-task retention is
enforced in batches (every ``retention // 10`` completions served by one engine, and at every
queue read), so a team holds about ``completed_retention`` completed tasks at most.
"""

from statekeeper_server.engine.domains.orchestration.engine import OrchestrationEngine
from statekeeper_server.engine.domains.orchestration.records import (
    AGENT,
    DEFAULT_LEASE,
    POINTER,
    TASK,
    TEAM,
    AgentCoordinationState,
    ChangeType,
    QueueCounts,
    Task,
    TaskSpec,
    TaskState,
    TeamSettings,
)
from statekeeper_server.engine.domains.orchestration.views import (
    QueuePageTokens,
    QueueStatus,
    TaskQueueState,
    TeamChange,
    TeamState,
)

__all__ = [
    "AGENT",
    "DEFAULT_LEASE",
    "POINTER",
    "TASK",
    "TEAM",
    "AgentCoordinationState",
    "ChangeType",
    "OrchestrationEngine",
    "QueueCounts",
    "QueuePageTokens",
    "QueueStatus",
    "Task",
    "TaskQueueState",
    "TaskSpec",
    "TaskState",
    "TeamChange",
    "TeamSettings",
    "TeamState",
]
