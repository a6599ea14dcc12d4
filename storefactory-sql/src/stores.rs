//! Stores and their events: core's [`StoreRepository`] on SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use storefactory_core::error::RepositoryError;
use storefactory_core::port::{DomainChange, Quota, StoreFilter, StoreRepository};
use storefactory_core::spec::MAX_DOMAINS;
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::{EventKind, StoreEvent, StoreRecord, StoreStatus, Timestamp};

use crate::db::Database;
use crate::error::{Error, QueryContext, Result};
use crate::users::usage_of;

const STORE_COLUMNS: &str = "id, owner, name, status, reason, blueprint, spec, created_at, \
     updated_at, namespace_uid, sealed_inputs";

/// A row selected with [`STORE_COLUMNS`], before its text columns are decoded.
struct StoreRow {
    id: String,
    owner: String,
    name: String,
    status: String,
    reason: Option<String>,
    blueprint: String,
    spec: String,
    created_at: i64,
    updated_at: i64,
    namespace_uid: Option<String>,
    sealed_inputs: Option<String>,
}

impl StoreRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<StoreRow> {
        StoreRow::read_from(row, 0)
    }

    /// Reads the [`STORE_COLUMNS`] that start at column `first`.
    fn read_from(row: &Row<'_>, first: usize) -> rusqlite::Result<StoreRow> {
        Ok(StoreRow {
            id: row.get(first)?,
            owner: row.get(first + 1)?,
            name: row.get(first + 2)?,
            status: row.get(first + 3)?,
            reason: row.get(first + 4)?,
            blueprint: row.get(first + 5)?,
            spec: row.get(first + 6)?,
            created_at: row.get(first + 7)?,
            updated_at: row.get(first + 8)?,
            namespace_uid: row.get(first + 9)?,
            sealed_inputs: row.get(first + 10)?,
        })
    }

    fn decode(self) -> Result<StoreRecord> {
        let corrupt = |what, message: String| Error::Corrupt { what, message };
        Ok(StoreRecord {
            id: StoreId::new(self.id).map_err(|e| corrupt("store id", e.to_string()))?,
            owner: self.owner,
            name: self.name,
            status: self
                .status
                .parse::<StoreStatus>()
                .map_err(|e| corrupt("store status", e.to_string()))?,
            reason: self.reason,
            blueprint: self.blueprint,
            spec: serde_json::from_str::<StoreSpec>(&self.spec)
                .map_err(|e| corrupt("store spec", e.to_string()))?,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
            namespace_uid: self.namespace_uid,
            sealed_inputs: self.sealed_inputs,
        })
    }
}

fn find_store(conn: &Connection, id: &StoreId) -> Result<Option<StoreRecord>> {
    conn.prepare_cached(&format!("SELECT {STORE_COLUMNS} FROM stores WHERE id = ?1"))
        .and_then(|mut stmt| stmt.query_row([id.as_str()], StoreRow::read).optional())
        .during("read store")?
        .map(StoreRow::decode)
        .transpose()
}

/// Checks the owner's quota and inserts the record, in one `BEGIN IMMEDIATE` transaction so
/// that no other writer (of this process or another) can slip a store in between.
fn insert_store(conn: &mut Connection, record: &StoreRecord) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .during("begin store insertion")?;
    insert_store_in(&tx, record)?;
    tx.commit().during("commit store insertion")
}

/// Records a new store and its first event in one transaction: one commit instead of two
/// on the path of every `POST /api/stores`, and no store without its first event.
fn create_store(
    conn: &mut Connection,
    record: &StoreRecord,
    at: Timestamp,
    kind: &EventKind,
) -> Result<StoreEvent> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .during("begin store creation")?;
    insert_store_in(&tx, record)?;
    let event = append_event_in(&tx, &record.id, at, kind)?;
    tx.commit().during("commit store creation")?;
    Ok(event)
}

