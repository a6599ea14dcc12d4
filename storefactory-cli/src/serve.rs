//! `storefactory serve`: the HTTP server of storefactory-http, configured from options and
//! `STOREFACTORY_*` environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use storefactory_core::port::Quota;
use storefactory_core::spec::is_dns1123_subdomain;
use storefactory_http::ServerConfig;

use crate::exit::{Code, Failure};
use crate::{Context, convert, secret};

/// Environment variable holding the admin password (there is no option: arguments are
/// visible to every user of the machine).
const ADMIN_PASSWORD_ENV: &str = "STOREFACTORY_ADMIN_PASSWORD";
/// Environment variable holding the token-signing key.
pub(crate) const TOKEN_KEY_ENV: &str = "STOREFACTORY_TOKEN_KEY";

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(
        long,
        env = "STOREFACTORY_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    /// Stores are published at store-<id>.<domain>.
    #[arg(
        long,
        env = "STOREFACTORY_STORE_DOMAIN",
        default_value = "storefactory.local",
        value_name = "DOMAIN"
    )]
    pub store_domain: String,

    /// IngressClass of store Ingresses; the cluster default when absent.
    #[arg(long, env = "STOREFACTORY_INGRESS_CLASS", value_name = "NAME")]
    pub ingress_class: Option<String>,

    /// StorageClass of store volumes; the cluster default when absent.
    #[arg(long, env = "STOREFACTORY_STORAGE_CLASS", value_name = "NAME")]
    pub storage_class: Option<String>,

    /// cert-manager ClusterIssuer for store certificates; plain HTTP when absent.
    #[arg(long, env = "STOREFACTORY_TLS_CLUSTER_ISSUER", value_name = "NAME")]
    pub tls_cluster_issuer: Option<String>,

    /// Browser origin allowed to call the API (CORS); repeatable, or comma-separated in the
    /// environment variable.
    #[arg(
        long = "cors-origin",
        env = "STOREFACTORY_CORS_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub cors_origins: Vec<String>,

    /// File holding the password of the `admin` user created on first start (when the
    /// database has no users). Or set STOREFACTORY_ADMIN_PASSWORD. Without either, a random
    /// password is generated and written to `<db>.admin-password`, readable by you only.
    #[arg(long, env = "STOREFACTORY_ADMIN_PASSWORD_FILE", value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,

    /// How long an access token is valid (e.g. 1h, 30m).
    #[arg(long, env = "STOREFACTORY_TOKEN_TTL", default_value = "1h", value_parser = convert::parse_duration, value_name = "DURATION")]
    pub token_ttl: Duration,

    /// Stores a user created through the API may hold, unless given another quota.
    #[arg(long, env = "STOREFACTORY_DEFAULT_MAX_STORES", default_value_t = Quota::default().max_stores, value_name = "N")]
    pub default_max_stores: u32,

    /// Storage in GiB a user created through the API may hold, unless given another quota.
    #[arg(long, env = "STOREFACTORY_DEFAULT_MAX_STORAGE", default_value_t = Quota::default().max_storage_gib, value_name = "GIB")]
    pub default_max_storage: u64,

    /// Take the client address from X-Forwarded-For (only behind a trusted proxy).
    #[arg(long, env = "STOREFACTORY_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,

    /// Run on a local Kubernetes control plane that this command installs (the first time,
    /// five to ten minutes), starts, and stops on Ctrl-C, instead of a configured cluster.
    /// Needs a binary built with `--features local-cluster`.
    #[arg(long, env = "STOREFACTORY_LOCAL_CLUSTER")]
    pub local_cluster: bool,

    /// Directory of the local control plane: its data (stores survive a restart, with the
    /// same --db), kubeconfig and logs.
    #[arg(
        long,
        env = "STOREFACTORY_LOCAL_CLUSTER_DIR",
        default_value = "storefactory-cluster",
        value_name = "DIR"
    )]
    pub local_cluster_dir: PathBuf,

    /// Files of earlier token keys that still verify tokens but sign none: rotate the key
    /// without logging anyone out, then drop the old key after the token lifetime.
    #[arg(
        long = "previous-token-key-file",
        env = "STOREFACTORY_PREVIOUS_TOKEN_KEY_FILES",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    pub previous_token_key_files: Vec<PathBuf>,

    /// Networks of trusted reverse proxies (e.g. 10.0.0.0/8): X-Forwarded-For is read only
    /// from them, from the right, through trusted hops only. Repeat or separate by commas.
    #[arg(
        long = "trusted-proxy",
        env = "STOREFACTORY_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub trusted_proxies: Vec<String>,

    /// Login attempts on one account, from anywhere, before each further one must wait a
    /// doubling delay.
    #[arg(
        long,
        env = "STOREFACTORY_MAX_LOGIN_ATTEMPTS_PER_ACCOUNT",
        default_value_t = 20,
        value_name = "N"
    )]
    pub max_login_attempts_per_account: u32,

    /// Stores one user may create per hour.
    #[arg(
        long,
        env = "STOREFACTORY_MAX_STORE_CREATIONS",
        default_value_t = 20,
        value_name = "N"
    )]
    pub max_store_creations: u32,

    /// How long records of deleted stores and their events are kept before they are purged.
    #[arg(long, env = "STOREFACTORY_DELETED_STORE_RETENTION", default_value = "720h", value_parser = convert::parse_duration, value_name = "DURATION")]
    pub deleted_store_retention: Duration,

    /// Where backup archives are kept: the platform's data volume. Default: a `backups`
    /// folder next to the database.
    #[arg(long, env = "STOREFACTORY_BACKUP_DIR", value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,

    /// Largest backup archive a store may hand over, in GiB.
    #[arg(long, env = "STOREFACTORY_MAX_BACKUP_SIZE", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=4096), value_name = "GIB")]
    pub max_backup_size: u64,

    /// Take a backup of every ready store this often (e.g. 24h); never when unset.
    #[arg(long, env = "STOREFACTORY_BACKUP_SCHEDULE", value_parser = convert::parse_duration, value_name = "DURATION")]
    pub backup_schedule: Option<Duration>,

    /// Scheduled backups kept per store; the oldest beyond are deleted (manual ones never
    /// are).
    #[arg(long, env = "STOREFACTORY_BACKUP_KEEP", default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=1000), value_name = "N")]
    pub backup_keep: u64,

    /// Event streams one user may hold open at once.
    #[arg(
        long,
        env = "STOREFACTORY_MAX_EVENT_STREAMS_PER_USER",
        default_value_t = 8,
        value_name = "N"
    )]
    pub max_event_streams_per_user: usize,

    /// Longest time a request may take (event streams excepted).
    #[arg(long, env = "STOREFACTORY_REQUEST_TIMEOUT", default_value = "30s", value_parser = convert::parse_duration, value_name = "DURATION")]
    pub request_timeout: Duration,

    /// Let webhooks target private, loopback, link-local and cluster-internal addresses,
    /// over plain http too. Off by default: any user could make the server call into its
    /// own network. For development and tests with a receiver on this machine.
    #[arg(long, env = "STOREFACTORY_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,

    /// Webhooks one user may register.
    #[arg(
        long,
        env = "STOREFACTORY_MAX_WEBHOOKS_PER_USER",
        default_value_t = 10,
        value_name = "N"
    )]
    pub max_webhooks_per_user: usize,
}

