#!/usr/bin/env bash
# Takes backup BACKUP_ID of a store into BACKUP_ROOT/BACKUP_ID/:
#   db.sql.gz      a consistent dump of the database (one transaction), gzipped
#   files.tar.gz   the WordPress files
#   manifest.json  id, time, sizes and SHA-256 of both files, format version, source
#
#   backup.sh [db] [files] [seal]      (default: all three, in this order)
#
# The steps can run in different containers that share the backup volume: `db` where the
# MySQL client tools are (it starts the backup afresh in BACKUP_ROOT/.partial-BACKUP_ID/),
# then `files seal` where the WordPress files are. `seal` writes the manifest and renames the
# staging folder into place, so a folder named after a backup id is always complete; a
# failure removes the staging folder, and one left by a crash is hidden, never listed as a
# backup, and replaced by the next attempt.
#
# Environment (nothing else is read; no value is ever evaluated):
#   BACKUP_ROOT, BACKUP_ID            where the backup goes, and its id
#   DB_HOST, DB_PORT or DB_SOCKET, DB_USER, DB_PASSWORD, DB_NAME   (step db)
#   TABLE_PREFIX                      WordPress' table prefix, default wp_ (step db: the
#                                     site's URL is read from its options for the manifest)
#   WORDPRESS_DIR                     the WordPress files (step files)
# Progress goes to standard error; on success the manifest is printed on standard output.
set -euo pipefail
export LC_ALL=C
script=backup
# shellcheck source=backup-common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/backup-common.sh"

format_version=1

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(db files seal)
for step in "${steps[@]}"; do
  case "$step" in
    db | files | seal) ;;
    *) die "unknown step '$step' (the steps are db, files and seal)" ;;
  esac
done

backup_paths
[ ! -e "$backup_dir" ] || die "backup $BACKUP_ID already exists in $BACKUP_ROOT"

sealed=false
on_exit() {
  local status=$?
  remove_private_dir
  if [ "$status" -ne 0 ] && [ "$sealed" = false ] && [ -d "$staging_dir" ]; then
    rm -rf -- "$staging_dir"
    log "backup $BACKUP_ID failed; nothing was kept"
  fi
}
trap on_exit EXIT
# A stopped Job's pod gets SIGTERM: leave through the EXIT trap, which cleans up.
trap 'exit 143' TERM
trap 'exit 130' INT

step_db() {
  db_settings
  client=$(find_tool mariadb mysql)
  dump=$(find_tool mariadb-dump mysqldump)
  local prefix=${TABLE_PREFIX:-wp_}
  [[ $prefix =~ ^[A-Za-z0-9_]{1,32}$ ]] || die "invalid TABLE_PREFIX '$prefix'"
  db_check

  rm -rf -- "$staging_dir"
  mkdir -- "$staging_dir" || die "cannot create $staging_dir"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$staging_dir/.created"

  # The site's URL, for the manifest: a clone rewrites it. Empty when there is no
  # WordPress options table (yet).
  local site_url
  site_url=$(db_client --batch --skip-column-names --raw --database="$DB_NAME" \
    -e "SELECT option_value FROM \`${prefix}options\` WHERE option_name = 'siteurl'" \
    2>/dev/null) || site_url=''
  printf '%s' "$site_url" >"$staging_dir/.site-url"
  printf '%s' "$DB_NAME" >"$staging_dir/.database"
  "$dump" --version >"$staging_dir/.dump-version" 2>&1 || true

  # MySQL's mysqldump would write GTID statements when the server has GTIDs on; they would
  # fail on restore into another server. MariaDB's has no such option.
  local extra=()
  if "$dump" --help 2>/dev/null | grep -q -- '--set-gtid-purged'; then
    extra+=(--set-gtid-purged=OFF)
  fi
  log "dumping the $db_where"
  # --no-tablespaces: MySQL 8 wants the PROCESS privilege for tablespaces otherwise, and a
  # WordPress database has none of its own. No --databases: the dump names no database, so
  # it can be restored into another one.
  "$dump" --defaults-extra-file="$client_config" --default-character-set=utf8mb4 \
    --single-transaction --quick --routines --triggers --hex-blob --no-tablespaces \
    "${extra[@]}" -- "$DB_NAME" | gzip -c -n >"$staging_dir/db.sql.gz" ||
    die "the dump of the $db_where failed"
  log "database dumped: $(stat -c %s "$staging_dir/db.sql.gz") bytes compressed"
}

