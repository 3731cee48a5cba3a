#!/usr/bin/env bash
# `make image`: build the statekeeper image with buildah (vfs storage, chroot isolation) from the
# local base image, installing statekeeper from wheels built here first (no network in the build).
set -euo pipefail
IMAGE="${IMAGE:-statekeeper:latest}"
PY="${PY:-.venv/bin/python}"
bash scripts/make_base_image.sh
rm -rf build/wheels
mkdir -p build/wheels
"$PY" -m pip wheel --quiet --no-deps --wheel-dir build/wheels .
# The dependencies, resolved by the base image's own Python (its version decides environment
# markers such as python_full_version): pip runs inside the base root filesystem with chroot.
rootfs="${BASE_ROOTFS:-build/base-rootfs}"
work="$rootfs/tmp/statekeeper-wheels"
rm -rf "$work" && mkdir -p "$work"
wheel=$(basename build/wheels/statekeeper-*.whl)
cp "build/wheels/$wheel" "$work/"
cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf"
pip_env=(PIP_DISABLE_PIP_VERSION_CHECK=1)
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
  cp "$PIP_CERT" "$work/pip-cert.pem"
  pip_env+=(PIP_CERT=/tmp/statekeeper-wheels/pip-cert.pem)
fi
[ -x "$rootfs/tmp/wheel-venv/bin/pip" ] || chroot "$rootfs" python3 -m venv /tmp/wheel-venv
chroot "$rootfs" env -i PATH=/usr/bin:/bin HOME=/tmp "${pip_env[@]}" \
  /tmp/wheel-venv/bin/pip download --quiet --only-binary=:all: --dest /tmp/statekeeper-wheels \
  "/tmp/statekeeper-wheels/$wheel"
cp "$work"/*.whl build/wheels/
rm -rf "$work"
# HEALTHCHECK is kept only in the docker image format (OCI has no such field).
buildah --storage-driver vfs build --isolation chroot --format docker \
  --layers=false -f Dockerfile -t "$IMAGE" .
buildah --storage-driver vfs images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep statekeeper