fn insert_store_in(tx: &Transaction<'_>, record: &StoreRecord) -> Result<()> {
    let spec = serde_json::to_string(&record.spec).map_err(|source| Error::Encode {
        what: "store spec",
        source,
    })?;
    let storage_gib = record.storage_gib();

    let existing: Option<String> = tx
        .prepare_cached("SELECT status FROM stores WHERE id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([record.id.as_str()], |row| row.get(0))
                .optional()
        })
        .during("look up store")?;
    if existing.is_some_and(|status| status != StoreStatus::Deleted.as_str()) {
        return Err(Error::StoreExists {
            id: record.id.clone(),
        });
    }

    let quota = tx
        .prepare_cached("SELECT max_stores, max_storage_gib FROM users WHERE username = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([&record.owner], |row| {
                Ok(Quota {
                    max_stores: row.get(0)?,
                    max_storage_gib: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                })
            })
            .optional()
        })
        .during("read quota")?;
    // Quotas belong to users; an owner who is not one may hold nothing.
    let Some(quota) = quota else {
        return Err(Error::QuotaExceeded {
            owner: record.owner.clone(),
            message: format!("{:?} is not a user, so has no quota", record.owner),
        });
    };
    if let Some(message) = usage_of(tx, &record.owner)?.exceeds(&quota, storage_gib) {
        return Err(Error::QuotaExceeded {
            owner: record.owner.clone(),
            message,
        });
    }

    // A deleted record under the same id gives way to the new store, its events with it.
    tx.prepare_cached("DELETE FROM stores WHERE id = ?1")
        .and_then(|mut stmt| stmt.execute([record.id.as_str()]))
        .during("replace deleted store")?;
    for host in record.spec.ingress.hosts() {
        if host_taken(tx, &record.id, host)? {
            return Err(Error::DomainRefused(RepositoryError::DomainTaken {
                host: host.to_owned(),
            }));
        }
    }
    tx.prepare_cached(
        "INSERT INTO stores (id, owner, name, status, reason, host, storage_gib, blueprint, \
         spec, created_at, updated_at, namespace_uid, sealed_inputs) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            record.id.as_str(),
            record.owner,
            record.name,
            record.status.as_str(),
            record.reason,
            record.spec.ingress.host,
            i64::try_from(storage_gib).unwrap_or(i64::MAX),
            record.blueprint,
            spec,
            record.created_at.0,
            record.updated_at.0,
            record.namespace_uid,
            record.sealed_inputs,
        ])
    })
    .during("insert store")?;
    for host in &record.spec.ingress.domains {
        insert_domain(tx, &record.id, host, record.created_at)?;
    }
    Ok(())
}

/// Whether a store other than `id` that is not deleted answers on `host`: as a custom
/// domain (the rows of deleted stores are gone) or as its own host.
fn host_taken(tx: &Transaction<'_>, id: &StoreId, host: &str) -> Result<bool> {
    tx.prepare_cached(
        "SELECT 1 FROM store_domains d JOIN stores s ON s.id = d.store_id \
         WHERE d.host = ?1 AND d.store_id != ?2 AND s.status != 'deleted' \
         UNION ALL SELECT 1 FROM stores WHERE host = ?1 AND id != ?2 AND status != 'deleted'",
    )
    .and_then(|mut stmt| stmt.exists(params![host, id.as_str()]))
    .during("look up domain")
}