pub(crate) fn secret_from(file: Option<&Path>, env: &str, what: &str) -> Result<Option<String>> {
    let value = match file {
        Some(path) => Some(secret::strip_newline(secret::read_input(path)?)),
        None => std::env::var(env).ok(),
    };
    match value {
        Some(v) if v.is_empty() => {
            Err(Failure::new(Code::Usage, format!("the {what} is empty")).into())
        }
        other => Ok(other),
    }
}

fn class(option: &str, value: Option<String>) -> Result<Option<String>> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) if !is_dns1123_subdomain(&v) => Err(Failure::new(
            Code::Usage,
            format!("--{option}: {v:?} is not a valid Kubernetes object name"),
        )
        .into()),
        other => Ok(other),
    }
}

/// Where backup archives are kept when not in a folder: an S3-compatible bucket. Global,
/// like --backup-endpoint: the server keeps archives there, and command-line deletions
/// remove them there.
#[derive(Debug, Clone, Args)]
pub struct BucketArgs {
    /// Keep backup archives in an S3-compatible bucket at this endpoint instead
    /// (`https://s3.eu-west-1.amazonaws.com`, `http://minio.minio.svc:9000`; path-style).
    /// Uploads are staged in the backup folder while they arrive. Needs --backup-s3-bucket
    /// and --backup-s3-credentials-file. `serve` and `backup delete` must be given the
    /// same bucket.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "STOREFACTORY_BACKUP_S3_ENDPOINT",
        value_name = "URL"
    )]
    pub backup_s3_endpoint: Option<String>,

    /// The bucket's name.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "STOREFACTORY_BACKUP_S3_BUCKET",
        value_name = "NAME",
        requires = "backup_s3_endpoint"
    )]
    pub backup_s3_bucket: Option<String>,

    /// Put before every object key, e.g. `storefactory/`.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "STOREFACTORY_BACKUP_S3_PREFIX",
        default_value = "",
        value_name = "PREFIX"
    )]
    pub backup_s3_prefix: String,

    /// The signing region.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "STOREFACTORY_BACKUP_S3_REGION",
        default_value = "us-east-1",
        value_name = "REGION"
    )]
    pub backup_s3_region: String,

    /// File with the bucket's key pair: `AWS_ACCESS_KEY_ID=…` and `AWS_SECRET_ACCESS_KEY=…`
    /// lines, or the access key id and the secret on two lines. Without it, the
    /// STOREFACTORY_BACKUP_S3_CREDENTIALS environment variable holds the same text.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "STOREFACTORY_BACKUP_S3_CREDENTIALS_FILE",
        value_name = "FILE"
    )]
    pub backup_s3_credentials_file: Option<PathBuf>,
}

