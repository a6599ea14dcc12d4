//! The schema and its versioned migrations.
//!
//! Migration `n` (counting from 1) turns a database of schema version `n - 1` into version
//! `n`; the version lives in SQLite's `user_version` header field. Migrations are append-only:
//! once released, a script is never edited, a new one is added instead.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

/// Marks the file as a Storefactory database in SQLite's header (`"SFTY"`), so that another
/// application's database is refused instead of having our tables added to it.
pub(crate) const APPLICATION_ID: i32 = 0x5346_5459;

/// Version 1: users, stores, store events, the audit log and settings.
const V1: &str = r#"
CREATE TABLE users (
    username        TEXT PRIMARY KEY NOT NULL,
    password_hash   TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    max_stores      INTEGER NOT NULL CHECK (max_stores >= 0),
    max_storage_gib INTEGER NOT NULL CHECK (max_storage_gib >= 0),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

-- `pos` orders stores oldest first; AUTOINCREMENT never reuses a value, so a store
-- re-created under the id of a deleted one goes to the end, like a new store.
CREATE TABLE stores (
    pos         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    owner       TEXT NOT NULL REFERENCES users (username) ON DELETE RESTRICT,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN
                    ('initialized', 'provisioning', 'ready', 'failed', 'deleting', 'deleted')),
    reason      TEXT,
    host        TEXT NOT NULL,
    storage_gib INTEGER NOT NULL CHECK (storage_gib >= 0),
    blueprint   TEXT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX stores_owner ON stores (owner, status);

CREATE TABLE store_events (
    store_id TEXT NOT NULL REFERENCES stores (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL CHECK (seq >= 1),
    at       INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (store_id, seq)
) STRICT, WITHOUT ROWID;

-- No foreign key on `actor`: failed logins name users that do not exist, and the trail
-- must outlive the users it mentions.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    detail      TEXT,
    client_addr TEXT
) STRICT;
CREATE INDEX audit_log_actor ON audit_log (actor, id);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
"#;

/// Version 2: when each user's password was last set (milliseconds since the Unix epoch),
/// so that access tokens issued before a password change can be refused. Users of version 1
/// get their last update: a password change always updated it, so it is no earlier than
/// the last one.
const V2: &str = r#"
ALTER TABLE users ADD COLUMN password_changed_at INTEGER NOT NULL DEFAULT 0;
UPDATE users SET password_changed_at = updated_at;
"#;

/// Version 3: the engine's own bookkeeping of a store — the UID of its namespace and the
/// sealed values chosen at creation — and one feed of every store's events, in the order they
/// were recorded, through which processes sharing the database follow each other.
const V3: &str = r#"
ALTER TABLE stores ADD COLUMN namespace_uid TEXT;
ALTER TABLE stores ADD COLUMN sealed_inputs TEXT;
CREATE TABLE event_feed (
    pos      INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    FOREIGN KEY (store_id, seq) REFERENCES store_events (store_id, seq) ON DELETE CASCADE
) STRICT;
CREATE INDEX event_feed_event ON event_feed (store_id, seq);
"#;

/// Version 4: revocable access tokens and disabled accounts. A token names the user's
/// `token_version` it was issued under; logging out and disabling the account move it on,
/// which voids every token issued before. The index serves the purge of deleted stores.
const V4: &str = r#"
ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));
CREATE INDEX stores_settled ON stores (status, updated_at);
"#;

