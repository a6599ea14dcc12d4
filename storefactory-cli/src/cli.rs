//! The command line's shape: every command, option and help text, as clap derive types.
//!
//! Values are parsed into validated core types here (store ids, usernames, roles, durations),
//! so a malformed argument is a usage error (exit 2) before anything runs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use storefactory_core::spec::StoreId;
use storefactory_sql::Role;

use crate::convert;

const ABOUT: &str = "Storefactory provisions isolated WooCommerce stores on Kubernetes.";

const LONG_ABOUT: &str = "\
Storefactory provisions isolated WordPress + WooCommerce stores on Kubernetes, one namespace \
per store, for many users with quotas.

This command runs the platform (`serve`) and manages stores, users and blueprints directly \
through the library, like helm or kubectl: it talks to the cluster of the current kube \
context (or --kubeconfig/--context) and keeps its records in a local SQLite file (--db). \
A server and the command line can share one database file.";

const AFTER_HELP: &str = "\
Examples:
  storefactory doctor                              check the cluster and your permissions
  storefactory user add admin --role admin         create the first user (asks for a password)
  storefactory serve                               run the HTTP API, dashboard and reconciler
  storefactory store create --products-file products.txt --storage 2 --wait
  storefactory store list --output json
  storefactory store delete ab12cd34 --wait
  storefactory blueprint render --id demo > demo.yaml

