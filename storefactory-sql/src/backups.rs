//! Backup records: core's [`BackupRepository`] on SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use storefactory_core::backup::{
    BackupId, BackupOutcome, BackupRecord, BackupRepository, BackupStatus,
};
use storefactory_core::error::RepositoryError;
use storefactory_core::spec::StoreId;
use storefactory_core::store::Timestamp;

use crate::db::Database;
use crate::error::{Error, QueryContext, Result};

const COLUMNS: &str =
    "id, store_id, kind, status, size_bytes, sha256, created_at, finished_at, error, token_hash";

fn read(row: &Row<'_>) -> rusqlite::Result<[Option<String>; 10]> {
    // Text and integers read as they are, decoded below, so that a corrupt row is an
    // error that says so rather than a panic.
    let text = |i: usize| row.get::<_, Option<String>>(i);
    let int = |i: usize| row.get::<_, Option<i64>>(i).map(|v| v.map(|v| v.to_string()));
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
    ])
}

fn decode(row: [Option<String>; 10]) -> Result<BackupRecord> {
    let corrupt = |what, message: String| Error::Corrupt { what, message };
    let [id, store, kind, status, size, sha256, created, finished, error, token_hash] = row;
    let int = |v: Option<String>| v.and_then(|v| v.parse::<i64>().ok());
    Ok(BackupRecord {
        id: BackupId::new(id.unwrap_or_default())
            .map_err(|e| corrupt("backup id", e.to_string()))?,
        store_id: StoreId::new(store.unwrap_or_default())
            .map_err(|e| corrupt("backup store", e.to_string()))?,
        kind: kind
            .unwrap_or_default()
            .parse()
            .map_err(|e: storefactory_core::error::ValidationError| {
                corrupt("backup kind", e.to_string())
            })?,
        status: status
            .unwrap_or_default()
            .parse()
            .map_err(|e: storefactory_core::error::ValidationError| {
                corrupt("backup status", e.to_string())
            })?,
        size_bytes: int(size).and_then(|v| u64::try_from(v).ok()),
        sha256,
        created_at: Timestamp(int(created).unwrap_or_default()),
        finished_at: int(finished).map(Timestamp),
        error,
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
        "INSERT INTO backups ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
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
        ])
    })
    .during("insert backup")
    .map(drop)
}

/// Settles a pending backup, compare-and-set on `status = 'pending'`.
fn settle(conn: &mut Connection, id: &BackupId, outcome: BackupOutcome) -> Result<Option<BackupRecord>> {
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
}
