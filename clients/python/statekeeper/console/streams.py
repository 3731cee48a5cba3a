"""Watches as server-sent events: one gRPC watch per browser stream, resumable by position.

Each watch response becomes one event whose ``id`` is the revision (or session sequence) it
brings the page to. The browser's EventSource sends the last id it received as
``Last-Event-ID`` when it reconnects, and the console starts the new watch at the next position,
so a page that lost its connection (or whose server restarted) gets every change once. The
first connection starts after the ``after`` query parameter: the revision of the snapshot the
page just read. The console keeps nothing between connections.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from statekeeper.console.api import Api, Failure

log = logging.getLogger("statekeeper.console")

#: Milliseconds the browser waits before it reconnects a stream that ended.
RETRY_MS = 1000

#: Failures after which reconnecting cannot help: the page shows them and stops the stream.
FATAL_CODES = {
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "OUT_OF_RANGE",
    "FAILED_PRECONDITION",
}


def sse(data: Any, event: str | None = None, event_id: int | None = None) -> str:
    """One server-sent event."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


def resume_position(last_event_id: str | None, after: str | None) -> int | None:
    """Where a stream resumes: the browser's Last-Event-ID, else the page's ``after``."""
    for value in (last_event_id, after):
        if value and value.strip().isdigit():
            return int(value)
    return None


async def event_stream(
    api: Api, service: str, method: str, body: Any, after: int | None
) -> AsyncIterator[str]:
    """The server-sent events of one watch, until it ends or fails.

    Events: ``message`` (a watch response, with its position as id), ``compacted`` (the history
    the page needs is gone: read the view again), ``failure`` (``fatal`` when reconnecting
    cannot help). A stream that ends otherwise is reconnected by the browser.
    """
    yield f"retry: {RETRY_MS}\n\n"
    try:
        async for position, message in api.watch(service, method, body, after):
            if message.get("canceled"):
                if int(message.get("compact_revision", 0)) > 0:
                    yield sse(message, "compacted")
                    return
                # The server ended the stream (slow consumer, shutdown): the browser
                # reconnects and resumes from its last position.
                return
            yield sse(message, event_id=position)
    except Failure as failure:
        if failure.reason == "HISTORY_COMPACTED":
            yield sse(failure.to_json(), "compacted")
            return
        yield sse({**failure.to_json(), "fatal": failure.code in FATAL_CODES}, "failure")
    except Exception:
        log.exception("console stream %s.%s failed", service, method)
        internal = Failure("INTERNAL", "INTERNAL", "The console's stream failed; see its log.")
        yield sse({**internal.to_json(), "fatal": False}, "failure")