Exit codes (stable, for scripts):
  0  success
  1  unexpected failure (I/O, database, a broken blueprint)
  2  invalid arguments or input (bad id, quantity, products file, password rules)
  3  not found (store, user, blueprint or webhook)
  4  conflict (quota exceeded, already exists, operation not allowed in the store's state)
  5  the Kubernetes cluster cannot be reached, or refused a request
  6  the store failed (or was deleted) while waiting for it to become ready
  7  timed out waiting
  8  doctor found a problem (missing permission, ingress or storage class)

Environment: every option marked [env: ...] can be set by that variable instead.";

/// Storefactory provisions isolated WooCommerce stores on Kubernetes.
#[derive(Debug, Parser)]
#[command(
    name = "storefactory",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// Options every command accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The SQLite database of users, quotas and stores (created if missing).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "STOREFACTORY_DB",
        default_value = "storefactory.db",
        value_name = "PATH"
    )]
    pub db: PathBuf,

    /// The kubeconfig file to use; by default $KUBECONFIG, then ~/.kube/config, then the
    /// in-cluster service account.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "STOREFACTORY_KUBECONFIG",
        value_name = "PATH"
    )]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use instead of the current one.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "STOREFACTORY_KUBE_CONTEXT",
        value_name = "NAME"
    )]
    pub context: Option<String>,

    /// A directory of blueprints (one folder per blueprint) that override or add to the
    /// built-in ones.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "STOREFACTORY_BLUEPRINTS_DIR",
        value_name = "DIR"
    )]
    pub blueprints_dir: Option<PathBuf>,

    /// File holding the server's token key (at least 32 bytes), or set
    /// STOREFACTORY_TOKEN_KEY. `serve` signs access tokens with it; every command seals and
    /// opens what the database keeps secret (a password chosen at creation, webhook secrets)
    /// under a key derived from it. Without either, the key a server without one keeps in
    /// the database is used (generated once).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "STOREFACTORY_TOKEN_KEY_FILE",
        value_name = "FILE"
    )]
    pub token_key_file: Option<PathBuf>,

    /// Namespace of the Lease that elects the one process reconciling stores (`serve`
    /// replicas and `store ... --wait` take part); the platform's own namespace in a cluster.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "STOREFACTORY_LEASE_NAMESPACE",
        default_value = "default",
        value_name = "NAMESPACE"
    )]
    pub lease_namespace: String,

    /// How long, in seconds, the leader's Lease lasts without renewal: the longest a crashed
    /// leader holds up the work before another process takes over.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "STOREFACTORY_LEASE_DURATION",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(2..=3600),
        value_name = "SECONDS"
    )]
    pub lease_duration: u64,

    /// Where the host of a suspended store is sent, as `host:port`: the platform's own
    /// Service (e.g. `storefactory.storefactory.svc.cluster.local:80`), which answers a
    /// paused store's host with a "store paused" page. Every process (`serve` and
    /// `store ... --wait`) must be given the same value. Unset: a suspended store's Ingress
    /// keeps its backend, and the ingress controller answers its own 503.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "STOREFACTORY_PAUSED_BACKEND",
        value_parser = parse_paused_backend,
        value_name = "HOST:PORT"
    )]
    pub paused_backend: Option<storefactory_core::blueprint::PausedBackend>,

    /// Where stores' backup and restore Jobs reach the platform, as
    /// `<url>@<namespace>[:<port>]`: the base URL of the server's internal endpoints as seen
    /// from store pods, and the platform's namespace and pod port (their NetworkPolicy lets
    /// them reach it there; the URL's port by default), e.g.
    /// `http://storefactory.storefactory.svc@storefactory:8080`. Every process (`serve`,
    /// `backup create`, `store restore|clone`) must be given the same value. Unset: stores
    /// cannot be backed up or restored.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "STOREFACTORY_BACKUP_ENDPOINT",
        value_parser = parse_backup_endpoint,
        value_name = "URL@NAMESPACE[:PORT]"
    )]
    pub backup_endpoint: Option<storefactory_core::backup::BackupEndpoint>,

    /// Where backup archives are kept, when in a bucket (`--backup-s3-*`).
    #[command(flatten)]
    pub bucket: crate::serve::BucketArgs,

    /// Output format: human-readable tables, or JSON / YAML for scripts.
    #[arg(
        short,
        long,
        global = true,
        help_heading = "Global options",
        value_enum,
        default_value_t = OutputFormat::Table,
        value_name = "FORMAT"
    )]
    pub output: OutputFormat,

    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true,
        help_heading = "Global options", action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// JSON, one document.
    Json,
    /// YAML, one document.
    Yaml,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the platform: HTTP API, dashboard and the reconciler.
    #[command(after_help = SERVE_HELP)]
    Serve(Box<crate::serve::ServeArgs>),

    /// Create, inspect, wait for and delete stores.
    #[command(subcommand)]
    Store(StoreCommand),

    /// Manage users, their passwords and quotas.
    #[command(subcommand)]
    User(UserCommand),

    /// List blueprints and render a store's manifests as YAML.
    #[command(subcommand)]
    Blueprint(BlueprintCommand),

    /// Check the cluster: reachable, version, permissions, ingress and storage classes.
    #[command(long_about = DOCTOR_LONG, after_help = DOCTOR_HELP)]
    Doctor(DoctorArgs),

    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCommand),

    /// Register, list and remove webhooks, and read their delivery logs.
    #[command(subcommand)]
    Webhook(crate::commands::webhook::WebhookCommand),

    /// Back up stores, list and delete their backups (restore and clone are `store`
    /// commands).
    #[command(subcommand)]
    Backup(crate::commands::backup::BackupCommand),
}

const SERVE_HELP: &str = "\
Examples:
  storefactory serve
  STOREFACTORY_LISTEN=0.0.0.0:8080 STOREFACTORY_STORE_DOMAIN=shop.example.com storefactory serve
  storefactory serve --admin-password-file /run/secrets/admin --token-key-file /run/secrets/key

Without a reachable cluster the server starts anyway, logs it, and reports it on /ready.";

const DOCTOR_LONG: &str = "\
Checks that this identity can run the platform on the cluster:

  - the API server can be reached, and its version;
  - every permission the platform needs, asked with SelfSubjectAccessReview: namespaces \
    (create, delete, get, list, watch), and in all namespaces create, patch, get, list, \
    watch and delete of every kind the blueprints create, plus pods (get, list, watch);
  - the ingress class exists (--ingress-class), or the cluster has a default IngressClass;
  - the storage class exists (--storage-class), or the cluster has a default StorageClass.

One line per problem. A missing default IngressClass is a warning (many controllers serve \
Ingresses without a class); everything else is an error and makes the exit code 8.";

const DOCTOR_HELP: &str = "\
Examples:
  storefactory doctor
  storefactory doctor --context kind-kind --ingress-class nginx
  storefactory doctor --output json | jq '.checks[] | select(.status != \"ok\")'";