/// Version 5: webhooks and their deliveries. `webhook_deliveries` is an outbox: a row is
/// written in the same transaction that moves the dispatcher's cursor over the event feed
/// (kept in `settings`), so an event is turned into deliveries exactly once, and a row is
/// only marked `delivered` or `failed` after the receiver answered: a crash loses nothing.
/// `claimed_until` is set while a process sends the row, so two processes sharing the file
/// never send it at once; an expired claim (the sender died) makes the row due again.
/// `feed_pos` (never reused, unlike a store's event `seq` when a deleted store's id is
/// taken again) makes the fan-out idempotent.
const V5: &str = r#"
CREATE TABLE webhooks (
    id            TEXT PRIMARY KEY NOT NULL,
    owner         TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    url           TEXT NOT NULL,
    sealed_secret TEXT NOT NULL,
    events        TEXT NOT NULL CHECK (events IN ('all', 'status')),
    all_stores    INTEGER NOT NULL DEFAULT 0 CHECK (all_stores IN (0, 1)),
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX webhooks_owner ON webhooks (owner, created_at);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    feed_pos        INTEGER NOT NULL,
    store_id        TEXT NOT NULL,
    event_seq       INTEGER NOT NULL,
    event_kind      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (webhook_id, feed_pos)
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
"#;

/// Version 6: an owner's usage (stores held and their storage, read twice by every store
/// creation) is answered from an index alone. Through `stores_owner` it read every row of
/// the owner's stores, each carrying its whole spec: with a thousand stores, megabytes of
/// pages per creation. The new index serves every query the old one did.
const V6: &str = r#"
CREATE INDEX stores_owner_usage ON stores (owner, status, storage_gib);
DROP INDEX stores_owner;
"#;

/// Version 7: stores can be suspended and resumed, so `status` admits `suspending`,
/// `suspended` and `resuming`. SQLite cannot change a CHECK constraint in place: the table is
/// rebuilt as SQLite's documented procedure does it (new table, copy, drop, rename, the
/// indexes of version 6 again), with foreign key enforcement off around the migration
/// ([`migrate`]) so that dropping the old table does not cascade to the stores' events, and
/// checked before commit.
const V7: &str = r#"
CREATE TABLE stores_v7 (
    pos           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    owner         TEXT NOT NULL REFERENCES users (username) ON DELETE RESTRICT,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN
                      ('initialized', 'provisioning', 'ready', 'failed', 'deleting', 'deleted',
                       'suspending', 'suspended', 'resuming')),
    reason        TEXT,
    host          TEXT NOT NULL,
    storage_gib   INTEGER NOT NULL CHECK (storage_gib >= 0),
    blueprint     TEXT NOT NULL,
    spec          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    namespace_uid TEXT,
    sealed_inputs TEXT
) STRICT;
INSERT INTO stores_v7 (pos, id, owner, name, status, reason, host, storage_gib, blueprint, spec,
                       created_at, updated_at, namespace_uid, sealed_inputs)
    SELECT pos, id, owner, name, status, reason, host, storage_gib, blueprint, spec,
           created_at, updated_at, namespace_uid, sealed_inputs FROM stores;
DROP TABLE stores;
ALTER TABLE stores_v7 RENAME TO stores;
CREATE INDEX stores_owner_usage ON stores (owner, status, storage_gib);
CREATE INDEX stores_settled ON stores (status, updated_at);
"#;

