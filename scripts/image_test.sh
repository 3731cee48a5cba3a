#!/usr/bin/env bash
# `make image-test`: run the built image's server with `buildah run` (vfs, chroot isolation) as
# the image's non-root user, then call it from the host: health, a write and a read over gRPC,
# and the metrics endpoint.
set -euo pipefail
IMAGE="${IMAGE:-statekeeper:latest}"
PY="${PY:-.venv/bin/python}"
BUILDAH=(buildah --storage-driver vfs)
port="${IMAGE_TEST_PORT:-50071}"
metrics="${IMAGE_TEST_METRICS_PORT:-9171}"
container=$("${BUILDAH[@]}" from "$IMAGE")
log=$(mktemp)
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  "${BUILDAH[@]}" rm "$container" >/dev/null 2>&1 || true
  rm -f "$log"
}
trap cleanup EXIT
user=$("${BUILDAH[@]}" inspect --format '{{.OCIv1.Config.User}}' "$container")
echo "image user: $user"
[ "$user" != "" ] && [ "$user" != "0" ] && [ "$user" != "root" ]
"${BUILDAH[@]}" run --isolation chroot --user "$user" \
  --env STATEKEEPER_PORT="$port" --env STATEKEEPER_METRICS_PORT="$metrics" \
  --env STATEKEEPER_HOST=127.0.0.1 "$container" -- \
  /opt/statekeeper/bin/statekeeper serve >"$log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
  grep -q "statekeeper listening" "$log" && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
grep "statekeeper" "$log" | head -n 3
# The image's own HEALTHCHECK command, run inside the container.
"${BUILDAH[@]}" run --isolation chroot --user "$user" --env STATEKEEPER_ADDRESS="127.0.0.1:$port" \
  "$container" -- /opt/statekeeper/bin/statekeeper health
"$PY" -m statekeeper_server put --address "127.0.0.1:$port" image-test '{"ok": true}'
"$PY" -m statekeeper_server get --address "127.0.0.1:$port" image-test > build/image-test-get.json && grep -q '"ok": true' build/image-test-get.json
"$PY" - "$metrics" <<'PYEOF'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode()
assert "statekeeper_requests_total" in text and "statekeeper_store_keys" in text, text[:500]
print("metrics endpoint OK")
PYEOF
echo "image-test passed"