/// Options of `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The IngressClass stores will use; it must exist.
    #[arg(long, env = "STOREFACTORY_INGRESS_CLASS", value_name = "NAME")]
    pub ingress_class: Option<String>,

    /// The StorageClass stores will use; it must exist. Without it, a default StorageClass
    /// must exist.
    #[arg(long, env = "STOREFACTORY_STORAGE_CLASS", value_name = "NAME")]
    pub storage_class: Option<String>,
}

/// `store` commands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create a store; with --wait, follow it until it is ready.
    #[command(long_about = CREATE_LONG, after_help = CREATE_HELP)]
    Create(Box<CreateArgs>),

    /// List stores.
    #[command(
        after_help = "Examples:\n  storefactory store list\n  storefactory store list --owner alice --output json"
    )]
    List(ListArgs),

    /// Show one store and its recent history.
    Get {
        /// The store id.
        id: StoreId,
        /// How many of the latest events to show.
        #[arg(long, default_value_t = 10, value_name = "N")]
        events: usize,
    },

    /// Delete a store: its namespace and everything in it.
    #[command(
        long_about = "Delete a store: marks it deleting and deletes its namespace. The record \
                      becomes `deleted` once the namespace is gone; with --wait this command \
                      waits for that, otherwise a running server (or `store wait --deleted`) \
                      finishes it.",
        after_help = "Examples:\n  storefactory store delete ab12cd34 --wait\n  storefactory store delete ab12cd34 && storefactory store wait ab12cd34 --deleted"
    )]
    Delete {
        /// The store id.
        id: StoreId,
        /// Waiting.
        #[command(flatten)]
        wait: WaitArgs,
    },

    /// Provision a failed store again.
    Retry {
        /// The store id.
        id: StoreId,
        /// Waiting.
        #[command(flatten)]
        wait: WaitArgs,
    },

    /// Suspend a ready store: no pod runs, its data, passwords and quota are kept.
    #[command(
        long_about = "Suspend a ready store: its workloads are scaled to zero, so that no pod \
                      runs, while its volumes, Secrets and place in its owner's quota are \
                      kept; its host answers that the store is paused (see \
                      --paused-backend). With --wait this command waits until the store is \
                      `suspended`.",
        after_help = "Examples:\n  storefactory store suspend ab12cd34 --wait\n  storefactory store resume ab12cd34 --wait"
    )]
    Suspend {
        /// The store id.
        id: StoreId,
        /// Waiting.
        #[command(flatten)]
        wait: WaitArgs,
    },

    /// Change a ready store: a bigger volume, resources, products, title, currency.
    #[command(long_about = CHANGE_LONG, after_help = CHANGE_HELP)]
    Change(Box<ChangeArgs>),

    /// Resume a suspended store, with the same data and passwords.
    #[command(
        long_about = "Resume a suspended store: its workloads come back with the same volumes \
                      and Secrets (the same data and passwords); the seeding Job is not run \
                      again. With --wait this command waits until the store is `ready`."
    )]
    Resume {
        /// The store id.
        id: StoreId,
        /// Waiting.
        #[command(flatten)]
        wait: WaitArgs,
    },

    /// Wait until a store is ready (or deleted), showing its progress.
    #[command(
        long_about = "Wait until a store is ready, or with --deleted until it is gone, showing \
                      each provisioning step. While waiting this command also runs the \
                      reconciler, so the store progresses even when no server is running. \
                      Exits 6 if the store fails, 7 on timeout.",
        after_help = "Examples:\n  storefactory store wait ab12cd34 --timeout 10m\n  storefactory store wait ab12cd34 --deleted"
    )]
    Wait {
        /// The store id.
        id: StoreId,
        /// Wait for the store to be deleted instead of ready.
        #[arg(long)]
        deleted: bool,
        /// Give up after this long (e.g. 90s, 10m, 1h; plain numbers are seconds).
        #[arg(long, default_value = "15m", value_parser = convert::parse_duration, value_name = "DURATION")]
        timeout: Duration,
    },

    /// Show the WordPress administrator's login of a store (includes the password).
    Credentials {
        /// The store id.
        id: StoreId,
    },

    /// Custom domains of a store: more hosts it answers on.
    #[command(subcommand)]
    Domain(crate::commands::domain::DomainCommand),

    /// Restore a completed backup into a ready or failed store.
    #[command(
        long_about = "Restore a completed backup into a ready (or failed) store: the store is \
                      `restoring` while a Job fetches the backup from the platform and \
                      restores its database and files (a backup of another store has its \
                      site URL rewritten to this store's), then `ready` again, or `failed` \
                      with the reason. Needs a running server (it keeps the archives) and \
                      --backup-endpoint. With --wait this command waits until the store is \
                      ready.",
        after_help = "Examples:\n  storefactory backup list ab12cd34\n  storefactory store restore ab12cd34 --backup k3j4h5g6f7d8 --wait"
    )]
    Restore {
        /// The store restored into.
        id: StoreId,
        /// The backup (see `storefactory backup list`).
        #[arg(long, value_name = "BACKUP")]
        backup: storefactory_core::backup::BackupId,
        /// Waiting.
        #[command(flatten)]
        wait: WaitArgs,
    },

    /// Create a new store from another's latest backup (a staging copy).
    #[command(
        long_about = "Create a new store from the latest completed backup of another: the new \
                      store is created for --owner (whose quota applies: nothing is created \
                      when it does not allow it) with the source's settings, provisioned, then \
                      the backup is restored into it with its URLs rewritten to the new \
                      store's host. It keeps the source's WordPress administrator. With --wait \
                      this command waits until the restore ended and the clone is ready.",
        after_help = "Examples:\n  storefactory store clone ab12cd34 --owner alice --name 'Staging' --wait"
    )]
    Clone {
        /// The store cloned.
        source: StoreId,
        /// The id of the clone; generated when absent.
        #[arg(long, value_name = "ID")]
        id: Option<StoreId>,
        /// Who owns the clone; the source's owner when absent.
        #[arg(long, value_parser = convert::parse_username, value_name = "USER")]
        owner: Option<String>,
        /// A name for people; `<source name> (copy)` when absent.
        #[arg(long, value_name = "TEXT")]
        name: Option<String>,
        /// The clone is reached at store-<id>.<domain>.
        #[arg(
            long,
            env = "STOREFACTORY_STORE_DOMAIN",
            default_value = "storefactory.local",
            value_name = "DOMAIN"
        )]
        domain: String,
        /// Waiting.
        #[command(flatten)]
        wait: WaitArgs,
    },
}

