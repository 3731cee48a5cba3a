"""The AgentService servicer: convert the request, call the AgentEngine, build the response
(every record converts through :mod:`statekeeper.messages`, documents in the requested
encoding)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from statekeeper.messages import from_message, to_message
from statekeeper.timestamps import clamped_timestamp
from statekeeper.v1 import agent_service_pb2 as pb
from statekeeper.v1 import agent_service_pb2_grpc

from statekeeper_server.engine.domains.agents import (
    AgentCheckpoint,
    AgentEngine,
    AgentSnapshot,
    CheckpointEvent,
)
from statekeeper_server.servicers.batching import responses_of
from statekeeper_server.servicers.convert import revision_watch

if TYPE_CHECKING:
    from statekeeper_server.core import Core


class AgentServicer(agent_service_pb2_grpc.AgentServiceServicer):
    """gRPC front of :class:`~statekeeper_server.engine.domains.agents.AgentEngine`."""

    def __init__(self, runtime: Core) -> None:
        self.runtime = runtime
        self.engine = AgentEngine(runtime.backend, runtime.limits)

    async def SaveSnapshot(
        self, request: pb.SaveSnapshotRequest, context: object
    ) -> pb.SaveSnapshotResponse:
        """Store a snapshot."""
        record = from_message(request.snapshot, AgentSnapshot)
        stored = await self.engine.save_snapshot(record, request.keep_latest)
        return pb.SaveSnapshotResponse(
            snapshot_id=stored.snapshot_id,
            sequence=stored.sequence,
            timestamp=clamped_timestamp(stored.timestamp or 0.0),
        )

    async def GetSnapshot(
        self, request: pb.GetSnapshotRequest, context: object
    ) -> pb.GetSnapshotResponse:
        """Read one snapshot, or the newest."""
        record = await self.engine.get_snapshot(request.agent_id, request.snapshot_id)
        return pb.GetSnapshotResponse(
            snapshot=to_message(record, pb.AgentSnapshot, encoding=request.value_encoding)
        )

    async def ListSnapshots(
        self, request: pb.ListSnapshotsRequest, context: object
    ) -> pb.ListSnapshotsResponse:
        """One page of snapshots, newest first."""
        records, token = await self.engine.list_snapshots(
            request.agent_id, request.page_size, request.page_token
        )
        return pb.ListSnapshotsResponse(
            snapshots=[
                to_message(r, pb.AgentSnapshot, encoding=request.value_encoding) for r in records
            ],
            next_page_token=token,
        )

    async def SaveCheckpoint(
        self, request: pb.SaveCheckpointRequest, context: object
    ) -> pb.SaveCheckpointResponse:
        """Store a checkpoint."""
        record = from_message(request.checkpoint, AgentCheckpoint)
        stored, pruned = await self.engine.save_checkpoint(record, request.keep_latest)
        return pb.SaveCheckpointResponse(
            sequence=stored.sequence,
            timestamp=clamped_timestamp(stored.timestamp or 0.0),
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
            checkpoint=to_message(record, pb.AgentCheckpoint, encoding=request.value_encoding)
        )

    async def ListCheckpoints(
        self, request: pb.ListCheckpointsRequest, context: object
    ) -> pb.ListCheckpointsResponse:
        """One page of checkpoints, newest first."""
        records, token = await self.engine.list_checkpoints(
            request.agent_id, request.page_size, request.page_token
        )
        return pb.ListCheckpointsResponse(
            checkpoints=[
                to_message(r, pb.AgentCheckpoint, encoding=request.value_encoding) for r in records
            ],
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
                    checkpoint=to_message(
                        update.checkpoint, pb.AgentCheckpoint, encoding=request.value_encoding
                    ),
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
            checkpoint=to_message(record, pb.AgentCheckpoint, encoding=request.value_encoding),
            attempt=attempt,
        )

    async def CompleteRecovery(
        self, request: pb.CompleteRecoveryRequest, context: object
    ) -> pb.CompleteRecoveryResponse:
        """Record an attempt's outcome."""
        meta = await self.engine.complete_recovery(request.agent_id, request.success)
        return pb.CompleteRecoveryResponse(status=to_message(meta, pb.RecoveryStatus))

    async def GetRecoveryStatus(
        self, request: pb.GetRecoveryStatusRequest, context: object
    ) -> pb.GetRecoveryStatusResponse:
        """Read the recovery counters."""
        meta = await self.engine.recovery_status(request.agent_id)
        return pb.GetRecoveryStatusResponse(status=to_message(meta, pb.RecoveryStatus))

    async def DeleteAgent(
        self, request: pb.DeleteAgentRequest, context: object
    ) -> pb.DeleteAgentResponse:
        """Remove every record of an agent."""
        deleted, revision = await self.engine.delete_agent(request.agent_id)
        return pb.DeleteAgentResponse(deleted=deleted, revision=revision)