/// Records that `id` holds `host`; the primary key refuses a host another store holds,
/// whatever was checked before.
fn insert_domain(tx: &Transaction<'_>, id: &StoreId, host: &str, at: Timestamp) -> Result<()> {
    // A store marked deleted releases its rows in a statement of its own; rows a crash
    // left behind in between hold nothing.
    tx.prepare_cached(
        "DELETE FROM store_domains WHERE host = ?1 \
         AND store_id IN (SELECT id FROM stores WHERE status = 'deleted')",
    )
    .and_then(|mut stmt| stmt.execute([host]))
    .during("release domain of deleted store")?;
    let inserted = tx
        .prepare_cached("INSERT INTO store_domains (host, store_id, added_at) VALUES (?1, ?2, ?3)")
        .and_then(|mut stmt| stmt.execute(params![host, id.as_str(), at.0]));
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
            Err(Error::DomainRefused(RepositoryError::DomainTaken {
                host: host.to_owned(),
            }))
        }
        Err(source) => Err(Error::Query {
            operation: "record domain",
            source,
        }),
    }
}

/// Adds or removes a custom domain of a store and narrates it, in one `BEGIN IMMEDIATE`
/// transaction (see [`StoreRepository::change_domain`]).
fn change_domain(
    conn: &mut Connection,
    id: &StoreId,
    change: &DomainChange,
    allowed: &[StoreStatus],
    at: Timestamp,
    kind: &EventKind,
) -> Result<(StoreRecord, Option<StoreEvent>)> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .during("begin domain change")?;
    let refused = |e: RepositoryError| Err(Error::DomainRefused(e));
    let mut record = match find_store(&tx, id)? {
        Some(record) if record.status != StoreStatus::Deleted => record,
        _ => return Err(Error::StoreNotFound { id: id.clone() }),
    };
    if !allowed.contains(&record.status) {
        return refused(RepositoryError::WrongStatus {
            id: id.clone(),
            status: record.status,
        });
    }
    let host = change.host().to_owned();
    let domains = &mut record.spec.ingress.domains;
    match change {
        DomainChange::Add(_) if domains.contains(&host) => return Ok((record, None)),
        DomainChange::Add(_) => {
            if record.spec.ingress.host == host || host_taken(&tx, id, &host)? {
                return refused(RepositoryError::DomainTaken { host });
            }
            if domains.len() >= MAX_DOMAINS {
                return refused(RepositoryError::DomainLimit {
                    id: id.clone(),
                    max: MAX_DOMAINS,
                });
            }
            insert_domain(&tx, id, &host, at)?;
            domains.push(host);
        }
        DomainChange::Remove(_) => {
            let Some(position) = domains.iter().position(|d| *d == host) else {
                return refused(RepositoryError::DomainNotFound {
                    id: id.clone(),
                    host,
                });
            };
            domains.remove(position);
            tx.prepare_cached("DELETE FROM store_domains WHERE host = ?1 AND store_id = ?2")
                .and_then(|mut stmt| stmt.execute(params![host, id.as_str()]))
                .during("release domain")?;
        }
    }
    let spec = serde_json::to_string(&record.spec).map_err(|source| Error::Encode {
        what: "store spec",
        source,
    })?;
    record.updated_at = Timestamp::now();
    tx.prepare_cached("UPDATE stores SET spec = ?2, updated_at = ?3 WHERE id = ?1")
        .and_then(|mut stmt| stmt.execute(params![id.as_str(), spec, record.updated_at.0]))
        .during("update store spec")?;
    let event = append_event_in(&tx, id, at, kind)?;
    tx.commit().during("commit domain change")?;
    Ok((record, Some(event)))
}

fn append_event(
    conn: &mut Connection,
    id: &StoreId,
    at: Timestamp,
    kind: &EventKind,
) -> Result<StoreEvent> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .during("begin event append")?;
    let event = append_event_in(&tx, id, at, kind)?;
    tx.commit().during("commit event append")?;
    Ok(event)
}