/// The environment variable with the bucket's credentials when no file is given.
const BACKUP_S3_CREDENTIALS_ENV: &str = "STOREFACTORY_BACKUP_S3_CREDENTIALS";

/// Where archives are kept: the bucket when one is configured (staging uploads in a
/// folder of `dir`), else the folder given (else the server's default, next to the
/// database).
pub(crate) fn archive_store(
    args: &BucketArgs,
    backup_dir: Option<PathBuf>,
    dir: PathBuf,
) -> Result<Option<std::sync::Arc<dyn storefactory_core::backup::ArchiveStore>>> {
    let Some(endpoint) = args.backup_s3_endpoint.clone() else {
        return Ok(backup_dir.map(|dir| {
            std::sync::Arc::new(storefactory_core::backup::ArchiveDir::new(dir))
                as std::sync::Arc<dyn storefactory_core::backup::ArchiveStore>
        }));
    };
    let usage = |message: String| -> anyhow::Error { Failure::new(Code::Usage, message).into() };
    let bucket = args
        .backup_s3_bucket
        .clone()
        .ok_or_else(|| usage("--backup-s3-endpoint needs --backup-s3-bucket".to_owned()))?;
    let text = secret_from(
        args.backup_s3_credentials_file.as_deref(),
        BACKUP_S3_CREDENTIALS_ENV,
        "backup bucket's credentials",
    )?
    .ok_or_else(|| {
        usage(format!(
            "--backup-s3-endpoint needs --backup-s3-credentials-file (or {BACKUP_S3_CREDENTIALS_ENV})"
        ))
    })?;
    let credentials = storefactory_http::archive_bucket::parse_credentials(&text)
        .map_err(|e| usage(e.to_string()))?;
    let bucket = storefactory_http::archive_bucket::Bucket::new(
        storefactory_http::archive_bucket::BucketConfig {
            endpoint,
            bucket,
            prefix: args.backup_s3_prefix.clone(),
            region: args.backup_s3_region.clone(),
            credentials,
        },
        dir.join(".bucket-staging"),
    )
    .map_err(|e| usage(e.to_string()))?;
    Ok(Some(std::sync::Arc::new(bucket)))
}

