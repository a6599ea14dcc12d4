#!/usr/bin/env bash
# Runs everything CI runs, on a fresh machine or a warm one: installs what the tests need
# (the local Kubernetes control plane, helm and kubectl, cached outside the repository), then
# formatting, lints, every test, and the image check. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "installing the local control plane (cached after the first run)"
STOREFACTORY_K8S_BIN_DIR="$(bash scripts/install-control-plane.sh | tail -n 1)"
export STOREFACTORY_K8S_BIN_DIR

step "installing helm and kubectl for the chart's tests (cached after the first run)"
STOREFACTORY_HELM_BIN_DIR="$(bash scripts/install-helm.sh | tail -n 1)"
export STOREFACTORY_HELM_BIN_DIR

step "installing maturin and pytest for the Python bindings (cached after the first run)"
python_venv="$(bash scripts/install-python-tools.sh | tail -n 1)"

step "installing moto's S3 server for the backup bucket's tests (cached after the first run)"
STOREFACTORY_MOTO_SERVER="$(bash scripts/install-moto.sh | tail -n 1)/bin/moto_server"
export STOREFACTORY_MOTO_SERVER

step "installing Chromium, umoci, skopeo, jq, php-cli, MariaDB and the dashboard test's npm packages"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# umoci, skopeo, jq and curl build and check the image; php (php-cli), dash and busybox run
# the seeding scripts in storefactory-core/tests/seed_scripts.rs; the MariaDB server
# (mariadbd) and client (mariadb) and php's mysqli (php-mysql) run the backup scripts in
# storefactory-core/tests/backup_scripts.rs. Installed only when missing.
packages=()
for tool in chromium umoci skopeo jq curl php dash busybox mariadbd mariadb; do
  # mariadbd lives in /usr/sbin, which a user's PATH may not hold.
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
    case "$tool" in
      php) packages+=(php-cli) ;;
      mariadbd) packages+=(mariadb-server) ;;
      mariadb) packages+=(mariadb-client) ;;
      *) packages+=("$tool") ;;
    esac
  fi
done
if ! php -r 'exit(extension_loaded("mysqli") ? 0 : 1);' >/dev/null 2>&1; then
  packages+=(php-mysql)
fi
if [ ${#packages[@]} -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${packages[@]}" >/dev/null
fi
npm ci --prefix storefactory-http/tests/browser --no-audit --no-fund --loglevel=error

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# `serve --local-cluster` is compiled only with its feature.
cargo clippy -p storefactory-cli --all-targets --features local-cluster --locked -- -D warnings

step "cargo doc: the library documentation builds without broken links"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --exclude storefactory-py --no-deps --locked

step "cargo test"
# The Python extension module links against the interpreter only when loaded by Python, so
# it has no Rust test binary of its own.
cargo test --workspace --exclude storefactory-py --locked

step "benchmarks, once at a small size so that they keep working (figures come from full runs)"
# In the dev profile: the debug build the tests made serves, instead of a release build.
STORES=20 INFLIGHT=8 IDLE_SECS=2 cargo bench -q --locked --profile dev -p storefactory-core --bench scale
STORES=20 CLIENTS=8 IDLE_SECS=2 LIST_STORES=500 cargo bench -q --locked --profile dev -p storefactory-http --bench api_scale

step "Python bindings: the wheel built with maturin, tested with pytest"
# A debug build into the workspace's target directory, so it reuses what cargo just built.
rm -rf target/wheels
"$python_venv/bin/maturin" build --locked -m storefactory-py/Cargo.toml --out target/wheels
"$python_venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps \
  target/wheels/storefactory-*.whl
cargo build -q --locked -p storefactory-testkit
# The integration tests start the local control plane themselves (`storefactory-testkit up`).
# pytest exits 5 when it collected no tests: that is a failure here, as is any other code.
(cd storefactory-py && STOREFACTORY_TESTKIT="$PWD/../target/debug/storefactory-testkit" \
  "$python_venv/bin/pytest" -q -p no:cacheprovider tests) || {
  code=$?
  [ "$code" -eq 5 ] && echo "pytest collected no tests" >&2
  exit "$code"
}

step "README examples"
cargo run -q --locked --example render_store -- examples/spec.json > /dev/null
cargo run -q --locked --example custom_blueprint > /dev/null
# The embedding example provisions a store for real: on the README's local control plane.
cluster_dir="$(mktemp -d)"
cargo build -q --locked -p storefactory-testkit
cargo build -q --locked -p storefactory-core --example provision_store
./target/debug/storefactory-testkit up --dir "$cluster_dir" > "$cluster_dir/up.log" 2>&1 &
up_pid=$!
for _ in $(seq 1 120); do
  grep -q "control plane ready" "$cluster_dir/up.log" 2>/dev/null && break
  kill -0 "$up_pid" 2>/dev/null || { cat "$cluster_dir/up.log"; exit 1; }
  sleep 1
done
KUBECONFIG="$cluster_dir/kubeconfig" ./target/debug/examples/provision_store \
  | tee "$cluster_dir/example.log"
# The same from Python, with the wheel installed above.
"$python_venv/bin/python" examples/provision_store.py --kubeconfig "$cluster_dir/kubeconfig" \
  | tee "$cluster_dir/example-py.log"
kill -TERM "$up_pid"; wait "$up_pid" || true
grep -q "is deleted" "$cluster_dir/example.log"
grep -q "is deleted" "$cluster_dir/example-py.log"
rm -rf "$cluster_dir"

step "the image, built without Docker, and checked"
# From the debug binary the tests just built: the image's assembly and configuration are the
# same as from a release build, without compiling the workspace a second time.
image=$(bash scripts/build-image.sh --binary target/debug/storefactory --output target/image/storefactory-test.oci.tar | tail -n 1)
bash scripts/check-image.sh "$image"

step "the README's first command: serve --local-cluster"
# After the image: this builds target/debug/storefactory again, with the feature the image
# must not carry. Only the CLI crate is compiled again.
cargo test -q --locked -p storefactory-cli --features local-cluster --test local_cluster

step "all checks passed in $(( $(date +%s) - started ))s"
