//! The seeding code, executed: `seed.sh` of the built-in blueprint runs under real bash, dash
//! and BusyBox sh (the shell of the Alpine-based WP-CLI image) with a recording `wp` first on
//! PATH (tests/seed/wp), and `seed-products.php` runs
//! under real php-cli with stand-ins of the WooCommerce API (tests/seed/wc-stand-ins.php).
//! The scripts and the data are taken from the rendered `seed` ConfigMap, as the Job mounts
//! them. Hostile text must reach WP-CLI and WooCommerce byte for byte as data (one argument,
//! never an option, never shell), and a second run must create nothing twice.
//!
//! Needs `bash`, `dash`, `busybox` and `php` (Debian's php-cli); `scripts/test.sh` installs
//! them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use storefactory_core::blueprint::{BlueprintRegistry, DEFAULT_BLUEPRINT, SecretValues};
use storefactory_core::manifest::Manifest;
use storefactory_core::product::{
    MAX_DESCRIPTION_LEN, MAX_NAME_LEN, Price, Product, parse_products,
};
use storefactory_core::spec::{StoreId, StoreSpec};

const STUBS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/seed");

/// A product text that tries everything: quoting, shell, options, JSON, PHP, unicode.
const HOSTILE: &[&str] = &[
    "--allow-root",
    "--url=http://evil.example/",
    "--require=/tmp/x.php",
    "-v",
    "--",
    "$(touch pwned)",
    "`touch pwned`",
    "${IFS}touch${IFS}pwned",
    "'; touch pwned; echo '",
    "\"; touch pwned; echo \"",
    "a\\nb\\\\c\\",
    "\"},{\"name\":\"injected\",\"price\":\"0\"}",
    "<?php system('touch pwned'); ?>",
    "%s%n%x",
    "null",
    "  leading and trailing spaces  ",
    "🛒 Ünïcödé café — 日本語 — שלום — مرحبا — e\u{301}",
    "line one\nline two\n\nline four",
    "windows\r\nline ends",
    "tab\tseparated\tcells",
    "*?[a-z]~/.. > out < in | cat & wait ;",
];

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn require_tools() {
    for program in ["bash", "dash", "busybox", "php"] {
        assert!(
            have(program),
            "{program} is needed by these tests (scripts/test.sh installs it; \
             `apt-get install php-cli busybox` does it by hand)"
        );
    }
}

fn hostile_products() -> Vec<Product> {
    let mut products: Vec<Product> = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, text)| Product {
            // Names: the hostile text itself, with a counter so that each is distinct.
            name: format!("{text} #{i}").chars().take(MAX_NAME_LEN).collect(),
            price: Price::parse(["0", "5.99", "1299", "0.5"][i % 4]).unwrap(),
            description: HOSTILE[(i + 7) % HOSTILE.len()].repeat(3),
        })
        .collect();
    // Very long text, at the limits.
    products.push(Product {
        name: "Ω".repeat(MAX_NAME_LEN),
        price: Price::parse("999999999999.99").unwrap(),
        description: "$(x)`y`\"'\\\n\t🛒".repeat(MAX_DESCRIPTION_LEN / 11)[..]
            .chars()
            .take(MAX_DESCRIPTION_LEN)
            .collect(),
    });
    products.push(Product {
        name: "Plain".to_owned(),
        price: Price::parse("1").unwrap(),
        description: String::new(),
    });
    products
}

fn hostile_spec() -> StoreSpec {
    let id = StoreId::new("seedtest").unwrap();
    let mut spec = StoreSpec::new(id, "alice", "store-seedtest.storefactory.test");
    spec.site_title = "--url=http://evil.example/ $(touch pwned) `touch pwned` '\"\\ ; | & 🛒 \
                       --title=x"
        .to_owned();
    spec.wordpress.admin_user = "--allow-root".to_owned();
    spec.wordpress.admin_email = "a+--x@example.com".to_owned();
    spec.products = hostile_products();
    spec
}

/// The data of the rendered `seed` ConfigMap.
fn seed_config_map(spec: &StoreSpec) -> BTreeMap<String, String> {
    let manifests = BlueprintRegistry::builtin()
        .unwrap()
        .render(DEFAULT_BLUEPRINT, spec, SecretValues::Placeholders)
        .unwrap();
    manifests
        .into_iter()
        .find_map(|m| match m {
            Manifest::ConfigMap(cm) if cm.metadata.name.as_deref() == Some("seed") => cm.data,
            _ => None,
        })
        .expect("the seed ConfigMap")
}

