"""Knowledge-base state (the reference's ``KnowledgeStateManager``), written once over a Backend.

Keys, under the tenant prefix and the ``kb/`` namespace: ``kb/<kb>/progress`` holds the last
indexing progress report of a knowledge base and ``kb/<kb>/source/<source>`` the last report of
each source. Reports are stored as typed records (:class:`IndexingProgress`,
:class:`SourceState`) with the server's time of storage (``update_time``).

:meth:`KnowledgeEngine.overview` derives a knowledge base's totals from those reports:

* ``total_documents`` = the progress's ``processed_documents``; when no progress was ever
  reported, the sum of ``documents_synced`` over the sources;
* ``total_embeddings`` = the progress's ``embedding_count`` when reported, else
  ``total_documents`` (one embedding per document);
* ``storage_size_mb`` = the progress's ``storage_bytes`` / 1,048,576 (0 when not reported);
* ``last_update_time`` = the latest storage time among the progress and every source;
* ``documents_pending`` / ``documents_synced`` = sums over the sources; ``failed_documents`` and
  ``indexing_status`` come from the progress.

Progress rules: ``processed + failed <= total`` (INVALID_ARGUMENT otherwise), and within one run
(same ``started``) neither ``processed`` nor ``failed`` may decrease (FAILED_PRECONDITION,
PROGRESS_REGRESSED), so a late out-of-order report cannot move progress backwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from statekeeper.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    Reason,
)
from statekeeper.statuses import IndexingStatus, SyncStatus

from statekeeper_server.engine.identifiers import check_id, check_text, require
from statekeeper_server.engine.limits import Limits
from statekeeper_server.engine.records import (
    Schema,
    Txn,
    delete_prefix,
    renamed,
    scan,
    scoped_page,
    transact,
)
from statekeeper_server.engine.storage.backend import Backend
from statekeeper_server.engine.tenancy import tenant_prefix

#: The backend namespace of knowledge-base records.
NAMESPACE = "kb/"
#: Bytes per mebibyte, for ``storage_size_mb``.
MEBIBYTE = 1024 * 1024
#: The longest error message a report may carry, in characters.
MAX_ERROR_MESSAGE = 4096


@dataclass(frozen=True, slots=True)
class IndexingProgress:
    """The last indexing progress report of a knowledge base."""

    knowledge_base_id: str = ""
    status: IndexingStatus | None = None
    total_documents: int = 0
    processed_documents: int = 0
    failed_documents: int = 0
    start_time: float | None = None
    completion_time: float | None = None
    embedding_count: int | None = None
    storage_bytes: int | None = None
    error_message: str = ""
    update_time: float | None = None


@dataclass(frozen=True, slots=True)
class SourceState:
    """The last synchronisation report of one source."""

    source_id: str = ""
    knowledge_base_id: str = ""
    sync_status: SyncStatus | None = None
    last_sync_time: float | None = None
    documents_synced: int = 0
    documents_pending: int = 0
    error_message: str = ""
    update_time: float | None = None


@dataclass(frozen=True, slots=True)
class KnowledgeBaseState:
    """The derived totals of one knowledge base."""

    knowledge_base_id: str
    total_documents: int
    total_embeddings: int
    last_update_time: float
    storage_size_mb: float
    indexing_status: IndexingStatus | None
    source_count: int
    failed_documents: int
    documents_pending: int
    documents_synced: int


PROGRESS = Schema(
    IndexingProgress,
    field="progress",
    upgrades={
        0: renamed(
            {
                "kb": "knowledge_base_id",
                "total": "total_documents",
                "processed": "processed_documents",
                "failed": "failed_documents",
                "started": "start_time",
                "completed": "completion_time",
                "embeddings": "embedding_count",
                "error": "error_message",
                "updated": "update_time",
            }
        )
    },
)
SOURCE = Schema(
    SourceState,
    field="source",
    upgrades={
        0: renamed(
            {
                "id": "source_id",
                "kb": "knowledge_base_id",
                "status": "sync_status",
                "last_sync": "last_sync_time",
                "synced": "documents_synced",
                "pending": "documents_pending",
                "error": "error_message",
                "updated": "update_time",
            }
        )
    },
)


def _base(kb_id: str) -> str:
    return tenant_prefix() + NAMESPACE + kb_id + "/"


def _non_negative(value: int | None, field: str) -> None:
    if value is not None and value < 0:
        raise InvalidArgumentError(
            f"{field} must not be negative",
            reason=Reason.INVALID_ARGUMENT,
            violations=[(field, "negative")],
        )


def _check_progress(progress: IndexingProgress) -> str:
    """Validate a progress report; its knowledge base id."""
    kb_id = check_id(progress.knowledge_base_id, "progress.knowledge_base_id")
    require(progress.status, "progress.status")
    for name in (
        "total_documents",
        "processed_documents",
        "failed_documents",
        "embedding_count",
        "storage_bytes",
    ):
        _non_negative(getattr(progress, name), f"progress.{name}")
    check_text(progress.error_message, "progress.error_message", MAX_ERROR_MESSAGE)
    processed, failed = progress.processed_documents, progress.failed_documents
    if processed + failed > progress.total_documents:
        raise InvalidArgumentError(
            f"processed ({processed}) + failed ({failed}) exceed total "
            f"({progress.total_documents})",
            reason=Reason.INVALID_ARGUMENT,
            violations=[
                ("progress.processed_documents", "processed + failed exceed total_documents")
            ],
        )
    return kb_id


def _check_no_regression(old: IndexingProgress, new: IndexingProgress) -> None:
    """Within one run (same start time) processed and failed never go back."""
    if old.start_time != new.start_time:
        return
    for name, short in (("processed_documents", "processed"), ("failed_documents", "failed")):
        stored, given = getattr(old, name), getattr(new, name)
        if given < stored:
            raise FailedPreconditionError(
                f"{short} documents would go back from {stored} to {given} within the same run",
                reason=Reason.PROGRESS_REGRESSED,
                metadata={"field": short, "stored": str(stored)},
            )


class KnowledgeEngine:
    """Indexing progress and source synchronisation per knowledge base."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        self.backend = backend
        self.limits = limits or Limits()

    async def update_progress(self, progress: IndexingProgress) -> IndexingProgress:
        """Store a progress report; returns it with the server's storage time."""
        key = _base(_check_progress(progress)) + "progress"

        async def body(txn: Txn) -> IndexingProgress:
            old = await txn.get(key, PROGRESS)
            if old is not None:
                _check_no_regression(old, progress)
            record = replace(progress, update_time=time.time())
            txn.put(key, record, PROGRESS)
            return record

        return await transact(self.backend, body, limits=self.limits)

    async def get_progress(self, kb_id: str) -> IndexingProgress:
        """The last progress report; NOT_FOUND when none was stored."""
        check_id(kb_id, "knowledge_base_id")
        entry = await self.backend.get(_base(kb_id) + "progress")
        if entry is None:
            raise NotFoundError(
                f"no indexing progress for knowledge base {kb_id!r}",
                reason=Reason.KNOWLEDGE_BASE_NOT_FOUND,
                metadata={"id": kb_id},
            )
        return PROGRESS.unpack(entry.value)

    async def update_source(self, source: SourceState) -> SourceState:
        """Store a source report; returns it with the server's storage time."""
        kb_id = check_id(source.knowledge_base_id, "source.knowledge_base_id")
        source_id = check_id(source.source_id, "source.source_id")
        require(source.sync_status, "source.sync_status")
        _non_negative(source.documents_synced, "source.documents_synced")
        _non_negative(source.documents_pending, "source.documents_pending")
        check_text(source.error_message, "source.error_message", MAX_ERROR_MESSAGE)
        record = replace(source, update_time=time.time())
        await self.backend.put(
            _base(kb_id) + "source/" + source_id, SOURCE.pack(record, self.limits)
        )
        return record

    async def list_sources(
        self, kb_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[SourceState], str]:
        """One page of the knowledge base's sources, by source id."""
        check_id(kb_id, "knowledge_base_id")
        size = self.limits.check_page_size(page_size)
        entries, token = await scoped_page(
            self.backend,
            _base(kb_id) + "source/",
            kb_id,
            page_token,
            size,
            "page_token is not a token returned by ListSources for this knowledge base",
        )
        return [SOURCE.unpack(e.value) for e in entries], token

    async def overview(self, kb_id: str) -> KnowledgeBaseState:
        """The totals derived from the reports (see the module docstring for each formula)."""
        check_id(kb_id, "knowledge_base_id")
        base = _base(kb_id)
        progress_entry = await self.backend.get(base + "progress")
        progress = PROGRESS.unpack(progress_entry.value) if progress_entry is not None else None
        sources = [SOURCE.unpack(e.value) async for e in scan(self.backend, base + "source/")]
        if progress is None and not sources:
            raise NotFoundError(
                f"nothing was reported for knowledge base {kb_id!r}",
                reason=Reason.KNOWLEDGE_BASE_NOT_FOUND,
                metadata={"id": kb_id},
            )
        synced = sum(s.documents_synced for s in sources)
        total = progress.processed_documents if progress is not None else synced
        embeddings = total
        storage = 0
        if progress is not None:
            if progress.embedding_count is not None:
                embeddings = progress.embedding_count
            storage = progress.storage_bytes or 0
        stamps = [s.update_time or 0.0 for s in sources]
        if progress is not None:
            stamps.append(progress.update_time or 0.0)
        return KnowledgeBaseState(
            knowledge_base_id=kb_id,
            total_documents=total,
            total_embeddings=embeddings,
            last_update_time=max(stamps),
            storage_size_mb=round(storage / MEBIBYTE, 3),
            indexing_status=progress.status if progress is not None else None,
            source_count=len(sources),
            failed_documents=progress.failed_documents if progress is not None else 0,
            documents_pending=sum(s.documents_pending for s in sources),
            documents_synced=synced,
        )

    async def delete(self, kb_id: str) -> bool:
        """Remove the knowledge base's progress and sources."""
        check_id(kb_id, "knowledge_base_id")
        return await delete_prefix(self.backend, _base(kb_id)) > 0
