//! Backup archives kept in an S3-compatible bucket, for real: moto's S3 server on a loopback
//! port, with IAM authentication enforced (so a wrong signature or key is refused as AWS
//! would), and a real Storefactory server on another, configured with the bucket. The
//! archive is handed over and fetched back with curl, the same HTTP exchanges the backup and
//! restore Jobs' scripts make (storefactory-http/tests/backup_transport.rs runs the scripts
//! themselves against the folder store). What lands in the bucket is read back with boto3,
//! not with Storefactory's own client.
//!
//! Needs moto's server: `bash scripts/install-moto.sh` installs it into a cached venv, and
//! `scripts/test.sh` does so and sets STOREFACTORY_MOTO_SERVER. Without it these tests fail;
//! they never pass without having run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use axum::http::{Method, StatusCode};
use storefactory_core::backup::{
    BackupKind, BackupRecord, BackupRepository, BackupStatus, RestoreRecord, RestoreStatus,
    UploadToken, sha256_hex,
};
use storefactory_core::blueprint::BlueprintRegistry;
use storefactory_core::port::StoreRepository;
use storefactory_core::provisioner::{BackupConfig, Provisioner, ProvisionerConfig};
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::{StoreRecord, Timestamp};
use storefactory_http::archive_bucket::{Bucket, BucketConfig, Credentials};
use storefactory_http::{Server, ServerConfig, router};
use storefactory_sql::{Database, Quota, Role};

use common::{PASSWORD, login, send};

const BUCKET: &str = "store-backups";
const PREFIX: &str = "sf/";

/// boto3 (installed with moto) on the test's side of the bucket.
const HELPER: &str = r#"
import boto3, hashlib, json, sys
endpoint, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
def client(service, key="bootstrap", secret="bootstrap"):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)
if command == "setup":
    # The first three requests are let through unauthenticated (INITIAL_NO_AUTH_ACTION_COUNT):
    # they make the user whose key the platform gets; everything after is checked.
    iam = client("iam")
    iam.create_user(UserName="storefactory")
    iam.put_user_policy(UserName="storefactory", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="storefactory")["AccessKey"]
    client("s3", key["AccessKeyId"], key["SecretAccessKey"]).create_bucket(Bucket=args[0])
    print(key["AccessKeyId"]); print(key["SecretAccessKey"])
elif command == "keys":
    s3 = client("s3", args[0], args[1])
    for o in s3.list_objects_v2(Bucket=args[2]).get("Contents", []):
        body = s3.get_object(Bucket=args[2], Key=o["Key"])["Body"].read()
        print(o["Key"], len(body), hashlib.sha256(body).hexdigest())
elif command == "drop-key":
    client("iam", args[0], args[1]).delete_access_key(UserName="storefactory", AccessKeyId=args[0])
"#;

/// moto's `moto_server`: STOREFACTORY_MOTO_SERVER, else the venv scripts/install-moto.sh
/// caches. Fails (never skips) when there is none.
fn moto_server() -> PathBuf {
    const MISSING: &str = "moto's server is not installed: run `bash scripts/install-moto.sh` \
        (scripts/test.sh does), or point STOREFACTORY_MOTO_SERVER at a moto_server";
    if let Some(path) = std::env::var_os("STOREFACTORY_MOTO_SERVER") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "{} does not exist. {MISSING}",
            path.display()
        );
        return path;
    }
    let cache = std::env::var_os("STOREFACTORY_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| Path::new(&d).join("storefactory")))
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/storefactory")));
    let found = cache
        .and_then(|dir| std::fs::read_dir(dir).ok())
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|venv| {
            venv.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("python-venv-moto-"))
                && venv.join(".complete").exists()
        })
        .map(|venv| venv.join("bin/moto_server"))
        .find(|server| server.exists());
    found.unwrap_or_else(|| panic!("{MISSING}"))
}

/// A moto server on a loopback port, with authentication enforced after the set-up.
struct Moto {
    child: Child,
    endpoint: String,
    python: PathBuf,
    credentials: Credentials,
}