/// One seeding pod's world: the ConfigMap's files as mounted, the WordPress directory, the
/// stand-ins' state and logs.
struct Seeding {
    dir: tempfile::TempDir,
    data: BTreeMap<String, String>,
    password: String,
}

/// What one run of seed.sh did.
struct Run {
    calls: Vec<Vec<Vec<u8>>>,
    stdout: String,
}

impl Seeding {
    fn new(spec: &StoreSpec, password: &str) -> Self {
        require_tools();
        let dir = tempfile::tempdir().unwrap();
        let data = seed_config_map(spec);
        let seed = dir.path().join("seed");
        std::fs::create_dir(&seed).unwrap();
        for file in ["seed.sh", "seed-products.php", "products.json"] {
            std::fs::write(seed.join(file), &data[file]).unwrap();
        }
        let html = dir.path().join("html");
        std::fs::create_dir(&html).unwrap();
        // WordPress' entrypoint has written its configuration; the script waits for it.
        std::fs::write(html.join("wp-config.php"), "<?php\n").unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        Seeding {
            dir,
            data,
            password: password.to_owned(),
        }
    }

    /// The store was changed to `spec`: its ConfigMap, as mounted, holds the new values.
    fn change(&mut self, spec: &StoreSpec) {
        self.data = seed_config_map(spec);
        for file in ["seed.sh", "seed-products.php", "products.json"] {
            std::fs::write(self.path("seed").join(file), &self.data[file]).unwrap();
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs seed.sh under `shell` (a command line: `busybox sh`) as the Job does
    /// (`sh /seed/seed.sh`), with the Job's environment and nothing else.
    fn run(&self, shell: &str) -> Run {
        let log = self.path("wp.log");
        let _ = std::fs::remove_file(&log);
        let mut words = shell.split(' ');
        let output = Command::new(words.next().unwrap())
            .args(words)
            .arg(self.path("seed/seed.sh"))
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", format!("{STUBS}:/usr/local/bin:/usr/bin:/bin"))
            .env("SEED_DIR", self.path("seed"))
            .env("WORDPRESS_DIR", self.path("html"))
            .env("WP_STUB_LOG", &log)
            .env("WP_STUB_STATE", self.path("state"))
            .env("WC_STUB_DB", self.path("state/products.json"))
            .env("WORDPRESS_DB_HOST", "mysql:3306")
            .env("WORDPRESS_DB_NAME", "wordpress")
            .env("WORDPRESS_DB_USER", "wordpress")
            .env("WORDPRESS_DB_PASSWORD", "db-password")
            .env("ADMIN_USER", "--allow-root")
            .env("ADMIN_PASSWORD", &self.password)
            .env("ADMIN_EMAIL", &self.data["admin-email"])
            .env("SITE_TITLE", &self.data["site-title"])
            .env("SITE_URL", &self.data["site-url"])
            .env("CURRENCY", &self.data["currency"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "seed.sh under {shell} failed: {}\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Run {
            calls: parse_log(&std::fs::read(&log).unwrap()),
            stdout,
        }
    }

    /// The products the stand-ins hold, in creation order.
    fn products(&self) -> Vec<BTreeMap<String, String>> {
        let text = std::fs::read_to_string(self.path("state/products.json")).unwrap();
        let db: serde_json::Value = serde_json::from_str(&text).unwrap();
        serde_json::from_value(db["products"].clone()).unwrap()
    }

    /// Every file in the test's directories: nothing may appear that the scripts were not
    /// meant to write (a `pwned` from a command substitution, an `out` from a redirection).
    fn files(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else {
                    out.push(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut files = Vec::new();
        walk(self.dir.path(), self.dir.path(), &mut files);
        files.sort();
        files
    }
}

/// The stand-in's log: per call, the argument count and then each argument, NUL-terminated.
fn parse_log(bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut fields = bytes.split(|b| *b == 0);
    let mut calls = Vec::new();
    while let Some(count) = fields.next() {
        if count.is_empty() {
            break; // the end of the log
        }
        let count: usize = std::str::from_utf8(count).unwrap().parse().unwrap();
        calls.push(
            (0..count)
                .map(|_| fields.next().unwrap().to_vec())
                .collect(),
        );
    }
    calls
}

fn argv(args: &[&str]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.as_bytes().to_vec()).collect()
}

/// How WP-CLI reads one argument (`WP_CLI\Configurator::extract_assoc`): `--no-x` and `--x`
/// are flags, `--x=value` an option whose value is everything after the first `=`, anything
/// else positional. There is no `--` to end options: a positional argument that starts with
/// `--` is read as an option, so user text may only ever be an option's value.
#[derive(Debug, PartialEq)]
enum WpArg<'a> {
    Flag(&'a str),
    Option(&'a str, &'a str),
    Positional(&'a str),
}

fn wp_reads(arg: &str) -> WpArg<'_> {
    match arg.strip_prefix("--") {
        Some(rest) => match rest.split_once('=') {
            Some((name, value)) if !name.is_empty() => WpArg::Option(name, value),
            None if !rest.is_empty() => WpArg::Flag(rest),
            _ => WpArg::Positional(arg),
        },
        None => WpArg::Positional(arg),
    }
}

fn first_run_calls(seeding: &Seeding) -> Vec<Vec<Vec<u8>>> {
    let data = &seeding.data;
    let seed = seeding.path("seed");
    let cod = r#"{"enabled":"yes","title":"Cash on delivery","description":"Pay with cash upon delivery.","instructions":"Pay with cash upon delivery.","enable_for_methods":"","enable_for_virtual":"yes"}"#;
    vec![
        argv(&["db", "check", "--quiet"]),
        argv(&["core", "is-installed"]),
        argv(&[
            "core",
            "install",
            &format!("--url={}", data["site-url"]),
            &format!("--title={}", data["site-title"]),
            "--admin_user=--allow-root",
            &format!("--admin_email={}", data["admin-email"]),
            "--skip-email",
            "--prompt=admin_password",
        ]),
        argv(&["plugin", "is-installed", "woocommerce"]),
        argv(&["plugin", "install", "woocommerce"]),
        argv(&["plugin", "is-active", "woocommerce"]),
        argv(&["plugin", "activate", "woocommerce"]),
        argv(&["theme", "is-installed", "storefront"]),
        argv(&["theme", "install", "storefront"]),
        argv(&["theme", "is-active", "storefront"]),
        argv(&["theme", "activate", "storefront"]),
        argv(&["option", "update", "blogname"]),
        argv(&[
            "option",
            "update",
            "woocommerce_currency",
            &data["currency"],
        ]),
        argv(&[
            "option",
            "update",
            "woocommerce_cod_settings",
            cod,
            "--format=json",
        ]),
        argv(&["option", "update", "woocommerce_coming_soon", "no"]),
        argv(&[
            "eval-file",
            &seed.join("seed-products.php").display().to_string(),
            &seed.join("products.json").display().to_string(),
        ]),
    ]
}

fn second_run_calls(seeding: &Seeding) -> Vec<Vec<Vec<u8>>> {
    let skipped = |call: &Vec<Vec<u8>>| {
        matches!(
            call.get(1).map(Vec::as_slice),
            Some(b"install" | b"activate")
        )
    };
    first_run_calls(seeding)
        .into_iter()
        .filter(|call| !skipped(call))
        .collect()
}

fn show(calls: &[Vec<Vec<u8>>]) -> String {
    calls
        .iter()
        .map(|c| {
            format!(
                "{:?}\n",
                c.iter()
                    .map(|a| String::from_utf8_lossy(a))
                    .collect::<Vec<_>>()
            )
        })
        .collect()
}

#[test]
fn seed_sh_passes_hostile_values_to_wp_cli_as_single_option_values_under_every_shell() {
    // A chosen admin password may hold anything but control characters (12 to 128).
    let password = "--url=x $(touch pwned) `touch pwned` '\" \\ ; 🛒";
    for shell in ["bash", "dash", "busybox sh"] {
        let seeding = Seeding::new(&hostile_spec(), password);
        let run = seeding.run(shell);
        let expected = first_run_calls(&seeding);
        assert!(
            run.calls == expected,
            "under {shell}, WP-CLI was called with\n{}\nexpected\n{}",
            show(&run.calls),
            show(&expected)
        );
        // As WP-CLI reads them: user text is only ever the value of the intended option.
        let install = &run.calls[2];
        let read: Vec<WpArg> = install
            .iter()
            .map(|a| wp_reads(std::str::from_utf8(a).unwrap()))
            .collect();
        assert_eq!(
            read,
            [
                WpArg::Positional("core"),
                WpArg::Positional("install"),
                WpArg::Option("url", "http://store-seedtest.storefactory.test/"),
                WpArg::Option("title", hostile_spec().site_title.as_str()),
                WpArg::Option("admin_user", "--allow-root"),
                WpArg::Option("admin_email", "a+--x@example.com"),
                WpArg::Flag("skip-email"),
                WpArg::Option("prompt", "admin_password"),
            ]
        );
        for call in &run.calls {
            for arg in call {
                let arg = std::str::from_utf8(arg).unwrap();
                if let WpArg::Option(name, _) | WpArg::Flag(name) = wp_reads(arg) {
                    assert!(
                        [
                            "quiet",
                            "url",
                            "title",
                            "admin_user",
                            "admin_email",
                            "skip-email",
                            "prompt",
                            "format"
                        ]
                        .contains(&name),
                        "under {shell}, WP-CLI would read an option {name:?} from {arg:?}"
                    );
                }
            }
        }
        // The password goes on standard input, as one line, not on the command line.
        assert_eq!(
            std::fs::read_to_string(seeding.path("state/install-stdin")).unwrap(),
            format!("{password}\n")
        );
        assert!(
            !run.calls
                .iter()
                .flatten()
                .any(|a| a.windows(password.len()).any(|w| w == password.as_bytes())),
            "the password is on a command line"
        );
        // So does the title, which is set again on every run.
        assert_eq!(
            std::fs::read_to_string(seeding.path("state/option-blogname")).unwrap(),
            hostile_spec().site_title
        );
        // Nothing ran that the text spelt: no file appeared but the stand-ins' own.
        assert_eq!(
            seeding.files(),
            [
                "html/wp-config.php",
                "seed/products.json",
                "seed/seed-products.php",
                "seed/seed.sh",
                "state/install-stdin",
                "state/installed",
                "state/option-blogname",
                "state/plugin-active-woocommerce",
                "state/plugin-woocommerce",
                "state/products.json",
                "state/theme-active-storefront",
                "state/theme-storefront",
                "wp.log",
            ],
            "under {shell}"
        );
        assert!(run.stdout.contains("[seed] done"), "{}", run.stdout);
    }
}

#[test]
fn hostile_products_reach_woocommerce_byte_for_byte_through_php() {
    let spec = hostile_spec();
    let seeding = Seeding::new(&spec, "a-fine-password-1");
    let run = seeding.run("bash");
    let stored = seeding.products();
    assert_eq!(stored.len(), spec.products.len());
    for (i, (product, stored)) in spec.products.iter().zip(&stored).enumerate() {
        let expected: BTreeMap<String, String> = [
            ("id", (i + 1).to_string()),
            ("sku", format!("sf-{}", i + 1)),
            ("name", product.name.clone()),
            ("regular_price", product.price.as_str().to_owned()),
            ("description", product.description.clone()),
            ("status", "publish".to_owned()),
            ("catalog_visibility", "visible".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(stored, &expected, "product {i}");
    }
    assert!(
        run.stdout
            .contains(&format!("Success: {} products seeded", spec.products.len())),
        "{}",
        run.stdout
    );
    assert!(!seeding.files().iter().any(|f| f.contains("pwned")));
}

#[test]
fn seeding_twice_creates_nothing_twice_and_updates_products_by_sku() {
    let spec = hostile_spec();
    let seeding = Seeding::new(&spec, "a-fine-password-1");
    let first = seeding.run("bash");
    let created = seeding.products();
    assert_eq!(
        first.stdout.matches("\ncreated sf-").count()
            + usize::from(first.stdout.starts_with("created sf-")),
        spec.products.len(),
        "{}",
        first.stdout
    );

    // The Job's pod is retried (or the store re-seeded): WordPress, WooCommerce and the
    // theme are not installed again, and the products are updated, not duplicated.
    let second = seeding.run("busybox sh");
    let expected = second_run_calls(&seeding);
    assert!(
        second.calls == expected,
        "the second run called\n{}\nexpected\n{}",
        show(&second.calls),
        show(&expected)
    );
    assert_eq!(seeding.products(), created);
    assert!(!second.stdout.contains("created sf-"), "{}", second.stdout);
    assert_eq!(
        second.stdout.matches("updated sf-").count(),
        spec.products.len()
    );
    assert_eq!(
        std::fs::read_to_string(seeding.path("state/install-stdin"))
            .unwrap()
            .lines()
            .count(),
        1,
        "WordPress is installed once"
    );
}

#[test]
fn products_that_are_not_a_list_fail_the_seeding_with_a_message() {
    let seeding = Seeding::new(&hostile_spec(), "a-fine-password-1");
    std::fs::write(seeding.path("seed/products.json"), "{\"not\": \"a list\"}").unwrap();
    let output = Command::new("php")
        .arg(Path::new(STUBS).join("wc-stand-ins.php"))
        .arg(seeding.path("seed/seed-products.php"))
        .arg(seeding.path("seed/products.json"))
        .env("WC_STUB_DB", seeding.path("state/products.json"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read a list of products"),
        "{stderr}"
    );
}

#[test]
fn products_with_fields_of_the_wrong_type_fail_the_seeding_with_a_message() {
    let seeding = Seeding::new(&hostile_spec(), "a-fine-password-1");
    for (json, message) in [
        (r#"[{"name":["x"],"price":"1"}]"#, "product sf-1"),
        (r#"[{"name":"x","price":1}]"#, "product sf-1"),
        (r#"["x"]"#, "product sf-1"),
        ("null", "cannot read a list of products"),
        ("[{", "cannot read a list of products"),
    ] {
        std::fs::write(seeding.path("seed/products.json"), json).unwrap();
        let output = Command::new("php")
            .arg(Path::new(STUBS).join("wc-stand-ins.php"))
            .arg(seeding.path("seed/seed-products.php"))
            .arg(seeding.path("seed/products.json"))
            .env("WC_STUB_DB", seeding.path("state/products.json"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{json}: {stderr}");
        assert!(stderr.contains(message), "{json}: {stderr}");
    }
}

#[test]
fn reseeding_a_changed_store_updates_products_by_sku_and_sets_the_new_title_and_currency() {
    let mut spec = hostile_spec();
    spec.products = parse_products("T-Shirt|5.99|Cotton\nJeans|12.99|Denim").unwrap();
    let mut seeding = Seeding::new(&spec, "a-fine-password-1");
    seeding.run("bash");
    let before = seeding.products();
    assert_eq!(before.len(), 2);
    assert_eq!(
        std::fs::read_to_string(seeding.path("state/option-blogname")).unwrap(),
        spec.site_title,
        "the title reaches WordPress byte for byte, on standard input"
    );

    // The store is changed: a new price and description for the first product, a third
    // product, another title and currency.
    spec.products =
        parse_products("T-Shirt|7.50|Organic cotton\nJeans|12.99|Denim\nMug|3|Ceramic").unwrap();
    spec.site_title = "--title=Changed $(touch pwned) Shop".to_owned();
    spec.currency = storefactory_core::spec::Currency::new("EUR").unwrap();
    seeding.change(&spec);
    let run = seeding.run("busybox sh");
    let after = seeding.products();
    assert_eq!(after.len(), 3, "none duplicated: {after:#?}");
    assert_eq!(after[0]["id"], before[0]["id"], "the same product, updated");
    assert_eq!(after[0]["sku"], "sf-1");
    assert_eq!(after[0]["regular_price"], "7.50");
    assert_eq!(after[0]["description"], "Organic cotton");
    assert_eq!(after[1], before[1], "an unchanged product stays as it was");
    assert_eq!(after[2]["sku"], "sf-3");
    assert_eq!(after[2]["name"], "Mug");
    assert!(run.stdout.contains("updated sf-1") && run.stdout.contains("created sf-3"));
    assert_eq!(
        std::fs::read_to_string(seeding.path("state/option-blogname")).unwrap(),
        spec.site_title
    );
    assert!(
        run.calls
            .contains(&argv(&["option", "update", "woocommerce_currency", "EUR"])),
        "{}",
        show(&run.calls)
    );
    assert!(
        !seeding.files().iter().any(|f| f.contains("pwned")),
        "{:?}",
        seeding.files()
    );

    // Changed to fewer products: the ones dropped are hidden (orders may refer to them),
    // not deleted, and a later run leaves them so.
    spec.products = parse_products("T-Shirt|7.50|Organic cotton").unwrap();
    seeding.change(&spec);
    let run = seeding.run("dash");
    let after = seeding.products();
    assert_eq!(after.len(), 3);
    let statuses: Vec<&str> = after.iter().map(|p| p["status"].as_str()).collect();
    assert_eq!(statuses, ["publish", "draft", "draft"]);
    assert!(
        run.stdout.contains("hidden sf-2") && run.stdout.contains("hidden sf-3"),
        "{}",
        run.stdout
    );
    let again = seeding.run("bash");
    assert!(!again.stdout.contains("hidden"), "{}", again.stdout);
    assert_eq!(seeding.products(), after);
}
