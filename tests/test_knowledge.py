"""KnowledgeStateManager: the reference examples, derived totals and progress rules."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pytest
from statekeeper.state import (
    FailedPreconditionError,
    InvalidArgumentError,
    KnowledgeBaseState,
    KnowledgeStateManager,
    NotFoundError,
)


async def test_reference_examples(persistence_kwargs: dict[str, Any]) -> None:
    before = datetime.now()
    # -- Indexing Progress (verbatim; persistence="redis" swapped for the test mode) --
    logger = logging.getLogger(__name__)

    from statekeeper.state import (
        IndexingProgress,
        IndexingStatus,
        KnowledgeStateManager,
        SyncStatus,
    )

    # Initialize knowledge state manager
    kb_state = KnowledgeStateManager(
        **persistence_kwargs,
    )

    # Track indexing progress
    progress = IndexingProgress(
        knowledge_base_id="company_docs",
        status=IndexingStatus.IN_PROGRESS,
        total_documents=1000,
        processed_documents=450,
        failed_documents=5,
        started_at=datetime.now(),
    )

    await kb_state.update_indexing_progress(progress)

    # Check progress
    current = await kb_state.get_indexing_progress("company_docs")
    logger.info(f"Progress: {current.processed_documents}/{current.total_documents}")
    logger.info(f"Failed: {current.failed_documents}")

    assert (current.processed_documents, current.total_documents) == (450, 1000)
    assert current.failed_documents == 5
    assert current.status is IndexingStatus.IN_PROGRESS
    assert current.started_at is not None
    assert abs((current.started_at - progress.started_at).total_seconds()) < 1e-3

    # -- Source Synchronization (verbatim) --
    from statekeeper.state import SourceState

    # Track source sync status
    source_state = SourceState(
        source_id="confluence_docs",
        knowledge_base_id="company_docs",
        sync_status=SyncStatus.SYNCING,
        last_sync=datetime.now() - timedelta(hours=1),
        documents_synced=250,
        documents_pending=50,
    )

    await kb_state.update_source_state(source_state)

    # Get all sources for knowledge base
    sources = await kb_state.get_sources("company_docs")
    for source in sources:
        logger.info(f"{source.source_id}: {source.sync_status}")

    assert [(s.source_id, s.sync_status) for s in sources] == [
        ("confluence_docs", SyncStatus.SYNCING)
    ]
    assert f"{sources[0].sync_status}" == "syncing"
    assert (sources[0].documents_synced, sources[0].documents_pending) == (250, 50)

    # -- Knowledge Base State (verbatim) --
    from statekeeper.state import KnowledgeBaseState

    # Get overall knowledge base state
    kb_overview = await kb_state.get_knowledge_base_state("company_docs")

    logger.info(f"Total Documents: {kb_overview.total_documents}")
    logger.info(f"Total Embeddings: {kb_overview.total_embeddings}")
    logger.info(f"Last Updated: {kb_overview.last_updated}")
    logger.info(f"Storage Size: {kb_overview.storage_size_mb}MB")

    assert isinstance(kb_overview, KnowledgeBaseState)
    assert kb_overview.total_documents == 450  # processed documents of the indexing run
    assert kb_overview.total_embeddings == 450  # one per document: no embedding count reported
    assert kb_overview.storage_size_mb == 0.0
    assert kb_overview.last_updated is not None
    assert before - timedelta(seconds=1) <= kb_overview.last_updated <= datetime.now()
    assert (kb_overview.source_count, kb_overview.documents_pending) == (1, 50)
    await kb_state.close()


async def test_totals_follow_the_documented_formulas(persistence_kwargs: dict[str, Any]) -> None:
    from statekeeper.state import IndexingProgress, IndexingStatus, SourceState, SyncStatus

    async with KnowledgeStateManager(**persistence_kwargs) as kb:
        # Sources only: total documents are the synced documents of every source.
        for name, synced, pending in (("a", 10, 1), ("b", 32, 0), ("c", 0, 7)):
            await kb.update_source_state(
                SourceState(name, "kb", SyncStatus.SYNCED, None, synced, pending)
            )
        only_sources = await kb.get_knowledge_base_state("kb")
        assert (only_sources.total_documents, only_sources.total_embeddings) == (42, 42)
        assert (only_sources.documents_synced, only_sources.documents_pending) == (42, 8)
        assert only_sources.indexing_status is None
        # With progress: processed documents, reported embeddings and storage.
        stored = await kb.update_indexing_progress(
            IndexingProgress(
                knowledge_base_id="kb",
                status=IndexingStatus.COMPLETED,
                total_documents=40,
                processed_documents=39,
                failed_documents=1,
                embedding_count=1234,
                storage_bytes=3 * 1024 * 1024 // 2,
            )
        )
        overview = await kb.get_knowledge_base_state("kb")
        assert (overview.total_documents, overview.total_embeddings) == (39, 1234)
        assert overview.storage_size_mb == 1.5
        assert overview.indexing_status is IndexingStatus.COMPLETED
        assert overview.failed_documents == 1
        assert overview.last_updated == stored.updated_at
        # Sources are listed by id, page by page.
        assert [s.source_id async for s in kb.iter_sources("kb", page_size=2)] == ["a", "b", "c"]
        assert await kb.get_sources("nothing-here") == []
        assert await kb.delete_knowledge_base("kb")
        with pytest.raises(NotFoundError):
            await kb.get_knowledge_base_state("kb")


async def test_progress_rules_reject_bad_reports_and_change_nothing(
    persistence_kwargs: dict[str, Any],
) -> None:
    from statekeeper.state import IndexingProgress, IndexingStatus, SourceState, SyncStatus

    started = datetime.now()

    def report(processed: int, failed: int, total: int = 100) -> IndexingProgress:
        return IndexingProgress("kb", IndexingStatus.IN_PROGRESS, total, processed, failed, started)

    async with KnowledgeStateManager(**persistence_kwargs) as kb:
        with pytest.raises(NotFoundError):
            await kb.get_indexing_progress("kb")
        await kb.update_indexing_progress(report(60, 10))
        with pytest.raises(InvalidArgumentError):
            await kb.update_indexing_progress(report(95, 10))  # 105 > 100
        with pytest.raises(InvalidArgumentError):
            await kb.update_indexing_progress(report(-1, 0))
        with pytest.raises(FailedPreconditionError) as regressed:
            await kb.update_indexing_progress(report(50, 10))  # same run, fewer processed
        assert regressed.value.reason == "PROGRESS_REGRESSED"
        with pytest.raises(InvalidArgumentError):
            await kb.update_indexing_progress(IndexingProgress("bad/id", IndexingStatus.PENDING))
        with pytest.raises(InvalidArgumentError):
            await kb.update_source_state(SourceState("s", "kb", SyncStatus.SYNCED, None, -3, 0))
        current = await kb.get_indexing_progress("kb")
        assert (current.processed_documents, current.failed_documents) == (60, 10)
        assert await kb.get_sources("kb") == []
        # A new run (another start time) may start again from zero.
        restarted = IndexingProgress(
            "kb", IndexingStatus.IN_PROGRESS, 100, 0, 0, started + timedelta(minutes=5)
        )
        await kb.update_indexing_progress(restarted)
        assert (await kb.get_indexing_progress("kb")).processed_documents == 0
        assert isinstance(await kb.get_knowledge_base_state("kb"), KnowledgeBaseState)