impl Moto {
    fn start() -> Result<Self> {
        let server = moto_server();
        let python = server.with_file_name("python");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", server.display()))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut moto = Moto {
            child,
            endpoint,
            python,
            credentials: Credentials {
                access_key_id: String::new(),
                secret_access_key: String::new(),
            },
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("moto's server did not listen on port {port} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = moto.helper(&["setup", BUCKET])?;
        let mut lines = out.lines();
        moto.credentials = Credentials {
            access_key_id: lines.next().context("no access key id")?.to_owned(),
            secret_access_key: lines.next().context("no secret")?.to_owned(),
        };
        Ok(moto)
    }

    fn helper(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.python)
            .args(["-c", HELPER, &self.endpoint])
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("boto3 {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// The objects in the bucket: key, size, SHA-256.
    fn objects(&self) -> Result<Vec<(String, u64, String)>> {
        let c = &self.credentials;
        let out = self.helper(&["keys", &c.access_key_id, &c.secret_access_key, BUCKET])?;
        out.lines()
            .map(|line| {
                let parts: Vec<&str> = line.split(' ').collect();
                Ok((parts[0].to_owned(), parts[1].parse()?, parts[2].to_owned()))
            })
            .collect()
    }

    fn bucket(&self, credentials: Credentials, staging: &Path) -> Bucket {
        Bucket::new(
            BucketConfig {
                endpoint: self.endpoint.clone(),
                bucket: BUCKET.to_owned(),
                prefix: PREFIX.to_owned(),
                region: "us-east-1".to_owned(),
                credentials,
            },
            staging,
        )
        .unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real server on a loopback port keeping archives in `bucket`.
async fn start_server(
    dir: &Path,
    bucket: Bucket,
) -> Result<(
    std::net::SocketAddr,
    storefactory_http::AppState,
    tokio::sync::oneshot::Sender<()>,
)> {
    let mut config: ServerConfig = common::config();
    config.listen = "127.0.0.1:0".parse()?;
    config.database = dir.join("storefactory.db");
    config.max_backup_bytes = 10 * 1024 * 1024;
    config.provisioner.backups.archives = Some(Arc::new(bucket));
    let server = Server::bind(config).await?;
    let addr = server.local_addr();
    let state = server.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Ok((addr, state, stop))
}

async fn pending_backup(db: &Database, store: &StoreId) -> Result<(BackupRecord, UploadToken)> {
    let token = UploadToken::generate();
    let backup = BackupRecord::pending(store.clone(), BackupKind::Manual, &token);
    db.insert_backup(&backup).await?;
    Ok((backup, token))
}

/// The backup Job's upload, as backup-job.sh makes it: the HTTP status and the body.
async fn curl_upload(
    addr: std::net::SocketAddr,
    backup: &BackupRecord,
    token: &UploadToken,
    sha256: &str,
    file: &Path,
) -> Result<(u16, String)> {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-X", "PUT", "-o", "-", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {}", token.expose())])
        .args(["-H", &format!("X-Backup-SHA256: {sha256}")])
        .args(["-H", "Content-Type: application/x-tar"])
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(format!("http://{addr}/internal/backups/{}", backup.id))
        .output()
        .await
        .context("curl")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').context("no status")?;
    Ok((code.trim().parse()?, body.to_owned()))
}

fn archive_bytes() -> Vec<u8> {
    // Not all one byte, and several of the server's read chunks long.
    (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_keeps_an_upload_gives_it_to_a_restore_and_drops_it_on_delete_and_retention()
-> Result<()> {
    let moto = tokio::task::spawn_blocking(Moto::start).await??;
    let work = tempfile::tempdir()?;
    let staging = work.path().join("staging");
    let (addr, state, stop) =
        start_server(work.path(), moto.bucket(moto.credentials.clone(), &staging)).await?;
    let db = state.db().clone();
    let app = router(state.clone());
    db.create_user("alice", PASSWORD, Role::User, Quota::default())
        .await?;
    let store = StoreId::new("ab12")?;
    let spec = StoreSpec::new(store.clone(), "alice", "store-a.storefactory.test");
    db.insert_store(&StoreRecord::new(spec, "Shop A", "woocommerce"))
        .await?;

    let bytes = archive_bytes();
    let file = work.path().join("archive.tar");
    std::fs::write(&file, &bytes)?;
    let sum = sha256_hex(&bytes);

    // A checksum mismatch keeps nothing, in the bucket or in staging, and fails the backup.
    let (bad, bad_token) = pending_backup(&db, &store).await?;
    let (status, body) = curl_upload(addr, &bad, &bad_token, &sha256_hex(b"other"), &file).await?;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("checksum_mismatch"), "{body}");
    assert_eq!(
        db.get_backup(&bad.id).await?.unwrap().status,
        BackupStatus::Failed
    );
    assert_eq!(moto.objects()?, vec![]);
    assert_eq!(std::fs::read_dir(&staging)?.count(), 0, "nothing staged");

    // A whole upload lands in the bucket, under the prefix, byte for byte.
    let (backup, token) = pending_backup(&db, &store).await?;
    let (status, body) = curl_upload(addr, &backup, &token, &sum, &file).await?;
    assert_eq!(status, 200, "{body}");
    let done = db.get_backup(&backup.id).await?.unwrap();
    assert_eq!(done.status, BackupStatus::Completed, "{done:?}");
    assert_eq!(done.size_bytes, Some(bytes.len() as u64));
    assert_eq!(done.sha256.as_deref(), Some(sum.as_str()));
    assert_eq!(
        moto.objects()?,
        vec![(
            format!("{PREFIX}{}.tar", backup.id),
            bytes.len() as u64,
            sum.clone()
        )]
    );
    assert_eq!(std::fs::read_dir(&staging)?.count(), 0, "staging emptied");

    // A restore streams it back from the bucket.
    let restore_token = UploadToken::generate();
    let mut restore = RestoreRecord::new(
        StoreId::new("ef56")?,
        backup.id.clone(),
        RestoreStatus::Running,
        None,
    );
    restore.token_hash = Some(restore_token.hash());
    db.insert_restore(&restore).await?;
    let fetched = work.path().join("fetched.tar");
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--fail", "-D", "-", "-o"])
        .arg(&fetched)
        .args([
            "-H",
            &format!("Authorization: Bearer {}", restore_token.expose()),
        ])
        .arg(format!(
            "http://{addr}/internal/restores/{}/archive",
            restore.id
        ))
        .output()
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let headers = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(
        headers.contains(&format!("x-backup-sha256: {sum}")),
        "{headers}"
    );
    assert!(
        std::fs::read(&fetched)? == bytes,
        "the restore gets the same bytes"
    );

    // Deleting the backup removes the object.
    let alice = login(&app, "alice", PASSWORD).await?;
    let deleted = send(
        &app,
        Method::DELETE,
        &format!("/api/stores/{store}/backups/{}", backup.id),
        Some(&alice),
        None,
    )
    .await?;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(moto.objects()?, vec![]);
    assert!(db.get_backup(&backup.id).await?.is_none());

    // Retention deletes the object of a scheduled backup beyond the kept count. (Pruning
    // reads the database and the archive store only: the cluster client is never used.)
    let mut scheduled = Vec::new();
    for age in [2_000, 1_000] {
        let token = UploadToken::generate();
        let mut backup = BackupRecord::pending(store.clone(), BackupKind::Scheduled, &token);
        backup.created_at = Timestamp(backup.created_at.0 - age);
        db.insert_backup(&backup).await?;
        let (status, body) = curl_upload(addr, &backup, &token, &sum, &file).await?;
        assert_eq!(status, 200, "{body}");
        scheduled.push(backup.id);
    }
    assert_eq!(moto.objects()?.len(), 2);
    let nowhere = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse()?))?;
    let provisioner = Provisioner::new(
        nowhere,
        Arc::new(db.clone()),
        Arc::new(BlueprintRegistry::builtin()?),
        ProvisionerConfig {
            leader: None,
            backups: BackupConfig {
                archives: Some(Arc::new(moto.bucket(moto.credentials.clone(), &staging))),
                keep: 1,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    assert_eq!(provisioner.prune_backups(&store).await?, 1);
    assert_eq!(
        moto.objects()?,
        vec![(
            format!("{PREFIX}{}.tar", scheduled[1]),
            bytes.len() as u64,
            sum.clone()
        )],
        "the newest stays, the oldest is gone"
    );

    let _ = stop.send(());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_stop_the_server_at_start_and_fail_a_backup_with_the_reason() -> Result<()>
{
    let moto = tokio::task::spawn_blocking(Moto::start).await??;
    let work = tempfile::tempdir()?;
    let staging = work.path().join("staging");

    // At start-up: a wrong secret, then an unknown bucket store, are said plainly.
    let mut wrong = moto.credentials.clone();
    wrong.secret_access_key = "not-the-secret".to_owned();
    let err = start_server(work.path(), moto.bucket(wrong, &staging))
        .await
        .err()
        .context("a wrong secret must stop the server")?;
    let said = format!("{err:#}");
    assert!(
        said.contains("backup archive store is not usable"),
        "{said}"
    );
    assert!(said.contains(BUCKET) && said.contains("403"), "{said}");
    assert!(said.contains("credentials are refused"), "{said}");
    assert!(
        !said.contains("not-the-secret"),
        "never shows the secret: {said}"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let unreachable = Bucket::new(
        BucketConfig {
            endpoint: format!("http://{closed}"),
            bucket: BUCKET.to_owned(),
            prefix: String::new(),
            region: "us-east-1".to_owned(),
            credentials: moto.credentials.clone(),
        },
        &staging,
    )?;
    let said = format!("{:#}", unreachable.check().await.unwrap_err());
    assert!(said.contains("cannot connect"), "{said}");

    // Keys revoked while the server runs: the upload fails the backup with the bucket's
    // reason, and nothing is kept.
    let (addr, state, stop) =
        start_server(work.path(), moto.bucket(moto.credentials.clone(), &staging)).await?;
    let db = state.db().clone();
    let store = StoreId::new("cd34")?;
    let c = &moto.credentials;
    moto.helper(&["drop-key", &c.access_key_id, &c.secret_access_key])?;
    let bytes = archive_bytes();
    let file = work.path().join("archive.tar");
    std::fs::write(&file, &bytes)?;
    let (backup, token) = pending_backup(&db, &store).await?;
    let (status, body) = curl_upload(addr, &backup, &token, &sha256_hex(&bytes), &file).await?;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("archive_store_failed"), "{body}");
    let failed = db.get_backup(&backup.id).await?.unwrap();
    assert_eq!(failed.status, BackupStatus::Failed);
    let error = failed.error.unwrap_or_default();
    assert!(error.contains("InvalidAccessKeyId"), "{error}");
    assert!(!error.contains(&c.secret_access_key), "{error}");
    assert_eq!(std::fs::read_dir(&staging)?.count(), 0, "nothing staged");

    let _ = stop.send(());
    Ok(())
}
