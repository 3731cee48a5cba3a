"""Starting and stopping the processes under test, each on a free port of 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import psutil

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LISTENING = re.compile(r"statekeeper listening on (\S+):(\d+)")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{process.args!r} did not listen on port {port} within {timeout}s")


@dataclass
class Service:
    """A running server process under test."""

    name: str
    process: subprocess.Popen[bytes] | subprocess.Popen[str]
    address: str
    cleanup: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """The process id."""
        return int(self.process.pid)

    def cpu_seconds(self) -> float:
        """User plus system CPU seconds used so far by the process, its threads and its child
        processes (``--workers``; PostgreSQL's backends), those already ended included."""
        process = psutil.Process(self.pid)
        ended = process.cpu_times()
        total = ended.children_user + ended.children_system
        for member in [process, *process.children(recursive=True)]:
            try:
                times = member.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def processes(self) -> int:
        """The server process and its children (``--workers``; with spawn's helper process
        not counted, as it serves nothing)."""
        children = psutil.Process(self.pid).children(recursive=True)
        helpers = [c for c in children if "resource_tracker" in " ".join(c.cmdline())]
        return 1 + len(children) - len(helpers)

    def rss_bytes(self) -> int:
        """Resident memory of the process."""
        return int(psutil.Process(self.pid).memory_info().rss)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; remove temporary directories."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)


@functools.cache
def loadgen() -> str:
    """The Go fan-out load generator (bench/loadgen), built once per run; returns its path."""
    binary = os.path.join(_ROOT, "build", "bench", "fanout-subscribers")
    source = os.path.join(_ROOT, "bench", "loadgen")
    subprocess.run(["go", "build", "-o", binary, "."], cwd=source, check=True)
    return binary


def start_statekeeper(*args: str, module: str = "statekeeper_server", name: str = "") -> Service:
    """``python -m <module> serve --port 0 <args>``; the address is read from its first line."""
    command = [
        sys.executable,
        "-m",
        module,
        "serve",
        "--port",
        "0",
        "--log-level",
        "warning",
        *args,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=None, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        match = _LISTENING.search(line)
        if match:
            return Service(name or module, process, f"{match.group(1)}:{match.group(2)}")
    process.wait(timeout=30)
    raise RuntimeError(f"{command} exited with {process.returncode} before listening")


def start_redis() -> Service:
    """A throw-away redis-server (no persistence) on a free port."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir]
    process = subprocess.Popen(
        [binary, "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_port(port, process)
    return Service("redis-server", process, f"127.0.0.1:{port}", [workdir])


def start_postgres() -> Service | None:
    """A throw-away PostgreSQL server (Debian's, a temporary data directory made by ``initdb``,
    trust authentication on 127.0.0.1 only, default durability) on a free port, or None when
    PostgreSQL is not installed. The address is a connection URL of database ``postgres``. As
    root, initdb and the server run as the ``postgres`` user: PostgreSQL refuses to run as root.
    """
    found = shutil.which("initdb") or max(glob.glob("/usr/lib/postgresql/*/bin/initdb"), default="")
    if not found:
        return None
    bindir = os.path.dirname(os.path.realpath(found))  # postgres and pg_isready lie beside it
    datadir = tempfile.mkdtemp(prefix="bench-postgres-")
    uid = gid = None
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        uid, gid = account.pw_uid, account.pw_gid
        os.chown(datadir, uid, gid)
    initdb = [found, "-D", datadir, "--auth=trust", "--username=postgres", "--encoding=UTF8"]
    subprocess.run(initdb, check=True, stdout=subprocess.DEVNULL, user=uid, group=gid)
    port = free_port()
    settings = {"listen_addresses": "127.0.0.1", "unix_socket_directories": datadir}
    options = [item for name, value in settings.items() for item in ("-c", f"{name}={value}")]
    process = subprocess.Popen(
        [os.path.join(bindir, "postgres"), "-D", datadir, "-p", str(port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        user=uid,
        group=gid,
    )
    service = Service("postgres", process, f"postgresql://postgres@127.0.0.1:{port}/postgres")
    service.cleanup.append(datadir)
    ready = [os.path.join(bindir, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
    deadline = time.monotonic() + 30
    while subprocess.run(ready, check=False).returncode != 0:
        if time.monotonic() > deadline or process.poll() is not None:
            service.stop()
            raise RuntimeError(f"PostgreSQL on port {port} did not accept connections")
        time.sleep(0.1)
    return service


def start_etcd() -> Service | None:
    """A single-member etcd with a temporary data dir, or None when etcd is not installed."""
    binary = shutil.which("etcd")
    if binary is None:
        return None
    client, peer = free_port(), free_port()
    datadir = tempfile.mkdtemp(prefix="bench-etcd-")
    process = subprocess.Popen(
        [
            binary,
            "--name",
            "bench",
            "--data-dir",
            datadir,
            "--listen-client-urls",
            f"http://127.0.0.1:{client}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{client}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"bench=http://127.0.0.1:{peer}",
            "--log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "ETCD_UNSUPPORTED_ARCH": os.environ.get("ETCD_UNSUPPORTED_ARCH", "")},
    )
    _wait_for_port(client, process)
    return Service("etcd", process, f"127.0.0.1:{client}", [datadir])


def stop_all(services: list[Service]) -> None:
    """Stop every service, ignoring the ones already gone."""
    for service in services:
        with contextlib.suppress(Exception):
            service.stop()
