//! The SQLite repository behaves like core's in-memory one, which the Provisioner's own
//! tests run on: same script, same answers.

use storefactory_core::error::RepositoryError;
use storefactory_core::memory::MemoryRepository;
use storefactory_core::port::{DomainChange, Quota, StoreFilter, StoreRepository};
use storefactory_core::spec::{Quantity, StoreId, StoreSpec};
use storefactory_core::store::{EventKind, StoreRecord, StoreStatus, Timestamp};
use storefactory_sql::{Database, Role};

const QUOTA: Quota = Quota {
    max_stores: 2,
    max_storage_gib: 100,
};

fn store(id: &str) -> StoreRecord {
    let id = StoreId::new(id).unwrap();
    let mut spec = StoreSpec::new(id.clone(), "amy", format!("{id}.example"));
    spec.mysql.storage = Quantity::gib(1);
    StoreRecord::new(spec, id.to_string(), "woocommerce")
}

fn outcome<T>(result: Result<T, RepositoryError>, ok: impl FnOnce(T) -> String) -> String {
    match result {
        Ok(value) => ok(value),
        Err(RepositoryError::QuotaExceeded { owner, message }) => {
            format!("quota exceeded: {owner}: {message}")
        }
        Err(RepositoryError::AlreadyExists { id }) => format!("already exists: {id}"),
        Err(RepositoryError::NotFound { id }) => format!("not found: {id}"),
        Err(
            err @ (RepositoryError::InvalidTransition { .. }
            | RepositoryError::DomainTaken { .. }
            | RepositoryError::DomainLimit { .. }
            | RepositoryError::DomainNotFound { .. }
            | RepositoryError::WrongStatus { .. }),
        ) => format!("refused: {err}"),
        Err(err @ RepositoryError::Backend { .. }) => format!("backend: {err}"),
    }
}

