//! `storefactory db ...`

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};

use crate::Context;
use crate::cli::DbCommand;
use crate::exit::{Code, Failure};
use crate::output::{self, details};

/// Runs a `db` command.
pub async fn run(ctx: &Context, command: DbCommand) -> Result<()> {
    match command {
        DbCommand::Backup { file } if file == Path::new("-") => backup_to_stdout(ctx).await,
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

/// `db backup -`: the copy goes to standard output, for a database in a container that has
/// nothing but this binary (`kubectl exec ... -- storefactory db backup - > copy.db`). It
/// is written to a private temporary directory first (SQLite writes a copy to a file), then
/// streamed; nothing else is printed on standard output.
async fn backup_to_stdout(ctx: &Context) -> Result<()> {
    let db = ctx.db().await?;
    let dir = tempfile::Builder::new()
        .prefix("storefactory-backup-")
        .tempdir()
        .context("cannot create a temporary directory for the copy")?;
    let copy = dir.path().join("backup.db");
    db.backup_to(&copy)
        .await
        .context("cannot back up the database")?;
    let mut source = std::fs::File::open(&copy).context("cannot read the copy")?;
    let mut stdout = std::io::stdout().lock();
    std::io::copy(&mut source, &mut stdout).context("cannot write the copy to standard output")?;
    stdout
        .flush()
        .context("cannot write the copy to standard output")?;
    Ok(())
}
