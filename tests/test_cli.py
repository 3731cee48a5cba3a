"""The ``statekeeper`` command as a first-time user meets it: one-line answers, no tracebacks,
and no gRPC C-core chatter."""

from __future__ import annotations

import os
import subprocess
import sys


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
