//! `storefactory backup ...`: take, list and delete backups of stores. (Restoring and
//! cloning are `store restore` and `store clone`.)
//!
//! The archives are kept by the server (`serve`): a backup Job hands its archive to the
//! server's internal endpoint (--backup-endpoint), and the server completes the backup.
//! This command line records the backup and starts its Job; `backup list` shows how it
//! went.

use anyhow::Result;
use clap::Subcommand;
use storefactory_core::backup::{BackupId, BackupKind, BackupRecord};
use storefactory_core::spec::StoreId;

use crate::Context;
use crate::commands::store::provisioner;
use crate::output::{self, Table};

/// `backup` commands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up a ready store now: its database and WordPress files, kept by the server.
    #[command(
        after_help = "Examples:\n  storefactory backup create ab12cd34\n  storefactory backup list ab12cd34"
    )]
    Create {
        /// The store.
        store: StoreId,
    },
    /// List a store's backups, newest first, with their size and times.
    List {
        /// The store.
        store: StoreId,
    },
    /// Delete a completed or failed backup: its archive and its record.
    Delete {
        /// The store.
        store: StoreId,
        /// The backup.
        backup: BackupId,
    },
}

/// Runs a `backup` command.
pub async fn run(ctx: &Context, command: BackupCommand) -> Result<()> {
    let db = ctx.db().await?;
    match command {
        BackupCommand::Create { store } => {
            let provisioner = provisioner(ctx, &db, &store).await?;
            let backup = provisioner.backup(&store, BackupKind::Manual).await?;
            output::print(ctx.output(), &backup, || {
                format!(
                    "backup {} of store {store} started; `storefactory backup list {store}` \
                     shows when it completed\n",
                    backup.id
                )
            })
        }
        BackupCommand::List { store } => {
            let provisioner = provisioner(ctx, &db, &store).await?;
            let backups = provisioner.list_backups(&store).await?;
            output::print(ctx.output(), &backups, || table(&backups))
        }
        BackupCommand::Delete { store, backup } => {
            let provisioner = provisioner(ctx, &db, &store).await?;
            let deleted = provisioner.delete_backup(&store, &backup).await?;
            output::print(ctx.output(), &deleted, || {
                format!("backup {backup} of store {store} deleted\n")
            })
        }
    }
}

fn size(bytes: Option<u64>) -> String {
    match bytes {
        None => "-".to_owned(),
        Some(b) if b < 1024 => format!("{b} B"),
        Some(b) if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        Some(b) if b < 1024 * 1024 * 1024 => format!("{:.1} MiB", b as f64 / 1048576.0),
        Some(b) => format!("{:.1} GiB", b as f64 / 1073741824.0),
    }
}

fn table(backups: &[BackupRecord]) -> String {
    let mut table = Table::new(["ID", "KIND", "STATUS", "SIZE", "CREATED", "ERROR"]);
    for b in backups {
        table.row([
            b.id.to_string(),
            b.kind.to_string(),
            b.status.to_string(),
            size(b.size_bytes),
            format!("{} ago", output::age(b.created_at)),
            b.error.clone().unwrap_or_default(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(None), "-");
        assert_eq!(size(Some(512)), "512 B");
        assert_eq!(size(Some(1536)), "1.5 KiB");
        assert_eq!(size(Some(5 * 1024 * 1024)), "5.0 MiB");
    }
}
