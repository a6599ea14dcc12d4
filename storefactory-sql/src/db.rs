//! The database handle: opening, connections, the blocking-thread bridge, settings, backup.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, config::DbConfig, params};
use storefactory_core::store::Timestamp;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::error::{Error, QueryContext, Result};
use crate::schema;

/// How long a statement waits for another process's write lock before failing with
/// "database is locked". Within one process writes queue for the writer thread and never
/// wait here.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections: at most this many reads run at once, each on a connection kept open
/// (with its prepared statements) for the next. More would only queue for the same cores,
/// each on a blocking thread of its own and a connection opened for it, which costs more
/// than the query; fewer would let one slow read (a page of 500 stores) hold up the rest.
const MAX_READERS: usize = 8;

/// Each reader's page cache, in KiB as SQLite's `cache_size` takes it (negative).
const READER_CACHE_KIB: i64 = -512;

/// A Storefactory database: one SQLite file holding users, stores, events, the audit log
/// and settings.
///
/// Cheap to clone (an [`Arc`] inside); clones share the connections. Every method runs its
/// SQLite work off the async runtime (reads on tokio's blocking thread pool, writes on the
/// database's writer thread), so callers must be inside a tokio runtime, and no runtime
/// worker ever blocks on the disk.
///
/// Writes go through one connection, run one after another by a thread of their own, so
/// concurrent writers of one process queue instead of failing with "database is locked";
/// reads use a small pool of their own connections and, thanks to WAL, never wait for
/// writers. Other processes (a CLI next to a server) are held off by SQLite's locks and a
/// busy timeout.
#[derive(Clone)]
pub struct Database {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    /// `None` for an in-memory database, which has only the writer connection.
    path: Option<PathBuf>,
    writer: Arc<Mutex<Connection>>,
    /// The writer thread's queue (see [`Database::write`]).
    writes: mpsc::Sender<WriteJob>,
    readers: Mutex<Vec<Connection>>,
    /// Admission to the readers ([`MAX_READERS`]).
    read_turns: Arc<Semaphore>,
    /// Bounds the Argon2 hashes and verifications running at once. Each one holds 19 MiB
    /// and a core for a good fraction of a second; unbounded, a burst of logins would take
    /// gigabytes of memory and every blocking thread, and SQLite calls would queue behind
    /// them.
    password_work: Arc<Semaphore>,
}

