//! `storefactory store ...`

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use serde::Serialize;
use storefactory_core::blueprint::{SecretInputs, validate_admin_password};
use storefactory_core::change::StoreChange;
use storefactory_core::port::{StoreFilter, StoreRepository};
use storefactory_core::product::parse_products;
use storefactory_core::provisioner::{CreateStore, Provisioner, ProvisionerConfig, error_chain};
use storefactory_core::seal::SealingKey;
use storefactory_core::spec::{Currency, StoreId};
use storefactory_core::store::{StoreEvent, StoreRecord, StoreStatus};
use storefactory_sql::{AuditRecord, Database, StoreOrder};
use tokio::sync::broadcast;

use crate::Context;
use crate::cli::{ChangeArgs, CreateArgs, ListArgs, StoreCommand, WaitArgs};
use crate::exit::{Code, Failure};
use crate::output::{self, Table, details};
use crate::wait::{self, Target, describe_event};
use crate::{cluster, convert, secret};

/// Runs a `store` command.
pub async fn run(ctx: &Context, command: StoreCommand) -> Result<()> {
    match command {
        StoreCommand::Create(args) => create(ctx, *args).await,
        StoreCommand::List(args) => list(ctx, args).await,
        StoreCommand::Get { id, events } => get(ctx, &id, events).await,
        StoreCommand::Delete { id, wait } => delete(ctx, &id, &wait).await,
        StoreCommand::Retry { id, wait } => retry(ctx, &id, &wait).await,
        StoreCommand::Suspend { id, wait } => suspend(ctx, &id, &wait).await,
        StoreCommand::Resume { id, wait } => resume(ctx, &id, &wait).await,
        StoreCommand::Change(args) => change(ctx, *args).await,
        StoreCommand::Wait {
            id,
            deleted,
            timeout,
        } => {
            let target = if deleted {
                Target::Deleted
            } else {
                Target::Ready
            };
            let db = ctx.db().await?;
            let provisioner = provisioner(ctx, &db, &id).await?;
            let events = provisioner.subscribe();
            let record = wait::until(&provisioner, &id, target, timeout, events).await?;
            show_after_wait(ctx, &id, record.as_ref())
        }
        StoreCommand::Domain(command) => crate::commands::domain::run(ctx, command).await,
        StoreCommand::Restore { id, backup, wait } => restore(ctx, &id, &backup, &wait).await,
        StoreCommand::Clone {
            source,
            id,
            owner,
            name,
            domain,
            wait,
        } => clone(ctx, &source, id, owner, name, &domain, &wait).await,
        StoreCommand::Credentials { id } => {
            let db = ctx.db().await?;
            let provisioner = provisioner(ctx, &db, &id).await?;
            let credentials = provisioner.credentials(&id).await?;
            output::print(ctx.output(), &credentials, || {
                details(&[
                    ("username", credentials.username.clone()),
                    ("password", credentials.password.clone()),
                    ("admin url", credentials.admin_url.clone()),
                ])
            })
        }
    }
}

/// A store as printed: the record plus where to find it.
#[derive(Debug, Serialize)]
struct StoreView<'a> {
    #[serde(flatten)]
    record: &'a StoreRecord,
    namespace: String,
    url: String,
    admin_url: String,
    storage_gib: u64,
}

impl<'a> StoreView<'a> {
    fn new(record: &'a StoreRecord) -> Self {
        let url = record.spec.url();
        StoreView {
            record,
            namespace: record.id.namespace(),
            admin_url: format!("{url}wp-admin/"),
            url,
            storage_gib: record.storage_gib(),
        }
    }

    fn details(&self) -> String {
        let r = self.record;
        let status = match &r.reason {
            Some(reason) => format!("{} ({reason})", r.status),
            None => r.status.to_string(),
        };
        let domains = if r.spec.ingress.domains.is_empty() {
            "(none)".to_owned()
        } else {
            r.spec.ingress.domains.join(", ")
        };
        details(&[
            ("id", r.id.to_string()),
            ("name", r.name.clone()),
            ("owner", r.owner.clone()),
            ("status", status),
            ("url", self.url.clone()),
            ("domains", domains),
            ("admin url", self.admin_url.clone()),
            ("namespace", self.namespace.clone()),
            ("blueprint", r.blueprint.clone()),
            (
                "storage",
                format!(
                    "{} GiB (WordPress {}, MySQL {})",
                    self.storage_gib, r.spec.wordpress.storage, r.spec.mysql.storage
                ),
            ),
            ("products", r.spec.products.len().to_string()),
            ("created", format!("{} ago", output::age(r.created_at))),
        ])
    }
}

