"""The LangGraph checkpointer in statekeeper: LangGraph's own conformance suite
(``langgraph-checkpoint-conformance``, every base and extended capability), and what it does
beyond the suite: the key layout, fencing, retention and the synchronous API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks
from statekeeper.integrations.langgraph import StatekeeperSaver
from statekeeper.state import StateManager

from tests.agent_stores import manager

__all__ = ["manager"]


async def test_conformance_suite_passes_every_capability(manager: StateManager) -> None:
    @checkpointer_test(name="StatekeeperSaver")
    async def fresh_saver() -> AsyncIterator[StatekeeperSaver]:
        # Each capability's suite gets a saver of its own key space (a fresh store).
        yield StatekeeperSaver(manager, key_prefix=f"conformance/{uuid.uuid4().hex}/")

    report = await validate(fresh_saver, progress=ProgressCallbacks.verbose())
    report.print_report()
    failures = {name: r.failures for name, r in report.results.items() if r.failures}
    assert failures == {}
    assert {name for name, r in report.results.items() if r.detected and r.passed} == {
        capability.value for capability in ALL_CAPABILITIES
    }
    assert report.conformance_level() == "FULL"
