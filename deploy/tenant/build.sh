#!/usr/bin/env bash
# Builds the tenant runtime image locally, idempotently, with no image registry:
#   1. base: `debootstrap --variant=minbase` Debian bookworm + tmux, git, python3, curl, ca-certificates, procps,
#      trimmed by rootfs-trim.sh, `docker import`ed as agentsquads/tenant-base:<key>. The key hashes the
#      package list and the trim script; the root tarball is cached in $AGENTSTACK_CACHE_DIR
#      (/var/cache/agentstack), so a machine builds it once (~1.5 min) and re-imports it in seconds.
#   2. image: deploy/tenant/Dockerfile FROM that base + the host's Node 20 (stripped) + the runtime bundle
#      + data/hands, tagged agentsquads/tenant:<content hash> and $TENANT_IMAGE (agentsquads/tenant:dev).
#      Unchanged content → nothing is rebuilt.
# Needs root, docker, debootstrap (first base build only) and network access to a Debian mirror.
# Prints the content-hash tag on stdout (and sizes on stderr; with --size also `docker save | gzip`).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${AGENTSTACK_CACHE_DIR:-/var/cache/agentstack}"
suite="${TENANT_DEBIAN_SUITE:-bookworm}"
mirror="${TENANT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="tmux,git,python3,curl,ca-certificates,procps"
image="${TENANT_IMAGE:-agentsquads/tenant:dev}"
node_bin="${TENANT_NODE:-$(command -v node)}"

log() { echo "tenant-image: $*" >&2; }

# One build at a time per machine (tests and benches may call this concurrently).
mkdir -p "$cache"
exec 9>"$cache/tenant-image.lock"
flock 9

base_key="$( { echo "$suite $packages"; cat "$here/rootfs-trim.sh"; } | sha256sum | cut -c1-16)"
base="agentsquads/tenant-base:$base_key"

if ! docker image inspect "$base" >/dev/null 2>&1; then
  tarball="$cache/tenant-base-$base_key.tar.gz"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install debootstrap"; exit 1; }
    mkdir -p "$cache/debs"
    work="$(mktemp -d /tmp/tenant-rootfs.XXXXXX)"
    trap 'rm -rf "$work"' EXIT
    log "debootstrap $suite ($packages) into $work"
    debootstrap --variant=minbase --include="$packages" --cache-dir="$cache/debs" "$suite" "$work/root" "$mirror" \
      >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    "$here/rootfs-trim.sh" "$work/root"
    tar --numeric-owner -C "$work/root" -c . | gzip -1 >"$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
    rm -rf "$work"
    trap - EXIT
  fi
  log "importing $tarball as $base"
  docker import --message "agentsquads tenant base ($suite, $packages)" "$tarball" "$base" >/dev/null
fi

# The runtime bundle (esbuild, ~1 s) and the build context.
(cd "$repo" && pnpm --silent --filter @agentsquads/runtime build >/dev/null)
node_major="$("$node_bin" -p 'process.versions.node.split(".")[0]')"
[ "$node_major" = 20 ] || [ "$node_major" = 22 ] || { log "$node_bin is Node $node_major; need 20 or 22"; exit 1; }
ctx="$(mktemp -d /tmp/tenant-context.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$here/tenant-runtime" "$ctx/"
if command -v strip >/dev/null; then strip -o "$ctx/node" "$node_bin"; else cp "$node_bin" "$ctx/node"; fi
cp "$repo/platform/runtime/dist/agentsquads-runtime.mjs" "$ctx/"
cp -r "$repo/data/hands" "$ctx/hands"
content_key="$( { echo "$base"; cd "$ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16)"
tagged="agentsquads/tenant:$content_key"

if ! docker image inspect "$tagged" >/dev/null 2>&1; then
  log "building $tagged"
  docker build --quiet --build-arg "BASE=$base" --label "org.agentsquads.content=$content_key" -t "$tagged" "$ctx" \
    >"$ctx/build.log" 2>&1 || { cat "$ctx/build.log" >&2; exit 1; }
fi
docker tag "$tagged" "$image"
size="$(docker image inspect -f '{{.Size}}' "$image")"
log "$image = $tagged, $((size / 1000000)) MB uncompressed"
if [ "${1:-}" = "--size" ]; then
  gz="$(docker save "$image" | gzip -6 | wc -c)"
  log "$image: $((gz / 1000000)) MB compressed (docker save | gzip)"
fi
# Keep the three newest content-tagged builds of this script; older ones go unless a container uses them.
docker image ls --filter label=org.agentsquads.content --format '{{.CreatedAt}}\t{{.Repository}}:{{.Tag}}' |
  { grep -P '\tagentsquads/tenant:[0-9a-f]{16}$' || true; } | sort -r | tail -n +4 | cut -f2 |
  while read -r old; do [ "$old" = "$tagged" ] || docker rmi "$old" >/dev/null 2>&1 || true; done
# Older bases go once no kept build uses them (docker refuses while one does).
# (`|| true`: grep finding nothing must not fail the build under pipefail.)
docker image ls agentsquads/tenant-base --format '{{.Repository}}:{{.Tag}}' | { grep -v -x "$base" || true; } |
  while read -r old; do docker rmi "$old" >/dev/null 2>&1 || true; done
# The immutable tag: callers (tests, benches, the platform) use it, so a concurrent build elsewhere that
# moves $image does not change what they run.
echo "$tagged"
