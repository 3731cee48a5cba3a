"""``serve --workers N``: N processes serve one port over one Redis, a dead worker is started
again, and SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import grpc
from statekeeper import values
from statekeeper.v1 import state_service_pb2 as pb
from statekeeper.v1 import state_service_pb2_grpc

from tests.servers import ServerProcess

#: Separate client connections (each on a port the kernel hashes to a worker): with 24 of them
#: the chance that one worker gets none is 2 ** -23.
CONNECTIONS = 24


def children(pid: int) -> list[int]:
    """The child processes of ``pid``."""
    with open(f"/proc/{pid}/task/{pid}/children") as file:
        return [int(child) for child in file.read().split()]


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets ``pid`` holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def tcp_sockets(port: int, state: str) -> set[str]:
    """Inodes of the TCP sockets on local ``port`` in ``state`` ("0A" listen, "01" established)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as file:
            for line in file.readlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == state:
                    inodes.add(fields[9])
    return inodes


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` (a process-table fact, which has no event to wait on) until true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def listeners(server: ServerProcess) -> dict[int, int]:
    """Listening sockets on the server's port, per process of the server that has any (the
    supervisor and its workers; not multiprocessing's helper process). A worker counts only
    sockets of its own: between fork and exec a new worker still holds the supervisor's."""
    port = int(server.address.rsplit(":", 1)[1])
    listening = tcp_sockets(port, "0A")
    supervisor = socket_inodes(server.process.pid) & listening
    counts = {server.process.pid: len(supervisor)} if supervisor else {}
    for pid in children(server.process.pid):
        try:
            count = len((socket_inodes(pid) & listening) - supervisor)
        except FileNotFoundError:
            continue
        if count:
            counts[pid] = count
    return counts


def workers(server: ServerProcess) -> list[int]:
    """The worker processes listening beside the supervisor."""
    return [pid for pid in listeners(server) if pid != server.process.pid]


def test_workers_need_a_shared_backend():
    for backend in ("memory", "file"):
        serve = [sys.executable, "-m", "statekeeper_server", "serve", "--port", "0"]
        result = subprocess.run(
            [*serve, "--backend", backend, "--workers", "2", "--data-dir", "/nonexistent/never"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert "needs the redis backend" in result.stderr


async def test_two_workers_serve_one_port_and_see_each_others_writes(spawn_servers, redis_url):
    (server,) = spawn_servers(1, "--backend", "redis", "--redis-url", redis_url, "--workers", "2")
    per_process = listeners(server)
    assert sorted(per_process.values()) == [1, 1], per_process

    channels = [
        grpc.aio.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CONNECTIONS)
    ]
    stubs = [state_service_pb2_grpc.StateServiceStub(channel) for channel in channels]
    watches = [stub.Watch(pb.WatchRequest(pattern="w/*")) for stub in stubs]
    for watch in watches:
        assert (await watch.read()).created

    # Every connection is served by one of the two processes, and both serve some.
    port = int(server.address.rsplit(":", 1)[1])
    connected = tcp_sockets(port, "01")
    serving = {pid for pid in per_process if socket_inodes(pid) & connected}
    assert serving == set(per_process)

    # A write through any connection reaches the watches on every connection.
    for index, stub in enumerate(stubs):
        value = values.document_to_wire({"from": index})
        await stub.Save(pb.SaveRequest(key=f"w/{index}", value=value))
    for watch in watches:
        seen: list[str] = []
        while len(seen) < CONNECTIONS:
            seen += [event.kv.key for event in (await watch.read()).events]
        assert seen == [f"w/{index}" for index in range(CONNECTIONS)]
    for watch in watches:
        watch.cancel()
    await asyncio.gather(*(channel.close() for channel in channels))


def test_a_dead_worker_is_started_again_and_sigterm_stops_all(spawn_servers, redis_url):
    (server,) = spawn_servers(1, "--backend", "redis", "--redis-url", redis_url, "--workers", "2")
    (worker,) = workers(server)
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: workers(server) not in ([], [worker]), "a new worker listening")
    (restarted,) = workers(server)
    assert sorted(listeners(server).values()) == [1, 1]

    assert server.terminate() == 0
    wait_for(lambda: not os.path.exists(f"/proc/{restarted}"), "the worker to exit")
    port = int(server.address.rsplit(":", 1)[1])
    assert tcp_sockets(port, "0A") == set()


def test_workers_stop_when_their_supervisor_is_gone(spawn_servers, redis_url):
    (server,) = spawn_servers(1, "--backend", "redis", "--redis-url", redis_url, "--workers", "3")
    orphans = workers(server)
    assert len(orphans) == 2
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=30)
    for pid in orphans:
        wait_for(lambda pid=pid: not _running(pid), f"worker {pid} to exit")


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
