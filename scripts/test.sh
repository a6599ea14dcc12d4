#!/usr/bin/env bash
# Runs everything CI runs, on a fresh machine or a warm one: installs what the tests need
# (the local Kubernetes control plane, cached outside the repository), then formatting,
# lints and every test. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "installing the local control plane (cached after the first run)"
STOREFACTORY_K8S_BIN_DIR="$(bash scripts/install-control-plane.sh | tail -n 1)"
export STOREFACTORY_K8S_BIN_DIR

step "installing Chromium and the dashboard test's npm packages"
if ! command -v chromium >/dev/null 2>&1; then
  as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi
npm ci --prefix storefactory-http/tests/browser --no-audit --no-fund --loglevel=error

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
# The Python extension module links against the interpreter only when loaded by Python, so
# it has no Rust test binary of its own.
cargo test --workspace --exclude storefactory-py --locked

step "README examples"
cargo run -q --locked --example render_store -- examples/spec.json > /dev/null
cargo run -q --locked --example custom_blueprint > /dev/null

step "all checks passed in $(( $(date +%s) - started ))s"