const CREATE_LONG: &str = "\
Create a store: validates the options, checks the owner's quota and records the store, then \
applies its Kubernetes objects (namespace, quota, network policies, MySQL, WordPress, the \
seeding Job and the Ingress) and returns.

With --wait it follows the store with a spinner showing the current step until it is ready \
(exit 0), failed (exit 6) or --timeout passes (exit 7). While waiting it runs the reconciler \
itself, so no server needs to be running.

Products are read from --products-file: one product per line, `Name|Price|Description` (the \
description optional; blank lines and lines starting with # are skipped), or a JSON list of \
{\"name\", \"price\", \"description\"} objects. `-` reads standard input.";

const CREATE_HELP: &str = "\
Examples:
  printf 'T-Shirt|5.99|Cotton t-shirt\\nJeans|12.99|Denim\\n' > products.txt
  storefactory store create --name 'My shop' --products-file products.txt --storage 2 --wait
  storefactory store create --owner alice --domain shop.example.com --ingress-class nginx
  storefactory store create --id demo --admin-password-file ./admin-password --output json";

/// The parameters of a store, shared by `store create` and `blueprint render`.
#[derive(Debug, Clone, Args)]
pub struct SpecArgs {
    /// The store id (lowercase letters, digits and '-'; its namespace is store-<id>);
    /// generated when absent.
    #[arg(long, value_name = "ID")]
    pub id: Option<StoreId>,

    /// The user the store belongs to; their quota applies.
    #[arg(long, env = "STOREFACTORY_OWNER", default_value = "admin", value_parser = convert::parse_username, value_name = "USER")]
    pub owner: String,

    /// The title of the WordPress site.
    #[arg(long, default_value = "My Store", value_name = "TEXT")]
    pub title: String,

    /// The shop currency, an ISO 4217 code.
    #[arg(long, default_value = "USD", value_name = "CODE")]
    pub currency: String,

    /// Products to seed: `Name|Price|Description` lines or a JSON list; `-` for stdin.
    #[arg(long, value_name = "FILE")]
    pub products_file: Option<PathBuf>,

    /// Size of the WordPress volume in GiB.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=1024), value_name = "GIB")]
    pub storage: u64,

    /// Size of the MySQL volume in GiB.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024), value_name = "GIB")]
    pub mysql_storage: u64,

    /// Stores are reached at store-<id>.<domain>.
    #[arg(
        long,
        env = "STOREFACTORY_STORE_DOMAIN",
        default_value = "storefactory.local",
        value_name = "DOMAIN"
    )]
    pub domain: String,

    /// The full host name of the store, instead of store-<id>.<domain>.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// The IngressClass of the store's Ingress; the cluster default when absent.
    #[arg(long, env = "STOREFACTORY_INGRESS_CLASS", value_name = "NAME")]
    pub ingress_class: Option<String>,

    /// The StorageClass of the store's volumes; the cluster default when absent.
    #[arg(long, env = "STOREFACTORY_STORAGE_CLASS", value_name = "NAME")]
    pub storage_class: Option<String>,

    /// Serve the store over HTTPS with a certificate from this cert-manager ClusterIssuer.
    #[arg(long, env = "STOREFACTORY_TLS_CLUSTER_ISSUER", value_name = "NAME")]
    pub tls_cluster_issuer: Option<String>,

    /// The blueprint to render (see `storefactory blueprint list`).
    #[arg(long, default_value = storefactory_core::blueprint::DEFAULT_BLUEPRINT, value_name = "NAME")]
    pub blueprint: String,

    /// An extra blueprint parameter, KEY=VALUE; repeatable.
    #[arg(long = "param", value_parser = convert::parse_param, value_name = "KEY=VALUE")]
    pub params: Vec<(String, String)>,
}

