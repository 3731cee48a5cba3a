"""The Redis backend's batches: script calls sent in order in one pipeline (one round trip)."""

from __future__ import annotations

from typing import Any


async def run_scripts(redis: Any, calls: list[tuple[Any, list[Any]]]) -> list[Any]:
    """The replies (or errors) of script calls ``(script, args)`` sent in order in one pipeline
    (``EVALSHA``), after a ``SCRIPT LOAD`` of each script they use: a script missing from
    Redis's cache (after a restart) would otherwise fail some calls and not others, so that a
    retry would run them out of order."""
    scripts = {id(script): script for script, _ in calls}
    pipe = redis.pipeline(transaction=False)
    for script in scripts.values():
        pipe.script_load(script.script)
    for script, args in calls:
        pipe.evalsha(script.sha, 0, *args)
    replies = await pipe.execute(raise_on_error=False)
    return list(replies[len(scripts) :])
