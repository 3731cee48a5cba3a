"""Python stubs of the bench-only protos (echo service, etcd KV subset), generated on demand.

They are generated into ``bench/_gen`` (ignored by git) with grpc_tools, so nothing generated
is committed and the product's ``make proto`` never sees these files.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

_HERE = Path(__file__).resolve().parent
_PROTO = _HERE / "proto"
_OUT = _HERE / "_gen"
_FILES = ("bench_echo.proto", "etcd_kv.proto")


def _generate() -> None:
    from grpc_tools import protoc

    _OUT.mkdir(exist_ok=True)
    for name in _FILES:
        source = _PROTO / name
        target = _OUT / (source.stem + "_pb2.py")
        if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
            continue
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{_PROTO}",
                f"--python_out={_OUT}",
                f"--grpc_python_out={_OUT}",
                str(source),
            ]
        )
        if code != 0:
            raise RuntimeError(f"protoc failed on {source}")


def load(stem: str) -> tuple[ModuleType, ModuleType]:
    """The ``(<stem>_pb2, <stem>_pb2_grpc)`` modules, generating them when missing."""
    _generate()
    if str(_OUT) not in sys.path:
        sys.path.insert(0, str(_OUT))
    return importlib.import_module(stem + "_pb2"), importlib.import_module(stem + "_pb2_grpc")