fn append_event_in(
    tx: &Transaction<'_>,
    id: &StoreId,
    at: Timestamp,
    kind: &EventKind,
) -> Result<StoreEvent> {
    let body = serde_json::to_value(kind).map_err(|source| Error::Encode {
        what: "store event",
        source,
    })?;
    let tag = body
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or_default()
        .to_owned();
    let exists = tx
        .prepare_cached("SELECT 1 FROM stores WHERE id = ?1")
        .and_then(|mut stmt| stmt.exists([id.as_str()]))
        .during("look up store")?;
    if !exists {
        return Err(Error::StoreNotFound { id: id.clone() });
    }
    let seq: i64 = tx
        .prepare_cached(
            "INSERT INTO store_events (store_id, seq, at, kind, body) \
             SELECT ?1, coalesce(max(seq), 0) + 1, ?2, ?3, ?4 \
             FROM store_events WHERE store_id = ?1 RETURNING seq",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![id.as_str(), at.0, tag, body.to_string()], |row| {
                row.get(0)
            })
        })
        .during("append event")?;
    tx.prepare_cached("INSERT INTO event_feed (store_id, seq) VALUES (?1, ?2)")
        .and_then(|mut stmt| stmt.execute(params![id.as_str(), seq]))
        .during("append event to the feed")?;
    Ok(StoreEvent {
        seq,
        store_id: id.clone(),
        at,
        kind: kind.clone(),
    })
}

fn events_after(conn: &Connection, id: &StoreId, after_seq: i64) -> Result<Vec<StoreEvent>> {
    let rows: Vec<(i64, i64, String)> = conn
        .prepare_cached(
            "SELECT seq, at, body FROM store_events WHERE store_id = ?1 AND seq > ?2 \
             ORDER BY seq",
        )
        .and_then(|mut stmt| {
            stmt.query_map(params![id.as_str(), after_seq], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect()
        })
        .during("read events")?;
    rows.into_iter()
        .map(|(seq, at, body)| {
            Ok(StoreEvent {
                seq,
                store_id: id.clone(),
                at: Timestamp(at),
                kind: serde_json::from_str(&body).map_err(|e| Error::Corrupt {
                    what: "store event",
                    message: e.to_string(),
                })?,
            })
        })
        .collect()
}

fn feed(conn: &Connection, after: i64, limit: usize) -> Result<Vec<(i64, StoreEvent)>> {
    let rows: Vec<(i64, String, i64, i64, String)> = conn
        .prepare_cached(
            "SELECT f.pos, e.store_id, e.seq, e.at, e.body FROM event_feed f \
             JOIN store_events e ON e.store_id = f.store_id AND e.seq = f.seq \
             WHERE f.pos > ?1 ORDER BY f.pos LIMIT ?2",
        )
        .and_then(|mut stmt| {
            stmt.query_map(
                params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                },
            )?
            .collect()
        })
        .during("read the event feed")?;
    let corrupt = |message: String| Error::Corrupt {
        what: "store event",
        message,
    };
    rows.into_iter()
        .map(|(pos, store_id, seq, at, body)| {
            Ok((
                pos,
                StoreEvent {
                    seq,
                    store_id: StoreId::new(store_id).map_err(|e| corrupt(e.to_string()))?,
                    at: Timestamp(at),
                    kind: serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))?,
                },
            ))
        })
        .collect()
}

fn list_stores(conn: &Connection, filter: &StoreFilter) -> Result<Vec<StoreRecord>> {
    let rows: Vec<StoreRow> = conn
        .prepare_cached(&format!(
            "SELECT {STORE_COLUMNS} FROM stores WHERE (?1 IS NULL OR owner = ?1) \
             AND (?2 OR status != 'deleted') ORDER BY pos"
        ))
        .and_then(|mut stmt| {
            stmt.query_map(
                params![filter.owner, filter.include_deleted],
                StoreRow::read,
            )?
            .collect()
        })
        .during("list stores")?;
    rows.into_iter().map(StoreRow::decode).collect()
}

