//! The backup transport, for real: the commands of the blueprint's backup Job
//! (`backup-job.sh db`, then `backup-job.sh upload`, with the scripts laid out as the Job's
//! ConfigMap mounts them) run under real bash and curl against a real MariaDB server (a
//! private `mariadbd`, as in storefactory-core's backup_scripts.rs) and a real Storefactory
//! server on a loopback port. The archive the server keeps is then restored into another
//! database, which must equal the original row for row, and rewritten for the new site's
//! URL. Bad uploads (a wrong token, a wrong checksum, too large) are refused and change
//! nothing but the backup's status where they say so.
//!
//! Needs bash, curl, tar, mariadbd/mariadb-install-db, mariadb/mariadb-dump and php with
//! mysqli (`scripts/test.sh` installs them).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use storefactory_core::backup::{
    BackupKind, BackupRecord, BackupRepository, BackupStatus, RestoreRecord, RestoreStatus,
    UploadToken, sha256_hex,
};
use storefactory_core::port::StoreRepository;
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::StoreRecord;
use storefactory_http::{Server, ServerConfig, router};
use storefactory_sql::{Quota, Role};

use common::{PASSWORD, login, send, send_raw};

const FILES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../blueprints/woocommerce/files"
);
const DB_PASSWORD: &str = "p'\"#; $(touch pwned) \\ `x` --password=y 🛒";
const OLD_URL: &str = "http://store-a.storefactory.test";
const NEW_URL: &str = "http://store-b.storefactory.test";

/// Text that tries quoting, shell, options, SQL, PHP, unicode and control bytes.
const HOSTILE: &[&str] = &[
    "--password=x",
    "$(touch pwned)",
    "`touch pwned`",
    "'; DROP TABLE wp_posts; -- ",
    "back\\slash \\' \\\" \\n \\0 \\\\",
    "line one\nline two\r\n",
    "<?php system('touch pwned'); ?>",
    "NULL",
    "",
    "🛒 Ünïcödé café — 日本語 — e\u{301}",
    "DELIMITER ;;\n/*!40101 SET NAMES latin1 */;",
];

fn path() -> String {
    let inherited = std::env::var("PATH").unwrap_or_default();
    format!("{inherited}:/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin")
}

fn sql_text(text: &str) -> String {
    let hex: String = text.bytes().map(|b| format!("{b:02X}")).collect();
    format!("_utf8mb4 X'{hex}'")
}

/// A private MariaDB server, data and socket in a temporary folder, no network.
struct Mariadb {
    dir: tempfile::TempDir,
    child: Child,
}