/// Options of `store create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The store.
    #[command(flatten)]
    pub spec: SpecArgs,

    /// A name for people; the id when absent.
    #[arg(long, value_name = "TEXT")]
    pub name: Option<String>,

    /// Read the WordPress administrator's password (12 to 128 characters) from this file
    /// (`-` for stdin) instead of generating one.
    #[arg(long, value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,

    /// Waiting.
    #[command(flatten)]
    pub wait: WaitArgs,
}

const CHANGE_LONG: &str = "\
Change a ready store. Only what is given changes; the change is checked with the rules of \
`store create` and refused, changing nothing, when it is not valid:

  --storage grows the WordPress volume in place; a size below the current one is refused, \
  and so is growing a volume whose StorageClass does not allow volume expansion. The \
  owner's storage quota applies to the new size.
  --products-file, --title and --currency run the seeding again: products are updated by \
  SKU (their position in the list), none is duplicated, dropped ones are hidden.

The store is `updating` until the change is applied and observed (the volume grown, the \
seeding finished), then `ready` again. With --wait this command waits for that.";

const CHANGE_HELP: &str = "\
Examples:
  storefactory store change ab12cd34 --storage 5 --wait
  storefactory store change ab12cd34 --products-file products.txt --title 'Summer Shop' --currency EUR
  storefactory store change ab12cd34 --wordpress-resources cpu=200m/1,memory=256Mi/1Gi";