/// The stores passing `filter` that come after position `after` in `order`, at most `limit`
/// of them, and whether more follow (one more row is read to know).
fn list_stores_page(
    conn: &Connection,
    filter: &StoreFilter,
    after: Option<i64>,
    limit: usize,
    order: StoreOrder,
) -> Result<StorePage> {
    let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    let (after, beyond) = match order {
        StoreOrder::OldestFirst => (after.unwrap_or(0), "pos > ?3 ORDER BY pos ASC"),
        StoreOrder::NewestFirst => (after.unwrap_or(i64::MAX), "pos < ?3 ORDER BY pos DESC"),
    };
    // Two statements, not `(?1 IS NULL OR owner = ?1)`: with that condition SQLite cannot
    // use `stores_owner_page`, and one owner's page walked every store.
    let owner = if filter.owner.is_some() {
        "owner = ?1"
    } else {
        "?1 IS NULL"
    };
    let rows: Vec<(i64, StoreRow)> = conn
        .prepare_cached(&format!(
            "SELECT pos, {STORE_COLUMNS} FROM stores WHERE {owner} \
             AND (?2 OR status != 'deleted') AND {beyond} LIMIT ?4"
        ))
        .and_then(|mut stmt| {
            stmt.query_map(
                params![filter.owner, filter.include_deleted, after, fetch],
                |row| Ok((row.get(0)?, StoreRow::read_from(row, 1)?)),
            )?
            .collect()
        })
        .during("list a page of stores")?;
    let more = rows.len() > limit;
    let mut stores = Vec::with_capacity(limit.min(rows.len()));
    let mut last = None;
    for (pos, row) in rows.into_iter().take(limit) {
        last = Some(pos);
        stores.push(row.decode()?);
    }
    Ok(StorePage {
        stores,
        next: if more { last.map(StoreCursor) } else { None },
    })
}

/// What a deleted store keeps for the audit trail: its spec without the products (up to
/// 512 KiB of them), nothing sealed. Without this, a loop of create and delete within a
/// quota would grow the database by a whole product list per turn.
const COMPACT_DELETED: &str = "UPDATE stores SET spec = json_set(spec, '$.products', json('[]')), \
     sealed_inputs = NULL WHERE id = ?1 AND status = 'deleted'";

fn set_status(
    conn: &Connection,
    id: &StoreId,
    status: StoreStatus,
    reason: Option<&str>,
) -> Result<StoreRecord> {
    // Compare-and-set: only from a status that may become `status`, in one statement.
    let allowed: Vec<&str> = StoreStatus::predecessors(status)
        .into_iter()
        .map(StoreStatus::as_str)
        .collect();
    let allowed = serde_json::to_string(&allowed).unwrap_or_else(|_| "[]".to_owned());
    let updated = conn
        .prepare_cached(&format!(
            "UPDATE stores SET status = ?2, reason = ?3, updated_at = ?4 \
             WHERE id = ?1 AND status IN (SELECT value FROM json_each(?5)) \
             RETURNING {STORE_COLUMNS}"
        ))
        .and_then(|mut stmt| {
            stmt.query_row(
                params![
                    id.as_str(),
                    status.as_str(),
                    reason,
                    Timestamp::now().0,
                    allowed
                ],
                StoreRow::read,
            )
            .optional()
        })
        .during("set store status")?;
    match updated {
        Some(row) if status == StoreStatus::Deleted => {
            conn.prepare_cached(COMPACT_DELETED)
                .and_then(|mut stmt| stmt.execute([id.as_str()]))
                .during("compact deleted store")?;
            // Its namespace, Ingress included, is gone: its domains are free for others.
            conn.prepare_cached("DELETE FROM store_domains WHERE store_id = ?1")
                .and_then(|mut stmt| stmt.execute([id.as_str()]))
                .during("release domains of deleted store")?;
            let mut record = row.decode()?;
            record.spec.products.clear();
            record.sealed_inputs = None;
            Ok(record)
        }
        Some(row) => row.decode(),
        None => match find_store(conn, id)? {
            Some(current) => Err(Error::InvalidTransition {
                id: id.clone(),
                from: current.status,
                to: status,
            }),
            None => Err(Error::StoreNotFound { id: id.clone() }),
        },
    }
}

