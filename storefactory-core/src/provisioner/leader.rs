//! One leader: only the process holding a `coordination.k8s.io/v1` Lease reconciles.
//!
//! A small module of our own rather than a crate: the protocol is a read and a conditional
//! write of one object, and owning it lets the Provisioner stop reconciling the moment a
//! renewal is in doubt. Expiry is judged as client-go does, by how long this process has seen
//! the Lease unchanged (its own monotonic clock), never by comparing wall clocks of two
//! machines. Writes carry the resourceVersion read, so two candidates never both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;

/// How the Provisioner elects its leader.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Namespace of the Lease; the platform's own namespace in a cluster.
    pub namespace: String,
    /// Name of the Lease; every process of one platform uses the same.
    pub name: String,
    /// This process, as the Lease's holder; unique per process.
    pub identity: String,
    /// How long a Lease not renewed stays its holder's: the longest a crashed leader holds
    /// up the work.
    pub lease_duration: Duration,
    /// How often the leader renews, and candidates look.
    pub retry_period: Duration,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        LeaderConfig {
            namespace: "default".to_owned(),
            name: "storefactory-reconciler".to_owned(),
            identity: default_identity(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// `<host>-<pid>-<random>`: unique per process, and readable in `kubectl get lease`.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "storefactory".to_owned());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        crate::blueprint::generate_password(6).to_lowercase()
    )
}

/// What a look at the Lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    /// We hold it (acquired or renewed).
    Held,
    /// Someone else does.
    Other,
}

/// A candidate for, or holder of, the Lease.
pub(crate) struct Elector {
    api: Api<Lease>,
    config: LeaderConfig,
    /// The Lease's resourceVersion when last read, and when this process first saw it.
    observed: Option<(String, Instant)>,
}

impl Elector {
    pub fn new(client: kube::Client, config: LeaderConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    /// Waits until this process holds the Lease.
    pub async fn acquire(&mut self) {
        let mut logged_follower = false;
        loop {
            match self.look().await {
                Ok(Look::Held) => return,
                Ok(Look::Other) if !logged_follower => {
                    tracing::info!(lease = %self.config.name, "another process leads; following it");
                    logged_follower = true;
                }
                Ok(Look::Other) => {}
                Err(error) => {
                    tracing::debug!(%error, "cannot read the leader lease; trying again");
                }
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews the Lease until a renewal fails for good; returns when this process may no
    /// longer consider itself the leader.
    pub async fn hold(&mut self) {
        let mut renewed = Instant::now();
        // Stop leading before the Lease could expire in others' eyes.
        let deadline = self
            .config
            .lease_duration
            .saturating_sub(self.config.retry_period);
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            match self.look().await {
                Ok(Look::Held) => renewed = Instant::now(),
                Ok(Look::Other) => {
                    tracing::warn!(lease = %self.config.name, "another process took the lease");
                    return;
                }
                Err(error) if renewed.elapsed() < deadline => {
                    tracing::debug!(%error, "cannot renew the leader lease yet");
                }
                Err(error) => {
                    tracing::warn!(%error, "could not renew the leader lease in time");
                    return;
                }
            }
        }
    }

    /// Takes the Lease if nobody holds it (or this process already does); one look, no
    /// waiting.
    pub async fn try_acquire(&mut self) -> Result<bool, kube::Error> {
        Ok(self.look().await? == Look::Held)
    }

    /// Gives the Lease up, so that another process need not wait for it to expire.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.config.name, "released the leader lease"),
            Err(error) => tracing::debug!(%error, "could not release the leader lease"),
        }
    }

    async fn look(&mut self) -> Result<Look, kube::Error> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let duration = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became the leader");
                    Ok(Look::Held)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Look::Other),
                Err(error) => Err(error),
            };
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.config.identity.as_str());
        if !ours && holder.is_some() {
            // Someone holds it: it is theirs until it has not changed for its duration.
            let held_for = Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(duration)).unwrap_or(0),
            );
            let first_seen = match &self.observed {
                Some((seen, at)) if *seen == version => *at,
                _ => {
                    self.observed = Some((version.clone(), Instant::now()));
                    return Ok(Look::Other);
                }
            };
            if first_seen.elapsed() < held_for {
                return Ok(Look::Other);
            }
            tracing::info!(lease = %self.config.name, previous = ?holder, "the leader's lease expired; taking over");
        }
        if !ours {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.holder_identity = Some(self.config.identity.clone());
        spec.lease_duration_seconds = Some(duration);
        spec.renew_time = Some(now);
        // The resourceVersion read makes this a compare-and-set.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                if !ours {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became the leader");
                }
                self.observed = written
                    .metadata
                    .resource_version
                    .map(|v| (v, Instant::now()));
                Ok(Look::Held)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                self.observed = None;
                Ok(Look::Other)
            }
            Err(error) => Err(error),
        }
    }
}