/// Opens the Provisioner on the database and the configured cluster, limited to store `id`.
///
/// A command drives one store. The database may be shared with a running server, whose
/// reconciler owns every other store, and may hold stores of blueprints this command line
/// does not know; reconciling those here would race the server or mark them failed.
///
/// Values chosen at creation are sealed and opened under the server's key, so that
/// whichever process applies the store reads them; without that key (another one was
/// given), such values cannot be opened here and generated ones are used, as the warning
/// says.
pub(crate) async fn provisioner(ctx: &Context, db: &Database, id: &StoreId) -> Result<Provisioner> {
    let sealing_key = match ctx.sealing_key(db).await {
        Ok(key) => key,
        Err(error) => {
            tracing::warn!("{error:#}");
            SealingKey::random()
        }
    };
    let client = ctx.client().await?;
    let repository: Arc<dyn StoreRepository> = Arc::new(db.clone());
    Ok(Provisioner::new(
        client,
        repository,
        Arc::new(ctx.blueprints()?),
        ProvisionerConfig {
            only: Some(HashSet::from([id.clone()])),
            leader: Some(ctx.leader()),
            paused_backend: ctx.paused_backend(),
            sealing_key,
            backups: ctx.backups()?,
            ..ProvisionerConfig::default()
        },
    ))
}

pub(crate) async fn audit(db: &Database, action: &str, id: &StoreId, detail: String) {
    let record = AuditRecord::new(action).target(id.as_str()).detail(detail);
    if let Err(error) = db.record_audit(record).await {
        tracing::warn!(%error, action, "cannot write the audit log");
    }
}

/// One reconcile pass: applies (or deletes) what the record asks for, so that the command
/// does its part even when no server is running and --wait was not given.
pub(crate) async fn reconcile_once(provisioner: &Provisioner, id: &StoreId) -> Result<()> {
    provisioner
        .reconcile_once(id)
        .await
        .map(drop)
        .map_err(|error| {
            let code = if error.is_transient() {
                Code::Cluster
            } else {
                crate::exit::core_code(&error)
            };
            Failure::new(
                code,
                format!(
                    "store {id} is recorded, but the cluster work failed: {}\n\
                 (`storefactory store wait {id}` or a running server will try again)",
                    error_chain(&error)
                ),
            )
            .into()
        })
}

