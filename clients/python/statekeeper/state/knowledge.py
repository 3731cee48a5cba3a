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

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from statekeeper.state.client import ServiceClient, enum_maps
from statekeeper.timestamps import optional_datetime, to_timestamp
from statekeeper.v1 import knowledge_service_pb2 as pb
from statekeeper.v1 import knowledge_service_pb2_grpc


class IndexingStatus(enum.StrEnum):
    """The phase of a knowledge base's indexing run."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class SyncStatus(enum.StrEnum):
    """The synchronisation phase of a source."""

    PENDING = "pending"
    SYNCING = "syncing"
    SYNCED = "synced"
    FAILED = "failed"


_INDEXING, _INDEXING_BACK = enum_maps(IndexingStatus, pb.IndexingStatus, "INDEXING_STATUS")
_SYNC, _SYNC_BACK = enum_maps(SyncStatus, pb.SyncStatus, "SYNC_STATUS")


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

    def _to_proto(self) -> pb.IndexingProgress:
        return pb.IndexingProgress(
            knowledge_base_id=self.knowledge_base_id,
            status=_INDEXING[IndexingStatus(self.status)],
            total_documents=self.total_documents,
            processed_documents=self.processed_documents,
            failed_documents=self.failed_documents,
            start_time=to_timestamp(self.started_at),
            completion_time=to_timestamp(self.completed_at),
            embedding_count=self.embedding_count,
            storage_bytes=self.storage_bytes,
            error_message=self.error_message,
        )

    @classmethod
    def _from_proto(cls, message: pb.IndexingProgress) -> IndexingProgress:
        return cls(
            knowledge_base_id=message.knowledge_base_id,
            status=_INDEXING_BACK[message.status],
            total_documents=message.total_documents,
            processed_documents=message.processed_documents,
            failed_documents=message.failed_documents,
            started_at=optional_datetime(message, "start_time"),
            completed_at=optional_datetime(message, "completion_time"),
            embedding_count=message.embedding_count
            if message.HasField("embedding_count")
            else None,
            storage_bytes=message.storage_bytes if message.HasField("storage_bytes") else None,
            error_message=message.error_message,
            updated_at=optional_datetime(message, "update_time"),
        )


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

    def _to_proto(self) -> pb.SourceState:
        return pb.SourceState(
            source_id=self.source_id,
            knowledge_base_id=self.knowledge_base_id,
            sync_status=_SYNC[SyncStatus(self.sync_status)],
            last_sync_time=to_timestamp(self.last_sync),
            documents_synced=self.documents_synced,
            documents_pending=self.documents_pending,
            error_message=self.error_message,
        )

    @classmethod
    def _from_proto(cls, message: pb.SourceState) -> SourceState:
        return cls(
            source_id=message.source_id,
            knowledge_base_id=message.knowledge_base_id,
            sync_status=_SYNC_BACK[message.sync_status],
            last_sync=optional_datetime(message, "last_sync_time"),
            documents_synced=message.documents_synced,
            documents_pending=message.documents_pending,
            error_message=message.error_message,
            updated_at=optional_datetime(message, "update_time"),
        )


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
        request = pb.UpdateIndexingProgressRequest(progress=progress._to_proto())
        response = await self._call("UpdateIndexingProgress", request)
        return IndexingProgress._from_proto(response.progress)

    async def get_indexing_progress(self, knowledge_base_id: str) -> IndexingProgress:
        """The last progress report; NotFoundError when none was stored."""
        request = pb.GetIndexingProgressRequest(knowledge_base_id=knowledge_base_id)
        response = await self._call("GetIndexingProgress", request)
        return IndexingProgress._from_proto(response.progress)

    async def update_source_state(self, source_state: SourceState) -> SourceState:
        """Store a source report and return it as stored (with ``updated_at``)."""
        request = pb.UpdateSourceStateRequest(source=source_state._to_proto())
        response = await self._call("UpdateSourceState", request)
        return SourceState._from_proto(response.source)

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
            yield SourceState._from_proto(source)

    async def get_sources(self, knowledge_base_id: str) -> list[SourceState]:
        """All sources of a knowledge base, by source id (empty when none was reported)."""
        return [source async for source in self.iter_sources(knowledge_base_id)]

    async def get_knowledge_base_state(self, knowledge_base_id: str) -> KnowledgeBaseState:
        """The derived overview; NotFoundError when nothing was reported."""
        request = pb.GetKnowledgeBaseStateRequest(knowledge_base_id=knowledge_base_id)
        state = (await self._call("GetKnowledgeBaseState", request)).state
        return KnowledgeBaseState(
            knowledge_base_id=state.knowledge_base_id,
            total_documents=state.total_documents,
            total_embeddings=state.total_embeddings,
            last_updated=optional_datetime(state, "last_update_time"),
            storage_size_mb=state.storage_size_mb,
            indexing_status=_INDEXING_BACK.get(state.indexing_status),
            source_count=state.source_count,
            failed_documents=state.failed_documents,
            documents_pending=state.documents_pending,
            documents_synced=state.documents_synced,
        )

    async def delete_knowledge_base(self, knowledge_base_id: str) -> bool:
        """Remove a knowledge base's progress and sources; True when anything existed."""
        request = pb.DeleteKnowledgeBaseRequest(knowledge_base_id=knowledge_base_id)
        return bool((await self._call("DeleteKnowledgeBase", request)).deleted)
