//! Provisioning at scale, side by side with the apiserver's practical limit, in one process
//! and on one local control plane:
//!
//! 1. **raw**: a minimal client server-side-applies each store's rendered objects in order,
//!    `INFLIGHT` stores at a time, with no logic at all;
//! 2. **storefactory**: the Provisioner (concurrency `INFLIGHT`) provisions the same number
//!    of stores of the same blueprint, all created at once.
//!
//! For each it prints stores/s applied, create → applied and create → ready p50/p99,
//! apiserver requests per store by verb and resource (from the apiserver's
//! `apiserver_request_total`, every client included) and, for Storefactory, its own requests
//! (counted on its client), the process's RSS, and the ratios against the targets.
//!
//! ```sh
//! STORES=200 INFLIGHT=64 cargo bench -p storefactory-core --bench scale
//! FIRST=storefactory STORES=200 INFLIGHT=64 cargo bench -p storefactory-core --bench scale
//! ```
//!
//! The order of the runs weighs on their speed: the first run on a fresh control plane is
//! the fastest, and later ones drift (at 200 stores, 0.73x raw first against 1.08x
//! Storefactory first, the same code). So a warm-up of `WARMUP` raw stores (default
//! `STORES`, at most 200) goes first and is not measured; then raw runs twice, before and
//! after Storefactory, and Storefactory is compared with the mean of the two.
//! `FIRST=storefactory` runs Storefactory first and raw once after it. Between the runs the
//! previous one's namespaces and volumes are deleted and waited for, and then the machine
//! until its cores are quiet, so that the next run shares them with no clean-up.
//!
//! The control plane and its simulated kubelet run in a child process: the RSS printed is
//! this process's, the Provisioner's (with the benchmark's own pod watch).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, Pod};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use storefactory_core::blueprint::{
    BlueprintRegistry, DEFAULT_BLUEPRINT, SecretInputs, SecretValues,
};
use storefactory_core::manifest::Manifest;
use storefactory_core::memory::MemoryRepository;
use storefactory_core::port::{StoreFilter, StoreRepository};
use storefactory_core::provisioner::{CreateStore, Provisioner, ProvisionerConfig};
use storefactory_core::request_counter::RequestCounter;
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::{EventKind, StoreStatus, Timestamp};
use storefactory_testkit::bench::{
    ChildControlPlane, env_usize, host_control_plane_if_child, rss_mib,
};

type Counts = BTreeMap<(String, String), u64>;

fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// `apiserver_request_total` summed by verb and resource (with subresource).
async fn apiserver_requests(client: &Client) -> anyhow::Result<Counts> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    let mut counts = Counts::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split("\",")
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let (verb, resource, sub) = (label("verb"), label("resource"), label("subresource"));
        if resource.is_empty() {
            continue;
        }
        let resource = if sub.is_empty() {
            resource
        } else {
            format!("{resource}/{sub}")
        };
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        *counts.entry((verb, resource)).or_default() += value as u64;
    }
    Ok(counts)
}

fn delta(after: &Counts, before: &Counts) -> Counts {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn print_counts(title: &str, counts: &Counts, stores: usize) {
    let total: u64 = counts.values().sum();
    println!(
        "  {title}: {:.1} per store ({total} in all)",
        total as f64 / stores as f64
    );
    let mut rows: Vec<_> = counts.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1));
    for ((verb, resource), n) in rows.into_iter().take(14) {
        println!(
            "      {verb:<8} {resource:<32} {:>8.2} per store",
            *n as f64 / stores as f64
        );
    }
}

/// When each store namespace's workloads are all done (pods ready, Job pods succeeded), as
/// seen by a pod watch of our own: the same readiness for both runs.
fn watch_readiness(client: Client, pods_per_store: usize) -> Arc<Mutex<HashMap<String, Instant>>> {
    let ready: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = ready.clone();
    tokio::spawn(async move {
        let mut done: HashMap<String, HashSet<String>> = HashMap::new();
        let pods: Api<Pod> = Api::all(client);
        let config = watcher::Config::default().labels("app.kubernetes.io/managed-by=storefactory");
        let mut stream = watcher(pods, config).applied_objects().boxed();
        while let Some(Ok(pod)) = stream.next().await {
            let finished = pod.status.as_ref().is_some_and(|s| {
                s.phase.as_deref() == Some("Succeeded")
                    || s.conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            });
            let (Some(ns), Some(name)) = (pod.metadata.namespace, pod.metadata.name) else {
                continue;
            };
            if finished {
                let names = done.entry(ns.clone()).or_default();
                names.insert(name);
                if names.len() == pods_per_store {
                    seen.lock()
                        .expect("lock")
                        .entry(ns)
                        .or_insert_with(Instant::now);
                }
            }
        }
    });
    ready
}