/// Records a changed spec and moves the store to `status`, in one `BEGIN IMMEDIATE`
/// transaction: the status must allow it (compare-and-set, as [`set_status`]) and the
/// owner's storage quota must hold the store's new storage.
fn change_spec(
    conn: &mut Connection,
    id: &StoreId,
    spec: &StoreSpec,
    status: StoreStatus,
    reason: Option<&str>,
) -> Result<StoreRecord> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .during("begin store change")?;
    let Some(current) = find_store(&tx, id)? else {
        return Err(Error::StoreNotFound { id: id.clone() });
    };
    if !current.status.can_become(status) {
        return Err(Error::InvalidTransition {
            id: id.clone(),
            from: current.status,
            to: status,
        });
    }
    // Custom domains change only through `change_domain`, which keeps `store_domains` in
    // step: the store's current ones stay, whatever the changed spec was read with.
    let mut spec = spec.clone();
    spec.ingress.domains = current.spec.ingress.domains.clone();
    let spec = &spec;
    let storage_gib = spec.storage_gib();
    let quota = tx
        .prepare_cached("SELECT max_stores, max_storage_gib FROM users WHERE username = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([&current.owner], |row| {
                Ok(Quota {
                    max_stores: row.get(0)?,
                    max_storage_gib: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                })
            })
            .optional()
        })
        .during("read quota")?;
    if let Some(quota) = quota
        && let Some(message) = usage_of(&tx, &current.owner)?.exceeds_on_growth(
            &quota,
            current.storage_gib(),
            storage_gib,
        )
    {
        return Err(Error::QuotaExceeded {
            owner: current.owner.clone(),
            message,
        });
    }
    let text = serde_json::to_string(spec).map_err(|source| Error::Encode {
        what: "store spec",
        source,
    })?;
    let row = tx
        .prepare_cached(&format!(
            "UPDATE stores SET spec = ?2, storage_gib = ?3, status = ?4, reason = ?5, \
             updated_at = ?6 WHERE id = ?1 RETURNING {STORE_COLUMNS}"
        ))
        .and_then(|mut stmt| {
            stmt.query_row(
                params![
                    id.as_str(),
                    text,
                    i64::try_from(storage_gib).unwrap_or(i64::MAX),
                    status.as_str(),
                    reason,
                    Timestamp::now().0,
                ],
                StoreRow::read,
            )
        })
        .during("change store")?;
    tx.commit().during("commit store change")?;
    row.decode()
}

/// Where a page of stores ends, for asking for the next one. Opaque to clients: its text
/// form (`Display`, `FromStr`) is what an API hands out and takes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreCursor(i64);

impl std::fmt::Display for StoreCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A cursor that is not one this crate handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a store cursor: {0:?}")]
pub struct InvalidCursor(pub String);

impl std::str::FromStr for StoreCursor {
    type Err = InvalidCursor;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        // Digits only: no sign, no spaces, so one position has one spelling.
        if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidCursor(text.to_owned()));
        }
        text.parse::<i64>()
            .map(StoreCursor)
            .map_err(|_| InvalidCursor(text.to_owned()))
    }
}

/// The order of a store listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StoreOrder {
    /// In the order they were created (as [`StoreRepository::list_stores`] lists them).
    #[default]
    OldestFirst,
    /// The most recently created first.
    NewestFirst,
}

/// One page of a store listing.
#[derive(Debug, Clone)]
pub struct StorePage {
    /// The stores, oldest first.
    pub stores: Vec<StoreRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<StoreCursor>,
}