impl Database {
    /// Opens (creating if needed) the database file at `path` and brings its schema up to
    /// date.
    ///
    /// Fails with [`Error::NewerSchema`] for a file written by a newer Storefactory and
    /// with [`Error::ForeignDatabase`] for another application's SQLite file.
    pub async fn open(path: impl AsRef<Path>) -> Result<Database> {
        let path = path.as_ref().to_owned();
        blocking(move || {
            let open_error = |source| Error::Open {
                path: path.clone(),
                source,
            };
            // The file holds password hashes and store records: only its owner may read it.
            // SQLite gives the WAL and shared-memory files the mode of the database file.
            private_file(&path, false).map_err(|source| Error::Permissions {
                path: path.clone(),
                source,
            })?;
            let mut writer = Connection::open(&path).map_err(open_error)?;
            configure(&writer).map_err(open_error)?;
            // WAL lets readers go on while a writer writes, and is persistent in the file.
            let mode: String = writer
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                .map_err(open_error)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(Error::JournalMode { path, mode });
            }
            // In WAL mode NORMAL is durable against application crashes and only risks the
            // last transactions on power loss; it saves an fsync per commit.
            writer
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(open_error)?;
            // Files left by an older version, created under the umask, are tightened too.
            for suffix in ["-wal", "-shm"] {
                let mut side = path.clone().into_os_string();
                side.push(suffix);
                let side = PathBuf::from(side);
                if side.exists() {
                    private_file(&side, false).map_err(|source| Error::Permissions {
                        path: side.clone(),
                        source,
                    })?;
                }
            }
            schema::migrate(&mut writer, &path, schema::MIGRATIONS)?;
            Database::from_parts(Some(path), writer)
        })
        .await
    }

    /// A fresh database that lives in memory only, with the real schema and SQLite engine;
    /// for tests and throwaway tools. All calls share one connection.
    pub async fn open_in_memory() -> Result<Database> {
        blocking(|| {
            let path = PathBuf::from(":memory:");
            let open_error = |source| Error::Open {
                path: path.clone(),
                source,
            };
            let mut writer = Connection::open_in_memory().map_err(open_error)?;
            configure(&writer).map_err(open_error)?;
            schema::migrate(&mut writer, &path, schema::MIGRATIONS)?;
            Database::from_parts(None, writer)
        })
        .await
    }

    fn from_parts(path: Option<PathBuf>, writer: Connection) -> Result<Database> {
        let writer = Arc::new(Mutex::new(writer));
        let (writes, jobs) = mpsc::channel::<WriteJob>();
        {
            let writer = Arc::clone(&writer);
            // Ends when the last handle is dropped, which closes the queue.
            std::thread::Builder::new()
                .name("storefactory-db-writer".to_owned())
                .spawn(move || {
                    for job in jobs {
                        job(&mut lock_writer(&writer));
                    }
                })
                .map_err(|source| Error::WriterThread { source })?;
        }
        Ok(Database {
            inner: Arc::new(Inner {
                path,
                writer,
                writes,
                readers: Mutex::new(Vec::new()),
                read_turns: Arc::new(Semaphore::new(MAX_READERS)),
                password_work: Arc::new(Semaphore::new(password_work_permits())),
            }),
        })
    }

    /// The database file; `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Writes a consistent copy of the whole database to a new file at `dest`, while the
    /// database stays in use (SQLite's `VACUUM INTO`). The copy is compact and can be
    /// opened with [`Database::open`]. Fails if `dest` already exists and is not empty.
    pub async fn backup_to(&self, dest: impl AsRef<Path>) -> Result<()> {
        let dest = dest.as_ref().to_owned();
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let backup_error = |source| Error::Backup {
                path: dest.clone(),
                source,
            };
            let Some(text) = dest.to_str() else {
                return Err(backup_error(rusqlite::Error::InvalidPath(dest.clone())));
            };
            // Created (empty, which `VACUUM INTO` accepts) with mode 0600 before SQLite
            // writes the copy into it: the copy holds what the database holds.
            private_file(&dest, true).map_err(|source| Error::Permissions {
                path: dest.clone(),
                source,
            })?;
            let vacuum = |conn: &Connection| conn.execute("VACUUM INTO ?1", [text]);
            match &inner.path {
                // A connection of its own: the copy holds a read transaction for as long as
                // it takes, and must not keep the shared connections from other work.
                Some(path) => {
                    let conn = Connection::open(path).map_err(backup_error)?;
                    configure(&conn).map_err(backup_error)?;
                    vacuum(&conn).map_err(backup_error)?;
                }
                None => {
                    vacuum(&inner.lock_writer()).map_err(backup_error)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// The value of setting `key`, if it was ever set.
    pub async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")
                .and_then(|mut stmt| stmt.query_row([&key], |row| row.get(0)).optional())
                .during("read setting")
        })
        .await
    }

    /// Sets `key` to `value`, replacing any previous value.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                 updated_at = excluded.updated_at",
                params![key, value, Timestamp::now().0],
            )
            .during("write setting")?;
            Ok(())
        })
        .await
    }

    /// The value of setting `key`, storing `value` first if the key has none.
    ///
    /// Atomic: when several processes start at once and each proposes a freshly generated
    /// value (a token-signing key, say), all of them get the one value that was stored first.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |conn| {
            conn.query_row(
                "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (key) DO UPDATE SET key = key RETURNING value",
                params![key, value, Timestamp::now().0],
                |row| row.get(0),
            )
            .during("write setting")
        })
        .await
    }

    /// Waits, without blocking a thread, until a password hash or verification may start.
    /// The permit must live until the Argon2 work is done, so it is moved into the blocking
    /// closure: a caller that gives up waiting does not free it early.
    pub(crate) async fn password_permit(&self) -> Result<OwnedSemaphorePermit> {
        Arc::clone(&self.inner.password_work)
            .acquire_owned()
            .await
            // The semaphore is never closed; treat it like a runtime going away if it were.
            .map_err(|_| Error::Shutdown)
    }

    /// Gives back the memory SQLite holds for speed: closes the idle read connections (each
    /// keeps its page and statement caches; the next read opens one again) and empties the
    /// write connection's page cache. For a server that has been idle a while.
    pub async fn release_memory(&self) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let idle = std::mem::take(&mut *lock(&inner.readers));
            drop(idle);
            inner
                .lock_writer()
                .execute_batch("PRAGMA shrink_memory")
                .during("release memory")
        })
        .await
    }

    /// Runs `f` with a read connection on the blocking thread pool.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        // Held until the work is done, even if the caller stops waiting for it.
        let turn = Arc::clone(&self.inner.read_turns)
            .acquire_owned()
            .await
            .map_err(|_| Error::Shutdown)?;
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let _turn = turn;
            inner.with_reader(f)
        })
        .await
    }

    /// Runs `f` with the write connection on the writer thread, after the writes queued
    /// before it; `f` runs to its end even if the caller stops waiting for it. A panic
    /// inside resumes in the caller.
    ///
    /// One thread that runs queued writes back to back, rather than a blocking-pool thread
    /// woken for each: under a burst of store creations, handing the connection from one
    /// thread to the next took several times as long as the writes themselves (a quarter
    /// of a millisecond each), and every creation waited for all those before it.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (done, outcome) = oneshot::channel();
        let job: WriteJob = Box::new(move |conn| {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
            let _ = done.send(result);
        });
        self.inner.writes.send(job).map_err(|_| Error::Shutdown)?;
        match outcome.await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(Error::Shutdown),
        }
    }
}

