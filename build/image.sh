#!/usr/bin/env bash
# Builds tapmon's container image without a container engine: a static (musl) binary in an
# otherwise empty image, user 65532:65532, entrypoint the binary, OCI labels. crane (pinned in
# e2e/tools) assembles it through a registry on loopback and writes it as an OCI image layout
# archive. The archive's path is the last line printed.
#
#   build/image.sh [OUT_DIR]     default: target/image
#
# Another platform (the release workflow's arm64): TAPMON_IMAGE_TARGET=aarch64-unknown-linux-musl
# TAPMON_IMAGE_PLATFORM=linux/arm64 TAPMON_IMAGE_CARGO="cargo zigbuild" build/image.sh OUT_DIR
#
# Reproducible: file times are the last commit's, owners are 0, and the layer is sorted, so the
# same commit gives the same digest.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/target/image}
target=${TAPMON_IMAGE_TARGET:-x86_64-unknown-linux-musl}
platform=${TAPMON_IMAGE_PLATFORM:-linux/amd64}
read -r -a cargo_build <<<"${TAPMON_IMAGE_CARGO:-cargo build}"
log() { printf 'image.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -1)
[[ -n $version ]] || die "no version in Cargo.toml"
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $revision != unknown ]] && ! git -C "$root" diff --quiet HEAD -- 2>/dev/null; then
	revision+=-dirty
fi
epoch=$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

start=$SECONDS
log "building tapmon $version ($revision) for $target"
(cd "$root" && TAPMON_REVISION=$revision "${cargo_build[@]}" --release --locked --target "$target" -p tapmon --bin tapmon >&2)
bin=$root/target/$target/release/tapmon
# The image has no loader and no libc: a dynamic binary would not start.
if readelf -l "$bin" | grep -q 'INTERP'; then
	die "$bin is dynamically linked"
fi
log "binary built in $((SECONDS - start))s"

tools=$("$root/e2e/cluster.sh" build-tools)
crane=$tools/crane

work=$(mktemp -d)
registry_pid=
cleanup() {
	if [[ -n $registry_pid ]]; then
		kill "$registry_pid" 2>/dev/null || true
		wait "$registry_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# The root filesystem: the binary, and passwd/group entries so that tools inside and outside the
# container can name user 65532.
mkdir -p "$work/rootfs/etc"
install -m 0755 "$bin" "$work/rootfs/tapmon"
# Symbols only help a debugger, which the image has no room for.
"${STRIP:-strip}" --strip-all "$work/rootfs/tapmon"
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' >"$work/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$work/rootfs/etc/group"
chmod 0644 "$work/rootfs/etc/passwd" "$work/rootfs/etc/group"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
	-C "$work/rootfs" -cf "$work/layer.tar" tapmon etc

# A registry on loopback, in memory, for crane's remote-only steps; stopped by PID.
"$crane" registry serve --address 127.0.0.1:0 2>"$work/registry.log" &
registry_pid=$!
port=
for _ in $(seq 100); do
	port=$(sed -n 's/.*serving on port \([0-9]*\).*/\1/p' "$work/registry.log")
	[[ -n $port ]] && break
	sleep 0.1
done
[[ -n $port ]] || die "crane registry did not start: $(cat "$work/registry.log")"
ref=127.0.0.1:$port/tapmon:$version

export SOURCE_DATE_EPOCH=$epoch
"$crane" append --oci-empty-base -f "$work/layer.tar" -t "$ref" >/dev/null
"$crane" mutate "$ref" -t "$ref" \
	--set-platform "$platform" \
	--entrypoint /tapmon \
	--user 65532:65532 \
	--workdir / \
	-l org.opencontainers.image.title=tapmon \
	-l org.opencontainers.image.description="Prometheus metrics for Tanzu Application Platform" \
	-l org.opencontainers.image.source=https://github.com/tapmon/tapmon \
	-l org.opencontainers.image.version="$version" \
	-l org.opencontainers.image.revision="$revision" \
	-l org.opencontainers.image.licenses=Apache-2.0 \
	-l org.opencontainers.image.created="$created" >/dev/null
"$crane" validate --remote "$ref" >&2
digest=$("$crane" digest "$ref")

mkdir -p "$out"
rm -rf "$work/layout"
"$crane" pull --format=oci "$ref" "$work/layout"
archive=$out/tapmon-$version.oci.tar
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
	-C "$work/layout" -cf "$archive.tmp" .
mv "$archive.tmp" "$archive"

log "ghcr.io/tapmon/tapmon:$version would be $digest"
log "binary $(stat -c %s "$work/rootfs/tapmon") bytes stripped; image (compressed, as pushed) $(stat -c %s "$archive") bytes; $((SECONDS - start))s in all"
printf '%s\n' "$archive"
