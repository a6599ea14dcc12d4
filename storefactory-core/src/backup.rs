//! Backups of stores: their records, the port that keeps them, and the one-time tokens with
//! which a store's backup Job hands its archive to the platform.
//!
//! Why the platform keeps the archives (and not a volume in the store's namespace): a
//! backup must outlive its store and be restorable into another one (a clone, a store
//! re-created after its namespace was lost), and a Job cannot mount a volume of another
//! namespace. So a backup Job streams one archive per backup to the platform over HTTP,
//! authenticated by a random token that only that Job holds (the repository keeps only its
//! SHA-256), and the platform writes it to its own data volume.

use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{RepositoryError, ValidationError};
use crate::spec::StoreId;
use crate::store::Timestamp;

/// The id of a backup: 12 lowercase letters and digits, so that `backup-<id>` is a valid
/// object name and a file name without surprises.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

impl BackupId {
    /// Checks `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, ValidationError> {
        let id = id.into();
        let ok = (4..=32).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(BackupId(id))
        } else {
            Err(ValidationError::new(
                "backup",
                "a backup id is 4 to 32 lowercase letters and digits",
            ))
        }
    }

    /// A new random id.
    pub fn generate() -> Self {
        BackupId(crate::blueprint::generate_password(12).to_ascii_lowercase())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for BackupId {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        BackupId::new(value)
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> String {
        id.0
    }
}

impl FromStr for BackupId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BackupId::new(s)
    }
}

/// Who asked for a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    /// A person (or a program) asked for it.
    Manual,
    /// The schedule took it; the oldest scheduled ones are deleted beyond the kept count.
    Scheduled,
}

/// Where a backup is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupStatus {
    /// Its Job runs; the archive has not arrived.
    Pending,
    /// The archive arrived whole (its SHA-256 matched) and is kept.
    Completed,
    /// The Job failed, or finished without handing over an archive; the record says why.
    Failed,
}

macro_rules! names {
    ($ty:ident, $err:literal, $($variant:ident => $name:literal),+) => {
        impl $ty {
            /// The lowercase name used in the API and the database.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(ValidationError::new($err, format!("unknown value {s:?}"))),
                }
            }
        }
    };
}

/// Where a restore is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreStatus {
    /// It waits for its store to be ready (a clone being provisioned).
    Waiting,
    /// Its Job runs; the store is `restoring`.
    Running,
    /// The backup was restored.
    Completed,
    /// It failed; the record says why.
    Failed,
}

names!(BackupKind, "kind", Manual => "manual", Scheduled => "scheduled");
names!(RestoreStatus, "status", Waiting => "waiting", Running => "running", Completed => "completed", Failed => "failed");
names!(BackupStatus, "status", Pending => "pending", Completed => "completed", Failed => "failed");

/// A backup as the platform records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// Its id.
    pub id: BackupId,
    /// The store it is a backup of.
    pub store_id: StoreId,
    /// Who asked for it.
    pub kind: BackupKind,
    /// Where it is.
    pub status: BackupStatus,
    /// Size of the archive in bytes, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// SHA-256 of the archive (lowercase hex), once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// When it was asked for.
    pub created_at: Timestamp,
    /// When it completed or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The store's URL when it was taken (`http://host`): a restore into another store
    /// rewrites it to that store's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_url: Option<String>,
    /// SHA-256 of the one-time token of its upload (lowercase hex); never shown.
    #[serde(default, skip_serializing)]
    pub token_hash: Option<String>,
}

impl BackupRecord {
    /// A new pending backup of `store_id` whose upload is allowed with `token`.
    pub fn pending(store_id: StoreId, kind: BackupKind, token: &UploadToken) -> Self {
        BackupRecord {
            id: BackupId::generate(),
            store_id,
            kind,
            status: BackupStatus::Pending,
            size_bytes: None,
            sha256: None,
            created_at: Timestamp::now(),
            finished_at: None,
            error: None,
            site_url: None,
            token_hash: Some(token.hash()),
        }
    }

    /// Whether `token` is the one this backup's upload is allowed with (compared as hashes,
    /// in constant time).
    pub fn accepts(&self, token: &str) -> bool {
        let Some(expected) = &self.token_hash else {
            return false;
        };
        constant_time_eq(
            expected.as_bytes(),
            UploadToken(token.to_owned()).hash().as_bytes(),
        )
    }
}

