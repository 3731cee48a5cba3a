"""``KnowledgeStateManager``: indexing progress and source synchronisation of knowledge bases.

:meth:`KnowledgeStateManager.get_knowledge_base_state` returns totals the server derives from
what was reported:

* ``total_documents``: the indexing progress's ``processed_documents``; when no progress was
  ever reported, the sum of the sources' ``documents_synced``;
* ``total_embeddings``: the progress's ``embedding_count`` when reported, else
  ``total_documents`` (one embedding per document);
* ``storage_size_mb``: the progress's ``storage_bytes`` / 1,048,576 (0.0 when not reported);
* ``last_updated``: the latest time any report of the knowledge base was stored.

``processed_documents + failed_documents`` may never exceed ``total_documents``
(InvalidArgumentError), and within one run (same ``started_at``) processed and failed counts
never go down (FailedPreconditionError).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from statekeeper.messages import from_message, to_message
from statekeeper.state.client import ServiceClient
from statekeeper.statuses import IndexingStatus, SyncStatus
from statekeeper.v1 import knowledge_service_pb2 as pb
from statekeeper.v1 import knowledge_service_pb2_grpc

#: The API's field names that differ from the messages'.
_PROGRESS_NAMES = {
    "started_at": "start_time",
    "completed_at": "completion_time",
    "updated_at": "update_time",
}
_SOURCE_NAMES = {"last_sync": "last_sync_time", "updated_at": "update_time"}
_STATE_NAMES = {"last_updated": "last_update_time"}


@dataclass
class IndexingProgress:
    """The progress of an indexing run. ``embedding_count`` and ``storage_bytes`` are optional
    reports that feed the knowledge base's totals; ``updated_at`` is set by the server."""

    knowledge_base_id: str
    status: IndexingStatus = IndexingStatus.PENDING
    total_documents: int = 0
    processed_documents: int = 0
    failed_documents: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    embedding_count: int | None = None
    storage_bytes: int | None = None
    error_message: str = ""
    updated_at: datetime | None = None

    @property
    def percent_complete(self) -> float:
        """Processed plus failed documents as a percentage of the total (100 when empty)."""
        if self.total_documents == 0:
            return 100.0
        return 100.0 * (self.processed_documents + self.failed_documents) / self.total_documents


@dataclass
class SourceState:
    """The synchronisation state of one source of a knowledge base."""

    source_id: str
    knowledge_base_id: str
    sync_status: SyncStatus = SyncStatus.PENDING
    last_sync: datetime | None = None
    documents_synced: int = 0
    documents_pending: int = 0
    error_message: str = ""
    updated_at: datetime | None = None


@dataclass
class KnowledgeBaseState:
    """The overview of a knowledge base (see the module docstring for each formula)."""

    knowledge_base_id: str
    total_documents: int
    total_embeddings: int
    last_updated: datetime | None
    storage_size_mb: float
    indexing_status: IndexingStatus | None = None
    source_count: int = 0
    failed_documents: int = 0
    documents_pending: int = 0
    documents_synced: int = 0


class KnowledgeStateManager(ServiceClient):
    """Track indexing progress and source synchronisation per knowledge base.

    ``persistence`` is ``"memory"``, ``"file"`` or ``"redis"`` (embedded) or ``"grpc"`` (a
    server at ``address``); ``transport`` shares one connection between managers.
    ``**options`` (TLS, token, namespace, ...) go to :func:`statekeeper.transport.connect`.
    """

    _STUB = knowledge_service_pb2_grpc.KnowledgeServiceStub
    _SERVICE = "statekeeper.v1.KnowledgeService"

    async def update_indexing_progress(self, progress: IndexingProgress) -> IndexingProgress:
        """Store a progress report and return it as stored (with ``updated_at``)."""
        request = pb.UpdateIndexingProgressRequest(
            progress=to_message(progress, pb.IndexingProgress, _PROGRESS_NAMES)
        )
        response = await self._call("UpdateIndexingProgress", request)
        return from_message(response.progress, IndexingProgress, _PROGRESS_NAMES)

    async def get_indexing_progress(self, knowledge_base_id: str) -> IndexingProgress:
        """The last progress report; NotFoundError when none was stored."""
        request = pb.GetIndexingProgressRequest(knowledge_base_id=knowledge_base_id)
        response = await self._call("GetIndexingProgress", request)
        return from_message(response.progress, IndexingProgress, _PROGRESS_NAMES)

    async def update_source_state(self, source_state: SourceState) -> SourceState:
        """Store a source report and return it as stored (with ``updated_at``)."""
        request = pb.UpdateSourceStateRequest(
            source=to_message(source_state, pb.SourceState, _SOURCE_NAMES)
        )
        response = await self._call("UpdateSourceState", request)
        return from_message(response.source, SourceState, _SOURCE_NAMES)

    async def iter_sources(
        self, knowledge_base_id: str, page_size: int = 0
    ) -> AsyncIterator[SourceState]:
        """Every source of a knowledge base, by source id, fetched page by page."""
        pages = self._pages(
            "ListSources",
            pb.ListSourcesRequest,
            "sources",
            knowledge_base_id=knowledge_base_id,
            page_size=page_size,
        )
        async for source in pages:
            yield from_message(source, SourceState, _SOURCE_NAMES)

    async def get_sources(self, knowledge_base_id: str) -> list[SourceState]:
        """All sources of a knowledge base, by source id (empty when none was reported)."""
        return [source async for source in self.iter_sources(knowledge_base_id)]

    async def get_knowledge_base_state(self, knowledge_base_id: str) -> KnowledgeBaseState:
        """The derived overview; NotFoundError when nothing was reported."""
        request = pb.GetKnowledgeBaseStateRequest(knowledge_base_id=knowledge_base_id)
        state = (await self._call("GetKnowledgeBaseState", request)).state
        return from_message(state, KnowledgeBaseState, _STATE_NAMES)

    async def delete_knowledge_base(self, knowledge_base_id: str) -> bool:
        """Remove a knowledge base's progress and sources; True when anything existed."""
        request = pb.DeleteKnowledgeBaseRequest(knowledge_base_id=knowledge_base_id)
        return bool((await self._call("DeleteKnowledgeBase", request)).deleted)
