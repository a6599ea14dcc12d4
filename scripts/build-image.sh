#!/usr/bin/env bash
# Builds the storefactory image WITHOUT Docker, as an OCI archive that
#   kind load image-archive FILE
#   minikube image load FILE
#   sudo k3s ctr images import FILE
# accept (containerd reads its OCI index; `docker load` and podman its Docker manifest). Same image as the Dockerfile: the root filesystem comes from
# scripts/image-rootfs.sh (why self-contained rather than static is said there), and the
# configuration below matches the Dockerfile's.
#
#   scripts/build-image.sh [--binary PATH] [--output FILE] [--image REPOSITORY]
#
#   --binary PATH        use this built binary instead of `cargo build --release`
#   --output FILE        the archive (default target/image/storefactory-VERSION.oci.tar)
#   --image REPOSITORY   image name without tag (default ghcr.io/storefactory/storefactory);
#                        the tag is the binary's version
#
# Needs umoci and jq (installed from Debian when missing) and root, for the ownership of
# the image's files (sudo is used when not root). Prints the archive's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[build-image] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

binary=""
output=""
repository=ghcr.io/storefactory/storefactory
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; binary=$2; shift 2 ;;
    --output) [ $# -ge 2 ] || die "--output needs a file"; output=$2; shift 2 ;;
    --image) [ $# -ge 2 ] || die "--image needs a repository"; repository=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
# A repository name as OCI references spell it: lowercase components, no tag or digest.
[[ "$repository" =~ ^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$ ]] \
  || die "--image: $repository is not a repository name like registry.example/team/storefactory"

missing=()
command -v umoci >/dev/null 2>&1 || missing+=(umoci)
command -v jq >/dev/null 2>&1 || missing+=(jq)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [ -z "$binary" ]; then
  log "building the release binary"
  cargo build --release --locked -p storefactory-cli --bin storefactory >&2
  binary=target/release/storefactory
fi
[ -x "$binary" ] || die "$binary is not an executable"
# `storefactory 0.1.0` -> 0.1.0: the tag, and the version label.
version=$("$binary" --version | awk '{ print $2 }')
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] \
  || die "$binary --version does not print a version: $version"
tag=${version//+/_}
image="$repository:$tag"
output=${output:-target/image/storefactory-$tag.oci.tar}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's time, not now, so that two builds of one commit differ only if their
# binaries do.
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

work=$(mktemp -d "${TMPDIR:-/tmp}/storefactory-image.XXXXXX")
cleanup() { as_root rm -rf "$work"; }
trap cleanup EXIT
chmod 0755 "$work"

log "assembling the root filesystem from $binary"
as_root bash scripts/image-rootfs.sh "$binary" "$work/rootfs" >&2

layout="$work/layout"
umoci_() { as_root umoci "$@" >&2; }
umoci_ init --layout "$layout"
umoci_ new --image "$layout:$tag"
umoci_ unpack --image "$layout:$tag" "$work/bundle"
as_root cp -a "$work/rootfs/." "$work/bundle/rootfs/"
as_root find "$work/bundle/rootfs" -exec touch -h -d "@$epoch" {} +
umoci_ repack --image "$layout:$tag" \
  --history.created "$created" --history.author Storefactory \
  --history.created_by "scripts/image-rootfs.sh storefactory $version" "$work/bundle"
umoci_ config --image "$layout:$tag" --no-history \
  --created "$created" \
  --author "Storefactory" \
  --os linux --architecture amd64 \
  --config.user 10001:10001 \
  --config.workingdir /data \
  --config.entrypoint /usr/local/bin/storefactory \
  --config.cmd serve \
  --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --config.env STOREFACTORY_LISTEN=0.0.0.0:8080 \
  --config.env STOREFACTORY_DB=/data/storefactory.db \
  --config.env MALLOC_ARENA_MAX=2 \
  --config.exposedports 8080/tcp \
  --config.volume /data \
  --config.label org.opencontainers.image.title=storefactory \
  --config.label "org.opencontainers.image.description=Provisions isolated WooCommerce stores on Kubernetes" \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.revision=$revision" \
  --config.label org.opencontainers.image.source=https://github.com/storefactory/storefactory \
  --config.label org.opencontainers.image.licenses=MIT
umoci_ gc --layout "$layout"

# containerd (kind, minikube, k3s) names an imported image after the index's
# io.containerd.image.name annotation: the full reference, next to OCI's tag-only ref.name.
first=${repository%%/*}
if [[ "$first" == *.* || "$first" == *:* || "$first" == localhost ]]; then
  reference=$image
else
  reference=docker.io/$image
fi
as_root jq --arg reference "$reference" --arg tag "$tag" \
  '(.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $tag)
    | .annotations["io.containerd.image.name"]) = $reference' \
  "$layout/index.json" > "$work/index.json"
as_root cp "$work/index.json" "$layout/index.json"

# Docker's `docker load` (minikube's docker runtime, older Docker) reads a manifest.json
# instead of the OCI index; the same blobs serve both, so one archive loads everywhere.
manifest_digest=$(jq -r '.manifests[0].digest' "$layout/index.json")
manifest="$layout/blobs/sha256/${manifest_digest#sha256:}"
jq --arg reference "$reference" \
  '[{Config: ("blobs/sha256/" + (.config.digest | ltrimstr("sha256:"))),
     RepoTags: [$reference | ltrimstr("docker.io/")],
     Layers: [.layers[].digest | "blobs/sha256/" + ltrimstr("sha256:")]}]' \
  "$manifest" > "$work/manifest.json"
as_root cp "$work/manifest.json" "$layout/manifest.json"

mkdir -p "$(dirname "$output")"
tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
  -C "$layout" -cf "$output.tmp" oci-layout index.json manifest.json blobs
mv "$output.tmp" "$output"
log "$image: $(du -h "$output" | cut -f1) in $output"
echo "$output"
