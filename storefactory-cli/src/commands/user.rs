//! `storefactory user ...`

use anyhow::{Context as _, Result};
use serde::Serialize;
use storefactory_core::port::{Quota, Usage};
use storefactory_sql::{AuditRecord, Database, User};

use crate::Context;
use crate::cli::UserCommand;
use crate::exit::{Code, Failure};
use crate::output::{self, Table};
use crate::secret;

/// Users read from the database per query by `user list`.
const USERS_PAGE: usize = 200;

/// A user as printed: without the password hash (the database never hands it out), with
/// what they use of their quota.
#[derive(Debug, Serialize)]
struct UserView {
    #[serde(flatten)]
    user: User,
    usage: Usage,
}

fn table(users: &[UserView]) -> String {
    let mut table = Table::new(["USERNAME", "ROLE", "STORES", "STORAGE", "CREATED"]);
    for v in users {
        table.row([
            v.user.username.clone(),
            v.user.role.to_string(),
            format!("{}/{}", v.usage.stores, v.user.quota.max_stores),
            format!(
                "{}/{} GiB",
                v.usage.storage_gib, v.user.quota.max_storage_gib
            ),
            format!("{} ago", output::age(v.user.created_at)),
        ]);
    }
    table.render()
}

async fn view(db: &Database, user: User) -> Result<UserView> {
    let usage = db.usage(&user.username).await?;
    Ok(UserView { user, usage })
}

async fn audit(db: &Database, action: &str, username: &str) {
    let record = AuditRecord::new(action)
        .target(username)
        .detail("via command line");
    if let Err(error) = db.record_audit(record).await {
        tracing::warn!(%error, action, "cannot write the audit log");
    }
}

/// Runs a `user` command.
pub async fn run(ctx: &Context, command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Add {
            username,
            role,
            max_stores,
            max_storage,
        } => {
            let db = ctx.db().await?;
            if db.get_user(&username).await?.is_some() {
                return Err(Failure::new(
                    Code::Conflict,
                    format!("user {username:?} already exists"),
                )
                .into());
            }
            let password = secret::read_new_password(&username)?;
            let quota = Quota {
                max_stores,
                max_storage_gib: max_storage,
            };
            let user = db
                .create_user(&username, &password, role, quota)
                .await
                .with_context(|| format!("cannot add user {username}"))?;
            audit(&db, "user.create", &username).await;
            let view = view(&db, user).await?;
            output::print(ctx.output(), &view, || table(std::slice::from_ref(&view)))
        }
        UserCommand::List => {
            let db = ctx.db().await?;
            // A page at a time, as the API serves the listing.
            let mut views = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = db.list_users_page(after.as_deref(), USERS_PAGE).await?;
                let full = page.len() == USERS_PAGE;
                after = page.last().map(|u| u.username.clone());
                for user in page {
                    views.push(view(&db, user).await?);
                }
                if !full {
                    break;
                }
            }
            output::print(ctx.output(), &views, || {
                if views.is_empty() {
                    "No users. Add one with: storefactory user add admin --role admin\n".to_owned()
                } else {
                    table(&views)
                }
            })
        }
        UserCommand::SetQuota {
            username,
            max_stores,
            max_storage,
        } => {
            if max_stores.is_none() && max_storage.is_none() {
                return Err(Failure::new(
                    Code::Usage,
                    "nothing to change: give --max-stores and/or --max-storage",
                )
                .into());
            }
            let db = ctx.db().await?;
            let current = db.get_user(&username).await?.ok_or_else(|| {
                Failure::new(Code::NotFound, format!("user {username:?} not found"))
            })?;
            let quota = Quota {
                max_stores: max_stores.unwrap_or(current.quota.max_stores),
                max_storage_gib: max_storage.unwrap_or(current.quota.max_storage_gib),
            };
            let user = db.set_quota(&username, quota).await?;
            audit(&db, "user.quota", &username).await;
            let view = view(&db, user).await?;
            output::print(ctx.output(), &view, || table(std::slice::from_ref(&view)))
        }
        UserCommand::Passwd { username } => {
            let db = ctx.db().await?;
            if db.get_user(&username).await?.is_none() {
                return Err(
                    Failure::new(Code::NotFound, format!("user {username:?} not found")).into(),
                );
            }
            let password = secret::read_new_password(&username)?;
            db.set_password(&username, &password).await?;
            audit(&db, "user.password", &username).await;
            output::print(
                ctx.output(),
                &serde_json::json!({ "username": username, "password_changed": true }),
                || format!("password of {username} changed\n"),
            )
        }
        UserCommand::Disable { username } => set_disabled(ctx, &username, true).await,
        UserCommand::Enable { username } => set_disabled(ctx, &username, false).await,
    }
}

/// `user disable` and `user enable`.
async fn set_disabled(ctx: &Context, username: &str, disabled: bool) -> Result<()> {
    let db = ctx.db().await?;
    let user = match db.set_disabled(username, disabled).await {
        Err(storefactory_sql::Error::UserNotFound { .. }) => {
            return Err(
                Failure::new(Code::NotFound, format!("user {username:?} not found")).into(),
            );
        }
        other => other?,
    };
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    audit(&db, action, username).await;
    let view = view(&db, user).await?;
    output::print(ctx.output(), &view, || {
        let what = if disabled {
            "disabled: cannot log in, and every token they held is void"
        } else {
            "enabled: may log in again"
        };
        format!("{username} {what}\n")
    })
}
