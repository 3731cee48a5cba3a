"""The AgentService servicer: validate the request, call the AgentEngine, build the response."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from statekeeper.timestamps import clamped_timestamp
from statekeeper.v1 import agent_service_pb2 as pb
from statekeeper.v1 import agent_service_pb2_grpc

from statekeeper_server.engine.domains.agents import AgentEngine, CheckpointEvent
from statekeeper_server.servicers.batching import responses_of
from statekeeper_server.servicers.convert import (
    document_to_wire,
    optional_document,
    optional_unix,
    revision_watch,
)

if TYPE_CHECKING:
    from statekeeper_server.core import Core


def snapshot_to_proto(record: dict[str, Any], encoding: int) -> pb.AgentSnapshot:
    """An AgentSnapshot message for a stored snapshot record."""
    message = pb.AgentSnapshot(
        agent_id=record["agent_id"],
        snapshot_id=record["snapshot_id"],
        timestamp=clamped_timestamp(record["timestamp"]),
        sequence=record["sequence"],
    )
    for name in ("memory_state", "tool_state", "conversation_history", "metadata"):
        if record.get(name) is not None:
            getattr(message, name).CopyFrom(document_to_wire(record[name], encoding))
    return message


def checkpoint_to_proto(record: dict[str, Any], encoding: int) -> pb.AgentCheckpoint:
    """An AgentCheckpoint message for a stored checkpoint record."""
    message = pb.AgentCheckpoint(
        agent_id=record["agent_id"],
        checkpoint_id=record["checkpoint_id"],
        step=record["step"],
        recoverable=bool(record.get("recoverable")),
        timestamp=clamped_timestamp(record["timestamp"]),
        sequence=record["sequence"],
    )
    for name in ("state", "metadata"):
        if record.get(name) is not None:
            getattr(message, name).CopyFrom(document_to_wire(record[name], encoding))
    return message


def status_to_proto(agent_id: str, meta: dict[str, Any]) -> pb.RecoveryStatus:
    """A RecoveryStatus message for an agent's counters."""
    message = pb.RecoveryStatus(
        agent_id=agent_id,
        attempts=meta["attempts"],
        last_checkpoint_id=meta["last_checkpoint_id"],
        recoveries=meta["recoveries"],
    )
    if meta["last_attempt"] is not None:
        message.last_attempt_time.CopyFrom(clamped_timestamp(meta["last_attempt"]))
    if meta["last_success"] is not None:
        message.last_success_time.CopyFrom(clamped_timestamp(meta["last_success"]))
    return message


