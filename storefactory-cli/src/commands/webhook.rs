//! `storefactory webhook ...`: the HTTP API's webhooks, on the database directly.
//!
//! Registration goes through the library ([`Database::register_webhook`]), so the URL
//! rules, the limit per user and the messages are the API's. The secret is sealed under
//! the server's token key, so this command must be given the same key as `serve`
//! (`--token-key-file` or the same environment), or use the one a server without one keeps
//! in the database.

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use storefactory_core::store::Timestamp;
use storefactory_sql::{
    AuditRecord, CreatedWebhook, DEFAULT_DELIVERIES, DEFAULT_MAX_WEBHOOKS_PER_OWNER, Database,
    DeliveryView, WebhookEvents, WebhookRequest, WebhookRules, WebhookView,
};

use crate::Context;
use crate::convert;

use crate::output::{self, Table, details};

const ADD_LONG: &str = "\
Register a webhook: store events of the owner's stores are POSTed to URL, signed with a \
secret that is printed this once (keep it: it cannot be shown again).

The rules are the HTTP API's: an absolute https URL without credentials or a fragment, not \
naming a private, loopback, link-local or cluster-internal host (unless \
--webhook-allow-private), at most --max-webhooks-per-user per user; --all-stores only for \
an admin.

The secret is sealed under the server's token key: give this command the key `serve` uses \
(--token-key-file, or STOREFACTORY_TOKEN_KEY_FILE / STOREFACTORY_TOKEN_KEY as for serve). \
Without one it uses the key a server without one keeps in the database. With another key \
than the server's, every delivery fails (\"the signing secret cannot be opened\").";

const ADD_HELP: &str = "\
Examples:
  storefactory webhook add --owner alice https://hooks.example.com/storefactory
  storefactory webhook add --owner admin --all-stores --events status https://ops.example.com/in
  storefactory webhook add --owner alice https://hooks.example.com/in --output json | jq -r .secret";

/// `webhook` commands.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Register a webhook and print its signing secret (this once).
    #[command(long_about = ADD_LONG, after_help = ADD_HELP)]
    Add(Box<AddArgs>),

    /// List webhooks (never their secrets).
    #[command(
        after_help = "Examples:\n  storefactory webhook list\n  storefactory webhook list --owner alice --output json"
    )]
    List {
        /// Only this user's webhooks.
        #[arg(long, value_parser = convert::parse_username, value_name = "USER")]
        owner: Option<String>,
    },

    /// Remove a webhook and its delivery log; pending deliveries are not sent.
    #[command(after_help = "Examples:\n  storefactory webhook remove wh_0123456789abcdef01234567")]
    Remove {
        /// The webhook id (`wh_...`).
        id: String,
    },

    /// Show a webhook's recent deliveries, newest first.
    #[command(
        after_help = "Examples:\n  storefactory webhook deliveries wh_0123456789abcdef01234567 --limit 10"
    )]
    Deliveries {
        /// The webhook id (`wh_...`).
        id: String,
        /// How many of the newest deliveries to show, 1 to 200.
        #[arg(long, default_value_t = DEFAULT_DELIVERIES, value_name = "N")]
        limit: usize,
    },
}

/// Options of `webhook add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Where deliveries are POSTed: an absolute https URL.
    pub url: String,

    /// The user it belongs to: it receives their stores' events.
    #[arg(long, env = "STOREFACTORY_OWNER", value_parser = convert::parse_username, value_name = "USER")]
    pub owner: String,

    /// Which events: `all` (status changes, provisioning steps and warnings) or `status`
    /// (status changes only).
    #[arg(long, default_value = "all", value_parser = parse_events, value_name = "EVENTS")]
    pub events: WebhookEvents,

    /// Receive every user's store events, not only the owner's (the owner must be an admin).
    #[arg(long)]
    pub all_stores: bool,

    /// Allow private, loopback, link-local and cluster-internal targets and plain http, as
    /// `serve --webhook-allow-private` (development and tests only).
    #[arg(long, env = "STOREFACTORY_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,

    /// Webhooks one user may register, as `serve --max-webhooks-per-user`.
    #[arg(long, env = "STOREFACTORY_MAX_WEBHOOKS_PER_USER",
        default_value_t = DEFAULT_MAX_WEBHOOKS_PER_OWNER, value_name = "N")]
    pub max_webhooks_per_user: usize,
}

/// `all` or `status`, with the library's message otherwise.
fn parse_events(text: &str) -> Result<WebhookEvents, String> {
    WebhookEvents::parse_input(text).map_err(|e| e.to_string())
}

