//! Backups against the local control plane: the backup Job and its objects, how the
//! leader settles backups by their Jobs, and refusals that change nothing. (The simulated
//! kubelet runs no container: a backup Job's pod "succeeds" without uploading anything.
//! The Job's commands run for real in `backup_transport.rs` of storefactory-http.)

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::ListParams;
use kube::{Api, Client};
use storefactory_core::backup::{
    BackupId, BackupKind, BackupOutcome, BackupRecord, BackupRepository, BackupStatus,
    RestoreStatus, UploadToken, site_url,
};
use storefactory_core::blueprint::BlueprintRegistry;
use storefactory_core::error::{Error, ErrorKind};
use storefactory_core::memory::MemoryRepository;
use storefactory_core::port::{Quota, StoreRepository};
use storefactory_core::provisioner::{
    BackupConfig, CreateStore, LABEL_OPERATION, Provisioner, ProvisionerConfig,
};
use storefactory_core::spec::{StoreId, StoreSpec};
use storefactory_core::store::{EventKind, StoreStatus};
use storefactory_testkit::{Fault, FaultKind};

const WAIT: Duration = Duration::from_secs(90);
const ENDPOINT: &str = "http://storefactory.storefactory-system.svc:8080@storefactory-system";

struct Harness {
    client: Client,
    repo: Arc<MemoryRepository>,
}

impl Harness {
    async fn new() -> Self {
        let cp = storefactory_testkit::shared().await.expect("control plane");
        Harness {
            client: cp.client().await.expect("client"),
            repo: Arc::new(MemoryRepository::new()),
        }
    }

    fn provisioner(&self, endpoint: Option<&str>) -> Provisioner {
        Provisioner::new(
            self.client.clone(),
            self.repo.clone(),
            Arc::new(BlueprintRegistry::builtin().expect("blueprints")),
            ProvisionerConfig {
                leader: None,
                backups: BackupConfig {
                    endpoint: endpoint.map(|e| e.parse().unwrap()),
                    ..BackupConfig::default()
                },
                ..ProvisionerConfig::default()
            },
        )
    }