struct Run {
    name: String,
    applied: Vec<Duration>,
    ready: Vec<Duration>,
    last_applied: Duration,
    last_ready: Duration,
    apiserver: Counts,
    own: Option<Counts>,
    rss: f64,
}

impl Run {
    fn applied_per_second(&self, stores: usize) -> f64 {
        stores as f64 / self.last_applied.as_secs_f64().max(1e-9)
    }

    fn print(&self, stores: usize) {
        println!("{}:", self.name);
        println!(
            "  applied: {:.2} stores/s (last store applied after {:.1?})",
            self.applied_per_second(stores),
            self.last_applied
        );
        println!(
            "  create -> applied: p50 {:.2?}, p99 {:.2?}",
            percentile(&self.applied, 0.5),
            percentile(&self.applied, 0.99)
        );
        println!(
            "  create -> ready:   p50 {:.2?}, p99 {:.2?}; last store ready after {:.1?}",
            percentile(&self.ready, 0.5),
            percentile(&self.ready, 0.99),
            self.last_ready
        );
        print_counts("apiserver requests, all clients", &self.apiserver, stores);
        if let Some(own) = &self.own {
            print_counts("its own requests", own, stores);
        }
        println!("  process RSS after the run: {:.0} MiB", self.rss);
    }
}

async fn wait_ready(
    ready: &Arc<Mutex<HashMap<String, Instant>>>,
    namespaces: &[String],
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let done = {
            let ready = ready.lock().expect("lock");
            namespaces
                .iter()
                .filter(|ns| ready.contains_key(*ns))
                .count()
        };
        if done == namespaces.len() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {done} of {} stores ready after {timeout:?}",
            namespaces.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn apply_store(client: &Client, objects: &[Manifest]) -> anyhow::Result<()> {
    let params = PatchParams::apply("raw-bench").force();
    for object in objects {
        let resource = object.api_resource();
        let api: Api<DynamicObject> = match object.meta().namespace.as_deref() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let mut attempt = 0;
        loop {
            match api
                .patch(object.name(), &params, &Patch::Apply(object.to_value()))
                .await
            {
                Ok(_) => break,
                // The raw client retries what the apiserver asks to be retried, nothing more.
                Err(kube::Error::Api(s)) if (s.code == 429 || s.code >= 500) && attempt < 10 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

async fn delete_namespaces(client: &Client, namespaces: &[String]) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    for ns in namespaces {
        match api.delete(ns, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let wanted: HashSet<&String> = namespaces.iter().collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let left = api
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=storefactory"))
            .await?
            .items
            .into_iter()
            .filter(|n| n.metadata.name.as_ref().is_some_and(|n| wanted.contains(n)))
            .count();
        if left == 0 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "{left} namespaces not deleted");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Their claims' volumes go after them (the provisioner deletes released volumes).
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    loop {
        let left = volumes
            .list_metadata(&ListParams::default())
            .await?
            .items
            .len();
        if left == 0 {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{left} volumes not deleted");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until the machine is quiet: after the control plane starts, and after a run's
/// namespaces are gone, so that no run shares the cores with the control plane's start or
/// the previous run's clean-up. Quiet: the cores less than [`QUIET_BUSY`] busy over
/// [`QUIET_WINDOW`]; after [`QUIET_PATIENCE`] the next run starts anyway, with a warning (a
/// machine that is never quiet, say).
///
/// This does not explain all of the order effect: at 200 stores a run started right after
/// another applied 7.7-8.4 stores/s against 10.4-10.9 for the first, whichever of raw or
/// Storefactory it was, while the apiserver saw under 2 requests a second and the cores were
/// 4-12% busy; a fixed minute's pause removed it in the one run tried. Hence the warm-up.
async fn quiesce() {
    let started = Instant::now();
    let mut before = cpu_times();
    loop {
        tokio::time::sleep(QUIET_WINDOW).await;
        let now = cpu_times();
        let busy = match (before, now) {
            (Some((busy0, all0)), Some((busy1, all1))) if all1 > all0 => {
                (busy1 - busy0) as f64 / (all1 - all0) as f64
            }
            // No /proc/stat: nothing to wait for.
            _ => return,
        };
        before = now;
        if busy < QUIET_BUSY {
            println!(
                "cores quiet ({:.0}% busy) after {:.0?}",
                busy * 100.0,
                started.elapsed()
            );
            return;
        }
        if started.elapsed() >= QUIET_PATIENCE {
            println!(
                "warning: the cores are still {:.0}% busy after {:.0?}; going on",
                busy * 100.0,
                started.elapsed()
            );
            return;
        }
    }
}

/// See [`quiesce`].
const QUIET_WINDOW: Duration = Duration::from_secs(5);
const QUIET_BUSY: f64 = 0.15;
const QUIET_PATIENCE: Duration = Duration::from_secs(300);

/// The machine's busy and total CPU time since boot, in clock ticks (`/proc/stat`).
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    let all: u64 = fields.iter().take(8).sum();
    Some((all - idle, all))
}

fn spec_for(id: &StoreId) -> StoreSpec {
    StoreSpec::new(id.clone(), "bench", format!("store-{id}.bench.test"))
}

async fn raw(
    name: &str,
    client: &Client,
    registry: &BlueprintRegistry,
    ready: &Arc<Mutex<HashMap<String, Instant>>>,
    stores: usize,
    inflight: usize,
) -> anyhow::Result<(Run, Vec<String>)> {
    let rendered: Vec<(String, Vec<Manifest>)> = (0..stores)
        .map(|_| {
            let id = StoreId::generate();
            let objects = registry.render(
                DEFAULT_BLUEPRINT,
                &spec_for(&id),
                SecretValues::Generate(&SecretInputs::none()),
            )?;
            Ok((id.namespace(), objects))
        })
        .collect::<anyhow::Result<_>>()?;
    let namespaces: Vec<String> = rendered.iter().map(|(ns, _)| ns.clone()).collect();
    let before = apiserver_requests(client).await?;
    let started = Instant::now();
    let mut applied = Vec::with_capacity(stores);
    let mut work = rendered.into_iter();
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < inflight {
            let Some((_, objects)) = work.next() else {
                break;
            };
            let client = client.clone();
            running.push(async move { apply_store(&client, &objects).await });
        }
        match running.next().await {
            Some(result) => {
                result?;
                applied.push(started.elapsed());
            }
            None => break,
        }
    }
    let last_applied = started.elapsed();
    wait_ready(ready, &namespaces, Duration::from_secs(900)).await?;
    let ready_at: Vec<Duration> = {
        let ready = ready.lock().expect("lock");
        namespaces.iter().map(|ns| ready[ns] - started).collect()
    };
    let last_ready = ready_at.iter().copied().max().unwrap_or_default();
    let after = apiserver_requests(client).await?;
    Ok((
        Run {
            name: name.to_owned(),
            // All raw stores are "created" at the start: their wait for a slot is part of it.
            applied,
            ready: ready_at,
            last_applied,
            last_ready,
            apiserver: delta(&after, &before),
            own: None,
            rss: rss_mib(),
        },
        namespaces,
    ))
}

async fn storefactory(
    admin: &Client,
    counted: Client,
    counter: &RequestCounter,
    stores: usize,
    inflight: usize,
) -> anyhow::Result<(Run, Vec<String>, Provisioner, tokio::task::JoinHandle<()>)> {
    let repo = Arc::new(MemoryRepository::new());
    let provisioner = Provisioner::new(
        counted,
        repo.clone(),
        Arc::new(BlueprintRegistry::builtin()?),
        ProvisionerConfig {
            leader: None,
            concurrency: inflight,
            ..ProvisionerConfig::default()
        },
    );
    let runner = provisioner.clone();
    let running = tokio::spawn(async move {
        let _ = runner.run().await;
    });
    // Let the reconciler start its watches before the clock starts, as a running server has.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = apiserver_requests(admin).await?;
    let own_before = counter.snapshot();
    let started = Instant::now();
    let started_ms = Timestamp::now().0;
    let mut created: HashMap<StoreId, Duration> = HashMap::new();
    for _ in 0..stores {
        let id = StoreId::generate();
        provisioner.create(CreateStore::new(spec_for(&id))).await?;
        created.insert(id, started.elapsed());
    }
    // Progress is read from the records, and times from the events' own timestamps: a
    // broadcast subscriber could lag behind a thousand stores' events.
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let records = repo.list_stores(&StoreFilter::default()).await?;
        if let Some(failed) = records.iter().find(|r| r.status == StoreStatus::Failed) {
            anyhow::bail!("store {} failed: {:?}", failed.id, failed.reason);
        }
        let ready = records
            .iter()
            .filter(|r| r.status == StoreStatus::Ready)
            .count();
        if ready == stores {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {ready} of {stores} stores ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let since_start = |at: Timestamp| Duration::from_millis((at.0 - started_ms).max(0) as u64);
    let (mut applied, mut ready) = (Vec::new(), Vec::new());
    let (mut last_applied, mut last_ready) = (Duration::ZERO, Duration::ZERO);
    for (id, created_at) in &created {
        for event in repo.events(id, 0).await? {
            let at = since_start(event.at);
            match &event.kind {
                EventKind::Step { message, .. } if message == "all objects applied" => {
                    applied.push(at.saturating_sub(*created_at));
                    last_applied = last_applied.max(at);
                }
                EventKind::Status {
                    status: StoreStatus::Ready,
                    ..
                } => {
                    ready.push(at.saturating_sub(*created_at));
                    last_ready = last_ready.max(at);
                }
                _ => {}
            }
        }
    }
    let after = apiserver_requests(admin).await?;
    let own: Counts = counter
        .snapshot()
        .into_iter()
        .map(|((verb, resource), n)| {
            let before = own_before
                .get(&(verb, resource.clone()))
                .copied()
                .unwrap_or(0);
            ((verb.to_owned(), resource), n - before)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let namespaces = created.keys().map(StoreId::namespace).collect();
    Ok((
        Run {
            name: "storefactory".to_owned(),
            applied,
            ready,
            last_applied,
            last_ready,
            apiserver: delta(&after, &before),
            own: Some(own),
            rss: rss_mib(),
        },
        namespaces,
        provisioner,
        running,
    ))
}

/// A whole number from the environment variable `name`, zero included, or `default` when it
/// is unset or not a number.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    host_control_plane_if_child();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let stores = env_usize("STORES", 50);
    let inflight = env_usize("INFLIGHT", 32);
    let idle_secs = env_or("IDLE_SECS", 10);
    // `WARMUP=0` for none.
    let warmup = env_or("WARMUP", stores.min(200));
    let first = std::env::var("FIRST").unwrap_or_else(|_| "raw".to_owned());
    println!(
        "FIRST={first} STORES={stores} INFLIGHT={inflight} IDLE_SECS={idle_secs} WARMUP={warmup} cargo bench -p storefactory-core --bench scale"
    );
    let starting = Instant::now();
    let cp = tokio::task::spawn_blocking(ChildControlPlane::start).await??;
    println!(
        "local control plane started in {:.1?} (in a child process); this process's RSS {:.0} MiB",
        starting.elapsed(),
        rss_mib()
    );
    let admin = cp.client().await?;
    let registry = BlueprintRegistry::builtin()?;
    let pods_per_store = registry.get(DEFAULT_BLUEPRINT)?.lifecycle().ready.len();
    let ready = watch_readiness(admin.clone(), pods_per_store);

    // Raw runs before and after Storefactory (`FIRST=storefactory`: only after it).
    let storefactory_first = std::env::var("FIRST").is_ok_and(|f| f == "storefactory");
    let counter = RequestCounter::new();
    let kubeconfig = Kubeconfig::read_from(cp.kubeconfig_path())?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    // A warm-up, not measured: the first run on a fresh control plane is the fastest of all
    // (15.8 stores/s raw, 200 stores, against 8.5-11.4 for the runs after it in the same
    // process), so without one whichever measured run went first was favoured.
    quiesce().await;
    if warmup > 0 {
        let (run, namespaces) = raw("warm-up", &admin, &registry, &ready, warmup, inflight).await?;
        println!(
            "warm-up, not measured: {warmup} stores applied raw, {:.2} stores/s",
            run.applied_per_second(warmup)
        );
        delete_namespaces(&admin, &namespaces).await?;
        quiesce().await;
    }
    let mut raws = Vec::new();
    if !storefactory_first {
        let (run, namespaces) = raw(
            "raw server-side apply",
            &admin,
            &registry,
            &ready,
            stores,
            inflight,
        )
        .await?;
        run.print(stores);
        delete_namespaces(&admin, &namespaces).await?;
        quiesce().await;
        raws.push(run);
    }
    let (ours, our_namespaces, provisioner, running) =
        storefactory(&admin, counter.client(config)?, &counter, stores, inflight).await?;
    ours.print(stores);

    let idle_before = counter.total();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let idle = counter.total() - idle_before;
    println!(
        "storefactory idle with {stores} ready stores: {idle} requests in {idle_secs} s; RSS {:.0} MiB; {} stores tracked",
        rss_mib(),
        provisioner.tracked_stores()
    );
    running.abort();
    delete_namespaces(&admin, &our_namespaces).await?;
    quiesce().await;
    let name = if storefactory_first {
        "raw server-side apply"
    } else {
        "raw server-side apply, again after storefactory"
    };
    let (run, _) = raw(name, &admin, &registry, &ready, stores, inflight).await?;
    run.print(stores);
    raws.push(run);

    // The baseline: the mean of the raw runs' rate and time to the last ready store.
    let runs = raws.len() as f64;
    let raw_applied = raws
        .iter()
        .map(|r| r.applied_per_second(stores))
        .sum::<f64>()
        / runs;
    let raw_ready = raws.iter().map(|r| r.last_ready.as_secs_f64()).sum::<f64>() / runs;
    let applied_ratio = ours.applied_per_second(stores) / raw_applied;
    let ready_ratio = ours.last_ready.as_secs_f64() / raw_ready.max(1e-9);
    let own_total: u64 = ours.own.as_ref().map(|c| c.values().sum()).unwrap_or(0);
    let own_lists: u64 = ours
        .own
        .as_ref()
        .map(|c| {
            c.iter()
                .filter(|((verb, _), _)| verb == "LIST")
                .map(|(_, n)| n)
                .sum()
        })
        .unwrap_or(0);
    let objects = registry
        .render(
            DEFAULT_BLUEPRINT,
            &spec_for(&StoreId::generate()),
            SecretValues::Placeholders,
        )?
        .len();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "side by side ({stores} stores, {inflight} in flight, {}):",
        if storefactory_first {
            "storefactory first, raw after it"
        } else {
            "raw before and after storefactory, their mean the baseline"
        }
    );
    for run in &raws {
        println!(
            "  {}: {:.2} stores/s applied, last ready after {:.1?}",
            run.name,
            run.applied_per_second(stores),
            run.last_ready
        );
    }
    println!(
        "  applied stores/s, storefactory / raw: {applied_ratio:.2}x (target >= 0.8x: {})",
        verdict(applied_ratio >= 0.8)
    );
    println!(
        "  last store ready, storefactory / raw: {ready_ratio:.2}x (target <= 1.5x: {})",
        verdict(ready_ratio <= 1.5)
    );
    println!(
        "  storefactory's own requests per store: {:.1} for {objects} objects (target <= {}: {}); LISTs per store {:.2} (target 0: {})",
        own_total as f64 / stores as f64,
        objects + 5,
        verdict(own_total as f64 / stores as f64 <= (objects + 5) as f64),
        own_lists as f64 / stores as f64,
        verdict(own_lists == 0)
    );
    println!(
        "  idle: {idle} requests in {idle_secs} s (target 0: {})",
        verdict(idle == 0)
    );
    Ok(())
}
