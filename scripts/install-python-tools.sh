#!/usr/bin/env bash
# Installs the tools the Python bindings' tests need — maturin (builds the wheel) and pytest —
# into a virtual environment cached outside the repository, keyed by their pinned versions,
# so a second run on the same machine takes a second.
#
# Prints the virtual environment's directory as the last line of stdout.
set -euo pipefail

MATURIN_VERSION=1.16.0
PYTEST_VERSION=9.2.0
CACHE_ROOT="${STOREFACTORY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/storefactory}"
VENV="$CACHE_ROOT/python-venv-maturin-$MATURIN_VERSION-pytest-$PYTEST_VERSION"

log() { printf '[install-python-tools] %s\n' "$*" >&2; }

if [ -x "$VENV/bin/maturin" ] && [ -x "$VENV/bin/pytest" ] && [ -f "$VENV/.complete" ]; then
  log "maturin $MATURIN_VERSION and pytest $PYTEST_VERSION: cached in $VENV"
  echo "$VENV"
  exit 0
fi

python=$(command -v python3 || true)
[ -n "$python" ] || { log "python3 is needed for the Python bindings"; exit 1; }
mkdir -p "$CACHE_ROOT"
# A venv records its own path, so it is built in place; a half-built one (no `.complete` mark) is
# started over.
rm -rf "$VENV"
log "creating $VENV with $($python --version)"
"$python" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  "maturin==$MATURIN_VERSION" "pytest==$PYTEST_VERSION" >&2
touch "$VENV/.complete"
echo "$VENV"
