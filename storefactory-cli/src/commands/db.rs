//! `storefactory db ...`

use anyhow::{Context as _, Result};

use crate::Context;
use crate::cli::DbCommand;
use crate::exit::{Code, Failure};
use crate::output::{self, details};

/// Runs a `db` command.
pub async fn run(ctx: &Context, command: DbCommand) -> Result<()> {
    match command {
        DbCommand::Backup { file } => {
            if file.exists() {
                return Err(Failure::new(
                    Code::Conflict,
                    format!("{} already exists; choose a new file", file.display()),
                )
                .into());
            }
            let db = ctx.db().await?;
            db.backup_to(&file)
                .await
                .with_context(|| format!("cannot back up to {}", file.display()))?;
            let size = std::fs::metadata(&file)
                .map(|m| m.len())
                .unwrap_or_default();
            let value = serde_json::json!({
                "database": ctx.global.db,
                "backup": file,
                "bytes": size,
            });
            output::print(ctx.output(), &value, || {
                details(&[
                    ("database", ctx.global.db.display().to_string()),
                    ("backup", file.display().to_string()),
                    ("size", format!("{size} bytes")),
                ])
            })
        }
    }
}
