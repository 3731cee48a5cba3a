"""Starting real ``statekeeper serve`` processes for tests (multi-process and crash tests)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass

_LISTENING = re.compile(r"statekeeper listening on (\S+):(\d+)")


@dataclass
class ServerProcess:
    """A running server subprocess and the address it listens on."""

    process: subprocess.Popen[str]
    address: str
    #: The line the server printed once it was bound ("statekeeper listening on ...").
    banner: str = ""

    def kill(self) -> None:
        """SIGKILL the server (no shutdown work at all) and reap it."""
        self.process.kill()
        self.process.wait(timeout=30)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM the server (graceful shutdown) and return its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def start_server_process(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
    """Start ``python -m statekeeper_server serve --port 0 <args>`` and wait until it listens.

    The address is read from the line the server prints once it is bound, so there is no
    polling and no port race.
    """
    command = [sys.executable, "-m", "statekeeper_server", "serve", "--port", "0", *args]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    for line in process.stdout:
        match = _LISTENING.search(line)
        if match:
            return ServerProcess(process, f"{match.group(1)}:{match.group(2)}", line.strip())
    process.wait(timeout=30)
    raise RuntimeError(f"server exited with {process.returncode} before listening: {command}")