/// Version 8: custom domains. The host is the primary key, so that two stores can never
/// hold one domain, even when two changes race; a store's rows go when it becomes `deleted`
/// (and with its record). The store's spec lists its domains too (what its Ingress is
/// rendered from), written in the same transaction. `stores_host` serves the check that a
/// domain is not another store's own host.
const V8: &str = r#"
CREATE TABLE store_domains (
    host     TEXT PRIMARY KEY NOT NULL,
    store_id TEXT NOT NULL REFERENCES stores (id) ON DELETE CASCADE,
    added_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX store_domains_store ON store_domains (store_id);
CREATE INDEX stores_host ON stores (host);
"#;

/// Version 9: a ready store can be changed (a bigger volume, resources, products, title,
/// currency), so `status` admits `updating`. The table is rebuilt as in version 7, the only
/// way SQLite changes a CHECK constraint, with its indexes again (version 8's `stores_host`
/// among them); `store_domains` refers to the table by name and keeps its rows.
const V9: &str = r#"
CREATE TABLE stores_v9 (
    pos           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    owner         TEXT NOT NULL REFERENCES users (username) ON DELETE RESTRICT,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN
                      ('initialized', 'provisioning', 'ready', 'failed', 'deleting', 'deleted',
                       'suspending', 'suspended', 'resuming', 'updating')),
    reason        TEXT,
    host          TEXT NOT NULL,
    storage_gib   INTEGER NOT NULL CHECK (storage_gib >= 0),
    blueprint     TEXT NOT NULL,
    spec          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    namespace_uid TEXT,
    sealed_inputs TEXT
) STRICT;
INSERT INTO stores_v9 (pos, id, owner, name, status, reason, host, storage_gib, blueprint, spec,
                       created_at, updated_at, namespace_uid, sealed_inputs)
    SELECT pos, id, owner, name, status, reason, host, storage_gib, blueprint, spec,
           created_at, updated_at, namespace_uid, sealed_inputs FROM stores;
DROP TABLE stores;
ALTER TABLE stores_v9 RENAME TO stores;
CREATE INDEX stores_owner_usage ON stores (owner, status, storage_gib);
CREATE INDEX stores_settled ON stores (status, updated_at);
CREATE INDEX stores_host ON stores (host);
"#;

/// Version 10: backups of stores and restores into them, and the store status `restoring`.
///
/// No foreign key from `backups` to `stores`: a backup outlives the record of its store (it
/// can be restored into another store). Tokens' hashes are kept only while a backup or
/// restore runs. `stores` is rebuilt as in version 7 (SQLite cannot change a CHECK
/// constraint in place), its status admitting `restoring`, with every index again.
const V10: &str = r#"
CREATE TABLE backups (
    id          TEXT PRIMARY KEY NOT NULL,
    store_id    TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('manual', 'scheduled')),
    status      TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    size_bytes  INTEGER CHECK (size_bytes >= 0),
    sha256      TEXT,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    error       TEXT,
    token_hash  TEXT,
    site_url    TEXT
) STRICT;
CREATE INDEX backups_store ON backups (store_id, created_at);
CREATE INDEX backups_pending ON backups (status, created_at) WHERE status = 'pending';
CREATE TABLE restores (
    id          TEXT PRIMARY KEY NOT NULL,
    store_id    TEXT NOT NULL,
    backup_id   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('waiting', 'running', 'completed', 'failed')),
    old_url     TEXT,
    new_url     TEXT,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    error       TEXT,
    token_hash  TEXT
) STRICT;
CREATE INDEX restores_store ON restores (store_id, created_at);
CREATE INDEX restores_open ON restores (status, created_at) WHERE status IN ('waiting', 'running');
CREATE TABLE stores_v10 (
    pos           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    owner         TEXT NOT NULL REFERENCES users (username) ON DELETE RESTRICT,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN
                      ('initialized', 'provisioning', 'ready', 'failed', 'deleting', 'deleted',
                       'suspending', 'suspended', 'resuming', 'updating', 'restoring')),
    reason        TEXT,
    host          TEXT NOT NULL,
    storage_gib   INTEGER NOT NULL CHECK (storage_gib >= 0),
    blueprint     TEXT NOT NULL,
    spec          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    namespace_uid TEXT,
    sealed_inputs TEXT
) STRICT;
INSERT INTO stores_v10 (pos, id, owner, name, status, reason, host, storage_gib, blueprint, spec,
                       created_at, updated_at, namespace_uid, sealed_inputs)
    SELECT pos, id, owner, name, status, reason, host, storage_gib, blueprint, spec,
           created_at, updated_at, namespace_uid, sealed_inputs FROM stores;
DROP TABLE stores;
ALTER TABLE stores_v10 RENAME TO stores;
CREATE INDEX stores_owner_usage ON stores (owner, status, storage_gib);
CREATE INDEX stores_settled ON stores (status, updated_at);
CREATE INDEX stores_host ON stores (host);
"#;

