#!/usr/bin/env bash
# The steps of a store's backup Job around backup.sh (see jobs/backup.yaml.hbs):
#
#   backup-job.sh db       (MySQL image)      backup.sh db into BACKUP_ROOT
#   backup-job.sh upload   (WordPress image)  backup.sh files seal, then hands the sealed
#                                             folder, as one tar, to the platform
#
# The platform keeps the archives (a Job cannot mount a volume of another namespace, and a
# backup must outlive its store). The upload is a PUT of the tar to UPLOAD_URL with the
# tar's SHA-256 in `X-Backup-SHA256` and the Job's one-time token as a bearer token; the
# platform completes the backup only when what arrived has that checksum.
#
# Environment (nothing else is read; no value is evaluated): that of backup.sh, plus
#   UPLOAD_URL     where the archive goes (step upload)
#   BACKUP_TOKEN   the one-time token (step upload); passed to curl through a file
#                  descriptor, never on a command line
set -euo pipefail
export LC_ALL=C
here=$(dirname -- "${BASH_SOURCE[0]}")
log() { printf '[backup-job] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

case "${1:-}" in
  db)
    exec bash "$here/backup.sh" db
    ;;
  upload)
    [ -n "${UPLOAD_URL:-}" ] || die "UPLOAD_URL is not set"
    [ -n "${BACKUP_TOKEN:-}" ] || die "BACKUP_TOKEN is not set"
    bash "$here/backup.sh" files seal >/dev/null
    archive="$BACKUP_ROOT/.upload-$BACKUP_ID.tar"
    response="$BACKUP_ROOT/.upload-$BACKUP_ID.response"
    tar --create --file="$archive" --numeric-owner --directory="$BACKUP_ROOT" -- "$BACKUP_ID"
    sum=$(sha256sum <"$archive")
    sum=${sum%% *}
    log "uploading $(stat -c %s "$archive") bytes (sha256 $sum)"
    status=$(curl --silent --show-error --retry 5 --retry-connrefused --retry-delay 2 \
      --output "$response" --write-out '%{http_code}' \
      --header @<(printf 'Authorization: Bearer %s\n' "$BACKUP_TOKEN") \
      --header "X-Backup-SHA256: $sum" \
      --header 'Content-Type: application/x-tar' \
      --upload-file "$archive" -- "$UPLOAD_URL") || die "the upload to $UPLOAD_URL failed"
    case "$status" in
      2??) log "backup $BACKUP_ID handed over" ;;
      *) die "the platform refused the backup (HTTP $status): $(head -c 2000 "$response")" ;;
    esac
    ;;
  *)
    die "usage: backup-job.sh db|upload"
    ;;
esac
