"""The web console in a real headless Chromium (Debian's, driven by Selenium through Debian's
chromedriver) against a real server: what the tests write through the Python API shows in each
view, changes appear without a reload, a stream resumes across a server restart without loss or
repeats, and the writes of the page are compare-and-set. Each test leaves screenshots of what it
saw in its tmp_path."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from grpc import aio
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from statekeeper.state import (
    AgentCheckpoint,
    AgentCoordinationState,
    AgentSnapshot,
    AgentStateStore,
    IndexingProgress,
    IndexingStatus,
    KnowledgeStateManager,
    OrchestrationStateManager,
    RetryState,
    SourceState,
    SpeechStateManager,
    StateConfig,
    StateManager,
    StepState,
    STTState,
    SyncStatus,
    TeamState,
    ToolExecution,
    ToolStateManager,
    TranscriptionStatus,
    TTSState,
    WorkflowCheckpoint,
    WorkflowState,
    WorkflowStateManager,
    WorkflowStatus,
)
from statekeeper.v1 import orchestration_service_pb2 as opb
from statekeeper.v1 import orchestration_service_pb2_grpc as ogrpc

from tests.pki import Authority
from tests.servers import ServerProcess, start_server_process

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
#: How long a page condition may take to hold (a bound, not a pause: waits end when it holds).
WAIT = 30

T = TypeVar("T")
_CONSOLE_URL = re.compile(r"statekeeper console on (\S+)")


def run(coroutine: Awaitable[T]) -> T:
    """Run one coroutine of Python API calls."""

    async def main() -> T:
        return await coroutine

    return asyncio.run(main())


class Console:
    """A ``statekeeper ui`` process."""

    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "statekeeper_server", "ui", "--listen", "127.0.0.1:0"]
        self.process = subprocess.Popen([*command, *args], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        for line in self.process.stdout:
            match = _CONSOLE_URL.search(line)
            if match:
                self.url = match.group(1)
                return
        self.process.wait(timeout=30)
        raise RuntimeError(f"the console exited with {self.process.returncode}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class Server:
    """The module's server: a file-backend ``statekeeper serve`` that a test may restart."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process: ServerProcess = start_server_process(
            "--backend", "file", "--data-dir", str(data_dir)
        )
        self.address = self.process.address

    def stop(self) -> None:
        self.process.terminate()

    def start_again(self) -> None:
        port = self.address.rsplit(":", 1)[1]
        self.process = start_server_process(
            "--port", port, "--backend", "file", "--data-dir", str(self.data_dir)
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = Server(tmp_path_factory.mktemp("console-data"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def console(server: Server) -> Iterator[Console]:
    started = Console("--address", server.address)
    yield started
    started.stop()


def chromium(*arguments: str) -> WebDriver:
    """A headless Chromium driven through chromedriver (``arguments`` added to its own)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--disable-gpu", *arguments):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = chromium()
    yield driver
    driver.quit()


class Page:
    """The browser on the console, with waits on page conditions and screenshots."""

    def __init__(self, driver: WebDriver, base: str, shots: Path) -> None:
        self.driver = driver
        self.base = base.rstrip("/")
        self.shots = shots

    def open(self, fragment: str) -> None:
        """Load the page afresh at ``#/<fragment>``."""
        self.driver.get("about:blank")
        self.driver.get(f"{self.base}/#/{fragment}")

    def until(self, condition: Callable[[WebDriver], Any], what: str) -> Any:
        """Wait until ``condition`` returns something true; fail saying ``what`` was awaited."""
        try:
            return WebDriverWait(self.driver, WAIT, ignored_exceptions=(Exception,)).until(
                condition, message=f"the page never showed {what}"
            )
        except TimeoutException:
            self.screenshot("failed-wait")
            raise

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        """The text of the first element at ``css`` (read in one step: no stale element)."""
        text = self.driver.execute_script(
            "const node = document.querySelector(arguments[0]); return node && node.innerText;",
            css,
        )
        if text is None:
            raise LookupError(f"nothing at {css}")
        return str(text)

    def attrs(self, css: str, name: str) -> list[str | None]:
        """Attribute ``name`` of every element at ``css``, read in one step."""
        return list(
            self.driver.execute_script(
                "return Array.from(document.querySelectorAll(arguments[0]),"
                " (node) => node.getAttribute(arguments[1]));",
                css,
                name,
            )
        )

    def tail(self) -> list[tuple[str | None, str | None]]:
        """The Keys view's live tail, newest first: (event type, key) per row."""
        rows = "#key-tail tr"
        return list(zip(self.attrs(rows, "data-type"), self.attrs(rows, "data-key"), strict=True))

    def click(self, css: str) -> None:
        """Click the element at ``css``, again if the page re-rendered it meanwhile."""
        self.until(lambda d: self.find(css).click() or True, f"a clickable {css}")

    def shows(self, css: str, text: str) -> Any:
        """Wait until the element at ``css`` contains ``text``."""
        return self.until(lambda d: text in self.text(css), f"{text!r} in {css}")

    def confirm(self, reason: str | None = None) -> None:
        """Answer the open confirmation dialog, with ``reason`` typed in when given."""
        self.until(lambda d: self.find("#confirm").get_attribute("open") is not None, "the dialog")
        if reason is not None:
            self.until(lambda d: self.find("#confirm-reason").send_keys(reason) or True, "a reason")
        self.click("#confirm-yes")

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


@pytest.fixture
def page(browser: WebDriver, console: Console, tmp_path: Path) -> Page:
    return Page(browser, console.url, tmp_path)


def state(server: Server, **options: Any) -> StateManager:
    return StateManager(StateConfig(backend="grpc", address=server.address, **options))


def grpc(server: Server) -> dict[str, Any]:
    return {"persistence": "grpc", "address": server.address}


# -- Keys -------------------------------------------------------------------------------------


def test_keys_view_shows_documents_and_follows_changes(page: Page, server: Server) -> None:
    async def write() -> None:
        async with state(server) as manager:
            for number in range(3):
                await manager.save(f"view:{number}", {"n": number})
            await manager.save("view:doc", {"status": "running", "step": 3}, ttl=600)

    run(write())
    page.open("keys?pattern=view:*&key=view:doc")
    page.shows("#key-value", '"status": "running"')
    page.shows("#key-ttl", "in ")
    assert page.attrs("#key-list tr[data-key]", "data-key") == [
        "view:0", "view:1", "view:2", "view:doc",
    ]  # fmt: skip
    page.screenshot("keys")

    async def change() -> None:
        async with state(server) as manager:
            await manager.save("view:doc", {"status": "done", "step": 4})
            await manager.save("view:new", {"fresh": True})
            await manager.delete("view:0")

    run(change())
    page.shows("#key-value", '"status": "done"')
    page.until(lambda d: page.all("#key-list tr[data-key='view:new']"), "the new key in the list")
    page.until(lambda d: not page.all("#key-list tr[data-key='view:0']"), "view:0 gone")
    page.until(lambda d: page.all("#key-tail tr[data-type='DELETE'][data-key='view:0']"), "DELETE")
    tail = page.tail()
    assert tail == [("DELETE", "view:0"), ("PUT", "view:new"), ("PUT", "view:doc")]
    assert page.text("#key-ttl") == "never"  # the save without ttl cleared it
    page.screenshot("keys-live")


def test_keys_view_reports_bad_patterns_and_missing_keys(page: Page) -> None:
    page.open("keys?pattern=[oops")
    page.until(lambda d: page.find("#key-list .error[data-code='INVALID_ARGUMENT']"), "the error")
    assert "[" in page.text("#key-list .error")
    page.open("keys?pattern=*&key=never-written")
    page.shows("#key-detail [data-code='NOT_FOUND']", "does not exist")
    page.screenshot("keys-errors")


def test_delete_from_the_page_is_compare_and_set(page: Page, server: Server) -> None:
    run(_save(server, "del:a", {"v": 1}))
    page.open("keys?pattern=del:*&key=del:a")
    page.shows("#key-value", '"v": 1')
    page.click("#key-delete")
    page.click("#confirm-no")  # kept: nothing happens
    assert run(_get(server, "del:a")) == {"v": 1}
    page.click("#key-delete")
    page.until(lambda d: page.find("#confirm").get_attribute("open") is not None, "the dialog")
    run(_save(server, "del:a", {"v": 2}))  # the page is stale now
    page.confirm()
    page.shows("#key-action .error[data-code='ABORTED']", "Conflict")
    assert run(_get(server, "del:a")) == {"v": 2}
    page.screenshot("delete-conflict")
    page.shows("#key-value", '"v": 2')
    page.click("#key-delete")
    page.confirm()
    page.shows("#action-done", "Deleted del:a")
    assert run(_get(server, "del:a")) is None


async def _save(server: Server, key: str, value: Any) -> None:
    async with state(server) as manager:
        await manager.save(key, value)


async def _get(server: Server, key: str) -> Any:
    async with state(server) as manager:
        return await manager.get(key)


# -- Workflows --------------------------------------------------------------------------------


def test_workflow_view_pause_resume_and_stale_conflict(page: Page, server: Server) -> None:
    async def create() -> None:
        workflows = WorkflowStateManager(**grpc(server))
        await workflows.create(WorkflowState(workflow_id="wf-ui", total_steps=5))
        await workflows.update_step("wf-ui", StepState(1, "fetch", "completed", duration_ms=120))
        await workflows.update_step("wf-ui", StepState(2, "parse", "running"))
        await workflows.create(WorkflowState(workflow_id="wf-other", total_steps=2))
        await workflows.close()

    run(create())
    page.open("workflows")
    page.until(lambda d: page.all("#workflow-list tr[data-workflow='wf-ui']"), "the workflow list")
    assert int(page.text("[data-count='RUNNING']")) >= 1
    page.screenshot("workflows")
    page.open("workflows?id=wf-ui")
    page.shows("#workflow-head", "step 2 of 5")
    assert page.attrs("#workflow-steps tr[data-step]", "data-status") == [
        "COMPLETED", "RUNNING",
    ]  # fmt: skip

    async def step() -> None:
        workflows = WorkflowStateManager(**grpc(server))
        await workflows.update_step("wf-ui", StepState(2, "parse", "completed", duration_ms=300))
        await workflows.update_step("wf-ui", StepState(3, "embed", "running"))
        await workflows.close()

    run(step())  # live: appears without reload
    page.shows("#workflow-head", "step 3 of 5")
    page.until(lambda d: len(page.all("#workflow-steps tr[data-step]")) == 4, "four step rows")
    page.screenshot("workflow")

    page.click("#workflow-pause")
    page.confirm()
    page.shows("#action-done", "PAUSED")
    assert run(_status(server, "wf-ui")) == WorkflowStatus.PAUSED
    page.until(lambda d: page.find("#workflow-resume").is_enabled(), "the resume button")

    page.click("#workflow-resume")
    page.until(lambda d: page.find("#confirm").get_attribute("open") is not None, "the dialog")

    async def checkpoint() -> None:  # changes the workflow under the open dialog
        workflows = WorkflowStateManager(**grpc(server))
        await workflows.checkpoint(WorkflowCheckpoint("wf-ui", "manual-1", 3, {"k": 1}, {}))
        await workflows.close()

    run(checkpoint())
    page.confirm()
    page.shows("#workflow-action .error[data-code='ABORTED']", "Conflict")
    assert run(_status(server, "wf-ui")) == WorkflowStatus.PAUSED
    page.until(lambda d: page.all("#workflow-checkpoints tr[data-checkpoint='manual-1']"), "ckpt")
    page.screenshot("workflow-conflict")

    page.click("#workflow-cancel")
    page.confirm(reason="operator stopped it")
    page.shows("#workflow-cancel-reason", "operator stopped it")
    assert run(_status(server, "wf-ui")) == WorkflowStatus.CANCELLED


def test_a_long_workflow_history_is_shown_a_page_at_a_time(page: Page, server: Server) -> None:
    """The view reads the newest 200 steps (ListWorkflowSteps) and adds older ones on demand,
    so a workflow with a long history never has its whole history read at once."""

    async def create() -> None:
        async with WorkflowStateManager(**grpc(server)) as workflows:
            await workflows.create(WorkflowState(workflow_id="wf-long", total_steps=450))
            for number in range(1, 451):
                await workflows.update_step("wf-long", StepState(number, f"s{number}", "completed"))

    run(create())
    page.open("workflows?id=wf-long")
    page.shows("#workflow-head", "step 450 of 450")
    rows = "#workflow-steps tr[data-step]"
    page.until(lambda d: len(page.all(rows)) == 200, "the newest 200 steps")
    numbers = [int(n or 0) for n in page.attrs(rows, "data-step")]
    assert numbers == list(range(251, 451))  # the newest, oldest first like the whole history
    page.click("#workflow-older-steps")
    page.until(lambda d: len(page.all(rows)) == 400, "400 steps after one more page")
    page.click("#workflow-older-steps")
    page.until(lambda d: len(page.all(rows)) == 450, "every step")
    assert [int(n or 0) for n in page.attrs(rows, "data-step")] == list(range(1, 451))
    assert not page.all("#workflow-older-steps")  # nothing older is left


async def _status(server: Server, workflow_id: str) -> WorkflowStatus:
    async with WorkflowStateManager(**grpc(server)) as workflows:
        return await workflows.get_status(workflow_id)


def test_unknown_workflow_reads_not_found(page: Page) -> None:
    page.open("workflows?id=no-such-workflow")
    page.shows("#workflow-head .error[data-code='NOT_FOUND']", "Not found")


# -- Agents, teams, knowledge, tools, speech, server ------------------------------------------


def test_agents_view(page: Page, server: Server) -> None:

    async def write() -> None:
        store = AgentStateStore(**grpc(server))
        await store.save_snapshot(AgentSnapshot("ag-1", memory_state={"notes": ["a"]}))
        await store.save_checkpoint(AgentCheckpoint("ag-1", "c1", step=1, state={"s": 1}))
        await store.close()

    run(write())
    page.open("agents?ids=ag-1")
    page.until(lambda d: page.all("[data-agent='ag-1'] tr[data-checkpoint='c1']"), "checkpoint")
    assert page.all("[data-agent='ag-1'] tr[data-snapshot]")

    async def more() -> None:
        store = AgentStateStore(**grpc(server))
        await store.save_checkpoint(AgentCheckpoint("ag-1", "c2", step=2, state={"s": 2}))
        await store.close()

    run(more())
    page.until(
        lambda d: page.attrs("tr[data-checkpoint]", "data-checkpoint") == ["c2", "c1"],
        "the new checkpoint first",
    )
    page.screenshot("agents")


def test_teams_view(page: Page, server: Server) -> None:

    async def write() -> None:
        teams = OrchestrationStateManager(**grpc(server))
        agents = {
            "w1": AgentCoordinationState("w1", capabilities=["search", "code"]),
            "w2": AgentCoordinationState("w2", capabilities=["search"]),
        }
        await teams.create_team(TeamState("team-ui", agents=agents))
        for number in range(3):
            await teams.enqueue_task("team-ui", {"task_id": f"t{number}", "type": "crawl"})
        await teams.claim_next_task("team-ui", "w1", lease=300)
        await teams.close()

    run(write())
    page.open("teams?id=team-ui")
    page.until(lambda d: page.all("#team-agents tr[data-agent='w2']"), "the agents")
    page.shows("[data-queue='in_progress']", "lease in ")
    assert len(page.all("[data-queue='pending'] [data-task]")) == 2

    async def finish() -> None:
        teams = OrchestrationStateManager(**grpc(server))
        await teams.complete_task("team-ui", "t0", {"ok": True}, agent_id="w1")
        await teams.close()

    run(finish())
    page.until(lambda d: page.all("[data-queue='completed'] [data-task='t0']"), "t0 completed")

    async def dead_letter(task_id: str, priority: int) -> None:  # claimed first, then failed
        teams = OrchestrationStateManager(**grpc(server))
        await teams.enqueue_task("team-ui", {"task_id": task_id, "priority": priority})
        claimed = await teams.claim_next_task("team-ui", "w2", lease=300)
        assert claimed is not None and claimed.id == task_id
        await teams.fail_task("team-ui", task_id, "parser crashed", agent_id="w2", retry_limit=0)
        await teams.close()

    run(dead_letter("bad-1", 900))
    dead = "[data-queue='dead_lettered'] [data-task='bad-1']"
    page.shows(dead, "parser crashed")
    page.screenshot("teams")
    page.click(f"{dead} button[data-requeue]")
    page.confirm()
    page.shows("#action-done", "Requeued bad-1")
    page.until(lambda d: page.all("[data-queue='pending'] [data-task='bad-1']"), "bad-1 pending")
    assert run(_task_state(server, "team-ui", "bad-1")) == opb.TASK_STATE_PENDING

    run(dead_letter("bad-2", 1000))
    page.shows("[data-queue='dead_lettered'] [data-task='bad-2']", "parser crashed")
    page.click("[data-queue='dead_lettered'] [data-task='bad-2'] button")
    page.until(lambda d: page.find("#confirm").get_attribute("open") is not None, "the dialog")
    run(_requeue(server, "team-ui", "bad-2"))  # someone else requeues it first
    page.confirm()
    page.shows("#team-action .error[data-code='FAILED_PRECONDITION']", "not dead-lettered")
    assert len(page.all("[data-queue='pending'] [data-task='bad-2']")) <= 1
    assert run(_task_state(server, "team-ui", "bad-2")) == opb.TASK_STATE_PENDING


async def _task_state(server: Server, team_id: str, task_id: str) -> int:
    async with aio.insecure_channel(server.address) as channel:
        stub = ogrpc.OrchestrationServiceStub(channel)
        response = await stub.GetTask(opb.GetTaskRequest(team_id=team_id, task_id=task_id))
        return int(response.task.state)


async def _requeue(server: Server, team_id: str, task_id: str) -> None:
    async with aio.insecure_channel(server.address) as channel:
        stub = ogrpc.OrchestrationServiceStub(channel)
        await stub.RequeueTask(opb.RequeueTaskRequest(team_id=team_id, task_id=task_id))


def test_knowledge_view(page: Page, server: Server) -> None:

    async def progress(done: int) -> None:
        knowledge = KnowledgeStateManager(**grpc(server))
        await knowledge.update_indexing_progress(
            IndexingProgress("kb-ui", IndexingStatus.IN_PROGRESS, 200, done, 3)
        )
        await knowledge.update_source_state(
            SourceState(
                "docs",
                "kb-ui",
                SyncStatus.SYNCING,
                documents_synced=done,
                documents_pending=200 - done,
            )
        )
        await knowledge.close()

    run(progress(50))
    page.open("knowledge?ids=kb-ui")
    page.shows("[data-kb='kb-ui'] [data-field='indexing']", "50 / 200")
    run(progress(150))
    page.shows("[data-kb='kb-ui'] [data-field='indexing']", "150 / 200")
    page.shows("[data-kb='kb-ui'] tr[data-source='docs']", "150 / 200")
    page.screenshot("knowledge")


def test_tools_view(page: Page, server: Server) -> None:
    start = datetime.now(UTC)

    async def executions() -> None:
        tools = ToolStateManager(**grpc(server))
        for number, fails in enumerate([False, False, True, False]):
            execution = ToolExecution(f"x{number}", "search", started_at=start)
            await tools.start_execution(execution)
            if fails:
                await tools.fail_execution(f"x{number}", "timeout talking to the index")
            else:
                await tools.complete_execution(f"x{number}", {"hits": number})
        await tools.update_retry_state(
            RetryState(
                "x2",
                attempts=1,
                max_attempts=3,
                tool_name="search",
                next_retry_at=start + timedelta(minutes=5),
            )
        )
        await tools.close()

    run(executions())
    page.open("tools")  # the tool is found through its pending retry
    page.shows("[data-tool='search'] [data-field='success_rate']", "75%")
    page.until(lambda d: len(page.all("[data-tool='search'] svg.chart rect")) == 4, "the chart")
    assert page.all("#tool-retries tr[data-retry='x2']")

    async def another() -> None:
        tools = ToolStateManager(**grpc(server))
        await tools.start_execution(ToolExecution("x4", "search", started_at=start))
        await tools.complete_execution("x4", {"hits": 9})
        await tools.close()

    run(another())
    page.shows("[data-tool='search'] [data-field='success_rate']", "80%")
    page.screenshot("tools")


def test_speech_view_shows_the_interim_transcript_as_it_grows(page: Page, server: Server) -> None:

    async def say(text: str) -> None:
        speech = SpeechStateManager(**grpc(server))
        if await speech.get_session("sp-ui") is None:
            await speech.create_session("voice", session_id="sp-ui")
        status = TranscriptionStatus.TRANSCRIBING
        await speech.update_stt_state(STTState("sp-ui", status, interim_transcript=text))
        await speech.close()

    run(say("hello"))
    page.open("speech?ids=sp-ui")
    page.shows("[data-session='sp-ui'] [data-field='interim']", "hello")
    run(say("hello wor"))
    page.shows("[data-session='sp-ui'] [data-field='interim']", "hello wor")

    async def speak() -> None:
        speech = SpeechStateManager(**grpc(server))
        await speech.update_tts_state(
            TTSState("sp-ui", ["Sure.", "Anything else?"], is_speaking=True)
        )
        await speech.close()

    run(speak())
    page.shows("[data-session='sp-ui'] [data-field='tts-queue']", "Anything else?")
    page.screenshot("speech")


def test_server_view(page: Page, server: Server) -> None:
    page.open("server")
    page.shows("[data-field='backend']", "file")
    before = int(page.text("[data-field='revision'] b"))
    run(_save(server, "server:page", {"x": 1}))
    page.until(lambda d: int(page.text("[data-field='revision'] b")) > before, "a newer revision")
    assert page.find("#health").get_attribute("data-status") == "SERVING"
    page.screenshot("server")


# -- a server restart -------------------------------------------------------------------------


def test_a_reconnecting_page_shows_what_changed_while_away_once(page: Page, server: Server) -> None:
    run(_save(server, "rs:1", {"n": 1}))
    page.open("keys?pattern=rs:*")
    page.until(lambda d: page.all("#key-list tr[data-key='rs:1']"), "rs:1 listed")
    run(_save(server, "rs:2", {"n": 2}))
    page.until(lambda d: page.all("#key-tail tr[data-key='rs:2']"), "rs:2 in the tail")

    server.stop()
    page.until(lambda d: "unreachable" in page.text("#banner"), "the server-down banner")
    page.screenshot("server-down")
    # Written while the console is away: straight into the store, with the server stopped.
    script = textwrap.dedent(
        f"""
        import asyncio
        from statekeeper.state import StateConfig, StateManager
        async def main():
            manager = StateManager(StateConfig(backend="file", file_path={str(server.data_dir)!r}))
            await manager.save("rs:3", {{"n": 3}})
            await manager.save("rs:2", {{"n": 22}})
            await manager.delete("rs:1")
            await manager.close()
        asyncio.run(main())
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    server.start_again()
    page.until(lambda d: not page.find("#banner").is_displayed(), "the banner cleared")
    page.until(lambda d: page.all("#key-tail tr[data-key='rs:1'][data-type='DELETE']"), "rs:1 gone")
    run(_save(server, "rs:4", {"n": 4}))
    page.until(lambda d: page.all("#key-tail tr[data-key='rs:4']"), "rs:4 in the tail")
    revisions = [int(str(v)) for v in page.attrs("#key-tail tr", "data-revision")]
    events = page.tail()
    assert events == [
        ("PUT", "rs:4"),
        ("DELETE", "rs:1"),
        ("PUT", "rs:2"),
        ("PUT", "rs:3"),
        ("PUT", "rs:2"),
    ]
    assert revisions == sorted(revisions, reverse=True) and len(set(revisions)) == len(revisions)
    page.screenshot("reconnected")


# -- authentication ---------------------------------------------------------------------------

TOKENS = {
    "admin-token": {"name": "ops", "namespaces": ["default", "tenant-a"], "role": "admin"},
    "tenant-token": {"name": "tenant-a", "namespaces": ["tenant-a"], "role": "write"},
}


def test_a_tenant_console_sees_only_its_namespace(
    browser: WebDriver, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    data = tmp_path_factory.mktemp("auth-data")
    process = start_server_process(
        "--backend", "file", "--data-dir", str(data), "--auth-tokens-file", str(tokens)
    )
    consoles: list[Console] = []
    try:
        address = process.address

        async def write() -> None:
            admin = StateConfig(backend="grpc", address=address, token="admin-token")
            async with StateManager(admin) as manager:
                await manager.save("shared:default-only", {"secret": True})
            tenant = StateConfig(backend="grpc", address=address, token="tenant-token")
            async with StateManager(tenant) as manager:
                await manager.save("shared:tenant", {"mine": True})

        run(write())
        consoles.append(Console("--address", address, "--token", "tenant-token"))
        page = Page(browser, consoles[-1].url, tmp_path)
        page.open("keys?pattern=shared:*")
        page.until(lambda d: page.all("#key-list tr[data-key='shared:tenant']"), "the tenant key")
        assert not page.all("#key-list tr[data-key='shared:default-only']")
        page.shows("#connection", address)
        page.open("server")  # statistics need the admin role
        page.shows("#server-stats .error[data-code='PERMISSION_DENIED']", "Permission denied")
        page.screenshot("tenant")

        consoles.append(Console("--address", address, "--token", "wrong"))
        page = Page(browser, consoles[-1].url, tmp_path)
        page.open("keys")
        page.shows(
            "#key-list .error[data-code='UNAUTHENTICATED']", "refused the console's credentials"
        )
    finally:
        for started in consoles:
            started.stop()
        process.terminate()


# -- TLS ----------------------------------------------------------------------------------------


def spki_pin(cert_file: str) -> str:
    """The base64 SHA-256 of a certificate's public key, as Chromium pins one."""
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def test_the_console_serves_https_for_a_tls_server(
    browser: WebDriver, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    authority = Authority(tmp_path, "console")
    pair = authority.issue("localhost", server=True)  # for localhost and 127.0.0.1
    data = tmp_path_factory.mktemp("tls-data")
    process = start_server_process(
        "--backend", "file", "--data-dir", str(data), "--tls-cert", pair.cert, "--tls-key", pair.key
    )
    tls = {"backend": "grpc", "address": process.address, "tls_ca_file": authority.ca_file}
    console: Console | None = None
    driver: WebDriver | None = None
    try:

        async def save(value: dict[str, Any]) -> None:
            async with StateManager(StateConfig(**tls)) as manager:
                await manager.save("tls:doc", value)

        run(save({"over": "tls"}))
        console = Console(
            "--address", process.address, "--tls-ca", authority.ca_file,
            "--https-cert", pair.cert, "--https-key", pair.key,
        )  # fmt: skip
        assert console.url.startswith("https://127.0.0.1:")
        trusting_the_ca = ssl.create_default_context(cafile=authority.ca_file)
        with urllib.request.urlopen(
            console.url + "api/info", timeout=30, context=trusting_the_ca
        ) as response:
            assert json.loads(response.read())["tls"] is True
        with pytest.raises(urllib.error.URLError):  # the page is HTTPS only: a browser must
            urllib.request.urlopen(console.url + "api/info", timeout=30)  # trust the CA

        browser.get(console.url)  # a browser that does not trust the certificate: no page
        assert browser.title != "statekeeper console"
        # Chromium accepts the console's certificate by its public key, nothing else.
        driver = chromium(f"--ignore-certificate-errors-spki-list={spki_pin(pair.cert)}")
        page = Page(driver, console.url, tmp_path)
        page.open("keys?pattern=tls:*&key=tls:doc")
        page.shows("#key-value", '"over": "tls"')
        assert driver.execute_script("return location.protocol") == "https:"
        run(save({"over": "tls", "live": True}))  # the watch stream, over both TLS hops
        page.shows("#key-value", '"live": true')
        page.open("server")
        page.shows("#connection", f"{process.address} · TLS")
        page.shows("[data-field='backend']", "file")
        page.screenshot("tls")
    finally:
        if driver is not None:
            driver.quit()
        if console is not None:
            console.stop()
        process.terminate()


def test_ui_refuses_https_without_a_key(tmp_path: Path) -> None:
    pair = Authority(tmp_path, "half").issue("localhost", server=True)
    result = subprocess.run(
        [sys.executable, "-m", "statekeeper_server", "ui", "--listen", "127.0.0.1:0",
         "--https-cert", pair.cert],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "needs both a certificate (--https-cert) and its key (--https-key)" in result.stderr


def test_ui_refuses_a_bad_listen_address() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "statekeeper_server", "ui", "--listen", "nowhere"],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )  # fmt: skip
    assert result.returncode == 2
    assert "--listen must be HOST:PORT" in result.stderr


def serve_with_console(*args: str, env: dict[str, str] | None = None) -> tuple[Any, str]:
    """``statekeeper serve --ui-listen 127.0.0.1:0 <args>`` on a free port (the console
    connects to it): the process and the console's URL, once the server listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "statekeeper_server", "serve", "--port", str(port)]
    command += ["--ui-listen", "127.0.0.1:0", *args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    assert process.stdout is not None
    url = None
    for line in process.stdout:
        match = _CONSOLE_URL.search(line)
        url = match.group(1) if match else url
        if "statekeeper listening on" in line:
            break
    assert url is not None, f"serve exited with {process.wait(timeout=60)}"
    return process, url


def test_serve_runs_the_console_beside_a_tls_server(tmp_path: Path) -> None:
    authority = Authority(tmp_path, "beside")
    pair = authority.issue("localhost", server=True)
    tls = ["--tls-cert", pair.cert, "--tls-key", pair.key, "--data-dir", str(tmp_path / "data")]
    refused = subprocess.run(
        [sys.executable, "-m", "statekeeper_server", "serve", "--port", "1", *tls,
         "--ui-listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode != 0 and "needs STATEKEEPER_CLIENT_TLS_CA" in refused.stderr
    process, url = serve_with_console(*tls, env={"STATEKEEPER_CLIENT_TLS_CA": authority.ca_file})
    try:
        assert url.startswith("https://")  # with the server's own certificate
        trusting_the_ca = ssl.create_default_context(cafile=authority.ca_file)
        request = urllib.request.Request(
            url + "api/call/StateService/GetStats", data=b"{}", method="POST"
        )
        with urllib.request.urlopen(request, timeout=30, context=trusting_the_ca) as response:
            assert json.loads(response.read())["backend"] == "file"  # reached over TLS
        with urllib.request.urlopen(url + "api/info", timeout=30, context=trusting_the_ca) as info:
            assert json.loads(info.read())["tls"] is True
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0


def test_serve_runs_the_console_beside_the_server(tmp_path: Path) -> None:
    process, url = serve_with_console("--data-dir", str(tmp_path / "data"))
    try:
        request = urllib.request.Request(
            url + "api/call/StateService/GetStats", data=b"{}", method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            stats = json.loads(response.read())
        assert stats["backend"] == "file"
        with pytest.raises(urllib.error.HTTPError) as refused:  # not on the allow-list
            urllib.request.urlopen(
                urllib.request.Request(url + "api/call/StateService/Save", data=b"{}"), timeout=30
            )
        assert refused.value.code == 400
        assert "does not call StateService.Save" in refused.value.read().decode()
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0
