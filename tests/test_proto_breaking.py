"""`make breaking`: buf's breaking-change check against the committed API baseline image.

The check runs in a copy of the buf module under tmp_path (never in the checkout's proto/), with
the exact command of the Makefile's `breaking` recipe.
"""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "api-baseline" / "statekeeper-v1.image.json"


def _buf() -> Path:
    """The buf binary of the project's virtualenv (the one the Makefile calls as $(BIN)/buf)."""
    for candidate in (Path(sys.executable).parent / "buf", ROOT / ".venv" / "bin" / "buf"):
        if candidate.is_file():
            return candidate
    raise AssertionError("buf is not installed in the virtualenv (run `make install`)")


def _breaking_command() -> list[str]:
    """The Makefile's `breaking` recipe, with its make variables resolved."""
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^breaking:[^\n]*\n\t([^\n]+)\n", makefile, re.MULTILINE)
    assert match, "the Makefile has no one-line `breaking` recipe"
    recipe = match.group(1).replace("$(BIN)/buf", str(_buf()))
    recipe = recipe.replace("$(API_BASELINE)", str(BASELINE))
    assert "$(" not in recipe, recipe
    return shlex.split(recipe)


def _run_breaking(module_root: Path) -> subprocess.CompletedProcess[str]:
    """Run the breaking check with module_root as the workspace (where buf.yaml lives)."""
    return subprocess.run(
        _breaking_command(),
        cwd=module_root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def module_copy(tmp_path: Path) -> Path:
    """A copy of the buf workspace: buf.yaml and the proto/ tree."""
    shutil.copy2(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    return tmp_path


def test_baseline_is_committed_outside_the_module() -> None:
    """The baseline image exists and is not under proto/, so buf never treats it as an input."""
    assert BASELINE.is_file()
    assert (ROOT / "proto") not in BASELINE.parents


def test_unmodified_protos_pass(module_copy: Path) -> None:
    """The current protos are compatible with the baseline."""
    result = _run_breaking(module_copy)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deleting_a_field_fails_naming_it(module_copy: Path) -> None:
    """Removing SaveRequest.ttl is reported as a breaking change that names the field."""
    proto = module_copy / "proto" / "statekeeper" / "v1" / "state_service.proto"
    text = proto.read_text()
    start = text.index("message SaveRequest {")
    end = text.index("\n}\n", start) + 1
    body = text[start:end]
    field = "  google.protobuf.Duration ttl = 4;\n"
    assert body.count(field) == 1
    proto.write_text(text[:start] + body.replace(field, "") + text[end:])

    result = _run_breaking(module_copy)

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert 'name "ttl" on message "SaveRequest" was deleted' in output, output
    assert "UpdateRequest" not in output, output
