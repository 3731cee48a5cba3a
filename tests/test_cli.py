"""The ``statekeeper`` command as a first-time user meets it: one-line answers, no tracebacks,
and no gRPC C-core chatter."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from statekeeper.state import StateConfig, StateManager
from statekeeper_server.config import ServerConfig
from statekeeper_server.server import StatekeeperServer

from tests.processes import free_port
from tests.programs import child_process
from tests.servers import start_server_process

CHECKOUT = Path(__file__).resolve().parent.parent


def run_python(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter whose environment has no ``GRPC_*`` variable but
    ``env``; return its stdout."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_grpc_core_logs_errors_only_unless_the_user_asks() -> None:
    show = "import statekeeper_server, os; print(os.environ.get('GRPC_VERBOSITY'))"
    assert run_python(show) == "ERROR"
    assert run_python(show, GRPC_VERBOSITY="debug") == "debug"
    assert run_python(show, GRPC_TRACE="http") == "None"  # tracing needs C-core's own default


# -- user errors get one line, never a traceback ------------------------------------------------


def statekeeper(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the ``statekeeper`` command (as ``python -m statekeeper_server``) to its end."""
    return subprocess.run(
        [sys.executable, "-m", "statekeeper_server", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed command printed on stderr (and no traceback)."""
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_put_of_invalid_json_says_so_in_one_line() -> None:
    line = one_error_line(statekeeper("put", "k", "notjson", "--address", "127.0.0.1:1"))
    assert "'notjson' is not valid JSON" in line and "'\"text\"'" in line


def test_a_command_without_a_server_names_the_address() -> None:
    address = f"127.0.0.1:{free_port()}"
    line = one_error_line(statekeeper("get", "k", "--address", address))
    assert line.startswith(f"error: no statekeeper server answered at {address} (start one")


def test_a_bad_environment_variable_is_named_with_the_form_it_needs() -> None:
    line = one_error_line(statekeeper("serve", STATEKEEPER_PORT="abc"))
    assert line == "error: STATEKEEPER_PORT='abc' is not valid: expected an integer such as 50051"
    line = one_error_line(statekeeper("serve", STATEKEEPER_BACKEND="sql"))
    assert "STATEKEEPER_BACKEND='sql'" in line and "memory, file, redis" in line
    for help_args in (["--help"], ["serve", "--help"], ["get", "--help"]):
        shown = statekeeper(*help_args, STATEKEEPER_PORT="abc")
        assert shown.returncode == 0 and "usage: statekeeper" in shown.stdout, shown.stderr


def test_a_flag_wins_over_a_bad_environment_variable() -> None:
    done = statekeeper(
        "serve", "--port", "0", "--backend", "memory", "--workers", "2", STATEKEEPER_PORT="abc"
    )  # --workers 2 on memory is refused after the configuration parsed
    assert "needs the redis backend" in done.stderr and "STATEKEEPER_PORT" not in done.stderr


def test_a_port_in_use_is_named_with_the_flag_to_change() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = statekeeper("serve", "--port", str(port), "--backend", "memory")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"error: cannot listen on 127.0.0.1:{port}: port {port} is already in use; stop the "
        "process using it or choose another port with --port (0 picks a free one)"
    )


async def test_health_of_an_unknown_service_says_so(address: str) -> None:
    done = await asyncio.to_thread(statekeeper, "health", "--address", address, "--service", "nope")
    line = one_error_line(done)
    assert f"the server at {address} has no service 'nope'" in line
    served = await asyncio.to_thread(
        statekeeper, "health", "--address", address, "--service", "statekeeper.v1.StateService"
    )
    assert served.returncode == 0 and served.stdout.strip() == "SERVING"


async def exit_code_or_stacks(process: asyncio.subprocess.Process, timeout: float) -> int:
    """The exit code of ``process`` once it ends; if it has not ended within ``timeout``
    seconds, fail with the stack of each of its threads (it must run with PYTHONFAULTHANDLER
    set and its stderr piped)."""
    try:
        return await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        assert process.stderr is not None
        process.send_signal(signal.SIGABRT)
        stacks = await asyncio.wait_for(process.stderr.read(), timeout)
        raise AssertionError(
            f"still running {timeout} s later; its threads:\n{stacks.decode()}"
        ) from None


async def test_watch_waits_for_the_server_and_then_prints_changes() -> None:
    port = free_port()
    async with child_process(
        sys.executable,
        "-m",
        "statekeeper_server",
        "watch",
        "--address",
        f"127.0.0.1:{port}",
        "--start-revision",
        "1",  # the write below may come before the watch starts
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT prints every thread's stack
    ) as watch:
        assert watch.stdout is not None and watch.stderr is not None
        server = None
        try:
            waiting = await asyncio.wait_for(watch.stderr.readline(), 60)
            assert waiting.decode() == (
                f"waiting for the statekeeper server at 127.0.0.1:{port} (Ctrl-C to stop)\n"
            )
            server = StatekeeperServer(ServerConfig(backend="memory", port=port))
            await server.start()
            async with StateManager(StateConfig(backend="grpc", address=f"127.0.0.1:{port}")) as m:
                assert await m.save("greeting", {"text": "hello"}) == 1
            connected = await asyncio.wait_for(watch.stderr.readline(), 60)
            assert connected.decode() == f"connected to 127.0.0.1:{port}\n"
            line = await asyncio.wait_for(watch.stdout.readline(), 60)
            change = json.loads(line)
            assert (change["type"], change["key"], change["value"]) == (
                "put",
                "greeting",
                {"text": "hello"},
            )
            watch.send_signal(signal.SIGINT)  # Ctrl-C, with the server still up
            assert await exit_code_or_stacks(watch, 60) == 130
        finally:
            if server is not None:
                await server.stop(0)
        assert b"Traceback" not in await watch.stderr.read()


def test_make_help_lists_every_target_with_one_line() -> None:
    makefile = (CHECKOUT / "Makefile").read_text().replace("\\\n", " ")
    targets = {
        name
        for line in makefile.splitlines()
        if line.startswith(".PHONY:")
        for name in line[7:].split()
    }
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "help"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    listed = [line.split(maxsplit=1) for line in done.stdout.splitlines()]
    assert all(len(entry) == 2 for entry in listed), done.stdout  # a name and its description
    names = [entry[0] for entry in listed]
    assert sorted(names) == sorted(targets), done.stdout


@pytest.mark.parametrize(
    ("flags", "loop"),
    [
        (("--event-loop", "uvloop"), "uvloop"),
        (("--event-loop", "asyncio"), "asyncio"),
        ((), "asyncio"),
    ],
)
async def test_the_server_serves_on_the_event_loop_it_is_told(
    flags: tuple[str, ...], loop: str
) -> None:
    server = await asyncio.to_thread(start_server_process, "--backend", "memory", *flags)
    try:
        assert server.banner.endswith(f"event loop {loop})"), server.banner
        config = StateConfig(backend="grpc", address=server.address)
        async with StateManager(config) as manager:
            await manager.save("loop/a", {"on": loop}, ttl=60)
            assert (await manager.get("loop/a")) == {"on": loop}
    finally:
        assert await asyncio.to_thread(server.terminate) == 0


def test_auto_picks_uvloop_where_it_is_installed() -> None:
    shown = run_python(
        "import asyncio\n"
        "from statekeeper_server.server import loop_name, run_loop\n"
        "async def main():\n"
        "    return loop_name()\n"
        "print(run_loop(main(), 'auto'))\n"
    )
    assert shown == "uvloop"
