# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154 # variables shared with the sourcing script
# Functions shared by backup.sh and restore.sh, which source this file from their own
# folder. It defines functions and runs nothing. Bash, as both images have it (the MySQL
# image for the database, the WordPress image for the files).
#
# Every value comes from the environment and is only ever passed as one argument or written
# to a file as data: nothing is evaluated, and a value that looks like an option stays data.

# Progress and errors go to standard error, prefixed with the script's name ($script).
log() { printf '[%s] %s\n' "$script" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Backup ids are DNS-label-like, so they are safe as file names and in Kubernetes objects;
# a staging folder (".partial-<id>") can never be mistaken for a backup.
valid_backup_id() { [[ $1 =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]]; }

# The folder of backup BACKUP_ID under BACKUP_ROOT, checked; sets backup_dir and
# staging_dir.
backup_paths() {
  [ -n "${BACKUP_ROOT:-}" ] || die "BACKUP_ROOT is not set (the folder that holds the backups)"
  [ -d "$BACKUP_ROOT" ] || die "the backup folder $BACKUP_ROOT does not exist"
  [ -n "${BACKUP_ID:-}" ] || die "BACKUP_ID is not set"
  valid_backup_id "$BACKUP_ID" ||
    die "invalid backup id '$BACKUP_ID': 1 to 63 lowercase letters, digits and '-', not starting with '-'"
  backup_dir="$BACKUP_ROOT/$BACKUP_ID"
  staging_dir="$BACKUP_ROOT/.partial-$BACKUP_ID"
}

# One client tool of either family: the MariaDB name first, then the MySQL one.
find_tool() {
  local name
  for name in "$@"; do
    if command -v "$name" >/dev/null 2>&1; then
      printf '%s\n' "$name"
      return 0
    fi
  done
  die "none of $* is installed"
}

# A value for a MySQL/MariaDB option file: quoted, with the escapes both parsers read, so
# that '#', quotes, backslashes and spaces stay part of the value.
option_value() {
  local v=$1
  v=${v//\\/\\\\}
  v=${v//\"/\\\"}
  v=${v//\'/\\\'}
  v=${v//$'\n'/\\n}
  v=${v//$'\r'/\\r}
  v=${v//$'\t'/\\t}
  printf '"%s"' "$v"
}

# Checks the DB_* variables and writes the client's option file ($client_config) into a
# private folder, so that the password is never on a command line (where `ps` shows it).
#   DB_NAME      database (letters, digits, '_', '-'; not starting with '-')
#   DB_USER      user; DB_PASSWORD its password (may be empty)
#   DB_HOST      server host, DB_PORT its port (default 3306); or DB_SOCKET, a Unix socket
db_settings() {
  [ -n "${DB_NAME:-}" ] || die "DB_NAME is not set"
  [[ $DB_NAME =~ ^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$ ]] ||
    die "invalid database name '$DB_NAME': letters, digits, '_' and '-', not starting with '-'"
  [ -n "${DB_USER:-}" ] || die "DB_USER is not set"
  [ -n "${DB_PASSWORD+set}" ] || die "DB_PASSWORD is not set"
  [ -n "${DB_HOST:-}" ] || [ -n "${DB_SOCKET:-}" ] || die "DB_HOST (or DB_SOCKET) is not set"
  local port=${DB_PORT:-3306}
  [[ $port =~ ^[0-9]{1,5}$ ]] || die "invalid DB_PORT '$port'"

  private_dir=$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/storefactory-db.XXXXXX") ||
    die "cannot create a private temporary folder in ${TMPDIR:-/tmp}"
  client_config="$private_dir/client.cnf"
  (
    umask 077
    {
      printf '[client]\n'
      printf 'user=%s\n' "$(option_value "$DB_USER")"
      printf 'password=%s\n' "$(option_value "$DB_PASSWORD")"
      if [ -n "${DB_SOCKET:-}" ]; then
        printf 'host=localhost\nsocket=%s\n' "$(option_value "$DB_SOCKET")"
      else
        printf 'host=%s\nport=%s\nprotocol=TCP\n' "$(option_value "$DB_HOST")" "$port"
      fi
    } >"$client_config"
  ) || die "cannot write the client configuration"
  db_where="database $DB_NAME on ${DB_SOCKET:-$DB_HOST:$port}"
}

remove_private_dir() {
  if [ -n "${private_dir:-}" ]; then rm -rf -- "$private_dir"; fi
}

# The client, reading the option file first (it must be the first option) and talking
# utf8mb4. Arguments follow.
db_client() {
  "$client" --defaults-extra-file="$client_config" --default-character-set=utf8mb4 "$@"
}

# Fails with a clear message unless the database answers to these credentials.
db_check() {
  local out
  out=$(db_client --batch --skip-column-names --database="$DB_NAME" -e 'SELECT 1' 2>&1) ||
    die "cannot connect to the $db_where as $DB_USER: $out"
}

# A JSON string literal of $1 (quotes, backslashes and control characters escaped).
json_string() {
  local s=$1 c i
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  for ((i = 1; i < 32; i++)); do
    printf -v c '%b' "\\x$(printf '%02x' "$i")"
    if [[ $s == *"$c"* ]]; then s=${s//"$c"/$(printf '\\u%04x' "$i")}; fi
  done
  printf '"%s"' "$s"
}