/// The server configuration for these options.
pub fn server_config(ctx: &Context, args: ServeArgs) -> Result<ServerConfig> {
    let domain = args.store_domain.trim().to_ascii_lowercase();
    if !is_dns1123_subdomain(&domain) {
        return Err(Failure::new(
            Code::Usage,
            format!("--store-domain: {domain:?} is not a valid DNS domain"),
        )
        .into());
    }
    let archives = archive_store(
        &ctx.global.bucket,
        args.backup_dir.clone(),
        args.backup_dir
            .clone()
            .unwrap_or_else(|| ctx.global.db.with_file_name("backups")),
    )?;
    let mut config = ServerConfig::default();
    config.listen = args.listen;
    config.database = ctx.global.db.clone();
    config.kubeconfig = ctx.global.kubeconfig.clone();
    config.store_domain = domain;
    config.ingress_class = class("ingress-class", args.ingress_class)?;
    config.storage_class = class("storage-class", args.storage_class)?;
    config.tls_cluster_issuer = class("tls-cluster-issuer", args.tls_cluster_issuer)?;
    config.blueprints_dir = ctx.global.blueprints_dir.clone();
    config.cors_origins = args
        .cors_origins
        .into_iter()
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    config.admin_password = secret_from(
        args.admin_password_file.as_deref(),
        ADMIN_PASSWORD_ENV,
        "admin password",
    )?;
    config.token_key = ctx.token_key()?;
    config.token_ttl = args.token_ttl;
    config.default_quota = Quota {
        max_stores: args.default_max_stores,
        max_storage_gib: args.default_max_storage,
    };
    config.trust_forwarded_for = args.trust_forwarded_for;
    for file in &args.previous_token_key_files {
        let key = secret::strip_newline(secret::read_input(file)?);
        if key.len() < 32 {
            return Err(
                Failure::new(Code::Usage, "a previous token key is shorter than 32 bytes").into(),
            );
        }
        config.previous_token_keys.push(key);
    }
    config.trusted_proxies = args.trusted_proxies;
    config.max_login_attempts_per_account = args.max_login_attempts_per_account;
    config.max_store_creations = args.max_store_creations;
    config.deleted_store_retention = args.deleted_store_retention;
    config.max_event_streams_per_user = args.max_event_streams_per_user;
    config.request_timeout = args.request_timeout;
    config.webhooks.allow_private = args.webhook_allow_private;
    config.webhooks.max_per_user = args.max_webhooks_per_user;
    config.provisioner.leader = Some(ctx.leader());
    config.provisioner.paused_backend = ctx.paused_backend();
    config.provisioner.backups = storefactory_core::provisioner::BackupConfig {
        endpoint: ctx.global.backup_endpoint.clone(),
        archives,
        schedule: args.backup_schedule,
        keep: usize::try_from(args.backup_keep).unwrap_or(usize::MAX),
    };
    config.max_backup_bytes = args.max_backup_size.saturating_mul(1024 * 1024 * 1024);
    Ok(config)
}

/// A private copy of the kubeconfig with `context` as its current context, for the server,
/// which follows a kubeconfig's current context. Removed when dropped.
fn kubeconfig_with_context(
    kubeconfig: Option<&Path>,
    context: &str,
) -> Result<tempfile::NamedTempFile> {
    let mut file = match kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path)
            .with_context(|| format!("cannot read kubeconfig {}", path.display()))?,
        None => kube::config::Kubeconfig::read().context("cannot read the kubeconfig")?,
    };
    if !file.contexts.iter().any(|c| c.name == context) {
        return Err(Failure::new(
            Code::Usage,
            format!("--context: the kubeconfig has no context {context:?}"),
        )
        .into());
    }
    file.current_context = Some(context.to_owned());
    let text = storefactory_core::yaml::to_string(&file)
        .map_err(|e| anyhow::anyhow!("cannot write the kubeconfig copy: {e}"))?;
    // Created readable by this user only: it holds the same credentials as the original.
    let copy = tempfile::Builder::new()
        .prefix("storefactory-kubeconfig-")
        .tempfile()
        .context("cannot create a temporary kubeconfig")?;
    std::fs::write(copy.path(), text).context("cannot write a temporary kubeconfig")?;
    Ok(copy)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Runs `serve` until interrupted (Ctrl-C or SIGTERM).
