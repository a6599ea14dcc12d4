#!/usr/bin/env bash
# Restores backup BACKUP_ID from BACKUP_ROOT/BACKUP_ID/ (written by backup.sh) into a store:
# the same one or another (the DB_* and WORDPRESS_DIR of the target are all it knows).
#
#   restore.sh [db] [files]      (default: both)
#
# First the whole backup is checked: the manifest, the size and SHA-256 of both files, the
# gzip and tar streams. A missing, incomplete or corrupt backup is refused with a message and
# nothing is touched. Then:
#   db     the target database's tables and views are dropped and the dump is loaded, in one
#          session (the database then holds exactly the backup's tables and rows)
#   files  the archive is extracted next to the WordPress files, then replaces them
# A restore that fails half-way (the server goes away, the disk fills) leaves the target
# partly restored, and says so: run it again.
#
# Environment (nothing else is read; no value is ever evaluated):
#   BACKUP_ROOT, BACKUP_ID            which backup
#   DB_HOST, DB_PORT or DB_SOCKET, DB_USER, DB_PASSWORD, DB_NAME   the target (step db)
#   WORDPRESS_DIR                     the target's WordPress files (step files)
set -euo pipefail
export LC_ALL=C
script=restore
# shellcheck source=backup-common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/backup-common.sh"

supported_format=1

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(db files)
for step in "${steps[@]}"; do
  case "$step" in
    db | files) ;;
    *) die "unknown step '$step' (the steps are db and files)" ;;
  esac
done

trap remove_private_dir EXIT

backup_paths
if [ ! -d "$backup_dir" ]; then
  if [ -e "$staging_dir" ]; then
    die "backup $BACKUP_ID is incomplete (it failed or is still being taken) and cannot be restored"
  fi
  die "backup $BACKUP_ID does not exist in $BACKUP_ROOT"
fi

