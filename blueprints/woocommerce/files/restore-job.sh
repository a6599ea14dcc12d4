#!/usr/bin/env bash
# The steps of a store's restore Job around restore.sh (see jobs/restore.yaml.hbs):
#
#   restore-job.sh fetch   (WordPress image)  downloads the backup's archive from the
#                                             platform, checks its SHA-256, unpacks it into
#                                             BACKUP_ROOT
#   restore-job.sh db      (MySQL image)      restore.sh db
#   restore-job.sh files   (WordPress image)  restore.sh files, then, when OLD_URL and NEW_URL
#                                             are set (a clone, or another store's backup),
#                                             rewrite-urls.php from OLD_URL to NEW_URL
#
# restore.sh checks the whole backup before it touches anything, in each step.
#
# Environment (nothing else is read; no value is evaluated): that of restore.sh, plus
#   ARCHIVE_URL, RESTORE_TOKEN, ARCHIVE_SHA256   (step fetch; the token is passed to curl
#                                                 through a file descriptor)
#   OLD_URL, NEW_URL                             (step files, both or neither)
set -euo pipefail
export LC_ALL=C
here=$(dirname -- "${BASH_SOURCE[0]}")
log() { printf '[restore-job] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

case "${1:-}" in
  fetch)
    for name in BACKUP_ROOT BACKUP_ID ARCHIVE_URL RESTORE_TOKEN ARCHIVE_SHA256; do
      [ -n "${!name:-}" ] || die "$name is not set"
    done
    [[ $BACKUP_ID =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]] || die "invalid backup id '$BACKUP_ID'"
    archive="$BACKUP_ROOT/.archive-$BACKUP_ID.tar"
    response="$BACKUP_ROOT/.archive-$BACKUP_ID.response"
    log "downloading backup $BACKUP_ID"
    status=$(curl --silent --show-error --retry 5 --retry-connrefused --retry-delay 2 \
      --output "$archive" --write-out '%{http_code}' \
      --header @<(printf 'Authorization: Bearer %s\n' "$RESTORE_TOKEN") \
      -- "$ARCHIVE_URL") || die "the download from $ARCHIVE_URL failed"
    case "$status" in
      2??) ;;
      *) die "the platform refused the download (HTTP $status): $(head -c 2000 "$archive")" ;;
    esac
    sum=$(sha256sum <"$archive")
    sum=${sum%% *}
    [ "$sum" = "$ARCHIVE_SHA256" ] ||
      die "the archive's SHA-256 is $sum, not the recorded $ARCHIVE_SHA256"
    # Only the backup's own folder, and no way out of it.
    bad=$(tar --list --file="$archive" | grep -v -E "^${BACKUP_ID}(/[^/].*|/)?\$" | head -n 1 || true)
    [ -z "$bad" ] || die "the archive holds an unexpected entry: $bad"
    if tar --list --file="$archive" | grep -q -E '(^|/)\.\.(/|$)'; then
      die "the archive holds a path with '..'"
    fi
    tar --extract --no-same-owner --file="$archive" --directory="$BACKUP_ROOT"
    rm -f -- "$archive" "$response"
    log "backup $BACKUP_ID downloaded and unpacked"
    ;;
  db)
    exec bash "$here/restore.sh" db
    ;;
  files)
    bash "$here/restore.sh" files
    if [ -n "${OLD_URL:-}" ] || [ -n "${NEW_URL:-}" ]; then
      [ -n "${OLD_URL:-}" ] && [ -n "${NEW_URL:-}" ] || die "set both OLD_URL and NEW_URL, or neither"
      if [ "$OLD_URL" != "$NEW_URL" ]; then
        log "rewriting $OLD_URL to $NEW_URL"
        php "$here/rewrite-urls.php"
      fi
    fi
    ;;
  *)
    die "usage: restore-job.sh fetch|db|files"
    ;;
esac
