#!/usr/bin/env bash
# Installs moto's server (an S3-compatible endpoint the archive-store tests run on a loopback
# port) into a virtual environment cached outside the repository, keyed by its pinned version,
# so a second run on the same machine takes a second.
#
# Prints the virtual environment's directory as the last line of stdout; `moto_server` is in its
# `bin`. The tests find it through STOREFACTORY_MOTO_SERVER (scripts/test.sh sets it).
set -euo pipefail

MOTO_VERSION=5.2.5
CACHE_ROOT="${STOREFACTORY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/storefactory}"
VENV="$CACHE_ROOT/python-venv-moto-$MOTO_VERSION"

log() { printf '[install-moto] %s\n' "$*" >&2; }

if [ -x "$VENV/bin/moto_server" ] && [ -f "$VENV/.complete" ]; then
  log "moto[server] $MOTO_VERSION: cached in $VENV"
  echo "$VENV"
  exit 0
fi

python=$(command -v python3 || true)
[ -n "$python" ] || { log "python3 is needed for moto's server"; exit 1; }
mkdir -p "$CACHE_ROOT"
# A venv records its own path, so it is built in place; a half-built one (no `.complete` mark) is
# started over.
rm -rf "$VENV"
log "creating $VENV with $($python --version)"
"$python" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
touch "$VENV/.complete"
echo "$VENV"