impl Mariadb {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let user: &[&str] = if root { &["--user=root"] } else { &[] };
        let install = Command::new("mariadb-install-db")
            .env("PATH", path())
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(user)
            .output()
            .expect("mariadb-install-db (apt-get install mariadb-server)");
        assert!(install.status.success(), "{install:?}");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let log = dir.path().join("server.log");
        let child = Command::new("mariadbd")
            .env("PATH", path())
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--log-error={}", log.display()))
            .args([
                "--skip-networking",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=32M",
                "--innodb-flush-log-at-trx-commit=0",
            ])
            .args(user)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Mariadb { dir, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !server.try_sql("", "SELECT 1").status.success() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "mariadbd exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "mariadbd did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        server.sql(
            "",
            &format!(
                "CREATE USER 'sf-backup'@'localhost' IDENTIFIED BY '{}';
                 GRANT ALL ON *.* TO 'sf-backup'@'localhost';",
                DB_PASSWORD.replace('\\', "\\\\").replace('\'', "''")
            ),
        );
        server
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn try_sql(&self, database: &str, sql: &str) -> Output {
        let mut child = Command::new("mariadb")
            .env("PATH", path())
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args([
                "--user=root",
                "--batch",
                "--skip-column-names",
                "--binary-mode",
                "--default-character-set=utf8mb4",
            ])
            .args((!database.is_empty()).then(|| format!("--database={database}")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(sql.as_bytes());
        child.wait_with_output().unwrap()
    }

    fn sql(&self, database: &str, sql: &str) -> Vec<u8> {
        let output = self.try_sql(database, sql);
        assert!(
            output.status.success(),
            "SQL failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// Every table's definition, rows in key order and checksum, without database names.
    fn snapshot(&self, database: &str) -> Vec<u8> {
        let tables = String::from_utf8(self.sql(database, "SHOW FULL TABLES")).unwrap();
        let mut sql = String::new();
        for line in tables.lines() {
            let (table, _) = line.split_once('\t').unwrap();
            sql.push_str(&format!(
                "SELECT '== {table}'; SHOW CREATE TABLE `{table}`;
                 SELECT * FROM `{table}` ORDER BY 1; CHECKSUM TABLE `{table}` EXTENDED;\n"
            ));
        }
        let prefix = format!("{database}.");
        self.sql(database, &sql)
            .split(|b| *b == b'\n')
            .map(|line| line.strip_prefix(prefix.as_bytes()).unwrap_or(line))
            .collect::<Vec<_>>()
            .join(&b'\n')
    }

    fn value(&self, database: &str, sql: &str) -> String {
        String::from_utf8(self.sql(database, sql))
            .unwrap()
            .trim_end_matches('\n')
            .to_owned()
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WordPress-like database of the site at `OLD_URL`, full of hostile text.
fn create_store_database(db: &Mariadb, name: &str) {
    db.sql(
        "",
        &format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
    );
    db.sql(
        name,
        "CREATE TABLE wp_options (
           option_id bigint unsigned NOT NULL AUTO_INCREMENT,
           option_name varchar(191) NOT NULL,
           option_value longtext NOT NULL,
           PRIMARY KEY (option_id), UNIQUE KEY (option_name)
         ) DEFAULT CHARSET=utf8mb4;
         CREATE TABLE wp_posts (
           ID bigint unsigned NOT NULL AUTO_INCREMENT,
           post_title text NOT NULL,
           post_content longtext NOT NULL,
           guid varchar(255) NOT NULL DEFAULT '',
           PRIMARY KEY (ID)
         ) DEFAULT CHARSET=utf8mb4;
         CREATE TABLE wp_sf_blobs (id int NOT NULL PRIMARY KEY, data longblob);",
    );
    let serialized = format!(
        "a:2:{{s:4:\"home\";s:{}:\"{OLD_URL}/\";s:4:\"note\";s:5:\"hello\";}}",
        OLD_URL.len() + 1
    );
    let mut sql = format!(
        "INSERT INTO wp_options (option_name, option_value) VALUES
           ('siteurl', {}), ('home', {}), ('widget', {});\n",
        sql_text(OLD_URL),
        sql_text(OLD_URL),
        sql_text(&serialized)
    );
    for (i, text) in HOSTILE.iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO wp_posts (post_title, post_content, guid) VALUES ({}, {}, {});\n",
            sql_text(text),
            sql_text(&format!(
                "{text} <a href=\"{OLD_URL}/shop/\">shop</a> {}",
                OLD_URL.replace('/', "\\/")
            )),
            sql_text(&format!("{OLD_URL}/?p={i}")),
        ));
    }
    sql.push_str("INSERT INTO wp_sf_blobs VALUES (1, X'00FF00FE0D0A1A5C27'), (2, NULL);\n");
    db.sql(name, &sql);
}

/// The scripts as the Job's ConfigMap mounts them: one folder.
fn scripts_dir(root: &Path) -> PathBuf {
    let dir = root.join("scripts");
    std::fs::create_dir_all(&dir).unwrap();
    for file in [
        "backup.sh",
        "backup-common.sh",
        "backup-job.sh",
        "restore.sh",
        "restore-job.sh",
        "rewrite-urls.php",
    ] {
        std::fs::copy(Path::new(FILES).join(file), dir.join(file)).unwrap();
    }
    dir
}

fn write_wordpress_files(dir: &Path) {
    std::fs::create_dir_all(dir.join("wp-content/uploads/2026")).unwrap();
    std::fs::write(
        dir.join("index.php"),
        "<?php require 'wp-blog-header.php';\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("wp-content/uploads/2026/--password=x $(touch pwned).txt"),
        HOSTILE.join("\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("wp-content/uploads/2026/blob.bin"),
        [0u8, 255, 13, 10],
    )
    .unwrap();
}

fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                out.push((format!("{name}/"), Vec::new()));
                walk(root, &path, out);
            } else {
                out.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Runs a step of the Job like its container does: `bash /scripts/<script> <args>`, with
/// only the given environment (and PATH).
async fn run(script: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(script)
        .args(args)
        .env_clear()
        .env("PATH", path());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().await.unwrap()
}

fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_jobs_archive_reaches_the_server_and_restores_row_for_row_with_new_urls()
-> Result<()> {
    let maria = tokio::task::spawn_blocking(Mariadb::start).await?;
    create_store_database(&maria, "store_a");
    let work = tempfile::tempdir()?;
    let scripts = scripts_dir(work.path());
    let site_a = work.path().join("site-a");
    write_wordpress_files(&site_a);

    // The platform: a real server on a loopback port, without a cluster.
    let mut config: ServerConfig = common::config();
    config.listen = "127.0.0.1:0".parse()?;
    config.database = work.path().join("platform/storefactory.db");
    config.max_backup_bytes = 10 * 1024 * 1024;
    std::fs::create_dir_all(work.path().join("platform"))?;
    let server = Server::bind(config).await?;
    let addr = server.local_addr();
    let state = server.state().clone();
    let db = state.db().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let app = router(state.clone());

    // A store of alice's and a pending backup of it, as Provisioner::backup records them.
    db.create_user("alice", PASSWORD, Role::User, Quota::default())
        .await?;
    let store = StoreId::new("ab12")?;
    let spec = StoreSpec::new(store.clone(), "alice", "store-a.storefactory.test");
    db.insert_store(&StoreRecord::new(spec, "Shop A", "woocommerce"))
        .await?;
    let token = UploadToken::generate();
    let backup = BackupRecord::pending(store.clone(), BackupKind::Manual, &token);
    db.insert_backup(&backup).await?;

    // The Job's two containers, sharing an emptyDir.
    let shared = work.path().join("backup");
    std::fs::create_dir_all(&shared)?;
    let job = scripts.join("backup-job.sh");
    let common_env = vec![
        ("BACKUP_ROOT", shared.display().to_string()),
        ("BACKUP_ID", backup.id.to_string()),
    ];
    let mut dump_env = common_env.clone();
    dump_env.extend([
        ("DB_SOCKET", maria.socket().display().to_string()),
        ("DB_USER", "sf-backup".to_owned()),
        ("DB_PASSWORD", DB_PASSWORD.to_owned()),
        ("DB_NAME", "store_a".to_owned()),
    ]);
    assert_ok(&run(&job, &["db"], &dump_env).await, "backup-job.sh db");
    let mut upload_env = common_env.clone();
    upload_env.extend([
        ("WORDPRESS_DIR", site_a.display().to_string()),
        (
            "UPLOAD_URL",
            format!("http://{addr}/internal/backups/{}", backup.id),
        ),
        ("BACKUP_TOKEN", "wrong-token".to_owned()),
    ]);
    // A wrong token is refused: the backup stays pending, nothing is kept.
    let refused = run(&job, &["upload"], &upload_env).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("HTTP 404"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let archives = work.path().join("platform/backups");
    assert!(!archives.join(format!("{}.tar", backup.id)).exists());
    assert_eq!(
        db.get_backup(&backup.id).await?.unwrap().status,
        BackupStatus::Pending
    );
    // (backup.sh refuses to take the same backup twice: start the Job's pod afresh.)
    std::fs::remove_dir_all(&shared)?;
    std::fs::create_dir_all(&shared)?;
    assert_ok(&run(&job, &["db"], &dump_env).await, "backup-job.sh db");
    upload_env.last_mut().unwrap().1 = token.expose().to_owned();
    assert_ok(
        &run(&job, &["upload"], &upload_env).await,
        "backup-job.sh upload",
    );

    // Completed, with the size and checksum of what the server kept.
    let done = db.get_backup(&backup.id).await?.unwrap();
    assert_eq!(done.status, BackupStatus::Completed, "{done:?}");
    let archive = archives.join(format!("{}.tar", backup.id));
    let bytes = std::fs::read(&archive)?;
    assert_eq!(done.size_bytes, Some(bytes.len() as u64));
    assert_eq!(done.sha256.as_deref(), Some(sha256_hex(&bytes).as_str()));
    assert!(done.finished_at.is_some());
    // The token is spent.
    let again = run(&job, &["upload"], &upload_env).await;
    assert!(!again.status.success());

    // Listed with size and time, for its owner; one of someone else's store is a 404.
    let alice = login(&app, "alice", PASSWORD).await?;
    let list = send(
        &app,
        Method::GET,
        &format!("/api/stores/{store}/backups"),
        Some(&alice),
        None,
    )
    .await?;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let listed = &list.body["backups"][0];
    assert_eq!(listed["id"], backup.id.as_str());
    assert_eq!(listed["status"], "completed");
    assert_eq!(listed["size_bytes"], bytes.len() as u64);
    assert!(listed["created_at"].as_i64().unwrap() > 0);
    assert!(listed.get("token_hash").is_none(), "never shown");
    let events = db.events(&store, 0).await?;
    assert!(
        events
            .iter()
            .any(|e| format!("{:?}", e.kind).contains("completed")),
        "{events:?}"
    );
    let missing = send(
        &app,
        Method::GET,
        &format!("/api/stores/{store}/backups/nosuchbackup"),
        Some(&alice),
        None,
    )
    .await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.message().contains("backup"), "{}", missing.text);
    db.create_user("mallory", PASSWORD, Role::User, Quota::default())
        .await?;
    let mallory = login(&app, "mallory", PASSWORD).await?;
    let hidden = send(
        &app,
        Method::GET,
        &format!("/api/stores/{store}/backups"),
        Some(&mallory),
        None,
    )
    .await?;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    // Without a cluster, taking a backup answers 503 and records nothing.
    let unavailable = send(
        &app,
        Method::POST,
        &format!("/api/stores/{store}/backups"),
        Some(&alice),
        None,
    )
    .await?;
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(db.list_backups(&store).await?.len(), 1);

    // Restore what the server kept into another database and another folder, as the
    // restore Job does: fetch (from the server, with the restore's one-time token), db,
    // files (and the clone's URL rewrite).
    let restore_token = UploadToken::generate();
    let mut restore = RestoreRecord::new(
        StoreId::new("ef56")?,
        backup.id.clone(),
        RestoreStatus::Running,
        Some((OLD_URL.to_owned(), NEW_URL.to_owned())),
    );
    restore.token_hash = Some(restore_token.hash());
    db.insert_restore(&restore).await?;
    let restore_root = work.path().join("restore");
    std::fs::create_dir_all(&restore_root)?;
    maria.sql("", "CREATE DATABASE store_b CHARACTER SET utf8mb4");
    let site_b = work.path().join("site-b");
    std::fs::create_dir_all(&site_b)?;
    std::fs::write(site_b.join("stale.php"), "replaced by the restore")?;
    let restore_job = scripts.join("restore-job.sh");
    let mut fetch_env = vec![
        ("BACKUP_ROOT", restore_root.display().to_string()),
        ("BACKUP_ID", backup.id.to_string()),
        (
            "ARCHIVE_URL",
            format!("http://{addr}/internal/restores/{}/archive", restore.id),
        ),
        ("ARCHIVE_SHA256", done.sha256.clone().unwrap()),
        ("RESTORE_TOKEN", "wrong".to_owned()),
    ];
    let refused = run(&restore_job, &["fetch"], &fetch_env).await;
    assert!(!refused.status.success(), "a wrong token gets nothing");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("HTTP 404"), "{said}");
    fetch_env.last_mut().unwrap().1 = restore_token.expose().to_owned();
    assert_ok(
        &run(&restore_job, &["fetch"], &fetch_env).await,
        "restore-job.sh fetch",
    );
    let target_env = vec![
        ("BACKUP_ROOT", restore_root.display().to_string()),
        ("BACKUP_ID", backup.id.to_string()),
        ("DB_SOCKET", maria.socket().display().to_string()),
        ("DB_USER", "sf-backup".to_owned()),
        ("DB_PASSWORD", DB_PASSWORD.to_owned()),
        ("DB_NAME", "store_b".to_owned()),
        ("WORDPRESS_DIR", site_b.display().to_string()),
    ];
    assert_ok(
        &run(&restore_job, &["db"], &target_env).await,
        "restore-job.sh db",
    );
    assert_eq!(
        maria.snapshot("store_b"),
        maria.snapshot("store_a"),
        "the restored database equals the original row for row"
    );

    // The files, then the clone's rewrite: the new site's URL everywhere, serialized
    // lengths recomputed.
    let mut files_env = target_env.clone();
    files_env.extend([
        ("OLD_URL", OLD_URL.to_owned()),
        ("NEW_URL", NEW_URL.to_owned()),
    ]);
    assert_ok(
        &run(&restore_job, &["files"], &files_env).await,
        "restore-job.sh files",
    );
    assert_eq!(tree(&site_b), tree(&site_a), "the files are restored");
    let siteurl = maria.value(
        "store_b",
        "SELECT option_value FROM wp_options WHERE option_name = 'siteurl'",
    );
    assert_eq!(siteurl, NEW_URL);
    let widget = maria.value(
        "store_b",
        "SELECT option_value FROM wp_options WHERE option_name = 'widget'",
    );
    assert_eq!(
        widget,
        format!(
            "a:2:{{s:4:\"home\";s:{}:\"{NEW_URL}/\";s:4:\"note\";s:5:\"hello\";}}",
            NEW_URL.len() + 1
        )
    );
    let left = maria.value(
        "store_b",
        "SELECT COUNT(*) FROM wp_posts WHERE post_content LIKE '%store-a.storefactory.test%' \
         OR guid LIKE '%store-a.storefactory.test%'",
    );
    assert_eq!(left, "0", "no old URL is left");
    let rewritten = maria.value(
        "store_b",
        "SELECT COUNT(*) FROM wp_posts WHERE post_content LIKE '%store-b.storefactory.test/shop/%' \
         AND post_content LIKE '%http:\\\\\\\\/\\\\\\\\/store-b.storefactory.test%'",
    );
    assert_eq!(
        rewritten,
        HOSTILE.len().to_string(),
        "plain and JSON-escaped URLs"
    );
    // The original is untouched.
    assert_eq!(
        maria.value(
            "store_a",
            "SELECT option_value FROM wp_options WHERE option_name = 'siteurl'"
        ),
        OLD_URL
    );

    let _ = stop.send(());
    let _ = serving.await;
    Ok(())
}

/// Uploads that are not what they claim to be fail the backup with the reason; nothing is
/// kept.
#[tokio::test]
async fn a_wrong_checksum_or_an_oversized_archive_fails_the_backup_and_keeps_nothing() -> Result<()>
{
    let mut config = common::config();
    config.max_backup_bytes = 1000;
    let app = common::app_with(config, false).await?;
    let store = StoreId::new("cd34")?;
    let archives = app._dir.path().join("backups");
    let put = |id: String, token: String, sha: String, body: Vec<u8>| {
        Request::builder()
            .method(Method::PUT)
            .uri(format!("/internal/backups/{id}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header("x-backup-sha256", sha)
            .body(Body::from(body))
            .unwrap()
    };
    for (body, announced, status, code) in [
        (
            b"not what was announced".to_vec(),
            sha256_hex(b"something else"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "checksum_mismatch",
        ),
        (
            vec![7u8; 1001],
            sha256_hex(&[7u8; 1001]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ] {
        let token = UploadToken::generate();
        let backup = BackupRecord::pending(store.clone(), BackupKind::Scheduled, &token);
        app.db.insert_backup(&backup).await?;
        let reply = send_raw(
            &app.router,
            put(
                backup.id.to_string(),
                token.expose().to_owned(),
                announced,
                body,
            ),
        )
        .await?;
        assert_eq!(reply.status, status, "{}", reply.text);
        assert_eq!(reply.code(), code);
        let failed = app.db.get_backup(&backup.id).await?.unwrap();
        assert_eq!(failed.status, BackupStatus::Failed);
        assert!(failed.error.is_some());
        assert!(
            std::fs::read_dir(&archives).map(|d| d.count()).unwrap_or(0) == 0,
            "nothing kept"
        );
    }
    // An unknown backup, and a missing checksum header.
    let reply = send_raw(
        &app.router,
        put(
            "nosuchbackup".into(),
            "x".into(),
            sha256_hex(b""),
            Vec::new(),
        ),
    )
    .await?;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let token = UploadToken::generate();
    let backup = BackupRecord::pending(store.clone(), BackupKind::Manual, &token);
    app.db.insert_backup(&backup).await?;
    let reply = send_raw(
        &app.router,
        put(
            backup.id.to_string(),
            token.expose().to_owned(),
            "abc".into(),
            Vec::new(),
        ),
    )
    .await?;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert_eq!(
        app.db.get_backup(&backup.id).await?.unwrap().status,
        BackupStatus::Pending
    );
    Ok(())
}
