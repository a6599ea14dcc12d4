//! `storefactory`: run the platform and manage stores, users and blueprints.
//!
//! A thin edge over the library: arguments are parsed into validated core types
//! ([`cli`], [`convert`]), the library does the work, and errors become the documented exit
//! codes ([`exit`]).

// The doc comments of `cli` are the command line's help text, written for a terminal:
// `store-<id>.<domain>` there is a pattern to read, not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

mod cli;
mod cluster;
mod commands;
mod convert;
mod exit;
#[cfg(feature = "local-cluster")]
mod local_cluster;
mod output;
mod secret;
mod serve;
mod wait;

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Parser;
use storefactory_core::blueprint::BlueprintRegistry;
use storefactory_core::seal::SealingKey;
use storefactory_sql::Database;

use crate::cli::{Cli, Command, GlobalArgs, OutputFormat};
use crate::exit::{Code, Failure};

/// What every command needs: the global options, and ways to open what they point at.
#[derive(Debug)]
pub struct Context {
    /// The global options.
    pub global: GlobalArgs,
}

impl Context {
    /// The chosen output format.
    pub fn output(&self) -> OutputFormat {
        self.global.output
    }

    /// Opens (creating if needed) the database.
    pub async fn db(&self) -> Result<Database> {
        Database::open(&self.global.db)
            .await
            .with_context(|| format!("cannot open the database {}", self.global.db.display()))
    }

    /// A Kubernetes client for --kubeconfig/--context.
    pub async fn client(&self) -> Result<kube::Client> {
        cluster::client(
            self.global.kubeconfig.as_deref(),
            self.global.context.as_deref(),
        )
        .await
    }

    /// Leader election as every process of this platform does it.
    pub fn leader(&self) -> storefactory_core::provisioner::LeaderConfig {
        let lease_duration = std::time::Duration::from_secs(self.global.lease_duration);
        storefactory_core::provisioner::LeaderConfig {
            namespace: self.global.lease_namespace.clone(),
            lease_duration,
            // Renewed three times per duration, as client-go does by default.
            retry_period: (lease_duration / 3).max(std::time::Duration::from_millis(500)),
            ..storefactory_core::provisioner::LeaderConfig::default()
        }
    }

    /// The server's token key from --token-key-file or the environment, if given.
    pub fn token_key(&self) -> Result<Option<String>> {
        let key = serve::secret_from(
            self.global.token_key_file.as_deref(),
            serve::TOKEN_KEY_ENV,
            "token key",
        )?;
        if key.as_ref().is_some_and(|k| k.len() < 32) {
            return Err(
                Failure::new(Code::Usage, "the token key must be at least 32 bytes").into(),
            );
        }
        Ok(key)
    }

    /// The key the server seals secrets with ([`Database::sealing_key`]): what this command
    /// seals, the server opens, and the other way round.
    pub async fn sealing_key(&self, db: &Database) -> Result<SealingKey> {
        let token_key = self.token_key()?;
        Ok(db.sealing_key(token_key.as_deref()).await?)
    }

    /// Backups: where Jobs reach the platform (--backup-endpoint), and where the server
    /// keeps archives: the bucket of `--backup-s3-*`, else the default folder next to the
    /// database (deleting a backup removes its archive there; a server given `--backup-dir`
    /// removes its own through its API).
    pub fn backups(&self) -> Result<storefactory_core::provisioner::BackupConfig> {
        let dir = self.global.db.with_file_name("backups");
        let archives = serve::archive_store(&self.global.bucket, Some(dir.clone()), dir)?;
        Ok(storefactory_core::provisioner::BackupConfig {
            endpoint: self.global.backup_endpoint.clone(),
            archives,
            ..Default::default()
        })
    }

    /// Where a paused store's host is sent (--paused-backend).
    pub fn paused_backend(&self) -> Option<storefactory_core::blueprint::PausedBackend> {
        self.global.paused_backend.clone()
    }

    /// The built-in blueprints, overridden or extended by --blueprints-dir.
    pub fn blueprints(&self) -> Result<BlueprintRegistry> {
        let mut registry =
            BlueprintRegistry::builtin().context("cannot load the built-in blueprints")?;
        if let Some(dir) = &self.global.blueprints_dir {
            registry
                .load_dir(dir)
                .with_context(|| format!("cannot load blueprints from {}", dir.display()))?;
        }
        Ok(registry)
    }
}

fn init_logging(command: &Command, verbose: u8) {
    use tracing_subscriber::EnvFilter;
    // The server logs its work; other commands speak through their output and keep the
    // library's logs for -v, so they do not garble a spinner.
    let default = match (command, verbose) {
        (_, 2..) => "debug",
        // kube's client logs every refused request as an error, and starting a control
        // plane means waiting through a few.
        (Command::Serve(args), _) if args.local_cluster => "info,kube_client=off",
        (Command::Serve(_), _) | (_, 1) => "info",
        _ => "error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn run(cli: Cli) -> Result<()> {
    let ctx = Context { global: cli.global };
    match cli.command {
        Command::Serve(args) => serve::run(&ctx, *args).await,
        Command::Store(command) => commands::store::run(&ctx, command).await,
        Command::User(command) => commands::user::run(&ctx, command).await,
        Command::Blueprint(command) => commands::blueprint::run(&ctx, command),
        Command::Doctor(args) => commands::doctor::run(&ctx, args).await,
        Command::Db(command) => commands::db::run(&ctx, command).await,
        Command::Webhook(command) => commands::webhook::run(&ctx, command).await,
        Command::Backup(command) => commands::backup::run(&ctx, command).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.command, cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::Code::Failure.value());
        }
    };
    let result = runtime.block_on(run(cli));
    // Background work (watches of the reconciler) ends with the command.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit::code_of(&error).value())
        }
    }
}
