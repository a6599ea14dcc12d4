//! Embedding the Provisioner: create a store on the current kube context, follow its events
//! until it is ready, print its credentials' login address, and delete it again.
//!
//! Records are kept in memory here; a program of its own would implement the
//! `StoreRepository` port over its database (or use `storefactory-sql`).
//!
//! ```sh
//! cargo run -p storefactory-testkit -- up --dir /tmp/sf-cluster &   # or any cluster
//! KUBECONFIG=/tmp/sf-cluster/kubeconfig cargo run -q --example provision_store
//! ```

use std::sync::Arc;
use std::time::Duration;

use storefactory_core::blueprint::BlueprintRegistry;
use storefactory_core::memory::MemoryRepository;
use storefactory_core::product::parse_products;
use storefactory_core::provisioner::{CreateStore, Provisioner, ProvisionerConfig};
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::{EventKind, StoreStatus};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let provisioner = Provisioner::new(
        client,
        Arc::new(MemoryRepository::new()),
        Arc::new(BlueprintRegistry::builtin()?),
        // Alone with its in-memory records, this program needs no leader election.
        ProvisionerConfig {
            leader: None,
            ..ProvisionerConfig::default()
        },
    );
    let mut events = provisioner.subscribe();
    let reconciler = tokio::spawn({
        let provisioner = provisioner.clone();
        async move { provisioner.run().await }
    });

    let id = StoreId::generate();
    let mut spec = StoreSpec::new(
        id.clone(),
        "example",
        format!("store-{id}.storefactory.local"),
    );
    spec.products = parse_products("T-Shirt|5.99|Cotton t-shirt\nJeans|12.99|Denim jeans")?;
    provisioner.create(CreateStore::new(spec)).await?;
    println!("created store {id}");

    let mut deleting = false;
    let outcome = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            let event = events.recv().await?;
            if event.store_id != id {
                continue;
            }
            match event.kind {
                EventKind::Step { step, message } => println!("  {step}: {message}"),
                EventKind::Warning { message } => println!("  warning: {message}"),
                EventKind::Status { status, reason } => {
                    println!(
                        "{id} is {status}{}",
                        reason.map(|r| format!(": {r}")).unwrap_or_default()
                    );
                    match status {
                        StoreStatus::Ready if !deleting => {
                            let credentials = provisioner.credentials(&id).await?;
                            println!(
                                "log in at {} as {}",
                                credentials.admin_url, credentials.username
                            );
                            provisioner.delete(&id).await?;
                            deleting = true;
                        }
                        StoreStatus::Failed => anyhow::bail!("store {id} failed"),
                        StoreStatus::Deleted => return anyhow::Ok(()),
                        _ => {}
                    }
                }
            }
        }
    })
    .await;
    reconciler.abort();
    outcome.map_err(|_| anyhow::anyhow!("store {id} did not finish within 5 minutes"))?
}
