//! The audit log: who did what, to what, from where, and when.

use std::net::IpAddr;

use rusqlite::{Row, params};
use serde::{Deserialize, Serialize};
use storefactory_core::store::Timestamp;

use crate::db::Database;
use crate::error::{Error, QueryContext, Result};

/// An entry to be added to the audit log; see [`Database::record_audit`].
///
/// ```
/// # use storefactory_sql::AuditRecord;
/// let record = AuditRecord::new("store.delete")
///     .actor("alice")
///     .target("ab12cd34")
///     .client_addr("192.0.2.7".parse().unwrap());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Who did it: a username, or `None` for the system itself.
    pub actor: Option<String>,
    /// What was done, a short dotted name chosen by the caller, e.g. `login`,
    /// `login.failed`, `store.create`, `store.delete`, `user.create`, `user.quota`.
    pub action: String,
    /// What it was done to: a store id, a username, ...
    pub target: Option<String>,
    /// Anything else worth keeping, for a person. Never a secret.
    pub detail: Option<String>,
    /// The address the request came from.
    pub client_addr: Option<IpAddr>,
}

impl AuditRecord {
    /// A record of `action` with nothing else filled in.
    pub fn new(action: impl Into<String>) -> Self {
        AuditRecord {
            actor: None,
            action: action.into(),
            target: None,
            detail: None,
            client_addr: None,
        }
    }

    /// Sets who did it.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Sets what it was done to.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Sets the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the client address.
    pub fn client_addr(mut self, addr: IpAddr) -> Self {
        self.client_addr = Some(addr);
        self
    }
}

/// An entry of the audit log as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log; later entries have larger ids.
    pub id: i64,
    /// When it was recorded.
    pub at: Timestamp,
    /// Who did it; `None` for the system.
    pub actor: Option<String>,
    /// What was done.
    pub action: String,
    /// What it was done to.
    pub target: Option<String>,
    /// Anything else worth keeping.
    pub detail: Option<String>,
    /// The address the request came from.
    pub client_addr: Option<IpAddr>,
}

/// Which audit entries [`Database::audit_log`] returns. The default is all of them,
/// oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only entries by this actor.
    pub actor: Option<String>,
    /// Only entries of this action.
    pub action: Option<String>,
    /// Only entries about this target.
    pub target: Option<String>,
    /// Only entries with a larger id (for paging forwards or following the log).
    pub after_id: Option<i64>,
    /// Only entries with a smaller id (for paging backwards).
    pub before_id: Option<i64>,
    /// At most this many entries, counted in the chosen order.
    pub limit: Option<u32>,
    /// Newest entries first instead of oldest first; with `limit`, the latest entries.
    pub newest_first: bool,
}

/// The query of [`Database::audit_log`] for `filter`, parameters `?1` to `?6` (actor, action,
/// target, after, before, limit). A condition is written only when its filter is set, and
/// an absent one as `?n IS NULL` to keep the numbering: with `(?1 IS NULL OR actor = ?1)`
/// SQLite can use neither `audit_log_actor` nor a range of ids, and every query of one
/// actor, or every page after an id, walked the whole log.
fn audit_query(filter: &AuditFilter) -> String {
    let condition = |set: bool, when: &'static str, absent: &'static str| {
        if set { when } else { absent }
    };
    format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {} AND {} AND {} AND {} AND {} \
         ORDER BY id {} LIMIT ?6",
        condition(filter.actor.is_some(), "actor = ?1", "?1 IS NULL"),
        condition(filter.action.is_some(), "action = ?2", "?2 IS NULL"),
        condition(filter.target.is_some(), "target = ?3", "?3 IS NULL"),
        condition(filter.after_id.is_some(), "id > ?4", "?4 IS NULL"),
        condition(filter.before_id.is_some(), "id < ?5", "?5 IS NULL"),
        if filter.newest_first { "DESC" } else { "ASC" },
    )
}

impl AuditFilter {
    /// Every entry by `actor`, oldest first.
    pub fn actor(actor: impl Into<String>) -> Self {
        AuditFilter {
            actor: Some(actor.into()),
            ..AuditFilter::default()
        }
    }
}

const AUDIT_COLUMNS: &str = "id, at, actor, action, target, detail, client_addr";

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<(AuditEntry, Option<String>)> {
    Ok((
        AuditEntry {
            id: row.get(0)?,
            at: Timestamp(row.get(1)?),
            actor: row.get(2)?,
            action: row.get(3)?,
            target: row.get(4)?,
            detail: row.get(5)?,
            client_addr: None,
        },
        row.get(6)?,
    ))
}

fn parse_addr((mut entry, addr): (AuditEntry, Option<String>)) -> Result<AuditEntry> {
    entry.client_addr = addr
        .map(|text| {
            text.parse().map_err(|_| Error::Corrupt {
                what: "client address",
                message: format!("{text:?} is not an IP address"),
            })
        })
        .transpose()?;
    Ok(entry)
}

impl Database {
    /// Appends `record` to the audit log, stamped with the current time, and returns it as
    /// stored.
    pub async fn record_audit(&self, record: AuditRecord) -> Result<AuditEntry> {
        self.write(move |conn| {
            let at = Timestamp::now();
            let addr = record.client_addr.map(|a| a.to_string());
            let id = conn
                .query_row(
                    "INSERT INTO audit_log (at, actor, action, target, detail, client_addr) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                    params![
                        at.0,
                        record.actor,
                        record.action,
                        record.target,
                        record.detail,
                        addr
                    ],
                    |row| row.get(0),
                )
                .during("record audit entry")?;
            Ok(AuditEntry {
                id,
                at,
                actor: record.actor,
                action: record.action,
                target: record.target,
                detail: record.detail,
                client_addr: record.client_addr,
            })
        })
        .await
    }

    /// Audit entries passing `filter`, in the order it asks for.
    pub async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let filter = filter.clone();
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(&audit_query(&filter))
                .and_then(|mut stmt| {
                    stmt.query_map(
                        params![
                            filter.actor,
                            filter.action,
                            filter.target,
                            filter.after_id,
                            filter.before_id,
                            // A negative LIMIT means no limit in SQLite.
                            filter.limit.map_or(-1, i64::from)
                        ],
                        entry_from_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .during("read audit log")?;
            rows.into_iter().map(parse_addr).collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{migrated, query_plan};

    fn plan(filter: &AuditFilter) -> String {
        let (_dir, conn) = migrated();
        query_plan(
            &conn,
            &audit_query(filter),
            rusqlite::params!["ann", "login", "t", 5_i64, 10_i64, 50_i64],
        )
    }

    #[test]
    fn one_actors_entries_and_pages_after_an_id_are_read_through_indexes() {
        let mut filter = AuditFilter::actor("ann");
        filter.newest_first = true;
        let by_actor = plan(&filter);
        assert!(by_actor.contains("audit_log_actor"), "{by_actor}");
        assert!(!by_actor.contains("TEMP B-TREE"), "{by_actor}");

        let after = AuditFilter {
            after_id: Some(5),
            ..AuditFilter::default()
        };
        let paged = plan(&after);
        assert!(paged.contains("rowid>?"), "{paged}");
    }
}
