#!/usr/bin/env bash
# Regenerate the Python stubs of every proto file with the pinned grpcio-tools (see pyproject).
set -euo pipefail
cd "$(dirname "$0")/.."
out=clients/python
rm -f "$out"/statekeeper/v1/*_pb2*.py "$out"/statekeeper/v1/*_pb2*.pyi
python -m grpc_tools.protoc -I proto \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  proto/statekeeper/v1/*.proto
touch "$out"/statekeeper/v1/__init__.py