/// A restore of a backup into a store (the backup's own store or another).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRecord {
    /// Its id (the same form as a backup's).
    pub id: BackupId,
    /// The store restored into.
    pub store_id: StoreId,
    /// The backup restored.
    pub backup_id: BackupId,
    /// Where it is.
    pub status: RestoreStatus,
    /// The site URL the backup's data was written for, when it is rewritten (a clone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_url: Option<String>,
    /// The URL it is rewritten to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_url: Option<String>,
    /// When it was asked for.
    pub created_at: Timestamp,
    /// When it completed or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// SHA-256 of the one-time token of its download, while it runs; never shown.
    #[serde(default, skip_serializing)]
    pub token_hash: Option<String>,
}

impl RestoreRecord {
    /// A new restore of `backup_id` into `store_id`, in `status`, with a URL rewrite when
    /// `urls` is given (old, new).
    pub fn new(
        store_id: StoreId,
        backup_id: BackupId,
        status: RestoreStatus,
        urls: Option<(String, String)>,
    ) -> Self {
        let (old_url, new_url) = urls.unzip();
        RestoreRecord {
            id: BackupId::generate(),
            store_id,
            backup_id,
            status,
            old_url,
            new_url,
            created_at: Timestamp::now(),
            finished_at: None,
            error: None,
            token_hash: None,
        }
    }

    /// Whether `token` is the one this running restore's download is allowed with.
    pub fn accepts(&self, token: &str) -> bool {
        self.status == RestoreStatus::Running
            && self.token_hash.as_ref().is_some_and(|expected| {
                constant_time_eq(
                    expected.as_bytes(),
                    UploadToken(token.to_owned()).hash().as_bytes(),
                )
            })
    }
}

/// A random token that lets one Job upload (or download) one archive. Only its SHA-256 is
/// recorded; the token itself lives in a Secret of the store's namespace for the Job's life.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadToken(String);

impl UploadToken {
    /// A new random token (48 letters and digits from the OS's CSPRNG).
    pub fn generate() -> Self {
        UploadToken(crate::blueprint::generate_password(48))
    }

    /// The token, for the Job's Secret.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its SHA-256, lowercase hex.
    pub fn hash(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }
}

impl fmt::Debug for UploadToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UploadToken(..)")
    }
}

/// A store's URL as a site URL: `scheme://host[:port]`, without the trailing slash that
/// [`crate::spec::StoreSpec::url`] has (what `rewrite-urls.php` takes).
pub fn site_url(spec: &crate::spec::StoreSpec) -> String {
    spec.url().trim_end_matches('/').to_owned()
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Compares without leaving a timing trace of where the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where store pods reach the platform to hand over (and fetch) archives: the base URL of
/// its internal endpoints (`http://storefactory.storefactory.svc:80`), and the namespace and
/// port the NetworkPolicy of a backup pod lets it reach. Written `url@namespace[:port]`,
/// e.g. `http://storefactory.storefactory.svc@storefactory:8080`. The port is the
/// platform pod's (a NetworkPolicy sees the port behind the Service); the URL's by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupEndpoint {
    /// Base URL, without a trailing slash.
    pub url: String,
    /// The platform's namespace.
    pub namespace: String,
    /// The port the platform's pods listen on.
    pub port: u16,
}

impl FromStr for BackupEndpoint {
    type Err = ValidationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |message: &str| ValidationError::new("backup_endpoint", message);
        let port_number = |text: &str| {
            text.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid("a port must be a number from 1 to 65535"))
        };
        let (url, target) = text
            .rsplit_once('@')
            .ok_or_else(|| invalid("must be <url>@<namespace>[:<port>]"))?;
        let (namespace, pod_port) = match target.split_once(':') {
            Some((namespace, port)) => (namespace, Some(port_number(port)?)),
            None => (target, None),
        };
        if !crate::spec::is_dns1123_label(namespace) {
            return Err(invalid("the namespace must be a DNS-1123 label"));
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| invalid("the URL must start with http://"))?;
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') || authority.is_empty() {
            return Err(invalid("the URL must be http://host[:port] without a path"));
        }
        let (host, url_port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, port_number(port)?),
            None => (authority, 80),
        };
        if !crate::spec::is_dns1123_subdomain(host) && host.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid("the host must be a DNS name or an IP address"));
        }
        Ok(BackupEndpoint {
            url: format!("http://{authority}"),
            namespace: namespace.to_owned(),
            port: pod_port.unwrap_or(url_port),
        })
    }
}

impl fmt::Display for BackupEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.url, self.namespace, self.port)
    }
}