async fn create(ctx: &Context, args: CreateArgs) -> Result<()> {
    // Everything the user gave is read and validated before anything is recorded.
    let products = match &args.spec.products_file {
        Some(path) => Some(secret::read_input(path)?),
        None => None,
    };
    let admin_password = match &args.admin_password_file {
        Some(path) => {
            let password = secret::strip_newline(secret::read_input(path)?);
            validate_admin_password(&password)?;
            Some(password)
        }
        None => None,
    };
    let id = args.spec.id.clone().unwrap_or_else(StoreId::generate);
    let spec = convert::build_spec(&args.spec, id.clone(), products.as_deref())?;

    let db = ctx.db().await?;
    if admin_password.is_some() {
        // Sealed under the server's key, which must be at hand: a password the server cannot
        // open would be replaced by a generated one.
        ctx.sealing_key(&db).await?;
    }
    let Some(owner) = db.get_user(&spec.owner).await? else {
        return Err(Failure::new(
            Code::NotFound,
            format!(
                "user {:?} does not exist; stores belong to users, who have quotas \
                 (add one with `storefactory user add {}`, or choose another --owner)",
                spec.owner, spec.owner
            ),
        )
        .into());
    };
    // Fail fast, before the cluster is contacted; the insert checks again atomically.
    if let Some(message) = db
        .usage(&owner.username)
        .await?
        .exceeds(&owner.quota, spec.storage_gib())
    {
        return Err(Failure::new(
            Code::Conflict,
            format!("quota exceeded for {}: {message}", owner.username),
        )
        .into());
    }
    let provisioner = provisioner(ctx, &db, &id).await?;
    cluster::reachable(provisioner.client()).await?;

    let events = provisioner.subscribe();
    let record = provisioner
        .create(CreateStore {
            spec,
            name: args.name.clone().unwrap_or_default(),
            blueprint: Some(args.spec.blueprint.clone()),
            inputs: admin_password
                .map(|password| SecretInputs::one("admin_password", password))
                .unwrap_or_default(),
        })
        .await
        .with_context(|| format!("cannot create store {id}"))?;
    audit(
        &db,
        "store.create",
        &id,
        format!("owner {} via command line", record.owner),
    )
    .await;

    let record = finish(&provisioner, &db, &id, &args.wait, Target::Ready, events).await?;
    let record =
        record.ok_or_else(|| Failure::new(Code::NotFound, format!("store {id} disappeared")))?;
    let view = StoreView::new(&record);
    output::print(ctx.output(), &view, || {
        let mut text = view.details();
        if record.status == storefactory_core::store::StoreStatus::Ready {
            text.push_str(&format!(
                "\nThe store is ready. Its administrator login: storefactory store credentials {id}\n"
            ));
        } else {
            text.push_str(&format!("\nFollow it with: storefactory store wait {id}\n"));
        }
        text
    })
}

/// Stores read from the database per query by `store list`.
const PAGE: usize = 500;

async fn list(ctx: &Context, args: ListArgs) -> Result<()> {
    let db = ctx.db().await?;
    let filter = StoreFilter {
        owner: args.owner,
        include_deleted: args.all,
    };
    let limit = args
        .limit
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(usize::MAX);
    let order = if args.newest_first {
        StoreOrder::NewestFirst
    } else {
        StoreOrder::OldestFirst
    };
    // A page at a time, as the API serves the listing: no query reads the whole table.
    let mut records = Vec::new();
    let mut after = None;
    while records.len() < limit {
        let page = db
            .list_stores_page(&filter, after, PAGE.min(limit - records.len()), order)
            .await?;
        records.extend(page.stores);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let views: Vec<StoreView<'_>> = records.iter().map(StoreView::new).collect();
    output::print(ctx.output(), &views, || {
        if views.is_empty() {
            return "No stores. Create one with: storefactory store create\n".to_owned();
        }
        let mut table = Table::new(["ID", "NAME", "OWNER", "STATUS", "URL", "AGE"]);
        for v in &views {
            table.row([
                v.record.id.to_string(),
                v.record.name.clone(),
                v.record.owner.clone(),
                v.record.status.to_string(),
                v.url.clone(),
                output::age(v.record.created_at),
            ]);
        }
        table.render()
    })
}

#[derive(Debug, Serialize)]
struct StoreWithEvents<'a> {
    #[serde(flatten)]
    store: StoreView<'a>,
    events: Vec<StoreEvent>,
}

async fn find(db: &Database, id: &StoreId) -> Result<StoreRecord> {
    db.get_store(id)
        .await?
        .ok_or_else(|| Failure::new(Code::NotFound, format!("store {id} not found")).into())
}

async fn get(ctx: &Context, id: &StoreId, last_events: usize) -> Result<()> {
    let db = ctx.db().await?;
    let record = find(&db, id).await?;
    let mut events = db.events(id, 0).await?;
    let skip = events.len().saturating_sub(last_events);
    events.drain(..skip);
    let view = StoreWithEvents {
        store: StoreView::new(&record),
        events,
    };
    output::print(ctx.output(), &view, || {
        let mut text = view.store.details();
        if !view.events.is_empty() {
            text.push_str("\nEvents:\n");
            let mut table = Table::new(["  AGE", "EVENT"]);
            for event in &view.events {
                table.row([
                    format!("  {}", output::age(event.at)),
                    describe_event(&event.kind),
                ]);
            }
            text.push_str(&table.render());
        }
        text
    })
}