/// Version 11: an index for the pages of one owner's stores. The page query walked `stores`
/// by `pos` and filtered on the owner, which reads every row when the owner's stores are few
/// among many (measured: 42 ms a page with 100,000 stores of 1,000 owners, against well under
/// a millisecond through this index). `status` is in the index so that skipping deleted
/// stores reads no table row.
const V11: &str = r#"
CREATE INDEX stores_owner_page ON stores (owner, pos, status);
"#;

/// Every migration, in order; the schema version of a database is how many were applied.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11];

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database on `conn` to the version of `migrations`, in one transaction: either
/// every pending migration is applied or none is.
///
/// Refuses databases of a newer version and databases of other applications.
pub(crate) fn migrate(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<()> {
    let open_error = |source| Error::Open {
        path: path.to_owned(),
        source,
    };
    // Foreign keys are enforced again when this returns, however it returns. A migration
    // that rebuilds a table (V6) must not have the drop of the old one cascade; the keys are
    // checked before commit instead. The pragma does nothing inside a transaction, so it is
    // set here.
    conn.pragma_update(None, "foreign_keys", false)
        .map_err(open_error)?;
    let result = migrate_in_transaction(conn, path, migrations);
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(open_error)?;
    result
}

fn migrate_in_transaction(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<()> {
    let open_error = |source| Error::Open {
        path: path.to_owned(),
        source,
    };
    // IMMEDIATE: two processes opening the same fresh file must not both migrate it.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_error)?;
    let application_id: i32 = tx
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(open_error)?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_error)?;
    let supported = migrations.len() as i64;

    if application_id != APPLICATION_ID {
        let tables: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(open_error)?;
        if application_id != 0 || found != 0 || tables != 0 {
            return Err(Error::ForeignDatabase {
                path: path.to_owned(),
                application_id,
            });
        }
    }
    if found > supported {
        return Err(Error::NewerSchema {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    if found == supported {
        return Ok(());
    }

    for (version, script) in (1..)
        .zip(migrations)
        .skip(usize::try_from(found).unwrap_or(0))
    {
        tx.execute_batch(script)
            .map_err(|source| Error::Migrate { version, source })?;
    }
    let finish = |source| Error::Migrate {
        version: supported,
        source,
    };
    let broken: i64 = tx
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| {
            row.get(0)
        })
        .map_err(finish)?;
    if broken != 0 {
        return Err(finish(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
            Some(format!("{broken} rows break a foreign key after migrating")),
        )));
    }
    tx.pragma_update(None, "user_version", supported)
        .map_err(finish)?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(finish)?;
    tx.commit().map_err(finish)
}

/// A database file with every migration applied, for tests that look at queries.
#[cfg(test)]
pub(crate) fn migrated() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let mut conn = Connection::open(&path).unwrap();
    migrate(&mut conn, &path, MIGRATIONS).unwrap();
    (dir, conn)
}

/// The steps of SQLite's plan for `sql` with `params` bound.
#[cfg(test)]
pub(crate) fn query_plan(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> String {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let steps: Vec<String> = stmt
        .query_map(params, |row| row.get(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    steps.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap()
    }

    /// The names of the indexes on `stores`, sorted.
    fn store_indexes(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'stores' \
                 AND sql IS NOT NULL ORDER BY name",
            )
            .unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn tables(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    // Small scripts of their own, so that the runner's upgrade path is checked apart from
    // what the real migrations happen to do.
    const FIXTURE_V1: &str = "CREATE TABLE a (x INTEGER NOT NULL) STRICT;";
    const FIXTURE_V2: &str = "ALTER TABLE a ADD COLUMN y TEXT; CREATE TABLE b (z TEXT) STRICT;";

    #[test]
    fn upgrades_an_older_database_one_version_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &path, &[FIXTURE_V1]).unwrap();
        conn.execute("INSERT INTO a (x) VALUES (7)", []).unwrap();
        assert_eq!(version(&conn), 1);

        migrate(&mut conn, &path, &[FIXTURE_V1, FIXTURE_V2]).unwrap();
        assert_eq!(version(&conn), 2);
        assert_eq!(tables(&conn), ["a", "b"]);
        let kept: i64 = conn.query_row("SELECT x FROM a", [], |r| r.get(0)).unwrap();
        assert_eq!(kept, 7, "upgrading keeps existing rows");
    }

    #[test]
    fn a_failing_migration_leaves_the_previous_version_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &path, &[FIXTURE_V1]).unwrap();

        let broken = "CREATE TABLE c (z TEXT); THIS IS NOT SQL;";
        let err = migrate(&mut conn, &path, &[FIXTURE_V1, FIXTURE_V2, broken]).unwrap_err();
        assert!(matches!(err, Error::Migrate { version: 3, .. }), "{err:?}");
        assert_eq!(version(&conn), 1);
        assert_eq!(
            tables(&conn),
            ["a"],
            "version 2 was rolled back with version 3"
        );
    }

    #[test]
    fn refuses_a_database_of_another_application() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE theirs (x INTEGER)")
            .unwrap();
        let err = migrate(&mut conn, &path, MIGRATIONS).unwrap_err();
        assert!(matches!(err, Error::ForeignDatabase { .. }), "{err:?}");
        assert_eq!(tables(&conn), ["theirs"], "nothing was added to their file");
    }

    #[test]
    fn version_1_users_get_their_last_update_as_password_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &path, &MIGRATIONS[..1]).unwrap();
        assert_eq!(version(&conn), 1);
        conn.execute(
            "INSERT INTO users (username, password_hash, role, max_stores, max_storage_gib, \
             created_at, updated_at) VALUES ('ann', 'hash', 'user', 1, 1, 1000, 5000)",
            [],
        )
        .unwrap();

        migrate(&mut conn, &path, MIGRATIONS).unwrap();
        assert_eq!(version(&conn), SCHEMA_VERSION);
        let (changed, hash): (i64, String) = conn
            .query_row(
                "SELECT password_changed_at, password_hash FROM users WHERE username = 'ann'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(changed, 5000);
        assert_eq!(hash, "hash", "the rest of the row is kept");
    }

    #[test]
    fn the_real_migrations_apply_to_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &path, MIGRATIONS).unwrap();
        assert_eq!(version(&conn), SCHEMA_VERSION);
        assert_eq!(
            tables(&conn),
            [
                "audit_log",
                "backups",
                "event_feed",
                "restores",
                "settings",
                "sqlite_sequence",
                "store_domains",
                "store_events",
                "stores",
                "users",
                "webhook_deliveries",
                "webhooks"
            ]
        );
        // Idempotent: a second run is a no-op.
        migrate(&mut conn, &path, MIGRATIONS).unwrap();
        assert_eq!(version(&conn), SCHEMA_VERSION);
    }

    #[test]
    fn version_7_admits_suspended_stores_and_keeps_every_store_event_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        migrate(&mut conn, &path, &MIGRATIONS[..6]).unwrap();
        conn.execute_batch(
            "INSERT INTO users (username, password_hash, role, max_stores, max_storage_gib, \
             created_at, updated_at) VALUES ('ann', 'hash', 'user', 1, 1, 1000, 5000);
             INSERT INTO stores (id, owner, name, status, host, storage_gib, blueprint, spec, \
             created_at, updated_at, namespace_uid) VALUES ('s1', 'ann', 'Shop', 'ready', \
             'store-s1.example', 3, 'woocommerce', '{}', 1, 2, 'uid-1');
             INSERT INTO store_events (store_id, seq, at, kind, body) VALUES ('s1', 1, 1, 'status', '{}');
             INSERT INTO event_feed (store_id, seq) VALUES ('s1', 1);",
        )
        .unwrap();
        let refused = conn.execute("UPDATE stores SET status = 'suspended'", []);
        assert!(refused.is_err(), "version 6 knows no suspended stores");

        let before = store_indexes(&conn);
        migrate(&mut conn, &path, &MIGRATIONS[..7]).unwrap();
        assert_eq!(version(&conn), 7);
        assert_eq!(
            store_indexes(&conn),
            before,
            "the rebuilt table has the same indexes"
        );
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(
            count("SELECT count(*) FROM store_events"),
            1,
            "events survive the rebuild"
        );
        assert_eq!(count("SELECT count(*) FROM event_feed"), 1);
        assert_eq!(
            count("SELECT pos FROM stores WHERE namespace_uid = 'uid-1'"),
            1
        );
        let foreign_keys: i64 = conn
            .pragma_query_value(None, "foreign_keys", |row| row.get(0))
            .unwrap();
        assert_eq!(foreign_keys, 1, "enforced again after migrating");
        conn.execute("UPDATE stores SET status = 'suspended'", [])
            .unwrap();
        assert!(
            conn.execute("UPDATE stores SET status = 'paused'", [])
                .is_err()
        );
        // The events still belong to the store: deleting it removes them.
        conn.execute("DELETE FROM stores", []).unwrap();
        assert_eq!(count("SELECT count(*) FROM store_events"), 0);
        assert_eq!(count("SELECT count(*) FROM event_feed"), 0);
    }

    #[test]
    fn version_8_holds_each_domain_once_and_lets_it_go_with_its_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        migrate(&mut conn, &path, &MIGRATIONS[..7]).unwrap();
        conn.execute_batch(
            "INSERT INTO users (username, password_hash, role, max_stores, max_storage_gib, \
             created_at, updated_at) VALUES ('ann', 'hash', 'user', 2, 9, 1, 1);
             INSERT INTO stores (id, owner, name, status, host, storage_gib, blueprint, spec, \
             created_at, updated_at) VALUES ('s1', 'ann', 'Shop', 'ready', 's1.example', 3, \
             'woocommerce', '{}', 1, 2), ('s2', 'ann', 'Shop', 'ready', 's2.example', 3, \
             'woocommerce', '{}', 1, 2);",
        )
        .unwrap();
        migrate(&mut conn, &path, &MIGRATIONS[..8]).unwrap();
        assert_eq!(version(&conn), 8);
        let add = |conn: &Connection, host: &str, store: &str| {
            conn.execute(
                "INSERT INTO store_domains (host, store_id, added_at) VALUES (?1, ?2, 3)",
                [host, store],
            )
        };
        add(&conn, "shop.example.com", "s1").unwrap();
        assert!(
            add(&conn, "shop.example.com", "s2").is_err(),
            "one domain, one store"
        );
        assert!(
            add(&conn, "x.example.com", "nope").is_err(),
            "only stores hold domains"
        );
        conn.execute("DELETE FROM stores WHERE id = 's1'", [])
            .unwrap();
        add(&conn, "shop.example.com", "s2").unwrap();
    }

    #[test]
    fn version_9_admits_updating_stores_and_keeps_every_store_event_index_and_domain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        migrate(&mut conn, &path, &MIGRATIONS[..8]).unwrap();
        conn.execute_batch(
            "INSERT INTO users (username, password_hash, role, max_stores, max_storage_gib, \
             created_at, updated_at) VALUES ('ann', 'hash', 'user', 1, 1, 1000, 5000);
             INSERT INTO stores (id, owner, name, status, host, storage_gib, blueprint, spec, \
             created_at, updated_at, namespace_uid) VALUES ('s1', 'ann', 'Shop', 'suspended', \
             'store-s1.example', 3, 'woocommerce', '{}', 1, 2, 'uid-1');
             INSERT INTO store_events (store_id, seq, at, kind, body) VALUES ('s1', 1, 1, 'status', '{}');
             INSERT INTO event_feed (store_id, seq) VALUES ('s1', 1);
             INSERT INTO store_domains (host, store_id, added_at) VALUES ('shop.example.com', 's1', 3);",
        )
        .unwrap();
        assert!(
            conn.execute("UPDATE stores SET status = 'updating'", [])
                .is_err(),
            "version 8 knows no updating stores"
        );
        let before = store_indexes(&conn);
        migrate(&mut conn, &path, &MIGRATIONS[..9]).unwrap();
        assert_eq!(version(&conn), 9);
        assert_eq!(store_indexes(&conn), before);
        assert!(before.contains(&"stores_host".to_owned()), "{before:?}");
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(count("SELECT count(*) FROM store_events"), 1);
        assert_eq!(count("SELECT count(*) FROM store_domains"), 1);
        assert_eq!(
            count("SELECT count(*) FROM stores WHERE status = 'suspended'"),
            1
        );
        conn.execute("UPDATE stores SET status = 'updating'", [])
            .unwrap();
        conn.execute("DELETE FROM stores", []).unwrap();
        assert_eq!(count("SELECT count(*) FROM store_events"), 0);
        assert_eq!(
            count("SELECT count(*) FROM store_domains"),
            0,
            "the cascade still holds"
        );
    }

    #[test]
    fn version_10_admits_restoring_stores_and_keeps_every_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &path, &MIGRATIONS[..9]).unwrap();
        conn.execute_batch(
            "INSERT INTO users (username, password_hash, role, max_stores, max_storage_gib, \
             created_at, updated_at, password_changed_at) VALUES ('ann', 'h', 'user', 1, 1, 1, 1, 1);",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO stores (id, owner, name, status, host, storage_gib, blueprint, spec, \
             created_at, updated_at) VALUES ('ab12', 'ann', 'Shop', 'suspended', 'h', 3, 'b', \
             '{}', 1, 2)",
            [],
        )
        .unwrap();
        let refused = conn.execute("UPDATE stores SET status = 'restoring'", []);
        assert!(refused.is_err(), "version 9 does not know restoring");
        let before = store_indexes(&conn);
        migrate(&mut conn, &path, &MIGRATIONS[..10]).unwrap();
        assert_eq!(version(&conn), 10);
        assert_eq!(
            store_indexes(&conn),
            before,
            "the rebuilt table has the same indexes"
        );
        conn.execute("UPDATE stores SET status = 'updating'", [])
            .unwrap();
        conn.execute("UPDATE stores SET status = 'restoring'", [])
            .unwrap();
        let (name, storage): (String, i64) = conn
            .query_row(
                "SELECT name, storage_gib FROM stores WHERE id = 'ab12'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((name.as_str(), storage), ("Shop", 3));
        let bad = conn.execute(
            "INSERT INTO backups (id, store_id, kind, status, created_at) \
             VALUES ('x', 'ab12', 'hourly', 'pending', 1)",
            [],
        );
        assert!(bad.is_err(), "kinds are checked");
    }

    #[test]
    fn version_11_pages_an_owners_stores_through_an_index() {
        let (_dir, conn) = migrated();
        assert_eq!(version(&conn), 11);
        assert!(store_indexes(&conn).contains(&"stores_owner_page".to_owned()));
        let plan = query_plan(
            &conn,
            "SELECT pos FROM stores WHERE owner = ?1 \
             AND (?3 OR status != 'deleted') AND pos < ?2 ORDER BY pos DESC LIMIT 13",
            rusqlite::params!["ann", i64::MAX, false],
        );
        assert!(plan.contains("stores_owner_page"), "{plan:?}");
        assert!(
            !plan.contains("TEMP B-TREE"),
            "the index gives the order: {plan:?}"
        );
    }
}