/// Options of `store change`.
#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// The store id.
    pub id: StoreId,

    /// A bigger WordPress volume, in GiB.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024), value_name = "GIB")]
    pub storage: Option<u64>,

    /// The products from now on: `Name|Price|Description` lines or a JSON list; `-` for
    /// stdin.
    #[arg(long, value_name = "FILE")]
    pub products_file: Option<PathBuf>,

    /// The title of the WordPress site.
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,

    /// The shop currency, an ISO 4217 code.
    #[arg(long, value_name = "CODE")]
    pub currency: Option<String>,

    /// Resources of the WordPress container: cpu=REQUEST/LIMIT,memory=REQUEST/LIMIT.
    #[arg(long, value_parser = convert::parse_resources, value_name = "RESOURCES")]
    pub wordpress_resources: Option<storefactory_core::spec::Resources>,

    /// Resources of the MySQL container: cpu=REQUEST/LIMIT,memory=REQUEST/LIMIT.
    #[arg(long, value_parser = convert::parse_resources, value_name = "RESOURCES")]
    pub mysql_resources: Option<storefactory_core::spec::Resources>,

    /// Waiting.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `--wait` and `--timeout`.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Wait until the operation finished, showing progress.
    #[arg(long)]
    pub wait: bool,

    /// With --wait, give up after this long (e.g. 90s, 10m, 1h; plain numbers are seconds).
    #[arg(long, default_value = "15m", value_parser = convert::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

/// Options of `store list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this user's stores.
    #[arg(long, value_parser = convert::parse_username, value_name = "USER")]
    pub owner: Option<String>,

    /// Include deleted stores kept for the audit trail.
    #[arg(long)]
    pub all: bool,

    /// Show at most N stores.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub limit: Option<u64>,

    /// The most recently created first (by default the oldest first).
    #[arg(long)]
    pub newest_first: bool,
}

/// `user` commands. Passwords are read from a prompt, or from standard input when it is not
/// a terminal; never from an argument, where other users could see them.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (asks for the password, or reads it from stdin).
    #[command(
        after_help = "Examples:\n  storefactory user add admin --role admin\n  printf '%s\\n' \"$PASSWORD\" | storefactory user add alice --max-stores 3 --max-storage 10"
    )]
    Add {
        /// The username: lowercase letters, digits, '.', '_' and '-'.
        #[arg(value_parser = convert::parse_username)]
        username: String,
        /// What the user may do.
        #[arg(long, default_value = "user", value_parser = convert::parse_role, value_name = "ROLE")]
        role: Role,
        /// Most stores the user may hold at once.
        #[arg(long, default_value_t = storefactory_core::port::Quota::default().max_stores, value_name = "N")]
        max_stores: u32,
        /// Most storage, in GiB, over all the user's stores.
        #[arg(long, default_value_t = storefactory_core::port::Quota::default().max_storage_gib, value_name = "GIB")]
        max_storage: u64,
    },

    /// List users with their quotas and usage.
    List,

    /// Change a user's quota; stores already held are kept.
    SetQuota {
        /// The user.
        #[arg(value_parser = convert::parse_username)]
        username: String,
        /// Most stores the user may hold at once.
        #[arg(long, value_name = "N")]
        max_stores: Option<u32>,
        /// Most storage, in GiB, over all the user's stores.
        #[arg(long, value_name = "GIB")]
        max_storage: Option<u64>,
    },

    /// Change a user's password (asks for it, or reads it from stdin).
    Passwd {
        /// The user.
        #[arg(value_parser = convert::parse_username)]
        username: String,
    },

    /// Disable a user: they cannot log in, and every token they hold stops working at once.
    /// Their stores are kept.
    Disable {
        /// The user.
        #[arg(value_parser = convert::parse_username)]
        username: String,
    },

    /// Let a disabled user log in again (tokens voided when disabled stay void).
    Enable {
        /// The user.
        #[arg(value_parser = convert::parse_username)]
        username: String,
    },
}

/// `blueprint` commands.
#[derive(Debug, Subcommand)]
pub enum BlueprintCommand {
    /// List the blueprints: built-in ones and those of --blueprints-dir.
    List,

    /// Print the Kubernetes manifests of a store as YAML, for review or GitOps.
    #[command(long_about = RENDER_LONG, after_help = RENDER_HELP)]
    Render(Box<RenderArgs>),
}

const RENDER_LONG: &str = "\
Print the Kubernetes manifests a store would be made of, as a YAML stream, without touching \
the cluster or the database.

Secrets: by default the passwords in Secrets are placeholders (REPLACE_ME_...), shown in \
plain text under `stringData` so a reviewer can see where they go. With --generate-secrets \
fresh random passwords are generated and printed base64-encoded under `data`, ready to \
apply. Either way they are never the passwords of an existing store.

The output is a YAML stream (`---` between objects); --output json prints a JSON list.";