class AgentServicer(agent_service_pb2_grpc.AgentServiceServicer):
    """gRPC front of :class:`~statekeeper_server.engine.domains.agents.AgentEngine`."""

    def __init__(self, runtime: Core) -> None:
        self.runtime = runtime
        self.engine = AgentEngine(runtime.backend, runtime.limits)

    async def SaveSnapshot(
        self, request: pb.SaveSnapshotRequest, context: object
    ) -> pb.SaveSnapshotResponse:
        """Store a snapshot."""
        snap = request.snapshot
        record = {
            "agent_id": snap.agent_id,
            "timestamp": optional_unix(snap, "timestamp"),
            "memory_state": optional_document(snap, "memory_state", "snapshot.memory_state"),
            "tool_state": optional_document(snap, "tool_state", "snapshot.tool_state"),
            "conversation_history": optional_document(
                snap, "conversation_history", "snapshot.conversation_history"
            ),
            "metadata": optional_document(snap, "metadata", "snapshot.metadata"),
        }
        stored = await self.engine.save_snapshot(record, request.keep_latest)
        return pb.SaveSnapshotResponse(
            snapshot_id=stored["snapshot_id"],
            sequence=stored["sequence"],
            timestamp=clamped_timestamp(stored["timestamp"]),
        )

    async def GetSnapshot(
        self, request: pb.GetSnapshotRequest, context: object
    ) -> pb.GetSnapshotResponse:
        """Read one snapshot, or the newest."""
        record = await self.engine.get_snapshot(request.agent_id, request.snapshot_id)
        return pb.GetSnapshotResponse(snapshot=snapshot_to_proto(record, request.value_encoding))

    async def ListSnapshots(
        self, request: pb.ListSnapshotsRequest, context: object
    ) -> pb.ListSnapshotsResponse:
        """One page of snapshots, newest first."""
        records, token = await self.engine.list_snapshots(
            request.agent_id, request.page_size, request.page_token
        )
        return pb.ListSnapshotsResponse(
            snapshots=[snapshot_to_proto(r, request.value_encoding) for r in records],
            next_page_token=token,
        )

    async def SaveCheckpoint(
        self, request: pb.SaveCheckpointRequest, context: object
    ) -> pb.SaveCheckpointResponse:
        """Store a checkpoint."""
        ckpt = request.checkpoint
        record = {
            "agent_id": ckpt.agent_id,
            "checkpoint_id": ckpt.checkpoint_id,
            "step": ckpt.step,
            "state": optional_document(ckpt, "state", "checkpoint.state"),
            "recoverable": ckpt.recoverable,
            "timestamp": optional_unix(ckpt, "timestamp"),
            "metadata": optional_document(ckpt, "metadata", "checkpoint.metadata"),
        }
        stored, pruned = await self.engine.save_checkpoint(record, request.keep_latest)
        return pb.SaveCheckpointResponse(
            sequence=stored["sequence"],
            timestamp=clamped_timestamp(stored["timestamp"]),
            pruned=pruned,
        )

    async def GetCheckpoint(
        self, request: pb.GetCheckpointRequest, context: object
    ) -> pb.GetCheckpointResponse:
        """Read one checkpoint, or the newest (recoverable) one."""
        record = await self.engine.get_checkpoint(
            request.agent_id, request.checkpoint_id, request.recoverable_only
        )
        return pb.GetCheckpointResponse(
            checkpoint=checkpoint_to_proto(record, request.value_encoding)
        )

    async def ListCheckpoints(
        self, request: pb.ListCheckpointsRequest, context: object
    ) -> pb.ListCheckpointsResponse:
        """One page of checkpoints, newest first."""
        records, token = await self.engine.list_checkpoints(
            request.agent_id, request.page_size, request.page_token
        )
        return pb.ListCheckpointsResponse(
            checkpoints=[checkpoint_to_proto(r, request.value_encoding) for r in records],
            next_page_token=token,
        )

    async def WatchCheckpoints(
        self, request: pb.WatchCheckpointsRequest, context: object
    ) -> AsyncIterator[pb.WatchCheckpointsResponse]:
        """Stream the agent's new checkpoints."""
        updates = self.engine.watch_checkpoints(request.agent_id, request.start_revision)

        def to_responses(
            update: CheckpointEvent, first: bool
        ) -> Iterator[pb.WatchCheckpointsResponse]:
            # One checkpoint per response: a record within the value limit fits one message.
            if first:
                yield pb.WatchCheckpointsResponse(created=True, revision=update.revision)
            elif update.checkpoint is not None:
                yield pb.WatchCheckpointsResponse(
                    revision=update.revision,
                    checkpoint=checkpoint_to_proto(update.checkpoint, request.value_encoding),
                )

        async for response in revision_watch(
            self.runtime, responses_of(updates, to_responses), pb.WatchCheckpointsResponse
        ):
            yield response

    async def BeginRecovery(
        self, request: pb.BeginRecoveryRequest, context: object
    ) -> pb.BeginRecoveryResponse:
        """Count an attempt and choose its checkpoint."""
        record, attempt = await self.engine.begin_recovery(
            request.agent_id, request.checkpoint_id, request.max_attempts
        )
        return pb.BeginRecoveryResponse(
            checkpoint=checkpoint_to_proto(record, request.value_encoding), attempt=attempt
        )

    async def CompleteRecovery(
        self, request: pb.CompleteRecoveryRequest, context: object
    ) -> pb.CompleteRecoveryResponse:
        """Record an attempt's outcome."""
        meta = await self.engine.complete_recovery(request.agent_id, request.success)
        return pb.CompleteRecoveryResponse(status=status_to_proto(request.agent_id, meta))

    async def GetRecoveryStatus(
        self, request: pb.GetRecoveryStatusRequest, context: object
    ) -> pb.GetRecoveryStatusResponse:
        """Read the recovery counters."""
        meta = await self.engine.recovery_status(request.agent_id)
        return pb.GetRecoveryStatusResponse(status=status_to_proto(request.agent_id, meta))

    async def DeleteAgent(
        self, request: pb.DeleteAgentRequest, context: object
    ) -> pb.DeleteAgentResponse:
        """Remove every record of an agent."""
        deleted, revision = await self.engine.delete_agent(request.agent_id)
        return pb.DeleteAgentResponse(deleted=deleted, revision=revision)
