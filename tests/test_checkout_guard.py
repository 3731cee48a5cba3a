"""The guard of tests/conftest.py sees a test server open a store in a data directory, so a
test that writes into the checkout's ``./data`` (which ``make run`` serves) fails."""

from __future__ import annotations

from pathlib import Path

from statekeeper_server.engine.storage.file import FileBackend

from tests.conftest import _data_dir_state


async def test_opening_a_store_changes_the_guarded_state(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _data_dir_state(data) is None
    store = FileBackend(data)
    await store.close()
    opened = _data_dir_state(data)
    assert opened is not None

    store = FileBackend(data)  # only opened and closed again: no write, but LOCK is rewritten
    await store.close()
    assert _data_dir_state(data) != opened