const RENDER_HELP: &str = "\
Examples:
  storefactory blueprint render --id demo
  storefactory blueprint render --id demo --products-file products.txt --ingress-class nginx
  storefactory blueprint render --id demo --generate-secrets | kubectl apply -f -";

/// Options of `blueprint render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The store.
    #[command(flatten)]
    pub spec: SpecArgs,

    /// Put freshly generated passwords into Secrets instead of placeholders.
    #[arg(long)]
    pub generate_secrets: bool,
}

/// `db` commands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Write a consistent copy of the database to FILE, while it stays in use.
    #[command(
        after_help = "Examples:\n  storefactory db backup backups/storefactory-$(date +%F).db\n  kubectl exec deploy/storefactory -- storefactory db backup - > storefactory.db"
    )]
    Backup {
        /// The new file; must not exist yet. `-` writes the copy to standard output.
        file: PathBuf,
    },
}

/// Parses `--backup-endpoint`.
fn parse_backup_endpoint(text: &str) -> Result<storefactory_core::backup::BackupEndpoint, String> {
    text.parse()
        .map_err(|e: storefactory_core::error::ValidationError| e.message)
}

/// Parses `--paused-backend`.
fn parse_paused_backend(text: &str) -> Result<storefactory_core::blueprint::PausedBackend, String> {
    text.parse()
        .map_err(|e: storefactory_core::error::ValidationError| e.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn store_ids_are_validated_while_parsing() {
        let err = Cli::try_parse_from(["storefactory", "store", "get", "Not_An_Id"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("DNS-1123"), "{err}");
        let cli = Cli::try_parse_from(["storefactory", "store", "get", "ab12"]).unwrap();
        assert!(
            matches!(cli.command, Command::Store(StoreCommand::Get { ref id, .. }) if id.as_str() == "ab12")
        );
    }

    #[test]
    fn passwords_cannot_be_given_as_arguments() {
        for args in [
            &["storefactory", "user", "add", "bob", "--password", "x"][..],
            &["storefactory", "user", "passwd", "bob", "secret"][..],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn global_options_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "storefactory",
            "store",
            "list",
            "--db",
            "/tmp/x.db",
            "-o",
            "json",
            "--context",
            "kind",
        ])
        .unwrap();
        assert_eq!(cli.global.db, PathBuf::from("/tmp/x.db"));
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.context.as_deref(), Some("kind"));
    }

    #[test]
    fn bad_storage_and_timeouts_are_usage_errors() {
        for args in [
            &["storefactory", "store", "create", "--storage", "0"][..],
            &["storefactory", "store", "create", "--storage", "2Gi"][..],
            &[
                "storefactory",
                "store",
                "create",
                "--wait",
                "--timeout",
                "soon",
            ][..],
            &["storefactory", "store", "create", "--owner", "Bob"][..],
            &["storefactory", "user", "add", "bob", "--role", "root"][..],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    /// Every `storefactory` command the README shows parses, so the README cannot drift
    /// from the command line. (The integration tests run the same commands for real.)
    #[test]
    fn readme_commands_parse() {
        const README: &str = include_str!("../../README.md");
        let mut checked = 0;
        for line in README.lines() {
            for cell in line.split('`') {
                let command = cell.split(" #").next().unwrap_or_default().trim();
                let args = if let Some(rest) = command.strip_prefix("storefactory ") {
                    rest
                } else if let Some((_, rest)) = command
                    .split_once("-p storefactory-cli -- ")
                    .filter(|(cargo, _)| cargo.starts_with("cargo run"))
                {
                    rest
                } else {
                    continue;
                };
                let argv: Vec<&str> = std::iter::once("storefactory")
                    .chain(
                        args.split_whitespace()
                            .map(|a| if a == "STORE_ID" { "ab12cd34" } else { a }),
                    )
                    .collect();
                if let Err(err) = Cli::try_parse_from(&argv)
                    && err.kind() != clap::error::ErrorKind::DisplayHelp
                {
                    panic!("README command `{command}` does not parse: {err}");
                }
                checked += 1;
            }
        }
        assert!(checked >= 10, "only {checked} README commands found");
    }
}
