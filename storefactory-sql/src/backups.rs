//! Backup records: core's [`BackupRepository`] on SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use storefactory_core::backup::{
    BackupId, BackupOutcome, BackupRecord, BackupRepository, BackupStatus, RestoreRecord,
    RestoreStatus,
};
use storefactory_core::error::RepositoryError;
use storefactory_core::spec::StoreId;
use storefactory_core::store::Timestamp;

use crate::db::Database;
use crate::error::{Error, QueryContext, Result};

const COLUMNS: &str = "id, store_id, kind, status, size_bytes, sha256, created_at, finished_at, \
     error, token_hash, site_url";

fn read(row: &Row<'_>) -> rusqlite::Result<[Option<String>; 11]> {
    // Text and integers read as they are, decoded below, so that a corrupt row is an
    // error that says so rather than a panic.
    let text = |i: usize| row.get::<_, Option<String>>(i);
    let int = |i: usize| {
        row.get::<_, Option<i64>>(i)
            .map(|v| v.map(|v| v.to_string()))
    };
    Ok([
        text(0)?,
        text(1)?,
        text(2)?,
        text(3)?,
        int(4)?,
        text(5)?,
        int(6)?,
        int(7)?,
        text(8)?,
        text(9)?,
        text(10)?,
    ])
}

fn decode(row: [Option<String>; 11]) -> Result<BackupRecord> {
    let corrupt = |what, message: String| Error::Corrupt { what, message };
    let [
        id,
        store,
        kind,
        status,
        size,
        sha256,
        created,
        finished,
        error,
        token_hash,
        site_url,
    ] = row;
    let int = |v: Option<String>| v.and_then(|v| v.parse::<i64>().ok());
    Ok(BackupRecord {
        id: BackupId::new(id.unwrap_or_default())
            .map_err(|e| corrupt("backup id", e.to_string()))?,
        store_id: StoreId::new(store.unwrap_or_default())
            .map_err(|e| corrupt("backup store", e.to_string()))?,
        kind: kind.unwrap_or_default().parse().map_err(
            |e: storefactory_core::error::ValidationError| corrupt("backup kind", e.to_string()),
        )?,
        status: status.unwrap_or_default().parse().map_err(
            |e: storefactory_core::error::ValidationError| corrupt("backup status", e.to_string()),
        )?,
        size_bytes: int(size).and_then(|v| u64::try_from(v).ok()),
        sha256,
        created_at: Timestamp(int(created).unwrap_or_default()),
        finished_at: int(finished).map(Timestamp),
        error,
        site_url,
        token_hash,
    })
}

fn query(conn: &Connection, filter: &str, param: &str) -> Result<Vec<BackupRecord>> {
    let rows = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM backups {filter}"))
        .and_then(|mut stmt| {
            stmt.query_map([param], read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .during("read backups")?;
    rows.into_iter().map(decode).collect()
}

fn find(conn: &Connection, id: &BackupId) -> Result<Option<BackupRecord>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM backups WHERE id = ?1"))
        .and_then(|mut stmt| stmt.query_row([id.as_str()], read).optional())
        .during("read backup")?
        .map(decode)
        .transpose()
}

fn insert(conn: &Connection, b: &BackupRecord) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO backups ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))
    .and_then(|mut stmt| {
        stmt.execute(params![
            b.id.as_str(),
            b.store_id.as_str(),
            b.kind.as_str(),
            b.status.as_str(),
            b.size_bytes.and_then(|v| i64::try_from(v).ok()),
            b.sha256,
            b.created_at.0,
            b.finished_at.map(|t| t.0),
            b.error,
            b.token_hash,
            b.site_url,
        ])
    })
    .during("insert backup")
    .map(drop)
}

/// Settles a pending backup, compare-and-set on `status = 'pending'`.
fn settle(
    conn: &mut Connection,
    id: &BackupId,
    outcome: BackupOutcome,
) -> Result<Option<BackupRecord>> {
    let tx = conn.transaction().during("begin backup settlement")?;
    let Some(mut record) = find(&tx, id)? else {
        return Ok(None);
    };
    if record.status != BackupStatus::Pending {
        return Ok(None);
    }
    outcome.apply(&mut record, Timestamp::now());
    let changed = tx
        .prepare_cached(
            "UPDATE backups SET status = ?2, size_bytes = ?3, sha256 = ?4, finished_at = ?5, \
             error = ?6, token_hash = NULL WHERE id = ?1 AND status = 'pending'",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                id.as_str(),
                record.status.as_str(),
                record.size_bytes.and_then(|v| i64::try_from(v).ok()),
                record.sha256,
                record.finished_at.map(|t| t.0),
                record.error,
            ])
        })
        .during("settle backup")?;
    tx.commit().during("commit backup settlement")?;
    Ok((changed == 1).then_some(record))
}

#[async_trait]
impl BackupRepository for Database {
    async fn insert_backup(&self, record: &BackupRecord) -> Result<(), RepositoryError> {
        let record = record.clone();
        self.write(move |conn| insert(conn, &record))
            .await
            .map_err(|e| e.into_repository("insert backup"))
    }

    async fn get_backup(&self, id: &BackupId) -> Result<Option<BackupRecord>, RepositoryError> {
        let id = id.clone();
        self.read(move |conn| find(conn, &id))
            .await
            .map_err(|e| e.into_repository("read backup"))
    }