/// Storage of backup records: the port the Provisioner's backups are built on. A
/// [`crate::port::StoreRepository`] that keeps backups returns itself from
/// [`crate::port::StoreRepository::backups`].
#[async_trait]
pub trait BackupRepository: Send + Sync + 'static {
    /// Records a new (pending) backup.
    async fn insert_backup(&self, record: &BackupRecord) -> Result<(), RepositoryError>;

    /// One backup.
    async fn get_backup(&self, id: &BackupId) -> Result<Option<BackupRecord>, RepositoryError>;

    /// The backups of a store, newest first.
    async fn list_backups(&self, store: &StoreId) -> Result<Vec<BackupRecord>, RepositoryError>;

    /// Pending backups of every store, oldest first.
    async fn pending_backups(&self) -> Result<Vec<BackupRecord>, RepositoryError>;

    /// Settles a pending backup as completed (with `size_bytes` and `sha256`) or failed
    /// (with `error`), and forgets its token. Returns the updated record, or `None` when it
    /// was not pending (already settled: the first settlement wins) or does not exist.
    async fn settle_backup(
        &self,
        id: &BackupId,
        outcome: BackupOutcome,
    ) -> Result<Option<BackupRecord>, RepositoryError>;

    /// Forgets a backup; `false` when there was none.
    async fn delete_backup(&self, id: &BackupId) -> Result<bool, RepositoryError>;

    /// Records a new restore.
    async fn insert_restore(&self, record: &RestoreRecord) -> Result<(), RepositoryError>;

    /// One restore.
    async fn get_restore(&self, id: &BackupId) -> Result<Option<RestoreRecord>, RepositoryError>;

    /// Restores that are waiting or running, oldest first.
    async fn open_restores(&self) -> Result<Vec<RestoreRecord>, RepositoryError>;

    /// Replaces a restore's status, token hash, error and finish time with those of
    /// `record`, if its status is still `from` (compare-and-set). Returns whether it did.
    async fn update_restore(
        &self,
        record: &RestoreRecord,
        from: RestoreStatus,
    ) -> Result<bool, RepositoryError>;
}

/// How a pending backup ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupOutcome {
    /// The archive arrived whole.
    Completed {
        /// Its size.
        size_bytes: u64,
        /// Its SHA-256, lowercase hex.
        sha256: String,
    },
    /// It did not; why.
    Failed(String),
}

impl BackupOutcome {
    /// Applies this outcome to a pending record at `at`.
    pub fn apply(self, record: &mut BackupRecord, at: Timestamp) {
        record.finished_at = Some(at);
        record.token_hash = None;
        match self {
            BackupOutcome::Completed { size_bytes, sha256 } => {
                record.status = BackupStatus::Completed;
                record.size_bytes = Some(size_bytes);
                record.sha256 = Some(sha256);
            }
            BackupOutcome::Failed(error) => {
                record.status = BackupStatus::Failed;
                record.error = Some(error);
            }
        }
    }
}

/// An upload's body as it arrives: chunks of bytes, or why the sender went away.
pub type UploadBody<'a> = Pin<Box<dyn futures::Stream<Item = Result<Vec<u8>, String>> + Send + 'a>>;

/// A kept archive's bytes as they are read back, chunk by chunk.
pub type ArchiveChunks = Pin<Box<dyn futures::Stream<Item = std::io::Result<Vec<u8>>> + Send>>;

/// Where the platform keeps backup archives: its data volume ([`ArchiveDir`]) or an
/// S3-compatible bucket (in `storefactory-http`). Whatever the store, an archive counts as
/// kept only once it arrived whole with the announced checksum, and it is never held whole
/// in memory.
#[async_trait]
pub trait ArchiveStore: fmt::Debug + Send + Sync {
    /// Keeps `body` as the archive of `id`: at most `max_bytes`, with SHA-256
    /// `expected_sha256`. Returns its size and checksum. Nothing is kept on failure.
    async fn receive(
        &self,
        id: &BackupId,
        body: UploadBody<'_>,
        max_bytes: u64,
        expected_sha256: &str,
    ) -> Result<(u64, String), ReceiveError>;

    /// The archive of `id` as a stream of chunks, with its size; `None` when there is none.
    async fn read(&self, id: &BackupId) -> std::io::Result<Option<(u64, ArchiveChunks)>>;

    /// Removes the archive of `id`; `false` when there was none (as far as the store tells).
    async fn remove(&self, id: &BackupId) -> std::io::Result<bool>;

    /// Checks at start-up that archives can be kept (a bucket is reachable with these
    /// credentials); a folder is created when the first archive arrives.
    async fn check(&self) -> std::io::Result<()> {
        Ok(())
    }
}

