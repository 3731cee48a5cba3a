"""The KnowledgeService servicer: convert the request, call the engine, build the response."""

from __future__ import annotations

from typing import TYPE_CHECKING

from statekeeper.messages import from_message, to_message
from statekeeper.v1 import knowledge_service_pb2 as pb
from statekeeper.v1 import knowledge_service_pb2_grpc

from statekeeper_server.engine.domains.knowledge import (
    IndexingProgress,
    KnowledgeEngine,
    SourceState,
)

if TYPE_CHECKING:
    from statekeeper_server.core import Core


class KnowledgeServicer(knowledge_service_pb2_grpc.KnowledgeServiceServicer):
    """gRPC front of :class:`~statekeeper_server.engine.domains.knowledge.KnowledgeEngine`."""

    def __init__(self, runtime: Core) -> None:
        self.runtime = runtime
        self.engine = KnowledgeEngine(runtime.backend, runtime.limits)

    async def UpdateIndexingProgress(
        self, request: pb.UpdateIndexingProgressRequest, context: object
    ) -> pb.UpdateIndexingProgressResponse:
        """Store a progress report."""
        record = await self.engine.update_progress(from_message(request.progress, IndexingProgress))
        return pb.UpdateIndexingProgressResponse(progress=to_message(record, pb.IndexingProgress))

    async def GetIndexingProgress(
        self, request: pb.GetIndexingProgressRequest, context: object
    ) -> pb.GetIndexingProgressResponse:
        """Read a progress report."""
        record = await self.engine.get_progress(request.knowledge_base_id)
        return pb.GetIndexingProgressResponse(progress=to_message(record, pb.IndexingProgress))

    async def UpdateSourceState(
        self, request: pb.UpdateSourceStateRequest, context: object
    ) -> pb.UpdateSourceStateResponse:
        """Store a source report."""
        record = await self.engine.update_source(from_message(request.source, SourceState))
        return pb.UpdateSourceStateResponse(source=to_message(record, pb.SourceState))

    async def ListSources(
        self, request: pb.ListSourcesRequest, context: object
    ) -> pb.ListSourcesResponse:
        """One page of sources."""
        records, token = await self.engine.list_sources(
            request.knowledge_base_id, request.page_size, request.page_token
        )
        return pb.ListSourcesResponse(
            sources=[to_message(r, pb.SourceState) for r in records], next_page_token=token
        )

    async def GetKnowledgeBaseState(
        self, request: pb.GetKnowledgeBaseStateRequest, context: object
    ) -> pb.GetKnowledgeBaseStateResponse:
        """The derived overview."""
        overview = await self.engine.overview(request.knowledge_base_id)
        return pb.GetKnowledgeBaseStateResponse(state=to_message(overview, pb.KnowledgeBaseState))

    async def DeleteKnowledgeBase(
        self, request: pb.DeleteKnowledgeBaseRequest, context: object
    ) -> pb.DeleteKnowledgeBaseResponse:
        """Remove a knowledge base's reports."""
        deleted = await self.engine.delete(request.knowledge_base_id)
        return pb.DeleteKnowledgeBaseResponse(deleted=deleted)