# Reads the manifest as backup.sh writes it, one field per line; anything else is refused.
verify_backup() {
  local manifest="$backup_dir/manifest.json" line format='' id='' name
  local -A bytes=() sums=()
  [ -f "$manifest" ] || die "backup $BACKUP_ID has no manifest.json: it is not a complete backup"
  while IFS= read -r line; do
    if [[ $line =~ ^\ \ \"format\":\ ([0-9]+),$ ]]; then
      format=${BASH_REMATCH[1]}
    elif [[ $line =~ ^\ \ \"id\":\ \"([a-z0-9-]+)\",$ ]]; then
      id=${BASH_REMATCH[1]}
    elif [[ $line =~ ^\ \ \ \ \"(db\.sql\.gz|files\.tar\.gz)\":\ \{\"bytes\":\ ([0-9]+),\ \"sha256\":\ \"([0-9a-f]{64})\"\},?$ ]]; then
      bytes[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
      sums[${BASH_REMATCH[1]}]=${BASH_REMATCH[3]}
    fi
  done <"$manifest"
  [ -n "$format" ] || die "the manifest of backup $BACKUP_ID is unreadable (no format)"
  [ "$format" = "$supported_format" ] ||
    die "backup $BACKUP_ID has format $format; this restore reads format $supported_format"
  [ "$id" = "$BACKUP_ID" ] ||
    die "the manifest in $backup_dir names backup '${id:-?}', not $BACKUP_ID"
  for name in db.sql.gz files.tar.gz; do
    local path="$backup_dir/$name" actual sum
    [ -n "${sums[$name]:-}" ] || die "the manifest of backup $BACKUP_ID does not list $name"
    [ -f "$path" ] || die "backup $BACKUP_ID is damaged: $name is missing"
    actual=$(stat -c %s "$path")
    [ "$actual" = "${bytes[$name]}" ] ||
      die "backup $BACKUP_ID is damaged: $name has $actual bytes, the manifest says ${bytes[$name]}"
    sum=$(sha256sum <"$path")
    [ "${sum%% *}" = "${sums[$name]}" ] ||
      die "backup $BACKUP_ID is damaged: the SHA-256 of $name does not match the manifest"
  done
  gzip -t "$backup_dir/db.sql.gz" 2>/dev/null ||
    die "backup $BACKUP_ID is damaged: db.sql.gz is not a valid gzip stream"
  tar --list --gzip --file="$backup_dir/files.tar.gz" >/dev/null 2>&1 ||
    die "backup $BACKUP_ID is damaged: files.tar.gz is not a valid archive"
  log "backup $BACKUP_ID verified"
}

# Checks everything the steps need before any of them changes anything.
prepare() {
  local step
  for step in "${steps[@]}"; do
    case "$step" in
      db)
        db_settings
        client=$(find_tool mariadb mysql)
        db_check
        ;;
      files)
        [ -n "${WORDPRESS_DIR:-}" ] || die "WORDPRESS_DIR is not set"
        [ -d "$WORDPRESS_DIR" ] || die "the WordPress folder $WORDPRESS_DIR does not exist"
        [ -w "$WORDPRESS_DIR" ] || die "the WordPress folder $WORDPRESS_DIR is not writable"
        ;;
    esac
  done
}

# Drops what the target holds, then loads the dump, in one session. The table names are
# quoted by the server (never by the shell): a prepared statement built from
# information_schema.
step_db() {
  log "restoring into the $db_where"
  local drop_all
  drop_all=$(
    cat <<'SQL'
SET SESSION group_concat_max_len = 1048576;
SET FOREIGN_KEY_CHECKS = 0;
SET @sf_drop = (SELECT IFNULL(CONCAT('DROP VIEW ',
    GROUP_CONCAT('`', REPLACE(table_name, '`', '``'), '`')), 'DO 0')
  FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'VIEW');
PREPARE sf_drop FROM @sf_drop; EXECUTE sf_drop; DEALLOCATE PREPARE sf_drop;
SET @sf_drop = (SELECT IFNULL(CONCAT('DROP TABLE ',
    GROUP_CONCAT('`', REPLACE(table_name, '`', '``'), '`')), 'DO 0')
  FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type <> 'VIEW');
PREPARE sf_drop FROM @sf_drop; EXECUTE sf_drop; DEALLOCATE PREPARE sf_drop;
SQL
  )
  # --binary-mode: the dump's bytes reach the server as they are (no '\r\n' translation,
  # no client commands).
  { printf '%s\n' "$drop_all" && gzip -d -c "$backup_dir/db.sql.gz"; } |
    db_client --batch --binary-mode --database="$DB_NAME" ||
    die "loading the dump into the $db_where failed: the database is partly restored, run the restore again"
  log "database restored"
}

# Extracts into a folder inside WORDPRESS_DIR (the same file system, which may be a volume's
# root that cannot itself be replaced), then swaps the contents by renames.
step_files() {
  local staging="$WORDPRESS_DIR/.storefactory-restore"
  log "restoring the WordPress files into $WORDPRESS_DIR"
  rm -rf -- "$staging"
  mkdir -- "$staging" || die "cannot create $staging"
  if ! tar --extract --gzip --file="$backup_dir/files.tar.gz" --directory="$staging" \
    --no-same-owner; then
    rm -rf -- "$staging"
    die "extracting the files of backup $BACKUP_ID failed; the WordPress files are unchanged"
  fi
  find "$WORDPRESS_DIR" -mindepth 1 -maxdepth 1 ! -name .storefactory-restore \
    -exec rm -rf -- {} + ||
    die "removing the old WordPress files failed: run the restore again"
  find "$staging" -mindepth 1 -maxdepth 1 -exec mv -t "$WORDPRESS_DIR" -- {} + ||
    die "moving the restored files into place failed: run the restore again"
  rmdir -- "$staging"
  log "files restored"
}

verify_backup
prepare
for step in "${steps[@]}"; do
  "step_$step"
done
log "backup $BACKUP_ID restored"