async fn delete(ctx: &Context, id: &StoreId, wait: &WaitArgs) -> Result<()> {
    let db = ctx.db().await?;
    let provisioner = provisioner(ctx, &db, id).await?;
    let events = provisioner.subscribe();
    let record = provisioner.delete(id).await?;
    audit(
        &db,
        "store.delete",
        id,
        format!("owner {} via command line", record.owner),
    )
    .await;
    let record = finish(&provisioner, &db, id, wait, Target::Deleted, events).await?;
    show_after_wait(ctx, id, record.as_ref())
}

async fn retry(ctx: &Context, id: &StoreId, wait: &WaitArgs) -> Result<()> {
    let db = ctx.db().await?;
    let provisioner = provisioner(ctx, &db, id).await?;
    let events = provisioner.subscribe();
    provisioner.retry(id).await?;
    audit(&db, "store.retry", id, "via command line".to_owned()).await;
    let record = finish(&provisioner, &db, id, wait, Target::Ready, events).await?;
    show_after_wait(ctx, id, record.as_ref())
}

async fn suspend(ctx: &Context, id: &StoreId, wait: &WaitArgs) -> Result<()> {
    let db = ctx.db().await?;
    let provisioner = provisioner(ctx, &db, id).await?;
    let events = provisioner.subscribe();
    provisioner.suspend(id).await?;
    audit(&db, "store.suspend", id, "via command line".to_owned()).await;
    let record = finish(&provisioner, &db, id, wait, Target::Suspended, events).await?;
    show_after_wait(ctx, id, record.as_ref())
}

async fn resume(ctx: &Context, id: &StoreId, wait: &WaitArgs) -> Result<()> {
    let db = ctx.db().await?;
    let provisioner = provisioner(ctx, &db, id).await?;
    let events = provisioner.subscribe();
    provisioner.resume(id).await?;
    audit(&db, "store.resume", id, "via command line".to_owned()).await;
    let record = finish(&provisioner, &db, id, wait, Target::Ready, events).await?;
    show_after_wait(ctx, id, record.as_ref())
}

async fn change(ctx: &Context, args: ChangeArgs) -> Result<()> {
    // Everything given is read and validated before the store is looked at.
    let products = match &args.products_file {
        Some(path) => Some(parse_products(&secret::read_input(path)?)?),
        None => None,
    };
    let currency = args
        .currency
        .as_deref()
        .map(|c| Currency::new(c.trim().to_ascii_uppercase()))
        .transpose()?;
    let change = StoreChange {
        storage_gib: args.storage,
        wordpress_resources: args.wordpress_resources,
        mysql_resources: args.mysql_resources,
        products,
        site_title: args.title,
        currency,
    };
    let id = &args.id;
    let db = ctx.db().await?;
    let provisioner = provisioner(ctx, &db, id).await?;
    let events = provisioner.subscribe();
    let changed = provisioner.change(id, &change).await?;
    if changed.status != StoreStatus::Updating {
        // Nothing to change.
        return show_after_wait(ctx, id, Some(&changed));
    }
    audit(
        &db,
        "store.change",
        id,
        format!(
            "{} via command line",
            changed.reason.as_deref().unwrap_or("changing")
        ),
    )
    .await;
    let record = finish(&provisioner, &db, id, &args.wait, Target::Ready, events).await?;
    show_after_wait(ctx, id, record.as_ref())
}

async fn restore(
    ctx: &Context,
    id: &StoreId,
    backup: &storefactory_core::backup::BackupId,
    wait: &WaitArgs,
) -> Result<()> {
    let db = ctx.db().await?;
    let provisioner = provisioner(ctx, &db, id).await?;
    let events = provisioner.subscribe();
    let restore = provisioner.restore(id, backup).await?;
    audit(
        &db,
        "store.restore",
        id,
        format!("backup {backup} via command line"),
    )
    .await;
    if !wait.wait {
        return output::print(ctx.output(), &restore, || {
            format!(
                "restoring backup {backup} into store {id} (restore {}); \
                 `storefactory store wait {id}` follows it\n",
                restore.id
            )
        });
    }
    let record = wait::until(&provisioner, id, Target::Ready, wait.timeout, events).await?;
    show_after_wait(ctx, id, record.as_ref())
}

