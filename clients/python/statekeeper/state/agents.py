"""``AgentStateStore``, ``AgentSnapshot``, ``AgentCheckpoint`` and ``AgentRecoveryManager``.

Snapshots and checkpoints are kept per agent by the AgentService. They are ordered by when
they were taken (checkpoints: step number, then a server-assigned sequence number), listed
newest first, and pruned to the newest ``max_snapshots`` / ``max_checkpoints`` when those are
set. Recovery attempts are counted on the server, so a restarted agent process cannot exceed
``max_recovery_attempts``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from statekeeper.errors import FailedPreconditionError, NotFoundError
from statekeeper.messages import from_message, to_message
from statekeeper.state.client import MSGPACK, ServiceClient
from statekeeper.state.live import LiveStream, RevisionFeed
from statekeeper.timestamps import from_timestamp
from statekeeper.v1 import agent_service_pb2 as pb
from statekeeper.v1 import agent_service_pb2_grpc

log = logging.getLogger("statekeeper.state")


@dataclass
class AgentSnapshot:
    """A picture of an agent's whole state at one moment.

    ``snapshot_id`` and ``sequence`` are assigned by the server when the snapshot is saved
    (the higher the sequence, the later the snapshot).
    """

    agent_id: str
    timestamp: datetime | None = None
    memory_state: Any = field(default_factory=dict)
    tool_state: Any = field(default_factory=dict)
    conversation_history: list[Any] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    snapshot_id: str = ""
    sequence: int = 0


@dataclass
class AgentCheckpoint:
    """A resumable point of an agent's long-running task.

    Checkpoints of one agent are ordered by ``step``, then by ``sequence`` (assigned by the
    server on save). Saving a checkpoint with an existing ``checkpoint_id`` replaces it. Only
    checkpoints with ``recoverable=True`` (the default) are used by recovery. ``timestamp``
    defaults to the server's clock.
    """

    agent_id: str
    checkpoint_id: str
    step: int = 0
    state: Any = field(default_factory=dict)
    recoverable: bool = True
    timestamp: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    sequence: int = 0


@dataclass
class RecoveryStatus:
    """The server's count of an agent's recovery attempts."""

    agent_id: str
    attempts: int = 0
    last_attempt_at: datetime | None = None
    last_checkpoint_id: str | None = None
    last_success_at: datetime | None = None
    recoveries: int = 0


#: The API's field names that differ from the messages'.
_STATUS_NAMES = {
    "last_attempt_at": "last_attempt_time",
    "last_success_at": "last_success_time",
}


def snapshot_from_proto(message: pb.AgentSnapshot) -> AgentSnapshot:
    """An AgentSnapshot for a received message."""
    return from_message(message, AgentSnapshot)


def checkpoint_from_proto(message: pb.AgentCheckpoint) -> AgentCheckpoint:
    """An AgentCheckpoint for a received message."""
    return from_message(message, AgentCheckpoint)


class AgentStateStore(ServiceClient):
    """Snapshots and checkpoints of agents.

    ``persistence`` is ``"memory"``, ``"file"`` or ``"redis"`` (the engine runs in this
    process over that backend; ``redis_url`` / ``file_path`` say where) or ``"grpc"`` (a
    server at ``address``). ``transport`` shares one connection between managers.
    ``max_snapshots`` / ``max_checkpoints`` (0: unlimited) keep only the newest that many per
    agent; pruning never removes the newest one nor the one just saved.
    """

    _STUB = agent_service_pb2_grpc.AgentServiceStub
    _SERVICE = "statekeeper.v1.AgentService"

    def __init__(
        self,
        persistence: Any = "memory",
        redis_url: str | None = None,
        *,
        max_snapshots: int = 0,
        max_checkpoints: int = 0,
        **connection: Any,
    ) -> None:
        super().__init__(persistence, redis_url=redis_url, **connection)
        self.max_snapshots = max_snapshots
        self.max_checkpoints = max_checkpoints

    # -- snapshots ----------------------------------------------------------------------------

    async def save_snapshot(self, snapshot: AgentSnapshot) -> AgentSnapshot:
        """Store ``snapshot``; fills in and returns its ``snapshot_id``, ``sequence`` and
        ``timestamp`` (the server's clock when it was None)."""
        request = pb.SaveSnapshotRequest(
            snapshot=to_message(snapshot, pb.AgentSnapshot),
            keep_latest=self.max_snapshots,
        )
        response = await self._call("SaveSnapshot", request)
        snapshot.snapshot_id = response.snapshot_id
        snapshot.sequence = response.sequence
        snapshot.timestamp = from_timestamp(response.timestamp)
        return snapshot

    async def get_snapshot(
        self, agent_id: str, snapshot_id: str | None = None
    ) -> AgentSnapshot | None:
        """The snapshot ``snapshot_id`` (or the newest), or None when there is none."""
        request = pb.GetSnapshotRequest(
            agent_id=agent_id, snapshot_id=snapshot_id or "", value_encoding=MSGPACK
        )
        try:
            response = await self._call("GetSnapshot", request)
        except NotFoundError:
            return None
        return snapshot_from_proto(response.snapshot)

    async def get_latest_snapshot(self, agent_id: str) -> AgentSnapshot | None:
        """The agent's newest snapshot, or None."""
        return await self.get_snapshot(agent_id)

    async def iter_snapshots(
        self, agent_id: str, page_size: int = 0
    ) -> AsyncIterator[AgentSnapshot]:
        """Every snapshot of the agent, newest first, fetched page by page."""
        pages = self._pages(
            "ListSnapshots",
            pb.ListSnapshotsRequest,
            "snapshots",
            agent_id=agent_id,
            page_size=page_size,
            value_encoding=MSGPACK,
        )
        async for message in pages:
            yield snapshot_from_proto(message)

    async def list_snapshots(self, agent_id: str) -> list[AgentSnapshot]:
        """Every snapshot of the agent, newest first (empty for an agent without any)."""
        return [snapshot async for snapshot in self.iter_snapshots(agent_id)]

    # -- checkpoints --------------------------------------------------------------------------

    async def save_checkpoint(self, checkpoint: AgentCheckpoint) -> AgentCheckpoint:
        """Store ``checkpoint`` (replacing one with the same id); fills in and returns its
        ``sequence`` and ``timestamp``. Raises InvalidArgumentError for a negative step or a
        missing id (the id ``"latest"`` is reserved)."""
        request = pb.SaveCheckpointRequest(
            checkpoint=to_message(checkpoint, pb.AgentCheckpoint),
            keep_latest=self.max_checkpoints,
        )
        response = await self._call("SaveCheckpoint", request)
        checkpoint.sequence = response.sequence
        checkpoint.timestamp = from_timestamp(response.timestamp)
        return checkpoint

    async def get_checkpoint(self, agent_id: str, checkpoint_id: str) -> AgentCheckpoint | None:
        """The checkpoint ``checkpoint_id`` of the agent (``"latest"``: the newest one), or
        None when there is none."""
        if checkpoint_id == "latest":
            return await self.get_latest_checkpoint(agent_id)
        return await self._get_checkpoint(agent_id, checkpoint_id, False)

    async def get_latest_checkpoint(
        self, agent_id: str, recoverable_only: bool = False
    ) -> AgentCheckpoint | None:
        """The newest checkpoint (highest step, then latest saved), or None."""
        return await self._get_checkpoint(agent_id, "", recoverable_only)

    async def _get_checkpoint(
        self, agent_id: str, checkpoint_id: str, recoverable_only: bool
    ) -> AgentCheckpoint | None:
        request = pb.GetCheckpointRequest(
            agent_id=agent_id,
            checkpoint_id=checkpoint_id,
            recoverable_only=recoverable_only,
            value_encoding=MSGPACK,
        )
        try:
            response = await self._call("GetCheckpoint", request)
        except NotFoundError:
            return None
        return checkpoint_from_proto(response.checkpoint)

    async def iter_checkpoints(
        self, agent_id: str, page_size: int = 0
    ) -> AsyncIterator[AgentCheckpoint]:
        """Every checkpoint of the agent, newest first, fetched page by page."""
        pages = self._pages(
            "ListCheckpoints",
            pb.ListCheckpointsRequest,
            "checkpoints",
            agent_id=agent_id,
            page_size=page_size,
            value_encoding=MSGPACK,
        )
        async for message in pages:
            yield checkpoint_from_proto(message)

    async def list_checkpoints(self, agent_id: str) -> list[AgentCheckpoint]:
        """Every checkpoint of the agent, newest first."""
        return [checkpoint async for checkpoint in self.iter_checkpoints(agent_id)]

    def watch_checkpoints(
        self, agent_id: str, start_revision: int = 0
    ) -> LiveStream[AgentCheckpoint]:
        """An async iterator of the checkpoints the agent saves from now on (or from
        ``start_revision``)::

            async for checkpoint in agent_store.watch_checkpoints("researcher_01"):
                ...
        """

        def request(revision: int) -> pb.WatchCheckpointsRequest:
            return pb.WatchCheckpointsRequest(
                agent_id=agent_id, start_revision=revision, value_encoding=MSGPACK
            )

        def convert(message: pb.WatchCheckpointsResponse) -> list[AgentCheckpoint]:
            if not message.HasField("checkpoint"):
                return []
            return [checkpoint_from_proto(message.checkpoint)]

        feed: RevisionFeed[Any] = RevisionFeed(request, convert, start_revision)
        return LiveStream(self, "WatchCheckpoints", feed, f"checkpoint watch of agent {agent_id!r}")

    # -- deletion -----------------------------------------------------------------------------

    async def delete_agent(self, agent_id: str) -> int:
        """Remove every snapshot, checkpoint and the recovery status of the agent; returns how
        many records went (snapshots plus checkpoints, plus one for the recovery status), 0 for
        an unknown agent."""
        response = await self._call("DeleteAgent", pb.DeleteAgentRequest(agent_id=agent_id))
        return int(response.deleted)


def _agent_id(agent: Any) -> str:
    for name in ("id", "agent_id", "name"):
        value = getattr(agent, name, None)
        if isinstance(value, str) and value:
            return value
    raise ValueError("an agent needs an `id` (or `agent_id`) string to be registered")


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class AgentRecoveryManager:
    """Restores registered agents from their checkpoints after a failure.

    ``recover(agent_id, from_checkpoint="latest")`` asks the server to count one attempt and
    pick the checkpoint (the newest with ``recoverable=True``, or the named one, which must be
    recoverable), calls the agent's ``restore_from_checkpoint(state)`` with that checkpoint's
    state and returns True; success resets the server's attempt count. It returns False, and
    restores nothing, when the agent has no recoverable checkpoint, when
    ``max_recovery_attempts`` attempts have begun since the last success (counted on the
    server, so restarting the agent process does not reset them), or when
    ``restore_from_checkpoint`` raised (that attempt still counts).

    ``auto_recover`` decides what :meth:`run` does when the agent's ``run(task)`` raises: with
    ``auto_recover=True`` it recovers the agent from its latest recoverable checkpoint and
    continues with ``agent.resume()``, as many times as ``max_recovery_attempts`` allows, and
    re-raises the error only when recovery is impossible; with ``auto_recover=False`` it
    re-raises at once and recovery is only what you call yourself.
    """

    def __init__(
        self,
        agent_store: AgentStateStore,
        auto_recover: bool = True,
        max_recovery_attempts: int = 3,
    ) -> None:
        self.agent_store = agent_store
        self.auto_recover = auto_recover
        self.max_recovery_attempts = max_recovery_attempts
        self._agents: dict[str, Any] = {}

    def register(self, agent: Any) -> None:
        """Make ``agent`` recoverable; it needs an ``id`` and ``restore_from_checkpoint``."""
        if not callable(getattr(agent, "restore_from_checkpoint", None)):
            raise ValueError("a recoverable agent needs a restore_from_checkpoint(state) method")
        self._agents[_agent_id(agent)] = agent

    def unregister(self, agent_id: str) -> None:
        """Forget the agent (its checkpoints and attempt count stay on the server)."""
        self._agents.pop(agent_id, None)

    @property
    def agents(self) -> dict[str, Any]:
        """The registered agents by id."""
        return dict(self._agents)

    async def recover(self, agent_id: str, from_checkpoint: str = "latest") -> bool:
        """Restore the agent from ``from_checkpoint`` (``"latest"``: the newest recoverable
        checkpoint); see the class docstring. Raises NotFoundError for an agent that is not
        registered or a named checkpoint that does not exist."""
        agent = self._agents.get(agent_id)
        if agent is None:
            raise NotFoundError(f"agent {agent_id!r} is not registered for recovery")
        request = pb.BeginRecoveryRequest(
            agent_id=agent_id,
            checkpoint_id="" if from_checkpoint == "latest" else from_checkpoint,
            max_attempts=self.max_recovery_attempts,
            value_encoding=MSGPACK,
        )
        try:
            response = await self.agent_store._call("BeginRecovery", request)
        except FailedPreconditionError as error:
            log.warning("cannot recover agent %r: %s", agent_id, error.message)
            return False
        checkpoint = checkpoint_from_proto(response.checkpoint)
        try:
            await _maybe_await(agent.restore_from_checkpoint(checkpoint.state))
        except Exception:
            log.exception(
                "agent %r failed to restore checkpoint %r (attempt %d)",
                agent_id,
                checkpoint.checkpoint_id,
                response.attempt,
            )
            await self.agent_store._call(
                "CompleteRecovery", pb.CompleteRecoveryRequest(agent_id=agent_id, success=False)
            )
            return False
        await self.agent_store._call(
            "CompleteRecovery", pb.CompleteRecoveryRequest(agent_id=agent_id, success=True)
        )
        log.info("agent %r recovered from checkpoint %r", agent_id, checkpoint.checkpoint_id)
        return True

    async def get_status(self, agent_id: str) -> RecoveryStatus:
        """The server's recovery count of the agent."""
        response = await self.agent_store._call(
            "GetRecoveryStatus", pb.GetRecoveryStatusRequest(agent_id=agent_id)
        )
        return from_message(response.status, RecoveryStatus, _STATUS_NAMES)

    async def run(self, agent: Any, *args: Any, **kwargs: Any) -> Any:
        """``await agent.run(*args, **kwargs)``, recovering and resuming on failure when
        ``auto_recover`` is on (the agent is registered if it was not)."""
        agent_id = _agent_id(agent)
        if agent_id not in self._agents:
            self.register(agent)
        try:
            return await _maybe_await(agent.run(*args, **kwargs))
        except Exception as error:
            if not self.auto_recover:
                raise
            last = error
        while await self.recover(agent_id):
            try:
                return await _maybe_await(agent.resume())
            except Exception as error:
                log.exception("agent %r failed again after recovery", agent_id)
                last = error
        raise last


__all__ = [
    "AgentCheckpoint",
    "AgentRecoveryManager",
    "AgentSnapshot",
    "AgentStateStore",
    "RecoveryStatus",
]
