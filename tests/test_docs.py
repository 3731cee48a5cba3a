"""The README's tables stay complete: every server setting and every error reason is listed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from statekeeper.errors import Reason
from statekeeper_server.config import ServerConfig

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_server_setting_is_in_the_configuration_table() -> None:
    for item in dataclasses.fields(ServerConfig):
        flag = "--" + item.name.replace("_", "-")
        env = "STATEKEEPER_" + item.name.upper()
        assert f"| `{flag}` | `{env}` |" in README, f"{flag} is missing from the README table"


def test_every_error_reason_is_in_the_error_table() -> None:
    for reason in Reason:
        assert f"| `{reason.value}` |" in README, f"{reason.value} is missing from the README"