/// Runs one script against `repo` and writes down every answer, timestamps left out.
async fn script(repo: &dyn StoreRepository) -> Vec<String> {
    let id = |s: &str| StoreId::new(s).unwrap();
    let inserted = |()| "inserted".to_owned();
    let record = |r: StoreRecord| format!("{} {} {:?}", r.id, r.status, r.reason);
    let event = |e: storefactory_core::store::StoreEvent| format!("{} #{}", e.store_id, e.seq);
    let ids = |rs: Vec<StoreRecord>| {
        rs.iter()
            .map(|r| r.id.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let step = EventKind::Step {
        step: "apply".into(),
        message: "ok".into(),
    };
    let mut log = Vec::new();
    log.push(outcome(repo.insert_store(&store("p1")).await, inserted));
    log.push(outcome(repo.insert_store(&store("p1")).await, inserted));
    log.push(outcome(repo.insert_store(&store("p2")).await, inserted));
    log.push(outcome(repo.insert_store(&store("p3")).await, inserted));
    for target in ["p1", "p1", "p2", "missing"] {
        log.push(outcome(
            repo.append_event(&id(target), Timestamp(7), &step).await,
            event,
        ));
    }
    log.push(outcome(
        repo.set_status(&id("p1"), StoreStatus::Failed, Some("boom"))
            .await,
        record,
    ));
    log.push(outcome(
        repo.set_status(&id("missing"), StoreStatus::Ready, None)
            .await,
        record,
    ));
    log.push(outcome(
        repo.set_status(&id("p1"), StoreStatus::Deleted, None).await,
        record,
    ));
    log.push(outcome(
        repo.set_status(&id("p1"), StoreStatus::Deleting, None)
            .await,
        record,
    ));
    log.push(outcome(
        repo.set_status(&id("p1"), StoreStatus::Deleted, None).await,
        record,
    ));
    log.push(outcome(repo.insert_store(&store("p3")).await, inserted));
    log.push(outcome(repo.insert_store(&store("p1")).await, inserted));
    log.push(outcome(
        repo.set_status(&id("p2"), StoreStatus::Deleting, None)
            .await,
        record,
    ));
    log.push(outcome(
        repo.set_status(&id("p2"), StoreStatus::Deleted, None).await,
        record,
    ));
    log.push(outcome(repo.insert_store(&store("p1")).await, inserted));
    log.push(outcome(repo.events(&id("p1"), 0).await, |es| {
        format!("{} events", es.len())
    }));
    log.push(outcome(repo.events(&id("p2"), 0).await, |es| {
        format!("{} events", es.len())
    }));
    log.push(outcome(
        repo.list_stores(&StoreFilter::default()).await,
        ids,
    ));
    log.push(outcome(
        repo.list_stores(&StoreFilter {
            owner: None,
            include_deleted: true,
        })
        .await,
        ids,
    ));
    log.push(outcome(
        repo.list_stores(&StoreFilter::owner("bob")).await,
        ids,
    ));
    log.push(outcome(repo.get_store(&id("missing")).await, |r| {
        format!("{r:?}")
    }));
    log.push(outcome(repo.get_store(&id("p2")).await, |r| {
        r.map(record).unwrap_or_default()
    }));
    log
}

#[tokio::test]
async fn sqlite_answers_like_the_in_memory_repository() {
    let memory = MemoryRepository::new();
    memory.set_quota("amy", QUOTA);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Database::open(dir.path().join("parity.db")).await.unwrap();
    sqlite
        .create_user("amy", "password for amy", Role::User, QUOTA)
        .await
        .unwrap();

    let expected = script(&memory).await;
    let actual = script(&sqlite).await;
    assert_eq!(actual, expected);
    // The script does reach every kind of answer, so the comparison means something.
    for needle in [
        "quota exceeded",
        "already exists",
        "not found",
        "p1 #2",
        "0 events",
    ] {
        assert!(
            expected.iter().any(|line| line.contains(needle)),
            "{needle} missing from {expected:#?}"
        );
    }
}

/// Custom domains, through both repositories: unique across live stores (their own hosts
/// included), at most ten per store, only in the statuses asked for, released by a deleted
/// store; every refusal changes nothing.
async fn domain_script(repo: &dyn StoreRepository) -> Vec<String> {
    let id = |s: &str| StoreId::new(s).unwrap();
    let added = EventKind::Step {
        step: "domain".into(),
        message: "changed".into(),
    };
    let ready = [StoreStatus::Ready, StoreStatus::Suspended];
    let change = |r: (StoreRecord, Option<storefactory_core::store::StoreEvent>)| {
        format!(
            "{}: [{}] event {:?}",
            r.0.id,
            r.0.spec.ingress.domains.join(","),
            r.1.map(|e| e.seq)
        )
    };
    let add = |h: &str| DomainChange::Add(h.to_owned());
    let remove = |h: &str| DomainChange::Remove(h.to_owned());
    let mut log = Vec::new();
    for s in ["d1", "d2"] {
        log.push(outcome(repo.insert_store(&store(s)).await, |()| {
            "inserted".into()
        }));
        repo.set_status(&id(s), StoreStatus::Provisioning, None)
            .await
            .unwrap();
    }
    // Not ready yet.
    log.push(outcome(
        repo.change_domain(
            &id("d1"),
            &add("shop.example"),
            &ready,
            Timestamp(1),
            &added,
        )
        .await,
        change,
    ));
    for s in ["d1", "d2"] {
        repo.set_status(&id(s), StoreStatus::Ready, None)
            .await
            .unwrap();
    }
    for (store, what) in [
        ("d1", add("shop.example")),
        ("d1", add("shop.example")),
        ("d2", add("shop.example")),
        ("d2", add("d1.example")),
        ("d1", add("d1.example")),
        ("d2", remove("shop.example")),
        ("missing", add("x.example")),
        ("d2", add("www.example")),
    ] {
        log.push(outcome(
            repo.change_domain(&id(store), &what, &ready, Timestamp(2), &added)
                .await,
            change,
        ));
    }
    for i in 0..10 {
        log.push(outcome(
            repo.change_domain(
                &id("d1"),
                &add(&format!("s{i}.example")),
                &ready,
                Timestamp(3),
                &added,
            )
            .await,
            change,
        ));
    }
    // A store whose host another store holds as a domain is refused.
    let mut squatter = store("d3");
    squatter.spec.ingress.host = "www.example".to_owned();
    log.push(outcome(repo.insert_store(&squatter).await, |()| {
        "inserted".into()
    }));
    let mut with_domain = store("d4");
    with_domain.spec.ingress.domains = vec!["s3.example".to_owned()];
    log.push(outcome(repo.insert_store(&with_domain).await, |()| {
        "inserted".into()
    }));
    log.push(outcome(
        repo.change_domain(
            &id("d1"),
            &remove("shop.example"),
            &ready,
            Timestamp(4),
            &added,
        )
        .await,
        change,
    ));
    // Free again: another store may take it.
    log.push(outcome(
        repo.change_domain(
            &id("d2"),
            &add("shop.example"),
            &ready,
            Timestamp(5),
            &added,
        )
        .await,
        change,
    ));
    // Deleting a store releases its domains once it is deleted (its Ingress is gone), not
    // while it is being deleted.
    repo.set_status(&id("d2"), StoreStatus::Deleting, None)
        .await
        .unwrap();
    log.push(outcome(
        repo.change_domain(
            &id("d1"),
            &add("shop.example"),
            &ready,
            Timestamp(6),
            &added,
        )
        .await,
        change,
    ));
    repo.set_status(&id("d2"), StoreStatus::Deleted, None)
        .await
        .unwrap();
    log.push(outcome(
        repo.change_domain(
            &id("d1"),
            &remove("s9.example"),
            &ready,
            Timestamp(7),
            &added,
        )
        .await,
        change,
    ));
    log.push(outcome(
        repo.change_domain(
            &id("d1"),
            &add("shop.example"),
            &ready,
            Timestamp(8),
            &added,
        )
        .await,
        change,
    ));
    log.push(outcome(repo.get_store(&id("d1")).await, |r| {
        r.map(|r| r.spec.ingress.domains.join(","))
            .unwrap_or_default()
    }));
    log.push(outcome(repo.events(&id("d1"), 0).await, |es| {
        format!("{} events", es.len())
    }));
    log
}

/// Changes of a store's spec: along the lifecycle only, within the owner's storage quota
/// (a store already counted may grow when its owner holds as many stores as allowed).
async fn change_script(repo: &dyn StoreRepository) -> Vec<String> {
    let id = |s: &str| StoreId::new(s).unwrap();
    let record = |r: StoreRecord| {
        format!(
            "{} {} {:?} {} GiB",
            r.id,
            r.status,
            r.reason,
            r.storage_gib()
        )
    };
    let grown = |gib: u64| {
        let mut spec = store("c1").spec;
        spec.wordpress.storage = Quantity::gib(gib);
        spec.fit_quota_to_volumes();
        spec
    };
    let mut log = Vec::new();
    for name in ["c1", "c2"] {
        log.push(outcome(repo.insert_store(&store(name)).await, |()| {
            "inserted".to_owned()
        }));
    }
    let changing = Some("changing storage");
    log.push(outcome(
        repo.change_spec(&id("c1"), &grown(5), StoreStatus::Updating, changing)
            .await,
        record,
    ));
    for status in [StoreStatus::Provisioning, StoreStatus::Ready] {
        log.push(outcome(
            repo.set_status(&id("c1"), status, None).await,
            record,
        ));
    }
    log.push(outcome(
        repo.change_spec(&id("c1"), &grown(5), StoreStatus::Updating, changing)
            .await,
        record,
    ));
    log.push(outcome(
        repo.set_status(&id("c1"), StoreStatus::Ready, None).await,
        record,
    ));
    log.push(outcome(
        repo.change_spec(&id("c1"), &grown(10), StoreStatus::Updating, changing)
            .await,
        record,
    ));
    log.push(outcome(
        repo.change_spec(&id("missing"), &grown(3), StoreStatus::Updating, None)
            .await,
        record,
    ));
    log.push(outcome(repo.get_store(&id("c1")).await, |r| {
        r.map(|r| format!("{} {}", record(r.clone()), r.spec.wordpress.storage))
            .unwrap_or_default()
    }));
    log
}

#[tokio::test]
async fn custom_domains_are_unique_and_bounded_in_both_repositories() {
    let quota = Quota {
        max_stores: 10,
        max_storage_gib: 100,
    };
    let memory = MemoryRepository::new();
    memory.set_quota("amy", quota);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Database::open(dir.path().join("domains.db")).await.unwrap();
    sqlite
        .create_user("amy", "password for amy", Role::User, quota)
        .await
        .unwrap();
    let expected = domain_script(&memory).await;
    let actual = domain_script(&sqlite).await;
    assert_eq!(actual, expected);
    let expected_lines = [
        "refused: store d1 is provisioning",
        "d1: [shop.example] event Some(",
        "d1: [shop.example] event None",
        "refused: domain shop.example is already used by another store",
        "refused: domain d1.example is already used by another store",
        "refused: store d2 has no custom domain shop.example",
        "not found: missing",
        "d2: [www.example] event Some(",
        "refused: store d1 already has 10 custom domains, the most a store may have",
        "refused: domain www.example is already used by another store",
        "refused: domain s3.example is already used by another store",
        "d2: [www.example,shop.example] event Some(",
        "refused: store d1 has no custom domain s9.example",
    ];
    for needle in expected_lines {
        assert!(
            expected.iter().any(|line| line.contains(needle)),
            "{needle:?} missing from {expected:#?}"
        );
    }
    let n = expected.len();
    assert_eq!(
        expected[n - 5],
        "refused: domain shop.example is already used by another store",
        "a store being deleted still holds its domains"
    );
    assert!(
        expected[n - 3].ends_with("shop.example] event Some(12)"),
        "a deleted store's domain is free: {}",
        expected[n - 3]
    );
    assert_eq!(
        expected.last().map(String::as_str),
        Some("12 events"),
        "{expected:#?}"
    );
}

#[tokio::test]
async fn sqlite_changes_specs_like_the_in_memory_repository() {
    let quota = Quota {
        max_stores: 2,
        max_storage_gib: 10,
    };
    let memory = MemoryRepository::new();
    memory.set_quota("amy", quota);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Database::open(dir.path().join("parity.db")).await.unwrap();
    sqlite
        .create_user("amy", "password for amy", Role::User, quota)
        .await
        .unwrap();
    let expected = change_script(&memory).await;
    assert_eq!(change_script(&sqlite).await, expected);
    assert_eq!(
        expected,
        [
            "inserted",
            "inserted",
            "refused: store c1 is initialized and cannot become updating",
            "c1 provisioning None 3 GiB",
            "c1 ready None 3 GiB",
            "c1 updating Some(\"changing storage\") 6 GiB",
            "c1 ready None 6 GiB",
            "quota exceeded: amy: storage limit reached: 9 GiB in use, 5 GiB more requested, \
             10 GiB allowed",
            "not found: missing",
            "c1 ready None 6 GiB 5Gi",
        ]
    );
}
