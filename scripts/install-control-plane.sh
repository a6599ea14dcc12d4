#!/usr/bin/env bash
# Installs the local Kubernetes control plane used by tests, benchmarks and `testkit up`:
# etcd (Debian's etcd-server) and kube-apiserver + kube-controller-manager v1.20.2 built from
# Debian's `kubernetes` source package. Idempotent: the built binaries are cached outside the
# repository, keyed by version, so a second run on the same machine takes a second.
#
# Prints the directory holding the binaries as the last line of stdout.
set -euo pipefail

K8S_VERSION=1.20.2
CACHE_ROOT="${STOREFACTORY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/storefactory}"
BIN_DIR="$CACHE_ROOT/kubernetes-$K8S_VERSION/bin"
# Bumped when the patches applied to the source change; a cache without it is rebuilt.
# - namespace-grace: the namespace controller waits 5s before acting on every namespace event
#   (so that other apiservers of an HA control plane see a deletion). There is one apiserver
#   here, and the wait made every namespace deletion in the tests take 10s; 200ms it is.
PATCH_LEVEL="namespace-grace-200ms"
PATCH_MARKER="$BIN_DIR/.storefactory-patches"

log() { printf '[install-control-plane] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

started=$(date +%s)

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$apt_updated" -eq 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq >&2
    apt_updated=1
  fi
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# etcd: the Debian package starts a system service; tests run their own instances, so stop it.
if ! command -v etcd >/dev/null 2>&1; then
  apt_install etcd-server
  as_root systemctl disable --now etcd >/dev/null 2>&1 || true
  as_root pkill -x etcd >/dev/null 2>&1 || true
fi
log "etcd: $(command -v etcd) ($(etcd --version 2>/dev/null | head -n1))"

cached() {
  [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/kube-controller-manager" ] \
    && [ "$(cat "$PATCH_MARKER" 2>/dev/null)" = "$PATCH_LEVEL" ]
}
if cached; then
  log "kubernetes $K8S_VERSION: cached in $BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi

# One build at a time (tests of several crates may call this script at once).
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/install.lock"
flock 9
if cached; then
  log "kubernetes $K8S_VERSION: built by another run, cached in $BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi

log "kubernetes $K8S_VERSION: building kube-apiserver and kube-controller-manager from Debian's source package (about five minutes on two cores)"
# deb822 form with the same Signed-By as Debian's own entry; a one-line `deb-src` entry for the
# same URI would conflict with it.
src_list=/etc/apt/sources.list.d/storefactory-bookworm-src.sources
if [ ! -f "$src_list" ]; then
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    | as_root tee "$src_list" >/dev/null
  apt_updated=0
fi
apt_install golang-go rsync dpkg-dev
if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq >&2; apt_updated=1; fi

work="$CACHE_ROOT/build-kubernetes-$K8S_VERSION"
rm -rf "$work"
mkdir -p "$work"
rm -rf "$BIN_DIR.tmp"
(
  cd "$work"
  apt-get source --download-only kubernetes >&2
  orig=$(ls kubernetes_*.orig.tar.gz | head -n1)
  mkdir src
  tar -xzf "$orig" -C src --strip-components=1
  cd src
  grace=pkg/controller/namespace/namespace_controller.go
  sed -i 's/namespaceDeletionGracePeriod = 5 \* time.Second/namespaceDeletionGracePeriod = 200 * time.Millisecond/' "$grace"
  grep -q 'namespaceDeletionGracePeriod = 200 \* time.Millisecond' "$grace" \
    || { log "patching $grace failed"; exit 1; }
  export GOPATH="$PWD/.go" CGO_ENABLED=0
  mkdir -p .go/src/k8s.io
  ln -s ../../.. .go/src/k8s.io/kubernetes
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >&2
  mkdir -p "$BIN_DIR.tmp"
  cp _output/local/bin/linux/amd64/kube-apiserver _output/local/bin/linux/amd64/kube-controller-manager "$BIN_DIR.tmp/"
  echo "$PATCH_LEVEL" > "$BIN_DIR.tmp/.storefactory-patches"
)
rm -rf "$BIN_DIR"
mv "$BIN_DIR.tmp" "$BIN_DIR"
rm -rf "$work"
log "kubernetes $K8S_VERSION: built in $(( $(date +%s) - started ))s, cached in $BIN_DIR"
"$BIN_DIR/kube-apiserver" --version >&2
echo "$BIN_DIR"
