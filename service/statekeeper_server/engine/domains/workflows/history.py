"""Reading a workflow's step history: all of it (GetWorkflow) or one page, newest first
(ListWorkflowSteps).

A step is superseded when a resume recorded after it went back to a lower step
(:func:`~.records.mark_superseded`). A page of the newest-first listing therefore needs only the
resumes recorded among its own steps and the lowest step restored by the newer ones, which its
page token carries with the step sequence and the resume number where the next page continues.
So a page reads its steps and the resumes among them, never the whole history, and the listing
is as of its first page (steps and resumes recorded later are not in it).
"""

from __future__ import annotations

from statekeeper_server.engine.domains.workflows.records import (
    RESUME,
    STEP,
    StepState,
    WorkflowResume,
    WorkflowState,
    mark_superseded,
)
from statekeeper_server.engine.records import scan
from statekeeper_server.engine.storage.backend import Backend, KeyRange
from statekeeper_server.engine.tokens import decode_scoped, digest, encode_scoped, invalid_token

#: The message of an INVALID_PAGE_TOKEN error of ListWorkflowSteps.
STEP_TOKEN = "page_token is not a token returned by ListWorkflowSteps for this workflow"


def _newest_first(resumes: list[WorkflowResume]) -> list[WorkflowResume]:
    return sorted(resumes, key=lambda resume: resume.history_sequence, reverse=True)


async def whole_history(
    backend: Backend, base: str, record: WorkflowState, include_steps: bool
) -> tuple[list[WorkflowResume], list[StepState]]:
    """Every resume of the workflow under ``base`` (oldest first; those of a record of version 0
    are inline) and, with ``include_steps``, every step in history order, marked."""
    resumes = [*record.resumes]
    resumes += [RESUME.unpack(e.value) async for e in scan(backend, base + "resume/")]
    steps: list[StepState] = []
    if include_steps:
        steps = [STEP.unpack(e.value) async for e in scan(backend, base + "step/")]
        mark_superseded(reversed(steps), _newest_first(resumes))
    return resumes, steps


async def steps_page(
    backend: Backend, base: str, record: WorkflowState, size: int, page_token: str
) -> tuple[list[StepState], str]:
    """One page of at most ``size`` steps of the workflow under ``base``, newest first and
    marked, and the next page's token ("" on the last page)."""
    scope = digest("workflow steps", base)
    before, resumes_before, lowest = _cursor(page_token, scope) or (
        record.step_sequence + 1,
        record.resume_count + 1,
        None,
    )
    page = await backend.scan(_below(base + "step/", before), reverse=True, limit=size)
    steps = [STEP.unpack(entry.value) for entry in page.entries]
    if not steps:
        return [], ""
    oldest = steps[-1].sequence
    resumes, resumes_before = await _resumes_after(
        backend, base + "resume/", resumes_before, oldest, len(steps) + 1
    )
    # Resumes kept inline by a record of version 0 are older than every stored one.
    resumes += _newest_first([r for r in record.resumes if oldest < r.history_sequence <= before])
    lowest = mark_superseded(steps, resumes, lowest)
    if not page.more:
        return steps, ""
    return steps, encode_scoped(
        scope, f"{oldest}.{resumes_before}.{'' if lowest is None else lowest}"
    )


async def _resumes_after(
    backend: Backend, prefix: str, before: int, oldest: int, limit: int
) -> tuple[list[WorkflowResume], int]:
    """The resumes under ``prefix`` numbered below ``before`` that were recorded after step
    sequence ``oldest``, newest first, read ``limit`` at a time, and the number below which the
    next (older) page reads on."""
    found: list[WorkflowResume] = []
    after: str | None = None
    while True:
        page = await backend.scan(_below(prefix, before), after=after, reverse=True, limit=limit)
        for entry in page.entries:
            resume = RESUME.unpack(entry.value)
            if resume.history_sequence <= oldest:
                return found, int(entry.key[len(prefix) :]) + 1
            found.append(resume)
        if not page.more:
            return found, 1
        after = page.cursor


def _below(prefix: str, number: int) -> KeyRange:
    """The keys ``prefix`` + a zero-padded number below ``number``."""
    return KeyRange(prefix, prefix, f"{prefix}{number:020d}")


def _cursor(token: str, scope: str) -> tuple[int, int, int | None] | None:
    """(step sequence, resume number, lowest restored step) of a ListWorkflowSteps token; None
    for no token."""
    text = decode_scoped(token, scope, STEP_TOKEN, "malformed or issued for another workflow")
    if not text:
        return None
    try:
        before, resumes_before, lowest = text.split(".")
        return int(before), int(resumes_before), int(lowest) if lowest else None
    except ValueError:
        raise invalid_token(STEP_TOKEN) from None