pub async fn run(ctx: &Context, args: ServeArgs) -> Result<()> {
    if args.local_cluster {
        if ctx.global.kubeconfig.is_some() || ctx.global.context.is_some() {
            return Err(Failure::new(
                Code::Usage,
                "--local-cluster runs its own cluster: give it without --kubeconfig and --context",
            )
            .into());
        }
        return run_on_local_cluster(ctx, args).await;
    }
    let mut config = server_config(ctx, args)?;
    let _kubeconfig_copy = match &ctx.global.context {
        Some(context) => {
            let copy = kubeconfig_with_context(ctx.global.kubeconfig.as_deref(), context)?;
            config.kubeconfig = Some(copy.path().to_owned());
            Some(copy)
        }
        None => None,
    };
    storefactory_http::serve(config, shutdown_signal())
        .await
        .context("the server failed")
}

/// `serve --local-cluster`: the server on a local control plane started for it. Validates
/// the options before installing or starting anything.
#[cfg(feature = "local-cluster")]
async fn run_on_local_cluster(ctx: &Context, args: ServeArgs) -> Result<()> {
    let dir = args.local_cluster_dir.clone();
    let mut config = server_config(ctx, args)?;
    let cluster = crate::local_cluster::LocalCluster::start(&dir).await?;
    config.kubeconfig = Some(cluster.kubeconfig());
    let result = storefactory_http::serve(config, shutdown_signal())
        .await
        .context("the server failed");
    cluster.stop();
    result
}