step_files() {
  [ -d "$staging_dir" ] || die "backup $BACKUP_ID has not been started: run the db step first"
  [ -n "${WORDPRESS_DIR:-}" ] || die "WORDPRESS_DIR is not set"
  [ -d "$WORDPRESS_DIR" ] || die "the WordPress folder $WORDPRESS_DIR does not exist"
  log "archiving the WordPress files of $WORDPRESS_DIR"
  local status=0
  # Owners by number: the images name their users differently. A restore's leftover
  # folder is no part of the site.
  tar --create --gzip --file="$staging_dir/files.tar.gz" --numeric-owner \
    --exclude=./.storefactory-restore --directory="$WORDPRESS_DIR" . || status=$?
  case "$status" in
    0) ;;
    # GNU tar: some file changed while it was read (a live site's cache); the archive is
    # whole, that file is as it was at some moment during the backup.
    1) log "warning: some files changed while they were archived" ;;
    *) die "archiving $WORDPRESS_DIR failed (tar exit status $status)" ;;
  esac
  log "files archived: $(stat -c %s "$staging_dir/files.tar.gz") bytes compressed"
}

# "name": {"bytes": N, "sha256": "hex"} for one file of the staging folder.
file_entry() {
  local path="$staging_dir/$1" bytes sum
  bytes=$(stat -c %s "$path")
  sum=$(sha256sum <"$path")
  printf '    "%s": {"bytes": %s, "sha256": "%s"}' "$1" "$bytes" "${sum%% *}"
}

step_seal() {
  local file
  for file in db.sql.gz files.tar.gz .created; do
    [ -f "$staging_dir/$file" ] ||
      die "backup $BACKUP_ID is incomplete ($file is missing): run the db and files steps first"
  done
  local created site_url database dump_version
  created=$(cat "$staging_dir/.created")
  site_url=$(cat "$staging_dir/.site-url" 2>/dev/null || true)
  database=$(cat "$staging_dir/.database" 2>/dev/null || true)
  dump_version=$(head -n 1 "$staging_dir/.dump-version" 2>/dev/null || true)
  # One field per line, in this order: restore.sh reads it without a JSON parser.
  {
    printf '{\n'
    printf '  "format": %s,\n' "$format_version"
    printf '  "id": "%s",\n' "$BACKUP_ID"
    printf '  "created": "%s",\n' "$created"
    printf '  "source": {"site_url": %s, "database": %s, "dump_tool": %s},\n' \
      "$(json_string "$site_url")" "$(json_string "$database")" "$(json_string "$dump_version")"
    printf '  "files": {\n'
    file_entry db.sql.gz
    printf ',\n'
    file_entry files.tar.gz
    printf '\n  }\n}\n'
  } >"$staging_dir/manifest.json"
  rm -f -- "$staging_dir/.created" "$staging_dir/.site-url" "$staging_dir/.database" \
    "$staging_dir/.dump-version"
  # On disk before the rename makes the backup visible.
  sync -- "$staging_dir/db.sql.gz" "$staging_dir/files.tar.gz" "$staging_dir/manifest.json"
  [ ! -e "$backup_dir" ] || die "backup $BACKUP_ID appeared in $BACKUP_ROOT while this one ran"
  mv -T -- "$staging_dir" "$backup_dir" || die "cannot move the backup into $backup_dir"
  sealed=true
  sync -- "$BACKUP_ROOT" || true
  log "backup $BACKUP_ID complete"
  cat -- "$backup_dir/manifest.json"
}

for step in "${steps[@]}"; do
  "step_$step"
done