    async fn list_backups(&self, store: &StoreId) -> Result<Vec<BackupRecord>, RepositoryError> {
        let store = store.clone();
        self.read(move |conn| {
            query(
                conn,
                "WHERE store_id = ?1 ORDER BY created_at DESC, id DESC",
                store.as_str(),
            )
        })
        .await
        .map_err(|e| e.into_repository("list backups"))
    }

    async fn pending_backups(&self) -> Result<Vec<BackupRecord>, RepositoryError> {
        self.read(move |conn| {
            query(
                conn,
                "WHERE status = ?1 ORDER BY created_at",
                BackupStatus::Pending.as_str(),
            )
        })
        .await
        .map_err(|e| e.into_repository("list pending backups"))
    }

    async fn settle_backup(
        &self,
        id: &BackupId,
        outcome: BackupOutcome,
    ) -> Result<Option<BackupRecord>, RepositoryError> {
        let id = id.clone();
        self.write(move |conn| settle(conn, &id, outcome))
            .await
            .map_err(|e| e.into_repository("settle backup"))
    }

    async fn delete_backup(&self, id: &BackupId) -> Result<bool, RepositoryError> {
        let id = id.clone();
        self.write(move |conn| {
            conn.execute("DELETE FROM backups WHERE id = ?1", [id.as_str()])
                .during("delete backup")
                .map(|n| n > 0)
        })
        .await
        .map_err(|e| e.into_repository("delete backup"))
    }

    async fn insert_restore(&self, record: &RestoreRecord) -> Result<(), RepositoryError> {
        self.insert_restore_row(record.clone())
            .await
            .map_err(|e| e.into_repository("insert restore"))
    }

    async fn get_restore(&self, id: &BackupId) -> Result<Option<RestoreRecord>, RepositoryError> {
        let id = id.clone();
        self.read(move |conn| find_restore(conn, &id))
            .await
            .map_err(|e| e.into_repository("read restore"))
    }

    async fn open_restores(&self) -> Result<Vec<RestoreRecord>, RepositoryError> {
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {RESTORE_COLUMNS} FROM restores \
                     WHERE status IN ('waiting', 'running') ORDER BY created_at"
                ))
                .and_then(|mut stmt| {
                    stmt.query_map([], read_restore)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .during("list open restores")?;
            rows.into_iter().map(decode_restore).collect()
        })
        .await
        .map_err(|e| e.into_repository("list open restores"))
    }

    async fn update_restore(
        &self,
        record: &RestoreRecord,
        from: RestoreStatus,
    ) -> Result<bool, RepositoryError> {
        let r = record.clone();
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE restores SET status = ?2, token_hash = ?3, error = ?4, finished_at = ?5 \
                 WHERE id = ?1 AND status = ?6",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    r.id.as_str(),
                    r.status.as_str(),
                    r.token_hash,
                    r.error,
                    r.finished_at.map(|t| t.0),
                    from.as_str(),
                ])
            })
            .during("update restore")
            .map(|n| n == 1)
        })
        .await
        .map_err(|e| e.into_repository("update restore"))
    }
}

const RESTORE_COLUMNS: &str = "id, store_id, backup_id, status, old_url, new_url, created_at, \
     finished_at, error, token_hash";

type RestoreRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn read_restore(row: &Row<'_>) -> rusqlite::Result<RestoreRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
    ))
}

fn decode_restore(row: RestoreRow) -> Result<RestoreRecord> {
    let corrupt = |what, message: String| Error::Corrupt { what, message };
    let (id, store, backup, status, old_url, new_url, created, finished, error, token_hash) = row;
    Ok(RestoreRecord {
        id: BackupId::new(id).map_err(|e| corrupt("restore id", e.to_string()))?,
        store_id: StoreId::new(store).map_err(|e| corrupt("restore store", e.to_string()))?,
        backup_id: BackupId::new(backup).map_err(|e| corrupt("restore backup", e.to_string()))?,
        status: status
            .parse::<RestoreStatus>()
            .map_err(|e| corrupt("restore status", e.to_string()))?,
        old_url,
        new_url,
        created_at: Timestamp(created),
        finished_at: finished.map(Timestamp),
        error,
        token_hash,
    })
}

fn find_restore(conn: &Connection, id: &BackupId) -> Result<Option<RestoreRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {RESTORE_COLUMNS} FROM restores WHERE id = ?1"
    ))
    .and_then(|mut stmt| stmt.query_row([id.as_str()], read_restore).optional())
    .during("read restore")?
    .map(decode_restore)
    .transpose()
}

impl Database {
    async fn insert_restore_row(&self, r: RestoreRecord) -> Result<()> {
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO restores ({RESTORE_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))
            .and_then(|mut stmt| {
                stmt.execute(params![
                    r.id.as_str(),
                    r.store_id.as_str(),
                    r.backup_id.as_str(),
                    r.status.as_str(),
                    r.old_url,
                    r.new_url,
                    r.created_at.0,
                    r.finished_at.map(|t| t.0),
                    r.error,
                    r.token_hash,
                ])
            })
            .during("insert restore")
            .map(drop)
        })
        .await
    }
}