/// A write for the writer thread: runs with the connection and sends its outcome back.
type WriteJob = Box<dyn FnOnce(&mut Connection) + Send>;

/// The write connection, from a caller that may not be alone.
fn lock_writer(writer: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock unwinds through rusqlite's `Transaction`, whose drop
    // rolls back; the connection itself stays usable.
    let conn = writer.lock().unwrap_or_else(|p| p.into_inner());
    if !conn.is_autocommit() {
        // Belt and braces: never let one caller see another's unfinished transaction.
        let _ = conn.execute_batch("ROLLBACK");
    }
    conn
}

impl Inner {
    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, Connection> {
        lock_writer(&self.writer)
    }

    pub(crate) fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let Some(path) = &self.path else {
            return f(&self.lock_writer());
        };
        let idle = lock(&self.readers).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(path).map_err(|source| Error::Open {
                path: path.clone(),
                source,
            })?,
        };
        let result = f(&conn);
        let mut idle = lock(&self.readers);
        if idle.len() < MAX_READERS {
            idle.push(conn);
        }
        result
    }
}

/// One Argon2 computation per core keeps the cores busy without queueing more memory and
/// threads than they can work off; at least two, so that one slow login cannot hold up all
/// others on a single-core machine.
fn password_work_permits() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Creates `path` with mode 0600 if it does not exist, or sets an existing file's mode to
/// 0600. With `must_be_empty`, an existing file that is not empty is left alone (SQLite
/// then refuses to write over it). An existing file this process may write but not
/// `chmod` (another owner) keeps its mode: refusing to start over it would help nobody.
fn private_file(path: &Path, must_be_empty: bool) -> std::io::Result<()> {
    let existed = path.exists();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    if must_be_empty && file.metadata()?.len() > 0 {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match file.set_permissions(std::fs::Permissions::from_mode(0o600)) {
            Err(error) if existed && error.kind() == std::io::ErrorKind::PermissionDenied => {}
            other => other?,
        }
    }
    Ok(())
}

/// Settings every connection needs.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The query planner stability guarantee: a statement keeps the plan it was prepared
    // with. Without it SQLite compiles a cached statement again whenever the value bound
    // to a `LIMIT ?` or an `(?n OR ...)` term changes, which every page of stores did: a
    // profile of the listing found a fifth of its time in SQLite's parser.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.pragma_update(None, "foreign_keys", true)
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    configure(&conn)?;
    // Reads must stay reads: a write slipping through here would bypass the writer mutex.
    conn.pragma_update(None, "query_only", true)?;
    // A reader's page cache is emptied whenever another connection has written, which the
    // writer does all the time while stores provision: SQLite's default of 2 MiB per reader
    // would hold memory for little gain (the pages come back from the OS's cache).
    conn.pragma_update(None, "cache_size", READER_CACHE_KIB)?;
    Ok(conn)
}

/// Runs blocking work on tokio's blocking pool; a panic inside resumes in the caller.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(_) => Err(Error::Shutdown),
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;

    #[tokio::test]
    async fn a_write_that_panics_panics_in_its_caller_and_the_next_writes_still_run() {
        let db = Database::open_in_memory().await.unwrap();
        db.set_setting("before", "1").await.unwrap();
        let failing = db.clone();
        let panicked = tokio::spawn(async move {
            failing
                .write(|conn| -> Result<()> {
                    conn.execute_batch("BEGIN; INSERT INTO settings (key, value, updated_at) VALUES ('half', 'done', 0);")
                        .unwrap();
                    panic!("a bug in a write")
                })
                .await
        })
        .await
        .unwrap_err();
        assert!(panicked.is_panic());
        // The writer thread lives on, and the half-done transaction was rolled back.
        db.set_setting("after", "2").await.unwrap();
        assert_eq!(
            db.get_setting("before").await.unwrap().as_deref(),
            Some("1")
        );
        assert_eq!(db.get_setting("after").await.unwrap().as_deref(), Some("2"));
        assert_eq!(db.get_setting("half").await.unwrap(), None);
    }

    #[test]
    fn a_cached_statement_is_not_compiled_again_for_new_values() {
        let conn = Connection::open_in_memory().unwrap();
        configure(&conn).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (pos INTEGER PRIMARY KEY, owner TEXT, status TEXT); \
             CREATE INDEX t_owner ON t (owner, pos, status); \
             INSERT INTO t (owner, status) VALUES ('a', 'ready'), ('b', 'deleted'), ('a', 'ready');",
        )
        .unwrap();
        let sql = "SELECT pos FROM t WHERE owner = ?1 AND (?2 OR status != 'deleted') \
                   AND pos > ?3 ORDER BY pos LIMIT ?4";
        for (owner, deleted, after, limit) in
            [("a", false, 0, 1), ("b", true, 0, 5), ("a", false, 1, 2)]
        {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            let rows: Vec<i64> = stmt
                .query_map(params![owner, deleted, after, limit], |row| row.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(!rows.is_empty());
        }
        let stmt = conn.prepare_cached(sql).unwrap();
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
    }
}
