//! The backup scripts, executed: `backup.sh`, `restore.sh` and `rewrite-urls.php` of the
//! built-in blueprint run under real bash and php-cli against a real MariaDB server (Debian's
//! `mariadb-server`, started per test as a child process with its data and socket in a
//! temporary folder), on a WordPress-like database full of hostile text and on a folder of
//! WordPress files. A restored database must equal the original row for row, a bad backup
//! must be refused before anything changes, and a clone's URL rewrite must give exactly the
//! database the new site would have held, serialized values included.
//!
//! Needs `bash`, `mariadbd` and `mariadb-install-db` (mariadb-server), `mariadb` and
//! `mariadb-dump` (mariadb-client) and `php` with mysqli (php-cli, php-mysql);
//! `scripts/test.sh` installs them.

use std::ffi::OsString;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SCRIPTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../blueprints/woocommerce/files"
);
const SCRIPT_FILES: &[&str] = &[
    "backup.sh",
    "backup-common.sh",
    "restore.sh",
    "rewrite-urls.php",
];

/// Text that tries everything: quoting, shell, options, SQL, PHP, unicode, control bytes.
const HOSTILE: &[&str] = &[
    "--password=x",
    "--defaults-file=/etc/passwd",
    "-e DROP DATABASE store_a",
    "$(touch pwned)",
    "`touch pwned`",
    "'; DROP TABLE wp_posts; -- ",
    "\"; DROP TABLE wp_posts; -- \"",
    "back\\slash \\' \\\" \\n \\0 \\\\",
    "\\",
    "line one\nline two\n\nline four",
    "windows\r\nline ends",
    "tab\tseparated\tcells",
    "<?php system('touch pwned'); ?>",
    "s:5:\"hello\";",
    "a:1:{i:0;s:3:\"abc\";}",
    "%s%n%x _ % \\% \\_",
    "NULL",
    "",
    "  leading and trailing spaces  ",
    "🛒 Ünïcödé café — 日本語 — שלום — مرحبا — e\u{301} 👩‍👩‍👧",
    "DELIMITER ;;\n/*!40101 SET NAMES latin1 */;",
];

/// The password of the account the scripts use: an option file must carry it as it is.
const PASSWORD: &str = "p'\"#; $(touch pwned) \\ `x` --password=y 🛒";

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .env("PATH", path())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The test's PATH, with the sbin folders where Debian puts `mariadbd`.
fn path() -> String {
    let inherited = std::env::var("PATH").unwrap_or_default();
    format!("{inherited}:/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin")
}