impl Database {
    /// Removes the records of stores deleted before `before`, with their events (and their
    /// entries in the event feed), and returns how many stores went. Stores not yet
    /// deleted are never touched.
    pub async fn purge_deleted_stores(&self, before: Timestamp) -> Result<usize> {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .during("purge deleted stores")?;
            // The feed refers to events and events to stores, each `ON DELETE CASCADE`.
            let purged = tx
                .execute(
                    "DELETE FROM stores WHERE status = 'deleted' AND updated_at < ?1",
                    [before.0],
                )
                .during("purge deleted stores")?;
            tx.commit().during("purge deleted stores")?;
            Ok(purged)
        })
        .await
    }

    /// Stores passing `filter` in `order`, a page at a time: at most `limit` (at least one)
    /// of those after `after` (from the start when `None`).
    ///
    /// Pages never repeat or skip a store that exists throughout. A store created while a
    /// client pages through the listing appears at the end oldest first, and at the start
    /// (on a first page asked for again) newest first; one deleted meanwhile simply is not
    /// there.
    pub async fn list_stores_page(
        &self,
        filter: &StoreFilter,
        after: Option<StoreCursor>,
        limit: usize,
        order: StoreOrder,
    ) -> Result<StorePage> {
        let filter = filter.clone();
        let after = after.map(|c| c.0);
        let limit = limit.max(1);
        self.read(move |conn| list_stores_page(conn, &filter, after, limit, order))
            .await
    }

    /// Every custom domain held by a store that is not deleted, with its store, in one query
    /// that reads no specs: what a server needs to know which store a request's host is
    /// for.
    pub async fn store_domains(&self) -> Result<Vec<(String, StoreId)>> {
        self.read(|conn| {
            let rows: Vec<(String, String)> = conn
                .prepare_cached(
                    "SELECT d.host, d.store_id FROM store_domains d \
                     JOIN stores s ON s.id = d.store_id WHERE s.status != 'deleted'",
                )
                .and_then(|mut stmt| {
                    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                        .collect()
                })
                .during("list store domains")?;
            rows.into_iter()
                .map(|(host, id)| {
                    let id = StoreId::new(id).map_err(|e| Error::Corrupt {
                        what: "store id",
                        message: e.to_string(),
                    })?;
                    Ok((host, id))
                })
                .collect()
        })
        .await
    }

    /// How many stores are in each status (statuses without stores are left out), in one
    /// query that reads no specs: for a service's figures.
    pub async fn count_stores_by_status(&self) -> Result<Vec<(StoreStatus, u64)>> {
        self.read(|conn| {
            let mut statement = conn
                .prepare_cached("SELECT status, COUNT(*) FROM stores GROUP BY status")
                .during("count stores")?;
            let rows = statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })
                .during("count stores")?;
            let mut counts = Vec::new();
            for row in rows {
                let (status, count) = row.during("count stores")?;
                if let Ok(status) = status.parse::<StoreStatus>() {
                    counts.push((status, u64::try_from(count).unwrap_or(0)));
                }
            }
            Ok(counts)
        })
        .await
    }
}

#[async_trait]
impl StoreRepository for Database {
    async fn insert_store(&self, record: &StoreRecord) -> Result<(), RepositoryError> {
        let record = record.clone();
        self.write(move |conn| insert_store(conn, &record))
            .await
            .map_err(|e| e.into_repository("insert store"))
    }

    async fn create_store(
        &self,
        record: &StoreRecord,
        at: Timestamp,
        kind: &EventKind,
    ) -> Result<StoreEvent, RepositoryError> {
        let (record, kind) = (record.clone(), kind.clone());
        self.write(move |conn| create_store(conn, &record, at, &kind))
            .await
            .map_err(|e| e.into_repository("create store"))
    }

    async fn get_store(&self, id: &StoreId) -> Result<Option<StoreRecord>, RepositoryError> {
        let id = id.clone();
        self.read(move |conn| find_store(conn, &id))
            .await
            .map_err(|e| e.into_repository("read store"))
    }

    async fn list_stores(&self, filter: &StoreFilter) -> Result<Vec<StoreRecord>, RepositoryError> {
        let filter = filter.clone();
        self.read(move |conn| list_stores(conn, &filter))
            .await
            .map_err(|e| e.into_repository("list stores"))
    }

