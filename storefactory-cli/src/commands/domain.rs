//! `storefactory store domain ...`: a store's custom domains.
//!
//! Through the library ([`Provisioner::add_domain`], [`Provisioner::remove_domain`]), so the
//! rules and messages are the API's: the domain is unique across stores (a domain another
//! store holds exits 4, a conflict), at most ten per store, only for ready or suspended
//! stores. The change is recorded, then applied in one reconcile pass (or by the server
//! that leads, which learns of it through the database).
//!
//! [`Provisioner::add_domain`]: storefactory_core::provisioner::Provisioner::add_domain
//! [`Provisioner::remove_domain`]: storefactory_core::provisioner::Provisioner::remove_domain

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;
use storefactory_core::port::StoreRepository;
use storefactory_core::spec::StoreId;
use storefactory_core::store::StoreRecord;

use super::store::{audit, provisioner, reconcile_once};
use crate::Context;
use crate::exit::{Code, Failure};
use crate::output::{self, details};

/// `store domain` commands.
#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Add a custom domain to a ready or suspended store.
    #[command(
        long_about = "Add a custom domain to a ready or suspended store: its Ingress gains a \
                      rule for the domain (and, with TLS through a cluster issuer, a name on \
                      its certificate), updated in place; the store stays ready and keeps its \
                      own host. The domain is kept lowercase without a trailing dot. Refused, \
                      changing nothing: an invalid name, a domain another store holds (as a \
                      custom domain or as its own host), more than ten per store. Point the \
                      domain's DNS at the ingress controller yourself.",
        after_help = "Examples:\n  storefactory store domain add ab12cd34 shop.example.com\n  storefactory store domain add ab12cd34 www.example.com --output json"
    )]
    Add {
        /// The store id.
        id: StoreId,
        /// The domain, e.g. shop.example.com.
        domain: String,
    },

    /// List a store's own host and custom domains.
    #[command(after_help = "Examples:\n  storefactory store domain list ab12cd34")]
    List {
        /// The store id.
        id: StoreId,
    },

    /// Remove a custom domain from a ready or suspended store.
    #[command(
        long_about = "Remove a custom domain from a ready or suspended store: its rule leaves \
                      the store's Ingress, updated in place, and every other host stays. The \
                      domain is free for other stores at once.",
        after_help = "Examples:\n  storefactory store domain remove ab12cd34 shop.example.com"
    )]
    Remove {
        /// The store id.
        id: StoreId,
        /// The domain.
        domain: String,
    },
}

/// A store's hosts as printed.
#[derive(Debug, Serialize)]
struct Domains<'a> {
    id: &'a StoreId,
    host: &'a str,
    domains: &'a [String],
}

/// Runs a `store domain` command.
pub async fn run(ctx: &Context, command: DomainCommand) -> Result<()> {
    let record = match command {
        DomainCommand::List { id } => {
            let db = ctx.db().await?;
            db.get_store(&id)
                .await?
                .filter(|r| r.status != storefactory_core::store::StoreStatus::Deleted)
                .ok_or_else(|| Failure::new(Code::NotFound, format!("store {id} not found")))?
        }
        DomainCommand::Add { id, domain } => change(ctx, &id, &domain, true).await?,
        DomainCommand::Remove { id, domain } => change(ctx, &id, &domain, false).await?,
    };
    let view = Domains {
        id: &record.id,
        host: &record.spec.ingress.host,
        domains: &record.spec.ingress.domains,
    };
    output::print(ctx.output(), &view, || {
        let domains = if view.domains.is_empty() {
            "(none)".to_owned()
        } else {
            view.domains.join(", ")
        };
        details(&[
            ("id", view.id.to_string()),
            ("host", view.host.to_owned()),
            ("domains", domains),
        ])
    })
}

/// Adds (`add`) or removes the domain through the library, audits it, and applies it in
/// one reconcile pass.
async fn change(ctx: &Context, id: &StoreId, domain: &str, add: bool) -> Result<StoreRecord> {
    let db = ctx.db().await?;
    let provisioner = provisioner(ctx, &db, id).await?;
    let (record, action) = if add {
        (
            provisioner.add_domain(id, domain).await?,
            "store.domain.add",
        )
    } else {
        (
            provisioner.remove_domain(id, domain).await?,
            "store.domain.remove",
        )
    };
    audit(&db, action, id, format!("{domain} via command line")).await;
    reconcile_once(&provisioner, id).await?;
    Ok(db.get_store(id).await?.unwrap_or(record))
}
