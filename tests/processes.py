"""A real ``redis-server`` on a free port for tests (statekeeper servers: tests/servers.py).

Fixtures in ``conftest.py`` wrap these (``redis_server``, ``redis_url``, ``redis_process``,
``spawn_servers``, ``redis_instances``); a test that stops and restarts Redis uses::

    redis = start_redis(persistent=True)      # survives a restart with its data
    redis.stop(); redis.start()               # same port, same data
    redis.cleanup()
"""

from __future__ import annotations

import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time

#: The redis-server binary the tests start.
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
#: Seconds a process gets to report that it is ready.
START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_line(process: subprocess.Popen[str], marker: str, what: str) -> str:
    """Read ``process``'s stdout on a thread (which keeps draining it afterwards, so the
    process never blocks on a full pipe) until a line contains ``marker``."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        for line in stdout:
            lines.put(line)
        lines.put(None)
        stdout.close()

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            break
        seen.append(line)
        if marker in line:
            return line
    process.kill()
    process.wait()
    raise RuntimeError(f"{what} did not start; output:\n{''.join(seen)}")


class RedisProcess:
    """A ``redis-server`` on a fixed port that can be stopped and started again.

    ``persistent=True`` keeps an append-only file (fsync on every write) in a temporary
    directory, so a restart on the same port comes back with every acknowledged write.
    """

    def __init__(self, port: int | None = None, persistent: bool = False) -> None:
        self.port = port or free_port()
        self.persistent = persistent
        self.dir = tempfile.mkdtemp(prefix="statekeeper-redis-")
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        """Start the server and wait until it accepts connections."""
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--dir", self.dir, "--loglevel", "notice"]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        _wait_for_line(self.process, "Ready to accept connections", "redis-server")
        return self

    def stop(self) -> None:
        """Terminate the server (SIGTERM) and wait for it to exit."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_redis(port: int | None = None, persistent: bool = False) -> RedisProcess:
    """A started :class:`RedisProcess` (call ``cleanup()`` when done)."""
    return RedisProcess(port, persistent).start()