    async fn wait_for_store(&self, id: &StoreId, status: StoreStatus) {
        let started = Instant::now();
        loop {
            let record = self.repo.get_store(id).await.unwrap();
            if record.as_ref().is_some_and(|r| r.status == status) {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "store {id} never became {status}: {record:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_for_backup(&self, id: &BackupId, status: BackupStatus) -> BackupRecord {
        let started = Instant::now();
        loop {
            let record = self.repo.get_backup(id).await.unwrap().expect("backup");
            if record.status == status {
                return record;
            }
            assert!(
                started.elapsed() < WAIT,
                "backup {id} never became {status}: {record:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many objects of the backup Job `name` exist, over the kinds it is made of.
    async fn objects_of(&self, store: &StoreId, name: &str) -> usize {
        let ns = store.namespace();
        let lp = ListParams::default().labels(&format!("{LABEL_OPERATION}={name}"));
        let c = || self.client.clone();
        // Background deletion: a Job with a deletion timestamp is on its way out.
        let jobs = Api::<Job>::namespaced(c(), &ns)
            .list(&lp)
            .await
            .unwrap()
            .items;
        jobs.iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .count()
            + Api::<Secret>::namespaced(c(), &ns)
                .list(&lp)
                .await
                .unwrap()
                .items
                .len()
            + Api::<ConfigMap>::namespaced(c(), &ns)
                .list(&lp)
                .await
                .unwrap()
                .items
                .len()
            + Api::<NetworkPolicy>::namespaced(c(), &ns)
                .list(&lp)
                .await
                .unwrap()
                .items
                .len()
    }

    async fn warnings(&self, id: &StoreId) -> Vec<String> {
        self.repo
            .events(id, 0)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Warning { message } => Some(message),
                _ => None,
            })
            .collect()
    }
}

fn request(id: &StoreId) -> CreateStore {
    CreateStore::new(StoreSpec::new(
        id.clone(),
        "alice",
        format!("store-{id}.storefactory.test"),
    ))
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < WAIT, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_runs_its_job_and_is_settled_by_it() {
    let h = Harness::new().await;
    let cp = storefactory_testkit::shared().await.unwrap();
    let p = h.provisioner(Some(ENDPOINT));
    let id = StoreId::generate();
    p.create(request(&id)).await.unwrap();
    let run = tokio::spawn({
        let p = p.clone();
        async move { p.run().await.unwrap() }
    });
    h.wait_for_store(&id, StoreStatus::Ready).await;

    // Held back long enough to look at the Job's objects before it finishes.
    let slow = cp.kubelet().unwrap().inject(
        Fault::new(FaultKind::SlowStart(Duration::from_secs(4)))
            .namespace(id.namespace())
            .pod_name_prefix("backup-"),
    );
    let backup = p.backup(&id, BackupKind::Manual).await.unwrap();
    assert_eq!(backup.status, BackupStatus::Pending);
    let name = format!("backup-{}", backup.id);
    let ns = id.namespace();

    let job = Api::<Job>::namespaced(h.client.clone(), &ns)
        .get(&name)
        .await
        .expect("the backup Job exists");
    let pod = job.spec.unwrap().template.spec.unwrap();
    let init = &pod.init_containers.as_ref().unwrap()[0];
    let main = &pod.containers[0];
    let defaults = StoreSpec::new(id.clone(), "alice", "x.test");
    assert_eq!(init.image.as_deref(), Some(defaults.mysql.image.as_str()));
    assert_eq!(
        init.command.as_deref().unwrap(),
        ["bash", "/scripts/backup-job.sh", "db"]
    );
    assert_eq!(
        main.image.as_deref(),
        Some(defaults.wordpress.image.as_str())
    );
    assert_eq!(
        main.command.as_deref().unwrap(),
        ["bash", "/scripts/backup-job.sh", "upload"]
    );
    let env = |name: &str| {
        main.env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(
        env("UPLOAD_URL").value.unwrap(),
        format!(
            "http://storefactory.storefactory-system.svc:8080/internal/backups/{}",
            backup.id
        )
    );
    let token_ref = env("BACKUP_TOKEN")
        .value_from
        .unwrap()
        .secret_key_ref
        .unwrap();
    assert_eq!(
        (token_ref.name.as_str(), token_ref.key.as_str()),
        (name.as_str(), "token")
    );
    let volumes = pod.volumes.unwrap();
    let wordpress = volumes.iter().find(|v| v.name == "wordpress").unwrap();
    let claim = wordpress.persistent_volume_claim.as_ref().unwrap();
    assert_eq!(
        (claim.claim_name.as_str(), claim.read_only),
        ("wordpress", Some(true))
    );
    assert!(
        volumes
            .iter()
            .any(|v| v.name == "backup" && v.empty_dir.is_some())
    );
    let scripts = volumes.iter().find(|v| v.name == "scripts").unwrap();
    assert_eq!(scripts.config_map.as_ref().unwrap().name, name);
    let config = Api::<ConfigMap>::namespaced(h.client.clone(), &ns)
        .get(&name)
        .await
        .unwrap();
    let data = config.data.unwrap();
    for script in ["backup.sh", "backup-common.sh", "backup-job.sh"] {
        assert!(
            data[script].starts_with("#"),
            "{script} is in the ConfigMap"
        );
    }

    // The token lives only in the Secret; the record keeps its hash, which accepts it.
    let secret = Api::<Secret>::namespaced(h.client.clone(), &ns)
        .get(&name)
        .await
        .unwrap();
    let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    assert!(backup.accepts(&token));
    assert!(p.authorize_upload(&backup.id, &token).await.is_ok());
    let wrong = p.authorize_upload(&backup.id, "guess").await.unwrap_err();
    assert_eq!(wrong.kind(), ErrorKind::NotFound);

    // Only the backup pod may reach the platform, on its port.
    let policy = Api::<NetworkPolicy>::namespaced(h.client.clone(), &ns)
        .get(&name)
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(
        policy.pod_selector.unwrap().match_labels.unwrap()["storefactory.io/job"],
        name
    );
    let egress = policy.egress.unwrap();
    let platform = egress
        .iter()
        .find(|rule| {
            rule.to.iter().flatten().any(|peer| {
                peer.namespace_selector
                    .as_ref()
                    .and_then(|s| s.match_labels.as_ref())
                    .is_some_and(|l| l["kubernetes.io/metadata.name"] == "storefactory-system")
            })
        })
        .expect("an egress rule to the platform");
    assert_eq!(
        platform.ports.as_ref().unwrap()[0].port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080))
    );
    assert_eq!(
        h.repo.list_backups(&id).await.unwrap(),
        std::slice::from_ref(&backup),
        "listed while pending"
    );
    drop(slow);

    // The simulated pod succeeds without uploading: the backup fails, and says why.
    let failed = h.wait_for_backup(&backup.id, BackupStatus::Failed).await;
    assert!(
        failed
            .error
            .as_deref()
            .unwrap()
            .contains("without handing over"),
        "{failed:?}"
    );
    assert!(failed.finished_at.is_some());
    eventually("the Job's objects are deleted", || async {
        h.objects_of(&id, &name).await == 0
    })
    .await;
    assert!(
        p.authorize_upload(&backup.id, &token).await.is_err(),
        "a settled backup takes no upload"
    );

    // A backup whose archive arrived is completed, and its Job finishing does not undo it.
    let second = p.backup(&id, BackupKind::Scheduled).await.unwrap();
    let done = p
        .settle_backup(
            &second,
            BackupOutcome::Completed {
                size_bytes: 42,
                sha256: "0".repeat(64),
            },
        )
        .await
        .unwrap()
        .expect("settled");
    assert_eq!(done.status, BackupStatus::Completed);
    let second_name = format!("backup-{}", second.id);
    eventually("the completed backup's Job objects are deleted", || async {
        h.objects_of(&id, &second_name).await == 0
    })
    .await;
    let listed = p.list_backups(&id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, second.id, "newest first");
    assert_eq!(listed[0].status, BackupStatus::Completed);
    assert_eq!(listed[0].size_bytes, Some(42));

    // A Job that fails fails its backup with what its container said.
    let _crash = cp.kubelet().unwrap().inject(
        Fault::crash(3)
            .namespace(id.namespace())
            .pod_name_prefix("backup-")
            .container("dump"),
    );
    let third = p.backup(&id, BackupKind::Manual).await.unwrap();
    let failed = h.wait_for_backup(&third.id, BackupStatus::Failed).await;
    assert!(
        failed.error.as_deref().unwrap().contains("failed"),
        "{failed:?}"
    );

    // A Job deleted before it finished fails its backup, saying so.
    let held = cp.kubelet().unwrap().inject(
        Fault::new(FaultKind::SlowStart(Duration::from_secs(30)))
            .namespace(id.namespace())
            .pod_name_prefix("backup-"),
    );
    let fourth = p.backup(&id, BackupKind::Manual).await.unwrap();
    Api::<Job>::namespaced(h.client.clone(), &id.namespace())
        .delete(
            &format!("backup-{}", fourth.id),
            &kube::api::DeleteParams::background(),
        )
        .await
        .unwrap();
    let failed_fourth = h.wait_for_backup(&fourth.id, BackupStatus::Failed).await;
    assert!(
        failed_fourth
            .error
            .as_deref()
            .unwrap()
            .contains("deleted before it finished"),
        "{failed_fourth:?}"
    );
    drop(held);

    // The store was never disturbed: still ready, no warning about its objects.
    let record = h.repo.get_store(&id).await.unwrap().unwrap();
    assert_eq!(record.status, StoreStatus::Ready);
    let warnings = h.warnings(&id).await;
    assert!(
        !warnings
            .iter()
            .any(|w| w.contains("was deleted; restoring it")),
        "{warnings:?}"
    );

    // Deleting a settled backup forgets it; an unknown one is a clear not-found.
    p.delete_backup(&id, &failed.id).await.unwrap();
    assert_eq!(p.list_backups(&id).await.unwrap().len(), 3);
    let missing = p.delete_backup(&id, &failed.id).await.unwrap_err();
    assert!(matches!(missing, Error::BackupNotFound { .. }), "{missing}");
    let missing = p.get_backup(&id, &BackupId::generate()).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);

    p.delete(&id).await.unwrap();
    h.wait_for_store(&id, StoreStatus::Deleted).await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_backups_change_nothing() {
    let h = Harness::new().await;
    let p = h.provisioner(Some(ENDPOINT));
    let id = StoreId::generate();
    // Recorded, never provisioned (no reconciler runs): not ready.
    p.create(request(&id)).await.unwrap();
    let refused = p.backup(&id, BackupKind::Manual).await.unwrap_err();
    assert!(
        matches!(
            refused,
            Error::InvalidState {
                status: StoreStatus::Initialized,
                ..
            }
        ),
        "{refused}"
    );
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    assert!(h.repo.list_backups(&id).await.unwrap().is_empty());

    let unknown = StoreId::generate();
    let refused = p.backup(&unknown, BackupKind::Manual).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::NotFound);
    let refused = p.list_backups(&unknown).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::NotFound);

    // Without an endpoint, no backup can be taken.
    let unconfigured = h.provisioner(None);
    let refused = unconfigured
        .backup(&id, BackupKind::Manual)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::BackupsUnavailable { .. }),
        "{refused}"
    );
    assert!(h.repo.list_backups(&id).await.unwrap().is_empty());
    assert!(
        Api::<Job>::namespaced(h.client.clone(), &id.namespace())
            .list(&ListParams::default().labels(LABEL_OPERATION))
            .await
            .map(|l| l.items.is_empty())
            .unwrap_or(true),
        "no Job was created"
    );
}