    async fn set_status(
        &self,
        id: &StoreId,
        status: StoreStatus,
        reason: Option<&str>,
    ) -> Result<StoreRecord, RepositoryError> {
        let id = id.clone();
        let reason = reason.map(str::to_owned);
        self.write(move |conn| set_status(conn, &id, status, reason.as_deref()))
            .await
            .map_err(|e| e.into_repository("set store status"))
    }

    async fn change_spec(
        &self,
        id: &StoreId,
        spec: &StoreSpec,
        status: StoreStatus,
        reason: Option<&str>,
    ) -> Result<StoreRecord, RepositoryError> {
        let (id, spec) = (id.clone(), spec.clone());
        let reason = reason.map(str::to_owned);
        self.write(move |conn| change_spec(conn, &id, &spec, status, reason.as_deref()))
            .await
            .map_err(|e| e.into_repository("change store"))
    }

    async fn append_event(
        &self,
        id: &StoreId,
        at: Timestamp,
        kind: &EventKind,
    ) -> Result<StoreEvent, RepositoryError> {
        let id = id.clone();
        let kind = kind.clone();
        self.write(move |conn| append_event(conn, &id, at, &kind))
            .await
            .map_err(|e| e.into_repository("append store event"))
    }

    async fn events(
        &self,
        id: &StoreId,
        after_seq: i64,
    ) -> Result<Vec<StoreEvent>, RepositoryError> {
        let id = id.clone();
        self.read(move |conn| events_after(conn, &id, after_seq))
            .await
            .map_err(|e| e.into_repository("read store events"))
    }

    async fn change_domain(
        &self,
        id: &StoreId,
        change: &DomainChange,
        allowed: &[StoreStatus],
        at: Timestamp,
        event: &EventKind,
    ) -> Result<(StoreRecord, Option<StoreEvent>), RepositoryError> {
        let (id, change, allowed, event) =
            (id.clone(), change.clone(), allowed.to_vec(), event.clone());
        self.write(move |conn| change_domain(conn, &id, &change, &allowed, at, &event))
            .await
            .map_err(|e| e.into_repository("change store domain"))
    }

    async fn set_namespace_uid(&self, id: &StoreId, uid: &str) -> Result<(), RepositoryError> {
        let id = id.clone();
        let uid = uid.to_owned();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached("UPDATE stores SET namespace_uid = ?2 WHERE id = ?1")
                .and_then(|mut stmt| stmt.execute(params![id.as_str(), uid]))
                .during("record namespace uid")?;
            if changed == 0 {
                return Err(Error::StoreNotFound { id });
            }
            Ok(())
        })
        .await
        .map_err(|e| e.into_repository("record namespace uid"))
    }

    async fn clear_sealed_inputs(&self, id: &StoreId) -> Result<(), RepositoryError> {
        let id = id.clone();
        self.write(move |conn| {
            conn.prepare_cached("UPDATE stores SET sealed_inputs = NULL WHERE id = ?1")
                .and_then(|mut stmt| stmt.execute([id.as_str()]))
                .during("clear sealed inputs")
                .map(drop)
        })
        .await
        .map_err(|e| e.into_repository("clear sealed inputs"))
    }

    async fn feed(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, StoreEvent)>, RepositoryError> {
        self.read(move |conn| feed(conn, after, limit))
            .await
            .map_err(|e| e.into_repository("read the event feed"))
    }

    async fn feed_head(&self) -> Result<i64, RepositoryError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT coalesce(max(pos), 0) FROM event_feed")
                .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
                .during("read the feed head")
        })
        .await
        .map_err(|e| e.into_repository("read the feed head"))
    }

    fn backups(&self) -> Option<&dyn storefactory_core::backup::BackupRepository> {
        Some(self)
    }
}