#[async_trait]
impl ArchiveStore for ArchiveDir {
    async fn receive(
        &self,
        id: &BackupId,
        body: UploadBody<'_>,
        max_bytes: u64,
        expected_sha256: &str,
    ) -> Result<(u64, String), ReceiveError> {
        ArchiveDir::receive(self, id, body, max_bytes, expected_sha256).await
    }

    async fn read(&self, id: &BackupId) -> std::io::Result<Option<(u64, ArchiveChunks)>> {
        Ok(ArchiveDir::read(self, id)
            .await?
            .map(|(size, chunks)| (size, Box::pin(chunks) as ArchiveChunks)))
    }

    async fn remove(&self, id: &BackupId) -> std::io::Result<bool> {
        ArchiveDir::remove(self, id).await
    }
}

/// The folder where the platform keeps backup archives, one file `<id>.tar` per backup.
/// An upload is written to `.partial-<id>` beside it, synced, and renamed into place only
/// once it is whole and its checksum matches, so an archive that exists is complete; it is
/// streamed to disk, never held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveDir {
    path: PathBuf,
}

/// Why an upload was not kept.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// It was larger than allowed.
    #[error("the archive is larger than the {max_bytes} bytes allowed")]
    TooLarge {
        /// The limit.
        max_bytes: u64,
    },
    /// What arrived does not have the checksum the sender announced.
    #[error("the archive's SHA-256 is {actual}, not the announced {expected}")]
    Checksum {
        /// Announced.
        expected: String,
        /// Received.
        actual: String,
    },
    /// The body could not be read to its end (the sender went away).
    #[error("the upload was interrupted: {0}")]
    Body(String),
    /// The platform's disk failed.
    #[error("cannot write the archive")]
    Io(#[from] std::io::Error),
    /// The archive store (a bucket) refused or could not be reached; the reason names
    /// neither credentials nor signatures.
    #[error("the archive store did not keep the archive: {0}")]
    Store(String),
}

impl ArchiveDir {
    /// Archives kept in `path` (created when the first arrives).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ArchiveDir { path: path.into() }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the archive of backup `id` is kept.
    pub fn archive(&self, id: &BackupId) -> PathBuf {
        self.path.join(format!("{id}.tar"))
    }