/// A completed backup of `id`, as the platform records one whose archive arrived.
async fn completed_backup(h: &Harness, id: &StoreId) -> BackupRecord {
    let record = h.repo.get_store(id).await.unwrap().unwrap();
    let token = UploadToken::generate();
    let mut backup = BackupRecord::pending(id.clone(), BackupKind::Manual, &token);
    backup.site_url = Some(site_url(&record.spec));
    h.repo.insert_backup(&backup).await.unwrap();
    h.repo
        .settle_backup(
            &backup.id,
            BackupOutcome::Completed {
                size_bytes: 1000,
                sha256: "ab".repeat(32),
            },
        )
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_and_clones_run_their_jobs_and_the_quota_holds() {
    let h = Harness::new().await;
    let cp = storefactory_testkit::shared().await.unwrap();
    h.repo.set_quota(
        "alice",
        Quota {
            max_stores: 2,
            max_storage_gib: 100,
        },
    );
    let p = h.provisioner(Some(ENDPOINT));
    let id = StoreId::generate();
    p.create(request(&id)).await.unwrap();
    let run = tokio::spawn({
        let p = p.clone();
        async move { p.run().await.unwrap() }
    });
    h.wait_for_store(&id, StoreStatus::Ready).await;

    // A backup that does not exist: a clear not-found, and the store stays ready.
    let missing = p.restore(&id, &BackupId::generate()).await.unwrap_err();
    assert!(matches!(missing, Error::BackupNotFound { .. }), "{missing}");
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    // A clone needs a completed backup of its source; without one, nothing is created.
    let nothing = StoreId::generate();
    let refused = p.clone_store(&id, request(&nothing)).await.unwrap_err();
    assert!(
        matches!(refused, Error::BackupsUnavailable { .. }),
        "{refused}"
    );
    assert!(h.repo.get_store(&nothing).await.unwrap().is_none());

    let backup = completed_backup(&h, &id).await;
    let slow = cp.kubelet().unwrap().inject(
        Fault::new(FaultKind::SlowStart(Duration::from_secs(4)))
            .namespace(id.namespace())
            .pod_name_prefix("restore-"),
    );
    let restore = p.restore(&id, &backup.id).await.unwrap();
    assert_eq!(restore.status, RestoreStatus::Running);
    assert_eq!(restore.old_url, None, "the same store: nothing to rewrite");
    let store = h.repo.get_store(&id).await.unwrap().unwrap();
    assert_eq!(store.status, StoreStatus::Restoring, "not ready meanwhile");
    // A second restore while one runs is refused.
    let busy = p.restore(&id, &backup.id).await.unwrap_err();
    assert!(matches!(busy, Error::InvalidState { .. }), "{busy}");

    let name = format!("restore-{}", restore.id);
    let job = Api::<Job>::namespaced(h.client.clone(), &id.namespace())
        .get(&name)
        .await
        .expect("the restore Job exists");
    let pod = job.spec.unwrap().template.spec.unwrap();
    let defaults = StoreSpec::new(id.clone(), "alice", "x.test");
    let init: Vec<_> = pod
        .init_containers
        .clone()
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.image.unwrap(), c.command.unwrap()))
        .collect();
    assert_eq!(
        init,
        [
            (
                "fetch".to_owned(),
                defaults.wordpress.image.clone(),
                vec![
                    "bash".to_owned(),
                    "/scripts/restore-job.sh".into(),
                    "fetch".into()
                ]
            ),
            (
                "database".to_owned(),
                defaults.mysql.image.clone(),
                vec![
                    "bash".to_owned(),
                    "/scripts/restore-job.sh".into(),
                    "db".into()
                ]
            ),
        ]
    );
    let files = &pod.containers[0];
    assert_eq!(
        files.image.as_deref(),
        Some(defaults.wordpress.image.as_str())
    );
    let env = |name: &str| {
        pod.init_containers
            .iter()
            .flatten()
            .chain(&pod.containers)
            .flat_map(|c| c.env.iter().flatten())
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(
        env("ARCHIVE_URL").unwrap(),
        format!(
            "http://storefactory.storefactory-system.svc:8080/internal/restores/{}/archive",
            restore.id
        )
    );
    assert_eq!(env("ARCHIVE_SHA256").unwrap(), "ab".repeat(32));
    assert_eq!(env("BACKUP_ID").unwrap(), backup.id.as_str());
    let wordpress = pod
        .volumes
        .clone()
        .unwrap()
        .into_iter()
        .find(|v| v.name == "wordpress")
        .unwrap();
    assert_ne!(
        wordpress.persistent_volume_claim.unwrap().read_only,
        Some(true),
        "a restore writes the files"
    );
    drop(slow);

    // The simulated Job succeeds: restored, the store ready again, its objects gone.
    eventually("the restore completes", || async {
        h.repo
            .get_restore(&restore.id)
            .await
            .unwrap()
            .is_some_and(|r| r.status == RestoreStatus::Completed)
    })
    .await;
    h.wait_for_store(&id, StoreStatus::Ready).await;
    eventually("the restore Job's objects are deleted", || async {
        h.objects_of(&id, &name).await == 0
    })
    .await;

    // A clone: a new store of alice's, provisioned, then restored with its URL rewritten.
    // The source has a custom domain, and the clone's spec is copied from the source's (as
    // the command line and the API do): the clone is made, without the domain.
    let domain = format!("shop-{id}.example.com");
    p.add_domain(&id, &domain).await.unwrap();
    let clone = StoreId::generate();
    let mut copied = request(&clone);
    copied.spec.ingress.domains = vec![domain.clone()];
    let (record, waiting) = p.clone_store(&id, copied).await.unwrap();
    assert_eq!(record.owner, "alice");
    assert!(
        record.spec.ingress.domains.is_empty(),
        "{:?}",
        record.spec.ingress.domains
    );
    assert_eq!(
        h.repo
            .get_store(&id)
            .await
            .unwrap()
            .unwrap()
            .spec
            .ingress
            .domains,
        [domain]
    );
    assert_eq!(waiting.status, RestoreStatus::Waiting);
    assert_eq!(waiting.backup_id, backup.id);
    assert_eq!(
        (waiting.old_url.as_deref(), waiting.new_url.as_deref()),
        (
            Some(format!("http://store-{id}.storefactory.test").as_str()),
            Some(format!("http://store-{clone}.storefactory.test").as_str())
        )
    );
    eventually("the clone is restored", || async {
        h.repo
            .get_restore(&waiting.id)
            .await
            .unwrap()
            .is_some_and(|r| r.status == RestoreStatus::Completed)
    })
    .await;
    h.wait_for_store(&clone, StoreStatus::Ready).await;
    let statuses: Vec<StoreStatus> = h
        .repo
        .events(&clone, 0)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Status { status, .. } => Some(status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            StoreStatus::Initialized,
            StoreStatus::Provisioning,
            StoreStatus::Ready,
            StoreStatus::Restoring,
            StoreStatus::Ready
        ]
    );

    // Over quota (two stores of two): refused, nothing created.
    let third = StoreId::generate();
    let refused = p.clone_store(&id, request(&third)).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::QuotaExceeded, "{refused}");
    assert!(h.repo.get_store(&third).await.unwrap().is_none());
    assert!(
        h.repo
            .open_restores()
            .await
            .unwrap()
            .iter()
            .all(|r| r.store_id != third),
        "no restore waits for a store that was not created"
    );

    for store in [&id, &clone] {
        p.delete(store).await.unwrap();
    }
    for store in [&id, &clone] {
        h.wait_for_store(store, StoreStatus::Deleted).await;
    }
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_backs_up_ready_stores_and_keeps_the_newest() {
    let h = Harness::new().await;
    let archives_dir = tempfile::tempdir().unwrap();
    let archives = storefactory_core::backup::ArchiveDir::new(archives_dir.path());
    let p = Provisioner::new(
        h.client.clone(),
        h.repo.clone(),
        Arc::new(BlueprintRegistry::builtin().expect("blueprints")),
        ProvisionerConfig {
            leader: None,
            backups: BackupConfig {
                endpoint: Some(ENDPOINT.parse().unwrap()),
                archives: Some(std::sync::Arc::new(archives.clone())),
                // Long enough that the test's own pass is the only one.
                schedule: Some(Duration::from_secs(3600)),
                keep: 2,
            },
            ..ProvisionerConfig::default()
        },
    );
    let id = StoreId::generate();
    p.create(request(&id)).await.unwrap();
    let run = tokio::spawn({
        let p = p.clone();
        async move { p.run().await.unwrap() }
    });
    h.wait_for_store(&id, StoreStatus::Ready).await;

    // Older scheduled backups: three completed (with archives), three failed, and a
    // manual one, oldest first.
    let mut old = Vec::new();
    for (i, (kind, outcome)) in [
        (BackupKind::Scheduled, true),
        (BackupKind::Scheduled, false),
        (BackupKind::Manual, true),
        (BackupKind::Scheduled, true),
        (BackupKind::Scheduled, false),
        (BackupKind::Scheduled, true),
        (BackupKind::Scheduled, false),
    ]
    .into_iter()
    .enumerate()
    {
        let token = UploadToken::generate();
        let mut backup = BackupRecord::pending(id.clone(), kind, &token);
        backup.created_at = storefactory_core::store::Timestamp(1_000 + i as i64);
        h.repo.insert_backup(&backup).await.unwrap();
        let outcome = if outcome {
            std::fs::write(archives.archive(&backup.id), b"archive").unwrap();
            BackupOutcome::Completed {
                size_bytes: 7,
                sha256: "0".repeat(64),
            }
        } else {
            BackupOutcome::Failed("x".into())
        };
        h.repo.settle_backup(&backup.id, outcome).await.unwrap();
        old.push(backup.id);
    }

    p.scheduled_pass().await;
    let left: Vec<BackupRecord> = h.repo.list_backups(&id).await.unwrap();
    let new = &left[0];
    assert_eq!(
        (new.kind, new.status),
        (BackupKind::Scheduled, BackupStatus::Pending),
        "a scheduled backup was started"
    );
    let kept: HashSet<BackupId> = left.iter().map(|b| b.id.clone()).collect();
    // Kept: the manual one, the two newest completed and the two newest failed scheduled.
    for (i, expected) in [false, false, true, true, true, true, true]
        .iter()
        .enumerate()
    {
        assert_eq!(kept.contains(&old[i]), *expected, "backup {i}");
        assert_eq!(
            archives.archive(&old[i]).exists(),
            *expected && [0, 2, 3, 5].contains(&i),
            "the archive of backup {i}"
        );
    }
    p.delete(&id).await.unwrap();
    h.wait_for_store(&id, StoreStatus::Deleted).await;
    run.abort();
}
