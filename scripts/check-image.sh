#!/usr/bin/env bash
# Checks an image archive built by scripts/build-image.sh the way a cluster would use it:
#
#   scripts/check-image.sh ARCHIVE
#
# - the archive is read by skopeo (another implementation than the umoci that wrote it),
#   both as an OCI archive (containerd's view) and as a Docker archive (docker load's);
# - its configuration: entrypoint, command, non-root user, working directory, environment,
#   labels, and the reference containerd will name it by;
# - its files: the binary, CA certificates, the user in /etc/passwd, no shell;
# - the binary, run from the unpacked root filesystem alone (chroot, as the image's user),
#   answers --version with the labelled version, and `serve` starts without a cluster,
#   answers /health and serves the dashboard, and stops on SIGTERM.
#
# Needs root (umoci unpack keeps ownership; chroot); sudo is used when not root.
set -euo pipefail

log() { printf '[check-image] %s\n' "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }
# A prefix rather than a function, so that a command started in the background is that
# command's own process (a signal reaches it, not a subshell).
if [ "$(id -u)" -eq 0 ]; then root=(); else root=(sudo); fi
as_root() { "${root[@]}" "$@"; }

[ $# -eq 1 ] || { log "usage: $0 ARCHIVE"; exit 2; }
archive=$(readlink -f "$1")
[ -f "$archive" ] || fail "$1 does not exist"
for tool in skopeo umoci jq curl chroot; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is needed"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/storefactory-check-image.XXXXXX")
server_pid=""
cleanup() {
  [ -z "$server_pid" ] || as_root kill "$server_pid" 2>/dev/null || true
  as_root rm -rf "$work"
}
trap cleanup EXIT

# --- configuration ---------------------------------------------------------------------
config=$(skopeo inspect --config "oci-archive:$archive")
expect() { # expect DESCRIPTION JQ-FILTER: the filter must be true of the configuration
  jq -e "$2" >/dev/null <<<"$config" || fail "$1; the configuration is: $(jq -c .config <<<"$config")"
}
expect "entrypoint is the storefactory binary" '.config.Entrypoint == ["/usr/local/bin/storefactory"]'
expect "the default command is serve" '.config.Cmd == ["serve"]'
expect "runs as the non-root user 10001" '.config.User == "10001:10001"'
expect "works in /data, the database volume" '.config.WorkingDir == "/data" and (.config.Volumes | has("/data"))'
expect "listens on all interfaces, port 8080" '(.config.Env | index("STOREFACTORY_LISTEN=0.0.0.0:8080")) and (.config.ExposedPorts | has("8080/tcp"))'
expect "keeps the database in /data" '.config.Env | index("STOREFACTORY_DB=/data/storefactory.db")'
expect "holds glibc to two allocator arenas" '.config.Env | index("MALLOC_ARENA_MAX=2")'
for label in title version revision source licenses; do
  expect "has the label org.opencontainers.image.$label" \
    ".config.Labels[\"org.opencontainers.image.$label\"] | type == \"string\" and length > 0"
done
expect "is linux/amd64" '.os == "linux" and .architecture == "amd64"'
version=$(jq -r '.config.Labels["org.opencontainers.image.version"]' <<<"$config")

mkdir "$work/layout"
tar -xf "$archive" -C "$work/layout"
[ "$(jq -r .imageLayoutVersion "$work/layout/oci-layout")" = 1.0.0 ] || fail "not an OCI layout"
name=$(jq -r '.manifests[0].annotations["io.containerd.image.name"] // empty' "$work/layout/index.json")
tag=$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"] // empty' "$work/layout/index.json")
[[ "$name" == */*:"$tag" && "$tag" == "${version//+/_}" ]] \
  || fail "the index names the image '$name' (tag '$tag'), not a full reference tagged $version"
# The Docker view of the same archive (docker load): same configuration, named alike.
docker_config=$(skopeo inspect --config "docker-archive:$archive")
[ "$(jq -cS . <<<"$docker_config")" = "$(jq -cS . <<<"$config")" ] \
  || fail "the archive's Docker manifest.json describes another image than its OCI index"
docker_tag=$(jq -r '.[0].RepoTags[0]' "$work/layout/manifest.json")
[ "$docker_tag" = "${name#docker.io/}" ] || fail "manifest.json names the image $docker_tag, not $name"
log "configuration: ok ($name, also as a Docker archive)"

# --- the Dockerfile describes the same image ---------------------------------------------
dockerfile="$(dirname "$0")/../Dockerfile"
if [ -f "$dockerfile" ]; then
  # Instructions of the final stage, continuation lines joined.
  final=$(sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$dockerfile" | awk '/^FROM /{ stage = "" } { stage = stage $0 "\n" } END { printf "%s", stage }')
  instruction() { printf '%b' "$final" | sed -n "s/^$1 //p"; }
  same() { [ "$2" = "$3" ] || fail "the Dockerfile's $1 is '$2', the archive's '$3'"; }
  same ENTRYPOINT "$(instruction ENTRYPOINT | jq -c .)" "$(jq -c .config.Entrypoint <<<"$config")"
  same CMD "$(instruction CMD | jq -c .)" "$(jq -c .config.Cmd <<<"$config")"
  same USER "$(instruction USER)" "$(jq -r .config.User <<<"$config")"
  same WORKDIR "$(instruction WORKDIR)" "$(jq -r .config.WorkingDir <<<"$config")"
  same ENV "$(instruction ENV | tr -s ' ' '\n' | sort | tr '\n' ' ')" "$(jq -r '.config.Env[]' <<<"$config" | sort | tr '\n' ' ')"
  same "version label" "$(instruction LABEL | grep -o 'org.opencontainers.image.version="[^"]*"' | cut -d'"' -f2)" "$version"
  log "Dockerfile: describes the same configuration"
fi

# --- files -----------------------------------------------------------------------------
as_root umoci unpack --image "$work/layout:$tag" "$work/bundle" >/dev/null
rootfs="$work/bundle/rootfs"
[ -x "$rootfs/usr/local/bin/storefactory" ] || fail "no /usr/local/bin/storefactory"
[ -s "$rootfs/etc/ssl/certs/ca-certificates.crt" ] || fail "no CA certificates"
grep -q '^storefactory:x:10001:10001:' "$rootfs/etc/passwd" || fail "/etc/passwd has no user 10001"
[ ! -e "$rootfs/bin/sh" ] && [ ! -e "$rootfs/usr/bin/sh" ] || fail "the image has a shell; it should hold the binary and its libraries only"
[ "$(as_root stat -c %u:%g "$rootfs/data")" = 10001:10001 ] || fail "/data is not owned by the image's user"
size=$(as_root du -sm "$rootfs" | cut -f1)
log "files: ok (root filesystem ${size} MiB, archive $(du -h "$archive" | cut -f1))"

# --- the binary, from the root filesystem alone ------------------------------------------
chroot=$(command -v chroot)
# The image's binary as the image's user, with nothing from this machine: no environment,
# no files outside the root filesystem.
in_image=("${root[@]}" env -i SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt HOME=/data)
answer=$("${in_image[@]}" "$chroot" --userspec=10001:10001 "$rootfs" /usr/local/bin/storefactory --version)
[ "$answer" = "storefactory $version" ] || fail "--version says '$answer', not 'storefactory $version'"
log "--version: $answer"

# serve: no cluster reachable here (no kubeconfig in the image), which it must survive.
# The admin password is set so that the generated one is not logged.
server_log="$work/serve.log"
"${in_image[@]}" STOREFACTORY_LISTEN=127.0.0.1:0 STOREFACTORY_DB=/data/storefactory.db \
  STOREFACTORY_ADMIN_PASSWORD=check-image-only-password RUST_LOG=info \
  "$chroot" --userspec=10001:10001 "$rootfs" /usr/local/bin/storefactory serve >"$server_log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 1 100); do
  addr=$(sed -n 's/.*serving the Storefactory API.*addr=\([0-9.:]*\).*/\1/p' "$server_log" | head -n1)
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$addr" ] || fail "serve did not start: $(tail -n 20 "$server_log")"
health=$(curl -A check-image -fsS "http://$addr/health") || fail "/health did not answer"
jq -e . >/dev/null <<<"$health" || fail "/health answered '$health'"
curl -A check-image -fsS "http://$addr/" | grep -qi '<!doctype html' || fail "/ does not serve the dashboard"
as_root kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=""
[ "$status" -eq 0 ] || fail "serve exited with $status on SIGTERM: $(tail -n 20 "$server_log")"
log "serve: ok (started without a cluster, /health and the dashboard answered, stopped on SIGTERM)"
log "all checks passed for $archive"