fn require_tools() {
    for (program, package) in [
        ("bash", "bash"),
        ("mariadbd", "mariadb-server"),
        ("mariadb-install-db", "mariadb-server"),
        ("mariadb", "mariadb-client"),
        ("mariadb-dump", "mariadb-client"),
        ("php", "php-cli"),
        ("sha256sum", "coreutils"),
    ] {
        assert!(
            have(program),
            "{program} is needed by these tests (scripts/test.sh installs it; \
             `apt-get install {package}` does it by hand)"
        );
    }
    let mysqli = Command::new("php")
        .args(["-r", "exit(extension_loaded('mysqli') ? 0 : 1);"])
        .status()
        .unwrap();
    assert!(
        mysqli.success(),
        "php's mysqli extension is needed by rewrite-urls.php (scripts/test.sh installs it; \
         `apt-get install php-mysql` does it by hand)"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A SQL literal of any text, byte for byte: no quoting to get wrong.
fn sql_text(text: &str) -> String {
    format!("_utf8mb4 X'{}'", hex(text.as_bytes()))
}

/// A private MariaDB server: data and socket in a temporary folder, no network. Killed when
/// dropped.
struct Mariadb {
    dir: tempfile::TempDir,
    child: Child,
}

impl Mariadb {
    fn start() -> Self {
        require_tools();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // A temporary directory of its own, for the installation and the server: temporary
        // tables of servers of tests running side by side (or anything cleaning the shared
        // /tmp) must not meet. One installation failed deleting a temporary table of
        // /tmp that was gone.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        // mariadbd refuses to run as root unless told to.
        let user: &[&str] = if root { &["--user=root"] } else { &[] };
        let install = Command::new("mariadb-install-db")
            .env("PATH", path())
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(user)
            .output()
            .unwrap();
        assert!(
            install.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&install.stdout),
            String::from_utf8_lossy(&install.stderr)
        );
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
        loop {
            if server.try_sql("", "SELECT 1").status.success() {
                break;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "mariadbd exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not answer within 60 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server.sql(
            "",
            &format!(
                "CREATE USER 'sf-backup'@'localhost' IDENTIFIED BY '{}';
                 GRANT ALL ON *.* TO 'sf-backup'@'localhost';",
                // A string literal (the only form IDENTIFIED BY takes), escaped.
                PASSWORD.replace('\\', "\\\\").replace('\'', "''")
            ),
        );
        server
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// Runs SQL (on standard input) as root; tab-separated output, special bytes escaped.
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
        // A client that cannot connect exits without reading: its status says so, not the pipe.
        let _ = child.stdin.take().unwrap().write_all(sql.as_bytes());
        child.wait_with_output().unwrap()
    }

    fn sql(&self, database: &str, sql: &str) -> Vec<u8> {
        let output = self.try_sql(database, sql);
        assert!(
            output.status.success(),
            "SQL failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            sql.chars().take(2000).collect::<String>()
        );
        output.stdout
    }

    /// Everything a restore must give back, as text: per table its definition, every row in
    /// key order and its checksum; the triggers and routines. Database names are left out, so
    /// two databases can be compared.
    fn snapshot(&self, database: &str) -> Vec<u8> {
        let tables = String::from_utf8(self.sql(database, "SHOW FULL TABLES")).unwrap();
        let mut sql = String::new();
        for line in tables.lines() {
            let (table, kind) = line.split_once('\t').unwrap();
            sql.push_str(&format!(
                "SELECT '== {table} {kind}';
                 SHOW CREATE TABLE `{table}`;
                 SELECT * FROM `{table}` ORDER BY 1;
                 CHECKSUM TABLE `{table}` EXTENDED;\n"
            ));
        }
        sql.push_str(
            "SELECT trigger_name, event_object_table, action_timing, event_manipulation,
                    action_statement
             FROM information_schema.triggers WHERE trigger_schema = DATABASE() ORDER BY 1;
             SELECT routine_name, routine_type, routine_definition
             FROM information_schema.routines WHERE routine_schema = DATABASE() ORDER BY 1;",
        );
        let out = self.sql(database, &sql);
        let prefix = format!("{database}.");
        // CHECKSUM TABLE names the table with its database.
        out.split(|b| *b == b'\n')
            .map(|line| line.strip_prefix(prefix.as_bytes()).unwrap_or(line))
            .collect::<Vec<_>>()
            .join(&b'\n')
    }

    /// A database holding `fixture(site)`, WordPress-like, with a trigger and a function.
    fn create_store_database(&self, database: &str, site: &Site) {
        self.sql(
            "",
            &format!("CREATE DATABASE `{database}` CHARACTER SET utf8mb4"),
        );
        self.sql(database, SCHEMA);
        self.sql(database, &insert_sql(&fixture(site)));
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SCHEMA: &str = "
CREATE TABLE wp_options (
  option_id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  option_name varchar(191) NOT NULL DEFAULT '',
  option_value longtext NOT NULL,
  autoload varchar(20) NOT NULL DEFAULT 'yes',
  PRIMARY KEY (option_id),
  UNIQUE KEY option_name (option_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_posts (
  ID bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  post_date datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  post_title text NOT NULL,
  post_content longtext NOT NULL,
  guid varchar(255) NOT NULL DEFAULT '',
  PRIMARY KEY (ID)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_postmeta (
  meta_id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  post_id bigint(20) unsigned NOT NULL DEFAULT 0,
  meta_key varchar(255) DEFAULT NULL,
  meta_value longtext,
  PRIMARY KEY (meta_id),
  KEY post_id (post_id),
  KEY meta_key (meta_key(191))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE wp_sf_misc (
  id int NOT NULL,
  data longblob,
  amount decimal(14,2) DEFAULT NULL,
  ratio double DEFAULT NULL,
  at datetime(6) DEFAULT NULL,
  note varchar(100) CHARACTER SET latin1 DEFAULT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE wp_sf_log (line text) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TRIGGER wp_sf_count BEFORE INSERT ON wp_postmeta
  FOR EACH ROW SET NEW.meta_key = IFNULL(NEW.meta_key, '');
CREATE FUNCTION wp_sf_answer() RETURNS int DETERMINISTIC RETURN 42;
";

/// The forms of one site's URL that the fixture writes.
struct Site {
    /// The site URL, as WordPress keeps it (`siteurl`).
    url: &'static str,
    /// With https (mixed content the site once had).
    https: &'static str,
    /// Protocol-relative.
    relative: &'static str,
    /// JSON-escaped, as `json_encode` writes it.
    json: &'static str,
    /// In capitals.
    upper: &'static str,
}

const OLD: Site = Site {
    url: "http://store-a.storefactory.test",
    https: "https://store-a.storefactory.test",
    relative: "//store-a.storefactory.test",
    json: "http:\\/\\/store-a.storefactory.test",
    upper: "HTTP://STORE-A.STOREFACTORY.TEST",
};

/// What a clone of OLD at https://clone-of-a.storefactory.test must hold: every scheme form
/// becomes the new site's.
const NEW: Site = Site {
    url: "https://clone-of-a.storefactory.test",
    https: "https://clone-of-a.storefactory.test",
    relative: "//clone-of-a.storefactory.test",
    json: "https:\\/\\/clone-of-a.storefactory.test",
    upper: "https://clone-of-a.storefactory.test",
};

/// Mentions that are not the old site and must survive a rewrite unchanged.
const UNRELATED: &str = "http://store-a.storefactory.test.evil.com/ \
    https://store-a.storefactory.testing/ //store-a.storefactory.test-2.example/ \
    http://store-a.storefactory.test_x/ http://store-a.storefactory.test:8443/other-port \
    http://xstore-a.storefactory.test/ //sub.store-a.storefactory.test/ \
    store-a.storefactory.test (a bare name) mailto:shop@store-a.storefactory.test \
    https:\\/\\/store-a.storefactory.test.evil.com\\/";

fn fill(template: &str, site: &Site) -> String {
    template
        .replace("{URL}", site.url)
        .replace("{HTTPS}", site.https)
        .replace("{REL}", site.relative)
        .replace("{JSON}", site.json)
        .replace("{UPPER}", site.upper)
}

/// A PHP value, serialized as PHP's `serialize` does, lengths in bytes.
enum Php {
    Null,
    Bool(bool),
    Int(i64),
    Float(&'static str),
    Str(String),
    Arr(Vec<(Php, Php)>),
    Obj(&'static str, Vec<(&'static str, Php)>),
}

impl Php {
    fn serialize(&self) -> String {
        match self {
            Php::Null => "N;".to_owned(),
            Php::Bool(b) => format!("b:{};", u8::from(*b)),
            Php::Int(i) => format!("i:{i};"),
            Php::Float(f) => format!("d:{f};"),
            Php::Str(s) => format!("s:{}:\"{s}\";", s.len()),
            Php::Arr(items) => format!(
                "a:{}:{{{}}}",
                items.len(),
                items
                    .iter()
                    .map(|(k, v)| k.serialize() + &v.serialize())
                    .collect::<String>()
            ),
            Php::Obj(class, props) => format!(
                "O:{}:\"{class}\":{}:{{{}}}",
                class.len(),
                props.len(),
                props
                    .iter()
                    .map(|(k, v)| str(k).serialize() + &v.serialize())
                    .collect::<String>()
            ),
        }
    }
}

fn str(s: &str) -> Php {
    Php::Str(s.to_owned())
}

/// One column's value in a fixture row.
#[derive(Clone, PartialEq)]
enum Val {
    Text(String),
    Blob(Vec<u8>),
    /// SQL as it is: numbers, NULL.
    Sql(&'static str),
}

fn text(s: impl Into<String>) -> Val {
    Val::Text(s.into())
}

struct Row {
    table: &'static str,
    values: Vec<(&'static str, Val)>,
}

fn row(table: &'static str, values: Vec<(&'static str, Val)>) -> Row {
    Row { table, values }
}

fn option(name: &str, value: Val) -> Row {
    row(
        "wp_options",
        vec![("option_name", text(name)), ("option_value", value)],
    )
}

/// The WordPress-like content of a store at `site`. The same rows with NEW are what a clone
/// of a store at OLD must hold after the rewrite.
fn fixture(site: &Site) -> Vec<Row> {
    let f = |t: &str| fill(t, site);
    let mut rows = vec![
        option("siteurl", text(f("{URL}"))),
        option("home", text(f("{URL}"))),
        option("blogname", text(HOSTILE.concat())),
        row(
            "wp_options",
            vec![
                ("option_name", text("widget_custom_html")),
                (
                    "option_value",
                    text(
                        Php::Arr(vec![
                            (
                                Php::Int(2),
                                Php::Arr(vec![
                                    (str("title"), str("Links \"'\\ 🛒")),
                                    (
                                        str("content"),
                                        Php::Str(f("<a href=\"{URL}/shop\">Shop</a>\n\
                                                <img src=\"{REL}/logo.png\"> {HTTPS}.")),
                                    ),
                                ]),
                            ),
                            (str("_multiwidget"), Php::Int(1)),
                        ])
                        .serialize(),
                    ),
                ),
            ],
        ),
        row(
            "wp_options",
            vec![
                ("option_name", text("theme_mods_storefront")),
                (
                    "option_value",
                    text(
                        Php::Arr(vec![
                            (str("custom_logo"), Php::Int(7)),
                            (
                                str("header_image"),
                                Php::Str(f("{HTTPS}/wp-content/uploads/header.jpg")),
                            ),
                            (
                                str("nav_menu_locations"),
                                Php::Arr(vec![(str("primary"), Php::Int(3))]),
                            ),
                            (
                                str("settings"),
                                Php::Obj(
                                    "stdClass",
                                    vec![
                                        ("home", Php::Str(f("{URL}/"))),
                                        ("ratio", Php::Float("0.1")),
                                        ("unrelated", str(UNRELATED)),
                                    ],
                                ),
                            ),
                            // Serialized inside serialized: both lengths change.
                            (
                                str("nested"),
                                Php::Str(
                                    Php::Arr(vec![(str("u"), Php::Str(f("{URL}/🛒 ü")))])
                                        .serialize(),
                                ),
                            ),
                            (
                                str("json"),
                                Php::Str(f(r#"{"u":"{JSON}\/x","t":"\"q\" \u00fc"}"#)),
                            ),
                            // Keys are not rewritten.
                            (str("http://store-a.storefactory.test/key"), str("kept")),
                            (str("none"), Php::Null),
                            (str("yes"), Php::Bool(true)),
                        ])
                        .serialize(),
                    ),
                ),
            ],
        ),
        row(
            "wp_options",
            vec![
                ("option_name", text("woocommerce_sf_json")),
                (
                    "option_value",
                    text(f(
                        r#"{"shop":"{JSON}\/shop\/","cdn":"{REL}/x","upper":"{UPPER}"}"#,
                    )),
                ),
            ],
        ),
        // Looks serialized but its length is wrong: left as it is.
        row(
            "wp_options",
            vec![
                ("option_name", text("damaged")),
                (
                    "option_value",
                    text("s:99:\"http://store-a.storefactory.test/\";"),
                ),
            ],
        ),
        option("unrelated", text(UNRELATED)),
    ];
    for (i, hostile) in HOSTILE.iter().enumerate() {
        rows.push(row(
            "wp_posts",
            vec![
                ("post_title", text(*hostile)),
                (
                    "post_content",
                    text(format!(
                        "{hostile}\n{}",
                        f("<a href=\"{URL}/?p=1\">home</a> Visit {UPPER}/. Or {URL}.")
                    )),
                ),
                ("guid", text(f(&format!("{{URL}}/?p={i}")))),
                ("post_date", Val::Sql("'2024-02-29 23:59:59'")),
            ],
        ));
    }
    rows.push(row(
        "wp_posts",
        vec![
            ("post_title", text("long")),
            (
                "post_content",
                text(HOSTILE.concat().repeat(400) + &f("{URL}/end")),
            ),
        ],
    ));
    rows.push(row(
        "wp_postmeta",
        vec![
            ("post_id", Val::Sql("1")),
            ("meta_key", text("_wp_attachment_metadata")),
            (
                "meta_value",
                text(
                    Php::Arr(vec![
                        (str("file"), str("2024/01/a.jpg")),
                        (
                            str("sizes"),
                            Php::Arr(vec![(
                                str("thumbnail"),
                                Php::Arr(vec![(
                                    str("url"),
                                    Php::Str(f("{HTTPS}/wp-content/uploads/a-150.jpg")),
                                )]),
                            )]),
                        ),
                        (
                            str("image_meta"),
                            Php::Arr(vec![(str("caption"), str(HOSTILE[19]))]),
                        ),
                    ])
                    .serialize(),
                ),
            ),
        ],
    ));
    rows.push(row(
        "wp_postmeta",
        vec![
            ("post_id", Val::Sql("1")),
            ("meta_key", text("_builder_data")),
            (
                "meta_value",
                text(f(
                    r#"[{"settings":{"link":{"url":"{JSON}\/shop"},"text":"\"\\\n"},"other":"https:\/\/store-a.storefactory.test.evil.com"}]"#,
                )),
            ),
        ],
    ));
    rows.push(row(
        "wp_postmeta",
        vec![
            ("post_id", Val::Sql("2")),
            ("meta_key", Val::Sql("NULL")),
            ("meta_value", Val::Sql("NULL")),
        ],
    ));
    for hostile in HOSTILE {
        rows.push(row(
            "wp_postmeta",
            vec![
                ("post_id", Val::Sql("3")),
                ("meta_key", text(*hostile)),
                ("meta_value", text(*hostile)),
            ],
        ));
    }
    // Binary and other types; blobs are data, never rewritten.
    let mut blob: Vec<u8> = (0..=255).collect();
    blob.extend_from_slice(b"\0\0'\"\\\n\r\x1a http://store-a.storefactory.test/ \0");
    rows.push(row(
        "wp_sf_misc",
        vec![
            ("id", Val::Sql("1")),
            ("data", Val::Blob(blob)),
            ("amount", Val::Sql("-123456789012.34")),
            ("ratio", Val::Sql("0.1")),
            ("at", Val::Sql("'2024-12-31 23:59:59.123456'")),
            ("note", Val::Sql("_latin1 X'E9E8FF'")),
        ],
    ));
    rows.push(row(
        "wp_sf_misc",
        vec![("id", Val::Sql("2")), ("data", Val::Blob(Vec::new()))],
    ));
    // No primary key: the rewrite cannot address a row and leaves the table alone.
    rows.push(row(
        "wp_sf_log",
        vec![("line", text("http://store-a.storefactory.test/kept"))],
    ));
    rows
}

fn insert_sql(rows: &[Row]) -> String {
    rows.iter()
        .map(|r| {
            let columns: Vec<&str> = r.values.iter().map(|(c, _)| *c).collect();
            let values: Vec<String> = r
                .values
                .iter()
                .map(|(_, v)| match v {
                    Val::Text(t) => sql_text(t),
                    Val::Blob(b) if b.is_empty() => "''".to_owned(),
                    Val::Blob(b) => format!("X'{}'", hex(b)),
                    Val::Sql(s) => (*s).to_owned(),
                })
                .collect();
            format!(
                "INSERT INTO {} ({}) VALUES ({});\n",
                r.table,
                columns.join(", "),
                values.join(", ")
            )
        })
        .collect()
}

/// A store's WordPress files, with names that a shell or tar could misread.
fn write_wordpress_files(dir: &Path) {
    let files: &[(&str, &[u8])] = &[
        ("index.php", b"<?php\n// Silence is golden.\n"),
        (".htaccess", b"RewriteEngine On\n"),
        ("wp-config.php", b"<?php define('DB_PASSWORD', '$(x)');\n"),
        (
            "wp-content/uploads/2024/01/\u{fc}n\u{ef} $(touch pwned) `x` 'q' \"d\".bin",
            &[0, 1, 2, 255, 0, b'\n'],
        ),
        ("wp-content/uploads/--help", b"an option?\n"),
        ("wp-content/uploads/-rf", b"another\n"),
        ("wp-content/uploads/line\nbreak.txt", b"x"),
        ("wp-content/uploads/.storefactory-restore-not", b"kept\n"),
        ("wp-content/plugins/tool/run.sh", b"#!/bin/sh\necho hi\n"),
    ];
    for (name, contents) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
    }
    let tool = dir.join("wp-content/plugins/tool/run.sh");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.join("wp-content/upgrade")).unwrap();
    symlink("uploads/2024", dir.join("wp-content/current")).unwrap();
}

/// Every entry under `dir`: path, kind, mode, contents or link target.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push(format!("{name:?} -> {}", target.display()));
            } else if meta.is_dir() {
                out.push(format!("{name:?}/ {mode:o}"));
                walk(&path, root, out);
            } else {
                let contents = std::fs::read(&path).unwrap();
                out.push(format!("{name:?} {mode:o} {contents:?}"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// One store as the scripts see it: a database and a WordPress folder.
struct Store<'a> {
    server: &'a Mariadb,
    database: &'static str,
    wordpress: PathBuf,
}

/// The scripts as a Job mounts them, a backup volume, and the stores of one test.
struct World {
    server: Mariadb,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let server = Mariadb::start();
        let dir = tempfile::tempdir().unwrap();
        for name in ["scripts", "backups", "tmp", "bin"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        // The client tools, first on the scripts' PATH, record their arguments and the mode
        // of the option file they are given, then run the real tool.
        let log = dir.path().join("argv.log");
        for tool in ["mariadb", "mariadb-dump"] {
            let real = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .env("PATH", path())
                .output()
                .unwrap();
            let real = String::from_utf8(real.stdout).unwrap();
            let wrapper = dir.path().join("bin").join(tool);
            std::fs::write(
                &wrapper,
                format!(
                    "#!/bin/sh\n\
                     printf '\\n%s' \"$@\" >>'{log}'\n\
                     case \"$1\" in --defaults-extra-file=*)\n\
                     stat --printf '\\nmode %a' \"${{1#--defaults-extra-file=}}\" >>'{log}' 2>&1\n\
                     esac\n\
                     printf '\\036' >>'{log}'\n\
                     exec '{real}' \"$@\"\n",
                    log = log.display(),
                    real = real.trim(),
                ),
            )
            .unwrap();
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for file in SCRIPT_FILES {
            std::fs::copy(
                Path::new(SCRIPTS).join(file),
                dir.path().join("scripts").join(file),
            )
            .unwrap();
        }
        World { server, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn backups(&self) -> PathBuf {
        self.path("backups")
    }

    /// A store with the fixture's content at OLD and its WordPress files.
    fn store(&self, database: &'static str) -> Store<'_> {
        self.server.create_store_database(database, &OLD);
        let wordpress = self.path(database);
        std::fs::create_dir(&wordpress).unwrap();
        write_wordpress_files(&wordpress);
        Store {
            server: &self.server,
            database,
            wordpress,
        }
    }

    /// An empty store, as a new one is before its restore: a database holding something of
    /// its own, and a few files.
    fn new_store(&self, database: &'static str) -> Store<'_> {
        self.server.sql(
            "",
            &format!("CREATE DATABASE `{database}` CHARACTER SET utf8mb4"),
        );
        self.server.sql(
            database,
            "CREATE TABLE wp_options (option_id int PRIMARY KEY, option_value text);
             INSERT INTO wp_options VALUES (1, 'fresh');
             CREATE TABLE wp_fresh_only (x int);
             CREATE VIEW wp_fresh_view AS SELECT * FROM wp_fresh_only;",
        );
        let wordpress = self.path(database);
        std::fs::create_dir(&wordpress).unwrap();
        std::fs::write(wordpress.join("index.php"), "<?php // fresh").unwrap();
        std::fs::create_dir(wordpress.join("wp-content")).unwrap();
        Store {
            server: &self.server,
            database,
            wordpress,
        }
    }

    /// Runs one of the scripts as a Job does: the given environment and nothing else (`PATH`
    /// and a private `TMPDIR` aside).
    fn run(&self, command: &[&str], env: &[(&str, OsString)]) -> Output {
        let (program, args) = command.split_first().unwrap();
        let script = self.path("scripts").join(args[0]);
        Command::new(program)
            .arg(script)
            .args(&args[1..])
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", format!("{}:{}", self.path("bin").display(), path()))
            .env("TMPDIR", self.path("tmp"))
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .output()
            .unwrap()
    }

    fn db_env(&self, store: &Store) -> Vec<(&'static str, OsString)> {
        vec![
            ("DB_SOCKET", self.server.socket().into()),
            ("DB_USER", "sf-backup".into()),
            ("DB_PASSWORD", PASSWORD.into()),
            ("DB_NAME", store.database.into()),
        ]
    }

    fn backup_env(&self, store: &Store, id: &str) -> Vec<(&'static str, OsString)> {
        let mut env = self.db_env(store);
        env.extend([
            ("BACKUP_ROOT", self.backups().into()),
            ("BACKUP_ID", id.into()),
            ("WORDPRESS_DIR", store.wordpress.clone().into()),
        ]);
        env
    }

    fn backup(&self, store: &Store, id: &str) -> Output {
        self.run(&["bash", "backup.sh"], &self.backup_env(store, id))
    }

    fn restore(&self, store: &Store, id: &str) -> Output {
        self.run(&["bash", "restore.sh"], &self.backup_env(store, id))
    }

    fn rewrite(&self, store: &Store, old: &str, new: &str) -> Output {
        let mut env = self.db_env(store);
        env.extend([("OLD_URL", old.into()), ("NEW_URL", new.into())]);
        self.run(&["php", "rewrite-urls.php"], &env)
    }

    /// The names in the backup folder, hidden ones included.
    fn backup_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.backups())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Store<'_> {
    fn snapshot(&self) -> Vec<u8> {
        self.server.snapshot(self.database)
    }

    fn files(&self) -> Vec<String> {
        tree(&self.wordpress)
    }

    /// Changes rows, drops a table, adds one, and changes the files.
    fn damage(&self) {
        self.server.sql(
            self.database,
            "UPDATE wp_options SET option_value = 'changed' WHERE option_name = 'siteurl';
             DELETE FROM wp_posts WHERE ID % 2 = 0;
             INSERT INTO wp_postmeta (post_id, meta_key, meta_value) VALUES (9, 'new', 'x');
             DROP TABLE wp_sf_misc;
             CREATE TABLE wp_added_later (x int);
             DROP TRIGGER wp_sf_count;",
        );
        std::fs::remove_file(self.wordpress.join("index.php")).unwrap();
        std::fs::write(self.wordpress.join("wp-config.php"), "<?php // changed").unwrap();
        std::fs::write(self.wordpress.join("added-later.php"), "<?php").unwrap();
        std::fs::remove_dir(self.wordpress.join("wp-content/upgrade")).unwrap();
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        stderr(output)
    );
}

fn assert_refused(output: &Output, message: &str, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "{what}: expected a refusal, got {}:\n{}",
        output.status,
        stderr(output)
    );
    assert!(
        stderr(output).contains(message),
        "{what}: expected {message:?} in\n{}",
        stderr(output)
    );
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

#[test]
fn a_restore_gives_back_every_row_and_file_into_the_same_store_or_a_new_one() {
    let world = World::new();
    let store = world.store("store_a");
    let original = store.snapshot();
    let original_files = store.files();

    let output = world.backup(&store, "nightly-1");
    assert_success(&output, "backup.sh");
    assert_eq!(world.backup_names(), ["nightly-1"]);
    let backup = world.backups().join("nightly-1");
    let mut contents: Vec<String> = std::fs::read_dir(&backup)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    contents.sort();
    assert_eq!(contents, ["db.sql.gz", "files.tar.gz", "manifest.json"]);

    // The manifest: what the listing shows (size, time) and what the restore checks.
    let text = std::fs::read_to_string(backup.join("manifest.json")).unwrap();
    assert_eq!(
        show(&output.stdout),
        text,
        "the manifest is printed on success"
    );
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(manifest["format"], 1);
    assert_eq!(manifest["id"], "nightly-1");
    assert_eq!(manifest["source"]["site_url"], OLD.url);
    assert_eq!(manifest["source"]["database"], "store_a");
    let created = manifest["created"].as_str().unwrap();
    assert!(
        created.len() == 20
            && created.ends_with('Z')
            && created.as_bytes()[10] == b'T'
            && created.starts_with("20"),
        "created is not RFC 3339 UTC: {created}"
    );
    for file in ["db.sql.gz", "files.tar.gz"] {
        let entry = &manifest["files"][file];
        let path = backup.join(file);
        assert_eq!(entry["bytes"], std::fs::metadata(&path).unwrap().len());
        assert_eq!(entry["sha256"], sha256(&path).as_str());
    }
    assert!(
        std::fs::read_dir(world.path("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "the client's option file (with the password) is left behind"
    );

    // The store changes after the backup; the restore gives back exactly the backup.
    store.damage();
    assert_ne!(store.snapshot(), original);
    assert_success(&world.restore(&store, "nightly-1"), "restore.sh");
    let restored = store.snapshot();
    assert!(
        restored == original,
        "the restored database differs:\n{}\n---- original ----\n{}",
        show(&restored),
        show(&original)
    );
    assert_eq!(store.files(), original_files);

    // Restoring twice is the same as once.
    assert_success(&world.restore(&store, "nightly-1"), "the second restore.sh");
    assert!(store.snapshot() == original);
    assert_eq!(store.files(), original_files);

    // Into a new store: its own tables, views and files are replaced, and the source store
    // is left as it is.
    let clone = world.new_store("store_b");
    assert_success(
        &world.restore(&clone, "nightly-1"),
        "restore.sh into a new store",
    );
    let cloned = clone.snapshot();
    assert!(
        cloned == original,
        "the new store's database differs:\n{}\n---- original ----\n{}",
        show(&cloned),
        show(&original)
    );
    assert_eq!(clone.files(), original_files);
    assert!(store.snapshot() == original);
    assert!(!world.dir.path().join("pwned").exists());
    assert!(
        std::fs::read_dir(world.path("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "temporary files are left behind"
    );

    // The password reached the tools only through a private option file, which came first.
    let log = std::fs::read(world.path("argv.log")).unwrap();
    assert!(
        !log.windows(PASSWORD.len())
            .any(|w| w == PASSWORD.as_bytes()),
        "the password is on a command line"
    );
    // One record per call (ended by \x1e): "\n" before each argument, then the mode.
    let log = show(&log);
    let calls: Vec<&str> = log.split_terminator('\x1e').collect();
    assert!(calls.len() >= 6, "{log}");
    for call in calls {
        let connects = call.starts_with("\n--defaults-extra-file=");
        assert!(
            (connects && call.ends_with("\nmode 600"))
                || call == "\n--version"
                || call == "\n--help",
            "a client was run without the private option file first: {call:?}"
        );
    }
}

#[test]
fn a_missing_damaged_or_incomplete_backup_is_refused_before_anything_changes() {
    let world = World::new();
    let store = world.store("store_a");
    assert_success(&world.backup(&store, "good"), "backup.sh");
    // The store moves on; a refused restore must leave it so.
    store.damage();
    let before = store.snapshot();
    let before_files = store.files();

    // A copy of the good backup under another id, then damaged.
    let copy = |id: &str, damage: &dyn Fn(&Path)| {
        let dir = world.backups().join(id);
        std::fs::create_dir(&dir).unwrap();
        for file in ["db.sql.gz", "files.tar.gz", "manifest.json"] {
            std::fs::copy(world.backups().join("good").join(file), dir.join(file)).unwrap();
        }
        let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
        std::fs::write(
            dir.join("manifest.json"),
            manifest.replace("\"id\": \"good\"", &format!("\"id\": \"{id}\"")),
        )
        .unwrap();
        damage(&dir);
    };
    let edit_manifest = |dir: &Path, from: &str, to: &str| {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from} not in {text}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    };
    copy("flipped", &|dir| {
        let path = dir.join("db.sql.gz");
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
    });
    copy("truncated", &|dir| {
        let path = dir.join("files.tar.gz");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    });
    copy("no-manifest", &|dir| {
        std::fs::remove_file(dir.join("manifest.json")).unwrap()
    });
    copy("no-dump", &|dir| {
        std::fs::remove_file(dir.join("db.sql.gz")).unwrap()
    });
    copy("other-id", &|dir| {
        edit_manifest(dir, "\"id\": \"other-id\"", "\"id\": \"good\"")
    });
    copy("future", &|dir| {
        edit_manifest(dir, "\"format\": 1,", "\"format\": 2,")
    });
    // A damaged dump whose manifest agrees: only the gzip check can tell.
    copy("consistent-but-broken", &|dir| {
        let path = dir.join("db.sql.gz");
        let old_sum = sha256(&path);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
        edit_manifest(dir, &old_sum, &sha256(&path));
    });
    // What a crash during a backup leaves.
    std::fs::create_dir(world.backups().join(".partial-crashed")).unwrap();
    std::fs::write(world.backups().join(".partial-crashed/db.sql.gz"), "").unwrap();

    for (id, message) in [
        (
            "flipped",
            "backup flipped is damaged: the SHA-256 of db.sql.gz does not match the manifest",
        ),
        ("truncated", "backup truncated is damaged: files.tar.gz has"),
        (
            "no-manifest",
            "backup no-manifest has no manifest.json: it is not a complete backup",
        ),
        ("no-dump", "backup no-dump is damaged: db.sql.gz is missing"),
        ("other-id", "names backup 'good', not other-id"),
        (
            "future",
            "backup future has format 2; this restore reads format 1",
        ),
        (
            "consistent-but-broken",
            "db.sql.gz is not a valid gzip stream",
        ),
        (
            "crashed",
            "backup crashed is incomplete (it failed or is still being taken)",
        ),
        ("never-taken", "backup never-taken does not exist in"),
        ("../good", "invalid backup id '../good'"),
        ("--help", "invalid backup id '--help'"),
        ("Good", "invalid backup id 'Good'"),
        ("", "BACKUP_ID is not set"),
    ] {
        let output = world.restore(&store, id);
        assert_refused(&output, message, &format!("restore of {id:?}"));
        assert!(
            store.snapshot() == before,
            "a refused restore of {id:?} changed the database"
        );
        assert_eq!(
            store.files(),
            before_files,
            "a refused restore of {id:?} changed the files"
        );
    }

    // A good backup into a database it cannot reach: refused before the files change too.
    let mut env = world.backup_env(&store, "good");
    env.retain(|(k, _)| *k != "DB_PASSWORD");
    env.push(("DB_PASSWORD", "wrong".into()));
    let output = world.run(&["bash", "restore.sh"], &env);
    assert_refused(
        &output,
        "cannot connect to the database store_a",
        "restore with a wrong password",
    );
    assert!(store.snapshot() == before);
    assert_eq!(store.files(), before_files);

    let output = world.run(&["bash", "restore.sh", "everything"], &env);
    assert_refused(&output, "unknown step 'everything'", "an unknown step");
    assert!(!world.dir.path().join("pwned").exists());
}

#[test]
fn a_failed_backup_leaves_nothing_and_an_existing_backup_is_never_replaced() {
    let world = World::new();
    let store = world.store("store_a");

    let mut env = world.backup_env(&store, "first");
    env.retain(|(k, _)| *k != "DB_PASSWORD");
    env.push(("DB_PASSWORD", "wrong".into()));
    let output = world.run(&["bash", "backup.sh"], &env);
    assert_refused(
        &output,
        "cannot connect to the database store_a on",
        "a backup with a wrong password",
    );
    assert!(
        !stderr(&output).contains(PASSWORD) && !stderr(&output).contains("wrong"),
        "{}",
        stderr(&output)
    );
    assert_eq!(world.backup_names(), Vec::<String>::new());

    // The database is dumped, then the files cannot be read: nothing is kept.
    let mut env = world.backup_env(&store, "first");
    env.retain(|(k, _)| *k != "WORDPRESS_DIR");
    env.push(("WORDPRESS_DIR", world.path("no-such-folder").into()));
    let output = world.run(&["bash", "backup.sh"], &env);
    assert_refused(&output, "the WordPress folder", "a backup without files");
    assert!(stderr(&output).contains("database dumped"));
    assert_eq!(world.backup_names(), Vec::<String>::new());

    let too_long = "a".repeat(64);
    for (id, message) in [
        ("../first", "invalid backup id '../first'"),
        ("-x", "invalid backup id '-x'"),
        (too_long.as_str(), "invalid backup id"),
        ("first/../../x", "invalid backup id"),
    ] {
        let output = world.backup(&store, id);
        assert_refused(&output, message, &format!("backup {id:?}"));
    }
    assert_eq!(world.backup_names(), Vec::<String>::new());

    // What a crash left is replaced by the next attempt.
    let staging = world.backups().join(".partial-first");
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join("junk"), "from a crash").unwrap();
    assert_success(&world.backup(&store, "first"), "backup.sh after a crash");
    assert_eq!(world.backup_names(), ["first"]);
    assert!(!world.backups().join("first/junk").exists());

    let manifest = std::fs::read(world.backups().join("first/manifest.json")).unwrap();
    let output = world.backup(&store, "first");
    assert_refused(
        &output,
        "backup first already exists",
        "a second backup first",
    );
    assert_eq!(
        std::fs::read(world.backups().join("first/manifest.json")).unwrap(),
        manifest
    );

    // As a Job runs it: the dump where the MySQL tools are, then the files and the seal where
    // the WordPress files are.
    let env = world.backup_env(&store, "split");
    let output = world.run(&["bash", "backup.sh", "files", "seal"], &env);
    assert_refused(&output, "run the db step first", "files before db");
    assert_success(
        &world.run(&["bash", "backup.sh", "db"], &env),
        "backup.sh db",
    );
    assert_eq!(world.backup_names(), [".partial-split", "first"]);
    assert_success(
        &world.run(&["bash", "backup.sh", "files", "seal"], &env),
        "backup.sh files seal",
    );
    assert_eq!(world.backup_names(), ["first", "split"]);
    let before = store.snapshot();
    store.damage();
    assert_success(&world.restore(&store, "split"), "restore.sh of split");
    assert!(store.snapshot() == before);
}

#[test]
fn rewriting_a_restored_clone_gives_exactly_the_new_sites_database_and_changes_nothing_twice() {
    let world = World::new();
    let store = world.store("store_a");
    let source = store.snapshot();
    assert_success(&world.backup(&store, "for-clone"), "backup.sh");
    let clone = world.new_store("store_b");
    assert_success(&world.restore(&clone, "for-clone"), "restore.sh");

    let output = world.rewrite(&clone, OLD.url, &format!("{}/", NEW.url));
    assert_success(&output, "rewrite-urls.php");
    let stdout = show(&output.stdout);

    // The database the new site would have held from the start, built independently.
    world.server.create_store_database("expected", &NEW);
    let expected = world.server.snapshot("expected");
    let rewritten = clone.snapshot();
    if rewritten != expected {
        let (got, want) = (show(&rewritten), show(&expected));
        let diff: Vec<String> = got
            .lines()
            .zip(want.lines())
            .filter(|(g, w)| g != w)
            .map(|(g, w)| format!("got:  {g}\nwant: {w}"))
            .take(10)
            .collect();
        panic!("the rewritten clone differs:\n{}", diff.join("\n"));
    }
    assert!(store.snapshot() == source, "the source store changed");

    // Rows changed per table: those whose content differs between the sites.
    let (old, new) = (fixture(&OLD), fixture(&NEW));
    for table in ["wp_options", "wp_postmeta", "wp_posts", "wp_sf_misc"] {
        let changed = old
            .iter()
            .zip(&new)
            .filter(|(o, n)| o.table == table && o.values != n.values)
            .count();
        assert!(changed > 0 || table == "wp_sf_misc");
        let extra = if table == "wp_options" {
            ", 1 values left as they were (serialized, but damaged)"
        } else {
            ""
        };
        assert!(
            stdout.contains(&format!("\n{table}: {changed} rows changed{extra}\n"))
                || stdout.starts_with(&format!("{table}: {changed} rows changed{extra}\n")),
            "{table}: {changed} rows expected in\n{stdout}"
        );
    }
    assert!(
        stdout.contains("wp_sf_log: 0 rows changed, 1 rows skipped (no primary key)"),
        "{stdout}"
    );

    // Serialized values unserialize in PHP, with the new site in them.
    let values = world.server.sql(
        "store_b",
        "SELECT HEX(option_value) FROM wp_options
         WHERE option_name IN ('widget_custom_html', 'theme_mods_storefront')
         UNION ALL SELECT HEX(meta_value) FROM wp_postmeta
         WHERE meta_key = '_wp_attachment_metadata'",
    );
    let values = show(&values);
    assert_eq!(values.lines().count(), 3);
    for value in values.lines() {
        let php = Command::new("php")
            .args([
                "-r",
                r#"$s = hex2bin(trim(stream_get_contents(STDIN)));
                   $v = unserialize($s, ['allowed_classes' => false]);
                   if ($v === false || serialize($v) !== $s) { exit(1); }
                   echo json_encode($v, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);"#,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(value.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        let json = show(&php.stdout);
        assert!(php.status.success(), "does not unserialize: {value}");
        assert!(
            json.contains("https://clone-of-a.storefactory.test/"),
            "{json}"
        );
    }
    let siteurl = world.server.sql(
        "store_b",
        "SELECT option_value FROM wp_options WHERE option_name = 'siteurl'",
    );
    assert_eq!(show(&siteurl), "https://clone-of-a.storefactory.test\n");

    // A second run finds nothing to change.
    let output = world.rewrite(&clone, OLD.url, NEW.url);
    assert_success(&output, "the second rewrite-urls.php");
    let stdout = show(&output.stdout);
    for line in stdout.lines().filter(|l| l.starts_with("wp_")) {
        assert!(line.contains(": 0 rows changed"), "{stdout}");
    }
    assert!(stdout.contains("done: 0 rows changed"), "{stdout}");
    assert!(clone.snapshot() == expected);

    // Bad input: a clear message, nothing changed.
    for (old_url, new_url, message) in [
        (
            OLD.url,
            "https://clone.test/shop",
            "NEW_URL must be a site URL",
        ),
        (
            "store-a.storefactory.test",
            NEW.url,
            "OLD_URL must be a site URL",
        ),
        (
            "http://x.test/$(touch pwned)",
            NEW.url,
            "OLD_URL must be a site URL",
        ),
        (OLD.url, OLD.url, "OLD_URL and NEW_URL are the same site"),
    ] {
        let output = world.rewrite(&clone, old_url, new_url);
        assert_refused(&output, message, &format!("rewrite {old_url} to {new_url}"));
    }
    let mut env = world.db_env(&clone);
    env.retain(|(k, _)| *k != "DB_NAME");
    env.extend([
        ("DB_NAME", "no_such_store".into()),
        ("OLD_URL", OLD.url.into()),
        ("NEW_URL", NEW.url.into()),
    ]);
    let output = world.run(&["php", "rewrite-urls.php"], &env);
    assert_refused(
        &output,
        "cannot connect to the database no_such_store",
        "rewrite of a missing database",
    );
    assert!(clone.snapshot() == expected);
    assert!(!world.dir.path().join("pwned").exists());
}
