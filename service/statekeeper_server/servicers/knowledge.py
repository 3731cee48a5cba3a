"""The KnowledgeService servicer: validate the request, call the engine, build the response."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from statekeeper.v1 import knowledge_service_pb2 as pb
from statekeeper.v1 import knowledge_service_pb2_grpc

from statekeeper_server.engine.domains.knowledge import KnowledgeEngine
from statekeeper_server.servicers.convert import optional_unix, set_time

if TYPE_CHECKING:
    from statekeeper_server.runtime import Runtime

INDEXING = {
    pb.INDEXING_STATUS_PENDING: "pending",
    pb.INDEXING_STATUS_IN_PROGRESS: "in_progress",
    pb.INDEXING_STATUS_COMPLETED: "completed",
    pb.INDEXING_STATUS_FAILED: "failed",
    pb.INDEXING_STATUS_PAUSED: "paused",
    pb.INDEXING_STATUS_CANCELLED: "cancelled",
}
INDEXING_TO_PROTO = {name: number for number, name in INDEXING.items()}
SYNC = {
    pb.SYNC_STATUS_PENDING: "pending",
    pb.SYNC_STATUS_SYNCING: "syncing",
    pb.SYNC_STATUS_SYNCED: "synced",
    pb.SYNC_STATUS_FAILED: "failed",
}
SYNC_TO_PROTO = {name: number for number, name in SYNC.items()}


def progress_from_proto(message: pb.IndexingProgress) -> dict[str, Any]:
    """A progress record (validated by the engine) for a message."""
    return {
        "kb": message.knowledge_base_id,
        "status": INDEXING.get(message.status),
        "total": message.total_documents,
        "processed": message.processed_documents,
        "failed": message.failed_documents,
        "started": optional_unix(message, "start_time"),
        "completed": optional_unix(message, "completion_time"),
        "embeddings": message.embedding_count if message.HasField("embedding_count") else None,
        "storage_bytes": message.storage_bytes if message.HasField("storage_bytes") else None,
        "error": message.error_message,
    }


def progress_to_proto(record: dict[str, Any]) -> pb.IndexingProgress:
    """An IndexingProgress message for a stored record."""
    message = pb.IndexingProgress(
        knowledge_base_id=record["kb"],
        status=INDEXING_TO_PROTO[record["status"]],
        total_documents=record["total"],
        processed_documents=record["processed"],
        failed_documents=record["failed"],
        embedding_count=record.get("embeddings"),
        storage_bytes=record.get("storage_bytes"),
        error_message=record.get("error", ""),
    )
    set_time(message, "start_time", record.get("started"))
    set_time(message, "completion_time", record.get("completed"))
    set_time(message, "update_time", record.get("updated"))
    return message


def source_from_proto(message: pb.SourceState) -> dict[str, Any]:
    """A source record (validated by the engine) for a message."""
    return {
        "id": message.source_id,
        "kb": message.knowledge_base_id,
        "status": SYNC.get(message.sync_status),
        "last_sync": optional_unix(message, "last_sync_time"),
        "synced": message.documents_synced,
        "pending": message.documents_pending,
        "error": message.error_message,
    }


def source_to_proto(record: dict[str, Any]) -> pb.SourceState:
    """A SourceState message for a stored record."""
    message = pb.SourceState(
        source_id=record["id"],
        knowledge_base_id=record["kb"],
        sync_status=SYNC_TO_PROTO[record["status"]],
        documents_synced=record["synced"],
        documents_pending=record["pending"],
        error_message=record.get("error", ""),
    )
    set_time(message, "last_sync_time", record.get("last_sync"))
    set_time(message, "update_time", record.get("updated"))
    return message


class KnowledgeServicer(knowledge_service_pb2_grpc.KnowledgeServiceServicer):
    """gRPC front of :class:`~statekeeper_server.engine.domains.knowledge.KnowledgeEngine`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.engine = KnowledgeEngine(runtime.backend, runtime.limits)

    async def UpdateIndexingProgress(
        self, request: pb.UpdateIndexingProgressRequest, context: object
    ) -> pb.UpdateIndexingProgressResponse:
        """Store a progress report."""
        record = await self.engine.update_progress(progress_from_proto(request.progress))
        return pb.UpdateIndexingProgressResponse(progress=progress_to_proto(record))

    async def GetIndexingProgress(
        self, request: pb.GetIndexingProgressRequest, context: object
    ) -> pb.GetIndexingProgressResponse:
        """Read a progress report."""
        record = await self.engine.get_progress(request.knowledge_base_id)
        return pb.GetIndexingProgressResponse(progress=progress_to_proto(record))

    async def UpdateSourceState(
        self, request: pb.UpdateSourceStateRequest, context: object
    ) -> pb.UpdateSourceStateResponse:
        """Store a source report."""
        record = await self.engine.update_source(source_from_proto(request.source))
        return pb.UpdateSourceStateResponse(source=source_to_proto(record))

    async def ListSources(
        self, request: pb.ListSourcesRequest, context: object
    ) -> pb.ListSourcesResponse:
        """One page of sources."""
        records, token = await self.engine.list_sources(
            request.knowledge_base_id, request.page_size, request.page_token
        )
        return pb.ListSourcesResponse(
            sources=[source_to_proto(r) for r in records], next_page_token=token
        )

    async def GetKnowledgeBaseState(
        self, request: pb.GetKnowledgeBaseStateRequest, context: object
    ) -> pb.GetKnowledgeBaseStateResponse:
        """The derived overview."""
        overview = await self.engine.overview(request.knowledge_base_id)
        state = pb.KnowledgeBaseState(
            knowledge_base_id=overview.knowledge_base_id,
            total_documents=overview.total_documents,
            total_embeddings=overview.total_embeddings,
            storage_size_mb=overview.storage_size_mb,
            indexing_status=INDEXING_TO_PROTO[overview.indexing_status]
            if overview.indexing_status
            else pb.INDEXING_STATUS_UNSPECIFIED,
            source_count=overview.source_count,
            failed_documents=overview.failed_documents,
            documents_pending=overview.documents_pending,
            documents_synced=overview.documents_synced,
        )
        set_time(state, "last_update_time", overview.last_updated)
        return pb.GetKnowledgeBaseStateResponse(state=state)

    async def DeleteKnowledgeBase(
        self, request: pb.DeleteKnowledgeBaseRequest, context: object
    ) -> pb.DeleteKnowledgeBaseResponse:
        """Remove a knowledge base's reports."""
        deleted = await self.engine.delete(request.knowledge_base_id)
        return pb.DeleteKnowledgeBaseResponse(deleted=deleted)