#[allow(clippy::too_many_arguments)]
async fn clone(
    ctx: &Context,
    source: &StoreId,
    id: Option<StoreId>,
    owner: Option<String>,
    name: Option<String>,
    domain: &str,
    wait: &WaitArgs,
) -> Result<()> {
    let db = ctx.db().await?;
    let Some(source_record) = db.get_store(source).await? else {
        return Err(Failure::new(Code::NotFound, format!("store {source} not found")).into());
    };
    let id = id.unwrap_or_else(StoreId::generate);
    let owner = owner.unwrap_or_else(|| source_record.owner.clone());
    if db.get_user(&owner).await?.is_none() {
        return Err(Failure::new(Code::NotFound, format!("user {owner:?} does not exist")).into());
    }
    let provisioner = provisioner(ctx, &db, &id).await?;
    // The clone keeps the source's WordPress administrator: they are in the restored
    // database, so the clone's Secret is created with them.
    let credentials = provisioner.credentials(source).await?;
    let mut spec = source_record.spec.clone();
    spec.id = id.clone();
    spec.owner = owner;
    spec.ingress.host = format!("{}.{}", id.namespace(), domain.trim().to_ascii_lowercase());
    spec.wordpress.admin_user = credentials.username.clone();
    let request = CreateStore {
        spec,
        name: name.unwrap_or_else(|| format!("{} (copy)", source_record.name)),
        blueprint: Some(source_record.blueprint.clone()),
        inputs: SecretInputs::one("admin_password", credentials.password.clone()),
    };
    let mut events = provisioner.subscribe();
    let (record, restore) = provisioner.clone_store(source, request).await?;
    audit(
        &db,
        "store.clone",
        &id,
        format!("from store {source} via command line"),
    )
    .await;
    if !wait.wait {
        reconcile_once(&provisioner, &id).await?;
        let view = StoreView::new(&record);
        return output::print(ctx.output(), &view, || view.details());
    }
    // Ready once provisioned; then the restore starts (the leader's work, or this
    // command's when it leads for the store), and the store is ready again once it ended.
    let deadline = tokio::time::Instant::now() + wait.timeout;
    let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
    let mut record = wait::until(&provisioner, &id, Target::Ready, left(), events).await?;
    loop {
        events = provisioner.subscribe();
        provisioner.start_waiting_restore(&id).await;
        let now = provisioner.get_restore(&id, &restore.id).await?;
        match now.status {
            storefactory_core::backup::RestoreStatus::Completed => {
                return show_after_wait(ctx, &id, record.as_ref());
            }
            storefactory_core::backup::RestoreStatus::Failed => {
                return Err(Failure::new(
                    Code::StoreFailed,
                    format!(
                        "the clone {id} was not restored: {}",
                        now.error.unwrap_or_default()
                    ),
                )
                .into());
            }
            _ if left().is_zero() => {
                return Err(Failure::new(
                    Code::Timeout,
                    format!("the clone {id} was not restored within the timeout"),
                )
                .into());
            }
            _ => {
                record = wait::until(&provisioner, &id, Target::Ready, left(), events).await?;
                // Ready again at once: the restore has not begun; look again shortly.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}

/// After a command changed the store: with --wait, follows `events` (subscribed before the
/// change) until the store reaches `target`; without, does one reconcile pass. Either way
/// the store as it is then.
async fn finish(
    provisioner: &Provisioner,
    db: &Database,
    id: &StoreId,
    wait: &WaitArgs,
    target: Target,
    events: broadcast::Receiver<StoreEvent>,
) -> Result<Option<StoreRecord>> {
    if wait.wait {
        wait::until(provisioner, id, target, wait.timeout, events).await
    } else {
        reconcile_once(provisioner, id).await?;
        Ok(db.get_store(id).await?)
    }
}

fn show_after_wait(ctx: &Context, id: &StoreId, record: Option<&StoreRecord>) -> Result<()> {
    match record {
        Some(record) => {
            let view = StoreView::new(record);
            output::print(ctx.output(), &view, || view.details())
        }
        None => output::print(
            ctx.output(),
            &serde_json::json!({ "id": id, "status": "deleted" }),
            || format!("store {id} is deleted\n"),
        ),
    }
}