/// Without the `local-cluster` feature the option exists, to say how to get it.
#[cfg(not(feature = "local-cluster"))]
async fn run_on_local_cluster(_ctx: &Context, args: ServeArgs) -> Result<()> {
    let _ = args.local_cluster_dir;
    Err(Failure::new(
        Code::Usage,
        "--local-cluster: this binary was built without the local control plane (it keeps \
         the production binary small); build it in with \
         `cargo run --release -p storefactory-cli --features local-cluster -- serve --local-cluster`",
    )
    .into())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn config(args: &[&str]) -> Result<ServerConfig> {
        let mut argv = vec!["storefactory", "serve"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv)?;
        let Command::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        server_config(&Context { global: cli.global }, *serve)
    }

    #[test]
    fn options_map_onto_the_server_config() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, format!("{}\n", "k".repeat(40))).unwrap();
        let config = config(&[
            "--listen",
            "0.0.0.0:9090",
            "--db",
            "/tmp/sf.db",
            "--store-domain",
            "Shops.Example.com",
            "--ingress-class",
            "nginx",
            "--cors-origin",
            "https://a.example",
            "--cors-origin",
            "https://b.example",
            "--token-key-file",
            key.to_str().unwrap(),
            "--token-ttl",
            "30m",
            "--default-max-stores",
            "2",
        ])
        .unwrap();
        assert_eq!(config.listen.port(), 9090);
        assert_eq!(config.database, PathBuf::from("/tmp/sf.db"));
        assert_eq!(config.store_domain, "shops.example.com");
        assert_eq!(config.ingress_class.as_deref(), Some("nginx"));
        assert_eq!(config.cors_origins.len(), 2);
        assert_eq!(config.token_key.as_deref(), Some("k".repeat(40).as_str()));
        assert_eq!(config.token_ttl, Duration::from_secs(1800));
        assert_eq!(config.default_quota.max_stores, 2);
    }

    #[test]
    fn a_backup_bucket_needs_its_name_and_credentials_and_never_shows_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("s3");
        std::fs::write(
            &credentials,
            "AWS_ACCESS_KEY_ID=minio\nAWS_SECRET_ACCESS_KEY=very-secret\n",
        )
        .unwrap();
        let credentials = credentials.to_str().unwrap();
        let db = dir.path().join("sf.db");
        let db = db.to_str().unwrap();
        let configured = config(&[
            "--db",
            db,
            "--backup-s3-endpoint",
            "http://minio.minio.svc:9000",
            "--backup-s3-bucket",
            "store-backups",
            "--backup-s3-prefix",
            "sf/",
            "--backup-s3-credentials-file",
            credentials,
        ])
        .unwrap();
        let archives = format!("{:?}", configured.provisioner.backups.archives.unwrap());
        assert!(
            archives.contains("store-backups") && archives.contains("sf/"),
            "{archives}"
        );
        assert!(!archives.contains("very-secret"), "{archives}");
        for (args, says) in [
            (
                vec![
                    "--backup-s3-endpoint",
                    "http://m:9000",
                    "--backup-s3-credentials-file",
                    credentials,
                ],
                "--backup-s3-bucket",
            ),
            (
                vec![
                    "--backup-s3-endpoint",
                    "http://m:9000",
                    "--backup-s3-bucket",
                    "store-backups",
                ],
                "--backup-s3-credentials-file",
            ),
            (
                vec![
                    "--backup-s3-endpoint",
                    "ftp://m",
                    "--backup-s3-bucket",
                    "store-backups",
                    "--backup-s3-credentials-file",
                    credentials,
                ],
                "http",
            ),
        ] {
            let mut args = args.clone();
            args.extend(["--db", db]);
            let err = config(&args).unwrap_err();
            assert_eq!(crate::exit::code_of(&err), Code::Usage, "{err}");
            assert!(err.to_string().contains(says), "{args:?}: {err}");
            assert!(!err.to_string().contains("very-secret"), "{err}");
        }
    }

    #[test]
    fn command_line_deletions_use_the_same_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("s3");
        std::fs::write(&credentials, "minio\nvery-secret\n").unwrap();
        let cli = Cli::try_parse_from([
            "storefactory",
            "backup",
            "delete",
            "ab12cd34",
            "bk12cd34ef56",
            "--backup-s3-endpoint",
            "http://minio.minio.svc:9000",
            "--backup-s3-bucket",
            "store-backups",
            "--backup-s3-credentials-file",
            credentials.to_str().unwrap(),
        ])
        .unwrap();
        let ctx = Context { global: cli.global };
        let archives = format!("{:?}", ctx.backups().unwrap().archives.unwrap());
        assert!(
            archives.starts_with("Bucket") && archives.contains("store-backups"),
            "{archives}"
        );
        assert!(!archives.contains("very-secret"), "{archives}");
        let cli = Cli::try_parse_from(["storefactory", "backup", "list", "ab12cd34"]).unwrap();
        let ctx = Context { global: cli.global };
        let archives = format!("{:?}", ctx.backups().unwrap().archives.unwrap());
        assert!(archives.starts_with("ArchiveDir"), "{archives}");
    }

    fn run_serve(args: &[&str]) -> Result<()> {
        let mut argv = vec!["storefactory", "serve"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv)?;
        let Command::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        let ctx = Context { global: cli.global };
        tokio::runtime::Runtime::new()?.block_on(run(&ctx, *serve))
    }

    #[test]
    fn a_local_cluster_is_not_combined_with_a_kubeconfig() {
        let err =
            run_serve(&["--local-cluster", "--kubeconfig", "/nonexistent/kubeconfig"]).unwrap_err();
        assert_eq!(crate::exit::code_of(&err), Code::Usage);
        assert!(err.to_string().contains("--kubeconfig"), "{err}");
    }

    #[cfg(not(feature = "local-cluster"))]
    #[test]
    fn without_the_feature_local_cluster_says_how_to_build_it_in() {
        let err = run_serve(&["--local-cluster"]).unwrap_err();
        assert_eq!(crate::exit::code_of(&err), Code::Usage);
        assert!(
            err.to_string().contains("--features local-cluster"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_refused_before_serving() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "short\n").unwrap();
        let err = config(&["--token-key-file", key.to_str().unwrap()]).unwrap_err();
        assert_eq!(crate::exit::code_of(&err), Code::Usage);
        let err = config(&["--store-domain", "not a domain"]).unwrap_err();
        assert_eq!(crate::exit::code_of(&err), Code::Usage);
        let err = config(&["--storage-class", "Bad_Class"]).unwrap_err();
        assert_eq!(crate::exit::code_of(&err), Code::Usage);
    }
}
