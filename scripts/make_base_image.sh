#!/usr/bin/env bash
# Build the local base image `statekeeper-base:bookworm` (this machine cannot pull images):
# debootstrap a minimal Debian bookworm with python3 and python3-venv into a directory, then
# import that directory as an image with buildah. Runs as root; installs buildah and debootstrap
# when they are missing. Skips the work when the image already exists (FORCE=1 rebuilds).
set -euo pipefail
IMAGE="${BASE_IMAGE:-statekeeper-base:bookworm}"
ROOTFS="${BASE_ROOTFS:-build/base-rootfs}"
BUILDAH=(buildah --storage-driver vfs)

need=()
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ "${FORCE:-0}" != 1 ] && "${BUILDAH[@]}" inspect --type image "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE exists (FORCE=1 rebuilds it)"
  exit 0
fi

# The Debian mirror this machine's apt already uses (override with DEBIAN_MIRROR).
mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror=$(grep -rhoE '^(URIs:|deb) +[a-z]+://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d \
    2>/dev/null | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
fi
if [ -z "$mirror" ]; then
  echo "no Debian mirror found in the apt sources; set DEBIAN_MIRROR" >&2
  exit 1
fi

rm -rf "$ROOTFS"
mkdir -p "$ROOTFS"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$ROOTFS" "$mirror"
# Keep the image small: no package lists, caches or docs.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb \
  "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/*

tarball="$(dirname "$ROOTFS")/base-rootfs.tar"
tar -C "$ROOTFS" --numeric-owner -cf "$tarball" .
container=$("${BUILDAH[@]}" from scratch)
trap '"${BUILDAH[@]}" rm "$container" >/dev/null 2>&1 || true' EXIT
"${BUILDAH[@]}" add "$container" "$tarball" /
"${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --cmd /bin/bash "$container"
"${BUILDAH[@]}" commit --rm "$container" "$IMAGE" >/dev/null
trap - EXIT
rm -f "$tarball"
echo "base image $IMAGE built from $ROOTFS"
