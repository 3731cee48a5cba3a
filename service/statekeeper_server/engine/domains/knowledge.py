"""Knowledge-base state (the reference's ``KnowledgeStateManager``), written once over a Backend.

Keys, under the tenant prefix and the ``kb/`` namespace: ``kb/<kb>/progress`` holds the last
indexing progress report of a knowledge base and ``kb/<kb>/source/<source>`` the last report of
each source. Reports are stored with the server's time of storage (``updated``).

:meth:`KnowledgeEngine.overview` derives a knowledge base's totals from those reports:

* ``total_documents`` = the progress's ``processed_documents``; when no progress was ever
  reported, the sum of ``documents_synced`` over the sources;
* ``total_embeddings`` = the progress's ``embedding_count`` when reported, else
  ``total_documents`` (one embedding per document);
* ``storage_size_mb`` = the progress's ``storage_bytes`` / 1,048,576 (0 when not reported);
* ``last_updated`` = the latest storage time among the progress and every source;
* ``documents_pending`` / ``documents_synced`` = sums over the sources; ``failed_documents`` and
  ``indexing_status`` come from the progress.

Progress rules: ``processed + failed <= total`` (INVALID_ARGUMENT otherwise), and within one run
(same ``started``) neither ``processed`` nor ``failed`` may decrease (FAILED_PRECONDITION,
PROGRESS_REGRESSED), so a late out-of-order report cannot move progress backwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from statekeeper import values
from statekeeper.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    Reason,
)

from statekeeper_server.engine.domains.orchestration import check_text
from statekeeper_server.engine.identifiers import check_id
from statekeeper_server.engine.limits import Limits
from statekeeper_server.engine.retry import retry_on_conflict
from statekeeper_server.engine.storage.backend import Backend, Delete, Entry
from statekeeper_server.engine.tenancy import tenant_prefix
from statekeeper_server.engine.tokens import decode_scoped, encode_scoped

#: The backend namespace of knowledge-base records.
NAMESPACE = "kb/"
#: Bytes per mebibyte, for ``storage_size_mb``.
MEBIBYTE = 1024 * 1024


@dataclass
class Overview:
    """The derived totals of one knowledge base."""

    knowledge_base_id: str
    total_documents: int
    total_embeddings: int
    last_updated: float
    storage_size_mb: float
    indexing_status: str | None
    source_count: int
    failed_documents: int
    documents_pending: int
    documents_synced: int


def _base(kb_id: str) -> str:
    return tenant_prefix() + NAMESPACE + kb_id + "/"


def _doc(entry: Entry) -> dict[str, Any]:
    document: dict[str, Any] = values.unpack(entry.value)
    return document


def _non_negative(value: int | None, field: str) -> None:
    if value is not None and value < 0:
        raise InvalidArgumentError(
            f"{field} must not be negative",
            reason=Reason.INVALID_ARGUMENT,
            violations=[(field, "negative")],
        )


class KnowledgeEngine:
    """Indexing progress and source synchronisation per knowledge base."""

    def __init__(self, backend: Backend, limits: Limits | None = None) -> None:
        self.backend = backend
        self.limits = limits or Limits()

    async def update_progress(self, progress: dict[str, Any]) -> dict[str, Any]:
        """Store a progress report (fields: kb, status, total, processed, failed, started,
        completed, embeddings, storage_bytes, error)."""
        kb_id = check_id(progress["kb"], "progress.knowledge_base_id")
        if not progress.get("status"):
            raise InvalidArgumentError(
                "progress.status is required",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("progress.status", "required")],
            )
        for name in ("total", "processed", "failed", "embeddings", "storage_bytes"):
            _non_negative(progress.get(name), f"progress.{name}")
        check_text(progress.get("error", ""), "progress.error_message", 4096)
        if progress["processed"] + progress["failed"] > progress["total"]:
            raise InvalidArgumentError(
                f"processed ({progress['processed']}) + failed ({progress['failed']}) exceed "
                f"total ({progress['total']})",
                reason=Reason.INVALID_ARGUMENT,
                violations=[
                    ("progress.processed_documents", "processed + failed exceed total_documents")
                ],
            )
        key = _base(kb_id) + "progress"

        async def attempt() -> dict[str, Any]:
            entry = await self.backend.get(key)
            if entry is not None:
                old = _doc(entry)
                if old.get("started") == progress.get("started"):
                    for name in ("processed", "failed"):
                        if progress[name] < old[name]:
                            raise FailedPreconditionError(
                                f"{name} documents would go back from {old[name]} to "
                                f"{progress[name]} within the same run",
                                reason=Reason.PROGRESS_REGRESSED,
                                metadata={"field": name, "stored": str(old[name])},
                            )
            record = dict(progress, updated=time.time())
            await self.backend.put(
                key, values.pack(record), expected_revision=entry.mod_revision if entry else 0
            )
            return record

        return await retry_on_conflict(attempt)

    async def get_progress(self, kb_id: str) -> dict[str, Any]:
        """The last progress report; NOT_FOUND when none was stored."""
        check_id(kb_id, "knowledge_base_id")
        entry = await self.backend.get(_base(kb_id) + "progress")
        if entry is None:
            raise NotFoundError(
                f"no indexing progress for knowledge base {kb_id!r}",
                reason=Reason.KNOWLEDGE_BASE_NOT_FOUND,
                metadata={"id": kb_id},
            )
        return _doc(entry)

    async def update_source(self, source: dict[str, Any]) -> dict[str, Any]:
        """Store a source report (fields: id, kb, status, last_sync, synced, pending, error)."""
        kb_id = check_id(source["kb"], "source.knowledge_base_id")
        source_id = check_id(source["id"], "source.source_id")
        if not source.get("status"):
            raise InvalidArgumentError(
                "source.sync_status is required",
                reason=Reason.INVALID_ARGUMENT,
                violations=[("source.sync_status", "required")],
            )
        _non_negative(source["synced"], "source.documents_synced")
        _non_negative(source["pending"], "source.documents_pending")
        check_text(source.get("error", ""), "source.error_message", 4096)
        record = dict(source, updated=time.time())
        await self.backend.put(_base(kb_id) + "source/" + source_id, values.pack(record))
        return record

    async def list_sources(
        self, kb_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """One page of the knowledge base's sources, by source id."""
        check_id(kb_id, "knowledge_base_id")
        size = self.limits.check_page_size(page_size)
        prefix = _base(kb_id) + "source/"
        after = decode_scoped(
            page_token,
            kb_id,
            "page_token is not a token returned by ListSources for this knowledge base",
            "malformed or issued for another knowledge base",
        )
        page = await self.backend.range(
            prefix, start_after=prefix + after if after else "", limit=size
        )
        token = ""
        if page.more and page.entries:
            token = encode_scoped(kb_id, page.entries[-1].key[len(prefix) :])
        return [_doc(e) for e in page.entries], token

    async def overview(self, kb_id: str) -> Overview:
        """The totals derived from the reports (see the module docstring for each formula)."""
        check_id(kb_id, "knowledge_base_id")
        progress_entry = await self.backend.get(_base(kb_id) + "progress")
        progress = _doc(progress_entry) if progress_entry is not None else None
        sources: list[dict[str, Any]] = []
        token = ""
        while True:
            page, token = await self.list_sources(kb_id, 1000, token)
            sources.extend(page)
            if not token:
                break
        if progress is None and not sources:
            raise NotFoundError(
                f"nothing was reported for knowledge base {kb_id!r}",
                reason=Reason.KNOWLEDGE_BASE_NOT_FOUND,
                metadata={"id": kb_id},
            )
        synced = sum(s["synced"] for s in sources)
        pending = sum(s["pending"] for s in sources)
        total = progress["processed"] if progress is not None else synced
        embeddings = total
        storage = 0
        if progress is not None:
            if progress.get("embeddings") is not None:
                embeddings = progress["embeddings"]
            storage = progress.get("storage_bytes") or 0
        stamps = [s["updated"] for s in sources]
        if progress is not None:
            stamps.append(progress["updated"])
        return Overview(
            knowledge_base_id=kb_id,
            total_documents=total,
            total_embeddings=embeddings,
            last_updated=max(stamps),
            storage_size_mb=round(storage / MEBIBYTE, 3),
            indexing_status=progress["status"] if progress is not None else None,
            source_count=len(sources),
            failed_documents=progress["failed"] if progress is not None else 0,
            documents_pending=pending,
            documents_synced=synced,
        )

    async def delete(self, kb_id: str) -> bool:
        """Remove the knowledge base's progress and sources."""
        check_id(kb_id, "knowledge_base_id")
        base = _base(kb_id)
        deleted = False
        while True:
            page = await self.backend.range(base, limit=100)
            if not page.entries:
                return deleted
            await self.backend.txn([], [Delete(e.key) for e in page.entries])
            deleted = True