/// Runs a `webhook` command.
pub async fn run(ctx: &Context, command: WebhookCommand) -> Result<()> {
    match command {
        WebhookCommand::Add(args) => add(ctx, *args).await,
        WebhookCommand::List { owner } => list(ctx, owner.as_deref()).await,
        WebhookCommand::Remove { id } => remove(ctx, &id).await,
        WebhookCommand::Deliveries { id, limit } => deliveries(ctx, &id, limit).await,
    }
}

async fn audit(db: &Database, action: &str, id: &str, actor: Option<&str>) {
    let mut record = AuditRecord::new(action)
        .target(id)
        .detail("via command line");
    if let Some(actor) = actor {
        record = record.actor(actor);
    }
    if let Err(error) = db.record_audit(record).await {
        tracing::warn!(%error, action, "cannot write the audit log");
    }
}

async fn add(ctx: &Context, args: AddArgs) -> Result<()> {
    let db = ctx.db().await?;
    let key = ctx.sealing_key(&db).await?;
    let owner = args.owner.clone();
    let registered = db
        .register_webhook(
            WebhookRequest {
                owner: args.owner,
                url: args.url,
                events: args.events,
                all_stores: args.all_stores,
            },
            WebhookRules {
                allow_private: args.webhook_allow_private,
                max_per_owner: args.max_webhooks_per_user,
            },
            &key,
        )
        .await
        .with_context(|| format!("cannot register a webhook for {owner}"))?;
    audit(
        &db,
        "webhook.create",
        &registered.webhook.id,
        Some(&registered.webhook.owner),
    )
    .await;
    let created = CreatedWebhook::from(&registered);
    output::print(ctx.output(), &created, || {
        let w = &created.webhook;
        let mut text = details(&[
            ("id", w.id.clone()),
            ("owner", w.owner.clone()),
            ("url", w.url.clone()),
            ("events", w.events.as_str().to_owned()),
            ("all stores", yes_no(w.all_stores).to_owned()),
            ("secret", created.secret.clone()),
        ]);
        text.push_str(
            "\nThe secret is shown this once: keep it to verify the Storefactory-Signature \
             of deliveries.\n",
        );
        text
    })
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

async fn list(ctx: &Context, owner: Option<&str>) -> Result<()> {
    let db = ctx.db().await?;
    let webhooks = db.list_webhooks(owner, usize::MAX).await?;
    let views: Vec<WebhookView> = webhooks.iter().map(WebhookView::from).collect();
    output::print(ctx.output(), &views, || {
        if views.is_empty() {
            return "No webhooks. Register one with: storefactory webhook add --owner USER URL\n"
                .to_owned();
        }
        let mut table = Table::new(["ID", "OWNER", "EVENTS", "ALL STORES", "URL", "AGE"]);
        for v in &views {
            table.row([
                v.id.clone(),
                v.owner.clone(),
                v.events.as_str().to_owned(),
                yes_no(v.all_stores).to_owned(),
                v.url.clone(),
                output::age(Timestamp(v.created_at)),
            ]);
        }
        table.render()
    })
}

async fn remove(ctx: &Context, id: &str) -> Result<()> {
    let db = ctx.db().await?;
    db.remove_webhook(id).await?;
    audit(&db, "webhook.delete", id, None).await;
    output::print(
        ctx.output(),
        &serde_json::json!({ "id": id, "removed": true }),
        || format!("webhook {id} removed\n"),
    )
}

async fn deliveries(ctx: &Context, id: &str, limit: usize) -> Result<()> {
    let db = ctx.db().await?;
    let log = db.webhook_delivery_log(id, limit).await?;
    let views: Vec<DeliveryView> = log.into_iter().map(DeliveryView::from).collect();
    output::print(ctx.output(), &views, || {
        if views.is_empty() {
            return format!(
                "No deliveries yet: webhook {id} receives events recorded after it was registered.\n"
            );
        }
        let mut table = Table::new([
            "ID", "AGE", "STORE", "EVENT", "STATE", "ATTEMPTS", "STATUS", "ERROR",
        ]);
        for v in &views {
            table.row([
                v.id.to_string(),
                output::age(Timestamp(v.created_at)),
                v.store_id.clone(),
                v.event.clone(),
                v.state.as_str().to_owned(),
                v.attempts.to_string(),
                v.last_status
                    .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                v.last_error.clone().unwrap_or_default(),
            ]);
        }
        table.render()
    })
}