    /// Writes `body` as the archive of `id`: at most `max_bytes`, with SHA-256
    /// `expected_sha256`. Returns its size and checksum. Nothing is left behind on failure.
    pub async fn receive<S, B, E>(
        &self,
        id: &BackupId,
        body: S,
        max_bytes: u64,
        expected_sha256: &str,
    ) -> Result<(u64, String), ReceiveError>
    where
        S: futures::Stream<Item = Result<B, E>> + Send,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        use futures::StreamExt as _;
        use tokio::io::AsyncWriteExt as _;
        tokio::fs::create_dir_all(&self.path).await?;
        let partial = self.path.join(format!(".partial-{id}"));
        let result = async {
            let mut file = tokio::fs::File::create(&partial).await?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let mut body = std::pin::pin!(body);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| ReceiveError::Body(e.to_string()))?;
                let chunk = chunk.as_ref();
                size += chunk.len() as u64;
                if size > max_bytes {
                    return Err(ReceiveError::TooLarge { max_bytes });
                }
                hasher.update(chunk);
                file.write_all(chunk).await?;
            }
            file.flush().await?;
            file.sync_all().await?;
            let actual = hex(&hasher.finalize());
            if !constant_time_eq(actual.as_bytes(), expected_sha256.as_bytes()) {
                return Err(ReceiveError::Checksum {
                    expected: expected_sha256.to_owned(),
                    actual,
                });
            }
            tokio::fs::rename(&partial, self.archive(id)).await?;
            // The rename itself on disk.
            if let Ok(dir) = tokio::fs::File::open(&self.path).await {
                let _ = dir.sync_all().await;
            }
            Ok((size, actual))
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }

    /// The archive of `id` as a stream of chunks, with its size; `None` when there is none.
    /// Read from disk as it is sent, never held in memory.
    pub async fn read(
        &self,
        id: &BackupId,
    ) -> std::io::Result<
        Option<(
            u64,
            impl futures::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static,
        )>,
    > {
        use tokio::io::AsyncReadExt as _;
        let file = match tokio::fs::File::open(self.archive(id)).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = file.metadata().await?.len();
        let chunks = futures::stream::try_unfold(file, |mut file| async move {
            let mut buffer = vec![0u8; 64 * 1024];
            let read = file.read(&mut buffer).await?;
            if read == 0 {
                return Ok(None);
            }
            buffer.truncate(read);
            Ok(Some((buffer, file)))
        });
        Ok(Some((size, chunks)))
    }

    /// Removes the archive of `id`; `false` when there was none.
    pub async fn remove(&self, id: &BackupId) -> std::io::Result<bool> {
        match tokio::fs::remove_file(self.archive(id)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_names_and_file_names() {
        let id = BackupId::generate();
        assert_eq!(id.as_str().len(), 12);
        assert!(BackupId::new(id.as_str()).is_ok());
        for bad in ["", "abc", "../etc", "ABCD1234", "ab-cd-ef", "a b c d"] {
            assert!(BackupId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_the_right_token_is_accepted() {
        let token = UploadToken::generate();
        let record =
            BackupRecord::pending(StoreId::new("ab12").unwrap(), BackupKind::Manual, &token);
        assert!(record.accepts(token.expose()));
        assert!(!record.accepts(""));
        assert!(!record.accepts(&token.expose()[1..]));
        assert!(!record.accepts(&record.token_hash.clone().unwrap()));
        let json = serde_json::to_string(&record).unwrap();
        assert!(
            !json.contains(&token.hash()),
            "the token's hash is never shown"
        );
        let mut settled = record.clone();
        BackupOutcome::Failed("x".into()).apply(&mut settled, Timestamp(1));
        assert!(
            !settled.accepts(token.expose()),
            "a settled backup takes no upload"
        );
    }

    #[tokio::test]
    async fn archives_are_kept_only_whole_and_matching() {
        let dir = tempfile::tempdir().unwrap();
        let archives = ArchiveDir::new(dir.path().join("backups"));
        let id = BackupId::generate();
        let chunks = || {
            futures::stream::iter(vec![
                Ok::<_, std::io::Error>(b"hello ".to_vec()),
                Ok(b"world".to_vec()),
            ])
        };
        let sum = sha256_hex(b"hello world");
        let err = archives.receive(&id, chunks(), 5, &sum).await.unwrap_err();
        assert!(
            matches!(err, ReceiveError::TooLarge { max_bytes: 5 }),
            "{err}"
        );
        let err = archives
            .receive(&id, chunks(), 100, &sha256_hex(b"other"))
            .await
            .unwrap_err();
        assert!(matches!(err, ReceiveError::Checksum { .. }), "{err}");
        assert_eq!(std::fs::read_dir(archives.path()).unwrap().count(), 0);
        let (size, got) = archives.receive(&id, chunks(), 100, &sum).await.unwrap();
        assert_eq!((size, got.as_str()), (11, sum.as_str()));
        assert_eq!(
            std::fs::read(archives.archive(&id)).unwrap(),
            b"hello world"
        );
        let (len, stream) = archives.read(&id).await.unwrap().unwrap();
        use futures::TryStreamExt as _;
        let read: Vec<Vec<u8>> = stream.try_collect().await.unwrap();
        assert_eq!((len, read.concat()), (11, b"hello world".to_vec()));
        assert!(
            archives
                .read(&BackupId::generate())
                .await
                .unwrap()
                .is_none()
        );
        assert!(archives.remove(&id).await.unwrap());
        assert!(!archives.remove(&id).await.unwrap());
    }

    #[test]
    fn endpoints_parse() {
        let e: BackupEndpoint = "http://storefactory.sf.svc:8080@sf".parse().unwrap();
        assert_eq!(e.url, "http://storefactory.sf.svc:8080");
        assert_eq!((e.namespace.as_str(), e.port), ("sf", 8080));
        assert_eq!(e.to_string().parse::<BackupEndpoint>().unwrap(), e);
        let e: BackupEndpoint = "http://127.0.0.1:9/@x".parse().unwrap();
        assert_eq!(e.url, "http://127.0.0.1:9");
        // Behind a Service: the pods' port is what a NetworkPolicy sees.
        let e: BackupEndpoint = "http://sf.sf.svc@sf:8080".parse().unwrap();
        assert_eq!((e.url.as_str(), e.port), ("http://sf.sf.svc", 8080));
        for bad in [
            "http://a:8080",
            "https://a@b",
            "http://a/path@b",
            "http://a:0@b",
            "http://a@B_",
            "http://a@b:0",
            "http://a@b:x",
        ] {
            assert!(bad.parse::<BackupEndpoint>().is_err(), "{bad}");
        }
    }
}
